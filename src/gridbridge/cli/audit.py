"""``gridbridge audit``: check the hash-chained audit trail."""

from __future__ import annotations

import typer

from gridbridge.cli.bootstrap import Platform
from gridbridge.cli.output import console, errors
from gridbridge.domain.audit import verify_chain

app = typer.Typer(help="The append-only audit trail.", no_args_is_help=True)


@app.command()
def verify() -> None:
    """Walk the audit chain; exit 1 naming the first broken record if any link or hash does not hold."""
    platform = Platform()
    with platform.unit_of_work() as uow:
        check = verify_chain(uow.audit.entries())
    if check.ok:
        console.print(f"audit chain intact: {check.records_checked} records")
        return
    errors.print(f"[bold red]audit chain broken[/] at record {check.first_broken_seq}: {check.problem}")
    raise typer.Exit(1)
