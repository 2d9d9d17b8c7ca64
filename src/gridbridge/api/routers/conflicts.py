"""Conflicts between instructions (hidden coupling, tier bypassing, double counting) with their resolutions, each
as the caller may see it (``services.conflict_views``), per-interface resolution policies, amendment requests,
the DSO's distribution service dispatch that can cause them, and the settlement flags of double counting
(docs/conflicts.md)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field

from gridbridge.api.deps import CommandsDep
from gridbridge.api.routers.instructions import InstructionOut, render_instruction
from gridbridge.api.schemas import Out, Strict, paging
from gridbridge.domain.conflicts import ConflictKind
from gridbridge.services import conflict_views, instructions, settlement_flags
from gridbridge.services import conflicts as service
from gridbridge.services.conflict_ports import ConflictFilter
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from gridbridge.services.settlement_ports import FlagFilter

router = APIRouter(tags=["conflicts"])
Id = Annotated[str, Path(max_length=64)]


class ConflictStatus(StrEnum):
    """Whether a conflict waits on an amendment request or is settled."""

    PENDING_AMENDMENT = "pending_amendment"
    SETTLED = "settled"


class WithheldOut(Out):
    """What a partial view leaves out: DERs and items (instructions, commitments) of other parties, and their
    combined kW when that cannot be read as one competitor's figure (else ``null``)."""

    ders: int
    items: int
    combined_kw: float | None


class ConflictOut(Out):
    """A conflict with its one resolution and its amendment requests, as the caller may see it: ``view``
    ``full`` (the whole record) or ``partial`` (only what the caller may see; ``withheld`` counts the rest)."""

    id: str
    kind: ConflictKind
    stage: str
    tdi_id: str
    dso_id: str
    der_ids: list[str]
    connection_point_id: str | None
    interval_start: datetime
    interval_end: datetime
    intervals: list[list[datetime]]
    instruction_ids: list[str]
    commitment_ids: list[str]
    party_ids: list[str]
    figures: dict[str, float | None]
    series: dict[str, list[float | None]]
    summary: str
    detected_at: datetime
    resolution: dict[str, Any]
    amendment_requests: list[dict[str, Any]]
    view: str
    withheld: WithheldOut | None


class PolicyOut(Out):
    """An interface's resolution policy; ``stored`` False: the platform default applies."""

    tdi_id: str
    stored: bool
    priorities: list[str]
    rules: dict[str, str]
    amendment_window_min: int


class PolicyIn(Strict):
    """A resolution policy: every service category once, highest priority first; rules per conflict kind."""

    priorities: list[str] = Field(min_length=1, max_length=16)
    rules: dict[str, str] = Field(default_factory=dict, max_length=16)
    amendment_window_min: int = 15


class AmendmentIn(Strict):
    """The amended setpoint (kW; positive: injection)."""

    p_kw: float


class AmendmentOut(Out):
    """The answered request and the instruction as the new conflict check leaves it."""

    request: dict[str, Any]
    instruction: InstructionOut | None


class ServiceDispatchIn(Strict):
    """A DSO's dispatch of one DER for a distribution service (``p_kw`` positive: injection)."""

    p_kw: float
    interval_start: AwareDatetime
    interval_end: AwareDatetime
    reason: str = Field(max_length=2000)


@router.get("/conflicts", response_model=list[ConflictOut], summary="List the conflicts the caller may see")
def list_all(
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    tdi_id: Annotated[str | None, Query(max_length=64)] = None,
    der_id: Annotated[str | None, Query(max_length=64)] = None,
    kind: ConflictKind | None = None,
    start: Annotated[AwareDatetime | None, Query()] = None,
    end: Annotated[AwareDatetime | None, Query()] = None,
    status: ConflictStatus | None = None,
) -> list[ConflictOut]:
    """The conflicts the caller takes part in (observers: all), each showing only the DERs, instructions,
    commitments and parties the caller may see; ``der_id`` matches any DER the caller's view shows."""
    pending = None if status is None else status is ConflictStatus.PENDING_AMENDMENT
    filters = ConflictFilter(tdi_id, der_id, kind, start, end, pending)

    def read(ctx: Context) -> list[ConflictOut]:
        return [ConflictOut.model_validate(v) for v in conflict_views.list_conflict_views(ctx, page, filters)]

    result: list[ConflictOut] = commands.query(read, lambda x: x)
    return result


@router.get("/conflicts/{conflict_id}", response_model=ConflictOut, summary="Get a conflict with its resolution")
def get_one(conflict_id: Id, commands: CommandsDep) -> ConflictOut:
    """A conflict the caller may not see answers 404 like a missing one."""

    def read(ctx: Context) -> ConflictOut:
        return ConflictOut.model_validate(conflict_views.get_conflict_view(ctx, conflict_id))

    result: ConflictOut = commands.query(read, lambda x: x)
    return result


