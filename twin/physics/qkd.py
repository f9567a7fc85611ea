"""QKD key rates: BB84 with weak coherent pulses and decoy states, BBM92 from an SPDC source.

Everything here is asymptotic (infinite key length) and per pulse unless the name says otherwise;
``secret_key_rate_bps`` turns a rate per pulse into bits per second.

Sources
-------
- [Ma05] X. Ma, B. Qi, Y. Zhao, H.-K. Lo, "Practical decoy state for quantum key distribution",
  Phys. Rev. A 72, 012326 (2005): the channel/detector model (yields Y_n, gains Q_mu, error
  rates E_mu), the GLLP key rate with the infinite-decoy values of Y_1 and e_1, and the bounds of
  the two-decoy method (weak + vacuum as its special case).
- [MFL07] X. Ma, C.-H. F. Fung, H.-K. Lo, "Quantum key distribution with entangled photon
  sources", Phys. Rev. A 76, 012307 (2007): gain and QBER of a parametric down-conversion source
  between two lossy arms, and the key rate R = q Q [1 - f H(E) - H(E)].
- [IoT] the IoT paper of this project (../shared/papers/001_*.txt), eq. (1)-(2): R = Q [1 - H(e)].
- Background light: N_b = L_sky * Omega_FOV * A_rx * d_lambda * eta / (h c / lambda), e.g.
  E.-L. Miao et al., "Background noise of satellite-to-ground quantum key distribution",
  New J. Phys. 7, 215 (2005); C. Bonato et al., New J. Phys. 11, 045017 (2009). Reference sky
  radiances are in ``twin.units`` (``SKY_RADIANCE_*``).

Conventions: ``transmittance`` is the total one-way transmittance including the detector
efficiency (Ma05's eta = eta_channel * eta_Bob); ``dark_count_prob`` is Ma05's Y_0, the
probability of a click per gate with no signal (dark counts of all detectors plus background);
``misalignment_error`` is e_detector, the probability that a signal photon hits the wrong
detector; ``f_ec`` is the error-correction inefficiency f(E) >= 1 (1.16-1.22 is typical).
All functions broadcast over numpy arrays; scalars in give numpy scalars out.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from twin.units import PLANCK_J_S, SPEED_OF_LIGHT_M_PER_S

__all__ = [
    "binary_entropy",
    "iot_bb84_key_rate",
    "bb84_gain",
    "bb84_qber",
    "decoy_single_photon_bounds",
    "decoy_bb84_rate_per_pulse",
    "dark_count_prob",
    "background_count_prob",
    "combine_noise_probs",
    "bbm92_gain_qber",
    "bbm92_rate_per_pulse",
    "Bbm92Link",
    "bbm92_dual_downlink",
    "secret_key_rate_bps",
]

_E0 = 0.5  # error rate of a click caused by noise alone: a random bit (Ma05 eq. (4))


# --- argument checks -------------------------------------------------------------------------


def _as_float(name: str, x: ArrayLike) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} contains NaN")
    return arr


def _first_bad(arr: np.ndarray, bad: np.ndarray) -> float:
    return float(np.asarray(arr)[bad].flat[0]) if np.ndim(arr) else float(arr)


def _check_closed(name: str, x: ArrayLike, lo: float, hi: float, hint: str = "") -> np.ndarray:
    arr = _as_float(name, x)
    bad = (arr < lo) | (arr > hi)
    if np.any(bad):
        raise ValueError(f"{name} must be within [{lo}, {hi}], got {_first_bad(arr, bad)!r}{hint}")
    return arr


def _check_positive(name: str, x: ArrayLike, hint: str = "") -> np.ndarray:
    arr = _as_float(name, x)
    bad = ~(arr > 0)
    if np.any(bad):
        raise ValueError(f"{name} must be > 0, got {_first_bad(arr, bad)!r}{hint}")
    return arr


def _check_nonnegative(name: str, x: ArrayLike, hint: str = "") -> np.ndarray:
    arr = _as_float(name, x)
    bad = ~(arr >= 0)
    if np.any(bad):
        raise ValueError(f"{name} must be >= 0, got {_first_bad(arr, bad)!r}{hint}")
    return arr


def _scalar_or_array(x: np.ndarray):
    return x[()] if isinstance(x, np.ndarray) else x


def _h2(e: np.ndarray) -> np.ndarray:
    """Binary entropy without argument checks (callers clip to [0, 1])."""
    e = np.asarray(e, dtype=float)
    inside = (e > 0.0) & (e < 1.0)
    safe = np.where(inside, e, 0.5)
    h = -safe * np.log2(safe) - (1.0 - safe) * np.log2(1.0 - safe)
    return np.where(inside, h, 0.0)


# --- entropy and simple rates ----------------------------------------------------------------


def binary_entropy(e: ArrayLike) -> np.ndarray:
    """Binary Shannon entropy H2(e) = -e log2 e - (1-e) log2(1-e), in bits.

    Shape: any; broadcasts. H2(0) = H2(1) = 0, H2(0.5) = 1. Source: [IoT] eq. (2).
    Raises ValueError when e is outside [0, 1] (an error *rate*, not a percentage).
    """
    arr = _check_closed("e", e, 0.0, 1.0, " (an error rate in [0, 1]; percent passed?)")
    return _scalar_or_array(_h2(arr))


def iot_bb84_key_rate(q_rate: ArrayLike, qber: ArrayLike) -> np.ndarray:
    """The IoT paper's BB84 key rate R = Q [1 - H(e)] ([IoT] eq. (1)).

    ``q_rate`` is the rate of received (sifted) qubits Q in any unit (bits/s or bits/pulse);
    the key rate comes back in the same unit. ``qber`` in [0, 1]. This is the paper's simplified
    rate: it only vanishes at e = 1/2. The Shor-Preskill rate Q [1 - 2 H(e)] (error correction
    plus privacy amplification) vanishes at e ~ 11 %; use ``decoy_bb84_rate_per_pulse`` for
    security-grade rates. Broadcasts.
    """
    q = _check_nonnegative("q_rate", q_rate)
    e = _check_closed("qber", qber, 0.0, 1.0, " (an error rate in [0, 1]; percent passed?)")
    return _scalar_or_array(q * (1.0 - _h2(e)))


def secret_key_rate_bps(rate_per_pulse: ArrayLike, repetition_rate_hz: ArrayLike) -> np.ndarray:
    """Secret key rate in bit/s: secret bits per pulse times the source repetition rate (Hz)."""
    r = _check_nonnegative("rate_per_pulse", rate_per_pulse)
    f = _check_nonnegative("repetition_rate_hz", repetition_rate_hz)
    return _scalar_or_array(r * f)


# --- BB84 with weak coherent pulses [Ma05] -----------------------------------------------------


def _check_bb84_args(transmittance, dark_count_prob):
    eta = _check_closed("transmittance", transmittance, 0.0, 1.0, " (linear, not dB)")
    y0 = _check_closed("dark_count_prob", dark_count_prob, 0.0, 1.0, " (probability per gate)")
    return eta, y0


def _gain(eta: np.ndarray, intensity: np.ndarray, y0: np.ndarray) -> np.ndarray:
    # Q = sum_n Y_n P_n(intensity) with Y_n = 1 - (1 - Y0)(1 - eta)^n [Ma05 eq. (2)-(3)]; the
    # Poisson sum is exact here (Ma05's eq. (3) drops the Y0*eta cross term, a 1e-6 effect).
    return 1.0 - (1.0 - y0) * np.exp(-eta * intensity)


def _error_gain(eta, intensity, y0, ed):
    # E Q = e0 Y0 + e_d (1 - exp(-eta mu))  [Ma05 eq. (5)]
    return _E0 * y0 + ed * (1.0 - np.exp(-eta * intensity))


def bb84_gain(transmittance: ArrayLike, mu: ArrayLike, dark_count_prob: ArrayLike) -> np.ndarray:
    """Gain Q_mu: probability per pulse that Bob clicks, for a Poisson source of mean ``mu``.

    Q_mu = 1 - (1 - Y0) exp(-eta mu) ([Ma05] eq. (3), with the Y0*eta term kept). Broadcasts;
    returns a probability per pulse (before sifting).
    """
    eta, y0 = _check_bb84_args(transmittance, dark_count_prob)
    mu_ = _check_nonnegative("mu", mu, " (mean photon number per pulse)")
    return _scalar_or_array(_gain(eta, mu_, y0))


def bb84_qber(
    transmittance: ArrayLike, mu: ArrayLike, dark_count_prob: ArrayLike, misalignment_error
) -> np.ndarray:
    """QBER E_mu of BB84 with weak coherent pulses ([Ma05] eq. (5)).

    E_mu = [e0 Y0 + e_d (1 - exp(-eta mu))] / Q_mu with e0 = 1/2. Broadcasts; a pulse that can
    never click (Q_mu = 0) gets E = 0.5 (a random bit).
    """
    eta, y0 = _check_bb84_args(transmittance, dark_count_prob)
    mu_ = _check_nonnegative("mu", mu, " (mean photon number per pulse)")
    ed = _check_closed("misalignment_error", misalignment_error, 0.0, 0.5)
    q = _gain(eta, mu_, y0)
    eq = _error_gain(eta, mu_, y0, ed)
    e = np.divide(eq, q, out=np.full(np.broadcast(eq, q).shape, _E0), where=q > 0)
    return _scalar_or_array(e)


def _parse_decoys(decoys, mu: np.ndarray):
    try:
        nu1, nu2 = decoys
    except (TypeError, ValueError):
        raise ValueError(
            "decoys must be None (infinite decoys) or a pair (nu, 0.0) / (nu1, nu2), "
            f"got {decoys!r}"
        ) from None
    nu1 = _check_positive("decoys[0] (weak decoy nu)", nu1)
    nu2 = _check_nonnegative("decoys[1] (second decoy, 0.0 = vacuum)", nu2)
    if np.any(nu2 >= nu1):
        raise ValueError(f"decoys must be (nu1, nu2) with nu1 > nu2, got {decoys!r}")
    bad = ~(nu1 + nu2 < mu)
    if np.any(bad):
        raise ValueError(
            f"decoys need nu1 + nu2 < mu (Ma et al. 2005), got nu1 + nu2 = "
            f"{_first_bad(np.broadcast_to(nu1 + nu2, bad.shape), bad)!r} for mu = "
            f"{_first_bad(np.broadcast_to(mu, bad.shape), bad)!r}; use a weaker decoy"
        )
    return nu1, nu2


def decoy_single_photon_bounds(
    transmittance: ArrayLike,
    mu: ArrayLike,
    *,
    dark_count_prob: ArrayLike,
    misalignment_error: ArrayLike,
    decoys=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Single-photon yield Y1 and error rate e1 that the decoy method certifies: (Y1, e1).

    ``decoys=None``: the infinite-decoy values, exact in the model: Y1 = Y0 + eta - Y0 eta and
    e1 = (e0 Y0 + e_d eta) / Y1 ([Ma05] eq. (2), (4)).
    ``decoys=(nu1, nu2)`` with nu1 > nu2 >= 0 and nu1 + nu2 < mu: the two-decoy lower bound
    Y1^L and upper bound e1^U of [Ma05] Sec. "two decoy states" (gains simulated from the same
    model); ``(nu, 0.0)`` is the vacuum + weak decoy of [Ma05], where Y0 is measured directly:
        Y1^L = mu / (mu nu - nu^2) [Q_nu e^nu - Q_mu e^mu nu^2/mu^2 - (mu^2 - nu^2)/mu^2 Y0]
        e1^U = (E_nu Q_nu e^nu - e0 Y0) / (Y1^L nu).
    The general pair uses Y0^L = max[(nu1 Q_nu2 e^nu2 - nu2 Q_nu1 e^nu1)/(nu1 - nu2), 0],
    Y1^L = mu/(mu nu1 - mu nu2 - nu1^2 + nu2^2) [Q_nu1 e^nu1 - Q_nu2 e^nu2
           - (nu1^2 - nu2^2)/mu^2 (Q_mu e^mu - Y0^L)],
    e1^U = (E_nu1 Q_nu1 e^nu1 - E_nu2 Q_nu2 e^nu2) / ((nu1 - nu2) Y1^L).
    Y1^L may come back <= 0 and e1^U > 0.5 (no single-photon key can be certified). Broadcasts.
    """
    eta, y0 = _check_bb84_args(transmittance, dark_count_prob)
    mu_ = _check_positive("mu", mu, " (mean photon number per pulse)")
    ed = _check_closed("misalignment_error", misalignment_error, 0.0, 0.5)
    if decoys is None:
        y1 = y0 + eta - y0 * eta
        e1 = np.divide(
            _E0 * y0 + ed * eta,
            y1,
            out=np.full(np.broadcast(y1, ed).shape, _E0),
            where=y1 > 0,
        )
        y1 = np.broadcast_to(y1, np.broadcast(y1, mu_, ed).shape)
        e1 = np.broadcast_to(e1, y1.shape)
        return _scalar_or_array(np.array(y1)), _scalar_or_array(np.array(e1))

    y1_low, e1_up = _decoy_bounds(eta, mu_, y0, ed, _parse_decoys(decoys, mu_))
    return _scalar_or_array(y1_low), _scalar_or_array(e1_up)


