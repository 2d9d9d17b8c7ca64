"""Transparent curtailment on the platform (white paper section 4.3; issue 5, item 3).

* ``publish_procedure`` (the DSO operating a T-D interface): a new version of its curtailment procedure there
  (rule, parameters, how the reduction is split between DSO-aggregated DERs and direct participants), in force
  from ``effective_from`` (now or later, never retroactive).
* ``procedure_in_force`` / ``list_procedures``: readable by every party connected at the interface: the DSO,
  the TSO, the observer, and aggregators and DER owners with a DER there.
* ``request_curtailment`` (the DSO, or the platform administrator on its behalf): a reduction of X kW over a
  real-time-aligned window, optionally limited to connection points or a feeder. The procedure in force at the
  window's start is applied to the DERs there (``gather_candidates``): their export over the window (from the
  instructions in force, else the envelope or static limit in force), group, offer price, capacity and
  connection date. The split (``allocate``) goes through ``allocate_curtailment``; the event is stored with
  every share and the numbers behind it; each affected party gets an operating instruction from the DSO (the
  party's total, its DERs' shares as children, each a *reduction*: negative ``p_kw`` that adds to the DER's
  other instructions) and a stored notice with its share and the rule.
* ``list_events`` / ``get_event``: each party sees only its own shares; a DSO every share at its interfaces;
  the TSO events and group totals without DER shares; the observer everything. Hidden events answer 404.

A rejected request changes nothing: every check runs before the first write.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from gridbridge.domain.aggregation import Aggregation, AggregationMember
from gridbridge.domain.conflicts import (
    CurtailmentCandidate,
    CurtailmentProcedure,
    CurtailmentShare,
    ParticipationGroup,
    format_kw,
)
from gridbridge.domain.coordination import CoordinationModel
from gridbridge.domain.der import Der, ReviewDecision
from gridbridge.domain.errors import ConflictError, NotFound, PermissionDenied, ValidationFailed, register_code
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.market import (
    Instruction,
    InstructionKind,
    InstructionProduct,
    InstructionStatus,
    ResourceKind,
    Route,
    route_for_der,
    tso_sees_der_instruction,
)
from gridbridge.domain.offers import Market
from gridbridge.domain.permissions import DerScope, is_system
from gridbridge.domain.roles import Role
from gridbridge.domain.tdi import TDInterface
from gridbridge.engines.conflicts import allocate_curtailment
from gridbridge.services.context import Context
from gridbridge.services.curtailment_ports import (
    CurtailmentEvent,
    CurtailmentScope,
    InstructedPower,
    PartyNotice,
    PublishedProcedure,
    StoredShare,
)
from gridbridge.services.offers import aggregation_members_at, aggregation_route
from gridbridge.services.ports import Page
from gridbridge.services.tdis import get_tdi, model_in_force

RETROACTIVE = register_code(
    "curtailment.retroactive_procedure", 422, "A curtailment procedure may not take effect in the past"
)
DUPLICATE_EFFECTIVE_FROM = register_code(
    "curtailment.duplicate_effective_from", 409, "A curtailment procedure version already takes effect at that time"
)
BAD_SPLIT = register_code(
    "curtailment.bad_split", 422, "The DSO-aggregated share of a procedure must be a percentage from 0 to 100"
)
NO_PROCEDURE = register_code(
    "curtailment.no_procedure", 409, "No curtailment procedure is in force at the T-D interface at that time"
)
BAD_REDUCTION = register_code(
    "curtailment.bad_reduction", 422, "The required reduction must be a finite number of kW above 0"
)
BEYOND_AVAILABLE = register_code(
    "curtailment.beyond_available",
    422,
    "The required reduction exceeds what the DERs in scope export over the window; details.available_kw says how "
    "much can be curtailed",
)
BAD_WINDOW = register_code(
    "curtailment.window_misaligned",
    422,
    "A curtailment window must start and end on real-time interval boundaries, and end after it starts",
)
WINDOW_PAST = register_code("curtailment.window_in_past", 422, "A curtailment window may not start before now")
UNKNOWN_POINT = register_code(
    "curtailment.unknown_point", 422, "A connection point or feeder named by a curtailment is not at the interface"
)

OPERATING = frozenset({DerStatus.IN_SERVICE, DerStatus.ENROLLED})
"""DERs that can be curtailed (they are connected and may export)."""
MAX_NOTE = 2000


# --- who may do and see what ----------------------------------------------------------------------------------


def _require_operator(ctx: Context, tdi_id: str, what: str) -> TDInterface:
    """The interface, when the caller is its DSO (or the platform administrator); 403 before any lookup for a
    role that never may."""
    caller = ctx.caller
    if not is_system(caller) and caller.role is not Role.DSO:
        raise PermissionDenied(f"role {caller.role.value} may not {what}", field="role")
    tdi = get_tdi(ctx.uow, tdi_id)
    if not is_system(caller) and tdi.dso_id != caller.participant_id:
        raise PermissionDenied(f"only the DSO operating T-D interface {tdi.name} may {what}", field="tdi_id")
    return tdi


def _connected(ctx: Context, tdi: TDInterface) -> bool:
    """True when the caller is connected at ``tdi``: its DSO, the TSO, an observer, or a party with a DER there."""
    caller = ctx.caller
    if is_system(caller) or caller.role in (Role.OBSERVER, Role.TSO):
        return True
    if caller.role is Role.DSO:
        return tdi.dso_id == caller.participant_id
    scope = DerScope(party_id=caller.participant_id, include_represented=True)
    return bool(ctx.uow.ders.query(scope, Page(limit=1), tdi_id=tdi.id))


def _require_reader(ctx: Context, tdi_id: str) -> TDInterface:
    tdi = get_tdi(ctx.uow, tdi_id)
    if not _connected(ctx, tdi):
        raise PermissionDenied(
            f"T-D interface {tdi.name}'s curtailment procedure is published to the parties connected there",
            field="tdi_id",
        )
    return tdi


def curtailment_scope(ctx: Context) -> CurtailmentScope:
    """Which curtailment events and shares the caller sees (``CurtailmentScope``)."""
    caller = ctx.caller
    if is_system(caller) or caller.role is Role.OBSERVER:
        return CurtailmentScope(everything=True)
    return CurtailmentScope(
        participant_id=caller.participant_id, dso=caller.role is Role.DSO, tso=caller.role is Role.TSO
    )


# --- procedures -------------------------------------------------------------------------------------------------


def publish_procedure(
    ctx: Context,
    tdi_id: str,
    rule: str,
    parameters: Mapping[str, str] | None = None,
    *,
    dso_aggregated_pct: float | None = None,
    effective_from: datetime | None = None,
    note: str = "",
) -> PublishedProcedure:
    """Publish the next version of the interface's curtailment procedure, in force from ``effective_from``
    (default now; never earlier than now, never at the time of another version).

    Raises ``conflicts.curtailment_unknown_rule`` / ``_unknown_parameter`` / ``_bad_parameter`` for a rule or
    parameter the procedure does not know or allow, ``curtailment.bad_split`` for a percentage outside 0-100,
    ``curtailment.retroactive_procedure`` and ``curtailment.duplicate_effective_from`` for its time.
    """
    tdi = _require_operator(ctx, tdi_id, "publish a curtailment procedure")
    procedure = CurtailmentProcedure(rule, dict(parameters or {}))  # type: ignore[arg-type]
    if dso_aggregated_pct is not None and not (
        math.isfinite(dso_aggregated_pct) and 0.0 <= dso_aggregated_pct <= 100.0
    ):
        raise ValidationFailed(
            f"dso_aggregated_pct must be from 0 to 100, got {dso_aggregated_pct}",
            field="dso_aggregated_pct",
            code=BAD_SPLIT,
        )
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ValidationFailed(f"note is longer than {MAX_NOTE} characters", field="note")
    now = ctx.clock.now()
    when = now if effective_from is None else effective_from
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValidationFailed("effective_from must be timezone-aware", field="effective_from")
    if when < now:
        raise ValidationFailed(
            f"effective_from {when.isoformat()} is before now ({now.isoformat()}); a curtailment procedure is "
            "never retroactive",
            field="effective_from",
            code=RETROACTIVE,
        )
    existing = ctx.uow.curtailment.procedures(tdi.id)
    if any(p.effective_from == when for p in existing):
        raise ConflictError(
            f"version {next(p.version for p in existing if p.effective_from == when)} already takes effect at "
            f"{when.isoformat()}",
            field="effective_from",
            code=DUPLICATE_EFFECTIVE_FROM,
        )
    published = PublishedProcedure(
        id=ctx.new_id(),
        tdi_id=tdi.id,
        dso_id=tdi.dso_id,
        version=max((p.version for p in existing), default=0) + 1,
        procedure=procedure,
        dso_aggregated_pct=dso_aggregated_pct,
        effective_from=when,
        published_at=now,
        published_by=ctx.caller.user_id,
        note=note,
    )
    ctx.uow.curtailment.add_procedure(published)
    ctx.audit("curtailment.procedure_publish", "td_interface", tdi.id, None, published.snapshot())
    return published


def in_force_at(versions: Sequence[PublishedProcedure], when: datetime) -> PublishedProcedure | None:
    """The version in force at ``when``: the latest ``effective_from`` not after it (None before the first)."""
    started = [p for p in versions if p.effective_from <= when]
    return max(started, key=lambda p: p.effective_from) if started else None


def procedure_in_force(ctx: Context, tdi_id: str, at: datetime | None = None) -> PublishedProcedure:
    """The version in force at ``at`` (default now); ``curtailment.no_procedure`` when none is."""
    tdi = _require_reader(ctx, tdi_id)
    when = at or ctx.clock.now()
    found = in_force_at(ctx.uow.curtailment.procedures(tdi.id), when)
    if found is None:
        raise ConflictError(
            f"no curtailment procedure is in force at T-D interface {tdi.name} at {when.isoformat()}",
            field="tdi_id",
            code=NO_PROCEDURE,
        )
    return found


def list_procedures(ctx: Context, tdi_id: str) -> list[PublishedProcedure]:
    """Every published version at the interface, oldest first (past, in force and scheduled)."""
    tdi = _require_reader(ctx, tdi_id)
    return ctx.uow.curtailment.procedures(tdi.id)


# --- candidates ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A DER that can be curtailed, with the figures the rule sees and where they came from."""

    der: Der
    candidate: CurtailmentCandidate
    export_source: str
    dso_affiliated: bool


