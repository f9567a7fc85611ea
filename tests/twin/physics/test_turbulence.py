"""Tests for twin.physics.turbulence: HV profile, slant integrals, Gamma-Gamma, beam wander."""

from __future__ import annotations

import math

import aotools
import mpmath
import numpy as np
import pytest
from scipy import integrate

from twin.physics.turbulence import (
    beam_wander_efficiency,
    beam_wander_variance_m2,
    constant_cn2_rytov_variance,
    downlink_effective_turbulence_distance_m,
    gamma_gamma_alpha_beta,
    gamma_gamma_alpha_beta_aperture,
    gamma_gamma_cdf,
    gamma_gamma_fade_margin_db,
    gamma_gamma_pdf,
    gamma_gamma_samples,
    hufnagel_valley_cn2,
    long_term_beam_radius_m,
    scintillation_index,
    scintillation_index_from_alpha_beta,
    seeing_arcsec,
    slant_fried_parameter_m,
    slant_isoplanatic_angle_rad,
    slant_rytov_variance,
)
from twin.units import ARCSEC, CM, DEG, KM, MM, NM, URAD

LEO_M = 500 * KM
HAPS_M = 20 * KM


def _hv_integral(weight, lower=0.0, upper=100 * KM, *, base=0.0, **hv) -> float:
    """Reference: adaptive scipy.quad of Cn2 * weight over [lower, upper]."""
    points = [p for p in (50, 100, 300, 1e3, 1.5e3, 5e3, 1e4, 2e4) if lower < p + base < upper]
    points = [p + base for p in points]

    def f(h):
        return float(hufnagel_valley_cn2(max(h - base, 0.0), **hv)) * weight(h)

    return integrate.quad(f, lower, upper, points=points or None, limit=1000, epsrel=1e-12)[0]


# --- Hufnagel-Valley and the slant integrals --------------------------------------------------


def test_hv57_gives_r0_5cm_and_theta0_7urad_at_500nm():
    # Andrews & Phillips 2005, sec. 12.2.1: the HV "5/7" model (v = 21 m/s, A = 1.7e-14) is
    # named for r0 ~ 5 cm and theta0 ~ 7 urad at 0.5 um, zenith. Tolerances: 2 mm and 0.3 urad
    # (the model's name is given to one digit).
    r0_m = slant_fried_parameter_m(0.0, 500 * NM, platform_altitude_m=LEO_M)
    theta0_rad = slant_isoplanatic_angle_rad(0.0, 500 * NM, platform_altitude_m=LEO_M)
    assert abs(r0_m - 5.0 * CM) < 2 * MM
    assert abs(theta0_rad - 7.0 * URAD) < 0.3 * URAD


def test_r0_and_seeing_match_aotools_for_the_same_integrated_cn2():
    # aotools 1.0.8 (atmos_conversions.cn2_to_r0, r0_to_seeing): r0 = (0.423 k^2 J)^(-3/5) and
    # seeing = 0.98 lambda / r0 for an integrated Cn2 J (the slant column J_z = J sec z).
    j_zenith = _hv_integral(lambda h: 1.0)
    for wavelength_m in (500 * NM, 850 * NM, 1550 * NM):
        for zenith_rad in (0.0, 30 * DEG, 60 * DEG):
            ours_m = slant_fried_parameter_m(zenith_rad, wavelength_m, platform_altitude_m=LEO_M)
            ref_m = aotools.cn2_to_r0(j_zenith / math.cos(zenith_rad), wavelength_m)
            assert abs(ours_m - ref_m) < 0.01 * MM
            ours_arcsec = seeing_arcsec(ours_m, wavelength_m)
            ref_arcsec = aotools.r0_to_seeing(ref_m, wavelength_m)
            assert abs(ours_arcsec - ref_arcsec) < 1e-4  # arcsec


