"""Named optical link presets: equipment, geometry and QKD source settings, each with its source.

A preset is data, not physics: :func:`twin.physics.link_budget.compute_link_budget` turns one
into a loss breakdown, a QBER and a key rate. Every number below carries its source in
``LinkPreset.sources`` (a published value, or "assumption: ..." with the reasoning), so a reader
can tell measured hardware from our choices.

``micius-2017`` reproduces the decoy-state BB84 downlink of the Micius satellite to the Xinglong
ground station: S.-K. Liao et al., "Satellite-to-ground quantum key distribution", Nature 549,
43-47 (2017) [Liao17], and the reproduction of that experiment in Baidu QNET's Micius tutorial
(github.com/baidu/QCompute, Extensions/QuantumNetwork, tutorial "Micius quantum satellite
experiment", 2022) [QNET22], which lists the source settings it took from [Liao17] (100 MHz,
850 nm, intensities 0.8/0.1/0 sent with probabilities 0.5/0.25/0.25, detector efficiency 0.5)
and digitises the measured link loss along one pass (645-1200 km).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.physics.fso import LINK_KINDS, Terminal
from twin.units import KM, MHZ, NM, NS, URAD

__all__ = [
    "LinkPreset",
    "PRESETS",
    "get_preset",
    "preset_names",
]


@dataclass(frozen=True)
class LinkPreset:
    """Everything needed to budget one optical QKD link (SI units throughout)."""

    name: str
    description: str
    kind: str
    """an ``fso.LINK_KINDS`` key: downlink, uplink, ground-haps, haps-ground, haps-space,
    space-haps, isl"""
    tx: Terminal
    rx: Terminal
    platform_altitude_m: float
    """altitude of the upper end of the link (satellite or HAPS), m above sea level"""
    ground_altitude_m: float = 0.0
    """altitude of the lower end (ground station, or the HAPS of a HAPS-space link), m"""
    default_range_m: float = 1000 * KM
    """slant range used when the caller gives neither a range nor an elevation"""
    zenith_transmittance: float | None = None
    """clear-air zenith transmittance from the lower end to space at the wavelength;
    None: the atmosphere module's clear-air model"""
    visibility_m: float = 23_000.0
    """sea-level (boundary-layer) visibility of the clear-air aerosol model; 23 km is MODTRAN's
    "clear" rural aerosol"""
    hv_ground_cn2_m_minus_2_3: float = 1.7e-14
    """ground-level Cn2 of the Hufnagel-Valley profile (HV 5/7 by default)"""
    hv_rms_wind_speed_m_per_s: float = 21.0
    """rms upper-atmosphere wind of the Hufnagel-Valley profile (HV 5/7 by default)"""
    outage_probability: float = 1e-3
    """outage probability at which the Gamma-Gamma fade margin is reported"""
    repetition_rate_hz: float = 100 * MHZ
    mu_signal: float = 0.5
    """mean photon number of the signal state"""
    decoys: tuple[float, float] | None = (0.1, 0.0)
    """(weak decoy, vacuum) intensities; None: the infinite-decoy bound"""
    signal_probability: float = 1.0
    """fraction of the pulses sent as signal states (the key is distilled from those)"""
    sifting: float = 0.5
    dark_count_rate_hz: float = 100.0
    """dark count rate per detector (Hz)"""
    n_detectors: int = 4
    background_count_rate_hz: float = 0.0
    """background (sky, stray light) click rate summed over the detectors (Hz)"""
    gate_width_s: float = 1 * NS
    """coincidence window around the expected arrival time (s)"""
    misalignment_error: float = 0.01
    """probability that a photon hits the wrong detector (polarisation contrast)"""
    f_ec: float = 1.16
    """error-correction inefficiency"""
    sources: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)
    """(parameter, source) pairs: a citation or "assumption: ..." for each setting"""

    def __post_init__(self) -> None:
        if self.kind not in LINK_KINDS:
            raise ValueError(f"kind must be one of {sorted(LINK_KINDS)}, got {self.kind!r}")
        if self.platform_altitude_m <= self.ground_altitude_m:
            raise ValueError(
                "platform_altitude_m must exceed ground_altitude_m (metres), got "
                f"{self.platform_altitude_m} <= {self.ground_altitude_m} (km passed?)"
            )
        if self.zenith_transmittance is not None and not (0 < self.zenith_transmittance <= 1):
            raise ValueError(
                f"zenith_transmittance must be in (0, 1], got {self.zenith_transmittance}"
            )
        if not (0 < self.signal_probability <= 1):
            raise ValueError(f"signal_probability must be in (0, 1], got {self.signal_probability}")
        if not (0 < self.outage_probability < 1):
            raise ValueError(
                f"outage_probability must be within (0, 1), got {self.outage_probability}"
            )

    def source_of(self, parameter: str) -> str:
        """The citation (or stated assumption) behind ``parameter``; '' if none is recorded."""
        return dict(self.sources).get(parameter, "")


