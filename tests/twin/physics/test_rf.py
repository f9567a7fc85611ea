"""Tests of twin.physics.rf: Friis loss, ITU-R P.838-3 rain, P.618 path, budget and capacity."""

from __future__ import annotations

import numpy as np
import pytest

from twin.physics.rf import (
    BOLTZMANN_DBW_PER_K_HZ,
    carrier_to_noise_db,
    carrier_to_noise_density_dbhz,
    free_space_path_loss_db,
    gaseous_attenuation_db,
    link_margin_db,
    rain_attenuation_db,
    rain_coefficients_p838,
    rain_effective_path_length_m,
    rain_specific_attenuation_db_per_km,
    shannon_capacity_bps,
)
from twin.units import DEG, GHZ, KM, MHZ


def test_fspl_hand_calculation():
    # FSPL[dB] = 92.45 + 20 log10(d/km) + 20 log10(f/GHz): 1000 km at 30 GHz -> 181.99 dB
    # (ITU-R P.525-4, 32.45 + 20 log d_km + 20 log f_MHz)
    assert free_space_path_loss_db(1000 * KM, 30 * GHZ) == pytest.approx(181.99, abs=0.01)
    # 550 km at 20 GHz: 92.45 + 54.81 + 26.02 = 173.28 dB
    assert free_space_path_loss_db(550 * KM, 20 * GHZ) == pytest.approx(173.28, abs=0.01)
    # doubling the distance adds 6.02 dB
    assert free_space_path_loss_db(2e6, 2e10) - free_space_path_loss_db(1e6, 2e10) == (
        pytest.approx(20 * np.log10(2))
    )


# ITU-R P.838-3 (03/2005), Table 5: frequency-dependent coefficients (tabulated).
P838_TABLE5 = {
    # f_GHz: (k_H, alpha_H, k_V, alpha_V)
    10: (0.01217, 1.2571, 0.01129, 1.2156),
    12: (0.02386, 1.1825, 0.02455, 1.1216),
    20: (0.09164, 1.0568, 0.09611, 0.9847),
    30: (0.2403, 0.9485, 0.2291, 0.9129),
}


@pytest.mark.parametrize("f_ghz", sorted(P838_TABLE5))
def test_p838_coefficients_against_recommendation_table(f_ghz):
    k_h_ref, a_h_ref, k_v_ref, a_v_ref = P838_TABLE5[f_ghz]
    # horizontal polarisation: tau = 0 at elevation 0; vertical: tau = pi/2
    k_h, a_h = rain_coefficients_p838(f_ghz * GHZ, 0.0, 0.0)
    k_v, a_v = rain_coefficients_p838(f_ghz * GHZ, 0.0, np.pi / 2)
    assert k_h == pytest.approx(k_h_ref, rel=1e-3)
    assert a_h == pytest.approx(a_h_ref, abs=2e-4)
    assert k_v == pytest.approx(k_v_ref, rel=1e-3)
    assert a_v == pytest.approx(a_v_ref, abs=2e-4)


def test_p838_specific_attenuation_30ghz_25mm_per_h():
    # gamma = k R^alpha with the P.838-3 Table 5 coefficients at 30 GHz, R = 25 mm/h:
    # H: 0.2403 * 25^0.9485 = 5.09 dB/km, V: 0.2291 * 25^0.9129 = 4.33 dB/km
    gamma_h = rain_specific_attenuation_db_per_km(25.0, 30 * GHZ, 0.0, 0.0)
    gamma_v = rain_specific_attenuation_db_per_km(25.0, 30 * GHZ, 0.0, np.pi / 2)
    assert gamma_h == pytest.approx(0.2403 * 25**0.9485, abs=0.01)
    assert gamma_v == pytest.approx(0.2291 * 25**0.9129, abs=0.01)
    assert gamma_h == pytest.approx(5.09, abs=0.01)
    # circular polarisation (tau = 45 deg) lies between H and V (eq. (4)-(5))
    gamma_c = rain_specific_attenuation_db_per_km(25.0, 30 * GHZ, 40 * DEG)
    assert gamma_v < gamma_c < gamma_h
    assert rain_specific_attenuation_db_per_km(0.0, 30 * GHZ) == 0.0


