"""The shield's rules (main paper sec. VII-C; twin.control.shield) and the independent audit."""

import numpy as np
import pytest

from twin.control.baselines import Decision, NetworkView
from twin.control.shield import RULES, Shield, audit, critical_key_bits
from twin.engine import Engine
from twin.metrics import compute_metrics
from twin.network.routing import NodeIndex
from twin.network.traffic import Flow, TrafficClass
from twin.scenarios import load_scenario

from .test_baselines import NAMES, snapshot
from .test_key_aware import fill

# a-b direct (3 ms) and a detour a-c-b (2 x 0.4 ms, within Type-I's 1 ms)
SLOW_DIRECT = [(0, 1, 3e-3, 1, 0.5), (0, 2, 0.4e-3, 1, 0.5), (1, 2, 0.4e-3, 1, 0.5)]
RATE_BPS = 1_000  # Type-I one-time pad: a hop is starved below 1 s of it, 1,000 bits


def view(edges, key_fill, traffic_class=TrafficClass.TYPE_I, forbidden=(), jurisdiction=None):
    flows = [Flow("f", "a", "b", traffic_class, RATE_BPS, forbidden_jurisdictions=forbidden)]
    snap = snapshot(edges)
    return NetworkView(
        t_ns=0, snapshot=snap, flows=flows, node_index=NodeIndex.from_names(NAMES),
        jurisdictions={"c": jurisdiction}, flow_endpoints=[(0, 1)], key_fill=key_fill,
    )  # fmt: skip


def shielded(v, path):
    shield = Shield()
    decision = shield.filter(v, Decision(paths=(path,)))
    return decision.paths[0], shield.counts


def test_the_critical_threshold_is_one_second_of_a_type_i_flows_pad():
    flow = Flow("f", "a", "b", TrafficClass.TYPE_I, RATE_BPS)
    assert critical_key_bits(flow, 0) == 1_000
    assert critical_key_bits(Flow("g", "a", "b", TrafficClass.TYPE_II, RATE_BPS), 0) == 0


def test_a_type_i_path_over_a_starved_hop_is_rejected_for_a_keyed_one():
    starved = fill({(0, 1): 999, (0, 2): 1_000, (1, 2): 5_000})
    v = view(SLOW_DIRECT, starved)
    path, counts = shielded(v, (0, 1))
    assert path == (0, 2, 1)
    assert counts.rejected["key_continuity"] == 1 and counts.rejected["latency_slo"] == 1
    assert audit(v, [(0, 1)])["key_continuity"] == 1
    assert audit(v, [path]) == dict.fromkeys(RULES, 0)


def test_a_keyed_path_over_the_slo_is_rejected_only_for_a_keyed_path_within_it():
    keyed = fill({(0, 1): 5_000, (0, 2): 5_000, (1, 2): 5_000})
    path, counts = shielded(view(SLOW_DIRECT, keyed), (0, 1))
    assert path == (0, 2, 1) and counts.rejected["latency_slo"] == 1
    assert audit(view(SLOW_DIRECT, keyed), [(0, 1)])["latency_slo"] == 1
    # the fast detour is starved: key continuity comes first, the slow keyed path stays
    detour_starved = fill({(0, 1): 5_000, (0, 2): 10, (1, 2): 5_000})
    v = view(SLOW_DIRECT, detour_starved)
    path, counts = shielded(v, (0, 1))
    assert path == (0, 1) and counts.rejected == dict.fromkeys(counts.rejected, 0)
    assert counts.unsatisfiable["latency_slo"] == 1
    assert sum(audit(v, [(0, 1)]).values()) == 0  # no violation: no keyed path meets the SLO


@pytest.mark.parametrize(
    ("detour_s", "direct_up", "want"),
    [
        (0.8e-3, 1, (0, 1)),  # every path over the SLO: the proposal stands, without a search
        (0.5e-3, 1, (0, 2, 1)),  # a detour at exactly 1 ms meets it: searched and taken
        (0.8e-3, 0, (0, 1)),  # a hop of it down: searched (the detour is as slow: it stands)
    ],
)
def test_a_slo_no_path_can_meet_skips_the_search_with_the_searchs_outcome(
    monkeypatch, detour_s, direct_up, want
):
    edges = [(0, 1, 3e-3, direct_up, 0.5), (0, 2, detour_s, 1, 0.5), (1, 2, detour_s, 1, 0.5)]
    v = view(edges, fill({(0, 1): 5_000, (0, 2): 5_000, (1, 2): 5_000}))
    path, counts = shielded(v, (0, 1))
    assert path == want
    from twin.control import shield as shield_module

    monkeypatch.setattr(shield_module._KeyedGraphs, "out_of_reach", lambda *a: False)
    assert shielded(v, (0, 1)) == (path, counts)  # the full search decides alike


