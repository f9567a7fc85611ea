"""The local runtime's controller processes: a controller's plans and decisions on forked
processes of its own while the engine ticks (``qntwin run --runtime local``, ``qntwin compare``,
``qntwin bench drl``).

The engine asks for each plan a planning period before it takes effect, and for each tick's
decision a tick before it is needed (the decision for G(t + 2 dt) while tick t runs), so both
can be computed while the engine goes on, as the Ray runtime's cloud planner and edge actors
compute them (actors.controllers). In the engine's process they cannot: the planner (the
forecast from the orbits, the QP's setup, the sweep, the observer's filters) and the edge tier
(candidate searches, features, inference) are Python and numpy that hold the interpreter's lock
most of the time: on mega a planner thread saved nothing (the ticks paid for every plan all the
same, README, "The DRL tier"), and a decision made in the engine's process holds the tick up for
its whole length. A process of its own runs them on the other core.

A :class:`ControllerProcess` is forked from the controller when its first plan (or decision) is
asked for, so it starts with the controller as it is, bound to its scenario, without pickling
it, and from then on keeps the state of what it computes (the plan's: the QP's warm start, the
observer's filters, the deferrals decided; the edge tier's: each flow's current path, the
searches' bounds). Calls run one at a time, in the order asked for, on the process's copy, so a
controller computes there what it computes alone or on the Ray runtime's actors: the plans and
decisions are functions of the views given, in order (the tests compare the metrics). The
controller object in the engine's process stays as it was when forked. (One process forked for
the run: forking a process for each plan did no better than the thread, its copy-on-write
faults paid every plan.)
"""

from __future__ import annotations

import dataclasses
import mmap
import multiprocessing
import pickle
import signal
import traceback
import weakref
from collections.abc import Callable

__all__ = ["ControllerProcess", "ForkedController", "forked_controllers"]

SHARED_BYTES = 64 * 2**20
"""the region a call's arrays travel in (memory only where touched: a mega view, ~0.5 MB)"""


