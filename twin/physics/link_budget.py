"""The composed optical QKD link budget: eq. (1) in dB, then QBER and secret key rate.

    total transmittance = eta_tx * eta_geo * eta_atm * eta_turb * eta_point * eta_rx

with eta_geo (diffraction + capture) and eta_point from :mod:`twin.physics.fso`, eta_atm (clear
air extinction along the slant path, plus weather) from :mod:`twin.physics.atmosphere`,
eta_turb the *mean* turbulence loss from :mod:`twin.physics.turbulence` (uplink beam
spreading and wander; on a downlink the received power is not spread -- the Gamma-Gamma
irradiance has unit mean -- but the seeing disk may overfill the receiver's field stop),
and eta_rx = receiver optics x coupling x detector efficiency. The Gamma-Gamma fade margin
at the preset's outage probability is reported beside the budget, not inside the mean
transmittance. The total feeds decoy-state BB84 (:mod:`twin.physics.qkd`, Ma et al. 2005)
at the source's repetition rate.

Geometry: for links with an atmospheric end the elevation follows from the slant range and the
two altitudes on a spherical Earth (:func:`twin.physics.geometry.elevation_from_slant_range_rad`)
or the range from a given elevation (:func:`twin.physics.geometry.slant_range_from_elevation_m`).

Every field of :class:`LinkBudget` is an array of the shape of ``range_m`` (or of
``elevation_rad``); ``to_json_dict()`` turns them into floats or lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from twin.physics import atmosphere, geometry, qkd, turbulence
from twin.physics.fso import (
    LINK_KINDS,
    Terminal,
    beam_radius_at_range_m,
    field_of_view_efficiency,
    fso_channel,
    geometric_efficiency,
)
from twin.physics.presets import LinkPreset, get_preset
from twin.units import linear_to_db

__all__ = [
    "LinkBudget",
    "compute_link_budget",
    "link_from_params",
    "qkd_terms",
]

# Receiver at the lower end: turbulence acts like on a downlink (plane wave at the receiver).
_DOWNWARD_KINDS = {"downlink", "haps-ground", "space-haps"}


@dataclass(frozen=True)
class LinkBudget:
    """Loss breakdown (positive dB = loss), transmittance, QBER and key rate of one link.

    Array fields share the shape of the range (or elevation) the budget was computed for.
    """

    preset: str
    link_kind: str
    wavelength_m: float
    range_m: np.ndarray
    elevation_rad: np.ndarray
    """elevation of the upper end seen from the lower end; NaN for an inter-satellite link"""
    beam_radius_m: np.ndarray
    """1/e^2 radius of the (diffraction) beam at the receiver"""
    geometric_loss_db: np.ndarray
    """diffraction + aperture capture (obscured aperture)"""
    atmospheric_loss_db: np.ndarray
    """clear-air extinction along the slant path plus weather"""
    turbulence_loss_db: np.ndarray
    """mean turbulence loss: uplink beam spreading and wander; on downward links the seeing
    disk overfilling the receiver's field stop (0 dB without a field stop)"""
    pointing_loss_db: np.ndarray
    """mean jitter loss plus static bias loss of the transmitter"""
    transmitter_loss_db: np.ndarray
    """transmitter optics"""
    receiver_loss_db: np.ndarray
    """receiver optics + coupling + detector efficiency"""
    detector_loss_db: np.ndarray
    """the detector-efficiency part of ``receiver_loss_db``"""
    total_loss_db: np.ndarray
    """sum of the six loss terms above (fade margin excluded)"""
    transmittance: np.ndarray
    """10^(-total_loss_db/10): end-to-end, detector included (Ma et al.'s eta)"""
    channel_transmittance: np.ndarray
    """eq. (1) eta = eta_geo eta_atm eta_turb eta_point (no terminal optics, no detector)"""
    fade_margin_db: np.ndarray
    """Gamma-Gamma fade depth exceeded with probability ``outage_probability``"""
    outage_probability: float
    rytov_variance: np.ndarray
    """Rytov variance of the path (plane wave for downward links, spherical for upward)"""
    fried_parameter_m: np.ndarray
    """Fried parameter r0 of the path at the link wavelength"""
    noise_click_prob: np.ndarray
    """Y0: probability per gate of a dark or background click"""
    qber: np.ndarray
    """QBER of the signal state (Ma et al. 2005 eq. (5))"""
    sifted_key_rate_bps: np.ndarray
    """sifted key rate from the signal states"""
    skr_bps: np.ndarray
    """asymptotic secret key rate (bit/s) of decoy-state BB84 at the repetition rate"""
    repetition_rate_hz: float

    def to_json_dict(self) -> dict:
        """JSON-ready dict of every field: arrays as (nested) lists, 0-d arrays as floats.

        Non-finite values (NaN elevation of an inter-satellite link, infinite r0 of a vacuum
        path, a skipped fade margin) become ``None``, so the result passes
        ``json.dumps(..., allow_nan=False)``.
        """
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray | float):
                arr = np.asarray(value, dtype=float)
                clean = np.where(np.isfinite(arr), arr, None).astype(object)
                value = clean.tolist() if arr.ndim else (None if clean[()] is None else float(arr))
            out[f.name] = value
        return out


