"""Tests for twin.physics.orbits: time, Walker-Delta, TLE/OMM, propagation, frames, passes."""

from __future__ import annotations

import json
import math
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from twin.physics.geometry import SiteGeometry, ecef_to_geodetic, look_angles
from twin.physics.orbits import (
    ConstellationPropagator,
    datetime_from_jd_fr,
    find_passes,
    gmst_1982_rad,
    jd_fr_add_seconds,
    jd_fr_from_datetime,
    jd_fr_from_unix_s,
    load_tle_file,
    parse_omm_text,
    parse_tle_text,
    propagate_ecef,
    propagate_teme,
    teme_to_ecef,
    time_grid,
    walker_delta,
)
from twin.units import DAY_S, DEG, EARTH_J2_WGS72, EARTH_MU_WGS72_M3_PER_S2, WGS84_A_M

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from skyfield.api import EarthSatellite, load, wgs84
    from skyfield.framelib import itrs
    from skyfield.sgp4lib import theta_GMST1982

# Real ISS element set, as published by CelesTrak and used in skyfield's own test suite.
ISS_NAME = "ISS (ZARYA)"
ISS_LINE1 = "1 25544U 98067A   18184.80969102  .00001614  00000-0  31745-4 0  9993"
ISS_LINE2 = "2 25544  51.6414 295.8524 0003435 262.6267 204.2868 15.54005638121106"
ISS_3LE = f"{ISS_NAME}\n{ISS_LINE1}\n{ISS_LINE2}\n"

TS = load.timescale(builtin=True)
EPOCH = datetime(2025, 3, 20, tzinfo=UTC)


def _skyfield_utc_jd_fr(t):
    """The UTC (jd, fr) pair skyfield itself hands to SGP4 (sgp4lib, AIAA 2006-6753)."""
    return t.whole, t.tai_fraction - t._leap_seconds() / DAY_S


# --- Time ----------------------------------------------------------------------------------


def test_julian_dates():
    # J2000.0 noon UTC is JD 2451545.0 (Vallado 4th ed., Example 3-4 style hand value).
    jd, fr = jd_fr_from_datetime(datetime(2000, 1, 1, 12, tzinfo=UTC))
    assert jd + fr == 2_451_545.0
    when = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)
    assert datetime_from_jd_fr(*jd_fr_from_datetime(when)) == when
    jd, fr = jd_fr_add_seconds(*jd_fr_from_datetime(when), 1.0)
    assert datetime_from_jd_fr(float(jd), float(fr)) == when + timedelta(seconds=1)
    assert 0.0 <= fr < 1.0
    jd_u, fr_u = jd_fr_from_unix_s(np.array([0.0, 86_400.5]))
    np.testing.assert_allclose(jd_u + fr_u, [2_440_587.5, 2_440_588.5 + 0.5 / DAY_S])
    with pytest.raises(ValueError, match="timezone-aware"):
        jd_fr_from_datetime(datetime(2024, 1, 1))


def test_time_grid():
    jd, fr, off = time_grid(EPOCH, 100.0, 30.0)
    np.testing.assert_array_equal(off, [0.0, 30.0, 60.0, 90.0])
    np.testing.assert_allclose((jd - jd[0] + fr - fr[0]) * DAY_S, off, atol=1e-5)
    with pytest.raises(ValueError, match="step_s"):
        time_grid(EPOCH, 100.0, 0.0)


# --- Walker-Delta --------------------------------------------------------------------------


def _raan_and_arg_latitude(position_m, velocity_m_per_s):
    h = np.cross(position_m, velocity_m_per_s, axis=0)
    node = np.stack([-h[1], h[0], np.zeros_like(h[0])])
    raan = np.mod(np.arctan2(node[1], node[0]), 2 * np.pi)
    node_hat = node / np.linalg.norm(node, axis=0)
    r_hat = position_m / np.linalg.norm(position_m, axis=0)
    cos_u = np.sum(node_hat * r_hat, axis=0)
    sin_u = np.sum(np.cross(node_hat, r_hat, axis=0) * h, axis=0) / np.linalg.norm(h, axis=0)
    return raan, np.mod(np.arctan2(sin_u, cos_u), 2 * np.pi)


