"""Conflict management on the platform: detection and resolution wired into offers and instructions, stored
records, per-interface policies, amendment requests, and what each role may see (docs/conflicts.md).

Where detection runs:

* ``check_instructions``: when DER-level instructions are issued (the TSO's instructions to DERs after a
  clearing run, every split child, a DSO's distribution service dispatch, an amended instruction). The new
  instructions are checked together with every live stored instruction to the same DERs that overlaps or
  touches them, transitively (the 12-4 pm and 4-8 pm dispatches of one battery touch at 4 pm).
* ``check_offers``: when offers are submitted; each DER's kW offered directly and through aggregations in one
  interval are commitments, checked for double counting.
* ``check_before_dispatch``: again over the DER-level instructions of a cycle before they go out (network
  events or envelopes may have changed since they were issued).

Each check builds a case (DER capabilities, storage at its most favourable initial state of charge with
``STORAGE_ROUND_TRIP_EFFICIENCY``, the DERs' approved static limits as DER envelopes, the published envelopes
in force as connection-point envelopes and the de-energised ones as outages), detects, resolves under each
interface's stored policy (``DEFAULT_POLICY`` without one), and in the caller's transaction stores every
conflict with its one resolution, adjusts the instructions as the resolution says (a reduced setpoint, or
``cancelled`` at 0 kW, the reason appended), and notifies every party of every outcome with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

import numpy as np

from gridbridge.domain.conflicts import (
    DEFAULT_POLICY,
    RULE_NOT_ALLOWED,
    AmendmentRequest,
    AmendmentStatus,
    Commitment,
    Conflict,
    ConflictInstruction,
    ConflictKind,
    ConnectionPointOutage,
    DerCapability,
    Direction,
    EnvelopeLimit,
    EnvelopeTarget,
    IntervalGrid,
    OutcomeAction,
    ResolutionPolicy,
    ResolutionRule,
    ServicePriorityList,
    StorageSpec,
    SubjectType,
)
from gridbridge.domain.conflicts import InstructionKind as ConflictInstructionKind
from gridbridge.domain.der import Der, Technology
from gridbridge.domain.envelope_publication import DE_ENERGISED_BINDING
from gridbridge.domain.errors import NotFound, PermissionDenied, ValidationFailed
from gridbridge.domain.market import (
    SERVICE_OF,
    Instruction,
    InstructionKind,
    InstructionProduct,
    InstructionStatus,
    Notification,
    NotificationKind,
    ResourceKind,
    Route,
    StoredOffer,
)
from gridbridge.domain.offers import Product, Side
from gridbridge.domain.permissions import is_system
from gridbridge.domain.roles import Role, Service
from gridbridge.domain.validation import NOT_FINITE, OUT_OF_RANGE
from gridbridge.engines.conflicts import build_case, detect_conflicts, resolve_conflicts
from gridbridge.engines.conflicts.case import ConflictCase
from gridbridge.engines.conflicts.resolution import ResolutionResult
from gridbridge.services.conflict_ports import (
    ConflictFilter,
    ConflictScope,
    StoredAmendment,
    StoredConflict,
    outcome_json,
    segments_json,
)
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from gridbridge.services.tdis import get_tdi

STAGE_OFFERS = "offer_submission"
STAGE_ISSUE = "instruction_issue"
STAGE_DISPATCH = "pre_dispatch"
STAGE_AMENDMENT = "amendment"

STORAGE_ROUND_TRIP_EFFICIENCY = 1.0
"""Round-trip efficiency assumed for storage DERs (split evenly between charge and discharge)."""
_TOL_KW = 1e-6
_UNLIMITED_KW = 1e12
"""Stands for "no limit" where the engine needs a finite number."""
_MAX_EXPANSIONS = 16
_PURE_LOADS = frozenset({Technology.DEMAND_RESPONSE, Technology.EV_CHARGING})


# --- building a case from stored records ------------------------------------------------------------------


def _reduces_load(der: Der) -> bool:
    """A DER that cannot inject offers (and is instructed for) load reduction, measured on its import side."""
    return der.p_export_kw <= 0


def _single_issuer(instructions: Sequence[Instruction], roles: Mapping[str, Role]) -> set[str]:
    """DERs whose live instructions are all allocations (split children) by one DSO or aggregator for one
    service category. Hidden coupling needs two parties (or two services): one issuer's own allocations for one
    service (each split respects the DER's availability) are not checked against the DER's capability, storage
    or static limits; published envelopes and outages still apply to them. Direct instructions (the TSO's, a
    DSO's distribution service dispatch) are always checked."""
    issuers: dict[str, set[tuple[str, str]]] = {}
    direct: set[str] = set()
    for i in instructions:
        if i.der_id is not None:
            category = _conflict_instruction(i, roles).category.value
            issuers.setdefault(i.der_id, set()).add((i.issuer_id, category))
            if i.parent_id is None:
                direct.add(i.der_id)
    return {
        d
        for d, who in issuers.items()
        if len(who) == 1 and d not in direct and roles.get(next(iter(who))[0]) is not Role.TSO
    }


def _capability(der: Der, unchecked: bool = False, soc_initial_fraction: float = 1.0) -> DerCapability:
    """Capability as conflict detection sees it; a load-reduction DER's reduction counts as injection.
    ``unchecked``: no capability or storage limit (see ``_single_issuer``)."""
    export_kw = der.p_import_kw if _reduces_load(der) else der.p_export_kw
    if unchecked:
        return DerCapability(der.id, der.tdi_id, str(der.connection_point_id), _UNLIMITED_KW, _UNLIMITED_KW)
    storage = None
    if der.technology is Technology.STORAGE and der.e_kwh:
        storage = StorageSpec.with_round_trip(der.e_kwh, soc_initial_fraction, STORAGE_ROUND_TRIP_EFFICIENCY)
    return DerCapability(
        der.id, der.tdi_id, str(der.connection_point_id), max(export_kw, 0.0), max(der.p_import_kw, 0.0), storage
    )


def _der_envelope(der: Der, start: datetime, end: datetime) -> EnvelopeLimit | None:
    """The DER's approved static limits as its envelope over the horizon (None: no static limit set)."""
    export_kw = der.import_limit_kw if _reduces_load(der) else der.export_limit_kw
    if export_kw is None and der.import_limit_kw is None:
        return None
    return EnvelopeLimit(
        EnvelopeTarget.DER,
        der.id,
        start,
        end,
        float(export_kw) if export_kw is not None else _UNLIMITED_KW,
        float(der.import_limit_kw) if der.import_limit_kw is not None else _UNLIMITED_KW,
    )


def _grid(times: Iterable[datetime]) -> IntervalGrid:
    """The coarsest interval grid on which every given time is a boundary."""
    stamps = sorted({int(t.timestamp()) for t in times})
    start = stamps[0]
    step = reduce(math.gcd, (s - start for s in stamps[1:]), 0) or 300
    n = max(1, (stamps[-1] - start) // step)
    return IntervalGrid(datetime.fromtimestamp(start, tz=UTC), timedelta(seconds=step), n)


def _roles(ctx: Context) -> dict[str, Role]:
    return {p.id: p.role for p in ctx.uow.participants.list_all()}


def _conflict_instruction(i: Instruction, roles: Mapping[str, Role]) -> ConflictInstruction:
    """An instruction as conflict detection sees it: its service category follows from kind, product, issuer."""
    assert i.der_id is not None
    p_kw = i.p_kw
    if i.kind is InstructionKind.OPERATING:
        kind, service, role = ConflictInstructionKind.OPERATING_INSTRUCTION, Service.WHOLESALE_ENERGY, Role.TSO
        p_kw = abs(p_kw)
    elif i.kind is InstructionKind.SERVICE:
        kind, service, role = ConflictInstructionKind.DISPATCH, Service.DISTRIBUTION_SERVICES, Role.DSO
    else:
        kind = (
            ConflictInstructionKind.SCHEDULE if i.kind is InstructionKind.SCHEDULE else ConflictInstructionKind.DISPATCH
        )
        product = Product.OPERATING_RESERVE if i.product is InstructionProduct.OPERATING_RESERVE else Product.ENERGY
        service = SERVICE_OF[product]
        role = roles.get(i.issuer_id, Role.TSO)
        if role not in (Role.TSO, Role.DSO, Role.AGGREGATOR):
            role = Role.TSO
        if i.product is not InstructionProduct.ENERGY:
            p_kw = abs(p_kw)
    return ConflictInstruction(
        instruction_id=i.id,
        issuer_party_id=i.issuer_id,
        issuer_role=role,
        recipient_party_id=i.recipient_id,
        der_id=i.der_id,
        service=service,
        kind=kind,
        start=i.interval_start,
        end=i.interval_end,
        p_kw=p_kw,
        issued_at=i.issued_at,
    )


def _favourable_soc(
    der: Der, instructions: Sequence[Instruction], grid: IntervalGrid, roles: Mapping[str, Role]
) -> float:
    """The most favourable initial state of charge of a storage DER for its instructions on ``grid``: the
    lowest that never runs empty. Stored DERs carry no measured state of charge, so a storage conflict is
    flagged only when no initial state of charge makes the instructions deliverable (the white paper's
    battery, dispatched 12-8 pm, fails even when full at noon)."""
    if der.technology is not Technology.STORAGE or not der.e_kwh:
        return 1.0
    p_kw = np.zeros(grid.n_intervals)
    for i in instructions:
        if i.der_id == der.id:
            span = grid.overlapping(i.interval_start, i.interval_end)
            p_kw[span.start : span.stop] += _conflict_instruction(i, roles).p_kw
    eta = math.sqrt(STORAGE_ROUND_TRIP_EFFICIENCY)
    delta_kwh = np.where(p_kw > 0, -p_kw * grid.dt_h / eta, -p_kw * grid.dt_h * eta)
    lowest = min(0.0, float(np.cumsum(delta_kwh).min()))
    return min(-lowest, der.e_kwh) / der.e_kwh


def _limits(
    ctx: Context, ders: Sequence[Der], start: datetime, end: datetime, unchecked: set[str]
) -> tuple[list[EnvelopeLimit], list[ConnectionPointOutage]]:
    """DER envelopes from approved static limits; connection-point envelopes and outages from the published
    envelopes in force (a de-energised one is an outage). A point with a load-reduction DER gets no point
    envelope: its published limits bound net injection, which a load reduction does not map to."""
    envelopes = [e for d in ders if d.id not in unchecked and (e := _der_envelope(d, start, end)) is not None]
    outages: list[ConnectionPointOutage] = []
    points = sorted({d.connection_point_id for d in ders})
    loads = {d.connection_point_id for d in ders if _reduces_load(d)}
    for env in ctx.uow.envelopes.envelopes.current(points, start, end):
        span = (max(env.interval_start, start), min(env.interval_end, end))
        if span[1] <= span[0]:
            continue
        if env.binding_export == DE_ENERGISED_BINDING:
            outages.append(ConnectionPointOutage(str(env.connection_point_id), *span))
        elif env.connection_point_id not in loads:
            envelopes.append(
                EnvelopeLimit(
                    EnvelopeTarget.CONNECTION_POINT,
                    str(env.connection_point_id),
                    *span,
                    env.p_export_max_kw,
                    env.p_import_max_kw,
                )
            )
    return envelopes, outages


def _policies(ctx: Context, tdi_ids: Iterable[str]) -> dict[str, ResolutionPolicy]:
    return {t: ctx.uow.conflicts.policy(t) or DEFAULT_POLICY for t in sorted(set(tdi_ids))}


def policy_for(ctx: Context, tdi_id: str) -> ResolutionPolicy:
    """The policy conflicts at ``tdi_id`` are resolved under: the stored one, else ``DEFAULT_POLICY``."""
    return ctx.uow.conflicts.policy(tdi_id) or DEFAULT_POLICY


# --- storing, applying, notifying -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What the storing step needs besides the engine's result."""

    ders: Mapping[str, Der]
    instructions: Mapping[str, Instruction]
    roles: Mapping[str, Role]


def _upstream(ctx: Context, instruction: Instruction | None) -> set[str]:
    """The issuers of the instructions ``instruction`` was split from (the TSO behind a DSO's allocation)."""
    out: set[str] = set()
    seen: set[str] = set()
    parent_id = instruction.parent_id if instruction else None
    while parent_id and parent_id not in seen:
        seen.add(parent_id)
        parent = ctx.uow.market.instructions.get(parent_id)
        if parent is None:
            break
        out.add(parent.issuer_id)
        parent_id = parent.parent_id
    return out


def _parties(c: Conflict, result_outcomes: Iterable[tuple[str, str]], env: _Context, dso_id: str) -> list[str]:
    parties = set(c.party_ids) | {dso_id}
    for issuer, recipient in result_outcomes:
        parties.update((issuer, recipient))
    for der_id in c.der_ids:
        der = env.ders.get(der_id)
        if der is not None:
            parties.add(der.owner_id)
            if der.representative_id:
                parties.add(der.representative_id)
    return sorted(parties)


def _record(
    ctx: Context, case: ConflictCase, conflicts: Sequence[Conflict], result: ResolutionResult, stage: str, env: _Context
) -> list[StoredConflict]:
    """Store every conflict with its resolution and amendment requests, and notify every party of each outcome."""
    now = ctx.clock.now()
    stored: list[StoredConflict] = []
    requests: dict[str, list[AmendmentRequest]] = {}
    for request in result.amendment_requests:
        requests.setdefault(request.conflict_id, []).append(request)
    notes: list[Notification] = []
    for conflict, resolution in zip(conflicts, result.resolutions, strict=True):
        tdi = get_tdi(ctx.uow, conflict.tdi_id)
        conflict_id = ctx.new_id()
        involved = [env.instructions[i] for i in conflict.instruction_ids if i in env.instructions]
        tso_visible = any(i.tso_visible for i in involved)
        record = StoredConflict(
            id=conflict_id,
            stage=stage,
            dso_id=tdi.dso_id,
            tso_visible=tso_visible,
            detected_at=now,
            conflict=conflict,
            resolution=replace(resolution, resolution_id=ctx.new_id(), conflict_id=conflict_id),
        )
        amendments = [
            StoredAmendment(
                id=ctx.new_id(),
                conflict_id=conflict_id,
                instruction_id=r.instruction_id,
                der_id=r.der_id,
                addressee_id=r.addressee_party_id,
                requested_at=r.requested_at,
                deadline=r.deadline,
                provisional=r.provisional,
                reason=r.reason,
            )
            for r in requests.get(conflict.conflict_id, [])
        ]
        upstream = {
            o.subject_id: _upstream(ctx, env.instructions.get(o.subject_id))
            for o in resolution.outcomes
            if o.subject_type is SubjectType.INSTRUCTION
        }
        pairs = [(o.issuer_party_id, o.recipient_party_id) for o in resolution.outcomes]
        parties = _parties(conflict, pairs, env, tdi.dso_id)
        parties = sorted(set(parties).union(*upstream.values()))
        ctx.uow.conflicts.add(record, parties, amendments)
        ctx.audit(
            "conflict.resolve",
            "conflict",
            conflict_id,
            None,
            {"kind": conflict.kind.value, "stage": stage, "rule": resolution.rule.value, "summary": resolution.summary},
        )
        start = min(a for a, _ in conflict.intervals)
        for outcome in resolution.outcomes:
            message = (
                f"conflict {conflict_id} ({conflict.kind.value}): {outcome.subject_type.value} {outcome.subject_id} "
                f"{outcome.action.value} under {resolution.rule.value}. {outcome.reason}"
            )
            for party in dict.fromkeys((*outcome.party_ids, *sorted(upstream.get(outcome.subject_id, ())))):
                notes.append(
                    Notification(
                        id=ctx.new_id(),
                        recipient_id=party,
                        kind=NotificationKind.CONFLICT_RESOLVED,
                        created_at=now,
                        message=message,
                        tdi_id=conflict.tdi_id,
                        interval_start=start,
                        magnitude_kw=outcome.original_p_kw,
                        instruction_id=(
                            outcome.subject_id[:48] if outcome.subject_type is SubjectType.INSTRUCTION else None
                        ),
                    )
                )
        stored.append(record)
    ctx.uow.market.notifications.add_many(notes)
    return stored


def _adjusted_p_kw(result: ResolutionResult) -> dict[str, float]:
    """Instruction id -> the setpoint that stands, for every instruction the resolution changed. A schedule
    that varies over the instruction's span keeps its value closest to 0 (the full schedule is in the stored
    resolution's outcome)."""
    out: dict[str, float] = {}
    for adjusted in result.instructions:
        if adjusted.changed:
            values = [s.p_kw for s in adjusted.schedule] or [0.0]
            out[adjusted.subject_id] = min(values, key=abs)
    return out


def _reason_of(stored: Sequence[StoredConflict]) -> dict[str, str]:
    reasons: dict[str, str] = {}
    for s in stored:
        for o in s.resolution.outcomes:
            if o.subject_type is SubjectType.INSTRUCTION and o.action is not OutcomeAction.KEPT:
                reasons.setdefault(o.subject_id, f"conflict {s.id} ({s.kind.value}, {s.resolution.rule.value})")
    return reasons


def _run(
    ctx: Context,
    instructions: Sequence[Instruction],
    commitments: Sequence[Commitment],
    ders: Mapping[str, Der],
    stage: str,
    keep: set[str] | None,
) -> tuple[list[StoredConflict], dict[str, float], dict[str, str]]:
    """Detect over the instructions and commitments, resolve, store (see the module docstring). ``keep``: when
    given, only conflicts naming one of these ids (new instructions or commitments) are stored and applied."""
    times = [t for i in instructions for t in (i.interval_start, i.interval_end)]
    times += [t for c in commitments for t in (c.start, c.end)]
    if not times:
        return [], {}, {}
    grid = _grid(times)
    start, end = grid.start, grid.end
    der_list = [ders[k] for k in sorted(ders)]
    roles = _roles(ctx)
    own = _single_issuer(instructions, roles)
    envelopes, outages = _limits(ctx, der_list, start, end, own)
    case = build_case(
        grid,
        [_capability(d, d.id in own, _favourable_soc(d, instructions, grid, roles)) for d in der_list],
        [_conflict_instruction(i, roles) for i in instructions],
        envelopes=envelopes,
        outages=outages,
        commitments=commitments,
    )
    found = detect_conflicts(case)
    if not found:
        return [], {}, {}
    result = resolve_conflicts(case, found, ctx.clock.now(), policies=_policies(ctx, (d.tdi_id for d in der_list)))
    chosen = [
        k for k, c in enumerate(found) if keep is None or keep & set(c.instruction_ids) or keep & set(c.commitment_ids)
    ]
    if not chosen:
        return [], {}, {}
    picked = [found[k] for k in chosen]
    picked_result = replace(result, resolutions=tuple(result.resolutions[k] for k in chosen))
    env = _Context(ders, {i.id: i for i in instructions}, roles)
    stored = _record(ctx, case, picked, picked_result, stage, env)
    return stored, _adjusted_p_kw(result), _reason_of(stored)


def _apply(instruction: Instruction, p_kw: float, reason: str) -> Instruction:
    cancelled = abs(p_kw) <= _TOL_KW
    text = f"{'cancelled' if cancelled else f'reduced from {instruction.p_kw:g} kW'} by {reason}"
    return replace(
        instruction,
        p_kw=0.0 if cancelled else round(p_kw, 6),
        status=InstructionStatus.CANCELLED if cancelled else instruction.status,
        reason=f"{instruction.reason}; {text}" if instruction.reason else text,
    )


def _coupled(
    ctx: Context, der_ids: set[str], start: datetime, end: datetime, exclude: set[str]
) -> dict[str, Instruction]:
    """Live stored instructions to ``der_ids`` that overlap or touch ``[start, end]``, transitively."""
    stored: dict[str, Instruction] = {}
    for _ in range(_MAX_EXPANSIONS):
        found = [i for i in ctx.uow.conflicts.der_instructions(sorted(der_ids), start, end) if i.id not in exclude]
        stored = {i.id: i for i in found}
        lo = min([start, *(i.interval_start for i in found)])
        hi = max([end, *(i.interval_end for i in found)])
        if (lo, hi) == (start, end):
            break
        start, end = lo, hi
    return stored


def _ders(ctx: Context, der_ids: Iterable[str]) -> dict[str, Der]:
    out: dict[str, Der] = {}
    for der_id in sorted(set(der_ids)):
        der = ctx.uow.ders.get(der_id)
        if der is not None:
            out[der_id] = der
    return out


def _is_der_level(i: Instruction) -> bool:
    return i.der_id is not None and i.resource_kind is ResourceKind.DER and abs(i.p_kw) > _TOL_KW


def check_instructions(ctx: Context, new: Sequence[Instruction], *, stage: str = STAGE_ISSUE) -> list[Instruction]:
    """Check ``new`` (not yet stored) with every live stored DER-level instruction they couple with.

    Returns ``new`` in order, each DER-level one as the resolution leaves it (reduced, or ``cancelled`` at
    0 kW, with the conflict named in its reason); stored instructions the resolution changes are updated in
    place. Conflicts that involve none of ``new`` are left to the check before dispatch. Runs in the caller's
    transaction: a refused request stores nothing.
    """
    checked = [i for i in new if _is_der_level(i)]
    if not checked:
        return list(new)
    new_ids = {i.id for i in checked}
    der_ids = {i.der_id for i in checked if i.der_id is not None}
    start = min(i.interval_start for i in checked)
    end = max(i.interval_end for i in checked)
    stored = _coupled(ctx, der_ids, start, end, new_ids)
    everything = [*stored.values(), *checked]
    ders = _ders(ctx, (i.der_id for i in everything if i.der_id is not None))
    everything = [i for i in everything if i.der_id in ders]
    _, adjusted, reasons = _run(ctx, everything, (), ders, stage, new_ids)
    for instruction_id, p_kw in adjusted.items():
        if instruction_id in stored and instruction_id in reasons:
            after = _apply(stored[instruction_id], p_kw, reasons[instruction_id])
            ctx.uow.conflicts.adjust_instruction(
                instruction_id,
                p_kw=after.p_kw,
                status=InstructionStatus.CANCELLED if after.status is InstructionStatus.CANCELLED else None,
                reason=after.reason.rsplit("; ", 1)[-1] if after.reason else "",
            )
    return [_apply(i, adjusted[i.id], reasons[i.id]) if i.id in adjusted and i.id in reasons else i for i in new]


def check_before_dispatch(ctx: Context, instructions: Sequence[Instruction]) -> list[StoredConflict]:
    """Check the stored DER-level ``instructions`` of a cycle (and everything coupled with them) once more
    before they go out, with the envelopes and network state in force now; store and apply what it finds."""
    der_level = [i for i in instructions if _is_der_level(i)]
    if not der_level:
        return []
    der_ids = {i.der_id for i in der_level if i.der_id is not None}
    stored = _coupled(
        ctx, der_ids, min(i.interval_start for i in der_level), max(i.interval_end for i in der_level), set()
    )
    ders = _ders(ctx, (i.der_id for i in stored.values() if i.der_id is not None))
    live = [i for i in stored.values() if i.der_id in ders]
    found, adjusted, reasons = _run(ctx, live, (), ders, STAGE_DISPATCH, None)
    for instruction_id, p_kw in adjusted.items():
        if instruction_id in reasons:
            after = _apply(stored[instruction_id], p_kw, reasons[instruction_id])
            ctx.uow.conflicts.adjust_instruction(
                instruction_id,
                p_kw=after.p_kw,
                status=InstructionStatus.CANCELLED if after.status is InstructionStatus.CANCELLED else None,
                reason=after.reason.rsplit("; ", 1)[-1] if after.reason else "",
            )
    return found


# --- offers: double counting ------------------------------------------------------------------------------


def _commitments(
    ctx: Context, offer: StoredOffer, interval: timedelta, tso_id: str, ders: Mapping[str, Der]
) -> list[Commitment]:
    """An offer's kW as commitments of DERs: a DER's own offer commits its offered kW; an aggregation's
    commits each approved member's share, pro rata to the members' capability on the offer's side."""
    if offer.resource_kind is ResourceKind.DER:
        shares = {offer.resource_id: float(offer.offered_kw)}
    elif offer.resource_kind is ResourceKind.AGGREGATION:
        aggregation = ctx.uow.aggregations.get(offer.resource_id)
        if aggregation is None:
            return []
        members = [
            m.der_id
            for m in aggregation.approved_members()
            if m.valid_from <= offer.interval_start and (m.valid_to is None or offer.interval_start < m.valid_to)
        ]
        caps = {m: _side_capability(ders[m], offer.side) for m in members if m in ders}
        total = sum(caps.values())
        if total <= 0:
            return []
        shares = {m: float(offer.offered_kw) * cap / total for m, cap in caps.items()}
    else:
        return []
    buyer = tso_id if offer.route is Route.TSO or offer.dso_id is None else offer.dso_id
    return [
        Commitment(
            commitment_id=f"{offer.id}:{der_id}",
            der_id=der_id,
            holder_id=f"{offer.resource_kind.value}:{offer.resource_id}",
            buyer_party_id=buyer,
            provider_party_id=offer.party_id,
            service=SERVICE_OF[offer.product],
            direction=Direction.IMPORT if offer.side is Side.BID else Direction.EXPORT,
            start=offer.interval_start,
            end=offer.interval_start + interval,
            committed_kw=kw,
            committed_at=offer.submitted_at,
        )
        for der_id, kw in shares.items()
        if der_id in ders and kw > _TOL_KW
    ]


def _side_capability(der: Der, side: Side) -> float:
    if side is Side.BID or _reduces_load(der):
        return der.p_import_kw
    return der.p_export_kw


def _offer_ders(ctx: Context, offer: StoredOffer) -> set[str]:
    if offer.resource_kind is ResourceKind.DER:
        return {offer.resource_id}
    if offer.resource_kind is ResourceKind.AGGREGATION:
        aggregation = ctx.uow.aggregations.get(offer.resource_id)
        return {m.der_id for m in aggregation.approved_members()} if aggregation else set()
    return set()


def check_offers(ctx: Context, new: Sequence[StoredOffer]) -> list[StoredConflict]:
    """Flag double counting among the offers in force for each (market, interval) of ``new``: a DER's kW
    offered directly and through an aggregation, or through two aggregations, beyond its capability.

    Offers are not changed: the resolution records which commitments are firm (payable) and which kW were
    counted twice, so that settlement never pays them twice; both the buyer and the provider are notified.
    Only conflicts involving one of ``new`` are stored (earlier ones were flagged when they arose).
    """
    keys = sorted({(o.market, o.interval_start) for o in new}, key=lambda k: (k[0].value, k[1]))
    tso = sorted((p for p in ctx.uow.participants.list_all() if p.role is Role.TSO), key=lambda p: p.name)
    tso_id = tso[0].id if tso else ctx.caller.participant_id
    stored: list[StoredConflict] = []
    for market, interval_start in keys:
        batch = [o for o in new if o.market is market and o.interval_start == interval_start]
        der_ids: set[str] = set()
        for offer in batch:
            der_ids |= _offer_ders(ctx, offer)
        if not der_ids:
            continue
        current = [
            o
            for o in ctx.uow.market.offers.current(market, interval_start)
            if o.resource_kind in (ResourceKind.DER, ResourceKind.AGGREGATION)
            and o.product in (Product.ENERGY, Product.OPERATING_RESERVE)
        ]
        touching = [o for o in current if _offer_ders(ctx, o) & der_ids]
        all_ders = set().union(*(_offer_ders(ctx, o) for o in touching)) if touching else set()
        ders = _ders(ctx, all_ders)
        interval = ctx.settings.market.rules(market).interval
        commitments = [c for o in touching for c in _commitments(ctx, o, interval, tso_id, ders)]
        if len(commitments) < 2:
            continue
        keep = {c.commitment_id for c in commitments if c.commitment_id.split(":", 1)[0] in {o.id for o in batch}}
        used = {c.der_id for c in commitments}
        found, _, _ = _run(ctx, (), commitments, {k: v for k, v in ders.items() if k in used}, STAGE_OFFERS, keep)
        stored.extend(found)
    return stored


# --- reading, policies, amendments ------------------------------------------------------------------------


def conflict_scope(ctx: Context) -> ConflictScope:
    """What the caller may see: everything (observer, platform administrator); the TSO the conflicts that
    involve its instructions or DER-level instructions its model shows it; everyone those it takes part in
    (issuer or recipient of an involved instruction, owner or representative of an involved DER, the DSO of
    the interface)."""
    caller = ctx.caller
    if is_system(caller) or caller.role is Role.OBSERVER:
        return ConflictScope(everything=True)
    return ConflictScope(participant_id=caller.participant_id, tso=caller.role is Role.TSO)


def list_conflicts(ctx: Context, page: Page, filters: ConflictFilter | None = None) -> list[StoredConflict]:
    """The conflicts the caller may see (``conflict_scope``), filtered and paged, by interval start."""
    f = filters or ConflictFilter()
    if f.start is not None and f.end is not None and f.end <= f.start:
        raise ValidationFailed("end must be after start", field="end", code=OUT_OF_RANGE)
    return ctx.uow.conflicts.query(conflict_scope(ctx), page, f)


def get_conflict(ctx: Context, conflict_id: str) -> tuple[StoredConflict, list[StoredAmendment]]:
    """One conflict with its resolution and amendment requests; an invisible one answers ``not_found``."""
    found = ctx.uow.conflicts.get(conflict_id)
    if found is None or not ctx.uow.conflicts.visible(conflict_id, conflict_scope(ctx)):
        raise NotFound(f"no conflict {conflict_id}", field="conflict_id")
    return found, ctx.uow.conflicts.amendments(conflict_id)


def _policy_reader(ctx: Context, tdi_id: str) -> str:
    tdi = get_tdi(ctx.uow, tdi_id)
    caller = ctx.caller
    if is_system(caller) or caller.role in (Role.TSO, Role.OBSERVER) or caller.participant_id == tdi.dso_id:
        return tdi.dso_id
    raise PermissionDenied("only the interface's DSO, the TSO and observers read its resolution policy", field="tdi_id")


def get_policy(ctx: Context, tdi_id: str) -> tuple[ResolutionPolicy, bool]:
    """The interface's resolution policy and whether it is stored (False: the domain default applies)."""
    _policy_reader(ctx, tdi_id)
    stored = ctx.uow.conflicts.policy(tdi_id)
    return (stored, True) if stored is not None else (DEFAULT_POLICY, False)


def set_policy(
    ctx: Context,
    tdi_id: str,
    *,
    priorities: Sequence[str],
    rules: Mapping[str, str] | None = None,
    amendment_window_min: int = 15,
) -> ResolutionPolicy:
    """The interface's DSO (or the platform administrator) declares its resolution policy: a priority list
    naming every service category once, a rule per conflict kind (unnamed kinds keep their default), and the
    amendment window in minutes. Errors carry the domain codes (``conflicts.priority_incomplete``,
    ``conflicts.priority_duplicate``, ``conflicts.priority_unknown``, ``conflicts.rule_not_allowed``) and
    change nothing. Audited."""
    dso_id = _policy_reader(ctx, tdi_id)
    if not (is_system(ctx.caller) or ctx.caller.participant_id == dso_id):
        raise PermissionDenied("only the interface's DSO sets its resolution policy", field="tdi_id")
    if not 1 <= amendment_window_min <= 24 * 60:
        raise ValidationFailed(
            "amendment_window_min must be between 1 and 1440 minutes", field="amendment_window_min", code=OUT_OF_RANGE
        )
    order = ServicePriorityList.from_names(list(priorities))
    parsed: dict[ConflictKind, ResolutionRule] = {}
    for kind_name, rule_name in (rules or {}).items():
        try:
            kind, rule = ConflictKind(kind_name), ResolutionRule(rule_name)
        except ValueError as exc:
            raise ValidationFailed(
                f"unknown conflict kind or rule: {kind_name!r} -> {rule_name!r}",
                field=f"rules.{kind_name}",
                code=RULE_NOT_ALLOWED,
            ) from exc
        parsed[kind] = rule
    policy = ResolutionPolicy(order, parsed, timedelta(minutes=amendment_window_min))
    before = ctx.uow.conflicts.policy(tdi_id)
    ctx.uow.conflicts.save_policy(tdi_id, policy, at=ctx.clock.now(), by=ctx.caller.participant_id)
    ctx.audit("conflict.policy", "td_interface", tdi_id, policy_json(before) if before else None, policy_json(policy))
    return policy


def policy_json(policy: ResolutionPolicy) -> dict[str, Any]:
    """A policy as plain JSON values."""
    return {
        "priorities": [c.value for c in policy.priorities.order],
        "rules": {k.value: v.value for k, v in policy.rules.items()},
        "amendment_window_min": int(policy.amendment_window.total_seconds() // 60),
    }


def answer_amendment(ctx: Context, request_id: str, p_kw: float) -> tuple[StoredAmendment, Instruction | None]:
    """The addressee of an amendment request (the lower-priority issuer) amends its instruction to ``p_kw``
    before the deadline. The amended instruction goes through conflict detection again (stage
    ``amendment``) and is stored as the check leaves it. Raises ``conflicts.amendment_after_deadline`` after
    the deadline and ``conflicts.amendment_closed`` for an answered request; nothing changes on error."""
    request = ctx.uow.conflicts.amendment(request_id)
    scope = conflict_scope(ctx)
    if request is None or not ctx.uow.conflicts.visible(request.conflict_id, scope):
        raise NotFound(f"no amendment request {request_id}", field="request_id")
    if not (is_system(ctx.caller) or ctx.caller.participant_id == request.addressee_id):
        raise PermissionDenied("only the addressee of the request may amend", field="request_id")
    if not math.isfinite(p_kw):
        raise ValidationFailed("p_kw must be a finite number", field="p_kw", code=NOT_FINITE)
    instruction = ctx.uow.market.instructions.get(request.instruction_id)
    if instruction is None or instruction.der_id is None:
        raise NotFound(f"no instruction {request.instruction_id}", field="request_id")
    roles = _roles(ctx)
    amended = replace(instruction, p_kw=float(p_kw))
    domain_request = AmendmentRequest(
        request_id=request.id,
        conflict_id=request.conflict_id,
        instruction_id=request.instruction_id,
        der_id=request.der_id,
        addressee_party_id=request.addressee_id,
        requested_at=request.requested_at,
        deadline=request.deadline,
        provisional=request.provisional,
        reason=request.reason,
        status=request.status,
        answered_at=request.answered_at,
    )
    now = ctx.clock.now()
    domain_request.answer(_conflict_instruction(amended, roles), now)
    checked = check_instructions(ctx, [replace(amended, status=InstructionStatus.ISSUED)], stage=STAGE_AMENDMENT)[0]
    cancelled = abs(checked.p_kw) <= _TOL_KW
    ctx.uow.conflicts.adjust_instruction(
        instruction.id,
        p_kw=0.0 if cancelled else checked.p_kw,
        status=InstructionStatus.CANCELLED if cancelled else InstructionStatus.ISSUED,
        reason=f"amended by {ctx.caller.participant_id} to {float(p_kw):g} kW (request {request.id})",
    )
    ctx.uow.conflicts.answer_amendment(request.id, at=now, p_kw=checked.p_kw)
    ctx.audit(
        "conflict.amend", "amendment_request", request.id, {"status": AmendmentStatus.PENDING.value}, {"p_kw": p_kw}
    )
    after = ctx.uow.conflicts.amendment(request.id)
    assert after is not None
    return after, ctx.uow.market.instructions.get(instruction.id)


# --- reports ----------------------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def conflict_json(stored: StoredConflict, amendments: Sequence[StoredAmendment] = ()) -> dict[str, Any]:
    """A stored conflict with its resolution (and amendment requests) as plain JSON values; unlimited
    figures (infinite limits) become ``None``."""
    c, r = stored.conflict, stored.resolution
    return {
        "id": stored.id,
        "kind": c.kind.value,
        "stage": stored.stage,
        "tdi_id": c.tdi_id,
        "dso_id": stored.dso_id,
        "der_ids": list(c.der_ids),
        "connection_point_id": c.connection_point_id,
        "interval_start": min(a for a, _ in c.intervals).isoformat(),
        "interval_end": max(b for _, b in c.intervals).isoformat(),
        "intervals": [[a.isoformat(), b.isoformat()] for a, b in c.intervals],
        "instruction_ids": list(c.instruction_ids),
        "commitment_ids": list(c.commitment_ids),
        "party_ids": list(c.party_ids),
        "figures": {k: _finite(v) for k, v in c.figures.items()},
        "series": {k: [_finite(x) for x in v] for k, v in c.series.items()},
        "summary": c.summary,
        "detected_at": stored.detected_at.isoformat(),
        "resolution": {
            "id": r.resolution_id,
            "rule": r.rule.value,
            "binding_limit": r.binding_limit,
            "decided_at": r.decided_at.isoformat(),
            "summary": r.summary,
            "outcomes": [outcome_json(o) for o in r.outcomes],
        },
        "amendment_requests": [amendment_json(a) for a in amendments],
    }


def amendment_json(a: StoredAmendment) -> dict[str, Any]:
    """An amendment request as plain JSON values."""
    return {
        "id": a.id,
        "conflict_id": a.conflict_id,
        "instruction_id": a.instruction_id,
        "der_id": a.der_id,
        "addressee_id": a.addressee_id,
        "requested_at": a.requested_at.isoformat(),
        "deadline": a.deadline.isoformat(),
        "provisional": segments_json(a.provisional),
        "reason": a.reason,
        "status": a.status.value,
        "answered_at": a.answered_at.isoformat() if a.answered_at else None,
        "amended_p_kw": a.amended_p_kw,
    }


def conflict_report(ctx: Context, start: datetime, end: datetime, *, limit: int = 10_000) -> list[dict[str, Any]]:
    """The conflicts the caller may see that overlap ``[start, end)``, each with its resolution, as JSON-able
    dicts in interval order (for the scenario report)."""
    found = list_conflicts(ctx, Page(limit=limit), ConflictFilter(start=start, end=end))
    return [conflict_json(s, ctx.uow.conflicts.amendments(s.id)) for s in found]


__all__ = [
    "STAGE_DISPATCH",
    "STAGE_ISSUE",
    "STAGE_OFFERS",
    "answer_amendment",
    "check_before_dispatch",
    "check_instructions",
    "check_offers",
    "conflict_json",
    "conflict_report",
    "conflict_scope",
    "get_conflict",
    "get_policy",
    "list_conflicts",
    "policy_for",
    "policy_json",
    "set_policy",
]
