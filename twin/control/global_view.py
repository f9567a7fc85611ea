"""The SDQN controller's global network view, as JSON shaped after a YANG model (main paper
sec. V-B, Table 2).

The paper's SDQN controller reads YANG containers from the nodes over NETCONF / RESTCONF: the
standard network topology of RFC 8345 (``ietf-network``, ``ietf-network-topology``) augmented
by a module the paper calls ``ietf-sdqn-ntn`` with five quantum and energy attributes (Table 2).
No such module is published; this is the JSON encoding (RFC 7951) of the augmentation the twin
assumes, its names taken from Table 2:

- ``quantum-link-fidelity`` (link, 0-1): the link's Bell-pair fidelity in G(t) (amplitude
  damping of its channel transmittance, twin.network.topology); absent on RF links, which
  carry no quantum channel;
- ``key-buffer-fill-level`` (link, bits): the key the link's QKD buffer held at the end of the
  last closed tick (the nodes' fill report, twin.control.telemetry); absent where the link
  has no QKD;
- ``turbulence-forecast-index`` (ground node, m): the Fried parameter r0 at zenith, 500 nm,
  under the Hufnagel-Valley ground Cn2 in force at the site (twin.network.weather; the paper:
  "look-ahead metric for FSO stability (r_0)"; a nowcast here, the observer forecasts it);
- ``carbon-intensity-source`` (ground node, gCO2e/kWh): the grid intensity of the site's
  region at t (twin.physics.carbon);
- ``battery-state-of-charge`` (satellite and HAPS, %): the battery's charge over its capacity.

Links are listed once per undirected edge of G(t) (RFC 8345 links are one-way; a reader pairs
``source`` and ``destination`` both ways). :func:`global_view` is a pure function of the
engine's state and t: two exports of the same run are byte-identical (``view_json``).
"""

from __future__ import annotations

import json

import numpy as np

from twin.control.observer import zenith_r0_m
from twin.metrics import json_safe
from twin.network.topology import EdgeKind
from twin.physics.carbon import carbon_intensity_g_per_kwh
from twin.units import NS_PER_S

__all__ = ["MODULE", "global_view", "view_json"]

MODULE = "ietf-sdqn-ntn"
QUANTUM_KINDS = frozenset(
    {EdgeKind.FIBER, EdgeKind.FSO_GROUND_SPACE, EdgeKind.FSO_GROUND_HAPS, EdgeKind.FSO_HAPS_SPACE,
     EdgeKind.ISL}
)  # fmt: skip


def global_view(engine, t_ns: int | None = None) -> dict:
    """The global view of ``engine``'s network at ``t_ns`` (default: the end of the last
    closed tick), as an RFC 7951 JSON document of RFC 8345 ``networks`` with the
    ``ietf-sdqn-ntn`` augmentation (module docstring)."""
    fill = engine.key_fill
    t_ns = fill.t_ns if t_ns is None else int(t_ns)
    snap = engine.topology.snapshot(t_ns)
    t_s = t_ns / NS_PER_S
    scenario = engine.scenario
    names = snap.node_names
    n_sites, sat0 = len(scenario.sites), engine.topology.satellite_offset
    # ground sites: grid intensity and the turbulence index
    regions = np.array([s.grid_region for s in scenario.sites])
    lon_rad = np.radians([s.lon_deg for s in scenario.sites])
    day_s = scenario.time.start_day_s + t_s  # (the grid's time of day: after a UTC midnight)
    intensity = np.atleast_1d(carbon_intensity_g_per_kwh(regions, day_s, lon_rad))
    weather = engine.topology.weather
    altitude_m = np.array([s.altitude_m for s in scenario.sites], dtype=float)
    r0_m = zenith_r0_m(altitude_m, weather.ground_cn2(t_s), weather.background_wind)
    soc = {}
    for platform, first, capacity in (
        ("haps", n_sites, engine.haps_power.battery_capacity_j),
        ("satellite", sat0, engine.sat_power.battery_capacity_j),
    ):
        if engine.nodes.battery_counts[platform]:
            for i, joules in enumerate(engine.nodes.soc_j(platform).tolist()):
                soc[first + i] = 100.0 * joules / capacity
    nodes = []
    for i, name in enumerate(names):
        attrs: dict = {}
        if i < n_sites:
            site = scenario.sites[i]
            attrs = {
                "node-kind": site.kind,
                "jurisdiction": site.jurisdiction,
                "carbon-intensity-source": float(intensity[i]),
                "turbulence-forecast-index": float(r0_m[i]),
            }
        else:
            attrs = {"node-kind": "satellite" if i >= sat0 else "haps"}
            if i in soc:
                attrs["battery-state-of-charge"] = soc[i]
        nodes.append({"node-id": name, f"{MODULE}:node-attributes": attrs})
    bits = fill.of_pairs(snap.a, snap.b)
    has_qkd = (
        set(zip(*np.divmod(fill.codes, fill.n_nodes), strict=True)) if fill.codes.size else set()
    )
    links = []
    for e in range(snap.a.size):
        a, b, kind = int(snap.a[e]), int(snap.b[e]), EdgeKind(int(snap.kind[e]))
        attrs = {
            "link-kind": kind.name.lower().replace("_", "-"),
            "oper-status": "up" if snap.up[e] else "down",
            "latency-s": float(snap.latency_s[e]),
            "transmittance": float(snap.transmittance[e]),
            "secret-key-rate-bps": float(snap.skr_bps[e]),
        }
        if kind in QUANTUM_KINDS:
            attrs["quantum-link-fidelity"] = float(snap.fidelity[e])
        if (min(a, b), max(a, b)) in has_qkd:
            attrs["key-buffer-fill-level"] = int(bits[e])
        links.append({
            "link-id": f"{names[a]},{names[b]},{attrs['link-kind']}",
            "source": {"source-node": names[a]},
            "destination": {"dest-node": names[b]},
            f"{MODULE}:link-attributes": attrs,
        })  # fmt: skip
    return {
        "ietf-network:networks": {
            "network": [
                {
                    "network-id": f"qntwin:{scenario.name}",
                    "network-types": {f"{MODULE}:sdqn-ntn": {}},
                    f"{MODULE}:view-time": {"t-s": t_s, "key-fill-t-s": fill.t_ns / NS_PER_S},
                    "node": nodes,
                    "ietf-network-topology:link": links,
                }
            ]
        }
    }


def view_json(view: dict) -> str:
    """Deterministic JSON text of a view (sorted keys; inf, e.g. r0 without turbulence, null)."""
    return json.dumps(json_safe(view), sort_keys=True, indent=1, allow_nan=False) + "\n"