def test_walker_1584_72_1_geometry_from_propagated_states():
    # Starlink shell 1 as filed (FCC, SpaceX 2018 modification): 53 deg, 1584/72/1 at 550 km.
    shell = walker_delta(53 * DEG, 1584, 72, 1, 550e3, EPOCH)
    assert len(shell.satellites) == 1584
    assert np.bincount(shell.plane_index).tolist() == [22] * 72
    jd, fr = jd_fr_from_datetime(EPOCH)
    state = propagate_teme(shell, jd, fr)
    assert not state.error_code.any()
    raan, u = _raan_and_arg_latitude(state.position_m[:, :, 0], state.velocity_m_per_s[:, :, 0])
    raan = raan.reshape(72, 22)
    u = u.reshape(72, 22)
    incl = np.arccos(
        np.cross(state.position_m[:, :, 0], state.velocity_m_per_s[:, :, 0], axis=0)[2]
        / np.linalg.norm(
            np.cross(state.position_m[:, :, 0], state.velocity_m_per_s[:, :, 0], axis=0), axis=0
        )
    )
    # Osculating elements differ from the mean ones by J2 short-period terms (measured: RAAN
    # steps within 0.0002 deg, in-plane steps within 0.034 deg).
    assert np.abs(incl - 53 * DEG).max() < 0.1 * DEG
    plane_step = np.angle(np.exp(1j * np.diff(raan[:, 0])))
    assert np.abs(plane_step - 5.0 * DEG).max() < 0.01 * DEG  # 360 / 72
    slot_step = np.angle(np.exp(1j * np.diff(u, axis=1)))
    assert np.abs(slot_step - 360 / 22 * DEG).max() < 0.05 * DEG
    # In-plane phasing: each plane's satellites are F * 360 / T = 0.2273 deg further along in
    # argument of latitude (from their own node) than the previous plane's (Walker 1984).
    phase_step = np.angle(np.exp(1j * np.diff(u[:, 0])))
    assert np.abs(phase_step - 360 / 1584 * DEG).max() < 0.002 * DEG
    assert np.abs(np.diff(shell.raan_rad.reshape(72, 22)[:, 0]) - 5 * DEG).max() < 1e-12


def test_walker_period_matches_kepler_and_j2():
    shell = walker_delta(53 * DEG, 1584, 72, 1, 550e3, EPOCH)
    sat = shell.satellites[0]
    a_m = WGS84_A_M + 550e3
    kepler_s = 2 * math.pi * math.sqrt(a_m**3 / EARTH_MU_WGS72_M3_PER_S2)  # Kepler III
    # Mean (Kozai) mean motion of the Satrec, rad/min: Kepler's law within a millisecond.
    assert 2 * math.pi / sat.no_kozai * 60.0 == pytest.approx(kepler_s, abs=1e-3)
    assert kepler_s / 60 == pytest.approx(95.65, abs=0.01)  # ~95.6 min, as for Starlink
    # Measured nodal period (ascending-node crossings of the propagated orbit) against the
    # Kepler period with first-order J2 secular rates of M and omega (Vallado 4th ed.
    # eqs. 9-41; Kozai 1959): P_node = P_K / (1 + 3/4 J2 (R/a)^2 (3 cos^2 i - 1 + 4 - 5 sin^2 i)).
    jd, fr, off = time_grid(EPOCH, 4 * 5740.0, 1.0)
    z = propagate_teme([sat], jd, fr).position_m[2, 0]
    k = np.flatnonzero((z[:-1] < 0) & (z[1:] >= 0))
    crossings = off[k] - z[k] / (z[k + 1] - z[k]) * (off[k + 1] - off[k])
    nodal_s = np.diff(crossings).mean()
    j2_term = 0.75 * EARTH_J2_WGS72 * (6_378_135.0 / a_m) ** 2
    c2 = math.cos(53 * DEG) ** 2
    predicted_s = kepler_s / (1 + j2_term * ((3 * c2 - 1) + (4 - 5 * (1 - c2))))
    assert nodal_s == pytest.approx(predicted_s, abs=1.0)
    # ... and J2 really shortens it by ~3 s, so the comparison above is not vacuous.
    assert 2.0 < kepler_s - nodal_s < 5.0


