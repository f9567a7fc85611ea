"""Tests for twin.physics.sun: Sun position, shadow models, eclipse fraction, period, beta."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from twin.physics.orbits import (
    jd_fr_from_datetime,
    propagate_ecef,
    propagate_teme,
    time_grid,
    walker_delta,
)
from twin.physics.sun import (
    beta_angle_from_state_rad,
    beta_angle_rad,
    eclipse_duration_s,
    eclipse_fraction,
    load_skyfield,
    orbital_period_s,
    sun_position_ecef_m,
    sun_position_ecef_m_de421,
    sun_position_teme_m,
    sunlit_fraction,
)
from twin.units import AU_M, DEG, MINUTE_S, WGS84_A_M

EQUINOX_2024 = datetime(2024, 3, 20, 3, 6, tzinfo=UTC)  # March equinox 2024, 03:06 UTC


def _angle_deg(a, b):
    cos = np.sum(a * b, axis=0) / np.linalg.norm(a, axis=0) / np.linalg.norm(b, axis=0)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


# --- Period and eclipse fraction of a 550 km orbit (the validation values) --------


def test_period_and_eclipse_of_550_km_orbit_by_hand():
    # Hand computation, R = 6378.137 km (WGS84), GM = 398600.4418 km^3/s^2:
    #   a = 6928.137 km; P = 2 pi sqrt(a^3 / GM) = 5739.0 s = 95.65 min ("~95.6 min").
    #   sqrt(h^2 + 2 R h) = sqrt(550^2 + 2 * 6378.137 * 550) = 2705.26 km;
    #   f = arccos(2705.26 / 6928.137) / pi = arccos(0.39047) / pi = 1.16965 / pi = 0.3723
    #   -> 0.3723 * 95.65 min = 35.61 min of shadow per orbit at beta = 0.
    # (Formula: Wertz & Larson, SMAD 3rd ed. 1999, section 5.1; the "~0.38, ~35.8 min"
    # are rounded versions of the same numbers.)
    assert orbital_period_s(550e3) / MINUTE_S == pytest.approx(95.65, abs=0.01)
    assert eclipse_fraction(550e3) == pytest.approx(0.3723, abs=1e-4)
    assert eclipse_duration_s(550e3) / MINUTE_S == pytest.approx(35.61, abs=0.02)


def test_eclipse_fraction_beta_dependence():
    h = 550e3
    beta_star = math.asin(WGS84_A_M / (WGS84_A_M + h))  # 67.0 deg: no eclipse beyond
    assert math.degrees(beta_star) == pytest.approx(67.02, abs=0.01)
    assert eclipse_fraction(h, beta_star + 1e-6) == 0.0
    assert eclipse_fraction(h, -(beta_star + 0.1)) == 0.0
    assert eclipse_fraction(h, beta_star - 1e-3) > 0.0
    betas = np.linspace(0.0, beta_star - 1e-6, 50)
    assert np.all(np.diff(eclipse_fraction(h, betas)) < 0)
    assert eclipse_fraction(h, 0.3) == eclipse_fraction(h, -0.3)
    # GEO at equinox: the textbook ~70 min maximum eclipse (SMAD 3rd ed., section 5.1).
    geo_h = 35_786e3
    assert eclipse_duration_s(geo_h) / MINUTE_S == pytest.approx(69.4, abs=0.5)
    with pytest.raises(ValueError, match="degrees passed"):
        eclipse_fraction(550e3, 30.0)
    with pytest.raises(ValueError, match="altitude_m"):
        eclipse_fraction(-5.0)


def test_period_and_eclipse_broadcasting():
    h = np.linspace(300e3, 1200e3, 6).reshape(2, 3)
    beta = np.linspace(0.0, 0.9, 6).reshape(2, 3)
    for func in (eclipse_fraction, eclipse_duration_s):
        full = func(h, beta)
        assert full.shape == (2, 3)
        np.testing.assert_allclose(func(h[:, 0], beta[:, 0]), full[:, 0])
        assert func(h[1, 2], beta[1, 2]) == pytest.approx(full[1, 2])
    assert orbital_period_s(h).shape == (2, 3)
    assert orbital_period_s(h[1, 1]) == pytest.approx(orbital_period_s(h)[1, 1])


# --- Sun position -----------------------------------------------------------------------------


def test_analytic_sun_against_de421():
    # DE421 (JPL, Folkner et al. 2008) through skyfield, offline, over 2000-2050. The Almanac
    # formula is quoted at 0.01 deg; against the *geometric* DE421 direction it also carries
    # aberration (20.5") and nutation (< 17"), measured max 0.0205 deg.
    jd, fr, _ = time_grid(datetime(2000, 1, 1, tzinfo=UTC), 50 * 365.25 * 86_400, 86_400 * 9.1)
    fast = sun_position_ecef_m(jd, fr)
    ref = sun_position_ecef_m_de421(jd, fr)
    assert ref.shape == fast.shape == (3, jd.size)
    assert _angle_deg(fast, ref).max() < 0.025
    assert np.abs(np.linalg.norm(fast, axis=0) / np.linalg.norm(ref, axis=0) - 1).max() < 2e-4
    dist_au = np.linalg.norm(ref, axis=0) / AU_M
    assert 0.983 < dist_au.min() < 0.984 and 1.016 < dist_au.max() < 1.017  # perihelion/aphelion


def test_sun_position_broadcasting_and_equinox():
    jd0, fr0 = jd_fr_from_datetime(EQUINOX_2024)
    jd = np.full((2, 3), jd0)
    fr = fr0 + np.arange(6).reshape(2, 3) * 0.1
    for func in (sun_position_teme_m, sun_position_ecef_m, sun_position_ecef_m_de421):
        full = func(jd, fr)
        assert full.shape == (3, 2, 3)
        np.testing.assert_allclose(func(jd[:, 0], fr[:, 0]), full[:, :, 0], rtol=1e-9)
        np.testing.assert_allclose(func(jd[1, 2], fr[1, 2]), full[:, 1, 2], rtol=1e-9)
    # At the equinox the Sun is on the equator, at the equinox direction (+x of TEME).
    s = sun_position_teme_m(jd0, fr0)
    assert math.degrees(math.asin(s[2] / np.linalg.norm(s))) == pytest.approx(0.0, abs=0.02)
    assert _angle_deg(s, np.array([1.0, 0.0, 0.0])) < 0.05


# --- Shadow models against skyfield's is_sunlit ------------------------------------------


def _equatorial_orbit_at_equinox():
    # beta ~ 0 (the Sun's declination changes by 0.4 deg in the day).
    return walker_delta(0.0, 1, 1, 0, 550e3, EQUINOX_2024).satellites[0]


def _transitions(flag, off_s):
    k = np.flatnonzero(np.diff(flag.astype(np.int8)) != 0)
    return off_s[k], flag[k + 1]


@pytest.fixture(scope="module")
def skyfield_eclipse_day():
    """Shadow entry/exit times of skyfield's is_sunlit, to 1 s, over one day (30 s + 1 s)."""
    from skyfield.api import EarthSatellite

    ts, eph = load_skyfield()
    satrec = _equatorial_orbit_at_equinox()
    sat = EarthSatellite.from_satrec(satrec, ts)
    jd0, fr0 = jd_fr_from_datetime(EQUINOX_2024)

    def lit_at(offsets_s):
        t = ts.utc(2024, 3, 20, 3, 6, offsets_s)
        return sat.at(t).is_sunlit(eph)

    coarse = np.arange(0.0, 86_400.0, 30.0)
    lit = lit_at(coarse)
    change = coarse[np.flatnonzero(np.diff(lit.astype(np.int8)) != 0)]
    fine = np.unique(np.concatenate([np.arange(c - 60.0, c + 61.0, 1.0) for c in change]))
    fine_lit = lit_at(fine)
    times, new_state = [], []
    for c in change:
        window = (fine >= c - 60.0) & (fine <= c + 60.0)
        t_w, s_w = _transitions(fine_lit[window], fine[window])
        times.extend(t_w)
        new_state.extend(s_w)
    return satrec, (jd0, fr0), np.array(times), np.array(new_state, dtype=bool)


