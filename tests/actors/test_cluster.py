"""The runtime on a cluster of two Ray nodes (made on this machine): a node lost mid-run."""

import json
import os
import subprocess
import sys
import textwrap

# run in a process of its own: this test session's local Ray instance (conftest) holds the
# process's Ray connection, and a cluster needs its own
SCRIPT = textwrap.dedent(
    """
    import json
    import time

    import ray
    from ray.cluster_utils import Cluster

    from actors.runtime import ray_engine, ray_session
    from twin.engine import Engine
    from twin.metrics import compute_metrics, metrics_json
    from twin.scenarios import load_scenario


    def metrics_of(engine, progress=None):
        result = engine.run(duration_s=240.0, progress=progress)
        metrics = json.loads(metrics_json(compute_metrics(result, engine)))
        metrics.pop("wall_seconds")
        return json.dumps(metrics, sort_keys=True)


    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        expected = metrics_of(Engine(load_scenario("small")))
        removed = []

        def lose_the_worker_node(done, total):
            if done == 60:
                cluster.remove_node(worker)  # its raylet and every process on it
                removed.append(done)

        with ray_session(address=cluster.address):
            # (the scheduler's view of the worker node's resources may lag its registration)
            deadline = time.monotonic() + 60.0
            while ray.cluster_resources().get("CPU", 0.0) < 2.0:
                assert time.monotonic() < deadline, "the worker node's CPU never showed"
                time.sleep(0.1)
            engine = ray_engine(
                load_scenario("small"), placement_mode="sharded", hosts=4, checkpoint_every=25
            )
            try:
                on_worker = sum(
                    ray.get(host.__ray_call__.remote(
                        lambda host: ray.get_runtime_context().get_node_id()
                    )) == worker.node_id
                    for host in engine.nodes.hosts
                )
                got = metrics_of(engine, lose_the_worker_node)
                restarts = engine.nodes.restarts
            finally:
                engine.close()
        print(json.dumps(
            {"same": got == expected, "restarts": restarts, "removed": removed,
             "on_worker": on_worker}
        ))
    finally:
        cluster.shutdown()
    """
)


def test_losing_a_cluster_node_mid_run_changes_no_result():
    # 4 hosts placed in turn on the head and a worker node; the worker node is removed at tick 60
    # (between checkpoints at 50 and 75): its hosts die with it, every host is restored on the
    # remaining node from the checkpoint the driver holds, and the run ends as a fault-free one
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_ADDRESS="")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["removed"] == [60]
    assert result["on_worker"] == 2  # hosts 1 and 3: placed in turn, the driver's node first
    assert result["restarts"] == 1  # the lost node's hosts, recovered once
    assert result["same"]
