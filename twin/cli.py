"""The ``qntwin`` command line.

Every user mistake (a bad flag value, a bad scenario file, an unknown preset) ends in one line on
stderr that names the value and the fix, and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped

# Lowest elevation ``link-budget`` accepts for a link with a ground end. The turbulence and
# slant-path integrals use the flat-Earth sec(zenith) geometry of Andrews & Phillips (2005)
# ch. 12: through a 10 km-high troposphere it overstates the path by ~2 % at 10 deg, ~10 % at
# 5 deg (~18 % in the Rytov variance, which goes as sec^(11/6)) and without bound towards the
# horizon (at 0.0001 deg it gave a Rytov variance of 5e9 and 64 dB of turbulence loss).
MIN_ELEVATION_DEG = 5.0


class CliError(ValueError):
    """A mistake in what the user asked for; the message is shown as is."""


def _positive_floats(text: str, what: str, unit: str, example: str) -> list[float]:
    """Parse ``600,800,1000`` into floats, rejecting non-numbers, non-finite and values <= 0."""
    values = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers in {unit}, got {item!r} (e.g. {example})"
            ) from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(
                f"{what} must be positive finite {unit}, got {value:g} (e.g. {example})"
            )
        values.append(value)
    return values


def _positive_floats_km(text: str) -> list[float]:
    """Parse ``--range-km 600,800,1000`` into floats, rejecting non-positive values."""
    return _positive_floats(text, "ranges", "km", "600,800,1200")


# --- scenarios / validate ------------------------------------------------------------------


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from twin.scenarios import list_scenarios

    rows = list_scenarios()
    if args.json:
        print(json.dumps([{"name": n, "description": d, "path": str(p)} for n, d, p in rows]))
        return 0
    width = max((len(n) for n, _, _ in rows), default=4)
    for name, description, _ in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from twin.scenarios import load_scenario

    for path in args.files:
        scenario = load_scenario(path)
        print(f"{path}: ok ({scenario.summary()})")
    return 0


def _cmd_intent(args: argparse.Namespace) -> int:
    """The SDQN orchestrator: an intent's policy, and its traffic entry where it gives a rate."""
    import yaml

    from twin.control.orchestrator import compile_intent
    from twin.scenarios import load_scenario

    policy = compile_intent(args.intent, load_scenario(args.scenario))
    entry = policy.traffic_entry() if policy.rate_bps is not None else None
    if args.json:
        fields = dataclasses.asdict(policy)
        fields["traffic_class"] = policy.traffic_class.value
        fields["forbid_transit"] = list(policy.forbid_transit)
        print(json.dumps({"policy": fields, "traffic_entry": entry}, indent=2))
        return 0
    print(f"policy {policy.name}: {policy.src} -> {policy.dst}")
    print(f"  traffic class   {policy.traffic_class.value} (security mode {policy.security_mode})")
    never = ", ".join(policy.forbid_transit) or "none"
    print(f"  no transit via  {never}")
    if entry is None:
        print("  (no rate given: add ', at RATE' for the scenario's traffic entry)")
    else:
        print("traffic entry (add under traffic.flows):")
        print(yaml.safe_dump([entry], sort_keys=False).rstrip())
    return 0


# --- compare -------------------------------------------------------------------------------


def _cmd_compare(args: argparse.Namespace) -> int:
    """Every controller on the same seeds; compare.json, a table, plots, report.md."""
    from pathlib import Path

    from twin.compare import (
        HEADLINE,
        parse_controllers,
        run_comparison,
        summarize,
        write_comparison,
    )
    from twin.control.baselines import CONTROLLERS, POLICY_CONTROLLERS
    from twin.engine import Engine
    from twin.scenarios import load_scenario

    _check_runtime_flags(args)
    if not 1 <= args.seeds <= 100:
        raise CliError(f"--seeds must be a whole number within [1, 100], got {args.seeds}")
    if args.hours is not None and not (args.hours > 0 and args.hours < 24 * 366):
        raise CliError(f"--hours must be within (0, 8784], got {args.hours:g}")
    try:
        controllers = parse_controllers(args.controllers, list(CONTROLLERS))
    except ValueError as err:
        raise CliError(str(err)) from None
    policy = _policy(args, [name for name, _ in controllers])
    scenario = load_scenario(args.scenario)
    seeds = [scenario.seed + i for i in range(args.seeds)]

    def policy_of(name: str):
        return policy if name in POLICY_CONTROLLERS else None

    duration_s = None if args.hours is None else args.hours * 3600.0
    out_dir = Path(args.out or f"results/{scenario.name}-compare")

    def progress(label: str, seed: int) -> None:
        if not args.quiet:
            print(f"running {label}, seed {seed} ...", flush=True)

    if args.runtime == "ray":
        from actors.runtime import RuntimeUnavailable, ray_engine, ray_session

        edge_actors = _edge_actors(args.edge_actors)

        def make(name: str, seed: int, shield: bool):
            return ray_engine(
                scenario, placement_mode=args.placement or "auto", hosts=args.hosts,
                controller=name, seed=seed, shield=shield or None, policy=policy_of(name),
                controller_actors=edge_actors != "none", edge_actors=edge_actors,
            )  # fmt: skip

        try:
            with ray_session(args.address):
                runs = run_comparison(controllers, seeds, make, duration_s, progress)
        except RuntimeUnavailable as err:
            raise CliError(str(err)) from None
    else:
        from actors.forked import forked_controllers

        def make(name: str, seed: int, shield: bool):
            return Engine(
                scenario, controller=name, seed=seed, shield=shield or None,
                policy=policy_of(name), controllers=forked_controllers,
            )  # fmt: skip

        runs = run_comparison(controllers, seeds, make, duration_s, progress)
    written = write_comparison(out_dir, runs)
    summary = summarize(runs)
    names = list(summary["controllers"])
    label_width = max(len(label) for _, label, _ in HEADLINE)
    print(f"{summary['scenario']}, {summary['sim_seconds']:g} s, seeds {seeds}:")
    print(" " * (label_width + 2) + "".join(f"{n:>20}" for n in names))
    for key, label, _ in HEADLINE:
        cells = []
        for n in names:
            entry = summary["controllers"][n]["metrics"].get(key)
            cells.append("n/a" if entry is None else f"{entry['mean']:.4g}")
        print(f"  {label:<{label_width}}" + "".join(f"{c:>20}" for c in cells))
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