def test_walker_rejects_bad_inputs():
    with pytest.raises(ValueError, match="degrees passed"):
        walker_delta(53.0, 1584, 72, 1, 550e3, EPOCH)
    with pytest.raises(ValueError, match="multiple of planes"):
        walker_delta(0.9, 1584, 71, 1, 550e3, EPOCH)
    with pytest.raises(ValueError, match="phasing"):
        walker_delta(0.9, 1584, 72, 72, 550e3, EPOCH)


# --- TLE ingest ------------------------------------------------------------------------------


def test_parse_3le_2le_and_0_prefixed_names():
    entries = parse_tle_text(ISS_3LE + "\n\n" + ISS_LINE1 + "\n" + ISS_LINE2 + "\n")
    assert [e.name for e in entries] == [ISS_NAME, ""]
    assert [e.satnum for e in entries] == [25544, 25544]
    assert parse_tle_text("0 " + ISS_3LE)[0].name == ISS_NAME
    assert entries[0].satrec.jdsatepoch + entries[0].satrec.jdsatepochF == pytest.approx(
        2_458_303.30969102, abs=1e-8
    )


def test_sample_data_file_loads():
    from pathlib import Path

    import twin.physics.orbits as orbits

    path = Path(orbits.__file__).parent / "data" / "sample_leo.tle"
    entries = load_tle_file(path)
    assert len(entries) >= 3 and all(e.satnum == 25544 for e in entries)


def _with_checksum(line: str) -> str:
    total = sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68])
    return line[:68] + str(total % 10)


@pytest.mark.parametrize(
    ("line1", "line2", "bad_line", "message"),
    [
        (ISS_LINE1[:-1] + "4", ISS_LINE2, 2, "bad checksum"),
        (ISS_LINE1, ISS_LINE2[:60], 3, "wrong length"),
        (ISS_LINE1, "3" + ISS_LINE2[1:], 3, "wrong line number column"),
        ("3" + ISS_LINE1[1:], ISS_LINE2, 2, "wrong line number column"),
        # 'O' for '0' keeps the checksum (letters count 0) but is not a number.
        (ISS_LINE1, ISS_LINE2.replace("204.2868", "2O4.2868"), 3, "non-numeric field mean anom"),
        (_with_checksum(ISS_LINE1.replace("18184.8", "18l84.8")), ISS_LINE2, 2, "non-numeric"),
        (ISS_LINE1, _with_checksum(ISS_LINE2.replace("25544", "25545", 1)), 3, "differs"),
    ],
)
def test_malformed_tle_rejected_with_line_number(line1, line2, bad_line, message):
    text = f"{ISS_NAME}\n{line1}\n{line2}\n"
    with pytest.raises(ValueError, match=f"line {bad_line}: {message}|line {bad_line}.*{message}"):
        parse_tle_text(text)


def test_malformed_tle_line_numbers_count_blank_lines_and_earlier_sets():
    text = ISS_3LE + "\n" + ISS_NAME + "\n" + ISS_LINE1[:-1] + "0\n" + ISS_LINE2 + "\n"
    with pytest.raises(ValueError, match="line 6: bad checksum"):
        parse_tle_text(text, source="x.tle")
    with pytest.raises(ValueError, match="line 1: TLE line 2 without"):
        parse_tle_text(ISS_LINE2 + "\n")
    with pytest.raises(ValueError, match="not followed by TLE lines"):
        parse_tle_text(ISS_NAME + "\n")


# --- OMM ingest -----------------------------------------------------------------------------

ISS_OMM = {
    # The same element set in CelesTrak's OMM keys (CCSDS 502.0-B-3); EPOCH is 2018 day
    # 184.80969102 = 2018-07-03T19:25:57.304128.
    "OBJECT_NAME": ISS_NAME,
    "OBJECT_ID": "1998-067A",
    "EPOCH": "2018-07-03T19:25:57.304128",
    "MEAN_MOTION": 15.54005638,
    "ECCENTRICITY": 0.0003435,
    "INCLINATION": 51.6414,
    "RA_OF_ASC_NODE": 295.8524,
    "ARG_OF_PERICENTER": 262.6267,
    "MEAN_ANOMALY": 204.2868,
    "EPHEMERIS_TYPE": 0,
    "CLASSIFICATION_TYPE": "U",
    "NORAD_CAT_ID": 25544,
    "ELEMENT_SET_NO": 999,
    "REV_AT_EPOCH": 12110,
    "BSTAR": 3.1745e-5,
    "MEAN_MOTION_DOT": 1.614e-5,
    "MEAN_MOTION_DDOT": 0,
}


