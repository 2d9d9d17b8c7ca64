"""Offers and bids: piecewise price-quantity curves per resource, product, market and interval.

An offer sells (injection, or load reduction); a bid buys (consumption). A curve is a tuple of at most
``MAX_SEGMENTS`` segments, each an *incremental* quantity in kW at a price in CAD/MWh: the first segment's
quantity is offered at its price, the second segment's quantity on top of it at its own price, and so on.
Offer prices never decrease from one segment to the next; bid prices never increase.

Money is ``Decimal`` here. The clearing engines work on float64 arrays of prices; ``price_from_float``
turns an engine price back into a ``Decimal`` rounded to the cent, at the edge.

Each rule has a stable error code. ``check_curve`` returns the first rule an item breaks (or
``OfferCheck.ACCEPTED``) so a batch can be acknowledged item by item; ``require_valid_curve`` raises it as a
``ValidationFailed``. The vectorised engine (``gridbridge.engines.clearing.curves.validate_curves``) applies
the same rules in the same order to many curves at once and returns the same ``OfferCheck`` values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import IntEnum, StrEnum

from gridbridge.domain.errors import ValidationFailed, register_code
from gridbridge.domain.validation import OUT_OF_RANGE, REQUIRED

MAX_SEGMENTS = 10
"""Most segments one curve may have."""

_CENT = Decimal("0.01")


class Product(StrEnum):
    """What is offered: energy or operating reserve (upward, deliverable within the interval)."""

    ENERGY = "energy"
    OPERATING_RESERVE = "operating_reserve"


class Market(StrEnum):
    """The two markets an offer can be for."""

    DAY_AHEAD = "day_ahead"
    REAL_TIME = "real_time"


MARKET_INTERVAL: dict[Market, timedelta] = {
    Market.DAY_AHEAD: timedelta(hours=1),
    Market.REAL_TIME: timedelta(minutes=5),
}
"""Length of one market interval: hourly day-ahead, 5-minute real time."""


class Side(StrEnum):
    """Offer (sell: injection or load reduction) or bid (buy: consumption)."""

    OFFER = "offer"
    BID = "bid"


class EnvelopePolicy(StrEnum):
    """What to do with an offer whose quantity exceeds the operating envelope in force."""

    CLIP = "clip"
    """Accept it, cut to the envelope; the acknowledgement says so and names the envelope."""
    REJECT = "reject"
    """Reject it with ``offers.beyond_envelope``."""


EMPTY = register_code("offers.empty", 422, "An offer or bid curve has no segments")
TOO_MANY_SEGMENTS = register_code(
    "offers.too_many_segments", 422, f"An offer or bid curve has more than {MAX_SEGMENTS} segments"
)
NOT_FINITE = register_code("offers.not_finite", 422, "A price or quantity in an offer is NaN or infinite")
QUANTITY_NOT_POSITIVE = register_code("offers.quantity_not_positive", 422, "Every segment quantity must be > 0 kW")
PRICE_BELOW_FLOOR = register_code("offers.price_below_floor", 422, "A segment price is below the market's price floor")
PRICE_ABOVE_CAP = register_code("offers.price_above_cap", 422, "A segment price is above the market's price cap")
NON_MONOTONIC = register_code(
    "offers.non_monotonic", 422, "Offer prices must not decrease, and bid prices must not increase, segment to segment"
)
BEYOND_ENVELOPE = register_code(
    "offers.beyond_envelope", 422, "The offered quantity exceeds the operating envelope in force"
)
RESERVE_BID = register_code("offers.reserve_bid", 422, "Operating reserve can only be offered, not bid")
GATE_CLOSED = register_code("offers.gate_closed", 409, "The interval is past gate closure; its offers cannot change")
MISALIGNED_INTERVAL = register_code(
    "offers.misaligned_interval", 422, "An interval start is not timezone-aware or not on the market's interval grid"
)


class OfferCheck(IntEnum):
    """Outcome of checking one curve, in the order the rules are applied (the first broken rule wins).

    ``ACCEPTED`` and ``CLIPPED_TO_ENVELOPE`` are acceptances; every other value is a rejection with a
    registered error code (``OfferCheck.code``).
    """

    ACCEPTED = 0
    CLIPPED_TO_ENVELOPE = 1
    EMPTY = 2
    TOO_MANY_SEGMENTS = 3
    NOT_FINITE = 4
    QUANTITY_NOT_POSITIVE = 5
    PRICE_BELOW_FLOOR = 6
    PRICE_ABOVE_CAP = 7
    NON_MONOTONIC = 8
    BEYOND_ENVELOPE = 9

    @property
    def accepted(self) -> bool:
        """True for the two acceptances."""
        return self in (OfferCheck.ACCEPTED, OfferCheck.CLIPPED_TO_ENVELOPE)

    @property
    def code(self) -> str:
        """The stable code of this outcome (``offers.accepted`` / ``offers.clipped`` for acceptances)."""
        return _CHECK_CODES[self]


_CHECK_CODES: dict[OfferCheck, str] = {
    OfferCheck.ACCEPTED: "offers.accepted",
    OfferCheck.CLIPPED_TO_ENVELOPE: "offers.clipped_to_envelope",
    OfferCheck.EMPTY: EMPTY,
    OfferCheck.TOO_MANY_SEGMENTS: TOO_MANY_SEGMENTS,
    OfferCheck.NOT_FINITE: NOT_FINITE,
    OfferCheck.QUANTITY_NOT_POSITIVE: QUANTITY_NOT_POSITIVE,
    OfferCheck.PRICE_BELOW_FLOOR: PRICE_BELOW_FLOOR,
    OfferCheck.PRICE_ABOVE_CAP: PRICE_ABOVE_CAP,
    OfferCheck.NON_MONOTONIC: NON_MONOTONIC,
    OfferCheck.BEYOND_ENVELOPE: BEYOND_ENVELOPE,
}


@dataclass(frozen=True)
class PriceBounds:
    """A market's price floor and cap in CAD/MWh (configurable per market)."""

    floor_cad_per_mwh: Decimal
    cap_cad_per_mwh: Decimal

    def __post_init__(self) -> None:
        if not (self.floor_cad_per_mwh.is_finite() and self.cap_cad_per_mwh.is_finite()):
            raise ValidationFailed("price bounds must be finite", field="price_bounds", code=NOT_FINITE)
        if self.floor_cad_per_mwh >= self.cap_cad_per_mwh:
            raise ValidationFailed(
                f"price floor {self.floor_cad_per_mwh} must be below the cap {self.cap_cad_per_mwh}",
                field="price_bounds.floor_cad_per_mwh",
                code=OUT_OF_RANGE,
            )


