"""Routing primitives over one snapshot of G(t): pure functions, deterministic tie-breaking.

Two forms of a snapshot are accepted:

* a networkx ``Graph`` or ``DiGraph`` whose edges carry ``latency_s``, ``up``, ``kind``,
  ``skr_bps``, ``distance_m`` and ``transmissivity`` (``transmittance`` is read when
  ``transmissivity`` is absent: the topology's name for the same quantity) and whose nodes may
  carry ``jurisdiction``; an edge without ``up`` counts as up. Multigraphs are refused: keep the
  best edge of each node pair (as ``Snapshot.to_csr`` does) before routing.
* sparse CSR matrices (:func:`graph_to_csr`, :func:`csr_from_edge_arrays`) for the batch form,
  :func:`shortest_paths_from_sources`, built on ``scipy.sparse.csgraph.dijkstra``.

Baselines
    :func:`static_shortest_path` is the main paper's baseline (sec. IX): shortest path by
    propagation delay over the links that are up; no key, weather or prediction awareness.
    :func:`dijkstra_distance_path` is SPARQ's (sec. V-B, Fig. 10): shortest by link distance over
    the links whose transmissivity reaches a threshold.

Exact weights
    Weights are quantised to integers before the search (``latency_s`` to 1 ns, ``distance_m``
    to 1 mm; pass ``weight_quantum`` for other attributes), each edge costing at least one
    quantum. Path lengths are then exact integer sums, so "equal weight" is exact equality,
    not an accident of float summation order, and the CSR form needs no explicit zeros
    (which csgraph would read as missing edges).

Tie-breaking (the rule, identical in both forms)
    Among the minimum-weight paths, each node's predecessor is the smallest node name among
    its tight predecessors (``dist[u] + w(u, v) == dist[v]``). Equivalently, the path read from
    the destination back to the source is the lexicographically smallest. Insertion order of
    nodes and edges never matters.

Regulatory constraint (main paper sec. IV-B)
    A flow may forbid transit through some jurisdictions (node attribute ``jurisdiction``).
    Nodes of a forbidden jurisdiction are excluded as intermediate hops; the flow's own
    endpoints are always allowed (a factory in a forbidden country may still send and receive
    its own data). Nodes without a ``jurisdiction`` (satellites, HAPS unless given one) are
    never excluded. If no path remains, the result is None, not an exception.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
from scipy.sparse import csc_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra

__all__ = [
    "DEFAULT_WEIGHT_QUANTA",
    "NO_PREDECESSOR",
    "NodeIndex",
    "csr_from_edge_arrays",
    "dijkstra_distance_path",
    "edge_transmissivity",
    "graph_to_csr",
    "k_shortest_paths",
    "no_transit_mask",
    "path_bottleneck_skr_bps",
    "path_distance_m",
    "path_from_predecessors",
    "path_latency_s",
    "path_min_transmissivity",
    "path_weight",
    "shortest_path",
    "shortest_paths_between",
    "shortest_paths_from_sources",
    "static_shortest_path",
    "transit_violations",
]

DEFAULT_WEIGHT_QUANTA: Mapping[str, float] = {
    "latency_s": 1e-9,  # 1 ns: the model's time quantum (message timestamps are int ns)
    "distance_m": 1e-3,  # 1 mm
}
NO_PREDECESSOR = -9999  # scipy.sparse.csgraph's marker, kept for familiarity

EdgeFilter = Callable[[Mapping[str, Any]], bool]


# --------------------------------------------------------------------------------------------
# edge attributes and weights
# --------------------------------------------------------------------------------------------


def _check_graph(graph: nx.Graph) -> None:
    if not isinstance(graph, nx.Graph):
        raise ValueError(f"graph must be a networkx Graph or DiGraph, got {type(graph).__name__}")
    if graph.is_multigraph():
        raise ValueError(
            "multigraphs are not routed: keep one edge per node pair (the best one for the "
            "weight, as Snapshot.to_csr does) and pass a Graph or DiGraph"
        )


def _is_up(data: Mapping[str, Any]) -> bool:
    return bool(data.get("up", True))


def edge_transmissivity(data: Mapping[str, Any]) -> float:
    """An edge's transmissivity: ``transmissivity``, else ``transmittance`` (same quantity)."""
    if "transmissivity" in data:
        return float(data["transmissivity"])
    if "transmittance" in data:
        return float(data["transmittance"])
    raise ValueError(
        f"edge attributes {sorted(data)} have no transmissivity; set 'transmissivity' (or "
        "'transmittance') on every edge"
    )


def _quantum(weight: str, weight_quantum: float | None) -> float:
    if weight_quantum is None:
        try:
            return DEFAULT_WEIGHT_QUANTA[weight]
        except KeyError:
            raise ValueError(
                f"no default quantum for weight {weight!r}: pass weight_quantum (the smallest "
                f"difference that matters, in the attribute's unit); defaults exist for "
                f"{sorted(DEFAULT_WEIGHT_QUANTA)}"
            ) from None
    if not (weight_quantum > 0 and math.isfinite(weight_quantum)):
        raise ValueError(f"weight_quantum must be a positive finite number, got {weight_quantum!r}")
    return float(weight_quantum)


