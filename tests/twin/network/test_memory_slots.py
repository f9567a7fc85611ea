import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.network.memory_slots import QuantumMemory
from twin.physics.entanglement import amplitude_damp, bell_fidelity, bell_state, phase_damp
from twin.physics.memory import memory_fidelity, memory_time_to_live_s, stored_bell_pair_fidelity
from twin.units import NS_PER_S

MS = 1_000_000  # ns


def test_slots_are_sorted_by_birth_then_pair_id_whatever_the_insertion_order():
    items = [("b", 5), ("a", 5), ("z", 1), ("c", 9), ("aa", 5)]
    orders = [items, items[::-1], sorted(items)]
    listings = []
    for order in orders:
        mem = QuantumMemory(q_max=10, t2_s=1.0)
        for pid, t in order:
            assert mem.store(pid, "peer", t)
        listings.append([(s.birth_ns, s.pair_id) for s in mem.slots])
    assert listings[0] == [(1, "z"), (5, "a"), (5, "aa"), (5, "b"), (9, "c")]
    assert listings[0] == listings[1] == listings[2]


def test_store_beyond_q_max_is_refused_and_counted():
    mem = QuantumMemory(q_max=2, t2_s=1.0)
    assert mem.store("p1", "x", 0)
    assert mem.store("p2", "y", 1)
    assert not mem.store("p3", "z", 2)
    assert not mem.store("p4", "z", 3)
    assert mem.rejections == 2
    assert mem.slots_used == 2 and mem.free_slots == 0
    assert "p3" not in mem
    mem.release("p1")
    assert mem.store("p3", "z", 4)
    assert mem.peak_slots_used == 2
    assert [s.pair_id for s in mem.slots] == ["p2", "p3"]


def test_zero_capacity_memory_refuses_everything():
    mem = QuantumMemory(q_max=0, t2_s=1.0)
    assert not mem.store("p", "x", 0)
    assert mem.rejections == 1 and mem.peak_slots_used == 0


def test_perfect_pair_one_half_stored_is_eq3():
    # Main paper eq. (3): F(t) = (1 + exp(-t/T2))/2 for one stored half of a perfect pair.
    t2_s = 0.8
    mem = QuantumMemory(q_max=4, t2_s=t2_s)
    mem.store("p", "ground-1", 1_000, 1.0, phi_minus=0.0, partner_t2_s=math.inf)
    for dt_ns in (0, 1, 250 * MS, 3 * NS_PER_S):
        want = memory_fidelity(dt_ns / NS_PER_S, t2_s)
        assert mem.fidelity_at("p", 1_000 + dt_ns) == pytest.approx(want, abs=1e-15)


def test_both_halves_stored_decay_with_both_storage_times():
    # Both halves dephase: F(t) = (1 + exp(-t/T2a - t/T2b))/2; equal T2 -> eq. (3) at 2t.
    mem = QuantumMemory(q_max=4, t2_s=1.0)
    mem.store("same", "b", 0, 1.0, phi_minus=0.0)  # partner in an identical memory (default)
    mem.store("other", "c", 0, 1.0, phi_minus=0.0, partner_t2_s=0.25)
    t = 300 * MS
    assert mem.fidelity_at("same", t) == pytest.approx(memory_fidelity(0.6, 1.0), abs=1e-15)
    want = 0.5 * (1.0 + math.exp(-0.3 / 1.0 - 0.3 / 0.25))
    assert mem.fidelity_at("other", t) == pytest.approx(want, abs=1e-15)


def test_werner_pair_one_half_matches_physics_stored_bell_pair_fidelity():
    mem = QuantumMemory(q_max=1, t2_s=0.5)
    mem.store("w", "b", 0, 0.9, partner_t2_s=math.inf)  # Werner default phi_minus = 0.1/3
    for t_s in (0.0, 0.1, 0.7, 2.0):
        want = stored_bell_pair_fidelity(t_s, 0.5, initial_fidelity=0.9)
        assert mem.fidelity_at("w", round(t_s * NS_PER_S)) == pytest.approx(want, abs=1e-14)


