"""The radial linear network model the envelope engine works on, and O(n) tree passes over it.

A :class:`RadialNetwork` holds the energised nodes of a :class:`~.topology.Topology` renumbered in
breadth-first order (slack nodes first, each depth level contiguous, siblings contiguous), and for every
non-root node the tree edge into it: resistance and reactance in per unit on a 1 MVA base, the thermal
rating in MVA at 100 % loading, and its name. Parallel branches forming one edge are merged into their
parallel impedance; the edge's rating is the smallest ``rating_k / share_k`` over its members (``share_k``
is the member's share of the edge current) and the edge is named after that member.

The tree passes (:func:`path_sum`, :func:`subtree_sum`, :func:`subtree_min`, :func:`path_min`) work on
arrays shaped ``(n_node,)`` or ``(n_node, T)`` (T intervals at once) level by level, so their cost is O(n T)
with one Python step per depth level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridbridge.engines.envelopes._types import BoolArray, FloatArray, IntArray
from gridbridge.engines.envelopes.topology import TRAFO, Topology


@dataclass(frozen=True, eq=False)
class BranchParameters:
    """Electrical data of every branch of a :class:`~.topology.TopologyInputs` (same positions).

    ``r_pu``/``x_pu`` are the series resistance and reactance in per unit on a 1 MVA base at the voltage
    level of the branch (transformers: referred to the low-voltage side), ``s_max_mva`` the rating at
    100 % loading seen from the from-end (``|S| / V_pu`` at which the loading reaches 100 %; ``inf`` if
    unrated), ``s_max_to_mva`` the same at the to-end (None: as the from-end), ``length_km`` the length
    (0 for transformers).
    """

    r_pu: FloatArray
    x_pu: FloatArray
    s_max_mva: FloatArray
    length_km: FloatArray
    s_max_to_mva: FloatArray | None = None

    def __post_init__(self) -> None:
        n = len(self.r_pu)
        if self.s_max_to_mva is None:
            object.__setattr__(self, "s_max_to_mva", np.asarray(self.s_max_mva, dtype=np.float64).copy())
        for name in ("r_pu", "x_pu", "s_max_mva", "length_km", "s_max_to_mva"):
            arr = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            object.__setattr__(self, name, arr)
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} entries; expected {n}")
            if np.isnan(arr).any() or (arr < 0).any():
                raise ValueError(f"{name} must be non-negative numbers")
        if (self.s_max_mva <= 0).any() or (self.to_rating <= 0).any():
            raise ValueError("s_max_mva must be greater than zero (use inf for unrated branches)")

    @property
    def to_rating(self) -> FloatArray:
        """Rating seen from the to-end."""
        assert self.s_max_to_mva is not None
        return self.s_max_to_mva


@dataclass(frozen=True, eq=False)
class Level:
    """One depth level in breadth-first order: nodes ``lo:hi``, grouped by parent (``starts`` are group
    offsets relative to ``lo``; ``group_parent`` the parent of each group)."""

    lo: int
    hi: int
    starts: IntArray
    group_parent: IntArray


@dataclass(frozen=True, eq=False)
class RadialNetwork:
    """Energised nodes in breadth-first order with the tree edge into each (see the module docstring).

    ``topo_node[i]`` is the topology node of network node ``i``; ``node_of_topo[k]`` the inverse (-1 for
    de-energised topology nodes). Edge arrays are indexed by the child node; roots have zero impedance,
    infinite rating and an empty edge name. ``s_max_mva`` is an edge's rating seen from its parent end and
    ``s_max_child_mva`` from its child end. ``edge_branch[i]`` is the branch position naming edge ``i``.
    """

    parent: IntArray
    depth: IntArray
    r_pu: FloatArray
    x_pu: FloatArray
    s_max_mva: FloatArray
    s_max_child_mva: FloatArray
    length_km: FloatArray
    node_names: tuple[str, ...]
    edge_names: tuple[str, ...]
    edge_branch: IntArray
    topo_node: IntArray
    node_of_topo: IntArray
    levels: tuple[Level, ...]

    @property
    def n(self) -> int:
        """Number of energised nodes."""
        return len(self.parent)

    @property
    def is_root(self) -> BoolArray:
        """True for slack (root) nodes."""
        return self.parent < 0

    def constraint_labels(self) -> tuple[str, ...]:
        """Human-readable label of every constraint code (see :class:`ConstraintCode`)."""
        return constraint_labels(self)


class ConstraintCode:
    """Integer codes of the constraints that can bind a limit, for a network of ``n`` nodes.

    ``[0, n)`` upper voltage at node i; ``[n, 2n)`` lower voltage; ``[2n, 3n)`` thermal limit of the edge
    into node i; then the T-D interface reverse and forward flow limits, the per-point cap, de-energised,
    zero weight, and "no constraint" (the LP left the point at zero with nothing active).
    """

    @staticmethod
    def v_max(n: int) -> int:
        """Offset of upper-voltage codes."""
        return 0

    @staticmethod
    def v_min(n: int) -> int:
        """Offset of lower-voltage codes."""
        return n

    @staticmethod
    def thermal(n: int) -> int:
        """Offset of edge thermal codes."""
        return 2 * n

    @staticmethod
    def tdi_reverse(n: int) -> int:
        """Code of the T-D interface reverse-flow limit."""
        return 3 * n

    @staticmethod
    def tdi_forward(n: int) -> int:
        """Code of the T-D interface forward-flow limit."""
        return 3 * n + 1

    @staticmethod
    def cap(n: int) -> int:
        """Code of the per-point cap."""
        return 3 * n + 2

    @staticmethod
    def de_energised(n: int) -> int:
        """Code for a de-energised connection point."""
        return 3 * n + 3

    @staticmethod
    def zero_weight(n: int) -> int:
        """Code for a point with zero allocation weight."""
        return 3 * n + 4

    @staticmethod
    def none(n: int) -> int:
        """Code for 'no constraint active'."""
        return 3 * n + 5

    @staticmethod
    def count(n: int) -> int:
        """Number of codes."""
        return 3 * n + 6


def constraint_labels(network: RadialNetwork) -> tuple[str, ...]:
    """Labels for every :class:`ConstraintCode` of ``network``: ``bus:NAME:v_max``, ``bus:NAME:v_min``,
    ``line:NAME`` / ``trafo:NAME``, ``tdi:reverse_flow``, ``tdi:forward_flow``, ``cap``, ``de-energised``,
    ``zero_weight``, ``none``."""
    vmax = [f"bus:{name}:v_max" for name in network.node_names]
    vmin = [f"bus:{name}:v_min" for name in network.node_names]
    edges = [name or "slack" for name in network.edge_names]
    tail = ["tdi:reverse_flow", "tdi:forward_flow", "cap", "de-energised", "zero_weight", "none"]
    return tuple(vmax + vmin + edges + tail)


def _merge_edge(
    members: tuple[int, ...], params: BranchParameters, from_is_parent: BoolArray
) -> tuple[float, float, float, float, int]:
    """Parallel impedance, parent-end and child-end ratings and naming member of branches forming one edge."""
    idx = list(members)
    z = params.r_pu[idx] + 1j * params.x_pu[idx]
    fip = from_is_parent[idx]
    r_par = np.where(fip, params.s_max_mva[idx], params.to_rating[idx])
    r_chi = np.where(fip, params.to_rating[idx], params.s_max_mva[idx])
    if len(members) == 1:
        return float(z[0].real), float(z[0].imag), float(r_par[0]), float(r_chi[0]), members[0]
    if (np.abs(z) == 0).any():
        share = (np.abs(z) == 0) / float((np.abs(z) == 0).sum())
        z_eq = 0.0 + 0.0j
    else:
        z_eq = 1.0 / (1.0 / z).sum()
        share = np.abs(z_eq / z)
    with np.errstate(divide="ignore"):
        per_par = np.where(share > 0, r_par / share, np.inf)
        per_chi = np.where(share > 0, r_chi / share, np.inf)
    k = int(np.argmin(np.minimum(per_par, per_chi)))
    return float(z_eq.real), float(z_eq.imag), float(per_par.min()), float(per_chi.min()), members[k]


def build_radial_network(topology: Topology, params: BranchParameters) -> RadialNetwork:
    """Build the :class:`RadialNetwork` of the energised part of ``topology`` with branch data ``params``."""
    inputs = topology.inputs
    if len(params.r_pu) != inputs.n_branch:
        raise ValueError(f"branch parameters for {len(params.r_pu)} branches; topology has {inputs.n_branch}")
    parent_t = topology.parent
    depth_t = topology.depth
    energised = np.flatnonzero(topology.energised)
    # order: by depth, then by new index of parent, then by topology node
    new_of = np.full(topology.n_node, -1, dtype=np.int64)
    roots = np.sort(energised[parent_t[energised] < 0])
    new_of[roots] = np.arange(len(roots))
    ordered: list[IntArray] = [roots]
    level_nodes: list[IntArray] = []
    if len(energised):
        max_depth = int(depth_t[energised].max())
        by_depth = [energised[depth_t[energised] == d] for d in range(max_depth + 1)]
        count = len(roots)
        for d in range(1, max_depth + 1):
            nodes = by_depth[d]
            keys = np.lexsort((nodes, new_of[parent_t[nodes]]))
            nodes = nodes[keys]
            new_of[nodes] = np.arange(count, count + len(nodes))
            count += len(nodes)
            ordered.append(nodes)
            level_nodes.append(nodes)
    topo_node = np.concatenate(ordered) if ordered else np.zeros(0, dtype=np.int64)
    n = len(topo_node)
    parent = np.where(parent_t[topo_node] >= 0, new_of[np.maximum(parent_t[topo_node], 0)], -1)
    depth = depth_t[topo_node]

    r = np.zeros(n)
    x = np.zeros(n)
    s_max = np.full(n, np.inf)
    s_max_child = np.full(n, np.inf)
    length = np.zeros(n)
    edge_branch = np.full(n, -1, dtype=np.int64)
    edge_names = [""] * n
    for topo_child, members in topology.edge_members.items():
        i = int(new_of[topo_child])
        if i < 0:
            continue
        r[i], x[i], s_max[i], s_max_child[i], k = _merge_edge(members, params, topology.branch_from_is_parent)
        length[i] = float(np.min(params.length_km[list(members)]))
        edge_branch[i] = k
        kind = "trafo" if inputs.branch_kind[k] == TRAFO else "line"
        edge_names[i] = f"{kind}:{inputs.branch_names[k]}"

    levels: list[Level] = []
    offset = len(roots)
    for nodes in level_nodes:
        lo, hi = offset, offset + len(nodes)
        par = parent[lo:hi]
        change = np.flatnonzero(np.diff(par)) + 1
        starts = np.concatenate([[0], change]).astype(np.int64)
        levels.append(Level(lo=lo, hi=hi, starts=starts, group_parent=par[starts]))
        offset = hi
    node_names = tuple(inputs.bus_names[int(b)] for b in topology.node_bus[topo_node])
    return RadialNetwork(
        parent=parent.astype(np.int64),
        depth=depth.astype(np.int64),
        r_pu=r,
        x_pu=x,
        s_max_mva=s_max,
        s_max_child_mva=s_max_child,
        length_km=length,
        node_names=node_names,
        edge_names=tuple(edge_names),
        edge_branch=edge_branch,
        topo_node=topo_node,
        node_of_topo=new_of,
        levels=tuple(levels),
    )


def _as2d(values: FloatArray) -> tuple[FloatArray, bool]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        return arr[:, None], True
    return arr, False


def path_sum(network: RadialNetwork, edge_values: FloatArray) -> FloatArray:
    """Sum of ``edge_values`` over the edges on each node's path from its root (root entries included as
    given; pass zeros there). Shape ``(n,)`` or ``(n, T)``."""
    vals, flat = _as2d(edge_values)
    out = vals.copy()
    parent = network.parent
    for lv in network.levels:
        out[lv.lo : lv.hi] += out[parent[lv.lo : lv.hi]]
    return out[:, 0] if flat else out


def subtree_sum(network: RadialNetwork, node_values: FloatArray) -> FloatArray:
    """Sum of ``node_values`` over each node's subtree (the node and everything below it)."""
    vals, flat = _as2d(node_values)
    out = vals.copy()
    for lv in reversed(network.levels):
        sums = np.add.reduceat(out[lv.lo : lv.hi], lv.starts, axis=0)
        out[lv.group_parent] += sums
    return out[:, 0] if flat else out


