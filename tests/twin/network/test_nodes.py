"""Node state and the trusted relay as messages (twin.network.nodes), and the engine around it.

Unit level: a hand-built :class:`NodeSet` over four nodes, key put in its link buffers by
``environment`` from a tiny stand-in snapshot, the relay protocol driven round by round
(forwarding update -> reserve -> grant -> commit). Engine level: the ``small`` and
``clear-sky`` scenarios with the nodes spread over partitions, with every delivery duplicated
and shuffled, and the engine's message trace checked against the protocol.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest

from twin.engine import Engine
from twin.metrics import compute_metrics, metrics_json
from twin.network.keys import BufferState, KeyBuffer
from twin.network.messages import MessageKind, delivery_order
from twin.network.nodes import (
    CONTROLLER,
    KeySettings,
    NodeGroup,
    NodeSet,
    forwarding_update,
    split_bits,
)
from twin.network.topology import EdgeKind
from twin.network.traffic import Flow, TrafficClass
from twin.scenarios import load_scenario
from twin.units import NS_PER_S

NAMES = ("a", "b", "c", "d")
DT_NS = NS_PER_S  # 1 s ticks: a link rate of N bit/s puts exactly N bits in its buffer per tick
SETTINGS = KeySettings(
    link_capacity_bits=10_000,
    link_threshold_bits=100,
    pool_capacity_bits=5_000,
    pool_threshold_bits=50,
    max_age_ns=3_600 * NS_PER_S,
    pool_lookahead_s=1,  # one tick: a source asks for demand + pool threshold
    pool_refill_below_s=1,  # and does so whenever it holds less than that
    memory_q_max=2,
    memory_t2_s=1.0,
)
FIBER = int(EdgeKind.FIBER)
# a Type-I source asks for 1 tick of demand plus the pool threshold: 100 + 50 bits
TYPE_I_WANT = 100 + SETTINGS.pool_threshold_bits
# a Type-II source's first tick needs one AES-256 key: 256 + 50 bits
TYPE_II_WANT = 256 + SETTINGS.pool_threshold_bits


def otp(name, src, dst, rate_bps=100):
    return Flow(name, src, dst, TrafficClass.TYPE_I, rate_bps)


def telemetry(name, src, dst, rate_bps=1_000):
    return Flow(name, src, dst, TrafficClass.TYPE_II, rate_bps)


def make_nodes(flows, names=NAMES, settings=SETTINGS, partitions=None):
    """A NodeSet holding every node (``partitions`` None) or a NodeGroup over ``partitions``."""
    kwargs = dict(
        dt_ns=DT_NS,
        settings=settings,
        sat_offset=len(names),  # no satellites
        batteries={},
        quantum_edge_kinds=(FIBER,),
    )
    if partitions is None:
        return NodeSet(names, range(len(names)), flows, **kwargs)
    return NodeGroup(names, partitions, flows, **kwargs)


def snapshot(links, names=NAMES):
    """The fields ``NodeSet.environment`` reads: one up fibre edge per ``(u, v) -> bit/s``."""
    index = {n: i for i, n in enumerate(names)}
    pairs = sorted(links)
    return SimpleNamespace(
        a=np.array([index[u] for u, _ in pairs], dtype=np.int64),
        b=np.array([index[v] for _, v in pairs], dtype=np.int64),
        kind=np.full(len(pairs), FIBER, dtype=np.int64),
        up=np.ones(len(pairs), dtype=bool),
        skr_bps=np.array([float(links[p]) for p in pairs]),
    )


class Controller:
    """Hands out the controller's sequence numbers (a node handles each (src, seq) once)."""

    def __init__(self):
        self.seq = {}  # per destination, as every sender numbers its channels

    def update(self, flow, path, hop_ns, t_ns, gap_ns=0):
        latency_s = sum(hop_ns) / NS_PER_S
        seq = self.seq.get(flow.src_site, 0)
        envelope = forwarding_update(
            flow.name, flow.src_site, path, hop_ns, latency_s, gap_ns, t_ns, seq
        )
        self.seq[flow.src_site] = seq + 1
        return envelope


def rounds(nodes, inbox, *, each=None):
    """Deliver until no envelope is left; returns every batch delivered, in order."""
    batches = []
    while inbox:
        batches.append(list(inbox))
        if each is not None:
            inbox = each(inbox)
        inbox = nodes.deliver(inbox)
    return batches


def relay_steps(batches, step):
    return [
        e
        for batch in batches
        for e in batch
        if e.kind is MessageKind.KEY_RELAY and e.payload["step"] == step
    ]


def fingerprint(nodes):
    """Everything the node state holds that a message could change, comparable with ==."""
    buffers = {}
    for key, buffer in sorted(nodes.link_buffers().items()) + sorted(nodes.pools().items()):
        buffers[key] = (
            buffer.ledger(),
            buffer.state,
            buffer.buffered_chunks(),
            buffer.refused_requests,
            buffer.refused_bits,
        )
    sets = nodes.sets if isinstance(nodes, NodeGroup) else [nodes]
    per_node = {
        name: (
            dict(node.reserved_bits),
            dict(node.pool_pending_bits),
            sorted(node._relays),
            dict(node.flow_table),
        )
        for s in sets
        for name, node in sorted(s.nodes.items())
    }
    flows = {k: dataclasses.asdict(v) for k, v in sorted(nodes.flow_states().items())}
    return buffers, per_node, flows, nodes.link_bits


# --- ownership ---------------------------------------------------------------------------------


