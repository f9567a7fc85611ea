"""The scenario schema: what a scenario YAML file may say, checked by pydantic v2.

Units live in the key names (``lat_deg``, ``altitude_m``, ``wavelength_nm``, ``battery_wh``):
scenario files are the boundary where people write degrees, nanometres and watt-hours; the
properties on these models (``lat_rad``, ``wavelength_m``, ``battery_capacity_j``...) hand SI
values to the model. Every model forbids unknown keys, so a misspelt key is an error, not a
silently ignored setting. Models are frozen: a loaded scenario is a value.

Cross-field rules (unique names, cluster membership and the OGS diversity-cluster separation,
fibre endpoints, weather-event sites and time windows) run after the fields are valid, and
report every violation at once with its field path (see :class:`ScenarioProblems`; the loader
turns them into readable messages).

Weather (:class:`Weather`) is a clear-air background plus events (cloud, fog, rain, snow,
turbulence), a discriminated union on ``kind``: each kind has its own fields, so an error names
the right one (``weather.events[1].rain_rate_mm_per_h``).

Traffic (:class:`Traffic`) lists flows in the four classes of the main paper's Table 1, with
demand components as a discriminated union on ``kind`` (constant, diurnal, on_off, window,
forecast). The models mirror the section that ``twin.network.traffic.flows_from_mapping``
reads; :meth:`Scenario.flows` hands the validated section to that function, and validation
runs it on every flow too, so a file that validates always builds its flows.
"""

from __future__ import annotations

import difflib
import math
import re
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from twin.control.objective import ObjectiveWeights
from twin.network.handover import HandoverParams
from twin.network.traffic import DAY_NS, Flow, TrafficClass, exact_rate_bps, flows_from_mapping
from twin.physics.carbon import grid_regions
from twin.physics.energy import (
    GROUND_NODE_J_PER_BIT,
    GroundStationPowerModel,
    HapsPowerModel,
    SatellitePowerModel,
)
from twin.physics.geometry import great_circle_distance_m as geometry_great_circle_distance_m
from twin.units import DEG, EARTH_MEAN_RADIUS_M, NM, NS, NS_PER_S, URAD, WH_J

__all__ = [
    "CloudEvent",
    "ConstantDemand",
    "Constellation",
    "Demand",
    "DiurnalDemand",
    "Equipment",
    "FiberBackbone",
    "FiberEdge",
    "FogEvent",
    "ForecastDemand",
    "Haps",
    "HapsEquipment",
    "HapsLoadsW",
    "OgsCluster",
    "OgsEquipment",
    "OnOffDemand",
    "OpticalLinkEquipment",
    "OpticalLinks",
    "Problem",
    "RainEvent",
    "SatelliteEquipment",
    "SatelliteLoadsW",
    "Scenario",
    "ScenarioProblems",
    "Site",
    "SiteKind",
    "SnowEvent",
    "TimeSpan",
    "Traffic",
    "TrafficClassName",
    "TrafficFlow",
    "TurbulenceEvent",
    "Walker",
    "Weather",
    "WeatherBackground",
    "WeatherEvent",
    "WeatherEventKind",
    "WindowDemand",
    "great_circle_distance_m",
]

# Main paper sec. III-A: "OGSs are deployed in diversity clusters (e.g., three stations
# separated by >50 km)".
DEFAULT_OGS_MIN_SEPARATION_M = 50_000.0

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_NAME_HELP = "letters, digits, '_', '.', '-' (no spaces), starting with a letter or digit"

SiteKind = Literal["factory", "port", "logistics_hub", "ogs", "iot_field"]


class Problem(NamedTuple):
    """One cross-field violation: where (a path of keys and list indices), what, and why."""

    loc: tuple[str | int, ...]
    value: Any
    message: str


