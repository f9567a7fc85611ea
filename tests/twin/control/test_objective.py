"""The control objective, main paper eq. (4)-(5) (twin.control.objective), and J in a run."""

import math

import numpy as np
import pytest

from twin.control.objective import (
    ObjectiveTotals,
    ObjectiveWeights,
    TickTerms,
    carbon_rate_kg_per_h,
)
from twin.engine import Engine
from twin.metrics import compute_metrics
from twin.scenarios import load_scenario


def test_eq5_carbon_rate_is_power_times_grid_intensity_in_kg_per_hour():
    # 1 kW from a 400 gCO2e/kWh grid emits 400 g an hour; 5 kW from 20 g/kWh (hydro) 100 g
    assert carbon_rate_kg_per_h([1_000.0, 5_000.0], [400.0, 20.0]) == pytest.approx([0.4, 0.1])


def test_tick_terms_come_from_the_classes_served_active_and_secure_time():
    served_ns = {  # class -> [served, active, secure] ns
        "type_i": [0, 1_000, 600],  # keyed 60 % of the time, never within 1 ms
        "type_ii": [300, 1_000, 400],
        "type_iii": [1_000, 1_000, 1_000],
        "type_iv": [0, 0, 0],
    }
    terms = TickTerms.of_tick(served_ns, latency_ratio=8.0, carbon_kg_per_h=2.5)
    assert terms.secure_ratio == pytest.approx((600 + 400) / 2_000)  # Type-I and II only
    assert terms.availability == pytest.approx((0 + 300 + 1_000) / 3_000)
    idle = TickTerms.of_tick({c: [0, 0, 0] for c in served_ns}, 0.0, 0.0)
    assert (idle.secure_ratio, idle.availability) == (1.0, 1.0)  # no demand: all of it met


def test_reward_weighs_the_four_terms_with_their_signs():
    terms = TickTerms(secure_ratio=0.5, latency_ratio=8.0, carbon_kg_per_h=2.0, availability=0.25)
    weights = ObjectiveWeights(secure=2.0, latency=0.1, carbon=0.5, availability=4.0)
    assert weights.reward(terms) == pytest.approx(2.0 * 0.5 - 0.1 * 8.0 - 0.5 * 2.0 + 4.0 * 0.25)


def test_j_discounts_per_simulated_second_and_means_are_per_tick():
    weights = ObjectiveWeights(secure=1.0, latency=0.0, carbon=0.0, availability=0.0,
                               discount_per_s=0.5)  # fmt: skip
    totals = ObjectiveTotals(weights, dt_s=2.0)
    for ratio in (1.0, 1.0, 0.5):
        totals.add(TickTerms(ratio, 0.0, 0.0, 1.0))
    out = totals.as_dict()
    assert out["J"] == pytest.approx(1.0 + 0.25 + 0.0625 * 0.5)  # gamma^(t dt): 1, 1/4, 1/16
    assert out["mean_reward"] == pytest.approx(2.5 / 3)
    assert out["mean_terms"]["secure_ratio"] == pytest.approx(2.5 / 3)
    assert out["weights"]["discount_per_s"] == 0.5
    assert ObjectiveTotals(weights, dt_s=1.0).as_dict()["J"] is None  # no tick: not measured


@pytest.mark.parametrize(
    ("change", "message"),
    [({"latency": -1.0}, "latency must be >= 0"), ({"discount_per_s": 0.0}, r"within \(0, 1\]")],
)
def test_bad_weights_are_refused_with_the_name_and_value(change, message):
    with pytest.raises(ValueError, match=message):
        ObjectiveWeights(**change)


def test_a_runs_j_is_the_sum_of_its_ticks_rewards_and_its_terms_are_measured():
    """case-grid-eclipse, 120 s: every cross-border flow rides a satellite through an OGS, so
    the carbon term is the OGS's grid power times intensity, and key-aware (which keeps the
    flows' keys) scores a higher J than static-sp."""
    objective = {}
    for controller in ("static-sp", "key-aware"):
        engine = Engine(load_scenario("case-grid-eclipse"), controller=controller)
        result = engine.run(duration_s=120)
        got = compute_metrics(result, engine)["metrics"]["objective"]
        rewards = [r.reward for r in result.records]
        assert got["J"] == pytest.approx(math.fsum(rewards), rel=1e-12)
        assert got["mean_reward"] == pytest.approx(np.mean(rewards), rel=1e-12)
        terms = got["mean_terms"]
        # every OGS draws the same wall-plug power; the carbon term is a whole number of OGS
        # (1-2 per path) times that power times WORLD's intensity, a few kg CO2e/h
        ogs_w = engine.ogs_power.power_w(1.0)
        assert 0.5 * ogs_w * 300 / 1e6 < terms["carbon_kg_per_h"] < 3 * ogs_w * 700 / 1e6
        assert 5 < terms["latency_ratio"] < 20  # 5-20 ms paths through the space segment
        assert 0 <= terms["secure_ratio"] <= 1 and 0 <= terms["availability"] <= 1
        objective[controller] = got
    assert objective["key-aware"]["J"] > objective["static-sp"]["J"]
    assert (
        objective["key-aware"]["mean_terms"]["secure_ratio"]
        > objective["static-sp"]["mean_terms"]["secure_ratio"]
    )
