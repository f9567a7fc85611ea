"""Tests of twin.physics.fso: Gaussian-beam geometry, capture, pointing, eq. (1) composition."""

from __future__ import annotations

import numpy as np
import pytest

from twin.physics.fso import (
    LINK_KINDS,
    Terminal,
    beam_radius_at_range_m,
    beam_radius_from_divergence_m,
    diffraction_limited_divergence_rad,
    field_of_view_efficiency,
    fso_channel,
    gaussian_waist_from_aperture_m,
    geometric_efficiency,
    pointing_efficiency_mean,
    rayleigh_range_m,
    static_misalignment_efficiency,
)
from twin.units import KM, NM, URAD


def _check_broadcast(func, scalar_args: tuple, grid_args: tuple) -> None:
    """func on (N,) and (N, M) grids equals func on each scalar element; scalar -> 0-d."""
    out0 = np.asarray(func(*scalar_args))
    assert out0.shape == ()
    # (N,) in the first argument, the rest scalar
    first = np.asarray(grid_args[0], dtype=float)
    vec = np.asarray(func(first, *scalar_args[1:]))
    assert vec.shape == first.shape
    for i, x in enumerate(first):
        assert vec[i] == pytest.approx(float(func(x, *scalar_args[1:])), rel=1e-12)
    # (N, M): first argument as a column, second as a row
    col = first[:, None]
    row = np.asarray(grid_args[1], dtype=float)[None, :]
    mat = np.asarray(func(col, row, *scalar_args[2:]))
    assert mat.shape == (first.size, row.size)
    for i in range(first.size):
        for j in range(row.size):
            expected = float(func(first[i], row[0, j], *scalar_args[2:]))
            assert mat[i, j] == pytest.approx(expected, rel=1e-12)


# --- Gaussian beams ------------------------------------------------------------------------------


def test_diffraction_limited_divergence_hand_value():
    # theta = lambda / (pi w0): 850 nm, w0 = 0.15 m -> 1.8038 urad (Siegman 1986, eq. 17.5-22)
    theta = diffraction_limited_divergence_rad(0.15, 850 * NM)
    assert theta == pytest.approx(850e-9 / (np.pi * 0.15), rel=1e-12)
    assert theta / URAD == pytest.approx(1.8038, abs=1e-4)
    # M^2 scales it linearly
    assert diffraction_limited_divergence_rad(0.15, 850 * NM, 1.5) == pytest.approx(1.5 * theta)


def test_beam_radius_rayleigh_range_and_far_field():
    w0, lam = 0.01, 1550 * NM
    z_r = rayleigh_range_m(w0, lam)
    assert z_r == pytest.approx(np.pi * w0**2 / lam)
    # w(z_R) = sqrt(2) w0 (Siegman eq. 17.5-7)
    assert beam_radius_at_range_m(z_r, w0, lam) == pytest.approx(np.sqrt(2) * w0, rel=1e-12)
    # far field: w -> theta z
    theta = diffraction_limited_divergence_rad(w0, lam)
    z = 1000 * z_r
    assert beam_radius_at_range_m(z, w0, lam) == pytest.approx(theta * z, rel=1e-6)
    # the divergence form gives the same hyperbola
    assert beam_radius_from_divergence_m(z_r, theta, w0) == pytest.approx(np.sqrt(2) * w0)


def test_beam_radius_from_divergence_micius_like_numbers():
    # 10 urad half-angle over 1000 km: a 10 m radius footprint (plus a negligible waist)
    w = beam_radius_from_divergence_m(1000 * KM, 10 * URAD, 0.15)
    assert w == pytest.approx(10.0, abs=0.01)


def test_waist_from_aperture():
    assert gaussian_waist_from_aperture_m(0.3) == pytest.approx(0.15)
    assert gaussian_waist_from_aperture_m(0.3, 1.12) == pytest.approx(0.15 / 1.12)


