"""DER aggregations (DERAs): membership review by the LDC, markets, distribution factors, double enrolment."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gridbridge.domain.errors import ConflictError, ValidationFailed, register_code
from gridbridge.domain.roles import Service
from gridbridge.domain.validation import require_positive

DOUBLE_ENROLMENT = register_code(
    "aggregation.double_enrolment",
    409,
    "The DER is already in another aggregation offering the same service in an overlapping period",
)
SINGLE_TDI_VIOLATED = register_code(
    "aggregation.single_tdi_violated",
    422,
    "A single-interface aggregation may only hold DERs under one T-D interface",
)
NO_SERVICES = register_code("aggregation.no_services", 422, "An aggregation must register for at least one service")
BAD_PERIOD = register_code("aggregation.bad_period", 422, "An enrolment period must end after it starts")
MEMBER_NOT_PENDING = register_code(
    "aggregation.member_not_pending", 409, "Only a pending membership can be approved or rejected"
)
DISPUTE_NEEDS_REJECTION = register_code(
    "aggregation.dispute_needs_rejection", 409, "A dispute can only be recorded against a rejected membership"
)
ALREADY_MEMBER = register_code("aggregation.already_member", 409, "The DER is already a member of this aggregation")
DER_NOT_OPERATING = register_code(
    "aggregation.der_not_operating", 409, "Only DERs in service or enrolled can join an aggregation"
)

DEFAULT_MIN_SIZE_KW = 100.0
DEFAULT_REVIEW_DAYS = 60


class MemberStatus(StrEnum):
    """State of one DER's membership in an aggregation."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class RejectionCategory(StrEnum):
    """The only grounds on which an LDC may reject a member (reliability or safety)."""

    RELIABILITY = "reliability"
    SAFETY = "safety"


class MarketStatus(StrEnum):
    """An aggregation's standing in one market."""

    UNDER_REVIEW = "under_review"
    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(eq=False)
class AggregationMarket:
    """An aggregation's registration for one service, with its minimum size."""

    id: str
    aggregation_id: str
    service: Service
    min_size_kw: float
    status: MarketStatus = MarketStatus.UNDER_REVIEW


@dataclass(eq=False)
class AggregationMember:
    """One DER's membership in an aggregation over a period, as reviewed by the DER's LDC."""

    id: str
    aggregation_id: str
    der_id: str
    tdi_id: str
    dso_id: str
    capacity_kw: float
    valid_from: datetime
    valid_to: datetime | None
    status: MemberStatus
    requested_at: datetime
    review_due_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    rejection_category: RejectionCategory | None = None
    reason: str | None = None
    dispute: str | None = None
    disputed_at: datetime | None = None

    def overdue(self, now: datetime) -> bool:
        """True when the LDC's review is still pending after its deadline."""
        return self.status is MemberStatus.PENDING and now > self.review_due_at

    def is_live(self) -> bool:
        """True for memberships that count towards double enrolment (pending or approved)."""
        return self.status in (MemberStatus.PENDING, MemberStatus.APPROVED)

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "aggregation_id": self.aggregation_id,
            "der_id": self.der_id,
            "status": self.status.value,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "rejection_category": self.rejection_category.value if self.rejection_category else None,
            "reason": self.reason,
            "dispute": self.dispute,
        }