def test_rytov_and_isoplanatic_angle_match_aotools_layer_sums():
    # aotools' rytov_variance (2.25 k^(7/6) sum cn2_i h_i^(5/6)) and isoplanaticAngle
    # (0.0581 lambda^(6/5) (sum cn2_i h_i^(5/3))^(-3/5), arcsec) on a 2 m layered HV profile.
    edges = np.arange(0.0, 60 * KM + 1.0, 2.0)
    mid = 0.5 * (edges[1:] + edges[:-1])
    layers = hufnagel_valley_cn2(mid) * np.diff(edges)
    wavelength_m = 850 * NM
    ref_rytov = aotools.turbulence.rytov_variance(layers, mid, wavelength_m)
    ours_rytov = slant_rytov_variance(0.0, wavelength_m, platform_altitude_m=LEO_M)
    assert abs(ours_rytov / ref_rytov - 1.0) < 1e-3
    ref_theta0_rad = aotools.turbulence.isoplanaticAngle(layers, mid, wavelength_m) * ARCSEC
    ours_theta0_rad = slant_isoplanatic_angle_rad(0.0, wavelength_m, platform_altitude_m=LEO_M)
    assert abs(ours_theta0_rad - ref_theta0_rad) < 0.01 * URAD


@pytest.mark.parametrize(
    ("kwargs", "weight", "lower", "upper"),
    [
        ({"direction": "downlink", "wave": "plane"}, lambda h: h ** (5 / 6), 0.0, LEO_M),
        ({"direction": "uplink", "wave": "plane"}, lambda h: (LEO_M - h) ** (5 / 6), 0.0, LEO_M),
        (
            {"direction": "uplink", "wave": "spherical"},
            lambda h: (h * (LEO_M - h) / LEO_M) ** (5 / 6),
            0.0,
            LEO_M,
        ),
        (
            {"direction": "uplink", "wave": "spherical"},
            lambda h: (h * (HAPS_M - h) / HAPS_M) ** (5 / 6),
            0.0,
            HAPS_M,
        ),
    ],
)
def test_slant_rytov_quadrature_matches_adaptive_quad(kwargs, weight, lower, upper):
    # A&P 2005 ch. 12: sigma^2 = 2.25 k^(7/6) sec^(11/6) z int Cn2 w dh, checked against an
    # independent adaptive quadrature of the same integral to 1e-6 relative.
    zenith_rad, wavelength_m = 40 * DEG, 810 * NM
    k = 2 * math.pi / wavelength_m
    quad_upper = min(upper, 100 * KM)
    ref = 2.25 * k ** (7 / 6) / math.cos(zenith_rad) ** (11 / 6)
    ref *= _hv_integral(weight, lower, quad_upper)
    ours = slant_rytov_variance(
        zenith_rad, wavelength_m, ground_altitude_m=lower, platform_altitude_m=upper, **kwargs
    )
    assert abs(ours / ref - 1.0) < 1e-6


def test_haps_to_space_and_mountain_site_paths():
    # A HAPS-space path starts at 20 km; a site at 2.4 km with the profile referred to its
    # ground puts the HV boundary layer at the site: both checked against adaptive quad.
    wavelength_m = 1550 * NM
    k = 2 * math.pi / wavelength_m
    ref = (0.423 * k**2 * _hv_integral(lambda h: 1.0, HAPS_M, 100 * KM)) ** (-3 / 5)
    ours = slant_fried_parameter_m(
        0.0, wavelength_m, ground_altitude_m=HAPS_M, platform_altitude_m=LEO_M
    )
    assert abs(ours / ref - 1.0) < 1e-6
    assert ours > 10.0  # metres (vs ~0.2 m from the ground): above a HAPS the air is quiet
    site_m = 2400.0
    ref = (0.423 * k**2 * _hv_integral(lambda h: 1.0, site_m, 100 * KM, base=site_m)) ** (-3 / 5)
    ours = slant_fried_parameter_m(
        0.0,
        wavelength_m,
        ground_altitude_m=site_m,
        platform_altitude_m=LEO_M,
        profile_ground_altitude_m=site_m,
    )
    assert abs(ours / ref - 1.0) < 1e-6


