"""Aggregations (DERAs): registration, membership requests, LDC review of every member, disputes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridbridge.domain.aggregation import (
    ALREADY_MEMBER,
    DER_NOT_OPERATING,
    DISPUTE_NEEDS_REJECTION,
    MEMBER_NOT_PENDING,
    SINGLE_TDI_VIOLATED,
    Aggregation,
    AggregationMarket,
    AggregationMember,
    MemberStatus,
    RejectionCategory,
    check_double_enrolment,
    check_period,
    validate_markets,
)
from gridbridge.domain.der import Der, ReviewDecision, require_reason
from gridbridge.domain.errors import (
    ConflictError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    register_code,
)
from gridbridge.domain.lifecycle import DerAction, DerStatus
from gridbridge.domain.permissions import WHOLESALE_SERVICES, Action, is_system, require_action
from gridbridge.domain.roles import Role, Service
from gridbridge.domain.validation import require_name
from gridbridge.services.context import Context
from gridbridge.services.ders import get_der
from gridbridge.services.ports import Page
from gridbridge.services.scopes import aggregations_visible_to
from gridbridge.services.tdis import model_in_force

NAME_TAKEN = register_code("aggregation.name_taken", 409, "The aggregator already has an aggregation of that name")
MODEL_FORBIDS = register_code(
    "aggregation.model_forbids_aggregator",
    409,
    "The T-D interface's coordination model does not let this role aggregate DERs there",
)
REJECTION_CATEGORY_REQUIRED = register_code(
    "aggregation.rejection_category_required",
    422,
    "A rejection must state a reliability or safety category and a reason",
)
NOT_MEMBER_LDC = register_code(
    "aggregation.not_member_ldc", 403, "Only the LDC whose territory holds the member DER may review it"
)
EMPTY_REQUEST = register_code("aggregation.no_members", 422, "A membership request needs at least one DER")


@dataclass(frozen=True)
class AggregationView:
    """An aggregation with only the members the caller may see."""

    aggregation: Aggregation
    members: list[AggregationMember]
    distribution_factors: dict[str, float]
    overdue_member_ids: list[str]


def create_aggregation(
    ctx: Context, name: str, services: Mapping[Service, float | None], *, multi_tdi: bool = False
) -> Aggregation:
    """Register an aggregation of the caller's, for services with optional minimum sizes (default setting)."""
    require_action(ctx.caller, Action.AGGREGATION_CREATE)
    name = require_name(name, "name")
    sizes = validate_markets(
        {s: (v if v is not None else ctx.settings.aggregation_min_size_kw) for s, v in services.items()}
    )
    aggregator_id = ctx.caller.participant_id
    if ctx.uow.aggregations.by_name(aggregator_id, name) is not None:
        raise ConflictError(f"aggregation {name!r} exists", field="name", code=NAME_TAKEN)
    aggregation = Aggregation(
        id=ctx.new_id(),
        name=name,
        aggregator_id=aggregator_id,
        multi_tdi=multi_tdi,
        created_at=ctx.clock.now(),
    )
    for service in sorted(sizes):
        aggregation.markets.append(
            AggregationMarket(
                id=ctx.new_id(), aggregation_id=aggregation.id, service=service, min_size_kw=sizes[service]
            )
        )
    ctx.uow.aggregations.add(aggregation)
    ctx.audit("aggregation.create", "aggregation", aggregation.id, None, aggregation.snapshot())
    return aggregation


def _visible_aggregation(ctx: Context, aggregation_id: str) -> Aggregation:
    aggregation = ctx.uow.aggregations.get(aggregation_id)
    if aggregation is None or not aggregations_visible_to(ctx).allows(aggregation):
        raise NotFound(f"no aggregation {aggregation_id}", field="aggregation_id")
    return aggregation


def _own_aggregation(ctx: Context, aggregation_id: str, action: Action) -> Aggregation:
    require_action(ctx.caller, action)
    aggregation = _visible_aggregation(ctx, aggregation_id)
    if not is_system(ctx.caller) and aggregation.aggregator_id != ctx.caller.participant_id:
        raise PermissionDenied("only the aggregation's aggregator may do this", field="aggregation_id")
    return aggregation


def view(ctx: Context, aggregation: Aggregation) -> AggregationView:
    """What the caller may see of an aggregation it may see."""
    scope = aggregations_visible_to(ctx)
    now = ctx.clock.now()
    members = [
        m
        for m in aggregation.members
        if scope.allows_member(aggregation, m, ctx.uow.ders.get(m.der_id) if scope.der_scope else None)
    ]
    # an LDC sees its own members only; the spread of capacity over other LDCs' territories is not its business
    factors = aggregation.distribution_factors() if scope.shows_distribution_factors(aggregation) else {}
    return AggregationView(aggregation, members, factors, [m.id for m in members if m.overdue(now)])


