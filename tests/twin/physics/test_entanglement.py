"""Tests for twin.physics.entanglement: damping, fidelity and swapping against density matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from twin.physics.entanglement import (
    BELL_STATE_NAMES,
    amplitude_damp,
    amplitude_damping_fidelity,
    amplitude_damping_fidelity_pair,
    amplitude_damping_kraus,
    apply_single_qubit_channel,
    bell_fidelity,
    bell_state,
    bell_state_vector,
    entanglement_swap,
    phase_damp,
    state_fidelity,
    swap_chain,
    transmissivity_to_damping,
    werner_chain_fidelity,
    werner_state,
    werner_swap_fidelity,
)

GAMMAS = np.linspace(0.0, 1.0, 11)


def kron_damp_reference(rho, gamma, qubit):
    """Textbook rho' = sum_k (K_k (x) I) rho (K_k (x) I)^dagger with explicit Kronecker products."""
    k0 = np.array([[1, 0], [0, np.sqrt(1 - gamma)]])
    k1 = np.array([[0, np.sqrt(gamma)], [0, 0]])
    out = np.zeros((4, 4), dtype=complex)
    for k in (k0, k1):
        big = np.kron(k, np.eye(2)) if qubit == 0 else np.kron(np.eye(2), k)
        out += big @ rho @ big.conj().T
    return out


def random_density_matrix(rng, n=4):
    g = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    m = g @ g.conj().T
    return m / np.trace(m)


# --- states ---------------------------------------------------------------------------------


def test_bell_states_orthonormal_and_pure():
    vecs = np.array([bell_state_vector(n) for n in BELL_STATE_NAMES])
    np.testing.assert_allclose(vecs @ vecs.conj().T, np.eye(4), atol=1e-15)
    for n in BELL_STATE_NAMES:
        rho = bell_state(n)
        np.testing.assert_allclose(rho @ rho, rho, atol=1e-15)
        assert bell_fidelity(rho, n) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError, match="name must be one of"):
        bell_state("phi")


def test_werner_state_fidelity_and_trace():
    f = np.array([0.25, 0.6, 1.0])
    w = werner_state(f)
    assert w.shape == (3, 4, 4)
    np.testing.assert_allclose(np.trace(w, axis1=-2, axis2=-1), 1.0, atol=1e-15)
    np.testing.assert_allclose(bell_fidelity(w), f, atol=1e-15)
    np.testing.assert_allclose(werner_state(0.25), np.eye(4) / 4, atol=1e-15)
    # Werner states are Bell-diagonal with the other three weights (1 - F)/3.
    np.testing.assert_allclose(bell_fidelity(w, "psi-"), (1 - f) / 3, atol=1e-15)


# --- amplitude damping (SPARQ Sec. II-C3, II-C4) --------------------------------------------


@pytest.mark.parametrize("qubit", [0, 1])
def test_amplitude_damp_matches_kronecker_reference(qubit):
    rng = np.random.default_rng(1)
    for gamma in (0.0, 0.2, 0.7, 1.0):
        rho = random_density_matrix(rng)
        np.testing.assert_allclose(
            amplitude_damp(rho, gamma, qubit), kron_damp_reference(rho, gamma, qubit), atol=1e-14
        )


def test_amplitude_damping_fidelity_one_qubit_against_density_matrix():
    # SPARQ eq. (10)-(12): damp one half of |Phi+>, F = <Phi+|rho|Phi+>.
    phi = bell_state("phi+")
    numeric = [bell_fidelity(kron_damp_reference(phi, g, 1)) for g in GAMMAS]
    np.testing.assert_allclose(amplitude_damping_fidelity(GAMMAS), numeric, atol=1e-14)
    # Damping on A or B gives the same fidelity (symmetric state).
    numeric_a = [bell_fidelity(kron_damp_reference(phi, g, 0)) for g in GAMMAS]
    np.testing.assert_allclose(numeric_a, numeric, atol=1e-14)
    # Known points: gamma = 0 -> 1; gamma = 1 (eta = 0) -> 1/4.
    assert amplitude_damping_fidelity(0.0) == 1.0
    assert amplitude_damping_fidelity(1.0) == pytest.approx(0.25)


def test_amplitude_damping_fidelity_both_qubits_against_density_matrix():
    phi = bell_state("phi+")
    numeric = [
        bell_fidelity(kron_damp_reference(kron_damp_reference(phi, g, 0), g, 1)) for g in GAMMAS
    ]
    np.testing.assert_allclose(
        amplitude_damping_fidelity(GAMMAS, both_qubits=True), numeric, atol=1e-14
    )
    # gamma = 1 sends both qubits to |0>: |00> overlaps |Phi+> with 1/2.
    assert amplitude_damping_fidelity(1.0, both_qubits=True) == pytest.approx(0.5)


