"""Optical fibre links (SMF-28 class single-mode fibre): loss, transmittance, latency, reach.

A fibre span's loss is the fibre attenuation times its length plus the losses of its connectors
and splices (the usual link-loss budget of TIA-568 / IEC 61280-4-2):

    loss_db = alpha_db_per_km * L_km + n_connectors * connector_db + n_splices * splice_db

Latency is the group delay L n_g / c with the group index of the fibre at the wavelength.

Sources
-------
- ITU-T Rec. G.652 (11/2016), Table 2 (G.652.D): cabled attenuation <= 0.4 dB/km from 1310 to
  1625 nm and <= 0.3 dB/km at 1550 nm (maximum values of the category).
- Corning SMF-28 Ultra optical fibre, product information PI1424 (2021): maximum attenuation
  <= 0.32 dB/km at 1310 nm, <= 0.18 dB/km at 1550 nm; group index 1.4676 (1310), 1.4682 (1550)
  (``twin.units.SMF28_GROUP_INDEX_*``).
- Typical installed values used as defaults here: 0.20 dB/km at 1550 nm (C band) and 0.33 dB/km
  at 1310 nm (O band) for standard SMF, e.g. Agrawal, *Fiber-Optic Communication Systems*, 4th
  ed. (Wiley 2010), Sec. 2.5.1, Fig. 2.15 (0.2 dB/km minimum near 1550 nm).
- Connector and splice allowances: ANSI/TIA-568.3-D (2016), Sec. 7: at most 0.75 dB per mated
  connector pair and 0.3 dB per splice; the defaults (0.3 dB, 0.05 dB) are typical field values
  for low-loss SC/LC-APC connectors and fusion splices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.units import (
    KM,
    SMF28_GROUP_INDEX_1310,
    SMF28_GROUP_INDEX_1550,
    SPEED_OF_LIGHT_M_PER_S,
    db_to_linear,
)

__all__ = [
    "FiberBand",
    "C_BAND",
    "O_BAND",
    "SMF28_ULTRA_C_BAND",
    "SMF28_ULTRA_O_BAND",
    "fiber_loss_db",
    "fiber_transmittance",
    "fiber_latency_s",
    "fiber_reach_m",
    "fiber_length_for_transmittance_m",
]


@dataclass(frozen=True)
class FiberBand:
    """Attenuation and group index of a fibre type in one band (an equipment parameter set)."""

    name: str
    wavelength_m: float
    attenuation_db_per_km: float
    group_index: float


#: Standard SMF in the C band, typical installed attenuation (Agrawal 2010, Sec. 2.5.1);
#: group index of SMF-28 Ultra (Corning PI1424).
C_BAND = FiberBand("C-band SMF, typical", 1550e-9, 0.20, SMF28_GROUP_INDEX_1550)
#: Standard SMF in the O band, typical installed attenuation; group index of SMF-28 Ultra.
O_BAND = FiberBand("O-band SMF, typical", 1310e-9, 0.33, SMF28_GROUP_INDEX_1310)
#: Corning SMF-28 Ultra maximum attenuation at 1550 nm (PI1424): <= 0.18 dB/km.
SMF28_ULTRA_C_BAND = FiberBand("SMF-28 Ultra 1550 nm, max", 1550e-9, 0.18, SMF28_GROUP_INDEX_1550)
#: Corning SMF-28 Ultra maximum attenuation at 1310 nm (PI1424): <= 0.32 dB/km.
SMF28_ULTRA_O_BAND = FiberBand("SMF-28 Ultra 1310 nm, max", 1310e-9, 0.32, SMF28_GROUP_INDEX_1310)


def _as_nonnegative(name: str, x, hint: str = "") -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if np.any(~np.isfinite(a)) or np.any(a < 0):
        bad = a[~np.isfinite(a) | (a < 0)].ravel()[0]
        raise ValueError(f"{name} must be finite and >= 0{hint}, got {bad}")
    return a


def fiber_loss_db(
    length_m,
    attenuation_db_per_km=C_BAND.attenuation_db_per_km,
    *,
    n_connectors=0,
    connector_loss_db=0.3,
    n_splices=0,
    splice_loss_db=0.05,
) -> np.ndarray:
    """Loss of a fibre span in dB: alpha L + connectors + splices (positive = loss).

    ``attenuation_db_per_km`` per kilometre (the unit fibre datasheets use); ``length_m`` in
    metres. Defaults: C-band SMF 0.2 dB/km, 0.3 dB per connector pair, 0.05 dB per splice (see
    the module sources; TIA-568.3-D allows up to 0.75 and 0.3 dB).

    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    length = _as_nonnegative("length_m", length_m, " (metres; km passed? multiply by KM)")
    alpha = _as_nonnegative("attenuation_db_per_km", attenuation_db_per_km)
    if np.any(alpha > 100.0):
        raise ValueError(
            f"attenuation_db_per_km looks wrong for fibre: {np.max(alpha)} (dB/m passed?)"
        )
    connectors = _as_nonnegative("n_connectors", n_connectors)
    splices = _as_nonnegative("n_splices", n_splices)
    connector_db = _as_nonnegative("connector_loss_db", connector_loss_db)
    splice_db = _as_nonnegative("splice_loss_db", splice_loss_db)
    return alpha * length / KM + connectors * connector_db + splices * splice_db