def subtree_min(network: RadialNetwork, node_values: FloatArray) -> tuple[FloatArray, IntArray]:
    """Minimum of ``node_values`` over each node's subtree and the node attaining it."""
    vals, flat = _as2d(node_values)
    out = vals.copy()
    arg = np.broadcast_to(np.arange(network.n)[:, None], out.shape).copy()
    for lv in reversed(network.levels):
        block = out[lv.lo : lv.hi]
        mins = np.minimum.reduceat(block, lv.starts, axis=0)
        # which child attains each group's minimum: the first in the group
        group_of = np.repeat(np.arange(len(lv.starts)), np.diff(np.append(lv.starts, lv.hi - lv.lo)))
        hit = block == mins[group_of]
        idx = np.where(hit, np.arange(lv.lo, lv.hi)[:, None], np.iinfo(np.int64).max)
        first = np.minimum.reduceat(idx, lv.starts, axis=0)
        gp = lv.group_parent
        better = mins < out[gp]
        cols = np.nonzero(better)
        out[gp] = np.where(better, mins, out[gp])
        arg_gp = arg[gp]
        arg_gp[cols] = arg[first[cols], cols[1]]
        arg[gp] = arg_gp
    if flat:
        return out[:, 0], arg[:, 0]
    return out, arg


def path_min(network: RadialNetwork, values: FloatArray) -> tuple[FloatArray, IntArray]:
    """Minimum of ``values`` over each node and its ancestors, and the node attaining it (ties go to the
    ancestor nearest the root)."""
    vals, flat = _as2d(values)
    out = vals.copy()
    arg = np.broadcast_to(np.arange(network.n)[:, None], out.shape).copy()
    parent = network.parent
    for lv in network.levels:
        sl = slice(lv.lo, lv.hi)
        par = parent[sl]
        cand = out[par]
        take = cand <= out[sl]
        out[sl] = np.where(take, cand, out[sl])
        arg[sl] = np.where(take, arg[par], arg[sl])
    if flat:
        return out[:, 0], arg[:, 0]
    return out, arg
