"""Conflict management on the platform: detection and resolution wired into offers and instructions, stored
records, per-interface policies, amendment requests, and what each role may see (docs/conflicts.md).

Where detection runs:

* ``check_instructions``: when DER-level instructions are issued (the TSO's instructions to DERs after a
  clearing run, every split child, a DSO's distribution service dispatch, an amended instruction). The new
  instructions are checked together with every live stored instruction to the same DERs, and to the other DERs
  at the same connection points, that overlaps or touches them, transitively (the 12-4 pm and 4-8 pm dispatches
  of one battery touch at 4 pm).
* ``check_offers``: when offers are submitted; each DER's kW offered directly and through aggregations in one
  interval are commitments, checked for double counting.
* ``recheck_points``: when the network changes (a network event's de-energised points, a published envelope
  run's points), over the covered intervals, in the transaction of that change.
* ``check_before_dispatch``: again over the DER-level instructions of a cycle before they go out (states of
  charge, envelopes or network state may have changed since they were issued).

Each check builds a case (DER capabilities; storage with its declared round-trip efficiency, else
``GRIDBRIDGE_STORAGE_ROUND_TRIP_EFFICIENCY``, starting from its latest state-of-charge reading at or before the
horizon, else from the most favourable one; the DERs' approved static limits as DER envelopes; the published
envelopes in force as connection-point envelopes and the de-energised ones as outages; each instruction's
service category from its root issuer and kind), detects, resolves under each interface's stored policy
(``DEFAULT_POLICY`` without one), and in the caller's transaction stores every conflict with its one
resolution, adjusts the instructions as the resolution says (a reduced setpoint, or ``cancelled`` at 0 kW, the
reason appended), and notifies every party of every outcome with its reason. Amendment requests whose deadline
passes unanswered expire (``expire_amendments``, run with escalation): the provisional setpoint is final.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import reduce
from itertools import pairwise
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
    Revision,
    ServicePriorityList,
    StorageSpec,
    SubjectType,
    format_time,
    superseded_spans,
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
from gridbridge.domain.offers import Market, Product, Side
from gridbridge.domain.permissions import is_system
from gridbridge.domain.roles import Role, Service
from gridbridge.domain.validation import NOT_FINITE, OUT_OF_RANGE
from gridbridge.engines.conflicts import build_case, detect_conflicts, resolve_conflicts
from gridbridge.engines.conflicts.case import ConflictCase
from gridbridge.engines.conflicts.kernels import energy_delta_kwh, energy_power_kw
from gridbridge.engines.conflicts.resolution import ResolutionResult
from gridbridge.services.conflict_ports import (
    LIVE_STATUSES,
    StoredAmendment,
    StoredConflict,
)
from gridbridge.services.conflict_views import (
    amendment_json,
    conflict_json,
    conflict_report,
    conflict_scope,
    conflict_view,
    facts_for_anyone,
    get_conflict,
    list_conflicts,
    party_viewer,
)
from gridbridge.services.context import Context
from gridbridge.services.storage_ports import StateOfChargeReading
from gridbridge.services.tdis import get_tdi

STAGE_OFFERS = "offer_submission"
STAGE_ISSUE = "instruction_issue"
STAGE_DISPATCH = "pre_dispatch"
STAGE_AMENDMENT = "amendment"
STAGE_NETWORK = "network_change"
_TOL_KW = 1e-6
_UNLIMITED_KW = 1e12
"""Stands for "no limit" where the engine needs a finite number."""
_PURE_LOADS = frozenset({Technology.DEMAND_RESPONSE, Technology.EV_CHARGING})


# --- building a case from stored records ------------------------------------------------------------------


def _reduces_load(der: Der) -> bool:
    """A DER that cannot inject offers (and is instructed for) load reduction, measured on its import side."""
    return der.p_export_kw <= 0


def _own_allocations(instructions: Sequence[Instruction], seen: Mapping[str, ConflictInstruction]) -> set[str]:
    """DERs whose counted instructions are all allocations (split children) by one DSO or aggregator for one
    service category, at most one of them in force in any interval. A split of one instruction keeps each member
    within its availability in that interval, so such a DER is not checked against its capability or static
    limits; its stored energy is always checked (a split is feasible per interval, not across intervals: an
    800 kWh battery split 400 kW hour after hour runs empty), and published envelopes and outages still apply.
    Direct instructions (the TSO's, a DSO's distribution service dispatch), or two allocations in force in one
    interval, are always checked."""
    issuers: dict[str, set[tuple[str, str]]] = {}
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    direct: set[str] = set()
    for i in instructions:
        if i.der_id is not None:
            c = seen[i.id]
            issuers.setdefault(i.der_id, set()).add((i.issuer_id, c.category.value))
            spans.setdefault(i.der_id, []).extend(c.in_force())
            if i.parent_id is None or c.issuer_role is Role.TSO:
                direct.add(i.der_id)
    return {d for d, who in issuers.items() if len(who) == 1 and d not in direct and not _overlap(spans[d])}


def _overlap(spans: Sequence[tuple[datetime, datetime]]) -> bool:
    """Whether two of ``spans`` share some time."""
    ordered = sorted(spans)
    return any(b[0] < a[1] for a, b in pairwise(ordered))


def round_trip_efficiency(ctx: Context, der: Der) -> float:
    """The round-trip efficiency conflict detection uses for a storage DER: its declared one, else the
    deployment's default (``GRIDBRIDGE_STORAGE_ROUND_TRIP_EFFICIENCY``)."""
    if der.round_trip_efficiency is not None:
        return der.round_trip_efficiency
    return ctx.settings.storage_round_trip_efficiency