class SettlementFlagOut(Out):
    """A commitment's payable (``firm_kw``) and not payable kW in one interval, from a double-counting conflict."""

    conflict_id: str
    commitment_id: str
    der_id: str
    offer_id: str
    holder_kind: str
    holder_id: str
    service: str
    direction: str
    interval_start: datetime
    interval_end: datetime
    committed_kw: float
    firm_kw: float
    not_payable_kw: float
    tdi_id: str
    dso_id: str
    buyer_id: str
    provider_id: str
    recorded_at: datetime
    superseded_at: datetime | None


@router.get(
    "/settlement-flags",
    response_model=list[SettlementFlagOut],
    summary="List the double-counting settlement flags the caller may read",
)
def list_settlement_flags(
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    interval_start: Annotated[AwareDatetime | None, Query()] = None,
    interval_end: Annotated[AwareDatetime | None, Query()] = None,
    der_id: Annotated[str | None, Query(max_length=64)] = None,
    offer_id: Annotated[str | None, Query(max_length=64)] = None,
    include_superseded: bool = False,
) -> list[SettlementFlagOut]:
    """Flags in force overlapping ``[interval_start, interval_end)``, by interval start. The TSO: where the
    interface's model shows it the DER; an LDC: its interfaces' distribution-service commitments and what it
    bought; an aggregator: the commitments it provided; a DER owner: those and the ones on its DERs; observers:
    all. Never another provider's commitment."""
    filters = FlagFilter(interval_start, interval_end, der_id, offer_id, include_superseded)

    def read(ctx: Context) -> list[SettlementFlagOut]:
        found = settlement_flags.list_flags(ctx, page, filters)
        return [SettlementFlagOut.model_validate(settlement_flags.flag_json(f)) for f in found]

    result: list[SettlementFlagOut] = commands.query(read, lambda x: x)
    return result


def _policy_out(tdi_id: str, stored: bool, policy: Any) -> PolicyOut:
    return PolicyOut(tdi_id=tdi_id, stored=stored, **service.policy_json(policy))


@router.get(
    "/tdis/{tdi_id}/resolution-policy",
    response_model=PolicyOut,
    summary="Get an interface's conflict resolution policy (its DSO, the TSO, observers)",
)
def get_policy(tdi_id: Id, commands: CommandsDep) -> PolicyOut:
    """The stored policy, or the platform default (``stored`` false)."""

    def read(ctx: Context) -> PolicyOut:
        policy, stored = service.get_policy(ctx, tdi_id)
        return _policy_out(tdi_id, stored, policy)

    result: PolicyOut = commands.query(read, lambda x: x)
    return result


@router.put(
    "/tdis/{tdi_id}/resolution-policy",
    response_model=PolicyOut,
    summary="Declare an interface's conflict resolution policy (its DSO)",
)
def put_policy(tdi_id: Id, body: PolicyIn, commands: CommandsDep) -> JSONResponse:
    """Every service category exactly once; a rule per conflict kind that applies to it; nothing changes on
    error (``conflicts.priority_*``, ``conflicts.rule_not_allowed``)."""

    def use_case(ctx: Context) -> PolicyOut:
        policy = service.set_policy(
            ctx,
            tdi_id,
            priorities=body.priorities,
            rules=body.rules,
            amendment_window_min=body.amendment_window_min,
        )
        return _policy_out(tdi_id, True, policy)

    return commands.run(use_case, lambda out: out, payload=body)


@router.post(
    "/amendment-requests/{request_id}/answer",
    response_model=AmendmentOut,
    summary="Amend an instruction as requested, before the deadline (the lower-priority issuer)",
)
def answer(request_id: Id, body: AmendmentIn, commands: CommandsDep) -> JSONResponse:
    """After the deadline: 409 ``conflicts.amendment_after_deadline``; answered: ``conflicts.amendment_closed``.
    The amended instruction goes through conflict detection again."""

    def use_case(ctx: Context) -> AmendmentOut:
        request, instruction = service.answer_amendment(ctx, request_id, body.p_kw)
        return AmendmentOut(
            request=service.amendment_json(request),
            instruction=render_instruction(instruction) if instruction else None,
        )

    return commands.run(use_case, lambda out: out, payload=body)


@router.post(
    "/ders/{der_id}/distribution-service-dispatches",
    response_model=InstructionOut,
    status_code=201,
    summary="Dispatch a DER at one of the caller's interfaces for a distribution service (DSO)",
)
def dispatch(der_id: Id, body: ServiceDispatchIn, commands: CommandsDep) -> JSONResponse:
    """An instruction of kind ``distribution_service`` to the DER's aggregator or owner, checked for conflicts
    with every instruction the DER already holds (it may come back reduced or cancelled, with the reason)."""

    def use_case(ctx: Context) -> InstructionOut:
        return render_instruction(
            instructions.dispatch_distribution_service(
                ctx,
                der_id,
                p_kw=body.p_kw,
                interval_start=body.interval_start,
                interval_end=body.interval_end,
                reason=body.reason,
            )
        )

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)
