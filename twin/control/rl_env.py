"""The DRL tier's environment (main paper sec. VII-B, eq. (7)): a PettingZoo ParallelEnv over the
engine, one agent per edge node.

Agents: one per site that sources flows (the edge node whose SD-WAN gateway routes them; main
paper sec. III-A), named ``edge-<site>``. Each env step is one engine decision (one tick of G(t)).

- **Action** (``MultiDiscrete`` of shape (F, 4), F the most flows any agent has): per flow of
  the agent, one of ``K_CANDIDATES`` candidate paths: 0 keep the current path (while every hop
  is up; else the fastest), 1 the fastest path whose hops hold 10 s of the flow's key demand
  (key-aware's), 2 the fastest path (static-sp's) (twin.control.drl.CandidatePaths); its
  laser power, one of ``LASER_LEVELS``: 0 the terminals as they are, 1 the satellites of its
  path at the QKD turbo level over the next tick (``Decision.boost``: their optical links make
  key ``turbo_skr_gain`` times faster, at the turbo level's load); and its key relay, one of
  ``RELAY_LEVELS``: 0 over its path, with its data, 1 split among its candidate paths in
  proportion to their weakest hops' key (``Decision.relay``, twin.control.drl.spread_relays:
  the paper's split ratios, applied to what the twin's links run short of, key); and its data,
  one of ``DATA_LEVELS``: 0 over its path, 1 split in equal parts among its path and its
  candidates that meet its latency target (``Decision.data``, twin.control.drl.spread_data).
  Slots beyond the agent's flows are ignored.
- **Observation** (``Box(0, 10)``, F x (4K + 1) values): per flow and candidate the key its
  weakest hop holds over the flow's 10 s need (Table 2's key-buffer-fill-level; 10 when the
  flow needs none), its latency in units of 10 ms, its runway (how long its buffers last at
  the pace they filled or drained over the last tick, the neighbours' load, with the flow's
  own draw, in units of 10 s) and its weakest hop's loss in units of 10 dB (the link's
  transmittance: what RSSI reads), then whether the flow is active
  (twin.control.drl.flow_features); zeros for the empty slots. Clipped to [0, 10]. The
  paper's queue depths are the key buffers here: the twin queues no data (a link carries
  what its flows send; key, not capacity, is what runs short).
- **Reward**, eq. (7) per agent over its flows since its last step:
  ``alpha SKR_meas/SKR_target - beta L - delta I(KeyOutage) - epsilon P_boost``: the keyed
  share of its Type-I/II flows' active time (the secure ratio of eq. 4), the mean latency of
  its chosen paths in units of the 1 ms SLO, an indicator that one of its Type-I flows went
  without key, and the extra laser power its boosts ask for (turbo over "on", W, per satellite
  of each boosted path; none where the terminals have no turbo mode). The carbon term (gamma)
  is left out, as the paths' carbon does not depend on the choice among these candidates in
  the packaged scenarios' grids (one region per country), and satellites run on solar power:
  the boost's price is the battery's energy, which epsilon stands for. ``zeta`` (0 unless
  given: ``RewardWeights``) adds the share of the agent's flows' active time served, eq. (4)'s
  availability term, which eq. (7) lacks.

The engine runs in a worker thread and hands each decision over (queues): the env's ``step`` is
the controller's ``decide``. Everything stays a function of (scenario, seed, actions).

**The loop** the actions route in (``controller``): ``drl-only``'s (the actions alone) or
``ai-sdqn``'s, the deployed one: its MPC tier plans every minute (energy, QKD turbo, the OGS
contact plan, the handover schedule, Type-IV deferrals), the chosen paths are moved around the
stations the contact plan avoids and off the links the schedule says set, and the shield
stands between them and the network. A policy trained in the loop it is deployed in learns
what its actions do there (trained in ``drl-only``'s, the shipped relay and data levels gave
``ai-sdqn`` less than the hand-set ones on case-grid-eclipse; trained again in ``ai-sdqn``'s
from the shipped policy, PPO found at most 0.24 % more return: README, "The DRL tier").
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from twin.control.ai_sdqn import AiSdqn
from twin.control.baselines import Decision, NetworkView
from twin.control.drl import (
    ACTION_HEADS,
    DATA_LEVELS,
    FEATURE_CLIP,
    FLOW_FEATURES,
    K_CANDIDATES,
    LASER_LEVELS,
    RELAY_LEVELS,
    CandidatePaths,
    path_latencies_s,
)
from twin.control.mpc import MpcOnly
from twin.control.shield import boosted_satellites
from twin.network.traffic import TrafficClass

__all__ = [
    "CONTROLLERS",
    "DATA_LEVELS",
    "K_CANDIDATES",
    "LASER_LEVELS",
    "RELAY_LEVELS",
    "RewardWeights",
    "RoutingEnv",
]


@dataclass(frozen=True)
class RewardWeights:
    """alpha, beta, delta of eq. (7) and epsilon of the boost's power; assumptions (the paper
    gives none): the key outage costs as much as the whole secure ratio, 10 ms of latency a
    tenth of it, and a satellite's turbo level (20 W over "on" with the default terminals) a
    fiftieth of it per second: a boost pays where it keeps 2 % more of a flow keyed.

    ``zeta``: not eq. (7)'s, 0 by default: the weight of the share of the agent's flows'
    active time served (their keys and their latency target met: eq. (4)'s A, which the
    runs' J counts and eq. (7) does not; the data level's split serves more of it without
    changing the path's latency, the only term of eq. (7) it could move). Trained with 1
    (eq. (4)'s weight beside its secure ratio's) in ai-sdqn's loop, the relay and data levels
    gained nothing the runs measure (README, "The DRL tier")."""

    alpha: float = 1.0
    beta: float = 0.01
    delta: float = 1.0
    epsilon_per_w: float = 1e-3
    zeta: float = 0.0


class _Stop(Exception):
    """The env was reset or closed: the engine's run ends here."""


class _EnvRouter:
    """Routes as :class:`twin.control.drl.DrlOnly` does, with the env's choice in place of
    the policy's: hands each view to the env and returns the decision the env's actions
    make, around ``avoid`` and off ``setting`` where the controller it routes for gives them
    (``ai-sdqn``'s contact plan and handover schedule)."""

    policy = None  # (the env's actions, not a policy, choose)

    def __init__(self, env: RoutingEnv) -> None:
        self.env = env
        self.candidates = CandidatePaths()

    def decide(self, view: NetworkView, avoid=(), setting=None) -> Decision:
        candidates = self.candidates.build(view)
        features = self.candidates.features(view, candidates)
        self.env._to_env.put(("decide", view, (candidates, features)))
        message = self.env._from_env.get()
        if message is None:
            raise _Stop
        choice = np.column_stack(message).astype(np.int64)  # (candidate, laser, relay, data)
        decision = self.candidates.decision(view, candidates, choice, avoid, setting)
        self.env._decided = decision.paths  # (read by the env once the next view is asked)
        return decision


class _EnvController(_EnvRouter):
    """The engine's controller in ``drl-only``'s loop: the env's actions alone."""

    name = "drl-env"
    plan_every_ticks = 0
    reads_key_fill = True


class _PlannedEnvController(AiSdqn):
    """The engine's controller in ``ai-sdqn``'s loop: its MPC tier plans (the energy plan,
    turbo satellites, the contact plan and handover schedule, the Type-IV deferrals), the
    env's actions route around what the plans avoid, and the engine shields every decision,
    as deployed."""

    name = "ai-sdqn-env"
    # plans in the engine's thread (the engine's own ``plan`` path): the env's engine is a
    # thread already, and a plan is the same wherever it is made
    submit_plan = None

    def __init__(self, env: RoutingEnv) -> None:
        MpcOnly.__init__(self)  # (AiSdqn's own would load the shipped policy, unused here)
        self._router = _EnvRouter(env)


# the loops the env's actions can route in (``RoutingEnv(controller=...)``)
CONTROLLERS = {"drl-only": _EnvController, "ai-sdqn": _PlannedEnvController}


class RoutingEnv(ParallelEnv):
    """The DRL tier's environment over one scenario (module docstring)."""

    metadata = {"name": "qntwin_routing_v0", "render_modes": []}

    def __init__(
        self,
        scenario="small",
        *,
        duration_s: float = 300.0,
        weights: RewardWeights | None = None,
        controller: str = "drl-only",
    ) -> None:
        from twin.scenarios import load_scenario

        if controller not in CONTROLLERS:
            raise ValueError(
                f"controller {controller!r}: the env's actions route in the loop of one of "
                f"{', '.join(CONTROLLERS)}"
            )
        self.controller = controller
        self.scenario = load_scenario(scenario) if isinstance(scenario, str) else scenario
        if not duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        self.duration_s = float(duration_s)
        self.weights = weights or RewardWeights()
        flows = list(self.scenario.flows())
        if not flows:
            raise ValueError(f"scenario {self.scenario.name!r} has no flows to route")
        self._flows = flows
        sources = sorted({f.src_site for f in flows})
        self.possible_agents = [f"edge-{s}" for s in sources]
        self._members = {
            f"edge-{s}": [k for k, f in enumerate(flows) if f.src_site == s] for s in sources
        }
        self.max_flows = max(len(m) for m in self._members.values())
        self._obs_space = spaces.Box(
            0.0, FEATURE_CLIP, shape=(self.max_flows * FLOW_FEATURES,), dtype=np.float32
        )
        self._act_space = spaces.MultiDiscrete(np.tile(ACTION_HEADS, (self.max_flows, 1)))
        self.agents: list[str] = []
        self._thread: threading.Thread | None = None
        self._to_env: queue.Queue = queue.Queue()
        self._from_env: queue.Queue = queue.Queue()
        self._engine = None
        self._last = None  # the decision being asked for: (view, (candidates, features))
        self._decided: tuple = ()  # the paths of the last decision made (_EnvRouter)
        self._seen: dict[str, tuple[int, int, int]] = {}  # flow -> (secure, active, served) ns

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    # --- the engine in its thread ------------------------------------------------------------

    def _stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._from_env.put(None)
            self._thread.join()
        self._thread = None
        self._to_env, self._from_env = queue.Queue(), queue.Queue()

    def _run(self) -> None:
        try:
            self._engine.run(duration_s=self.duration_s)
        except _Stop:
            return
        except BaseException as err:  # (handed to the env, raised there)
            self._to_env.put(("error", err, None))
            return
        self._to_env.put(("done", None, None))

    def _next(self):
        kind, view, candidates = self._to_env.get()
        if kind == "error":
            raise view
        self._last = None if kind == "done" else (view, candidates)
        return self._last

    # --- the PettingZoo API --------------------------------------------------------------------

    def reset(self, seed=None, options=None):
        from twin.engine import Engine

        self._stop()
        seed = self.scenario.seed if seed is None else int(seed)
        controller = CONTROLLERS[self.controller](self)
        self._engine = Engine(self.scenario, controller=controller, seed=seed)
        self._seen = {}
        self.agents = list(self.possible_agents)
        self._thread = threading.Thread(target=self._run, name="qntwin-env-engine", daemon=True)
        self._thread.start()
        self._next()
        return {a: self._observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        if not self.agents:
            raise RuntimeError("step after the episode ended: call reset()")
        view, _ = self._last
        choice = [0] * len(self._flows)
        boost = [False] * len(self._flows)
        relay_level = [0] * len(self._flows)
        data_level = [0] * len(self._flows)
        heads = len(ACTION_HEADS)
        for agent in self.agents:
            action = np.asarray(actions.get(agent, np.zeros((self.max_flows, heads), np.int64)))
            if action.size != heads * self.max_flows:
                raise ValueError(
                    f"the action of {agent} must hold ({self.max_flows}, {heads}) values (a "
                    "candidate path, a laser, a relay and a data level per flow slot), got shape "
                    f"{action.shape}"
                )
            action = action.reshape(self.max_flows, heads)
            for slot, k in enumerate(self._members[agent]):
                choice[k], boost[k] = int(action[slot, 0]), bool(action[slot, 1])
                relay_level[k], data_level[k] = int(action[slot, 2]), int(action[slot, 3])
        self._from_env.put((choice, boost, relay_level, data_level))
        done = self._next() is None
        # the decision's paths (the chosen candidates, moved around what ai-sdqn's plans avoid)
        latency = path_latencies_s(view, self._decided)
        boost_w = self._boost_w(self._decided, boost)
        deltas = self._deltas()
        rewards = {a: self._reward(self._members[a], deltas, latency, boost_w) for a in self.agents}
        observations = {a: self._observe(a) for a in self.agents}
        flags = dict.fromkeys(self.agents, done)
        truncations = dict.fromkeys(self.agents, False)
        # each of the agent's flows rewarded by eq. (7) as if it were an agent of its own (the
        # per-flow credit training uses, twin.control.train)
        infos = {
            a: {
                "flow_rewards": [
                    self._reward([k], deltas, latency, boost_w) for k in self._members[a]
                ]
            }
            for a in self.agents
        }
        if done:
            self.agents = []
        return observations, rewards, flags, truncations, infos

    def close(self) -> None:
        self._stop()

    # --- observation and reward ----------------------------------------------------------------

    def _observe(self, agent: str) -> np.ndarray:
        """The agent's flows' features (twin.control.drl.flow_features), zeros for the slots
        it has no flow in."""
        obs = np.zeros((self.max_flows, FLOW_FEATURES), dtype=np.float32)
        if self._last is not None:
            _, (_, features) = self._last
            members = self._members[agent]
            obs[: len(members)] = features[members]
        return obs.ravel()

    def _deltas(self) -> list[tuple[int, int, int]]:
        """Per flow, the (keyed, active, served) ns it gained since the last step."""
        states = self._engine.flow_state
        out = []
        for flow in self._flows:
            state = states[flow.name]
            now = (state.secure_ns, state.active_ns, state.served_ns)
            was = self._seen.get(flow.name, (0, 0, 0))
            out.append(tuple(a - b for a, b in zip(now, was, strict=True)))
            self._seen[flow.name] = now
        return out

    def _boost_w(self, paths, boost) -> list[float]:
        """Per flow, the extra laser power its boost asks for, W: the turbo level over "on"
        for each satellite of its path (0 unboosted, or where the terminals have no turbo
        mode). A satellite two boosted flows share is charged to both: each asked for it."""
        engine = self._engine
        if engine.turbo_skr_gain <= 1:
            return [0.0] * len(paths)
        extra_w = engine.sat_power.laser_turbo_w - engine.sat_power.laser_on_w
        sat0 = engine.topology.satellite_offset
        return [
            extra_w * boosted_satellites(path, sat0).size if wanted else 0.0
            for path, wanted in zip(paths, boost, strict=True)
        ]

    def _reward(self, members, deltas, latency, boost_w) -> float:
        """Eq. (7) over the flows ``members`` since the last step (module docstring)."""
        secure = active = every_active = served = 0
        outage = False
        for k in members:
            flow = self._flows[k]
            d_secure, d_active, d_served = deltas[k]
            if flow.traffic_class in (TrafficClass.TYPE_I, TrafficClass.TYPE_II):
                secure += d_secure
                active += d_active
            if flow.traffic_class is TrafficClass.TYPE_I and d_active > d_secure:
                outage = True
            every_active += d_active
            served += d_served
        ratio = secure / active if active else 1.0
        availability = served / every_active if every_active else 1.0
        mine = [latency[k] for k in members if latency[k] is not None]
        mean_latency_ms = 1e3 * float(np.mean(mine)) if mine else 0.0
        w = self.weights
        boost_cost = w.epsilon_per_w * sum(boost_w[k] for k in members)
        return float(
            w.alpha * ratio
            - w.beta * mean_latency_ms
            - w.delta * outage
            - boost_cost
            + w.zeta * availability
        )