def get_aggregation(ctx: Context, aggregation_id: str) -> AggregationView:
    """An aggregation the caller may see, with the members it may see; otherwise ``not_found``."""
    return view(ctx, _visible_aggregation(ctx, aggregation_id))


def list_aggregations(ctx: Context, page: Page) -> list[AggregationView]:
    """Aggregations the caller may see."""
    return [view(ctx, a) for a in ctx.uow.aggregations.query(aggregations_visible_to(ctx), page)]


def _check_member_der(ctx: Context, aggregation: Aggregation, der: Der) -> None:
    # visibility already limits an aggregator to DERs it owns or represents, and an LDC to its territory
    caller = ctx.caller
    if not is_system(caller):
        model = model_in_force(ctx.uow, der.tdi_id, ctx.clock.now())
        if not model.may_aggregate(caller.role):
            raise ConflictError(
                f"under {model.name.value} at this interface a {caller.role.value} may not aggregate",
                field="der_ids",
                code=MODEL_FORBIDS,
            )
    if der.status not in (DerStatus.IN_SERVICE, DerStatus.ENROLLED):
        raise ConflictError(
            f"DER {der.id} is {der.status.value}; it must be in service or enrolled",
            field="der_ids",
            code=DER_NOT_OPERATING,
            details={"der_id": der.id, "current_state": der.status.value},
        )
    if any(m.der_id == der.id and m.is_live() for m in aggregation.members):
        raise ConflictError(f"DER {der.id} is already a member", field="der_ids", code=ALREADY_MEMBER)


def request_members(
    ctx: Context,
    aggregation_id: str,
    der_ids: Sequence[str],
    valid_from: datetime,
    valid_to: datetime | None = None,
) -> list[AggregationMember]:
    """Ask to add DERs to an aggregation over a period; each membership waits for its LDC's review.

    All or nothing: one DER that may not join (not visible, not represented, not operating, in another
    interface of a single-interface aggregation, or enrolled elsewhere for the same service in an overlapping
    period) refuses the whole request.
    """
    aggregation = _own_aggregation(ctx, aggregation_id, Action.AGGREGATION_MEMBERSHIP)
    if not der_ids:
        raise ValidationFailed("der_ids is empty", field="der_ids", code=EMPTY_REQUEST)
    check_period(valid_from, valid_to)
    now = ctx.clock.now()
    tdis = {m.tdi_id for m in aggregation.members if m.is_live()}
    created = []
    for der_id in dict.fromkeys(der_ids):
        der = get_der(ctx, der_id)
        _check_member_der(ctx, aggregation, der)
        others = [(a, m) for a, m in ctx.uow.aggregations.memberships_of(der.id) if a.id != aggregation.id]
        check_double_enrolment(aggregation.services, valid_from, valid_to, others)
        tdis.add(der.tdi_id)
        if not aggregation.multi_tdi and len(tdis) > 1:
            raise ValidationFailed(
                "a single-interface aggregation cannot span several T-D interfaces",
                field="der_ids",
                code=SINGLE_TDI_VIOLATED,
            )
        member = AggregationMember(
            id=ctx.new_id(),
            aggregation_id=aggregation.id,
            der_id=der.id,
            tdi_id=der.tdi_id,
            dso_id=der.dso_id,
            capacity_kw=der.capacity_kw,
            valid_from=valid_from,
            valid_to=valid_to,
            status=MemberStatus.PENDING,
            requested_at=now,
            review_due_at=now + timedelta(days=ctx.settings.member_review_days),
        )
        aggregation.members.append(member)
        created.append(member)
        ctx.audit("aggregation.member_request", "aggregation_member", member.id, None, member.snapshot())
    return created


def _member(ctx: Context, aggregation: Aggregation, member_id: str) -> AggregationMember:
    """A member of ``aggregation`` that the caller may see; a hidden member is reported like a missing one."""
    for member in view(ctx, aggregation).members:
        if member.id == member_id:
            return member
    raise NotFound(f"no member {member_id}", field="member_id")


def _refresh(ctx: Context, aggregation: Aggregation) -> None:
    before = aggregation.snapshot()
    if aggregation.refresh_market_status():
        ctx.audit("aggregation.market_status", "aggregation", aggregation.id, before, aggregation.snapshot())


