"""Operating envelopes: per-interface settings, runs on the stored model and their publication, published
envelopes and the limits in force, and the hosting capacity of a DER's connection point for its review."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, Strict, paging
from gridbridge.domain.envelope_publication import (
    EnvelopeCause,
    EnvelopeRunRecord,
    EnvelopeSettings,
    HostingAssessment,
    RunStatus,
    RunTrigger,
    StoredEnvelope,
)
from gridbridge.domain.envelopes import AllocationPolicy, LimitSource
from gridbridge.services import envelope_reads, envelope_runs, hosting
from gridbridge.services.context import Context
from gridbridge.services.envelope_store_ports import EnvelopeBackend
from gridbridge.services.ports import Page

router = APIRouter(tags=["envelopes"])
TdiId = Annotated[str, Path(max_length=64)]
RunId = Annotated[str, Path(max_length=64)]
DerId = Annotated[str, Path(max_length=64)]


def envelope_backend(request: Request) -> EnvelopeBackend:
    """The power-flow backend the app was built with (``create_app``)."""
    backend: EnvelopeBackend = request.app.state.envelope_backend
    return backend


BackendDep = Annotated[EnvelopeBackend, Depends(envelope_backend)]


# --- settings -------------------------------------------------------------------------------------------------


class EnvelopeSettingsOut(Out):
    v_min_pu: float
    v_max_pu: float
    max_loading_pct: float
    policy: AllocationPolicy
    interval_minutes: int
    horizon_hours: int
    reverse_flow_limit_kw: float | None = Field(description="None: the interface's export_limit_kw")
    point_cap_kw: float
    default_export_kw: float
    default_import_kw: float
    default_unapproved_export_kw: float


class EnvelopeSettingsPatch(Strict):
    v_min_pu: float | None = None
    v_max_pu: float | None = None
    max_loading_pct: float | None = None
    policy: AllocationPolicy | None = None
    interval_minutes: int | None = Field(default=None, description="5, 15 or 30")
    horizon_hours: int | None = Field(default=None, description="1 to 168")
    reverse_flow_limit_kw: float | None = Field(
        default=None, description="kW; an explicit null goes back to the interface's export_limit_kw"
    )
    point_cap_kw: float | None = None
    default_export_kw: float | None = None
    default_import_kw: float | None = None
    default_unapproved_export_kw: float | None = None


def _settings_out(settings: EnvelopeSettings) -> EnvelopeSettingsOut:
    return EnvelopeSettingsOut.model_validate(settings.as_dict())


@router.get(
    "/tdis/{tdi_id}/envelope-settings",
    response_model=EnvelopeSettingsOut,
    summary="An interface's envelope settings (owning DSO, TSO, observer)",
)
def get_settings(tdi_id: TdiId, commands: CommandsDep) -> EnvelopeSettingsOut:
    """Voltage band, loading limit, policy, interval length, horizon, reverse-flow limit, cap and defaults."""
    result: EnvelopeSettingsOut = commands.query(lambda ctx: envelope_runs.get_settings(ctx, tdi_id), _settings_out)
    return result


@router.patch(
    "/tdis/{tdi_id}/envelope-settings",
    response_model=EnvelopeSettingsOut,
    summary="Change an interface's envelope settings (owning DSO)",
)
def patch_settings(tdi_id: TdiId, body: EnvelopeSettingsPatch, commands: CommandsDep) -> JSONResponse:
    """Change some settings; the result is validated as a whole (e.g. v_min_pu below v_max_pu)."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    for name, value in list(changes.items()):
        if value is None and name != "reverse_flow_limit_kw":
            del changes[name]
    return commands.run(lambda ctx: envelope_runs.update_settings(ctx, tdi_id, changes), _settings_out, payload=body)


# --- runs --------------------------------------------------------------------------------------------------------


class RunIn(Strict):
    start: AwareDatetime | None = Field(
        default=None, description="First interval start, on the interval grid (default: the interval in progress)"
    )
    intervals: int | None = Field(default=None, ge=1, description="Number of intervals (default: the horizon)")
    publish: bool = Field(default=False, description="Publish the envelopes at once")


class RunOut(Out):
    id: str
    tdi_id: str
    status: RunStatus
    trigger: RunTrigger
    requested_at: datetime
    start: datetime
    end: datetime
    intervals: int
    interval_minutes: int
    policy: AllocationPolicy
    event_id: str | None
    computed_at: datetime | None
    published_at: datetime | None
    envelope_count: int
    verification: str | None = Field(description="verified, or failed when an interval stayed beyond tolerance")
    summary: dict[str, Any] | None
    settings: dict[str, Any]
    replaced_by: str | None
    error: dict[str, Any] | None


