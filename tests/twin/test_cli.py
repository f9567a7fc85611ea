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


def test_link_budget_json_with_several_ranges_gives_lists(capsys):
    code, out, _ = run_cli(capsys, "link-budget", "--range-km", "600,800", "--json")
    assert code == 0
    budget = json.loads(out)
    for key in ("range_m", "total_loss_db", "transmittance", "qber", "skr_bps"):
        assert len(budget[key]) == 2 and all(isinstance(v, float) for v in budget[key])
    assert budget["range_m"] == [600e3, 800e3]
    assert budget["total_loss_db"][1] > budget["total_loss_db"][0]


# (argv, text the error must contain). These end in CliError / ValueError: exit 2, one line.
BAD_LINK_BUDGET = [
    (["--preset", "nope"], "known presets: "),
    (["--range-km", "100"], "shorter than the altitude difference"),
    (["--weather-loss-db", "-1"], ">= 0"),
    (["--weather-loss-db", "inf"], "finite loss"),
    (["--detector-efficiency", "1.5"], "detector_efficiency"),
    (["--divergence-urad", "0"], "divergence_half_angle_rad must be a small positive angle"),
    (["--wavelength-nm", "-1"], "--wavelength-nm must be > 0"),
    (["--tx-aperture-m", "0"], "aperture_diameter_m must be finite and > 0"),
    (["--tx-aperture-m", "inf"], "aperture_diameter_m must be finite and > 0"),
    # the receiver's own obscuration (0.25 m secondary) was named instead of the flag
    (["--rx-aperture-m", "0.1"], "--rx-aperture-m 0.1 is not larger than the central obscuration"),
    # beyond the horizon (it used to print an array repr in metres)
    (["--range-km", "1e9"], "beyond the horizon range of micius-2017 (2570.75 km)"),
    (["--range-km", "600,3000"], "--range-km 3000 is beyond the horizon"),
    # near the horizon the flat-Earth turbulence model diverges (Rytov 5e9, 64 dB at 1e-4 deg)
    (["--elevation-deg", "0.0001"], "--elevation-deg 0.0001 is below 5 deg"),
    (["--range-km", "2500"], "0.6452 deg elevation, below 5 deg"),
    (["--preset", "ground-haps-20km", "--elevation-deg", "1"], "below 5 deg"),
    (["--preset", "isl-leo-1550", "--elevation-deg", "30"], "no elevation; give --range-km"),
]

