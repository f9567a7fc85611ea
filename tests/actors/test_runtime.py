"""The twin on Ray: the same results as the single-process engine, whatever the placement."""

import json

import numpy as np
import pytest

from twin.engine import Engine
from twin.metrics import compute_metrics, metrics_json
from twin.scenarios import load_scenario

# long enough for key relays across hosts, handovers and entanglement requests of small
DURATION_S = 240.0


def _without_wall_time(text: str) -> dict:
    """metrics.json's dict without wall_seconds, the one field identical runs differ in."""
    m = json.loads(text)
    m.pop("wall_seconds")
    return m


def _local_and_on_ray(scenario, duration_s: float, **engine_kw) -> tuple[str, str]:
    """metrics.json of ``scenario`` run by the local engine and by the Ray runtime (two
    sharded hosts, an edge actor per site), with the same engine arguments."""
    from actors.runtime import ray_engine

    local = Engine(scenario, **engine_kw)
    expected = metrics_json(compute_metrics(local.run(duration_s=duration_s), local))
    engine = ray_engine(
        scenario, placement_mode="sharded", hosts=2, edge_actors="per-site", **engine_kw
    )
    try:
        got = metrics_json(compute_metrics(engine.run(duration_s=duration_s), engine))
    finally:
        engine.close()
    return expected, got


def metrics_of(engine, progress=None) -> str:
    result = engine.run(duration_s=DURATION_S, progress=progress)
    metrics = json.loads(metrics_json(compute_metrics(result, engine)))
    metrics.pop("wall_seconds")
    return json.dumps(metrics, sort_keys=True)


@pytest.fixture(scope="module")
def local_metrics():
    return metrics_of(Engine(load_scenario("small")))


@pytest.mark.parametrize(
    "mode, hosts", [("sharded", 1), ("sharded", 2), ("sharded", 4), ("per-node", None)]
)
def test_ray_runs_give_the_local_engines_metrics_byte_for_byte(
    ray_local, local_metrics, mode, hosts
):
    from actors.runtime import ray_engine

    engine = ray_engine(load_scenario("small"), placement_mode=mode, hosts=hosts)
    try:
        n_hosts = engine.nodes.n_hosts
        got = metrics_of(engine)
    finally:
        engine.close()
    assert n_hosts == (hosts or len(engine.topology.node_names))
    summary = json.loads(local_metrics)["metrics"]
    # the comparison means something: keys were relayed and flows served
    assert summary["keys"]["consumed_bits"] > 0 and summary["throughput_bps"] > 0
    assert got == local_metrics


def test_handovers_and_entanglement_come_out_the_same_on_three_hosts(ray_local):
    # case-grid-eclipse's first ten minutes hold handovers (the fill levels they read come
    # from the hosts) and entanglement requests (the path's memories lent by their hosts)
    from actors.runtime import ray_engine

    scenario = load_scenario("case-grid-eclipse")
    local = Engine(scenario)
    expected = local.run(duration_s=600)
    engine = ray_engine(scenario, placement_mode="sharded", hosts=3, edge_actors="per-site")
    try:
        got = engine.run(duration_s=600)
        got_metrics = metrics_json(compute_metrics(got, engine))
    finally:
        engine.close()
    assert len(expected.handovers) > 0 and sum(e.success for e in expected.entanglement) > 0
    assert got.entanglement == expected.entanglement
    assert list(got.handovers) == list(expected.handovers)

    assert _without_wall_time(got_metrics) == _without_wall_time(
        metrics_json(compute_metrics(expected, local))
    )


