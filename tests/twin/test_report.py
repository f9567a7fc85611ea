"""The output writer of ``qntwin run``: exact CSV, deterministic report, valid plots, atomicity."""

import csv
import math
import os

import numpy as np
import pytest

from twin import report
from twin.engine import TickRecord
from twin.report import (
    CSV_COLUMNS,
    PLOT_FILES,
    atomic_write_text,
    format_csv_float,
    render_report,
    running_uptime_pct,
    write_outputs,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ("type_i", "type_ii", "type_iii", "type_iv")


def make_records(n=40, dt_s=60.0, seed=3):
    """Synthetic ticks with awkward floats (1/3, 0.1, tiny, huge), NaN where a quantity is
    undefined, and integer bit counts past 2**53."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        served = {c: float(rng.uniform()) for c in CLASSES}
        if i % 7 == 0:
            served["type_iii"] = math.nan  # no active flow of that class this tick
        records.append(
            TickRecord(
                t_s=i * dt_s,
                link_key_bits=2**60 + i * 12_345,
                pool_key_bits=int(rng.integers(0, 10**9)),
                type_i_secure_fraction=math.nan if i % 5 == 0 else (i % 3) / 3,
                served_fraction=served,
                battery_soc_mean=0.1 + float(rng.uniform()) * 0.8,
                battery_soc_min=float(rng.uniform()) * 0.1,
                haps_soc_min=math.nan if i % 2 else 0.3 + float(rng.uniform()) * 0.5,
                power_w=1e3 + 0.1 * i,
                carbon_g=float(rng.uniform()) * 1e-7,
                handovers=i % 4,
                delivered_bits=10**15 + i,
                reward=1.5 - 0.01 * i,
            )
        )
    return records


def make_metrics(sim_seconds=2400.0, wall_seconds=1.25):
    return {
        "scenario": "small",
        "controller": "static-sp",
        "seed": 7,
        "sim_seconds": sim_seconds,
        "wall_seconds": wall_seconds,
        "config": {"tick_s": 60.0, "flows": 4, "battery_reserve_fraction": 0.2},
        "metrics": {
            "secure_session_uptime_pct": 87.5,
            "availability_pct": {
                "type_i": 87.5,
                "type_ii": 100.0,
                "type_iii": None,
                "type_iv": float("nan"),
            },
            "carbon_g_per_bit": 1.234567e-12,
            "energy_j_per_bit": 3.5e-9,
            "handover_jitter_ms": {"p50": None, "p99": None, "max": None},
            "handover_interruption_ms": {"p50": 1.5, "p99": 12.25, "max": 40.0},
            "handovers": 12,
            "key_utilization_pct": 33.3333333,
            "keys": {
                "generated_bits": 1000,
                "consumed_bits": 400,
                "expired_bits": 100,
                "discarded_bits": 0,
                "destroyed_bits": 0,
                "buffered_bits": 500,
            },
            "latency_ms": {"type_i": 0.75, "type_ii": 20.0, "type_iii": None, "type_iv": 5.0},
            "throughput_bps": 1.5e6,
            "pdr": 0.95,
            "shield_violations": None,
            "mean_fidelity": None,
            "memory_slots_used": None,
            "some_new_metric": {"b": 2, "a": 0.5},
        },
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One full write, shared by the tests that only read it (each write draws five PNGs)."""
    out = tmp_path_factory.mktemp("run") / "a" / "b"  # created, parents too
    return out, write_outputs(out, make_metrics(), make_records())


@pytest.fixture
def no_plots(monkeypatch):
    """Skip drawing in tests about the CSV, the report or atomicity (faster)."""
    monkeypatch.setattr(report, "_draw_plots", lambda metrics, records: {})


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def expected_row(r):
    return {
        "t_s": r.t_s,
        "link_key_bits": r.link_key_bits,
        "pool_key_bits": r.pool_key_bits,
        "type_i_secure_fraction": r.type_i_secure_fraction,
        **{f"served_fraction_{c}": r.served_fraction[c] for c in CLASSES},
        "battery_soc_mean": r.battery_soc_mean,
        "battery_soc_min": r.battery_soc_min,
        "haps_soc_min": r.haps_soc_min,
        "power_w": r.power_w,
        "carbon_g": r.carbon_g,
        "handovers": r.handovers,
        "delivered_bits": r.delivered_bits,
        "reward": r.reward,
    }


def test_writes_all_files_and_returns_their_paths(written):
    out, paths = written
    names = [p.name for p in paths]
    assert names == ["timeseries.csv", *PLOT_FILES, "report.md"]
    assert all(p.parent == out and p.is_file() for p in paths)
    assert sorted(os.listdir(out)) == sorted(names)  # no temporary files left behind


def test_csv_reads_back_exactly(written):
    out, _ = written
    records = make_records()
    header, rows = read_csv(out / "timeseries.csv")
    assert tuple(header) == CSV_COLUMNS
    assert header[4:8] == [f"served_fraction_{c}" for c in CLASSES]
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        expected = expected_row(record)
        for name, cell in zip(header, row, strict=True):
            want = expected[name]
            if isinstance(want, int):
                assert int(cell) == want, name  # exact, also past 2**53
            elif math.isnan(want):
                assert cell == "nan", name
            else:
                assert float(cell) == want, (name, cell, want)  # bit-exact round trip
    text = (out / "timeseries.csv").read_text()
    assert "\r" not in text and text.endswith("\n")
    assert ",0.3333333333333333," in text  # 1/3 in shortest round-trip form


def test_format_csv_float_round_trips_awkward_values():
    for x in (0.1, 1 / 3, 5e-324, 1.7976931348623157e308, -0.0, 2.0**53 + 2, 1e-7):
        assert float(format_csv_float(x)) == x
        assert math.copysign(1, float(format_csv_float(x))) == math.copysign(1, x)
    assert format_csv_float(float("nan")) == "nan"
    assert format_csv_float(float("inf")) == "inf"
    assert format_csv_float(np.float64(0.1)) == "0.1"


def test_two_writes_give_identical_csv_and_report(written, tmp_path, no_plots):
    first = written[0]  # wall_seconds 1.25, plots drawn
    write_outputs(tmp_path, make_metrics(wall_seconds=99.0), make_records())
    for name in ("timeseries.csv", "report.md"):
        assert (first / name).read_bytes() == (tmp_path / name).read_bytes(), name
    # a rewrite into the same directory replaces the files with the same bytes
    before = (tmp_path / "report.md").read_bytes()
    write_outputs(tmp_path, make_metrics(), make_records())
    assert (tmp_path / "report.md").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["report.md", "timeseries.csv"]


def test_pngs_are_valid_and_not_trivial(written):
    for path in written[1]:
        if path.suffix == ".png":
            data = path.read_bytes()
            assert data[:8] == PNG_MAGIC, path.name
            assert data[12:16] == b"IHDR", path.name
            width = int.from_bytes(data[16:20], "big")
            height = int.from_bytes(data[20:24], "big")
            assert (width, height) == (800, 400), path.name
            assert len(data) > 10_000, (path.name, len(data))  # axes, lines and text drawn


def test_report_shows_metrics_with_units_and_na(written):
    text = (written[0] / "report.md").read_text()
    assert text.startswith("# qntwin run: small with static-sp\n")
    assert "seed 7" in text and "2400 s (40.00 min)" in text
    assert "| Secure-session uptime (Type-I flows with key) | 87.500 | % |" in text
    assert "| Availability, Type-II | 100.000 | % |" in text
    assert "| Availability, Type-III | n/a | % |" in text  # None
    assert "| Availability, Type-IV | n/a | % |" in text  # NaN
    assert "| Mean path latency, Type-I | 0.750 | ms |" in text
    assert "| Carbon per delivered bit | 1.2346e-12 | g CO2e/bit |" in text
    assert "| Handover jitter p99 | n/a | ms |" in text
    assert "| Handover interruption p99 | 12.250 | ms |" in text
    assert "| Handovers | 12 | count |" in text
    assert "| Key utilization (consumed / generated) | 33.333 | % |" in text
    assert "| generated | 1,000 |" in text and "| buffered | 500 |" in text
    assert "| Throughput (delivered) | 1.5e+06 | bit/s |" in text
    assert "| Shield violations | n/a | count |" in text
    assert "| some_new_metric.a | 0.5 |" in text  # unknown metrics still shown, sorted
    assert "| battery_reserve_fraction | 0.2 |" in text
    for name in PLOT_FILES:
        assert f"]({name})" in text
    assert "How to read this" in text and "wall_seconds" in text
    assert "1.25" not in text and "99.0" not in text  # the wall time itself is not there
    assert "nan" not in text.lower().replace("`nan`", "")


def test_report_is_a_function_of_metrics_only():
    one = render_report(make_metrics(wall_seconds=0.5))
    two = render_report(make_metrics(wall_seconds=123.0))
    assert one == two
    changed = make_metrics()
    changed["metrics"]["handovers"] = 13
    assert render_report(changed) != one  # the test can fail


def test_long_runs_use_hours(tmp_path):
    text = render_report(make_metrics(sim_seconds=86_400.0))
    assert "86400 s (24.00 h)" in text
    assert report._time_axis(np.array([0.0, 7_300.0]), 7_300.0)[1].endswith("[h]")
    assert report._time_axis(np.array([0.0, 7_200.0]), 7_200.0)[1].endswith("[min]")


def test_running_uptime_skips_ticks_without_type_i_demand():
    got = running_uptime_pct(np.array([np.nan, 1.0, 0.0, np.nan, 0.5]))
    assert np.isnan(got[0])
    np.testing.assert_allclose(got[1:], [100.0, 50.0, 50.0, 50.0])


def test_empty_run_and_missing_values_still_write(tmp_path):
    metrics = {"scenario": "empty", "controller": "x", "seed": 0, "sim_seconds": 0.0}
    written = write_outputs(tmp_path, metrics, [])
    header, rows = read_csv(tmp_path / "timeseries.csv")
    assert tuple(header) == CSV_COLUMNS and rows == []
    text = (tmp_path / "report.md").read_text()
    assert "| Secure-session uptime (Type-I flows with key) | n/a | % |" in text
    assert all(p.stat().st_size > 0 for p in written)


def test_failure_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken(fh, records):
        fh.write("t_s,link_key_bits\n0.0,")  # the temp file is open and half written
        raise OSError("disk full")

    monkeypatch.setattr(report, "_write_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_outputs(tmp_path, make_metrics(), make_records())
    assert os.listdir(tmp_path) == []  # neither the final file nor the temporary one


def test_failure_keeps_the_previous_file_whole(tmp_path, monkeypatch, no_plots):
    write_outputs(tmp_path, make_metrics(), make_records())
    before = (tmp_path / "report.md").read_bytes()

    def broken(metrics, plot_files):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "render_report", broken)
    with pytest.raises(RuntimeError, match="boom"):
        write_outputs(tmp_path, make_metrics(), make_records())
    assert (tmp_path / "report.md").read_bytes() == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_atomic_write_text_respects_umask(tmp_path):
    path = atomic_write_text(tmp_path / "metrics.json", "{}\n")
    assert path.read_text() == "{}\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_wrong_kinds_are_clear_errors(tmp_path, no_plots):
    records = make_records(3)
    bad = TickRecord(**{**records[1].__dict__, "link_key_bits": 12.0})
    with pytest.raises(ValueError, match=r"records\[1\]\.link_key_bits must be an integer"):
        write_outputs(tmp_path / "x", make_metrics(), [records[0], bad])
    unknown = TickRecord(**{**records[0].__dict__, "served_fraction": {"type_v": 1.0}})
    with pytest.raises(ValueError, match="type_v"):
        write_outputs(tmp_path / "y", make_metrics(), [unknown])
    assert not (tmp_path / "x" / "timeseries.csv").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a directory"):
        write_outputs(tmp_path / "file", make_metrics(), records)


def test_report_shows_the_traffics_energy_and_the_bulk_put_off():
    metrics = make_metrics()
    metrics["metrics"].update(
        transport_carbon_g=0.0123,
        transport_energy_j=45.5,
        bulk_events_deferred=1,
        bulk_deferrals=[
            {"flow": "oxford-firmware-update", "event": "plc-fw", "start_s": 18000.0,
             "delay_s": 2400.0}
        ],
    )  # fmt: skip
    text = render_report(metrics)
    assert "| Carbon of the traffic | 0.0123 | g CO2e |" in text
    assert "| Type-IV transfers put off | 1 | count |" in text
    assert "| oxford-firmware-update | plc-fw | 18000 | 2400 |" in text
    assert "Other metrics" not in text or "bulk_deferrals" not in text
    plain = render_report(make_metrics())
    assert "Type-IV transfers put off (carbon-aware" not in plain
