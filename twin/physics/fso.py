"""Free-space optical channel: Gaussian-beam diffraction, aperture capture, pointing loss.

This module holds the geometric and pointing parts of the main paper's eq. (1),

    eta = eta_geo * eta_atm * eta_turb * eta_point,

and :func:`fso_channel`, which composes all four factors (the atmospheric and turbulence
factors come from :mod:`twin.physics.atmosphere` and :mod:`twin.physics.turbulence`) for the
link kinds of the twin: ``"downlink"``, ``"uplink"``, ``"ground-haps"``, ``"haps-ground"``,
``"haps-space"``, ``"space-haps"`` and ``"isl"`` (vacuum: no atmosphere, no turbulence).

Conventions (used everywhere below):

- ``beam_radius_m`` is the 1/e^2 *intensity* radius w of a TEM00 Gaussian beam.
- ``divergence_half_angle_rad`` is the far-field 1/e^2 half-angle theta, so w(L) ~ theta * L.
- ``pointing_jitter_rms_rad`` is the rms of the pointing error *per axis* (sigma_theta); the
  radial error is then Rayleigh distributed.

All functions are pure and broadcast over numpy arrays; scalars in give 0-d arrays out.

Sources
-------
- Gaussian beams: Siegman, *Lasers* (University Science Books, 1986), ch. 17, eqs. 17.5-17.9;
  Saleh & Teich, *Fundamentals of Photonics* 2nd ed. (2007), eqs. 3.1-8 to 3.1-12.
- Power of a Gaussian beam through a circular aperture: Siegman (1986) eq. 17.1-12 /
  Saleh & Teich eq. 3.1-18: P(a)/P = 1 - exp(-2 a^2 / w^2).
- Mean pointing efficiency for Rayleigh-distributed radial pointing error: Farid & Hranilovic,
  "Outage capacity optimization for free-space optical links with pointing errors",
  J. Lightwave Technol. 25(7), 1702-1710 (2007), eq. (11) with gamma = w / (2 sigma_s):
  E[h_p] = A0 gamma^2 / (1 + gamma^2).
- Diffraction-limited divergence of a Gaussian beam theta = M^2 lambda / (pi w0): Siegman (1986)
  eq. 17.5-22 and ISO 11146-1:2005 (beam propagation ratio M^2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LINK_KINDS",
    "FsoChannel",
    "Terminal",
    "beam_radius_at_range_m",
    "beam_radius_from_divergence_m",
    "diffraction_limited_divergence_rad",
    "field_of_view_efficiency",
    "fso_channel",
    "gaussian_waist_from_aperture_m",
    "geometric_efficiency",
    "pointing_efficiency_mean",
    "rayleigh_range_m",
    "static_misalignment_efficiency",
]

#: Link kinds understood by :func:`fso_channel`: (transmitter side, receiver side).
#: "ground" sits at the bottom of the atmosphere, "haps" in the stratosphere (above the
#: weather and most of the turbulence, but not above all of the air), "space" above it all.
LINK_KINDS: dict[str, tuple[str, str]] = {
    "downlink": ("space", "ground"),
    "uplink": ("ground", "space"),
    "ground-haps": ("ground", "haps"),
    "haps-ground": ("haps", "ground"),
    "haps-space": ("haps", "space"),
    "space-haps": ("space", "haps"),
    "isl": ("space", "space"),
}


def _as_float(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _check_positive(name: str, value: np.ndarray, *, allow_zero: bool = False) -> None:
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    bad = value < 0 if allow_zero else value <= 0
    if np.any(bad):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be {kind} (SI units), got {value[bad].ravel()[0]}")


# ---------------------------------------------------------------------------------------------
# Gaussian-beam propagation
# ---------------------------------------------------------------------------------------------


def diffraction_limited_divergence_rad(waist_radius_m, wavelength_m, m2=1.0) -> np.ndarray:
    """Far-field 1/e^2 half-angle divergence theta = M^2 lambda / (pi w0), in rad.

    Siegman (1986) eq. 17.5-22; M^2 >= 1 is the beam propagation ratio (ISO 11146-1).

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    w0 = _as_float(waist_radius_m)
    lam = _as_float(wavelength_m)
    m2 = _as_float(m2)
    _check_positive("waist_radius_m", w0)
    _check_positive("wavelength_m", lam)
    if np.any(m2 < 1.0):
        raise ValueError(f"m2 (beam quality M^2) must be >= 1, got {np.min(m2)}")
    return m2 * lam / (np.pi * w0)


