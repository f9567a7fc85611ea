"""Ka-band RF link for the classical fallback: free-space loss, rain, gases, margin, capacity.

The classical RF link carries control traffic when the optical link is blocked (main paper,
Sec. "Hybrid FSO/RF fallback"); it carries no quantum key. Its budget, in dB:

    C/N0 [dBHz] = EIRP [dBW] - FSPL - A_rain - A_gas - L_other + G/T [dB/K] - 10 log10(k_B)
    C/N  [dB]   = C/N0 - 10 log10(B)
    C = B log2(1 + C/N)  (Shannon)

Sources
-------
- Free-space path loss (Friis transmission equation): ITU-R P.525-4 (2019), eq. (4):
  L_bf = 20 log10(4 pi d / lambda) dB.
- Rain specific attenuation gamma_R = k R^alpha: ITU-R P.838-3 (03/2005), eqs. (1)-(5), with the
  curve-fitting coefficients of its Tables 1-4 (k_H, k_V, alpha_H, alpha_V as functions of
  frequency, 1-1000 GHz) and the polarisation/elevation combination of eqs. (4)-(5).
  The recommendation's tabulated values (e.g. 30 GHz: k_H = 0.2403, alpha_H = 0.9485,
  k_V = 0.2291, alpha_V = 0.9129) are reproduced by these equations (see tests).
- Effective path length through rain: ITU-R P.618-13 (12/2017), Sec. 2.2.1.1, steps 1-10 (slant
  path below the rain height, horizontal reduction factor r_0.01, vertical adjustment factor
  nu_0.01). Used here with the instantaneous rain rate in place of R_0.01, the usual
  approximation for a time-stepped simulation of a given weather state.
- Gaseous absorption: a fixed zenith value scaled by the cosecant of the elevation, the
  slant-path approximation of ITU-R P.676 (Annex 2) for elevations of 10 deg and more. Default
  zenith attenuation 0.4 dB: the zenith attenuation of the mean annual global reference
  atmosphere in ITU-R P.676 (its zenith-attenuation figure) is a few tenths of a dB in Ka band
  (largest near the 22.2 GHz water-vapour line) for a sea-level station; it is a parameter.
"""

from __future__ import annotations

import numpy as np

from twin.units import BOLTZMANN_J_PER_K, DEG, GHZ, KM, SPEED_OF_LIGHT_M_PER_S

__all__ = [
    "free_space_path_loss_db",
    "rain_coefficients_p838",
    "rain_specific_attenuation_db_per_km",
    "rain_effective_path_length_m",
    "rain_attenuation_db",
    "gaseous_attenuation_db",
    "carrier_to_noise_density_dbhz",
    "carrier_to_noise_db",
    "link_margin_db",
    "shannon_capacity_bps",
    "BOLTZMANN_DBW_PER_K_HZ",
    "GASEOUS_ZENITH_ATTENUATION_KA_DB",
]

#: 10 log10(k_B) = -228.6 dBW/(K Hz), the thermal noise density per kelvin.
BOLTZMANN_DBW_PER_K_HZ = float(10.0 * np.log10(BOLTZMANN_J_PER_K))

#: Zenith gaseous attenuation in Ka band for the mean annual global reference atmosphere at sea
#: level, a few tenths of a dB (ITU-R P.676, zenith attenuation figure, 20-30 GHz); a default.
GASEOUS_ZENITH_ATTENUATION_KA_DB = 0.4

