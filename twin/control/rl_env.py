"""The DRL tier's environment (main paper sec. VII-B, eq. (7)): a PettingZoo ParallelEnv over the
engine, one agent per edge node.

Agents: one per site that sources flows (the edge node whose SD-WAN gateway routes them; main
paper sec. III-A), named ``edge-<site>``. Each env step is one engine decision (one tick of G(t)).

- **Action** (``MultiDiscrete([K] * F)``, F the most flows any agent has): per flow of the agent,
  one of ``K_CANDIDATES`` candidate paths: 0 keep the current path (while every hop is up; else
  the fastest), 1 the fastest path whose hops hold 10 s of the flow's key demand (key-aware's),
  2 the fastest path (static-sp's). The twin carries a flow on one path, so the paper's
  "next-hop split ratios" become this choice; laser power is the MPC tier's (twin.control.mpc).
  Slots beyond the agent's flows are ignored.
- **Observation** (``Box(0, 10)``, F x (2K + 1) values): per flow and candidate the key its
  weakest hop holds over the flow's 10 s need (Table 2's key-buffer-fill-level; 10 when the
  flow needs none) and the candidate's latency in units of 10 ms, then whether the flow is
  active; zeros for the empty slots. Both are clipped to [0, 10].
- **Reward**, eq. (7) per agent over its flows since its last step:
  ``alpha SKR_meas/SKR_target - beta L - delta I(KeyOutage)``: the keyed share of its Type-I/II
  flows' active time (the secure ratio of eq. 4), the mean latency of its chosen paths in units
  of the 1 ms SLO, and an indicator that one of its Type-I flows went without key; the carbon
  term (gamma) is left out, as the paths' carbon does not depend on the choice among these
  candidates in the packaged scenarios' grids (one region per country).

The engine runs in a worker thread and hands each decision over (queues): the env's ``step`` is
the controller's ``decide``. Everything stays a function of (scenario, seed, actions).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from twin.control.baselines import Decision, KeyAwareGreedy, NetworkView, _latency_csr, _route_all
from twin.network.traffic import TrafficClass

__all__ = ["K_CANDIDATES", "RewardWeights", "RoutingEnv"]

K_CANDIDATES = 3
OBS_CLIP = 10.0
LATENCY_UNIT_S = 10e-3  # observation unit of latency


@dataclass(frozen=True)
class RewardWeights:
    """alpha, beta, delta of eq. (7); assumptions (the paper gives none): the key outage costs
    as much as the whole secure ratio, 10 ms of latency a tenth of it."""

    alpha: float = 1.0
    beta: float = 0.01
    delta: float = 1.0


class _Stop(Exception):
    """The env was reset or closed: the engine's run ends here."""


class _EnvController:
    """The engine's controller: hands each view to the env and returns the env's choice."""

    name = "drl-env"
    plan_every_ticks = 0
    reads_key_fill = True

    def __init__(self, env: RoutingEnv) -> None:
        self.env = env
        self._greedy = KeyAwareGreedy()
        self._previous: tuple = ()

    def decide(self, view: NetworkView) -> Decision:
        candidates = self._candidates(view)
        self.env._to_env.put(("decide", view, candidates))
        message = self.env._from_env.get()
        if message is None:
            raise _Stop
        choice = message
        paths = tuple(candidates[k][choice[k]] for k in range(len(view.flows)))
        self._previous = paths
        return Decision(paths=paths)

    def _candidates(self, view: NetworkView) -> list[tuple]:
        """Per flow: (keep, fastest keyed, fastest) paths."""
        snap = view.snapshot
        flows = list(range(len(view.flows)))
        fastest = _route_all(view, _latency_csr(snap, snap.up), flows).paths
        keyed = list(fastest)
        needs = [self._greedy.need_bits(f, view.t_ns) for f in view.flows]
        for need in sorted(set(needs) - {0}):
            members = [k for k in flows if needs[k] == need]
            for k, path in KeyAwareGreedy.fastest_keyed(view, members, need).items():
                keyed[k] = path
        previous = self._previous if len(self._previous) == len(flows) else (None,) * len(flows)
        intact = view.edges().paths_intact(previous)
        keep = [previous[k] if intact[k] else fastest[k] for k in flows]
        return [(keep[k], keyed[k], fastest[k]) for k in flows]