def test_amplitude_damping_fidelity_pair_against_density_matrix():
    phi = bell_state("phi+")
    for ga, gb in itertools.product((0.0, 0.15, 0.5, 0.9), repeat=2):
        rho = kron_damp_reference(kron_damp_reference(phi, ga, 0), gb, 1)
        assert amplitude_damping_fidelity_pair(ga, gb) == pytest.approx(
            bell_fidelity(rho), abs=1e-14
        )


def test_transmissivity_to_damping_and_fidelity_of_a_link():
    # SPARQ: gamma = 1 - eta; an eta = 0.9 link keeps F = (1 + sqrt(0.9))^2 / 4 = 0.9493.
    gamma = transmissivity_to_damping(0.9)
    assert gamma == pytest.approx(0.1)
    assert amplitude_damping_fidelity(gamma) == pytest.approx(0.949342, abs=1e-6)
    with pytest.raises(ValueError, match="eta must be within"):
        transmissivity_to_damping(-3.0)  # dB passed


def test_channels_preserve_trace_and_kraus_completeness():
    k = amplitude_damping_kraus(np.array([0.0, 0.3, 1.0]))
    completeness = np.einsum("gkji,gkjl->gil", k.conj(), k)
    np.testing.assert_allclose(completeness, np.broadcast_to(np.eye(2), (3, 2, 2)), atol=1e-15)
    rho = random_density_matrix(np.random.default_rng(2))
    out = phase_damp(rho, 0.4, 0)
    assert np.trace(out) == pytest.approx(1.0)
    # Dephasing scales the coherences of qubit A: rho[0b, 1b'] *= c.
    np.testing.assert_allclose(out[:2, 2:], 0.4 * rho[:2, 2:], atol=1e-15)
    np.testing.assert_allclose(out[:2, :2], rho[:2, :2], atol=1e-15)
    with pytest.raises(ValueError, match="qubit must be"):
        apply_single_qubit_channel(rho, k[0], 2)


def test_state_fidelity_general():
    rng = np.random.default_rng(3)
    rho = random_density_matrix(rng)
    assert state_fidelity(rho, rho) == pytest.approx(1.0, abs=1e-10)
    # Pure sigma: F = <psi|rho|psi>.
    assert state_fidelity(rho, bell_state("psi+")) == pytest.approx(
        bell_fidelity(rho, "psi+"), abs=1e-7
    )
    # Symmetric in its arguments.
    sigma = random_density_matrix(rng)
    assert state_fidelity(rho, sigma) == pytest.approx(state_fidelity(sigma, rho), abs=1e-10)


# --- entanglement swapping ---------------------------------------------------------------------


def swap_reference(rho_ab, rho_cd):
    """Swap by brute force in the 16-dim space: projectors on (B, C), partial trace, Paulis."""
    i2 = np.eye(2)
    x = np.array([[0, 1], [1, 0]])
    z = np.diag([1, -1])
    corrections = {"phi+": i2, "phi-": z, "psi+": x, "psi-": x @ z}
    full = np.kron(rho_ab, rho_cd)  # qubit order A, B, C, D
    out = np.zeros((4, 4), dtype=complex)
    for name, u in corrections.items():
        v = bell_state_vector(name)
        proj = np.kron(np.kron(i2, np.outer(v, v.conj())), i2)
        post = (proj @ full @ proj).reshape([2] * 8)  # (a b c d, a' b' c' d')
        rho_ad = np.einsum("abcdebcf->adef", post).reshape(4, 4)  # trace out B and C
        big_u = np.kron(i2, u)
        out += big_u @ rho_ad @ big_u.conj().T
    return out


def test_swap_of_ideal_pairs_gives_phi_plus():
    out = entanglement_swap(bell_state("phi+"), bell_state("phi+"))
    np.testing.assert_allclose(out, bell_state("phi+"), atol=1e-14)


def test_swap_matches_brute_force_for_random_states():
    rng = np.random.default_rng(4)
    for _ in range(5):
        r1, r2 = random_density_matrix(rng), random_density_matrix(rng)
        np.testing.assert_allclose(entanglement_swap(r1, r2), swap_reference(r1, r2), atol=1e-13)


def test_werner_swap_closed_form_agrees_with_density_matrix():
    # Briegel et al. PRL 81, 5932 (1998); Duer et al. PRA 59, 169 (1999):
    # F = f1 f2 + (1 - f1)(1 - f2)/3, and the output is again a Werner state.
    f1 = np.linspace(0.25, 1.0, 7)[:, None]
    f2 = np.linspace(0.3, 1.0, 5)[None, :]
    out = entanglement_swap(werner_state(f1), werner_state(f2))
    assert out.shape == (7, 5, 4, 4)
    closed = werner_swap_fidelity(f1, f2)
    np.testing.assert_allclose(bell_fidelity(out), closed, atol=1e-12)
    np.testing.assert_allclose(out, werner_state(closed), atol=1e-12)


