"""``gridbridge settlement``: what settlement may pay of commitments that were counted twice (on the configured
database).

* ``settlement flags [--from TIME] [--to TIME] [--der ID] [--offer ID] [--superseded] [--as USER] [--json]``: the
  double-counting flags in force, each commitment's firm (payable) and not payable kW per interval, with the
  conflict that decided it. ``--as USER`` shows what that user's participant may read (as
  ``GET /settlement-flags``); without it the command runs as the platform administrator.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from gridbridge.cli.curtailment import parse_time
from gridbridge.cli.lookup import acting_caller, ready_platform
from gridbridge.cli.output import console, reported_errors
from gridbridge.services import settlement_flags
from gridbridge.services.ports import Page
from gridbridge.services.settlement_ports import FlagFilter

app = typer.Typer(help="Settlement: what may be paid of commitments counted twice.", no_args_is_help=True)


def _time(text: str | None, option: str) -> datetime | None:
    return None if text is None else parse_time(text, option)


@app.command("flags")
def flags(
    start: Annotated[str | None, typer.Option("--from", help="ISO time with zone: intervals overlapping from")] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO time with zone: intervals overlapping until")] = None,
    der: Annotated[str | None, typer.Option(help="DER id")] = None,
    offer: Annotated[str | None, typer.Option(help="Offer id")] = None,
    superseded: Annotated[bool, typer.Option(help="Also flags a later conflict decided again")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
    as_user: Annotated[
        str | None, typer.Option("--as", help="Username to act as (reads what its participant may read)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the flags as JSON")] = False,
) -> None:
    """List the settlement flags of double counting: per DER, interval and commitment (an offer, directly or
    through an aggregation) the kW settlement may pay (firm) and may not pay (counted twice)."""
    with reported_errors():
        platform = ready_platform()
        caller = acting_caller(platform, as_user)
        filters = FlagFilter(_time(start, "from"), _time(end, "to"), der, offer, superseded)
        with platform.context(caller) as ctx:
            listed = settlement_flags.list_flags(ctx, Page(limit=limit), filters)
            found = [settlement_flags.flag_json(f) for f in listed]
        if as_json:
            console.print_json(json.dumps(found))
            return
        table = Table(title=f"{len(found)} settlement flag(s)")
        columns = ("from", "to", "DER", "holder", "service", "committed kW", "firm kW", "not payable kW", "conflict")
        for column in columns:
            table.add_column(column)
        for f in found:
            table.add_row(
                f["interval_start"],
                f["interval_end"],
                f["der_id"],
                f"{f['holder_kind']}:{f['holder_id']}",
                f["service"],
                f"{f['committed_kw']:g}",
                f"{f['firm_kw']:g}",
                f"{f['not_payable_kw']:g}",
                f["conflict_id"],
            )
        console.print(table)
