"""The DER lifecycle: interconnection request, LDC technical review, commissioning, suspension, retirement."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from gridbridge.domain.der import Der, DerReview, DerSpec, ReviewDecision, require_reason
from gridbridge.domain.errors import ConflictError, NotFound, PermissionDenied, ValidationFailed, register_code
from gridbridge.domain.lifecycle import ILLEGAL_TRANSITION, DerAction, DerStatus
from gridbridge.domain.market import capable_products, validate_market_products
from gridbridge.domain.offers import Product
from gridbridge.domain.permissions import Action, is_system, require_action
from gridbridge.domain.roles import Role
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from gridbridge.services.scopes import ders_visible_to
from gridbridge.services.tdis import get_tdi

OUTSIDE_TERRITORY = register_code("der.outside_territory", 422, "The connection point lies in another LDC's territory")
OWNER_NOT_DER_OWNER = register_code(
    "der.owner_not_der_owner", 422, "owner_id must name a participant with role der_owner"
)


def request_interconnection(
    ctx: Context,
    spec: DerSpec,
    connection_point_id: int,
    *,
    ldc_id: str | None = None,
    owner_id: str | None = None,
) -> Der:
    """File an interconnection request for a DER at a connection point.

    The request goes to the LDC whose T-D interface holds the point. ``ldc_id``, when given, must be that LDC.
    A DER owner files for itself; an aggregator files for itself or, with ``owner_id``, on behalf of a DER owner
    it then represents; an LDC files for its own (DSO-affiliated) DERs in its own territory only.
    """
    require_action(ctx.caller, Action.DER_REQUEST)
    spec = spec.validate()
    point = ctx.uow.networks.connection_point(connection_point_id)
    if point is None:
        raise NotFound(f"no connection point {connection_point_id}", field="connection_point_id")
    tdi = get_tdi(ctx.uow, point.tdi_id)
    if ldc_id is not None and ldc_id != tdi.dso_id:
        raise ValidationFailed(
            f"connection point {point.name!r} is in the territory of another LDC, not {ldc_id}",
            field="connection_point_id",
            code=OUTSIDE_TERRITORY,
        )
    caller = ctx.caller
    representative_id = None
    if caller.role is Role.DSO and not is_system(caller):
        if caller.participant_id != tdi.dso_id:
            raise ValidationFailed(
                f"connection point {point.name!r} is in another LDC's territory",
                field="connection_point_id",
                code=OUTSIDE_TERRITORY,
            )
        owner = caller.participant_id
    elif owner_id is not None and (caller.role is Role.AGGREGATOR or is_system(caller)):
        target = ctx.uow.participants.get(owner_id)
        if target is None or target.role is not Role.DER_OWNER:
            raise ValidationFailed(f"{owner_id} is not a DER owner", field="owner_id", code=OWNER_NOT_DER_OWNER)
        owner = owner_id
        representative_id = None if is_system(caller) else caller.participant_id
    else:
        owner = caller.participant_id
    now = ctx.clock.now()
    der = Der(
        id=ctx.new_id(),
        name=spec.name,
        technology=spec.technology,
        p_export_kw=spec.p_export_kw,
        p_import_kw=spec.p_import_kw,
        e_kwh=spec.e_kwh,
        round_trip_efficiency=spec.round_trip_efficiency,
        ramp_kw_per_min=spec.ramp_kw_per_min,
        meter_position=spec.meter_position,
        owner_id=owner,
        representative_id=representative_id,
        connection_point_id=point.id,
        tdi_id=tdi.id,
        dso_id=tdi.dso_id,
        dso_affiliated=owner == tdi.dso_id,
        status=DerStatus.REQUESTED,
        requested_at=now,
        review_due_at=now + timedelta(days=ctx.settings.der_review_days),
        updated_at=now,
    )
    ctx.uow.ders.add(der)
    ctx.audit("der.request", "der", der.id, None, der.snapshot())
    return der


def get_der(ctx: Context, der_id: str) -> Der:
    """Return a DER the caller may see; an invisible DER is reported exactly like a missing one."""
    der = ctx.uow.ders.get(der_id)
    if der is None or not ders_visible_to(ctx).allows(der):
        raise NotFound(f"no DER {der_id}", field="der_id")
    return der


def list_ders(ctx: Context, page: Page, *, tdi_id: str | None = None, status: DerStatus | None = None) -> list[Der]:
    """The DERs the caller may see, optionally filtered by interface and status."""
    return ctx.uow.ders.query(ders_visible_to(ctx), page, tdi_id=tdi_id, status=status)


def _territory_der(ctx: Context, der_id: str, action: Action) -> Der:
    require_action(ctx.caller, action)
    der = get_der(ctx, der_id)
    if not is_system(ctx.caller) and der.dso_id != ctx.caller.participant_id:
        raise PermissionDenied("only the DER's LDC may do this", field="der_id")
    return der


def _move(ctx: Context, der: Der, action: DerAction, audit_action: str) -> Der:
    before = der.snapshot()
    der.move(action, ctx.clock.now())
    ctx.audit(audit_action, "der", der.id, before, der.snapshot())
    return der


def start_review(ctx: Context, der_id: str) -> Der:
    """The LDC opens its technical review of an interconnection request."""
    der = _territory_der(ctx, der_id, Action.DER_REVIEW)
    return _move(ctx, der, DerAction.START_REVIEW, "der.start_review")


def decide_review(
    ctx: Context,
    der_id: str,
    decision: ReviewDecision,
    reason: str,
    *,
    attachments: list[str] | None = None,
    export_limit_kw: float | None = None,
    import_limit_kw: float | None = None,
    hosting_capacity_kw: float | None = None,
) -> Der:
    """Record the LDC's decision with its reason; approval sets static limits (default: the DER's capability).

    Without an explicit ``hosting_capacity_kw`` the decision records the export hosting capacity of the DER's
    latest recorded assessment (``POST /ders/{id}/hosting-capacity``), links that assessment to the review and
    puts its flag and binding element in the audit record.
    """
    der = _territory_der(ctx, der_id, Action.DER_REVIEW)
    reason = require_reason(reason)
    assessment = ctx.uow.envelopes.hosting.latest(der.id)
    if hosting_capacity_kw is None and assessment is not None:
        hosting_capacity_kw = assessment.p_export_max_kw
    before = der.snapshot()
    now = ctx.clock.now()
    if decision is ReviewDecision.APPROVED:
        der.approve(
            der.p_export_kw if export_limit_kw is None else export_limit_kw,
            der.p_import_kw if import_limit_kw is None else import_limit_kw,
            now,
        )
    else:
        der.move(DerAction.REJECT, now)
    review = DerReview(
        id=ctx.new_id(),
        der_id=der.id,
        decision=decision,
        reason=reason,
        attachments=list(attachments or []),
        decided_by=ctx.caller.user_id,
        decided_at=now,
        hosting_capacity_kw=hosting_capacity_kw,
    )
    der.reviews.append(review)
    hosting: dict[str, object] = {}
    if assessment is not None:
        ctx.uow.flush()
        ctx.uow.envelopes.hosting.attach_review(assessment.id, review.id)
        hosting = {
            "hosting_capacity_kw": hosting_capacity_kw,
            "hosting_assessment_id": assessment.id,
            "hosting_exceeded": assessment.exceeds,
            "hosting_binding_element": assessment.binding_element,
        }
    ctx.audit(
        f"der.review.{decision.value}",
        "der",
        der.id,
        before,
        {**der.snapshot(), "reason": reason, "attachments": review.attachments, **hosting},
    )
    return der


def commission(ctx: Context, der_id: str) -> Der:
    """The LDC records that an approved DER is connected and in service. It is registered for every market product
    its technology can provide (``domain.market.capable_products``); its owner or representative may change that
    with ``register_market_products``."""
    der = _territory_der(ctx, der_id, Action.DER_OPERATE)
    before = der.snapshot()
    der.move(DerAction.COMMISSION, ctx.clock.now())
    der.market_products = capable_products(der.technology)
    ctx.audit("der.commission", "der", der.id, before, der.snapshot())
    return der


MARKET_REGISTRATION_STATES = frozenset({DerStatus.IN_SERVICE, DerStatus.ENROLLED, DerStatus.SUSPENDED})
"""States in which a DER's market products can be changed (after commissioning, before retirement)."""