def link_from_params(
    *,
    kind: str,
    wavelength_m: float,
    tx_aperture_diameter_m: float,
    rx_aperture_diameter_m: float,
    platform_altitude_m: float,
    ground_altitude_m: float = 0.0,
    base: str | LinkPreset | None = None,
    name: str = "custom",
    **overrides,
) -> LinkPreset:
    """Build a :class:`LinkPreset` from flat parameters (what a CLI collects).

    ``base`` (a preset or its name) supplies every setting not given; ``overrides`` may name
    any ``LinkPreset`` field or a terminal field prefixed ``tx_`` / ``rx_`` (e.g.
    ``tx_divergence_half_angle_rad``, ``rx_detector_efficiency``).
    """
    start = get_preset(base) if isinstance(base, str) else base
    terminal_fields = {f.name for f in dataclasses.fields(Terminal)}
    tx_kw = {k[3:]: v for k, v in overrides.items() if k.startswith("tx_")}
    rx_kw = {k[3:]: v for k, v in overrides.items() if k.startswith("rx_")}
    rest = {k: v for k, v in overrides.items() if not k.startswith(("tx_", "rx_"))}
    unknown = sorted((set(tx_kw) | set(rx_kw)) - terminal_fields)
    if unknown:
        raise ValueError(
            f"unknown terminal parameters {unknown} (after the tx_/rx_ prefix); known: "
            f"{sorted(terminal_fields)}"
        )
    preset_fields = {f.name for f in dataclasses.fields(LinkPreset)}
    bad = sorted(set(rest) - preset_fields)
    if bad:
        raise ValueError(f"unknown link parameters {bad}; known: {sorted(preset_fields)}")
    if start is None:
        tx = Terminal(tx_aperture_diameter_m, wavelength_m, **tx_kw)
        rx = Terminal(rx_aperture_diameter_m, wavelength_m, **rx_kw)
        return LinkPreset(
            name=name,
            description=f"custom {kind} link",
            kind=kind,
            tx=tx,
            rx=rx,
            platform_altitude_m=platform_altitude_m,
            ground_altitude_m=ground_altitude_m,
            **rest,
        )
    tx = dataclasses.replace(
        start.tx, aperture_diameter_m=tx_aperture_diameter_m, wavelength_m=wavelength_m, **tx_kw
    )
    rx = dataclasses.replace(
        start.rx, aperture_diameter_m=rx_aperture_diameter_m, wavelength_m=wavelength_m, **rx_kw
    )
    return dataclasses.replace(
        start,
        name=name,
        description=f"custom {kind} link based on {start.name}",
        kind=kind,
        tx=tx,
        rx=rx,
        platform_altitude_m=platform_altitude_m,
        ground_altitude_m=ground_altitude_m,
        sources=(),
        **rest,
    )


def _resolve(link) -> LinkPreset:
    if isinstance(link, LinkPreset):
        return link
    if isinstance(link, str):
        return get_preset(link)
    if isinstance(link, Mapping):
        return link_from_params(**link)
    raise ValueError(
        f"expected a preset name, a LinkPreset or a mapping of link parameters, got {type(link)}"
    )


