"""The ZeroMQ bus on loopback: frames, refusals, timeouts (no Ray needed)."""

import msgpack
import pytest

from actors.bus import BusEndpoint, BusError, decode_frame, encode_frame
from twin.network.messages import Envelope, MessageKind


def envelope(seq=0, payload=None):
    return Envelope(
        "a", "b", MessageKind.KEY_RELAY, 10, seq, 25,
        payload if payload is not None else {"step": "grant", "bits": 7, "critical": True},
    )  # fmt: skip


def test_a_frame_round_trips_its_envelopes():
    sent = [envelope(k) for k in range(3)]
    round_no, host, active, got = decode_frame(encode_frame("run1", 4, 2, sent, False), "run1")
    assert (round_no, host, active) == (4, 2, False)
    assert got == sent


@pytest.mark.parametrize(
    "frame, words",
    [
        (b"\xc1", "not valid msgpack"),
        (msgpack.packb([1, "run1", 0]), "6-item list"),
        (msgpack.packb([9, "run1", 0, 0, True, []]), "version"),
        (msgpack.packb([1, "other", 0, 0, True, []]), "run 'other'"),
        (msgpack.packb([1, "run1", 0, 0, 1, []]), "active a bool"),
        (msgpack.packb([1, "run1", 0, 0, True, [["a", "b", 99, 0, 0, 0, {}]]]), "bad envelope"),
        (msgpack.packb([1, "run1", 0, 0, True, [["a", "b", 3, 5, 0, 1, {}]]]), "precedes"),
        (msgpack.packb([1, "run1", 0, 0, True, [["a", "b", 3, 0.5, 0, 1, {}]]]), "must be ints"),
        (msgpack.packb([1, "run1", 0, 0, True, [["a", 7, 3, 0, 0, 1, {}]]]), "must be str"),
    ],
)
def test_a_malformed_frame_is_refused_with_the_reason(frame, words):
    with pytest.raises(BusError, match=words):
        decode_frame(frame, "run1")


def test_pickled_bytes_are_never_unpickled():
    import pickle

    with pytest.raises(BusError):
        decode_frame(pickle.dumps([1, "run1", 0, 0, True, []]), "run1")


@pytest.mark.parametrize("curve", [False, True])
def test_two_endpoints_exchange_frames_of_a_round_and_keep_later_ones(curve):
    a = BusEndpoint("r", 0, curve=curve, recv_timeout_s=5)
    b = BusEndpoint("r", 1, curve=curve, recv_timeout_s=5)
    try:
        a.set_peers({1: (b.endpoint, b.server_public_key)})
        b.set_peers({0: (a.endpoint, a.server_public_key)})
        a.send(1, 8, [envelope(1)])  # a later round's frame arrives first
        a.send(1, 7, [envelope(0)])
        assert b.receive(7, 1) == [envelope(0)]
        assert b.receive(8, 1) == [envelope(1)]
        b.send(0, 3, [], active=False)
        assert a.receive_flagged(3, 1) == ([], False)
    finally:
        a.close()
        b.close()


def test_a_missing_frame_is_an_error_not_a_hang():
    a = BusEndpoint("r", 0, recv_timeout_s=0.2)
    try:
        with pytest.raises(BusError, match="frame"):
            a.receive(0, 1)
    finally:
        a.close()


def test_copies_and_late_frames_are_dropped_and_counted():
    from actors.bus import BusFaults

    a = BusEndpoint("r", 0, recv_timeout_s=5, faults=BusFaults(seed=1, duplicate=1.0))
    b = BusEndpoint("r", 1, recv_timeout_s=5)
    try:
        a.set_peers({1: (b.endpoint, None)})
        a.send(1, 1, [envelope(0)])  # sent twice
        assert b.receive(1, 1) == [envelope(0)]
        a.send(1, 2, [envelope(1)])
        # one connection keeps its order: round 1's copy comes in while b waits for round 2
        assert b.receive(2, 1) == [envelope(1)]
        assert b.stats["duplicates_dropped"] == 1 and a.stats["duplicates_sent"] == 2
    finally:
        a.close()
        b.close()


def test_fault_probabilities_are_checked():
    from actors.bus import BusFaults

    with pytest.raises(ValueError, match="duplicate must be a probability"):
        BusFaults(duplicate=1.5)


def test_three_hosts_keep_their_rounds_under_duplicates_and_delays():
    # every host sends each peer one frame per round, a third of them twice, a third held
    # back; a frame of the next round that comes in while a host still waits for this round
    # must be kept for it, not taken for a copy
    import threading

    from actors.bus import BusFaults

    faults = BusFaults(seed=7, duplicate=0.3, delay=0.3)
    hosts = [BusEndpoint("r", h, recv_timeout_s=5, faults=faults) for h in range(3)]
    for e in hosts:
        e.set_peers({p.host_id: (p.endpoint, None) for p in hosts if p is not e})
    errors, got = [], {e.host_id: [] for e in hosts}

    def run(e):
        try:
            for r in range(1, 101):
                for p in hosts:
                    if p is not e:
                        e.send(p.host_id, r, [envelope(r * 10 + e.host_id)], active=True)
                envelopes, active = e.receive_flagged(r, 2)
                got[e.host_id].append(sorted(x.seq for x in envelopes))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=run, args=(e,)) for e in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in hosts:
        e.close()
    assert errors == []
    for h, rounds in got.items():
        assert rounds == [sorted(r * 10 + p for p in range(3) if p != h) for r in range(1, 101)]
    assert sum(e.stats["duplicates_dropped"] for e in hosts) > 50


def test_the_bus_benchmark_delivers_every_envelope():
    # `qntwin bench bus` at its smallest: both sides in their own processes; the receiver
    # raises if an envelope went missing (frames queued at the sender's exit once did)
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_bus.py"
    spec = importlib.util.spec_from_file_location("bench_bus_under_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run(10)
    assert result["frames"] == 1_000 and 0 < result["ratio"] < 1
    with pytest.raises(ValueError, match="repeat must be >= 10"):
        bench.run(5)