def dso_affiliated(
    ctx: Context,
    der: Der,
    dso_id: str,
    when: datetime,
    memberships: Sequence[tuple[Aggregation, AggregationMember]] | None = None,
) -> bool:
    """True for a DER affiliated with the DSO: filed by it or for it, represented by it, or a member of an
    aggregation the DSO runs at ``when`` (the open-access report's 'DSO-affiliated'). ``memberships`` are the
    DER's memberships when the caller has them already."""
    if der.dso_affiliated or dso_id in (der.owner_id, der.representative_id):
        return True
    found = ctx.uow.aggregations.memberships_of(der.id) if memberships is None else memberships
    return any(
        aggregation.aggregator_id == dso_id and der.id in aggregation_members_at(aggregation, when)
        for aggregation, _ in found
    )


def participation(
    ctx: Context, der: Der, tdi: TDInterface, model: CoordinationModel, when: datetime
) -> tuple[ParticipationGroup, bool]:
    """How ``der`` reaches the market at ``when`` and whether it is DSO-affiliated.

    DSO-aggregated: DSO-affiliated, a member of an aggregation the DSO runs, a member of a third-party
    aggregation that the interface's model routes through the DSO's virtual resource, or a DER whose own offers
    go to the DSO (below the direct-participation threshold where the DSO aggregates). Direct otherwise.
    """
    memberships = ctx.uow.aggregations.memberships_of(der.id)
    if dso_affiliated(ctx, der, tdi.dso_id, when, memberships):
        return ParticipationGroup.DSO_AGGREGATED, True
    live = [a for a, _ in memberships if der.id in aggregation_members_at(a, when)]
    if live:
        through_dso = any(aggregation_route(ctx, a, when)[0] is Route.DSO for a in live)
    else:
        through_dso = route_for_der(model, der.capacity_kw, tdi.direct_threshold_kw) is Route.DSO
    return (ParticipationGroup.DSO_AGGREGATED if through_dso else ParticipationGroup.DIRECT), False