def rayleigh_range_m(waist_radius_m, wavelength_m, m2=1.0) -> np.ndarray:
    """Rayleigh range z_R = pi w0^2 / (M^2 lambda), in m (Siegman 1986 eq. 17.5-8).

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    w0 = _as_float(waist_radius_m)
    lam = _as_float(wavelength_m)
    _check_positive("waist_radius_m", w0)
    _check_positive("wavelength_m", lam)
    return np.pi * w0**2 / (_as_float(m2) * lam)


def beam_radius_at_range_m(range_m, waist_radius_m, wavelength_m, m2=1.0) -> np.ndarray:
    """1/e^2 beam radius w(z) = w0 sqrt(1 + (z/z_R)^2) at distance z from the waist, in m.

    Siegman (1986) eq. 17.5-7 (embedded Gaussian with M^2, eq. 17.5-26); Saleh & Teich eq. 3.1-8.

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    z = _as_float(range_m)
    _check_positive("range_m", z, allow_zero=True)
    z_r = rayleigh_range_m(waist_radius_m, wavelength_m, m2)
    return _as_float(waist_radius_m) * np.sqrt(1.0 + (z / z_r) ** 2)


def beam_radius_from_divergence_m(
    range_m, divergence_half_angle_rad, waist_radius_m=0.0
) -> np.ndarray:
    """1/e^2 beam radius sqrt(w0^2 + (theta z)^2) for a beam of given far-field divergence, in m.

    This is the same hyperbola as :func:`beam_radius_at_range_m` written with the measured
    divergence theta instead of M^2 (Siegman 1986 eq. 17.5-26): terminals usually quote the
    divergence (often deliberately widened beyond the diffraction limit to ease pointing), not
    M^2. With ``waist_radius_m=0`` it is the far-field cone w = theta z.

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    z = _as_float(range_m)
    theta = _as_float(divergence_half_angle_rad)
    w0 = _as_float(waist_radius_m)
    _check_positive("range_m", z, allow_zero=True)
    _check_positive("divergence_half_angle_rad", theta)
    _check_positive("waist_radius_m", w0, allow_zero=True)
    if np.any(theta > 0.1):
        raise ValueError(
            "divergence_half_angle_rad must be a small angle in radians, got "
            f"{np.max(theta)} (microradians or degrees passed?)"
        )
    return _beam_radius_m(z, theta, w0)


def _beam_radius_m(z, theta, w0):
    # unchecked core of beam_radius_from_divergence_m (callers validated the arguments)
    return np.sqrt(w0**2 + (theta * z) ** 2)


def gaussian_waist_from_aperture_m(aperture_diameter_m, aperture_to_waist_ratio=1.0) -> np.ndarray:
    """Waist radius w0 of the beam leaving a transmit aperture of diameter D, in m.

    w0 = (D / 2) / ratio. ``aperture_to_waist_ratio = 1`` fills the aperture to its 1/e^2 radius
    (13.5 % truncation, the usual link-budget convention); 1.12 maximises the far-field on-axis
    intensity of a truncated Gaussian (Klein & Degnan, Appl. Opt. 13(9), 2134 (1974)).

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    d = _as_float(aperture_diameter_m)
    ratio = _as_float(aperture_to_waist_ratio)
    _check_positive("aperture_diameter_m", d)
    _check_positive("aperture_to_waist_ratio", ratio)
    return 0.5 * d / ratio


# ---------------------------------------------------------------------------------------------
# Capture and pointing
# ---------------------------------------------------------------------------------------------


def geometric_efficiency(
    beam_radius_m, rx_aperture_diameter_m, obscuration_diameter_m=0.0
) -> np.ndarray:
    """Fraction of a centred Gaussian beam collected by a circular (annular) aperture.

    eta_geo = exp(-2 b^2 / w^2) - exp(-2 a^2 / w^2), with a = D/2 the aperture radius and b the
    radius of a central obscuration (Cassegrain secondary; b = 0 for a clear aperture, which gives
    1 - exp(-2 a^2 / w^2)). Saleh & Teich (2007) eq. 3.1-18 integrated over an annulus.

    Shapes: all arguments broadcast; returns their broadcast shape, values in [0, 1].
    """
    w = _as_float(beam_radius_m)
    d = _as_float(rx_aperture_diameter_m)
    d_obs = _as_float(obscuration_diameter_m)
    _check_positive("beam_radius_m", w)
    _check_positive("rx_aperture_diameter_m", d)
    _check_positive("obscuration_diameter_m", d_obs, allow_zero=True)
    if np.any(d_obs >= d):
        raise ValueError(
            "obscuration_diameter_m must be smaller than rx_aperture_diameter_m, got "
            f"{np.max(d_obs)} >= {np.min(d)}"
        )
    return _geometric_efficiency(w, d, d_obs)


