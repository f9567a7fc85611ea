import numpy as np
import pytest

from twin.rng import stream, stream_key


def test_same_key_same_draws_and_keys_separate_streams():
    a = stream(7, "ogs-graz", 12, "fading").random(5)
    b = stream(7, "ogs-graz", 12, "fading").random(5)
    np.testing.assert_array_equal(a, b)
    for other in [
        (8, "ogs-graz", 12, "fading"),
        (7, "ogs-matera", 12, "fading"),
        (7, "ogs-graz", 13, "fading"),
        (7, "ogs-graz", 12, "weather"),
    ]:
        assert not np.array_equal(a, stream(*other).random(5)), other


def test_key_is_stable_across_processes():
    # a pinned value: BLAKE2b is deterministic, so this never changes unless the scheme does
    # (which would change every result: bump it only on purpose)
    assert stream_key(1, "sat-0001", 42, "fading") == 0x22F561265E3801EC6900693993A4A111


def test_rejects_bad_seed_and_tick():
    with pytest.raises(ValueError, match="seed"):
        stream(-1, "n", 0, "p")
    with pytest.raises(ValueError, match="tick"):
        stream(0, "n", -3, "p")