def _quantise(value: Any, quantum: float, where: str) -> int:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(w) or w < 0:
        raise ValueError(
            f"{where} must be finite and >= 0, got {w!r} (mark unusable links up=False instead)"
        )
    steps = round(w / quantum)
    if steps >= 2**52:
        raise ValueError(f"{where} = {w!r} is too large for quantum {quantum!r}: raise the quantum")
    return max(1, steps)


def _edge_weight(u: Hashable, v: Hashable, data: Mapping[str, Any], weight: str, q: float) -> int:
    if weight not in data:
        raise ValueError(f"edge ({u!r}, {v!r}) has no {weight!r} attribute")
    return _quantise(data[weight], q, f"edge ({u!r}, {v!r}) {weight}")


def _codes(forbidden: Iterable[str]) -> set[str]:
    if isinstance(forbidden, str):
        raise ValueError(
            f"forbidden_jurisdictions must be a collection of codes, got the string "
            f"{forbidden!r}: write [{forbidden!r}]"
        )
    return {str(c).strip().upper() for c in forbidden}


def _excluded_nodes(
    graph: nx.Graph, forbidden: Iterable[str], endpoints: Iterable[Hashable]
) -> set[Hashable]:
    forbidden = _codes(forbidden)
    if not forbidden:
        return set()
    keep = set(endpoints)
    return {
        n
        for n, j in graph.nodes(data="jurisdiction")
        if j is not None and str(j).upper() in forbidden and n not in keep
    }


def _usable(edge_filter: EdgeFilter | None) -> EdgeFilter:
    if edge_filter is None:
        return _is_up
    return lambda data: _is_up(data) and edge_filter(data)


def _transmissivity_filter(transmissivity_min: float) -> EdgeFilter:
    if not 0.0 <= transmissivity_min <= 1.0:
        raise ValueError(f"transmissivity_min must be within [0, 1], got {transmissivity_min!r}")
    return lambda data: edge_transmissivity(data) >= transmissivity_min


# --------------------------------------------------------------------------------------------
# single pair (networkx snapshot)
# --------------------------------------------------------------------------------------------


def shortest_path(
    graph: nx.Graph,
    src: Hashable,
    dst: Hashable,
    *,
    weight: str = "latency_s",
    weight_quantum: float | None = None,
    forbidden_jurisdictions: Iterable[str] = (),
    edge_filter: EdgeFilter | None = None,
) -> list[Hashable] | None:
    """Minimum-weight path over the usable edges, or None if there is none.

    Usable: ``up`` (absent: up) and ``edge_filter(data)`` if given. Nodes of
    ``forbidden_jurisdictions`` other than ``src`` and ``dst`` are skipped. Ties follow the
    module's rule (smallest-name tight predecessor). ``src == dst`` gives ``[src]``.
    """
    _check_graph(graph)
    for end, name in ((src, "src"), (dst, "dst")):
        if end not in graph:
            raise ValueError(f"{name} {end!r} is not a node of the graph")
    if src == dst:
        return [src]
    q = _quantum(weight, weight_quantum)
    usable = _usable(edge_filter)
    excluded = _excluded_nodes(graph, forbidden_jurisdictions, (src, dst))
    successors = graph.succ if graph.is_directed() else graph.adj
    predecessors = graph.pred if graph.is_directed() else graph.adj

    # Dijkstra to dst; `done` holds final distances only (popped nodes)
    done: dict[Hashable, int] = {}
    tentative: dict[Hashable, int] = {src: 0}
    counter = itertools.count()  # heap order among equal distances does not affect the result
    heap: list[tuple[int, int, Hashable]] = [(0, next(counter), src)]
    while heap:
        d, _, u = heapq.heappop(heap)
        if u in done:
            continue
        done[u] = d
        if u == dst:
            break
        for v, data in successors[u].items():
            if v in done or v in excluded or not usable(data):
                continue
            nd = d + _edge_weight(u, v, data, weight, q)
            if nd < tentative.get(v, nd + 1):
                tentative[v] = nd
                heapq.heappush(heap, (nd, next(counter), v))
    if dst not in done:
        return None

    # walk back: the smallest-name tight predecessor at every node
    path = [dst]
    v = dst
    while v != src:
        best = None
        for u, data in predecessors[v].items():
            if u not in done or u in excluded or not usable(data):
                continue
            if done[u] + _edge_weight(u, v, data, weight, q) == done[v]:
                if best is None or u < best:
                    best = u
        if best is None:  # cannot happen: dst was reached through some tight edge
            raise RuntimeError(f"no tight predecessor of {v!r}: routing invariant violated")
        path.append(best)
        v = best
    path.reverse()
    return path


def static_shortest_path(
    graph: nx.Graph,
    src: Hashable,
    dst: Hashable,
    *,
    weight: str = "latency_s",
    forbidden_jurisdictions: Iterable[str] = (),
    weight_quantum: float | None = None,
) -> list[Hashable] | None:
    """The main paper's baseline: shortest by propagation delay over the links that are up.

    No key, weather or prediction awareness (main paper sec. IX, "static shortest-path
    routing"). Returns the node list from ``src`` to ``dst`` or None.
    """
    return shortest_path(
        graph,
        src,
        dst,
        weight=weight,
        weight_quantum=weight_quantum,
        forbidden_jurisdictions=forbidden_jurisdictions,
    )