def test_without_any_keyed_path_the_proposal_stands_and_the_rule_is_unsatisfiable():
    v = view(SLOW_DIRECT, fill({(0, 1): 10, (0, 2): 10, (1, 2): 10}))
    path, counts = shielded(v, (0, 1))
    assert path == (0, 1)
    assert counts.unsatisfiable["key_continuity"] == 1 and sum(counts.rejected.values()) == 0
    assert sum(audit(v, [(0, 1)]).values()) == 0


def test_residency_is_never_relaxed_and_holds_for_every_class():
    # c lies in a forbidden jurisdiction: the detour through it is refused, for Type-IV too
    for traffic_class in (TrafficClass.TYPE_I, TrafficClass.TYPE_IV):
        keyed = fill({(0, 1): 5_000, (0, 2): 5_000, (1, 2): 5_000})
        v = view(SLOW_DIRECT, keyed, traffic_class, forbidden=("XX",), jurisdiction="XX")
        path, counts = shielded(v, (0, 2, 1))
        assert path == (0, 1) and counts.rejected["residency"] == 1
        assert audit(v, [(0, 2, 1)])["residency"] == 1
    # no compliant path at all: no path, not the forbidden one
    only_via_c = [(0, 1, 3e-3, 0, 0.5), (0, 2, 0.4e-3, 1, 0.5), (1, 2, 0.4e-3, 1, 0.5)]
    v = view(only_via_c, fill({}), TrafficClass.TYPE_IV, forbidden=("XX",), jurisdiction="XX")
    assert shielded(v, (0, 2, 1))[0] is None


def test_a_key_relay_split_through_a_forbidden_jurisdiction_loses_that_path():
    """Residency holds for the key relay too (Decision.relay): a trusted relay holds the key
    it passes on, so a relay path through c (forbidden) is dropped from the split and counted,
    the compliant one stays; the audit counts the dropped one for an unshielded decision. A
    flow that forbids nothing keeps its whole split."""
    keyed = fill({(0, 1): 5_000, (0, 2): 5_000, (1, 2): 5_000})
    split = (((0, 1), 3), ((0, 2, 1), 1))
    v = view(SLOW_DIRECT, keyed, TrafficClass.TYPE_IV, forbidden=("XX",), jurisdiction="XX")
    shield = Shield()
    decision = shield.filter(v, Decision(paths=((0, 1),), relay=(split,)))
    assert decision.paths == ((0, 1),) and decision.relay == ((((0, 1), 3),),)
    assert shield.counts.rejected["residency"] == 1
    assert audit(v, [(0, 1)], relay=[split])["residency"] == 1
    assert audit(v, [(0, 1)], relay=decision.relay) == dict.fromkeys(RULES, 0)
    free = view(SLOW_DIRECT, keyed, TrafficClass.TYPE_IV, jurisdiction="XX")
    assert Shield().filter(free, Decision(paths=((0, 1),), relay=(split,))).relay == (split,)
    assert audit(free, [(0, 1)], relay=[split]) == dict.fromkeys(RULES, 0)


def test_a_data_split_keeps_the_paths_that_meet_the_rules_and_follows_the_shielded_path():
    """The data's split (Decision.data) is held to the three path rules: a Type-I flow's
    data over a -> c -> b (c forbidden) is dropped and counted under residency, the audit
    counts it for an unshielded decision; the share named for the proposed path goes to the
    path the shield gives the flow (here the proposal is kept). A Type-I split path slower
    than the 1 ms target is dropped under latency_slo, and a split left with the flow's path
    alone is no split."""
    keyed = fill({(0, 1): 5_000, (0, 2): 5_000, (1, 2): 5_000})
    split = (((0, 1), 1), ((0, 2, 1), 1))
    fast = [(0, 1, 0.2e-3, 1, 0.5), (0, 2, 0.1e-3, 1, 0.5), (1, 2, 0.1e-3, 1, 0.5)]
    v = view(fast, keyed, TrafficClass.TYPE_I, forbidden=("XX",), jurisdiction="XX")
    shield = Shield()
    decision = shield.filter(v, Decision(paths=((0, 1),), data=(split,)))
    assert decision.paths == ((0, 1),) and decision.data == ((),)
    assert shield.counts.rejected["residency"] == 1
    assert audit(v, [(0, 1)], data=[split])["residency"] == 1
    free = view(fast, keyed, TrafficClass.TYPE_I, jurisdiction="XX")
    assert Shield().filter(free, Decision(paths=((0, 1),), data=(split,))).data == (split,)
    assert audit(free, [(0, 1)], data=[split]) == dict.fromkeys(RULES, 0)
    slow = [(0, 1, 0.2e-3, 1, 0.5), (0, 2, 0.6e-3, 1, 0.5), (1, 2, 0.6e-3, 1, 0.5)]
    v = view(slow, keyed, TrafficClass.TYPE_I, jurisdiction="XX")
    shield = Shield()
    assert shield.filter(v, Decision(paths=((0, 1),), data=(split,))).data == ((),)
    assert shield.counts.rejected["latency_slo"] == 1
    assert audit(v, [(0, 1)], data=[split])["latency_slo"] == 1