def test_omm_json_and_csv_match_the_tle():
    tle = parse_tle_text(ISS_3LE)[0]
    from_json = parse_omm_text(json.dumps([ISS_OMM]))[0]
    header = ",".join(ISS_OMM)
    row = ",".join(str(v) for v in ISS_OMM.values())
    from_csv = parse_omm_text(header + "\n" + row + "\n", fmt="csv")[0]
    assert from_json.name == ISS_NAME and from_json.satnum == 25544
    jd, fr, _ = time_grid((tle.satrec.jdsatepoch, tle.satrec.jdsatepochF), DAY_S, 600.0)
    ref = propagate_teme([tle.satrec], jd, fr).position_m
    for entry in (from_json, from_csv):
        got = propagate_teme([entry.satrec], jd, fr).position_m
        assert np.abs(got - ref).max() < 1.0  # metres over a day
    bad = dict(ISS_OMM)
    del bad["MEAN_MOTION"]
    with pytest.raises(ValueError, match="record 2: missing key MEAN_MOTION"):
        parse_omm_text(json.dumps([ISS_OMM, bad]))


# --- Propagation, frames, error codes ----------------------------------------------------


def test_iss_ecef_matches_skyfield_itrs():
    # Outside authority: skyfield's EarthSatellite.at(t) rotated into its ITRS frame, same TLE.
    # With the same UT1 (dut1 from skyfield's tables) the agreement is numerical (< 1 m); with
    # UT1 = UTC (dut1 = 0) the Earth-fixed error is omega_E * r * dut1 = 36 m at dut1 = 0.072 s
    # (July 2018), bounded by 450 m for |dut1| <= 0.9 s. Polar motion is off in both.
    sat = EarthSatellite(ISS_LINE1, ISS_LINE2, ISS_NAME, TS)
    t = TS.utc(2018, 7, 4, 0, np.arange(0.0, 1440.0, 10.0))
    r_itrs, v_itrs = sat.at(t).frame_xyz_and_velocity(itrs)
    jd, fr = _skyfield_utc_jd_fr(t)
    entries = parse_tle_text(ISS_3LE)
    exact = propagate_ecef(entries, jd, fr, dut1_s=t.dut1)
    assert exact.position_m.shape == (3, 1, 144)
    assert np.linalg.norm(exact.position_m[:, 0] - r_itrs.m, axis=0).max() < 1.0
    assert np.linalg.norm(exact.velocity_m_per_s[:, 0] - v_itrs.m_per_s, axis=0).max() < 1e-3
    approx = propagate_ecef(entries, jd, fr)
    err_m = np.linalg.norm(approx.position_m[:, 0] - r_itrs.m, axis=0).max()
    assert 10.0 < err_m < 50.0


def test_gmst_matches_skyfield_and_sgp4():
    jd = np.array([2_451_545.0, 2_460_000.5, 2_458_303.5])
    fr = np.array([0.0, 0.25, 0.80969102])
    theta, theta_dot = gmst_1982_rad(jd, fr)
    ref, ref_dot = theta_GMST1982(jd, fr)
    np.testing.assert_allclose(theta, ref, atol=1e-12)
    np.testing.assert_allclose(theta_dot, ref_dot / DAY_S, rtol=1e-12)
    # sgp4 stores GMST at the element epoch (gsto), computed by its own gstime().
    satrec = parse_tle_text(ISS_3LE)[0].satrec
    got, _ = gmst_1982_rad(satrec.jdsatepoch, satrec.jdsatepochF)
    # gstime() sums jd + fr in one double (~1e-9 rad loss): 1e-8 rad is 0.07 m at LEO.
    assert abs(np.angle(np.exp(1j * (got - satrec.gsto)))) < 1e-8
    assert theta_dot[0] == pytest.approx(7.292_115_8e-5, rel=1e-7)  # sidereal rate