def test_divergence_in_microradians_is_rejected():
    with pytest.raises(ValueError, match="microradians"):
        beam_radius_from_divergence_m(1000 * KM, 10.0)


# --- capture -------------------------------------------------------------------------------------


def test_geometric_efficiency_closed_forms():
    # aperture radius equal to the beam radius: 1 - e^-2 = 86.47 % (Saleh & Teich eq. 3.1-18)
    assert geometric_efficiency(0.5, 1.0) == pytest.approx(1 - np.exp(-2.0), rel=1e-12)
    # small aperture: eta ~ 2 a^2 / w^2 (the far-field link-budget formula)
    w, d = 10.0, 1.0
    assert geometric_efficiency(w, d) == pytest.approx(2 * 0.5**2 / w**2, rel=3e-3)
    # a Cassegrain obscuration removes the central exp(-2 b^2/w^2) part
    full = geometric_efficiency(w, d)
    annulus = geometric_efficiency(w, d, 0.3)
    assert annulus == pytest.approx(full - (1 - np.exp(-2 * 0.15**2 / w**2)), rel=1e-12)
    assert annulus < full


def test_geometric_efficiency_limits_and_errors():
    assert geometric_efficiency(1e-3, 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="obscuration"):
        geometric_efficiency(1.0, 1.0, 1.2)
    with pytest.raises(ValueError, match="beam_radius_m"):
        geometric_efficiency(-1.0, 1.0)


# --- pointing ------------------------------------------------------------------------------------


def test_pointing_mean_matches_monte_carlo():
    # Rayleigh radial error with per-axis sigma = sigma_theta L; E[exp(-2 r^2/w^2)] against the
    # closed form w^2/(w^2 + 4 sigma^2 L^2) (Farid & Hranilovic 2007, eq. (11)).
    rng = np.random.default_rng(20070701)
    w, sigma_theta, length = 5.0, 2 * URAD, 1000 * KM
    offsets = rng.normal(0.0, sigma_theta * length, size=(400_000, 2))
    r2 = np.sum(offsets**2, axis=1)
    mc = np.mean(np.exp(-2 * r2 / w**2))
    closed = pointing_efficiency_mean(w, sigma_theta, length)
    assert closed == pytest.approx(w**2 / (w**2 + 4 * (sigma_theta * length) ** 2))
    assert mc == pytest.approx(float(closed), rel=5e-3)


def test_pointing_no_jitter_is_lossless_and_bias_loss():
    assert pointing_efficiency_mean(3.0, 0.0, 1e6) == pytest.approx(1.0)
    # a bias offset of half the beam radius: exp(-2 * 0.25) = 0.6065
    assert static_misalignment_efficiency(4.0, 2.0 / 1e6, 1e6) == pytest.approx(np.exp(-0.5))
    with pytest.raises(ValueError, match="microradians"):
        pointing_efficiency_mean(3.0, 2.0, 1e6)


def test_field_of_view_efficiency_closed_form_and_limits():
    lam, d = 850 * NM, 1.0
    r0 = 0.08
    fwhm = np.hypot(0.98 * lam / r0, 1.03 * lam / d)
    w = fwhm / np.sqrt(2 * np.log(2))
    # a field stop of full angle FWHM keeps 1 - exp(-2 (FWHM/2)^2 / w^2) = 1 - 2^-1 = 50 %
    assert field_of_view_efficiency(fwhm, r0, lam, d) == pytest.approx(0.5, rel=1e-12)
    assert field_of_view_efficiency(2 * w, r0, lam, d) == pytest.approx(1 - np.exp(-2.0))
    # wide stops keep everything; worse seeing (smaller r0) loses more
    assert field_of_view_efficiency(1e-3, r0, lam, d) == pytest.approx(1.0)
    assert field_of_view_efficiency(20e-6, 0.05, lam, d) < field_of_view_efficiency(
        20e-6, 0.10, lam, d
    )
    # no turbulence: only the diffraction core, which a 20 urad stop on 1 m passes entirely
    assert field_of_view_efficiency(20e-6, np.inf, lam, d) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="microradians"):
        field_of_view_efficiency(20.0, r0, lam, d)


