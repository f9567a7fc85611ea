"""A host: one Ray actor process holding a shard of the node actors (a ``NodeSet``).

ARCHITECTURE.md ("The runtime"). The node logic is twin's (:class:`twin.network.nodes.NodeSet`);
a host only moves envelopes: it hands the envelopes of a round to its nodes, keeps what they send
to each other, and ships what they send to other hosts' nodes over the bus, one frame per
destination host (:mod:`actors.bus`).

A tick on a host: :meth:`NodeHost.environment` (key generation on the links its nodes own,
and the battery steps), then the message rounds and the tick's end (counters, key totals) in
one :meth:`NodeHost.superstep`: the hosts run the rounds among themselves over the bus
(:meth:`NodeHost.exchange`: all-to-all with a few hosts, through host 0 with more). The
driver asks for each either with a Ray call or, tick after tick, with a command over the bus
to a host serving commands (:meth:`NodeHost.serve`): the same arguments and results either
way, but a bus round trip costs a tenth of a Ray call here. A round
handles the driver's envelopes, the host's own nodes' from the previous round and the frames
the other hosts sent, in ``(arrival_ns, src, seq)`` order; this is what
:class:`twin.network.nodes.NodeGroup` does in one process, so a run gives the same results
whatever the placement (tests/actors pin this).

The class is plain Python; :mod:`actors.runtime` wraps it with ``ray.remote``, so it can be
tested without Ray.
"""

from __future__ import annotations

import functools
import pickle

import numpy as np

from actors.bus import (
    DRIVER,
    ROUND_ACTIVE,
    ROUND_FINAL,
    ROUND_IDLE,
    BusEndpoint,
    BusError,
    decode_batch,
    encode_frame,
)
from twin.network.memory_slots import QuantumMemory
from twin.network.messages import Envelope
from twin.network.nodes import NodeSet
from twin.network.traffic import TrafficClass

__all__ = [
    "NodeHost",
    "node_ip",
    "pack_array",
    "lent_memories",
    "local_bus_kwargs",
    "node_id",
    "n_links",
    "pack_links",
    "packed_key_fill",
    "superstep_reply",
    "superstep_result",
    "tick_command",
    "environment_command",
    "environment_result",
    "unpack_array",
]

# up to this many hosts run a tick's rounds all-to-all (a frame per host pair and round: with a
# few hosts, the fewest messages in flight, and no host waits for another's forwarding); more
# run them through host 0, the hub (NodeHost.exchange: 2 bundles per host and round). 4 hosts
# on mega ran faster counted by host 0 than all-to-all (most of all-to-all's frames are empty:
# 1.35-1.90x the local engine against 1.61-2.09x, 6 of 6 pairs), and faster again through it
# (bundles in place of frames beside a report and an answer per host: 1.56-1.70x against
# 1.62-1.86x, 3x2 pairs)
ALL_TO_ALL_MAX_HOSTS = 3
HUB = 0  # the host that the rounds of many hosts go through

# What travels with the driver's calls to a host every tick is packed into bytes and plain
# lists, which Ray passes with msgpack: pickling numpy arrays (an out-of-band buffer each) and
# Envelope objects cost ~0.5 ms per call on mega, more than the rest of the call.


def pack_array(values, dtype) -> bytes:
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


def unpack_array(packed: bytes, dtype) -> np.ndarray:
    """The array of :func:`pack_array` (read-only: a view of the bytes)."""
    return np.frombuffer(packed, dtype=dtype)


LINK_BYTES = 24  # a link as pack_links packs it: a, b (int64) and skr_bps (float64)
_LINKS_WANT = f"bytes of (a, b, skr_bps) rows of {LINK_BYTES} bytes"  # (what a check asks)


def pack_links(a, b, skr_bps) -> bytes:
    """A tick's key-generating links (a, b, skr_bps) as one bytes object."""
    return pack_array(a, np.int64) + pack_array(b, np.int64) + pack_array(skr_bps, np.float64)


def packed_links(value) -> bool:
    """Whether ``value`` can be links of :func:`pack_links` (bytes of whole links)."""
    return isinstance(value, bytes) and len(value) % LINK_BYTES == 0


