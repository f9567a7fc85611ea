"""The message bus between hosts: ZeroMQ sockets carrying msgpack batches of envelopes.

ARCHITECTURE.md ("The runtime", "Bus"). A superstep's node phase runs in rounds (the nodes
answer what they received, until no message is left); in each round a host handles its inbox and
sends, per destination host, one frame holding every envelope for that host's nodes. Envelopes
between nodes of one host never touch a socket.

Wire format of a frame (msgpack, nothing else; nothing that comes off a socket is unpickled):
``[FRAME_VERSION, run_id, round, src_host, active, [envelope.to_wire(), ...]]``, ``active``
telling whether the sender's nodes sent anything in the round (hosts that run their rounds on
their own stop when no host was active, :meth:`actors.host.NodeHost.exchange`). A frame that
does not decode to that shape, or names another run, is refused with :class:`BusError` naming
what was wrong; it never reaches a node.

Sockets: every host binds one PULL socket (on its node's IP, an ephemeral port) and registers
the endpoint with the run's :class:`BusRegistry` (a named Ray actor); it connects one PUSH socket
per peer it sends to. High-water marks are explicit (a round's frames must never be dropped or
block the sender: at most one frame per peer per round is in flight) and linger is bounded, so a
closing host neither hangs nor loses a frame it already handed over. Receiving waits at most
``recv_timeout_s`` and then raises: a dead peer gives an error, never a hang.

Optional CurveZMQ authentication: ``curve=True`` gives every host a key pair (generated per
run); each host's server key is registered with its endpoint, and every PUSH socket
authenticates the PULL socket it connects to. (A ZAP handler restricting clients to the run's
public keys is not installed: any client that knows a host's public key may connect. The
issue's "keys supplied" form is not offered yet.)
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
import numpy as np
import zmq

from twin.network.messages import Envelope, MessageKind

__all__ = [
    "FRAME_VERSION",
    "BusEndpoint",
    "BusError",
    "BusFaults",
    "BusRegistry",
    "decode_frame",
    "encode_frame",
]

FRAME_VERSION = 1
# at most one frame per peer and round is in flight, and a round waits for all of them: a few
# frames of headroom is all a socket needs; larger marks only hide a protocol bug
HIGH_WATER_MARK_FRAMES = 64
LINGER_MS = 2_000  # a closing socket delivers what it holds for at most this long
# largest frame accepted: far above a superstep's batch (mega: a few hundred envelopes of
# ~100 bytes), and a bound on what a malformed or hostile frame can make a host allocate
MAX_FRAME_BYTES = 64 * 1024 * 1024


class BusError(RuntimeError):
    """A frame that cannot be accepted, or a peer that did not answer in time."""


def encode_frame(
    run_id: str, round_no: int, src_host: int, envelopes: list[Envelope], active: bool = True
) -> bytes:
    """One frame of a round: every envelope from ``src_host`` to one destination host."""
    wires = [e.to_wire() for e in envelopes]
    return msgpack.packb(
        [FRAME_VERSION, run_id, int(round_no), int(src_host), bool(active), wires],
        use_bin_type=True,
    )


def decode_frame(frame: bytes, run_id: str) -> tuple[int, int, bool, list[Envelope]]:
    """``(round, src_host, active, envelopes)`` of a frame of run ``run_id``;
    :class:`BusError` for anything else (wrong shape or types, another run, a bad envelope)."""
    if len(frame) > MAX_FRAME_BYTES:
        raise BusError(f"frame of {len(frame)} bytes exceeds the bus limit {MAX_FRAME_BYTES}")
    try:
        item = msgpack.unpackb(frame, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as err:
        raise BusError(f"frame is not valid msgpack: {err}") from None
    if not (isinstance(item, list) and len(item) == 6):
        raise BusError("frame must be a 6-item list [version, run, round, host, active, envelopes]")
    version, frame_run, round_no, src_host, active, wires = item
    if version != FRAME_VERSION:
        raise BusError(f"frame version {version!r}; this host speaks {FRAME_VERSION}")
    if frame_run != run_id:
        raise BusError(f"frame of run {frame_run!r} reached run {run_id!r}")
    if not (
        type(round_no) is int
        and type(src_host) is int
        and isinstance(active, bool)
        and isinstance(wires, list)
    ):
        raise BusError("frame round and host must be ints, active a bool, envelopes a list")
    return round_no, src_host, active, [_envelope(wire) for wire in wires]


def _envelope(wire) -> Envelope:
    if not (isinstance(wire, list) and len(wire) == 7):
        raise BusError("an envelope must be a 7-item list [src, dst, kind, t, seq, arrival, ...]")
    src, dst, kind, t_ns, seq, arrival_ns, payload = wire
    if not (isinstance(src, str) and isinstance(dst, str) and isinstance(payload, dict)):
        raise BusError(f"envelope src/dst must be str and payload a map, got {wire[:2]!r}")
    if not all(type(x) is int for x in (kind, t_ns, seq, arrival_ns)):
        raise BusError(f"envelope kind, times and seq must be ints, got {wire[2:6]!r}")
    try:
        return Envelope(src, dst, MessageKind(kind), t_ns, seq, arrival_ns, payload)
    except ValueError as err:  # unknown kind, arrival before sending
        raise BusError(f"bad envelope from {src!r} to {dst!r}: {err}") from None


@dataclass(frozen=True)
class BusFaults:
    """Faults injected at the sending side of the bus (chaos tests): each frame is sent twice
    with probability ``duplicate``, and held back with probability ``delay`` until the sender
    next waits for frames (so it arrives after frames sent later, and a duplicate possibly in
    a later round). Draws are keyed by (seed, host, frame count): the same faults every run."""

    seed: int = 0
    duplicate: float = 0.0
    delay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("duplicate", "delay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"BusFaults.{name} must be a probability in [0, 1], got {value}")


class BusEndpoint:
    """One host's sockets: a bound PULL for its inbox and a PUSH per peer it sends to.

    A round's frames are told apart by (round, sending host): a second copy of a frame, or a
    frame of a round already finished (only a copy can arrive that late), is dropped and
    counted in :attr:`stats`; envelopes are also idempotent at the nodes (``SeenMessages``).
    """

    def __init__(
        self,
        run_id: str,
        host_id: int,
        bind_ip: str = "127.0.0.1",
        *,
        curve: bool = False,
        recv_timeout_s: float = 60.0,
        faults: BusFaults | dict | None = None,
    ) -> None:
        self.run_id = run_id
        self.host_id = int(host_id)
        self.recv_timeout_ms = int(recv_timeout_s * 1000)
        self._context = zmq.Context.instance()
        self._pull = self._context.socket(zmq.PULL)
        self._pull.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK_FRAMES)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pull.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self.server_public_key: bytes | None = None
        if curve:
            public, secret = zmq.curve_keypair()
            self._pull.curve_server = True
            self._pull.curve_secretkey = secret
            self._pull.curve_publickey = public
            self.server_public_key = public
        port = self._pull.bind_to_random_port(f"tcp://{bind_ip}")
        self.endpoint = f"tcp://{bind_ip}:{port}"
        self._push: dict[int, zmq.Socket] = {}
        self._peers: dict[int, tuple[str, bytes | None]] = {}
        self._poller = zmq.Poller()
        self._poller.register(self._pull, zmq.POLLIN)
        self._early: list[tuple[int, int, bool, list[Envelope]]] = []  # of a later round
        self.faults = BusFaults(**faults) if isinstance(faults, dict) else faults
        self._held: list[tuple[int, bytes]] = []  # frames the fault injector delays
        self._n_sent = 0
        self.stats = {"frames_sent": 0, "duplicates_sent": 0, "delayed": 0,
                      "duplicates_dropped": 0}  # fmt: skip

    def set_peers(self, peers: dict[int, tuple[str, bytes | None]]) -> None:
        """host id -> (endpoint, its CurveZMQ server public key or None)."""
        self._peers = {int(h): (str(e), k) for h, (e, k) in peers.items()}

    def _socket(self, host: int) -> zmq.Socket:
        sock = self._push.get(host)
        if sock is None:
            try:
                endpoint, server_key = self._peers[host]
            except KeyError:
                raise BusError(f"host {self.host_id} has no endpoint for host {host}") from None
            sock = self._context.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK_FRAMES)
            sock.setsockopt(zmq.LINGER, LINGER_MS)
            # a send that cannot be queued within the timeout is an error, not a hang
            sock.setsockopt(zmq.SNDTIMEO, self.recv_timeout_ms)
            if server_key is not None:
                public, secret = zmq.curve_keypair()
                sock.curve_serverkey = server_key
                sock.curve_publickey = public
                sock.curve_secretkey = secret
            sock.connect(endpoint)
            self._push[host] = sock
        return sock

    def send(self, host: int, round_no: int, envelopes: list[Envelope], active: bool = True) -> int:
        """Send one frame of ``round_no`` to ``host``; returns its size in bytes."""
        frame = encode_frame(self.run_id, round_no, self.host_id, envelopes, active)
        copies = 1
        if self.faults is not None:
            dup, delay = self._draws()
            copies += dup < self.faults.duplicate
            self.stats["duplicates_sent"] += copies - 1
            if delay < self.faults.delay:
                self._held.append((host, frame))
                self.stats["delayed"] += 1
                copies -= 1
        for _ in range(copies):
            self._push_frame(host, frame)
        return len(frame)

    def _draws(self) -> tuple[float, float]:
        rng = np.random.default_rng([self.faults.seed, self.host_id, self._n_sent])
        self._n_sent += 1
        return float(rng.random()), float(rng.random())

    def flush(self) -> None:
        """Send the frames the fault injector held back, the latest first."""
        held, self._held = self._held, []
        for host, frame in reversed(held):
            self._push_frame(host, frame)

    def _push_frame(self, host: int, frame: bytes) -> None:
        try:
            self._socket(host).send(frame, copy=True)
        except zmq.Again:
            raise BusError(
                f"host {self.host_id} could not hand a frame to host {host} within "
                f"{self.recv_timeout_ms} ms: is it alive?"
            ) from None
        self.stats["frames_sent"] += 1

    def receive(self, round_no: int, n_frames: int) -> list[Envelope]:
        """The envelopes of ``n_frames`` frames of ``round_no`` (frames of later rounds are
        kept for them; a second copy of a frame, or a frame of an earlier round, is
        dropped)."""
        return self.receive_flagged(round_no, n_frames)[0]

    def receive_flagged(self, round_no: int, n_frames: int) -> tuple[list[Envelope], bool]:
        """:meth:`receive`, and whether any of the frames' senders was active. Waits for
        frames from ``n_frames`` distinct hosts."""
        self.flush()  # never wait while holding frames a peer may be waiting for
        got: list[Envelope] = []
        any_active = False
        senders: set[int] = set()

        def take(frame) -> None:
            nonlocal any_active
            frame_round, src, active, envelopes = frame
            if frame_round > round_no:
                self._early.append(frame)
            elif frame_round < round_no or src in senders:
                self.stats["duplicates_dropped"] += 1  # a copy (originals came first)
            else:
                senders.add(src)
                any_active |= active
                got.extend(envelopes)

        early, self._early = self._early, []
        for frame in early:
            take(frame)
        while len(senders) < n_frames:
            if not self._poller.poll(self.recv_timeout_ms):
                raise BusError(
                    f"host {self.host_id} waited {self.recv_timeout_ms} ms for "
                    f"{n_frames - len(senders)} frame(s) of round {round_no}: a peer host is "
                    "gone or stuck"
                )
            take(decode_frame(self._pull.recv(copy=True), self.run_id))
        return got, any_active

    def close(self) -> None:
        for sock in self._push.values():
            sock.close()
        self._pull.close()
        self._push.clear()


class BusRegistry:
    """The run's bus endpoints, host id -> (endpoint, CurveZMQ server key or None): a named
    Ray actor (``actors.runtime``) that every host registers with, the driver reads back, and
    hosts restored after a loss register with again."""

    def __init__(self) -> None:
        self._endpoints: dict[int, tuple[str, bytes | None]] = {}

    def register(self, host_id: int, endpoint: str, server_key: bytes | None) -> bool:
        self._endpoints[int(host_id)] = (str(endpoint), server_key)
        return True

    def endpoints(self) -> dict[int, tuple[str, bytes | None]]:
        return dict(self._endpoints)
