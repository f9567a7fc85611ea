"""The time-varying graph G(t) = (V, E(t)) of a scenario (main paper, section III-A).

V is fixed for a run, in a stable order: the scenario's ground sites (factories, ports, hubs,
IoT fields, OGS) in file order, then the HAPS, then the satellites of each constellation
(named ``<constellation>-<index>``, index from 0, zero-padded). E(t) is recomputed every tick
from the physics layer:

====================  =========================================================================
edge kind             when it exists, and what carries it
====================  =========================================================================
FIBER                 always (scenario fibre backbone); SMF-28 loss and latency; QKD over it
                      only below ``FIBER_QKD_MAX_M`` (the paper's <100 km coexistence rule)
FSO_GROUND_SPACE      OGS -> satellite above the optical elevation mask; LinkBudgetTable
                      budgets plus the weather along the slant path; down above the scenario's
                      weather blocking threshold
FSO_GROUND_HAPS       OGS -> HAPS above the optical mask; compute_link_budget, weather included
FSO_HAPS_SPACE        HAPS -> satellite above the HAPS-space mask; above the weather
ISL                   each satellite to its in-plane neighbours and the same slot of the next
                      plane (the "+Grid" of most Walker designs), when the chord clears the
                      Earth plus 80 km of atmosphere; vacuum
RF_KA                 OGS -> satellite above the RF mask: classical only (no QKD), the FSO
                      fallback of section VIII-B
====================  =========================================================================

Every edge carries: kind, transmittance (quantum channel, detector included), latency (s,
propagation), classical capacity (bit/s), secret-key rate (bit/s), entanglement fidelity of a
pair sent over it from an SPDC source at the upper end (amplitude damping with
gamma = 1 - channel transmittance, SPARQ eq. (10)), and up/down.

Capacities and masks without a published number in our sources are assumptions, set here once.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy.sparse import csr_matrix

from twin.physics.entanglement import amplitude_damping_fidelity
from twin.physics.fiber import C_BAND, O_BAND, fiber_latency_s, fiber_transmittance
from twin.physics.fso import Terminal, _FixedTerminals, fso_channel
from twin.physics.geometry import (
    SiteGeometry,
    chords_surely_clear,
    line_of_sight_clear,
    look_angles,
)
from twin.physics.haps import haps_states_ecef
from twin.physics.link_budget import _KeyRate, compute_link_budget, qkd_terms
from twin.physics.link_table import LinkBudgetTable
from twin.physics.orbits import (
    ConstellationPropagator,
    jd_fr_add_seconds,
    jd_fr_from_datetime,
    load_tle_file,
    parse_omm_text,
    walker_delta,
)
from twin.physics.presets import LinkPreset
from twin.units import DEG, KM, NS_PER_S, SPEED_OF_LIGHT_M_PER_S, db_to_linear

from .weather import SiteWeather

__all__ = [
    "EdgeKind",
    "FIBER_QKD_MAX_M",
    "SPACE_EDGE_MASK_RAD",
    "Snapshot",
    "TopologyModel",
    "preset_from_equipment",
]


class EdgeKind(enum.IntEnum):
    FIBER = 0
    FSO_GROUND_SPACE = 1
    FSO_GROUND_HAPS = 2
    FSO_HAPS_SPACE = 3
    ISL = 4
    RF_KA = 5


_KIND_SPAN = 8  # every EdgeKind value is below this (the snapshot's sort key packs kind in)
assert all(0 <= k < _KIND_SPAN for k in EdgeKind)

# --- assumptions (no published value in our sources; each a scenario setting later) ----------
FSO_MASK_RAD = 15 * DEG  # assumption: optical OGS links below ~15 deg lose too much to air mass
RF_MASK_RAD = 10 * DEG  # assumption: Ka-band user terminals typically work above 10-25 deg
HAPS_SPACE_MASK_RAD = 5 * DEG  # assumption: above the weather, low elevations remain usable
# satellite_state's pre-filter keeps every satellite within this of a platform's mask plane
PREFILTER_MARGIN_M = 1000.0
ISL_GRAZING_ALTITUDE_M = 80 * KM  # assumption: keep ISL chords above the mesosphere
FIBER_QKD_MAX_M = 100 * KM  # main paper sec. III-A: quantum channels on fibre below ~100 km
# The edges to a satellite from below exist while the satellite is at or above these masks (seen
# from the OGS or the HAPS): the engine locates the instant a link sets against them.
SPACE_EDGE_MASK_RAD = MappingProxyType(
    {
        EdgeKind.FSO_GROUND_SPACE: FSO_MASK_RAD,
        EdgeKind.RF_KA: RF_MASK_RAD,
        EdgeKind.FSO_HAPS_SPACE: HAPS_SPACE_MASK_RAD,
    }
)
FIBER_CAPACITY_BPS = 100e9  # assumption: one 100G coherent wavelength per fibre edge
FSO_CAPACITY_BPS = 10e9  # assumption: optical ground-space / HAPS terminals, 10 Gb/s class
ISL_CAPACITY_BPS = 10e9  # assumption: Tesat SCOT80-class optical ISL, 10 Gb/s
RF_KA_CAPACITY_BPS = 1e9  # assumption: a Ka-band feeder link of ~500 MHz at ~2 bit/s/Hz
# Fibre QKD terminals (decoy BB84 over SMF): a commercial-class system (assumption: 1 GHz
# source, 0.8-efficient SNSPDs at 100 Hz dark counts, 1.5 % misalignment, f = 1.16).
FIBER_QKD = dict(
    repetition_rate_hz=1e9,
    detector_efficiency=0.8,
    dark_count_rate_hz=100.0,
    n_detectors=4,
    gate_width_s=0.1e-9,
    misalignment_error=0.015,
    f_ec=1.16,
    mu_signal=0.5,
    decoys=(0.1, 0.0),
)


def preset_from_equipment(
    equipment, *, name: str, kind: str, platform_altitude_m: float, ground_altitude_m: float = 0.0
) -> LinkPreset:
    """A :class:`LinkPreset` from a scenario's ``OpticalLinkEquipment`` (same meanings)."""
    wavelength_m = equipment.wavelength_m
    tx = Terminal(
        aperture_diameter_m=equipment.tx_aperture_m,
        wavelength_m=wavelength_m,
        divergence_half_angle_rad=equipment.divergence_half_angle_rad,
        optical_efficiency=equipment.tx_optical_efficiency,
        pointing_jitter_rms_rad=equipment.pointing_jitter_rms_rad,
    )
    rx = Terminal(
        aperture_diameter_m=equipment.rx_aperture_m,
        wavelength_m=wavelength_m,
        obscuration_diameter_m=equipment.rx_obscuration_m,
        optical_efficiency=equipment.rx_optical_efficiency,
        coupling_efficiency=equipment.coupling_efficiency,
        detector_efficiency=equipment.detector_efficiency,
        field_of_view_full_angle_rad=equipment.rx_field_of_view_rad,
    )
    return LinkPreset(
        name=name,
        description=f"scenario equipment for {kind} links",
        kind=kind,
        tx=tx,
        rx=rx,
        platform_altitude_m=platform_altitude_m,
        ground_altitude_m=ground_altitude_m,
        repetition_rate_hz=equipment.repetition_rate_hz,
        mu_signal=equipment.mu_signal,
        decoys=(equipment.mu_decoy, equipment.mu_vacuum),
        signal_probability=equipment.signal_probability,
        dark_count_rate_hz=equipment.dark_count_rate_hz,
        n_detectors=equipment.n_detectors,
        background_count_rate_hz=equipment.background_count_rate_hz,
        gate_width_s=equipment.gate_width_s,
        misalignment_error=equipment.misalignment_error,
        f_ec=equipment.f_ec,
    )


