"""Interface-level clearing as an LP solved with HiGHS.

Formulation (docs/coordination-engines.md has the full statement). Variables, in MW so that duals come out
in CAD/MWh: one per energy segment ``x_s`` in ``[0, Q_s]``, one per reserve segment ``u_s`` in ``[0, U_s]``,
and, with a shortage price, one energy and one reserve shortage variable. Rows:

* balance: ``sum_r sigma_r * sum_{s in r} x_s + shortage = D``  (sigma = +1 offers, -1 bids)
* per interface ``k``: ``min_k <= sum_r df_rk * sigma_r * sum_{s in r} x_s <= max_k``
* reserve: ``sum_s u_s + reserve_shortage >= D_reserve``
* per interface ``k`` (deliverability, when reserve is cleared): ``sum_r df_rk (sigma_r x_r + u_r) <= max_k``
* per resource offering reserve with a capacity: ``x_r + u_r <= capacity_r``

Objective: ``min sum sigma_r price_s x_s + sum reserve_price_s u_s + shortage_price * shortages`` (a bid's
consumption counts as value, hence ``-price``).

Prices from duals: ``lambda`` (balance), ``y_k`` (interface), ``z_k`` (deliverability), ``rho`` (reserve).
Energy price at ``k``: ``lambda + y_k + z_k``; congestion component ``y_k + z_k``; reserve price at
``k``: ``rho + z_k``. HiGHS's row duals are the derivative of the optimal cost with respect to the row
bound, so ``lambda`` is the system marginal energy price and ``y_k <= 0`` when export is congested.

Ties: among all least-cost dispatches, the one minimising ``sum_j rank_j * x_j`` is returned, where ``rank``
is each segment's place in the stable resource order (resource index, then segment). Equal prices are thus
filled in resource order. The second stage keeps the first stage's dual solution and fixes every column with
a non-zero reduced cost at its bound and every row with a non-zero dual at its active bound (complementary
slackness), so every dispatch it may choose is least-cost; prices equal within ``tie_tolerance`` are ties.

Long curves (exact merges of many DERs) are solved through a window when their resource sits at one
interface, offers rather than bids, and has no capacity row coupling its energy and reserve (true of a pool
of DERs whose energy and reserve offers together fit in their capacity). Energy and reserve curves are
windowed alike: segments well below the resource's price (energy or reserve price at its interface) are one
*prefix* column, those well above one *suffix* column, and only the segments near the price are individual
columns. The window is accepted when the prefix is fully dispatched and priced below the price by more than
the tie tolerance, and the suffix is not dispatched and priced above it; otherwise it widens and the LP is
solved again. Accepted, the restricted LP's primal and dual solutions satisfy the optimality conditions of
the full LP, so the result is exact (and so is the tie-break, which only moves columns priced at the margin).
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

# Column kinds: energy segment / prefix / suffix, reserve segment / prefix / suffix, shortages.
_E_SEG, _E_PRE, _E_SUF, _R_SEG, _R_PRE, _R_SUF, _SHORT_E, _SHORT_R = range(8)
_ENERGY_KINDS = (_E_SEG, _E_PRE, _E_SUF)
_MIN_COLUMN_KW = 1e-9
"""Segments smaller than this (rounding left-overs of capping) get no column."""
_RESERVE_KINDS = (_R_SEG, _R_PRE, _R_SUF)


@dataclass(frozen=True)
class _Layout:
    """Where the rows of one LP build are."""

    n_rows: int
    iface0: int
    reserve_row: int
    deliv0: int


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


def _merit_price(price: FloatArray, qty: FloatArray, need_kw: float) -> float:
    """Price of the offer meeting ``need_kw`` in merit order, ignoring every limit (a first guess)."""
    if price.size == 0:
        return 0.0
    order = np.argsort(price, kind="stable")
    cum = np.cumsum(qty[order])
    i = int(np.searchsorted(cum, need_kw, side="left"))
    return float(price[order][min(i, price.size - 1)])


class _Family:
    """One product's curves in the LP (energy or reserve), with windows on the long single-interface curves."""

    def __init__(
        self,
        curves: CurveSet,
        windowable: BoolArray,
        first_guess_cad_per_mwh: float,
        kinds: tuple[int, int, int],
        width: int,
        tol: float,
    ) -> None:
        self.curves = curves
        self.owner = curves.owner()
        self.position = curves.position()
        self.lengths = curves.lengths()
        self.kinds = kinds
        self.tol = tol
        n = curves.n_curves
        self.windowable = windowable
        self.width = np.full(n, width, dtype=np.int64)
        self.lo = np.zeros(n, dtype=np.int64)
        self.hi = self.lengths.copy()
        if np.any(windowable):
            lo_cnt, hi_cnt = self._crossings(np.full(n, first_guess_cad_per_mwh))
            self.lo = np.where(windowable, np.maximum(lo_cnt - self.width, 0), 0)
            self.hi = np.where(windowable, np.minimum(hi_cnt + self.width, self.lengths), self.lengths)

    def _crossings(self, pi_res: FloatArray) -> tuple[IntArray, IntArray]:
        """Per curve: segments priced below ``pi - tol``, and segments priced at or below ``pi + tol``."""
        price = self.curves.price_cad_per_mwh
        n = self.curves.n_curves
        lo = np.bincount(self.owner, weights=price < pi_res[self.owner] - self.tol, minlength=n)
        hi = np.bincount(self.owner, weights=price <= pi_res[self.owner] + self.tol, minlength=n)
        return lo.astype(np.int64), hi.astype(np.int64)

    def give_up_windows(self) -> None:
        """Use every segment as its own column from now on."""
        self.lo = np.zeros_like(self.lo)
        self.hi = self.lengths.copy()
        self.windowable = np.zeros_like(self.windowable)

    def columns(self, sign: FloatArray, rank_offset: int) -> _Columns:
        """Segment columns inside the windows, one prefix and one suffix column per windowed curve."""
        n = self.curves.n_curves
        price = self.curves.price_cad_per_mwh
        qty = self.curves.quantity_kw
        own, pos = self.owner, self.position
        seg = np.flatnonzero((pos >= self.lo[own]) & (pos < self.hi[own]) & (qty > _MIN_COLUMN_KW))
        pre = self.windowable[own] & (pos < self.lo[own])
        suf = self.windowable[own] & (pos >= self.hi[own])
        pre_q = np.bincount(own, weights=np.where(pre, qty, 0.0), minlength=n)
        pre_c = np.bincount(own, weights=np.where(pre, qty * price, 0.0), minlength=n)
        suf_q = np.bincount(own, weights=np.where(suf, qty, 0.0), minlength=n)
        suf_c = np.bincount(own, weights=np.where(suf, qty * price, 0.0), minlength=n)
        pre_r = np.flatnonzero(pre_q > 0)
        suf_r = np.flatnonzero(suf_q > 0)
        ref_pre = self.curves.start[pre_r] + self.lo[pre_r] - 1
        ref_suf = self.curves.start[suf_r] + self.hi[suf_r]
        k_seg, k_pre, k_suf = self.kinds
        return _Columns(
            kind=np.concatenate(
                (np.full(seg.size, k_seg), np.full(pre_r.size, k_pre), np.full(suf_r.size, k_suf))
            ).astype(np.int64),
            resource=np.concatenate((own[seg], pre_r, suf_r)).astype(np.int64),
            ref=np.concatenate((seg, ref_pre, ref_suf)).astype(np.int64),
            cost=np.concatenate(
                (sign[own[seg]] * price[seg], pre_c[pre_r] / pre_q[pre_r], suf_c[suf_r] / suf_q[suf_r])
            ),
            upper=np.concatenate((qty[seg], pre_q[pre_r], suf_q[suf_r])).astype(np.float64) / 1000.0,
            rank=np.concatenate((seg, ref_pre, ref_suf)).astype(np.float64) + rank_offset,
        )

    def check(self, cols: _Columns, x: FloatArray, pi_res: FloatArray) -> bool:
        """Accept the windows (True) or widen those that fail (False).

        A window is accepted when its prefix is fully dispatched and its dearest segment is priced below the
        resource's price by more than the tie tolerance, and its suffix is not dispatched and its cheapest
        segment is priced above by more than the tolerance: then every excluded segment has the reduced cost
        sign that its (fixed) value needs in the full LP.
        """
        if not np.any(self.windowable):
            return True
        price = self.curves.price_cad_per_mwh
        bad = np.zeros(self.curves.n_curves, dtype=bool)
        _, k_pre, k_suf = self.kinds
        pre = cols.kind == k_pre
        r = cols.resource[pre]
        bad_pre = (x[pre] < cols.upper[pre] * (1 - 1e-9) - 1e-9) | (price[cols.ref[pre]] >= pi_res[r] - self.tol)
        bad[r[bad_pre]] = True
        suf = cols.kind == k_suf
        r = cols.resource[suf]
        bad_suf = (x[suf] > 1e-9) | (price[cols.ref[suf]] <= pi_res[r] + self.tol)
        bad[r[bad_suf]] = True
        if not bad.any():
            return True
        lo_cnt, hi_cnt = self._crossings(pi_res)
        self.width = np.where(bad, self.width * 2, self.width)
        self.lo = np.where(bad, np.minimum(self.lo, np.maximum(lo_cnt - self.width, 0)), self.lo)
        self.hi = np.where(bad, np.maximum(self.hi, np.minimum(hi_cnt + self.width, self.lengths)), self.hi)
        return False

    def segment_kw(self, cols: _Columns, x: FloatArray) -> FloatArray:
        """Dispatch of every segment (kW): window columns as solved, prefixes full, suffixes zero."""
        qty = self.curves.quantity_kw
        out = np.zeros(self.curves.n_segments)
        seg = cols.kind == self.kinds[0]
        out[cols.ref[seg]] = x[seg] * 1000.0
        in_prefix = self.windowable[self.owner] & (self.position < self.lo[self.owner])
        out[in_prefix] = qty[in_prefix]
        clipped: FloatArray = np.clip(out, 0.0, qty)
        return clipped


