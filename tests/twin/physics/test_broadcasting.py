"""Every public physics function broadcasts (issue 2, "Every physics function has a broadcasting
test"; STYLE.md, "A test checks that each function broadcasts").

One table: for each function (or hot-path method) a builder of valid inputs with a batch shape.
The check calls it with batch shapes (3, 4), (4,) and (), asserts the output shapes (the batch
shape, around any core axes such as the xyz axis of a (3, ...) vector), and asserts that the
batched outputs equal, elementwise to 1e-12 relative, the outputs of looping the scalar call.
Where every input is a plain (3, 4) array it also checks mixed shapes, (3, 1) against (4,),
against the same inputs broadcast in full.

``test_every_public_function_is_classified`` keeps the table complete: a function added to
``twin.physics.__all__`` must get a row here or an entry in ``NOT_ELEMENTWISE`` saying why its
inputs do not broadcast elementwise (parsers, loaders, generators, outer-product APIs).
"""

import dataclasses
import inspect
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

import twin.physics as physics
from twin.physics import (
    atmosphere,
    carbon,
    energy,
    entanglement,
    fiber,
    fso,
    geometry,
    link_budget,
    link_table,
    memory,
    orbits,
    presets,
    qkd,
    rf,
    sun,
    turbulence,
)
from twin.units import AU_M, DEG, HOUR_S, NM, URAD

