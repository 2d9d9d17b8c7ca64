"""Per-caller views of conflict records (docs/conflicts.md, "Who sees what").

A conflict can involve several parties' resources: two DERs of competing aggregators at one connection point,
or one DER committed to two holders. Everyone who takes part may see the conflict itself (kind, interval
window, interface, rule, resolution), but only the DERs, instructions, commitments, outcomes, amendment
requests and parties the platform's permission rules let it see:

* observers and the platform administrator: everything (the full record, ``conflict_json``);
* an LDC: the DERs in its territory and everything on them;
* a DER owner: its DERs and everything on them;
* an aggregator: the DERs it owns or represents, and only its own items on them (the instructions it issued or
  received, the commitments it provided): never another aggregator's instruction or commitment;
* the TSO: the DERs the interface's coordination model in force at the conflict's start shows it (Table 6
  row 2: all, market-participating only, none under Total DSO) and everything on them;
* everyone: the items it issued or received itself, and the commitments it provided or bought directly from
  the DER (with their DERs).

A view with anything withheld is ``partial``: it lists only the visible items, counts the rest
(``withheld``: DERs and items; their combined kW only when at least two DERs of at least two owners are
withheld, so that no single competitor's figure can be read off), carries no per-interval ``series`` or
``figures`` (they add up every resource's kW), and its summaries and reasons are rebuilt or cleared of every
withheld id. Fields of the full record not listed here are not carried into a partial view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridbridge.domain.conflicts import Outcome, SubjectType
from gridbridge.domain.der import Der
from gridbridge.domain.errors import NotFound, ValidationFailed
from gridbridge.domain.market import ResourceKind, StoredOffer, tso_sees_der_instruction
from gridbridge.domain.permissions import Caller, is_system
from gridbridge.domain.roles import Role
from gridbridge.domain.settlement import offer_of
from gridbridge.domain.validation import OUT_OF_RANGE
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
from gridbridge.services.tdis import model_in_force

WITHHELD = "(withheld)"
"""What replaces a withheld id in a partial view's texts."""

_HEADER = ("id", "kind", "stage", "tdi_id", "dso_id", "interval_start", "interval_end", "intervals", "detected_at")
"""Fields of the full record every viewer of a conflict sees."""


# --- the full record and who may read it ------------------------------------------------------------------


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


# --- views ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """Who looks at a conflict: a participant and its role, or someone who sees everything."""

    participant_id: str
    role: Role
    everything: bool = False


def viewer_of(caller: Caller) -> Viewer:
    """The viewer a caller is: observers and the platform administrator see everything."""
    return Viewer(caller.participant_id, caller.role, is_system(caller) or caller.role is Role.OBSERVER)


@dataclass(frozen=True)
class ConflictFacts:
    """What deciding a view needs besides the record: the DERs of the conflict, the offers of its commitments,
    and (for the TSO) whether the model in force at the conflict's start shows it each DER."""

    ders: Mapping[str, Der]
    offers: Mapping[str, StoredOffer]
    tso_sees: Mapping[str, bool]


@dataclass(frozen=True)
class VisibleParts:
    """What of one conflict a viewer may see."""

    full: bool
    der_ids: frozenset[str]
    subject_ids: frozenset[str]
    """Instructions and commitments."""
    party_ids: frozenset[str]
    hidden_der_ids: tuple[str, ...]
    hidden_outcomes: tuple[Outcome, ...]


def _all_ders(stored: StoredConflict) -> list[str]:
    return list(dict.fromkeys([*stored.conflict.der_ids, *(o.der_id for o in stored.resolution.outcomes)]))


def _in_scope(viewer: Viewer, der: Der | None, facts: ConflictFacts) -> bool:
    """The DER rule of ``domain.permissions.der_scope``, with the TSO's model taken at the conflict's start."""
    if der is None:
        return False
    me = viewer.participant_id
    if viewer.role is Role.DSO:
        return der.dso_id == me
    if viewer.role is Role.AGGREGATOR:
        return me in (der.owner_id, der.representative_id)
    if viewer.role is Role.DER_OWNER:
        return der.owner_id == me
    if viewer.role is Role.TSO:
        return facts.tso_sees.get(der.id, False)
    return False


