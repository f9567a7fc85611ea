"""Tests for twin.physics.haps: quasi-stationary HAPS with station-keeping drift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.physics.geometry import ecef_to_enu_m, ecef_to_geodetic, geodetic_to_ecef_m
from twin.physics.haps import haps_drift, haps_states_ecef
from twin.units import DEG

LAT = np.array([48.1, -25.9, 1.3]) * DEG
LON = np.array([11.6, 28.2, 103.8]) * DEG
ALT = np.array([20e3, 21e3, 18e3])


def _horizontal_offset_m(states, t_index=slice(None)):
    station = geodetic_to_ecef_m(LAT, LON, ALT)[:, :, None]
    enu = ecef_to_enu_m(states.position_m[:, :, t_index] - station, LAT[:, None], LON[:, None])
    return np.hypot(enu[0], enu[1]), enu


def test_circle_keeps_radius_altitude_and_period():
    t = np.linspace(0.0, 3600.0, 721)
    drift = haps_drift(3, drift_radius_m=3_000.0, drift_period_s=1_800.0, model="circle")
    states = haps_states_ecef(LAT, LON, ALT, t, drift)
    assert states.position_m.shape == states.velocity_m_per_s.shape == (3, 3, 721)
    radius, _ = _horizontal_offset_m(states)
    # The circle is drawn on the ellipsoid; seen in the station's tangent plane it is the
    # radius to within the Earth's curvature (3 km^2 / (2 * 6371 km) ~ 0.7 m).
    assert np.abs(radius - 3_000.0).max() < 1.0
    _, _, alt = ecef_to_geodetic(states.position_m)
    assert np.abs(alt - ALT[:, None]).max() < 1e-3  # metres: the altitude is held exactly
    # Periodic: t and t + period coincide (t[360] = 1800 s).
    np.testing.assert_allclose(states.position_m[:, :, 0], states.position_m[:, :, 360], atol=1e-6)
    # Loiter speed = 2 pi R / period = 10.5 m/s.
    speed = np.linalg.norm(states.velocity_m_per_s, axis=0)
    np.testing.assert_allclose(speed, 2 * math.pi * 3_000.0 / 1_800.0, rtol=1e-3)


def test_velocity_is_the_derivative_of_position():
    rng = np.random.default_rng(7)
    drift = haps_drift(3, 4_000.0, 1_200.0, model="wander", rng=rng)
    t = np.array([100.0, 100.001, 2_000.0, 2_000.001])
    states = haps_states_ecef(LAT, LON, ALT, t, drift, vertical_amplitude_m=50.0)
    fd = (states.position_m[:, :, 1::2] - states.position_m[:, :, 0::2]) / 0.001
    mid = 0.5 * (states.velocity_m_per_s[:, :, 1::2] + states.velocity_m_per_s[:, :, 0::2])
    assert np.abs(fd - mid).max() < 5e-3  # m/s


def test_wander_is_bounded_seeded_and_smooth():
    t = np.arange(0.0, 6 * 3600.0, 10.0)
    a = haps_drift(3, 2_000.0, 1_800.0, model="wander", rng=np.random.default_rng(42))
    b = haps_drift(3, 2_000.0, 1_800.0, model="wander", rng=np.random.default_rng(42))
    c = haps_drift(3, 2_000.0, 1_800.0, model="wander", rng=np.random.default_rng(43))
    sa = haps_states_ecef(LAT, LON, ALT, t, a)
    np.testing.assert_array_equal(sa.position_m, haps_states_ecef(LAT, LON, ALT, t, b).position_m)
    assert np.abs(sa.position_m - haps_states_ecef(LAT, LON, ALT, t, c).position_m).max() > 100.0
    radius, _ = _horizontal_offset_m(sa)
    assert radius.max() <= 2_000.0 + 1.0  # bounded by the station-keeping radius
    assert radius.max() > 1_000.0  # and it does wander
    # Evaluating one instant alone gives the same position (independent of the tick grid).
    alone = haps_states_ecef(LAT, LON, ALT, t[123], a).position_m[:, :, 0]
    np.testing.assert_allclose(alone, sa.position_m[:, :, 123], atol=1e-9)


def test_no_drift_holds_the_station_and_scalar_inputs():
    states = haps_states_ecef(0.5, 0.2, 20e3, [0.0, 10.0])
    assert states.position_m.shape == (3, 1, 2)
    np.testing.assert_allclose(
        states.position_m[:, 0, 1], geodetic_to_ecef_m(0.5, 0.2, 20e3), atol=1e-9
    )
    assert not states.velocity_m_per_s.any()


def test_broadcasting_station_arrays_and_times():
    drift = haps_drift(3, np.array([1e3, 2e3, 3e3]), 900.0, rng=np.random.default_rng(1))
    t = np.linspace(0.0, 1000.0, 5)
    full = haps_states_ecef(LAT, LON, 20e3, t, drift)  # altitude broadcast to (H,)
    assert full.position_m.shape == (3, 3, 5)
    one_time = haps_states_ecef(LAT, LON, 20e3, t[3], drift)
    np.testing.assert_allclose(one_time.position_m[:, :, 0], full.position_m[:, :, 3])
    sub = haps_drift(1, 2e3, 900.0)._replace(
        amplitude_m=drift.amplitude_m[1:2],
        angular_rate_rad_per_s=drift.angular_rate_rad_per_s[1:2],
        phase_rad=drift.phase_rad[1:2],
    )
    single = haps_states_ecef(LAT[1], LON[1], 20e3, t, sub)
    np.testing.assert_allclose(single.position_m[:, 0], full.position_m[:, 1])


def test_bad_inputs():
    with pytest.raises(ValueError, match="rng"):
        haps_drift(2, model="wander")
    with pytest.raises(ValueError, match="model"):
        haps_drift(2, model="spiral")
    with pytest.raises(ValueError, match="degrees passed"):
        haps_states_ecef(48.1, 11.6, 20e3, [0.0])
    with pytest.raises(ValueError, match="platforms"):
        haps_states_ecef(LAT, LON, ALT, [0.0], haps_drift(2))