DEFAULT_PRICE_BOUNDS = PriceBounds(Decimal("-2000"), Decimal("2000"))
"""Default bounds, the magnitude of Ontario's maximum market clearing price; configure per market."""


@dataclass(frozen=True)
class OfferSegment:
    """One segment: ``quantity_kw`` more at ``price_cad_per_mwh``."""

    price_cad_per_mwh: Decimal
    quantity_kw: Decimal


@dataclass(frozen=True)
class MarketRules:
    """Per-market configuration: interval length, gate closure lead time, price bounds, envelope policy."""

    market: Market
    gate_closure_lead: timedelta
    """Offers for an interval close this long before the interval starts (server clock)."""
    price_bounds: PriceBounds = DEFAULT_PRICE_BOUNDS
    envelope_policy: EnvelopePolicy = EnvelopePolicy.CLIP
    max_segments: int = MAX_SEGMENTS

    @property
    def interval(self) -> timedelta:
        """Length of one interval of this market."""
        return MARKET_INTERVAL[self.market]

    def gate_closure(self, interval_start: datetime) -> datetime:
        """Return the instant after which offers for the interval starting at ``interval_start`` are closed."""
        require_interval_start(interval_start, self.market)
        return interval_start - self.gate_closure_lead

    def require_open(self, now: datetime, interval_start: datetime) -> None:
        """Raise ``offers.gate_closed`` unless ``now`` (server clock, tz-aware) is before gate closure."""
        if now.tzinfo is None:
            raise ValidationFailed("now must be timezone-aware", field="now", code=MISALIGNED_INTERVAL)
        closes = self.gate_closure(interval_start)
        if now >= closes:
            raise ValidationFailed(
                f"the interval starting {interval_start.isoformat()} closed at {closes.isoformat()}",
                field="interval_start",
                code=GATE_CLOSED,
            )


def require_interval_start(interval_start: datetime, market: Market) -> None:
    """Raise ``offers.misaligned_interval`` unless the start is tz-aware and on the market's interval grid.

    The grid is counted from the Unix epoch in UTC, which lines up with whole hours and 5-minute steps in
    every time zone whose offset is a whole number of 5 minutes (the IESO's EST is UTC-05:00).
    """
    if interval_start.tzinfo is None or interval_start.utcoffset() is None:
        raise ValidationFailed(
            "interval_start must be timezone-aware", field="interval_start", code=MISALIGNED_INTERVAL
        )
    step = int(MARKET_INTERVAL[market].total_seconds())
    if interval_start.timestamp() % step != 0:
        raise ValidationFailed(
            f"interval_start {interval_start.isoformat()} is not on the {market.value} grid of {step} s",
            field="interval_start",
            code=MISALIGNED_INTERVAL,
        )


