"""The clearing problem at T-D-interface level, and its result.

Resources are whatever the TSO clears: a DER modelled at its T-D interface, an aggregation (single- or
multi-interface, through distribution factors), a DSO's virtual resource at an interface, or an exact merge
of several single-interface energy-only resources. Each has an energy curve (offer or bid), optionally an
operating-reserve offer curve and a capacity shared by energy and reserve.

Sign conventions (DESIGN section 7): power is positive as injection into the grid. An interface's *net
flow* is positive as import from transmission into distribution. ``injection`` at an interface is the sum of
the dispatched resources' injections there (each weighted by its distribution factor), so
``flow = base_net_load - injection``. Limits are non-negative magnitudes; ``interface_injection_bounds``
turns import/export limits and the forecast base flow into the injection bounds the clearing uses.

Units: quantities in kW (as in the domain); prices in CAD/MWh (float64 inside the engines, ``Decimal`` in
the domain); the objective in CAD/h (price times MW).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridbridge.domain.errors import GridbridgeError, ValidationFailed, register_code
from gridbridge.engines.clearing.curves import CurveSet
from gridbridge.engines.clearing.types import BoolArray, FloatArray, IntArray

BAD_PROBLEM = register_code("clearing.bad_problem", 422, "The clearing problem's arrays are inconsistent")
BAD_FACTORS = register_code(
    "clearing.bad_distribution_factors", 422, "Distribution factors must be in (0, 1] and sum to 1 per resource"
)
NOT_NESTED = register_code(
    "clearing.not_nested", 422, "The merit-order fast path needs single-interface, energy-only offers"
)
INFEASIBLE_CODE = register_code(
    "clearing.infeasible", 422, "No dispatch meets the requirements within the interface limits"
)
TIME_LIMIT_CODE = register_code("clearing.time_limit", 504, "The solver stopped at its time limit")


class ClearingInfeasible(GridbridgeError):
    """No dispatch meets the requirements within the limits (and no shortage price was given)."""

    default_code = INFEASIBLE_CODE


class ClearingTimeLimit(GridbridgeError):
    """The LP solver hit its time limit before proving optimality."""

    default_code = TIME_LIMIT_CODE


@dataclass(frozen=True, eq=False)
class DistributionFactors:
    """Sparse map from resources to T-D interfaces: resource ``resource[j]`` puts ``factor[j]`` of its
    dispatch on interface ``interface[j]``. Each resource's factors are in (0, 1] and sum to 1."""

    resource: IntArray
    interface: IntArray
    factor: FloatArray

    def __post_init__(self) -> None:
        for name in ("resource", "interface"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        object.__setattr__(self, "factor", np.asarray(self.factor, dtype=np.float64))
        if not (self.resource.shape == self.interface.shape == self.factor.shape) or self.resource.ndim != 1:
            raise ValidationFailed(
                "resource, interface and factor must be 1-D of one length",
                field="distribution_factors",
                code=BAD_FACTORS,
            )

    @classmethod
    def single(cls, resource_interface: IntArray) -> DistributionFactors:
        """Every resource wholly at one interface: ``resource_interface[r]``."""
        ri = np.asarray(resource_interface, dtype=np.int64)
        return cls(np.arange(ri.size, dtype=np.int64), ri, np.ones(ri.size))

    def check(self, n_resources: int, n_interfaces: int) -> None:
        """Raise ``ValidationFailed`` unless indices are in range and every resource's factors sum to 1."""
        if self.resource.size and (self.resource.min() < 0 or self.resource.max() >= n_resources):
            raise ValidationFailed(
                "a resource index is out of range", field="distribution_factors.resource", code=BAD_FACTORS
            )
        if self.interface.size and (self.interface.min() < 0 or self.interface.max() >= n_interfaces):
            raise ValidationFailed(
                "an interface index is out of range", field="distribution_factors.interface", code=BAD_FACTORS
            )
        if np.any(~(self.factor > 0)) or np.any(self.factor > 1 + 1e-12):
            raise ValidationFailed(
                "every factor must be in (0, 1]", field="distribution_factors.factor", code=BAD_FACTORS
            )
        sums = np.bincount(self.resource, weights=self.factor, minlength=n_resources)
        bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-9)
        if bad.size:
            raise ValidationFailed(
                f"factors of resource {int(bad[0])} sum to {sums[bad[0]]:.12g}, not 1",
                field="distribution_factors.factor",
                code=BAD_FACTORS,
            )

    def single_interface(self, n_resources: int) -> IntArray:
        """The interface of each resource that sits wholly at one interface, -1 for multi-interface ones."""
        count = np.bincount(self.resource, minlength=n_resources)
        out = np.full(n_resources, -1, dtype=np.int64)
        one = count[self.resource] == 1
        out[self.resource[one]] = self.interface[one]
        return out


