"""Carbon: grid carbon intensity per region, its daily profile, and the carbon of a power draw.

The main paper's carbon cost (eq. 5) is ``E_carbon = sum_n P_load^n(t) * CI_n(t)``: the power of
each node times the grid carbon intensity (gCO2e/kWh) of the region powering it. Annual averages
come from ``data/grid_carbon_intensity.csv`` (Ember via Our World in Data; source lines at the
top of the file), loaded once.

Daily profile (an assumption, documented here): grid intensity is not flat over a day. Solar-heavy
grids dip around solar noon, when photovoltaics displace fossil generation, and rise at night.
We model the intensity at local solar time ``t`` as

    CI(t) = CI_annual * (1 - A * cos(2 pi (t - 12 h) / 24 h))

a single 24-h harmonic with its minimum at solar noon. Its mean over a day is exactly 1 (also
over any set of equally spaced samples per day), so the annual average is preserved. The
amplitude ``A`` per region (``DIURNAL_AMPLITUDE``) is an assumption scaled to the region's solar
share of generation (Ember 2023: highest in Germany and Poland, ~0 in Norway and Iceland, whose
hydro grids are flat). Carbon-aware controllers only need the shape to be right in sign and
order of magnitude; real-time data (e.g. the NESO Carbon Intensity API, main paper ref. [15])
would replace it.

Units: power W, time s, intensity gCO2e/kWh (the unit of every published grid figure; it is
converted at the boundary by ``KWH_J``), carbon in grams.
"""

from __future__ import annotations

import csv
import io
import math
from functools import cache
from importlib import resources

import numpy as np

from twin.units import DAY_S, HOUR_S, KWH_J

__all__ = [
    "DIURNAL_AMPLITUDE",
    "annual_carbon_intensity_g_per_kwh",
    "carbon_g",
    "carbon_intensity_g_per_kwh",
    "carbon_per_bit_g",
    "diurnal_amplitude",
    "diurnal_factor",
    "grid_regions",
    "local_solar_time_s",
]

_CSV_NAME = "grid_carbon_intensity.csv"

# Relative amplitude of the midday dip (assumption; see the module docstring). Regions missing
# here get _DEFAULT_AMPLITUDE.
DIURNAL_AMPLITUDE: dict[str, float] = {
    "DE": 0.20,  # ~12 % solar in 2023: strongest midday dip of the list
    "PL": 0.15,
    "IN": 0.10,
    "GB": 0.08,
    "US": 0.08,
    "ZA": 0.06,
    "FR": 0.05,  # nuclear baseload: small relative swing
    "SE": 0.02,
    "NO": 0.0,  # hydro: flat
    "IS": 0.0,  # hydro and geothermal: flat
    "WORLD": 0.06,
}
_DEFAULT_AMPLITUDE = 0.06


@cache
def _table() -> dict[str, float]:
    """Region code -> annual average gCO2e/kWh, read once from the packaged CSV."""
    text = (resources.files("twin.physics") / "data" / _CSV_NAME).read_text("utf-8")
    rows = csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#"))
    table = {row["iso2"].strip().upper(): float(row["g_co2e_per_kwh"]) for row in rows}
    if not table:
        raise RuntimeError(f"{_CSV_NAME} holds no regions")  # a packaging error, not a user one
    return table


def grid_regions() -> tuple[str, ...]:
    """The region codes (ISO 3166-1 alpha-2, plus ``WORLD``) with a known carbon intensity."""
    return tuple(sorted(_table()))


def _lookup(region: str) -> float:
    table = _table()
    key = str(region).strip().upper()
    if key not in table:
        raise ValueError(
            f"unknown grid region {region!r}; known regions: {', '.join(sorted(table))} "
            f"(use WORLD for a region without data)"
        )
    return table[key]


def annual_carbon_intensity_g_per_kwh(region):
    """Annual average grid carbon intensity of ``region``, gCO2e/kWh.

    ``region``: a code from :func:`grid_regions` (case-insensitive), or an array of codes (the
    result then has its shape). Raises ValueError naming an unknown region and listing the known.
    """
    if isinstance(region, str):
        return _lookup(region)
    regions = np.asarray(region, dtype=object)
    flat = [_lookup(r) for r in regions.ravel()]
    return np.asarray(flat, dtype=float).reshape(regions.shape)


def diurnal_amplitude(region):
    """The relative amplitude of ``region``'s daily profile (:data:`DIURNAL_AMPLITUDE`, the
    default for a region without its own); a code or an array of codes, as
    :func:`annual_carbon_intensity_g_per_kwh` takes them."""

    def one(r) -> float:
        _lookup(r)
        return DIURNAL_AMPLITUDE.get(str(r).strip().upper(), _DEFAULT_AMPLITUDE)

    if isinstance(region, str):
        return one(region)
    regions = np.asarray(region, dtype=object)
    return np.asarray([one(r) for r in regions.ravel()], dtype=float).reshape(regions.shape)


