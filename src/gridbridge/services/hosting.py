"""Use case: the hosting capacity of a DER's connection point in the LDC's interconnection review.

:func:`assess_der` computes, on the interface's stored network model (normal switching state, no outages)
and its envelope settings (band, loading limit, reverse-flow limit, interval length, horizon), the largest
export and import at the DER's connection point alone with every other point at its forecast, over the
study window (the interface's horizon from the interval in progress), AC-checked
(:func:`~gridbridge.services.envelopes.compute_hosting_capacity`), and compares the application (the DER's
``p_export_kw`` and ``p_import_kw``) with the worst case: above it, the assessment is flagged (``exceeds``)
with the binding element. With ``record`` the assessment is stored and audited; the LDC's review decision then
records its value (``DerReview.hosting_capacity_kw``) and links the assessment to the review.
"""

from __future__ import annotations

import numpy as np

from gridbridge.domain.envelope_publication import HostingAssessment, floor_to_interval
from gridbridge.domain.errors import PermissionDenied
from gridbridge.domain.permissions import Action, is_system, require_action
from gridbridge.domain.roles import Role
from gridbridge.services.context import Context
from gridbridge.services.ders import get_der
from gridbridge.services.envelope_access import settings_of, stored_model
from gridbridge.services.envelope_store_ports import EnvelopeBackend
from gridbridge.services.envelopes import EnvelopeRequest, compute_hosting_capacity
from gridbridge.services.tdis import get_tdi


def _floor_kw(value: float) -> float:
    return float(np.floor(value * 1000.0 + 1e-9) / 1000.0)


def assess_der(ctx: Context, backend: EnvelopeBackend, der_id: str, *, record: bool = False) -> HostingAssessment:
    """The hosting-capacity assessment of a DER's interconnection request (see the module docstring).

    Reading is for the DER's LDC and observers; recording (``record``) for the DER's LDC only.
    """
    caller = ctx.caller
    if record:
        require_action(caller, Action.HOSTING_ASSESS)
    elif not is_system(caller) and caller.role not in (Role.DSO, Role.OBSERVER):
        raise PermissionDenied(f"role {caller.role.value} may not read hosting capacity", field="role")
    der = get_der(ctx, der_id)
    if caller.role is Role.DSO and not is_system(caller) and der.dso_id != caller.participant_id:
        raise PermissionDenied("only the DER's LDC may assess it", field="der_id")
    tdi = get_tdi(ctx.uow, der.tdi_id)
    point = ctx.uow.networks.connection_point(der.connection_point_id)
    if point is None:  # pragma: no cover - the foreign key keeps it
        raise RuntimeError(f"connection point {der.connection_point_id} of DER {der.id} is missing")
    settings = settings_of(ctx, tdi.id)
    model, source = stored_model(ctx, tdi)
    now = ctx.clock.now()
    request = EnvelopeRequest(
        start=floor_to_interval(now, settings.interval_minutes),
        intervals=settings.horizon_intervals,
        interval_minutes=settings.interval_minutes,
        limits=settings.network_limits(tdi.export_limit_kw),
        connection_points=(point.bus,),
    )
    prepared = backend.prepare(model, source=source)
    run = compute_hosting_capacity(request, prepared.network, prepared.forecast, clock=ctx.clock)
    exp_kw, exp_b, imp_kw, imp_b = run.worst_case()[point.bus]
    exp_kw, imp_kw = _floor_kw(exp_kw), _floor_kw(imp_kw)
    binding: str | None = None
    if der.p_export_kw > exp_kw:
        binding = exp_b
    elif der.p_import_kw > imp_kw:
        binding = imp_b
    ke = int(np.argmin(run.p_export_max_kw[:, 0]))
    ki = int(np.argmin(run.p_import_max_kw[:, 0]))
    assessment = HostingAssessment(
        id=ctx.new_id(),
        der_id=der.id,
        tdi_id=tdi.id,
        connection_point_id=point.id,
        connection_point=point.name,
        computed_at=now,
        study_start=request.start,
        intervals=request.intervals,
        interval_minutes=request.interval_minutes,
        p_export_max_kw=exp_kw,
        binding_export=exp_b,
        p_import_max_kw=imp_kw,
        binding_import=imp_b,
        requested_export_kw=der.p_export_kw,
        requested_import_kw=der.p_import_kw,
        exceeds=binding is not None,
        binding_element=binding,
        status_export=str(run.status_export[ke, 0]),
        status_import=str(run.status_import[ki, 0]),
        recorded=record,
        log={**run.log.as_dict(), "settings": settings.as_dict(), "network_source": source},
    )
    if record:
        ctx.uow.envelopes.hosting.add(assessment)
        ctx.audit("der.hosting_capacity", "der", der.id, None, assessment.snapshot())
    return assessment
