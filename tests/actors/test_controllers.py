"""Controller actors: edge actors per edge site, the cloud planner, and their recovery."""

import dataclasses

import numpy as np
import pytest

from twin.control.baselines import NetworkView, StaticShortestPath
from twin.network.routing import NodeIndex
from twin.network.topology import TopologyModel
from twin.scenarios import load_scenario


def test_each_flow_is_served_by_the_edge_site_of_its_source():
    from actors.controllers import edge_sites

    scenario = load_scenario("case-grid-eclipse")
    topology = TopologyModel(scenario)
    flows = list(scenario.flows())
    sites = edge_sites(topology, flows)
    assert sorted(k for members in sites.values() for k in members) == list(range(len(flows)))
    region = {s.name: s.cluster or s.jurisdiction for s in scenario.sites}
    assert len(sites) == 2
    for site, members in sites.items():
        assert {f"region:{region[flows[k].src_site]}" for k in members} == {site}


def test_edge_sites_spread_over_k_actors_largest_first_to_the_least_loaded():
    from actors.controllers import edge_groups

    sites = {"region:A": [0, 3], "region:B": [1], "region:C": [2, 4, 5]}
    assert edge_groups(sites, None) == [
        (["region:A"], [0, 3]), (["region:B"], [1]), (["region:C"], [2, 4, 5])
    ]  # fmt: skip
    assert edge_groups(sites, 2) == [
        (["region:C"], [2, 4, 5]),
        (["region:A", "region:B"], [0, 1, 3]),
    ]
    assert edge_groups(sites, 1) == [(["region:A", "region:B", "region:C"], list(range(6)))]
    assert len(edge_groups(sites, 5)) == 3  # no actor without a site
    with pytest.raises(ValueError, match="edge_actors must be a whole number >= 1, got 0"):
        edge_groups(sites, 0)


class PlanningShortestPath(StaticShortestPath):
    """static-sp with a cloud plan that changes its decisions: every 5 ticks the plan counts
    the plans made so far, and a flow whose index plus that count is a multiple of 3 gets no
    path. A plan arriving a tick early or late, or a planner restored wrong, shows."""

    name = "planning-test"
    plan_every_ticks = 5

    def __init__(self) -> None:
        super().__init__()
        self.plans = 0

    def plan(self, view):
        self.plans += 1
        return {"plans": self.plans, "t_ns": view.t_ns}

    def decide(self, view):
        decision = super().decide(view)
        assert view.plan is None or view.plan["t_ns"] <= view.t_ns
        count = 0 if view.plan is None else view.plan["plans"]
        return dataclasses.replace(
            decision,
            paths=tuple(
                None if (sum(map(ord, flow.name)) + count) % 3 == 0 else path
                for flow, path in zip(view.flows, decision.paths, strict=True)
            ),
        )


def _views(scenario, n_ticks):
    topology = TopologyModel(scenario)
    flows = list(scenario.flows())
    index = {name: i for i, name in enumerate(topology.node_names)}
    for tick in range(n_ticks):
        snap = topology.snapshot(tick * 10_000_000_000)
        yield (
            topology,
            flows,
            NetworkView(
                t_ns=snap.t_ns,
                snapshot=snap,
                flows=flows,
                node_index=NodeIndex.from_names(topology.node_names),
                jurisdictions={s.name: s.jurisdiction for s in scenario.sites},
                flow_endpoints=[(index[f.src_site], index[f.dst_site]) for f in flows],
            ),
        )


def test_the_cloud_planner_and_edge_actors_decide_as_one_controller_even_when_lost(ray_local):
    # case-grid-eclipse: two edge sites; a plan every 5 ticks, collected 5 ticks later as the
    # engine does; the planner is killed at tick 7 (noticed when the plan asked at tick 10 is
    # collected), an edge actor at tick 13 and the other while checkpointed after tick 16
    # (checkpoints every 4 ticks): same paths as one controller
    import ray

    from actors.controllers import RayControllers

    scenario = load_scenario("case-grid-eclipse")
    local = PlanningShortestPath()
    expected, got = [], []
    tier = None
    try:
        for tick, (topology, flows, view) in enumerate(_views(scenario, 18)):
            if tier is None:
                tier = RayControllers(
                    PlanningShortestPath, topology=topology, flows=flows,
                    jurisdictions=view.jurisdictions, flow_endpoints=view.flow_endpoints,
                    run_id="test-tiers", checkpoint_every=4, edge_actors="per-site",
                )  # fmt: skip
                assert tier.cloud is not None and len(tier.edges) == 2
                take_checkpoint = tier._checkpoint

                def checkpoint_losing_an_actor(tier=tier, take=take_checkpoint):
                    # at the fourth checkpoint (after tick 16) the second edge actor is lost
                    # just as its state is asked for: recovered, then asked again
                    if tier._ticks == 16:
                        ray.kill(list(tier.edges.values())[1].handle)
                    take()

                tier._checkpoint = checkpoint_losing_an_actor
            # both planned as the engine plans: every plan_every_ticks ticks, before deciding,
            # the plan asked for a period earlier taking effect
            if tick == 0:
                plan = tier_plan = next_plan = tier_next = None
            if tick % 5 == 0:
                plan, next_plan = next_plan, local.plan(view)
            expected.append(local.decide(dataclasses.replace(view, plan=plan)).paths)
            if tick == 7:
                ray.kill(tier.cloud.handle)
            if tick == 13:
                ray.kill(next(iter(tier.edges.values())).handle)
            if tick % tier.plan_every_ticks == 0:
                if tier_next is not None:
                    tier_plan = tier_next()
                tier_next = tier.submit_plan(view)
            got.append(tier.decide(dataclasses.replace(view, plan=tier_plan)).paths)
        restarts = tier.restarts
    finally:
        if tier is not None:
            tier.close()
    assert restarts == 3
    assert any(p is None for paths in expected for p in paths)  # the plan mattered
    assert any(p is not None for paths in expected for p in paths)
    assert got == expected