def _has_storage(der: Der) -> bool:
    return der.technology is Technology.STORAGE and bool(der.e_kwh)


def _capability(der: Der, unchecked: bool, storage: StorageSpec | None) -> DerCapability:
    """Capability as conflict detection sees it; a load-reduction DER's reduction counts as injection.
    ``unchecked``: no power limit, the stored energy still checked (see ``_own_allocations``)."""
    export_kw = der.p_import_kw if _reduces_load(der) else der.p_export_kw
    if unchecked:
        return DerCapability(der.id, der.tdi_id, str(der.connection_point_id), _UNLIMITED_KW, _UNLIMITED_KW, storage)
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


@dataclass(frozen=True)
class _Chain:
    """Where an instruction comes from: the issuers from the root instruction (the top of its split chain) down
    to it, and the resource the root instruction was for."""

    issuers: tuple[str, ...]
    root_resource: str

    @property
    def root_issuer(self) -> str:
        """The issuer of the root instruction (its own issuer for an instruction on its own account)."""
        return self.issuers[0]


def _chains(ctx: Context, instructions: Iterable[Instruction]) -> dict[str, _Chain]:
    """Instruction id -> its chain (``_Chain``). Parents are read level by level, each once."""
    parents: dict[str, Instruction] = {}
    items = list(instructions)
    wanted = {i.parent_id for i in items if i.parent_id}
    while wanted - parents.keys():
        found = ctx.uow.conflicts.instructions(sorted(wanted - parents.keys()))
        if not found:
            break
        parents.update((p.id, p) for p in found)
        wanted = {p.parent_id for p in found if p.parent_id}
    out: dict[str, _Chain] = {}
    for i in items:
        issuers, top, seen = [i.issuer_id], i, {i.id}
        while top.parent_id and top.parent_id not in seen and top.parent_id in parents:
            seen.add(top.parent_id)
            top = parents[top.parent_id]
            issuers.append(top.issuer_id)
        out[i.id] = _Chain(tuple(reversed(issuers)), f"{top.resource_kind.value}:{top.resource_id}")
    return out


def _root_issuers(ctx: Context, instructions: Iterable[Instruction]) -> dict[str, str]:
    """Instruction id -> the issuer of the instruction it was split from at the top of its chain (its own issuer
    for an instruction on its own account)."""
    return {k: c.root_issuer for k, c in _chains(ctx, instructions).items()}


_MARKET_ORDER: Mapping[Market, int] = {Market.DAY_AHEAD: 0, Market.REAL_TIME: 1}


def _superseded(
    counted: Sequence[Instruction], closed: Sequence[Instruction], chains: Mapping[str, _Chain]
) -> dict[str, tuple[tuple[datetime, datetime], ...]]:
    """Where each counted instruction is superseded by a later revision (``domain.conflicts.superseded_spans``).

    Revisions are the DER-level market instructions (schedules and dispatch of a clearing run, and their
    splits) about the same DER and product that came down the same chain (the same issuers from the root
    instruction, for the same root resource). The later market replaces the earlier one over their overlap (a
    real-time dispatch is the operative setpoint over the day-ahead schedule's interval), and within a market
    the later-issued one. The later revision supersedes whatever its own status: rejected, cancelled by a
    conflict resolution or escalated, it is still the issuer's latest word for that interval. Operating
    instructions, distribution service dispatches and curtailments supersede nothing: they add up."""
    revisions = [
        Revision(
            i.id,
            (i.der_id, i.product.value, chains[i.id].root_resource, *chains[i.id].issuers),
            (_MARKET_ORDER[i.market], i.issued_at),
            i.interval_start,
            i.interval_end,
        )
        for i in (*counted, *closed)
        if i.der_id is not None and i.market is not None and i.kind in _MARKET_KINDS and i.id in chains
    ]
    return superseded_spans(revisions)


