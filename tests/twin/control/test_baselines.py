"""Baseline controllers on hand-made graphs."""

import numpy as np
import pytest

from twin.control.baselines import (
    DijkstraDistance,
    EdgeLookup,
    NetworkView,
    StaticShortestPath,
    path_edges,
)
from twin.network.routing import NodeIndex
from twin.network.topology import EdgeKind, Snapshot
from twin.network.traffic import Flow, TrafficClass

NAMES = ("a", "b", "c")


def snapshot(edges, t_ns=0):
    """edges: (a, b, latency_s, up, transmittance) with a < b."""
    arr = np.array(edges, dtype=float).reshape(-1, 5)
    n = arr.shape[0]
    return Snapshot(
        t_ns=t_ns,
        node_names=NAMES,
        a=arr[:, 0].astype(np.int64),
        b=arr[:, 1].astype(np.int64),
        kind=np.full(n, EdgeKind.FIBER, dtype=np.int8),
        transmittance=arr[:, 4],
        latency_s=arr[:, 2],
        capacity_bps=np.full(n, 1e9),
        skr_bps=np.full(n, 1e3),
        fidelity=np.ones(n),
        up=arr[:, 3].astype(bool),
        weather_loss_db=np.zeros(n),
        distance_m=arr[:, 2] * 2e8,
    )


def view(snap):
    flows = [Flow("f", "a", "b", TrafficClass.TYPE_IV, 1000)]
    return NetworkView(
        t_ns=snap.t_ns, snapshot=snap, flows=flows, node_index=NodeIndex.from_names(NAMES),
        jurisdictions={}, flow_endpoints=[(0, 1)],
    )  # fmt: skip


def test_static_sp_keeps_its_path_until_it_breaks():
    controller = StaticShortestPath()
    # a-b direct (2 ms) is the only path at first
    first = controller.decide(view(snapshot([(0, 1, 2e-3, 1, 0.5)])))
    assert first.paths == ((0, 1),)
    # a faster detour a-c-b appears: a static router keeps the working direct path
    both = [(0, 1, 2e-3, 1, 0.5), (0, 2, 0.5e-3, 1, 0.5), (1, 2, 0.5e-3, 1, 0.5)]
    assert controller.decide(view(snapshot(both))).paths == ((0, 1),)
    # the direct link fails: only now does it move (break-before-make)
    broken = [(0, 1, 2e-3, 0, 0.5), (0, 2, 0.5e-3, 1, 0.5), (1, 2, 0.5e-3, 1, 0.5)]
    assert controller.decide(view(snapshot(broken))).paths == ((0, 2, 1),)


def test_a_fresh_static_sp_takes_the_fastest_path():
    both = [(0, 1, 2e-3, 1, 0.5), (0, 2, 0.5e-3, 1, 0.5), (1, 2, 0.5e-3, 1, 0.5)]
    assert StaticShortestPath().decide(view(snapshot(both))).paths == ((0, 2, 1),)


def test_dijkstra_distance_skips_links_below_the_transmissivity_threshold():
    edges = [(0, 1, 1e-3, 1, 1e-6), (0, 2, 2e-3, 1, 0.5), (1, 2, 2e-3, 1, 0.5)]
    assert DijkstraDistance().decide(view(snapshot(edges))).paths == ((0, 2, 1),)
    no_route = [(0, 1, 1e-3, 1, 1e-6)]
    assert DijkstraDistance().decide(view(snapshot(no_route))).paths == (None,)


def test_edge_lookup_picks_the_fastest_up_edge_of_each_hop_first_on_ties():
    # parallel edges per pair (sorted by (a, b)), some down, a latency tie on (0, 1)
    snap = snapshot([
        (0, 1, 3e-3, 1, 1.0), (0, 1, 2e-3, 1, 1.0), (0, 1, 2e-3, 1, 1.0), (0, 1, 1e-3, 0, 1.0),
        (0, 2, 5e-3, 0, 1.0),
        (1, 2, 4e-3, 1, 1.0), (1, 2, 6e-3, 1, 1.0),
    ])  # fmt: skip
    lookup = EdgeLookup(snap)
    rng = np.random.default_rng(1)
    for path in [[0, 1, 2], [2, 1, 0], [0, 2], [2, 0, 1], [1], [], *rng.integers(0, 3, (20, 5))]:
        expected = np.full(max(len(path) - 1, 0), -1, dtype=np.int64)
        for h in range(len(path) - 1):  # the rule, by brute force
            lo, hi = sorted((path[h], path[h + 1]))
            candidates = np.flatnonzero((snap.a == lo) & (snap.b == hi) & snap.up)
            if candidates.size:
                expected[h] = candidates[np.argmin(snap.latency_s[candidates])]
        np.testing.assert_array_equal(lookup.path_edges(path), expected)
        np.testing.assert_array_equal(path_edges(snap, path), expected)
    np.testing.assert_array_equal(lookup.path_edges([0, 1, 2]), [1, 5])
    none_up = snapshot([(0, 1, 1e-3, 0, 1.0)])
    np.testing.assert_array_equal(EdgeLookup(none_up).path_edges([0, 1, 2]), [-1, -1])
    with pytest.raises(ValueError, match="another snapshot"):
        path_edges(snapshot([(0, 1, 1e-3, 1, 1.0)]), [0, 1], lookup)


