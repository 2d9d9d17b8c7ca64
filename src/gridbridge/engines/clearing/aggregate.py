"""Merge many member curves (DERs) into one curve per group (a T-D interface, an aggregation).

This is how a DSO turns the offers of the DERs under one T-D interface into the single offer of its virtual
resource there (alt 2 and Total DSO), and how an aggregator builds its aggregation's curve. The same merge,
without the segment limit, is an exact reduction the TSO's clearing uses for DERs it models at an interface.

Rules, per group:

1. Each member's curve is first cut to its envelope (``cap_kw``, the export limit for energy offers).
2. Member segments are put in merit order: price ascending for offers (descending for bids), ties kept in
   member order (segment position in the flat arrays), so the result is deterministic.
3. Segments with equal prices are merged into one segment (exact: the group's cost curve is unchanged).
4. With ``max_segments``, a group with more distinct prices than that is merged into price bands: band ``b``
   holds the segments whose cumulative quantity before them, as a share of the group's total, lies in
   ``[b / max_segments, (b + 1) / max_segments)``; whole price levels are never split. A band is offered at
   the highest member price in it (the lowest for bids), so every member dispatched when a band clears is
   paid at least its own offer. Groups with few prices stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.offers import Side
from gridbridge.engines.clearing.curves import BAD_LAYOUT, CurveSet, cap_curves, cum_before_in_groups, merit_order
from gridbridge.engines.clearing.types import FloatArray, IntArray, sum_by


@dataclass(frozen=True, eq=False)
class Aggregated:
    """The merged curves, and where each member segment went."""

    curves: CurveSet
    """One curve per group (empty where the group has no member quantity)."""
    segment_band: IntArray
    """For every member segment, the index of the merged segment (flat, in ``curves``) holding it; -1 when the
    segment is outside every group or has no quantity after capping."""
    member_curves: CurveSet
    """The member curves as merged (after the envelope cap)."""
    order: IntArray
    """Merit order of all member segments (group, price, position), reusable by disaggregation."""


def aggregate_curves(
    curves: CurveSet,
    group: IntArray,
    n_groups: int,
    *,
    cap_kw: FloatArray | None = None,
    max_segments: int | IntArray | None = None,
    side: Side = Side.OFFER,
    order: IntArray | None = None,
) -> Aggregated:
    """Merge the member ``curves`` into one curve per group.

    ``group[i]`` is the group of member curve ``i`` (``-1``: not aggregated). ``cap_kw`` (one per member)
    cuts each member first. ``max_segments`` (None: exact merge) limits each merged curve to that many price
    bands (module docstring); an array gives one limit per group (0 or less: exact for that group).
    ``order`` may pass a merit order computed before for the same groups and prices (capping does not
    change it).
    """
    grp = np.asarray(group, dtype=np.int64)
    if grp.shape != (curves.n_curves,):
        raise ValidationFailed(
            f"group needs one entry per member curve ({curves.n_curves})", field="group", code=BAD_LAYOUT
        )
    if grp.size and (int(grp.max(initial=-1)) >= n_groups or int(grp.min(initial=0)) < -1):
        raise ValidationFailed(f"group ids must be -1 or in [0, {n_groups})", field="group", code=BAD_LAYOUT)
    limit: IntArray | None = None
    if isinstance(max_segments, int):
        if max_segments < 1:
            raise ValidationFailed("max_segments must be >= 1", field="max_segments", code=BAD_LAYOUT)
        limit = np.full(n_groups, max_segments, dtype=np.int64)
    elif max_segments is not None:
        limit = np.asarray(max_segments, dtype=np.int64)
        if limit.shape != (n_groups,):
            raise ValidationFailed(
                f"max_segments needs one limit per group ({n_groups})", field="max_segments", code=BAD_LAYOUT
            )
        limit = np.where(limit < 1, np.iinfo(np.int64).max, limit)
    members = cap_curves(curves, np.asarray(cap_kw, dtype=np.float64)) if cap_kw is not None else curves
    descending = side is Side.BID
    seg_group = grp[members.owner()]
    if order is None:
        order = merit_order(seg_group, members.price_cad_per_mwh, descending=descending)
    keep = (seg_group[order] >= 0) & (members.quantity_kw[order] > 0)
    sel = order[keep]
    g = seg_group[sel]
    p = members.price_cad_per_mwh[sel]
    q = members.quantity_kw[sel]
    segment_band = np.full(members.n_segments, -1, dtype=np.int64)
    if sel.size == 0:
        return Aggregated(CurveSet.empty(n_groups), segment_band, members, order)

    new_run = np.ones(sel.size, dtype=bool)
    new_run[1:] = (g[1:] != g[:-1]) | (p[1:] != p[:-1])
    run_id = np.cumsum(new_run) - 1
    run_g = g[new_run]
    run_p = p[new_run]
    run_q = sum_by(run_id, q, int(run_id[-1]) + 1)

    runs_per_group = np.bincount(run_g, minlength=n_groups)
    run_start = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(runs_per_group, out=run_start[1:])
    position = np.arange(run_g.size, dtype=np.int64) - run_start[run_g]
    if limit is None:
        band = position
    else:
        total = sum_by(run_g, run_q, n_groups)
        before = cum_before_in_groups(run_q, run_start)
        share = before / np.where(total > 0, total, 1.0)[run_g]
        banded = runs_per_group[run_g] > limit[run_g]
        lim = np.where(banded, limit[run_g], 1).astype(np.float64)
        quantile_band = np.minimum(np.floor(share * lim), lim - 1).astype(np.int64)
        band = np.where(banded, quantile_band, position)

    new_out = np.ones(run_g.size, dtype=bool)
    new_out[1:] = (run_g[1:] != run_g[:-1]) | (band[1:] != band[:-1])
    out_id = np.cumsum(new_out) - 1
    last_of_out = np.append(np.flatnonzero(new_out)[1:] - 1, run_g.size - 1)
    out_price = run_p[last_of_out]
    out_q = sum_by(out_id, run_q, int(out_id[-1]) + 1)
    out_g = run_g[new_out]
    start = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(out_g, minlength=n_groups), out=start[1:])
    segment_band[sel] = out_id[run_id]
    return Aggregated(CurveSet(start, out_price, out_q), segment_band, members, order)