def _geometry(link: LinkPreset, range_m, elevation_rad) -> tuple[np.ndarray, np.ndarray]:
    """(range_m, elevation_rad) arrays for the link; NaN elevation for an ISL."""
    if range_m is not None and elevation_rad is not None:
        raise ValueError("give range_m or elevation_rad, not both")
    if link.kind == "isl":
        if elevation_rad is not None:
            raise ValueError("an inter-satellite link has no elevation; give range_m")
        rng = np.asarray(link.default_range_m if range_m is None else range_m, dtype=float)
        if np.any(rng <= 0):
            raise ValueError(f"range_m must be > 0 (metres), got {rng}")
        return rng, np.full(rng.shape, np.nan)
    if elevation_rad is not None:
        el = np.asarray(elevation_rad, dtype=float)
        if np.any((el <= 0) | (el > np.pi / 2 + 1e-12)):
            raise ValueError(
                f"elevation_rad must be within (0, pi/2], got {el} (degrees passed? use "
                "twin.units.DEG)"
            )
        rng = geometry.slant_range_from_elevation_m(
            el, link.platform_altitude_m, site_altitude_m=link.ground_altitude_m
        )
        return np.asarray(rng, dtype=float), el
    rng = np.asarray(link.default_range_m if range_m is None else range_m, dtype=float)
    min_range = link.platform_altitude_m - link.ground_altitude_m
    if np.any(rng < min_range * (1 - 1e-9)):
        raise ValueError(
            f"range_m must be at least the altitude difference {min_range:.0f} m for this "
            f"{link.kind} link, got {np.min(rng)} (km passed? multiply by twin.units.KM)"
        )
    el = geometry.elevation_from_slant_range_rad(
        np.maximum(rng, min_range), link.platform_altitude_m, site_altitude_m=link.ground_altitude_m
    )
    return rng, np.asarray(el, dtype=float)


def _atmospheric_transmittance(link: LinkPreset, zenith_angle_rad: np.ndarray) -> np.ndarray:
    """Clear-air transmittance of the slant path between the two ends of the link.

    The zenith transmittance between the two altitudes is T(lower end -> space) / T(upper end ->
    space) of the clear-air model (Rayleigh + exponential aerosol profile), raised to the air
    mass of the zenith angle (Kasten & Young 1989) by ``atmosphere.slant_path_transmittance``.
    """
    if link.zenith_transmittance is not None:
        t_zenith = np.asarray(link.zenith_transmittance, dtype=float)
    else:
        lam = link.tx.wavelength_m
        t_low = atmosphere.clear_air_zenith_transmittance(
            lam, site_altitude_m=link.ground_altitude_m, visibility_m=link.visibility_m
        )
        t_high = atmosphere.clear_air_zenith_transmittance(
            lam, site_altitude_m=link.platform_altitude_m, visibility_m=link.visibility_m
        )
        t_zenith = np.asarray(t_low, dtype=float) / np.asarray(t_high, dtype=float)
    return np.asarray(atmosphere.slant_path_transmittance(t_zenith, zenith_angle_rad), float)


