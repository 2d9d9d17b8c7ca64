"""Transparent curtailment and the open-access report: published procedures per T-D interface, curtailment
requests and events with their shares, and the regulator's comparison of DSO-affiliated and third-party DERs."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, Strict, paging
from gridbridge.domain.conflicts import CurtailmentRule, OpenAccessRow, ParticipationGroup
from gridbridge.services import curtailment as service
from gridbridge.services import open_access
from gridbridge.services.context import Context
from gridbridge.services.curtailment_ports import CurtailmentEvent, PublishedProcedure
from gridbridge.services.ports import Page

router = APIRouter(tags=["curtailment"])
DEFAULT_PERIOD = timedelta(days=30)
TdiId = Annotated[str, Path(max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=64)]


class ProcedureIn(Strict):
    rule: str = Field(
        min_length=1,
        max_length=64,
        description=f"One of {', '.join(r.value for r in CurtailmentRule)} (an unknown rule answers "
        "conflicts.curtailment_unknown_rule)",
    )
    parameters: dict[Name, Name] = Field(default_factory=dict, max_length=10)
    dso_aggregated_pct: float | None = Field(
        default=None,
        description="Part of a required reduction taken from DSO-aggregated DERs (the rest from direct participants); "
        "null ranks every candidate together",
    )
    effective_from: AwareDatetime | None = Field(default=None, description="Default now; never in the past")
    note: str = Field(default="", max_length=2000)


class ProcedureOut(Out):
    id: str
    tdi_id: str
    dso_id: str
    version: int
    rule: str
    parameters: dict[str, str]
    dso_aggregated_pct: float | None
    effective_from: datetime
    published_at: datetime
    published_by: str
    note: str
    description: str


class CurtailmentIn(Strict):
    required_kw: float = Field(description="Reduction of export required, kW (> 0, whole watts)")
    window_start: AwareDatetime
    window_end: AwareDatetime
    connection_point_ids: list[int] = Field(default_factory=list, max_length=10_000)
    feeder: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


class ShareOut(Out):
    der_id: str
    party_id: str
    owner_id: str
    group: ParticipationGroup
    dso_affiliated: bool
    p_export_kw: float
    export_source: str
    capacity_kw: float
    offer_price_cad_per_mwh: Decimal | None
    connected_at: datetime | None
    share_kw: float
    rule: str
    reason: str
    instruction_id: str | None


class NoticeOut(Out):
    party_id: str
    share_kw: float
    der_ids: list[str]
    rule: str
    message: str
    instruction_id: str | None
    created_at: datetime


class CurtailmentOut(Out):
    id: str
    tdi_id: str
    dso_id: str
    procedure_id: str
    procedure_version: int
    rule: str
    required_kw: float
    available_kw: float
    dso_aggregated_kw: float
    direct_kw: float
    window_start: datetime
    window_end: datetime
    connection_point_ids: list[int]
    feeder: str | None
    reason: str
    requested_at: datetime
    requested_by: str
    requested_for: str
    shares: list[ShareOut]
    notices: list[NoticeOut]


class OpenAccessRowOut(Out):
    dso_id: str
    period_start: datetime
    dso_affiliated: bool
    n_ders: int
    capacity_kw: float
    dispatched_kwh: float
    curtailed_kwh: float
    capacity_share: float | None
    dispatch_share: float | None
    curtailment_share: float | None
    dispatched_kwh_per_kw: float | None
    curtailed_kwh_per_kw: float | None
    dispatch_share_ratio: float | None
    curtailment_share_ratio: float | None


class OpenAccessOut(Out):
    dso_id: str
    period_start: datetime
    period_end: datetime
    rows: list[OpenAccessRowOut] = Field(description="DSO-affiliated first, then third party; null where undefined")


def render_procedure(p: PublishedProcedure) -> ProcedureOut:
    """A published version as the API shows it."""
    return ProcedureOut(
        id=p.id,
        tdi_id=p.tdi_id,
        dso_id=p.dso_id,
        version=p.version,
        rule=p.procedure.rule.value,
        parameters=dict(p.procedure.parameters),
        dso_aggregated_pct=p.dso_aggregated_pct,
        effective_from=p.effective_from,
        published_at=p.published_at,
        published_by=p.published_by,
        note=p.note,
        description=p.describe(),
    )


def render_event(event: CurtailmentEvent) -> CurtailmentOut:
    """An event, with the shares and notices the caller may see."""
    return CurtailmentOut(
        **{k: v for k, v in event.__dict__.items() if k not in ("shares", "notices", "connection_point_ids")},
        connection_point_ids=list(event.connection_point_ids),
        shares=[ShareOut.model_validate(s) for s in event.shares],
        notices=[NoticeOut(**{**n.__dict__, "der_ids": list(n.der_ids)}) for n in event.notices],
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def render_row(row: OpenAccessRow) -> OpenAccessRowOut:
    """A report row; undefined ratios (``nan``) become null."""
    return OpenAccessRowOut(
        **{k: (_finite(v) if isinstance(v, float) else v) for k, v in row.__dict__.items()},
    )


@router.post(
    "/tdis/{tdi_id}/curtailment-procedures",
    response_model=ProcedureOut,
    status_code=201,
    summary="Publish the next version of the interface's curtailment procedure (its DSO)",
)
def publish_procedure(tdi_id: TdiId, body: ProcedureIn, commands: CommandsDep) -> JSONResponse:
    """In force from ``effective_from`` (now or later) until the next version takes effect."""

    def use_case(ctx: Context) -> PublishedProcedure:
        return service.publish_procedure(
            ctx,
            tdi_id,
            body.rule,
            body.parameters,
            dso_aggregated_pct=body.dso_aggregated_pct,
            effective_from=body.effective_from,
            note=body.note,
        )

    return commands.run(use_case, render_procedure, payload=body, status_code=201)


@router.get(
    "/tdis/{tdi_id}/curtailment-procedures",
    response_model=list[ProcedureOut],
    summary="Every published version of the interface's curtailment procedure (parties connected there)",
)
def list_procedures(tdi_id: TdiId, commands: CommandsDep) -> list[ProcedureOut]:
    """Oldest first: past, in force and scheduled versions."""
    result: list[ProcedureOut] = commands.query(
        lambda ctx: service.list_procedures(ctx, tdi_id), lambda found: [render_procedure(p) for p in found]
    )
    return result


@router.get(
    "/tdis/{tdi_id}/curtailment-procedure",
    response_model=ProcedureOut,
    summary="The curtailment procedure in force at the interface (parties connected there)",
)
def procedure_in_force(tdi_id: TdiId, commands: CommandsDep, at: AwareDatetime | None = None) -> ProcedureOut:
    """The version in force at ``at`` (default now)."""
    result: ProcedureOut = commands.query(lambda ctx: service.procedure_in_force(ctx, tdi_id, at), render_procedure)
    return result


@router.post(
    "/tdis/{tdi_id}/curtailments",
    response_model=CurtailmentOut,
    status_code=201,
    summary="Curtail export at the interface by its published procedure (its DSO)",
)
def request_curtailment(tdi_id: TdiId, body: CurtailmentIn, commands: CommandsDep) -> JSONResponse:
    """Shares by the procedure in force at the window's start; reductions issued to each party with a notice."""

    def use_case(ctx: Context) -> CurtailmentEvent:
        return service.request_curtailment(
            ctx,
            tdi_id,
            body.required_kw,
            body.window_start,
            body.window_end,
            connection_point_ids=body.connection_point_ids,
            feeder=body.feeder,
            reason=body.reason,
        )

    return commands.run(use_case, render_event, payload=body, status_code=201)


