"""The shield (main paper sec. VII-C) and an independent audit of what the network executed.

The shield is a deterministic layer between a controller's decision and the network: every
path a controller proposes passes it before it becomes a forwarding update, and a path that
breaks a rule is rejected and replaced. Its rules are the constraints of sec. IV-B that a path
decides, in priority order (a rule is enforced only as far as the rules before it allow):

1. ``residency`` (regulatory): no flow transits a site of a jurisdiction it forbids (data
   residency, e.g. GDPR). Never relaxed: without a compliant path the flow gets no path. The
   paths a flow's key relay is split over (``Decision.relay``) are held to it too, as a
   trusted relay holds the key it passes on: one that transits such a site is dropped from
   the split (counted; with none left the key goes with the data).
2. ``key_continuity`` (safety): a Type-I flow (one-time pad) is not put on a path with a hop
   whose key buffer holds less than ``critical_key_s`` of its demand (the paper's rule: "IF
   Key_Buffer < Critical_Threshold AND Traffic_Class == Type-I THEN REJECT"), read from the
   last closed tick's fill report (Table 2's key-buffer-fill-level; twin.control.telemetry).
3. ``latency_slo``: a Type-I path meets its latency target (Table 1, < 1 ms; the SLO
   constraint of sec. IV-B).

The other paths a flow's data is split over (``Decision.data``) are held to the three path
rules as the flow's path is: one that breaks a rule is dropped from the split (counted under
the first it breaks; its share goes to the flow's other paths, so dropping it always meets
the rules), and the share named for the flow's path follows the path the shield leaves it.

A rejected path is replaced by the fastest path that meets all three path rules; when none exists
the last rule is relaxed (the proposal is kept if it meets the first two, else the fastest path
that does), then the second. A rule that no path can meet at that moment is *unsatisfiable*
(counted apart: no action could have met it, so it is no rejection and no violation); the
shield cannot make key or a short path appear.

4. ``battery_reserve`` (sec. IV-B's battery reserve): the edge tier's laser power
   (``Decision.boost``: a flow asking for its path's satellites at the QKD turbo level) is
   refused for a flow whose path crosses a satellite whose battery holds less than its reserve
   plus ``TURBO_SOC_MARGIN`` of capacity (the margin the MPC tier's turbo mode keeps,
   twin.control.mpc), read from the last closed tick's charge (Table 2's
   battery-state-of-charge; before any is reported, a run's first decisions, every boost is
   refused). Not boosting always meets it, so it is never unsatisfiable; it judges the boost
   of the path the rules above leave, and moves no path.

Paths do not touch the battery reserve otherwise (a satellite's base load follows its visible
links, not the flows routed over them), and the memory-capacity constraint is not an action's
to break (entanglement requests that find a memory full fail on their own; twin.engine).

:func:`audit` checks executed paths against the same rules with code of its own (a plain
Dijkstra of scipy over the view's graph, not the routing module the shield searches with), so
``shield_violations`` in metrics.json measures every controller, shielded or not: a violation
is a path that broke a rule while some path met that rule and every rule before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from twin.control.baselines import (
    LATENCY_QUANTUM_S,
    Decision,
    NetworkView,
    _route_all,
    keyed_latency_graph,
)
from twin.control.mpc import TURBO_SOC_MARGIN
from twin.network.routing import no_transit_mask
from twin.network.traffic import Flow, TrafficClass, demand_bits, requirements
from twin.units import NS_PER_S

__all__ = [
    "RULES",
    "Shield",
    "ShieldCounts",
    "audit",
    "boosted_satellites",
    "critical_key_bits",
]

RULES = ("residency", "key_continuity", "latency_slo", "battery_reserve")
# assumption: the rule's Critical_Threshold (sec. VII-C gives none): a hop is key-starved for
# a Type-I flow once its buffer holds less than one second of the flow's one-time-pad demand
CRITICAL_KEY_S = 1.0


def critical_key_bits(flow: Flow, t_ns: int, critical_key_s: float = CRITICAL_KEY_S) -> int:
    """The key a hop must hold for ``flow`` at ``t_ns`` (0: the flow has no key rule): for a
    Type-I flow, ``critical_key_s`` of its one-time-pad demand (the coming second's bits)."""
    if flow.traffic_class is not TrafficClass.TYPE_I:
        return 0
    return int(demand_bits(flow, t_ns, NS_PER_S) * critical_key_s)


@dataclass
class ShieldCounts:
    """Per rule: paths rejected, and moments when no path could meet the rule."""

    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    unsatisfiable: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))


