"""Topology processing: which buses are energised, how they hang off the slack, and which feeder serves each.

Pure graph code on integer arrays (``scipy.sparse.csgraph``). The inputs describe a network the way
pandapower does: buses, branches (lines and two-winding transformers) with an in-service flag, and switches
either between two buses (couplers; a closed one joins both buses into one electrical node) or at one end of
a branch (an open one disconnects the branch). :func:`apply_switching` changes switch and branch states by
name (outages, switching orders); :func:`process_topology` then finds

- the electrical nodes (buses joined by closed couplers) and which of them are energised from a slack bus;
- the spanning tree from the slack (parent of every node, the branch(es) forming each tree edge, and which
  end of each branch faces the slack), after merging parallel branches between the same two nodes;
- the feeder of every node: the branch leaving the substation's main busbar on the node's path, with the
  main busbar defined as in :func:`gridbridge.domain.network.assign_feeders` (the far side of the
  transformers at the slack, or the slack itself when there are none).

An energised network with a closed loop (other than parallel branches) is refused with
``envelopes.network_not_radial`` naming the branches that close loops: the envelope engine's tree method
needs radial operation, as SimBench's ``-sw`` grids and real distribution feeders have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from gridbridge.domain.envelopes import NOT_RADIAL, UNKNOWN_ELEMENT
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.envelopes._types import BoolArray, IntArray

#: Branch kinds understood by the topology code.
LINE = "line"
TRAFO = "trafo"
#: Switch kinds: between two buses, or at one end of a branch.
SWITCH_BUS = "bus"
SWITCH_BRANCH = "branch"


def _ints(values: Iterable[int] | IntArray) -> IntArray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _bools(values: Iterable[bool] | BoolArray) -> BoolArray:
    return np.asarray(values, dtype=np.bool_).reshape(-1)


@dataclass(frozen=True, eq=False)
class TopologyInputs:
    """The switching-relevant description of a network (indices are positions in the name tuples).

    ``switch_target`` is a bus position for a bus-bus switch (``switch_kind`` ``"bus"``) and a branch
    position for a switch at a branch end (``"branch"``). ``slack_buses`` are the buses of in-service
    external grids (the T-D interface).
    """

    bus_names: tuple[str, ...]
    bus_in_service: BoolArray
    branch_names: tuple[str, ...]
    branch_kind: tuple[str, ...]
    branch_from_bus: IntArray
    branch_to_bus: IntArray
    branch_in_service: BoolArray
    switch_names: tuple[str, ...]
    switch_bus: IntArray
    switch_kind: tuple[str, ...]
    switch_target: IntArray
    switch_closed: BoolArray
    slack_buses: IntArray

    def __post_init__(self) -> None:
        for name in ("bus_in_service", "branch_in_service", "switch_closed"):
            object.__setattr__(self, name, _bools(getattr(self, name)))
        for name in ("branch_from_bus", "branch_to_bus", "switch_bus", "switch_target", "slack_buses"):
            object.__setattr__(self, name, _ints(getattr(self, name)))
        n_bus, n_br, n_sw = len(self.bus_names), len(self.branch_names), len(self.switch_names)
        shapes = {
            "bus_in_service": (self.bus_in_service, n_bus),
            "branch_kind": (np.asarray(self.branch_kind), n_br),
            "branch_from_bus": (self.branch_from_bus, n_br),
            "branch_to_bus": (self.branch_to_bus, n_br),
            "branch_in_service": (self.branch_in_service, n_br),
            "switch_bus": (self.switch_bus, n_sw),
            "switch_kind": (np.asarray(self.switch_kind), n_sw),
            "switch_target": (self.switch_target, n_sw),
            "switch_closed": (self.switch_closed, n_sw),
        }
        for name, (arr, size) in shapes.items():
            if len(arr) != size:
                raise ValueError(f"{name} has {len(arr)} entries; expected {size}")
        for name, arr in (
            ("branch_from_bus", self.branch_from_bus),
            ("branch_to_bus", self.branch_to_bus),
            ("switch_bus", self.switch_bus),
            ("slack_buses", self.slack_buses),
        ):
            if len(arr) and (arr.min() < 0 or arr.max() >= n_bus):
                raise ValueError(f"{name} refers to a bus position outside 0..{n_bus - 1}")
        if set(self.branch_kind) - {LINE, TRAFO}:
            raise ValueError(f"branch_kind must be {LINE!r} or {TRAFO!r}")
        if set(self.switch_kind) - {SWITCH_BUS, SWITCH_BRANCH}:
            raise ValueError(f"switch_kind must be {SWITCH_BUS!r} or {SWITCH_BRANCH!r}")
        kinds = np.asarray(self.switch_kind, dtype=object)
        targets_bus = self.switch_target[kinds == SWITCH_BUS]
        targets_br = self.switch_target[kinds == SWITCH_BRANCH]
        if len(targets_bus) and (targets_bus.min() < 0 or targets_bus.max() >= n_bus):
            raise ValueError("a bus-bus switch refers to a bus position out of range")
        if len(targets_br) and (targets_br.min() < 0 or targets_br.max() >= n_br):
            raise ValueError("a branch switch refers to a branch position out of range")

    @property
    def n_bus(self) -> int:
        """Number of buses."""
        return len(self.bus_names)

    @property
    def n_branch(self) -> int:
        """Number of branches (lines and transformers)."""
        return len(self.branch_names)

    def branch_closed(self) -> BoolArray:
        """True for branches in service with every switch at their ends closed."""
        closed = self.branch_in_service.copy()
        at_branch = ~self.coupler_mask()
        open_sw = at_branch & ~self.switch_closed
        closed[self.switch_target[open_sw]] = False
        return closed

    def coupler_mask(self) -> BoolArray:
        """True for bus-bus switches."""
        return np.array([k == SWITCH_BUS for k in self.switch_kind], dtype=np.bool_)


def _resolve(inputs: TopologyInputs, name: str) -> tuple[str, int]:
    """Find ``name`` among switches and branches; prefixes ``switch:``, ``line:`` and ``trafo:`` disambiguate."""
    prefix, _, rest = name.partition(":")
    candidates: list[tuple[str, int]] = []
    if rest and prefix in ("switch", LINE, TRAFO):
        if prefix == "switch":
            candidates = [("switch", i) for i, n in enumerate(inputs.switch_names) if n == rest]
        else:
            candidates = [
                ("branch", i)
                for i, (n, k) in enumerate(zip(inputs.branch_names, inputs.branch_kind, strict=True))
                if n == rest and k == prefix
            ]
    else:
        candidates = [("switch", i) for i, n in enumerate(inputs.switch_names) if n == name]
        candidates += [("branch", i) for i, n in enumerate(inputs.branch_names) if n == name]
    if not candidates:
        raise ValidationFailed(
            f"no switch, line or transformer named {name!r} in the network",
            field="network_state",
            code=UNKNOWN_ELEMENT,
            details={"element": name},
        )
    if len(candidates) > 1:
        raise ValidationFailed(
            f"{name!r} names more than one element; prefix it with switch:, line: or trafo:",
            field="network_state",
            code=UNKNOWN_ELEMENT,
            details={"element": name},
        )
    return candidates[0]


def apply_switching(
    inputs: TopologyInputs, open_elements: Iterable[str] = (), close_elements: Iterable[str] = ()
) -> TopologyInputs:
    """Return ``inputs`` with the named switches opened/closed and the named branches taken out of / put
    back into service. Names are switch or branch names (optionally prefixed ``switch:``, ``line:`` or
    ``trafo:``); an unknown or ambiguous name raises ``envelopes.unknown_element``. An element named in
    both lists raises too."""
    opened = list(open_elements)
    closed = list(close_elements)
    both = sorted(set(opened) & set(closed))
    if both:
        raise ValidationFailed(
            f"elements cannot be opened and closed at once: {', '.join(both)}",
            field="network_state",
            code=UNKNOWN_ELEMENT,
        )
    sw_closed = inputs.switch_closed.copy()
    br_in = inputs.branch_in_service.copy()
    for names, state in ((opened, False), (closed, True)):
        for name in names:
            kind, idx = _resolve(inputs, name)
            if kind == "switch":
                sw_closed[idx] = state
            else:
                br_in[idx] = state
    return replace(inputs, switch_closed=sw_closed, branch_in_service=br_in)


@dataclass(frozen=True, eq=False)
class Topology:
    """The energised radial structure of a network (see the module docstring).

    Nodes are groups of buses joined by closed couplers; ``node_of_bus`` is -1 for out-of-service buses.
    ``parent`` is -1 for slack nodes and de-energised nodes. ``edge_of_branch[k]`` is the child node of
    the tree edge branch ``k`` belongs to (-1 if the branch is open or de-energised) and
    ``branch_from_is_parent[k]`` says whether its from-bus faces the slack. ``feeder_branch`` is the
    position of the feeder's branch for each node (-1 on and above the main busbar, or de-energised).
    """

    inputs: TopologyInputs
    node_of_bus: IntArray
    node_bus: IntArray
    energised: BoolArray
    parent: IntArray
    depth: IntArray
    order: IntArray
    slack_nodes: IntArray
    edge_of_branch: IntArray
    branch_from_is_parent: BoolArray
    main_busbar: BoolArray
    feeder_branch: IntArray
    edge_members: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def n_node(self) -> int:
        """Number of electrical nodes."""
        return len(self.node_bus)

    def bus_energised(self) -> BoolArray:
        """True for buses with an energised path to a slack bus."""
        nodes = self.node_of_bus
        out = np.zeros(len(nodes), dtype=np.bool_)
        ok = nodes >= 0
        out[ok] = self.energised[nodes[ok]]
        return out

    def bus_feeder(self) -> IntArray:
        """Feeder branch position of every bus (-1 where none)."""
        nodes = self.node_of_bus
        out = np.full(len(nodes), -1, dtype=np.int64)
        ok = nodes >= 0
        out[ok] = self.feeder_branch[nodes[ok]]
        return out

    def feeder_names(self, buses: IntArray) -> tuple[str | None, ...]:
        """Feeder name (its branch name) for each bus position in ``buses``; None where none."""
        fb = self.bus_feeder()[_ints(buses)]
        names = self.inputs.branch_names
        return tuple(names[int(k)] if k >= 0 else None for k in fb)


def _fuse(inputs: TopologyInputs) -> tuple[IntArray, IntArray]:
    """Node label of every bus (-1 if out of service) and the representative (lowest) bus of every node."""
    n = inputs.n_bus
    coupler = inputs.coupler_mask() & inputs.switch_closed
    a = inputs.switch_bus[coupler]
    b = inputs.switch_target[coupler]
    ok = inputs.bus_in_service[a] & inputs.bus_in_service[b]
    a, b = a[ok], b[ok]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    labels = np.asarray(labels, dtype=np.int64)
    labels[~inputs.bus_in_service] = -1
    # renumber used labels 0..k-1 in order of their lowest bus
    used = labels >= 0
    uniq, first = np.unique(labels[used], return_index=True)
    buses_used = np.flatnonzero(used)
    rank = np.argsort(np.argsort(buses_used[first], kind="stable"), kind="stable")
    remap = np.full(labels.max() + 1 if len(uniq) else 0, -1, dtype=np.int64)
    remap[uniq] = rank
    node_of_bus = np.full(n, -1, dtype=np.int64)
    node_of_bus[used] = remap[labels[used]]
    node_bus = np.empty(len(uniq), dtype=np.int64)
    node_bus[rank] = buses_used[first]
    return node_of_bus, node_bus


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def process_topology(inputs: TopologyInputs) -> Topology:
    """Fuse buses, find the energised tree from the slack buses and the feeder of every node.

    Raises ``ValidationFailed`` with ``envelopes.network_not_radial`` if the energised network has a loop
    (parallel branches between the same two nodes are merged and do not count as a loop).
    """
    node_of_bus, node_bus = _fuse(inputs)
    n_node = len(node_bus)
    closed = inputs.branch_closed()
    u = node_of_bus[inputs.branch_from_bus]
    v = node_of_bus[inputs.branch_to_bus]
    live = closed & (u >= 0) & (v >= 0)
    self_loop = live & (u == v)
    if self_loop.any():
        names = [inputs.branch_names[i] for i in np.flatnonzero(self_loop)]
        raise ValidationFailed(
            f"branches {_listing(names)} connect buses that closed couplers already join: a closed loop; "
            "open a switch to operate the network radially",
            field="network",
            code=NOT_RADIAL,
            details={"branches": names},
        )
    br = np.flatnonzero(live)
    lo = np.minimum(u[br], v[br])
    hi = np.maximum(u[br], v[br])
    key = lo * max(n_node, 1) + hi
    uniq_key, pair_of = np.unique(key, return_inverse=True)
    pair_lo = uniq_key // max(n_node, 1)
    pair_hi = uniq_key % max(n_node, 1)

    slack_nodes = np.unique(node_of_bus[inputs.slack_buses])
    slack_nodes = slack_nodes[slack_nodes >= 0]
    root = n_node
    rows = np.concatenate([pair_lo, np.full(len(slack_nodes), root)])
    cols = np.concatenate([pair_hi, slack_nodes])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_node + 1, n_node + 1)).tocsr()
    order_all, pred = breadth_first_order(graph, root, directed=False, return_predecessors=True)
    order = np.asarray(order_all[1:], dtype=np.int64)
    energised = np.zeros(n_node, dtype=np.bool_)
    energised[order] = True
    parent = np.full(n_node, -1, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    parent[order] = pred[order]
    parent[parent == root] = -1
    parent[parent < 0] = -1

    # radiality: every energised pair must be a tree edge
    live_pair = energised[pair_lo] & energised[pair_hi]
    tree_pair = (parent[pair_hi] == pair_lo) | (parent[pair_lo] == pair_hi)
    loops = np.flatnonzero(live_pair & ~tree_pair)
    if len(loops):
        in_loop = np.isin(pair_of, loops)
        names = [inputs.branch_names[i] for i in br[in_loop]]
        raise ValidationFailed(
            f"the energised network is meshed: closing branch(es) {_listing(names)} form a loop (or connect "
            "two slack buses); open a switch so it is operated radially, as the envelope engine requires",
            field="network",
            code=NOT_RADIAL,
            details={"branches": names},
        )

    depth = np.full(n_node, -1, dtype=np.int64)
    depth[slack_nodes] = 0
    for k in order:
        p = parent[k]
        if p >= 0:
            depth[k] = depth[p] + 1

    edge_of_branch = np.full(inputs.n_branch, -1, dtype=np.int64)
    from_is_parent = np.zeros(inputs.n_branch, dtype=np.bool_)
    child_of_pair = np.where(parent[pair_hi] == pair_lo, pair_hi, pair_lo)
    in_tree = live_pair[pair_of]
    edge_of_branch[br[in_tree]] = child_of_pair[pair_of[in_tree]]
    members: dict[int, list[int]] = {}
    for k in br[in_tree]:
        members.setdefault(int(edge_of_branch[k]), []).append(int(k))
    tree_br = br[in_tree]
    from_is_parent[tree_br] = node_of_bus[inputs.branch_from_bus[tree_br]] == parent[edge_of_branch[tree_br]]

    # main busbar and feeders (same definition as domain.network.assign_feeders, on the tree)
    is_trafo = np.array([k == TRAFO for k in inputs.branch_kind], dtype=np.bool_)
    edge_has_trafo = np.zeros(n_node, dtype=np.bool_)
    edge_has_trafo[edge_of_branch[tree_br[is_trafo[tree_br]]]] = True
    is_slack = np.zeros(n_node, dtype=np.bool_)
    is_slack[slack_nodes] = True
    first_stage = energised & (parent >= 0) & edge_has_trafo & is_slack[np.maximum(parent, 0)]
    first_stage &= parent >= 0
    main_busbar = first_stage.copy() if first_stage.any() else is_slack.copy()
    feeder_branch = np.full(n_node, -1, dtype=np.int64)
    for k in order:
        p = parent[k]
        if p < 0 or main_busbar[k]:
            continue
        if main_busbar[p]:
            mem = members[int(k)]
            lines = [b for b in mem if not is_trafo[b]]
            feeder_branch[k] = min(lines) if lines else min(mem)
        else:
            feeder_branch[k] = feeder_branch[p]
    return Topology(
        inputs=inputs,
        node_of_bus=node_of_bus,
        node_bus=node_bus,
        energised=energised,
        parent=parent,
        depth=depth,
        order=order,
        slack_nodes=slack_nodes,
        edge_of_branch=edge_of_branch,
        branch_from_is_parent=from_is_parent,
        main_busbar=main_busbar,
        feeder_branch=feeder_branch,
        edge_members={k: tuple(v) for k, v in members.items()},
    )


def de_energised(topology: Topology, buses: IntArray) -> BoolArray:
    """True for each bus position in ``buses`` that has no energised path to a slack bus."""
    return ~topology.bus_energised()[_ints(buses)]