def _geometric_efficiency(w, d, d_obs):
    # unchecked core of geometric_efficiency (callers validated the arguments)
    a2 = (0.5 * d) ** 2
    b2 = (0.5 * d_obs) ** 2
    # -expm1 keeps precision when the beam is much wider than the aperture (eta ~ 2a^2/w^2).
    return -np.expm1(-2.0 * a2 / w**2) + np.expm1(-2.0 * b2 / w**2)


def pointing_efficiency_mean(beam_radius_m, pointing_jitter_rms_rad, range_m) -> np.ndarray:
    """Mean pointing efficiency <eta_point> = w^2 / (w^2 + 4 sigma_theta^2 L^2) (dimensionless).

    The radial pointing offset r = L * theta_err is Rayleigh distributed with per-axis rms
    sigma_s = sigma_theta L; averaging the Gaussian footprint exp(-2 r^2 / w^2) over it gives
    w^2 / (w^2 + 4 sigma_s^2). Farid & Hranilovic, J. Lightwave Technol. 25(7), 1702 (2007),
    eq. (11): E[h_p] = A0 gamma^2 / (1 + gamma^2), gamma = w / (2 sigma_s) (with w their
    equivalent beam width w_zeq; for apertures much smaller than w, w_zeq -> w).

    Shapes: all arguments broadcast; returns their broadcast shape, values in (0, 1].
    """
    w = _as_float(beam_radius_m)
    sigma = _as_float(pointing_jitter_rms_rad)
    length = _as_float(range_m)
    _check_positive("beam_radius_m", w)
    _check_positive("pointing_jitter_rms_rad", sigma, allow_zero=True)
    _check_positive("range_m", length, allow_zero=True)
    if np.any(sigma > 0.1):
        raise ValueError(
            "pointing_jitter_rms_rad must be a small angle in radians, got "
            f"{np.max(sigma)} (microradians passed?)"
        )
    return _pointing_efficiency_mean(w, sigma, length)


def _pointing_efficiency_mean(w, sigma, length):
    # unchecked core of pointing_efficiency_mean (callers validated the arguments)
    s2 = (sigma * length) ** 2
    return w**2 / (w**2 + 4.0 * s2)


def static_misalignment_efficiency(beam_radius_m, pointing_offset_rad, range_m) -> np.ndarray:
    """Efficiency of a fixed (bias) pointing offset: exp(-2 (theta_off L)^2 / w^2).

    The received intensity of a Gaussian footprint displaced by r = theta_off L from the aperture
    centre, relative to on-axis (valid for apertures small against w). Saleh & Teich eq. 3.1-7.

    Shapes: all arguments broadcast; returns their broadcast shape, values in (0, 1].
    """
    w = _as_float(beam_radius_m)
    theta = _as_float(pointing_offset_rad)
    length = _as_float(range_m)
    _check_positive("beam_radius_m", w)
    _check_positive("range_m", length, allow_zero=True)
    if np.any(np.abs(theta) > 0.1):
        raise ValueError(
            "pointing_offset_rad must be a small angle in radians, got "
            f"{np.max(np.abs(theta))} (microradians passed?)"
        )
    return _static_misalignment_efficiency(w, theta, length)


def _static_misalignment_efficiency(w, theta, length):
    # unchecked core of static_misalignment_efficiency (callers validated the arguments)
    return np.exp(-2.0 * (theta * length) ** 2 / w**2)