def packed_key_fill(codes, bits) -> bool:
    """Whether ``codes`` and ``bits`` can be a fill report's (``NodeSet.key_fill``, packed
    with :func:`pack_array`): int64 bytes of one length."""
    return (
        type(codes) is bytes and type(bits) is bytes
        and len(codes) == len(bits) and len(codes) % 8 == 0
    )  # fmt: skip


def n_links(packed: bytes) -> int:
    """How many links :func:`pack_links` packed into ``packed``."""
    return len(packed) // LINK_BYTES


def _unpack_links(packed: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = n_links(packed)
    a = unpack_array(packed[: 8 * n], np.int64)
    b = unpack_array(packed[8 * n : 16 * n], np.int64)
    return a, b, unpack_array(packed[16 * n :], np.float64)


def node_ip() -> str:
    """The IP of the Ray node this process runs on (loopback outside Ray: tests)."""
    import ray

    return ray.util.get_node_ip_address() if ray.is_initialized() else "127.0.0.1"


def node_id() -> str | None:
    """The id of the Ray node this process runs on (None outside Ray: tests): bus endpoints
    on one node reach each other over Unix sockets (:attr:`BusEndpoint.address`)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def local_bus_kwargs(bus_kwargs: dict | None) -> dict:
    """``bus_kwargs`` for an endpoint in this process: bound on this Ray node's IP, knowing
    its node (those of the run's other processes may be other nodes')."""
    bus_kwargs = dict(bus_kwargs or {})
    bus_kwargs.setdefault("bind_ip", node_ip())
    bus_kwargs.setdefault("node_id", node_id())
    return bus_kwargs


# --- the commands of a tick and their replies (NodeHost.serve), each built beside its check ---


def tick_command(first_round, inbox, n_hosts) -> list:
    """A tick's command to a serving host: :meth:`NodeHost.superstep`'s arguments."""
    return ["tick", first_round, inbox, n_hosts]


def _tick_arguments(command: list, seq: int, host_id: int) -> tuple:
    """:meth:`NodeHost.superstep`'s arguments from tick command ``seq`` off the bus (types
    checked: a command not of :func:`tick_command`'s shape is a BusError naming the item,
    never a node's exception)."""
    if not (command[0] == "tick" and len(command) == 4):
        raise BusError(
            f"command {seq} is neither a 4-item tick nor a stop: {_short(command[0])} with "
            f"{len(command)} items"
        )
    _, first_round, inbox, n_hosts = command
    expect = functools.partial(_expect, f"tick command {seq}")
    expect("first_round", first_round, type(first_round) is int, "an int")
    expect("inbox", inbox, isinstance(inbox, bytes), "a bus frame (bytes)")
    expect("n_hosts", n_hosts, type(n_hosts) is int and n_hosts > host_id,
           f"an int above this host's id {host_id}")  # fmt: skip
    return first_round, inbox, n_hosts


def environment_command(t_ns, links, battery_steps) -> list:
    """A tick's start to a serving host: :meth:`NodeHost.environment`'s arguments (msgpack
    values only: a battery step names its power model by number)."""
    return ["environment", t_ns, links, [list(step) for step in battery_steps]]


def _environment_arguments(command: list, seq: int) -> tuple[int, bytes, list]:
    """(t_ns, links, battery steps) of environment command ``seq``
    (:func:`environment_command`; checked as a tick command's)."""
    expect = functools.partial(_expect, f"environment command {seq}")
    expect("the command", command, len(command) == 4,
           '["environment", t_ns, links, battery steps]')  # fmt: skip
    _, t_ns, links, steps = command
    expect("t_ns", t_ns, type(t_ns) is int, "an int")
    expect("links", links, packed_links(links), _LINKS_WANT)
    expect("battery steps", steps, isinstance(steps, list), "a list")
    for k, step in enumerate(steps):
        ok = isinstance(step, list) and len(step) == 6
        if ok:
            platform, sun, load_w, model_key, model, dt_s = step
            ok = (
                isinstance(platform, str) and isinstance(sun, bytes)
                and isinstance(load_w, bytes) and type(model_key) is int and model is None
                and isinstance(dt_s, float)
            )  # fmt: skip
        expect(f"battery step {k}", step, ok, "[platform, sun bytes, load_w bytes, model "
               "number, None (a model comes with a Ray call), dt_s float]")  # fmt: skip
    return t_ns, links, steps


def environment_result(body: list, host: int, seq: int, links: bytes) -> list:
    """The battery steps of host ``host``'s reply to environment command ``seq`` that gave it
    ``links`` (the driver's side): ``[links taken, [[soc_j bytes, below bytes], ...]]``."""
    expect = functools.partial(_expect, f"host {host}'s reply to environment command {seq}")
    expect("the reply", body, len(body) == 2 and body[0] == n_links(links),
           f"[{n_links(links)} (the links it took), battery steps]")  # fmt: skip
    stepped = body[1]
    expect("battery steps", stepped, isinstance(stepped, list) and all(
               isinstance(step, list) and len(step) == 2
               and all(isinstance(part, bytes) for part in step) for step in stepped),
           "a list of [soc_j bytes, below-reserve bytes]")  # fmt: skip
    return stepped


def _fill_level_arguments(command: list, seq: int, nodes) -> tuple[str, str]:
    """The two node names of fill-level command ``seq``, ``["fill", a, b]`` (checked: nodes
    of the run, the link's owner one of this host's; ``nodes``: the host's NodeSet)."""
    ok = len(command) == 3 and all(
        isinstance(name, str) and name in nodes.index for name in command[1:]
    )  # fmt: skip
    ok = ok and command[1] != command[2] and nodes.owner(command[1], command[2]) in nodes.nodes
    want = "two of the run's nodes, the link's owner (the lower index) one of this host's"
    _expect(f"fill-level command {seq}", "nodes", command[1:], ok, want)
    return command[1], command[2]


def _lend_arguments(command: list, seq: int, names) -> list[str]:
    """The node names of memory-loan command ``seq`` (checked: nodes of this host)."""
    known = set(names)
    ok = len(command) == 2 and isinstance(command[1], list) and all(
        isinstance(name, str) and name in known for name in command[1]
    )  # fmt: skip
    _expect(f"loan command {seq}", "names", command[1:], ok, "[names of the run's nodes]")
    return command[1]


def _returned_memories(command: list, seq: int, names) -> dict[str, QuantumMemory]:
    """The memories of return command ``seq``, made from their plain values (checked)."""
    known = set(names)
    items = command[1] if len(command) == 2 and isinstance(command[1], list) else None
    ok = items is not None and all(
        isinstance(i, list) and len(i) == 2 and isinstance(i[0], str) and i[0] in known
        for i in items
    )  # fmt: skip
    _expect(f"return command {seq}", "memories", command[1:], ok, "[[node name, memory], ...]")
    return _memories_from_wire(items, f"return command {seq}")


def lent_memories(body, host: int, seq: int, names: list[str]) -> dict[str, QuantumMemory]:
    """The memories of a host's reply to loan command ``seq`` for ``names`` (checked)."""
    ok = isinstance(body, list) and [i[0] if isinstance(i, list) and i else None
                                     for i in body] == list(names)  # fmt: skip
    _expect(f"host {host}'s reply to loan command {seq}", "memories", body, ok,
            f"[[name, memory], ...] for {names!r:.80}")  # fmt: skip
    return _memories_from_wire(body, f"host {host}'s reply to loan command {seq}")


def _memories_from_wire(items, what: str) -> dict[str, QuantumMemory]:
    """``[[name, memory], ...]`` made into memories (:meth:`QuantumMemory.from_wire`); a
    BusError names ``what`` held one that is not a memory's state."""
    try:
        return {name: QuantumMemory.from_wire(memory) for name, memory in items}
    except (ValueError, TypeError) as err:
        raise BusError(f"{what}: {err}") from None


def superstep_reply(next_round: int, closed) -> list:
    """A serving host's reply to a tick command: :meth:`NodeHost.superstep`'s result."""
    return [next_round, list(closed)]


def superstep_result(body: list, host: int, seq: int) -> tuple:
    """:meth:`NodeHost.superstep`'s result from host ``host``'s reply to command ``seq`` (the
    driver's side; types checked: another shape is a BusError naming the item)."""
    expect = functools.partial(_expect, f"host {host}'s reply to command {seq}")

    expect("the reply", body, len(body) == 2, "[next round, end of tick]")
    next_round, closed = body
    expect("next round", next_round, type(next_round) is int, "an int")
    expect("end of tick", closed,
           isinstance(closed, list) and len(closed) in (3, 4) and isinstance(closed[0], list)
           and len(closed[0]) == 5 and all(type(v) is int for v in closed[1:3]),
           "[counters, link bits, pool bits(, fill report)]")  # fmt: skip
    if len(closed) == 4:
        fill = closed[3]
        expect("fill report", fill,
               isinstance(fill, list) and len(fill) == 2 and packed_key_fill(*fill),
               "[link codes, bits]: int64 bytes of one length")  # fmt: skip
    counters = closed[0]
    expect("counters", counters, all(type(v) is int for v in counters[:3])
           and isinstance(counters[3], dict) and counters[3].keys() <= _TRAFFIC_CLASSES
           and all(isinstance(ns, list) and len(ns) == 3
                   and all(type(v) is int for v in ns) for ns in counters[3].values())
           and isinstance(counters[4], dict)
           and all(type(k) is str and type(v) is int for k, v in counters[4].items()),
           "[delivered bits, Type-I active ns, secure ns, {traffic class: [served ns, "
           "active ns, secure ns]}, {node: bits through}]")  # fmt: skip
    return next_round, closed


_TRAFFIC_CLASSES = frozenset(c.value for c in TrafficClass)


def _expect(what: str, item: str, value, ok: bool, want: str) -> None:
    """A BusError naming ``item`` of ``what`` and its value, unless ``ok``."""
    if not ok:
        raise BusError(f"{what}: {item} {_short(value)} must be {want}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class NodeHost:
    """The node actors of one host and its bus endpoint.

    ``host_id``: this host's number (0..H-1); ``members``: node indices it hosts; the other
    arguments are :class:`NodeSet`'s (``node_kwargs``) and :class:`BusEndpoint`'s
    (``bus_kwargs``).
    """

    def __init__(
        self,
        run_id: str,
        host_id: int,
        names,
        members,
        flows,
        node_kwargs: dict,
        bus_kwargs: dict | None = None,
        key_telemetry: bool = False,
    ) -> None:
        self.host_id = int(host_id)
        self.nodes = NodeSet(names, members, flows, **node_kwargs)
        self.key_telemetry = bool(key_telemetry)  # (end_tick: the fill report goes with it)
        self.bus = BusEndpoint(run_id, host_id, **local_bus_kwargs(bus_kwargs))
        self._host_of: dict[str, int] = {}
        self._models: dict[int, object] = {}  # battery power models by number (_step)

    # --- set-up ---------------------------------------------------------------------------------

    def register(self, registry_name: str) -> bool:
        """Register this host's bus endpoint with the run's registry (a named Ray actor)."""
        import ray

        registry = ray.get_actor(registry_name)
        return ray.get(registry.register.remote(self.host_id, self.bus.address))

    def connect(self, peers: dict[int, tuple], host_of: dict[str, int]):
        """Learn every host's endpoint (and the driver's: :data:`actors.bus.DRIVER`) and which
        host holds each node."""
        self.bus.set_peers({h: p for h, p in peers.items() if h != self.host_id})
        self._host_of = dict(host_of)
        return True

    # --- a superstep's parts --------------------------------------------------------------------

    def environment(self, t_ns: int, links: bytes, battery_steps=()) -> list:
        """Start a tick: ``links`` (:func:`pack_links`) are G(t)'s key-generating links that
        this host's nodes own (``NodeSet.generate``), then the tick's battery steps
        (:meth:`_step`; no battery touches a key or a message, so they go before the node
        phase, when the host would otherwise wait for the driver). Returns each battery step's
        (soc_j, below_reserve)."""
        a, b, skr_bps = _unpack_links(links)
        n = len(self.nodes.names)
        # (they may have come off the bus: a negative index would wrap, a NaN rate spread)
        if a.size and not (
            0 <= min(a.min(), b.min()) and max(a.max(), b.max()) < n and (skr_bps >= 0).all()
        ):
            raise BusError(
                f"host {self.host_id}: G(t)'s links must join node indices below {n} at key "
                "rates >= 0"
            )
        self.nodes.generate(t_ns, a, b, skr_bps)
        return self._step(battery_steps)

    def exchange(self, first_round: int, inbox: bytes, n_hosts: int):
        """A whole node phase without the driver, then the tick's end. Returns (the next unused
        round number, :meth:`end_tick`'s result).

        In a round, a host hands its nodes the round's envelopes (the first round: the driver's;
        then those its own nodes sent each other and the other hosts' frames) and sends what
        they send to other hosts' nodes, one frame per destination host, for the next round.
        Each host's round has a state (:data:`actors.bus.ROUND_STATES`): its nodes sent
        nothing, only messages that answer nothing (:meth:`NodeSet.answers_nothing`: a relay's
        commit), or more. The round's state over all hosts is the largest. After an idle round
        no message is left anywhere and the hosts stop; after a final one they hand their nodes
        what came and stop without counting another round (on ``mega`` one in four). The hosts
        learn the round's state in a way that depends on their number:

        - up to :data:`ALL_TO_ALL_MAX_HOSTS`: every host sends every other host one frame per
          round (empty if it has nothing for it), with its state;
        - more: every host sends host 0 (the hub) one bundle of its frames with envelopes and
          its state, and host 0 sends each one bundle of the frames for it and the round's
          state (:meth:`_through_hub`): 2 messages per host and round, where all-to-all sends
          a frame per host pair.

        One request per host and tick either way, instead of one per round. ``inbox``: the
        driver's envelopes for this host's nodes, a bus frame (:func:`actors.bus.encode_frame`
        of round ``first_round`` from :data:`actors.bus.DRIVER`), checked as any frame is.
        """
        inbox_round, src, _, batch = decode_batch(inbox, self.bus.run_id)
        if (inbox_round, src) != (first_round, DRIVER):
            raise BusError(
                f"the driver's inbox is a frame of round {first_round} from {DRIVER}, got round "
                f"{inbox_round} from {src}"
            )
        pending = list(batch)
        round_no = first_round
        all_to_all = n_hosts <= ALL_TO_ALL_MAX_HOSTS
        peers = [h for h in range(n_hosts) if h != self.host_id]
        state = ROUND_ACTIVE  # (the round's state over all hosts)
        while True:
            out = self.nodes.deliver(pending) if pending else []
            if state == ROUND_FINAL:  # what came answers nothing: the tick's rounds are over
                if out:
                    raise RuntimeError(
                        f"host {self.host_id}: its nodes sent {len(out)} messages (the first "
                        f"{out[0].kind.name} to {out[0].dst}) in answer to messages that answer "
                        "nothing (NodeSet.answers_nothing)"
                    )
                break
            local, remote = self._split(out)
            mine = (
                ROUND_IDLE if not out
                else ROUND_FINAL if all(map(self.nodes.answers_nothing, out))
                else ROUND_ACTIVE
            )  # fmt: skip
            round_no += 1
            if all_to_all:
                for host in peers:
                    self.bus.send(host, round_no, remote.get(host, []), mine)
                received, others = (
                    self.bus.receive_flagged(round_no, len(peers)) if peers else ([], ROUND_IDLE)
                )
                state = max(mine, others)
            else:
                received, state = self._through_hub(round_no, mine, remote, n_hosts)
            pending = local + received
            if state == ROUND_IDLE:
                break
        # what the fault injector held back goes out before this host's tick ends: another
        # host may still wait for it (host 0's last bundles: host 0 never waits again this
        # tick)
        self.bus.flush()
        return round_no, self.end_tick()

    def _through_hub(
        self, round_no: int, state: int, remote: dict[int, list[Envelope]], n_hosts: int
    ) -> tuple[list[Envelope], int]:
        """This host's part of a round through the hub (:meth:`exchange`, more than
        :data:`ALL_TO_ALL_MAX_HOSTS` hosts): (the envelopes other hosts sent its nodes in
        ``round_no``, the round's state over all hosts). Each host sends the hub a bundle of
        a frame per destination host (``remote``: the envelopes for it) and its ``state``; the
        hub answers each with a bundle of the frames for it (forwarded as they came: the
        receiver decodes and checks them) and the round's state."""
        frames = [
            (host, encode_frame(self.bus.run_id, round_no, self.host_id, remote[host], state))
            for host in sorted(remote)
        ]
        if self.host_id != HUB:
            self.bus.send_bundle(HUB, round_no, state, frames)
            got = self.bus.receive_bundles(round_no, 1)
            if HUB not in got:
                raise BusError(
                    f"host {self.host_id} got a bundle of round {round_no} from host "
                    f"{next(iter(got))}: only the hub (host {HUB}) sends it one"
                )
            round_state, mine = got[HUB]
            return self._unbundle(round_no, mine, n_hosts), round_state
        bundles = self.bus.receive_bundles(round_no, n_hosts - 1)
        strangers = sorted(src for src in bundles if not 0 < src < n_hosts)  # (HUB is 0)
        if strangers:
            raise BusError(
                f"the hub got bundles of round {round_no} from {strangers}: they come from "
                f"hosts 1..{n_hosts - 1}"
            )
        bundles[self.host_id] = (state, frames)
        to: dict[int, list[tuple[int, bytes]]] = {host: [] for host in range(n_hosts)}
        for src, (_, sent) in sorted(bundles.items()):
            for host, frame in sent:
                if not (0 <= host < n_hosts and host != src):
                    raise BusError(
                        f"host {src}'s bundle of round {round_no} holds a frame for host "
                        f"{host}: a host sends frames to the other {n_hosts - 1} hosts"
                    )
                to[host].append((host, frame))
        round_state = max(host_state for host_state, _ in bundles.values())
        for host in range(n_hosts):
            if host != self.host_id:
                self.bus.send_bundle(host, round_no, round_state, to[host])
        return self._unbundle(round_no, to[self.host_id], n_hosts), round_state

    def _unbundle(
        self, round_no: int, frames: list[tuple[int, bytes]], n_hosts: int
    ) -> list[Envelope]:
        """The envelopes of a round's frames for this host (from the hub's bundle), each
        frame decoded and checked: of ``round_no``, for this host, from a distinct other
        host."""
        got: list[Envelope] = []
        senders: set[int] = set()
        for host, frame in frames:
            frame_round, src, _, batch = decode_batch(frame, self.bus.run_id)
            if not (host == self.host_id and frame_round == round_no and src != self.host_id
                    and 0 <= src < n_hosts and src not in senders):  # fmt: skip
                raise BusError(
                    f"host {self.host_id} got a frame for host {host} of round {frame_round} "
                    f"from host {src} in the hub's bundle of round {round_no}: each is for "
                    "this host, of this round, from a distinct other host"
                )
            senders.add(src)
            got.extend(batch)
        return got

    def superstep(self, first_round: int, inbox, n_hosts: int):
        """A tick's node phase on this host in one call (its start went before:
        :meth:`environment`): :meth:`exchange` with the other hosts; returns (the next unused
        round, :meth:`end_tick`'s result)."""
        return self.exchange(first_round, inbox, n_hosts)

    def serve(self, first_seq: int) -> int:
        """Run the driver's commands over the bus, from command ``first_seq`` on, until told
        to stop; returns how many it ran. Called as a Ray call: while it runs, the host
        takes no other Ray call, so the driver sends ``stop`` before any (a checkpoint, a
        view) and calls this again after.

        A command is a tick's start ``["environment", t_ns, links, battery_steps]``
        (:meth:`environment`'s arguments; a battery step names its power model by number, the
        model itself having come with a Ray call), its node phase ``["tick", first_round,
        inbox, n_hosts]`` (:meth:`superstep`'s), a memory loan ``["lend", names]`` or return
        ``["return", [[name, memory], ...]]`` (the memories as plain values,
        :meth:`QuantumMemory.to_wire`), a link's key-buffer fill level ``["fill", a, b]``
        (:meth:`link_available_bits`), or ``["stop"]``; the reply, call ``seq`` again, is
        ``[links taken, battery steps]``, :meth:`superstep`'s result, the lent ``[[name,
        memory], ...]``, ``[memories taken]``, or ``[bits]``.
        A copy of a command is dropped, one that overtook another waits for its turn
        (:meth:`actors.bus.BusEndpoint.receive_call`).
        """

        def answer(command: list, seq: int) -> list:
            if command[:1] == ["lend"]:
                names = _lend_arguments(command, seq, self.nodes.nodes)
                return [[name, self.nodes.memory(name).to_wire()] for name in names]
            if command[:1] == ["return"]:
                memories = _returned_memories(command, seq, self.nodes.nodes)
                self.return_memories(memories)
                return [len(memories)]  # (a call's body is never empty)
            if command[:1] == ["environment"]:
                t_ns, links, steps = _environment_arguments(command, seq)
                return [n_links(links), self.environment(t_ns, links, steps)]
            if command[:1] == ["fill"]:
                a, b = _fill_level_arguments(command, seq, self.nodes)
                return [self.link_available_bits(a, b)]
            return superstep_reply(*self.superstep(*_tick_arguments(command, seq, self.host_id)))

        return self.bus.serve_calls(first_seq, answer)

    def _step(self, battery_steps) -> list:
        """Each battery step ``(platform, sun, load_w, model number, the model the first time
        it is sent else None, dt_s)``; returns each step's (soc_j, below_reserve)."""
        out = []
        for platform, sun, load_w, key, model, dt_s in battery_steps:
            if model is not None:
                self._models[key] = model
            n = len(self.nodes.soc_j.get(platform, ()))
            if not n or key not in self._models or not len(sun) == len(load_w) == 8 * n:
                raise BusError(
                    f"battery step of platform {platform!r} (this host: {n} batteries), model "
                    f"{key} (sent: {sorted(self._models)}), {len(sun)} bytes of sun and "
                    f"{len(load_w)} of load: must name a platform and a model this host has and "
                    f"give 8 bytes per battery"
                )
            soc_j, below = self.nodes.step_batteries(
                platform, unpack_array(sun, np.float64), unpack_array(load_w, np.float64),
                self._models[key], dt_s,
            )  # fmt: skip
            out.append((pack_array(soc_j, np.float64), pack_array(below, np.bool_)))
        return out

    def _split(self, out: list[Envelope]) -> tuple[list[Envelope], dict[int, list[Envelope]]]:
        """The envelopes for this host's own nodes, and the others by destination host."""
        local: list[Envelope] = []
        remote: dict[int, list[Envelope]] = {}
        for envelope in out:
            host = self._host_of.get(envelope.dst)
            if host is None:
                raise RuntimeError(f"envelope for unknown node {envelope.dst!r}")
            if host == self.host_id:
                local.append(envelope)
            else:
                remote.setdefault(host, []).append(envelope)
        return local, remote

    def end_tick(self) -> tuple:
        """The tick's counters (TickCounters' fields, in order), and the key bits held in
        link buffers and pools; with ``key_telemetry``, then the link buffers' fill levels
        (``NodeSet.key_fill``: [codes, bits], int64 bytes each)."""
        c = self.nodes.end_tick()
        counters = [
            c.delivered_bits,
            c.type_i_active_ns,
            c.type_i_secure_ns,
            c.served_ns,
            c.bits_through,
        ]
        closed = (counters, self.nodes.link_bits, self.nodes.pool_bits)
        if not self.key_telemetry:
            return closed
        codes, bits = self.nodes.key_fill()
        return (*closed, [pack_array(codes, np.int64), pack_array(bits, np.int64)])

    def soc_j(self) -> dict:
        return self.nodes.soc_j

    def expire(self, t_ns: int) -> None:
        self.nodes.expire(t_ns)

    def link_available_bits(self, a: str, b: str) -> int:
        return self.nodes.link_available_bits(a, b)

    # --- quantum memories lent to the entanglement service --------------------------------------

    def lend_memories(self, names: list[str]) -> dict[str, QuantumMemory]:
        return {name: self.nodes.memory(name) for name in names}

    def return_memories(self, memories: dict[str, QuantumMemory]) -> None:
        self.nodes.replace_memories(memories)

    # --- checkpoints ------------------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """This host's node state between ticks, pickled (the driver holds it: it outlives
        this host and the node it runs on). Frames of later rounds waiting at the socket are
        not state: a restore replays the ticks that sent them. (Pickle is Ray's own channel
        here, between the run's processes; nothing from the bus's sockets is unpickled.)"""
        state = (self.nodes, self._models)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, state: bytes) -> bool:
        """Take the node state of a checkpoint (on a fresh host, before the replay)."""
        self.nodes, self._models = pickle.loads(state)
        return True

    # --- views (the run's end) ------------------------------------------------------------------

    def view(self, what: str) -> dict:
        if what not in ("link_buffers", "pools", "flow_states", "memories"):
            raise ValueError(f"unknown view {what!r}")
        return getattr(self.nodes, what)()

    def bus_stats(self) -> dict:
        return dict(self.bus.stats)
