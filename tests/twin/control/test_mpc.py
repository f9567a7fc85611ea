"""The MPC tier's energy plan (eq. 6; twin.control.mpc) against a cvxpy oracle, and mpc-only."""

import dataclasses
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from twin.control.mpc import (
    EnergyForecast,
    EnergyPlanner,
    MpcOnly,
    PlanWeights,
    energy_forecast,
    forward_backward_sweep,
    solve_reference,
)
from twin.engine import Engine
from twin.metrics import compute_metrics
from twin.network.topology import EdgeKind, TopologyModel
from twin.scenarios import load_scenario

pytest.importorskip("cvxpy")

CAPACITY_J = 200 * 3600.0  # case-grid-eclipse's 200 Wh batteries


def forecast(generation_w: float, soc: float, seed: int = 1, s: int = 6, h: int = 30):
    """Satellites on a 95-minute orbit (62 min of sun), contacts now and then."""
    rng = np.random.default_rng(seed)
    t = np.arange(h)
    phase = rng.uniform(0, 95, s)[:, None]
    lit = ((t[None, :] + phase) % 95) < 62
    contact = np.clip(np.sin((t[None, :] + phase) / 3.0), 0, 1) * (rng.uniform(0, 1, (s, 1)) < 0.7)
    return EnergyForecast(
        contact=contact, generation_w=np.where(lit, generation_w, 0.0),
        soc_fraction=np.full(s, soc), fixed_load_w=195.0, terminals_on_w=80.0,
        capacity_j=CAPACITY_J, reserve_fraction=0.3, charge_efficiency=0.95,
        discharge_efficiency=0.95, step_s=60.0,
    )  # fmt: skip


@pytest.mark.parametrize(("generation_w", "soc"), [(330.0, 0.95), (150.0, 0.45)])
def test_the_osqp_plan_matches_the_cvxpy_oracle(generation_w, soc):
    """Both regimes: batteries that keep their reserve (the terminals follow every contact),
    and batteries that cannot (the plan sleeps and the reserve slack takes the rest). The
    sweep's start is the optimum in both, so OSQP confirms it after one iteration (from zero:
    725 here, and a binding reserve did not converge in 4,000)."""
    f = forecast(generation_w, soc)
    got = EnergyPlanner(*f.contact.shape).plan(f)
    want = solve_reference(f)
    assert want.status == "optimal" and got.status == "solved"
    assert got.iterations == 1
    assert np.abs(got.duty - want.duty).max() < 2e-3
    assert np.abs(got.soc_fraction - want.soc_fraction).max() < 2e-3  # 0.2 % of capacity
    if generation_w > 300:
        assert np.allclose(got.duty, f.contact, atol=2e-3) and got.below_reserve.max() < 1e-3
    else:
        assert got.below_reserve.max() > 0.05 and got.duty.sum() < f.contact.sum()


@pytest.mark.parametrize(("generation_w", "soc"), [(330.0, 0.95), (150.0, 0.45), (100.0, 1.0)])
def test_the_forward_backward_sweep_reaches_the_oracles_optimum(generation_w, soc):
    """The sweep alone (no OSQP): where it settles, its duty and charge are the optimum to
    the oracle's accuracy, and its multipliers make the KKT conditions hold."""
    f = forecast(generation_w, soc)
    swept = forward_backward_sweep(f)
    want = solve_reference(f)
    assert swept.converged.all() and swept.passes <= 10
    u, x, sigma = swept.primal.reshape(3, *f.contact.shape)
    assert np.abs(u - want.duty).max() < 1e-5
    # (the oracle, an interior-point solver, stops ~3e-5 short of a full battery's bound)
    assert np.abs(x - want.soc_fraction).max() < 1e-4
    assert np.abs(sigma - want.below_reserve).max() < 1e-4
    # stationarity of the QP's Lagrangian, P z + q + A^T y = 0, with OSQP's own matrices
    planner = EnergyPlanner(*f.contact.shape)
    scale = f.step_s / f.capacity_j
    p_upper, a = planner._matrices(scale * f.terminals_on_w / f.discharge_efficiency)
    p_full = p_upper + sp.triu(p_upper, k=1).T
    n = f.contact.size
    w = PlanWeights()
    q = np.concatenate([-2 * w.duty * f.contact.ravel(), np.full(n, -2 * w.charge),
                        np.full(n, w.reserve_slack)])  # fmt: skip
    gradient = p_full @ swept.primal + q + a.T @ swept.dual
    assert np.abs(gradient).max() < 1e-9