def _own(viewer: Viewer, outcome: Outcome, facts: ConflictFacts) -> bool:
    """The viewer issued or received this instruction, provided this commitment, or bought it from the DER."""
    me = viewer.participant_id
    if outcome.subject_type is SubjectType.INSTRUCTION:
        return me in (outcome.issuer_party_id, outcome.recipient_party_id)
    if outcome.recipient_party_id == me:
        return True
    offer = facts.offers.get(offer_of(outcome.subject_id))
    return outcome.issuer_party_id == me and offer is not None and offer.resource_kind is ResourceKind.DER


def visible_parts(stored: StoredConflict, viewer: Viewer, facts: ConflictFacts) -> VisibleParts:
    """Decide what of ``stored`` the viewer may see (the rules of the module docstring)."""
    der_ids = _all_ders(stored)
    outcomes = stored.resolution.outcomes
    if viewer.everything:
        parties = set(stored.conflict.party_ids) | {p for o in outcomes for p in o.party_ids}
        return VisibleParts(
            True, frozenset(der_ids), frozenset(o.subject_id for o in outcomes), frozenset(parties), (), ()
        )
    scoped = {d for d in der_ids if _in_scope(viewer, facts.ders.get(d), facts)}
    items_by_der = viewer.role is not Role.AGGREGATOR
    seen = [o for o in outcomes if _own(viewer, o, facts) or (items_by_der and o.der_id in scoped)]
    visible_ders = scoped | {o.der_id for o in seen}
    parties = {viewer.participant_id, stored.dso_id} | {p for o in seen for p in o.party_ids}
    for d in visible_ders:
        der = facts.ders.get(d)
        if der is not None:
            parties.update(p for p in (der.owner_id, der.representative_id) if p)
    seen_ids = {o.subject_id for o in seen}
    hidden_ders = tuple(d for d in der_ids if d not in visible_ders)
    hidden = tuple(o for o in outcomes if o.subject_id not in seen_ids)
    return VisibleParts(
        not hidden_ders and not hidden,
        frozenset(visible_ders),
        frozenset(seen_ids),
        frozenset(parties),
        hidden_ders,
        hidden,
    )


def _combined_kw(parts: VisibleParts, facts: ConflictFacts) -> float | None:
    """The withheld items' combined kW, only when it cannot be read as one competitor's figure: at least two
    withheld DERs of at least two owners."""
    owners = {facts.ders[d].owner_id if d in facts.ders else d for d in parts.hidden_der_ids}
    if len(parts.hidden_der_ids) < 2 or len(owners) < 2:
        return None
    return float(sum(abs(o.original_p_kw) for o in parts.hidden_outcomes))


def _withheld_ids(stored: StoredConflict, parts: VisibleParts, facts: ConflictFacts) -> list[str]:
    """Every id a partial view's texts must not show, longest first (a commitment id contains a DER id)."""
    ids: set[str] = set(parts.hidden_der_ids)
    for o in parts.hidden_outcomes:
        ids.update((o.subject_id, o.issuer_party_id, o.recipient_party_id))
        if o.subject_type is SubjectType.COMMITMENT:
            offer = facts.offers.get(offer_of(o.subject_id))
            ids.add(offer_of(o.subject_id))
            if offer is not None:
                ids.add(offer.resource_id)
    for d in parts.hidden_der_ids:
        der = facts.ders.get(d)
        if der is not None:
            ids.update(p for p in (der.owner_id, der.representative_id) if p)
    ids.update(stored.conflict.party_ids)
    if not parts.der_ids and stored.conflict.connection_point_id:
        ids.add(stored.conflict.connection_point_id)
    visible = parts.der_ids | parts.subject_ids | parts.party_ids
    return sorted((i for i in ids if i and i not in visible), key=lambda i: (-len(i), i))


def _scrub(text: str, withheld: Sequence[str]) -> str:
    for value in withheld:
        text = text.replace(value, WITHHELD)
    return text


