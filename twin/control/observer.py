"""The observer (main paper sec. VI): noisy sensors fused by Kalman filters into a predicted
distribution of each optical ground-space link's loss, so a controller sees the risk of an
outage, not just its expectation ("the predicted SNR is not a single value but a probability
distribution P(SNR | Cn2, Orbit)").

Sensors, one reading per optical ground station every ``Observer.every_s`` (each draw from
``twin.rng.stream(seed, station, tick, purpose)``, so a reading depends on what it is, never on
the order of the others):

- **DIMM / MASS seeing**: the Fried parameter r0 at zenith, 500 nm, that the site's
  Hufnagel-Valley Cn2 gives (twin.network.weather), read with a log-normal error
  ``DIMM_LOG_R0_SIGMA``;
- **weather nowcast**: the extra optical loss at zenith the weather events will add at the
  station ``lead`` seconds ahead (cloud, fog, rain, snow), read with an error that grows with the
  lead (``NOWCAST_SIGMA_DB``, ``NOWCAST_SIGMA_DB_PER_H``);
- **carbon-intensity forecast**: the grid intensity of each site's region ``lead`` ahead, read
  with a relative error (``CARBON_FORECAST_SIGMA``).

Fusion: a scalar Kalman filter per station tracks ln r0 as a random walk
(``R0_LOG_DRIFT_PER_SQRT_S``) from the DIMM readings. The link prediction
(:meth:`Observer.link_loss`) for each up FSO ground-space link of G(t): the loss in dB is
normal, its mean the link's loss now with the weather part replaced by the nowcast at the lead
(times the airmass of the link's elevation), its variance the nowcast's plus the turbulence
fade's (the log-irradiance variance of the scintillation index that the filtered r0 implies,
twin.physics.turbulence); the outage probability is that the weather part exceeds the scenario's
link-blocking threshold (the twin's rule for a link going down).

Every error size is an assumption the sources leave open, labelled below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from twin.network.topology import EdgeKind
from twin.physics.carbon import carbon_intensity_g_per_kwh
from twin.physics.turbulence import (
    scintillation_index,
    slant_fried_parameter_m,
    slant_rytov_variance,
)
from twin.rng import stream
from twin.units import NS_PER_S

__all__ = ["LinkLossForecast", "Observation", "Observer", "zenith_r0_m"]

# --- assumptions --------------------------------------------------------------------------------
# DIMM seeing is measured to ~10 % (of the order reported for DIMMs, Tokovinin 2002, PASP 114,
# 1156); r0 ~ seeing^-1, so ln r0 carries the same 0.1
DIMM_LOG_R0_SIGMA = 0.10
# ln r0 wanders ~5 % a minute between readings (turbulence evolves over minutes)
R0_LOG_DRIFT_PER_SQRT_S = 0.05 / math.sqrt(60.0)
# weather nowcast of optical extinction: 0.5 dB now, 2 dB more per hour of lead
NOWCAST_SIGMA_DB = 0.5
NOWCAST_SIGMA_DB_PER_H = 2.0
# day-ahead grid carbon-intensity forecasts err by ~5-10 % (MAPE); 5 % + 5 % per day of lead
CARBON_FORECAST_SIGMA = 0.05
CARBON_FORECAST_SIGMA_PER_DAY = 0.05
R0_WAVELENGTH_M = 500e-9  # seeing monitors quote r0 at 500 nm
TURBULENCE_TOP_M = 30_000.0  # the Hufnagel-Valley profile is negligible above ~30 km
DB_PER_NEPER_POWER = 10.0 / math.log(10.0)  # dB per unit of ln(irradiance)


def zenith_r0_m(altitude_m, ground_cn2_m_minus_2_3, rms_wind_speed_m_per_s) -> np.ndarray:
    """The Fried parameter r0 at zenith, 500 nm, of sites at ``altitude_m`` under a
    Hufnagel-Valley profile with that ground Cn2 (the turbulence index of the global view and
    the truth the DIMM reads), m."""
    return slant_fried_parameter_m(
        0.0, R0_WAVELENGTH_M, ground_altitude_m=altitude_m, platform_altitude_m=TURBULENCE_TOP_M,
        rms_wind_speed_m_per_s=rms_wind_speed_m_per_s,
        ground_cn2_m_minus_2_3=ground_cn2_m_minus_2_3, profile_ground_altitude_m=altitude_m,
    )  # fmt: skip


@dataclass(frozen=True)
class Observation:
    """The observer's fused view at ``t_ns`` (station order: the scenario's OGS)."""

    t_ns: int
    stations: tuple[str, ...]
    r0_measured_m: np.ndarray
    """this reading of the DIMM (NaN between readings)"""
    log_r0_mean: np.ndarray
    """Kalman estimate of ln r0 (r0 in m)"""
    log_r0_var: np.ndarray
    nowcast_lead_s: float
    nowcast_zenith_db: np.ndarray
    """predicted extra zenith loss at t + lead, dB (>= 0)"""
    nowcast_sigma_db: float
    carbon_forecast_g_per_kwh: np.ndarray
    """every site's grid intensity forecast at t + lead (site order)"""