@dataclass(frozen=True)
class Snapshot:
    """G(t) at one tick: node names (stable) and E edge arrays of shape (E,).

    Edges are undirected and listed once with ``a < b`` (node indices), sorted by (a, b, kind):
    the order is a function of the physics only, never of dict or set order.
    """

    t_ns: int
    node_names: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    kind: np.ndarray
    transmittance: np.ndarray
    latency_s: np.ndarray
    capacity_bps: np.ndarray
    skr_bps: np.ndarray
    fidelity: np.ndarray
    up: np.ndarray
    weather_loss_db: np.ndarray
    distance_m: np.ndarray
    """physical length of the link: fibre route length, or the straight line (latency x c)"""
    satellite_positions_m: np.ndarray | None = None
    """(3, S) ECEF positions (m) of the satellites at ``t_ns``, in node order (None: not kept)"""

    @property
    def n_nodes(self) -> int:
        return len(self.node_names)

    def to_csr(self, weight: str = "latency_s", *, quantum_only: bool = False) -> csr_matrix:
        """Symmetric sparse adjacency of the edges that are up, weighted by a field.

        ``quantum_only`` drops RF edges (no QKD) and edges with no key rate. When two edges
        join the same pair (fibre and FSO never do; FSO and RF between an OGS and a satellite
        do) the smaller weight wins.
        """
        mask = self.up.copy()
        if quantum_only:
            mask &= (self.kind != EdgeKind.RF_KA) & (self.skr_bps > 0)
        w = getattr(self, weight)[mask]
        a, b = self.a[mask], self.b[mask]
        # keep the minimum weight per pair: sort by weight, keep first occurrence per pair
        order = np.lexsort((w, b, a))
        a, b, w = a[order], b[order], w[order]
        first = np.ones(a.size, dtype=bool)
        first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        a, b, w = a[first], b[first], w[first]
        rows = np.concatenate([a, b])
        cols = np.concatenate([b, a])
        # csgraph treats explicit zeros as missing edges: a zero weight becomes tiny
        data = np.maximum(np.concatenate([w, w]), 1e-15)
        n = self.n_nodes
        return csr_matrix((data, (rows, cols)), shape=(n, n))


@dataclass
class _EdgeBatch:
    """Edges of one kind, accumulated before the snapshot is sorted.

    ``a`` and ``b`` are (n,) int64; every other field is an (n,) array or one scalar for all n
    edges (written once into the snapshot's arrays by ``_assemble``, never broadcast here).
    """

    a: np.ndarray
    b: np.ndarray
    kind: int
    transmittance: np.ndarray | float
    latency_s: np.ndarray | float
    capacity_bps: np.ndarray | float
    skr_bps: np.ndarray | float
    fidelity: np.ndarray | float
    up: np.ndarray | bool
    weather_loss_db: np.ndarray | float
    distance_m: np.ndarray | float


# the snapshot's float fields, in Snapshot order (``up`` is the one bool field)
_FLOAT_FIELDS = (
    "transmittance",
    "latency_s",
    "capacity_bps",
    "skr_bps",
    "fidelity",
    "weather_loss_db",
    "distance_m",
)


