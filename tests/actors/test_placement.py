"""Placement: which host holds which nodes (no Ray needed)."""

import pytest

from actors.placement import AUTO_PER_NODE_MAX, placement
from twin.network.topology import TopologyModel
from twin.scenarios import load_scenario


def test_sharded_placement_keeps_planes_and_regions_together_and_balances_hosts():
    topology = TopologyModel(load_scenario("mega"))
    names, units = topology.node_names, topology.placement_units()
    shards = placement(names, units, "sharded", 4)
    assert sorted(i for s in shards for i in s) == list(range(len(names)))
    host_of = {i: h for h, s in enumerate(shards) for i in s}
    for unit in set(units):
        assert len({host_of[i] for i, u in enumerate(units) if u == unit}) == 1, unit
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 22  # one plane of 22 satellites at most
    assert units[names.index("shell-1-0000")] == units[names.index("shell-1-0021")]
    assert units[names.index("shell-1-0000")] != units[names.index("shell-1-0022")]


def test_per_node_and_auto_placement():
    names = [f"n{k}" for k in range(30)]
    units = ["a"] * 30
    assert placement(names, units, "per-node") == [[k] for k in range(30)]
    assert len(placement(names[:AUTO_PER_NODE_MAX], units[:AUTO_PER_NODE_MAX], "auto")) == (
        AUTO_PER_NODE_MAX
    )
    assert placement(names, units, "auto") == [list(range(30))]  # one unit: one host
    assert placement(names, units, "sharded", 1) == [list(range(30))]


@pytest.mark.parametrize(
    "mode, hosts, words",
    [("spread", None, "unknown placement"), ("sharded", 0, "hosts must be"),
     ("per-node", 3, "one host per node")],
)  # fmt: skip
def test_bad_placement_requests_name_the_fix(mode, hosts, words):
    with pytest.raises(ValueError, match=words):
        placement(["a", "b"], ["u", "u"], mode, hosts)
