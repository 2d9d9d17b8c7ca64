"""Instructions: listing, acknowledgements (receipt, accept, reject), splits to DERs, TSO operating instructions,
escalation of unanswered ones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, Strict, paging
from gridbridge.domain.market import (
    Instruction,
    InstructionKind,
    InstructionProduct,
    InstructionStatus,
    ResourceKind,
    Response,
    SplitMethod,
    allowed_responses,
)
from gridbridge.domain.offers import Market
from gridbridge.services import instructions as service
from gridbridge.services.context import Context
from gridbridge.services.instructions import ResponseAck, ResponseItem
from gridbridge.services.market_ports import InstructionFilter
from gridbridge.services.ports import Page

router = APIRouter(tags=["instructions"])
InstructionId = Annotated[str, Path(max_length=64)]


class InstructionOut(Out):
    """One instruction."""

    id: str
    kind: InstructionKind
    market: Market | None
    product: InstructionProduct
    interval_start: datetime
    interval_end: datetime
    p_kw: float
    issuer_id: str
    recipient_id: str
    resource_kind: ResourceKind
    resource_id: str
    der_id: str | None
    tdi_id: str | None
    parent_id: str | None
    run_id: str | None
    offer_id: str | None
    status: InstructionStatus
    allowed_responses: list[Response]
    issued_at: datetime
    deadline_at: datetime
    reason: str | None
    received_at: datetime | None
    responded_at: datetime | None
    response_reason: str | None
    escalated_at: datetime | None
    split_method: SplitMethod | None
    split_at: datetime | None
    shortfall_kw: float | None


class InstructionDetailOut(InstructionOut):
    """One instruction with its children."""

    children: list[InstructionOut]


class ResponseIn(Strict):
    """A recipient's answer."""

    response: Response
    reason: str | None = Field(default=None, max_length=4000, description="Required to reject")


class ResponseItemIn(ResponseIn):
    """A recipient's answer to one instruction of a batch."""

    instruction_id: str = Field(min_length=1, max_length=64)


class ResponsesIn(Strict):
    """Answers to many instructions, applied in order."""

    items: list[ResponseItemIn] = Field(min_length=1, max_length=service.MAX_RESPONSES)


class ResponseAckOut(Out):
    """The outcome of one answer of a batch."""

    index: int
    instruction_id: str
    response: Response
    status: str
    instruction_status: InstructionStatus | None
    code: str | None
    field: str | None
    message: str | None


class ResponsesOut(Out):
    """The outcomes of a batch of answers."""

    accepted: int
    rejected: int
    items: list[ResponseAckOut]


class SplitIn(Strict):
    """How to split an instruction."""

    method: SplitMethod = SplitMethod.MERIT_ORDER


class SplitOut(Out):
    """A split: the parent, its children and what they could not take."""

    parent: InstructionOut
    children: list[InstructionOut]
    shortfall_kw: float


class OperatingIn(Strict):
    """A TSO operating instruction: cut load under an interface, outside the market."""

    tdi_id: str = Field(min_length=1, max_length=64)
    p_kw: float = Field(gt=0, allow_inf_nan=False, description="Load to cut under the interface, kW")
    interval_start: AwareDatetime
    interval_end: AwareDatetime
    reason: str = Field(min_length=1, max_length=4000)


class EscalationOut(Out):
    """The instructions just escalated."""

    escalated: list[InstructionOut]


def render_instruction(i: Instruction) -> InstructionOut:
    """An instruction as the API shows it, with the responses its state allows."""
    return InstructionOut(
        id=i.id,
        kind=i.kind,
        market=i.market,
        product=i.product,
        interval_start=i.interval_start,
        interval_end=i.interval_end,
        p_kw=i.p_kw,
        issuer_id=i.issuer_id,
        recipient_id=i.recipient_id,
        resource_kind=i.resource_kind,
        resource_id=i.resource_id,
        der_id=i.der_id,
        tdi_id=i.tdi_id,
        parent_id=i.parent_id,
        run_id=i.run_id,
        offer_id=i.offer_id,
        status=i.status,
        allowed_responses=allowed_responses(i.status),
        issued_at=i.issued_at,
        deadline_at=i.deadline_at,
        reason=i.reason,
        received_at=i.received_at,
        responded_at=i.responded_at,
        response_reason=i.response_reason,
        escalated_at=i.escalated_at,
        split_method=i.split_method,
        split_at=i.split_at,
        shortfall_kw=i.shortfall_kw,
    )


