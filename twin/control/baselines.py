"""Baseline controllers behind the engine's controller interface.

A controller sees a :class:`NetworkView` once per tick (the snapshot of G(t), the flows, the
time) and returns a :class:`Decision`: one path (node indices) per flow, or None. Later
controllers (MPC, DRL, shield) implement the same two-method protocol.

- ``static-sp``: the main paper's baseline (sections X-XI): the shortest path by propagation
  delay over the links that are up; no prediction, no key or weather awareness. A flow keeps
  its path while every hop is up; a path that breaks is replaced only once it is gone
  (break-before-make), and a flow without a path is searched for again every tick.
- ``dijkstra-distance``: SPARQ's baseline: the shortest path by physical distance over the
  links whose transmissivity reaches a threshold.
- ``key-aware``: a greedy, non-learning baseline for the control plane: the fastest path whose
  hops' key buffers hold what the flow needs (:class:`KeyAwareGreedy`), read from the nodes'
  fill reports (twin.control.telemetry).
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Protocol

import numpy as np
from scipy.sparse import csr_matrix

from twin.control.telemetry import KeyFill
from twin.network.routing import (
    NodeIndex,
    csr_from_edge_arrays,
    no_transit_mask,
    shortest_paths_between,
)
from twin.network.topology import Snapshot
from twin.network.traffic import Flow, demand_bits, requirements
from twin.units import NS_PER_S

__all__ = [
    "CONTROLLERS",
    "POLICY_CONTROLLERS",
    "Controller",
    "ControllerSpec",
    "Decision",
    "DijkstraDistance",
    "EdgeLookup",
    "KeyAwareGreedy",
    "NetworkView",
    "StaticShortestPath",
    "keyed_latency_graph",
    "latency_bounds",
    "make_controller",
    "path_edges",
    "route_around",
]

# SPARQ decides connectivity by a transmissivity threshold whose value our text copy of the
# paper lost. Assumption: 1e-4 end-to-end (40 dB), about where decoy BB84 with the scenario's
# detectors stops producing key; a scenario setting later.
SPARQ_TRANSMISSIVITY_MIN = 1e-4
# routing by latency weighs each link in whole ns (twin.network.routing, "Exact weights")
LATENCY_QUANTUM_S = 1e-9


@dataclass(frozen=True)
class NetworkView:
    """What a controller sees at one tick."""

    t_ns: int
    snapshot: Snapshot
    flows: Sequence[Flow]
    node_index: NodeIndex
    jurisdictions: dict[str, str | None]
    flow_endpoints: Sequence[tuple[int, int]]
    """(src, dst) node indices per flow"""
    edge_lookup: EdgeLookup | None = None
    """the snapshot's :class:`EdgeLookup` when the caller keeps one (None: built on demand)"""
    key_fill: KeyFill | None = None
    """the key buffers' fill levels at the end of the last closed tick, for a controller that
    reads them (``reads_key_fill``: twin.control.telemetry); None for the others"""
    battery_soc: np.ndarray | None = None
    """the satellites' battery charge (fraction of capacity, satellite order; Table 2's
    battery-state-of-charge), in the view a planning controller plans from; None otherwise"""
    plan: object | None = None
    """the cloud tier's latest plan, for a controller that plans (``plan_every_ticks > 0``:
    ``plan(view)`` every that many ticks, before that tick's ``decide``); None otherwise"""

    def edges(self) -> EdgeLookup:
        """The snapshot's :class:`EdgeLookup`: the given one, else one built on the first call
        and kept (a controller on an edge actor, given none, asks for it once per flow)."""
        return self._built_edges if self.edge_lookup is None else self.edge_lookup

    @functools.cached_property
    def _built_edges(self) -> EdgeLookup:
        # (cached_property writes the instance's __dict__, which a frozen dataclass allows)
        return EdgeLookup(self.snapshot)


