"""The MPC tier's plan as a document (main paper sec. VII-A: "Output: the charging/discharging
schedule of satellites", a flight plan such as "downlink to OGS-Berlin at 14:00, enter sleep
mode at 14:15"; the issue: "a flight plan per satellite and a contact plan per OGS").

:func:`plan_document` writes the plan a run of ``mpc-only`` or ``ai-sdqn`` has in effect
(twin.control.mpc.LaserSchedule, ``Engine``'s) as plain JSON-ready data, names and UTC times in
place of node indices and nanoseconds:

- ``flight_plans``: per satellite, for each plan step (``step_start_utc``), how long the plan
  runs its optical terminals (``terminals_on_s``: the optical contact predicted in the step,
  less what the battery cannot afford; asleep the rest), the budget the engine holds them to
  (``terminals_budget_s``, spent on the step's ticks with a contact: the whole step where the
  plan does not cut the contact short), the battery charge predicted at the step's end
  (fraction of capacity) and whether it runs in QKD turbo mode while the plan is in effect;
- ``contact_plan``: per optical ground station the observer's predicted probability that the
  weather blocks its zenith ``lead_s`` ahead, and whether the edge tier leaves it (``ai-sdqn``;
  null for ``mpc-only``, which does not read it);
- ``handover_schedule``: the ground-space links the orbits take below their mask, each with
  its predicted set, which the router leaves ``lead_s`` ahead (make-before-break);
- ``bulk_deferrals``: the Type-IV forecast events put off to greener hours, with their delay.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from twin.control.mpc import CONTACT_OUTAGE_THRESHOLD, LaserSchedule
from twin.units import NS_PER_S

__all__ = ["plan_document"]


def plan_document(engine) -> dict | None:
    """The plan ``engine`` has in effect after its run, as a document (module docstring);
    None while none is (a controller that does not plan, or a run shorter than the first
    planning period)."""
    schedule = engine._plan
    if not isinstance(schedule, LaserSchedule):
        return None
    names = engine.topology.node_names
    sat0 = engine.topology.satellite_offset
    start = engine.scenario.time.start_utc

    def utc(t_ns: int) -> str:
        return (start + timedelta(microseconds=int(t_ns) // 1000)).isoformat()

    energy = schedule.plan
    step_s = schedule.step_ns / NS_PER_S
    n_sats, horizon = schedule.awake_ns.shape
    turbo = np.zeros(n_sats, dtype=bool)
    turbo[schedule.turbo] = True
    flight_plans = [
        {
            "satellite": names[sat0 + s],
            "qkd_turbo": bool(turbo[s]),
            "terminals_on_s": (energy.duty[s] * step_s).round(3).tolist(),
            "terminals_budget_s": (schedule.awake_ns[s] / NS_PER_S).round(3).tolist(),
            "battery_soc_end": energy.soc_fraction[s].round(4).tolist(),
        }
        for s in range(n_sats)
    ]
    document = {
        "scenario": engine.scenario.name,
        "controller": engine.controller_label,
        "energy_plan": {
            "made_at_utc": utc(schedule.t0_ns),
            "step_s": step_s,
            "solver_status": energy.status,
            "step_start_utc": [utc(schedule.t0_ns + k * schedule.step_ns) for k in range(horizon)],
        },
        "flight_plans": flight_plans,
        "contact_plan": None,
        "handover_schedule": None,
        "bulk_deferrals": [
            {"flow": flow, "event": event, "delay_s": delay_ns / NS_PER_S}
            for flow, event, delay_ns in schedule.deferrals
        ],
    }
    contacts = schedule.contacts
    if contacts is not None:
        leave = set(contacts.avoid)
        document["contact_plan"] = {
            "made_at_utc": utc(contacts.t_ns),
            "lead_s": contacts.lead_s,
            "leave_at_or_above": CONTACT_OUTAGE_THRESHOLD,
            "stations": [
                {"station": name, "outage_probability": round(p, 4), "leave": name in leave}
                for name, p in zip(
                    contacts.stations, contacts.outage_probability.tolist(), strict=True
                )
            ],
        }
    handovers = schedule.handovers
    if handovers is not None:
        order = np.lexsort((handovers.upper, handovers.lower, handovers.set_ns))
        document["handover_schedule"] = {
            "made_at_utc": utc(handovers.t_ns),
            "lead_s": handovers.lead_ns / NS_PER_S,
            "sets": [
                {
                    "ground": names[int(handovers.lower[i])],
                    "satellite": names[int(handovers.upper[i])],
                    "sets_at_utc": utc(int(handovers.set_ns[i])),
                }
                for i in order.tolist()
            ],
        }
    return document
