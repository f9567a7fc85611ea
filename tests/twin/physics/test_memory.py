"""Tests for twin.physics.memory: eq. (3) of the main paper, its TTL, and T1/T2 storage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.physics.entanglement import amplitude_damp, bell_fidelity, phase_damp, werner_state
from twin.physics.memory import (
    depolarizing_memory_fidelity,
    memory_fidelity,
    memory_time_to_live_s,
    storage_time_feasible,
    stored_bell_pair_fidelity,
)


def test_eq3_values():
    # Main paper eq. (3): F(t) = (1 + exp(-t/T2)) / 2.
    assert memory_fidelity(0.0, 1.0) == 1.0
    assert memory_fidelity(1.0, 1.0) == pytest.approx((1 + math.exp(-1)) / 2)
    assert memory_fidelity(1e6, 1.0) == pytest.approx(0.5)
    assert memory_fidelity(5.0, np.inf) == 1.0


def test_ttl_for_fmin_085_and_t2_1s_is_0357_s():
    # Main paper Sec. III.C.2: F_min ~ 0.85; t = -T2 ln(2 F - 1) = -ln(0.7) = 0.3567 s.
    ttl = memory_time_to_live_s(0.85, 1.0)
    assert ttl == pytest.approx(0.357, abs=5e-4)
    assert memory_fidelity(ttl, 1.0) == pytest.approx(0.85, abs=1e-12)
    assert memory_time_to_live_s(1.0, 1.0) == 0.0
    assert memory_time_to_live_s(0.9, np.inf) == np.inf
    assert memory_time_to_live_s(1.0, np.inf) == np.inf


@pytest.mark.parametrize("bad", [0.5, 0.3, 1.01, 85.0])
def test_ttl_rejects_fmin_outside_half_open_interval(bad):
    with pytest.raises(ValueError, match=r"f_min must be within \(0.5, 1\]"):
        memory_time_to_live_s(bad, 1.0)


def test_argument_errors():
    with pytest.raises(ValueError, match="t2_s must be > 0"):
        memory_fidelity(1.0, 0.0)
    with pytest.raises(ValueError, match="t_s must be >= 0"):
        memory_fidelity(-1.0, 1.0)
    with pytest.raises(ValueError, match="t2_s must be <= 2"):
        stored_bell_pair_fidelity(1.0, 3.0, t1_s=1.0)


def test_storage_feasibility_at_the_ttl():
    ttl = memory_time_to_live_s(0.85, 2.0)
    ok = storage_time_feasible(np.array([0.0, 0.99 * ttl, 1.01 * ttl, 10.0]), 2.0, 0.85)
    np.testing.assert_array_equal(ok, [True, True, False, False])
    assert storage_time_feasible(1e9, 1.0, 0.5)  # eq. (3) never drops below 1/2


def _stored_pair_density_matrix(t, t2, t1, f0):
    """Werner pair, qubit B through amplitude damping (T1) then pure dephasing to total T2."""
    rho = werner_state(f0)
    rho = amplitude_damp(rho, 1.0 - math.exp(-t / t1), 1)
    # Amplitude damping already scales the coherence by exp(-t/(2 T1)); dephase the rest.
    extra = math.exp(-t / t2) / math.exp(-t / (2.0 * t1))
    return phase_damp(rho, extra, 1)


@pytest.mark.parametrize(
    "t,t2,t1,f0",
    [(0.3, 1.0, 10.0, 1.0), (2.0, 1.0, 0.5, 1.0), (0.7, 0.4, 5.0, 0.9), (1.5, 2.0, 1.0, 0.8)],
)
def test_stored_pair_fidelity_against_density_matrix(t, t2, t1, f0):
    expected = bell_fidelity(_stored_pair_density_matrix(t, t2, t1, f0))
    got = stored_bell_pair_fidelity(t, t2, t1_s=t1, initial_fidelity=f0)
    assert got == pytest.approx(expected, abs=1e-13)


def test_stored_pair_reduces_to_eq3_without_t1():
    t = np.linspace(0, 5, 11)
    np.testing.assert_allclose(stored_bell_pair_fidelity(t, 1.3), memory_fidelity(t, 1.3))
    # Pure dephasing on a Werner pair, density-matrix check of the initial-fidelity term.
    rho = phase_damp(werner_state(0.9), math.exp(-0.5), 1)
    assert stored_bell_pair_fidelity(0.5, 1.0, initial_fidelity=0.9) == pytest.approx(
        bell_fidelity(rho), abs=1e-14
    )


def test_depolarizing_memory():
    assert depolarizing_memory_fidelity(0.0, 1.0, 0.95) == pytest.approx(0.95)
    assert depolarizing_memory_fidelity(1e6, 1.0) == pytest.approx(0.25)
    assert depolarizing_memory_fidelity(1.0, 1.0) == pytest.approx(0.25 + 0.75 * math.exp(-1))


def _check_broadcast(fn, make_args):
    rng = np.random.default_rng(5)
    grid = make_args(rng, (3, 4))
    out2 = np.asarray(fn(*grid))
    assert out2.shape == (3, 4)
    out1 = np.asarray(fn(*[a[0] if np.ndim(a) else a for a in grid]))
    assert out1.shape == (4,)
    np.testing.assert_allclose(out1, out2[0], rtol=1e-14)
    out0 = fn(*[a[1, 2] if np.ndim(a) else a for a in grid])
    assert np.ndim(out0) == 0
    assert out0 == pytest.approx(out2[1, 2], rel=1e-14)


def test_broadcasting():
    _check_broadcast(memory_fidelity, lambda r, s: [r.uniform(0, 3, s), r.uniform(0.1, 3, s)])
    _check_broadcast(
        memory_time_to_live_s, lambda r, s: [r.uniform(0.51, 1, s), r.uniform(0.1, 3, s)]
    )
    _check_broadcast(
        lambda t, t2, f0: stored_bell_pair_fidelity(t, t2, t1_s=5.0, initial_fidelity=f0),
        lambda r, s: [r.uniform(0, 3, s), r.uniform(0.1, 3, s), r.uniform(0.25, 1, s)],
    )
    _check_broadcast(
        depolarizing_memory_fidelity,
        lambda r, s: [r.uniform(0, 3, s), r.uniform(0.1, 3, s), r.uniform(0.25, 1, s)],
    )
    _check_broadcast(
        storage_time_feasible,
        lambda r, s: [r.uniform(0, 3, s), r.uniform(0.1, 3, s), r.uniform(0.6, 1, s)],
    )
