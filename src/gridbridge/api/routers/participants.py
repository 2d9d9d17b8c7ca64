"""Participants directory, the caller's own identity, and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from gridbridge.api.deps import CallerDep, CommandsDep
from gridbridge.api.schemas import Out, Strict
from gridbridge.domain.participants import Participant
from gridbridge.domain.roles import DsoKind, Role
from gridbridge.services import participants as service

router = APIRouter(tags=["participants"])


class ParticipantOut(Out):
    id: str
    name: str
    role: Role
    dso_kind: DsoKind | None
    created_at: datetime


class MeOut(Out):
    user_id: str
    participant_id: str
    role: Role
    dso_kind: DsoKind | None


class TokenIn(Strict):
    label: str = "api"


class TokenOut(Out):
    token: str
    label: str


def _out(p: Participant) -> ParticipantOut:
    return ParticipantOut.model_validate(p)


@router.get("/participants", response_model=list[ParticipantOut], summary="List participants")
def list_participants(commands: CommandsDep) -> list[ParticipantOut]:
    """The participant directory (names and roles are visible to every authenticated caller)."""
    result: list[ParticipantOut] = commands.query(
        lambda ctx: ctx.uow.participants.list_all(), lambda ps: [_out(p) for p in ps]
    )
    return result


@router.get("/participants/{participant_id}", response_model=ParticipantOut, summary="Get a participant")
def get_participant(participant_id: Annotated[str, Path(max_length=64)], commands: CommandsDep) -> ParticipantOut:
    """One participant of the directory."""
    result: ParticipantOut = commands.query(lambda ctx: service.get_participant(ctx, participant_id), _out)
    return result


@router.get("/me", response_model=MeOut, summary="Who am I")
def me(caller: CallerDep) -> MeOut:
    """The authenticated user, its participant and role."""
    return MeOut(
        user_id=caller.user_id, participant_id=caller.participant_id, role=caller.role, dso_kind=caller.dso_kind
    )


@router.post("/me/tokens", response_model=TokenOut, status_code=201, summary="Issue myself a new API token")
def create_token(body: TokenIn, commands: CommandsDep) -> JSONResponse:
    """A new token for the calling user. The secret is shown once: a replay with the same Idempotency-Key
    answers with ``token: null``."""
    return commands.run(
        lambda ctx: service.issue_token(ctx, ctx.caller.user_id, body.label),
        lambda secret: TokenOut(token=secret, label=body.label),
        payload=body,
        status_code=201,
        redact=lambda out: {**out, "token": None},
    )
