"""The evaluation metrics of a run (main paper section X), as the dict behind metrics.json.

Every number is computed from the run's own counters; a metric the run did not measure is None
(shown as n/a), never a placeholder value. ``metrics_json`` serializes with sorted keys and
``repr`` floats, so two runs of the same (scenario, seed, code) give byte-identical files apart
from ``wall_seconds``.

Definitions (time is counted in integer nanoseconds; a flow is *active* in a tick in which it
demands data, or, Type-II, keeps its periodic rekey; both percentages share that denominator,
the active time, and a handover gap counts against both):
- ``secure_session_uptime_pct``: over the active time of Type-I flows, the share in which the
  flow had a path, was outside a handover gap and had the one-time-pad key it needed (key
  continuity, section IV-B). Latency is not required.
- ``availability_pct[class]``: over the active time of the class's flows, the share in which
  the flow was served: a path, outside a handover gap, the keys its security mode needs, and
  its latency target (Table 1) met. A tick partly inside a gap counts the part outside it
  (and delivers ``floor(bits * served_ns / tick_ns)`` of its bits). So for Type-I, availability
  <= uptime.
- ``handovers``, ``handover_interruption_ms``, ``handover_jitter_ms`` (p50, p99, max; None
  without handovers), ``handovers_by_kind``: ``HandoverLog.summary()`` of the completed
  handovers (one definition, in twin.engine's docstring); interruption and jitter come from the
  protocol's nanosecond timestamps. A handover still running when the run ends is not counted;
  its gap so far counts against availability and uptime.
- ``space_segment_events``: lost satellite hops that were not handovers (a loss with no other
  path, a loss on which the flow keeps its satellites, a loss during the flow's running
  handover, a move asked while it finishes), per flow and tick. A move to another satellite
  while the hop is up is a make-before-break handover (twin.engine's docstring).
- ``carbon_g_per_bit`` / ``energy_j_per_bit``: all carbon / energy of the run over the bits
  delivered. ``transport_energy_j`` / ``transport_carbon_g``: the traffic-dependent part of
  ``energy_j`` / ``carbon_g``, what the data sent cost the ground sites it crossed
  (``ground_node_j_per_bit`` each, at the site's grid intensity; the rest is fixed power).
- ``bulk_deferrals``: the forecast events (Type-IV bulk) a plan put off: flow, event, when it
  was to start and by how long it was put off (s after the scenario start); how many in
  ``bulk_events_deferred``.
- ``turbo_satellite_ticks``: satellite-ticks run at the QKD turbo level (``Engine.
  turbo_skr_gain`` times the key rate on their optical links, at the turbo level's load), by
  who asked: the cloud tier's plan (``plan``) or, for satellites the plan left at "on", the
  edge tier's laser power (``edge``, ``Decision.boost``).
- ``key_relay_split_flow_ticks``: flow-ticks whose forwarding update split the flow's key
  relay among paths (the edge tier's relay level, ``Decision.relay``; twin.network.nodes).
- ``data_split_flow_ticks``: flow-ticks whose forwarding update split the flow's data among
  paths (``Decision.data``; twin.engine).
- ``key_utilization_pct``: key bits consumed by applications over key bits generated on QKD
  links.
- ``keys``: the ledger of all QKD link buffers (generated = consumed + expired + discarded +
  destroyed + buffered); ``e2e_keys``: the same for the end-to-end pools (their "generated" is
  what trusted relays delivered).
- ``pdr``: delivered over offered data, in bits for flow-level traffic.
- ``latency_ms[class]``: mean propagation latency of the paths used.
- ``shield_violations``: executed paths (one per flow and decided tick) that broke a rule of
  the shield (twin.control.shield: data residency, Type-I key continuity, Type-I latency SLO)
  while some path met that rule and the rules before it, and boosts that ran a satellite below
  its battery reserve (``battery_reserve``), by the independent audit, for every controller;
  by rule in ``shield_violations_by_rule``. ``shield_rejections`` /
  ``shield_unsatisfiable``: per rule, the paths the shield replaced and the moments no path
  could meet the rule (None for a run without the shield).
- ``objective``: J of the control problem, main paper eq. (4)-(5) (twin.control.objective:
  each term's definition and unit), with the mean reward and terms per tick and the weights.
- Entanglement (twin.engine's docstring, "Entanglement service": one request per active Type-I
  flow every ``ENTANGLEMENT_PERIOD_S`` over the elevated segment of its path):
  ``entanglement_requests`` counts them; ``entanglement_success_pct`` is the share that
  delivered an end-to-end pair (failures: no quantum channel on a hop, a ground-to-ground hop
  in the segment, memory full, storage past the TTL of eq. (3)), by reason in
  ``entanglement_failures``; ``entanglement_meets_f_min_pct`` the share whose delivered pair
  reached F_min; ``entanglement_policy`` how many ran TPED / intuitive. ``mean_fidelity`` is the
  mean Bell fidelity of the delivered pairs. ``memory_slots_used`` is, over the same successful
  requests, the mean of each request's peak slot count (the most memory slots it held at one
  instant, all its path nodes together): the quantity the policies differ in (SPARQ Fig. 9
  counts the intermediate nodes' share of it); ``memory_slots_peak_node`` is the most slots any
  one node's memory held at once during the run. All None without a (successful) request.
"""

from __future__ import annotations

import json
import math
from typing import Any

from twin.network.keys import total_ledger
from twin.network.traffic import TrafficClass

__all__ = ["compute_metrics", "json_safe", "metrics_json"]


def _pct(numerator: float, denominator: float) -> float | None:
    return 100.0 * numerator / denominator if denominator else None


