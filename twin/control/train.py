"""Training the DRL tier's edge policy with RLlib's PPO (main paper sec. VII-B; ``qntwin train``).

RLlib's PPO (new API stack) runs on :class:`twin.control.rl_env.RoutingEnv` wrapped as an RLlib
multi-agent env whose agents are the edge agents' flows (:func:`_make_env`); they all map to one
module, ``FlowPPOModule``, whose policy is :class:`twin.control.drl.FlowPolicyNet` (the same
weights for every flow) and whose value function sees the same one flow's features. After
training, the policy's weights are written as a plain :class:`twin.control.drl.EdgePolicy`
(``policy.pt``: what ``drl-only`` and ``ai-sdqn`` load, no RLlib needed to run them) beside
RLlib's own checkpoint (``checkpoint/``, to resume or inspect with RLlib).

:func:`episode_return` measures a policy on the env without RLlib: the training keeps the best
policy by it and reports it beside the uniformly random and always-keyed policies'.

PPO learns unsteadily on this problem (README, "The DRL tier"): the exploring policy stays near
uniform and the evaluated return jumps between iterations, which is why the best evaluated
policy is kept rather than the last; and a policy kept for one scenario's window overfits it,
which is why several scenarios can take turns. Some heads can be trained alone over a given
policy (:func:`freeze_all_but`): the shipped policy's relay and data levels were, over its paths.

The policy's actions route alone (``drl-only``'s loop) or in ``ai-sdqn``'s (its plans, the
moves around what they avoid, the shield: twin.control.rl_env), as ``controller`` says; the
reward is eq. (7) with ``weights`` (twin.control.rl_env.RewardWeights). Both are in
train.json and the policy's meta.

Training is not bit-reproducible (RLlib's sampling and torch's threads); a trained policy is a
file, and runs with a given policy file are (twin.control.drl).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from twin.control.drl import (
    ACTION_HEADS,
    ACTION_LOGITS,
    FEATURE_CLIP,
    FLOW_FEATURES,
    HEAD_NAMES,
    HIDDEN,
    EdgePolicy,
    FlowPolicyNet,
)

if TYPE_CHECKING:
    from twin.control.rl_env import RewardWeights

__all__ = ["TrainResult", "episode_return", "freeze_all_but", "random_return", "train_policy"]

ENV_NAME = "qntwin-routing"
MODULE_ID = "edge"


@dataclass(frozen=True)
class TrainResult:
    scenario: str  # the scenarios trained on, comma-separated
    iterations: int
    episode_s: float
    env_steps: int
    wall_s: float
    # returns over one episode of each scenario, summed (env and policy deterministic: exact)
    initial_return: float  # the policy's training started from (``init``, or untrained)
    trained_return: float  # the kept policy's (the best after an iteration)
    best_iteration: int  # the iteration whose policy was kept (0: none beat the untrained)
    random_return: float  # the uniformly random policy's (per scenario the mean of draws)
    keyed_return: float  # the fastest keyed path (key-aware's), no boost, key and data on it
    heads: tuple[str, ...]  # the heads trained (HEAD_NAMES); the others and the body kept
    init_policy: str | None  # the fingerprint of the policy training started from (None: fresh)
    controller: str  # the loop the policy was trained in (twin.control.rl_env.CONTROLLERS)
    reward_weights: dict  # eq. (7)'s weights it was trained and scored with (RewardWeights)
    policy_path: str
    checkpoint_path: str


def episode_return(
    scenario,
    episode_s: float,
    choose,
    *,
    seed: int | None = None,
    controller: str = "drl-only",
    weights: RewardWeights | None = None,
) -> float:
    """Total eq. (7) reward of every agent over one episode in ``controller``'s loop
    (twin.control.rl_env); ``choose(features)`` gives each flow's (candidate, laser, relay and
    data level) from its (F, FLOW_FEATURES) features (an agent's flows, padded): (F, 4)
    integers; ``weights``: eq. (7)'s (twin.control.rl_env.RewardWeights; None: the
    defaults)."""
    from twin.control.rl_env import RoutingEnv

    env = RoutingEnv(scenario, duration_s=episode_s, controller=controller, weights=weights)
    try:
        obs, _ = env.reset(seed=seed)
        total = 0.0
        while env.agents:
            actions = {a: choose(obs[a].reshape(-1, FLOW_FEATURES)) for a in env.agents}
            obs, rewards, _, _, _ = env.step(actions)
            total += sum(rewards.values())
        return total
    finally:
        env.close()


def random_return(
    scenario,
    episode_s: float,
    *,
    episodes: int = 3,
    seed: int = 0,
    controller: str = "drl-only",
    weights: RewardWeights | None = None,
) -> float:
    """Mean return of the uniformly random policy over ``episodes`` seeded episodes."""
    totals = []
    for n in range(episodes):
        rng = np.random.default_rng([seed, n])

        def uniform(features, rng=rng):
            return rng.integers(0, ACTION_HEADS, (len(features), len(ACTION_HEADS)))

        totals.append(
            episode_return(scenario, episode_s, uniform, controller=controller, weights=weights)
        )
    return float(np.mean(totals))


def freeze_all_but(net: FlowPolicyNet, heads: Sequence[str]) -> None:
    """Let training change only the output rows of ``heads`` (names of HEAD_NAMES): the
    gradients of the body (shared by every head: changing it would move the others) and of
    the other heads' rows are zeroed as they are computed, so PPO's Adam leaves those weights
    exactly as they are (its moments of gradients that are always zero stay zero). Every head:
    nothing frozen. Why: PPO's paths overfit their training window (README, "The DRL tier"),
    so the relay and data levels are trained on top of paths kept as they are."""
    unknown = sorted(set(heads) - set(HEAD_NAMES))
    if unknown or not heads:
        raise ValueError(
            f"heads must be some of {', '.join(HEAD_NAMES)}, got {', '.join(heads) or 'none'}"
        )
    if set(heads) == set(HEAD_NAMES):
        return
    bounds = np.cumsum((0, *ACTION_HEADS))
    trained = torch.zeros(ACTION_LOGITS)
    for name in heads:
        head = HEAD_NAMES.index(name)
        trained[bounds[head] : bounds[head + 1]] = 1.0
    for param in net.body[:-1].parameters():
        param.register_hook(torch.zeros_like)
    output = net.body[-1]
    output.weight.register_hook(lambda grad: grad * trained.to(grad)[:, None])
    output.bias.register_hook(lambda grad: grad * trained.to(grad))


def _module_class():
    """FlowPPOModule, made on first use (importing RLlib takes seconds)."""
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
    from ray.rllib.core.rl_module.apis import ValueFunctionAPI
    from ray.rllib.core.rl_module.torch import TorchRLModule

    class FlowPPOModule(TorchRLModule, ValueFunctionAPI):
        """PPO's module: the per-flow policy net (MultiDiscrete(ACTION_HEADS) over one flow's
        features: a categorical over its candidates, one over its laser levels, one over its
        relay levels and one over its data levels) and a value net of the same shape; only
        the policy's heads named in ``model_config["heads"]`` learn (:func:`freeze_all_but`)."""

        def setup(self):
            hidden = tuple(self.model_config.get("hidden", HIDDEN))
            self.pi = FlowPolicyNet(hidden)
            freeze_all_but(self.pi, self.model_config.get("heads", HEAD_NAMES))
            self.vf = FlowPolicyNet(hidden, outputs=1)
            self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(
                input_lens=list(ACTION_HEADS)
            )

        def _forward(self, batch, **kwargs):
            return {Columns.ACTION_DIST_INPUTS: self.pi(batch[Columns.OBS])}

        def compute_values(self, batch, embeddings=None):
            return self.vf(batch[Columns.OBS]).squeeze(-1)

    return FlowPPOModule


