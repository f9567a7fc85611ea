"""Entanglement distribution along a routed path: SPARQ's TPED policy and the intuitive policy.

Source: SPARQ (Shaban, Ismail, Saad, IEEE TQE 2024, arXiv 2409.12891; ../shared/papers/003_*.txt),
Sec. II-A (node functions), II-C3/II-C4 (amplitude damping, eq. (10)-(12)) and IV (TPED). Memory
decoherence follows the main paper's eq. (3) (../shared/papers/000_*.txt) as modelled in
:mod:`twin.network.memory_slots`.

Physics
-------
- Sources. "In SPARQ, satellites and HAPs are used as sources of entanglement" and ground nodes
  "lack the ability to generate entangled pairs" (Sec. II-A, IV): an SPDC source sits only on a
  SPACE or AIR node; asking a GROUND node to emit raises ValueError naming it.
- Link-level pairs. A source emits |Phi+>; each half that crosses a link of transmissivity eta
  goes through an amplitude-damping channel with gamma = 1 - eta (SPARQ eq. (10)-(11)); a half
  the source keeps crosses nothing (eta = 1). So a pair sent by a third-party source down two
  links has F = [(1 + sqrt(eta_a eta_b))^2 + (1 - eta_a)(1 - eta_b)]/4
  (``twin.physics.entanglement.amplitude_damping_fidelity_pair``) and a pair whose source keeps
  one half has F = (1 + sqrt(eta))^2/4.
- Storage. Every stored half dephases with its node's T2 (eq. (3)); a pair's memory history is
  summarised by its dephasing exponent Lambda = sum_i t_i / T2_i over every qubit that was stored
  as part of it (both halves, and, for a swapped pair, the halves of the pairs it was made from).
  A flying photon does not dephase.
- Swapping. Perfect Bell measurement with Pauli correction, averaged over outcomes
  (``twin.physics.entanglement.entanglement_swap``).

Pairs are tracked by their Bell-diagonal weights (Phi+, Phi-, Psi+, Psi-). This is exact for every
fidelity computed here, not a Werner approximation: the Bell-diagonal weights of a swapped pair
depend only on the Bell-diagonal weights of its inputs (they convolve over the Pauli group,
indices XOR-ed: checked against the density-matrix ``entanglement_swap`` in the tests), and
dephasing moves weight Phi+ <-> Phi- and Psi+ <-> Psi- only. A consequence is the closed form of
an end-to-end pair made of link-level pairs i with arm transmissivities (eta_ai, eta_bi):

    F = [1 + prod_i x_i + 2 exp(-Lambda) prod_i sqrt(eta_ai eta_bi)] / 4,
    x_i = eta_ai eta_bi + (1 - eta_ai)(1 - eta_bi).

The tests compare the simulation against this formula, computed by hand, to 1e-12. Note what it
says about TPED: both policies have the same prod sqrt(eta) over all links; TPED's third-party
pairs gain the (1 - eta_a)(1 - eta_b) term (the branch in which both photons decay to |0>, which
overlaps |Phi+>), and TPED stores fewer qubits for shorter times (smaller Lambda).

The policies (our reading of SPARQ Sec. IV)
-------------------------------------------
Intuitive (the benchmark). "The intuitive approach for entanglement distribution is to establish
entanglement between adjacent nodes, considering network constraints such that satellites and
HAPs can serve as sources of entanglement, while ground nodes lack the ability to generate
entangled pairs. Intermediate nodes then execute entanglement swapping operations". One pair per
link, emitted by the link's left node if it is a satellite or HAPS, else by its right node (a
link between two ground nodes has no source: ValueError); the source keeps one half. Every
intermediate node holds two qubits and swaps.

TPED. "The idea of the proposed TPED policy is based on keeping the source of entanglement
outside the routing path. Each source of entanglement can achieve this by generating an
entangled pair and sending one part to the preceding node in the routing path, while the other
part is sent to the subsequent node." For an odd number of nodes: "Start from the first
intermediate node [...] to the last intermediate node [...]. In an alternating pattern, each node
is marked as either a source of entanglement or a repeater, respectively." Otherwise "the policy
designates one intermediate node to serve a dual role, acting both as a source of entanglement
and as a repeater. This node is referred to as the hybrid repeater", assigned "only to either
the first or the last intermediate node of the routing path", where "the intermediate node is
selected as the hybrid repeater if it connects one ground node (source or destination) with one
source of entanglement (satellite or HAP)"; the others alternate source/repeater starting from
the first intermediate node, and "the hybrid repeater establishes entanglement with either the
source or the destination". Where the text is vague we decided:

- The paper writes "if the number of hops is even" for the hybrid case, contradicting its own
  first case (an odd number of nodes is an even number of hops). We read it as an odd number of
  hops (even number of nodes), the only case in which the alternation leaves a repeater next to
  an end node.
- Hybrid choice. "In cases where both the first and last intermediate nodes are eligible for
  selection as the hybrid repeater, either of them can be chosen." We take the last one, as in
  the worked example of Fig. 4 (one source feeds the first three nodes, the node before the
  destination "establishes an entanglement connection with" it; the symbols are lost in our copy
  of the text, so this is our reconstruction), and the first one when only it is eligible. A
  candidate is eligible when every node its assignment makes a source (the hybrid included) is a
  satellite or HAPS: on the paths SPARQ's router produces (no two consecutive ground nodes) this
  is the paper's rule; it also covers paths the paper does not discuss.
- When no assignment avoids a ground source (possible on paths with consecutive elevated nodes,
  e.g. G-S-S-G-S-S-G), the paper gives no procedure: ``plan_distribution`` raises ValueError
  naming the ground node; ``tped_applicable`` lets a caller fall back to the intuitive policy.
- A one-hop path has no intermediate node: both policies send one pair over the link.
- Sources emit and keep nothing (zero memory); a hybrid keeps one half of its own pair.

Timing (not in the paper, which assumes instantaneous operations and perfect memories; our
model, the same for both policies so that the comparison isolates the policy):

- Every source emits at ``t_start_ns``. A half crossing link j arrives ``link_delays_ns[j]``
  later and is stored on arrival; a half kept by its source is stored at emission.
- ``swap_schedule="sequential"`` (default; the brief's definition of the intuitive policy):
  "establish all link-level pairs, store them, then swap sequentially from one end". The first
  repeater (nearest the first path node) swaps when the last half has been stored; each next
  repeater swaps when the previous one's outcome reaches it (classical delays of the links in
  between); the end-to-end pair is delivered when the last outcome reaches the last path node
  (which applies the Pauli correction). ``"asap"``: each repeater swaps as soon as its two
  qubits are stored; delivery when every outcome has reached the last node.
- TTL (eq. (3)). A swap is refused, and the distribution fails, if either input pair's
  dephasing exponent exceeds Lambda_max = -ln(2 F_min - 1), i.e. if its storage age, counted in
  eq. (3)'s units (T2 Lambda), exceeds the time-to-live t_TTL = -T2 ln(2 F_min - 1): an ideal
  pair with that history would already be below F_min. The delivered pair is held to the same
  limit. F_min <= 1/2 sets no limit (eq. (3) never falls below 1/2).
- Memory. Each stored half takes one slot of its node's :class:`QuantumMemory` from arrival to
  its swap (or to delivery for the end nodes); a store refused because the memory is full fails
  the distribution. On any failure every slot the distribution holds is released at the failure
  time: nothing is left half-written. By default the delivered pair is released at delivery
  (consumed); ``keep_end_to_end=True`` leaves it in the two end memories, relabelled with
  ``DistributionResult.end_pair_id``.

Memory metrics. ``intermediate_qubits`` counts the qubits stored at intermediate nodes, which is
what SPARQ's Fig. 9 reports ("memory units consumed by intermediate repeaters"): 2 (k - 1) for
the intuitive policy over k hops; for TPED 2 per repeater (hybrid included), i.e. k - 2 for even
k and k - 1 for odd k. ``peak_slots`` (all path nodes, at one instant) and ``slot_ns`` (sum of
storage durations) measure the same thing over time.

Time is int nanoseconds throughout; the functions are deterministic and keep no global state.
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from twin.network.memory_slots import QuantumMemory
from twin.physics.entanglement import amplitude_damping_fidelity_pair, transmissivity_to_damping
from twin.units import NS_PER_S

__all__ = [
    "BELL_DIAGONAL_ORDER",
    "NodeLayer",
    "Policy",
    "SwapSchedule",
    "Role",
    "PairPlan",
    "DistributionPlan",
    "DistributionResult",
    "parse_layer",
    "can_be_source",
    "require_source",
    "link_pair_bell_diagonal",
    "link_pair_fidelity",
    "swap_bell_diagonal",
    "dephase_bell_diagonal",
    "chain_bell_diagonal",
    "ttl_dephasing_exponent",
    "plan_distribution",
    "tped_applicable",
    "chain_fidelity",
    "distribute",
]

BELL_DIAGONAL_ORDER = ("phi+", "phi-", "psi+", "psi-")
"""Order of the last axis of Bell-diagonal weight arrays (index = 2 x + z of the Pauli X^x Z^z
that maps |Phi+> onto that Bell state)."""


class NodeLayer(enum.StrEnum):
    """SPARQ's three layers (Sec. II-A): satellites, HAPS, ground nodes."""

    SPACE = "space"
    AIR = "air"
    GROUND = "ground"