def interface_injection_bounds(
    base_net_load_kw: FloatArray, import_limit_kw: FloatArray, export_limit_kw: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Return ``(min, max)`` dispatched injection per interface that keeps the net flow within its limits.

    With ``flow = base_net_load - injection`` and ``-export_limit <= flow <= import_limit``:
    ``base - import_limit <= injection <= base + export_limit``. A positive minimum means the base flow is
    already beyond the import limit and dispatch is needed there.
    """
    base = np.asarray(base_net_load_kw, dtype=np.float64)
    imp = np.asarray(import_limit_kw, dtype=np.float64)
    exp = np.asarray(export_limit_kw, dtype=np.float64)
    if np.any(imp < 0) or np.any(exp < 0):
        raise ValidationFailed(
            "interface limits are non-negative magnitudes", field="import_limit_kw", code=BAD_PROBLEM
        )
    return base - imp, base + exp


@dataclass(frozen=True, eq=False)
class ClearingProblem:
    """One interval's clearing: resources with curves, interfaces with limits, requirements.

    ``energy`` has one curve per resource (``is_bid[r]``: a bid, dispatched as consumption). ``reserve``
    (optional) has one offer curve per resource (empty where a resource offers none); bids cannot offer
    reserve. ``capacity_kw[r]`` bounds energy plus reserve of an offering resource (``inf``: none).
    Reserve must be deliverable: at each interface, injection plus reserve stays within the injection max.
    With ``shortage_price_cad_per_mwh`` the requirements may be left partly unmet at that price instead of
    the problem being infeasible (the same price for energy and reserve shortage).
    """

    energy: CurveSet
    distribution_factors: DistributionFactors
    injection_min_kw: FloatArray
    injection_max_kw: FloatArray
    energy_requirement_kw: float
    reserve: CurveSet | None = None
    reserve_requirement_kw: float = 0.0
    capacity_kw: FloatArray | None = None
    is_bid: BoolArray | None = None
    shortage_price_cad_per_mwh: float | None = None

    def __post_init__(self) -> None:
        n = self.energy.n_curves
        k = np.asarray(self.injection_min_kw).size
        object.__setattr__(self, "injection_min_kw", np.asarray(self.injection_min_kw, dtype=np.float64))
        object.__setattr__(self, "injection_max_kw", np.asarray(self.injection_max_kw, dtype=np.float64))
        if self.injection_max_kw.shape != (k,):
            raise ValidationFailed(
                "injection_min_kw and injection_max_kw need one entry per interface",
                field="injection_max_kw",
                code=BAD_PROBLEM,
            )
        if np.any(self.injection_min_kw > self.injection_max_kw):
            bad = int(np.flatnonzero(self.injection_min_kw > self.injection_max_kw)[0])
            raise ValidationFailed(
                f"interface {bad}: injection_min_kw exceeds injection_max_kw",
                field="injection_min_kw",
                code=BAD_PROBLEM,
            )
        self.distribution_factors.check(n, k)
        if self.reserve is not None and self.reserve.n_curves != n:
            raise ValidationFailed(f"reserve needs one curve per resource ({n})", field="reserve", code=BAD_PROBLEM)
        if self.capacity_kw is not None:
            cap = np.asarray(self.capacity_kw, dtype=np.float64)
            if cap.shape != (n,) or np.any(np.isnan(cap)) or np.any(cap < 0):
                raise ValidationFailed(
                    f"capacity_kw needs one value >= 0 per resource ({n})", field="capacity_kw", code=BAD_PROBLEM
                )
            object.__setattr__(self, "capacity_kw", cap)
        if self.is_bid is not None:
            bid = np.asarray(self.is_bid, dtype=bool)
            if bid.shape != (n,):
                raise ValidationFailed(f"is_bid needs one flag per resource ({n})", field="is_bid", code=BAD_PROBLEM)
            object.__setattr__(self, "is_bid", bid)
            if self.reserve is not None and np.any(bid & (self.reserve.lengths() > 0)):
                raise ValidationFailed(
                    "a bid resource cannot offer operating reserve", field="reserve", code=BAD_PROBLEM
                )
        for name in ("energy_requirement_kw", "reserve_requirement_kw"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or (name == "reserve_requirement_kw" and value < 0):
                raise ValidationFailed(f"{name} must be finite (reserve >= 0)", field=name, code=BAD_PROBLEM)
        for curves, name in ((self.energy, "energy"), (self.reserve, "reserve")):
            if curves is not None and (
                np.any(~np.isfinite(curves.price_cad_per_mwh))
                or np.any(~(curves.quantity_kw >= 0))
                or np.any(~np.isfinite(curves.quantity_kw))
            ):
                raise ValidationFailed(
                    f"{name} curves need finite prices and finite quantities >= 0", field=name, code=BAD_PROBLEM
                )

    @property
    def n_resources(self) -> int:
        """Number of resources."""
        return self.energy.n_curves

    @property
    def n_interfaces(self) -> int:
        """Number of T-D interfaces."""
        return int(self.injection_min_kw.size)

    def bids(self) -> BoolArray:
        """Bid flag per resource (all False when no bids)."""
        if self.is_bid is None:
            return np.zeros(self.n_resources, dtype=bool)
        return self.is_bid

    def reserve_curves(self) -> CurveSet:
        """The reserve curves, or empty curves when no resource offers reserve."""
        return self.reserve if self.reserve is not None else CurveSet.empty(self.n_resources)

    def capacity(self) -> FloatArray:
        """Capacity per resource (inf where none is given)."""
        if self.capacity_kw is None:
            return np.full(self.n_resources, np.inf)
        return self.capacity_kw

    def with_energy(self, energy: CurveSet) -> ClearingProblem:
        """The same problem with other energy curves (same number of resources)."""
        return ClearingProblem(
            energy=energy,
            distribution_factors=self.distribution_factors,
            injection_min_kw=self.injection_min_kw,
            injection_max_kw=self.injection_max_kw,
            energy_requirement_kw=self.energy_requirement_kw,
            reserve=self.reserve,
            reserve_requirement_kw=self.reserve_requirement_kw,
            capacity_kw=self.capacity_kw,
            is_bid=self.is_bid,
            shortage_price_cad_per_mwh=self.shortage_price_cad_per_mwh,
        )


@dataclass(frozen=True, eq=False)
class ClearingResult:
    """Dispatch and prices of one interval.

    ``p_kw`` is signed injection per resource (a bid's consumption is negative). Prices per interface are
    the duals: ``energy_price = system_energy_price + congestion``, where the congestion component comes
    from the interface's limit rows (see docs/coordination-engines.md).
    """

    p_kw: FloatArray
    reserve_kw: FloatArray
    energy_segment_kw: FloatArray
    """Dispatched quantity of every energy segment (magnitude, kW)."""
    reserve_segment_kw: FloatArray
    interface_injection_kw: FloatArray
    energy_price_cad_per_mwh: FloatArray
    """Per interface: the marginal cost of one more MW of injection requirement met there."""
    congestion_cad_per_mwh: FloatArray
    reserve_price_cad_per_mwh: FloatArray
    system_energy_price_cad_per_mwh: float
    system_reserve_price_cad_per_mwh: float
    resource_energy_price_cad_per_mwh: FloatArray
    """Per resource: its factor-weighted average of interface prices (the multi-interface settlement price)."""
    cost_cad_per_h: float
    energy_shortage_kw: float
    reserve_shortage_kw: float
    method: str
    stats: dict[str, float] = field(default_factory=dict)
    """Solver figures: columns, rows, rounds, seconds."""