def test_where_the_sweep_cycles_osqp_takes_those_satellites_on_and_restores_exactly():
    """A binding reserve the sweep cannot settle (it cycles between sleeping and waking) on
    three of six satellites: those start from the last plan moved on (zero at first), the
    settled ones from the sweep, whose plans match the oracle; a re-plan warm-starts in fewer
    iterations, and a planner restored from a checkpoint plans the same."""
    f = forecast(200.0, 0.35, seed=2)
    swept = forward_backward_sweep(f)
    assert 0 < swept.converged.sum() < len(swept.converged)
    planner = EnergyPlanner(*f.contact.shape)
    first = planner.plan(f)
    want = solve_reference(f)
    settled = swept.converged
    assert np.abs(first.duty[settled] - want.duty[settled]).max() < 2e-3
    restored = pickle.loads(pickle.dumps(planner))  # a checkpoint: OSQP's workspace dropped
    shifted = forecast(200.0, 0.33, seed=2)
    again, replayed = planner.plan(shifted, shift_steps=1), restored.plan(shifted, shift_steps=1)
    assert again.iterations < first.iterations
    assert np.array_equal(again.duty, replayed.duty)  # the same plan after a restore


def test_a_forecast_of_a_wrong_shape_is_refused():
    f = forecast(330.0, 0.9)
    with pytest.raises(ValueError, match="built for"):
        EnergyPlanner(5, 30).plan(f)
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        EnergyForecast(**{**f.__dict__, "contact": f.contact + 1.0})


def test_the_forecast_sees_the_contacts_g_t_has_and_no_sun_in_the_earths_shadow():
    scenario = load_scenario("case-grid-eclipse")
    topology = TopologyModel(scenario)
    model = scenario.equipment.satellite.power_model()
    n = topology.satellite_offset
    snap = topology.snapshot(0)
    optical = np.isin(snap.kind, [EdgeKind.FSO_GROUND_SPACE, EdgeKind.FSO_HAPS_SPACE])
    seen = np.unique(snap.b[optical & (snap.b >= n)]) - n
    _, contact = topology.satellite_state(0)
    assert np.array_equal(np.flatnonzero(contact), seen)  # clear sky at the start
    f = energy_forecast(topology, model, 0, np.full(contact.size, 0.9), horizon=60)
    # the run starts at dusk: over the hour some satellites pass into the shadow (no sun)
    assert (f.generation_w == 0).any() and (f.generation_w > 0).any()
    assert f.generation_w.max() == pytest.approx(model.solar_w(1.0), rel=1e-9)
    assert 0 < f.contact.mean() < 0.2


def test_mpc_only_sleeps_idle_terminals_and_its_turbo_mode_raises_type_i_uptime(monkeypatch):
    """case-grid-eclipse, 5 minutes. The energy plan alone (turbo mode off) puts the
    terminals of satellites without a contact to sleep (no standby load): less energy, the
    flows served as key-aware serves them, more charge kept. With turbo mode the satellites
    whose links run short of key make it faster: Type-I keeps its keys longer (measured 27.0 %
    against 18.7 %), at more energy than the plan alone and still less than key-aware. (The
    handover schedule, which moves flows as key-aware would not, is left out of all three.)"""
    import twin.control.mpc as mpc

    monkeypatch.setattr(MpcOnly, "plans_handovers", False)

    def run(controller):
        engine = Engine(load_scenario("case-grid-eclipse"), controller=controller)
        result = engine.run(duration_s=300)
        return compute_metrics(result, engine)["metrics"], result

    greedy, greedy_run = run("key-aware")
    turbo, _ = run("mpc-only")
    with monkeypatch.context() as m:
        m.setattr(mpc, "turbo_satellites", lambda view, reserve: np.zeros(0, dtype=np.int64))
        plain, plain_run = run("mpc-only")
    assert plain["energy_j"] < 0.95 * greedy["energy_j"]
    for key in ("secure_session_uptime_pct", "availability_pct", "handovers"):
        assert plain[key] == greedy[key], key
    assert min(r.battery_soc_min for r in plain_run.records) > min(
        r.battery_soc_min for r in greedy_run.records
    )
    assert turbo["secure_session_uptime_pct"] > plain["secure_session_uptime_pct"] + 5
    assert plain["energy_j"] < turbo["energy_j"] < greedy["energy_j"]