def test_uplink_r0_weights_turbulence_near_the_source():
    # A&P 2005 ch. 12, uplink: r0 = [0.423 k^2 sec z int Cn2 (1 - (h-h0)/(H-h0))^(5/3) dh]^(-3/5).
    # For a LEO the weight is ~1 over the atmosphere, so it is slightly larger than the downlink
    # r0; for a HAPS at 20 km it is markedly larger.
    wavelength_m = 850 * NM
    down = slant_fried_parameter_m(0.0, wavelength_m, platform_altitude_m=LEO_M)
    up = slant_fried_parameter_m(0.0, wavelength_m, platform_altitude_m=LEO_M, direction="uplink")
    assert 1.0 < up / down < 1.03
    k = 2 * math.pi / wavelength_m
    ref = (0.423 * k**2 * _hv_integral(lambda h: (1 - h / HAPS_M) ** (5 / 3), 0.0, HAPS_M)) ** (
        -3 / 5
    )
    up_haps = slant_fried_parameter_m(
        0.0, wavelength_m, platform_altitude_m=HAPS_M, direction="uplink"
    )
    assert abs(up_haps / ref - 1.0) < 1e-6


def test_slant_scaling_laws():
    # r0 ~ lambda^(6/5) cos(z)^(3/5); plane-wave Rytov ~ lambda^(-7/6) sec(z)^(11/6) (A&P ch. 12).
    r0_ref = slant_fried_parameter_m(0.0, 500 * NM, platform_altitude_m=LEO_M)
    r0 = slant_fried_parameter_m(60 * DEG, 1000 * NM, platform_altitude_m=LEO_M)
    assert r0 == pytest.approx(r0_ref * 2 ** (6 / 5) * 0.5 ** (3 / 5), rel=1e-12)
    s_ref = slant_rytov_variance(0.0, 500 * NM, platform_altitude_m=LEO_M)
    s = slant_rytov_variance(60 * DEG, 1000 * NM, platform_altitude_m=LEO_M)
    assert s == pytest.approx(s_ref * 2 ** (-7 / 6) * 2 ** (11 / 6), rel=1e-12)


def test_spherical_rytov_is_reciprocal_and_below_plane():
    # The point-source weight [(h-h0)(H-h)/(H-h0)]^(5/6) is symmetric in the two ends; for a
    # distant satellite it tends to the downlink plane-wave weight (h-h0)^(5/6) (within the
    # (1 - h/H)^(5/6) ~ 1 - 2 % of the turbulent layers).
    args = (30 * DEG, 850 * NM)
    up = slant_rytov_variance(*args, platform_altitude_m=LEO_M, wave="spherical")
    down = slant_rytov_variance(
        *args, platform_altitude_m=LEO_M, wave="spherical", direction="downlink"
    )
    plane_down = slant_rytov_variance(*args, platform_altitude_m=LEO_M)
    assert up == down
    assert 0.97 < up / plane_down < 1.0


def test_constant_cn2_coefficients_match_andrews_phillips():
    # A&P 2005 ch. 8: sigma_R^2 = 1.23 Cn2 k^(7/6) L^(11/6) (plane), beta_0^2 = 0.5 Cn2
    # k^(7/6) L^(11/6) (spherical), coefficients printed to 2-3 digits.
    cn2, wavelength_m, length_m = 1e-14, 1550 * NM, 2 * KM
    k = 2 * math.pi / wavelength_m
    base = cn2 * k ** (7 / 6) * length_m ** (11 / 6)
    assert constant_cn2_rytov_variance(cn2, wavelength_m, length_m) == pytest.approx(
        1.23 * base, rel=3e-3
    )
    assert constant_cn2_rytov_variance(
        cn2, wavelength_m, length_m, wave="spherical"
    ) == pytest.approx(0.5 * base, rel=1e-2)


def test_downlink_effective_distance_is_a_few_km():
    # A&P ch. 12: h_eff = [int Cn2 h^2 / int Cn2 h^(5/6)]^(6/7): between the 100 m boundary
    # layer and the 10 km tropopause peak of HV 5/7, and scaling as sec(z).
    d0 = downlink_effective_turbulence_distance_m(0.0, platform_altitude_m=LEO_M)
    ref = (_hv_integral(lambda h: h**2) / _hv_integral(lambda h: h ** (5 / 6))) ** (6 / 7)
    assert d0 == pytest.approx(ref, rel=1e-6)
    assert 1 * KM < d0 < 15 * KM
    d60 = downlink_effective_turbulence_distance_m(60 * DEG, platform_altitude_m=LEO_M)
    assert d60 == pytest.approx(2 * d0, rel=1e-12)


