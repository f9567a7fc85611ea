"""The message bus between hosts: ZeroMQ sockets carrying columnar msgpack frames of envelopes.

ARCHITECTURE.md ("The runtime", "Bus"). A superstep's node phase runs in rounds (the nodes
answer what they received, until no message is left); in each round a host handles its inbox and
sends, per destination host, one frame holding every envelope for that host's nodes. Envelopes
between nodes of one host never touch a socket.

Wire format of a frame, version 4 (msgpack, nothing else; nothing that comes off a socket is
unpickled): the envelopes travel as columns and blocks, so that a receiver checks a frame with a
few numpy operations over whole columns, and a few Python ones per payload schema, instead of
Python work per envelope or per payload key::

    [FRAME_VERSION, run_id, round, src_host, state, strings, t0_ns, width, header, schemas]

- ``state``: what the sender's nodes sent in the round, :data:`ROUND_IDLE` (nothing),
  :data:`ROUND_FINAL` (only messages that answer nothing) or :data:`ROUND_ACTIVE`: hosts that
  run their rounds on their own end them by it (:meth:`actors.host.NodeHost.exchange`).
- ``strings``: the frame's string table (list of str); src, dst and string payload values are
  indices into it. (One str of them all with their lengths beside would decode and check ~2
  us faster a frame of 100 envelopes, but cutting it into the strings when the envelopes are
  made costs 15-20 us, where msgpack makes them in 4.)
- ``header``: bytes, 7 rows of ``n`` little-endian unsigned ints of ``width`` bytes each (4,
  or 8 when a value does not fit 4; ``n`` envelopes): src index, dst index, kind (its index
  among MessageKind's sorted codes), t_ns - ``t0_ns`` (the frame's earliest t_ns), seq (in
  8-byte rows an int64's bits), delay_ns (arrival_ns - t_ns), schema index. Times and delays
  lie in [0, 2**62) ns. One maximum per row checks every range, and a delay below 2**62 is an
  envelope that arrives no earlier than it was sent (a negative int64 is a huge unsigned one).
- ``schemas``: one ``[keys, tags, fixed, loose]`` per distinct payload key sequence (in the
  order the sender's dict has them), for the envelopes of that schema in frame order. ``tags``
  is a str, one letter per key, struct's letters where there is one: ``q``, ``i``, ``h``,
  ``b`` ints of 8, 4, 2, 1 bytes (every value a plain int, the narrowest width that holds them
  all; bools are not ints here), ``d`` float64, ``?`` bools as uint8 0/1, ``s`` uint32
  string-table indices, ``m`` anything else (None, mixed types, an int beyond int64, nested
  lists and maps, as msgpack gives them back). ``fixed`` is bytes: the fixed-width columns,
  little-endian, grouped by tag in the order ``q d s i h b ?`` (widest first, so that every
  column starts aligned) and in key order within a group; ``loose`` the ``m`` columns as
  msgpack lists. Narrow columns keep frames small: the transport costs ~1 us of CPU per KB
  here, as much as the checks (``qntwin bench bus``).

A bundle (hosts that run their rounds through one of them, the hub,
:meth:`actors.host.NodeHost.exchange`) carries a round's frames between a host and the hub, with
the sender's round state (to the hub) or the round's state over all hosts (from it), beside
the frames on the same sockets: ``[BUNDLE_MARK, run_id, round, src_host, state, frames]``,
``frames`` a list of ``[destination host, frame]``, each frame encoded (and checked by the
host that decodes it) as any. The hub forwards the frames without decoding them.

A call is what the driver (bus id :data:`DRIVER`) and a host say to each other between the
hosts' rounds: the driver's command of a tick (or that a host stop serving commands), and the
host's reply with the tick's results (:meth:`actors.host.NodeHost.serve`, :mod:`actors.runtime`):
``[CALL_MARK, run_id, seq, src, body]``, ``seq`` numbering the driver's commands to a host (the
reply repeats its command's), ``body`` a msgpack list whose shape the receiver checks. Calls
travel on the same sockets, in place of a Ray call per host and tick: ~0.1 ms a round trip
where a Ray call costs ~1-2 ms of CPU on the two cores here (README, "The Ray runtime").

Payload values come back with their types and values (floats bit for bit) and each payload
dict with its keys in the sender's order. A frame that does not decode to that shape, names
another run or another frame version, has columns of disagreeing lengths, an index out of
range, an unknown kind or an envelope arriving before it was sent is refused with
:class:`BusError` naming what was wrong; it never reaches a node. Receivers get an
:class:`EnvelopeBatch` per frame, the checked columns, and make :class:`Envelope` objects from
it in bulk when a host hands them to its nodes.

Why columns (measured on a frame of 100 KEY_RELAY envelopes, 2-core VM shared with other work,
best of 15): decoding and checking it takes 14-18 us (version 2, a column per payload key
checked one by one, 64-bit string indices: 27 us; version 1, a msgpack list per envelope
checked and made into an Envelope one by one: 380-480 us), and the frame is 9.0 KB (version
2: 15.5 KB). Making the Envelope objects from the checked columns takes ~190 us more (half of
it the payload dicts). The sender pays for it: encoding takes ~175 us (version 1: 80-92 us),
every column a pass over the envelopes. A frame of one envelope costs more than in version 1
(encode ~27 us, decode ~12 us and ~16 us more for the object, against 2 and 5: fixed costs
per column, kept low by plain Python where numpy's per-call cost would be the whole cost), and
most of a run's frames are small (``mega`` on 4 hosts: ~5 envelopes a frame); an empty frame
decodes in 3 us (version 1: 1).

Sockets: every host binds one PULL socket (on its node's IP, an ephemeral port, and, given its
Ray node's id on Linux, on an abstract Unix socket too) and registers the endpoints with the
run's :class:`BusRegistry` (a named Ray actor); it connects one PUSH socket per peer it sends
to, over the Unix socket when the peer runs on the same Ray node and IP. High-water marks are
explicit (a round's frames must never be dropped or block the sender: at most one frame per
peer per round is in flight) and linger is bounded, so a closing host neither hangs nor loses a
frame it already handed over. Receiving frames and bundles waits at most ``recv_timeout_s``
and then raises: a dead peer gives an error, never a hang. A host waiting for the driver's
next command waits as long as it takes (the driver may be busy between ticks); the driver
watches the host meanwhile, and Ray stops the hosts with their driver. The driver has an
endpoint too (id :data:`DRIVER`), for its commands and the hosts' replies.

Optional CurveZMQ authentication (``qntwin run --bus-auth curve``): the run's :class:`BusKeys`,
generated per run or loaded from a directory (``--bus-keys DIR``, ``qntwin bus-keys DIR``
writes one), hold a server and a client key pair. Every host's PULL socket serves with the
server pair and every PUSH socket connects with the client pair, so frames are encrypted and
each PUSH checks it reached the run's server; each host runs a ZAP handler that admits only the
run's client public key, so a process without the run's client secret cannot hand a host a
frame (its connection is refused during the handshake; nothing of it reaches a node).
"""

from __future__ import annotations

import operator
import os
import sys
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, count, repeat
from typing import Any

import msgpack
import numpy as np
import zmq

from twin.network.messages import Envelope, MessageKind

__all__ = [
    "FRAME_VERSION",
    "ROUND_ACTIVE",
    "ROUND_FINAL",
    "ROUND_IDLE",
    "BusEndpoint",
    "BusKeys",
    "BusError",
    "BusFaults",
    "BusRegistry",
    "CALL_MARK",
    "BUNDLE_MARK",
    "DRIVER",
    "EnvelopeBatch",
    "decode_batch",
    "decode_call",
    "decode_bundle",
    "decode_frame",
    "encode_call",
    "encode_bundle",
    "encode_frame",
]