def render_responses(acks: list[ResponseAck]) -> ResponsesOut:
    """Every response of a batch, in order."""
    items = [ResponseAckOut.model_validate(a.summary()) for a in acks]
    accepted = sum(1 for a in acks if a.instruction is not None)
    return ResponsesOut(accepted=accepted, rejected=len(acks) - accepted, items=items)


@router.get("/instructions", response_model=list[InstructionOut], summary="List the instructions the caller may see")
def list_all(
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    status: InstructionStatus | None = None,
    market: Market | None = None,
    interval_start: Annotated[AwareDatetime | None, Query()] = None,
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    parent_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[InstructionOut]:
    """Issued by or to the caller; an LDC's at its interfaces; the TSO's own and the DER-level ones its model
    shows it."""
    filters = InstructionFilter(status, market, interval_start, run_id, parent_id)
    result: list[InstructionOut] = commands.query(
        lambda ctx: [render_instruction(i) for i in service.list_instructions(ctx, page, filters)], lambda x: x
    )
    return result


@router.get("/instructions/{instruction_id}", response_model=InstructionDetailOut, summary="Get an instruction")
def get_one(instruction_id: InstructionId, commands: CommandsDep) -> InstructionDetailOut:
    """One instruction with the children (its split) the caller may see."""

    def read(ctx: Context) -> InstructionDetailOut:
        instruction = service.get_instruction(ctx, instruction_id)
        children = [render_instruction(c) for c in service.children_of(ctx, instruction)]
        return InstructionDetailOut(**render_instruction(instruction).model_dump(), children=children)

    result: InstructionDetailOut = commands.query(read, lambda x: x)
    return result


@router.post(
    "/instructions/responses",
    response_model=ResponsesOut,
    summary="Answer many instructions at once (the recipient)",
)
def respond_many(body: ResponsesIn, commands: CommandsDep) -> JSONResponse:
    """Each response applies on its own, in order; if all are refused: 422 ``instructions.batch_rejected`` with
    every outcome in ``details.items``."""

    def use_case(ctx: Context) -> ResponsesOut:
        items = [ResponseItem(i.instruction_id, i.response, i.reason) for i in body.items]
        return render_responses(service.respond_many(ctx, items))

    return commands.run(use_case, lambda out: out, payload=body)


@router.post(
    "/instructions/{instruction_id}/responses",
    response_model=InstructionOut,
    summary="Answer an instruction: receipt, then accept or reject (the recipient)",
)
def respond(instruction_id: InstructionId, body: ResponseIn, commands: CommandsDep) -> JSONResponse:
    """Before the deadline; a rejection needs a reason."""

    def use_case(ctx: Context) -> InstructionOut:
        return render_instruction(service.respond_to_instruction(ctx, instruction_id, body.response, body.reason))

    return commands.run(use_case, lambda out: out, payload=body)


@router.post(
    "/instructions/{instruction_id}/split",
    response_model=SplitOut,
    status_code=201,
    summary="Split an instruction to the resources behind it (the recipient: DSO or aggregator)",
)
def split(instruction_id: InstructionId, body: SplitIn, commands: CommandsDep) -> JSONResponse:
    """By merit order within the envelopes in force, or pro rata; every child keeps the parent's id."""

    def use_case(ctx: Context) -> SplitOut:
        outcome = service.split_instruction(ctx, instruction_id, body.method)
        return SplitOut(
            parent=render_instruction(outcome.parent),
            children=[render_instruction(c) for c in outcome.children],
            shortfall_kw=outcome.shortfall_kw,
        )

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)


@router.post(
    "/operating-instructions",
    response_model=InstructionOut,
    status_code=201,
    summary="Instruct the DSO to cut load under an interface, outside the market (TSO)",
)
def operating(body: OperatingIn, commands: CommandsDep) -> JSONResponse:
    """The DSO allocates it to resources with ``POST /instructions/{id}/split``."""

    def use_case(ctx: Context) -> InstructionOut:
        return render_instruction(
            service.issue_operating_instruction(
                ctx,
                body.tdi_id,
                p_kw=body.p_kw,
                interval_start=body.interval_start,
                interval_end=body.interval_end,
                reason=body.reason,
            )
        )

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)


@router.post(
    "/instructions/escalations",
    response_model=EscalationOut,
    summary="Escalate the caller's overdue instructions to it (TSO, DSO, aggregator: the instructions it issued)",
)
def escalate(commands: CommandsDep) -> JSONResponse:
    """Open instructions the caller issued that are past their deadline become ``escalated``; the caller (their
    issuer) gets a notification for each."""

    def use_case(ctx: Context) -> EscalationOut:
        return EscalationOut(escalated=[render_instruction(i) for i in service.escalate_overdue(ctx)])

    return commands.run(use_case, lambda out: out)
