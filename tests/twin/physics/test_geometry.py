"""Tests for twin.physics.geometry: WGS84, look angles, the S x N fast path, link geometry."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from twin.physics.geometry import (
    SiteGeometry,
    chord_minimum_altitude_m,
    chords_surely_clear,
    doppler_shift_hz,
    earth_central_angle_rad,
    ecef_to_enu_m,
    ecef_to_geodetic,
    elevation_from_ground_range_rad,
    elevation_from_slant_range_rad,
    enu_basis,
    fast_arcsin,
    geodetic_to_ecef_m,
    line_of_sight_clear,
    look_angles,
    slant_range_from_elevation_m,
    zenith_angle_rad,
)
from twin.units import DEG, EARTH_MEAN_RADIUS_M, KM, WGS84_A_M, WGS84_B_M

ONE_MM = 1e-3
ONE_M = 1.0

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from skyfield.api import EarthSatellite, load, wgs84
    from skyfield.framelib import itrs

# A real ISS element set (skyfield's test suite, epoch 2018-07-03).
ISS_LINE1 = "1 25544U 98067A   18184.80969102  .00001614  00000-0  31745-4 0  9993"
ISS_LINE2 = "2 25544  51.6414 295.8524 0003435 262.6267 204.2868 15.54005638121106"


def _shapes_agree(func, *args):
    """Scalar, (N,) and (N, M) versions of the same inputs give the same values elementwise."""
    scalar = np.asarray(func(*[a[0, 0] for a in args]))
    vec = np.asarray(func(*[a[:, 0] for a in args]))
    mat = np.asarray(func(*args))
    assert mat.shape[-2:] == args[0].shape
    assert vec.shape[-1:] == args[0].shape[:1]
    np.testing.assert_allclose(vec, mat[..., :, 0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(scalar, mat[..., 0, 0], rtol=1e-12, atol=1e-9)


# --- WGS84 ------------------------------------------------------------------------------


def test_geodetic_to_ecef_matches_skyfield_wgs84():
    # Outside authority: skyfield's wgs84 model (NIMA TR8350.2 constants).
    rng = np.random.default_rng(1)
    lat = rng.uniform(-89.9, 89.9, 50)
    lon = rng.uniform(-180, 180, 50)
    alt = rng.uniform(-100.0, 30_000.0, 50)
    ours = geodetic_to_ecef_m(lat * DEG, lon * DEG, alt)
    ref = np.stack(
        [wgs84.latlon(a, b, c).itrs_xyz.m for a, b, c in zip(lat, lon, alt, strict=True)]
    )
    assert np.abs(ours - ref.T).max() < ONE_MM


def test_geodetic_to_ecef_axes():
    np.testing.assert_allclose(geodetic_to_ecef_m(0.0, 0.0, 0.0), [WGS84_A_M, 0.0, 0.0])
    np.testing.assert_allclose(
        geodetic_to_ecef_m(math.pi / 2, 0.0, 0.0), [0.0, 0.0, WGS84_B_M], atol=1e-6
    )


def test_ecef_to_geodetic_round_trip():
    rng = np.random.default_rng(2)
    lat = rng.uniform(-89.99, 89.99, 500) * DEG
    lon = rng.uniform(-179.99, 179.99, 500) * DEG
    alt = rng.uniform(-1_000.0, 36_000_000.0, 500)
    lat2, lon2, alt2 = ecef_to_geodetic(geodetic_to_ecef_m(lat, lon, alt))
    assert np.abs(lat2 - lat).max() < 1e-11  # rad, ~0.06 mm on the ground
    assert np.abs(lon2 - lon).max() < 1e-12
    assert np.abs(alt2 - alt).max() < ONE_MM


def test_geodetic_broadcasting():
    rng = np.random.default_rng(3)
    lat = rng.uniform(-1.5, 1.5, (4, 3))
    lon = rng.uniform(-3, 3, (4, 3))
    alt = rng.uniform(0, 1e6, (4, 3))
    _shapes_agree(geodetic_to_ecef_m, lat, lon, alt)
    assert geodetic_to_ecef_m(lat, lon, alt).shape == (3, 4, 3)
    assert geodetic_to_ecef_m(0.1, 0.2, 0.0).shape == (3,)
    lat_b, lon_b, alt_b = ecef_to_geodetic(geodetic_to_ecef_m(lat, lon, alt))
    assert lat_b.shape == (4, 3)
    _shapes_agree(lambda a, b: enu_basis(a, b), lat, lon)


def test_degrees_rejected_with_a_hint():
    with pytest.raises(ValueError, match="degrees passed"):
        geodetic_to_ecef_m(48.1, 11.6, 0.0)
    with pytest.raises(ValueError, match="degrees passed"):
        zenith_angle_rad(91.0)
    with pytest.raises(ValueError, match=r"shape \(3, \.\.\.\)"):
        ecef_to_geodetic(np.zeros((5, 3)))


def test_enu_basis_is_orthonormal_and_up_is_the_ellipsoid_normal():
    basis = enu_basis(np.array([0.3, -1.0]), np.array([2.0, -0.5]))
    for k in range(2):
        m = basis[:, :, k]
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-15)
    # Up at the equator, longitude 0 is +x; east is +y; north is +z.
    np.testing.assert_allclose(enu_basis(0.0, 0.0), np.eye(3)[[1, 2, 0]], atol=1e-15)
    enu = ecef_to_enu_m(np.array([0.0, 0.0, 1.0]), 0.0, 0.0)
    np.testing.assert_allclose(enu, [0.0, 1.0, 0.0], atol=1e-15)


# --- Look angles against skyfield ---------------------------------------------------------


def test_look_angles_and_range_rate_match_skyfield():
    # Outside authority: skyfield's topocentric altaz and range rate of the same satellite.
    ts = load.timescale(builtin=True)
    sat = EarthSatellite(ISS_LINE1, ISS_LINE2, "ISS", ts)
    lat_deg, lon_deg, alt_m = 48.15, 11.58, 520.0  # Munich
    topos = wgs84.latlon(lat_deg, lon_deg, alt_m)
    t = ts.utc(2018, 7, 4, 4, np.arange(28.0, 40.0, 0.5))  # a pass over Munich
    r_itrs, v_itrs = sat.at(t).frame_xyz_and_velocity(itrs)
    r_m, v_m_per_s = r_itrs.m, v_itrs.m_per_s
    look = look_angles(lat_deg * DEG, lon_deg * DEG, alt_m, r_m, v_m_per_s)
    alt, az, dist, _, _, range_rate = (sat - topos).at(t).frame_latlon_and_rates(topos)
    assert np.abs(look.elevation_rad - alt.radians).max() < 1e-7  # rad: 0.02 arcsec
    az_err = np.angle(np.exp(1j * (look.azimuth_rad - az.radians)))
    assert np.abs(az_err).max() < 1e-7
    assert np.abs(look.slant_range_m - dist.m).max() < ONE_MM * 10
    assert np.abs(look.range_rate_m_per_s - range_rate.m_per_s).max() < 1e-3  # 1 mm/s
    assert look.elevation_rad.max() > 10 * DEG  # the window really is a pass


def test_look_angles_broadcast_sites_against_targets():
    rng = np.random.default_rng(4)
    lat = rng.uniform(-1, 1, 5)
    lon = rng.uniform(-3, 3, 5)
    targets = geodetic_to_ecef_m(rng.uniform(-1, 1, (7, 2)), rng.uniform(-3, 3, (7, 2)), 550e3)
    vel = rng.normal(0, 7e3, (3, 7, 2))
    look = look_angles(lat[:, None, None], lon[:, None, None], 0.0, targets[:, None], vel[:, None])
    assert look.elevation_rad.shape == (5, 7, 2)
    one = look_angles(lat[2], lon[2], 0.0, targets[:, 4, 1], vel[:, 4, 1])
    np.testing.assert_allclose(one.elevation_rad, look.elevation_rad[2, 4, 1], rtol=1e-13)
    np.testing.assert_allclose(one.range_rate_m_per_s, look.range_rate_m_per_s[2, 4, 1])
    assert look_angles(lat, lon, 0.0, targets[:, :5, 0]).range_rate_m_per_s is None


def test_zenith_at_zenith_and_straight_up():
    look = look_angles(0.5, 1.0, 0.0, geodetic_to_ecef_m(0.5, 1.0, 400e3))
    assert abs(look.elevation_rad - math.pi / 2) < 1e-7
    assert abs(look.slant_range_m - 400e3) < ONE_MM
    np.testing.assert_allclose(zenith_angle_rad(np.array([0.0, math.pi / 2])), [math.pi / 2, 0])


def test_doppler_shift_1550nm_leo():
    # Hand value: a 1550 nm carrier (193.414 THz) from a source receding at 7 km/s is lowered
    # by 7e3 / 299792458 * 193.414e12 = 4.516 GHz (first-order Doppler, Ippolito 2017 s. 12.3).
    carrier_hz = 299_792_458.0 / 1550e-9
    assert doppler_shift_hz(7e3, carrier_hz) == pytest.approx(-4.5161e9, rel=1e-4)
    assert doppler_shift_hz(-7e3, carrier_hz) > 0
    rr = np.linspace(-7e3, 7e3, 6).reshape(2, 3)
    _shapes_agree(doppler_shift_hz, rr, np.full((2, 3), carrier_hz))


# --- The S x N fast path ------------------------------------------------------------------


def _walker_like_targets(n: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return geodetic_to_ecef_m(
        np.arcsin(rng.uniform(-1, 1, n)), rng.uniform(-math.pi, math.pi, n), 550e3
    )


def test_site_geometry_matches_look_angles():
    rng = np.random.default_rng(6)
    lat = rng.uniform(-1.2, 1.2, 30)
    lon = rng.uniform(-3, 3, 30)
    alt = rng.uniform(0, 3000, 30)
    sats = _walker_like_targets(400)
    geo = SiteGeometry(lat, lon, alt)
    el, rng_m = geo.elevation_and_range(sats)
    ref = look_angles(lat[:, None], lon[:, None], alt[:, None], sats[:, None, :])
    assert el.shape == rng_m.shape == (30, 400)
    assert np.abs(el - ref.elevation_rad).max() < 3e-8  # fast_arcsin bound 2e-8 rad
    assert np.abs(rng_m - ref.slant_range_m).max() < ONE_MM
    sin_el, rng2 = geo.sin_elevation_and_range(sats)
    np.testing.assert_allclose(sin_el, np.sin(ref.elevation_rad), atol=1e-12)
    # out= buffers give the same values with no allocation; trailing shapes are kept.
    out = (np.empty((30, 400)), np.empty((30, 400)))
    el2, _ = geo.elevation_and_range(sats, out=out)
    assert el2 is out[0]
    np.testing.assert_array_equal(el2, el)
    el3, _ = geo.elevation_and_range(sats.reshape(3, 20, 20))
    assert el3.shape == (30, 20, 20)
    np.testing.assert_array_equal(el3.reshape(30, 400), el)


def test_site_geometry_is_one_matrix_product_of_up_vectors():
    # The benchmark's bare kernel: unit up-vectors of the sites dot the relative vectors.
    geo = SiteGeometry(np.array([0.2, 0.9]), np.array([0.1, -2.0]), np.array([0.0, 100.0]))
    sats = _walker_like_targets(50)
    rel = sats[:, None, :] - geo.ecef_m[:, :, None]
    sin_ref = np.einsum("si,isn->sn", geo.up, rel) / np.linalg.norm(rel, axis=0)
    sin_el, _ = geo.sin_elevation_and_range(sats)
    np.testing.assert_allclose(sin_el, sin_ref, atol=1e-13)


def test_visible_pairs_equal_the_dense_mask():
    rng = np.random.default_rng(7)
    geo = SiteGeometry(rng.uniform(-1.2, 1.2, 40), rng.uniform(-3, 3, 40), 0.0)
    sats = _walker_like_targets(1000)
    el, rng_m = geo.elevation_and_range(sats)
    for mask in (20 * DEG, 0.0, -5 * DEG):
        pairs = geo.visible_pairs(sats, mask)
        dense = np.argwhere(el >= mask)
        np.testing.assert_array_equal(np.c_[pairs.site_index, pairs.satellite_index], dense)
        np.testing.assert_allclose(pairs.elevation_rad, el[el >= mask], atol=3e-8)
        np.testing.assert_allclose(pairs.slant_range_m, rng_m[el >= mask], rtol=1e-12)
    with pytest.raises(ValueError, match="degrees passed"):
        geo.visible_pairs(sats, 20.0)


def test_nan_targets_are_never_visible():
    geo = SiteGeometry(0.5, 0.5, 0.0)
    sats = geodetic_to_ecef_m(np.array([0.5, 0.5]), np.array([0.5, 0.5]), 550e3)
    sats[:, 1] = np.nan  # an SGP4 failure
    el, _ = geo.elevation_and_range(sats)
    assert el[0, 0] == pytest.approx(math.pi / 2, abs=1e-6) and np.isnan(el[0, 1])
    pairs = geo.visible_pairs(sats, 10 * DEG)
    np.testing.assert_array_equal(pairs.satellite_index, [0])


def test_fast_arcsin_accuracy_and_shapes():
    x = np.linspace(-1.0, 1.0, 200_001)
    assert np.abs(fast_arcsin(x) - np.arcsin(x)).max() < 2.5e-8  # A&S 4.4.46 bound 2e-8
    assert fast_arcsin(1.0 + 1e-15) == pytest.approx(math.pi / 2, abs=3e-8)
    m = x[:12].reshape(3, 4)
    _shapes_agree(fast_arcsin, m)


# --- Spherical-Earth link geometry --------------------------------------------------------


def test_slant_range_limits_and_hand_values():
    h = 500 * KM
    assert slant_range_from_elevation_m(math.pi / 2, h) == pytest.approx(h, abs=1e-6)
    # Hand values, R = 6371.0088 km (SMAD 3rd ed. eqs. 5-16 to 5-19, law of cosines):
    # horizon sqrt(6871.0088^2 - 6371.0088^2) = 2573.13 km; at 30 deg
    # sqrt(6871.0088^2 - (6371.0088 cos 30)^2) - 6371.0088 sin 30 = 909.43 km.
    assert slant_range_from_elevation_m(0.0, h) == pytest.approx(2_573.13 * KM, abs=0.01 * KM)
    assert slant_range_from_elevation_m(30 * DEG, h) == pytest.approx(909.43 * KM, abs=0.01 * KM)


def test_slant_range_matches_full_geometry_on_a_sphere():
    # A target straight north of a site on the equator at lon 0, both on a sphere of radius R.
    r = EARTH_MEAN_RADIUS_M
    lam = np.linspace(0.01, 0.35, 20)
    h = 550 * KM
    site = np.array([r, 0.0, 0.0])
    target = (r + h) * np.stack([np.cos(lam), np.zeros_like(lam), np.sin(lam)])
    rho = target - site[:, None]
    d = np.linalg.norm(rho, axis=0)
    el = np.arcsin(rho[0] / d)  # up is +x at the site
    np.testing.assert_allclose(slant_range_from_elevation_m(el, h), d, rtol=1e-11)
    np.testing.assert_allclose(elevation_from_slant_range_rad(d, h), el, atol=1e-11)
    np.testing.assert_allclose(earth_central_angle_rad(el, h), lam, atol=1e-11)
    np.testing.assert_allclose(elevation_from_ground_range_rad(lam * r, h), el, atol=1e-11)


def test_link_geometry_broadcasting_and_errors():
    el = np.linspace(0.1, 1.5, 6).reshape(2, 3)
    h = np.full((2, 3), 550e3)
    _shapes_agree(slant_range_from_elevation_m, el, h)
    _shapes_agree(earth_central_angle_rad, el, h)
    _shapes_agree(elevation_from_slant_range_rad, slant_range_from_elevation_m(el, h), h)
    _shapes_agree(elevation_from_ground_range_rad, el * 1e6, h)
    with pytest.raises(ValueError, match="degrees passed"):
        slant_range_from_elevation_m(45.0, 550e3)
    with pytest.raises(ValueError, match="impossible"):
        elevation_from_slant_range_rad(100e3, 550e3)
    # Beyond the horizon range sqrt((R+h)^2 - R^2) (2,705 km at 550 km, spherical R = 6371 km)
    # the platform is below the horizon: rejected as the docstring says, with the valid window.
    horizon_m = math.sqrt((EARTH_MEAN_RADIUS_M + 550e3) ** 2 - EARTH_MEAN_RADIUS_M**2)
    assert float(elevation_from_slant_range_rad(horizon_m, 550e3)) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match=r"3e\+06 m is .*impossible.* \[550000, 2\.7\d+e\+06\] m"):
        elevation_from_slant_range_rad(np.array([1e6, 3e6]), 550e3)
    assert np.isnan(elevation_from_slant_range_rad(np.nan, 550e3))  # SGP4 failures pass through


def test_line_of_sight_equatorial_chord():
    # Two satellites at radius r in the equatorial plane, central angle theta apart: the chord's
    # lowest point is at radius r cos(theta / 2), exactly (ellipsoid equator = sphere of a).
    r = WGS84_A_M + 550e3
    theta = np.array([16.36, 40.0, 60.0, 179.0]) * DEG
    r1 = np.stack([np.full(4, r), np.zeros(4), np.zeros(4)])
    r2 = r * np.stack([np.cos(theta), np.sin(theta), np.zeros(4)])
    expected = r * np.cos(theta / 2) - WGS84_A_M
    np.testing.assert_allclose(chord_minimum_altitude_m(r1, r2), expected, atol=1e-6)
    np.testing.assert_array_equal(line_of_sight_clear(r1, r2, 80e3), expected > 80e3)
    assert line_of_sight_clear(r1[:, 0], r2[:, 0], 20e3)  # neighbours in a 22-sat plane
    assert not line_of_sight_clear(r1[:, 3], r2[:, 3])  # opposite sides of the Earth


def test_line_of_sight_over_the_pole_within_flattening():
    # Chord over the pole: the true lowest altitude is r cos(theta/2) - b; the method's stated
    # error bound is (a/b - 1) of the altitude (0.34 %).
    r = WGS84_A_M + 550e3
    theta = 40 * DEG
    r1 = r * np.array([math.sin(theta / 2), 0.0, math.cos(theta / 2)])
    r2 = r * np.array([-math.sin(theta / 2), 0.0, math.cos(theta / 2)])
    true_alt = r * math.cos(theta / 2) - WGS84_B_M
    got = float(chord_minimum_altitude_m(r1, r2))
    assert abs(got - true_alt) <= (WGS84_A_M / WGS84_B_M - 1) * true_alt + ONE_M
    # A HAPS at 20 km and a satellite straight above it: clear; endpoints count.
    haps = geodetic_to_ecef_m(0.8, 0.2, 20e3)
    sat = geodetic_to_ecef_m(0.8, 0.2, 550e3)
    assert line_of_sight_clear(haps, sat, 10e3)
    assert not line_of_sight_clear(haps, sat, 25e3)


def test_line_of_sight_broadcasting():
    rng = np.random.default_rng(8)
    a = geodetic_to_ecef_m(rng.uniform(-1, 1, (2, 3)), rng.uniform(-3, 3, (2, 3)), 550e3)
    b = geodetic_to_ecef_m(rng.uniform(-1, 1, (2, 3)), rng.uniform(-3, 3, (2, 3)), 550e3)
    full = chord_minimum_altitude_m(a, b)
    assert full.shape == (2, 3)
    assert chord_minimum_altitude_m(a[:, 1, 2], b[:, 1, 2]) == pytest.approx(full[1, 2])
    np.testing.assert_allclose(chord_minimum_altitude_m(a[:, :, 0], b[:, :, 0]), full[:, 0])
    assert line_of_sight_clear(a, b, np.zeros((2, 3))).shape == (2, 3)


def test_great_circle_distance_known_values():
    from twin.physics.geometry import great_circle_distance_m
    from twin.units import DEG, EARTH_MEAN_RADIUS_M

    # a quarter meridian and one degree of the equator on the IUGG mean sphere (exact)
    assert great_circle_distance_m(0.0, 0.0, 90 * DEG, 0.0) == pytest.approx(
        np.pi / 2 * EARTH_MEAN_RADIUS_M, abs=1e-6
    )
    assert great_circle_distance_m(0.0, 0.0, 0.0, 1 * DEG) == pytest.approx(
        EARTH_MEAN_RADIUS_M * DEG, abs=1e-6
    )
    # London (51.5074 N, 0.1278 W) - Paris (48.8566 N, 2.3522 E): 343.5 km on the sphere
    london_paris = great_circle_distance_m(
        51.5074 * DEG, -0.1278 * DEG, 48.8566 * DEG, 2.3522 * DEG
    )
    assert london_paris == pytest.approx(343.5e3, abs=0.5e3)


def test_chords_surely_clear_never_clears_a_blocked_chord():
    # the cheap bound (radii and length only) may say "not known" but never "clear" for a
    # segment line_of_sight_clear rejects: random segments between 300 km and 2,000 km
    # altitude, from neighbours to opposite sides of the Earth, with grazing heights 0-200 km
    rng = np.random.default_rng(5)
    n = 20000
    u1, u2 = rng.normal(size=(3, n)), rng.normal(size=(3, n))
    r1 = u1 / np.linalg.norm(u1, axis=0) * (WGS84_A_M + rng.uniform(300e3, 2000e3, n))
    r2 = r1 + u2 / np.linalg.norm(u2, axis=0) * rng.uniform(1e3, 14000e3, n)
    graze = rng.uniform(0.0, 200e3, n)
    radius = np.minimum(np.linalg.norm(r1, axis=0), np.linalg.norm(r2, axis=0))
    sure = chords_surely_clear(radius, np.linalg.norm(r2 - r1, axis=0), graze)
    exact = line_of_sight_clear(r1, r2, graze)
    assert not np.any(sure & ~exact)
    assert sure.sum() > 0.3 * exact.sum()  # and it clears most short chords
    # neighbours in a 22-satellite plane at 550 km (16.4 deg apart) clear 80 km surely
    r = WGS84_A_M + 550e3
    chord = 2 * r * np.sin(16.36 * DEG / 2)
    assert chords_surely_clear(r, chord, 80e3)
