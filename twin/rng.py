"""Counter-based random streams keyed by (seed, node, tick, purpose).

Every random draw in the model comes from ``stream(seed, node, tick, purpose)``: a fresh
Philox generator whose key is a stable hash of those four values. A draw therefore depends only
on what it is for, never on how many draws happened before it, in which process, or in which
order nodes were stepped: the property that makes results independent of the runtime and the
placement (ARCHITECTURE.md, "Time and determinism"). Strings are hashed with BLAKE2b, not
Python's ``hash()`` (which is salted per process).
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["stream", "stream_key"]


def stream_key(seed: int, node: str, tick: int, purpose: str) -> int:
    """128-bit Philox key of a stream (stable across processes, platforms and versions)."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(tick, int | np.integer) or tick < 0:
        raise ValueError(f"tick must be a non-negative integer, got {tick!r}")
    text = f"{int(seed)}\x1f{node}\x1f{int(tick)}\x1f{purpose}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "little")


def stream(seed: int, node: str, tick: int, purpose: str) -> np.random.Generator:
    """The generator for one (seed, node, tick, purpose); the same key gives the same draws."""
    return np.random.Generator(np.random.Philox(key=stream_key(seed, node, tick, purpose)))