def export_over_window(
    instructed: Sequence[InstructedPower],
    reductions: Sequence[InstructedPower],
    start: datetime,
    end: datetime,
    envelope_kw: float,
) -> tuple[float, bool]:
    """A DER's export over ``[start, end)``, never above ``envelope_kw``.

    The window is cut at every instruction boundary. In each stretch the DER exports the sum of its
    instructions in force (``envelope_kw`` where none is), capped at the envelope, less the reductions of
    earlier curtailments (negative ``p_kw``). The smallest stretch counts, so a share never exceeds the export
    at any time in the window. Returns the kW (>= 0) and whether instructions set it.
    """
    bounds = {t for i in (*instructed, *reductions) for t in (i.start, i.end) if start < t < end}
    cuts = sorted({start, end} | bounds)
    lowest = math.inf
    from_instructions = False
    for a, b in itertools.pairwise(cuts):
        covering = [i.p_kw for i in instructed if i.start < b and i.end > a]
        base = min(sum(covering), envelope_kw) if covering else envelope_kw
        cut = sum(r.p_kw for r in reductions if r.start < b and r.end > a)
        from_instructions |= bool(covering)
        lowest = min(lowest, base + cut)
    return max(0.0 if math.isinf(lowest) else lowest, 0.0), from_instructions