def _decoy_bounds(eta, mu_, y0, ed, nus):
    """Unchecked core of :func:`decoy_single_photon_bounds` for a checked decoy pair ``nus``
    (``(nu1, nu2)`` from ``_parse_decoys``); arrays out (not ``_scalar_or_array``)."""
    nu1, nu2 = nus
    qmu_e = _gain(eta, mu_, y0) * np.exp(mu_)
    q1_e = _gain(eta, nu1, y0) * np.exp(nu1)
    q2_e = _gain(eta, nu2, y0) * np.exp(nu2)
    eq1_e = _error_gain(eta, nu1, y0, ed) * np.exp(nu1)
    eq2_e = _error_gain(eta, nu2, y0, ed) * np.exp(nu2)
    return _bounds_from_gains(mu_, nu1, nu2, qmu_e, q1_e, q2_e, eq1_e, eq2_e)


def _bounds_from_gains(mu_, nu1, nu2, qmu_e, q1_e, q2_e, eq1_e, eq2_e):
    """Ma et al. 2005's lower bound on Y1 and upper bound on e1 from the gains and error gains
    (each times ``exp(intensity)``) of the signal and the two decoys: the formula
    :func:`_decoy_bounds` and :func:`_two_decoy_rate` share."""
    y0_low = np.maximum((nu1 * q2_e - nu2 * q1_e) / (nu1 - nu2), 0.0)
    y1_low = (
        mu_
        / (mu_ * nu1 - mu_ * nu2 - nu1**2 + nu2**2)
        * (q1_e - q2_e - (nu1**2 - nu2**2) / mu_**2 * (qmu_e - y0_low))
    )
    denom = (nu1 - nu2) * y1_low
    e1_up = np.divide(
        eq1_e - eq2_e,
        denom,
        out=np.full(np.broadcast(eq1_e, denom).shape, np.inf),
        where=denom > 0,
    )
    return y1_low, e1_up