def test_p618_path_length_behaviour():
    # zenith path with no horizontal projection: L_R = h_R - h_s (3 km), then nu adjusts it
    le = rain_effective_path_length_m(90 * DEG, 20 * GHZ, 10.0, rain_height_m=3000.0)
    assert 1.5 * KM < le < 5 * KM
    # longer slant paths at lower elevation, but less than the geometric slant (r_0.01 < 1)
    le_low = rain_effective_path_length_m(20 * DEG, 20 * GHZ, 50.0, rain_height_m=4000.0)
    assert le_low < 4000.0 / np.sin(20 * DEG)
    assert le_low > rain_effective_path_length_m(60 * DEG, 20 * GHZ, 50.0, rain_height_m=4000.0)
    # a station above the rain height sees no rain
    assert rain_attenuation_db(30 * DEG, 20 * GHZ, 25.0, station_altitude_m=5000.0) == 0.0
    with pytest.raises(ValueError, match="5 deg"):
        rain_effective_path_length_m(2 * DEG, 20 * GHZ, 10.0)
    with pytest.raises(ValueError, match="GHz passed"):
        rain_specific_attenuation_db_per_km(10.0, 30.0)


def test_rain_attenuation_grows_with_rate_and_frequency():
    a = rain_attenuation_db(30 * DEG, np.array([12, 20, 30]) * GHZ, 25.0, rain_height_m=4000.0)
    assert np.all(np.diff(a) > 0)
    b = rain_attenuation_db(30 * DEG, 20 * GHZ, np.array([1.0, 10.0, 50.0]), rain_height_m=4000.0)
    assert np.all(np.diff(b) > 0)


def test_budget_and_shannon():
    # C/N0 = EIRP - L + G/T + 228.6
    cn0 = carrier_to_noise_density_dbhz(50.0, 15.0, 200.0)
    assert cn0 == pytest.approx(50 - 200 + 15 + 228.6, abs=0.01)
    assert BOLTZMANN_DBW_PER_K_HZ == pytest.approx(-228.6, abs=0.01)
    cn = carrier_to_noise_db(cn0, 100 * MHZ)
    assert cn == pytest.approx(cn0 - 80.0)
    # Shannon: C/N = 0 dB gives exactly B bit/s; 30 dB ~ 9.97 B
    assert shannon_capacity_bps(100 * MHZ, 0.0) == pytest.approx(100e6)
    assert shannon_capacity_bps(1.0, 30.0) == pytest.approx(np.log2(1001.0))
    assert link_margin_db(12.0, 9.5) == pytest.approx(2.5)
    # gaseous: zenith value at 90 deg, doubled at 30 deg
    assert gaseous_attenuation_db(90 * DEG, 0.4) == pytest.approx(0.4)
    assert gaseous_attenuation_db(30 * DEG, 0.4) == pytest.approx(0.8)


_BROADCAST_CASES = [
    (free_space_path_loss_db, [5e5, 1e6, 2e6], [1e10, 2e10, 3e10]),
    (lambda f, r: rain_specific_attenuation_db_per_km(r, f), [1e10, 2e10, 3e10], [0.0, 5.0, 25.0]),
    (lambda el, f: rain_coefficients_p838(f, el)[0], [0.2, 0.5, 1.0], [1e10, 2e10, 3e10]),
    (lambda el, f: rain_coefficients_p838(f, el)[1], [0.2, 0.5, 1.0], [1e10, 2e10, 3e10]),
    (lambda el, r: rain_effective_path_length_m(el, 2e10, r), [0.2, 0.5, 1.0], [1.0, 10.0, 50.0]),
    (lambda el, r: rain_attenuation_db(el, 2e10, r), [0.2, 0.5, 1.0], [0.0, 10.0, 50.0]),
    (gaseous_attenuation_db, [0.2, 0.5, 1.5], [0.1, 0.4, 1.0]),
    (lambda e, l: carrier_to_noise_density_dbhz(e, 10.0, l), [40.0, 50.0, 60.0], [180, 190, 200]),
    (carrier_to_noise_db, [80.0, 90.0, 100.0], [1e6, 1e7, 1e8]),
    (link_margin_db, [5.0, 10.0, 15.0], [3.0, 6.0, 9.0]),
    (shannon_capacity_bps, [1e6, 1e7, 1e8], [-3.0, 0.0, 20.0]),
]


@pytest.mark.parametrize(("func", "first", "second"), _BROADCAST_CASES)
def test_broadcasting(func, first, second):
    a = np.asarray(first, dtype=float)
    b = np.asarray(second, dtype=float)
    assert np.asarray(func(a[0], b[0])).shape == ()
    vec = np.asarray(func(a, b[0]))
    assert vec.shape == (3,)
    mat = np.asarray(func(a[:, None], b[None, :]))
    assert mat.shape == (3, 3)
    for i in range(3):
        assert vec[i] == pytest.approx(float(func(a[i], b[0])), rel=1e-12)
        for j in range(3):
            assert mat[i, j] == pytest.approx(float(func(a[i], b[j])), rel=1e-12, abs=1e-15)