FRAME_VERSION = 4
# what a host's nodes sent in a round (a frame's ``state``); the round's state over all hosts
# is the largest, and ends the hosts' rounds (actors.host.NodeHost.exchange): after an idle
# round none is left, after a final one a last round delivers what answers nothing
ROUND_IDLE, ROUND_FINAL, ROUND_ACTIVE = 0, 1, 2
ROUND_STATES = (ROUND_IDLE, ROUND_FINAL, ROUND_ACTIVE)
BUNDLE_MARK = "bnd"  # the first item of a bundle (a frame's is FRAME_VERSION)
# a bundle starts with these bytes (a 6-item msgpack array, then the mark): a host tells the
# kinds apart before decoding, and decodes each once
_BUNDLE_PREFIX = b"\x96" + msgpack.packb(BUNDLE_MARK)
MAX_BUNDLE_FRAMES = 10_000  # far above a bundle's frames (one per other host at most)
CALL_MARK = "call"  # the first item of a call between the driver and a host
_CALL_PREFIX = b"\x95" + msgpack.packb(CALL_MARK)
DRIVER = -1  # the driver's id on the bus (hosts are 0..H-1)
# what a receiver can be waiting for: each kind is kept aside while another is awaited
FRAMES, BUNDLES, CALLS = "frame", "bundle", "call"
# at most one frame per peer and round is in flight, and a round waits for all of them: a few
# frames of headroom is all a socket needs; larger marks only hide a protocol bug
HIGH_WATER_MARK_FRAMES = 64
LINGER_MS = 2_000  # a closing socket delivers what it holds for at most this long
# largest frame accepted: far above a superstep's batch (mega: a few hundred envelopes of
# ~100 bytes) and an edge actor's G(t) (mega: ~0.5 MB), and with MAX_CONTAINERS a bound on
# what a malformed or hostile frame can make a host allocate (msgpack makes a 56-byte list of
# each 1-byte empty array: a frame of them would cost ~70x its size; strings and numbers at
# most ~17x)
MAX_FRAME_BYTES = 16 * 1024 * 1024
MAX_CONTAINERS = 1 << 20  # lists and maps in one message (a frame of 100 envelopes has ~20)

# the header's rows (unsigned, 4 or 8 bytes a value), one value per envelope each
HEADER_ROWS = ("src", "dst", "kind", "t_ns", "seq", "delay_ns", "schema")
_SRC, _DST, _KIND, _T, _SEQ, _DELAY, _SCHEMA = range(len(HEADER_ROWS))
_INT64 = np.dtype("<i8")
_UINT64 = np.dtype("<u8")
_UINT32 = np.dtype("<u4")
# a header's rows are of one width, 4 or 8 bytes a value (module docstring)
_HEADER_DTYPES = {4: _UINT32, 8: _UINT64}
# times and delays on the wire lie in [0, 2**62) ns (146 years): so t_ns + delay_ns fits an
# int64, and one unsigned maximum checks both ends (a negative value is a huge unsigned one)
TIME_LIMIT_NS = 2**62
# a kind travels as its index among MessageKind's codes (sorted): a kind is known iff its
# index is below their number, one unsigned comparison
_KIND_CODES = sorted(int(k) for k in MessageKind)
_KIND_INDEX = {code: index for index, code in enumerate(_KIND_CODES)}  # (for a sender)
_KIND_BY_INDEX = tuple(MessageKind(code) for code in _KIND_CODES)
_KIND_CODE_ARRAY = np.array(_KIND_CODES, _INT64)
# payload column tags (struct's letters, and "s" and "m"): the dtype of each fixed-width
# one, in the order their groups take in a schema's fixed block (widest first: every column
# starts aligned to its width)
_FIXED_DTYPES = {
    "q": np.dtype("<i8"), "d": np.dtype("<f8"), "s": np.dtype("<u4"), "i": np.dtype("<i4"),
    "h": np.dtype("<i2"), "b": np.dtype("i1"), "?": np.dtype("u1"),
}  # fmt: skip
_TAGS = frozenset(_FIXED_DTYPES) | {"m"}
# each fixed-width tag's format in memoryview.cast, native order (on a little-endian machine
# these are _FIXED_DTYPES: _array_codes_are_struct_widths checks the widths)
_VIEW_FORMATS = {"q": "q", "d": "d", "s": "I", "i": "i", "h": "h", "b": "b", "?": "B"}
_FIXED_RANK = {tag: rank for rank, tag in enumerate([*_FIXED_DTYPES, "m"])}
# an int column takes the narrowest of these that holds all its values (the array module's
# codes are struct's: a C int is 4 bytes wherever this runs, as the check below makes sure)
_INT_TAGS = ("b", "h", "i", "q")
# (tag, lowest, highest value) of each int column width, narrowest first
_INT_BOUNDS = tuple(
    (tag, int(np.iinfo(_FIXED_DTYPES[tag]).min), int(np.iinfo(_FIXED_DTYPES[tag]).max))
    for tag in _INT_TAGS
)
# the array module's codes of a header's rows, by width (4: C unsigned int, 8: unsigned long
# long, as the check below makes sure); an 8-byte row's negative seq travels as its bits
_HEADER_CODES = {4: "I", 8: "Q"}
_INT64_BITS = 2**64 - 1
MAX_LAYOUTS = 4_096  # schema layouts remembered (_check_schema)
MAX_LAYOUT_KEYS = 64  # and only of schemas this small (a payload has ~10 keys)
_BOOLS = (False, True)
_NATIVE_LITTLE = sys.byteorder == "little"


def _array_codes_are_struct_widths() -> None:
    for tag in (*_INT_TAGS, "d"):
        if array(tag).itemsize != _FIXED_DTYPES[tag].itemsize:
            raise ImportError(f"array code {tag!r} is not {_FIXED_DTYPES[tag]} on this machine")
    for width, code in _HEADER_CODES.items():
        if array(code).itemsize != width:
            raise ImportError(f"array code {code!r} is not {width} bytes on this machine")


_array_codes_are_struct_widths()
_FIELDS = operator.attrgetter("src", "dst", "kind", "t_ns", "seq", "arrival_ns", "payload")


class BusError(RuntimeError):
    """A frame that cannot be accepted, or a peer that did not answer in time."""


@dataclass
class _SchemaColumns:
    """One schema's columns while a frame is encoded (module docstring, ``schemas``)."""

    keys: list[str]
    tags: list[str]
    data: list  # per key: bytes, or the strings of an "s" column, or the list of an "m" one
    text: list[tuple]  # the "s" columns' strings, until the string table indexes them

    def add(self, values: tuple) -> None:
        """The column of one key's values: its tag by the values' exact types (a bool is not
        an int here) and, for ints, range (an int beyond int64 travels in msgpack)."""
        types = set(map(type, values))
        only = types.pop() if len(types) == 1 else None
        tag, data = "m", None
        if only is int:
            low, high = min(values), max(values)
            for tag, lowest, highest in _INT_BOUNDS:
                if lowest <= low and high <= highest:
                    data = _little(array(tag, values))
                    break
            else:
                tag = "m"
        elif only is str:
            tag, data = "s", values
            self.text.append(values)
        elif only is bool:
            tag, data = "?", bytes(values)
        elif only is float:
            tag, data = "d", _little(array("d", values))
        self.tags.append(tag)
        self.data.append(list(values) if tag == "m" else data)

    def wire(self, text_indices: list[bytes]) -> list:
        """``[keys, tags, fixed, loose]``, the "s" columns given their indices."""
        data = self.data
        if text_indices:
            indices = iter(text_indices)
            data = [
                next(indices) if tag == "s" else d for tag, d in zip(self.tags, data, strict=True)
            ]
        fixed = b"".join(map(data.__getitem__, _fixed_order(self.tags)))
        loose = [d for tag, d in zip(self.tags, data, strict=True) if tag == "m"]
        return [self.keys, "".join(self.tags), fixed, loose]


def _fixed_order(tags) -> list[int]:
    """The positions of a schema's fixed-width columns in the order of its fixed block:
    grouped by tag in the order of ``_FIXED_DTYPES``, key order within a group."""
    ranks = list(map(_FIXED_RANK.__getitem__, tags))
    return sorted((k for k, tag in enumerate(tags) if tag != "m"), key=ranks.__getitem__)