class ControllerProcess:
    """``callee``'s methods called on a forked process, in the order asked for.

    :meth:`submit` sends a call and returns the callable that waits for its result; the calls
    run one at a time, in order, on the process's copy of ``callee`` (forked when this is made:
    what the caller changes on its own copy afterwards, the process does not see). An exception
    on the process is raised by the waiting callable, as a RuntimeError carrying the process's
    traceback; so is the process's end. :meth:`close` (or the object being collected) ends the
    process.

    A call's arrays (pickle's out-of-band buffers) travel in a memory region the process shares,
    and only the rest through the pipe: a mega view's 0.44 MB of edge arrays sent through the
    pipe kept the caller ~0.75 ms a tick (the pipe holds 64 KB: the sender waits for the reader
    chunk by chunk). The process copies them out before it calls (what it keeps must not change
    under it), and the region is written again only once the call that used it has returned; a
    call made before then, or too large, goes through the pipe.
    """

    def __init__(self, callee, name: str) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, theirs = context.Pipe()
        self._shared = mmap.mmap(-1, SHARED_BYTES)  # (anonymous, shared with the fork)
        self._process = context.Process(
            target=_serve,
            args=(callee, theirs, self._conn, self._shared),
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
        """Call ``callee.method(*args)`` on the process; returns the callable that waits for
        the result (call it once)."""
        if not self._stop.alive:
            raise RuntimeError(f"{self._process.name}: the controller's process was closed")
        # the region is free once the call that used it returned (the process copied its
        # arrays out); else the arrays go through the pipe, pickled in band
        free = self._shared_by < self._received
        buffers: list[pickle.PickleBuffer] = []
        call = pickle.dumps(
            (method, args), protocol=5, buffer_callback=buffers.append if free else None
        )
        spans = []
        if buffers:
            raws = [b.raw() for b in buffers]
            if sum(r.nbytes for r in raws) <= SHARED_BYTES:
                at = 0
                for raw in raws:
                    self._shared[at : at + raw.nbytes] = raw
                    spans.append((at, raw.nbytes))
                    at += raw.nbytes
                self._shared_by = self._sent
            else:
                call = pickle.dumps((method, args), protocol=5)  # (too large: the pipe)
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


def _serve(callee, conn, callers, shared) -> None:
    """The process's loop: each (method, args) received (its arrays copied out of ``shared``)
    is called on ``callee``, and (True, result) or (False, traceback) sent back; None or the
    pipe's end ends it (its caller's end, ``callers``, was forked with it: closed here, so the
    caller's exit, even killed, is the pipe's end). Ctrl-C is the caller's to act on: it
    stops this process (``close``) as it unwinds. (Blocked, not only ignored: OSQP sets a
    handler of its own while it solves, and answered Ctrl-C with "Solver interrupted".)"""
    callers.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
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
            reply = (True, getattr(callee, method)(*args))
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


_VIEW_PARTS = ("flows", "node_index", "jurisdictions", "flow_endpoints", "plan")
"""the parts of a controller's view that stay the same from tick to tick (the same objects: the
engine's, which it does not change in place, and the plan in effect until the next)"""
_UNSENT = object()


class _Callee:
    """What a controller process calls: the controller's plan and decide, the decision's view
    made whole from the parts last sent."""

    def __init__(self, controller) -> None:
        self.controller = controller
        self.parts: dict[str, object] = {}

    def plan(self, view):
        return self.controller.plan(view)

    def decide(self, view, changed: dict):
        self.parts.update(changed)
        return self.controller.decide(dataclasses.replace(view, **self.parts))


class ForkedController:
    """A controller (the engine's ``controller``) that plans on one forked process and decides
    on another, each forked at its first call: the plans of a controller that plans
    (``plan_every_ticks > 0``), and the decisions of one that routes with an edge policy (its
    candidate searches and inference are the cost; a baseline's decision costs less than
    sending it the view). The rest it decides in the engine's process.

    A view is sent without the engine's edge lookup (a process builds its own from the
    snapshot); a decision's view also without the parts that stay the same (the flows, the node
    index, the jurisdictions, the flows' endpoints, the plan in effect: sent when they change,
    the process keeping the last): on mega the node index alone took 0.22 ms a tick to pickle
    and read back, the plan 0.18 ms. :meth:`close` ends the processes.
    """

    def __init__(self, controller) -> None:
        self.controller = controller
        self.name = controller.name
        self.plan_every_ticks = int(getattr(controller, "plan_every_ticks", 0))
        self.reads_key_fill = bool(getattr(controller, "reads_key_fill", False))
        self.shielded = bool(getattr(controller, "shielded", False))
        self.policy = getattr(controller, "policy", None)
        self.decides_forked = self.policy is not None
        self._planner: ControllerProcess | None = None
        self._decider: ControllerProcess | None = None
        self._sent: dict[str, object] = {}  # the view's parts last sent (held: ids stay theirs)

    def bind(self, scenario, seed: int | None = None) -> None:
        """The controller's own ``bind`` (the scenario it plans for), before any fork."""
        bind = getattr(self.controller, "bind", None)
        if bind is not None:
            bind(scenario, seed=seed)

    def submit_plan(self, view) -> Callable[[], object]:
        """The controller's plan for ``view`` on its planner process; returns the callable that
        waits for it (the engine collects it a planning period later)."""
        if self._planner is None:
            self._planner = ControllerProcess(_Callee(self.controller), f"{self.name}-planner")
        if getattr(view, "edge_lookup", None) is not None:
            view = dataclasses.replace(view, edge_lookup=None)
        return self._planner.submit("plan", view)

    def plan(self, view):
        return self.submit_plan(view)()

    def submit_decide(self, view) -> Callable[[], object]:
        """The controller's decision for ``view``: on its edge process if it decides there
        (called in time order), else here; returns the callable that gives it."""
        if not self.decides_forked:
            decision = self.controller.decide(view)
            return lambda: decision
        if self._decider is None:
            self._decider = ControllerProcess(_Callee(self.controller), f"{self.name}-edge")
        changed = {}
        for part in _VIEW_PARTS:
            value = getattr(view, part)
            if self._sent.get(part, _UNSENT) is not value:
                changed[part] = self._sent[part] = value
        lean = dataclasses.replace(view, edge_lookup=None, **dict.fromkeys(_VIEW_PARTS, None))
        return self._decider.submit("decide", lean, changed)

    def decide(self, view):
        return self.submit_decide(view)()

    def close(self) -> None:
        """End the processes (after the run; the engine's ``close``)."""
        for process in (self._planner, self._decider):
            if process is not None:
                process.close()
        self._planner = self._decider = None


def forked_controllers(spec, engine):
    """The engine's ``controllers`` hook (twin.engine.Engine) of the local runtime: the
    controller the engine made, on processes of its own; the controller itself where processes
    cannot be forked (Windows: the engine's process then plans and decides, to the same
    results, slower)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return engine.controller
    return ForkedController(engine.controller)