def _make_env(config):
    """RLlib's view of :class:`RoutingEnv` for training: each edge agent's flows act as agents
    of their own (``<agent>/<slot>``, one flow's features in, its candidate, laser, relay and
    data level out, eq. (7) over that flow as the reward; the env's ``flow_rewards``). They
    share one policy, so this is the edge agents' shared per-flow policy with the credit of
    each choice given to the flow it moved: summed over an agent's flows (and its empty
    slots), PPO did not learn at all (entropy still 97 % of uniform after 8,000 steps on
    case-munich-pretoria)."""
    from gymnasium import spaces
    from ray.rllib.env.multi_agent_env import MultiAgentEnv

    from twin.control.rl_env import RewardWeights, RoutingEnv

    class FlowAgents(MultiAgentEnv):
        def __init__(self, config):
            super().__init__()
            names = config["scenarios"]
            self.envs = [
                RoutingEnv(
                    name,
                    duration_s=config["episode_s"],
                    controller=config.get("controller", "drl-only"),
                    weights=RewardWeights(**config.get("weights", {})),
                )
                for name in names
            ]
            # per scenario, each flow agent's (edge agent, slot); with several scenarios the
            # ids name the scenario too (<n>:<agent>/<slot>), as two may share an edge node
            self.slots_of = [
                {
                    (f"{n}:" if len(names) > 1 else "") + f"{agent}/{slot}": (agent, slot)
                    for agent in env.possible_agents
                    for slot in range(len(env._members[agent]))
                }
                for n, env in enumerate(self.envs)
            ]
            self.possible_agents = [fid for slots in self.slots_of for fid in slots]
            self._episodes = 0  # the scenarios take turns, episode by episode
            self._use(0)
            observation = spaces.Box(0.0, FEATURE_CLIP, (FLOW_FEATURES,), dtype=np.float32)
            action = spaces.MultiDiscrete(list(ACTION_HEADS))
            self.observation_spaces = dict.fromkeys(self.possible_agents, observation)
            self.action_spaces = dict.fromkeys(self.possible_agents, action)

        def _use(self, n: int) -> None:
            self.env, self.slots = self.envs[n], self.slots_of[n]
            self.agents = list(self.slots)

        def _split(self, per_agent: dict) -> dict:
            return {
                fid: per_agent[agent].reshape(-1, FLOW_FEATURES)[slot]
                for fid, (agent, slot) in self.slots.items()
            }

        def reset(self, *, seed=None, options=None):
            self._use(self._episodes % len(self.envs))
            self._episodes += 1
            obs, _ = self.env.reset(seed=seed, options=options)
            return self._split(obs), {}

        def step(self, action_dict):
            actions = {
                agent: np.zeros((self.env.max_flows, len(ACTION_HEADS)), dtype=np.int64)
                for agent in self.env.agents
            }
            for fid, (agent, slot) in self.slots.items():
                if fid in action_dict and agent in actions:
                    actions[agent][slot] = action_dict[fid]
            obs, _, terminated, _, infos = self.env.step(actions)
            done = all(terminated.values())
            rewards = {
                fid: infos[agent]["flow_rewards"][slot] for fid, (agent, slot) in self.slots.items()
            }
            terminateds = dict.fromkeys(self.slots, done) | {"__all__": done}
            truncateds = dict.fromkeys(self.slots, False) | {"__all__": False}
            return self._split(obs), rewards, terminateds, truncateds, {}

        def close(self):
            for env in self.envs:
                env.close()

    return FlowAgents(config)


