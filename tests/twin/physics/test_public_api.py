"""The contract of twin.physics (issue 2, "A public API"): names, keywords, array inputs.

Later issues and users call these names; this test fails if one disappears or changes shape.
"""

import inspect

import numpy as np
import pytest

import twin.physics as physics


def test_every_public_name_resolves():
    for name in physics.__all__:
        assert getattr(physics, name) is not None, name
    assert len(physics.__all__) == len(set(physics.__all__))


def test_decoy_bb84_signature_is_the_contract():
    params = inspect.signature(physics.decoy_bb84_rate_per_pulse).parameters
    assert list(params)[:2] == ["transmittance", "mu"]
    for keyword in ("dark_count_prob", "misalignment_error", "f_ec", "sifting", "decoys"):
        assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY, keyword
    assert params["sifting"].default == 0.5
    assert params["decoys"].default is None


def test_contract_defaults():
    assert inspect.signature(physics.gamma_gamma_alpha_beta).parameters["wave"].default == "plane"
    assert (
        inspect.signature(physics.amplitude_damping_fidelity).parameters["both_qubits"].default
        is False
    )
    assert inspect.signature(physics.eclipse_fraction).parameters["beta_angle_rad"].default == 0.0


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_contract_functions_accept_arrays(shape):
    def arr(value):
        return np.full(shape, value)

    checks = [
        physics.binary_entropy(arr(0.11)),
        physics.decoy_bb84_rate_per_pulse(
            arr(1e-3), arr(0.5), dark_count_prob=1.7e-6, misalignment_error=0.033, f_ec=1.22
        ),
        physics.decoy_bb84_rate_per_pulse(
            arr(1e-3),
            0.5,
            dark_count_prob=arr(1.7e-6),
            misalignment_error=0.033,
            f_ec=1.22,
            decoys=(0.1, 0.0),
        ),
        *physics.gamma_gamma_alpha_beta(arr(1.0)),
        *physics.gamma_gamma_alpha_beta(arr(1.0), wave="spherical"),
        physics.memory_fidelity(arr(0.1), arr(1.0)),
        physics.werner_swap_fidelity(arr(0.9), arr(0.95)),
        physics.amplitude_damping_fidelity(arr(0.2)),
        physics.amplitude_damping_fidelity(arr(0.2), both_qubits=True),
        physics.eclipse_fraction(arr(550e3)),
        physics.eclipse_fraction(arr(550e3), beta_angle_rad=arr(0.3)),
    ]
    for value in checks:
        assert np.shape(value) == shape
        assert np.all(np.isfinite(value))
    # binary entropy of 0.11 is ~0.5 bit (a known point of H2)
    assert np.allclose(checks[0], 0.4999, atol=1e-3)