# --- ITU-R P.838-3, Tables 1-4: coefficients of eqs. (2) (log10 k) and (3) (alpha) ------------
# Each entry: (a_j, b_j, c_j) for the Gaussian terms, then (m, c) of the linear term in log10 f.
_P838_KH = (
    (-5.33980, -0.35351, -0.23789, -0.94158),
    (-0.10008, 1.26970, 0.86036, 0.64552),
    (1.13098, 0.45400, 0.15354, 0.16817),
    -0.18961,
    0.71147,
)
_P838_KV = (
    (-3.80595, -3.44965, -0.39902, 0.50167),
    (0.56934, -0.22911, 0.73042, 1.07319),
    (0.81061, 0.51059, 0.11899, 0.27195),
    -0.16398,
    0.63297,
)
_P838_ALPHA_H = (
    (-0.14318, 0.29591, 0.32177, -5.37610, 16.1721),
    (1.82442, 0.77564, 0.63773, -0.96230, -3.29980),
    (-0.55187, 0.19822, 0.13164, 1.47828, 3.43990),
    0.67849,
    -1.95537,
)
_P838_ALPHA_V = (
    (-0.07771, 0.56727, -0.20238, -48.2991, 48.5833),
    (2.33840, 0.95545, 1.14520, 0.791669, 0.791459),
    (-0.76284, 0.54039, 0.26809, 0.116226, 0.116479),
    -0.053739,
    0.83433,
)


def _p838_fit(table, log10_f_ghz: np.ndarray) -> np.ndarray:
    a, b, c, m, const = table
    total = m * log10_f_ghz + const
    for aj, bj, cj in zip(a, b, c, strict=True):
        total = total + aj * np.exp(-(((log10_f_ghz - bj) / cj) ** 2))
    return total


def _frequency_ghz(frequency_hz) -> np.ndarray:
    f = np.asarray(frequency_hz, dtype=float)
    if np.any(~np.isfinite(f)) or np.any(f <= 0):
        raise ValueError(f"frequency_hz must be positive and finite (hertz), got {f}")
    f_ghz = f / GHZ
    if np.any((f_ghz < 1.0) | (f_ghz > 1000.0)):
        raise ValueError(
            "ITU-R P.838-3 covers 1-1000 GHz; frequency_hz must be within [1e9, 1e12], got "
            f"{np.min(f)}..{np.max(f)} (GHz passed? multiply by twin.units.GHZ)"
        )
    return f_ghz


def _check_elevation(elevation_rad) -> np.ndarray:
    el = np.asarray(elevation_rad, dtype=float)
    if np.any((el < 0) | (el > np.pi / 2 + 1e-12)):
        raise ValueError(
            f"elevation_rad must be within [0, pi/2], got {el} (degrees passed? use twin.units.DEG)"
        )
    return el


def free_space_path_loss_db(range_m, frequency_hz) -> np.ndarray:
    """Free-space (spreading) loss 20 log10(4 pi d f / c) in dB (ITU-R P.525-4 eq. (4)).

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    d = np.asarray(range_m, dtype=float)
    f = np.asarray(frequency_hz, dtype=float)
    if np.any(d <= 0) or np.any(f <= 0):
        raise ValueError("range_m and frequency_hz must be positive (metres, hertz)")
    return 20.0 * np.log10(4.0 * np.pi * d * f / SPEED_OF_LIGHT_M_PER_S)


def rain_coefficients_p838(
    frequency_hz, elevation_rad=0.0, polarization_tilt_rad=np.pi / 4
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (k, alpha) of gamma_R = k R^alpha, ITU-R P.838-3 eqs. (2)-(5).

    k_H, k_V, alpha_H, alpha_V from the recommendation's curve fits (Tables 1-4), combined for a
    path at ``elevation_rad`` and a polarisation tilt ``polarization_tilt_rad`` relative to the
    horizontal (0: horizontal, pi/2: vertical, pi/4: circular, the default for satellite links):
        k     = [k_H + k_V + (k_H - k_V) cos^2(theta) cos(2 tau)] / 2
        alpha = [k_H a_H + k_V a_V + (k_H a_H - k_V a_V) cos^2(theta) cos(2 tau)] / (2 k).

    Shapes: all arguments broadcast; returns (k, alpha), each of the broadcast shape;
    k in (dB/km) / (mm/h)^alpha.
    """
    log_f = np.log10(_frequency_ghz(frequency_hz))
    el = _check_elevation(elevation_rad)
    tau = np.asarray(polarization_tilt_rad, dtype=float)
    k_h = 10.0 ** _p838_fit(_P838_KH, log_f)
    k_v = 10.0 ** _p838_fit(_P838_KV, log_f)
    a_h = _p838_fit(_P838_ALPHA_H, log_f)
    a_v = _p838_fit(_P838_ALPHA_V, log_f)
    mix = np.cos(el) ** 2 * np.cos(2.0 * tau)
    k = 0.5 * (k_h + k_v + (k_h - k_v) * mix)
    alpha = (k_h * a_h + k_v * a_v + (k_h * a_h - k_v * a_v) * mix) / (2.0 * k)
    return k, alpha


