"""The local runtime's controller processes (actors.forked): calls in order on a forked copy,
arrays through the shared region, failures raised where the result is awaited, and the
controllers' plans and decisions through them the same as in the engine's process."""

import os
from dataclasses import dataclass

import numpy as np
import pytest

from actors.forked import ControllerProcess, ForkedController, forked_controllers
from twin.control.baselines import NetworkView


class Tally:
    """A planner whose results depend on the calls before (as a warm start does)."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, x: int) -> tuple[int, int]:
        self.total += x
        return self.total, os.getpid()

    def fail(self) -> None:
        raise ValueError("no plan for 42")

    def die(self) -> None:
        os._exit(3)


def test_calls_run_in_the_order_sent_on_a_copy_in_another_process():
    tally = Tally()
    tally.total = 100  # the process starts from the planner as it is when forked
    process = ControllerProcess(tally, name="tally")
    try:
        waits = [process.submit("add", x) for x in (1, 2, 3)]
        got = [wait() for wait in reversed(waits)]  # collected in any order
        assert [total for total, _ in reversed(got)] == [101, 103, 106]
        assert {pid for _, pid in got} != {os.getpid()} and len({pid for _, pid in got}) == 1
        assert tally.total == 100  # the caller's copy is not the one that planned
    finally:
        process.close()


def test_a_failure_on_the_process_is_raised_where_its_result_is_awaited():
    process = ControllerProcess(Tally(), name="tally")
    try:
        failed, after = process.submit("fail"), process.submit("add", 5)
        with pytest.raises(RuntimeError, match=r"tally: a call failed(.|\n)*no plan for 42"):
            failed()
        assert after()[0] == 5  # the process plans on
        died = process.submit("die")
        with pytest.raises(RuntimeError, match=r"process ended \(exit code 3\)"):
            died()
    finally:
        process.close()


def test_a_closed_process_ends_of_itself_and_takes_no_more_calls():
    """Closing ends the process cleanly (exit code 0, not killed), also while a planner
    process forked after it holds a copy of its pipe's end."""
    process = ControllerProcess(Tally(), name="tally")
    later = ControllerProcess(Tally(), name="later")
    try:
        pending = process.submit("add", 1)
        process.close()
        assert process._process.exitcode == 0
        with pytest.raises(RuntimeError, match="closed"):
            process.submit("add", 1)
        with pytest.raises(RuntimeError, match="closed before call 0 returned"):
            pending()
        assert later.submit("add", 2)()[0] == 2
    finally:
        later.close()
    assert later._process.exitcode == 0


