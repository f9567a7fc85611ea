"""The Ray runtime against the single-process engine, and per-node placement against a bare barrier.

Issue 4's measures, each a ratio taken in one run:

- ``mega``: wall time of ``Engine.run`` over the first ``--repeat`` one-second ticks, under the
  Ray runtime sharded over 2 and 4 hosts, divided by the local engine's over the same ticks;
  with the controller in the driver (``--edge-actors none``) and on edge actors as
  ``--edge-actors auto`` (the default) places them. Each Ray run follows a local run of the
  same ticks and is divided by it. Aim: at most 1.5x.
- per-node: ticks per second of ``small`` with its shell resized so that G(t) has 10, 25 and
  50 nodes, one host actor per node (the controller in the driver, so only node actors run),
  against a bare barrier over as many trivial Ray actors (every tick, one call to each and a
  wait for all: the ceiling of a runtime that makes a Ray call per actor and tick, as this one
  did before its ticks went to the hosts as commands over the bus; it may now beat it). Aim:
  within 2x of the barrier (issue 4 states it against this barrier).

Host start-up is not timed (the hosts are started before the clock runs). Run with
``qntwin bench runtime`` or ``python benchmarks/bench_runtime.py``; Ray is started for the run.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

PER_NODE_SIZES = (10, 25, 50)
# small's ground sites and HAPS (7 nodes) plus a shell of this many satellites gives the size
PER_NODE_WALKER = {10: "53:3/3/1", 25: "53:18/6/1", 50: "53:43/1/0"}
MEGA_HOSTS = (2, 4)


def _small_with_shell(walker: str):
    """``small`` with its Walker shell replaced (parsed and validated as a file is)."""
    from twin.scenarios.loader import packaged_scenario_path, parse_scenario

    path = packaged_scenario_path("small")
    text = path.read_text(encoding="utf-8")
    text, found = re.subn(r"(?m)^(    walker: ).*$", rf'\g<1>"{walker}"', text)
    if found != 1:
        raise RuntimeError("bench_runtime expects small to hold exactly one walker shell")
    return parse_scenario(text, base_dir=path.parent, label=f"small with {walker}")


def _mega():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_engine import mega_scenario

    return mega_scenario()


def _timed_run(engine, ticks: int) -> float:
    duration_s = ticks * engine.dt_ns / 1e9
    start = time.perf_counter()
    engine.run(duration_s=duration_s)
    return time.perf_counter() - start


def _mega_ratios(ticks: int) -> dict:
    """Each Ray configuration right after a local run of the same ticks: the ratio is taken
    between neighbours, so that the machine's drifting load (a VM's neighbours) cancels."""
    from actors.runtime import ray_engine
    from twin.engine import Engine

    scenario = _mega()
    out = {"ticks": ticks, "runs": []}
    for hosts in MEGA_HOSTS:
        for edge in ("none", "auto"):
            local_s = _timed_run(Engine(scenario), ticks)
            engine = ray_engine(
                scenario, placement_mode="sharded", hosts=hosts, controller_actors=edge != "none"
            )
            try:
                seconds = _timed_run(engine, ticks)
                edge_actors = len(engine.controller.edges) if edge != "none" else 0
            finally:
                engine.close()
            out["runs"].append({"hosts": hosts, "edge_actors": edge_actors, "seconds": seconds,
                                "local_s": local_s, "ratio": seconds / local_s})  # fmt: skip
    return out


def _barrier_ticks_per_s(n_actors: int, ticks: int) -> float:
    import ray

    class Bare:  # defined here, so that Ray ships it by value (this file is not a package)
        """A Ray actor that does nothing but answer: the barrier's cost alone."""

        def tick(self, t: int) -> int:
            return t

    actors = [ray.remote(num_cpus=0)(Bare).remote() for _ in range(n_actors)]
    try:
        ray.get([a.tick.remote(-1) for a in actors])  # started
        start = time.perf_counter()
        for t in range(ticks):
            ray.get([a.tick.remote(t) for a in actors])
        return ticks / (time.perf_counter() - start)
    finally:
        for a in actors:
            ray.kill(a)


def _per_node(ticks: int) -> list[dict]:
    from actors.runtime import ray_engine

    rows = []
    for size in PER_NODE_SIZES:
        scenario = _small_with_shell(PER_NODE_WALKER[size])
        engine = ray_engine(scenario, placement_mode="per-node", controller_actors=False)
        try:
            n_hosts = engine.nodes.n_hosts
            if n_hosts != size:
                raise RuntimeError(f"expected {size} node actors, got {n_hosts}")
            seconds = _timed_run(engine, ticks)
        finally:
            engine.close()
        barrier = _barrier_ticks_per_s(size, ticks)
        rate = ticks / seconds
        rows.append({"node_actors": size, "ticks_per_s": rate, "barrier_ticks_per_s": barrier,
                     "barrier_over_runtime": barrier / rate})  # fmt: skip
    return rows


def run(repeat: int = 200) -> dict:
    """``repeat`` ticks for every measure (``qntwin bench runtime --repeat R``)."""
    from actors.runtime import ray_session

    ticks = int(repeat)
    if ticks < 10:
        raise ValueError(f"repeat must be >= 10 ticks, got {repeat}")
    with ray_session():
        # mega first: after per-node's 50 actors are killed, Ray's log monitor stays busy for
        # a while (~6 % of a core, measured 2-7 s after), which the mega rows would pay
        mega = _mega_ratios(ticks)
        per_node = _per_node(ticks)
    return {"mega": mega, "per_node": per_node}


def format_report(r: dict) -> str:
    mega = r["mega"]
    lines = [
        f"Ray runtime against the local engine: mega, first {mega['ticks']} ticks (each Ray "
        "run right after a local one)",
        "  hosts  edge actors   local s   Ray s   x local (aim <= 1.5x)",
    ]
    for run_ in mega["runs"]:
        verdict = "met" if run_["ratio"] <= 1.5 else "NOT met"
        edge = f"{run_['edge_actors']} (auto)" if run_["edge_actors"] else "0 (driver)"
        lines.append(f"  {run_['hosts']:5d}  {edge:>11}  {run_['local_s']:8.2f}  "
                     f"{run_['seconds']:6.2f}   {run_['ratio']:5.2f}x {verdict}")  # fmt: skip
    lines += [
        "Per-node placement against a bare barrier over as many Ray actors",
        "  node actors   ticks/s   barrier ticks/s   barrier / runtime (aim <= 2x)",
    ]
    for row in r["per_node"]:
        verdict = "met" if row["barrier_over_runtime"] <= 2.0 else "NOT met"
        lines.append(f"  {row['node_actors']:11d}   {row['ticks_per_s']:7.1f}   "
                     f"{row['barrier_ticks_per_s']:15.1f}   {row['barrier_over_runtime']:5.2f}x "
                     f"{verdict}")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="ticks per measure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.repeat)
    print(json.dumps(result) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
