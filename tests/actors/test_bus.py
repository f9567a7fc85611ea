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
