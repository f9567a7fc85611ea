"""Optical turbulence on slant paths: Cn2, Rytov variance, r0, Gamma-Gamma fading, beam wander.

The main paper's eq. (1) is ``eta = eta_geo * eta_atm * eta_turb * eta_point`` and its eq. (2) the
Gamma-Gamma irradiance pdf. This module supplies the turbulence part; the sources are

* [AP05] L. C. Andrews and R. L. Phillips, *Laser Beam Propagation through Random Media*, 2nd ed.,
  SPIE Press (2005): ch. 12 (slant paths, Hufnagel-Valley profile, uplink beam wander and spread),
  ch. 9-10 (Gamma-Gamma parameters, aperture averaging).
* [AH01] M. A. Al-Habash, L. C. Andrews, R. L. Phillips, "Mathematical model for the irradiance
  probability density function of a laser beam propagating through turbulent media", Opt. Eng. 40,
  1554 (2001): the Gamma-Gamma model and its alpha, beta (zero inner scale).
* [F66] D. L. Fried, JOSA 56, 1372 (1966): r0; seeing 0.98 lambda / r0 as in aotools.

How to compose eq. (1) with these functions (the caller, ``fso``/``link_budget``, does this):

* ``eta_turb`` has mean 1 in the Gamma-Gamma model (``<I> = I0``), so the *mean* turbulence loss on
  a downlink is 0 dB and its effect on a link budget is the fade margin
  :func:`gamma_gamma_fade_margin_db` at the outage probability the service allows.
* Downlink (space/HAPS -> ground): plane wave at the ground receiver.
  ``s2 = slant_rytov_variance(z, lam, platform_altitude_m=H, direction="downlink", wave="plane")``;
  aperture averaging with :func:`gamma_gamma_alpha_beta_aperture` using
  ``path_length_m = downlink_effective_turbulence_distance_m(...)`` (the distance from the
  turbulence to the receiver; the slant range would overstate the averaging length).
* Uplink (ground -> HAPS/space): the satellite sees a point-like source, a spherical wave:
  ``wave="spherical", direction="uplink"``. Turbulence also spreads and wanders the beam: compute
  ``eta_geo`` with :func:`long_term_beam_radius_m` instead of the diffraction-limited radius (the
  long-term radius already contains the mean beam-wander spread), **or** with the short-term
  radius times :func:`beam_wander_efficiency`; never both.
* HAPS links: ``platform_altitude_m=20e3`` for ground-HAPS; ``ground_altitude_m=20e3`` and the
  satellite altitude as ``platform_altitude_m`` for HAPS-space (almost no turbulence is left).
* Inter-satellite links are in vacuum: Rytov variance 0, so ``alpha = beta = inf`` and every fade
  margin is 0 dB.

Conventions: SI units; altitudes in metres above mean sea level; zenith angles in radians. The
slant integrals use the flat-Earth ``sec(zeta)`` geometry of [AP05] ch. 12, good to a few percent
for zenith angles below ~70-75 deg (elevations above ~15-20 deg); it diverges at the horizon.
Everything broadcasts over numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from twin.units import ARCSEC

__all__ = [
    "HV57_GROUND_CN2_M_MINUS_2_3",
    "HV57_RMS_WIND_SPEED_M_PER_S",
    "beam_wander_efficiency",
    "beam_wander_variance_m2",
    "constant_cn2_rytov_variance",
    "downlink_effective_turbulence_distance_m",
    "gamma_gamma_alpha_beta",
    "gamma_gamma_alpha_beta_aperture",
    "gamma_gamma_cdf",
    "gamma_gamma_fade_margin_db",
    "gamma_gamma_pdf",
    "gamma_gamma_samples",
    "hufnagel_valley_cn2",
    "long_term_beam_radius_m",
    "scintillation_index",
    "scintillation_index_from_alpha_beta",
    "seeing_arcsec",
    "slant_fried_parameter_m",
    "slant_isoplanatic_angle_rad",
    "slant_rytov_variance",
]

#: Hufnagel-Valley "5/7" parameters ([AP05] ch. 12, eq. 12.1; Beland 1993): rms upper-wind
#: speed 21 m/s and ground-level Cn2 1.7e-14 m^-2/3 give r0 ~ 5 cm and theta0 ~ 7 urad at 0.5 um.
HV57_RMS_WIND_SPEED_M_PER_S = 21.0
HV57_GROUND_CN2_M_MINUS_2_3 = 1.7e-14

# Coefficients of the three HV terms ([AP05] eq. 12.1), h in metres above the profile's ground:
#   Cn2(h) = 0.00594 (v/27)^2 (1e-5 h)^10 exp(-h/1000) + 2.7e-16 exp(-h/1500) + A exp(-h/100)
_HV_TROPOPAUSE_COEFF = 0.00594
_HV_WIND_REFERENCE_M_PER_S = 27.0
_HV_TROPOPAUSE_SCALE_M = 1000.0
_HV_FREE_ATMOSPHERE_CN2 = 2.7e-16
_HV_FREE_ATMOSPHERE_SCALE_M = 1500.0
_HV_BOUNDARY_SCALE_M = 100.0

# Above this height over the profile's ground the HV profile is < 1e-27 m^-2/3 (its 2.7e-16
# exp(-h/1.5 km) term at 40 km is 7e-28), so the slant integrals stop there.
_TURBULENCE_TOP_ABOVE_GROUND_M = 60_000.0

# Quadrature: Simpson's rule in t on [0, 1] with s = S t^2 (s: height above the lower end). The
# t^2 map puts 1-2 m steps near the ground, where the 100 m boundary layer and the s^(5/6)
# weights live, and ~30 m steps at the 10 km tropopause peak. Checked against scipy.quad to 1e-7
# relative in the tests.
_N_NODES = 2049
_T = np.linspace(0.0, 1.0, _N_NODES)
_SIMPSON = np.full(_N_NODES, 2.0)
_SIMPSON[1:-1:2] = 4.0
_SIMPSON[0] = _SIMPSON[-1] = 1.0
_SIMPSON *= (_T[1] - _T[0]) / 3.0
_CHUNK = 256

# Paths reaching at least 4x the turbulence top above their lower end (satellites) use binomial
# series in s/S over a per-site moment table (see _far_integrals); 20 terms, s/S <= 1/4.
_FAR_FACTOR = 4.0
_SERIES_TERMS = 20
_MOMENT_REFERENCE_M = 1.0e4  # moments of (s / 10 km)^p keep the numbers near 1
_MOMENT_POWERS = (
    [float(n) for n in range(_SERIES_TERMS + 1)]
    + [5.0 / 6.0 + n for n in range(_SERIES_TERMS + 1)]
    + [5.0 / 3.0, 2.0]
)
#: C(a, n) (-1)^n for the two exponents of the span-dependent weights.
_BINOMIAL_SIGNED = {
    e: np.array([special.binom(e, n) * (-1.0) ** n for n in range(_SERIES_TERMS + 1)])
    for e in (5.0 / 6.0, 5.0 / 3.0)
}
# Memoised integrals of the pure function _cn2_path_integral, keyed by altitudes (not state:
# clearing them changes no result). Bounded; cleared when full.
_CACHE_LIMIT = 100_000
_MOMENT_CACHE: dict[tuple[float, ...], np.ndarray] = {}
_DIRECT_CACHE: dict[str, dict[tuple[float, ...], np.ndarray]] = {}

_WAVES = ("plane", "spherical")
_DIRECTIONS = ("downlink", "uplink")

# Coefficients of the log-amplitude variances, zero inner scale ([AH01]; [AP05]
# ch. 9 (point receiver) and ch. 10 (aperture D, d^2 = k D^2 / 4L)). For each wave:
# (large-scale: c, a_d, a_s), (small-scale: c, a_s, b_d, b_ds):
#   sigma_lnX^2 = c b2 / (1 + a_d d^2 + a_s b^(12/5))^(7/6)
#   sigma_lnY^2 = c b2 (1 + a_s b^(12/5))^(-5/6) / (1 + b_d d^2 + b_ds d^2 b^(12/5))
_LOG_VARIANCE_COEFFS = {
    "plane": ((0.49, 0.65, 1.11), (0.51, 0.69, 0.90, 0.62)),
    "spherical": ((0.49, 0.18, 0.56), (0.51, 0.69, 0.90, 0.62)),
}

# Gauss-Legendre nodes for the Gamma-Gamma cdf (an integral of the pdf in log-irradiance).
_GL_X, _GL_W = np.polynomial.legendre.leggauss(256)
_LOG_GL_W = np.log(_GL_W)


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _as_array(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; pass finite numbers")
    return arr


def _positive(name: str, value, hint: str = "") -> np.ndarray:
    arr = _as_array(name, value)
    if (arr <= 0).any():
        bad = arr[arr <= 0].ravel()[0]
        raise ValueError(f"{name} must be > 0, got {bad}{hint}")
    return arr


def _non_negative(name: str, value, hint: str = "") -> np.ndarray:
    arr = _as_array(name, value)
    if (arr < 0).any():
        bad = arr[arr < 0].ravel()[0]
        raise ValueError(f"{name} must be >= 0, got {bad}{hint}")
    return arr


def _wavelength(value) -> np.ndarray:
    lam = _positive("wavelength_m", value)
    if ((lam > 1e-3) | (lam < 1e-8)).any():
        bad = lam[(lam > 1e-3) | (lam < 1e-8)].ravel()[0]
        raise ValueError(
            f"wavelength_m must be in metres (optical: ~1e-7..1e-5), got {bad} "
            "(nanometres or micrometres passed?)"
        )
    return lam


def _zenith(value) -> np.ndarray:
    z = _as_array("zenith_angle_rad", value)
    bad = (z < 0) | (z >= np.pi / 2)
    if bad.any():
        raise ValueError(
            f"zenith_angle_rad must be within [0, pi/2) (a slant path above the horizon), got "
            f"{z[bad].ravel()[0]} (degrees passed, or an elevation instead of a zenith angle?)"
        )
    return z


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _check_path(ground_altitude_m, platform_altitude_m) -> tuple[np.ndarray, np.ndarray]:
    h0 = _as_array("ground_altitude_m", ground_altitude_m)
    big_h = _as_array("platform_altitude_m", platform_altitude_m)
    bad = big_h <= h0
    if bad.any():
        h0_b, big_h_b = np.broadcast_arrays(h0, big_h)
        raise ValueError(
            "platform_altitude_m must exceed ground_altitude_m (the upper end of the path must be "
            f"above its lower end), got platform {big_h_b[bad].ravel()[0]} m, ground "
            f"{h0_b[bad].ravel()[0]} m"
        )
    return h0, big_h


# --------------------------------------------------------------------------------------------
# Cn2 profile and its path integrals
# --------------------------------------------------------------------------------------------


def _hv_terms(height_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three HV terms without their free parameters (the first divided by (v/27)^2, the last
    by A): tropopause, free atmosphere, boundary layer."""
    h = height_m
    tropo = _HV_TROPOPAUSE_COEFF * (1e-5 * h) ** 10 * np.exp(-h / _HV_TROPOPAUSE_SCALE_M)
    free = _HV_FREE_ATMOSPHERE_CN2 * np.exp(-h / _HV_FREE_ATMOSPHERE_SCALE_M)
    ground = np.exp(-h / _HV_BOUNDARY_SCALE_M)
    return tropo, free, ground


