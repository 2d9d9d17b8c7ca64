"""Finding registry objects by the names an operator types on the command line."""

from __future__ import annotations

from gridbridge.cli.bootstrap import Platform
from gridbridge.domain.errors import NotFound
from gridbridge.domain.permissions import SYSTEM_CALLER, Caller


def ready_platform() -> Platform:
    """The configured deployment, its database migrated to the newest schema."""
    platform = Platform()
    platform.upgrade()
    return platform


def participant_id(platform: Platform, name: str) -> str:
    """The id of the participant called ``name``; ``not_found`` naming the option otherwise."""
    with platform.unit_of_work() as uow:
        found = uow.participants.by_name(name)
    if found is None:
        raise NotFound(f"no participant named {name!r}", field="participant")
    return found.id


def user_id(platform: Platform, username: str) -> str:
    """The id of the user called ``username``; ``not_found`` naming the option otherwise."""
    with platform.unit_of_work() as uow:
        found = uow.users.by_username(username)
    if found is None:
        raise NotFound(f"no user named {username!r}", field="username")
    return found.id


def tdi_id(platform: Platform, name: str) -> str:
    """The id of the T-D interface called ``name``; ``not_found`` naming the option otherwise."""
    with platform.unit_of_work() as uow:
        found = uow.tdis.by_name(name)
    if found is None:
        raise NotFound(f"no T-D interface named {name!r}", field="tdi")
    return found.id


def acting_caller(platform: Platform, username: str | None) -> Caller:
    """The caller a command runs as: the user called ``username`` acting for its participant (with that
    participant's role, so it sees exactly what the API shows the user), or the platform administrator when
    no user is named; ``not_found`` naming the option for an unknown user."""
    if username is None:
        return SYSTEM_CALLER
    with platform.unit_of_work() as uow:
        user = uow.users.by_username(username)
        participant = uow.participants.get(user.participant_id) if user else None
    if user is None or participant is None:
        raise NotFound(f"no user named {username!r}", field="as")
    return Caller(user_id=user.id, participant_id=participant.id, role=participant.role, dso_kind=participant.dso_kind)
