"""Many piecewise price-quantity curves as flat arrays, with vectorised validation, capping and ordering.

A ``CurveSet`` holds ``n`` curves in compressed-row layout: curve ``i`` owns the segments
``start[i]:start[i + 1]`` of the flat ``price_cad_per_mwh`` and ``quantity_kw`` arrays. Quantities are
incremental (each segment adds its quantity at its price), as in ``gridbridge.domain.offers``. Prices are
float64 CAD/MWh inside the engines; the domain keeps ``Decimal`` and converts at the edges
(``curveset_from_offers`` here, ``gridbridge.domain.offers.price_from_float`` on the way back).

Zero-quantity segments are allowed inside the engines (capping produces them); validation of submitted
offers rejects them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gridbridge.domain.errors import ValidationFailed, register_code
from gridbridge.domain.offers import MAX_SEGMENTS, Offer, OfferCheck, Side
from gridbridge.engines.clearing.types import BoolArray, FloatArray, Int8Array, IntArray, sum_by

BAD_LAYOUT = register_code("clearing.bad_curve_layout", 422, "Curve arrays are inconsistent (offsets or lengths)")


@dataclass(frozen=True, eq=False)
class CurveSet:
    """``n`` curves as flat segment arrays: curve ``i`` owns segments ``start[i]:start[i + 1]``."""

    start: IntArray
    """Offsets, shape ``(n + 1,)``, ``start[0] == 0``, non-decreasing, ``start[-1]`` = number of segments."""
    price_cad_per_mwh: FloatArray
    """Segment prices, float64 CAD/MWh."""
    quantity_kw: FloatArray
    """Incremental segment quantities, kW."""

    def __post_init__(self) -> None:
        start = np.asarray(self.start, dtype=np.int64)
        price = np.asarray(self.price_cad_per_mwh, dtype=np.float64)
        qty = np.asarray(self.quantity_kw, dtype=np.float64)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "price_cad_per_mwh", price)
        object.__setattr__(self, "quantity_kw", qty)
        if start.ndim != 1 or start.size < 1 or start[0] != 0:
            raise ValidationFailed("start must be 1-D and begin with 0", field="start", code=BAD_LAYOUT)
        if np.any(np.diff(start) < 0):
            raise ValidationFailed("start must be non-decreasing", field="start", code=BAD_LAYOUT)
        if price.shape != qty.shape or price.ndim != 1 or int(start[-1]) != price.size:
            raise ValidationFailed(
                f"{price.size} prices and {qty.size} quantities do not match start[-1]={int(start[-1])}",
                field="quantity_kw",
                code=BAD_LAYOUT,
            )

    @property
    def n_curves(self) -> int:
        """Number of curves."""
        return int(self.start.size - 1)

    @property
    def n_segments(self) -> int:
        """Number of segments over all curves."""
        return int(self.price_cad_per_mwh.size)

    def lengths(self) -> IntArray:
        """Segments per curve, shape ``(n,)``."""
        return np.diff(self.start)

    def owner(self) -> IntArray:
        """Curve index of every segment, shape ``(n_segments,)``."""
        return np.repeat(np.arange(self.n_curves, dtype=np.int64), self.lengths())

    def position(self) -> IntArray:
        """Position of every segment within its curve (0 for the first), shape ``(n_segments,)``."""
        return np.arange(self.n_segments, dtype=np.int64) - np.repeat(self.start[:-1], self.lengths())

    def total_kw(self) -> FloatArray:
        """Total quantity of each curve, kW, shape ``(n,)``."""
        return sum_by(self.owner(), self.quantity_kw, self.n_curves)

    def cum_before_kw(self) -> FloatArray:
        """For every segment, the quantity of the earlier segments of its curve, kW."""
        return cum_before_in_groups(self.quantity_kw, self.start)

    def take(self, curves: IntArray) -> CurveSet:
        """Return the curves ``curves`` (indices, any order, repeats allowed) as a new ``CurveSet``."""
        idx = np.asarray(curves, dtype=np.int64)
        lengths = self.lengths()[idx]
        new_start = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=new_start[1:])
        seg = np.repeat(self.start[idx] - new_start[:-1], lengths) + np.arange(int(new_start[-1]), dtype=np.int64)
        return CurveSet(new_start, self.price_cad_per_mwh[seg], self.quantity_kw[seg])

    def with_quantities(self, quantity_kw: FloatArray) -> CurveSet:
        """Return the same layout and prices with other quantities."""
        return CurveSet(self.start, self.price_cad_per_mwh, quantity_kw)

    @classmethod
    def empty(cls, n_curves: int) -> CurveSet:
        """``n_curves`` curves without segments."""
        return cls(np.zeros(n_curves + 1, dtype=np.int64), np.zeros(0), np.zeros(0))

    @classmethod
    def from_lists(
        cls, prices_cad_per_mwh: Sequence[Sequence[float]], quantities_kw: Sequence[Sequence[float]]
    ) -> CurveSet:
        """Build from one list of prices and one list of quantities per curve (for tests and small inputs)."""
        if len(prices_cad_per_mwh) != len(quantities_kw):
            raise ValidationFailed(
                "one price list and one quantity list per curve", field="quantities_kw", code=BAD_LAYOUT
            )
        lengths = [len(p) for p in prices_cad_per_mwh]
        if lengths != [len(q) for q in quantities_kw]:
            raise ValidationFailed(
                "each curve needs as many quantities as prices", field="quantities_kw", code=BAD_LAYOUT
            )
        start = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=start[1:])
        price = np.array([x for p in prices_cad_per_mwh for x in p], dtype=np.float64)
        qty = np.array([x for q in quantities_kw for x in q], dtype=np.float64)
        return cls(start, price, qty)


def cum_before_in_groups(values: FloatArray, start: IntArray) -> FloatArray:
    """For flat ``values`` split into consecutive groups by ``start`` offsets, the sum of earlier values in
    the same group, for every element (0 for each group's first element)."""
    total = np.cumsum(values)
    before = total - values
    lengths = np.diff(start)
    base = np.concatenate(([0.0], total))[start[:-1]]
    result: FloatArray = before - np.repeat(base, lengths)
    return result


def curveset_from_offers(offers: Sequence[Offer]) -> CurveSet:
    """Turn domain offers into a ``CurveSet`` (one curve per offer, Decimal prices to float64)."""
    prices = [[float(s.price_cad_per_mwh) for s in o.segments] for o in offers]
    quantities = [[float(s.quantity_kw) for s in o.segments] for o in offers]
    return CurveSet.from_lists(prices, quantities)


_NONE = np.int8(127)


def validate_curves(
    curves: CurveSet,
    *,
    side: Side | BoolArray = Side.OFFER,
    price_floor_cad_per_mwh: float = -2000.0,
    price_cap_cad_per_mwh: float = 2000.0,
    max_segments: int = MAX_SEGMENTS,
    envelope_kw: FloatArray | None = None,
    clip_to_envelope: bool = True,
) -> tuple[Int8Array, CurveSet]:
    """Check every curve with the rules of ``gridbridge.domain.offers.check_curve``, all at once.

    ``side`` is one ``Side`` for all curves, or a boolean array (True where the curve is a bid).
    Returns ``(checks, accepted)``: ``checks`` holds one ``OfferCheck`` value per curve (int8; the first
    broken rule in ``OfferCheck`` order), ``accepted`` is the input with the quantities of rejected curves
    set to zero. With ``envelope_kw`` (one limit per curve) a valid curve whose total exceeds its envelope is
    clipped to it (``CLIPPED_TO_ENVELOPE``) or, with ``clip_to_envelope=False``, rejected
    (``BEYOND_ENVELOPE``).
    """
    n = curves.n_curves
    lengths = curves.lengths()
    price = curves.price_cad_per_mwh
    qty = curves.quantity_kw
    owner = curves.owner()

    seg = np.full(curves.n_segments, _NONE, dtype=np.int8)
    # Apply rules from the lowest priority to the highest, so the first broken rule overwrites the rest.
    if isinstance(side, Side):
        bid_seg = np.full(curves.n_segments, side is Side.BID)
    else:
        bid = np.asarray(side, dtype=bool)
        if bid.shape != (n,):
            raise ValidationFailed(f"side needs one flag per curve ({n})", field="side", code=BAD_LAYOUT)
        bid_seg = bid[owner]
    if curves.n_segments:
        step = np.diff(price)
        same_curve = owner[1:] == owner[:-1]
        bad_step = same_curve & np.where(bid_seg[1:], step > 0, step < 0)
        seg[1:][bad_step] = OfferCheck.NON_MONOTONIC
        seg[price > price_cap_cad_per_mwh] = OfferCheck.PRICE_ABOVE_CAP
        seg[price < price_floor_cad_per_mwh] = OfferCheck.PRICE_BELOW_FLOOR
        seg[~(qty > 0)] = OfferCheck.QUANTITY_NOT_POSITIVE
        seg[~(np.isfinite(price) & np.isfinite(qty))] = OfferCheck.NOT_FINITE

    checks = np.full(n, _NONE, dtype=np.int8)
    nonempty = lengths > 0
    if curves.n_segments:
        checks[nonempty] = np.minimum.reduceat(seg, curves.start[:-1][nonempty])
    checks[lengths > max_segments] = OfferCheck.TOO_MANY_SEGMENTS
    checks[~nonempty] = OfferCheck.EMPTY
    checks[checks == _NONE] = OfferCheck.ACCEPTED

    new_qty = np.where((checks[owner] == OfferCheck.ACCEPTED), qty, 0.0)
    if envelope_kw is not None:
        env = np.asarray(envelope_kw, dtype=np.float64)
        if env.shape != (n,):
            raise ValidationFailed(f"envelope_kw needs one limit per curve ({n})", field="envelope_kw", code=BAD_LAYOUT)
        over = (checks == OfferCheck.ACCEPTED) & (np.bincount(owner, new_qty, minlength=n) > env)
        if clip_to_envelope:
            checks[over] = OfferCheck.CLIPPED_TO_ENVELOPE
            new_qty = _cap(new_qty, curves.start, owner, env)
        else:
            checks[over] = OfferCheck.BEYOND_ENVELOPE
            new_qty = np.where(over[owner], 0.0, new_qty)
    return checks, curves.with_quantities(new_qty)


def _cap(qty: FloatArray, start: IntArray, owner: IntArray, cap_kw: FloatArray) -> FloatArray:
    before = cum_before_in_groups(qty, start)
    capped: FloatArray = np.clip(cap_kw[owner] - before, 0.0, qty)
    return capped


def cap_curves(curves: CurveSet, cap_kw: FloatArray) -> CurveSet:
    """Return the curves with each curve's total cut to ``cap_kw`` (one cap per curve, kW, >= 0).

    Segments are kept in order; the segment crossing the cap is shortened and later ones get quantity 0,
    so the layout (and the segment-to-segment mapping) is unchanged. ``inf`` means no cap.
    """
    cap = np.asarray(cap_kw, dtype=np.float64)
    if cap.shape != (curves.n_curves,):
        raise ValidationFailed(f"cap_kw needs one cap per curve ({curves.n_curves})", field="cap_kw", code=BAD_LAYOUT)
    if np.any(np.isnan(cap)) or np.any(cap < 0):
        raise ValidationFailed("caps must be >= 0 (inf for none)", field="cap_kw", code=BAD_LAYOUT)
    return curves.with_quantities(_cap(curves.quantity_kw, curves.start, curves.owner(), cap))


def merit_order(group: IntArray, price_cad_per_mwh: FloatArray, *, descending: bool = False) -> IntArray:
    """Return the permutation that sorts items by group, then price, then original position.

    Ascending price for offers; ``descending=True`` for bids. The original position breaks ties, which
    makes the order deterministic and stable (earlier items first). Two stable sorts: the price sort, then
    a radix sort on the group when the group ids fit in 16 bits.
    """
    key = -price_cad_per_mwh if descending else price_cad_per_mwh
    by_price = np.argsort(key, kind="stable")
    g = np.asarray(group)[by_price]
    if g.size and int(g.min()) >= np.iinfo(np.int16).min and int(g.max()) <= np.iinfo(np.int16).max:
        g = g.astype(np.int16)
    result: IntArray = by_price[np.argsort(g, kind="stable")]
    return result


def concat_curves(first: CurveSet, second: CurveSet) -> CurveSet:
    """The curves of ``first`` followed by those of ``second``."""
    start = np.concatenate((first.start, first.start[-1] + second.start[1:]))
    return CurveSet(
        start,
        np.concatenate((first.price_cad_per_mwh, second.price_cad_per_mwh)),
        np.concatenate((first.quantity_kw, second.quantity_kw)),
    )
