"""Quantum memory of one node: at most Q_max stored qubits, each half of a pair, decaying with T2.

A stored qubit is one half of a two-qubit entangled pair. Its slot records the pair id, the node
that holds the other half (``partner``), the time it entered this memory (``birth_ns``, int ns)
and the pair's state at a reference time (``ref_ns``): its Bell fidelity ``fidelity`` =
<Phi+|rho|Phi+> (SPARQ eq. (12)) and its weight on |Phi->, ``phi_minus`` = <Phi-|rho|Phi->.

How a stored pair decays (exact, documented here once)
------------------------------------------------------
A qubit kept in a memory of coherence time T2 undergoes pure dephasing: its coherences are
multiplied by c = exp(-t/T2) after t seconds (phase damping, Nielsen & Chuang Sec. 8.3.6; energy
relaxation T1 is neglected, as in the main paper's eq. (3)). For any two-qubit state rho,

    F = <Phi+|rho|Phi+> = (rho_00,00 + rho_11,11)/2 + Re rho_00,11 .

Dephasing leaves the populations alone and multiplies rho_00,11 by the c of each qubit it acts
on, so with (rho_00,00 + rho_11,11)/2 = (F + m)/2 and Re rho_00,11 = (F - m)/2 (m = phi_minus):

    F(t) = (F_ref + m_ref)/2 + (F_ref - m_ref)/2 * exp(-Lambda(t)),
    Lambda(t) = (t - ref)/T2_self + (t - ref)/T2_partner .

``partner_t2_s`` says what happens to the other half: the same T2 as this memory (the default:
both halves are stored, so the pair decays with both storage times), another value (the partner
sits in a different memory), or ``math.inf`` (only this half decoheres: the partner is not
stored, e.g. it is held by an ideal device or already measured). Special cases:

- perfect pair (F = 1, m = 0), one half stored: F(t) = (1 + exp(-t/T2))/2, the main paper's
  eq. (3) (``twin.physics.memory.memory_fidelity``);
- perfect pair, both halves stored in memories with equal T2: F(t) = (1 + exp(-2t/T2))/2, i.e.
  the pair ages twice as fast as with one half stored;
- Werner pair (m = (1 - F)/3, the default when ``phi_minus`` is not given), one half stored:
  F(t) = (1 + 2 F0)/6 + (4 F0 - 1)/6 exp(-t/T2) =
  ``twin.physics.memory.stored_bell_pair_fidelity`` with T1 = inf. After twirling back to a
  Werner state its Werner parameter is p(t) = p0 (1 + 2 exp(-Lambda))/3 with Lambda summing the
  storage times of both halves (each over its own T2).

Expiry (the TTL constraint): ``expire(t_ns, f_min)`` drops every slot whose pair fidelity at
``t_ns`` is below ``f_min``; with a perfect pair and one half stored this is exactly the
time-to-live of eq. (3), t_TTL = -T2 ln(2 F_min - 1).

Determinism: slots are kept sorted by (birth_ns, pair_id); every listing and every vectorized
result follows that order. Nothing depends on dict or set iteration order.

Accounting: ``stored = released + expired + slots_used`` at all times (``rejections`` counts the
store attempts refused because the memory was full; they never enter the memory).
"""

from __future__ import annotations

import bisect
import math
import operator
from dataclasses import dataclass, replace

import numpy as np

from twin.units import NS_PER_S

__all__ = ["MemorySlot", "QuantumMemory"]


@dataclass(frozen=True, slots=True)
class MemorySlot:
    """One stored qubit: the half of pair ``pair_id`` whose other half is at ``partner``."""

    pair_id: str
    partner: str
    """node holding the other half of the pair"""
    birth_ns: int
    """when this qubit entered the memory (int ns)"""
    fidelity: float
    """Bell fidelity <Phi+|rho|Phi+> of the pair at ``ref_ns``"""
    phi_minus: float
    """weight <Phi-|rho|Phi-> of the pair at ``ref_ns`` (the part dephasing turns Phi+ into)"""
    ref_ns: int
    """time at which ``fidelity`` and ``phi_minus`` hold (>= birth_ns)"""
    partner_t2_s: float
    """coherence time of the other half's memory, s (math.inf: the other half does not decay)"""

    @property
    def order_key(self) -> tuple[int, str]:
        return (self.birth_ns, self.pair_id)


def _int_ns(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be int nanoseconds, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be int nanoseconds, got {value!r} (use twin.units.NS_PER_S)"
        ) from None


def _t2(name: str, value: float) -> float:
    v = float(value)
    if not v > 0.0:  # also rejects NaN
        raise ValueError(
            f"{name} must be > 0 seconds (math.inf for a perfect memory), got {value!r}"
        )
    return v