def _offer_prices(ctx: Context, tdi_id: str, start: datetime) -> dict[str, Decimal]:
    """The lowest price of each DER's offer in force for the window's first real-time interval, else for its
    day-ahead hour (a DER offered through an aggregation takes the aggregation's price)."""
    prices: dict[str, Decimal] = {}
    hour = start.replace(minute=0, second=0, microsecond=0)
    for market, interval in ((Market.DAY_AHEAD, hour), (Market.REAL_TIME, start)):
        for offer in ctx.uow.market.offers.current(market, interval, tdi_id=tdi_id):
            if not offer.segments:
                continue
            price = min(s.price_cad_per_mwh for s in offer.segments)
            if offer.resource_kind is ResourceKind.DER:
                prices[offer.resource_id] = price
            elif offer.resource_kind is ResourceKind.AGGREGATION:
                aggregation = ctx.uow.aggregations.get(offer.resource_id)
                for der_id in aggregation_members_at(aggregation, start) if aggregation else []:
                    prices[der_id] = price
    return prices


def connected_at(der: Der) -> datetime:
    """When the DER was connected: the LDC's latest approval of its interconnection, else its request."""
    approvals = [r.decided_at for r in der.reviews if r.decision is ReviewDecision.APPROVED]
    return max(approvals) if approvals else der.requested_at