@router.get(
    "/curtailments",
    response_model=list[CurtailmentOut],
    summary="Curtailment events the caller may see, each with the shares it may see",
)
def list_curtailments(
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    tdi_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[CurtailmentOut]:
    """A party sees events with a share of its own (only those shares); a DSO its interfaces'; the TSO every
    event without DER shares; the observer everything. Newest window first."""
    result: list[CurtailmentOut] = commands.query(
        lambda ctx: service.list_events(ctx, page, tdi_id), lambda events: [render_event(e) for e in events]
    )
    return result


@router.get(
    "/curtailments/{curtailment_id}",
    response_model=CurtailmentOut,
    summary="One curtailment event with the shares the caller may see",
)
def get_curtailment(curtailment_id: Annotated[str, Path(max_length=64)], commands: CommandsDep) -> CurtailmentOut:
    """An event the caller may not see answers 404 like a missing one."""
    result: CurtailmentOut = commands.query(lambda ctx: service.get_event(ctx, curtailment_id), render_event)
    return result


@router.get(
    "/dsos/{dso_id}/open-access-report",
    response_model=OpenAccessOut,
    summary="Dispatch and curtailment of a DSO's affiliated and third-party DERs, normalised by capacity",
)
def open_access_report(
    dso_id: Annotated[str, Path(max_length=64)],
    commands: CommandsDep,
    period_from: Annotated[
        AwareDatetime | None, Query(alias="from", description="Default: 30 days before `to`")
    ] = None,
    period_to: Annotated[AwareDatetime | None, Query(alias="to", description="Default: the next UTC midnight")] = None,
) -> OpenAccessOut:
    """The observer and the TSO for any DSO, a DSO for itself; aggregators and owners may not."""

    def use_case(ctx: Context) -> OpenAccessOut:
        now = ctx.clock.now()
        end = period_to or now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        start = period_from or end - DEFAULT_PERIOD
        rows = open_access.open_access(ctx, dso_id, start, end)
        return OpenAccessOut(dso_id=dso_id, period_start=start, period_end=end, rows=[render_row(r) for r in rows])

    result: OpenAccessOut = commands.query(use_case, lambda out: out)
    return result