def _fidelity_pair(fidelity: float, phi_minus: float | None) -> tuple[float, float]:
    f = float(fidelity)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"fidelity must be within [0, 1], got {fidelity!r}")
    m = (1.0 - f) / 3.0 if phi_minus is None else float(phi_minus)
    if not 0.0 <= m <= 1.0 - f + 1e-12:
        raise ValueError(
            f"phi_minus must be within [0, 1 - fidelity] = [0, {1.0 - f!r}], got {phi_minus!r} "
            "(it is the pair's weight on |Phi->; omit it for a Werner pair)"
        )
    return f, min(m, 1.0 - f)


class QuantumMemory:
    """The quantum memory of one node: at most ``q_max`` stored qubits, coherence time ``t2_s``.

    ``store`` refuses a qubit beyond ``q_max`` (returns False and counts a rejection);
    ``release`` frees a slot (the qubit was used: swapped, measured, consumed); ``expire`` drops
    the slots whose pair fidelity fell below F_min. ``peak_slots_used`` is the largest number of
    slots ever occupied at once. Pair fidelities follow the model in the module docstring.
    """

    def __init__(self, q_max: int, t2_s: float) -> None:
        if isinstance(q_max, bool):
            raise ValueError(
                f"q_max must be a non-negative integer number of qubits, got {q_max!r}"
            )
        try:
            q = operator.index(q_max)
        except TypeError:
            raise ValueError(
                f"q_max must be a non-negative integer number of qubits, got {q_max!r}"
            ) from None
        if q < 0:
            raise ValueError(
                f"q_max must be a non-negative integer number of qubits, got {q_max!r}"
            )
        self._q_max = q
        self._t2_s = _t2("t2_s", t2_s)
        self._slots: list[MemorySlot] = []  # sorted by (birth_ns, pair_id)
        self._keys: list[tuple[int, str]] = []  # the same order, for bisect
        self._by_id: dict[str, MemorySlot] = {}
        self._peak = 0
        self._rejections = 0
        self._stored = 0
        self._released = 0
        self._expired = 0

    # --- read-only state -----------------------------------------------------------------
    @property
    def q_max(self) -> int:
        return self._q_max

    @property
    def t2_s(self) -> float:
        return self._t2_s

    @property
    def slots(self) -> tuple[MemorySlot, ...]:
        """The stored qubits, sorted by (birth_ns, pair_id)."""
        return tuple(self._slots)

    @property
    def slots_used(self) -> int:
        return len(self._slots)

    @property
    def free_slots(self) -> int:
        return self._q_max - len(self._slots)

    @property
    def peak_slots_used(self) -> int:
        """Largest number of slots occupied at the same time since creation."""
        return self._peak

    @property
    def rejections(self) -> int:
        """Store attempts refused because all ``q_max`` slots were occupied."""
        return self._rejections

    @property
    def stored_count(self) -> int:
        """Qubits ever accepted (= released_count + expired_count + slots_used)."""
        return self._stored

    @property
    def released_count(self) -> int:
        return self._released

    @property
    def expired_count(self) -> int:
        return self._expired

    def __contains__(self, pair_id: object) -> bool:
        return pair_id in self._by_id

    def slot(self, pair_id: str) -> MemorySlot:
        """The slot holding the half of ``pair_id`` (ValueError if there is none)."""
        try:
            return self._by_id[pair_id]
        except KeyError:
            raise ValueError(f"no qubit of pair {pair_id!r} is stored in this memory") from None

    # --- changes -------------------------------------------------------------------------
    def store(
        self,
        pair_id: str,
        partner: str,
        t_ns: int,
        fidelity: float = 1.0,
        *,
        phi_minus: float | None = None,
        partner_t2_s: float | None = None,
    ) -> bool:
        """Store the half of ``pair_id`` (other half at ``partner``) at ``t_ns``.

        ``fidelity`` / ``phi_minus`` describe the pair at ``t_ns`` (``phi_minus`` omitted: a
        Werner pair, (1 - fidelity)/3). ``partner_t2_s`` None: the other half is stored in a
        memory with this memory's T2; ``math.inf``: the other half does not decay. Returns False
        (and counts a rejection) when all ``q_max`` slots are occupied; True otherwise.
        """
        t = _int_ns("t_ns", t_ns)
        if not isinstance(pair_id, str) or not pair_id:
            raise ValueError(f"pair_id must be a non-empty string, got {pair_id!r}")
        if pair_id in self._by_id:
            raise ValueError(
                f"pair {pair_id!r} already has a qubit in this memory (pair ids must be unique "
                "per memory: the two halves of a pair live on different nodes)"
            )
        f, m = _fidelity_pair(fidelity, phi_minus)
        pt2 = self._t2_s if partner_t2_s is None else _t2("partner_t2_s", partner_t2_s)
        if len(self._slots) >= self._q_max:
            self._rejections += 1
            return False
        slot = MemorySlot(pair_id, str(partner), t, f, m, t, pt2)
        i = bisect.bisect_left(self._keys, slot.order_key)
        self._keys.insert(i, slot.order_key)
        self._slots.insert(i, slot)
        self._by_id[pair_id] = slot
        self._stored += 1
        self._peak = max(self._peak, len(self._slots))
        return True

    def _remove(self, pair_id: str) -> MemorySlot:
        slot = self.slot(pair_id)
        i = bisect.bisect_left(self._keys, slot.order_key)
        if self._slots[i] is not slot:  # pragma: no cover - invariant
            raise RuntimeError(f"memory slot order corrupted at {pair_id!r}")
        del self._keys[i]
        del self._slots[i]
        del self._by_id[pair_id]
        return slot

    def release(self, pair_id: str) -> MemorySlot:
        """Free the slot of ``pair_id`` (its qubit was swapped, measured or consumed)."""
        slot = self._remove(pair_id)
        self._released += 1
        return slot

    def rebind(
        self,
        pair_id: str,
        new_pair_id: str,
        *,
        partner: str,
        t_ns: int,
        fidelity: float,
        phi_minus: float | None = None,
        partner_t2_s: float | None = None,
    ) -> MemorySlot:
        """After a swap elsewhere, the stored qubit belongs to a new pair: relabel its slot.

        Keeps ``birth_ns`` (the qubit has not moved); the pair state (``fidelity``,
        ``phi_minus``) is given at ``t_ns``, which becomes the slot's reference time.
        """
        t = _int_ns("t_ns", t_ns)
        old = self.slot(pair_id)
        if t < old.ref_ns:
            raise ValueError(f"t_ns {t} precedes the slot's reference time {old.ref_ns}")
        if new_pair_id != pair_id and new_pair_id in self._by_id:
            raise ValueError(f"pair {new_pair_id!r} already has a qubit in this memory")
        f, m = _fidelity_pair(fidelity, phi_minus)
        pt2 = self._t2_s if partner_t2_s is None else _t2("partner_t2_s", partner_t2_s)
        self._remove(pair_id)
        new = replace(
            old,
            pair_id=new_pair_id,
            partner=str(partner),
            fidelity=f,
            phi_minus=m,
            ref_ns=t,
            partner_t2_s=pt2,
        )
        i = bisect.bisect_left(self._keys, new.order_key)
        self._keys.insert(i, new.order_key)
        self._slots.insert(i, new)
        self._by_id[new_pair_id] = new
        return new

    # --- fidelity and expiry -------------------------------------------------------------
    def _check_t(self, t: int, slot: MemorySlot) -> None:
        if t < slot.ref_ns:
            raise ValueError(
                f"t_ns {t} precedes the reference time {slot.ref_ns} of pair {slot.pair_id!r}"
            )

    def fidelity_at(self, pair_id: str, t_ns: int) -> float:
        """Bell fidelity at ``t_ns`` of the pair whose half sits in slot ``pair_id``.

        F(t) = (F + m)/2 + (F - m)/2 exp(-(t - ref)(1/T2 + 1/T2_partner)) (module docstring).
        """
        t = _int_ns("t_ns", t_ns)
        slot = self.slot(pair_id)
        self._check_t(t, slot)
        rate = 1.0 / self._t2_s + 1.0 / slot.partner_t2_s
        dt_s = (t - slot.ref_ns) / NS_PER_S
        decay = math.exp(-dt_s * rate) if dt_s > 0.0 else 1.0
        return (
            0.5 * (slot.fidelity + slot.phi_minus) + 0.5 * (slot.fidelity - slot.phi_minus) * decay
        )

    def fidelities_at(self, t_ns: int) -> np.ndarray:
        """Pair fidelities at ``t_ns`` of every slot, shape (slots_used,), in slot order."""
        t = _int_ns("t_ns", t_ns)
        n = len(self._slots)
        if n == 0:
            return np.zeros(0)
        for slot in self._slots:
            self._check_t(t, slot)
        f = np.fromiter((s.fidelity for s in self._slots), float, n)
        m = np.fromiter((s.phi_minus for s in self._slots), float, n)
        ref = np.fromiter((s.ref_ns for s in self._slots), np.int64, n)
        pt2 = np.fromiter((s.partner_t2_s for s in self._slots), float, n)
        dt_s = (t - ref).astype(float) / NS_PER_S
        rate = 1.0 / self._t2_s + 1.0 / pt2
        with np.errstate(invalid="ignore"):
            exponent = np.where(dt_s > 0.0, dt_s * rate, 0.0)
        return 0.5 * (f + m) + 0.5 * (f - m) * np.exp(-exponent)

    def expire(self, t_ns: int, f_min: float) -> list[MemorySlot]:
        """Drop the slots whose pair fidelity at ``t_ns`` is below ``f_min`` (the TTL constraint).

        Returns the dropped slots in slot order. ``f_min`` in [0, 1].
        """
        fm = float(f_min)
        if not 0.0 <= fm <= 1.0:
            raise ValueError(f"f_min must be within [0, 1], got {f_min!r}")
        if not self._slots:
            return []
        below = self.fidelities_at(t_ns) < fm
        dropped = [s for s, b in zip(self._slots, below, strict=True) if b]
        for slot in dropped:
            self._remove(slot.pair_id)
        self._expired += len(dropped)
        return dropped

    # --- plain values (the Ray runtime's bus carries a lent memory as these) ---------------
    def to_wire(self) -> list:
        """This memory as plain values (msgpack's): ``[q_max, t2_s, slots, peak, rejections,
        stored, released, expired]``, each slot ``[pair_id, partner, birth_ns, fidelity,
        phi_minus, ref_ns, partner_t2_s]`` in the memory's order; :meth:`from_wire` gives it
        back exactly (floats bit for bit)."""
        slots = [[s.pair_id, s.partner, s.birth_ns, s.fidelity, s.phi_minus, s.ref_ns,
                  s.partner_t2_s] for s in self._slots]  # fmt: skip
        return [self._q_max, self._t2_s, slots, self._peak, self._rejections, self._stored,
                self._released, self._expired]  # fmt: skip

    @classmethod
    def from_wire(cls, item) -> QuantumMemory:
        """The memory of :meth:`to_wire`'s values; a ValueError names what is not a memory's
        state (types, counts below zero, more slots than ``q_max``, slots out of order or
        sharing a pair id, a slot's fidelity or times out of range)."""
        if not (type(item) is list and len(item) == 8):
            raise ValueError("a memory is [q_max, t2_s, slots, peak, rejections, stored, "
                             "released, expired]")  # fmt: skip
        q_max, t2_s, slots, *counts = item
        if type(t2_s) is not float or type(slots) is not list:
            raise ValueError("a memory's t2_s must be a float and its slots a list")
        if not all(type(c) is int and c >= 0 for c in counts):
            raise ValueError(f"a memory's counts must be ints >= 0, got {counts!r:.120}")
        memory = cls(q_max, t2_s)  # (checks q_max and t2_s)
        made = []
        for slot in slots:
            if not (type(slot) is list and len(slot) == 7):
                raise ValueError("a memory slot is [pair_id, partner, birth_ns, fidelity, "
                                 "phi_minus, ref_ns, partner_t2_s]")  # fmt: skip
            pair_id, partner, birth_ns, fidelity, phi_minus, ref_ns, partner_t2_s = slot
            floats = (fidelity, phi_minus, partner_t2_s)
            if not (type(pair_id) is str and type(partner) is str and type(birth_ns) is int
                    and type(ref_ns) is int and birth_ns <= ref_ns
                    and all(type(x) is float for x in floats)):  # fmt: skip
                raise ValueError(f"memory slot {slot!r:.160} is not a stored qubit's state")
            _fidelity_pair(fidelity, phi_minus)  # (raises for values a pair cannot have)
            _t2("partner_t2_s", partner_t2_s)
            made.append(MemorySlot(pair_id, partner, birth_ns, fidelity, phi_minus, ref_ns,
                                   partner_t2_s))  # fmt: skip
        keys = [s.order_key for s in made]
        unique = len({s.pair_id for s in made}) == len(made)
        if len(made) > memory._q_max or keys != sorted(keys) or not unique:
            raise ValueError("a memory's slots must be at most q_max, in (birth_ns, pair_id) "
                             "order, one per pair id")  # fmt: skip
        memory._slots, memory._keys = made, keys
        memory._by_id = {s.pair_id: s for s in made}
        memory._peak, memory._rejections, memory._stored, memory._released, memory._expired = counts
        return memory

    def __repr__(self) -> str:
        return (
            f"QuantumMemory(q_max={self._q_max}, t2_s={self._t2_s}, used={len(self._slots)}, "
            f"peak={self._peak}, rejections={self._rejections})"
        )