_MARKET_KINDS = frozenset({InstructionKind.SCHEDULE, InstructionKind.DISPATCH})


def _issuing_role(role: Role | None) -> Role:
    return role if role in (Role.TSO, Role.DSO, Role.AGGREGATOR) else Role.TSO


def _conflict_instruction(
    i: Instruction,
    roles: Mapping[str, Role],
    root_issuer: str | None,
    superseded: tuple[tuple[datetime, datetime], ...] = (),
) -> ConflictInstruction:
    """An instruction as conflict detection sees it. Its service category follows from its root issuer (the
    issuer at the top of its split chain) and its kind:

    * an operating instruction whose root issuer is the TSO (the TSO's own, or the DSO's split of it):
      bulk-system reliability; a load curtailment counts upwards (injection);
    * a DSO's operating instruction on its own account (a curtailment for a distribution constraint):
      distribution safety, a reduction (``reduces_export``) that keeps its negative sign;
    * a DSO's distribution service dispatch: distribution services;
    * schedules and dispatch: the category of their product (energy: wholesale energy, operating reserve:
      bulk-system reliability, counted upwards)."""
    assert i.der_id is not None
    p_kw = i.p_kw
    issuer_role = _issuing_role(roles.get(i.issuer_id))
    root_role: Role | None = None
    reduces = False
    if i.kind is InstructionKind.OPERATING:
        kind, service = ConflictInstructionKind.OPERATING_INSTRUCTION, Service.WHOLESALE_ENERGY
        root = roles.get(root_issuer or i.issuer_id)
        root_role = Role.DSO if root is Role.DSO else Role.TSO
        if issuer_role is Role.AGGREGATOR and root_role is Role.DSO:
            issuer_role = Role.DSO  # an aggregator only passes a DSO's operating instruction on
        if i.product is InstructionProduct.LOAD_CURTAILMENT:
            p_kw = abs(p_kw)
        reduces = root_role is Role.DSO and p_kw < 0
        if root_role is issuer_role:
            root_role = None
    elif i.kind is InstructionKind.SERVICE:
        kind, service, issuer_role = ConflictInstructionKind.DISPATCH, Service.DISTRIBUTION_SERVICES, Role.DSO
    else:
        kind = (
            ConflictInstructionKind.SCHEDULE if i.kind is InstructionKind.SCHEDULE else ConflictInstructionKind.DISPATCH
        )
        product = Product.OPERATING_RESERVE if i.product is InstructionProduct.OPERATING_RESERVE else Product.ENERGY
        service = SERVICE_OF[product]
        if i.product is not InstructionProduct.ENERGY:
            p_kw = abs(p_kw)
    return ConflictInstruction(
        instruction_id=i.id,
        issuer_party_id=i.issuer_id,
        issuer_role=issuer_role,
        recipient_party_id=i.recipient_id,
        der_id=i.der_id,
        service=service,
        kind=kind,
        start=i.interval_start,
        end=i.interval_end,
        p_kw=p_kw,
        issued_at=i.issued_at,
        root_issuer_role=root_role,
        reduces_export=reduces,
        superseded=superseded,
    )


@dataclass(frozen=True)
class _InitialSoc:
    """Where a storage DER's trajectory starts: a reported reading, or the most favourable state of charge."""

    fraction: float
    reading: StateOfChargeReading | None

    def describe(self, der: Der, at: datetime) -> str:
        assert der.e_kwh is not None
        if self.reading is None:
            return (
                f"Initial state of charge: the most favourable, {self.fraction * der.e_kwh:.3f} kWh (no reading at or "
                f"before {format_time(at)})."
            )
        r = self.reading
        return (
            f"Initial state of charge: {r.soc_kwh:.3f} kWh as reported by {r.reported_by} for "
            f"{format_time(r.measured_at)}."
        )