def check_curve(
    side: Side,
    segments: Sequence[OfferSegment],
    bounds: PriceBounds = DEFAULT_PRICE_BOUNDS,
    max_segments: int = MAX_SEGMENTS,
) -> OfferCheck:
    """Return the first rule ``segments`` break, in ``OfferCheck`` order, or ``OfferCheck.ACCEPTED``.

    Rules: at least one segment; at most ``max_segments``; finite numbers; every quantity > 0; every price
    within ``bounds``; offer prices non-decreasing (bid prices non-increasing) from segment to segment.
    """
    if not segments:
        return OfferCheck.EMPTY
    if len(segments) > max_segments:
        return OfferCheck.TOO_MANY_SEGMENTS
    if any(not (s.price_cad_per_mwh.is_finite() and s.quantity_kw.is_finite()) for s in segments):
        return OfferCheck.NOT_FINITE
    if any(s.quantity_kw <= 0 for s in segments):
        return OfferCheck.QUANTITY_NOT_POSITIVE
    if any(s.price_cad_per_mwh < bounds.floor_cad_per_mwh for s in segments):
        return OfferCheck.PRICE_BELOW_FLOOR
    if any(s.price_cad_per_mwh > bounds.cap_cad_per_mwh for s in segments):
        return OfferCheck.PRICE_ABOVE_CAP
    prices = [s.price_cad_per_mwh for s in segments]
    pairs = list(itertools.pairwise(prices))
    if side is Side.OFFER and any(b < a for a, b in pairs):
        return OfferCheck.NON_MONOTONIC
    if side is Side.BID and any(b > a for a, b in pairs):
        return OfferCheck.NON_MONOTONIC
    return OfferCheck.ACCEPTED


def require_valid_curve(
    side: Side,
    segments: Sequence[OfferSegment],
    bounds: PriceBounds = DEFAULT_PRICE_BOUNDS,
    max_segments: int = MAX_SEGMENTS,
    field: str = "segments",
) -> None:
    """Raise ``ValidationFailed`` with the code of the first broken rule (see ``check_curve``)."""
    outcome = check_curve(side, segments, bounds, max_segments)
    if not outcome.accepted:
        raise ValidationFailed(_MESSAGES[outcome], field=field, code=outcome.code)


_MESSAGES: dict[OfferCheck, str] = {
    OfferCheck.EMPTY: "a curve needs at least one segment",
    OfferCheck.TOO_MANY_SEGMENTS: f"a curve has at most {MAX_SEGMENTS} segments",
    OfferCheck.NOT_FINITE: "prices and quantities must be finite numbers",
    OfferCheck.QUANTITY_NOT_POSITIVE: "every segment quantity must be > 0 kW",
    OfferCheck.PRICE_BELOW_FLOOR: "a segment price is below the market's price floor",
    OfferCheck.PRICE_ABOVE_CAP: "a segment price is above the market's price cap",
    OfferCheck.NON_MONOTONIC: "offer prices must not decrease (bid prices must not increase) segment to segment",
    OfferCheck.BEYOND_ENVELOPE: "the offered quantity exceeds the operating envelope in force",
}


@dataclass(frozen=True)
class Offer:
    """One resource's curve for one product, market and interval, at one revision.

    ``resource_id`` names a DER, an aggregation or a DSO's virtual resource at a T-D interface. Revisions
    count up from 1; a later revision replaces an earlier one until gate closure.
    """

    resource_id: str
    product: Product
    market: Market
    side: Side
    interval_start: datetime
    revision: int
    segments: tuple[OfferSegment, ...]

    def __post_init__(self) -> None:
        if not self.resource_id:
            raise ValidationFailed("resource_id must not be empty", field="resource_id", code=REQUIRED)
        if self.revision < 1:
            raise ValidationFailed(f"revision must be >= 1, got {self.revision}", field="revision", code=OUT_OF_RANGE)
        if self.side is Side.BID and self.product is Product.OPERATING_RESERVE:
            raise ValidationFailed("operating reserve is offered, never bid", field="side", code=RESERVE_BID)
        require_interval_start(self.interval_start, self.market)

    def total_kw(self) -> Decimal:
        """Sum of the segment quantities."""
        return sum((s.quantity_kw for s in self.segments), Decimal(0))


def clip_segments_to_envelope(segments: Sequence[OfferSegment], limit_kw: Decimal) -> tuple[OfferSegment, ...]:
    """Return the segments cut so that their total is at most ``limit_kw`` (cheapest-first order kept).

    Segments entirely beyond the limit are dropped; the one crossing it is shortened.
    """
    out: list[OfferSegment] = []
    used = Decimal(0)
    for seg in segments:
        room = limit_kw - used
        if room <= 0:
            break
        take = min(seg.quantity_kw, room)
        out.append(OfferSegment(seg.price_cad_per_mwh, take))
        used += take
    return tuple(out)


def price_from_float(price_cad_per_mwh: float) -> Decimal:
    """Turn an engine price (float64 CAD/MWh) into a ``Decimal`` rounded half-even to the cent.

    Raises ``ValidationFailed`` (``offers.not_finite``) for NaN or infinity.
    """
    if not math.isfinite(price_cad_per_mwh):
        raise ValidationFailed("a price must be finite", field="price_cad_per_mwh", code=NOT_FINITE)
    return Decimal(repr(float(price_cad_per_mwh))).quantize(_CENT, rounding=ROUND_HALF_EVEN)