def _summary(stored: StoredConflict, parts: VisibleParts) -> str:
    c = stored.conflict
    start = min(a for a, _ in c.intervals).isoformat()
    end = max(b for _, b in c.intervals).isoformat()
    return (
        f"{c.kind.value} at T-D interface {c.tdi_id} from {start} to {end}. Shown: {len(parts.der_ids)} DER(s) and "
        f"{len(parts.subject_ids)} item(s); withheld: {len(parts.hidden_der_ids)} DER(s) and "
        f"{len(parts.hidden_outcomes)} item(s) of other parties."
    )


def _resolution_summary(stored: StoredConflict, parts: VisibleParts) -> str:
    groups: dict[str, list[str]] = {}
    for o in stored.resolution.outcomes:
        if o.subject_id in parts.subject_ids:
            groups.setdefault(o.action.value, []).append(o.subject_id)
    told = "; ".join(f"{action}: {', '.join(ids)}" for action, ids in groups.items())
    shown = f" {told}." if told else ""
    return (
        f"{stored.kind.value} resolved by {stored.resolution.rule.value}.{shown} "
        f"{len(parts.hidden_outcomes)} item(s) of other parties withheld."
    )


def conflict_view(
    stored: StoredConflict, amendments: Sequence[StoredAmendment], viewer: Viewer, facts: ConflictFacts
) -> dict[str, Any]:
    """The conflict as ``viewer`` may see it, as plain JSON values: the full record (``conflict_json``) with
    ``view`` ``"full"``, or a ``"partial"`` view (see the module docstring) with ``withheld`` counts."""
    record = conflict_json(stored, amendments)
    parts = visible_parts(stored, viewer, facts)
    if parts.full:
        return {**record, "view": "full", "withheld": None}
    c = stored.conflict
    withheld = _withheld_ids(stored, parts, facts)
    summary = _summary(stored, parts)
    out: dict[str, Any] = {k: record[k] for k in _HEADER}
    out["der_ids"] = [d for d in c.der_ids if d in parts.der_ids]
    out["connection_point_id"] = c.connection_point_id if parts.der_ids else None
    out["instruction_ids"] = [i for i in c.instruction_ids if i in parts.subject_ids]
    out["commitment_ids"] = [i for i in c.commitment_ids if i in parts.subject_ids]
    out["party_ids"] = [p for p in c.party_ids if p in parts.party_ids]
    out["figures"] = {}
    out["series"] = {}
    out["summary"] = summary
    resolution = dict(record["resolution"])
    binding = resolution.get("binding_limit")
    resolution["binding_limit"] = _scrub(binding, withheld) if binding and parts.der_ids else None
    resolution["summary"] = _resolution_summary(stored, parts)
    outcomes = []
    for item in resolution["outcomes"]:
        if item["subject_id"] in parts.subject_ids:
            reason = str(item["reason"]).replace(f"Conflict: {c.summary}", f"Conflict: {summary}")
            outcomes.append({**item, "reason": _scrub(reason, withheld)})
    resolution["outcomes"] = outcomes
    out["resolution"] = resolution
    out["amendment_requests"] = [
        {**a, "reason": _scrub(str(a["reason"]).replace(f"Conflict: {c.summary}", f"Conflict: {summary}"), withheld)}
        for a in record["amendment_requests"]
        if a["instruction_id"] in parts.subject_ids or a["addressee_id"] == viewer.participant_id
    ]
    out["view"] = "partial"
    out["withheld"] = {
        "ders": len(parts.hidden_der_ids),
        "items": len(parts.hidden_outcomes),
        "combined_kw": _combined_kw(parts, facts),
    }
    return out


# --- on the platform ----------------------------------------------------------------------------------------


def _tso_sees(ctx: Context, ders: Iterable[Der], when: datetime) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for der in ders:
        try:
            model = model_in_force(ctx.uow, der.tdi_id, when)
        except ValidationFailed:  # no model in force: the TSO sees no DER there
            out[der.id] = False
            continue
        out[der.id] = tso_sees_der_instruction(model, der.market_participating)
    return out


def facts_for(ctx: Context, stored: StoredConflict, viewer: Viewer) -> ConflictFacts:
    """Read what ``visible_parts`` needs about ``stored`` from the store."""
    if viewer.everything:
        return ConflictFacts({}, {}, {})
    return _facts(ctx, stored, tso=viewer.role is Role.TSO)


