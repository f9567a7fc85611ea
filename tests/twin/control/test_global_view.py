"""The SDQN global view as RFC 8345 JSON with the ietf-sdqn-ntn attributes (Table 2)."""

import json

import numpy as np
import pytest

from twin.cli import main
from twin.control.global_view import MODULE, global_view, view_json
from twin.engine import Engine
from twin.physics.carbon import carbon_intensity_g_per_kwh
from twin.scenarios import load_scenario

OBERPF = "dlr-oberpfaffenhofen"
NODE, LINK = f"{MODULE}:node-attributes", f"{MODULE}:link-attributes"


@pytest.fixture(scope="module")
def eclipse():
    engine = Engine(load_scenario("case-grid-eclipse"))
    engine.run(duration_s=60)
    return engine


def network(view):
    return view["ietf-network:networks"]["network"][0]


def test_the_view_holds_every_node_and_link_of_g_t_with_table_2s_attributes(eclipse):
    net = network(global_view(eclipse))
    snap = eclipse.topology.snapshot(60 * 10**9)
    assert [n["node-id"] for n in net["node"]] == list(snap.node_names)
    assert len(net["ietf-network-topology:link"]) == snap.a.size
    assert net[f"{MODULE}:view-time"] == {"t-s": 60.0, "key-fill-t-s": 60.0}
    # key-buffer-fill-level: what each QKD link's buffer holds (the ledger's own bits)
    held = {tuple(sorted(pair)): b.available_bits for pair, b in eclipse.link_buffers.items()}
    seen = 0
    for link in net["ietf-network-topology:link"]:
        attrs = link[LINK]
        pair = tuple(sorted((link["source"]["source-node"], link["destination"]["dest-node"])))
        if "key-buffer-fill-level" in attrs:
            assert attrs["key-buffer-fill-level"] == held[pair]
            seen += 1
        # RF carries no quantum channel: no fidelity
        assert ("quantum-link-fidelity" in attrs) == (attrs["link-kind"] != "rf-ka")
    assert seen > 0
    # battery-state-of-charge (%) and carbon-intensity-source (gCO2e/kWh)
    nodes = {n["node-id"]: n[NODE] for n in net["node"]}
    sat0 = eclipse.topology.satellite_offset
    soc = eclipse.soc_j / eclipse.sat_power.battery_capacity_j * 100
    assert nodes[snap.node_names[sat0]]["battery-state-of-charge"] == pytest.approx(soc[0])
    site = eclipse.scenario.sites[0]
    want = carbon_intensity_g_per_kwh(
        np.array([site.grid_region]),
        eclipse.scenario.time.start_day_s + 60.0,  # the time of day, from a UTC midnight
        np.radians([site.lon_deg]),
    )
    assert nodes[site.name]["carbon-intensity-source"] == pytest.approx(float(want[0]))


def test_the_turbulence_index_is_r0_at_zenith_and_shrinks_under_a_turbulence_event():
    # Hufnagel-Valley 5/7 gives r0 = 5 cm at 500 nm, zenith (its definition; Andrews & Phillips
    # 2005 ch. 12): the background of the storm scenario away from the front
    engine = Engine(load_scenario("storm"))
    net = network(global_view(engine, t_ns=0))
    r0 = {n["node-id"]: n[NODE]["turbulence-forecast-index"] for n in net["node"]
          if "turbulence-forecast-index" in n[NODE]}  # fmt: skip
    weather = engine.topology.weather
    calm = [s.name for s, cn2 in zip(engine.scenario.sites, weather.ground_cn2(0.0), strict=True)
            if cn2 == weather.background_cn2 and s.altitude_m < 200]  # fmt: skip
    assert calm and all(abs(r0[name] - 0.05) < 0.005 for name in calm)
    # the squall line's turbulence reaches Oberpfaffenhofen at ~0.5 h: a smaller r0 there
    later = {n["node-id"]: n[NODE] for n in network(global_view(engine, t_ns=3600 * 10**9))["node"]}
    assert later[OBERPF]["turbulence-forecast-index"] < 0.8 * r0[OBERPF]


def test_the_view_is_deterministic_json(eclipse):
    text = view_json(global_view(eclipse))
    assert text == view_json(global_view(eclipse))
    assert json.loads(text)["ietf-network:networks"]["network"][0]["network-id"] == (
        "qntwin:case-grid-eclipse"
    )


def test_qntwin_view_writes_the_file_and_refuses_a_time_outside_the_run(tmp_path, capsys):
    out = tmp_path / "view.json"
    assert main(["view", "small", "--at", "5", "--out", str(out)]) == 0
    assert network(json.loads(out.read_text()))[f"{MODULE}:view-time"]["t-s"] == 5.0
    assert main(["view", "small", "--at", "-1"]) == 2
    assert "--at must be within [0, 3600] s" in capsys.readouterr().err