_LAYER_ALIASES = {
    "space": NodeLayer.SPACE,
    "satellite": NodeLayer.SPACE,
    "sat": NodeLayer.SPACE,
    "air": NodeLayer.AIR,
    "haps": NodeLayer.AIR,
    "hap": NodeLayer.AIR,
    "ground": NodeLayer.GROUND,
}


class Policy(enum.StrEnum):
    INTUITIVE = "intuitive"
    """one pair per link, a swap at every intermediate node (SPARQ's benchmark)"""
    TPED = "tped"
    """third-party entanglement distribution (SPARQ Sec. IV)"""


class SwapSchedule(enum.StrEnum):
    SEQUENTIAL = "sequential"
    """all pairs stored first, then swaps from the first path node's side, one after another"""
    ASAP = "asap"
    """each repeater swaps as soon as both its qubits are stored"""


class Role(enum.StrEnum):
    END = "end"
    SOURCE = "source"
    """emits a pair to its two neighbours, keeps nothing (TPED)"""
    REPEATER = "repeater"
    """holds two halves and swaps them"""
    HYBRID = "hybrid"
    """TPED's hybrid repeater: emits a pair to the adjacent end node, keeps one half, swaps"""


@dataclass(frozen=True, slots=True)
class PairPlan:
    """A link-level pair: emitted by path node ``source``, held by path nodes ``ends``."""

    source: int
    ends: tuple[int, int]
    """(a, b) with a < b; ``source`` is a, b, or (TPED) the node between them"""


