"""Finding registry objects by the names an operator types on the command line."""

from __future__ import annotations

from gridbridge.cli.bootstrap import Platform
from gridbridge.domain.errors import NotFound


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