def test_qntwin_run_on_ray_writes_the_local_runs_metrics(ray_local, tmp_path, capsys):
    from twin.cli import main

    outputs = {}
    runs = {
        "local": ["--runtime", "local"],
        "ray": ["--placement", "sharded", "--hosts", "2"],  # Ray is the default runtime
        "ray-driver": ["--runtime", "ray", "--hosts", "2", "--edge-actors", "none"],
        # the bus authenticated with keys written by `qntwin bus-keys`
        "ray-curve": ["--hosts", "2", "--bus-keys", str(tmp_path / "keys")],
    }
    assert main(["bus-keys", str(tmp_path / "keys")]) == 0
    for name, flags in runs.items():
        out = tmp_path / name
        args = ["run", "small", "--hours", "0.02", "--quiet", "--out", str(out)]
        assert main([*args, *flags]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        metrics.pop("wall_seconds")
        outputs[name] = metrics
    assert outputs["ray"] == outputs["local"] == outputs["ray-driver"] == outputs["ray-curve"]
    out = capsys.readouterr().out
    assert "runtime: ray, 2 host(s), 1 edge controller actor(s), survived 0 restart(s)" in out
    assert "runtime: ray, 2 host(s), the controller in the driver, survived 0" in out


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--runtime", "ray", "--address", "127.0.0.1:1"], "no Ray cluster answers"),
        (["--runtime", "ray", "--address", "head-node"], "is not host:port"),
        (["--runtime", "ray", "--placement", "sharded", "--hosts", "0"], "--hosts must be"),
        (["--runtime", "local", "--placement", "per-node"], "applies to --runtime ray only"),
        (["--runtime", "local", "--edge-actors", "2"], "applies to --runtime ray only"),
        (["--runtime", "local", "--bus-auth", "curve"], "applies to --runtime ray only"),
        (["--bus-auth", "none", "--bus-keys", "keys"], "--bus-keys gives CurveZMQ keys"),
        (["--bus-keys", "/nonexistent/keys"], "cannot read the bus key /nonexistent/keys/server"),
        (["--edge-actors", "0"], "--edge-actors must be auto, per-site, none"),
        (["--edge-actors", "many"], "--edge-actors must be auto, per-site, none"),
    ],
)
def test_bad_runtime_flags_get_one_line_naming_the_fix(flags, words, capsys):
    from twin.cli import EXIT_USAGE, main

    assert main(["run", "small", "--hours", "0.01", "--quiet", *flags]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


@pytest.mark.parametrize("answer", ["http", "silent"])
def test_an_address_whose_port_another_service_holds_fails_at_once(answer, capsys):
    # a web server answers the probe with HTTP/1, a silent listener not at all: both are
    # refused in seconds (ray.init would retry them for minutes), naming the head's ports
    import http.server
    import socket
    import threading
    import time

    from twin.cli import EXIT_USAGE, main

    if answer == "http":
        server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port, stop = server.server_address[1], server.shutdown
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        port, stop = listener.getsockname()[1], listener.close
    try:
        start = time.monotonic()
        code = main(["run", "small", "--hours", "0.01", "--quiet", "--runtime", "ray",
                     "--address", f"127.0.0.1:{port}"])  # fmt: skip
        seconds = time.monotonic() - start
    finally:
        stop()
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "not a Ray cluster's head" in err and "6379" in err
    assert "Traceback" not in err and seconds < 30


def test_the_address_probe_accepts_a_live_ray_head(ray_local):
    import ray

    from actors.runtime import _probe

    _probe(ray.get_runtime_context().gcs_address)  # raises if the head were taken for another


def test_killing_hosts_and_controller_actors_mid_run_changes_no_result(ray_local, local_metrics):
    # the host of the busiest OGS dies at tick 40 (between checkpoints), two hosts at once at
    # tick 130: every host is restored from the last checkpoint and the ticks since replayed;
    # the edge controller actor dies at tick 90, while serving commands, and is restored and
    # replayed (with every edge actor: here the only one)
    import ray

    from actors.runtime import ray_engine

    scenario = load_scenario("small")
    engine = ray_engine(scenario, placement_mode="sharded", hosts=4, checkpoint_every=25)
    snap = engine.topology.snapshot(0)
    names = engine.topology.node_names
    ogs = [s.name for s in scenario.sites if s.kind == "ogs"]
    degree = {n: int(np.sum((snap.a == names.index(n)) | (snap.b == names.index(n)))) for n in ogs}
    busiest = max(sorted(degree), key=degree.get)
    killed = []

    def chaos(done, total):
        nodes = engine.nodes
        if done == 40:
            killed.append(nodes.host_of(busiest))
            ray.kill(nodes.hosts[nodes.host_of(busiest)])
        if done == 90:
            (edge,) = engine.controller.edges.values()
            ray.kill(edge.handle)
        if done == 130:
            ray.kill(nodes.hosts[0])
            ray.kill(nodes.hosts[3])

    try:
        got = metrics_of(engine, chaos)
        restarts = engine.nodes.restarts, engine.controller.restarts
    finally:
        engine.close()
    assert killed and restarts == (2, 1)
    assert got == local_metrics


@pytest.mark.parametrize("mode, hosts", [("sharded", 3), ("per-node", None)])
def test_duplicated_delayed_and_reordered_bus_frames_change_no_result(
    ray_local, local_metrics, mode, hosts
):
    # a third of the frames sent twice, a third held back until the sender next waits (so
    # they arrive after later frames, and some copies a round late)
    from actors.runtime import ray_engine

    engine = ray_engine(
        load_scenario("small"), placement_mode=mode, hosts=hosts,
        bus_kwargs={"faults": {"seed": 7, "duplicate": 0.3, "delay": 0.3}},
    )  # fmt: skip
    try:
        got = metrics_of(engine)
        stats = engine.nodes.bus_stats()
        edge_stats = engine.controller.bus_stats()  # the edge actor's commands, faulty too
    finally:
        engine.close()
    assert stats["duplicates_sent"] > 0 and stats["delayed"] > 0
    assert 0 < stats["duplicates_dropped"] <= stats["duplicates_sent"]
    assert edge_stats["duplicates_sent"] > 0 and edge_stats["delayed"] > 0
    assert edge_stats["duplicates_dropped"] > 0  # copies of the edge actor's replies
    assert got == local_metrics


def test_key_aware_and_the_shield_read_the_hosts_fill_reports_as_in_one_process(ray_local):
    # the key-aware controller reads every link buffer's fill level (reported by the hosts
    # with each tick's end, shipped to the edge actors with G(t)): 3 hosts and an edge actor
    # per site give the local engine's metrics, and the fill levels changed its paths; the
    # shield (in the driver) and the audit read the same reports, so their counts agree too
    from actors.runtime import ray_engine

    scenario = load_scenario("case-grid-eclipse")
    local = Engine(scenario, controller="key-aware", shield=True)
    expected = local.run(duration_s=300)
    static = Engine(scenario).run(duration_s=300)
    engine = ray_engine(scenario, placement_mode="sharded", hosts=3, edge_actors="per-site",
                        controller="key-aware", shield=True)  # fmt: skip
    try:
        assert engine.nodes.key_telemetry and len(engine.controller.edges) == 2
        got = engine.run(duration_s=300)
        got_metrics = metrics_json(compute_metrics(got, engine))
    finally:
        engine.close()

    assert _without_wall_time(got_metrics) == _without_wall_time(
        metrics_json(compute_metrics(expected, local))
    )
    assert expected.flows != static.flows
    assert expected.shield["rejected"]["key_continuity"] > 0


@pytest.mark.parametrize("controller", ["mpc-only", "ai-sdqn"])
def test_planning_controllers_run_on_the_actors_as_in_one_process(ray_local, controller):
    # the MPC tier on the cloud planner actor: it binds the scenario there, plans from the
    # batteries' charge the driver gathers from the hosts, and the laser schedule it returns
    # (with its turbo satellites, which change these 150 s: Type-I uptime 13.3 % against
    # 9.3 % without for mpc-only) is applied in the driver; ai-sdqn's edge policy runs on
    # each edge site's actor (its own flows, one batch per actor) and its shield in the
    # driver; the metrics are the local engine's byte for byte
    from actors.runtime import ray_engine

    scenario = load_scenario("case-grid-eclipse")
    local = Engine(scenario, controller=controller)
    expected = metrics_json(compute_metrics(local.run(duration_s=150), local))
    engine = ray_engine(scenario, placement_mode="sharded", hosts=2, edge_actors="per-site",
                        controller=controller)  # fmt: skip
    try:
        assert engine.controller.cloud is not None
        got = metrics_json(compute_metrics(engine.run(duration_s=150), engine))
    finally:
        engine.close()

    assert _without_wall_time(got) == _without_wall_time(expected)
    assert json.loads(got)["controller"] == controller


def test_bulk_deferral_runs_on_the_actors_as_in_one_process(ray_local):
    # the cloud planner actor puts a Type-IV backup off (its plan's deferrals), the driver
    # takes it, and the hosts' sources send the bulk on the deferred schedule (their
    # forwarding updates carry it); the ground sites' per-bit energy comes back with the
    # hosts' counters: the metrics are the local engine's byte for byte
    from tests.twin.control.test_mpc import _night_bulk_flows

    scenario, flows = _night_bulk_flows()
    expected, got = _local_and_on_ray(scenario, 240, controller="mpc-only", flows=flows)
    assert _without_wall_time(got) == _without_wall_time(expected)
    metrics = json.loads(got)["metrics"]
    assert metrics["bulk_deferrals"] and metrics["transport_energy_j"] > 0


def test_a_given_edge_policy_routes_on_the_edge_actors_as_in_one_process(ray_local):
    # drl-only with a policy of its own (always the fastest candidate), not the shipped one:
    # the edge actors get it with the controller (a ControllerSpec, pickled) and route as the
    # local engine does; the shipped policy routes otherwise, and metrics.json names the policy
    from ..twin.control.test_drl import constant_policy

    # every flow's fastest candidate (static-sp's), no boost, its key relay spread over the
    # candidates, its data kept on its path (the edge actors' relay splits over the bus)
    fastest = constant_policy(2, 0, 1, 0)
    scenario = load_scenario("case-grid-eclipse")
    expected, got = _local_and_on_ray(scenario, 120, controller="drl-only", policy=fastest)
    assert json.loads(got)["metrics"]["key_relay_split_flow_ticks"] > 0
    assert json.loads(got)["metrics"]["data_split_flow_ticks"] == 0
    shipped = Engine(scenario, controller="drl-only")
    other = metrics_json(compute_metrics(shipped.run(duration_s=120), shipped))
    assert _without_wall_time(got) == _without_wall_time(expected)
    assert _without_wall_time(other)["metrics"] != _without_wall_time(expected)["metrics"]
    assert json.loads(got)["config"]["edge_policy"] == fastest.fingerprint()
    assert json.loads(other)["config"]["edge_policy"] != fastest.fingerprint()


def test_ai_sdqns_boosts_pass_the_shield_and_run_on_ray_as_in_one_process(ray_local):
    # the edge tier's laser power over the bus (the edge actors' [paths, boost] replies):
    # ai-sdqn with a policy that boosts every flow's keyed candidate, on case-grid-eclipse's
    # first 2 minutes (past the first plan), gives the local engine's metrics byte for byte,
    # with satellites run at the turbo level at the edge's request and the shield's refusals
    # of the first decisions (no charge reported yet)
    from ..twin.control.test_drl import constant_policy

    scenario = load_scenario("case-grid-eclipse")
    # (and spreading the key relay and the data, through the shield)
    boosting = constant_policy(1, 1, 1, 1)
    expected, got = _local_and_on_ray(scenario, 120, controller="ai-sdqn", policy=boosting)
    assert _without_wall_time(got) == _without_wall_time(expected)
    metrics = json.loads(got)["metrics"]
    assert metrics["turbo_satellite_ticks"]["edge"] > 0
    assert metrics["key_relay_split_flow_ticks"] > 0
    assert metrics["data_split_flow_ticks"] > 0
    assert metrics["shield_rejections"]["battery_reserve"] > 0
    assert metrics["shield_violations"] == 0