class Keeper:
    """Keeps the arrays it is given (as the edge tier keeps a snapshot's)."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []

    def keep(self, array: np.ndarray) -> bool:
        self.arrays.append(array)
        return bool(array.flags.writeable)

    def kept(self) -> list[np.ndarray]:
        return self.arrays


def test_arrays_travel_in_the_shared_region_and_what_the_process_keeps_stays(monkeypatch):
    """Arrays arrive whole and writable whether through the shared region (free: the last
    call that used it returned), or the pipe (a call still out, or too large); the region
    written again does not change what the process kept."""
    from actors import forked

    rng = np.random.default_rng(7)
    given = [rng.normal(size=n) for n in (1000, 3, 50_000, 2000, 2000, 300)]
    process = ControllerProcess(Keeper(), name="keeper")
    try:
        assert process.submit("keep", given[0])() and process.submit("keep", given[1])()
        both = [process.submit("keep", a) for a in given[2:4]]  # the second: through the pipe
        assert process._shared_by == 2  # (the first of the two took the region)
        assert all(wait() for wait in both)
        monkeypatch.setattr(forked, "SHARED_BYTES", 1000)
        assert process.submit("keep", given[4])()  # too large: through the pipe
        assert process._shared_by == 2
        monkeypatch.undo()
        assert process.submit("keep", given[5])() and process._shared_by == 5
        kept = process.submit("kept")()
        assert len(kept) == len(given)
        assert all(np.array_equal(k, g) for k, g in zip(kept, given, strict=True))
    finally:
        process.close()


@dataclass(frozen=True)
class PlanningView:
    """What the planner reads of a planning view (a module's class: it is sent, pickled)."""

    t_ns: int
    battery_soc: np.ndarray


def test_ai_sdqn_plans_on_its_process_as_alone():
    """The plans ai-sdqn makes on its planner process are those it makes alone (the energy
    plan re-solved at minutes 0 and 5, the observer's filters run forward plan by plan)."""
    from twin.control.ai_sdqn import AiSdqn
    from twin.network.topology import TopologyModel
    from twin.scenarios import load_scenario

    scenario = load_scenario("storm")
    topology = TopologyModel(scenario)
    n_sats = topology.snapshot(0).n_nodes - topology.satellite_offset
    views = [PlanningView(m * 60 * 10**9, np.full(n_sats, 0.9 - 0.01 * m)) for m in range(8)]

    alone = AiSdqn()
    alone.bind(scenario)
    expected = [alone.plan(v) for v in views]
    forked_ = ForkedController(AiSdqn())
    forked_.bind(scenario)
    try:
        got = [forked_.submit_plan(v)() for v in views[:4]] + [forked_.plan(v) for v in views[4:]]
        assert forked_.controller._energy is None  # (planned over there)
    finally:
        forked_.close()
    for plan, want in zip(got, expected, strict=True):
        assert plan.t0_ns == want.t0_ns
        assert np.array_equal(plan.awake_ns, want.awake_ns)
        assert plan.contacts.avoid == want.contacts.avoid
        assert np.array_equal(plan.contacts.outage_probability, want.contacts.outage_probability)


class Recorder:
    """Decides what it was given, remembering every view's time (its edge tier's state)."""

    name = "recorder"
    policy = object()  # (one that routes with a policy decides on its process)

    def __init__(self) -> None:
        self.seen: list[int] = []

    def decide(self, view):
        self.seen.append(view.t_ns)
        return list(self.seen), view.flows, view.plan, view.node_index, os.getpid()


def _view(t_ns: int, flows, plan) -> NetworkView:
    return NetworkView(
        t_ns=t_ns, snapshot=None, flows=flows, node_index={"a": 0}, jurisdictions={},
        flow_endpoints=(), plan=plan,
    )  # fmt: skip


def test_decisions_on_the_edge_process_see_the_whole_view():
    """The parts of a view that stay the same are sent once and kept there; the controller in
    the caller's process stays as it was forked."""
    recorder = ForkedController(Recorder())
    flows, plan, later_plan = ("f1", "f2"), {"plan": 1}, {"plan": 2}
    views = [_view(t, flows, plan if t < 3 else later_plan) for t in range(5)]
    try:
        decided = [recorder.submit_decide(v)() for v in views[:4]] + [recorder.decide(views[4])]
    finally:
        recorder.close()
    assert [d[0] for d in decided] == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    assert [d[2] for d in decided] == [plan, plan, plan, later_plan, later_plan]
    assert all(d[1] == flows and d[3] == {"a": 0} for d in decided)
    assert {d[4] for d in decided} != {os.getpid()} and recorder.controller.seen == []
    assert recorder._sent["plan"] is later_plan and recorder._decider is None


def test_a_baseline_decides_in_the_engines_process():
    recorder = Recorder()
    recorder.policy = None
    forked_ = ForkedController(recorder)
    assert forked_.submit_decide(_view(0, (), None))()[4] == os.getpid()
    assert forked_._decider is None and recorder.seen == [0]


@pytest.mark.parametrize("name", ["drl-only", "mpc-only", "ai-sdqn"])
def test_controllers_on_their_processes_run_as_in_the_engines(name):
    """The same metrics whether the controller plans and decides on its processes (the local
    runtime) or in the engine's own process."""
    from twin.engine import Engine
    from twin.metrics import compute_metrics
    from twin.scenarios import load_scenario

    scenario = load_scenario("case-munich-pretoria")
    metrics = []
    for hook in (forked_controllers, None):
        engine = Engine(scenario, controller=name, controllers=hook)
        try:
            run = compute_metrics(engine.run(duration_s=150), engine)
        finally:
            engine.close()
        run.pop("wall_seconds")  # (the one field identical runs differ in)
        metrics.append(run)
    assert metrics[0] == metrics[1]


def test_without_fork_the_engines_process_keeps_the_controller(monkeypatch):
    import multiprocessing

    from twin.engine import Engine
    from twin.scenarios import load_scenario

    engine = Engine(load_scenario("small"), controller="drl-only")
    assert isinstance(forked_controllers("drl-only", engine), ForkedController)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert forked_controllers("drl-only", engine) is engine.controller
