"""The nodes of the network: the state each node owns, and the messages that change it.

ARCHITECTURE.md ("The model", "The runtime"): every satellite, HAPS, OGS and factory node owns
its key buffers, end-to-end key pools, quantum memory, battery and flow table, and talks to the
others only by messages (:class:`twin.network.messages.Envelope`). A :class:`NodeSet` is the
nodes one process hosts: all of them in the single-process engine, one shard of them on a Ray
host (the runtime issue). Its three entry points are the parts of a superstep:

- :meth:`NodeSet.environment` and :meth:`NodeSet.step_batteries`: the tick's physics for the
  nodes it holds (each QKD link's key generation at its owner; satellite and HAPS batteries),
  vectorised over the set;
- :meth:`NodeSet.deliver`: handle a batch of envelopes addressed to its nodes, in
  ``(arrival_ns, src, seq)`` order, and return the envelopes they send (to any node);
- :meth:`NodeSet.end_tick`: close the tick and hand back its counters (integers, so the sum
  over sets does not depend on how nodes are spread over them).

Who owns what (one copy of every piece of state, at one node):

- the key buffer of a QKD link (u, v) belongs to the endpoint earlier in G(t)'s node order
  (sites, then HAPS, then satellites): a ground station holds its up-links, a HAPS its links to
  satellites, the lower-numbered satellite an ISL. Both ends of a real link hold the same key;
  the twin accounts for one copy, at the owner (the other end's is its mirror).
- the end-to-end pool of an ordered site pair (src, dst) belongs to src, the master KME of ETSI
  GS QKD 014 that hands keys to its applications; the flows from src to dst share it.
- a flow's counters and its flow-table entry belong to its source site.
- a satellite's battery to the satellite; a quantum memory to its node (made on first use).

The trusted relay as messages (survey, "Trusted relays": hop-by-hop one-time pad; the relay is
all or nothing for the bits it moves, as ``twin.network.keys.relay_key``):

1. the controller sends each flow's source a ``FORWARDING_UPDATE`` (its path for the tick, the
   hop latencies, the nanoseconds of the tick it spends in a handover gap);
2. the source works out its key demand; when its pool needs a refill it sends ``KEY_RELAY``
   ``reserve`` to the owner of every hop's link buffer, asking for the shortfall;
3. each owner sets aside what it can give (what its buffer holds above what earlier
   reservations of the tick took, if its state admits the request) and answers ``grant``;
4. with every grant in, the source takes the smallest grant as the relayed amount (so every hop
   spends the same bits), adds it to its pool, consumes its flow's key and sends each owner
   ``commit`` (the amount; zero releases the grant);
5. each owner spends the amount, oldest key first, and releases the rest of its grant.

Split relays (the next-hop split ratios of the edge tier, ``Decision.relay``): an update may
name several paths between the flow's ends, each with parts; the source then splits the
shortfall among them in proportion to the parts (:func:`split_bits`) and runs steps 2-5 on
each path as a relay of its own (id ``flow@t/i``), so the pool gets the sum of what each path
gives, and the flow consumes its key once the last of them is in. Each path's hops spend the
same bits; two paths sharing a hop reserve from its buffer one after the other, as two flows
would.

Split data (``Decision.data``): an update may name the paths the flow's data is split over
(its own first), each with parts and its own gap; the source splits the tick's bits by the
parts (:func:`split_bits`), each path sends its share outside its gap and counts as served
where it meets the class's latency target, and the flow's time counts by parts.

Batched generation: a link's key of a tick is handed to its buffer at once only when
``KeyBuffer.generate`` would do more than extend the newest chunk (a new birth after the
coalescing window, a full buffer, keys due to expire, the first key); otherwise it is held as
pending bits of the link and handed over in one ``generate`` at the last pending tick before
anything else touches the buffer (a relay, a fill-level read, a view, the run's end), which
leaves the buffer exactly as the ticks' own generates would have (tests pin it). A full buffer
with no key due to expire is batched the same way: each tick's generate there would only
discard its bits (ids counted, nothing stored), so the discards are held and handed over in one
``generate`` after the pending bits. Links nobody spends from (most fibre links, all day) sit
full, and without this they cost a Python call per link and tick.

Timing: a message between two nodes of a path arrives after the propagation latency of the
path between them (the classical channel follows the quantum path); a forwarding update arrives
at the tick's start; a node sends its answer when it handles what prompted it (a grant at its
reserve's arrival, the commits at the last grant's), so the trace shows each relay's real round
trip. Key buffers are advanced at tick granularity: every buffer operation of a tick happens at
the tick's start ``t_ns`` (expiry, generation, spending) and the messages' timestamps order the
handling; a relay's messages all fall within the tick as long as its round trip is shorter
than the tick (milliseconds against seconds here). Sequence numbers count per (src, dst)
channel and a node handles an id once (:class:`SeenMessages`), so a duplicated delivery changes
nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from twin.network.keys import KeyBuffer, KeyRateBank, key_demand_bits
from twin.network.memory_slots import QuantumMemory
from twin.network.messages import Envelope, MessageKind, SeenMessages, delivery_order
from twin.network.traffic import Flow, TrafficClass, demand_bits, requirements
from twin.units import NS_PER_S

__all__ = [
    "CONTROLLER",
    "Superstep",
    "FlowState",
    "KeySettings",
    "MergedViews",
    "Node",
    "NodeGroup",
    "NodeSet",
    "TickCounters",
    "forwarding_update",
    "generating_links",
    "merge_key_fills",
    "node_partitions",
    "quantum_kind_table",
    "split_bits",
]

CONTROLLER = "controller"
"""The source name of the controller's envelopes (not a node of G(t))."""


@dataclass(frozen=True)
class KeySettings:
    """Sizes and thresholds of the key store (the engine's labelled assumptions)."""

    link_capacity_bits: int
    link_threshold_bits: int
    pool_capacity_bits: int
    pool_threshold_bits: int
    max_age_ns: int
    pool_lookahead_s: int
    pool_refill_below_s: int
    """a source relays more key only once its pool holds less than this many seconds of its
    demand (then up to ``pool_lookahead_s``): refills come in batches, not every tick"""
    """sources keep about this many seconds of their key demand in the end-to-end pool"""
    memory_q_max: int
    memory_t2_s: float


@dataclass
class FlowState:
    """One flow's counters, kept by its source. Time is integer ns of the ticks in which the
    flow was active (it demanded data, or is Type-II with its periodic rekey); ``served_ns`` and
    ``secure_ns`` are the parts of those ticks outside handover gaps in which it was served /
    had its keys."""

    last_rekey_ns: int | None = None
    ticks: int = 0
    active_ns: int = 0
    served_ns: int = 0
    """path, the keys its security mode needs, and its latency target met"""
    secure_ns: int = 0
    """a path and the keys its security mode needs (key continuity; latency not required)"""
    demand_bits: int = 0
    delivered_bits: int = 0
    key_bits_used: int = 0
    latency_sum_s: float = 0.0
    latency_n: int = 0


