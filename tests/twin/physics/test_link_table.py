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
