"""Two-qubit entanglement: Bell and Werner states, amplitude damping, fidelity, swapping.

Conventions. A two-qubit density matrix is a complex array of shape (..., 4, 4) in the basis
|00>, |01>, |10>, |11> with qubit 0 (the "A" side) the most significant bit; leading axes are
batch axes and broadcast. Single (4, 4) matrices work everywhere.

Sources
-------
- SPARQ (../shared/papers/003_*.txt, Sec. II-C3/II-C4, eq. (10)-(12)): an entangled pair
  degraded by an amplitude-damping channel whose damping is set by the link transmissivity
  eta (gamma = 1 - eta), Kraus operators K0 = [[1, 0], [0, sqrt(1-gamma)]],
  K1 = [[0, sqrt(gamma)], [0, 0]], and entanglement fidelity F = <Phi+| rho |Phi+>.
- Werner states and swapping: C. H. Bennett et al., Phys. Rev. A 54, 3824 (1996);
  H.-J. Briegel, W. Duer, J. I. Cirac, P. Zoller, Phys. Rev. Lett. 81, 5932 (1998); W. Duer et
  al., Phys. Rev. A 59, 169 (1999): swapping two Werner pairs of fidelities F1, F2 gives a Werner
  pair of fidelity F1 F2 + (1 - F1)(1 - F2)/3, i.e. the Werner parameters p = (4F - 1)/3
  multiply along a chain.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BELL_STATE_NAMES",
    "bell_state_vector",
    "bell_state",
    "werner_state",
    "amplitude_damping_kraus",
    "apply_single_qubit_channel",
    "amplitude_damp",
    "phase_damp",
    "bell_fidelity",
    "state_fidelity",
    "transmissivity_to_damping",
    "amplitude_damping_fidelity",
    "amplitude_damping_fidelity_pair",
    "entanglement_swap",
    "werner_swap_fidelity",
    "werner_chain_fidelity",
    "swap_chain",
]

BELL_STATE_NAMES = ("phi+", "phi-", "psi+", "psi-")

_S = 1.0 / np.sqrt(2.0)
_BELL_VECTORS = {
    "phi+": np.array([_S, 0, 0, _S], dtype=complex),
    "phi-": np.array([_S, 0, 0, -_S], dtype=complex),
    "psi+": np.array([0, _S, _S, 0], dtype=complex),
    "psi-": np.array([0, _S, -_S, 0], dtype=complex),
}
_PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}
_PAULI["XZ"] = _PAULI["X"] @ _PAULI["Z"]
# Outcome of the Bell measurement on the middle qubits -> Pauli on the far qubit that maps the
# output back to |Phi+> for ideal inputs (|Phi+>_AB |Phi+>_CD = 1/2 sum_k |beta_k>_BC
# (1 x sigma_k)|Phi+>_AD, with sigma = I, Z, X, XZ for Phi+, Phi-, Psi+, Psi-).
_CORRECTIONS = {"phi+": "I", "phi-": "Z", "psi+": "X", "psi-": "XZ"}


def _first(arr: np.ndarray, bad: np.ndarray) -> float:
    return float(np.asarray(arr)[bad].flat[0]) if np.ndim(arr) else float(arr)


def _prob(name: str, x: ArrayLike, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    bad = ~((arr >= lo) & (arr <= hi))
    if np.any(bad):
        raise ValueError(f"{name} must be within [{lo}, {hi}], got {_first(arr, bad)!r}")
    return arr


def _rho(name: str, rho: ArrayLike) -> np.ndarray:
    arr = np.asarray(rho)
    if arr.shape[-2:] != (4, 4):
        raise ValueError(
            f"{name} must have shape (..., 4, 4) (a two-qubit density matrix), got {arr.shape}"
        )
    return arr.astype(complex, copy=False)


def _out(x):
    x = np.asarray(x)
    return x[()]


def bell_state_vector(name: str = "phi+") -> np.ndarray:
    """State vector (4,) of a Bell state: 'phi+', 'phi-', 'psi+' or 'psi-'."""
    try:
        return _BELL_VECTORS[name].copy()
    except KeyError:
        raise ValueError(f"name must be one of {BELL_STATE_NAMES}, got {name!r}") from None


def bell_state(name: str = "phi+") -> np.ndarray:
    """Density matrix (4, 4) of a Bell state ('phi+' = (|00> + |11>)/sqrt2, 'phi-', 'psi+', ...)."""
    v = bell_state_vector(name)
    return np.outer(v, v.conj())


def werner_state(fidelity: ArrayLike, name: str = "phi+") -> np.ndarray:
    """Werner state F |B><B| + (1 - F)/3 (I - |B><B|) around Bell state ``name``.

    ``fidelity`` in [0, 1] (physical Werner states of the usual kind have F >= 1/4); shape
    (...,) gives (..., 4, 4). Bennett et al. 1996.
    """
    f = _prob("fidelity", fidelity)[..., None, None]
    b = bell_state(name)
    return f * b + (1.0 - f) / 3.0 * (np.eye(4) - b)


def amplitude_damping_kraus(gamma: ArrayLike) -> np.ndarray:
    """Kraus operators of the amplitude-damping channel, shape (..., 2, 2, 2) = (..., k, i, j).

    K0 = [[1, 0], [0, sqrt(1 - gamma)]], K1 = [[0, sqrt(gamma)], [0, 0]] (SPARQ eq. (10);
    Nielsen & Chuang eq. (8.108)). ``gamma`` in [0, 1].
    """
    g = _prob("gamma", gamma)
    k = np.zeros(g.shape + (2, 2, 2), dtype=complex)
    k[..., 0, 0, 0] = 1.0
    k[..., 0, 1, 1] = np.sqrt(1.0 - g)
    k[..., 1, 0, 1] = np.sqrt(g)
    return k


def apply_single_qubit_channel(rho: ArrayLike, kraus: ArrayLike, qubit: int) -> np.ndarray:
    """Apply a single-qubit channel, given by Kraus operators (..., k, 2, 2), to qubit 0 or 1.

    rho' = sum_k (K_k x I) rho (K_k x I)^dagger for qubit 0 (A), (I x K_k) ... for qubit 1 (B).
    Batch axes of ``rho`` (..., 4, 4) and ``kraus`` broadcast.
    """
    r = _rho("rho", rho)
    k = np.asarray(kraus, dtype=complex)
    if k.shape[-2:] != (2, 2) or k.ndim < 3:
        raise ValueError(f"kraus must have shape (..., k, 2, 2), got {k.shape}")
    if qubit not in (0, 1):
        raise ValueError(f"qubit must be 0 (A) or 1 (B), got {qubit!r}")
    r4 = r.reshape(r.shape[:-2] + (2, 2, 2, 2))  # (..., a, b, a', b')
    kc = k.conj()
    if qubit == 0:
        out = np.einsum("...kia,...abcd,...kjc->...ibjd", k, r4, kc)
    else:
        out = np.einsum("...kib,...abcd,...kjd->...aicj", k, r4, kc)
    return out.reshape(out.shape[:-4] + (4, 4))


def amplitude_damp(rho: ArrayLike, gamma: ArrayLike, qubit: int) -> np.ndarray:
    """Amplitude damping with damping ``gamma`` on one qubit of ``rho`` (SPARQ eq. (11))."""
    return apply_single_qubit_channel(rho, amplitude_damping_kraus(gamma), qubit)


def phase_damp(rho: ArrayLike, coherence_factor: ArrayLike, qubit: int) -> np.ndarray:
    """Pure dephasing of one qubit: its off-diagonal elements are multiplied by ``c`` in [0, 1].

    Kraus form K0 = [[1, 0], [0, c]], K1 = [[0, 0], [0, sqrt(1 - c^2)]] (phase damping, Nielsen &
    Chuang Sec. 8.3.6); c = exp(-t/T_phi) for a memory.
    """
    c = _prob("coherence_factor", coherence_factor)
    k = np.zeros(c.shape + (2, 2, 2), dtype=complex)
    k[..., 0, 0, 0] = 1.0
    k[..., 0, 1, 1] = c
    k[..., 1, 1, 1] = np.sqrt(1.0 - c**2)
    return apply_single_qubit_channel(rho, k, qubit)


def bell_fidelity(rho: ArrayLike, name: str = "phi+") -> np.ndarray:
    """Entanglement fidelity <B| rho |B> with Bell state ``name`` (SPARQ eq. (12)); shape (...)."""
    r = _rho("rho", rho)
    v = bell_state_vector(name)
    return _out(np.real(np.einsum("i,...ij,j->...", v.conj(), r, v)))


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    w = np.sqrt(np.clip(w, 0.0, None))
    return (v * w[..., None, :]) @ np.swapaxes(v.conj(), -1, -2)


def state_fidelity(rho: ArrayLike, sigma: ArrayLike) -> np.ndarray:
    """Uhlmann fidelity (tr sqrt(sqrt(rho) sigma sqrt(rho)))^2 of two density matrices.

    Shapes (..., n, n), batch axes broadcast. Equals <psi|rho|psi> when sigma = |psi><psi|.
    Computed by eigendecomposition; for rank-deficient states round-off in the square roots
    limits the accuracy to ~1e-8 (use ``bell_fidelity`` against a Bell state for exact values).
    """
    r = np.asarray(rho, dtype=complex)
    s = np.asarray(sigma, dtype=complex)
    sr = _psd_sqrt(r)
    m = sr @ s @ sr
    m = 0.5 * (m + np.swapaxes(m.conj(), -1, -2))
    w = np.clip(np.linalg.eigvalsh(m), 0.0, None)
    return _out(np.sum(np.sqrt(w), axis=-1) ** 2)


def transmissivity_to_damping(eta: ArrayLike) -> np.ndarray:
    """Amplitude-damping parameter of a lossy link: gamma = 1 - eta (SPARQ Sec. II-C3).

    ``eta`` is the link transmissivity in [0, 1] (linear, not dB). Broadcasts.
    """
    e = _prob("eta", eta)
    return _out(1.0 - e)


def amplitude_damping_fidelity(gamma: ArrayLike, both_qubits: bool = False) -> np.ndarray:
    """Fidelity <Phi+|rho|Phi+> of (|00> + |11>)/sqrt2 after amplitude damping (closed form).

    One qubit damped:  F = (1 + sqrt(1 - gamma))^2 / 4   (= (1 + sqrt(eta))^2 / 4, SPARQ).
    Both qubits damped by the same gamma:  F = [(2 - gamma)^2 + gamma^2] / 4
                                             = 1 - gamma + gamma^2 / 2.
    Derivation: (K0 x I)|Phi+> = (|00> + sqrt(1-g)|11>)/sqrt2 is the only Kraus branch that
    overlaps |Phi+>; with both qubits damped the K0 x K0 and K1 x K1 branches do. Checked against
    the density-matrix computation (``amplitude_damp``) in tests. Broadcasts over ``gamma``.
    """
    g = _prob("gamma", gamma)
    if both_qubits:
        return _out(1.0 - g + 0.5 * g**2)
    return _out((1.0 + np.sqrt(1.0 - g)) ** 2 / 4.0)


def amplitude_damping_fidelity_pair(gamma_a: ArrayLike, gamma_b: ArrayLike) -> np.ndarray:
    """Fidelity of |Phi+> when qubit A is damped by ``gamma_a`` and qubit B by ``gamma_b``.

    F = [(1 + sqrt((1 - gamma_a)(1 - gamma_b)))^2 + gamma_a gamma_b] / 4, the case of a source
    (satellite, HAPS) sending one half of the pair down each of two links (SPARQ's TPED policy).
    Reduces to ``amplitude_damping_fidelity``. Broadcasts.
    """
    ga = _prob("gamma_a", gamma_a)
    gb = _prob("gamma_b", gamma_b)
    return _out(((1.0 + np.sqrt((1.0 - ga) * (1.0 - gb))) ** 2 + ga * gb) / 4.0)


def entanglement_swap(rho_ab: ArrayLike, rho_cd: ArrayLike) -> np.ndarray:
    """Entanglement swapping: Bell measurement on B and C, Pauli correction on D; returns rho_AD.

    Input pairs (A, B) and (C, D), each (..., 4, 4) with batch axes broadcasting. For each of the
    four Bell outcomes beta_k on (B, C) the unnormalised conditional state
    rho_AD^k = <beta_k|_BC (rho_AB x rho_CD) |beta_k>_BC is corrected by the Pauli sigma_k on D
    that restores |Phi+> for ideal inputs (I, Z, X, XZ for Phi+, Phi-, Psi+, Psi-), and the
    corrected states are summed: the outcome-averaged state, normalised because the outcome
    probabilities sum to 1. Returns (..., 4, 4) in the basis of (A, D).
    """
    r1 = _rho("rho_ab", rho_ab)
    r2 = _rho("rho_cd", rho_cd)
    a = r1.reshape(r1.shape[:-2] + (2, 2, 2, 2))  # (..., a, b, a', b')
    c = r2.reshape(r2.shape[:-2] + (2, 2, 2, 2))  # (..., c, d, c', d')
    out = 0
    for name, correction in _CORRECTIONS.items():
        beta = _BELL_VECTORS[name].reshape(2, 2)  # beta[b, c]
        # <beta|_BC rho_AB x rho_CD |beta>_BC; primed indices are upper case.
        cond = np.einsum("bc,...abAB,...cdCD,BC->...adAD", beta.conj(), a, c, beta, optimize=True)
        u = _PAULI[correction]  # U rho U^dagger on D
        out = out + np.einsum("ie,...aeAf,jf->...aiAj", u, cond, u.conj())
    out = np.asarray(out)
    return out.reshape(out.shape[:-4] + (4, 4))


def werner_swap_fidelity(f1: ArrayLike, f2: ArrayLike) -> np.ndarray:
    """Fidelity after swapping two Werner pairs: F = f1 f2 + (1 - f1)(1 - f2)/3.

    Briegel et al. 1998, Duer et al. 1999 (perfect Bell measurement, Bennett et al. 1996 Werner
    states). Agrees with ``entanglement_swap`` of two ``werner_state`` inputs to 1e-12 (tests).
    Broadcasts.
    """
    a = _prob("f1", f1)
    b = _prob("f2", f2)
    return _out(a * b + (1.0 - a) * (1.0 - b) / 3.0)


def werner_chain_fidelity(link_fidelities: ArrayLike, axis: int = -1) -> np.ndarray:
    """End-to-end fidelity of a chain of Werner links joined by perfect swaps (nested swapping).

    The Werner parameters p_i = (4 F_i - 1)/3 multiply: F = (1 + 3 prod_i p_i)/4, so the result
    does not depend on the order of the swaps. ``link_fidelities`` (..., n) along ``axis``;
    returns (...). One link returns its own fidelity.
    """
    f = _prob("link_fidelities", link_fidelities)
    if f.ndim == 0 or f.shape[axis] == 0:
        raise ValueError(
            f"link_fidelities needs at least one link along axis {axis}, got shape {f.shape}"
        )
    p = (4.0 * f - 1.0) / 3.0
    return _out((1.0 + 3.0 * np.prod(p, axis=axis)) / 4.0)


def swap_chain(rhos) -> np.ndarray:
    """Swap a chain of pairs (n0, n1), (n1, n2), ... left to right into one pair (n0, n_last).

    ``rhos`` is a sequence of (..., 4, 4) density matrices (or an array (n, ..., 4, 4)).
    Returns (..., 4, 4). For Werner links the order does not matter (see
    ``werner_chain_fidelity``); for general states it may.
    """
    items = list(rhos)
    if not items:
        raise ValueError("rhos must hold at least one two-qubit density matrix")
    out = _rho("rhos[0]", items[0])
    for i, r in enumerate(items[1:], start=1):
        out = entanglement_swap(out, _rho(f"rhos[{i}]", r))
    return out