def boosted_satellites(path, sat0: int) -> np.ndarray:
    """The satellites (ascending indices from the first; G(t)'s nodes from ``sat0`` on)
    ``path`` crosses: those a boost of its flow runs at the turbo level."""
    if path is None:
        return np.zeros(0, dtype=np.int64)
    nodes = np.asarray(path, dtype=np.int64)
    return np.unique(nodes[nodes >= sat0] - sat0)


class Shield:
    """The deterministic safety layer of sec. VII-C over a decision (module docstring).
    ``reserve_fraction``: the satellites' battery reserve, fraction of capacity (the
    scenario's; the ``battery_reserve`` rule keeps boosts ``TURBO_SOC_MARGIN`` above it)."""

    def __init__(
        self, critical_key_s: float = CRITICAL_KEY_S, reserve_fraction: float = 0.0
    ) -> None:
        if not critical_key_s >= 0:
            raise ValueError(f"critical_key_s must be >= 0, got {critical_key_s}")
        if not 0 <= reserve_fraction <= 1:
            raise ValueError(f"reserve_fraction must be in [0, 1], got {reserve_fraction}")
        self.critical_key_s = float(critical_key_s)
        self.reserve_fraction = float(reserve_fraction)
        self.counts = ShieldCounts()

    def filter(self, view: NetworkView, decision: Decision, *, count: bool = True) -> Decision:
        """The decision with every path that breaks a rule replaced (module docstring); counts
        the rejections and the unsatisfiable rules in :attr:`counts` (unless ``count`` is
        False: a decision that serves no tick, the one bounding a run's last)."""
        if view.key_fill is None:
            raise ValueError(
                "the shield reads the key buffers' fill levels: the view must carry them "
                "(NetworkView.key_fill)"
            )
        kept = self.counts
        if not count:
            self.counts = ShieldCounts()
        paths = list(decision.paths)
        graphs = _KeyedGraphs(view)
        # what the rules read of the proposals, looked up for all at once
        held = view.key_fill.weakest(paths, initial=np.iinfo(np.int64).max)
        latencies_s = view.edges().paths_latency_s(paths)
        for k, flow in enumerate(view.flows):
            paths[k] = self._shield(view, k, flow, paths[k], graphs, held[k], latencies_s[k])
        boost = self._boosts(view, decision, paths)
        relay = self._relays(view, decision)
        data = self._data(view, decision, paths)
        self.counts = kept
        return Decision(
            paths=tuple(paths), notes=decision.notes, boost=boost, relay=relay, data=data
        )

    def _data(self, view: NetworkView, decision: Decision, paths) -> tuple:
        """The decision's data splits for the shielded ``paths``: the share named for a
        flow's proposed path goes to the path it got (added to that path's share if the split
        names it too); the other paths that break a path rule are dropped (module docstring);
        a flow left with its path alone, or with none, sends all its data over it."""
        if not any(decision.data):
            return decision.data
        data = list(decision.data)
        for k, split in enumerate(decision.data):
            if not split:
                continue
            flow, proposed = view.flows[k], decision.paths[k]
            if paths[k] is None or proposed is None:
                data[k] = ()
                continue
            need = critical_key_bits(flow, view.t_ns, self.critical_key_s)
            shares: dict[tuple, int] = {}
            for path, parts in split:
                path = tuple(path)
                if path == tuple(proposed):
                    path = tuple(paths[k])
                else:
                    broken = _broken(view, flow, path, need)
                    if broken:
                        self.counts.rejected[next(r for r in RULES if r in broken)] += 1
                        continue
                shares[path] = shares.get(path, 0) + int(parts)
            data[k] = tuple(shares.items()) if len(shares) > 1 else ()
        return tuple(data)

    def _relays(self, view: NetworkView, decision: Decision) -> tuple:
        """The decision's key relay splits without the paths that transit a forbidden
        jurisdiction (``residency``: a trusted relay holds the key it passes on in the clear);
        a flow left with none relays over its path."""
        if not any(decision.relay):
            return decision.relay
        relay = list(decision.relay)
        for k, split in enumerate(decision.relay):
            flow = view.flows[k]
            if not (split and flow.forbidden_jurisdictions):
                continue
            kept = tuple((path, parts) for path, parts in split
                         if not _transits(view, flow, path))  # fmt: skip
            self.counts.rejected["residency"] += len(split) - len(kept)
            relay[k] = kept
        return tuple(relay)

    def _boosts(self, view: NetworkView, decision: Decision, paths) -> tuple[bool, ...]:
        """The decision's boosts that the ``battery_reserve`` rule lets through, for the
        shielded ``paths`` (module docstring)."""
        if not any(decision.boost):
            return decision.boost
        floor = self.reserve_fraction + TURBO_SOC_MARGIN
        soc = view.battery_soc
        boost = list(decision.boost)
        for k, wanted in enumerate(decision.boost):
            if not wanted or paths[k] is None:
                continue
            # no charge reported yet (a run's first decisions): nothing to check it against
            if soc is None:
                refused = True
            else:
                satellites = boosted_satellites(paths[k], view.snapshot.n_nodes - soc.size)
                refused = bool(np.any(soc[satellites] < floor))
            if refused:
                boost[k] = False
                self.counts.rejected["battery_reserve"] += 1
        return tuple(boost)

    def _shield(
        self, view: NetworkView, k: int, flow: Flow, proposed, graphs: _KeyedGraphs,
        held: int, latency_s: float,
    ):  # fmt: skip
        """The path flow ``k`` gets for ``proposed``, whose weakest hop holds ``held`` bits
        and whose latency is ``latency_s``."""
        need = critical_key_bits(flow, view.t_ns, self.critical_key_s)
        broken = _broken(view, flow, proposed, need, held=held, latency_s=latency_s)
        if not broken:
            return proposed
        if (
            broken == {"latency_slo"}
            and math.isfinite(latency_s)
            and graphs.out_of_reach(view.flow_endpoints[k], flow)
        ):
            # keyed, compliant and up, too slow where nothing is fast enough: the search
            # below would find a keyed path as slow and keep this one (a Type-I flow between
            # distant sites, every tick)
            self.counts.unsatisfiable["latency_slo"] += 1
            return proposed
        best = _route_all(view, graphs.holding(need), [k]).paths[k]
        if best is not None and not _broken(view, flow, best, need):
            chosen = best  # meets all three path rules
        else:
            self.counts.unsatisfiable["latency_slo"] += flow.traffic_class is TrafficClass.TYPE_I
            if best is not None:  # keyed, too slow: the proposal if it is keyed, else this
                chosen = proposed if broken == {"latency_slo"} else best
            else:  # no keyed path: key continuity relaxed as well
                if need > 0:
                    self.counts.unsatisfiable["key_continuity"] += 1
                if "residency" not in broken:
                    chosen = proposed
                else:
                    chosen = _route_all(view, graphs.holding(0), [k]).paths[k]
        for rule in broken - _broken(view, flow, chosen, need):
            self.counts.rejected[rule] += 1
        return chosen


