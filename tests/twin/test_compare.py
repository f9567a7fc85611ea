"""qntwin compare: controllers on the same seeds, summarized with intervals, beside the claims."""

import json

import pytest
from scipy import stats

from twin.cli import main
from twin.compare import ComparedRun, parse_controllers, render_report, summarize

KNOWN = ["static-sp", "key-aware", "mpc-only"]


def test_controllers_parse_with_an_optional_shield_and_bad_names_are_named():
    assert parse_controllers("static-sp, key-aware+shield", KNOWN) == [
        ("static-sp", False), ("key-aware", True),
    ]  # fmt: skip
    for text, message in (("static-sp,,key-aware", "empty name"),
                          ("magic", "unknown controller 'magic'"),
                          ("static-sp,static-sp", "twice")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_controllers(text, KNOWN)


def run(controller, seed, uptime, violations=0):
    measured = {"secure_session_uptime_pct": uptime, "shield_violations": violations,
                "availability_pct": {"type_i": None}, "objective": {"J": 1.0}}  # fmt: skip
    metrics = {"scenario": "x", "sim_seconds": 60.0, "config": {"tick_s": 1.0},
               "metrics": measured}  # fmt: skip
    return ComparedRun(controller, seed, metrics, [])


def test_the_summary_gives_the_mean_and_a_student_t_interval_over_seeds():
    runs = [run("static-sp", s, u) for s, u in ((0, 10.0), (1, 12.0), (2, 14.0))]
    runs += [run("key-aware", s, 20.0) for s in range(3)]
    summary = summarize(runs)
    entry = summary["controllers"]["static-sp"]["metrics"]["secure_session_uptime_pct"]
    half = stats.t.ppf(0.975, 2) * 2.0 / 3**0.5  # sem of 10, 12, 14 is 2 / sqrt(3)
    assert entry["mean"] == 12.0 and entry["ci95"] == pytest.approx([12.0 - half, 12.0 + half])
    same = summary["controllers"]["key-aware"]["metrics"]["secure_session_uptime_pct"]
    assert same["ci95"] == [20.0, 20.0]  # identical seeds: the interval is the mean
    # a metric a run did not measure (None) is left out, not counted as 0
    assert "availability_pct.type_i" not in summary["controllers"]["static-sp"]["metrics"]
    report = render_report(summary)
    assert "| Type-I secure-session uptime % | 12 [" in report
    assert "key-aware: +66.7 % (20 against 12)" in report


def test_qntwin_compare_writes_the_files_deterministically(tmp_path, capsys):
    args = ["compare", "small", "--controllers", "static-sp,key-aware+shield", "--hours", "0.01",
            "--seeds", "2", "--quiet"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    text = (tmp_path / "a" / "compare.json").read_text()
    assert text == (tmp_path / "b" / "compare.json").read_text()
    summary = json.loads(text)
    assert sorted(summary["controllers"]) == ["key-aware+shield", "static-sp"]
    shielded = summary["controllers"]["key-aware+shield"]
    assert shielded["seeds"] == [0, 1] and shielded["metrics"]["shield_violations"]["mean"] == 0
    for name in ("report.md", "comparison.png", "key_stability.png", "energy_per_bit.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert "Type-I secure-session uptime %" in out and "key-aware+shield" in out


def test_qntwin_compare_refuses_bad_flags_in_one_line(capsys):
    for args, message in (
        (["--controllers", "magic"], "unknown controller 'magic'"),
        (["--controllers", "static-sp", "--seeds", "0"], "--seeds must be"),
        (["--controllers", "static-sp", "--hosts", "2"], "--hosts applies to --runtime ray"),
    ):
        assert main(["compare", "small", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_the_report_without_static_sp_says_the_claims_need_it():
    # regression: the claims against the baseline looked it up before checking it was there
    # (KeyError after the runs, compare.json written and report.md not)
    report = render_report(summarize([run("key-aware", 0, 20.0), run("drl-only", 0, 30.0)]))
    assert report.count("needs static-sp among the controllers") == 2
