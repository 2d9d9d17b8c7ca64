"""DERs: interconnection requests, LDC technical review and the rest of the lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, Strict, paging
from gridbridge.domain.der import Der, DerSpec, MeterPosition, ReviewDecision, Technology
from gridbridge.domain.lifecycle import DerStatus, allowed_actions
from gridbridge.domain.offers import Product
from gridbridge.services import ders as service
from gridbridge.services.context import Context
from gridbridge.services.ports import Page

router = APIRouter(tags=["ders"])
DerId = Annotated[str, Path(max_length=64)]


class DerIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    technology: Technology
    p_export_kw: float = Field(ge=0, description="Maximum injection into the grid, kW")
    p_import_kw: float = Field(ge=0, description="Maximum withdrawal from the grid, kW")
    e_kwh: float | None = Field(default=None, gt=0, description="Usable energy, storage and EV charging only")
    ramp_kw_per_min: float | None = Field(default=None, gt=0)
    round_trip_efficiency: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Storage: energy out over energy in (default: GRIDBRIDGE_STORAGE_ROUND_TRIP_EFFICIENCY)",
    )
    meter_position: MeterPosition = MeterPosition.BEHIND_THE_METER
    connection_point_id: int = Field(ge=1)
    ldc_id: str | None = Field(default=None, description="The LDC the request is addressed to (checked)")
    owner_id: str | None = Field(default=None, description="Aggregators filing for a DER owner they represent")


class ReviewIn(Strict):
    decision: ReviewDecision
    reason: str = Field(min_length=1, max_length=4000)
    attachments: list[str] = Field(default_factory=list, max_length=50)
    export_limit_kw: float | None = Field(default=None, ge=0)
    import_limit_kw: float | None = Field(default=None, ge=0)


class MarketProductsIn(Strict):
    products: list[Product] = Field(
        max_length=len(Product),
        description="The wholesale products the DER offers on its own (energy, operating_reserve); [] for none",
    )


class ReviewOut(Out):
    decision: ReviewDecision
    reason: str
    attachments: list[str]
    decided_at: datetime
    hosting_capacity_kw: float | None


class DerOut(Out):
    id: str
    name: str
    technology: Technology
    p_export_kw: float
    p_import_kw: float
    e_kwh: float | None
    ramp_kw_per_min: float | None
    round_trip_efficiency: float | None
    meter_position: MeterPosition
    owner_id: str
    representative_id: str | None
    connection_point_id: int
    tdi_id: str
    dso_id: str
    dso_affiliated: bool
    status: DerStatus
    allowed_actions: list[str]
    export_limit_kw: float | None
    import_limit_kw: float | None
    market_products: list[Product]
    requested_at: datetime
    review_due_at: datetime
    review_overdue: bool
    reviews: list[ReviewOut]


def render_der(ctx: Context, der: Der) -> DerOut:
    """A DER as the API shows it, with the moves its state allows and its review deadline."""
    now = ctx.clock.now()
    overdue = der.status in (DerStatus.REQUESTED, DerStatus.UNDER_REVIEW) and now > der.review_due_at
    return DerOut(
        id=der.id,
        name=der.name,
        technology=der.technology,
        p_export_kw=der.p_export_kw,
        p_import_kw=der.p_import_kw,
        e_kwh=der.e_kwh,
        ramp_kw_per_min=der.ramp_kw_per_min,
        round_trip_efficiency=der.round_trip_efficiency,
        meter_position=der.meter_position,
        owner_id=der.owner_id,
        representative_id=der.representative_id,
        connection_point_id=der.connection_point_id,
        tdi_id=der.tdi_id,
        dso_id=der.dso_id,
        dso_affiliated=der.dso_affiliated,
        status=der.status,
        allowed_actions=[a.value for a in allowed_actions(der.status)],
        export_limit_kw=der.export_limit_kw,
        import_limit_kw=der.import_limit_kw,
        market_products=sorted(der.market_products),
        requested_at=der.requested_at,
        review_due_at=der.review_due_at,
        review_overdue=overdue,
        reviews=[ReviewOut.model_validate(r) for r in der.reviews],
    )


@router.post("/ders", response_model=DerOut, status_code=201, summary="File an interconnection request")
def request_interconnection(body: DerIn, commands: CommandsDep) -> JSONResponse:
    """A DER owner, aggregator or LDC files an interconnection request at a connection point."""
    spec = DerSpec(
        body.name,
        body.technology,
        body.p_export_kw,
        body.p_import_kw,
        body.e_kwh,
        body.ramp_kw_per_min,
        body.meter_position,
        body.round_trip_efficiency,
    )
    return commands.run(
        lambda ctx: render_der(
            ctx,
            service.request_interconnection(
                ctx, spec, body.connection_point_id, ldc_id=body.ldc_id, owner_id=body.owner_id
            ),
        ),
        lambda out: out,
        payload=body,
        status_code=201,
    )


@router.get("/ders", response_model=list[DerOut], summary="List the DERs the caller may see")
def list_ders(
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    tdi_id: Annotated[str | None, Query(max_length=64)] = None,
    status: DerStatus | None = None,
) -> list[DerOut]:
    """DERs visible to the caller: an LDC its territory, an aggregator its own, the TSO per coordination model."""
    result: list[DerOut] = commands.query(
        lambda ctx: [render_der(ctx, d) for d in service.list_ders(ctx, page, tdi_id=tdi_id, status=status)],
        lambda x: x,
    )
    return result


@router.get("/ders/{der_id}", response_model=DerOut, summary="Get a DER")
def get_der(der_id: DerId, commands: CommandsDep) -> DerOut:
    """One DER the caller may see (404 otherwise, exactly as for a missing one)."""
    result: DerOut = commands.query(lambda ctx: render_der(ctx, service.get_der(ctx, der_id)), lambda x: x)
    return result


@router.post("/ders/{der_id}/review/start", response_model=DerOut, summary="Open the technical review (LDC)")
def start_review(der_id: DerId, commands: CommandsDep) -> JSONResponse:
    """The DER's LDC opens its technical review."""
    return commands.run(lambda ctx: render_der(ctx, service.start_review(ctx, der_id)), lambda out: out)