def test_turbo_mode_picks_satellites_whose_links_run_short_of_key_and_whose_battery_allows():
    """turbo_satellites: a satellite with an up optical link to an OGS or HAPS holding less
    than TURBO_KEY_S of the largest Type-I demand, and charge TURBO_SOC_MARGIN above the
    reserve; none without Type-I flows or with the batteries at the reserve."""
    import dataclasses

    from twin.control.mpc import TURBO_KEY_S, TURBO_SOC_MARGIN, turbo_satellites
    from twin.network.traffic import TrafficClass, demand_bits
    from twin.units import NS_PER_S

    scenario = load_scenario("case-grid-eclipse")
    engine = Engine(scenario, controller="key-aware")
    engine.run(duration_s=90)
    view = engine._planning_view(engine.topology.snapshot(90 * NS_PER_S))
    reserve = scenario.equipment.satellite.power_model().reserve_fraction
    chosen = turbo_satellites(view, reserve)
    snap, soc = view.snapshot, view.battery_soc
    sat0 = snap.n_nodes - soc.size
    need = TURBO_KEY_S * max(
        demand_bits(f, view.t_ns, NS_PER_S)
        for f in view.flows
        if f.traffic_class is TrafficClass.TYPE_I
    )
    downlink = (
        snap.up
        & np.isin(snap.kind, [EdgeKind.FSO_GROUND_SPACE, EdgeKind.FSO_HAPS_SPACE])
        & (snap.b >= sat0)
        & (snap.skr_bps > 0)
    )
    short = downlink & (view.key_fill.of_pairs(snap.a, snap.b) < need)
    want = [k for k in np.unique(snap.b[short] - sat0) if soc[k] >= reserve + TURBO_SOC_MARGIN]
    assert chosen.tolist() == want and len(want) > 0
    at_reserve = dataclasses.replace(view, battery_soc=np.full(soc.size, reserve + 0.1))
    assert turbo_satellites(at_reserve, reserve).size == 0
    no_type_i = dataclasses.replace(
        view, flows=tuple(f for f in view.flows if f.traffic_class is not TrafficClass.TYPE_I)
    )
    assert turbo_satellites(no_type_i, reserve).size == 0


@pytest.mark.parametrize(("laser_on", "laser_turbo"), [(0.0, 60.0), (40.0, 40.0), (40.0, 30.0)])
def test_without_a_turbo_level_stronger_than_on_there_is_no_turbo_mode(laser_on, laser_turbo):
    """A satellite whose turbo load is not above its "on" load (or whose "on" load is 0, which
    the schema allows) has no turbo mode: the engine builds (no division by the "on" load),
    keeps the key rates (gain 1) and the planner names no turbo satellite."""
    scenario = load_scenario("case-grid-eclipse")
    sat = scenario.equipment.satellite
    loads = sat.loads_w.model_copy(update={"laser_on": laser_on, "laser_turbo": laser_turbo})
    equipment = scenario.equipment.model_copy(
        update={"satellite": sat.model_copy(update={"loads_w": loads})}
    )
    scenario = scenario.model_copy(update={"equipment": equipment})
    engine = Engine(scenario, controller="mpc-only")
    assert engine.turbo_skr_gain == 1.0
    engine.run(duration_s=90)
    assert engine._plan.turbo.size == 0


