"""``gridbridge admin``: create participants, users, tokens and T-D interfaces as the platform administrator."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from gridbridge.cli.bootstrap import Platform
from gridbridge.cli.output import console, reported_errors
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.errors import NotFound
from gridbridge.domain.roles import DsoKind, Role
from gridbridge.services import participants, tdis

app = typer.Typer(help="Administration: participants, users, API tokens, T-D interfaces.", no_args_is_help=True)


def _participant_id(platform: Platform, name: str) -> str:
    with platform.unit_of_work() as uow:
        found = uow.participants.by_name(name)
    if found is None:
        raise NotFound(f"no participant named {name!r}", field="participant")
    return found.id


@app.command("participant")
def create_participant(
    name: Annotated[str, typer.Option(help="Organisation name (unique)")],
    role: Annotated[Role, typer.Option(help="Role on the platform")],
    dso_kind: Annotated[DsoKind | None, typer.Option(help="For role dso: ldc, minimal_dso or independent_dso")] = None,
) -> None:
    """Register a participant."""
    with reported_errors():
        platform = Platform()
        platform.upgrade()
        with platform.context() as ctx:
            created = participants.create_participant(ctx, name, role, dso_kind)
        console.print(f"participant [bold]{created.name}[/] ({created.role.value}) id={created.id}")


@app.command("user")
def create_user(
    participant: Annotated[str, typer.Option(help="Name of the participant the user belongs to")],
    username: Annotated[str, typer.Option(help="Unique username")],
) -> None:
    """Add a user to a participant."""
    with reported_errors():
        platform = Platform()
        platform.upgrade()
        participant_id = _participant_id(platform, participant)
        with platform.context() as ctx:
            user = participants.create_user(ctx, participant_id, username)
        console.print(f"user [bold]{user.username}[/] id={user.id}")


@app.command("token")
def create_token(
    username: Annotated[str, typer.Option(help="User the token authenticates")],
    label: Annotated[str, typer.Option(help="What the token is for")] = "api",
) -> None:
    """Issue an API token; the secret is printed once and only its hash is stored."""
    with reported_errors():
        platform = Platform()
        platform.upgrade()
        with platform.unit_of_work() as uow:
            user = uow.users.by_username(username)
        if user is None:
            raise NotFound(f"no user named {username!r}", field="username")
        with platform.context() as ctx:
            secret = participants.issue_token(ctx, user.id, label)
        typer.echo(secret)


@app.command("revoke")
def revoke_tokens(
    username: Annotated[str, typer.Option(help="User whose tokens are revoked")],
    label: Annotated[str | None, typer.Option(help="Only tokens with this label (default: all)")] = None,
) -> None:
    """Revoke a user's API tokens; requests with them answer 401 from then on."""
    with reported_errors():
        platform = Platform()
        platform.upgrade()
        with platform.unit_of_work() as uow:
            user = uow.users.by_username(username)
        if user is None:
            raise NotFound(f"no user named {username!r}", field="username")
        with platform.context() as ctx:
            count = participants.revoke_tokens(ctx, user.id, label)
        console.print(f"revoked {count} token(s) of [bold]{username}[/]")


@app.command("tdi")
def create_tdi(
    name: Annotated[str, typer.Option(help="T-D interface name (unique)")],
    dso: Annotated[str, typer.Option(help="Name of the owning DSO participant")],
    model: Annotated[ModelName, typer.Option(help="Coordination model")],
    import_limit_kw: Annotated[float, typer.Option(help="Interface import limit, kW")],
    export_limit_kw: Annotated[float, typer.Option(help="Interface export (reverse-flow) limit, kW")],
    price_node: Annotated[str | None, typer.Option(help="Transmission price node (default: the name)")] = None,
    direct_threshold_kw: Annotated[float | None, typer.Option(help="Direct-participation threshold")] = None,
    effective_from: Annotated[datetime | None, typer.Option(help="When the model takes effect (UTC)")] = None,
) -> None:
    """Register a T-D interface owned by a DSO."""
    with reported_errors():
        platform = Platform()
        platform.upgrade()
        dso_id = _participant_id(platform, dso)
        when = (
            effective_from.replace(tzinfo=effective_from.tzinfo or platform.clock.now().tzinfo)
            if effective_from
            else None
        )
        with platform.context() as ctx:
            tdi = tdis.create_tdi(
                ctx,
                name=name,
                price_node=price_node or name,
                dso_id=dso_id,
                model=model,
                effective_from=when,
                direct_threshold_kw=direct_threshold_kw,
                import_limit_kw=import_limit_kw,
                export_limit_kw=export_limit_kw,
            )
        console.print(f"T-D interface [bold]{tdi.name}[/] id={tdi.id} model={model.value}")
