"""Key management: QKD key buffers, exact key accounting, trusted-relay end-to-end keys and the
key demand of each security mode.

One :class:`KeyBuffer` per QKD link, and the same class for the end-to-end pool of each site
pair. Key material is counted in integer bits and every bit carries a stable key id (a buffer's
ids run 0, 1, 2, ... in generation order), so the accounting can be checked exactly: for every
buffer and at every moment

    generated = consumed + expired + discarded + destroyed + buffered        (the ledger)

and the ids ``[0, generated)`` are split between those five fates with no overlap, so a key bit
is never spent twice (ARCHITECTURE.md, "Node state"; issue 3, "Key management").

Design decisions (each a documented choice, not a published constant):

* **Buffer states** follow QKDNetSim (Mehic et al., "Implementation of quantum key distribution
  network simulation module in the network simulator NS-3", Quantum Inf. Process. 16, 253
  (2017), Sec. 3; the ``QKDBuffer::FetchState`` contract of the ns-3 module), with thresholds
  ``Mmin < Mthr <= Mmax``: READY when ``M >= Mthr``; WARNING when ``Mmin < M < Mthr`` coming
  from READY (draining); CHARGING when ``Mmin < M < Mthr`` coming from EMPTY (refilling); EMPTY
  when ``M <= Mmin``. The band ``(Mmin, Mthr)`` is the hysteresis: a draining buffer stays
  WARNING and a refilling one stays CHARGING until it leaves the band.
* **Who is served in which state.** QKDNetSim's states only label the buffer; the twin uses them
  as an admission policy: READY and WARNING serve every request; CHARGING serves only
  ``critical`` requests (Type-I one-time-pad control, main paper Table 1 and its "key continuity"
  constraint: critical loops must never be starved) and refuses the rest until ``Mthr`` is
  regained, so bulk consumers cannot keep a recovering link pinned at the bottom;
  ``charging_serves_critical=False`` gives the strict variant that refuses everything until
  ``Mthr``. EMPTY serves nothing.
* **Mmin is a reserve.** QKDNetSim's ``Mmin`` is "the minimum amount of key required to
  establish initial post-processing operations" (authentication of the next QKD round), so
  consumers never take a buffer below ``Mmin``: the bits a request may use are
  ``buffered - Mmin``. Reserve bits leave only by expiry or destruction. With the default
  ``min_bits=0`` EMPTY means exactly zero bits.
* **Requests are all or nothing** and take the OLDEST bits first (FIFO). A refused request
  changes nothing but the refusal counters; partial consumption never happens silently.
* **Capacity is tail-drop:** bits generated beyond ``capacity_bits`` (``Mmax``) are discarded
  (the new ones, as QKDNetSim's ``AddNewKey`` refuses keys over ``Mmax``); they still receive
  key ids, so the id space stays a partition of ``[0, generated)``.
* **Age:** a chunk with birth ``birth_ns`` is usable while ``t_ns - birth_ns <= max_age_ns``;
  every operation first expires what is older at its ``t_ns``, so a stale key is never served
  even if the caller forgets :meth:`KeyBuffer.expire`. Time never runs backwards in a buffer.
* **Coalescing bounds memory** (a choice of this twin, for day-long runs): bits generated less
  than ``coalesce_window_ns`` after the birth of the newest chunk take that OLDER birth, and
  merge into that chunk when their ids follow on. A bit generated at ``t`` thus carries a birth
  ``b`` with ``t - window < b <= t``: it is never served past ``max_age_ns`` (``b <= t``) and
  expires at a true age above ``max_age_ns - window`` (up to one window early, counted in
  ``expired`` as usual). Adjacent chunks have equal births or births at least one window
  apart, so a buffer holds at most ``max_age_ns // window + 1`` distinct births; chunks exceed
  that only by the gaps that capacity discards leave in the buffered ids (at most one per
  generate that discarded bits). The default window is ``max_age_ns // 1024``: keys expire at
  most 0.1 % of ``max_age_ns`` early, a buffer holds at most 1025 births (for lifetimes over
  1 ms), and a 24 h lifetime gives 84.375 s. Without a ``max_age_ns`` the window is 60 s
  (births then only feed :attr:`KeyBuffer.oldest_birth_ns`); 0 merges only bits of the same
  instant. Measured on one buffer over a simulated day (1 s ticks, 1000 bits generated per
  tick, 256 consumed every 10th, 24 h lifetime): 84,214 chunks and 15.9 MB without coalescing
  (one chunk per tick), 992 chunks and 0.17 MB with the default; 1,200 such buffers over 6,000
  ticks: 1.2 GB and 7.1 M garbage-collector-tracked objects (1.2 s full collections) with one
  list per tick, 41 MB and 22 k with coalesced tuples.
* **Trusted relay** (survey paper, Sec. "Trusted relays": Charlie sends ``k1 XOR k2`` so Alice
  and Bob share a key): delivering ``b`` end-to-end bits over a path of ``k`` QKD links spends
  ``b`` bits of link key on every hop and credits ``b`` bits to the end-to-end pool, all or
  nothing, at one instant (:func:`relay_key` is the single place where relay accounting
  happens). :func:`relay_envelopes` expresses a completed relay as KEY_RELAY messages with
  per-hop delays for the message path and timing; the messages move no bits.
* **Security modes** (main paper Table 1): Type-I one-time pad, key bits = data bits; Type-II
  AES-256-GCM, a 256-bit key at session start and every 10 s; Type-III AES-128 batch keys, one
  128-bit group key per batch of ``devices_per_batch`` devices per ``rekey_interval_ns``
  (defaults 1000 devices and 1 h: assumptions, scenario parameters); Type-IV PQC, no quantum key.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from twin.network.messages import Envelope, MessageKind
from twin.network.traffic import TrafficClass
from twin.units import NS_PER_S

__all__ = [
    "KEY_FRACTION_BITS",
    "KeyRateBank",
    "AES128_KEY_BITS",
    "AES256_KEY_BITS",
    "COALESCE_BIRTHS_PER_MAX_AGE",
    "DEFAULT_COALESCE_WINDOW_NS",
    "SECURITY_MODES",
    "BufferState",
    "KeyBuffer",
    "KeyDemand",
    "KeyLedger",
    "KeyRange",
    "KeyRateAccumulator",
    "RelayResult",
    "SecurityMode",
    "key_demand_bits",
    "relay_envelopes",
    "relay_key",
    "total_ledger",
]

AES256_KEY_BITS = 256  # AES-256 key length (FIPS 197)
AES128_KEY_BITS = 128  # AES-128 key length (FIPS 197)
COALESCE_BIRTHS_PER_MAX_AGE = 1024  # choice: default window max_age // 1024 (module notes)
DEFAULT_COALESCE_WINDOW_NS = 60 * NS_PER_S  # choice: the window without a max_age


def _as_int(value: object, name: str, *, minimum: int = 0) -> int:
    """An integer argument (Python or numpy int) >= minimum; floats are refused, never rounded."""
    if type(value) is int and value >= minimum:  # the hot path
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be an integer (key bits and ns timestamps are never floats), got "
            f"{value!r}; use KeyRateAccumulator to turn a bit rate into whole bits"
        )
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


# --- states and records ----------------------------------------------------------------------


class BufferState(enum.IntEnum):
    """QKDNetSim buffer states (the integer codes of the ns-3 module's QKDSTATUS_*)."""

    READY = 0
    """M >= Mthr: serves every request"""
    WARNING = 1
    """Mmin < M < Mthr after READY (draining): still serves every request"""
    CHARGING = 2
    """Mmin < M < Mthr after EMPTY (refilling): serves critical requests only (by default)"""
    EMPTY = 3
    """M <= Mmin: serves nothing"""


class KeyRange(NamedTuple):
    """Key ids ``[start, stop)`` of one buffer (ids are per buffer, in generation order).

    A NamedTuple: cheap on the per-tick path and a plain list on the wire.
    """

    buffer: str
    start: int
    stop: int

    @property
    def bits(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True, slots=True)
class KeyLedger:
    """Cumulative fates of a buffer's (or a set of buffers') key bits."""

    generated_bits: int = 0
    consumed_bits: int = 0
    expired_bits: int = 0
    discarded_bits: int = 0
    destroyed_bits: int = 0
    buffered_bits: int = 0

    def __add__(self, other: KeyLedger) -> KeyLedger:
        return KeyLedger(
            self.generated_bits + other.generated_bits,
            self.consumed_bits + other.consumed_bits,
            self.expired_bits + other.expired_bits,
            self.discarded_bits + other.discarded_bits,
            self.destroyed_bits + other.destroyed_bits,
            self.buffered_bits + other.buffered_bits,
        )

    @property
    def balanced(self) -> bool:
        """generated == consumed + expired + discarded + destroyed + buffered."""
        return self.generated_bits == (
            self.consumed_bits
            + self.expired_bits
            + self.discarded_bits
            + self.destroyed_bits
            + self.buffered_bits
        )

    def as_dict(self) -> dict[str, int]:
        """The ``keys`` block of metrics.json."""
        return {
            "generated_bits": self.generated_bits,
            "consumed_bits": self.consumed_bits,
            "expired_bits": self.expired_bits,
            "discarded_bits": self.discarded_bits,
            "destroyed_bits": self.destroyed_bits,
            "buffered_bits": self.buffered_bits,
        }


def total_ledger(buffers: Iterable[KeyBuffer]) -> KeyLedger:
    """Sum of the ledgers of ``buffers`` (integer sums: the order does not matter)."""
    total = KeyLedger()
    for buffer in buffers:
        total = total + buffer.ledger()
    return total


# --- the rate accumulator ----------------------------------------------------------------------


class KeyRateAccumulator:
    """Turns a float secret-key rate times an int-ns tick into whole bits, exactly.

    Each call adds ``rate_bps * dt_ns / NS_PER_S`` bits, computed exactly from the float's
    binary value (a float is ``n / 2**k``), to the fractional remainder carried from earlier
    calls, and returns the whole part. Over any sequence of calls the returned bits sum to
    ``floor(sum(rate_i * dt_i))`` exactly: no bit is lost or invented by rounding, and the result
    depends on nothing but the sequence of (rate, dt). Integer arithmetic only (no Fraction on
    the hot path).
    """

    __slots__ = ("_remainder", "_shift")

    def __init__(self) -> None:
        # the carried remainder is _remainder / (NS_PER_S * 2**_shift) bits, in [0, 1)
        self._remainder = 0
        self._shift = 0

    def step(self, rate_bps: float, dt_ns: int) -> int:
        """Whole key bits produced at ``rate_bps`` (bit/s, finite, >= 0) over ``dt_ns``."""
        if type(rate_bps) is float and type(dt_ns) is int and 0.0 <= rate_bps < math.inf:
            rate = rate_bps  # the hot path: already a finite, non-negative float (not NaN)
            if dt_ns < 0:
                raise ValueError(f"dt_ns must be >= 0, got {dt_ns}")
        else:
            dt_ns = _as_int(dt_ns, "dt_ns")
            rate = float(rate_bps)
            if not math.isfinite(rate) or rate < 0.0:
                raise ValueError(f"rate_bps must be finite and >= 0, got {rate_bps!r}")
        numerator, denominator = rate.as_integer_ratio()  # denominator is a power of two
        shift = denominator.bit_length() - 1
        if shift > self._shift:
            self._remainder <<= shift - self._shift
            self._shift = shift
        else:
            numerator <<= self._shift - shift
        bits, self._remainder = divmod(self._remainder + numerator * dt_ns, NS_PER_S << self._shift)
        return bits

    @property
    def remainder_bits(self) -> Fraction:
        """The carried fraction of a bit, in [0, 1)."""
        return Fraction(self._remainder, NS_PER_S << self._shift)

    def reset(self) -> None:
        """Drop the carried fraction (it was never a generated bit, so no ledger changes)."""
        self._remainder = 0
        self._shift = 0


KEY_FRACTION_BITS = 16
"""A :class:`KeyRateBank` resolves a link's key per tick to 2**-16 bit."""


class KeyRateBank:
    """Whole key bits from float secret-key rates, for many links at once (vectorised).

    Each :meth:`step` adds ``floor(rate_bps * dt_s * 2**16)`` (the tick's key in units of
    2**-16 bit; one float64 product, so the same on every IEEE machine) to a link's int64
    accumulator and hands out its whole bits; the fraction carries to the next tick. Integer
    accounting throughout: over any run a link's bits are ``floor(sum_i q_i / 2**16)`` of its
    quantised steps ``q_i``, no bit invented or lost by the carry; the quantisation drops less
    than 2**-16 bit per tick (about 1.3 bits a day at 1 s ticks), against the exact rational
    :class:`KeyRateAccumulator`, which costs a Python call per link and tick. Rates up to
    ~1e14 bit/s fit the int64 accumulator.
    """

    def __init__(self) -> None:
        self._store = np.zeros(0, dtype=np.int64)  # grows by doubling; the first _n are links
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def _acc(self) -> np.ndarray:
        return self._store[: self._n]

    def add_links(self, n: int) -> None:
        """Append ``n`` links with empty accumulators (their slots follow the existing ones);
        amortised O(n), since links keep appearing all day, a few per tick."""
        n = _as_int(n, "n")
        if self._n + n > self._store.size:
            grown = np.zeros(max(self._n + n, 2 * self._store.size, 64), dtype=np.int64)
            grown[: self._n] = self._acc
            self._store = grown
        self._n += n

    def step(self, slots: np.ndarray, rate_bps: np.ndarray, dt_ns: int) -> np.ndarray:
        """Whole bits per slot for one tick; a slot given twice (two quantum edges of one
        pair) adds both rates. Returns an int64 array the length of the bank (0 elsewhere)."""
        rate = np.asarray(rate_bps, dtype=np.float64)
        if rate.size and not (np.all(np.isfinite(rate)) and np.all(rate >= 0.0)):
            raise ValueError(f"rate_bps must be finite and >= 0, got {rate[~(rate >= 0)][:3]}")
        dt_s = _as_int(dt_ns, "dt_ns") / NS_PER_S
        quanta = np.floor(rate * dt_s * float(1 << KEY_FRACTION_BITS)).astype(np.int64)
        acc = self._acc
        np.add.at(acc, slots, quanta)
        bits = acc >> KEY_FRACTION_BITS
        acc &= (1 << KEY_FRACTION_BITS) - 1
        return bits


# --- the buffer --------------------------------------------------------------------------------


class KeyBuffer:
    """Key material of one QKD link or one end-to-end site-pair pool (integer bits, FIFO chunks).

    Parameters: ``capacity_bits`` (QKDNetSim's Mmax), ``threshold_bits`` (Mthr, default half
    the capacity), ``min_bits`` (Mmin, a reserve consumers never touch, default 0),
    ``max_age_ns`` (None: keys never expire), ``charging_serves_critical`` (whether CHARGING
    admits critical requests), ``coalesce_window_ns`` (None: the default of the module notes,
    ``max_age_ns // 1024`` or 60 s without an age limit; 0: merge only bits of one instant; at
    most ``max_age_ns``). Every operation takes the current time ``t_ns`` (int ns, never
    decreasing for one buffer) and first expires keys older than ``max_age_ns``.

    The chunks ``(start_id, stop_id, birth_ns)`` sit oldest first in a deque: generate appends
    or extends the newest, expiry and consumption pop or split the oldest, so each operation
    costs O(1) plus the chunks it removes (amortised O(1)). Chunks are tuples of ints, which
    the cyclic garbage collector stops tracking, so many long-lived buffers cost it nothing.
    """

    __slots__ = (
        "name",
        "capacity_bits",
        "threshold_bits",
        "min_bits",
        "max_age_ns",
        "charging_serves_critical",
        "coalesce_window_ns",
        "_chunks",
        "_buffered",
        "_next_id",
        "_consumed",
        "_expired",
        "_discarded",
        "_destroyed",
        "_state",
        "_last_t_ns",
        "refused_requests",
        "refused_bits",
    )

    def __init__(
        self,
        name: str,
        capacity_bits: int,
        *,
        threshold_bits: int | None = None,
        min_bits: int = 0,
        max_age_ns: int | None = None,
        charging_serves_critical: bool = True,
        coalesce_window_ns: int | None = None,
    ) -> None:
        capacity_bits = _as_int(capacity_bits, "capacity_bits", minimum=1)
        min_bits = _as_int(min_bits, "min_bits")
        if threshold_bits is None:
            threshold_bits = max(capacity_bits // 2, min_bits + 1)
        threshold_bits = _as_int(threshold_bits, "threshold_bits")
        if not min_bits < threshold_bits <= capacity_bits:
            raise ValueError(
                f"buffer {name!r} needs min_bits < threshold_bits <= capacity_bits "
                f"(QKDNetSim's Mmin < Mthr <= Mmax), got {min_bits}, {threshold_bits}, "
                f"{capacity_bits}"
            )
        if max_age_ns is not None:
            max_age_ns = _as_int(max_age_ns, "max_age_ns")
        if coalesce_window_ns is None:
            coalesce_window_ns = (
                DEFAULT_COALESCE_WINDOW_NS
                if max_age_ns is None
                else max_age_ns // COALESCE_BIRTHS_PER_MAX_AGE
            )
        coalesce_window_ns = _as_int(coalesce_window_ns, "coalesce_window_ns")
        if max_age_ns is not None and coalesce_window_ns > max_age_ns:
            raise ValueError(
                f"buffer {name!r}: coalesce_window_ns {coalesce_window_ns} exceeds max_age_ns "
                f"{max_age_ns}, so fresh keys could expire at once; pass a window of at most "
                f"max_age_ns (None picks max_age_ns // {COALESCE_BIRTHS_PER_MAX_AGE})"
            )
        self.name = str(name)
        self.capacity_bits = capacity_bits
        self.threshold_bits = threshold_bits
        self.min_bits = min_bits
        self.max_age_ns = max_age_ns
        self.charging_serves_critical = bool(charging_serves_critical)
        self.coalesce_window_ns = coalesce_window_ns
        # chunks (start_id, stop_id, birth_ns), oldest first; ids increase, births never decrease
        self._chunks: deque[tuple[int, int, int]] = deque()
        self._buffered = 0
        self._next_id = 0  # == generated bits: every generated bit got one id
        self._consumed = 0
        self._expired = 0
        self._discarded = 0
        self._destroyed = 0
        self._state = BufferState.EMPTY
        self._last_t_ns: int | None = None
        self.refused_requests = 0
        self.refused_bits = 0

    def __repr__(self) -> str:
        return (
            f"KeyBuffer({self.name!r}, {self._buffered}/{self.capacity_bits} bits, "
            f"{self._state.name})"
        )

    # -- read-only views --

    @property
    def state(self) -> BufferState:
        return self._state

    @property
    def buffered_bits(self) -> int:
        return self._buffered

    @property
    def available_bits(self) -> int:
        """Bits a request may take now, ignoring the state gate (everything above Mmin)."""
        return max(self._buffered - self.min_bits, 0)

    @property
    def free_bits(self) -> int:
        """Room left before generated bits are discarded."""
        return self.capacity_bits - self._buffered

    @property
    def generated_bits(self) -> int:
        return self._next_id

    @property
    def consumed_bits(self) -> int:
        return self._consumed

    @property
    def expired_bits(self) -> int:
        return self._expired

    @property
    def discarded_bits(self) -> int:
        return self._discarded

    @property
    def destroyed_bits(self) -> int:
        return self._destroyed

    @property
    def next_key_id(self) -> int:
        """The id the next generated bit will get."""
        return self._next_id

    @property
    def oldest_birth_ns(self) -> int | None:
        """Birth of the oldest buffered key (a coalesced birth: at most one window early)."""
        return self._chunks[0][2] if self._chunks else None

    @property
    def chunk_count(self) -> int:
        """Chunks held (the buffer's memory is O(chunk_count); see the module notes)."""
        return len(self._chunks)

    def buffered_ranges(self) -> tuple[KeyRange, ...]:
        """The key ids in the buffer, oldest first."""
        return tuple(KeyRange(self.name, c[0], c[1]) for c in self._chunks)

    def buffered_chunks(self) -> tuple[tuple[KeyRange, int], ...]:
        """The chunks, oldest first: their key ids and their (coalesced) birth in ns."""
        return tuple((KeyRange(self.name, c[0], c[1]), c[2]) for c in self._chunks)

    def ledger(self) -> KeyLedger:
        return KeyLedger(
            self._next_id,
            self._consumed,
            self._expired,
            self._discarded,
            self._destroyed,
            self._buffered,
        )

    # -- time and state --

    def _check_time(self, t_ns: object) -> int:
        t_ns = _as_int(t_ns, "t_ns", minimum=-(1 << 62))
        if self._last_t_ns is not None and t_ns < self._last_t_ns:
            raise ValueError(
                f"t_ns {t_ns} is earlier than {self._last_t_ns}, the last time buffer "
                f"{self.name!r} was used: operations on a buffer must come in time order"
            )
        return t_ns

    def _advance(self, t_ns: int) -> None:
        """Move the buffer's clock to ``t_ns`` (already checked) and expire stale chunks."""
        self._last_t_ns = t_ns
        if self.max_age_ns is None:
            return
        chunks = self._chunks
        removed = 0
        while chunks and t_ns - chunks[0][2] > self.max_age_ns:
            start, stop, _ = chunks.popleft()
            removed += stop - start
        if removed:
            self._buffered -= removed
            self._expired += removed
            self._update_state()

    def _update_state(self) -> None:
        bits = self._buffered
        if bits >= self.threshold_bits:
            self._state = BufferState.READY
        elif bits <= self.min_bits:
            self._state = BufferState.EMPTY
        elif self._state in (BufferState.READY, BufferState.WARNING):
            self._state = BufferState.WARNING
        else:  # came up from EMPTY (or stays CHARGING)
            self._state = BufferState.CHARGING

    def admits(self, *, critical: bool = False) -> bool:
        """Whether the current state serves a request of this kind (see the module notes)."""
        state = self._state
        if state is BufferState.READY or state is BufferState.WARNING:
            return True
        if state is BufferState.CHARGING:
            return critical and self.charging_serves_critical
        return False

    def can_take(self, bits: int, *, critical: bool = False) -> bool:
        """Whether :meth:`take` of ``bits`` would succeed now (before any expiry at a later t)."""
        bits = _as_int(bits, "bits")
        return bits == 0 or (self.admits(critical=critical) and bits <= self.available_bits)

    # -- operations --

    def expire(self, t_ns: int) -> int:
        """Remove keys older than ``max_age_ns`` at ``t_ns``; returns the bits expired."""
        t_ns = self._check_time(t_ns)
        before = self._expired
        self._advance(t_ns)
        return self._expired - before

    def generate(self, bits: int, t_ns: int) -> KeyRange | None:
        """Add ``bits`` new key bits born at ``t_ns``; bits beyond capacity are discarded.

        Returns the ids of the bits stored (None when none were), the discarded ones being the
        ``bits - stored`` ids right after them. Within ``coalesce_window_ns`` of the newest
        chunk's birth the stored bits take that older birth (module notes, "Coalescing").
        """
        # the common case, one key rate step extending the newest chunk: no expiry due, room
        # for every bit, within the coalescing window, no discarded ids in between. It does
        # exactly what the general path below does in that case, in a few operations.
        chunks = self._chunks
        last_t = self._last_t_ns
        if type(bits) is int and type(t_ns) is int and bits > 0 and chunks and last_t is not None:
            last_start, last_stop, birth = chunks[-1]
            if (
                t_ns >= last_t
                and last_stop == self._next_id
                and (t_ns == birth or t_ns - birth < self.coalesce_window_ns)
                and self._buffered + bits <= self.capacity_bits
                and (self.max_age_ns is None or t_ns - chunks[0][2] <= self.max_age_ns)
            ):
                self._last_t_ns = t_ns
                stop = last_stop + bits
                chunks[-1] = (last_start, stop, birth)
                self._next_id = stop
                self._buffered += bits
                self._update_state()
                return KeyRange(self.name, last_stop, stop)
        bits = _as_int(bits, "bits")
        t_ns = self._check_time(t_ns)
        self._advance(t_ns)
        if bits == 0:
            return None
        start = self._next_id
        stored = min(bits, self.capacity_bits - self._buffered)
        self._next_id += bits
        self._discarded += bits - stored
        if stored == 0:
            return None
        stop = start + stored
        chunks = self._chunks
        if chunks:
            last_start, last_stop, birth = chunks[-1]
            if t_ns != birth and t_ns - birth >= self.coalesce_window_ns:
                birth = t_ns  # a new birth, at least one window after the newest
                chunks.append((start, stop, birth))
            elif last_stop == start:
                chunks[-1] = (last_start, stop, birth)  # same birth, ids follow on: one chunk
            else:
                chunks.append((start, stop, birth))  # same birth after a gap of discarded ids
        else:
            chunks.append((start, stop, t_ns))
        self._buffered += stored
        self._update_state()
        return KeyRange(self.name, start, stop)

    def take(self, bits: int, t_ns: int, *, critical: bool = False) -> tuple[KeyRange, ...] | None:
        """Remove ``bits`` of the oldest key and return their ids; None (nothing taken) when
        the state refuses the request or fewer than ``bits`` are available above Mmin.

        ``critical`` marks safety-critical (Type-I) consumption, admitted while CHARGING.
        A request of 0 bits always succeeds with an empty tuple.
        """
        return self._request(bits, t_ns, critical, ranges=True)

    def consume(self, bits: int, t_ns: int, *, critical: bool = False) -> bool:
        """:meth:`take` without the ids: True when all ``bits`` were consumed, False when none."""
        return self._request(bits, t_ns, critical, ranges=False) is not None

    def extension_state(self) -> tuple[int, int, int, int, bool]:
        """(buffered bits, birth of the oldest chunk, birth of the newest chunk, the buffer's
        clock, whether the newest chunk can be extended in place): what a batched generator
        (twin.network.nodes) needs to tell whether :meth:`generate` of some bits at some time
        would take the fast path, i.e. only extend the newest chunk. Births and clock are 0
        for an empty, unused buffer (then it cannot be extended)."""
        chunks = self._chunks
        if not chunks:
            return self._buffered, 0, 0, self._last_t_ns or 0, False
        last_start, last_stop, birth = chunks[-1]
        extendable = last_stop == self._next_id and self._last_t_ns is not None
        return self._buffered, chunks[0][2], birth, self._last_t_ns or 0, extendable

    def take_granted(self, bits: int, t_ns: int) -> tuple[KeyRange, ...]:
        """Remove ``bits`` of the oldest key that were promised earlier in the same instant
        under the admission rules (a trusted relay's grant, twin.network.nodes). The state gate
        was applied when the grant was made and is not applied again: a promise stands whatever
        the state is now. (Within the protocol a drain only goes READY -> WARNING -> EMPTY,
        which all serve what was granted, so a gated take would do the same; this says so
        instead of relying on it.) Raises RuntimeError when fewer than ``bits`` are available
        above Mmin (a grant was broken)."""
        bits = _as_int(bits, "bits")
        t_ns = self._check_time(t_ns)
        self._advance(t_ns)
        if bits > self.available_bits:
            raise RuntimeError(
                f"{self.name}: a grant of {bits} bits outlived its key ({self.available_bits} "
                "available): key was spent or expired between grant and commit"
            )
        return self._take_oldest(bits) if bits else ()

    def _request(
        self, bits: int, t_ns: int, critical: bool, *, ranges: bool
    ) -> tuple[KeyRange, ...] | None:
        bits = _as_int(bits, "bits")
        t_ns = self._check_time(t_ns)
        self._advance(t_ns)
        if bits == 0:
            return ()
        if not (self.admits(critical=critical) and bits <= self.available_bits):
            self.refused_requests += 1
            self.refused_bits += bits
            return None
        return self._take_oldest(bits, ranges=ranges)

    def _take_oldest(self, bits: int, *, ranges: bool = True) -> tuple[KeyRange, ...]:
        """Remove the ``bits`` oldest bits (the caller checked they are there)."""
        chunks = self._chunks
        taken: list[KeyRange] = []
        need = bits
        while need:
            start, stop, birth = chunks[0]
            if stop - start <= need:
                chunks.popleft()
                end = stop
            else:
                end = start + need
                chunks[0] = (end, stop, birth)
            if ranges:
                taken.append(KeyRange(self.name, start, end))
            need -= end - start
        self._buffered -= bits
        self._consumed += bits
        self._update_state()
        return tuple(taken)

    def destroy(self, t_ns: int) -> int:
        """Destroy every buffered bit (node compromise or failure, link teardown policy);
        keys already stale at ``t_ns`` count as expired, not destroyed. Returns bits destroyed.
        """
        t_ns = self._check_time(t_ns)
        self._advance(t_ns)
        destroyed = self._buffered
        self._chunks.clear()
        self._buffered = 0
        self._destroyed += destroyed
        self._update_state()
        return destroyed

    def check_ledger(self, *, deep: bool = False) -> None:
        """Raise RuntimeError unless the ledger balances, the buffer is within [0, capacity]
        and the state matches the fill; ``deep`` also walks the chunks (ids ordered, disjoint,
        below ``next_key_id``; births ordered; adjacent births equal or a coalescing window
        apart, and chunks of one birth not mergeable; their bits sum to ``buffered_bits``).
        """
        ledger = self.ledger()
        if not ledger.balanced:
            raise RuntimeError(f"key ledger of {self.name!r} does not balance: {ledger}")
        if not 0 <= self._buffered <= self.capacity_bits:
            raise RuntimeError(
                f"buffer {self.name!r} holds {self._buffered} bits, outside "
                f"[0, {self.capacity_bits}]"
            )
        bits = self._buffered
        expected = {
            BufferState.READY: bits >= self.threshold_bits,
            BufferState.EMPTY: bits <= self.min_bits,
            BufferState.WARNING: self.min_bits < bits < self.threshold_bits,
            BufferState.CHARGING: self.min_bits < bits < self.threshold_bits,
        }[self._state]
        if not expected:
            raise RuntimeError(f"buffer {self.name!r} is {self._state.name} with {bits} bits")
        if not deep:
            return
        total = 0
        previous_stop = 0
        previous_birth: int | None = None
        for start, stop, birth in self._chunks:
            if not previous_stop <= start < stop <= self._next_id:
                raise RuntimeError(f"buffer {self.name!r} has overlapping or bad key ids")
            if previous_birth is not None and birth < previous_birth:
                raise RuntimeError(f"buffer {self.name!r} has chunks out of birth order")
            if previous_birth is not None and (
                0 < birth - previous_birth < self.coalesce_window_ns
                or (birth == previous_birth and start == previous_stop)
            ):
                raise RuntimeError(f"buffer {self.name!r} has chunks it should have coalesced")
            total += stop - start
            previous_stop, previous_birth = stop, birth
        if total != self._buffered:
            raise RuntimeError(
                f"buffer {self.name!r}: chunks hold {total} bits, counter says {self._buffered}"
            )


# --- trusted relay -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayResult:
    """Outcome of :func:`relay_key`. Truthy when the key was delivered."""

    delivered: bool
    bits: int
    hop_keys: tuple[tuple[KeyRange, ...], ...] = ()
    """per hop, the link key ids spent on it (empty when not delivered)"""
    pool_keys: tuple[KeyRange, ...] = ()
    """the ids the end-to-end pool gave the delivered key"""
    blocked_hop: int | None = None
    """index of the first hop that could not serve (None if delivered or the pool was full)"""
    reason: str = ""

    def __bool__(self) -> bool:
        return self.delivered


def relay_key(
    path_link_buffers: Sequence[KeyBuffer],
    e2e_pool: KeyBuffer,
    bits: int,
    t_ns: int,
    *,
    critical: bool = False,
) -> RelayResult:
    """Deliver ``bits`` of end-to-end key over a trusted-relay path, all or nothing.

    Hop-by-hop one-time-pad forwarding (survey paper, "Trusted relays": a relay holding
    ``k1`` with one neighbour and ``k2`` with the next publishes ``k1 XOR k2``): each of the
    ``k`` link buffers spends ``bits`` (oldest first) and ``e2e_pool`` gains ``bits`` born at
    ``t_ns``. If any hop cannot serve ``bits`` (state gate or too few bits above Mmin), or the
    pool has less than ``bits`` of room (link keys would be burnt for nothing), no key is spent
    anywhere. Every buffer is first brought to ``t_ns`` (stale keys expire, which is not
    spending). ``critical`` is passed to every hop's admission (a Type-I pool refill).
    """
    bits = _as_int(bits, "bits")
    if len(path_link_buffers) == 0:
        raise ValueError("path_link_buffers is empty: a relay path needs at least one QKD link")
    ids = [id(b) for b in path_link_buffers]
    if len(set(ids)) != len(ids) or id(e2e_pool) in ids:
        names = [b.name for b in path_link_buffers]
        raise ValueError(
            f"relay path {names} -> pool {e2e_pool.name!r} uses a buffer twice; a trusted-relay "
            "path visits each link once and the pool is not a link"
        )
    # validate every clock before touching anything, so an error leaves nothing half-done
    t_ns = e2e_pool._check_time(t_ns)
    for buffer in path_link_buffers:
        buffer._check_time(t_ns)
    for buffer in path_link_buffers:
        buffer._advance(t_ns)
    e2e_pool._advance(t_ns)
    if bits == 0:
        return RelayResult(True, 0, tuple(() for _ in path_link_buffers))
    for hop, buffer in enumerate(path_link_buffers):
        if not buffer.can_take(bits, critical=critical):
            buffer.refused_requests += 1
            buffer.refused_bits += bits
            return RelayResult(
                False,
                bits,
                blocked_hop=hop,
                reason=f"hop {hop} ({buffer.name}) cannot serve {bits} bits "
                f"({buffer.state.name}, {buffer.available_bits} available)",
            )
    if e2e_pool.free_bits < bits:
        return RelayResult(
            False,
            bits,
            reason=f"pool {e2e_pool.name} has room for {e2e_pool.free_bits} of {bits} bits",
        )
    hop_keys = tuple(buffer._take_oldest(bits) for buffer in path_link_buffers)
    stored = e2e_pool.generate(bits, t_ns)
    if stored is None or stored.bits != bits:
        raise RuntimeError(f"pool {e2e_pool.name!r} lost relayed key bits despite free room")
    return RelayResult(True, bits, hop_keys, (stored,))


def relay_envelopes(
    relay: RelayResult,
    path_nodes: Sequence[str],
    hop_delays_ns: Sequence[int],
    t_ns: int,
    next_seq: Callable[[str], int],
    relay_id: str,
) -> list[Envelope]:
    """The KEY_RELAY messages of a delivered relay, store-and-forward along ``path_nodes``.

    Hop ``i`` goes from ``path_nodes[i]`` to ``path_nodes[i+1]``, sent when the previous hop
    arrived (``t_ns`` for the first) and arriving ``hop_delays_ns[i]`` later; the last arrival is
    the time the destination holds the key. ``next_seq(src)`` hands out the sender's sequence
    numbers. The payload (msgpack-able) names the relay, the hop, the link buffer and the key
    ids spent on it, and the pool with its key ids. The messages carry no accounting: the bits
    were moved by :func:`relay_key`. A relay that was not delivered sends nothing.
    """
    if not relay.delivered:
        return []
    hops = len(relay.hop_keys)
    if len(path_nodes) != hops + 1 or len(hop_delays_ns) != hops:
        raise ValueError(
            f"a relay over {hops} links needs {hops + 1} path_nodes and {hops} hop_delays_ns, "
            f"got {len(path_nodes)} and {len(hop_delays_ns)}"
        )
    send_ns = _as_int(t_ns, "t_ns", minimum=-(1 << 62))
    pool_keys = [[r.start, r.stop] for r in relay.pool_keys]
    pool = relay.pool_keys[0].buffer if relay.pool_keys else ""
    envelopes = []
    for hop in range(hops):
        delay_ns = _as_int(hop_delays_ns[hop], f"hop_delays_ns[{hop}]")
        src, dst = path_nodes[hop], path_nodes[hop + 1]
        ranges = relay.hop_keys[hop]
        payload = {
            "relay_id": relay_id,
            "hop": hop,
            "hops": hops,
            "bits": relay.bits,
            "link": ranges[0].buffer if ranges else "",
            "link_keys": [[r.start, r.stop] for r in ranges],
            "pool": pool,
            "pool_keys": pool_keys,
        }
        arrival_ns = send_ns + delay_ns
        envelopes.append(
            Envelope(src, dst, MessageKind.KEY_RELAY, send_ns, next_seq(src), arrival_ns, payload)
        )
        send_ns = arrival_ns
    return envelopes


# --- security modes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyDemand:
    """Key bits a flow needs this tick, and its rekey time if those bits are obtained."""

    bits: int
    last_rekey_ns: int | None
    rekeys: int


@dataclass(frozen=True, slots=True)
class SecurityMode:
    """How a traffic class turns data into quantum key demand (main paper Table 1).

    ``one_time_pad``: key bits = data bits. Otherwise a session key of ``key_bits`` per batch of
    ``devices_per_batch`` devices is drawn when the flow first sends, and again every
    ``rekey_interval_ns`` while it sends (None: never rekeyed). ``key_bits == 0``: no quantum key.
    """

    name: str
    one_time_pad: bool = False
    key_bits: int = 0
    rekey_interval_ns: int | None = None
    devices_per_batch: int = 1

    def __post_init__(self) -> None:
        _as_int(self.key_bits, "key_bits")
        _as_int(self.devices_per_batch, "devices_per_batch", minimum=1)
        if self.rekey_interval_ns is not None:
            _as_int(self.rekey_interval_ns, "rekey_interval_ns", minimum=1)

    def key_demand(
        self,
        data_bits: int,
        t_ns: int,
        dt_ns: int,
        last_rekey_ns: int | None,
        *,
        devices: int = 1,
    ) -> KeyDemand:
        """Key bits needed in the tick ``[t_ns, t_ns + dt_ns)`` for ``data_bits`` of data.

        ``last_rekey_ns`` is the flow's last rekey (None: no key yet). An idle tick
        (``data_bits == 0``) needs nothing. A flow whose key is missing or older than
        ``rekey_interval_ns`` rekeys at ``t_ns``; further rekeys follow every interval inside
        the tick. Commit the returned ``last_rekey_ns`` only if the bits were obtained.
        """
        data_bits = _as_int(data_bits, "data_bits")
        t_ns = _as_int(t_ns, "t_ns", minimum=-(1 << 62))
        dt_ns = _as_int(dt_ns, "dt_ns", minimum=1)
        devices = _as_int(devices, "devices", minimum=1)
        if data_bits == 0:
            return KeyDemand(0, last_rekey_ns, 0)
        if self.one_time_pad:
            return KeyDemand(data_bits, last_rekey_ns, 0)
        if self.key_bits == 0:
            return KeyDemand(0, last_rekey_ns, 0)
        interval = self.rekey_interval_ns
        rekeys = 0
        last = last_rekey_ns
        if last is None or (interval is not None and last + interval <= t_ns):
            last, rekeys = t_ns, 1
        if interval is not None:
            # rekeys at last + k * interval (k >= 1) that fall before the tick ends
            extra = max((t_ns + dt_ns - 1 - last) // interval, 0)
            last += extra * interval
            rekeys += extra
        batches = -(-devices // self.devices_per_batch)
        return KeyDemand(rekeys * batches * self.key_bits, last, rekeys)


SECURITY_MODES: Mapping[TrafficClass, SecurityMode] = MappingProxyType(
    {
        # Table 1: information-theoretic security, R_key ~ R_data
        TrafficClass.TYPE_I: SecurityMode("otp", one_time_pad=True),
        # Table 1: AES-256-GCM, "256 bits every 10 s"
        TrafficClass.TYPE_II: SecurityMode(
            "aes-256-gcm", key_bits=AES256_KEY_BITS, rekey_interval_ns=10 * NS_PER_S
        ),
        # Table 1: AES-128 "batch keys"; the batch (1000 devices share a group key, rekeyed
        # hourly) is an assumption of this model, a scenario parameter
        TrafficClass.TYPE_III: SecurityMode(
            "aes-128-batch",
            key_bits=AES128_KEY_BITS,
            rekey_interval_ns=3600 * NS_PER_S,
            devices_per_batch=1000,
        ),
        # Table 1: PQC / TLS, zero quantum key
        TrafficClass.TYPE_IV: SecurityMode("pqc"),
    }
)


def key_demand_bits(
    traffic_class: TrafficClass,
    data_bits: int,
    t_ns: int,
    dt_ns: int,
    last_rekey_ns: int | None,
    *,
    devices: int = 1,
    modes: Mapping[TrafficClass, SecurityMode] = SECURITY_MODES,
) -> KeyDemand:
    """:meth:`SecurityMode.key_demand` of ``traffic_class`` under ``modes`` (default Table 1)."""
    try:
        mode = modes[traffic_class]
    except KeyError:
        raise ValueError(
            f"no security mode for traffic class {traffic_class!r}; pass one of "
            f"{sorted(str(k) for k in modes)} or add it to modes"
        ) from None
    return mode.key_demand(data_bits, t_ns, dt_ns, last_rekey_ns, devices=devices)