def test_general_pair_matches_density_matrix_dephasing():
    # An amplitude-damped pair (not Werner) with both halves in memories of different T2:
    # compare with phase damping of the density matrix on each qubit.
    rho = amplitude_damp(amplitude_damp(bell_state(), 0.3, 0), 0.15, 1)
    f0 = float(bell_fidelity(rho))
    m0 = float(bell_fidelity(rho, "phi-"))
    mem = QuantumMemory(q_max=1, t2_s=0.4)
    mem.store("p", "b", 10 * MS, f0, phi_minus=m0, partner_t2_s=1.3)
    t_s = 0.23
    out = phase_damp(phase_damp(rho, math.exp(-t_s / 0.4), 0), math.exp(-t_s / 1.3), 1)
    got = mem.fidelity_at("p", 10 * MS + round(t_s * NS_PER_S))
    assert got == pytest.approx(float(bell_fidelity(out)), abs=1e-12)


def test_expire_is_the_eq3_ttl():
    # t_TTL = -T2 ln(2 F_min - 1) = 0.357 s for F_min = 0.85, T2 = 1 s (main paper eq. (3)).
    ttl_ns = int(memory_time_to_live_s(0.85, 1.0) * NS_PER_S)
    mem = QuantumMemory(q_max=3, t2_s=1.0)
    mem.store("old", "b", 0, 1.0, phi_minus=0.0, partner_t2_s=math.inf)
    mem.store("young", "b", 100 * MS, 1.0, phi_minus=0.0, partner_t2_s=math.inf)
    assert mem.expire(ttl_ns, 0.85) == []  # at the TTL itself F >= F_min (floor of ns)
    dropped = mem.expire(ttl_ns + 1_000, 0.85)
    assert [s.pair_id for s in dropped] == ["old"]
    assert [s.pair_id for s in mem.slots] == ["young"]
    assert mem.expired_count == 1


def test_fidelities_at_is_the_vectorized_fidelity_at_in_slot_order():
    mem = QuantumMemory(q_max=5, t2_s=0.7)
    mem.store("c", "x", 30, 0.95, phi_minus=0.02)
    mem.store("a", "y", 10, 0.8)
    mem.store("b", "z", 20, 1.0, phi_minus=0.0, partner_t2_s=math.inf)
    t = 400 * MS
    vec = mem.fidelities_at(t)
    assert vec.shape == (3,)
    assert np.allclose(vec, [mem.fidelity_at(s.pair_id, t) for s in mem.slots], atol=1e-15)
    assert QuantumMemory(q_max=1, t2_s=1.0).fidelities_at(0).shape == (0,)


def test_rebind_keeps_birth_and_changes_the_pair():
    mem = QuantumMemory(q_max=2, t2_s=1.0)
    mem.store("p0", "repeater", 5 * MS, 0.9)
    new = mem.rebind("p0", "e2e", partner="far-end", t_ns=20 * MS, fidelity=0.8, phi_minus=0.1)
    assert "p0" not in mem and "e2e" in mem
    assert (new.birth_ns, new.ref_ns, new.partner) == (5 * MS, 20 * MS, "far-end")
    assert mem.fidelity_at("e2e", 20 * MS) == pytest.approx(0.8, abs=1e-15)
    with pytest.raises(ValueError, match="precedes"):
        mem.fidelity_at("e2e", 19 * MS)


def test_perfect_memory_never_decays():
    mem = QuantumMemory(q_max=1, t2_s=math.inf)
    mem.store("p", "b", 0, 0.9, phi_minus=0.05, partner_t2_s=math.inf)
    assert mem.fidelity_at("p", 10**15) == pytest.approx(0.9, abs=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q_max": -1, "t2_s": 1.0}, "q_max"),
        ({"q_max": 2.5, "t2_s": 1.0}, "q_max"),
        ({"q_max": 2, "t2_s": 0.0}, "t2_s"),
        ({"q_max": 2, "t2_s": float("nan")}, "t2_s"),
    ],
)
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantumMemory(**kwargs)


