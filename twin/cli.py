"""The ``qntwin`` command line.

Every user mistake (a bad flag value, a bad scenario file, an unknown preset) ends in one line on
stderr that names the value and the fix, and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

EXIT_USAGE = 2


class CliError(ValueError):
    """A mistake in what the user asked for; the message is shown as is."""


def _positive_floats_km(text: str) -> list[float]:
    """Parse ``--range-km 600,800,1000`` into floats, rejecting non-positive values."""
    values = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers in km, got {item!r} (e.g. 600,800,1200)"
            ) from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"ranges must be positive km, got {value:g}")
        values.append(value)
    return values


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
    values = _positive_floats_km(text)
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
    if not args.weather_loss_db >= 0:
        raise CliError(f"--weather-loss-db must be >= 0 (a loss), got {args.weather_loss_db:g}")
    link = _link_with_overrides(args)
    geometry = {}
    if args.range_km is not None:
        geometry["range_m"] = _scalar_or_array(args.range_km, KM)
    elif args.elevation_deg is not None:
        geometry["elevation_rad"] = _scalar_or_array(args.elevation_deg, DEG)
    budget = compute_link_budget(link, weather_loss_db=args.weather_loss_db, **geometry)

    if args.json:
        print(json.dumps(budget.to_json_dict(), allow_nan=False, default=_json_default))
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


def _scalar_or_array(values: list[float], unit: float):
    import numpy as np

    return values[0] * unit if len(values) == 1 else np.asarray(values) * unit


def _json_default(value):
    # to_json_dict() leaves +inf (e.g. r0 of a vacuum link) as a float; JSON has no infinity.
    raise TypeError(f"not JSON serializable: {value!r}")


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
    spec = importlib.util.spec_from_file_location(f"qntwin_bench_{args.suite}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run(repeat=args.repeat)
    print(json.dumps(result) if args.json else module.format_report(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qntwin",
        description="Digital twin of quantum-enabled non-terrestrial industrial networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    p = sub.add_parser("bench", help="run a performance benchmark (from a source checkout)")
    p.add_argument("suite", choices=["physics"], help="which benchmark to run")
    p.add_argument("--repeat", type=int, default=200, help="timed repetitions (default 200)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError, FileNotFoundError) as error:
        # User mistakes carry a message written for the user (scenario errors name the file,
        # the field, the value and what is allowed); a traceback would only hide it.
        print(f"qntwin {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["main", "build_parser", "CliError"]