@dataclass(frozen=True)
class Decision:
    paths: tuple[tuple[int, ...] | None, ...]
    """one path (node indices, src first) per flow, in flow order; None: no route"""
    notes: dict[str, float] = field(default_factory=dict)
    boost: tuple[bool, ...] = ()
    """the edge tier's laser power, per flow in flow order (empty: no flow's): True asks for
    the satellites of the flow's path to run their terminals at the turbo level over the
    tick after the one its path serves (QKD turbo mode, main paper sec. VIII.C; twin.engine
    applies it, the shield's ``battery_reserve`` rule may refuse it)"""

    relay: tuple[tuple[tuple[tuple[int, ...], int], ...], ...] = ()
    """the split ratios of the flows' key relays, per flow in flow order (empty: no flow's):
    (path, parts) pairs, the paths (node indices from the flow's source to its destination)
    over which the source relays the key its end-to-end pool is short of, each a share in
    proportion to its parts (a positive int; twin.network.nodes). A flow's empty tuple: its
    key is relayed over its path, with its data"""

    data: tuple[tuple[tuple[tuple[int, ...], int], ...], ...] = ()
    """the split ratios of the flows' data, per flow in flow order (empty: no flow's): (path,
    parts) pairs, the paths (node indices from the flow's source to its destination, no two
    alike) over which the source sends its data, each a share in proportion to its parts.
    One of them is the flow's path: its share follows the flow through its handovers; the
    others carry theirs while all their hops are up (twin.engine). A flow's empty tuple: all
    its data over its path"""

    def boosted(self, k: int) -> bool:
        """Whether flow ``k`` asks for its path's satellites at the turbo level."""
        return bool(self.boost[k]) if self.boost else False


class Controller(Protocol):
    """``decide`` once per tick, in time order, over the flows of the view (the engine's, or
    an edge site's share of them under the Ray runtime, actors.controllers: a controller's
    path for a flow must not depend on which other flows it decides with). A controller that
    plans (the cloud tier) sets ``plan_every_ticks`` > 0 and has ``plan(view)``; the
    baselines plan nothing (0; a controller without the attribute plans nothing either)."""

    name: str
    plan_every_ticks: int

    def decide(self, view: NetworkView) -> Decision: ...


def _route_all(
    view: NetworkView, csr, flows: Sequence[int] | None = None, bounds: Sequence | None = None
) -> Decision:
    """Shortest paths of every flow over ``csr`` (an undirected graph: the latency and
    distance graphs, :func:`csr_from_edge_arrays`' default), grouped by their forbidden
    jurisdictions.

    ``flows``: route only these flow indices (the others get None); a flow's path does not
    depend on which other flows are routed with it. ``bounds``: per flow index the weight its
    path is expected to have at most, or None (:func:`latency_bounds`; they speed the search
    and never change a path: twin.network.routing.shortest_paths_between).
    """
    paths: list[tuple[int, ...] | None] = [None] * len(view.flows)
    groups: dict[tuple[str, ...], list[int]] = {}
    for k in range(len(view.flows)) if flows is None else flows:
        groups.setdefault(tuple(sorted(view.flows[k].forbidden_jurisdictions)), []).append(k)
    for forbidden in sorted(groups):
        members = groups[forbidden]
        no_transit = (
            no_transit_mask(view.node_index, view.jurisdictions, forbidden) if forbidden else None
        )
        found = shortest_paths_between(
            csr,
            [view.flow_endpoints[k] for k in members],
            rank=view.node_index.rank,
            no_transit=no_transit,
            bounds=None if bounds is None else [bounds[k] for k in members],
            symmetric=True,
        )
        for k, path in zip(members, found, strict=True):
            paths[k] = tuple(path) if path is not None else None
    return Decision(paths=tuple(paths))


def latency_bounds(view: NetworkView, paths: Sequence) -> list[float | None]:
    """Per path an upper bound of the weight, in :func:`_latency_csr`'s quanta, of the
    shortest path between its ends: its latency over the links up in ``view`` plus a quantum
    per hop (each link's rounding) and one (the sum's); None for no path or one with a hop
    down. A bound for the graph of all up links; for a subgraph only if the path is in it."""
    latencies_s = view.edges().paths_latency_s(paths)
    return [
        x / LATENCY_QUANTUM_S + len(p) if math.isfinite(x) else None
        for p, x in zip(paths, latencies_s, strict=True)
    ]


def keyed_latency_graph(view: NetworkView, need: int):
    """The latency graph of ``view``'s up links whose buffers hold ``need`` bits; for need 0
    the snapshot's graph of all up links (``EdgeLookup.latency_graph``, no fill looked up)."""
    if need <= 0:
        return view.edges().latency_graph()
    return view.edges().keyed_latency_graph(view.key_fill, need)


def _latency_csr(snap: Snapshot, usable: np.ndarray):
    """The graph of ``snap``'s ``usable`` links weighted by propagation delay, in whole ns
    (twin.network.routing, "Exact weights")."""
    return csr_from_edge_arrays(
        snap.n_nodes, snap.a, snap.b, snap.latency_s, usable=usable,
        weight_quantum=LATENCY_QUANTUM_S,
    )  # fmt: skip


