"""The Sun, Earth-shadow eclipses, orbital period and beta angle.

Two Sun models:

* :func:`sun_position_ecef_m_de421` -- JPL DE421 through skyfield, offline (the ephemeris file
  ships in the ``skyfield-data`` package; nothing is ever downloaded). Accurate to
  milliarcseconds; costs ~1 ms per call plus skyfield's set-up, so it is for validation and
  for precomputing tables, not for the tick loop.
* :func:`sun_position_ecef_m` / :func:`sun_position_teme_m` -- the Astronomical Almanac's
  low-precision formula, pure numpy, good to 0.01 deg from 1950 to 2050. A 0.01 deg error moves
  a LEO shadow boundary by ~1.2 km, i.e. ~0.2 s of eclipse entry/exit time.

Time is the UTC Julian date pair ``(jd, fr)`` of :mod:`twin.physics.orbits`; Earth-fixed means
GMST-rotated (polar motion ignored), as there.

Shadow models (:func:`sunlit_fraction`): cylindrical (Earth's shadow is a cylinder of radius R
along the anti-Sun direction) and conical (umbra/penumbra from the apparent discs of Sun and
Earth, Montenbruck & Gill 2000, section 3.4.2). For LEO the penumbra lasts ~8-10 s at each
transition; the cylinder's edge falls within ~1 s of its middle.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from twin.physics.geometry import broadcast_vectors
from twin.physics.orbits import teme_to_ecef
from twin.units import (
    AU_M,
    DAY_S,
    EARTH_MU_M3_PER_S2,
    J2000_JD,
    SUN_RADIUS_M,
    UNIX_EPOCH_JD,
    WGS84_A_M,
)

__all__ = [
    "beta_angle_rad",
    "beta_angle_from_state_rad",
    "eclipse_fraction",
    "eclipse_duration_s",
    "load_skyfield",
    "orbital_period_s",
    "sun_position_ecef_m",
    "sun_position_ecef_m_de421",
    "sun_position_teme_m",
    "sunlit_fraction",
]


# --- Skyfield / DE421 (offline) -------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def load_skyfield():
    """``(timescale, ephemeris)`` from skyfield-data's bundled files, never downloading.

    The timescale uses skyfield's built-in UT1/leap-second tables (``builtin=True``);
    skyfield-data's ``finals2000A.all`` is not needed (its expiry warning is silenced).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # skyfield-data's finals2000A expiry
        from skyfield.api import Loader
        from skyfield_data import get_skyfield_data_path

        loader = Loader(get_skyfield_data_path(), expire=False, verbose=False)
        timescale = loader.timescale(builtin=True)
        ephemeris = loader("de421.bsp")
    return timescale, ephemeris


def _skyfield_time(jd, fr):
    timescale, _ = load_skyfield()
    jd = np.asarray(jd, dtype=float)
    fr = np.asarray(fr, dtype=float)
    days = jd - UNIX_EPOCH_JD
    whole = np.floor(days)
    seconds = ((days - whole) + fr) * DAY_S
    return timescale.utc(1970, 1, 1 + whole, 0, 0, seconds)


def sun_position_ecef_m_de421(jd, fr):
    """Geometric Sun position relative to the Earth's centre, Earth-fixed (ITRS), metres.

    DE421 via skyfield (offline). Shapes: ``jd``/``fr`` broadcast to ``B``; returns
    ``(3, *B)``. Geometric (no light time or aberration), as skyfield's own ``is_sunlit`` uses.
    Source: Folkner et al., "The Planetary and Lunar Ephemeris DE 421", JPL IOM 343R-08-003
    (2008); skyfield ITRS frame (IERS 2010 conventions).
    """
    from skyfield.framelib import itrs

    _, ephemeris = load_skyfield()
    jd_b, fr_b = np.broadcast_arrays(np.asarray(jd, float), np.asarray(fr, float))
    t = _skyfield_time(jd_b.ravel(), fr_b.ravel())
    xyz = (ephemeris["sun"] - ephemeris["earth"]).at(t).frame_xyz(itrs).m
    return np.asarray(xyz).reshape((3, *jd_b.shape))


# --- Analytic Sun ------------------------------------------------------------------------