@router.post("/ders/{der_id}/review/decision", response_model=DerOut, summary="Decide the review (LDC)")
def decide_review(der_id: DerId, body: ReviewIn, commands: CommandsDep) -> JSONResponse:
    """Approve with static limits, or reject; either way with a reason and optional attachments."""
    return commands.run(
        lambda ctx: render_der(
            ctx,
            service.decide_review(
                ctx,
                der_id,
                body.decision,
                body.reason,
                attachments=body.attachments,
                export_limit_kw=body.export_limit_kw,
                import_limit_kw=body.import_limit_kw,
            ),
        ),
        lambda out: out,
        payload=body,
    )


@router.post("/ders/{der_id}/commission", response_model=DerOut, summary="Record the DER in service (LDC)")
def commission(der_id: DerId, commands: CommandsDep) -> JSONResponse:
    """The LDC records that an approved DER is connected."""
    return commands.run(lambda ctx: render_der(ctx, service.commission(ctx, der_id)), lambda out: out)


@router.post("/ders/{der_id}/suspend", response_model=DerOut, summary="Suspend the DER (LDC)")
def suspend(der_id: DerId, commands: CommandsDep) -> JSONResponse:
    """The LDC suspends the DER."""
    return commands.run(lambda ctx: render_der(ctx, service.suspend(ctx, der_id)), lambda out: out)


@router.post("/ders/{der_id}/resume", response_model=DerOut, summary="Lift a suspension (LDC)")
def resume(der_id: DerId, commands: CommandsDep) -> JSONResponse:
    """The LDC lifts a suspension."""
    return commands.run(lambda ctx: render_der(ctx, service.resume(ctx, der_id)), lambda out: out)


@router.post("/ders/{der_id}/retire", response_model=DerOut, summary="Withdraw or decommission the DER")
def retire(der_id: DerId, commands: CommandsDep) -> JSONResponse:
    """The owner, its representative or the LDC retires the DER."""
    return commands.run(lambda ctx: render_der(ctx, service.retire(ctx, der_id)), lambda out: out)


@router.put(
    "/ders/{der_id}/market-products",
    response_model=DerOut,
    summary="Register the market products the DER offers on its own (owner or representative)",
)
def register_market_products(der_id: DerId, body: MarketProductsIn, commands: CommandsDep) -> JSONResponse:
    """The DER's owner or representative sets the wholesale products it offers on its own, each one its
    technology can provide (``der.product_not_capable``)."""
    return commands.run(
        lambda ctx: render_der(ctx, service.register_market_products(ctx, der_id, body.products)),
        lambda out: out,
        payload=body,
    )