class StaticShortestPath:
    """Shortest propagation delay over the links that are up (main paper's baseline).

    Static: a flow keeps its path for as long as every hop of it stays up, and gets the
    current shortest path only when its path breaks (break-before-make). Re-optimizing every
    tick would move flows to a rising satellite before the old one sets, a gap-free handover
    that no static router performs. ``decide`` must therefore be called once per tick, in time
    order (the engine does).
    """

    name = "static-sp"
    plan_every_ticks = 0

    def __init__(self) -> None:
        self._previous: tuple[tuple[int, ...] | None, ...] = ()

    def decide(self, view: NetworkView) -> Decision:
        n_flows = len(view.flows)
        if len(self._previous) == n_flows:
            # a path whose every hop is still up is kept, so only the others need routing
            # (flows without a path and broken paths): the same decision as routing every
            # flow and then keeping the intact old paths, at a fraction of the searches
            intact = view.edges().paths_intact(self._previous)
            broken = [k for k in range(n_flows) if not intact[k]]
        else:
            intact = np.zeros(n_flows, dtype=bool)
            broken = list(range(n_flows))
        if broken:
            # flows whose source is cut off from their destination (all its links down, or
            # leading only into forbidden jurisdictions) get no path, as the search below
            # would find, without building this tick's adjacency for them
            lookup = view.edges()
            masks: dict[tuple[str, ...], np.ndarray | None] = {}
            searched = []
            for k in broken:
                forbidden = tuple(sorted(view.flows[k].forbidden_jurisdictions))
                if forbidden not in masks:
                    masks[forbidden] = (
                        no_transit_mask(view.node_index, view.jurisdictions, forbidden)
                        if forbidden
                        else None
                    )
                if not lookup.cut_off(*view.flow_endpoints[k], masks[forbidden]):
                    searched.append(k)
            broken = searched
        fresh: tuple[tuple[int, ...] | None, ...] = (None,) * n_flows
        if broken:
            fresh = _route_all(view, view.edges().latency_graph(), broken).paths
        kept = tuple(self._previous[k] if intact[k] else fresh[k] for k in range(n_flows))
        self._previous = kept
        return Decision(paths=kept)


class DijkstraDistance:
    """Shortest distance over links with transmissivity >= a threshold (SPARQ's baseline)."""

    name = "dijkstra-distance"
    plan_every_ticks = 0

    def __init__(self, transmissivity_min: float = SPARQ_TRANSMISSIVITY_MIN) -> None:
        self.transmissivity_min = transmissivity_min

    def decide(self, view: NetworkView) -> Decision:
        snap = view.snapshot
        usable = snap.up & (snap.transmittance >= self.transmissivity_min)
        csr = csr_from_edge_arrays(
            snap.n_nodes, snap.a, snap.b, snap.distance_m, usable=usable, weight_quantum=1e-3
        )
        return _route_all(view, csr)


# assumption: a flow's source keeps ~10 s of key demand in its end-to-end pool and tops it up
# by relays along its path (the engine's POOL_LOOKAHEAD_S), so a hop serves it while it holds
# that much; a path kept from the tick before stays while its hops hold half of it
KEY_LOOKAHEAD_S = 10.0
KEY_KEEP_FRACTION = 0.5
# key bits a rekey of the AES classes takes (main paper Table 1: AES-256 rekeyed every 10 s;
# Type-III AES-128 batch keys, one per batch of devices: 256 bits is an upper bound)
REKEY_BITS = 256