class _KeyedGraphs:
    """The latency graphs of one view's up links whose buffers hold a given key, each built
    when first asked for (the shield asks for one per need of the flows it replaces)."""

    def __init__(self, view: NetworkView) -> None:
        self.view = view
        self._graphs: dict[int, object] = {}

    def holding(self, need: int):
        """The graph of the up links holding ``need`` bits (all up links for 0)."""
        if need not in self._graphs:
            self._graphs[need] = keyed_latency_graph(self.view, need)
        return self._graphs[need]

    def out_of_reach(self, ends: tuple[int, int], flow: Flow) -> bool:
        """Whether no path of up links (keys and jurisdictions aside) joins ``ends`` within
        ``flow``'s latency target: a Dijkstra that stops at the target. The graph's weights
        are whole ns, each rounded by at most half of one, so the search runs half a ns per
        node past the target: a path it does not reach is slower than the target."""
        target_s = requirements(flow.traffic_class).latency_target_s
        if not math.isfinite(target_s):
            return False
        graph = self.holding(0)
        limit = target_s / LATENCY_QUANTUM_S + 0.5 * graph.shape[0]
        src, dst = ends
        return not dijkstra(graph, directed=True, indices=src, limit=limit)[dst] <= limit


def _transits(view: NetworkView, flow: Flow, path) -> bool:
    """Whether ``path`` passes through (not ends at) a site of a forbidden jurisdiction."""
    forbidden = {j.upper() for j in flow.forbidden_jurisdictions}
    names = view.node_index.names
    for node in path[1:-1]:
        j = view.jurisdictions.get(names[node])
        if j is not None and str(j).upper() in forbidden:
            return True
    return False


