"""The control problem's objective, main paper eq. (4) and (5) (sec. IV-A), as the twin measures it.

Every tick the engine scores what happened with the reward of eq. (4),

    r_t = w_secure * R_secure/R_demand - w_latency * L_latency - w_carbon * E_carbon
          + w_availability * A_avail,

and sums it into ``J = sum_t gamma^(t dt) r_t`` (metrics.json, ``objective``). The paper names
the four terms but gives neither their units nor the weights; the twin measures them as follows
(each from the tick's own counters, so J is a pure function of (scenario, seed, code) under
every runtime):

- ``secure_ratio`` (R_secure / R_demand, "the proportion of Type-I/II demands met with adequate
  keys"): the Type-I and Type-II flows' time with a path and the keys their security mode needs,
  over their active time in the tick (the flows' ``secure_ns`` / ``active_ns``, as the
  secure-session uptime counts it); a tick without such demand meets all of it (1).
- ``latency_ratio`` (L_latency): the mean propagation latency of the active flows' paths, in
  units of the Type-I SLO, 1 ms (sec. IV-B), so the term has no unit; flows without a path
  count in the two ratios, not here (0 when no active flow has a path).
- ``carbon_kg_per_h`` (E_carbon, eq. (5): sum over a path's nodes of P_load^n(t) CI_n(t)): per
  active flow with a path, the wall-plug power of every node of it that draws grid power, times
  its grid's carbon intensity at t, in kg CO2e per hour; the mean over those flows. Only the
  optical ground stations draw grid power in the twin (satellites and HAPS run on solar and
  batteries, CI = 0; factories' networking loads are not modelled).
- ``availability`` (A_avail, "the probability that the link SNR exceeds the QKD threshold"):
  the share of all flows' active time in which they were served (a path of up links, the keys
  their mode needs and their latency target: ``availability_pct``'s definition); a tick without
  demand is available (1).

The weights and the discount are scenario settings (``objective``); their defaults are
assumptions, chosen so that each term moves J by a comparable amount on the paper's scenarios:
10 ms of mean path latency or 1 kg CO2e/h of attributed carbon cost as much as a tenth of the
demand going without key. J is undiscounted by default (a run is a finite horizon);
``mean_reward`` (J's terms and reward averaged over the ticks) compares runs of different length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from twin.network.traffic import TrafficClass

__all__ = ["ObjectiveTotals", "ObjectiveWeights", "TickTerms", "carbon_rate_kg_per_h"]

LATENCY_REFERENCE_S = 1e-3  # the Type-I latency SLO (main paper sec. IV-B): L is in its units
_SECURE_CLASSES = (TrafficClass.TYPE_I.value, TrafficClass.TYPE_II.value)


@dataclass(frozen=True)
class TickTerms:
    """The four terms of eq. (4) for one tick (module docstring)."""

    secure_ratio: float
    latency_ratio: float
    carbon_kg_per_h: float
    availability: float

    @classmethod
    def of_tick(
        cls, served_ns: Mapping[str, Sequence[int]], latency_ratio: float, carbon_kg_per_h: float
    ) -> TickTerms:
        """The terms from a tick's per-class ``[served, active, secure]`` ns (the node phase's
        ``TickCounters.served_ns``) and the path terms the engine measured at its start."""
        secure = sum(served_ns[c][2] for c in _SECURE_CLASSES if c in served_ns)
        demanded = sum(served_ns[c][1] for c in _SECURE_CLASSES if c in served_ns)
        served = sum(ns[0] for ns in served_ns.values())
        active = sum(ns[1] for ns in served_ns.values())
        return cls(
            secure_ratio=secure / demanded if demanded else 1.0,
            latency_ratio=float(latency_ratio),
            carbon_kg_per_h=float(carbon_kg_per_h),
            availability=served / active if active else 1.0,
        )


@dataclass(frozen=True)
class ObjectiveWeights:
    """w1..w4 of eq. (4) and the discount (scenario ``objective``; module docstring)."""

    secure: float = 1.0
    latency: float = 0.01
    carbon: float = 0.1
    availability: float = 1.0
    discount_per_s: float = 1.0
    """gamma per simulated second; a tick of dt seconds discounts by gamma**dt"""

    def __post_init__(self) -> None:
        for name in ("secure", "latency", "carbon", "availability"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"objective weight {name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.discount_per_s <= 1:
            raise ValueError(
                f"objective discount_per_s must be within (0, 1], got {self.discount_per_s}"
            )

    def reward(self, terms: TickTerms) -> float:
        """r_t of eq. (4)."""
        return (
            self.secure * terms.secure_ratio
            - self.latency * terms.latency_ratio
            - self.carbon * terms.carbon_kg_per_h
            + self.availability * terms.availability
        )


@dataclass
class ObjectiveTotals:
    """J and the terms' sums over a run's ticks, added in tick order."""

    weights: ObjectiveWeights
    dt_s: float
    ticks: int = 0
    j: float = 0.0
    _sums: dict[str, float] = field(default_factory=dict)

    def add(self, terms: TickTerms) -> float:
        """Add the next tick; returns its reward."""
        reward = self.weights.reward(terms)
        self.j += self.weights.discount_per_s ** (self.ticks * self.dt_s) * reward
        for name, value in (*vars(terms).items(), ("reward", reward)):
            self._sums[name] = self._sums.get(name, 0.0) + value
        self.ticks += 1
        return reward

    def as_dict(self) -> dict:
        """metrics.json's ``objective``: J, the mean reward and terms per tick, the weights."""
        mean = {name: total / self.ticks for name, total in self._sums.items()}
        return {
            "J": self.j if self.ticks else None,
            "mean_reward": mean.pop("reward", None),
            "mean_terms": mean or None,
            "weights": vars(self.weights).copy(),
        }


def carbon_rate_kg_per_h(power_w, intensity_g_per_kwh):
    """P_load^n(t) CI_n(t) of eq. (5) for nodes drawing ``power_w`` (W) from grids of
    ``intensity_g_per_kwh``, in kg CO2e per hour: W x g/kWh = g/h / 1000, so P CI / 1e6.
    A path's E_carbon is the sum over its nodes."""
    return np.asarray(power_w, dtype=float) * np.asarray(intensity_g_per_kwh, dtype=float) / 1e6
