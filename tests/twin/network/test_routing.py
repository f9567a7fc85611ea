import itertools
import math
import random

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.network.routing import (
    NO_PREDECESSOR,
    NodeIndex,
    csr_from_edge_arrays,
    dijkstra_distance_path,
    graph_to_csr,
    k_shortest_paths,
    no_transit_mask,
    path_bottleneck_skr_bps,
    path_distance_m,
    path_from_predecessors,
    path_latency_s,
    path_min_transmissivity,
    shortest_path,
    shortest_paths_between,
    shortest_paths_from_sources,
    static_shortest_path,
    transit_violations,
)

MS = 1e-3


def link(latency_s, *, up=True, skr_bps=1000.0, distance_m=None, transmissivity=0.5, kind="fiber"):
    return {
        "latency_s": latency_s,
        "up": up,
        "skr_bps": skr_bps,
        "distance_m": latency_s * 2e8 if distance_m is None else distance_m,
        "transmissivity": transmissivity,
        "kind": kind,
    }


def build(edges, jurisdictions=None, *, order=None, directed=False):
    """A graph from (u, v, attrs) with nodes and edges inserted in the given permutation."""
    g = nx.DiGraph() if directed else nx.Graph()
    nodes = sorted({n for u, v, _ in edges for n in (u, v)} | set(jurisdictions or {}))
    edge_list = list(edges)
    if order is not None:
        rng = random.Random(order)
        rng.shuffle(nodes)
        rng.shuffle(edge_list)
        edge_list = [
            (v, u, d) if rng.random() < 0.5 and not directed else (u, v, d) for u, v, d in edge_list
        ]
    for n in nodes:
        g.add_node(
            n,
            **({"jurisdiction": jurisdictions[n]} if jurisdictions and n in jurisdictions else {}),
        )
    for u, v, d in edge_list:
        g.add_edge(u, v, **d)
    return g


# --- the baselines --------------------------------------------------------------------------


def test_static_shortest_path_takes_the_least_delay_over_links_that_are_up():
    edges = [
        ("munich", "ogs", link(0.2 * MS)),
        ("ogs", "sat", link(2.0 * MS)),
        ("sat", "pretoria", link(2.5 * MS)),
        ("munich", "frankfurt", link(2.0 * MS)),
        ("frankfurt", "pretoria", link(40 * MS)),
        ("munich", "haps", link(0.1 * MS, up=False)),  # the shortest, but down
        ("haps", "pretoria", link(0.1 * MS)),
    ]
    g = build(edges)
    path = static_shortest_path(g, "munich", "pretoria")
    assert path == ["munich", "ogs", "sat", "pretoria"]
    assert path_latency_s(g, path) == pytest.approx(4.7 * MS, abs=1e-12)
    g.edges["ogs", "sat"]["up"] = False
    assert static_shortest_path(g, "munich", "pretoria") == ["munich", "frankfurt", "pretoria"]
    g.edges["frankfurt", "pretoria"]["up"] = False
    assert static_shortest_path(g, "munich", "pretoria") is None
    assert static_shortest_path(g, "munich", "munich") == ["munich"]


def test_dijkstra_distance_uses_distance_over_good_links_only():
    # SPARQ's baseline (Shaban et al., IEEE TQE 2024, Fig. 10): shortest by link distance,
    # blind to quality, over links whose transmissivity reaches the threshold
    edges = [
        ("a", "s1", link(1 * MS, distance_m=600e3, transmissivity=0.02)),
        ("s1", "b", link(1 * MS, distance_m=600e3, transmissivity=0.02)),
        ("a", "h", link(5 * MS, distance_m=800e3, transmissivity=0.3)),
        ("h", "b", link(5 * MS, distance_m=800e3, transmissivity=0.3)),
        ("a", "s2", link(9 * MS, distance_m=900e3, transmissivity=0.9)),
        ("s2", "b", link(9 * MS, distance_m=900e3, transmissivity=0.9)),
    ]
    g = build(edges)
    assert dijkstra_distance_path(g, "a", "b", transmissivity_min=0.0) == ["a", "s1", "b"]
    assert dijkstra_distance_path(g, "a", "b", transmissivity_min=0.1) == ["a", "h", "b"]
    path = dijkstra_distance_path(g, "a", "b", transmissivity_min=0.5)
    assert path == ["a", "s2", "b"] and path_distance_m(g, path) == 1.8e6
    assert dijkstra_distance_path(g, "a", "b", transmissivity_min=0.95) is None
    # the topology names the same quantity `transmittance`
    for _, _, d in g.edges(data=True):
        d["transmittance"] = d.pop("transmissivity")
    assert dijkstra_distance_path(g, "a", "b", transmissivity_min=0.1) == ["a", "h", "b"]
    with pytest.raises(ValueError, match="within"):
        dijkstra_distance_path(g, "a", "b", transmissivity_min=2.0)


