"""The MPC tier's satellite energy plan (main paper sec. VII-A, eq. (6)), solved with OSQP.

Eq. (6) asks for ``min_u sum_k x_k^T Q x_k + u_k^T R u_k`` subject to battery constraints and
buffer limits, with "the charging/discharging schedule of satellites" as the output: a flight
plan such as "downlink to OGS-Berlin at 14:00, enter sleep mode at 14:15". Here, per satellite
``s`` and plan step ``k`` (``step_s`` long, ``H`` steps):

- the control ``u[s, k]`` in [0, v[s, k]] is the share of the step the optical terminals run
  (``v``: the share of the step in which the satellite is predicted to have an optical contact,
  an OGS or HAPS above the mask); otherwise they sleep (off, not standby: the saving);
- the state ``x[s, k]`` is the battery's charge at the step's end, as a fraction of capacity;
- dynamics, with the generation ``g`` predicted from the orbit and the sun and the fixed loads:
  ``x[s, k] <= x[s, k-1] + step_s (eta_c g[s, k] - (P_fixed + P_on u[s, k]) / eta_d) / C``
  (a lower bound of twin.physics.energy.battery_step's change in both charging and
  discharging, so the plan is conservative; "<=" lets a full battery curtail; a battery's
  C-rate limits, ``max_charge_w`` / ``max_discharge_w``, are not in the plan: no packaged
  scenario sets one);
- constraints ``x <= 1`` and ``x + sigma >= reserve`` with a slack ``sigma >= 0`` priced far
  above everything else (a battery that cannot keep its reserve even asleep still gets a plan);
- cost ``r (u - v)^2 + q (1 - x)^2 + rho sigma`` (the slack's price linear, an exact penalty
  that keeps the problem well conditioned): run the terminals whenever a contact is
  predicted, keep the batteries full, never go below reserve.

The QP's matrices are built once per (satellites, horizon) with scipy.sparse and kept by OSQP;
each re-plan updates only the vectors (forecast, state), and the forecast computes only the
steps the horizon gained (``energy_forecast``'s cache). Every solve starts from
:func:`forward_backward_sweep`, which solves the QP satellite by satellite where it settles
(every satellite of the packaged scenarios, whose batteries keep their reserve, and many whose
reserve binds). There the start is the optimum, and OSQP, told then to check its residuals
after every iteration, stops after the first. On the mega shell the first plan's QP took 825
iterations from zero (6.8 s) and takes 1 (0.26 s, most of it OSQP's setup); a re-plan 0.03-0.04
s, against 75-100 iterations (0.61 s) from the last plan moved on. A satellite where the
sweep cycles (a binding reserve whose optimum rides along it: the slack's linear price makes
the sweep's duty jump between sleeping and waking) starts from the last solution moved on by the
steps between, as a receding-horizon MPC warm-starts (zero at first). OSQP converges slowly on
those at any step size tried (a reserve binding for many steps took ~480,000 iterations at
1e-5 from zero on the tests' small case), so a solve may stop at ``max_iter``, and the plan
carries OSQP's status (an interior-point solver, Clarabel, solves those in ~50 iterations but
cannot warm-start: 7 s for the mega shell). The step size is fixed at rho = 0.03 (from zero on
mega: 2,475 iterations at 0.1, 825 at 0.03, 375 at 0.01, but at 0.01 and 0.02 the tests'
binding case did not converge; 0.3 and 1: far slower). The controller re-solves every
:data:`ENERGY_REPLAN_S`. :func:`solve_reference` states the same problem in cvxpy for the
tests (not a dependency of the twin).

The plan of the cloud tier takes effect a planning period (a minute) after the state it is
computed from (twin.engine): :meth:`MpcOnly.submit_plan` computes it on the controller's own
thread while the engine ticks (the local runtime on a process of its own, actors.forked). With
the energy plan (solved again every five minutes, carried on between) it carries the satellites
in QKD turbo mode (:func:`turbo_satellites`), the OGS contact plan (:class:`ContactPlan`, for
``ai-sdqn``) and the pre-scheduled make-before-break handovers (:class:`HandoverSchedule`: the
ground-space links the orbits take below their mask, which the router leaves a lead ahead), all
made afresh every minute, and the Type-IV bulk transfers put off to greener hours
(:func:`bulk_deferral`: each forecast event decided once, from the observer's carbon forecast,
when it is announced and can still be moved). Without satellites there is no plan, and so no
deferral either.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import osqp
import scipy.sparse as sp

__all__ = [
    "EnergyForecast",
    "EnergyPlan",
    "EnergyPlanner",
    "HandoverSchedule",
    "LaserSchedule",
    "MpcOnly",
    "PlanWeights",
    "SweepStart",
    "bulk_deferral",
    "energy_forecast",
    "forward_backward_sweep",
    "handover_lead_ns",
    "handover_schedule",
    "turbo_satellites",
]


@dataclass(frozen=True)
class PlanWeights:
    """The cost weights of the plan (module docstring); assumptions: duty first, then a full
    battery, and the reserve as good as hard."""

    duty: float = 1.0
    charge: float = 0.1
    reserve_slack: float = 1e3
    """per unit of charge (fraction of capacity) below the reserve: a linear (exact) penalty,
    far above what a unit of charge buys in duty (2 duty / (step P_on / C) ~ 60 for the
    packaged satellites' 80 W of terminals over 5-minute steps)"""


@dataclass(frozen=True)
class EnergyForecast:
    """What the plan is computed from: arrays of shape (S, H) and the satellites' state."""

    contact: np.ndarray
    """share of each step with an optical contact predicted, in [0, 1]"""
    generation_w: np.ndarray
    """solar generation predicted over each step, W"""
    soc_fraction: np.ndarray
    """(S,) the batteries' charge now, fraction of capacity"""
    fixed_load_w: float
    """load with every terminal asleep (bus, payload, compute), W"""
    terminals_on_w: float
    """extra load of running the terminals (over sleeping), W"""
    capacity_j: float
    reserve_fraction: float
    charge_efficiency: float
    discharge_efficiency: float
    step_s: float

    def __post_init__(self) -> None:
        s, h = np.shape(self.contact)
        for name in ("contact", "generation_w"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (s, h) or not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be finite of shape {(s, h)}, got {value.shape}")
        if np.any((self.contact < 0) | (self.contact > 1)):
            raise ValueError("contact must be a share of each step, within [0, 1]")
        if np.shape(self.soc_fraction) != (s,):
            raise ValueError(f"soc_fraction must have shape {(s,)}")
        if not (self.capacity_j > 0 and self.step_s > 0):
            raise ValueError("capacity_j and step_s must be > 0")


@dataclass(frozen=True)
class EnergyPlan:
    """The plan: per satellite and step the terminals' duty and the predicted charge."""

    duty: np.ndarray
    """(S, H) share of each step the terminals run"""
    soc_fraction: np.ndarray
    """(S, H) predicted charge at each step's end"""
    below_reserve: np.ndarray
    """(S, H) predicted shortfall under the reserve (the slack), fraction of capacity"""
    status: str
    iterations: int
    solve_s: float


CHECK_EVERY = 25  # OSQP's default: iterations between its termination checks


class EnergyPlanner:
    """Eq. (6) for ``n_satellites`` over ``horizon`` steps, built once, warm-started."""

    def __init__(
        self,
        n_satellites: int,
        horizon: int,
        weights: PlanWeights | None = None,
        *,
        eps: float = 1e-3,
        max_iter: int = 4_000,
    ) -> None:
        if n_satellites < 1 or horizon < 1:
            raise ValueError(
                f"n_satellites and horizon must be >= 1, got {n_satellites} and {horizon}"
            )
        self.n, self.h = int(n_satellites), int(horizon)
        self.weights = weights or PlanWeights()
        self._solver = None
        self._built: tuple | None = None  # (dynamics coefficient, P, A)
        self._setup: tuple | None = None  # (dynamics coefficient, q, l, u) OSQP was set up with
        # the last solution (primal, dual): every solve starts from it, explicitly, so a plan
        # is a function of the forecast and this state alone (a planner restored from a
        # checkpoint, its solver rebuilt, plans exactly as the one that was not lost)
        self._warm: tuple[np.ndarray, np.ndarray] | None = None
        self.eps = float(eps)
        self.max_iter = int(max_iter)

    def _matrices(self, on_coefficient: float) -> tuple[sp.csc_matrix, sp.csc_matrix]:
        """P (upper triangle) and A of the QP, built once per dynamics coefficient."""
        if self._built is not None and self._built[0] == on_coefficient:
            return self._built[1], self._built[2]
        n = self.n * self.h
        w = self.weights
        eye = sp.identity(n, format="csc")
        # x[s, k] - x[s, k-1]: a block-diagonal difference (no coupling across satellites)
        shift = sp.kron(sp.identity(self.n), sp.eye(self.h, k=-1), format="csc")
        zero = sp.csc_matrix((n, n))
        a = sp.vstack(
            [
                sp.hstack([on_coefficient * eye, eye - shift, zero]),  # dynamics
                sp.hstack([zero, eye, zero]),  # x <= 1
                sp.hstack([zero, eye, eye]),  # x + sigma >= reserve
                sp.hstack([eye, zero, zero]),  # 0 <= u <= contact
                sp.hstack([zero, zero, eye]),  # sigma >= 0
            ],
            format="csc",
        )
        p = sp.diags(
            np.concatenate([np.full(n, 2 * w.duty), np.full(n, 2 * w.charge), np.zeros(n)]),
            format="csc",
        )
        self._built = (on_coefficient, sp.triu(p, format="csc"), a)
        return self._built[1], self._built[2]

    def _build(self, on_coefficient: float, q: np.ndarray, lower, upper) -> None:
        p, a = self._matrices(on_coefficient)
        self._solver = osqp.OSQP()
        self._solver.setup(
            P=p, q=q, A=a, l=lower, u=upper,
            warm_starting=True, verbose=False, eps_abs=self.eps, eps_rel=self.eps,
            polishing=False, max_iter=self.max_iter,
            # a fixed step size (module docstring): OSQP's adaptive rho carries state from
            # solve to solve, which a planner restored from a checkpoint would not have
            rho=0.03, adaptive_rho=False,
            # 4 Ruiz equilibration passes, not 10: on mega the setup took 0.21 s with 10 and
            # 0.13 s with 4; the tests' cycling-reserve grid took the same iterations to the
            # same plans with either (with none, twice as many, none converged)
            scaling=4,
        )  # fmt: skip

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_solver"] = None  # OSQP's workspace: set up again on the next plan
        return state

    def plan(self, forecast: EnergyForecast, shift_steps: int = 0) -> EnergyPlan:
        """The plan for ``forecast`` (module docstring), started from the forward-backward
        sweep's solution where it settles; the other satellites start from the last plan
        moved ``shift_steps`` steps on (the steps the horizon moved since: each variable's
        and constraint's value of step k + shift_steps starts step k, the last repeated, as a
        receding-horizon MPC warm-starts; on mega, re-plans 5 steps apart took 75-100 OSQP
        iterations from the moved start against 125-200 from the last plan as it was)."""
        if forecast.contact.shape != (self.n, self.h):
            raise ValueError(
                f"the forecast is for {forecast.contact.shape} (satellites, steps); this "
                f"planner was built for {(self.n, self.h)}"
            )
        w = self.weights
        f = forecast
        n = self.n * self.h
        scale = f.step_s / f.capacity_j
        on_coefficient = scale * f.terminals_on_w / f.discharge_efficiency
        net = scale * (
            f.charge_efficiency * f.generation_w - f.fixed_load_w / f.discharge_efficiency
        )  # (S, H)
        bound = net.copy()
        bound[:, 0] += f.soc_fraction  # x[s, -1] is the charge now
        contact = f.contact.ravel()
        q = np.concatenate(
            [-2 * w.duty * contact, np.full(n, -2 * w.charge), np.full(n, w.reserve_slack)]
        )
        inf = np.full(n, np.inf)
        lower = np.concatenate(
            [-inf, -inf, np.full(n, f.reserve_fraction), np.zeros(n), np.zeros(n)]
        )
        upper = np.concatenate([bound.ravel(), np.ones(n), inf, contact, inf])
        start = time.perf_counter()
        # OSQP's setup scales the problem by its data (Ruiz equilibration, a cost scale from
        # q) and update keeps that scaling: the first plan's vectors are kept, so a planner
        # restored from a checkpoint sets up as the lost one did and then updates the same
        if self._setup is None or self._setup[0] != on_coefficient:
            self._setup = (on_coefficient, q, lower, upper)
            self._solver = None
        if self._solver is None:
            self._build(*self._setup)
        self._solver.update(q=q, l=lower, u=upper)
        # the start: the sweep's solution for the satellites where it converged (exact: a
        # KKT point), the last plan moved on (zero, cold) for the others
        swept = forward_backward_sweep(f, w)
        if self._warm is not None:
            primal, dual = (_moved_on(v, self.h, shift_steps) for v in self._warm)
        else:
            primal, dual = np.zeros(3 * n), np.zeros(5 * n)
        self._solver.warm_start(
            x=_per_satellite(swept.converged, swept.primal, primal, self.n, self.h),
            y=_per_satellite(swept.converged, swept.dual, dual, self.n, self.h),
        )
        # settled everywhere, the start is the optimum: OSQP checks its residuals after the
        # first iteration (on mega 0.03 s, against 0.2 s for its default 25 iterations between
        # checks, kept otherwise: a slow convergence would pay a check on every iteration)
        settled = bool(swept.converged.all())
        self._solver.update_settings(check_termination=1 if settled else CHECK_EVERY)
        result = self._solver.solve(raise_error=False)  # the status says what happened
        elapsed = time.perf_counter() - start
        status = str(result.info.status)
        # an MPC acts on the best iterate it has when its time is up (max_iter): an
        # unconverged plan is still a plan, its status says so; no iterate is an error
        if result.x is None or not np.all(np.isfinite(result.x)):
            raise RuntimeError(f"the energy plan's QP was not solved: OSQP status {status!r}")
        self._warm = (result.x.copy(), result.y.copy())
        z = result.x.reshape(3, self.n, self.h)
        return EnergyPlan(
            duty=np.clip(z[0], 0.0, f.contact),
            soc_fraction=z[1],
            below_reserve=np.maximum(z[2], 0.0),
            status=status,
            iterations=int(result.info.iter),
            solve_s=elapsed,
        )


@dataclass(frozen=True)
class SweepStart:
    """:func:`forward_backward_sweep`'s result: OSQP's variables and multipliers, flattened
    in the QP's order, and which satellites' fixed point was reached."""

    primal: np.ndarray
    """(3 S H,) u, x, sigma"""
    dual: np.ndarray
    """(5 S H,) the multipliers of the dynamics, x <= 1, the reserve, u's bounds, sigma >= 0"""
    converged: np.ndarray
    """(S,) bool"""
    passes: int


# the sweep's stopping rule: no duty moved by more than this between passes (a fixed point to
# rounding), within this many passes (a satellite whose reserve binds may cycle between
# sleeping and waking, never settling: OSQP takes it from the warm start instead)
SWEEP_TOLERANCE = 1e-9
SWEEP_MAX_PASSES = 30


def forward_backward_sweep(
    forecast: EnergyForecast, weights: PlanWeights | None = None, *,
    max_passes: int = SWEEP_MAX_PASSES, tolerance: float = SWEEP_TOLERANCE,
) -> SweepStart:  # fmt: skip
    """The energy plan's QP solved per satellite by the forward-backward sweep of optimal
    control (S. Lenhart and J. T. Workman, "Optimal Control Applied to Biological Models",
    Chapman & Hall/CRC 2007, ch. 4; here in discrete time), the warm start of
    :class:`EnergyPlanner`.

    Each pass runs the battery forward from the duty (the highest charge the dynamics allow,
    full batteries curtailing: a higher charge is never worse here), then the value of a unit
    of charge (the dynamics' multiplier ``lambda``) backward from the horizon's end: a step
    below full adds ``2 q (1 - x)``, a step under the reserve the slack's price, a full
    battery (curtailing) resets it to 0; then the duty each step's stationarity asks,
    ``u = clip(v - c lambda / (2 r), 0, v)`` with ``c`` the terminals' charge per unit duty.
    Where the duty stops moving, every KKT condition of the QP holds by construction (primal
    feasible, the multipliers of the right sign, complementary, stationary): the optimum, which
    is unique (strictly convex in u and x). With batteries that keep their reserve it settles
    in 2-4 passes; a binding reserve (the slack's linear price) can make it cycle, which is why
    it is a start for OSQP, per satellite, and not the plan. Measured (issue 5): on mega the
    first plan took 825 OSQP iterations from zero (6.8 s) and 25 from the sweep (0.36 s), 1
    when OSQP checks its residuals after every iteration (:meth:`EnergyPlanner.plan`)."""
    w = weights or PlanWeights()
    f = forecast
    s, h = f.contact.shape
    scale = f.step_s / f.capacity_j
    c = scale * f.terminals_on_w / f.discharge_efficiency
    net = scale * (f.charge_efficiency * f.generation_w - f.fixed_load_w / f.discharge_efficiency)
    v = np.asarray(f.contact, dtype=float)
    soc = np.asarray(f.soc_fraction, dtype=float)
    u = v.copy()  # the first pass: the terminals follow every contact
    x, capped = np.empty((s, h)), np.empty((s, h), dtype=bool)
    lam, cap = np.empty((s, h)), np.empty((s, h))
    for done in range(1, max(int(max_passes), 1) + 1):
        previous = soc
        for k in range(h):  # forward: the charge
            free = previous + net[:, k] - c * u[:, k]
            capped[:, k] = free >= 1.0
            x[:, k] = previous = np.minimum(free, 1.0)
        sigma = np.maximum(f.reserve_fraction - x, 0.0)
        reserve = np.where(sigma > 0, -w.reserve_slack, 0.0)  # the reserve row's multiplier
        later = np.zeros(s)
        for k in range(h - 1, -1, -1):  # backward: the value of a unit of charge
            value = later + 2 * w.charge * (1.0 - x[:, k]) - reserve[:, k]
            lam[:, k] = np.where(capped[:, k], 0.0, value)
            cap[:, k] = np.where(capped[:, k], later - reserve[:, k], 0.0)  # x <= 1's
            later = lam[:, k]
        duty = np.clip(v - c * lam / (2 * w.duty), 0.0, v)
        change = np.abs(duty - u).max(axis=1)
        if change.max() <= tolerance or done == max_passes:
            break
        u = duty
    converged = change <= tolerance
    bounds = 2 * w.duty * (v - u) - c * lam  # u's bounds' multiplier: u's stationarity
    slack = np.where(sigma > 0, 0.0, -w.reserve_slack)  # sigma >= 0's: sigma's stationarity
    return SweepStart(
        primal=np.concatenate([u.ravel(), x.ravel(), sigma.ravel()]),
        dual=np.concatenate([a.ravel() for a in (lam, cap, reserve, bounds, slack)]),
        converged=converged,
        passes=done,
    )


def _per_satellite(
    chosen: np.ndarray, values: np.ndarray, others: np.ndarray, n: int, horizon: int
) -> np.ndarray:
    """``values`` for the ``chosen`` satellites and ``others`` for the rest (both blocks of
    (satellites, horizon), flattened): the QP has no coupling across satellites, so each
    satellite's start is its own."""
    mask = np.asarray(chosen, dtype=bool)[None, :, None]
    return np.where(mask, values.reshape(-1, n, horizon), others.reshape(-1, n, horizon)).ravel()


def _moved_on(values: np.ndarray, horizon: int, steps: int) -> np.ndarray:
    """``values`` (blocks of (satellites, horizon), flattened) with step k + ``steps`` in step
    k, the last step repeated into the steps it leaves."""
    steps = min(max(int(steps), 0), horizon - 1)
    if steps == 0:
        return values
    blocks = values.reshape(-1, horizon)
    tail = np.repeat(blocks[:, -1:], steps, axis=1)
    return np.concatenate([blocks[:, steps:], tail], axis=1).ravel()


def solve_reference(forecast: EnergyForecast, weights: PlanWeights | None = None) -> EnergyPlan:
    """The same QP in cvxpy (a test oracle for small sizes; cvxpy is a test dependency)."""
    import cvxpy as cp

    w = weights or PlanWeights()
    f = forecast
    s, h = f.contact.shape
    scale = f.step_s / f.capacity_j
    u, x, sigma = cp.Variable((s, h)), cp.Variable((s, h)), cp.Variable((s, h))
    net = scale * (f.charge_efficiency * f.generation_w - f.fixed_load_w / f.discharge_efficiency)
    previous = cp.hstack([f.soc_fraction.reshape(s, 1), x[:, :-1]])
    on = scale * f.terminals_on_w / f.discharge_efficiency
    constraints = [
        x - previous + on * u <= net,
        x <= 1,
        x + sigma >= f.reserve_fraction,
        u >= 0,
        u <= f.contact,
        sigma >= 0,
    ]
    cost = (
        w.duty * cp.sum_squares(u - f.contact)
        + w.charge * cp.sum_squares(1 - x)
        + w.reserve_slack * cp.sum(sigma)
    )
    problem = cp.Problem(cp.Minimize(cost), constraints)
    problem.solve(solver=cp.CLARABEL)
    return EnergyPlan(
        duty=np.asarray(u.value), soc_fraction=np.asarray(x.value),
        below_reserve=np.asarray(sigma.value), status=str(problem.status), iterations=0,
        solve_s=0.0,
    )  # fmt: skip


# --- the forecast and the controller -----------------------------------------------------------

# assumptions of the plan's timing: 60 steps of 1 minute (an hour ahead: more than an eclipse,
# ~36 min, and the passes in it), re-planned every minute, three orbit samples per step
PLAN_STEP_S = 60.0
PLAN_HORIZON = 60
PLAN_SAMPLES_PER_STEP = 3
AWAKE_TOLERANCE = 0.01  # a duty this close to the contact share is the whole contact
# the energy plan's QP is solved again every 5 minutes, not with every plan: before the sweep
# start (forward_backward_sweep) a warm re-solve on the mega shell took 0.6-0.9 s, more than
# the engine's minute of ticks under ai-sdqn, and re-solving every minute held the run to the
# planner's pace (the engine waits for a plan that is due). It takes 0.03-0.04 s now (with the
# forecast's new step and the sweep, ~0.05 s of the planner thread's time, which it shares
# with the ticks: every 5 minutes, a fifth of that). The forecast it follows is the orbits'
# own, so a plan holds between re-solves; on the packaged scenarios, whose batteries never
# bind, the runs are the same either way (README, the MPC tier).
ENERGY_REPLAN_S = 5 * PLAN_STEP_S


def energy_forecast(
    topology, model, t_ns: int, soc_fraction: np.ndarray, *, horizon: int = PLAN_HORIZON,
    step_s: float = PLAN_STEP_S, samples: int = PLAN_SAMPLES_PER_STEP,
    cache: dict | None = None,
) -> EnergyForecast:  # fmt: skip
    """The forecast of :class:`EnergyPlanner` from the orbits (``topology``, a
    twin.network.topology.TopologyModel) and the satellites' power model: per step the share of
    ``samples`` instants with an optical contact and the mean solar generation in the sun
    (twin.physics.sun's sunlit fraction at each instant).

    ``cache`` (a dict the caller keeps between forecasts) holds each step's values by the
    step's start: they depend on the orbits and the step's time alone, so a forecast made one
    step after the last computes only its new last step (1 of 60 on a receding horizon: 5 ms
    instead of 0.2-0.3 s on mega); steps that start before ``t_ns`` are dropped from it."""
    from twin.physics.energy import LaserLevel
    from twin.physics.orbits import jd_fr_add_seconds
    from twin.physics.sun import sun_position_ecef_m, sunlit_fraction
    from twin.units import NS_PER_S

    n = np.shape(soc_fraction)[0]
    contact = np.zeros((n, horizon))
    generation = np.zeros((n, horizon))
    epoch = topology.epoch
    step_ns = round(step_s * NS_PER_S)
    if cache is not None:
        for start in [s for s in cache if s < t_ns]:
            del cache[start]
    # the samples' offsets in a step, whole ns: a step's values depend on its start alone
    offsets_ns = [round((j + 0.5) / samples * step_ns) for j in range(samples)]
    for k in range(horizon):
        held = None if cache is None else cache.get(t_ns + k * step_ns)
        if held is not None and held[0].shape == (n,):
            contact[:, k], generation[:, k] = held
            continue
        for offset_ns in offsets_ns:
            t = t_ns + k * step_ns + offset_ns
            positions, seen = topology.satellite_state(t)
            sun = sun_position_ecef_m(*jd_fr_add_seconds(*epoch, t / NS_PER_S))
            contact[:, k] += seen
            generation[:, k] += model.solar_w(sunlit_fraction(positions, sun[:, None]))
        if cache is not None:
            cache[t_ns + k * step_ns] = (contact[:, k].copy(), generation[:, k].copy())
    terminals = model.laser_terminals
    asleep = float(model.load_w(np.full(terminals, int(LaserLevel.OFF))))
    awake = float(model.load_w(np.full(terminals, int(LaserLevel.ON))))
    return EnergyForecast(
        contact=contact / samples,
        generation_w=generation / samples,
        soc_fraction=np.asarray(soc_fraction, dtype=float),
        fixed_load_w=asleep,
        terminals_on_w=awake - asleep,
        capacity_j=model.battery_capacity_j,
        reserve_fraction=model.reserve_fraction,
        charge_efficiency=model.charge_efficiency,
        discharge_efficiency=model.discharge_efficiency,
        step_s=step_s,
    )


@dataclass(frozen=True)
class LaserSchedule:
    """The flight plan the engine applies (``Engine``: satellites' terminals asleep when the
    plan gives them no time): from ``t0_ns``, per satellite and step, how long the terminals
    may run (ns), spent on the ticks when the satellite has an optical contact."""

    t0_ns: int
    step_ns: int
    awake_ns: np.ndarray
    """(S, H) int64"""
    plan: EnergyPlan
    contacts: ContactPlan | None = None
    """the OGS contact plan made with it (None: no optical ground station, or not asked)"""
    handovers: HandoverSchedule | None = None
    """the pre-scheduled make-before-break handovers made with it (None: not asked)"""
    turbo: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """(K,) int64, ascending: the satellites (indices from the first) whose terminals run in
    QKD turbo mode while awake, for the period the plan is in effect (:func:`turbo_satellites`)"""
    deferrals: tuple[tuple[str, str, int], ...] = ()
    """(flow, event, delay ns): the Type-IV forecast events put off so far
    (:func:`bulk_deferral`); the engine takes each once, before the event starts"""


# assumptions of carbon-aware deferral of Type-IV bulk (main paper sec. X-B: "delaying
# non-critical (Type-IV) bulk transfers to times when ... [grids had] low carbon intensity"):
# a transfer may start later on a grid of DEFER_STEP_S, within its deadline, and is put off
# only when the forecast says that saves at least DEFER_MIN_SAVING of its transport carbon (a
# smaller gain is not worth giving up slack against outages). Its carbon is taken as that of
# its two end sites (the bits cross both; the ground stations between depend on the path)
DEFER_STEP_S = 60.0
DEFER_MIN_SAVING = 0.01


def bulk_deferral(
    event,
    t_ns: int,
    forecast: Callable[[np.ndarray], np.ndarray],
    latest_end_ns: int | None = None,
) -> int:
    """How long to put off forecast event ``event`` (ns, a multiple of ``DEFER_STEP_S``; 0:
    start as announced), from a forecast issued at ``t_ns``: ``forecast(leads_s)`` gives the
    carbon intensity (gCO2e/kWh) of the flow's two end sites per lead, shape (2, len(leads)).
    The transfer must end by its deadline and by ``latest_end_ns`` (the plan's horizon, if
    given). Its forecast carbon at delay ``d`` is the sum, over its steps, of the two sites'
    intensities at the steps' middles (its rate is uniform); the delay is the one with the
    least, the earliest on a tie, and 0 unless it saves ``DEFER_MIN_SAVING``."""
    step_ns = round(DEFER_STEP_S * 1e9)
    room_ns = event.slack_ns
    if latest_end_ns is not None:
        room_ns = min(room_ns, latest_end_ns - event.end_ns)
    max_shift = room_ns // step_ns
    if max_shift <= 0:
        return 0
    n_steps = -(-event.duration_ns // step_ns)  # the transfer's steps, the last maybe partial
    middles_ns = event.start_ns + (np.arange(n_steps + max_shift) + 0.5) * step_ns
    leads_s = (middles_ns - t_ns) / 1e9
    per_step = forecast(leads_s).sum(axis=0)
    window = np.convolve(per_step, np.ones(n_steps), mode="valid")  # window[i]: delay i steps
    best = int(np.argmin(window))
    if window[best] > (1.0 - DEFER_MIN_SAVING) * window[0]:
        return 0
    return best * step_ns


# assumptions of QKD turbo mode (main paper sec. VIII.C: "If a Type-I flow is consuming keys
# faster than the generation rate (SKR), the scheduler triggers QKD Turbo Mode, diverting power
# from other subsystems to the laser"): a satellite turns turbo when one of its optical links
# holds less than TURBO_KEY_S of the largest Type-I one-time-pad demand (the buffer a Type-I
# flow would draw on is running out, or has just come up empty) and its battery is at least
# TURBO_SOC_MARGIN of capacity above the reserve (the energy plan does not budget turbo's
# extra load: 20 W a terminal, a few Wh over a minute of a 1 kWh battery)
TURBO_KEY_S = 10.0
TURBO_SOC_MARGIN = 0.2


def turbo_satellites(view, reserve_fraction: float) -> np.ndarray:
    """The satellites a plan made from ``view`` puts in QKD turbo mode (the assumptions
    above): ascending indices from the first satellite; none without a Type-I flow, a key
    fill report or batteries."""
    from twin.network.topology import EdgeKind
    from twin.network.traffic import TrafficClass, demand_bits
    from twin.units import NS_PER_S

    none = np.zeros(0, dtype=np.int64)
    soc = view.battery_soc
    fill = getattr(view, "key_fill", None)  # (a planner's view may carry the charge alone)
    if soc is None or soc.size == 0 or fill is None:
        return none
    demand = [
        demand_bits(f, view.t_ns, NS_PER_S)
        for f in view.flows
        if f.traffic_class is TrafficClass.TYPE_I
    ]
    need = TURBO_KEY_S * max(demand, default=0)
    if need <= 0:
        return none
    snap = view.snapshot
    sat0 = snap.n_nodes - soc.size  # satellites are G(t)'s last nodes
    downlink = (
        snap.up
        & np.isin(snap.kind, (EdgeKind.FSO_GROUND_SPACE, EdgeKind.FSO_HAPS_SPACE))
        & (snap.b >= sat0)
        & (snap.skr_bps > 0)
    )
    low = np.flatnonzero(downlink)
    low = low[fill.of_pairs(snap.a[low], snap.b[low]) < need]
    satellites = np.unique(snap.b[low] - sat0).astype(np.int64)
    return satellites[soc[satellites] >= reserve_fraction + TURBO_SOC_MARGIN]


# assumptions of the contact plan: a station whose zenith is blocked (the weather's extra loss
# above the scenario's blocking threshold) with this predicted probability is left before
# its links drop; the nowcast looks to the end of the period the plan is in effect (it takes
# effect one period after it is made: twin.engine)
CONTACT_OUTAGE_THRESHOLD = 0.5
CONTACT_LEAD_S = 2 * PLAN_STEP_S


@dataclass(frozen=True)
class ContactPlan:
    """The OGS contact plan (main paper sec. VII-A: "OGS contact plan and site-diversity
    switching ahead of predicted cloud fronts"): per optical ground station the observer's
    predicted probability that the weather blocks it at its zenith ``lead_s`` after ``t_ns``
    (twin.control.observer: the nowcast and its error), and the stations to leave: those at
    or above :data:`CONTACT_OUTAGE_THRESHOLD`. A blocked zenith blocks every pass, so a flow
    through such a station is moved to another before its links drop, while they are still
    up (a make-before-break handover in the engine) rather than after (break-before-make)."""

    t_ns: int
    lead_s: float
    stations: tuple[str, ...]
    outage_probability: np.ndarray
    """(stations,) in [0, 1]"""

    @property
    def avoid(self) -> tuple[str, ...]:
        """The stations the edge tier routes around."""
        return tuple(
            name
            for name, p in zip(self.stations, self.outage_probability.tolist(), strict=True)
            if p >= CONTACT_OUTAGE_THRESHOLD
        )


# assumptions of the pre-scheduled make-before-break handovers (main paper sec. VIII.A step 1:
# the MPC predicts the "handover horizon" from the orbits and starts the switch early enough
# to finish before it): the orbits are sampled every HANDOVER_SAMPLE_S and each ground-space
# link's set (its elevation crossing the link's mask) interpolated between two samples. Over
# 10 s the line misses the set by at most 1.6 s (p99 0.25 s) against 1 s samples on mega's and
# case-munich-pretoria's first 10 minutes, inside the protocol's 10 s start guard; 5 s samples
# (0.36 s at most) cost the planner twice the orbit propagations. A plan lists the sets from
# when it is made to the end of the period it is in effect (it takes effect one period after
# it is made, for one period), plus the lead, so every decision it serves sees the lead ahead.
HANDOVER_SAMPLE_S = 10.0


def handover_lead_ns(params) -> int:
    """How long before a link sets the flows over it start their make-before-break switch:
    the protocol's own prediction of its duration (twin.network.handover.HandoverParams:
    acquisition, then at most one pool horizon of key warm-up, twin.engine's
    ``POOL_LOOKAHEAD_S``) plus its start guard ``mbb_guard_ns``; control latencies (ms) are
    inside the guard. 50 s with the defaults."""
    from twin.engine import POOL_LOOKAHEAD_S
    from twin.units import NS_PER_S

    return params.acquisition_ns + POOL_LOOKAHEAD_S * NS_PER_S + params.mbb_guard_ns


@dataclass(frozen=True)
class HandoverSchedule:
    """The pre-scheduled make-before-break handovers (main paper sec. VII-A and VIII.A): the
    links between ground (OGS, HAPS) and satellites that the orbits take below their mask (the
    optical ones, and an OGS's RF link, whose mask is lower), each with its predicted set; a
    flow over one of them moves to another satellite ``lead_ns`` before it sets
    (:meth:`setting`), while the link is still up, so the protocol's switch (acquisition, key
    warm-up, state transfer) ends before the loss.
    Weather is not here: the contact plan (:class:`ContactPlan`) covers it."""

    t_ns: int
    lead_ns: int
    lower: np.ndarray
    """(N,) int64 node indices of the ground ends (an OGS or a HAPS)"""
    upper: np.ndarray
    """(N,) int64 node indices of the satellites"""
    set_ns: np.ndarray
    """(N,) int64: the instant a link of the pair is predicted to set"""

    def setting(self, t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """The (lower, upper) node pairs with a link that sets in ``[t_ns, t_ns + lead_ns)``:
        a flow over one should leave it now. (A link already set is out of the graph; the
        pair's RF link, up after its optical one sets, is usable until its own lead.)"""
        soon = (self.set_ns >= t_ns) & (self.set_ns < t_ns + self.lead_ns)
        return self.lower[soon], self.upper[soon]


def handover_schedule(
    topology, t_ns: int, window_ns: int, lead_ns: int, *, sample_s: float = HANDOVER_SAMPLE_S,
    cache: dict | None = None,
) -> HandoverSchedule:  # fmt: skip
    """The :class:`HandoverSchedule` of the ground-space links (``topology``, a
    twin.network.topology.TopologyModel) that set within ``[t_ns, t_ns + window_ns)``, from
    the orbits sampled on a grid of ``sample_s``: a link sets between two samples where its
    elevation is at or above its mask at the first and below at the second, at the first ns
    at or below the mask on the line between them (the rule of
    twin.network.handover.predict_crossing_ns, which takes one pair's samples: here every
    pair's at once, ~100,000 on mega). For
    an OGS the RF link's set is listed too (its mask is lower: a flow left on RF after the
    optical link sets leaves the satellite before it).

    ``cache`` (a dict the caller keeps between plans) holds, per sample, the elevations over
    the masks and the sets up to the next sample: they depend on the orbits alone, so a plan
    a minute after the last computes only the samples it gained (on mega 6 of 18, ~7 ms);
    samples before ``t_ns``'s are dropped from it."""
    from twin.network.topology import SPACE_EDGE_MASK_RAD, EdgeKind
    from twin.units import NS_PER_S

    step_ns = round(sample_s * NS_PER_S)
    first = (t_ns // step_ns) * step_ns
    times = range(first, t_ns + window_ns + step_ns, step_ns)
    cache = {} if cache is None else cache
    for t in [t for t in cache if t < first]:
        del cache[t]
    rf_mask = SPACE_EDGE_MASK_RAD[EdgeKind.RF_KA]

    def over_masks(t: int) -> tuple[np.ndarray, np.ndarray]:
        """(P,) ground nodes and (P, S) elevations over their masks at ``t``: the optical
        platforms' rows, then the OGS's again over the RF mask."""
        rows = topology.ground_elevations_rad(topology.satellite_positions_m_at(t))
        rows += [
            (nodes[ogs], elevation[ogs], rf_mask)
            for nodes, elevation, _ in rows[:1]
            if (ogs := nodes < topology.haps_offset).any()
        ]
        return (
            np.concatenate([nodes for nodes, _, _ in rows]),
            np.concatenate([elevation - mask for _, elevation, mask in rows]),
        )

    found = []
    for t in times[:-1]:
        entry = cache.get(t)
        if entry is None:
            entry = cache[t] = {"over": over_masks(t)}
        if "sets" not in entry:
            following = cache.get(t + step_ns)
            if following is None:
                following = cache[t + step_ns] = {"over": over_masks(t + step_ns)}
            lower, before = entry["over"]
            _, after = following["over"]
            p, sat = np.nonzero((before >= 0) & (after < 0))
            b, a = before[p, sat], after[p, sat]
            entry["sets"] = (lower[p], sat, t + np.ceil(b / (b - a) * step_ns).astype(np.int64))
        found.append(entry["sets"])
    empty = np.zeros(0, dtype=np.int64)
    if not found:
        return HandoverSchedule(int(t_ns), int(lead_ns), empty, empty, empty)
    lower = np.concatenate([x[0] for x in found]).astype(np.int64)
    upper = topology.satellite_offset + np.concatenate([x[1] for x in found]).astype(np.int64)
    set_ns = np.concatenate([x[2] for x in found])
    keep = (set_ns >= t_ns) & (set_ns < t_ns + window_ns)
    lower, upper, set_ns = lower[keep], upper[keep], set_ns[keep]
    order = np.lexsort((set_ns, upper, lower))
    return HandoverSchedule(
        t_ns=int(t_ns),
        lead_ns=int(lead_ns),
        lower=lower[order],
        upper=upper[order],
        set_ns=set_ns[order],
    )


class MpcOnly:
    """``mpc-only``: the cloud tier's energy plan (eq. 6) over key-aware greedy routing.

    Every ``plan_every_ticks`` it forecasts an hour of contacts and sunlight from the orbits
    and solves :class:`EnergyPlanner` from the batteries' charge (Table 2's
    battery-state-of-charge, ``NetworkView.battery_soc``); the engine puts to sleep the
    terminals of satellites the plan gives no time (no standby load), and wakes them for their
    planned share of each contact (twin.engine, "laser schedule"). Each plan takes effect a
    period after it is asked for (:meth:`submit_plan`), so the first minute runs with every
    terminal awake. The QP is solved again every :data:`ENERGY_REPLAN_S`; the plans between
    carry the last solution on (its schedule runs an hour ahead). Every plan also names the
    satellites to run in QKD turbo mode (:func:`turbo_satellites`: links short of key, a
    battery with room), whose terminals the engine runs at the turbo level, and the Type-IV
    transfers it has put off to greener hours (:func:`bulk_deferral`), and the handover
    schedule (:class:`HandoverSchedule`, ``plans_handovers``). Routing is
    :class:`twin.control.baselines.KeyAwareGreedy`'s over the links that stay up, moving each
    flow off a satellite a lead before the schedule says its link sets; it does not read the
    OGS contact plan (``plans_contacts``: ``ai-sdqn``'s edge tier does, made afresh with every
    plan).
    """

    name = "mpc-only"
    plan_every_ticks = int(PLAN_STEP_S)  # with 1 s ticks; the engine plans every N decisions
    reads_key_fill = True
    plans_contacts = False  # the OGS contact plan: for a router that reads it (ai-sdqn)
    plans_handovers = True  # the pre-scheduled make-before-break handovers

    def __init__(self) -> None:
        from twin.control.baselines import KeyAwareGreedy

        self._router = KeyAwareGreedy()
        self._planner: EnergyPlanner | None = None
        self._scenario = None
        self._seed = 0  # the run's seed (bind)
        self._power = None  # the satellites' power model (bind)
        self._topology = None  # the scenario's TopologyModel (bind)
        self._forecasts: dict = {}  # energy_forecast's cache of steps
        self._elevations: dict = {}  # handover_schedule's cache of orbit samples
        self._worker: ThreadPoolExecutor | None = None  # plans while the engine ticks
        self._observer = None  # the observer of the contact plan, made when first needed
        self._energy: LaserSchedule | None = None  # the last solved energy plan's schedule
        self._bulk: dict[tuple[str, str], int] = {}  # (flow, event) -> delay ns, once decided

    def bind(self, scenario, seed: int | None = None) -> None:
        """The scenario the plans are for (the orbits, the satellites' power model), and the
        run's seed, which the observer's sensor noise is drawn from (the scenario's if None).
        The planner's model of the orbits is built here, as the engine builds its own when it
        is made (on mega 0.04-0.08 s, which the first plan paid inside the run before)."""
        from twin.network.topology import TopologyModel

        self._scenario = scenario
        self._seed = scenario.seed if seed is None else int(seed)
        self._power = scenario.equipment.satellite.power_model()
        self._topology = TopologyModel(scenario)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_topology"] = None  # (its propagator does not pickle; made again from the scenario)
        state["_forecasts"] = {}  # (computed again, to the same values)
        state["_elevations"] = {}
        state["_worker"] = None
        if self._observer is not None:  # its filters' state is kept, its topology made again
            state["_observer"] = copy.copy(self._observer)
            state["_observer"].topology = None
        return state

    def _the_observer(self):
        """The observer (sensors and filters), made when first needed."""
        from twin.control.observer import Observer

        if self._observer is None:
            self._observer = Observer(self._scenario, self._topology, self._seed)
        elif self._observer.topology is None:  # restored from a checkpoint
            self._observer.topology = self._topology
        return self._observer

    def _contact_plan(self, t_ns: int) -> ContactPlan | None:
        """The observer's OGS contact plan at ``t_ns`` (:class:`ContactPlan`); None without
        optical ground stations. Called once per plan, in time order (the filters run
        forward)."""
        self._the_observer()
        if not self._observer.stations:
            return None
        observation = self._observer.observe(t_ns, lead_s=CONTACT_LEAD_S)
        return ContactPlan(
            t_ns=int(t_ns),
            lead_s=CONTACT_LEAD_S,
            stations=observation.stations,
            outage_probability=self._observer.zenith_outage_probability(observation),
        )

    def _handover_schedule(self, t_ns: int) -> HandoverSchedule:
        """The links that set from ``t_ns`` to the end of the period this plan is in effect
        (two planning periods on: it takes effect one period after it is made) and the lead
        after it (:func:`handover_schedule`)."""
        tick_ns = round(self._scenario.time.tick_s * 1e9)
        lead_ns = handover_lead_ns(self._scenario.handover.params())
        window_ns = 2 * self.plan_every_ticks * tick_ns + lead_ns
        return handover_schedule(self._topology, t_ns, window_ns, lead_ns, cache=self._elevations)

    def submit_plan(self, view) -> Callable[[], LaserSchedule | None]:
        """:meth:`plan` for ``view`` on this controller's own thread; returns the callable
        that waits for it (the engine collects it a planning period later), so the ticks need
        not wait for it. They pay for it all the same on this 2-core machine: on mega the
        first (cold) plan, 0.47-0.49 s alone, slowed the 60 ticks it ran beside by as much
        in total (README, "The DRL tier"; the local runtime plans on a process of its own,
        actors.forked, calling :meth:`plan`). One plan at a time, in order, so the planner's
        warm start is the previous plan's as in :meth:`plan` alone."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        return self._worker.submit(self.plan, view).result

    def plan(self, view) -> LaserSchedule | None:
        """The flight plan from ``view``: the energy plan solved again if the last is
        :data:`ENERGY_REPLAN_S` old (else carried on), with the satellites in QKD turbo mode
        (:func:`turbo_satellites`) and a fresh contact plan for a router that reads it, both
        made afresh every plan. A function of the views planned from, in order."""
        if self._scenario is None:
            raise RuntimeError(f"{self.name} plans for a scenario: call bind(scenario) first")
        if self._topology is None:  # restored from a checkpoint (it does not pickle)
            from twin.network.topology import TopologyModel

            self._topology = TopologyModel(self._scenario)
        soc = view.battery_soc
        if soc is None or soc.size == 0:
            return None  # no satellites: nothing to plan
        energy = self._energy
        if energy is None or view.t_ns - energy.t0_ns >= round(ENERGY_REPLAN_S * 1e9):
            energy = self._energy = self._plan_energy(view)
        made = {
            "turbo": turbo_satellites(view, self._power.reserve_fraction)
            if self._power.turbo_key_rate_gain > 1  # (a turbo level stronger than "on")
            else np.zeros(0, dtype=np.int64)
        }
        if self.plans_contacts:
            made["contacts"] = self._contact_plan(view.t_ns)
        if self.plans_handovers:
            made["handovers"] = self._handover_schedule(view.t_ns)
        made["deferrals"] = self._deferrals(view)
        return dataclasses.replace(energy, **made)

    def _deferrals(self, view) -> tuple[tuple[str, str, int], ...]:
        """Every Type-IV forecast event put off so far, deciding those announced by
        ``view.t_ns`` that start once this plan is in effect (:func:`bulk_deferral`, from the
        observer's carbon forecast, within the scenario's span); an event that starts sooner
        keeps its start. Each event is decided once."""
        from twin.network.traffic import TrafficClass

        tick_ns = round(self._scenario.time.tick_s * 1e9)
        effect_ns = view.t_ns + self.plan_every_ticks * tick_ns  # when this plan takes effect
        scenario_end_ns = round(self._scenario.time.duration_s * 1e9)  # the plan's horizon
        sites = {s.name: i for i, s in enumerate(self._scenario.sites)}
        # (a planner's view may carry the charge alone, as turbo_satellites allows)
        for flow in getattr(view, "flows", None) or ():
            if flow.traffic_class is not TrafficClass.TYPE_IV:
                continue
            rows = [sites[flow.src_site], sites[flow.dst_site]]
            for event in flow.events:
                key = (flow.name, event.name)
                if key in self._bulk or event.announce_ns > view.t_ns:
                    continue
                if event.start_ns < effect_ns:
                    self._bulk[key] = 0  # too late to move
                    continue
                observer = self._the_observer()

                def forecast(leads_s, rows=rows, observer=observer):
                    return observer.carbon_forecast_g_per_kwh(view.t_ns, leads_s)[rows]

                self._bulk[key] = bulk_deferral(event, view.t_ns, forecast, scenario_end_ns)
        return tuple((f, e, d) for (f, e), d in sorted(self._bulk.items()) if d > 0)

    def _plan_energy(self, view) -> LaserSchedule:
        """The energy plan's QP solved from ``view``'s battery charge, as a schedule."""
        soc = view.battery_soc
        model = self._power
        forecast = energy_forecast(self._topology, model, view.t_ns, soc, cache=self._forecasts)
        if self._planner is None:
            self._planner = EnergyPlanner(soc.size, PLAN_HORIZON)
        step_ns = round(PLAN_STEP_S * 1e9)
        moved = 0 if self._energy is None else (view.t_ns - self._energy.t0_ns) // step_ns
        plan = self._planner.plan(forecast, shift_steps=moved)
        # the duty as time awake per step, in whole ms; a duty within AWAKE_TOLERANCE of the
        # predicted contact (the battery does not bind: the QP's tolerance, not a choice) gets
        # the whole step, so the terminals never drop a contact a few ms short of its end
        awake_ms = np.floor(plan.duty * PLAN_STEP_S * 1e3).astype(np.int64)
        full = plan.duty >= forecast.contact - AWAKE_TOLERANCE
        awake_ms[full] = round(PLAN_STEP_S * 1e3)
        return LaserSchedule(view.t_ns, step_ns, awake_ms * 1_000_000, plan)

    def decide(self, view):
        return self._router.decide(view, setting=self._leaving(view))

    @staticmethod
    def _leaving(view) -> tuple[np.ndarray, np.ndarray] | None:
        """The (ground, satellite) pairs the flows leave at ``view.t_ns`` by the plan in
        effect's handover schedule (:meth:`HandoverSchedule.setting`); None without one."""
        plan = view.plan
        handovers = plan.handovers if isinstance(plan, LaserSchedule) else None
        return None if handovers is None else handovers.setting(view.t_ns)
