"""SI units and physical constants, each with its source.

Everything inside ``twin`` is SI (metres, seconds, radians, watts, joules, kelvin). Conversions
happen only at the boundary (scenario files, CLI, plots), through the factors below, so a reader
never meets a bare ``1e3`` or ``180/pi`` in the physics.

Add a constant here only with its source in a comment; a parameter that belongs to an equipment
model (a telescope, a detector) is a scenario setting, not a constant.
"""

from __future__ import annotations

import math

import numpy as np

# --- Exact SI defining constants (BIPM, SI Brochure 9th ed., 2019) -----------------------------
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0  # c, exact (SI 2019)
PLANCK_J_S = 6.626_070_15e-34  # h, exact (SI 2019)
BOLTZMANN_J_PER_K = 1.380_649e-23  # k_B, exact (SI 2019)

# --- Conversion factors at the boundary ----------------------------------------------------
KM = 1_000.0  # metres per kilometre
CM = 1e-2  # metres per centimetre
MM = 1e-3  # metres per millimetre
UM = 1e-6  # metres per micrometre
NM = 1e-9  # metres per nanometre
MS = 1e-3  # seconds per millisecond
US = 1e-6  # seconds per microsecond
NS = 1e-9  # seconds per nanosecond
NS_PER_S = 1_000_000_000  # integer nanoseconds per second (message timestamps are int ns)
MINUTE_S = 60.0
HOUR_S = 3_600.0
DAY_S = 86_400.0  # SI day (not the sidereal day)
DEG = math.pi / 180.0  # radians per degree
URAD = 1e-6  # radians per microradian
ARCSEC = DEG / 3_600.0  # radians per arcsecond
KWH_J = 3.6e6  # joules per kilowatt-hour
WH_J = 3_600.0  # joules per watt-hour
GHZ = 1e9  # hertz per gigahertz
MHZ = 1e6  # hertz per megahertz

# --- Earth (WGS84, NIMA TR8350.2, 3rd ed., 2000, Table 3.1) ---------------------------------
WGS84_A_M = 6_378_137.0  # semi-major axis (equatorial radius)
WGS84_INV_F = 298.257_223_563  # inverse flattening
WGS84_F = 1.0 / WGS84_INV_F  # flattening
WGS84_B_M = WGS84_A_M * (1.0 - WGS84_F)  # semi-minor axis (polar radius)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)  # first eccentricity squared
EARTH_ROTATION_RAD_PER_S = 7.292_115e-5  # omega_E, WGS84 (NIMA TR8350.2, Table 3.1)
EARTH_MEAN_RADIUS_M = 6_371_008.8  # IUGG mean radius R1 (Moritz 2000, Geodetic Reference System)

# Gravitational parameter and J2 used by SGP4 (WGS72 constants, Vallado et al. 2006, AIAA
# 2006-6753, "Revisiting Spacetrack Report #3"): the sgp4 package defaults to these, so
# Walker-Delta elements derived here must use them too for consistent mean motions.
EARTH_MU_WGS72_M3_PER_S2 = 398_600.8e9  # GM, WGS72
EARTH_RADIUS_WGS72_M = 6_378_135.0  # equatorial radius, WGS72
EARTH_J2_WGS72 = 0.001_082_616  # J2, WGS72
EARTH_MU_M3_PER_S2 = 3.986_004_418e14  # GM, WGS84 / IERS Conventions 2010, Table 1.1

# --- Sun (IAU 2012 Resolution B2; IAU 2015 Resolution B3) ---------------------------------------
AU_M = 149_597_870_700.0  # astronomical unit, exact (IAU 2012 Resolution B2)
SUN_RADIUS_M = 695_700_000.0  # nominal solar radius R_sun (IAU 2015 Resolution B3)
SOLAR_CONSTANT_W_PER_M2 = 1_361.0  # total solar irradiance at 1 AU (Kopp & Lean 2011, GRL 38)

# --- Time --------------------------------------------------------------------------------------
SIDEREAL_DAY_S = 86_164.090_5  # mean sidereal day (IERS Conventions 2010; Vallado 4th ed. 3.5)
J2000_JD = 2_451_545.0  # Julian date of the J2000.0 epoch, 2000-01-01 12:00 TT
UNIX_EPOCH_JD = 2_440_587.5  # Julian date of 1970-01-01T00:00:00 UTC (Vallado 4th ed., 3.5)

