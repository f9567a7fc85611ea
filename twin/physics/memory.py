"""Quantum memory: fidelity of stored entanglement versus storage time, and its time-to-live.

The main paper (../shared/papers/000_*.txt, Sec. III.C.2, eq. (3)) models a satellite that stores
half of a Bell pair while it flies from one ground station to the next ("data mule"):

    F(t) = (1 + exp(-t / T2)) / 2 > F_min,                                              (3)

which is the Bell-state fidelity after pure dephasing of the stored qubit (its coherence decays
as exp(-t/T2)). The time-to-live follows as t_TTL = -T2 ln(2 F_min - 1); with F_min = 0.85 and
T2 = 1 s it is 0.357 s.

``stored_bell_pair_fidelity`` generalises eq. (3) to a qubit with energy relaxation T1 and a
Werner-state initial fidelity F0 (derivation in its docstring, checked against explicit density
matrices in tests), and ``depolarizing_memory_fidelity`` gives the alternative depolarizing
model in which the stored pair decays towards the maximally mixed state.

All functions are pure and broadcast over numpy arrays; times are in seconds.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "memory_fidelity",
    "memory_time_to_live_s",
    "stored_bell_pair_fidelity",
    "depolarizing_memory_fidelity",
    "storage_time_feasible",
]


def _arr(name: str, x: ArrayLike) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} contains NaN")
    return arr


def _first(arr: np.ndarray, bad: np.ndarray) -> float:
    return float(arr[bad].flat[0]) if arr.ndim else float(arr)


def _nonnegative(name: str, x: ArrayLike) -> np.ndarray:
    arr = _arr(name, x)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 seconds, got {_first(arr, arr < 0)!r}")
    return arr


def _positive(name: str, x: ArrayLike) -> np.ndarray:
    arr = _arr(name, x)
    if np.any(arr <= 0):
        raise ValueError(
            f"{name} must be > 0 seconds (np.inf for a perfect memory), "
            f"got {_first(arr, arr <= 0)!r}"
        )
    return arr


def _out(x):
    x = np.asarray(x)
    return x[()]


def memory_fidelity(t_s: ArrayLike, t2_s: ArrayLike) -> np.ndarray:
    """Fidelity of a stored Bell-pair half after ``t_s`` seconds: (1 + exp(-t/T2)) / 2.

    Main paper eq. (3) (pure dephasing with coherence time ``t2_s``). Shapes broadcast;
    F(0) = 1, F(inf) = 1/2. ``t2_s = np.inf`` is a perfect memory.
    """
    t = _nonnegative("t_s", t_s)
    t2 = _positive("t2_s", t2_s)
    return _out(0.5 * (1.0 + np.exp(-t / t2)))


def memory_time_to_live_s(f_min: ArrayLike, t2_s: ArrayLike) -> np.ndarray:
    """Longest storage time with F(t) >= F_min under eq. (3): t = -T2 ln(2 F_min - 1), seconds.

    ``f_min`` must be in (0.5, 1]: eq. (3) never falls to 1/2, so F_min <= 0.5 has no finite
    TTL, and F_min = 1 gives 0. Example: F_min = 0.85, T2 = 1 s -> 0.357 s. Broadcasts.
    """
    f = _arr("f_min", f_min)
    bad = ~((f > 0.5) & (f <= 1.0))
    if np.any(bad):
        raise ValueError(
            f"f_min must be within (0.5, 1], got {_first(f, bad)!r} "
            "(eq. (3) tends to 0.5, so any storage time meets F_min <= 0.5)"
        )
    t2 = _positive("t2_s", t2_s)
    with np.errstate(invalid="ignore"):
        ttl = -t2 * np.log(2.0 * f - 1.0)
    # T2 = inf and F_min = 1 gives inf * 0: a perfect memory still keeps F = 1 forever.
    ttl = np.where(np.isinf(t2) & (f == 1.0), np.inf, ttl)
    return _out(ttl + 0.0)


def stored_bell_pair_fidelity(
    t_s: ArrayLike,
    t2_s: ArrayLike,
    *,
    t1_s: ArrayLike = np.inf,
    initial_fidelity: ArrayLike = 1.0,
) -> np.ndarray:
    """Bell-state fidelity of a Werner pair whose one half sits in a T1/T2 memory for ``t_s``.

    Model: the stored qubit undergoes amplitude damping with gamma = 1 - exp(-t/T1) plus pure
    dephasing such that its coherence decays as exp(-t/T2) in total (needs T2 <= 2 T1; standard
    Bloch relaxation, e.g. Nielsen & Chuang, Sec. 8.3.5-8.3.6). For |Phi+> the populations become
    (1/2, 0, gamma/2, (1-gamma)/2) and the coherence exp(-t/T2)/2, so

        F_pure(t) = (1 + exp(-t/T1) + 2 exp(-t/T2)) / 4,

    which is eq. (3) of the main paper when T1 -> inf. The maximally mixed part of a Werner state
    stays maximally mixed in fidelity (its overlap with |Phi+> remains 1/4), so for an initial
    Werner fidelity F0 = p + (1-p)/4:   F(t) = (1 - p)/4 + p F_pure(t),  p = (4 F0 - 1)/3.
    Shapes broadcast. Raises ValueError when T2 > 2 T1 (unphysical).
    """
    t = _nonnegative("t_s", t_s)
    t2 = _positive("t2_s", t2_s)
    t1 = _positive("t1_s", t1_s)
    f0 = _arr("initial_fidelity", initial_fidelity)
    bad = (f0 < 0.25) | (f0 > 1.0)
    if np.any(bad):
        raise ValueError(
            f"initial_fidelity must be within [0.25, 1] (Werner state), got {_first(f0, bad)!r}"
        )
    unphysical = t2 > 2.0 * t1
    if np.any(unphysical):
        t1b, t2b = np.broadcast_arrays(t1, t2)
        raise ValueError(
            f"t2_s must be <= 2 * t1_s (Bloch relaxation), got t2_s = {_first(t2b, unphysical)!r}"
            f" with t1_s = {_first(t1b, unphysical)!r}"
        )
    f_pure = (1.0 + np.exp(-t / t1) + 2.0 * np.exp(-t / t2)) / 4.0
    p = (4.0 * f0 - 1.0) / 3.0
    return _out((1.0 - p) / 4.0 + p * f_pure)


def depolarizing_memory_fidelity(
    t_s: ArrayLike, depolarizing_time_s: ArrayLike, initial_fidelity: ArrayLike = 1.0
) -> np.ndarray:
    """Fidelity of a stored pair under depolarizing decay: F(t) = 1/4 + (F0 - 1/4) exp(-t/tau).

    The Werner parameter decays as exp(-t/tau), so the pair tends to the maximally mixed state
    (F = 1/4), unlike eq. (3) which tends to a classically correlated state (F = 1/2). Use it
    when a memory is characterised by a depolarizing time. Shapes broadcast.
    """
    t = _nonnegative("t_s", t_s)
    tau = _positive("depolarizing_time_s", depolarizing_time_s)
    f0 = _arr("initial_fidelity", initial_fidelity)
    bad = (f0 < 0.25) | (f0 > 1.0)
    if np.any(bad):
        raise ValueError(f"initial_fidelity must be within [0.25, 1], got {_first(f0, bad)!r}")
    return _out(0.25 + (f0 - 0.25) * np.exp(-t / tau))


def storage_time_feasible(
    storage_time_s: ArrayLike, t2_s: ArrayLike, f_min: ArrayLike
) -> np.ndarray:
    """True where eq. (3) keeps F(storage_time_s) >= f_min (the TTL constraint on a route).

    ``f_min`` <= 0.5 is always met (eq. (3) never drops below 1/2); f_min > 1 never. Boolean
    array of the broadcast shape.
    """
    t = _nonnegative("storage_time_s", storage_time_s)
    t2 = _positive("t2_s", t2_s)
    f = _arr("f_min", f_min)
    return _out(0.5 * (1.0 + np.exp(-t / t2)) >= f)
