"""The single-process engine: determinism, exact key accounting, baselines."""

import json

import pytest

from twin.engine import Engine
from twin.metrics import compute_metrics, metrics_json
from twin.network.traffic import Flow, TrafficClass
from twin.scenarios import load_scenario

FLOWS = [
    # a local Type-I loop over short fibre with QKD (munich-factory - dlr-oberpfaffenhofen)
    Flow("local-control", "munich-factory", "dlr-oberpfaffenhofen", TrafficClass.TYPE_I, 64_000),
    Flow("telemetry", "munich-factory", "frankfurt-hub", TrafficClass.TYPE_II, 1_000_000),
    Flow("bulk", "hamburg-port", "munich-factory", TrafficClass.TYPE_IV, 10_000_000),
]


def run_small(controller="static-sp", seconds=120.0, seed=None):
    engine = Engine(load_scenario("small"), controller=controller, seed=seed, flows=FLOWS)
    result = engine.run(duration_s=seconds)
    return engine, result, compute_metrics(result, engine)


def without_wall(metrics):
    data = json.loads(metrics_json(metrics))
    data.pop("wall_seconds")
    return data


def test_same_scenario_and_seed_give_identical_metrics():
    _, _, first = run_small()
    _, _, second = run_small()
    assert metrics_json({**first, "wall_seconds": 0}) == metrics_json({**second, "wall_seconds": 0})


def test_key_ledgers_balance_and_keys_are_consumed():
    engine, result, metrics = run_small()
    for buffer in list(engine.link_buffers.values()) + list(engine.pools.values()):
        buffer.check_ledger(deep=True)
    keys = metrics["metrics"]["keys"]
    assert keys["generated_bits"] == sum(
        keys[k]
        for k in (
            "consumed_bits",
            "expired_bits",
            "discarded_bits",
            "destroyed_bits",
            "buffered_bits",
        )
    )
    assert keys["generated_bits"] > 0
    # the local Type-I loop relays OTP key over its QKD fibre and consumes key bits = data bits
    local = result.flows["local-control"]
    assert local.key_bits_used == local.delivered_bits > 0
    assert metrics["metrics"]["secure_session_uptime_pct"] == pytest.approx(100.0)


def test_type_iv_needs_no_quantum_keys():
    _, result, _ = run_small()
    bulk = result.flows["bulk"]
    assert bulk.key_bits_used == 0
    assert bulk.served_ns == bulk.active_ns > 0


def test_unknown_controller_is_a_clear_error():
    known = "known: ai-sdqn, dijkstra-distance, drl-only, key-aware, mpc-only, static-sp"
    with pytest.raises(ValueError, match=known):
        Engine(load_scenario("small"), controller="magic", flows=FLOWS)


def test_dijkstra_distance_runs_and_differs_only_by_routing():
    _, _, sp = run_small("static-sp")
    _, _, dd = run_small("dijkstra-distance")
    assert dd["controller"] == "dijkstra-distance"
    assert dd["metrics"]["keys"]["generated_bits"] == sp["metrics"]["keys"]["generated_bits"]


def test_haps_battery_drains_at_night_by_its_load():
    """The small scenario starts at 00:00 UTC on 21 June: the sun is below the horizon at the
    Munich HAPS (about -18 deg), so its battery pays the whole load through the discharge
    efficiency, 600 J of propulsion and payload per 1 s tick and more; the satellites' batteries
    are stepped apart (their own platform)."""
    scenario = load_scenario("small")
    engine = Engine(scenario, flows=[])
    model = engine.haps_power
    result = engine.run(duration_s=60)
    soc_j = engine.nodes.soc_j("haps")
    assert soc_j.shape == (len(scenario.haps),) == (1,)
    # no flows: no optical link of the HAPS carries traffic, but an up link still powers the
    # terminal and QKD payload (the load depends on links, not on traffic)
    low = model.propulsion_avionics_w * 60 / model.discharge_efficiency
    high = float(model.load_w(1.0, 1.0)) * 60 / model.discharge_efficiency
    drained_j = model.battery_capacity_j - float(soc_j[0])
    assert low - 1e-6 <= drained_j <= high + 1e-6
    assert result.records[-1].haps_soc_min == pytest.approx(
        float(soc_j[0]) / model.battery_capacity_j, rel=1e-12
    )
    assert result.haps_below_reserve_ticks == 0