@dataclass(frozen=True, slots=True)
class DistributionPlan:
    """Who emits, who stores and who swaps along a path (no timing, no physics)."""

    policy: Policy
    nodes: tuple[str, ...]
    layers: tuple[NodeLayer, ...]
    roles: tuple[Role, ...]
    pairs: tuple[PairPlan, ...]
    """in path order; consecutive pairs share an end"""
    repeaters: tuple[int, ...]
    """path indices of the nodes that swap, in path order"""

    @property
    def hops(self) -> int:
        return len(self.nodes) - 1

    @property
    def n_swaps(self) -> int:
        return len(self.repeaters)

    @property
    def intermediate_qubits(self) -> int:
        """Qubits stored at intermediate nodes (two per repeater; SPARQ Fig. 9's metric)."""
        return 2 * len(self.repeaters)


@dataclass(frozen=True, slots=True)
class DistributionResult:
    """Outcome of one end-to-end distribution."""

    policy: Policy
    swap_schedule: SwapSchedule
    path: tuple[str, ...]
    success: bool
    failure: str | None
    """None, "memory_full" or "ttl_exceeded" """
    failed_node: str | None
    """the node whose store was refused, the repeater whose swap was refused, or the last path
    node when the delivered pair itself exceeds the TTL"""
    fidelity: float | None
    """Bell fidelity of the delivered end-to-end pair at ``t_end_ns`` (None on failure)"""
    meets_f_min: bool
    """success and fidelity >= f_min"""
    dephasing_exponent: float | None
    """Lambda of the delivered pair: sum of storage time / T2 over all its stored qubits"""
    t_start_ns: int
    t_end_ns: int
    """delivery time, or the time of the failure"""
    pairs_generated: int
    swaps: int
    """swaps performed"""
    intermediate_qubits: int
    """qubits stored at intermediate nodes (SPARQ Fig. 9's 'memory units')"""
    peak_slots: int
    """largest number of slots this distribution held at one instant, all path nodes"""
    slot_ns: int
    """sum over stored qubits of their storage duration, ns"""
    peak_slots_by_node: tuple[tuple[str, int], ...]
    """(node, peak slots held by this distribution) in path order"""
    end_pair_id: str | None
    """id of the end-to-end pair left in the end memories (``keep_end_to_end``), else None"""
    plan: DistributionPlan

    @property
    def duration_ns(self) -> int:
        return self.t_end_ns - self.t_start_ns

    @property
    def slot_seconds(self) -> float:
        return self.slot_ns / NS_PER_S


# --------------------------------------------------------------------------------------------
# Node layers and sources
# --------------------------------------------------------------------------------------------


def parse_layer(node: str, layer: NodeLayer | str) -> NodeLayer:
    """Layer of ``node``: a NodeLayer or 'space'/'satellite', 'air'/'haps', 'ground'."""
    if isinstance(layer, NodeLayer):
        return layer
    key = str(layer).strip().lower()
    try:
        return _LAYER_ALIASES[key]
    except KeyError:
        raise ValueError(
            f"node {node!r}: unknown layer {layer!r}; use one of "
            f"{sorted(_LAYER_ALIASES)} (satellite -> space, HAPS -> air)"
        ) from None


def can_be_source(layer: NodeLayer | str) -> bool:
    """True for satellites and HAPS: the only nodes with SPDC sources (SPARQ Sec. II-A)."""
    return parse_layer("?", layer) is not NodeLayer.GROUND


def require_source(node: str, layer: NodeLayer | str) -> None:
    """Raise ValueError naming ``node`` if it is a ground node (ground nodes cannot emit pairs)."""
    if not can_be_source(layer):
        raise ValueError(
            f"node {node!r} is a ground node and cannot be an entanglement source (SPARQ Sec. "
            "II-A: SPDC sources sit on satellites and HAPS only); pick a satellite or HAPS as "
            "the source"
        )


# --------------------------------------------------------------------------------------------
# Bell-diagonal physics (vectorized)
# --------------------------------------------------------------------------------------------

# Walsh-Hadamard transform of the Pauli group Z2 x Z2 (index = 2 x + z): the characters
# (1, chi_Z, chi_X, chi_XZ). Swapping multiplies characters.
_WH = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=float)


def _bd(name: str, x: ArrayLike) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(
            f"{name} must have shape (..., 4): Bell-diagonal weights in the order "
            f"{BELL_DIAGONAL_ORDER}, got shape {arr.shape}"
        )
    return arr


