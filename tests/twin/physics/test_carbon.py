"""Tests of twin.physics.carbon: grid intensities, the daily profile, carbon of a power draw."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.physics.carbon import (
    DIURNAL_AMPLITUDE,
    annual_carbon_intensity_g_per_kwh,
    carbon_g,
    carbon_intensity_g_per_kwh,
    carbon_per_bit_g,
    diurnal_factor,
    grid_regions,
    local_solar_time_s,
)
from twin.units import DAY_S, DEG, HOUR_S

ONE_MILLIGRAM = 1e-3


def test_regions_from_packaged_csv():
    regions = grid_regions()
    assert {"DE", "FR", "NO", "PL", "GB", "US", "ZA", "IN", "WORLD"} <= set(regions)
    assert annual_carbon_intensity_g_per_kwh("de") == annual_carbon_intensity_g_per_kwh("DE")


def test_one_kw_for_one_hour_in_germany():
    # Ember via Our World in Data, Germany 2023 annual average: 381.0 gCO2e/kWh
    # (../shared/reference/grid_carbon_intensity.csv). 1 kW for 1 h = 1 kWh -> 381 g.
    g = carbon_g(1_000.0, HOUR_S, annual_carbon_intensity_g_per_kwh("DE"))
    assert abs(g - 381.0) < ONE_MILLIGRAM


def test_published_annual_values():
    # Ember 2023 via OWID (the CSV's source): Norway 30.1, France 56.0, Poland 661.9 g/kWh
    assert annual_carbon_intensity_g_per_kwh("NO") == pytest.approx(30.1)
    assert annual_carbon_intensity_g_per_kwh("FR") == pytest.approx(56.0)
    assert annual_carbon_intensity_g_per_kwh("PL") == pytest.approx(661.9)
    # main paper sec. III eq. 5: routing via hydro-powered Scandinavia beats a coal-heavy grid
    ratio = annual_carbon_intensity_g_per_kwh("PL") / annual_carbon_intensity_g_per_kwh("NO")
    assert ratio > 20


def test_unknown_region_names_it_and_lists_known():
    with pytest.raises(ValueError) as info:
        annual_carbon_intensity_g_per_kwh("XX")
    msg = str(info.value)
    assert "'XX'" in msg
    for code in grid_regions():
        assert code in msg
    with pytest.raises(ValueError, match="'QQ'"):
        carbon_intensity_g_per_kwh(["DE", "QQ"], 0.0)


@pytest.mark.parametrize("region", sorted(DIURNAL_AMPLITUDE))
@pytest.mark.parametrize("lon_deg", [0.0, 11.28, -117.6, 179.0])
def test_profile_mean_equals_annual_average(region, lon_deg):
    t = np.arange(0.0, DAY_S, 1.0)  # every second of a UTC day
    ci = carbon_intensity_g_per_kwh(region, t, lon_deg * DEG)
    annual = annual_carbon_intensity_g_per_kwh(region)
    assert abs(ci.mean() - annual) < 1e-9 * max(annual, 1.0)
    hourly = carbon_intensity_g_per_kwh(region, np.arange(24) * HOUR_S + 1_234.5, lon_deg * DEG)
    assert abs(hourly.mean() - annual) < 1e-9 * max(annual, 1.0)


def test_profile_shape_dips_at_solar_noon():
    annual = annual_carbon_intensity_g_per_kwh("DE")
    noon = carbon_intensity_g_per_kwh("DE", 12 * HOUR_S, 0.0)
    midnight = carbon_intensity_g_per_kwh("DE", 0.0, 0.0)
    assert noon == pytest.approx(annual * (1 - DIURNAL_AMPLITUDE["DE"]))
    assert midnight == pytest.approx(annual * (1 + DIURNAL_AMPLITUDE["DE"]))
    # Xinglong-like longitude (117.6 E): solar noon is at ~04:10 UTC
    t_noon_utc = (12.0 - 117.5772 / 15.0) * HOUR_S
    assert carbon_intensity_g_per_kwh("WORLD", t_noon_utc, 117.5772 * DEG) == pytest.approx(
        annual_carbon_intensity_g_per_kwh("WORLD") * (1 - DIURNAL_AMPLITUDE["WORLD"])
    )
    # hydro grid: flat
    no = carbon_intensity_g_per_kwh("NO", np.arange(0.0, DAY_S, 600.0), 0.0)
    assert np.ptp(no) == 0.0


def test_local_solar_time():
    assert local_solar_time_s(0.0, math.pi / 2) == pytest.approx(6 * HOUR_S)
    assert local_solar_time_s(3 * HOUR_S, -math.pi / 2) == pytest.approx(21 * HOUR_S)
    assert local_solar_time_s(DAY_S * 3 + 10.0, 0.0) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="degrees"):
        local_solar_time_s(0.0, 117.6)


def test_carbon_intensity_broadcasting():
    regions = np.array(["DE", "NO", "PL"])  # (3,)
    t = np.array([[0.0], [6 * HOUR_S], [12 * HOUR_S], [18 * HOUR_S]])  # (4, 1)
    lon = np.array([10.0, 10.0, 20.0]) * DEG
    grid = carbon_intensity_g_per_kwh(regions, t, lon)
    assert grid.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            one = carbon_intensity_g_per_kwh(str(regions[j]), float(t[i, 0]), float(lon[j]))
            assert np.ndim(one) == 0
            assert grid[i, j] == pytest.approx(one, rel=1e-15)
    assert annual_carbon_intensity_g_per_kwh(regions).shape == (3,)
    f = diurnal_factor(np.zeros((2, 5)), np.array([0.0, 0.1, 0.2, 0.3, 0.4]))
    assert f.shape == (2, 5)
    np.testing.assert_allclose(f[1], 1 + np.array([0.0, 0.1, 0.2, 0.3, 0.4]))


def test_carbon_g_and_per_bit_broadcast():
    p = np.array([[100.0], [2_000.0]])  # (2, 1)
    ci = np.array([30.1, 381.0, 661.9])  # (3,)
    g = carbon_g(p, 60.0, ci)
    assert g.shape == (2, 3)
    assert g[1, 2] == pytest.approx(2_000.0 * 60.0 / 3.6e6 * 661.9)
    assert carbon_g(2_000.0, 60.0, 661.9) == pytest.approx(g[1, 2])
    per_bit = carbon_per_bit_g(p, np.array([0.0, 1e3, 1e6]), 381.0)
    assert per_bit.shape == (2, 3)
    assert np.isinf(per_bit[0, 0])
    assert per_bit[1, 1] == pytest.approx(2_000.0 / 1e3 / 3.6e6 * 381.0)
    with pytest.raises(ValueError, match="power_w"):
        carbon_g(-1.0, 1.0, 381.0)
