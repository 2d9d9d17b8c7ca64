"""Offer curves: domain rules, the vectorised validation (same rules, same order), capping, ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridbridge.domain.errors import ERROR_CODES, ValidationFailed
from gridbridge.domain.offers import (
    DEFAULT_PRICE_BOUNDS,
    Market,
    MarketRules,
    Offer,
    OfferCheck,
    OfferSegment,
    PriceBounds,
    Product,
    Side,
    check_curve,
    clip_segments_to_envelope,
    price_from_float,
    require_valid_curve,
)
from gridbridge.engines.clearing import CurveSet, cap_curves, curveset_from_offers, merit_order, validate_curves


def seg(price: str, qty: str) -> OfferSegment:
    return OfferSegment(Decimal(price), Decimal(qty))


T0 = datetime(2026, 7, 1, 17, 0, tzinfo=UTC)


# ---- domain rules, one per bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "segments", "expected"),
    [
        (Side.OFFER, [], OfferCheck.EMPTY),
        (Side.OFFER, [seg("10", "1")] * 11, OfferCheck.TOO_MANY_SEGMENTS),
        (Side.OFFER, [seg("NaN", "1")], OfferCheck.NOT_FINITE),
        (Side.OFFER, [seg("10", "0")], OfferCheck.QUANTITY_NOT_POSITIVE),
        (Side.OFFER, [seg("-2000.01", "1")], OfferCheck.PRICE_BELOW_FLOOR),
        (Side.OFFER, [seg("2000.01", "1")], OfferCheck.PRICE_ABOVE_CAP),
        (Side.OFFER, [seg("30", "1"), seg("20", "1")], OfferCheck.NON_MONOTONIC),
        (Side.BID, [seg("20", "1"), seg("30", "1")], OfferCheck.NON_MONOTONIC),
        (Side.OFFER, [seg("20", "1"), seg("20", "2"), seg("30", "1")], OfferCheck.ACCEPTED),
        (Side.BID, [seg("30", "1"), seg("20", "1")], OfferCheck.ACCEPTED),
        # The first broken rule wins: a negative quantity is reported before the non-monotonic price.
        (Side.OFFER, [seg("30", "-1"), seg("20", "1")], OfferCheck.QUANTITY_NOT_POSITIVE),
    ],
)
def test_check_curve_reports_the_first_broken_rule(
    side: Side, segments: list[OfferSegment], expected: OfferCheck
) -> None:
    assert check_curve(side, segments) is expected


def test_rejections_carry_registered_codes_and_name_the_field() -> None:
    with pytest.raises(ValidationFailed) as info:
        require_valid_curve(Side.OFFER, [seg("30", "1"), seg("20", "1")], field="offers[3].segments")
    assert info.value.code == "offers.non_monotonic"
    assert info.value.field == "offers[3].segments"
    for check in OfferCheck:
        if not check.accepted:
            assert check.code in ERROR_CODES


def test_price_bounds_are_configurable() -> None:
    tight = PriceBounds(Decimal("0"), Decimal("100"))
    assert check_curve(Side.OFFER, [seg("150", "1")], tight) is OfferCheck.PRICE_ABOVE_CAP
    assert check_curve(Side.OFFER, [seg("150", "1")]) is OfferCheck.ACCEPTED
    with pytest.raises(ValidationFailed):
        PriceBounds(Decimal("100"), Decimal("0"))


def test_gate_closure_is_enforced_per_market() -> None:
    rules = MarketRules(Market.REAL_TIME, gate_closure_lead=timedelta(minutes=10))
    assert rules.gate_closure(T0) == T0 - timedelta(minutes=10)
    rules.require_open(T0 - timedelta(minutes=11), T0)
    with pytest.raises(ValidationFailed) as info:
        rules.require_open(T0 - timedelta(minutes=10), T0)
    assert info.value.code == "offers.gate_closed"


def test_offer_interval_must_be_aware_and_on_the_market_grid() -> None:
    good = Offer("der-1", Product.ENERGY, Market.REAL_TIME, Side.OFFER, T0 + timedelta(minutes=5), 1, (seg("10", "5"),))
    assert good.total_kw() == Decimal("5")
    with pytest.raises(ValidationFailed) as info:
        Offer("der-1", Product.ENERGY, Market.DAY_AHEAD, Side.OFFER, T0 + timedelta(minutes=5), 1, (seg("10", "5"),))
    assert info.value.code == "offers.misaligned_interval"
    with pytest.raises(ValidationFailed):
        Offer("der-1", Product.ENERGY, Market.REAL_TIME, Side.OFFER, datetime(2026, 7, 1, 17), 1, (seg("10", "5"),))
    with pytest.raises(ValidationFailed) as info:
        Offer("der-1", Product.OPERATING_RESERVE, Market.REAL_TIME, Side.BID, T0, 1, (seg("10", "5"),))
    assert info.value.code == "offers.reserve_bid"


def test_clip_and_price_conversion_at_the_edge() -> None:
    clipped = clip_segments_to_envelope([seg("10", "3"), seg("20", "3"), seg("30", "3")], Decimal("4.5"))
    assert clipped == (seg("10", "3"), seg("20", "1.5"))
    assert price_from_float(33.333333) == Decimal("33.33")
    assert price_from_float(-0.005) == Decimal("-0.00")
    with pytest.raises(ValidationFailed):
        price_from_float(float("nan"))


# ---- vectorised validation ----------------------------------------------------------------------------


def test_validate_curves_matches_the_domain_rule_for_each_bad_input() -> None:
    curves = CurveSet.from_lists(
        [[], [10.0] * 11, [float("nan")], [10.0], [-2500.0], [2500.0], [30.0, 20.0], [10.0, 10.0, 20.0]],
        [[], [1.0] * 11, [1.0], [0.0], [1.0], [1.0], [1.0, 1.0], [1.0, 2.0, 3.0]],
    )
    checks, accepted = validate_curves(curves)
    assert [OfferCheck(int(c)) for c in checks] == [
        OfferCheck.EMPTY,
        OfferCheck.TOO_MANY_SEGMENTS,
        OfferCheck.NOT_FINITE,
        OfferCheck.QUANTITY_NOT_POSITIVE,
        OfferCheck.PRICE_BELOW_FLOOR,
        OfferCheck.PRICE_ABOVE_CAP,
        OfferCheck.NON_MONOTONIC,
        OfferCheck.ACCEPTED,
    ]
    # Rejected curves keep their layout but carry no quantity.
    assert accepted.total_kw()[:7].sum() == 0
    assert accepted.total_kw()[7] == 6.0


def test_validate_curves_clips_or_rejects_beyond_the_envelope() -> None:
    curves = CurveSet.from_lists([[10.0, 20.0], [10.0]], [[3.0, 3.0], [2.0]])
    envelope = np.array([4.0, 5.0])
    checks, clipped = validate_curves(curves, envelope_kw=envelope)
    assert list(checks) == [OfferCheck.CLIPPED_TO_ENVELOPE, OfferCheck.ACCEPTED]
    np.testing.assert_allclose(clipped.quantity_kw, [3.0, 1.0, 2.0])
    checks, rejected = validate_curves(curves, envelope_kw=envelope, clip_to_envelope=False)
    assert list(checks) == [OfferCheck.BEYOND_ENVELOPE, OfferCheck.ACCEPTED]
    np.testing.assert_allclose(rejected.quantity_kw, [0.0, 0.0, 2.0])


def test_validate_curves_with_mixed_sides() -> None:
    curves = CurveSet.from_lists([[30.0, 20.0], [30.0, 20.0]], [[1.0, 1.0], [1.0, 1.0]])
    checks, _ = validate_curves(curves, side=np.array([False, True]))
    assert list(checks) == [OfferCheck.NON_MONOTONIC, OfferCheck.ACCEPTED]


_price = st.one_of(
    st.decimals(min_value=-2100, max_value=2100, places=2, allow_nan=False, allow_infinity=False),
    st.just(Decimal("NaN")),
)
_qty = st.decimals(min_value=-5, max_value=50, places=1, allow_nan=False, allow_infinity=False)
_curve = st.lists(st.tuples(_price, _qty), min_size=0, max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Side.OFFER, Side.BID]), _curve), min_size=1, max_size=20))
def test_vectorised_validation_equals_the_domain_rule(items: list[tuple[Side, list[tuple[Decimal, Decimal]]]]) -> None:
    expected = [
        check_curve(side, [OfferSegment(p, q) for p, q in curve], DEFAULT_PRICE_BOUNDS) for side, curve in items
    ]
    curves = CurveSet.from_lists(
        [[float(p) for p, _ in curve] for _, curve in items], [[float(q) for _, q in curve] for _, curve in items]
    )
    checks, _ = validate_curves(curves, side=np.array([side is Side.BID for side, _ in items]))
    assert [OfferCheck(int(c)) for c in checks] == expected


# ---- capping, taking, ordering ------------------------------------------------------------------------


def test_cap_curves_keeps_layout_and_cuts_in_order() -> None:
    curves = CurveSet.from_lists([[10.0, 20.0, 30.0], [5.0]], [[2.0, 2.0, 2.0], [4.0]])
    capped = cap_curves(curves, np.array([3.0, np.inf]))
    np.testing.assert_allclose(capped.quantity_kw, [2.0, 1.0, 0.0, 4.0])
    np.testing.assert_array_equal(capped.start, curves.start)
    with pytest.raises(ValidationFailed):
        cap_curves(curves, np.array([-1.0, 1.0]))


def test_take_and_from_offers() -> None:
    curves = CurveSet.from_lists([[1.0], [2.0, 3.0], [4.0]], [[1.0], [2.0, 3.0], [4.0]])
    sub = curves.take(np.array([2, 1, 1]))
    np.testing.assert_array_equal(sub.start, [0, 1, 3, 5])
    np.testing.assert_allclose(sub.price_cad_per_mwh, [4.0, 2.0, 3.0, 2.0, 3.0])
    offer = Offer("d", Product.ENERGY, Market.REAL_TIME, Side.OFFER, T0, 2, (seg("12.5", "3"), seg("20", "1")))
    cs = curveset_from_offers([offer, offer])
    np.testing.assert_allclose(cs.price_cad_per_mwh, [12.5, 20.0, 12.5, 20.0])


def test_bad_layout_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as info:
        CurveSet(np.array([0, 2]), np.array([1.0]), np.array([1.0]))
    assert info.value.code == "clearing.bad_curve_layout"


def test_merit_order_is_grouped_priced_and_stable() -> None:
    group = np.array([1, 0, 1, 0, 1])
    price = np.array([5.0, 7.0, 5.0, 3.0, 1.0])
    order = merit_order(group, price)
    assert list(order) == [3, 1, 4, 0, 2]  # group 0: 3.0, 7.0; group 1: 1.0, then the tie 5.0 in input order
    assert list(merit_order(group, price, descending=True)) == [1, 3, 0, 2, 4]
