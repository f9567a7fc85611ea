"""The tick loop of the twin, in one process (ARCHITECTURE.md, "Time and determinism").

Each tick of ``dt`` simulated seconds:

1. environment: G(t) from the physics (positions, visibility, weather, link budgets), and the
   key generation of every QKD link that is up;
2. controllers: the controller sees the network and chooses a path per flow;
3. nodes: every flow's source relays end-to-end key along its path (trusted relay, one-time-pad
   hop by hop), consumes key per its security mode, and sends its data;
4. energy: satellite batteries (solar while sunlit, loads per active terminal), ground-station
   power and its carbon at the site's grid intensity.

Everything is a function of (scenario, seed, code): time is integer nanoseconds, keys are
integer bits, iteration is over sorted names or stable indices, and the only randomness would
come from ``twin.rng.stream`` (the baselines draw none).

Assumptions the sources leave open are module constants, labelled, so a reader can find and
question them in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from twin.control.baselines import NetworkView, make_controller, path_edges
from twin.network.keys import (
    KeyBuffer,
    KeyLedger,
    KeyRateAccumulator,
    key_demand_bits,
    relay_key,
    total_ledger,
)
from twin.network.routing import NodeIndex
from twin.network.topology import EdgeKind, TopologyModel
from twin.network.traffic import TrafficClass, demand_bits, requirements
from twin.physics.carbon import carbon_g, carbon_intensity_g_per_kwh
from twin.physics.energy import LaserLevel
from twin.physics.orbits import jd_fr_add_seconds, jd_fr_from_datetime
from twin.physics.sun import sun_position_ecef_m, sunlit_fraction
from twin.units import NS_PER_S

__all__ = ["Engine", "RunResult", "TickRecord"]

# --- assumptions -------------------------------------------------------------------------------
LINK_BUFFER_CAPACITY_BITS = 1_000_000_000  # assumption: 125 MB of key store per QKD link
POOL_CAPACITY_BITS = 100_000_000  # assumption: 12.5 MB per end-to-end (site pair) pool
# QKDNetSim's Mthr (READY above it; a refilling buffer below it serves only Type-I): small
# against the capacity so a buffer serves once it holds a few seconds of key, not half its size
LINK_BUFFER_THRESHOLD_BITS = 1_000_000  # assumption
POOL_THRESHOLD_BITS = 4_096  # assumption: sixteen AES-256 keys
KEY_MAX_AGE_NS = 24 * 3_600 * NS_PER_S  # assumption: keys older than a day are retired
POOL_LOOKAHEAD_S = 10  # assumption: sources keep ~10 s of their key demand in the e2e pool
QUANTUM_EDGE_KINDS = (
    EdgeKind.FIBER,
    EdgeKind.FSO_GROUND_SPACE,
    EdgeKind.FSO_GROUND_HAPS,
    EdgeKind.FSO_HAPS_SPACE,
    EdgeKind.ISL,
)
SPACE_EDGE_KINDS = (EdgeKind.FSO_GROUND_SPACE, EdgeKind.RF_KA, EdgeKind.FSO_HAPS_SPACE)


@dataclass
class _FlowState:
    last_rekey_ns: int | None = None
    path: tuple[int, ...] | None = None
    space_nodes: frozenset[int] = frozenset()
    ticks: int = 0
    served_ticks: int = 0
    secure_ticks: int = 0
    demand_bits: int = 0
    delivered_bits: int = 0
    key_bits_used: int = 0
    latency_sum_s: float = 0.0
    latency_n: int = 0


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
    power_w: float
    carbon_g: float
    handovers: int
    delivered_bits: int


@dataclass
class RunResult:
    scenario: str
    controller: str
    seed: int
    sim_seconds: float
    wall_seconds: float
    flows: dict[str, _FlowState]
    ledger: KeyLedger
    records: list[TickRecord]
    handover_count: int
    energy_j: float
    carbon_total_g: float
    below_reserve_ticks: int
    extras: dict[str, float] = field(default_factory=dict)


class Engine:
    """Runs one scenario with one controller; :meth:`run` returns a :class:`RunResult`."""

    def __init__(
        self, scenario, *, controller: str = "static-sp", seed: int | None = None, flows=None
    ):
        self.scenario = scenario
        self.controller = make_controller(controller)
        self.seed = scenario.seed if seed is None else int(seed)
        self.topology = TopologyModel(scenario)
        self.dt_ns = int(round(scenario.time.tick_s * NS_PER_S))
        names = self.topology.node_names
        self.node_index = NodeIndex.from_names(names)
        self._index = {name: i for i, name in enumerate(names)}
        self.jurisdictions = {s.name: s.jurisdiction for s in scenario.sites}
        # flows: the scenario's traffic section, or a list given by the caller (tests, studies)
        self.flows = list(scenario.flows()) if flows is None else list(flows)
        self.flow_endpoints = [
            (self._index[f.src_site], self._index[f.dst_site]) for f in self.flows
        ]
        self.link_buffers: dict[tuple[str, str], KeyBuffer] = {}
        self.link_accumulators: dict[tuple[str, str], KeyRateAccumulator] = {}
        self.pools: dict[tuple[str, str], KeyBuffer] = {}
        self.flow_state = {f.name: _FlowState() for f in self.flows}
        equipment = scenario.equipment
        self.sat_power = equipment.satellite.power_model()
        self.ogs_power = equipment.ogs.power_model()
        self._epoch = jd_fr_from_datetime(scenario.time.start_utc)
        n_sats = len(names) - self.topology._sat_offset
        self.soc_j = np.full(n_sats, self.sat_power.battery_capacity_j)
        self._ogs_sites = [s for s in scenario.sites if s.kind == "ogs"]

    # --- keys ----------------------------------------------------------------------------------

    def _link_key(self, a: int, b: int) -> tuple[str, str]:
        names = self.topology.node_names
        return (names[a], names[b])

    def _link_buffer(self, key: tuple[str, str]) -> KeyBuffer:
        buffer = self.link_buffers.get(key)
        if buffer is None:
            buffer = KeyBuffer(
                f"{key[0]}~{key[1]}",
                LINK_BUFFER_CAPACITY_BITS,
                threshold_bits=LINK_BUFFER_THRESHOLD_BITS,
                max_age_ns=KEY_MAX_AGE_NS,
            )
            self.link_buffers[key] = buffer
            self.link_accumulators[key] = KeyRateAccumulator()
        return buffer

    def _generate_link_keys(self, snap, t_ns: int) -> None:
        quantum = np.isin(snap.kind, QUANTUM_EDGE_KINDS) & snap.up & (snap.skr_bps > 0)
        for e in np.flatnonzero(quantum):
            key = self._link_key(snap.a[e], snap.b[e])
            buffer = self._link_buffer(key)
            bits = self.link_accumulators[key].step(float(snap.skr_bps[e]), self.dt_ns)
            if bits:
                buffer.generate(bits, t_ns)

    def _pool(self, src: str, dst: str) -> KeyBuffer:
        key = (src, dst) if src < dst else (dst, src)
        pool = self.pools.get(key)
        if pool is None:
            pool = KeyBuffer(
                f"pool:{key[0]}~{key[1]}",
                POOL_CAPACITY_BITS,
                threshold_bits=POOL_THRESHOLD_BITS,
                max_age_ns=KEY_MAX_AGE_NS,
            )
            self.pools[key] = pool
        return pool

    def _hop_buffers(self, snap, path) -> list[KeyBuffer] | None:
        """The link key buffers of a path's hops; None if a hop has no QKD link buffer."""
        buffers = []
        edges = path_edges(snap, path)
        for h, e in enumerate(edges):
            a, b = sorted((path[h], path[h + 1]))
            key = self._link_key(a, b)
            if e < 0 or key not in self.link_buffers:
                return None
            buffers.append(self.link_buffers[key])
        return buffers

    # --- one tick ------------------------------------------------------------------------------

    def _serve_flows(self, snap, decision, t_ns: int) -> tuple[int, int, int, dict[str, float]]:
        handovers = 0
        delivered_total = 0
        type_i_secure = type_i_total = 0
        served = {c.value: [0, 0] for c in TrafficClass}
        for k, flow in enumerate(self.flows):
            state = self.flow_state[flow.name]
            path = decision.paths[k]
            bits = demand_bits(flow, t_ns, self.dt_ns)
            cls = flow.traffic_class
            if bits == 0 and cls is not TrafficClass.TYPE_II:
                # an idle flow neither asks for service nor counts against availability
                self._track_path(state, snap, path)
                continue
            state.ticks += 1
            state.demand_bits += bits
            served[cls.value][1] += 1
            handovers += self._track_path(state, snap, path)
            secure = False
            ok = path is not None
            if ok:
                demand = key_demand_bits(cls, bits, t_ns, self.dt_ns, state.last_rekey_ns)
                if demand.bits:
                    names = self.topology.node_names
                    pool = self._pool(names[path[0]], names[path[-1]])
                    critical = cls is TrafficClass.TYPE_I
                    # keep the pool above its READY threshold plus the look-ahead demand, so
                    # non-critical classes (served only when READY) are not starved by design
                    lookahead_ticks = max(1, int(POOL_LOOKAHEAD_S * NS_PER_S // self.dt_ns))
                    target = demand.bits * lookahead_ticks + POOL_THRESHOLD_BITS
                    shortfall = target - pool.available_bits
                    hops = self._hop_buffers(snap, path)
                    if shortfall > 0 and hops:
                        relay_key(
                            hops, pool, min(shortfall, pool.free_bits), t_ns, critical=critical
                        )
                    secure = pool.consume(demand.bits, t_ns, critical=critical)
                    if secure:
                        state.last_rekey_ns = demand.last_rekey_ns
                        state.key_bits_used += demand.bits
                else:
                    secure = True  # PQC (Type-IV) or no rekey due: no quantum key needed now
                latency = float(np.sum(snap.latency_s[path_edges(snap, path)]))
                meets = requirements(cls).meets_latency(latency)
                ok = secure and meets
                state.latency_sum_s += latency
                state.latency_n += 1
            if ok:
                state.served_ticks += 1
                state.delivered_bits += bits
                delivered_total += bits
                served[cls.value][0] += 1
            if cls is TrafficClass.TYPE_I:
                type_i_total += 1
                type_i_secure += int(secure and path is not None)
                state.secure_ticks += int(secure and path is not None)
        served_fraction = {c: (s / n if n else float("nan")) for c, (s, n) in served.items()}
        type_i_fraction = type_i_secure / type_i_total if type_i_total else float("nan")
        return handovers, delivered_total, type_i_fraction, served_fraction

    def _track_path(self, state: _FlowState, snap, path) -> int:
        """Count a handover when the space segment of a flow's path changes."""
        kinds = snap.kind
        space = frozenset()
        if path is not None:
            edges = path_edges(snap, path)
            sat0 = self.topology._sat_offset
            space = frozenset(
                n for e, h in zip(edges, range(len(path) - 1), strict=True)
                if e >= 0 and kinds[e] in SPACE_EDGE_KINDS
                for n in (path[h], path[h + 1]) if n >= sat0
            )  # fmt: skip
        changed = bool(state.space_nodes) and space != state.space_nodes
        state.path = path
        state.space_nodes = space
        return int(changed)

    def _energy(self, snap, t_ns: int) -> tuple[float, float, float, float, int]:
        """Satellite batteries and ground power for one tick; returns (power_w, carbon_g,
        soc_mean_fraction, soc_min_fraction, below_reserve_count)."""
        dt_s = self.dt_ns / NS_PER_S
        t_s = t_ns / NS_PER_S
        sat0 = self.topology._sat_offset
        n_sats = self.soc_j.size
        sat_power_w = 0.0
        below = 0
        if n_sats:
            jd, fr = jd_fr_add_seconds(*self._epoch, t_s)
            sun = sun_position_ecef_m(jd, fr)
            lit = sunlit_fraction(self.topology.satellite_positions_m, sun[:, None])
            optical = np.isin(snap.kind, (EdgeKind.FSO_GROUND_SPACE, EdgeKind.FSO_HAPS_SPACE))
            optical &= snap.up
            active = np.zeros(n_sats, dtype=np.int64)
            np.add.at(active, snap.b[optical] - sat0, 1)
            terminals = self.sat_power.laser_terminals
            levels = np.where(
                np.arange(terminals)[None, :] < np.minimum(active, terminals)[:, None],
                int(LaserLevel.ON),
                int(LaserLevel.STANDBY),
            )
            load = self.sat_power.load_w(levels)
            step = self.sat_power.step(self.soc_j, lit, load, dt_s)
            self.soc_j = step.soc_j
            sat_power_w = float(np.sum(load))
            below = int(np.sum(step.below_reserve))
        ogs_power = np.array([float(self.ogs_power.power_w(1.0)) for _ in self._ogs_sites])
        carbon = 0.0
        for site, p_w in zip(self._ogs_sites, ogs_power, strict=True):
            intensity = carbon_intensity_g_per_kwh(site.grid_region, t_s, site.lon_rad)
            carbon += float(carbon_g(p_w, dt_s, intensity))
        capacity = self.sat_power.battery_capacity_j
        soc_mean = float(np.mean(self.soc_j) / capacity) if n_sats else float("nan")
        soc_min = float(np.min(self.soc_j) / capacity) if n_sats else float("nan")
        return sat_power_w + float(ogs_power.sum()), carbon, soc_mean, soc_min, below

    def run(
        self,
        *,
        duration_s: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RunResult:
        wall_start = time.perf_counter()
        total_s = self.scenario.time.duration_s if duration_s is None else float(duration_s)
        n_ticks = int(round(total_s * NS_PER_S)) // self.dt_ns
        records: list[TickRecord] = []
        handover_count = 0
        energy_j = carbon_total = 0.0
        below_reserve_ticks = 0
        for tick in range(n_ticks):
            t_ns = tick * self.dt_ns
            snap = self.topology.snapshot(t_ns)
            self._generate_link_keys(snap, t_ns)
            view = NetworkView(
                t_ns=t_ns,
                snapshot=snap,
                flows=self.flows,
                node_index=self.node_index,
                jurisdictions=self.jurisdictions,
                flow_endpoints=self.flow_endpoints,
            )
            decision = self.controller.decide(view)
            handovers, delivered, type_i, served = self._serve_flows(snap, decision, t_ns)
            handover_count += handovers
            power_w, carbon, soc_mean, soc_min, below = self._energy(snap, t_ns)
            energy_j += power_w * self.dt_ns / NS_PER_S
            carbon_total += carbon
            below_reserve_ticks += int(below > 0)
            records.append(
                TickRecord(
                    t_s=t_ns / NS_PER_S,
                    link_key_bits=sum(b.buffered_bits for b in self.link_buffers.values()),
                    pool_key_bits=sum(p.buffered_bits for p in self.pools.values()),
                    type_i_secure_fraction=type_i,
                    served_fraction=served,
                    battery_soc_mean=soc_mean,
                    battery_soc_min=soc_min,
                    power_w=power_w,
                    carbon_g=carbon,
                    handovers=handovers,
                    delivered_bits=delivered,
                )
            )
            if progress is not None:
                progress(tick + 1, n_ticks)
        buffers = [self.link_buffers[k] for k in sorted(self.link_buffers)]
        pools = [self.pools[k] for k in sorted(self.pools)]
        for buffer in buffers + pools:
            buffer.check_ledger()
        return RunResult(
            scenario=self.scenario.name,
            controller=self.controller.name,
            seed=self.seed,
            sim_seconds=n_ticks * self.dt_ns / NS_PER_S,
            wall_seconds=time.perf_counter() - wall_start,
            flows=self.flow_state,
            ledger=total_ledger(buffers + pools),
            records=records,
            handover_count=handover_count,
            energy_j=energy_j,
            carbon_total_g=carbon_total,
            below_reserve_ticks=below_reserve_ticks,
        )