def rain_specific_attenuation_db_per_km(
    rain_rate_mm_per_h, frequency_hz, elevation_rad=0.0, polarization_tilt_rad=np.pi / 4
) -> np.ndarray:
    """Specific attenuation gamma_R = k R^alpha of rain, in dB/km (ITU-R P.838-3 eq. (1)).

    ``rain_rate_mm_per_h`` in mm/h (the unit of the recommendation). Zero rain gives 0 dB/km.
    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    rate = np.asarray(rain_rate_mm_per_h, dtype=float)
    if np.any(rate < 0) or np.any(~np.isfinite(rate)):
        raise ValueError(f"rain_rate_mm_per_h must be finite and >= 0, got {rate}")
    k, alpha = rain_coefficients_p838(frequency_hz, elevation_rad, polarization_tilt_rad)
    return k * rate**alpha


def rain_effective_path_length_m(
    elevation_rad,
    frequency_hz,
    rain_rate_mm_per_h,
    *,
    rain_height_m=3_000.0,
    station_altitude_m=0.0,
    station_latitude_rad=0.0,
    polarization_tilt_rad=np.pi / 4,
) -> np.ndarray:
    """Effective path length L_E through rain of an Earth-space path, in m (ITU-R P.618-13).

    Steps 2-8 of P.618-13 Sec. 2.2.1.1 (lengths in km inside, as in the recommendation):
    L_s = (h_R - h_s) / sin(theta) (theta >= 5 deg); L_G = L_s cos(theta);
    r = 1 / (1 + 0.78 sqrt(L_G gamma_R / f) - 0.38 (1 - exp(-2 L_G)));
    zeta = atan((h_R - h_s) / (L_G r)); L_R = L_G r / cos(theta) if zeta > theta
    else (h_R - h_s) / sin(theta); chi = 36 - |phi| deg for |phi| < 36 deg else 0;
    nu = 1 / (1 + sqrt(sin theta) (31 (1 - exp(-theta / (1 + chi))) sqrt(L_R gamma_R) / f^2
    - 0.45)); L_E = L_R nu. ``rain_height_m`` h_R is ITU-R P.839 (h_0 + 360 m; ~3-5 km); the
    instantaneous rain rate stands in for R_0.01. No rain, or a station above the rain, gives 0.

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    el = _check_elevation(elevation_rad)
    if np.any(el < 5.0 * DEG):
        raise ValueError(
            "rain_effective_path_length_m follows ITU-R P.618 for elevations >= 5 deg, got "
            f"{np.min(el) / DEG:.2f} deg"
        )
    f_ghz = _frequency_ghz(frequency_hz)
    rate = np.asarray(rain_rate_mm_per_h, dtype=float)
    gamma = rain_specific_attenuation_db_per_km(rate, frequency_hz, el, polarization_tilt_rad)
    dh_km = np.maximum(np.asarray(rain_height_m, float) - np.asarray(station_altitude_m, float), 0)
    dh_km = dh_km / KM
    sin_el = np.sin(el)
    cos_el = np.cos(el)
    ls_km = dh_km / sin_el
    lg_km = ls_km * cos_el
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1.0 / (
            1.0 + 0.78 * np.sqrt(lg_km * gamma / f_ghz) - 0.38 * (1.0 - np.exp(-2.0 * lg_km))
        )
        zeta = np.arctan2(dh_km, lg_km * r)
        lr_km = np.where(zeta > el, lg_km * r / cos_el, dh_km / sin_el)
    lat_deg = np.abs(np.asarray(station_latitude_rad, dtype=float)) / DEG
    chi_deg = np.where(lat_deg < 36.0, 36.0 - lat_deg, 0.0)
    el_deg = el / DEG
    nu = 1.0 / (
        1.0
        + np.sqrt(sin_el)
        * (
            31.0 * (1.0 - np.exp(-el_deg / (1.0 + chi_deg))) * np.sqrt(lr_km * gamma) / f_ghz**2
            - 0.45
        )
    )
    le_km = np.where((gamma > 0) & (dh_km > 0), lr_km * nu, 0.0)
    return le_km * KM