# --- tie-breaking -----------------------------------------------------------------------------


def test_equal_paths_break_ties_by_name_whatever_the_insertion_order():
    edges = [
        ("a", "c", link(1 * MS)),
        ("c", "x", link(1 * MS)),
        ("x", "d", link(1 * MS)),
        ("a", "b", link(1 * MS)),
        ("b", "y", link(1 * MS)),
        ("y", "d", link(1 * MS)),
        ("a", "z", link(1.5 * MS)),
        ("z", "d", link(1.5 * MS)),
    ]
    # three paths of 3 ms; the rule: smallest-name tight predecessor, i.e. the path read from
    # d backwards is smallest: (d, x, c, a) < (d, y, b, a) < (d, z, a)
    results = set()
    for order in range(40):
        g = build(edges, order=order)
        results.add(tuple(static_shortest_path(g, "a", "d")))
        results.add(tuple(static_shortest_path(g, "d", "a")))
        results.add(tuple(tuple(p) for p in k_shortest_paths(g, "a", "d", 3)))
    assert results == {
        ("a", "c", "x", "d"),
        ("d", "y", "b", "a"),  # back from a: b < c < z
        (("a", "c", "x", "d"), ("a", "b", "y", "d"), ("a", "z", "d")),
    }


def test_lazy_paths_break_csgraphs_ties_by_rank():
    # a diamond 0 -> {1, 2} -> 3 of equal weights: csgraph reaches 3 over one of 1 and 2 by
    # its own order; the name tie-break takes the middle node of smaller rank. The ranking
    # that puts csgraph's first agrees with it; the other does not, and the path is walked
    # back by rank instead: either way the smaller-ranked middle node
    from scipy.sparse import csr_matrix

    from twin.network.routing import _csgraph_paths, _distance_rows, _name_tie_break_agrees

    rows, cols = [0, 0, 1, 2, 1, 2, 3, 3], [1, 2, 3, 3, 0, 0, 1, 2]
    csr = csr_matrix((np.full(8, 5.0), (rows, cols)), shape=(4, 4))
    dist, pred = _distance_rows(csr, [0], {0: [3]}, {0: None})
    (csgraph_path,) = _csgraph_paths([(0, 3)], dist, pred)
    verdicts = {}
    for middle in (1, 2):  # the middle node ranked first
        rank = np.array([0, 1 if middle == 1 else 2, 1 if middle == 2 else 2, 3])
        (agrees,) = _name_tie_break_agrees(csr.tocsc(), [(0, 3)], [csgraph_path], dist, rank)
        verdicts[middle] = agrees
        assert shortest_paths_between(csr, [(0, 3)], rank=rank) == [[0, middle, 3]]
    assert verdicts == {csgraph_path[1]: True, 3 - csgraph_path[1]: False}


def test_a_bounded_search_that_reached_its_whole_piece_of_the_graph_is_not_run_again():
    """A destination a bounded search misses is unreachable when no edge leaves the nodes it
    reached (the row is the full search's); else the search runs in full."""
    from unittest import mock

    from scipy.sparse import csr_matrix

    import twin.network.routing as routing

    # two pieces: 0 - 1 - 2 (edges of 5), and 3 - 4 (the destination 4 is out of 0's reach)
    rows, cols = [0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]
    csr = csr_matrix((np.full(6, 5.0), (rows, cols)), shape=(5, 5))
    calls = []
    with mock.patch.object(routing, "dijkstra", wraps=routing.dijkstra) as search:
        search.side_effect = lambda *a, **k: calls.append(k.get("limit")) or mock.DEFAULT
        assert shortest_paths_between(csr, [(0, 4), (0, 2)], bounds=[20.0, 20.0]) == [
            None, [0, 1, 2],
        ]  # fmt: skip
        assert calls == [20.0]  # the bounded search alone: 0, 1 and 2 were all it could reach
        calls.clear()
        # a bound short of node 2: the nodes reached (0, 1) have an edge out, so 0's row is
        # not whole and the search runs again in full, finding the path past the bound
        assert shortest_paths_between(csr, [(0, 2)], bounds=[6.0]) == [[0, 1, 2]]
        assert calls == [6.0, None]
    assert routing._whole_component(csr, np.array([0.0, 5.0, 10.0, np.inf, np.inf]))
    assert not routing._whole_component(csr, np.array([0.0, 5.0, np.inf, np.inf, np.inf]))


