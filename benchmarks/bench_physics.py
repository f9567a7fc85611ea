"""Benchmark: one environment step of the 1,584-satellite shell against 100 ground sites.

The step is what the twin does every tick before any network logic: propagate the
Walker-Delta 53:1584/72/1 shell at 550 km (SGP4, TEME -> Earth-fixed), find the elevation and
range of all 158,400 (site, satellite) pairs, and budget every pair above 20 deg (loss,
transmittance, QBER, decoy-state BB84 key rate).

It is reported as a ratio to the bare kernels of the same step, timed in the same run on the
same instants: one ``SatrecArray.sgp4`` call for the 1,584 satellites plus one matrix product
``up @ r`` for the elevations (the issue's definition; ~1-1.5 ms on the 2-core dev machine).
Target: at most 3x. Run with ``qntwin bench physics`` (or ``python benchmarks/bench_physics.py``).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

import numpy as np

from twin.physics.geometry import SiteGeometry
from twin.physics.link_table import LinkBudgetTable
from twin.physics.orbits import (
    ConstellationPropagator,
    jd_fr_add_seconds,
    jd_fr_from_datetime,
    walker_delta,
)
from twin.physics.presets import get_preset
from twin.units import DEG, KM

N_SITES = 100
MIN_ELEVATION_RAD = 20 * DEG
EPOCH = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)
TARGET_RATIO = 3.0


def _sites(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """100 seeded sites between 60 S and 60 N, 0-2.5 km altitude (where OGS and factories are)."""
    rng = np.random.default_rng(seed)
    lat = np.arcsin(rng.uniform(np.sin(-60 * DEG), np.sin(60 * DEG), N_SITES))
    lon = rng.uniform(-np.pi, np.pi, N_SITES)
    alt = np.round(rng.uniform(0.0, 2_500.0, N_SITES), -2)  # 100 m classes share budget tables
    return lat, lon, alt


def run(repeat: int = 200, seed: int = 0) -> dict:
    """Time ``repeat`` steps (one simulated second apart); return medians and the ratio."""
    if repeat < 10:
        raise ValueError(f"repeat must be >= 10 for stable medians, got {repeat}")
    shell = walker_delta(53 * DEG, 1584, 72, 1, 550 * KM, EPOCH)
    propagator = ConstellationPropagator(shell.satellites)
    bare_array = propagator.satrec_array  # the very SatrecArray the full path uses
    lat, lon, alt = _sites(seed)
    sites = SiteGeometry(lat, lon, alt)
    bare_up = np.ascontiguousarray(sites.up)  # (S, 3)
    table = LinkBudgetTable(
        get_preset("starlink-like-550km-1550"), alt, min_elevation_rad=MIN_ELEVATION_RAD
    )
    jd0, fr0 = jd_fr_from_datetime(EPOCH)
    jd_buf, fr_buf = np.empty(1), np.empty(1)

    bare_s, full_s, prop_s, vis_s, budget_s, pairs = [], [], [], [], [], []
    for k in range(repeat + 5):  # the first 5 warm caches and buffers, untimed
        jd, fr = (float(x) for x in jd_fr_add_seconds(jd0, fr0, float(k)))

        t0 = time.perf_counter()
        jd_buf[0], fr_buf[0] = jd, fr
        _, r_km, _ = bare_array.sgp4(jd_buf, fr_buf)
        bare_up @ r_km[:, 0, :].T
        t1 = time.perf_counter()

        pos = propagator.positions_ecef_m(jd, fr)
        t2 = time.perf_counter()
        vis = sites.visible_pairs(pos, MIN_ELEVATION_RAD)
        t3 = time.perf_counter()
        budgets = table.evaluate(vis.site_index, vis.elevation_rad, vis.slant_range_m)
        t4 = time.perf_counter()
        if k >= 5:
            bare_s.append(t1 - t0)
            full_s.append(t4 - t1)
            prop_s.append(t2 - t1)
            vis_s.append(t3 - t2)
            budget_s.append(t4 - t3)
            pairs.append(vis.site_index.size)
    assert np.all(np.isfinite(budgets.skr_bps))

    bare_ms = 1e3 * float(np.median(bare_s))
    full_ms = 1e3 * float(np.median(full_s))
    return {
        "benchmark": "physics-step",
        "satellites": propagator.n_satellites,
        "sites": N_SITES,
        "min_elevation_deg": MIN_ELEVATION_RAD / DEG,
        "visible_pairs_mean": float(np.mean(pairs)),
        "repeat": repeat,
        "bare_kernels_ms": bare_ms,
        "full_step_ms": full_ms,
        "propagation_ms": 1e3 * float(np.median(prop_s)),
        "visibility_ms": 1e3 * float(np.median(vis_s)),
        "link_budgets_ms": 1e3 * float(np.median(budget_s)),
        "ratio": full_ms / bare_ms,
        "target_ratio": TARGET_RATIO,
        "meets_target": full_ms / bare_ms <= TARGET_RATIO,
    }


def format_report(result: dict) -> str:
    r = result
    return "\n".join(
        [
            f"physics step: {r['satellites']} satellites x {r['sites']} sites, "
            f"{r['visible_pairs_mean']:.0f} pairs above {r['min_elevation_deg']:g} deg "
            f"(median of {r['repeat']} steps)",
            f"  bare kernels (SatrecArray step + up @ r)  {r['bare_kernels_ms']:7.3f} ms",
            f"  full step                                 {r['full_step_ms']:7.3f} ms",
            f"    propagation (SGP4 + TEME->ECEF)         {r['propagation_ms']:7.3f} ms",
            f"    elevation/range of all pairs, mask      {r['visibility_ms']:7.3f} ms",
            f"    link budgets of visible pairs           {r['link_budgets_ms']:7.3f} ms",
            f"  ratio full / bare                         {r['ratio']:7.2f}x "
            f"(target <= {r['target_ratio']:g}x: {'met' if r['meets_target'] else 'NOT met'})",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.repeat)
    print(json.dumps(result) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
