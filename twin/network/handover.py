"""Handover and resilience protocols (main paper, sec. VIII), as message-driven state machines.

Two machines, both pure and deterministic, with integer-nanosecond timestamps throughout:

* :class:`HandoverManager` runs satellite handovers of a flow from Sat-A to Sat-B.
  **Make-before-break** (MBB, sec. VIII.A, six steps): (1) prediction of the handover horizon,
  the instant Sat-A's elevation drops below a threshold (20 deg), (2) pre-establishment of
  tracking between Sat-B and the OGS (or a diversity OGS), (3) key-buffer synchronisation: Sat-B
  generates keys while traffic stays on Sat-A, (4) transfer of the session state (packet
  counters, IVs) from Sat-A to Sat-B over the ISL, (5) soft switch: the controller updates the
  flow tables with an activation time, (6) teardown of Sat-A. **Break-before-make** (BBM, the
  static shortest-path baseline): no prediction; the link to Sat-A drops, the loss is detected
  after a detection delay, the controller then has Sat-B acquired and keys generated before
  Type-I traffic resumes. Every step is an :class:`~twin.network.messages.Envelope`
  (``MessageKind.HANDOVER``, or ``LINK_STATE`` for the loss report) sent at the handler's
  current time and delivered after the physical delay (control-channel latency, ISL
  propagation); waiting (acquisition, key generation, scheduled activation) is a timer, an
  envelope a node addresses to itself. Interruption and jitter come from these timestamps only,
  never from ticks: a handover may fall anywhere inside a tick.

* :class:`LinkResilienceState` watches one FSO link (or the Type-I flows it protects) and moves
  between the modes of :class:`ResilienceMode`: NOMINAL, TURBO (key consumption above
  generation, sec. VIII.C "QKD Turbo Mode"), RF_FALLBACK (FSO attenuation above 100 dB/km or
  beacon lost, sec. VIII.B: Type-I continues on *buffered* keys over Ka-band RF), FAILSAFE
  (buffers drained: Type-II..IV downgraded to PQC, non-essential traffic halted, Type-I halted
  when its one-time-pad keys are gone) and RECOVERING (FSO back after a hysteresis hold, buffers
  refilling). The engine feeds it one :class:`LinkObservation` per tick (or at any instant it
  knows something changed); threshold crossings between observations are located exactly on
  the linear interpolation of the observed values, so transition times do not depend on where
  the tick boundaries fall. Key buffers themselves live in ``twin.network.keys``; this module
  only reads their levels.

Parameter values (each field's docstring gives its source or says "assumption"):
:class:`HandoverParams` and :class:`ResilienceParams`.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import numpy as np

from twin.network.messages import Envelope, MessageKind, SeenMessages, delivery_order
from twin.physics.atmosphere import FSO_IMPOSSIBLE_ATTENUATION_DB_PER_KM
from twin.physics.energy import LaserLevel
from twin.units import DEG, NS_PER_S, SMF28_GROUP_INDEX_1550, SPEED_OF_LIGHT_M_PER_S

__all__ = [
    "HandoverKind",
    "HandoverLog",
    "HandoverManager",
    "HandoverParams",
    "HandoverPhase",
    "HandoverRecord",
    "HandoverRequest",
    "LinkObservation",
    "LinkResilienceState",
    "ResilienceActions",
    "ResilienceEvent",
    "ResilienceMode",
    "ResilienceParams",
    "ResilienceStep",
    "key_warmup_ns",
    "predict_crossing_ns",
]

_MS_NS = NS_PER_S // 1_000
_S_NS = NS_PER_S
# Protocol steps about the state of Sat-A's link travel as LINK_STATE, the rest as HANDOVER.
_LINK_STEPS = frozenset({"link_lost", "loss_detected", "link_down"})
# One-way control-channel latency default: ~2,000 km of terrestrial fibre (a European cloud
# controller to an OGS) at the SMF-28 group index, c / 1.4682 -> 4.9 us/km (twin.units).
_CONTROL_LATENCY_NS = round(2_000e3 * SMF28_GROUP_INDEX_1550 / SPEED_OF_LIGHT_M_PER_S * NS_PER_S)


def _check_ns(name: str, value: Any, *, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{name} must be int nanoseconds, got {value!r} (convert with twin.units.NS_PER_S)"
        )
    value = int(value)
    if value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be {bound} ns, got {value}")
    return value


def _check_bits(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer number of bits, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 bits, got {value}")
    return int(value)


def _check_rate(name: str, value: Any) -> float:
    rate = float(value)
    if not (math.isfinite(rate) and rate >= 0.0):
        raise ValueError(f"{name} must be a finite rate >= 0 bit/s, got {value!r}")
    return rate


def _ceil_ns(seconds: Fraction) -> int:
    return math.ceil(seconds * NS_PER_S)


def key_warmup_ns(needed_bits: int, buffered_bits: int, key_rate_bps: float) -> int:
    """Time (int ns, rounded up) until a key buffer holding ``buffered_bits`` reaches
    ``needed_bits`` when filled at ``key_rate_bps``: ``ceil((needed - buffered) / rate)``.

    Exact rational arithmetic (the float rate is taken at its exact binary value), so the
    result never depends on where in time the warm-up starts. Raises ValueError when more bits
    are needed and the rate is 0 (the buffer would never fill).
    """
    needed = _check_bits("needed_bits", needed_bits)
    have = _check_bits("buffered_bits", buffered_bits)
    rate = _check_rate("key_rate_bps", key_rate_bps)
    missing = needed - have
    if missing <= 0:
        return 0
    if rate == 0.0:
        raise ValueError(
            f"key_rate_bps is 0 but {missing} more key bits are needed: the buffer never fills "
            "(pick a target link with a positive secret-key rate)"
        )
    return _ceil_ns(Fraction(missing) / Fraction(rate))


def predict_crossing_ns(t_ns, elevation_rad, threshold_rad: float) -> int | None:
    """First instant (int ns) at which a sampled elevation falls below ``threshold_rad``.

    ``t_ns``: (N,) strictly increasing integer sample times; ``elevation_rad``: (N,) elevations
    of one satellite seen from one site (e.g. from :func:`twin.physics.geometry.look_angles`
    over the MPC's prediction window). Returns the first *descending* crossing, located by
    linear interpolation between the two samples that bracket it and rounded up to the next
    nanosecond (the first ns at which the interpolated elevation is at or below the
    threshold), or None when there is no such crossing in the samples (samples before the
    satellite rises above the threshold are skipped: a rising pass is not a horizon).
    Main paper sec. VIII.A step 1: the MPC predicts the "handover horizon", where Sat-A's
    elevation drops below a threshold (e.g. 20 degrees); the same function gives the loss of
    visibility at the link's elevation mask. For a pass list from
    :func:`twin.physics.orbits.find_passes` run with ``min_elevation_rad=threshold``, the set
    time already is this instant (convert its seconds to ns).
    """
    t = np.asarray(t_ns)
    el = np.asarray(elevation_rad, dtype=float)
    if t.ndim != 1 or el.shape != t.shape or t.size == 0:
        raise ValueError(
            f"t_ns and elevation_rad must be 1-D of the same non-zero length, got shapes "
            f"{t.shape} and {el.shape}"
        )
    if t.dtype.kind not in "iu":
        raise TypeError(f"t_ns must be integer nanoseconds, got dtype {t.dtype}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("t_ns must be strictly increasing")
    if not np.all(np.isfinite(el)) or np.any(np.abs(el) > math.pi / 2):
        bad = el[~(np.abs(el) <= math.pi / 2)].flat[0]
        raise ValueError(
            f"elevation_rad must be finite within [-pi/2, pi/2], got {bad!r} (degrees passed?)"
        )
    thr = float(threshold_rad)
    if not abs(thr) <= math.pi / 2:
        raise ValueError(
            f"threshold_rad must be within [-pi/2, pi/2], got {threshold_rad!r} (degrees passed?)"
        )
    # sample k-1 at or above the threshold, sample k below it
    descending = (el[:-1] >= thr) & (el[1:] < thr)
    if not descending.any():
        return None
    k = int(np.argmax(descending)) + 1
    e0, e1 = Fraction(float(el[k - 1])), Fraction(float(el[k]))
    t0, t1 = int(t[k - 1]), int(t[k])
    # e0 >= thr > e1: the crossing lies in [t0, t1); the first integer ns at or below it.
    t_star = t0 + (e0 - Fraction(thr)) * (t1 - t0) / (e0 - e1)
    return math.ceil(t_star)


# ================================================================================================
# Handover
# ================================================================================================


class HandoverKind(enum.StrEnum):
    """Which protocol a handover ran."""

    MBB = "mbb"
    """make-before-break, six steps with prediction (main paper sec. VIII.A)"""
    BBM = "bbm"
    """break-before-make: no prediction, recovery after the loss (static shortest-path baseline)"""


class HandoverPhase(enum.StrEnum):
    """Where a handover stands, as the controller sees it."""

    PREDICTED = "predicted"  # MBB: horizon known, waiting to start pre-establishment
    DETECTING = "detecting"  # BBM: the link to Sat-A is lost, the controller does not know yet
    ACQUIRING = "acquiring"  # Sat-B and the ground terminal commanded, acquisition running
    KEY_SYNC = "key_sync"  # tracking established, Sat-B's link generating keys
    STATE_TRANSFER = "state_transfer"  # MBB: counters/IVs travelling Sat-A -> Sat-B over the ISL
    SWITCH_SCHEDULED = "switch_scheduled"  # flow-table updates sent
    SWITCHED = "switched"  # the flow runs on Sat-B; MBB: teardown of Sat-A in flight
    DONE = "done"


@dataclass(frozen=True)
class HandoverParams:
    """Protocol timing of sec. VIII.A and of the break-before-make baseline.

    Every duration is an int number of nanoseconds; each field cites its value or says
    "assumption" (these are scenario settings).
    """

    elevation_threshold_rad: float = 20.0 * DEG
    """Handover horizon: Sat-A's elevation below this starts the handover (main paper sec.
    VIII.A step 1, "e.g., 20 degrees")."""
    acquisition_ns: int = 30 * _S_NS
    """Pointing-acquisition-tracking until the new optical link is usable. LEO acquisition
    delays are "tens of seconds" (Gerard, Fraire & Cespedes, "Modeling Pointing, Acquisition,
    and Tracking Delays in Free-Space Optical Satellite Networks", IEEE WiSEE 2025,
    arXiv:2511.16063, model validated on NASA TBIRD); 30 s, the low end, is assumed."""
    detection_delay_ns: int = 150 * _MS_NS
    """Break-before-make: loss of Sat-A's link until the loss report leaves the ground node.
    Modelled as BFD: detection time = detect multiplier x receive interval (IETF RFC 5880,
    sec. 6.8.4); assumption: 3 x 50 ms."""
    control_latency_ns: int = _CONTROL_LATENCY_NS
    """One-way controller <-> node latency when a request gives none for that node. Assumption:
    ~2,000 km of terrestrial fibre at 4.9 us/km (SMF-28 group index, twin.units) ~ 9.8 ms."""
    switch_sync_error_ns: int = 1_000
    """Make-before-break switches at a scheduled instant on every flow-table node; nodes agree
    on that instant to within the time-synchronisation error, added to the jitter when two or
    more nodes switch. IEEE 802.1AS (gPTP): any two time-aware systems six or fewer hops apart
    are synchronised to within 1 us peak-to-peak (IEEE Std 802.1AS, Annex B)."""
    mbb_guard_ns: int = 10 * _S_NS
    """Make-before-break starts pre-establishment this long before the latest start that
    would still reach the horizon (margin over the predicted protocol duration). Assumption."""

    def __post_init__(self) -> None:
        thr = float(self.elevation_threshold_rad)
        if not 0.0 <= thr <= math.pi / 2:
            raise ValueError(
                f"elevation_threshold_rad must be within [0, pi/2], got {thr!r} (degrees passed?)"
            )
        for name in (
            "acquisition_ns",
            "detection_delay_ns",
            "control_latency_ns",
            "switch_sync_error_ns",
            "mbb_guard_ns",
        ):
            _check_ns(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class HandoverRequest:
    """One flow moving from Sat-A to Sat-B: what the engine knows when it asks for a handover.

    Latencies and the ISL delay come from the time-varying graph G(t) (propagation plus
    processing, int ns); the key rate from the link budget of Sat-B's QKD link; the key levels
    from ``twin.network.keys``.
    """

    flow: str
    """the flow (or path segment) whose Type-I traffic moves"""
    from_node: str
    """Sat-A, the satellite being left"""
    to_node: str
    """Sat-B, the incoming satellite"""
    from_ground: str
    """the ground terminal (OGS) tracking Sat-A: it detects the loss of Sat-A's link"""
    to_ground: str | None = None
    """the terminal that tracks Sat-B: the same OGS (second terminal) or a diversity OGS;
    None means ``from_ground``"""
    latency_from_ns: int
    """one-way latency of the flow's path via Sat-A at the switch"""
    latency_to_ns: int
    """one-way latency of the flow's path via Sat-B at the switch"""
    key_rate_to_bps: float
    """secret-key rate of Sat-B's QKD link while its buffer warms up"""
    resume_key_bits: int
    """key bits Sat-B's link buffer must hold before Type-I traffic may use it (e.g. the
    buffer's WARNING level in twin.network.keys)"""
    buffered_to_bits: int = 0
    """key bits already in Sat-B's link buffer (left from an earlier pass)"""
    isl_delay_ns: int = 0
    """one-way Sat-A -> Sat-B inter-satellite-link delay (MBB step 4, state transfer)"""
    switch_nodes: tuple[str, ...] = ()
    """nodes whose flow tables change (the ends of the replaced segment); empty means the
    ground terminals ``{from_ground, to_ground}``"""
    control_latency_ns: Mapping[str, int] = field(default_factory=dict)
    """one-way controller <-> node latency per node; nodes not listed use
    ``HandoverParams.control_latency_ns``"""
    session_state: Mapping[str, int] = field(default_factory=dict)
    """critical session state handed from Sat-A to Sat-B (packet counters, IVs)"""

    def __post_init__(self) -> None:
        to_ground = self.from_ground if self.to_ground is None else self.to_ground
        object.__setattr__(self, "to_ground", to_ground)
        for name in ("flow", "from_node", "to_node", "from_ground", "to_ground"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty node/flow name, got {value!r}")
        if self.from_node == self.to_node:
            raise ValueError(
                f"from_node and to_node are both {self.from_node!r}: a handover needs two "
                "satellites"
            )
        if len({self.from_node, self.to_node, to_ground}) < 3 or self.from_ground in (
            self.from_node,
            self.to_node,
        ):
            raise ValueError(
                "ground terminals must differ from the satellites, got "
                f"from_ground={self.from_ground!r}, to_ground={to_ground!r}"
            )
        _check_ns("latency_from_ns", self.latency_from_ns)
        _check_ns("latency_to_ns", self.latency_to_ns)
        _check_ns("isl_delay_ns", self.isl_delay_ns)
        _check_rate("key_rate_to_bps", self.key_rate_to_bps)
        _check_bits("resume_key_bits", self.resume_key_bits)
        _check_bits("buffered_to_bits", self.buffered_to_bits)
        if self.key_rate_to_bps == 0 and self.resume_key_bits > self.buffered_to_bits:
            raise ValueError(
                f"key_rate_to_bps is 0 but resume_key_bits ({self.resume_key_bits}) exceeds "
                f"buffered_to_bits ({self.buffered_to_bits}): Sat-B's buffer would never fill "
                "(hand over to a satellite with a positive secret-key rate)"
            )
        nodes = tuple(self.switch_nodes) or tuple(sorted({self.from_ground, to_ground}))
        if len(set(nodes)) != len(nodes) or not all(isinstance(n, str) and n for n in nodes):
            raise ValueError(f"switch_nodes must be distinct non-empty names, got {nodes!r}")
        object.__setattr__(self, "switch_nodes", nodes)
        lat = dict(self.control_latency_ns)
        for node, value in lat.items():
            _check_ns(f"control_latency_ns[{node!r}]", value)
        object.__setattr__(self, "control_latency_ns", MappingProxyType(lat))
        state = dict(self.session_state)
        for key, value in state.items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"session_state must map names to ints (counters, IVs), got {key!r}: {value!r}"
                )
        object.__setattr__(self, "session_state", MappingProxyType(state))