def test_shadow_entry_exit_times_match_skyfield(skyfield_eclipse_day):
    satrec, (jd0, fr0), sf_times, sf_lit_after = skyfield_eclipse_day
    assert len(sf_times) >= 28  # ~15 orbits a day, two transitions each
    fine = np.unique(np.concatenate([np.arange(t - 60.0, t + 61.0, 1.0) for t in sf_times]))
    jd, fr = jd0 + np.zeros_like(fine), fr0 + fine / 86_400.0
    state = propagate_ecef([satrec], jd, fr)
    sun = sun_position_ecef_m(jd, fr)  # the fast analytic Sun
    for model in ("cylindrical", "conical"):
        frac = sunlit_fraction(state.position_m[:, 0], sun, model)
        ours = []
        for t in sf_times:
            window = (fine >= t - 60.0) & (fine <= t + 60.0)
            t_w, _ = _transitions(frac[window] >= 0.5, fine[window])
            assert len(t_w) == 1
            ours.append(t_w[0])
        assert np.abs(np.array(ours) - sf_times).max() <= 2.0  # seconds
    # The conical penumbra of a 550 km orbit lasts ~8 s per transition (Sun 0.53 deg wide,
    # seen through a limb crossing of ~0.064 deg/s).
    conical = sunlit_fraction(state.position_m[:, 0], sun, "conical")
    penumbra_s = np.sum((conical > 0) & (conical < 1)) / len(sf_times)
    assert 5.0 < penumbra_s < 12.0


