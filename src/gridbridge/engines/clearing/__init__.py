"""Market clearing at T-D-interface level: offer curves, DSO aggregation, LP and merit-order clearing.

Public API:

* ``CurveSet``, ``validate_curves``, ``cap_curves``, ``merit_order``, ``curveset_from_offers`` (curves)
* ``aggregate_curves``, ``Aggregated`` (DSO and aggregator merges, price bands)
* ``ClearingProblem``, ``ClearingResult``, ``DistributionFactors``, ``interface_injection_bounds``
* ``clear`` (chooses the method), ``clear_lp``, ``clear_merit_order``, ``is_nested``
* ``clear_per_der_lp`` (the straightforward one-LP baseline)
* ``ClearingInfeasible``, ``ClearingTimeLimit``
"""

from __future__ import annotations

from gridbridge.engines.clearing.aggregate import Aggregated, aggregate_curves
from gridbridge.engines.clearing.baseline import clear_per_der_lp
from gridbridge.engines.clearing.curves import (
    CurveSet,
    cap_curves,
    curveset_from_offers,
    merit_order,
    validate_curves,
)
from gridbridge.engines.clearing.lp import clear_lp
from gridbridge.engines.clearing.merit import clear_merit_order, is_nested
from gridbridge.engines.clearing.problem import (
    ClearingInfeasible,
    ClearingProblem,
    ClearingResult,
    ClearingTimeLimit,
    DistributionFactors,
    interface_injection_bounds,
)


def clear(problem: ClearingProblem, *, time_limit_s: float | None = None) -> ClearingResult:
    """Clear one interval: by merit order when the problem is nested (``is_nested``), else by LP.

    Both give the least cost and the same tie rule; the merit order is orders of magnitude faster.
    """
    if is_nested(problem):
        return clear_merit_order(problem)
    return clear_lp(problem, time_limit_s=time_limit_s)


__all__ = [
    "Aggregated",
    "ClearingInfeasible",
    "ClearingProblem",
    "ClearingResult",
    "ClearingTimeLimit",
    "CurveSet",
    "DistributionFactors",
    "aggregate_curves",
    "cap_curves",
    "clear",
    "clear_lp",
    "clear_merit_order",
    "clear_per_der_lp",
    "curveset_from_offers",
    "interface_injection_bounds",
    "is_nested",
    "merit_order",
    "validate_curves",
]
