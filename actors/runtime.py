"""The twin on Ray: the engine's node sets in host actors, their messages over the ZeroMQ bus.

ARCHITECTURE.md ("The runtime"). The driver process runs the clock: the engine's tick loop with
G(t), the controller, handovers and energy inputs, as in the single-process engine. What moves
out are the nodes and their state: :class:`RayNodeGroup` stands where the engine's
:class:`twin.network.nodes.NodeGroup` stands and spreads the node sets over :class:`NodeHost`
actors, one per shard of the placement (:mod:`actors.placement`). A tick then is two requests
per host:

1. its start (:meth:`actors.host.NodeHost.environment`), as soon as the driver has G(t): the
   key-generating links each host's nodes own, the key generation on them, and the host's
   share of the batteries' step;
2. its node phase (:meth:`actors.host.NodeHost.superstep`), once the driver has readied the
   tick (handovers, loans, forwarding updates): the message rounds, which the hosts run among
   themselves over the bus until a round in which no host sent anything (the barrier; with
   many hosts each round goes through host 0: :meth:`actors.host.NodeHost.exchange`), then
   the tick's counters (integers, summed) and the key totals.

The node phase is sent and the driver goes on to build the next G(t); the engine collects the
tick's result, with its batteries', after that (``NodeGroup.submit_superstep``).

The request goes as a command over the bus, not as a Ray call: the driver has its own bus
endpoint (:data:`actors.bus.DRIVER`), and a host serves its commands in one long Ray call
(:meth:`actors.host.NodeHost.serve`), replying with the tick's results. A Ray call costs ~1-2
ms of CPU on the two cores here, per host and tick, which made per-node runs twice as slow as a
bare barrier over as many actors; a bus round trip costs a tenth of that. The entanglement
service's memory loans go as commands too (the memories as plain values), and so do a link's
key-buffer fill level and a tick's start (G(t)'s links, sent as soon as the driver has G(t)).
Ray calls remain for what needs pickled objects or comes rarely (a tick's start carrying a
battery model, checkpoints, views, expiry): before one, the driver tells the host to stop
serving; Ray runs the host's calls in order, so it takes the call after the commands before it,
and serves again after.

Since a host does what one of a NodeGroup's sets does, round for round, a run under Ray gives
the same results as the single-process engine for every placement (tests/actors pin the
metrics byte for byte).

Recovery: every call or command that may change a host's state is logged; every
``checkpoint_every`` ticks each host pickles its state, the driver fetches it (once it is there,
without holding up the ticks) and the log restarts from it. When a host is lost, every host is
restored from the last checkpoint and the log replayed (as Ray calls), and the run goes on
exactly as a fault-free run (``RayNodeGroup.restarts`` counts the recoveries). A host lost while
serving commands is noticed by its serve call, which the driver watches while it waits for
replies. The checkpoints live in the driver's memory (~1.4 MB for ``mega``), so losing a whole
cluster node, not just a host process, loses none.

The bus endpoints are registered with a named Ray actor (:class:`actors.bus.BusRegistry`,
made again with every set of hosts). The controller runs on controller actors
(:mod:`actors.controllers`, wired in by :func:`ray_engine`). Not here yet (the runtime issue
goes on): the telemetry exporter, and the speed targets not met yet (README, "Performance").
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from actors.bus import DRIVER, BusEndpoint, BusError, BusRegistry, encode_frame
from actors.host import (
    NodeHost,
    environment_command,
    environment_result,
    lent_memories,
    local_bus_kwargs,
    pack_array,
    pack_links,
    superstep_result,
    tick_command,
    unpack_array,
)
from actors.placement import placement
from twin.network.memory_slots import QuantumMemory
from twin.network.messages import Envelope
from twin.network.nodes import (
    MergedViews,
    Superstep,
    TickCounters,
    generating_links,
    merge_key_fills,
    node_partitions,
    quantum_kind_table,
)

__all__ = ["RayNodeGroup", "RuntimeUnavailable", "ray_engine", "ray_session"]

# a host that does not answer a call in this long is taken for dead (the call raises)
CALL_TIMEOUT_S = 120.0
MAX_RESTARTS = 20  # recoveries in one run before the run gives up (the cluster is unhealthy)
# the memory a host asks Ray for: a token, because Ray places an actor that asks for no resource
# at all on a random node whatever its scheduling strategy (ray-project/ray#25360 made an
# exception for hard node affinity only), and the hosts' placement must be the one asked for
PLACEMENT_TOKEN_BYTES = 1 << 20
# round numbers reserved per tick when the hosts run the rounds themselves (the driver numbers
# the next tick's before this one's come back); a relay takes 4 rounds, a tick ~5
ROUNDS_PER_TICK_MAX = 1_000
PROBE_TIMEOUT_S = 5.0  # a cluster's head answers a TCP connect at once
# while the driver waits for hosts' replies over the bus, it looks this often whether one of
# them failed (its serve call ended with an error): how soon a lost host is noticed
WATCH_INTERVAL_MS = 50
# a host's serve call ended (told to stop) and a reply it sent before is still missing after
# this long: the reply was lost with the host's process (killed with the reply still in its
# socket's queue), and the hosts are recovered as from any other loss. Replies take ms.
REPLY_GRACE_S = 10.0
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


class RuntimeUnavailable(RuntimeError):
    """Ray could not be started or reached (message names the address and the fix)."""


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of a run: a local instance started (and stopped) here when
    ``address`` is None, else a connection to the cluster at ``address`` (left running)."""
    import ray

    if address is not None:
        _probe(address)
    if ray.is_initialized():  # a session already open in this process (tests): use it
        yield
        return
    kwargs = dict(
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        runtime_env={"env_vars": dict(WORKER_ENV)},
    )
    try:
        if address is None:
            ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RuntimeUnavailable(
            f"cannot start or reach Ray at --address {address!r}: {first}. Give the address "
            "of a running cluster's head (host:port, e.g. 10.0.0.5:6379, or 'auto' on a "
            "cluster node), or leave --address out to start Ray on this machine"
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def _probe(address: str) -> None:
    """Refuse an address nothing answers at, at once: ``ray.init`` itself retries a dead
    address for minutes before it gives up."""
    if address == "auto":
        return  # Ray finds the cluster of this machine itself, and says so if there is none
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RuntimeUnavailable(
            f"--address {address!r} is not host:port (e.g. 10.0.0.5:6379, or ray://host:10001 "
            "for Ray Client, or 'auto' on a cluster node)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S) as conn:
            # a cluster with TLS (RAY_USE_TLS) answers a plaintext preface with an alert: the
            # probe then only checks that something listens, and ray.init the rest
            tls = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")
            speaks_grpc = tls or _speaks_http2(conn)
    except OSError as err:
        raise RuntimeUnavailable(
            f"no Ray cluster answers at --address {address!r} ({err.strerror or err}): start "
            "one there (ray start --head), fix the address, or leave --address out to start "
            "Ray on this machine"
        ) from None
    if not speaks_grpc:
        raise RuntimeUnavailable(
            f"something answers at --address {address!r}, but not a Ray cluster's head: the "
            "port is in use by another service. Give the head's GCS port (ray start --head "
            "prints it; 6379 by default) or its Ray Client port with ray:// (10001 by default)"
        )


# the client side of an HTTP/2 connection's start (RFC 9113, 3.4): the preface, then an empty
# SETTINGS frame (9-byte header: length 0, type 0x4, no flags, stream 0)
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_HTTP2_SETTINGS = 0x4


def _speaks_http2(conn: socket.socket) -> bool:
    """Whether the server on ``conn`` answers as an HTTP/2 server: its first frame must be a
    SETTINGS frame. Ray's head (GCS) and Ray Client servers are gRPC, which is HTTP/2; another
    service on the port (a web server, a database, a Redis) answers otherwise, or not at all,
    and ``ray.init`` would retry it for minutes."""
    try:
        conn.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = conn.recv(9 - len(header))
            if not chunk:
                break
            header += chunk
    except OSError:  # reset, or silent past the timeout
        return False
    return len(header) == 9 and header[3] == _HTTP2_SETTINGS and header[5:9] == bytes(4)


def _no_answer(what: str) -> RuntimeUnavailable:
    return RuntimeUnavailable(
        f"an actor (host or controller) did not answer {what} within {CALL_TIMEOUT_S:.0f} s: "
        "the cluster is overloaded or a node is gone"
    )


def _round_robin_over_nodes(count: int) -> list:
    """Scheduling strategies placing ``count`` actors in turn on the cluster's live nodes, the
    driver's first (one node: all on it), so that a lost node takes its share of them and no
    more. Soft: a node that died since it was listed gives its actors to the others. (The actors
    must ask for some resource, :data:`PLACEMENT_TOKEN_BYTES`, for Ray to heed the strategy.)"""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    driver = ray.get_runtime_context().get_node_id()
    live = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
    order = [driver] + [node for node in live if node != driver]
    return [
        NodeAffinitySchedulingStrategy(node_id=order[i % len(order)], soft=True)
        for i in range(count)
    ]


def _one_more_restart(restarts: int, actors: str, cause) -> int:
    """``restarts`` + 1, or a RuntimeUnavailable once ``actors`` (hosts, controller actors)
    were lost :data:`MAX_RESTARTS` times in the run."""
    if restarts >= MAX_RESTARTS:
        raise RuntimeUnavailable(
            f"{actors} were lost {restarts + 1} times in one run (last: {cause}); giving up: "
            "the cluster is unhealthy"
        )
    return restarts + 1


def _get(refs, what: str):
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    try:
        return ray.get(refs, timeout=CALL_TIMEOUT_S)
    except GetTimeoutError:
        raise _no_answer(what) from None
    except RayActorError as err:
        raise RuntimeUnavailable(f"an actor died during {what}: {err}") from None
    except RayTaskError as err:
        cause = err.cause if isinstance(err.cause, Exception) else None
        if isinstance(cause, BusError | RuntimeError | ValueError):
            raise type(cause)(f"{what}: {cause}") from None
        raise


_NO_RESULT = object()


class _ReplyLost(RuntimeError):
    """An actor's reply to a command never came, though its serve call ended long ago
    (:data:`REPLY_GRACE_S`)."""


class _Call:
    """A logged call to an actor (``host``: a host's number, or an edge actor's id on its
    bus; None for an actor not on a bus): replayed after a recovery (a Ray call), with its
    ``ref`` replaced. A call sent as a command over the bus has no ``ref`` until then: its
    ``result`` comes with the actor's reply to command ``seq``, from the actor's ``serve``
    call (watched for the actor's loss)."""

    __slots__ = ("args", "host", "method", "ref", "result", "seq", "serve")

    def __init__(self, host: int | None, method: str, args: tuple) -> None:
        self.host, self.method, self.args, self.ref = host, method, args, None
        self.result, self.seq, self.serve = _NO_RESULT, None, None


def _get_first_failure(refs, what: str) -> list:
    """``ray.get(refs)``, but a lost actor raises as soon as its call fails (``ray.get`` of a
    list would first wait for the calls before it: hosts blocked on a lost host's frames).
    Each result is fetched once."""
    import ray

    at = {ref: i for i, ref in enumerate(refs)}
    if len(at) != len(refs):
        raise ValueError("_get_first_failure takes distinct refs")
    results: list = [None] * len(refs)
    remaining = list(refs)
    while remaining:
        ready, remaining = ray.wait(remaining, num_returns=1, timeout=CALL_TIMEOUT_S)
        if not ready:
            raise _no_answer(what)
        results[at[ready[0]]] = _result_of(ready[0], what)
    return results


def _result_of(ref, what: str):
    """A finished call's result; a lost actor raises RayActorError (the caller recovers), the
    call's own error is reported with its cause (:func:`_get`)."""
    import ray
    from ray.exceptions import RayActorError

    try:
        return ray.get(ref, timeout=CALL_TIMEOUT_S)
    except RayActorError:
        raise
    except Exception:
        _get(ref, what)
        raise


class CommandChannel:
    """The driver's end of the commands it sends over the bus to actors that serve them: the
    hosts' ticks (:meth:`actors.host.NodeHost.serve`) and the edge actors' decisions
    (:meth:`actors.controllers.EdgeController.serve`).

    An actor serves commands in one long Ray call, ``serve(first_seq)``, started by the first
    command after it took Ray calls. Commands are numbered per actor (``seq``, never reused,
    across recoveries too) and each reply repeats its command's number. Before a Ray call to
    an actor the driver tells it to stop serving (:meth:`halt`): Ray runs an actor's calls in
    order, so the Ray call runs once the serve call has returned; what that serve call
    returned (how many commands it ran), or its error, is looked at by :meth:`check_halted`.

    ``peers``: how many actors (bus ids 0..N-1, the driver being :data:`DRIVER`); ``kind``
    names them in errors; ``parse_reply(body, call)`` checks a reply's body and gives the
    call's result (a BusError for a malformed one).
    """

    def __init__(self, run_id: str, peers: int, bus_kwargs: dict, kind: str, parse_reply):
        self.endpoint = BusEndpoint(run_id, DRIVER, **local_bus_kwargs(bus_kwargs))
        self.kind = kind
        self.parse_reply = parse_reply
        self.next_seq = [0] * peers  # each actor's next command number (never reused)
        self.restarted()

    def restarted(self, peers: Iterable[int] | None = None) -> None:
        """The actors ``peers`` (None: all) were started afresh (or for the first time): none
        of them serves commands, their replies are awaited no more (a restarted actor's calls
        are replayed as Ray calls), their old serve calls are watched no more."""
        if peers is None:
            n = len(self.next_seq)
            self.serving: list = [None] * n  # each actor's serve call while it serves, or None
            self.served = [0] * n  # commands sent to each actor's current serve call
            self.on_channel: dict[tuple[int, int], _Call] = {}  # (actor, seq) -> unanswered
            self.halted: list[tuple] = []  # (actor, serve call, commands sent): told to stop
            return
        peers = set(peers)
        for peer in peers:
            self.serving[peer], self.served[peer] = None, 0
        self.on_channel = {key: c for key, c in self.on_channel.items() if key[0] not in peers}
        self.halted = [h for h in self.halted if h[0] not in peers]

    def command(self, handle, call: _Call, body: list) -> None:
        """Send ``call`` (to actor ``call.host``, whose Ray handle is ``handle``) as command
        ``body`` (msgpack values only). An actor that is not serving commands is told to (its
        ``serve`` call runs after the Ray calls already sent to it)."""
        peer = call.host
        if self.serving[peer] is None:
            self.serving[peer] = handle.serve.remote(self.next_seq[peer])
            self.served[peer] = 0
        self.served[peer] += 1
        call.seq, call.serve = self.next_seq[peer], self.serving[peer]
        self.next_seq[peer] += 1
        self.endpoint.send_call(peer, call.seq, body)
        self.on_channel[(peer, call.seq)] = call

    def halt(self, peer: int) -> None:
        """Tell ``peer`` to stop serving commands (before a Ray call to it: while it serves,
        it takes none). What the serve call returns, or its error, is looked at with the next
        wait (:meth:`check_halted`)."""
        serve = self.serving[peer]
        if serve is not None:
            self.endpoint.send_call(peer, self.next_seq[peer], ["stop"])
            self.next_seq[peer] += 1
            self.endpoint.flush()  # (a stop the fault injector held must go out now)
            self.serving[peer] = None
            self.halted.append((peer, serve, self.served[peer]))

    def check_halted(self) -> None:
        """The serve calls told to stop that have ended: an error of one (a bad frame that came
        while the actor waited for a command) raises here, as a Ray call's would, and so does
        one that ran another number of commands than it was sent."""
        import ray

        if not self.halted:
            return
        ready, _ = ray.wait([r for _, r, _ in self.halted], num_returns=len(self.halted),
                            timeout=0)  # fmt: skip
        ready = set(ready)
        halted, self.halted = self.halted, []
        for peer, ref, sent in halted:
            if ref not in ready:
                self.halted.append((peer, ref, sent))
                continue
            ran = _result_of(ref, f"{self.kind} {peer}'s commands")
            if ran != sent:
                raise BusError(f"{self.kind} {peer} ran {ran} of the {sent} commands sent to it")

    def collect(self, calls: list[_Call], what: str) -> list:
        """The results of ``calls``: Ray calls' from their refs, commands' from the actors'
        replies over the bus. While replies are awaited, the Ray calls and the commands' serve
        calls are watched together, so whichever actor is lost is noticed (a host lost stalls
        its peers' rounds, on either path): an actor lost raises RayActorError, a reply lost
        with its actor :class:`_ReplyLost` (the caller recovers from both), an actor's own
        error raises as a Ray call's would (:func:`_get`). A copy of a reply, or one from
        actors lost since, is dropped."""
        import ray
        from ray.exceptions import RayActorError

        on_channel = [c for c in calls if c.ref is None]
        refs = [c.ref for c in calls if c.ref is not None]
        if not on_channel:
            done = iter(_get_first_failure(refs, what))
            return [next(done) for _ in calls]
        got: dict = {}  # ref -> its result
        deadline = time.monotonic() + CALL_TIMEOUT_S
        ended_at: dict = {}  # serve calls that ended, told to stop: when they were seen ended
        while True:
            waiting = [c for c in on_channel if c.result is _NO_RESULT]
            remaining = [r for r in refs if r not in got]
            if not waiting:
                got.update(zip(remaining, _get_first_failure(remaining, what), strict=True))
                break
            reply = self.endpoint.poll_call(WATCH_INTERVAL_MS)
            if reply is not None:
                seq, peer, body = reply
                call = self.on_channel.pop((peer, seq), None)
                if call is None:
                    self.endpoint.stats["duplicates_dropped"] += 1
                else:
                    call.result = self.parse_reply(body, call)
                continue
            serves = list({c.serve for c in waiting})
            watched = remaining + serves
            ended, _ = ray.wait(watched, num_returns=len(watched), timeout=0)
            failures = []
            for ref in ended:
                try:
                    value = ray.get(ref)
                except RayActorError:
                    raise  # a lost actor first: its peers' errors follow from its loss
                except Exception:
                    failures.append(ref)
                    continue
                if ref not in serves:
                    got[ref] = value
                else:  # told to stop: its replies were sent before, and take ms to come
                    seen = ended_at.setdefault(ref, time.monotonic())
                    if time.monotonic() - seen > REPLY_GRACE_S:
                        lost = [(c.host, c.seq) for c in waiting if c.serve == ref]
                        raise _ReplyLost(
                            f"({self.kind}, command) {lost} of {what}: the replies never came "
                            f"though the {self.kind}'s serve call ended {REPLY_GRACE_S:.0f} s ago"
                        )
            if failures:
                _get(failures[0], what)  # raises the actor's error, with its cause
            if time.monotonic() > deadline:
                raise _no_answer(what)
        return [got[c.ref] if c.ref is not None else c.result for c in calls]

    def close(self) -> None:
        self.endpoint.close()


def _host_reply(body, call: _Call):
    """The result of a host's reply to command ``call`` (checked, as the Ray call's would be)."""
    if call.method == "superstep":
        return superstep_result(body, call.host, call.seq)
    if call.method == "environment":
        return environment_result(body, call.host, call.seq, call.args[1])
    if call.method == "lend_memories":
        return lent_memories(body, call.host, call.seq, call.args[0])
    if call.method == "link_available_bits":
        if not (len(body) == 1 and type(body[0]) is int and body[0] >= 0):
            raise BusError(
                f"host {call.host}'s reply to fill-level command {call.seq} must be [bits >= 0], "
                f"got {body!r:.80}"
            )
        return body[0]
    taken = len(call.args[0])  # a return of memories: the reply is how many were taken
    if body != [taken]:
        raise BusError(
            f"host {call.host}'s reply to {call.method} command {call.seq} must be [{taken}] "
            f"(the memories it took), got {body!r:.80}"
        )
    return None


class RayNodeGroup(MergedViews):
    """The engine's :class:`twin.network.nodes.NodeGroup`, with the node sets in host actors.

    Called as NodeGroup is (``partitions``: the node indices of each host, e.g. from
    :func:`actors.placement.placement`); ``bus_kwargs`` go to each host's
    :class:`actors.bus.BusEndpoint`. It offers what the engine uses of a NodeGroup (the tick's
    ``environment`` and ``submit_superstep``, memory loans, fill levels, expiry, batteries'
    state, the views), not the per-round ``deliver`` / ``end_tick`` of tests on NodeGroup.
    Needs Ray initialised (:func:`ray_session`). Close it (:meth:`close`) to stop the hosts.
    """

    def __init__(
        self,
        names: Sequence[str],
        partitions: Sequence[Iterable[int]],
        flows,
        *,
        bus_kwargs: dict | None = None,
        checkpoint_every: int = 60,
        key_telemetry: bool = False,
        **node_kwargs,
    ) -> None:
        groups = node_partitions(names, partitions)
        self.key_telemetry = bool(key_telemetry)
        """whether the hosts report their link buffers' fill levels with each tick's end
        (``NodeGroup.key_telemetry``)"""
        self.names = tuple(names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self.run_id = uuid.uuid4().hex[:12]
        batteries = node_kwargs["batteries"]
        self.battery_counts = {p: len(ix) for p, (ix, _) in batteries.items()}
        """platform -> number of nodes with a battery"""
        host_of_index = np.empty(len(names), dtype=np.int64)
        for h, g in enumerate(groups):
            host_of_index[g] = h
        self._host_of = {name: int(host_of_index[i]) for i, name in enumerate(self.names)}
        self._host_of_index = host_of_index
        self._quantum_kind = quantum_kind_table(node_kwargs["quantum_edge_kinds"])
        # each host's rows among a platform's batteries (as NodeSet.platforms has them)
        self._rows: list[dict[str, np.ndarray]] = []
        for h in range(len(groups)):
            rows = {}
            for platform, (indices, _) in batteries.items():
                indices = np.asarray(indices, dtype=np.int64)
                rows[platform] = np.flatnonzero(host_of_index[indices] == h)
            self._rows.append(rows)
        self._groups = groups
        self._host_args = (flows, node_kwargs, dict(bus_kwargs or {}))
        self.checkpoint_every = int(checkpoint_every)
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1 tick, got {checkpoint_every!r}")
        self.restarts = 0
        """how many times the hosts were restored from a checkpoint (lost hosts survived)"""
        self._log: list[_Call] = []  # every state-changing call since the kept checkpoint
        # each host's state at the last checkpoint, pickled by the host and held here in the
        # driver (so it survives the loss of the node a host ran on)
        self._checkpoint: list[bytes] | None = None
        # a checkpoint asked for and not yet kept: (its calls' refs, its place in the log)
        self._taking: tuple[list, int] | None = None
        self._ticks = 0
        self.hosts: list = []
        self._registry = None  # the run's BusRegistry actor, made with the first hosts
        # the driver's commands to the hosts over the bus, and their replies
        self._channel: CommandChannel | None = None
        self._start_hosts()
        self._round = 0
        # calls submitted without waiting (their errors surface with the next superstep's)
        self._pending: list = []
        self._starts: list = []  # the tick's start: (environment calls, battery shares, sizes)
        self._models: list = []  # battery power models by number (_model_key)
        self._model_keys: dict[int, int] = {}
        self._models_sent: list[set[int]] = [set() for _ in self.hosts]

    # --- hosts, the call log, checkpoints and recovery -------------------------------------------

    def _start_hosts(self) -> None:
        """Start one host per shard and wire the bus between them."""
        import ray

        flows, node_kwargs, bus_kwargs = self._host_args
        if self._channel is None:
            self._channel = CommandChannel(
                self.run_id, len(self._groups), bus_kwargs, "host", _host_reply
            )
        self._channel.restarted()  # (after a loss: no host serves, nothing is awaited)
        host_class = ray.remote(
            num_cpus=0, memory=PLACEMENT_TOKEN_BYTES, max_restarts=0, max_task_retries=0
        )(NodeHost)
        on_nodes = _round_robin_over_nodes(len(self._groups))
        self.hosts = [
            host_class.options(
                name=f"qntwin-host-{self.run_id}-{self.restarts}-{h}",
                scheduling_strategy=on_nodes[h],
            ).remote(
                self.run_id,
                h,
                self.names,
                g,
                flows,
                node_kwargs,
                bus_kwargs,
                self.key_telemetry,
            )
            for h, g in enumerate(self._groups)
        ]
        try:
            # a registry per set of hosts: the last one may have been lost with its node
            if self._registry is not None:
                with contextlib.suppress(Exception):
                    ray.kill(self._registry)
            registry_name = f"qntwin-bus-{self.run_id}-{self.restarts}"
            self._registry = (
                ray.remote(num_cpus=0, max_restarts=0)(BusRegistry)
                .options(name=registry_name)
                .remote()
            )
            _get([h.register.remote(registry_name) for h in self.hosts], "start-up")
            endpoints = _get(self._registry.endpoints.remote(), "bus registry")
            peers = {h: endpoints[h] for h in range(len(self.hosts))}
            endpoint = self._channel.endpoint
            endpoint.set_peers(peers)
            peers[DRIVER] = endpoint.address
            _get([h.connect.remote(peers, self._host_of) for h in self.hosts], "bus set-up")
        except BaseException:
            self.close()
            raise

    def _call(self, host: int, method: str, *args) -> _Call:
        """Submit a call that may change a host's state, and log it for replay."""
        self._channel.halt(host)
        call = _Call(host, method, args)
        call.ref = getattr(self.hosts[host], method).remote(*args)
        self._log.append(call)
        return call

    def _command(self, host: int, *args) -> _Call:
        """Submit a superstep as a command over the bus (``args``: :meth:`NodeHost.superstep`'s,
        msgpack values only), and log it for replay."""
        return self._send(host, "superstep", args, tick_command(*args))

    def _send(self, host: int, method: str, args: tuple, body: list) -> _Call:
        """Submit the call ``method(*args)`` to ``host`` as command ``body`` over the bus (a
        replay makes it as a Ray call), and log it."""
        call = _Call(host, method, args)
        self._channel.command(self.hosts[host], call, body)
        self._log.append(call)
        return call

    def _halt_all(self) -> None:
        for host in range(self.n_hosts):
            self._channel.halt(host)

    def _wait(self, calls: list[_Call], what: str) -> list:
        """The results of ``calls``; a lost host is recovered (:meth:`_recover`) and the calls'
        results come from the replay."""
        from ray.exceptions import RayActorError

        while True:
            try:
                self._channel.check_halted()
                results = self._channel.collect(calls, what)
                break
            except (RayActorError, _ReplyLost) as err:
                self._recover(err)
        self._keep_checkpoint()
        return results

    def _recover(self, cause) -> None:
        """Restore every host from the last checkpoint and replay the logged calls since, so
        the hosts end exactly where they were (each call's ref is replaced by its replay's).

        Every host is restored, not only the lost one: the others are mid-tick, some waiting
        for the lost host's frames, and the checkpoint is a consistent cut of all of them.
        """
        import ray

        self.restarts = _one_more_restart(self.restarts, "hosts", cause)
        self._taking = None  # its hosts are gone; the log reaches back to the kept checkpoint
        for host in self.hosts:
            with contextlib.suppress(Exception):
                ray.kill(host, no_restart=True)
        self._start_hosts()  # (no host serves commands: the replay goes as Ray calls)
        if self._checkpoint is not None:
            restores = [
                host.restore.remote(state)
                for host, state in zip(self.hosts, self._checkpoint, strict=True)
            ]
            _get(restores, "restore")
        # (a command's reply is awaited no more once it is replayed: _keep_checkpoint keeps
        # every unanswered command in the log; _start_hosts forgot the lost hosts' serve calls)
        for call in self._log:
            call.ref = getattr(self.hosts[call.host], call.method).remote(*call.args)

    def _maybe_checkpoint(self) -> None:
        """Every ``checkpoint_every`` ticks: ask each host for its state after the tick just
        submitted (Ray runs a caller's calls to an actor in order). The states are fetched
        once they are there (:meth:`_keep_checkpoint`), without holding up the ticks; until
        then the previous checkpoint and the log since it stand."""
        self._ticks += 1
        if self._ticks % self.checkpoint_every:
            return
        if self._taking is not None:  # the last one is not kept yet (a rare, slow host)
            self._keep_checkpoint(timeout_s=CALL_TIMEOUT_S)
        self._halt_all()
        self._taking = ([host.checkpoint.remote() for host in self.hosts], len(self._log))

    def _keep_checkpoint(self, timeout_s: float = 0.0) -> None:
        """Fetch a checkpoint whose states are ready (within ``timeout_s``) into the driver
        and cut the log there. A checkpoint whose host was lost is dropped: the lost host is
        found by the next call that needs it, and recovered from the previous checkpoint."""
        import ray

        if self._taking is None:
            return
        refs, at = self._taking
        on_channel = self._channel.on_channel
        if on_channel and not on_channel.keys().isdisjoint((c.host, c.seq) for c in self._log[:at]):
            # a command before the checkpoint is unanswered: its reply is still to come, and
            # if its host were lost first, the replay that gives it again must reach back
            # before that command (kept later, once it is answered)
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        if len(ready) < len(refs):
            return
        self._taking = None
        from ray.exceptions import ObjectLostError, RayActorError

        try:
            states = _get_first_failure(refs, "checkpoint")
        except (RayActorError, ObjectLostError):
            return  # a lost host: the next call that needs it recovers it
        self._checkpoint = states
        self._log = self._log[at:]

    # --- NodeGroup's interface ------------------------------------------------------------------

    @property
    def n_hosts(self) -> int:
        return len(self.hosts)

    def bus_stats(self) -> dict[str, int]:
        """The bus counters of the hosts and the driver summed (frames, bundles and calls
        sent, faults injected, copies dropped)."""
        total: dict[str, int] = {}
        self._halt_all()
        per_host = _get([h.bus_stats.remote() for h in self.hosts], "bus counters")
        for stats in [*per_host, self._channel.endpoint.stats]:
            for key, value in stats.items():
                total[key] = total.get(key, 0) + value
        return total

    def host_of(self, name: str) -> int:
        """The host (index into :attr:`hosts`) that holds node ``name``."""
        return self._host_of[name]

    def owner(self, a: str, b: str) -> str:
        return a if self._index[a] < self._index[b] else b

    def environment(self, snap, t_ns: int, battery_steps=()) -> None:
        """Start a tick: each host gets the key-generating links its nodes own
        (``NodeSet.generate``; a few kB each, where G(t) whole is ~1 MB on ``mega``) and its
        share of the tick's battery steps at once, as commands not waited for (a host takes
        them in order; their results and errors come with the tick's node phase,
        :meth:`submit_superstep`). So a host generates the tick's key and steps its batteries
        while the driver readies the tick (handovers, loans, forwarding updates), where it
        otherwise idles; riding with the tick's superstep, they lay on the node phase's
        critical path, and as Ray calls (before a loan or a fill level) they halted every
        host's serving, ~3 ms a tick on ``mega``."""
        a, b, skr_bps = generating_links(snap, self._quantum_kind)
        host = self._host_of_index[np.minimum(a, b)]
        order = np.argsort(host, kind="stable")  # each host's links in G(t)'s order
        bounds = np.searchsorted(host[order], np.arange(self.n_hosts + 1))
        shares, sizes = self._battery_shares(battery_steps)
        calls = []
        for h in range(self.n_hosts):
            mine = order[bounds[h] : bounds[h + 1]]
            steps = [args for _, _, args in shares[h]]
            args = (int(t_ns), pack_links(a[mine], b[mine], skr_bps[mine]), steps)
            if any(step[4] is not None for step in steps):
                calls.append(self._call(h, "environment", *args))  # a power model to pickle
            else:
                calls.append(self._send(h, "environment", args, environment_command(*args)))
        self._channel.endpoint.flush()
        self._starts.append((calls, shares, sizes))

    def _battery_shares(self, battery_steps) -> tuple[list, list[int]]:
        """Each host's share of each battery step, ``(step index, its rows, the host's
        arguments)``, and each step's number of batteries."""
        shares: list[list[tuple[int, np.ndarray, tuple]]] = [[] for _ in self.hosts]
        sizes = []
        for k, (platform, sun, load_w, model, dt_s) in enumerate(battery_steps):
            n = self.battery_counts[platform]
            sizes.append(n)
            sun = np.broadcast_to(np.asarray(sun, dtype=float), (n,))
            load = np.broadcast_to(np.asarray(load_w, dtype=float), (n,))
            for h, rows in enumerate(self._rows):
                r = rows[platform]
                if r.size:
                    key, send = self._model_key(h, model)
                    args = (platform, pack_array(sun[r], np.float64),
                            pack_array(load[r], np.float64), key, send, float(dt_s))  # fmt: skip
                    shares[h].append((k, r, args))
        return shares, sizes

    def _model_key(self, host: int, model) -> tuple[int, object | None]:
        """A battery power model's number, and the model itself when ``host`` has not been
        sent it yet (hosts keep the models they were sent: a model goes once per host, not
        with every tick's battery step)."""
        key = self._model_keys.get(id(model))
        if key is None:
            key = self._model_keys[id(model)] = len(self._models)
            self._models.append(model)  # held: its id stays this model's for the run
        if key in self._models_sent[host]:
            return key, None
        self._models_sent[host].add(key)
        return key, model

    def submit_superstep(self, inbox: list[Envelope], trace=None):
        """NodeGroup.submit_superstep: one request per host (rounds among the hosts, end of
        tick; the tick's start went before, :meth:`environment`, and its battery steps come
        back here), submitted here and collected by the callable returned, so the driver
        builds the next G(t) meanwhile."""
        if trace is not None:
            raise ValueError("an envelope trace needs the local runtime (--runtime local)")
        by_host: dict[int, list[Envelope]] = {}  # each host's envelopes
        for envelope in inbox:
            host = self._host_of.get(envelope.dst)
            if host is None:
                raise RuntimeError(f"envelope for unknown node {envelope.dst!r}")
            by_host.setdefault(host, []).append(envelope)
        if len(self._starts) != 1:
            raise RuntimeError(
                f"a tick's node phase follows its one start (environment), got {len(self._starts)}"
            )
        ((starts, shares, sizes),) = self._starts
        self._starts = []
        pending, self._pending = self._pending, []
        n = len(self.hosts)
        calls = []
        for h in range(n):
            # the inbox travels as a bus frame, checked on arrival as any frame is
            frame = encode_frame(self.run_id, self._round, DRIVER, by_host.get(h, []))
            calls.append(self._command(h, self._round, frame, n))
        self._channel.endpoint.flush()  # (commands the fault injector held go out with the tick)
        # every host runs the same rounds: the next tick starts past as many as it could
        # possibly use (a round sends at least one message, and a tick's messages are few)
        first_round = self._round
        self._round += ROUNDS_PER_TICK_MAX

        self._maybe_checkpoint()

        def finish() -> Superstep:
            results = self._wait(pending + starts + calls, "superstep")[len(pending) :]
            stepped, results = results[:n], results[n:]
            ends = {r[0] for r in results}  # every host ran the same rounds
            used = max(ends) - first_round
            if len(ends) > 1 or not 0 < used <= ROUNDS_PER_TICK_MAX:
                raise RuntimeError(
                    f"a tick's node phase ended at rounds {sorted(ends)} on the hosts, from "
                    f"round {first_round}: each must end at the same round, within the "
                    f"{ROUNDS_PER_TICK_MAX} reserved per tick"
                )
            return self._assemble([r[1] for r in results], stepped, shares, sizes)

        return finish

    def _assemble(self, closed, stepped, shares, sizes) -> Superstep:
        """One Superstep from the hosts' (end_tick results, battery steps)."""
        outputs = [(np.empty(n), np.zeros(n, dtype=bool)) for n in sizes]
        for host, (share, host_steps) in enumerate(zip(shares, stepped, strict=True)):
            lengths = [(len(soc_j), len(below)) for soc_j, below in host_steps]
            if lengths != [(8 * rows.size, rows.size) for _, rows, _ in share]:
                raise BusError(
                    f"host {host} answered battery steps of {lengths} bytes (soc_j, below "
                    f"reserve) for {[rows.size for _, rows, _ in share]} batteries"
                )
            for (k, rows, _), (soc_j, below) in zip(share, host_steps, strict=True):
                outputs[k][0][rows] = unpack_array(soc_j, np.float64)
                outputs[k][1][rows] = unpack_array(below, np.bool_)
        fill = None
        if self.key_telemetry:
            fill = merge_key_fills(
                (unpack_array(codes, np.int64), unpack_array(bits, np.int64))
                for *_, (codes, bits) in closed
            )
        return Superstep(**self._sum_tick(closed), batteries=outputs, key_fill=fill)

    @staticmethod
    def _sum_tick(per_host) -> dict:
        """Sum the hosts' (counters, link bits, pool bits[, fill report]) of a tick
        (integers: the sum does not depend on the placement)."""
        total = TickCounters()
        link = pool = 0
        for counters, link_bits, pool_bits, *_ in per_host:
            total.add(TickCounters(*counters))
            link += link_bits
            pool += pool_bits
        return {"counters": total, "link_bits": link, "pool_bits": pool}

    def soc_j(self, platform: str) -> np.ndarray:
        soc = np.empty(self.battery_counts[platform])
        per_host = self._wait(
            [self._call(h, "soc_j") for h in range(self.n_hosts)], "state of charge"
        )
        for rows, host_soc in zip(self._rows, per_host, strict=True):
            soc[rows[platform]] = host_soc[platform]
        return soc

    def expire(self, t_ns: int) -> None:
        self._wait([self._call(h, "expire", t_ns) for h in range(self.n_hosts)], "expiry")

    def link_available_bits(self, a: str, b: str) -> int:
        host = self._host_of[self.owner(a, b)]
        call = self._send(host, "link_available_bits", (a, b), ["fill", a, b])
        self._channel.endpoint.flush()
        return self._wait([call], "link fill level")[0]

    def lend_memories(self, names: Iterable[str]) -> dict[str, QuantumMemory]:
        names = list(names)
        by_host: dict[int, list[str]] = {}
        for name in names:
            by_host.setdefault(self._host_of[name], []).append(name)
        hosts = sorted(by_host)
        lent: dict[str, QuantumMemory] = {}
        # as commands: the memories travel as plain values (QuantumMemory.to_wire), where Ray
        # calls (halting the hosts' serving) cost ~7 ms a loan on mega (profiled)
        calls = [self._send(h, "lend_memories", (by_host[h],), ["lend", by_host[h]])
                 for h in hosts]  # fmt: skip
        self._channel.endpoint.flush()
        for part in self._wait(calls, "memory loan"):
            lent.update(part)
        return {name: lent[name] for name in names}

    def return_memories(self, memories: dict[str, QuantumMemory]) -> None:
        by_host: dict[int, dict[str, QuantumMemory]] = {}
        for name, memory in memories.items():
            by_host.setdefault(self._host_of[name], {})[name] = memory
        # not waited for, as a tick's environment: the hosts take them in order, before
        # anything later, and an error surfaces with the next call waited for
        for h in sorted(by_host):
            wire = [[name, memory.to_wire()] for name, memory in by_host[h].items()]
            self._pending.append(self._send(h, "return_memories", (by_host[h],), ["return", wire]))
        self._channel.endpoint.flush()

    def _merged(self, what: str) -> dict:
        out: dict = {}
        for part in self._wait([self._call(h, "view", what) for h in range(self.n_hosts)], what):
            out.update(part)
        return out

    def close(self) -> None:
        """Stop the hosts (their sockets close with them) and the driver's endpoint."""
        import ray

        for host in [*getattr(self, "hosts", []), getattr(self, "_registry", None)]:
            if host is not None:
                with contextlib.suppress(Exception):
                    ray.kill(host)
        self.hosts = []
        self._registry = None
        if getattr(self, "_channel", None) is not None:
            self._channel.close()
            self._channel = None


def ray_engine(
    scenario,
    *,
    placement_mode: str = "auto",
    hosts: int | None = None,
    checkpoint_every: int = 60,
    bus_kwargs: dict | None = None,
    controller_actors: bool = True,
    edge_actors: int | str | None = "auto",
    **engine_kw,
):
    """An engine for ``scenario`` whose nodes live on Ray hosts placed by ``placement_mode``
    (``hosts``: K for sharded), checkpointed every ``checkpoint_every`` ticks, and whose
    controller runs on controller actors (:mod:`actors.controllers`: ``edge_actors`` 'auto',
    'per-site' or K; 'none', or ``controller_actors`` False, keeps it in the driver). Needs
    :func:`ray_session`; ``engine.close()`` after."""
    from actors.controllers import RayControllers
    from twin.engine import Engine
    from twin.network.topology import TopologyModel

    topology = TopologyModel(scenario)
    shards = placement(topology.node_names, topology.placement_units(), placement_mode, hosts)
    started: list = []  # what was started, for the clean-up if the engine fails to build
    make_group = functools.partial(
        RayNodeGroup, checkpoint_every=checkpoint_every, bus_kwargs=bus_kwargs
    )

    def node_group(*args, **kwargs) -> RayNodeGroup:
        started.append(make_group(*args, **kwargs))
        return started[-1]

    def controllers(name: str, engine) -> RayControllers:
        started.append(
            RayControllers(
                name,
                topology=engine.topology,
                flows=engine.flows,
                jurisdictions=engine.jurisdictions,
                flow_endpoints=engine.flow_endpoints,
                run_id=uuid.uuid4().hex[:12],
                checkpoint_every=checkpoint_every,
                edge_actors=edge_actors,
                bus_kwargs=bus_kwargs,
                scenario=engine.scenario,
                seed=engine.seed,
            )
        )
        return started[-1]

    try:
        return Engine(
            scenario,
            partitions=shards,
            node_group=node_group,
            controllers=controllers if controller_actors and edge_actors != "none" else None,
            **engine_kw,
        )
    except BaseException:
        for part in started:  # the engine failed to build: stop what it had started
            part.close()
        raise
