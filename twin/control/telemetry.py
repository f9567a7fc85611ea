"""What the nodes report to the controller: the global view's key-buffer fill levels.

The main paper's SDQN controller holds a global view built from node telemetry (sec. V-B,
Table 2); ``key-buffer-fill-level`` ("current status of the key store (bits)") is the one that
key-aware routing and the shield read. Here it is every QKD link buffer's bits at the end of a
tick, as the node sets hold them (``NodeSet.key_fill``), and how fast each buffer filled or
drained since the report before (the engine's difference of two reports): a buffer's key rate
less what the flows routed over it draw, the load the neighbours put on a link, which the DRL
tier's features read (twin.control.drl).

Timing. A controller decides the paths at the end of the tick after the one being run (the
engine decides one tick ahead, so that controller actors work while the tick runs), and it
sees the report of the last tick whose node phase has closed at the moment it is asked. That
is the same tick under every runtime and placement (the engine's loop is one code), so
decisions that read the view are a pure function of (scenario, seed, code); on 1 s ticks the
report is 2-3 ticks old when the paths it shaped take effect, the delay of a control loop
that collects telemetry once per tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.units import NS_PER_S

__all__ = ["KeyFill"]


@dataclass(frozen=True)
class KeyFill:
    """Every QKD link buffer's key bits at the end of one tick.

    ``t_ns``: the end of the tick described (-1: no tick has closed yet, and no buffer is
    known); ``n_nodes``: G(t)'s node count; ``codes`` (L,) int64: each link as ``lower node
    index * n_nodes + higher``, ascending; ``bits`` (L,) int64: its buffer's bits. A link with
    no buffer (never up, or not a QKD link) holds no key: 0. ``trend_bps`` (L,) float64: each
    buffer's change since the report before, bits/s (:meth:`following`; zeros when there was
    none).
    """

    t_ns: int
    n_nodes: int
    codes: np.ndarray
    bits: np.ndarray
    trend_bps: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.codes.shape != self.bits.shape or self.codes.ndim != 1:
            raise ValueError(
                f"codes and bits must be 1-D of one length, got {self.codes.shape} and "
                f"{self.bits.shape}"
            )
        if self.trend_bps is None:
            object.__setattr__(self, "trend_bps", np.zeros(self.codes.shape))
        elif self.trend_bps.shape != self.codes.shape:
            raise ValueError(
                f"trend_bps must be of the codes' shape {self.codes.shape}, got "
                f"{self.trend_bps.shape}"
            )

    @classmethod
    def following(cls, before: KeyFill, t_ns: int, codes: np.ndarray, bits: np.ndarray) -> KeyFill:
        """The report of ``bits`` at ``t_ns``, with each buffer's trend since ``before`` (a
        buffer ``before`` lacks held 0 then; no trend after :meth:`none_yet`)."""
        if before.t_ns < 0 or t_ns <= before.t_ns:
            return cls(int(t_ns), before.n_nodes, codes, bits)
        n = before.n_nodes
        was = before.of_pairs(codes // n, codes % n)
        trend_bps = (bits - was) / ((t_ns - before.t_ns) / NS_PER_S)
        return cls(int(t_ns), n, codes, bits, trend_bps)

    @classmethod
    def none_yet(cls, n_nodes: int) -> KeyFill:
        """The view before any tick has closed: no buffer holds key."""
        empty = np.zeros(0, dtype=np.int64)
        return cls(-1, int(n_nodes), empty, empty)

    def of_pairs(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(H,) int64: the bits of the buffer between nodes ``u[i]`` and ``v[i]`` (either
        order; 0 where there is none)."""
        at, hit = self._find(u, v)
        out = np.zeros(hit.shape, dtype=np.int64)
        out[hit] = self.bits[at[hit]]
        return out

    def of_pairs_with_trend(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H,) float64 twice: :meth:`of_pairs`'s bits, and the trend (bits/s) of the same
        buffers (0 where there is none), with one lookup."""
        at, hit = self._find(u, v)
        bits = np.zeros(hit.shape)
        trend_bps = np.zeros(hit.shape)
        bits[hit] = self.bits[at[hit]]
        trend_bps[hit] = self.trend_bps[at[hit]]
        return bits, trend_bps

    def _find(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """Each pair's place in ``codes`` and whether it is there."""
        u = np.asarray(u, dtype=np.int64)
        v = np.asarray(v, dtype=np.int64)
        want = np.minimum(u, v) * self.n_nodes + np.maximum(u, v)
        hit = np.zeros(want.shape, dtype=bool)
        if not self.codes.size:
            return np.zeros(want.shape, dtype=np.int64), hit
        at = np.searchsorted(self.codes, want)
        inside = at < self.codes.size
        hit[inside] = self.codes[at[inside]] == want[inside]
        return at, hit

    def of_path(self, path) -> np.ndarray:
        """(hops,) int64: the bits of each hop's buffer along ``path`` (node indices)."""
        nodes = np.asarray(path, dtype=np.int64)
        return self.of_pairs(nodes[:-1], nodes[1:])

    def weakest(self, paths, initial: int) -> list[int]:
        """Per path the bits of its weakest hop's buffer, ``initial`` at most (and for a path
        of no hop, or None): ``of_path(path).min(initial=initial)`` of each, one lookup for all."""
        out = [int(initial)] * len(paths)
        hopped = [k for k, p in enumerate(paths) if p is not None and len(p) > 1]
        if not hopped:
            return out
        nodes = [np.asarray(paths[k], dtype=np.int64) for k in hopped]
        bits = self.of_pairs(
            np.concatenate([x[:-1] for x in nodes]), np.concatenate([x[1:] for x in nodes])
        )
        starts = np.cumsum([0] + [x.size - 1 for x in nodes[:-1]])
        weakest = np.minimum(np.minimum.reduceat(bits, starts), initial).tolist()
        for k, bits_k in zip(hopped, weakest, strict=True):
            out[k] = bits_k
        return out