def encode_frame(
    run_id: str,
    round_no: int,
    src_host: int,
    envelopes: Sequence[Envelope],
    state: int = ROUND_ACTIVE,
) -> bytes:
    """One frame of a round: every envelope from ``src_host`` to one destination host, as
    columns (module docstring). :class:`BusError` for an envelope the format cannot carry
    (src or dst not a str, an unknown kind, seq not an int within int64, times outside
    [0, 2**62) ns)."""
    strings, t0_ns, width, header = [], 0, 4, b""
    wire_schemas: list[list] = []
    if envelopes:
        src, dst, kinds, t_ns, seq, arrival_ns, payloads = zip(
            *map(_FIELDS, envelopes), strict=True
        )
        # payloads with the same keys in the same order share a schema (a frame has a few).
        # The nodes read payloads by key only (twin/network: nodes, handover; twin/engine), but
        # the order is kept all the same: a round trip gives back the dicts as they were sent
        keys_of = list(map(tuple, payloads))
        members: dict[tuple, Any] = dict.fromkeys(keys_of)
        if len(members) == 1:
            schema_row: Iterable[int] = repeat(0, len(keys_of))
            members[keys_of[0]] = payloads
        else:
            schema_number = dict(zip(members, count()))
            schema_row = list(map(schema_number.__getitem__, keys_of))
            for keys in members:
                members[keys] = []
            for keys, payload in zip(keys_of, payloads, strict=True):
                members[keys].append(payload)
        schemas: list[_SchemaColumns] = []
        for keys, group in members.items():
            schema = _SchemaColumns(list(keys), [], [], [])
            for values in zip(*map(dict.values, group), strict=True) if keys else ():
                schema.add(values)
            schemas.append(schema)
        strings, index = _string_table(
            [src, dst, *chain.from_iterable(schema.text for schema in schemas)]
        )
        for schema in schemas:
            text_indices = [_little(array("I", map(index, column))) for column in schema.text]
            wire_schemas.append(schema.wire(text_indices))
        t0_ns, width, header = _header(
            list(map(index, src)), list(map(index, dst)), kinds, t_ns, seq, arrival_ns,
            schema_row, len(members),
        )  # fmt: skip
    try:
        return msgpack.packb(
            [FRAME_VERSION, run_id, int(round_no), int(src_host), int(state), strings, t0_ns,
             width, header, wire_schemas],
            use_bin_type=True,
        )  # fmt: skip
    except (TypeError, OverflowError, ValueError) as err:  # a payload value msgpack cannot carry
        raise BusError(f"an envelope payload holds a value the bus cannot carry: {err}") from None


class _TooManyContainers(ValueError):
    pass


def _no_extension(code: int, data: bytes):
    raise ValueError(f"msgpack extension type {code} (the bus sends plain values only)")


def _unpack(raw: bytes, what: str):
    """msgpack off a socket (str as str, lists as lists, map keys str or int, a timestamp as
    int nanoseconds, no other extension type, at most :data:`MAX_CONTAINERS` lists and maps):
    anything else is a BusError naming ``what`` it was to be."""
    containers = 0

    def count(container):
        nonlocal containers
        containers += 1
        if containers > MAX_CONTAINERS:
            raise _TooManyContainers(f"more than {MAX_CONTAINERS} lists and maps")
        return container

    try:
        return msgpack.unpackb(
            raw, raw=False, strict_map_key=True, use_list=True, list_hook=count,
            object_hook=count, ext_hook=_no_extension, timestamp=2,
        )  # fmt: skip
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as err:
        raise BusError(f"{what} is not valid msgpack: {err}") from None


def _string_table(columns: list[tuple]) -> tuple[list[str], Callable[[str], int]]:
    """The frame's string table (distinct strings, first seen first) and the index of a
    string in it."""
    try:
        table = dict.fromkeys(chain.from_iterable(columns))
        if not set(map(type, table)) <= {str}:  # a src or dst: payload columns are str
            raise TypeError
    except TypeError:  # (or unhashable)
        raise BusError("envelope src and dst must be str") from None
    return list(table), dict(zip(table, count())).__getitem__


def _header(
    src_index: list[int], dst_index: list[int], kinds: tuple, t_ns: tuple, seq: tuple,
    arrival_ns: tuple, schema_row: Iterable[int], n_schemas: int,
) -> tuple[int, int, bytes]:  # fmt: skip
    """``(t0_ns, width, header)`` of a frame's envelopes (module docstring), or
    :class:`BusError` for one the format cannot carry (kind, times or seq not ints within
    int64, an unknown kind, times outside [0, 2**62) ns). Plain Python over the rows, not
    numpy: a round's frames hold a few envelopes, where numpy's per-call cost is the whole
    cost (a frame of 1 envelope encodes in ~27 us against ~60; at 100 they are even)."""
    try:  # array refuses a float or str (never truncates) and an int beyond int64
        for row in (kinds, t_ns, seq, arrival_ns):
            array("q", row)
    except (OverflowError, TypeError) as err:
        raise BusError(f"envelope kind, times and seq must be ints within int64: {err}") from None
    t0_ns, last_ns = min(t_ns), max(t_ns)
    delays = list(map(operator.sub, arrival_ns, t_ns))  # (an Envelope arrives no earlier)
    shortest_delay_ns, longest_delay_ns = min(delays), max(delays)
    if not (0 <= t0_ns and last_ns < TIME_LIMIT_NS and 0 <= shortest_delay_ns
            and longest_delay_ns < TIME_LIMIT_NS):  # fmt: skip
        raise BusError(
            f"envelope times and delays must lie in [0, 2**62) ns (since the scenario's "
            f"start), got t_ns {t0_ns}..{last_ns} and delays {shortest_delay_ns}.."
            f"{longest_delay_ns}"
        )
    kind_index = list(map(_KIND_INDEX.get, kinds, repeat(-1)))
    if -1 in kind_index:
        bad = kinds[kind_index.index(-1)]
        raise BusError(f"envelope kind {bad} is not a MessageKind code {_KIND_CODES}")
    # 4 bytes a value when every row fits (a round's messages are sent and arrive within
    # seconds; seq and indices are small), else 8: seq as int64, the rest never negative
    lowest_seq, highest_seq = min(seq), max(seq)
    fits = (max(src_index), max(dst_index), last_ns - t0_ns, highest_seq, longest_delay_ns,
            n_schemas - 1)  # fmt: skip
    width = 4 if max(fits) < 2**32 and lowest_seq >= 0 else 8
    if lowest_seq < 0:  # (as Python ints: a numpy int64 does not take the 64-bit mask)
        seq = map(operator.and_, map(int, seq), repeat(_INT64_BITS))
    relative_ns = map(operator.sub, t_ns, repeat(t0_ns))
    rows = chain(src_index, dst_index, kind_index, relative_ns, seq, delays, schema_row)
    return t0_ns, width, _little(array(_HEADER_CODES[width], rows))


def _little(packed: array) -> bytes:
    """The array's bytes, little-endian whatever the machine."""
    if not _NATIVE_LITTLE:
        packed.byteswap()
    return packed.tobytes()