# --------------------------------------------------------------------------------------------
# micius-2017: Micius -> Xinglong decoy-state BB84 downlink [Liao17]
# --------------------------------------------------------------------------------------------

_MICIUS_SOURCES = (
    ("kind", "[Liao17]: satellite-to-ground downlink, decoy-state BB84"),
    ("tx.aperture_diameter_m", "[Liao17]: 300 mm aperture Cassegrain transmitting telescope"),
    ("tx.wavelength_m", "[Liao17]: 850 nm (QNET22 uses 848.62 nm)"),
    (
        "tx.divergence_half_angle_rad",
        "[Liao17]: beam divergence ~10 urad. Read as the 1/e^2 half-angle: with the full-angle "
        "reading (5 urad half-angle) the diffraction loss is 6 dB lower and matching the "
        "measured loss would need a ~3 % optical efficiency, which no QKD receiver has",
    ),
    (
        "tx.pointing_jitter_rms_rad",
        "assumption: 0.5 urad rms per axis, the order of the fine-tracking accuracy reported "
        "for the Micius APT system (sub-urad); its loss is < 0.05 dB against a 10 urad beam",
    ),
    (
        "tx.optical_efficiency",
        "assumption: 0.6 for the satellite transmitter optics (Cassegrain mirrors, dichroic "
        "combining with the 532/671 nm beacons, fine-steering mirror); not given in [Liao17]",
    ),
    ("rx.aperture_diameter_m", "[Liao17]: 1.0 m telescope at Xinglong (NAOC)"),
    (
        "rx.obscuration_diameter_m",
        "assumption: 0.25 m secondary of a 1-m Ritchey-Chretien (6 % of the area)",
    ),
    (
        "rx.optical_efficiency",
        "assumption: 0.2 for the ground receiver optics (telescope mirrors, relay and "
        "dichroics, BB84 decoder, narrow filters, coupling onto the detectors); typical of "
        "1-m class QKD receivers, not given in [Liao17]; with the transmitter optics it is "
        "the one level we cannot take from a source (see tests/twin/physics/test_link_budget)",
    ),
    ("rx.detector_efficiency", "[QNET22] from [Liao17]: 0.5 (Si APDs)"),
    (
        "rx.field_of_view_full_angle_rad",
        "assumption: 20 urad (4.1 arcsec), about twice the zenith seeing at 850 nm of the HV 5/7 "
        "profile from 960 m (8.9 urad FWHM), the usual trade between background rejection and "
        "coupling; not given in [Liao17]. Without a field stop the model's loss rises 2-3 dB "
        "too slowly towards 20 deg elevation (see tests/twin/physics/test_link_budget.py)",
    ),
    ("platform_altitude_m", "[Liao17]: Micius orbit ~500 km, sun-synchronous"),
    (
        "ground_altitude_m",
        "Xinglong Observatory, NAOC: 960 m above sea level (the brief's ~900 m)",
    ),
    ("default_range_m", "[Liao17]: ranges 645-1200 km; 1000 km mid-pass"),
    ("repetition_rate_hz", "[Liao17], [QNET22]: 100 MHz"),
    ("mu_signal", "[Liao17], [QNET22]: signal 0.8"),
    ("decoys", "[Liao17], [QNET22]: decoy 0.1, vacuum 0"),
    ("signal_probability", "[QNET22]: signal/decoy/vacuum sent with probabilities 0.5/0.25/0.25"),
    (
        "dark_count_rate_hz",
        "assumption: 25 cps per Si APD (typical of the silicon SPADs used at 850 nm)",
    ),
    (
        "background_count_rate_hz",
        "assumption: 300 cps of night-sky and stray background over the 4 detectors",
    ),
    ("gate_width_s", "assumption: 2 ns timing window"),
    (
        "misalignment_error",
        "assumption: 0.01, the polarisation-contrast error of a well compensated free-space "
        "BB84 decoder (the reported QBER is ~1-2 %, [Liao17])",
    ),
    ("f_ec", "assumption: 1.16 (Ma et al. 2005 GYS value)"),
    (
        "zenith_transmittance",
        "None: clear-air model of twin.physics.atmosphere (Rayleigh + aerosol) at 850 nm from "
        "960 m, with the default 23 km visibility (assumption: a clear night)",
    ),
    (
        "hv_ground_cn2_m_minus_2_3",
        "Hufnagel-Valley 5/7 (assumption; no Xinglong Cn2 profile in [Liao17])",
    ),
)