def local_solar_time_s(t_utc_s, lon_rad):
    """Local mean solar time, seconds into the local day, in [0, 86400).

    ``t_utc_s``: seconds since any UTC midnight (taken modulo one day); ``lon_rad``: east-
    positive longitude in [-pi, pi]. Local mean time advances 1 h per 15 deg east (the equation
    of time, < 17 min, is neglected). Shapes broadcast.
    """
    t = np.asarray(t_utc_s, dtype=float)
    lon = np.asarray(lon_rad, dtype=float)
    if lon.size and np.abs(lon).max() > math.pi + 1e-12:
        bad = lon[np.abs(lon) > math.pi + 1e-12].flat[0]
        raise ValueError(f"lon_rad must be within [-pi, pi], got {bad} (degrees passed?)")
    out = np.mod(t + lon / (2.0 * math.pi) * DAY_S, DAY_S)
    return out[()] if out.ndim == 0 else out


def diurnal_factor(local_solar_time_s, amplitude):
    """Daily shape of grid carbon intensity, dimensionless, with mean exactly 1 over a day.

    ``1 - amplitude * cos(2 pi (t - 12 h) / 24 h)``: minimum ``1 - amplitude`` at solar noon,
    maximum ``1 + amplitude`` at solar midnight (assumption; see the module docstring).
    ``amplitude`` in [0, 1). Shapes broadcast.
    """
    t = np.asarray(local_solar_time_s, dtype=float)
    a = np.asarray(amplitude, dtype=float)
    if a.size and (a.min() < 0 or a.max() >= 1):
        raise ValueError(f"amplitude must be within [0, 1), got {a.flat[0]}")
    out = 1.0 - a * np.cos(2.0 * math.pi * (t - 12.0 * HOUR_S) / DAY_S)
    return out[()] if out.ndim == 0 else out


def carbon_intensity_g_per_kwh(region, t_utc_s=None, lon_rad=0.0):
    """Grid carbon intensity of ``region`` at a time of day, gCO2e/kWh.

    With ``t_utc_s=None`` the annual average; otherwise the annual average times
    :func:`diurnal_factor` at the local solar time of longitude ``lon_rad`` (east-positive,
    radians). ``t_utc_s`` is seconds since a UTC midnight (taken modulo one day).
    ``region`` (a code or an array of codes), ``t_utc_s`` and ``lon_rad`` broadcast.
    """
    annual = annual_carbon_intensity_g_per_kwh(region)
    if t_utc_s is None:
        return annual
    factor = diurnal_factor(local_solar_time_s(t_utc_s, lon_rad), diurnal_amplitude(region))
    out = np.asarray(annual * factor)
    return out[()] if out.ndim == 0 else out


def carbon_g(power_w, dt_s, intensity_g_per_kwh):
    """Carbon emitted by drawing ``power_w`` for ``dt_s`` from a grid, grams CO2e.

    ``P * dt / (3.6e6 J/kWh) * CI`` (main paper eq. 5 integrated over a step). Shapes
    broadcast; negative power or time is rejected.
    """
    p = np.asarray(power_w, dtype=float)
    dt = np.asarray(dt_s, dtype=float)
    ci = np.asarray(intensity_g_per_kwh, dtype=float)
    for name, arr in (("power_w", p), ("dt_s", dt), ("intensity_g_per_kwh", ci)):
        if arr.size and (np.isnan(arr).any() or arr.min() < 0):
            raise ValueError(f"{name} must be >= 0, got {arr[~(arr >= 0)].flat[0]}")
    out = p * dt / KWH_J * ci
    return out[()] if out.ndim == 0 else out


def carbon_per_bit_g(power_w, bit_rate_bps, intensity_g_per_kwh):
    """Carbon per delivered bit, gCO2e/bit (main paper sec. V metric "gCO2/bit").

    ``P / R / (3.6e6 J/kWh) * CI``; ``inf`` where the rate is 0. Shapes broadcast.
    """
    r = np.asarray(bit_rate_bps, dtype=float)
    if r.size and (np.isnan(r).any() or r.min() < 0):
        raise ValueError(f"bit_rate_bps must be >= 0, got {r[~(r >= 0)].flat[0]}")
    per_second = carbon_g(power_w, 1.0, intensity_g_per_kwh)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(r > 0, per_second / np.where(r > 0, r, 1.0), np.inf)
    return out[()] if out.ndim == 0 else out