def decode_batch(frame: bytes, run_id: str) -> tuple[int, int, int, EnvelopeBatch]:
    """``(round, src_host, state, envelopes)`` of a frame of run ``run_id``, the envelopes as
    a checked :class:`EnvelopeBatch`; :class:`BusError` for anything else (wrong shape or
    types, another run or frame version, lengths that disagree, an index out of range, an
    unknown kind, a time out of range or an envelope arriving before it was sent). The checks
    run over whole columns and blocks: no Python work per envelope, nor per payload key."""
    if len(frame) > MAX_FRAME_BYTES:
        raise BusError(f"frame of {len(frame)} bytes exceeds the bus limit {MAX_FRAME_BYTES}")
    item = _unpack(frame, "frame")
    shape = "[version, run, round, host, state, strings, t0, width, header, schemas]"
    if not (type(item) is list and item):
        raise BusError(f"frame must be a list {shape}, got {type(item).__name__}")
    if type(item[0]) is not int or item[0] != FRAME_VERSION:
        raise BusError(f"frame version {item[0]!r}; this host speaks {FRAME_VERSION}")
    if len(item) != 10:
        raise BusError(f"frame must be a 10-item list {shape}, got {len(item)} items")
    _, frame_run, round_no, src_host, state, strings, t0_ns, width, header, schemas = item
    if frame_run != run_id:
        raise BusError(f"frame of run {frame_run!r} reached run {run_id!r}")
    if not (type(round_no) is int and type(src_host) is int and type(state) is int
            and state in ROUND_STATES):  # fmt: skip
        raise BusError(f"frame round and host must be ints, state one of {ROUND_STATES}")
    if not (type(strings) is list and type(header) is bytes and type(schemas) is list):
        raise BusError("frame strings must be a list, header bytes and schemas a list")
    try:
        "".join(strings)  # a TypeError for anything not a str (the fastest check here)
    except TypeError:
        raise BusError("frame string table must hold only str") from None
    if not (type(t0_ns) is int and 0 <= t0_ns < TIME_LIMIT_NS and type(width) is int
            and width in _HEADER_DTYPES):  # fmt: skip
        raise BusError(
            f"frame t0 must be an int in [0, 2**62) ns and header width 4 or 8, got {t0_ns!r} "
            f"and {width!r}"
        )
    n_strings = len(strings)
    n, extra = divmod(len(header), len(HEADER_ROWS) * width)
    if extra:
        raise BusError(
            f"frame header of {len(header)} bytes is not {len(HEADER_ROWS)} rows {HEADER_ROWS} "
            f"of {width}-byte values"
        )
    rows = np.frombuffer(header, _HEADER_DTYPES[width]).reshape(len(HEADER_ROWS), n)
    if n:
        _check_header(rows, t0_ns, n_strings, len(schemas))
        if len(schemas) == 1:
            counts = [n]
        else:
            counts = np.bincount(rows[_SCHEMA].astype(np.intp), minlength=len(schemas)).tolist()
    else:
        counts = [0] * len(schemas)
    text_blocks: list[bytes] = []
    flag_blocks: list[bytes] = []
    layouts = [
        _check_schema(number, schema, n_members, text_blocks, flag_blocks)
        for number, (schema, n_members) in enumerate(zip(schemas, counts, strict=True))
    ]
    if text_blocks:
        indices = np.frombuffer(
            text_blocks[0] if len(text_blocks) == 1 else b"".join(text_blocks),
            _FIXED_DTYPES["s"],
        )
        if int(np.maximum.reduce(indices)) >= n_strings:
            bad = indices[indices >= n_strings][0]
            raise BusError(
                f"payload string index {bad} out of range: the frame has {n_strings} strings"
            )
    for block in flag_blocks:
        if block.translate(None, b"\x00\x01"):
            raise BusError("a bool payload column holds a byte other than 0 and 1")
    batch = EnvelopeBatch(strings, t0_ns, rows, schemas, counts, layouts)
    return round_no, src_host, state, batch


def _check_header(rows: np.ndarray, t0_ns: int, n_strings: int, n_schemas: int) -> None:
    """Every row's values in range, with one maximum per row (the rows are unsigned: an int64
    that was negative is a huge value): src and dst below ``n_strings``, kinds known, times
    (``t0_ns`` + the row) and delays below 2**62, schemas below ``n_schemas``; seq is any
    int64 (or, in 4-byte rows, uint32)."""
    high = np.maximum.reduce(rows, axis=1).tolist()
    t_bound = TIME_LIMIT_NS - t0_ns
    if (high[_SRC] < n_strings and high[_DST] < n_strings and high[_KIND] < len(_KIND_CODES)
            and high[_T] < t_bound and high[_DELAY] < TIME_LIMIT_NS
            and high[_SCHEMA] < n_schemas):  # fmt: skip
        return
    bounds = (n_strings, n_strings, len(_KIND_CODES), t_bound, None, TIME_LIMIT_NS, n_schemas)
    for row, (value, bound) in enumerate(zip(high, bounds, strict=True)):
        if bound is None or value < bound:
            continue
        i = int(np.argmax(rows[row] >= bound))
        bad = int(rows[row, i].astype(_INT64))  # as the sender's int64
        if row == _T:
            raise BusError(f"envelope {i}: t_ns {t0_ns} + {int(rows[row, i])} outside [0, 2**62)")
        if row == _KIND:
            raise BusError(
                f"unknown envelope kind index {bad}: a frame's kinds are indices 0..."
                f"{len(_KIND_CODES) - 1} of the MessageKind codes {_KIND_CODES}"
            )
        if row == _DELAY and bad < 0:
            raise BusError(
                f"envelope {i}: delay_ns {bad} is negative (a message cannot arrive before "
                "it is sent)"
            )
        if row == _DELAY:
            raise BusError(f"envelope {i}: delay_ns {bad} outside [0, 2**62)")
        things = "schemas" if row == _SCHEMA else "strings"
        raise BusError(
            f"envelope {HEADER_ROWS[row]} index {bad} out of range: the frame has {bound} {things}"
        )


@dataclass(frozen=True)
class _Layout:
    """Where a schema's columns lie, per envelope: its fixed block is ``n * width`` bytes for
    ``n`` envelopes, a fixed-width column with unit ``u`` of tag ``t`` occupies bytes
    ``[n * u, n * (u + itemsize of t))``."""

    width: int
    units: tuple  # per key, the unit of its column in the fixed block (None: a loose column)
    text: tuple[int, int]  # the units where the "s" group starts and ends (string indices)
    flags: tuple[int, int]  # and the "?" group (bools)
    n_loose: int


# a schema's payloads are made by filling copies of a template a column at a time when it has
# at least this many envelopes (no Python call per value: 100 relays' payloads a third faster),
# else as a dict of each row (faster below ~20: the fill costs ~1 us a key whatever the count)
COLUMN_FILL_MIN_ENVELOPES = 16

# the layouts of the schemas met so far (a run has a few dozen): a schema seen before is
# checked by one lookup, not key by key (cleared when full: a bound on what frames can add)
_LAYOUTS: dict[tuple[tuple[str, ...], str], _Layout] = {}


def _known_layout(keys: list, tags: str) -> _Layout | None:
    """The layout of a schema met before (and found sound then), or None."""
    try:
        return _LAYOUTS.get((tuple(keys), tags))
    except TypeError:  # an unhashable key (refused by _schema_layout)
        return None


def _schema_layout(number: int, keys: list, tags: str) -> _Layout:
    """The layout of a schema's keys and tags, once they are found sound: distinct str keys,
    one known tag each."""
    if not set(map(type, keys)) <= {str} or len(set(keys)) != len(keys):
        raise BusError(f"payload schema {number}: keys must be distinct str, got {keys!r:.200}")
    if len(tags) != len(keys) or not set(tags) <= _TAGS:
        raise BusError(
            f"payload schema {number}: tags {tags!r:.200} must be one of "
            f"{''.join(sorted(_TAGS))} for each of its {len(keys)} keys"
        )
    units: list = [None] * len(keys)
    group_bounds = {}
    unit = 0
    for k in _fixed_order(tags):
        group_start = group_bounds.get(tags[k], (unit,))[0]
        units[k] = unit
        unit += _FIXED_DTYPES[tags[k]].itemsize
        group_bounds[tags[k]] = (group_start, unit)
    return _Layout(unit, tuple(units), group_bounds.get("s", (0, 0)),
                   group_bounds.get("?", (0, 0)), tags.count("m"))  # fmt: skip