def _two_decoy_rate(eta, mu_, y0, ed, f, q, nus):
    """``_decoy_rate`` after ``_decoy_bounds`` (a checked decoy pair ``nus``), fused.

    The same operations on the same values as the two, each ``exp(-eta * intensity)``
    computed once instead of at each of its uses (and not at all for a vacuum decoy, where it
    is exactly 1), so bit for bit the same rate (``tests/twin/physics/test_qkd.py`` pins it).
    """
    nu1, nu2 = nus
    x_mu = np.exp(-eta * mu_)
    x_1 = np.exp(-eta * nu1)
    # exp(-eta * 0.0) == exp(-0.0) == 1.0 exactly for every finite eta
    x_2 = np.exp(-eta * nu2) if nu2 != 0.0 else 1.0
    noise = _E0 * y0
    # _gain and _error_gain, as written there
    q_mu = 1.0 - (1.0 - y0) * x_mu
    q_1 = 1.0 - (1.0 - y0) * x_1
    q_2 = 1.0 - (1.0 - y0) * x_2
    # _decoy_bounds
    qmu_e = q_mu * np.exp(mu_)
    q1_e = q_1 * np.exp(nu1)
    q2_e = q_2 * np.exp(nu2)
    eq1_e = (noise + ed * (1.0 - x_1)) * np.exp(nu1)
    eq2_e = (noise + ed * (1.0 - x_2)) * np.exp(nu2)
    y1_low, e1_up = _bounds_from_gains(mu_, nu1, nu2, qmu_e, q1_e, q2_e, eq1_e, eq2_e)
    # _decoy_rate
    eq_mu = noise + ed * (1.0 - x_mu)
    e_mu = np.divide(eq_mu, q_mu, out=np.full(np.broadcast(eq_mu, q_mu).shape, _E0), where=q_mu > 0)
    q1 = np.maximum(y1_low, 0.0) * mu_ * np.exp(-mu_)
    single = q1 * (1.0 - _h2(np.clip(e1_up, 0.0, 0.5)))
    rate = q * (single - q_mu * f * _h2(np.clip(e_mu, 0.0, 1.0)))
    return np.maximum(rate, 0.0)


