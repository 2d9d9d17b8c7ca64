"""Instructions: the TSO's schedules and dispatch after a clearing run, TSO operating instructions, their split
to DERs, the recipients' acknowledgements, and the escalation of unanswered ones.

* ``issue_instructions`` (the TSO): one instruction per resource a run dispatched, to the party the
  interface's model record names: for a DER or an aggregation, its representative, owner or aggregator where
  the record has the TSO dispatch the service there, else the interface's DSO; for a DSO's virtual resource,
  the DSO. Day-ahead runs give schedules, real-time runs dispatch instructions.
* ``split_instruction`` (the recipient: a DSO or an aggregator): a DSO virtual resource's instruction to the
  offers it merged, an aggregation's to its approved members (per interface, by its distribution factors),
  an operating instruction to the DERs under the interface that can cut load. By merit order within the
  envelopes in force (cheapest first, equal prices in member order) or pro rata to what each may deliver.
  Every child keeps its parent's id; what the children cannot take is the parent's ``shortfall_kw``.
* ``respond_to_instruction``: receipt, then accept or reject (with a reason), before the deadline
  (``response_window`` settings per kind).
* ``escalate_overdue``: every open instruction past its deadline is escalated to its issuer, who gets a
  stored notification.

Bulk writes (an issue, a split) append one audit record for the whole batch; a single response or escalation
appends one per instruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from gridbridge.domain.der import Der, Technology
from gridbridge.domain.errors import ConflictError, GridbridgeError, NotFound, PermissionDenied, ValidationFailed
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.market import (
    ALREADY_DISPATCHED,
    ALREADY_SPLIT,
    BAD_PERIOD,
    ILLEGAL_RESPONSE,
    KIND_OF_MARKET,
    NOT_SPLITTABLE,
    RESPONSES_REJECTED,
    SERVICE_BEYOND_CAPABILITY,
    SERVICE_DER_NOT_OPERATING,
    SERVICE_OF,
    SERVICE_WINDOW_MISALIGNED,
    SERVICE_WINDOW_PAST,
    ClearingRun,
    Instruction,
    InstructionKind,
    InstructionProduct,
    InstructionStatus,
    Notification,
    NotificationKind,
    ResourceKind,
    Response,
    SplitMethod,
    SplitOutcome,
    StoredOffer,
    respond,
    splittable,
    tso_sees_der_instruction,
)
from gridbridge.domain.offers import Market, Product, Side
from gridbridge.domain.permissions import Action, DerScope, is_system, require_action
from gridbridge.domain.roles import Role
from gridbridge.domain.validation import OUT_OF_RANGE, REQUIRED, require_positive
from gridbridge.engines.clearing import CurveSet
from gridbridge.engines.clearing.curves import merit_order
from gridbridge.engines.disaggregation import Disaggregation, split_merit_order, split_pro_rata
from gridbridge.services.clearing import get_run
from gridbridge.services.conflicts import check_instructions, expire_amendments
from gridbridge.services.context import Context
from gridbridge.services.market_ports import InstructionFilter
from gridbridge.services.offers import (
    aggregation_members_at,
    der_offer_limit,
    market_scope,
    members_available_kw,
)
from gridbridge.services.ports import Page
from gridbridge.services.tdis import get_tdi, model_in_force

_TOL_KW = 1e-6
MAX_RESPONSES = 5000
LOAD_CURTAILERS = frozenset({Technology.DEMAND_RESPONSE, Technology.EV_CHARGING, Technology.STORAGE})
"""DER technologies a DSO can ask to cut load under an operating instruction."""


def _tso_participant(ctx: Context) -> str:
    """The issuer of TSO instructions: the calling TSO, or (for the platform administrator) the TSO on record."""
    if ctx.caller.role is Role.TSO and not is_system(ctx.caller):
        return ctx.caller.participant_id
    tsos = sorted((p for p in ctx.uow.participants.list_all() if p.role is Role.TSO), key=lambda p: p.name)
    return tsos[0].id if tsos else ctx.caller.participant_id


def get_instruction(ctx: Context, instruction_id: str) -> Instruction:
    """An instruction the caller may see; an invisible one is reported exactly like a missing one."""
    instruction = ctx.uow.market.instructions.get(instruction_id)
    if instruction is None or not market_scope(ctx).allows_instruction(instruction):
        raise NotFound(f"no instruction {instruction_id}", field="instruction_id")
    return instruction


def list_instructions(ctx: Context, page: Page, filters: InstructionFilter | None = None) -> list[Instruction]:
    """Instructions the caller may see (issued by or to it; an LDC's at its interfaces; the TSO's per model)."""
    return ctx.uow.market.instructions.query(market_scope(ctx), page, filters or InstructionFilter())


def children_of(ctx: Context, instruction: Instruction) -> list[Instruction]:
    """The children of a visible instruction that the caller may see."""
    scope = market_scope(ctx)
    return [c for c in ctx.uow.market.instructions.children(instruction.id) if scope.allows_instruction(c)]


# --- issuing after a clearing run -------------------------------------------------------------------------


def issue_instructions(ctx: Context, run_id: str) -> list[Instruction]:
    """Issue the schedules (day-ahead) or dispatch instructions (real time) of a clearing run.

    One energy instruction per resource with a non-zero dispatch (negative ``p_kw``: consumption) and one
    reserve instruction per resource holding reserve, each with a deadline of ``now`` plus the kind's
    response window. A run's instructions are issued once (``clearing.already_dispatched``).
    """
    require_action(ctx.caller, Action.INSTRUCTION_ISSUE)
    run = get_run(ctx, run_id)
    if run.dispatched_at is not None:
        raise ConflictError(
            f"run {run.id} was dispatched at {run.dispatched_at.isoformat()}",
            field="run_id",
            code=ALREADY_DISPATCHED,
        )
    now = ctx.clock.now()
    rules = ctx.settings.market.rules(run.market)
    kind = KIND_OF_MARKET[run.market]
    deadline = now + ctx.settings.market.response_window(kind)
    tso = _tso_participant(ctx)
    out: list[Instruction] = []
    for result in run.resources:
        for product, p_kw, offer_id in (
            (Product.ENERGY, result.p_kw, result.energy_offer_id),
            (Product.OPERATING_RESERVE, result.reserve_kw, result.reserve_offer_id),
        ):
            if abs(p_kw) <= _TOL_KW:
                continue
            recipient = _recipient(
                ctx, result.resource_kind, result.tdi_id, result.party_id, result.dso_id, run.interval_start, product
            )
            out.append(
                Instruction(
                    id=ctx.new_id(),
                    kind=kind,
                    market=run.market,
                    product=InstructionProduct(product.value),
                    interval_start=run.interval_start,
                    interval_end=run.interval_start + rules.interval,
                    p_kw=p_kw,
                    issuer_id=tso,
                    recipient_id=recipient,
                    resource_kind=result.resource_kind,
                    resource_id=result.resource_id,
                    der_id=result.resource_id if result.resource_kind is ResourceKind.DER else None,
                    tdi_id=result.tdi_id,
                    dso_id=result.dso_id,
                    parent_id=None,
                    run_id=run.id,
                    offer_id=offer_id,
                    status=InstructionStatus.ISSUED,
                    issued_at=now,
                    deadline_at=deadline,
                    tso_visible=True,
                )
            )
    out.extend(_interface_schedules(ctx, run, tso, kind, now, deadline))
    out = check_instructions(ctx, out)
    ctx.uow.market.instructions.add_many(out)
    ctx.uow.market.runs.mark_dispatched(run.id, now)
    ctx.audit(
        "instructions.issue",
        "clearing_run",
        run.id,
        None,
        {"instructions": [i.id for i in out], "kind": kind.value, "deadline_at": deadline.isoformat()},
    )
    return out


def _interface_schedules(
    ctx: Context, run: ClearingRun, tso: str, kind: InstructionKind, now: datetime, deadline: datetime
) -> list[Instruction]:
    """Where the model record has the DSO balance its local area (``distribution_level_balancing``), the DSO
    gets the interface's scheduled net exchange: ``p_kw`` is the net injection into transmission (negative:
    net import), the target it balances its area to. Without a load forecast it is the scheduled and dispatched
    injection alone (the reason says so)."""
    rules = ctx.settings.market.rules(run.market)
    out = []
    for face in run.interfaces:
        model = model_in_force(ctx.uow, face.tdi_id, run.interval_start)
        if not model.distribution_level_balancing:
            continue
        tdi = get_tdi(ctx.uow, face.tdi_id)
        reason = "scheduled net exchange at the interface (the DSO balances its local area)"
        if not face.net_flow_known:
            reason = (
                "scheduled exchange of the market resources at the interface: the TSO gave no load forecast, so the "
                "DSO balances its local area's load on top of it"
            )
        out.append(
            Instruction(
                id=ctx.new_id(),
                kind=kind,
                market=run.market,
                product=InstructionProduct.ENERGY,
                interval_start=run.interval_start,
                interval_end=run.interval_start + rules.interval,
                p_kw=round(-face.net_flow_kw, 6) + 0.0,
                issuer_id=tso,
                recipient_id=tdi.dso_id,
                resource_kind=ResourceKind.INTERFACE,
                resource_id=tdi.id,
                der_id=None,
                tdi_id=tdi.id,
                dso_id=tdi.dso_id,
                parent_id=None,
                run_id=run.id,
                offer_id=None,
                status=InstructionStatus.ISSUED,
                issued_at=now,
                deadline_at=deadline,
                tso_visible=True,
                reason=reason,
            )
        )
    return out


def _recipient(
    ctx: Context,
    kind: ResourceKind,
    tdi_id: str | None,
    party_id: str,
    dso_id: str | None,
    interval_start: datetime,
    product: Product,
) -> str:
    """The party the interface's model record names for a TSO instruction about this resource."""
    if kind is ResourceKind.DSO_VIRTUAL or tdi_id is None or dso_id is None:
        return party_id
    model = model_in_force(ctx.uow, tdi_id, interval_start)
    return party_id if model.dispatches(Role.TSO, SERVICE_OF[product]) else dso_id