@dataclass(frozen=True)
class HandoverRecord:
    """One finished handover: what metrics need, all times int ns since the scenario epoch.

    ``interruption_ns``: time the flow had no usable secured path: from the loss of Sat-A's
    link to the instant the last flow-table node switched to Sat-B (0 when the switch came
    first). ``jitter_ns``: change of the one-way path latency at the switch,
    ``|latency_to - latency_from|``, plus the spread of the switching instants over the nodes
    (and the clock-synchronisation error for a scheduled switch on two or more nodes).
    """

    handover_id: str
    kind: HandoverKind
    flow: str
    from_node: str
    to_node: str
    from_ground: str
    to_ground: str
    t_start_ns: int
    """MBB: pre-establishment commands leave the controller; BBM: Sat-A's link is lost"""
    t_switch_ns: int
    """the last flow-table node switched to Sat-B"""
    interruption_ns: int
    jitter_ns: int
    latency_from_ns: int
    latency_to_ns: int
    switch_spread_ns: int
    t_predicted_ns: int | None
    """MBB: when the horizon was predicted"""
    t_horizon_ns: int | None
    """MBB: Sat-A's elevation crosses the threshold"""
    t_link_lost_ns: int | None
    """Sat-A's link lost before the switch (None when the switch came first)"""
    t_acquired_ns: int
    t_keys_ready_ns: int
    t_state_transferred_ns: int | None
    """MBB: the session state reached Sat-B"""
    t_teardown_ns: int | None
    """MBB: Sat-A released"""
    transferred_state: Mapping[str, int]
    messages: int
    """envelopes the protocol exchanged (timers included)"""

    @property
    def interruption_ms(self) -> float:
        return self.interruption_ns / _MS_NS

    @property
    def jitter_ms(self) -> float:
        return self.jitter_ns / _MS_NS

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON/msgpack-able dict."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, HandoverKind):
                value = value.value
            elif isinstance(value, Mapping):
                value = dict(sorted(value.items()))
            out[name] = value
        return out

    def shifted(self, offset_ns: int) -> HandoverRecord:
        """The same record with every absolute time moved by ``offset_ns`` (for comparisons)."""
        changes = {}
        for name in self.__dataclass_fields__:
            if name.startswith("t_") and name.endswith("_ns"):
                value = getattr(self, name)
                changes[name] = None if value is None else value + offset_ns
        return dataclasses.replace(self, **changes)


