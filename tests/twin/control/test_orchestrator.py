"""The SDQN orchestration layer: industrial intents into network policies
(twin.control.orchestrator)."""

from importlib import resources

import pytest
import yaml

from twin.cli import main
from twin.control.orchestrator import EU_MEMBER_STATES, IntentError, compile_intent
from twin.engine import Engine
from twin.network.traffic import TrafficClass
from twin.scenarios import load_scenario

STORM = load_scenario("storm")  # sites in DE, FR and GB
PAPER = "connect munich-automotive to toulouse-aerospace with maximal security, EU only"


def test_the_papers_intent_is_a_type_i_one_time_pad_flow_kept_out_of_non_eu_jurisdictions():
    policy = compile_intent(PAPER, STORM)
    assert (policy.src, policy.dst) == ("munich-automotive", "toulouse-aerospace")
    assert policy.traffic_class is TrafficClass.TYPE_I and policy.security_mode == "otp"
    assert policy.forbid_transit == ("GB",)  # the scenario's only jurisdiction outside the EU
    assert policy.rate_bps is None and policy.name == "munich-automotive-toulouse-aerospace"
    assert len(EU_MEMBER_STATES) == 27 and {"DE", "FR"} <= EU_MEMBER_STATES
    assert "GB" not in EU_MEMBER_STATES


@pytest.mark.parametrize(
    ("clauses", "traffic_class", "security_mode", "forbidden"),
    [
        ("high security", TrafficClass.TYPE_II, "aes-256-gcm", ()),
        ("Type-III, standard security", TrafficClass.TYPE_III, "aes-128-batch", ()),
        ("type_iv", TrafficClass.TYPE_IV, "pqc", ()),
        ("Type-I, DE only", TrafficClass.TYPE_I, "otp", ("FR", "GB")),
        ("basic security, not via GB, not via FR", TrafficClass.TYPE_IV, "pqc", ("FR", "GB")),
    ],
)
def test_a_class_or_a_security_level_implies_the_other_and_residency_forbids_the_rest(
    clauses, traffic_class, security_mode, forbidden
):
    where = "DE only" in clauses or "not via FR" in clauses
    dst = "ingolstadt-automotive" if where else "toulouse-aerospace"
    policy = compile_intent(f"connect munich-automotive to {dst}, {clauses}", STORM)
    assert policy.traffic_class is traffic_class and policy.security_mode == security_mode
    assert policy.forbid_transit == forbidden


def test_a_rate_and_a_name_make_a_traffic_entry_the_scenario_runs_with(tmp_path):
    """The entry, added under the scenario's traffic.flows, validates and runs: key-aware
    serves it for the first minute and routes it out of GB (the audit's residency count 0)."""
    policy = compile_intent(f"{PAPER}, at 64 kbit/s, as line-a-to-cloud-b", STORM)
    entry = policy.traffic_entry()
    assert entry == {
        "name": "line-a-to-cloud-b",
        "traffic_class": "type_i",
        "src": "munich-automotive",
        "dst": "toulouse-aerospace",
        "rate_bps": 64000.0,
        "forbid_transit": ["GB"],
    }
    text = (resources.files("twin.scenarios") / "storm.yaml").read_text()
    spec = yaml.safe_load(text)
    spec["traffic"]["flows"].append(entry)
    path = tmp_path / "storm-with-intent.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    scenario = load_scenario(str(path))
    engine = Engine(scenario, controller="key-aware")
    engine.run(duration_s=60)
    assert engine.flow_state["line-a-to-cloud-b"].active_ns == 60 * 10**9
    assert engine.shield_violations["residency"] == 0


@pytest.mark.parametrize(
    ("intent", "message"),
    [
        ("", "give an intent"),
        ("link munich-automotive and zugspitze", "must start 'connect SRC to DST'"),
        ("connect munich-automotive to mars-base, Type-I", "no site 'mars-base'; its sites: "),
        ("connect munich-automotive to munich-automotive, Type-I", "to itself"),
        ("connect munich-automotive to zugspitze", "neither a traffic class nor a security"),
        (
            "connect munich-automotive to zugspitze, Type-II, maximal security",
            "maximal security is Type-I's (otp), not Type-II's (aes-256-gcm)",
        ),
        ("connect munich-automotive to zugspitze, Type-I, Type-II", "more than one traffic"),
        ("connect munich-automotive to zugspitze, ultimate security", "unknown security level"),
        ("connect munich-automotive to zugspitze, Type-I, quickly", "cannot read 'quickly'"),
        ("connect munich-automotive to zugspitze, Type-I, at 5 furlongs", "bit/s, kbit/s"),
        ("connect munich-automotive to zugspitze, Type-I, at -5 kbit/s", "positive number"),
        ("connect munich-automotive to zugspitze, Type-I, EUR only", "'EUR' is no jurisdiction"),
        ("connect munich-automotive to zugspitze, Type-I, as a/b", "name 'a/b' must be"),
        (
            "connect munich-automotive to chilbolton, Type-I, EU only",
            "chilbolton is in GB, outside EU, where the intent keeps its data",
        ),
        (
            "connect munich-automotive to chilbolton, Type-I, not via GB",
            "chilbolton is in GB, which the intent's data must not transit",
        ),
    ],
)
def test_an_intent_that_cannot_hold_is_refused_saying_why(intent, message):
    with pytest.raises(IntentError) as err:
        compile_intent(intent, STORM)
    assert message in str(err.value)


def test_a_traffic_entry_needs_a_rate():
    with pytest.raises(IntentError, match="gives no rate.*at 64 kbit/s"):
        compile_intent(PAPER, STORM).traffic_entry()


def test_qntwin_intent_prints_the_policy_and_refuses_in_one_line(capsys):
    assert main(["intent", "storm", f"{PAPER}, at 64 kbit/s"]) == 0
    out = capsys.readouterr().out
    assert "traffic class   type_i (security mode otp)" in out
    assert "no transit via  GB" in out and "rate_bps: 64000.0" in out
    refused = "connect munich-automotive to chilbolton, Type-I, EU only"
    assert main(["intent", "storm", refused]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qntwin intent: error: ") and len(err.strip().splitlines()) == 1
    assert "outside EU" in err