BATCH = (3, 4)
LEO_M = 550e3
EPOCH = datetime(2024, 3, 20, 3, 6, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Case:
    """One broadcasting check.

    ``call(*args)`` returns an array, a tuple / NamedTuple of arrays, or a dataclass (its array
    fields are the outputs). ``draw(rng, shape)`` returns valid inputs with batch shape
    ``shape``. ``arg_lead[k]`` is the number of core axes in front of argument k's batch axes
    (1 for a (3, ...) vector); core axes behind the batch axes need no declaration. For each
    output, ``out_core`` is its core shape and ``out_lead`` how many of those axes come first:
    an output has shape ``core[:lead] + batch + core[lead:]``.
    """

    call: Callable[..., Any]
    draw: Callable[[np.random.Generator, tuple], list]
    arg_lead: tuple[int, ...] = ()
    out_core: tuple[tuple[int, ...], ...] = ()
    out_lead: tuple[int, ...] = ()
    rtol: float = 1e-12
    atol: float = 0.0
    mixed: bool = True  # False where the inputs constrain each other (no free recombination)


def _u(lo, hi):
    """Builder of one uniform input in [lo, hi) with the batch shape."""
    return lambda r, s: r.uniform(lo, hi, s)


def _args(*builders):
    return lambda r, s: [b(r, s) for b in builders]


def _ecef(alt_lo, alt_hi):
    """(3, *shape) Earth-fixed positions at altitudes in [alt_lo, alt_hi)."""

    def build(r, s):
        return geometry.geodetic_to_ecef_m(
            r.uniform(-1.4, 1.4, s), r.uniform(-3.1, 3.1, s), r.uniform(alt_lo, alt_hi, s)
        )

    return build


def _vec(scale):
    return lambda r, s: r.normal(0.0, scale, (3, *s))


def _jd(r, s):
    return 2_451_544.5 + np.floor(r.uniform(0, 12_000, s))


VEC = ((3,),)  # one (3, ...) vector output
SITE_GEOMETRY = geometry.SiteGeometry(
    np.array([0.1, 0.7, -0.5, 1.2, 0.0]),
    np.array([0.2, -1.0, 2.5, 0.4, 3.0]),
    np.array([0.0, 960.0, 2_400.0, 50.0, 5.0]),
)
SAT_POWER = energy.SatellitePowerModel()
HAPS_POWER = energy.HapsPowerModel()
GROUND_POWER = energy.GroundStationPowerModel()
MICIUS = presets.get_preset("micius-2017")
MICIUS_TABLE = link_table.LinkBudgetTable(MICIUS, [960.0, 0.0, 2_400.0], min_elevation_rad=10 * DEG)
TX = fso.Terminal(0.3, 850 * NM, divergence_half_angle_rad=10 * URAD, pointing_jitter_rms_rad=1e-6)
RX = fso.Terminal(1.0, 850 * NM, obscuration_diameter_m=0.2)
REGIONS = np.array(carbon.grid_regions())
BUDGET_ARRAYS = sum("ndarray" in str(f.type) for f in dataclasses.fields(link_budget.LinkBudget))
BBM = dict(dark_count_prob_a=1e-6, dark_count_prob_b=2e-6, misalignment_error=0.02)


def _fso_outputs(ch: fso.FsoChannel) -> tuple:
    arrays = (getattr(ch, f.name) for f in dataclasses.fields(ch) if "ndarray" in str(f.type))
    return (*arrays, ch.transmittance, ch.total)


def _slant_inputs(r, s):
    el = r.uniform(0.1, 1.5, s)
    alt = r.uniform(4e5, 1.2e6, s)
    site = r.uniform(0.0, 3e3, s)
    return [geometry.slant_range_from_elevation_m(el, alt, site_altitude_m=site), alt, site]


def _micius_pairs(r, s):
    site = r.integers(0, 3, s)
    el = r.uniform(12 * DEG, 89 * DEG, s)
    alt = np.array([960.0, 0.0, 2_400.0])[site]
    slant = geometry.slant_range_from_elevation_m(
        el, MICIUS.platform_altitude_m, site_altitude_m=alt
    )
    return [site, el, slant, r.uniform(0.0, 3.0, s)]


CASES: dict[str, Case] = {
    # --- geometry ------------------------------------------------------------------------------
    "geodetic_to_ecef_m": Case(
        geometry.geodetic_to_ecef_m,
        _args(_u(-1.5, 1.5), _u(-3, 3), _u(-100, 1e6)),
        out_core=VEC,
        out_lead=(1,),
    ),
    "ecef_to_geodetic": Case(
        geometry.ecef_to_geodetic, _args(_ecef(-100, 4e7)), arg_lead=(1,), out_core=((), (), ())
    ),
    "enu_basis": Case(
        geometry.enu_basis, _args(_u(-1.5, 1.5), _u(-3, 3)), out_core=((3, 3),), out_lead=(2,)
    ),
    "ecef_to_enu_m": Case(
        geometry.ecef_to_enu_m,
        _args(_vec(1e6), _u(-1.5, 1.5), _u(-3, 3)),
        arg_lead=(1, 0, 0),
        out_core=VEC,
        out_lead=(1,),
    ),
    "look_angles": Case(
        geometry.look_angles,
        _args(_u(-1.2, 1.2), _u(-3, 3), _u(0, 3e3), _ecef(4e5, 1.2e6), _vec(7e3), _vec(30.0)),
        arg_lead=(0, 0, 0, 1, 1, 1),
        out_core=((), (), (), ()),
    ),
    "doppler_shift_hz": Case(geometry.doppler_shift_hz, _args(_u(-7e3, 7e3), _u(1e10, 4e14))),
    "zenith_angle_rad": Case(geometry.zenith_angle_rad, _args(_u(-1.5, 1.5))),
    "fast_arcsin": Case(geometry.fast_arcsin, _args(_u(-1, 1))),
    "slant_range_from_elevation_m": Case(
        lambda el, h, site: geometry.slant_range_from_elevation_m(el, h, site_altitude_m=site),
        _args(_u(0.0, 1.5), _u(2e4, 1.2e6), _u(0, 3e3)),
    ),
    "elevation_from_slant_range_rad": Case(
        lambda d, h, site: geometry.elevation_from_slant_range_rad(d, h, site_altitude_m=site),
        _slant_inputs,
        mixed=False,  # a slant range is only possible for its own altitudes
    ),
    "great_circle_distance_m": Case(
        geometry.great_circle_distance_m,
        _args(_u(-1.2, 1.2), _u(-3.0, 3.0), _u(-1.2, 1.2), _u(-3.0, 3.0)),
    ),
    "earth_central_angle_rad": Case(
        geometry.earth_central_angle_rad, _args(_u(0.0, 1.5), _u(2e4, 1.2e6))
    ),
    "elevation_from_ground_range_rad": Case(
        geometry.elevation_from_ground_range_rad, _args(_u(0.0, 1e6), _u(5e5, 1.2e6))
    ),
    "chord_minimum_altitude_m": Case(
        geometry.chord_minimum_altitude_m,
        _args(_ecef(5e5, 6e5), _ecef(5e5, 6e5)),
        arg_lead=(1, 1),
    ),
    "line_of_sight_clear": Case(
        geometry.line_of_sight_clear,
        _args(_ecef(5e5, 6e5), _ecef(5e5, 6e5), _u(0, 1e5)),
        arg_lead=(1, 1, 0),
    ),
    "SiteGeometry.elevation_and_range": Case(
        SITE_GEOMETRY.elevation_and_range,
        _args(_ecef(4e5, 1.2e6)),
        arg_lead=(1,),
        out_core=((5,), (5,)),
        out_lead=(1, 1),
        atol=1e-15,  # guard: a BLAS may block (S, 5) @ (5, M) differently for M = 1 and 12
    ),
    "SiteGeometry.sin_elevation_and_range": Case(
        SITE_GEOMETRY.sin_elevation_and_range,
        _args(_ecef(4e5, 1.2e6)),
        arg_lead=(1,),
        out_core=((5,), (5,)),
        out_lead=(1, 1),
        atol=1e-15,  # the same guard
    ),
    # --- orbits and time ---------------------------------------------------------------------
    "gmst_1982_rad": Case(orbits.gmst_1982_rad, _args(_jd, _u(0, 1)), out_core=((), ())),
    "jd_fr_add_seconds": Case(
        orbits.jd_fr_add_seconds, _args(_jd, _u(0, 1), _u(-2e5, 2e5)), out_core=((), ())
    ),
    "jd_fr_from_unix_s": Case(orbits.jd_fr_from_unix_s, _args(_u(0, 2e9)), out_core=((), ())),
    "teme_to_ecef": Case(
        orbits.teme_to_ecef,
        _args(_vec(7e6), _vec(7e3), _jd, _u(0, 1), _u(-0.9, 0.9)),
        arg_lead=(1, 1, 0, 0, 0),
        out_core=((3,), (3,)),
        out_lead=(1, 1),
    ),
    # --- the Sun ------------------------------------------------------------------------------
    "sun_position_teme_m": Case(
        sun.sun_position_teme_m, _args(_jd, _u(0, 1)), out_core=VEC, out_lead=(1,)
    ),
    "sun_position_ecef_m": Case(
        sun.sun_position_ecef_m, _args(_jd, _u(0, 1), _u(-0.9, 0.9)), out_core=VEC, out_lead=(1,)
    ),
    "sun_position_ecef_m_de421": Case(
        sun.sun_position_ecef_m_de421,
        _args(lambda r, s: 2_451_544.5 + np.floor(r.uniform(0, 10_000, s)), _u(0, 1)),
        out_core=VEC,
        out_lead=(1,),
    ),
    "sunlit_fraction[conical]": Case(
        lambda r, s: sun.sunlit_fraction(r, s, "conical"),
        _args(_ecef(3e5, 4e7), _vec(AU_M)),
        arg_lead=(1, 1),
    ),
    "sunlit_fraction[cylindrical]": Case(
        lambda r, s: sun.sunlit_fraction(r, s, "cylindrical"),
        _args(_ecef(3e5, 4e7), _vec(AU_M)),
        arg_lead=(1, 1),
    ),
    "beta_angle_rad": Case(
        sun.beta_angle_rad, _args(_u(0, 3), _u(0, 6.2), _vec(AU_M)), arg_lead=(0, 0, 1)
    ),
    "beta_angle_from_state_rad": Case(
        sun.beta_angle_from_state_rad, _args(_vec(7e6), _vec(7e3), _vec(AU_M)), arg_lead=(1, 1, 1)
    ),
    "eclipse_fraction": Case(sun.eclipse_fraction, _args(_u(3e5, 2e6), _u(-1.5, 1.5))),
    "eclipse_duration_s": Case(sun.eclipse_duration_s, _args(_u(3e5, 2e6), _u(-1.5, 1.5))),
    "orbital_period_s": Case(sun.orbital_period_s, _args(_u(2e5, 3.6e7))),
    # --- atmosphere ---------------------------------------------------------------------------
    "beer_lambert_transmittance": Case(
        atmosphere.beer_lambert_transmittance, _args(_u(0, 1e-3), _u(0, 2e4))
    ),
    "db_per_km_to_extinction_per_m": Case(
        atmosphere.db_per_km_to_extinction_per_m, _args(_u(0, 300))
    ),
    "extinction_per_m_to_db_per_km": Case(
        atmosphere.extinction_per_m_to_db_per_km, _args(_u(0, 0.1))
    ),
    "air_mass": Case(atmosphere.air_mass, _args(_u(0, 1.55))),
    "air_mass[plane_parallel]": Case(
        lambda z: atmosphere.air_mass(z, "plane_parallel"), _args(_u(0, 1.4))
    ),
    "slant_path_transmittance": Case(
        atmosphere.slant_path_transmittance, _args(_u(0.1, 1.0), _u(0, 1.5))
    ),
    "standard_pressure_ratio": Case(atmosphere.standard_pressure_ratio, _args(_u(-400, 8.5e4))),
    "rayleigh_optical_depth": Case(
        lambda lam, h: atmosphere.rayleigh_optical_depth(lam, altitude_m=h),
        _args(_u(400 * NM, 1600 * NM), _u(0, 3e4)),
    ),
    "kim_extinction_per_m": Case(
        atmosphere.kim_extinction_per_m, _args(_u(50, 6e4), _u(700 * NM, 1600 * NM))
    ),
    "kim_attenuation_db_per_km": Case(
        atmosphere.kim_attenuation_db_per_km, _args(_u(50, 6e4), _u(700 * NM, 1600 * NM))
    ),
    "clear_air_zenith_transmittance": Case(
        lambda lam, h, v, hs: atmosphere.clear_air_zenith_transmittance(
            lam, site_altitude_m=h, visibility_m=v, aerosol_scale_height_m=hs
        ),
        _args(_u(700 * NM, 1600 * NM), _u(0, 3e3), _u(5e3, 5e4), _u(800, 2e3)),
    ),
    "rain_attenuation_db_per_km": Case(
        lambda rate, k, a: atmosphere.rain_attenuation_db_per_km(rate, coefficient=k, exponent=a),
        _args(_u(0, 100), _u(0.3, 1.6), _u(0.5, 0.8)),
    ),
    "snow_attenuation_db_per_km[wet]": Case(
        atmosphere.snow_attenuation_db_per_km, _args(_u(0, 10), _u(700 * NM, 1600 * NM))
    ),
    "snow_attenuation_db_per_km[dry]": Case(
        lambda s, lam: atmosphere.snow_attenuation_db_per_km(s, lam, "dry"),
        _args(_u(0, 10), _u(700 * NM, 1600 * NM)),
    ),
    "cloud_visibility_m": Case(atmosphere.cloud_visibility_m, _args(_u(0.01, 1.0), _u(50, 500))),
    "cloud_attenuation_db_per_km": Case(
        atmosphere.cloud_attenuation_db_per_km,
        _args(_u(0.01, 1.0), _u(50, 500), _u(700 * NM, 1600 * NM)),
    ),
    "layer_path_length_m": Case(
        lambda z, g, p, lo, hi: atmosphere.layer_path_length_m(
            z, ground_altitude_m=g, platform_altitude_m=p, layer_base_m=lo, layer_top_m=hi
        ),
        _args(_u(0, 1.4), _u(0, 400), _u(2e4, 1e6), _u(500, 1500), _u(2e3, 6e3)),
    ),
    "layer_loss_db": Case(atmosphere.layer_loss_db, _args(_u(0, 300), _u(0, 1e4))),
    "optical_link_blocked": Case(atmosphere.optical_link_blocked, _args(_u(0, 60), _u(10, 50))),
    # --- turbulence ---------------------------------------------------------------------------
    "hufnagel_valley_cn2": Case(
        lambda h, v, c0: turbulence.hufnagel_valley_cn2(
            h, rms_wind_speed_m_per_s=v, ground_cn2_m_minus_2_3=c0
        ),
        _args(_u(0, 3e4), _u(5, 40), _u(1e-15, 1e-13)),
    ),
    "slant_rytov_variance[downlink]": Case(
        lambda z, lam, g, p: turbulence.slant_rytov_variance(
            z, lam, ground_altitude_m=g, platform_altitude_m=p
        ),
        _args(_u(0, 1.2), _u(500 * NM, 1600 * NM), _u(0, 3e3), _u(4e5, 1.2e6)),
    ),
    "slant_rytov_variance[uplink spherical]": Case(
        lambda z, lam, v: turbulence.slant_rytov_variance(
            z,
            lam,
            platform_altitude_m=2e4,
            direction="uplink",
            wave="spherical",
            rms_wind_speed_m_per_s=v,
        ),
        _args(_u(0, 1.2), _u(500 * NM, 1600 * NM), _u(5, 40)),
    ),
    "slant_fried_parameter_m": Case(
        lambda z, lam, p: turbulence.slant_fried_parameter_m(
            z, lam, platform_altitude_m=p, direction="uplink"
        ),
        _args(_u(0, 1.2), _u(500 * NM, 1600 * NM), _u(2e4, 1.2e6)),
    ),
    "slant_isoplanatic_angle_rad": Case(
        lambda z, lam, c0: turbulence.slant_isoplanatic_angle_rad(
            z, lam, platform_altitude_m=LEO_M, ground_cn2_m_minus_2_3=c0
        ),
        _args(_u(0, 1.2), _u(500 * NM, 1600 * NM), _u(1e-15, 1e-13)),
    ),
    "downlink_effective_turbulence_distance_m": Case(
        lambda z, g: turbulence.downlink_effective_turbulence_distance_m(
            z, ground_altitude_m=g, platform_altitude_m=LEO_M
        ),
        _args(_u(0, 1.2), _u(0, 3e3)),
    ),
    "constant_cn2_rytov_variance": Case(
        turbulence.constant_cn2_rytov_variance,
        _args(_u(1e-16, 1e-13), _u(500 * NM, 1600 * NM), _u(100, 1e4)),
    ),
    "seeing_arcsec": Case(turbulence.seeing_arcsec, _args(_u(0.01, 0.3), _u(400 * NM, 1600 * NM))),
    "gamma_gamma_alpha_beta": Case(
        turbulence.gamma_gamma_alpha_beta, _args(_u(0.01, 10)), out_core=((), ())
    ),
    "gamma_gamma_alpha_beta[spherical]": Case(
        lambda s: turbulence.gamma_gamma_alpha_beta(s, "spherical"),
        _args(_u(0.01, 10)),
        out_core=((), ()),
    ),
    "gamma_gamma_alpha_beta_aperture": Case(
        turbulence.gamma_gamma_alpha_beta_aperture,
        _args(_u(0.01, 5), _u(0, 1.0), _u(500 * NM, 1600 * NM), _u(1e3, 2e4)),
        out_core=((), ()),
    ),
    "scintillation_index": Case(turbulence.scintillation_index, _args(_u(0.01, 10))),
    "scintillation_index_from_alpha_beta": Case(
        turbulence.scintillation_index_from_alpha_beta, _args(_u(1.5, 50), _u(1.01, 50))
    ),
    "gamma_gamma_pdf": Case(
        turbulence.gamma_gamma_pdf, _args(_u(0.05, 3), _u(1.5, 50), _u(1.01, 50), _u(0.5, 2))
    ),
    "gamma_gamma_cdf": Case(
        turbulence.gamma_gamma_cdf,
        _args(_u(0.05, 3), _u(1.5, 50), _u(1.01, 50), _u(0.5, 2)),
    ),
    "gamma_gamma_fade_margin_db": Case(
        turbulence.gamma_gamma_fade_margin_db,
        _args(_u(1.5, 50), _u(1.01, 50), lambda r, s: 10 ** r.uniform(-5, -1, s)),
    ),
    "beam_wander_variance_m2": Case(
        turbulence.beam_wander_variance_m2,
        _args(_u(0.02, 0.3), _u(0.05, 0.3), _u(500 * NM, 1600 * NM), _u(2e4, 1.2e6)),
    ),
    "beam_wander_efficiency": Case(
        turbulence.beam_wander_efficiency, _args(_u(0, 100), _u(0.5, 20))
    ),
    "long_term_beam_radius_m": Case(
        lambda w0, lam, z, f: turbulence.long_term_beam_radius_m(
            w0, lam, z, platform_altitude_m=LEO_M, focal_distance_m=f
        ),
        _args(_u(0.05, 0.3), _u(500 * NM, 1600 * NM), _u(0, 1.2), _u(1e5, 1e7)),
    ),
    # --- FSO channel --------------------------------------------------------------------------
    "diffraction_limited_divergence_rad": Case(
        fso.diffraction_limited_divergence_rad,
        _args(_u(0.01, 0.5), _u(500 * NM, 1600 * NM), _u(1.0, 1.5)),
    ),
    "rayleigh_range_m": Case(
        fso.rayleigh_range_m, _args(_u(0.01, 0.5), _u(500 * NM, 1600 * NM), _u(1.0, 1.5))
    ),
    "beam_radius_at_range_m": Case(
        fso.beam_radius_at_range_m,
        _args(_u(1e3, 2e6), _u(0.01, 0.5), _u(500 * NM, 1600 * NM), _u(1.0, 1.5)),
    ),
    "beam_radius_from_divergence_m": Case(
        fso.beam_radius_from_divergence_m, _args(_u(1e3, 2e6), _u(1e-6, 5e-5), _u(0, 0.3))
    ),
    "field_of_view_efficiency": Case(
        fso.field_of_view_efficiency,
        _args(_u(5e-6, 1e-4), _u(0.02, 0.3), _u(500 * NM, 1600 * NM), _u(0.3, 1.5)),
    ),
    "gaussian_waist_from_aperture_m": Case(
        fso.gaussian_waist_from_aperture_m, _args(_u(0.05, 1.5), _u(0.8, 1.2))
    ),
    "geometric_efficiency": Case(
        fso.geometric_efficiency, _args(_u(0.1, 20), _u(0.3, 1.5), _u(0, 0.25))
    ),
    "pointing_efficiency_mean": Case(
        fso.pointing_efficiency_mean, _args(_u(0.5, 20), _u(0, 5e-6), _u(1e5, 2e6))
    ),
    "static_misalignment_efficiency": Case(
        fso.static_misalignment_efficiency, _args(_u(0.5, 20), _u(-5e-6, 5e-6), _u(1e5, 2e6))
    ),
    "fso_channel": Case(
        lambda rng, atm, turb: _fso_outputs(
            fso.fso_channel(
                "downlink", TX, RX, rng, atmospheric_transmittance=atm, turbulence_efficiency=turb
            )
        ),
        _args(_u(5e5, 1.5e6), _u(0.3, 1.0), _u(0.5, 1.0)),
        out_core=((),) * 10,
    ),
    # --- fiber and RF -------------------------------------------------------------------------
    "fiber_loss_db": Case(
        lambda length, a, c: fiber.fiber_loss_db(length, a, n_connectors=2, connector_loss_db=c),
        _args(_u(0, 2e5), _u(0.15, 0.35), _u(0.1, 0.5)),
    ),
    "fiber_transmittance": Case(fiber.fiber_transmittance, _args(_u(0, 2e5), _u(0.15, 0.35))),
    "fiber_latency_s": Case(fiber.fiber_latency_s, _args(_u(0, 2e5), _u(1.44, 1.5))),
    "fiber_reach_m": Case(
        lambda budget, a, fixed: fiber.fiber_reach_m(budget, a, fixed_loss_db=fixed),
        _args(_u(5, 40), _u(0.15, 0.35), _u(0, 3)),
    ),
    "fiber_length_for_transmittance_m": Case(
        fiber.fiber_length_for_transmittance_m, _args(_u(1e-4, 1.0), _u(0.15, 0.35))
    ),
    "free_space_path_loss_db": Case(
        rf.free_space_path_loss_db, _args(_u(5e5, 2e6), _u(1e10, 4e10))
    ),
    "rain_coefficients_p838": Case(
        rf.rain_coefficients_p838,
        _args(_u(1e10, 4e10), _u(0.1, 1.5), _u(0, 1.5)),
        out_core=((), ()),
    ),
    "rain_specific_attenuation_db_per_km": Case(
        rf.rain_specific_attenuation_db_per_km, _args(_u(0, 100), _u(1e10, 4e10), _u(0.1, 1.5))
    ),
    "rain_effective_path_length_m": Case(
        lambda el, f, rate, lat: rf.rain_effective_path_length_m(
            el, f, rate, station_latitude_rad=lat
        ),
        _args(_u(0.1, 1.5), _u(1e10, 4e10), _u(1, 100), _u(-1, 1)),
    ),
    "rain_attenuation_db": Case(
        lambda el, f, rate, h: rf.rain_attenuation_db(el, f, rate, station_altitude_m=h),
        _args(_u(0.1, 1.5), _u(1e10, 4e10), _u(0, 100), _u(0, 2e3)),
    ),
    "gaseous_attenuation_db": Case(rf.gaseous_attenuation_db, _args(_u(0.1, 1.5), _u(0.1, 1.0))),
    "carrier_to_noise_density_dbhz": Case(
        rf.carrier_to_noise_density_dbhz, _args(_u(30, 70), _u(0, 20), _u(170, 210))
    ),
    "carrier_to_noise_db": Case(rf.carrier_to_noise_db, _args(_u(60, 110), _u(1e6, 1e9))),
    "link_margin_db": Case(rf.link_margin_db, _args(_u(-5, 20), _u(0, 12))),
    "shannon_capacity_bps": Case(rf.shannon_capacity_bps, _args(_u(1e6, 1e9), _u(-5, 30))),
    # --- link budget --------------------------------------------------------------------------
    "compute_link_budget[range_m]": Case(
        lambda rng: link_budget.compute_link_budget("micius-2017", range_m=rng),
        _args(_u(6e5, 1.2e6)),
        out_core=((),) * BUDGET_ARRAYS,
    ),
    "compute_link_budget[elevation_rad, weather]": Case(
        lambda el, w: link_budget.compute_link_budget(
            "ground-haps-20km", elevation_rad=el, weather_loss_db=w
        ),
        _args(_u(10 * DEG, 90 * DEG), _u(0, 5)),
        out_core=((),) * BUDGET_ARRAYS,
    ),
    "qkd_terms": Case(
        lambda eta: link_budget.qkd_terms(MICIUS, eta),
        _args(lambda r, s: 10 ** r.uniform(-6, 0, s)),
        out_core=((), (), (), ()),
    ),
    "LinkBudgetTable.evaluate": Case(
        MICIUS_TABLE.evaluate, _micius_pairs, out_core=((), (), (), ())
    ),
    # --- QKD ----------------------------------------------------------------------------------
    "binary_entropy": Case(qkd.binary_entropy, _args(_u(0, 1))),
    "iot_bb84_key_rate": Case(qkd.iot_bb84_key_rate, _args(_u(0, 1e3), _u(0, 0.2))),
    "secret_key_rate_bps": Case(qkd.secret_key_rate_bps, _args(_u(0, 1e-3), _u(1e6, 1e9))),
    "dark_count_prob": Case(
        lambda rate, gate: qkd.dark_count_prob(rate, gate, n_detectors=4),
        _args(_u(0, 1e3), _u(1e-10, 1e-8)),
    ),
    "combine_noise_probs": Case(qkd.combine_noise_probs, _args(_u(0, 1e-3), _u(0, 1e-3))),
    "background_count_prob": Case(
        lambda radiance, fov, d, dl, gate, eff, lam, t: qkd.background_count_prob(
            radiance,
            fov_full_angle_rad=fov,
            aperture_diameter_m=d,
            filter_bandwidth_m=dl,
            gate_width_s=gate,
            detector_efficiency=eff,
            wavelength_m=lam,
            receiver_transmittance=t,
        ),
        _args(
            lambda r, s: 10 ** r.uniform(-2, 8, s),
            _u(1e-5, 1e-3),
            _u(0.1, 1.5),
            _u(1e-10, 5e-9),
            _u(1e-10, 5e-9),
            _u(0.1, 0.9),
            _u(700 * NM, 1600 * NM),
            _u(0.2, 1.0),
        ),
    ),
    "bb84_gain": Case(qkd.bb84_gain, _args(_u(0, 1), _u(0.05, 1), _u(0, 1e-5))),
    "bb84_qber": Case(qkd.bb84_qber, _args(_u(1e-6, 1), _u(0.05, 1), _u(0, 1e-5), _u(0, 0.05))),
    "decoy_bb84_rate_per_pulse[infinite]": Case(
        lambda eta, mu, y0, ed, f, q: qkd.decoy_bb84_rate_per_pulse(
            eta, mu, dark_count_prob=y0, misalignment_error=ed, f_ec=f, sifting=q
        ),
        _args(
            lambda r, s: 10 ** r.uniform(-6, -1, s),
            _u(0.3, 0.8),
            _u(0, 1e-5),
            _u(0, 0.05),
            _u(1.05, 1.3),
            _u(0.5, 1.0),
        ),
    ),
    "decoy_bb84_rate_per_pulse[weak+vacuum]": Case(
        lambda eta, mu, y0: qkd.decoy_bb84_rate_per_pulse(
            eta, mu, dark_count_prob=y0, misalignment_error=0.033, f_ec=1.22, decoys=(0.1, 0.0)
        ),
        _args(lambda r, s: 10 ** r.uniform(-6, -1, s), _u(0.3, 0.8), _u(0, 1e-5)),
    ),
    "decoy_single_photon_bounds": Case(
        lambda eta, mu, y0, ed: qkd.decoy_single_photon_bounds(
            eta, mu, dark_count_prob=y0, misalignment_error=ed, decoys=(0.1, 0.0)
        ),
        _args(lambda r, s: 10 ** r.uniform(-6, -1, s), _u(0.3, 0.8), _u(0, 1e-5), _u(0, 0.05)),
        out_core=((), ()),
    ),
    "bbm92_gain_qber": Case(
        lambda ea, eb, mu: qkd.bbm92_gain_qber(ea, eb, mu, **BBM),
        _args(
            lambda r, s: 10 ** r.uniform(-4, 0, s),
            lambda r, s: 10 ** r.uniform(-4, 0, s),
            _u(1e-3, 0.1),
        ),
        out_core=((), ()),
    ),
    "bbm92_rate_per_pulse": Case(
        lambda ea, eb, mu, f: qkd.bbm92_rate_per_pulse(ea, eb, mu, f_ec=f, **BBM),
        _args(
            lambda r, s: 10 ** r.uniform(-3, 0, s),
            lambda r, s: 10 ** r.uniform(-3, 0, s),
            _u(1e-3, 0.1),
            _u(1.05, 1.3),
        ),
    ),
    "bbm92_dual_downlink": Case(
        lambda ea, eb, rate, na: qkd.bbm92_dual_downlink(
            ea,
            eb,
            pair_rate_hz=rate,
            coincidence_window_s=2e-9,
            noise_rate_a_hz=na,
            noise_rate_b_hz=50.0,
            misalignment_error=0.02,
            f_ec=1.16,
        ),
        _args(
            lambda r, s: 10 ** r.uniform(-5, -2, s),
            lambda r, s: 10 ** r.uniform(-5, -2, s),
            _u(1e6, 1e7),
            _u(10, 1e3),
        ),
        out_core=((),) * len(qkd.Bbm92Link._fields),
    ),
    # --- memory and entanglement --------------------------------------------------------------
    "memory_fidelity": Case(memory.memory_fidelity, _args(_u(0, 3), _u(0.1, 3))),
    "memory_time_to_live_s": Case(memory.memory_time_to_live_s, _args(_u(0.51, 1), _u(0.1, 3))),
    "storage_time_feasible": Case(
        memory.storage_time_feasible, _args(_u(0, 3), _u(0.1, 3), _u(0.6, 1))
    ),
    "stored_bell_pair_fidelity": Case(
        lambda t, t2, t1, f0: memory.stored_bell_pair_fidelity(t, t2, t1_s=t1, initial_fidelity=f0),
        _args(_u(0, 3), _u(0.1, 3), _u(3, 10), _u(0.25, 1)),
    ),
    "depolarizing_memory_fidelity": Case(
        memory.depolarizing_memory_fidelity, _args(_u(0, 3), _u(0.1, 3), _u(0.25, 1))
    ),
    "transmissivity_to_damping": Case(entanglement.transmissivity_to_damping, _args(_u(0, 1))),
    "amplitude_damping_fidelity": Case(entanglement.amplitude_damping_fidelity, _args(_u(0, 1))),
    "amplitude_damping_fidelity[both_qubits]": Case(
        lambda g: entanglement.amplitude_damping_fidelity(g, both_qubits=True), _args(_u(0, 1))
    ),
    "amplitude_damping_fidelity_pair": Case(
        entanglement.amplitude_damping_fidelity_pair, _args(_u(0, 1), _u(0, 1))
    ),
    "werner_swap_fidelity": Case(entanglement.werner_swap_fidelity, _args(_u(0, 1), _u(0, 1))),
    "werner_chain_fidelity": Case(
        entanglement.werner_chain_fidelity, _args(lambda r, s: r.uniform(0.25, 1, (*s, 5)))
    ),
    "werner_state": Case(entanglement.werner_state, _args(_u(0, 1)), out_core=((4, 4),)),
    "amplitude_damping_kraus": Case(
        entanglement.amplitude_damping_kraus, _args(_u(0, 1)), out_core=((2, 2, 2),)
    ),
    "apply_single_qubit_channel": Case(
        lambda f, g: entanglement.apply_single_qubit_channel(
            entanglement.werner_state(f), entanglement.amplitude_damping_kraus(g), 0
        ),
        _args(_u(0, 1), _u(0, 1)),
        out_core=((4, 4),),
    ),
    "amplitude_damp": Case(
        lambda f, g: entanglement.amplitude_damp(entanglement.werner_state(f), g, 1),
        _args(_u(0, 1), _u(0, 1)),
        out_core=((4, 4),),
    ),
    "phase_damp": Case(
        lambda f, c: entanglement.phase_damp(entanglement.werner_state(f), c, 0),
        _args(_u(0, 1), _u(0, 1)),
        out_core=((4, 4),),
    ),
    "bell_fidelity": Case(
        lambda f, g: entanglement.bell_fidelity(
            entanglement.amplitude_damp(entanglement.werner_state(f), g, 0), "psi-"
        ),
        _args(_u(0, 1), _u(0, 1)),
    ),
    "state_fidelity": Case(
        lambda f, g: entanglement.state_fidelity(
            entanglement.werner_state(f),
            entanglement.amplitude_damp(entanglement.werner_state(f), g, 1),
        ),
        _args(_u(0.3, 1), _u(0, 1)),
    ),
    "entanglement_swap": Case(
        lambda f, g: entanglement.entanglement_swap(
            entanglement.werner_state(f),
            entanglement.amplitude_damp(entanglement.bell_state(), g, 0),
        ),
        _args(_u(0.25, 1), _u(0, 1)),
        out_core=((4, 4),),
    ),
    "swap_chain": Case(
        lambda f, g: entanglement.swap_chain(
            [entanglement.werner_state(f), entanglement.werner_state(g), entanglement.bell_state()]
        ),
        _args(_u(0.25, 1), _u(0.25, 1)),
        out_core=((4, 4),),
    ),
    # --- energy and carbon --------------------------------------------------------------------
    "battery_step": Case(
        lambda soc, p_in, p_out, dt, cap: energy.battery_step(
            soc * cap,
            p_in,
            p_out,
            dt,
            capacity_j=cap,
            charge_efficiency=0.93,
            discharge_efficiency=0.97,
            reserve_j=0.3 * cap,
            max_charge_w=500.0,
        ),
        _args(_u(0, 1), _u(0, 800), _u(0, 800), _u(1, 600), _u(1e6, 5e6)),
        out_core=((),) * len(energy.BatteryStep._fields),
    ),
    "solar_power_w": Case(
        lambda a, eta, sunlit, cos_i, age: energy.solar_power_w(
            a, eta, sunlit, cos_i, degradation_per_year=0.0275, age_years=age
        ),
        _args(_u(0.5, 3), _u(0.2, 0.32), _u(0, 1), _u(-1, 1), _u(0, 10)),
    ),
    "haps_solar_power_w": Case(
        lambda el, a, eta, tau: energy.haps_solar_power_w(
            el, a, eta, atmospheric_transmittance=tau
        ),
        _args(_u(-1.5, 1.5), _u(5, 30), _u(0.2, 0.3), _u(0.9, 1.0)),
    ),
    "energy_j": Case(energy.energy_j, _args(_u(0, 2e3), _u(0, 600))),
    "energy_per_bit_j": Case(energy.energy_per_bit_j, _args(_u(0, 2e3), _u(0, 1e9))),
    "SatellitePowerModel.load_w": Case(
        lambda levels, q, c: SAT_POWER.load_w(levels, qkd_duty=q, compute_duty=c),
        _args(lambda r, s: r.integers(0, 4, (*s, 2)), _u(0, 1), _u(0, 1)),
    ),
    "SatellitePowerModel.solar_w": Case(SAT_POWER.solar_w, _args(_u(0, 1), _u(-1, 1))),
    "SatellitePowerModel.step": Case(
        lambda soc, sunlit, load, dt: SAT_POWER.step(
            soc * SAT_POWER.battery_capacity_j, sunlit, load, dt
        ),
        _args(_u(0, 1), _u(0, 1), _u(150, 400), _u(1, 600)),
        out_core=((),) * len(energy.BatteryStep._fields),
    ),
    "HapsPowerModel.load_w": Case(HAPS_POWER.load_w, _args(_u(0, 1), _u(0, 1))),
    "HapsPowerModel.solar_w": Case(HAPS_POWER.solar_w, _args(_u(-1.5, 1.5))),
    "HapsPowerModel.step": Case(
        lambda soc, el, load, dt: HAPS_POWER.step(
            soc * HAPS_POWER.battery_capacity_j, el, load, dt
        ),
        _args(_u(0, 1), _u(-1.5, 1.5), _u(300, 400), _u(1, 600)),
        out_core=((),) * len(energy.BatteryStep._fields),
    ),
    "GroundStationPowerModel.power_w": Case(
        lambda track, cryo: GROUND_POWER.power_w(track, cryocooler_on=cryo),
        _args(_u(0, 1), _u(0, 1)),
    ),
    "annual_carbon_intensity_g_per_kwh": Case(
        carbon.annual_carbon_intensity_g_per_kwh, _args(lambda r, s: r.choice(REGIONS, s))
    ),
    "carbon_intensity_g_per_kwh": Case(
        carbon.carbon_intensity_g_per_kwh,
        _args(lambda r, s: r.choice(REGIONS, s), _u(0, 4 * 24 * HOUR_S), _u(-3.1, 3.1)),
    ),
    "local_solar_time_s": Case(
        carbon.local_solar_time_s, _args(_u(0, 4 * 24 * HOUR_S), _u(-3.1, 3.1))
    ),
    "diurnal_factor": Case(carbon.diurnal_factor, _args(_u(0, 24 * HOUR_S), _u(0, 0.5))),
    "carbon_g": Case(carbon.carbon_g, _args(_u(0, 3e3), _u(0, 600), _u(10, 800))),
    "carbon_per_bit_g": Case(carbon.carbon_per_bit_g, _args(_u(0, 3e3), _u(0, 1e9), _u(10, 800))),
}


# Public functions and hot-path methods whose inputs do not broadcast elementwise, and why.
NOT_ELEMENTWISE = {
    "broadcast_vectors": "shape utility (no physical values): test_broadcast_vectors_lifts_xyz",
    "SiteGeometry.visible_pairs": "sparse (K,) list of the pairs above the mask, not a grid",
    "datetime_from_jd_fr": "returns one datetime object for one scalar instant",
    "jd_fr_from_datetime": "takes one datetime object",
    "time_grid": "builds a (T,) time axis from a start, a duration and a step",
    "walker_delta": "builds a constellation from an integer i:T/P/F pattern",
    "parse_tle_text": "parser of TLE text",
    "parse_omm_text": "parser of OMM text (XML / JSON / CSV)",
    "load_tle_file": "file loader",
    "find_passes": "event search; ragged list of passes",
    "propagate_teme": "satellites x (T,) times, (3, N, T): test_propagation_time_axis",
    "propagate_ecef": "satellites x (T,) times, (3, N, T): test_propagation_time_axis",
    "ConstellationPropagator.state_ecef": "one scalar instant per tick, (3, N) by design",
    "ConstellationPropagator.positions_ecef_m": "one scalar instant per tick, (3, N) by design",
    "load_skyfield": "loader of the DE421 ephemeris (no arguments)",
    "haps_drift": "generator of per-platform drift parameters from a count and a Generator",
    "haps_states_ecef": (
        "stations (H,) x times (T,), (3, H, T): test_haps.py::"
        "test_broadcasting_station_arrays_and_times, "
        "test_no_drift_holds_the_station_and_scalar_inputs"
    ),
    "gamma_gamma_samples": "random draws (values cannot equal a loop): test_samples_shapes",
    "bell_state": "a named constant state (string argument)",
    "bell_state_vector": "a named constant state (string argument)",
    "get_preset": "preset lookup by name",
    "preset_names": "no arguments",
    "link_from_params": "builds a LinkPreset from scalar equipment parameters",
    "LinkPreset.source_of": "metadata lookup by field name",
    "LinkBudget.to_json_dict": "serialisation of a computed budget",
    "grid_regions": "no arguments",
}


def _outputs(result) -> list:
    if dataclasses.is_dataclass(result):
        # the fields annotated as arrays; the rest (names, settings) do not follow the inputs
        return [
            getattr(result, f.name) for f in dataclasses.fields(result) if "ndarray" in str(f.type)
        ]
    if isinstance(result, tuple):
        return list(result)
    return [result]


def _take(values, leads, index):
    return [
        np.asarray(v)[(slice(None),) * lead + index] for v, lead in zip(values, leads, strict=True)
    ]


def _assert_same(got, want, case, where):
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype.kind in "biuUO" or want.dtype.kind in "biuUO":
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol, err_msg=where)