def _stats_ms(values_ns: Sequence[int]) -> dict[str, float | None]:
    if len(values_ns) == 0:
        return {"p50": None, "p99": None, "max": None}
    arr = np.asarray(values_ns, dtype=np.float64) / _MS_NS
    return {
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


class HandoverLog:
    """Append-only list of :class:`HandoverRecord`, in completion order, with summary stats."""

    def __init__(self, records: Iterable[HandoverRecord] = ()) -> None:
        self._records: list[HandoverRecord] = list(records)

    def append(self, record: HandoverRecord) -> None:
        self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[HandoverRecord]:
        return iter(self._records)

    def __getitem__(self, index: int) -> HandoverRecord:
        return self._records[index]

    @property
    def records(self) -> tuple[HandoverRecord, ...]:
        return tuple(self._records)

    def interruption_ms(self, kind: HandoverKind | None = None) -> dict[str, float | None]:
        """p50 / p99 / max of the interruption in ms (linear-interpolated percentiles);
        None values when there is no handover."""
        return _stats_ms([r.interruption_ns for r in self._records if kind in (None, r.kind)])

    def jitter_ms(self, kind: HandoverKind | None = None) -> dict[str, float | None]:
        """p50 / p99 / max of the jitter in ms; None values when there is no handover."""
        return _stats_ms([r.jitter_ns for r in self._records if kind in (None, r.kind)])

    def summary(self) -> dict[str, Any]:
        """The metrics.json fields: ``handovers``, ``handover_interruption_ms``,
        ``handover_jitter_ms`` (p50, p99, max) and the count per kind."""
        return {
            "handovers": len(self._records),
            "handover_interruption_ms": self.interruption_ms(),
            "handover_jitter_ms": self.jitter_ms(),
            "handovers_by_kind": {
                k.value: sum(r.kind is k for r in self._records) for k in HandoverKind
            },
        }

    def as_rows(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self._records]


class _Session:
    """Mutable per-handover state shared by the simulated roles (controller, nodes)."""

    __slots__ = (
        "a_down_known",
        "activate_ns",
        "handover_id",
        "kind",
        "messages",
        "phase",
        "pre_established",
        "request",
        "switched_at",
        "t_acquired_ns",
        "t_horizon_ns",
        "t_keys_ready_ns",
        "t_link_lost_ns",
        "t_predicted_ns",
        "t_start_ns",
        "t_state_transferred_ns",
        "t_switch_ns",
        "transferred_state",
        "warmup_ns",
    )

    def __init__(self, handover_id: str, kind: HandoverKind, request: HandoverRequest) -> None:
        self.handover_id = handover_id
        self.kind = kind
        self.request = request
        self.phase = HandoverPhase.PREDICTED
        self.t_predicted_ns: int | None = None
        self.t_horizon_ns: int | None = None
        self.t_start_ns: int | None = None
        self.t_link_lost_ns: int | None = None
        self.t_acquired_ns: int | None = None
        self.t_keys_ready_ns: int | None = None
        self.t_state_transferred_ns: int | None = None
        self.t_switch_ns: int | None = None
        self.a_down_known = False
        self.activate_ns: int | None = None
        self.pre_established: set[str] = set()
        self.switched_at: dict[str, int] = {}
        self.transferred_state: dict[str, int] = {}
        self.messages = 0
        self.warmup_ns = key_warmup_ns(
            request.resume_key_bits, request.buffered_to_bits, request.key_rate_to_bps
        )


class HandoverManager:
    """Runs make-before-break and break-before-make handovers as exchanges of envelopes.

    The manager plays every role of the protocol (the SDQN controller, Sat-A, Sat-B, the
    ground terminals and the flow-table nodes); each role reacts only to the envelopes
    delivered to it, at their ``arrival_ns``, and sends new ones at that instant (or sets a
    timer: an envelope to itself). Envelopes it creates carry node names as ``src``/``dst``
    and sequence numbers from the manager's own per-source counters: they are delivered by
    :meth:`advance` (its internal queue, in ``(arrival_ns, src, seq)`` order), not mixed with
    other senders' traffic.

    Engine use, once per tick ``[t, t + dt)``: after the environment step, call
    :meth:`start_mbb` for handovers the MPC predicted (horizon from
    :func:`predict_crossing_ns`), :meth:`start_bbm` for links that dropped without a plan,
    :meth:`report_link_loss` for unplanned losses during a planned handover; then
    ``advance(t + dt - 1)``. Finished handovers appear in :attr:`log`.
    """

    def __init__(self, params: HandoverParams | None = None, *, controller: str = "sdqn") -> None:
        self.params = params or HandoverParams()
        self.controller = controller
        self.log = HandoverLog()
        self._queue: list[tuple[int, str, int, Envelope]] = []
        self._seq: dict[str, int] = {}
        self._seen = SeenMessages()
        self._sessions: dict[str, _Session] = {}
        self._active: dict[str, str] = {}  # flow -> handover_id
        self._count: dict[str, int] = {}  # flow -> handovers started
        self._now_ns = 0
        self._handlers = {
            "begin": self._on_begin,
            "link_lost": self._on_link_lost,
            "loss_detected": self._on_loss_detected,
            "link_down": self._on_link_down,
            "pre_establish": self._on_pre_establish,
            "acquisition_done": self._on_acquisition_done,
            "acquired": self._on_acquired,
            "keys_generated": self._on_keys_generated,
            "keys_ready": self._on_keys_ready,
            "state_request": self._on_state_request,
            "state": self._on_state,
            "state_ack": self._on_state_ack,
            "switch": self._on_switch,
            "activate": self._on_activate,
            "switched": self._on_switched,
            "teardown": self._on_teardown,
        }

    # ---- engine-facing API ----------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        """Every envelope arriving at or before this instant has been handled."""
        return self._now_ns

    def phase(self, flow: str) -> HandoverPhase | None:
        """Phase of the flow's handover in progress, or None."""
        hid = self._active.get(flow)
        return None if hid is None else self._sessions[hid].phase

    def next_arrival_ns(self) -> int | None:
        """Arrival time of the next pending envelope, or None when nothing is pending."""
        return self._queue[0][0] if self._queue else None

    def start_mbb(
        self,
        request: HandoverRequest,
        *,
        t_predicted_ns: int,
        t_horizon_ns: int,
        t_link_lost_ns: int,
    ) -> str:
        """Plan a make-before-break handover; returns its id.

        ``t_predicted_ns``: now, when the MPC predicted the horizon; ``t_horizon_ns``: Sat-A's
        elevation crosses ``params.elevation_threshold_rad``; ``t_link_lost_ns``: Sat-A's link
        is predicted to drop (elevation mask / loss of visibility), after the horizon. The
        controller starts pre-establishment as late as still reaches the horizon (predicted
        protocol duration plus ``params.mbb_guard_ns``), or at once if that is already past;
        the switch is scheduled for the horizon or, if the steps finish later, for then.
        """
        t_pred = self._check_not_past("t_predicted_ns", t_predicted_ns)
        t_h = _check_ns("t_horizon_ns", t_horizon_ns)
        t_lost = _check_ns("t_link_lost_ns", t_link_lost_ns)
        if t_lost < t_pred:
            raise ValueError(
                f"t_link_lost_ns {t_lost} precedes t_predicted_ns {t_pred}: Sat-A's link is "
                "already gone, so nothing can be made before the break (use start_bbm)"
            )
        if t_lost < t_h:
            raise ValueError(
                f"t_link_lost_ns {t_lost} precedes t_horizon_ns {t_h}: the elevation mask must "
                "be below the handover threshold (or report an early loss with "
                "report_link_loss)"
            )
        session = self._open(HandoverKind.MBB, request)
        session.t_predicted_ns = t_pred
        session.t_horizon_ns = t_h
        duration = self._predicted_duration_ns(session)
        t_begin = max(t_pred, t_h - duration - self.params.mbb_guard_ns)
        session.t_start_ns = t_begin
        ctrl = self.controller
        self._send(None, session, "begin", ctrl, ctrl, t_pred, t_begin - t_pred)
        # The physical loss of Sat-A's link, as seen by its ground terminal (ignored if the
        # flow has left Sat-A by then).
        ground = request.from_ground
        self._send(None, session, "link_lost", ground, ground, t_pred, t_lost - t_pred)
        return session.handover_id

    def start_bbm(self, request: HandoverRequest, *, t_link_lost_ns: int) -> str:
        """Break-before-make: Sat-A's link drops at ``t_link_lost_ns`` with nothing prepared;
        recovery starts when the loss is detected. Returns the handover id."""
        t_lost = self._check_not_past("t_link_lost_ns", t_link_lost_ns)
        session = self._open(HandoverKind.BBM, request)
        session.phase = HandoverPhase.DETECTING
        session.t_start_ns = t_lost
        ground = request.from_ground
        self._send(None, session, "link_lost", ground, ground, t_lost, 0)
        return session.handover_id

    def report_link_loss(self, flow: str, t_ns: int) -> None:
        """Sat-A's link of the flow's planned (MBB) handover dropped at ``t_ns``, earlier than
        predicted (weather, a fade): the flow is interrupted until the switch, which the
        controller moves forward once the loss is reported. Ignored after the switch."""
        t = self._check_not_past("t_ns", t_ns)
        hid = self._active.get(flow)
        if hid is None:
            raise ValueError(
                f"flow {flow!r} has no handover in progress: use start_bbm for an unplanned loss"
            )
        session = self._sessions[hid]
        ground = session.request.from_ground
        self._send(None, session, "link_lost", ground, ground, t, 0)

    def advance(self, t_until_ns: int) -> list[Envelope]:
        """Deliver, in ``(arrival_ns, src, seq)`` order, every pending envelope arriving at or
        before ``t_until_ns`` (including those sent on the way); returns them in that order."""
        t_until = _check_ns("t_until_ns", t_until_ns)
        if t_until < self._now_ns:
            raise ValueError(
                f"t_until_ns {t_until} precedes the manager's time {self._now_ns}: time only "
                "moves forward"
            )
        delivered = []
        while self._queue and self._queue[0][0] <= t_until:
            env = heapq.heappop(self._queue)[3]
            self._now_ns = env.arrival_ns
            delivered.append(env)
            for out in self.handle(env):
                self._push(out)
        self._now_ns = t_until
        return delivered

    def handle(self, envelope: Envelope) -> list[Envelope]:
        """Handle one delivered envelope (at its ``arrival_ns``); returns the envelopes it
        sends. A duplicate (same ``(src, seq)``) is a no-op and returns []. :meth:`advance`
        calls this; call it directly only to deliver envelopes yourself."""
        if envelope.kind not in (MessageKind.HANDOVER, MessageKind.LINK_STATE):
            raise ValueError(f"not a handover envelope: kind {envelope.kind!r}")
        if not self._seen.first_time(envelope):
            return []
        step = envelope.payload.get("step")
        handler = self._handlers.get(step)
        session = self._sessions.get(envelope.payload.get("handover_id"))
        if handler is None or session is None:
            raise RuntimeError(f"unknown handover step or id in {envelope!r}")
        out: list[Envelope] = []
        handler(session, envelope, out)
        return out

    # ---- internals: plumbing -------------------------------------------------------------

    def _check_not_past(self, name: str, value: int) -> int:
        t = _check_ns(name, value)
        if t < self._now_ns:
            raise ValueError(
                f"{name} {t} precedes the manager's time {self._now_ns}: start handovers and "
                "report losses before advance() passes them"
            )
        return t

    def _open(self, kind: HandoverKind, request: HandoverRequest) -> _Session:
        if not isinstance(request, HandoverRequest):
            raise TypeError(f"request must be a HandoverRequest, got {type(request).__name__}")
        if request.flow in self._active:
            raise ValueError(
                f"flow {request.flow!r} already has handover {self._active[request.flow]!r} in "
                "progress: wait for it to finish"
            )
        n = self._count.get(request.flow, 0)
        self._count[request.flow] = n + 1
        hid = f"{request.flow}#{n}"
        session = _Session(hid, kind, request)
        self._sessions[hid] = session
        self._active[request.flow] = hid
        return session

    def _lat(self, request: HandoverRequest, node: str) -> int:
        return request.control_latency_ns.get(node, self.params.control_latency_ns)

    def _max_switch_lat(self, request: HandoverRequest) -> int:
        return max(self._lat(request, n) for n in request.switch_nodes)

    def _predicted_duration_ns(self, s: _Session) -> int:
        """Critical path of the MBB steps 2-5, from the first command to the scheduled switch."""
        r = s.request
        return (
            max(self._lat(r, r.to_node), self._lat(r, r.to_ground))  # pre-establish commands
            + self.params.acquisition_ns
            + s.warmup_ns
            + self._lat(r, r.to_ground)  # keys_ready -> controller
            + self._lat(r, r.from_node)  # state request -> Sat-A
            + r.isl_delay_ns  # state Sat-A -> Sat-B
            + self._lat(r, r.to_node)  # state ack -> controller
            + self._max_switch_lat(r)  # flow-table updates
        )

    def _send(
        self, out, s: _Session, step: str, src: str, dst: str, now: int, delay_ns: int, **payload
    ) -> None:
        """Send one envelope at ``now`` arriving ``delay_ns`` later (to the queue if ``out`` is
        None). Steps about the link's state travel as LINK_STATE, the others as HANDOVER."""
        seq = self._seq.get(src, 0)
        self._seq[src] = seq + 1
        kind = MessageKind.LINK_STATE if step in _LINK_STEPS else MessageKind.HANDOVER
        body = {"step": step, "handover_id": s.handover_id, "flow": s.request.flow, **payload}
        env = Envelope(src, dst, kind, now, seq, now + delay_ns, body)
        s.messages += 1
        if out is None:
            self._push(env)
        else:
            out.append(env)

    def _push(self, env: Envelope) -> None:
        heapq.heappush(self._queue, (*delivery_order(env), env))

    # ---- internals: the roles ------------------------------------------------------------
    # Each handler runs at env.arrival_ns at the node env.dst and only sends; "C" is the
    # controller. Timers are envelopes a node sends to itself.

    def _command_pre_establish(self, s: _Session, now: int, out) -> None:
        r, C = s.request, self.controller
        s.phase = HandoverPhase.ACQUIRING
        for node in (r.to_node, r.to_ground):
            self._send(out, s, "pre_establish", C, node, now, self._lat(r, node))

    def _on_begin(self, s: _Session, env: Envelope, out) -> None:
        # C, MBB step 2: instruct Sat-B and its ground terminal to start tracking
        if s.phase is HandoverPhase.PREDICTED:
            self._command_pre_establish(s, env.arrival_ns, out)

    def _on_link_lost(self, s: _Session, env: Envelope, out) -> None:
        # Sat-A's ground terminal: the link is physically gone now
        if s.phase in (HandoverPhase.SWITCHED, HandoverPhase.DONE) or s.t_link_lost_ns is not None:
            return  # the flow already left Sat-A, or an earlier loss was reported
        s.t_link_lost_ns = now = env.arrival_ns
        g = s.request.from_ground
        self._send(out, s, "loss_detected", g, g, now, self.params.detection_delay_ns)

    def _on_loss_detected(self, s: _Session, env: Envelope, out) -> None:
        r = s.request
        lat = self._lat(r, r.from_ground)
        extra = {"node": r.from_node, "t_lost_ns": s.t_link_lost_ns}
        self._send(
            out, s, "link_down", r.from_ground, self.controller, env.arrival_ns, lat, **extra
        )

    def _on_link_down(self, s: _Session, env: Envelope, out) -> None:
        # C learns that Sat-A's link is down
        now = env.arrival_ns
        s.a_down_known = True
        if s.phase in (HandoverPhase.DETECTING, HandoverPhase.PREDICTED):
            # BBM recovery starts here; an MBB whose Sat-A failed before the planned start
            # begins at once
            s.t_start_ns = s.t_start_ns if s.kind is HandoverKind.BBM else now
            self._command_pre_establish(s, now, out)
        elif s.phase is HandoverPhase.SWITCH_SCHEDULED:
            earliest = now + self._max_switch_lat(s.request)
            if s.activate_ns is not None and s.activate_ns > earliest:
                self._schedule_switch(s, now, earliest, out)  # move the switch forward

    def _on_pre_establish(self, s: _Session, env: Envelope, out) -> None:
        # Sat-B or its ground terminal: acquisition starts once both ends are commanded
        s.pre_established.add(env.dst)
        g = s.request.to_ground
        if s.pre_established == {s.request.to_node, g}:
            self._send(out, s, "acquisition_done", g, g, env.arrival_ns, self.params.acquisition_ns)

    def _on_acquisition_done(self, s: _Session, env: Envelope, out) -> None:
        # Sat-B's ground terminal: tracking established; QKD starts filling the buffer (step 3)
        g, C = s.request.to_ground, self.controller
        s.t_acquired_ns = now = env.arrival_ns
        self._send(out, s, "acquired", g, C, now, self._lat(s.request, g))
        self._send(out, s, "keys_generated", g, g, now, s.warmup_ns)

    def _on_acquired(self, s: _Session, env: Envelope, out) -> None:
        if s.phase is HandoverPhase.ACQUIRING:
            s.phase = HandoverPhase.KEY_SYNC

    def _on_keys_generated(self, s: _Session, env: Envelope, out) -> None:
        r = s.request
        s.t_keys_ready_ns = now = env.arrival_ns
        bits = max(r.resume_key_bits, r.buffered_to_bits)
        lat = self._lat(r, r.to_ground)
        self._send(out, s, "keys_ready", r.to_ground, self.controller, now, lat, key_bits=bits)

    def _on_keys_ready(self, s: _Session, env: Envelope, out) -> None:
        now, r = env.arrival_ns, s.request
        if s.kind is HandoverKind.BBM:
            # no state to carry over (Sat-A is gone): switch the flow tables at once
            self._schedule_switch(s, now, None, out)
            return
        # MBB step 4: critical session state from Sat-A to Sat-B over the ISL
        s.phase = HandoverPhase.STATE_TRANSFER
        lat = self._lat(r, r.from_node)
        self._send(out, s, "state_request", self.controller, r.from_node, now, lat)

    def _on_state_request(self, s: _Session, env: Envelope, out) -> None:
        r = s.request
        state = dict(sorted(r.session_state.items()))
        self._send(
            out, s, "state", r.from_node, r.to_node, env.arrival_ns, r.isl_delay_ns, state=state
        )

    def _on_state(self, s: _Session, env: Envelope, out) -> None:
        r = s.request
        s.t_state_transferred_ns = now = env.arrival_ns
        s.transferred_state = dict(env.payload["state"])
        lat = self._lat(r, r.to_node)
        self._send(out, s, "state_ack", r.to_node, self.controller, now, lat)

    def _on_state_ack(self, s: _Session, env: Envelope, out) -> None:
        # C, MBB step 5: soft switch at the horizon (or as soon as possible if Sat-A is down)
        now = env.arrival_ns
        earliest = now + self._max_switch_lat(s.request)
        assert s.t_horizon_ns is not None
        activate = earliest if s.a_down_known else max(s.t_horizon_ns, earliest)
        self._schedule_switch(s, now, activate, out)

    def _schedule_switch(self, s: _Session, now: int, activate_ns: int | None, out) -> None:
        s.phase = HandoverPhase.SWITCH_SCHEDULED
        s.activate_ns = activate_ns
        r = s.request
        for node in r.switch_nodes:
            lat = self._lat(r, node)
            extra = {"to_node": r.to_node, "activate_at_ns": activate_ns}
            self._send(out, s, "switch", self.controller, node, now, lat, **extra)

    def _on_switch(self, s: _Session, env: Envelope, out) -> None:
        # flow-table node: switch now (BBM) or at the scheduled instant (MBB)
        now, node = env.arrival_ns, env.dst
        activate = env.payload["activate_at_ns"]
        if activate is None or activate <= now:
            self._switch_node(s, node, now, out)
        else:
            self._send(out, s, "activate", node, node, now, activate - now)

    def _on_activate(self, s: _Session, env: Envelope, out) -> None:
        self._switch_node(s, env.dst, env.arrival_ns, out)

    def _switch_node(self, s: _Session, node: str, now: int, out) -> None:
        if node in s.switched_at:
            return  # an earlier (rescheduled) activation already switched this node
        s.switched_at[node] = now
        self._send(out, s, "switched", node, self.controller, now, self._lat(s.request, node))

    def _on_switched(self, s: _Session, env: Envelope, out) -> None:
        r = s.request
        if s.t_switch_ns is not None or len(s.switched_at) < len(r.switch_nodes):
            return
        s.t_switch_ns = max(s.switched_at.values())
        s.phase = HandoverPhase.SWITCHED
        del self._active[r.flow]  # the flow is on Sat-B: a new handover may be planned
        if s.kind is HandoverKind.BBM:
            self._finish(s, None)
            return
        # MBB step 6: release Sat-A
        lat = self._lat(r, r.from_node)
        self._send(out, s, "teardown", self.controller, r.from_node, env.arrival_ns, lat)

    def _on_teardown(self, s: _Session, env: Envelope, out) -> None:
        self._finish(s, env.arrival_ns)

    def _finish(self, s: _Session, t_teardown_ns: int | None) -> None:
        r = s.request
        t_switch = s.t_switch_ns
        assert t_switch is not None and s.t_start_ns is not None
        assert s.t_acquired_ns is not None and s.t_keys_ready_ns is not None
        lost = s.t_link_lost_ns
        if lost is not None and lost >= t_switch:
            lost = None
        interruption = 0 if lost is None else t_switch - lost
        spread = t_switch - min(s.switched_at.values())
        if s.activate_ns is not None and len(r.switch_nodes) > 1:
            spread += self.params.switch_sync_error_ns
        jitter = abs(r.latency_to_ns - r.latency_from_ns) + spread
        s.phase = HandoverPhase.DONE
        self.log.append(
            HandoverRecord(
                handover_id=s.handover_id,
                kind=s.kind,
                flow=r.flow,
                from_node=r.from_node,
                to_node=r.to_node,
                from_ground=r.from_ground,
                to_ground=r.to_ground,
                t_start_ns=s.t_start_ns,
                t_switch_ns=t_switch,
                interruption_ns=interruption,
                jitter_ns=jitter,
                latency_from_ns=r.latency_from_ns,
                latency_to_ns=r.latency_to_ns,
                switch_spread_ns=spread,
                t_predicted_ns=s.t_predicted_ns,
                t_horizon_ns=s.t_horizon_ns,
                t_link_lost_ns=lost,
                t_acquired_ns=s.t_acquired_ns,
                t_keys_ready_ns=s.t_keys_ready_ns,
                t_state_transferred_ns=s.t_state_transferred_ns,
                t_teardown_ns=t_teardown_ns,
                transferred_state=MappingProxyType(dict(sorted(s.transferred_state.items()))),
                messages=s.messages,
            )
        )


# ================================================================================================
# FSO/RF fallback, failsafe and turbo mode
# ================================================================================================


class ResilienceMode(enum.StrEnum):
    """Operating mode of one FSO link and the Type-I flows it carries."""

    NOMINAL = "nominal"  # FSO up, QKD at the nominal rate
    TURBO = "turbo"  # FSO up, key consumption > generation: laser boosted (sec. VIII.C)
    RF_FALLBACK = "rf_fallback"  # FSO unusable: traffic on Ka-band RF, Type-I on buffered keys
    FAILSAFE = "failsafe"  # buffers drained: II-IV on PQC, non-essential halted (sec. VIII.B)
    RECOVERING = "recovering"  # FSO back after the hold, buffers refilling, failsafe policy kept


_FSO_UP = (ResilienceMode.NOMINAL, ResilienceMode.TURBO, ResilienceMode.RECOVERING)
_MODES = tuple(ResilienceMode)


@dataclass(frozen=True)
class ResilienceParams:
    """Thresholds, hysteresis and delays of sec. VIII.B-C; each field cites or says "assumption"."""

    outage_attenuation_db_per_km: float = FSO_IMPOSSIBLE_ATTENUATION_DB_PER_KM
    """FSO specific attenuation at or above which QKD is impossible and traffic falls back to
    RF: 100 dB/km (main paper sec. VIII.B)."""
    recover_attenuation_db_per_km: float = 50.0
    """Hysteresis: the attenuation must be at or below this for recovery. Assumption (half the
    outage threshold)."""
    outage_snr_db: float = 10.0
    """Beacon/receiver SNR at or below which the link counts as lost ("BER spike", sec.
    VIII.B); used only when observations carry an SNR. Assumption."""
    recover_snr_db: float = 13.0
    """Hysteresis: SNR at or above this for recovery ("when FSO SNR recovers"). Assumption:
    3 dB above the outage level."""
    recovery_hold_ns: int = 10 * _S_NS
    """The recovery conditions must hold this long, uninterrupted, before FSO is used again.
    Assumption."""
    rf_switch_delay_ns: int = 50 * _MS_NS
    """Outage onset until traffic runs on the RF backup (detection + protection switch); Type-I
    has no path meanwhile. Upper bound of SDH protection switching, 50 ms (ITU-T G.841)."""
    failsafe_reserve_ns: int = 60 * _S_NS
    """During an outage, failsafe mode starts when the buffer covers less than this much Type-I
    consumption (bits <= consumption x reserve). Assumption."""
    recovered_reserve_ns: int = 300 * _S_NS
    """RECOVERING ends (failsafe policy lifted) when the buffer covers this much Type-I
    consumption. Assumption (5x the failsafe reserve)."""
    type1_resume_reserve_ns: int = 10 * _S_NS
    """Type-I, halted on an empty buffer, resumes when the buffer covers this much consumption
    (and at least 1 bit). Assumption."""
    turbo_enter_ratio: float = 1.0
    """Turbo when consumption > ratio x nominal generation: 1.0, "consuming keys faster than
    the generation rate" (main paper sec. VIII.C)."""
    turbo_exit_ratio: float = 0.9
    """Leave turbo when consumption <= ratio x nominal generation for ``turbo_exit_hold_ns``.
    Assumption."""
    turbo_exit_hold_ns: int = 10 * _S_NS
    """Assumption."""
    turbo_skr_gain: float = 1.5
    """Secret-key-rate multiplier in turbo (higher repetition rate with the boosted laser
    power). Assumption: the laser power ratio of the satellite power model,
    laser_turbo_w / laser_on_w = 60 W / 40 W (twin.physics.energy.SatellitePowerModel)."""
    turbo_when_recovering: bool = True
    """Run the laser in turbo while RECOVERING to refill buffers faster (policy)."""
    control_latency_ns: int = _CONTROL_LATENCY_NS
    """Transition reports travel to the controller with this one-way latency (as
    HandoverParams.control_latency_ns, assumption)."""

    def __post_init__(self) -> None:
        for name in (
            "recovery_hold_ns",
            "rf_switch_delay_ns",
            "failsafe_reserve_ns",
            "recovered_reserve_ns",
            "type1_resume_reserve_ns",
            "turbo_exit_hold_ns",
            "control_latency_ns",
        ):
            _check_ns(name, getattr(self, name))
        for name in (
            "outage_attenuation_db_per_km",
            "recover_attenuation_db_per_km",
            "outage_snr_db",
            "recover_snr_db",
            "turbo_enter_ratio",
            "turbo_exit_ratio",
            "turbo_skr_gain",
        ):
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)!r}")
        if not 0 <= self.recover_attenuation_db_per_km < self.outage_attenuation_db_per_km:
            raise ValueError(
                "recover_attenuation_db_per_km must be in [0, outage_attenuation_db_per_km) for "
                f"hysteresis, got {self.recover_attenuation_db_per_km} vs "
                f"{self.outage_attenuation_db_per_km}"
            )
        if not self.recover_snr_db > self.outage_snr_db:
            raise ValueError(
                f"recover_snr_db ({self.recover_snr_db}) must exceed outage_snr_db "
                f"({self.outage_snr_db}) for hysteresis"
            )
        if not self.recovered_reserve_ns > self.failsafe_reserve_ns:
            raise ValueError(
                f"recovered_reserve_ns ({self.recovered_reserve_ns}) must exceed "
                f"failsafe_reserve_ns ({self.failsafe_reserve_ns}) for hysteresis"
            )
        if not 0 < self.turbo_exit_ratio < self.turbo_enter_ratio:
            raise ValueError(
                f"need 0 < turbo_exit_ratio ({self.turbo_exit_ratio}) < turbo_enter_ratio "
                f"({self.turbo_enter_ratio}) for hysteresis"
            )
        if not self.turbo_skr_gain >= 1.0:
            raise ValueError(f"turbo_skr_gain must be >= 1, got {self.turbo_skr_gain}")