def test_teme_to_ecef_broadcasting_and_rotation():
    rng = np.random.default_rng(1)
    r = rng.normal(0, 7e6, (3, 4, 5))
    v = rng.normal(0, 7e3, (3, 4, 5))
    jd = np.full(5, 2_460_000.5)
    fr = np.linspace(0, 0.1, 5)
    pos, vel = teme_to_ecef(r, v, jd, fr)
    assert pos.shape == vel.shape == (3, 4, 5)
    np.testing.assert_allclose(np.linalg.norm(pos, axis=0), np.linalg.norm(r, axis=0))
    np.testing.assert_allclose(pos[2], r[2])
    one, one_v = teme_to_ecef(r[:, 2, 3], v[:, 2, 3], jd[3], fr[3])
    np.testing.assert_allclose(one, pos[:, 2, 3], rtol=1e-14)
    np.testing.assert_allclose(one_v, vel[:, 2, 3], rtol=1e-14)
    vec, _ = teme_to_ecef(r[:, 0, :], None, jd, fr)
    np.testing.assert_allclose(vec, pos[:, 0, :], rtol=1e-14)


def test_sgp4_failures_come_back_as_error_codes():
    # A 200 km satellite with heavy drag decays within days: SGP4 reports it, no exception.
    shell = walker_delta(
        51.6 * DEG, 2, 1, 0, 200e3, EPOCH, bstar_per_earth_radius=0.05, first_satnum=90_000
    )
    jd, fr, _ = time_grid(EPOCH, 30 * DAY_S, DAY_S)
    prop = propagate_ecef(shell, jd, fr)
    assert prop.error_code.shape == (2, 31)
    assert prop.error_code[:, 0].tolist() == [0, 0]
    assert prop.error_code[:, -1].all()
    assert np.isnan(prop.position_m[:, prop.error_code != 0]).all()


def test_constellation_propagator_matches_batch_propagation():
    shell = walker_delta(53 * DEG, 120, 12, 1, 550e3, EPOCH)
    prop = ConstellationPropagator(shell)
    jd, fr = jd_fr_add_seconds(*jd_fr_from_datetime(EPOCH), 1234.5)
    pos, vel, err = prop.state_ecef(float(jd), float(fr), dut1_s=0.1)
    ref = propagate_ecef(shell, jd, fr, dut1_s=0.1)
    np.testing.assert_allclose(pos, ref.position_m[:, :, 0], atol=1e-6)
    np.testing.assert_allclose(vel, ref.velocity_m_per_s[:, :, 0], atol=1e-9)
    np.testing.assert_allclose(prop.positions_ecef_m(float(jd), float(fr), 0.1), pos, atol=1e-9)
    assert not err.any()


# --- Passes ----------------------------------------------------------------------------------


def test_find_passes_matches_skyfield_find_events():
    # Outside authority: skyfield's EarthSatellite.find_events (its tolerance: 0.5 s).
    sat = EarthSatellite(ISS_LINE1, ISS_LINE2, ISS_NAME, TS)
    lat, lon, alt = 48.15, 11.58, 520.0
    t0, t1 = TS.utc(2018, 7, 4), TS.utc(2018, 7, 5)
    times, events = sat.find_events(wgs84.latlon(lat, lon, alt), t0, t1, altitude_degrees=10.0)
    sf_s = (times.tt - t0.tt) * DAY_S
    sites = SiteGeometry(lat * DEG, lon * DEG, alt)
    passes = find_passes(
        parse_tle_text(ISS_3LE),
        sites,
        _skyfield_utc_jd_fr(t0),
        _skyfield_utc_jd_fr(t1),
        10 * DEG,
        dut1_s=float(t0.dut1),
    )
    assert len(passes.rise_s) == np.sum(events == 0) >= 3
    np.testing.assert_allclose(passes.rise_s, sf_s[events == 0], atol=1.0)
    np.testing.assert_allclose(passes.set_s, sf_s[events == 2], atol=1.0)
    np.testing.assert_allclose(passes.culminate_s, sf_s[events == 1], atol=2.0)
    # Our own refinement: the elevation at rise and set is the mask to 1e-6 rad (tolerance
    # 1 ms of a <= 1 deg/s elevation rate), and the maximum is the maximum.
    jd0, fr0 = _skyfield_utc_jd_fr(t0)
    entries = parse_tle_text(ISS_3LE)
    for column in (passes.rise_s, passes.set_s, passes.culminate_s):
        jd, fr = jd_fr_add_seconds(jd0, fr0, column)
        state = propagate_ecef(entries, jd, fr, dut1_s=float(t0.dut1))
        el = look_angles(lat * DEG, lon * DEG, alt, state.position_m[:, 0]).elevation_rad
        if column is passes.culminate_s:
            np.testing.assert_allclose(el, passes.max_elevation_rad, atol=1e-9)
            around = []
            for dt in (-5.0, 5.0):
                jd2, fr2 = jd_fr_add_seconds(jd, fr, dt)
                s2 = propagate_ecef(entries, jd2, fr2, dut1_s=float(t0.dut1))
                around.append(look_angles(lat * DEG, lon * DEG, alt, s2.position_m[:, 0]))
            assert np.all(el > around[0].elevation_rad) and np.all(el > around[1].elevation_rad)
        else:
            assert np.abs(el - 10 * DEG).max() < 1e-6


