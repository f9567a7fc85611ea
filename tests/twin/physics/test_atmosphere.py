"""Tests for twin.physics.atmosphere: clear-air extinction, fog, rain, snow, clouds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.physics.atmosphere import (
    CLOUD_TYPES,
    FSO_IMPOSSIBLE_ATTENUATION_DB_PER_KM,
    air_mass,
    beer_lambert_transmittance,
    clear_air_zenith_transmittance,
    cloud_attenuation_db_per_km,
    cloud_visibility_m,
    db_per_km_to_extinction_per_m,
    extinction_per_m_to_db_per_km,
    kim_attenuation_db_per_km,
    kim_extinction_per_m,
    layer_loss_db,
    layer_path_length_m,
    optical_link_blocked,
    rain_attenuation_db_per_km,
    rayleigh_optical_depth,
    slant_path_transmittance,
    snow_attenuation_db_per_km,
    standard_pressure_ratio,
)
from twin.units import DEG, KM, NM, SEA_LEVEL_PRESSURE_PA, db_to_linear


def test_beer_lambert_and_db_conversions():
    # 1 dB/km over 1 km is a transmittance of 10^(-0.1); 1 neper/m is 4342.9 dB/km.
    gamma = db_per_km_to_extinction_per_m(1.0)
    assert beer_lambert_transmittance(gamma, 1 * KM) == pytest.approx(db_to_linear(1.0), rel=1e-12)
    assert extinction_per_m_to_db_per_km(1.0) == pytest.approx(4342.944819, rel=1e-9)
    assert beer_lambert_transmittance(0.0, 1e6) == 1.0


def test_standard_atmosphere_pressure_against_ussa_1976_tables():
    # U.S. Standard Atmosphere 1976 (NOAA-S/T 76-1562), Table I, geometric altitude:
    # 11 km: 2.2700e4 Pa, 20 km: 5.5293e3 Pa, 32 km: 8.8906e2 Pa, 50 km: 7.9779e1 Pa. 0.1 %.
    altitudes_m = np.array([11.0, 20.0, 32.0, 50.0]) * KM
    table_pa = np.array([2.2700e4, 5.5293e3, 8.8906e2, 7.9779e1])
    ours_pa = standard_pressure_ratio(altitudes_m) * SEA_LEVEL_PRESSURE_PA
    np.testing.assert_allclose(ours_pa, table_pa, rtol=1e-3)
    assert standard_pressure_ratio(0.0) == 1.0


def test_rayleigh_optical_depth_against_first_principles_cross_section():
    # Hansen & Travis 1974 (their fit) against the Rayleigh cross-section of Bodhaine
    # et al. 1999 (J. Atmos. Ocean. Tech. 16, 1854): refractive index of
    # standard air from Peck & Reeder 1972 (JOSA 62, 958), King factor from Bates 1984, column
    # p0 N_A / (m_a g) with m_a = 28.9595 g/mol. Agreement better than 1 %.
    lam_um = np.array([0.4, 0.55, 0.85, 1.06, 1.55])
    n_s = 1 + 1e-8 * (
        8060.51 + 2480990 / (132.274 - lam_um**-2) + 17455.7 / (39.32957 - lam_um**-2)
    )
    n_density = 2.546899e25  # m^-3 at 288.15 K, 1013.25 hPa
    f_n2 = 1.034 + 3.17e-4 * lam_um**-2
    f_o2 = 1.096 + 1.385e-3 * lam_um**-2 + 1.448e-4 * lam_um**-4
    king = (78.084 * f_n2 + 20.946 * f_o2 + 0.934 + 0.036 * 1.15) / 100.0
    lam_m = lam_um * 1e-6
    sigma_m2 = (
        24 * math.pi**3 * (n_s**2 - 1) ** 2 / (lam_m**4 * n_density**2 * (n_s**2 + 2) ** 2) * king
    )
    column = 101325.0 * 6.02214076e23 / (28.9595e-3 * 9.80665)
    np.testing.assert_allclose(rayleigh_optical_depth(lam_m), sigma_m2 * column, rtol=1e-2)
    # At 20 km (a HAPS) only the 5.5 % of the air above is left.
    assert rayleigh_optical_depth(850 * NM, altitude_m=20 * KM) == pytest.approx(
        0.0546 * rayleigh_optical_depth(850 * NM), rel=1e-2
    )


def test_air_mass_kasten_young():
    # Kasten & Young 1989 (Appl. Opt. 28, 4735): their formula gives 37.92 at the horizon
    # against the tabulated 38.0868 of the refracted ISO atmosphere (0.4 %); tolerance 0.3.
    assert abs(air_mass(90 * DEG) - 38.0868) < 0.3
    assert air_mass(0.0) == pytest.approx(1.0, abs=5e-4)
    # Earth curvature and refraction shorten the path relative to sec(z): < 0.5 % up to 60 deg,
    # 1.3 % at 75 deg.
    z = np.radians(np.arange(0, 61, 5))
    np.testing.assert_allclose(air_mass(z), air_mass(z, "plane_parallel"), rtol=5e-3)
    assert 0.98 < air_mass(75 * DEG) / air_mass(75 * DEG, "plane_parallel") < 0.99
    with pytest.raises(ValueError, match="zenith_angle_rad"):
        air_mass(math.pi / 2, "plane_parallel")


def test_slant_path_transmittance_scales_optical_depth_by_air_mass():
    t_zenith = 0.85
    t = slant_path_transmittance(t_zenith, 60 * DEG, air_mass_model="plane_parallel")
    assert t == pytest.approx(t_zenith**2, rel=1e-12)
    assert slant_path_transmittance(0.0, 0.3) == 0.0
    with pytest.raises(ValueError, match="db_to_linear"):
        slant_path_transmittance(3.0, 0.0)


def test_kim_fog_model():
    # Kim, McArthur & Korevaar 2001 (Proc. SPIE 4214): V = 1 km, 850 nm gives
    # q = 0.5 and 4.343 * 3.912 * (850/550)^-0.5 = 13.67 dB/km (hand computation); tolerance
    # 0.05 dB/km.
    assert abs(kim_attenuation_db_per_km(1 * KM, 850 * NM) - 13.666) < 0.05
    # Koschmieder: at 550 nm a path of one visibility length transmits 2 % (ITU-R P.1817-1).
    for v_m in (200.0, 2e3, 20e3):
        gamma = kim_extinction_per_m(v_m, 550 * NM)
        assert beer_lambert_transmittance(gamma, v_m) == pytest.approx(0.02, rel=1e-9)
    # Kim's main finding: below 500 m visibility the attenuation does not depend on wavelength.
    assert kim_attenuation_db_per_km(300.0, 785 * NM) == kim_attenuation_db_per_km(300, 1550 * NM)
    # Haze (V = 10 km): 1550 nm is attenuated less than 785 nm by (1550/785)^-1.3 (Kruse q).
    ratio = kim_attenuation_db_per_km(10 * KM, 1550 * NM) / kim_attenuation_db_per_km(
        10 * KM, 785 * NM
    )
    assert ratio == pytest.approx((1550 / 785) ** -1.3, rel=1e-12)
    # q(V) is continuous at 0.5, 1 and 6 km (a check on the transcribed coefficients).
    for edge_km in (0.5, 1.0, 6.0):
        below = kim_attenuation_db_per_km((edge_km - 1e-9) * KM, 1550 * NM)
        above = kim_attenuation_db_per_km((edge_km + 1e-9) * KM, 1550 * NM)
        assert above == pytest.approx(below, rel=1e-6)


def test_clear_air_zenith_transmittance():
    # Rayleigh + 23 km-visibility aerosol at sea level: ~0.8-0.9 in the 785-850 nm window and
    # higher at 1550 nm, the range of MODTRAN mid-latitude 23 km values for Earth-space optical
    # links (e.g. Bourgoin et al. 2013, New J. Phys. 15, 023006, Sec. 3). An order-of-magnitude
    # check: the model is Rayleigh (tested above) plus Kim's aerosol (tested above).
    t785, t850, t1550 = clear_air_zenith_transmittance(np.array([785, 850, 1550]) * NM)
    assert 0.80 < t785 < t850 < 0.92
    assert 0.92 < t1550 < 0.98
    # A mountain OGS (2.4 km, Tenerife) is above most of the aerosol: 0.97 at 850 nm.
    t_mountain = clear_air_zenith_transmittance(850 * NM, site_altitude_m=2400.0)
    assert 0.95 < t_mountain < 0.99
    # With no aerosol left (infinite visibility) only Rayleigh remains.
    t_rayleigh = clear_air_zenith_transmittance(850 * NM, visibility_m=1e9)
    assert t_rayleigh == pytest.approx(math.exp(-rayleigh_optical_depth(850 * NM)), rel=1e-9)
    # Worse visibility lowers it.
    assert clear_air_zenith_transmittance(850 * NM, visibility_m=5 * KM) < t850


def test_rain_attenuation():
    # Carbonneau relation 1.076 R^0.67 dB/km (Al Naboulsi, Sizun & de Fornel 2005; ITU-R
    # P.1814): 9.30 dB/km at 25 mm/h. It lies below the geometric-optics extinction of a
    # Marshall-Palmer rain (Marshall & Palmer 1948, J. Meteorol. 5, 165: N0 = 8000 m^-3 mm^-1,
    # Lambda = 4.1 R^-0.21 mm^-1, Q_ext = 2: pi N0 / Lambda^3 = 0.365 R^0.63 km^-1) because
    # forward-scattered light stays in the receiver: ratio 0.6-1.0 over 2.5-100 mm/h.
    assert rain_attenuation_db_per_km(25.0) == pytest.approx(9.30, abs=0.01)
    rates = np.array([2.5, 10.0, 25.0, 100.0])
    lam_mp = 4.1 * rates**-0.21
    mp_db_per_km = extinction_per_m_to_db_per_km(math.pi * 8000.0 / lam_mp**3 * 1e-6)
    ratio = rain_attenuation_db_per_km(rates) / mp_db_per_km
    assert np.all((ratio > 0.6) & (ratio < 1.0))
    assert rain_attenuation_db_per_km(0.0) == 0.0
    assert rain_attenuation_db_per_km(10.0, coefficient=1.58, exponent=0.63) == pytest.approx(
        1.58 * 10**0.63
    )


def test_snow_attenuation():
    # ITU-R P.1817-1 (2012), Table 2: wet a = 1.023e-4 lam_nm + 3.7855466, b = 0.72;
    # dry a = 5.42e-5 lam_nm + 5.4958776, b = 1.38. At 1550 nm and 5 mm/h: 12.7 and 51.4 dB/km.
    assert snow_attenuation_db_per_km(5.0, 1550 * NM, "wet") == pytest.approx(
        (1.023e-4 * 1550 + 3.7855466) * 5**0.72, rel=1e-12
    )
    assert snow_attenuation_db_per_km(5.0, 1550 * NM, "dry") == pytest.approx(51.43, abs=0.01)
    assert snow_attenuation_db_per_km(0.0, 850 * NM, "dry") == 0.0
    with pytest.raises(ValueError, match="'wet' or 'dry'"):
        snow_attenuation_db_per_km(1.0, 850 * NM, "slush")


def test_cloud_attenuation_blocks_optical_links():
    # Eldridge's V = 1.002/(LWC N)^0.6473 km with the Awan et al. 2009 (Table 1) microphysics:
    # cumulus (1 g/m^3, 250 cm^-3) gives a visibility of 28 m and ~600 dB/km; every water cloud
    # exceeds the main paper's 100 dB/km "QKD impossible" level, thin cirrus does not.
    cumulus = CLOUD_TYPES["cumulus"]
    v_m = cloud_visibility_m(cumulus.liquid_water_g_per_m3, cumulus.droplet_number_per_cm3)
    assert v_m == pytest.approx(1002.0 / 250.0**0.6473, rel=1e-12)
    assert 27.0 < v_m < 29.0
    atten = {
        name: float(
            cloud_attenuation_db_per_km(c.liquid_water_g_per_m3, c.droplet_number_per_cm3, 850e-9)
        )
        for name, c in CLOUD_TYPES.items()
    }
    assert 550.0 < atten["cumulus"] < 650.0
    for name in ("cumulus", "stratus", "stratocumulus", "altostratus", "nimbostratus"):
        assert atten[name] > FSO_IMPOSSIBLE_ATTENUATION_DB_PER_KM
    assert atten["thin_cirrus"] < 1.0


def test_layer_path_and_loss():
    # A 1 km stratus deck from 1 to 2 km, seen at 60 deg zenith from sea level: 2 km in cloud.
    length = layer_path_length_m(
        60 * DEG, platform_altitude_m=500 * KM, layer_base_m=1 * KM, layer_top_m=2 * KM
    )
    assert length == pytest.approx(2 * KM, rel=1e-12)
    # A HAPS at 20 km is above it: a HAPS-space path misses the cloud entirely.
    assert (
        layer_path_length_m(
            0.3,
            ground_altitude_m=20 * KM,
            platform_altitude_m=500 * KM,
            layer_base_m=1 * KM,
            layer_top_m=2 * KM,
        )
        == 0.0
    )
    # A site inside a fog layer 300 m deep, at zenith: the 200 m above it.
    assert layer_path_length_m(
        0.0,
        ground_altitude_m=100.0,
        platform_altitude_m=20 * KM,
        layer_base_m=0.0,
        layer_top_m=300.0,
    ) == pytest.approx(200.0)
    assert layer_loss_db(270.0, 2 * KM) == pytest.approx(540.0)
    with pytest.raises(ValueError, match="layer_top_m"):
        layer_path_length_m(0.0, platform_altitude_m=1e5, layer_base_m=2e3, layer_top_m=1e3)


def test_optical_link_blocked():
    loss = np.array([3.0, 25.0, np.nan, 100.0])
    np.testing.assert_array_equal(optical_link_blocked(loss, 20.0), [False, True, True, True])
    np.testing.assert_array_equal(
        optical_link_blocked(loss[:, None], np.array([20.0, 200.0])),
        [[False, False], [True, False], [True, True], [True, False]],
    )


# --- Broadcasting -----------------------------------------------------------------------------

BROADCAST_CASES = {
    "beer_lambert_transmittance": lambda u: beer_lambert_transmittance(1e-4 * u, 1e3 + 1e4 * u),
    "db_per_km_to_extinction_per_m": lambda u: db_per_km_to_extinction_per_m(10 * u),
    "extinction_per_m_to_db_per_km": lambda u: extinction_per_m_to_db_per_km(1e-3 * u),
    "air_mass": lambda u: air_mass(1.5 * u),
    "slant_path_transmittance": lambda u: slant_path_transmittance(0.5 + 0.4 * u, 1.2 * u),
    "standard_pressure_ratio": lambda u: standard_pressure_ratio(90e3 * u),
    "rayleigh_optical_depth": lambda u: rayleigh_optical_depth(
        (400 + 1200 * u) * NM, altitude_m=3e4 * u
    ),
    "kim_extinction_per_m": lambda u: kim_extinction_per_m(100 + 6e4 * u, 850 * NM),
    "kim_attenuation_db_per_km": lambda u: kim_attenuation_db_per_km(
        300 + 8e3 * u, (785 + 800 * u) * NM
    ),
    "clear_air_zenith_transmittance": lambda u: clear_air_zenith_transmittance(
        (785 + 800 * u) * NM, site_altitude_m=3e3 * u, visibility_m=5e3 + 5e4 * u
    ),
    "rain_attenuation_db_per_km": lambda u: rain_attenuation_db_per_km(100 * u),
    "snow_attenuation_db_per_km": lambda u: snow_attenuation_db_per_km(10 * u, 850 * NM, "dry"),
    "cloud_visibility_m": lambda u: cloud_visibility_m(0.1 + u, 100 + 200 * u),
    "cloud_attenuation_db_per_km": lambda u: cloud_attenuation_db_per_km(
        0.1 + u, 250.0, (800 + 700 * u) * NM
    ),
    "layer_path_length_m": lambda u: layer_path_length_m(
        1.2 * u, platform_altitude_m=5e5, layer_base_m=500 + 2e3 * u, layer_top_m=3e3
    ),
    "layer_loss_db": lambda u: layer_loss_db(300 * u, 1e3 * (1 + u)),
    "optical_link_blocked": lambda u: optical_link_blocked(50 * u, 20.0),
}


@pytest.mark.parametrize("name", sorted(BROADCAST_CASES))
def test_broadcasting(name):
    # Scalar, (N,) and (N, M) inputs give the right shapes and the same values elementwise.
    case = BROADCAST_CASES[name]
    n, m = 3, 2
    grid = np.linspace(0.0, 1.0, n * m).reshape(n, m)
    full, column, scalar = case(grid), case(grid[:, 0]), case(grid[0, 0])
    assert np.shape(full) == (n, m) and np.shape(column) == (n,) and np.shape(scalar) == ()
    for i in range(n):
        np.testing.assert_allclose(column[i], full[i, 0], rtol=1e-12)
        for j in range(m):
            np.testing.assert_allclose(full[i, j], case(grid[i, j]), rtol=1e-12)
