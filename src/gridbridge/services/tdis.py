"""T-D interfaces: registration, dated coordination-model changes, limits, and what the TSO may see."""

from __future__ import annotations

from datetime import datetime

from gridbridge.domain.coordination import CoordinationModel, ModelName, TsoDerVisibility, coordination_model
from gridbridge.domain.errors import (
    ConflictError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    register_code,
)
from gridbridge.domain.permissions import Action, Caller, require_action
from gridbridge.domain.roles import Role
from gridbridge.domain.tdi import (
    ModelAssignment,
    TDInterface,
    assignment_at,
    check_model_change,
    model_at,
    validate_tdi_fields,
)
from gridbridge.domain.validation import require_non_negative
from gridbridge.services.context import Context
from gridbridge.services.ports import UnitOfWork

TDI_NAME_TAKEN = register_code("tdi.name_taken", 409, "A T-D interface with that name exists")
NOT_A_DSO = register_code("tdi.owner_not_dso", 422, "The owning participant of a T-D interface must be a DSO")


def create_tdi(
    ctx: Context,
    *,
    name: str,
    price_node: str,
    dso_id: str,
    model: ModelName,
    effective_from: datetime | None = None,
    direct_threshold_kw: float | None = None,
    import_limit_kw: float,
    export_limit_kw: float,
) -> TDInterface:
    """Register a T-D interface owned by a DSO, with its first coordination model.

    ``effective_from`` defaults to now; ``direct_threshold_kw`` defaults to the model's default (0 where no
    DER offers directly).
    """
    require_action(ctx.caller, Action.TDI_CREATE)
    record = coordination_model(model)
    threshold = direct_threshold_kw if direct_threshold_kw is not None else (record.default_direct_threshold_kw or 0.0)
    name, price_node = validate_tdi_fields(name, price_node, threshold, import_limit_kw, export_limit_kw)
    owner = ctx.uow.participants.get(dso_id)
    if owner is None:
        raise NotFound(f"no participant {dso_id}", field="dso_id")
    if owner.role is not Role.DSO:
        raise ValidationFailed(
            f"participant {owner.name!r} is a {owner.role.value}, not a dso", field="dso_id", code=NOT_A_DSO
        )
    if ctx.uow.tdis.by_name(name) is not None:
        raise ConflictError(f"T-D interface {name!r} exists", field="name", code=TDI_NAME_TAKEN)
    now = ctx.clock.now()
    tdi = TDInterface(
        id=ctx.new_id(),
        name=name,
        price_node=price_node,
        dso_id=dso_id,
        direct_threshold_kw=threshold,
        import_limit_kw=import_limit_kw,
        export_limit_kw=export_limit_kw,
        created_at=now,
    )
    ctx.uow.tdis.add(tdi)
    ctx.audit("tdi.create", "td_interface", tdi.id, None, tdi.snapshot())
    _add_assignment(ctx, tdi, model, effective_from or now, now)
    return tdi


def _add_assignment(
    ctx: Context, tdi: TDInterface, model: ModelName, effective_from: datetime, now: datetime
) -> ModelAssignment:
    existing = ctx.uow.tdis.assignments(tdi.id)
    check_model_change(existing, effective_from, now)
    assignment = ModelAssignment(
        id=ctx.new_id(),
        tdi_id=tdi.id,
        model=model,
        effective_from=effective_from,
        recorded_at=now,
        recorded_by=ctx.caller.user_id,
    )
    ctx.uow.tdis.add_assignment(assignment)
    ctx.audit("tdi.model_change", "td_interface", tdi.id, None, assignment.snapshot())
    return assignment


def _require_owner_or_tso(caller: Caller, tdi: TDInterface) -> None:
    if caller.role is Role.DSO and caller.participant_id != tdi.dso_id:
        raise PermissionDenied("only the owning DSO or the TSO may change this T-D interface", field="tdi_id")


def get_tdi(uow: UnitOfWork, tdi_id: str) -> TDInterface:
    """Return a T-D interface (interfaces are visible to every authenticated caller)."""
    tdi = uow.tdis.get(tdi_id)
    if tdi is None:
        raise NotFound(f"no T-D interface {tdi_id}", field="tdi_id")
    return tdi


def schedule_model_change(ctx: Context, tdi_id: str, model: ModelName, effective_from: datetime) -> ModelAssignment:
    """Schedule a coordination-model change from a date that is not in the past."""
    require_action(ctx.caller, Action.TDI_MODEL_CHANGE)
    tdi = get_tdi(ctx.uow, tdi_id)
    _require_owner_or_tso(ctx.caller, tdi)
    return _add_assignment(ctx, tdi, model, effective_from, ctx.clock.now())


def update_limits(
    ctx: Context,
    tdi_id: str,
    *,
    import_limit_kw: float | None,
    export_limit_kw: float | None,
    direct_threshold_kw: float | None,
) -> TDInterface:
    """Change an interface's import/export limits or direct-participation threshold."""
    require_action(ctx.caller, Action.TDI_UPDATE)
    tdi = get_tdi(ctx.uow, tdi_id)
    _require_owner_or_tso(ctx.caller, tdi)
    before = tdi.snapshot()
    if import_limit_kw is not None:
        tdi.import_limit_kw = require_non_negative(import_limit_kw, "import_limit_kw")
    if export_limit_kw is not None:
        tdi.export_limit_kw = require_non_negative(export_limit_kw, "export_limit_kw")
    if direct_threshold_kw is not None:
        tdi.direct_threshold_kw = require_non_negative(direct_threshold_kw, "direct_threshold_kw")
    ctx.audit("tdi.update", "td_interface", tdi.id, before, tdi.snapshot())
    return tdi


def model_in_force(uow: UnitOfWork, tdi_id: str, when: datetime) -> CoordinationModel:
    """The coordination-model record in force at an interface at ``when``."""
    return model_at(uow.tdis.assignments(tdi_id), when)


def current_assignment(uow: UnitOfWork, tdi_id: str, when: datetime) -> ModelAssignment | None:
    """The assignment in force at ``when`` (None before the first one takes effect)."""
    return assignment_at(uow.tdis.assignments(tdi_id), when)


def tso_visibility(uow: UnitOfWork, when: datetime) -> dict[str, TsoDerVisibility]:
    """Table 6 row 2 for every interface at ``when``: which individual DERs the TSO sees there."""
    result = {}
    for tdi_id, assignments in uow.tdis.all_assignments().items():
        current = assignment_at(assignments, when)
        result[tdi_id] = coordination_model(current.model).tso_der_visibility if current else TsoDerVisibility.NONE
    return result