def test_owner_is_the_endpoint_earlier_in_node_order_not_alphabetical():
    names = ("d", "b", "a", "c")  # node order is not name order
    nodes = make_nodes([], names=names)
    for i, u in enumerate(names):
        for j, v in enumerate(names):
            if i != j:
                assert nodes.owner(u, v) == nodes.owner(v, u) == names[min(i, j)]
    # environment puts each link's key at its owner, whichever way round the edge is written
    nodes.environment(snapshot({("a", "d"): 10, ("c", "b"): 20}, names=names), 0)
    buffers = nodes.link_buffers()
    assert sorted(buffers) == [("b", "c"), ("d", "a")]
    assert buffers[("d", "a")].buffered_bits == 10
    assert buffers[("b", "c")].buffered_bits == 20
    assert nodes.link_available_bits("a", "d") == 10 and nodes.link_available_bits("c", "b") == 20
    assert nodes.link_bits == 30
    # a node set hosting only "a" holds no buffer: both links belong to nodes it does not host
    part = NodeSet(
        names,
        [2],
        [],
        dt_ns=DT_NS,
        settings=SETTINGS,
        sat_offset=4,
        batteries={},
        quantum_edge_kinds=(FIBER,),
    )
    part.environment(snapshot({("a", "d"): 10, ("c", "b"): 20}, names=names), 0)
    assert part.link_buffers() == {} and part.link_bits == 0


# --- the relay over a 3-hop path -----------------------------------------------------------------


def test_three_hop_relay_moves_the_smallest_grant_everywhere():
    flow = otp("ctl", "a", "d")
    nodes = make_nodes([flow])
    control = Controller()
    hop_ns = [1_000, 2_000, 3_000]
    nodes.environment(snapshot({("a", "b"): 1_000, ("b", "c"): 120, ("c", "d"): 500}), 0)
    before = {k: b.buffered_bits for k, b in nodes.link_buffers().items()}

    reserves = nodes.deliver([control.update(flow, ["a", "b", "c", "d"], hop_ns, 0)])
    assert sorted((e.dst, e.payload["hop"], e.payload["peer"]) for e in reserves) == [
        ("a", 0, "b"),
        ("b", 1, "c"),
        ("c", 2, "d"),
    ]
    assert {e.payload["bits"] for e in reserves} == {TYPE_I_WANT}
    assert all(e.payload["critical"] for e in reserves)
    # the owner of hop h sits after h hops of the path: the reserve takes their latency
    assert {e.dst: e.arrival_ns - e.t_ns for e in reserves} == {"a": 0, "b": 1_000, "c": 3_000}

    grants = nodes.deliver(reserves)
    assert {e.payload["hop"]: e.payload["bits"] for e in grants} == {0: 150, 1: 120, 2: 150}
    assert all(e.dst == "a" for e in grants)
    # each grant comes back after the delay its reserve took
    assert {e.src: e.arrival_ns - e.t_ns for e in grants} == {"a": 0, "b": 1_000, "c": 3_000}
    # set aside, not spent yet
    assert nodes.nodes["b"].reserved_bits == {"c": 120}
    assert nodes.link_buffers()[("b", "c")].buffered_bits == 120

    commits = nodes.deliver(grants)
    assert sorted((e.dst, e.payload["bits"], e.payload["granted"]) for e in commits) == [
        ("a", 120, 150),
        ("b", 120, 120),
        ("c", 120, 150),
    ]
    assert {e.dst: e.arrival_ns - e.t_ns for e in commits} == {"a": 0, "b": 1_000, "c": 3_000}
    assert nodes.deliver(commits) == []
    counters = nodes.end_tick()

    pool = nodes.pools()[("a", "d")]
    assert pool.generated_bits == 120  # min(grant): the poorest hop's 120 bits
    spent = {k: before[k] - b.buffered_bits for k, b in nodes.link_buffers().items()}
    assert spent == {("a", "b"): 120, ("b", "c"): 120, ("c", "d"): 120}
    for buffer in list(nodes.link_buffers().values()) + [pool]:
        buffer.check_ledger(deep=True)
        assert buffer.expired_bits == buffer.discarded_bits == buffer.destroyed_bits == 0
    assert all(not n.reserved_bits and not n.pool_pending_bits for n in nodes.nodes.values())
    state = nodes.flow_states()["ctl"]
    # 120 bits in the pool cover this tick's 100 bits of one-time pad
    assert state.key_bits_used == pool.consumed_bits == 100
    assert pool.buffered_bits == 20
    assert state.delivered_bits == counters.delivered_bits == 100
    assert state.served_ns == state.secure_ns == counters.type_i_secure_ns == DT_NS
    assert nodes.link_bits == sum(b.buffered_bits for b in nodes.link_buffers().values())

    # the next tick: the pool's 20 bits count, the source asks only for the rest
    nodes.environment(snapshot({("a", "b"): 0, ("b", "c"): 200, ("c", "d"): 0}), DT_NS)
    batches = rounds(nodes, [control.update(flow, ["a", "b", "c", "d"], hop_ns, DT_NS)])
    nodes.end_tick()
    assert {e.payload["bits"] for e in relay_steps(batches, "reserve")} == {TYPE_I_WANT - 20}
    assert pool.generated_bits == 120 + 130 and pool.consumed_bits == state.key_bits_used == 200
    assert {k: b.consumed_bits for k, b in nodes.link_buffers().items()} == dict.fromkeys(
        nodes.link_buffers(), 250
    )


def test_split_bits_divides_in_proportion_in_whole_bits():
    assert split_bits(150, [1, 1]) == [75, 75]
    assert split_bits(151, [1, 1, 1]) == [51, 50, 50]  # the bits left over go to the first
    assert split_bits(10, [0, 3, 1]) == [0, 8, 2]  # (7.5 -> 7 + 1, 2.5 -> 2): no part, no bit
    assert split_bits(7, [2_000_000_000_000, 1]) == [7, 0]
    assert sum(split_bits(1_000_003, [7, 11, 13])) == 1_000_003