def decoy_bb84_rate_per_pulse(
    transmittance: ArrayLike,
    mu: ArrayLike,
    *,
    dark_count_prob: ArrayLike,
    misalignment_error: ArrayLike,
    f_ec: ArrayLike,
    sifting: ArrayLike = 0.5,
    decoys=None,
) -> np.ndarray:
    """Asymptotic secret bits per signal pulse of decoy-state BB84 ([Ma05] eq. (1), GLLP).

    R = q { -Q_mu f H2(E_mu) + Q_1 [1 - H2(e_1)] },  Q_1 = Y_1 mu exp(-mu),
    with q = ``sifting`` (1/2 for BB84), Q_mu and E_mu from the model ([Ma05] eq. (3), (5)),
    and (Y_1, e_1) from ``decoy_single_photon_bounds`` (``decoys=None``: infinite decoys;
    ``decoys=(nu, 0.0)``: vacuum + weak decoy). Negative rates are clipped to 0.

    Shapes: every argument broadcasts (decoy intensities too); returns bits per pulse.
    Validated in tests against the GYS parameters of [Ma05] (optimal mu ~ 0.48, maximum
    distance ~ 142 km for infinite decoys).
    """
    eta, y0 = _check_bb84_args(transmittance, dark_count_prob)
    mu_ = _check_positive("mu", mu, " (mean photon number per pulse)")
    ed = _check_closed("misalignment_error", misalignment_error, 0.0, 0.5)
    f = _as_float("f_ec", f_ec)
    if np.any(f < 1.0):
        raise ValueError(
            f"f_ec must be >= 1 (error-correction inefficiency; Shannon limit = 1), "
            f"got {_first_bad(f, f < 1.0)!r}"
        )
    q = _check_closed("sifting", sifting, 0.0, 1.0)
    y1, e1 = decoy_single_photon_bounds(
        eta, mu_, dark_count_prob=y0, misalignment_error=ed, decoys=decoys
    )
    return _scalar_or_array(_decoy_rate(eta, mu_, y0, ed, f, q, y1, e1))