def _initial_soc(
    der: Der,
    instructions: Sequence[ConflictInstruction],
    grid: IntervalGrid,
    efficiency: float,
    reading: StateOfChargeReading | None,
) -> _InitialSoc:
    """A storage DER's initial state of charge on ``grid``: the latest reading at or before the grid's start when
    there is one, else the most favourable (the lowest that never runs empty under ``instructions``, so that a
    storage conflict is flagged only when no initial state of charge makes them deliverable: the white paper's
    battery, dispatched 12-8 pm, fails even when full at noon). Reductions lower discharge and never charge
    (``energy_power_kw``), as in detection."""
    assert der.e_kwh is not None
    if reading is not None:
        return _InitialSoc(min(max(reading.soc_kwh / der.e_kwh, 0.0), 1.0), reading)
    p_kw = np.zeros(grid.n_intervals)
    reduction_kw = np.zeros(grid.n_intervals)
    for c in instructions:
        if c.der_id == der.id:
            for a, b in c.in_force():
                span = grid.overlapping(a, b)
                p_kw[span.start : span.stop] += c.p_kw
                if c.reduces_export:
                    reduction_kw[span.start : span.stop] -= c.p_kw
    eta = np.full(1, math.sqrt(efficiency))
    delta_kwh = energy_delta_kwh(energy_power_kw(p_kw, reduction_kw)[None, :], eta[:, None], eta[:, None], grid.dt_h)
    lowest = min(0.0, float(np.cumsum(delta_kwh).min()))
    return _InitialSoc(min(-lowest, der.e_kwh) / der.e_kwh, None)


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


def _note(
    ctx: Context,
    party: str,
    message: str,
    at: datetime,
    *,
    tdi_id: str | None,
    interval_start: datetime | None,
    magnitude_kw: float | None,
    instruction_id: str | None,
) -> Notification:
    """One ``conflict_resolved`` notification with ``message`` to ``party``."""
    return Notification(
        id=ctx.new_id(),
        recipient_id=party,
        kind=NotificationKind.CONFLICT_RESOLVED,
        created_at=at,
        message=message,
        tdi_id=tdi_id,
        interval_start=interval_start,
        magnitude_kw=magnitude_kw,
        instruction_id=instruction_id[:48] if instruction_id else None,
    )


class _PartyViews:
    """Each party's view of one stored conflict (``conflict_views.conflict_view``), built once per party: what a
    notification about the conflict may tell that party."""

    def __init__(
        self, ctx: Context, stored: StoredConflict, amendments: Sequence[StoredAmendment], roles: Mapping[str, Role]
    ) -> None:
        self.stored, self.amendments, self.roles = stored, amendments, roles
        self.facts = facts_for_anyone(ctx, stored)
        self.views: dict[str, dict[str, Any]] = {}

    def of(self, party: str) -> dict[str, Any]:
        """The conflict as ``party`` may see it."""
        if party not in self.views:
            viewer = party_viewer(party, self.roles.get(party))
            self.views[party] = conflict_view(self.stored, self.amendments, viewer, self.facts)
        return self.views[party]

    def outcome(self, party: str, subject_id: str) -> dict[str, Any] | None:
        """The outcome about ``subject_id`` as ``party`` may see it (None: withheld from it)."""
        return next((o for o in self.of(party)["resolution"]["outcomes"] if o["subject_id"] == subject_id), None)

    def withheld(self, party: str) -> str:
        """What ``party`` may be told of the conflict when its outcomes are withheld from it: the window, the rule
        and the summaries of its view."""
        v = self.of(party)
        return (
            f"conflict {v['id']} ({v['kind']}) at T-D interface {v['tdi_id']} from {v['interval_start']} to "
            f"{v['interval_end']}: {v['resolution']['summary']} Conflict: {v['summary']}"
        )


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
        notes += _outcome_notes(ctx, record, _PartyViews(ctx, record, amendments, env.roles), upstream, now)
        stored.append(record)
    ctx.uow.market.notifications.add_many(notes)
    return stored