def compute_metrics(result, engine) -> dict[str, Any]:
    """The metrics.json dict of a finished run (``result`` from ``engine.run()``)."""
    flows = {f.name: f for f in engine.flows}
    by_class: dict[str, list] = {c.value: [] for c in TrafficClass}
    for name in sorted(result.flows):
        by_class[flows[name].traffic_class.value].append(result.flows[name])

    type_i = by_class[TrafficClass.TYPE_I.value]
    uptime = _pct(sum(s.secure_ns for s in type_i), sum(s.active_ns for s in type_i))
    availability = {
        c: _pct(sum(s.served_ns for s in states), sum(s.active_ns for s in states))
        for c, states in by_class.items()
    }
    latency_ms = {
        c: (
            1e3 * sum(s.latency_sum_s for s in states) / n
            if (n := sum(s.latency_n for s in states))
            else None
        )
        for c, states in by_class.items()
    }
    delivered = sum(s.delivered_bits for s in result.flows.values())
    offered = sum(s.demand_bits for s in result.flows.values())
    used = sum(s.key_bits_used for s in result.flows.values())
    # the engine's views are built per access (they gather the node sets' state): take each
    # once, since a day of mega holds ~50,000 link buffers
    link_buffers, pool_buffers = engine.link_buffers, engine.pools
    links = total_ledger([link_buffers[k] for k in sorted(link_buffers)])
    pools = total_ledger([pool_buffers[k] for k in sorted(pool_buffers)])
    handovers = result.handovers.summary()
    requests = result.entanglement
    delivered_pairs = [r for r in requests if r.success]
    failures: dict[str, int] = {}
    for r in requests:
        if r.failure is not None:
            failures[r.failure] = failures.get(r.failure, 0) + 1
    policies = {p: sum(r.policy == p for r in requests) for p in ("intuitive", "tped")}
    memory_of = engine.memories
    memories = [memory_of[n] for n in sorted(memory_of)]
    return {
        "scenario": result.scenario,
        "controller": result.controller,
        "seed": result.seed,
        "sim_seconds": result.sim_seconds,
        "wall_seconds": result.wall_seconds,
        "config": {
            "tick_s": engine.dt_ns / 1e9,
            "flows": len(engine.flows),
            "nodes": len(engine.topology.node_names),
            "battery_reserve_fraction": engine.sat_power.reserve_fraction,
            **_edge_policy(engine),
        },
        "metrics": {
            "secure_session_uptime_pct": uptime,
            "availability_pct": availability,
            "carbon_g_per_bit": result.carbon_total_g / delivered if delivered else None,
            "energy_j_per_bit": result.energy_j / delivered if delivered else None,
            "carbon_g": result.carbon_total_g,
            "energy_j": result.energy_j,
            "transport_carbon_g": result.transport_carbon_g,
            "transport_energy_j": result.transport_energy_j,
            "bulk_events_deferred": len(result.deferrals),
            "bulk_deferrals": [
                {
                    "flow": d.flow,
                    "event": d.event,
                    "start_s": d.start_ns / 1e9,
                    "delay_s": d.delay_ns / 1e9,
                }
                for d in result.deferrals
            ],  # fmt: skip
            "handover_jitter_ms": handovers["handover_jitter_ms"],
            "handover_interruption_ms": handovers["handover_interruption_ms"],
            "handovers": handovers["handovers"],
            "handovers_by_kind": handovers["handovers_by_kind"],
            "space_segment_events": dict(sorted(result.space_events.items())),
            "turbo_satellite_ticks": dict(engine.turbo_satellite_ticks),
            "key_relay_split_flow_ticks": engine.relay_split_flow_ticks,
            "data_split_flow_ticks": engine.data_split_flow_ticks,
            "key_utilization_pct": _pct(used, links.generated_bits),
            "keys": links.as_dict(),
            "e2e_keys": pools.as_dict(),
            "latency_ms": latency_ms,
            "throughput_bps": delivered / result.sim_seconds if result.sim_seconds else None,
            "pdr": delivered / offered if offered else None,
            "battery_below_reserve_ticks": result.below_reserve_ticks,
            "haps_below_reserve_ticks": result.haps_below_reserve_ticks,
            "shield_violations": sum(result.shield["violations"].values()),
            "shield_violations_by_rule": result.shield["violations"],
            "shield_rejections": result.shield["rejected"],
            "shield_unsatisfiable": result.shield["unsatisfiable"],
            "entanglement_requests": len(requests),
            "entanglement_success_pct": _pct(len(delivered_pairs), len(requests)),
            "entanglement_meets_f_min_pct": _pct(
                sum(r.meets_f_min for r in requests), len(requests)
            ),
            "entanglement_failures": dict(sorted(failures.items())),
            "entanglement_policy": policies,
            "mean_fidelity": (
                sum(r.fidelity for r in delivered_pairs) / len(delivered_pairs)
                if delivered_pairs
                else None
            ),
            "memory_slots_used": (
                sum(r.peak_slots for r in delivered_pairs) / len(delivered_pairs)
                if delivered_pairs
                else None
            ),
            "memory_slots_peak_node": (
                max(m.peak_slots_used for m in memories) if memories else None
            ),
            "objective": result.objective or None,
        },
    }


def json_safe(value):
    """``value`` with every non-finite float (in dicts and lists) as None, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def _edge_policy(engine) -> dict[str, str]:
    """``edge_policy``: the fingerprint of the edge policy the run routed with (drl-only and
    ai-sdqn: results depend on it as on the code), for a controller that has one."""
    policy = getattr(engine, "edge_policy", None)
    return {} if policy is None else {"edge_policy": policy.fingerprint()}


def metrics_json(metrics: dict[str, Any]) -> str:
    """Deterministic JSON text (sorted keys, repr floats, NaN/inf as null)."""
    return json.dumps(json_safe(metrics), sort_keys=True, indent=2, allow_nan=False) + "\n"