def _check_shapes(outs, case, batch, where):
    core = case.out_core or ((),) * len(outs)
    lead = case.out_lead or (0,) * len(outs)
    assert len(outs) == len(core), f"{where}: {len(outs)} outputs, table says {len(core)}"
    for k, out in enumerate(outs):
        expected = core[k][: lead[k]] + batch + core[k][lead[k] :]
        assert np.shape(out) == expected, f"{where}: output {k} has shape {np.shape(out)}"


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


@pytest.mark.parametrize("name", sorted(CASES))
def test_broadcasting(name):
    case = CASES[name]
    args = case.draw(np.random.default_rng(_seed(name)), BATCH)
    arg_lead = case.arg_lead or (0,) * len(args)
    out_lead = case.out_lead or None

    full = _outputs(case.call(*args))
    _check_shapes(full, case, BATCH, "(3, 4) inputs")
    leads = out_lead or (0,) * len(full)

    row = _outputs(case.call(*_take(args, arg_lead, (1,))))
    _check_shapes(row, case, BATCH[1:], "(4,) inputs")

    for i in range(BATCH[0]):
        for j in range(BATCH[1]):
            one = _outputs(case.call(*_take(args, arg_lead, (i, j))))
            _check_shapes(one, case, (), f"scalar inputs [{i}, {j}]")
            for k, (got, want) in enumerate(zip(_take(full, leads, (i, j)), one, strict=True)):
                _assert_same(got, want, case, f"output {k}, (3, 4) call at [{i}, {j}]")
            if i == 1:
                for k, (got, want) in enumerate(zip(_take(row, leads, (j,)), one, strict=True)):
                    _assert_same(got, want, case, f"output {k}, (4,) call at [{j}]")

    # Mixed shapes: numpy broadcasting of (3, 1) against (4,) equals the inputs broadcast in full.
    if case.mixed and len(args) > 1 and all(np.shape(a) == BATCH for a in args):
        mixed = [a[:, :1] if k % 2 == 0 else a[0] for k, a in enumerate(args)]
        want = _outputs(case.call(*[np.broadcast_to(m, BATCH) for m in mixed]))
        got = _outputs(case.call(*mixed))
        _check_shapes(got, case, BATCH, "mixed (3, 1) and (4,) inputs")
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, case, f"output {k}, mixed shapes")