def test_float_sums_do_not_break_exact_ties():
    # 0.1 + 0.2 != 0.3 in floats; quantised to 1 ns both paths weigh the same, so the rule
    # decides, not the rounding
    edges = [
        ("s", "m", link(0.1)),
        ("m", "t", link(0.2)),
        ("s", "k", link(0.15)),
        ("k", "t", link(0.15)),
    ]
    assert 0.1 + 0.2 > 0.15 + 0.15
    assert static_shortest_path(build(edges), "s", "t") == ["s", "k", "t"]
    edges[2:] = [("s", "n", link(0.15)), ("n", "t", link(0.15))]
    assert static_shortest_path(build(edges), "s", "t") == ["s", "m", "t"]  # m < n decides


# --- regulatory constraint --------------------------------------------------------------------


def test_forbidden_jurisdictions_are_never_transited_but_endpoints_are_allowed():
    edges = [
        ("munich", "zurich", link(1 * MS)),
        ("zurich", "milan", link(1 * MS)),
        ("munich", "vienna", link(2 * MS)),
        ("vienna", "milan", link(2 * MS)),
        ("munich", "sat-1", link(3 * MS)),
        ("sat-1", "milan", link(3 * MS)),
    ]
    juris = {"munich": "DE", "zurich": "CH", "milan": "IT", "vienna": "AT"}
    g = build(edges, juris)
    assert static_shortest_path(g, "munich", "milan") == ["munich", "zurich", "milan"]
    path = static_shortest_path(g, "munich", "milan", forbidden_jurisdictions=["ch"])
    assert path == ["munich", "vienna", "milan"]
    assert transit_violations(g, ["munich", "zurich", "milan"], ["CH"]) == ["zurich"]
    # satellites carry no jurisdiction and stay usable
    path = static_shortest_path(g, "munich", "milan", forbidden_jurisdictions=["CH", "AT"])
    assert path == ["munich", "sat-1", "milan"]
    # the endpoints themselves may be in a forbidden jurisdiction
    assert static_shortest_path(g, "munich", "zurich", forbidden_jurisdictions=["CH", "DE"]) == [
        "munich",
        "zurich",
    ]
    g.remove_node("sat-1")
    assert static_shortest_path(g, "munich", "milan", forbidden_jurisdictions=["CH", "AT"]) is None
    assert k_shortest_paths(g, "munich", "milan", 3, forbidden_jurisdictions=["CH", "AT"]) == []


# --- random graphs: networkx form, csgraph form, invariants --------------------------------------


@st.composite
def random_snapshots(draw):
    n = draw(st.integers(min_value=2, max_value=9))
    names = [f"n{k}" for k in range(n)]
    pairs = [(names[i], names[j]) for i in range(n) for j in range(n) if i != j]
    directed = draw(st.booleans())
    if not directed:
        pairs = [(u, v) for u, v in pairs if u < v]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)))
    edges = []
    for u, v in chosen:
        # few distinct latencies so that equal-weight paths are common
        latency = draw(st.sampled_from([1 * MS, 2 * MS, 3 * MS, 0.5 * MS]))
        edges.append((u, v, link(latency, up=draw(st.booleans()) or draw(st.booleans()))))
    juris = {nm: draw(st.sampled_from(["DE", "CH", "FR", None])) for nm in names}
    juris = {k: v for k, v in juris.items() if v is not None}
    forbidden = draw(st.sampled_from([(), ("CH",), ("CH", "FR")]))
    order = draw(st.integers(min_value=0, max_value=10**6))
    return names, edges, juris, directed, forbidden, order