# --- view ----------------------------------------------------------------------------------


def _run_until(args: argparse.Namespace, controller: str, shield: bool | None = None):
    """``args.scenario`` run on the local engine to ``args.at`` seconds, in whole ticks (what
    ``view`` and ``plan`` show is of the last closed tick's end): (engine, seconds run)."""
    from twin.engine import Engine
    from twin.scenarios import load_scenario
    from twin.units import NS_PER_S

    scenario = load_scenario(args.scenario)
    duration_s = scenario.time.duration_s
    if not (0 <= args.at <= duration_s):
        raise CliError(
            f"--at must be within [0, {duration_s:g}] s (the scenario's duration), got {args.at:g}"
        )
    engine = Engine(scenario, controller=controller, shield=shield)
    at_s = (round(args.at * NS_PER_S) // engine.dt_ns) * engine.dt_ns / NS_PER_S
    try:
        engine.run(duration_s=at_s)
    finally:
        engine.close()
    return engine, at_s


def _write_or_print(text: str, out: str | None, what: str) -> None:
    """``text`` to standard output, or written to the file ``out`` (``what``: said of it)."""
    from pathlib import Path

    from twin.report import atomic_write_text

    if out is None:
        sys.stdout.write(text)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    print(f"wrote {path} ({what})")


def _cmd_view(args: argparse.Namespace) -> int:
    """Run the local engine to --at seconds and write the SDQN controller's global view."""
    from twin.control.global_view import global_view, view_json

    engine, at_s = _run_until(args, args.controller, args.shield or None)
    _write_or_print(view_json(global_view(engine)), args.out, f"t = {at_s:g} s")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    """Run the local engine to --at seconds and write the MPC tier's plan in effect then."""
    from twin.control.flight_plan import plan_document
    from twin.units import NS_PER_S

    engine, at_s = _run_until(args, args.controller)
    document = plan_document(engine)
    if document is None:
        period_s = engine.controller.plan_every_ticks * engine.dt_ns / NS_PER_S
        if at_s < period_s:
            raise CliError(
                f"no plan in effect at {at_s:g} s: {args.controller}'s first plan takes effect "
                f"{period_s:g} s in; give --at {period_s:g} or later"
            )
        raise CliError(f"{args.scenario} has no satellites: the MPC tier has nothing to plan")
    start = engine.scenario.time.start_utc
    document = {"t_utc": (start + timedelta(seconds=at_s)).isoformat()} | document
    stations = len((document["contact_plan"] or {}).get("stations", []))
    _write_or_print(
        json.dumps(document, indent=1) + "\n",
        args.out,
        f"t = {at_s:g} s: {len(document['flight_plans'])} satellites' flight plans, "
        f"{stations} stations' contacts",
    )
    return 0


# --- run -----------------------------------------------------------------------------------


def _check_runtime_flags(args: argparse.Namespace) -> None:
    """The Ray runtime's flags are refused under --runtime local; --hosts must be >= 1."""
    if args.runtime == "local":
        for flag, value in (("--placement", args.placement), ("--hosts", args.hosts),
                            ("--address", args.address),
                            ("--edge-actors", args.edge_actors),
                            ("--bus-auth", getattr(args, "bus_auth", None)),
                            ("--bus-keys", getattr(args, "bus_keys", None))):  # fmt: skip
            if value is not None:
                raise CliError(f"{flag} applies to --runtime ray only; drop it or add that")
    if args.hosts is not None and args.hosts < 1:
        raise CliError(f"--hosts must be a whole number >= 1, got {args.hosts}")


POLICY_HELP = (
    "the edge policy drl-only and ai-sdqn route with: a policy.pt that `qntwin train` wrote "
    "(default: the one shipped in twin/control/data)"
)


def _policy(args: argparse.Namespace, controllers: list[str]):
    """The edge policy of ``--policy`` (None without the flag); CliError for a file that is no
    policy, or when none of ``controllers`` routes with one."""
    if args.policy is None:
        return None
    from twin.control.baselines import POLICY_CONTROLLERS
    from twin.control.drl import EdgePolicy

    if not set(controllers) & set(POLICY_CONTROLLERS):
        raise CliError(
            f"--policy applies to {' and '.join(POLICY_CONTROLLERS)}, which route with an edge "
            f"policy, not to {', '.join(controllers)}: drop it or run one of them"
        )
    try:
        return EdgePolicy.load(args.policy)
    except ValueError as err:
        raise CliError(f"--policy: {err}") from None


def _cmd_run(args: argparse.Namespace) -> int:

    from twin.engine import Engine
    from twin.scenarios import load_scenario

    _check_runtime_flags(args)
    edge_actors = _edge_actors(args.edge_actors)
    if args.bus_keys is not None and args.bus_auth == "none":
        raise CliError("--bus-keys gives CurveZMQ keys: drop it or use --bus-auth curve")
    if args.hours is not None and not (args.hours > 0 and args.hours < 24 * 366):
        raise CliError(f"--hours must be within (0, 8784], got {args.hours:g}")
    if args.seed is not None and args.seed < 0:
        raise CliError(f"--seed must be a non-negative integer, got {args.seed}")
    policy = _policy(args, [args.controller])
    scenario = load_scenario(args.scenario)
    if args.runtime == "ray":
        # the runtime lives in actors/ (which builds on twin); reached only from here, lazily
        from actors.bus import BusKeys
        from actors.runtime import RuntimeUnavailable, ray_engine, ray_session

        bus_kwargs = {}
        if args.bus_auth == "curve" or args.bus_keys is not None:
            try:
                keys = BusKeys.load(args.bus_keys) if args.bus_keys else BusKeys.generate()
            except ValueError as err:
                raise CliError(str(err)) from None
            bus_kwargs["curve"] = keys
        try:
            with ray_session(args.address):
                engine = ray_engine(
                    scenario,
                    placement_mode=args.placement or "auto",
                    hosts=args.hosts,
                    controller=args.controller,
                    seed=args.seed,
                    shield=args.shield or None,
                    policy=policy,
                    controller_actors=edge_actors != "none",
                    edge_actors=edge_actors,
                    bus_kwargs=bus_kwargs,
                )
                try:
                    return _run_engine(args, scenario, engine)
                finally:
                    engine.close()
        except RuntimeUnavailable as err:
            raise CliError(str(err)) from None
    from actors.forked import forked_controllers

    engine = Engine(
        scenario, controller=args.controller, seed=args.seed, shield=args.shield or None,
        policy=policy, controllers=forked_controllers,
    )  # fmt: skip
    try:
        return _run_engine(args, scenario, engine)
    finally:
        engine.close()  # (the processes the controller plans and decides on)


def _cmd_bus_keys(args: argparse.Namespace) -> int:
    from pathlib import Path

    from actors.bus import BusKeys

    directory = Path(args.dir)
    if directory.exists() and any(directory.glob("*.key*")):
        raise CliError(f"{directory} already holds keys; give an empty or new directory")
    try:
        written = BusKeys.create(directory)
    except OSError as err:
        raise CliError(f"cannot write keys into {directory}: {err.strerror or err}") from None
    print(f"wrote {', '.join(str(p) for p in written)}; keep the .key_secret files secret")
    return 0


def _edge_actors(value: str | None) -> str | int:
    """--edge-actors: 'auto' (also when not given), 'per-site', 'none', or a number K >= 1."""
    if value is None:
        return "auto"
    if value in ("auto", "per-site", "none"):
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise CliError(
        f"--edge-actors must be auto, per-site, none or a whole number >= 1, got {value!r}"
    )


def _run_engine(args: argparse.Namespace, scenario, engine) -> int:
    """Run ``engine`` with a progress bar; write and summarise the outputs."""
    from pathlib import Path

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from twin.metrics import compute_metrics

    duration_s = None if args.hours is None else args.hours * 3600.0
    out_dir = Path(args.out or f"results/{scenario.name}-{engine.controller_label}-{engine.seed}")
    with Progress(
        TextColumn(f"{scenario.name} / {engine.controller_label}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} ticks"),
        TimeRemainingColumn(),
        transient=True,
        disable=args.quiet,
    ) as progress:
        task = progress.add_task("run", total=None)

        def report(done: int, total: int) -> None:
            if done == 1 or done % 50 == 0 or done == total:
                progress.update(task, completed=done, total=total)

        result = engine.run(duration_s=duration_s, progress=report)
    metrics = compute_metrics(result, engine)
    written = _write_run_outputs(out_dir, metrics, result.records)
    _print_summary(metrics)
    if args.runtime == "ray":  # where it ran is not a result: metrics.json does not hold it
        from actors.controllers import placement_summary

        nodes, controllers = engine.nodes, engine.controller
        restarts = nodes.restarts + getattr(controllers, "restarts", 0)
        where = (placement_summary(controllers) if hasattr(controllers, "edges")
                 else "the controller in the driver")  # fmt: skip
        print(f"runtime: ray, {nodes.n_hosts} host(s), {where}, survived {restarts} restart(s)")
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _write_run_outputs(out_dir, metrics, records) -> list:
    from twin.metrics import metrics_json
    from twin.report import atomic_write_text, write_outputs

    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.json"
    atomic_write_text(metrics_path, metrics_json(metrics))
    return [metrics_path, *write_outputs(out_dir, metrics, records)]


def _print_summary(metrics: dict) -> None:
    m = metrics["metrics"]

    def fmt(value, unit="", digits=3):
        return "n/a" if value is None else f"{value:.{digits}g}{unit}"

    rows = [
        ("secure session uptime (Type-I)", fmt(m["secure_session_uptime_pct"], " %", 5)),
        *(
            (f"availability {c.replace('_', '-')}", fmt(v, " %", 5))
            for c, v in m["availability_pct"].items()
        ),
        *((f"latency {c.replace('_', '-')}", fmt(v, " ms")) for c, v in m["latency_ms"].items()),
        ("handovers", str(m["handovers"])),
        ("key utilization", fmt(m["key_utilization_pct"], " %")),
        (
            "key generated / consumed [bit]",
            f"{m['keys']['generated_bits']:,} / {m['keys']['consumed_bits']:,}",
        ),
        ("throughput", fmt(m["throughput_bps"], " bit/s")),
        ("energy per bit", fmt(m["energy_j_per_bit"], " J")),
        ("carbon per bit", fmt(m["carbon_g_per_bit"], " g")),
        ("shield violations (audit)", str(m["shield_violations"])),
        ("objective J (eq. 4)", fmt(m["objective"] and m["objective"]["J"], "", 5)),
    ]
    width = max(len(label) for label, _ in rows)
    print(
        f"{metrics['scenario']} with {metrics['controller']}, seed {metrics['seed']}: "
        f"{metrics['sim_seconds']:g} s simulated in {metrics['wall_seconds']:.1f} s"
    )
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


# --- link-budget ---------------------------------------------------------------------------

# The breakdown printed by ``qntwin link-budget``: (label, LinkBudget field, scale, format).
# Losses are positive dB; the fade margin is shown beside the total, not inside it.
_BUDGET_ROWS = (
    ("slant range [km]", "range_m", 1e-3, "{:.0f}"),
    ("elevation [deg]", "elevation_rad", 180 / 3.141592653589793, "{:.1f}"),
    ("geometric (diffraction + capture) [dB]", "geometric_loss_db", 1.0, "{:.2f}"),
    ("atmosphere (extinction + weather) [dB]", "atmospheric_loss_db", 1.0, "{:.2f}"),
    ("turbulence, mean [dB]", "turbulence_loss_db", 1.0, "{:.2f}"),
    ("pointing [dB]", "pointing_loss_db", 1.0, "{:.2f}"),
    ("transmitter optics [dB]", "transmitter_loss_db", 1.0, "{:.2f}"),
    ("receiver (optics + detector) [dB]", "receiver_loss_db", 1.0, "{:.2f}"),
    ("total loss [dB]", "total_loss_db", 1.0, "{:.2f}"),
    ("turbulence fade margin [dB]", "fade_margin_db", 1.0, "{:.2f}"),
    ("Rytov variance", "rytov_variance", 1.0, "{:.3g}"),
    ("Fried parameter r0 [cm]", "fried_parameter_m", 100.0, "{:.2f}"),
    ("transmittance", "transmittance", 1.0, "{:.3e}"),
    ("QBER [%]", "qber", 100.0, "{:.2f}"),
    ("sifted key rate [bit/s]", "sifted_key_rate_bps", 1.0, "{:,.0f}"),
    ("secret key rate [bit/s]", "skr_bps", 1.0, "{:,.0f}"),
)


def _add_link_budget_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset", default="micius-2017", help="link preset (default micius-2017; see --list)"
    )
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--range-km",
        type=_positive_floats_km,
        help="slant range(s) in km, comma-separated (e.g. 645,800,1000,1200)",
    )
    where.add_argument(
        "--elevation-deg",
        type=_elevations_deg,
        help="elevation(s) of the upper end in degrees, comma-separated (0 < e <= 90)",
    )
    p.add_argument(
        "--weather-loss-db",
        type=float,
        default=0.0,
        help="extra loss from cloud, fog or rain along the path, dB (default 0)",
    )
    p.add_argument("--wavelength-nm", type=float, help="override the wavelength, nm")
    p.add_argument("--tx-aperture-m", type=float, help="override the transmit aperture, m")
    p.add_argument("--rx-aperture-m", type=float, help="override the receive aperture, m")
    p.add_argument(
        "--divergence-urad", type=float, help="override the 1/e^2 half-angle divergence, urad"
    )
    p.add_argument(
        "--detector-efficiency", type=float, help="override the detector efficiency (0..1]"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _elevations_deg(text: str) -> list[float]:
    values = _positive_floats(text, "elevations", "degrees", "20,45,90")
    bad = [v for v in values if v > 90]
    if bad:
        raise argparse.ArgumentTypeError(
            f"elevations must be within (0, 90] degrees, got {bad[0]:g}"
        )
    return values


def _link_with_overrides(args: argparse.Namespace):
    """The preset named by --preset, with the terminal overrides the user gave."""
    import dataclasses

    from twin.physics.presets import get_preset, preset_names
    from twin.units import NM, URAD

    if args.preset not in preset_names():
        raise CliError(
            f"unknown preset {args.preset!r}; known presets: {', '.join(preset_names())}"
        )
    link = get_preset(args.preset)
    if args.rx_aperture_m is not None and 0 < args.rx_aperture_m <= link.rx.obscuration_diameter_m:
        raise CliError(
            f"--rx-aperture-m {args.rx_aperture_m:g} is not larger than the central obscuration "
            f"of {args.preset}'s receiver ({link.rx.obscuration_diameter_m:g} m, its telescope's "
            "secondary mirror); give a larger aperture or another preset"
        )
    both, tx_only, rx_only = {}, {}, {}
    if args.wavelength_nm is not None:
        if not args.wavelength_nm > 0:
            raise CliError(f"--wavelength-nm must be > 0, got {args.wavelength_nm:g}")
        both["wavelength_m"] = args.wavelength_nm * NM
    if args.tx_aperture_m is not None:
        tx_only["aperture_diameter_m"] = args.tx_aperture_m
    if args.rx_aperture_m is not None:
        rx_only["aperture_diameter_m"] = args.rx_aperture_m
    if args.divergence_urad is not None:
        tx_only["divergence_half_angle_rad"] = args.divergence_urad * URAD
    if args.detector_efficiency is not None:
        rx_only["detector_efficiency"] = args.detector_efficiency
    if both or tx_only or rx_only:
        # Terminal validates each value and names it in its error (caught by main()).
        link = dataclasses.replace(
            link,
            name=f"{link.name} (modified)",
            tx=dataclasses.replace(link.tx, **both, **tx_only),
            rx=dataclasses.replace(link.rx, **both, **rx_only),
        )
    return link


def _cmd_link_budget(args: argparse.Namespace) -> int:
    import numpy as np

    from twin.physics.link_budget import compute_link_budget
    from twin.physics.presets import get_preset, preset_names
    from twin.units import DEG, KM

    if args.list:
        for name in preset_names():
            print(f"{name:<20} {get_preset(name).description}")
        return 0
    if not (args.weather_loss_db >= 0 and math.isfinite(args.weather_loss_db)):
        raise CliError(
            f"--weather-loss-db must be a finite loss >= 0 dB, got {args.weather_loss_db:g}"
        )
    link = _link_with_overrides(args)
    geometry = {}
    if args.range_km is not None:
        geometry["range_m"] = _scalar_or_array(args.range_km, KM)
    elif args.elevation_deg is not None:
        if link.kind == "isl":
            raise CliError(
                f"preset {args.preset} is an inter-satellite link, which has no elevation; give "
                f"--range-km (default {link.default_range_m / KM:g} km)"
            )
        geometry["elevation_rad"] = _scalar_or_array(args.elevation_deg, DEG)
    _check_geometry_supported(args, link)
    budget = compute_link_budget(link, weather_loss_db=args.weather_loss_db, **geometry)

    if args.json:
        # to_json_dict() turns NaN and inf (ISL elevation, vacuum r0) into null
        print(json.dumps(budget.to_json_dict(), allow_nan=False))
        return 0
    columns = np.atleast_1d(budget.range_m).size
    print(f"{budget.preset}: {get_preset(args.preset).description}")
    print(f"{budget.link_kind} at {budget.wavelength_m * 1e9:.1f} nm")
    label_width = max(len(label) for label, *_ in _BUDGET_ROWS)
    for label, field_name, scale, fmt in _BUDGET_ROWS:
        values = np.atleast_1d(getattr(budget, field_name)) * scale
        cells = [fmt.format(v) if np.isfinite(v) else "-" for v in values.ravel()]
        print(f"{label:<{label_width}}  " + "  ".join(f"{c:>11}" for c in cells[:columns]))
    print(
        f"(fade margin: Gamma-Gamma fade exceeded with probability "
        f"{budget.outage_probability:g}; not included in the total)"
    )
    return 0


def _check_geometry_supported(args: argparse.Namespace, link) -> None:
    """Refuse geometry the budget cannot evaluate, in the user's units (km, degrees).

    Ranges must lie between the altitude difference and the horizon range; on links with a
    ground end, elevations (given, or implied by a range) must be >= MIN_ELEVATION_DEG.
    """
    from twin.physics import geometry
    from twin.physics.fso import LINK_KINDS
    from twin.units import DEG, KM

    if link.kind == "isl":
        return
    has_ground = "ground" in LINK_KINDS[link.kind]
    min_el_deg = MIN_ELEVATION_DEG if has_ground else 0.0
    site = {"site_altitude_m": link.ground_altitude_m}
    if args.elevation_deg is not None:
        low = [e for e in args.elevation_deg if e < min_el_deg]
        if low:
            raise CliError(
                f"--elevation-deg {low[0]:g} is below {min_el_deg:g} deg, where the flat-Earth "
                "turbulence and air-mass model of this budget breaks down towards the horizon; "
                f"give elevations of at least {min_el_deg:g} deg"
            )
        return
    ranges_km = args.range_km if args.range_km is not None else [link.default_range_m / KM]
    lo_km = (link.platform_altitude_m - link.ground_altitude_m) / KM

    def range_km_at(elevation_deg: float) -> float:
        return (
            geometry.slant_range_from_elevation_m(
                elevation_deg * DEG, link.platform_altitude_m, **site
            )
            / KM
        )

    horizon_km, hi_km = range_km_at(0.0), range_km_at(min_el_deg)
    bad = [r for r in ranges_km if not lo_km * (1 - 1e-9) <= r <= hi_km * (1 + 1e-9)]
    if not bad:
        return
    r_km = bad[0]
    if r_km < lo_km:
        why = f"is shorter than the altitude difference of {link.name} ({lo_km:.6g} km)"
    elif r_km > horizon_km:
        why = f"is beyond the horizon range of {link.name} ({horizon_km:.6g} km)"
    else:
        el = geometry.elevation_from_slant_range_rad(r_km * KM, link.platform_altitude_m, **site)
        why = (
            f"puts {link.name}'s upper end at {float(el) / DEG:.4g} deg elevation, below "
            f"{min_el_deg:g} deg, where the flat-Earth turbulence and air-mass model of this "
            "budget breaks down"
        )
    raise CliError(
        f"--range-km {r_km:g} {why}; give ranges within "
        f"[{math.ceil(lo_km * 10) / 10:g}, {math.floor(hi_km * 10) / 10:g}] km"
        + (f" (elevations >= {min_el_deg:g} deg)" if has_ground else "")
        + (" (km, not metres)" if r_km > 1e3 * hi_km else "")
    )


def _scalar_or_array(values: list[float], unit: float):
    import numpy as np

    return values[0] * unit if len(values) == 1 else np.asarray(values) * unit


# --- bench ---------------------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib.util
    from pathlib import Path

    import twin

    # The benchmarks live beside the packages in a source checkout (they are not installed).
    script = Path(twin.__file__).resolve().parents[1] / "benchmarks" / f"bench_{args.suite}.py"
    if not script.is_file():
        raise CliError(
            f"benchmark {script.name} not found at {script.parent}; qntwin bench runs from a "
            "source checkout installed with 'pip install -e .'"
        )
    if args.repeat < 10:
        raise CliError(f"--repeat must be >= 10 for stable medians, got {args.repeat}")
    options = {}
    if args.hours is not None:
        if args.suite != "engine":
            raise CliError("--hours times the engine over simulated hours: use 'bench engine'")
        if not args.hours * 3600 >= 600:
            raise CliError(f"--hours must be >= 0.17 (600 one-second ticks), got {args.hours}")
        options["hours"] = args.hours
    if args.curve_repeat is not None:
        if args.suite != "engine":
            raise CliError("--curve-repeat sizes the engine's satellite curve: use 'bench engine'")
        if args.curve_repeat < 10:
            raise CliError(f"--curve-repeat must be >= 10, got {args.curve_repeat}")
        options["curve_repeat"] = args.curve_repeat
    spec = importlib.util.spec_from_file_location(f"qntwin_bench_{args.suite}", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    result = module.run(repeat=args.repeat, **options)
    print(json.dumps(result) if args.json else module.format_report(result))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.iterations < 1:
        raise CliError(f"--iterations must be a whole number >= 1, got {args.iterations}")
    if not (args.episode_s >= 10 and math.isfinite(args.episode_s)):
        raise CliError(f"--episode-s must be >= 10 simulated seconds, got {args.episode_s:g}")
    if args.steps < 200:
        raise CliError(f"--steps must be >= 200 env steps per iteration, got {args.steps}")
    if args.seed < 0:
        raise CliError(f"--seed must be a non-negative integer, got {args.seed}")
    if not (0 < args.lr <= 1):
        raise CliError(f"--lr must be a learning rate in (0, 1], got {args.lr:g}")
    from twin.control.drl import HEAD_NAMES

    heads = [name.strip() for name in args.heads.split(",") if name.strip()]
    unknown = [name for name in heads if name not in HEAD_NAMES]
    if unknown or not heads:
        raise CliError(
            f"--heads {args.heads!r}: give some of {','.join(HEAD_NAMES)}, comma-separated "
            f"(e.g. --heads relay,data)"
        )
    if set(heads) != set(HEAD_NAMES) and args.init is None:
        raise CliError(
            f"--heads {args.heads}: training some heads keeps the others and the network's "
            "body as they start, so give the policy to start from with --init POLICY"
        )
    from twin.control.rl_env import CONTROLLERS

    if args.controller not in CONTROLLERS:
        raise CliError(
            f"--controller {args.controller}: a policy trains in the loop of "
            f"{' or '.join(CONTROLLERS)}"
        )
    scenarios = [name.strip() for name in args.scenario.split(",") if name.strip()]
    if not scenarios:
        raise CliError(f"give a scenario to train on, got {args.scenario!r}")
    stems = "+".join(Path(name).stem for name in scenarios)
    out = Path(args.out or f"results/{stems}-policy-{args.seed}")
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {str(out)!r} is a file: give a directory")
    from twin.scenarios import load_scenario

    for name in scenarios:  # a bad scenario is refused before RLlib loads (seconds)
        load_scenario(name)

    from twin.control.train import train_policy

    def progress(iteration: int, sampled: float, evaluated: float) -> None:
        print(
            f"iteration {iteration}/{args.iterations}: sampled return {sampled:.1f}, "
            f"evaluated {evaluated:.1f}",
            flush=True,
        )

    init = None
    if args.init is not None:
        from twin.control.drl import EdgePolicy

        try:
            init = EdgePolicy.load(args.init, earlier=True)
        except ValueError as err:
            raise CliError(f"--init: {err}") from None
    result = train_policy(
        scenarios,
        out,
        iterations=args.iterations,
        episode_s=args.episode_s,
        seed=args.seed,
        steps_per_iteration=args.steps,
        lr=args.lr,
        init=init,
        heads=heads,
        controller=args.controller,
        progress=progress,
    )
    print(
        f"kept iteration {result.best_iteration}: return {result.trained_return:.1f} over "
        f"{result.episode_s:g} s{' of each scenario' if len(scenarios) > 1 else ''} "
        f"in {result.controller}'s loop ({'the --init policy' if init else 'untrained'} "
        f"{result.initial_return:.1f}, uniformly random "
        f"{result.random_return:.1f}, always keyed {result.keyed_return:.1f}); "
        f"{result.env_steps} env steps in {result.wall_s:.0f} s"
        + (
            ""
            if set(heads) == set(HEAD_NAMES)
            else f"; trained the {', '.join(result.heads)} heads, the rest as --init has them"
        )
    )
    print(
        f"policy: {result.policy_path}; RLlib checkpoint: {result.checkpoint_path}\n"
        f"(drl-only and ai-sdqn route with it given --policy {result.policy_path}; without, "
        "with the policy shipped in twin/control/data/edge_policy.pt)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qntwin",
        description="Digital twin of quantum-enabled non-terrestrial industrial networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run a scenario with a controller; write metrics, time series, plots and a report",
    )
    p.add_argument("scenario", help="packaged scenario name or path to a YAML file")
    p.add_argument(
        "--controller",
        default="static-sp",
        help="static-sp (default), dijkstra-distance, key-aware, mpc-only, drl-only or ai-sdqn",
    )
    p.add_argument("--hours", type=float, help="simulated hours (default: the scenario's duration)")
    p.add_argument("--policy", metavar="FILE", help=POLICY_HELP)
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's seed)")
    p.add_argument("--out", help="output directory (default results/SCENARIO-CONTROLLER-SEED)")
    p.add_argument(
        "--runtime",
        default="ray",
        choices=("local", "ray"),
        help="ray (the default: node and controller actors on Ray, started here unless "
        "--address names a cluster) or local (one process: the fastest on one machine)",
    )
    p.add_argument(
        "--placement",
        choices=("per-node", "sharded", "auto"),
        help="ray: one host per node, K hosts by orbital plane / ground region, or auto (default)",
    )
    p.add_argument("--hosts", type=int, metavar="K", help="ray, sharded: number of hosts (2)")
    p.add_argument(
        "--address", help="ray: a running cluster's head (host:port); default: start Ray here"
    )
    p.add_argument(
        "--edge-actors",
        metavar="auto|per-site|K|none",
        help="ray: the controller on one edge actor per edge site (per-site), on K edge "
        "actors, on as many as the CPUs allow (auto, the default: one per 2 CPUs), or none "
        "(in the driver: the fastest on one machine)",
    )
    p.add_argument(
        "--bus-auth",
        choices=("none", "curve"),
        help="ray: authenticate and encrypt the bus between hosts with CurveZMQ (keys made "
        "for the run unless --bus-keys gives them); default none",
    )
    p.add_argument(
        "--bus-keys",
        metavar="DIR",
        help="ray: the bus's CurveZMQ keys ('qntwin bus-keys' writes them)",
    )
    p.add_argument(
        "--shield",
        action="store_true",
        help="put the shield (main paper sec. VII-C) between the controller and the network "
        "(default: only the controllers that carry one have it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "compare",
        help="run controllers on the same seeds; compare.json, a table, plots and report.md "
        "beside the paper's claims",
    )
    p.add_argument("scenario", help="packaged scenario name or path to a YAML file")
    p.add_argument(
        "--controllers",
        required=True,
        help="comma-separated controllers, each optionally +shield (e.g. "
        "static-sp,key-aware,mpc-only+shield,ai-sdqn)",
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds per controller (default 1)")
    p.add_argument("--hours", type=float, help="simulated hours (default: the scenario's duration)")
    p.add_argument("--out", help="output directory (default results/SCENARIO-compare)")
    p.add_argument("--policy", metavar="FILE", help=POLICY_HELP)
    p.add_argument(
        "--runtime",
        choices=["local", "ray"],
        default="local",
        help="local (the default here: one process per run) or ray, as for run",
    )
    p.add_argument("--placement", choices=["per-node", "sharded", "auto"], help="ray: as run")
    p.add_argument("--hosts", type=int, metavar="K", help="ray, sharded: number of hosts")
    p.add_argument("--address", help="ray: a running cluster's head (host:port)")
    p.add_argument("--edge-actors", metavar="auto|per-site|K|none", help="ray: as run")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "view",
        help="the SDQN global view at a time of a run, as RFC 8345 JSON with the paper's "
        "ietf-sdqn-ntn attributes (Table 2)",
    )
    p.add_argument("scenario", help="packaged scenario name or path to a YAML file")
    p.add_argument(
        "--at", type=float, default=0.0, help="simulated seconds to run first (default 0)"
    )
    p.add_argument("--controller", default="static-sp", help="the controller of the run")
    p.add_argument("--shield", action="store_true", help="the shield in the run (see run)")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(func=_cmd_view)

    p = sub.add_parser(
        "plan",
        help="the MPC tier's plan in effect at a time of a run, as JSON: a flight plan per "
        "satellite, the contact plan per OGS, the handover schedule, the bulk deferrals",
    )
    p.add_argument("scenario", help="packaged scenario name or path to a YAML file")
    p.add_argument(
        "--at",
        type=float,
        default=60.0,
        help="simulated seconds to run first (default 60: the first plan takes effect then)",
    )
    p.add_argument(
        "--controller",
        default="ai-sdqn",
        choices=["ai-sdqn", "mpc-only"],
        help="the planning controller of the run (default ai-sdqn; mpc-only makes no contact plan)",
    )
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser(
        "intent",
        help="the SDQN orchestrator: an industrial intent as the network policy it asks for "
        "(traffic class, security mode, residency) and the scenario traffic entry",
        description="Turn an intent such as 'connect munich-automotive to toulouse-aerospace "
        "with maximal security, EU only, at 64 kbit/s' into a network policy over the "
        "scenario's sites (twin/control/orchestrator.py lists the clauses).",
    )
    p.add_argument("scenario", help="packaged scenario name or path to a YAML file")
    p.add_argument("intent", help="'connect SRC to DST[ with CLAUSE][, CLAUSE]...' (quoted)")
    p.add_argument("--json", action="store_true", help="print the policy as JSON")
    p.set_defaults(func=_cmd_intent)

    p = sub.add_parser(
        "bus-keys", help="write a CurveZMQ key set for the Ray runtime's bus (--bus-keys DIR)"
    )
    p.add_argument("dir", help="directory to write server and client certificates into")
    p.set_defaults(func=_cmd_bus_keys)

    p = sub.add_parser("scenarios", help="list the packaged scenario files")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=_cmd_scenarios)

    p = sub.add_parser("validate", help="check scenario YAML files against the schema")
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario file (or packaged name)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "link-budget",
        help="loss breakdown, transmittance, QBER and key rate of one optical link",
        description=(
            "Loss breakdown (geometric, atmosphere, turbulence, pointing, receiver), "
            "transmittance, QBER and decoy-state BB84 secret key rate of one link, "
            "from a preset (--preset) with optional overrides."
        ),
    )
    _add_link_budget_arguments(p)
    p.set_defaults(func=_cmd_link_budget)

    p = sub.add_parser(
        "train",
        help="train the DRL edge policy (drl-only, ai-sdqn) with RLlib's PPO on a scenario",
    )
    p.add_argument(
        "scenario",
        help="packaged scenario name or path to a YAML file; several, comma-separated, take "
        "turns episode by episode and every return is their sum",
    )
    p.add_argument("--iterations", type=int, default=20, help="PPO iterations (default 20)")
    p.add_argument(
        "--episode-s", type=float, default=900.0, help="simulated seconds per episode (900)"
    )
    p.add_argument("--steps", type=int, default=2000, help="env steps per iteration (2000)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--lr", type=float, default=1e-3, help="PPO's learning rate (default 1e-3)")
    p.add_argument("--out", help="output directory (default results/SCENARIO-policy-SEED)")
    p.add_argument(
        "--init",
        metavar="POLICY",
        help="start from this policy.pt (fine-tune it; a policy of an earlier layout gets the "
        "heads it lacks at their first level: terminals on, key relayed over the path) instead "
        "of a fresh network",
    )
    p.add_argument(
        "--heads",
        default="path,laser,relay,data",
        help="the action heads PPO trains, comma-separated (default all: path,laser,relay,"
        "data); with fewer, the network's body and the other heads stay as --init has them "
        "(e.g. --heads relay,data learns the key relay and data split over a policy's paths)",
    )
    p.add_argument(
        "--controller",
        default="drl-only",
        help="the loop the policy routes in while it trains: drl-only (default: its actions "
        "alone) or ai-sdqn (the MPC tier's plans, routing around what they avoid, the shield: "
        "as ai-sdqn deploys it)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("bench", help="run a performance benchmark (from a source checkout)")
    p.add_argument(
        "suite",
        choices=["physics", "engine", "bus", "runtime", "mpc", "drl"],
        help="which benchmark to run",
    )
    p.add_argument("--repeat", type=int, default=200, help="timed repetitions (default 200)")
    p.add_argument(
        "--hours",
        type=float,
        help="engine: time mega over H simulated hours from its start instead (24: a whole day)",
    )
    p.add_argument(
        "--curve-repeat", type=int, help="engine: timed ticks per point of the satellite curve"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_bench)
    return parser


def _one_blas_thread_per_process() -> None:
    """Pin BLAS/OpenMP to one thread unless the user chose otherwise, before numpy loads.

    The twin parallelizes across processes (Ray workers), and its matrix products are small: a
    threaded OpenBLAS spinning against a busy second core made the (200, 5) @ (5, 1584)
    elevation product take 16 ms instead of ~0.1 ms on the 2-core dev machine.
    """
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


def main(argv: Sequence[str] | None = None) -> int:
    _one_blas_thread_per_process()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError, FileNotFoundError) as error:
        # User mistakes carry a message written for the user (scenario errors name the file,
        # the field, the value and what is allowed); a traceback would only hide it.
        print(f"qntwin {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C: what the command started (Ray, the controller's processes) was stopped as
        # the interrupt unwound it; outputs are written whole or not at all
        print(f"qntwin {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["main", "build_parser", "CliError"]
