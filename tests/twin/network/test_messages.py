import pytest

from twin.network.messages import Envelope, MessageKind, SeenMessages, delivery_order


def env(src, seq, arrival, t=0):
    return Envelope(src, "dst", MessageKind.TRAFFIC, t, seq, arrival, {"bits": 8})


def test_delivery_order_is_arrival_then_source_then_seq():
    msgs = [env("b", 1, 10), env("a", 2, 10), env("a", 1, 10), env("c", 0, 5)]
    assert [(m.src, m.seq) for m in sorted(msgs, key=delivery_order)] == [
        ("c", 0),
        ("a", 1),
        ("a", 2),
        ("b", 1),
    ]


def test_wire_round_trip_is_plain_data():
    m = env("sat-1", 3, 1_000_000, t=999_000)
    wire = m.to_wire()
    assert all(isinstance(x, str | int | dict) for x in wire)
    assert Envelope.from_wire(wire) == m


def test_timestamps_are_int_ns_and_causal():
    with pytest.raises(TypeError, match="int nanoseconds"):
        env("a", 0, 1.5)
    with pytest.raises(ValueError, match="precedes"):
        env("a", 0, 5, t=10)


def test_duplicates_are_recognised_in_any_order():
    seen = SeenMessages()
    order = [2, 0, 1, 1, 0, 5, 3, 4, 5]
    firsts = [seen.first_time(env("a", s, 0)) for s in order]
    assert firsts == [True, True, True, False, False, True, True, True, False]
    assert seen.first_time(env("b", 0, 0))  # sources are independent


def test_gaps_name_each_source_and_its_lowest_missing_seq():
    seen = SeenMessages()
    for src, seq in [("a", 0), ("a", 2), ("a", 3), ("b", 1), ("c", 0), ("c", 1)]:
        seen.first_time(env(src, seq, 0))
    assert seen.gaps() == {"a": 1, "b": 0}  # c got 0 and 1: no gap
    seen.first_time(env("a", 1, 0))
    seen.first_time(env("b", 0, 0))
    assert seen.gaps() == {}
