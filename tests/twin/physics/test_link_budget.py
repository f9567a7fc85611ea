"""Tests of the composed link budget and the presets, with the Micius validation.

Validation source (the issue's required check): S.-K. Liao et al., "Satellite-to-ground quantum
key distribution", Nature 549, 43-47 (2017): the link loss measured along one pass of Micius over
Xinglong, 645-1200 km (the pass of its Fig. 3), in the digitisation published with Baidu QNET's
Micius tutorial (github.com/baidu/QCompute, Extensions/QuantumNetwork/examples/data/
micius2017_link_efficiency.csv, 2022; QNET states that the data come from Liao 2017). The
numbers below are approximate +-5 km averages read from that file. QNET applies the 50 %
detector efficiency on top of that loss, so the digitised loss is everything *but* the detector;
it is compared with our ``total_loss_db - detector_loss_db``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from twin.physics.link_budget import LinkBudget, compute_link_budget, link_from_params
from twin.physics.presets import MICIUS_2017, PRESETS, get_preset, preset_names
from twin.units import DEG, KM

# Liao et al. 2017, Fig. 3 (via the QNET digitisation): slant range (km) -> loss without the
# detector efficiency (dB), averaged over +-5 km.
MICIUS_MEASURED_LOSS_DB = {
    650: 29.9,
    700: 30.9,
    800: 31.0,
    900: 32.5,
    1050: 35.5,
    1100: 36.1,
    1150: 37.2,
    1190: 38.5,
}
TOLERANCE_DB = 3.0


def _micius_model_loss_db(ranges_km) -> np.ndarray:
    budget = compute_link_budget("micius-2017", range_m=np.asarray(ranges_km, float) * KM)
    return budget.total_loss_db - budget.detector_loss_db


def test_micius_loss_against_liao_2017_fig3():
    ranges = sorted(MICIUS_MEASURED_LOSS_DB)
    measured = np.array([MICIUS_MEASURED_LOSS_DB[r] for r in ranges])
    model = _micius_model_loss_db(ranges)
    # within +-3 dB at every one of the eight ranges (the issue asks for >= 3 between ~500 and
    # 1200 km); measured agreement: -1.6 .. +0.9 dB. The absolute level rests on one
    # unpublished number, the optics efficiency of transmitter x receiver (0.6 x 0.2, see
    # presets); the range dependence is physics: diffraction, Kasten-Young air mass on a
    # spherical Earth, and the seeing disk against a 20 urad field stop.
    assert np.all(np.abs(model - measured) <= TOLERANCE_DB), np.c_[ranges, model, measured]


def test_micius_range_dependence_without_the_absolute_level():
    # The change of loss from 650 km to each range, which no efficiency constant can move:
    # model within 2 dB of the measurement everywhere (measured +8.6 dB at 1190 km, model +7.3).
    # Diffraction (+5.2 dB) and clear-air extinction (+0.4 dB) alone give +5.7 dB; the
    # turbulence term (seeing vs field stop, +1.7 dB) is what the low elevations need.
    ranges = sorted(MICIUS_MEASURED_LOSS_DB)
    measured = np.array([MICIUS_MEASURED_LOSS_DB[r] for r in ranges])
    model = _micius_model_loss_db(ranges)
    assert np.all(np.abs((model - model[0]) - (measured - measured[0])) <= 2.0)
    # and the loss grows monotonically with range
    assert np.all(np.diff(model) > 0)


def test_micius_key_rate_and_qber_orders():
    # Liao et al. 2017: "kilohertz key rate ... over a distance of up to 1,200 km"; the final key
    # of that pass averaged ~1.1 kbit/s. Asymptotic rate here, so the same order.
    b = compute_link_budget("micius-2017", range_m=1000 * KM)
    assert 300.0 < float(b.skr_bps) < 10_000.0
    # the sifted key is several kbit/s (Fig. 3 of Liao 2017: ~kHz sifted rates over the pass)
    assert 1_000.0 < float(b.sifted_key_rate_bps) < 30_000.0
    # QBER: ~1-2 % was reported over the pass (Liao 2017); noise must not dominate it
    pass_budget = compute_link_budget("micius-2017", range_m=np.array([650, 1000, 1200]) * KM)
    assert np.all((pass_budget.qber > 0.005) & (pass_budget.qber < 0.025))
    assert np.all(np.diff(pass_budget.skr_bps) < 0)


def test_micius_preset_published_values():
    p = MICIUS_2017
    assert p.tx.aperture_diameter_m == pytest.approx(0.30)
    assert p.rx.aperture_diameter_m == pytest.approx(1.0)
    assert p.tx.wavelength_m == pytest.approx(850e-9)
    assert p.repetition_rate_hz == pytest.approx(100e6)
    assert (p.mu_signal, p.decoys) == (0.8, (0.1, 0.0))
    assert p.platform_altitude_m == pytest.approx(500 * KM)
    for parameter in ("tx.aperture_diameter_m", "rx.optical_efficiency", "misalignment_error"):
        assert p.source_of(parameter)


# --- the budget's bookkeeping ------------------------------------------------------------------


def test_breakdown_sums_to_total_and_json_keys():
    b = compute_link_budget("micius-2017", range_m=900 * KM)
    parts = (
        b.geometric_loss_db
        + b.atmospheric_loss_db
        + b.turbulence_loss_db
        + b.pointing_loss_db
        + b.transmitter_loss_db
        + b.receiver_loss_db
    )
    assert float(parts) == pytest.approx(float(b.total_loss_db), abs=1e-9)
    assert float(b.transmittance) == pytest.approx(10 ** (-float(b.total_loss_db) / 10))
    d = b.to_json_dict()
    for key in ("total_loss_db", "transmittance", "qber", "skr_bps"):
        assert isinstance(d[key], float)
    json.dumps(d, allow_nan=False)  # serialisable as is, strict JSON
    assert isinstance(b, LinkBudget)
    # vacuum: NaN elevation and infinite r0 become null; arrays become lists
    isl = compute_link_budget("isl-leo-1550", range_m=np.array([1e6, 2e6])).to_json_dict()
    assert isl["elevation_rad"] == [None, None] and isl["fried_parameter_m"] == [None, None]
    assert isinstance(isl["skr_bps"], list) and all(isinstance(v, float) for v in isl["skr_bps"])
    json.dumps(isl, allow_nan=False)


def test_elevation_and_range_inputs_agree():
    by_range = compute_link_budget("micius-2017", range_m=1000 * KM)
    el = float(by_range.elevation_rad)
    by_el = compute_link_budget("micius-2017", elevation_rad=el)
    assert float(by_el.range_m) == pytest.approx(1000 * KM, rel=1e-9)
    assert float(by_el.total_loss_db) == pytest.approx(float(by_range.total_loss_db), abs=1e-9)
    # spherical Earth: 500 km altitude, 960 m site, zenith -> range = altitude difference
    top = compute_link_budget("micius-2017", elevation_rad=90 * DEG)
    assert float(top.range_m) == pytest.approx(500 * KM - 960.0, rel=1e-9)


def test_weather_adds_to_atmosphere_only():
    clear = compute_link_budget("micius-2017", range_m=800 * KM)
    hazy = compute_link_budget("micius-2017", range_m=800 * KM, weather_loss_db=3.0)
    assert float(hazy.atmospheric_loss_db - clear.atmospheric_loss_db) == pytest.approx(3.0)
    assert float(hazy.total_loss_db - clear.total_loss_db) == pytest.approx(3.0)
    assert float(hazy.skr_bps) < float(clear.skr_bps)


def test_downlink_turbulence_is_only_the_field_stop_and_the_fade_margin():
    # without a field stop a downlink loses no mean power to turbulence (unit-mean Gamma-Gamma)
    no_stop = dataclasses.replace(
        MICIUS_2017, rx=dataclasses.replace(MICIUS_2017.rx, field_of_view_full_angle_rad=None)
    )
    b = compute_link_budget(no_stop, range_m=1000 * KM)
    assert float(b.turbulence_loss_db) == pytest.approx(0.0, abs=1e-12)
    assert float(b.fade_margin_db) > 0.0
    assert 0.01 < float(b.fried_parameter_m) < 0.5
    # with the 20 urad field stop the loss grows as the elevation (and r0) drops
    with_stop = compute_link_budget(MICIUS_2017, range_m=np.array([650, 1000, 1200]) * KM)
    assert np.all(np.diff(with_stop.turbulence_loss_db) > 0)
    assert np.all(np.diff(with_stop.fried_parameter_m) < 0)


def test_uplink_turbulence_spreads_the_beam():
    # the same terminals turned around: ground -> space, turbulence at the transmitter
    p = dataclasses.replace(MICIUS_2017, name="micius-uplink", kind="uplink")
    up = compute_link_budget(p, range_m=1000 * KM)
    down = compute_link_budget(MICIUS_2017, range_m=1000 * KM)
    assert float(up.turbulence_loss_db) >= 0.0
    assert float(up.rytov_variance) != float(down.rytov_variance)


def test_every_preset_runs_with_a_positive_key():
    for name in preset_names():
        b = compute_link_budget(name)
        assert np.isfinite(b.total_loss_db) and b.total_loss_db > 0, name
        assert b.skr_bps > 0, name
    isl = compute_link_budget("isl-leo-1550")
    assert float(isl.atmospheric_loss_db) == 0.0 and float(isl.fade_margin_db) == 0.0
    assert np.isnan(isl.elevation_rad)
    # the HAPS-space path starts above 20 km: almost no air, almost no turbulence
    hs = compute_link_budget("haps-space-550km")
    assert float(hs.atmospheric_loss_db) < 0.1
    assert float(hs.rytov_variance) < 1e-3


def test_custom_link_from_params_matches_preset():
    p = MICIUS_2017
    custom = link_from_params(
        kind="downlink",
        wavelength_m=p.tx.wavelength_m,
        tx_aperture_diameter_m=0.30,
        rx_aperture_diameter_m=1.0,
        platform_altitude_m=p.platform_altitude_m,
        ground_altitude_m=p.ground_altitude_m,
        base="micius-2017",
    )
    a = compute_link_budget(custom, range_m=900 * KM)
    b = compute_link_budget(p, range_m=900 * KM)
    assert float(a.total_loss_db) == pytest.approx(float(b.total_loss_db))
    # a mapping works too, and a bigger receiver gains 20 log10(1.5) dB of capture
    bigger = compute_link_budget(
        {
            **dict(
                kind="downlink",
                wavelength_m=850e-9,
                tx_aperture_diameter_m=0.3,
                platform_altitude_m=500e3,
                ground_altitude_m=960.0,
                base="micius-2017",
            ),
            "rx_aperture_diameter_m": 1.5,
        },
        range_m=900 * KM,
    )
    gain = float(b.geometric_loss_db - bigger.geometric_loss_db)
    assert gain == pytest.approx(20 * np.log10(1.5), abs=0.2)


def test_user_errors_are_clear():
    with pytest.raises(ValueError, match="unknown link preset"):
        get_preset("micius-2018")
    with pytest.raises(ValueError, match="km passed"):
        compute_link_budget("micius-2017", range_m=1000.0)
    with pytest.raises(ValueError, match="degrees passed"):
        compute_link_budget("micius-2017", elevation_rad=45.0)
    with pytest.raises(ValueError, match="not both"):
        compute_link_budget("micius-2017", range_m=1e6, elevation_rad=0.5)
    with pytest.raises(ValueError, match="unknown terminal parameters"):
        link_from_params(
            kind="downlink",
            wavelength_m=850e-9,
            tx_aperture_diameter_m=0.3,
            rx_aperture_diameter_m=1.0,
            platform_altitude_m=5e5,
            tx_colour="red",
        )


@pytest.mark.parametrize("name", [n for n in sorted(PRESETS) if PRESETS[n].kind != "isl"])
def test_batched_fade_margin_matches_direct_evaluation(name):
    # batches larger than the interpolation grid interpolate the margin in zenith angle
    elevations = np.linspace(10, 90, 30) * DEG
    direct = compute_link_budget(name, elevation_rad=elevations).fade_margin_db
    batch = np.concatenate([elevations, np.linspace(10, 90, 200) * DEG])
    interpolated = compute_link_budget(name, elevation_rad=batch).fade_margin_db[:30]
    np.testing.assert_allclose(interpolated, direct, atol=0.01)
    skipped = compute_link_budget(name, elevation_rad=batch, fade_margin=False)
    assert np.all(np.isnan(skipped.fade_margin_db))
    np.testing.assert_allclose(
        skipped.total_loss_db, compute_link_budget(name, elevation_rad=batch).total_loss_db
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_broadcasting(name):
    preset = get_preset(name)
    ranges = np.array([1.0, 1.3, 1.7]) * max(preset.default_range_m, 1.0)
    if preset.kind != "isl":
        lo = preset.platform_altitude_m - preset.ground_altitude_m
        ranges = np.array([1.05, 1.3, 1.7]) * max(lo, 1.0)
    one = compute_link_budget(name, range_m=ranges[0])
    assert one.total_loss_db.shape == ()
    vec = compute_link_budget(name, range_m=ranges)
    grid = compute_link_budget(name, range_m=np.stack([ranges, ranges[::-1]]))
    assert vec.total_loss_db.shape == (3,)
    assert grid.skr_bps.shape == (2, 3)
    for field in ("total_loss_db", "qber", "skr_bps", "fade_margin_db", "elevation_rad"):
        scalars = np.array(
            [float(getattr(compute_link_budget(name, range_m=r), field)) for r in ranges]
        )
        np.testing.assert_allclose(getattr(vec, field), scalars, rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(getattr(grid, field)[1], scalars[::-1], rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("decoys", [(0.1, 0.0), (0.2, 0.05)])
@pytest.mark.parametrize("name", ["isl-leo-1550", "ground-haps-20km", "micius-2017"])
def test_key_rate_fast_path_is_qkd_terms_bit_for_bit(name, decoys):
    # G(t) keeps only the key rate: _KeyRate checks the link once and fuses the decoy terms;
    # its rate must be qkd_terms' exactly (not approximately), from no loss to beyond cut-off
    from twin.physics.link_budget import _KeyRate, qkd_terms

    link = dataclasses.replace(get_preset(name), decoys=decoys)
    eta = np.concatenate(
        [[0.0, 1.0, 1e-300, 0.5], 10.0 ** (-np.random.default_rng(2).uniform(0, 9, 2000))]
    )
    np.testing.assert_array_equal(_KeyRate(link).skr_bps(eta), qkd_terms(link, eta)[3])


def test_key_rate_fast_path_raises_as_qkd_terms():
    from twin.physics.link_budget import _KeyRate

    key_rate = _KeyRate(get_preset("isl-leo-1550"))
    for bad in (1.5, -0.1, np.nan):
        with pytest.raises(ValueError, match="transmittance"):
            key_rate.skr_bps(np.array([0.5, bad]))
    with pytest.raises(ValueError, match="decoys"):
        _KeyRate(dataclasses.replace(get_preset("isl-leo-1550"), decoys=(0.6, 0.0)))


@pytest.mark.parametrize("name", ["isl-leo-1550", "ground-haps-20km", "micius-2017"])
def test_key_rate_zero_region_skips_only_exact_zeros(name):
    # _KeyRate skips the decoy formula at and below a transmittance where the rate is exactly 0
    # (3 dB past the bisected edge): around and far below that edge it must still be
    # qkd_terms' rate bit for bit, and the region must start where the rate really is 0
    from twin.physics.link_budget import _KeyRate, qkd_terms

    link = get_preset(name)
    key_rate = _KeyRate(link)
    cut = key_rate.zero_at_or_below
    assert 0.0 < cut < 1.0, cut
    edge_db = -10 * np.log10(cut) - 3.0103
    loss_db = np.concatenate(
        [np.linspace(edge_db - 1.0, edge_db + 4.0, 5001), np.linspace(0.0, 400.0, 4001)]
    )
    eta = 10.0 ** (-loss_db / 10)
    fast = key_rate.skr_bps(eta)
    np.testing.assert_array_equal(fast, qkd_terms(link, eta)[3])
    assert np.all(fast[eta <= cut] == 0.0)
    assert np.any(fast[(eta > cut) & (eta < 2.01 * cut)] == 0.0)  # zeros left to compute
    assert np.any(fast > 0.0)
