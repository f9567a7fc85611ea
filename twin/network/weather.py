"""Scenario weather at the sites: extra optical loss along slant paths, and turbulence.

A scenario's weather events (twin.scenarios.schema: cloud, fog, rain, snow, turbulence, each
with a footprint, an optional motion and a time window) become, per tick, an extra loss in dB
for every optical path leaving a ground site, and the Hufnagel-Valley ground Cn2 in force at the
site. The loss is the event's specific attenuation (twin.physics.atmosphere) times the slant
path through the event's layer.

Layer heights the schema does not carry are assumptions, set here once:
- fog: from each site's ground up to 100 m above it (radiation fog is typically 50-300 m deep;
  the WMO fog definition is by visibility only);
- rain and snow: from the ground to 3 km (ITU-R P.839-4 rain height: the 0 C isotherm plus
  0.36 km, ~3-4 km at mid-latitudes; 3 km is the low end, for a conservative short path).
"""

from __future__ import annotations

import numpy as np

from twin.physics.atmosphere import (
    cloud_attenuation_db_per_km,
    kim_attenuation_db_per_km,
    layer_path_length_m,
    rain_attenuation_db_per_km,
    snow_attenuation_db_per_km,
)
from twin.physics.geometry import great_circle_distance_m
from twin.units import DEG, KM

__all__ = ["FOG_TOP_M", "PRECIPITATION_TOP_M", "SiteWeather"]

FOG_TOP_M = 100.0  # assumption: see the module notes
PRECIPITATION_TOP_M = 3_000.0  # assumption: ITU-R P.839-4 rain height, low end


class SiteWeather:
    """Weather of a scenario at S ground sites.

    ``weather``: the scenario's ``Weather`` model; ``sites``: the scenario ``Site`` models in
    node order; ``wavelength_m``: of the optical links (the attenuations are wavelength
    dependent).
    """

    def __init__(self, weather, sites, wavelength_m: float) -> None:
        self.block_threshold_db = float(weather.link_block_threshold_db)
        self.background_cn2 = float(weather.background.ground_cn2_m_minus_2_3)
        self.background_wind = float(weather.background.rms_wind_speed_m_per_s)
        self._sites = list(sites)
        self._names = {site.name: i for i, site in enumerate(self._sites)}
        self._lat_rad = np.array([site.lat_deg * DEG for site in self._sites])
        self._lon_rad = np.array([site.lon_deg * DEG for site in self._sites])
        self._events = list(weather.events)
        self._specific_db_per_km = [self._specific(e, wavelength_m) for e in self._events]

    @staticmethod
    def _specific(event, wavelength_m: float) -> float:
        if event.kind == "cloud":
            if event.attenuation_db_per_km is not None:
                return float(event.attenuation_db_per_km)
            return float(
                cloud_attenuation_db_per_km(
                    event.liquid_water_g_per_m3, event.droplet_number_per_cm3, wavelength_m
                )
            )
        if event.kind == "fog":
            return float(kim_attenuation_db_per_km(event.visibility_m, wavelength_m))
        if event.kind == "rain":
            return float(rain_attenuation_db_per_km(event.rain_rate_mm_per_h))
        if event.kind == "snow":
            return float(
                snow_attenuation_db_per_km(event.snow_rate_mm_per_h, wavelength_m, event.snow_type)
            )
        return 0.0  # turbulence: no extinction, a Cn2 change

    @staticmethod
    def _layer(event, ground_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Base and top altitude (m above sea level) of an event's layer over each site."""
        if event.kind == "cloud":
            return np.full(ground_m.shape, event.base_altitude_m), np.full(
                ground_m.shape, event.top_altitude_m
            )
        if event.kind == "fog":
            # fog lies on the ground wherever the ground is: FOG_TOP_M above each site
            return ground_m, ground_m + FOG_TOP_M
        # the rain height is an altitude above sea level (ITU-R P.839), whatever the site's
        return np.zeros(ground_m.shape), np.full(ground_m.shape, PRECIPITATION_TOP_M)

    def covered(self, t_s: float) -> list[tuple[int, np.ndarray]]:
        """(event index, boolean (S,) mask of covered sites) for the events active at ``t_s``."""
        out = []
        for k, event in enumerate(self._events):
            if not event.is_active(t_s):
                continue
            if event.sites is not None:
                mask = np.zeros(len(self._sites), dtype=bool)
                mask[[self._names[name] for name in event.sites]] = True
            else:
                lat_c, lon_c = event.center_at_deg(t_s)
                distance_m = great_circle_distance_m(
                    lat_c * DEG, lon_c * DEG, self._lat_rad, self._lon_rad
                )
                mask = distance_m <= event.radius_m
            out.append((k, mask))
        return out

    def extra_loss_db(
        self, t_s: float, site_index, zenith_angle_rad, site_altitude_m, platform_altitude_m=np.inf
    ):
        """Extra loss (dB) of K optical paths from ground sites ``site_index`` (K,) at
        ``zenith_angle_rad`` (K,) up to ``platform_altitude_m`` (a HAPS may fly inside a
        layer's height range; satellites are above all), from the events active at ``t_s``."""
        site_index = np.asarray(site_index)
        shape = site_index.shape
        loss_db = np.zeros(shape)
        for k, mask in self.covered(t_s):
            event = self._events[k]
            if event.kind == "turbulence":
                continue
            hit = mask[site_index]
            if not np.any(hit):
                continue
            ground_m = np.broadcast_to(np.asarray(site_altitude_m, dtype=float), shape)[hit]
            base_m, top_m = self._layer(event, ground_m)
            path_m = layer_path_length_m(
                np.broadcast_to(np.asarray(zenith_angle_rad, dtype=float), shape)[hit],
                ground_altitude_m=ground_m,
                platform_altitude_m=np.broadcast_to(
                    np.asarray(platform_altitude_m, dtype=float), shape
                )[hit],
                layer_base_m=base_m,
                layer_top_m=top_m,
            )
            loss_db[hit] += self._specific_db_per_km[k] * path_m / KM
        return loss_db

    def ground_cn2(self, t_s: float) -> np.ndarray:
        """Hufnagel-Valley ground Cn2 (m^-2/3) in force at each site: the background, or the
        strongest active turbulence event covering it."""
        cn2 = np.full(len(self._sites), self.background_cn2)
        for k, mask in self.covered(t_s):
            event = self._events[k]
            if event.kind == "turbulence":
                cn2[mask] = np.maximum(cn2[mask], event.ground_cn2_m_minus_2_3)
        return cn2
