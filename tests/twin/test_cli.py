"""The qntwin command line: outputs, and clear one-line errors (exit 2) for user mistakes."""

import json

import pytest

from twin.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_scenarios_lists_the_packaged_files(capsys):
    code, out, _ = run_cli(capsys, "scenarios", "--json")
    assert code == 0
    names = {row["name"] for row in json.loads(out)}
    assert {"small", "mega", "micius-xinglong"} <= names


def test_validate_accepts_packaged_scenarios(capsys):
    code, out, _ = run_cli(capsys, "validate", "small", "mega")
    assert code == 0
    assert "small: ok (6 sites" in out
    assert "1584/72/1" in out


def test_validate_names_field_value_and_fix(tmp_path, capsys):
    from twin.scenarios import packaged_scenario_path

    text = packaged_scenario_path("small").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("lat_deg: 48.1772", "lat_deg: 148.1772", 1))
    assert "148.1772" in bad.read_text(), "fixture edit did not apply"
    code, out, err = run_cli(capsys, "validate", str(bad))
    assert code == 2
    assert "lat_deg" in err and "148.1772" in err and "90" in err
    assert "Traceback" not in err and out == ""


def test_validate_missing_file(capsys):
    code, _, err = run_cli(capsys, "validate", "/nonexistent/scenario.yaml")
    assert code == 2
    assert "/nonexistent/scenario.yaml" in err


def test_link_budget_json_for_micius(capsys):
    code, out, _ = run_cli(
        capsys, "link-budget", "--preset", "micius-2017", "--range-km", "1000", "--json"
    )
    assert code == 0
    budget = json.loads(out)
    for key in ("total_loss_db", "transmittance", "qber", "skr_bps"):
        assert isinstance(budget[key], float)
    # Liao et al. 2017 (Nature 549, 43): kHz-level key from ~1000 km, QBER ~1-2 %.
    assert 30.0 < budget["total_loss_db"] < 45.0
    assert budget["transmittance"] == pytest.approx(10 ** (-budget["total_loss_db"] / 10))
    assert 0.005 < budget["qber"] < 0.03
    assert 100.0 < budget["skr_bps"] < 10_000.0


def test_link_budget_table_has_a_column_per_range(capsys):
    code, out, _ = run_cli(capsys, "link-budget", "--range-km", "645,1200")
    assert code == 0
    total = next(line for line in out.splitlines() if line.startswith("total loss"))
    low, high = (float(x) for x in total.split()[-2:])
    assert high > low  # a longer, lower path loses more


def test_link_budget_overrides_change_the_budget(capsys):
    _, base, _ = run_cli(capsys, "link-budget", "--range-km", "800", "--json")
    _, bigger, _ = run_cli(
        capsys, "link-budget", "--range-km", "800", "--rx-aperture-m", "2.0", "--json"
    )
    gain_db = json.loads(base)["total_loss_db"] - json.loads(bigger)["total_loss_db"]
    assert 4.0 < gain_db < 6.5  # 2x the aperture diameter: up to 6 dB more capture


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["link-budget", "--preset", "nope"], "known presets: "),
        (["link-budget", "--range-km", "-5"], "positive"),
        (["link-budget", "--range-km", "abc"], "'abc'"),
        (["link-budget", "--elevation-deg", "120"], "(0, 90]"),
        (["link-budget", "--range-km", "100"], "altitude difference"),
        (["link-budget", "--weather-loss-db", "-1"], ">= 0"),
        (["link-budget", "--detector-efficiency", "1.5"], "detector_efficiency"),
    ],
)
def test_link_budget_bad_input_is_one_clear_line(capsys, argv, expected):
    with pytest.raises(SystemExit) if expected in ("positive", "'abc'", "(0, 90]") else _no_exit():
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