def _turbulence(link: LinkPreset, range_m: np.ndarray, zenith: np.ndarray):
    """(mean efficiency, Gamma-Gamma alpha, beta, Rytov variance, r0) of the path."""
    lam = link.tx.wavelength_m
    common = dict(
        ground_altitude_m=link.ground_altitude_m,
        platform_altitude_m=link.platform_altitude_m,
        rms_wind_speed_m_per_s=link.hv_rms_wind_speed_m_per_s,
        ground_cn2_m_minus_2_3=link.hv_ground_cn2_m_minus_2_3,
        # the HV boundary layer sits on a ground station, not at sea level; a HAPS at the
        # lower end flies over sea-level-referenced air
        profile_ground_altitude_m=link.ground_altitude_m
        if "ground" in LINK_KINDS[link.kind]
        else 0.0,
    )
    if link.kind in _DOWNWARD_KINDS:
        rytov = turbulence.slant_rytov_variance(
            zenith, lam, direction="downlink", wave="plane", **common
        )
        distance = turbulence.downlink_effective_turbulence_distance_m(zenith, **common)
        distance = np.where(np.isfinite(distance) & (distance > 0), distance, range_m)
        alpha, beta = turbulence.gamma_gamma_alpha_beta_aperture(
            rytov, link.rx.aperture_diameter_m, lam, distance, wave="plane"
        )
        r0 = turbulence.slant_fried_parameter_m(zenith, lam, direction="downlink", **common)
        # The beam is many metres wide at the ground: no turbulence spreading of the received
        # power. What turbulence takes is the part of the seeing-broadened image that misses the
        # receiver's field stop (grows at low elevation as r0 shrinks).
        if link.rx.field_of_view_full_angle_rad is None:
            mean_eff = np.ones(np.shape(rytov))
        else:
            mean_eff = field_of_view_efficiency(
                link.rx.field_of_view_full_angle_rad, r0, lam, link.rx.aperture_diameter_m
            )
    else:
        rytov = turbulence.slant_rytov_variance(
            zenith, lam, direction="uplink", wave="spherical", **common
        )
        alpha, beta = turbulence.gamma_gamma_alpha_beta_aperture(
            rytov, link.rx.aperture_diameter_m, lam, range_m, wave="spherical"
        )
        r0 = turbulence.slant_fried_parameter_m(zenith, lam, direction="uplink", **common)
        # Beam spreading + wander of the uplink, [AP05] ch. 12: W_LT^2 = W^2 (1 + T) with
        # W^2 T = W0^2 C Lambda0^(5/6) (Theta0^2 + Lambda0^2)^(1/6) (C: the path's Cn2 integral
        # and geometry). turbulence.long_term_beam_radius_m gives it for the collimated beam
        # (Theta0 = 1); a beam widened to w_tx (Theta0^2 + Lambda0^2 = (w_tx/W0)^2) gets the
        # same term times (w_tx / W_collimated)^(1/3), added in quadrature to its own radius.
        w0 = link.tx.waist_radius_m
        flat_range = (link.platform_altitude_m - link.ground_altitude_m) / np.cos(zenith)
        w_lt_coll = turbulence.long_term_beam_radius_m(w0, lam, zenith, **common)
        w_coll = beam_radius_at_range_m(flat_range, w0, lam)
        w_tx_flat = np.hypot(w0, link.tx.tx_divergence_half_angle_rad * flat_range)
        turb_term = (w_lt_coll**2 - w_coll**2) * (w_tx_flat / w_coll) ** (1.0 / 3.0)
        w_tx = np.hypot(w0, link.tx.tx_divergence_half_angle_rad * range_m)
        w_lt = np.sqrt(w_tx**2 + turb_term * (range_m / flat_range) ** 2)
        rx = link.rx
        mean_eff = geometric_efficiency(
            w_lt, rx.aperture_diameter_m, rx.obscuration_diameter_m
        ) / geometric_efficiency(w_tx, rx.aperture_diameter_m, rx.obscuration_diameter_m)
    return mean_eff, alpha, beta, rytov, r0


# The Gamma-Gamma fade margin needs a root find over a Bessel-K quadrature per link (~1 ms).
# Every term of the turbulence model of one preset depends on the zenith angle alone (the
# altitudes are fixed and the range follows from the zenith angle), and the margin is a smooth
# function of it, so large batches evaluate it at _FADE_NODES zenith angles and interpolate
# linearly: within 0.01 dB of the direct evaluation between 10 and 90 deg elevation for every
# preset (tests), at ~20 ms per batch instead of ~0.4 ms per link.
_FADE_NODES = 64


def _fade_margin_db(link: LinkPreset, zenith: np.ndarray, alpha, beta) -> np.ndarray:
    if zenith.size <= _FADE_NODES:
        return turbulence.gamma_gamma_fade_margin_db(alpha, beta, link.outage_probability)
    # nodes evenly spaced in cos(zenith): denser towards the horizon, where the margin bends
    cos_nodes = np.linspace(np.cos(np.max(zenith)), np.cos(np.min(zenith)), _FADE_NODES)
    z_nodes = np.arccos(cos_nodes)[::-1]
    range_nodes = geometry.slant_range_from_elevation_m(
        np.pi / 2 - z_nodes, link.platform_altitude_m, site_altitude_m=link.ground_altitude_m
    )
    _, a_nodes, b_nodes, _, _ = _turbulence(link, range_nodes, z_nodes)
    fade_nodes = turbulence.gamma_gamma_fade_margin_db(a_nodes, b_nodes, link.outage_probability)
    return np.interp(zenith, z_nodes, fade_nodes)


