"""High-altitude platform stations (HAPS): quasi-stationary platforms with station-keeping drift.

A HAPS is "a station on an object at an altitude of 20 to 50 km and at a specified, nominal,
fixed point relative to the Earth" (ITU Radio Regulations, Article 1.66A); platforms in practice
fly at 17-22 km (Grace, Tozer & Daly, "Communications from high altitude platforms - a
complementary or disruptive technology?", Univ. of York, 2000). It holds its station but never
sits still: solar aircraft fly a loiter circle, airships drift with the stratospheric wind within
a station-keeping radius (a few km is the usual design figure, a scenario parameter here).
Two drift models:

* ``"circle"``: a loiter circle of radius ``drift_radius_m`` flown once per
  ``drift_period_s`` (a solar aircraft's orbit);
* ``"wander"``: a smooth, seeded quasi-random drift: a sum of ``n_modes`` rotating vectors with
  random periods between ``drift_period_s`` and ``4 * drift_period_s``, random phases, senses
  and weights summing to 1, so the offset never exceeds ``drift_radius_m`` (triangle
  inequality). It is a closed-form function of time, so positions do not depend on the tick
  length and any instant can be evaluated on its own (which the twin's determinism requires).

Time is seconds after the scenario start. Randomness only through a ``numpy.random.Generator``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from twin.physics.geometry import enu_basis, geodetic_to_ecef_m
from twin.units import WGS84_A_M, WGS84_E2

__all__ = ["HapsDrift", "HapsStates", "haps_drift", "haps_states_ecef"]


class HapsDrift(NamedTuple):
    """Station-keeping drift parameters, per platform (H, K) arrays for K rotating modes."""

    amplitude_m: np.ndarray  # (H, K), rows sum to the drift radius
    angular_rate_rad_per_s: np.ndarray  # (H, K), signed (sense of rotation)
    phase_rad: np.ndarray  # (H, K)


class HapsStates(NamedTuple):
    """Earth-fixed states of H platforms at T instants."""

    position_m: np.ndarray  # (3, H, T) ECEF
    velocity_m_per_s: np.ndarray  # (3, H, T) ECEF (relative to the rotating Earth)


def haps_drift(
    n_platforms: int,
    drift_radius_m=2_000.0,
    drift_period_s=1_800.0,
    *,
    model: str = "circle",
    rng: np.random.Generator | None = None,
    n_modes: int = 4,
) -> HapsDrift:
    """Draw the drift parameters of ``n_platforms`` HAPS (see the module notes for the models).

    ``drift_radius_m`` and ``drift_period_s`` are scalars or (H,) arrays. ``"circle"`` uses
    random starting phases when ``rng`` is given, phase 0 otherwise; ``"wander"`` needs ``rng``.
    """
    h = int(n_platforms)
    if h < 1:
        raise ValueError(f"n_platforms must be >= 1, got {n_platforms!r}")
    radius = np.broadcast_to(np.asarray(drift_radius_m, dtype=float), (h,))
    period = np.broadcast_to(np.asarray(drift_period_s, dtype=float), (h,))
    if np.any(radius < 0):
        raise ValueError(f"drift_radius_m must be >= 0, got {drift_radius_m!r}")
    if np.any(period <= 0):
        raise ValueError(f"drift_period_s must be > 0, got {drift_period_s!r}")
    base_rate = 2.0 * np.pi / period  # (H,)
    if model == "circle":
        phase = np.zeros((h, 1)) if rng is None else rng.uniform(0.0, 2.0 * np.pi, (h, 1))
        return HapsDrift(radius[:, None].copy(), base_rate[:, None].copy(), phase)
    if model == "wander":
        if rng is None:
            raise ValueError(
                "model='wander' is random: pass rng=numpy.random.default_rng(seed) for a "
                "deterministic drift"
            )
        if n_modes < 1:
            raise ValueError(f"n_modes must be >= 1, got {n_modes!r}")
        weights = rng.dirichlet(np.ones(n_modes), size=h)  # (H, K), rows sum to 1
        slow = rng.uniform(1.0, 4.0, (h, n_modes))  # period multipliers
        sense = rng.choice([-1.0, 1.0], (h, n_modes))
        phase = rng.uniform(0.0, 2.0 * np.pi, (h, n_modes))
        return HapsDrift(weights * radius[:, None], sense * base_rate[:, None] / slow, phase)
    raise ValueError(f"model must be 'circle' or 'wander', got {model!r}")


def haps_states_ecef(
    station_lat_rad,
    station_lon_rad,
    station_alt_m,
    t_s,
    drift: HapsDrift | None = None,
    *,
    vertical_amplitude_m: float = 0.0,
) -> HapsStates:
    """ECEF positions and velocities of H HAPS at T instants.

    Shapes: station arrays broadcast to (H,) (scalars give H = 1); ``t_s`` is (T,) seconds
    after the scenario start; returns :class:`HapsStates` with ``(3, H, T)`` arrays. ``drift``
    from :func:`haps_drift` (None: platforms hold their stations exactly). The horizontal
    offset ``(east, north) = sum_k A_k (cos(w_k t + p_k), sin(w_k t + p_k))`` is applied on the
    ellipsoid (``dlat = north / (M + h)``, ``dlon = east / ((N + h) cos lat)``, Vallado 4th ed.
    eq. 3-7 radii of curvature), so the altitude stays exact; an optional vertical oscillation
    ``vertical_amplitude_m * sin(w_0 t + p_0)`` rides on top.
    """
    lat = np.atleast_1d(np.asarray(station_lat_rad, dtype=float))
    lon = np.atleast_1d(np.asarray(station_lon_rad, dtype=float))
    alt = np.atleast_1d(np.asarray(station_alt_m, dtype=float))
    lat, lon, alt = np.broadcast_arrays(lat, lon, alt)
    if lat.ndim != 1:
        raise ValueError(f"station arrays must be scalars or (H,), got shape {lat.shape}")
    if np.any(np.abs(lat) >= 0.5 * np.pi):
        raise ValueError("station_lat_rad must be strictly within (-pi/2, pi/2) (degrees passed?)")
    t = np.atleast_1d(np.asarray(t_s, dtype=float))
    if t.ndim != 1:
        raise ValueError(f"t_s must be a scalar or (T,), got shape {t.shape}")
    n_h = lat.shape[0]
    if drift is None:
        drift = HapsDrift(np.zeros((n_h, 1)), np.zeros((n_h, 1)), np.zeros((n_h, 1)))
    if drift.amplitude_m.shape[0] != n_h:
        raise ValueError(
            f"drift is for {drift.amplitude_m.shape[0]} platforms but {n_h} stations were given"
        )
    amp = drift.amplitude_m[:, :, None]  # (H, K, 1)
    rate = drift.angular_rate_rad_per_s[:, :, None]
    angle = rate * t[None, None, :] + drift.phase_rad[:, :, None]  # (H, K, T)
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    east = np.sum(amp * cos_a, axis=1)  # (H, T)
    north = np.sum(amp * sin_a, axis=1)
    v_east = np.sum(-amp * rate * sin_a, axis=1)
    v_north = np.sum(amp * rate * cos_a, axis=1)
    up = vertical_amplitude_m * np.sin(angle[:, 0, :])
    v_up = vertical_amplitude_m * rate[:, 0, :] * np.cos(angle[:, 0, :])

    sin_lat = np.sin(lat)[:, None]
    w2 = 1.0 - WGS84_E2 * sin_lat * sin_lat
    n_radius = WGS84_A_M / np.sqrt(w2)
    m_radius = WGS84_A_M * (1.0 - WGS84_E2) / w2**1.5
    h = alt[:, None] + up
    lat_t = lat[:, None] + north / (m_radius + h)
    lon_t = lon[:, None] + east / ((n_radius + h) * np.cos(lat)[:, None])
    position = geodetic_to_ecef_m(lat_t, lon_t, h)  # (3, H, T)
    basis = enu_basis(lat, lon)  # (3 [e, n, u], 3 [xyz], H)
    velocity = (
        basis[0][:, :, None] * v_east[None]
        + basis[1][:, :, None] * v_north[None]
        + basis[2][:, :, None] * v_up[None]
    )
    return HapsStates(position, velocity)
