"""The MPC tier's plan as a document: a flight plan per satellite, the contact plan per OGS
(twin.control.flight_plan, ``qntwin plan``)."""

import json
from datetime import datetime
from pathlib import Path

import numpy as np

from twin.cli import main
from twin.control.flight_plan import plan_document
from twin.engine import Engine
from twin.scenarios import load_scenario

FIBRE_RING = Path(__file__).parent / "data" / "fibre-ring.yaml"  # no satellites


def planned(name, controller, at_s):
    engine = Engine(load_scenario(name), controller=controller)
    try:
        engine.run(duration_s=at_s)
        return engine, plan_document(engine)
    finally:
        engine.close()


def test_the_document_is_the_plan_in_effect_by_name_and_utc_time():
    engine, document = planned("small", "ai-sdqn", 60)
    schedule = engine._plan
    n_sats, horizon = schedule.awake_ns.shape
    start = engine.scenario.time.start_utc
    plan = document["energy_plan"]
    assert datetime.fromisoformat(plan["made_at_utc"]) == start  # the plan made at 0 s
    assert plan["step_s"] == 60.0 and plan["solver_status"] == schedule.plan.status
    assert len(plan["step_start_utc"]) == horizon
    assert (datetime.fromisoformat(plan["step_start_utc"][1]) - start).total_seconds() == 60
    flights = document["flight_plans"]
    names = engine.topology.node_names[engine.topology.satellite_offset :]
    assert [f["satellite"] for f in flights] == list(names) and len(flights) == n_sats
    for s, flight in enumerate(flights):
        budget = np.array(flight["terminals_budget_s"])
        on = np.array(flight["terminals_on_s"])
        assert np.allclose(budget, schedule.awake_ns[s] / 1e9, atol=1e-3)
        assert np.all(on <= budget + 1e-3) and np.all((0 <= on) & (on <= 60))
        assert all(0 <= x <= 1 for x in flight["battery_soc_end"])
        assert flight["qkd_turbo"] == (s in set(schedule.turbo.tolist()))
    contacts = document["contact_plan"]
    assert [c["station"] for c in contacts["stations"]] == ["dlr-oberpfaffenhofen", "zugspitze"]
    sets = document["handover_schedule"]["sets"]
    assert sets and all(s["satellite"] in names for s in sets)
    times = [datetime.fromisoformat(s["sets_at_utc"]) for s in sets]
    assert times == sorted(times) and times[0] > start
    json.dumps(document)  # plain data


def test_the_contact_plan_leaves_a_station_the_front_will_block_and_mpc_only_makes_none():
    """storm at 55 minutes: the nowcast has the front over Zugspitze two minutes ahead."""
    _, document = planned("storm", "ai-sdqn", 3300)
    stations = {c["station"]: c for c in document["contact_plan"]["stations"]}
    assert stations["zugspitze"]["leave"] and stations["zugspitze"]["outage_probability"] > 0.99
    assert not stations["calern-meo"]["leave"]
    _, document = planned("small", "mpc-only", 60)
    assert document["contact_plan"] is None and document["controller"] == "mpc-only"
    assert planned("small", "static-sp", 60)[1] is None  # no planner, no plan


def test_qntwin_plan_writes_it_and_refuses_in_one_line(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["plan", "small", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["t_utc"] == "2024-06-21T00:01:00+00:00" and len(document["flight_plans"]) == 24
    capsys.readouterr()
    for args, message in [
        (["plan", "small", "--at", "30"], "first plan takes effect 60 s in; give --at 60"),
        (["plan", str(FIBRE_RING), "--at", "60"], "has no satellites"),
        (["plan", "small", "--at", "-1"], "--at must be within [0, 3600]"),
    ]:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
