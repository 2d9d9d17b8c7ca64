"""Aggregations: registration, membership requests, LDC member review and disputes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, Strict, paging
from gridbridge.domain.aggregation import MarketStatus, MemberStatus, RejectionCategory
from gridbridge.domain.der import ReviewDecision
from gridbridge.domain.roles import Service
from gridbridge.services import aggregations as service
from gridbridge.services.aggregations import AggregationView
from gridbridge.services.context import Context
from gridbridge.services.ports import Page

router = APIRouter(tags=["aggregations"])
AggId = Annotated[str, Path(max_length=64)]
MemberId = Annotated[str, Path(max_length=64)]


class MarketIn(Strict):
    service: Service
    min_size_kw: float | None = Field(default=None, gt=0, description="Default: the server's setting (100 kW)")


class AggregationIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    markets: list[MarketIn] = Field(min_length=1, max_length=3)
    multi_tdi: bool = False


class MembersIn(Strict):
    der_ids: list[str] = Field(min_length=1, max_length=10_000)
    valid_from: AwareDatetime
    valid_to: AwareDatetime | None = None


class MemberReviewIn(Strict):
    decision: ReviewDecision
    category: RejectionCategory | None = None
    reason: str | None = Field(default=None, max_length=4000)


class DisputeIn(Strict):
    statement: str = Field(min_length=1, max_length=4000)


class MarketOut(Out):
    service: Service
    min_size_kw: float
    status: MarketStatus


class MemberOut(Out):
    id: str
    der_id: str
    tdi_id: str
    capacity_kw: float
    valid_from: datetime
    valid_to: datetime | None
    status: MemberStatus
    review_due_at: datetime
    decided_at: datetime | None
    rejection_category: RejectionCategory | None
    reason: str | None
    dispute: str | None


class AggregationOut(Out):
    id: str
    name: str
    aggregator_id: str
    multi_tdi: bool
    markets: list[MarketOut]
    members: list[MemberOut]
    approved_capacity_kw: float
    distribution_factors: dict[str, float]
    overdue_member_ids: list[str]


def render(view: AggregationView) -> AggregationOut:
    """An aggregation with only the members the caller may see."""
    agg = view.aggregation
    return AggregationOut(
        id=agg.id,
        name=agg.name,
        aggregator_id=agg.aggregator_id,
        multi_tdi=agg.multi_tdi,
        markets=[MarketOut.model_validate(m) for m in agg.markets],
        members=[MemberOut.model_validate(m) for m in view.members],
        approved_capacity_kw=sum(m.capacity_kw for m in view.members if m.status is MemberStatus.APPROVED),
        distribution_factors=view.distribution_factors,
        overdue_member_ids=view.overdue_member_ids,
    )


@router.post("/aggregations", response_model=AggregationOut, status_code=201, summary="Register an aggregation")
def create(body: AggregationIn, commands: CommandsDep) -> JSONResponse:
    """An aggregator (or a DSO where its model allows) registers an aggregation for one or more services."""

    def use_case(ctx: Context) -> AggregationOut:
        agg = service.create_aggregation(
            ctx, body.name, {m.service: m.min_size_kw for m in body.markets}, multi_tdi=body.multi_tdi
        )
        ctx.uow.flush()
        return render(service.view(ctx, agg))

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)


@router.get("/aggregations", response_model=list[AggregationOut], summary="List aggregations the caller may see")
def list_all(commands: CommandsDep, page: Annotated[Page, Depends(paging)]) -> list[AggregationOut]:
    """Aggregations visible to the caller, each with only the members it may see."""
    result: list[AggregationOut] = commands.query(
        lambda ctx: [render(v) for v in service.list_aggregations(ctx, page)], lambda x: x
    )
    return result


@router.get("/aggregations/{aggregation_id}", response_model=AggregationOut, summary="Get an aggregation")
def get_one(aggregation_id: AggId, commands: CommandsDep) -> AggregationOut:
    """One aggregation the caller may see."""
    result: AggregationOut = commands.query(
        lambda ctx: render(service.get_aggregation(ctx, aggregation_id)), lambda x: x
    )
    return result


@router.post(
    "/aggregations/{aggregation_id}/members",
    response_model=AggregationOut,
    status_code=201,
    summary="Ask to add DERs (each waits for its LDC's review)",
)
def add_members(aggregation_id: AggId, body: MembersIn, commands: CommandsDep) -> JSONResponse:
    """All or nothing: one DER that may not join refuses the whole request."""

    def use_case(ctx: Context) -> AggregationOut:
        service.request_members(ctx, aggregation_id, body.der_ids, body.valid_from, body.valid_to)
        ctx.uow.flush()
        return render(service.get_aggregation(ctx, aggregation_id))

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)


@router.post(
    "/aggregations/{aggregation_id}/members/{member_id}/review",
    response_model=AggregationOut,
    summary="Approve or reject a member (the member DER's LDC)",
)
def review_member(
    aggregation_id: AggId, member_id: MemberId, body: MemberReviewIn, commands: CommandsDep
) -> JSONResponse:
    """A rejection needs a reliability or safety category and a reason."""

    def use_case(ctx: Context) -> AggregationOut:
        service.review_member(ctx, aggregation_id, member_id, body.decision, body.reason, body.category)
        ctx.uow.flush()
        return render(service.get_aggregation(ctx, aggregation_id))

    return commands.run(use_case, lambda out: out, payload=body)


@router.post(
    "/aggregations/{aggregation_id}/members/{member_id}/dispute",
    response_model=AggregationOut,
    summary="Dispute a rejection (the aggregator)",
)
def dispute(aggregation_id: AggId, member_id: MemberId, body: DisputeIn, commands: CommandsDep) -> JSONResponse:
    """Record the aggregator's dispute against an LDC's rejection."""

    def use_case(ctx: Context) -> AggregationOut:
        service.dispute_rejection(ctx, aggregation_id, member_id, body.statement)
        return render(service.get_aggregation(ctx, aggregation_id))

    return commands.run(use_case, lambda out: out, payload=body)


@router.post(
    "/aggregations/{aggregation_id}/members/{member_id}/withdraw",
    response_model=AggregationOut,
    summary="Take a DER out of the aggregation (the aggregator)",
)
def withdraw(aggregation_id: AggId, member_id: MemberId, commands: CommandsDep) -> JSONResponse:
    """Withdraw a pending or approved member."""

    def use_case(ctx: Context) -> AggregationOut:
        service.withdraw_member(ctx, aggregation_id, member_id)
        ctx.uow.flush()
        return render(service.get_aggregation(ctx, aggregation_id))

    return commands.run(use_case, lambda out: out)