@settings(max_examples=150, deadline=None)
@given(random_snapshots())
def test_random_graphs_agree_and_obey_the_rules(snapshot):
    names, edges, juris, directed, forbidden, order = snapshot
    g = build(edges, juris, directed=directed)
    g.add_nodes_from(names)
    g2 = build(edges, juris, directed=directed, order=order)
    g2.add_nodes_from(reversed(names))
    csr, index = graph_to_csr(g)
    blocked = no_transit_mask(index, dict(g.nodes(data="jurisdiction")), forbidden)
    sources = index.indices(names)
    dist, pred = shortest_paths_from_sources(csr, sources, rank=index.rank, no_transit=blocked)
    dist_cs, _ = shortest_paths_from_sources(csr, sources, no_transit=blocked, tie_break="csgraph")
    np.testing.assert_array_equal(dist, dist_cs)
    # the lazy form (walk back from each destination) gives the same paths
    pairs = [(index.position[s], index.position[t]) for s, t in itertools.product(names, names)]
    found = shortest_paths_between(csr, pairs, rank=index.rank, no_transit=blocked)
    lazy = dict(zip(pairs, found, strict=True))

    # bounds below, at and above a pair's distance (or none, or unreachable pairs') only
    # speed the search: the same paths
    def bound(k, dst):
        scale = (0.5, 1.0, 2.0, None)[(k + order) % 4]
        distance = dist[k // len(names), dst]  # (row: the pair's source, as pairs are made)
        if scale is None:
            return None
        return scale * distance if np.isfinite(distance) else 1.0

    bounds = [bound(k, d) for k, (_, d) in enumerate(pairs)]
    assert found == shortest_paths_between(
        csr, pairs, rank=index.rank, no_transit=blocked, bounds=bounds
    )
    if not directed:  # an undirected graph's walks may read its rows for its columns
        assert found == shortest_paths_between(
            csr, pairs, rank=index.rank, no_transit=blocked, bounds=bounds, symmetric=True
        )

    for (i, s), t in itertools.product(enumerate(names), names):
        path = shortest_path(g, s, t, forbidden_jurisdictions=forbidden)
        # insertion order never matters
        assert path == shortest_path(g2, s, t, forbidden_jurisdictions=forbidden)
        # the csgraph batch form gives the same path (same tie rule)
        idx_path = path_from_predecessors(pred[i], index.position[s], index.position[t])
        assert (None if idx_path is None else [index.names[k] for k in idx_path]) == path
        assert lazy[index.position[s], index.position[t]] == idx_path
        # reference: networkx on the allowed subgraph (up links, no forbidden transit)
        allowed = g.subgraph(
            [n for n in g if n in (s, t) or juris.get(n) not in forbidden]
        ).edge_subgraph([(u, v) for u, v, d in g.edges(data=True) if d["up"]])
        reachable = s == t or (s in allowed and t in allowed and nx.has_path(allowed, s, t))
        if path is None:
            assert not reachable
            assert math.isinf(dist[i, index.position[t]])
            continue
        assert reachable and path[0] == s and path[-1] == t
        assert all(
            g.edges[u, v]["up"] for u, v in itertools.pairwise(path)
        )  # down links never used
        assert transit_violations(g, path, forbidden) == []
        ref_s = 0.0 if s == t else nx.dijkstra_path_length(allowed, s, t, weight="latency_s")
        assert path_latency_s(g, path) == pytest.approx(ref_s, abs=1e-12)
        assert dist[i, index.position[t]] * 1e-9 == pytest.approx(ref_s, abs=1e-12)
        # the first of the k shortest is the shortest path
        ks = k_shortest_paths(g2, s, t, 3, forbidden_jurisdictions=forbidden)
        assert ks[0] == path
        weights = [path_latency_s(g, p) for p in ks]
        assert weights == sorted(weights) and len({tuple(p) for p in ks}) == len(ks)


# --- batch form details -----------------------------------------------------------------------


@pytest.mark.parametrize("directed", [False, True])
def test_sorted_edge_arrays_give_the_same_matrix_as_shuffled_ones(directed):
    # a snapshot's (a, b)-sorted order takes a shortcut; any order must give the same CSR
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 12, 200), rng.integers(0, 12, 200)
    a, b = np.minimum(a, b), np.maximum(a, b)
    a, b = a[a < b], b[a < b]
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    w = rng.choice([1e-9, 2e-9, 3e-9, 0.0], a.size)
    usable = rng.random(a.size) < 0.8
    shuffle = rng.permutation(a.size)
    kw = {"weight_quantum": 1e-9, "directed": directed}
    m1 = csr_from_edge_arrays(12, a, b, w, usable=usable, **kw)
    m2 = csr_from_edge_arrays(12, a[shuffle], b[shuffle], w[shuffle], usable=usable[shuffle], **kw)
    for field in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(m1, field), getattr(m2, field))
        assert getattr(m1, field).dtype == getattr(m2, field).dtype