_BIG = 1e12  # stands in for +inf attenuation / -inf SNR in interpolation (a blocked link)


@dataclass(frozen=True)
class LinkObservation:
    """What the engine knows about one FSO link at ``t_ns``.

    Levels (attenuation, SNR, buffer) are instantaneous values at ``t_ns``; the rates hold from
    ``t_ns`` until the next observation. Between two observations the attenuation, SNR and
    buffer level are taken as linear in time (the buffer reaching 0 at the instant its net
    drain empties it), so threshold crossings are located inside the tick.
    """

    t_ns: int
    fso_attenuation_db_per_km: float
    """specific attenuation on the FSO path (weather); inf for a blocked path"""
    key_buffer_bits: int
    """quantum key bits available to the link's Type-I flows (twin.network.keys)"""
    key_generation_bps: float
    """the link's *nominal* secret-key rate (the machine's ``skr_multiplier`` scales it)"""
    key_consumption_bps: float
    """key demand of the active Type-I (one-time-pad) flows"""
    beacon_locked: bool = True
    """False when the beacon is lost (an outage trigger, sec. VIII.B)"""
    fso_snr_db: float | None = None
    """receiver SNR, if the engine models it"""
    turbo_allowed: bool = True
    """False forbids turbo (e.g. the satellite battery is at its reserve)"""

    def __post_init__(self) -> None:
        _check_ns("t_ns", self.t_ns)
        _check_bits("key_buffer_bits", self.key_buffer_bits)
        _check_rate("key_generation_bps", self.key_generation_bps)
        _check_rate("key_consumption_bps", self.key_consumption_bps)
        att = float(self.fso_attenuation_db_per_km)
        if math.isnan(att) or att < 0:
            raise ValueError(f"fso_attenuation_db_per_km must be >= 0 dB/km, got {att!r}")
        if self.fso_snr_db is not None and math.isnan(float(self.fso_snr_db)):
            raise ValueError("fso_snr_db must be a number or None, got nan")