def dijkstra_distance_path(
    graph: nx.Graph,
    src: Hashable,
    dst: Hashable,
    *,
    transmissivity_min: float,
    forbidden_jurisdictions: Iterable[str] = (),
    weight: str = "distance_m",
    weight_quantum: float | None = None,
) -> list[Hashable] | None:
    """SPARQ's baseline: Dijkstra by link distance over links with transmissivity >= threshold.

    SPARQ (Shaban et al., IEEE TQE 2024) sec. V-B: nodes connect when the link transmissivity
    reaches a threshold, and the shortest-path baseline "only focuses on link distance and does
    not consider link quality" (Fig. 10). Down links are excluded too. ``transmissivity_min``
    is a scenario setting (the paper's value is lost in our text copy).
    """
    return shortest_path(
        graph,
        src,
        dst,
        weight=weight,
        weight_quantum=weight_quantum,
        forbidden_jurisdictions=forbidden_jurisdictions,
        edge_filter=_transmissivity_filter(transmissivity_min),
    )


def _canonical_subgraph(
    graph: nx.Graph,
    weight: str,
    q: float,
    usable: EdgeFilter,
    excluded: set[Hashable],
) -> nx.Graph:
    """A copy with the usable edges only, built in sorted order, weights in quanta (``_w``)."""
    h = graph.__class__()
    h.add_nodes_from(sorted(n for n in graph.nodes if n not in excluded))
    edges = []
    for u, v, data in graph.edges(data=True):
        if u in excluded or v in excluded or not usable(data):
            continue
        if not graph.is_directed() and v < u:
            u, v = v, u
        edges.append((u, v, _edge_weight(u, v, data, weight, q)))
    edges.sort()
    h.add_weighted_edges_from(edges, weight="_w")
    return h


def k_shortest_paths(
    graph: nx.Graph,
    src: Hashable,
    dst: Hashable,
    k: int,
    *,
    weight: str = "latency_s",
    weight_quantum: float | None = None,
    forbidden_jurisdictions: Iterable[str] = (),
    edge_filter: EdgeFilter | None = None,
    max_ties: int | None = None,
) -> list[list[Hashable]]:
    """Up to ``k`` loopless paths in order of weight, then names read from dst, for controllers.

    Built on ``networkx.shortest_simple_paths`` (Yen's algorithm) over a canonical copy of the
    usable subgraph, so the result never depends on insertion order. Paths tied with the k-th
    are also drawn (up to ``max_ties``, default 4k) and the list is sorted by weight, ties by
    the module's rule (the path read from dst back), before cutting to k: the first path is
    :func:`shortest_path`'s whenever the ties fit. Usability and jurisdictions as in
    :func:`shortest_path`. Returns ``[]`` when dst is unreachable.
    """
    _check_graph(graph)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    for end, name in ((src, "src"), (dst, "dst")):
        if end not in graph:
            raise ValueError(f"{name} {end!r} is not a node of the graph")
    if src == dst:
        return [[src]]
    q = _quantum(weight, weight_quantum)
    excluded = _excluded_nodes(graph, forbidden_jurisdictions, (src, dst))
    h = _canonical_subgraph(graph, weight, q, _usable(edge_filter), excluded)
    extra = 4 * k if max_ties is None else max_ties
    found: list[tuple[int, list[Hashable]]] = []
    try:
        for path in nx.shortest_simple_paths(h, src, dst, weight="_w"):
            w = nx.path_weight(h, path, "_w")
            if len(found) >= k and (w > found[k - 1][0] or len(found) >= k + extra):
                break
            found.append((w, path))
    except nx.NetworkXNoPath:
        return []
    # ties in the order of the module's rule: the path read backwards, smallest first
    found.sort(key=lambda wp: (wp[0], wp[1][::-1]))
    return [p for _, p in found[:k]]


# --------------------------------------------------------------------------------------------
# path properties
# --------------------------------------------------------------------------------------------


def _path_edges(graph: nx.Graph, path: Sequence[Hashable]) -> list[Mapping[str, Any]]:
    _check_graph(graph)
    if len(path) == 0:
        raise ValueError("path is empty: give at least one node")
    out = []
    for u, v in itertools.pairwise(path):
        if not graph.has_edge(u, v):
            raise ValueError(f"path hop ({u!r}, {v!r}) is not an edge of the graph")
        out.append(graph.edges[u, v])
    return out


def path_weight(graph: nx.Graph, path: Sequence[Hashable], attribute: str) -> float:
    """Sum of an edge attribute along a path (``math.fsum``: exact, order-independent)."""
    return math.fsum(float(d[attribute]) for d in _path_edges(graph, path))


def path_latency_s(graph: nx.Graph, path: Sequence[Hashable]) -> float:
    """Propagation latency of a path, s (sum of ``latency_s``; 0 for a single node)."""
    return path_weight(graph, path, "latency_s")


def path_distance_m(graph: nx.Graph, path: Sequence[Hashable]) -> float:
    """Length of a path, m (sum of ``distance_m``)."""
    return path_weight(graph, path, "distance_m")


def path_bottleneck_skr_bps(graph: nx.Graph, path: Sequence[Hashable]) -> float:
    """Smallest ``skr_bps`` along a path, bit/s: the trusted-relay end-to-end key rate bound.

    A single-node path has no bottleneck (``math.inf``).
    """
    return min((float(d["skr_bps"]) for d in _path_edges(graph, path)), default=math.inf)