def _broken(
    view: NetworkView, flow: Flow, path, need: int, *, held: int | None = None,
    latency_s: float | None = None,
) -> set[str]:  # fmt: skip
    """The rules ``path`` breaks (none for no path: a flow without a path breaks no rule).
    ``held`` (its weakest hop's bits) and ``latency_s``: the path's, where the caller looked
    them up already."""
    if path is None:
        return set()
    broken = set()
    if flow.forbidden_jurisdictions and _transits(view, flow, path):
        broken.add("residency")
    if need > 0:
        if held is None:
            held = view.key_fill.of_path(path).min(initial=need)
        if held < need:
            broken.add("key_continuity")
    if flow.traffic_class is TrafficClass.TYPE_I:
        if latency_s is None:
            latency_s = view.edges().path_latency_s(path)
        if not requirements(flow.traffic_class).meets_latency(latency_s):
            broken.add("latency_slo")
    return broken


def audit(
    view: NetworkView, paths: Sequence, critical_key_s: float = CRITICAL_KEY_S,
    boost: Sequence[bool] = (), reserve_fraction: float = 0.0, relay: Sequence = (),
    data: Sequence = (),
) -> dict[str, int]:  # fmt: skip
    """Per rule, how many of ``paths`` (one per flow of ``view``) break it while some path
    met it and every rule before it (module docstring). Independent of :class:`Shield`: hops
    are matched to the view's up edges by node pair here, and the graph is searched by scipy's
    Dijkstra over float latencies, not by the routing module. ``boost``: the flows' executed
    laser power (``Decision.boost``); a boost that runs a satellite of its path below
    ``reserve_fraction`` of charge (the reserve itself: the shield's margin is its own
    caution) breaks ``battery_reserve``, which no boost at all always meets. ``relay``: the
    flows' key relay splits (``Decision.relay``); each relay path through a forbidden
    jurisdiction breaks ``residency`` (leaving it out of the split always meets the rule).
    ``data``: the flows' data splits (``Decision.data``); each of a flow's paths there but
    its own that breaks a path rule is a violation of it (leaving it out always meets it)."""
    violations = dict.fromkeys(RULES, 0)
    snap = view.snapshot
    names = view.node_index.names
    graph = None
    soc = view.battery_soc

    def crosses(path, forbidden: set[str]) -> bool:
        """Whether ``path`` passes through (not ends at) a site of ``forbidden``."""
        return any(
            str(view.jurisdictions.get(names[v]) or "").upper() in forbidden for v in path[1:-1]
        )

    for k, split in enumerate(relay):
        forbidden = {j.upper() for j in view.flows[k].forbidden_jurisdictions}
        for route, _ in split if forbidden else ():
            violations["residency"] += crosses(route, forbidden)
    for k, split in enumerate(data):
        flow = view.flows[k]
        forbidden = {j.upper() for j in flow.forbidden_jurisdictions}
        for route, _ in split:
            if paths[k] is not None and tuple(route) == tuple(paths[k]):
                continue
            if forbidden and crosses(route, forbidden):
                violations["residency"] += 1
            elif flow.traffic_class is TrafficClass.TYPE_I:
                if graph is None:
                    graph = _AuditGraph(snap, view.key_fill.of_pairs(snap.a, snap.b))
                latency_s, starved = graph.path(
                    route, critical_key_bits(flow, view.t_ns, critical_key_s)
                )
                if not math.isfinite(latency_s):
                    continue  # (a hop down: the path carried no share)
                if starved:
                    violations["key_continuity"] += 1
                elif latency_s > requirements(flow.traffic_class).latency_target_s:
                    violations["latency_slo"] += 1
    for k, flow in enumerate(view.flows):
        path = paths[k]
        if path is None:
            continue
        if boost and boost[k] and soc is not None:
            sat0 = snap.n_nodes - soc.size
            if any(soc[v - sat0] < reserve_fraction for v in path if v >= sat0):
                violations["battery_reserve"] += 1
        forbidden = {j.upper() for j in flow.forbidden_jurisdictions}
        if forbidden and crosses(path, forbidden):
            violations["residency"] += 1
            continue  # the other rules are judged among compliant paths only
        if flow.traffic_class is not TrafficClass.TYPE_I:
            continue
        if graph is None:
            graph = _AuditGraph(snap, view.key_fill.of_pairs(snap.a, snap.b))
        need = critical_key_bits(flow, view.t_ns, critical_key_s)
        latency_s, starved = graph.path(path, need)
        target = requirements(flow.traffic_class).latency_target_s
        if not starved and latency_s <= target:
            continue
        no_transit = no_transit_mask(view.node_index, view.jurisdictions, forbidden)
        src, dst = view.flow_endpoints[k]
        if starved:  # was any path keyed?
            violations["key_continuity"] += graph.keyed_path_exists(need, no_transit, src, dst)
        elif (
            graph.within(src, dst, target)
            and graph.fastest(need, no_transit, src, dst, limit_s=target) <= target
        ):
            violations["latency_slo"] += 1
    return violations


