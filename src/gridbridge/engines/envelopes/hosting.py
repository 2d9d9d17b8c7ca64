"""Hosting capacity: the largest export (and import) at one connection point alone.

Every other point stays at its state injection; only point ``j``'s net injection changes, from ``p0_j`` to
the export ``H`` (or to ``-I`` for an import). On the linear model an injection change ``d`` at node ``c``
moves the voltage of node ``i`` by ``R(root..lca(i, c)) d`` and the flow of every edge on c's path by
``-d``. The largest ``d`` is found for all points at once in O(n T):

- voltage: ``min_i h_i / R_lca(i, c)`` equals ``min`` over the ancestors ``a`` of ``c`` of
  ``(min over the subtree of a of h) / R_a`` (one bottom-up subtree minimum, one top-down path minimum),
  where ``h`` is the headroom to the band (``v_max - V`` for export, ``V - v_min`` for import);
- thermal: the smallest edge headroom on the path (a top-down path minimum);
- the T-D interface flow limits and the per-point cap.

Where the state already breaks the band at a node ``i`` (negative headroom), the bound ``h_i / R_lca(i, c)``
is negative: the point would have to inject less than in the state. Those nodes are handled exactly with the
largest excess outside the branch towards ``c`` at each ancestor (top-two children per parent). If the
result is below zero, nothing is feasible: the capacity is zero and flagged. The point's own reactive power
is held at its state value (the unity-power-factor change is not modelled here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridbridge.domain.envelopes import Direction, NetworkLimits
from gridbridge.engines.envelopes._types import BoolArray, FloatArray, IntArray
from gridbridge.engines.envelopes.linear import edge_rooms, sensitivities
from gridbridge.engines.envelopes.network import ConstraintCode, RadialNetwork, path_min, path_sum, subtree_min
from gridbridge.engines.envelopes.state import OperatingState, PointSet

_KW_PER_MW = 1000.0


@dataclass(frozen=True, eq=False)
class HostingCapacity:
    """Hosting capacity per interval and point: ``p_max_kw`` (T, m), ``binding`` (T, m) constraint codes,
    ``infeasible`` (T, m) where the state already breaks a limit the point influences."""

    direction: Direction
    p_max_kw: FloatArray
    binding: IntArray
    infeasible: BoolArray


def hosting_capacity(
    network: RadialNetwork, state: OperatingState, points: PointSet, limits: NetworkLimits, direction: Direction
) -> HostingCapacity:
    """Largest export (or import) at each connection point alone, for every interval of ``state``."""
    n, t, m = network.n, state.intervals, points.m
    export = direction is Direction.EXPORT
    v = np.ascontiguousarray(state.v_pu.T)
    p = np.ascontiguousarray(state.p_flow_mw.T)
    q = np.ascontiguousarray(state.q_flow_mvar.T)
    rr, _ = sensitivities(network, v)
    r_path = path_sum(network, rr)

    # voltage: min over ancestors a of (subtree-min headroom) / R_a, exact for non-negative headroom;
    # nodes already beyond the band (negative headroom) are handled exactly by _negative_part
    head = (limits.v_max_pu - v) if export else (v - limits.v_min_pu)
    positive = np.where(head >= 0, head, np.inf)
    sub_min, sub_arg = subtree_min(network, positive)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(r_path > 0, sub_min / r_path, np.inf)
    v_lim, v_anc = path_min(network, ratio)
    v_bus = np.take_along_axis(sub_arg, v_anc, axis=0)
    if (head < 0).any():
        neg_lim, neg_bus = _negative_part(network, np.where(head < 0, -head, 0.0), r_path)
        take = neg_lim < v_lim
        v_lim = np.where(take, neg_lim, v_lim)
        v_bus = np.where(take, neg_bus, v_bus)
    v_code = (ConstraintCode.v_max(n) if export else ConstraintCode.v_min(n)) + v_bus

    # thermal: smallest headroom on the path
    room_p, room_c = edge_rooms(network, v, q, np.ascontiguousarray(state.recv[1].T), limits.max_loading_pct)
    room = np.minimum(room_p, room_c)
    edge_room = (p + room) if export else (room - p)
    edge_room[network.is_root] = np.inf
    th_lim, th_edge = path_min(network, edge_room)
    th_code = ConstraintCode.thermal(n) + th_edge

    nodes, ok = network_nodes(points)
    p0 = state.cp_p_mw[:, ok]  # (T, k)
    own = p0 if export else -p0
    cand = np.stack(
        [v_lim[nodes].T, th_lim[nodes].T], axis=0
    )  # (2, T, k): largest increase of the point's injection (export) / withdrawal (import)
    codes = np.stack([v_code[nodes].T, th_code[nodes].T], axis=0)
    tdi_lim = np.full(t, np.inf)
    tdi_code = -1
    if export and limits.tdi_reverse_limit_kw is not None:
        tdi_lim = limits.tdi_reverse_limit_kw / _KW_PER_MW + state.p_tdi_mw
        tdi_code = ConstraintCode.tdi_reverse(n)
    if not export and limits.tdi_forward_limit_kw is not None:
        tdi_lim = limits.tdi_forward_limit_kw / _KW_PER_MW - state.p_tdi_mw
        tdi_code = ConstraintCode.tdi_forward(n)
    cand = np.concatenate([cand, np.broadcast_to(tdi_lim[None, :, None], (1, t, len(nodes)))], axis=0)
    codes = np.concatenate([codes, np.full((1, t, len(nodes)), tdi_code, dtype=np.int64)], axis=0)
    which = np.argmin(cand, axis=0)
    delta = np.take_along_axis(cand, which[None], axis=0)[0]
    code = np.take_along_axis(codes, which[None], axis=0)[0]
    value_mw = own + delta
    cap_mw = limits.point_cap_kw / _KW_PER_MW
    capped = value_mw > cap_mw
    code = np.where(capped, ConstraintCode.cap(n), code)
    infeasible_k = ~np.isfinite(delta) | (value_mw < 0)
    value_mw = np.clip(np.nan_to_num(value_mw, neginf=0.0, posinf=cap_mw), 0.0, cap_mw)

    p_max = np.zeros((t, m))
    binding = np.full((t, m), ConstraintCode.de_energised(n), dtype=np.int64)
    infeasible = np.zeros((t, m), dtype=np.bool_)
    p_max[:, ok] = _KW_PER_MW * value_mw
    binding[:, ok] = code
    infeasible[:, ok] = infeasible_k
    return HostingCapacity(direction, p_max, binding, infeasible)


def network_nodes(points: PointSet) -> tuple[IntArray, BoolArray]:
    """Node indices of the energised points and the mask selecting them."""
    ok = points.energised
    return points.node[ok], ok


def _negative_part(network: RadialNetwork, excess: FloatArray, r_path: FloatArray) -> tuple[FloatArray, IntArray]:
    """``min_i -excess_i / R_lca(i, c)`` for every node c, and the node i attaining it (n, T).

    For an ancestor a of c with child b towards c, the nodes whose lca with c is a are a itself and the
    subtrees of a's other children; the largest excess there is found from each parent's two largest child
    subtree maxima. Node c's own subtree has lca c.
    """
    n, t = excess.shape
    sub_max_neg, sub_arg = subtree_min(network, -excess)
    sub_max = -sub_max_neg
    # value at each non-root node b (for its parent a): the largest excess over a and b's siblings' subtrees
    outside = np.zeros((n, t))
    outside_arg = np.broadcast_to(np.arange(n)[:, None], (n, t)).copy()
    parent = network.parent
    for lv in network.levels:
        lo, hi = lv.lo, lv.hi
        block = sub_max[lo:hi]
        sizes = np.diff(np.append(lv.starts, hi - lo))
        group_of = np.repeat(np.arange(len(lv.starts)), sizes)
        rows = np.arange(lo, hi)[:, None]
        top1 = np.maximum.reduceat(block, lv.starts, axis=0)
        hit = block == top1[group_of]
        first = np.minimum.reduceat(np.where(hit, rows, np.iinfo(np.int64).max), lv.starts, axis=0)
        is_first = rows == first[group_of]
        masked = np.where(is_first, -np.inf, block)
        top2 = np.maximum.reduceat(masked, lv.starts, axis=0)
        hit2 = masked == top2[group_of]
        second = np.minimum.reduceat(np.where(hit2, rows, np.iinfo(np.int64).max), lv.starts, axis=0)
        sib_val = np.where(is_first, top2[group_of], top1[group_of])
        sib_node = np.where(is_first, second[group_of], first[group_of])
        sib_node = np.where(np.isfinite(sib_val), sib_node, 0)
        cols = np.broadcast_to(np.arange(t)[None, :], sib_node.shape)
        sib_arg = sub_arg[sib_node, cols]
        par = parent[lo:hi]
        own_par = excess[par]
        use_par = own_par >= np.where(np.isfinite(sib_val), sib_val, -np.inf)
        outside[lo:hi] = np.where(use_par, own_par, sib_val)
        outside_arg[lo:hi] = np.where(use_par, np.broadcast_to(par[:, None], (hi - lo, t)), sib_arg)
    r_par = r_path[np.maximum(parent, 0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.where((parent >= 0)[:, None] & (r_par > 0) & (outside > 0), -outside / r_par, np.inf)
        own = np.where((r_path > 0) & (sub_max > 0), -sub_max / r_path, np.inf)
    best, best_node = path_min(network, val)
    bus = np.take_along_axis(outside_arg, best_node, axis=0)
    take_own = own < best
    return np.where(take_own, own, best), np.where(take_own, sub_arg, bus)
