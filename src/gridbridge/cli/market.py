"""``gridbridge market``: platform jobs of the coordination cycle, run as the platform administrator."""

from __future__ import annotations

import typer

from gridbridge.cli.lookup import ready_platform
from gridbridge.cli.output import console, reported_errors
from gridbridge.services import instructions

app = typer.Typer(help="The coordination cycle's platform jobs.", no_args_is_help=True)


@app.command("escalate")
def escalate() -> None:
    """Escalate every instruction still unanswered after its deadline to its issuer (run it every minute)."""
    with reported_errors():
        platform = ready_platform()
        with platform.context() as ctx:
            escalated = instructions.escalate_overdue(ctx)
        for instruction in escalated:
            console.print(
                f"escalated {instruction.kind.value} {instruction.id} to {instruction.issuer_id}: "
                f"deadline {instruction.deadline_at.isoformat()}"
            )
        console.print(f"{len(escalated)} instruction(s) escalated")