def test_auto_gives_an_edge_actor_per_site_when_the_cpus_allow():
    from actors.controllers import auto_edge_actors

    assert auto_edge_actors(8, 16) is None  # per site
    assert auto_edge_actors(8, 2) == 1 and auto_edge_actors(8, 7) == 3
    assert auto_edge_actors(3, 6) is None and auto_edge_actors(0, 1) is None


def test_an_unknown_controller_fails_in_the_driver_naming_the_known_ones(ray_local):
    from actors.controllers import RayControllers

    scenario = load_scenario("small")
    with pytest.raises(ValueError, match="unknown controller 'nope'; known: "):
        RayControllers("nope", topology=TopologyModel(scenario), flows=[], jurisdictions={},
                       flow_endpoints=[], run_id="x")  # fmt: skip


# -- G(t), commands and replies on the edge actors' bus ------------------------------------------


def test_a_packed_snapshot_comes_back_exactly_and_travels_as_plain_values():
    import msgpack

    from actors.controllers import pack_snapshot, unpack_snapshot

    topology = TopologyModel(load_scenario("small"))
    for snap in (topology.snapshot(0), topology.snapshot(7 * 10**9)):
        packed = pack_snapshot(snap)
        assert msgpack.unpackb(msgpack.packb(packed)) == packed  # Ray and the bus pass it as is
        back = unpack_snapshot(packed, snap.node_names)
        for field in dataclasses.fields(snap):
            a, b = getattr(snap, field.name), getattr(back, field.name)
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            else:
                assert a == b, field.name
    no_positions = dataclasses.replace(snap, satellite_positions_m=None)
    assert (
        unpack_snapshot(pack_snapshot(no_positions), snap.node_names).satellite_positions_m is None
    )
    short = pack_snapshot(snap)
    short[3] = short[3][:-1]  # the kind array one edge short
    with pytest.raises(ValueError, match="G\\(t\\) array kind of \\d+ bytes; \\d+ edges need"):
        unpack_snapshot(short, snap.node_names)


def test_a_packed_fill_report_comes_back_with_its_trend():
    # the edge tier's runway feature reads each buffer's trend: the edge actors must get the
    # engine's, to the bit, or the Ray runtime routes otherwise
    from actors.controllers import pack_key_fill, unpack_key_fill
    from twin.control.telemetry import KeyFill

    codes = np.array([1, 2, 5], dtype=np.int64)  # (0, 1), (0, 2), (1, 2) of 3 nodes
    before = KeyFill(10**9, 3, codes, np.array([10, 20, 30], dtype=np.int64))
    report = KeyFill.following(before, 3 * 10**9, codes, np.array([13, 0, 31], dtype=np.int64))
    back = unpack_key_fill(pack_key_fill(report), 3)
    assert back.t_ns == report.t_ns and back.n_nodes == 3
    for field in ("codes", "bits", "trend_bps"):
        assert np.array_equal(getattr(back, field), getattr(report, field))
    assert back.trend_bps.tolist() == [1.5, -10.0, 0.5]
    assert unpack_key_fill(pack_key_fill(None), 3) is None


