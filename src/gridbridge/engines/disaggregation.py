"""Split parent instructions (an aggregation's, or a DSO virtual resource's) to member DERs.

Vectorised over every parent at once: members carry the index of their parent, all members' offer segments
are sorted once by (parent, price, position), and a cumulative sum within each parent decides who delivers.

* ``split_merit_order``: cheapest offers first, each member within its available quantity (its envelope);
  equal prices in member order (stable). This is the DSO's disaggregation in alt 2 and Total DSO.
* ``split_pro_rata``: every member delivers the same share of its available quantity (also how a DSO can
  spread a TSO operating instruction, e.g. "curtail 20 MW under this interface", over its resources).

Neither ever instructs a member beyond its available quantity: a parent instruction larger than its members
can deliver is reported as a shortfall. Every member instruction keeps the index of its parent
(``parent_index``), which is the trace from a DER instruction back to the instruction it came from.
Instructions are non-negative magnitudes in kW (energy injection or load reduction; reserve).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridbridge.domain.errors import ValidationFailed, register_code
from gridbridge.engines.clearing.curves import CurveSet, cap_curves, cum_before_in_groups, merit_order
from gridbridge.engines.clearing.types import FloatArray, IntArray, sum_by

BAD_SPLIT = register_code("disaggregation.bad_input", 422, "Disaggregation inputs are inconsistent or negative")

_MIN_KW = 1e-9


@dataclass(frozen=True, eq=False)
class Disaggregation:
    """Member instructions and, per parent, what is delivered and what is short."""

    member_p_kw: FloatArray
    """Instruction per member, kW (0 for members not dispatched or outside every parent)."""
    parent_index: IntArray
    """Parent instruction of each member (-1: none). The trace of every DER instruction."""
    delivered_kw: FloatArray
    """Per parent: the sum of its members' instructions."""
    shortfall_kw: FloatArray
    """Per parent: instructed minus deliverable, when the members cannot deliver it all (else 0)."""

    def instructions(self) -> tuple[IntArray, IntArray, FloatArray]:
        """``(member, parent, p_kw)`` for every member with a parent, in member order."""
        members = np.flatnonzero(self.parent_index >= 0)
        return members, self.parent_index[members], self.member_p_kw[members]


def _check(parent_p_kw: FloatArray, member_parent: IntArray, n_members: int) -> tuple[FloatArray, IntArray]:
    target = np.asarray(parent_p_kw, dtype=np.float64)
    parent = np.asarray(member_parent, dtype=np.int64)
    if target.ndim != 1 or np.any(~np.isfinite(target)) or np.any(target < 0):
        raise ValidationFailed("parent instructions must be finite and >= 0 kW", field="parent_p_kw", code=BAD_SPLIT)
    if parent.shape != (n_members,):
        raise ValidationFailed(
            f"member_parent needs one entry per member ({n_members})", field="member_parent", code=BAD_SPLIT
        )
    if parent.size and (int(parent.min()) < -1 or int(parent.max()) >= target.size):
        raise ValidationFailed(
            f"member_parent must be -1 or in [0, {target.size})", field="member_parent", code=BAD_SPLIT
        )
    return target, parent


def split_merit_order(
    parent_p_kw: FloatArray,
    member_parent: IntArray,
    member_curves: CurveSet,
    *,
    available_kw: FloatArray | None = None,
    order: IntArray | None = None,
) -> Disaggregation:
    """Split each parent's instruction over its members by merit order within ``available_kw``.

    ``member_curves`` holds one offer curve per member (price order inside a parent; position breaks ties).
    ``available_kw`` caps each member (its envelope; ``None``: the curve's own total). ``order`` may pass
    the merit order of the members' segments grouped by parent (``merit_order``), computed earlier.
    """
    target, parent = _check(parent_p_kw, member_parent, member_curves.n_curves)
    n_parents = target.size
    curves = member_curves
    if available_kw is not None:
        avail = np.asarray(available_kw, dtype=np.float64)
        if avail.shape != (curves.n_curves,) or np.any(np.isnan(avail)) or np.any(avail < 0):
            raise ValidationFailed("available_kw needs one value >= 0 per member", field="available_kw", code=BAD_SPLIT)
        curves = cap_curves(curves, avail)
    owner = curves.owner()
    seg_parent = parent[owner]
    if order is None:
        order = merit_order(seg_parent, curves.price_cad_per_mwh)
    sel = order[seg_parent[order] >= 0]
    g = seg_parent[sel]
    q = curves.quantity_kw[sel]
    start = np.zeros(n_parents + 1, dtype=np.int64)
    np.cumsum(np.bincount(g, minlength=n_parents), out=start[1:])
    if np.any(np.diff(g) < 0):
        raise ValidationFailed("order must group segments by parent", field="order", code=BAD_SPLIT)
    before = cum_before_in_groups(q, start)
    take = np.clip(target[g] - before, 0.0, q)
    take[take < _MIN_KW] = 0.0
    member_p = sum_by(owner[sel], take, curves.n_curves)
    capacity = sum_by(g, q, n_parents)
    delivered = sum_by(parent[parent >= 0], member_p[parent >= 0], n_parents)
    shortfall = np.maximum(target - capacity, 0.0)
    shortfall[shortfall < 1e-6] = 0.0
    return Disaggregation(member_p, parent, delivered, shortfall)


def split_pro_rata(parent_p_kw: FloatArray, member_parent: IntArray, available_kw: FloatArray) -> Disaggregation:
    """Split each parent's instruction in proportion to its members' available quantity (never beyond it)."""
    avail = np.asarray(available_kw, dtype=np.float64)
    target, parent = _check(parent_p_kw, member_parent, avail.size)
    if avail.ndim != 1 or np.any(np.isnan(avail)) or np.any(avail < 0) or np.any(np.isinf(avail)):
        raise ValidationFailed("available_kw must be finite and >= 0", field="available_kw", code=BAD_SPLIT)
    n_parents = target.size
    inside = parent >= 0
    capacity = sum_by(parent[inside], avail[inside], n_parents)
    served = np.minimum(target, capacity)
    ratio = np.divide(served, capacity, out=np.zeros(n_parents), where=capacity > 0)
    member_p = np.where(inside, avail * ratio[np.maximum(parent, 0)], 0.0)
    member_p = np.minimum(member_p, avail)
    delivered = sum_by(parent[inside], member_p[inside], n_parents)
    shortfall = np.maximum(target - capacity, 0.0)
    shortfall[shortfall < 1e-6] = 0.0
    return Disaggregation(member_p, parent, delivered, shortfall)
