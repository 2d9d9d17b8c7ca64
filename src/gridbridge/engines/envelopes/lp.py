"""The ``max_total`` policy: the largest sum of limits, one linear programme (HiGHS) per interval.

Variables, on the linear model (:mod:`.linear`): the limit ``E_j`` of every energised point (0 to the cap),
the change of flow ``f_c`` on the edge into every non-root node (the sum of ``E`` below it) and the voltage
change ``u_c`` at every non-root node. Rows: ``f_c - sum(f of the children of c) - sum(E at c) = 0`` and
``u_c - u_parent(c) - (r_c / V0_parent) f_c = 0``, plus the T-D interface row ``sum E``. Bounds put every
voltage in the band, every edge within its loading limit and the interface flow within its limits, for
export (points inject ``E``) or import (points withdraw ``E``). The sparse formulation keeps the LP at
about 2n rows instead of a dense n x m sensitivity matrix.

A bound that excludes zero (the limit is broken even with every point at zero) is widened to zero ("do not
make it worse") and the points are flagged ``infeasible`` if they get nothing. The binding constraint of
each point is the active constraint nearest to it: the deepest active edge on its path or the active voltage
constraint whose path shares the deepest edge with it, else the interface limit or the cap.
"""

from __future__ import annotations

from typing import Any

import highspy
import numpy as np
from scipy import sparse

from gridbridge.domain.envelopes import Direction, NetworkLimits
from gridbridge.engines.envelopes._types import BoolArray, FloatArray, IntArray
from gridbridge.engines.envelopes.allocation import DirectionLimits
from gridbridge.engines.envelopes.linear import LinearModel, linearise
from gridbridge.engines.envelopes.network import (
    ConstraintCode,
    RadialNetwork,
    path_min,
    path_sum,
    subtree_min,
    subtree_sum,
)
from gridbridge.engines.envelopes.state import OperatingState, PointSet

_KW_PER_MW = 1000.0
_ACTIVE_TOL = 1e-9


class _Structure:
    """Row/column layout of the LP for one network and point set (the values of ``rr`` vary)."""

    def __init__(self, network: RadialNetwork, points: PointSet) -> None:
        n = network.n
        self.nonroot = np.flatnonzero(~network.is_root)
        self.k_nodes = points.node[points.energised]
        self.n_e = len(self.k_nodes)
        self.n_f = len(self.nonroot)
        pos = np.full(n, -1, dtype=np.int64)
        pos[self.nonroot] = np.arange(self.n_f)
        self.pos = pos
        # columns: E (n_e), f (n_f), u (n_f); rows: flow (n_f), voltage (n_f), tdi (1)
        self.col_e = np.arange(self.n_e)
        self.col_f = self.n_e + np.arange(self.n_f)
        self.col_u = self.n_e + self.n_f + np.arange(self.n_f)
        self.n_col = self.n_e + 2 * self.n_f
        self.n_row = 2 * self.n_f + 1
        rows: list[IntArray] = []
        cols: list[IntArray] = []
        vals: list[FloatArray] = []
        # flow rows: f_c - sum f_children - sum E at c = 0
        rows.append(np.arange(self.n_f))
        cols.append(self.col_f)
        vals.append(np.ones(self.n_f))
        child = self.nonroot
        par = network.parent[child]
        has_par = pos[par] >= 0
        rows.append(pos[par[has_par]])
        cols.append(self.col_f[pos[child[has_par]]])
        vals.append(-np.ones(int(has_par.sum())))
        e_at = pos[self.k_nodes]
        on_tree = e_at >= 0
        rows.append(e_at[on_tree])
        cols.append(self.col_e[on_tree])
        vals.append(-np.ones(int(on_tree.sum())))
        # voltage rows: u_c - u_parent - rr_c f_c = 0 (the rr entries are filled per interval)
        vrow = self.n_f + np.arange(self.n_f)
        rows.append(vrow)
        cols.append(self.col_u)
        vals.append(np.ones(self.n_f))
        rows.append(vrow[has_par])
        cols.append(self.col_u[pos[par[has_par]]])
        vals.append(-np.ones(int(has_par.sum())))
        self.rr_start = sum(len(v) for v in vals)
        rows.append(vrow)
        cols.append(self.col_f)
        vals.append(np.zeros(self.n_f))
        # tdi row
        rows.append(np.full(self.n_e, 2 * self.n_f))
        cols.append(self.col_e)
        vals.append(np.ones(self.n_e))
        self.rows = np.concatenate(rows)
        self.cols = np.concatenate(cols)
        self.vals = np.concatenate(vals)

    def matrix(self, rr: FloatArray) -> sparse.csc_matrix:
        """The constraint matrix with edge sensitivities ``rr`` (n,) filled in."""
        vals = self.vals.copy()
        vals[self.rr_start : self.rr_start + self.n_f] = -rr[self.nonroot]
        return sparse.csc_matrix((vals, (self.rows, self.cols)), shape=(self.n_row, self.n_col))