def test_a_satellite_in_turbo_makes_key_faster_at_the_turbo_load():
    """The engine applies a plan's turbo satellites: their optical links to the ground make
    key at laser_turbo_w / laser_on_w (60 / 40) times the rate and their active terminals
    draw the turbo load; every other link and satellite as without turbo."""
    from twin.control.mpc import EnergyPlan, LaserSchedule
    from twin.units import NS_PER_S

    scenario = load_scenario("case-grid-eclipse")
    engine = Engine(scenario, controller="static-sp")
    n_sats = engine.nodes.battery_counts["satellite"]
    t_ns = 30 * NS_PER_S
    raw = engine.topology.snapshot(t_ns)
    sat0 = engine._sat0
    ground = np.isin(raw.kind, [EdgeKind.FSO_GROUND_SPACE, EdgeKind.FSO_HAPS_SPACE]) & raw.up
    seen = np.unique(raw.b[ground & (raw.b >= sat0)] - sat0)
    assert seen.size >= 2
    pick = seen[:1]

    def scheduled(turbo):
        empty = np.zeros((n_sats, 1))
        plan = EnergyPlan(empty, empty, empty, "solved", 1, 0.0)
        awake = np.full((n_sats, 1), 60 * NS_PER_S, dtype=np.int64)
        engine._plan = LaserSchedule(0, 60 * NS_PER_S, awake, plan, turbo=turbo)
        engine._awake_step = None
        snap = engine._apply_schedule(raw)
        load = engine._energy_inputs(snap, t_ns).battery_steps[0][2]
        return snap, load

    plain, plain_load = scheduled(np.zeros(0, dtype=np.int64))
    boosted, turbo_load = scheduled(pick)
    assert engine.turbo_skr_gain == pytest.approx(1.5)
    on_pick = ground & (raw.b - sat0 == pick[0])
    np.testing.assert_array_equal(boosted.skr_bps[on_pick], plain.skr_bps[on_pick] * 1.5)
    np.testing.assert_array_equal(boosted.skr_bps[~on_pick], plain.skr_bps[~on_pick])
    np.testing.assert_array_equal(boosted.up, plain.up)
    active = np.count_nonzero(on_pick)
    extra_w = (engine.sat_power.laser_turbo_w - engine.sat_power.laser_on_w) * min(
        active, engine.sat_power.laser_terminals
    )
    assert turbo_load[pick[0]] == pytest.approx(plain_load[pick[0]] + extra_w)
    others = np.arange(n_sats) != pick[0]
    np.testing.assert_array_equal(turbo_load[others], plain_load[others])


def test_mpc_only_needs_its_scenario():
    with pytest.raises(RuntimeError, match="bind"):
        MpcOnly().plan(None)


def test_the_contact_plan_names_the_stations_the_front_blocks_and_survives_a_checkpoint():
    """ai-sdqn's plans carry the observer's OGS contact plan; a controller restored from a
    pickle (its observer's filters kept, its topology made again) plans exactly as the one
    that was not lost."""
    from twin.control.ai_sdqn import AiSdqn

    scenario = load_scenario("storm")
    topology = TopologyModel(scenario)
    controller = AiSdqn()
    controller.bind(scenario)
    n_sats = topology.snapshot(0).n_nodes - topology.satellite_offset

    def view(minute):
        snap = topology.snapshot(minute * 60 * 10**9)
        return type("View", (), {"t_ns": snap.t_ns, "battery_soc": np.full(n_sats, 0.9)})()

    early = controller.plan(view(30)).contacts
    assert early.avoid == () and "zugspitze" in early.stations
    restored = pickle.loads(pickle.dumps(controller))
    late, again = controller.plan(view(70)), restored.plan(view(70))
    assert "zugspitze" in late.contacts.avoid and "calern-meo" not in late.contacts.avoid
    assert np.array_equal(late.contacts.outage_probability, again.contacts.outage_probability)
    assert np.array_equal(late.awake_ns, again.awake_ns)