class RoutingEnv(ParallelEnv):
    """The DRL tier's environment over one scenario (module docstring)."""

    metadata = {"name": "qntwin_routing_v0", "render_modes": []}

    def __init__(self, scenario="small", *, duration_s: float = 300.0,
                 weights: RewardWeights | None = None) -> None:  # fmt: skip
        from twin.scenarios import load_scenario

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
            0.0, OBS_CLIP, shape=(self.max_flows * (2 * K_CANDIDATES + 1),), dtype=np.float32
        )
        self._act_space = spaces.MultiDiscrete([K_CANDIDATES] * self.max_flows)
        self.agents: list[str] = []
        self._thread: threading.Thread | None = None
        self._to_env: queue.Queue = queue.Queue()
        self._from_env: queue.Queue = queue.Queue()
        self._engine = None
        self._last = None  # the decision being asked for: (view, candidates)
        self._seen: dict[str, tuple[int, int]] = {}  # flow -> (secure ns, active ns) so far

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
        self._engine = Engine(self.scenario, controller=_EnvController(self), seed=seed)
        self._seen = {}
        self.agents = list(self.possible_agents)
        self._thread = threading.Thread(target=self._run, name="qntwin-env-engine", daemon=True)
        self._thread.start()
        self._next()
        return {a: self._observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        if not self.agents:
            raise RuntimeError("step after the episode ended: call reset()")
        view, candidates = self._last
        choice = [0] * len(self._flows)
        for agent in self.agents:
            action = np.asarray(actions.get(agent, np.zeros(self.max_flows, dtype=np.int64)))
            for slot, k in enumerate(self._members[agent]):
                choice[k] = int(action[slot])
        self._from_env.put(choice)
        chosen = [candidates[k][choice[k]] for k in range(len(self._flows))]
        latency = self._latencies(view, chosen)
        done = self._next() is None
        rewards = {a: self._reward(a, latency) for a in self.agents}
        observations = {a: self._observe(a) for a in self.agents}
        flags = dict.fromkeys(self.agents, done)
        truncations = dict.fromkeys(self.agents, False)
        infos = {a: {} for a in self.agents}
        if done:
            self.agents = []
        return observations, rewards, flags, truncations, infos

    def close(self) -> None:
        self._stop()

    # --- observation and reward ----------------------------------------------------------------

    def _latencies(self, view, paths) -> list[float | None]:
        """Each path's latency (None for no path, or one with a hop down)."""
        lookup = view.edges()
        latencies = [None if p is None else lookup.path_latency_s(p) for p in paths]
        return [x if x is not None and np.isfinite(x) else None for x in latencies]

    def _observe(self, agent: str) -> np.ndarray:
        obs = np.zeros((self.max_flows, 2 * K_CANDIDATES + 1), dtype=np.float32)
        if self._last is not None:
            view, candidates = self._last
            greedy = self._engine.controller._greedy
            for slot, k in enumerate(self._members[agent]):
                flow = self._flows[k]
                need = greedy.need_bits(flow, view.t_ns)
                latency = self._latencies(view, candidates[k])
                for c, path in enumerate(candidates[k]):
                    if path is None:
                        continue
                    held = view.key_fill.of_path(path).min(initial=np.iinfo(np.int64).max)
                    obs[slot, c] = OBS_CLIP if need == 0 else min(held / need, OBS_CLIP)
                    obs[slot, K_CANDIDATES + c] = min(latency[c] / LATENCY_UNIT_S, OBS_CLIP)
                obs[slot, -1] = float(need > 0)
        return obs.ravel()

    def _reward(self, agent: str, latency) -> float:
        """Eq. (7) over the agent's flows since its last step (module docstring)."""
        states = self._engine.flow_state
        secure = active = 0
        outage = False
        for k in self._members[agent]:
            flow = self._flows[k]
            state = states[flow.name]
            was_secure, was_active = self._seen.get(flow.name, (0, 0))
            d_secure, d_active = state.secure_ns - was_secure, state.active_ns - was_active
            self._seen[flow.name] = (state.secure_ns, state.active_ns)
            if flow.traffic_class in (TrafficClass.TYPE_I, TrafficClass.TYPE_II):
                secure += d_secure
                active += d_active
            if flow.traffic_class is TrafficClass.TYPE_I and d_active > d_secure:
                outage = True
        ratio = secure / active if active else 1.0
        mine = [latency[k] for k in self._members[agent] if latency[k] is not None]
        mean_latency_ms = 1e3 * float(np.mean(mine)) if mine else 0.0
        w = self.weights
        return float(w.alpha * ratio - w.beta * mean_latency_ms - w.delta * outage)
