"""The tick loop of the twin, in one process (ARCHITECTURE.md, "Time and determinism").

Each tick of ``dt`` simulated seconds:

1. environment: G(t) from the physics (positions, visibility, weather, link budgets), and the
   key generation of every QKD link that is up, at the node that owns its buffer;
2. controllers: the controller sees the network and chooses a path per flow;
3. handovers: a flow whose satellite hop sets inside the tick, and which the controller moves
   to another satellite, starts a break-before-make handover (twin.network.handover); the
   protocol's envelopes run to the end of the tick;
4. nodes: the controller sends every flow's source its forwarding update (path, hop latencies,
   handover gap); the nodes exchange messages until none is left: each source relays end-to-end
   key along its path (trusted relay, one-time pad hop by hop, as reserve / grant / commit
   messages with the owners of the hops' key buffers), consumes key per its security mode and
   sends its data, except while it is inside a handover gap (twin.network.nodes; the nodes'
   state is theirs, and the engine reads it only through the node set's views);
5. energy: satellite batteries (solar while sunlit, loads per active terminal), ground-station
   power and its carbon at the site's grid intensity, and the traffic's own energy (each bit
   sent costs every ground site of its path ``ground_node_j_per_bit``, from that site's grid,
   counted by the nodes as ``TickCounters.bits_through``) (the batteries' inputs come from G(t)
   alone, and no battery touches a key or a message, so their step goes with the tick's start,
   ``NodeGroup.environment``, and comes back with the node phase's result,
   ``NodeGroup.superstep``, which the engine collects after building the next tick's G(t): the
   Ray runtime's hosts step them while the driver readies the tick);
6. entanglement: once every ``ENTANGLEMENT_PERIOD_S``, one end-to-end pair per active Type-I
   flow (the main paper's entanglement-assisted control links) over the space or air segment
   of its path (twin.network.entanglement_distribution; see "Entanglement service" below).

The tick ``[t, t + dt)`` is served with the graph and the paths of its start ``t``; the graph
and the paths of ``t + dt`` (computed one tick ahead, and used as the next tick's) bound it, so
a satellite hop that is up at ``t`` and gone at ``t + dt`` set inside the tick: the instant is
interpolated from the two elevation samples (``predict_crossing_ns``), never rounded to a tick.
The controller's decision for ``t + dt`` names the satellite the flow moves to. Computing it
one tick early changes nothing as long as ``decide`` is called exactly once per graph, in time
order, and sees no engine state: the view holds G(t), the flows and static data (static-sp
remembers only its own previous decision).

Handover (one definition, main paper sec. VIII): an active flow moves from a satellite of its
path to one its old path did not use. Two kinds, both run by the protocol
(twin.network.handover) with nanosecond timestamps:

- break-before-make: a ground-space (OGS or HAPS to satellite) hop of the path goes down and the
  controller moves the flow: the link is lost at the interpolated instant, the loss is detected,
  the new satellite acquired and its key buffer warmed up, the flow tables switched; the flow is
  not served from the loss to the switch (the gap, ``HandoverRecord.interruption_ns``);
- make-before-break: the controller moves the flow while its hop is still up (a predicting or
  re-optimizing controller; static-sp keeps a path until it breaks): the switch starts at once,
  and the flow stays on its old path (``_served``) while Sat-B is acquired, keyed and sent the
  session state, then switches at the scheduled instant with no gap, unless Sat-A's link drops
  first (then the flow is not served from that loss to the switch).

Not handovers, counted apart in ``RunResult.space_events``: a lost hop with no other path (plain
unavailability), a lost hop whose flow stays on its satellites (FSO to RF on the same satellite,
or off the space segment), a loss while the flow's previous handover is still running (the
flow waits for that one), and a move asked while the flow's previous handover is finishing (the
flow keeps its path for the tick; the controller asks again).

Entanglement service (SPARQ's model; main paper sec. III-B eq. (3) for the memories). Every
node has a :class:`QuantumMemory` (``MEMORY_Q_MAX`` slots, coherence time ``MEMORY_T2_S``),
made when a request first touches it. At ticks that start a period (``t = 0``, then every
``ENTANGLEMENT_PERIOD_S``) each Type-I flow that is active, has a path and is outside a
handover gap asks for one pair between the two ground nodes where its path leaves and rejoins
the ground: the *elevated segment*, from the ground node before the path's first HAPS or
satellite to the one after its last. Ground nodes cannot emit pairs (SPARQ Sec. II-A), so
the ground-to-ground fibre tails to the sites carry no entanglement (they run on trusted-relay
keys); a path with no HAPS or satellite asks for nothing. Per hop of the segment the service
takes the up quantum edge (FSO, ISL, fibre) of highest fidelity; a hop with none (RF Ka only)
fails the request (``no_quantum_channel``), and so does a ground-to-ground hop inside the
segment, which no source can serve (``ground_hop``). Link transmissivities are the channel
transmittances behind the snapshot's ``fidelity`` (topology: amplitude damping of the channel
transmittance, detector excluded), backed out exactly from F = (1 + sqrt(eta))^2 / 4:
sqrt(eta) = 2 sqrt(F) - 1. Delays are the edges' propagation latencies in integer ns. The
policy is TPED where ``tped_applicable``, else intuitive. The requests of one period are
served one after another in flow order, each starting when the previous one ended (delivered
or failed), so the memories see one timeline and their peaks are real occupancies. No
randomness: distribution is deterministic given the graph.

The nodes may be spread over several node sets (``Engine(..., partitions=...)``), as the Ray
runtime spreads them over hosts; messages then cross between sets, and the results do not
change (tests/twin/network/test_nodes.py); ``Engine(..., node_group=...)`` puts the sets in
other processes (the Ray runtime, ``actors.runtime``). Not yet message-driven: the handover
protocol runs in the engine's ``HandoverManager``, which plays every role with its own
envelopes, and the entanglement service runs ``distribute`` over the path nodes' memories in one
call: the node group lends them to the engine for the request and takes them back after.

Control plane (twin.control). The controller's decision passes the shield when the controller
carries one or the caller asks (``shield=True``), and every decision that serves a tick is audited
against the shield's rules (``shield_violations``); both read the last closed tick's key-buffer fill
report, which the nodes therefore send every tick. Each tick is scored by the objective of eq. (4)
(``TickRecord.reward``, J in ``RunResult.objective``). A planning controller's plan that schedules
the satellites' terminals (``twin.control.mpc.LaserSchedule``, the laser schedule) is applied to
each snapshot before it is decided on: a satellite whose planned time awake in the current step is
spent has its optical links down, and idle terminals sleep (OFF) rather than stand by; an awake
satellite the plan puts in QKD turbo mode (``LaserSchedule.turbo``) runs its terminals at the turbo
level and its optical links make key faster (``Engine.turbo_skr_gain``). The edge tier's laser power
(``Decision.boost``, past the shield's ``battery_reserve`` rule) runs the satellites of each boosted
flow's path at the turbo level the same way, plan or none, in the snapshot after the one decided on
(the decision for G(t) is collected before G(t + dt) is scheduled, in both runtimes). A plan takes
effect one planning period after the state it was computed from (the cloud tier plans while the
network runs: ``submit_plan`` computes it on the controller's own thread, on a process of its own
(the local runtime's, actors.forked) or on the cloud actor, and the engine collects it a period
later), so the first period runs without one; where and how fast it was computed changes nothing. A
plan may put Type-IV forecast events off (``LaserSchedule.deferrals``, carbon-aware deferral): the
engine takes each once, before the event starts, and the flow's forwarding updates carry the delay
to its source, which sends the bulk that much later (``Flow.deferred``); controllers still see the
flows as announced (the same in both runtimes).

Everything is a function of (scenario, seed, code): time is integer nanoseconds, keys are
integer bits, iteration is over sorted names or stable indices, and the only randomness would
come from ``twin.rng.stream`` (the baselines draw none).

Assumptions the sources leave open are module constants, labelled, so a reader can find and
question them in one place.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from twin.control.baselines import (
    ControllerSpec,
    Decision,
    EdgeLookup,
    NetworkView,
    make_controller,
)
from twin.control.mpc import LaserSchedule
from twin.control.objective import (
    LATENCY_REFERENCE_S,
    ObjectiveTotals,
    TickTerms,
    carbon_rate_kg_per_h,
)
from twin.control.shield import RULES, Shield, audit, boosted_satellites
from twin.control.telemetry import KeyFill
from twin.network.entanglement_distribution import (
    NodeLayer,
    Policy,
    distribute,
    tped_applicable,
)
from twin.network.handover import (
    HandoverLog,
    HandoverManager,
    HandoverRequest,
    predict_crossing_ns,
)
from twin.network.keys import KeyBuffer, KeyLedger, key_demand_bits, total_ledger
from twin.network.memory_slots import QuantumMemory
from twin.network.messages import Envelope
from twin.network.nodes import FlowState, KeySettings, NodeGroup, forwarding_update
from twin.network.routing import NodeIndex
from twin.network.topology import SPACE_EDGE_MASK_RAD, EdgeKind, Snapshot, TopologyModel
from twin.network.traffic import TrafficClass, demand_bits
from twin.physics.carbon import (
    annual_carbon_intensity_g_per_kwh,
    carbon_g,
    diurnal_amplitude,
    diurnal_factor,
    local_solar_time_s,
)
from twin.physics.energy import HapsPowerModel, LaserLevel
from twin.physics.haps import haps_states_ecef
from twin.physics.orbits import jd_fr_add_seconds, jd_fr_from_datetime
from twin.physics.sun import sun_position_ecef_m, sunlit_fraction
from twin.units import NS_PER_S

__all__ = ["DeferredEvent", "EntanglementRecord", "Engine", "RunResult", "TickRecord"]


def _hop_latencies_ns(latency_s) -> list[int]:
    """A path's hop latencies (s) as the forwarding updates carry them: whole ns, rounded
    alike for a flow's path and the paths of its splits."""
    return [round(float(x) * NS_PER_S) for x in latency_s]


def _given(value):
    """A result computed here, handed over as one computed elsewhere is (a callable)."""
    return lambda: value