def test_bad_stores_raise_and_change_nothing():
    mem = QuantumMemory(q_max=3, t2_s=1.0)
    mem.store("p", "b", 0)
    with pytest.raises(ValueError, match="already has a qubit"):
        mem.store("p", "c", 1)
    with pytest.raises(TypeError, match="int nanoseconds"):
        mem.store("q", "c", 1.5)
    with pytest.raises(ValueError, match="fidelity"):
        mem.store("q", "c", 1, 1.2)
    with pytest.raises(ValueError, match="phi_minus"):
        mem.store("q", "c", 1, 0.9, phi_minus=0.2)
    with pytest.raises(ValueError, match="pair_id"):
        mem.store("", "c", 1)
    with pytest.raises(ValueError, match="no qubit of pair"):
        mem.release("nope")
    with pytest.raises(ValueError, match="f_min"):
        mem.expire(5, 1.5)
    assert mem.slots_used == 1 and mem.stored_count == 1 and mem.rejections == 0


@settings(max_examples=60, deadline=None)
@given(
    q_max=st.integers(0, 4),
    ops=st.lists(
        st.tuples(st.sampled_from(["store", "release", "expire"]), st.integers(0, 6)),
        max_size=40,
    ),
)
def test_accounting_holds_after_any_sequence_of_operations(q_max, ops):
    mem = QuantumMemory(q_max=q_max, t2_s=0.05)
    t = 0
    attempts = 0
    for op, arg in ops:
        t += 7 * MS
        if op == "store":
            pid = f"p{arg}"
            if pid in mem:
                continue
            attempts += 1
            mem.store(pid, "x", t, 0.99, partner_t2_s=math.inf)
        elif op == "release" and f"p{arg}" in mem:
            mem.release(f"p{arg}")
        elif op == "expire":
            mem.expire(t, 0.9)
        assert mem.stored_count == mem.released_count + mem.expired_count + mem.slots_used
        assert mem.stored_count + mem.rejections == attempts
        assert 0 <= mem.slots_used <= q_max and mem.peak_slots_used <= q_max
        keys = [(s.birth_ns, s.pair_id) for s in mem.slots]
        assert keys == sorted(keys)


def test_a_memory_travels_as_plain_values_and_comes_back_exactly():
    import msgpack

    memory = QuantumMemory(3, 0.25)
    memory.store("p1", "b", 10, 0.93, phi_minus=0.02)
    memory.store("p0", "c", 10, 0.7, partner_t2_s=math.inf)
    memory.store("p2", "d", 50, 0.81)
    memory.release("p1")
    memory.store("p3", "e", 60)
    assert not memory.store("p4", "e", 70)  # a rejection, counted
    wire = memory.to_wire()
    assert msgpack.unpackb(msgpack.packb(wire)) == wire  # msgpack's values only
    back = QuantumMemory.from_wire(msgpack.unpackb(msgpack.packb(wire)))
    assert back.to_wire() == wire and back.slots == memory.slots
    assert (back.peak_slots_used, back.rejections, back.stored_count, back.released_count) == (
        3, 1, 4, 1,
    )  # fmt: skip
    assert back.fidelity_at("p0", 10**9) == memory.fidelity_at("p0", 10**9)
    assert back.store("p5", "f", 80) is False and back.release("p3").pair_id == "p3"


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda w: w.pop(), "a memory is \\[q_max"),
        (lambda w: w.__setitem__(1, 1), "t2_s must be a float"),
        (lambda w: w.__setitem__(3, -1), "counts must be ints >= 0"),
        (lambda w: w.__setitem__(0, 1), "at most q_max"),
        (lambda w: w[2].reverse(), "in \\(birth_ns, pair_id\\) order"),
        (lambda w: w[2][0].__setitem__(3, 1.5), "fidelity must be within"),
        (lambda w: w[2][0].__setitem__(2, 11), "is not a stored qubit's state"),  # born after ref
        (lambda w: w[2][0].__setitem__(6, -1.0), "partner_t2_s must be > 0"),
        (lambda w: w[2].append(list(w[2][0])), "one per pair id|at most q_max"),
    ],
)
def test_a_memory_that_is_not_one_is_refused_from_plain_values(change, words):
    memory = QuantumMemory(3, 0.25)
    memory.store("p0", "b", 10, 0.9)
    memory.store("p1", "c", 20, 0.8)
    wire = memory.to_wire()
    change(wire)
    with pytest.raises(ValueError, match=words):
        QuantumMemory.from_wire(wire)