def _outcome_notes(
    ctx: Context, record: StoredConflict, views: _PartyViews, upstream: Mapping[str, set[str]], now: datetime
) -> list[Notification]:
    """A ``conflict_resolved`` notification for every outcome to its issuer and recipient and the issuers of the
    instructions it was split from, each told only what its own view of the conflict shows: the outcome with its
    reason as that party may see it, or (an outcome withheld from it, such as a DER-level allocation the TSO's
    model does not show it) once per conflict, the conflict's window, rule and summaries without the outcome."""
    conflict, resolution = record.conflict, record.resolution
    start = min(a for a, _ in conflict.intervals)
    notes: list[Notification] = []
    told: set[str] = set()
    for outcome in resolution.outcomes:
        for party in dict.fromkeys((*outcome.party_ids, *sorted(upstream.get(outcome.subject_id, ())))):
            shown = views.outcome(party, outcome.subject_id)
            if shown is None:
                if party in told:
                    continue
                told.add(party)
                message, magnitude, instruction = views.withheld(party), None, None
            else:
                message = (
                    f"conflict {record.id} ({conflict.kind.value}): {outcome.subject_type.value} "
                    f"{outcome.subject_id} {outcome.action.value} under {resolution.rule.value}. {shown['reason']}"
                )
                magnitude = outcome.original_p_kw
                instruction = outcome.subject_id if outcome.subject_type is SubjectType.INSTRUCTION else None
            notes.append(
                _note(
                    ctx,
                    party,
                    message,
                    now,
                    tdi_id=conflict.tdi_id,
                    interval_start=start,
                    magnitude_kw=magnitude,
                    instruction_id=instruction,
                )
            )
    return notes


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


def _with_storage_state(
    conflict: Conflict,
    ders: Mapping[str, Der],
    socs: Mapping[str, _InitialSoc],
    efficiency: Mapping[str, float],
    at: datetime,
) -> Conflict:
    """A storage-energy conflict says which initial state of charge it used (a reading or the most favourable)
    and the round-trip efficiency: in ``figures`` (``soc_initial_reported`` 1 or 0, ``round_trip_efficiency``)
    and at the end of its summary."""
    if conflict.kind is not ConflictKind.HIDDEN_COUPLING_ENERGY or conflict.der_ids[0] not in socs:
        return conflict
    der_id = conflict.der_ids[0]
    soc = socs[der_id]
    figures = {
        **conflict.figures,
        "soc_initial_reported": 1.0 if soc.reading is not None else 0.0,
        "round_trip_efficiency": efficiency[der_id],
    }
    summary = (
        f"{conflict.summary} {soc.describe(ders[der_id], at)} Round-trip efficiency {efficiency[der_id]:g}"
        f"{'' if ders[der_id].round_trip_efficiency is not None else ' (the platform default)'}."
    )
    return replace(conflict, figures=figures, summary=summary)


def _counted(
    ctx: Context, instructions: Sequence[Instruction], closed: Sequence[Instruction], roles: Mapping[str, Role]
) -> tuple[list[Instruction], dict[str, ConflictInstruction]]:
    """The instructions as the case counts them: each where it is in force, superseded parts left out
    (``_superseded``; ``closed``: rejected and cancelled instructions, which only supersede); one superseded
    throughout is left out."""
    chains = _chains(ctx, [*instructions, *closed])
    superseded = _superseded(instructions, closed, chains)
    counted: list[Instruction] = []
    seen: dict[str, ConflictInstruction] = {}
    for i in instructions:
        c = _conflict_instruction(i, roles, chains[i.id].root_issuer, superseded.get(i.id, ()))
        if c.in_force():
            counted.append(i)
            seen[i.id] = c
    return counted, seen


def _run(
    ctx: Context,
    instructions: Sequence[Instruction],
    commitments: Sequence[Commitment],
    ders: Mapping[str, Der],
    stage: str,
    keep: set[str] | None,
    closed: Sequence[Instruction] = (),
) -> tuple[list[StoredConflict], dict[str, float], dict[str, str]]:
    """Detect over the instructions and commitments, resolve, store (see the module docstring). ``keep``: when
    given, only conflicts naming one of these ids (new instructions or commitments) are stored and applied.
    ``closed``: rejected and cancelled instructions that may supersede earlier revisions (``_counted``)."""
    roles = _roles(ctx)
    instructions, seen = _counted(ctx, instructions, closed, roles) if instructions else ([], {})
    times = [t for i in instructions for t in (i.interval_start, i.interval_end)]
    times += [t for c in seen.values() for span in c.superseded for t in span]
    times += [t for c in commitments for t in (c.start, c.end)]
    if not times:
        return [], {}, {}
    grid = _grid(times)
    start, end = grid.start, grid.end
    der_list = [ders[k] for k in sorted(ders)]
    own = _own_allocations(instructions, seen)
    envelopes, outages = _limits(ctx, der_list, start, end, own)
    storage = [d for d in der_list if _has_storage(d)]
    readings = ctx.uow.state_of_charge.latest_many([d.id for d in storage], start) if storage else {}
    by_der: dict[str, list[ConflictInstruction]] = {}
    for c in seen.values():
        by_der.setdefault(c.der_id, []).append(c)
    socs: dict[str, _InitialSoc] = {}
    efficiency: dict[str, float] = {}
    for d in storage:
        assert d.e_kwh is not None
        efficiency[d.id] = round_trip_efficiency(ctx, d)
        socs[d.id] = _initial_soc(d, by_der.get(d.id, []), grid, efficiency[d.id], readings.get(d.id))
    case = build_case(
        grid,
        [
            _capability(
                d,
                d.id in own,
                StorageSpec.with_round_trip(d.e_kwh, socs[d.id].fraction, efficiency[d.id])
                if d.id in socs and d.e_kwh
                else None,
            )
            for d in der_list
        ],
        [seen[i.id] for i in instructions],
        envelopes=envelopes,
        outages=outages,
        commitments=commitments,
    )
    found = detect_conflicts(case)
    if not found:
        return [], {}, {}
    found = tuple(_with_storage_state(c, ders, socs, efficiency, start) for c in found)
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