def facts_for_anyone(ctx: Context, stored: StoredConflict) -> ConflictFacts:
    """What ``visible_parts`` needs about ``stored`` for any viewer (the TSO's view of each DER included), read
    once for the views of several parties (the notifications of a conflict)."""
    return _facts(ctx, stored, tso=True)


def party_viewer(participant_id: str, role: Role | None) -> Viewer:
    """A participant as a viewer of conflicts (an observer sees everything; an unknown role sees what a DER owner
    would)."""
    return Viewer(participant_id, role or Role.DER_OWNER, role is Role.OBSERVER)


def _facts(ctx: Context, stored: StoredConflict, *, tso: bool) -> ConflictFacts:
    ders: dict[str, Der] = {}
    for der_id in _all_ders(stored):
        der = ctx.uow.ders.get(der_id)
        if der is not None:
            ders[der_id] = der
    commitments = [o for o in stored.resolution.outcomes if o.subject_type is SubjectType.COMMITMENT]
    offer_ids = sorted({offer_of(o.subject_id) for o in commitments})
    offers = {o.id: o for o in ctx.uow.market.offers.get_many(offer_ids)} if offer_ids else {}
    start = min(a for a, _ in stored.conflict.intervals)
    return ConflictFacts(ders, offers, _tso_sees(ctx, ders.values(), start) if tso else {})


def view_for(ctx: Context, stored: StoredConflict, amendments: Sequence[StoredAmendment]) -> dict[str, Any]:
    """``stored`` as the context's caller may see it (``conflict_view``)."""
    viewer = viewer_of(ctx.caller)
    return conflict_view(stored, amendments, viewer, facts_for(ctx, stored, viewer))


def get_conflict_view(ctx: Context, conflict_id: str) -> dict[str, Any]:
    """One conflict as the caller may see it; one the caller does not take part in answers ``not_found``."""
    stored, amendments = get_conflict(ctx, conflict_id)
    return view_for(ctx, stored, amendments)


def list_conflict_views(ctx: Context, page: Page, filters: ConflictFilter | None = None) -> list[dict[str, Any]]:
    """The conflicts the caller may see (``services.conflicts.list_conflicts``), each as the caller may see it.
    With a ``der_id`` filter, only conflicts whose view shows that DER count (a conflict never answers for a DER
    it withholds), and paging counts those."""
    f = filters or ConflictFilter()
    if f.der_id is None or viewer_of(ctx.caller).everything:
        return [view_for(ctx, s, ctx.uow.conflicts.amendments(s.id)) for s in list_conflicts(ctx, page, f)]
    out: list[dict[str, Any]] = []
    skip, offset, batch = page.offset, 0, max(page.limit, 50)
    while len(out) < page.limit:
        found = list_conflicts(ctx, Page(limit=batch, offset=offset), f)
        for s in found:
            view = view_for(ctx, s, ctx.uow.conflicts.amendments(s.id))
            if f.der_id not in view["der_ids"]:
                continue
            if skip:
                skip -= 1
                continue
            out.append(view)
            if len(out) == page.limit:
                break
        if len(found) < batch:
            break
        offset += batch
    return out


def conflict_report(ctx: Context, start: datetime, end: datetime, *, limit: int = 10_000) -> list[dict[str, Any]]:
    """The conflicts the caller may see that overlap ``[start, end)``, each with its resolution as the caller may
    see it (``view_for``: the full record for an observer or the platform, which the scenario runner uses), as
    JSON-able dicts in interval order (for the scenario report)."""
    found = list_conflicts(ctx, Page(limit=limit), ConflictFilter(start=start, end=end))
    return [view_for(ctx, s, ctx.uow.conflicts.amendments(s.id)) for s in found]


__all__ = [
    "WITHHELD",
    "ConflictFacts",
    "Viewer",
    "VisibleParts",
    "amendment_json",
    "conflict_json",
    "conflict_report",
    "conflict_scope",
    "conflict_view",
    "facts_for",
    "facts_for_anyone",
    "get_conflict",
    "get_conflict_view",
    "list_conflict_views",
    "list_conflicts",
    "party_viewer",
    "view_for",
    "viewer_of",
]