def _check_schema(
    number: int, schema, n_members: int, text_blocks: list, flag_blocks: list
) -> _Layout:
    """One ``[keys, tags, fixed, loose]`` schema: distinct str keys, a known tag per key, a
    fixed block and loose columns of the sizes the tags give for ``n_members`` values (the
    envelopes the header assigns to the schema). Hands on the block of string indices and
    the block of bools for the frame's checks over all its schemas; returns its layout."""
    if not (type(schema) is list and len(schema) == 4):
        raise BusError(f"payload schema {number} must be a list [keys, tags, fixed, loose]")
    keys, tags, fixed, loose = schema
    if not (type(keys) is list and type(tags) is str and type(fixed) is bytes
            and type(loose) is list):  # fmt: skip
        raise BusError(
            f"payload schema {number}: keys must be a list, tags a str, fixed bytes, loose a list"
        )
    if n_members == 0:  # a sender never makes one: one frame, one encoding
        raise BusError(f"payload schema {number} has no envelopes")
    layout = _known_layout(keys, tags)
    known = layout is not None
    if not known:
        layout = _schema_layout(number, keys, tags)
    if len(fixed) != n_members * layout.width:
        raise BusError(
            f"payload schema {number}: fixed block of {len(fixed)} bytes; tags {tags!r:.200} "
            f"for {n_members} envelopes need {n_members * layout.width}"
        )
    if len(loose) != layout.n_loose or (
        loose and not all(type(column) is list and len(column) == n_members for column in loose)
    ):
        raise BusError(
            f"payload schema {number}: loose columns must be {layout.n_loose} lists (tags "
            f"{tags!r:.200}) of {n_members} items each"
        )
    start, end = layout.text
    if end > start:
        text_blocks.append(fixed[n_members * start : n_members * end])
    start, end = layout.flags
    if end > start:
        flag_blocks.append(fixed[n_members * start : n_members * end])
    if not known and len(keys) <= MAX_LAYOUT_KEYS:  # sound: kept (a refused one never is)
        if len(_LAYOUTS) >= MAX_LAYOUTS:
            _LAYOUTS.clear()
        _LAYOUTS[tuple(keys), tags] = layout
    return layout


def _schema_columns(
    keys: list[str], tags: str, fixed: bytes, loose: list, n: int, strings: list[str],
    layout: _Layout,
) -> Iterator[tuple[str, Iterable]]:  # fmt: skip
    """``(key, values)`` of a checked schema's columns (module docstring; ``layout``: the
    one :func:`_check_schema` found)."""
    loose_columns = iter(loose)
    view = memoryview(fixed)
    for key, tag, unit in zip(keys, tags, layout.units, strict=True):
        if tag == "m":
            yield key, next(loose_columns)  # as msgpack gave it
            continue
        dtype = _FIXED_DTYPES[tag]
        if _NATIVE_LITTLE:  # (a memoryview's cast: a third of numpy's cost on a few values)
            values = view[n * unit : n * (unit + dtype.itemsize)].cast(_VIEW_FORMATS[tag]).tolist()
        else:
            values = np.frombuffer(fixed, dtype, n, n * unit).tolist()
        if tag == "s":
            yield key, map(strings.__getitem__, values)
        elif tag == "?":
            yield key, map(_BOOLS.__getitem__, values)  # (bytes checked to be 0 or 1)
        else:
            yield key, values


def decode_frame(frame: bytes, run_id: str) -> tuple[int, int, int, list[Envelope]]:
    """:func:`decode_batch` with the envelopes made: ``(round, src_host, state, envelopes)``."""
    round_no, src_host, state, batch = decode_batch(frame, run_id)
    return round_no, src_host, state, batch.envelopes()


class EnvelopeBatch(Sequence[Envelope]):
    """The envelopes of one frame, as the checked columns :func:`decode_batch` made of it.

    A sequence of :class:`Envelope`: the objects are made all at once (and kept) the first
    time one is asked for, in bulk, without a Python call per envelope
    (:meth:`Envelope.from_columns`; the checks ``Envelope`` makes of each were made over the
    columns). The columns themselves are :attr:`kind` (MessageKind codes), :attr:`t_ns`,
    :attr:`seq`, :attr:`arrival_ns` (read-only int64 arrays), :attr:`src` and :attr:`dst`.
    """

    __slots__ = ("_counts", "_envelopes", "_layouts", "_rows", "_schemas", "_t0_ns", "strings")

    def __init__(
        self,
        strings: list[str],
        t0_ns: int,
        rows: np.ndarray,
        schemas: list,
        counts: list[int],
        layouts: list[_Layout],
    ) -> None:
        # only decode_batch makes one: its arguments are checked there
        self.strings = strings  # the frame's string table
        self._t0_ns = t0_ns
        self._rows = rows
        self._schemas = schemas
        self._counts = counts
        self._layouts = layouts
        self._envelopes: list[Envelope] | None = None

    def __len__(self) -> int:
        return self._rows.shape[1]

    @property
    def src(self) -> list[str]:
        return list(map(self.strings.__getitem__, self._rows[_SRC].tolist()))

    @property
    def dst(self) -> list[str]:
        return list(map(self.strings.__getitem__, self._rows[_DST].tolist()))

    @property
    def kind(self) -> np.ndarray:
        return _read_only(_KIND_CODE_ARRAY[self._rows[_KIND]])

    @property
    def t_ns(self) -> np.ndarray:
        return _read_only(self._rows[_T].astype(_INT64) + self._t0_ns)

    @property
    def seq(self) -> np.ndarray:
        return _read_only(self._rows[_SEQ].astype(_INT64))  # (8-byte rows: int64's bits)

    @property
    def arrival_ns(self) -> np.ndarray:
        # < 2**63: both below 2**62
        return _read_only(self.t_ns + self._rows[_DELAY].astype(_INT64))

    def payloads(self) -> list[dict[str, Any]]:
        """Each envelope's payload: new dicts, keys in the sender's order (values of an "m"
        column, lists and maps, are those of the batch's envelopes)."""
        n = len(self)
        if n == 0:
            return []
        payloads: list = [None] * n
        for number, ((keys, tags, fixed, loose), n_members, layout) in enumerate(
            zip(self._schemas, self._counts, self._layouts, strict=True)
        ):
            columns = _schema_columns(keys, tags, fixed, loose, n_members, self.strings, layout)
            if n_members < COLUMN_FILL_MIN_ENVELOPES:  # a dict of each row's values
                columns = [values for _, values in columns]
                rows = zip(*columns, strict=True) if keys else repeat((), n_members)
                dicts = list(map(dict, map(zip, repeat(keys), rows)))
            else:  # copies of one template, filled a column at a time
                dicts = list(map(dict.copy, repeat(dict.fromkeys(keys), n_members)))
                for key, values in columns:
                    deque(map(operator.setitem, dicts, repeat(key), values), maxlen=0)
            if n_members == n:  # one schema for the whole frame (the usual case)
                return dicts
            positions = np.flatnonzero(self._rows[_SCHEMA] == number).tolist()
            deque(map(payloads.__setitem__, positions, dicts), maxlen=0)
        return payloads

    def envelopes(self) -> list[Envelope]:
        """The envelopes, in frame order (a new list; the Envelope objects are made once)."""
        return list(self._made())

    def _made(self) -> list[Envelope]:
        if self._envelopes is None and not len(self):
            self._envelopes = []  # most frames of a run (a host with nothing for a peer)
        elif self._envelopes is None:
            # plain lists, not numpy: a frame holds a few envelopes, where numpy's per-call
            # cost is most of the cost (~2.5 us less a frame of 1-20 envelopes)
            strings = self.strings
            src, dst, kinds, relative_ns, seq, delay_ns, _ = self._rows.tolist()
            if self._rows.itemsize == 8 and seq and max(seq) >= 2**63:
                seq = self._rows[_SEQ].astype(_INT64).tolist()  # (8-byte rows: int64's bits)
            t_ns = list(map(operator.add, relative_ns, repeat(self._t0_ns)))
            self._envelopes = Envelope.from_columns(
                list(map(strings.__getitem__, src)),
                list(map(strings.__getitem__, dst)),
                list(map(_KIND_BY_INDEX.__getitem__, kinds)),
                t_ns,
                seq,
                list(map(operator.add, t_ns, delay_ns)),  # < 2**63: both below 2**62
                self.payloads(),
                checked=True,  # decode_batch proved ints, known kinds and arrival >= t
            )
        return self._envelopes

    def __iter__(self) -> Iterator[Envelope]:
        return iter(self._made())

    def __getitem__(self, index):
        return self._made()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EnvelopeBatch):
            other = other.envelopes()
        if isinstance(other, (list, tuple)):
            return self._made() == list(other)
        return NotImplemented

    __hash__ = None  # a sequence compared by value

    def __repr__(self) -> str:
        return f"EnvelopeBatch({len(self)} envelopes)"