def test_a_compliant_path_and_no_path_pass_untouched():
    keyed = fill({(0, 1): 5_000, (0, 2): 5_000, (1, 2): 5_000})
    for proposal in ((0, 2, 1), None):
        path, counts = shielded(view(SLOW_DIRECT, keyed), proposal)
        assert path == proposal and sum(counts.rejected.values()) == 0


def test_a_boost_through_a_satellite_near_its_reserve_is_refused():
    """The battery_reserve rule: node c plays a satellite (the view's one battery is G(t)'s
    last node's). A boost of a path through it is kept while c holds its reserve plus the
    turbo margin, refused (counted) below that or before any charge is reported; a path
    without a satellite keeps its boost. The audit counts a boost run below the reserve
    itself, and none at all breaks nothing."""
    import dataclasses

    from twin.control.mpc import TURBO_SOC_MARGIN

    keyed = fill({(0, 1): 5_000, (0, 2): 5_000, (1, 2): 5_000})
    reserve = 0.3
    floor = reserve + TURBO_SOC_MARGIN

    def boosted(path, soc):
        v = dataclasses.replace(
            view(SLOW_DIRECT, keyed, TrafficClass.TYPE_II),  # (no path rule in the way)
            battery_soc=None if soc is None else np.array([soc]),
        )
        shield = Shield(reserve_fraction=reserve)
        decision = shield.filter(v, Decision(paths=(path,), boost=(True,)))
        assert decision.paths == (path,)  # (the rule moves no path)
        return decision.boost, shield.counts.rejected["battery_reserve"], v

    assert boosted((0, 2, 1), floor)[:2] == ((True,), 0)
    assert boosted((0, 2, 1), floor - 1e-9)[:2] == ((False,), 1)
    assert boosted((0, 2, 1), None)[:2] == ((False,), 1)
    assert boosted((0, 1), 0.0)[:2] == ((True,), 0)  # no satellite on it
    unboosted = Shield(reserve_fraction=reserve).filter(
        view(SLOW_DIRECT, keyed), Decision(paths=((0, 2, 1),))
    )
    assert unboosted.boost == ()
    _, _, low = boosted((0, 2, 1), reserve - 0.01)
    checks = {"reserve_fraction": reserve}
    assert audit(low, [(0, 2, 1)], boost=[True], **checks)["battery_reserve"] == 1
    assert audit(low, [(0, 2, 1)], boost=[False], **checks)["battery_reserve"] == 0
    assert audit(low, [(0, 1)], boost=[True], **checks)["battery_reserve"] == 0
    _, _, near = boosted((0, 2, 1), reserve + 0.01)  # the shield's margin, not a violation
    assert audit(near, [(0, 2, 1)], boost=[True], **checks)["battery_reserve"] == 0
    with pytest.raises(ValueError, match="reserve_fraction must be in"):
        Shield(reserve_fraction=1.5)


def test_the_shield_needs_the_fill_report():
    with pytest.raises(ValueError, match="fill levels"):
        Shield().filter(view(SLOW_DIRECT, None), Decision(paths=((0, 1),)))


def test_the_audit_counts_an_unshielded_runs_violations_and_a_shielded_run_has_none():
    """case-grid-eclipse, 120 s: static-sp puts Type-I PMU flows on starved satellite hops
    while keyed ones are up; behind the shield no executed path breaks a rule, the shield
    having rejected those paths, and more of the Type-I time keeps its key."""
    out = {}
    for shield in (False, True):
        engine = Engine(load_scenario("case-grid-eclipse"), controller="static-sp", shield=shield)
        result = engine.run(duration_s=120)
        out[shield] = compute_metrics(result, engine)["metrics"]
    assert out[False]["shield_violations_by_rule"]["key_continuity"] > 0
    assert out[False]["shield_rejections"] is None
    assert out[True]["shield_violations"] == 0
    assert out[True]["shield_rejections"]["key_continuity"] > 0
    assert out[True]["secure_session_uptime_pct"] > out[False]["secure_session_uptime_pct"]
    assert np.isfinite(out[True]["objective"]["J"])