# --- Gamma-Gamma parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rytov", "alpha_pub", "beta_pub"),
    [(0.2, 11.6, 10.1), (1.6, 4.0, 1.9), (3.5, 4.2, 1.4)],
)
def test_alpha_beta_against_published_weak_moderate_strong(rytov, alpha_pub, beta_pub):
    # Plane wave, zero inner scale (Al-Habash, Andrews & Phillips 2001, Opt. Eng. 40, 1554).
    # The pairs (11.6, 10.1), (4.0, 1.9), (4.2, 1.4) are the weak / moderate / strong cases of
    # Uysal, Li & Safari 2006 (IEEE Trans. Wireless Commun. 5(6), 1229), printed to one
    # decimal. Each pair is two numbers for one unknown: the plane-wave Rytov variances 0.2,
    # 1.6 and 3.5 reproduce both members. Tolerance 0.1 (one unit of the last printed digit).
    alpha, beta = gamma_gamma_alpha_beta(rytov)
    assert abs(alpha - alpha_pub) < 0.1
    assert abs(beta - beta_pub) < 0.1


def test_alpha_beta_asymptotics():
    # Weak turbulence: both ~1/(0.49 s2), 1/(0.51 s2) -> large; saturation: beta -> 1 (A&P ch. 9).
    alpha, beta = gamma_gamma_alpha_beta(1e-4)
    assert alpha == pytest.approx(1 / 0.49e-4, rel=1e-3)
    assert beta == pytest.approx(1 / 0.51e-4, rel=1e-3)
    _, beta_sat = gamma_gamma_alpha_beta(1e4)
    assert abs(beta_sat - 1.0) < 0.01
    alpha0, beta0 = gamma_gamma_alpha_beta(0.0)
    assert np.isinf(alpha0) and np.isinf(beta0)
    # The scintillation index peaks above 1 in the focusing regime and returns to 1.
    s2 = np.logspace(-3, 4, 200)
    si = scintillation_index(s2)
    assert si[0] == pytest.approx(1e-3, rel=2e-3)
    assert si.max() > 1.0 and abs(si[-1] - 1.0) < 0.05


@pytest.mark.parametrize("wave", ["plane", "spherical"])
def test_scintillation_index_identity(wave):
    # 1/a + 1/b + 1/(ab) equals A&P's exp(sigma_lnX^2 + sigma_lnY^2) - 1 (to 1e-12).
    s2 = np.logspace(-3, 3, 50)
    alpha, beta = gamma_gamma_alpha_beta(s2, wave)
    np.testing.assert_allclose(
        scintillation_index_from_alpha_beta(alpha, beta), scintillation_index(s2, wave), rtol=1e-12
    )
    # And the plane-wave formula written out as in A&P ch. 9.
    if wave == "plane":
        s = np.sqrt(s2)
        written = (
            np.exp(
                0.49 * s2 / (1 + 1.11 * s ** (12 / 5)) ** (7 / 6)
                + 0.51 * s2 / (1 + 0.69 * s ** (12 / 5)) ** (5 / 6)
            )
            - 1
        )
        np.testing.assert_allclose(scintillation_index(s2), written, rtol=1e-12)


def test_spherical_wave_uses_its_own_large_scale_coefficient():
    # Spherical wave: 0.56 beta0^(12/5) in the large-scale term (vs 1.11, plane), same
    # small-scale term (Al-Habash et al. 2001; A&P ch. 9).
    s2 = 2.0
    a_pl, b_pl = gamma_gamma_alpha_beta(s2, "plane")
    a_sp, b_sp = gamma_gamma_alpha_beta(s2, "spherical")
    assert b_sp == b_pl
    assert a_sp == pytest.approx(1 / math.expm1(0.49 * s2 / (1 + 0.56 * s2**1.2) ** (7 / 6)))
    assert a_sp < a_pl