def train_policy(
    scenario: str | Sequence[str],
    out: str | Path,
    *,
    iterations: int = 20,
    episode_s: float = 900.0,
    seed: int = 0,
    steps_per_iteration: int = 2000,
    eval_episodes: int = 10,
    lr: float = 1e-3,
    init: EdgePolicy | None = None,
    heads: Sequence[str] = HEAD_NAMES,
    controller: str = "drl-only",
    weights: RewardWeights | None = None,
    progress=None,
) -> TrainResult:
    """Train the edge policy with RLlib's PPO on ``scenario`` (episodes of ``episode_s``
    simulated seconds, one env step per 1 s decision) for ``iterations`` PPO iterations of
    ``steps_per_iteration`` env steps; write ``out/policy.pt``, ``out/checkpoint/`` and
    ``out/train.json``. Several scenarios: their episodes take turns, and every return
    reported is the sum of one episode of each (a policy kept for one scenario's window
    overfits it: README, "The DRL tier").

    After each iteration the policy is evaluated as it is deployed (each flow's most likely
    candidate; the env is deterministic, so one episode gives the exact return) and the best
    one is kept: PPO's policy on this problem does not improve monotonically (on
    case-munich-pretoria's first 15 minutes the evaluated return went from 602.6 to 669.5 and
    back to 580.9 between iterations; on its first 2 minutes from -56 to +29 and back). The
    checkpoint is the last iteration's. ``init``: the policy PPO starts from (its policy
    net's weights; the value net starts afresh), e.g. a trained one to fine-tune; None: a
    fresh network. ``heads``: the heads PPO trains (of HEAD_NAMES); with fewer than all, the
    body and the other heads stay as ``init`` has them (:func:`freeze_all_but`), e.g. the
    relay and data levels learned over a policy's paths. ``controller``: the loop the policy's
    actions route in, ``drl-only``'s (the actions alone) or ``ai-sdqn``'s (its plans, the
    contact plan's and handover schedule's moves, the shield: twin.control.rl_env), in
    training and in every evaluation. ``weights``: eq. (7)'s weights
    (twin.control.rl_env.RewardWeights; None: its defaults), there too.
    ``progress(iteration, sampled_return, evaluated_return)`` is called after each iteration
    (sampled: RLlib's mean over its recent training episodes, exploring)."""
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import register_env

    from twin.control.rl_env import CONTROLLERS, RewardWeights
    from twin.scenarios import load_scenario

    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    weights = RewardWeights() if weights is None else weights
    freeze_all_but(FlowPolicyNet(), heads)  # unknown heads fail here, before Ray starts
    if controller not in CONTROLLERS:  # (so does an unknown loop)
        raise ValueError(
            f"controller {controller!r}: a policy trains in the loop of one of "
            f"{', '.join(CONTROLLERS)}"
        )
    heads = tuple(name for name in HEAD_NAMES if name in heads)  # in HEAD_NAMES' order
    if not episode_s >= 1:
        raise ValueError(f"episode_s must be >= 1 s (one decision a second), got {episode_s}")
    scenarios = [str(scenario)] if isinstance(scenario, str | Path) else list(map(str, scenario))
    if not scenarios:
        raise ValueError("train on at least one scenario")
    for name in scenarios:
        load_scenario(name)  # an unknown scenario fails here, with the known names

    def scored(choose) -> float:  # one deterministic episode of each scenario, summed
        return sum(
            episode_return(name, episode_s, choose, controller=controller, weights=weights)
            for name in scenarios
        )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    started = time.perf_counter()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_env(ENV_NAME, _make_env)
    config = (
        PPOConfig()
        .environment(
            ENV_NAME,
            env_config={
                "scenarios": scenarios,
                "episode_s": float(episode_s),
                "controller": controller,
                "weights": asdict(weights),
            },
        )
        .multi_agent(
            policies={MODULE_ID},
            policy_mapping_fn=lambda agent_id, *args, **kwargs: MODULE_ID,
        )
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={
                    MODULE_ID: RLModuleSpec(
                        module_class=_module_class(),
                        model_config={"hidden": list(HIDDEN), "heads": list(heads)},
                    )
                }
            )
        )
        # sampling in the driver: an env runner actor would cost a process for ~3 ms steps
        .env_runners(num_env_runners=0, rollout_fragment_length="auto")
        .learners(num_learners=0)
        .training(
            train_batch_size_per_learner=steps_per_iteration,
            minibatch_size=min(128, steps_per_iteration),
            # (with gamma 0.9, lambda 0.9 and 10 epochs, 12 iterations on
            # case-munich-pretoria never left the fastest-path policy)
            num_epochs=6,
            lr=lr,
            gamma=0.99,
            lambda_=0.95,
            entropy_coeff=0.01,
        )
        .debugging(seed=seed, log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=5)
    )
    algo = config.build_algo()
    try:
        if init is not None:
            module = algo.get_module(MODULE_ID)
            module.pi.load_state_dict(
                {k: v.to(torch.float32) for k, v in init.net.state_dict().items()}
            )
            # the learner's copy is the one trained; the env runner's samples with the same
            algo.learner_group.set_weights({MODULE_ID: module.get_state()})

        def current() -> EdgePolicy:
            return EdgePolicy(copy.deepcopy(algo.get_module(MODULE_ID).pi).cpu())

        initial = current()
        initial_return = scored(initial.choose)
        trained, trained_return, best_iteration = initial, initial_return, 0
        env_steps = 0
        for iteration in range(1, iterations + 1):
            result = algo.train()
            runners = result.get("env_runners", {})
            env_steps = int(runners.get("num_env_steps_sampled_lifetime", env_steps))
            policy = current()
            evaluated = scored(policy.choose)
            if evaluated > trained_return:
                trained, trained_return, best_iteration = policy, evaluated, iteration
            if progress is not None:
                sampled = float(runners.get("episode_return_mean", float("nan")))
                progress(iteration, sampled, evaluated)
        checkpoint = algo.save_to_path(str((out / "checkpoint").resolve()))
    finally:
        algo.stop()

    result = TrainResult(
        scenario=",".join(scenarios),
        iterations=iterations,
        episode_s=float(episode_s),
        env_steps=env_steps,
        wall_s=time.perf_counter() - started,
        initial_return=initial_return,
        trained_return=trained_return,
        best_iteration=best_iteration,
        random_return=sum(
            random_return(
                name,
                episode_s,
                episodes=eval_episodes,
                seed=seed,
                controller=controller,
                weights=weights,
            )
            for name in scenarios
        ),
        keyed_return=scored(lambda f: np.tile(np.array([1, 0, 0, 0], np.int64), (len(f), 1))),
        heads=heads,
        init_policy=None if init is None else init.fingerprint(),
        controller=controller,
        reward_weights=asdict(weights),
        policy_path=str(out / "policy.pt"),
        checkpoint_path=str(checkpoint),
    )
    trained.meta = {k: v for k, v in asdict(result).items() if not k.endswith("_path")}
    if init is not None:  # where the heads kept as they were came from
        trained.meta["init_meta"] = init.meta
    trained.save(out / "policy.pt")
    (out / "train.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result