def gather_candidates(
    ctx: Context,
    tdi: TDInterface,
    start: datetime,
    end: datetime,
    point_ids: frozenset[int] | None = None,
) -> list[Candidate]:
    """The DERs in service at the interface (at ``point_ids`` when given) that export over the window, in
    connection order, with what every rule needs. DERs without an offer in force take the market's price cap:
    under ``offer_price`` highest first they are curtailed before DERs the market relies on."""
    model = model_in_force(ctx.uow, tdi.id, start)
    ders = [
        d
        for d in ctx.uow.ders.query(DerScope(everything=True), Page(limit=1_000_000), tdi_id=tdi.id)
        if d.status in OPERATING and d.p_export_kw > 0 and (point_ids is None or d.connection_point_id in point_ids)
    ]
    ids = [d.id for d in ders]
    limits = ctx.uow.market.envelopes.der_limits(ids, start, end)
    instructed: dict[str, list[InstructedPower]] = defaultdict(list)
    for power in ctx.uow.curtailment.der_instructions(ids, start, end):
        instructed[power.der_id].append(power)
    reduced: dict[str, list[InstructedPower]] = defaultdict(list)
    for power in ctx.uow.curtailment.der_curtailments(ids, start, end):
        reduced[power.der_id].append(power)
    prices = _offer_prices(ctx, tdi.id, start)
    cap = ctx.settings.market.rules(Market.REAL_TIME).price_bounds.cap_cad_per_mwh
    found: list[Candidate] = []
    for der in sorted(ders, key=lambda d: (connected_at(d), d.id)):
        limit = limits.get(der.id)
        envelope_kw = limit.export_kw if limit is not None else 0.0
        export_kw, by_instructions = export_over_window(instructed[der.id], reduced[der.id], start, end, envelope_kw)
        if export_kw <= 0:
            continue
        group, affiliated = participation(ctx, der, tdi, model, start)
        source = "instructions" if by_instructions else (limit.binding_export if limit else f"no_limits:der/{der.id}")
        if reduced[der.id]:
            source += f" less {len(reduced[der.id])} earlier curtailment(s)"
        candidate = CurtailmentCandidate(
            der_id=der.id,
            party_id=der.representative_id or der.owner_id,
            group=group,
            p_export_kw=round(export_kw, 3),
            capacity_kw=der.p_export_kw,
            offer_price_cad_per_mwh=prices.get(der.id, cap),
            connected_at=connected_at(der),
        )
        found.append(Candidate(der, candidate, source, affiliated))
    return found


# --- the split ----------------------------------------------------------------------------------------------------


def allocate(
    constraint_id: str,
    required_kw: float,
    candidates: Sequence[CurtailmentCandidate],
    published: PublishedProcedure,
) -> list[CurtailmentShare]:
    """One share per candidate (same order) under the published procedure; the shares sum to ``required_kw``
    (in whole watts) when the candidates can cover it.

    Without a group split this is ``allocate_curtailment`` over every candidate. With ``dso_aggregated_pct``
    the DSO-aggregated group is asked for that part (rounded to the watt) and direct participants for the
    rest, each split by the rule within the group; what one group cannot cover is split by the rule over the
    other group's remaining export, and the reason says so.
    """
    procedure = published.procedure
    if published.dso_aggregated_pct is None:
        return list(allocate_curtailment(constraint_id, required_kw, candidates, procedure).shares)
    required_w = round(required_kw * 1000)
    dso_w = round(required_w * published.dso_aggregated_pct / 100)
    target_w = {ParticipationGroup.DSO_AGGREGATED: dso_w, ParticipationGroup.DIRECT: required_w - dso_w}
    members = {g: [c for c in candidates if c.group is g] for g in ParticipationGroup}
    shares: dict[str, CurtailmentShare] = {}
    unmet_w: dict[ParticipationGroup, int] = {}
    for group in ParticipationGroup:
        done = allocate_curtailment(constraint_id, target_w[group] / 1000, members[group], procedure)
        shares.update({s.der_id: s for s in done.shares})
        unmet_w[group] = round(done.unmet_kw * 1000)
    split_text = (
        f" The procedure gives {published.dso_aggregated_pct:g} % of the requirement to DSO-aggregated DERs and the "
        "rest to direct participants."
    )
    for group, other in (
        (ParticipationGroup.DSO_AGGREGATED, ParticipationGroup.DIRECT),
        (ParticipationGroup.DIRECT, ParticipationGroup.DSO_AGGREGATED),
    ):
        if unmet_w[group] <= 0:
            continue
        rest = [
            replace(c, p_export_kw=max(round(c.p_export_kw - shares[c.der_id].share_kw, 3), 0.0))
            for c in members[other]
        ]
        extra = allocate_curtailment(constraint_id, unmet_w[group] / 1000, rest, procedure)
        for s in extra.shares:
            if s.share_kw > 0:
                before = shares[s.der_id]
                total_w = round(before.share_kw * 1000) + round(s.share_kw * 1000)
                shares[s.der_id] = replace(
                    before,
                    share_kw=total_w / 1000,
                    reason=(
                        f"{before.reason} It also takes {format_kw(s.share_kw)} of the "
                        f"{format_kw(unmet_w[group] / 1000)} that the {group.value} group could not cover."
                    ),
                )
    return [replace(shares[c.der_id], reason=shares[c.der_id].reason + split_text) for c in candidates]