def random_snapshot(rng, names, n_edges, t_ns=0):
    """A snapshot over ``names`` with parallel edges, latency ties and down links."""
    n = len(names)
    a = rng.integers(0, n, n_edges)
    b = rng.integers(0, n, n_edges)
    a, b = np.minimum(a, b), np.maximum(a, b)
    a, b = a[a < b], b[a < b]
    kind = rng.choice([EdgeKind.FIBER, EdgeKind.FSO_GROUND_SPACE, EdgeKind.RF_KA], a.size)
    order = np.lexsort((kind, b, a))
    a, b, kind = a[order], b[order], kind[order].astype(np.int8)
    m = a.size
    latency = rng.choice([1e-3, 2e-3, 3e-3], m)
    return Snapshot(
        t_ns=t_ns, node_names=tuple(names), a=a, b=b, kind=kind,
        transmittance=np.full(m, 0.5), latency_s=latency, capacity_bps=np.full(m, 1e9),
        skr_bps=np.full(m, 1e3), fidelity=np.ones(m), up=rng.random(m) < 0.8,
        weather_loss_db=np.zeros(m), distance_m=latency * 2e8,
    )  # fmt: skip


def test_edge_lookup_of_a_large_snapshot_follows_the_rule():
    # above a few hundred up edges the lookup skips its sort (a snapshot is sorted by pair):
    # the same rule, checked by brute force, and the batch forms agree with path_edges
    rng = np.random.default_rng(2)
    names = [f"n{k:03d}" for k in range(60)]
    snap = random_snapshot(rng, names, 2500)
    assert snap.up.sum() >= 256 and np.any(snap.a[1:] == snap.a[:-1])
    lookup = EdgeLookup(snap)
    up = np.flatnonzero(snap.up)
    keys = snap.a[up] * len(names) + snap.b[up]
    np.testing.assert_array_equal(lookup.pair_keys, np.unique(keys))
    for key, edge in zip(lookup.pair_keys.tolist(), lookup.edge.tolist(), strict=True):
        candidates = up[keys == key]
        assert edge == candidates[np.argmin(snap.latency_s[candidates])]  # first on a tie
    paths = [None, [3], [], *[rng.integers(0, 60, int(rng.integers(2, 7))) for _ in range(300)]]
    batch = lookup.paths_edges(paths)
    intact = lookup.paths_intact(paths)
    for path, edges, ok in zip(paths, batch, intact, strict=True):
        if path is None:
            assert edges is None and not ok
            continue
        np.testing.assert_array_equal(edges, lookup.path_edges(path))
        assert ok == bool(np.all(lookup.path_edges(path) >= 0))
    assert intact.any() and not intact[3:].all()
    # batched latencies are path_latency_s's to the bit, long intact paths included (numpy
    # sums more than 8 terms pairwise: the batch must sum each path as path_latency_s does)
    lower, upper = np.divmod(lookup.pair_keys, len(names))
    walks = []
    for start in range(10):
        walk = [start]
        while len(walk) < 20:
            ahead = np.concatenate([upper[lower == walk[-1]], lower[upper == walk[-1]]])
            walk.append(int(ahead[rng.integers(ahead.size)]))
        walks.append(walk)
    latencies = lookup.paths_latency_s(paths + walks)
    assert latencies[0] == np.inf and all(np.isfinite(latencies[-10:]))
    for path, latency in zip(paths[1:] + walks, latencies[1:], strict=True):
        assert latency == lookup.path_latency_s(path)
    empty = EdgeLookup(random_snapshot(rng, names, 0))
    assert empty.paths_intact([[0, 1], [2], None]).tolist() == [False, True, False]


