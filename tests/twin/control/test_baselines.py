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