@pytest.mark.parametrize("directed", [False, True])
def test_sorted_edge_arrays_of_a_large_sparse_graph_give_the_same_matrix(directed):
    # many nodes without edges, hub rows, parallel edges with ties: the shortcut's rows,
    # columns, dtypes and weights are those of the general path, array for array
    rng = np.random.default_rng(11)
    n = 3000
    a = np.concatenate([rng.integers(0, 40, 3000), rng.integers(0, n, 3000)])
    b = np.concatenate([rng.integers(0, n, 3000), rng.integers(0, n, 3000)])
    a, b = np.minimum(a, b), np.maximum(a, b)
    a, b = a[a < b], b[a < b]
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    w = rng.choice([1e-9, 2e-9, 5e-9], a.size)
    usable = rng.random(a.size) < 0.9
    shuffle = rng.permutation(a.size)
    kw = {"weight_quantum": 1e-9, "directed": directed}
    m1 = csr_from_edge_arrays(n, a, b, w, usable=usable, **kw)
    m2 = csr_from_edge_arrays(n, a[shuffle], b[shuffle], w[shuffle], usable=usable[shuffle], **kw)
    assert m1.has_sorted_indices and m1.nnz == m2.nnz > 0
    for field in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(m1, field), getattr(m2, field))
        assert getattr(m1, field).dtype == getattr(m2, field).dtype


def test_removing_rows_keeps_the_arrays_of_the_sparse_product():
    # the no-transit matrices drop rows directly; the general form (a sparse product) is the
    # reference, array for array, dtypes included
    from scipy.sparse import random as sparse_random

    from twin.network.routing import _without_rows

    rng = np.random.default_rng(5)
    for _ in range(100):
        n = int(rng.integers(1, 50))
        m = sparse_random(n, n, density=rng.uniform(0, 0.4), random_state=rng, format="csr")
        m.data = np.maximum(np.rint(m.data * 100), 1.0)
        rows = rng.choice(n, size=int(rng.integers(0, n + 1)), replace=False)
        keep = np.ones(n)
        keep[rows] = 0.0
        ref = m.multiply(keep[:, None]).tocsr()
        ref.eliminate_zeros()
        ref.sort_indices()
        out = _without_rows(m, rows)
        assert out.has_sorted_indices and out.shape == ref.shape
        for field in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(out, field), getattr(ref, field))
            assert getattr(out, field).dtype == getattr(ref, field).dtype


def test_no_transit_mask_reads_jurisdictions_by_name():
    index = NodeIndex.from_names(["sat-1", "berlin", "zurich", "paris", "sat-0"])
    juris = {"zurich": "ch", "paris": "FR", "berlin": None, "nowhere": "CH", "sat-0": "ch"}
    assert no_transit_mask(index, juris, ["CH"]).tolist() == [False, False, True, False, True]
    assert no_transit_mask(index, juris, ["fr", "CH"]).tolist() == [
        False, False, True, True, True,
    ]  # fmt: skip
    assert not no_transit_mask(index, juris, []).any()


def test_edge_arrays_keep_the_best_parallel_edge_and_no_zeros():
    # FSO and RF between the same OGS and satellite: the smaller weight wins (as Snapshot.to_csr)
    m = csr_from_edge_arrays(
        3,
        a=np.array([0, 0, 1, 1]),
        b=np.array([1, 1, 2, 2]),
        weight=np.array([5e-3, 3e-3, 0.0, 1e-3]),
        usable=np.array([True, True, True, False]),
        weight_quantum=1e-9,
    )
    assert m[0, 1] == m[1, 0] == 3_000_000
    assert m[1, 2] == 1  # a zero latency costs one quantum, not an explicit zero
    dist, pred = shortest_paths_from_sources(m, [0])
    assert dist[0].tolist() == [0, 3_000_000, 3_000_001]
    assert pred[0].tolist() == [NO_PREDECESSOR, 0, 1]
    assert path_from_predecessors(pred[0], 0, 2) == [0, 1, 2]
    with pytest.raises(ValueError, match="finite"):
        csr_from_edge_arrays(2, np.array([0]), np.array([1]), np.array([np.nan]), weight_quantum=1)