def field_of_view_efficiency(
    fov_full_angle_rad, fried_parameter_m, wavelength_m, aperture_diameter_m
) -> np.ndarray:
    """Fraction of the long-exposure image of a point source inside a circular field stop.

    Turbulence spreads the image of the satellite over the seeing disk, FWHM 0.98 lambda / r0
    (Fried 1966, JOSA 56, 1372; the seeing of ``turbulence.seeing_arcsec``), added in quadrature
    to the diffraction core, FWHM 1.03 lambda / D (Airy pattern). A receiver that limits its
    field of view (field stop, small detector, multimode fibre) to the full angle ``fov`` keeps
    1 - exp(-2 (fov/2)^2 / w^2) of it, with w = FWHM / sqrt(2 ln 2) the 1/e^2 radius of the
    Gaussian approximation of the long-exposure image. This is the turbulence loss that grows at
    low elevation on a downlink (r0 ~ cos(zenith)^(3/5)); the Gaussian core underestimates the
    Kolmogorov image's wings, so the loss is a lower bound for small fields of view.

    Shapes: all arguments broadcast; returns their broadcast shape, values in (0, 1].
    ``fried_parameter_m = inf`` (no turbulence) leaves the diffraction core alone.
    """
    fov = _as_float(fov_full_angle_rad)
    r0 = _as_float(fried_parameter_m)
    lam = _as_float(wavelength_m)
    d = _as_float(aperture_diameter_m)
    _check_positive("wavelength_m", lam)
    _check_positive("aperture_diameter_m", d)
    if np.any(fov <= 0) or np.any(fov > 0.1):
        raise ValueError(
            "fov_full_angle_rad must be a small positive angle in radians, got "
            f"{np.max(fov)} (microradians or degrees passed?)"
        )
    if np.any(~(r0 > 0)):
        raise ValueError(f"fried_parameter_m must be > 0 (metres; inf: no turbulence), got {r0}")
    fwhm2 = (0.98 * lam / r0) ** 2 + (1.03 * lam / d) ** 2
    w2 = fwhm2 / (2.0 * np.log(2.0))
    return -np.expm1(-2.0 * (0.5 * fov) ** 2 / w2)


# ---------------------------------------------------------------------------------------------
# Terminals and the composed channel (eq. 1)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terminal:
    """An optical terminal (telescope + optics + detector), as a transmitter or a receiver.

    Equipment parameters are scenario settings (see presets), never constants.
    """

    aperture_diameter_m: float
    """clear aperture diameter of the telescope (m)"""
    wavelength_m: float
    """operating wavelength (m)"""
    divergence_half_angle_rad: float | None = None
    """far-field 1/e^2 half-angle of the transmitted beam (rad); None: diffraction limited from
    the aperture (w0 = D/2, M^2 below)"""
    m2: float = 1.0
    """beam propagation ratio M^2 used when the divergence is diffraction limited"""
    obscuration_diameter_m: float = 0.0
    """diameter of the central obscuration (Cassegrain secondary) when receiving (m)"""
    optical_efficiency: float = 1.0
    """transmission of the terminal's own optics (mirrors, relay, filters, analyser), 0..1"""
    coupling_efficiency: float = 1.0
    """fixed coupling efficiency into the detector / fibre (AO-corrected SMF coupling, field
    stop), 0..1; turbulence-dependent coupling is in the turbulence term"""
    detector_efficiency: float = 1.0
    """single-photon detection efficiency, 0..1 (receiver only)"""
    field_of_view_full_angle_rad: float | None = None
    """full angle of the receiver's field stop (rad); None: no field stop. Turbulence spreads
    the image over the seeing disk, and what falls outside is lost (see
    :func:`field_of_view_efficiency`)"""
    pointing_jitter_rms_rad: float = 0.0
    """rms pointing jitter per axis of this terminal when transmitting (rad)"""
    pointing_bias_rad: float = 0.0
    """static pointing offset when transmitting (rad)"""

    def __post_init__(self) -> None:
        if not (0 < self.aperture_diameter_m < np.inf):
            raise ValueError(
                f"aperture_diameter_m must be finite and > 0 (metres), got "
                f"{self.aperture_diameter_m}"
            )
        if not (1e-7 < self.wavelength_m < 1e-4):
            raise ValueError(
                f"wavelength_m must be an optical wavelength in metres, got {self.wavelength_m} "
                "(nanometres passed? use 850e-9)"
            )
        if self.divergence_half_angle_rad is not None and not (
            0 < self.divergence_half_angle_rad < 0.1
        ):
            raise ValueError(
                "divergence_half_angle_rad must be a small positive angle in radians, got "
                f"{self.divergence_half_angle_rad} (microradians passed? use 10e-6)"
            )
        for name in ("optical_efficiency", "coupling_efficiency", "detector_efficiency"):
            value = getattr(self, name)
            if not (0 < value <= 1):
                raise ValueError(f"{name} must be in (0, 1], got {value} (percent passed?)")
        if not (0 <= self.obscuration_diameter_m < self.aperture_diameter_m):
            raise ValueError(
                "obscuration_diameter_m must be in [0, aperture_diameter_m), got "
                f"{self.obscuration_diameter_m}"
            )
        if self.field_of_view_full_angle_rad is not None and not (
            0 < self.field_of_view_full_angle_rad < 0.1
        ):
            raise ValueError(
                "field_of_view_full_angle_rad must be a small positive angle in radians, got "
                f"{self.field_of_view_full_angle_rad} (microradians passed? use 20e-6)"
            )
        if not (self.m2 >= 1.0):
            raise ValueError(f"m2 (beam quality M^2) must be >= 1, got {self.m2}")
        if not (abs(self.pointing_bias_rad) < 0.1):
            raise ValueError(
                "pointing_bias_rad must be a small angle in radians, got "
                f"{self.pointing_bias_rad} (microradians passed? use 1e-6)"
            )
        if not (0 <= self.pointing_jitter_rms_rad < 0.1):
            raise ValueError(
                "pointing_jitter_rms_rad must be a small angle in radians, got "
                f"{self.pointing_jitter_rms_rad} (microradians passed? use 1e-6)"
            )

    @property
    def waist_radius_m(self) -> float:
        """Waist radius of the transmitted beam: the aperture filled to 1/e^2 (w0 = D/2)."""
        return 0.5 * self.aperture_diameter_m

    @property
    def tx_divergence_half_angle_rad(self) -> float:
        """Far-field 1/e^2 half-angle of the beam this terminal transmits (rad)."""
        if self.divergence_half_angle_rad is not None:
            return self.divergence_half_angle_rad
        return float(
            diffraction_limited_divergence_rad(self.waist_radius_m, self.wavelength_m, self.m2)
        )


