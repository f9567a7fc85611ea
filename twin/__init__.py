"""qntwin's model: pure, deterministic, single-process. Knows nothing of Ray or sockets.

Layers (dependency direction): control -> network -> physics -> units.
"""

__version__ = "0.1.0"