class _AuditGraph:
    """The view's up edges for the audit: per node pair the fastest edge's latency and the
    key its buffer holds, built once per audited decision."""

    def __init__(self, snap, fill_bits: np.ndarray) -> None:
        n = snap.n_nodes
        up = np.flatnonzero(snap.up)
        lo = np.minimum(snap.a[up], snap.b[up]).astype(np.int64)
        hi = np.maximum(snap.a[up], snap.b[up]).astype(np.int64)
        pair, latency, bits = lo * n + hi, snap.latency_s[up], fill_bits[up]
        if not np.all(pair[1:] >= pair[:-1]):  # (G(t) lists its edges by pair already)
            order = np.argsort(pair, kind="stable")
            pair, latency, bits = pair[order], latency[order], bits[order]
        start = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if pair.size else pair
        # each pair's least latency (a pair's edges share one key buffer: its bits)
        latency = np.minimum.reduceat(latency, start) if pair.size else latency
        self.pair, self.latency_s, self.bits = pair[start], latency, bits[start]
        self.lo, self.hi = np.divmod(self.pair, n)
        self.n = n
        self._any_path = None  # the graph of every up pair, both ways, for bounded searches
        self._components: dict[int, np.ndarray] = {}  # need -> keyed graph's component labels

    def within(self, src: int, dst: int, limit_s: float) -> bool:
        """Whether any path of up edges (keys and jurisdictions aside) joins ``src`` and
        ``dst`` within ``limit_s``: none does, then no path meeting more rules does either."""
        if self._any_path is None:
            self._any_path = coo_matrix(
                (self.latency_s, (self.lo, self.hi)), shape=(self.n, self.n)
            ).tocsr()
        reach = dijkstra(self._any_path, directed=False, indices=src, limit=limit_s)
        return bool(reach[dst] <= limit_s)

    def path(self, path, need: int) -> tuple[float, bool]:
        """(the path's latency over its fastest up edges, inf on a missing hop; whether a hop
        holds less than ``need`` bits)."""
        nodes = np.asarray(path, dtype=np.int64)
        want = np.minimum(nodes[:-1], nodes[1:]) * self.n + np.maximum(nodes[:-1], nodes[1:])
        at = np.minimum(np.searchsorted(self.pair, want), max(self.pair.size - 1, 0))
        if self.pair.size == 0 or np.any(self.pair[at] != want):
            return np.inf, True
        return float(np.sum(self.latency_s[at])), bool(np.any(self.bits[at] < need))

    def keyed_path_exists(self, need: int, no_transit, src: int, dst: int) -> bool:
        """Whether a path over pairs holding ``need`` bits joins ``src`` and ``dst`` without
        leaving a ``no_transit`` node other than ``src``."""
        if no_transit.any():
            return bool(np.isfinite(self.fastest(need, no_transit, src, dst)))
        # no jurisdiction in the way: the keyed graph's components, once per need
        labels = self._components.get(need)
        if labels is None:
            keyed = self.bits >= need
            graph = coo_matrix(
                (np.ones(int(keyed.sum())), (self.lo[keyed], self.hi[keyed])),
                shape=(self.n, self.n),
            )
            labels = connected_components(graph, directed=False)[1]
            self._components[need] = labels
        return bool(labels[src] == labels[dst])

    def fastest(self, need: int, no_transit, src: int, dst: int, limit_s: float = np.inf) -> float:
        """The least latency from ``src`` to ``dst`` over the pairs holding ``need`` bits,
        never leaving a ``no_transit`` node other than ``src`` (inf: none within
        ``limit_s``)."""
        leaves = ~no_transit
        leaves[src] = True
        keyed = self.bits >= need
        forward = keyed & leaves[self.lo]  # lo -> hi leaves lo
        backward = keyed & leaves[self.hi]
        rows = np.concatenate([self.lo[forward], self.hi[backward]])
        cols = np.concatenate([self.hi[forward], self.lo[backward]])
        weights = np.concatenate([self.latency_s[forward], self.latency_s[backward]])
        graph = coo_matrix((weights, (rows, cols)), shape=(self.n, self.n)).tocsr()
        return float(dijkstra(graph, directed=True, indices=src, limit=limit_s)[dst])
