"""``ai-sdqn``: the main paper's hierarchical controller (sec. VII): the cloud tier's plan (MPC,
eq. 6; twin.control.mpc: the satellites' energy plan, the handover schedule from the orbits
and the OGS contact plan the observer's nowcast makes), the edge tier's learned routing (DRL,
twin.control.drl) and the shield between them and the network (twin.control.shield).

The edge tier routes around the stations the contact plan predicts blocked (site diversity
ahead of a cloud front: the flows move while their links are still up) and off the satellites
whose links the handover schedule says set within its lead (make-before-break handovers
planned ahead, as ``mpc-only``'s greedy routing does too). The observer's outage risk is
not among the edge policy's own features: in the packaged scenarios every station's predicted
probability is under 0.01 or over 0.99 at each plan, so the stations avoided say all of it
(README, "The DRL tier"). ``qntwin train --controller ai-sdqn`` trains the edge policy in
this controller's loop (twin.control.rl_env).
The cloud tier also puts Type-IV bulk off to greener hours within its deadline
(twin.control.mpc.bulk_deferral), as ``mpc-only`` does.
"""

from __future__ import annotations

from twin.control.drl import DrlOnly, EdgePolicy
from twin.control.mpc import LaserSchedule, MpcOnly

__all__ = ["AiSdqn"]


class AiSdqn(MpcOnly):
    """MPC energy, handover and contact plans + DRL edge routing + shield: :class:`MpcOnly`
    with :class:`twin.control.drl.DrlOnly`'s routing in place of key-aware greedy's, around
    the stations the contact plan avoids and off the links the handover schedule says set,
    shielded (the engine puts every decision through the shield, ``shielded``)."""

    name = "ai-sdqn"
    shielded = True
    plans_contacts = True

    def __init__(self, policy: EdgePolicy | None = None) -> None:
        super().__init__()
        self._router = DrlOnly(policy)

    @property
    def policy(self) -> EdgePolicy:
        """The edge policy the DRL tier routes with."""
        return self._router.policy

    def decide(self, view):
        plan = view.plan
        contacts = plan.contacts if isinstance(plan, LaserSchedule) else None
        return self._router.decide(
            view,
            avoid=contacts.avoid if contacts is not None else (),
            setting=self._leaving(view),
        )
