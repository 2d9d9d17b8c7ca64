"""Envelope limits with every connection point at its limit at once: ``equal`` and ``proportional``.

Both policies give point ``j`` the limit ``w_j * lam`` (``w_j = 1`` for ``equal``) and find the largest
common ``lam`` that keeps the network within every limit, for every interval at once. From the state, the
DistFlow derivative (:func:`~.linear.flow_jvp`) is applied twice: to the change that takes every point to
zero net injection (giving the "zero" state) and to the direction ``w`` (export: points inject; import:
points withdraw). Every quantity is then affine in ``lam``:

- node voltage ``V_i = V0_i + lam dV_i`` within ``[v_min, v_max]``;
- each edge's active flow at both ends within the headroom its loading limit leaves next to its reactive
  flow (``|S| <= loading% * rating * V``);
- the T-D interface import within its reverse and forward limits;

and each gives an upper or a lower bound on ``lam``. ``lam`` is the smallest upper bound (its constraint is
the binding one) if that is at least the largest lower bound and zero; otherwise nothing is feasible: the
limits are zero and the interval is flagged ``infeasible`` with the constraint broken even at zero.
Constraints no connection point moves are not part of the allocation (they are reported with the base
case). Cost: O(n T) with one numpy step per tree depth level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridbridge.domain.envelopes import Direction, NetworkLimits
from gridbridge.engines.envelopes._types import BoolArray, FloatArray, IntArray
from gridbridge.engines.envelopes.linear import edge_rooms, flow_jvp
from gridbridge.engines.envelopes.network import ConstraintCode, RadialNetwork
from gridbridge.engines.envelopes.state import OperatingState, PointSet

_KW_PER_MW = 1000.0
#: Slopes smaller than this (per MW of lam) count as "not moved by the points".
_SLOPE_EPS = 1e-12


@dataclass(frozen=True, eq=False)
class DirectionLimits:
    """Limits of one direction: ``p_max_kw`` (T, m) non-negative; ``binding`` (T, m) constraint codes
    (:class:`~.network.ConstraintCode`); ``infeasible`` (T, m) True where a constraint is broken even with
    the points at zero, so the limit was set to zero."""

    direction: Direction
    p_max_kw: FloatArray
    binding: IntArray
    infeasible: BoolArray


class _Bounds:
    """Running minimum of upper bounds and maximum of lower bounds on ``lam`` with their codes."""

    def __init__(self, t: int) -> None:
        self.upper = np.full(t, np.inf)
        self.upper_code = np.full(t, -1, dtype=np.int64)
        self.lower = np.zeros(t)
        self.lower_code = np.full(t, -1, dtype=np.int64)

    def add(self, values: FloatArray, codes: IntArray, *, upper: bool) -> None:
        """Fold bounds ``values`` (k, T) with constraint ``codes`` (k, T) or (k,) into the running bounds."""
        if values.shape[0] == 0:
            return
        cols = np.arange(values.shape[1])
        codes2 = np.broadcast_to(codes if codes.ndim == 2 else codes[:, None], values.shape)
        if upper:
            k = np.argmin(values, axis=0)
            best = values[k, cols]
            better = best < self.upper
            self.upper = np.where(better, best, self.upper)
            self.upper_code = np.where(better, codes2[k, cols], self.upper_code)
        else:
            k = np.argmax(values, axis=0)
            best = values[k, cols]
            better = best > self.lower
            self.lower = np.where(better, best, self.lower)
            self.lower_code = np.where(better, codes2[k, cols], self.lower_code)

    def add_range(
        self,
        base: FloatArray,
        slope: FloatArray,
        lo: FloatArray | float,
        hi: FloatArray | float,
        code_lo: IntArray,
        code_hi: IntArray,
    ) -> None:
        """Fold ``lo <= base + lam * slope <= hi`` (arrays (k, T); codes (k,)) into the bounds."""
        if base.shape[0] == 0:
            return
        lo_a = np.broadcast_to(np.asarray(lo, dtype=np.float64), base.shape)
        hi_a = np.broadcast_to(np.asarray(hi, dtype=np.float64), base.shape)
        up_slope = slope > _SLOPE_EPS
        down_slope = slope < -_SLOPE_EPS
        with np.errstate(divide="ignore", invalid="ignore"):
            to_hi = (hi_a - base) / slope
            to_lo = (lo_a - base) / slope
        c_lo = np.broadcast_to(code_lo[:, None], base.shape)
        c_hi = np.broadcast_to(code_hi[:, None], base.shape)
        upper = np.where(up_slope, to_hi, np.where(down_slope, to_lo, np.inf))
        upper_code = np.where(up_slope, c_hi, c_lo)
        lower = np.where(up_slope, to_lo, np.where(down_slope, to_hi, -np.inf))
        lower_code = np.where(up_slope, c_lo, c_hi)
        self.add(np.where(np.isnan(upper), np.inf, upper), upper_code, upper=True)
        self.add(np.where(np.isnan(lower), -np.inf, lower), lower_code, upper=False)


def _solve_scale(
    network: RadialNetwork,
    state: OperatingState,
    points: PointSet,
    weights: FloatArray,
    limits: NetworkLimits,
    direction: Direction,
) -> tuple[FloatArray, IntArray, BoolArray]:
    """Largest feasible common scale ``lam`` (T,), its binding code (T,) and the infeasible flag (T,)."""
    n, t = network.n, state.intervals
    sign = 1.0 if direction is Direction.EXPORT else -1.0
    v0 = np.ascontiguousarray(state.v_pu.T)
    p0 = np.ascontiguousarray(state.p_flow_mw.T)
    q0 = np.ascontiguousarray(state.q_flow_mvar.T)
    p0r = np.ascontiguousarray(state.recv[0].T)
    q0r = np.ascontiguousarray(state.recv[1].T)
    inc = points.incidence(network.n)
    cp_p = np.asarray(inc @ state.cp_p_mw.T)
    cp_q = np.asarray(inc @ state.cp_q_mvar.T)
    ok = points.energised & (weights > 0)
    w_node = np.zeros(n)
    np.add.at(w_node, points.node[ok], weights[ok])
    zero = flow_jvp(network, v0, p0, q0, -cp_p, -cp_q)
    along = flow_jvp(network, v0, p0, q0, np.broadcast_to(sign * w_node[:, None], (n, t)), np.zeros((n, t)))
    bounds = _Bounds(t)
    nodes = np.arange(n)

    # voltages
    v_base = v0 + zero.dv
    bounds.add_range(
        v_base,
        along.dv,
        limits.v_min_pu,
        limits.v_max_pu,
        ConstraintCode.v_min(n) + nodes,
        ConstraintCode.v_max(n) + nodes,
    )

    # thermal, both ends of every rated edge
    rated = np.flatnonzero(~network.is_root & (np.isfinite(network.s_max_mva) | np.isfinite(network.s_max_child_mva)))
    if len(rated):
        v_low = np.minimum(v0, v_base)
        room_p, room_c = edge_rooms(network, v_low, q0 + zero.dq_send, q0r + zero.dq_recv, limits.max_loading_pct)
        code = ConstraintCode.thermal(n) + rated
        for base, slope, room in (
            (p0 + zero.dp_send, along.dp_send, room_p),
            (p0r + zero.dp_recv, along.dp_recv, room_c),
        ):
            r = room[rated]
            bounds.add_range(base[rated], slope[rated], -r, r, code, code)

    # T-D interface
    rev, fwd = limits.tdi_reverse_limit_kw, limits.tdi_forward_limit_kw
    if rev is not None or fwd is not None:
        lo = -rev / _KW_PER_MW if rev is not None else -np.inf
        hi = fwd / _KW_PER_MW if fwd is not None else np.inf
        bounds.add_range(
            (state.p_tdi_mw + zero.dp_tdi)[None, :],
            along.dp_tdi[None, :],
            lo,
            hi,
            np.array([ConstraintCode.tdi_reverse(n)]),
            np.array([ConstraintCode.tdi_forward(n)]),
        )

    # per-point cap
    if ok.any():
        cap = np.full(t, limits.point_cap_kw / _KW_PER_MW / float(weights[ok].max()))
        bounds.add(cap[None, :], np.array([ConstraintCode.cap(n)]), upper=True)

    tol = 1e-12
    feasible = bounds.upper >= bounds.lower - tol
    lam = np.where(feasible, np.maximum(bounds.upper, 0.0), 0.0)
    code = np.where(feasible | (bounds.upper < 0) | (bounds.lower_code < 0), bounds.upper_code, bounds.lower_code)
    return lam, code.astype(np.int64), ~feasible


def allocate_scaled(
    network: RadialNetwork,
    state: OperatingState,
    points: PointSet,
    limits: NetworkLimits,
    direction: Direction,
    weights: FloatArray,
) -> DirectionLimits:
    """Limits ``w_j * lam`` for ``points`` with ``weights`` (m,) around ``state`` (see the module docstring)."""
    n, t, m = network.n, state.intervals, points.m
    w = np.asarray(weights, dtype=np.float64)
    ok = points.energised & (w > 0)
    lam, code, infeasible = _solve_scale(network, state, points, w, limits, direction)
    if not ok.any():  # nothing to allocate (no point energised with a weight): no bound applies
        lam = np.zeros(t)
        infeasible = np.zeros(t, dtype=np.bool_)
    p_max = _KW_PER_MW * lam[:, None] * np.where(ok, w, 0.0)[None, :]
    binding = np.broadcast_to(code[:, None], (t, m)).copy()
    binding[:, ~points.energised] = ConstraintCode.de_energised(n)
    binding[:, points.energised & ~ok] = ConstraintCode.zero_weight(n)
    infeasible_pm = infeasible[:, None] & ok[None, :]
    return DirectionLimits(direction, p_max, binding, infeasible_pm)


def allocate_equal(
    network: RadialNetwork, state: OperatingState, points: PointSet, limits: NetworkLimits, direction: Direction
) -> DirectionLimits:
    """Equal limits for every energised connection point (see the module docstring)."""
    return allocate_scaled(network, state, points, limits, direction, np.ones(points.m))


def allocate_proportional(
    network: RadialNetwork, state: OperatingState, points: PointSet, limits: NetworkLimits, direction: Direction
) -> DirectionLimits:
    """Limits proportional to ``points.weight`` (see the module docstring); zero-weight points get zero."""
    return allocate_scaled(network, state, points, limits, direction, points.weight)
