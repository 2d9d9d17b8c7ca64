"""The straightforward baseline: one HiGHS LP with every resource segment as its own variable.

Given a problem whose resources are individual DERs (plus any aggregations the TSO sees as one resource),
this builds the textbook LP directly, with no merging, no windows and no tie-breaking stage. It is the
benchmark's baseline and an independently built cross-check of ``clear_lp`` in the tests: on the same market
the two must reach the same least cost, and the same prices where the duals are unique.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import sparse

from gridbridge.engines.clearing._highs import LpSolver
from gridbridge.engines.clearing.lp import assemble_result
from gridbridge.engines.clearing.problem import (
    ClearingInfeasible,
    ClearingProblem,
    ClearingResult,
    ClearingTimeLimit,
)


def clear_per_der_lp(
    problem: ClearingProblem, *, time_limit_s: float | None = None, solver: str = "simplex", presolve: str = "off"
) -> ClearingResult:
    """Solve the clearing LP with one column per segment of every resource; raise on infeasibility/time limit.

    ``solver`` and ``presolve`` are passed to HiGHS. Presolve is off by default because it is the faster
    setting for this LP (measured: 0.08 s against 3.1 s at 15,000 columns, 6.9 s against more than 100 s at
    150,000), which keeps the benchmark's ratio conservative.
    """
    t0 = time.perf_counter()
    n = problem.n_resources
    k_if = problem.n_interfaces
    e = problem.energy
    r = problem.reserve_curves()
    cap = problem.capacity()
    sign = np.where(problem.bids(), -1.0, 1.0)
    df = problem.distribution_factors
    reserve_rows = bool(r.n_segments > 0 or problem.reserve_requirement_kw > 0)
    has_reserve = np.bincount(r.owner(), weights=r.quantity_kw, minlength=n) > 0
    # Capacity: a row for resources that offer reserve; a column bound otherwise.
    cap_res = np.flatnonzero(has_reserve & np.isfinite(cap))
    n_e, n_r = e.n_segments, r.n_segments
    short = problem.shortage_price_cad_per_mwh is not None
    n_short = (1 + int(problem.reserve_requirement_kw > 0)) if short else 0
    n_cols = n_e + n_r + n_short

    # Row numbering: 0 balance | 1..K interfaces | reserve | K deliverability | capacity rows.
    r_res = 1 + k_if
    r_del = r_res + 1
    r_cap = r_del + k_if if reserve_rows else 1 + k_if
    n_rows = r_cap + cap_res.size
    cap_row_of = np.full(n, -1, dtype=np.int64)
    cap_row_of[cap_res] = r_cap + np.arange(cap_res.size)

    e_owner = e.owner()
    r_owner = r.owner()
    triplets_r: list[np.ndarray] = []
    triplets_c: list[np.ndarray] = []
    triplets_v: list[np.ndarray] = []

    def add(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        triplets_r.append(rows)
        triplets_c.append(cols)
        triplets_v.append(vals)

    e_cols = np.arange(n_e)
    add(np.zeros(n_e, dtype=np.int64), e_cols, sign[e_owner])
    # One pass per distribution-factor entry (j-th factor of each resource).
    df_rank = np.zeros(df.resource.size, dtype=np.int64)
    order = np.argsort(df.resource, kind="stable")
    counts = np.bincount(df.resource, minlength=n)
    first = np.cumsum(counts) - counts
    df_rank[order] = np.arange(df.resource.size) - np.repeat(first, counts)
    for j in range(int(counts.max(initial=0))):
        sel = df_rank == j
        k_of = np.full(n, -1, dtype=np.int64)
        f_of = np.zeros(n)
        k_of[df.resource[sel]] = df.interface[sel]
        f_of[df.resource[sel]] = df.factor[sel]
        seg = k_of[e_owner] >= 0
        add(1 + k_of[e_owner][seg], e_cols[seg], sign[e_owner][seg] * f_of[e_owner][seg])
        if reserve_rows:
            add(r_del + k_of[e_owner][seg], e_cols[seg], sign[e_owner][seg] * f_of[e_owner][seg])
            rseg = k_of[r_owner] >= 0
            add(r_del + k_of[r_owner][rseg], n_e + np.arange(n_r)[rseg], f_of[r_owner][rseg])
    if reserve_rows:
        add(np.full(n_r, r_res, dtype=np.int64), n_e + np.arange(n_r), np.ones(n_r))
    ce = cap_row_of[e_owner]
    add(ce[ce >= 0], e_cols[ce >= 0], np.ones(int((ce >= 0).sum())))
    cr = cap_row_of[r_owner]
    add(cr[cr >= 0], n_e + np.arange(n_r)[cr >= 0], np.ones(int((cr >= 0).sum())))
    if short:
        add(np.array([0]), np.array([n_e + n_r]), np.array([1.0]))
        if n_short == 2:
            add(np.array([r_res]), np.array([n_e + n_r + 1]), np.array([1.0]))

    a = sparse.coo_array(
        (np.concatenate(triplets_v), (np.concatenate(triplets_r), np.concatenate(triplets_c))),
        shape=(n_rows, n_cols),
    ).tocsc()
    a.sort_indices()

    # Column bounds: segment quantities; energy of a resource without reserve also within its capacity,
    # applied as a cap on its cheapest segments first (the LP fills them in price order anyway).
    e_before = e.cum_before_kw()
    e_upper = np.where(has_reserve[e_owner], e.quantity_kw, np.clip(cap[e_owner] - e_before, 0.0, e.quantity_kw))
    upper = (
        np.concatenate(
            [
                e_upper,
                r.quantity_kw,
                [problem.energy_requirement_kw] if short else [],
                [problem.reserve_requirement_kw] if n_short == 2 else [],
            ]
        )
        / 1000.0
    )
    cost = np.concatenate(
        [
            sign[e_owner] * e.price_cad_per_mwh,
            r.price_cad_per_mwh,
            [problem.shortage_price_cad_per_mwh or 0.0] * n_short,
        ]
    )
    row_lo = np.full(n_rows, -np.inf)
    row_hi = np.full(n_rows, np.inf)
    row_lo[0] = row_hi[0] = problem.energy_requirement_kw / 1000.0
    row_lo[1 : 1 + k_if] = problem.injection_min_kw / 1000.0
    row_hi[1 : 1 + k_if] = problem.injection_max_kw / 1000.0
    if reserve_rows:
        row_lo[r_res] = problem.reserve_requirement_kw / 1000.0
        row_hi[r_del : r_del + k_if] = problem.injection_max_kw / 1000.0
    row_hi[r_cap:] = cap[cap_res] / 1000.0

    lp = LpSolver(time_limit_s=time_limit_s, solver=solver, presolve=presolve)
    lp.load(cost, np.zeros(n_cols), upper, a, row_lo, row_hi)
    sol = lp.solve()
    if sol.status == "time_limit":
        raise ClearingTimeLimit(f"the per-DER LP did not finish within {time_limit_s} s", field="time_limit_s")
    if sol.status != "optimal":
        raise ClearingInfeasible(f"the per-DER LP is not solved ({sol.status})", field="energy_requirement_kw")
    lam = float(sol.row_dual[0])
    y = sol.row_dual[1 : 1 + k_if]
    z = sol.row_dual[r_del : r_del + k_if] if reserve_rows else np.zeros(k_if)
    rho = float(sol.row_dual[r_res]) if reserve_rows else 0.0
    x_kw = sol.x * 1000.0
    stats = {
        "columns": float(n_cols),
        "rows": float(n_rows),
        "rounds": 1.0,
        "iterations": float(sol.iterations),
        "seconds": time.perf_counter() - t0,
    }
    # Shifting by sign keeps the baseline's objective identical to the LP's (bids enter with -price).
    return assemble_result(
        problem,
        e,
        r,
        np.clip(x_kw[:n_e], 0.0, e.quantity_kw),
        np.clip(x_kw[n_e : n_e + n_r], 0.0, r.quantity_kw),
        (lam + y + z, y + z, rho + z, lam, rho),
        float(x_kw[n_e + n_r]) if short else 0.0,
        float(x_kw[n_e + n_r + 1]) if n_short == 2 else 0.0,
        "per_der_lp",
        stats,
    )
