"""The DRL tier: the edge policy (twin.control.drl), its controllers and its PPO training."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from twin.control.drl import (
    FEATURE_CLIP,
    FLOW_FEATURES,
    K_CANDIDATES,
    EdgePolicy,
    FlowPolicyNet,
    shipped_policy,
)
from twin.engine import Engine
from twin.metrics import compute_metrics, metrics_json
from twin.scenarios import load_scenario


def random_features(n_flows, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, FEATURE_CLIP, (n_flows, FLOW_FEATURES)).astype(np.float32)


def test_a_flows_choice_does_not_depend_on_the_other_flows_in_the_batch():
    # edge actors decide for their own sites' flows: a flow must get the same candidate
    # whether it is inferred alone or among all the scenario's flows
    torch.manual_seed(3)
    policy = EdgePolicy(FlowPolicyNet())
    features = random_features(257)
    together = policy.choose(features)
    alone = np.concatenate([policy.choose(features[k : k + 1]) for k in range(len(features))])
    assert np.array_equal(together, alone)
    assert set(together.tolist()) <= set(range(K_CANDIDATES))
    assert policy.choose(features[:0]).shape == (0,)


def test_a_saved_policy_loads_and_chooses_the_same(tmp_path):
    torch.manual_seed(4)
    policy = EdgePolicy(FlowPolicyNet((16, 8)), {"scenario": "small", "iterations": 2})
    loaded = EdgePolicy.load(policy.save(tmp_path / "p.pt"))
    assert loaded.meta == {"scenario": "small", "iterations": 2}
    assert loaded.net.hidden == (16, 8)
    features = random_features(64, seed=1)
    assert np.array_equal(loaded.choose(features), policy.choose(features))


def test_a_file_that_is_no_policy_gets_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"policy file '.*missing.pt' not found"):
        EdgePolicy.load(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a policy")
    with pytest.raises(ValueError, match=r"'.*bad.pt' is not a qntwin edge policy.*qntwin train"):
        EdgePolicy.load(bad)


def test_the_shipped_policy_says_how_it_was_trained_and_beat_random_there():
    meta = shipped_policy().meta
    load_scenario(meta["scenario"])
    assert meta["iterations"] >= 1 and meta["env_steps"] > 0
    assert meta["trained_return"] > meta["random_return"]


@pytest.mark.parametrize("controller", ["drl-only", "ai-sdqn"])
def test_drl_controllers_run_the_same_twice(controller):
    scenario = load_scenario("case-grid-eclipse")
    runs = []
    for _ in range(2):
        engine = Engine(scenario, controller=controller)
        runs.append(metrics_json(compute_metrics(engine.run(duration_s=60), engine)))
    one, two = (json.loads(r) for r in runs)
    for run in (one, two):
        run.pop("wall_seconds")
    assert one == two
    assert engine.controller_label == controller
    assert (engine.shield is not None) == (controller == "ai-sdqn")


FIBRE_RING = Path(__file__).parent / "data" / "fibre-ring.yaml"


def test_a_short_ppo_training_beats_random_and_writes_a_policy_that_routes_as_it_scored(
    tmp_path,
):
    """Three PPO iterations of 300 steps on fibre-ring's first minute (a test scenario where
    the fastest path is short of key and a detour is not; the issue asks for ``small``, where
    every flow has one fibre path and every policy scores the same): the kept policy beats the
    uniformly random one (mean of 10 draws) and the untrained one; the written policy.pt,
    loaded, scores exactly the return it was kept for; train.json reports what ran and
    RLlib's checkpoint is there. Measured: untrained -43.4, random 28.0, trained 35.6 (the
    always-keyed policy's return) after the first iteration, in ~6 s."""
    pytest.importorskip("ray.rllib")
    from twin.control.train import episode_return, train_policy

    scenario = str(FIBRE_RING)
    result = train_policy(scenario, tmp_path, iterations=3, episode_s=60, steps_per_iteration=300)
    assert result.trained_return > result.random_return > result.initial_return
    policy = EdgePolicy.load(result.policy_path)
    assert episode_return(scenario, 60, policy.choose) == result.trained_return
    assert policy.meta["trained_return"] == result.trained_return
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["env_steps"] == 900 and report["iterations"] == 3
    assert 1 <= report["best_iteration"] <= 3
    assert (tmp_path / "checkpoint").is_dir()


def test_routing_around_a_station_moves_only_the_flows_through_it():
    """The contact plan's stations (ai-sdqn): a flow through an avoided OGS gets a path
    without it where one exists, the others keep theirs, and avoiding nothing changes
    nothing."""
    from twin.control.baselines import KeyAwareGreedy
    from twin.control.drl import CandidatePaths, route_around

    engine = Engine(load_scenario("storm"), controller="static-sp")
    engine.run(duration_s=10)
    view = engine._view(engine.topology.snapshot(10 * 10**9))
    fastest = [c[2] for c in CandidatePaths().build(view)]
    names = view.snapshot.node_names
    stations = {names[n] for p in fastest if p for n in p if n in engine._ogs_nodes}
    assert stations, "some flow crosses an optical ground station"
    moves = 0
    for station in sorted(stations):
        node = view.node_index.indices([station])[0]
        moved = route_around(view, fastest, [station], KeyAwareGreedy())
        for before, after in zip(fastest, moved, strict=True):
            if before is not None and node in before and after != before:
                assert node not in after and (after[0], after[-1]) == (before[0], before[-1])
                moves += 1
            else:  # not through it, or no way around it: kept
                assert after == before
    assert moves > 0
    assert route_around(view, fastest, [], KeyAwareGreedy()) == tuple(fastest)