def hufnagel_valley_cn2(
    altitude_m,
    *,
    rms_wind_speed_m_per_s=HV57_RMS_WIND_SPEED_M_PER_S,
    ground_cn2_m_minus_2_3=HV57_GROUND_CN2_M_MINUS_2_3,
) -> np.ndarray:
    """Refractive-index structure parameter Cn2(h) of the Hufnagel-Valley model, in m^-2/3.

    ``Cn2(h) = 0.00594 (v/27)^2 (1e-5 h)^10 exp(-h/1000) + 2.7e-16 exp(-h/1500) + A exp(-h/100)``
    ([AP05] eq. 12.1), with ``h`` the height in metres above the ground the profile refers to,
    ``v`` the rms upper-atmosphere wind speed (m/s) and ``A`` the ground-level Cn2. The defaults
    (21 m/s, 1.7e-14) are the HV 5/7 profile: r0 ~ 5 cm and theta0 ~ 7 urad at 0.5 um, zenith.

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    h = _non_negative("altitude_m", altitude_m, " (height above the profile's ground)")
    v = _non_negative("rms_wind_speed_m_per_s", rms_wind_speed_m_per_s)
    a = _non_negative("ground_cn2_m_minus_2_3", ground_cn2_m_minus_2_3)
    if (a > 1e-10).any():
        raise ValueError(
            f"ground_cn2_m_minus_2_3 must be a Cn2 in m^-2/3 (~1e-17..1e-12), got {a.max()}"
        )
    tropo, free, ground = _hv_terms(h)
    return (v / _HV_WIND_REFERENCE_M_PER_S) ** 2 * tropo + free + a * ground


def _path_weight(kind: str, s: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Weight of Cn2 at height ``s`` above the lower end of a path of vertical extent ``span``."""
    if kind == "flat":
        return np.ones_like(s)
    if kind == "from_lower_5_6":  # distance to the lower end: downlink plane-wave Rytov
        return s ** (5.0 / 6.0)
    if kind == "from_upper_5_6":  # distance to the upper end: uplink plane-wave Rytov
        return np.clip(span - s, 0.0, None) ** (5.0 / 6.0)
    if kind == "spherical_5_6":  # spherical-wave path weight, symmetric in the two ends
        return np.clip(s * (span - s) / span, 0.0, None) ** (5.0 / 6.0)
    if kind == "uplink_5_3":  # uplink r0 and beam spread: (1 - s/S)^(5/3)
        return np.clip(1.0 - s / span, 0.0, None) ** (5.0 / 3.0)
    if kind == "from_lower_5_3":  # isoplanatic angle seen from the lower end
        return s ** (5.0 / 3.0)
    if kind == "from_upper_5_3":  # isoplanatic angle seen from the upper end
        return np.clip(span - s, 0.0, None) ** (5.0 / 3.0)
    if kind == "from_lower_2":  # numerator of the downlink effective turbulence height
        return s**2
    raise AssertionError(f"unknown path weight {kind!r}")