# --- broadcasting of every function --------------------------------------------------------------


def test_broadcasting_all_functions():
    _check_broadcast(
        diffraction_limited_divergence_rad, (0.15, 850 * NM), ([0.05, 0.1, 0.15], [8e-7, 1.55e-6])
    )
    _check_broadcast(rayleigh_range_m, (0.15, 850 * NM), ([0.05, 0.1], [8e-7, 1.55e-6, 1e-6]))
    _check_broadcast(
        lambda z, w0: beam_radius_at_range_m(z, w0, 850 * NM),
        (1e5, 0.1),
        ([1e3, 1e5, 1e6], [0.05, 0.15]),
    )
    _check_broadcast(
        lambda z, th: beam_radius_from_divergence_m(z, th, 0.15),
        (1e6, 1e-5),
        ([5e5, 1e6, 1.2e6], [5e-6, 1e-5]),
    )
    _check_broadcast(
        lambda fov, r0: field_of_view_efficiency(fov, r0, 850 * NM, 1.0),
        (20e-6, 0.08),
        ([10e-6, 20e-6, 50e-6], [0.03, 0.08, np.inf]),
    )
    _check_broadcast(gaussian_waist_from_aperture_m, (0.3, 1.0), ([0.1, 0.3, 1.0], [1.0, 1.12]))
    _check_broadcast(geometric_efficiency, (5.0, 1.0), ([1.0, 5.0, 12.0], [0.3, 1.0]))
    _check_broadcast(
        lambda w, d: geometric_efficiency(w, d, 0.1), (5.0, 1.0), ([1.0, 5.0], [0.3, 1.0, 1.5])
    )
    _check_broadcast(
        lambda w, s: pointing_efficiency_mean(w, s, 1e6), (5.0, 1e-6), ([1.0, 5.0], [0.0, 1e-6])
    )
    _check_broadcast(
        lambda w, t: static_misalignment_efficiency(w, t, 1e6),
        (5.0, 1e-6),
        ([1.0, 5.0, 9.0], [0.0, 1e-6, -2e-6]),
    )
    tx = Terminal(0.3, 850 * NM, divergence_half_angle_rad=10 * URAD, pointing_jitter_rms_rad=1e-6)
    rx = Terminal(1.0, 850 * NM, obscuration_diameter_m=0.2)
    _check_broadcast(
        lambda r, a: fso_channel("downlink", tx, rx, r, atmospheric_transmittance=a).total,
        (1e6, 0.8),
        ([6e5, 9e5, 1.2e6], [0.5, 0.9]),
    )


# --- terminals and eq. (1) --------------------------------------------------------------------- -


def test_terminal_validation_messages():
    with pytest.raises(ValueError, match="nanometres"):
        Terminal(0.3, 850.0)
    with pytest.raises(ValueError, match="microradians"):
        Terminal(0.3, 850 * NM, divergence_half_angle_rad=10.0)
    with pytest.raises(ValueError, match="percent"):
        Terminal(0.3, 850 * NM, detector_efficiency=50.0)
    # an infinite aperture used to pass here and fail later as "waist_radius_m must be finite"
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="aperture_diameter_m must be finite and > 0"):
            Terminal(bad, 850 * NM)
    # diffraction-limited default divergence from the aperture, w0 = D/2
    t = Terminal(0.3, 850 * NM)
    assert t.tx_divergence_half_angle_rad == pytest.approx(850e-9 / (np.pi * 0.15))


