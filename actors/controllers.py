"""Controller actors: the edge tier (edge sites on edge actors) and the cloud tier's planner.

ARCHITECTURE.md ("The runtime"): a central MPC actor (cloud tier) and edge actors, one per edge
site, mirroring the main paper's cloud/edge split; both call twin.control.

- Edge sites: a flow is served by the edge site of its source, the source site's ground region
  (its OGS diversity cluster, else its jurisdiction: the same units the hosts are placed by,
  ``TopologyModel.placement_units``). Each :class:`EdgeController` actor serves one edge site
  (``per-site``) or several (``K`` actors, or ``auto``: per site when the cluster has the CPUs,
  :func:`auto_edge_actors`): it hosts the controller (by name,
  :func:`twin.control.baselines.make_controller`) for its sites' flows only and decides their
  paths every tick; the edge actors of a tick work at once.
- Cloud tier: a controller that plans (``plan_every_ticks > 0``, the MPC tier of the
  control-plane issue) also gets a :class:`CloudPlanner` actor, which plans over every flow
  when the engine asks (each ``plan_every_ticks`` ticks, as it asks a controller in its own
  process); the plan reaches the edge actors with the tick's G(t) (``NetworkView.plan``). The
  baselines plan nothing, so with them only edge actors run.

Same decisions as one controller in the driver: a baseline's path for a flow depends on G(t)
and that flow's own history only (static-sp keeps each flow's path while it stays up), so
splitting the flows over edge sites changes no path (tests/actors pin the metrics byte for
byte).

Edge actors take each tick's G(t) as a command over a ZeroMQ bus of their own (the hosts'
protocol, :class:`actors.runtime.CommandChannel`; G(t) packed as bytes, :func:`pack_snapshot`),
and answer with their flows' paths: a Ray call with G(t) cost the driver 2.5-4 ms of CPU a tick
on ``mega``, more than the rest of the decision. Plans, checkpoints and replays go as Ray calls.

Recovery: each actor's controller state is checkpointed every ``checkpoint_every`` ticks
(pickled, held in the driver) with a log of the calls since. A lost actor is started again,
restored and replayed (controller actors share no state); an edge actor lost while serving
commands is noticed by its serve call's failure, and then every edge actor is recovered so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
from collections.abc import Sequence

import numpy as np

from actors.bus import DRIVER, BusEndpoint, BusError
from actors.host import local_bus_kwargs, pack_array, packed_key_fill, unpack_array
from actors.runtime import (
    CommandChannel,
    RuntimeUnavailable,
    _Call,
    _get,
    _one_more_restart,
    _ReplyLost,
)
from twin.control.baselines import Decision, NetworkView, make_controller
from twin.control.telemetry import KeyFill
from twin.network.routing import NodeIndex
from twin.network.topology import EdgeKind, Snapshot

# auto: an edge actor per site when the cluster has this many CPUs per site (assumption: one
# for the actor, one for the hosts and the driver it shares the machine with)
CPUS_PER_EDGE_ACTOR = 2

__all__ = [
    "CloudPlanner",
    "EdgeController",
    "RayControllers",
    "auto_edge_actors",
    "decide_result",
    "edge_groups",
    "edge_sites",
    "pack_snapshot",
    "placement_summary",
    "unpack_snapshot",
]

# G(t) travels to the controller actors as plain values (bytes and ints): over the bus to the
# edge actors, with a Ray call (msgpack, no pickling) to the cloud planner and in replays. A
# pickled Snapshot cost the driver ~1.5 ms of CPU a tick on mega (1,681 nodes, 5,714 edges),
# more than the decision it is for (measured, README)
_SNAPSHOT_ARRAYS = {
    "a": np.dtype("<i8"), "b": np.dtype("<i8"), "kind": np.dtype("i1"),
    "transmittance": np.dtype("<f8"), "latency_s": np.dtype("<f8"),
    "capacity_bps": np.dtype("<f8"), "skr_bps": np.dtype("<f8"), "fidelity": np.dtype("<f8"),
    "up": np.dtype("?"), "weather_loss_db": np.dtype("<f8"), "distance_m": np.dtype("<f8"),
}  # fmt: skip


_EDGE_KINDS = {int(k) for k in EdgeKind}


def pack_snapshot(snapshot: Snapshot) -> list:
    """G(t) as ``[t_ns, edge array bytes..., satellite positions bytes or None]`` (the node
    names stay behind: an actor is given them once, at its start)."""
    positions = snapshot.satellite_positions_m
    return [
        int(snapshot.t_ns),
        *(pack_array(getattr(snapshot, field), dtype) for field, dtype in _SNAPSHOT_ARRAYS.items()),
        None if positions is None else pack_array(positions, "<f8"),
    ]


def pack_key_fill(fill: KeyFill | None) -> list | None:
    """The key buffers' fill report as ``[t_ns, codes bytes, bits bytes, trend bytes]``
    (int64, int64, float64; None: none)."""
    if fill is None:
        return None
    return [
        int(fill.t_ns),
        pack_array(fill.codes, np.int64),
        pack_array(fill.bits, np.int64),
        pack_array(fill.trend_bps, np.float64),
    ]


def unpack_key_fill(packed: list | None, n_nodes: int) -> KeyFill | None:
    """The :class:`KeyFill` of :func:`pack_key_fill`."""
    if packed is None:
        return None
    t_ns, codes, bits, trend = packed
    return KeyFill(
        t_ns,
        n_nodes,
        unpack_array(codes, np.int64),
        unpack_array(bits, np.int64),
        unpack_array(trend, np.float64),
    )


def decide_command(packed: list, fill: list | None = None) -> list:
    """An edge actor's command of a tick: decide for G(t) ``packed`` (:func:`pack_snapshot`)
    with the key buffers' fill report ``fill`` (:func:`pack_key_fill`; None for a controller
    that does not read it)."""
    return ["decide", *packed, fill]


def _decide_arguments(command: list, seq: int, actor: int) -> tuple[list, list | None]:
    """The packed G(t) and fill report of decide command ``seq`` off the bus (shape and
    types checked: a command not of :func:`decide_command`'s shape is a BusError naming what
    is wrong)."""
    n = 2 + len(_SNAPSHOT_ARRAYS) + 2  # "decide", t_ns, the edge arrays, positions, fill
    if not (len(command) == n and command[0] == "decide"):
        raise BusError(
            f"edge actor {actor}: command {seq} is not ['decide', G(t) ({n - 2} items), fill "
            f"report], got {len(command)} items starting {command[0]!r:.40}"
        )
    _, t_ns, *arrays, positions, fill = command
    if not (type(t_ns) is int and all(type(a) is bytes for a in arrays)
            and (positions is None or type(positions) is bytes)):  # fmt: skip
        raise BusError(
            f"edge actor {actor}: command {seq}: G(t) must be an int t_ns, the edge arrays "
            "bytes and the satellite positions bytes or None"
        )
    if not (fill is None or (type(fill) is list and len(fill) == 4 and type(fill[0]) is int
                             and packed_key_fill(*fill[1:3]) and type(fill[3]) is bytes
                             and len(fill[3]) == len(fill[1]))):  # fmt: skip
        raise BusError(
            f"edge actor {actor}: command {seq}: the fill report must be None or [t_ns, "
            "codes, bits, trend] (int64, int64 and float64 bytes of one length)"
        )
    return command[1:-1], fill


def decide_result(body, actor: int, seq: int, n_flows: int, n_nodes: int) -> list:
    """The [paths, boost, relay, data] of an edge actor's reply to decide command ``seq``
    (checked: a list holding, for each of the actor's ``n_flows`` flows, None or a list of node
    indices below ``n_nodes``; the flows' ``Decision.boost``: empty or one bool per flow; and
    their ``Decision.relay`` and ``Decision.data``: each empty or per flow a list of [path,
    parts] pairs, each path a list of node indices and parts a positive int); a BusError names
    what is wrong."""

    def is_path(path) -> bool:
        return type(path) is list and all(type(n) is int and 0 <= n < n_nodes for n in path)

    if not (type(body) is list and len(body) == 4 and type(body[0]) is list
            and len(body[0]) == n_flows
            and all(path is None or is_path(path) for path in body[0])):  # fmt: skip
        raise BusError(
            f"edge actor {actor}'s reply to command {seq} must be [paths, boost, relay, data] "
            f"with a list of {n_flows} paths (None or a list of node indices below {n_nodes} "
            f"each), got {body!r:.80}"
        )
    boost = body[1]
    if not (type(boost) is list and len(boost) in (0, n_flows)
            and all(type(b) is bool for b in boost)):  # fmt: skip
        raise BusError(
            f"edge actor {actor}'s reply to command {seq}: its boost must be an empty list or "
            f"{n_flows} bools, got {boost!r:.80}"
        )
    for what, splits in (("relay", body[2]), ("data", body[3])):
        if not (type(splits) is list and len(splits) in (0, n_flows) and all(
                type(split) is list and all(
                    type(pair) is list and len(pair) == 2 and is_path(pair[0])
                    and type(pair[1]) is int and pair[1] > 0 for pair in split)
                for split in splits)):  # fmt: skip
            raise BusError(
                f"edge actor {actor}'s reply to command {seq}: its {what} must be an empty list "
                f"or per flow a list of [path, parts] pairs (node indices below {n_nodes}, "
                f"parts a positive int), {n_flows} lists, got {splits!r:.80}"
            )
    return body


def unpack_snapshot(packed: list, node_names: tuple[str, ...]) -> Snapshot:
    """The Snapshot of :func:`pack_snapshot` (its arrays read-only views of the bytes);
    a ValueError names an array whose size does not fit the others."""
    t_ns, *arrays, positions = packed
    n_edges = len(arrays[0]) // _SNAPSHOT_ARRAYS["a"].itemsize
    fields = {}
    for (field, dtype), data in zip(_SNAPSHOT_ARRAYS.items(), arrays, strict=True):
        if len(data) != n_edges * dtype.itemsize:
            raise ValueError(
                f"G(t) array {field} of {len(data)} bytes; {n_edges} edges need "
                f"{n_edges * dtype.itemsize}"
            )
        fields[field] = unpack_array(data, dtype)
    # what a controller indexes or branches on must hold what G(t) can hold
    ends = np.concatenate([fields["a"], fields["b"]])
    if ends.size and not (0 <= ends.min() and ends.max() < len(node_names)):
        raise ValueError(f"G(t) edge ends must be node indices below {len(node_names)}")
    if fields["kind"].size and not set(np.unique(fields["kind"]).tolist()) <= _EDGE_KINDS:
        raise ValueError(f"G(t) edge kinds must be EdgeKind values {sorted(_EDGE_KINDS)}")
    if fields["up"].view(np.uint8).max(initial=0) > 1:
        raise ValueError("G(t) array up must hold bools (bytes 0 and 1)")
    if positions is not None:
        if len(positions) % 24:
            raise ValueError(
                f"G(t) satellite positions of {len(positions)} bytes: not (3, S) float64"
            )
        positions = unpack_array(positions, "<f8").reshape(3, -1)
    return Snapshot(t_ns=t_ns, node_names=node_names, satellite_positions_m=positions, **fields)


def edge_sites(topology, flows) -> dict[str, list[int]]:
    """Edge site -> the indices of the flows it serves (each flow by its source site's ground
    region), sites in name order, flows in flow order."""
    units = topology.placement_units()
    index = {name: i for i, name in enumerate(topology.node_names)}
    sites: dict[str, list[int]] = {}
    for k, flow in enumerate(flows):
        sites.setdefault(units[index[flow.src_site]], []).append(k)
    return {site: sites[site] for site in sorted(sites)}


def edge_groups(
    sites: dict[str, list[int]], actors: int | None
) -> list[tuple[list[str], list[int]]]:
    """The edge sites spread over ``actors`` edge actors (None: one actor per site), as
    (the sites, the flow indices they serve, ascending) per actor: the sites with most flows
    first, each to the actor serving the fewest flows so far (ties by site name, actor
    number). An actor decides for all its sites' flows at once, as one controller."""
    if actors is None:
        return [([site], list(members)) for site, members in sites.items()]
    if not isinstance(actors, int) or actors < 1:
        raise ValueError(f"edge_actors must be a whole number >= 1, got {actors!r}")
    groups: list[tuple[list[str], list[int]]] = [([], []) for _ in range(actors)]
    for site in sorted(sites, key=lambda x: (-len(sites[x]), x)):
        target = min(range(actors), key=lambda a: (len(groups[a][1]), a))
        groups[target][0].append(site)
        groups[target][1].extend(sites[site])
    return [(sorted(names), sorted(members)) for names, members in groups if names]