def _read_only(values: np.ndarray) -> np.ndarray:
    values.flags.writeable = False
    return values


def encode_bundle(
    run_id: str, round_no: int, src_host: int, state: int, frames: Sequence[tuple[int, bytes]]
) -> bytes:
    """A bundle of a round: ``frames`` as ``(destination host, encoded frame)`` (module
    docstring); :class:`BusError` if it would exceed :data:`MAX_FRAME_BYTES`."""
    bundle = msgpack.packb(
        [BUNDLE_MARK, run_id, int(round_no), int(src_host), int(state),
         [[int(host), frame] for host, frame in frames]],
        use_bin_type=True,
    )  # fmt: skip
    if len(bundle) > MAX_FRAME_BYTES:
        raise BusError(
            f"a bundle of {len(frames)} frames, {len(bundle)} bytes, exceeds the bus limit "
            f"{MAX_FRAME_BYTES}: a round's frames for one host travel in one bundle (shorter "
            "ticks send fewer envelopes a round)"
        )
    return bundle


def decode_bundle(raw: bytes, run_id: str) -> tuple[int, int, int, list[tuple[int, bytes]]]:
    """``(round, src_host, state, [(destination host, frame), ...])`` of a bundle of run
    ``run_id`` (the frames not yet decoded); :class:`BusError` for anything else."""
    item = _unpack(raw, "bundle")
    shape = "[mark, run, round, host, state, frames]"
    if not (type(item) is list and len(item) == 6 and item[0] == BUNDLE_MARK):
        raise BusError(f"bundle must be a 6-item list {shape}")
    _, bundle_run, round_no, src_host, state, frames = item
    if bundle_run != run_id:
        raise BusError(f"bundle of run {bundle_run!r} reached run {run_id!r}")
    if not (
        type(round_no) is int
        and type(src_host) is int
        and type(state) is int
        and state in ROUND_STATES
        and type(frames) is list
        and len(frames) <= MAX_BUNDLE_FRAMES
        and all(
            type(pair) is list and len(pair) == 2 and type(pair[0]) is int
            and type(pair[1]) is bytes
            for pair in frames
        )
    ):  # fmt: skip
        raise BusError(
            f"bundle round and host must be ints, state one of {ROUND_STATES} and frames a "
            f"list of at most {MAX_BUNDLE_FRAMES} [host, frame bytes] pairs"
        )
    return round_no, src_host, state, [(host, frame) for host, frame in frames]


def encode_call(run_id: str, seq: int, src: int, body: Sequence) -> bytes:
    """A call between the driver and a host (module docstring); ``body`` is a list of msgpack
    values (bytes stay bytes)."""
    return msgpack.packb([CALL_MARK, run_id, int(seq), int(src), list(body)], use_bin_type=True)


def decode_call(frame: bytes, run_id: str) -> tuple[int, int, list]:
    """``(seq, src, body)`` of a call of run ``run_id``; :class:`BusError` for anything else.
    The body's own shape is for the receiver to check."""
    item = _unpack(frame, "call")
    if not (isinstance(item, list) and len(item) == 5 and item[0] == CALL_MARK):
        raise BusError("call must be a 5-item list [mark, run, seq, src, body]")
    _, call_run, seq, src, body = item
    if call_run != run_id:
        raise BusError(f"call of run {call_run!r} reached run {run_id!r}")
    if not (type(seq) is int and type(src) is int and isinstance(body, list) and body):
        raise BusError("call seq and src must be ints and its body a non-empty list")
    return seq, src, body