# --- Standard atmosphere (U.S. Standard Atmosphere 1976, NOAA-S/T 76-1562; = ISO 2533 / ICAO) ---
STANDARD_GRAVITY_M_PER_S2 = 9.806_65  # g0, exact by definition (3rd CGPM, 1901)
SEA_LEVEL_PRESSURE_PA = 101_325.0  # p0, standard atmosphere (exact by definition)
SEA_LEVEL_TEMPERATURE_K = 288.15  # T0, USSA 1976
AIR_MOLAR_MASS_KG_PER_MOL = 0.028_964_4  # M0, mean molar mass of dry air, USSA 1976
GAS_CONSTANT_J_PER_MOL_K = 8.314_32  # R*, the value USSA 1976 uses (CODATA 2018: 8.314462618)

# --- Optical fibre --------------------------------------------------------------------------
# Group index of SMF-28 at 1550 nm (Corning SMF-28 Ultra product information PI1424, 2021):
# light travels at c / n_g in the fibre, so ~4.9 us per km.
SMF28_GROUP_INDEX_1550 = 1.4682
SMF28_GROUP_INDEX_1310 = 1.4676  # Corning PI1424, 1310 nm

# --- Sky background radiance (reference levels for QKD background counts) ----------------------
# Spectral radiance in SI, W m^-2 sr^-1 per metre of wavelength (1 W m^-2 sr^-1 nm^-1 = 1e9).
# Night levels come from V-band sky surface brightness (mag arcsec^-2) through the V zero point
# f_lambda(V=0) = 3.631e-9 erg s^-1 cm^-2 A^-1 = 3.631e-2 W m^-2 m^-1 (Bessell, Castelli & Plez
# 1998, A&A 333, 231, Table A2); order-of-magnitude levels: the near-IR night sky is brighter.
V_BAND_ZERO_POINT_W_PER_M2_M = 3.631e-2
# Dark moonless sky at a good site, V = 21.9 mag arcsec^-2 (Benn & Ellison 1998, New Astron.
# Rev. 42, 503, La Palma): ~2.7e0, i.e. ~3e-9 W m^-2 sr^-1 nm^-1.
SKY_RADIANCE_NIGHT_MOONLESS_W_PER_M2_SR_M = (
    V_BAND_ZERO_POINT_W_PER_M2_M * 10 ** (-0.4 * 21.9) / ARCSEC**2
)
# Full-moon sky, V ~ 18.0 mag arcsec^-2 (Krisciunas & Schaefer 1991, PASP 103, 1033, moonlit-sky
# model): ~1e2, i.e. ~1e-7 W m^-2 sr^-1 nm^-1 (also a typical suburban light-polluted sky).
SKY_RADIANCE_NIGHT_FULL_MOON_W_PER_M2_SR_M = (
    V_BAND_ZERO_POINT_W_PER_M2_M * 10 ** (-0.4 * 18.0) / ARCSEC**2
)
# Clear daytime sky away from the Sun: 5 uW cm^-2 sr^-1 nm^-1 = 0.05 W m^-2 sr^-1 nm^-1, the
# typical noon peak of the horizon sky ("Measurements of spectral radiance of the horizon sky",
# Appl. Opt. 6, 2105 (1967); the same paper's maximum is 0.38 W m^-2 sr^-1 nm^-1).
SKY_RADIANCE_DAY_W_PER_M2_SR_M = 5.0e7


def db_to_linear(loss_db):
    """Transmittance (0..1] for a loss in dB (positive dB = loss). Broadcasts over arrays."""
    return np.power(10.0, -np.asarray(loss_db, dtype=float) / 10.0)


def linear_to_db(transmittance):
    """Loss in dB (positive = loss) for a transmittance in (0, 1]. Broadcasts over arrays.

    A transmittance of 0 gives ``inf`` dB (a blocked link), not an error.
    """
    t = np.asarray(transmittance, dtype=float)
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(t)