def test_find_passes_agrees_with_dense_sampling_for_a_shell():
    # Independent of any outside code: on a 5 s grid, a pair is above the mask exactly when
    # the grid instant lies inside one of its passes (NaN ends = window ends).
    shell = walker_delta(53 * DEG, 240, 12, 1, 550e3, EPOCH)
    sites = SiteGeometry(np.array([48.1, -25.9, 1.3]) * DEG, np.array([11.6, 28.2, 103.8]) * DEG, 0)
    duration_s = 3 * 3600.0
    mask = 25 * DEG
    passes = find_passes(shell, sites, EPOCH, EPOCH + timedelta(seconds=duration_s), mask)
    assert len(passes.rise_s) > 100 and np.isnan(passes.rise_s).any()  # measured: 252, 6
    jd, fr, off = time_grid(EPOCH, duration_s, 5.0)
    state = propagate_ecef(shell, jd, fr)
    el, _ = sites.elevation_and_range(state.position_m)  # (S, N, T)
    inside = np.zeros(el.shape, dtype=bool)
    rise = np.nan_to_num(passes.rise_s, nan=0.0)
    set_ = np.nan_to_num(passes.set_s, nan=duration_s)
    for s, n, a, b in zip(passes.site_index, passes.satellite_index, rise, set_, strict=True):
        inside[s, n] |= (off >= a) & (off <= b)
    near_edge = np.abs(el - mask) < 1e-4  # a grid instant within ~0.1 s of a rise or set
    assert np.array_equal((el >= mask)[~near_edge], inside[~near_edge])
    assert (passes.max_elevation_rad >= mask).all()
    assert np.all((passes.culminate_s >= rise) & (passes.culminate_s <= set_))


def test_find_passes_with_no_pass_and_with_a_pass_in_progress():
    sats = walker_delta(53 * DEG, 1, 1, 0, 550e3, EPOCH)
    sites = SiteGeometry(0.0, 0.0, 0.0)
    none = find_passes(sats, sites, EPOCH, EPOCH + timedelta(minutes=10), 89.9 * DEG)
    assert none.rise_s.shape == none.site_index.shape == (0,)
    # Start the search at the sub-satellite point of the epoch position: the satellite is
    # overhead at t = 0, so the pass has no rise in the window.
    state = propagate_ecef(sats, *jd_fr_from_datetime(EPOCH))
    lat, lon, _ = ecef_to_geodetic(state.position_m[:, 0, 0])
    here = SiteGeometry(lat, lon, 0.0)
    passes = find_passes(sats, here, EPOCH, EPOCH + timedelta(minutes=30), 30 * DEG)
    assert len(passes.rise_s) == 1 and np.isnan(passes.rise_s[0])
    assert passes.culminate_s[0] < 1.0 and passes.max_elevation_rad[0] > 89 * DEG
    assert 60.0 < passes.set_s[0] < 300.0


def test_find_passes_inputs_checked():
    sites = SiteGeometry(0.5, 0.5, 0.0)
    sats = walker_delta(53 * DEG, 4, 2, 1, 550e3, EPOCH)
    with pytest.raises(ValueError, match="degrees passed"):
        find_passes(sats, sites, EPOCH, EPOCH + timedelta(hours=1), 20.0)
    with pytest.raises(ValueError, match="stop must be after start"):
        find_passes(sats, sites, EPOCH, EPOCH, 0.2)