def sun_position_teme_m(jd, fr):
    """Sun position relative to the Earth's centre, mean equator and equinox of date, metres.

    Astronomical Almanac low-precision formula (e.g. *The Astronomical Almanac* 2019, p. C5;
    Vallado 4th ed., Algorithm 29): ``n = JD - 2451545``, ``L = 280.460 + 0.9856474 n`` deg,
    ``g = 357.528 + 0.9856003 n`` deg, ``lambda = L + 1.915 sin g + 0.020 sin 2g``,
    ``eps = 23.439 - 4e-7 n``, ``R = 1.00014 - 0.01671 cos g - 0.00014 cos 2g`` AU. Accuracy
    0.01 deg (1950-2050). This frame differs from SGP4's TEME by nutation in right ascension
    (< 1.2 arcsec), far below the formula's error. Shapes: ``jd``/``fr`` broadcast to ``B``;
    returns ``(3, *B)``.
    """
    n = (np.asarray(jd, dtype=float) - J2000_JD) + np.asarray(fr, dtype=float)
    deg = math.pi / 180.0
    mean_long = (280.460 + 0.985_647_4 * n) * deg
    anomaly = (357.528 + 0.985_600_3 * n) * deg
    ecl_long = mean_long + (1.915 * np.sin(anomaly) + 0.020 * np.sin(2.0 * anomaly)) * deg
    obliquity = (23.439 - 4.0e-7 * n) * deg
    dist_m = (1.000_14 - 0.016_71 * np.cos(anomaly) - 0.000_14 * np.cos(2.0 * anomaly)) * AU_M
    return np.stack(
        [
            dist_m * np.cos(ecl_long),
            dist_m * np.cos(obliquity) * np.sin(ecl_long),
            dist_m * np.sin(obliquity) * np.sin(ecl_long),
        ]
    )


def sun_position_ecef_m(jd, fr, dut1_s=0.0):
    """Analytic Sun position (see :func:`sun_position_teme_m`) rotated Earth-fixed by GMST.

    Shapes: ``jd``/``fr``/``dut1_s`` broadcast to ``B``; returns ``(3, *B)`` metres. Agrees with
    :func:`sun_position_ecef_m_de421` in direction to ~0.01 deg.
    """
    pos, _ = teme_to_ecef(sun_position_teme_m(jd, fr), None, jd, fr, dut1_s)
    return pos


# --- Shadow ----------------------------------------------------------------------------------


def sunlit_fraction(position_m, sun_position_m, model: str = "conical", earth_radius_m=WGS84_A_M):
    """Fraction of the Sun's disc visible from a position near the Earth (0 = umbra, 1 = lit).

    ``position_m`` and ``sun_position_m`` are Earth-centred vectors in the same frame (ECEF,
    TEME, GCRS...), shapes ``(3, ...)`` broadcasting; returns ``...`` in [0, 1].
    ``model="cylindrical"``: 0 when behind the Earth (``r . s_hat < 0``) and within
    ``earth_radius_m`` of the Sun-Earth line, else 1 (Vallado 4th ed., Algorithm 34, SHADOW,
    cylindrical case). ``model="conical"``: the apparent Sun disc (radius ``a``) partly covered
    by the Earth disc (radius ``b``) at centre separation ``c``, with the overlap area of two
    circles (Montenbruck & Gill, *Satellite Orbits* (2000), eqs. 3.85-3.87). The Earth is a
    sphere of ``earth_radius_m`` and the atmosphere is transparent.
    """
    r = np.asarray(position_m, dtype=float)
    s = np.asarray(sun_position_m, dtype=float)
    if r.ndim == 0 or r.shape[0] != 3 or s.ndim == 0 or s.shape[0] != 3:
        raise ValueError(
            f"position_m and sun_position_m must have shape (3, ...), got {r.shape}, {s.shape}"
        )
    r, s = broadcast_vectors(r, s)
    if model == "cylindrical":
        s_norm = np.sqrt(np.einsum("i...,i...->...", s, s))
        along = np.einsum("i...,i...->...", r, s) / s_norm
        r2 = np.einsum("i...,i...->...", r, r)
        perp2 = r2 - along * along
        shadow = (along < 0.0) & (perp2 < earth_radius_m * earth_radius_m)
        return np.where(shadow, 0.0, 1.0)
    if model != "conical":
        raise ValueError(f"model must be 'conical' or 'cylindrical', got {model!r}")
    to_sun = s - r
    d_sun = np.sqrt(np.einsum("i...,i...->...", to_sun, to_sun))
    d_earth = np.sqrt(np.einsum("i...,i...->...", r, r))
    a = np.arcsin(np.minimum(SUN_RADIUS_M / d_sun, 1.0))
    b = np.arcsin(np.minimum(earth_radius_m / d_earth, 1.0))
    cos_c = -np.einsum("i...,i...->...", r, to_sun) / (d_earth * d_sun)
    c = np.arccos(np.clip(cos_c, -1.0, 1.0))
    cases = [c >= a + b, c <= b - a, c <= a - b]
    fraction = np.select(cases, [1.0, 0.0, 1.0 - (b * b) / (a * a)], default=0.0)
    # the overlap area only where the discs partly overlap (penumbra: a few satellites of a
    # shell at any time); elementwise, so the same values as computing it everywhere
    penumbra = ~(cases[0] | cases[1] | cases[2])
    if np.any(penumbra):
        a, b, c = a[penumbra], b[penumbra], c[penumbra]
        with np.errstate(invalid="ignore", divide="ignore"):
            x = (c * c + a * a - b * b) / (2.0 * c)
            y = np.sqrt(np.maximum(a * a - x * x, 0.0))
            area = (
                a * a * np.arccos(np.clip(x / a, -1.0, 1.0))
                + b * b * np.arccos(np.clip((c - x) / b, -1.0, 1.0))
                - c * y
            )
            partial = 1.0 - area / (np.pi * a * a)
        fraction[penumbra] = np.clip(partial, 0.0, 1.0)
    return fraction


