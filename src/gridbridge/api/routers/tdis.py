"""T-D interfaces: registration, dated coordination-model changes, limits, network and connection points."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, Strict
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.tdi import ModelAssignment, TDInterface
from gridbridge.services import networks as network_service
from gridbridge.services import tdis as service
from gridbridge.services.context import Context
from gridbridge.services.ports import ConnectionPointRef

router = APIRouter(tags=["t-d interfaces"])
TdiId = Annotated[str, Path(max_length=64)]


class TdiIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    price_node: str = Field(min_length=1, max_length=200)
    dso_id: str
    model: ModelName
    effective_from: AwareDatetime | None = None
    direct_threshold_kw: float | None = Field(default=None, ge=0)
    import_limit_kw: float = Field(ge=0)
    export_limit_kw: float = Field(ge=0)


class TdiPatch(Strict):
    import_limit_kw: float | None = Field(default=None, ge=0)
    export_limit_kw: float | None = Field(default=None, ge=0)
    direct_threshold_kw: float | None = Field(default=None, ge=0)


class ModelChangeIn(Strict):
    model: ModelName
    effective_from: AwareDatetime


class ModelAssignmentOut(Out):
    model: ModelName
    effective_from: datetime
    recorded_at: datetime


class TdiOut(Out):
    id: str
    name: str
    price_node: str
    dso_id: str
    direct_threshold_kw: float
    import_limit_kw: float
    export_limit_kw: float
    model_in_force: ModelName | None
    model_changes: list[ModelAssignmentOut]


class NetworkImportIn(Strict):
    source: str = Field(min_length=1, max_length=500, examples=["simbench:1-MV-semiurb--0-sw"])
    replace: bool = False


class NetworkImportOut(Out):
    tdi_id: str
    source: str
    buses: int
    lines: int
    transformers: int
    feeders: int
    connection_points: int


class ConnectionPointOut(Out):
    id: int
    name: str
    tdi_id: str
    feeder: str | None
    bus: str


def render_tdi(ctx: Context, tdi: TDInterface) -> TdiOut:
    """A T-D interface with its model in force now and every scheduled change."""
    assignments: list[ModelAssignment] = ctx.uow.tdis.assignments(tdi.id)
    current = service.current_assignment(ctx.uow, tdi.id, ctx.clock.now())
    return TdiOut(
        id=tdi.id,
        name=tdi.name,
        price_node=tdi.price_node,
        dso_id=tdi.dso_id,
        direct_threshold_kw=tdi.direct_threshold_kw,
        import_limit_kw=tdi.import_limit_kw,
        export_limit_kw=tdi.export_limit_kw,
        model_in_force=current.model if current else None,
        model_changes=[ModelAssignmentOut.model_validate(a) for a in assignments],
    )


@router.get("/tdis", response_model=list[TdiOut], summary="List T-D interfaces")
def list_tdis(commands: CommandsDep) -> list[TdiOut]:
    """Every T-D interface with its coordination model (interfaces are public to authenticated callers)."""
    result: list[TdiOut] = commands.query(
        lambda ctx: [render_tdi(ctx, t) for t in ctx.uow.tdis.list_all()], lambda x: x
    )
    return result


@router.post("/tdis", response_model=TdiOut, status_code=201, summary="Register a T-D interface (TSO)")
def create_tdi(body: TdiIn, commands: CommandsDep) -> JSONResponse:
    """The TSO registers a T-D interface owned by a DSO, with its first coordination model."""

    def use_case(ctx: Context) -> TdiOut:
        tdi = service.create_tdi(ctx, **body.model_dump())
        ctx.uow.flush()
        return render_tdi(ctx, tdi)

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)


@router.get("/tdis/{tdi_id}", response_model=TdiOut, summary="Get a T-D interface")
def get_tdi(tdi_id: TdiId, commands: CommandsDep) -> TdiOut:
    """One T-D interface."""
    result: TdiOut = commands.query(lambda ctx: render_tdi(ctx, service.get_tdi(ctx.uow, tdi_id)), lambda x: x)
    return result


@router.patch("/tdis/{tdi_id}", response_model=TdiOut, summary="Change limits or threshold (TSO or owning DSO)")
def patch_tdi(tdi_id: TdiId, body: TdiPatch, commands: CommandsDep) -> JSONResponse:
    """Change an interface's import/export limits or direct-participation threshold."""
    return commands.run(
        lambda ctx: render_tdi(ctx, service.update_limits(ctx, tdi_id, **body.model_dump())),
        lambda out: out,
        payload=body,
    )


@router.post(
    "/tdis/{tdi_id}/model-changes",
    response_model=TdiOut,
    status_code=201,
    summary="Schedule a coordination-model change (dated, never retroactive)",
)
def change_model(tdi_id: TdiId, body: ModelChangeIn, commands: CommandsDep) -> JSONResponse:
    """Schedule the interface's next coordination model from a date that is not in the past."""

    def use_case(ctx: Context) -> TdiOut:
        service.schedule_model_change(ctx, tdi_id, body.model, body.effective_from)
        return render_tdi(ctx, service.get_tdi(ctx.uow, tdi_id))

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)


@router.post(
    "/tdis/{tdi_id}/network",
    response_model=NetworkImportOut,
    status_code=201,
    summary="Import the interface's network model (owning DSO)",
)
def import_network(tdi_id: TdiId, body: NetworkImportIn, commands: CommandsDep) -> JSONResponse:
    """Import a SimBench grid (``simbench:CODE``) as the interface's consolidated network model."""
    return commands.run(
        lambda ctx: network_service.import_network(ctx, tdi_id, body.source, replace=body.replace),
        lambda summary: NetworkImportOut.model_validate(summary),
        payload=body,
        status_code=201,
    )


@router.get(
    "/tdis/{tdi_id}/connection-points",
    response_model=list[ConnectionPointOut],
    summary="Connection points of an interface (owning DSO, TSO, observer)",
)
def connection_points(tdi_id: TdiId, commands: CommandsDep) -> list[ConnectionPointOut]:
    """Connection points under the interface with their feeders."""
    result: list[ConnectionPointOut] = commands.query(
        lambda ctx: network_service.connection_points(ctx, tdi_id),
        lambda points: [ConnectionPointOut.model_validate(p) for p in points],
    )
    return result


__all__ = ["ConnectionPointRef", "router"]
