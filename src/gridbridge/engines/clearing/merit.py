"""Merit-order clearing for the nested case: single-interface energy offers, interface limits, one requirement.

When every resource sits wholly at one interface, offers only energy, and there are no bids, the feasible
dispatches are nested: each segment is bounded by its quantity, each interface by its injection bounds,
and the total by the requirement. The least-cost dispatch is then found greedily (docs/coordination-engines.md
gives the argument):

1. At each interface with a positive minimum injection, the cheapest segments there cover the minimum.
2. Each interface's remaining segments, in local merit order, are cut at its remaining headroom (the segments
   beyond it would never be dispatched).
3. The remaining requirement is met from all surviving segments in global merit order.

Merit order is price, then the stable resource order (flat segment index): the same tie rule as the LP's
second stage, so the two return the same dispatch, not only the same cost.

Prices are a valid dual solution of the LP: the system price is the price of the last segment dispatched in
step 3 (the marginal offer); an interface at its maximum gets the lower of that and its own last dispatched
price, one held at its minimum the higher.
"""

from __future__ import annotations

import time

import numpy as np

from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.clearing.curves import cap_curves, cum_before_in_groups, merit_order
from gridbridge.engines.clearing.lp import assemble_result
from gridbridge.engines.clearing.problem import NOT_NESTED, ClearingInfeasible, ClearingProblem, ClearingResult

_TOL_KW = 1e-9


def is_nested(problem: ClearingProblem) -> bool:
    """True when ``clear_merit_order`` applies: single-interface energy offers only, no reserve."""
    n = problem.n_resources
    single = problem.distribution_factors.single_interface(n)
    has_reserve = problem.reserve is not None and bool(np.any(problem.reserve.quantity_kw > 0))
    return bool(
        np.all(single >= 0) and not problem.bids().any() and not has_reserve and problem.reserve_requirement_kw == 0
    )


def clear_merit_order(problem: ClearingProblem) -> ClearingResult:
    """Clear a nested problem (see ``is_nested``) by merit order; same least cost as ``clear_lp``.

    Raises ``ValidationFailed`` (``clearing.not_nested``) for other problems, ``ClearingInfeasible`` when
    the requirement or an interface minimum cannot be met (and no shortage price is set).
    """
    t0 = time.perf_counter()
    if not is_nested(problem):
        raise ValidationFailed(
            "the merit-order path needs single-interface energy offers, no bids and no reserve",
            field="problem",
            code=NOT_NESTED,
        )
    n = problem.n_resources
    k_if = problem.n_interfaces
    iface_of = problem.distribution_factors.single_interface(n)
    energy = cap_curves(problem.energy, problem.capacity())
    owner = energy.owner()
    seg_if = iface_of[owner]
    price = energy.price_cad_per_mwh
    qty = energy.quantity_kw
    lo = problem.injection_min_kw
    hi = problem.injection_max_kw

    # Steps 1 and 2: per interface, in local merit order.
    local = merit_order(seg_if, price)
    q_loc = qty[local]
    if_loc = seg_if[local]
    if_start = np.zeros(k_if + 1, dtype=np.int64)
    np.cumsum(np.bincount(if_loc, minlength=k_if), out=if_start[1:])
    before = cum_before_in_groups(q_loc, if_start)
    lo_pos = np.maximum(lo, 0.0)
    forced_loc = np.clip(lo_pos[if_loc] - before, 0.0, q_loc)
    supply = np.bincount(if_loc, weights=q_loc, minlength=k_if)
    short_if = np.flatnonzero(supply + _TOL_KW < lo_pos)
    if short_if.size:
        raise ClearingInfeasible(
            f"interface {int(short_if[0])}: offers cannot cover its minimum injection", field="injection_min_kw"
        )
    headroom = hi - lo_pos
    if np.any(headroom < -_TOL_KW):
        raise ClearingInfeasible("an interface's maximum injection is below zero", field="injection_max_kw")
    rest = q_loc - forced_loc
    rest_before = cum_before_in_groups(rest, if_start)
    avail_loc = np.clip(headroom[if_loc] - rest_before, 0.0, rest)

    forced = np.zeros_like(qty)
    forced[local] = forced_loc
    avail = np.zeros_like(qty)
    avail[local] = avail_loc

    # Step 3: global merit order.
    need = problem.energy_requirement_kw - float(forced.sum())
    if need < -1e-6:
        raise ClearingInfeasible(
            "the interfaces' minimum injections exceed the energy requirement", field="energy_requirement_kw"
        )
    glob = merit_order(np.zeros(price.size, dtype=np.int64), price)
    a_glob = avail[glob]
    cum_before = np.cumsum(a_glob) - a_glob
    take_glob = np.clip(need - cum_before, 0.0, a_glob)
    take = np.zeros_like(qty)
    take[glob] = take_glob
    dispatched = forced + take
    shortage = max(need - float(take.sum()), 0.0)
    if shortage > 1e-6 and problem.shortage_price_cad_per_mwh is None:
        raise ClearingInfeasible(
            f"offers within interface limits fall {shortage:.3f} kW short of the requirement",
            field="energy_requirement_kw",
        )
    shortage = shortage if shortage > 1e-6 else 0.0

    # Prices.
    taken = np.flatnonzero(take_glob > _TOL_KW)
    if shortage > 0:
        lam = float(problem.shortage_price_cad_per_mwh or 0.0)
    elif taken.size:
        lam = float(price[glob[taken[-1]]])
    else:
        lam = float("nan")
    on = dispatched > _TOL_KW
    last_price = np.full(k_if, np.nan)
    if np.any(on):
        on_loc = on[local]
        idx = np.flatnonzero(on_loc)
        last = np.full(k_if, -1, dtype=np.int64)
        last[if_loc[idx]] = idx  # increasing idx: the last write per interface is its most expensive dispatch
        has = last >= 0
        last_price[has] = price[local[last[has]]]
    injection = np.bincount(seg_if, weights=dispatched, minlength=k_if)
    at_hi = injection >= hi - 1e-6
    at_lo = (lo > 0) & (injection <= lo + 1e-6)
    energy_price = np.full(k_if, lam)
    if np.isfinite(lam):
        energy_price = np.where(at_hi & np.isfinite(last_price), np.minimum(lam, last_price), energy_price)
        energy_price = np.where(at_lo & np.isfinite(last_price), np.maximum(lam, last_price), energy_price)
    congestion = energy_price - lam
    stats = {"columns": float(price.size), "rows": 0.0, "rounds": 1.0, "seconds": time.perf_counter() - t0}
    return assemble_result(
        problem,
        energy,
        problem.reserve_curves(),
        dispatched,
        np.zeros(problem.reserve_curves().n_segments),
        (energy_price, congestion, np.zeros(k_if), lam, 0.0),
        shortage,
        0.0,
        "merit_order",
        stats,
    )
