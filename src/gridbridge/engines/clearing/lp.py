"""Interface-level clearing as an LP solved with HiGHS.

Formulation (docs/coordination-engines.md has the full statement). Variables, in MW so that duals come out
in CAD/MWh: one per energy segment ``x_s`` in ``[0, Q_s]``, one per reserve segment ``u_s`` in ``[0, U_s]``,
and, with a shortage price, one energy and one reserve shortage variable. Rows:

* balance: ``sum_r sigma_r * sum_{s in r} x_s + shortage = D``  (sigma = +1 offers, -1 bids)
* per interface ``k``: ``min_k <= sum_r df_rk * sigma_r * sum_{s in r} x_s <= max_k``
* reserve: ``sum_s u_s + reserve_shortage >= D_reserve``
* per interface ``k`` (deliverability, when reserve is cleared): ``sum_r df_rk (sigma_r x_r + u_r) <= max_k``
* per resource offering reserve with a capacity: ``x_r + u_r <= capacity_r``

Objective: ``min sum price_s x_s + sum reserve_price_s u_s + shortage_price * shortages``.

Prices from duals: ``lambda`` (balance), ``y_k`` (interface), ``z_k`` (deliverability), ``rho`` (reserve).
Energy price at ``k``: ``lambda + y_k + z_k``; congestion component ``y_k + z_k``; reserve price at
``k``: ``rho + z_k``. HiGHS's row duals are the derivative of the optimal cost with respect to the row
bound, so ``lambda`` is the system marginal energy price and ``y_k <= 0`` when export is congested.

Ties: among all least-cost dispatches, the one minimising ``sum_j rank_j * x_j`` is returned, where ``rank``
is each segment's place in the stable resource order (resource index, then segment). Equal prices are thus
filled in resource order. The second stage keeps the first stage's dual solution and fixes every column with
a non-zero reduced cost at its bound and every row with a non-zero dual at its active bound (complementary
slackness), so every dispatch it may choose is least-cost; prices equal within ``tie_tolerance`` are ties.

Long curves of single-interface, energy-only offers (exact merges of many DERs) are solved through a window:
segments well below the interface price are one *prefix* column, those well above one *suffix* column, and
only the segments near the price are individual columns. The window is accepted when the prefix is fully
dispatched at a price below the interface price and the suffix not at all above it; otherwise it widens and
the LP is solved again. Accepted, the restricted LP's primal and dual solutions satisfy the optimality
conditions of the full LP, so the result is exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from gridbridge.engines.clearing._highs import LpSolution, LpSolver
from gridbridge.engines.clearing.curves import CurveSet, cap_curves
from gridbridge.engines.clearing.problem import (
    ClearingInfeasible,
    ClearingProblem,
    ClearingResult,
    ClearingTimeLimit,
)
from gridbridge.engines.clearing.types import BoolArray, FloatArray, IntArray, sum_by

_ENERGY, _PREFIX, _SUFFIX, _RESERVE, _SHORT_E, _SHORT_R = range(6)


@dataclass(frozen=True)
class _Layout:
    """Where the rows of one LP build are."""

    n_rows: int
    iface0: int
    reserve_row: int
    deliv0: int
    cap_row: IntArray


def _df_csr(problem: ClearingProblem) -> tuple[IntArray, IntArray, FloatArray]:
    df = problem.distribution_factors
    order = np.argsort(df.resource, kind="stable")
    count = np.bincount(df.resource, minlength=problem.n_resources)
    start = np.zeros(problem.n_resources + 1, dtype=np.int64)
    np.cumsum(count, out=start[1:])
    return start, df.interface[order], df.factor[order]


def _expand_df(
    col_res: IntArray, df_start: IntArray, df_k: IntArray, df_f: FloatArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """For each column, one entry per distribution factor of its resource: (column, interface, factor)."""
    cnt = df_start[col_res + 1] - df_start[col_res]
    col = np.repeat(np.arange(col_res.size, dtype=np.int64), cnt)
    first = np.cumsum(cnt) - cnt
    idx = np.repeat(df_start[col_res] - first, cnt) + np.arange(int(cnt.sum()), dtype=np.int64)
    return col, df_k[idx], df_f[idx]


def _system_price_estimate(problem: ClearingProblem, energy: CurveSet) -> float:
    """Merit-order price of the requirement ignoring every limit (a starting point for the windows)."""
    offer = ~problem.bids()[energy.owner()]
    price = energy.price_cad_per_mwh[offer]
    qty = energy.quantity_kw[offer]
    if price.size == 0:
        return 0.0
    order = np.argsort(price, kind="stable")
    cum = np.cumsum(qty[order])
    i = int(np.searchsorted(cum, problem.energy_requirement_kw, side="left"))
    return float(price[order][min(i, price.size - 1)])


def clear_lp(
    problem: ClearingProblem,
    *,
    window_segments: int = 8,
    window_min_length: int = 48,
    tie_break: bool = True,
    tie_tolerance: float = 1e-6,
    time_limit_s: float | None = None,
    max_window_rounds: int = 30,
) -> ClearingResult:
    """Clear one interval: least-cost dispatch of energy and reserve within interface limits, prices from duals.

    Raises ``ClearingInfeasible`` when no dispatch meets the requirements (and no shortage price is set),
    ``ClearingTimeLimit`` when HiGHS stops at ``time_limit_s``. ``window_segments`` and
    ``window_min_length`` tune the windows on long curves (module docstring); they change speed, not results.
    """
    t0 = time.perf_counter()
    n = problem.n_resources
    k_if = problem.n_interfaces
    bid = problem.bids()
    sigma = np.where(bid, -1.0, 1.0)
    reserve = problem.reserve_curves()
    capacity = problem.capacity()
    has_reserve = reserve.total_kw() > 0
    energy = problem.energy
    cap_energy = np.where(has_reserve, np.inf, capacity)
    if np.any(np.isfinite(cap_energy)):
        energy = cap_curves(energy, cap_energy)
    df_start, df_k, df_f = _df_csr(problem)
    single = problem.distribution_factors.single_interface(n)
    lengths = energy.lengths()
    windowable = (single >= 0) & ~bid & ~has_reserve & (lengths > window_min_length)

    owner = energy.owner()
    position = energy.position()
    price = energy.price_cad_per_mwh
    qty = energy.quantity_kw

    window_lo = np.zeros(n, dtype=np.int64)
    window_hi = lengths.copy()
    width = np.full(n, window_segments, dtype=np.int64)
    if np.any(windowable):
        pi0 = _system_price_estimate(problem, energy)
        lo_cnt, hi_cnt = _crossings(price, owner, n, np.full(n, pi0), tie_tolerance)
        window_lo = np.where(windowable, np.maximum(lo_cnt - width, 0), 0)
        window_hi = np.where(windowable, np.minimum(hi_cnt + width, lengths), lengths)

    reserve_active = bool(has_reserve.any() or problem.reserve_requirement_kw > 0)
    cap_rows_res = np.flatnonzero(has_reserve & np.isfinite(capacity) & ~bid)
    rounds = 0
    while True:
        rounds += 1
        cols = _columns(problem, energy, reserve, owner, position, window_lo, window_hi, windowable)
        layout, matrix, row_lo, row_hi = _matrix(
            problem, cols, sigma, df_start, df_k, df_f, reserve_active, cap_rows_res, capacity
        )
        solver = LpSolver(time_limit_s=time_limit_s)
        solver.load(cols.cost, np.zeros(cols.upper.size), cols.upper, matrix, row_lo, row_hi)
        sol = solver.solve()
        _raise_for_status(sol)
        prices = _prices(sol, layout, k_if, reserve_active)
        if not np.any(windowable):
            break
        ok, window_lo, window_hi, width = _check_windows(
            cols,
            sol,
            prices[0],
            single,
            windowable,
            energy,
            owner,
            window_lo,
            window_hi,
            width,
            lengths,
            tie_tolerance,
        )
        if ok:
            break
        if rounds >= max_window_rounds:
            window_lo = np.zeros(n, dtype=np.int64)
            window_hi = lengths.copy()
            windowable = np.zeros(n, dtype=bool)

    x = sol.x
    if tie_break and cols.cost.size:
        x = _break_ties(solver, sol, cols, row_lo, row_hi, tie_tolerance)

    energy_segment_kw = np.zeros(energy.n_segments)
    seg_cols = cols.kind == _ENERGY
    energy_segment_kw[cols.ref[seg_cols]] = x[seg_cols] * 1000.0
    in_prefix = windowable[owner] & (position < window_lo[owner])
    energy_segment_kw[in_prefix] = qty[in_prefix]
    energy_segment_kw = np.clip(energy_segment_kw, 0.0, qty)
    reserve_segment_kw = np.zeros(reserve.n_segments)
    res_cols = cols.kind == _RESERVE
    reserve_segment_kw[cols.ref[res_cols]] = np.clip(x[res_cols] * 1000.0, 0.0, reserve.quantity_kw[cols.ref[res_cols]])
    short_e = float(x[cols.kind == _SHORT_E].sum() * 1000.0)
    short_r = float(x[cols.kind == _SHORT_R].sum() * 1000.0)
    stats = {
        "columns": float(cols.cost.size),
        "rows": float(layout.n_rows),
        "rounds": float(rounds),
        "iterations": float(sol.iterations),
        "seconds": time.perf_counter() - t0,
    }
    return assemble_result(
        problem, energy, reserve, energy_segment_kw, reserve_segment_kw, prices, short_e, short_r, "lp", stats
    )


def _crossings(price: FloatArray, owner: IntArray, n: int, pi_res: FloatArray, tol: float) -> tuple[IntArray, IntArray]:
    """Per curve: segments priced below ``pi - tol``, and segments priced at or below ``pi + tol``."""
    lo = np.bincount(owner, weights=price < pi_res[owner] - tol, minlength=n).astype(np.int64)
    hi = np.bincount(owner, weights=price <= pi_res[owner] + tol, minlength=n).astype(np.int64)
    return lo, hi


@dataclass(frozen=True)
class _Columns:
    kind: IntArray
    resource: IntArray
    ref: IntArray
    """Flat segment index (energy, prefix: its last segment, suffix: its first segment, reserve)."""
    cost: FloatArray
    upper: FloatArray
    """MW."""
    rank: FloatArray


def _columns(
    problem: ClearingProblem,
    energy: CurveSet,
    reserve: CurveSet,
    owner: IntArray,
    position: IntArray,
    window_lo: IntArray,
    window_hi: IntArray,
    windowable: BoolArray,
) -> _Columns:
    n = problem.n_resources
    price = energy.price_cad_per_mwh
    qty = energy.quantity_kw
    in_window = (position >= window_lo[owner]) & (position < window_hi[owner]) & (qty > 0)
    seg = np.flatnonzero(in_window)
    pre = windowable[owner] & (position < window_lo[owner])
    suf = windowable[owner] & (position >= window_hi[owner])
    pre_q = np.bincount(owner, weights=np.where(pre, qty, 0.0), minlength=n)
    pre_c = np.bincount(owner, weights=np.where(pre, qty * price, 0.0), minlength=n)
    suf_q = np.bincount(owner, weights=np.where(suf, qty, 0.0), minlength=n)
    suf_c = np.bincount(owner, weights=np.where(suf, qty * price, 0.0), minlength=n)
    pre_r = np.flatnonzero(pre_q > 0)
    suf_r = np.flatnonzero(suf_q > 0)
    res_seg = np.flatnonzero(reserve.quantity_kw > 0)
    res_owner = reserve.owner()
    n_e = energy.n_segments
    parts_kind = [
        np.full(seg.size, _ENERGY),
        np.full(pre_r.size, _PREFIX),
        np.full(suf_r.size, _SUFFIX),
        np.full(res_seg.size, _RESERVE),
    ]
    parts_res = [owner[seg], pre_r, suf_r, res_owner[res_seg]]
    parts_ref = [seg, energy.start[pre_r] + window_lo[pre_r] - 1, energy.start[suf_r] + window_hi[suf_r], res_seg]
    sign = np.where(problem.bids(), -1.0, 1.0)
    parts_cost = [
        sign[owner[seg]] * price[seg],
        pre_c[pre_r] / pre_q[pre_r],
        suf_c[suf_r] / suf_q[suf_r],
        reserve.price_cad_per_mwh[res_seg],
    ]
    parts_upper = [qty[seg], pre_q[pre_r], suf_q[suf_r], reserve.quantity_kw[res_seg]]
    parts_rank = [
        seg.astype(np.float64),
        parts_ref[1].astype(np.float64),
        parts_ref[2].astype(np.float64),
        (n_e + res_seg).astype(np.float64),
    ]
    if problem.shortage_price_cad_per_mwh is not None:
        top = float(n_e + reserve.n_segments)
        parts_kind.append(np.array([_SHORT_E]))
        parts_res.append(np.array([-1]))
        parts_ref.append(np.array([-1]))
        parts_cost.append(np.array([problem.shortage_price_cad_per_mwh]))
        parts_upper.append(np.array([max(problem.energy_requirement_kw, 0.0)]))
        parts_rank.append(np.array([top]))
        if problem.reserve_requirement_kw > 0:
            parts_kind.append(np.array([_SHORT_R]))
            parts_res.append(np.array([-1]))
            parts_ref.append(np.array([-1]))
            parts_cost.append(np.array([problem.shortage_price_cad_per_mwh]))
            parts_upper.append(np.array([problem.reserve_requirement_kw]))
            parts_rank.append(np.array([top + 1]))
    return _Columns(
        kind=np.concatenate(parts_kind).astype(np.int64),
        resource=np.concatenate(parts_res).astype(np.int64),
        ref=np.concatenate(parts_ref).astype(np.int64),
        cost=np.concatenate(parts_cost).astype(np.float64),
        upper=np.concatenate(parts_upper).astype(np.float64) / 1000.0,
        rank=np.concatenate(parts_rank).astype(np.float64) + 1.0,
    )


def _matrix(
    problem: ClearingProblem,
    cols: _Columns,
    sigma: FloatArray,
    df_start: IntArray,
    df_k: IntArray,
    df_f: FloatArray,
    reserve_active: bool,
    cap_rows_res: IntArray,
    capacity: FloatArray,
) -> tuple[_Layout, sparse.csc_array, FloatArray, FloatArray]:
    k_if = problem.n_interfaces
    iface0 = 1
    reserve_row = 1 + k_if if reserve_active else -1
    deliv0 = 2 + k_if if reserve_active else -1
    cap0 = (2 + 2 * k_if) if reserve_active else (1 + k_if)
    n_rows = cap0 + cap_rows_res.size
    cap_row = np.full(problem.n_resources, -1, dtype=np.int64)
    cap_row[cap_rows_res] = cap0 + np.arange(cap_rows_res.size)

    rows: list[IntArray] = []
    colsl: list[IntArray] = []
    vals: list[FloatArray] = []
    j_all = np.arange(cols.kind.size, dtype=np.int64)
    is_e = (cols.kind == _ENERGY) | (cols.kind == _PREFIX) | (cols.kind == _SUFFIX)
    je = j_all[is_e]
    sg = sigma[cols.resource[je]]
    rows.append(np.zeros(je.size, dtype=np.int64))
    colsl.append(je)
    vals.append(sg)
    c, k, f = _expand_df(cols.resource[je], df_start, df_k, df_f)
    rows.append(iface0 + k)
    colsl.append(je[c])
    vals.append(sg[c] * f)
    if reserve_active:
        rows.append(deliv0 + k)
        colsl.append(je[c])
        vals.append(sg[c] * f)
    ce = cap_row[cols.resource[je]]
    has = ce >= 0
    rows.append(ce[has])
    colsl.append(je[has])
    vals.append(np.ones(int(has.sum())))

    jr = j_all[cols.kind == _RESERVE]
    if jr.size:
        rows.append(np.full(jr.size, reserve_row, dtype=np.int64))
        colsl.append(jr)
        vals.append(np.ones(jr.size))
        c, k, f = _expand_df(cols.resource[jr], df_start, df_k, df_f)
        rows.append(deliv0 + k)
        colsl.append(jr[c])
        vals.append(f)
        cr = cap_row[cols.resource[jr]]
        has = cr >= 0
        rows.append(cr[has])
        colsl.append(jr[has])
        vals.append(np.ones(int(has.sum())))
    js = j_all[cols.kind == _SHORT_E]
    rows.append(np.zeros(js.size, dtype=np.int64))
    colsl.append(js)
    vals.append(np.ones(js.size))
    jsr = j_all[cols.kind == _SHORT_R]
    if jsr.size:
        rows.append(np.full(jsr.size, reserve_row, dtype=np.int64))
        colsl.append(jsr)
        vals.append(np.ones(jsr.size))

    matrix = sparse.csc_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(colsl))), shape=(n_rows, cols.kind.size)
    )
    matrix.sum_duplicates()
    matrix.sort_indices()
    row_lo = np.full(n_rows, -np.inf)
    row_hi = np.full(n_rows, np.inf)
    row_lo[0] = row_hi[0] = problem.energy_requirement_kw / 1000.0
    row_lo[iface0 : iface0 + k_if] = problem.injection_min_kw / 1000.0
    row_hi[iface0 : iface0 + k_if] = problem.injection_max_kw / 1000.0
    if reserve_active:
        row_lo[reserve_row] = problem.reserve_requirement_kw / 1000.0
        row_hi[deliv0 : deliv0 + k_if] = problem.injection_max_kw / 1000.0
    row_hi[cap0:] = capacity[cap_rows_res] / 1000.0
    return _Layout(n_rows, iface0, reserve_row, deliv0, cap_row), matrix, row_lo, row_hi


def _raise_for_status(sol: LpSolution) -> None:
    if sol.status == "optimal":
        return
    if sol.status == "infeasible":
        raise ClearingInfeasible(
            "no dispatch meets the requirements within the interface limits and offers",
            field="energy_requirement_kw",
        )
    if sol.status == "time_limit":
        raise ClearingTimeLimit("HiGHS stopped at its time limit", field="time_limit_s")
    raise ClearingInfeasible(f"HiGHS did not solve the clearing LP ({sol.status})", field="energy")


def _prices(
    sol: LpSolution, layout: _Layout, k_if: int, reserve_active: bool
) -> tuple[FloatArray, FloatArray, FloatArray, float, float]:
    lam = float(sol.row_dual[0])
    y = sol.row_dual[layout.iface0 : layout.iface0 + k_if]
    if reserve_active:
        z = sol.row_dual[layout.deliv0 : layout.deliv0 + k_if]
        rho = float(sol.row_dual[layout.reserve_row])
    else:
        z = np.zeros(k_if)
        rho = 0.0
    congestion = y + z
    return lam + congestion, congestion, rho + z, lam, rho


def _check_windows(
    cols: _Columns,
    sol: LpSolution,
    pi_iface: FloatArray,
    single: IntArray,
    windowable: BoolArray,
    energy: CurveSet,
    owner: IntArray,
    window_lo: IntArray,
    window_hi: IntArray,
    width: IntArray,
    lengths: IntArray,
    tol: float,
) -> tuple[bool, IntArray, IntArray, IntArray]:
    n = windowable.size
    pi_res = np.where(single >= 0, pi_iface[np.maximum(single, 0)], 0.0)
    price = energy.price_cad_per_mwh
    bad = np.zeros(n, dtype=bool)
    pre = cols.kind == _PREFIX
    r = cols.resource[pre]
    bad_pre = (sol.x[pre] < cols.upper[pre] * (1 - 1e-9) - 1e-9) | (price[cols.ref[pre]] >= pi_res[r] - tol)
    bad[r[bad_pre]] = True
    suf = cols.kind == _SUFFIX
    r = cols.resource[suf]
    bad_suf = (sol.x[suf] > 1e-9) | (price[cols.ref[suf]] <= pi_res[r] + tol)
    bad[r[bad_suf]] = True
    if not bad.any():
        return True, window_lo, window_hi, width
    lo_cnt, hi_cnt = _crossings(price, owner, n, pi_res, tol)
    width = np.where(bad, width * 2, width)
    new_lo = np.where(bad, np.minimum(window_lo, np.maximum(lo_cnt - width, 0)), window_lo)
    new_hi = np.where(bad, np.maximum(window_hi, np.minimum(hi_cnt + width, lengths)), window_hi)
    return False, new_lo, new_hi, width


def _break_ties(
    solver: LpSolver, sol: LpSolution, cols: _Columns, row_lo: FloatArray, row_hi: FloatArray, tol: float
) -> FloatArray:
    """Among least-cost dispatches, return the one minimising the rank-weighted dispatch (module docstring)."""
    rc = sol.col_dual
    col_lo = np.zeros(cols.upper.size)
    col_hi = cols.upper.copy()
    col_hi[rc > tol] = 0.0
    col_lo[rc < -tol] = col_hi[rc < -tol]
    if not np.any(col_hi - col_lo > 1e-12):
        return sol.x
    dual = sol.row_dual
    new_lo = row_lo.copy()
    new_hi = row_hi.copy()
    at_lo = (dual > tol) & np.isfinite(row_lo)
    at_hi = (dual < -tol) & np.isfinite(row_hi)
    new_hi[at_lo] = row_lo[at_lo]
    new_lo[at_hi] = row_hi[at_hi]
    solver.change(cost=cols.rank, col_lower=col_lo, col_upper=col_hi, row_lower=new_lo, row_upper=new_hi)
    second = solver.solve()
    if second.status != "optimal":
        return sol.x
    return second.x


def assemble_result(
    problem: ClearingProblem,
    energy: CurveSet,
    reserve: CurveSet,
    energy_segment_kw: FloatArray,
    reserve_segment_kw: FloatArray,
    prices: tuple[FloatArray, FloatArray, FloatArray, float, float],
    energy_shortage_kw: float,
    reserve_shortage_kw: float,
    method: str,
    stats: dict[str, float],
) -> ClearingResult:
    """Build a ``ClearingResult`` from segment dispatch and prices (shared by every clearing method)."""
    n = problem.n_resources
    sigma = np.where(problem.bids(), -1.0, 1.0)
    p_kw = sigma * sum_by(energy.owner(), energy_segment_kw, n)
    reserve_kw = sum_by(reserve.owner(), reserve_segment_kw, n)
    df = problem.distribution_factors
    injection = sum_by(df.interface, df.factor * p_kw[df.resource], problem.n_interfaces)
    energy_price, congestion, reserve_price, lam, rho = prices
    resource_price = sum_by(df.resource, df.factor * energy_price[df.interface], n)
    seg_sigma = sigma[energy.owner()]
    cost = float(np.sum(seg_sigma * energy.price_cad_per_mwh * energy_segment_kw) / 1000.0)
    cost += float(np.sum(reserve.price_cad_per_mwh * reserve_segment_kw) / 1000.0)
    if problem.shortage_price_cad_per_mwh is not None:
        cost += problem.shortage_price_cad_per_mwh * (energy_shortage_kw + reserve_shortage_kw) / 1000.0
    return ClearingResult(
        p_kw=p_kw,
        reserve_kw=reserve_kw,
        energy_segment_kw=energy_segment_kw,
        reserve_segment_kw=reserve_segment_kw,
        interface_injection_kw=injection,
        energy_price_cad_per_mwh=energy_price,
        congestion_cad_per_mwh=congestion,
        reserve_price_cad_per_mwh=reserve_price,
        system_energy_price_cad_per_mwh=lam,
        system_reserve_price_cad_per_mwh=rho,
        resource_energy_price_cad_per_mwh=resource_price,
        cost_cad_per_h=cost,
        energy_shortage_kw=energy_shortage_kw,
        reserve_shortage_kw=reserve_shortage_kw,
        method=method,
        stats=stats,
    )
