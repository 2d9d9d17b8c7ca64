"""``gridbridge conflicts``: stored conflicts with their resolutions, and per-interface resolution policies, run
as the platform administrator (on the configured database).

* ``conflicts list [--tdi NAME] [--der ID] [--kind KIND] [--from TIME] [--to TIME] [--pending]``;
* ``conflicts show ID``: one conflict, its resolution (rule, outcome and reason per instruction) and amendments;
* ``conflicts policy show --tdi NAME``; ``conflicts policy set --tdi NAME --priority CAT ... [--rule KIND=RULE]
  [--amendment-window-min N]``: on behalf of the interface's DSO.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from gridbridge.cli.lookup import ready_platform, tdi_id
from gridbridge.cli.output import console, reported_errors
from gridbridge.domain.conflicts import ConflictKind
from gridbridge.domain.errors import ValidationFailed
from gridbridge.services import conflicts
from gridbridge.services.conflict_ports import ConflictFilter
from gridbridge.services.ports import Page

app = typer.Typer(help="Conflicts between instructions and how they were resolved.", no_args_is_help=True)
policy_app = typer.Typer(help="A T-D interface's conflict resolution policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

TdiOption = Annotated[str, typer.Option("--tdi", help="T-D interface name")]


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(f"--{option} {text!r} is not an ISO 8601 time", field=option) from exc
    if value.tzinfo is None:
        raise ValidationFailed(f"--{option} {text!r} has no time zone; add Z (UTC) or an offset", field=option)
    return value


@app.command("list")
def list_conflicts(
    tdi: Annotated[str | None, typer.Option("--tdi", help="T-D interface name")] = None,
    der: Annotated[str | None, typer.Option(help="DER id")] = None,
    kind: Annotated[ConflictKind | None, typer.Option(help="Conflict kind")] = None,
    start: Annotated[str | None, typer.Option("--from", help="ISO time with zone: overlapping from")] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO time with zone: overlapping until")] = None,
    pending: Annotated[bool, typer.Option(help="Only conflicts waiting on an amendment request")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
) -> None:
    """List stored conflicts, oldest interval first, with the rule that resolved each."""
    with reported_errors():
        platform = ready_platform()
        tdi_ref = tdi_id(platform, tdi) if tdi else None
        filters = ConflictFilter(tdi_ref, der, kind, _time(start, "from"), _time(end, "to"), True if pending else None)
        with platform.context() as ctx:
            found = conflicts.list_conflicts(ctx, Page(limit=limit), filters)
        table = Table(title=f"{len(found)} conflict(s)")
        for column in ("id", "kind", "stage", "from", "to", "DERs", "rule", "summary"):
            table.add_column(column)
        for s in found:
            c = s.conflict
            table.add_row(
                s.id,
                c.kind.value,
                s.stage,
                min(a for a, _ in c.intervals).isoformat(),
                max(b for _, b in c.intervals).isoformat(),
                ", ".join(c.der_ids),
                s.resolution.rule.value,
                s.resolution.summary,
            )
        console.print(table)


@app.command("show")
def show(conflict_id: Annotated[str, typer.Argument(help="Conflict id")]) -> None:
    """Print one conflict with its resolution and amendment requests as JSON."""
    with reported_errors():
        platform = ready_platform()
        with platform.context() as ctx:
            stored, amendments = conflicts.get_conflict(ctx, conflict_id)
            console.print_json(json.dumps(conflicts.conflict_json(stored, amendments)))


@policy_app.command("show")
def show_policy(tdi: TdiOption) -> None:
    """Print an interface's resolution policy (the platform default when none is stored)."""
    with reported_errors():
        platform = ready_platform()
        tdi_ref = tdi_id(platform, tdi)
        with platform.context() as ctx:
            policy, stored = conflicts.get_policy(ctx, tdi_ref)
        console.print_json(json.dumps({"tdi": tdi, "stored": stored, **conflicts.policy_json(policy)}))


@policy_app.command("set")
def set_policy(
    tdi: TdiOption,
    priority: Annotated[
        list[str], typer.Option(help="A service category, highest first (repeat for each of the four)")
    ],
    rule: Annotated[
        list[str] | None, typer.Option(help="KIND=RULE, e.g. hidden_coupling_energy=amendment_request")
    ] = None,
    amendment_window_min: Annotated[int, typer.Option(help="Minutes an issuer has to amend")] = 15,
) -> None:
    """Declare an interface's resolution policy on behalf of its DSO; a bad list changes nothing."""
    with reported_errors():
        platform = ready_platform()
        tdi_ref = tdi_id(platform, tdi)
        rules: dict[str, str] = {}
        for pair in rule or []:
            name, sep, value = pair.partition("=")
            if not sep:
                raise ValidationFailed(f"--rule {pair!r} must be KIND=RULE", field="rule")
            rules[name.strip()] = value.strip()
        with platform.context() as ctx:
            policy = conflicts.set_policy(
                ctx, tdi_ref, priorities=priority, rules=rules, amendment_window_min=amendment_window_min
            )
        console.print_json(json.dumps({"tdi": tdi, "stored": True, **conflicts.policy_json(policy)}))
