"""The output files of ``qntwin run``: the time series, the plots and the human report.

:func:`write_outputs` writes, into one directory,

- ``timeseries.csv``: one row per tick, the columns of :data:`CSV_COLUMNS`;
- five PNG plots (:data:`PLOT_FILES`): key buffers, Type-I secure session, battery, power and
  carbon, handovers;
- ``report.md``: the run's title, a summary table of its metrics with units, the plots, and how
  to read them.

Every file is written atomically (:func:`atomic_write_bytes`): to a temporary file in the same
directory, flushed and fsynced, then ``os.replace``-d over the final name, so a crash or an
error never leaves a half-written result, and a file from an earlier run is either kept whole or
replaced whole.

Determinism
    ``timeseries.csv`` and ``report.md`` are functions of their inputs only: the CSV writes
    floats as ``repr(float)`` (the shortest text that reads back to the same double, the same on
    every platform), integers as plain digits, NaN as ``nan`` and infinities as ``inf``/``-inf``
    (so ``float(cell)`` reads every float cell back exactly; an empty cell would not parse); rows
    end in ``\\n``. ``report.md`` formats every value with a fixed format and leaves out
    ``wall_seconds``, the one field that differs between identical runs. The PNGs are drawn on
    matplotlib's Agg canvas (no display, no pyplot state) with the ``Software`` metadata
    removed; they are usually byte-stable for the same matplotlib and FreeType, but nothing
    depends on that.

matplotlib is imported only when the plots are drawn, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import operator
import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from twin.network.traffic import TrafficClass

if TYPE_CHECKING:
    from twin.engine import TickRecord

__all__ = [
    "CSV_COLUMNS",
    "CSV_FILE",
    "PLOT_FILES",
    "REPORT_FILE",
    "atomic_write_bytes",
    "atomic_write_text",
    "flatten_metrics",
    "format_csv_float",
    "render_report",
    "running_uptime_pct",
    "write_outputs",
]

CSV_FILE = "timeseries.csv"
REPORT_FILE = "report.md"
# file name -> what report.md calls it
PLOT_FILES: dict[str, str] = {
    "key_buffers.png": "Key buffers",
    "type_i_secure_session.png": "Type-I secure session",
    "battery.png": "Satellite batteries",
    "power_carbon.png": "Power and carbon",
    "handovers.png": "Handovers",
}

_CLASS_KEYS = tuple(c.value for c in TrafficClass)  # 'type_i' .. 'type_iv', in class order
# (column, kind): kind is "float" or "int"; served_fraction is flattened in TrafficClass order
_COLUMN_KINDS: tuple[tuple[str, str], ...] = (
    ("t_s", "float"),
    ("link_key_bits", "int"),
    ("pool_key_bits", "int"),
    ("type_i_secure_fraction", "float"),
    *((f"served_fraction_{c}", "float") for c in _CLASS_KEYS),
    ("battery_soc_mean", "float"),
    ("battery_soc_min", "float"),
    ("haps_soc_min", "float"),
    ("power_w", "float"),
    ("carbon_g", "float"),
    ("handovers", "int"),
    ("delivered_bits", "int"),
    ("reward", "float"),
)
CSV_COLUMNS: tuple[str, ...] = tuple(name for name, _ in _COLUMN_KINDS)

_HOURS_ABOVE_S = 2 * 3_600.0  # the time axis is in hours for runs longer than this, else minutes


# --- atomic files ------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_open(path: Path, binary: bool) -> Iterator[IO[Any]]:
    """A file object on a temporary sibling of ``path``; on a clean exit it is fsynced and
    renamed onto ``path``, on an exception it is deleted and ``path`` is left untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never write through someone else's file or link; 0o666 lets the umask decide the
    # permissions, as for an ordinary open() (mkstemp's 0o600 would survive the rename)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if binary:
            handle = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, fsync,
    ``os.replace``); the directory must exist. Returns ``path``."""
    with _atomic_open(Path(path), binary=True) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically; see
    :func:`atomic_write_bytes`. Returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(directory: Path) -> None:
    """Make the renames durable; best effort (not every platform opens directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- timeseries.csv ----------------------------------------------------------------------------


def format_csv_float(value: float) -> str:
    """A float as the CSV writes it: ``repr`` (shortest round-trip text), ``nan`` for NaN,
    ``inf``/``-inf`` for infinities; ``float(text)`` gives back the same double."""
    return repr(float(value))


def _record_row(index: int, record: TickRecord) -> list[str]:
    served = dict(record.served_fraction)
    unknown = sorted(set(served) - set(_CLASS_KEYS))
    if unknown:
        raise ValueError(
            f"records[{index}].served_fraction has keys {unknown}; expected only "
            f"{list(_CLASS_KEYS)} (TrafficClass values)"
        )
    values: dict[str, Any] = {
        "t_s": record.t_s,
        "link_key_bits": record.link_key_bits,
        "pool_key_bits": record.pool_key_bits,
        "type_i_secure_fraction": record.type_i_secure_fraction,
        **{f"served_fraction_{c}": served.get(c, math.nan) for c in _CLASS_KEYS},
        "battery_soc_mean": record.battery_soc_mean,
        "battery_soc_min": record.battery_soc_min,
        "haps_soc_min": record.haps_soc_min,
        "power_w": record.power_w,
        "carbon_g": record.carbon_g,
        "handovers": record.handovers,
        "delivered_bits": record.delivered_bits,
        "reward": record.reward,
    }
    row = []
    for name, kind in _COLUMN_KINDS:
        value = values[name]
        try:
            row.append(str(operator.index(value)) if kind == "int" else format_csv_float(value))
        except TypeError:
            need = "an integer (bits and counts are never floats)" if kind == "int" else "a float"
            raise ValueError(
                f"records[{index}].{name} must be {need}, got {value!r} ({type(value).__name__})"
            ) from None
    return row


def _write_csv(fh: IO[str], records: Sequence[TickRecord]) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i, record in enumerate(records):
        writer.writerow(_record_row(i, record))


# --- plots -------------------------------------------------------------------------------------


def _series(records: Sequence[TickRecord]) -> dict[str, np.ndarray]:
    """The time series as float arrays, one per CSV column (NaN where not defined)."""
    n = len(records)
    out = {name: np.empty(n) for name in CSV_COLUMNS}
    for i, r in enumerate(records):
        out["t_s"][i] = r.t_s
        out["link_key_bits"][i] = r.link_key_bits
        out["pool_key_bits"][i] = r.pool_key_bits
        out["type_i_secure_fraction"][i] = r.type_i_secure_fraction
        for c in _CLASS_KEYS:
            out[f"served_fraction_{c}"][i] = r.served_fraction.get(c, math.nan)
        out["battery_soc_mean"][i] = r.battery_soc_mean
        out["battery_soc_min"][i] = r.battery_soc_min
        out["haps_soc_min"][i] = r.haps_soc_min
        out["power_w"][i] = r.power_w
        out["carbon_g"][i] = r.carbon_g
        out["handovers"][i] = r.handovers
        out["delivered_bits"][i] = r.delivered_bits
    return out


def _real(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    return float(value)


def _time_axis(t_s: np.ndarray, sim_seconds: float | None) -> tuple[np.ndarray, str]:
    """Time in hours for runs longer than two hours, else in minutes."""
    if sim_seconds is None or not math.isfinite(sim_seconds):
        sim_seconds = float(t_s[-1] - t_s[0]) if t_s.size else 0.0
    if sim_seconds > _HOURS_ABOVE_S:
        return t_s / 3_600.0, "simulated time [h]"
    return t_s / 60.0, "simulated time [min]"


def running_uptime_pct(secure_fraction: np.ndarray) -> np.ndarray:
    """The running mean (in %) of the per-tick Type-I secure fraction over the ticks that had
    Type-I demand (non-NaN); NaN before the first such tick. Equal to the run's
    ``secure_session_uptime_pct`` at the end when the number of active Type-I flows is the same
    in every tick (the metric weighs flow-ticks, this curve weighs ticks)."""
    f = np.asarray(secure_fraction, dtype=float)
    active = ~np.isnan(f)
    count = np.cumsum(active)
    total = np.cumsum(np.where(active, f, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, 100.0 * total / np.maximum(count, 1), np.nan)


def _no_data(ax, text: str = "no data in this run") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _draw_plots(
    metrics: Mapping[str, Any], records: Sequence[TickRecord]
) -> dict[str, Callable[[IO[bytes]], None]]:
    """One save function per plot file; each draws its figure into a binary file object."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s = _series(records)
    t, t_label = _time_axis(s["t_s"], _real(metrics.get("sim_seconds")))
    who = f"{_text(metrics.get('scenario'))}, controller {_text(metrics.get('controller'))}"
    config = metrics.get("config") or {}
    reserve = _real(config.get("battery_reserve_fraction")) if isinstance(config, Mapping) else None

    def figure(title: str):
        fig = Figure(figsize=(8.0, 4.0), dpi=100)
        FigureCanvasAgg(fig)
        # fixed margins (room for a two-line title and a right-hand axis): cheaper than a
        # layout engine, and the same frame in every plot
        fig.subplots_adjust(left=0.1, right=0.9, bottom=0.12, top=0.86)
        ax = fig.add_subplot()
        ax.set_title(f"{title}\n{who}", fontsize=10)
        ax.set_xlabel(t_label)
        ax.grid(True, alpha=0.3)
        return fig, ax

    def right_axis(ax, y: np.ndarray, label: str, unit_label: str, color: str):
        # a second y axis: the two quantities differ by orders of magnitude
        ax2 = ax.twinx()
        ax2.plot(t, y, color=color, label=label, drawstyle="steps-post")
        ax2.set_ylabel(unit_label, color=color)
        for axis in (ax, ax2):
            axis.ticklabel_format(axis="y", useOffset=False)  # no "1e6+1.15e18" offsets
        return ax2

    def key_buffers(ax):
        ax.step(t, s["link_key_bits"], where="post", color="tab:blue",
                label="QKD link buffers (sum)")  # fmt: skip
        ax.set_ylabel("link buffers [bit]", color="tab:blue")
        return right_axis(ax, s["pool_key_bits"], "end-to-end pools (sum)",
                          "end-to-end pools [bit]", "tab:orange")  # fmt: skip

    def type_i(ax) -> None:
        ax.step(t, 100.0 * s["type_i_secure_fraction"], where="post", lw=0.8, alpha=0.6,
                label="Type-I flows with key this tick")  # fmt: skip
        ax.plot(t, running_uptime_pct(s["type_i_secure_fraction"]), lw=1.8,
                label="running uptime")  # fmt: skip
        ax.set_ylabel("secure Type-I sessions [%]")
        ax.set_ylim(-2.0, 102.0)
        if np.isnan(s["type_i_secure_fraction"]).all():
            _no_data(ax, "no Type-I demand in this run")

    def battery(ax) -> None:
        ax.plot(t, 100.0 * s["battery_soc_mean"], label="mean SoC")
        ax.plot(t, 100.0 * s["battery_soc_min"], label="min SoC")
        if not np.isnan(s["haps_soc_min"]).all():
            ax.plot(t, 100.0 * s["haps_soc_min"], label="HAPS min SoC")
        if reserve is not None:
            ax.axhline(100.0 * reserve, color="tab:red", ls="--", lw=1.0, label="reserve")
        ax.set_ylabel("state of charge [%]")
        ax.set_ylim(-2.0, 102.0)
        if np.isnan(s["battery_soc_mean"]).all() and np.isnan(s["haps_soc_min"]).all():
            _no_data(ax, "no satellites or HAPS in this run")

    def power_carbon(ax):
        ax.plot(t, s["power_w"], color="tab:blue", label="power (satellite loads + ground)")
        ax.set_ylabel("power [W]", color="tab:blue")
        return right_axis(ax, np.nancumsum(s["carbon_g"]), "cumulative carbon",
                          "cumulative carbon [g CO2e]", "tab:green")  # fmt: skip

    def handovers(ax) -> None:
        ax.step(t, np.cumsum(s["handovers"]), where="post", label="cumulative handovers")
        ax.set_ylabel("handovers")

    drawers = {
        "key_buffers.png": key_buffers,
        "type_i_secure_session.png": type_i,
        "battery.png": battery,
        "power_carbon.png": power_carbon,
        "handovers.png": handovers,
    }

    def saver(name: str) -> Callable[[IO[bytes]], None]:
        def save(fh: IO[bytes]) -> None:
            fig, ax = figure(PLOT_FILES[name])
            ax2 = drawers[name](ax)
            if not t.size:
                _no_data(ax, "no ticks in this run")
            else:
                lines = ax.get_lines() + ([] if ax2 is None else ax2.get_lines())
                lines = [line for line in lines if not line.get_label().startswith("_")]
                ax.legend(lines, [line.get_label() for line in lines], loc="best", fontsize=8)
            fig.savefig(fh, format="png", metadata={"Software": None})

        return save

    return {name: saver(name) for name in PLOT_FILES}


# --- report.md ---------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _fmt(value: Any, spec: str) -> str:
    """A metric value with a fixed format; None and NaN are 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return f"{int(value):,}"
    if isinstance(value, Real):
        x = float(value)
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return format(x, ".6g" if spec == "d" else spec)  # a count given as a float
    return str(value)


def _generic(value: Any) -> str:
    """A value of unknown meaning: integers in full, floats to 6 significant digits."""
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return _fmt(value, ".6g")


def _sub(metrics: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = metrics.get(key)
    return value if isinstance(value, Mapping) else {}


_KEY_FIELDS = (
    "generated_bits",
    "consumed_bits",
    "expired_bits",
    "discarded_bits",
    "destroyed_bits",
    "buffered_bits",
)
# metrics shown by the summary tables; anything else goes to "Other metrics"
_SUMMARY_KEYS = frozenset(
    {
        "secure_session_uptime_pct",
        "availability_pct",
        "latency_ms",
        "throughput_bps",
        "pdr",
        "carbon_g_per_bit",
        "energy_j_per_bit",
        "carbon_g",
        "energy_j",
        "transport_carbon_g",
        "transport_energy_j",
        "bulk_events_deferred",
        "bulk_deferrals",
        "handovers",
        "handover_jitter_ms",
        "handover_interruption_ms",
        "key_utilization_pct",
        "keys",
        "e2e_keys",
        "battery_below_reserve_ticks",
        "shield_violations",
        "mean_fidelity",
        "memory_slots_used",
    }
)


def flatten_metrics(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    """(key, value) of every leaf of nested mappings, keys joined by ``.`` (sorted)."""
    if isinstance(value, Mapping):
        for k in sorted(value, key=str):
            yield from flatten_metrics(f"{prefix}.{k}" if prefix else str(k), value[k])
    else:
        yield prefix, value


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], align: str) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _duration(sim_seconds: float | None) -> str:
    if sim_seconds is None or not math.isfinite(sim_seconds):
        return "n/a"
    if sim_seconds > _HOURS_ABOVE_S:
        return f"{sim_seconds:g} s ({sim_seconds / 3_600.0:.2f} h)"
    return f"{sim_seconds:g} s ({sim_seconds / 60.0:.2f} min)"


def render_report(metrics: Mapping[str, Any], plot_files: Sequence[str] = tuple(PLOT_FILES)) -> str:
    """The text of report.md for ``metrics`` (the metrics.json dict), embedding ``plot_files``
    by relative path. A pure function of its arguments: ``wall_seconds`` is not shown."""
    m = _sub(metrics, "metrics")
    scenario = _text(metrics.get("scenario"))
    controller = _text(metrics.get("controller"))
    sim_seconds = _real(metrics.get("sim_seconds"))
    out = [
        f"# qntwin run: {scenario} with {controller}",
        "",
        f"Scenario `{scenario}`, controller `{controller}`, seed {_text(metrics.get('seed'))}, "
        f"simulated duration {_duration(sim_seconds)}.",
        "",
        "## Summary",
        "",
    ]
    availability = _sub(m, "availability_pct")
    latency = _sub(m, "latency_ms")
    jitter = _sub(m, "handover_jitter_ms")
    interruption = _sub(m, "handover_interruption_ms")
    rows: list[tuple[str, str, str]] = [
        (
            "Secure-session uptime (Type-I flows with key)",
            _fmt(m.get("secure_session_uptime_pct"), ".3f"),
            "%",
        ),
        *(
            (f"Availability, {TrafficClass(c).label}", _fmt(availability.get(c), ".3f"), "%")
            for c in _CLASS_KEYS
        ),
        *(
            (f"Mean path latency, {TrafficClass(c).label}", _fmt(latency.get(c), ".3f"), "ms")
            for c in _CLASS_KEYS
        ),
        ("Throughput (delivered)", _fmt(m.get("throughput_bps"), ".6g"), "bit/s"),
        ("Delivery ratio (PDR)", _fmt(m.get("pdr"), ".6f"), "delivered / offered"),
        ("Carbon per delivered bit", _fmt(m.get("carbon_g_per_bit"), ".4e"), "g CO2e/bit"),
        ("Energy per delivered bit", _fmt(m.get("energy_j_per_bit"), ".4e"), "J/bit"),
        ("Carbon, total", _fmt(m.get("carbon_g"), ".6g"), "g CO2e"),
        ("Energy, total", _fmt(m.get("energy_j"), ".6g"), "J"),
        # the traffic's own part of the two above (per bit, at the ground sites it crosses)
        ("Carbon of the traffic", _fmt(m.get("transport_carbon_g"), ".6g"), "g CO2e"),
        ("Energy of the traffic", _fmt(m.get("transport_energy_j"), ".6g"), "J"),
        ("Type-IV transfers put off", _fmt(m.get("bulk_events_deferred"), "d"), "count"),
        ("Handovers", _fmt(m.get("handovers"), "d"), "count"),
        *(
            (f"Handover {label} {q}", _fmt(block.get(q), ".3f"), "ms")
            for label, block in (("jitter", jitter), ("interruption", interruption))
            for q in ("p50", "p99", "max")
        ),
        ("Key utilization (consumed / generated)", _fmt(m.get("key_utilization_pct"), ".3f"), "%"),
        (
            "Ticks with a satellite below battery reserve",
            _fmt(m.get("battery_below_reserve_ticks"), "d"),
            "ticks",
        ),
        (
            "Ticks with a HAPS below battery reserve",
            _fmt(m.get("haps_below_reserve_ticks"), "d"),
            "ticks",
        ),
        ("Shield violations", _fmt(m.get("shield_violations"), "d"), "count"),
        ("Mean fidelity", _fmt(m.get("mean_fidelity"), ".6f"), "(0-1)"),
        ("Memory slots used", _fmt(m.get("memory_slots_used"), "d"), "slots"),
    ]
    out += _table(("Metric", "Value", "Unit"), rows, ("---", "---:", "---"))

    deferrals = m.get("bulk_deferrals") or []
    if deferrals:
        out += ["", "### Type-IV transfers put off (carbon-aware deferral)", ""]
        out += _table(
            ("Flow", "Event", "Was to start [s]", "Put off by [s]"),
            [(d["flow"], d["event"], _fmt(d["start_s"], "g"), _fmt(d["delay_s"], "g"))
             for d in deferrals],
            ("---", "---", "---:", "---:"),
        )  # fmt: skip

    keys, e2e = _sub(m, "keys"), _sub(m, "e2e_keys")
    ledger_header: tuple[str, ...] = ("Key ledger [bit]", "QKD links")
    if "e2e_keys" in m:
        ledger_header += ("end-to-end pools",)
    ledger_rows = [
        (f.removesuffix("_bits"), _fmt(keys.get(f), "d"))
        + ((_fmt(e2e.get(f), "d"),) if "e2e_keys" in m else ())
        for f in _KEY_FIELDS
    ]
    out += [
        "",
        "### Key ledger",
        "",
        "Every buffer balances: generated = consumed + expired + discarded + destroyed + buffered.",
        "",
    ]
    out += _table(ledger_header, ledger_rows, ("---",) + ("---:",) * (len(ledger_header) - 1))

    others = [
        (name, _generic(value))
        for key in sorted(m, key=str)
        if key not in _SUMMARY_KEYS
        for name, value in flatten_metrics(str(key), m[key])
    ]
    if others:
        out += ["", "### Other metrics", ""]
        out += _table(("Metric", "Value"), others, ("---", "---:"))

    config = _sub(metrics, "config")
    if config:
        out += ["", "### Configuration", ""]
        out += _table(
            ("Setting", "Value"),
            [(name, _generic(value)) for name, value in flatten_metrics("", config)],
            ("---", "---:"),
        )

    out += ["", "## Plots", ""]
    for name in plot_files:
        out += [
            f"### {PLOT_FILES.get(name, name)}",
            "",
            f"![{PLOT_FILES.get(name, name)}]({name})",
            "",
        ]
    out += [
        "## How to read this",
        "",
        "Uptime and availability count the ticks in which a flow was active: uptime asks whether "
        "each Type-I flow had a path and the one-time-pad key it needed; availability also asks "
        "for the keys of the class's security mode and its latency target (main paper, Table 1). "
        "The key buffer plot shows the key bits waiting in all QKD link buffers and in the "
        "end-to-end pools; a pool that drains to zero is where sessions lose their key. The "
        "Type-I plot shows the share of Type-I flows that had key in each tick and the running "
        "uptime (ticks weighed equally; the table weighs flow-ticks). The battery plot shows the "
        "mean and the lowest satellite state of charge against the reserve. Per-bit energy and "
        "carbon divide the whole run's totals by the bits delivered. n/a marks a quantity this "
        "run did not measure (or one without a denominator, such as a class with no flows). "
        "The per-tick numbers behind the plots are in `timeseries.csv` (floats in shortest "
        "round-trip form, `nan` where undefined).",
        "",
        "The same scenario, seed and code give a byte-identical report.md, timeseries.csv and "
        "metrics.json; `wall_seconds` in metrics.json (the host's run time) is the only field "
        "that differs between identical runs, and it is left out of this report.",
        "",
    ]
    return "\n".join(out)


# --- the entry point ---------------------------------------------------------------------------


def write_outputs(
    out_dir: Path, metrics: Mapping[str, Any], records: Sequence[TickRecord]
) -> list[Path]:
    """Write ``timeseries.csv``, the PNG plots and ``report.md`` into ``out_dir`` (created if
    missing), each atomically; returns the paths written, in that order. ``metrics`` is the
    metrics.json dict (read only), ``records`` the run's :class:`twin.engine.TickRecord` list.

    Raises ValueError if ``out_dir`` exists and is not a directory, or a record holds a value of
    the wrong kind (a float in an integer column, an unknown traffic class)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} exists and is not a directory; pick another")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    path = out_dir / CSV_FILE
    with _atomic_open(path, binary=False) as fh:
        _write_csv(fh, records)
    written.append(path)

    for name, save in _draw_plots(metrics, records).items():
        path = out_dir / name
        with _atomic_open(path, binary=True) as fh:
            save(fh)
        written.append(path)

    path = out_dir / REPORT_FILE
    with _atomic_open(path, binary=False) as fh:
        fh.write(render_report(metrics, tuple(PLOT_FILES)))
    written.append(path)

    _fsync_dir(out_dir)
    return written