def test_fso_channel_composes_eq1():
    tx = Terminal(
        0.3,
        850 * NM,
        divergence_half_angle_rad=10 * URAD,
        optical_efficiency=0.8,
        pointing_jitter_rms_rad=1 * URAD,
    )
    rx = Terminal(
        1.0,
        850 * NM,
        optical_efficiency=0.5,
        coupling_efficiency=0.9,
        detector_efficiency=0.6,
        obscuration_diameter_m=0.2,
    )
    ch = fso_channel(
        "downlink", tx, rx, 1000 * KM, atmospheric_transmittance=0.7, turbulence_efficiency=0.95
    )
    w = np.hypot(0.15, 10.0)
    eta_geo = np.exp(-2 * 0.1**2 / w**2) - np.exp(-2 * 0.5**2 / w**2)
    eta_point = w**2 / (w**2 + 4 * 1.0**2)
    assert float(ch.geometric) == pytest.approx(eta_geo, rel=1e-12)
    assert float(ch.pointing) == pytest.approx(eta_point, rel=1e-12)
    assert float(ch.transmittance) == pytest.approx(eta_geo * 0.7 * 0.95 * eta_point, rel=1e-12)
    assert float(ch.total) == pytest.approx(
        0.8 * eta_geo * 0.7 * 0.95 * eta_point * 0.5 * 0.9 * 0.6, rel=1e-12
    )


def test_fso_channel_isl_is_vacuum_and_kinds():
    tx = Terminal(0.1, 1550 * NM)
    rx = Terminal(0.1, 1550 * NM)
    ch = fso_channel("isl", tx, rx, [1000 * KM, 3000 * KM])
    assert ch.transmittance.shape == (2,)
    # diffraction-limited far field: loss grows 20 log10(3) ~ 9.5 dB from 1000 to 3000 km
    ratio_db = 10 * np.log10(ch.geometric[0] / ch.geometric[1])
    assert ratio_db == pytest.approx(20 * np.log10(3.0), abs=0.05)
    with pytest.raises(ValueError, match="vacuum"):
        fso_channel("isl", tx, rx, 1e6, atmospheric_transmittance=0.9)
    with pytest.raises(ValueError, match="kind"):
        fso_channel("moonlink", tx, rx, 1e6)
    assert set(LINK_KINDS) >= {"downlink", "uplink", "ground-haps", "haps-space", "isl"}


@pytest.mark.parametrize("bias_rad", [0.0, 1.5e-6])
@pytest.mark.parametrize("obscuration_m", [0.0, 0.02])
def test_fixed_terminals_vacuum_is_fso_channel_bit_for_bit(bias_rad, obscuration_m):
    # the ISL fast path of G(t): terminals checked once, then the same arithmetic unchecked;
    # total and transmittance must be fso_channel's exactly, not approximately
    from twin.physics.fso import _FixedTerminals

    tx = Terminal(aperture_diameter_m=0.08, wavelength_m=1550 * NM, divergence_half_angle_rad=
                  15 * URAD, optical_efficiency=0.8, pointing_jitter_rms_rad=0.5 * URAD,
                  pointing_bias_rad=bias_rad)  # fmt: skip
    rx = Terminal(aperture_diameter_m=0.08, wavelength_m=1550 * NM, optical_efficiency=0.7,
                  coupling_efficiency=0.6, detector_efficiency=0.5,
                  obscuration_diameter_m=obscuration_m)  # fmt: skip
    range_m = np.random.default_rng(5).uniform(1.0, 6000 * KM, 500)
    total, transmittance = _FixedTerminals("isl", tx, rx).vacuum(range_m)
    ch = fso_channel("isl", tx, rx, range_m)
    np.testing.assert_array_equal(total, ch.total)
    np.testing.assert_array_equal(transmittance, ch.transmittance)


def test_fixed_terminals_check_the_terminals_once():
    from twin.physics.fso import _FixedTerminals

    tx = Terminal(aperture_diameter_m=0.08, wavelength_m=1550 * NM)
    rx = Terminal(aperture_diameter_m=0.08, wavelength_m=850 * NM)
    with pytest.raises(ValueError, match="wavelengths differ"):
        _FixedTerminals("isl", tx, rx)