# --- Circular-orbit formulas -------------------------------------------------------------


def orbital_period_s(altitude_m, earth_radius_m=WGS84_A_M, mu_m3_per_s2=EARTH_MU_M3_PER_S2):
    """Kepler period ``2 pi sqrt(a^3 / mu)`` of a circular orbit, ``a = R + h``. Broadcasts; s.

    Source: Kepler's third law (Vallado 4th ed., eq. 1-27). Defaults: WGS84 equatorial radius,
    WGS84/IERS GM.
    """
    h = np.asarray(altitude_m, dtype=float)
    if np.any(h < 0):
        raise ValueError(f"altitude_m must be >= 0 (metres above the surface), got {h!r}")
    a = earth_radius_m + h
    return 2.0 * np.pi * np.sqrt(a**3 / mu_m3_per_s2)


def eclipse_fraction(altitude_m, beta_angle_rad=0.0, earth_radius_m=WGS84_A_M):
    """Fraction of a circular orbit spent in the Earth's cylindrical shadow.

    ``f = arccos( sqrt(h^2 + 2 R h) / ((R + h) cos beta) ) / pi`` for ``|beta| < beta*``,
    ``sin beta* = R / (R + h)``, else 0. Broadcasts over ``altitude_m`` (m) and
    ``beta_angle_rad`` (angle between the orbit plane and the Sun direction). At 550 km and
    beta = 0 it is 0.3723 (35.6 min of a 95.65 min orbit). Source: Wertz & Larson (eds.),
    *Space Mission Analysis and Design*, 3rd ed. (1999), eq. 5-4 and section 5.1 (eclipse of a
    circular orbit); Wertz (ed.), *Spacecraft Attitude Determination and Control* (1978).
    """
    h = np.asarray(altitude_m, dtype=float)
    beta = np.asarray(beta_angle_rad, dtype=float)
    if np.any(h <= 0):
        raise ValueError(f"altitude_m must be > 0 (metres above the surface), got {h!r}")
    if np.any(np.abs(beta) > 0.5 * np.pi + 1e-12):
        raise ValueError(
            f"beta_angle_rad must be within [-pi/2, pi/2], got {beta!r} (degrees passed?)"
        )
    r = earth_radius_m + h
    with np.errstate(divide="ignore"):
        ratio = np.sqrt(h * h + 2.0 * earth_radius_m * h) / (r * np.cos(beta))
    return np.where(ratio < 1.0, np.arccos(np.minimum(ratio, 1.0)) / np.pi, 0.0)


def eclipse_duration_s(altitude_m, beta_angle_rad=0.0, earth_radius_m=WGS84_A_M):
    """Time per orbit in the cylindrical shadow: :func:`eclipse_fraction` x period. Seconds."""
    return eclipse_fraction(altitude_m, beta_angle_rad, earth_radius_m) * orbital_period_s(
        altitude_m, earth_radius_m
    )


def beta_angle_rad(inclination_rad, raan_rad, sun_position_m):
    """Solar beta angle: elevation of the Sun above the orbit plane.

    ``beta = arcsin(n_hat . s_hat)`` with orbit normal
    ``n_hat = (sin i sin Omega, -sin i cos Omega, cos i)`` in an inertial equatorial frame
    (TEME or GCRS; RAAN measured in that frame) and ``s_hat`` the Sun direction in the same
    frame (e.g. :func:`sun_position_teme_m`). Shapes: ``inclination_rad``/``raan_rad``
    broadcast with the trailing shape of ``sun_position_m`` ``(3, ...)``; radians.
    Source: Vallado 4th ed., section 5.3 (beta angle); SMAD 3rd ed., section 5.1.
    """
    i = np.asarray(inclination_rad, dtype=float)
    raan = np.asarray(raan_rad, dtype=float)
    s = np.asarray(sun_position_m, dtype=float)
    normal = np.stack(
        np.broadcast_arrays(np.sin(i) * np.sin(raan), -np.sin(i) * np.cos(raan), np.cos(i))
    )
    return _beta(*broadcast_vectors(normal, s))


def beta_angle_from_state_rad(position_m, velocity_m_per_s, sun_position_m):
    """Beta angle from an inertial state: ``arcsin((r x v) . s / (|r x v| |s|))``.

    All three are ``(3, ...)`` in the same *inertial* frame (TEME from
    :func:`~twin.physics.orbits.propagate_teme`, not Earth-fixed); broadcasts; radians.
    """
    r, v, s = broadcast_vectors(position_m, velocity_m_per_s, sun_position_m)
    r, v = np.broadcast_arrays(r, v)
    return _beta(*broadcast_vectors(np.cross(r, v, axis=0), s))


def _beta(normal, sun):
    dot = np.einsum("i...,i...->...", normal, sun)
    norms = np.sqrt(np.einsum("i...,i...->...", normal, normal)) * np.sqrt(
        np.einsum("i...,i...->...", sun, sun)
    )
    return np.arcsin(np.clip(dot / norms, -1.0, 1.0))