def test_a_split_relay_fills_the_pool_over_two_paths_at_once():
    """The forwarding update's relay split (Decision.relay): the source asks each path for
    its share of the shortfall (split_bits of the parts), each path's hops spend the smallest
    grant of that path, the pool gets the sum, and the flow consumes once every relay is in.
    Over a -> b -> d alone the poorest hop (b, d) holds 60 bits, short of the flow's 150: one
    path's relay leaves it unkeyed; split 2:1 with a -> c -> d it gets 100 + 50."""
    flow = otp("ctl", "a", "d")
    links = {("a", "b"): 1_000, ("b", "d"): 60, ("a", "c"): 1_000, ("c", "d"): 1_000}
    alone = make_nodes([flow])
    alone.environment(snapshot(links), 0)
    rounds(alone, [Controller().update(flow, ["a", "b", "d"], [1_000, 1_000], 0)])
    alone.end_tick()
    assert alone.pools()[("a", "d")].generated_bits == 60
    assert alone.flow_states()["ctl"].secure_ns == 0

    nodes = make_nodes([flow])
    nodes.environment(snapshot(links), 0)
    update = forwarding_update(
        "ctl", "a", ["a", "b", "d"], [1_000, 1_000], 2e-6, 0, 0, 0,
        relay=[(["a", "b", "d"], [1_000, 1_000], 1), (["a", "c", "d"], [500, 700], 2)],
    )  # fmt: skip
    batches = rounds(nodes, [update])
    counters = nodes.end_tick()
    reserves = relay_steps(batches, "reserve")
    assert sorted((e.payload["relay"], e.dst, e.payload["bits"]) for e in reserves) == [
        ("ctl@0/0", "a", 50), ("ctl@0/0", "b", 50), ("ctl@0/1", "a", 100), ("ctl@0/1", "c", 100),
    ]  # fmt: skip
    # each path's reserve takes that path's latency to its owner
    assert {e.dst: e.arrival_ns - e.t_ns for e in reserves} == {"a": 0, "b": 1_000, "c": 500}
    commits = relay_steps(batches, "commit")
    assert sorted((e.payload["relay"], e.dst, e.payload["bits"]) for e in commits) == [
        ("ctl@0/0", "a", 50), ("ctl@0/0", "b", 50), ("ctl@0/1", "a", 100), ("ctl@0/1", "c", 100),
    ]  # fmt: skip
    pool = nodes.pools()[("a", "d")]
    assert pool.generated_bits == TYPE_I_WANT == 150
    spent = {k: b.consumed_bits for k, b in nodes.link_buffers().items()}
    assert spent == {("a", "b"): 50, ("b", "d"): 50, ("a", "c"): 100, ("c", "d"): 100}
    state = nodes.flow_states()["ctl"]
    assert state.key_bits_used == pool.consumed_bits == 100
    assert state.secure_ns == counters.type_i_secure_ns == DT_NS
    for buffer in list(nodes.link_buffers().values()) + [pool]:
        buffer.check_ledger(deep=True)
    assert all(not n.reserved_bits and not n.pool_pending_bits and not n._relays
               for n in nodes.nodes.values())  # fmt: skip
    # data goes the flow's path, with or without the split
    assert counters.bits_through == {"a": 100, "b": 100, "d": 100}


def test_a_relay_split_the_update_cannot_carry_is_refused_naming_it():
    for relay, what in (
        ([(["a"], [], 1)], r"path \['a'\]"),
        ([(["a", "b"], [1, 2], 1)], "2 latencies"),
        ([(["a", "b"], [1], 0)], "parts 0"),
    ):
        with pytest.raises(ValueError, match=f"flow 'ctl': a relay path needs.*{what}"):
            forwarding_update("ctl", "a", ["a", "b"], [1], 1e-9, 0, 0, 0, relay=relay)


def test_a_data_split_sends_each_share_over_its_path_outside_its_own_gap():
    """The forwarding update's data split (Decision.data): the source splits the tick's 100
    bits 1:3 (25, 75); the flow's path a -> b -> d is in a handover gap for half the tick
    (12 of its 25 bits go), a -> c -> d carries its 75 the whole tick but misses the 1 ms
    target (2 ms): 87 bits go out with their keys, 12 of them in time. Time counts by parts:
    up 7/8 of the tick, served 1/8. Every node of each leg forwards that leg's bits; the key
    is relayed over the flow's path (its first leg, up for half the tick)."""
    flow = otp("ctl", "a", "d")
    links = {("a", "b"): 1_000, ("b", "d"): 1_000, ("a", "c"): 1_000, ("c", "d"): 1_000}
    nodes = make_nodes([flow])
    nodes.environment(snapshot(links), 0)
    half = DT_NS // 2
    update = forwarding_update(
        "ctl", "a", ["a", "b", "d"], [1_000, 1_000], 2e-6, half, 0, 0,
        data=[(["a", "b", "d"], [1_000, 1_000], 2e-6, half, 1),
              (["a", "c", "d"], [1_000_000, 1_000_000], 2e-3, 0, 3)],
    )  # fmt: skip
    batches = rounds(nodes, [update])
    counters = nodes.end_tick()
    state = nodes.flow_states()["ctl"]
    assert state.active_ns == DT_NS and state.demand_bits == 100
    assert state.secure_ns == counters.type_i_secure_ns == 7 * DT_NS // 8
    assert state.served_ns == counters.served_ns["type_i"][0] == DT_NS // 8
    assert state.delivered_bits == counters.delivered_bits == 12
    assert state.key_bits_used == 87
    assert state.latency_sum_s == pytest.approx((2e-6 + 3 * 2e-3) / 4, abs=1e-15)
    assert counters.bits_through == {"a": 87, "b": 12, "c": 75, "d": 87}
    reserves = relay_steps(batches, "reserve")
    assert {e.dst for e in reserves} == {"a", "b"}  # (the key over a -> b -> d)
    for buffer in [*nodes.link_buffers().values(), *nodes.pools().values()]:
        buffer.check_ledger(deep=True)