@dataclass(frozen=True)
class ResilienceActions:
    """What the engine applies until the next observation."""

    mode: ResilienceMode
    carrier: str
    """``"fso"`` or ``"rf"`` (Ka-band backup)"""
    qkd_active: bool
    laser_level: LaserLevel
    """for the energy model (twin.physics.energy): TURBO costs laser_turbo_w"""
    skr_multiplier: float
    """multiply the link's nominal secret-key rate by this (0 during an outage)"""
    pqc_downgrade: bool
    """Type-II..IV use post-quantum cryptography instead of quantum keys"""
    nonessential_halted: bool
    type1_halted: bool
    """Type-I one-time-pad traffic stopped: its key buffer is empty"""


@dataclass(frozen=True)
class ResilienceEvent:
    """One transition (or Type-I halt/resume) at an exact instant."""

    t_ns: int
    event: str
    """fso_outage, fso_recovered, keys_low, keys_recovered, turbo_on, turbo_off,
    type1_halted, type1_resumed"""
    from_mode: ResilienceMode
    to_mode: ResilienceMode
    key_buffer_bits: int


@dataclass(frozen=True)
class ResilienceStep:
    """Result of one :meth:`LinkResilienceState.observe` call for the interval since the
    previous observation."""

    t_ns: int
    actions: ResilienceActions
    events: tuple[ResilienceEvent, ...]
    messages: tuple[Envelope, ...]
    """one LINK_STATE envelope to the controller per event"""
    mode_ns: Mapping[ResilienceMode, int]
    """time spent in each mode over the interval"""
    laser_level_ns: tuple[int, int, int, int]
    """time at each LaserLevel (OFF, STANDBY, ON, TURBO) over the interval, for the energy
    model"""
    type1_interrupted_ns: int
    """time Type-I had no usable secured path (RF switch-over or empty key buffer)"""


