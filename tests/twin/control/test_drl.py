"""The DRL tier: the edge policy (twin.control.drl), its controllers and its PPO training."""

import dataclasses
import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

from twin.control.drl import (
    ACTION_HEADS,
    DATA_LEVELS,
    FEATURE_CLIP,
    FLOW_FEATURES,
    K_CANDIDATES,
    LASER_LEVELS,
    RELAY_LEVELS,
    CandidatePaths,
    DrlOnly,
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
    assert together.shape == (257, 4)
    assert set(together[:, 0].tolist()) <= set(range(K_CANDIDATES))
    assert set(together[:, 1].tolist()) <= set(range(LASER_LEVELS))
    assert set(together[:, 2].tolist()) <= set(range(RELAY_LEVELS))
    assert set(together[:, 3].tolist()) <= set(range(DATA_LEVELS))
    assert policy.choose(features[:0]).shape == (0, 4)


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


def test_a_policy_of_another_layout_is_refused_naming_the_counts(tmp_path):
    torch.manual_seed(5)
    path = EdgePolicy(FlowPolicyNet((8,))).save(tmp_path / "p.pt")
    saved = torch.load(path, weights_only=True)
    saved["features"] = 7  # (the layout before the runway and loss features)
    del saved["actions"]  # (and before the laser level)
    torch.save(saved, path)
    with pytest.raises(
        ValueError,
        match=rf"reading 7 features per flow and choosing among 3 actions.*read {FLOW_FEATURES}"
        rf".*among {K_CANDIDATES} paths x {LASER_LEVELS} laser levels x {RELAY_LEVELS} relay "
        rf"levels x {DATA_LEVELS} data levels.*qntwin train",
    ):
        EdgePolicy.load(path)
    saved["features"] = FLOW_FEATURES  # the runway and loss, no laser: refused too
    torch.save(saved, path)
    with pytest.raises(ValueError, match=rf"reading {FLOW_FEATURES} features.*among 3 actions"):
        EdgePolicy.load(path)
    saved["actions"] = [3, 3, 2]  # a laser head of three levels: refused even as earlier
    torch.save(saved, path)
    with pytest.raises(ValueError, match=r"among 3 x 3 x 2 actions"):
        EdgePolicy.load(path, earlier=True)


def _features_view(bits, trend_bps, transmittance):
    """Nodes a, b, c: a-b direct (1 ms) and a-c-b (two hops of 1 ms); one Type-I flow a->b of
    1 kbit/s (need 10,000 bits); the buffers of a-b, a-c, c-b hold ``bits`` with ``trend_bps``,
    the links' transmittance ``transmittance``."""
    from twin.control.baselines import NetworkView
    from twin.control.telemetry import KeyFill
    from twin.network.routing import NodeIndex
    from twin.network.traffic import Flow, TrafficClass

    from .test_baselines import NAMES, snapshot

    edges = [(0, 1, 1e-3, 1, transmittance[0]), (0, 2, 1e-3, 1, transmittance[1]),
             (1, 2, 1e-3, 1, transmittance[2])]  # fmt: skip
    codes = np.array([0 * 3 + 1, 0 * 3 + 2, 1 * 3 + 2], dtype=np.int64)
    fill = KeyFill(0, 3, codes, np.array(bits, dtype=np.int64), np.array(trend_bps, dtype=float))
    snap = snapshot(edges)
    return NetworkView(
        t_ns=0, snapshot=snap, flows=[Flow("f", "a", "b", TrafficClass.TYPE_I, 1_000)],
        node_index=NodeIndex.from_names(NAMES), jurisdictions={}, flow_endpoints=[(0, 1)],
        key_fill=fill,
    )  # fmt: skip


def test_flow_features_read_key_latency_runway_and_loss_per_candidate():
    from twin.control.baselines import KeyAwareGreedy
    from twin.control.drl import flow_features

    k = K_CANDIDATES
    # candidates: keep = the detour (the flow is on it), keyed = the detour, fastest = direct;
    # the direct buffer holds half the need and drains 100 bits/s, the detour's hops hold 3x
    # and 1.5x the need, a-c fills, c-b drains 200 bits/s
    view = _features_view([5_000, 30_000, 15_000], [-100.0, 50.0, -200.0], [1e-2, 1e-3, 0.5])
    detour, direct = (0, 2, 1), (0, 1)
    features = flow_features(view, [(detour, detour, direct)], KeyAwareGreedy(), [detour])
    assert features.shape == (1, FLOW_FEATURES)
    key, latency, runway, loss = (features[0, i * k : (i + 1) * k] for i in range(4))
    np.testing.assert_allclose(key, [1.5, 1.5, 0.5])  # weakest hop over the 10,000-bit need
    np.testing.assert_allclose(latency, [0.2, 0.2, 0.1])  # units of 10 ms
    # runway in units of 10 s: on the detour c-b lasts 15,000 / 200 = 75 s; onto the direct
    # link the flow adds its own 1,000 bit/s draw: 5,000 / 1,100 = 4.5 s
    np.testing.assert_allclose(runway, [7.5, 7.5, 5_000 / 1_100 / 10], rtol=1e-6)
    np.testing.assert_allclose(loss, [3.0, 3.0, 2.0], rtol=1e-6)  # weakest hop: 30 dB, 20 dB
    assert features[0, -1] == 1.0  # active
    # the flow on the direct link: its draw is in that buffer's trend already (5,000 / 100 =
    # 50 s) and counts on the detour's hops (c-b 15,000 / 1,200 = 12.5 s, a-c 30,000 / 950)
    off = flow_features(view, [(direct, detour, direct)], KeyAwareGreedy(), [direct])
    np.testing.assert_allclose(off[0, 2 * k : 3 * k], [5.0, 1.25, 5.0], rtol=1e-6)
    # buffers that fill, for a flow on its path: a runway past the clip; no path: 0 and loss
    # at the clip (no signal)
    filling = _features_view([5_000, 30_000, 15_000], [10.0, 10.0, 10.0], [1e-2, 1e-3, 0.5])
    kept = flow_features(filling, [(direct, None, direct)], KeyAwareGreedy(), [direct])
    np.testing.assert_allclose(kept[0, 2 * k : 3 * k], [FEATURE_CLIP, 0.0, FEATURE_CLIP])
    np.testing.assert_allclose(kept[0, 3 * k : 4 * k], [2.0, FEATURE_CLIP, 2.0])


def test_the_shipped_policy_says_how_it_was_trained_and_beat_random_there():
    meta = shipped_policy().meta
    for name in meta["scenario"].split(","):
        load_scenario(name)
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
    RLlib's checkpoint is there. Measured (seed 6): untrained -43.4, random 34.8, trained 36.0
    after the first iteration, in ~3 s (the always-keyed policy scores 35.6; spreading the
    relay over the ring's two ways gets 36.0-36.1); seeds 2 and 4 got there in the fourth
    and third iteration. (Seeds 0, 1, 3 and 5's untrained networks already score 35.6-36.1:
    nothing to learn.) The ring has no satellite: the laser level changes nothing here."""
    pytest.importorskip("ray.rllib")
    from twin.control.train import episode_return, train_policy

    scenario = str(FIBRE_RING)
    result = train_policy(
        scenario, tmp_path, iterations=3, episode_s=60, steps_per_iteration=300, seed=6
    )
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
    from twin.control.baselines import KeyAwareGreedy, route_around

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


def test_routing_off_setting_links_moves_the_flows_over_them_or_keeps_their_current_path():
    """The handover schedule's pairs (ai-sdqn, mpc-only): a flow over a (ground, satellite)
    hop about to set gets a path off it, between its own ends; the other flows keep theirs;
    a flow whose current path is clear of it and up stays on that one."""
    from twin.control.baselines import KeyAwareGreedy, route_around

    engine = Engine(load_scenario("case-munich-pretoria"), controller="static-sp")
    engine.run(duration_s=10)
    view = engine._view(engine.topology.snapshot(10 * 10**9))
    fastest = [c[2] for c in CandidatePaths().build(view)]
    sat0 = engine.topology.satellite_offset
    hops = sorted(
        {
            (min(u, v), max(u, v))
            for p in fastest
            if p
            for u, v in pairwise(p)
            if max(u, v) >= sat0 > min(u, v)
        }
    )
    assert hops, "some flow goes up to a satellite"
    greedy = KeyAwareGreedy()
    moves = 0
    for ground, satellite in hops:
        setting = (np.array([ground]), np.array([satellite]))
        moved = route_around(view, fastest, (), greedy, setting)
        for before, after in zip(fastest, moved, strict=True):
            crossed = before is not None and any(
                {u, v} == {ground, satellite} for u, v in pairwise(before)
            )
            if crossed and after != before:
                assert not any({u, v} == {ground, satellite} for u, v in pairwise(after))
                assert (after[0], after[-1]) == (before[0], before[-1])
                moves += 1
            else:  # not over it, or no way off it: kept
                assert after == before
        # the paths it moved to are clear of the hop and up: kept as they are, not searched
        again = route_around(view, fastest, (), greedy, setting, current=moved)
        assert all(a is m for a, m, f in zip(again, moved, fastest, strict=True) if m != f)
    assert moves > 0
    none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    assert route_around(view, fastest, (), greedy, none) == tuple(fastest)


def constant_policy(candidate: int, laser: int, relay: int = 0, data: int = 0) -> EdgePolicy:
    """An edge policy that gives every flow candidate ``candidate``, laser level ``laser``,
    relay level ``relay`` and data level ``data`` whatever it sees (zero weights, the biases
    of those outputs 1)."""
    net = FlowPolicyNet()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
        net.body[-1].bias[candidate] = 1.0
        net.body[-1].bias[K_CANDIDATES + laser] = 1.0
        net.body[-1].bias[K_CANDIDATES + LASER_LEVELS + relay] = 1.0
        net.body[-1].bias[K_CANDIDATES + LASER_LEVELS + RELAY_LEVELS + data] = 1.0
    return EdgePolicy(net)


class _BoostAt:
    """key-aware's paths, every flow boosted at the decisions of ``at_s`` (all of them for
    None); keeps the snapshot of each decision and the paths of the boosted ones."""

    name = "boost-at"
    plan_every_ticks = 0
    reads_key_fill = True

    def __init__(self, at_s=None) -> None:
        from twin.control.baselines import KeyAwareGreedy

        self.router = KeyAwareGreedy()
        self.at_ns = None if at_s is None else {round(t * 1e9) for t in at_s}
        self.snapshots, self.boosted_paths = {}, {}

    def decide(self, view):
        from twin.control.baselines import Decision

        decision = self.router.decide(view)
        self.snapshots[view.t_ns] = view.snapshot
        if self.at_ns is not None and view.t_ns not in self.at_ns:
            return decision
        self.boosted_paths[view.t_ns] = decision.paths
        return Decision(paths=decision.paths, boost=(True,) * len(decision.paths))


def test_a_boost_runs_its_paths_satellites_at_the_turbo_level_over_the_next_tick():
    """Decision.boost (the edge tier's laser power), case-grid-eclipse: every flow boosted at
    the decision for 5 s. The snapshot the 6 s tick runs on has the optical links of the
    satellites on those paths (all awake: no laser schedule) making key turbo_skr_gain times
    faster and no other link changed; at 7 s nothing is boosted. That tick draws the turbo
    level's extra load and makes more key than the same run without the boost."""
    scenario = load_scenario("case-grid-eclipse")
    runs = {}
    for at_s in ((5,), ()):
        controller = _BoostAt(at_s)
        engine = Engine(scenario, controller=controller)
        runs[at_s] = (engine, engine.run(duration_s=10), controller)
    engine, result, controller = runs[(5,)]
    sat0 = engine._sat0
    boosted = {n - sat0 for p in controller.boosted_paths[5 * 10**9] if p for n in p if n >= sat0}
    assert boosted, "some flow crosses a satellite at 5 s"
    raw = engine.topology.snapshot(6 * 10**9)
    seen = controller.snapshots[6 * 10**9]
    optical = engine._optical_kind.take(raw.kind) & raw.up & (raw.b >= sat0)
    turbo = optical & np.isin(raw.b - sat0, sorted(boosted))
    assert turbo.any()
    np.testing.assert_allclose(seen.skr_bps[turbo], raw.skr_bps[turbo] * engine.turbo_skr_gain)
    assert np.array_equal(seen.skr_bps[~turbo], raw.skr_bps[~turbo])
    in_contact = set(np.unique(raw.b[optical] - sat0).tolist())
    assert engine.turbo_satellite_ticks == {"plan": 0, "edge": len(boosted & in_contact)}
    assert np.array_equal(controller.snapshots[7 * 10**9].skr_bps, engine.topology.snapshot(
        7 * 10**9).skr_bps)  # fmt: skip
    _, plain, _ = runs[()]
    assert result.records[6].power_w > plain.records[6].power_w
    assert [r.power_w for r in result.records[:6]] == [r.power_w for r in plain.records[:6]]
    assert result.ledger.generated_bits > plain.ledger.generated_bits


def test_the_shield_refuses_boosts_near_the_reserve_and_the_audit_counts_them_unshielded():
    """Every flow boosted at every decision on case-grid-eclipse (60 s) with batteries of
    2 Wh and no solar array (every satellite drains from full to empty in about 50 s) and the
    reserve at half: behind the shield, boosts run while the batteries hold 70 % and are
    refused (counted) after, and none runs a battery under its reserve (no violation);
    unshielded, boosts run to the end and the audit counts those under the reserve."""
    scenario = load_scenario("case-grid-eclipse")
    sat = scenario.equipment.satellite
    small = {"battery_wh": 2.0, "reserve_fraction": 0.5, "solar_area_m2": 0.0}
    equipment = scenario.equipment.model_copy(update={"satellite": sat.model_copy(update=small)})
    scenario = scenario.model_copy(update={"equipment": equipment})
    out = {}
    for shield in (True, False):
        engine = Engine(scenario, controller=_BoostAt(), shield=shield)
        result = engine.run(duration_s=60)
        out[shield] = (compute_metrics(result, engine)["metrics"], engine.turbo_satellite_ticks)
    (shielded, shielded_turbo), (unshielded, unshielded_turbo) = out[True], out[False]
    assert shielded["shield_rejections"]["battery_reserve"] > 0
    assert shielded["shield_violations_by_rule"]["battery_reserve"] == 0
    assert unshielded["shield_violations_by_rule"]["battery_reserve"] > 0
    # (measured: 21 satellite-ticks at the turbo level shielded, 173 unshielded; 265 boosts
    # refused, 229 run under the reserve)
    assert 0 < shielded_turbo["edge"] < unshielded_turbo["edge"] / 2


def _run_traced(policy, seconds):
    from twin.control.drl import DrlOnly

    engine = Engine(load_scenario("case-grid-eclipse"), controller=DrlOnly(policy))
    engine.trace = []
    result = engine.run(duration_s=seconds)
    updates = [e for e in engine.trace if e.kind.name == "FORWARDING_UPDATE"]
    return compute_metrics(result, engine)["metrics"], updates, engine.trace


def test_a_spread_relay_keys_the_fastest_path_with_key_from_the_other_candidates():
    """The relay level (Decision.relay): drl-only on every flow's fastest candidate, its key
    relayed over that path or spread over the candidates in proportion to their weakest
    hops (case-grid-eclipse, 2 min). The data goes the same paths tick by tick; the updates
    name the split, the relays of a split carry its index, and every relay spends the same
    bits on each hop of its path; Type-II flows get keys they had none of. Measured: Type-II
    availability 0 % -> 42.9 %, objective J -14.6 -> 44.3."""
    fastest, plain_updates, _ = _run_traced(constant_policy(2, 0, 0), 120)
    spread, updates, trace = _run_traced(constant_policy(2, 0, 1), 120)
    assert [e.payload["path"] for e in updates] == [e.payload["path"] for e in plain_updates]
    assert not any("relay" in e.payload for e in plain_updates)
    split = [e for e in updates if "relay" in e.payload]
    assert split and spread["key_relay_split_flow_ticks"] == len(split)
    for e in split:
        for route in e.payload["relay"]:
            assert route["path"][0] == e.dst and route["parts"] > 0
            assert len(route["hop_latency_ns"]) == len(route["path"]) - 1
    commits: dict[str, set] = {}
    for e in trace:
        if e.kind.name == "KEY_RELAY" and e.payload["step"] == "commit":
            commits.setdefault(e.payload["relay"], set()).add(e.payload["bits"])
    assert any("/" in relay for relay in commits)
    assert all(len(bits) == 1 for bits in commits.values())  # one amount along each path
    assert fastest["availability_pct"]["type_ii"] == 0.0
    assert spread["availability_pct"]["type_ii"] > 40.0
    assert spread["shield_violations_by_rule"]["residency"] == 0


def test_a_relay_split_that_does_not_join_the_flows_ends_is_the_controllers_error():
    from twin.control.baselines import Decision, KeyAwareGreedy

    class WrongEnds:
        name = "wrong-ends"
        plan_every_ticks = 0
        reads_key_fill = True

        def decide(self, view):
            paths = KeyAwareGreedy().decide(view).paths
            relay = tuple(((p[:-1], 1),) if p is not None and len(p) > 2 else () for p in paths)
            return Decision(paths=paths, relay=relay)

    engine = Engine(load_scenario("case-grid-eclipse"), controller=WrongEnds())
    with pytest.raises(ValueError, match=r"wrong-ends: flow '.*'s key relay split names path"):
        engine.run(duration_s=3)


def test_a_relay_path_with_a_hop_down_carries_no_share():
    engine = Engine(load_scenario("case-grid-eclipse"), controller="key-aware")
    snap = engine.topology.snapshot(0)
    view = engine._view(snap)
    k = next(k for k, p in enumerate(engine.controller.decide(view).paths) if p and len(p) > 2)
    path = engine.controller.decide(view).paths[k]
    names = engine.topology.node_names
    relay = [()] * len(engine.flows)
    relay[k] = ((path, 2),)
    routes = engine._relay_routes(snap, relay)
    assert list(routes) == [k] and [r[0] for r in routes[k]] == [[names[i] for i in path]]
    assert routes[k][0][2] == 2
    hop = engine._edge_lookup(snap).path_edges(path)[0]
    down = dataclasses.replace(snap, up=snap.up & (np.arange(snap.up.size) != hop))
    assert engine._relay_routes(down, relay) == {}


def test_spread_data_goes_over_the_candidates_beside_the_flows_path():
    """The data level (Decision.data): drl-only on every flow's keyed candidate, its data on
    that path or spread in equal parts over it and its other candidates that meet its latency
    target (case-munich-pretoria, 3 min). The flows' paths are the same tick by tick; a split's
    first leg is the flow's path, every leg joins the flow's ends and the others meet its
    target; Type-II flows are served more of the time (the keyed paths' detours miss the 50 ms
    target, the shares over faster candidates make it). Measured: Type-II availability 2.8 %
    -> 26.9 %, 161 split flow-ticks, no residency violation."""
    runs = {}
    for data in (0, 1):
        engine = Engine(
            load_scenario("case-munich-pretoria"),
            controller=DrlOnly(constant_policy(1, 0, 0, data)),
        )
        engine.trace = []
        result = engine.run(duration_s=180)
        updates = [e for e in engine.trace if e.kind.name == "FORWARDING_UPDATE"]
        runs[data] = (compute_metrics(result, engine)["metrics"], updates)
    (plain, plain_updates), (spread, updates) = runs[0], runs[1]
    assert [e.payload["path"] for e in updates] == [e.payload["path"] for e in plain_updates]
    assert not any("data" in e.payload for e in plain_updates)
    split = [e for e in updates if "data" in e.payload]
    assert split and spread["data_split_flow_ticks"] == len(split)
    for e in split:
        legs = e.payload["data"]
        assert legs[0]["path"] == e.payload["path"] and len(legs) > 1
        assert len({tuple(leg["path"]) for leg in legs}) == len(legs)
        for leg in legs:
            assert leg["path"][0] == e.dst and leg["path"][-1] == e.payload["path"][-1]
            assert leg["parts"] == 1
        assert all(leg["latency_s"] <= 50e-3 for leg in legs[1:])  # (the flow's own: any)
    assert plain["data_split_flow_ticks"] == 0
    assert spread["availability_pct"]["type_ii"] > plain["availability_pct"]["type_ii"] + 5
    assert spread["shield_violations_by_rule"]["residency"] == 0


def _two_paths(engine, snap):
    """A flow k, its key-aware path and another path between its ends (the key-aware path
    with the links of one of its inner hops taken down), both up in ``snap``."""
    from twin.control.baselines import KeyAwareGreedy

    paths = KeyAwareGreedy().decide(engine._view(snap)).paths
    for k, own in enumerate(paths):
        for u, v in zip(own[1:-2], own[2:-1], strict=True) if own is not None else ():
            hop = ((snap.a == u) & (snap.b == v)) | ((snap.a == v) & (snap.b == u))
            cut = dataclasses.replace(snap, up=snap.up & ~hop)
            other = KeyAwareGreedy().decide(engine._view(cut)).paths[k]
            if other is not None and tuple(other) != tuple(own):
                return k, tuple(own), tuple(other)
    raise AssertionError("no flow with a second path")


def test_a_data_split_that_leaves_out_the_flows_path_is_the_controllers_error():
    from twin.control.baselines import Decision, KeyAwareGreedy

    engine = Engine(load_scenario("case-grid-eclipse"), controller="key-aware")
    k, own, other = _two_paths(engine, engine.topology.snapshot(0))

    class Elsewhere:
        name = "elsewhere"
        plan_every_ticks = 0
        reads_key_fill = True

        def __init__(self, split):
            self.split = split

        def decide(self, view):
            paths = KeyAwareGreedy().decide(view).paths
            assert tuple(paths[k]) == own
            data = [()] * len(paths)
            data[k] = self.split
            return Decision(paths=paths, data=tuple(data))

    for split in (((other, 1),), ((own, 1), (other, 1), (other, 2))):
        engine = Engine(load_scenario("case-grid-eclipse"), controller=Elsewhere(split))
        with pytest.raises(ValueError, match=r"elsewhere: flow '.*'s data split names paths "
                           r".*distinct and include the flow's path"):  # fmt: skip
            engine.run(duration_s=3)


def test_a_data_path_with_a_hop_down_carries_no_share():
    engine = Engine(load_scenario("case-grid-eclipse"), controller="key-aware")
    snap = engine.topology.snapshot(0)
    k, own, other = _two_paths(engine, snap)
    decided = [None] * len(engine.flows)
    decided[k] = own
    data = [()] * len(engine.flows)
    data[k] = ((own, 1), (other, 2))
    snap_next = engine.topology.snapshot(engine.dt_ns)
    legs = engine._data_legs(snap, snap_next, data, decided)
    names = engine.topology.node_names
    assert list(legs) == [k] and legs[k][0] == 1
    ((route, hop_ns, latency_s, gap_ns, parts),) = legs[k][1]
    assert route == [names[i] for i in other] and parts == 2 and gap_ns == 0
    assert len(hop_ns) == len(other) - 1 and latency_s > 0
    own_hops = set(zip(own[:-1], own[1:], strict=True))
    u, v = next(h for h in zip(other[:-1], other[1:], strict=True) if h not in own_hops)
    hop = ((snap.a == u) & (snap.b == v)) | ((snap.a == v) & (snap.b == u))
    down = dataclasses.replace(snap, up=snap.up & ~hop)
    assert engine._data_legs(down, snap_next, data, decided) == {}


@pytest.mark.parametrize(
    "heads",
    [[K_CANDIDATES], [K_CANDIDATES, LASER_LEVELS], [K_CANDIDATES, LASER_LEVELS, RELAY_LEVELS]],
)
def test_a_policy_of_an_earlier_layout_loads_for_fine_tuning_at_the_first_levels(tmp_path, heads):
    """EdgePolicy.load(..., earlier=True): a file of an earlier layout (the same features; the
    path logits alone; the path and laser logits; or those and the relay's) decides its heads
    as before and keeps the heads it lacks at their first level (terminals on, key and data
    over the path); without ``earlier`` it is refused."""
    torch.manual_seed(6)
    old_net = FlowPolicyNet((16,), outputs=sum(heads))
    path = tmp_path / "earlier.pt"
    state = {k: v.to(torch.float32) for k, v in old_net.state_dict().items()}
    saved = {"hidden": [16], "features": FLOW_FEATURES, "state": state, "meta": "{}"}
    if len(heads) > 1:
        saved["actions"] = heads
    torch.save(saved, path)
    with pytest.raises(ValueError, match=f"choosing among {' x '.join(map(str, heads))} act"):
        EdgePolicy.load(path)
    policy = EdgePolicy.load(path, earlier=True)
    features = random_features(500, seed=2)
    with torch.no_grad():
        logits = old_net(torch.from_numpy(features)).reshape(-1, sum(heads))
    choice = policy.choose(features)
    assert np.array_equal(choice[:, 0], logits[:, :K_CANDIDATES].argmax(1).numpy())
    bounds = np.cumsum([0, *heads])
    for head in range(1, len(heads)):  # (a random head picks its second level for some)
        a, b = bounds[head], bounds[head + 1]
        assert np.array_equal(choice[:, head], logits[:, a:b].argmax(1).numpy())
        assert choice[:, head].any()
    assert not choice[:, len(heads) :].any()


def test_training_from_a_given_policy_starts_where_it_is(tmp_path):
    """train_policy(init=...): PPO starts from the given policy's weights, on the learner
    too (with a learning rate of 1e-12 the first iteration's policy still scores what the
    given one does; the learner's own fresh weights, synced back, scored -43.4). On
    fibre-ring the always-keyed policy scores 35.6, seed 2's fresh network -43.4."""
    pytest.importorskip("ray.rllib")
    from twin.control import train

    returns = []

    def recorded(*args, **kwargs):
        returns.append(episode_return(*args, **kwargs))
        return returns[-1]

    episode_return = train.episode_return
    keyed = constant_policy(1, 0)
    try:
        train.episode_return = recorded
        result = train.train_policy(
            str(FIBRE_RING), tmp_path, iterations=1, episode_s=60, steps_per_iteration=300,
            seed=2, lr=1e-12, init=keyed, eval_episodes=1,
        )  # fmt: skip
    finally:
        train.episode_return = episode_return
    assert result.initial_return == pytest.approx(35.6, abs=0.05)
    assert returns[1] == result.initial_return  # the first iteration's policy


def test_training_some_heads_keeps_the_body_and_the_other_heads_as_they_were(tmp_path):
    """train_policy(heads=("relay", "data")): each iteration's policy has the given policy's
    body and path and laser rows bit for bit (the float32 PPO trains in) while its relay and
    data rows learn; train.json says which heads were trained, from which policy."""
    pytest.importorskip("ray.rllib")
    from twin.control import train

    policies = []

    def recorded(scenario, episode_s, choose, **kwargs):
        if isinstance(getattr(choose, "__self__", None), EdgePolicy):
            policies.append(choose.__self__)
        return episode_return(scenario, episode_s, choose, **kwargs)

    torch.manual_seed(3)
    start = EdgePolicy(FlowPolicyNet())  # every weight nonzero: every row has a gradient
    episode_return = train.episode_return
    try:
        train.episode_return = recorded
        result = train.train_policy(
            str(FIBRE_RING), tmp_path, iterations=2, episode_s=60, steps_per_iteration=300,
            seed=2, init=start, heads=("data", "relay"), eval_episodes=1,
        )  # fmt: skip
    finally:
        train.episode_return = episode_return
    assert result.heads == ("relay", "data")
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["heads"] == ["relay", "data"]
    assert report["init_policy"] == start.fingerprint()
    given = {k: v.to(torch.float32).to(torch.float64) for k, v in start.net.state_dict().items()}
    trained_rows = slice(K_CANDIDATES + LASER_LEVELS, None)
    assert len(policies) == 3  # the start's and each iteration's
    for policy in policies[1:]:
        now = policy.net.state_dict()
        output = f"body.{len(policy.net.body) - 1}"
        for name, value in now.items():
            if name.startswith(output):
                assert torch.equal(value[: trained_rows.start], given[name][: trained_rows.start])
                assert not torch.equal(value[trained_rows], given[name][trained_rows]), name
            else:
                assert torch.equal(value, given[name]), name


def test_training_on_two_scenarios_takes_turns_and_scores_their_sum(tmp_path):
    """train_policy([a, b]): RLlib's env plays a's episode, then b's, then a's (the flow
    agents of the one playing, named after it); every return reported is the sum of one
    deterministic episode of each."""
    pytest.importorskip("ray.rllib")
    from twin.control import train

    ring, small = str(FIBRE_RING), "small"
    env = train._make_env({"scenarios": [ring, small], "episode_s": 5.0})
    try:
        played = []
        for _ in range(3):
            obs, _ = env.reset()
            played.append(sorted({fid.split(":")[0] for fid in obs}))
            assert set(obs) == set(env.agents) <= set(env.possible_agents)
            while True:
                actions = {fid: np.zeros(len(ACTION_HEADS), np.int64) for fid in env.agents}
                obs, rewards, done, _, _ = env.step(actions)
                assert set(rewards) == set(env.agents)
                if done["__all__"]:
                    break
        assert played == [["0"], ["1"], ["0"]]
    finally:
        env.close()
    keyed = constant_policy(1, 0)
    result = train.train_policy(
        [ring, small], tmp_path, iterations=1, episode_s=20, steps_per_iteration=200, seed=2,
        init=keyed, lr=1e-12, eval_episodes=1,
    )  # fmt: skip
    assert result.scenario == f"{ring},small"
    each = [train.episode_return(name, 20, keyed.choose) for name in (ring, small)]
    assert result.initial_return == pytest.approx(sum(each), abs=1e-9)


def test_training_in_ai_sdqns_loop_scores_there_and_says_so(tmp_path):
    """train_policy(controller="ai-sdqn"): the env routes its actions in ai-sdqn's loop (its
    plans, the shield) in training and in every evaluation, and train.json and the policy's
    meta name the loop; one that is not a loop is refused before Ray starts. (The first
    90 s of case-grid-eclipse: the plan that takes effect at 60 s changes the return.)"""
    pytest.importorskip("ray.rllib")
    from twin.control import train

    with pytest.raises(ValueError, match="'static-sp'.*drl-only, ai-sdqn"):
        train.train_policy("small", tmp_path, controller="static-sp")
    keyed = constant_policy(1, 0)
    result = train.train_policy(
        "case-grid-eclipse", tmp_path, iterations=1, episode_s=90, steps_per_iteration=200,
        seed=2, init=keyed, lr=1e-12, eval_episodes=1, controller="ai-sdqn",
    )  # fmt: skip
    in_loop = train.episode_return("case-grid-eclipse", 90, keyed.choose, controller="ai-sdqn")
    alone = train.episode_return("case-grid-eclipse", 90, keyed.choose)
    assert result.initial_return == pytest.approx(in_loop, abs=1e-9)
    assert in_loop != alone
    assert json.loads((tmp_path / "train.json").read_text())["controller"] == "ai-sdqn"
    assert EdgePolicy.load(result.policy_path).meta["controller"] == "ai-sdqn"


def test_training_refuses_heads_it_does_not_have():
    from twin.control.train import freeze_all_but

    for heads in [("relay", "speed"), ()]:
        with pytest.raises(ValueError, match="heads must be some of path, laser, relay, data"):
            freeze_all_but(FlowPolicyNet(), heads)


def test_qntwin_train_refuses_an_init_that_is_no_policy(tmp_path, capsys):
    from twin.cli import main

    bad = tmp_path / "bad.pt"
    bad.write_text("no policy")
    code = main(["train", str(FIBRE_RING), "--init", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--init:" in err and "not a qntwin edge policy" in err
    assert "Traceback" not in err
    code = main(["train", "small", "--controller", "key-aware", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--controller key-aware" in err and "drl-only or ai-sdqn" in err
    assert not (tmp_path / "o").exists()