@dataclass(frozen=True)
class LinkLossForecast:
    """The predicted loss of the up FSO ground-space links of one G(t)."""

    edges: np.ndarray
    """edge indices into the snapshot"""
    mean_db: np.ndarray
    std_db: np.ndarray
    outage_probability: np.ndarray
    """probability that the weather blocks the link at the lead (> the blocking threshold)"""


class Observer:
    """Sensors and Kalman filters over one scenario's optical ground stations."""

    def __init__(self, scenario, topology, seed: int, *, every_s: float = 60.0) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0, got {every_s}")
        self.scenario = scenario
        self.topology = topology
        self.seed = int(seed)
        self.every_s = float(every_s)
        sites = list(scenario.sites)
        self._ogs = [i for i, s in enumerate(sites) if s.kind == "ogs"]
        self.stations = tuple(sites[i].name for i in self._ogs)
        self._alt_m = np.array([sites[i].altitude_m for i in self._ogs], dtype=float)
        self._regions = np.array([s.grid_region for s in sites])
        self._lon_rad = np.radians([s.lon_deg for s in sites])
        self._day_s = scenario.time.start_day_s  # t = 0's time of day (twin.physics.carbon)
        self._block_db = float(scenario.weather.link_block_threshold_db)
        weather = topology.weather
        # the filter starts at the clear-air background with a wide prior (a factor e in r0)
        self._mean = np.log(self._true_r0(weather.background_cn2 * np.ones(len(self._ogs))))
        self._var = np.ones(len(self._ogs))
        self._t_s: float | None = None

    def _true_r0(self, ground_cn2) -> np.ndarray:
        return zenith_r0_m(self._alt_m, ground_cn2, self.topology.weather.background_wind)

    def observe(self, t_ns: int, lead_s: float = 0.0) -> Observation:
        """Read the sensors at ``t_ns`` (the DIMM only on its cadence) and update the filters;
        call in time order. ``lead_s``: how far ahead the nowcast and the forecast look."""
        if not lead_s >= 0:
            raise ValueError(f"lead_s must be >= 0, got {lead_s}")
        t_s = t_ns / NS_PER_S
        if self._t_s is not None and t_s < self._t_s:
            raise ValueError(f"observe at {t_s} s after {self._t_s} s: the filters run forward")
        weather = self.topology.weather
        n = len(self._ogs)
        # predict: the random walk since the last call
        if self._t_s is not None:
            self._var = self._var + R0_LOG_DRIFT_PER_SQRT_S**2 * (t_s - self._t_s)
        self._t_s = t_s
        tick = round(t_s / self.every_s)
        measured = np.full(n, np.nan)
        if abs(tick * self.every_s - t_s) < 1e-9:  # a DIMM reading is due
            truth = np.log(self._true_r0(weather.ground_cn2(t_s)[self._ogs]))
            noise = np.array([stream(self.seed, name, tick, "dimm").normal() for name in
                              self.stations])  # fmt: skip
            z = truth + DIMM_LOG_R0_SIGMA * noise
            gain = self._var / (self._var + DIMM_LOG_R0_SIGMA**2)
            self._mean = self._mean + gain * (z - self._mean)
            self._var = (1.0 - gain) * self._var
            measured = np.exp(z)
        # the nowcast: the events' zenith extra loss at t + lead, plus its error
        ahead_s = t_s + lead_s
        zenith = weather.extra_loss_db(ahead_s, np.array(self._ogs), np.zeros(n), self._alt_m)
        sigma_db = NOWCAST_SIGMA_DB + NOWCAST_SIGMA_DB_PER_H * lead_s / 3600.0
        draws = np.array([stream(self.seed, name, round(t_s), "nowcast").normal()
                          for name in self.stations])  # fmt: skip
        nowcast = np.maximum(zenith + sigma_db * draws, 0.0)
        return Observation(
            t_ns=int(t_ns),
            stations=self.stations,
            r0_measured_m=measured,
            log_r0_mean=self._mean.copy(),
            log_r0_var=self._var.copy(),
            nowcast_lead_s=float(lead_s),
            nowcast_zenith_db=nowcast,
            nowcast_sigma_db=sigma_db,
            carbon_forecast_g_per_kwh=self.carbon_forecast_g_per_kwh(t_ns, lead_s),
        )

    def carbon_forecast_g_per_kwh(self, t_ns: int, lead_s) -> np.ndarray:
        """The grid carbon-intensity forecast issued at ``t_ns`` for ``lead_s`` later (a lead
        or a 1-D array of leads, s >= 0), per site in scenario order (and per lead, columns):
        the truth times ``1 + rel * e``, ``rel`` growing with the lead and ``e`` one standard
        normal draw per site and issue time (a forecast's errors at different leads are of
        one run of the forecaster). Reads and changes no filter: call it any number of times."""
        leads = np.asarray(lead_s, dtype=float)
        if leads.ndim > 1 or not np.all(leads >= 0):
            raise ValueError(f"lead_s must be a lead or a 1-D array of leads >= 0, got {lead_s}")
        t_s = t_ns / NS_PER_S
        ahead_s = t_s + leads
        column = leads.ndim == 0
        if column:
            truth = carbon_intensity_g_per_kwh(self._regions, self._day_s + ahead_s, self._lon_rad)
        else:
            truth = carbon_intensity_g_per_kwh(
                self._regions[:, None], self._day_s + ahead_s[None, :], self._lon_rad[:, None]
            )
        rel = CARBON_FORECAST_SIGMA + CARBON_FORECAST_SIGMA_PER_DAY * leads / 86_400.0
        names = [s.name for s in self.scenario.sites]
        errors = np.array(
            [stream(self.seed, name, round(t_s), "carbon").normal() for name in names]
        )
        if column:
            return np.atleast_1d(truth) * np.maximum(1.0 + rel * errors, 0.0)
        return truth * np.maximum(1.0 + rel[None, :] * errors[:, None], 0.0)

    def zenith_outage_probability(self, observation: Observation) -> np.ndarray:
        """Per station, the probability that the weather's extra loss at its zenith exceeds
        the blocking threshold at the observation's lead (the nowcast's normal error): a
        blocked zenith blocks every pass of the station."""
        margin_db = self._block_db - observation.nowcast_zenith_db
        return 1.0 - ndtr(margin_db / observation.nowcast_sigma_db)

    def link_loss(self, snapshot, observation: Observation) -> LinkLossForecast:
        """The predicted loss distribution of ``snapshot``'s up FSO ground-space links at the
        observation's lead (module docstring)."""
        row = {self.topology.node_names[i]: k for k, i in enumerate(self._ogs)}
        names = snapshot.node_names
        edges = np.flatnonzero(
            snapshot.up & (snapshot.kind == EdgeKind.FSO_GROUND_SPACE)
        )  # fmt: skip
        if edges.size == 0:
            empty = np.zeros(0)
            return LinkLossForecast(edges, empty, empty, empty)
        ground = snapshot.a[edges]
        station = np.array([row[names[g]] for g in ground.tolist()])
        elevation = self.topology.elevation_rad(snapshot, ground, snapshot.b[edges])
        zenith_angle = np.pi / 2 - np.maximum(elevation, 1e-3)
        airmass = 1.0 / np.cos(zenith_angle)
        loss_now = -10.0 * np.log10(np.maximum(snapshot.transmittance[edges], 1e-300))
        weather_next = observation.nowcast_zenith_db[station] * airmass
        mean_db = loss_now - snapshot.weather_loss_db[edges] + weather_next
        # turbulence: the filtered r0 sets the ground Cn2 of the profile (r0 ~ Cn2^(-3/5) when
        # the ground layer dominates, an approximation), and with it the scintillation
        background_r0 = self._true_r0(self.topology.weather.background_cn2)[station]
        r0 = np.exp(observation.log_r0_mean[station])
        cn2 = self.topology.weather.background_cn2 * (background_r0 / r0) ** (5.0 / 3.0)
        rytov = slant_rytov_variance(
            zenith_angle, self.topology.sat_ogs_wavelength_m,
            ground_altitude_m=self._alt_m[station], platform_altitude_m=TURBULENCE_TOP_M,
            ground_cn2_m_minus_2_3=cn2, profile_ground_altitude_m=self._alt_m[station],
        )  # fmt: skip
        fade_db = DB_PER_NEPER_POWER * np.sqrt(np.log1p(scintillation_index(rytov)))
        weather_sigma = observation.nowcast_sigma_db * airmass
        std_db = np.sqrt(weather_sigma**2 + fade_db**2)
        outage = 1.0 - ndtr((self._block_db - weather_next) / weather_sigma)
        return LinkLossForecast(edges, mean_db, std_db, outage)