def test_the_energy_plan_is_solved_every_five_minutes_and_the_contact_plan_every_minute():
    """Plans between the QP's re-solves (ENERGY_REPLAN_S) carry its schedule on, with a
    contact plan of their own; a controller restored in between carries and re-solves alike."""
    from twin.control.ai_sdqn import AiSdqn
    from twin.control.mpc import ENERGY_REPLAN_S, PLAN_STEP_S

    assert ENERGY_REPLAN_S == 5 * PLAN_STEP_S
    scenario = load_scenario("storm")
    topology = TopologyModel(scenario)
    n_sats = topology.snapshot(0).n_nodes - topology.satellite_offset

    def view(minute):
        t_ns = minute * 60 * 10**9
        return type("View", (), {"t_ns": t_ns, "battery_soc": np.full(n_sats, 0.9)})()

    controller = AiSdqn()
    controller.bind(scenario)
    first, carried = controller.plan(view(0)), controller.plan(view(1))
    restored = pickle.loads(pickle.dumps(controller))
    for c in (controller, restored):
        late = c.plan(view(4))
        assert late.t0_ns == first.t0_ns == 0 and np.array_equal(late.awake_ns, first.awake_ns)
        assert [late.contacts.t_ns, carried.contacts.t_ns] == [4 * 60 * 10**9, 60 * 10**9]
    again, again_restored = controller.plan(view(5)), restored.plan(view(5))
    assert again.t0_ns == again_restored.t0_ns == 5 * 60 * 10**9
    assert np.array_equal(again.awake_ns, again_restored.awake_ns)
    plain = MpcOnly()
    plain.bind(scenario)
    assert plain.plan(view(0)).contacts is None and plain.plan(view(1)).t0_ns == 0


def test_a_warm_start_moves_on_by_the_steps_the_horizon_moved():
    from twin.control.mpc import _moved_on

    values = np.arange(12.0)  # three blocks of a 4-step horizon
    assert _moved_on(values, 4, 1).tolist() == [1, 2, 3, 3, 5, 6, 7, 7, 9, 10, 11, 11]
    assert _moved_on(values, 4, 0) is values
    assert _moved_on(values, 4, 9).tolist() == [3, 3, 3, 3, 7, 7, 7, 7, 11, 11, 11, 11]


# --- carbon-aware deferral of Type-IV bulk -------------------------------------------------

S_NS = 10**9


def _bulk(start_s=600.0, duration_s=1200.0, slack_s=3600.0):
    from twin.network.traffic import ForecastEvent

    return ForecastEvent(
        "backup", round(start_s * S_NS), 10**9, round(duration_s * S_NS), 0,
        round((start_s + duration_s + slack_s) * S_NS),
    )  # fmt: skip


def _forecast_of(intensity):
    """A forecast of two sites at ``intensity(t_s)`` each, t_s from the issue time (0)."""
    return lambda leads_s: np.vstack([intensity(leads_s), intensity(leads_s)])


def test_bulk_is_put_off_to_the_greenest_window_its_deadline_allows():
    from twin.control.mpc import DEFER_MIN_SAVING, DEFER_STEP_S, bulk_deferral

    event = _bulk()  # 20 min from 10 min, an hour of slack
    # falling intensity: as late as the deadline allows (the slack is a whole number of steps)
    assert bulk_deferral(event, 0, _forecast_of(lambda t: 500.0 - 0.05 * t)) == 3600 * S_NS
    # rising: as announced
    assert bulk_deferral(event, 0, _forecast_of(lambda t: 300.0 + 0.05 * t)) == 0
    # a green trough at 50 min (40 min after the start): the 20-minute transfer centred on
    # it, from 40 min, i.e. put off 30 min
    trough = _forecast_of(lambda t: 400.0 - 300.0 * np.exp(-(((t - 3000.0) / 300.0) ** 2)))
    delay = bulk_deferral(event, 0, trough)
    assert delay == 1800 * S_NS and delay % round(DEFER_STEP_S * S_NS) == 0
    # a saving below DEFER_MIN_SAVING is not worth the slack; one above it is
    for saving, want in ((DEFER_MIN_SAVING / 2, 0), (DEFER_MIN_SAVING * 2, 3600 * S_NS)):
        slope = saving / 3600.0  # the intensity falls by ``saving`` over the hour of slack
        falling = _forecast_of(lambda t, slope=slope: 400.0 * (1 - slope * t))
        assert bulk_deferral(event, 0, falling) == want
    # no slack (no deadline, or one at the end): nothing to move
    assert bulk_deferral(_bulk(slack_s=0.0), 0, _forecast_of(lambda t: 500.0 - 0.05 * t)) == 0
    assert bulk_deferral(_bulk(slack_s=59.0), 0, _forecast_of(lambda t: 500.0 - 0.05 * t)) == 0


