"""LinkBudgetTable against the reference budget (twin.physics.link_budget)."""

import dataclasses

import numpy as np
import pytest

from twin.physics import geometry
from twin.physics.link_budget import compute_link_budget
from twin.physics.link_table import LinkBudgetTable
from twin.physics.presets import get_preset
from twin.units import DEG

HUNDREDTH_DB = 0.01


@pytest.mark.parametrize("preset", ["starlink-like-550km-1550", "micius-2017", "ground-haps-20km"])
def test_table_matches_reference_budget(preset):
    link = get_preset(preset)
    site_altitudes_m = np.array([0.0, 960.0, 2_400.0, 960.0])
    table = LinkBudgetTable(link, site_altitudes_m, min_elevation_rad=15 * DEG)
    rng = np.random.default_rng(7)
    site = rng.integers(0, site_altitudes_m.size, 400)
    elevation = rng.uniform(15 * DEG, 90 * DEG, site.size)
    slant = geometry.slant_range_from_elevation_m(
        elevation, link.platform_altitude_m, site_altitude_m=site_altitudes_m[site]
    )
    got = table.evaluate(site, elevation, slant, weather_loss_db=0.5)
    for alt in np.unique(site_altitudes_m):
        mask = site_altitudes_m[site] == alt
        ref = compute_link_budget(
            dataclasses.replace(link, ground_altitude_m=float(alt)),
            elevation_rad=elevation[mask],
            weather_loss_db=0.5,
            fade_margin=False,
        )
        np.testing.assert_allclose(got.total_loss_db[mask], ref.total_loss_db, atol=HUNDREDTH_DB)
        np.testing.assert_allclose(got.qber[mask], ref.qber, atol=1e-4)
        # 0.01 dB of loss moves the key rate by ~0.25 %; away from the cut-off the table keeps it
        np.testing.assert_allclose(got.skr_bps[mask], ref.skr_bps, rtol=5e-3, atol=1e-3)


def test_geometry_follows_the_true_slant_range():
    link = get_preset("starlink-like-550km-1550")
    table = LinkBudgetTable(link, [0.0], min_elevation_rad=20 * DEG)
    el = np.full(2, 60 * DEG)
    near_far = np.array([600e3, 1200e3])
    loss = table.evaluate([0, 0], el, near_far).total_loss_db
    # far-field capture falls as range^2: doubling the range costs ~6 dB (less the pointing term)
    assert 5.5 < loss[1] - loss[0] < 6.1


def test_rejects_elevations_below_the_mask_and_bad_inputs():
    link = get_preset("starlink-like-550km-1550")
    table = LinkBudgetTable(link, [0.0], min_elevation_rad=20 * DEG)
    with pytest.raises(ValueError, match="below the table's mask"):
        table.evaluate([0], [10 * DEG], [1.5e6])
    with pytest.raises(ValueError, match="degrees passed"):
        LinkBudgetTable(link, [0.0], min_elevation_rad=20.0)
    with pytest.raises(ValueError, match="isl"):
        LinkBudgetTable(get_preset("isl-leo-1550"), [0.0], min_elevation_rad=0.3)


def test_evaluate_broadcasts_over_pairs():
    link = get_preset("micius-2017")
    table = LinkBudgetTable(link, [960.0], min_elevation_rad=10 * DEG)
    el = np.array([30, 45, 60]) * DEG
    slant = geometry.slant_range_from_elevation_m(
        el, link.platform_altitude_m, site_altitude_m=960.0
    )
    all_at_once = table.evaluate(np.zeros(3, int), el, slant)
    for k in range(3):
        one = table.evaluate([0], el[k : k + 1], slant[k : k + 1])
        assert one.total_loss_db.shape == (1,)
        assert one.skr_bps[0] == pytest.approx(all_at_once.skr_bps[k])


def _reference_total_loss_db(table, site, elevation, slant, weather_loss_db):
    # evaluate's total loss composed from the checked public fso functions, as it was written
    # before its geometry and pointing went through the unchecked cores
    from twin.physics.fso import (
        beam_radius_from_divergence_m,
        geometric_efficiency,
        pointing_efficiency_mean,
        static_misalignment_efficiency,
    )
    from twin.units import linear_to_db

    tx, rx = table.link.tx, table.link.rx
    x = 2.0 * table._table_of_site[site] + table._unit_elevation(elevation)
    air_db = np.interp(x, table._air_x, table._air_db)
    w = beam_radius_from_divergence_m(slant, tx.tx_divergence_half_angle_rad, tx.waist_radius_m)
    eta = (
        geometric_efficiency(w, rx.aperture_diameter_m, rx.obscuration_diameter_m)
        * pointing_efficiency_mean(w, tx.pointing_jitter_rms_rad, slant)
        * static_misalignment_efficiency(w, tx.pointing_bias_rad, slant)
    )
    return linear_to_db(eta) + air_db + table._terminal_db + weather_loss_db


@pytest.mark.parametrize("bias_rad", [0.0, 2e-6])
def test_evaluate_is_the_checked_composition_bit_for_bit(bias_rad):
    # the per-pair geometry and pointing skip the public functions' argument checks (the
    # terminals are checked once, when the table is built); the values must be theirs exactly
    link = get_preset("micius-2017")  # an obscured receiver
    link = dataclasses.replace(link, tx=dataclasses.replace(link.tx, pointing_bias_rad=bias_rad))
    alts = np.array([0.0, 960.0])
    table = LinkBudgetTable(link, alts, min_elevation_rad=15 * DEG)
    rng = np.random.default_rng(3)
    site = rng.integers(0, 2, 300)
    elevation = rng.uniform(15 * DEG, 90 * DEG, site.size)
    slant = geometry.slant_range_from_elevation_m(
        elevation, link.platform_altitude_m, site_altitude_m=alts[site]
    )
    weather = rng.uniform(0.0, 3.0, site.size)
    got = table.evaluate(site, elevation, slant, weather)
    want = _reference_total_loss_db(table, site, elevation, slant, weather)
    np.testing.assert_array_equal(got.total_loss_db, want)
    np.testing.assert_array_equal(
        got.skr_bps, np.interp(want, table._loss_grid_db, table._skr_grid_bps, right=0.0)
    )


@pytest.mark.parametrize("bad", [np.nan, -1.0, np.inf])
def test_evaluate_still_rejects_bad_ranges(bad):
    table = LinkBudgetTable(get_preset("micius-2017"), [0.0], min_elevation_rad=15 * DEG)
    with pytest.raises(ValueError, match="range_m must be"):
        table.evaluate([0, 0], [0.5, 0.6], [1.0e6, bad])