def test_metrics_read_each_engine_view_once(monkeypatch):
    # the engine's link_buffers, pools and memories are gathered from the node sets on every
    # access; compute_metrics indexing them per key made the end of a day of mega (~50,000
    # link buffers) quadratic, longer than the run itself
    scenario = load_scenario("small")
    engine = Engine(scenario)
    result = engine.run(duration_s=60)
    reads = {"link_buffers": 0, "pools": 0, "memories": 0}
    for name in reads:
        view = getattr(Engine, name)

        def counted(self, _view=view, _name=name):
            reads[_name] += 1
            return _view.fget(self)

        monkeypatch.setattr(Engine, name, property(counted))
    compute_metrics(result, engine)
    assert len(engine.nodes.link_buffers()) > 2  # enough keys that per-key reads would show
    assert reads == {"link_buffers": 1, "pools": 1, "memories": 1}, reads


def test_ground_stations_carbon_follows_the_grid_at_the_scenarios_time_of_day():
    """case-munich-pretoria starts at 17:00 UTC: each tick's OGS carbon is their power at
    their grid's intensity 17:00 + t after the UTC midnight (not t after midnight, which put
    the evening's Munich at 00:45 local solar time, its dirtiest hour)."""
    import numpy as np

    from twin.physics.carbon import carbon_g, carbon_intensity_g_per_kwh

    scenario = load_scenario("case-munich-pretoria")
    assert scenario.time.start_day_s == 17 * 3600.0
    engine = Engine(scenario, controller="static-sp", flows=[])  # no traffic: fixed power only
    result = engine.run(duration_s=3.0)
    ogs = [s for s in scenario.sites if s.kind == "ogs"]
    power_w = float(engine.ogs_power.power_w(1.0))
    for record in result.records:
        intensity = carbon_intensity_g_per_kwh(
            np.array([s.grid_region for s in ogs]),
            scenario.time.start_day_s + record.t_s,
            np.radians([s.lon_deg for s in ogs]),
        )
        want = float(np.sum(carbon_g(power_w, scenario.time.tick_s, intensity)))
        assert record.carbon_g == pytest.approx(want, rel=1e-12)


def test_each_bit_costs_every_ground_site_it_crosses_its_energy_and_carbon():
    """The traffic-dependent energy: 10 nJ (the scenario's ground_node_j_per_bit) per bit per
    ground site of its path, counted from the flows' fibre paths (constant over the minute),
    and added to the run's energy and carbon; 0 J/bit leaves only the fixed power."""
    from twin.network.messages import MessageKind

    scenario = load_scenario("small")
    assert scenario.equipment.ground_node_j_per_bit == 1e-8
    engine = Engine(scenario, controller="static-sp", flows=FLOWS)
    engine.trace = []
    result = engine.run(duration_s=60.0)
    paths = {}
    for envelope in engine.trace:
        if envelope.kind is MessageKind.FORWARDING_UPDATE:
            paths.setdefault(envelope.payload["flow"], set()).add(tuple(envelope.payload["path"]))
    sites = {s.name for s in scenario.sites}
    crossings = 0
    for name, state in result.flows.items():
        (path,) = paths[name]  # one path all minute
        crossings += state.delivered_bits * sum(node in sites for node in path)
    assert crossings > 0
    assert result.transport_energy_j == pytest.approx(1e-8 * crossings, rel=1e-12)
    assert 0 < result.transport_carbon_g < result.carbon_total_g

    free = scenario.model_copy(
        update={"equipment": scenario.equipment.model_copy(update={"ground_node_j_per_bit": 0})}
    )
    fixed = Engine(free, controller="static-sp", flows=FLOWS).run(duration_s=60.0)
    assert fixed.transport_energy_j == fixed.transport_carbon_g == 0.0
    assert result.energy_j - fixed.energy_j == pytest.approx(result.transport_energy_j, rel=1e-6)
    assert result.carbon_total_g - fixed.carbon_total_g == pytest.approx(
        result.transport_carbon_g, rel=1e-6
    )


def test_the_engine_builds_one_edge_lookup_per_snapshot_with_a_planning_controller(monkeypatch):
    # a planning controller's view of the unscheduled snapshot adds a lookup; kept three by
    # order of building, that began a cycle in which every later tick built two (mega:
    # 1,395 for 721 snapshots), each losing its memos
    import twin.engine

    built = []

    class Counted(twin.engine.EdgeLookup):
        def __init__(self, snapshot):
            built.append(snapshot.t_ns)
            super().__init__(snapshot)

    monkeypatch.setattr(twin.engine, "EdgeLookup", Counted)
    scenario = load_scenario("case-grid-eclipse")
    engine = Engine(scenario, controller="mpc-only")
    engine.run(duration_s=150)
    ticks = round(150 / scenario.time.tick_s)
    plans = 3  # at the decisions of 0, 60 and 120 s
    assert len(built) <= ticks + 2 + plans, (len(built), ticks)