def link_pair_bell_diagonal(eta_a: ArrayLike, eta_b: ArrayLike = 1.0) -> np.ndarray:
    """Bell-diagonal weights (..., 4) of |Phi+> after amplitude damping of each half.

    Half A crosses a link of transmissivity ``eta_a``, half B one of ``eta_b`` (1: the half stays
    at the source); gamma = 1 - eta per arm (SPARQ Sec. II-C3, eq. (10)-(11)). With
    s = sqrt(eta_a eta_b), g = 1 - eta:
    Phi+ = [(1 + s)^2 + g_a g_b]/4 (``amplitude_damping_fidelity_pair``),
    Phi- = [(1 - s)^2 + g_a g_b]/4, Psi+ = Psi- = [g_a (1 - g_b) + g_b (1 - g_a)]/4.
    Broadcasts over the transmissivities.
    """
    ga = np.asarray(transmissivity_to_damping(eta_a), dtype=float)
    gb = np.asarray(transmissivity_to_damping(eta_b), dtype=float)
    ga, gb = np.broadcast_arrays(ga, gb)
    s = np.sqrt((1.0 - ga) * (1.0 - gb))
    phi_plus = np.asarray(amplitude_damping_fidelity_pair(ga, gb), dtype=float)
    phi_minus = ((1.0 - s) ** 2 + ga * gb) / 4.0
    psi = (ga * (1.0 - gb) + gb * (1.0 - ga)) / 4.0
    return np.stack([phi_plus, phi_minus, psi, psi], axis=-1)


def link_pair_fidelity(eta_a: ArrayLike, eta_b: ArrayLike = 1.0) -> np.ndarray:
    """Bell fidelity of a link-level pair (see ``link_pair_bell_diagonal``); shape (...)."""
    ga = transmissivity_to_damping(eta_a)
    gb = transmissivity_to_damping(eta_b)
    return amplitude_damping_fidelity_pair(ga, gb)


def swap_bell_diagonal(bd_a: ArrayLike, bd_b: ArrayLike) -> np.ndarray:
    """Bell-diagonal weights of the pair made by swapping pairs ``bd_a`` and ``bd_b``.

    out[k] = sum_{i XOR j = k} a[i] b[j] (Pauli errors compose; perfect Bell measurement and
    Pauli correction, outcome-averaged: equals the Bell-diagonal part of
    ``twin.physics.entanglement.entanglement_swap`` for any input states). Shapes (..., 4)
    broadcast.
    """
    a = _bd("bd_a", bd_a)
    b = _bd("bd_b", bd_b)
    return ((a @ _WH) * (b @ _WH)) @ _WH / 4.0


def dephase_bell_diagonal(bd: ArrayLike, coherence_factor: ArrayLike) -> np.ndarray:
    """Dephase one qubit of a pair: its coherences times c (c = exp(-t/T2) for a memory).

    A phase flip with probability (1 - c)/2: Phi+ <-> Phi-, Psi+ <-> Psi-. Factors of
    successive dephasings (on either qubit) multiply. Shapes broadcast: (..., 4) with (...).
    """
    w = _bd("bd", bd)
    c = np.asarray(coherence_factor, dtype=float)
    if np.any(~((c >= 0.0) & (c <= 1.0))):
        raise ValueError(f"coherence_factor must be within [0, 1], got {coherence_factor!r}")
    c = c[..., None]
    return 0.5 * (1.0 + c) * w + 0.5 * (1.0 - c) * w[..., [1, 0, 3, 2]]


def chain_bell_diagonal(bds: ArrayLike) -> np.ndarray:
    """Swap a chain of pairs (..., n, 4) into one pair (..., 4); the order does not matter."""
    w = _bd("bds", bds)
    if w.ndim < 2 or w.shape[-2] == 0:
        raise ValueError(f"bds must have shape (..., n, 4) with n >= 1, got {w.shape}")
    return np.prod(w @ _WH, axis=-2) @ _WH / 4.0


def ttl_dephasing_exponent(f_min: float) -> float:
    """Largest dephasing exponent Lambda a pair may carry: -ln(2 F_min - 1) (eq. (3) TTL / T2).

    ``f_min`` <= 0.5 gives math.inf (eq. (3) never falls below 1/2); ``f_min`` = 1 gives 0.
    """
    f = float(f_min)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"f_min must be within [0, 1], got {f_min!r}")
    if f <= 0.5:
        return math.inf
    return -math.log(2.0 * f - 1.0) + 0.0


# --------------------------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------------------------