def test_eclipse_fraction_matches_simulated_orbit(skyfield_eclipse_day):
    # Shadow duration per orbit from skyfield's is_sunlit transitions against the formula at
    # the orbit's own mean altitude and beta angle.
    satrec, (jd0, fr0), sf_times, sf_lit_after = skyfield_eclipse_day
    entries = sf_times[~sf_lit_after]
    exits = sf_times[sf_lit_after]
    exits = exits[exits > entries[0]]
    n = min(len(entries), len(exits))
    durations = exits[:n] - entries[:n]
    jd, fr, _ = time_grid((jd0, fr0), 86_400.0, 60.0)
    teme = propagate_teme([satrec], jd, fr)
    mean_alt = np.linalg.norm(teme.position_m[:, 0], axis=0).mean() - WGS84_A_M
    beta = beta_angle_from_state_rad(
        teme.position_m[:, 0], teme.velocity_m_per_s[:, 0], sun_position_teme_m(jd, fr)
    )
    assert np.abs(beta).max() < 0.5 * DEG
    expected = eclipse_duration_s(mean_alt, beta.mean())
    assert np.abs(durations - expected).max() < 5.0  # seconds per orbit
    assert durations.mean() / MINUTE_S == pytest.approx(35.5, abs=0.3)


def test_sunlit_fraction_geometry():
    sun = np.array([AU_M, 0.0, 0.0])
    r = WGS84_A_M + 550e3
    points = np.array(
        [
            [r, 0.0, 0.0],  # sub-solar side
            [-r, 0.0, 0.0],  # deep in the shadow
            [0.0, r, 0.0],  # terminator, far from the cylinder
            [-r, 0.0, WGS84_A_M - 1e3],  # just inside the cylinder's edge
            [-r, 0.0, WGS84_A_M + 1e3],  # just outside it
        ]
    ).T
    cyl = sunlit_fraction(points, sun, "cylindrical")
    con = sunlit_fraction(points, sun, "conical")
    np.testing.assert_array_equal(cyl, [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(con[:3], [1, 0, 1])
    # At the cylinder's edge the Sun is half covered (Sun's semi-diameter 4.7 mrad spans
    # ~+-33 km of limb distance at this range, so 1 km moves the fraction by a few per cent).
    assert 0.3 < con[3] < 0.5 < con[4] < 0.7
    with pytest.raises(ValueError, match="model"):
        sunlit_fraction(points, sun, "umbra")


def test_sunlit_fraction_broadcasting():
    rng = np.random.default_rng(3)
    r = rng.normal(0.0, 7e6, (3, 4, 5))
    sun = np.array([AU_M, 0.2 * AU_M, 0.0])
    for model in ("cylindrical", "conical"):
        full = sunlit_fraction(r, sun, model)
        assert full.shape == (4, 5)
        assert np.all((full >= 0) & (full <= 1))
        np.testing.assert_array_equal(sunlit_fraction(r[:, :, 0], sun, model), full[:, 0])
        assert sunlit_fraction(r[:, 1, 2], sun, model) == full[1, 2]
        per_point = sunlit_fraction(r, sun[:, None, None] * np.ones((1, 4, 5)), model)
        np.testing.assert_array_equal(per_point, full)


# --- Beta angle ---------------------------------------------------------------------------------


def test_beta_angle_from_elements_and_state_agree():
    jd0, fr0 = jd_fr_from_datetime(EQUINOX_2024)
    shell = walker_delta(53 * DEG, 12, 12, 0, 550e3, EQUINOX_2024)
    state = propagate_teme(shell, jd0, fr0)
    sun = sun_position_teme_m(jd0, fr0)
    from_state = beta_angle_from_state_rad(
        state.position_m[:, :, 0], state.velocity_m_per_s[:, :, 0], sun
    )
    from_elements = beta_angle_rad(53 * DEG, shell.raan_rad, sun)
    assert from_elements.shape == (12,)
    # Osculating vs mean plane orientation: ~0.01 deg.
    assert np.abs(from_state - from_elements).max() < 0.05 * DEG
    # Hand check: at the equinox the Sun lies along +x, and the orbit normal
    # (sin i sin RAAN, -sin i cos RAAN, cos i) gives beta = asin(sin i sin RAAN).
    np.testing.assert_allclose(
        from_elements, np.arcsin(math.sin(53 * DEG) * np.sin(shell.raan_rad)), atol=0.05 * DEG
    )


def test_beta_angle_broadcasting():
    inc = np.full((2, 3), 1.0)
    raan = np.linspace(0, 6, 6).reshape(2, 3)
    sun = np.array([1.0, 0.5, 0.2])
    full = beta_angle_rad(inc, raan, sun)
    assert full.shape == (2, 3)
    np.testing.assert_allclose(beta_angle_rad(inc[:, 0], raan[:, 0], sun), full[:, 0])
    assert beta_angle_rad(1.0, raan[1, 2], sun) == pytest.approx(full[1, 2])
    suns = np.broadcast_to(sun[:, None, None], (3, 2, 3))
    np.testing.assert_allclose(beta_angle_rad(inc, raan, suns), full)


def test_sunlit_fraction_through_the_penumbra_is_the_same_alone_or_in_a_crowd():
    # the overlap area is computed for the penumbra elements only: a point's fraction must
    # not depend on which other points share the call (lit, umbra and penumbra mixed), and
    # it must fall monotonically from lit to umbra across the shadow's edge
    sun = np.array([AU_M, 0.0, 0.0])
    r = WGS84_A_M + 550e3
    z = np.linspace(WGS84_A_M - 60e3, WGS84_A_M + 60e3, 241)
    edge = np.stack([np.full(z.size, -r), np.zeros(z.size), z])
    crowd = np.concatenate([edge, [[r, -r], [0.0, 0.0], [0.0, 0.0]]], axis=1)
    together = sunlit_fraction(crowd, sun)
    alone = np.array([sunlit_fraction(crowd[:, k], sun) for k in range(crowd.shape[1])])
    np.testing.assert_array_equal(together, alone)
    across = together[: z.size]
    assert across[0] == 0.0 and across[-1] == 1.0
    assert np.sum((across > 0) & (across < 1)) > 50  # the edge is crossed through a penumbra
    assert np.all(np.diff(across) >= 0.0)