def path_min_transmissivity(graph: nx.Graph, path: Sequence[Hashable]) -> float:
    """Smallest transmissivity along a path (1.0 for a single node)."""
    return min((edge_transmissivity(d) for d in _path_edges(graph, path)), default=1.0)


def transit_violations(
    graph: nx.Graph, path: Sequence[Hashable], forbidden_jurisdictions: Iterable[str]
) -> list[Hashable]:
    """Intermediate nodes of ``path`` in a forbidden jurisdiction (endpoints never count).

    An empty list means the path obeys the regulatory constraint (what a shield checks).
    """
    forbidden = _codes(forbidden_jurisdictions)
    out = []
    for n in path[1:-1]:
        j = graph.nodes[n].get("jurisdiction")
        if j is not None and str(j).upper() in forbidden:
            out.append(n)
    return out


# --------------------------------------------------------------------------------------------
# batch form: CSR + scipy.sparse.csgraph
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NodeIndex:
    """A stable node index: ``names[i]`` is node i; ``rank[i]`` its place in sorted name order.

    ``from_graph`` indexes the nodes in sorted order (rank == index); ``from_names`` keeps a
    given order (e.g. the topology's scenario order) and ranks by name for tie-breaking.
    """

    names: tuple[Hashable, ...]
    position: Mapping[Hashable, int]
    rank: np.ndarray

    @classmethod
    def from_names(cls, names: Sequence[Hashable]) -> NodeIndex:
        names = tuple(names)
        position = {n: i for i, n in enumerate(names)}
        if len(position) != len(names):
            raise ValueError("node names must be unique")
        rank = np.empty(len(names), dtype=np.int64)
        rank[sorted(range(len(names)), key=lambda i: names[i])] = np.arange(len(names))
        return cls(names, position, rank)

    @classmethod
    def from_graph(cls, graph: nx.Graph) -> NodeIndex:
        return cls.from_names(sorted(graph.nodes))

    def __len__(self) -> int:
        return len(self.names)

    def indices(self, nodes: Iterable[Hashable]) -> np.ndarray:
        try:
            return np.array([self.position[n] for n in nodes], dtype=np.int64)
        except KeyError as err:
            raise ValueError(f"node {err.args[0]!r} is not in the index") from None


def _csr_from_sorted_pairs(
    n_nodes: int, a: np.ndarray, b: np.ndarray, steps: np.ndarray, *, directed: bool
) -> csr_matrix:
    """The canonical CSR of distinct pairs ``a < b`` sorted by (a, b) (and of their mirror
    images ``(b, a)`` unless ``directed``), built without a general sort: the same arrays
    (index dtype included) as ``csr_matrix((steps, (rows, cols)))`` followed by
    ``sort_indices``, which tests/twin/network/test_routing.py pins."""
    if directed:
        rows, cols, data = a, b, steps
    else:
        # row r holds its lower neighbours (pairs (a, r): a ascending, as the pairs are
        # sorted) before its upper ones (pairs (r, b): b ascending), so a stable sort of the
        # rows of [mirrors, pairs] leaves every row's columns ascending
        rows, cols = np.concatenate([b, a]), np.concatenate([a, b])
        data = np.concatenate([steps, steps])
        key = rows.astype(np.uint16) if n_nodes <= 1 << 16 else rows  # uint16: radix sort
        order = np.argsort(key, kind="stable")
        rows, cols, data = rows[order], cols[order], data[order]
    nnz = cols.size
    index_dtype = np.int32 if max(nnz, n_nodes) <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n_nodes + 1, dtype=index_dtype)
    np.cumsum(np.bincount(rows, minlength=n_nodes), out=indptr[1:])
    m = csr_matrix((data, cols.astype(index_dtype), indptr), shape=(n_nodes, n_nodes))
    m.has_sorted_indices = True
    return m