@dataclass(frozen=True)
class _OgsHapsPairs:
    ogs: np.ndarray  # index into the OGS list
    haps: np.ndarray  # index into the HAPS list
    zenith_rad: np.ndarray
    latency_s: np.ndarray
    clear_transmittance: np.ndarray
    preset: LinkPreset
    key_rate: _KeyRate  # qkd_terms(preset, .)'s key rate, the preset checked once


def _batch(a, b, kind, *, transmittance, latency_s, capacity_bps, skr_bps, fidelity, up,
           weather_loss_db=0.0, distance_m=None) -> _EdgeBatch:  # fmt: skip
    a = np.asarray(a, dtype=np.int64)
    n = a.size

    def field(x, dtype=float):
        # a scalar stays a scalar (filled into the snapshot once); an array must be (n,)
        x = np.asarray(x, dtype=dtype)
        if x.ndim == 0:
            return x[()]
        if x.shape != (n,):
            raise AssertionError(f"edge field of shape {x.shape} in a batch of {n} edges")
        return x

    return _EdgeBatch(
        a=a,
        b=np.asarray(b, dtype=np.int64),
        kind=int(kind),
        transmittance=field(transmittance),
        latency_s=field(latency_s),
        capacity_bps=field(capacity_bps),
        skr_bps=field(skr_bps),
        fidelity=field(fidelity),
        up=field(up, bool),
        weather_loss_db=field(weather_loss_db),
        distance_m=field(
            np.asarray(latency_s) * SPEED_OF_LIGHT_M_PER_S if distance_m is None else distance_m
        ),
    )


class _IslBudget:
    """:func:`_isl_budget` of one preset, the equipment checked once: the terminals and QKD
    settings of the ISLs are fixed for a run, so only the ranges are checked per tick, and the
    same operations on the same values give the same three fields bit for bit (pinned by
    ``tests/twin/network/test_topology.py``)."""

    def __init__(self, preset: LinkPreset) -> None:
        self.preset = preset
        self._channel = _FixedTerminals(preset.kind, preset.tx, preset.rx)
        self._key_rate = _KeyRate(preset)

    def __call__(self, range_m: np.ndarray):
        rng = np.asarray(range_m, dtype=float)
        if not (rng.size and rng.min() > 0.0 and np.isfinite(rng.max())):
            return _isl_budget(self.preset, rng)  # raises for bad ranges, as it always did
        total, transmittance = self._channel.vacuum(rng)
        skr = self._key_rate.skr_bps(total)
        return total + 0.0, transmittance + 0.0, skr + 0.0


def _isl_budget(preset: LinkPreset, range_m: np.ndarray):
    """``(transmittance, channel_transmittance, skr_bps)`` of ISLs at ``range_m`` (K,).

    The three fields of ``compute_link_budget(preset, range_m=range_m, fade_margin=False)``
    that G(t) keeps, computed by the same calls on the same arrays (vacuum: no atmosphere, no
    turbulence), so bit for bit the same values, without the dozen loss terms in dB a tick
    never reads (``tests/twin/network/test_topology.py`` pins the equality).
    """
    rng = np.asarray(range_m, dtype=float)
    if np.any(rng <= 0):
        raise ValueError(f"range_m must be > 0 (metres), got {rng}")
    ch = fso_channel(
        preset.kind,
        preset.tx,
        preset.rx,
        rng,
        atmospheric_transmittance=np.ones(rng.shape),
        turbulence_efficiency=np.ones(rng.shape),
    )
    total = ch.total
    _, _, _, skr = qkd_terms(preset, total)
    # "+ 0.0" as LinkBudget's fields have it (a -0.0 becomes 0.0)
    return total + 0.0, ch.transmittance + 0.0, np.asarray(skr, dtype=float) + 0.0


def _entanglement_fidelity(channel_transmittance) -> np.ndarray:
    """Fidelity of a Bell pair whose photon crossed the channel (SPARQ: gamma = 1 - eta)."""
    eta = np.clip(np.asarray(channel_transmittance, dtype=float), 0.0, 1.0)
    return amplitude_damping_fidelity(1.0 - eta)