def test_amplitude_damped_swap_needs_density_matrices():
    # Damped pairs are not Werner states: the Werner formula applied to their fidelities is
    # only an approximation, so the general swap is needed (SPARQ routes swap damped pairs).
    phi = bell_state("phi+")
    r1, r2 = amplitude_damp(phi, 0.3, 1), amplitude_damp(phi, 0.5, 0)
    exact = bell_fidelity(entanglement_swap(r1, r2))
    werner = werner_swap_fidelity(bell_fidelity(r1), bell_fidelity(r2))
    assert exact == pytest.approx(bell_fidelity(swap_reference(r1, r2)), abs=1e-13)
    assert abs(exact - werner) > 1e-3


def test_chain_fidelity_order_independent_and_matches_nested_swaps():
    links = np.array([0.95, 0.8, 0.9, 0.99])
    closed = werner_chain_fidelity(links)
    rng = np.random.default_rng(5)
    for _ in range(3):
        order = rng.permutation(4)
        rho = swap_chain([werner_state(f) for f in links[order]])
        assert bell_fidelity(rho) == pytest.approx(closed, abs=1e-12)
    # Nested (pairwise) swapping gives the same end-to-end state.
    left = entanglement_swap(werner_state(links[0]), werner_state(links[1]))
    right = entanglement_swap(werner_state(links[2]), werner_state(links[3]))
    assert bell_fidelity(entanglement_swap(left, right)) == pytest.approx(closed, abs=1e-12)
    # Two links reduce to the pairwise formula; one link is itself.
    assert werner_chain_fidelity([0.9, 0.8]) == pytest.approx(werner_swap_fidelity(0.9, 0.8))
    assert werner_chain_fidelity([0.9]) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="at least one link"):
        werner_chain_fidelity(np.zeros((3, 0)))


# --- broadcasting ------------------------------------------------------------------------------


def _check_broadcast(fn, make_args, core_ndim=0):
    rng = np.random.default_rng(11)
    grid = make_args(rng, (3, 4))
    out2 = np.asarray(fn(*grid))
    assert out2.shape[:2] == (3, 4) and out2.ndim == 2 + core_ndim
    row = [a[0] for a in grid]
    out1 = np.asarray(fn(*row))
    assert out1.shape[:1] == (4,)
    np.testing.assert_allclose(out1, out2[0], rtol=1e-13, atol=1e-15)
    single = [a[1, 2] for a in grid]
    out0 = np.asarray(fn(*single))
    assert out0.ndim == core_ndim
    np.testing.assert_allclose(out0, out2[1, 2], rtol=1e-13, atol=1e-15)


def test_broadcast_closed_forms():
    _check_broadcast(transmissivity_to_damping, lambda r, s: [r.uniform(0, 1, s)])
    _check_broadcast(amplitude_damping_fidelity, lambda r, s: [r.uniform(0, 1, s)])
    _check_broadcast(
        lambda g: amplitude_damping_fidelity(g, both_qubits=True), lambda r, s: [r.uniform(0, 1, s)]
    )
    _check_broadcast(
        amplitude_damping_fidelity_pair, lambda r, s: [r.uniform(0, 1, s), r.uniform(0, 1, s)]
    )
    _check_broadcast(werner_swap_fidelity, lambda r, s: [r.uniform(0, 1, s), r.uniform(0, 1, s)])
    _check_broadcast(
        werner_chain_fidelity, lambda r, s: [r.uniform(0.25, 1, s + (5,))], core_ndim=0
    )


def test_broadcast_density_matrix_functions():
    _check_broadcast(werner_state, lambda r, s: [r.uniform(0.25, 1, s)], core_ndim=2)
    _check_broadcast(amplitude_damping_kraus, lambda r, s: [r.uniform(0, 1, s)], core_ndim=3)
    _check_broadcast(
        lambda f, g: amplitude_damp(werner_state(f), g, 1),
        lambda r, s: [r.uniform(0.25, 1, s), r.uniform(0, 1, s)],
        core_ndim=2,
    )
    _check_broadcast(
        lambda f, c: phase_damp(werner_state(f), c, 0),
        lambda r, s: [r.uniform(0.25, 1, s), r.uniform(0, 1, s)],
        core_ndim=2,
    )
    _check_broadcast(lambda f: bell_fidelity(werner_state(f)), lambda r, s: [r.uniform(0, 1, s)])
    _check_broadcast(
        lambda f, g: state_fidelity(werner_state(f), werner_state(g)),
        lambda r, s: [r.uniform(0.25, 1, s), r.uniform(0.25, 1, s)],
    )
    _check_broadcast(
        lambda f, g: entanglement_swap(werner_state(f), amplitude_damp(bell_state(), g, 0)),
        lambda r, s: [r.uniform(0.25, 1, s), r.uniform(0, 1, s)],
        core_ndim=2,
    )
    _check_broadcast(
        lambda f, g: swap_chain([werner_state(f), werner_state(g), werner_state(f)]),
        lambda r, s: [r.uniform(0.25, 1, s), r.uniform(0.25, 1, s)],
        core_ndim=2,
    )