def qkd_terms(link: LinkPreset, transmittance):
    """Decoy-state BB84 terms of ``link`` at a total ``transmittance`` (detector included).

    Returns ``(noise_click_prob, qber, sifted_key_rate_bps, skr_bps)``: Y0 from dark counts and
    background, the signal-state QBER (Ma et al. 2005 eq. (5)), the sifted rate, and the
    asymptotic secret key rate at the preset's signal rate. Broadcasts over ``transmittance``.
    """
    y0 = qkd.combine_noise_probs(
        qkd.dark_count_prob(link.dark_count_rate_hz, link.gate_width_s, link.n_detectors),
        -np.expm1(-link.background_count_rate_hz * link.gate_width_s),
    )
    qber = qkd.bb84_qber(transmittance, link.mu_signal, y0, link.misalignment_error)
    rate_per_pulse = qkd.decoy_bb84_rate_per_pulse(
        transmittance,
        link.mu_signal,
        dark_count_prob=y0,
        misalignment_error=link.misalignment_error,
        f_ec=link.f_ec,
        sifting=link.sifting,
        decoys=link.decoys,
    )
    signal_rate_hz = link.repetition_rate_hz * link.signal_probability
    sifted = signal_rate_hz * link.sifting * qkd.bb84_gain(transmittance, link.mu_signal, y0)
    skr = qkd.secret_key_rate_bps(rate_per_pulse, signal_rate_hz)
    # Y0 does not depend on the transmittance; it still gets the shape of the other three
    y0 = np.full(np.shape(qber), y0)
    return y0, qber, sifted, skr


class _KeyRate:
    """The ``skr_bps`` of :func:`qkd_terms` for one link, its QKD settings checked once.

    A link's source, detectors and protocol settings do not change during a run: one
    :func:`qkd_terms` call here validates them (and raises as it does), and :meth:`skr_bps`
    then runs the same operations on the same values as :func:`qkd_terms` (bit for bit the
    same key rate) without the per-call argument checks and without the QBER and sifted rate
    a caller that keeps only the key rate never reads.
    """

    def __init__(self, link: LinkPreset) -> None:
        qkd_terms(link, 0.5)  # raises as qkd_terms does for this link's settings
        self.link = link
        y0 = qkd.combine_noise_probs(
            qkd.dark_count_prob(link.dark_count_rate_hz, link.gate_width_s, link.n_detectors),
            -np.expm1(-link.background_count_rate_hz * link.gate_width_s),
        )
        # the checked forms decoy_bb84_rate_per_pulse and secret_key_rate_bps give them
        self._y0 = np.asarray(y0, dtype=float)
        self._mu = np.asarray(link.mu_signal, dtype=float)
        self._ed = np.asarray(link.misalignment_error, dtype=float)
        self._f = np.asarray(link.f_ec, dtype=float)
        self._q = np.asarray(link.sifting, dtype=float)
        self._nus = None if link.decoys is None else qkd._parse_decoys(link.decoys, self._mu)
        self._signal_rate_hz = np.asarray(
            link.repetition_rate_hz * link.signal_probability, dtype=float
        )
        self.zero_at_or_below = -1.0 if self._nus is None else self._find_zero_region()

    def _rate(self, eta: np.ndarray) -> np.ndarray:
        rate = qkd._two_decoy_rate(eta, self._mu, self._y0, self._ed, self._f, self._q, self._nus)
        return rate * self._signal_rate_hz

    def _find_zero_region(self) -> float:
        """A transmittance at and below which the key rate is exactly 0, or -1 (none found).

        The rate falls with the loss and is clipped at 0 past the loss where the decoy bound
        stops paying for error correction (the "maximal distance" of the QKD curves). One
        evaluation on a 0.05 dB grid from 400 dB to 0 dB finds the last grid point before the
        first key; the region kept ends 3 dB below it, so values near the edge are always
        computed, and every grid point inside it was seen to give 0. Links far beyond the edge
        (the inter-satellite links of a 550 km shell: every one of them, every tick) then skip
        the decoy formula, which costs as much as the rest of their budget."""
        grid = np.logspace(-40.0, 0.0, 8001)  # transmittance, 0.05 dB apart
        keyed = np.flatnonzero(self._rate(grid))
        first = keyed[0] if keyed.size else grid.size
        if first == 0:
            return -1.0  # key even at 400 dB: no zero region worth having
        return float(grid[first - 1] / 2.0)

    def skr_bps(self, transmittance: np.ndarray) -> np.ndarray:
        """``qkd_terms(link, transmittance)[3]`` for a float (K,) ``transmittance``."""
        eta = transmittance
        if self._nus is None or not (eta.size and eta.min() >= 0.0 and eta.max() <= 1.0):
            # infinite decoys, an empty or out-of-range argument: the checked reference
            return qkd_terms(self.link, eta)[3]
        # the formula is elementwise: evaluating a subset gives those elements' values
        keyed = np.flatnonzero(eta > self.zero_at_or_below)
        if keyed.size == eta.size:
            return self._rate(eta)
        out = np.zeros(eta.shape)
        if keyed.size:
            out[keyed] = self._rate(eta[keyed])
        return out