def _path(path_nodes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(path_nodes, str):
        raise ValueError(
            f"path_nodes must be a sequence of node names, got the string {path_nodes!r}"
        )
    nodes = tuple(path_nodes)
    if len(nodes) < 2:
        raise ValueError(f"path_nodes needs at least two nodes (one link), got {list(nodes)!r}")
    for n in nodes:
        if not isinstance(n, str) or not n:
            raise ValueError(f"path_nodes must hold non-empty node names, got {n!r}")
    seen: set[str] = set()
    for n in nodes:
        if n in seen:
            raise ValueError(f"path_nodes visits node {n!r} twice; a routing path has no loops")
        seen.add(n)
    return nodes


def _layers(nodes: tuple[str, ...], node_layers: Mapping[str, NodeLayer | str]) -> tuple:
    out = []
    for n in nodes:
        if n not in node_layers:
            raise ValueError(
                f"node_layers has no layer for path node {n!r} (give 'space', 'air' or 'ground')"
            )
        out.append(parse_layer(n, node_layers[n]))
    return tuple(out)


def _intuitive(nodes, layers) -> tuple[tuple[Role, ...], tuple[PairPlan, ...], tuple[int, ...]]:
    k = len(nodes) - 1
    pairs = []
    for j in range(k):
        if layers[j] is not NodeLayer.GROUND:
            src = j
        elif layers[j + 1] is not NodeLayer.GROUND:
            src = j + 1
        else:
            raise ValueError(
                f"link {nodes[j]!r} - {nodes[j + 1]!r} joins two ground nodes, and ground nodes "
                "cannot be entanglement sources (SPARQ Sec. II-A); route through a satellite or "
                "HAPS (SPARQ's router never puts two ground nodes in a row)"
            )
        pairs.append(PairPlan(src, (j, j + 1)))
    roles = (Role.END,) + (Role.REPEATER,) * (k - 1) + (Role.END,)
    return roles, tuple(pairs), tuple(range(1, k))


def _tped_assignment(k: int, hybrid: int | None):
    inter = [i for i in range(1, k) if i != hybrid]
    sources = inter[0::2]
    reps = inter[1::2]
    roles = [Role.END] + [Role.REPEATER] * (k - 1) + [Role.END]
    pairs = [PairPlan(s, (s - 1, s + 1)) for s in sources]
    for s in sources:
        roles[s] = Role.SOURCE
    if hybrid is not None:
        roles[hybrid] = Role.HYBRID
        end = 0 if hybrid == 1 else k
        pairs.append(PairPlan(hybrid, (min(hybrid, end), max(hybrid, end))))
        reps.append(hybrid)
        sources = sources + [hybrid]
    pairs.sort(key=lambda p: p.ends)
    at = 0
    for p in pairs:  # the pairs must tile the path
        if p.ends[0] != at:  # pragma: no cover - invariant
            raise RuntimeError(f"TPED plan does not tile the path: {pairs}")
        at = p.ends[1]
    if at != k:  # pragma: no cover - invariant
        raise RuntimeError(f"TPED plan does not reach the last node: {pairs}")
    return tuple(roles), tuple(pairs), tuple(sorted(reps)), sources


def _tped(nodes, layers):
    k = len(nodes) - 1
    if k == 1:
        return _intuitive(nodes, layers)
    if k % 2 == 0:
        candidates: list[int | None] = [None]
    else:
        candidates = [k - 1, 1]  # last intermediate node first (Fig. 4), then the first
    blocked = []
    for hybrid in candidates:
        roles, pairs, reps, sources = _tped_assignment(k, hybrid)
        ground = [s for s in sources if layers[s] is NodeLayer.GROUND]
        if not ground:
            return roles, pairs, reps
        where = "" if hybrid is None else f" with the hybrid repeater at {nodes[hybrid]!r}"
        blocked.append(f"ground node {nodes[ground[0]]!r} would be a source{where}")
    raise ValueError(
        f"TPED cannot serve path {list(nodes)!r}: {'; '.join(blocked)} (SPARQ Sec. IV: ground "
        "nodes cannot be entanglement sources); use policy='intuitive' for this path, or a path "
        "whose alternate intermediate nodes are satellites or HAPS"
    )


def plan_distribution(
    path_nodes: Sequence[str],
    node_layers: Mapping[str, NodeLayer | str],
    policy: Policy | str,
) -> DistributionPlan:
    """Roles, link-level pairs and swapping nodes of ``policy`` on a path (module docstring).

    Raises ValueError naming the node when the policy would need a ground node to emit pairs.
    """
    nodes = _path(path_nodes)
    layers = _layers(nodes, node_layers)
    pol = _policy(policy)
    if pol is Policy.INTUITIVE:
        roles, pairs, reps = _intuitive(nodes, layers)
    else:
        roles, pairs, reps = _tped(nodes, layers)
    for p in pairs:
        require_source(nodes[p.source], layers[p.source])
    return DistributionPlan(pol, nodes, layers, roles, pairs, reps)


def tped_applicable(path_nodes: Sequence[str], node_layers: Mapping[str, NodeLayer | str]) -> bool:
    """True when TPED can serve the path without a ground source (else fall back to intuitive)."""
    nodes = _path(path_nodes)
    layers = _layers(nodes, node_layers)
    try:
        _tped(nodes, layers)
    except ValueError:
        return False
    return True


def _policy(policy: Policy | str) -> Policy:
    try:
        return Policy(str(policy).lower())
    except ValueError:
        raise ValueError(
            f"policy must be one of {[p.value for p in Policy]}, got {policy!r}"
        ) from None


def _schedule(schedule: SwapSchedule | str) -> SwapSchedule:
    try:
        return SwapSchedule(str(schedule).lower())
    except ValueError:
        raise ValueError(
            f"swap_schedule must be one of {[s.value for s in SwapSchedule]}, got {schedule!r}"
        ) from None


def _arm_eta(plan: DistributionPlan, etas: np.ndarray, pair: PairPlan, end: int) -> np.ndarray:
    if end == pair.source:
        return np.ones(etas.shape[:-1])
    return etas[..., min(end, pair.source)]


def chain_fidelity(
    plan: DistributionPlan, link_transmissivities: ArrayLike, dephasing_exponent: ArrayLike = 0.0
) -> np.ndarray:
    """End-to-end Bell fidelity of ``plan`` on links of transmissivity (..., k), no timing.

    Every link-level pair of the plan gets its amplitude-damping state, the pairs are swapped
    into one, and a total dephasing exponent Lambda (sum of storage time / T2 over all stored
    qubits; 0 for perfect memories) is applied. Vectorized over the leading axes of
    ``link_transmissivities`` and ``dephasing_exponent``; returns shape (...).
    """
    etas = np.asarray(link_transmissivities, dtype=float)
    if etas.ndim == 0 or etas.shape[-1] != plan.hops:
        raise ValueError(
            f"link_transmissivities must have shape (..., {plan.hops}) for a {plan.hops}-hop "
            f"path, got {etas.shape}"
        )
    lam = np.asarray(dephasing_exponent, dtype=float)
    if np.any(~(lam >= 0.0)):
        raise ValueError(f"dephasing_exponent must be >= 0, got {dephasing_exponent!r}")
    bds = [
        link_pair_bell_diagonal(
            _arm_eta(plan, etas, p, p.ends[0]), _arm_eta(plan, etas, p, p.ends[1])
        )
        for p in plan.pairs
    ]
    out = chain_bell_diagonal(np.stack(np.broadcast_arrays(*bds), axis=-2))
    out = dephase_bell_diagonal(out, np.exp(-lam))
    return out[..., 0][()]


# --------------------------------------------------------------------------------------------
# Timed distribution with memories
# --------------------------------------------------------------------------------------------


def _int_list(name: str, values: Sequence[int], k: int) -> list[int]:
    vals = list(values)
    if len(vals) != k:
        raise ValueError(f"{name} needs one value per link ({k}), got {len(vals)}")
    out = []
    for v in vals:
        if isinstance(v, bool):
            raise ValueError(f"{name} must hold int nanoseconds, got {v!r}")
        try:
            iv = operator.index(v)
        except TypeError:
            raise ValueError(
                f"{name} must hold int nanoseconds, got {v!r} (use twin.units.NS_PER_S)"
            ) from None
        if iv < 0:
            raise ValueError(f"{name} must be >= 0 ns, got {iv}")
        out.append(iv)
    return out


# Scalar versions of swap_bell_diagonal / dephase_bell_diagonal for the event loop (plain floats:
# numpy's per-call overhead on 4-element arrays dominated ``distribute``); the tests check both
# against the density-matrix physics.
def _swap4(a: tuple, b: tuple) -> tuple[float, float, float, float]:
    a0, a1, a2, a3 = a
    b0, b1, b2, b3 = b
    return (
        a0 * b0 + a1 * b1 + a2 * b2 + a3 * b3,
        a0 * b1 + a1 * b0 + a2 * b3 + a3 * b2,
        a0 * b2 + a2 * b0 + a1 * b3 + a3 * b1,
        a0 * b3 + a3 * b0 + a1 * b2 + a2 * b1,
    )


def _dephase4(w: tuple, c: float) -> tuple[float, float, float, float]:
    keep, flip = 0.5 * (1.0 + c), 0.5 * (1.0 - c)
    return (
        keep * w[0] + flip * w[1],
        keep * w[1] + flip * w[0],
        keep * w[2] + flip * w[3],
        keep * w[3] + flip * w[2],
    )


class _Pair:
    """A pair in flight or in memory during a distribution (internal)."""

    __slots__ = ("qubits", "bd", "lam")

    def __init__(self, qubits: list[int], bd: tuple, lam: float) -> None:
        self.qubits = qubits  # two qubit ids (indices into the qubit tables)
        self.bd = bd  # Bell-diagonal weights (4 floats), dephased up to each qubit's q_upd
        self.lam = lam  # dephasing exponent applied so far


def distribute(
    path_nodes: Sequence[str],
    link_transmissivities: Sequence[float] | np.ndarray,
    link_delays_ns: Sequence[int],
    t_start_ns: int,
    policy: Policy | str,
    memories: Mapping[str, QuantumMemory] | None,
    t2_s: float,
    f_min: float,
    *,
    node_layers: Mapping[str, NodeLayer | str],
    classical_delays_ns: Sequence[int] | None = None,
    swap_schedule: SwapSchedule | str = SwapSchedule.SEQUENTIAL,
    request_id: str | None = None,
    keep_end_to_end: bool = False,
) -> DistributionResult:
    """Distribute one end-to-end pair along ``path_nodes`` with ``policy`` ('intuitive'/'tped').

    Arguments
    - ``link_transmissivities[j]``, ``link_delays_ns[j]``: link j joins path nodes j and j+1;
      the delay is the time for a half emitted at one end to be stored at the other (int ns).
    - ``memories``: the nodes' :class:`QuantumMemory` (every node that stores a qubit under the
      plan must have one; their T2 and Q_max apply and they are updated: stores, releases,
      rejections, peaks). None: private unbounded memories with coherence time ``t2_s``
      (``t2_s`` is used only then).
    - ``f_min``: the TTL threshold of eq. (3) (see the module docstring); the delivered pair's
      fidelity is also compared with it (``meets_f_min``), which does not make it a failure.
    - ``node_layers``: 'space', 'air' or 'ground' per path node (who may emit pairs).
    - ``classical_delays_ns``: one-way classical latency per link for swap outcomes (default:
      ``link_delays_ns``).
    - ``request_id``: prefix of the pair ids put in the memories (default
      "<first>><last>@<t_start_ns>/<policy>"); must be unique among pairs stored at the time.

    Caller mistakes (lengths, units, unknown nodes, ground sources, duplicate pair ids) raise
    ValueError before anything is changed. Returns a :class:`DistributionResult`.
    """
    plan = plan_distribution(path_nodes, node_layers, policy)
    nodes, k = plan.nodes, plan.hops
    sched = _schedule(swap_schedule)
    etas = np.asarray(link_transmissivities, dtype=float)
    if etas.shape != (k,):
        raise ValueError(
            f"link_transmissivities needs one value per link, shape ({k},), got {etas.shape}"
        )
    transmissivity_to_damping(etas)  # range check with a clear message
    delays = _int_list("link_delays_ns", link_delays_ns, k)
    cdelays = (
        delays
        if classical_delays_ns is None
        else _int_list("classical_delays_ns", classical_delays_ns, k)
    )
    if isinstance(t_start_ns, bool):
        raise ValueError(f"t_start_ns must be int nanoseconds, got {t_start_ns!r}")
    try:
        t0 = operator.index(t_start_ns)
    except TypeError:
        raise ValueError(f"t_start_ns must be int nanoseconds, got {t_start_ns!r}") from None
    lam_max = ttl_dephasing_exponent(f_min)
    if not float(t2_s) > 0.0:
        raise ValueError(f"t2_s must be > 0 seconds (math.inf for a perfect memory), got {t2_s!r}")
    rid = request_id if request_id is not None else f"{nodes[0]}>{nodes[-1]}@{t0}/{plan.policy}"

    # Memories of the nodes that store qubits.
    holders = sorted({e for p in plan.pairs for e in p.ends})
    mems: dict[int, QuantumMemory] = {}
    for i in holders:
        if memories is None:
            mems[i] = QuantumMemory(q_max=2 * len(plan.pairs), t2_s=t2_s)
        elif nodes[i] in memories:
            mems[i] = memories[nodes[i]]
        else:
            raise ValueError(
                f"memories has no QuantumMemory for node {nodes[i]!r}, which must store a qubit "
                f"under the {plan.policy} plan (pass memories=None for unbounded ideal-capacity "
                "memories)"
            )

    # Qubit tables: one entry per half (q = 2 * pair index + side).
    n_q = 2 * len(plan.pairs)
    q_node = [0] * n_q
    q_arrival = [0] * n_q
    q_slot = [""] * n_q
    q_partner = [0] * n_q
    pairs: list[_Pair] = []
    owner: list[_Pair | None] = [None] * n_q
    arm_etas = np.ones((len(plan.pairs), 2))
    for i, p in enumerate(plan.pairs):
        for side, e in enumerate(p.ends):
            q = 2 * i + side
            q_node[q] = e
            q_partner[q] = p.ends[1 - side]
            q_slot[q] = f"{rid}/p{i}"
            if e == p.source:
                q_arrival[q] = t0
            else:
                j = min(e, p.source)
                q_arrival[q] = t0 + delays[j]
                arm_etas[i, side] = etas[j]
    link_bds = link_pair_bell_diagonal(arm_etas[:, 0], arm_etas[:, 1])  # one vectorized call
    for i in range(len(plan.pairs)):
        pair = _Pair([2 * i, 2 * i + 1], tuple(float(w) for w in link_bds[i]), 0.0)
        pairs.append(pair)
        owner[2 * i] = owner[2 * i + 1] = pair
    taken = [(q_slot[q], q_node[q]) for q in range(n_q)]
    if keep_end_to_end:
        taken += [(f"{rid}/e2e", 0), (f"{rid}/e2e", k)]
    for pair_id, i in taken:
        if pair_id in mems[i]:
            raise ValueError(
                f"pair id {pair_id!r} is already stored at {nodes[i]!r}; pass a request_id "
                "unique among the pairs in memory"
            )
    t2_of = {i: mems[i].t2_s for i in holders}
    q_upd = list(q_arrival)  # dephasing applied up to this time (from arrival on)

    # Schedule.
    t_est = max(q_arrival)
    at_node: dict[int, list[int]] = {}
    for q in range(n_q):
        at_node.setdefault(q_node[q], []).append(q)

    def cdelay(a: int, b: int) -> int:
        return sum(cdelays[a:b])

    swap_t: list[int] = []
    if sched is SwapSchedule.SEQUENTIAL:
        t = t_est
        for m, r in enumerate(plan.repeaters):
            if m > 0:
                t += cdelay(plan.repeaters[m - 1], r)
            swap_t.append(t)
        t_done = t_est if not plan.repeaters else swap_t[-1] + cdelay(plan.repeaters[-1], k)
    else:
        for r in plan.repeaters:
            swap_t.append(max(q_arrival[q] for q in at_node[r]))
        t_done = max(
            [t_est] + [t + cdelay(r, k) for t, r in zip(swap_t, plan.repeaters, strict=True)]
        )

    # Events: (time, priority, path index, kind, payload); stores before swaps before delivery.
    events: list[tuple[int, int, int, str, int]] = []
    for q in range(n_q):
        events.append((q_arrival[q], 0, q_node[q], "store", q))
    for t, r in zip(swap_t, plan.repeaters, strict=True):
        events.append((t, 1, r, "swap", r))
    events.append((t_done, 2, k, "deliver", -1))
    events.sort()

    held: dict[int, int] = {}  # qubit -> store time, for qubits in memory now
    node_now = dict.fromkeys(range(k + 1), 0)
    node_peak = dict.fromkeys(range(k + 1), 0)
    total_now = 0
    peak = 0
    slot_ns = 0
    inter_qubits = 0
    swaps = 0

    def release(q: int, t: int) -> None:
        nonlocal total_now, slot_ns
        mems[q_node[q]].release(q_slot[q])
        slot_ns += t - held.pop(q)
        node_now[q_node[q]] -= 1
        total_now -= 1

    def bring_to(pair: _Pair, t: int) -> None:
        # Dephase each stored qubit of the pair from its last update up to t.
        for q in pair.qubits:
            start = max(q_upd[q], q_arrival[q])
            if t > start:
                lam_q = (t - start) / NS_PER_S / t2_of[q_node[q]]
                pair.bd = _dephase4(pair.bd, math.exp(-lam_q))
                pair.lam += lam_q
                q_upd[q] = t

    def result(success, failure, failed, t_end, fidelity=None, lam=None, end_id=None):
        fid = None if fidelity is None else float(fidelity)
        return DistributionResult(
            policy=plan.policy,
            swap_schedule=sched,
            path=nodes,
            success=success,
            failure=failure,
            failed_node=failed,
            fidelity=fid,
            meets_f_min=bool(success and fid is not None and fid >= float(f_min)),
            dephasing_exponent=lam,
            t_start_ns=t0,
            t_end_ns=t_end,
            pairs_generated=len(plan.pairs),
            swaps=swaps,
            intermediate_qubits=inter_qubits,
            peak_slots=peak,
            slot_ns=slot_ns,
            peak_slots_by_node=tuple((nodes[i], node_peak[i]) for i in range(k + 1)),
            end_pair_id=end_id,
            plan=plan,
        )

    def fail(reason: str, node: int, t: int) -> DistributionResult:
        for q in sorted(held):
            release(q, t)
        return result(False, reason, nodes[node], t)

    for t, _prio, idx, kind, payload in events:
        if kind == "store":
            q = payload
            pair = owner[q]
            assert pair is not None
            partner = q_node[next(o for o in pair.qubits if o != q)]
            ok = mems[idx].store(
                q_slot[q],
                nodes[partner],
                t,
                float(pair.bd[0]),
                phi_minus=float(pair.bd[1]),
                partner_t2_s=t2_of[partner],
            )
            if not ok:
                return fail("memory_full", idx, t)
            held[q] = t
            node_now[idx] += 1
            node_peak[idx] = max(node_peak[idx], node_now[idx])
            total_now += 1
            peak = max(peak, total_now)
            if 0 < idx < k:
                inter_qubits += 1
        elif kind == "swap":
            r = idx
            assert len(at_node[r]) == 2, f"repeater {nodes[r]} must hold exactly two qubits"
            q_left, q_right = sorted(at_node[r], key=lambda q: q_partner[q])
            left, right = owner[q_left], owner[q_right]
            assert left is not None and right is not None and left is not right
            bring_to(left, t)
            bring_to(right, t)
            if left.lam > lam_max or right.lam > lam_max:
                return fail("ttl_exceeded", r, t)
            far_left = next(q for q in left.qubits if q != q_left)
            far_right = next(q for q in right.qubits if q != q_right)
            merged = _Pair([far_left, far_right], _swap4(left.bd, right.bd), left.lam + right.lam)
            owner[far_left] = owner[far_right] = merged
            owner[q_left] = owner[q_right] = None
            release(q_left, t)
            release(q_right, t)
            swaps += 1
        else:  # deliver
            ends = [q for q in range(n_q) if owner[q] is not None]
            final = owner[ends[0]]
            assert final is not None and sorted(q_node[q] for q in final.qubits) == [0, k]
            bring_to(final, t)
            if final.lam > lam_max:
                return fail("ttl_exceeded", k, t)
            fidelity = float(final.bd[0])
            end_id = None
            if keep_end_to_end:
                end_id = f"{rid}/e2e"
                for q in final.qubits:
                    other = next(o for o in final.qubits if o != q)
                    mems[q_node[q]].rebind(
                        q_slot[q],
                        end_id,
                        partner=nodes[q_node[other]],
                        t_ns=t,
                        fidelity=fidelity,
                        phi_minus=float(final.bd[1]),
                        partner_t2_s=t2_of[q_node[other]],
                    )
                    slot_ns += t - held.pop(q)
            else:
                for q in sorted(final.qubits):
                    release(q, t)
            return result(True, None, None, t, fidelity, final.lam, end_id)
    raise RuntimeError("distribution ended without delivery")  # pragma: no cover