# --- assumptions -------------------------------------------------------------------------------
LINK_BUFFER_CAPACITY_BITS = 1_000_000_000  # assumption: 125 MB of key store per QKD link
POOL_CAPACITY_BITS = 100_000_000  # assumption: 12.5 MB per end-to-end (site pair) pool
# QKDNetSim's Mthr (READY above it; a refilling buffer below it serves only Type-I): small
# against the capacity so a buffer serves once it holds a few seconds of key, not half its size
# A satellite pass yields ~0.15-1.5 Mbit per link (measured on the paper scenarios), so Mthr
# must be far below that or a link is READY only at the end of its pass.
LINK_BUFFER_THRESHOLD_BITS = 16_384  # assumption: sixty-four AES-256 keys
POOL_THRESHOLD_BITS = 4_096  # assumption: sixteen AES-256 keys
KEY_MAX_AGE_NS = 24 * 3_600 * NS_PER_S  # assumption: keys older than a day are retired
POOL_LOOKAHEAD_S = 10  # assumption: sources keep ~10 s of their key demand in the e2e pool
# assumption: and top it up (to POOL_LOOKAHEAD_S) once it holds less than 5 s: the KMS relays
# in batches (about one relay per flow every 5 s), not every tick
POOL_REFILL_BELOW_S = 5
QUANTUM_EDGE_KINDS = (
    EdgeKind.FIBER,
    EdgeKind.FSO_GROUND_SPACE,
    EdgeKind.FSO_GROUND_HAPS,
    EdgeKind.FSO_HAPS_SPACE,
    EdgeKind.ISL,
)
SPACE_EDGE_KINDS = tuple(SPACE_EDGE_MASK_RAD)
# edges whose optical terminal draws power at a satellite or HAPS end (ISL terminals are part
# of the satellite's bus load: an assumption of twin.physics.energy's satellite model)
OPTICAL_TERMINAL_KINDS = (
    EdgeKind.FSO_GROUND_SPACE,
    EdgeKind.FSO_HAPS_SPACE,
    EdgeKind.FSO_GROUND_HAPS,
)  # ground-space, HAPS-space (FSO) and RF Ka
# entanglement service (module docstring, "Entanglement service")
MEMORY_Q_MAX = 8  # assumption: qubit slots per node's quantum memory (main paper: Q_max, no value)
# assumption: T2 of every node's memory; the survey (papers/002, sec. on memories) reports 1.3 s
# to hours in the lab; twin.physics.memory's worked example uses 1 s
MEMORY_T2_S = 1.0
ENTANGLEMENT_F_MIN = 0.85  # main paper sec. III-B after eq. (3): F_min ~ 0.85 (Bell violation)
ENTANGLEMENT_PERIOD_S = 10  # assumption: one pair per Type-I flow every 10 s of simulated time
ENTANGLEMENT_EDGE_KINDS = (
    EdgeKind.FIBER,
    EdgeKind.FSO_GROUND_SPACE,
    EdgeKind.FSO_GROUND_HAPS,
    EdgeKind.FSO_HAPS_SPACE,
    EdgeKind.ISL,
)  # edges with a quantum channel (RF Ka is classical only)
# satellite hops lost or changed without a handover (module docstring), counted per flow
SPACE_EVENTS = (
    "loss_without_alternative",
    "loss_same_satellite",
    "loss_during_handover",
    "move_during_handover",
)
# a make-before-break switch is not told when Sat-A's link will drop (the controller chose to
# move, for whatever reason): the protocol's own loss message is sent this far ahead, beyond
# any run, and the engine reports an earlier loss as it happens
MBB_LOSS_UNKNOWN_NS = 366 * 24 * 3_600 * NS_PER_S


@dataclass
class _Gap:
    """A flow's handover gap: from the loss of Sat-A's link to the switch to Sat-B (a
    make-before-break switch has one only if Sat-A's link is lost before it: until then
    ``start_ns`` is None and the gap only tracks the switch)."""

    start_ns: int | None
    handover_id: str
    switch_nodes: tuple[str, ...]
    stop_ns: int | None = None
    """the instant the last flow-table node switched; None until it has"""
    switched: dict[str, int] = field(default_factory=dict)
    """flow-table node -> the instant it switched, as the protocol's envelopes arrive"""


@dataclass
class _Pinned:
    """A flow's make-before-break switch in progress: the flow stays on ``path`` (Sat-A)
    until ``gap`` records the switch."""

    path: tuple[int, ...]
    gap: _Gap


@dataclass(frozen=True)
class EntanglementRecord:
    """One entanglement request of a Type-I flow (module docstring, "Entanglement service")."""

    flow: str
    t_start_ns: int
    """when the request started (the period's tick, or the previous request's end)"""
    path: tuple[str, ...]
    """the elevated segment served, ground node to ground node"""
    link_transmissivities: tuple[float, ...]
    """channel transmittance per hop of ``path`` (empty if the request failed before)"""
    link_delays_ns: tuple[int, ...]
    policy: str | None
    """'tped' or 'intuitive'; None when no policy could run (``no_quantum_channel``,
    ``ground_hop``)"""
    success: bool
    failure: str | None
    """None, 'no_quantum_channel', 'ground_hop', or distribute's 'memory_full' /
    'ttl_exceeded'"""
    fidelity: float | None
    """Bell fidelity of the delivered pair (None on failure)"""
    meets_f_min: bool
    peak_slots: int
    """most memory slots the request held at one instant, all path nodes together"""
    intermediate_qubits: int
    t_end_ns: int


@dataclass(frozen=True)
class DeferredEvent:
    """A forecast event (Type-IV bulk) a plan put off: its flow, its name, when it was to
    start and by how long it was put off (ns)."""

    flow: str
    event: str
    start_ns: int
    delay_ns: int


@dataclass
class _RunTotals:
    """What a run sums over its ticks (``Engine._close_tick`` adds each tick in order)."""

    objective: ObjectiveTotals
    """J of eq. (4) and its terms (twin.control.objective)"""
    energy_j: float = 0.0
    carbon_g: float = 0.0
    transport_energy_j: float = 0.0
    """the part of energy_j the bits cost the ground sites they crossed"""
    transport_carbon_g: float = 0.0
    below_reserve_ticks: int = 0
    """ticks in which a satellite battery ended below its reserve"""
    haps_below_reserve_ticks: int = 0


@dataclass(frozen=True)
class _PowerInputs:
    """A tick's energy phase before the batteries step: what they step with, and the power and
    carbon that do not depend on them."""

    battery_steps: tuple
    """(platform, sun, load_w, power model, dt_s) per platform with batteries, for
    ``NodeGroup.step_batteries``"""
    power_w: float
    carbon_g: float
    site_intensity_g_per_kwh: np.ndarray
    """each site's grid carbon intensity at the tick's start, in site order"""


@dataclass(frozen=True)
class _EnergyTick:
    power_w: float
    """satellite loads, HAPS loads and ground stations"""
    carbon_g: float
    soc_mean: float
    soc_min: float
    below_reserve: int
    haps_soc_min: float
    haps_below_reserve: int


@dataclass(frozen=True)
class TickRecord:
    """What one tick contributes to the time series (timeseries.csv)."""

    t_s: float
    link_key_bits: int
    pool_key_bits: int
    type_i_secure_fraction: float
    served_fraction: dict[str, float]
    battery_soc_mean: float
    battery_soc_min: float
    """satellite batteries (NaN without satellites)"""
    haps_soc_min: float
    """the lowest HAPS state of charge, as a fraction of capacity (NaN without HAPS)"""
    power_w: float
    carbon_g: float
    handovers: int
    """handovers that completed (their record reached the log) during this tick"""
    delivered_bits: int
    reward: float
    """r_t of the control objective, eq. (4) (twin.control.objective)"""


@dataclass
class RunResult:
    scenario: str
    controller: str
    seed: int
    sim_seconds: float
    wall_seconds: float
    flows: dict[str, FlowState]
    ledger: KeyLedger
    records: list[TickRecord]
    handovers: HandoverLog
    """every completed handover, with its interruption and jitter (the one count of them)"""
    space_events: dict[str, int]
    """lost or changed satellite hops that were not handovers (see the module docstring)"""
    energy_j: float
    carbon_total_g: float
    below_reserve_ticks: int
    """ticks in which a satellite battery ended below its reserve"""
    haps_below_reserve_ticks: int
    transport_energy_j: float = 0.0
    """the part of energy_j the data cost the ground sites it crossed (traffic-dependent)"""
    transport_carbon_g: float = 0.0
    """the part of carbon_total_g from transport_energy_j"""
    deferrals: list[DeferredEvent] = field(default_factory=list)
    """the forecast events (Type-IV bulk) a plan put off"""
    entanglement: list[EntanglementRecord] = field(default_factory=list)
    """every entanglement request, in the order served"""
    shield: dict = field(default_factory=dict)
    """the audit's violations per rule, and the shield's rejections and unsatisfiable rules
    per rule (None without a shield; twin.control.shield)"""
    objective: dict = field(default_factory=dict)
    """J of eq. (4), the mean reward and terms per tick, the weights
    (``ObjectiveTotals.as_dict``)"""
    extras: dict[str, float] = field(default_factory=dict)


