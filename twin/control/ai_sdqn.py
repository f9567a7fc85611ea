"""``ai-sdqn``: the main paper's hierarchical controller (sec. VII): the cloud tier's energy plan
(MPC, eq. 6; twin.control.mpc), the edge tier's learned routing (DRL, twin.control.drl) and the
shield between them and the network (twin.control.shield).

What it does not do yet: the observer's predicted outage risk (twin.control.observer) is not
among the edge policy's features, so the edge tier reacts to key buffers and latencies, not to
forecast weather; the MPC tier plans energy only (no OGS contact plan or Type-IV deferral).
"""

from __future__ import annotations

from twin.control.drl import DrlOnly, EdgePolicy
from twin.control.mpc import MpcOnly

__all__ = ["AiSdqn"]


class AiSdqn(MpcOnly):
    """MPC energy plan + DRL edge routing + shield: :class:`MpcOnly` with
    :class:`twin.control.drl.DrlOnly`'s routing in place of key-aware greedy's, shielded
    (the engine puts every decision through the shield, ``shielded``)."""

    name = "ai-sdqn"
    shielded = True

    def __init__(self, policy: EdgePolicy | None = None) -> None:
        super().__init__()
        self._router = DrlOnly(policy)