def _quadrature_grid(lower, ground, upper):
    """Heights above the profile ground and Simpson weights (Jacobian included), rows x nodes."""
    s_max = np.clip(np.minimum(upper, ground + _TURBULENCE_TOP_ABOVE_GROUND_M) - lower, 0.0, None)
    s = s_max * _T**2
    weights = 2.0 * s_max * _T * _SIMPSON
    return s, np.clip(lower + s - ground, 0.0, None), weights


def _direct_integrals(kind: str, rows: np.ndarray) -> np.ndarray:
    """The three HV-term integrals for rows of (h0, H, profile ground): shape (rows, 3)."""
    out = np.empty((rows.shape[0], 3))
    for start in range(0, rows.shape[0], _CHUNK):
        lo, hi, ground = (rows[start : start + _CHUNK, j : j + 1] for j in range(3))
        s, height, weights = _quadrature_grid(lo, ground, hi)
        w = _path_weight(kind, s, hi - lo) * weights
        for j, term in enumerate(_hv_terms(height)):
            out[start : start + _CHUNK, j] = np.sum(term * w, axis=-1)
    return out


def _moment_table(rows: np.ndarray) -> np.ndarray:
    """Moments ``int T_j(s) (s/S_ref)^p ds`` over the whole profile above each (h0, ground) row.

    Shape (rows, 3, len(_MOMENT_POWERS)); the powers are 0..N and 5/6 + (0..N), then 5/3 and 2.
    """
    out = np.empty((rows.shape[0], 3, len(_MOMENT_POWERS)))
    for start in range(0, rows.shape[0], _CHUNK):
        lo, ground = rows[start : start + _CHUNK, 0:1], rows[start : start + _CHUNK, 1:2]
        s, height, weights = _quadrature_grid(lo, ground, np.inf)
        x = s / _MOMENT_REFERENCE_M
        powers = np.empty((len(_MOMENT_POWERS),) + x.shape)
        powers[0] = 1.0
        powers[_SERIES_TERMS + 1] = x ** (5.0 / 6.0)
        for n in range(1, _SERIES_TERMS + 1):
            powers[n] = powers[n - 1] * x
            powers[_SERIES_TERMS + 1 + n] = powers[_SERIES_TERMS + n] * x
        powers[-2] = x ** (5.0 / 3.0)
        powers[-1] = x**2
        for j, term in enumerate(_hv_terms(height)):
            out[start : start + _CHUNK, j] = np.einsum("pij,ij->ip", powers, term * weights)
    return out


def _moment_columns(kind: str) -> slice:
    """Columns of the moment table that a path weight needs (see _MOMENT_POWERS)."""
    n_terms = _SERIES_TERMS + 1
    return {
        "flat": slice(0, 1),
        "from_lower_5_6": slice(n_terms, n_terms + 1),
        "from_lower_5_3": slice(2 * n_terms, 2 * n_terms + 1),
        "from_lower_2": slice(2 * n_terms + 1, 2 * n_terms + 2),
        "spherical_5_6": slice(n_terms, 2 * n_terms),
    }.get(kind, slice(0, n_terms))


