"""What the nodes report to the controller: the global view's key-buffer fill levels.

The main paper's SDQN controller holds a global view built from node telemetry (sec. V-B,
Table 2); ``key-buffer-fill-level`` ("current status of the key store (bits)") is the one that
key-aware routing and the shield read. Here it is every QKD link buffer's bits at the end of a
tick, as the node sets hold them (``NodeSet.key_fill``).

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

__all__ = ["KeyFill"]


@dataclass(frozen=True)
class KeyFill:
    """Every QKD link buffer's key bits at the end of one tick.

    ``t_ns``: the end of the tick described (-1: no tick has closed yet, and no buffer is
    known); ``n_nodes``: G(t)'s node count; ``codes`` (L,) int64: each link as ``lower node
    index * n_nodes + higher``, ascending; ``bits`` (L,) int64: its buffer's bits. A link with
    no buffer (never up, or not a QKD link) holds no key: 0.
    """

    t_ns: int
    n_nodes: int
    codes: np.ndarray
    bits: np.ndarray

    def __post_init__(self) -> None:
        if self.codes.shape != self.bits.shape or self.codes.ndim != 1:
            raise ValueError(
                f"codes and bits must be 1-D of one length, got {self.codes.shape} and "
                f"{self.bits.shape}"
            )

    @classmethod
    def none_yet(cls, n_nodes: int) -> KeyFill:
        """The view before any tick has closed: no buffer holds key."""
        empty = np.zeros(0, dtype=np.int64)
        return cls(-1, int(n_nodes), empty, empty)

    def of_pairs(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(H,) int64: the bits of the buffer between nodes ``u[i]`` and ``v[i]`` (either
        order; 0 where there is none)."""
        u = np.asarray(u, dtype=np.int64)
        v = np.asarray(v, dtype=np.int64)
        want = np.minimum(u, v) * self.n_nodes + np.maximum(u, v)
        out = np.zeros(want.shape, dtype=np.int64)
        if not self.codes.size:
            return out
        at = np.searchsorted(self.codes, want)
        inside = at < self.codes.size
        hit = np.zeros(want.shape, dtype=bool)
        hit[inside] = self.codes[at[inside]] == want[inside]
        out[hit] = self.bits[at[hit]]
        return out

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
