"""Which host holds which node actors (ARCHITECTURE.md, "The runtime": placement).

- ``per-node``: one host per node, as the design card reads (one Ray actor each);
- ``sharded``: K hosts; the units of placement are the orbital planes (each plane's satellites
  stay together: its in-plane ISLs are its busiest links) and the ground regions (the sites of
  one OGS diversity cluster, else of one jurisdiction, with the HAPS as one more unit), spread
  over the K hosts largest first, each to the host with the fewest nodes so far;
- ``auto``: per-node up to :data:`AUTO_PER_NODE_MAX` nodes, otherwise sharded.

Placement changes where state lives and which messages cross a socket, never a result.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["AUTO_PER_NODE_MAX", "PLACEMENTS", "placement"]

PLACEMENTS = ("per-node", "sharded", "auto")
# assumption, from the runtime's measured costs on a 2-core machine (ARCHITECTURE.md): a Ray
# actor takes ~60-85 MB and ~0.3-0.75 s to start and a 25-actor barrier runs ~50 ticks/s, so
# per-node placement pays off only for a couple of dozen nodes on one machine
AUTO_PER_NODE_MAX = 24
DEFAULT_SHARDED_HOSTS = 2


def placement(
    names: Sequence[str],
    units: Sequence[str],
    mode: str,
    hosts: int | None = None,
) -> list[list[int]]:
    """Node indices per host.

    ``names``: every node in G(t)'s order; ``units``: each node's placement unit (its orbital
    plane, ground region or 'haps'), same order; ``mode``: one of :data:`PLACEMENTS`;
    ``hosts``: K for ``sharded`` (default :data:`DEFAULT_SHARDED_HOSTS`; more hosts than units
    leaves some empty, which are dropped).
    """
    if mode not in PLACEMENTS:
        raise ValueError(f"unknown placement {mode!r}; choose one of {', '.join(PLACEMENTS)}")
    if len(units) != len(names):
        raise ValueError(f"units must name one unit per node: {len(units)} for {len(names)}")
    if hosts is not None and (not isinstance(hosts, int) or hosts < 1):
        raise ValueError(f"hosts must be a whole number >= 1, got {hosts!r}")
    if mode == "auto":
        mode = "per-node" if len(names) <= AUTO_PER_NODE_MAX else "sharded"
    if mode == "per-node":
        if hosts is not None and hosts != len(names):
            raise ValueError(
                f"per-node placement runs one host per node ({len(names)}); drop hosts={hosts} "
                "or choose --placement sharded"
            )
        return [[i] for i in range(len(names))]
    k = DEFAULT_SHARDED_HOSTS if hosts is None else hosts
    members: dict[str, list[int]] = {}
    for i, unit in enumerate(units):
        members.setdefault(str(unit), []).append(i)
    # largest unit first (ties by name), each to the emptiest host (ties by host number)
    order = sorted(members, key=lambda u: (-len(members[u]), u))
    shards: list[list[int]] = [[] for _ in range(k)]
    for unit in order:
        target = min(range(k), key=lambda h: (len(shards[h]), h))
        shards[target].extend(members[unit])
    return [sorted(s) for s in shards if s]