@dataclass
class TickCounters:
    """What one tick of a node set contributes to the run's time series (all integers)."""

    delivered_bits: int = 0
    type_i_active_ns: int = 0
    type_i_secure_ns: int = 0
    served_ns: dict[str, list[int]] = field(
        default_factory=lambda: {c.value: [0, 0, 0] for c in TrafficClass}
    )
    """class -> [served ns, active ns, secure ns] (FlowState's served_ns, active_ns and
    secure_ns of the class's flows, over the tick)"""
    bits_through: dict[str, int] = field(default_factory=dict)
    """node name -> data bits sent through it this tick (every node of each path that carried
    data, its ends included): the traffic-dependent part of the nodes' energy (the engine
    charges the ground nodes')"""

    def add(self, other: TickCounters) -> None:
        self.delivered_bits += other.delivered_bits
        self.type_i_active_ns += other.type_i_active_ns
        self.type_i_secure_ns += other.type_i_secure_ns
        for c, counts in other.served_ns.items():
            mine = self.served_ns[c]
            for i, value in enumerate(counts):
                mine[i] += value
        through = self.bits_through
        for name, bits in other.bits_through.items():
            through[name] = through.get(name, 0) + bits


@dataclass(frozen=True)
class Superstep:
    """What a tick's node phase hands back (``NodeGroup.superstep``)."""

    counters: TickCounters
    link_bits: int
    """key bits in link buffers at the tick's end"""
    pool_bits: int
    """key bits in end-to-end pools at the tick's end"""
    batteries: list
    """(soc_j, below_reserve) per battery step of the tick's start, in the order given"""
    key_fill: tuple[np.ndarray, np.ndarray] | None = None
    """every link buffer's fill level at the tick's end (:meth:`NodeSet.key_fill`, all sets
    merged), when the group was asked for it (``NodeGroup.key_telemetry``); else None"""


@dataclass(frozen=True)
class _Leg:
    """One path a flow's data takes in the current tick, with its share of the data."""

    path: tuple[str, ...]
    hop_latency_ns: tuple[int, ...]
    latency_s: float
    sent_bits: int
    """its share of the tick's data bits, outside its gap"""
    parts: int
    up_ns_parts: int
    """the ns of the tick it is up (outside its gap) times its parts"""


@dataclass
class _Service:
    """One flow's service in the current tick, from its update to its consumption."""

    flow: Flow
    sent_bits: int
    up_ns: int
    """the ns of the tick its data was up, its legs weighted by their parts"""
    key_bits: int
    rekey_ns: int | None
    legs: tuple[_Leg, ...]
    total_parts: int
    path: tuple[str, ...]
    """the path its key is relayed over unless split (its first leg that is up)"""
    hop_latency_ns: tuple[int, ...]
    open_relays: int = 0
    """relays of the tick not yet granted in full (the flow consumes its key after the last)"""


@dataclass
class _Relay:
    """One trusted relay of a flow's tick, at its source: the key it asks every hop of
    ``path`` for, and the hops' grants so far."""

    service: _Service
    path: tuple[str, ...]
    hop_latency_ns: tuple[int, ...]
    wanted_bits: int
    grants: dict[int, int] = field(default_factory=dict)


