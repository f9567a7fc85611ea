"""The cloud tier's planner on a process of its own, for the single-process engine.

The engine asks for each plan a planning period before it takes effect (twin.engine), so the
plan can be computed while the ticks run. On a thread it cannot: the planner (the forecast
from the orbits, the QP's setup, the sweep, the observer's filters) is Python and numpy that
hold the interpreter lock most of the time, so on mega the first plan's ~0.5 s and the
re-plans' ~0.4 s were paid by the ticks all the same (README, "The DRL tier"). A process of
its own runs them on the other core.

The process is forked from the controller when its first plan is asked for, so it starts
with the controller as it is (bound to its scenario, or restored from a checkpoint) without
pickling it, and keeps the plan's state (the QP's warm start, the observer's filters, the
deferrals decided) from then on; each plan is sent the planning view and sends its plan
back. Plans are made one at a time, in the order asked for, so the plans are those the same
controller makes on its own thread or in the Ray runtime's cloud actor: a function of the
views planned from, in order. (A process forked once: forking a process per plan did no
better than the thread, its copy-on-write faults paid every plan.)
"""

from __future__ import annotations

import multiprocessing
import traceback
import weakref
from collections.abc import Callable

__all__ = ["PlanProcess"]


class PlanProcess:
    """``planner``'s methods called on a forked process, in the order asked for.

    :meth:`submit` sends a call and returns the callable that waits for its result; the
    calls run one at a time, in order, on the process's copy of ``planner`` (forked when
    this is made: what the caller changes on its own copy afterwards, the process does not
    see). An exception on the process is raised by the waiting callable, as a RuntimeError
    carrying the process's traceback; so is the process's end. :meth:`close` (or the object
    being collected) ends the process.
    """

    def __init__(self, planner, name: str) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, theirs = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(planner, theirs, self._conn), name=name, daemon=True
        )
        self._process.start()
        theirs.close()
        self._sent = 0  # calls sent
        self._received = 0  # replies read off the pipe
        self._replies: dict[int, tuple[bool, object]] = {}  # read, not yet collected
        self._stop = weakref.finalize(self, _stop, self._conn, self._process)

    def submit(self, method: str, *args) -> Callable[[], object]:
        """Call ``planner.method(*args)`` on the process; returns the callable that waits for
        the result (call it once)."""
        if not self._stop.alive:
            raise RuntimeError(f"{self._process.name}: the planner's process was closed")
        self._conn.send((method, args))
        seq = self._sent
        self._sent += 1
        return lambda: self._reply(seq)

    def _reply(self, seq: int) -> object:
        if seq not in self._replies and not self._stop.alive:
            raise RuntimeError(
                f"{self._process.name}: the planner's process was closed before call {seq} returned"
            )
        while seq not in self._replies:
            try:
                self._replies[self._received] = self._conn.recv()
            except EOFError:
                self._process.join(timeout=1.0)
                raise RuntimeError(
                    f"{self._process.name}: the planner's process ended (exit code "
                    f"{self._process.exitcode}) before call {seq} returned"
                ) from None
            self._received += 1
        ok, value = self._replies.pop(seq)
        if not ok:
            raise RuntimeError(f"{self._process.name}: planning failed on its process:\n{value}")
        return value

    def close(self) -> None:
        """End the process (calls not yet collected are lost)."""
        self._stop()


def _serve(planner, conn, callers) -> None:
    """The process's loop: each (method, args) received is called on ``planner``, and
    (True, result) or (False, traceback) sent back; None or the pipe's end ends it (its
    caller's end, ``callers``, was forked with it: closed here, so the caller's exit, even
    killed, is the pipe's end)."""
    callers.close()
    while True:
        try:
            call = conn.recv()
        except EOFError:
            return
        if call is None:
            return
        method, args = call
        try:
            reply = (True, getattr(planner, method)(*args))
        except Exception:  # (sent back: the caller raises it)
            reply = (False, traceback.format_exc())
        conn.send(reply)


def _stop(conn, process) -> None:
    # told to stop, not left to see the pipe's end: a planner process forked after this one
    # holds a copy of this end of the pipe, which would keep it open
    try:
        conn.send(None)
    except OSError:  # (it ended already)
        pass
    conn.close()
    process.join(timeout=5.0)
    if process.is_alive():
        process.kill()
        process.join()