_HORIZON_PAD = timedelta(hours=1)
_HORIZON_MAX_PAD = timedelta(days=8)


def _touching(spans: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The union of ``[start, end]`` and every span connected with it through spans that overlap or touch."""
    blocks: list[list[datetime]] = []
    for a, b in sorted([(start, end), *spans]):
        if blocks and a <= blocks[-1][1]:
            blocks[-1][1] = max(blocks[-1][1], b)
        else:
            blocks.append([a, b])
    lo, hi = next((a, b) for a, b in blocks if a <= start and end <= b)
    return lo, hi


def _horizon(
    live: Sequence[Instruction], storage: set[str], start: datetime, end: datetime
) -> tuple[datetime, datetime]:
    """The span a check covers: ``[start, end]`` widened, as long as it changes, by the run of each storage DER's
    own instructions that overlap or touch it without a gap (its stored energy runs on through them: the
    12-4 pm and 4-8 pm dispatches of one battery; in a gap its owner may recharge it)."""
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for i in live:
        if i.der_id in storage:
            spans.setdefault(i.der_id, []).append((i.interval_start, i.interval_end))
    a, b = start, end
    while True:
        lo, hi = a, b
        for own in spans.values():
            lo, hi = _touching(own, lo, hi)
        if (lo, hi) == (a, b):
            return a, b
        a, b = lo, hi


def _coupled(
    ctx: Context, points: set[int], start: datetime, end: datetime, exclude: set[str]
) -> tuple[dict[str, Instruction], list[Instruction]]:
    """Live stored DER-level instructions (``LIVE_STATUSES``) to any DER at the connection ``points`` (they share
    its envelope) that overlap the span of the check (``_horizon``: ``[start, end]`` and the runs of the storage
    DERs' instructions that go on from it), and the rejected or cancelled ones over that span (they supersede
    earlier revisions). The store is read over ``[start, end]`` first (what overlaps or touches it); while the
    span found reaches beyond what was read, it is read again over the span widened by a margin that doubles
    each time (from ``_HORIZON_PAD``; at most ``_HORIZON_MAX_PAD`` either side of ``[start, end]``). A run that
    ends inside the window, or at its edge, was read whole (what touches the window was read too)."""
    floor, ceiling = start - _HORIZON_MAX_PAD, end + _HORIZON_MAX_PAD
    lo, hi, pad = start, end, _HORIZON_PAD
    while True:
        found = [
            i for i in ctx.uow.conflicts.point_instructions(sorted(points), lo, hi, closed=True) if i.id not in exclude
        ]
        live = [i for i in found if i.status in LIVE_STATUSES]
        storage = {d.id for d in _ders(ctx, {i.der_id for i in live if i.der_id}).values() if _has_storage(d)}
        a, b = _horizon(live, storage, start, end)
        a, b = max(a, floor), min(b, ceiling)
        if lo <= a and b <= hi:
            break
        lo, hi, pad = max(min(lo, a - pad), floor), min(max(hi, b + pad), ceiling), pad * 2
    coupled = {i.id: i for i in live if i.interval_start < b and i.interval_end > a}
    closed = [i for i in found if i.status not in LIVE_STATUSES and i.interval_start < b and i.interval_end > a]
    return coupled, closed


def _ders(ctx: Context, der_ids: Iterable[str]) -> dict[str, Der]:
    found = ctx.uow.ders.get_many(der_ids)
    return {k: found[k] for k in sorted(found)}


def _is_der_level(i: Instruction) -> bool:
    return i.der_id is not None and i.resource_kind is ResourceKind.DER and abs(i.p_kw) > _TOL_KW


def _store_adjustments(
    ctx: Context, stored: Mapping[str, Instruction], adjusted: Mapping[str, float], reasons: Mapping[str, str]
) -> None:
    """Write each stored instruction's setpoint as a stored resolution left it (reduced or cancelled, reason
    appended)."""
    for instruction_id, p_kw in adjusted.items():
        if instruction_id in stored and instruction_id in reasons:
            after = _apply(stored[instruction_id], p_kw, reasons[instruction_id])
            ctx.uow.conflicts.adjust_instruction(
                instruction_id,
                p_kw=after.p_kw,
                status=InstructionStatus.CANCELLED if after.status is InstructionStatus.CANCELLED else None,
                reason=after.reason.rsplit("; ", 1)[-1] if after.reason else "",
            )


def check_instructions(ctx: Context, new: Sequence[Instruction], *, stage: str = STAGE_ISSUE) -> list[Instruction]:
    """Check ``new`` (not yet stored) with every live stored DER-level instruction they couple with: to the
    same DERs or to other DERs at the same connection points, overlapping or touching in time, transitively.

    Returns ``new`` in order, each DER-level one as the resolution leaves it (reduced, or ``cancelled`` at
    0 kW, with the conflict named in its reason); stored instructions the resolution changes are updated in
    place. Conflicts that involve none of ``new`` are left to the check before dispatch. Runs in the caller's
    transaction: a refused request stores nothing.
    """
    checked = [i for i in new if _is_der_level(i)]
    if not checked:
        return list(new)
    new_ids = {i.id for i in checked}
    new_ders = _ders(ctx, (i.der_id for i in checked if i.der_id is not None))
    points = {d.connection_point_id for d in new_ders.values()}
    start = min(i.interval_start for i in checked)
    end = max(i.interval_end for i in checked)
    stored, closed = _coupled(ctx, points, start, end, new_ids)
    everything = [*stored.values(), *checked]
    ders = _ders(ctx, (i.der_id for i in everything if i.der_id is not None))
    everything = [i for i in everything if i.der_id in ders]
    _, adjusted, reasons = _run(ctx, everything, (), ders, stage, new_ids, closed)
    _store_adjustments(ctx, stored, adjusted, reasons)
    return [_apply(i, adjusted[i.id], reasons[i.id]) if i.id in adjusted and i.id in reasons else i for i in new]


def recheck_points(
    ctx: Context, connection_point_ids: Iterable[int], start: datetime, end: datetime, *, stage: str = STAGE_NETWORK
) -> list[StoredConflict]:
    """Check again every live DER-level instruction to the DERs at ``connection_point_ids`` over ``[start, end)``
    (and everything coupled with them), with the envelopes, network state and states of charge in force now;
    store every conflict found with its resolution, apply it to the instructions and notify the parties. Runs in
    the caller's transaction (the network event or envelope publication that changed the limits)."""
    points = set(connection_point_ids)
    if not points or end <= start:
        return []
    stored, closed = _coupled(ctx, points, start, end, set())
    ders = _ders(ctx, (i.der_id for i in stored.values() if i.der_id is not None))
    live = [i for i in stored.values() if i.der_id in ders]
    if not live:
        return []
    found, adjusted, reasons = _run(ctx, live, (), ders, stage, None, closed)
    _store_adjustments(ctx, stored, adjusted, reasons)
    return found