def _night_bulk_flows():
    """small's flows and a 0.6 Gbit Type-IV backup, Hamburg to Munich, at 120 s for 60 s, due
    within two hours: at 00:00 UTC Germany's grid grows greener towards the morning."""
    from twin.network.traffic import Flow, ForecastEvent, TrafficClass

    backup = ForecastEvent("backup", 120 * S_NS, 6 * 10**8, 60 * S_NS, 0, 7200 * S_NS)
    scenario = load_scenario("small")
    bulk = Flow("night-backup", "hamburg-port", "munich-factory", TrafficClass.TYPE_IV, backup)
    return scenario, [*scenario.flows(), bulk]


def test_mpc_only_puts_off_bulk_to_greener_hours_and_the_sources_send_it_then():
    """The plan of t = 0 (in effect at 60 s) puts the backup off as far as the scenario's hour
    allows (Germany's intensity falls all night; the deadline is later still); the engine keeps
    it inside this 240 s run (clipped to 60 s), so both controllers send the same bits, key-aware
    at 120-180 s and mpc-only's source at 180-240 s. The planner decides once: later plans
    repeat the deferral, and a plan moving it again is refused."""
    from twin.engine import DeferredEvent
    from twin.network.traffic import demand_bits

    scenario, flows = _night_bulk_flows()
    runs = {}
    for controller in ("key-aware", "mpc-only"):
        engine = Engine(scenario, controller=controller, flows=flows)
        result = engine.run(duration_s=240)
        runs[controller] = (engine, result, compute_metrics(result, engine)["metrics"])
    greedy, planned = runs["key-aware"], runs["mpc-only"]
    assert greedy[1].deferrals == [] and greedy[2]["bulk_events_deferred"] == 0
    engine = planned[0]
    assert engine._plan.deferrals == (("night-backup", "backup", (3600 - 180) * S_NS),)
    assert planned[1].deferrals == [DeferredEvent("night-backup", "backup", 120 * S_NS, 60 * S_NS)]
    assert planned[2]["bulk_deferrals"] == [
        {"flow": "night-backup", "event": "backup", "start_s": 120.0, "delay_s": 60.0}
    ]
    for run in (greedy, planned):
        assert run[1].flows["night-backup"].delivered_bits == 6 * 10**8
    served = engine._served_flows[-1]
    assert demand_bits(served, 120 * S_NS, 60 * S_NS) == 0
    assert demand_bits(served, 180 * S_NS, 60 * S_NS) == 6 * 10**8
    # the engine takes a deferral once: the same again changes nothing, another is refused
    engine = planned[0]
    plan = engine._plan
    engine._take_deferrals(plan, engine._end_ns)
    assert len(engine.deferrals) == 1
    moved = dataclasses.replace(plan, deferrals=(("night-backup", "backup", 60 * S_NS),))
    with pytest.raises(RuntimeError, match="a deferral is made once"):
        engine._take_deferrals(moved, engine._end_ns)


def test_the_planner_draws_its_sensor_noise_from_the_runs_seed():
    """The observer behind the contact plan and the deferrals reads the run's seed (not the
    scenario file's), in the engine and on the Ray cloud planner alike."""
    from actors.controllers import CloudPlanner

    scenario = load_scenario("small")
    assert scenario.seed == 0
    assert Engine(scenario, controller="mpc-only", seed=3).controller._seed == 3
    engine = Engine(scenario, controller="ai-sdqn")
    assert engine.controller._seed == 0
    hosted = CloudPlanner(
        "mpc-only", engine.flows, engine.topology.node_names, engine.jurisdictions,
        engine.flow_endpoints, scenario, 3,
    )  # fmt: skip
    planner = hosted.controller
    assert planner._seed == 3
    planner._topology = TopologyModel(scenario)
    assert planner._the_observer().seed == 3


