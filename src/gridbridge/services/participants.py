"""Participants, users and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from gridbridge.domain.errors import AuthenticationFailed, ConflictError, NotFound, register_code
from gridbridge.domain.participants import ApiToken, Participant, User
from gridbridge.domain.permissions import Action, Caller, require_action
from gridbridge.domain.roles import DsoKind, Role
from gridbridge.domain.validation import require_name
from gridbridge.services.context import Context
from gridbridge.services.ports import UnitOfWork

NAME_TAKEN = register_code("participant.name_taken", 409, "A participant with that name exists")
USERNAME_TAKEN = register_code("user.username_taken", 409, "A user with that username exists")
TOKEN_PREFIX = "gb_"


def hash_token(secret: str) -> str:
    """SHA-256 of a token secret (secrets are 256-bit random, so no salt is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_participant(ctx: Context, name: str, role: Role, dso_kind: DsoKind | None = None) -> Participant:
    """Register a participant; names are unique."""
    participant = Participant.new(ctx.new_id(), name, role, dso_kind, ctx.clock.now())
    if ctx.uow.participants.by_name(participant.name) is not None:
        raise ConflictError(f"participant {participant.name!r} exists", field="name", code=NAME_TAKEN)
    ctx.uow.participants.add(participant)
    ctx.audit("participant.create", "participant", participant.id, None, participant.snapshot())
    return participant


def get_participant(ctx: Context, participant_id: str) -> Participant:
    """Return a participant (the directory of participants is visible to every authenticated caller)."""
    participant = ctx.uow.participants.get(participant_id)
    if participant is None:
        raise NotFound(f"no participant {participant_id}", field="participant_id")
    return participant


def create_user(ctx: Context, participant_id: str, username: str) -> User:
    """Add a user to a participant; usernames are unique."""
    get_participant(ctx, participant_id)
    username = require_name(username, "username")
    if ctx.uow.users.by_username(username) is not None:
        raise ConflictError(f"user {username!r} exists", field="username", code=USERNAME_TAKEN)
    user = User(id=ctx.new_id(), participant_id=participant_id, username=username, created_at=ctx.clock.now())
    ctx.uow.users.add(user)
    ctx.audit("user.create", "user", user.id, None, user.snapshot())
    return user


def issue_token(ctx: Context, user_id: str, label: str = "api") -> str:
    """Create an API token for a user and return its secret (shown once; only its hash is stored).

    The system caller may issue tokens for anyone; any other caller only for itself.
    """
    require_action(ctx.caller, Action.TOKEN_CREATE)
    user = ctx.uow.users.get(user_id)
    if user is None or (ctx.caller.user_id not in ("system", user_id)):
        raise NotFound(f"no user {user_id}", field="user_id")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        id=ctx.new_id(),
        user_id=user.id,
        token_hash=hash_token(secret),
        label=require_name(label, "label"),
        created_at=ctx.clock.now(),
    )
    ctx.uow.tokens.add(token)
    ctx.audit("token.create", "api_token", token.id, None, token.snapshot())
    return secret


def revoke_tokens(ctx: Context, user_id: str, label: str | None = None) -> int:
    """Revoke the user's live tokens (only those with ``label`` when given); return how many were revoked.

    The system caller may revoke anyone's tokens; any other caller only its own.
    """
    require_action(ctx.caller, Action.TOKEN_CREATE)
    user = ctx.uow.users.get(user_id)
    if user is None or (ctx.caller.user_id not in ("system", user_id)):
        raise NotFound(f"no user {user_id}", field="user_id")
    now = ctx.clock.now()
    revoked = 0
    for token in ctx.uow.tokens.for_user(user.id):
        if token.revoked_at is None and (label is None or token.label == label):
            before = token.snapshot()
            token.revoked_at = now
            ctx.audit("token.revoke", "api_token", token.id, before, token.snapshot())
            revoked += 1
    return revoked


def authenticate(uow: UnitOfWork, secret: str | None) -> Caller:
    """Return the caller a token secret belongs to, or raise ``auth.unauthenticated``."""
    if not secret:
        raise AuthenticationFailed("send 'Authorization: Bearer <token>'", field="authorization")
    token = uow.tokens.by_hash(hash_token(secret))
    if token is None or token.revoked_at is not None:
        raise AuthenticationFailed("unknown or revoked token", field="authorization")
    user = uow.users.get(token.user_id)
    participant = uow.participants.get(user.participant_id) if user else None
    if user is None or participant is None:
        raise AuthenticationFailed("token's user no longer exists", field="authorization")
    return Caller(user_id=user.id, participant_id=participant.id, role=participant.role, dso_kind=participant.dso_kind)