@dataclass(frozen=True)
class _Columns:
    kind: IntArray
    resource: IntArray
    ref: IntArray
    """Flat segment index in its curves (segment; prefix: its last segment; suffix: its first segment)."""
    cost: FloatArray
    upper: FloatArray
    """MW."""
    rank: FloatArray

    @staticmethod
    def join(parts: list[_Columns]) -> _Columns:
        return _Columns(
            kind=np.concatenate([p.kind for p in parts]),
            resource=np.concatenate([p.resource for p in parts]),
            ref=np.concatenate([p.ref for p in parts]),
            cost=np.concatenate([p.cost for p in parts]),
            upper=np.concatenate([p.upper for p in parts]),
            rank=np.concatenate([p.rank for p in parts]),
        )


def _shortage_columns(problem: ClearingProblem, top_rank: float) -> _Columns:
    price = problem.shortage_price_cad_per_mwh
    if price is None:
        none = np.zeros(0, dtype=np.int64)
        return _Columns(none, none, none, np.zeros(0), np.zeros(0), np.zeros(0))
    kinds = [_SHORT_E]
    upper = [max(problem.energy_requirement_kw, 0.0)]
    if problem.reserve_requirement_kw > 0:
        kinds.append(_SHORT_R)
        upper.append(problem.reserve_requirement_kw)
    m = len(kinds)
    return _Columns(
        kind=np.array(kinds, dtype=np.int64),
        resource=np.full(m, -1, dtype=np.int64),
        ref=np.full(m, -1, dtype=np.int64),
        cost=np.full(m, price),
        upper=np.array(upper) / 1000.0,
        rank=top_rank + np.arange(m, dtype=np.float64),
    )


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
    cap_row = has_reserve & np.isfinite(capacity) & ~bid
    energy = problem.energy
    cap_energy = np.where(cap_row, np.inf, capacity)
    if np.any(np.isfinite(cap_energy)):
        energy = cap_curves(energy, cap_energy)
    df_start, df_k, df_f = _df_csr(problem)
    single = problem.distribution_factors.single_interface(n)
    # A curve can be windowed when its resource sits at one interface, offers (no bid) and has no capacity
    # row coupling its energy and reserve.
    simple = (single >= 0) & ~bid & ~cap_row
    offers = ~bid[energy.owner()]
    e_fam = _Family(
        energy,
        simple & (energy.lengths() > window_min_length),
        _merit_price(energy.price_cad_per_mwh[offers], energy.quantity_kw[offers], problem.energy_requirement_kw),
        (_E_SEG, _E_PRE, _E_SUF),
        window_segments,
        tie_tolerance,
    )
    r_fam = _Family(
        reserve,
        simple & (reserve.lengths() > window_min_length),
        _merit_price(reserve.price_cad_per_mwh, reserve.quantity_kw, problem.reserve_requirement_kw),
        (_R_SEG, _R_PRE, _R_SUF),
        window_segments,
        tie_tolerance,
    )
    reserve_active = bool(has_reserve.any() or problem.reserve_requirement_kw > 0)
    cap_rows_res = np.flatnonzero(cap_row)
    top_rank = float(energy.n_segments + reserve.n_segments + 1)
    rounds = 0
    while True:
        rounds += 1
        cols = _Columns.join(
            [
                e_fam.columns(sigma, 1),
                r_fam.columns(np.ones(n), energy.n_segments + 1),
                _shortage_columns(problem, top_rank),
            ]
        )
        layout, matrix, row_lo, row_hi = _matrix(
            problem, cols, sigma, df_start, df_k, df_f, reserve_active, cap_rows_res, capacity
        )
        solver = LpSolver(time_limit_s=time_limit_s)
        solver.load(cols.cost, np.zeros(cols.upper.size), cols.upper, matrix, row_lo, row_hi)
        sol = solver.solve()
        _raise_for_status(sol)
        prices = _prices(sol, layout, k_if, reserve_active)
        at = np.maximum(single, 0)
        e_ok = e_fam.check(cols, sol.x, np.where(single >= 0, prices[0][at], 0.0))
        r_ok = r_fam.check(cols, sol.x, np.where(single >= 0, prices[2][at], 0.0))
        if e_ok and r_ok:
            break
        if rounds >= max_window_rounds:
            e_fam.give_up_windows()
            r_fam.give_up_windows()

    x = sol.x
    if tie_break and cols.cost.size:
        x = _break_ties(solver, sol, cols, row_lo, row_hi, tie_tolerance)

    energy_segment_kw = e_fam.segment_kw(cols, x)
    reserve_segment_kw = r_fam.segment_kw(cols, x)
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

    def add(r: IntArray, c: IntArray, v: FloatArray) -> None:
        rows.append(r)
        colsl.append(c)
        vals.append(v)

    j_all = np.arange(cols.kind.size, dtype=np.int64)
    je = j_all[np.isin(cols.kind, _ENERGY_KINDS)]
    sg = sigma[cols.resource[je]]
    add(np.zeros(je.size, dtype=np.int64), je, sg)
    c, k, f = _expand_df(cols.resource[je], df_start, df_k, df_f)
    add(iface0 + k, je[c], sg[c] * f)
    if reserve_active:
        add(deliv0 + k, je[c], sg[c] * f)
    ce = cap_row[cols.resource[je]]
    add(ce[ce >= 0], je[ce >= 0], np.ones(int((ce >= 0).sum())))

    jr = j_all[np.isin(cols.kind, _RESERVE_KINDS)]
    if jr.size:
        add(np.full(jr.size, reserve_row, dtype=np.int64), jr, np.ones(jr.size))
        c, k, f = _expand_df(cols.resource[jr], df_start, df_k, df_f)
        add(deliv0 + k, jr[c], f)
        cr = cap_row[cols.resource[jr]]
        add(cr[cr >= 0], jr[cr >= 0], np.ones(int((cr >= 0).sum())))
    js = j_all[cols.kind == _SHORT_E]
    add(np.zeros(js.size, dtype=np.int64), js, np.ones(js.size))
    jsr = j_all[cols.kind == _SHORT_R]
    if jsr.size:
        add(np.full(jsr.size, reserve_row, dtype=np.int64), jsr, np.ones(jsr.size))

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
    return _Layout(n_rows, iface0, reserve_row, deliv0), matrix, row_lo, row_hi


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