def _public_callables() -> set[str]:
    names = set()
    for name in physics.__all__:
        obj = getattr(physics, name)
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if not attr.startswith("_") and inspect.isfunction(value):
                    names.add(f"{name}.{attr}")
        elif callable(obj):
            names.add(name)
    return names


def test_every_public_function_is_classified():
    tabled = {name.split("[")[0] for name in CASES}
    assert not tabled & set(NOT_ELEMENTWISE), tabled & set(NOT_ELEMENTWISE)
    public = _public_callables()
    missing = public - tabled - set(NOT_ELEMENTWISE)
    assert not missing, f"add a broadcasting case (or a reason) for: {sorted(missing)}"
    stale = (tabled | set(NOT_ELEMENTWISE)) - public
    assert not stale, f"not public (renamed?): {sorted(stale)}"


# --- the functions outside the elementwise table ---------------------------------------------


def test_broadcast_vectors_lifts_xyz():
    one, many, grid = geometry.broadcast_vectors(np.ones(3), np.ones((3, 4)), np.ones((3, 2, 4)))
    assert one.shape == (3, 1, 1) and many.shape == (3, 1, 4) and grid.shape == (3, 2, 4)
    np.testing.assert_array_equal(many[:, 0], np.ones((3, 4)))


def test_propagation_time_axis():
    # (3, N, T) for T instants; a scalar instant is T = 1; each instant alone gives its column.
    shell = orbits.walker_delta(53 * DEG, 6, 3, 1, LEO_M, EPOCH)
    jd, fr, _ = orbits.time_grid(EPOCH, 4 * 600.0, 600.0)
    for propagate in (orbits.propagate_teme, orbits.propagate_ecef):
        batch = propagate(shell, jd, fr)
        assert batch.position_m.shape == batch.velocity_m_per_s.shape == (3, 6, 5)
        assert batch.error_code.shape == (6, 5)
        for t in range(jd.size):
            one = propagate(shell, jd[t], fr[t])
            assert one.position_m.shape == (3, 6, 1)
            np.testing.assert_allclose(
                one.position_m[:, :, 0], batch.position_m[:, :, t], rtol=1e-12
            )
            np.testing.assert_allclose(
                one.velocity_m_per_s[:, :, 0], batch.velocity_m_per_s[:, :, t], rtol=1e-12
            )
        with pytest.raises(ValueError, match="1-D"):
            propagate(shell, np.full((2, 2), jd[0]), np.zeros((2, 2)))


@pytest.mark.parametrize("shape", [(), (4,), (3, 4)])
def test_samples_shapes(shape):
    # Random draws cannot equal a loop of scalar calls; the shapes must still follow the
    # parameters, and a seeded Generator repeats itself.
    alpha = np.full(shape, 4.0)
    beta = np.full(shape, 2.0)
    draw = turbulence.gamma_gamma_samples(alpha, beta, np.random.default_rng(3))
    assert np.shape(draw) == shape
    again = turbulence.gamma_gamma_samples(alpha, beta, np.random.default_rng(3))
    np.testing.assert_array_equal(draw, again)