class KeyAwareGreedy:
    """Key-aware greedy routing: the fastest path whose every hop holds the key the flow needs.

    A strong non-learning baseline for the control plane (main paper sec. IV-B, the key
    continuity constraint; Table 2's key-buffer-fill-level): it reads the key buffers' fill
    levels (``reads_key_fill``: the last closed tick's report, twin.control.telemetry) and

    - gives a flow that consumes quantum key (Types I-III) the shortest-latency path over the
      up links whose buffers hold its need, ``KEY_LOOKAHEAD_S`` of its key demand (OTP: its
      data rate; AES classes: one rekey); without such a path, the fastest path over all up
      links (what static-sp would take: key may still come in time);
    - keeps a flow's path while every hop is up and holds ``KEY_KEEP_FRACTION`` of that need
      (no churn of handovers for a few bits); a Type-IV flow (post-quantum, no quantum key)
      keeps its path while it is up, as static-sp does.

    Greedy: each flow on its own, by the view of one tick, without prediction. A flow's path
    depends on G(t), the fill report and its own history only (so edge actors, each deciding
    some flows, decide as one controller does).
    """

    name = "key-aware"
    plan_every_ticks = 0
    reads_key_fill = True

    def __init__(
        self, lookahead_s: float = KEY_LOOKAHEAD_S, keep_fraction: float = KEY_KEEP_FRACTION
    ) -> None:
        if not (lookahead_s > 0 and 0 <= keep_fraction <= 1):
            raise ValueError(
                f"lookahead_s must be > 0 and keep_fraction within [0, 1], got {lookahead_s} "
                f"and {keep_fraction}"
            )
        self.lookahead_s = float(lookahead_s)
        self.keep_fraction = float(keep_fraction)
        self._previous: tuple[tuple[int, ...] | None, ...] = ()

    def need_bits(self, flow: Flow, t_ns: int) -> int:
        """Key bits a hop must hold to serve ``flow`` from ``t_ns``: ``lookahead_s`` of its
        demand under OTP, a rekey for the AES classes, 0 for post-quantum Type-IV."""
        mode = requirements(flow.traffic_class).security_mode
        if mode == "otp":
            rate_bps = demand_bits(flow, t_ns, NS_PER_S)  # the coming second's bits
            return int(rate_bps * self.lookahead_s)
        if mode == "pqc":
            return 0
        return REKEY_BITS

    def decide(
        self, view: NetworkView, setting: tuple[np.ndarray, np.ndarray] | None = None
    ) -> Decision:
        """Each flow's path. ``setting``: (ground, satellite) node pairs whose links the flows
        leave now (``mpc-only``'s handover schedule, twin.control.mpc.HandoverSchedule), see
        :func:`route_around`."""
        if view.key_fill is None:
            raise ValueError(
                f"{self.name} reads the key buffers' fill levels: the view must carry them "
                "(NetworkView.key_fill; the engine passes them to a controller whose "
                "reads_key_fill is True)"
            )
        n_flows = len(view.flows)
        previous = self._previous if len(self._previous) == n_flows else (None,) * n_flows
        intact = view.edges().paths_intact(previous)
        needs = [self.need_bits(f, view.t_ns) for f in view.flows]
        paths: list[tuple[int, ...] | None] = list(previous)
        todo: dict[int, list[int]] = {}  # need -> flows to route
        for k in range(n_flows):
            if intact[k] and (
                needs[k] == 0
                or view.key_fill.of_path(previous[k]).min(initial=np.iinfo(np.int64).max)
                >= self.keep_fraction * needs[k]
            ):
                continue
            todo.setdefault(needs[k], []).append(k)
        for need in sorted(todo):
            for k, path in self.fastest_keyed(view, todo[need], need).items():
                paths[k] = path
        if setting is not None:
            paths = route_around(view, paths, (), self, setting, previous)
        self._previous = tuple(paths)
        return Decision(paths=self._previous)

    @staticmethod
    def fastest_keyed(
        view: NetworkView,
        flows: Sequence[int],
        need: int,
        fastest: Sequence | None = None,
        bounds: Sequence | None = None,
    ) -> dict:
        """Flow index -> the fastest path over the up links whose buffers hold ``need`` bits,
        else (or for need 0) the fastest path over all up links; None without one.
        ``fastest``: every flow's fastest path over all up links, where the caller has them
        (the fallback is then not searched again); ``bounds``: as :func:`_route_all`'s."""
        found = _route_all(view, keyed_latency_graph(view, need), flows, bounds).paths
        paths = {k: found[k] for k in flows}
        unkeyed = [k for k in flows if paths[k] is None and need > 0]
        if unkeyed:  # no keyed path: the fastest path over all links
            if fastest is None:
                fastest = _route_all(view, view.edges().latency_graph(), unkeyed).paths
            paths.update((k, fastest[k]) for k in unkeyed)
        return paths


