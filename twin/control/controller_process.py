"""A controller's work on processes of its own, for the single-process engine.

The engine asks for each plan a planning period before it takes effect, and for each tick's
decision a tick before it is needed (twin.engine: the decision for G(t + 2 dt) is asked for
while tick t runs), so both can be computed while the engine goes on. On a thread they cannot:
the planner (the forecast from the orbits, the QP's setup, the sweep, the observer's filters)
and the edge tier (candidate searches, features, inference) are Python and numpy that hold the
interpreter's lock most of the time, and on mega the ticks paid for every plan and decision
all the same (README, "The DRL tier"). A process of its own runs them on the other core.

A :class:`ControllerProcess` is forked from the controller when its first plan (or decision)
is asked for, so it starts with the controller as it is (bound to its scenario, or restored
from a checkpoint) without pickling it, and from then on keeps the state of what it computes
(the plan's: the QP's warm start, the observer's filters, the deferrals decided; the edge
tier's: each flow's current path, the searches' bounds). Calls run one at a time, in the order
asked for, on the process's copy, so a controller computes there what it computes alone, in
the Ray runtime's cloud planner or on its edge actors: the plans and decisions are functions of
the views given, in order. A process forked once per run: forking a process for each plan did
no better than the thread, its copy-on-write faults paid every plan.
"""

from __future__ import annotations

import dataclasses
import mmap
import multiprocessing
import pickle
import traceback
import weakref
from collections.abc import Callable

__all__ = ["ControllerProcess", "DecidesOnItsProcess"]

SHARED_BYTES = 64 * 2**20
"""the region a call's arrays travel in (memory only where touched: a mega view, ~0.5 MB)"""