class _FixedTerminals:
    """:func:`fso_channel` between two fixed terminals, validated once, for many ranges.

    The equipment of a link type does not change during a run, so its checks (the terminals,
    the link kind, the divergence) are made here once, by one :func:`fso_channel` call, and
    :meth:`vacuum` computes the channel of an ``"isl"`` (no atmosphere, no turbulence) with the
    same operations on the same values as :func:`fso_channel`, so bit for bit the same
    ``total`` and ``transmittance``, without the per-call argument checks.
    """

    def __init__(self, kind: str, tx: Terminal, rx: Terminal) -> None:
        fso_channel(kind, tx, rx, 1.0)  # raises as fso_channel does for these terminals
        self.kind = kind
        self._theta = _as_float(tx.tx_divergence_half_angle_rad)
        self._w0 = _as_float(tx.waist_radius_m)
        self._d = _as_float(rx.aperture_diameter_m)
        self._d_obs = _as_float(rx.obscuration_diameter_m)
        self._sigma = _as_float(tx.pointing_jitter_rms_rad)
        self._bias = _as_float(tx.pointing_bias_rad)
        self._transmitter = _as_float(tx.optical_efficiency)
        self._receiver_optics = _as_float(rx.optical_efficiency * rx.coupling_efficiency)
        self._detector = _as_float(rx.detector_efficiency)

    def vacuum(self, range_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(total, transmittance)`` of ``fso_channel(kind, tx, rx, range_m)`` with both
        efficiency arguments 1 (vacuum). ``range_m`` (K,) float, finite and > 0: the caller
        checks it (unchecked here)."""
        w = _beam_radius_m(range_m, self._theta, self._w0)
        eta_geo = _geometric_efficiency(w, self._d, self._d_obs)
        eta_point = _pointing_efficiency_mean(w, self._sigma, range_m)
        eta_point = eta_point * _static_misalignment_efficiency(w, self._bias, range_m)
        # FsoChannel.transmittance and .total, their unit factors (vacuum) dropped: x * 1.0 == x
        transmittance = eta_geo * eta_point
        total = self._transmitter * transmittance * self._receiver_optics * self._detector
        return total, transmittance


@dataclass(frozen=True)
class FsoChannel:
    """The factors of eq. (1) for one link, each an array of the broadcast input shape.

    ``transmittance`` = geometric * atmospheric * turbulence * pointing (channel only);
    ``receiver`` = rx optics * coupling * detector; ``transmitter`` = tx optics. The end-to-end
    efficiency a QKD rate needs is :attr:`total`.
    """

    kind: str
    beam_radius_m: np.ndarray = field(repr=False)
    geometric: np.ndarray
    atmospheric: np.ndarray
    turbulence: np.ndarray
    pointing: np.ndarray
    transmitter: np.ndarray
    receiver_optics: np.ndarray
    detector: np.ndarray

    @property
    def transmittance(self) -> np.ndarray:
        """Channel transmittance eta = eta_geo eta_atm eta_turb eta_point (main paper eq. 1)."""
        return self.geometric * self.atmospheric * self.turbulence * self.pointing

    @property
    def total(self) -> np.ndarray:
        """End-to-end efficiency: transmitter optics x channel x receiver optics x detector."""
        return self.transmitter * self.transmittance * self.receiver_optics * self.detector


def fso_channel(
    kind: str,
    tx: Terminal,
    rx: Terminal,
    range_m,
    *,
    atmospheric_transmittance=1.0,
    turbulence_efficiency=1.0,
) -> FsoChannel:
    """Eq. (1) factors for a link of ``kind`` between terminals ``tx`` and ``rx``.

    Geometry and pointing are computed here: the beam leaves ``tx`` with its waist w0 = D/2 and
    far-field divergence (given, or diffraction limited), w(L) from
    :func:`beam_radius_from_divergence_m`, captured by ``rx``'s (obscured) aperture
    (:func:`geometric_efficiency`), with the mean jitter loss (:func:`pointing_efficiency_mean`)
    and the static bias loss (:func:`static_misalignment_efficiency`) of the transmitter.

    The atmosphere and turbulence terms depend on the path through the air and are computed by
    the caller (``link_budget`` does, from :mod:`twin.physics.atmosphere` and
    :mod:`twin.physics.turbulence`) and passed in; for ``"isl"`` (vacuum) they must be 1.

    Shapes: ``range_m`` and the two efficiency arguments broadcast; every field of the result has
    the broadcast shape.
    """
    if kind not in LINK_KINDS:
        raise ValueError(f"kind must be one of {sorted(LINK_KINDS)}, got {kind!r}")
    length = _as_float(range_m)
    _check_positive("range_m", length)
    eta_atm = _as_float(atmospheric_transmittance)
    eta_turb = _as_float(turbulence_efficiency)
    for name, value in (
        ("atmospheric_transmittance", eta_atm),
        ("turbulence_efficiency", eta_turb),
    ):
        if np.any((value < 0) | (value > 1)):
            raise ValueError(f"{name} must be within [0, 1], got {value}")
    if kind == "isl" and (np.any(eta_atm != 1.0) or np.any(eta_turb != 1.0)):
        raise ValueError(
            "an 'isl' link is in vacuum: atmospheric_transmittance and turbulence_efficiency "
            "must be 1"
        )
    if abs(tx.wavelength_m - rx.wavelength_m) > 1e-3 * tx.wavelength_m:
        raise ValueError(
            f"tx and rx wavelengths differ ({tx.wavelength_m} vs {rx.wavelength_m} m): "
            "one link has one wavelength"
        )
    w = beam_radius_from_divergence_m(length, tx.tx_divergence_half_angle_rad, tx.waist_radius_m)
    eta_geo = geometric_efficiency(w, rx.aperture_diameter_m, rx.obscuration_diameter_m)
    eta_point = pointing_efficiency_mean(w, tx.pointing_jitter_rms_rad, length)
    eta_point = eta_point * static_misalignment_efficiency(w, tx.pointing_bias_rad, length)
    shape = np.broadcast_shapes(length.shape, eta_atm.shape, eta_turb.shape)

    def full(x) -> np.ndarray:
        return np.broadcast_to(_as_float(x), shape).copy()

    return FsoChannel(
        kind=kind,
        beam_radius_m=full(w),
        geometric=full(eta_geo),
        atmospheric=full(eta_atm),
        turbulence=full(eta_turb),
        pointing=full(eta_point),
        transmitter=full(tx.optical_efficiency),
        receiver_optics=full(rx.optical_efficiency * rx.coupling_efficiency),
        detector=full(rx.detector_efficiency),
    )