class Engine:
    """Runs one scenario with one controller; :meth:`run` returns a :class:`RunResult`."""

    def __init__(
        self,
        scenario,
        *,
        controller="static-sp",
        seed: int | None = None,
        flows=None,
        partitions=None,
        node_group=None,
        controllers=None,
        shield: bool | None = None,
        policy=None,
    ):
        self.scenario = scenario
        # a name (twin.control), or a controller object (the DRL environment drives its own);
        # ``policy``: the edge policy a controller by name routes with (drl-only, ai-sdqn;
        # None: the shipped one)
        if isinstance(controller, str):
            self.controller = make_controller(controller, policy)
            spec = controller if policy is None else ControllerSpec(controller, policy)
        elif policy is not None:
            raise ValueError("a policy goes with a controller given by name")
        else:
            self.controller, spec = controller, controller
        self.edge_policy = getattr(self.controller, "policy", None)
        """the edge policy the controller routes with (twin.control.drl.EdgePolicy), if any"""
        self.seed = scenario.seed if seed is None else int(seed)
        self.topology = TopologyModel(scenario)
        self.dt_ns = int(round(scenario.time.tick_s * NS_PER_S))
        names = self.topology.node_names
        self.node_index = NodeIndex.from_names(names)
        self._index = {name: i for i, name in enumerate(names)}
        self.jurisdictions = {s.name: s.jurisdiction for s in scenario.sites}
        # flows: the scenario's traffic section, or a list given by the caller (tests, studies)
        self.flows = list(scenario.flows()) if flows is None else list(flows)
        # the flows as their sources serve them: with the forecast events a plan has put off
        # (Type-IV deferral, _take_deferrals); controllers see the flows as announced
        self._served_flows = list(self.flows)
        self._flow_at = {f.name: k for k, f in enumerate(self.flows)}
        self._deferrals: dict[int, dict[str, int]] = {}  # flow index -> event -> delay ns
        self._planned_delays: dict[int, dict[str, int]] = {}  # as the plans gave them (unclipped)
        self.deferrals: list[DeferredEvent] = []
        """the forecast events a plan has put off, in the order taken"""
        self.flow_endpoints = [
            (self._index[f.src_site], self._index[f.dst_site]) for f in self.flows
        ]
        # ``controllers``: where the controller's work runs, called with the controller's
        # name and this engine (the Ray runtime passes one that spreads it over controller
        # actors, actors.controllers); it must decide as the controller does here
        if controllers is not None:
            self.controller = controllers(spec, self)
        self.reads_key_fill = bool(getattr(self.controller, "reads_key_fill", False))
        # the shield (twin.control.shield) between the controller and the network: the
        # controller's own choice (``shielded``) unless the caller says; every run is audited
        # against its rules, shielded or not
        own = bool(getattr(self.controller, "shielded", False))
        if shield is None:
            shield = own
        shielded = bool(shield)
        # what results name the controller by: its name, marked when the caller added a shield
        self.controller_label = self.controller.name + ("+shield" if shielded and not own else "")
        self.shield_violations = dict.fromkeys(RULES, 0)
        self._end_ns = 0  # the run's end: decisions at or after it serve no tick (no audit)
        self._decisions = 0  # decide calls so far: a planning controller plans every N
        self._plan = None  # the plan in effect
        self._next_plan: Callable[[], object] | None = None  # the one being computed
        bind = getattr(self.controller, "bind", None)
        if bind is not None:  # a planner forecasts from the scenario (orbits, power models)
            bind(scenario, seed=self.seed)
        # the laser schedule's bookkeeping (_apply_schedule): the step being spent, and each
        # satellite's time awake in it
        self._awake_step: tuple[int, int] | None = None
        self._awake_spent_ns = np.zeros(0, dtype=np.int64)
        # the satellites in turbo mode in each scheduled snapshot (the last three scheduled:
        # the tick's start, its end and the next tick's end; a tick's energy phase reads its
        # start's)
        self._turbo_of: list[tuple[Snapshot, np.ndarray]] = []
        equipment = scenario.equipment
        self.sat_power = equipment.satellite.power_model()
        # QKD turbo mode: the optical links of a satellite in turbo make key this many times
        # faster (1: the scenario's terminals have no turbo mode, and no plan names one)
        self.turbo_skr_gain = self.sat_power.turbo_key_rate_gain
        self.shield = Shield(reserve_fraction=self.sat_power.reserve_fraction) if shielded else None
        # the satellites the last collected decision boosts (its flows' Decision.boost, after
        # the shield): the next snapshot scheduled runs them at the turbo level
        self._boosted = np.zeros(0, dtype=np.int64)
        self.turbo_satellite_ticks = {"plan": 0, "edge": 0}
        """satellite-ticks run at the QKD turbo level, by who asked: the plan
        (LaserSchedule.turbo) or, where the plan did not, the edge tier (Decision.boost)"""
        self.relay_split_flow_ticks = 0
        """forwarding updates that split their flow's key relay among paths (Decision.relay)"""
        self.data_split_flow_ticks = 0
        """forwarding updates that split their flow's data among paths (Decision.data)"""
        self.ogs_power = equipment.ogs.power_model()
        # a scenario without HAPS may leave equipment.haps out; the defaults then size nothing
        self.haps_power = (
            equipment.haps.power_model() if equipment.haps is not None else HapsPowerModel()
        )
        # the nodes and the state they own; in one process, one node set holds them all
        self._sat0 = self.topology.satellite_offset
        # ``partitions`` spreads the nodes over several node sets (as the Ray runtime spreads
        # them over hosts); the results must not change (tests pin this)
        parts = [range(len(names))] if partitions is None else partitions
        # ``node_group``: what holds the node sets, called as NodeGroup is (the Ray runtime,
        # actors.runtime, passes one whose sets live in host processes); it must behave as a
        # NodeGroup, and the results do not change
        self.nodes = (NodeGroup if node_group is None else node_group)(
            names,
            parts,
            self.flows,
            dt_ns=self.dt_ns,
            settings=KeySettings(
                link_capacity_bits=LINK_BUFFER_CAPACITY_BITS,
                link_threshold_bits=LINK_BUFFER_THRESHOLD_BITS,
                pool_capacity_bits=POOL_CAPACITY_BITS,
                pool_threshold_bits=POOL_THRESHOLD_BITS,
                max_age_ns=KEY_MAX_AGE_NS,
                pool_lookahead_s=POOL_LOOKAHEAD_S,
                pool_refill_below_s=POOL_REFILL_BELOW_S,
                memory_q_max=MEMORY_Q_MAX,
                memory_t2_s=MEMORY_T2_S,
            ),
            sat_offset=self._sat0,
            batteries={
                "satellite": (range(self._sat0, len(names)), self.sat_power.battery_capacity_j),
                "haps": (
                    range(len(scenario.sites), self._sat0),
                    self.haps_power.battery_capacity_j,
                ),
            },
            quantum_edge_kinds=QUANTUM_EDGE_KINDS,
            # each tick's key-buffer fill report (twin.control.telemetry), for the controllers
            # that read it, the shield and the audit
            key_telemetry=True,
        )
        self._key_fill = KeyFill.none_yet(len(names))
        """the last closed tick's fill report (the controller's view of the key buffers)"""
        # the satellites' charge (fraction of capacity, satellite order) after the last closed
        # tick's battery step, for the shield's battery-reserve rule: None before one, empty
        # without satellites (no charge to wait for)
        self._sat_soc: np.ndarray | None = None if self._sat0 < len(names) else np.zeros(0)
        self._controller_seq: dict[str, int] = {}  # per destination (twin.network.nodes)
        self.trace: list[Envelope] | None = None
        """set to a list to record every envelope the nodes handle (tests, debugging)"""
        self._gaps: dict[str, list[_Gap]] = {f.name: [] for f in self.flows}
        """flow -> its handover gaps that may still reach a later tick"""
        self._epoch = jd_fr_from_datetime(scenario.time.start_utc)
        # the grid's time of day at t = 0 (twin.physics.carbon reckons from a UTC midnight)
        self._day_s = scenario.time.start_day_s
        # HAPS hold their stations in this engine (no drift): positions and local up, once
        lat = np.array([h.lat_rad for h in scenario.haps], dtype=float)
        lon = np.array([h.lon_rad for h in scenario.haps], dtype=float)
        alt = np.array([h.altitude_m for h in scenario.haps], dtype=float)
        self._haps_pos_m = (
            haps_states_ecef(lat, lon, alt, np.zeros(1)).position_m[:, :, 0]
            if lat.size
            else np.zeros((3, 0))
        )
        self._haps_up = np.stack(
            [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]
        )
        self._ogs_sites = [s for s in scenario.sites if s.kind == "ogs"]
        # every OGS draws its full power at all times (constant), in site order
        self._ogs_power_w = np.array([float(self.ogs_power.power_w(1.0)) for _ in self._ogs_sites])
        # the control objective's weights, and the nodes that draw grid power for its carbon
        # term (eq. 5: only the OGS; twin.control.objective)
        self.objective_weights = scenario.objective.weights()
        # (sites come first in G(t)'s node order: these are also the OGS' rows among the sites)
        self._ogs_nodes = np.array([self._index[s.name] for s in self._ogs_sites], dtype=np.int64)
        # static per-tick inputs of the energy and handover phases, built once (same values as
        # building them each tick): edge-kind masks as lookup tables indexed by a snapshot's
        # kind, the satellite load per number of active terminals, the HAPS load unlinked and
        # linked, and each OGS's carbon per unit of grid intensity over one tick
        kind_codes = np.arange(max(EdgeKind) + 1)
        self._optical_kind = np.isin(kind_codes, OPTICAL_TERMINAL_KINDS)
        self._space_kind = np.isin(kind_codes, SPACE_EDGE_KINDS)
        terminals = self.sat_power.laser_terminals

        def load_by_active_w(active: LaserLevel, idle: LaserLevel) -> np.ndarray:
            """A satellite's load per number of active terminals (0..all), the active ones at
            level ``active`` and the others at ``idle``."""
            is_active = np.arange(terminals)[None, :] < np.arange(terminals + 1)[:, None]
            return self.sat_power.load_w(np.where(is_active, int(active), int(idle)))

        self._sat_load_by_active_w = load_by_active_w(LaserLevel.ON, LaserLevel.STANDBY)
        # under a laser schedule the idle terminals sleep (OFF) instead of standing by; a
        # satellite in turbo mode runs its active ones at the turbo level
        self._sat_load_by_active_asleep_w = load_by_active_w(LaserLevel.ON, LaserLevel.OFF)
        self._sat_load_by_active_turbo_w = {
            True: load_by_active_w(LaserLevel.TURBO, LaserLevel.OFF),  # under a schedule
            False: load_by_active_w(LaserLevel.TURBO, LaserLevel.STANDBY),
        }
        self._haps_load_by_linked_w = self.haps_power.load_w(
            np.array([False, True]), np.array([False, True])
        )
        self._ogs_carbon_g_per_intensity = carbon_g(self._ogs_power_w, self.dt_ns / NS_PER_S, 1.0)
        # the traffic-dependent energy: each bit costs every ground site it crosses this much,
        # from that site's grid (twin.physics.energy.GROUND_NODE_J_PER_BIT)
        self.ground_node_j_per_bit = float(equipment.ground_node_j_per_bit)
        self._site_at = {s.name: i for i, s in enumerate(scenario.sites)}
        self._ogs_power_total_w = float(self._ogs_power_w.sum())
        # the region lookups of carbon_intensity_g_per_kwh, once: each site's annual intensity
        # and diurnal amplitude (every tick takes annual x the diurnal factor, as it does)
        regions = np.array([s.grid_region for s in scenario.sites])
        self._site_annual_g_per_kwh = annual_carbon_intensity_g_per_kwh(regions)
        self._site_amplitude = diurnal_amplitude(regions)
        self._site_lon_rad = np.array([s.lon_rad for s in scenario.sites], dtype=float)
        # the baselines hand over break-before-make; the manager plays every protocol role
        self.handover = HandoverManager(scenario.handover.params())
        self._open_gaps: dict[str, _Gap] = {}  # handover id -> gap, until its record arrives
        self._pinned: dict[int, _Pinned] = {}  # flow index -> its make-before-break switch
        self._held: dict[int, tuple] = {}  # flows kept on their path for one tick (a move
        # asked while their last handover finishes)
        self._log_seen = 0
        self.space_events = dict.fromkeys(SPACE_EVENTS, 0)
        self._haps_offset = len(scenario.sites)  # G(t)'s node order: sites, HAPS, satellites
        self.entanglement: list[EntanglementRecord] = []
        self._entanglement_every = max(1, round(ENTANGLEMENT_PERIOD_S * NS_PER_S / self.dt_ns))
        self._edge_lookups: list[tuple[object, EdgeLookup]] = []  # (snapshot, its lookup)

    def close(self) -> None:
        """Stop what runs outside this process (the Ray runtime's hosts and controller
        actors); nothing to do for the single-process engine."""
        for part in (self.nodes, self.controller):
            close = getattr(part, "close", None)
            if close is not None:
                close()

    # --- node state, read-only views (tests, reports) -----------------------------------------

    @property
    def link_buffers(self) -> dict[tuple[str, str], KeyBuffer]:
        """(owner, peer) -> key buffer of every QKD link that ever had key (owner: the endpoint
        earlier in node order)."""
        return self.nodes.link_buffers()

    @property
    def pools(self) -> dict[tuple[str, str], KeyBuffer]:
        """(source site, destination site) -> end-to-end pool."""
        return self.nodes.pools()

    @property
    def flow_state(self) -> dict[str, FlowState]:
        return self.nodes.flow_states()

    @property
    def memories(self) -> dict[str, QuantumMemory]:
        """Quantum memories that were used, by node name."""
        return self.nodes.memories()

    @property
    def key_fill(self) -> KeyFill:
        """The key buffers' fill report of the last closed tick (what controllers, the shield
        and the audit see; twin.control.telemetry)."""
        return self._key_fill

    @property
    def soc_j(self) -> np.ndarray:
        """Satellite batteries' state of charge, J, in node order."""
        return self.nodes.soc_j("satellite")

    # --- handovers ----------------------------------------------------------------------------

    def _space_hops(self, snap, paths, edges) -> list[list[tuple[int, int, int, int]]]:
        """Per path, (edge, ground or HAPS node, satellite node, kind) of each satellite hop;
        ``edges[i]`` holds the edge of each hop of ``paths[i]`` (-1: none). One pass over all
        the paths' hops."""
        out: list[list[tuple[int, int, int, int]]] = [[] for _ in paths]
        sizes = [len(e) for e in edges]
        if not sum(sizes):
            return out
        sat0 = self._sat0
        starts: list[int] = []
        ends: list[int] = []
        for path in paths:
            starts.extend(path[:-1])
            ends.extend(path[1:])
        u = np.array(starts, dtype=np.int64)
        v = np.array(ends, dtype=np.int64)
        lower, upper = np.minimum(u, v), np.maximum(u, v)
        e = np.concatenate(edges)
        kinds = snap.kind[e]
        space = (e >= 0) & self._space_kind[kinds] & (upper >= sat0) & (lower < sat0)
        hop = np.flatnonzero(space)
        owner = np.repeat(np.arange(len(paths)), sizes)[hop]
        for i, edge, ground, sat, kind in zip(
            owner.tolist(),
            e[hop].tolist(),
            lower[hop].tolist(),
            upper[hop].tolist(),
            kinds[hop].tolist(),
            strict=True,
        ):
            out[i].append((edge, ground, sat, kind))
        return out

    def _hops_up(self, snap, hops) -> np.ndarray:
        """Whether each (ground, satellite, kind) hop has an edge that is up in ``snap``.

        A snapshot's edges are sorted by (a, b, kind) (``Snapshot``): each hop's edges are one
        searchsorted on the packed key; a snapshot not in that order (built by hand) is
        searched whole."""
        n = snap.n_nodes
        want = np.array([(g * n + s) * 8 + k for _, g, s, k in hops], dtype=np.int64)
        keys = (snap.a.astype(np.int64) * n + snap.b) * 8 + snap.kind
        if keys.size == 0:
            return np.zeros(want.size, dtype=bool)
        if not np.all(keys[1:] >= keys[:-1]):
            return np.isin(want, keys[snap.up & self._space_kind.take(snap.kind)])
        first = np.searchsorted(keys, want, side="left")
        stop = np.searchsorted(keys, want, side="right")
        if np.all(stop - first <= 1):
            at = np.minimum(first, keys.size - 1)
            return (stop > first) & snap.up[at] & self._space_kind[snap.kind[at]]
        return np.array(
            [
                bool(np.any(snap.up[i:j] & self._space_kind[snap.kind[i:j]]))
                for i, j in zip(first.tolist(), stop.tolist(), strict=True)
            ],
            dtype=bool,
        )

    def _hops_lost(self, snap_next, hops_per_path) -> dict[int, list]:
        """Per path (its index in ``hops_per_path``, each path's space hops as
        :meth:`_space_hops` gives them) with a hop that is no longer up at ``snap_next``:
        those hops, in their order (they drop inside the tick)."""
        flat = [(i, hop) for i, hops in enumerate(hops_per_path) for hop in hops]
        if not flat:
            return {}
        up_next = self._hops_up(snap_next, [hop for _, hop in flat])
        lost: dict[int, list] = {}
        for (i, hop), up in zip(flat, up_next, strict=True):
            if not up:
                lost.setdefault(i, []).append(hop)
        return lost

    def _loss_ns(self, snap, snap_next, hop) -> int:
        """When a hop up at ``snap`` and gone at ``snap_next`` went down (int ns).

        The first instant the elevation, linear between the two samples, is below the mask of
        the hop's edge kind; a hop lost above its mask (weather), or between snapshots that
        carry no satellite positions (built by hand), is known only by the next sample, which
        is taken as the instant.
        """
        _, g, s, kind = hop
        if snap.satellite_positions_m is None or snap_next.satellite_positions_m is None:
            return snap_next.t_ns
        el = [float(self.topology.elevation_rad(x, [g], [s])[0]) for x in (snap, snap_next)]
        times = np.array([snap.t_ns, snap_next.t_ns], dtype=np.int64)
        t_cross = predict_crossing_ns(times, np.array(el), SPACE_EDGE_MASK_RAD[kind])
        return snap_next.t_ns if t_cross is None else t_cross

    def _resume_key_bits(self, flow, t_ns: int, key_rate_bps: float, buffered_bits: int) -> int:
        """Key bits the new satellite's link must hold before the flow resumes after a
        break-before-make handover (``HandoverRequest.resume_key_bits``).

        Decision (the sources give no number): the flow's key demand over ``POOL_LOOKAHEAD_S``
        from the loss, the horizon the source keeps in its end-to-end pool, i.e. what one
        refill of the pool takes through the new hop (Type-I: 10 s of data bits, 640 kbit at
        64 kbit/s; Type-II: one 256-bit rekey; Type-III: one 128-bit batch key; Type-IV:
        none), but no more than the link can add to its buffer in that horizon
        (``buffered + floor(rate x horizon)``): the warm-up lasts at most one horizon. A link
        too slow to refill the pool in one horizon cannot sustain the flow however long it
        warms up; the flow resumes and its key starvation shows in the uptime, not as a
        handover gap of the slow link's making (a 500 bit/s link would otherwise "warm up" a
        64 kbit/s one-time pad for 20 minutes, long after Sat-B has set). With no QKD on the
        new hop (RF only, rate 0) the flow resumes on what the hop's buffer holds (sec.
        VIII-B: Type-I continues on buffered keys over RF). The demand follows the flow's
        schedule, not one tick's demand or the pool's momentary shortfall, so the bits do not
        depend on the tick length. (The demand over the detection + acquisition period would
        ask ~3x more, for a gap in which the flow sends nothing.)
        """
        horizon_ns = POOL_LOOKAHEAD_S * NS_PER_S
        data = demand_bits(flow, t_ns, horizon_ns)
        demand = key_demand_bits(
            flow.traffic_class, data, t_ns, horizon_ns, None, devices=flow.devices
        ).bits
        reachable = buffered_bits + math.floor(Fraction(key_rate_bps) * horizon_ns / NS_PER_S)
        return min(demand, reachable)

    def _start_handovers(self, snap, paths, edges, snap_next, next_paths, active) -> None:
        """Classify the satellite hops lost or changed inside the tick ``[snap.t_ns, t_end)``:
        a flow the controller moves to another satellite while its hop is up starts a
        make-before-break switch (it stays on its path until the switch, :meth:`_served`); a
        flow that loses its hop and is moved starts a break-before-make handover; a flow whose
        hop is lost during its make-before-break switch is interrupted until the switch.
        ``paths``: the paths served this tick; ``next_paths``: the controller's decision for
        the tick's end."""
        t_ns = snap.t_ns
        flows = [k for k in sorted(edges) if active[k]]
        per_flow = self._space_hops(snap, [paths[k] for k in flows], [edges[k] for k in flows])
        hops = dict(zip(flows, per_flow, strict=True))
        lost = {flows[i]: gone for i, gone in self._hops_lost(snap_next, per_flow).items()}
        losses = []  # (t_lost, flow index, hop, during a make-before-break switch)
        for k in sorted(hops):
            new = next_paths[k]
            if k in self._pinned:  # its switch is under way; only a loss matters now
                if k in lost:
                    t_lost = min(self._loss_ns(snap, snap_next, hop) for hop in lost[k])
                    losses.append((t_lost, k, None, True))
                continue
            # the satellites the path reaches from the ground (its space hops'): a new
            # route between the same two, through other inter-satellite links, is no handover
            old_sats = {hop[2] for hop in hops[k]}
            new_sats = set() if new is None else self._access_satellites(new)
            if k not in lost:
                # (a flow whose path had no satellite takes one: a new route, no handover)
                if new is not None and old_sats and new_sats - old_sats:
                    if self.handover.phase(self.flows[k].name) is not None:
                        # its last handover has not finished (the controller has not heard
                        # every switch yet): the flow stays where it is for this tick, and
                        # the move waits for the controller's next decision
                        self._held[k] = tuple(paths[k])
                        self.space_events["move_during_handover"] += 1
                        continue
                    # moved while its hop is up: make-before-break, from the tick's start
                    # (before any loss of the tick is handled, so the protocol runs in order)
                    leaving = [hop for hop in hops[k] if hop[2] not in new_sats] or hops[k]
                    self._start_mbb(k, t_ns, snap, paths, edges, snap_next, leaving[0], new)
                continue
            if new is None:
                self.space_events["loss_without_alternative"] += 1
                continue
            if not new_sats - old_sats:
                self.space_events["loss_same_satellite"] += 1
                continue
            when = sorted((self._loss_ns(snap, snap_next, hop), i) for i, hop in enumerate(lost[k]))
            t_lost, first = when[0]
            losses.append((t_lost, k, lost[k][first], False))
        for t_lost, k, hop, pinned in sorted(losses, key=lambda x: (x[0], x[1])):
            flow = self.flows[k]
            # deliver what happens before the loss: a previous handover may finish first
            self._advance_handovers(max(t_lost - 1, self.handover.now_ns))
            if pinned:
                gap = self._pinned[k].gap
                # not switched yet, and the first loss: a gap until the switch. (The flow may
                # have switched earlier in the tick, before the controller has heard so: then
                # the loss is Sat-A's alone, and the protocol leaves it out of its record.)
                switched = gap.stop_ns is not None
                if (
                    self.handover.phase(flow.name) is not None
                    and gap.start_ns is None
                    and not switched
                ):
                    self.handover.report_link_loss(flow.name, t_lost)
                    gap.start_ns = t_lost
                    self._gaps[flow.name].append(gap)
                continue
            if self.handover.phase(flow.name) is not None:
                self.space_events["loss_during_handover"] += 1
                continue
            request = self._handover_request(
                k, t_lost, snap, paths, edges, snap_next, hop, next_paths[k]
            )
            hid = self.handover.start_bbm(request, t_link_lost_ns=t_lost)
            gap = _Gap(t_lost, hid, request.switch_nodes)
            self._gaps[flow.name].append(gap)
            self._open_gaps[hid] = gap

    def _access_satellites(self, path) -> set[int]:
        """The satellites ``path`` reaches from a ground or HAPS node (node order puts both
        before the satellites)."""
        sat0 = self._sat0
        return {
            max(a, b) for a, b in zip(path[:-1], path[1:], strict=True) if (a < sat0) != (b < sat0)
        }

    def _handover_request(
        self, k, t_ns, snap, paths, edges, snap_next, hop, new
    ) -> HandoverRequest:
        """Flow ``k`` leaving ``hop`` (edge, ground, Sat-A, kind) of its path for path ``new``
        (the next decision's): Sat-B is the first satellite of the new path not on the old one
        (through the same ground node when it can)."""
        names = self.topology.node_names
        flow = self.flows[k]
        _, ground, sat, _ = hop
        old_sats = self._access_satellites(paths[k])
        new_edges = self._edge_lookup(snap_next).path_edges(new)
        candidates = [
            hop for hop in self._space_hops(snap_next, [new], [new_edges])[0]
            if hop[2] not in old_sats
        ]  # fmt: skip
        same_ground = [hop for hop in candidates if hop[1] == ground]
        e_to, ground_to, sat_to, _ = (same_ground or candidates)[0]
        # the new link's key-buffer fill level, as its owner reports it (Table 2)
        buffered = self.nodes.link_available_bits(names[ground_to], names[sat_to])
        rate = float(snap_next.skr_bps[e_to])
        return HandoverRequest(
            flow=flow.name,
            from_node=names[sat],
            to_node=names[sat_to],
            from_ground=names[ground],
            to_ground=names[ground_to],
            latency_from_ns=round(float(np.sum(snap.latency_s[edges[k]])) * NS_PER_S),
            latency_to_ns=round(float(np.sum(snap_next.latency_s[new_edges])) * NS_PER_S),
            key_rate_to_bps=rate,
            resume_key_bits=self._resume_key_bits(flow, t_ns, rate, buffered),
            buffered_to_bits=buffered,
        )

    def _start_mbb(self, k, t_ns, snap, paths, edges, snap_next, hop, new) -> None:
        """Flow ``k`` moves off ``hop``'s satellite while the hop is up: a make-before-break
        switch (main paper sec. VIII.A) starts now and switches as soon as Sat-B is acquired,
        keyed and holds the session state; the flow stays on ``paths[k]`` until then."""
        request = self._handover_request(k, t_ns, snap, paths, edges, snap_next, hop, new)
        hid = self.handover.start_mbb(
            request, t_predicted_ns=t_ns, t_horizon_ns=t_ns,
            t_link_lost_ns=t_ns + MBB_LOSS_UNKNOWN_NS,
        )  # fmt: skip
        gap = _Gap(None, hid, request.switch_nodes)
        self._open_gaps[hid] = gap
        self._pinned[k] = _Pinned(tuple(paths[k]), gap)

    def _served(self, decided, t_ns: int) -> tuple:
        """The paths served from ``t_ns``: the controller's, except for flows whose
        make-before-break switch has not switched by then: their old path, while it has not
        been lost (after a loss, as after break-before-make, the new path, its gap running
        until the switch)."""
        served = list(decided)
        for k, path in self._held.items():
            served[k] = path
        self._held = {}
        for k in sorted(self._pinned):
            pinned = self._pinned[k]
            if pinned.gap.stop_ns is not None and pinned.gap.stop_ns <= t_ns:
                del self._pinned[k]  # switched: the controller's path from now on
            elif pinned.gap.start_ns is None:
                served[k] = pinned.path
        return tuple(served)

    def _advance_handovers(self, t_until_ns: int) -> None:
        """Run the handover protocol to ``t_until_ns`` and end the gaps whose switch is done.

        A flow-table node switches when the controller's ``switch`` envelope reaches it (break-
        before-make: at once; a scheduled switch: at its ``activate`` timer), and the gap ends
        when the last of the handover's nodes has switched. The record of the handover reaches
        the log only once the controller hears back, one control latency later, possibly in a
        later tick; the envelopes give the instant within this tick, and the record confirms it.
        """
        for envelope in self.handover.advance(t_until_ns):
            payload = envelope.payload
            step = payload.get("step")
            activate = payload.get("activate_at_ns")
            now = envelope.arrival_ns
            if step == "activate" or (step == "switch" and (activate is None or activate <= now)):
                gap = self._open_gaps.get(payload.get("handover_id"))
                if gap is not None:
                    gap.switched.setdefault(envelope.dst, now)  # the first delivery switches
                    if gap.stop_ns is None and set(gap.switched) >= set(gap.switch_nodes):
                        gap.stop_ns = max(gap.switched.values())
        log = self.handover.log
        for index in range(self._log_seen, len(log)):
            record = log[index]
            gap = self._open_gaps.pop(record.handover_id)
            # a loss at the switch's very instant is none (the protocol's rule): a 0 ns gap
            lost = gap.start_ns
            if lost is not None and gap.stop_ns is not None and lost >= gap.stop_ns:
                lost = None
            if gap.stop_ns != record.t_switch_ns or lost != record.t_link_lost_ns:
                raise RuntimeError(
                    f"handover {record.handover_id}: the engine's gap [{gap.start_ns}, "
                    f"{gap.stop_ns}) disagrees with the protocol's record "
                    f"[{record.t_link_lost_ns}, {record.t_switch_ns})"
                )
        self._log_seen = len(log)

    def _gap_ns(self, flow: str, t_ns: int, t_end_ns: int) -> int:
        """Nanoseconds of ``[t_ns, t_end_ns)`` inside the flow's handover gaps (they never
        overlap: a flow has one handover at a time); drops the gaps that end in the tick."""
        total = 0
        gaps = self._gaps[flow]
        for gap in gaps:  # (a gap without a start is not in this list)
            stop = t_end_ns if gap.stop_ns is None else min(gap.stop_ns, t_end_ns)
            total += max(0, stop - max(gap.start_ns, t_ns))
        self._gaps[flow] = [g for g in gaps if g.stop_ns is None or g.stop_ns > t_end_ns]
        return total

    # --- entanglement -------------------------------------------------------------------------

    def _layer(self, node: int) -> NodeLayer:
        if node < self._haps_offset:
            return NodeLayer.GROUND
        return NodeLayer.AIR if node < self._sat0 else NodeLayer.SPACE

    def _elevated_segment(self, path) -> list[int] | None:
        """The path from the ground node before its first HAPS or satellite to the ground node
        after its last one; None when the path has neither."""
        up = [h for h, node in enumerate(path) if node >= self._haps_offset]
        if not up:
            return None
        return list(path[max(up[0] - 1, 0) : min(up[-1] + 2, len(path))])

    def _quantum_hops(self, snap, segment) -> np.ndarray | None:
        """Per hop of ``segment``, the up quantum edge of highest fidelity; None if a hop has
        none. The snapshot's edges are sorted by (a, b, kind): each hop is one searchsorted."""
        n = snap.n_nodes
        nodes = np.asarray(segment, dtype=np.int64)
        lo, hi = np.minimum(nodes[:-1], nodes[1:]), np.maximum(nodes[:-1], nodes[1:])
        keys = snap.a * n + snap.b
        start = np.searchsorted(keys, lo * n + hi, side="left")
        stop = np.searchsorted(keys, lo * n + hi, side="right")
        chosen = np.empty(lo.size, dtype=np.int64)
        for h in range(lo.size):
            e = np.arange(start[h], stop[h])
            e = e[snap.up[e] & np.isin(snap.kind[e], ENTANGLEMENT_EDGE_KINDS)]
            if e.size == 0:
                return None
            chosen[h] = e[np.argmax(snap.fidelity[e])]  # first (lowest kind) on a tie
        return chosen

    def _serve_entanglement(self, snap, paths, active, t_ns: int) -> None:
        """One request per active Type-I flow with an elevated segment, served in flow order
        (module docstring, "Entanglement service")."""
        names = self.topology.node_names
        t_next = t_ns
        for k, flow in enumerate(self.flows):
            path = paths[k]
            if flow.traffic_class is not TrafficClass.TYPE_I or not active[k] or path is None:
                continue
            gaps = self._gaps[flow.name]
            if any(g.start_ns <= t_ns and (g.stop_ns is None or g.stop_ns > t_ns) for g in gaps):
                continue  # the flow is between satellites: nothing to entangle over
            segment = self._elevated_segment(path)
            if segment is None:
                continue
            nodes = tuple(names[i] for i in segment)
            layers = {names[i]: self._layer(i) for i in segment}
            ground = [layers[a] is layers[b] is NodeLayer.GROUND
                      for a, b in zip(nodes[:-1], nodes[1:], strict=True)]  # fmt: skip
            edges = None if any(ground) else self._quantum_hops(snap, segment)
            if edges is None:
                self.entanglement.append(
                    EntanglementRecord(
                        flow=flow.name, t_start_ns=t_next, path=nodes, link_transmissivities=(),
                        link_delays_ns=(), policy=None, success=False,
                        failure="ground_hop" if any(ground) else "no_quantum_channel",
                        fidelity=None, meets_f_min=False, peak_slots=0, intermediate_qubits=0,
                        t_end_ns=t_next,
                    )
                )  # fmt: skip
                continue
            # topology's fidelity is (1 + sqrt(eta))^2 / 4 of the channel transmittance eta
            sqrt_eta = np.clip(2.0 * np.sqrt(snap.fidelity[edges]) - 1.0, 0.0, 1.0)
            etas = tuple(float(x) for x in sqrt_eta**2)
            delays = tuple(round(float(x) * NS_PER_S) for x in snap.latency_s[edges])
            policy = Policy.TPED if tped_applicable(nodes, layers) else Policy.INTUITIVE
            # the path nodes' memories, lent to the service (distribute runs the protocol over
            # them in one call, so under Ray they travel here and back) and returned after
            memories = self.nodes.lend_memories(nodes)
            result = distribute(
                nodes, etas, delays, t_next, policy, memories, MEMORY_T2_S,
                ENTANGLEMENT_F_MIN, node_layers=layers, request_id=f"{flow.name}@{t_next}",
            )  # fmt: skip
            self.nodes.return_memories(memories)
            self.entanglement.append(
                EntanglementRecord(
                    flow=flow.name,
                    t_start_ns=t_next,
                    path=nodes,
                    link_transmissivities=etas,
                    link_delays_ns=delays,
                    policy=policy.value,
                    success=result.success,
                    failure=result.failure,
                    fidelity=result.fidelity,
                    meets_f_min=result.meets_f_min,
                    peak_slots=result.peak_slots,
                    intermediate_qubits=result.intermediate_qubits,
                    t_end_ns=result.t_end_ns,
                )
            )
            t_next = result.t_end_ns

    # --- one tick ------------------------------------------------------------------------------

    def _serve_flows(self, snap, paths, edges, t_ns: int, relay=(), data_legs=None):
        """Serve every flow over ``[t_ns, t_ns + dt)`` outside its handover gaps, by messages:
        the controller sends each flow's source its forwarding update, and the nodes run the
        trusted-relay protocol (twin.network.nodes) until no message is left
        (``NodeGroup.superstep``). ``relay``: the decision's key relay splits
        (``Decision.relay``); ``data_legs``: its data splits (:meth:`_data_legs`). Returns the
        callable that gives the node phase's result, with the battery steps of the tick's
        start (:meth:`_close_tick` takes it)."""
        names = self.topology.node_names
        dt = self.dt_ns
        inbox: list[Envelope] = []
        relay_routes = self._relay_routes(snap, relay) if any(relay) else {}
        self.relay_split_flow_ticks += len(relay_routes)
        for k, flow in enumerate(self.flows):
            routes = relay_routes.get(k)
            gap_ns = self._gap_ns(flow.name, t_ns, t_ns + dt)
            path = paths[k]
            if path is None:
                route, hop_ns, latency = None, [], 0.0
            else:
                route = [names[i] for i in path]
                latency_s = snap.latency_s[edges[k]]
                hop_ns = _hop_latencies_ns(latency_s)
                latency = float(np.sum(latency_s))
            legs = None
            if data_legs and k in data_legs and route is not None:
                own_parts, others = data_legs[k]
                # (a flow held on its old path while its switch runs may be served on one of
                # its split's other paths: that path's share joins its own)
                own_parts += sum(leg[-1] for leg in others if leg[0] == route)
                others = [leg for leg in others if leg[0] != route]
                if others:
                    legs = [(route, hop_ns, latency, gap_ns, own_parts), *others]
                    self.data_split_flow_ticks += 1
            inbox.append(
                forwarding_update(
                    flow.name, flow.src_site, route, hop_ns, latency, gap_ns, t_ns,
                    self._controller_seq.get(flow.src_site, 0), self._deferrals.get(k),
                    routes, legs,
                )
            )  # fmt: skip
            self._controller_seq[flow.src_site] = self._controller_seq.get(flow.src_site, 0) + 1
        return self.nodes.submit_superstep(inbox, self.trace)

    def _relay_routes(self, snap, relay) -> dict[int, list]:
        """The decision's key relay splits (``Decision.relay``) as the forwarding updates name
        them: per flow whose split keeps a path, (node names, hop latencies in ns, parts) of
        each of its paths whose hops are all up in ``snap`` (a path with a hop down carries no
        share this tick; a flow left with none relays with its data, and is not in the dict).
        A path that does not join its flow's ends, or parts that are not positive ints, is the
        controller's error, named. One edge lookup for every path."""
        names = self.topology.node_names
        given = [(k, path, parts) for k, split in enumerate(relay) for path, parts in split]
        for k, path, parts in given:
            self._check_split_path(k, path, parts, "key relay")
        hops = self._edge_lookup(snap).paths_edges([path for _, path, _ in given])
        routes: dict[int, list] = {}
        for (k, path, parts), edges in zip(given, hops, strict=True):
            if np.all(edges >= 0):
                hop_ns = _hop_latencies_ns(snap.latency_s[edges])
                routes.setdefault(k, []).append(([names[i] for i in path], hop_ns, int(parts)))
        return routes

    def _check_split_path(self, k: int, path, parts, what: str) -> None:
        """A ValueError naming the controller unless ``path`` of flow ``k``'s ``what`` split
        (its key relay's or its data's) joins the flow's ends with positive int ``parts``."""
        ends = self.flow_endpoints[k]
        if (
            len(path) < 2
            or (path[0], path[-1]) != ends
            or not (isinstance(parts, (int, np.integer)) and parts > 0)
        ):
            raise ValueError(
                f"{self.controller_label}: flow {self.flows[k].name!r}'s {what} split names "
                f"path {list(path)} with parts {parts!r}; each must run from node {ends[0]} "
                f"to {ends[1]} with positive int parts"
            )

    def _data_legs(self, snap, snap_next, data, decided) -> dict[int, tuple[int, list]]:
        """The decision's data splits (``Decision.data``) for the tick from ``snap`` to
        ``snap_next``: per flow whose split keeps a path besides its own, the parts of its own
        path (whichever path the flow is served on: its share follows the flow through its
        handovers) and (node names, hop latencies in ns, latency in s, ns of the tick in a
        gap, parts) of each other path. Those carry their shares while their hops are up: a
        path with a hop down at the tick's start carries none; one whose satellite hop sets
        inside the tick carries its share until then (no handover: the flow's own path and
        its other paths still send). A split that does not name the flow's decided path
        once, names a path twice or not joining the flow's ends, or parts that are not
        positive ints, is the controller's error, named. One edge lookup for every path."""
        names = self.topology.node_names
        dt = self.dt_ns
        own: dict[int, int] = {}
        given = []
        for k, split in enumerate(data):
            if not split:
                continue
            paths = [tuple(path) for path, _ in split]
            for path, parts in split:
                self._check_split_path(k, path, parts, "data")
            mine = None if decided[k] is None else tuple(decided[k])
            if len(set(paths)) != len(paths) or paths.count(mine) != 1:
                raise ValueError(
                    f"{self.controller_label}: flow {self.flows[k].name!r}'s data split names "
                    f"paths {[list(x) for x in paths]}: they must be distinct and include the "
                    f"flow's path {None if mine is None else list(mine)}"
                )
            for path, parts in split:
                if tuple(path) == mine:
                    own[k] = int(parts)
                else:
                    given.append((k, tuple(path), int(parts)))
        lookup = self._edge_lookup(snap)
        hops_edges = lookup.paths_edges([path for _, path, _ in given])
        up = [(g, e) for g, e in zip(given, hops_edges, strict=True) if np.all(e >= 0)]
        space = self._space_hops(snap, [path for (_, path, _), _ in up], [e for _, e in up])
        up_ns_of = [dt] * len(up)  # each path's ns up inside the tick: to its first loss
        for i, gone in self._hops_lost(snap_next, space).items():
            lost = min(self._loss_ns(snap, snap_next, hop) for hop in gone) - snap.t_ns
            up_ns_of[i] = max(0, min(dt, lost))
        legs: dict[int, tuple[int, list]] = {}
        for ((k, path, parts), edges), up_ns in zip(up, up_ns_of, strict=True):
            latency_s = snap.latency_s[edges]
            hop_ns = _hop_latencies_ns(latency_s)
            leg = ([names[i] for i in path], hop_ns, float(np.sum(latency_s)), dt - up_ns, parts)
            legs.setdefault(k, (own[k], []))[1].append(leg)
        return legs

    def _close_tick(self, unclosed, totals: _RunTotals, records: list[TickRecord]) -> None:
        """Take a tick's node phase back, record the tick and add it to the run's totals."""
        t_ns, power, handovers, path_terms, finish = unclosed
        step = finish()
        counters = step.counters
        reward = totals.objective.add(TickTerms.of_tick(counters.served_ns, *path_terms))
        if step.key_fill is not None:
            self._key_fill = KeyFill.following(self._key_fill, t_ns + self.dt_ns, *step.key_fill)
        served_fraction = {
            c: (s / n if n else float("nan")) for c, (s, n, _) in counters.served_ns.items()
        }
        type_i_fraction = (
            counters.type_i_secure_ns / counters.type_i_active_ns
            if counters.type_i_active_ns
            else float("nan")
        )
        energy = self._energy_tick(power, step.batteries)
        transport_j, transport_g = self._transport_energy(
            counters.bits_through, power.site_intensity_g_per_kwh
        )
        if transport_j:
            energy = dataclasses.replace(
                energy,
                power_w=energy.power_w + transport_j * NS_PER_S / self.dt_ns,
                carbon_g=energy.carbon_g + transport_g,
            )
            totals.transport_energy_j += transport_j
            totals.transport_carbon_g += transport_g
        records.append(
            TickRecord(
                t_s=t_ns / NS_PER_S,
                link_key_bits=step.link_bits,
                pool_key_bits=step.pool_bits,
                type_i_secure_fraction=type_i_fraction,
                served_fraction=served_fraction,
                battery_soc_mean=energy.soc_mean,
                battery_soc_min=energy.soc_min,
                haps_soc_min=energy.haps_soc_min,
                power_w=energy.power_w,
                carbon_g=energy.carbon_g,
                handovers=handovers,
                delivered_bits=counters.delivered_bits,
                reward=reward,
            )
        )
        totals.energy_j += energy.power_w * self.dt_ns / NS_PER_S
        totals.carbon_g += energy.carbon_g
        totals.below_reserve_ticks += int(energy.below_reserve > 0)
        totals.haps_below_reserve_ticks += int(energy.haps_below_reserve > 0)

    def _transport_energy(
        self, bits_through: dict[str, int], site_intensity_g_per_kwh: np.ndarray
    ) -> tuple[float, float]:
        """The energy (J) and carbon (g) a tick's data cost the ground sites it crossed: the
        bits through each site x ``ground_node_j_per_bit``, at the site's grid intensity at the
        tick's start (``site_intensity_g_per_kwh``; satellites and HAPS are not charged per
        bit: twin.physics.energy)."""
        sites = sorted((self._site_at[name], bits) for name, bits in bits_through.items()
                       if name in self._site_at)  # fmt: skip
        if not sites or not self.ground_node_j_per_bit:
            return 0.0, 0.0
        rows = np.array([i for i, _ in sites], dtype=np.int64)
        energy_j = self.ground_node_j_per_bit * np.array([b for _, b in sites], dtype=float)
        intensity = site_intensity_g_per_kwh[rows]
        return float(np.sum(energy_j)), float(np.sum(carbon_g(energy_j, 1.0, intensity)))

    def _take_deferrals(self, plan, t_ns: int) -> None:
        """Put off the forecast events a plan taking effect at ``t_ns`` defers (its
        ``deferrals``: (flow, event, delay ns)): their sources send the bulk that much later
        (``Flow.deferred``), at most until the run's end. A deferral is made once, before its
        event starts; a plan repeats the ones it made (the same again changes nothing)."""
        for flow_name, event, delay_ns in getattr(plan, "deferrals", None) or ():
            k = self._flow_at.get(flow_name)
            if k is None:
                raise RuntimeError(f"the plan defers an event of {flow_name!r}, not a flow here")
            planned = self._planned_delays.setdefault(k, {})
            if event in planned:
                if planned[event] != delay_ns:
                    raise RuntimeError(
                        f"the plan puts off event {event!r} of flow {flow_name!r} by {delay_ns} "
                        f"ns after putting it off by {planned[event]} ns: a deferral is made once"
                    )
                continue
            planned[event] = delay_ns
            announced = next((e for e in self.flows[k].events if e.name == event), None)
            if announced is None:
                raise RuntimeError(f"the plan defers event {event!r}, which {flow_name!r} lacks")
            if announced.start_ns < t_ns:
                raise RuntimeError(
                    f"the plan taking effect at {t_ns} ns puts off event {event!r} of flow "
                    f"{flow_name!r}, which started at {announced.start_ns} ns: defer before it"
                )
            # the transfer stays inside the run (a run shorter than the scenario clips the
            # delay), so a deferring controller is compared on the same bits, not on bits it
            # pushed past the end
            delay = min(int(delay_ns), max(self._end_ns - announced.end_ns, 0))
            if delay > 0:
                self._deferrals.setdefault(k, {})[event] = delay
                self._served_flows[k] = self._served_flows[k].deferred({event: delay})
                self.deferrals.append(DeferredEvent(flow_name, event, announced.start_ns, delay))

    def _energy_inputs(self, snap, t_ns: int) -> _PowerInputs:
        """The tick's loads, the batteries' steps to take, and the ground stations' carbon."""
        dt_s = self.dt_ns / NS_PER_S
        t_s = t_ns / NS_PER_S
        sat0 = self._sat0
        n_sats = self.nodes.battery_counts["satellite"]
        n_haps = self.nodes.battery_counts["haps"]
        sat_power_w = haps_power_w = 0.0
        steps = []
        # the up edges with an optical terminal, their ends (a < b)
        optical = np.flatnonzero(self._optical_kind.take(snap.kind) & snap.up)
        optical_a, optical_b = snap.a[optical], snap.b[optical]
        sun = None
        if n_sats or n_haps:
            sun = sun_position_ecef_m(*jd_fr_add_seconds(*self._epoch, t_s))
        if n_sats:
            lit = sunlit_fraction(snap.satellite_positions_m, sun[:, None])
            active = np.bincount(optical_b[optical_b >= sat0] - sat0, minlength=n_sats)
            terminals = self.sat_power.laser_terminals
            scheduled = isinstance(self._plan, LaserSchedule)
            by_active = (
                self._sat_load_by_active_asleep_w if scheduled else self._sat_load_by_active_w
            )
            load = by_active[np.minimum(active, terminals)]
            turbo = self._turbo_satellites(snap)
            if turbo.size:
                by_active_turbo = self._sat_load_by_active_turbo_w[scheduled]
                load[turbo] = by_active_turbo[np.minimum(active[turbo], terminals)]
            steps.append(("satellite", lit, load, self.sat_power, dt_s))
            sat_power_w = float(np.sum(load))
        if n_haps:
            # the sun's elevation at each HAPS (geodetic up; the sun is far enough that the
            # direction from the Earth's centre would do, but the HAPS position costs nothing)
            to_sun = sun[:, None] - self._haps_pos_m
            sun_el = np.arcsin(
                np.sum(self._haps_up * to_sun, axis=0) / np.linalg.norm(to_sun, axis=0)
            )
            # a HAPS runs its terminal and QKD payload while one of its optical links is up
            haps0 = self._haps_offset
            linked = np.zeros(n_haps, dtype=bool)
            for end in (optical_a, optical_b):
                linked[end[(end >= haps0) & (end < sat0)] - haps0] = True
            load = self._haps_load_by_linked_w[linked.view(np.uint8)]
            steps.append(("haps", sun_el, load, self.haps_power, dt_s))
            haps_power_w = float(np.sum(load))
        # every site's grid intensity at the tick's start (carbon_intensity_g_per_kwh: the
        # annual intensity x the diurnal factor), for the OGS' power and the traffic's energy
        local_s = local_solar_time_s(self._day_s + t_s, self._site_lon_rad)
        intensity = self._site_annual_g_per_kwh * diurnal_factor(local_s, self._site_amplitude)
        carbon = 0.0
        # carbon_g(power, dt_s, intensity), its constant factor taken once
        ogs_carbon_g = self._ogs_carbon_g_per_intensity * intensity[self._ogs_nodes]
        for c_g in ogs_carbon_g.tolist():  # site order
            carbon += c_g
        return _PowerInputs(
            battery_steps=tuple(steps),
            power_w=sat_power_w + haps_power_w + self._ogs_power_total_w,
            carbon_g=carbon,
            site_intensity_g_per_kwh=np.asarray(intensity, dtype=float),
        )

    def _path_terms(self, snap, paths, edges, active, power: _PowerInputs) -> tuple[float, float]:
        """The objective's path terms at the tick's start (twin.control.objective): the mean
        latency of the active flows' paths in units of 1 ms, and the mean of their eq. (5)
        carbon rates, kg CO2e/h (0, 0 when no active flow has a path)."""
        rate = np.zeros(snap.n_nodes)
        rate[self._ogs_nodes] = carbon_rate_kg_per_h(
            self._ogs_power_w, power.site_intensity_g_per_kwh[self._ogs_nodes]
        )
        routed = [k for k in edges if active[k]]
        if not routed:
            return 0.0, 0.0
        latency_s = sum(float(np.sum(snap.latency_s[edges[k]])) for k in routed)
        carbon = sum(float(np.sum(rate[list(paths[k])])) for k in routed)
        return latency_s / LATENCY_REFERENCE_S / len(routed), carbon / len(routed)

    def _energy_tick(self, power: _PowerInputs, stepped) -> _EnergyTick:
        """The tick's energy record from its inputs and the battery steps' (soc_j, below)."""
        nan = float("nan")
        soc_mean = soc_min = haps_soc_min = nan
        below = haps_below = 0
        for (platform, *_), (soc_j, below_reserve) in zip(
            power.battery_steps, stepped, strict=True
        ):
            if platform == "satellite":
                below = int(np.sum(below_reserve))
                capacity = self.sat_power.battery_capacity_j
                self._sat_soc = np.asarray(soc_j, dtype=float) / capacity
                soc_mean = float(np.mean(soc_j) / capacity)
                soc_min = float(np.min(soc_j) / capacity)
            else:
                haps_below = int(np.sum(below_reserve))
                haps_soc_min = float(np.min(soc_j) / self.haps_power.battery_capacity_j)
        return _EnergyTick(
            power_w=power.power_w,
            carbon_g=power.carbon_g,
            soc_mean=soc_mean,
            soc_min=soc_min,
            below_reserve=below,
            haps_soc_min=haps_soc_min,
            haps_below_reserve=haps_below,
        )

    def _decide(self, snap):
        """G(t) ``snap`` as the plan leaves it, and the controller's decision for it; see
        :meth:`_submit_decide`."""
        snap, decided = self._submit_decide(snap)
        return snap, decided()

    def _submit_decide(self, snap) -> tuple[Snapshot, Callable[[], Decision]]:
        """The controller's decision for G(t) ``snap``, as a callable that gives it: a
        controller whose work runs elsewhere (controller actors, ``submit_decide``) returns at
        once and decides while the engine goes on. Called once per snapshot, in time order. A
        controller that plans (the cloud tier) plans first, every N decisions: the plan asked
        for N decisions ago takes effect and the next is asked for (``submit_plan``, computed
        while the ticks run; module docstring); a plan that schedules the satellites'
        terminals (``LaserSchedule``) is applied to ``snap``, and the snapshot it leaves is
        returned with the decision (the tick runs on it)."""
        every = getattr(self.controller, "plan_every_ticks", 0)  # 0 or absent: no plans
        if every > 0 and self._decisions % every == 0:
            if self._next_plan is not None:
                self._plan = self._next_plan()
                self._take_deferrals(self._plan, snap.t_ns)
            view = self._planning_view(snap)
            submit = getattr(self.controller, "submit_plan", None)
            planned = submit(view) if submit is not None else _given(self.controller.plan(view))
            self._next_plan = planned
        snap = self._apply_schedule(snap)
        # the shield and the audit see what the controller sees, with the fill report in any
        # case; the controller sees the report only if it reads it
        checked = self._view(
            snap, plan=self._plan if every > 0 else None, battery_soc=self._sat_soc
        )
        # (the battery charge is the planner's and the shield's: edge controllers decide
        # from G(t), the fill report and the plan, in both runtimes)
        view = dataclasses.replace(
            checked, battery_soc=None, key_fill=checked.key_fill if self.reads_key_fill else None
        )
        self._decisions += 1
        submit = getattr(self.controller, "submit_decide", None)
        decided = submit(view) if submit is not None else _given(self.controller.decide(view))

        def collect() -> Decision:
            decision = decided()
            serves = checked.t_ns < self._end_ns  # (the decision after the last tick bounds it)
            if self.shield is not None:
                decision = self.shield.filter(checked, decision, count=serves)
            if serves:
                found = audit(
                    checked, decision.paths, boost=decision.boost,
                    reserve_fraction=self.sat_power.reserve_fraction, relay=decision.relay,
                    data=decision.data,
                )  # fmt: skip
                for rule, n in found.items():
                    self.shield_violations[rule] += n
            # the next snapshot scheduled runs the boosted flows' satellites at the turbo level
            boosted = [
                boosted_satellites(path, self._sat0)
                for k, path in enumerate(decision.paths)
                if decision.boosted(k)
            ]
            self._boosted = np.unique(np.concatenate(boosted)) if boosted else self._boosted[:0]
            return decision

        return snap, collect

    def _planning_view(self, snap) -> NetworkView:
        """What the cloud tier plans from: G(t), the flows, the key buffers' fill report and
        the satellites' battery charge (Table 2's battery-state-of-charge, fraction)."""
        soc = None
        if self.nodes.battery_counts["satellite"]:
            soc = self.nodes.soc_j("satellite") / self.sat_power.battery_capacity_j
        return self._view(snap, battery_soc=soc)

    def _view(self, snap, **extra) -> NetworkView:
        """The network view of ``snap`` with the last closed tick's fill report."""
        return NetworkView(
            t_ns=snap.t_ns,
            snapshot=snap,
            flows=self.flows,
            node_index=self.node_index,
            jurisdictions=self.jurisdictions,
            flow_endpoints=self.flow_endpoints,
            edge_lookup=self._edge_lookup(snap),
            key_fill=self._key_fill,
            **extra,
        )

    def _apply_schedule(self, snap):
        """``snap`` with the optical links of sleeping satellites down (the laser schedule)
        and those of satellites in QKD turbo mode making key faster.

        Under a :class:`LaserSchedule` a satellite's terminals run at a tick when it has an
        optical contact (an up FSO edge to an OGS or a HAPS) and its time awake in the plan's
        current step is not spent; otherwise they sleep (OFF: no standby load) and its optical
        links carry nothing. Without one, every satellite in contact is awake. An awake
        satellite runs at the turbo level when the plan puts it in turbo mode or the last
        collected decision boosts it (``Decision.boost``; none where the terminals have no
        turbo mode). Called once per snapshot in time order, so the time spent is a function
        of the schedule, the decisions and G(t) alone."""
        schedule = self._plan if isinstance(self._plan, LaserSchedule) else None
        boosted = self._boosted if self.turbo_skr_gain > 1 else self._boosted[:0]
        if schedule is None and boosted.size == 0:
            return snap
        sat0 = self._sat0
        optical = self._optical_kind.take(snap.kind) & snap.up & (snap.b >= sat0)
        # satellite sets as masks over the satellites (a few hundred of mega's 1,584 in
        # contact a tick: set operations on sorted arrays cost more than the masks)
        optical_sat = snap.b[optical] - sat0  # the satellite end of each optical edge
        n_sat = snap.n_nodes - sat0
        in_contact = np.flatnonzero(np.bincount(optical_sat, minlength=n_sat))  # ascending
        in_plan = np.zeros(n_sat, dtype=bool)  # the satellites the plan puts in turbo mode
        if schedule is not None:
            step = min(
                (snap.t_ns - schedule.t0_ns) // schedule.step_ns, schedule.awake_ns.shape[1] - 1
            )
            if self._awake_step != (schedule.t0_ns, step):
                self._awake_step = (schedule.t0_ns, step)
                self._awake_spent_ns = np.zeros(schedule.awake_ns.shape[0], dtype=np.int64)
            spent = self._awake_spent_ns[in_contact]
            has_time = spent < schedule.awake_ns[in_contact, step]
            awake, asleep = in_contact[has_time], in_contact[~has_time]
            self._awake_spent_ns[awake] += self.dt_ns
            in_plan[schedule.turbo] = True
        else:
            awake, asleep = in_contact, in_contact[:0]
        in_asked = np.zeros(n_sat, dtype=bool)  # those the edge tier boosts and the plan does not
        in_asked[boosted] = True
        in_asked &= ~in_plan
        # (subsets of the awake satellites, ascending)
        planned, asked = awake[in_plan[awake]], awake[in_asked[awake]]
        turbo = awake[(in_plan | in_asked)[awake]]
        if snap.t_ns < self._end_ns:  # (the snapshot after the last tick serves none)
            self.turbo_satellite_ticks["plan"] += int(planned.size)
            self.turbo_satellite_ticks["edge"] += int(asked.size)
        if asleep.size == 0 and turbo.size == 0:
            return snap
        up, skr_bps = snap.up, snap.skr_bps
        optical_at = np.flatnonzero(optical)

        def links_of(satellites: np.ndarray) -> np.ndarray:
            """The edges of ``optical`` whose satellite is one of ``satellites``."""
            member = np.zeros(n_sat, dtype=bool)
            member[satellites] = True
            return optical_at[member[optical_sat]]

        if asleep.size:
            up = up.copy()
            up[links_of(asleep)] = False
        if turbo.size:
            skr_bps = skr_bps.copy()
            skr_bps[links_of(turbo)] *= self.turbo_skr_gain
        scheduled = dataclasses.replace(snap, up=up, skr_bps=skr_bps)
        if turbo.size:
            self._turbo_of = [*self._turbo_of[-2:], (scheduled, turbo)]
        return scheduled

    def _turbo_satellites(self, snap) -> np.ndarray:
        """The satellites (indices from the first) in turbo mode in scheduled ``snap``."""
        for held, turbo in self._turbo_of:
            if held is snap:
                return turbo
        return np.zeros(0, dtype=np.int64)

    def _edge_lookup(self, snap) -> EdgeLookup:
        """The fastest-up-edge lookup of ``snap``, built once per snapshot. The engine holds
        three snapshots at a time (the tick's start and end, and the next tick's end, being
        decided), and a planning controller's view adds the unscheduled one of the latest
        time: the four latest by time are kept. (Kept by order of building, three of them,
        the first plan's extra view began a cycle in which every tick rebuilt the lookup of
        its start, evicting the one of its end: on mega, ai-sdqn built 1,395 lookups in 721
        ticks, and lost their memos of path latencies and keyed graphs with them.)"""
        for held, lookup in self._edge_lookups:
            if held is snap:
                return lookup
        lookup = EdgeLookup(snap)
        kept = sorted([*self._edge_lookups, (snap, lookup)], key=lambda e: e[0].t_ns)
        self._edge_lookups = kept[-4:]
        return lookup

    def run(
        self,
        *,
        duration_s: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RunResult:
        wall_start = time.perf_counter()
        total_s = self.scenario.time.duration_s if duration_s is None else float(duration_s)
        n_ticks = int(round(total_s * NS_PER_S)) // self.dt_ns
        self._end_ns = n_ticks * self.dt_ns
        records: list[TickRecord] = []
        totals = _RunTotals(ObjectiveTotals(self.objective_weights, self.dt_ns / NS_PER_S))
        unclosed = None  # a tick whose node phase was handed over and is not yet closed
        snap = self.topology.snapshot(0)
        snap, first = self._decide(snap)
        paths, relay, data, decided_paths = first.paths, first.relay, first.data, first.paths
        if n_ticks:
            snap_next, decided = self._submit_decide(self.topology.snapshot(self.dt_ns))
        for tick in range(n_ticks):
            t_ns = tick * self.dt_ns
            t_end = t_ns + self.dt_ns
            # the batteries' step goes with the tick's start (no battery touches a key or a
            # flow): under Ray the hosts take it while the driver readies the tick
            power = self._energy_inputs(snap, t_ns)
            self.nodes.environment(snap, t_ns, power.battery_steps)
            # the graph and the paths at the tick's end bound what happens inside it
            next_decision = decided()
            next_paths = next_decision.paths
            if tick + 1 < n_ticks:
                # the next tick's end is decided while this tick runs: the same decisions in
                # the same order (one per snapshot), and controller actors work meanwhile
                snap_after, decided = self._submit_decide(
                    self.topology.snapshot(t_end + self.dt_ns)
                )
            # what comes from G(t) and the paths alone is made before the previous tick's node
            # phase is waited for: under Ray the hosts run it meanwhile
            demand = [demand_bits(f, t_ns, self.dt_ns) for f in self._served_flows]
            active = [b > 0 or f.traffic_class is TrafficClass.TYPE_II
                      for f, b in zip(self._served_flows, demand, strict=True)]  # fmt: skip
            lookup = self._edge_lookup(snap)
            edges = {k: e for k, e in enumerate(lookup.paths_edges(paths)) if paths[k] is not None}
            path_terms = self._path_terms(snap, paths, edges, active, power)
            if unclosed is not None:
                # the previous tick's node phase ran while G(t + dt) was being built (Ray)
                self._close_tick(unclosed, totals, records)
                unclosed = None
            done_before = len(self.handover.log)
            self._start_handovers(snap, paths, edges, snap_next, next_paths, active)
            self._advance_handovers(t_end - 1)
            if tick % self._entanglement_every == 0:
                self._serve_entanglement(snap, paths, active, t_ns)
            data_legs = self._data_legs(snap, snap_next, data, decided_paths) if any(data) else {}
            finish = self._serve_flows(snap, paths, edges, t_ns, relay, data_legs)
            unclosed = (t_ns, power, len(self.handover.log) - done_before, path_terms, finish)
            snap, paths = snap_next, self._served(next_paths, t_end)
            relay, data, decided_paths = next_decision.relay, next_decision.data, next_paths
            if tick + 1 < n_ticks:
                snap_next = snap_after
            if progress is not None:
                progress(tick + 1, n_ticks)
        if unclosed is not None:
            self._close_tick(unclosed, totals, records)
        self.nodes.expire(n_ticks * self.dt_ns)  # the ledgers at the run's end
        link_buffers, pool_buffers = self.link_buffers, self.pools
        buffers = [link_buffers[k] for k in sorted(link_buffers)]
        pools = [pool_buffers[k] for k in sorted(pool_buffers)]
        for buffer in buffers + pools:
            buffer.check_ledger()
        return RunResult(
            scenario=self.scenario.name,
            controller=self.controller_label,
            seed=self.seed,
            sim_seconds=n_ticks * self.dt_ns / NS_PER_S,
            wall_seconds=time.perf_counter() - wall_start,
            flows=self.flow_state,
            ledger=total_ledger(buffers + pools),
            records=records,
            handovers=self.handover.log,
            space_events=dict(self.space_events),
            energy_j=totals.energy_j,
            carbon_total_g=totals.carbon_g,
            below_reserve_ticks=totals.below_reserve_ticks,
            haps_below_reserve_ticks=totals.haps_below_reserve_ticks,
            transport_energy_j=totals.transport_energy_j,
            transport_carbon_g=totals.transport_carbon_g,
            deferrals=list(self.deferrals),
            entanglement=list(self.entanglement),
            objective=totals.objective.as_dict(),
            shield=self._shield_summary(),
        )

    def _shield_summary(self) -> dict:
        """What RunResult.shield holds (twin.control.shield)."""
        counts = self.shield.counts if self.shield is not None else None
        return {
            "violations": dict(self.shield_violations),
            "rejected": dict(counts.rejected) if counts is not None else None,
            "unsatisfiable": dict(counts.unsatisfiable) if counts is not None else None,
        }