@dataclass(frozen=True)
class BusFaults:
    """Faults injected at the sending side of the bus (chaos tests): each frame, bundle and
    call is sent twice with probability ``duplicate``, and held back with probability
    ``delay`` until the sender next waits (a host: for frames, bundles or a command; the driver
    flushes after each tick's commands and each stop), so it arrives after messages sent
    later, and a duplicate possibly in a later round. Draws are keyed by (seed, sender, message
    count): the same faults every run."""

    seed: int = 0
    duplicate: float = 0.0
    delay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("duplicate", "delay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"BusFaults.{name} must be a probability in [0, 1], got {value}")


# file names of the two certificates in a keys directory (pyzmq's zmq.auth format)
SERVER_CERTIFICATE = "server.key_secret"
CLIENT_CERTIFICATE = "client.key_secret"


@dataclass(frozen=True)
class BusKeys:
    """A run's CurveZMQ keys (z85-encoded, 40 bytes each): the server pair every host's PULL
    socket serves with, and the client pair every PUSH socket connects with (the only client
    key the hosts' ZAP handlers admit)."""

    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def generate(cls) -> BusKeys:
        """Fresh keys (a run's, when none are supplied)."""
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        return cls(server_public, server_secret, client_public, client_secret)

    @classmethod
    def load(cls, directory) -> BusKeys:
        """The keys in ``directory``: :data:`SERVER_CERTIFICATE` and :data:`CLIENT_CERTIFICATE`,
        as :meth:`create` (or pyzmq's ``zmq.auth.create_certificates``) writes them. A missing
        or unreadable file is a ValueError naming it and the fix."""
        from pathlib import Path

        import zmq.auth

        pairs = []
        for name in (SERVER_CERTIFICATE, CLIENT_CERTIFICATE):
            path = Path(directory) / name
            try:
                public, secret = zmq.auth.load_certificate(path)
            except (OSError, ValueError) as err:
                raise ValueError(
                    f"cannot read the bus key {path} ({err}): give a directory made by "
                    "'qntwin bus-keys DIR', or leave --bus-keys out to generate keys for the run"
                ) from None
            if secret is None or len(public) != 40 or len(secret) != 40:
                raise ValueError(
                    f"{path} holds no secret key: give the {name} file that "
                    "'qntwin bus-keys DIR' writes"
                )
            pairs += [public, secret]
        return cls(*pairs)

    @staticmethod
    def create(directory) -> list:
        """Write a fresh server and client certificate pair into ``directory`` (created);
        returns the files written. The ``.key_secret`` files are secrets."""
        from pathlib import Path

        import zmq.auth

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        umask = os.umask(0o077)  # the secret files are never readable by others, not even briefly
        try:
            for stem in ("server", "client"):
                public, secret = zmq.auth.create_certificates(directory, stem)
                written += [Path(public), Path(secret)]
        finally:
            os.umask(umask)
        for path in written:
            if path.suffix == ".key":
                path.chmod(0o644)  # public keys may be shared
        return written


class _RunClientOnly:
    """ZAP credentials check: admits the run's client public key alone (z85)."""

    def __init__(self, client_public: bytes) -> None:
        self.client_public = client_public

    def callback(self, domain: str, key: bytes) -> bool:
        return key == self.client_public


class BusEndpoint:
    """One endpoint's sockets (a host's, or the driver's): a bound PULL for its inbox and a
    PUSH per peer it sends to.

    A round's frames are told apart by (round, sending host): a second copy of a frame, or a
    frame of a round already finished (only a copy can arrive that late), is dropped and
    counted in :attr:`stats`; envelopes are also idempotent at the nodes (``SeenMessages``).
    """

    def __init__(
        self,
        run_id: str,
        host_id: int,
        bind_ip: str = "127.0.0.1",
        *,
        curve: bool | BusKeys = False,
        recv_timeout_s: float = 60.0,
        faults: BusFaults | dict | None = None,
        node_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.host_id = int(host_id)
        # the Ray node this endpoint runs on (None: unknown): peers on the same node connect
        # over a Unix socket (:attr:`address`)
        self.node_id = node_id
        self.recv_timeout_ms = int(recv_timeout_s * 1000)
        # curve: the run's keys (True: fresh ones, for a bus of one endpoint's making)
        self.keys = BusKeys.generate() if curve is True else (curve or None)
        self._auth = None
        self._push: dict[int, zmq.Socket] = {}
        self._peers: dict[int, tuple[str, bytes | None]] = {}
        self._pull = None
        try:
            self._open(bind_ip)
        except BaseException:
            self.close()  # an authenticator thread or a context already started
            raise
        # what came before it was asked for, by kind (FRAMES, BUNDLES, CALLS)
        self._kept: dict[str, list[tuple]] = {FRAMES: [], BUNDLES: [], CALLS: []}
        self.faults = BusFaults(**faults) if isinstance(faults, dict) else faults
        self._held: list[tuple[int, bytes]] = []  # frames the fault injector delays
        self._n_sent = 0
        self.stats = {"frames_sent": 0, "duplicates_sent": 0, "delayed": 0,
                      "duplicates_dropped": 0}  # fmt: skip

    def _open(self, bind_ip: str) -> None:
        """The context (with its ZAP handler when authenticated) and the bound PULL socket."""
        if self.keys is None:
            self._context = zmq.Context.instance()
        else:
            # ZAP handlers are per context: an authenticated endpoint owns its context
            from zmq.auth.thread import ThreadAuthenticator

            self._context = zmq.Context()
            self._auth = ThreadAuthenticator(self._context)
            self._auth.start()
            self._auth.configure_curve_callback(
                domain="*", credentials_provider=_RunClientOnly(self.keys.client_public)
            )
        self._pull = self._context.socket(zmq.PULL)
        self._pull.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK_FRAMES)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pull.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        # a receive waits this long, then raises zmq.Again (cheaper than polling first)
        self._pull.setsockopt(zmq.RCVTIMEO, self.recv_timeout_ms)
        self.server_public_key: bytes | None = None
        if self.keys is not None:
            self._pull.curve_server = True
            self._pull.curve_secretkey = self.keys.server_secret
            self._pull.curve_publickey = self.keys.server_public
            self.server_public_key = self.keys.server_public
        port = self._pull.bind_to_random_port(f"tcp://{bind_ip}")
        self.endpoint = f"tcp://{bind_ip}:{port}"
        self.local_endpoint: str | None = None  # the same inbox, for peers on this node
        if self.node_id is not None and sys.platform == "linux" and zmq.has("ipc"):
            # in the abstract namespace ("@"): no file to leave behind when Ray kills the
            # process (Linux only; elsewhere TCP alone)
            self.local_endpoint = f"ipc://@qntwin-bus-{uuid.uuid4().hex}"
            self._pull.bind(self.local_endpoint)

    @property
    def address(self) -> tuple[str, bytes | None, str | None, str | None]:
        """What a peer needs to reach this endpoint (:meth:`set_peers`): ``(TCP endpoint,
        CurveZMQ server key or None, Unix-socket endpoint or None, Ray node id or None)``."""
        return self.endpoint, self.server_public_key, self.local_endpoint, self.node_id

    def set_peers(self, peers: dict[int, tuple]) -> None:
        """host id -> its :attr:`address`, or ``(endpoint, CurveZMQ server public key or
        None)``. A peer on this endpoint's Ray node and IP is reached over its Unix socket (ipc:
        ~20% less CPU a message than TCP over loopback, measured), any other over TCP. A socket to
        a peer whose endpoint changed (a host restored elsewhere) is closed; the next send
        opens one to the new endpoint."""
        old, self._peers = self._peers, {int(h): self._reach(a) for h, a in peers.items()}
        for host in list(self._push):
            if self._peers.get(host) != old.get(host):
                self._push.pop(host).close(linger=0)  # a lost host's: nothing left to deliver

    def _reach(self, address: tuple) -> tuple[str, bytes | None]:
        """(the endpoint to connect to, the server key) of a peer's address: its Unix socket
        when it has one, on this endpoint's Ray node and IP (a Ray Client driver reports the
        head node's id from another machine: its IP tells it apart), else its TCP one."""
        endpoint, key, *local = address
        if local:
            local_endpoint, node_id = local
            if (local_endpoint and self.node_id is not None and node_id == self.node_id
                    and _tcp_host(str(endpoint)) == _tcp_host(self.endpoint)):  # fmt: skip
                endpoint = local_endpoint
        return str(endpoint), key

    @property
    def peers(self) -> dict[int, tuple[str, bytes | None]]:
        """The peers this endpoint knows (a copy): id -> (the endpoint it connects to, server
        key or None)."""
        return dict(self._peers)

    def _socket(self, host: int) -> zmq.Socket:
        sock = self._push.get(host)
        if sock is None:
            try:
                endpoint, server_key = self._peers[host]
            except KeyError:
                raise BusError(f"host {self.host_id} has no endpoint for host {host}") from None
            sock = self._context.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK_FRAMES)
            sock.setsockopt(zmq.LINGER, LINGER_MS)
            # a send that cannot be queued within the timeout is an error, not a hang
            sock.setsockopt(zmq.SNDTIMEO, self.recv_timeout_ms)
            if server_key is not None:
                if self.keys is None:
                    raise BusError(
                        f"host {host} authenticates its bus (CurveZMQ) and host {self.host_id} "
                        "has no keys: start every host with the run's BusKeys"
                    )
                sock.curve_serverkey = server_key
                sock.curve_publickey = self.keys.client_public
                sock.curve_secretkey = self.keys.client_secret
            sock.connect(endpoint)
            self._push[host] = sock
        return sock

    def send(
        self, host: int, round_no: int, envelopes: list[Envelope], state: int = ROUND_ACTIVE
    ) -> int:
        """Send one frame of ``round_no`` to ``host``, its nodes' round ``state`` with it;
        returns its size in bytes."""
        frame = encode_frame(self.run_id, round_no, self.host_id, envelopes, state)
        self._send(host, frame)
        return len(frame)

    def send_bundle(
        self, host: int, round_no: int, state: int, frames: Sequence[tuple[int, bytes]]
    ) -> None:
        """Send ``host`` a bundle of ``round_no`` (:meth:`receive_bundles`): ``frames`` as
        ``(destination host, encoded frame)``, and a round ``state``."""
        self._send(host, encode_bundle(self.run_id, round_no, self.host_id, state, frames))

    def send_call(self, dst: int, seq: int, body: Sequence) -> None:
        """Send ``dst`` (a host, or the :data:`DRIVER`) the call ``seq`` (module docstring)."""
        self._send(dst, encode_call(self.run_id, seq, self.host_id, body))

    def _send(self, host: int, frame: bytes) -> None:
        """Hand a frame, bundle or call over, with the faults injected (if any)."""
        copies = 1
        if self.faults is not None:
            dup, delay = self._draws()
            copies += dup < self.faults.duplicate
            self.stats["duplicates_sent"] += copies - 1
            if delay < self.faults.delay:
                self._held.append((host, frame))
                self.stats["delayed"] += 1
                copies -= 1
        for _ in range(copies):
            self._push_frame(host, frame)

    def _draws(self) -> tuple[float, float]:
        # (the driver's id is -1: a seed sequence takes no negative entry)
        rng = np.random.default_rng([self.faults.seed, self.host_id % 2**32, self._n_sent])
        self._n_sent += 1
        return float(rng.random()), float(rng.random())

    def flush(self) -> None:
        """Send the frames the fault injector held back, the latest first."""
        held, self._held = self._held, []
        for host, frame in reversed(held):
            self._push_frame(host, frame)

    def _push_frame(self, host: int, frame: bytes) -> None:
        try:
            self._socket(host).send(frame, copy=True)
        except zmq.Again:
            raise BusError(
                f"host {self.host_id} could not hand a frame to host {host} within "
                f"{self.recv_timeout_ms} ms: is it alive?"
            ) from None
        self.stats["frames_sent"] += 1

    def receive(self, round_no: int, n_frames: int) -> list[Envelope]:
        """The envelopes of ``n_frames`` frames of ``round_no`` (frames of later rounds are
        kept for them; a second copy of a frame, or a frame of an earlier round, is
        dropped)."""
        return self.receive_flagged(round_no, n_frames)[0]

    def receive_flagged(self, round_no: int, n_frames: int) -> tuple[list[Envelope], int]:
        """:meth:`receive`, and the largest round state of the frames' senders
        (:data:`ROUND_IDLE` for no frame). Waits for frames from ``n_frames`` distinct
        hosts."""
        batches, state = self.receive_batches(round_no, n_frames)
        got: list[Envelope] = []
        for batch in batches:
            got.extend(batch)
        return got, state

    def receive_batches(self, round_no: int, n_frames: int) -> tuple[list[EnvelopeBatch], int]:
        """:meth:`receive_flagged` with each frame's envelopes as the checked columns of an
        :class:`EnvelopeBatch` (no Envelope objects made yet)."""
        if n_frames == 1 and not self._held and not self._kept[FRAMES]:
            # the usual wait (one frame, nothing held or kept) without _gather's bookkeeping:
            # ~3 us of a ~30 us frame of 100 envelopes. Anything but the frame awaited goes
            # where _gather would have put it, and _gather takes over
            kind, message = self._next_message(lambda: f"1 frame(s) of round {round_no}")
            if kind == FRAMES and message[0] == round_no:
                return [message[3]], message[2]
            self._kept[kind].append(message)
        got: list[EnvelopeBatch] = []
        states: list[int] = []

        def accept(frame) -> None:
            got.append(frame[3])
            states.append(frame[2])

        self._gather(FRAMES, round_no, n_frames, accept, "frame(s)")
        return got, max(states, default=ROUND_IDLE)

    def receive_bundles(
        self, round_no: int, n_bundles: int
    ) -> dict[int, tuple[int, list[tuple[int, bytes]]]]:
        """The bundles of ``round_no`` from ``n_bundles`` distinct hosts, by sending host:
        ``(state, [(destination host, frame), ...])``, the frames not yet decoded."""
        got: dict[int, tuple[int, list[tuple[int, bytes]]]] = {}

        def accept(bundle) -> None:
            got[bundle[1]] = (bundle[2], bundle[3])

        self._gather(BUNDLES, round_no, n_bundles, accept, "bundle(s)")
        return got

    def receive_call(self, seq: int, src: int) -> list:
        """The body of call ``seq`` from ``src`` (a host waiting for the driver's next
        command). Waits as long as it takes: the driver may be busy between ticks, and a host
        outlives its driver by nothing (Ray stops the actors a driver owns with it)."""
        got: list = []

        def accept(call) -> None:
            if call[1] != src:
                raise BusError(f"host {self.host_id} got call {call[0]} from {call[1]}, not {src}")
            got.append(call[2])

        self._gather(CALLS, seq, 1, accept, f"call {seq}", patient=True)
        return got[0]

    def serve_calls(self, first_seq: int, answer) -> int:
        """Answer the driver's calls from call ``first_seq`` on, each with the reply body
        ``answer(body, seq)`` (sent back as call ``seq``), until a ``["stop"]``; returns how
        many were answered. What an actor's ``serve`` Ray call runs (hosts, edge actors): while
        it runs, the actor takes no other Ray call, so the driver sends ``stop`` before any."""
        seq = int(first_seq)
        while True:
            body = self.receive_call(seq, DRIVER)
            if body == ["stop"]:
                self.flush()  # a reply the fault injector held must reach the driver
                return seq - first_seq
            self.send_call(DRIVER, seq, answer(body, seq))
            seq += 1

    def poll_call(self, timeout_ms: int) -> tuple[int, int, list] | None:
        """The next call off the socket as ``(seq, src, body)``, or None if none comes within
        ``timeout_ms`` (the driver, waiting for replies while it watches the hosts). Only
        calls may come to the driver: anything else is a :class:`BusError`. Copies are the
        caller's to drop (it knows which replies it waits for)."""
        self.flush()
        if self._kept[CALLS]:
            return self._kept[CALLS].pop(0)
        if not self._pull.poll(timeout_ms):
            return None
        kind, message = self._next_message(lambda: "a call")
        if kind != CALLS:
            raise BusError(f"endpoint {self.host_id} takes only calls, got a {kind}")
        return message

    def _gather(
        self, kind: str, round_no: int, n_senders: int, accept, what: str, patient: bool = False
    ) -> None:
        """Hand ``accept`` the messages of ``kind`` (frames, bundles, or calls,
        whose seq stands for the round) of ``round_no``, one per sender, until ``n_senders``
        senders' came: those kept from before first, then off the socket. One of a later
        round, or of another kind, is kept for the call that asks for it; a second copy, or
        one of a round already over (only a copy comes that late), is dropped and counted.
        ``patient``: wait past the receive timeout."""
        self.flush()  # never wait while holding messages a peer may be waiting for
        senders: set[int] = set()
        later: list[tuple] = []

        def take(message) -> None:
            message_round, src = message[0], message[1]
            if message_round > round_no:
                later.append(message)
            elif message_round < round_no or src in senders:
                self.stats["duplicates_dropped"] += 1  # a copy (originals came first)
            else:
                senders.add(src)
                accept(message)

        early, self._kept[kind] = self._kept[kind], []
        for message in early:
            take(message)

        def awaited() -> str:  # (made only for an error: a round's wait is on the hot path)
            return f"{n_senders - len(senders)} {what} of round {round_no}"

        while len(senders) < n_senders:
            message_kind, message = self._next_message(awaited, patient)
            if message_kind == kind:
                take(message)
            else:
                self._kept[message_kind].append(message)
        self._kept[kind] = later

    def _next_message(self, awaited, patient: bool = False) -> tuple[str, tuple]:
        """The next thing off the socket, decoded: ``(BUNDLES, (round, src, state, frames))``
        for a bundle, ``(CALLS, (seq, src, body))`` for a call, ``(FRAMES, (round, src,
        state, batch))`` for a frame. ``awaited()`` says what was awaited, for the error
        if nothing comes; ``patient``: wait past the receive timeout."""
        while True:
            try:
                raw = self._pull.recv(copy=True)
                break
            except zmq.Again:
                if not patient:
                    raise BusError(
                        f"host {self.host_id} waited {self.recv_timeout_ms} ms for {awaited()}: "
                        "a peer host is gone or stuck"
                    ) from None
        if raw.startswith(_BUNDLE_PREFIX):
            return BUNDLES, decode_bundle(raw, self.run_id)
        if raw.startswith(_CALL_PREFIX):
            return CALLS, decode_call(raw, self.run_id)
        return FRAMES, decode_batch(raw, self.run_id)

    def close(self) -> None:
        for sock in self._push.values():
            sock.close()
        if self._pull is not None:
            self._pull.close()
        self._push.clear()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
            self._context.term()  # waits out the PUSH sockets' linger


def _tcp_host(endpoint: str) -> str:
    """The host part of ``tcp://host:port``."""
    return endpoint.removeprefix("tcp://").rpartition(":")[0]


class BusRegistry:
    """The run's bus endpoints, host id -> its :attr:`BusEndpoint.address`: a named Ray actor
    (``actors.runtime``) that every host registers with, the driver reads back, and hosts
    restored after a loss register with again."""

    def __init__(self) -> None:
        self._endpoints: dict[int, tuple] = {}

    def register(self, host_id: int, address: tuple) -> bool:
        self._endpoints[int(host_id)] = tuple(address)
        return True

    def endpoints(self) -> dict[int, tuple]:
        return dict(self._endpoints)