def csr_from_edge_arrays(
    n_nodes: int,
    a: np.ndarray,
    b: np.ndarray,
    weight: np.ndarray,
    *,
    usable: np.ndarray | None = None,
    weight_quantum: float,
    directed: bool = False,
) -> csr_matrix:
    """CSR adjacency (row = from) of edge arrays, weights in integer quanta (as float64).

    ``a``, ``b``, ``weight`` and ``usable`` have shape (E,). Undirected edges go both ways.
    Parallel edges keep the smallest weight. Weights are ``max(1, round(w / quantum))``, so
    there are no explicit zeros and path sums are exact.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    w = np.asarray(weight, dtype=float)
    if not (a.shape == b.shape == w.shape) or a.ndim != 1:
        raise ValueError(
            f"a, b and weight must share one (E,) shape, got {a.shape}, {b.shape}, {w.shape}"
        )
    mask = np.ones(a.shape, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    if mask.shape != a.shape:
        raise ValueError(f"usable must have shape {a.shape}, got {mask.shape}")
    a, b, w = a[mask], b[mask], w[mask]
    if a.size and (a.min() < 0 or b.min() < 0 or max(a.max(), b.max()) >= n_nodes):
        raise ValueError(f"edge endpoints must be node indices in [0, {n_nodes})")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights of usable edges must be finite and >= 0 (mark others unusable)")
    q = _quantum("", weight_quantum)
    steps = np.maximum(np.rint(w / q), 1.0)
    if steps.size and steps.max() >= 2.0**52:
        raise ValueError(f"a weight is too large for quantum {q!r}: raise the quantum")
    pair = a * n_nodes + b
    if a.size and np.all(a < b) and np.all(pair[1:] >= pair[:-1]):
        # already sorted by (a, b) with a < b (a snapshot's order): parallel edges are
        # neighbours, and the two directions of undirected edges never collide
        distinct = pair[1:] != pair[:-1]
        if not np.all(distinct):
            start = np.flatnonzero(np.r_[True, distinct])
            a, b = a[start], b[start]
            steps = np.minimum.reduceat(steps, start)
        return _csr_from_sorted_pairs(n_nodes, a, b, steps, directed=directed)
    if not directed:
        a, b, steps = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([steps, steps])
    keep = a != b  # self-loops never help a shortest path
    a, b, steps = a[keep], b[keep], steps[keep]
    order = np.lexsort((steps, b, a))
    a, b, steps = a[order], b[order], steps[order]
    first = np.ones(a.size, dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    m = csr_matrix((steps[first], (a[first], b[first])), shape=(n_nodes, n_nodes))
    m.sort_indices()
    return m


def graph_to_csr(
    graph: nx.Graph,
    *,
    weight: str = "latency_s",
    weight_quantum: float | None = None,
    edge_filter: EdgeFilter | None = None,
    index: NodeIndex | None = None,
) -> tuple[csr_matrix, NodeIndex]:
    """CSR of the usable edges of a networkx snapshot, with its node index (sorted names).

    Usable as in :func:`shortest_path` (up, and ``edge_filter``). Jurisdictions are applied
    per source by :func:`shortest_paths_from_sources` (``no_transit``), not here.
    """
    _check_graph(graph)
    index = NodeIndex.from_graph(graph) if index is None else index
    q = _quantum(weight, weight_quantum)
    usable = _usable(edge_filter)
    a, b, w = [], [], []
    for u, v, data in graph.edges(data=True):
        if usable(data):
            a.append(index.position[u])
            b.append(index.position[v])
            w.append(_edge_weight(u, v, data, weight, q))
    m = csr_from_edge_arrays(
        len(index),
        np.array(a, dtype=np.int64),
        np.array(b, dtype=np.int64),
        np.array(w, dtype=float),
        weight_quantum=1.0,  # already in quanta
        directed=graph.is_directed(),
    )
    return m, index


def no_transit_mask(
    index: NodeIndex, jurisdictions: Mapping[Hashable, str | None], forbidden: Iterable[str]
) -> np.ndarray:
    """(N,) bool: nodes whose jurisdiction is forbidden (for ``no_transit``).

    Reads only the nodes that have a jurisdiction (the ground sites: tens, against thousands
    of satellites); names not in ``index`` are ignored.
    """
    forbidden = _codes(forbidden)
    mask = np.zeros(len(index.names), dtype=bool)
    for name, j in jurisdictions.items():
        if j is not None and str(j).upper() in forbidden:
            i = index.position.get(name)
            if i is not None:
                mask[i] = True
    return mask


def _without_rows(m: csr_matrix, rows: np.ndarray) -> csr_matrix:
    """``m`` with the given rows emptied (their edges removed), canonical (sorted indices)."""
    data = m.data
    if (
        data.dtype == np.float64
        and m.has_canonical_format
        and np.all(np.isfinite(data))
        and np.all(data != 0)
    ):
        # the common case (csr_from_edge_arrays' matrices): drop the rows' entries directly,
        # the same arrays as the general form below, without a sparse product
        keep_row = np.ones(m.shape[0], dtype=bool)
        keep_row[rows] = False
        counts = np.diff(m.indptr)
        keep = np.repeat(keep_row, counts)
        indptr = np.zeros_like(m.indptr)
        np.cumsum(np.where(keep_row, counts, 0), out=indptr[1:])
        out = csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)
        out.has_sorted_indices = True
        return out
    keep = np.ones(m.shape[0], dtype=float)
    keep[rows] = 0.0
    out = (m.multiply(keep[:, None])).tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _tight_predecessors(
    m: csr_matrix, dist: np.ndarray, sources: np.ndarray, rank: np.ndarray, block: int = 64
) -> np.ndarray:
    """For each (source, node): the smallest-rank u with dist[u] + w(u, v) == dist[v]."""
    n = m.shape[0]
    coo = m.tocoo()
    u, v, w = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
    order = np.argsort(rank)  # rank -> index
    pred = np.full((len(sources), n), NO_PREDECESSOR, dtype=np.int32)
    for lo in range(0, len(sources), block):
        d = dist[lo : lo + block]
        du = d[:, u]
        tight = np.isfinite(du) & (du + w == d[:, v])
        tight &= v[None, :] != sources[lo : lo + block, None]
        s_idx, e_idx = np.nonzero(tight)
        if s_idx.size == 0:
            continue
        flat = s_idx * n + v[e_idx]
        best = np.full(d.shape[0] * n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, flat, rank[u[e_idx]])
        hit = best != np.iinfo(np.int64).max
        block_pred = np.full(d.shape[0] * n, NO_PREDECESSOR, dtype=np.int64)
        block_pred[hit] = order[best[hit]]
        pred[lo : lo + d.shape[0]] = block_pred.reshape(d.shape[0], n)
    return pred


def shortest_paths_from_sources(
    csr: csr_matrix,
    sources: Sequence[int] | np.ndarray,
    *,
    rank: np.ndarray | None = None,
    no_transit: np.ndarray | None = None,
    tie_break: str = "name",
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and predecessors from each source: arrays of shape (S, N).

    ``csr``: adjacency with row = from (e.g. :func:`graph_to_csr`), integer-quantum weights.
    ``dist[s, v]`` is in weight quanta (``inf``: unreachable); ``pred[s, v]`` is the node
    before v on the path (``NO_PREDECESSOR`` for the source and unreachable nodes).
    ``rank`` (N,) orders nodes for tie-breaking (default: index order; ``NodeIndex.rank``
    ranks by name), giving the same paths as :func:`shortest_path`. ``no_transit`` (N,) bool:
    nodes that may end a path but not relay one (a forbidden jurisdiction); a source is never
    blocked from sending. ``tie_break="csgraph"`` returns csgraph's own predecessors instead:
    deterministic for a given matrix but not by name, and a little faster.
    """
    if not isinstance(csr, csr_matrix):
        csr = csr_matrix(csr)
    n = csr.shape[0]
    sources = np.atleast_1d(np.asarray(sources, dtype=np.int64))
    if sources.ndim != 1 or (sources.size and (sources.min() < 0 or sources.max() >= n)):
        raise ValueError(f"sources must be node indices in [0, {n}), got {sources!r}")
    if tie_break not in ("name", "csgraph"):
        raise ValueError(f"tie_break must be 'name' or 'csgraph', got {tie_break!r}")
    rank = np.arange(n, dtype=np.int64) if rank is None else np.asarray(rank, dtype=np.int64)
    if rank.shape != (n,):
        raise ValueError(f"rank must have shape ({n},), got {rank.shape}")
    blocked = np.zeros(n, dtype=bool) if no_transit is None else np.asarray(no_transit, bool)
    if blocked.shape != (n,):
        raise ValueError(f"no_transit must have shape ({n},), got {blocked.shape}")

    dist = np.full((sources.size, n), np.inf)
    pred = np.full((sources.size, n), NO_PREDECESSOR, dtype=np.int32)
    base = _without_rows(csr, np.flatnonzero(blocked)) if blocked.any() else csr
    # groups of sources sharing a matrix: unblocked sources use `base`; a blocked source
    # gets its own outgoing row back (it may send, not relay)
    groups: list[tuple[np.ndarray, csr_matrix]] = []
    plain = np.flatnonzero(~blocked[sources])
    if plain.size:
        groups.append((plain, base))
    for k in np.flatnonzero(blocked[sources]):
        s = sources[k]
        others = np.flatnonzero(blocked & (np.arange(n) != s))
        groups.append((np.array([k]), _without_rows(csr, others)))
    for rows, m in groups:
        if tie_break == "csgraph":
            d, p = dijkstra(m, directed=True, indices=sources[rows], return_predecessors=True)
            dist[rows], pred[rows] = d, p
        else:
            d = dijkstra(m, directed=True, indices=sources[rows])
            dist[rows] = d
            pred[rows] = _tight_predecessors(m, d, sources[rows], rank)
    return dist, pred


