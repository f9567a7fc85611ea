"""A host: one Ray actor process holding a shard of the node actors (a ``NodeSet``).

ARCHITECTURE.md ("The runtime"). The node logic is twin's (:class:`twin.network.nodes.NodeSet`);
a host only moves envelopes: it hands the envelopes of a round to its nodes, keeps what they send
to each other, and ships what they send to other hosts' nodes over the bus, one frame per
destination host (:mod:`actors.bus`).

A round (one call of :meth:`NodeHost.round`): take the envelopes the driver gives (the
controller's forwarding updates), the envelopes the host's own nodes sent in the previous round,
and the frames the other hosts sent in the previous round (the driver says how many); let the
nodes handle them all, in ``(arrival_ns, src, seq)`` order; send the new envelopes. This is what
:class:`twin.network.nodes.NodeGroup` does in one process, so a run gives the same results
whatever the placement (tests/actors pin this).

The class is plain Python; :mod:`actors.runtime` wraps it with ``ray.remote``, so it can be
tested without Ray.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from actors.bus import BusEndpoint
from twin.network.memory_slots import QuantumMemory
from twin.network.messages import Envelope
from twin.network.nodes import NodeSet

__all__ = ["NodeHost", "compact"]

# arrays up to this size travel as plain lists: Ray packs those with msgpack, where a numpy
# array costs a pickle with an out-of-band buffer (most of a per-node host's call)
COMPACT_MAX = 64


def compact(values: np.ndarray):
    """``values`` as a list when small (see :data:`COMPACT_MAX`), else contiguous."""
    return values.tolist() if values.size <= COMPACT_MAX else np.ascontiguousarray(values)


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
    ) -> None:
        self.host_id = int(host_id)
        self.nodes = NodeSet(names, members, flows, **node_kwargs)
        self.bus = BusEndpoint(run_id, host_id, **(bus_kwargs or {}))
        self._host_of: dict[str, int] = {}
        self._local: list[Envelope] = []  # sent by this host's nodes to each other last round
        self._models: dict[int, object] = {}  # battery power models by number (_step)

    # --- set-up ---------------------------------------------------------------------------------

    def endpoint(self) -> tuple[str, bytes | None, int]:
        """(bus endpoint, CurveZMQ server public key or None, process id)."""
        return self.bus.endpoint, self.bus.server_public_key, os.getpid()

    def register(self, registry_name: str) -> bool:
        """Register this host's bus endpoint with the run's registry (a named Ray actor)."""
        import ray

        registry = ray.get_actor(registry_name)
        key = self.bus.server_public_key
        return ray.get(registry.register.remote(self.host_id, self.bus.endpoint, key))

    def connect(self, peers: dict[int, tuple[str, bytes | None]], host_of: dict[str, int]):
        """Learn every host's endpoint and which host holds each node."""
        self.bus.set_peers({h: p for h, p in peers.items() if h != self.host_id})
        self._host_of = dict(host_of)
        return True

    # --- a superstep's parts --------------------------------------------------------------------

    def environment(self, t_ns: int, links) -> None:
        """Start a tick: ``links`` (a, b, skr_bps) are G(t)'s key-generating links that this
        host's nodes own (``NodeSet.generate``), as arrays or lists."""
        a, b, skr_bps = links
        self.nodes.generate(
            t_ns, np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64),
            np.asarray(skr_bps, dtype=float),
        )  # fmt: skip

    def round(self, round_no: int, inbox: list[Envelope], expect_frames: int) -> tuple[list, int]:
        """Handle round ``round_no``; returns (the hosts sent a frame for round
        ``round_no + 1``, the envelopes kept for this host's own nodes)."""
        envelopes = list(inbox)
        envelopes += self._local
        if expect_frames:
            envelopes += self.bus.receive(round_no, expect_frames)
        out = self.nodes.deliver(envelopes) if envelopes else []
        self._local, remote = self._split(out)
        for host in sorted(remote):
            self.bus.send(host, round_no + 1, remote[host])
        self.bus.flush()  # the receivers read them in the next round, without this host
        return sorted(remote), len(self._local)

    def exchange(self, first_round: int, inbox: list[Envelope], n_hosts: int):
        """A whole node phase without the driver: rounds as in :meth:`round`, where every host
        sends every other host one frame per round (empty if it has nothing for it) flagged
        with whether its nodes sent anything; when a round's flags are all down, every host
        knows no message is left anywhere and they all stop after the same round. Then closes
        the tick. Returns (the next unused round number, :meth:`end_tick`'s result).

        One call per host and tick instead of one per round (and a frame per host pair and
        round on the bus): the cheaper form for a few hosts.
        """
        peers = [h for h in range(n_hosts) if h != self.host_id]
        pending = list(inbox) + self._local
        self._local = []
        round_no = first_round
        while True:
            out = self.nodes.deliver(pending) if pending else []
            local, remote = self._split(out)
            active = bool(out)
            round_no += 1
            for host in peers:
                self.bus.send(host, round_no, remote.get(host, []), active)
            received, others_active = (
                self.bus.receive_flagged(round_no, len(peers)) if peers else ([], False)
            )
            pending = local + received
            if not (active or others_active):
                return round_no, self.end_tick()

    def superstep(self, t_ns, links, first_round: int, inbox, n_hosts: int, battery_steps):
        """A whole tick of this host in one call: the environment (:meth:`environment`, when
        ``links`` are given), :meth:`exchange` with the other hosts, then the battery steps;
        returns (the next unused round, :meth:`end_tick`'s result, each battery step's
        (soc_j, below_reserve))."""
        if links is not None:
            self.environment(t_ns, links)
        next_round, closed = self.exchange(first_round, inbox, n_hosts)
        return next_round, closed, self._step(battery_steps)

    def finish(self, battery_steps, t_ns: int = 0, links=None):
        """Close a tick whose rounds the driver ran: (:meth:`end_tick`, the battery steps);
        then start the next tick on ``links`` (:meth:`environment`) when they are given."""
        done = self.end_tick(), self._step(battery_steps)
        if links is not None:
            self.environment(t_ns, links)
        return done

    def _step(self, battery_steps) -> list:
        """Each battery step ``(platform, sun, load_w, model number, the model the first time
        it is sent else None, dt_s)``; returns each step's (soc_j, below_reserve)."""
        out = []
        for platform, sun, load_w, key, model, dt_s in battery_steps:
            if model is not None:
                self._models[key] = model
            soc_j, below = self.nodes.step_batteries(
                platform, np.asarray(sun, dtype=float), np.asarray(load_w, dtype=float),
                self._models[key], dt_s,
            )  # fmt: skip
            out.append((compact(soc_j), compact(below)))
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

    def end_tick(self) -> tuple[list, int, int]:
        """The tick's counters (TickCounters' fields, in order), and the key bits held in
        link buffers and pools."""
        c = self.nodes.end_tick()
        counters = [c.delivered_bits, c.type_i_active_ns, c.type_i_secure_ns, c.served_ns]
        return counters, self.nodes.link_bits, self.nodes.pool_bits

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
        state = (self.nodes, self._local, self._models)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, state: bytes) -> bool:
        """Take the node state of a checkpoint (on a fresh host, before the replay)."""
        self.nodes, self._local, self._models = pickle.loads(state)
        return True

    # --- views (the run's end) ------------------------------------------------------------------

    def view(self, what: str) -> dict:
        if what not in ("link_buffers", "pools", "flow_states", "memories"):
            raise ValueError(f"unknown view {what!r}")
        return getattr(self.nodes, what)()

    def bus_stats(self) -> dict:
        return dict(self.bus.stats)