MICIUS_2017 = LinkPreset(
    name="micius-2017",
    description=(
        "Micius -> Xinglong decoy-state BB84 downlink, 850 nm, 0.3 m -> 1.0 m (Liao et al., "
        "Nature 549, 43, 2017)"
    ),
    kind="downlink",
    tx=Terminal(
        aperture_diameter_m=0.30,
        wavelength_m=850 * NM,
        divergence_half_angle_rad=10 * URAD,
        optical_efficiency=0.6,
        pointing_jitter_rms_rad=0.5 * URAD,
    ),
    rx=Terminal(
        aperture_diameter_m=1.0,
        wavelength_m=850 * NM,
        obscuration_diameter_m=0.25,
        optical_efficiency=0.2,
        detector_efficiency=0.5,
        field_of_view_full_angle_rad=20 * URAD,
    ),
    platform_altitude_m=500 * KM,
    ground_altitude_m=960.0,
    default_range_m=1000 * KM,
    repetition_rate_hz=100 * MHZ,
    mu_signal=0.8,
    decoys=(0.1, 0.0),
    signal_probability=0.5,
    dark_count_rate_hz=25.0,
    n_detectors=4,
    background_count_rate_hz=300.0,
    gate_width_s=2 * NS,
    misalignment_error=0.01,
    f_ec=1.16,
    sources=_MICIUS_SOURCES,
)


# --------------------------------------------------------------------------------------------
# Other presets (parameters labelled: published where cited, otherwise stated assumptions)
# --------------------------------------------------------------------------------------------

_SNSPD = (
    "rx.detector_efficiency",
    "assumption: 0.85, the system detection efficiency of commercial 1550 nm SNSPDs "
    "(e.g. Marsili et al., Nat. Photon. 7, 210 (2013) report 93 %; fielded systems 80-90 %)",
)

