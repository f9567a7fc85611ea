"""qntwin's distributed runtime on Ray (hosts, bus, clock, controller actors, telemetry).

Thin by design: all domain logic comes from ``twin``. Depends on ``twin``, never the reverse.
The runtime itself arrives with the runtime issue; until then ``qntwin`` runs single-process.
"""
