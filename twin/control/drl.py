"""The DRL tier (main paper sec. VII-B): each flow's candidate paths, what the policy sees of
them, the policy network, and the controller that routes with it (``drl-only``; ``ai-sdqn`` routes
with it too, twin.control.ai_sdqn).

The policy is one small network shared by every flow of every edge agent: it maps one flow's
features (:data:`FLOW_FEATURES` values, :func:`flow_features`) to a logit per candidate path
(:data:`K_CANDIDATES`: keep the current path, the fastest keyed path, the fastest path), one
per laser level (:data:`LASER_LEVELS`: the terminals "on", or the QKD turbo level for the
satellites of the flow's path over the next tick, ``Decision.boost``; the paper's laser power
action, sec. VII-B; the shield refuses a boost that would run a battery near its reserve) and
one per relay level (:data:`RELAY_LEVELS`: the key the flow's pool is short of relayed over its
path, or spread over its candidates in proportion to their weakest hops' key,
:func:`spread_relays`, ``Decision.relay``: the paper's next-hop split ratios, applied to what
the twin's links run short of) and one per data level (:data:`DATA_LEVELS`: the flow's data
over its path, or split in equal parts among it and its candidates that meet its latency
target, :func:`spread_data`, ``Decision.data``: the split ratios applied to the data), from
each candidate's key, latency, runway and loss (the issue's key buffer levels, neighbour loads
and link transmittance or RSSI; the queues the paper's edge agents see are the key buffers
here, as the twin queues no data). Sharing
it per flow keeps it independent of how many flows a scenario or an edge site has (the same
weights route ``small``, ``case-grid-eclipse`` and ``mega``) and makes a tick's inference one
batched torch call over all flows (:meth:`EdgePolicy.choose`). It is trained with RLlib's PPO on
:class:`twin.control.rl_env.RoutingEnv` (twin.control.train, ``qntwin train``); the policy
shipped in ``twin/control/data`` is used when none is given.

The policy acts on each flow's most likely candidate, laser, relay and data level. (Drawing
from its probabilities, as PPO explores, made returns a matter of luck: on
case-munich-pretoria's first two minutes the uniformly random policy scored from -58 to -18
depending on its draws.)

A flow's choice depends on G(t), the fill report (every edge actor gets the whole one), its own
history (its current path) and the weights only, so
splitting the flows over edge actors (the Ray runtime) changes no path: inference runs in
float64, whose per-row results do not depend on how many rows a batch holds here (the Ray test
pins the metrics byte for byte).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from twin.control.baselines import (
    Decision,
    KeyAwareGreedy,
    NetworkView,
    _members,
    _route_all,
    latency_bounds,
    route_around,
)
from twin.network.traffic import requirements

__all__ = [
    "ACTION_HEADS",
    "ACTION_LOGITS",
    "FLOW_FEATURES",
    "HEAD_NAMES",
    "K_CANDIDATES",
    "DATA_LEVELS",
    "LASER_LEVELS",
    "RELAY_LEVELS",
    "CandidatePaths",
    "DrlOnly",
    "EdgePolicy",
    "FlowPolicyNet",
    "flow_features",
    "shipped_policy",
    "spread_data",
    "spread_relays",
]

K_CANDIDATES = 3  # keep, fastest keyed, fastest
LASER_LEVELS = 2  # on, turbo (Decision.boost)
RELAY_LEVELS = 2  # the key relayed over the flow's path, or spread over its candidates
DATA_LEVELS = 2  # the data sent over the flow's path, or spread over its candidates
ACTION_HEADS = (K_CANDIDATES, LASER_LEVELS, RELAY_LEVELS, DATA_LEVELS)  # head by head
HEAD_NAMES = ("path", "laser", "relay", "data")  # ACTION_HEADS' names (qntwin train --heads)
ACTION_LOGITS = sum(ACTION_HEADS)  # per flow: the path's logits, the laser's, relay's, data's
# the logit of the first level (the terminals "on", the key over the path, the data over it) of
# each head that a policy of an earlier layout lacks (EdgePolicy.with_heads): kept at 73%
# (e / (e + 1))
FIRST_LEVEL_LOGIT = 1.0
_HEAD_BOUNDS = np.cumsum((0, *ACTION_HEADS)).tolist()  # each head's first and end logit
# per candidate key over need, latency, runway and loss, then active (flow_features)
FLOW_FEATURES = 4 * K_CANDIDATES + 1
FEATURE_CLIP = 10.0
LATENCY_UNIT_S = 10e-3  # feature unit of latency
LOSS_UNIT_DB = 10.0  # feature unit of a hop's loss
HIDDEN = (32, 32)
SHIPPED_POLICY = "edge_policy.pt"  # in twin/control/data


class CandidatePaths:
    """Per flow, the (keep, fastest keyed, fastest) paths of a decision; remembers the paths
    chosen last so that "keep" can keep them.

    - keep: the flow's current path while every hop of it is up, else the fastest path;
    - fastest keyed: the fastest path whose hops hold 10 s of the flow's key demand
      (:meth:`KeyAwareGreedy.fastest_keyed`, key-aware's choice), else the fastest;
    - fastest: the lowest-latency path over the links that are up (static-sp's choice).
    """

    def __init__(self) -> None:
        self.greedy = KeyAwareGreedy()
        self._previous: tuple = ()
        # the last build's fastest and fastest keyed paths: their latencies now bound this
        # build's searches (latency_bounds; a bound only speeds a search)
        self._found: tuple[tuple, tuple] = ((), ())

    def build(self, view: NetworkView) -> list[tuple]:
        flows = list(range(len(view.flows)))
        last_fastest, last_keyed = self._found
        if len(last_fastest) != len(flows):
            last_fastest = last_keyed = (None,) * len(flows)
        bounds = latency_bounds(view, last_fastest)
        fastest = _route_all(view, view.edges().latency_graph(), flows, bounds).paths
        keyed = list(fastest)
        bounds = latency_bounds(view, last_keyed)
        needs = [self.greedy.need_bits(f, view.t_ns) for f in view.flows]
        # a fastest path whose every hop holds the need is the fastest keyed one too (the
        # keyed links are a subgraph that keeps it, ties broken alike): searched for only
        # where it does not (a quarter of mega's path searches saved)
        top = np.iinfo(np.int64).max
        held = view.key_fill.weakest(fastest, initial=top)
        for need in sorted(set(needs) - {0}):
            members = [k for k in flows if needs[k] == need and not held[k] >= need]
            if not members:
                continue
            found = KeyAwareGreedy.fastest_keyed(view, members, need, fastest, bounds)
            for k, path in found.items():
                keyed[k] = path
        self._found = (fastest, tuple(keyed))
        previous = self.current(len(flows))
        intact = view.edges().paths_intact(previous)
        keep = [previous[k] if intact[k] else fastest[k] for k in flows]
        return [(keep[k], keyed[k], fastest[k]) for k in flows]

    def chosen(self, paths) -> None:
        """The paths the decision took (the next decision's "keep")."""
        self._previous = tuple(paths)

    def decision(
        self,
        view: NetworkView,
        candidates,
        choice: np.ndarray,
        avoid: Sequence[str] = (),
        setting: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Decision:
        """The decision ``choice`` makes of this build's ``candidates``: (F, 4) ints, each
        flow's candidate, laser level, relay level and data level (:meth:`EdgePolicy.choose`'s);
        paths through a station of ``avoid`` routed around it (:func:`route_around`), the
        relays and the data of the flows that spread split (:func:`spread_relays`,
        :func:`spread_data`), and the paths kept as the next decision's "keep". One
        construction for the deployed policy (:class:`DrlOnly`) and the environment it trains
        in (twin.control.rl_env), so both act alike."""
        paths = tuple(candidates[k][c] for k, c in enumerate(choice[:, 0].tolist()))
        if avoid or setting is not None:
            current = self.current(len(paths))
            paths = route_around(view, paths, avoid, self.greedy, setting, current)
        self.chosen(paths)
        return Decision(
            paths=paths,
            boost=tuple(choice[:, 1].astype(bool).tolist()),
            relay=spread_relays(view, candidates, paths, choice[:, 2], avoid),
            data=spread_data(view, candidates, paths, choice[:, 3], avoid),
        )

    def current(self, n_flows: int) -> tuple:
        """Each flow's path of the last decision (None before the first)."""
        return self._previous if len(self._previous) == n_flows else (None,) * n_flows

    def features(self, view: NetworkView, candidates) -> np.ndarray:
        """:func:`flow_features` of ``candidates`` (this build's), from the flows' current
        paths."""
        return flow_features(view, candidates, self.greedy, self.current(len(view.flows)))


def path_latencies_s(view: NetworkView, paths) -> list[float | None]:
    """Each path's latency, s (None for no path, or one with a hop down)."""
    return [x if np.isfinite(x) else None for x in view.edges().paths_latency_s(paths)]


def flow_features(
    view: NetworkView, candidates, greedy: KeyAwareGreedy, current: Sequence | None = None
) -> np.ndarray:
    """(F, FLOW_FEATURES) float32: per flow, four blocks of one value per candidate, then
    whether the flow is active (needs key now). Clipped to [0, FEATURE_CLIP]:

    - key: what its weakest hop's buffer holds over the flow's need (:meth:`KeyAwareGreedy.
      need_bits`, 10 s of OTP demand or a rekey; Table 2's key-buffer-fill-level);
      FEATURE_CLIP when the flow needs none;
    - latency, in units of 10 ms;
    - runway, in units of the need's 10 s: how long its hops' buffers last at the pace the
      fill report saw them fill or drain (``KeyFill.trend_bps``: a link's key rate less the
      draw of the flows routed over it, the neighbours' load), with the flow's own draw (its
      need over 10 s) added on the hops it is not on yet (``current``: each flow's current
      path); the hop that empties first counts. FEATURE_CLIP for a hop that does not drain
      and for a flow that needs no key;
    - loss, in units of 10 dB: its weakest hop's channel loss (the snapshot's transmittance,
      detector included: what a receiver's RSSI reads, for a fixed transmit power).

    A missing candidate (no path) reads 0 for key, latency and runway and FEATURE_CLIP for
    loss (no signal)."""
    n_flows = len(view.flows)
    k_ = K_CANDIDATES
    every = [path for paths in candidates for path in paths]  # (one lookup for all)
    needs = np.array([greedy.need_bits(flow, view.t_ns) for flow in view.flows], dtype=float)
    need = np.repeat(needs, k_)  # per path in ``every``
    latency_s = np.array([np.nan if x is None else x for x in path_latencies_s(view, every)])
    held = np.full(len(every), np.nan)
    runway_s = np.full(len(every), np.nan)
    loss_db = np.full(len(every), np.nan)
    # every hop of every candidate of at least one hop: its path's place in ``every``, its ends
    given = [j for j, p in enumerate(every) if p is not None and len(p) > 1]
    if given:
        nodes = [np.asarray(every[j], dtype=np.int64) for j in given]
        hops = np.array([x.size - 1 for x in nodes])
        starts = np.cumsum(hops) - hops
        u = np.concatenate([x[:-1] for x in nodes])
        v = np.concatenate([x[1:] for x in nodes])
        bits, trend_bps = view.key_fill.of_pairs_with_trend(u, v)
        held[given] = np.minimum.reduceat(bits, starts)
        # the flow's own draw (its need over the lookahead) on the hops its current path
        # does not hold: there it is not in the buffer's trend yet
        flow_of = np.repeat(given, hops) // k_
        n = view.snapshot.n_nodes
        hop = flow_of * (n * n) + np.minimum(u, v) * n + np.maximum(u, v)
        own_bps = np.where(_members(hop, _hop_codes(current, n)), 0.0, needs[flow_of])
        drain_bps = own_bps / greedy.lookahead_s - trend_bps
        with np.errstate(divide="ignore", invalid="ignore"):
            lasts_s = np.where(drain_bps > 0, bits / drain_bps, np.inf)
        runway_s[given] = np.minimum.reduceat(lasts_s, starts)
        edges = view.edges().hop_edges(u, v)
        with np.errstate(divide="ignore"):
            hop_loss_db = -10.0 * np.log10(view.snapshot.transmittance[np.maximum(edges, 0)])
        hop_loss_db[edges < 0] = np.inf
        loss_db[given] = np.maximum.reduceat(hop_loss_db, starts)
    hopped = np.zeros(len(every), dtype=bool)
    hopped[given] = True
    alone = np.array([p is not None and len(p) < 2 for p in every], dtype=bool)
    keyless = need == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        key = np.where(keyless, FEATURE_CLIP, held / need)
        runway = np.where(keyless, FEATURE_CLIP, runway_s / greedy.lookahead_s)
    # a candidate of no hop (source and destination at one node) crosses nothing: key and
    # runway without limit, no loss; a missing one: 0, 0 and no signal
    key = np.where(hopped, key, np.where(alone, FEATURE_CLIP, 0.0))
    runway = np.where(hopped, runway, np.where(alone, FEATURE_CLIP, 0.0))
    loss = np.where(hopped, loss_db / LOSS_UNIT_DB, np.where(alone, 0.0, FEATURE_CLIP))
    latency = np.nan_to_num(latency_s / LATENCY_UNIT_S, nan=0.0)
    out = np.empty((n_flows, FLOW_FEATURES), dtype=np.float32)
    for block, values in enumerate((key, latency, runway, loss)):
        out[:, block * k_ : (block + 1) * k_] = np.minimum(values, FEATURE_CLIP).reshape(-1, k_)
    out[:, -1] = needs > 0
    return out


def _hop_codes(paths: Sequence | None, n_nodes: int) -> np.ndarray:
    """``flow * n_nodes**2 + lower * n_nodes + higher`` of every hop of each flow's path in
    ``paths`` (None, or a flow's None: no hop)."""
    nodes = [
        (k, np.asarray(p, dtype=np.int64))
        for k, p in enumerate(paths if paths is not None else ())
        if p is not None and len(p) > 1
    ]
    if not nodes:
        return np.zeros(0, dtype=np.int64)
    flow = np.concatenate([np.full(x.size - 1, k, dtype=np.int64) for k, x in nodes])
    u = np.concatenate([x[:-1] for _, x in nodes])
    v = np.concatenate([x[1:] for _, x in nodes])
    return flow * (n_nodes * n_nodes) + np.minimum(u, v) * n_nodes + np.maximum(u, v)


class FlowPolicyNet(torch.nn.Module):
    """FLOW_FEATURES -> ACTION_LOGITS logits (one per level of each of ACTION_HEADS: the
    path, the laser, the key relay, the data), the same weights for every flow: an input of
    (..., F * FLOW_FEATURES) gives (..., F * ACTION_LOGITS), flow by flow (RLlib's
    MultiDiscrete layout).
    ``outputs=1`` makes the value net PPO trains beside it (twin.control.train)."""

    def __init__(self, hidden=HIDDEN, outputs: int = ACTION_LOGITS) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        width = FLOW_FEATURES
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.Tanh()]
            width = h
        layers.append(torch.nn.Linear(width, outputs))
        self.body = torch.nn.Sequential(*layers)
        self.hidden = tuple(int(h) for h in hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # scaled to [0, 1]: features up to FEATURE_CLIP saturated the first tanh layer
        per_flow = obs.reshape(*obs.shape[:-1], -1, FLOW_FEATURES) / FEATURE_CLIP
        return self.body(per_flow).flatten(-2)


@contextlib.contextmanager
def _one_torch_thread():
    """Torch ops inside run on the calling thread alone. A batch of a few dozen flows is too
    small to split, and torch's second thread spins on the core that ``ai-sdqn``'s planner
    thread (OSQP) needs: on mega, ai-sdqn's minute of ticks took 1.00-1.04 s with one thread
    against 1.29-1.44 s with two; alone, a 20-flow inference took 36 us on one, 64 us on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class EdgePolicy:
    """A trained :class:`FlowPolicyNet` and where it came from (``meta``: scenario,
    iterations, returns; written by twin.control.train)."""

    def __init__(self, net: FlowPolicyNet, meta: dict | None = None) -> None:
        self.net = net.to(torch.float64).eval()
        self.meta = dict(meta or {})

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(F, ACTION_LOGITS) float64: each flow's logits (its candidates', its laser levels',
        its relay levels', its data levels'), one batched forward pass over the (F,
        FLOW_FEATURES) features."""
        if len(features) == 0:
            return np.zeros((0, ACTION_LOGITS))
        with torch.inference_mode(), _one_torch_thread():
            logits = self.net(torch.from_numpy(np.asarray(features, dtype=np.float64)))
            return logits.reshape(-1, ACTION_LOGITS).numpy()

    def choose(self, features: np.ndarray) -> np.ndarray:
        """(F, 4) int64: per flow the candidate it takes, its laser level (1: turbo), its
        relay level and its data level (1: spread), each its head's most likely one (module
        docstring)."""
        logits = self.logits(features)
        heads = zip(_HEAD_BOUNDS[:-1], _HEAD_BOUNDS[1:], strict=True)
        return np.stack([logits[:, a:b].argmax(axis=1) for a, b in heads], axis=1)

    def fingerprint(self) -> str:
        """The first 16 hex digits of the SHA-256 of the weights as :meth:`save` writes them
        (float32, in the state's order): what names the policy a run routed with
        (metrics.json's ``config.edge_policy``)."""
        digest = hashlib.sha256()
        for name, value in self.net.state_dict().items():
            digest.update(name.encode())
            digest.update(value.to(torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.to(torch.float32) for k, v in self.net.state_dict().items()}
        torch.save(
            {
                "hidden": list(self.net.hidden),
                "features": FLOW_FEATURES,
                "actions": list(ACTION_HEADS),
                "state": state,
                "meta": json.dumps(self.meta),
            },
            path,
        )
        return path

    @classmethod
    def load(cls, path: str | Path, *, earlier: bool = False) -> EdgePolicy:
        """A policy :meth:`save` wrote; ValueError naming the file for anything else.
        ``earlier``: a file of an earlier layout (this one's features and the first heads of
        ACTION_HEADS: the paths alone; the paths and the laser; or those and the relay) is
        taken too, the heads it lacks keeping their first level (:meth:`with_heads`): the
        start ``qntwin train --init`` may fine-tune."""
        path = Path(path)
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            # (files before the feature count: 7 features; before the laser: 3 paths alone)
            features, heads = saved.get("features", 7), tuple(saved.get("actions", [3]))
            earlier_layout = 0 < len(heads) < len(ACTION_HEADS) and (
                heads == ACTION_HEADS[: len(heads)]
            )
            if features != FLOW_FEATURES or not (
                heads == ACTION_HEADS or (earlier and earlier_layout)
            ):
                raise _OtherLayout(features, heads)
            net = FlowPolicyNet(saved["hidden"], outputs=sum(heads))
            net.load_state_dict(saved["state"])
            meta = json.loads(saved["meta"])
        except FileNotFoundError:
            raise ValueError(f"policy file {str(path)!r} not found") from None
        except _OtherLayout as err:
            features, heads = err.args
            raise ValueError(
                f"{str(path)!r} is an edge policy reading {features} features per flow and "
                f"choosing among {' x '.join(map(str, heads))} actions; this qntwin's "
                f"policies read {FLOW_FEATURES} (twin.control.drl.flow_features) and choose "
                f"among {K_CANDIDATES} paths x {LASER_LEVELS} laser levels x {RELAY_LEVELS} "
                f"relay levels x {DATA_LEVELS} data levels: train one with `qntwin train`"
            ) from None
        except Exception as err:
            # (torch's own message is long and suggests weights_only=False, which would run
            # the file's code: only its first line is shown)
            first = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
            raise ValueError(
                f"{str(path)!r} is not a qntwin edge policy ({type(err).__name__}: {first}); "
                "give a policy.pt that `qntwin train` wrote"
            ) from None
        if heads != ACTION_HEADS:
            return cls.with_heads(net, meta)
        return cls(net, meta)

    @classmethod
    def with_heads(cls, net: FlowPolicyNet, meta: dict | None = None) -> EdgePolicy:
        """A policy that decides the first heads of ACTION_HEADS as ``net`` (a policy of an
        earlier layout: its outputs are those heads' logits) does and keeps the first level
        of the heads it lacks (the terminals "on", the key and the data over the flow's
        path): their logits are (FIRST_LEVEL_LOGIT, 0, ...) whatever it sees, so that PPO,
        starting from it, explores the other levels a quarter of the time."""
        full = FlowPolicyNet(net.hidden)
        state = net.state_dict()
        last = f"body.{len(full.body) - 1}"
        given = net.body[-1].out_features
        with torch.no_grad():
            for name, value in full.state_dict().items():
                if name.startswith(last):
                    value.zero_()
                    value[:given] = state[name]
                else:
                    value.copy_(state[name])
            for start in _HEAD_BOUNDS[:-1]:
                if start >= given:
                    full.body[-1].bias[start] = FIRST_LEVEL_LOGIT
        return cls(full, meta)


class _OtherLayout(Exception):
    """A policy file of another layout (its feature count and action sizes)."""


@functools.cache
def shipped_policy() -> EdgePolicy:
    """The policy shipped with qntwin (trained by ``qntwin train``; its ``meta`` says how)."""
    with resources.as_file(resources.files("twin.control") / "data" / SHIPPED_POLICY) as path:
        return EdgePolicy.load(path)


class DrlOnly:
    """``drl-only``: every flow takes the candidate path, the laser level, the relay level and
    the data level the edge policy picks; no energy plan and no shield (``ai-sdqn`` adds both,
    twin.control.ai_sdqn.AiSdqn)."""

    name = "drl-only"
    plan_every_ticks = 0
    reads_key_fill = True

    def __init__(self, policy: EdgePolicy | None = None) -> None:
        self.policy = policy or shipped_policy()
        self.candidates = CandidatePaths()

    def decide(
        self,
        view: NetworkView,
        avoid: Sequence[str] = (),
        setting: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Decision:
        """The policy's paths; ``avoid``: stations to route around (``ai-sdqn``'s contact
        plan, twin.control.mpc.ContactPlan), ``setting``: (ground, satellite) hops to leave
        (its handover schedule, twin.control.mpc.HandoverSchedule.setting), see
        :func:`twin.control.baselines.route_around`."""
        candidates = self.candidates.build(view)
        choice = self.policy.choose(self.candidates.features(view, candidates))
        return self.candidates.decision(view, candidates, choice, avoid, setting)


def _spread_options(view: NetworkView, candidates, paths, spread, avoid: Sequence[str]) -> dict:
    """Per flow whose ``spread[k]`` level is 1 and that has a path, the distinct paths a split
    of it may take: its own path, then its other candidates, each joining two nodes or more
    and clear of the stations of ``avoid``."""
    flows = [k for k, level in enumerate(spread.tolist()) if level and paths[k] is not None]
    blocked = set(view.node_index.indices(avoid).tolist()) if avoid and flows else set()
    return {
        k: [
            tuple(p)
            for p in dict.fromkeys((paths[k], *candidates[k]))
            if p is not None and len(p) > 1 and blocked.isdisjoint(p)
        ]
        for k in flows
    }


def spread_relays(view: NetworkView, candidates, paths, spread, avoid: Sequence[str] = ()) -> tuple:
    """``Decision.relay`` of the flows whose relay level is "spread" (``spread[k]`` 1): the
    key a flow's pool is short of is split among its distinct candidate paths (and its own
    path, if another) in proportion to what each one's weakest hop holds in the fill report,
    so that each path gives what it can and the pool gets the sum; a path whose weakest hop
    holds nothing, or through a station of ``avoid``, gets no share. () for every other flow,
    and for one left with its own path alone (the key goes with its data); () overall when
    no flow spreads."""
    options = _spread_options(view, candidates, paths, spread, avoid)
    if not options:
        return ()
    every = [p for k in options for p in options[k]]
    held = iter(view.key_fill.weakest(every, initial=np.iinfo(np.int64).max))
    relay: list[tuple] = [()] * len(paths)
    for k in options:
        split = tuple((p, bits) for p in options[k] if (bits := int(next(held))) > 0)
        if split and [p for p, _ in split] != [tuple(paths[k])]:
            relay[k] = split
    return tuple(relay)


def spread_data(view: NetworkView, candidates, paths, spread, avoid: Sequence[str] = ()) -> tuple:
    """``Decision.data`` of the flows whose data level is "spread" (``spread[k]`` 1): the
    flow's data is split in equal parts among its own path and its other distinct candidate
    paths that meet its class's latency target, so that a handover gap on one of them takes
    its share alone (the candidates keep the flow's residency; a path through a station of
    ``avoid`` gets no share). () for every other flow, and for one left with its own path
    alone; () overall when no flow spreads."""
    options = _spread_options(view, candidates, paths, spread, avoid)
    if not options:
        return ()
    others = {k: [p for p in options[k] if p != tuple(paths[k])] for k in options}
    every = [p for k in others for p in others[k]]
    latency = iter(view.edges().paths_latency_s(every)) if every else iter(())
    data: list[tuple] = [()] * len(paths)
    for k in others:
        meets = requirements(view.flows[k].traffic_class).meets_latency
        fast = [p for p in others[k] if meets(float(next(latency)))]
        if fast:
            data[k] = tuple((p, 1) for p in (tuple(paths[k]), *fast))
    return tuple(data)