# --- TSO operating instructions ---------------------------------------------------------------------------


def issue_operating_instruction(
    ctx: Context,
    tdi_id: str,
    *,
    p_kw: float,
    interval_start: datetime,
    interval_end: datetime,
    reason: str,
) -> Instruction:
    """The TSO instructs the party its model record names for coordination at an interface (the DSO) to cut
    ``p_kw`` of load under it over ``[interval_start, interval_end)``, outside the market (for example in a
    bulk-system emergency). The DSO allocates it to resources with ``split_instruction``."""
    require_action(ctx.caller, Action.OPERATING_INSTRUCTION)
    tdi = get_tdi(ctx.uow, tdi_id)
    require_positive(p_kw, "p_kw")
    for name, value in (("interval_start", interval_start), ("interval_end", interval_end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationFailed(f"{name} must be timezone-aware", field=name, code=BAD_PERIOD)
    if interval_end <= interval_start:
        raise ValidationFailed("interval_end must be after interval_start", field="interval_end", code=BAD_PERIOD)
    if not reason or not reason.strip():
        raise ValidationFailed("an operating instruction needs a reason", field="reason", code=REQUIRED)
    model = model_in_force(ctx.uow, tdi.id, interval_start)
    recipient = tdi.dso_id if model.tso_coordination_party is Role.DSO else _tso_participant(ctx)
    now = ctx.clock.now()
    instruction = Instruction(
        id=ctx.new_id(),
        kind=InstructionKind.OPERATING,
        market=None,
        product=InstructionProduct.LOAD_CURTAILMENT,
        interval_start=interval_start,
        interval_end=interval_end,
        p_kw=float(p_kw),
        issuer_id=_tso_participant(ctx),
        recipient_id=recipient,
        resource_kind=ResourceKind.INTERFACE,
        resource_id=tdi.id,
        der_id=None,
        tdi_id=tdi.id,
        dso_id=tdi.dso_id,
        parent_id=None,
        run_id=None,
        offer_id=None,
        status=InstructionStatus.ISSUED,
        issued_at=now,
        deadline_at=now + ctx.settings.market.response_window(InstructionKind.OPERATING),
        tso_visible=True,
        reason=reason.strip(),
    )
    ctx.uow.market.instructions.add_many([instruction])
    ctx.audit("instruction.operating", "instruction", instruction.id, None, instruction.snapshot())
    return instruction


# --- DSO distribution service dispatch ------------------------------------------------------------------


def dispatch_distribution_service(
    ctx: Context,
    der_id: str,
    *,
    p_kw: float,
    interval_start: datetime,
    interval_end: datetime,
    reason: str,
) -> Instruction:
    """The DSO of the DER's interface dispatches the DER for a distribution service (non-wires deferral,
    distribution operations) over ``[interval_start, interval_end)``: ``p_kw`` positive for injection
    (discharge, load reduction), negative for withdrawal. The instruction goes to the DER's representative
    (its aggregator) or else its owner, with kind ``distribution_service``.

    Only a DSO (or the platform administrator) may dispatch, and only a DER at one of its own interfaces: any
    other DER answers ``not_found`` exactly like a missing one. Raises ``instructions.der_not_operating`` for a
    DER neither enrolled nor in service, ``instructions.bad_period`` for a window that does not end after it
    starts or is not timezone-aware, ``instructions.window_misaligned`` off the real-time interval grid,
    ``instructions.window_in_past`` for a window starting before now, ``instructions.beyond_capability`` when
    ``|p_kw|`` exceeds the DER's export (or import) capability, ``required`` without a reason. The instruction
    then goes through conflict detection with every stored instruction to the DER (``services.conflicts``).
    """
    if not (is_system(ctx.caller) or ctx.caller.role is Role.DSO):
        raise PermissionDenied("only a DSO dispatches DERs for distribution services", field="der_id")
    der = ctx.uow.ders.get(der_id)
    if der is None or not (is_system(ctx.caller) or der.dso_id == ctx.caller.participant_id):
        raise NotFound(f"no DER {der_id} at the caller's interfaces", field="der_id")
    if der.status not in (DerStatus.IN_SERVICE, DerStatus.ENROLLED):
        raise ConflictError(
            f"DER {der.id} is {der.status.value}; only DERs enrolled or in service can be dispatched",
            field="der_id",
            code=SERVICE_DER_NOT_OPERATING,
            details={"current_state": der.status.value},
        )
    _check_window(ctx, interval_start, interval_end)
    value = float(p_kw)
    if not np.isfinite(value) or value == 0.0:
        raise ValidationFailed("p_kw must be a finite, non-zero number of kW", field="p_kw", code=OUT_OF_RANGE)
    capability = der.p_export_kw if value > 0 else der.p_import_kw
    if abs(value) > capability + _TOL_KW:
        side = "export" if value > 0 else "import"
        raise ValidationFailed(
            f"|p_kw| {abs(value):g} kW exceeds the DER's {side} capability of {capability:g} kW",
            field="p_kw",
            code=SERVICE_BEYOND_CAPABILITY,
            details={"capability_kw": capability, "side": side},
        )
    if not reason or not reason.strip():
        raise ValidationFailed("a distribution service dispatch needs a reason", field="reason", code=REQUIRED)
    now = ctx.clock.now()
    model = model_in_force(ctx.uow, der.tdi_id, interval_start)
    instruction = Instruction(
        id=ctx.new_id(),
        kind=InstructionKind.SERVICE,
        market=None,
        product=InstructionProduct.ENERGY,
        interval_start=interval_start,
        interval_end=interval_end,
        p_kw=value,
        issuer_id=der.dso_id,
        recipient_id=der.representative_id or der.owner_id,
        resource_kind=ResourceKind.DER,
        resource_id=der.id,
        der_id=der.id,
        tdi_id=der.tdi_id,
        dso_id=der.dso_id,
        parent_id=None,
        run_id=None,
        offer_id=None,
        status=InstructionStatus.ISSUED,
        issued_at=now,
        deadline_at=now + ctx.settings.market.response_window(InstructionKind.DISPATCH),
        tso_visible=tso_sees_der_instruction(model, der.market_participating),
        reason=reason.strip(),
    )
    checked = check_instructions(ctx, [instruction])
    ctx.uow.market.instructions.add_many(checked)
    ctx.audit("instruction.service", "instruction", instruction.id, None, checked[0].snapshot())
    return checked[0]


def _check_window(ctx: Context, interval_start: datetime, interval_end: datetime) -> None:
    for name, value in (("interval_start", interval_start), ("interval_end", interval_end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationFailed(f"{name} must be timezone-aware", field=name, code=BAD_PERIOD)
    if interval_end <= interval_start:
        raise ValidationFailed("interval_end must be after interval_start", field="interval_end", code=BAD_PERIOD)
    step = int(ctx.settings.market.rules(Market.REAL_TIME).interval.total_seconds())
    for name, value in (("interval_start", interval_start), ("interval_end", interval_end)):
        if value.microsecond or int(value.timestamp()) % step:
            raise ValidationFailed(
                f"{name} {value.isoformat()} is not on the {step // 60}-minute real-time interval grid",
                field=name,
                code=SERVICE_WINDOW_MISALIGNED,
            )
    if interval_start < ctx.clock.now():
        raise ValidationFailed(
            f"interval_start {interval_start.isoformat()} is before now ({ctx.clock.now().isoformat()})",
            field="interval_start",
            code=SERVICE_WINDOW_PAST,
        )


# --- splitting to DERs ------------------------------------------------------------------------------------


@dataclass
class _Member:
    """One resource an instruction can be split to."""

    kind: ResourceKind
    resource_id: str
    recipient_id: str
    der: Der | None
    available_kw: float
    segments: tuple[list[float], list[float]]
    """Prices and quantities of its curve (merit order); quantities are capped by ``available_kw``."""
    parent_slot: int = 0
    """Which piece of the parent it serves (an interface of a multi-interface aggregation)."""
    offer_id: str | None = None
    tdi_id: str | None = None
    dso_id: str | None = None


def _der_member(
    der: Der, available_kw: float, price: float, slot: int = 0, offer: StoredOffer | None = None
) -> _Member:
    return _Member(
        ResourceKind.DER,
        der.id,
        der.representative_id or der.owner_id,
        der,
        max(available_kw, 0.0),
        ([price], [max(available_kw, 0.0)]),
        slot,
        offer.id if offer else None,
        der.tdi_id,
        der.dso_id,
    )


def _virtual_members(ctx: Context, parent: Instruction) -> tuple[list[_Member], list[float]]:
    offer = ctx.uow.market.offers.get(parent.offer_id or "")
    if offer is None:
        return [], [abs(parent.p_kw)]
    sources = ctx.uow.market.offers.get_many(list(offer.source_offer_ids))
    found = ctx.uow.ders.get_many(s.resource_id for s in sources if s.resource_kind is ResourceKind.DER)
    members = []
    for source, available in zip(sources, members_available_kw(ctx, sources, parent.interval_end), strict=True):
        prices = [float(s.price_cad_per_mwh) for s in source.segments]
        quantities = [float(s.quantity_kw) for s in source.segments]
        if source.resource_kind is ResourceKind.DER:
            der = found.get(source.resource_id)
            if der is None:
                continue
            member = _der_member(der, available, 0.0, offer=source)
            member.segments = (prices, quantities)
        else:
            member = _Member(
                source.resource_kind,
                source.resource_id,
                source.party_id,
                None,
                available,
                (prices, quantities),
                0,
                source.id,
                source.tdi_id,
                source.dso_id,
            )
        members.append(member)
    return members, [abs(parent.p_kw)]


def _aggregation_members(ctx: Context, parent: Instruction) -> tuple[list[_Member], list[float]]:
    aggregation = ctx.uow.aggregations.get(parent.resource_id)
    if aggregation is None:
        return [], [abs(parent.p_kw)]
    factors = aggregation.distribution_factors()
    slots = {tdi_id: n for n, tdi_id in enumerate(sorted(factors))}
    pieces = [abs(parent.p_kw) * factors[t] for t in sorted(factors)] or [abs(parent.p_kw)]
    der_ids = aggregation_members_at(aggregation, parent.interval_start)
    limits = ctx.uow.market.envelopes.der_limits(der_ids, parent.interval_start, parent.interval_end)
    side = Side.BID if parent.p_kw < 0 else Side.OFFER
    found = ctx.uow.ders.get_many(der_ids)
    members = []
    for der_id in der_ids:
        der = found.get(der_id)
        if der is None:
            continue
        available, _ = der_offer_limit(der, limits.get(der_id), side)
        members.append(_der_member(der, available, 0.0, slots.get(der.tdi_id, 0)))
    return members, pieces


def _interface_members(ctx: Context, parent: Instruction) -> tuple[list[_Member], list[float]]:
    """DERs under the interface able to cut load, each with the lowest price of its real-time energy offer for
    the interval (DERs without one come last, at the market's price cap)."""
    tdi_id = parent.resource_id
    ders = [
        d
        for d in ctx.uow.ders.query(DerScope(everything=True), Page(limit=1_000_000), tdi_id=tdi_id)
        if d.status in (DerStatus.IN_SERVICE, DerStatus.ENROLLED) and d.technology in LOAD_CURTAILERS
    ]
    limits = ctx.uow.market.envelopes.der_limits([d.id for d in ders], parent.interval_start, parent.interval_end)
    rules = ctx.settings.market.rules(Market.REAL_TIME)
    step = int(rules.interval.total_seconds())
    stamp = int(parent.interval_start.timestamp())
    start = datetime.fromtimestamp(stamp - stamp % step, UTC)
    prices: dict[str, float] = {}
    for offer in ctx.uow.market.offers.current(Market.REAL_TIME, start, tdi_id=tdi_id):
        if offer.resource_kind is ResourceKind.DER and offer.product is Product.ENERGY and offer.segments:
            prices[offer.resource_id] = float(offer.segments[0].price_cad_per_mwh)
    cap = float(rules.price_bounds.cap_cad_per_mwh)
    members = []
    for der in ders:
        lim = limits.get(der.id)
        available = lim.import_kw if lim is not None else 0.0
        if available > 0:
            members.append(_der_member(der, available, prices.get(der.id, cap)))
    return members, [abs(parent.p_kw)]


def _split(members: list[_Member], pieces: list[float], method: SplitMethod, descending: bool) -> Disaggregation:
    parent_of = np.array([m.parent_slot for m in members], dtype=np.int64)
    available = np.array([m.available_kw for m in members], dtype=np.float64)
    target = np.array(pieces, dtype=np.float64)
    if method is SplitMethod.PRO_RATA:
        return split_pro_rata(target, parent_of, available)
    curves = CurveSet.from_lists([m.segments[0] for m in members], [m.segments[1] for m in members])
    order = merit_order(parent_of[curves.owner()], curves.price_cad_per_mwh, descending=descending)
    return split_merit_order(target, parent_of, curves, available_kw=available, order=order)


def split_instruction(ctx: Context, instruction_id: str, method: SplitMethod = SplitMethod.MERIT_ORDER) -> SplitOutcome:
    """The recipient splits an instruction to the resources behind it (see the module docstring).

    Children are issued by the parent's recipient to each resource's party, with the parent's kind, product
    and interval, a fresh deadline, and ``parent_id``; they are written in bulk. Raises
    ``instructions.not_splittable`` for a DER's own instruction, ``instructions.already_split`` the second
    time, and ``instructions.illegal_transition`` for a rejected or escalated instruction.
    """
    require_action(ctx.caller, Action.INSTRUCTION_SPLIT)
    parent = get_instruction(ctx, instruction_id)
    if not is_system(ctx.caller) and ctx.caller.participant_id != parent.recipient_id:
        raise PermissionDenied("only the instruction's recipient may split it", field="instruction_id")
    if not splittable(parent):
        raise ConflictError(
            f"an instruction to a {parent.resource_kind.value} about {parent.product.value} is not split",
            field="instruction_id",
            code=NOT_SPLITTABLE,
        )
    if parent.split_at is not None:
        raise ConflictError(
            f"instruction {parent.id} was split at {parent.split_at.isoformat()}",
            field="instruction_id",
            code=ALREADY_SPLIT,
        )
    if parent.status in (InstructionStatus.REJECTED, InstructionStatus.ESCALATED):
        raise ConflictError(
            f"instruction {parent.id} is {parent.status.value}",
            field="instruction_id",
            code=ILLEGAL_RESPONSE,
            details={"current_state": parent.status.value},
        )
    if parent.resource_kind is ResourceKind.DSO_VIRTUAL:
        members, pieces = _virtual_members(ctx, parent)
    elif parent.resource_kind is ResourceKind.AGGREGATION:
        members, pieces = _aggregation_members(ctx, parent)
    else:
        members, pieces = _interface_members(ctx, parent)
    now = ctx.clock.now()
    children: list[Instruction] = []
    shortfall = abs(parent.p_kw)
    if members:
        result = _split(members, pieces, method, descending=parent.p_kw < 0)
        shortfall = float(result.shortfall_kw.sum())
        sign = -1.0 if parent.p_kw < 0 else 1.0
        deadline = now + ctx.settings.market.response_window(parent.kind)
        for member, p in zip(members, result.member_p_kw.tolist(), strict=True):
            if p <= _TOL_KW:
                continue
            children.append(
                Instruction(
                    id=ctx.new_id(),
                    kind=parent.kind,
                    market=parent.market,
                    product=parent.product,
                    interval_start=parent.interval_start,
                    interval_end=parent.interval_end,
                    p_kw=round(sign * p, 6),
                    issuer_id=parent.recipient_id,
                    recipient_id=member.recipient_id,
                    resource_kind=member.kind,
                    resource_id=member.resource_id,
                    der_id=member.der.id if member.der else None,
                    tdi_id=member.tdi_id,
                    dso_id=member.dso_id,
                    parent_id=parent.id,
                    run_id=parent.run_id,
                    offer_id=member.offer_id,
                    status=InstructionStatus.ISSUED,
                    issued_at=now,
                    deadline_at=deadline,
                    tso_visible=_tso_visible(ctx, member, parent.interval_start),
                    reason=parent.reason,
                )
            )
    updated = replace(parent, split_method=method, split_at=now, shortfall_kw=round(shortfall, 6))
    children = check_instructions(ctx, children)
    ctx.uow.market.instructions.add_many(children)
    ctx.uow.market.instructions.update(updated)
    if shortfall > _TOL_KW:
        _notify_split_shortfall(ctx, updated, shortfall, now)
    ctx.audit(
        "instruction.split",
        "instruction",
        parent.id,
        parent.snapshot(),
        {**updated.snapshot(), "children": [c.id for c in children]},
    )
    return SplitOutcome(updated, children, shortfall)


def _notify_split_shortfall(ctx: Context, parent: Instruction, shortfall_kw: float, now: datetime) -> None:
    """Tell the parent's issuer, and the issuer of the instruction the parent comes from (the TSO, for a market
    or operating instruction), what the split could not place."""
    root = parent
    while root.parent_id is not None:
        above = ctx.uow.market.instructions.get(root.parent_id)
        if above is None:
            break
        root = above
    ctx.uow.market.notifications.add_many(
        [
            Notification(
                id=ctx.new_id(),
                recipient_id=recipient,
                kind=NotificationKind.SPLIT_SHORTFALL,
                created_at=now,
                message=(
                    f"{parent.recipient_id} split {parent.kind.value} {parent.id} ({parent.resource_kind.value} "
                    f"{parent.resource_id}, {parent.p_kw:g} kW) and could place only "
                    f"{abs(parent.p_kw) - shortfall_kw:.3f} kW: {shortfall_kw:.3f} kW is undeliverable under the "
                    "envelopes in force"
                ),
                tdi_id=parent.tdi_id,
                market=parent.market,
                interval_start=parent.interval_start,
                magnitude_kw=round(shortfall_kw, 6),
                run_id=parent.run_id,
                instruction_id=parent.id,
            )
            for recipient in sorted({parent.issuer_id, root.issuer_id} - {parent.recipient_id})
        ]
    )


def _tso_visible(ctx: Context, member: _Member, when: datetime) -> bool:
    if member.der is None:
        return True  # an aggregation in a wholesale market is visible to the TSO
    model = model_in_force(ctx.uow, member.der.tdi_id, when)
    return tso_sees_der_instruction(model, member.der.market_participating)


# --- acknowledgements -------------------------------------------------------------------------------------


def respond_to_instruction(
    ctx: Context, instruction_id: str, response: Response, reason: str | None = None
) -> Instruction:
    """The recipient acknowledges an instruction: a receipt, then an acceptance or a rejection with a reason,
    before the deadline (see ``domain.market.respond`` for the codes). Audited."""
    require_action(ctx.caller, Action.INSTRUCTION_RESPOND)
    instruction = get_instruction(ctx, instruction_id)
    if not is_system(ctx.caller) and ctx.caller.participant_id != instruction.recipient_id:
        raise PermissionDenied("only the instruction's recipient may answer it", field="instruction_id")
    updated = respond(instruction, response, ctx.clock.now(), reason)
    ctx.uow.market.instructions.update(updated)
    ctx.audit(
        f"instruction.{response.value}", "instruction", instruction.id, instruction.snapshot(), updated.snapshot()
    )
    return updated


@dataclass(frozen=True)
class ResponseItem:
    """One response of a batch."""

    instruction_id: str
    response: Response
    reason: str | None = None


@dataclass(frozen=True)
class ResponseAck:
    """The outcome of one response of a batch: the instruction after it, or the refusal's code."""

    index: int
    item: ResponseItem
    instruction: Instruction | None
    code: str | None = None
    message: str | None = None
    field: str | None = None

    def summary(self) -> dict[str, object]:
        """Plain JSON values (also inside a batch refusal)."""
        return {
            "index": self.index,
            "instruction_id": self.item.instruction_id,
            "response": self.item.response.value,
            "status": "accepted" if self.instruction is not None else "rejected",
            "instruction_status": self.instruction.status.value if self.instruction else None,
            "code": self.code,
            "field": self.field,
            "message": self.message,
        }


def respond_many(ctx: Context, items: Sequence[ResponseItem]) -> list[ResponseAck]:
    """Apply a batch of responses in order, each on its own (a refused one changes nothing, later ones still
    apply); a receipt and an acceptance of one instruction may follow each other in one batch. If every
    response is refused, raises ``instructions.batch_rejected`` with the outcomes in ``details["items"]``."""
    require_action(ctx.caller, Action.INSTRUCTION_RESPOND)
    if not items:
        raise ValidationFailed("a batch needs at least one response", field="items", code=REQUIRED)
    if len(items) > MAX_RESPONSES:
        raise ValidationFailed(f"at most {MAX_RESPONSES} responses per batch", field="items", code=OUT_OF_RANGE)
    acks = []
    for index, item in enumerate(items):
        try:
            updated = respond_to_instruction(ctx, item.instruction_id, item.response, item.reason)
            acks.append(ResponseAck(index, item, updated, "ok"))
        except GridbridgeError as exc:
            acks.append(ResponseAck(index, item, None, exc.code, exc.message, exc.field))
    if all(a.instruction is None for a in acks):
        raise ValidationFailed(
            f"all {len(acks)} responses were refused; see details.items",
            field="items",
            code=RESPONSES_REJECTED,
            details={"items": [a.summary() for a in acks]},
        )
    return acks


# --- escalation -------------------------------------------------------------------------------------------


def escalate_overdue(ctx: Context, now: datetime | None = None, *, limit: int = 100_000) -> list[Instruction]:
    """Escalate open instructions (issued or received) whose deadline is before ``now`` (default: the clock) to
    their issuer: status ``escalated`` and a stored ``instruction_overdue`` notification for the issuer.

    Every issuer escalates its own: a TSO, DSO or aggregator caller only the instructions it issued (a DSO's or
    aggregator's split children, the TSO's schedules and dispatch); the platform (the cycle, the CLI, the
    periodic job of ``gridbridge serve``) escalates every issuer's. Lapsed amendment requests of conflict
    resolutions expire with it, by the same rule (``conflicts.expire_amendments``). Returns the escalated
    instructions, oldest deadline first (at most ``limit`` per call)."""
    require_action(ctx.caller, Action.INSTRUCTION_ESCALATE)
    when = now or ctx.clock.now()
    expire_amendments(ctx, when)
    issuer = None if is_system(ctx.caller) else ctx.caller.participant_id
    overdue = ctx.uow.market.instructions.overdue(when, issuer, limit)
    if not overdue:
        return []
    ctx.uow.market.instructions.escalate([i.id for i in overdue], when)
    escalated = [replace(i, status=InstructionStatus.ESCALATED, escalated_at=when) for i in overdue]
    ctx.uow.market.notifications.add_many(
        [
            Notification(
                id=ctx.new_id(),
                recipient_id=i.issuer_id,
                kind=NotificationKind.INSTRUCTION_OVERDUE,
                created_at=when,
                message=(
                    f"{i.kind.value} {i.id} to {i.recipient_id} ({i.resource_kind.value} {i.resource_id}, "
                    f"{i.p_kw:g} kW) was {i.status.value} at its deadline {i.deadline_at.isoformat()}"
                ),
                tdi_id=i.tdi_id,
                market=i.market,
                interval_start=i.interval_start,
                magnitude_kw=i.p_kw,
                run_id=i.run_id,
                instruction_id=i.id,
            )
            for i in overdue
        ]
    )
    for before, after in zip(overdue, escalated, strict=True):
        ctx.audit("instruction.escalate", "instruction", after.id, before.snapshot(), after.snapshot())
    return escalated


def list_notifications(ctx: Context, page: Page) -> list[Notification]:
    """The caller's notifications (observers and the platform administrator: everyone's), oldest first."""
    scope = market_scope(ctx)
    return ctx.uow.market.notifications.query(None if scope.everything else ctx.caller.participant_id, page)