class RunDetailOut(RunOut):
    log: dict[str, Any] | None = Field(description="The calculation log: inputs, method, policy, version, ...")


class PublishedOut(Out):
    run: RunOut
    published_envelopes: int


def _run_fields(run: EnvelopeRunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "tdi_id": run.tdi_id,
        "status": run.status,
        "trigger": run.trigger,
        "requested_at": run.requested_at,
        "start": run.start,
        "end": run.end,
        "intervals": run.intervals,
        "interval_minutes": run.interval_minutes,
        "policy": run.policy,
        "event_id": run.event_id,
        "computed_at": run.computed_at,
        "published_at": run.published_at,
        "envelope_count": run.envelope_count,
        "verification": (run.summary or {}).get("verification"),
        "summary": run.summary,
        "settings": run.settings,
        "replaced_by": run.replaced_by,
        "error": run.error,
    }


def render_run(run: EnvelopeRunRecord) -> RunOut:
    """A run without its calculation log."""
    return RunOut(**_run_fields(run))


def render_run_detail(run: EnvelopeRunRecord) -> RunDetailOut:
    """A run with its calculation log."""
    return RunDetailOut(**_run_fields(run), log=run.log)


@router.post(
    "/tdis/{tdi_id}/envelope-runs",
    response_model=PublishedOut,
    status_code=201,
    summary="Compute (and optionally publish) the interface's envelopes (owning DSO)",
)
def create_run(tdi_id: TdiId, body: RunIn, commands: CommandsDep, backend: BackendDep) -> JSONResponse:
    """Compute and AC-verify envelopes on the stored network model with the stored settings and network state."""

    def use_case(ctx: Context) -> PublishedOut:
        outcome = envelope_runs.compute_run(
            ctx, backend, tdi_id, start=body.start, intervals=body.intervals, publish=body.publish
        )
        return PublishedOut(run=render_run(outcome.run), published_envelopes=outcome.published)

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)


@router.get(
    "/tdis/{tdi_id}/envelope-runs",
    response_model=list[RunOut],
    summary="An interface's envelope runs, newest first (owning DSO, TSO, observer)",
)
def list_runs(
    tdi_id: TdiId,
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    status: RunStatus | None = None,
) -> list[RunOut]:
    """Runs with their verification summaries (the calculation log is on the single run)."""
    result: list[RunOut] = commands.query(
        lambda ctx: envelope_runs.list_runs(ctx, tdi_id, page, status=status),
        lambda runs: [render_run(r) for r in runs],
    )
    return result


@router.get(
    "/envelope-runs/{run_id}",
    response_model=RunDetailOut,
    summary="One envelope run with its calculation log (owning DSO, TSO, observer)",
)
def get_run(run_id: RunId, commands: CommandsDep) -> RunDetailOut:
    """The run, its verification summary and its calculation log."""
    result: RunDetailOut = commands.query(lambda ctx: envelope_runs.get_run(ctx, run_id), render_run_detail)
    return result


@router.post(
    "/envelope-runs/{run_id}/publish",
    response_model=PublishedOut,
    summary="Publish a computed run (owning DSO)",
)
def publish_run(run_id: RunId, commands: CommandsDep) -> JSONResponse:
    """Issue the run's envelopes for the intervals not yet over as new versions."""

    def use_case(ctx: Context) -> PublishedOut:
        run, count = envelope_runs.publish_run(ctx, run_id)
        return PublishedOut(run=render_run(run), published_envelopes=count)

    return commands.run(use_case, lambda out: out)


# --- published envelopes ---------------------------------------------------------------------------------------


class EnvelopeOut(Out):
    tdi_id: str
    connection_point_id: int
    connection_point: str
    interval_start: datetime
    interval_end: datetime
    p_export_max_kw: float
    p_import_max_kw: float
    binding_export: str
    binding_import: str
    expiry: datetime
    issued_at: datetime | None
    version: int | None
    superseded_at: datetime | None
    cause: EnvelopeCause
    status: str
    run_id: str | None
    event_id: str | None


def render_envelope(envelope: StoredEnvelope) -> EnvelopeOut:
    """A stored envelope as the API shows it."""
    return EnvelopeOut.model_validate(envelope)