def test_aperture_averaging():
    # D -> 0 reproduces the point receiver; a larger aperture lowers the scintillation index
    # (A&P ch. 10), mostly through beta (small-scale eddies are averaged first).
    s2, wavelength_m, length_m = 2.0, 1550 * NM, 5 * KM
    point = gamma_gamma_alpha_beta(s2)
    zero = gamma_gamma_alpha_beta_aperture(s2, 0.0, wavelength_m, length_m)
    np.testing.assert_allclose(zero, point, rtol=1e-15)
    diameters_m = np.array([0.01, 0.05, 0.1, 0.3, 1.0])
    alpha, beta = gamma_gamma_alpha_beta_aperture(s2, diameters_m, wavelength_m, length_m)
    si = scintillation_index_from_alpha_beta(alpha, beta)
    assert np.all(np.diff(si) < 0) and np.all(np.diff(beta) > 0)
    assert si[-1] < 0.1 * scintillation_index(s2)


# --- Gamma-Gamma distribution -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "beta"), [(4.39, 2.56), (11.65, 10.12), (4.23, 1.36), (2000.0, 1900.0), (1e4, 3.0)]
)
def test_pdf_normalised_with_unit_mean_and_gamma_gamma_moments(alpha, beta):
    # Main paper eq. (2) / Al-Habash 2001: integrates to 1, mean I0, and
    # <I^2>/I0^2 - 1 = 1/a + 1/b + 1/(ab) (the Gamma-Gamma second moment). Checked with
    # mean_irradiance = 2.
    i0 = 2.0

    def moment(n):
        f = lambda i: i**n * gamma_gamma_pdf(i, alpha, beta, mean_irradiance=i0)  # noqa: E731
        return sum(integrate.quad(f, a, b, limit=500)[0] for a, b in ((0, i0), (i0, np.inf)))

    assert moment(0) == pytest.approx(1.0, abs=1e-8)
    assert moment(1) == pytest.approx(i0, rel=1e-8)
    si = scintillation_index_from_alpha_beta(alpha, beta)
    assert moment(2) / i0**2 - 1.0 == pytest.approx(si, rel=1e-6)


def test_pdf_matches_mpmath_bessel_form():
    # Eq. (2) evaluated directly with mpmath (40 digits), including alpha >> beta where scipy's
    # K_nu overflows a double and the Debye expansion takes over.
    mpmath.mp.dps = 40
    for alpha, beta, x in [(4.39, 2.56, 0.3), (11.65, 10.12, 1.7), (1000.0, 4.0, 0.8)]:
        a, b = mpmath.mpf(alpha), mpmath.mpf(beta)
        ref = (
            2
            * (a * b) ** ((a + b) / 2)
            / (mpmath.gamma(a) * mpmath.gamma(b) * x)
            * mpmath.mpf(x) ** ((a + b) / 2)
            * mpmath.besselk(a - b, 2 * mpmath.sqrt(a * b * x))
        )
        assert gamma_gamma_pdf(x, alpha, beta) == pytest.approx(float(ref), rel=1e-9)


def test_cdf_matches_meijer_g_closed_form():
    # F(x) = G^{2,1}_{1,3}(a b x | 1; a, b, 0) / (Gamma(a) Gamma(b)) (e.g. Uysal et al. 2006,
    # eq. for the Gamma-Gamma cdf), evaluated by mpmath; relative agreement 1e-9.
    mpmath.mp.dps = 30
    for alpha, beta in [(4.39, 2.56), (11.65, 10.12), (4.23, 1.36), (91.3, 0.9967)]:
        for x in (1e-4, 0.1, 0.9, 1.0, 1.5, 4.0):
            ref = mpmath.meijerg([[1], []], [[alpha, beta], [0]], alpha * beta * x)
            ref /= mpmath.gamma(alpha) * mpmath.gamma(beta)
            assert gamma_gamma_cdf(x, alpha, beta) == pytest.approx(float(ref), rel=1e-9)


def test_samples_follow_the_distribution_and_are_seeded():
    alpha, beta = 4.39, 2.56
    a = gamma_gamma_samples(alpha, beta, np.random.default_rng(7), size=200_000)
    b = gamma_gamma_samples(alpha, beta, np.random.default_rng(7), size=200_000)
    np.testing.assert_array_equal(a, b)
    assert a.mean() == pytest.approx(1.0, abs=0.01)
    assert a.var() == pytest.approx(scintillation_index_from_alpha_beta(alpha, beta), rel=0.03)
    for x in (0.2, 0.5, 1.0, 2.0):
        assert abs((a <= x).mean() - gamma_gamma_cdf(x, alpha, beta)) < 0.005
    assert np.all(gamma_gamma_samples(np.inf, np.inf, np.random.default_rng(0), size=5) == 1.0)