def auto_edge_actors(n_sites: int, cpus: int) -> int | None:
    """``auto``: one edge actor per edge site (None) when the cluster has at least
    :data:`CPUS_PER_EDGE_ACTOR` CPUs per site, else as many actors as it has room for (at
    least one). Every edge actor takes G(t) and answers a command every tick, beside the
    hosts and the driver: on this 2-core machine eight of them made ``mega`` on 2 hosts
    1.25-1.38x slower than one (two A/B pairs of 100 ticks)."""
    room = max(1, cpus // CPUS_PER_EDGE_ACTOR)
    return None if n_sites <= room else room


def _cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


class _HostedController:
    """A controller for some flows, with what its views need (an actor's state)."""

    def __init__(self, controller, flows, node_names, jurisdictions, flow_endpoints) -> None:
        # a name (twin.control's controllers), or a class that makes one (tests)
        self.controller = (
            make_controller(controller) if isinstance(controller, str) else controller()
        )
        self.flows = list(flows)
        self.node_names = tuple(node_names)
        self.node_index = NodeIndex.from_names(node_names)
        self.jurisdictions = dict(jurisdictions)
        self.flow_endpoints = [tuple(e) for e in flow_endpoints]

    def _view(self, packed: list, plan, fill: list | None = None) -> NetworkView:
        try:
            snapshot = unpack_snapshot(packed, self.node_names)
            key_fill = unpack_key_fill(fill, len(self.node_names))
        except ValueError as err:  # (sizes that disagree: a command off the bus)
            raise BusError(str(err)) from None
        return NetworkView(
            t_ns=snapshot.t_ns,
            snapshot=snapshot,
            flows=self.flows,
            node_index=self.node_index,
            jurisdictions=self.jurisdictions,
            flow_endpoints=self.flow_endpoints,
            key_fill=key_fill,
            plan=plan,
        )

    def checkpoint(self) -> bytes:
        """The controller's state (pickled; Ray's channel between the run's processes)."""
        return pickle.dumps(self.controller, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, state: bytes) -> bool:
        self.controller = pickle.loads(state)
        return True


class EdgeController(_HostedController):
    """An edge actor: the controller for the flows whose source is at its edge site(s).

    It decides a tick's paths on the driver's command over the bus (:meth:`serve`), or as a
    Ray call (:meth:`decide`: the replay after a loss). ``actor_id`` is its id on the bus of
    the run's edge actors (``run_id``), ``bus_kwargs`` :class:`BusEndpoint`'s.
    """

    def __init__(self, controller, flows, node_names, jurisdictions, flow_endpoints,
                 run_id: str, actor_id: int, bus_kwargs: dict | None = None) -> None:  # fmt: skip
        super().__init__(controller, flows, node_names, jurisdictions, flow_endpoints)
        self.actor_id = int(actor_id)
        self.bus = BusEndpoint(run_id, self.actor_id, **local_bus_kwargs(bus_kwargs))
        self.plan = None  # the cloud tier's latest plan (set_plan)

    def bus_address(self) -> tuple:
        """This actor's bus address (:attr:`actors.bus.BusEndpoint.address`)."""
        return self.bus.address

    def connect(self, driver: tuple) -> bool:
        """Learn the driver's bus endpoint (its commands' replies go there)."""
        self.bus.set_peers({DRIVER: driver})
        return True

    def set_plan(self, plan) -> bool:
        """The plan the next decisions are made with (it comes as a Ray call: a plan may be
        any object, and nothing off the bus is unpickled)."""
        self.plan = plan
        return True

    def checkpoint(self) -> bytes:
        """The controller's state and the plan it decides with (pickled)."""
        return pickle.dumps((self.controller, self.plan), protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, state: bytes) -> bool:
        self.controller, self.plan = pickle.loads(state)
        return True

    def decide(self, snapshot: list, fill: list | None = None) -> list:
        """[paths, boost, relay, data]: this site's flows' paths for G(t) ``snapshot``
        (:func:`pack_snapshot`) and the key buffers' fill report ``fill``
        (:func:`pack_key_fill`), in its flow order, each a list of node indices or None,
        their ``Decision.boost``, ``Decision.relay`` and ``Decision.data`` (plain lists:
        msgpack's values)."""
        decision = self.controller.decide(self._view(snapshot, self.plan, fill))
        paths = [None if path is None else list(map(int, path)) for path in decision.paths]
        relay, data = (
            [[[list(map(int, path)), int(parts)] for path, parts in split] for split in splits]
            for splits in (decision.relay, decision.data)
        )
        return [paths, [bool(b) for b in decision.boost], relay, data]

    def serve(self, first_seq: int) -> int:
        """Decide on the driver's commands over the bus, from command ``first_seq`` on, until
        told to stop; returns how many it ran. A command is :func:`decide_command`'s or
        ``["stop"]``; the reply, call ``seq`` again, is :meth:`decide`'s result. As
        :meth:`actors.host.NodeHost.serve`: the driver stops it before any Ray call."""

        def answer(command: list, seq: int) -> list:
            return self.decide(*_decide_arguments(command, seq, self.actor_id))

        return self.bus.serve_calls(first_seq, answer)


class CloudPlanner(_HostedController):
    """The cloud tier's actor: the controller's plan over every flow. A controller that plans
    for a scenario (``bind``: the MPC's forecasts) gets it here."""

    def __init__(self, controller, flows, node_names, jurisdictions, flow_endpoints,
                 scenario=None, seed=None) -> None:  # fmt: skip
        super().__init__(controller, flows, node_names, jurisdictions, flow_endpoints)
        bind = getattr(self.controller, "bind", None)
        if bind is not None and scenario is not None:
            bind(scenario, seed=seed)

    def plan(self, snapshot: list, battery_soc: bytes | None = None, fill: list | None = None):
        view = self._view(snapshot, None, fill)
        if battery_soc is not None:
            view = dataclasses.replace(view, battery_soc=unpack_array(battery_soc, np.float64))
        return self.controller.plan(view)


class _Actor:
    """One controller actor in the driver's hands: its handle, the arguments that start it,
    its last checkpoint and the calls since (:class:`actors.runtime._Call`, replayed as Ray
    calls after a loss)."""

    def __init__(self, cls, name: str, args: tuple, peer: int | None = None) -> None:
        self.cls, self.name, self.args = cls, name, args
        self.peer = peer  # its id on the edge actors' bus (None: not on it)
        self.state: bytes | None = None
        self.log: list[_Call] = []
        self.handle = None
        self.starts = 0
        self.start()

    def start(self) -> None:
        import ray

        remote = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(self.cls)
        # a fresh name per start: a killed actor's name may not be free again at once
        name = f"{self.name}-{self.starts}"
        self.starts += 1
        self.handle = remote.options(name=name).remote(*self.args)

    def submit(self, method: str, *args) -> _Call:
        """A logged Ray call."""
        call = _Call(self.peer, method, args)
        call.ref = getattr(self.handle, method).remote(*args)
        self.log.append(call)
        return call

    def restart(self) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.kill(self.handle, no_restart=True)
        self.start()

    def replay(self, n_calls: int, wait: bool = True) -> None:
        """Restore the (restarted) actor's checkpoint and replay its first ``n_calls`` logged
        calls as Ray calls (each call's ref is replaced by its replay's); ``wait``: for all
        of them, else the caller collects them."""
        from ray.exceptions import RayActorError

        restore = [self.handle.restore.remote(self.state)] if self.state is not None else []
        for call in self.log[:n_calls]:
            call.ref = getattr(self.handle, call.method).remote(*call.args)
        # the restore is waited for either way (its failure must not go unseen); the replayed
        # calls' results are the caller's to collect unless ``wait``
        waited = [*restore, *(call.ref for call in self.log[:n_calls] if wait)]
        try:
            for ref in waited:
                _get_raw(ref)
        except RayActorError as err:
            raise RuntimeUnavailable(
                f"controller actor {self.name} was lost again while being restored ({err}): "
                "the cluster is unhealthy"
            ) from None


class RayControllers:
    """A controller (the engine's ``controller``) whose work runs on controller actors.

    Called as a controller is: ``plan`` (a controller that plans) every ``plan_every_ticks``
    ticks, which asks the cloud planner; ``decide`` (or ``submit_decide``) once per tick in
    time order, with the view of every flow and the latest plan, which asks every edge actor
    for its flows' paths and returns them in flow order. ``restarts`` counts the losses of
    actors recovered from. Needs Ray initialised; :meth:`close` stops the actors.

    The edge actors take a tick's G(t) as a command over the bus, as the hosts take their
    ticks (:class:`actors.runtime.CommandChannel`): a Ray call with G(t) cost the driver
    2.5-4 ms of CPU a tick on mega, the command 0.1-0.4 ms. A new plan, checkpoints and replays
    go as Ray calls. An edge actor lost while serving is noticed by its serve call's failure;
    all edge actors are then restored and replayed (they share no state: each replays its own
    log; a loss is rare, and a lost serve call does not say which of them failed first).
    """

    def __init__(
        self,
        controller,
        *,
        topology,
        flows: Sequence,
        jurisdictions: dict,
        flow_endpoints: Sequence[tuple[int, int]],
        run_id: str,
        checkpoint_every: int = 60,
        edge_actors: int | str | None = "auto",
        bus_kwargs: dict | None = None,
        scenario=None,
        seed: int | None = None,
    ) -> None:
        import ray

        # an unknown name fails here, in the driver; a class (tests) is made as the actors do
        template = make_controller(controller) if isinstance(controller, str) else controller()
        self.name = template.name
        self.plan_every_ticks = int(getattr(template, "plan_every_ticks", 0))
        self.reads_key_fill = bool(getattr(template, "reads_key_fill", False))
        # a controller that carries the shield (ai-sdqn) has it in the driver, as locally
        self.shielded = bool(getattr(template, "shielded", False))
        self.sites = edge_sites(topology, flows)
        if edge_actors == "auto":
            edge_actors = auto_edge_actors(len(self.sites), _cluster_cpus())
        elif edge_actors == "per-site":
            edge_actors = None
        self.groups = edge_groups(self.sites, edge_actors)
        self.checkpoint_every = int(checkpoint_every)
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1 tick, got {checkpoint_every!r}")
        self.restarts = 0
        self._n_flows = len(flows)
        self._ticks = 0
        self._packed: tuple = (None, None)  # the last snapshot packed, and its packing
        self._plan: tuple = (None, None)  # the last plan put, and its ref
        names = topology.node_names
        bus_kwargs = dict(bus_kwargs or {})
        bus_run = f"{run_id}-edges"

        def args(members: Sequence[int]) -> tuple:
            return (
                controller,
                [flows[k] for k in members],
                names,
                jurisdictions,
                [flow_endpoints[k] for k in members],
            )

        self.edges: dict[str, _Actor] = {}
        self.cloud: _Actor | None = None
        self._channel: CommandChannel | None = None
        try:
            sizes = [len(members) for _, members in self.groups]

            def parse_reply(body, call: _Call) -> list:
                return decide_result(body, call.host, call.seq, sizes[call.host], len(names))

            self._channel = CommandChannel(
                bus_run, len(self.groups), bus_kwargs, "edge actor", parse_reply
            )
            for n, (sites, members) in enumerate(self.groups):
                self.edges["+".join(sites)] = _Actor(
                    EdgeController,
                    f"qntwin-edge-{run_id}-{n}",
                    (*args(members), bus_run, n, bus_kwargs),
                    peer=n,
                )
            self._connect(list(self.edges.values()))
            if self.plan_every_ticks > 0:
                self.cloud = _Actor(
                    CloudPlanner,
                    f"qntwin-cloud-{run_id}",
                    (*args(range(len(flows))), scenario, seed),
                )
            self._ray = ray
        except BaseException:
            self.close()
            raise

    @property
    def actors(self) -> list[_Actor]:
        return [*self.edges.values(), *([self.cloud] if self.cloud is not None else [])]

    def _connect(self, edges: list[_Actor]) -> None:
        """Wire (re)started edge actors and the driver on the bus: each learns the driver's
        endpoint, the driver theirs. None of them serves commands yet."""
        endpoint = self._channel.endpoint
        addresses = [_get_raw(ref) for ref in [a.handle.bus_address.remote() for a in edges]]
        peers = endpoint.peers
        peers.update((a.peer, address) for a, address in zip(edges, addresses, strict=True))
        endpoint.set_peers(peers)
        driver = endpoint.address
        for ref in [a.handle.connect.remote(driver) for a in edges]:
            _get_raw(ref)
        self._channel.restarted([a.peer for a in edges])

    def _recover(self, actor: _Actor) -> None:
        """Start ``actor`` again from its checkpoint and replay its log (waited for)."""
        self._count_restart(actor.name)
        actor.restart()
        if actor.peer is not None:
            self._connect([actor])
        actor.replay(len(actor.log))

    def _count_restart(self, cause) -> None:
        self.restarts = _one_more_restart(self.restarts, "controller actors", cause)

    def _collect(self, calls: list[tuple[_Actor, object]], what: str) -> list:
        """The results of Ray calls ``calls`` ((actor, ref) pairs); an actor found lost is
        recovered (its log replayed) and asked again (a logged call, its actor's last log
        entry, was replayed with the log; a checkpoint call is not logged)."""
        from ray.exceptions import RayActorError

        results = []
        for actor, ref in calls:
            while True:
                try:
                    results.append(_get_raw(ref))
                    break
                except RayActorError:
                    if what == "checkpoint":
                        self._recover(actor)
                        ref = actor.handle.checkpoint.remote()
                    else:
                        last = actor.log.pop()  # asked again below, logged anew
                        self._recover(actor)
                        ref = actor.submit(last.method, *last.args).ref
                except RuntimeUnavailable:
                    raise  # no answer in time: said so already
                except Exception:
                    _get(ref, what)  # the controller's own error, with its cause
                    raise
        return results

    def _ref(self, held: tuple, value) -> tuple:
        """(value, its object-store ref), put once: ``held`` when it holds this value."""
        if held[0] is value:
            return held
        return value, (None if value is None else self._ray.put(value))

    def _packed_snapshot(self, snapshot: Snapshot) -> list:
        """G(t) packed (:func:`pack_snapshot`) once, however many actors take it."""
        if self._packed[0] is not snapshot:
            self._packed = snapshot, pack_snapshot(snapshot)
        return self._packed[1]

    def plan(self, view: NetworkView):
        """The cloud planner's plan over every flow for G(t) ``view.snapshot``."""
        return self.submit_plan(view)()

    def submit_plan(self, view: NetworkView):
        """Ask the cloud planner for its plan for G(t) ``view.snapshot``; returns the callable
        that collects it (the engine does a planning period later: the planner plans while
        the ticks run). The planner's state after each plan is fetched with the plan, so its
        log never holds more than the plan being made (it is not in the edge actors'
        checkpoints, which would wait for the plan)."""
        if self.cloud is None:
            raise RuntimeError(f"controller {self.name!r} does not plan (plan_every_ticks 0)")
        cloud = self.cloud
        packed = self._ray.put(self._packed_snapshot(view.snapshot))  # its decide follows
        soc = None if view.battery_soc is None else pack_array(view.battery_soc, np.float64)
        call = cloud.submit("plan", packed, soc, pack_key_fill(view.key_fill))
        handle, state = cloud.handle, cloud.handle.checkpoint.remote()  # after the plan

        def collect():
            plan = self._collect([(cloud, call.ref)], "plan")[0]
            ref = state if cloud.handle is handle else cloud.handle.checkpoint.remote()
            cloud.state = self._collect([(cloud, ref)], "checkpoint")[0]
            cloud.log = []
            return plan

        return collect

    def decide(self, view: NetworkView) -> Decision:
        return self.submit_decide(view)()

    def submit_decide(self, view: NetworkView):
        """Ask the edge actors for the paths of G(t) ``view.snapshot`` with ``view.plan``;
        returns a callable that collects the :class:`Decision`. One decision is outstanding
        at a time (the engine collects before it asks again)."""
        edges = list(self.edges.values())
        calls: list[_Call] = []
        if view.plan is not self._plan[0]:  # a new plan: set on every edge actor, put once
            self._plan = self._ref(self._plan, view.plan)
            for actor in edges:
                self._channel.halt(actor.peer)
                calls.append(actor.submit("set_plan", self._plan[1]))
        packed = self._packed_snapshot(view.snapshot)
        fill = pack_key_fill(view.key_fill)
        command = decide_command(packed, fill)
        decides = []
        for actor in edges:
            call = _Call(actor.peer, "decide", (packed, fill))
            self._channel.command(actor.handle, call, command)
            actor.log.append(call)
            decides.append(call)
        self._channel.endpoint.flush()  # (commands the fault injector held go out now)
        self._ticks += 1

        def collect() -> Decision:
            paths: list = [None] * self._n_flows
            boost = [False] * self._n_flows
            relay: list = [()] * self._n_flows
            data: list = [()] * self._n_flows
            results = self._wait([*calls, *decides], "decide")[len(calls) :]
            for (_, members), (site_paths, site_boost, site_relay, site_data) in zip(
                self.groups, results, strict=True
            ):
                for k, path in zip(members, site_paths, strict=True):
                    paths[k] = None if path is None else tuple(path)
                for k, wanted in zip(members, site_boost, strict=False):  # ([] for none)
                    boost[k] = wanted
                for splits, site_splits in ((relay, site_relay), (data, site_data)):
                    for k, split in zip(members, site_splits, strict=False):  # ([] for none)
                        splits[k] = tuple((tuple(path), parts) for path, parts in split)
            if self._ticks % self.checkpoint_every == 0:
                self._checkpoint()
            # (no flow's split: () as a local controller decides it)
            return Decision(
                paths=tuple(paths), boost=tuple(boost), relay=tuple(relay) if any(relay) else (),
                data=tuple(data) if any(data) else (),
            )  # fmt: skip

        return collect

    def _wait(self, calls: list[_Call], what: str) -> list:
        """The results of the edge actors' ``calls`` (commands and Ray calls); after a loss
        every edge actor is recovered and its log replayed, the calls' results coming from
        the replay."""
        from ray.exceptions import RayActorError

        while True:
            try:
                self._channel.check_halted()
                return self._channel.collect(calls, what)
            except (RayActorError, _ReplyLost) as err:
                self._count_restart(err)
                edges = list(self.edges.values())
                for actor in edges:
                    actor.restart()
                self._connect(edges)
                for actor in edges:
                    actor.replay(len(actor.log), wait=False)

    def _checkpoint(self) -> None:
        """Every edge actor's controller state, held here; the logs restart from it (the
        cloud planner's is taken with each plan, :meth:`submit_plan`)."""
        for actor in self.edges.values():
            self._channel.halt(actor.peer)
        calls = [(actor, actor.handle.checkpoint.remote()) for actor in self.edges.values()]
        for (actor, _), state in zip(calls, self._collect(calls, "checkpoint"), strict=True):
            actor.state, actor.log = state, []

    def bus_stats(self) -> dict[str, int]:
        """The driver's counters on the edge actors' bus (calls sent, faults injected, copies
        dropped)."""
        return dict(self._channel.endpoint.stats)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor.handle)
        self.edges, self.cloud = {}, None
        if getattr(self, "_channel", None) is not None:
            self._channel.close()
            self._channel = None


def _get_raw(ref):
    """``ray.get`` with the runtime's call timeout; Ray's own errors pass through."""
    import ray
    from ray.exceptions import GetTimeoutError

    from actors.runtime import CALL_TIMEOUT_S, RuntimeUnavailable

    try:
        return ray.get(ref, timeout=CALL_TIMEOUT_S)
    except GetTimeoutError:
        raise RuntimeUnavailable(
            f"a controller actor did not answer within {CALL_TIMEOUT_S:.0f} s: the cluster is "
            "overloaded or a node is gone"
        ) from None


def placement_summary(controllers: RayControllers) -> str:
    """'N edge controller actor(s)[, 1 cloud planner]' for the run's one-line report."""
    text = f"{len(controllers.edges)} edge controller actor(s)"
    return text + (", 1 cloud planner" if controllers.cloud is not None else "")