class TopologyModel:
    """Builds G(t) for a scenario, one :meth:`snapshot` per tick (pure: same t, same graph)."""

    def __init__(self, scenario) -> None:
        self.scenario = scenario
        sites = list(scenario.sites)
        self._sites = sites
        self._ogs = np.array([i for i, s in enumerate(sites) if s.kind == "ogs"], dtype=np.int64)
        self._haps = list(scenario.haps)
        self._epoch = jd_fr_from_datetime(scenario.time.start_utc)

        sats, names = [], []
        self._sat_plane: list[tuple[int, int, int]] = []  # (shell, plane, slot) per satellite
        for shell_index, constellation in enumerate(scenario.constellations):
            if constellation.walker is not None:
                w = constellation.walker
                shell = walker_delta(
                    w.inclination_rad,
                    w.total,
                    w.planes,
                    w.phasing,
                    constellation.altitude_m,
                    scenario.time.start_utc,
                )
                members = shell.satellites
                planes = [(shell_index, int(p), int(s)) for p, s in
                          zip(shell.plane_index, shell.slot_index, strict=True)]  # fmt: skip
            else:
                entries = (
                    load_tle_file(constellation.tle_file)
                    if constellation.tle_file is not None
                    else parse_omm_text(
                        constellation.omm_file.read_text(), source=str(constellation.omm_file)
                    )
                )
                members = [e.satrec for e in entries]
                planes = [(shell_index, -1, k) for k in range(len(members))]
            width = len(str(max(len(members) - 1, 0)))
            names += [f"{constellation.name}-{k:0{width}d}" for k in range(len(members))]
            sats += members
            self._sat_plane += planes
        self._n_sats = len(sats)
        self._propagator = ConstellationPropagator(sats) if sats else None

        self.node_names: tuple[str, ...] = tuple(
            [s.name for s in sites] + [h.name for h in self._haps] + names
        )
        if len(set(self.node_names)) != len(self.node_names):
            raise ValueError("node names must be unique across sites, HAPS and satellites")
        self._haps_offset = len(sites)
        self._sat_offset = len(sites) + len(self._haps)

        equipment = scenario.equipment
        sat_altitudes = [c.altitude_m for c in scenario.constellations if c.altitude_m]
        self._sat_altitude_m = float(np.median(sat_altitudes)) if sat_altitudes else 550 * KM
        self._weather = SiteWeather(scenario.weather, sites, equipment.optical.sat_ogs.wavelength_m)
        ogs_alt = np.array([sites[i].altitude_m for i in self._ogs], dtype=float)
        self._ogs_geometry = (
            SiteGeometry(
                np.array([sites[i].lat_rad for i in self._ogs]),
                np.array([sites[i].lon_rad for i in self._ogs]),
                ogs_alt,
            )
            if self._ogs.size
            else None
        )
        self._ogs_alt = ogs_alt
        self._ogs_row = {int(node): k for k, node in enumerate(self._ogs)}  # node -> OGS row
        self._sat_ogs_preset = preset_from_equipment(
            equipment.optical.sat_ogs,
            name="sat-ogs",
            kind="downlink",
            platform_altitude_m=self._sat_altitude_m,
        )
        # one budget table per HV ground-Cn2 condition (background, and each turbulence event)
        self._tables: dict[float, LinkBudgetTable] = {}
        self._isl_preset = (
            preset_from_equipment(
                equipment.optical.isl,
                name="isl",
                kind="isl",
                platform_altitude_m=self._sat_altitude_m + 1.0,
            )  # fmt: skip
            if equipment.optical.isl is not None
            else None
        )
        self._isl_budget = _IslBudget(self._isl_preset) if self._isl_preset is not None else None
        self._isl_pairs = self._isl_neighbours()
        self._isl_a = self._sat_offset + self._isl_pairs[:, 0]
        self._isl_b = self._sat_offset + self._isl_pairs[:, 1]
        self._fiber = self._fiber_edges()
        # HAPS hold their stations (drift is small against link ranges; the physics layer's
        # haps_drift can move them once the engine draws drift per run seed)
        haps_alt = np.array([h.altitude_m for h in self._haps], dtype=float)
        self._haps_geometry = (
            SiteGeometry(
                np.array([h.lat_rad for h in self._haps]),
                np.array([h.lon_rad for h in self._haps]),
                haps_alt,
            )
            if self._haps
            else None
        )
        self._haps_alt = haps_alt
        self._ogs_haps = self._ogs_haps_pairs(haps_alt)
        self._ogs_haps_last: tuple[bytes, _EdgeBatch] | None = None  # (weather key, edges)
        self._sat_haps_table = (
            LinkBudgetTable(
                preset_from_equipment(
                    equipment.optical.sat_haps,
                    name="sat-haps",
                    kind="space-haps",
                    platform_altitude_m=self._sat_altitude_m,
                ),  # fmt: skip
                haps_alt,
                min_elevation_rad=HAPS_SPACE_MASK_RAD,
            )
            if self._haps and equipment.optical.sat_haps is not None
            else None
        )

    def placement_units(self) -> list[str]:
        """Each node's unit of placement for the Ray runtime (actors.placement), node order:
        a site its ground region (its OGS diversity cluster, else its jurisdiction, else
        itself), every HAPS 'haps', a satellite its orbital plane (a catalogue satellite, whose
        plane is not known, itself)."""
        units = []
        for site in self.scenario.sites:
            region = site.cluster or site.jurisdiction or site.name
            units.append(f"region:{region}")
        units += ["haps"] * len(self._haps)
        for name, (shell, plane, _) in zip(
            self.node_names[self._sat_offset :], self._sat_plane, strict=True
        ):
            units.append(f"plane:{shell}:{plane}" if plane >= 0 else f"satellite:{name}")
        return units

    @property
    def haps_offset(self) -> int:
        """Node index of the first HAPS (node order: sites, HAPS, satellites); the number of
        ground sites."""
        return self._haps_offset

    @property
    def satellite_offset(self) -> int:
        """Node index of the first satellite (node order: sites, HAPS, satellites); the
        number of ground sites plus HAPS."""
        return self._sat_offset

    # --- static parts ------------------------------------------------------------------------

    def _index(self, name: str) -> int:
        return self.node_names.index(name)

    def _fiber_edges(self) -> _EdgeBatch:
        a, b, length, band = [], [], [], []
        for edge in self.scenario.fiber.edges:
            i, j = sorted((self._index(edge.a), self._index(edge.b)))
            a.append(i)
            b.append(j)
            length.append(self.scenario.fiber_length_m(edge))
            band.append(O_BAND if edge.band == "O" else C_BAND)
        length_m = np.array(length, dtype=float)
        alpha_db_per_km = np.array([x.attenuation_db_per_km for x in band], dtype=float)
        group_index = np.array([x.group_index for x in band], dtype=float)
        eta = fiber_transmittance(length_m, alpha_db_per_km)
        latency = fiber_latency_s(length_m, group_index)
        fiber_link = dataclasses.replace(
            self._sat_ogs_preset,
            **{k: v for k, v in FIBER_QKD.items() if k != "detector_efficiency"},
        )
        detector = FIBER_QKD["detector_efficiency"]
        # QKD runs over spans up to FIBER_QKD_MAX_M, or over the segments of a trusted-relay
        # chain when the backbone has one (the span's key rate is one segment's)
        spacing_m = self.scenario.fiber.trusted_relay_spacing_m
        segments = np.ones(length_m.size)
        if spacing_m is not None:
            segments = np.maximum(1.0, np.ceil(length_m / spacing_m))
        segment_m = length_m / segments
        segment_eta = fiber_transmittance(segment_m, alpha_db_per_km)
        qkd_eta = segment_eta * detector
        _, _, _, skr = qkd_terms(fiber_link, qkd_eta) if eta.size else (0, 0, 0, eta)
        skr = np.where(segment_m <= FIBER_QKD_MAX_M, skr, 0.0)
        return _batch(
            a, b, EdgeKind.FIBER,
            transmittance=eta * detector, latency_s=latency, capacity_bps=FIBER_CAPACITY_BPS,
            skr_bps=skr, fidelity=_entanglement_fidelity(eta), up=True, distance_m=length_m,
        )  # fmt: skip

    def _isl_neighbours(self) -> np.ndarray:
        """(K, 2) satellite index pairs: in-plane ring neighbours and next-plane same slot."""
        by_key = {key: k for k, key in enumerate(self._sat_plane)}
        # satellites per (shell, plane) and planes per shell, counted once (counted again for
        # each satellite, mega's TopologyModel took 0.17 s, 0.07 s now: the planner builds a
        # topology of its own on its first plan, while the engine ticks)
        per_plane_of: dict[tuple, int] = {}
        planes_of: dict = {}
        for shell, plane, _ in self._sat_plane:
            per_plane_of[shell, plane] = per_plane_of.get((shell, plane), 0) + 1
            planes_of[shell] = max(planes_of.get(shell, plane), plane)
        pairs = set()
        for k, (shell, plane, slot) in enumerate(self._sat_plane):
            if plane < 0:
                continue
            per_plane = per_plane_of[shell, plane]
            planes = 1 + planes_of[shell]
            ring_next = (shell, plane, (slot + 1) % per_plane)
            next_plane = (shell, (plane + 1) % planes, slot)
            for other in (ring_next, next_plane):
                j = by_key.get(other)
                if j is not None and j != k:
                    pairs.add((min(k, j), max(k, j)))
        return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)

    def _ogs_haps_pairs(self, haps_alt: np.ndarray) -> _OgsHapsPairs | None:
        """OGS-HAPS pairs above the optical mask, budgeted once in clear air (the platforms
        hold their stations, so the geometry is fixed; only the weather changes per tick)."""
        optical = self.scenario.equipment.optical
        if not self._haps or optical.haps_ogs is None or not self._ogs.size:
            return None
        sites = self._sites
        haps_pos = haps_states_ecef(
            np.array([h.lat_rad for h in self._haps]),
            np.array([h.lon_rad for h in self._haps]),
            haps_alt,
            np.zeros(1),
        ).position_m[:, :, 0]
        look = look_angles(
            np.array([sites[i].lat_rad for i in self._ogs])[:, None],
            np.array([sites[i].lon_rad for i in self._ogs])[:, None],
            self._ogs_alt[:, None],
            haps_pos[:, None, :],
        )
        ogs, haps = np.nonzero(look.elevation_rad >= FSO_MASK_RAD)
        preset = preset_from_equipment(
            optical.haps_ogs, name="haps-ogs", kind="ground-haps",
            platform_altitude_m=float(np.max(haps_alt)),
        )  # fmt: skip
        eta = np.empty(ogs.size)
        for k, (o, h) in enumerate(zip(ogs, haps, strict=True)):
            link = dataclasses.replace(
                preset, platform_altitude_m=float(haps_alt[h]),
                ground_altitude_m=float(self._ogs_alt[o]),
            )  # fmt: skip
            budget = compute_link_budget(
                link, elevation_rad=float(look.elevation_rad[o, h]), fade_margin=False
            )
            eta[k] = float(budget.transmittance)
        return _OgsHapsPairs(
            ogs=ogs,
            haps=haps,
            zenith_rad=np.pi / 2 - look.elevation_rad[ogs, haps],
            latency_s=look.slant_range_m[ogs, haps] / SPEED_OF_LIGHT_M_PER_S,
            clear_transmittance=eta,
            preset=preset,
            key_rate=_KeyRate(preset),
        )

    @property
    def weather(self) -> SiteWeather:
        """The scenario's weather at the sites (site order)."""
        return self._weather

    def _table(self, ground_cn2: float) -> LinkBudgetTable:
        table = self._tables.get(ground_cn2)
        if table is None:
            preset = dataclasses.replace(self._sat_ogs_preset, hv_ground_cn2_m_minus_2_3=ground_cn2)
            table = LinkBudgetTable(preset, self._ogs_alt, min_elevation_rad=FSO_MASK_RAD)
            self._tables[ground_cn2] = table
        return table

    # --- per tick ----------------------------------------------------------------------------

    def snapshot(self, t_ns: int) -> Snapshot:
        t_s = t_ns / NS_PER_S
        jd, fr = (float(x) for x in jd_fr_add_seconds(*self._epoch, t_s))
        batches = [self._fiber]
        sat_pos = self._propagator.positions_ecef_m(jd, fr) if self._propagator else None
        # kept for the energy model of the same tick (sunlight at each satellite)
        self.satellite_positions_m = sat_pos if sat_pos is not None else np.zeros((3, 0))
        if sat_pos is not None and self._ogs_geometry is not None:
            batches += self._ground_space(t_s, sat_pos)
        if sat_pos is not None and self._isl_preset is not None and self._isl_pairs.size:
            batches.append(self._isl(sat_pos))
        if self._haps:
            batches += self._haps_edges(t_s, sat_pos)
        return self._assemble(t_ns, batches, self.satellite_positions_m)

    @property
    def sat_ogs_wavelength_m(self) -> float:
        """The optical ground-space links' wavelength (equipment.optical.sat_ogs)."""
        return float(self._sat_ogs_preset.tx.wavelength_m)

    @property
    def epoch(self) -> tuple[float, float]:
        """The scenario's start as a (Julian day, fraction) pair (twin.physics.orbits)."""
        return self._epoch

    def satellite_state(self, t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """What a planner predicts from the orbits alone at ``t_ns`` (no snapshot built): the
        satellites' (3, S) ECEF positions (m) and (S,) whether each sees an optical ground
        station or HAPS above its FSO mask (weather aside: a forecast, not G(t)). The
        visibility test is the snapshot's (``SiteGeometry``'s sine of elevation)."""
        if self._propagator is None:
            return np.zeros((3, 0)), np.zeros(0, dtype=bool)
        positions = self.satellite_positions_m_at(t_ns)
        contact = np.zeros(self._n_sats, dtype=bool)
        # the exact test only for the satellites that may pass it: a planner forecasts an
        # hour at 180 instants, and on mega (40 platforms, 1584 satellites) most satellites
        # are below every platform's mask (the test 1.2 -> 0.2 ms an instant)
        near = self._may_see_a_platform(positions)
        if near.any():
            for _, elevation, mask in self.ground_elevations_rad(positions[:, near]):
                contact[near] |= np.any(elevation >= mask, axis=0)
        return positions, contact

    def _may_see_a_platform(self, positions_m: np.ndarray) -> np.ndarray:
        """(S,) bool, conservative: False only for satellites no optical platform (OGS,
        HAPS) can see above its mask. Elevation ``e`` above the mask needs ``up . rho =
        |rho| sin(e) >= |rho| sin(mask)``, and ``|rho| >= |r_sat| - |r_site|`` (triangle
        inequality) ``>= min |r_sat| - |r_site|``; checked with a kilometre to spare, so no
        rounding of this cheaper arithmetic (one small matrix product) can drop a satellite
        the exact test keeps."""
        near = np.zeros(positions_m.shape[1], dtype=bool)
        if not near.size:
            return near
        lowest_m = float(np.nanmin(np.sqrt(np.einsum("in,in->n", positions_m, positions_m))))
        for geometry, _, mask in self._optical_platforms():
            up_site = np.einsum("si,is->s", geometry.up, geometry.ecef_m)
            site_radius = np.sqrt(np.einsum("is,is->s", geometry.ecef_m, geometry.ecef_m))
            least = up_site + np.maximum(lowest_m - site_radius, 0.0) * math.sin(mask)
            near |= np.any(geometry.up @ positions_m >= (least - PREFILTER_MARGIN_M)[:, None], 0)
        return near

    def satellite_positions_m_at(self, t_ns: int) -> np.ndarray:
        """(3, S) ECEF positions (m) of the satellites at ``t_ns``, from the orbits alone."""
        jd, fr = (float(x) for x in jd_fr_add_seconds(*self._epoch, t_ns / NS_PER_S))
        return self._propagator.positions_ecef_m(jd, fr)

    def _optical_platforms(self) -> list:
        """(SiteGeometry, node indices, FSO mask) of the OGS, then the HAPS (those present)."""
        return [
            (geometry, nodes, mask)
            for geometry, nodes, mask in (
                (self._ogs_geometry, self._ogs, SPACE_EDGE_MASK_RAD[EdgeKind.FSO_GROUND_SPACE]),
                (
                    self._haps_geometry,
                    self._haps_offset + np.arange(len(self._haps)),
                    SPACE_EDGE_MASK_RAD[EdgeKind.FSO_HAPS_SPACE],
                ),
            )  # fmt: skip
            if geometry is not None
        ]

    def ground_elevations_rad(self, positions_m: np.ndarray) -> list:
        """Per kind of optical platform below the satellites (the OGS, then the HAPS): its
        node indices (L,), the (L, S) elevation of every satellite at ``positions_m`` seen
        from each, and its FSO mask (rad)."""
        out = []
        for geometry, nodes, mask in self._optical_platforms():
            rho = positions_m[:, None, :] - geometry.ecef_m[:, :, None]  # (3, sites, S)
            up = np.einsum("si,isn->sn", geometry.up, rho)
            sin_el = up / np.sqrt(np.einsum("isn,isn->sn", rho, rho))
            out.append((np.asarray(nodes, dtype=np.int64), np.arcsin(np.clip(sin_el, -1, 1)), mask))
        return out

    def elevation_rad(self, snapshot: Snapshot, lower, upper) -> np.ndarray:
        """Elevation (rad) of satellites ``upper`` seen from OGS or HAPS nodes ``lower`` at the
        snapshot's time, for any pair, visible or not.

        ``lower`` and ``upper`` are (N,) node indices (an OGS or a HAPS; a satellite); returns
        (N,). ``sin(elevation) = up . rho / |rho|`` with ``rho`` the site-to-satellite vector,
        as in the visibility test that creates the edges (``SiteGeometry.visible_pairs``), so
        an edge of kind ``k`` between the pair is in the snapshot when this elevation is at or
        above ``SPACE_EDGE_MASK_RAD[k]`` (up to rounding). Two snapshots' values locate the
        instant a link set (``twin.network.handover.predict_crossing_ns``).
        """
        lower = np.atleast_1d(np.asarray(lower, dtype=np.int64))
        upper = np.atleast_1d(np.asarray(upper, dtype=np.int64))
        if lower.shape != upper.shape or lower.ndim != 1:
            raise ValueError(
                f"lower and upper must be (N,) node indices of one shape, got {lower.shape} "
                f"and {upper.shape}"
            )
        positions = snapshot.satellite_positions_m
        sat = upper - self._sat_offset
        if positions is None or np.any((sat < 0) | (sat >= self._n_sats)):
            raise ValueError(
                f"upper must be satellite nodes of a snapshot that kept their positions, got "
                f"{upper.tolist()}"
            )
        site_ecef = np.empty((3, lower.size))
        site_up = np.empty((lower.size, 3))
        ogs_row = self._ogs_row
        for i, node in enumerate(lower.tolist()):
            if node in ogs_row:
                geometry, k = self._ogs_geometry, ogs_row[node]
            elif self._haps_offset <= node < self._sat_offset:
                geometry, k = self._haps_geometry, node - self._haps_offset
            else:
                raise ValueError(
                    f"lower node {node} ({self.node_names[node]!r}) is neither an OGS nor a HAPS"
                )
            site_ecef[:, i] = geometry.ecef_m[:, k]
            site_up[i] = geometry.up[k]
        rho = positions[:, sat] - site_ecef
        u = np.einsum("ni,in->n", site_up, rho)
        slant_m = np.sqrt(np.einsum("in,in->n", rho, rho))
        return np.arcsin(np.clip(u / slant_m, -1.0, 1.0))

    def _ground_space(self, t_s: float, sat_pos: np.ndarray) -> list[_EdgeBatch]:
        out = []
        rf = self._ogs_geometry.visible_pairs(sat_pos, RF_MASK_RAD)
        ogs_node = self._ogs[rf.site_index]
        sat_node = self._sat_offset + rf.satellite_index
        latency = rf.slant_range_m / SPEED_OF_LIGHT_M_PER_S
        out.append(
            _batch(
                ogs_node,
                sat_node,
                EdgeKind.RF_KA,
                transmittance=0.0,
                latency_s=latency,
                capacity_bps=RF_KA_CAPACITY_BPS,
                skr_bps=0.0,
                fidelity=0.0,
                up=True,
            )  # fmt: skip
        )
        optical = rf.elevation_rad >= FSO_MASK_RAD
        if not np.any(optical):
            return out
        site = rf.site_index[optical]
        el = rf.elevation_rad[optical]
        rng = rf.slant_range_m[optical]
        weather_db = self._weather.extra_loss_db(
            t_s, self._ogs[site], np.pi / 2 - el, self._ogs_alt[site]
        )
        cn2 = self._weather.ground_cn2(t_s)[self._ogs[site]]
        # the table's evaluate(...).total_loss_db and .skr_bps, without the QBER it also gives
        if np.all(cn2 == cn2[0]):
            # one turbulence condition over every site (no event running): one table
            table = self._table(float(cn2[0]))
            total_db = table._total_loss_db(site, el, rng, weather_db)
            skr = table._skr_bps(total_db)
        else:
            total_db = np.empty(el.size)
            skr = np.empty(el.size)
            for value in np.unique(cn2):
                m = cn2 == value
                table = self._table(float(value))
                total_db[m] = table._total_loss_db(site[m], el[m], rng[m], weather_db[m])
                skr[m] = table._skr_bps(total_db[m])
        up = weather_db <= self._weather.block_threshold_db
        eta = 10.0 ** (-total_db / 10)
        out.append(
            _batch(
                self._ogs[site],
                self._sat_offset + rf.satellite_index[optical],
                EdgeKind.FSO_GROUND_SPACE,
                transmittance=eta,
                latency_s=latency[optical],
                capacity_bps=FSO_CAPACITY_BPS,
                skr_bps=np.where(up, skr, 0.0),
                fidelity=_entanglement_fidelity(eta / self._sat_ogs_preset.rx.detector_efficiency),
                up=up,
                weather_loss_db=weather_db,
            )  # fmt: skip
        )
        return out

    def _isl(self, sat_pos: np.ndarray) -> _EdgeBatch:
        i, j = self._isl_pairs[:, 0], self._isl_pairs[:, 1]
        r1, r2 = sat_pos.take(i, axis=1), sat_pos.take(j, axis=1)  # = sat_pos[:, i], faster
        range_m = np.linalg.norm(r1 - r2, axis=0)
        # line_of_sight_clear for the pairs a cheap bound cannot clear (usually none)
        radius_m = np.sqrt(np.einsum("ij,ij->j", sat_pos, sat_pos))
        clear = chords_surely_clear(
            np.minimum(radius_m.take(i), radius_m.take(j)), range_m, ISL_GRAZING_ALTITUDE_M
        )
        doubt = np.flatnonzero(~clear)
        if doubt.size:
            clear[doubt] = line_of_sight_clear(
                r1.take(doubt, axis=1), r2.take(doubt, axis=1), ISL_GRAZING_ALTITUDE_M
            )
        transmittance, channel_transmittance, skr_bps = self._isl_budget(range_m)
        return _batch(
            self._isl_a, self._isl_b, EdgeKind.ISL,
            transmittance=transmittance, latency_s=range_m / SPEED_OF_LIGHT_M_PER_S,
            capacity_bps=ISL_CAPACITY_BPS, skr_bps=np.where(clear, skr_bps, 0.0),
            fidelity=_entanglement_fidelity(channel_transmittance), up=clear,
        )  # fmt: skip

    def _haps_edges(self, t_s: float, sat_pos: np.ndarray | None) -> list[_EdgeBatch]:
        """OGS-HAPS and HAPS-satellite links (equipment permitting), budgeted one by one."""
        out = []
        optical = self.scenario.equipment.optical
        if self._ogs_haps is not None:
            pairs = self._ogs_haps
            weather_db = self._weather.extra_loss_db(
                t_s, self._ogs[pairs.ogs], pairs.zenith_rad, self._ogs_alt[pairs.ogs],
                platform_altitude_m=self._haps_alt[pairs.haps],
            )  # fmt: skip
            out.append(self._ogs_haps_batch(pairs, weather_db))
        if self._sat_haps_table is not None and sat_pos is not None:
            vis = self._haps_geometry.visible_pairs(sat_pos, HAPS_SPACE_MASK_RAD)
            # the table's evaluate(...).transmittance and .skr_bps, without the QBER
            table = self._sat_haps_table
            total_db = table._total_loss_db(vis.site_index, vis.elevation_rad, vis.slant_range_m)
            transmittance = db_to_linear(total_db)
            detector = optical.sat_haps.detector_efficiency
            out.append(
                _batch(
                    self._haps_offset + vis.site_index,
                    self._sat_offset + vis.satellite_index,
                    EdgeKind.FSO_HAPS_SPACE,
                    transmittance=transmittance,
                    latency_s=vis.slant_range_m / SPEED_OF_LIGHT_M_PER_S,
                    capacity_bps=FSO_CAPACITY_BPS,
                    skr_bps=table._skr_bps(total_db),
                    fidelity=_entanglement_fidelity(transmittance / detector),
                    up=True,
                )  # fmt: skip
            )
        return out

    def _ogs_haps_batch(self, pairs: _OgsHapsPairs, weather_db: np.ndarray) -> _EdgeBatch:
        """The OGS-HAPS edges under ``weather_db`` (K,): the geometry is fixed, so the edges
        are a function of the weather alone, and the last tick's are reused while it holds
        (most ticks: the weather over a site changes slowly or not at all)."""
        key = weather_db.tobytes()
        if self._ogs_haps_last is not None and self._ogs_haps_last[0] == key:
            return self._ogs_haps_last[1]
        up = weather_db <= self._weather.block_threshold_db
        eta = pairs.clear_transmittance * 10.0 ** (-weather_db / 10)
        skr = pairs.key_rate.skr_bps(eta)
        batch = _batch(
            self._ogs[pairs.ogs],
            self._haps_offset + pairs.haps,
            EdgeKind.FSO_GROUND_HAPS,
            transmittance=eta,
            latency_s=pairs.latency_s,
            capacity_bps=FSO_CAPACITY_BPS,
            skr_bps=np.where(up, skr, 0.0),
            fidelity=_entanglement_fidelity(eta / pairs.preset.rx.detector_efficiency),
            up=up,
            weather_loss_db=weather_db,
        )
        # batches are read, never written (_assemble copies them into each snapshot)
        self._ogs_haps_last = (key, batch)
        return batch

    def _assemble(
        self, t_ns: int, batches: list[_EdgeBatch], satellite_positions_m: np.ndarray | None = None
    ) -> Snapshot:
        sizes = [x.a.size for x in batches]
        n_edges = sum(sizes)
        a = np.concatenate([x.a for x in batches]) if batches else np.zeros(0, np.int64)
        b = np.concatenate([x.b for x in batches]) if batches else np.zeros(0, np.int64)
        kind = np.repeat(np.array([x.kind for x in batches], dtype=np.int8), sizes)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        # sort by (lo, hi, kind), stable: one int64 key, lexicographic since hi < N and kind < 8;
        # the batches arrive in runs already sorted (ISL pairs, site-major visibility), which a
        # stable sort merges, and a key already in order needs no permutation at all
        key = (lo * len(self.node_names) + hi) * _KIND_SPAN + kind
        order = None if np.all(key[1:] >= key[:-1]) else np.argsort(key, kind="stable")

        def column(field: str, dtype=float) -> np.ndarray:
            out = np.empty(n_edges, dtype=dtype)
            start = 0
            for batch, size in zip(batches, sizes, strict=True):
                out[start : start + size] = getattr(batch, field)
                start += size
            return out if order is None else out[order]

        if order is not None:
            lo, hi, kind = lo[order], hi[order], kind[order]
        return Snapshot(
            t_ns=int(t_ns),
            node_names=self.node_names,
            a=lo,
            b=hi,
            kind=kind,
            up=column("up", bool),
            satellite_positions_m=satellite_positions_m,
            **{field: column(field) for field in _FLOAT_FIELDS},
        )