def test_fade_margin_inverts_the_cdf():
    # By definition P(I/I0 <= 10^(-F/10)) = p; strong turbulence needs more margin, and the
    # vacuum (alpha = beta = inf) needs none.
    p = np.array([1e-2, 1e-4, 1e-6])
    for alpha, beta in [(11.65, 10.12), (4.39, 2.56), (4.23, 1.36), (1e4, 3.0)]:
        margin_db = gamma_gamma_fade_margin_db(alpha, beta, p)
        back = gamma_gamma_cdf(10 ** (-margin_db / 10), alpha, beta)
        np.testing.assert_allclose(back, p, rtol=1e-9)
        assert np.all(np.diff(margin_db) > 0)
    weak, strong = gamma_gamma_fade_margin_db([11.65, 4.23], [10.12, 1.36], 1e-3)
    assert strong > weak > 0
    assert gamma_gamma_fade_margin_db(np.inf, np.inf, 1e-3) == 0.0
    # One infinite shape leaves a Gamma variate, whose quantile is exact.
    g = gamma_gamma_fade_margin_db(np.inf, 2.0, 1e-2)
    assert gamma_gamma_cdf(10 ** (-g / 10), np.inf, 2.0) == pytest.approx(1e-2, rel=1e-10)


# --- Beam wander and spread -------------------------------------------------------------------


def test_beam_wander_agrees_with_general_form_for_near_ground_turbulence():
    # A&P 2005: the uplink closed form <r_c^2> = 0.54 L^2 (lambda/2W0)^2 (2W0/r0)^(5/3) (ch. 12)
    # against the collimated-beam integral <r_c^2> = 7.25 W0^(-1/3) int Cn2(z) (L - z)^2 dz
    # (ch. 12's uplink form; for constant Cn2 it is ch. 6's 2.42 Cn2 L^3 W0^(-1/3), since the
    # integral is Cn2 L^3 / 3). With all turbulence in a thin layer near the transmitter
    # (L - z ~ L) the two must agree to the ~2 % of their rounded coefficients.
    wavelength_m, w0_m, length_m = 850 * NM, 0.1, 600 * KM
    column = 1e-12  # int Cn2 dz over a thin ground layer, m^(1/3)
    k = 2 * math.pi / wavelength_m
    r0_m = (0.423 * k**2 * column) ** (-3 / 5)
    ours = beam_wander_variance_m2(r0_m, w0_m, wavelength_m, length_m)
    general = 7.25 * column * length_m**2 * w0_m ** (-1 / 3)
    assert ours == pytest.approx(general, rel=0.02)


def test_beam_wander_efficiency_is_the_rayleigh_average():
    # Mean of exp(-2 r^2/W^2) over a circular Gaussian displacement with <r^2> = var.
    rng = np.random.default_rng(3)
    var_m2, w_m = 4.0, 5.0
    r2 = rng.normal(0, math.sqrt(var_m2 / 2), (2, 400_000)) ** 2
    mc = np.exp(-2 * r2.sum(axis=0) / w_m**2).mean()
    assert beam_wander_efficiency(var_m2, w_m) == pytest.approx(mc, rel=5e-3)


