"""``gridbridge db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from gridbridge.cli.bootstrap import Platform
from gridbridge.cli.config import Settings
from gridbridge.cli.output import console
from gridbridge.store import schema

app = typer.Typer(help="Database schema: migrate up or down, show the current revision.", no_args_is_help=True)
UrlOption = Annotated[
    str | None, typer.Option("--url", help="Database URL (default: GRIDBRIDGE_DATABASE_URL or ./gridbridge.db)")
]


def _platform(url: str | None) -> Platform:
    settings = Settings(database_url=url) if url else Settings()
    return Platform(settings)


@app.command()
def upgrade(url: UrlOption = None, revision: Annotated[str, typer.Option(help="Target revision")] = "heads") -> None:
    """Migrate the database up to the newest schema (or REVISION)."""
    platform = _platform(url)
    schema.upgrade(platform.engine, revision)
    console.print(f"database at revision [bold]{schema.current_revision(platform.engine)}[/]")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' to remove every table")],
    url: UrlOption = None,
) -> None:
    """Migrate the database down to REVISION."""
    platform = _platform(url)
    schema.downgrade(platform.engine, revision)
    console.print(f"database at revision [bold]{schema.current_revision(platform.engine)}[/]")


@app.command()
def current(url: UrlOption = None) -> None:
    """Show the database's revision and the newest one this version ships."""
    platform = _platform(url)
    console.print(f"database: {schema.current_revision(platform.engine)}  newest: {schema.head_revision()}")
