"""The cloud tier's planner process (twin.control.plan_process): calls in order on a forked
copy, failures raised where the result is awaited, and the controller's plans and checkpoints
through it the same as without it."""

import os
import pickle
from dataclasses import dataclass

import numpy as np
import pytest

from twin.control.plan_process import PlanProcess


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
    process = PlanProcess(tally, name="tally")
    try:
        waits = [process.submit("add", x) for x in (1, 2, 3)]
        got = [wait() for wait in reversed(waits)]  # collected in any order
        assert [total for total, _ in reversed(got)] == [101, 103, 106]
        assert {pid for _, pid in got} != {os.getpid()} and len({pid for _, pid in got}) == 1
        assert tally.total == 100  # the caller's copy is not the one that planned
    finally:
        process.close()


def test_a_failure_on_the_process_is_raised_where_its_result_is_awaited():
    process = PlanProcess(Tally(), name="tally")
    try:
        failed, after = process.submit("fail"), process.submit("add", 5)
        with pytest.raises(RuntimeError, match=r"tally: planning failed(.|\n)*no plan for 42"):
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
    process = PlanProcess(Tally(), name="tally")
    later = PlanProcess(Tally(), name="later")
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


@dataclass(frozen=True)
class PlanningView:
    """What the planner reads of a planning view (a module's class: it is sent, pickled)."""

    t_ns: int
    battery_soc: np.ndarray


def test_ai_sdqn_plans_on_its_process_as_alone_and_its_checkpoints_carry_the_plans_state():
    """The plans a controller makes on its planner process are those it makes alone, a
    checkpoint taken while the process plans carries the process's plan state, and after
    ``close`` the controller plans on from where its process was."""
    from twin.control.ai_sdqn import AiSdqn
    from twin.network.topology import TopologyModel
    from twin.scenarios import load_scenario

    scenario = load_scenario("storm")
    topology = TopologyModel(scenario)
    n_sats = topology.snapshot(0).n_nodes - topology.satellite_offset
    # 0-9 minutes: the energy plan re-solved at 0 and 5, carried on between; the front's
    # contact plan from the observer's filters, which run forward plan by plan
    views = [PlanningView(m * 60 * 10**9, np.full(n_sats, 0.9 - 0.01 * m)) for m in range(10)]

    alone = AiSdqn()
    alone.bind(scenario)
    expected = [alone.plan(v) for v in views]

    planned = AiSdqn()
    planned.bind(scenario)
    got = [planned.submit_plan(v)() for v in views[:3]]
    assert planned._worker is not None and planned._energy is None  # planned over there
    restored = pickle.loads(pickle.dumps(planned))  # a checkpoint, the process still planning
    got += [planned.plan(v) for v in views[3:6]]  # (plan: through the process too)
    planned.close()
    assert planned._worker is None and planned._energy is not None  # its state home again
    got += [planned.plan(v) for v in views[6:]]
    resumed = [restored.plan(v) for v in views[3:]]
    for runs in (got, expected[:3] + resumed):
        for plan, want in zip(runs, expected, strict=True):
            assert plan.t0_ns == want.t0_ns
            assert np.array_equal(plan.awake_ns, want.awake_ns)
            assert plan.contacts.avoid == want.contacts.avoid
            assert np.array_equal(
                plan.contacts.outage_probability, want.contacts.outage_probability
            )
    restored.close()  # (never planned on a process: nothing to end)
