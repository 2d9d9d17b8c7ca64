"""``gridbridge admin``: create participants, users, tokens and T-D interfaces as the platform administrator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from gridbridge.cli.lookup import participant_id, ready_platform, user_id
from gridbridge.cli.output import console, reported_errors
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.roles import DsoKind, Role
from gridbridge.services import participants, tdis

app = typer.Typer(help="Administration: participants, users, API tokens, T-D interfaces.", no_args_is_help=True)


@app.command("participant")
def create_participant(
    name: Annotated[str, typer.Option(help="Organisation name (unique)")],
    role: Annotated[Role, typer.Option(help="Role on the platform")],
    dso_kind: Annotated[DsoKind | None, typer.Option(help="For role dso: ldc, minimal_dso or independent_dso")] = None,
) -> None:
    """Register a participant."""
    with reported_errors():
        platform = ready_platform()
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
        platform = ready_platform()
        owner = participant_id(platform, participant)
        with platform.context() as ctx:
            user = participants.create_user(ctx, owner, username)
        console.print(f"user [bold]{user.username}[/] id={user.id}")


@app.command("token")
def create_token(
    username: Annotated[str, typer.Option(help="User the token authenticates")],
    label: Annotated[str, typer.Option(help="What the token is for")] = "api",
) -> None:
    """Issue an API token; the secret is printed once and only its hash is stored."""
    with reported_errors():
        platform = ready_platform()
        user = user_id(platform, username)
        with platform.context() as ctx:
            secret = participants.issue_token(ctx, user, label)
        typer.echo(secret)


@app.command("revoke")
def revoke_tokens(
    username: Annotated[str, typer.Option(help="User whose tokens are revoked")],
    label: Annotated[str | None, typer.Option(help="Only tokens with this label (default: all)")] = None,
) -> None:
    """Revoke a user's API tokens; requests with them answer 401 from then on."""
    with reported_errors():
        platform = ready_platform()
        user = user_id(platform, username)
        with platform.context() as ctx:
            count = participants.revoke_tokens(ctx, user, label)
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
        platform = ready_platform()
        dso_id = participant_id(platform, dso)
        # the command line gives naive times; they are read as UTC, as the option's help says
        when = (
            effective_from.replace(tzinfo=UTC) if effective_from and effective_from.tzinfo is None else effective_from
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