def test_a_malformed_decide_command_or_reply_is_refused_naming_the_actor():
    from actors.bus import BusError
    from actors.controllers import (
        _decide_arguments,
        decide_command,
        decide_result,
        pack_snapshot,
    )

    packed = pack_snapshot(TopologyModel(load_scenario("small")).snapshot(0))
    assert _decide_arguments(decide_command(packed), 3, 1) == (packed, None)
    fill = [7, bytes(16), bytes(16), bytes(16)]
    assert _decide_arguments(decide_command(packed, fill), 3, 1) == (packed, fill)
    for command in (
        ["decide", *packed],
        ["plan", *packed, None],
        ["decide", 1.5, *packed[1:], None],
        ["decide", packed[0], "a", *packed[2:], None],
        ["decide", *packed[:-1], [1.0], None],
        ["decide", *packed, [7, bytes(16), bytes(8), bytes(16)]],
        ["decide", *packed, [7, bytes(12), bytes(12), bytes(12)]],
        ["decide", *packed, [7.0, bytes(8), bytes(8), bytes(8)]],
        ["decide", *packed, [7, bytes(16), bytes(16)]],  # no trend
        ["decide", *packed, [7, bytes(16), bytes(16), bytes(8)]],
        ["decide", *packed, [7, bytes(16), bytes(16), [0.0, 1.0]]],
        ["decide", *packed, "fill"],
    ):
        with pytest.raises(BusError, match="edge actor 1: command 3"):
            _decide_arguments(command, 3, 1)
    split = [[[[0, 3, 2], 7], [[0, 2], 1]], []]
    for boost, relay, data in (([], [], []), ([True, False], [], []), ([], split, []),
                               ([], [], split), ([], split, split)):  # fmt: skip
        reply = [[[0, 4, 2], None], boost, relay, data]
        assert decide_result(reply, 2, 9, 2, 5) == reply
    for paths in ({}, [[0, 1.0], None], [(0, 1), None], ["path", None], [[0, 1]], [[0, 5], None],
                  [[-1, 2], None]):  # fmt: skip
        with pytest.raises(BusError, match="edge actor 2's reply to command 9 must be .paths, b"):
            decide_result([paths, [], [], []], 2, 9, 2, 5)
    with pytest.raises(BusError, match="must be .paths, boost, relay, data. with a list of 2 p"):
        decide_result([[[0, 4, 2], None], [], []], 2, 9, 2, 5)  # (the reply before the data)
    for boost in ([True], [1, 0], None, [True, False, True]):
        with pytest.raises(BusError, match="its boost must be an empty list or 2 bools"):
            decide_result([[[0, 4, 2], None], boost, [], []], 2, 9, 2, 5)
    for bad in ([[]], None, [[[[0, 2], 0]], []], [[[[0, 2], 1.5]], []], [[[[0, 9], 1]], []],
                [[[0, 2], 1], []], [[[[0, 2]]], []]):  # fmt: skip
        with pytest.raises(BusError, match="its relay must be an empty list or per flow a list"):
            decide_result([[[0, 4, 2], None], [], bad, []], 2, 9, 2, 5)
        with pytest.raises(BusError, match="its data must be an empty list or per flow a list"):
            decide_result([[[0, 4, 2], None], [], [], bad], 2, 9, 2, 5)


def test_a_packed_snapshot_holding_what_g_t_cannot_hold_is_refused():
    from actors.controllers import pack_snapshot, unpack_snapshot

    snap = TopologyModel(load_scenario("small")).snapshot(0)
    n = len(snap.node_names)
    for field, value, words in [
        ("a", -1, "edge ends must be node indices below"),
        ("b", n, "edge ends must be node indices below"),
        ("kind", 7, "edge kinds must be EdgeKind values"),
        ("up", 2, "array up must hold bools"),
    ]:
        arrays = {f: getattr(snap, f).copy() for f in ("a", "b", "kind", "up")}
        arrays[field].view(np.uint8 if field == "up" else arrays[field].dtype)[0] = value
        with pytest.raises(ValueError, match=words):
            unpack_snapshot(pack_snapshot(dataclasses.replace(snap, **arrays)), snap.node_names)
    packed = pack_snapshot(snap)
    packed[-1] = packed[-1][:-8]
    with pytest.raises(ValueError, match="satellite positions of \\d+ bytes"):
        unpack_snapshot(packed, snap.node_names)


def test_a_host_refuses_links_that_name_no_node(ray_local):
    import ray

    from actors.bus import BusError
    from actors.host import pack_links
    from actors.runtime import ray_engine

    engine = ray_engine(load_scenario("small"), placement_mode="sharded", hosts=2)
    try:
        host = engine.nodes.hosts[0]  # (not serving: no tick yet)
        for a, skr in [(-1, 1.0), (10**6, 1.0), (0, float("nan"))]:
            with pytest.raises(ray.exceptions.RayTaskError) as caught:
                ray.get(host.environment.remote(0, pack_links([a], [1], [skr])))
            assert isinstance(caught.value.cause, BusError)
            assert "links must join node indices below" in str(caught.value.cause)
    finally:
        engine.close()