class ScenarioProblems(ValueError):
    """Raised inside validation to report several located problems at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(p.message for p in self.problems))


def great_circle_distance_m(lat1_deg, lon1_deg, lat2_deg, lon2_deg) -> float:
    """Great-circle distance on the IUGG mean sphere, m, between points given in degrees (the
    scenario file's unit): :func:`twin.physics.geometry.great_circle_distance_m` at the boundary.

    Adequate for cluster separations and fibre route estimates (the ellipsoidal difference is
    < 0.5 %).
    """
    return float(
        geometry_great_circle_distance_m(
            lat1_deg * DEG, lon1_deg * DEG, lat2_deg * DEG, lon2_deg * DEG
        )
    )


def _site_names_help(name: str, site_names: list[str], limit: int = 12) -> str:
    """What a dangling site reference may be: the site names (the first few), close matches."""
    close = difflib.get_close_matches(name, site_names, n=3)
    if len(site_names) <= limit:
        text = f"one of the site names {', '.join(site_names)}"
    else:
        text = f"a name from sites ({len(site_names)} sites: {', '.join(site_names[:limit])}, ...)"
    if close:
        text += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False, strict=True
    )


def _name_field(description: str):
    return Field(min_length=1, max_length=64, pattern=NAME_PATTERN, description=description)


def _zoned(value, key: str):
    """A time given in the file must carry its zone: UTC written explicitly (ISO 8601)."""
    if isinstance(value, str):
        text = value.strip()
        if not re.search(r"(Z|[+-]\d\d:?\d\d)$", text):
            raise ValueError(
                f"{key} {value!r} has no time zone; write UTC explicitly, e.g. '{text}Z' (ISO 8601)"
            )
        return text
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{key} {value.isoformat()} has no time zone; give UTC")
    return value


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


class TimeSpan(_Strict):
    """Simulated time span: ``duration_s`` must be a whole number of ticks."""

    start_utc: datetime = Field(
        strict=False, description="start, ISO 8601 with an explicit zone, e.g. 2024-06-21T00:00:00Z"
    )
    duration_s: float = Field(gt=0, le=366 * 86_400, description="simulated span, s")
    tick_s: float = Field(gt=0, le=86_400, description="simulation step, s")

    @field_validator("start_utc", mode="before")
    @classmethod
    def _explicit_zone(cls, value):
        return _zoned(value, "start_utc")

    @model_validator(mode="after")
    def _whole_ticks(self) -> TimeSpan:
        n = self.duration_s / self.tick_s
        if abs(n - round(n)) > 1e-9 * max(n, 1.0):
            lo, hi = math.floor(n) * self.tick_s, math.ceil(n) * self.tick_s
            raise ScenarioProblems(
                [
                    Problem(
                        ("duration_s",),
                        self.duration_s,
                        f"duration_s ({self.duration_s:g}) must be a whole multiple of tick_s "
                        f"({self.tick_s:g}); allowed: e.g. {lo:g} or {hi:g}",
                    )
                ]
            )
        return self

    @property
    def n_ticks(self) -> int:
        """Number of ticks in the span."""
        return round(self.duration_s / self.tick_s)

    @property
    def end_utc(self) -> datetime:
        """End of the span."""
        return self.start_utc + timedelta(seconds=self.duration_s)

    @property
    def start_day_s(self) -> float:
        """Seconds from the UTC midnight before ``start_utc`` to it: simulated time ``t`` is
        ``start_day_s + t`` seconds after that midnight (the time of day the grid's carbon
        intensity follows, twin.physics.carbon)."""
        t = self.start_utc.astimezone(UTC)
        return t.hour * 3600.0 + t.minute * 60.0 + t.second + t.microsecond / 1e6


# --------------------------------------------------------------------------------------------
# Ground sites and clusters
# --------------------------------------------------------------------------------------------


class Site(_Strict):
    """A ground node: factory, port, logistics hub, optical ground station or IoT field."""

    name: str = _name_field("unique node name")
    lat_deg: float = Field(ge=-90, le=90, description="geodetic latitude, deg, north positive")
    lon_deg: float = Field(ge=-180, le=180, description="longitude, deg, east positive")
    altitude_m: float = Field(
        ge=-500, le=9_000, description="height above the WGS84 ellipsoid, m (Dead Sea to Everest)"
    )
    kind: SiteKind
    grid_region: str = Field(description="carbon-intensity region code (twin.physics.carbon)")
    jurisdiction: str = Field(
        pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code (or EU)"
    )
    cluster: str | None = Field(default=None, description="OGS diversity cluster, by name")

    @field_validator("grid_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        code = value.upper()
        known = grid_regions()
        if code not in known:
            raise ValueError(
                f"unknown grid_region {value!r}; allowed: one of {', '.join(known)} "
                f"(WORLD for a country without data)"
            )
        return code

    @property
    def lat_rad(self) -> float:
        return self.lat_deg * DEG

    @property
    def lon_rad(self) -> float:
        return self.lon_deg * DEG


class OgsCluster(_Strict):
    """A diversity cluster of OGS sites (main paper sec. III-A), to dodge correlated clouds.

    Members are the sites listed here plus the sites whose ``cluster`` names this cluster.
    Every pair must be at least ``min_separation_m`` apart (great circle).
    """

    name: str = _name_field("cluster name")
    members: list[str] = Field(default_factory=list, description="OGS site names")
    min_separation_m: float = Field(
        default=DEFAULT_OGS_MIN_SEPARATION_M,
        ge=0,
        le=5_000_000,
        description="minimum great-circle distance between members, m",
    )


# --------------------------------------------------------------------------------------------
# Space and air segments
# --------------------------------------------------------------------------------------------

_WALKER_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*:\s*(\d+)\s*/\s*(\d+)\s*/\s*(\d+)\s*$")


class Walker(_Strict):
    """Walker-Delta pattern i:T/P/F (Walker 1984, J. Br. Interplanet. Soc. 37, 559).

    T satellites in P equally spaced planes at inclination i; F in [0, P-1] sets the relative
    phase between adjacent planes (F * 360 / T deg). Written either as the string
    ``"53:1584/72/1"`` or as a mapping with the four keys below.
    """

    inclination_deg: float = Field(ge=0, le=180)
    total: int = Field(ge=1, le=100_000, description="T, satellites in the shell")
    planes: int = Field(ge=1, le=10_000, description="P, orbital planes")
    phasing: int = Field(ge=0, description="F, phasing factor in [0, P-1]")

    @model_validator(mode="before")
    @classmethod
    def _parse_string(cls, value):
        if isinstance(value, str):
            m = _WALKER_RE.match(value)
            if not m:
                raise ValueError(
                    f"walker must be 'i:T/P/F' (inclination_deg:total/planes/phasing), "
                    f"e.g. '53:1584/72/1'; got {value!r}"
                )
            return {
                "inclination_deg": float(m.group(1)),
                "total": int(m.group(2)),
                "planes": int(m.group(3)),
                "phasing": int(m.group(4)),
            }
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Walker:
        problems = []
        if self.total % self.planes:
            problems.append(
                Problem(
                    ("planes",),
                    self.planes,
                    f"total T={self.total} must be divisible by planes P={self.planes} "
                    f"(equal satellites per plane); allowed P: divisors of {self.total}",
                )
            )
        if not 0 <= self.phasing < self.planes:
            problems.append(
                Problem(
                    ("phasing",),
                    self.phasing,
                    f"phasing F={self.phasing} must be within [0, P-1] = [0, {self.planes - 1}]",
                )
            )
        if problems:
            raise ScenarioProblems(problems)
        return self

    def __str__(self) -> str:
        return f"{self.inclination_deg:g}:{self.total}/{self.planes}/{self.phasing}"

    @property
    def inclination_rad(self) -> float:
        return self.inclination_deg * DEG

    @property
    def per_plane(self) -> int:
        return self.total // self.planes


class Constellation(_Strict):
    """A satellite shell: a Walker-Delta pattern at ``altitude_m``, or a TLE or OMM file.

    File paths are relative to the scenario file; validation resolves them and checks they
    exist, and the loader then parses them with twin.physics.orbits (a malformed element set
    is reported with the file's line or record number).
    """

    name: str = _name_field("constellation name (satellites are named <name>-<index>)")
    walker: Walker | None = None
    altitude_m: float | None = Field(
        default=None,
        ge=150_000,
        le=40_000_000,
        description="circular-orbit altitude above the equatorial radius, m (walker only)",
    )
    tle_file: Path | None = Field(default=None, strict=False)
    omm_file: Path | None = Field(default=None, strict=False)

    @field_validator("tle_file", "omm_file")
    @classmethod
    def _resolve_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = (info.context or {}).get("base_dir")
        if base is None:
            return value
        path = value if value.is_absolute() else Path(base) / value
        if not path.is_file():
            raise ValueError(
                f"file {str(value)!r} not found (looked for {path}); paths are relative to "
                f"the scenario file"
            )
        return path.resolve()

    @model_validator(mode="after")
    def _one_source(self) -> Constellation:
        given = [k for k in ("walker", "tle_file", "omm_file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ScenarioProblems(
                [
                    Problem(
                        (),
                        given,
                        f"give exactly one of walker, tle_file, omm_file; got "
                        f"{', '.join(given) if given else 'none'}",
                    )
                ]
            )
        if self.walker is not None and self.altitude_m is None:
            raise ScenarioProblems(
                [Problem(("altitude_m",), None, "altitude_m is required with walker")]
            )
        if self.walker is None and self.altitude_m is not None:
            raise ScenarioProblems(
                [
                    Problem(
                        ("altitude_m",),
                        self.altitude_m,
                        "altitude_m applies only to walker shells; a TLE/OMM file carries "
                        "its own orbits: remove altitude_m",
                    )
                ]
            )
        return self


class Haps(_Strict):
    """A high-altitude platform station, quasi-stationary over (lat, lon).

    ITU Radio Regulations No. 1.66A define a HAPS at 20-50 km; platforms actually flown hold
    17-25 km (Loon balloons ~18-20 km, Airbus Zephyr ~21 km). Accepted: 15-50 km.
    """

    name: str = _name_field("unique node name")
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    altitude_m: float = Field(ge=15_000, le=50_000, description="station altitude, m")
    drift_radius_m: float = Field(
        default=0.0, ge=0, le=200_000, description="station-keeping drift radius, m"
    )

    @property
    def lat_rad(self) -> float:
        return self.lat_deg * DEG

    @property
    def lon_rad(self) -> float:
        return self.lon_deg * DEG


# --------------------------------------------------------------------------------------------
# Fibre backbone
# --------------------------------------------------------------------------------------------


class FiberEdge(_Strict):
    """A fibre span between two sites; its length is given or estimated from the route."""

    a: str = Field(min_length=1, description="site name")
    b: str = Field(min_length=1, description="site name")
    length_m: float | None = Field(default=None, gt=0, le=20_000_000)
    route_factor: float | None = Field(
        default=None, ge=1.0, le=5.0, description="fibre route / great circle (overrides default)"
    )
    band: Literal["C", "O"] = Field(default="C", description="C (1550 nm) or O (1310 nm)")


class FiberBackbone(_Strict):
    """Terrestrial fibre. ``route_factor``: fibre route length over great-circle distance."""

    # assumption: real routes follow roads and rail; 1.5 is a mid value of the 1.2-2 range of
    # route inflation usually assumed for long-haul planning.
    route_factor: float = Field(default=1.5, ge=1.0, le=5.0)
    # QKD on long spans: None means quantum channels only on spans up to 100 km (main paper
    # sec. III-A); a spacing makes every longer span a chain of trusted relay nodes at most this
    # far apart (as in the 2,000 km Beijing-Shanghai backbone with 32 trusted relays, Chen et
    # al., Nature 589, 214 (2021)), so the span's key rate is that of one segment.
    trusted_relay_spacing_m: float | None = Field(default=None, ge=10_000, le=100_000)
    edges: list[FiberEdge] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Equipment
# --------------------------------------------------------------------------------------------


class OpticalLinkEquipment(_Strict):
    """Transmitter, receiver and QKD source parameters of one kind of optical link.

    The fields map onto ``twin.physics.fso.Terminal`` and ``twin.physics.presets.LinkPreset``
    (same meanings, boundary units): ``divergence_urad`` is the far-field 1/e^2 half-angle
    (the presets read Liao et al. 2017's "~10 urad" this way), ``pointing_jitter_urad`` the
    rms jitter per axis of the transmitter.
    """

    tx_aperture_m: float = Field(gt=0, le=10, description="transmit telescope diameter, m")
    rx_aperture_m: float = Field(gt=0, le=40, description="receive telescope diameter, m")
    rx_obscuration_m: float = Field(
        default=0.0, ge=0, le=40, description="receiver central obscuration diameter, m"
    )
    wavelength_nm: float = Field(ge=300, le=2_000)
    divergence_urad: float = Field(
        gt=0, le=10_000, description="far-field 1/e^2 half-angle beam divergence, urad"
    )
    pointing_jitter_urad: float = Field(
        default=0.0, ge=0, le=1_000, description="transmitter rms pointing jitter per axis"
    )
    tx_optical_efficiency: float = Field(default=1.0, gt=0, le=1)
    rx_optical_efficiency: float = Field(default=1.0, gt=0, le=1)
    coupling_efficiency: float = Field(
        default=1.0, gt=0, le=1, description="fixed coupling into the detector / fibre"
    )
    detector_efficiency: float = Field(gt=0, le=1, description="a fraction, not a percentage")
    rx_field_of_view_urad: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="full angle of the receiver's field stop, urad (omit: no field stop)",
    )
    dark_count_rate_hz: float = Field(ge=0, le=1e8, description="per detector")
    n_detectors: int = Field(default=4, ge=1, le=64)
    background_count_rate_hz: float = Field(
        default=0.0, ge=0, le=1e9, description="sky and stray light, summed over detectors"
    )
    gate_width_ns: float = Field(
        default=1.0, gt=0, le=1_000, description="detection gate / coincidence window, ns"
    )
    misalignment_error: float = Field(ge=0, le=0.5, description="e_d, a fraction")
    repetition_rate_hz: float = Field(gt=0, le=1e11)
    mu_signal: float = Field(gt=0, le=10, description="mean photon number of signal states")
    mu_decoy: float = Field(ge=0, le=10, description="mean photon number of decoy states")
    mu_vacuum: float = Field(default=0.0, ge=0, le=10)
    signal_probability: float = Field(
        default=1.0, gt=0, le=1, description="fraction of pulses sent as signal states"
    )
    f_ec: float = Field(ge=1, le=3, description="error-correction inefficiency f >= 1")

    @model_validator(mode="after")
    def _ordered_intensities(self) -> OpticalLinkEquipment:
        if not self.mu_vacuum <= self.mu_decoy < self.mu_signal:
            raise ScenarioProblems(
                [
                    Problem(
                        ("mu_decoy",),
                        self.mu_decoy,
                        f"intensities must satisfy mu_vacuum <= mu_decoy < mu_signal, got "
                        f"{self.mu_vacuum:g}, {self.mu_decoy:g}, {self.mu_signal:g}",
                    )
                ]
            )
        return self

    @property
    def wavelength_m(self) -> float:
        return self.wavelength_nm * NM

    @property
    def pointing_jitter_rms_rad(self) -> float:
        return self.pointing_jitter_urad * URAD

    @property
    def divergence_half_angle_rad(self) -> float:
        return self.divergence_urad * URAD

    @property
    def rx_field_of_view_rad(self) -> float | None:
        if self.rx_field_of_view_urad is None:
            return None
        return self.rx_field_of_view_urad * URAD

    @property
    def gate_width_s(self) -> float:
        """Detection gate, s (feed ``twin.physics.qkd.dark_count_prob`` with it)."""
        return self.gate_width_ns * NS


class OpticalLinks(_Strict):
    """Optical equipment per link kind; ``sat_ogs`` is required, the others optional."""

    sat_ogs: OpticalLinkEquipment
    haps_ogs: OpticalLinkEquipment | None = None
    sat_haps: OpticalLinkEquipment | None = None
    isl: OpticalLinkEquipment | None = None


class SatelliteLoadsW(_Strict):
    """Satellite loads, W (the unit is in the parent key ``loads_w``)."""

    bus: float = Field(ge=0, le=100_000)
    laser_off: float = Field(default=0.0, ge=0, le=10_000)
    laser_standby: float = Field(ge=0, le=10_000)
    laser_on: float = Field(ge=0, le=10_000)
    laser_turbo: float = Field(ge=0, le=10_000)
    qkd_payload: float = Field(ge=0, le=10_000)
    compute: float = Field(ge=0, le=10_000)


class _BatteryAndSolar(_Strict):
    """The battery and solar array that satellites and HAPS share in form."""

    battery_wh: float = Field(gt=0, le=1_000_000)
    reserve_fraction: float = Field(ge=0, le=1)
    charge_efficiency: float = Field(gt=0, le=1)
    discharge_efficiency: float = Field(gt=0, le=1)
    solar_area_m2: float = Field(ge=0, le=10_000)
    solar_efficiency: float = Field(gt=0, le=1)


class SatelliteEquipment(_BatteryAndSolar):
    """Battery, solar array and loads of every satellite of the scenario."""

    laser_terminals: int = Field(ge=0, le=16)
    loads_w: SatelliteLoadsW

    def power_model(self) -> SatellitePowerModel:
        """The SI power model (twin.physics.energy) these settings describe."""
        return SatellitePowerModel(
            bus_w=self.loads_w.bus,
            laser_off_w=self.loads_w.laser_off,
            laser_standby_w=self.loads_w.laser_standby,
            laser_on_w=self.loads_w.laser_on,
            laser_turbo_w=self.loads_w.laser_turbo,
            laser_terminals=self.laser_terminals,
            qkd_payload_w=self.loads_w.qkd_payload,
            compute_w=self.loads_w.compute,
            battery_capacity_j=self.battery_wh * WH_J,
            reserve_fraction=self.reserve_fraction,
            charge_efficiency=self.charge_efficiency,
            discharge_efficiency=self.discharge_efficiency,
            solar_area_m2=self.solar_area_m2,
            solar_efficiency=self.solar_efficiency,
        )


class OgsEquipment(_Strict):
    """Wall-plug power of each OGS, W."""

    cryocooler_w: float = Field(ge=0, le=100_000)
    telescope_drive_w: float = Field(ge=0, le=100_000)
    adaptive_optics_w: float = Field(ge=0, le=100_000)
    it_w: float = Field(ge=0, le=100_000)

    def power_model(self) -> GroundStationPowerModel:
        return GroundStationPowerModel(
            cryocooler_w=self.cryocooler_w,
            telescope_drive_w=self.telescope_drive_w,
            adaptive_optics_w=self.adaptive_optics_w,
            it_w=self.it_w,
        )


class HapsLoadsW(_Strict):
    """HAPS loads, W."""

    propulsion_avionics: float = Field(ge=0, le=1_000_000)
    terminal: float = Field(ge=0, le=10_000)
    qkd_payload: float = Field(ge=0, le=10_000)


class HapsEquipment(_BatteryAndSolar):
    """Battery, solar array and loads of every HAPS of the scenario."""

    loads_w: HapsLoadsW

    def power_model(self) -> HapsPowerModel:
        return HapsPowerModel(
            solar_area_m2=self.solar_area_m2,
            solar_efficiency=self.solar_efficiency,
            propulsion_avionics_w=self.loads_w.propulsion_avionics,
            terminal_w=self.loads_w.terminal,
            qkd_payload_w=self.loads_w.qkd_payload,
            battery_capacity_j=self.battery_wh * WH_J,
            reserve_fraction=self.reserve_fraction,
            charge_efficiency=self.charge_efficiency,
            discharge_efficiency=self.discharge_efficiency,
        )


class Equipment(_Strict):
    """Equipment parameters; ``haps`` is required when the scenario has HAPS."""

    optical: OpticalLinks
    satellite: SatelliteEquipment
    ogs: OgsEquipment
    haps: HapsEquipment | None = None
    ground_node_j_per_bit: float = Field(
        default=GROUND_NODE_J_PER_BIT,
        ge=0,
        le=1e-3,
        description="energy each bit costs every ground site it crosses, J/bit (grid power)",
    )


# --------------------------------------------------------------------------------------------
# Weather
# --------------------------------------------------------------------------------------------

WeatherEventKind = Literal["cloud", "fog", "rain", "snow", "turbulence"]

# assumption: a link is declared blocked when weather adds more than 15 dB. With the packaged
# sat_ogs settings (Micius-class source and receiver, 400 Hz of dark and background counts in a
# 2 ns gate), twin.physics.qkd's weak+vacuum decoy BB84 yields key up to ~48 dB of total loss
# (channel x detector); a Micius-class downlink loses roughly 30-40 dB across a pass (diffraction
# into a 1 m telescope ~23 dB at 1000 km plus optics, detector and clear air), so 15 dB more
# leaves no key over most of the pass. (Main paper sec. VIII-B: fog or heavy rain "exceeding
# 100 dB/km" makes QKD physically impossible: far beyond this threshold on any slant path.)
DEFAULT_LINK_BLOCK_THRESHOLD_DB = 15.0

# "Clear" atmosphere: 23 km meteorological range, the standard clear-air visibility of the
# LOWTRAN/MODTRAN rural aerosol model (VIS = 23 km).
DEFAULT_CLEAR_VISIBILITY_M = 23_000.0

# Hufnagel-Valley 5/7 parameters (Andrews & Phillips 2005, eq. 12.1): the defaults of
# twin.physics.turbulence.hufnagel_valley_cn2 (HV57_* there; a test keeps them equal).
DEFAULT_GROUND_CN2_M_MINUS_2_3 = 1.7e-14
DEFAULT_RMS_WIND_SPEED_M_PER_S = 21.0

# Droplet number of stratus and cumulus, 250 cm^-3 (Awan et al. 2009, J. Commun. 4(8), 533,
# Table 1): used with a cloud's liquid water content when the file gives no number.
DEFAULT_CLOUD_DROPLET_NUMBER_PER_CM3 = 250.0


class WeatherBackground(_Strict):
    """Clear-air conditions everywhere, whenever no event says otherwise.

    ``ground_cn2_m_minus_2_3`` and ``rms_wind_speed_m_per_s`` are the Hufnagel-Valley parameters
    of ``twin.physics.turbulence.hufnagel_valley_cn2`` (same names; defaults: the HV 5/7 profile).
    """

    # 1 km: below that the WMO calls it fog (use a fog event); ~340 km: the Koschmieder range
    # 3.912 / 0.0116 km^-1 of an aerosol-free (Rayleigh-only) sea-level atmosphere at 550 nm.
    visibility_m: float = Field(
        default=DEFAULT_CLEAR_VISIBILITY_M,
        ge=1_000,
        le=350_000,
        description="clear-air meteorological visibility at 550 nm, m",
    )
    # Near-ground Cn2 runs from ~1e-17 m^-2/3 or less (weak) to ~1e-13 or more (strong: hot
    # ground at midday) (Andrews & Phillips, Laser Beam Propagation through Random Media, 2nd
    # ed., 2005): 1e-18..1e-11 keeps margin on both sides.
    ground_cn2_m_minus_2_3: float = Field(
        default=DEFAULT_GROUND_CN2_M_MINUS_2_3,
        ge=1e-18,
        le=1e-11,
        description="Hufnagel-Valley ground-level Cn2, m^-2/3",
    )
    # HV's v is the rms wind over 5-20 km: ~10-40 m/s climatologically; jet-stream cores stay
    # below ~100 m/s.
    rms_wind_speed_m_per_s: float = Field(
        default=DEFAULT_RMS_WIND_SPEED_M_PER_S,
        ge=0,
        le=100,
        description="Hufnagel-Valley rms upper-atmosphere wind speed, m/s",
    )


class _WeatherEventBase(_Strict):
    """What every weather event has: a name, a footprint, an optional motion, a time window.

    Footprint: a circle (``center_lat_deg``, ``center_lon_deg``, ``radius_m``) or a list of
    scenario ``sites`` it covers. A circle may move (a front) at a constant velocity; the centre
    given is its position at ``start_s``. Times are offsets from ``time.start_utc``; the event is
    active for ``start_s <= t < end_s``.
    """

    name: str = _name_field("event name, unique within weather.events")
    center_lat_deg: float | None = Field(default=None, ge=-90, le=90)
    center_lon_deg: float | None = Field(default=None, ge=-180, le=180)
    # Convective rain cells are a few km across; synoptic fronts and cloud shields reach
    # ~1000-2000 km: 3000 km bounds any single weather system.
    radius_m: float | None = Field(
        default=None, gt=0, le=3_000_000, description="footprint radius, m"
    )
    sites: list[str] | None = Field(
        default=None, min_length=1, description="names of the scenario sites the event covers"
    )
    # Fronts move at ~5-15 m/s, convective cells with the steering wind (up to ~30 m/s);
    # 100 m/s is above any jet stream that could carry them.
    velocity_east_m_per_s: float = Field(default=0.0, ge=-100, le=100)
    velocity_north_m_per_s: float = Field(default=0.0, ge=-100, le=100)
    start_s: float = Field(ge=0, description="start, s after time.start_utc")
    end_s: float = Field(gt=0, description="end, s after time.start_utc (after start_s)")

    @model_validator(mode="after")
    def _consistent(self) -> _WeatherEventBase:
        problems = self._problems()
        if problems:
            raise ScenarioProblems(problems)
        return self

    def _problems(self) -> list[Problem]:
        problems = []
        circle = ("center_lat_deg", "center_lon_deg", "radius_m")
        given = [k for k in circle if getattr(self, k) is not None]
        if self.sites is not None and given:
            problems.append(
                Problem(
                    (given[0],),
                    getattr(self, given[0]),
                    "give the footprint either as a circle (center_lat_deg, center_lon_deg, "
                    "radius_m) or as sites: [names], not both",
                )
            )
        elif self.sites is None and len(given) != len(circle):
            missing = [k for k in circle if k not in given]
            problems.append(
                Problem(
                    (missing[0],),
                    None,
                    f"footprint incomplete: missing {', '.join(missing)}; allowed: a circle "
                    f"(center_lat_deg, center_lon_deg, radius_m) or sites: [names]",
                )
            )
        if self.sites is not None:
            for key in ("velocity_east_m_per_s", "velocity_north_m_per_s"):
                if getattr(self, key) != 0.0:
                    problems.append(
                        Problem(
                            (key,),
                            getattr(self, key),
                            f"{key} moves a circular footprint; a sites footprint stays on "
                            f"its sites: remove it or give a circle",
                        )
                    )
        if self.end_s <= self.start_s:
            problems.append(
                Problem(
                    ("end_s",),
                    self.end_s,
                    f"end_s ({self.end_s:g}) must be after start_s ({self.start_s:g}); "
                    f"allowed: end_s > {self.start_s:g}",
                )
            )
        return problems

    def is_active(self, t_s: float) -> bool:
        """Whether the event is on at ``t_s`` (s after the scenario start)."""
        return self.start_s <= t_s < self.end_s

    def center_at_deg(self, t_s: float) -> tuple[float, float]:
        """Centre (lat_deg, lon_deg) of a circular footprint at ``t_s``, moved by its velocity.

        Local flat-Earth step on the IUGG mean sphere from the centre at ``start_s``: adequate
        while the front moves < ~1000 km (the metric error grows with distance squared).
        """
        if self.center_lat_deg is None or self.center_lon_deg is None:
            raise ValueError(f"weather event {self.name!r} has a sites footprint, not a centre")
        dt_s = t_s - self.start_s
        lat_deg = (
            self.center_lat_deg + self.velocity_north_m_per_s * dt_s / EARTH_MEAN_RADIUS_M / DEG
        )
        cos_lat = max(math.cos(self.center_lat_deg * DEG), 1e-6)
        lon_deg = self.center_lon_deg + (
            self.velocity_east_m_per_s * dt_s / (EARTH_MEAN_RADIUS_M * cos_lat) / DEG
        )
        lat_deg = min(90.0, max(-90.0, lat_deg))
        return lat_deg, (lon_deg + 180.0) % 360.0 - 180.0


class CloudEvent(_WeatherEventBase):
    """A cloud layer: base, thickness, and its liquid water content or its optical attenuation.

    Give exactly one of ``liquid_water_g_per_m3`` (with ``droplet_number_per_cm3``, the inputs
    of ``twin.physics.atmosphere.cloud_attenuation_db_per_km``) and ``attenuation_db_per_km``
    (used as given, at the link wavelength).
    """

    kind: Literal["cloud"]
    # Tropospheric clouds stay below the tropopause (~8 km at the poles, ~17-18 km in the
    # tropics): base and top within 0-20 km, where HAPS fly above the weather (main paper
    # sec. III-A).
    base_altitude_m: float = Field(
        ge=0, le=20_000, description="cloud base above the WGS84 ellipsoid, m"
    )
    thickness_m: float = Field(gt=0, le=20_000, description="cloud depth, m")
    # Typical: stratocumulus 0.15, stratus 0.29, nimbostratus 0.65, cumulus 1.0 g/m^3 (Awan et
    # al. 2009, J. Commun. 4(8), 533, Table 1); cumulonimbus cores reach a few g/m^3: 5 g/m^3
    # bounds water clouds.
    liquid_water_g_per_m3: float | None = Field(
        default=None, gt=0, le=5, description="liquid water content, g/m^3"
    )
    # Awan et al. 2009 Table 1: 200-400 cm^-3 in water clouds, down to 0.025 cm^-3 in cirrus;
    # polluted continental cumulus reach ~1000-2000 cm^-3: 5000 bounds them.
    droplet_number_per_cm3: float = Field(
        default=DEFAULT_CLOUD_DROPLET_NUMBER_PER_CM3,
        gt=0,
        le=5_000,
        description="droplet number concentration, cm^-3 (with liquid_water_g_per_m3)",
    )
    # Geometric-optics extinction 3 LWC / (2 rho_w r_eff) with LWC 5 g/m^3 and r_eff 10 um is
    # 750 km^-1 = ~3300 dB/km; the 10 m visibility of the densest fog is ~1700 dB/km.
    attenuation_db_per_km: float | None = Field(
        default=None, gt=0, le=5_000, description="specific attenuation at the link wavelength"
    )

    def _problems(self) -> list[Problem]:
        problems = super()._problems()
        given = [
            k
            for k in ("liquid_water_g_per_m3", "attenuation_db_per_km")
            if getattr(self, k) is not None
        ]
        if self.attenuation_db_per_km is not None and (
            "droplet_number_per_cm3" in self.model_fields_set
        ):
            problems.append(
                Problem(
                    ("droplet_number_per_cm3",),
                    self.droplet_number_per_cm3,
                    "droplet_number_per_cm3 goes with liquid_water_g_per_m3; with "
                    "attenuation_db_per_km it would be ignored: remove it",
                )
            )
        if len(given) != 1:
            problems.append(
                Problem(
                    (given[-1] if given else "liquid_water_g_per_m3",),
                    [getattr(self, k) for k in given] if given else None,
                    f"give exactly one of liquid_water_g_per_m3 (g/m^3, in (0, 5]) or "
                    f"attenuation_db_per_km (dB/km, in (0, 5000]); got "
                    f"{', '.join(given) if given else 'neither'}",
                )
            )
        top_m = self.base_altitude_m + self.thickness_m
        if top_m > 20_000:
            problems.append(
                Problem(
                    ("thickness_m",),
                    self.thickness_m,
                    f"cloud top base_altitude_m + thickness_m = {top_m:g} m is above 20 km; "
                    f"allowed: thickness_m <= {20_000 - self.base_altitude_m:g} "
                    f"(tropospheric clouds)",
                )
            )
        return problems

    @property
    def top_altitude_m(self) -> float:
        return self.base_altitude_m + self.thickness_m


class FogEvent(_WeatherEventBase):
    """Fog at the ground, given by its meteorological visibility."""

    kind: Literal["fog"]
    # Fog is visibility below 1 km (WMO International Meteorological Vocabulary); the densest
    # fogs measured are down to ~10-30 m.
    visibility_m: float = Field(ge=10, lt=1_000, description="visibility in the fog, m")


class RainEvent(_WeatherEventBase):
    """Rain, given by its rate (the R of ITU-R P.838 and of optical rain models)."""

    kind: Literal["rain"]
    # Heavy rain is > ~10 mm/h; ITU-R P.837 maps put the rate exceeded 0.01 % of the year at
    # up to ~150 mm/h; point rates above ~300 mm/h are only minute-long records.
    rain_rate_mm_per_h: float = Field(gt=0, le=300, description="rain rate, mm/h")


class SnowEvent(_WeatherEventBase):
    """Snowfall: a liquid-water-equivalent rate, the S of ITU-R P.1817-1's ``a S^b`` (Table 2).

    ``snow_type`` picks the wet or dry snow coefficients of that table.
    """

    kind: Literal["snow"]
    # Very heavy snowfall lays a few cm to ~15 cm of snow per hour, i.e. ~2-15 mm/h of water
    # at 50-150 kg/m^3 snow density; 50 mm/h is a generous ceiling.
    snow_rate_mm_per_h: float = Field(
        gt=0, le=50, description="snowfall rate, mm/h of liquid water equivalent"
    )
    snow_type: Literal["wet", "dry"] = Field(
        default="wet", description="ITU-R P.1817-1 Table 2 coefficients"
    )


class TurbulenceEvent(_WeatherEventBase):
    """Stronger (or weaker) optical turbulence: Hufnagel-Valley parameters under the footprint.

    ``rms_wind_speed_m_per_s`` left out keeps the background's value.
    """

    kind: Literal["turbulence"]
    # Same ranges and reasons as WeatherBackground.
    ground_cn2_m_minus_2_3: float = Field(
        ge=1e-18, le=1e-11, description="Hufnagel-Valley ground-level Cn2, m^-2/3"
    )
    rms_wind_speed_m_per_s: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Hufnagel-Valley rms upper-atmosphere wind speed, m/s",
    )


WeatherEvent = Annotated[
    CloudEvent | FogEvent | RainEvent | SnowEvent | TurbulenceEvent,
    Field(discriminator="kind"),
]


class Weather(_Strict):
    """Clear-air background, weather events in space and time, and the link-blocking rule."""

    background: WeatherBackground = Field(default_factory=WeatherBackground)
    events: list[WeatherEvent] = Field(default_factory=list)
    link_block_threshold_db: float = Field(
        default=DEFAULT_LINK_BLOCK_THRESHOLD_DB,
        gt=0,
        le=100,
        description="a link is blocked when weather adds more loss than this, dB",
    )


# --------------------------------------------------------------------------------------------
# Traffic
# --------------------------------------------------------------------------------------------

TrafficClassName = Literal["type_i", "type_ii", "type_iii", "type_iv"]

# Ceilings of the traffic section: generous, they refuse absurd values (a rate typed with
# three zeros too many), not demands a network could not carry.
# 1 Tbit/s: above any single link of the model (the fastest space-to-ground optical link flown,
# NASA TBIRD 2023, carried 200 Gbit/s).
MAX_FLOW_RATE_BPS = 1e12
# The largest IPv4 datagram (total-length field, RFC 791): packet-level flows carry IoT-sized
# messages (the IoT paper's packet delivery ratio), not bulk transfers.
MAX_PACKET_SIZE_BYTES = 65_535
# One year, as time.duration_s: periods, windows and offsets of demand schedules.
MAX_TRAFFIC_SECONDS = 366 * 86_400
# 1 PB (decimal) for one forecast transfer: firmware images and video archives are GB to TB.
MAX_VOLUME_GB = 1e6
MAX_VOLUME_BITS = 8 * 10**15
# IMT-2020 massive IoT: 10^6 devices per km^2 (ITU-R M.2410); 10^9 bounds any one flow.
MAX_FLOW_DEVICES = 10**9


def _rate_field(description: str = "bit/s", *, default=..., gt: float | None = None):
    bounds = {"gt": gt} if gt is not None else {"ge": 0}
    return Field(default, le=MAX_FLOW_RATE_BPS, description=description, **bounds)


def _seconds_field(description: str, *, default=None, positive: bool = False):
    bounds = {"gt": 0} if positive else {"ge": 0}
    return Field(default, le=MAX_TRAFFIC_SECONDS, description=description, **bounds)


def _utc_field(description: str):
    return Field(default=None, strict=False, description=description)


def _exact_ns(seconds: float, key: str) -> Fraction:
    """Seconds as exact nanoseconds, read as twin.network.traffic reads them (decimal form)."""
    return exact_rate_bps(seconds, key) * NS_PER_S


def _offset_ns(moment: datetime, start_utc: datetime) -> int:
    """Integer ns from the scenario start to ``moment`` (as twin.network.traffic counts them)."""
    delta = moment - start_utc
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


class _DemandBase(_Strict):
    """A demand component of a flow (twin.network.traffic); ``kind`` picks which.

    Times are either ``<key>_utc`` (ISO 8601 with a zone, at or after ``time.start_utc``) or
    ``<key>_s`` (seconds after ``time.start_utc``), never both; seconds must be whole
    nanoseconds. Times after the scenario's end are allowed: ``qntwin run --hours`` may run
    longer than ``time.duration_s``.
    """

    # seconds fields that must be whole ns; (time key, required) pairs of *_utc / *_s fields
    _SECONDS_KEYS: ClassVar[tuple[str, ...]] = ()
    _TIMES: ClassVar[tuple[tuple[str, bool], ...]] = ()

    @field_validator("start_utc", "end_utc", "deadline_utc", mode="before", check_fields=False)
    @classmethod
    def _explicit_zone(cls, value, info: ValidationInfo):
        return value if value is None else _zoned(value, info.field_name)

    @model_validator(mode="after")
    def _consistent(self) -> _DemandBase:
        problems = self._problems()
        if problems:
            raise ScenarioProblems(problems)
        return self

    def _problems(self) -> list[Problem]:
        problems = []
        for key in self._SECONDS_KEYS:
            value = getattr(self, key)
            if value is not None and _exact_ns(value, key).denominator != 1:
                problems.append(
                    Problem(
                        (key,),
                        value,
                        f"{key} = {value!r} s is not a whole number of nanoseconds; allowed: "
                        f"multiples of 1e-9 s",
                    )
                )
        for key, required in self._TIMES:
            utc, seconds = getattr(self, f"{key}_utc"), getattr(self, f"{key}_s")
            if utc is not None and seconds is not None:
                problems.append(
                    Problem(
                        (f"{key}_s",),
                        seconds,
                        f"give {key}_utc or {key}_s, not both ({key}_utc = {utc.isoformat()})",
                    )
                )
            elif required and utc is None and seconds is None:
                problems.append(
                    Problem(
                        (f"{key}_utc",),
                        None,
                        f"the {key} time is missing; give {key}_utc (ISO 8601 with a zone, "
                        f"e.g. '2024-06-21T03:00:00Z') or {key}_s (s after time.start_utc)",
                    )
                )
        return problems

    def time_ns(self, key: str, start_utc: datetime) -> int | None:
        """The ``key`` time (``start``, ``end``, ``deadline``) as int ns after ``start_utc``."""
        utc, seconds = getattr(self, f"{key}_utc"), getattr(self, f"{key}_s")
        if utc is not None:
            return _offset_ns(utc, start_utc)
        if seconds is not None:
            return int(_exact_ns(seconds, f"{key}_s"))
        return None


class ConstantDemand(_DemandBase):
    """A constant rate from the scenario start on (twin.network.traffic.ConstantRate)."""

    kind: Literal["constant"]
    rate_bps: float = _rate_field()


class DiurnalDemand(_DemandBase):
    """A daily profile of equal UTC slots (twin.network.traffic.DiurnalRate).

    Exactly one of: ``hourly_bps`` (24 values, slot 0 = 00:00-01:00 UTC), ``slot_bps`` (n
    values, n dividing the day) or ``mean_bps`` with ``amplitude_bps`` and ``peak_hour_utc``
    (a cosine sampled into 24 whole-bit/s hourly slots at load time).
    """

    kind: Literal["diurnal"]
    hourly_bps: list[Annotated[float, Field(ge=0, le=MAX_FLOW_RATE_BPS)]] | None = Field(
        default=None, min_length=24, max_length=24, description="24 hourly rates, bit/s, UTC"
    )
    slot_bps: list[Annotated[float, Field(ge=0, le=MAX_FLOW_RATE_BPS)]] | None = Field(
        default=None,
        min_length=1,
        max_length=86_400,
        description="rates of equal UTC slots, bit/s; their number divides the day",
    )
    mean_bps: float | None = _rate_field("mean rate of the cosine, bit/s", default=None)
    amplitude_bps: float | None = _rate_field("cosine amplitude, bit/s (<= mean)", default=None)
    peak_hour_utc: float | None = Field(
        default=None, ge=0, lt=24, description="UTC hour of the cosine's maximum"
    )

    def _problems(self) -> list[Problem]:
        problems = super()._problems()
        given = [k for k in ("hourly_bps", "slot_bps", "mean_bps") if getattr(self, k) is not None]
        if len(given) != 1:
            problems.append(
                Problem(
                    (given[-1] if given else "hourly_bps",),
                    None if not given else getattr(self, given[-1]),
                    f"give exactly one of hourly_bps (24 values), slot_bps (n values) or "
                    f"mean_bps (with amplitude_bps, peak_hour_utc); got "
                    f"{', '.join(given) if given else 'none'}",
                )
            )
        cosine = ("amplitude_bps", "peak_hour_utc")
        if self.mean_bps is not None:
            for key in cosine:
                if getattr(self, key) is None:
                    problems.append(
                        Problem((key,), None, f"{key} is required with mean_bps (a cosine)")
                    )
            if self.amplitude_bps is not None and self.amplitude_bps > self.mean_bps:
                problems.append(
                    Problem(
                        ("amplitude_bps",),
                        self.amplitude_bps,
                        f"amplitude_bps must not exceed mean_bps ({self.mean_bps:g}), or the "
                        f"rate turns negative; allowed: [0, {self.mean_bps:g}]",
                    )
                )
        else:
            for key in cosine:
                if getattr(self, key) is not None:
                    problems.append(
                        Problem(
                            (key,),
                            getattr(self, key),
                            f"{key} shapes a cosine profile and goes with mean_bps: add "
                            f"mean_bps or remove {key}",
                        )
                    )
        if self.slot_bps is not None and DAY_NS % len(self.slot_bps):
            problems.append(
                Problem(
                    ("slot_bps",),
                    len(self.slot_bps),
                    f"{len(self.slot_bps)} slots do not divide the day into whole nanoseconds; "
                    f"allowed: a number of slots that divides 86400e9, e.g. 24, 48, 96, 1440",
                )
            )
        return problems


class OnOffDemand(_DemandBase):
    """``rate_bps`` during ``on_s`` of every ``period_s``; an on-window starts at ``offset_s``.

    The pattern repeats over all time (twin.network.traffic.OnOffRate).
    """

    kind: Literal["on_off"]
    rate_bps: float = _rate_field("rate while on, bit/s")
    period_s: float = _seconds_field("period, s", default=..., positive=True)
    on_s: float = _seconds_field("on-time in each period, s (<= period_s)", default=...)
    offset_s: float = _seconds_field("start of an on-window, s after time.start_utc", default=0.0)

    _SECONDS_KEYS: ClassVar[tuple[str, ...]] = ("period_s", "on_s", "offset_s")

    def _problems(self) -> list[Problem]:
        problems = super()._problems()
        if self.on_s > self.period_s:
            problems.append(
                Problem(
                    ("on_s",),
                    self.on_s,
                    f"on_s must not exceed period_s; allowed: [0, {self.period_s:g}]",
                )
            )
        return problems


class WindowDemand(_DemandBase):
    """``rate_bps`` from ``start`` to ``end`` (twin.network.traffic.WindowRate)."""

    kind: Literal["window"]
    rate_bps: float = _rate_field("rate inside the window, bit/s")
    start_utc: datetime | None = _utc_field("window start, ISO 8601 with a zone")
    start_s: float | None = _seconds_field("window start, s after time.start_utc")
    end_utc: datetime | None = _utc_field("window end, ISO 8601 with a zone")
    end_s: float | None = _seconds_field("window end, s after time.start_utc")

    _SECONDS_KEYS: ClassVar[tuple[str, ...]] = ("start_s", "end_s")
    _TIMES: ClassVar[tuple[tuple[str, bool], ...]] = (("start", True), ("end", True))


class ForecastDemand(_DemandBase):
    """A volume to move in a window, announced ahead (twin.network.traffic.ForecastEvent).

    The MES forecast of the main paper (sec. VI-A: "Firmware update scheduled for 03:00").
    Give the volume as ``volume_gb`` (decimal GB, 1e9 bytes) or ``volume_bits``, and its pace
    as ``duration_s`` or ``rate_bps``. The controller learns of it ``announce_lead_s`` before
    the start (clipped at the scenario start); ``deadline`` (optional, at or after the end) is
    the latest completion a deferring controller must respect.
    """

    kind: Literal["forecast"]
    name: str = _name_field("event name")
    start_utc: datetime | None = _utc_field("start, ISO 8601 with a zone")
    start_s: float | None = _seconds_field("start, s after time.start_utc")
    volume_gb: float | None = Field(
        default=None, gt=0, le=MAX_VOLUME_GB, description="volume, decimal GB (1e9 bytes)"
    )
    volume_bits: int | None = Field(default=None, gt=0, le=MAX_VOLUME_BITS)
    duration_s: float | None = _seconds_field("transfer duration, s", positive=True)
    rate_bps: float | None = _rate_field("transfer rate, bit/s", default=None, gt=0)
    announce_lead_s: float = _seconds_field("announced this long before start, s", default=0.0)
    deadline_utc: datetime | None = _utc_field("latest completion, ISO 8601 with a zone")
    deadline_s: float | None = _seconds_field("latest completion, s after time.start_utc")

    _SECONDS_KEYS: ClassVar[tuple[str, ...]] = (
        "start_s",
        "duration_s",
        "announce_lead_s",
        "deadline_s",
    )
    _TIMES: ClassVar[tuple[tuple[str, bool], ...]] = (("start", True), ("deadline", False))

    def _problems(self) -> list[Problem]:
        problems = super()._problems()
        for pair, what in (
            (("volume_gb", "volume_bits"), "the volume"),
            (("duration_s", "rate_bps"), "the pace"),
        ):
            given = [k for k in pair if getattr(self, k) is not None]
            if len(given) != 1:
                problems.append(
                    Problem(
                        (given[-1] if given else pair[0],),
                        getattr(self, given[-1]) if given else None,
                        f"give exactly one of {pair[0]} or {pair[1]} for {what}; got "
                        f"{', '.join(given) if given else 'neither'}",
                    )
                )
        return problems

    def volume_bits_exact(self) -> int:
        """The volume in bits (decimal GB floored to whole bits, as twin.network.traffic)."""
        if self.volume_bits is not None:
            return self.volume_bits
        return math.floor(exact_rate_bps(self.volume_gb, "volume_gb") * 8 * 10**9)

    def duration_ns(self) -> int:
        """Transfer duration, int ns (from ``rate_bps``: rounded up, at least 1 ns)."""
        if self.duration_s is not None:
            return max(int(_exact_ns(self.duration_s, "duration_s")), 1)
        rate = exact_rate_bps(self.rate_bps, "rate_bps")
        return max(math.ceil(Fraction(self.volume_bits_exact()) * NS_PER_S / rate), 1)


Demand = Annotated[
    ConstantDemand | DiurnalDemand | OnOffDemand | WindowDemand | ForecastDemand,
    Field(discriminator="kind"),
]


def _traffic_class(value):
    """``type-i``, ``Type-I``, ``I`` -> ``type_i``; an unknown class names the four."""
    if isinstance(value, str | TrafficClass):
        return TrafficClass.parse(value).value
    return value  # not a string: the Literal's own error names the four


class TrafficFlow(_Strict):
    """A flow of one traffic class (main paper Table 1) between two scenario sites.

    Its demand is exactly one of ``rate_bps`` (constant), ``demand`` (a list of components,
    summed) or ``packets_per_s`` (packet-level, with ``packet_size_bytes``).
    ``forbid_transit``: jurisdictions its data must not cross (as intermediate hops; main paper
    sec. IV-B). ``devices``: how many devices it aggregates (Type-III batch keys).
    """

    name: str = _name_field("flow name, unique within traffic.flows")
    traffic_class: TrafficClassName = Field(
        description="main paper Table 1: type_i control (OTP), type_ii telemetry (AES-256), "
        "type_iii IoT (AES-128 batch), type_iv bulk (PQC)"
    )
    src: str = Field(min_length=1, description="source site name")
    dst: str = Field(min_length=1, description="destination site name")
    rate_bps: float | None = _rate_field("constant rate, bit/s", default=None)
    demand: list[Demand] | None = Field(default=None, min_length=1)
    packet_size_bytes: int | None = Field(
        default=None, ge=1, le=MAX_PACKET_SIZE_BYTES, description="packet size, bytes"
    )
    packets_per_s: float | None = Field(
        default=None, gt=0, le=1e9, description="packet rate (with packet_size_bytes)"
    )
    forbid_transit: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = Field(
        default_factory=list, description="ISO 3166-1 alpha-2 codes its data must not transit"
    )
    devices: int = Field(default=1, ge=1, le=MAX_FLOW_DEVICES, description="devices aggregated")

    @field_validator("traffic_class", mode="before")
    @classmethod
    def _canonical_class(cls, value):
        return _traffic_class(value)

    @model_validator(mode="after")
    def _consistent(self) -> TrafficFlow:
        problems = []
        given = [k for k in ("rate_bps", "demand", "packets_per_s") if getattr(self, k) is not None]
        if len(given) != 1:
            problems.append(
                Problem(
                    (given[-1] if given else "rate_bps",),
                    getattr(self, given[-1]) if given else None,
                    f"give exactly one of rate_bps (constant, bit/s), demand (a list of "
                    f"components) or packets_per_s (with packet_size_bytes); got "
                    f"{', '.join(given) if given else 'none'}",
                )
            )
        if self.packets_per_s is not None and self.packet_size_bytes is None:
            problems.append(
                Problem(
                    ("packet_size_bytes",),
                    None,
                    f"packet_size_bytes is required with packets_per_s; allowed: an integer "
                    f"in [1, {MAX_PACKET_SIZE_BYTES}]",
                )
            )
        if self.src == self.dst:
            problems.append(
                Problem(
                    ("dst",),
                    self.dst,
                    f"src and dst are both {self.dst!r}; a flow joins two different sites: "
                    f"allowed: any site other than {self.src!r}",
                )
            )
        seen: set[str] = set()
        for k, component in enumerate(self.demand or ()):
            if isinstance(component, ForecastDemand):
                if component.name in seen:  # (a plan defers an event by its name)
                    problems.append(
                        Problem(
                            ("demand", k, "name"),
                            component.name,
                            f"this flow has another forecast event named {component.name!r}; "
                            "give each event of a flow its own name",
                        )
                    )
                seen.add(component.name)
        if problems:
            raise ScenarioProblems(problems)
        return self


class Traffic(_Strict):
    """The scenario's flows, in the four industrial classes of the main paper's Table 1."""

    flows: list[TrafficFlow] = Field(default_factory=list)

    def to_mapping(self) -> dict[str, Any]:
        """The section as plain data in the file's shape (what ``flows_from_mapping`` reads)."""
        return self.model_dump(mode="python", exclude_none=True)


def _demand_time_problems(
    component: _DemandBase, loc: tuple[str | int, ...], start_utc: datetime
) -> list[Problem]:
    """Times of a demand component against the scenario start, windows and deadlines."""
    problems = []
    times: dict[str, int] = {}
    given: dict[str, tuple[str, Any]] = {}
    for key, _ in component._TIMES:
        utc, seconds = getattr(component, f"{key}_utc"), getattr(component, f"{key}_s")
        if utc is not None:
            given[key] = (f"{key}_utc", utc.isoformat())
            if utc < start_utc:
                problems.append(
                    Problem(
                        (*loc, f"{key}_utc"),
                        utc.isoformat(),
                        f"{key}_utc is before the scenario start; allowed: at or after "
                        f"time.start_utc ({start_utc.isoformat()})",
                    )
                )
                continue
        elif seconds is not None:
            given[key] = (f"{key}_s", seconds)
        ns = component.time_ns(key, start_utc)
        if ns is not None:
            times[key] = ns
    if isinstance(component, WindowDemand) and {"start", "end"} <= set(times):
        if times["end"] < times["start"]:
            key, value = given["end"]
            problems.append(
                Problem(
                    (*loc, key),
                    value,
                    f"the window ends {times['end'] / NS_PER_S:g} s after time.start_utc, "
                    f"before it starts ({times['start'] / NS_PER_S:g} s); allowed: an end at "
                    f"or after the start",
                )
            )
    if isinstance(component, ForecastDemand) and {"start", "deadline"} <= set(times):
        end_ns = times["start"] + component.duration_ns()
        if times["deadline"] < end_ns:
            key, value = given["deadline"]
            problems.append(
                Problem(
                    (*loc, key),
                    value,
                    f"the deadline ({times['deadline'] / NS_PER_S:g} s after time.start_utc) "
                    f"precedes the transfer's end ({end_ns / NS_PER_S:g} s: start + duration); "
                    f"allowed: at or after the end",
                )
            )
    return problems


# --------------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Handover protocol timing
# --------------------------------------------------------------------------------------------


class HandoverSettings(_Strict):
    """Timing of the handover protocol (main paper sec. VIII.A; twin.network.handover's
    ``HandoverParams``, where every default is cited or labelled an assumption). Optional:
    a scenario without this section gets those defaults."""

    elevation_threshold_deg: float = Field(
        default=20.0, ge=0.0, le=90.0, description="handover horizon (sec. VIII.A: 20 deg)"
    )
    acquisition_s: float = Field(
        default=30.0, ge=0.0, le=3_600.0, description="pointing-acquisition-tracking time"
    )
    detection_delay_ms: float = Field(
        default=150.0, ge=0.0, le=60_000.0, description="link loss until its report leaves"
    )
    control_latency_ms: float | None = Field(
        default=None,
        ge=0.0,
        le=10_000.0,
        description="controller <-> node one-way latency (None: ~2,000 km of fibre, 9.8 ms)",
    )
    switch_sync_error_us: float = Field(
        default=1.0, ge=0.0, le=1e6, description="time-synchronisation error at a switch"
    )
    mbb_guard_s: float = Field(
        default=10.0, ge=0.0, le=3_600.0, description="make-before-break start margin"
    )

    def params(self):
        """The :class:`twin.network.handover.HandoverParams` of these settings (int ns)."""
        defaults = HandoverParams()
        return HandoverParams(
            elevation_threshold_rad=self.elevation_threshold_deg * DEG,
            acquisition_ns=round(self.acquisition_s * NS_PER_S),
            detection_delay_ns=round(self.detection_delay_ms * 1e6),
            control_latency_ns=(
                defaults.control_latency_ns
                if self.control_latency_ms is None
                else round(self.control_latency_ms * 1e6)
            ),
            switch_sync_error_ns=round(self.switch_sync_error_us * 1e3),
            mbb_guard_ns=round(self.mbb_guard_s * NS_PER_S),
        )


# --------------------------------------------------------------------------------------------
# The control objective
# --------------------------------------------------------------------------------------------


class ObjectiveSettings(_Strict):
    """Weights of the control objective, main paper eq. (4) (twin.control.objective, where
    each term's unit and each default is explained). Optional: a scenario without this section
    gets those defaults."""

    w_secure: float = Field(default=1.0, ge=0, le=1e6, description="secure throughput ratio")
    w_latency: float = Field(default=0.01, ge=0, le=1e6, description="per ms of path latency")
    w_carbon: float = Field(default=0.1, ge=0, le=1e6, description="per kg CO2e/h (eq. 5)")
    w_availability: float = Field(default=1.0, ge=0, le=1e6, description="availability")
    discount_per_s: float = Field(
        default=1.0, gt=0, le=1, description="gamma per simulated second (1: undiscounted)"
    )

    def weights(self) -> ObjectiveWeights:
        return ObjectiveWeights(
            secure=self.w_secure,
            latency=self.w_latency,
            carbon=self.w_carbon,
            availability=self.w_availability,
            discount_per_s=self.discount_per_s,
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


class Scenario(_Strict):
    """A whole scenario file. See the packaged ``small.yaml`` for a commented example."""

    name: str = _name_field("scenario name")
    description: str = Field(min_length=1, max_length=2_000)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    time: TimeSpan
    sites: list[Site] = Field(min_length=1)
    ogs_clusters: list[OgsCluster] = Field(default_factory=list)
    constellations: list[Constellation] = Field(default_factory=list)
    haps: list[Haps] = Field(default_factory=list)
    fiber: FiberBackbone = Field(default_factory=FiberBackbone)
    equipment: Equipment
    weather: Weather = Field(default_factory=Weather)
    traffic: Traffic = Field(default_factory=Traffic)
    handover: HandoverSettings = Field(default_factory=HandoverSettings)
    objective: ObjectiveSettings = Field(default_factory=ObjectiveSettings)

    def summary(self) -> str:
        """One line for ``qntwin validate``: what the file describes, in counts."""
        kinds: dict[str, int] = {}
        for site in self.sites:
            kinds[site.kind] = kinds.get(site.kind, 0) + 1
        shells = [
            f"{c.name} {c.walker} at {c.altitude_m / 1000:g} km"
            if c.walker is not None
            else f"{c.name} from {(c.tle_file or c.omm_file).name}"
            for c in self.constellations
        ]
        parts = [
            _count(len(self.sites), "site")
            + " ("
            + ", ".join(f"{n} {k}" for k, n in kinds.items())
            + ")",
            "constellations: " + ("; ".join(shells) if shells else "none"),
            f"{len(self.haps)} HAPS",
            _count(len(self.fiber.edges), "fiber edge"),
            _count(len(self.weather.events), "weather event"),
            self._traffic_summary(),
            f"{self.time.duration_s:g} s at {self.time.tick_s:g} s ticks",
        ]
        return ", ".join(parts)

    def _traffic_summary(self) -> str:
        flows = self.traffic.flows
        text = _count(len(flows), "flow")
        if flows:
            per_class = {
                c: sum(f.traffic_class == c for f in flows) for c in get_args(TrafficClassName)
            }
            text += " (" + ", ".join(f"{n} {c}" for c, n in per_class.items() if n) + ")"
        return text

    @model_validator(mode="after")
    def _cross_references(self) -> Scenario:
        problems: list[Problem] = []
        problems += self._check_unique_names()
        problems += self._check_clusters()
        problems += self._check_fiber()
        problems += self._check_weather()
        problems += self._check_traffic()
        if self.haps and self.equipment.haps is None:
            problems.append(
                Problem(
                    ("equipment", "haps"),
                    None,
                    f"equipment.haps is required: the scenario has {len(self.haps)} HAPS",
                )
            )
        if problems:
            raise ScenarioProblems(problems)
        return self

    def _check_unique_names(self) -> list[Problem]:
        problems = []
        seen: dict[str, tuple] = {}
        groups = (
            ("sites", self.sites),
            ("haps", self.haps),
            ("constellations", self.constellations),
        )
        for group, items in groups:
            for i, item in enumerate(items):
                if item.name in seen:
                    where = "{}[{}]".format(*seen[item.name])
                    problems.append(
                        Problem(
                            (group, i, "name"),
                            item.name,
                            f"name {item.name!r} is already used by {where}; node names must "
                            f"be unique",
                        )
                    )
                else:
                    seen[item.name] = (group, i)
        names = [c.name for c in self.ogs_clusters]
        for i, n in enumerate(names):
            if n in names[:i]:
                problems.append(
                    Problem(("ogs_clusters", i, "name"), n, f"cluster name {n!r} is repeated")
                )
        return problems

    def _check_clusters(self) -> list[Problem]:
        problems = []
        by_name = {s.name: (i, s) for i, s in enumerate(self.sites)}
        cluster_names = {c.name for c in self.ogs_clusters}
        ogs_names = sorted(s.name for s in self.sites if s.kind == "ogs")
        for i, site in enumerate(self.sites):
            if site.cluster is None:
                continue
            if site.cluster not in cluster_names:
                allowed = ", ".join(sorted(cluster_names)) or "none defined in ogs_clusters"
                problems.append(
                    Problem(
                        ("sites", i, "cluster"),
                        site.cluster,
                        f"no OGS cluster named {site.cluster!r}; allowed: {allowed}",
                    )
                )
            elif site.kind != "ogs":
                problems.append(
                    Problem(
                        ("sites", i, "cluster"),
                        site.cluster,
                        f"site {site.name!r} has kind {site.kind!r}; only kind 'ogs' sites "
                        f"join OGS clusters",
                    )
                )
        for ci, cluster in enumerate(self.ogs_clusters):
            for mi, member in enumerate(cluster.members):
                loc = ("ogs_clusters", ci, "members", mi)
                if member not in by_name:
                    problems.append(
                        Problem(
                            loc,
                            member,
                            f"no site named {member!r}; allowed: OGS sites "
                            f"{', '.join(ogs_names) or '(none)'}",
                        )
                    )
                elif by_name[member][1].kind != "ogs":
                    problems.append(
                        Problem(
                            loc,
                            member,
                            f"site {member!r} has kind {by_name[member][1].kind!r}; cluster "
                            f"members must have kind 'ogs'",
                        )
                    )
                elif (other := by_name[member][1].cluster) not in (None, cluster.name):
                    problems.append(
                        Problem(
                            loc,
                            member,
                            f"site {member!r} says cluster {other!r} but is listed in "
                            f"{cluster.name!r}",
                        )
                    )
            members = [by_name[m][1] for m in self.cluster_members(cluster.name) if m in by_name]
            for a_i, a in enumerate(members):
                for b in members[a_i + 1 :]:
                    d_m = great_circle_distance_m(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)
                    if d_m < cluster.min_separation_m:
                        problems.append(
                            Problem(
                                ("ogs_clusters", ci, "members"),
                                [a.name, b.name],
                                f"members {a.name!r} and {b.name!r} are {d_m / 1e3:.1f} km "
                                f"apart; allowed: >= {cluster.min_separation_m / 1e3:g} km "
                                f"(min_separation_m of cluster {cluster.name!r}; main paper "
                                f"sec. III-A: >50 km)",
                            )
                        )
        return problems

    def _check_fiber(self) -> list[Problem]:
        problems = []
        names = {s.name for s in self.sites}
        seen_pairs: dict[frozenset, int] = {}
        for i, edge in enumerate(self.fiber.edges):
            for end in ("a", "b"):
                value = getattr(edge, end)
                if value not in names:
                    problems.append(
                        Problem(
                            ("fiber", "edges", i, end),
                            value,
                            f"no site named {value!r}; fibre ends must be sites",
                        )
                    )
            if edge.a == edge.b:
                problems.append(
                    Problem(("fiber", "edges", i, "b"), edge.b, "a fibre edge needs two sites")
                )
            pair = frozenset((edge.a, edge.b))
            if pair in seen_pairs:
                problems.append(
                    Problem(
                        ("fiber", "edges", i),
                        [edge.a, edge.b],
                        f"duplicate of fiber.edges[{seen_pairs[pair]}]",
                    )
                )
            seen_pairs.setdefault(pair, i)
        return problems

    def _check_weather(self) -> list[Problem]:
        problems = []
        site_names = [s.name for s in self.sites]
        duration_s = self.time.duration_s
        seen: dict[str, int] = {}
        for i, event in enumerate(self.weather.events):
            loc = ("weather", "events", i)
            if event.name in seen:
                problems.append(
                    Problem(
                        (*loc, "name"),
                        event.name,
                        f"event name {event.name!r} is already used by "
                        f"weather.events[{seen[event.name]}]; event names must be unique",
                    )
                )
            seen.setdefault(event.name, i)
            for j, site in enumerate(event.sites or ()):
                if site not in site_names:
                    problems.append(
                        Problem(
                            (*loc, "sites", j),
                            site,
                            f"no site named {site!r}; allowed: "
                            f"{_site_names_help(site, site_names)}",
                        )
                    )
            if event.start_s >= duration_s:
                problems.append(
                    Problem(
                        (*loc, "start_s"),
                        event.start_s,
                        f"start_s ({event.start_s:g} s) is not within the scenario; allowed: "
                        f"[0, {duration_s:g}) s (time.duration_s = {duration_s:g})",
                    )
                )
            if event.end_s > duration_s:
                problems.append(
                    Problem(
                        (*loc, "end_s"),
                        event.end_s,
                        f"end_s ({event.end_s:g} s) is after the scenario ends; allowed: "
                        f"end_s <= {duration_s:g} s (time.duration_s)",
                    )
                )
        return problems

    def _check_traffic(self) -> list[Problem]:
        problems = []
        site_names = [s.name for s in self.sites]
        known = set(site_names)
        start_utc = self.time.start_utc
        seen: dict[str, int] = {}
        for i, flow in enumerate(self.traffic.flows):
            loc = ("traffic", "flows", i)
            found = []
            if flow.name in seen:
                found.append(
                    Problem(
                        (*loc, "name"),
                        flow.name,
                        f"flow name {flow.name!r} is already used by "
                        f"traffic.flows[{seen[flow.name]}]; flow names must be unique",
                    )
                )
            seen.setdefault(flow.name, i)
            for end in ("src", "dst"):
                value = getattr(flow, end)
                if value not in known:
                    found.append(
                        Problem(
                            (*loc, end),
                            value,
                            f"no site named {value!r}; allowed: "
                            f"{_site_names_help(value, site_names)}",
                        )
                    )
            for j, component in enumerate(flow.demand or ()):
                found += _demand_time_problems(component, (*loc, "demand", j), start_utc)
            if not found:
                found += self._flow_build_problems(i, flow)
            problems += found
        return problems

    def _flow_build_problems(self, index: int, flow: TrafficFlow) -> list[Problem]:
        """What twin.network.traffic still refuses in a flow the schema accepted.

        The schema checks everything the reader checks, with field paths; this catches a rule
        added to the reader and not yet here, so that ``flows()`` never fails on a scenario
        that validated.
        """
        try:
            flows_from_mapping({"flows": [flow.model_dump(exclude_none=True)]}, self.time.start_utc)
        except ValueError as exc:
            message = str(exc).replace("traffic.flows[0]", f"traffic.flows[{index}]")
            return [Problem(("traffic", "flows", index), flow.name, message)]
        return []

    # --- queries -----------------------------------------------------------------------------

    def flows(self) -> list[Flow]:
        """The ``traffic`` flows as twin.network.traffic ``Flow`` objects, in file order.

        Built by ``twin.network.traffic.flows_from_mapping`` from the validated section, so the
        schema and the network's reader cannot drift apart. Demand is exact (integer bits per
        tick, see twin.network.traffic); times count from ``time.start_utc``.
        """
        return list(
            flows_from_mapping(
                self.traffic.to_mapping(),
                self.time.start_utc,
                site_names=[s.name for s in self.sites],
            )
        )

    def site(self, name: str) -> Site:
        """The site called ``name`` (KeyError if none)."""
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)

    def cluster_members(self, cluster_name: str) -> list[str]:
        """Member site names of a cluster: its list, then sites naming it, without repeats."""
        cluster = next((c for c in self.ogs_clusters if c.name == cluster_name), None)
        if cluster is None:
            raise KeyError(cluster_name)
        out = list(dict.fromkeys(cluster.members))
        out += [s.name for s in self.sites if s.cluster == cluster_name and s.name not in out]
        return out

    def fiber_length_m(self, edge: FiberEdge) -> float:
        """Length of a fibre edge, m: as given, else great circle x route factor."""
        if edge.length_m is not None:
            return edge.length_m
        a, b = self.site(edge.a), self.site(edge.b)
        factor = edge.route_factor if edge.route_factor is not None else self.fiber.route_factor
        return factor * great_circle_distance_m(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)

    @property
    def n_satellites(self) -> int:
        """Satellites in walker shells (TLE/OMM shells count once parsed by orbits)."""
        return sum(c.walker.total for c in self.constellations if c.walker is not None)