def _tight_walk(
    incoming: csc_matrix | csr_matrix,
    dist: np.ndarray,
    rank: np.ndarray,
    src: int,
    dst: int,
    tails: np.ndarray | None = None,
) -> list[int] | None:
    """The path src -> dst read back from dst: at each node the smallest-rank tight
    predecessor u (``dist[u] + w(u, v) == dist[v]``), as :func:`_tight_predecessors` picks it.

    ``incoming``: the CSC form (column v lists the edges into v) of the matrix the distances
    ``dist`` (one source's row) were computed on, or a symmetric CSR whose row v lists them
    with others, those from nodes u not in ``tails`` ((N,) bool; None: all are edges). Only
    the columns of the path's nodes are read, and only their entries of ``dist`` and ``rank``
    (a walk reads a few dozen: indexed in place, not converted whole).
    """
    indptr, indices, data = incoming.indptr, incoming.indices, incoming.data
    if src == dst:
        return [src]
    if not math.isfinite(dist[dst]):
        return None
    path = [dst]
    v = dst
    for _ in range(len(dist)):
        dv = dist[v]
        best = -1
        best_rank = 0
        lo, hi = indptr[v], indptr[v + 1]
        for u, w in zip(indices[lo:hi].tolist(), data[lo:hi].tolist(), strict=True):
            if (
                dist[u] + w == dv
                and (best < 0 or rank[u] < best_rank)
                and (tails is None or tails[u])
            ):
                best, best_rank = u, int(rank[u])
        if best < 0:  # cannot happen: v was reached through some tight edge
            raise RuntimeError(f"no tight predecessor of node {v}: routing invariant violated")
        path.append(best)
        v = best
        if v == src:
            path.reverse()
            return path
    raise RuntimeError("tight predecessors form a cycle: not a shortest-path tree")