STARLINK_LIKE_550KM_1550 = LinkPreset(
    name="starlink-like-550km-1550",
    description=(
        "LEO 550 km downlink at 1550 nm, 0.15 m terminal -> 1 m OGS with adaptive optics and "
        "single-mode coupling (a Starlink-shell-like orbit; terminal values are assumptions)"
    ),
    kind="downlink",
    tx=Terminal(
        aperture_diameter_m=0.15,
        wavelength_m=1550 * NM,
        divergence_half_angle_rad=None,
        m2=1.1,
        optical_efficiency=0.7,
        pointing_jitter_rms_rad=1.0 * URAD,
    ),
    rx=Terminal(
        aperture_diameter_m=1.0,
        wavelength_m=1550 * NM,
        obscuration_diameter_m=0.2,
        optical_efficiency=0.6,
        coupling_efficiency=0.5,
        detector_efficiency=0.85,
    ),
    platform_altitude_m=550 * KM,
    ground_altitude_m=100.0,
    default_range_m=800 * KM,
    repetition_rate_hz=500 * MHZ,
    mu_signal=0.5,
    decoys=(0.1, 0.0),
    signal_probability=0.8,
    dark_count_rate_hz=100.0,
    n_detectors=4,
    background_count_rate_hz=1000.0,
    gate_width_s=0.5 * NS,
    misalignment_error=0.01,
    f_ec=1.16,
    sources=(
        (
            "platform_altitude_m",
            "550 km: the first Starlink shell (FCC filing SAT-MOD-20181108-"
            "00083, 1584 satellites, 53 deg); the issue's benchmark shell",
        ),
        (
            "tx.aperture_diameter_m",
            "assumption: 15 cm, the class of small-satellite QKD "
            "terminals (e.g. ESA Eagle-1, SES/Tesat)",
        ),
        (
            "tx.divergence_half_angle_rad",
            "diffraction limited from the aperture, M^2 = 1.1 (assumption)",
        ),
        ("tx.pointing_jitter_rms_rad", "assumption: 1 urad rms per axis"),
        (
            "rx.coupling_efficiency",
            "assumption: 0.5 AO-corrected single-mode fibre coupling, "
            "the level reported for 1-m class OGS with AO (order 0.3-0.6)",
        ),
        ("rx.optical_efficiency", "assumption: 0.6"),
        _SNSPD,
        ("repetition_rate_hz", "assumption: 500 MHz decoy-BB84 source"),
        ("dark_count_rate_hz", "assumption: 100 cps per SNSPD"),
        ("background_count_rate_hz", "assumption: 1 kcps night background in single-mode fibre"),
        ("misalignment_error", "assumption: 1 %"),
    ),
)

GROUND_HAPS_20KM = LinkPreset(
    name="ground-haps-20km",
    description=(
        "ground OGS -> HAPS at 20 km, 1550 nm uplink, 0.2 m -> 0.3 m (HAPS terminal values are "
        "assumptions)"
    ),
    kind="ground-haps",
    tx=Terminal(
        aperture_diameter_m=0.2,
        wavelength_m=1550 * NM,
        divergence_half_angle_rad=20 * URAD,
        optical_efficiency=0.7,
        pointing_jitter_rms_rad=2.0 * URAD,
    ),
    rx=Terminal(
        aperture_diameter_m=0.3,
        wavelength_m=1550 * NM,
        optical_efficiency=0.6,
        coupling_efficiency=0.7,
        detector_efficiency=0.85,
    ),
    platform_altitude_m=20 * KM,
    ground_altitude_m=100.0,
    default_range_m=40 * KM,
    repetition_rate_hz=500 * MHZ,
    mu_signal=0.5,
    decoys=(0.1, 0.0),
    signal_probability=0.8,
    dark_count_rate_hz=100.0,
    background_count_rate_hz=1000.0,
    gate_width_s=0.5 * NS,
    sources=(
        (
            "platform_altitude_m",
            "20 km: the stratospheric HAPS altitude of the main paper "
            "(Sec. III, '~20 km'); Fidler et al., IEEE JSTQE 16(5), 1058 (2010)",
        ),
        (
            "tx.divergence_half_angle_rad",
            "assumption: 20 urad, widened for a platform that moves within its station-keeping box",
        ),
        (
            "tx.pointing_jitter_rms_rad",
            "assumption: 2 urad rms (ground terminal tracking a slow HAPS)",
        ),
        ("rx.aperture_diameter_m", "assumption: 30 cm HAPS telescope"),
        _SNSPD,
    ),
)

