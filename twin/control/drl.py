"""The DRL tier (main paper sec. VII-B): each flow's candidate paths, what the policy sees of
them, the policy network, and the controller that routes with it (``drl-only``; ``ai-sdqn`` routes
with it too, twin.control.ai_sdqn).

The policy is one small network shared by every flow of every edge agent: it maps one flow's
features (:data:`FLOW_FEATURES` values, :func:`flow_features`) to a logit per candidate path
(:data:`K_CANDIDATES`: keep the current path, the fastest keyed path, the fastest path). Sharing
it per flow keeps it independent of how many flows a scenario or an edge site has (the same
weights route ``small``, ``case-grid-eclipse`` and ``mega``) and makes a tick's inference one
batched torch call over all flows (:meth:`EdgePolicy.choose`). It is trained with RLlib's PPO on
:class:`twin.control.rl_env.RoutingEnv` (twin.control.train, ``qntwin train``); the policy
shipped in ``twin/control/data`` is used when none is given.

The policy acts on each flow's most likely candidate. (Drawing from its probabilities, as PPO
explores, made returns a matter of luck: on case-munich-pretoria's first two minutes the
uniformly random policy scored from -58 to -18 depending on its draws.)

A flow's choice depends on G(t), its own history (its current path) and the weights only, so
splitting the flows over edge actors (the Ray runtime) changes no path: inference runs in
float64, whose per-row results do not depend on how many rows a batch holds here (the Ray test
pins the metrics byte for byte).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from twin.control.baselines import (
    Decision,
    KeyAwareGreedy,
    NetworkView,
    _route_all,
    latency_bounds,
)

__all__ = [
    "FLOW_FEATURES",
    "K_CANDIDATES",
    "CandidatePaths",
    "DrlOnly",
    "EdgePolicy",
    "FlowPolicyNet",
    "flow_features",
    "shipped_policy",
]

K_CANDIDATES = 3  # keep, fastest keyed, fastest
FLOW_FEATURES = 2 * K_CANDIDATES + 1  # key over need and latency per candidate, then active
FEATURE_CLIP = 10.0
LATENCY_UNIT_S = 10e-3  # feature unit of latency
HIDDEN = (32, 32)
SHIPPED_POLICY = "edge_policy.pt"  # in twin/control/data


class CandidatePaths:
    """Per flow, the (keep, fastest keyed, fastest) paths of a decision; remembers the paths
    chosen last so that "keep" can keep them.

    - keep: the flow's current path while every hop of it is up, else the fastest path;
    - fastest keyed: the fastest path whose hops hold 10 s of the flow's key demand
      (:meth:`KeyAwareGreedy.fastest_keyed`, key-aware's choice), else the fastest;
    - fastest: the lowest-latency path over the links that are up (static-sp's choice).
    """

    def __init__(self) -> None:
        self.greedy = KeyAwareGreedy()
        self._previous: tuple = ()
        # the last build's fastest and fastest keyed paths: their latencies now bound this
        # build's searches (latency_bounds; a bound only speeds a search)
        self._found: tuple[tuple, tuple] = ((), ())

    def build(self, view: NetworkView) -> list[tuple]:
        flows = list(range(len(view.flows)))
        last_fastest, last_keyed = self._found
        if len(last_fastest) != len(flows):
            last_fastest = last_keyed = (None,) * len(flows)
        bounds = latency_bounds(view, last_fastest)
        fastest = _route_all(view, view.edges().latency_graph(), flows, bounds).paths
        keyed = list(fastest)
        bounds = latency_bounds(view, last_keyed)
        needs = [self.greedy.need_bits(f, view.t_ns) for f in view.flows]
        # a fastest path whose every hop holds the need is the fastest keyed one too (the
        # keyed links are a subgraph that keeps it, ties broken alike): searched for only
        # where it does not (a quarter of mega's path searches saved)
        top = np.iinfo(np.int64).max
        held = view.key_fill.weakest(fastest, initial=top)
        for need in sorted(set(needs) - {0}):
            members = [k for k in flows if needs[k] == need and not held[k] >= need]
            if not members:
                continue
            found = KeyAwareGreedy.fastest_keyed(view, members, need, fastest, bounds)
            for k, path in found.items():
                keyed[k] = path
        self._found = (fastest, tuple(keyed))
        previous = self._previous if len(self._previous) == len(flows) else (None,) * len(flows)
        intact = view.edges().paths_intact(previous)
        keep = [previous[k] if intact[k] else fastest[k] for k in flows]
        return [(keep[k], keyed[k], fastest[k]) for k in flows]

    def chosen(self, paths) -> None:
        """The paths the decision took (the next decision's "keep")."""
        self._previous = tuple(paths)


def path_latencies_s(view: NetworkView, paths) -> list[float | None]:
    """Each path's latency, s (None for no path, or one with a hop down)."""
    return [x if np.isfinite(x) else None for x in view.edges().paths_latency_s(paths)]


def flow_features(view: NetworkView, candidates, greedy: KeyAwareGreedy) -> np.ndarray:
    """(F, FLOW_FEATURES) float32: per flow, for each candidate the key its weakest hop holds
    over the flow's 10 s need (Table 2's key-buffer-fill-level; FEATURE_CLIP when the flow needs
    none) and its latency in units of 10 ms, then whether the flow is active (needs key now);
    a missing candidate reads 0, 0. Clipped to [0, FEATURE_CLIP]."""
    out = np.zeros((len(view.flows), FLOW_FEATURES), dtype=np.float32)
    top = np.iinfo(np.int64).max
    every = [path for paths in candidates for path in paths]  # (one lookup for all)
    latencies = path_latencies_s(view, every)
    weakest = view.key_fill.weakest(every, initial=top)
    for k, flow in enumerate(view.flows):
        need = greedy.need_bits(flow, view.t_ns)
        latency = latencies[k * K_CANDIDATES : (k + 1) * K_CANDIDATES]
        for c, path in enumerate(candidates[k]):
            if path is None:
                continue
            held = weakest[k * K_CANDIDATES + c]
            out[k, c] = FEATURE_CLIP if need == 0 else min(held / need, FEATURE_CLIP)
            if latency[c] is not None:
                out[k, K_CANDIDATES + c] = min(latency[c] / LATENCY_UNIT_S, FEATURE_CLIP)
        out[k, -1] = float(need > 0)
    return out


class FlowPolicyNet(torch.nn.Module):
    """FLOW_FEATURES -> K_CANDIDATES logits, the same weights for every flow: an input of
    (..., F * FLOW_FEATURES) gives (..., F * K_CANDIDATES), flow by flow (RLlib's
    MultiDiscrete layout). ``outputs=1`` makes the value net PPO trains beside it
    (twin.control.train)."""

    def __init__(self, hidden=HIDDEN, outputs: int = K_CANDIDATES) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        width = FLOW_FEATURES
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.Tanh()]
            width = h
        layers.append(torch.nn.Linear(width, outputs))
        self.body = torch.nn.Sequential(*layers)
        self.hidden = tuple(int(h) for h in hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # scaled to [0, 1]: features up to FEATURE_CLIP saturated the first tanh layer
        per_flow = obs.reshape(*obs.shape[:-1], -1, FLOW_FEATURES) / FEATURE_CLIP
        return self.body(per_flow).flatten(-2)


@contextlib.contextmanager
def _one_torch_thread():
    """Torch ops inside run on the calling thread alone. A batch of a few dozen flows is too
    small to split, and torch's second thread spins on the core that ``ai-sdqn``'s planner
    thread (OSQP) needs: on mega, ai-sdqn's minute of ticks took 1.00-1.04 s with one thread
    against 1.29-1.44 s with two; alone, a 20-flow inference took 36 us on one, 64 us on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class EdgePolicy:
    """A trained :class:`FlowPolicyNet` and where it came from (``meta``: scenario,
    iterations, returns; written by twin.control.train)."""

    def __init__(self, net: FlowPolicyNet, meta: dict | None = None) -> None:
        self.net = net.to(torch.float64).eval()
        self.meta = dict(meta or {})

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(F, K_CANDIDATES) float64: each flow's probability of each candidate, one batched
        forward pass over the (F, FLOW_FEATURES) features."""
        if len(features) == 0:
            return np.zeros((0, K_CANDIDATES))
        with torch.no_grad(), _one_torch_thread():
            logits = self.net(torch.from_numpy(np.asarray(features, dtype=np.float64)))
            return torch.softmax(logits.reshape(-1, K_CANDIDATES), dim=1).numpy()

    def choose(self, features: np.ndarray) -> np.ndarray:
        """The candidate each flow takes: its most likely one (module docstring)."""
        return self.probabilities(features).argmax(axis=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.to(torch.float32) for k, v in self.net.state_dict().items()}
        torch.save(
            {"hidden": list(self.net.hidden), "state": state, "meta": json.dumps(self.meta)}, path
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> EdgePolicy:
        """A policy :meth:`save` wrote; ValueError naming the file for anything else."""
        path = Path(path)
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net = FlowPolicyNet(saved["hidden"])
            net.load_state_dict(saved["state"])
            meta = json.loads(saved["meta"])
        except FileNotFoundError:
            raise ValueError(f"policy file {str(path)!r} not found") from None
        except Exception as err:
            # (torch's own message is long and suggests weights_only=False, which would run
            # the file's code: only its first line is shown)
            first = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
            raise ValueError(
                f"{str(path)!r} is not a qntwin edge policy ({type(err).__name__}: {first}); "
                "give a policy.pt that `qntwin train` wrote"
            ) from None
        return cls(net, meta)


@functools.cache
def shipped_policy() -> EdgePolicy:
    """The policy shipped with qntwin (trained by ``qntwin train``; its ``meta`` says how)."""
    with resources.as_file(resources.files("twin.control") / "data" / SHIPPED_POLICY) as path:
        return EdgePolicy.load(path)


class DrlOnly:
    """``drl-only``: every flow takes the candidate path the edge policy picks; no energy plan
    and no shield (``ai-sdqn`` adds both, twin.control.ai_sdqn.AiSdqn)."""

    name = "drl-only"
    plan_every_ticks = 0
    reads_key_fill = True

    def __init__(self, policy: EdgePolicy | None = None) -> None:
        self.policy = policy or shipped_policy()
        self.candidates = CandidatePaths()

    def decide(self, view: NetworkView, avoid: Sequence[str] = ()) -> Decision:
        """The policy's paths; ``avoid``: stations to route around (``ai-sdqn``'s contact
        plan, twin.control.mpc.ContactPlan), see :func:`route_around`."""
        candidates = self.candidates.build(view)
        choice = self.policy.choose(flow_features(view, candidates, self.candidates.greedy))
        paths = tuple(candidates[k][c] for k, c in enumerate(choice.tolist()))
        if avoid:
            paths = route_around(view, paths, avoid, self.candidates.greedy)
        self.candidates.chosen(paths)
        return Decision(paths=paths)


def route_around(view: NetworkView, paths, avoid: Sequence[str], greedy: KeyAwareGreedy) -> tuple:
    """``paths`` with each path through a node of ``avoid`` replaced by the fastest keyed path
    over the links that stay up without those nodes, else the fastest such path
    (:meth:`KeyAwareGreedy.fastest_keyed`); a flow with no path around them keeps its own (an
    endpoint may be among them, or they may be the only way through)."""
    nodes = set(view.node_index.indices(avoid).tolist())
    through = [k for k, p in enumerate(paths) if p is not None and not nodes.isdisjoint(p)]
    if not through:
        return tuple(paths)
    snap = view.snapshot
    touching = np.isin(snap.a, list(nodes)) | np.isin(snap.b, list(nodes))
    around = dataclasses.replace(
        view, snapshot=dataclasses.replace(snap, up=snap.up & ~touching), edge_lookup=None
    )
    paths = list(paths)
    needs = {k: greedy.need_bits(view.flows[k], view.t_ns) for k in through}
    for need in sorted(set(needs.values())):
        members = [k for k in through if needs[k] == need]
        for k, path in KeyAwareGreedy.fastest_keyed(around, members, need).items():
            if path is not None:
                paths[k] = path
    return tuple(paths)
