"""Tests of twin.physics.energy: battery ledger, solar input, loads, energy per bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.physics.energy import (
    GroundStationPowerModel,
    HapsPowerModel,
    LaserLevel,
    SatellitePowerModel,
    battery_step,
    energy_j,
    energy_per_bit_j,
    haps_solar_power_w,
    solar_power_w,
)
from twin.units import DEG, EARTH_MU_M3_PER_S2, SOLAR_CONSTANT_W_PER_M2, WGS84_A_M, WH_J

CAP_J = 1_000.0 * WH_J
ONE_MILLIJOULE = 1e-3


def _ledger_residual_j(soc0, step, p_in, dt):
    """E_in - (delivered + dSoC + loss + curtailed): zero when energy is conserved."""
    return p_in * dt - (step.delivered_j + (step.soc_j - soc0) + step.loss_j + step.curtailed_j)


# --- battery_step ---------------------------------------------------------------------------


def test_battery_charges_with_charge_efficiency():
    step = battery_step(
        0.5 * CAP_J,
        500.0,
        200.0,
        60.0,
        capacity_j=CAP_J,
        charge_efficiency=0.9,
        discharge_efficiency=0.95,
    )
    # 300 W surplus for 60 s = 18 kJ offered, 90 % stored.
    assert step.soc_j == pytest.approx(0.5 * CAP_J + 0.9 * 18_000.0, abs=ONE_MILLIJOULE)
    assert step.delivered_j == pytest.approx(200.0 * 60.0)
    assert step.loss_j == pytest.approx(0.1 * 18_000.0)
    assert step.curtailed_j == 0.0 and step.unmet_j == 0.0


def test_battery_full_curtails_surplus():
    step = battery_step(
        CAP_J - 900.0,
        1_000.0,
        0.0,
        10.0,
        capacity_j=CAP_J,
        charge_efficiency=0.9,
        discharge_efficiency=0.9,
    )
    # 900 J of headroom take 1000 J from the bus at 90 %; the other 9000 J are curtailed.
    assert step.soc_j == pytest.approx(CAP_J)
    assert step.curtailed_j == pytest.approx(9_000.0)
    assert step.loss_j == pytest.approx(100.0)


def test_battery_empty_leaves_load_unmet():
    step = battery_step(
        1_000.0,
        0.0,
        100.0,
        60.0,
        capacity_j=CAP_J,
        charge_efficiency=0.95,
        discharge_efficiency=0.8,
    )
    # 1000 J stored deliver 800 J of a 6000 J demand.
    assert step.soc_j == 0.0
    assert step.delivered_j == pytest.approx(800.0)
    assert step.unmet_j == pytest.approx(5_200.0)
    assert step.loss_j == pytest.approx(200.0)
    assert bool(step.below_reserve) is False  # reserve_j defaults to 0


def test_battery_reserve_is_reported_not_enforced():
    step = battery_step(
        0.35 * CAP_J,
        0.0,
        300.0,
        600.0,
        capacity_j=CAP_J,
        charge_efficiency=0.95,
        discharge_efficiency=0.95,
        reserve_j=0.3 * CAP_J,
    )
    assert step.unmet_j == 0.0  # the battery still covers the load below the reserve
    assert step.soc_j < 0.3 * CAP_J
    assert bool(step.below_reserve)


def test_battery_c_rate_limits():
    step = battery_step(
        0.5 * CAP_J,
        1_000.0,
        0.0,
        10.0,
        capacity_j=CAP_J,
        charge_efficiency=1.0,
        discharge_efficiency=1.0,
        max_charge_w=200.0,
    )
    assert step.soc_j == pytest.approx(0.5 * CAP_J + 2_000.0)
    assert step.curtailed_j == pytest.approx(8_000.0)
    step = battery_step(
        0.5 * CAP_J,
        0.0,
        1_000.0,
        10.0,
        capacity_j=CAP_J,
        charge_efficiency=1.0,
        discharge_efficiency=0.5,
        max_discharge_w=300.0,
    )
    assert step.delivered_j == pytest.approx(3_000.0)  # 300 W delivered
    assert step.soc_j == pytest.approx(0.5 * CAP_J - 6_000.0)  # at 50 % discharge efficiency
    assert step.unmet_j == pytest.approx(7_000.0)


@settings(max_examples=300, deadline=None)
@given(
    soc_frac=st.floats(0.0, 1.0),
    p_in=st.floats(0.0, 5_000.0),
    p_out=st.floats(0.0, 5_000.0),
    dt=st.floats(1e-3, 3_600.0),
    eta_c=st.floats(0.5, 1.0),
    eta_d=st.floats(0.5, 1.0),
    max_c=st.one_of(st.just(math.inf), st.floats(0.0, 2_000.0)),
    max_d=st.one_of(st.just(math.inf), st.floats(0.0, 2_000.0)),
)
def test_battery_conserves_energy_and_stays_in_bounds(
    soc_frac, p_in, p_out, dt, eta_c, eta_d, max_c, max_d
):
    soc0 = soc_frac * CAP_J
    step = battery_step(
        soc0,
        p_in,
        p_out,
        dt,
        capacity_j=CAP_J,
        charge_efficiency=eta_c,
        discharge_efficiency=eta_d,
        max_charge_w=max_c,
        max_discharge_w=max_d,
    )
    assert 0.0 <= step.soc_j <= CAP_J
    for name in ("delivered_j", "curtailed_j", "unmet_j", "loss_j"):
        assert getattr(step, name) >= 0.0, name
    # in = stored + delivered + losses + curtailed, to rounding of the largest term
    scale = max(p_in * dt, p_out * dt, CAP_J)
    assert abs(_ledger_residual_j(soc0, step, p_in, dt)) <= 1e-9 * scale
    assert step.delivered_j + step.unmet_j == pytest.approx(p_out * dt, rel=1e-12, abs=1e-9)


def test_battery_broadcasting():
    rng = np.random.default_rng(1)
    soc = rng.uniform(0, CAP_J, size=(4, 3))
    p_in = rng.uniform(0, 800, size=(4, 3))
    p_out = rng.uniform(0, 800, size=(3,))  # broadcasts along the first axis
    kw = dict(
        capacity_j=CAP_J, charge_efficiency=0.93, discharge_efficiency=0.97, reserve_j=0.3 * CAP_J
    )
    grid = battery_step(soc, p_in, p_out, 30.0, **kw)
    row = battery_step(soc[2], p_in[2], p_out, 30.0, **kw)
    for field in grid._fields:
        assert getattr(grid, field).shape == (4, 3), field
        assert getattr(row, field).shape == (3,), field
        np.testing.assert_array_equal(getattr(grid, field)[2], getattr(row, field))
    for j in range(3):
        one = battery_step(soc[2, j], p_in[2, j], p_out[j], 30.0, **kw)
        assert np.ndim(one.soc_j) == 0
        assert one.soc_j == grid.soc_j[2, j]
        assert bool(one.below_reserve) == bool(grid.below_reserve[2, j])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(soc_j=-1.0), "soc_j"),
        (dict(soc_j=2 * CAP_J), "soc_j"),
        (dict(power_in_w=-5.0), "power_in_w"),
        (dict(dt_s=0.0), "dt_s"),
        (dict(charge_efficiency=95.0), "percentage"),
    ],
)
def test_battery_rejects_bad_inputs(kwargs, match):
    args = dict(
        soc_j=0.5 * CAP_J,
        power_in_w=100.0,
        power_out_w=50.0,
        dt_s=1.0,
        capacity_j=CAP_J,
        charge_efficiency=0.95,
        discharge_efficiency=0.95,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        battery_step(
            args.pop("soc_j"),
            args.pop("power_in_w"),
            args.pop("power_out_w"),
            args.pop("dt_s"),
            **args,
        )


# --- solar ----------------------------------------------------------------------------------


def test_solar_power_formula():
    # 1 m^2 at 30 % facing the sun at 1 AU: 0.3 * 1361 W
    assert solar_power_w(1.0, 0.3, 1.0) == pytest.approx(0.3 * SOLAR_CONSTANT_W_PER_M2)
    assert solar_power_w(1.0, 0.3, 0.0) == 0.0  # umbra
    assert solar_power_w(1.0, 0.3, 1.0, -0.5) == 0.0  # facing away
    assert solar_power_w(2.0, 0.3, 0.5, 0.5) == pytest.approx(0.25 * 2 * 0.3 * 1361.0)
    # SMAD life degradation (1 - D)^L: 2.75 %/yr over 5 years
    aged = solar_power_w(1.0, 0.3, 1.0, degradation_per_year=0.0275, age_years=5.0)
    assert aged == pytest.approx(0.3 * 1361.0 * (1 - 0.0275) ** 5)


def test_solar_power_broadcasting():
    sunlit = np.array([0.0, 0.5, 1.0])
    cos_i = np.array([[1.0], [0.5], [-1.0], [0.2]])
    grid = solar_power_w(2.0, 0.28, sunlit, cos_i)
    assert grid.shape == (4, 3)
    np.testing.assert_allclose(grid[1], solar_power_w(2.0, 0.28, sunlit, 0.5))
    assert grid[1, 2] == solar_power_w(2.0, 0.28, 1.0, 0.5)
    assert np.ndim(solar_power_w(2.0, 0.28, 1.0)) == 0


def test_solar_rejects_percentages_and_angles():
    with pytest.raises(ValueError, match="percentage"):
        solar_power_w(1.0, 30.0, 1.0)
    with pytest.raises(ValueError, match="cosine"):
        solar_power_w(1.0, 0.3, 1.0, 60.0)
    with pytest.raises(ValueError, match="degrees"):
        haps_solar_power_w(45.0, 20.0, 0.25)


def test_haps_solar_day_and_night():
    el = np.array([-10.0, 0.0, 30.0, 90.0]) * DEG
    p = haps_solar_power_w(el, 20.0, 0.25, atmospheric_transmittance=1.0)
    assert p.shape == (4,)
    np.testing.assert_allclose(p, [0.0, 0.0, 0.5 * 20 * 0.25 * 1361.0, 20 * 0.25 * 1361.0])
    grid = haps_solar_power_w(el[None, :], np.array([[10.0], [20.0]]), 0.25)
    assert grid.shape == (2, 4)
    np.testing.assert_allclose(grid[1], haps_solar_power_w(el, 20.0, 0.25))


# --- loads ----------------------------------------------------------------------------------


def test_satellite_load_per_terminal_level():
    m = SatellitePowerModel()
    on, turbo = LaserLevel.ON, LaserLevel.TURBO
    load = m.load_w([on, turbo])
    assert load == pytest.approx(
        m.bus_w + m.laser_on_w + m.laser_turbo_w + m.qkd_payload_w + m.compute_w
    )
    idle = m.load_w([LaserLevel.OFF, LaserLevel.OFF], qkd_duty=False, compute_duty=0.0)
    assert idle == pytest.approx(m.bus_w)
    # missing terminals count as OFF; too many are rejected
    assert m.load_w([on]) == pytest.approx(m.load_w([on, LaserLevel.OFF]))
    with pytest.raises(ValueError, match="laser_terminals"):
        m.load_w([on, on, on])
    with pytest.raises(ValueError, match="0 \\(OFF\\)"):
        m.load_w([4, 0])


def test_satellite_load_broadcasting():
    m = SatellitePowerModel()
    rng = np.random.default_rng(2)
    levels = rng.integers(0, 4, size=(5, 7, 2))  # (T, N, terminals)
    qkd = rng.uniform(0, 1, size=(7,))
    grid = m.load_w(levels, qkd_duty=qkd)
    assert grid.shape == (5, 7)
    np.testing.assert_allclose(grid[3], m.load_w(levels[3], qkd_duty=qkd))
    assert m.load_w(levels[3, 4], qkd_duty=qkd[4]) == pytest.approx(grid[3, 4])


def test_satellite_defaults_survive_eclipses_at_550_km():
    """Default smallsat over 10 orbits at 550 km: battery stays above its reserve.

    Orbit period 95.6 min and eclipse 35.5 min for a 550 km circular orbit at beta = 0
    (cylindrical shadow: asin(R_E / (R_E + h)) / pi of the orbit; Wertz & Larson, SMAD 3rd ed.,
    eq. 5-3). Loads: both terminals ON, QKD payload and compute on, the whole orbit.
    """
    m = SatellitePowerModel()
    r_e, h = WGS84_A_M, 550_000.0
    period_s = 2 * math.pi * math.sqrt((r_e + h) ** 3 / EARTH_MU_M3_PER_S2)
    eclipse_frac = math.asin(r_e / (r_e + h)) / math.pi
    dt = 10.0
    t = np.arange(0.0, 10 * period_s, dt)
    sunlit = ((t % period_s) / period_s >= eclipse_frac).astype(float)
    load = m.load_w([LaserLevel.ON, LaserLevel.ON])
    soc = 0.8 * m.battery_capacity_j
    lowest = soc
    for s in sunlit:
        soc = m.step(soc, s, load, dt).soc_j
        lowest = min(lowest, soc)
    assert lowest > m.reserve_j
    assert soc > 0.8 * m.battery_capacity_j  # positive orbit-average balance


def test_ground_station_power():
    g = GroundStationPowerModel()
    idle, tracking = g.power_w([0.0, 1.0])
    assert idle == pytest.approx(1_800.0)  # cryocooler 1.5 kW + IT
    assert tracking == pytest.approx(2_500.0)
    # the SNSPD cryocooler dominates: > 80 % of a day with 2 h of tracking
    daily_j = energy_j(g.power_w(2.0 / 24.0), 86_400.0)
    assert g.cryocooler_w * 86_400.0 / daily_j > 0.8
    grid = g.power_w(np.array([[0.0, 0.5], [1.0, 0.25]]), cryocooler_on=np.array([1.0, 0.0]))
    assert grid.shape == (2, 2)
    assert grid[1, 1] == pytest.approx(g.power_w(0.25, cryocooler_on=0.0))


def test_haps_defaults_survive_equinox_night():
    """Default HAPS at 20 deg N over an equinox day: above the reserve at dawn."""
    m = HapsPowerModel()
    dt = 60.0
    t = np.arange(0.0, 86_400.0, dt)  # from local midnight
    hour_angle = 2 * math.pi * (t / 86_400.0 - 0.5)
    lat = 20 * DEG
    sun_el = np.arcsin(np.cos(lat) * np.cos(hour_angle))  # declination 0
    load = m.load_w()
    soc = 0.9 * m.battery_capacity_j
    for _ in range(2):  # second day starts from the state the first left
        lowest = soc
        for el in sun_el:
            soc = m.step(soc, el, load, dt).soc_j
            lowest = min(lowest, soc)
    assert lowest > m.reserve_j


def test_power_models_reject_bad_fields():
    with pytest.raises(ValueError, match="bus_w"):
        SatellitePowerModel(bus_w=-1.0)
    with pytest.raises(ValueError, match="reserve_fraction"):
        SatellitePowerModel(reserve_fraction=30.0)
    with pytest.raises(ValueError, match="cryocooler_w"):
        GroundStationPowerModel(cryocooler_w=-1.0)


# --- energy per bit -------------------------------------------------------------------------


def test_energy_per_bit():
    assert energy_per_bit_j(40.0, 1e9) == pytest.approx(4e-8)
    e = energy_per_bit_j(np.array([[40.0], [10.0]]), np.array([0.0, 1e3, 1e6]))
    assert e.shape == (2, 3)
    assert np.isinf(e[0, 0]) and e[1, 2] == pytest.approx(1e-5)
    assert energy_j(np.array([1.0, 2.0]), 3.0).tolist() == [3.0, 6.0]


def test_battery_step_without_validation_is_the_same_arithmetic():
    from twin.physics.energy import battery_step

    rng = np.random.default_rng(5)
    soc = rng.uniform(0.0, 5e5, 64)
    p_in = rng.uniform(0.0, 400.0, 64)
    p_out = rng.uniform(0.0, 400.0, 64)
    kwargs = dict(
        capacity_j=5e5, charge_efficiency=0.95, discharge_efficiency=0.9, reserve_j=1e5,
        max_charge_w=300.0, max_discharge_w=250.0,
    )  # fmt: skip
    checked = battery_step(soc, p_in, p_out, 10.0, **kwargs)
    unchecked = battery_step(soc, p_in, p_out, 10.0, validate=False, **kwargs)
    for a, b in zip(checked, unchecked, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):  # validation stays on by default
        battery_step(soc, p_in, p_out, -1.0, **kwargs)


def test_power_model_steps_without_validation_are_the_checked_steps_bit_for_bit():
    # the engine steps every battery with validate=False: the solar power then skips the
    # checks too (a cached prefix of the same product), which must change no bit
    from twin.physics.energy import HapsPowerModel, SatellitePowerModel

    rng = np.random.default_rng(8)
    sat = SatellitePowerModel(solar_area_m2=7.3, solar_efficiency=0.29)
    soc = rng.uniform(0.0, sat.battery_capacity_j, 256)
    lit = np.concatenate([[0.0, 1.0], rng.uniform(0.0, 1.0, 254)])
    load = rng.uniform(50.0, 900.0, 256)
    for a, b in zip(
        sat.step(soc, lit, load, 1.0), sat.step(soc, lit, load, 1.0, validate=False), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    haps = HapsPowerModel(atmospheric_transmittance=0.93)
    soc = rng.uniform(0.0, haps.battery_capacity_j, 256)
    elevation = np.concatenate([[-np.pi / 2, 0.0, np.pi / 2], rng.uniform(-1.5, 1.5, 253)])
    for a, b in zip(
        haps.step(soc, elevation, load, 1.0),
        haps.step(soc, elevation, load, 1.0, validate=False),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