# These are rejected by argparse itself (exit 2 through SystemExit, usage + one error line).
BAD_LINK_BUDGET_ARGS = [
    (["--range-km", "-5"], "ranges must be positive finite km"),
    (["--range-km", "abc"], "'abc'"),
    (["--range-km", "inf"], "ranges must be positive finite km, got inf"),
    (["--elevation-deg", "120"], "(0, 90]"),
    (["--elevation-deg", "nan"], "elevations must be positive finite degrees, got nan"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_LINK_BUDGET)
def test_link_budget_bad_input_is_one_clear_line(capsys, argv, expected):
    code, out, err = run_cli(capsys, "link-budget", *argv)
    assert code == 2 and out == ""
    assert expected in err
    assert err.startswith("qntwin link-budget: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "Warning" not in err


@pytest.mark.parametrize(("argv", "expected"), BAD_LINK_BUDGET_ARGS)
def test_link_budget_bad_flag_value_is_an_argparse_error(capsys, argv, expected):
    with pytest.raises(SystemExit) as info:
        main(["link-budget", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_link_budget_accepts_the_edges_of_the_supported_geometry(capsys):
    # 5 deg elevation and the altitude difference itself are allowed; an HAPS-space link has
    # no ground end, so low elevations stay available there
    for argv in (
        ["--elevation-deg", "5"],
        ["--range-km", "499.04"],
        ["--preset", "haps-space-550km", "--elevation-deg", "1"],
        ["--preset", "isl-leo-1550", "--range-km", "5000"],
    ):
        code, _, err = run_cli(capsys, "link-budget", *argv, "--json")
        assert code == 0, (argv, err)


def _small_with_tle(tmp_path, tle_text):
    from twin.scenarios import packaged_scenario_path

    text = packaged_scenario_path("small").read_text()
    walker = (
        '    walker: {inclination_deg: 53, total: 24, planes: 6, phasing: 1}   # or "53:24/6/1"\n'
        "    altitude_m: 550000\n"
    )
    assert walker in text
    (tmp_path / "sats.tle").write_text(tle_text)
    path = tmp_path / "tle.yaml"
    path.write_text(text.replace(walker, "    tle_file: sats.tle\n"))
    return path


ISS_LINE1 = "1 25544U 98067A   18184.80969102  .00001614  00000-0  31745-4 0  9993"
ISS_LINE2 = "2 25544  51.6414 295.8524 0003435 262.6267 204.2868 15.54005638121106"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"name: x\n  bad: [\n", "YAML syntax error at line 2"),
        (b"", "the file is empty"),
        (b"# only a comment\n", "the file is empty"),
        (b"- a\n- b\n", "the top level must be a mapping"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not UTF-8 text"),
        (b"name: x\x00\n", "'\\x00' is not allowed in YAML"),
        (b"loop: &x [*x]\n", "unknown key 'loop'"),
    ],
)
def test_validate_bad_files_exit_2_without_traceback(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    code, out, err = run_cli(capsys, "validate", str(path))
    assert code == 2 and out == ""
    assert str(path) in err and expected in err, err
    assert "Traceback" not in err


def test_validate_a_directory(tmp_path, capsys):
    code, _, err = run_cli(capsys, "validate", str(tmp_path))
    assert code == 2 and "is not a file" in err


def test_validate_parses_the_tle_file_a_scenario_names(tmp_path, capsys):
    good = _small_with_tle(tmp_path, f"ISS (ZARYA)\n{ISS_LINE1}\n{ISS_LINE2}\n")
    code, out, _ = run_cli(capsys, "validate", str(good))
    assert code == 0 and "shell-a from sats.tle" in out
    # one altered digit: the checksum of the file's line 3 no longer matches
    bad = _small_with_tle(
        tmp_path, f"ISS (ZARYA)\n{ISS_LINE1}\n{ISS_LINE2.replace('51.6414', '51.6415')}\n"
    )
    code, out, err = run_cli(capsys, "validate", str(bad))
    assert code == 2 and out == ""
    assert "constellations[0].tle_file" in err and "sats.tle line 3: bad checksum" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["physics", "--hours", "24"], "use 'bench engine'"),
        (["engine", "--hours", "0.01"], "--hours must be >= 0.17"),
        (["physics", "--curve-repeat", "20"], "use 'bench engine'"),
        (["engine", "--curve-repeat", "3"], "--curve-repeat must be >= 10, got 3"),
    ],
)
def test_bench_bad_options_are_one_clear_line(capsys, argv, expected):
    # refused before any benchmark runs
    code, out, err = run_cli(capsys, "bench", *argv)
    assert code == 2 and out == ""
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["small", "--iterations", "0"], "--iterations must be a whole number >= 1, got 0"),
        (["small", "--episode-s", "5"], "--episode-s must be >= 10 simulated seconds, got 5"),
        (["small", "--steps", "50"], "--steps must be >= 200 env steps per iteration, got 50"),
        (["small", "--seed", "-1"], "--seed must be a non-negative integer, got -1"),
        (["small", "--lr", "0"], "--lr must be a learning rate in (0, 1], got 0"),
        (["small", "--lr", "nan"], "--lr must be a learning rate in (0, 1], got nan"),
        (["small", "--heads", "relay,speed"], "--heads 'relay,speed': give some of path,laser"),
        (["small", "--heads", ","], "--heads ',': give some of path,laser,relay,data"),
        (["small", "--heads", "relay,data"], "give the policy to start from with --init POLICY"),
        (["no-such-scenario"], "scenario file 'no-such-scenario' not found"),
    ],
)
def test_train_bad_options_are_one_clear_line(capsys, argv, expected):
    # refused before RLlib or Ray starts
    code, out, err = run_cli(capsys, "train", *argv)
    assert code == 2 and out == ""
    assert expected in err and "Traceback" not in err


def test_policy_flag_errors_are_one_clear_line(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a policy")
    cases = [
        (["run", "small", "--policy", str(bad)], "--policy applies to drl-only and ai-sdqn"),
        (["compare", "small", "--controllers", "static-sp,key-aware", "--policy", str(bad)],
         "not to static-sp, key-aware: drop it or run one of them"),
        (["run", "small", "--controller", "drl-only", "--policy", str(tmp_path / "none.pt")],
         "--policy: policy file"),
        (["run", "small", "--controller", "ai-sdqn", "--policy", str(bad)],
         "is not a qntwin edge policy"),
    ]  # fmt: skip
    for argv, expected in cases:
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == ""
        assert expected in err and "Traceback" not in err, err


def test_ctrl_c_is_one_line_and_stops_the_controllers_processes(capsys, tmp_path, monkeypatch):
    """An interrupted local run (ai-sdqn: its plans and decisions on processes of its own,
    actors.forked) exits 130 with one line, writes nothing and leaves no process behind."""
    import multiprocessing

    from twin.engine import Engine

    close_tick = Engine._close_tick
    running = []

    def interrupted_at_tick_5(self, unclosed, *args):
        if unclosed[0] >= 5 * self.dt_ns:
            running.extend(p.name for p in multiprocessing.active_children())
            raise KeyboardInterrupt
        return close_tick(self, unclosed, *args)

    monkeypatch.setattr(Engine, "_close_tick", interrupted_at_tick_5)
    out_dir = tmp_path / "run"
    code, out, err = run_cli(
        capsys, "run", "small", "--controller", "ai-sdqn", "--hours", "0.01",
        "--runtime", "local", "--quiet", "--out", str(out_dir),
    )  # fmt: skip
    assert code == 130 and err == "qntwin run: interrupted\n" and out == ""
    assert not out_dir.exists()
    assert sorted(running) == ["ai-sdqn-edge", "ai-sdqn-planner"]
    assert multiprocessing.active_children() == []
