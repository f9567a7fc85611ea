"""Key buffers, exact accounting, trusted relay and security-mode key demand (issue 3)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.network.keys import (
    COALESCE_BIRTHS_PER_MAX_AGE,
    DEFAULT_COALESCE_WINDOW_NS,
    SECURITY_MODES,
    BufferState,
    KeyBuffer,
    KeyLedger,
    KeyRange,
    KeyRateAccumulator,
    SecurityMode,
    key_demand_bits,
    relay_envelopes,
    relay_key,
    total_ledger,
)
from twin.network.messages import MessageKind
from twin.network.traffic import TrafficClass
from twin.units import NS_PER_S

S = NS_PER_S
READY, WARNING, CHARGING, EMPTY = (
    BufferState.READY,
    BufferState.WARNING,
    BufferState.CHARGING,
    BufferState.EMPTY,
)


# --- rate accumulator ------------------------------------------------------------------------


def test_accumulator_keeps_the_fraction_a_float_running_sum_loses():
    # 0.1 bit/s for ten 1 s ticks: the float 0.1 is slightly above 1/10, so exactly one bit.
    # A float running sum (0.1 + 0.1 + ...) reaches 0.9999999999999999 and floors to 0.
    acc = KeyRateAccumulator()
    assert sum(acc.step(0.1, S) for _ in range(10)) == 1
    assert math.floor(sum([0.1] * 10)) == 0
    # 2.5 bit/s over 1 s ticks alternates 2, 3, 2, 3 ...
    acc = KeyRateAccumulator()
    assert [acc.step(2.5, S) for _ in range(4)] == [2, 3, 2, 3]
    assert acc.remainder_bits == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.floats(0.0, 1e7, allow_nan=False),
                st.floats(0.0, 1e-3, allow_nan=False),
                st.sampled_from([0.1, 1 / 3, 2.5, 1234.567, 5e-324]),
            ),
            st.integers(0, 10 * S),
        ),
        max_size=60,
    )
)
def test_accumulator_never_loses_or_invents_a_bit(steps):
    acc = KeyRateAccumulator()
    total_exact = Fraction(0)
    emitted = 0
    for rate, dt_ns in steps:
        bits = acc.step(rate, dt_ns)
        assert isinstance(bits, int) and bits >= 0
        emitted += bits
        total_exact += Fraction(rate) * dt_ns / S
        assert emitted == math.floor(total_exact)
        assert 0 <= acc.remainder_bits < 1
        assert emitted + acc.remainder_bits == total_exact
    fresh = KeyRateAccumulator()  # deterministic: the same steps give the same bits
    assert sum(fresh.step(r, d) for r, d in steps) == emitted


def test_accumulator_rejects_bad_inputs():
    acc = KeyRateAccumulator()
    for rate in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rate_bps"):
            acc.step(rate, S)
    with pytest.raises(ValueError, match="dt_ns must be an integer"):
        acc.step(1.0, 1.5)
    assert acc.step(np.float64(3.0), np.int64(S)) == 3


# --- buffer basics ---------------------------------------------------------------------------


def test_generate_discards_beyond_capacity_and_ids_cover_everything():
    buf = KeyBuffer("L", 100, threshold_bits=50)
    assert buf.generate(70, 0) == KeyRange("L", 0, 70)
    assert buf.generate(50, S) == KeyRange("L", 70, 100)  # ids 100..119 discarded
    assert (buf.buffered_bits, buf.discarded_bits, buf.generated_bits) == (100, 20, 120)
    assert buf.generate(5, 2 * S) is None
    assert buf.ledger() == KeyLedger(125, 0, 0, 25, 0, 100)
    assert buf.next_key_id == 125
    buf.check_ledger(deep=True)


def test_chunks_born_together_stay_apart_across_discarded_ids():
    buf = KeyBuffer("L", 100, threshold_bits=50)
    buf.generate(120, 0)  # ids 0..99 stored, 100..119 discarded
    assert buf.take(30, 0) == (KeyRange("L", 0, 30),)
    assert buf.generate(10, 0) == KeyRange("L", 120, 130)
    assert buf.buffered_ranges() == (KeyRange("L", 30, 100), KeyRange("L", 120, 130))
    buf.check_ledger(deep=True)


def test_consume_takes_oldest_first_and_is_all_or_nothing():
    buf = KeyBuffer("L", 1000, threshold_bits=10, coalesce_window_ns=0)  # one chunk per birth
    buf.generate(30, 0)
    buf.generate(30, S)
    assert buf.take(40, 2 * S) == (KeyRange("L", 0, 30), KeyRange("L", 30, 40))
    assert buf.oldest_birth_ns == S
    assert buf.take(21, 2 * S) is None  # only 20 left: nothing is taken
    assert buf.buffered_bits == 20 and buf.refused_requests == 1 and buf.refused_bits == 21
    assert buf.take(0, 2 * S) == ()
    assert buf.consume(20, 3 * S) is True
    assert buf.buffered_ranges() == ()
    assert buf.ledger() == KeyLedger(60, 60, 0, 0, 0, 0)


def test_expiry_at_max_age_boundary_and_before_serving():
    buf = KeyBuffer("L", 1000, threshold_bits=10, max_age_ns=10 * S)
    buf.generate(50, 0)
    buf.generate(50, 5 * S)
    assert buf.expire(10 * S) == 0  # age == max_age: still usable
    assert buf.expire(10 * S + 1) == 50  # older than max_age
    # consume expires first: at 15 s + 1 ns the second chunk is stale too, nothing to serve
    assert buf.consume(10, 15 * S + 1) is False
    assert buf.ledger() == KeyLedger(100, 0, 100, 0, 0, 0)
    assert buf.state is EMPTY


def test_destroy_counts_stale_keys_as_expired():
    buf = KeyBuffer("L", 1000, threshold_bits=10, max_age_ns=10 * S)
    buf.generate(40, 0)
    buf.generate(60, 8 * S)
    assert buf.destroy(12 * S) == 60
    assert buf.ledger() == KeyLedger(100, 0, 40, 0, 60, 0)
    assert buf.state is EMPTY


def test_min_bits_is_a_reserve_consumers_never_touch():
    buf = KeyBuffer("L", 1000, threshold_bits=100, min_bits=20)
    buf.generate(150, 0)
    assert buf.available_bits == 130
    assert buf.consume(131, 0) is False
    assert buf.consume(130, 0) is True
    assert buf.buffered_bits == 20 and buf.state is EMPTY
    assert buf.consume(1, 0, critical=True) is False


def test_user_errors_name_the_value():
    with pytest.raises(ValueError, match="Mmin < Mthr <= Mmax"):
        KeyBuffer("L", 100, threshold_bits=200)
    with pytest.raises(ValueError, match="Mmin < Mthr <= Mmax"):
        KeyBuffer("L", 100, threshold_bits=10, min_bits=10)
    buf = KeyBuffer("L", 100, threshold_bits=10)
    with pytest.raises(ValueError, match="bits must be an integer"):
        buf.generate(2.5, 0)
    with pytest.raises(ValueError, match="bits must be >= 0"):
        buf.consume(-1, 0)
    buf.generate(5, 10)
    with pytest.raises(ValueError, match="time order"):
        buf.consume(1, 9)
    assert buf.ledger() == KeyLedger(5, 0, 0, 0, 0, 5)  # the refused call changed nothing


# --- coalescing: bounded chunks on long runs ---------------------------------------------------


def test_coalescing_keeps_the_older_birth_so_keys_expire_early_never_late():
    buf = KeyBuffer("L", 1000, threshold_bits=10, max_age_ns=100 * S, coalesce_window_ns=10 * S)
    buf.generate(10, 0)
    buf.generate(10, 5 * S)
    buf.generate(10, 10 * S - 1)  # 1 ns inside the window: still birth 0
    assert buf.chunk_count == 1 and buf.oldest_birth_ns == 0
    buf.generate(10, 10 * S)  # a full window after birth 0: a new birth
    assert buf.chunk_count == 2
    assert buf.buffered_ranges() == (KeyRange("L", 0, 30), KeyRange("L", 30, 40))
    assert buf.expire(100 * S) == 0  # the oldest true age is exactly max_age: kept
    # 1 ns later the bits born at 0, 5 s and 10 s - 1 ns all expire: the last two up to one
    # window early (documented), counted as expired; the chunk born at 10 s stays
    assert buf.expire(100 * S + 1) == 30
    assert buf.buffered_ranges() == (KeyRange("L", 30, 40),)
    assert buf.ledger() == KeyLedger(40, 0, 30, 0, 0, 10)
    buf.check_ledger(deep=True)
    # window 0 merges only bits of one instant (the behaviour before coalescing)
    exact = KeyBuffer("L", 1000, threshold_bits=10, max_age_ns=100 * S, coalesce_window_ns=0)
    for t in (0, 0, 1, 5 * S):
        exact.generate(10, t)
    assert exact.buffered_ranges() == (
        KeyRange("L", 0, 20),
        KeyRange("L", 20, 30),
        KeyRange("L", 30, 40),
    )
    assert exact.expire(100 * S + 1) == 20


def test_bits_after_a_capacity_gap_take_the_older_birth_too():
    buf = KeyBuffer("L", 100, threshold_bits=50, max_age_ns=100 * S, coalesce_window_ns=10 * S)
    buf.generate(120, 0)  # ids 100..119 discarded
    assert buf.consume(30, S)
    assert buf.generate(10, 2 * S) == KeyRange("L", 120, 130)
    # a second chunk (the ids do not follow on) with the older birth: one birth, two chunks
    assert buf.buffered_ranges() == (KeyRange("L", 30, 100), KeyRange("L", 120, 130))
    assert buf.expire(100 * S + 1) == 80
    buf.check_ledger(deep=True)


def test_default_coalescing_windows_and_bad_windows():
    day_ns = 86_400 * S
    assert COALESCE_BIRTHS_PER_MAX_AGE == 1024
    assert KeyBuffer("L", 10, max_age_ns=day_ns).coalesce_window_ns == 84_375_000_000  # 84.4 s
    assert KeyBuffer("L", 10).coalesce_window_ns == DEFAULT_COALESCE_WINDOW_NS == 60 * S
    assert KeyBuffer("L", 10, max_age_ns=1000).coalesce_window_ns == 0  # below 1024 ns
    with pytest.raises(ValueError, match="coalesce_window_ns 11 exceeds max_age_ns 10"):
        KeyBuffer("L", 10, max_age_ns=10, coalesce_window_ns=11)
    with pytest.raises(ValueError, match="coalesce_window_ns must be >= 0"):
        KeyBuffer("L", 10, coalesce_window_ns=-1)
    with pytest.raises(ValueError, match="coalesce_window_ns must be an integer"):
        KeyBuffer("L", 10, coalesce_window_ns=1.5)


def test_a_day_of_one_bit_ticks_keeps_chunks_bounded_and_keys_fresh():
    # 100,000 ticks of 1 s, one bit each (id k is born at k s), 24 h lifetime, default window
    # 84.375 s: at most 86,400 s / 84.375 s + 1 = 1025 births, where one chunk per tick
    # (86,401 after a day) was the behaviour before coalescing
    max_age_ns = 86_400 * S
    buf = KeyBuffer("L", 10**9, threshold_bits=1, max_age_ns=max_age_ns)
    most_chunks = 0
    served = 0
    for k in range(100_000):
        t = k * S
        buf.generate(1, t)
        most_chunks = max(most_chunks, buf.chunk_count)
        if k % 997 == 996:
            taken = buf.take(3, t)
            assert taken is not None
            for r in taken:
                served += r.bits
                assert t - r.start * S <= max_age_ns  # the oldest id taken is within max_age
    assert most_chunks <= 1025
    assert buf.chunk_count >= 1000  # the bound is tight, not vacuous
    # the oldest key kept is at most max_age old; the newest one gone (it expired: the last
    # take was 300 ticks earlier) was older than max_age minus one window
    t_end = 99_999 * S
    oldest_kept = buf.buffered_ranges()[0].start
    assert t_end - oldest_kept * S <= max_age_ns
    assert t_end - (oldest_kept - 1) * S > max_age_ns - buf.coalesce_window_ns
    assert buf.ledger().balanced and served == buf.consumed_bits
    buf.check_ledger(deep=True)
    # without coalescing the same run holds one chunk per tick
    exact = KeyBuffer("L", 10**9, threshold_bits=1, max_age_ns=max_age_ns, coalesce_window_ns=0)
    for k in range(5_000):
        exact.generate(1, k * S)
    assert exact.chunk_count == 5_000


def test_chunks_stay_bounded_under_mixed_load():
    # 0.5 s ticks for 5.6 h: generate 1000 bits a tick, consume 300 (3000 every 10th, popping
    # several chunks), an expiry sweep now and then; the buffer keeps an hour of key, so both
    # consumption and expiry remove chunks. The count settles under its bound (a new birth
    # every 8 ticks: 901 chunks) and stays there: each operation touches O(1) chunks, amortised
    buf = KeyBuffer("L", 10**7, threshold_bits=1, max_age_ns=3_600 * S)  # window 3.52 s
    counts = []
    for k in range(40_000):
        t = k * S // 2
        buf.generate(1_000, t)
        assert buf.consume(3_000 if k % 10 == 0 else 300, t) or k == 0
        if k % 50 == 0:
            buf.expire(t)
        counts.append(buf.chunk_count)
    assert buf.expired_bits > 0 and buf.consumed_bits > 0
    assert max(counts) <= 3_600 * S // buf.coalesce_window_ns + 1 == 1025
    assert 850 < max(counts[20_000:]) <= max(counts[10_000:20_000])  # settled, not growing
    buf.check_ledger(deep=True)


# --- QKDNetSim states --------------------------------------------------------------------------


def test_states_follow_qkdnetsim_with_hysteresis():
    # Mmin = 10, Mthr = 50, Mmax = 100
    buf = KeyBuffer("L", 100, threshold_bits=50, min_bits=10)
    assert buf.state is EMPTY
    trace = []
    t = 0
    for op, bits in [
        ("gen", 10),  # 10 <= Mmin: EMPTY
        ("gen", 20),  # 30, coming from EMPTY: CHARGING
        ("take_crit", 5),  # 25, falling inside the band: still CHARGING
        ("gen", 25),  # 50 >= Mthr: READY
        ("take", 10),  # 40, from READY: WARNING
        ("gen", 5),  # 45, rising inside the band: still WARNING
        ("take", 35),  # 10 <= Mmin: EMPTY
        ("gen", 60),  # 70, straight from EMPTY over Mthr: READY
        ("take", 60),  # 10: straight from READY to EMPTY
    ]:
        t += S
        if op == "gen":
            buf.generate(bits, t)
        else:
            assert buf.consume(bits, t, critical=op == "take_crit")
        trace.append(buf.state)
        buf.check_ledger(deep=True)
    assert trace == [EMPTY, CHARGING, CHARGING, READY, WARNING, WARNING, EMPTY, READY, EMPTY]
    assert [int(s) for s in (READY, WARNING, CHARGING, EMPTY)] == [0, 1, 2, 3]  # QKDSTATUS_*


def test_charging_serves_only_critical_requests_unless_strict():
    for strict in (False, True):
        buf = KeyBuffer("L", 100, threshold_bits=50, charging_serves_critical=not strict)
        buf.generate(30, 0)
        assert buf.state is CHARGING
        assert buf.consume(5, 0) is False  # non-critical waits for Mthr
        assert buf.consume(5, 0, critical=True) is (not strict)
        buf.generate(40, S)
        assert buf.state is READY
        assert buf.consume(5, S) is True
        buf.consume(buf.buffered_bits - 20, S)
        assert buf.state is WARNING
        assert buf.consume(5, S) is True  # WARNING still serves everyone


# --- trusted relay ----------------------------------------------------------------------------


def test_relay_spends_bits_on_every_hop_and_credits_the_pool():
    links = [KeyBuffer(f"L{i}", 1000, threshold_bits=10) for i in range(3)]
    for link in links:
        link.generate(100, 0)
    pool = KeyBuffer("A-B", 1000, threshold_bits=10)
    result = relay_key(links, pool, 64, S)
    assert result and result.bits == 64
    assert [link.buffered_bits for link in links] == [36, 36, 36]
    assert result.hop_keys == tuple((KeyRange(f"L{i}", 0, 64),) for i in range(3))
    assert result.pool_keys == (KeyRange("A-B", 0, 64),)
    assert pool.buffered_bits == 64
    assert total_ledger(links + [pool]) == KeyLedger(364, 192, 0, 0, 0, 172)


def test_relay_is_all_or_nothing_across_the_path():
    links = [KeyBuffer(f"L{i}", 1000, threshold_bits=10) for i in range(3)]
    for bits, link in zip([100, 20, 100], links, strict=True):
        link.generate(bits, 0)
    pool = KeyBuffer("A-B", 1000, threshold_bits=10)
    result = relay_key(links, pool, 64, S)
    assert not result and result.blocked_hop == 1 and "L1" in result.reason
    assert [link.buffered_bits for link in links] == [100, 20, 100]
    assert [link.consumed_bits for link in links] == [0, 0, 0]
    assert pool.generated_bits == 0
    # a pool without room refuses too: link keys are not burnt for nothing
    small_pool = KeyBuffer("A-C", 50, threshold_bits=10)
    result = relay_key([links[0], links[2]], small_pool, 64, S)
    assert not result and result.blocked_hop is None and "room" in result.reason
    assert links[0].buffered_bits == 100 and small_pool.generated_bits == 0


def test_relay_rejects_a_path_that_reuses_a_buffer():
    link = KeyBuffer("L", 1000, threshold_bits=10)
    pool = KeyBuffer("P", 1000, threshold_bits=10)
    with pytest.raises(ValueError, match="twice"):
        relay_key([link, link], pool, 1, 0)
    with pytest.raises(ValueError, match="twice"):
        relay_key([link], link, 1, 0)
    with pytest.raises(ValueError, match="at least one"):
        relay_key([], pool, 1, 0)


def test_relay_envelopes_store_and_forward_timing():
    links = [KeyBuffer(f"L{i}", 1000, threshold_bits=10) for i in range(2)]
    for link in links:
        link.generate(100, 0)
    pool = KeyBuffer("A-B", 1000, threshold_bits=10)
    t_ns = 5 * S
    result = relay_key(links, pool, 32, t_ns)
    seqs: dict[str, int] = {}

    def next_seq(src: str) -> int:
        seqs[src] = seqs.get(src, -1) + 1
        return seqs[src]

    envs = relay_envelopes(result, ["A", "R", "B"], [3_000_000, 4_500_000], t_ns, next_seq, "r1")
    assert [(e.src, e.dst, e.kind) for e in envs] == [
        ("A", "R", MessageKind.KEY_RELAY),
        ("R", "B", MessageKind.KEY_RELAY),
    ]
    assert [(e.t_ns, e.arrival_ns) for e in envs] == [
        (t_ns, t_ns + 3_000_000),
        (t_ns + 3_000_000, t_ns + 7_500_000),
    ]
    assert envs[1].payload["link"] == "L1" and envs[1].payload["link_keys"] == [[0, 32]]
    assert envs[0].payload["pool_keys"] == [[0, 32]] and envs[0].payload["hops"] == 2
    assert all(type(e.to_wire()[6]) is dict for e in envs)
    refused = relay_key(links, pool, 1000, t_ns)
    assert relay_envelopes(refused, ["A", "R", "B"], [1, 1], t_ns, next_seq, "r2") == []
    with pytest.raises(ValueError, match="path_nodes"):
        relay_envelopes(result, ["A", "B"], [1], t_ns, next_seq, "r3")


# --- property test: random operation histories -------------------------------------------------


class ReferenceBuffer:
    """Bit-by-bit model of the documented semantics (one list entry per key bit).

    Each bit keeps its coalesced birth (the rule of the module notes: a bit generated less than
    ``window`` after the newest bit's birth takes that birth) and its true generation time, so
    the model can check that no bit is kept past ``max_age`` of its true birth and none expires
    more than one window early.
    """

    def __init__(self, buf: KeyBuffer, window: int):
        self.cap, self.thr, self.mmin = buf.capacity_bits, buf.threshold_bits, buf.min_bits
        self.max_age, self.strict = buf.max_age_ns, not buf.charging_serves_critical
        self.window = window
        self.bits: list[tuple[int, int, int]] = []  # (key id, coalesced birth_ns, true t_ns)
        self.next_id = 0
        self.counts = dict(consumed=0, expired=0, discarded=0, destroyed=0)
        self.state = EMPTY

    def set_state(self):
        n = len(self.bits)
        if n >= self.thr:
            self.state = READY
        elif n <= self.mmin:
            self.state = EMPTY
        elif self.state in (READY, WARNING):
            self.state = WARNING
        else:
            self.state = CHARGING

    def advance(self, t):
        if self.max_age is None:
            return
        keep = [b for b in self.bits if t - b[1] <= self.max_age]
        gone = len(self.bits) - len(keep)
        assert keep == self.bits[gone:]  # the oldest expire first
        for _, _, true_birth in keep:
            assert t - true_birth <= self.max_age  # never kept past max_age
        for _, _, true_birth in self.bits[:gone]:
            assert t - true_birth > self.max_age - self.window  # at most one window early
        self.counts["expired"] += len(self.bits) - len(keep)
        if len(keep) != len(self.bits):
            self.bits = keep
            self.set_state()

    def can(self, n, critical):
        if n == 0:
            return True
        ok = self.state in (READY, WARNING) or (
            self.state is CHARGING and critical and not self.strict
        )
        return ok and n <= len(self.bits) - self.mmin

    def generate(self, n, t):
        stored = min(n, self.cap - len(self.bits))
        birth = t
        if self.bits and t - self.bits[-1][1] < self.window:
            birth = self.bits[-1][1]  # coalesced: the older birth of the newest bit
        self.bits += [(self.next_id + i, birth, t) for i in range(stored)]
        self.next_id += n
        self.counts["discarded"] += n - stored
        if n:
            self.set_state()

    def take(self, n):
        taken, self.bits = self.bits[:n], self.bits[n:]
        self.counts["consumed"] += n
        self.set_state()
        return [i for i, _, _ in taken]


def expand(ranges):
    return [i for r in ranges for i in range(r.start, r.stop)]


gen_op = st.tuples(st.just("gen"), st.integers(0, 3), st.integers(0, 200))
take_op = st.tuples(st.just("take"), st.integers(0, 3), st.integers(0, 120), st.booleans())
op_strategy = st.one_of(
    gen_op,
    gen_op,
    take_op,
    take_op,
    st.tuples(st.just("expire"), st.integers(0, 3)),
    st.tuples(st.just("destroy"), st.integers(0, 3)),
    st.tuples(
        st.just("relay"),
        st.permutations([0, 1, 2]).flatmap(lambda p: st.integers(1, 3).map(lambda k: p[:k])),
        st.integers(0, 80),
        st.booleans(),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(st.tuples(op_strategy, st.integers(0, 2 * S)), max_size=40),
    on_grid=st.booleans(),
    max_age_s=st.one_of(st.none(), st.integers(1, 20)),
    window_ns=st.sampled_from([None, 0, 1, S // 2, S, 3 * S, 30 * S]),
    min_bits=st.integers(0, 30),
    strict=st.booleans(),
    prefill=st.lists(st.integers(0, 300), min_size=4, max_size=4),
)
def test_random_histories_keep_exact_accounting(
    ops, on_grid, max_age_s, window_ns, min_bits, strict, prefill
):
    if on_grid:  # steps of 0, 1 or 2 whole seconds, so ages land exactly on max_age and windows
        ops = [(op, dt % 3 * S) for op, dt in ops]
    max_age_ns = None if max_age_s is None else max_age_s * S
    if window_ns is None:  # the documented default
        window = DEFAULT_COALESCE_WINDOW_NS if max_age_ns is None else max_age_ns // 1024
    else:
        window = window_ns if max_age_ns is None else min(window_ns, max_age_ns)
    buffers = [
        KeyBuffer(
            name,
            300,
            threshold_bits=120,
            min_bits=min_bits,
            max_age_ns=max_age_ns,
            charging_serves_critical=not strict,
            coalesce_window_ns=None if window_ns is None else window,
        )
        for name in ("L0", "L1", "L2", "pool")
    ]
    assert all(b.coalesce_window_ns == window for b in buffers)
    refs = [ReferenceBuffer(b, window) for b in buffers]
    pool, pool_ref = buffers[3], refs[3]
    spent: dict[str, set[int]] = {b.name: set() for b in buffers}
    true_birth: dict[str, dict[int, int]] = {b.name: {} for b in buffers}

    def generate(i, n, t):
        stored = buffers[i].generate(n, t)
        if stored is not None:
            true_birth[buffers[i].name].update(dict.fromkeys(range(stored.start, stored.stop), t))
        refs[i].generate(n, t)
        return stored

    for i, bits in enumerate(prefill):
        generate(i, bits, 0)
    t = 0

    def record_spent(name, ids):
        assert not spent[name].intersection(ids), "a key id was spent twice"
        assert len(set(ids)) == len(ids)
        if max_age_ns is not None:  # never served past max_age of its true birth
            assert all(t - true_birth[name][i] <= max_age_ns for i in ids)
        spent[name].update(ids)

    for op, dt in ops:
        t += dt
        kind = op[0]
        if kind == "gen":
            _, i, n = op
            refs[i].advance(t)
            room = refs[i].cap - len(refs[i].bits)
            stored = generate(i, n, t)
            assert (stored.bits if stored else 0) == min(n, room)
        elif kind == "take":
            _, i, n, critical = op
            refs[i].advance(t)
            expected = refs[i].can(n, critical)
            got = buffers[i].take(n, t, critical=critical)
            assert (got is not None) == expected
            if got is not None:
                ids = expand(got)
                assert ids == refs[i].take(n)  # oldest first, exactly n
                record_spent(buffers[i].name, ids)
        elif kind == "expire":
            _, i = op
            before = refs[i].counts["expired"]
            refs[i].advance(t)
            assert buffers[i].expire(t) == refs[i].counts["expired"] - before
        elif kind == "destroy":
            _, i = op
            refs[i].advance(t)
            assert buffers[i].destroy(t) == len(refs[i].bits)
            refs[i].counts["destroyed"] += len(refs[i].bits)
            refs[i].bits = []
            refs[i].set_state()
        else:
            _, hops, n, critical = op
            path = [buffers[h] for h in hops]
            for h in hops:
                refs[h].advance(t)
            pool_ref.advance(t)
            consumed_before = [b.consumed_bits for b in buffers]
            expected = all(refs[h].can(n, critical) for h in hops) and (
                n <= pool_ref.cap - len(pool_ref.bits)
            )
            result = relay_key(path, pool, n, t, critical=critical)
            assert result.delivered == expected
            if result:
                for h, ranges in zip(hops, result.hop_keys, strict=True):
                    ids = expand(ranges)
                    assert ids == refs[h].take(n)
                    record_spent(buffers[h].name, ids)
                pool_ref.generate(n, t)
                true_birth[pool.name].update(dict.fromkeys(expand(result.pool_keys), t))
                assert expand(result.pool_keys) == list(
                    range(pool_ref.next_id - n, pool_ref.next_id)
                )
            else:
                # all or nothing: not one bit was spent anywhere on the path
                assert [b.consumed_bits for b in buffers] == consumed_before
                if result.blocked_hop is not None:
                    assert not refs[hops[result.blocked_hop]].can(n, critical)
                    assert all(refs[h].can(n, critical) for h in hops[: result.blocked_hop])

        for buf, ref in zip(buffers, refs, strict=True):
            buf.check_ledger(deep=True)
            ledger = buf.ledger()
            assert ledger.balanced
            assert 0 <= ledger.buffered_bits <= buf.capacity_bits
            assert ledger == KeyLedger(
                ref.next_id,
                ref.counts["consumed"],
                ref.counts["expired"],
                ref.counts["discarded"],
                ref.counts["destroyed"],
                len(ref.bits),
            )
            assert expand(buf.buffered_ranges()) == [i for i, _, _ in ref.bits]
            births = [b for r, b in buf.buffered_chunks() for _ in range(r.start, r.stop)]
            assert births == [b for _, b, _ in ref.bits]  # the coalescing rule, bit by bit
            assert buf.oldest_birth_ns == (ref.bits[0][1] if ref.bits else None)
            assert buf.state is ref.state
            assert ledger.consumed_bits == len(spent[buf.name])
            assert not spent[buf.name].intersection(expand(buf.buffered_ranges()))
    assert total_ledger(buffers).balanced


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["gen", "take", "expire"]), st.integers(0, 40), st.integers(0, 3)
        ),
        max_size=60,
    ),
    max_age_s=st.integers(1, 8),
    window_s=st.integers(0, 3),
)
def test_coalescing_rule_on_a_small_full_buffer(ops, max_age_s, window_s):
    # one small buffer, whole-second steps: often full (capacity gaps), ages and windows hit
    # exactly; births and expiry must follow the reference bit by bit
    window_ns = min(window_s, max_age_s) * S
    buf = KeyBuffer(
        "L", 50, threshold_bits=1, max_age_ns=max_age_s * S, coalesce_window_ns=window_ns
    )
    ref = ReferenceBuffer(buf, window_ns)
    t = 0
    for kind, n, dt_s in ops:
        t += dt_s * S
        ref.advance(t)
        if kind == "gen":
            buf.generate(n, t)
            ref.generate(n, t)
        elif kind == "take":
            got = buf.take(n, t)
            assert (got is not None) == ref.can(n, False)
            if got is not None:
                assert expand(got) == ref.take(n)
        else:
            buf.expire(t)
        births = [b for r, b in buf.buffered_chunks() for _ in range(r.start, r.stop)]
        assert births == [b for _, b, _ in ref.bits]
        assert expand(buf.buffered_ranges()) == [i for i, _, _ in ref.bits]
        assert buf.expired_bits == ref.counts["expired"]
        buf.check_ledger(deep=True)


# --- security modes ----------------------------------------------------------------------------


def test_type_i_one_time_pad_needs_as_many_key_bits_as_data_bits():
    d = key_demand_bits(TrafficClass.TYPE_I, 1_000_000, 0, S, None)
    assert (d.bits, d.last_rekey_ns, d.rekeys) == (1_000_000, None, 0)


def test_type_ii_rekeys_256_bits_every_10_s():
    # main paper Table 1: AES-256-GCM, "256 bits every 10 s"
    last, total, bits_per_tick = None, 0, []
    for tick in range(60):
        d = key_demand_bits(TrafficClass.TYPE_II, 8_000, tick * S, S, last)
        last = d.last_rekey_ns
        total += d.bits
        bits_per_tick.append(d.bits)
    assert total == 6 * 256
    assert [i for i, b in enumerate(bits_per_tick) if b] == [0, 10, 20, 30, 40, 50]
    # one 25 s tick holds rekeys at t, t + 10 s and t + 20 s
    d = key_demand_bits(TrafficClass.TYPE_II, 1, 0, 25 * S, None)
    assert (d.bits, d.rekeys, d.last_rekey_ns) == (3 * 256, 3, 20 * S)
    # idle ticks need nothing; a flow resuming with a stale key rekeys at once, no catch-up
    assert key_demand_bits(TrafficClass.TYPE_II, 0, 100 * S, S, 20 * S).bits == 0
    d = key_demand_bits(TrafficClass.TYPE_II, 1, 100 * S, S, 20 * S)
    assert (d.bits, d.last_rekey_ns) == (256, 100 * S)
    # a key still fresh needs nothing
    assert key_demand_bits(TrafficClass.TYPE_II, 1, 25 * S, S, 20 * S).bits == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 7 * S), min_size=1, max_size=50))
def test_type_ii_rekey_count_is_independent_of_the_tick_size(dts):
    # an always-active flow from t = 0 to T rekeys at 0, 10 s, 20 s, ... < T: ceil(T / 10 s)
    t, last, rekeys = 0, None, 0
    for dt in dts:
        d = key_demand_bits(TrafficClass.TYPE_II, 1, t, dt, last)
        assert d.bits == 256 * d.rekeys
        last, rekeys, t = d.last_rekey_ns, rekeys + d.rekeys, t + dt
    assert rekeys == -(-t // (10 * S))


def test_type_iii_batch_keys_and_type_iv_pqc():
    # 2500 devices, 1000 per batch: three 128-bit group keys per hourly rekey
    d = key_demand_bits(TrafficClass.TYPE_III, 10_000, 0, S, None, devices=2500)
    assert (d.bits, d.rekeys) == (3 * 128, 1)
    assert key_demand_bits(TrafficClass.TYPE_III, 10_000, 1800 * S, S, 0, devices=2500).bits == 0
    assert key_demand_bits(TrafficClass.TYPE_III, 1, 3600 * S, S, 0, devices=2500).bits == 384
    custom = SecurityMode(
        "aes-128-batch", key_bits=128, rekey_interval_ns=60 * S, devices_per_batch=10
    )
    assert custom.key_demand(1, 0, 120 * S, None, devices=25).bits == 2 * 3 * 128
    assert key_demand_bits(TrafficClass.TYPE_IV, 10**9, 0, S, None).bits == 0
    assert set(SECURITY_MODES) == set(TrafficClass)


def test_security_mode_errors():
    with pytest.raises(ValueError, match="no security mode"):
        key_demand_bits(TrafficClass.TYPE_I, 1, 0, S, None, modes={})
    with pytest.raises(ValueError, match="data_bits must be an integer"):
        key_demand_bits(TrafficClass.TYPE_I, 1.5, 0, S, None)
    with pytest.raises(ValueError, match="devices_per_batch"):
        SecurityMode("x", key_bits=128, devices_per_batch=0)


def test_generate_fast_path_matches_the_general_path():
    """generate's fast path (plain ints, extending the newest chunk) leaves every buffer as
    the general path does: numpy integers take the general path, Python ints the fast one."""
    rng = np.random.default_rng(7)
    fast = KeyBuffer("fast", 15_000, threshold_bits=2_000, max_age_ns=40, coalesce_window_ns=7)
    slow = KeyBuffer("slow", 15_000, threshold_bits=2_000, max_age_ns=40, coalesce_window_ns=7)
    t = 0
    for _ in range(3_000):
        t += int(rng.integers(0, 4))
        op = rng.integers(0, 10)
        bits = int(rng.integers(0, 3_000))
        if op < 7:
            a = fast.generate(bits, t)
            b = slow.generate(np.int64(bits), np.int64(t))
            assert (a is None) == (b is None)
            if a is not None:
                assert (a.start, a.stop) == (b.start, b.stop)
        else:
            critical = bool(op == 9)
            assert fast.consume(bits, t, critical=critical) == slow.consume(
                bits, t, critical=critical
            )
        chunks = [
            [(r.start, r.stop, birth) for r, birth in b.buffered_chunks()] for b in (fast, slow)
        ]
        assert chunks[0] == chunks[1]
        assert fast.ledger() == slow.ledger() and fast.state is slow.state
    assert fast.discarded_bits > 0 and fast.expired_bits > 0 and fast.consumed_bits > 0


def test_key_rate_bank_carries_fractions_and_tracks_the_exact_integral():
    from twin.network.keys import KEY_FRACTION_BITS, KeyRateBank

    bank = KeyRateBank()
    bank.add_links(3)
    rng = np.random.default_rng(3)
    exact = [KeyRateAccumulator() for _ in range(3)]
    totals = np.zeros(3, dtype=np.int64)
    exact_totals = [0, 0, 0]
    dt_ns = 250_000_000
    for _ in range(2_000):
        rates = rng.uniform(0.0, [0.7, 130.0, 2.5e6])
        totals += bank.step(np.arange(3), rates, dt_ns)
        for k in range(3):
            exact_totals[k] += exact[k].step(float(rates[k]), dt_ns)
    # quantised to 2**-16 bit per tick: at most 2,000 * 2**-16 = 0.03 bit below the exact sum
    assert list(totals) == exact_totals or all(
        0 <= e - t <= 1 for t, e in zip(totals.tolist(), exact_totals, strict=True)
    )
    # one pair seen twice in a tick (two quantum edges) adds both rates; 1/3 bit/s carries
    bank = KeyRateBank()
    bank.add_links(1)
    got = [int(bank.step(np.array([0, 0]), np.array([1 / 3, 1 / 3]), 10**9)[0]) for _ in range(4)]
    # 2 x floor(65536 / 3) = 43,690 quanta a tick: 1 bit after 2 ticks, the 2nd only after 4
    # (131,070 < 131,072 after 3: the quantisation's deficit, 2 quanta, shows)
    assert got == [0, 1, 0, 1] and len(bank) == 1
    assert 1 << KEY_FRACTION_BITS == 65_536
    with pytest.raises(ValueError, match="rate_bps"):
        bank.step(np.array([0]), np.array([-1.0]), 10**9)
    with pytest.raises(ValueError, match="rate_bps"):
        bank.step(np.array([0]), np.array([np.nan]), 10**9)
