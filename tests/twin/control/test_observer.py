"""The observer (main paper sec. VI; twin.control.observer): sensors, Kalman filters, link risk."""

import numpy as np
import pytest

from twin.control.observer import (
    DIMM_LOG_R0_SIGMA,
    NOWCAST_SIGMA_DB,
    NOWCAST_SIGMA_DB_PER_H,
    Observer,
)
from twin.network.topology import TopologyModel
from twin.scenarios import load_scenario

OBERPF = "dlr-oberpfaffenhofen"
MINUTE_NS = 60 * 10**9


@pytest.fixture(scope="module")
def storm():
    scenario = load_scenario("storm")
    return scenario, TopologyModel(scenario)


def test_the_kalman_filter_tracks_r0_through_the_squall_lines_turbulence(storm):
    scenario, topology = storm
    observer = Observer(scenario, topology, seed=0)
    at = observer.stations.index(OBERPF)
    estimates = {}
    for minute in range(0, 91):
        obs = observer.observe(minute * MINUTE_NS)
        estimates[minute] = (float(np.exp(obs.log_r0_mean[at])), float(obs.log_r0_var[at]))
    # clear air (HV 5/7 at 600 m: r0 ~ 5 cm) and, from ~0.5 h, the squall line (Cn2 2e-13)
    truth_calm = float(observer._true_r0(np.array([1.7e-14]))[at])
    truth_storm = float(observer._true_r0(np.array([2.0e-13]))[at])
    r0, var = estimates[20]
    assert abs(np.log(r0 / truth_calm)) < 3 * np.sqrt(var)
    r0, var = estimates[90]
    assert abs(np.log(r0 / truth_storm)) < 3 * np.sqrt(var) and r0 < 0.5 * truth_calm
    # the variance settles where the walk's growth and the readings balance: below one reading's
    assert var < DIMM_LOG_R0_SIGMA**2


def test_readings_are_a_function_of_seed_station_and_time_only(storm):
    scenario, topology = storm
    a, b, c = (Observer(scenario, topology, seed=s) for s in (0, 0, 1))
    for minute in range(5):
        one, two, other = (o.observe(minute * MINUTE_NS) for o in (a, b, c))
    assert np.array_equal(one.r0_measured_m, two.r0_measured_m)
    assert not np.array_equal(one.r0_measured_m, other.r0_measured_m)
    with pytest.raises(ValueError, match="forward"):
        a.observe(0)


def test_the_nowcast_error_grows_with_the_lead_and_the_carbon_forecast_stays_near_the_truth(storm):
    scenario, topology = storm
    observer = Observer(scenario, topology, seed=3)
    now, ahead = observer.observe(0, lead_s=0.0), observer.observe(0, lead_s=1800.0)
    assert now.nowcast_sigma_db == NOWCAST_SIGMA_DB
    assert ahead.nowcast_sigma_db == NOWCAST_SIGMA_DB + NOWCAST_SIGMA_DB_PER_H / 2
    from twin.physics.carbon import carbon_intensity_g_per_kwh

    truth = carbon_intensity_g_per_kwh(
        np.array([s.grid_region for s in scenario.sites]), scenario.time.start_day_s + 1800.0,
        np.radians([s.lon_deg for s in scenario.sites]),
    )  # fmt: skip
    rel = ahead.carbon_forecast_g_per_kwh / truth - 1
    assert np.all(np.abs(rel) < 5 * 0.06) and np.any(rel != 0)


def test_links_of_stations_the_front_will_cover_are_predicted_to_fail(storm):
    """At 50 min Zugspitze is clear and goes under cloud at ~0.9 h (the scenario's timeline):
    a 15-minute nowcast gives its links an outage probability near 1; the southern-France
    stations, clear all night, near 0. The mean loss is the link's loss now when the weather
    does not change."""
    scenario, topology = storm
    observer = Observer(scenario, topology, seed=0)
    t_ns = 50 * MINUTE_NS
    obs = observer.observe(t_ns, lead_s=900.0)
    snap = topology.snapshot(t_ns)
    forecast = observer.link_loss(snap, obs)
    names = snap.node_names
    ground = [names[a] for a in snap.a[forecast.edges]]
    at_zugspitze = np.array([g == "zugspitze" for g in ground])
    in_france = np.array([g in ("calern-meo", "haute-provence", "pic-du-midi") for g in ground])
    assert at_zugspitze.any() and in_france.any()
    assert forecast.outage_probability[at_zugspitze].min() > 0.99
    assert forecast.outage_probability[in_france].max() < 0.01
    loss_now = -10 * np.log10(snap.transmittance[forecast.edges[in_france]])
    assert np.abs(forecast.mean_db[in_france] - loss_now).max() < 5 * NOWCAST_SIGMA_DB * 3
    assert np.all(forecast.std_db > 0)


def test_the_zenith_outage_follows_the_front_station_by_station(storm):
    """The contact plan's reading (two minutes ahead): Zugspitze blocked from ~1 h, Wettzell
    (further east) only from ~3.8 h, southern France never in the first hours."""
    scenario, topology = storm
    observer = Observer(scenario, topology, seed=0)
    at = {name: observer.stations.index(name) for name in ("zugspitze", "wettzell", "calern-meo")}
    outage = {}
    for minute in (30, 70, 120):
        obs = observer.observe(minute * MINUTE_NS, lead_s=120.0)
        outage[minute] = observer.zenith_outage_probability(obs)
    assert outage[30][at["zugspitze"]] < 0.01 and outage[70][at["zugspitze"]] > 0.99
    assert outage[120][at["wettzell"]] < 0.01
    assert max(p[at["calern-meo"]] for p in outage.values()) < 0.01