def check_before_dispatch(ctx: Context, instructions: Sequence[Instruction]) -> list[StoredConflict]:
    """Check the stored DER-level ``instructions`` of a cycle (and everything coupled with them: the other
    instructions to their DERs and to the DERs at their connection points) once more before they go out, with
    the envelopes, network state and states of charge in force now; store and apply what it finds."""
    der_level = [i for i in instructions if _is_der_level(i)]
    if not der_level:
        return []
    ders = _ders(ctx, (i.der_id for i in der_level if i.der_id is not None))
    return recheck_points(
        ctx,
        {d.connection_point_id for d in ders.values()},
        min(i.interval_start for i in der_level),
        max(i.interval_end for i in der_level),
        stage=STAGE_DISPATCH,
    )


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


def _expiry_notes(
    ctx: Context,
    request: StoredAmendment,
    instruction: Instruction | None,
    stand: str,
    roles: Mapping[str, Role],
    when: datetime,
) -> list[Notification]:
    """Tell the addressee, every party of the conflict's resolution and the interface's DSO that ``request``
    expired, each only as its view of the conflict allows: the request, its instruction and what stands when the
    view shows the request, else that an amendment request of the conflict expired and its provisional setpoints
    are final."""
    stored = ctx.uow.conflicts.get(request.conflict_id)
    if stored is None:
        parties, views = [request.addressee_id], None
    else:
        parties = sorted(
            {request.addressee_id, stored.dso_id, *(p for o in stored.resolution.outcomes for p in o.party_ids)}
        )
        views = _PartyViews(ctx, stored, ctx.uow.conflicts.amendments(stored.id), roles)
    notes: list[Notification] = []
    for party in parties:
        shown = views is None or any(a["id"] == request.id for a in views.of(party)["amendment_requests"])
        if shown:
            message = (
                f"amendment request {request.id} for instruction {request.instruction_id} (conflict "
                f"{request.conflict_id}) expired at its deadline {format_time(request.deadline)} without an "
                f"amendment: the provisional setpoint is final: {stand}."
            )
        else:
            assert views is not None
            message = (
                f"an amendment request of conflict {request.conflict_id} expired at its deadline without an "
                f"amendment: its provisional setpoints are final. {views.withheld(party)}"
            )
        notes.append(
            _note(
                ctx,
                party,
                message,
                when,
                tdi_id=stored.conflict.tdi_id if stored is not None else None,
                interval_start=request.provisional[0].start if request.provisional and shown else None,
                magnitude_kw=instruction.p_kw if instruction is not None and shown else None,
                instruction_id=request.instruction_id if shown else None,
            )
        )
    return notes