def test_a_data_split_the_update_cannot_carry_is_refused_naming_it():
    leg = (["a", "b"], [1], 1e-9, 0, 1)
    for data, what in (
        ([(["a"], [], 1e-9, 0, 1)], r"a data path needs.*path \['a'\]"),
        ([leg, (["a", "c", "b"], [1], 1e-9, 0, 1)], "1 latencies"),
        ([leg, (["a", "c", "b"], [1, 1], 1e-9, 0, 0)], "parts 0"),
        ([leg, (["a", "c", "b"], [1, 1], 1e-9, -1, 1)], "gap_ns -1"),
        ([(["a", "c", "b"], [1, 1], 1e-9, 0, 1), leg], r"starts with the flow's path \['a', 'b'\]"),
    ):
        with pytest.raises(ValueError, match=f"flow 'ctl': .*{what}"):
            forwarding_update("ctl", "a", ["a", "b"], [1], 1e-9, 0, 0, 0, data=data)


def test_a_flow_without_path_or_inside_a_gap_relays_nothing():
    flow = otp("ctl", "a", "b")
    nodes = make_nodes([flow])
    control = Controller()
    nodes.environment(snapshot({("a", "b"): 1_000}), 0)
    batches = rounds(nodes, [control.update(flow, None, [], 0)])
    assert len(batches) == 1  # the update, then nothing
    counters = nodes.end_tick()
    assert counters.served_ns["type_i"] == [0, DT_NS, 0] and counters.type_i_secure_ns == 0
    # a whole tick in a handover gap: active, not served, no key moved
    nodes.environment(snapshot({("a", "b"): 0}), DT_NS)
    assert len(rounds(nodes, [control.update(flow, ["a", "b"], [10], DT_NS, gap_ns=DT_NS)])) == 1
    nodes.end_tick()
    assert nodes.pools() == {}
    assert nodes.link_buffers()[("a", "b")].consumed_bits == 0
    assert nodes.flow_states()["ctl"].active_ns == 2 * DT_NS


def test_a_message_missing_from_a_channel_at_the_end_of_a_tick_is_a_sequence_gap():
    # the controller's updates 0 and 2 reach the source, 1 never does: the tick cannot close
    # as if nothing were lost (sequences count per channel from 0, without gaps)
    flow = otp("ctl", "a", "b")
    nodes = make_nodes([flow])
    control = Controller()
    nodes.environment(snapshot({("a", "b"): 1_000}), 0)
    first, lost, third = (control.update(flow, None, [], 0) for _ in range(3))
    assert [e.seq for e in (first, lost, third)] == [0, 1, 2]
    rounds(nodes, [first, third])
    with pytest.raises(RuntimeError, match=r"without message 1 from controller .* \(a sequence"):
        nodes.end_tick()


def test_messages_that_came_out_of_order_within_a_tick_leave_no_gap():
    flow = otp("ctl", "a", "b")
    nodes = make_nodes([flow])
    control = Controller()
    nodes.environment(snapshot({("a", "b"): 1_000}), 0)
    first, second = (control.update(flow, None, [], 0) for _ in range(2))
    rounds(nodes, [second])
    rounds(nodes, [first])  # a later round brings the earlier one
    nodes.end_tick()  # closes


# --- shared hops, admission, releases ------------------------------------------------------------


def test_two_flows_sharing_a_short_hop_never_spend_a_bit_twice():
    # both want 150 bits through (a, b), which holds 200: the first reservation takes 150,
    # the second sees it and gets the 50 left
    first, second = otp("f1", "a", "c"), otp("f2", "a", "d")
    nodes = make_nodes([first, second])
    control = Controller()
    nodes.environment(snapshot({("a", "b"): 200, ("b", "c"): 1_000, ("b", "d"): 1_000}), 0)
    inbox = [
        control.update(first, ["a", "b", "c"], [10, 10], 0),
        control.update(second, ["a", "b", "d"], [10, 10], 0),
    ]
    reserves = nodes.deliver(inbox)
    grants = nodes.deliver(reserves)
    shared = {e.payload["relay"].split("@")[0]: e.payload["bits"] for e in grants if e.src == "a"}
    assert shared == {"f1": 150, "f2": 50}
    assert nodes.nodes["a"].reserved_bits == {"b": 200}
    assert sum(shared.values()) <= 200
    rounds(nodes, grants)
    nodes.end_tick()
    ab = nodes.link_buffers()[("a", "b")]
    assert ab.consumed_bits == 200 and ab.buffered_bits == 0
    assert nodes.link_buffers()[("b", "c")].consumed_bits == 150
    assert nodes.link_buffers()[("b", "d")].consumed_bits == 50
    pools = nodes.pools()
    assert pools[("a", "c")].generated_bits == 150 and pools[("a", "d")].generated_bits == 50
    states = nodes.flow_states()
    # f2's 50 bits do not cover its 100 bits of pad: all or nothing, nothing consumed
    assert states["f1"].key_bits_used == 100 and states["f2"].key_bits_used == 0
    assert states["f2"].secure_ns == 0 and pools[("a", "d")].buffered_bits == 50
    for buffer in list(nodes.link_buffers().values()) + list(pools.values()):
        buffer.check_ledger(deep=True)
    assert all(not n.reserved_bits for n in nodes.nodes.values())


def test_a_zero_commit_releases_the_other_hops_grants():
    # (b, c) holds 80 bits, refilling from EMPTY below the 100-bit threshold: CHARGING, so it
    # refuses the Type-II (non-critical) reservation; (a, b) grants in full, then gets 0
    flow = telemetry("tm", "a", "c")
    nodes = make_nodes([flow])
    control = Controller()
    nodes.environment(snapshot({("a", "b"): 1_000, ("b", "c"): 80}), 0)
    bc = nodes.link_buffers()[("b", "c")]
    assert bc.state is BufferState.CHARGING
    grants = nodes.deliver(nodes.deliver([control.update(flow, ["a", "b", "c"], [10, 10], 0)]))
    assert {e.payload["hop"]: e.payload["bits"] for e in grants} == {0: TYPE_II_WANT, 1: 0}
    assert nodes.nodes["a"].reserved_bits == {"b": TYPE_II_WANT}
    assert bc.refused_requests == 1 and bc.refused_bits == TYPE_II_WANT
    commits = nodes.deliver(grants)
    assert {e.payload["bits"] for e in commits} == {0}
    assert nodes.deliver(commits) == []
    assert nodes.nodes["a"].reserved_bits == {"b": 0}  # released by the commit itself
    nodes.end_tick()
    assert nodes.link_buffers()[("a", "b")].buffered_bits == 1_000
    assert bc.buffered_bits == 80
    assert nodes.pools()[("a", "c")].generated_bits == 0
    state = nodes.flow_states()["tm"]
    assert state.key_bits_used == 0 and state.secure_ns == 0 and state.active_ns == DT_NS
    # the next tick may reserve (a, b) again in full: nothing stayed set aside
    nodes.environment(snapshot({("a", "b"): 0, ("b", "c"): 400}), DT_NS)
    rounds(nodes, [control.update(flow, ["a", "b", "c"], [10, 10], DT_NS)])
    nodes.end_tick()
    assert nodes.pools()[("a", "c")].generated_bits == TYPE_II_WANT
    assert nodes.flow_states()["tm"].key_bits_used == 256