def compute_link_budget(
    preset_or_params: str | LinkPreset | Mapping,
    *,
    range_m=None,
    elevation_rad=None,
    weather_loss_db=0.0,
    fade_margin: bool = True,
) -> LinkBudget:
    """Loss breakdown, transmittance, QBER and secret key rate of a link.

    ``preset_or_params``: a preset name (``"micius-2017"``), a :class:`LinkPreset`, or a mapping
    of :func:`link_from_params` arguments. Give ``range_m`` (slant range, m) or
    ``elevation_rad`` (of the upper end above the lower end's horizon); neither: the preset's
    default range. ``weather_loss_db`` (fog, cloud, rain along the slant path, e.g. from
    ``twin.physics.atmosphere``) adds to the atmospheric loss. Ranges and elevations may be
    arrays; every array field of the result has their shape. ``fade_margin=False`` skips the
    Gamma-Gamma fade margin (NaN in the result), the one costly term, for bulk evaluations.
    """
    link = _resolve(preset_or_params)
    rng, el = _geometry(link, range_m, elevation_rad)
    weather = np.asarray(weather_loss_db, dtype=float)
    if np.any(weather < 0):
        raise ValueError(f"weather_loss_db must be >= 0 (a loss), got {weather}")

    if link.kind == "isl":
        eta_atm = np.ones(rng.shape)
        eta_turb = np.ones(rng.shape)
        fade = np.zeros(rng.shape)
        rytov = np.zeros(rng.shape)
        r0 = np.full(rng.shape, np.inf)
        if np.any(weather != 0):
            raise ValueError("an inter-satellite link has no weather: weather_loss_db must be 0")
    else:
        zenith = np.pi / 2 - el
        eta_atm = _atmospheric_transmittance(link, zenith) * 10.0 ** (-weather / 10.0)
        eta_turb, alpha, beta, rytov, r0 = _turbulence(link, rng, zenith)
        if fade_margin:
            fade = _fade_margin_db(link, zenith, alpha, beta)
        else:
            fade = np.full(rng.shape, np.nan)

    ch = fso_channel(
        link.kind,
        link.tx,
        link.rx,
        rng,
        atmospheric_transmittance=eta_atm,
        turbulence_efficiency=eta_turb,
    )
    total = ch.total
    shape = total.shape

    def arr(x) -> np.ndarray:
        # "+ 0.0" turns the -0.0 of linear_to_db(1.0) into 0.0 for printing
        out = np.array(np.broadcast_to(np.asarray(x, dtype=float), shape))
        out += 0.0
        return out

    y0, qber, sifted, skr = qkd_terms(link, total)

    receiver_loss = linear_to_db(ch.receiver_optics * ch.detector)
    return LinkBudget(
        preset=link.name,
        link_kind=link.kind,
        wavelength_m=float(link.tx.wavelength_m),
        range_m=arr(rng),
        elevation_rad=arr(el),
        beam_radius_m=arr(ch.beam_radius_m),
        geometric_loss_db=arr(linear_to_db(ch.geometric)),
        atmospheric_loss_db=arr(linear_to_db(ch.atmospheric)),
        turbulence_loss_db=arr(linear_to_db(ch.turbulence)),
        pointing_loss_db=arr(linear_to_db(ch.pointing)),
        transmitter_loss_db=arr(linear_to_db(ch.transmitter)),
        receiver_loss_db=arr(receiver_loss),
        detector_loss_db=arr(linear_to_db(ch.detector)),
        total_loss_db=arr(linear_to_db(total)),
        transmittance=arr(total),
        channel_transmittance=arr(ch.transmittance),
        fade_margin_db=arr(fade),
        outage_probability=float(link.outage_probability),
        rytov_variance=arr(rytov),
        fried_parameter_m=arr(r0),
        noise_click_prob=arr(y0),
        qber=arr(qber),
        sifted_key_rate_bps=arr(sifted),
        skr_bps=arr(skr),
        repetition_rate_hz=float(link.repetition_rate_hz),
    )
