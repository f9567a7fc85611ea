"""Baseline controllers on hand-made graphs."""

import numpy as np

from twin.control.baselines import DijkstraDistance, NetworkView, StaticShortestPath
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