def test_a_hop_without_any_buffer_grants_nothing_and_releases_the_rest():
    flow = otp("ctl", "a", "c")
    nodes = make_nodes([flow])
    nodes.environment(snapshot({("a", "b"): 1_000}), 0)  # (b, c) never had key
    batches = rounds(nodes, [Controller().update(flow, ["a", "b", "c"], [10, 10], 0)])
    nodes.end_tick()
    assert [e.payload["bits"] for e in relay_steps(batches, "grant")] == [150, 0]
    assert [e.payload["bits"] for e in relay_steps(batches, "commit")] == [0, 0]
    assert nodes.link_buffers()[("a", "b")].consumed_bits == 0
    assert nodes.flow_states()["ctl"].secure_ns == 0


def test_take_granted_spends_a_grant_in_charging_that_take_would_refuse():
    # A grant is a promise made under the admission rules; spending it ignores the state the
    # buffer has reached since. CHARGING (refilling from EMPTY, below Mthr) refuses a
    # non-critical take; a granted spend of the same bits goes through.
    buffer = KeyBuffer("x", 1_000, threshold_bits=100)
    buffer.generate(80, 0)
    assert buffer.state is BufferState.CHARGING
    assert buffer.take(30, 0, critical=False) is None
    assert buffer.take(20, 0, critical=True) is not None  # a critical commit, 60 left
    ranges = buffer.take_granted(30, 0)
    assert sum(r.bits for r in ranges) == 30 and ranges[0].start == 20  # oldest first
    assert buffer.state is BufferState.CHARGING and buffer.buffered_bits == 30
    buffer.check_ledger(deep=True)
    with pytest.raises(RuntimeError, match="outlived its key"):
        buffer.take_granted(31, 0)


def test_non_critical_commit_succeeds_after_a_critical_commit_drained_the_shared_hop():
    # (a, b) is READY with 460 bits (threshold 400) and grants both: the critical relay's 150
    # bits first, then the Type-II relay's 306. The critical commit is handled first and takes
    # the hop below its threshold; the non-critical commit must still spend its grant.
    settings = dataclasses.replace(SETTINGS, link_threshold_bits=400)
    critical, bulk = otp("ctl", "a", "b"), telemetry("tm", "a", "c")
    nodes = make_nodes([critical, bulk], settings=settings)
    control = Controller()
    nodes.environment(snapshot({("a", "b"): 460, ("b", "c"): 1_000}), 0)
    ab = nodes.link_buffers()[("a", "b")]
    assert ab.state is BufferState.READY
    inbox = [
        control.update(critical, ["a", "b"], [10], 0),
        control.update(bulk, ["a", "b", "c"], [10, 10], 0),
    ]
    commits = nodes.deliver(nodes.deliver(nodes.deliver(inbox)))
    assert nodes.nodes["a"].reserved_bits == {"b": 150 + TYPE_II_WANT}
    first = [e for e in commits if e.payload["relay"].startswith("ctl@")]
    assert [e.payload["bits"] for e in first] == [150]
    # the critical commit alone (it is also first in delivery order when handled together)
    assert sorted(commits, key=delivery_order)[0] == first[0]
    assert nodes.deliver(first) == []
    assert ab.buffered_bits == 310 < settings.link_threshold_bits
    assert ab.state is not BufferState.READY
    assert nodes.deliver([e for e in commits if e not in first]) == []
    nodes.end_tick()
    assert ab.buffered_bits == 460 - 150 - TYPE_II_WANT
    states = nodes.flow_states()
    assert states["ctl"].key_bits_used == 100 and states["tm"].key_bits_used == 256
    ab.check_ledger(deep=True)


# --- idempotence, order, lost messages -----------------------------------------------------------


def _contended(partitions=None):
    """Three flows from two sources over shared, short hops, and the first tick's updates."""
    flows = [
        otp("f1", "a", "c"),
        telemetry("f2", "a", "d"),
        otp("f3", "b", "d"),
        telemetry("f4", "c", "a"),
    ]
    nodes = make_nodes(flows, partitions=partitions)
    nodes.environment(
        snapshot({("a", "b"): 400, ("b", "c"): 300, ("b", "d"): 260, ("c", "d"): 90}), 0
    )
    control = Controller()
    inbox = [
        control.update(flows[0], ["a", "b", "c"], [700, 300], 0),
        control.update(flows[1], ["a", "b", "d"], [700, 900], 0),
        control.update(flows[2], ["b", "d"], [200], 0),
        control.update(flows[3], ["c", "b", "a"], [300, 700], 0),
    ]
    return nodes, inbox


def _run(nodes, inbox, each=None):
    batches = rounds(nodes, inbox, each=each)
    counters = nodes.end_tick()
    return batches, counters