@dataclass(frozen=True)
class _Segment:
    """Signals over [t0, t1]: linear attenuation/SNR, buffer linear to (tp, bp) then flat."""

    t0: int
    t1: int
    a0: float
    a1: float
    s0: float | None
    s1: float | None
    beacon0: bool
    beacon1: bool
    b0: int
    bp: int
    tp: int
    c: float
    g: float
    turbo_allowed: bool


_Interval = tuple[int, int] | None


def _holds(ta: int, tb: int, fa, fb, level, op: str) -> _Interval:
    """Integer instants of [ta, tb] where the linear f (fa at ta, fb at tb) satisfies
    ``f op level``; one interval since f is monotone. Exact (rational) arithmetic."""
    checks = {
        "<=": lambda v: v <= level,
        ">=": lambda v: v >= level,
        "<": lambda v: v < level,
        ">": lambda v: v > level,
    }
    ok = checks[op]
    a_ok, b_ok = ok(fa), ok(fb)
    if ta == tb or fa == fb or a_ok == b_ok:
        if a_ok and b_ok:
            return (ta, tb)
        if not a_ok and not b_ok:
            return None
        return (ta, ta) if a_ok else (tb, tb)
    t_star = ta + (Fraction(level) - Fraction(fa)) * (tb - ta) / (Fraction(fb) - Fraction(fa))
    strict = op in ("<", ">")
    if a_ok:  # a prefix
        last = math.ceil(t_star) - 1 if strict else math.floor(t_star)
        return (ta, max(ta, min(last, tb)))
    first = math.floor(t_star) + 1 if strict else math.ceil(t_star)
    return (min(max(first, ta), tb), tb)