@router.get("/envelopes", response_model=list[EnvelopeOut], summary="Published envelopes the caller may see")
def list_envelopes(
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    tdi_id: Annotated[str | None, Query(max_length=64)] = None,
    connection_point_id: Annotated[int | None, Query(ge=1)] = None,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    include_superseded: bool = False,
) -> list[EnvelopeOut]:
    """An LDC sees its territory, an aggregator its own DERs' connection points, the TSO per coordination model."""
    result: list[EnvelopeOut] = commands.query(
        lambda ctx: envelope_reads.list_envelopes(
            ctx,
            page,
            tdi_id=tdi_id,
            connection_point_id=connection_point_id,
            start=start,
            end=end,
            include_superseded=include_superseded,
        ),
        lambda rows: [render_envelope(r) for r in rows],
    )
    return result


class LimitsOut(Out):
    connection_point_id: int
    connection_point: str
    tdi_id: str
    feeder: str | None
    start: datetime
    end: datetime
    p_export_max_kw: float
    p_import_max_kw: float
    export_source: LimitSource
    import_source: LimitSource
    binding_export: str
    binding_import: str


def _limits_out(row: envelope_reads.PointLimits) -> LimitsOut:
    lim = row.limits
    return LimitsOut(
        connection_point_id=row.point.id,
        connection_point=row.point.name,
        tdi_id=row.point.tdi_id,
        feeder=row.point.feeder,
        start=lim.start,
        end=lim.end,
        p_export_max_kw=lim.p_export_max_kw,
        p_import_max_kw=lim.p_import_max_kw,
        export_source=lim.export_source,
        import_source=lim.import_source,
        binding_export=lim.export_envelope.binding_export if lim.export_envelope else lim.export_source.value,
        binding_import=lim.import_envelope.binding_import if lim.import_envelope else lim.import_source.value,
    )


@router.get(
    "/envelopes/in-force",
    response_model=list[LimitsOut],
    summary="Limits in force per visible connection point, with the default fallback",
)
def in_force(
    commands: CommandsDep,
    at: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    tdi_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[LimitsOut]:
    """At ``at`` (default now), or the tightest over ``[at, end)``; where no envelope is in force the point's
    configured default applies (0 kW export for a point without an approved DER); never "no limit"."""
    result: list[LimitsOut] = commands.query(
        lambda ctx: envelope_reads.limits_in_force(ctx, at or ctx.clock.now(), end=end, tdi_id=tdi_id),
        lambda rows: [_limits_out(r) for r in rows],
    )
    return result


# --- hosting capacity ------------------------------------------------------------------------------------------


class HostingOut(Out):
    id: str
    der_id: str
    tdi_id: str
    connection_point_id: int
    connection_point: str
    computed_at: datetime
    study_start: datetime
    intervals: int
    interval_minutes: int
    p_export_max_kw: float
    binding_export: str
    p_import_max_kw: float
    binding_import: str
    requested_export_kw: float
    requested_import_kw: float
    exceeds: bool = Field(description="The application is above the hosting capacity")
    binding_element: str | None = Field(description="What the application would overload or push out of band")
    status_export: str
    status_import: str
    recorded: bool
    review_id: str | None


def render_assessment(assessment: HostingAssessment) -> HostingOut:
    """An assessment as the API shows it (without its calculation log)."""
    return HostingOut.model_validate(assessment)


@router.get(
    "/ders/{der_id}/hosting-capacity",
    response_model=HostingOut,
    summary="The hosting capacity of the DER's connection point, computed now (DER's LDC, observer)",
)
def get_hosting_capacity(der_id: DerId, commands: CommandsDep, backend: BackendDep) -> HostingOut:
    """Computed on the stored model; not recorded (POST records it for the review decision)."""
    result: HostingOut = commands.query(
        lambda ctx: hosting.assess_der(ctx, backend, der_id, record=False), render_assessment
    )
    return result


@router.post(
    "/ders/{der_id}/hosting-capacity",
    response_model=HostingOut,
    status_code=201,
    summary="Compute and record the hosting capacity for the DER's review (DER's LDC)",
)
def record_hosting_capacity(der_id: DerId, commands: CommandsDep, backend: BackendDep) -> JSONResponse:
    """The review decision that follows records its value and links it."""
    return commands.run(
        lambda ctx: hosting.assess_der(ctx, backend, der_id, record=True), render_assessment, status_code=201
    )
