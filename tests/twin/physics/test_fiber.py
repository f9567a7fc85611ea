"""Tests of twin.physics.fiber: SMF-28 loss, transmittance, latency and reach."""

from __future__ import annotations

import numpy as np
import pytest

from twin.physics.fiber import (
    C_BAND,
    O_BAND,
    SMF28_ULTRA_C_BAND,
    SMF28_ULTRA_O_BAND,
    fiber_latency_s,
    fiber_length_for_transmittance_m,
    fiber_loss_db,
    fiber_reach_m,
    fiber_transmittance,
)
from twin.units import KM, US


def test_datasheet_attenuations():
    # Corning SMF-28 Ultra PI1424: <= 0.18 dB/km at 1550 nm, <= 0.32 dB/km at 1310 nm;
    # ITU-T G.652.D cabled maximum 0.3 dB/km at 1550 nm, so the typical 0.2 is below it.
    assert SMF28_ULTRA_C_BAND.attenuation_db_per_km == 0.18
    assert SMF28_ULTRA_O_BAND.attenuation_db_per_km == 0.32
    assert C_BAND.attenuation_db_per_km <= 0.3
    assert O_BAND.attenuation_db_per_km > C_BAND.attenuation_db_per_km


def test_loss_budget_hand_calculation():
    # 100 km at 0.2 dB/km + 2 connectors x 0.3 dB + 4 splices x 0.05 dB = 20.8 dB
    loss = fiber_loss_db(100 * KM, 0.2, n_connectors=2, n_splices=4)
    assert loss == pytest.approx(20.0 + 0.6 + 0.2, abs=1e-12)
    assert fiber_transmittance(100 * KM, 0.2) == pytest.approx(0.01, rel=1e-12)


def test_latency_group_index():
    # ~4.9 us per km at 1550 nm: 1000 m * 1.4682 / c = 4.8974 us
    assert fiber_latency_s(1 * KM) / US == pytest.approx(4.8974, abs=1e-4)
    assert fiber_latency_s(1 * KM, O_BAND.group_index) < fiber_latency_s(1 * KM)


def test_reach_and_equivalent_length():
    # a 28 dB budget with 2 dB of fixed loss: 130 km at 0.2 dB/km
    assert fiber_reach_m(28.0, 0.2, fixed_loss_db=2.0) == pytest.approx(130 * KM)
    assert fiber_reach_m(1.0, 0.2, fixed_loss_db=2.0) == 0.0
    # the inverse of the attenuation law; T = 1e-20 is 1000 km of 0.2 dB/km fibre
    assert fiber_length_for_transmittance_m(1e-20, 0.2) == pytest.approx(1000 * KM)
    assert np.isinf(fiber_length_for_transmittance_m(0.0))


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="length_m"):
        fiber_loss_db(-1.0)
    with pytest.raises(ValueError, match="dB/m"):
        fiber_loss_db(1000.0, 200.0)
    with pytest.raises(ValueError, match="transmittance"):
        fiber_length_for_transmittance_m(2.0)


_CASES = [
    (lambda a, b: fiber_loss_db(a, b, n_connectors=2), [1e3, 5e4, 1e5], [0.18, 0.2, 0.33]),
    (fiber_transmittance, [1e3, 5e4, 1e5], [0.18, 0.2, 0.33]),
    (fiber_latency_s, [1e3, 5e4, 1e5], [1.4676, 1.4682, 1.5]),
    (lambda a, b: fiber_reach_m(a, b, fixed_loss_db=1.0), [0.5, 10.0, 30.0], [0.18, 0.2, 0.33]),
    (fiber_length_for_transmittance_m, [1e-3, 0.1, 0.9], [0.18, 0.2, 0.33]),
]


@pytest.mark.parametrize(("func", "first", "second"), _CASES)
def test_broadcasting(func, first, second):
    first = np.asarray(first, dtype=float)
    second = np.asarray(second, dtype=float)
    scalar = np.asarray(func(first[0], second[0]))
    assert scalar.shape == ()
    vec = np.asarray(func(first, second[0]))
    assert vec.shape == (3,)
    mat = np.asarray(func(first[:, None], second[None, :]))
    assert mat.shape == (3, 3)
    for i in range(3):
        assert vec[i] == pytest.approx(float(func(first[i], second[0])), rel=1e-12)
        for j in range(3):
            assert mat[i, j] == pytest.approx(float(func(first[i], second[j])), rel=1e-12)