def _decoy_rate(eta, mu_, y0, ed, f, q, y1, e1):
    """Unchecked core of :func:`decoy_bb84_rate_per_pulse` given the single-photon bounds."""
    q_mu = _gain(eta, mu_, y0)
    eq_mu = _error_gain(eta, mu_, y0, ed)
    e_mu = np.divide(eq_mu, q_mu, out=np.full(np.broadcast(eq_mu, q_mu).shape, _E0), where=q_mu > 0)
    q1 = np.maximum(y1, 0.0) * mu_ * np.exp(-mu_)
    single = q1 * (1.0 - _h2(np.clip(e1, 0.0, 0.5)))
    rate = q * (single - q_mu * f * _h2(np.clip(e_mu, 0.0, 1.0)))
    return np.maximum(rate, 0.0)


# --- noise: dark counts and background light -------------------------------------------------


def dark_count_prob(
    dark_count_rate_hz: ArrayLike, gate_width_s: ArrayLike, n_detectors: int = 1
) -> np.ndarray:
    """Probability of at least one dark click per gate: 1 - exp(-n r tau) (Poisson counts).

    ``dark_count_rate_hz`` per detector, ``gate_width_s`` the detection gate (or coincidence
    window), ``n_detectors`` the detectors that can click (4 for passive-basis BB84). Broadcasts.
    """
    r = _check_nonnegative("dark_count_rate_hz", dark_count_rate_hz)
    tau = _check_nonnegative("gate_width_s", gate_width_s, " (seconds, not ns)")
    if n_detectors < 1:
        raise ValueError(f"n_detectors must be >= 1, got {n_detectors!r}")
    return _scalar_or_array(-np.expm1(-n_detectors * r * tau))