def test_the_handover_schedule_lists_every_ground_space_link_that_sets_and_when():
    """The MPC tier's handover schedule, from the orbits sampled every 10 s, against G(t)
    built every second over case-munich-pretoria's first five minutes (OGS and HAPS, optical
    and RF): every ground-space link that leaves the graph is listed within 2 s of the second
    it left (the interpolation misses by 1.6 s at most, inside the 10 s start guard), and
    every listed set is a link leaving the graph. A schedule made from a cache of the plan
    before is the same as one made afresh."""
    from twin.control.mpc import handover_schedule

    scenario = load_scenario("case-munich-pretoria")
    topology = TopologyModel(scenario)
    ground_space = (EdgeKind.FSO_GROUND_SPACE, EdgeKind.FSO_HAPS_SPACE, EdgeKind.RF_KA)
    s_ns = 10**9
    window_s = 300

    def links(t_s):
        snap = topology.snapshot(t_s * s_ns)
        kept = np.isin(snap.kind, ground_space)
        return set(
            zip(snap.a[kept].tolist(), snap.b[kept].tolist(), snap.kind[kept].tolist(), strict=True)
        )

    lost = []  # (lower, satellite, the last second the link was in G(t))
    now = links(0)
    for t_s in range(window_s):
        after = links(t_s + 1)
        lost += [(a, b, t_s) for a, b, _ in now - after]
        now = after
    assert len(lost) > 10, "the window holds sets of both kinds"
    cache: dict = {}
    handover_schedule(topology, 0, 120 * s_ns, 50 * s_ns, cache=cache)  # (the plan before)
    schedule = handover_schedule(topology, 60 * s_ns, (window_s - 60) * s_ns, 50 * s_ns)
    cached = handover_schedule(topology, 60 * s_ns, (window_s - 60) * s_ns, 50 * s_ns, cache=cache)
    for field_name in ("lower", "upper", "set_ns"):
        assert np.array_equal(getattr(schedule, field_name), getattr(cached, field_name))
    listed = list(
        zip(schedule.lower.tolist(), schedule.upper.tolist(), schedule.set_ns.tolist(), strict=True)
    )
    assert all(60 * s_ns <= t < window_s * s_ns for _, _, t in listed)
    for a, b, t_s in lost:
        if t_s >= 62:
            assert any(
                (lo, up) == (a, b) and (t_s - 2) * s_ns <= t <= (t_s + 3) * s_ns
                for lo, up, t in listed
            ), (topology.node_names[a], topology.node_names[b], t_s)
    for lo, up, t in listed:
        assert any(
            (a, b) == (lo, up) and (t_s - 2) * s_ns <= t <= (t_s + 3) * s_ns for a, b, t_s in lost
        ), (topology.node_names[lo], topology.node_names[up], t / s_ns)
    lower, upper = schedule.setting(100 * s_ns)
    soon = [(lo, up) for lo, up, t in listed if 100 * s_ns <= t < 150 * s_ns]
    assert sorted(zip(lower.tolist(), upper.tolist(), strict=True)) == sorted(soon)


@pytest.mark.parametrize("controller", ["mpc-only", "ai-sdqn"])
def test_pre_scheduled_handovers_leave_every_satellite_before_it_sets(controller, monkeypatch):
    """case-munich-pretoria, 15 minutes: once the first plan's schedule is in effect (a
    minute in) and its lead has passed, every handover is make-before-break and switches
    with no gap; without the schedule the same controller still lost links under its flows
    (a gap after that time)."""
    from twin.control.mpc import handover_lead_ns

    scenario = load_scenario("case-munich-pretoria")
    after_ns = 60 * 10**9 + handover_lead_ns(scenario.handover.params())

    def late_handovers(plans_handovers):
        monkeypatch.setattr(MpcOnly, "plans_handovers", plans_handovers)
        engine = Engine(scenario, controller=controller)
        engine.run(duration_s=900)
        return [r for r in engine.handover.log if r.t_switch_ns >= after_ns]

    scheduled = late_handovers(True)
    assert len(scheduled) > 10
    assert all(r.kind.name == "MBB" and r.interruption_ns == 0 for r in scheduled)
    assert any(r.interruption_ns > 0 for r in late_handovers(False))