def _intersect(*intervals: _Interval) -> _Interval:
    lo, hi = -1, math.inf
    for iv in intervals:
        if iv is None:
            return None
        lo, hi = max(lo, iv[0]), min(hi, iv[1])
    return (lo, int(hi)) if lo <= hi else None


def _first_from(iv: _Interval, cur: int) -> int | None:
    """First instant >= cur inside the interval."""
    if iv is None or iv[1] < cur:
        return None
    return max(iv[0], cur)


class LinkResilienceState:
    """FSO-to-RF fallback, failsafe and turbo state machine of one link (main paper VIII.B-C).

    Feed :meth:`observe` with increasing observation times. Transitions (stamped to the ns):

    * NOMINAL/TURBO/RECOVERING -> RF_FALLBACK on an outage (attenuation >= the outage
      threshold, SNR <= the outage SNR, or the beacon lost), or straight to FAILSAFE if the
      buffer is then already below the failsafe reserve. Type-I has no path for
      ``rf_switch_delay_ns`` after the onset, then continues over RF on buffered keys.
    * RF_FALLBACK -> FAILSAFE when the buffer falls to ``consumption x failsafe_reserve``.
    * RF_FALLBACK/FAILSAFE -> (FSO back) once attenuation <= the recovery threshold, SNR >= the
      recovery SNR and beacon locked have held for ``recovery_hold_ns``: FAILSAFE goes to
      RECOVERING unless the buffer already covers ``recovered_reserve``; RF_FALLBACK goes back
      to NOMINAL (or TURBO).
    * RECOVERING -> NOMINAL (or TURBO) when the buffer reaches ``consumption x
      recovered_reserve``.
    * NOMINAL -> TURBO when consumption > ``turbo_enter_ratio`` x nominal generation (and turbo
      is allowed); TURBO -> NOMINAL when consumption <= ``turbo_exit_ratio`` x generation has
      held for ``turbo_exit_hold_ns``, or at once when turbo is no longer allowed.
    * In any mode, Type-I halts when its buffer empties (while consuming) and resumes when the
      buffer covers ``type1_resume_reserve`` of consumption.
    """

    def __init__(
        self,
        link: str,
        params: ResilienceParams | None = None,
        *,
        address: str | None = None,
        controller: str = "sdqn",
    ) -> None:
        if not isinstance(link, str) or not link:
            raise ValueError(f"link must be a non-empty name, got {link!r}")
        self.link = link
        self.params = params or ResilienceParams()
        self.address = address or f"{link}/resilience"
        self.controller = controller
        self.mode = ResilienceMode.NOMINAL
        self.type1_halted = False
        self.history: list[ResilienceEvent] = []
        self._acc_mode: dict[ResilienceMode, int] = dict.fromkeys(_MODES, 0)
        self._acc_laser = [0, 0, 0, 0]
        self._acc_interrupted = 0
        self._seq = 0
        self._last: LinkObservation | None = None
        self._good_since: int | None = None
        self._low_since: int | None = None
        self._rf_blackout_until: int | None = None

    # ---- public --------------------------------------------------------------------------

    @property
    def t_ns(self) -> int | None:
        """Time of the last observation."""
        return None if self._last is None else self._last.t_ns

    def actions(self) -> ResilienceActions:
        """The actions in force now."""
        return self._actions(self._last)

    def observe(self, obs: LinkObservation) -> ResilienceStep:
        """Advance to ``obs.t_ns`` (strictly after the previous observation); returns the
        events on the way, their LINK_STATE envelopes, the actions from now on and the time
        spent in each mode / laser level over the interval."""
        if not isinstance(obs, LinkObservation):
            raise TypeError(f"obs must be a LinkObservation, got {type(obs).__name__}")
        events: list[ResilienceEvent] = []
        self._acc_mode = dict.fromkeys(_MODES, 0)
        self._acc_laser = [0, 0, 0, 0]
        self._acc_interrupted = 0
        prev = self._last
        if prev is not None:
            if obs.t_ns <= prev.t_ns:
                raise ValueError(
                    f"observation t_ns {obs.t_ns} must be after the previous one {prev.t_ns}"
                )
            seg = self._segment(prev, obs)
            self._sweep(seg, events)
        self._last = obs
        self._sweep(self._segment(obs, obs), events)  # new rates from obs.t_ns on
        messages = tuple(self._message(e) for e in events)
        self.history.extend(events)
        return ResilienceStep(
            t_ns=obs.t_ns,
            actions=self._actions(obs),
            events=tuple(events),
            messages=messages,
            mode_ns=MappingProxyType(dict(self._acc_mode)),
            laser_level_ns=tuple(self._acc_laser),
            type1_interrupted_ns=self._acc_interrupted,
        )

    # ---- internals -----------------------------------------------------------------------

    def _laser(self, mode: ResilienceMode, turbo_allowed: bool) -> LaserLevel:
        if mode is ResilienceMode.TURBO:
            return LaserLevel.TURBO
        if mode is ResilienceMode.RECOVERING:
            boost = self.params.turbo_when_recovering and turbo_allowed
            return LaserLevel.TURBO if boost else LaserLevel.ON
        if mode is ResilienceMode.NOMINAL:
            return LaserLevel.ON
        return LaserLevel.STANDBY  # outage: beacon receiver on, searching

    def _multiplier(self, mode: ResilienceMode, turbo_allowed: bool) -> float:
        if mode not in _FSO_UP:
            return 0.0
        boosted = self._laser(mode, turbo_allowed) is LaserLevel.TURBO
        return self.params.turbo_skr_gain if boosted else 1.0

    def _actions(self, obs: LinkObservation | None) -> ResilienceActions:
        allowed = True if obs is None else obs.turbo_allowed
        m = self.mode
        return ResilienceActions(
            mode=m,
            carrier="fso" if m in _FSO_UP else "rf",
            qkd_active=m in _FSO_UP,
            laser_level=self._laser(m, allowed),
            skr_multiplier=self._multiplier(m, allowed),
            pqc_downgrade=m in (ResilienceMode.FAILSAFE, ResilienceMode.RECOVERING),
            nonessential_halted=m is ResilienceMode.FAILSAFE,
            type1_halted=self.type1_halted,
        )

    def _segment(self, a: LinkObservation, b: LinkObservation) -> _Segment:
        def att(o: LinkObservation) -> float:
            return min(float(o.fso_attenuation_db_per_km), _BIG)

        def snr(o: LinkObservation) -> float | None:
            return None if o.fso_snr_db is None else max(float(o.fso_snr_db), -_BIG)

        s0, s1 = snr(a), snr(b)
        if (s0 is None) != (s1 is None):
            s0 = s1 = s1 if s0 is None else s0  # SNR appears/disappears: hold the known one
        tp, bp = b.t_ns, b.key_buffer_bits
        if bp == 0 < a.key_buffer_bits:
            # emptied inside the interval: at the instant the net drain used the buffer up
            drain = Fraction(a.key_consumption_bps) - Fraction(a.key_generation_bps) * Fraction(
                self._multiplier(self.mode, a.turbo_allowed)
            )
            if drain > 0:
                tp = min(b.t_ns, a.t_ns + _ceil_ns(Fraction(a.key_buffer_bits) / drain))
        return _Segment(
            t0=a.t_ns,
            t1=b.t_ns,
            a0=att(a),
            a1=att(b),
            s0=s0,
            s1=s1,
            beacon0=a.beacon_locked,
            beacon1=b.beacon_locked,
            b0=a.key_buffer_bits,
            bp=bp,
            tp=tp,
            c=a.key_consumption_bps,
            g=a.key_generation_bps,
            turbo_allowed=a.turbo_allowed,
        )

    # signal condition sets over [t0, t1] ------------------------------------------------------

    def _beacon_set(self, seg: _Segment) -> _Interval:
        if seg.beacon0 and seg.beacon1:
            return (seg.t0, seg.t1)
        if seg.beacon0:  # lost at t1
            return (seg.t0, seg.t1 - 1) if seg.t1 > seg.t0 else None
        if seg.beacon1:  # regained at t1
            return (seg.t1, seg.t1)
        return None

    def _ok_set(self, seg: _Segment) -> _Interval:
        """Where the FSO link is usable: attenuation < outage, SNR > outage, beacon."""
        p = self.params
        parts = [
            _holds(seg.t0, seg.t1, seg.a0, seg.a1, p.outage_attenuation_db_per_km, "<"),
            self._beacon_set(seg),
        ]
        if seg.s0 is not None:
            parts.append(_holds(seg.t0, seg.t1, seg.s0, seg.s1, p.outage_snr_db, ">"))
        return _intersect(*parts)

    def _good_set(self, seg: _Segment) -> _Interval:
        """Where the recovery conditions hold (stricter than usable, for hysteresis)."""
        p = self.params
        parts = [
            _holds(seg.t0, seg.t1, seg.a0, seg.a1, p.recover_attenuation_db_per_km, "<="),
            self._beacon_set(seg),
        ]
        if seg.s0 is not None:
            parts.append(_holds(seg.t0, seg.t1, seg.s0, seg.s1, p.recover_snr_db, ">="))
        return _intersect(*parts)

    def _buffer_set(self, seg: _Segment, level, op: str) -> _Interval:
        """Where the buffer level satisfies ``level op``: linear to (tp, bp), then flat."""
        first = _holds(seg.t0, seg.tp, seg.b0, seg.bp, level, op)
        if seg.tp == seg.t1:
            return first
        if first is not None and first[1] == seg.tp:
            return (first[0], seg.t1)  # holds at the kink, hence on the flat part too
        return first

    def _buffer_at(self, seg: _Segment, t: int) -> int:
        if t >= seg.tp or seg.tp == seg.t0:
            return seg.bp
        return math.floor(seg.b0 + Fraction(seg.bp - seg.b0) * (t - seg.t0) / (seg.tp - seg.t0))

    def _level(self, c: float, reserve_ns: int) -> Fraction:
        return Fraction(c) * reserve_ns / NS_PER_S

    # the sweep ---------------------------------------------------------------------------

    def _sweep(self, seg: _Segment, events: list[ResilienceEvent]) -> None:
        """Process every event in [t0, t1] in time order (ties in a fixed priority order)."""
        p = self.params
        ok_set = self._ok_set(seg)
        good_set = self._good_set(seg)
        good_start = None
        if good_set is not None:
            continuing = self._good_since is not None and good_set[0] == seg.t0
            good_start = self._good_since if continuing else good_set[0]
        fs_level = self._level(seg.c, p.failsafe_reserve_ns)
        rec_level = self._level(seg.c, p.recovered_reserve_ns)
        resume_level = max(Fraction(1), self._level(seg.c, p.type1_resume_reserve_ns))
        low = Fraction(seg.c) <= Fraction(p.turbo_exit_ratio) * Fraction(seg.g)
        high = Fraction(seg.c) > Fraction(p.turbo_enter_ratio) * Fraction(seg.g)
        if seg.t0 == seg.t1:  # point evaluation with new rates
            if not low:
                self._low_since = None
            elif self._low_since is None:
                self._low_since = seg.t0
        cur = seg.t0
        for _ in range(64):
            m = self.mode
            cands: list[tuple[int, int, str]] = []
            if m in _FSO_UP:
                if ok_set is None or ok_set[0] > cur:
                    cands.append((cur, 0, "fso_outage"))
                elif ok_set[1] < seg.t1:
                    cands.append((max(ok_set[1] + 1, cur), 0, "fso_outage"))
            elif good_set is not None and good_start is not None:
                fire = max(good_start + p.recovery_hold_ns, cur)
                if fire <= good_set[1]:
                    cands.append((fire, 1, "fso_recovered"))
            if m is ResilienceMode.RF_FALLBACK:
                t = _first_from(self._buffer_set(seg, fs_level, "<="), cur)
                if t is not None:
                    cands.append((t, 2, "keys_low"))
            if m is ResilienceMode.RECOVERING:
                t = _first_from(self._buffer_set(seg, rec_level, ">="), cur)
                if t is not None:
                    cands.append((t, 3, "keys_recovered"))
            # Type-I stops when its buffer is empty and fresh keys do not cover the demand
            starved = Fraction(seg.c) > Fraction(seg.g) * Fraction(
                self._multiplier(m, seg.turbo_allowed)
            )
            if not self.type1_halted and starved:
                t = _first_from(self._buffer_set(seg, 0, "<="), cur)
                if t is not None:
                    cands.append((t, 4, "type1_halted"))
            if self.type1_halted:
                t = cur if not starved else None
                if t is None:
                    t = _first_from(self._buffer_set(seg, resume_level, ">="), cur)
                if t is not None:
                    cands.append((t, 4, "type1_resumed"))
            if m is ResilienceMode.NOMINAL and high and seg.turbo_allowed:
                cands.append((cur, 5, "turbo_on"))
            if m is ResilienceMode.TURBO:
                if not seg.turbo_allowed:
                    cands.append((cur, 5, "turbo_off"))
                elif low and self._low_since is not None:
                    fire = max(self._low_since + p.turbo_exit_hold_ns, cur)
                    if fire <= seg.t1:
                        cands.append((fire, 5, "turbo_off"))
            if not cands:
                break
            t, _, name = min(cands)
            self._account(seg, cur, t)
            cur = t
            self._apply(seg, t, name, events, fs_level, rec_level, high)
        else:
            raise RuntimeError(f"resilience machine of {self.link!r} did not settle at {cur}")
        self._account(seg, cur, seg.t1)
        self._good_since = good_start if good_set is not None and good_set[1] == seg.t1 else None

    def _apply(self, seg, t, name, events, fs_level, rec_level, high) -> None:
        m = self.mode
        b = self._buffer_at(seg, t)
        fso_target = (
            ResilienceMode.TURBO if (high and seg.turbo_allowed) else ResilienceMode.NOMINAL
        )
        if name == "fso_outage":
            new = ResilienceMode.FAILSAFE if b <= fs_level else ResilienceMode.RF_FALLBACK
            self._rf_blackout_until = t + self.params.rf_switch_delay_ns
        elif name == "fso_recovered":
            if m is ResilienceMode.FAILSAFE and b < rec_level:
                new = ResilienceMode.RECOVERING
            else:
                new = fso_target
        elif name == "keys_low":
            new = ResilienceMode.FAILSAFE
        elif name == "keys_recovered":
            new = fso_target
        elif name == "turbo_on":
            new = ResilienceMode.TURBO
        elif name == "turbo_off":
            new = ResilienceMode.NOMINAL
        elif name == "type1_halted":
            self.type1_halted, new = True, m
        elif name == "type1_resumed":
            self.type1_halted, new = False, m
        else:  # pragma: no cover - the candidate names above are exhaustive
            raise AssertionError(name)
        self.mode = new
        events.append(ResilienceEvent(t, name, m, new, b))

    def _account(self, seg: _Segment, ta: int, tb: int) -> None:
        if tb <= ta:
            return
        span = tb - ta
        self._acc_mode[self.mode] += span
        self._acc_laser[int(self._laser(self.mode, seg.turbo_allowed))] += span
        if self.type1_halted:
            self._acc_interrupted += span
        elif self._rf_blackout_until is not None and self._rf_blackout_until > ta:
            self._acc_interrupted += min(tb, self._rf_blackout_until) - ta

    def _message(self, e: ResilienceEvent) -> Envelope:
        seq, self._seq = self._seq, self._seq + 1
        return Envelope(
            self.address,
            self.controller,
            MessageKind.LINK_STATE,
            e.t_ns,
            seq,
            e.t_ns + self.params.control_latency_ns,
            {
                "link": self.link,
                "event": e.event,
                "from_mode": e.from_mode.value,
                "to_mode": e.to_mode.value,
                "key_buffer_bits": e.key_buffer_bits,
            },
        )