class ControllerProcess:
    """``controller``'s methods called on a forked process, in the order asked for.

    :meth:`submit` sends a call and returns the callable that waits for its result; the
    calls run one at a time, in order, on the process's copy of ``controller`` (forked when
    this is made: what the caller changes on its own copy afterwards, the process does not
    see). An exception on the process is raised by the waiting callable, as a RuntimeError
    carrying the process's traceback; so is the process's end. :meth:`close` (or the object
    being collected) ends the process.

    A call's arrays (pickle's out-of-band buffers) travel in a memory region the process
    shares, and only the rest through the pipe: a mega view's 0.44 MB of edge arrays sent
    through the pipe kept the caller ~0.75 ms a tick (the pipe holds 64 KB: the sender waits
    for the reader chunk by chunk). The process copies them out before it calls (what it
    keeps must not change under it), and the region is written again only once the call
    that used it has returned; a call made before then, or too large, goes through the pipe.
    """

    def __init__(self, controller, name: str) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, theirs = context.Pipe()
        self._shared = mmap.mmap(-1, SHARED_BYTES)  # (anonymous, shared with the fork)
        self._process = context.Process(
            target=_serve,
            args=(controller, theirs, self._conn, self._shared),
            name=name,
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._sent = 0  # calls sent
        self._received = 0  # replies read off the pipe
        self._replies: dict[int, tuple[bool, object]] = {}  # read, not yet collected
        self._shared_by = -1  # the last call whose arrays went through the shared region
        self._stop = weakref.finalize(self, _stop, self._conn, self._process, self._shared)

    def submit(self, method: str, *args) -> Callable[[], object]:
        """Call ``controller.method(*args)`` on the process; returns the callable that waits
        for the result (call it once)."""
        if not self._stop.alive:
            raise RuntimeError(f"{self._process.name}: the controller's process was closed")
        buffers: list[pickle.PickleBuffer] = []
        call = pickle.dumps((method, args), protocol=5, buffer_callback=buffers.append)
        spans = []
        if buffers:
            raws = [b.raw() for b in buffers]
            # free once the call that used it returned (the process copied its arrays out)
            if self._shared_by < self._received and sum(r.nbytes for r in raws) <= SHARED_BYTES:
                at = 0
                for raw in raws:
                    self._shared[at : at + raw.nbytes] = raw
                    spans.append((at, raw.nbytes))
                    at += raw.nbytes
                self._shared_by = self._sent
            else:
                call = pickle.dumps((method, args), protocol=5)  # (all through the pipe)
        self._conn.send((call, spans))
        seq = self._sent
        self._sent += 1
        return lambda: self._reply(seq)

    def _reply(self, seq: int) -> object:
        if seq not in self._replies and not self._stop.alive:
            raise RuntimeError(
                f"{self._process.name}: the controller's process was closed before call {seq} "
                "returned"
            )
        while seq not in self._replies:
            try:
                self._replies[self._received] = self._conn.recv()
            except EOFError:
                self._process.join(timeout=1.0)
                raise RuntimeError(
                    f"{self._process.name}: the controller's process ended (exit code "
                    f"{self._process.exitcode}) before call {seq} returned"
                ) from None
            self._received += 1
        ok, value = self._replies.pop(seq)
        if not ok:
            raise RuntimeError(f"{self._process.name}: a call failed on its process:\n{value}")
        return value

    def close(self) -> None:
        """End the process (calls not yet collected are lost)."""
        self._stop()


def _serve(controller, conn, callers, shared) -> None:
    """The process's loop: each (method, args) received (its arrays copied out of ``shared``)
    is called on ``controller``, and (True, result) or (False, traceback) sent back; None or
    the pipe's end ends it (its caller's end, ``callers``, was forked with it: closed here, so
    the caller's exit, even killed, is the pipe's end)."""
    callers.close()
    region = memoryview(shared)
    while True:
        try:
            received = conn.recv()
        except EOFError:
            return
        if received is None:
            return
        call, spans = received
        buffers = []
        for at, size in spans:
            buffer = bytearray(size)  # (writable, as the caller's arrays were)
            buffer[:] = region[at : at + size]
            buffers.append(buffer)
        method, args = pickle.loads(call, buffers=buffers)
        try:
            reply = (True, getattr(controller, method)(*args))
        except Exception:  # (sent back: the caller raises it)
            reply = (False, traceback.format_exc())
        conn.send(reply)


def _stop(conn, process, shared) -> None:
    # told to stop, not left to see the pipe's end: a process forked after this one holds a
    # copy of this end of the pipe, which would keep it open
    try:
        conn.send(None)
    except OSError:  # (it ended already)
        pass
    conn.close()
    process.join(timeout=5.0)
    if process.is_alive():
        process.kill()
        process.join()
    shared.close()


_UNSENT = object()


class DecidesOnItsProcess:
    """A controller whose ``decide`` runs on a :class:`ControllerProcess` of its own when the
    engine asks for it ahead (``submit_decide``), which keeps the edge tier's state from then
    on (the attributes ``_DECIDE_STATE`` names: a checkpoint asks the process for them, and
    :meth:`close` brings them back). Once decisions are submitted, this controller decides
    there: its own ``decide`` would decide from the state of the fork.

    A view is sent without the parts that stay the same from tick to tick (the flows, the
    node index, the jurisdictions, the flows' endpoints, the plan in effect: sent only when
    they change, the process keeping the last) and without the engine's edge lookup (the
    process builds its own from the snapshot): on mega the node index alone took 0.22 ms a
    tick to pickle and read back, the plan 0.18 ms.
    """

    name: str
    _DECIDE_STATE: tuple[str, ...] = ()
    """the attributes deciding changes"""
    _VIEW_PARTS = ("flows", "node_index", "jurisdictions", "flow_endpoints", "plan")
    _decider: ControllerProcess | None = None

    def submit_decide(self, view) -> Callable[[], object]:
        """``decide(view)`` on this controller's edge process (forked at the first call);
        returns the callable that waits for the decision. Called in time order."""
        if self._decider is None:
            self._decider = ControllerProcess(self, name=f"{self.name}-edge")
            self._sent_parts: dict[str, object] = {}  # (referenced: their ids stay theirs)
        changed = {}
        for part in self._VIEW_PARTS:
            value = getattr(view, part)
            if self._sent_parts.get(part, _UNSENT) is not value:
                changed[part] = self._sent_parts[part] = value
        lean = dataclasses.replace(view, edge_lookup=None, **dict.fromkeys(self._VIEW_PARTS, None))
        return self._decider.submit("_decide_sent", lean, changed)

    def _decide_sent(self, view, changed: dict):
        """On the process: ``decide`` for ``view`` with the parts last sent."""
        kept = self.__dict__.setdefault("_kept_parts", {})
        kept.update(changed)
        return self.decide(dataclasses.replace(view, **kept))

    def _decide_state(self) -> dict:
        return {key: getattr(self, key) for key in self._DECIDE_STATE}

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__() or {})
        for key in ("_decider", "_sent_parts", "_kept_parts"):
            state.pop(key, None)
        if self._decider is not None:  # the edge tier's state is its process's
            state.update(self._decider.submit("_decide_state")())
        return state

    def close(self) -> None:
        """End the edge process, taking the edge tier's state back from it first, so this
        controller decides on as it would have (and whatever else the controller closes)."""
        if self._decider is not None:
            state = self._decider.submit("_decide_state")()
            self._decider.close()
            del self._decider, self._sent_parts
            self.__dict__.update(state)
        close = getattr(super(), "close", None)
        if close is not None:
            close()
