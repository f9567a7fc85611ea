"""The DRL tier's PettingZoo environment (twin.control.rl_env)."""

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from pettingzoo.test import parallel_api_test  # noqa: E402

from twin.control.drl import ACTION_HEADS, FLOW_FEATURES, shipped_policy  # noqa: E402
from twin.control.rl_env import RewardWeights, RoutingEnv  # noqa: E402
from twin.engine import Engine  # noqa: E402
from twin.scenarios import load_scenario  # noqa: E402


def test_the_env_passes_pettingzoos_parallel_api_test():
    env = RoutingEnv("small", duration_s=30)
    try:
        parallel_api_test(env, num_cycles=40)
    finally:
        env.close()


def episode(env, policy, seed=0):
    """(total reward per agent, every observation) of one episode under ``policy``."""
    obs, _ = env.reset(seed=seed)
    totals = dict.fromkeys(env.agents, 0.0)
    seen = [obs]
    while env.agents:
        obs, rewards, _, _, _ = env.step({a: policy(a) for a in env.agents})
        for a, r in rewards.items():
            totals[a] += r
        seen.append(obs)
    return totals, seen


def test_an_episode_is_a_function_of_the_scenario_the_seed_and_the_actions():
    rng = np.random.default_rng(7)
    env = RoutingEnv("case-grid-eclipse", duration_s=40)
    actions = [
        rng.integers(0, ACTION_HEADS, (env.max_flows, len(ACTION_HEADS))) for _ in range(200)
    ]

    def replay():
        step = iter(range(10**6))
        chosen = {}

        def policy(agent):
            key = (agent, len(chosen))
            chosen[key] = actions[next(step) % len(actions)]
            return chosen[key]

        return episode(env, policy)

    (one, seen_one), (two, seen_two) = replay(), replay()
    env.close()
    assert one == two
    for a, b in zip(seen_one, seen_two, strict=True):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_choosing_keyed_paths_earns_more_than_the_fastest_on_case_grid_eclipse():
    """Eq. (7) rewards keyed time and punishes Type-I key outages: across the Strait, where
    satellite hops run short of key, always taking the keyed candidate beats always taking the
    fastest path (the first two minutes)."""
    totals = {}
    for choice in (1, 2):
        env = RoutingEnv("case-grid-eclipse", duration_s=120)
        always = np.tile([choice, 0, 0, 0], (env.max_flows, 1))
        totals[choice] = sum(episode(env, lambda agent, a=always: a)[0].values())
        env.close()
    assert totals[1] > 1.5 * totals[2]


def test_reset_mid_episode_starts_over_and_bad_use_is_refused():
    env = RoutingEnv("small", duration_s=20)
    first, _ = env.reset(seed=0)
    env.step({a: np.zeros((env.max_flows, 4), dtype=np.int64) for a in env.agents})
    again, _ = env.reset(seed=0)
    assert all(np.array_equal(first[a], again[a]) for a in first)
    while env.agents:
        env.step({a: np.zeros((env.max_flows, 4), dtype=np.int64) for a in env.agents})
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})
    env.close()
    with pytest.raises(ValueError, match="duration_s"):
        RoutingEnv("small", duration_s=0)
    with pytest.raises(ValueError, match="'mpc-only'.*drl-only, ai-sdqn"):
        RoutingEnv("small", controller="mpc-only")


def served(engine):
    """Per flow, the (keyed, active) ns the engine served it."""
    return {name: (s.secure_ns, s.active_ns) for name, s in engine.flow_state.items()}


@pytest.mark.parametrize("controller", ["drl-only", "ai-sdqn"])
def test_the_envs_loop_is_the_deployed_controllers(controller):
    """The shipped policy's actions through the env in a controller's loop serve every flow
    as that controller does on its own, to the nanosecond, with the same handovers and
    shield counts: a policy trains for the loop it is deployed in (for ai-sdqn: the MPC
    tier's plans, the moves around what they avoid, the shield). The first 5 minutes of
    case-munich-pretoria, where the two loops serve the flows differently."""
    policy = shipped_policy()
    env = RoutingEnv("case-munich-pretoria", duration_s=300, controller=controller)
    obs, _ = env.reset()
    while env.agents:
        actions = {a: policy.choose(obs[a].reshape(-1, FLOW_FEATURES)) for a in env.agents}
        obs, *_ = env.step(actions)
    trained_in = env._engine
    env.close()
    deployed = Engine(load_scenario("case-munich-pretoria"), controller=controller)
    deployed.run(duration_s=300)
    assert served(trained_in) == served(deployed)
    assert len(trained_in.handover.log) == len(deployed.handover.log) > 0
    assert trained_in.shield_violations == deployed.shield_violations
    assert (trained_in.shield is not None) == (controller == "ai-sdqn")
    if controller == "ai-sdqn":  # (the loop matters: drl-only's serves them otherwise)
        alone = Engine(load_scenario("case-munich-pretoria"), controller="drl-only")
        alone.run(duration_s=300)
        assert served(alone) != served(deployed)


def test_a_new_inter_satellite_route_between_the_same_access_satellites_is_no_handover():
    """Regression: on case-munich-pretoria at 130 s the keyed candidate keeps both ground-space
    hops and takes other inter-satellite links; the engine took that for a move to another
    satellite and found no new space hop to hand over to (IndexError)."""
    env = RoutingEnv("case-munich-pretoria", duration_s=140)
    try:
        _, seen = episode(env, lambda agent: np.tile([1, 0, 0, 0], (env.max_flows, 1)))
    finally:
        env.close()
    assert len(seen) == 1 + 141  # the reset's observation, then one per 1 s decision to 140 s


def test_the_availability_term_adds_the_share_of_the_agents_flows_time_served():
    """RewardWeights.zeta (an addition to eq. 7, 0 by default): each step's reward gains
    zeta times the share of the agent's flows' active time that was served (eq. 4's A), and
    nothing else changes. Case-munich-pretoria's first 2 minutes, always the fastest path:
    some of its flows go unserved (the share is below 1 at some steps)."""
    gained = []
    for zeta in (0.0, 2.0):
        env = RoutingEnv("case-munich-pretoria", duration_s=120, weights=RewardWeights(zeta=zeta))
        fastest = np.tile([2, 0, 0, 0], (env.max_flows, 1))
        env.reset(seed=0)
        rewards = []
        while env.agents:
            rewards.append(env.step({a: fastest for a in env.agents})[1])
        env.close()
        gained.append(rewards)
    shares = [
        (with_a[agent] - without[agent]) / 2.0
        for without, with_a in zip(*gained, strict=True)
        for agent in without
    ]
    assert all(0.0 <= share <= 1.0 + 1e-12 for share in shares)
    assert min(shares) < 0.9 and max(shares) == pytest.approx(1.0)