def fiber_transmittance(length_m, attenuation_db_per_km=C_BAND.attenuation_db_per_km, **losses):
    """Transmittance 10^(-loss_db/10) of a fibre span (dimensionless, in (0, 1]).

    Same arguments as :func:`fiber_loss_db`. Shapes: broadcast shape of the arguments.
    """
    return db_to_linear(fiber_loss_db(length_m, attenuation_db_per_km, **losses))


def fiber_latency_s(length_m, group_index=C_BAND.group_index) -> np.ndarray:
    """One-way propagation delay L n_g / c of a fibre span, in seconds (~4.9 us/km at 1550 nm).

    Group index of SMF-28 Ultra: 1.4682 at 1550 nm, 1.4676 at 1310 nm (Corning PI1424).
    Shapes: all arguments broadcast; returns their broadcast shape.
    """
    length = _as_nonnegative("length_m", length_m, " (metres)")
    n_g = np.asarray(group_index, dtype=float)
    if np.any(n_g < 1.0):
        raise ValueError(f"group_index must be >= 1, got {np.min(n_g)}")
    return length * n_g / SPEED_OF_LIGHT_M_PER_S


def fiber_reach_m(
    loss_budget_db,
    attenuation_db_per_km=C_BAND.attenuation_db_per_km,
    *,
    fixed_loss_db=0.0,
) -> np.ndarray:
    """Longest span whose loss stays within ``loss_budget_db``: (budget - fixed) / alpha, in m.

    For a quantum channel the budget is the largest loss at which the protocol still gives a
    positive key (e.g. ~30 dB of fibre for decoy BB84 with GYS parameters: 142 km at 0.21 dB/km,
    Ma et al. 2005, besides Bob's 13.5 dB of detection loss); ``fixed_loss_db``
    collects connectors, splices and the receiver's insertion loss. A budget smaller than the
    fixed loss gives 0 (no reach). Shapes: all arguments broadcast.
    """
    budget = np.asarray(loss_budget_db, dtype=float)
    alpha = _as_nonnegative("attenuation_db_per_km", attenuation_db_per_km)
    if np.any(alpha <= 0):
        raise ValueError("attenuation_db_per_km must be > 0 to have a finite reach")
    fixed = _as_nonnegative("fixed_loss_db", fixed_loss_db)
    return np.maximum(budget - fixed, 0.0) / alpha * KM


def fiber_length_for_transmittance_m(
    transmittance, attenuation_db_per_km=C_BAND.attenuation_db_per_km
) -> np.ndarray:
    """Fibre length whose attenuation alone gives ``transmittance``: -10 log10(T) / alpha, in m.

    Handy for comparing a free-space link with "the same loss in fibre". T = 0 gives inf.
    Shapes: all arguments broadcast.
    """
    t = np.asarray(transmittance, dtype=float)
    if np.any((t < 0) | (t > 1)):
        raise ValueError(f"transmittance must be within [0, 1] (linear, not dB), got {t}")
    alpha = _as_nonnegative("attenuation_db_per_km", attenuation_db_per_km)
    with np.errstate(divide="ignore"):
        loss_db = -10.0 * np.log10(t)
    return loss_db / alpha * KM