HAPS_SPACE_550KM = LinkPreset(
    name="haps-space-550km",
    description=(
        "HAPS at 20 km -> LEO 550 km at 1550 nm, above the weather and most turbulence "
        "(terminal values are assumptions)"
    ),
    kind="haps-space",
    tx=Terminal(
        aperture_diameter_m=0.2,
        wavelength_m=1550 * NM,
        divergence_half_angle_rad=None,
        m2=1.1,
        optical_efficiency=0.7,
        pointing_jitter_rms_rad=1.0 * URAD,
    ),
    rx=Terminal(
        aperture_diameter_m=0.3,
        wavelength_m=1550 * NM,
        optical_efficiency=0.6,
        coupling_efficiency=0.7,
        detector_efficiency=0.85,
    ),
    platform_altitude_m=550 * KM,
    ground_altitude_m=20 * KM,
    default_range_m=800 * KM,
    repetition_rate_hz=500 * MHZ,
    mu_signal=0.5,
    decoys=(0.1, 0.0),
    signal_probability=0.8,
    dark_count_rate_hz=100.0,
    background_count_rate_hz=100.0,
    gate_width_s=0.5 * NS,
    sources=(
        ("ground_altitude_m", "20 km HAPS, as in the main paper (Sec. III)"),
        ("tx.divergence_half_angle_rad", "diffraction limited from a 20 cm aperture, M^2 = 1.1"),
        ("rx.aperture_diameter_m", "assumption: 30 cm satellite telescope"),
        _SNSPD,
    ),
)

ISL_LEO_1550 = LinkPreset(
    name="isl-leo-1550",
    description=(
        "LEO inter-satellite link in vacuum at 1550 nm, 0.135 m terminals (Tesat LCT class), "
        "2000 km"
    ),
    kind="isl",
    tx=Terminal(
        aperture_diameter_m=0.135,
        wavelength_m=1550 * NM,
        divergence_half_angle_rad=None,
        m2=1.1,
        optical_efficiency=0.7,
        pointing_jitter_rms_rad=0.5 * URAD,
    ),
    rx=Terminal(
        aperture_diameter_m=0.135,
        wavelength_m=1550 * NM,
        optical_efficiency=0.6,
        coupling_efficiency=0.7,
        detector_efficiency=0.85,
    ),
    platform_altitude_m=550 * KM,
    ground_altitude_m=0.0,
    default_range_m=2000 * KM,
    repetition_rate_hz=500 * MHZ,
    mu_signal=0.5,
    decoys=(0.1, 0.0),
    signal_probability=0.8,
    dark_count_rate_hz=100.0,
    background_count_rate_hz=0.0,
    gate_width_s=0.5 * NS,
    sources=(
        (
            "tx.aperture_diameter_m",
            "135 mm telescope of the Tesat laser communication terminal "
            "flown on Sentinel-1/2 and EDRS (Heine et al., Proc. SPIE 8971, 2014)",
        ),
        ("tx.pointing_jitter_rms_rad", "assumption: 0.5 urad rms per axis"),
        ("default_range_m", "assumption: 2000 km, a cross-plane ISL of a 550 km shell"),
        _SNSPD,
    ),
)

PRESETS: dict[str, LinkPreset] = {
    p.name: p
    for p in (
        MICIUS_2017,
        STARLINK_LIKE_550KM_1550,
        GROUND_HAPS_20KM,
        HAPS_SPACE_550KM,
        ISL_LEO_1550,
    )
}


def preset_names() -> list[str]:
    """Names of the presets, sorted."""
    return sorted(PRESETS)


def get_preset(name: str) -> LinkPreset:
    """The preset called ``name``; a ValueError lists the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown link preset {name!r}; known presets: {', '.join(preset_names())}"
        ) from None