@dataclass(eq=False)
class Aggregation:
    """An aggregator's virtual resource: members, markets, single or multiple T-D interfaces."""

    id: str
    name: str
    aggregator_id: str
    multi_tdi: bool
    created_at: datetime
    markets: list[AggregationMarket] = field(default_factory=list)
    members: list[AggregationMember] = field(default_factory=list)

    @property
    def services(self) -> frozenset[Service]:
        """The services this aggregation is registered for."""
        return frozenset(m.service for m in self.markets)

    def approved_members(self) -> list[AggregationMember]:
        """Members the LDCs approved."""
        return [m for m in self.members if m.status is MemberStatus.APPROVED]

    def approved_capacity_kw(self) -> float:
        """Sum of the capacities of approved members."""
        return sum(m.capacity_kw for m in self.approved_members())

    def distribution_factors(self) -> dict[str, float]:
        """Share of approved capacity under each T-D interface (sums to 1; empty without approved members)."""
        return distribution_factors((m.tdi_id, m.capacity_kw) for m in self.approved_members())

    def refresh_market_status(self) -> list[AggregationMarket]:
        """Re-derive each market's status from approved capacity; return the markets whose status changed.

        A market with no decided member yet stays under review; one whose approved capacity reaches its minimum
        is active; one that falls (or stays) below its minimum after decisions is suspended, never deleted.
        """
        decided = any(m.status in (MemberStatus.APPROVED, MemberStatus.REJECTED) for m in self.members)
        capacity = self.approved_capacity_kw()
        changed = []
        for market in self.markets:
            if capacity >= market.min_size_kw and capacity > 0:
                status = MarketStatus.ACTIVE
            elif decided:
                status = MarketStatus.SUSPENDED
            else:
                status = MarketStatus.UNDER_REVIEW
            if status is not market.status:
                market.status = status
                changed.append(market)
        return changed

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "id": self.id,
            "name": self.name,
            "aggregator_id": self.aggregator_id,
            "multi_tdi": self.multi_tdi,
            "markets": {
                m.service.value: {"min_size_kw": m.min_size_kw, "status": m.status.value} for m in self.markets
            },
        }


def distribution_factors(capacity_by_tdi: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Normalise capacities per T-D interface into factors that sum to 1 (sorted by interface id)."""
    totals: dict[str, float] = defaultdict(float)
    for tdi_id, capacity in capacity_by_tdi:
        totals[tdi_id] += capacity
    grand = sum(totals.values())
    if grand <= 0:
        return {}
    keys = sorted(totals)
    factors = {k: totals[k] / grand for k in keys}
    # make the sum exactly 1 despite rounding: give the residue to the largest share
    largest = max(keys, key=lambda k: factors[k])
    factors[largest] += 1.0 - sum(factors.values())
    return factors


def validate_markets(min_size_by_service: Mapping[Service, float]) -> dict[Service, float]:
    """Check an aggregation's market registrations: at least one, each minimum size positive."""
    if not min_size_by_service:
        raise ValidationFailed("register for at least one service", field="services", code=NO_SERVICES)
    return {s: require_positive(v, f"min_size_kw.{s.value}") for s, v in min_size_by_service.items()}


def periods_overlap(a_from: datetime, a_to: datetime | None, b_from: datetime, b_to: datetime | None) -> bool:
    """True when the half-open periods [a_from, a_to) and [b_from, b_to) share an instant (None = open end)."""
    return (b_to is None or a_from < b_to) and (a_to is None or b_from < a_to)


def check_period(valid_from: datetime, valid_to: datetime | None) -> None:
    """Refuse an enrolment period that does not end after it starts."""
    if valid_to is not None and valid_to <= valid_from:
        raise ValidationFailed("valid_to must be after valid_from", field="valid_to", code=BAD_PERIOD)


def check_double_enrolment(
    services: frozenset[Service],
    valid_from: datetime,
    valid_to: datetime | None,
    others: Iterable[tuple[Aggregation, AggregationMember]],
) -> None:
    """Refuse an enrolment when a live membership of the same DER elsewhere offers a shared service in an
    overlapping period; the error names the conflicting aggregation."""
    for other, membership in others:
        if not membership.is_live():
            continue
        shared = services & other.services
        if shared and periods_overlap(valid_from, valid_to, membership.valid_from, membership.valid_to):
            names = ", ".join(sorted(s.value for s in shared))
            raise ConflictError(
                f"DER {membership.der_id} is already in aggregation {other.name!r} ({other.id}) for {names} "
                "in an overlapping period",
                code=DOUBLE_ENROLMENT,
                field="der_id",
                details={
                    "conflicting_aggregation_id": other.id,
                    "conflicting_aggregation_name": other.name,
                    "services": sorted(s.value for s in shared),
                },
            )
