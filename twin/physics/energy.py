"""Energy: batteries, solar input and the power drawn by satellites, HAPS and ground stations.

Everything is SI: power in W, energy in J, time in s, areas in m^2. Functions are pure and
broadcast over numpy arrays (one element per satellite, per tick, or both).

Sign and accounting convention of :func:`battery_step` (the model's energy ledger): over one step

    E_in = E_delivered + delta_SoC + E_loss + E_curtailed

where ``E_in = power_in_w * dt_s`` is the generation offered to the bus (solar), ``E_delivered``
the energy that reached the loads, ``delta_SoC`` the change of stored energy, ``E_loss`` the
charge/discharge conversion losses and ``E_curtailed`` the surplus the full battery could not
take. Load the battery could not cover is ``E_unmet = power_out_w * dt_s - E_delivered``.

Equipment values (terminal powers, cryocooler wall-plug power, ...) are dataclass fields with
defaults; each default is cited or labelled ``assumption`` below. Scenario files override them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from twin.units import SOLAR_CONSTANT_W_PER_M2, WH_J

__all__ = [
    "GROUND_NODE_J_PER_BIT",
    "BatteryStep",
    "GroundStationPowerModel",
    "HapsPowerModel",
    "LaserLevel",
    "SatellitePowerModel",
    "battery_step",
    "energy_j",
    "energy_per_bit_j",
    "haps_solar_power_w",
    "solar_power_w",
]


def _as_float(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not contain NaN, got {value!r}")
    return arr


def _check_range(name: str, arr: np.ndarray, lo: float, hi: float, hint: str = "") -> None:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr[(arr < lo) | (arr > hi)].flat[0]
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"{name} must be within [{lo}, {hi}], got {bad}{extra}")


def _check_positive(name: str, arr: np.ndarray, strict: bool = True) -> None:
    bad_mask = arr <= 0 if strict else arr < 0
    if bad_mask.any():
        op = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be {op}, got {arr[bad_mask].flat[0]}")


def _out(arr: np.ndarray):
    """0-d arrays come back as numpy scalars, the rest unchanged."""
    return arr[()] if arr.ndim == 0 else arr


# --------------------------------------------------------------------------------------------
# Battery
# --------------------------------------------------------------------------------------------


class BatteryStep(NamedTuple):
    """Result of :func:`battery_step`; every field has the broadcast shape of the inputs."""

    soc_j: np.ndarray
    """state of charge after the step, J, within [0, capacity_j]"""
    delivered_j: np.ndarray
    """energy that reached the loads, J (<= power_out_w * dt_s)"""
    curtailed_j: np.ndarray
    """generation that neither fed the loads nor fit in the battery, J"""
    unmet_j: np.ndarray
    """load the generation and the battery could not cover, J"""
    loss_j: np.ndarray
    """charge and discharge conversion losses, J"""
    below_reserve: np.ndarray
    """True where the new state of charge is below reserve_j (a controller constraint)"""


def battery_step(
    soc_j,
    power_in_w,
    power_out_w,
    dt_s,
    *,
    capacity_j,
    charge_efficiency,
    discharge_efficiency,
    reserve_j=0.0,
    max_charge_w=np.inf,
    max_discharge_w=np.inf,
    validate: bool = True,
) -> BatteryStep:
    """Advance a battery by one step of constant generation and load.

    Generation ``power_in_w`` feeds the load ``power_out_w`` first; a surplus charges the battery
    (storing ``charge_efficiency`` of what it accepts), a deficit is drawn from it (delivering
    ``discharge_efficiency`` of what it gives up). The state of charge never leaves
    ``[0, capacity_j]``: surplus beyond a full battery is curtailed, load beyond an empty one is
    unmet. The reserve is not enforced here (a controller constraint, main paper sec. III eq. 5
    energy budget): ``below_reserve`` reports it.

    Optional C-rate limits: ``max_charge_w`` caps the power the battery accepts from the bus,
    ``max_discharge_w`` the power it delivers to the bus.

    Shapes: all arguments broadcast together (e.g. ``(N,)`` satellites, or ``(T, N)``); every
    field of the returned :class:`BatteryStep` has the broadcast shape. Units: J, W, s.

    The bookkeeping is the standard energy-balance battery model used in spacecraft power
    sizing (Wertz & Larson, Space Mission Analysis and Design, 3rd ed., 1999, sec. 11.4), with
    separate charge and discharge efficiencies; it conserves energy exactly:
    ``power_in_w*dt_s == delivered_j + (soc_j_new - soc_j) + loss_j + curtailed_j``.

    ``validate=False`` skips the argument checks (same arithmetic, same result): for a caller
    that steps the same, already checked batteries every tick (the engine's node sets).
    """
    if not validate:
        soc, cap, reserve = np.broadcast_arrays(
            np.asarray(soc_j, dtype=float), float(capacity_j), float(reserve_j)
        )
        return _battery_arithmetic(
            soc, np.asarray(power_in_w, dtype=float), np.asarray(power_out_w, dtype=float),
            float(dt_s), cap, float(charge_efficiency), float(discharge_efficiency), reserve,
            float(max_charge_w), float(max_discharge_w),
        )  # fmt: skip
    soc = _as_float("soc_j", soc_j)
    p_in = _as_float("power_in_w", power_in_w)
    p_out = _as_float("power_out_w", power_out_w)
    dt = _as_float("dt_s", dt_s)
    cap = _as_float("capacity_j", capacity_j)
    eta_c = _as_float("charge_efficiency", charge_efficiency)
    eta_d = _as_float("discharge_efficiency", discharge_efficiency)
    reserve = _as_float("reserve_j", reserve_j)
    max_c = _as_float("max_charge_w", max_charge_w)
    max_d = _as_float("max_discharge_w", max_discharge_w)

    _check_positive("capacity_j", cap)
    _check_positive("dt_s", dt)
    _check_positive("power_in_w", p_in, strict=False)
    _check_positive("power_out_w", p_out, strict=False)
    _check_positive("max_charge_w", max_c, strict=False)
    _check_positive("max_discharge_w", max_d, strict=False)
    _check_range("charge_efficiency", eta_c, 1e-9, 1.0, "a fraction, not a percentage")
    _check_range("discharge_efficiency", eta_d, 1e-9, 1.0, "a fraction, not a percentage")
    soc, cap, reserve = np.broadcast_arrays(soc, cap, reserve)
    if (soc < 0).any() or (soc > cap * (1 + 1e-12)).any():
        bad = soc[(soc < 0) | (soc > cap * (1 + 1e-12))].flat[0]
        raise ValueError(f"soc_j must be within [0, capacity_j], got {bad} (Wh passed as J?)")
    if (reserve < 0).any() or (reserve > cap).any():
        raise ValueError(f"reserve_j must be within [0, capacity_j], got {reserve.flat[0]}")
    return _battery_arithmetic(soc, p_in, p_out, dt, cap, eta_c, eta_d, reserve, max_c, max_d)


def _battery_arithmetic(soc, p_in, p_out, dt, cap, eta_c, eta_d, reserve, max_c, max_d):
    """:func:`battery_step`'s energy balance on checked arrays (``soc``, ``cap`` and
    ``reserve`` broadcast together)."""
    e_in = p_in * dt
    e_demand = p_out * dt
    surplus = e_in - e_demand  # > 0: charge; < 0: discharge

    headroom = np.maximum(cap - soc, 0.0)
    accepted = np.minimum(np.maximum(surplus, 0.0), np.minimum(headroom / eta_c, max_c * dt))
    deficit = np.maximum(-surplus, 0.0)
    drained = np.minimum(np.minimum(deficit / eta_d, soc), max_d * dt / eta_d)

    new_soc = np.clip(soc + accepted * eta_c - drained, 0.0, cap)
    from_battery = drained * eta_d
    unmet = np.maximum(deficit - from_battery, 0.0)
    delivered = e_demand - unmet
    curtailed = np.maximum(surplus, 0.0) - accepted
    loss = accepted * (1.0 - eta_c) + drained * (1.0 - eta_d)
    below = new_soc < reserve

    shape = np.broadcast_shapes(new_soc.shape, delivered.shape)
    return BatteryStep(
        *(
            _out(np.broadcast_to(a, shape).copy())
            for a in (new_soc, delivered, curtailed, unmet, loss, below)
        )
    )


# --------------------------------------------------------------------------------------------
# Solar input
# --------------------------------------------------------------------------------------------


def solar_power_w(
    panel_area_m2,
    efficiency,
    sunlit_fraction,
    cos_incidence=1.0,
    *,
    inherent_degradation=1.0,
    degradation_per_year=0.0,
    age_years=0.0,
):
    """Electrical power of a solar array in space, W.

    ``P = S0 * A * eta * I_d * max(cos(theta), 0) * (1 - D)^age * sunlit_fraction`` with
    ``S0 = SOLAR_CONSTANT_W_PER_M2`` (1361 W/m^2, Kopp & Lean 2011), following the array sizing
    of Wertz & Larson, SMAD 3rd ed., 1999, sec. 11.4 (P_BOL = P_0 I_d cos(theta),
    L_d = (1 - degradation/yr)^life).

    ``sunlit_fraction`` is 1 in sunlight, 0 in umbra, in between for penumbra or for a tick that
    straddles the terminator (``1 - eclipse fraction``). A panel facing away
    (``cos_incidence < 0``) produces nothing. All arguments broadcast; the result has the
    broadcast shape.
    """
    area = _as_float("panel_area_m2", panel_area_m2)
    eta = _as_float("efficiency", efficiency)
    sunlit = _as_float("sunlit_fraction", sunlit_fraction)
    cos_i = _as_float("cos_incidence", cos_incidence)
    i_d = _as_float("inherent_degradation", inherent_degradation)
    deg = _as_float("degradation_per_year", degradation_per_year)
    age = _as_float("age_years", age_years)
    _check_positive("panel_area_m2", area, strict=False)
    _check_range("efficiency", eta, 0.0, 1.0, "a fraction, not a percentage")
    _check_range("sunlit_fraction", sunlit, 0.0, 1.0)
    _check_range("cos_incidence", cos_i, -1.0, 1.0, "a cosine, not an angle")
    _check_range("inherent_degradation", i_d, 0.0, 1.0)
    _check_range("degradation_per_year", deg, 0.0, 1.0 - 1e-12, "a fraction per year")
    _check_positive("age_years", age, strict=False)
    life = np.power(1.0 - deg, age)
    p = SOLAR_CONSTANT_W_PER_M2 * area * eta * i_d * np.maximum(cos_i, 0.0) * life * sunlit
    return _out(np.asarray(p))


def haps_solar_power_w(
    sun_elevation_rad, panel_area_m2, efficiency, *, atmospheric_transmittance=0.95
):
    """Electrical power of a horizontal solar array on a stratospheric HAPS, W.

    ``P = S0 * tau * A * eta * max(sin(sun elevation), 0)``: a wing-mounted (horizontal) array
    sees the sun at incidence ``90 deg - elevation``; at night (elevation < 0) it produces
    nothing. ``atmospheric_transmittance`` accounts for the ~5-7 % of the atmosphere's mass
    above 17-20 km (assumption: 0.95, slant-path dependence neglected).

    Shapes broadcast; ``sun_elevation_rad`` in radians within [-pi/2, pi/2].
    """
    elev = _as_float("sun_elevation_rad", sun_elevation_rad)
    _check_range("sun_elevation_rad", elev, -math.pi / 2, math.pi / 2, "degrees passed?")
    tau = _as_float("atmospheric_transmittance", atmospheric_transmittance)
    _check_range("atmospheric_transmittance", tau, 0.0, 1.0)
    return solar_power_w(panel_area_m2, efficiency, 1.0, 1.0) * tau * np.maximum(np.sin(elev), 0.0)


# --------------------------------------------------------------------------------------------
# Loads
# --------------------------------------------------------------------------------------------


class LaserLevel(IntEnum):
    """Power setting of an optical terminal (main paper sec. IV: "QKD Turbo Mode")."""

    OFF = 0
    STANDBY = 1  # thermal control and beacon receiver on, no transmission
    ON = 2  # nominal transmission
    TURBO = 3  # boosted repetition rate / power for key refresh


def _check_duty(name: str, value) -> np.ndarray:
    arr = _as_float(name, value)
    _check_range(name, arr, 0.0, 1.0, "a duty cycle in [0, 1] or a boolean")
    return arr


def _laser_levels(levels) -> np.ndarray:
    arr = np.asarray(levels)
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(
                f"laser_levels must be integer LaserLevel values 0..3, got dtype {arr.dtype}"
            )
    if arr.size and (arr.min() < 0 or arr.max() > 3):
        bad = arr[(arr < 0) | (arr > 3)].flat[0]
        raise ValueError(f"laser_levels must be LaserLevel values 0 (OFF) .. 3 (TURBO), got {bad}")
    return arr.astype(np.int64)


@dataclass(frozen=True)
class SatellitePowerModel:
    """Power budget of one LEO satellite: loads, battery and solar array.

    Defaults describe a ~150-300 kg smallsat with optical terminals (a Starlink-class bus is
    larger; scenarios override these). Sources and assumptions, per field:

    - ``bus_w``: assumption, 150 W platform (ADCS, OBC, thermal, TT&C) for a ~200 kg smallsat.
    - laser terminal: CubeSat terminals draw 8.5 W (Tesat CubeLCT) to 15 W (MIT CLICK-A) and up
      to 100 W for a 200 Gbit/s downlink terminal (MIT LL TBIRD) (Table 1, "Details of CubeSat-based
      laser communication projects", J. Space Technol. Appl. 4(2), 87, 2024). Assumption, inside
      that range:
      ``laser_on_w = 40`` (smallsat terminal with coarse pointing), standby 10 W, turbo 60 W
      (main paper sec. IV "QKD Turbo Mode" diverts power to the laser), off 0 W.
    - ``qkd_payload_w``: assumption, 30 W (QRNG, state preparation, timing, on-board post-
      processing for a decoy-BB84 source).
    - ``compute_w``: 15 W, the maximum mode of an NVIDIA Jetson TX2-class module (NVIDIA Jetson
      TX2 module data sheet: 7.5 W / 15 W modes), used for edge inference.
    - battery: assumption, 1 kWh Li-ion, 30 % reserve; charge and discharge efficiencies 0.95
      each (assumption: ~90 % round trip for Li-ion at moderate C-rates).
    - solar array: assumption, 2.0 m^2 of triple-junction cells at 30 % (e.g. Spectrolab XTJ
      Prime, 30.7 % BOL minimum average efficiency at 28 C, AM0 data sheet), ~820 W in sun.
    """

    bus_w: float = 150.0
    laser_off_w: float = 0.0
    laser_standby_w: float = 10.0
    laser_on_w: float = 40.0
    laser_turbo_w: float = 60.0
    laser_terminals: int = 2
    qkd_payload_w: float = 30.0
    compute_w: float = 15.0
    battery_capacity_j: float = 1_000.0 * WH_J
    reserve_fraction: float = 0.30
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    solar_area_m2: float = 2.0
    solar_efficiency: float = 0.30
    max_charge_w: float = math.inf
    max_discharge_w: float = math.inf

    def __post_init__(self) -> None:
        for name in (
            "bus_w",
            "laser_off_w",
            "laser_standby_w",
            "laser_on_w",
            "laser_turbo_w",
            "qkd_payload_w",
            "compute_w",
            "solar_area_m2",
            "max_charge_w",
            "max_discharge_w",
        ):
            _check_positive(name, np.asarray(getattr(self, name), dtype=float), strict=False)
        _check_positive("battery_capacity_j", np.asarray(self.battery_capacity_j, dtype=float))
        if not (0 <= self.laser_terminals == int(self.laser_terminals)):
            raise ValueError(f"laser_terminals must be an integer >= 0, got {self.laser_terminals}")
        for name in ("reserve_fraction", "charge_efficiency", "discharge_efficiency"):
            _check_range(name, np.asarray(getattr(self, name), dtype=float), 0.0, 1.0)
        if self.charge_efficiency == 0 or self.discharge_efficiency == 0:
            raise ValueError("charge_efficiency and discharge_efficiency must be > 0")
        _check_range("solar_efficiency", np.asarray(self.solar_efficiency), 0.0, 1.0)

    @property
    def reserve_j(self) -> float:
        """Energy the controller must keep in the battery, J."""
        return self.reserve_fraction * self.battery_capacity_j

    @property
    def turbo_key_rate_gain(self) -> float:
        """How many times faster a terminal in QKD turbo mode makes key than one "on" (main
        paper sec. VIII.C): ``laser_turbo_w / laser_on_w``. Assumption, as
        twin.network.handover.ResilienceParams.turbo_skr_gain: the key rate scales with the
        source's repetition rate, raised in proportion to the laser's power (60 W / 40 W =
        1.5). 1 where the turbo level is no stronger than "on" (or "on" draws nothing, which a
        scenario may set): no turbo mode."""
        on_w, turbo_w = self.laser_on_w, self.laser_turbo_w
        return turbo_w / on_w if turbo_w > on_w > 0 else 1.0

    @property
    def laser_level_powers_w(self) -> np.ndarray:
        """Power of one terminal at each :class:`LaserLevel`, W, indexed by the level."""
        return np.array(
            [self.laser_off_w, self.laser_standby_w, self.laser_on_w, self.laser_turbo_w]
        )

    def load_w(self, laser_levels, *, qkd_duty=1.0, compute_duty=1.0):
        """Total electrical load, W.

        ``laser_levels``: integer :class:`LaserLevel` array of shape ``(..., K)``, one entry per
        terminal on the last axis (K need not equal ``laser_terminals``: extra entries are
        rejected, missing ones count as OFF). ``qkd_duty`` and ``compute_duty`` (booleans or
        duty cycles in [0, 1]) broadcast against ``(...)``. Returns shape ``(...)``.
        """
        levels = _laser_levels(laser_levels)
        if levels.ndim == 0:
            raise ValueError("laser_levels needs a last axis of terminals, e.g. [2, 0]")
        if levels.shape[-1] > self.laser_terminals:
            raise ValueError(
                f"laser_levels has {levels.shape[-1]} terminals on its last axis, the satellite "
                f"has laser_terminals={self.laser_terminals}"
            )
        lasers_w = self.laser_level_powers_w[levels].sum(axis=-1)
        lasers_w = lasers_w + (self.laser_terminals - levels.shape[-1]) * self.laser_off_w
        qkd = _check_duty("qkd_duty", qkd_duty)
        comp = _check_duty("compute_duty", compute_duty)
        return _out(
            np.asarray(self.bus_w + lasers_w + qkd * self.qkd_payload_w + comp * self.compute_w)
        )

    @functools.cached_property
    def _solar_w_when_sunlit(self):
        # solar_power_w's product up to its last factor, the sunlit fraction (times 1.0 here,
        # which is exact): times a fraction it gives solar_power_w's value bit for bit
        return solar_power_w(self.solar_area_m2, self.solar_efficiency, 1.0, 1.0)

    def solar_w(self, sunlit_fraction, cos_incidence=1.0):
        """Array output, W (see :func:`solar_power_w`); broadcasts."""
        return solar_power_w(
            self.solar_area_m2, self.solar_efficiency, sunlit_fraction, cos_incidence
        )

    def step(
        self, soc_j, sunlit_fraction, load_w, dt_s, cos_incidence=1.0, *, validate=True
    ) -> BatteryStep:
        """:func:`battery_step` with this satellite's array and battery; broadcasts
        (``validate=False``: :func:`battery_step`'s, and the array's power is the checked
        one's without the checks: the same products in the same order)."""
        if validate or not (isinstance(cos_incidence, float) and cos_incidence == 1.0):
            solar_w = self.solar_w(sunlit_fraction, cos_incidence)
        else:
            solar_w = self._solar_w_when_sunlit * np.asarray(sunlit_fraction, dtype=float)
        return battery_step(
            soc_j,
            solar_w,
            load_w,
            dt_s,
            capacity_j=self.battery_capacity_j,
            charge_efficiency=self.charge_efficiency,
            discharge_efficiency=self.discharge_efficiency,
            reserve_j=self.reserve_j,
            max_charge_w=self.max_charge_w,
            max_discharge_w=self.max_discharge_w,
            validate=validate,
        )


@dataclass(frozen=True)
class GroundStationPowerModel:
    """Wall-plug power of an optical ground station with SNSPD detectors, W.

    - ``cryocooler_w``: 1.5 kW, the closed-cycle Gifford-McMahon cooler of a commercial SNSPD
      system ("a device about the size of a water heater that draws 1.5 kilowatts", NIST news
      release "No Liquid Helium, But Still Extremely Cool", 2017, S. W. Nam). It runs
      continuously: an SNSPD cryostat takes hours to cool down, so it is not cycled per pass.
      Larger GM coolers (Sumitomo F-70-class compressors) draw ~6-7 kW: set it in the scenario.
    - ``telescope_drive_w``: assumption, 500 W for the mount and dome drives of a ~1 m
      telescope while tracking.
    - ``adaptive_optics_w``: assumption, 200 W (deformable-mirror drivers, wavefront-sensor
      camera, real-time computer) while tracking.
    - ``it_w``: assumption, 300 W (time-tagger, QKD post-processing server, network gear),
      always on.
    """

    cryocooler_w: float = 1_500.0
    telescope_drive_w: float = 500.0
    adaptive_optics_w: float = 200.0
    it_w: float = 300.0

    def __post_init__(self) -> None:
        for name in ("cryocooler_w", "telescope_drive_w", "adaptive_optics_w", "it_w"):
            _check_positive(name, np.asarray(getattr(self, name), dtype=float), strict=False)

    def power_w(self, tracking_duty=0.0, *, cryocooler_on=True):
        """Station power, W: cryocooler and IT always, drives and AO while tracking.

        ``tracking_duty`` is a boolean or duty cycle in [0, 1] (fraction of the tick spent
        tracking); ``cryocooler_on`` a boolean or duty. Broadcast shape of both.
        """
        track = _check_duty("tracking_duty", tracking_duty)
        cryo = _check_duty("cryocooler_on", cryocooler_on)
        p = (
            cryo * self.cryocooler_w
            + self.it_w
            + track * (self.telescope_drive_w + self.adaptive_optics_w)
        )
        return _out(np.asarray(p))


@dataclass(frozen=True)
class HapsPowerModel:
    """Power budget of a solar-electric HAPS: solar by day, battery by night.

    All defaults are assumptions for a ~25 m-span solar aircraft of the Airbus Zephyr class:
    ``solar_area_m2 = 20`` at 25 % (thin-film/III-V on the wing), ``propulsion_avionics_w =
    300`` (level flight at ~20 km), one optical terminal (``terminal_w = 40``, as the satellite
    terminal), ``qkd_payload_w = 30``, an 8 kWh battery (Li-S / Li-ion at ~400 Wh/kg, ~20 kg)
    with 20 % reserve and 0.95 / 0.95 efficiencies. Sized so that a 12 h equinox night at
    370 W (4.44 kWh delivered, 4.44 / 0.95 = 4.67 kWh drawn from the cells) stays above the
    reserve (6.4 kWh usable above it).
    """

    solar_area_m2: float = 20.0
    solar_efficiency: float = 0.25
    propulsion_avionics_w: float = 300.0
    terminal_w: float = 40.0
    qkd_payload_w: float = 30.0
    battery_capacity_j: float = 8_000.0 * WH_J
    reserve_fraction: float = 0.20
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    atmospheric_transmittance: float = field(default=0.95)

    def __post_init__(self) -> None:
        for name in ("solar_area_m2", "propulsion_avionics_w", "terminal_w", "qkd_payload_w"):
            _check_positive(name, np.asarray(getattr(self, name), dtype=float), strict=False)
        _check_positive("battery_capacity_j", np.asarray(self.battery_capacity_j, dtype=float))
        for name in (
            "solar_efficiency",
            "reserve_fraction",
            "charge_efficiency",
            "discharge_efficiency",
            "atmospheric_transmittance",
        ):
            _check_range(name, np.asarray(getattr(self, name), dtype=float), 0.0, 1.0)

    @property
    def reserve_j(self) -> float:
        """Energy the controller must keep in the battery, J."""
        return self.reserve_fraction * self.battery_capacity_j

    def load_w(self, terminal_duty=1.0, qkd_duty=1.0):
        """Total load, W; duties (booleans or [0, 1]) broadcast."""
        term = _check_duty("terminal_duty", terminal_duty)
        qkd = _check_duty("qkd_duty", qkd_duty)
        return _out(
            np.asarray(
                self.propulsion_avionics_w + term * self.terminal_w + qkd * self.qkd_payload_w
            )
        )

    @functools.cached_property
    def _solar_w_at_zenith(self):
        # haps_solar_power_w's product before its last factor, max(sin(elevation), 0)
        tau = _as_float("atmospheric_transmittance", self.atmospheric_transmittance)
        return solar_power_w(self.solar_area_m2, self.solar_efficiency, 1.0, 1.0) * tau

    def solar_w(self, sun_elevation_rad):
        """Array output, W, for the sun at ``sun_elevation_rad`` (:func:`haps_solar_power_w`)."""
        return haps_solar_power_w(
            sun_elevation_rad,
            self.solar_area_m2,
            self.solar_efficiency,
            atmospheric_transmittance=self.atmospheric_transmittance,
        )

    def step(self, soc_j, sun_elevation_rad, load_w, dt_s, *, validate=True) -> BatteryStep:
        """:func:`battery_step` with this platform's array and battery; broadcasts
        (``validate=False``: :func:`battery_step`'s, and the array's power is the checked
        one's without the checks: the same products in the same order)."""
        if validate:
            solar_w = self.solar_w(sun_elevation_rad)
        else:
            elevation = np.asarray(sun_elevation_rad, dtype=float)
            solar_w = self._solar_w_at_zenith * np.maximum(np.sin(elevation), 0.0)
        return battery_step(
            soc_j,
            solar_w,
            load_w,
            dt_s,
            capacity_j=self.battery_capacity_j,
            charge_efficiency=self.charge_efficiency,
            discharge_efficiency=self.discharge_efficiency,
            reserve_j=self.reserve_j,
            validate=validate,
        )


# --------------------------------------------------------------------------------------------
# Energy and energy per bit
# --------------------------------------------------------------------------------------------


# Traffic-dependent energy of a ground node (assumption, the order of magnitude the literature
# gives): every bit a site or OGS forwards costs 10 nJ on top of the node's fixed power, about
# an IP router's energy per bit at full load (R. S. Tucker, "Green optical communications -
# Part II: energy limitations in networks", IEEE J. Sel. Top. Quantum Electron. 17(2), 2011).
# It is an upper bound on the marginal part: most of a router's power does not depend on its
# load (Vishwanath et al., "Modeling energy consumption in high-capacity routers and switches",
# IEEE J. Sel. Areas Commun. 32(8), 2014). Satellites and HAPS are not charged per bit: their
# loads are their terminals' (SatellitePowerModel, HapsPowerModel), drawn from the sun.
GROUND_NODE_J_PER_BIT = 1e-8


def energy_j(power_w, dt_s):
    """Energy of a constant power over a step, J (``P * dt``); broadcasts."""
    return _out(np.asarray(_as_float("power_w", power_w) * _as_float("dt_s", dt_s)))


def energy_per_bit_j(power_w, bit_rate_bps):
    """Energy per delivered bit, J/bit (``P / R``); ``inf`` where the rate is 0.

    The main paper's energy-efficiency metric (sec. V, "Energy Consumption (Joules/bit)").
    Shapes broadcast.
    """
    p = _as_float("power_w", power_w)
    r = _as_float("bit_rate_bps", bit_rate_bps)
    _check_positive("power_w", p, strict=False)
    _check_positive("bit_rate_bps", r, strict=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(r > 0, p / np.where(r > 0, r, 1.0), np.inf)
    return _out(np.asarray(e))