def background_count_prob(
    sky_radiance_w_per_m2_sr_m: ArrayLike,
    *,
    fov_full_angle_rad: ArrayLike,
    aperture_diameter_m: ArrayLike,
    filter_bandwidth_m: ArrayLike,
    gate_width_s: ArrayLike,
    detector_efficiency: ArrayLike,
    wavelength_m: ArrayLike,
    receiver_transmittance: ArrayLike = 1.0,
) -> np.ndarray:
    """Probability per gate that background (sky) light makes a click.

    Photon rate at the detectors (Miao et al. 2005, NJP 7, 215; Bonato et al. 2009, NJP 11,
    045017): N_b = L * Omega * A * d_lambda * eta_rx * eta_det / (h c / lambda), with the
    spectral radiance L (W m^-2 sr^-1 per metre of wavelength, SI: 1 W m^-2 sr^-1 nm^-1 = 1e9
    of these), the field-of-view solid angle Omega = 2 pi (1 - cos(theta/2)) of a cone of full
    angle theta, the aperture area A = pi D^2 / 4 and the filter bandwidth d_lambda. The click
    probability per gate is 1 - exp(-N_b tau). Reference radiances: ``twin.units.SKY_RADIANCE_*``
    (day ~5e7, full-moon night ~1e2, moonless night ~3 W m^-2 sr^-1 m^-1). Broadcasts.
    """
    radiance = _check_nonnegative(
        "sky_radiance_w_per_m2_sr_m", sky_radiance_w_per_m2_sr_m, " (per metre of wavelength)"
    )
    theta = _check_closed("fov_full_angle_rad", fov_full_angle_rad, 0.0, 2.0 * np.pi)
    d = _check_nonnegative("aperture_diameter_m", aperture_diameter_m)
    dl = _check_nonnegative("filter_bandwidth_m", filter_bandwidth_m, " (metres: 1 nm = 1e-9)")
    tau = _check_nonnegative("gate_width_s", gate_width_s, " (seconds, not ns)")
    eta_det = _check_closed("detector_efficiency", detector_efficiency, 0.0, 1.0)
    eta_rx = _check_closed("receiver_transmittance", receiver_transmittance, 0.0, 1.0)
    lam = _check_positive("wavelength_m", wavelength_m, " (metres: 850 nm = 850e-9)")
    solid_angle_sr = 2.0 * np.pi * (1.0 - np.cos(theta / 2.0))
    area_m2 = np.pi * d**2 / 4.0
    photon_energy_j = PLANCK_J_S * SPEED_OF_LIGHT_M_PER_S / lam
    rate_hz = radiance * solid_angle_sr * area_m2 * dl * eta_rx * eta_det / photon_energy_j
    return _scalar_or_array(-np.expm1(-rate_hz * tau))