def _members(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """``np.isin(values, of)`` by a binary search of ``of`` sorted: the hop codes span
    flows * nodes**2, too wide for isin's table, and its sort of both arrays cost five times
    this (40 us on mega's tick)."""
    if of.size == 0:
        return np.zeros(values.shape, dtype=bool)
    of = np.sort(of)
    at = np.minimum(np.searchsorted(of, values), of.size - 1)
    return of[at] == values


def _crossing(paths, nodes: set, hops: dict) -> list[bool]:
    """Per path of ``paths``: whether it goes through a node of ``nodes`` or over a hop of
    ``hops`` (per satellite node, the set of ground nodes whose link to it counts). Plain
    set lookups: a tick has a few dozen paths, and only those through one of the satellites
    are walked hop by hop."""
    out = []
    for p in paths:
        if p is None or (nodes.isdisjoint(p) and hops.keys().isdisjoint(p)):
            out.append(False)
            continue
        out.append(
            not nodes.isdisjoint(p)
            or any(v in hops.get(u, ()) or u in hops.get(v, ()) for u, v in pairwise(p))
        )
    return out


def route_around(
    view: NetworkView,
    paths,
    avoid: Sequence[str],
    greedy: KeyAwareGreedy,
    setting: tuple[np.ndarray, np.ndarray] | None = None,
    current: Sequence | None = None,
) -> tuple:
    """``paths`` moved off the nodes of ``avoid`` (stations the contact plan leaves,
    twin.control.mpc.ContactPlan) and the (ground, satellite) node pairs of ``setting``
    (links the orbits take below their mask within the lead,
    twin.control.mpc.HandoverSchedule.setting; every link of the pair, RF too: the flow leaves
    the satellite while its optical link is up, a make-before-break handover).

    A path through them is replaced by the flow's ``current`` path (its last decision's)
    where that one is clear of them and up, unless the path chosen held the key the flow
    needs (``KeyAwareGreedy.keep_fraction`` of it, as key-aware keeps a path) and the current
    one does not: the flow stays put rather than search again every tick of the lead. Else by
    the fastest keyed path over the links that stay up without them, else the fastest such
    path (:meth:`KeyAwareGreedy.fastest_keyed`); a flow with no path around them keeps its
    own (an endpoint may be among the nodes, or they may be the only way through)."""
    snap = view.snapshot
    nodes = set(view.node_index.indices(avoid).tolist()) if avoid else set()
    hops: dict[int, set[int]] = {}  # satellite -> the ground ends of its setting links
    if setting is not None:
        for ground, satellite in zip(setting[0].tolist(), setting[1].tolist(), strict=True):
            hops.setdefault(satellite, set()).add(ground)
    if not nodes and not hops:
        return tuple(paths)
    through = [k for k, crosses in enumerate(_crossing(paths, nodes, hops)) if crosses]
    if not through:
        return tuple(paths)
    paths = list(paths)
    needs = {k: greedy.need_bits(view.flows[k], view.t_ns) for k in through}
    if current is not None:
        stay = [current[k] for k in through]
        crosses = _crossing(stay, nodes, hops)
        intact = view.edges().paths_intact(stay)
        top = np.iinfo(np.int64).max
        held = view.key_fill.weakest(stay + [paths[k] for k in through], initial=top)
        kept = set()
        for j, k in enumerate(through):
            enough = greedy.keep_fraction * needs[k]
            keyed_enough = held[j] >= enough or held[len(through) + j] < enough
            if stay[j] is not None and not crosses[j] and intact[j] and keyed_enough:
                paths[k] = stay[j]
                kept.add(k)
        through = [k for k in through if k not in kept]
        if not through:
            return tuple(paths)
    down = np.zeros(snap.a.size, dtype=bool)
    if nodes:
        down |= np.isin(snap.a, list(nodes)) | np.isin(snap.b, list(nodes))
    if hops:
        n = snap.n_nodes
        lower, upper = setting
        codes = np.unique(np.minimum(lower, upper) * n + np.maximum(lower, upper))
        down |= _members(np.minimum(snap.a, snap.b) * n + np.maximum(snap.a, snap.b), codes)
    around = replace(view, snapshot=replace(snap, up=snap.up & ~down), edge_lookup=None)
    for need in sorted({needs[k] for k in through}):
        members = [k for k in through if needs[k] == need]
        for k, path in KeyAwareGreedy.fastest_keyed(around, members, need).items():
            if path is not None:
                paths[k] = path
    return tuple(paths)


CONTROLLERS = {
    StaticShortestPath.name: StaticShortestPath,
    DijkstraDistance.name: DijkstraDistance,
    KeyAwareGreedy.name: KeyAwareGreedy,
}


def _imported(module: str, cls: str):
    """A factory that imports ``module`` when first called: the planning and learning
    controllers pull in OSQP, the topology or torch (and the shipped policy), which a run of a
    baseline need not load."""

    def make(*args):
        return getattr(importlib.import_module(module), cls)(*args)

    return make


CONTROLLERS["mpc-only"] = _imported("twin.control.mpc", "MpcOnly")
CONTROLLERS["drl-only"] = _imported("twin.control.drl", "DrlOnly")
CONTROLLERS["ai-sdqn"] = _imported("twin.control.ai_sdqn", "AiSdqn")


# the controllers that route with the DRL tier's edge policy (twin.control.drl)
POLICY_CONTROLLERS = ("drl-only", "ai-sdqn")


def make_controller(name: str, policy=None) -> Controller:
    """A controller by name; ValueError naming the known ones for an unknown name.
    ``policy``: the edge policy (twin.control.drl.EdgePolicy) that ``drl-only`` and
    ``ai-sdqn`` route with (None: the shipped one); ValueError for another controller."""
    if name not in CONTROLLERS:
        raise ValueError(f"unknown controller {name!r}; known: {', '.join(sorted(CONTROLLERS))}")
    if policy is None:
        return CONTROLLERS[name]()
    if name not in POLICY_CONTROLLERS:
        raise ValueError(
            f"controller {name!r} routes with no edge policy; a policy is for "
            f"{' and '.join(POLICY_CONTROLLERS)}"
        )
    return CONTROLLERS[name](policy)


@dataclass(frozen=True)
class ControllerSpec:
    """A controller by name with the edge policy it routes with, made where it runs: called,
    it makes the controller (a controller actor gets the spec, pickled, and makes its own)."""

    name: str
    policy: object = None

    def __call__(self) -> Controller:
        return make_controller(self.name, self.policy)


class EdgeLookup:
    """The fastest up edge of each node pair of one snapshot, for :func:`path_edges`.

    Built once per snapshot (a snapshot's edges are already sorted by pair, so only the runs
    of parallel edges are resolved) and shared by every caller of that tick. ``pair_keys``
    (P,) holds ``a * N + b`` of each pair with an up edge, ascending; ``edge[i]`` the index of
    its fastest up edge (the first, i.e. lowest kind, on a tie).
    """

    __slots__ = (
        "_ends", "_entry_fill", "_graph", "_latencies", "edge", "n_nodes", "pair_keys",
        "snapshot",
    )  # fmt: skip

    def __init__(self, snapshot: Snapshot) -> None:
        n = snapshot.n_nodes
        up = np.flatnonzero(snapshot.up)
        keys = snapshot.a[up].astype(np.int64) * n + snapshot.b[up]
        latency = snapshot.latency_s[up]
        if keys.size >= 256 and np.all(keys[1:] >= keys[:-1]) and not np.isnan(latency).any():
            # a snapshot's edges come sorted by pair: keep the fastest edge of each run of
            # equal keys (the first on a tie, as the stable sort below picks it) without
            # sorting (small graphs sort faster than this costs)
            new = np.empty(keys.size, dtype=bool)
            new[0] = True
            np.not_equal(keys[1:], keys[:-1], out=new[1:])
            if new.all():
                self.pair_keys, self.edge = keys, up
            else:
                start = np.flatnonzero(new)
                group = np.cumsum(new) - 1
                at_min = np.flatnonzero(latency == np.minimum.reduceat(latency, start)[group])
                group = group[at_min]
                first = np.empty(group.size, dtype=bool)
                first[0] = True
                np.not_equal(group[1:], group[:-1], out=first[1:])
                self.pair_keys, self.edge = keys[start], up[at_min[first]]
        else:
            # stable: among equal (pair, latency) the lower edge index comes first, as argmin's
            order = np.lexsort((latency, keys))
            keys, up = keys[order], up[order]
            first = np.ones(keys.size, dtype=bool)
            first[1:] = keys[1:] != keys[:-1]
            self.pair_keys = keys[first]
            self.edge = up[first]
        self.snapshot = snapshot
        self.n_nodes = n
        self._ends: tuple[np.ndarray, np.ndarray] | None = None
        self._graph = None
        # (key fill, (nnz,) its bits per graph entry, each entry's row, need -> keyed graph)
        self._entry_fill: tuple | None = None
        self._latencies: dict[tuple, float] = {}  # paths_latency_s's, per path

    def latency_graph(self):
        """The snapshot's up links weighted by latency (:func:`_latency_csr`), built when first
        asked for and shared by the tick's searches (the edge tier's, the shield's)."""
        if self._graph is None:
            self._graph = _latency_csr(self.snapshot, self.snapshot.up)
        return self._graph

    def keyed_latency_graph(self, key_fill, need: int):
        """:meth:`latency_graph` without the links whose buffers (``key_fill``, a
        twin.control.telemetry.KeyFill) hold less than ``need`` bits: the same matrix as
        ``_latency_csr`` of the keyed up links builds, taken from the entries of the graph
        of all up links. Exact because a node pair's parallel links share one key buffer, so
        a pair is keyed or not as a whole and keeps its fastest link's weight; the bits per
        entry are looked up once per fill report (the edge tier and the shield ask for a
        graph per need, up to four a tick on mega: 40 us each this way, 130 us built
        afresh); each graph is kept for the fill report it was made from (the shield's need
        is mostly one the edge tier asked for). The graphs are shared: not to be changed."""
        graph = self.latency_graph()
        if self._entry_fill is None or self._entry_fill[0] is not key_fill:
            rows = np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))
            self._entry_fill = (key_fill, key_fill.of_pairs(rows, graph.indices), rows, {})
        _, bits, rows, made = self._entry_fill
        if need in made:
            return made[need]
        keep = bits >= need
        indptr = np.zeros_like(graph.indptr)
        np.cumsum(np.bincount(rows[keep], minlength=graph.shape[0]), out=indptr[1:])
        keyed = csr_matrix((graph.data[keep], graph.indices[keep], indptr), shape=graph.shape)
        keyed.has_sorted_indices = True
        made[need] = keyed
        return keyed

    def path_edges(self, path: Sequence[int]) -> np.ndarray:
        """Edge indices along ``path`` (the fastest up edge for each hop; -1 where none)."""
        nodes = np.asarray(path, dtype=np.int64)
        if nodes.size < 2 or self.pair_keys.size == 0:
            return np.full(max(nodes.size - 1, 0), -1, dtype=np.int64)
        return self._edges(nodes[:-1], nodes[1:])

    def path_latency_s(self, path: Sequence[int]) -> float:
        """The propagation latency of ``path`` over the fastest up edge of each hop (inf when
        a hop has none)."""
        edges = self.path_edges(path)
        if np.any(edges < 0):
            return float("inf")
        return float(np.sum(self.snapshot.latency_s[edges]))

    def paths_latency_s(self, paths: Sequence[Sequence[int] | None]) -> list[float]:
        """:meth:`path_latency_s` of each path (inf for None), with one lookup for all hops
        (each path's sum as there, so the values are the same to the bit). Each distinct
        path is looked up once per snapshot: a tick asks for the same few dozen paths four
        times (the edge tier's bounds and features, the shield), mostly last tick's again."""
        keys = [None if p is None else p if isinstance(p, tuple) else tuple(p) for p in paths]
        memo = self._latencies
        new = list(dict.fromkeys(k for k in keys if k is not None and k not in memo))
        if new:
            memo.update(zip(new, self._latencies_s(new), strict=True))
        return [math.inf if k is None else memo[k] for k in keys]

    def _latencies_s(self, paths: Sequence[Sequence[int]]) -> list[float]:
        """:meth:`paths_latency_s` without the memo."""
        given, hops, edges = self._hops(paths)
        out = [math.inf] * len(paths)
        if not given:
            return out
        hops_a = np.asarray(hops)
        hopped = hops_a > 0
        starts = np.cumsum(hops_a) - hops_a
        sums = np.zeros(hops_a.size)
        broken = np.zeros(hops_a.size, dtype=bool)
        if edges.size:
            broken[hopped] = np.logical_or.reduceat(edges < 0, starts[hopped])
            latency = self.snapshot.latency_s[np.maximum(edges, 0)]
            # the paths of one hop count as the rows of a matrix: numpy sums each row as it
            # sums the row alone (np.sum, which path_latency_s takes: pairwise, vectorised,
            # not left to right), so the values are the same to the bit (tested)
            whole = hopped & ~broken
            for h in np.unique(hops_a[whole]).tolist():
                rows = np.flatnonzero(whole & (hops_a == h))
                sums[rows] = latency[starts[rows][:, None] + np.arange(h)].sum(axis=1)
        values = np.where(broken, math.inf, sums).tolist()
        for k, value in zip(given, values, strict=True):
            out[k] = value
        return out

    def hop_edges(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(H,) int64: the fastest up edge of each hop (u[i], v[i]) (-1 where none)."""
        if self.pair_keys.size == 0:
            return np.full(np.shape(u), -1, dtype=np.int64)
        return self._edges(np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64))

    def _edges(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Fastest up edge of each hop (u[i], v[i]) (-1 where none); needs pair_keys."""
        want = np.minimum(u, v) * self.n_nodes + np.maximum(u, v)
        at = np.searchsorted(self.pair_keys, want)
        inside = at < self.pair_keys.size
        hit = np.zeros(want.size, dtype=bool)
        hit[inside] = self.pair_keys[at[inside]] == want[inside]
        return np.where(hit, self.edge[np.minimum(at, self.edge.size - 1)], -1)

    def _hops(self, paths: Sequence[Sequence[int] | None]):
        """(indices of the non-None paths, their hop counts, the edge of every hop in order)."""
        given = [k for k, p in enumerate(paths) if p is not None]
        nodes = [np.asarray(paths[k], dtype=np.int64) for k in given]
        hops = [max(x.size - 1, 0) for x in nodes]
        if sum(hops) == 0 or self.pair_keys.size == 0:
            return given, hops, np.full(sum(hops), -1, dtype=np.int64)
        u = np.concatenate([x[:-1] for x in nodes])
        v = np.concatenate([x[1:] for x in nodes])
        return given, hops, self._edges(u, v)

    def paths_edges(self, paths: Sequence[Sequence[int] | None]) -> list[np.ndarray | None]:
        """:meth:`path_edges` of each path (None for None), with one lookup for all hops."""
        out: list[np.ndarray | None] = [None] * len(paths)
        given, hops, edges = self._hops(paths)
        at = 0
        for k, h in zip(given, hops, strict=True):
            out[k] = edges[at : at + h].copy()
            at += h
        return out

    def cut_off(self, src: int, dst: int, no_transit: np.ndarray | None, limit: int = 32) -> bool:
        """True when no path of up edges leads from ``src`` to ``dst`` and the part of the
        graph ``src`` reaches has at most ``limit`` nodes (False: a path exists, or the
        search gave up).

        ``no_transit`` (N,) bool: nodes a path may end at but not leave (``src`` excepted),
        as in :func:`twin.network.routing.shortest_paths_between`, which finds no path in
        exactly these cases. A site whose links are all down or lead only into forbidden
        jurisdictions is settled by a few neighbour lookups, where a Dijkstra needs the whole
        graph's adjacency.
        """
        if src == dst:
            return False
        if self._ends is None:
            self._ends = np.divmod(self.pair_keys, self.n_nodes)  # lower, upper end per pair
        lower, upper = self._ends
        seen = {src}
        frontier = [src]
        while frontier:
            u = frontier.pop()
            if u != src and no_transit is not None and no_transit[u]:
                continue  # a path may enter it, not leave it
            lo, hi = np.searchsorted(self.pair_keys, (u * self.n_nodes, (u + 1) * self.n_nodes))
            for v in (*upper[lo:hi].tolist(), *lower[upper == u].tolist()):
                if v == dst:
                    return False
                if v not in seen:
                    if len(seen) == limit:
                        return False
                    seen.add(v)
                    frontier.append(v)
        return True

    def paths_intact(self, paths: Sequence[Sequence[int] | None]) -> np.ndarray:
        """(P,) bool: whether each path has an up edge on every hop (False for None).

        ``path is not None and np.all(self.path_edges(path) >= 0)`` for each path, with one
        lookup for all their hops. A single-node path is intact.
        """
        out = np.zeros(len(paths), dtype=bool)
        given, hops, edges = self._hops(paths)
        if given:
            out[given] = True
            missed = np.repeat(np.arange(len(given)), hops)[edges < 0]
            out[np.asarray(given)[missed]] = False
        return out


def path_edges(
    snapshot: Snapshot, path: Sequence[int], lookup: EdgeLookup | None = None
) -> np.ndarray:
    """Edge indices along ``path`` (the fastest up edge for each hop; -1 where none).

    ``lookup``: the snapshot's :class:`EdgeLookup`, when the caller keeps one (it must be of
    this snapshot); otherwise one is built for this call.
    """
    if lookup is None:
        lookup = EdgeLookup(snapshot)
    elif lookup.snapshot is not snapshot:
        raise ValueError("lookup was built for another snapshot: pass EdgeLookup(snapshot)")
    return lookup.path_edges(path)
