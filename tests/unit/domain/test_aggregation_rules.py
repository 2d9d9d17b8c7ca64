"""Aggregation rules: distribution factors, market standing, double enrolment, review deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridbridge.domain.aggregation import (
    Aggregation,
    AggregationMarket,
    AggregationMember,
    MarketStatus,
    MemberStatus,
    check_double_enrolment,
    distribution_factors,
    periods_overlap,
)
from gridbridge.domain.errors import ConflictError
from gridbridge.domain.roles import Service

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _member(
    agg: Aggregation,
    der: str,
    tdi: str,
    kw: float,
    status: MemberStatus = MemberStatus.APPROVED,
    start: datetime = T0,
    end: datetime | None = None,
) -> AggregationMember:
    member = AggregationMember(
        id=f"{agg.id}-{der}",
        aggregation_id=agg.id,
        der_id=der,
        tdi_id=tdi,
        dso_id="ldc",
        capacity_kw=kw,
        valid_from=start,
        valid_to=end,
        status=status,
        requested_at=T0,
        review_due_at=T0 + timedelta(days=60),
    )
    agg.members.append(member)
    return member


def _aggregation(name: str, *services: Service, min_kw: float = 100.0) -> Aggregation:
    agg = Aggregation(id=name, name=name, aggregator_id="agg", multi_tdi=True, created_at=T0)
    agg.markets = [
        AggregationMarket(id=f"{name}-{s.value}", aggregation_id=name, service=s, min_size_kw=min_kw) for s in services
    ]
    return agg


def test_distribution_factors_follow_capacity_and_sum_to_one() -> None:
    factors = distribution_factors([("a", 30.0), ("b", 60.0), ("a", 10.0)])
    assert factors == pytest.approx({"a": 0.4, "b": 0.6})
    assert sum(factors.values()) == 1.0
    thirds = distribution_factors([("x", 1.0), ("y", 1.0), ("z", 1.0)])
    assert sum(thirds.values()) == 1.0
    assert distribution_factors([]) == {}


def test_market_suspended_below_minimum_after_rejection_not_before_decisions() -> None:
    agg = _aggregation("a1", Service.WHOLESALE_ENERGY, min_kw=100)
    m1 = _member(agg, "d1", "t", 60, MemberStatus.PENDING)
    m2 = _member(agg, "d2", "t", 60, MemberStatus.PENDING)
    agg.refresh_market_status()
    assert agg.markets[0].status is MarketStatus.UNDER_REVIEW
    m1.status = MemberStatus.APPROVED
    m2.status = MemberStatus.APPROVED
    assert agg.refresh_market_status() == [agg.markets[0]]
    assert agg.markets[0].status is MarketStatus.ACTIVE
    m2.status = MemberStatus.REJECTED
    agg.refresh_market_status()
    assert agg.markets[0].status is MarketStatus.SUSPENDED
    assert len(agg.members) == 2  # suspended, nothing deleted


def test_double_enrolment_names_the_conflicting_aggregation() -> None:
    first = _aggregation("first", Service.WHOLESALE_ENERGY, Service.OPERATING_RESERVE)
    held = _member(first, "d1", "t", 10, start=T0, end=T0 + timedelta(days=30))
    with pytest.raises(ConflictError) as caught:
        check_double_enrolment(frozenset({Service.OPERATING_RESERVE}), T0 + timedelta(days=10), None, [(first, held)])
    assert caught.value.code == "aggregation.double_enrolment"
    assert caught.value.details["conflicting_aggregation_id"] == "first"


def test_no_double_enrolment_for_other_service_or_later_period_or_dead_membership() -> None:
    first = _aggregation("first", Service.WHOLESALE_ENERGY)
    held = _member(first, "d1", "t", 10, start=T0, end=T0 + timedelta(days=30))
    check_double_enrolment(frozenset({Service.DISTRIBUTION_SERVICES}), T0, None, [(first, held)])
    check_double_enrolment(frozenset({Service.WHOLESALE_ENERGY}), T0 + timedelta(days=30), None, [(first, held)])
    held.status = MemberStatus.REJECTED
    check_double_enrolment(frozenset({Service.WHOLESALE_ENERGY}), T0, None, [(first, held)])


def test_periods_overlap_half_open() -> None:
    day = timedelta(days=1)
    assert periods_overlap(T0, T0 + day, T0, None)
    assert not periods_overlap(T0, T0 + day, T0 + day, None)
    assert periods_overlap(T0, None, T0 + 5 * day, T0 + 6 * day)


def test_review_overdue_only_while_pending() -> None:
    agg = _aggregation("a", Service.WHOLESALE_ENERGY)
    member = _member(agg, "d", "t", 5, MemberStatus.PENDING)
    assert not member.overdue(T0 + timedelta(days=59))
    assert member.overdue(T0 + timedelta(days=61))
    member.status = MemberStatus.APPROVED
    assert not member.overdue(T0 + timedelta(days=61))