@pytest.mark.parametrize("n_edges", [40, 2500])
def test_a_keyed_graph_taken_from_the_graph_of_all_up_links_is_the_one_built_afresh(n_edges):
    """EdgeLookup.keyed_latency_graph filters the all-up graph's entries by each pair's key:
    the same matrix, to the entry, as the keyed links' graph built from the snapshot (parallel
    links, latency ties, down links, pairs without a buffer; every threshold of the fill);
    a new fill report is looked up afresh."""
    from twin.control.baselines import _latency_csr
    from twin.control.telemetry import KeyFill

    rng = np.random.default_rng(n_edges)
    names = [f"n{k:03d}" for k in range(60)]
    snap = random_snapshot(rng, names, n_edges)
    lookup = EdgeLookup(snap)
    codes = np.unique(snap.a * len(names) + snap.b)
    for draw in range(2):
        held = rng.random(codes.size) < 0.9  # some pairs have no buffer: no key
        fill = KeyFill(draw, len(names), codes[held], rng.integers(0, 100, held.sum()))
        for need in (1, 30, 70, 99, 100):
            want = _latency_csr(snap, snap.up & (fill.of_pairs(snap.a, snap.b) >= need))
            got = lookup.keyed_latency_graph(fill, need)
            assert got.shape == want.shape and got.has_sorted_indices
            np.testing.assert_array_equal(got.indptr, want.indptr)
            np.testing.assert_array_equal(got.indices, want.indices)
            np.testing.assert_array_equal(got.data, want.data)
    assert lookup.keyed_latency_graph(fill, 100).nnz == 0


def test_cut_off_says_no_path_exactly_where_the_search_finds_none():
    # the shortcut static-sp takes before building a tick's adjacency: with room to explore
    # the whole graph it agrees with shortest_paths_between (no_transit included) on every
    # pair; with little room it may give up (False) but never calls a reachable pair cut off
    from twin.network.routing import csr_from_edge_arrays, shortest_paths_between

    rng = np.random.default_rng(6)
    names = [f"n{k:02d}" for k in range(40)]
    outcomes = set()
    for trial in range(12):
        snap = random_snapshot(rng, names, 45, t_ns=trial)
        lookup = EdgeLookup(snap)
        csr = csr_from_edge_arrays(
            snap.n_nodes, snap.a, snap.b, snap.latency_s, usable=snap.up, weight_quantum=1e-9
        )
        blocked = rng.random(40) < 0.25 if trial % 2 else None
        pairs = [(s, d) for s in range(0, 40, 3) for d in range(40)]
        found = shortest_paths_between(csr, pairs, no_transit=blocked)
        for (s, d), path in zip(pairs, found, strict=True):
            exact = lookup.cut_off(s, d, blocked, limit=40)
            assert exact == (path is None), (trial, s, d)
            assert not lookup.cut_off(s, d, blocked, limit=2) or path is None
            outcomes.add(exact)
    assert outcomes == {True, False}


@pytest.mark.parametrize("n_edges", [90, 25])
def test_static_sp_routes_only_broken_paths_and_decides_as_routing_every_flow(n_edges):
    # it searches only for flows whose path broke (or that had none, unless cut off); the
    # decision must be the one of routing every flow each tick and keeping the intact old
    # paths (25 edges over 30 nodes leave many flows cut off)
    from twin.control.baselines import _route_all
    from twin.network.routing import csr_from_edge_arrays

    rng = np.random.default_rng(4)
    names = [f"n{k:02d}" for k in range(30)]
    index = NodeIndex.from_names(names)
    juris = {name: rng.choice(["DE", "CH", "FR"]) for name in names[:12]}
    ends = [tuple(int(x) for x in rng.choice(30, 2, replace=False)) for _ in range(12)]
    flows = [
        Flow(f"f{k}", names[s], names[d], TrafficClass.TYPE_IV, 1000,
             forbidden_jurisdictions=("CH",) if k % 3 == 0 else ())
        for k, (s, d) in enumerate(ends)
    ]  # fmt: skip
    controller = StaticShortestPath()
    previous = None
    changed = kept = unrouted = 0
    for tick in range(60):
        snap = random_snapshot(rng, names, n_edges, t_ns=tick)
        v = NetworkView(
            t_ns=tick, snapshot=snap, flows=flows, node_index=index, jurisdictions=juris,
            flow_endpoints=ends, edge_lookup=EdgeLookup(snap) if tick % 2 else None,
        )  # fmt: skip
        got = controller.decide(v).paths
        csr = csr_from_edge_arrays(
            snap.n_nodes, snap.a, snap.b, snap.latency_s, usable=snap.up, weight_quantum=1e-9
        )
        fresh = _route_all(v, csr).paths
        if previous is None:
            expected = fresh
        else:
            expected = tuple(
                old if old is not None and np.all(path_edges(snap, old) >= 0) else new
                for old, new in zip(previous, fresh, strict=True)
            )
            kept += sum(
                e == p and e != f for e, p, f in zip(expected, previous, fresh, strict=True)
            )
        changed += sum(g != f for g, f in zip(got, fresh, strict=True))
        unrouted += sum(g is None for g in got)
        assert got == expected, tick
        previous = expected
    if n_edges == 90:
        assert kept > 0 and changed > 0  # both branches taken
    else:
        assert unrouted > 100  # the cut-off shortcut taken