def test_the_contended_case_is_contended():
    nodes, inbox = _contended()
    batches, _ = _run(nodes, inbox)
    grants = relay_steps(batches, "grant")
    reserves = {
        (e.payload["relay"], e.payload["hop"]): e.payload["bits"]
        for e in relay_steps(batches, "reserve")
    }
    partial = [
        g for g in grants if g.payload["bits"] < reserves[(g.payload["relay"], g.payload["hop"])]
    ]
    assert partial, "some grant must be short of its reservation"
    assert any(e.payload["bits"] > 0 for e in relay_steps(batches, "commit"))


def test_delivering_envelopes_again_changes_nothing():
    nodes, inbox = _contended()
    batches, counters = _run(nodes, inbox)
    after = fingerprint(nodes)
    # every envelope of the tick again, all at once and each batch on its own
    assert nodes.deliver([e for batch in batches for e in batch]) == []
    for batch in batches:
        assert nodes.deliver(batch) == []
    assert fingerprint(nodes) == after
    assert nodes.end_tick() == type(counters)()  # no counter moved either

    # each batch delivered twice in a row, during the tick: the second copy is a no-op
    twice, inbox = _contended()

    def doubled(batch):
        out = twice.deliver(batch)
        assert twice.deliver(batch) == []
        return out

    batches2 = []
    while inbox:
        batches2.append(inbox)
        inbox = doubled(inbox)
    assert twice.end_tick() == counters
    assert fingerprint(twice) == after
    assert batches2 == batches


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_order_of_a_batch_does_not_matter(seed):
    plain, inbox = _contended()
    expected_batches, expected_counters = _run(plain, inbox)
    rng = np.random.default_rng(seed)

    def shuffle_and_duplicate(batch):
        batch = list(batch) + list(batch[: len(batch) // 2])
        return [batch[i] for i in rng.permutation(len(batch))]

    shuffled, inbox = _contended()
    batches, counters = _run(shuffled, inbox, each=shuffle_and_duplicate)
    assert counters == expected_counters
    assert fingerprint(shuffled) == fingerprint(plain)
    # the same envelopes (ids, timestamps, payloads) come out, whatever order went in
    assert [sorted(b, key=repr) for b in batches] == [sorted(b, key=repr) for b in expected_batches]


@pytest.mark.parametrize(
    "partitions",
    [[[0], [1], [2], [3]], [[0, 2], [1, 3]], [[3, 1, 0], [2]]],
    ids=["one-each", "interleaved", "uneven"],
)
def test_a_node_group_gives_the_results_of_one_set(partitions):
    plain, inbox = _contended()
    expected_batches, expected_counters = _run(plain, inbox)
    group, inbox = _contended(partitions)
    batches, counters = _run(group, inbox)
    assert counters == expected_counters
    assert fingerprint(group) == fingerprint(plain)
    assert [sorted(b, key=repr) for b in batches] == [sorted(b, key=repr) for b in expected_batches]


@pytest.mark.parametrize("step", ["reserve", "grant", "commit"])
def test_end_tick_raises_when_a_relay_message_was_lost(step):
    nodes, inbox = _contended()
    dropped = []

    def lose_one(batch):
        for i, e in enumerate(batch):
            if (
                e.kind is MessageKind.KEY_RELAY
                and e.payload["step"] == step
                # a lost commit of a zero grant loses nothing: drop one that was granted bits
                and (step != "commit" or e.payload["granted"] > 0)
                and not dropped
            ):
                dropped.append(e)
                return batch[:i] + batch[i + 1 :]
        return batch

    rounds(nodes, inbox, each=lose_one)
    assert dropped
    with pytest.raises(RuntimeError, match="lost"):
        nodes.end_tick()


def test_an_envelope_for_a_node_elsewhere_is_refused():
    nodes = make_nodes([otp("ctl", "a", "b")])
    part = NodeSet(
        NAMES,
        [1, 2],
        [],
        dt_ns=DT_NS,
        settings=SETTINGS,
        sat_offset=4,
        batteries={},
        quantum_edge_kinds=(FIBER,),
    )
    update = Controller().update(otp("ctl", "a", "b"), ["a", "b"], [10], 0)
    with pytest.raises(RuntimeError, match="does not host"):
        part.deliver([update])
    assert nodes.deliver([update])  # its own set takes it
    with pytest.raises(ValueError, match="exactly once"):
        make_nodes([], partitions=[[0, 1], [1, 2, 3]])
    with pytest.raises(ValueError, match="exactly once"):
        make_nodes([], partitions=[[0, 1], [3]])


def test_seen_message_ids_stay_bounded_over_a_long_run():
    """Sequence numbers count per (src, dst) channel, so every receiver sees contiguous ones
    and its seen-set keeps only its low-water marks. (With one counter per sender, shared by
    all its destinations, b would see every other seq of a and keep every id it ever saw.)"""
    flows = [otp("f1", "a", "c"), otp("f2", "b", "c")]
    nodes = make_nodes(flows)
    control = Controller()

    def held():
        return sum(len(ids) for n in nodes.nodes.values() for ids in n.seen._above.values())

    sizes = []
    for tick in range(200):
        t = tick * DT_NS
        nodes.environment(snapshot({("a", "b"): 300, ("b", "c"): 600}), t)
        rounds(
            nodes,
            [
                control.update(flows[0], ["a", "b", "c"], [10, 10], t),
                control.update(flows[1], ["b", "c"], [10], t),
            ],
        )
        nodes.end_tick()
        sizes.append(held())
    assert sizes[-1] <= sizes[9] + 8, (
        f"seen ids held after 10 and 200 ticks: {sizes[9]}, {sizes[-1]}"
    )


# --- the engine --------------------------------------------------------------------------------

SMALL_S = 120.0
CLEAR_SKY_S = 60.0


def _metrics(engine, result):
    data = json.loads(metrics_json(compute_metrics(result, engine)))
    data.pop("wall_seconds")
    return json.dumps(data, sort_keys=True, indent=2)


def _partitions(kind, n):
    return {
        "all": None,
        "one-set": [range(n)],
        "halves": [range(n // 2), range(n // 2, n)],
        "round-robin-3": [range(i, n, 3) for i in range(3)],
        "one-per-node": [[i] for i in range(n)],
    }[kind]


def _run_engine(name, seconds, partitions=None, trace=False, patch=None):
    scenario = load_scenario(name)
    n = len(Engine(scenario).topology.node_names) if partitions else 0
    engine = Engine(scenario, partitions=_partitions(partitions, n) if partitions else None)
    if trace:
        engine.trace = []
    if patch is not None:
        patch(engine)
    result = engine.run(duration_s=seconds)
    return engine, result


def _outcome(engine, result):
    """metrics.json without wall time, plus what it summarizes (flows, ledger, time series)."""
    flows = {k: dataclasses.asdict(v) for k, v in sorted(result.flows.items())}
    records = [repr(r) for r in result.records]
    return _metrics(engine, result), flows, result.ledger, records


@pytest.fixture(scope="module")
def small_plain():
    engine, result = _run_engine("small", SMALL_S)
    return _outcome(engine, result)


@pytest.mark.parametrize("partitions", ["one-set", "halves", "round-robin-3", "one-per-node"])
def test_small_gives_byte_identical_metrics_over_any_partitioning(small_plain, partitions):
    engine, result = _run_engine("small", SMALL_S, partitions)
    assert len(engine.nodes.sets) == {"one-set": 1, "halves": 2, "round-robin-3": 3}.get(
        partitions, len(engine.topology.node_names)
    )
    got = _outcome(engine, result)
    assert got[0] == small_plain[0]  # metrics.json, byte for byte
    assert got[1:] == small_plain[1:]
    assert result.ledger.consumed_bits > 0  # key was relayed and spent


def _noisy_delivery(seed):
    def patch(engine):
        deliver = engine.nodes.deliver
        rng = np.random.default_rng(seed)
        calls = engine._noisy_calls = []

        def noisy(envelopes):
            batch = list(envelopes) * 2
            calls.append(len(batch))
            return deliver([batch[i] for i in rng.permutation(len(batch))])

        engine.nodes.deliver = noisy

    return patch


def test_small_with_every_envelope_duplicated_and_shuffled_gives_the_same_metrics(small_plain):
    engine, result = _run_engine("small", SMALL_S, patch=_noisy_delivery(11))
    # one round of updates per tick, and rounds of reserves, grants, commits when pools refill
    assert len(engine._noisy_calls) > 1.3 * SMALL_S
    assert _outcome(engine, result) == small_plain


def test_clear_sky_partitioned_duplicated_and_shuffled_gives_the_same_metrics():
    # satellites, HAPS and short grants: relays cross partitions and some hops refuse
    plain = _outcome(*_run_engine("clear-sky", CLEAR_SKY_S))
    engine, result = _run_engine(
        "clear-sky", CLEAR_SKY_S, "round-robin-3", patch=_noisy_delivery(5)
    )
    assert _outcome(engine, result) == plain


# --- the engine's message trace ----------------------------------------------------------------


@pytest.fixture(scope="module")
def clear_sky_trace():
    engine, result = _run_engine("clear-sky", CLEAR_SKY_S, trace=True)
    return engine, result


def _relays(trace):
    """relay id -> {step: {hop: envelope}}; asserts one envelope per (relay, step, hop)."""
    relays: dict[str, dict[str, dict[int, object]]] = defaultdict(lambda: defaultdict(dict))
    for e in trace:
        if e.kind is MessageKind.KEY_RELAY:
            p = e.payload
            hops = relays[p["relay"]][p["step"]]
            assert p["hop"] not in hops, f"two {p['step']}s for hop {p['hop']} of {p['relay']}"
            hops[int(p["hop"])] = e
    return relays


def test_every_reservation_gets_one_grant_and_one_commit_per_hop(clear_sky_trace):
    engine, result = clear_sky_trace
    trace = engine.trace
    # ids are (src, seq) at the receiver: unique per (src, dst) channel
    assert len({(e.src, e.dst, e.seq) for e in trace}) == len(trace), "message ids repeat"
    updates = {
        (e.payload["flow"], e.t_ns): e for e in trace if e.kind is MessageKind.FORWARDING_UPDATE
    }
    assert all(e.src == CONTROLLER and e.arrival_ns == e.t_ns for e in updates.values())
    index = {n: i for i, n in enumerate(engine.topology.node_names)}
    flows = {f.name: f for f in engine.flows}
    relays = _relays(trace)
    shapes = defaultdict(int)
    committed_link = committed_pool = 0
    for relay_id, steps in sorted(relays.items()):
        flow, t = relay_id.rsplit("@", 1)
        update = updates[(flow, int(t))]
        path = update.payload["path"]
        hop_ns = update.payload["hop_latency_ns"]
        hops = len(path) - 1
        assert sorted(steps) == ["commit", "grant", "reserve"], relay_id
        for step in ("reserve", "grant", "commit"):
            assert sorted(steps[step]) == list(range(hops)), (relay_id, step)
        grants = [steps["grant"][h].payload["bits"] for h in range(hops)]
        bits = {steps["commit"][h].payload["bits"] for h in range(hops)}
        assert bits == {min(grants)}, relay_id  # every hop spends the smallest grant
        for h in range(hops):
            reserve, grant, commit = (steps[s][h] for s in ("reserve", "grant", "commit"))
            u, v = path[h], path[h + 1]
            owner, peer = (u, v) if index[u] < index[v] else (v, u)
            assert reserve.src == commit.src == grant.dst == flows[flow].src_site == path[0]
            assert reserve.dst == commit.dst == grant.src == owner
            assert reserve.payload["peer"] == commit.payload["peer"] == peer
            assert grant.payload["bits"] <= reserve.payload["bits"]
            assert commit.payload["granted"] == grant.payload["bits"]
            assert commit.payload["bits"] <= commit.payload["granted"]
            # each is sent when its sender handles what prompted it: the reserve at the
            # update (the tick's start), the grant at the reserve's arrival, the commits at the
            # last grant's; all within the tick
            last_grant = max(g.arrival_ns for g in steps["grant"].values())
            assert reserve.t_ns == update.t_ns and update.t_ns % engine.dt_ns == 0
            assert grant.t_ns == reserve.arrival_ns
            assert commit.t_ns == last_grant
            for e in (reserve, grant, commit):
                assert update.t_ns <= e.t_ns <= e.arrival_ns < update.t_ns + engine.dt_ns
            # the owner sits sum(hop latencies before it) down the path; the grant comes back
            # after the delay the reserve took, the commit goes out after it again
            delay = sum(hop_ns[: path.index(owner)])
            assert reserve.arrival_ns - reserve.t_ns == delay
            assert grant.arrival_ns - grant.t_ns == delay
            assert commit.arrival_ns - commit.t_ns == delay
        committed_link += hops * min(grants)
        committed_pool += min(grants)
        shapes["hops>=3"] += hops >= 3
        shapes["starved"] += min(grants) == 0 < max(grants)
        shapes["partial"] += 0 < min(grants) < steps["reserve"][0].payload["bits"]
        shapes["remote owner"] += any(steps["reserve"][h].dst != path[0] for h in range(hops))
    # the trace tells the whole story of the buffers: every link bit spent was committed
    links = engine.link_buffers.values()
    pools = engine.pools.values()
    assert sum(b.consumed_bits for b in links) == committed_link > 0
    assert sum(p.generated_bits for p in pools) == committed_pool
    assert sum(p.consumed_bits for p in pools) == sum(
        s.key_bits_used for s in result.flows.values()
    )
    assert shapes["hops>=3"] and shapes["starved"] and shapes["remote owner"], dict(shapes)


def test_a_reply_is_not_sent_before_its_request_arrived(clear_sky_trace):
    engine, _ = clear_sky_trace
    for relay_id, steps in _relays(engine.trace).items():
        for h, grant in steps["grant"].items():
            assert grant.t_ns >= steps["reserve"][h].arrival_ns, relay_id
        last_grant = max(g.arrival_ns for g in steps["grant"].values())
        for commit in steps["commit"].values():
            assert commit.t_ns >= last_grant, relay_id


@pytest.mark.parametrize("link_capacity_bits", [None, 3_000_000])
def test_batched_generation_leaves_buffers_as_eager_generation(monkeypatch, link_capacity_bits):
    """Held-back link key (nodes docstring, "Batched generation") ends exactly where one
    generate per link and tick would: with every buffer reporting a clock in the future, no
    tick's key can be held and each goes to its buffer at once; the runs agree to the key id
    and the metrics byte. With 3 Mbit link buffers the fibre links fill within seconds and sit
    full, discarding, between relays: the held discards are checked too."""
    import twin.engine
    from twin.engine import Engine
    from twin.metrics import compute_metrics, metrics_json
    from twin.network.keys import KeyBuffer

    if link_capacity_bits is not None:
        monkeypatch.setattr(twin.engine, "LINK_BUFFER_CAPACITY_BITS", link_capacity_bits)
        monkeypatch.setattr(twin.engine, "LINK_BUFFER_THRESHOLD_BITS", link_capacity_bits // 2)
    scenario = load_scenario("clear-sky")
    calls = [0]
    generate = KeyBuffer.generate

    def counted(buffer, bits, t_ns):
        calls[0] += 1
        return generate(buffer, bits, t_ns)

    monkeypatch.setattr(KeyBuffer, "generate", counted)

    def run():
        calls[0] = 0
        engine = Engine(scenario)
        result = engine.run(duration_s=120)
        metrics = json.loads(metrics_json(compute_metrics(result, engine)))
        metrics.pop("wall_seconds")
        chunks = {
            key: (b.ledger(), [(r.start, r.stop, t) for r, t in b.buffered_chunks()])
            for key, b in engine.link_buffers.items()
        }
        return metrics, chunks, calls[0]

    batched, batched_chunks, batched_calls = run()
    original = KeyBuffer.extension_state

    def clock_in_the_future(buffer):
        buffered, oldest, newest, _, _ = original(buffer)
        return buffered, oldest, newest, 2**62, False

    monkeypatch.setattr(KeyBuffer, "extension_state", clock_in_the_future)
    eager, eager_chunks, eager_calls = run()
    assert batched_calls * 5 < eager_calls, (batched_calls, eager_calls)  # key was held back
    if link_capacity_bits is not None:
        full = sum(1 for ledger, _ in batched_chunks.values() if ledger.discarded_bits > 0)
        assert full >= 3, "the small buffers should fill and discard"
        assert batched["metrics"]["keys"]["consumed_bits"] > 0  # and relays drain them
    assert batched == eager
    assert batched_chunks == eager_chunks


def test_messages_said_to_answer_nothing_answer_nothing_in_a_run(monkeypatch):
    # hosts that run their rounds on their own end a tick a round early on the word of
    # NodeSet.answers_nothing (actors.host.NodeHost.exchange): over a run of `small`, every
    # delivery of only such messages sends nothing, and the others are answered
    deliveries = []  # (whether every envelope answers nothing, how many were sent in answer)
    deliver = NodeSet.deliver

    def watched(self, envelopes):
        envelopes = list(envelopes)
        out = deliver(self, envelopes)
        if envelopes:
            deliveries.append((all(map(NodeSet.answers_nothing, envelopes)), len(out)))
        return out

    monkeypatch.setattr(NodeSet, "deliver", watched)
    Engine(load_scenario("small")).run(duration_s=60.0)
    final = [sent for only_commits, sent in deliveries if only_commits]
    assert final and set(final) == {0}
    assert any(sent for only_commits, sent in deliveries if not only_commits)
    kinds = [(MessageKind.KEY_RELAY, {"step": s}) for s in ("reserve", "grant", "commit")]
    said = [NodeSet.answers_nothing(SimpleNamespace(kind=k, payload=p)) for k, p in kinds]
    assert said == [False, False, True]