def _sync_der_enrolment(ctx: Context, der: Der) -> None:
    """Keep a DER's lifecycle and TSO visibility in step with its approved memberships."""
    memberships = [(a, m) for a, m in ctx.uow.aggregations.memberships_of(der.id) if m.status is MemberStatus.APPROVED]
    before = der.snapshot()
    now = ctx.clock.now()
    if memberships and der.status is DerStatus.IN_SERVICE:
        der.move(DerAction.ENROL, now)
    elif not memberships and der.status is DerStatus.ENROLLED:
        der.move(DerAction.UNENROL, now)
    participants = ctx.uow.participants
    der.market_participating = any(
        (a.services & WHOLESALE_SERVICES)
        and (p := participants.get(a.aggregator_id)) is not None
        and p.role is Role.AGGREGATOR
        for a, _ in memberships
    )
    if der.snapshot() != before:
        ctx.audit("der.enrolment", "der", der.id, before, der.snapshot())


def review_member(
    ctx: Context,
    aggregation_id: str,
    member_id: str,
    decision: ReviewDecision,
    reason: str | None = None,
    category: RejectionCategory | None = None,
) -> AggregationMember:
    """The member DER's LDC approves or rejects one membership; a rejection needs a reliability or safety
    category and a reason. The aggregation's market standing is re-derived (suspended below its minimum)."""
    require_action(ctx.caller, Action.MEMBER_REVIEW)
    aggregation = _visible_aggregation(ctx, aggregation_id)
    member = _member(ctx, aggregation, member_id)
    if not is_system(ctx.caller) and member.dso_id != ctx.caller.participant_id:
        raise PermissionDenied("only the member DER's LDC may review it", field="member_id", code=NOT_MEMBER_LDC)
    if member.status is not MemberStatus.PENDING:
        raise ConflictError(
            f"membership is {member.status.value}, not pending",
            field="member_id",
            code=MEMBER_NOT_PENDING,
            details={"current_state": member.status.value},
        )
    before = member.snapshot()
    if decision is ReviewDecision.REJECTED:
        if category is None:
            raise ValidationFailed(
                "a rejection needs category reliability or safety",
                field="category",
                code=REJECTION_CATEGORY_REQUIRED,
            )
        member.reason = require_reason(reason)
        member.rejection_category = category
        member.status = MemberStatus.REJECTED
    else:
        member.reason = reason.strip() if reason else None
        member.status = MemberStatus.APPROVED
    member.decided_at = ctx.clock.now()
    member.decided_by = ctx.caller.user_id
    ctx.audit(f"aggregation.member_{decision.value}", "aggregation_member", member.id, before, member.snapshot())
    ctx.uow.flush()
    der = ctx.uow.ders.get(member.der_id)
    if der is not None:
        _sync_der_enrolment(ctx, der)
    _refresh(ctx, aggregation)
    return member


def dispute_rejection(ctx: Context, aggregation_id: str, member_id: str, statement: str) -> AggregationMember:
    """The aggregator records a dispute against an LDC's rejection of a member."""
    aggregation = _own_aggregation(ctx, aggregation_id, Action.MEMBER_DISPUTE)
    member = _member(ctx, aggregation, member_id)
    if member.status is not MemberStatus.REJECTED:
        raise ConflictError(
            "only a rejected membership can be disputed",
            field="member_id",
            code=DISPUTE_NEEDS_REJECTION,
            details={"current_state": member.status.value},
        )
    before = member.snapshot()
    member.dispute = require_reason(statement, "statement")
    member.disputed_at = ctx.clock.now()
    ctx.audit("aggregation.member_dispute", "aggregation_member", member.id, before, member.snapshot())
    return member


def withdraw_member(ctx: Context, aggregation_id: str, member_id: str) -> AggregationMember:
    """The aggregator takes a DER out of an aggregation (pending or approved)."""
    aggregation = _own_aggregation(ctx, aggregation_id, Action.AGGREGATION_MEMBERSHIP)
    member = _member(ctx, aggregation, member_id)
    if not member.is_live():
        raise ConflictError(
            f"membership is {member.status.value}",
            field="member_id",
            code=MEMBER_NOT_PENDING,
            details={"current_state": member.status.value},
        )
    before = member.snapshot()
    member.status = MemberStatus.WITHDRAWN
    ctx.audit("aggregation.member_withdraw", "aggregation_member", member.id, before, member.snapshot())
    ctx.uow.flush()
    der = ctx.uow.ders.get(member.der_id)
    if der is not None:
        _sync_der_enrolment(ctx, der)
    _refresh(ctx, aggregation)
    return member