def _far_integrals(kind: str, moments: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Path integrals from HV-combined moments for paths far above the turbulence.

    ``moments`` holds the columns ``_moment_columns(kind)`` on its last axis and broadcasts
    against ``span``. With ``x = s/S <= 1/4`` the span-dependent weights are binomial series,
    ``(S - s)^a = S^a sum_n C(a, n) (-s/S)^n``, summed by Horner's rule in ``S_ref/S``; 20
    terms leave < 1e-12 of the sum.
    """
    ref = _MOMENT_REFERENCE_M
    zero = np.zeros(np.shape(span))
    power = {"flat": 0.0, "from_lower_5_6": 5.0 / 6.0, "from_lower_5_3": 5.0 / 3.0}
    power["from_lower_2"] = 2.0
    if kind in power:  # the weight ignores the far end: one moment per site
        return ref ** power[kind] * moments[..., 0] + zero
    exponent = 5.0 / 6.0 if kind in ("from_upper_5_6", "spherical_5_6") else 5.0 / 3.0
    coeffs = _BINOMIAL_SIGNED[exponent] * moments
    ratio = ref / span
    total = coeffs[..., -1] + zero
    for n in range(_SERIES_TERMS - 1, -1, -1):
        total = total * ratio + coeffs[..., n]
    if kind == "spherical_5_6":
        return ref ** (5.0 / 6.0) * total
    if kind == "uplink_5_3":
        return total
    return span**exponent * total  # from_upper_5_6, from_upper_5_3


def _combined_moments(kind, h0, base, wind2, a) -> np.ndarray:
    """The moment columns of ``kind``, HV terms combined, for equally shaped site arrays."""
    rows, inverse = _unique_rows(h0, base, wind2, a)
    m = _cached_rows(_MOMENT_CACHE, rows[:, :2], _moment_table)[..., _moment_columns(kind)]
    combined = rows[:, 2, None] * m[:, 0, :] + m[:, 1, :] + rows[:, 3, None] * m[:, 2, :]
    return combined[inverse].reshape(np.shape(h0) + combined.shape[-1:])


def _cached_rows(cache: dict, keys: np.ndarray, compute) -> np.ndarray:
    """Rows of ``compute(missing_keys)`` memoised in ``cache`` by the key tuple."""
    missing = [i for i, key in enumerate(map(tuple, keys.tolist())) if key not in cache]
    if missing:
        if len(cache) + len(missing) > _CACHE_LIMIT:
            cache.clear()
        values = compute(keys[missing])
        for i, value in zip(missing, values, strict=True):
            cache[tuple(keys[i].tolist())] = value
    return np.stack([cache[key] for key in map(tuple, keys.tolist())])


def _unique_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of equally shaped columns and the inverse index (1-D sorts only)."""
    codes = []
    values = []
    for col in columns:
        vals, inverse = np.unique(col.ravel(), return_inverse=True)
        codes.append(inverse.ravel())
        values.append(vals)
    code = np.zeros_like(codes[0])
    for inverse, vals in zip(codes, values, strict=True):
        code = code * len(vals) + inverse
    unique_code, inverse = np.unique(code, return_inverse=True)
    rows = np.empty((len(unique_code), len(columns)))
    rest = unique_code
    for j in range(len(columns) - 1, -1, -1):
        rows[:, j] = values[j][rest % len(values[j])]
        rest = rest // len(values[j])
    return rows, inverse.ravel()


def _cn2_path_integral(
    kind: str,
    ground_altitude_m,
    platform_altitude_m,
    rms_wind_speed_m_per_s,
    ground_cn2_m_minus_2_3,
    profile_ground_altitude_m,
) -> np.ndarray:
    """``int_{h0}^{H} Cn2(h) w(h - h0) dh`` for the HV profile, broadcast over all arguments.

    The HV free parameters enter linearly, so the three terms are integrated separately. A path
    reaching far above the turbulence (a satellite) uses the moment table of its lower end,
    which is shared by every satellite seen from that site whatever its altitude; shorter paths
    (HAPS) are integrated directly. Both are memoised by their altitudes (pure functions), so
    the per-tick cost of a fixed set of sites is a table look-up plus a short polynomial per
    pair. The site-level work happens at the broadcast shape of (ground altitude, profile
    ground, HV parameters): pass site arrays as (1, N_sites) next to (N_sats, 1) platforms.
    """
    h0, big_h = _check_path(ground_altitude_m, platform_altitude_m)
    base = _as_array("profile_ground_altitude_m", profile_ground_altitude_m)
    wind2 = (
        _non_negative("rms_wind_speed_m_per_s", rms_wind_speed_m_per_s) / _HV_WIND_REFERENCE_M_PER_S
    ) ** 2
    a = _non_negative("ground_cn2_m_minus_2_3", ground_cn2_m_minus_2_3)
    span = big_h - h0
    s_top = np.clip(base + _TURBULENCE_TOP_ABOVE_GROUND_M - h0, 0.0, None)
    far = span >= _FAR_FACTOR * s_top
    if far.all():
        site = np.broadcast_arrays(h0, base, wind2, a)
        return np.array(_far_integrals(kind, _combined_moments(kind, *site), span))
    h0, big_h, base, wind2, a, span, far = np.broadcast_arrays(h0, big_h, base, wind2, a, span, far)
    out = np.empty(h0.shape)
    if far.any():
        moments = _combined_moments(kind, h0[far], base[far], wind2[far], a[far])
        out[far] = _far_integrals(kind, moments, span[far])
    near = ~far
    rows, inverse = _unique_rows(h0[near], big_h[near], base[near])
    cache = _DIRECT_CACHE.setdefault(kind, {})
    terms = _cached_rows(cache, rows, lambda r: _direct_integrals(kind, r))[inverse]
    out[near] = wind2[near] * terms[:, 0] + terms[:, 1] + a[near] * terms[:, 2]
    return out


def slant_rytov_variance(
    zenith_angle_rad,
    wavelength_m,
    *,
    ground_altitude_m=0.0,
    platform_altitude_m,
    direction: str = "downlink",
    wave: str = "plane",
    rms_wind_speed_m_per_s=HV57_RMS_WIND_SPEED_M_PER_S,
    ground_cn2_m_minus_2_3=HV57_GROUND_CN2_M_MINUS_2_3,
    profile_ground_altitude_m=0.0,
) -> np.ndarray:
    """Rytov variance of a slant path through the HV profile (dimensionless).

    ``sigma^2 = 2.25 k^(7/6) sec^(11/6)(zeta) int_{h0}^{H} Cn2(h) w(h) dh`` ([AP05] ch. 12),
    ``k = 2 pi / lambda``, with the path weight ``w`` set by where the receiver is:

    * ``wave="plane"``, ``"downlink"`` (receiver at the lower end): ``w = (h - h0)^(5/6)``
      ([AP05] ch. 12; the weak-turbulence scintillation index of a downlink).
    * ``wave="plane"``, ``"uplink"`` (receiver at the upper end): ``w = (H - h)^(5/6)``; this is
      the ``sigma_R^2`` parameter of [AP05]'s uplink Gaussian-beam formulas.
    * ``wave="spherical"`` (either direction): ``w = [(h - h0)(H - h)/(H - h0)]^(5/6)``, the
      point-source Rytov variance (beta_0^2 of [AP05]; 0.4 sigma_R^2 for constant Cn2). Use it for
      uplinks, where the satellite sees a point-like source.

    ``profile_ground_altitude_m`` is the altitude of the ground the HV profile refers to (its
    ``h = 0``); Cn2 at altitude ``h`` is ``HV(h - profile_ground_altitude_m)``. Leave it 0 to
    read HV as a profile above sea level (a mountain site then escapes the boundary layer); set
    it to the site altitude to put the HV boundary layer at the site.

    Shapes: all array arguments broadcast; returns their broadcast shape. The Cn2 integral is
    computed once per distinct site (memoised); each satellite then costs a 20-term polynomial
    in 1/(H - h0). Pass sites as (1, N_sites) and platforms as (N_sats, 1): 158,400 pairs take
    ~10 ms; flattened arrays of the ~5,000 pairs above 20 deg take ~2 ms.
    """
    z = _zenith(zenith_angle_rad)
    lam = _wavelength(wavelength_m)
    _choice("direction", direction, _DIRECTIONS)
    _choice("wave", wave, _WAVES)
    if wave == "spherical":
        kind = "spherical_5_6"
    else:
        kind = "from_lower_5_6" if direction == "downlink" else "from_upper_5_6"
    integral = _cn2_path_integral(
        kind,
        ground_altitude_m,
        platform_altitude_m,
        rms_wind_speed_m_per_s,
        ground_cn2_m_minus_2_3,
        profile_ground_altitude_m,
    )
    k = 2.0 * np.pi / lam
    return 2.25 * k ** (7.0 / 6.0) / np.cos(z) ** (11.0 / 6.0) * integral


def slant_fried_parameter_m(
    zenith_angle_rad,
    wavelength_m,
    *,
    ground_altitude_m=0.0,
    platform_altitude_m,
    direction: str = "downlink",
    rms_wind_speed_m_per_s=HV57_RMS_WIND_SPEED_M_PER_S,
    ground_cn2_m_minus_2_3=HV57_GROUND_CN2_M_MINUS_2_3,
    profile_ground_altitude_m=0.0,
) -> np.ndarray:
    """Fried parameter (atmospheric coherence diameter) r0 of a slant path, in metres.

    * ``"downlink"`` (plane wave at the ground): ``r0 = [0.423 k^2 sec(zeta) int Cn2 dh]^(-3/5)``
      ([F66]; [AP05] ch. 12; identical to ``aotools.cn2_to_r0`` of the slant-integrated Cn2).
    * ``"uplink"`` (spherical wave at the satellite from a ground source): the turbulence near the
      source counts most, ``r0 = [0.423 k^2 sec(zeta) int Cn2 (1 - (h-h0)/(H-h0))^(5/3) dh]^(-3/5)``
      ([AP05] ch. 12, uplink coherence width).

    r0 scales as ``lambda^(6/5) cos(zeta)^(3/5)``. Returns ``inf`` where the path holds no
    turbulence (e.g. entirely above the profile). Shapes: broadcast of the inputs.
    """
    z = _zenith(zenith_angle_rad)
    lam = _wavelength(wavelength_m)
    _choice("direction", direction, _DIRECTIONS)
    integral = _cn2_path_integral(
        "flat" if direction == "downlink" else "uplink_5_3",
        ground_altitude_m,
        platform_altitude_m,
        rms_wind_speed_m_per_s,
        ground_cn2_m_minus_2_3,
        profile_ground_altitude_m,
    )
    k = 2.0 * np.pi / lam
    with np.errstate(divide="ignore"):
        return (0.423 * k**2 / np.cos(z) * integral) ** (-3.0 / 5.0)


def slant_isoplanatic_angle_rad(
    zenith_angle_rad,
    wavelength_m,
    *,
    ground_altitude_m=0.0,
    platform_altitude_m,
    direction: str = "downlink",
    rms_wind_speed_m_per_s=HV57_RMS_WIND_SPEED_M_PER_S,
    ground_cn2_m_minus_2_3=HV57_GROUND_CN2_M_MINUS_2_3,
    profile_ground_altitude_m=0.0,
) -> np.ndarray:
    """Isoplanatic angle theta0 of a slant path, in radians.

    ``theta0 = [2.91 k^2 sec^(8/3)(zeta) int Cn2(h) l(h)^(5/3) dh]^(-3/5)`` ([AP05] ch. 12;
    Fried 1982, JOSA 72, 52), with ``l = h - h0`` seen from the ground (``"downlink"``, the
    astronomical definition and aotools' ``isoplanaticAngle``) or ``l = H - h`` seen from the
    platform (``"uplink"``, relevant to point-ahead anisoplanatism). Shapes: broadcast.
    """
    z = _zenith(zenith_angle_rad)
    lam = _wavelength(wavelength_m)
    _choice("direction", direction, _DIRECTIONS)
    integral = _cn2_path_integral(
        "from_lower_5_3" if direction == "downlink" else "from_upper_5_3",
        ground_altitude_m,
        platform_altitude_m,
        rms_wind_speed_m_per_s,
        ground_cn2_m_minus_2_3,
        profile_ground_altitude_m,
    )
    k = 2.0 * np.pi / lam
    with np.errstate(divide="ignore"):
        return (2.91 * k**2 / np.cos(z) ** (8.0 / 3.0) * integral) ** (-3.0 / 5.0)


def downlink_effective_turbulence_distance_m(
    zenith_angle_rad,
    *,
    ground_altitude_m=0.0,
    platform_altitude_m,
    rms_wind_speed_m_per_s=HV57_RMS_WIND_SPEED_M_PER_S,
    ground_cn2_m_minus_2_3=HV57_GROUND_CN2_M_MINUS_2_3,
    profile_ground_altitude_m=0.0,
) -> np.ndarray:
    """Slant distance from the turbulence to a downlink receiver, ``h_eff sec(zeta)``, in metres.

    ``h_eff = [int Cn2 (h-h0)^2 dh / int Cn2 (h-h0)^(5/6) dh]^(6/7)`` is the turbulence-weighted
    height of [AP05]'s downlink aperture-averaging factor
    ``A = [1 + 1.1 (D^2 / (lambda h_eff sec zeta))^(7/6)]^-1`` (ch. 12). Pass the result as
    ``path_length_m`` to :func:`gamma_gamma_alpha_beta_aperture` for a downlink: a plane wave
    scintillates with the Fresnel scale of the distance from the turbulence, not of the whole
    slant range. Shapes: broadcast.
    """
    z = _zenith(zenith_angle_rad)
    args = (
        ground_altitude_m,
        platform_altitude_m,
        rms_wind_speed_m_per_s,
        ground_cn2_m_minus_2_3,
        profile_ground_altitude_m,
    )
    num = _cn2_path_integral("from_lower_2", *args)
    den = _cn2_path_integral("from_lower_5_6", *args)
    with np.errstate(divide="ignore", invalid="ignore"):
        h_eff = (num / den) ** (6.0 / 7.0)
    return h_eff / np.cos(z)


def constant_cn2_rytov_variance(
    cn2_m_minus_2_3, wavelength_m, path_length_m, wave: str = "plane"
) -> np.ndarray:
    """Rytov variance of a path of constant Cn2 (a horizontal ground or HAPS-HAPS link).

    Plane wave ``sigma_R^2 = 2.25 (6/11) Cn2 k^(7/6) L^(11/6)`` (1.2273, rounded to 1.23 in
    [AP05] ch. 8); spherical wave ``beta_0^2 = 2.25 B(11/6, 11/6) Cn2 k^(7/6) L^(11/6)``
    (0.4963, rounded to 0.5 in [AP05]). The exact coefficients keep this consistent with
    :func:`slant_rytov_variance`'s integrals. Shapes: broadcast.
    """
    cn2 = _non_negative("cn2_m_minus_2_3", cn2_m_minus_2_3)
    lam = _wavelength(wavelength_m)
    length = _non_negative("path_length_m", path_length_m)
    _choice("wave", wave, _WAVES)
    if wave == "plane":
        coeff = 2.25 * 6.0 / 11.0
    else:
        coeff = 2.25 * math.exp(2 * math.lgamma(11.0 / 6.0) - math.lgamma(11.0 / 3.0))
    k = 2.0 * np.pi / lam
    return coeff * cn2 * k ** (7.0 / 6.0) * length ** (11.0 / 6.0)


def seeing_arcsec(r0_m, wavelength_m) -> np.ndarray:
    """Seeing (FWHM of the long-exposure image), ``0.98 lambda / r0``, in arcseconds.

    Dierickx 1992 / Fried 1966; the same conversion as ``aotools.r0_to_seeing``. ``r0_m`` must be
    the Fried parameter at ``wavelength_m``. Shapes: broadcast.
    """
    r0 = _positive("r0_m", r0_m)
    lam = _wavelength(wavelength_m)
    return 0.98 * lam / r0 / ARCSEC


# --------------------------------------------------------------------------------------------
# Gamma-Gamma parameters
# --------------------------------------------------------------------------------------------


def _log_variances(rytov_variance, wave: str, d2=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Large- and small-scale log-irradiance variances (sigma_lnX^2, sigma_lnY^2)."""
    s2 = _non_negative("rytov_variance", rytov_variance)
    _choice("wave", wave, _WAVES)
    (cx, ax_d, ax_s), (cy, ay_s, by_d, by_ds) = _LOG_VARIANCE_COEFFS[wave]
    s125 = s2 ** (6.0 / 5.0)  # sigma^(12/5)
    var_x = cx * s2 / (1.0 + ax_d * d2 + ax_s * s125) ** (7.0 / 6.0)
    var_y = cy * s2 / (1.0 + ay_s * s125) ** (5.0 / 6.0) / (1.0 + by_d * d2 + by_ds * d2 * s125)
    return var_x, var_y


def _alpha_beta_from_log_variances(var_x, var_y) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore"):
        return 1.0 / np.expm1(var_x), 1.0 / np.expm1(var_y)


def gamma_gamma_alpha_beta(rytov_variance, wave: str = "plane") -> tuple[np.ndarray, np.ndarray]:
    """Gamma-Gamma shape parameters (alpha, beta) for a point receiver, zero inner scale.

    ``alpha = 1 / (exp(sigma_lnX^2) - 1)``, ``beta = 1 / (exp(sigma_lnY^2) - 1)`` ([AH01];
    [AP05] ch. 9) with

    * plane wave: ``sigma_lnX^2 = 0.49 s2 / (1 + 1.11 s^(12/5))^(7/6)``,
      ``sigma_lnY^2 = 0.51 s2 / (1 + 0.69 s^(12/5))^(5/6)``, ``s2`` the plane-wave Rytov
      variance sigma_R^2;
    * spherical wave: the same with 0.56 in place of 1.11 and ``s2`` the *spherical-wave* Rytov
      variance beta_0^2 (what ``slant_rytov_variance(..., wave="spherical")`` returns; for
      constant Cn2 it is ~0.4 sigma_R^2).

    ``rytov_variance = 0`` (no turbulence, e.g. an inter-satellite link) gives ``inf``, ``inf``.
    As s2 -> 0 both grow as ~1/(0.5 s2); in saturation beta -> 1 and alpha grows again.
    Shapes: returns two arrays shaped like ``rytov_variance``.
    """
    return _alpha_beta_from_log_variances(*_log_variances(rytov_variance, wave))


def gamma_gamma_alpha_beta_aperture(
    rytov_variance,
    aperture_diameter_m,
    wavelength_m,
    path_length_m,
    wave: str = "plane",
) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-Gamma (alpha, beta) for a receiver aperture of diameter D (aperture averaging).

    [AP05] ch. 10 (zero inner scale), with ``d = sqrt(k D^2 / 4 L)``:

    * plane: ``sigma_lnX^2 = 0.49 s2 / (1 + 0.65 d^2 + 1.11 s^(12/5))^(7/6)``,
      ``sigma_lnY^2 = 0.51 s2 (1 + 0.69 s^(12/5))^(-5/6) / (1 + 0.90 d^2 + 0.62 d^2 s^(12/5))``;
    * spherical: 0.18 d^2 and 0.56 in the large-scale term, the same small-scale term.

    ``D = 0`` reproduces :func:`gamma_gamma_alpha_beta`. ``path_length_m`` is the propagation
    distance over which the Fresnel zone grows: the path length for a horizontal link, the slant
    range for an uplink, and :func:`downlink_effective_turbulence_distance_m` for a downlink.
    Shapes: all arguments broadcast.
    """
    diameter = _non_negative("aperture_diameter_m", aperture_diameter_m)
    lam = _wavelength(wavelength_m)
    length = _positive("path_length_m", path_length_m)
    k = 2.0 * np.pi / lam
    d2 = k * diameter**2 / (4.0 * length)
    return _alpha_beta_from_log_variances(*_log_variances(rytov_variance, wave, d2))


def scintillation_index(rytov_variance, wave: str = "plane") -> np.ndarray:
    """Scintillation index ``sigma_I^2 = exp(sigma_lnX^2 + sigma_lnY^2) - 1`` (point receiver).

    The [AP05] ch. 9 zero-inner-scale formula valid in all regimes (plane wave:
    ``exp(0.49 s2/(1+1.11 s^(12/5))^(7/6) + 0.51 s2/(1+0.69 s^(12/5))^(5/6)) - 1``); it tends to
    ``s2`` in weak turbulence and to 1 in saturation. Shapes: like ``rytov_variance``.
    """
    var_x, var_y = _log_variances(rytov_variance, wave)
    return np.expm1(var_x + var_y)


def scintillation_index_from_alpha_beta(alpha, beta) -> np.ndarray:
    """Scintillation index of a Gamma-Gamma variate, ``1/alpha + 1/beta + 1/(alpha beta)``.

    ([AH01]: the second moment of the product of two unit-mean Gamma variates.) ``inf``
    parameters contribute 0. Shapes: broadcast.
    """
    a = _positive("alpha", alpha)
    b = _positive("beta", beta)
    return 1.0 / a + 1.0 / b + 1.0 / (a * b)


# --------------------------------------------------------------------------------------------
# Gamma-Gamma distribution (main paper eq. (2))
# --------------------------------------------------------------------------------------------


def _log_kv_uniform(nu: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log K_nu(z) by the Debye uniform asymptotic expansion (DLMF 10.41.4), for large nu.

    Terms up to u_3(p)/nu^3: relative error < 1e-9 for nu >= 50, where it is used.
    """
    x = z / nu
    root = np.sqrt(1.0 + x**2)
    eta = root + np.log(x / (1.0 + root))
    p = 1.0 / root
    u1 = (3.0 * p - 5.0 * p**3) / 24.0
    u2 = (81.0 * p**2 - 462.0 * p**4 + 385.0 * p**6) / 1152.0
    u3 = (30375.0 * p**3 - 369603.0 * p**5 + 765765.0 * p**7 - 425425.0 * p**9) / 414720.0
    series = 1.0 - u1 / nu + u2 / nu**2 - u3 / nu**3
    return 0.5 * np.log(np.pi / (2.0 * nu)) - nu * eta - 0.25 * np.log1p(x**2) + np.log(series)


def _log_kv(nu: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log K_nu(z) for z > 0 without overflow (Gamma-Gamma with alpha >> beta needs nu ~ 1e3)."""
    nu = np.abs(nu)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = np.log(special.kve(nu, z)) - z
    bad = ~np.isfinite(out)
    if bad.any():
        nu_b, z_b = np.broadcast_arrays(nu, z)
        out = np.array(out, copy=True)
        out[bad] = _log_kv_uniform(nu_b[bad], z_b[bad])
    return out


def _log_g(s: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log of the density of ``s = ln(I/I0)``: ``log(p(e^s) e^s)`` with p of eq. (2), I0 = 1."""
    return (
        math.log(2.0)
        + 0.5 * (a + b) * (np.log(a * b) + s)
        - special.gammaln(a)
        - special.gammaln(b)
        + _log_kv(a - b, 2.0 * np.sqrt(a * b) * np.exp(0.5 * s))
    )


def _check_shape_params(alpha, beta) -> tuple[np.ndarray, np.ndarray]:
    a = _positive("alpha", alpha, " (Gamma-Gamma shape parameters are > 0)")
    b = _positive("beta", beta, " (Gamma-Gamma shape parameters are > 0)")
    return a, b


def gamma_gamma_pdf(irradiance, alpha, beta, mean_irradiance=1.0) -> np.ndarray:
    """Gamma-Gamma irradiance pdf, the main paper's eq. (2), in 1/(unit of irradiance).

    ``p(I) = 2 (ab)^((a+b)/2) / (Gamma(a) Gamma(b) I) (I/I0)^((a+b)/2) K_(a-b)(2 sqrt(ab I/I0))``
    ([AH01]). Evaluated in log space (``gammaln``, ``kve``, and the Debye expansion where
    K overflows), so shapes of 1e4 and more stay finite. At ``I = 0`` it returns the limit
    (0 for min(a, b) > 1). ``alpha`` or ``beta`` = ``inf`` reduces it to a single Gamma pdf.
    Shapes: all arguments broadcast.
    """
    i = _non_negative("irradiance", irradiance)
    a, b = _check_shape_params(alpha, beta)
    i0 = _positive("mean_irradiance", mean_irradiance)
    i, a, b, i0 = np.broadcast_arrays(i, a, b, i0)
    x = i / i0
    out = np.zeros(x.shape)
    a_inf, b_inf = np.isinf(a), np.isinf(b)
    both = a_inf & b_inf
    single = a_inf ^ b_inf
    general = ~(a_inf | b_inf) & (x > 0)
    if general.any():
        s = np.log(x[general])
        out[general] = np.exp(_log_g(s, a[general], b[general]) - s) / i0[general]
    if single.any():
        shape = np.where(a_inf, b, a)[single]
        xs = x[single]
        with np.errstate(divide="ignore"):
            log_p = (
                shape * np.log(shape)
                + (shape - 1.0) * np.log(xs)
                - shape * xs
                - special.gammaln(shape)
            )
        out[single] = np.exp(log_p) / i0[single]
    at_zero = ~(a_inf | b_inf) & (x == 0)
    if at_zero.any():
        lo = np.minimum(a, b)[at_zero]
        hi = np.maximum(a, b)[at_zero]
        # p ~ (ab)^lo Gamma(hi - lo) / (Gamma(a) Gamma(b)) x^(lo - 1) as x -> 0 (K_nu small-z).
        with np.errstate(divide="ignore"):
            at_one = np.where(hi > 1.0, lo * hi / (hi - 1.0), np.inf)
        out[at_zero] = np.where(lo > 1.0, 0.0, np.where(lo < 1.0, np.inf, at_one)) / i0[at_zero]
    if both.any():
        out[both] = np.where(x[both] == 1.0, np.inf, 0.0)
    return out


def _log_integral(lo: np.ndarray, hi: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log of ``int_lo^hi g(s) ds`` by 256-point Gauss-Legendre, in log space (tails to 1e-300)."""
    half = 0.5 * (hi - lo)
    mid = 0.5 * (hi + lo)
    s = mid[..., None] + half[..., None] * _GL_X
    log_terms = _log_g(s, a[..., None], b[..., None]) + _LOG_GL_W
    with np.errstate(divide="ignore"):
        return special.logsumexp(log_terms, axis=-1) + np.log(half)


def _log_cdf_general(s: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log P(ln(I/I0) <= s) for finite a, b (arrays of one shape)."""
    # ln I = ln X + ln Y with X ~ Gamma(a, 1/a), Y ~ Gamma(b, 1/b): mean and sd of ln I.
    mean = special.digamma(a) - np.log(a) + special.digamma(b) - np.log(b)
    sd = np.sqrt(special.polygamma(1, a) + special.polygamma(1, b))
    # Left tail of the density of s decays like exp(min(a, b) s): 50/min(a, b) past the bulk
    # leaves < e^-50 of the mass out.
    lower_start = np.minimum(s, mean - 12.0 * sd) - 50.0 / np.minimum(a, b)
    # Right tail: the density of u = sqrt(I) decays like u^(a+b-1/2) exp(-2 sqrt(ab) u)
    # (K_nu(z) ~ exp(-z)); go well past the larger of its mode and sqrt(x).
    rate = 2.0 * np.sqrt(a * b)
    u_mode = np.maximum(a + b - 0.5, 0.0) / rate
    u_end = np.maximum(np.exp(0.5 * s), np.maximum(u_mode, np.exp(0.5 * (mean + 12 * sd))))
    u_end = u_end + (10.0 * np.sqrt(a + b + 1.0) + 50.0) / rate
    upper_end = 2.0 * np.log(u_end)
    out = np.empty(s.shape)
    low_side = s <= 0.0  # x <= mean irradiance: integrate the lower tail (relative accuracy)
    if low_side.any():
        out[low_side] = _log_integral(lower_start[low_side], s[low_side], a[low_side], b[low_side])
    high = ~low_side
    if high.any():
        log_upper = _log_integral(s[high], upper_end[high], a[high], b[high])
        out[high] = np.log1p(-np.minimum(np.exp(log_upper), 1.0))
    return out


def gamma_gamma_cdf(irradiance, alpha, beta, mean_irradiance=1.0) -> np.ndarray:
    """Gamma-Gamma cumulative distribution ``P(I <= irradiance)`` (dimensionless).

    Numerical: the pdf of ``ln(I/I0)`` integrated by 256-point Gauss-Legendre in log space over
    the lower tail (for ``I <= I0``, so small outage probabilities keep their relative accuracy
    down to 1e-300) or the upper tail (for ``I > I0``). Agrees with the closed form
    ``G^{2,1}_{1,3}(ab I/I0 | 1; a, b, 0) / (Gamma(a) Gamma(b))`` (Meijer G) to ~1e-10
    (tested with mpmath). A single infinite shape gives the Gamma cdf; both infinite, a step at
    ``I0``. Shapes: all arguments broadcast.
    """
    i = _non_negative("irradiance", irradiance)
    a, b = _check_shape_params(alpha, beta)
    i0 = _positive("mean_irradiance", mean_irradiance)
    i, a, b, i0 = np.broadcast_arrays(i, a, b, i0)
    x = i / i0
    out = np.zeros(x.shape)
    a_inf, b_inf = np.isinf(a), np.isinf(b)
    general = ~(a_inf | b_inf) & (x > 0)
    if general.any():
        out[general] = np.exp(_log_cdf_general(np.log(x[general]), a[general], b[general]))
    single = a_inf ^ b_inf
    if single.any():
        shape = np.where(a_inf, b, a)[single]
        out[single] = special.gammainc(shape, shape * x[single])
    both = a_inf & b_inf
    if both.any():
        out[both] = (x[both] >= 1.0).astype(float)
    return out


def gamma_gamma_fade_margin_db(alpha, beta, outage_probability) -> np.ndarray:
    """Fade depth below the mean irradiance exceeded with probability ``outage_probability``, dB.

    Solves ``P(I/I0 <= x_p) = p`` and returns ``-10 log10(x_p)``: a link budget that keeps this
    much margin above the receiver threshold is out ``p`` of the time ([AP05] ch. 11, fade
    statistics; Gamma-Gamma cdf as in :func:`gamma_gamma_cdf`). Positive for the usual small
    ``p``; 0 dB without turbulence (``alpha = beta = inf``).

    Newton's method on ``log P(s)``, ``s = ln x``: the density of ``s`` is log-concave (a sum of
    two log-Gamma variates), so ``log P`` is concave and Newton converges monotonically once left
    of the root. Costs ~0.4 ms per element (a 256-point quadrature per Newton step): compute it
    per link class or per contact, not per tick of a mega-constellation. Shapes: all arguments
    broadcast.
    """
    a, b = _check_shape_params(alpha, beta)
    p = _as_array("outage_probability", outage_probability)
    if ((p <= 0) | (p >= 1)).any():
        bad = p[(p <= 0) | (p >= 1)].ravel()[0]
        raise ValueError(
            f"outage_probability must be within (0, 1), got {bad} (a percentage passed?)"
        )
    a, b, p = np.broadcast_arrays(a, b, p)
    out = np.zeros(a.shape)
    a_inf, b_inf = np.isinf(a), np.isinf(b)
    single = a_inf ^ b_inf
    if single.any():
        shape = np.where(a_inf, b, a)[single]
        out[single] = -10.0 * np.log10(special.gammaincinv(shape, p[single]) / shape)
    general = ~(a_inf | b_inf)
    if general.any():
        ag, bg, pg = a[general], b[general], p[general]
        log_p = np.log(pg)
        mean = special.digamma(ag) - np.log(ag) + special.digamma(bg) - np.log(bg)
        sd = np.sqrt(special.polygamma(1, ag) + special.polygamma(1, bg))
        s = mean + sd * special.ndtri(pg)  # log-normal first guess
        active = np.arange(s.size)
        for _ in range(100):
            sa, aa, ba = s[active], ag[active], bg[active]
            log_cdf = _log_cdf_general(sa, aa, ba)
            slope = np.exp(_log_g(sa, aa, ba) - log_cdf)  # d log P / ds
            step = (log_cdf - log_p[active]) / slope
            s[active] = sa - step
            active = active[np.abs(step) >= 1e-11]  # 1e-11 in ln x is 4e-11 dB
            if active.size == 0:
                break
        else:
            raise AssertionError("gamma_gamma_fade_margin_db: Newton did not converge")
        out[general] = -10.0 / np.log(10.0) * s
    return out


def gamma_gamma_samples(alpha, beta, rng: np.random.Generator, size=None) -> np.ndarray:
    """Seeded Gamma-Gamma irradiance samples with unit mean, ``I = X Y``.

    ``X ~ Gamma(alpha, 1/alpha)`` (large-scale eddies) and ``Y ~ Gamma(beta, 1/beta)``
    (small-scale), independent ([AH01] sec. 3). Multiply by the mean irradiance (or by the mean
    channel transmittance) to scale. ``size`` as in numpy (must broadcast with the parameters);
    ``None`` gives the parameters' broadcast shape. ``inf`` parameters give a factor of 1.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng)}"
        )
    a, b = _check_shape_params(alpha, beta)
    if size is None:
        size = np.broadcast_shapes(a.shape, b.shape)
    factors = []
    for shape in (a, b):
        finite = np.isfinite(shape)
        safe = np.where(finite, shape, 1.0)
        draw = rng.gamma(safe, 1.0 / safe, size=size)
        factors.append(np.where(finite, draw, 1.0))
    return factors[0] * factors[1]


# --------------------------------------------------------------------------------------------
# Uplink beam wander and spread
# --------------------------------------------------------------------------------------------


def beam_wander_variance_m2(
    fried_parameter_m, beam_waist_radius_m, wavelength_m, path_length_m
) -> np.ndarray:
    """Mean-square beam-centroid displacement ``<r_c^2>`` of a collimated uplink beam, in m^2.

    ``<r_c^2> = 0.54 L^2 (lambda / 2 W0)^2 (2 W0 / r0)^(5/3)`` ([AP05] ch. 12, uplink beam wander,
    written there with ``L = (H - h0) sec(zeta)``), with ``W0`` the 1/e^2 intensity radius of the
    beam at the transmitter, ``L`` the slant range, and ``r0`` the plane-wave Fried parameter of
    the path (:func:`slant_fried_parameter_m` with ``direction="downlink"``, i.e. the unweighted
    ``int Cn2 dh``): the tilt is imposed in the atmosphere, all of which sits near the
    transmitter, so every layer has the full lever arm L. It agrees to ~1.5 % with [AP05]'s
    integral form ``7.25 W0^(-1/3) int Cn2(z) (L - z)^2 dz`` for such a profile (tested).
    Shapes: broadcast.
    """
    r0 = _positive("fried_parameter_m", fried_parameter_m)
    w0 = _positive("beam_waist_radius_m", beam_waist_radius_m)
    lam = _wavelength(wavelength_m)
    length = _non_negative("path_length_m", path_length_m)
    return 0.54 * length**2 * (lam / (2.0 * w0)) ** 2 * (2.0 * w0 / r0) ** (5.0 / 3.0)


def beam_wander_efficiency(beam_wander_variance_m2, beam_radius_m) -> np.ndarray:
    """Mean power fraction kept by a small receiver under beam wander, relative to a centred beam.

    For a Gaussian beam of (short-term) radius ``W`` whose centroid wanders with a circular
    Gaussian displacement of mean square ``<r_c^2>`` (Rayleigh-distributed |r_c|), the mean
    irradiance at the aim point is ``E[exp(-2 r_c^2 / W^2)] = W^2 / (W^2 + 2 <r_c^2>)``
    (the Gaussian average; equivalently the long-term beam radius ``W^2 + 2 <r_c^2>``).
    Multiply the geometric efficiency computed with the *short-term* radius by this; do not
    combine it with :func:`long_term_beam_radius_m`, which already contains the wander.
    Valid for apertures small compared with ``W`` (always the case on an uplink). Shapes: broadcast.
    """
    var = _non_negative("beam_wander_variance_m2", beam_wander_variance_m2)
    w = _positive("beam_radius_m", beam_radius_m)
    return w**2 / (w**2 + 2.0 * var)


def long_term_beam_radius_m(
    beam_waist_radius_m,
    wavelength_m,
    zenith_angle_rad,
    *,
    ground_altitude_m=0.0,
    platform_altitude_m,
    focal_distance_m=np.inf,
    rms_wind_speed_m_per_s=HV57_RMS_WIND_SPEED_M_PER_S,
    ground_cn2_m_minus_2_3=HV57_GROUND_CN2_M_MINUS_2_3,
    profile_ground_altitude_m=0.0,
) -> np.ndarray:
    """Long-term (turbulence-broadened) radius of an uplink Gaussian beam at the platform, in m.

    ``W_LT = W sqrt(1 + 4.35 mu_2u Lambda^(5/6) k^(7/6) (H-h0)^(5/6) sec^(11/6)(zeta))`` with
    ``mu_2u = int Cn2(h) (1 - (h-h0)/(H-h0))^(5/3) dh`` ([AP05] ch. 12, uplink beam spreading; for
    constant Cn2 it is their horizontal ``W sqrt(1 + 1.33 sigma_R^2 Lambda^(5/6))``). ``W`` is the
    free-space radius at range ``L = (H-h0) sec(zeta)``: ``W = W0 sqrt(Theta0^2 + Lambda0^2)``,
    ``Theta0 = 1 - L/F0``, ``Lambda0 = 2L/(k W0^2)``, ``Lambda = Lambda0/(Theta0^2 + Lambda0^2)``.
    ``focal_distance_m`` = ``inf`` is a collimated beam. Use it as the beam radius of the
    geometric efficiency of an uplink (mean received power). Shapes: broadcast.
    """
    w0 = _positive("beam_waist_radius_m", beam_waist_radius_m)
    lam = _wavelength(wavelength_m)
    z = _zenith(zenith_angle_rad)
    focal = _positive("focal_distance_m", focal_distance_m)
    h0, big_h = _check_path(ground_altitude_m, platform_altitude_m)
    mu_2u = _cn2_path_integral(
        "uplink_5_3",
        h0,
        big_h,
        rms_wind_speed_m_per_s,
        ground_cn2_m_minus_2_3,
        profile_ground_altitude_m,
    )
    k = 2.0 * np.pi / lam
    sec = 1.0 / np.cos(z)
    length = (big_h - h0) * sec
    theta0 = 1.0 - length / focal
    lambda0 = 2.0 * length / (k * w0**2)
    w = w0 * np.sqrt(theta0**2 + lambda0**2)
    lam_param = lambda0 / (theta0**2 + lambda0**2)
    spread = (
        4.35
        * mu_2u
        * lam_param ** (5.0 / 6.0)
        * k ** (7.0 / 6.0)
        * (big_h - h0) ** (5.0 / 6.0)
        * sec ** (11.0 / 6.0)
    )
    return w * np.sqrt(1.0 + spread)