def shortest_paths_between(
    csr: csr_matrix,
    pairs: Sequence[tuple[int, int]],
    *,
    rank: np.ndarray | None = None,
    no_transit: np.ndarray | None = None,
    bounds: Sequence[float | None] | None = None,
    symmetric: bool = False,
) -> list[list[int] | None]:
    """The minimum-weight index path of each (src, dst) pair, or None where unreachable.

    Identical to :func:`shortest_paths_from_sources` (``tie_break="name"``) followed by
    :func:`path_from_predecessors`, but the name tie-break walks only the requested paths
    back from their destinations instead of choosing a predecessor for every node: one
    Dijkstra per distinct source, then a few tight-edge checks per hop. ``rank`` and
    ``no_transit`` as in :func:`shortest_paths_from_sources`.

    ``bounds``: per pair, the weight the caller expects its path to have at most (a known
    path's), or None. A source whose every pair has one is searched only that far first
    (scipy's ``limit``: the nodes within it get their exact distances, the only ones a
    walk back from a destination within it reads), and in full if a destination is not
    reached; so the paths never depend on the bounds, only the time does (on mega most
    flows' destinations are a few ms of a 40 ms graph away: a seventh of the search).

    ``symmetric``: the caller's word that ``csr`` equals its transpose (an undirected graph,
    as :func:`csr_from_edge_arrays` builds by default); the walks back then read the edges
    into a node from its row, without a CSC copy of the matrix (the same paths).
    """
    if not isinstance(csr, csr_matrix):
        csr = csr_matrix(csr)
    n = csr.shape[0]
    pairs = [(int(s), int(d)) for s, d in pairs]
    for s, d in pairs:
        if not (0 <= s < n and 0 <= d < n):
            raise ValueError(f"pair ({s}, {d}) must hold node indices in [0, {n})")
    rank = np.arange(n, dtype=np.int64) if rank is None else np.asarray(rank, dtype=np.int64)
    if rank.shape != (n,):
        raise ValueError(f"rank must have shape ({n},), got {rank.shape}")
    blocked = np.zeros(n, dtype=bool) if no_transit is None else np.asarray(no_transit, bool)
    if blocked.shape != (n,):
        raise ValueError(f"no_transit must have shape ({n},), got {blocked.shape}")
    if bounds is not None and len(bounds) != len(pairs):
        raise ValueError(f"bounds must have one entry per pair ({len(pairs)}), got {len(bounds)}")
    sources = sorted({s for s, _ in pairs})
    # per source its destinations, and how far to search first (None: in full)
    targets: dict[int, list[int]] = {}
    limits: dict[int, float | None] = {}
    for k, (s, d) in enumerate(pairs):
        targets.setdefault(s, []).append(d)
        bound = None if bounds is None else bounds[k]
        limit = limits.get(s, 0.0)
        limits[s] = None if bound is None or limit is None else max(limit, float(bound))
    base = _without_rows(csr, np.flatnonzero(blocked)) if blocked.any() else csr
    # groups of sources sharing a matrix, as in shortest_paths_from_sources
    groups: list[tuple[list[int], csr_matrix]] = []
    plain = [s for s in sources if not blocked[s]]
    if plain:
        groups.append((plain, base))
    for s in sources:
        if blocked[s]:
            others = np.flatnonzero(blocked & (np.arange(n) != s))
            groups.append(([s], _without_rows(csr, others)))
    out: list[list[int] | None] = [None] * len(pairs)
    for group, m in groups:
        dist_rows, pred_rows = _distance_rows(m, group, targets, limits)
        if symmetric:
            # column v of ``m`` is row v of ``csr`` without the edges from the nodes whose
            # rows ``m`` lacks (the blocked ones other than the group's own blocked source)
            incoming, tails = csr, ~blocked
            tails[[s for s in group if blocked[s]]] = True
        else:
            incoming, tails = m.tocsc(), None
        ours = [k for k, (s, _) in enumerate(pairs) if s in dist_rows]
        found = _csgraph_paths([pairs[k] for k in ours], dist_rows, pred_rows)
        agree = _name_tie_break_agrees(
            incoming, [pairs[k] for k in ours], found, dist_rows, rank, tails
        )
        for k, path, same in zip(ours, found, agree, strict=True):
            s, d = pairs[k]
            out[k] = path if same else _tight_walk(incoming, dist_rows[s], rank, s, d, tails)
    return out


def _csgraph_paths(
    pairs: list[tuple[int, int]], dist_rows: dict[int, np.ndarray], pred_rows: dict
) -> list[list[int] | None]:
    """Each pair's path as csgraph's predecessors give it (None where unreachable): a
    shortest path, its ties broken csgraph's way (:func:`_name_tie_break_agrees` checks it
    against the name tie-break)."""
    out: list[list[int] | None] = []
    for s, d in pairs:
        path = path_from_predecessors(pred_rows[s], s, d)
        if path is None and math.isfinite(dist_rows[s][d]):
            raise RuntimeError(f"csgraph's predecessors of {d} never reach {s}: not a tree")
        out.append(path)
    return out