# --- reading, policies, amendments ------------------------------------------------------------------------


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
    now = ctx.clock.now()
    root = _root_issuers(ctx, [amended]).get(amended.id)
    _domain_request(request).answer(_conflict_instruction(amended, roles, root), now)
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


def _domain_request(request: StoredAmendment) -> AmendmentRequest:
    return AmendmentRequest(
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


def expire_amendments(ctx: Context, now: datetime | None = None) -> list[StoredAmendment]:
    """Expire every pending amendment request whose deadline is before ``now`` (default: the clock): the
    platform (the cycle, the escalation job) expires every addressee's, any other caller only those addressed to
    it. The fallback applies: the provisional setpoint, which has stood since the conflict was resolved, is
    final. For each request this records status ``expired``, notes it on the instruction's reason, audits it
    and notifies every party of the conflict's resolution and the interface's DSO (``conflict_resolved``).
    Returns the expired requests, earliest deadline first."""
    when = now or ctx.clock.now()
    addressee = None if is_system(ctx.caller) else ctx.caller.participant_id
    roles = _roles(ctx)
    expired: list[StoredAmendment] = []
    notes: list[Notification] = []
    for request in ctx.uow.conflicts.due_amendments(when, addressee):
        _domain_request(request).expire(when)
        ctx.uow.conflicts.expire_amendment(request.id)
        stand = "; ".join(s.describe() for s in request.provisional) or "0 kW"
        instruction = ctx.uow.market.instructions.get(request.instruction_id)
        if instruction is not None:
            ctx.uow.conflicts.adjust_instruction(
                instruction.id,
                p_kw=instruction.p_kw,
                status=None,
                reason=f"amendment request {request.id} expired unanswered: the provisional setpoint is final",
            )
        ctx.audit(
            "conflict.amendment_expired",
            "amendment_request",
            request.id,
            {"status": AmendmentStatus.PENDING.value},
            {"status": AmendmentStatus.EXPIRED.value, "deadline": request.deadline.isoformat(), "stands": stand},
        )
        expired.append(replace(request, status=AmendmentStatus.EXPIRED))
        notes += _expiry_notes(ctx, expired[-1], instruction, stand, roles, when)
    ctx.uow.market.notifications.add_many(notes)
    return expired


__all__ = [
    "STAGE_AMENDMENT",
    "STAGE_DISPATCH",
    "STAGE_ISSUE",
    "STAGE_NETWORK",
    "STAGE_OFFERS",
    "amendment_json",
    "answer_amendment",
    "check_before_dispatch",
    "check_instructions",
    "check_offers",
    "conflict_json",
    "conflict_report",
    "conflict_scope",
    "expire_amendments",
    "get_conflict",
    "get_policy",
    "list_conflicts",
    "policy_for",
    "policy_json",
    "recheck_points",
    "round_trip_efficiency",
    "set_policy",
]