def rain_attenuation_db(
    elevation_rad,
    frequency_hz,
    rain_rate_mm_per_h,
    *,
    rain_height_m=3_000.0,
    station_altitude_m=0.0,
    station_latitude_rad=0.0,
    polarization_tilt_rad=np.pi / 4,
) -> np.ndarray:
    """Rain attenuation of an Earth-space path, gamma_R L_E in dB (ITU-R P.838-3, P.618-13).

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    el = _check_elevation(elevation_rad)
    gamma = rain_specific_attenuation_db_per_km(
        rain_rate_mm_per_h, frequency_hz, el, polarization_tilt_rad
    )
    le_m = rain_effective_path_length_m(
        el,
        frequency_hz,
        rain_rate_mm_per_h,
        rain_height_m=rain_height_m,
        station_altitude_m=station_altitude_m,
        station_latitude_rad=station_latitude_rad,
        polarization_tilt_rad=polarization_tilt_rad,
    )
    return gamma * le_m / KM


def gaseous_attenuation_db(
    elevation_rad, zenith_attenuation_db=GASEOUS_ZENITH_ATTENUATION_KA_DB
) -> np.ndarray:
    """Gaseous absorption of a slant path: A_zenith / sin(elevation), in dB.

    Cosecant law (ITU-R P.676 Annex 2 slant-path approximation), valid for elevations >= 10 deg
    (below, the flat-Earth airmass overestimates; sin(10 deg) is used as a floor).
    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    el = _check_elevation(elevation_rad)
    a_z = np.asarray(zenith_attenuation_db, dtype=float)
    if np.any(a_z < 0):
        raise ValueError(f"zenith_attenuation_db must be >= 0, got {a_z}")
    return a_z / np.maximum(np.sin(el), np.sin(10.0 * DEG))


def carrier_to_noise_density_dbhz(eirp_dbw, g_over_t_db_per_k, path_loss_db) -> np.ndarray:
    """C/N0 = EIRP - L + G/T - 10 log10(k_B), in dBHz.

    ``path_loss_db`` is the sum of all propagation and implementation losses (FSPL, rain, gases,
    pointing, polarisation). Shapes: all arguments broadcast.
    """
    return (
        np.asarray(eirp_dbw, dtype=float)
        - np.asarray(path_loss_db, dtype=float)
        + np.asarray(g_over_t_db_per_k, dtype=float)
        - BOLTZMANN_DBW_PER_K_HZ
    )


def carrier_to_noise_db(cn0_dbhz, bandwidth_hz) -> np.ndarray:
    """C/N = C/N0 - 10 log10(B), in dB, for a noise bandwidth B in Hz. Broadcasts."""
    b = np.asarray(bandwidth_hz, dtype=float)
    if np.any(b <= 0):
        raise ValueError(f"bandwidth_hz must be > 0 (hertz), got {b}")
    return np.asarray(cn0_dbhz, dtype=float) - 10.0 * np.log10(b)


def link_margin_db(cn_db, required_cn_db) -> np.ndarray:
    """Link margin: achieved minus required C/N (or Eb/N0), in dB; < 0 means the link fails."""
    return np.asarray(cn_db, dtype=float) - np.asarray(required_cn_db, dtype=float)


def shannon_capacity_bps(bandwidth_hz, cn_db) -> np.ndarray:
    """Shannon capacity B log2(1 + C/N), in bit/s (Shannon 1948, Bell Syst. Tech. J. 27).

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    b = np.asarray(bandwidth_hz, dtype=float)
    if np.any(b <= 0):
        raise ValueError(f"bandwidth_hz must be > 0 (hertz), got {b}")
    snr = 10.0 ** (np.asarray(cn_db, dtype=float) / 10.0)
    return b * np.log2(1.0 + snr)