# --- requesting a curtailment -------------------------------------------------------------------------------------


def _check_window(ctx: Context, start: datetime, end: datetime) -> None:
    step = ctx.settings.market.rules(Market.REAL_TIME).interval
    seconds = int(step.total_seconds())
    for name, value in (("window_start", start), ("window_end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationFailed(f"{name} must be timezone-aware", field=name, code=BAD_WINDOW)
        if value.timestamp() % seconds:
            raise ValidationFailed(
                f"{name} {value.isoformat()} is not on a {seconds // 60}-minute real-time interval boundary",
                field=name,
                code=BAD_WINDOW,
            )
    if end <= start:
        raise ValidationFailed("window_end must be after window_start", field="window_end", code=BAD_WINDOW)
    now = ctx.clock.now()
    if start < now:
        raise ValidationFailed(
            f"window_start {start.isoformat()} is before now ({now.isoformat()})",
            field="window_start",
            code=WINDOW_PAST,
        )


def _points_in_scope(
    ctx: Context, tdi: TDInterface, connection_point_ids: Sequence[int], feeder: str | None
) -> frozenset[int] | None:
    if not connection_point_ids and feeder is None:
        return None
    points = ctx.uow.networks.connection_points(tdi.id)
    known = {p.id for p in points}
    for k, point_id in enumerate(connection_point_ids):
        if point_id not in known:
            raise ValidationFailed(
                f"connection point {point_id} is not at T-D interface {tdi.name}",
                field=f"connection_point_ids[{k}]",
                code=UNKNOWN_POINT,
            )
    chosen = set(connection_point_ids) or known
    if feeder is not None:
        on_feeder = {p.id for p in points if p.feeder == feeder}
        if not on_feeder:
            raise ValidationFailed(
                f"no connection point of T-D interface {tdi.name} is on feeder {feeder!r}",
                field="feeder",
                code=UNKNOWN_POINT,
            )
        chosen &= on_feeder
    return frozenset(chosen)


def request_curtailment(
    ctx: Context,
    tdi_id: str,
    required_kw: float,
    window_start: datetime,
    window_end: datetime,
    *,
    connection_point_ids: Sequence[int] = (),
    feeder: str | None = None,
    reason: str = "",
) -> CurtailmentEvent:
    """Curtail ``required_kw`` of export at the interface over ``[window_start, window_end)`` by the procedure
    in force at ``window_start``; store the event with every share, issue the reductions as operating
    instructions from the DSO to each affected party (a parent per party, one child per DER) and store each
    party's notice. Returns the stored event.

    Raises (and changes nothing): ``not_found`` for an unknown interface, ``auth.forbidden`` for a caller that
    does not operate it, ``curtailment.bad_reduction``, ``curtailment.window_misaligned``,
    ``curtailment.window_in_past``, ``curtailment.unknown_point``, ``curtailment.no_procedure``, and
    ``curtailment.beyond_available`` (details: ``available_kw``, ``required_kw``, ``candidates``).
    """
    tdi = _require_operator(ctx, tdi_id, "request a curtailment")
    if not isinstance(required_kw, int | float) or not math.isfinite(required_kw) or required_kw <= 0:
        raise ValidationFailed(
            f"required_kw must be a finite number of kW above 0, got {required_kw}",
            field="required_kw",
            code=BAD_REDUCTION,
        )
    if round(required_kw * 1000) < 1:
        raise ValidationFailed("required_kw must be at least 1 W (0.001 kW)", field="required_kw", code=BAD_REDUCTION)
    _check_window(ctx, window_start, window_end)
    reason = reason.strip()
    if len(reason) > MAX_NOTE:
        raise ValidationFailed(f"reason is longer than {MAX_NOTE} characters", field="reason")
    points = _points_in_scope(ctx, tdi, connection_point_ids, feeder)
    published = in_force_at(ctx.uow.curtailment.procedures(tdi.id), window_start)
    if published is None:
        raise ConflictError(
            f"no curtailment procedure is in force at T-D interface {tdi.name} at {window_start.isoformat()}; "
            "the DSO must publish one first",
            field="tdi_id",
            code=NO_PROCEDURE,
        )
    found = gather_candidates(ctx, tdi, window_start, window_end, points)
    available_w = sum(math.floor(c.candidate.p_export_kw * 1000 + 1e-6) for c in found)
    if round(required_kw * 1000) > available_w:
        raise ValidationFailed(
            f"required_kw {format_kw(required_kw)} is more than the {format_kw(available_w / 1000)} the "
            f"{len(found)} DER(s) in scope export over the window; at most {format_kw(available_w / 1000)} can be "
            "curtailed",
            field="required_kw",
            code=BEYOND_AVAILABLE,
            details={"available_kw": available_w / 1000, "required_kw": required_kw, "candidates": len(found)},
        )
    event_id = ctx.new_id()
    shares = allocate(f"{tdi.name}/{event_id}", required_kw, [c.candidate for c in found], published)
    return _store_event(
        ctx,
        tdi,
        published,
        event_id,
        required_kw,
        available_w / 1000,
        found,
        shares,
        points,
        feeder,
        reason,
        window_start,
        window_end,
    )


def _store_event(
    ctx: Context,
    tdi: TDInterface,
    published: PublishedProcedure,
    event_id: str,
    required_kw: float,
    available_kw: float,
    found: Sequence[Candidate],
    shares: Sequence[CurtailmentShare],
    points: frozenset[int] | None,
    feeder: str | None,
    reason: str,
    start: datetime,
    end: datetime,
) -> CurtailmentEvent:
    now = ctx.clock.now()
    model = model_in_force(ctx.uow, tdi.id, start)
    deadline = now + ctx.settings.market.response_window(InstructionKind.OPERATING)
    rule_text = published.describe()
    window_text = f"{start.isoformat()} to {end.isoformat()}"
    by_party: dict[str, list[int]] = defaultdict(list)
    for k, share in enumerate(shares):
        if share.share_kw > 0:
            by_party[share.party_id].append(k)

    def instruction(
        recipient: str, p_kw: float, why: str, der: Der | None = None, parent: str | None = None
    ) -> Instruction:
        return Instruction(
            id=ctx.new_id(),
            kind=InstructionKind.OPERATING,
            market=None,
            product=InstructionProduct.ENERGY,
            interval_start=start,
            interval_end=end,
            p_kw=p_kw,
            issuer_id=tdi.dso_id,
            recipient_id=recipient,
            resource_kind=ResourceKind.DER if der else ResourceKind.INTERFACE,
            resource_id=der.id if der else tdi.id,
            der_id=der.id if der else None,
            tdi_id=tdi.id,
            dso_id=tdi.dso_id,
            parent_id=parent,
            run_id=None,
            offer_id=None,
            status=InstructionStatus.ISSUED,
            issued_at=now,
            deadline_at=deadline,
            tso_visible=der is not None and tso_sees_der_instruction(model, der.market_participating),
            reason=why,
        )

    issued: list[Instruction] = []
    instruction_of: dict[int, str] = {}
    notices: list[PartyNotice] = []
    for party, ks in sorted(by_party.items()):
        party_w = sum(round(shares[k].share_kw * 1000) for k in ks)
        der_ids = tuple(shares[k].der_id for k in ks)
        message = (
            f"Curtailment at T-D interface {tdi.name} from {window_text}: reduce export by {format_kw(party_w / 1000)} "
            f"in total, {format_kw(party_w / 1000)} of the {format_kw(required_kw)} required, over your "
            f"{len(ks)} DER(s) ({', '.join(f'{shares[k].der_id}: {format_kw(shares[k].share_kw)}' for k in ks)}). "
            f"Published procedure {rule_text}." + (f" Reason: {reason}" if reason else "")
        )
        parent = instruction(party, -party_w / 1000, message)
        issued.append(parent)
        for k in ks:
            child = instruction(party, -shares[k].share_kw, shares[k].reason, found[k].der, parent.id)
            issued.append(child)
            instruction_of[k] = child.id
        notices.append(PartyNotice(party, party_w / 1000, der_ids, rule_text, message, parent.id, now))
    stored = tuple(
        StoredShare(
            der_id=s.der_id,
            party_id=s.party_id,
            owner_id=c.der.owner_id,
            group=s.group,
            dso_affiliated=c.dso_affiliated,
            p_export_kw=c.candidate.p_export_kw,
            export_source=c.export_source,
            capacity_kw=c.candidate.capacity_kw,
            offer_price_cad_per_mwh=c.candidate.offer_price_cad_per_mwh,
            connected_at=c.candidate.connected_at,
            share_kw=s.share_kw,
            rule=rule_text,
            reason=s.reason,
            instruction_id=instruction_of.get(k),
        )
        for k, (s, c) in enumerate(zip(shares, found, strict=True))
    )
    by_group_w = {g: sum(round(s.share_kw * 1000) for s in shares if s.group is g) for g in ParticipationGroup}
    event = CurtailmentEvent(
        id=event_id,
        tdi_id=tdi.id,
        dso_id=tdi.dso_id,
        procedure_id=published.id,
        procedure_version=published.version,
        rule=rule_text,
        required_kw=required_kw,
        available_kw=available_kw,
        dso_aggregated_kw=by_group_w[ParticipationGroup.DSO_AGGREGATED] / 1000,
        direct_kw=by_group_w[ParticipationGroup.DIRECT] / 1000,
        window_start=start,
        window_end=end,
        connection_point_ids=tuple(sorted(points)) if points is not None else (),
        feeder=feeder,
        reason=reason,
        requested_at=now,
        requested_by=ctx.caller.user_id,
        requested_for=tdi.dso_id,
        shares=stored,
        notices=tuple(notices),
    )
    ctx.uow.curtailment.add_event(event)
    if issued:
        ctx.uow.market.instructions.add_many(issued)
    ctx.audit("curtailment.request", "curtailment_event", event.id, None, event.snapshot())
    return event


# --- reading events -----------------------------------------------------------------------------------------------


def list_events(ctx: Context, page: Page, tdi_id: str | None = None) -> list[CurtailmentEvent]:
    """The events the caller may see, newest window first, each cut to the shares it may see."""
    scope = curtailment_scope(ctx)
    return [scope.visible(e) for e in ctx.uow.curtailment.query_events(scope, page, tdi_id)]


def get_event(ctx: Context, event_id: str) -> CurtailmentEvent:
    """One event cut to the shares the caller may see; an event it may not see answers like a missing one."""
    scope = curtailment_scope(ctx)
    event = ctx.uow.curtailment.get_event(event_id)
    if event is None or not scope.allows(event):
        raise NotFound(f"no curtailment {event_id}", field="curtailment_id")
    return scope.visible(event)


__all__ = [
    "Candidate",
    "allocate",
    "curtailment_scope",
    "gather_candidates",
    "get_event",
    "in_force_at",
    "list_events",
    "list_procedures",
    "procedure_in_force",
    "publish_procedure",
    "request_curtailment",
]
