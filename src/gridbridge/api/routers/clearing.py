"""Clearing runs: the TSO clears a market interval (with the distribution check) and issues its instructions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field, RootModel

from gridbridge.api.deps import CommandsDep
from gridbridge.api.routers.instructions import InstructionOut, render_instruction
from gridbridge.api.schemas import Out, Strict, paging
from gridbridge.domain.market import ClearingRun, InterfaceForecast, ResourceKind
from gridbridge.domain.offers import Market, Side
from gridbridge.services import clearing as service
from gridbridge.services import instructions as instruction_service
from gridbridge.services.context import Context
from gridbridge.services.offers import market_scope
from gridbridge.services.ports import Page

router = APIRouter(tags=["clearing"])
RunId = Annotated[str, Path(max_length=64)]


class ForecastIn(Strict):
    """The TSO's load forecast at one interface (an interface without one has no known load)."""

    tdi_id: str = Field(min_length=1, max_length=64)
    load_kw: float = Field(
        allow_inf_nan=False,
        description="Forecast load under the interface, net of DERs the platform does not schedule, kW",
    )


class RunIn(Strict):
    """What the TSO clears: a market interval and its requirement."""

    market: Market
    interval_start: AwareDatetime
    energy_requirement_kw: float = Field(allow_inf_nan=False, description="Energy the TSO procures, kW")
    reserve_requirement_kw: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    forecasts: list[ForecastIn] = Field(default_factory=list, max_length=10_000)


class InterfaceOut(Out):
    """One interface's prices, flows and checks in a run."""

    tdi_id: str
    model: str
    import_limit_kw: float
    export_limit_kw: float
    load_kw: float | None = Field(description="The TSO's load forecast; null where it gave none")
    der_schedule_kw: float = Field(description="Injection scheduled by instructions in force from outside the run")
    injection_kw: float
    net_flow_kw: float = Field(description="load - DER schedules - injection; partial (without load) if no forecast")
    net_flow_known: bool
    reverse_flow: bool
    energy_price_cad_per_mwh: Decimal | None
    reserve_price_cad_per_mwh: Decimal | None
    congestion_cad_per_mwh: Decimal | None
    shortfall_kw: float
    redispatched_kw: float


class ResourceOut(Out):
    """One resource's dispatch and price in a run."""

    resource_kind: ResourceKind
    resource_id: str
    side: Side
    energy_offer_id: str | None
    reserve_offer_id: str | None
    tdi_id: str | None
    party_id: str
    first_p_kw: float
    p_kw: float
    reserve_kw: float
    price_cad_per_mwh: Decimal | None


class CurtailmentOut(Out):
    """A resource's dispatch at one interface cut by the distribution check, with its reason."""

    resource_kind: ResourceKind
    resource_id: str
    der_id: str | None = Field(description="The DER curtailed (null for an aggregation or a DSO's virtual resource)")
    tdi_id: str
    dispatched_kw: float
    allowed_kw: float
    curtailed_kw: float
    checked_by: str
    reason: str


class RunOut(Out):
    """A clearing run."""

    id: str
    market: Market
    interval_start: datetime
    energy_requirement_kw: float
    reserve_requirement_kw: float
    cost_cad_per_h: Decimal
    system_energy_price_cad_per_mwh: Decimal | None
    system_reserve_price_cad_per_mwh: Decimal | None
    energy_shortage_kw: float
    reserve_shortage_kw: float
    method: str
    redispatch_rounds: int
    inputs_digest: str
    created_at: datetime
    dispatched_at: datetime | None
    interfaces: list[InterfaceOut]
    resources: list[ResourceOut]
    curtailments: list[CurtailmentOut]


InstructionList = RootModel[list[InstructionOut]]


def render_run(ctx: Context, run: ClearingRun) -> RunOut:
    """A run with every interface's prices and flows, and the resource results the caller may see."""
    resources = service.visible_resources(ctx, run)
    scope = market_scope(ctx)
    own = {(r.resource_kind, r.resource_id) for r in resources}
    dso_tdis = {f.tdi_id for f in run.interfaces} if scope.everything or scope.tso else set()
    if scope.dso:
        dso_tdis = {r.tdi_id for r in run.resources if r.dso_id == scope.participant_id and r.tdi_id}
    return RunOut(
        id=run.id,
        market=run.market,
        interval_start=run.interval_start,
        energy_requirement_kw=run.energy_requirement_kw,
        reserve_requirement_kw=run.reserve_requirement_kw,
        cost_cad_per_h=run.cost_cad_per_h,
        system_energy_price_cad_per_mwh=run.system_energy_price_cad_per_mwh,
        system_reserve_price_cad_per_mwh=run.system_reserve_price_cad_per_mwh,
        energy_shortage_kw=run.energy_shortage_kw,
        reserve_shortage_kw=run.reserve_shortage_kw,
        method=run.method,
        redispatch_rounds=run.redispatch_rounds,
        inputs_digest=run.inputs_digest,
        created_at=run.created_at,
        dispatched_at=run.dispatched_at,
        interfaces=[
            InterfaceOut(**{**i.__dict__, "net_flow_known": i.net_flow_known, "reverse_flow": i.reverse_flow})
            for i in run.interfaces
        ],
        resources=[ResourceOut.model_validate(r) for r in resources],
        curtailments=[
            CurtailmentOut.model_validate(c)
            for c in run.curtailments
            if (c.resource_kind, c.resource_id) in own or c.tdi_id in dso_tdis
        ],
    )


@router.post("/clearing-runs", response_model=RunOut, status_code=201, summary="Clear a market interval (TSO)")
def create(body: RunIn, commands: CommandsDep) -> JSONResponse:
    """After gate closure: clear the TSO's requirement on the offers in force, check the dispatch against
    distribution limits per each interface's model, re-dispatch any shortfall, store the run and notify reverse
    flow."""

    def use_case(ctx: Context) -> RunOut:
        run = service.clear_interval(
            ctx,
            body.market,
            body.interval_start,
            energy_requirement_kw=body.energy_requirement_kw,
            reserve_requirement_kw=body.reserve_requirement_kw,
            forecasts={f.tdi_id: InterfaceForecast(f.load_kw) for f in body.forecasts},
        )
        return render_run(ctx, run)

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)


@router.get("/clearing-runs", response_model=list[RunOut], summary="List clearing runs")
def list_all(
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    market: Market | None = None,
    interval_start: Annotated[AwareDatetime | None, Query()] = None,
) -> list[RunOut]:
    """Runs in interval order; prices per interface for everyone, resource results as the caller may see them."""
    result: list[RunOut] = commands.query(
        lambda ctx: [render_run(ctx, r) for r in service.list_runs(ctx, page, market, interval_start)], lambda x: x
    )
    return result


@router.get("/clearing-runs/{run_id}", response_model=RunOut, summary="Get a clearing run")
def get_one(run_id: RunId, commands: CommandsDep) -> RunOut:
    """One run."""
    result: RunOut = commands.query(lambda ctx: render_run(ctx, service.get_run(ctx, run_id)), lambda x: x)
    return result


@router.post(
    "/clearing-runs/{run_id}/instructions",
    response_model=list[InstructionOut],
    status_code=201,
    summary="Issue the run's schedules or dispatch instructions (TSO)",
)
def dispatch(run_id: RunId, commands: CommandsDep) -> JSONResponse:
    """One instruction per dispatched resource, to the party each interface's model names; once per run."""

    def use_case(ctx: Context) -> list[InstructionOut]:
        return [render_instruction(i) for i in instruction_service.issue_instructions(ctx, run_id)]

    return commands.run(use_case, InstructionList, status_code=201)