def test_long_term_beam_radius():
    wavelength_m, w0_m = 1550 * NM, 0.05
    k = 2 * math.pi / wavelength_m
    # Above the turbulence it is the free-space Gaussian beam W0 sqrt(1 + (L/z_R)^2).
    free = long_term_beam_radius_m(
        w0_m, wavelength_m, 0.0, ground_altitude_m=80 * KM, platform_altitude_m=LEO_M
    )
    length_m = LEO_M - 80 * KM
    assert free == pytest.approx(w0_m * math.hypot(1.0, 2 * length_m / (k * w0_m**2)), rel=1e-9)
    # Far field (Lambda -> 1/Lambda0): W_LT^2/W^2 - 1 = 4.35 2^(-5/6) / 0.423 (W0/r0_up)^(5/3),
    # tying it to the uplink Fried parameter of the same path (A&P ch. 12).
    w_lt = long_term_beam_radius_m(w0_m, wavelength_m, 30 * DEG, platform_altitude_m=LEO_M)
    length_m = LEO_M / math.cos(30 * DEG)
    w_m = w0_m * math.hypot(1.0, 2 * length_m / (k * w0_m**2))
    r0_up = slant_fried_parameter_m(
        30 * DEG, wavelength_m, platform_altitude_m=LEO_M, direction="uplink"
    )
    lambda0 = 2 * length_m / (k * w0_m**2)
    far_field = (lambda0**2 / (1 + lambda0**2)) ** (5 / 6)  # Lambda * Lambda0, -> 1
    expected = 4.35 * 2 ** (-5 / 6) / 0.423 * (w0_m / r0_up) ** (5 / 3) * far_field
    assert (w_lt / w_m) ** 2 - 1 == pytest.approx(expected, rel=1e-6)
    stronger = long_term_beam_radius_m(
        w0_m, wavelength_m, 30 * DEG, platform_altitude_m=LEO_M, ground_cn2_m_minus_2_3=1e-13
    )
    assert stronger > w_lt > w_m


# --- Errors -----------------------------------------------------------------------------------


def test_errors_name_the_value_and_the_fix():
    with pytest.raises(ValueError, match="zenith_angle_rad.*degrees"):
        slant_rytov_variance(60.0, 850 * NM, platform_altitude_m=LEO_M)
    with pytest.raises(ValueError, match="wavelength_m.*nanometres"):
        slant_fried_parameter_m(0.0, 850.0, platform_altitude_m=LEO_M)
    with pytest.raises(ValueError, match="platform_altitude_m must exceed"):
        slant_fried_parameter_m(0.0, 850 * NM, ground_altitude_m=HAPS_M, platform_altitude_m=1e3)
    with pytest.raises(ValueError, match="wave must be one of"):
        gamma_gamma_alpha_beta(1.0, wave="gaussian")
    with pytest.raises(ValueError, match="outage_probability.*percentage"):
        gamma_gamma_fade_margin_db(4.0, 2.0, 5.0)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        gamma_gamma_samples(4.0, 2.0, 42, size=3)
    with pytest.raises(ValueError, match="rytov_variance must be >= 0"):
        gamma_gamma_alpha_beta(-1.0)


# --- Broadcasting -----------------------------------------------------------------------------


BROADCAST_CASES = {
    "hufnagel_valley_cn2": (
        lambda u: (hufnagel_valley_cn2(5e3 * u, rms_wind_speed_m_per_s=10 + 20 * u),)
    ),
    "slant_rytov_variance": lambda u: (
        slant_rytov_variance(
            0.2 + u,
            800 * NM,
            ground_altitude_m=1e3 * u,
            platform_altitude_m=LEO_M,
            wave="spherical",
        ),
    ),
    "slant_fried_parameter_m": lambda u: (
        slant_fried_parameter_m(
            0.1 + u, 800 * NM, platform_altitude_m=HAPS_M + 1e5 * u, direction="uplink"
        ),
    ),
    "slant_isoplanatic_angle_rad": lambda u: (
        slant_isoplanatic_angle_rad(u, (500 + 500 * u) * NM, platform_altitude_m=LEO_M),
    ),
    "downlink_effective_turbulence_distance_m": lambda u: (
        downlink_effective_turbulence_distance_m(
            u, platform_altitude_m=LEO_M, ground_cn2_m_minus_2_3=1e-14 * (1 + u)
        ),
    ),
    "constant_cn2_rytov_variance": lambda u: (
        constant_cn2_rytov_variance(1e-14 * (1 + u), 1550 * NM, 1e3 + 1e3 * u),
    ),
    "seeing_arcsec": lambda u: (seeing_arcsec(0.05 + 0.1 * u, 500 * NM),),
    "gamma_gamma_alpha_beta": lambda u: gamma_gamma_alpha_beta(0.1 + 3 * u, "spherical"),
    "gamma_gamma_alpha_beta_aperture": lambda u: gamma_gamma_alpha_beta_aperture(
        0.1 + 3 * u, 0.3 * u, 850 * NM, 5e3
    ),
    "scintillation_index": lambda u: (scintillation_index(0.1 + 3 * u),),
    "scintillation_index_from_alpha_beta": lambda u: (
        scintillation_index_from_alpha_beta(2 + u, 1 + u),
    ),
    "gamma_gamma_pdf": lambda u: (gamma_gamma_pdf(0.2 + 2 * u, 4.0 + 100 * u, 2.0),),
    "gamma_gamma_cdf": lambda u: (gamma_gamma_cdf(0.2 + 2 * u, 4.0, 2.0 + 500 * u),),
    "gamma_gamma_fade_margin_db": lambda u: (
        gamma_gamma_fade_margin_db(4.0 + u, 2.0, 10 ** (-1 - 4 * u)),
    ),
    "beam_wander_variance_m2": lambda u: (
        beam_wander_variance_m2(0.05 + u, 0.1, 850 * NM, 5e5 + 1e6 * u),
    ),
    "beam_wander_efficiency": lambda u: (beam_wander_efficiency(u, 3.0),),
    "long_term_beam_radius_m": lambda u: (
        long_term_beam_radius_m(0.05 + 0.1 * u, 1550 * NM, u, platform_altitude_m=LEO_M),
    ),
}