def split_bits(bits: int, parts: Sequence[int]) -> list[int]:
    """``bits`` divided in proportion to ``parts`` (non-negative ints, some positive), in whole
    bits that sum to ``bits``: each share rounded down, the bits left over one each to the
    first shares with parts (deterministic, so every runtime splits alike)."""
    total = sum(parts)
    shares = [bits * q // total for q in parts]
    left = bits - sum(shares)
    for i, q in enumerate(parts):
        if left == 0:
            break
        if q > 0:
            shares[i] += 1
            left -= 1
    return shares


class Node:
    """One node of G(t) and the state it owns (module docstring, "Who owns what")."""

    __slots__ = (
        "name",
        "index",
        "link_buffers",
        "pools",
        "memory",
        "flows",
        "flow_states",
        "flow_table",
        "seen",
        "reserved_bits",
        "pool_pending_bits",
        "_seq",
        "_relays",
    )

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.link_buffers: dict[str, KeyBuffer] = {}
        """peer name -> the key buffer of the QKD link to it (links this node owns)"""
        self.pools: dict[str, KeyBuffer] = {}
        """destination site -> end-to-end pool (sites that source key-using flows)"""
        self.memory: QuantumMemory | None = None
        self.flows: dict[str, Flow] = {}
        """flows sourced here, by name"""
        self.flow_states: dict[str, FlowState] = {}
        self.flow_table: dict[str, tuple[str, ...]] = {}
        """flow -> its current path (source routing: the controller's latest update)"""
        self.seen = SeenMessages()
        self.reserved_bits: dict[str, int] = {}
        """peer -> bits of its link buffer set aside for relays of the current tick"""
        self.pool_pending_bits: dict[str, int] = {}
        """destination -> bits asked for by relays of the current tick not yet answered"""
        self._seq: dict[str, int] = {}
        self._relays: dict[str, _Relay] = {}
        """relay id -> the relay waiting for its grants (at the source)"""

    def next_seq(self, dst: str) -> int:
        """The next sequence number on the channel to ``dst``: sequences count per (src, dst),
        so a receiver sees each sender's numbers without gaps (its seen-set stays small, and a
        gap means a lost message)."""
        seq = self._seq.get(dst, 0)
        self._seq[dst] = seq + 1
        return seq


def forwarding_update(
    flow: str,
    src_site: str,
    path: Sequence[str] | None,
    hop_latency_ns: Sequence[int],
    latency_s: float,
    gap_ns: int,
    t_ns: int,
    seq: int,
    defer_ns: Mapping[str, int] | None = None,
    relay: Sequence[tuple[Sequence[str], Sequence[int], int]] | None = None,
    data: Sequence[tuple[Sequence[str], Sequence[int], float, int, int]] | None = None,
) -> Envelope:
    """The controller's per-tick update of one flow's table entry at its source.

    ``path`` (node names, None: no path this tick), the propagation latency of each hop (int
    ns) and of the whole path (s, the latency the flow's class target is checked against), and
    the nanoseconds of the tick the flow spends in a handover gap. ``defer_ns``: the forecast
    events the controller has put off, by name, and by how long (``Flow.deferred``): the
    source sends their bulk on that schedule. ``relay``: the split ratios of the flow's key
    relay, (path of node names from the source to the destination, its hops' latencies in
    ns, parts) per path that carries a share (``Decision.relay``); None: the key is relayed
    over ``path``, as the data goes. ``data``: the split ratios of the flow's data, (path,
    its hops' latencies in ns, its latency in s, its ns of the tick in a gap, parts) per path
    that carries a share (``Decision.data``), ``path`` first; None: all of it over ``path``.
    """
    payload = {
        "flow": flow,
        "path": None if path is None else list(path),
        "hop_latency_ns": [int(x) for x in hop_latency_ns],
        "latency_s": float(latency_s),
        "gap_ns": int(gap_ns),
    }
    if defer_ns:
        payload["defer_ns"] = {str(name): int(ns) for name, ns in sorted(defer_ns.items())}
    if relay:
        for route, hop_ns, parts in relay:
            if len(route) < 2 or len(hop_ns) != len(route) - 1 or not int(parts) > 0:
                raise ValueError(
                    f"flow {flow!r}: a relay path needs two nodes or more, a latency per hop and "
                    f"parts > 0, got path {list(route)}, {len(hop_ns)} latencies, parts {parts}"
                )
        payload["relay"] = [
            {"path": list(route), "hop_latency_ns": [int(x) for x in hop_ns], "parts": int(parts)}
            for route, hop_ns, parts in relay
        ]
    if data:
        for route, hop_ns, _, gap, parts in data:
            if len(route) < 2 or len(hop_ns) != len(route) - 1 or not int(parts) > 0 or gap < 0:
                raise ValueError(
                    f"flow {flow!r}: a data path needs two nodes or more, a latency per hop, "
                    f"gap_ns >= 0 and parts > 0, got path {list(route)}, {len(hop_ns)} "
                    f"latencies, gap_ns {gap}, parts {parts}"
                )
        if path is None or list(data[0][0]) != list(path):
            raise ValueError(
                f"flow {flow!r}: a data split starts with the flow's path {path}, got "
                f"{list(data[0][0])}"
            )
        payload["data"] = [
            {"path": list(route), "hop_latency_ns": [int(x) for x in hop_ns],
             "latency_s": float(latency), "gap_ns": int(gap), "parts": int(parts)}
            for route, hop_ns, latency, gap, parts in data
        ]  # fmt: skip
    return Envelope(CONTROLLER, src_site, MessageKind.FORWARDING_UPDATE, t_ns, seq, t_ns, payload)


class NodeSet:
    """The nodes one process hosts, their state, and the handling of their messages.

    ``names``: every node of G(t) in its node order (owners are found by that order);
    ``members``: the indices hosted here; ``flows``: every flow (each kept by its source, if
    hosted here); ``dt_ns``: the tick; ``batteries``: platform ('satellite', 'haps') ->
    (the node indices of that platform, in node order; battery capacity, J): the set holds a
    battery, full at the start, for every hosted node of each platform; ``sat_offset``: the
    index of the first satellite.
    """

    def __init__(
        self,
        names: Sequence[str],
        members: Iterable[int],
        flows: Sequence[Flow],
        *,
        dt_ns: int,
        settings: KeySettings,
        sat_offset: int,
        batteries: dict[str, tuple[Sequence[int], float]],
        quantum_edge_kinds: Sequence[int],
    ) -> None:
        self.names = tuple(names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.members = np.array(sorted(set(int(i) for i in members)), dtype=np.int64)
        self.nodes = {self.names[i]: Node(self.names[i], int(i)) for i in self.members}
        self.dt_ns = int(dt_ns)
        self.settings = settings
        self.sat_offset = int(sat_offset)
        self.quantum_edge_kinds = tuple(int(k) for k in quantum_edge_kinds)
        # kind -> is quantum, a lookup table (edge kinds are small ints; np.isin sorts per call)
        self._quantum_kind = quantum_kind_table(self.quantum_edge_kinds)
        self._member_mask = np.zeros(len(self.names), dtype=bool)
        self._member_mask[self.members] = True
        self.platforms: dict[str, np.ndarray] = {}
        """platform -> the hosted nodes' rows among all of its nodes (node order)"""
        self.soc_j: dict[str, np.ndarray] = {}
        """platform -> state of charge of the hosted nodes' batteries, J (rows as above)"""
        for platform, (indices, capacity_j) in sorted(batteries.items()):
            indices = np.asarray(indices, dtype=np.int64)
            rows = np.flatnonzero(self._member_mask[indices])
            self.platforms[platform] = rows
            self.soc_j[platform] = np.full(rows.size, float(capacity_j))
        for flow in flows:
            node = self.nodes.get(flow.src_site)
            if node is not None:
                node.flows[flow.name] = flow
                node.flow_states[flow.name] = FlowState()
        self._sources = [node for node in self.nodes.values() if node.flows]
        # link key generation, batched (``environment``): one slot per hosted link buffer
        self._slot_of: dict[int, int] = {}  # lo * n_nodes + hi -> slot
        self._slot_buffers: list[KeyBuffer] = []
        self._sorted_codes = np.zeros(0, dtype=np.int64)  # codes of the slots, sorted
        self._sorted_slots = np.zeros(0, dtype=np.int64)
        self._bank = KeyRateBank()
        # per slot: the buffer's extension state (KeyBuffer.extension_state) as last read, and
        # the generated bits not yet handed to it (module docstring, "Batched generation")
        # (``_col`` and ``_extendable`` are views of the first ``_n_slots`` rows of ``_store``,
        # which grows by doubling: links keep appearing all day, a pair at a time)
        self._store = {
            name: np.zeros(0, dtype=np.int64)
            for name in ("buffered", "oldest", "newest", "clock", "pending", "pending_t",
                         "discard", "discard_t", "capacity", "window", "max_age")
        }  # fmt: skip
        self._store["extendable"] = np.zeros(0, dtype=bool)
        self._n_slots = 0  # slots with columns (``_materialize``)
        self._new_codes: list[int] = []  # codes registered since, in slot order
        self._col = {name: column for name, column in self._store.items() if name != "extendable"}
        self._extendable = self._store["extendable"]
        self._dirty: set[int] = set()  # slots whose buffer changed outside generation
        self._t_ns = 0
        self._counters = TickCounters()
        self._deferred: dict[tuple, Flow] = {}  # (flow, deferrals) -> the deferred flow
        self._touched: dict[str, Node] = {}
        """nodes that handled a message this tick (end_tick checks them)"""

    # --- state ----------------------------------------------------------------------------------

    def owner(self, a: str, b: str) -> str:
        """The node that holds the key buffer of the link between ``a`` and ``b``."""
        return a if self.index[a] < self.index[b] else b

    def link_buffers(self) -> dict[tuple[str, str], KeyBuffer]:
        """(owner, peer) -> link buffer, for every hosted link buffer (brought up to date)."""
        self._flush_all()
        return {
            (node.name, peer): buffer
            for node in self.nodes.values()
            for peer, buffer in node.link_buffers.items()
        }

    def pools(self) -> dict[tuple[str, str], KeyBuffer]:
        """(src, dst) -> end-to-end pool, for every hosted pool."""
        return {
            (node.name, dst): pool
            for node in self.nodes.values()
            for dst, pool in node.pools.items()
        }

    def _held_bits(self) -> np.ndarray:
        """(slots,) int64: the bits each hosted link buffer holds, with those generated but
        not yet handed to it."""
        self._materialize()
        col = self._col
        held = col["buffered"] + col["pending"]
        # the column is as of the last read for links touched since (relays, expiry)
        for slot in self._dirty:
            held[slot] = self._slot_buffers[slot].buffered_bits + int(col["pending"][slot])
        return held

    @property
    def link_bits(self) -> int:
        """Bits held by the hosted link buffers (with those generated but not yet handed)."""
        return int(self._held_bits().sum())

    def key_fill(self) -> tuple[np.ndarray, np.ndarray]:
        """The key-buffer-fill-level of every hosted link buffer (main paper Table 2): (the
        links' codes, lower node index * n_nodes + higher, ascending; the bits each buffer
        holds, with those generated but not yet handed to it), both int64. What the nodes
        report to the controller at a tick's end (twin.control.telemetry)."""
        return self._sorted_codes.copy(), self._held_bits()[self._sorted_slots]

    @property
    def pool_bits(self) -> int:
        """Bits held by the hosted end-to-end pools (only flow sources hold pools)."""
        return sum(pool.buffered_bits for node in self._sources for pool in node.pools.values())

    def flow_states(self) -> dict[str, FlowState]:
        return {
            name: state for node in self.nodes.values() for name, state in node.flow_states.items()
        }

    def memory(self, name: str) -> QuantumMemory:
        """The quantum memory of hosted node ``name``, made on first use."""
        node = self.nodes[name]
        if node.memory is None:
            node.memory = QuantumMemory(self.settings.memory_q_max, self.settings.memory_t2_s)
        return node.memory

    def memories(self) -> dict[str, QuantumMemory]:
        return {n: node.memory for n, node in self.nodes.items() if node.memory is not None}

    def replace_memories(self, memories: dict[str, QuantumMemory]) -> None:
        """Take back hosted nodes' memories lent out (as copies, by the Ray runtime) to the
        entanglement service, with what the service did to them."""
        for name, memory in memories.items():
            self.nodes[name].memory = memory

    def link_available_bits(self, a: str, b: str) -> int:
        """Key bits the link between ``a`` and ``b`` can give now (0 without a buffer): the
        key-buffer-fill-level attribute nodes report to the controller (main paper Table 2)."""
        node = self.nodes[self.owner(a, b)]
        buffer = self._use_link(node, b if node.name == a else a)
        return 0 if buffer is None else buffer.available_bits

    def _link_code(self, node: Node, peer: str) -> int:
        """The link's key in the slot index: lower node index * n_nodes + higher."""
        lo, hi = sorted((node.index, self.index[peer]))
        return lo * len(self.names) + hi

    def _link_buffer(self, node: Node, peer: str) -> KeyBuffer:
        buffer = node.link_buffers.get(peer)
        if buffer is None:
            s = self.settings
            buffer = KeyBuffer(
                f"{node.name}~{peer}",
                s.link_capacity_bits,
                threshold_bits=s.link_threshold_bits,
                max_age_ns=s.max_age_ns,
            )
            node.link_buffers[peer] = buffer
            self._add_slot(self._link_code(node, peer), buffer)
        return buffer

    def _add_slot(self, code: int, buffer: KeyBuffer) -> None:
        """Register a new link buffer; its columns are made by :meth:`_materialize`, for all
        new links at once (a pass brings hundreds)."""
        self._slot_of[code] = len(self._slot_buffers)
        self._slot_buffers.append(buffer)
        self._new_codes.append(code)

    def _materialize(self) -> None:
        """Give the links registered since the last call their columns and bank slots.

        Costs O(new links) amortised: over a day of ``mega`` tens of thousands of
        (satellite, station) pairs appear, a few per tick, so nothing here may rebuild the
        whole index per call."""
        start = self._n_slots
        stop = len(self._slot_buffers)
        if start == stop:
            return
        k = stop - start
        self._bank.add_links(k)
        if stop > self._store["capacity"].size:
            size = max(stop, 2 * self._store["capacity"].size, 64)
            for name, column in self._store.items():
                grown = np.zeros(size, dtype=column.dtype)
                grown[:start] = column[:start]
                self._store[name] = grown
        self._n_slots = stop
        self._col = {name: self._store[name][:stop] for name in self._col}
        self._extendable = self._store["extendable"][:stop]
        no_age = np.iinfo(np.int64).max
        for slot in range(start, stop):
            buffer = self._slot_buffers[slot]
            self._col["capacity"][slot] = buffer.capacity_bits
            self._col["window"][slot] = buffer.coalesce_window_ns
            self._col["max_age"][slot] = no_age if buffer.max_age_ns is None else buffer.max_age_ns
            self._refresh(slot)
        # merge the new codes into the sorted index (codes are unique: one slot per link)
        codes = np.asarray(self._new_codes, dtype=np.int64)
        self._new_codes.clear()
        order = np.argsort(codes)
        codes, slots = codes[order], np.arange(start, stop, dtype=np.int64)[order]
        where = np.searchsorted(self._sorted_codes, codes)
        self._sorted_codes = np.insert(self._sorted_codes, where, codes)
        self._sorted_slots = np.insert(self._sorted_slots, where, slots)

    def _refresh(self, slot: int) -> None:
        """Read a buffer's extension state into the slot's columns (nothing pending)."""
        buffered, oldest, newest, clock, extendable = self._slot_buffers[slot].extension_state()
        col = self._col
        col["buffered"][slot], col["oldest"][slot], col["newest"][slot] = buffered, oldest, newest
        col["clock"][slot] = clock
        self._extendable[slot] = extendable

    def _flush(self, slot: int) -> None:
        """Hand a slot's held bits to its buffer: the pending bits in one generate at their
        last tick, which extends the newest chunk exactly as the ticks' own generates would
        have, then the held discards in one generate at theirs (the buffer is full by then, so
        it discards them all, as each tick's generate would have)."""
        self._materialize()
        col = self._col
        pending, discard = int(col["pending"][slot]), int(col["discard"][slot])
        if not (pending or discard):
            return
        buffer = self._slot_buffers[slot]
        if pending:
            buffer.generate(pending, int(col["pending_t"][slot]))
            col["pending"][slot] = 0
        if discard:
            stored = buffer.generate(discard, int(col["discard_t"][slot]))
            if stored is not None:
                raise RuntimeError(f"{buffer.name}: held discards were stored ({stored})")
            col["discard"][slot] = 0
        self._refresh(slot)

    def _flush_all(self) -> None:
        self._materialize()
        held = (self._col["pending"] > 0) | (self._col["discard"] > 0)
        for slot in np.flatnonzero(held).tolist():
            self._flush(slot)

    def _use_link(self, node: Node, peer: str) -> KeyBuffer | None:
        """The link buffer to ``peer`` brought up to date, for an operation outside generation
        (its columns are re-read before the next tick's generation); None without one."""
        buffer = node.link_buffers.get(peer)
        if buffer is not None:
            slot = self._slot_of[self._link_code(node, peer)]
            self._flush(slot)
            self._dirty.add(slot)
        return buffer

    def _pool(self, node: Node, dst: str) -> KeyBuffer:
        pool = node.pools.get(dst)
        if pool is None:
            s = self.settings
            pool = KeyBuffer(
                f"pool:{node.name}>{dst}",
                s.pool_capacity_bits,
                threshold_bits=s.pool_threshold_bits,
                max_age_ns=s.max_age_ns,
            )
            node.pools[dst] = pool
        return pool

    # --- environment ----------------------------------------------------------------------------

    def environment(self, snap, t_ns: int) -> None:
        """Start a tick: every hosted QKD link that is up adds the key its rate gives over the
        tick (:class:`KeyRateBank`) to its owner's buffer (module docstring, "Batched
        generation")."""
        self.generate(t_ns, *generating_links(snap, self._quantum_kind))

    def generate(self, t_ns: int, a: np.ndarray, b: np.ndarray, skr_bps: np.ndarray) -> None:
        """:meth:`environment` given the tick's key-generating links (:func:`generating_links`,
        or any selection of them holding every link this set owns, in the same order): a
        runtime that hosts the nodes elsewhere ships each host only its own links."""
        t_ns = int(t_ns)
        self._t_ns = t_ns
        self._counters = TickCounters()
        self._materialize()
        for slot in sorted(self._dirty):
            self._refresh(slot)
        self._dirty.clear()
        lower, upper = np.minimum(a, b), np.maximum(a, b)
        owned = np.flatnonzero(self._member_mask[lower])
        n = len(self.names)
        codes = lower[owned] * n + upper[owned]
        where = np.searchsorted(self._sorted_codes, codes)
        known = where < self._sorted_codes.size
        known[known] = self._sorted_codes[where[known]] == codes[known]
        if not known.all():
            for code in np.unique(codes[~known]).tolist():  # new links, in code order
                lo, hi = divmod(code, n)
                self._link_buffer(self.nodes[self.names[lo]], self.names[hi])
            self._materialize()
            where = np.searchsorted(self._sorted_codes, codes)
        slots = self._sorted_slots[where]
        bits = self._bank.step(slots, skr_bps[owned], self.dt_ns)
        got = np.flatnonzero(bits)
        if not got.size:
            return
        b = bits[got]
        col = self._col
        pending = col["pending"][got]
        newest = col["newest"][got]
        # would generate(b, t) after the pending bits only extend the newest chunk?
        fast = (
            self._extendable[got]
            & (col["clock"][got] <= t_ns)
            & ((newest == t_ns) | (t_ns - newest < col["window"][got]))
            & (col["buffered"][got] + pending + b <= col["capacity"][got])
            & (t_ns - col["oldest"][got] <= col["max_age"][got])
        )
        col["pending"][got[fast]] += b[fast]
        col["pending_t"][got[fast]] = t_ns
        # would it only discard them: full (with the pending bits), no key due to expire?
        full = (
            ~fast
            & (col["clock"][got] <= t_ns)
            & (col["buffered"][got] + pending == col["capacity"][got])
            & (t_ns - col["oldest"][got] <= col["max_age"][got])
        )
        col["discard"][got[full]] += b[full]
        col["discard_t"][got[full]] = t_ns
        slow = ~(fast | full)
        for slot, extra in zip(got[slow].tolist(), b[slow].tolist(), strict=True):
            self._flush(slot)
            self._slot_buffers[slot].generate(extra, t_ns)
            self._refresh(slot)

    def expire(self, t_ns: int) -> None:
        """Bring every hosted buffer to ``t_ns``: keys past their age expire. Buffers expire
        lazily, when next touched; a link no longer up is not, so the run's end sweeps them
        all (its ledger then holds no stale key)."""
        self._flush_all()
        for node in self.nodes.values():
            for buffer in node.link_buffers.values():
                buffer.expire(t_ns)
            for pool in node.pools.values():
                pool.expire(t_ns)
        self._dirty.update(range(len(self._slot_buffers)))

    def step_batteries(self, platform: str, sun, load_w, power_model, dt_s: float):
        """Advance the hosted batteries of ``platform`` by one tick: ``sun`` (what
        ``power_model.step`` takes: sunlit fraction for satellites, sun elevation for HAPS) and
        ``load_w`` over the hosted rows; returns (soc_j, below_reserve) after the step."""
        # the batteries were checked when the model was built and stay in range by the step's
        # own clipping: skip the per-call checks
        step = power_model.step(self.soc_j[platform], sun, load_w, dt_s, validate=False)
        self.soc_j[platform] = step.soc_j
        return step.soc_j, step.below_reserve

    # --- messages -------------------------------------------------------------------------------

    @staticmethod
    def answers_nothing(envelope: Envelope) -> bool:
        """Whether handling ``envelope`` sends no message (:meth:`deliver`): a relay's commit,
        the last step of its protocol. Hosts that run their rounds on their own end a tick a
        round early when only such messages are left (``actors.host.NodeHost.exchange``)."""
        return envelope.kind is MessageKind.KEY_RELAY and envelope.payload["step"] == "commit"

    def deliver(self, envelopes: Iterable[Envelope]) -> list[Envelope]:
        """Handle envelopes addressed to hosted nodes, in (arrival_ns, src, seq) order; returns
        the envelopes the nodes send. A message a node has handled before is ignored."""
        out: list[Envelope] = []
        for envelope in sorted(envelopes, key=delivery_order):
            node = self.nodes.get(envelope.dst)
            if node is None:
                raise RuntimeError(
                    f"envelope for {envelope.dst!r} delivered to a node set that does not host it"
                )
            if not node.seen.first_time(envelope):
                continue
            self._touched[node.name] = node
            kind = envelope.kind
            if kind is MessageKind.FORWARDING_UPDATE:
                self._on_update(node, envelope, out)
            elif kind is MessageKind.KEY_RELAY:
                step = envelope.payload["step"]
                if step == "reserve":
                    self._on_reserve(node, envelope, out)
                elif step == "grant":
                    self._on_grant(node, envelope, out)
                elif step == "commit":
                    self._on_commit(node, envelope)  # (sends nothing: answers_nothing)
                else:
                    raise RuntimeError(f"unknown KEY_RELAY step {step!r} from {envelope.src}")
            else:
                raise RuntimeError(f"{node.name} has no handler for {kind.name} messages")
        return out

    def end_tick(self) -> TickCounters:
        """Close the tick: every relay must have been answered and every grant resolved, and
        every message sent to a node this tick delivered (no sequence gap: the rounds end only
        when no message is left in flight)."""
        for node in self._touched.values():
            gaps = node.seen.gaps()
            if gaps:
                src, seq = min(gaps.items())
                raise RuntimeError(
                    f"{node.name} ends the tick without message {seq} from {src} though a later "
                    "one came (a sequence gap: a message was lost)"
                )
            if (
                node._relays
                or any(node.reserved_bits.values())
                or any(node.pool_pending_bits.values())
            ):
                raise RuntimeError(
                    f"{node.name} ends the tick with relays still open "
                    f"({sorted(node._relays)}, reserved {node.reserved_bits}): a message was "
                    "lost"
                )
            node.reserved_bits.clear()
            node.pool_pending_bits.clear()
        self._touched.clear()
        counters, self._counters = self._counters, TickCounters()
        return counters

    @staticmethod
    def _send(node: Node, dst: str, kind, payload, t_ns: int, delay_ns: int, out) -> None:
        """Send at ``t_ns`` (when the sender handles what prompted it), arriving ``delay_ns``
        later."""
        seq = node.next_seq(dst)
        out.append(Envelope(node.name, dst, kind, t_ns, seq, t_ns + int(delay_ns), payload))

    # the source's side of a flow's tick

    def _on_update(self, node: Node, envelope: Envelope, out: list[Envelope]) -> None:
        p = envelope.payload
        flow = node.flows[p["flow"]]
        if "defer_ns" in p:
            flow = self._deferred_flow(flow, p["defer_ns"])
        path = None if p["path"] is None else tuple(p["path"])
        if path is None:
            node.flow_table.pop(flow.name, None)
        else:
            node.flow_table[flow.name] = path
        state = node.flow_states[flow.name]
        t, dt = self._t_ns, self.dt_ns
        bits = demand_bits(flow, t, dt)
        cls = flow.traffic_class
        if bits == 0 and cls is not TrafficClass.TYPE_II:
            return  # an idle flow neither asks for service nor counts against availability
        state.ticks += 1
        state.active_ns += dt
        state.demand_bits += bits
        counters = self._counters
        counters.served_ns[cls.value][1] += dt
        if cls is TrafficClass.TYPE_I:
            counters.type_i_active_ns += dt
        legs, total_parts = self._legs(p, path, bits)
        up_ns = sum(leg.up_ns_parts for leg in legs) // total_parts
        if up_ns <= 0:
            return
        sent = sum(leg.sent_bits for leg in legs)
        demand = key_demand_bits(cls, sent, t, dt, state.last_rekey_ns, devices=flow.devices)
        relayed_over = next(leg for leg in legs if leg.up_ns_parts > 0)
        service = _Service(
            flow, sent, up_ns, demand.bits, demand.last_rekey_ns, legs, total_parts,
            relayed_over.path, relayed_over.hop_latency_ns,
        )  # fmt: skip
        if demand.bits == 0:
            self._serve(node, service, secure=True)
            return
        pool = self._pool(node, flow.dst_site)
        # keep the pool above its READY threshold plus the look-ahead demand, so non-critical
        # classes (served only when READY) are not starved by design
        s = self.settings
        lookahead_ticks = max(1, int(s.pool_lookahead_s * NS_PER_S // dt))
        refill_ticks = max(1, int(s.pool_refill_below_s * NS_PER_S // dt))
        target = demand.bits * lookahead_ticks + s.pool_threshold_bits
        # relays of this tick already under way to the same pool count as arrived
        pending = node.pool_pending_bits.get(flow.dst_site, 0)
        held = pool.available_bits + pending
        # the KMS tops the pool up in batches: only once it holds less than the refill mark
        low = held < demand.bits * refill_ticks + s.pool_threshold_bits
        wanted = min(target - held, pool.free_bits - pending) if low else 0
        if wanted <= 0:
            self._consume(node, service)
            return
        # the key relay, over the data's path or split among the paths the update names
        # (each share its own relay: every hop of a path spends the same bits)
        if "relay" in p:
            routes = [(tuple(r["path"]), tuple(r["hop_latency_ns"])) for r in p["relay"]]
            shares = split_bits(wanted, [int(r["parts"]) for r in p["relay"]])
            relays = [
                (f"{flow.name}@{t}/{i}", *route, share)
                for i, (route, share) in enumerate(zip(routes, shares, strict=True))
                if share > 0
            ]
        else:
            relays = [(f"{flow.name}@{t}", path, service.hop_latency_ns, wanted)]
        node.pool_pending_bits[flow.dst_site] = pending + wanted
        service.open_relays = len(relays)
        critical = cls is TrafficClass.TYPE_I
        sent_ns = envelope.arrival_ns
        for relay_id, route, hop_ns, share in relays:
            node._relays[relay_id] = _Relay(service, route, hop_ns, share)
            for hop in range(len(route) - 1):
                a, b = route[hop], route[hop + 1]
                owner = self.owner(a, b)
                payload = {
                    "step": "reserve",
                    "relay": relay_id,
                    "hop": hop,
                    "peer": b if owner == a else a,
                    "bits": share,
                    "critical": critical,
                }
                delay = sum(hop_ns[: route.index(owner)])
                self._send(node, owner, MessageKind.KEY_RELAY, payload, sent_ns, delay, out)

    def _legs(self, p: dict, path, bits: int) -> tuple[tuple[_Leg, ...], int]:
        """The paths a forwarding update ``p`` sends the flow's ``bits`` over, and their parts
        in all: its path alone (one part), or the split it names (each path's share of the
        bits by its parts, ``split_bits``; each sends outside its own gap)."""
        dt = self.dt_ns
        if path is None:
            return (), 1
        if "data" not in p:
            up_ns = dt - int(p["gap_ns"])
            leg = _Leg(path, tuple(p["hop_latency_ns"]), float(p["latency_s"]),
                       bits * up_ns // dt, 1, up_ns)  # fmt: skip
            return (leg,), 1
        split = p["data"]
        parts = [int(d["parts"]) for d in split]
        legs = []
        for d, share, q in zip(split, split_bits(bits, parts), parts, strict=True):
            up_ns = dt - int(d["gap_ns"])
            legs.append(
                _Leg(tuple(d["path"]), tuple(d["hop_latency_ns"]), float(d["latency_s"]),
                     share * up_ns // dt, q, up_ns * q)
            )  # fmt: skip
        return tuple(legs), sum(parts)

    def _deferred_flow(self, flow: Flow, defer_ns: dict[str, int]) -> Flow:
        """``flow`` with the deferrals of its forwarding update applied (made once per
        deferral: a deferral, once made, stays the same)."""
        key = (flow.name, tuple(sorted(defer_ns.items())))
        deferred = self._deferred.get(key)
        if deferred is None:
            deferred = self._deferred[key] = flow.deferred(defer_ns)
        return deferred

    def _on_grant(self, node: Node, envelope: Envelope, out: list[Envelope]) -> None:
        p = envelope.payload
        relay = node._relays[p["relay"]]
        relay.grants[int(p["hop"])] = int(p["bits"])
        hops = len(relay.path) - 1
        if len(relay.grants) < hops:
            return
        del node._relays[p["relay"]]
        service = relay.service
        node.pool_pending_bits[service.flow.dst_site] -= relay.wanted_bits
        # every hop spends the same bits: the smallest grant (all the shortfall when every hop
        # holds it, else what the poorest hop can give now; nothing if one hop has none)
        bits = min(relay.grants.values())
        if bits:
            pool = self._pool(node, service.flow.dst_site)
            stored = pool.generate(bits, self._t_ns)
            if stored is None or stored.bits != bits:
                raise RuntimeError(f"pool {pool.name!r} lost relayed key bits despite free room")
        path = relay.path
        sent_ns = envelope.arrival_ns  # the last grant is in (grants are handled in arrival order)
        for hop in range(hops):
            a, b = path[hop], path[hop + 1]
            owner = self.owner(a, b)
            payload = {
                "step": "commit",
                "relay": p["relay"],
                "hop": hop,
                "peer": b if owner == a else a,
                "bits": bits,
                "granted": relay.grants[hop],
                "critical": service.flow.traffic_class is TrafficClass.TYPE_I,
                "pool": f"pool:{node.name}>{service.flow.dst_site}",
            }
            delay = sum(relay.hop_latency_ns[: path.index(owner)])
            self._send(node, owner, MessageKind.KEY_RELAY, payload, sent_ns, delay, out)
        service.open_relays -= 1
        if service.open_relays == 0:  # (the flow's last relay: its pool has all it will get)
            self._consume(node, service)

    def _consume(self, node: Node, service: _Service) -> None:
        flow = service.flow
        pool = self._pool(node, flow.dst_site)
        critical = flow.traffic_class is TrafficClass.TYPE_I
        secure = pool.consume(service.key_bits, self._t_ns, critical=critical)
        if secure:
            state = node.flow_states[flow.name]
            state.last_rekey_ns = service.rekey_ns
            state.key_bits_used += service.key_bits
        self._serve(node, service, secure=secure)

    def _serve(self, node: Node, service: _Service, *, secure: bool) -> None:
        flow = service.flow
        cls = flow.traffic_class
        state = node.flow_states[flow.name]
        legs, total_parts = service.legs, service.total_parts
        # the legs' latencies weighted by their parts (one leg: its latency, exactly)
        state.latency_sum_s += sum(leg.latency_s * leg.parts for leg in legs) / total_parts
        state.latency_n += 1
        # a leg is served when the flow has its keys and the leg meets the latency target
        meets = requirements(cls).meets_latency
        ok = [leg for leg in legs if secure and meets(leg.latency_s)]
        counters = self._counters
        if ok:
            served_ns = sum(leg.up_ns_parts for leg in ok) // total_parts
            delivered = sum(leg.sent_bits for leg in ok)
            state.served_ns += served_ns
            state.delivered_bits += delivered
            counters.delivered_bits += delivered
            counters.served_ns[cls.value][0] += served_ns
        if secure:
            state.secure_ns += service.up_ns
            counters.served_ns[cls.value][2] += service.up_ns
            if cls is TrafficClass.TYPE_I:
                counters.type_i_secure_ns += service.up_ns
            # the data went out (with its keys), late or not: every node on its legs forwarded it
            through = counters.bits_through
            for leg in legs:
                if leg.sent_bits:
                    for name in leg.path:
                        through[name] = through.get(name, 0) + leg.sent_bits

    # the link owner's side

    def _on_reserve(self, node: Node, envelope: Envelope, out: list[Envelope]) -> None:
        p = envelope.payload
        peer, bits = p["peer"], int(p["bits"])
        buffer = self._use_link(node, peer)
        granted = 0
        if buffer is not None:
            buffer.expire(self._t_ns)
            reserved = node.reserved_bits.get(peer, 0)
            if buffer.admits(critical=bool(p["critical"])):
                granted = max(0, min(bits, buffer.available_bits - reserved))
            if granted < bits:
                buffer.refused_requests += 1
                buffer.refused_bits += bits
            node.reserved_bits[peer] = reserved + granted
        payload = {"step": "grant", "relay": p["relay"], "hop": p["hop"], "bits": granted}
        delay = envelope.arrival_ns - envelope.t_ns  # back the way it came
        self._send(
            node, envelope.src, MessageKind.KEY_RELAY, payload, envelope.arrival_ns, delay, out
        )

    def _on_commit(self, node: Node, envelope: Envelope) -> None:
        p = envelope.payload
        peer, bits, granted = p["peer"], int(p["bits"]), int(p["granted"])
        if not granted:
            return
        node.reserved_bits[peer] -= granted
        buffer = self._use_link(node, peer)
        buffer.take_granted(bits, self._t_ns)


def quantum_kind_table(quantum_edge_kinds: Sequence[int]) -> np.ndarray:
    """(K,) bool indexed by edge kind: whether links of that kind carry QKD."""
    kinds = [int(k) for k in quantum_edge_kinds]
    table = np.zeros(max((*kinds, 0)) + 1, dtype=bool)
    table[kinds] = True
    return table


def generating_links(snap, quantum_kind: np.ndarray):
    """``(a, b, skr_bps)`` of G(t)'s links that generate key this tick: up, of a quantum kind
    (``quantum_kind``: :func:`quantum_kind_table`), with a positive secret-key rate; in the
    snapshot's edge order."""
    quantum = (snap.kind < quantum_kind.size) & snap.up & (snap.skr_bps > 0)
    quantum[quantum] = quantum_kind[snap.kind[quantum]]
    edges = np.flatnonzero(quantum)
    return snap.a[edges], snap.b[edges], snap.skr_bps[edges]


def node_partitions(names: Sequence[str], partitions: Sequence[Iterable[int]]) -> list[list[int]]:
    """``partitions`` as sorted node-index lists, empty ones dropped; ValueError unless they
    hold every node index of ``names`` exactly once (NodeGroup's and the Ray runtime's
    check)."""
    groups = [sorted(set(int(i) for i in part)) for part in partitions]
    flat = sorted(i for g in groups for i in g)
    if flat != list(range(len(names))):
        raise ValueError(
            f"partitions must hold every node index 0..{len(names) - 1} exactly once, got "
            f"{len(flat)} indices over {len(groups)} partitions"
        )
    return [g for g in groups if g]


class MergedViews(ABC):
    """The state views of a group of node sets, each merged over the sets (by :meth:`_merged`,
    wherever the sets live)."""

    @abstractmethod
    def _merged(self, method: str) -> dict:
        """The union of the sets' ``method()`` dicts (their keys are disjoint)."""

    def link_buffers(self) -> dict[tuple[str, str], KeyBuffer]:
        return self._merged("link_buffers")

    def pools(self) -> dict[tuple[str, str], KeyBuffer]:
        return self._merged("pools")

    def flow_states(self) -> dict[str, FlowState]:
        return self._merged("flow_states")

    def memories(self) -> dict[str, QuantumMemory]:
        return self._merged("memories")


def merge_key_fills(parts) -> tuple[np.ndarray, np.ndarray]:
    """One (codes, bits) fill report (:meth:`NodeSet.key_fill`) from disjoint node sets' (a
    link's buffer lives with its owner, in one set only), codes ascending."""
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    codes = np.concatenate([np.zeros(0, dtype=np.int64), *(c for c, _ in parts)])
    bits = np.concatenate([np.zeros(0, dtype=np.int64), *(b for _, b in parts)])
    order = np.argsort(codes, kind="stable")
    return codes[order], bits[order]


class NodeGroup(MergedViews):
    """Several node sets behind the interface of one: messages go to the set that hosts their
    destination, counters are summed (integers), state views merged.

    What the Ray runtime does over its bus, in one process: with the nodes spread over any
    number of sets the results are those of one set holding all of them (tests pin this).
    ``partitions``: disjoint node-index groups covering every node of ``names``;
    ``key_telemetry``: whether each superstep reports the link buffers' fill levels; the other
    arguments are :class:`NodeSet`'s.
    """

    def __init__(
        self,
        names: Sequence[str],
        partitions: Sequence[Iterable[int]],
        flows,
        *,
        key_telemetry: bool = False,
        **kwargs,
    ):
        self.sets = [NodeSet(names, g, flows, **kwargs) for g in node_partitions(names, partitions)]
        self._host = {name: s for s in self.sets for name in s.nodes}
        self.names = tuple(names)
        self.battery_counts = {p: len(ix) for p, (ix, _) in kwargs["batteries"].items()}
        """platform -> number of nodes with a battery"""
        self._stepped: list = []  # the battery steps of the tick's start, for its superstep
        self.key_telemetry = bool(key_telemetry)
        """whether each superstep reports the link buffers' fill levels (``Superstep.key_fill``,
        for a controller that reads them: twin.control.telemetry)"""

    @property
    def dt_ns(self) -> int:
        return self.sets[0].dt_ns

    @dt_ns.setter
    def dt_ns(self, value: int) -> None:
        for s in self.sets:
            s.dt_ns = value

    @property
    def link_bits(self) -> int:
        return sum(s.link_bits for s in self.sets)

    @property
    def pool_bits(self) -> int:
        return sum(s.pool_bits for s in self.sets)

    def soc_j(self, platform: str) -> np.ndarray:
        """State of charge of every battery of ``platform``, J, in node order."""
        soc = np.empty(self.battery_counts[platform])
        for s in self.sets:
            soc[s.platforms[platform]] = s.soc_j[platform]
        return soc

    def owner(self, a: str, b: str) -> str:
        return self.sets[0].owner(a, b)

    def environment(self, snap, t_ns: int, battery_steps=()) -> None:
        """Start a tick: key generation on G(t) ``snap``'s links, then each of
        ``battery_steps`` (:meth:`step_batteries`'s arguments), whose results come with the
        tick's :meth:`superstep` (no battery touches a key or a message: a runtime steps them
        while its nodes would otherwise wait)."""
        for s in self.sets:
            s.environment(snap, t_ns)
        self._stepped = [self.step_batteries(*step) for step in battery_steps]

    def step_batteries(self, platform: str, sun, load_w, power_model, dt_s: float):
        """:meth:`NodeSet.step_batteries` for every set, ``sun`` and ``load_w`` over all nodes
        of ``platform``; returns (soc_j, below_reserve) over all of them, in node order."""
        n = self.battery_counts[platform]
        sun = np.broadcast_to(np.asarray(sun, dtype=float), (n,))
        load = np.broadcast_to(np.asarray(load_w, dtype=float), (n,))
        below = np.zeros(n, dtype=bool)
        for s in self.sets:
            rows = s.platforms[platform]
            if rows.size:
                below[rows] = s.step_batteries(platform, sun[rows], load[rows], power_model, dt_s)[
                    1
                ]
        return self.soc_j(platform), below

    def exchange(self, inbox: list[Envelope], trace: list[Envelope] | None = None) -> None:
        """Deliver ``inbox`` and then what the nodes send, round after round, until no message
        is left (``trace``: a list that receives every envelope handled)."""
        while inbox:
            if trace is not None:
                trace.extend(inbox)
            inbox = self.deliver(inbox)

    def superstep(self, inbox: list[Envelope], trace=None) -> Superstep:
        """A tick's node phase: :meth:`exchange`, :meth:`end_tick`, then the key totals, with
        the battery steps of the tick's start (:meth:`environment`). One entry point, so a
        runtime can do it in one call per host."""
        self.exchange(inbox, trace)
        counters = self.end_tick()
        stepped, self._stepped = self._stepped, []
        fill = merge_key_fills([s.key_fill() for s in self.sets]) if self.key_telemetry else None
        return Superstep(counters, self.link_bits, self.pool_bits, stepped, fill)

    def submit_superstep(self, inbox: list[Envelope], trace=None):
        """:meth:`superstep`, as a callable that gives its result: a runtime whose nodes live
        elsewhere returns before they are done, so the caller can go on with work that does
        not touch them (the next tick's G(t)); here the step is done at once."""
        result = self.superstep(inbox, trace)
        return lambda: result

    def deliver(self, envelopes: Iterable[Envelope]) -> list[Envelope]:
        batches: dict[int, list[Envelope]] = {}
        for envelope in envelopes:
            host = self._host.get(envelope.dst)
            if host is None:
                raise RuntimeError(f"envelope for unknown node {envelope.dst!r}")
            batches.setdefault(id(host), []).append(envelope)
        out: list[Envelope] = []
        for s in self.sets:
            if id(s) in batches:
                out.extend(s.deliver(batches[id(s)]))
        return out

    def end_tick(self) -> TickCounters:
        total = TickCounters()
        for s in self.sets:
            total.add(s.end_tick())
        return total

    def expire(self, t_ns: int) -> None:
        for s in self.sets:
            s.expire(t_ns)

    def memory(self, name: str) -> QuantumMemory:
        return self._host[name].memory(name)

    def lend_memories(self, names: Iterable[str]) -> dict[str, QuantumMemory]:
        """The quantum memories of ``names`` (made on first use) for the entanglement service,
        which runs over a path's memories in one place; hand them back with
        :meth:`return_memories` (here they are the nodes' own objects; the Ray runtime lends
        copies)."""
        return {name: self.memory(name) for name in names}

    def return_memories(self, memories: dict[str, QuantumMemory]) -> None:
        for name, memory in memories.items():
            self._host[name].replace_memories({name: memory})

    def link_available_bits(self, a: str, b: str) -> int:
        return self._host[self.owner(a, b)].link_available_bits(a, b)

    def _merged(self, method: str) -> dict:
        out: dict = {}
        for s in self.sets:
            out.update(getattr(s, method)())
        return out