def _name_tie_break_agrees(
    incoming: csc_matrix | csr_matrix,
    pairs: list[tuple[int, int]],
    paths: list[list[int] | None],
    dist_rows: dict[int, np.ndarray],
    rank: np.ndarray,
    tails: np.ndarray | None = None,
) -> list[bool]:
    """Per pair, whether ``paths`` (shortest paths with the distances ``dist_rows``) is the
    path :func:`_tight_walk` reads back (``incoming`` and ``tails`` as there): at every node
    past the source its predecessor on the path is the smallest-rank tight predecessor of
    the node. Every hop of every path checked at once (a walk in Python per path cost more:
    mega's edge tier reads back two dozen a tick); a path without hops agrees, and so does
    no path."""
    hopped = [k for k, p in enumerate(paths) if p is not None and len(p) > 1]
    agree = [True] * len(paths)
    if not hopped:
        return agree
    sources = sorted({pairs[k][0] for k in hopped})
    row_of = {s: i for i, s in enumerate(sources)}
    dist = np.stack([dist_rows[s] for s in sources])
    nodes = [np.asarray(paths[k], dtype=np.int64) for k in hopped]
    hops = np.array([x.size - 1 for x in nodes])
    v = np.concatenate([x[1:] for x in nodes])  # each hop's head ...
    u = np.concatenate([x[:-1] for x in nodes])  # ... its predecessor on the path
    row = np.repeat([row_of[pairs[k][0]] for k in hopped], hops)
    # every edge into each hop's head (its CSC column), the columns one after the other;
    # each column has one at least: the head was reached over some edge
    entry, width, first = _entries_of(incoming, v)
    tail = incoming.indices[entry].astype(np.int64)
    entry_row = np.repeat(row, width)
    tight = dist[entry_row, tail] + incoming.data[entry] == np.repeat(dist[row, v], width)
    if tails is not None:
        tight &= tails[tail]
    best = np.minimum.reduceat(np.where(tight, rank[tail], np.iinfo(np.int64).max), first)
    wrong = np.repeat(np.arange(len(hopped)), hops)[best != rank[u]]
    for i in np.unique(wrong).tolist():
        agree[hopped[i]] = False
    return agree


LIMIT_SPREAD = 2.0  # see _distance_rows


def _distance_rows(
    m: csr_matrix,
    sources: list[int],
    targets: dict[int, list[int]],
    limits: dict[int, float | None],
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per source its Dijkstra distances over ``m``, exact for every node within its
    destination farthest from it (see :func:`shortest_paths_between`'s ``bounds``), and
    csgraph's predecessors with them."""
    rows: dict[int, np.ndarray] = {}
    preds: dict[int, np.ndarray] = {}
    # sources whose limits are within a factor of LIMIT_SPREAD of each other share one search
    # to the largest of them: a node within a source's own limit gets the same exact distance
    # (its row only reaches further), and one scipy call per source cost more in the call than
    # in the search (mega: 18 sources, ~16 us a call, ~1 us a search to a few ms)
    bounded = sorted((limits[s], s) for s in sources if limits[s] is not None)
    while bounded:
        first = bounded[0][0]
        take = 1
        while take < len(bounded) and bounded[take][0] <= LIMIT_SPREAD * max(first, 1.0):
            take += 1
        group, bounded = [s for _, s in bounded[:take]], bounded[take:]
        limit = max(limits[s] for s in group)
        dist, pred = dijkstra(
            m, directed=True, indices=np.array(group), limit=limit, return_predecessors=True
        )
        for row, pred_row, s in zip(dist, pred, group, strict=True):
            if np.isfinite(row[targets[s]]).all() or _whole_component(m, row):
                rows[s], preds[s] = row, pred_row
    rest = [s for s in sources if s not in rows]
    if rest:
        dist, pred = dijkstra(
            m, directed=True, indices=np.array(rest, dtype=np.int64), return_predecessors=True
        )
        rows.update((s, dist[i]) for i, s in enumerate(rest))
        preds.update((s, pred[i]) for i, s in enumerate(rest))
    return rows, preds


def _whole_component(m: csr_matrix, row: np.ndarray) -> bool:
    """Whether the nodes a bounded search reached (``row`` finite) are all that its source
    reaches over ``m``: no edge leaves them. Then the search stopped short of no node, its
    row is the full search's, and a destination it missed is unreachable; a keyed graph
    splits into pieces, and on mega the edge tier asked for a few flows a tick whose keyed
    path does not exist (2,855 searches in 720 ticks ran again in full to learn it)."""
    entry, _, _ = _entries_of(m, np.flatnonzero(np.isfinite(row)))
    return bool(np.isfinite(row[m.indices[entry]]).all())


def _entries_of(m: csr_matrix | csc_matrix, lines: np.ndarray):
    """The stored entries of ``m``'s rows (CSR; columns for CSC) ``lines``, one line after
    the other: (their indices into ``m.indices`` and ``m.data``, each line's count, the
    place of each line's first among them)."""
    lo = m.indptr[lines].astype(np.int64)
    width = m.indptr[lines + 1].astype(np.int64) - lo
    first = np.cumsum(width) - width
    return np.arange(width.sum()) - np.repeat(first - lo, width), width, first


def path_from_predecessors(predecessors: np.ndarray, src: int, dst: int) -> list[int] | None:
    """The index path src -> dst from one row of predecessors, or None if unreachable."""
    if src == dst:
        return [int(src)]
    path = [int(dst)]
    v = int(dst)
    for _ in range(len(predecessors)):
        v = int(predecessors[v])
        if v == NO_PREDECESSOR:
            return None
        path.append(v)
        if v == src:
            path.reverse()
            return path
    raise RuntimeError("predecessor row has a cycle: not a shortest-path tree")