def register_market_products(ctx: Context, der_id: str, products: Collection[Product]) -> Der:
    """The DER's owner or representative sets the wholesale products the DER offers on its own (energy, operating
    reserve; none withdraws it from offering on its own). Each must be one its technology can provide
    (``der.product_not_capable``); the DER must be commissioned and not retired (``der.illegal_transition``).
    Offers for a product it is not registered for are refused with ``offers.not_enrolled``. Audited."""
    require_action(ctx.caller, Action.DER_MARKET_PRODUCTS)
    der = get_der(ctx, der_id)
    if not is_system(ctx.caller) and ctx.caller.participant_id not in (der.owner_id, der.representative_id):
        raise PermissionDenied("only the DER's owner or representative registers its market products", field="der_id")
    chosen = validate_market_products(der.technology, products)
    if der.status not in MARKET_REGISTRATION_STATES:
        raise ConflictError(
            f"DER {der.id} is {der.status.value}; its market products can be set once it is in service",
            field="der_id",
            code=ILLEGAL_TRANSITION,
            details={"current_state": der.status.value},
        )
    before = der.snapshot()
    der.market_products = chosen
    der.updated_at = ctx.clock.now()
    ctx.audit("der.market_products", "der", der.id, before, der.snapshot())
    return der


def suspend(ctx: Context, der_id: str) -> Der:
    """The LDC suspends a DER (in service or enrolled)."""
    return _move(ctx, _territory_der(ctx, der_id, Action.DER_OPERATE), DerAction.SUSPEND, "der.suspend")


def resume(ctx: Context, der_id: str) -> Der:
    """The LDC lifts a suspension; the DER returns to in service."""
    return _move(ctx, _territory_der(ctx, der_id, Action.DER_OPERATE), DerAction.RESUME, "der.resume")


def retire(ctx: Context, der_id: str) -> Der:
    """The owner (or its representative, or the LDC) withdraws or decommissions a DER."""
    require_action(ctx.caller, Action.DER_RETIRE)
    der = get_der(ctx, der_id)
    caller = ctx.caller
    if not is_system(caller) and caller.participant_id not in (
        der.owner_id,
        der.representative_id,
        der.dso_id,
    ):
        raise PermissionDenied("only the DER's owner, representative or LDC may retire it", field="der_id")
    return _move(ctx, der, DerAction.RETIRE, "der.retire")