def _solve(
    matrix: sparse.csc_matrix,
    cost: FloatArray,
    col_lo: FloatArray,
    col_hi: FloatArray,
    row_lo: FloatArray,
    row_hi: FloatArray,
) -> FloatArray | None:
    """Solve ``min cost.x`` with HiGHS; the primal solution, or None if not optimal."""
    h: Any = highspy.Highs()  # type: ignore[no-untyped-call]
    h.silent()
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = int(matrix.shape[1])
    lp.num_row_ = int(matrix.shape[0])
    lp.col_cost_ = np.ascontiguousarray(cost, dtype=np.float64)
    lp.col_lower_ = np.ascontiguousarray(np.clip(col_lo, -inf, inf), dtype=np.float64)
    lp.col_upper_ = np.ascontiguousarray(np.clip(col_hi, -inf, inf), dtype=np.float64)
    lp.row_lower_ = np.ascontiguousarray(np.clip(row_lo, -inf, inf), dtype=np.float64)
    lp.row_upper_ = np.ascontiguousarray(np.clip(row_hi, -inf, inf), dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = lp.num_col_
    lp.a_matrix_.num_row_ = lp.num_row_
    lp.a_matrix_.start_ = np.ascontiguousarray(matrix.indptr, dtype=np.int32)
    lp.a_matrix_.index_ = np.ascontiguousarray(matrix.indices, dtype=np.int32)
    lp.a_matrix_.value_ = np.ascontiguousarray(matrix.data, dtype=np.float64)
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(h.getSolution().col_value, dtype=np.float64)


def _widen(lo: FloatArray, hi: FloatArray) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Widen bounds to contain zero; return the new bounds and where that was needed."""
    broken = (lo > 0) | (hi < 0)
    return np.minimum(lo, 0.0), np.maximum(hi, 0.0), broken


def _binding(
    network: RadialNetwork,
    points_nodes: IntArray,
    v_active: BoolArray,
    e_active: BoolArray,
    v_code_base: int,
) -> IntArray:
    """Per point: code of the nearest active constraint (-1 if none), see the module docstring."""
    n = network.n
    depth = network.depth.astype(np.float64)
    # voltage: deepest ancestor whose subtree holds an active node
    sub, sub_arg = subtree_min(network, np.where(v_active, 0.0, 1.0))
    has = sub == 0.0
    v_best, v_anc = path_min(network, np.where(has, -depth, np.inf))
    # thermal: deepest active edge on the path
    e_best, e_node = path_min(network, np.where(e_active, -depth, np.inf))
    out = np.full(len(points_nodes), -1, dtype=np.int64)
    vb = v_best[points_nodes]
    eb = e_best[points_nodes]
    use_v = np.isfinite(vb) & (vb <= eb)
    use_e = np.isfinite(eb) & ~use_v
    out[use_v] = v_code_base + sub_arg[v_anc[points_nodes[use_v]]]
    out[use_e] = ConstraintCode.thermal(n) + e_node[points_nodes[use_e]]
    return out


def allocate_max_total(
    network: RadialNetwork, state: OperatingState, points: PointSet, limits: NetworkLimits, direction: Direction
) -> DirectionLimits:
    """Limits maximising their sum per interval (see the module docstring)."""
    model = linearise(network, state, points, limits)
    return allocate_max_total_model(network, model, points, limits, direction)


def allocate_max_total_model(
    network: RadialNetwork, model: LinearModel, points: PointSet, limits: NetworkLimits, direction: Direction
) -> DirectionLimits:
    """:func:`allocate_max_total` on a prepared linear model."""
    n, t, m = network.n, model.vz.shape[1], points.m
    export = direction is Direction.EXPORT
    st = _Structure(network, points)
    counts = np.zeros(n)
    np.add.at(counts, st.k_nodes, 1.0)
    below = subtree_sum(network, counts)
    below[network.is_root] = 0.0
    influenced = path_sum(network, below) > 0  # node voltage moves with some point
    edge_ctrl = below > 0
    cap_mw = limits.point_cap_kw / _KW_PER_MW
    p_max = np.zeros((t, m))
    binding = np.full((t, m), ConstraintCode.de_energised(n), dtype=np.int64)
    infeasible = np.zeros((t, m), dtype=np.bool_)
    energised = points.energised
    cost = np.zeros(st.n_col)
    cost[st.col_e] = -1.0
    nr = st.nonroot
    v_code_base = ConstraintCode.v_max(n) if export else ConstraintCode.v_min(n)
    for k in range(t):
        vz, pz, room = model.vz[:, k], model.pz[:, k], model.p_headroom[:, k]
        if export:
            u_lo, u_hi = limits.v_min_pu - vz, limits.v_max_pu - vz
            f_lo, f_hi = pz - room, pz + room
        else:
            u_lo, u_hi = vz - limits.v_max_pu, vz - limits.v_min_pu
            f_lo, f_hi = -room - pz, room - pz
        u_lo, u_hi, u_broken = _widen(u_lo[nr], u_hi[nr])
        f_lo, f_hi, f_broken = _widen(f_lo[nr], f_hi[nr])
        broken = bool((u_broken & influenced[nr]).any() or (f_broken & edge_ctrl[nr]).any())
        t_lo, t_hi = -np.inf, np.inf
        p_tdi_z = float(model.p_tdi_z[k])
        rev, fwd = limits.tdi_reverse_limit_kw, limits.tdi_forward_limit_kw
        if export:
            if rev is not None:
                t_hi = rev / _KW_PER_MW + p_tdi_z
            if fwd is not None:
                t_lo = p_tdi_z - fwd / _KW_PER_MW
        else:
            if fwd is not None:
                t_hi = fwd / _KW_PER_MW - p_tdi_z
            if rev is not None:
                t_lo = -rev / _KW_PER_MW - p_tdi_z
        tdi_broken = t_lo > 0 or t_hi < 0
        t_lo, t_hi = min(t_lo, 0.0), max(t_hi, 0.0)
        broken = broken or (tdi_broken and st.n_e > 0)
        col_lo = np.concatenate([np.zeros(st.n_e), f_lo, u_lo])
        col_hi = np.concatenate([np.full(st.n_e, cap_mw), f_hi, u_hi])
        row_lo = np.concatenate([np.zeros(2 * st.n_f), [t_lo]])
        row_hi = np.concatenate([np.zeros(2 * st.n_f), [t_hi]])
        x = _solve(st.matrix(model.rr[:, k]), cost, col_lo, col_hi, row_lo, row_hi)
        if x is None:  # should not happen: zero is always feasible after widening
            binding[k, energised] = ConstraintCode.none(n)
            infeasible[k, energised] = True
            continue
        e = np.clip(x[st.col_e], 0.0, cap_mw)
        f = x[st.col_f]
        u = x[st.col_u]
        v_active = np.zeros(n, dtype=np.bool_)
        e_active = np.zeros(n, dtype=np.bool_)
        v_active[nr] = u >= u_hi - _ACTIVE_TOL
        e_active[nr] = f >= f_hi - _ACTIVE_TOL
        code = _binding(network, st.k_nodes, v_active, e_active, v_code_base)
        tdi_active = np.isfinite(t_hi) and e.sum() >= t_hi - _ACTIVE_TOL
        at_cap = e >= cap_mw - _ACTIVE_TOL
        code = np.where(code >= 0, code, ConstraintCode.tdi_reverse(n) if export else ConstraintCode.tdi_forward(n))
        if not tdi_active:
            code = np.where(
                code == (ConstraintCode.tdi_reverse(n) if export else ConstraintCode.tdi_forward(n)),
                ConstraintCode.none(n),
                code,
            )
        code = np.where(at_cap, ConstraintCode.cap(n), code)
        p_max[k, energised] = _KW_PER_MW * e
        binding[k, energised] = code
        infeasible[k, energised] = broken & (e <= _ACTIVE_TOL)
    return DirectionLimits(direction, p_max, binding, infeasible)