def test_topology_order_index_breaks_ties_by_name():
    # node order as the topology keeps it (scenario order), ties decided by name via rank
    index = NodeIndex.from_names(["zeta", "alpha", "src", "dst"])
    a = index.indices(["src", "src", "zeta", "alpha"])
    b = index.indices(["zeta", "alpha", "dst", "dst"])
    m = csr_from_edge_arrays(4, a, b, np.full(4, 1e-3), weight_quantum=1e-9)
    _, pred = shortest_paths_from_sources(m, index.indices(["src"]), rank=index.rank)
    path = path_from_predecessors(pred[0], index.position["src"], index.position["dst"])
    assert [index.names[k] for k in path] == ["src", "alpha", "dst"]
    _, pred = shortest_paths_from_sources(m, index.indices(["src"]))  # by index: zeta first
    path = path_from_predecessors(pred[0], index.position["src"], index.position["dst"])
    assert [index.names[k] for k in path] == ["src", "zeta", "dst"]


def test_a_blocked_source_may_still_send():
    # src is in a forbidden jurisdiction: it sends, but nothing relays through "mid" (CH)
    g = build(
        [
            ("src", "mid", link(1 * MS)),
            ("mid", "dst", link(1 * MS)),
            ("src", "alt", link(5 * MS)),
            ("alt", "dst", link(5 * MS)),
        ],
        {"src": "CH", "mid": "CH", "dst": "DE", "alt": "FR"},
    )
    csr, index = graph_to_csr(g)
    blocked = no_transit_mask(index, dict(g.nodes(data="jurisdiction")), ["CH"])
    dist, pred = shortest_paths_from_sources(
        csr, index.indices(["src", "alt"]), rank=index.rank, no_transit=blocked
    )
    to_names = lambda row, s, t: [  # noqa: E731
        index.names[k] for k in path_from_predecessors(row, index.position[s], index.position[t])
    ]
    assert to_names(pred[0], "src", "dst") == ["src", "alt", "dst"]
    assert to_names(pred[0], "src", "mid") == ["src", "mid"]  # a forbidden node may be the end
    # alt-src-mid weighs the same but src (CH) may not relay
    assert to_names(pred[1], "alt", "mid") == ["alt", "dst", "mid"]
    assert shortest_path(g, "src", "dst", forbidden_jurisdictions=["CH"]) == ["src", "alt", "dst"]


# --- path helpers and errors ------------------------------------------------------------------


def test_path_helpers():
    g = build(
        [
            ("a", "b", link(1 * MS, skr_bps=5e3, transmissivity=0.4)),
            ("b", "c", link(2 * MS, skr_bps=2e3, transmissivity=0.7)),
        ]
    )
    assert path_latency_s(g, ["a", "b", "c"]) == pytest.approx(3 * MS)
    assert path_bottleneck_skr_bps(g, ["a", "b", "c"]) == 2e3
    assert path_min_transmissivity(g, ["a", "b", "c"]) == 0.4
    assert path_bottleneck_skr_bps(g, ["a"]) == math.inf
    assert path_min_transmissivity(g, ["a"]) == 1.0 and path_latency_s(g, ["a"]) == 0.0
    with pytest.raises(ValueError, match="not an edge"):
        path_latency_s(g, ["a", "c"])


def test_caller_mistakes_are_named():
    g = build([("a", "b", link(1 * MS))])
    with pytest.raises(ValueError, match="not a node"):
        static_shortest_path(g, "a", "x")
    with pytest.raises(ValueError, match="multigraph"):
        static_shortest_path(nx.MultiGraph(g), "a", "b")
    with pytest.raises(ValueError, match="weight_quantum"):
        shortest_path(g, "a", "b", weight="skr_bps")
    g.edges["a", "b"]["latency_s"] = -1.0
    with pytest.raises(ValueError, match=">= 0"):
        static_shortest_path(g, "a", "b")
    del g.edges["a", "b"]["latency_s"]
    with pytest.raises(ValueError, match="no 'latency_s'"):
        static_shortest_path(g, "a", "b")
    with pytest.raises(ValueError, match="positive integer"):
        k_shortest_paths(g, "a", "b", 0)
    with pytest.raises(ValueError, match="collection of codes"):
        static_shortest_path(g, "a", "b", forbidden_jurisdictions="CH")