@pytest.mark.parametrize("name", sorted(BROADCAST_CASES))
def test_broadcasting(name):
    case = BROADCAST_CASES[name]
    n, m = 3, 2
    grid = np.linspace(0.0, 1.0, n * m).reshape(n, m)
    full = case(grid)
    column = case(grid[:, 0])
    scalar = case(grid[0, 0])
    for k, (f, c, s) in enumerate(zip(full, column, scalar, strict=True)):
        assert np.shape(f) == (n, m) and np.shape(c) == (n,) and np.shape(s) == ()
        for i in range(n):
            np.testing.assert_allclose(c[i], f[i, 0], rtol=1e-12)
            for j in range(m):
                np.testing.assert_allclose(f[i, j], case(grid[i, j])[k], rtol=1e-12)


def test_samples_broadcast_over_parameters():
    alpha = np.array([[2.0], [5.0], [50.0]])  # (3, 1)
    beta = np.array([1.5, 8.0])  # (2,)
    out = gamma_gamma_samples(alpha, beta, np.random.default_rng(1))
    assert out.shape == (3, 2)
    out = gamma_gamma_samples(alpha, beta, np.random.default_rng(1), size=(4, 3, 2))
    assert out.shape == (4, 3, 2)
    assert np.shape(gamma_gamma_samples(2.0, 3.0, np.random.default_rng(1))) == ()


def test_mixed_haps_and_satellite_paths_in_one_call():
    # Satellite paths use the per-site moment series, HAPS paths direct quadrature; one call
    # mixing both (and several sites) equals the element-by-element calls.
    platforms_m = np.array([20 * KM, 550 * KM, 25 * KM, 1200 * KM])
    sites_m = np.array([[0.0], [800.0], [2400.0]])
    for kwargs in ({"wave": "spherical"}, {"direction": "uplink", "wave": "plane"}):
        both = slant_rytov_variance(
            0.4, 1064 * NM, ground_altitude_m=sites_m, platform_altitude_m=platforms_m, **kwargs
        )
        for i, site_m in enumerate(sites_m[:, 0]):
            for j, platform_m in enumerate(platforms_m):
                one = slant_rytov_variance(
                    0.4,
                    1064 * NM,
                    ground_altitude_m=site_m,
                    platform_altitude_m=platform_m,
                    **kwargs,
                )
                assert both[i, j] == pytest.approx(one, rel=1e-13)


def test_hv_profile_values():
    # A&P 2005 eq. 12.1 at the ground: A + 2.7e-16; at 10 km the tropopause term dominates:
    # 0.00594 (21/27)^2 (0.1)^10 e^-10 + 2.7e-16 e^(-10/1.5) + 1.7e-14 e^-100.
    assert hufnagel_valley_cn2(0.0) == pytest.approx(1.7e-14 + 2.7e-16, rel=1e-12)
    expected = 0.00594 * (21 / 27) ** 2 * 1e-10 * math.exp(-10) + 2.7e-16 * math.exp(-10 / 1.5)
    assert hufnagel_valley_cn2(10 * KM) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="altitude_m must be >= 0"):
        hufnagel_valley_cn2(-5.0)