def combine_noise_probs(*probs: ArrayLike) -> np.ndarray:
    """Probability that at least one of independent noise sources clicks: 1 - prod(1 - p_i).

    Use it to form Y0 (``dark_count_prob``) from dark counts and background. Broadcasts.
    """
    if not probs:
        raise ValueError("combine_noise_probs needs at least one probability")
    none = 1.0
    for i, p in enumerate(probs):
        none = none * (1.0 - _check_closed(f"probs[{i}]", p, 0.0, 1.0))
    return _scalar_or_array(np.asarray(1.0 - none))


# --- BBM92 from an SPDC source between two lossy arms [MFL07] -------------------------------


def bbm92_gain_qber(
    eta_a: ArrayLike,
    eta_b: ArrayLike,
    mean_pair_number: ArrayLike,
    *,
    dark_count_prob_a: ArrayLike,
    dark_count_prob_b: ArrayLike,
    misalignment_error: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Coincidence gain Q and QBER E per pulse (or coincidence window) of an SPDC source.

    Model of [MFL07] (their eq. for the PDC source in the middle): the source emits n pairs with
    P(n) = (n+1) lam^n / (1+lam)^(n+2), mean pair number mu = 2 lam (``mean_pair_number``);
    arm transmittances ``eta_a``, ``eta_b`` include detector efficiencies; Y0A, Y0B are the noise
    click probabilities per window. With x_a = 1 + eta_a lam, x_b = 1 + eta_b lam,
    x_ab = 1 + eta_a lam + eta_b lam - eta_a eta_b lam:
        Q = 1 - (1-Y0A)/x_a^2 - (1-Y0B)/x_b^2 + (1-Y0A)(1-Y0B)/x_ab^2,
        E Q = e0 Q - 2 (e0 - e_d) eta_a eta_b lam (1+lam) / (x_a x_b x_ab),  e0 = 1/2.
    Without loss or noise E = e0 - 2 (e0 - e_d)/(2 + lam) -> e_d as lam -> 0 (multi-pair
    emission adds errors). Returns (gain per pulse, QBER). Broadcasts.
    """
    ea = _check_closed("eta_a", eta_a, 0.0, 1.0, " (linear, not dB)")
    eb = _check_closed("eta_b", eta_b, 0.0, 1.0, " (linear, not dB)")
    mu = _check_nonnegative("mean_pair_number", mean_pair_number, " (pairs per pulse/window)")
    ya = _check_closed("dark_count_prob_a", dark_count_prob_a, 0.0, 1.0)
    yb = _check_closed("dark_count_prob_b", dark_count_prob_b, 0.0, 1.0)
    ed = _check_closed("misalignment_error", misalignment_error, 0.0, 0.5)
    lam = mu / 2.0
    xa = 1.0 + ea * lam
    xb = 1.0 + eb * lam
    xab = 1.0 + ea * lam + eb * lam - ea * eb * lam
    q = 1.0 - (1.0 - ya) / xa**2 - (1.0 - yb) / xb**2 + (1.0 - ya) * (1.0 - yb) / xab**2
    q = np.maximum(q, 0.0)  # round-off near zero gain
    correlated = 2.0 * (_E0 - ed) * ea * eb * lam * (1.0 + lam) / (xa * xb * xab)
    eq = _E0 * q - correlated
    e = np.divide(eq, q, out=np.full(np.broadcast(eq, q).shape, _E0), where=q > 0)
    return _scalar_or_array(q), _scalar_or_array(np.clip(e, 0.0, 1.0))


def bbm92_rate_per_pulse(
    eta_a: ArrayLike,
    eta_b: ArrayLike,
    mean_pair_number: ArrayLike,
    *,
    dark_count_prob_a: ArrayLike,
    dark_count_prob_b: ArrayLike,
    misalignment_error: ArrayLike,
    f_ec: ArrayLike,
    sifting: ArrayLike = 0.5,
) -> np.ndarray:
    """Asymptotic secret bits per pulse of BBM92: R = q Q [1 - f H2(E) - H2(E)] ([MFL07]).

    Q and E from ``bbm92_gain_qber``; q = ``sifting``; clipped at 0. Broadcasts.
    """
    f = _as_float("f_ec", f_ec)
    if np.any(f < 1.0):
        raise ValueError(f"f_ec must be >= 1, got {_first_bad(f, f < 1.0)!r}")
    q_sift = _check_closed("sifting", sifting, 0.0, 1.0)
    q, e = bbm92_gain_qber(
        eta_a,
        eta_b,
        mean_pair_number,
        dark_count_prob_a=dark_count_prob_a,
        dark_count_prob_b=dark_count_prob_b,
        misalignment_error=misalignment_error,
    )
    h = _h2(np.clip(e, 0.0, 1.0))
    return _scalar_or_array(np.maximum(q_sift * q * (1.0 - f * h - h), 0.0))


class Bbm92Link(NamedTuple):
    """Result of ``bbm92_dual_downlink``; every field has the broadcast shape of the inputs."""

    coincidence_rate_hz: np.ndarray  # detected coincidences per second (before sifting)
    qber: np.ndarray  # quantum bit error rate of the coincidences
    skr_bps: np.ndarray  # asymptotic secret key rate, bit/s


def bbm92_dual_downlink(
    eta_a: ArrayLike,
    eta_b: ArrayLike,
    *,
    pair_rate_hz: ArrayLike,
    coincidence_window_s: ArrayLike,
    noise_rate_a_hz: ArrayLike,
    noise_rate_b_hz: ArrayLike,
    misalignment_error: ArrayLike,
    f_ec: ArrayLike,
    sifting: ArrayLike = 0.5,
) -> Bbm92Link:
    """Coincidence rate, QBER and key rate of a CW SPDC source on a satellite, one arm per OGS.

    The continuous source is cut into coincidence windows of width tau: mean pairs per window
    mu = ``pair_rate_hz`` * tau, noise click probability per window p = 1 - exp(-r tau) from the
    noise (dark + background) rate r of each station; there are 1/tau windows per second, so
    rates per second are the [MFL07] per-window values times 1/tau.
    Sanity check (tests): Micius, 5.9e6 pairs/s and 64 dB total two-downlink loss (Yin et al.,
    Science 356, 1140 (2017)) gives about 2 coincidences per second. Broadcasts.
    """
    tau = _check_positive("coincidence_window_s", coincidence_window_s, " (seconds, not ns)")
    rate = _check_nonnegative("pair_rate_hz", pair_rate_hz)
    pa = dark_count_prob(noise_rate_a_hz, tau)
    pb = dark_count_prob(noise_rate_b_hz, tau)
    mu = rate * tau
    kwargs = dict(dark_count_prob_a=pa, dark_count_prob_b=pb, misalignment_error=misalignment_error)
    q, e = bbm92_gain_qber(eta_a, eta_b, mu, **kwargs)
    r = bbm92_rate_per_pulse(eta_a, eta_b, mu, f_ec=f_ec, sifting=sifting, **kwargs)
    windows_per_s = 1.0 / tau
    return Bbm92Link(
        coincidence_rate_hz=_scalar_or_array(np.asarray(q * windows_per_s)),
        qber=e,
        skr_bps=_scalar_or_array(np.asarray(r * windows_per_s)),
    )
