"""``gridbridge conflicts``: stored conflicts with their resolutions, amendment requests and per-interface
resolution policies (on the configured database).

* ``conflicts list [--tdi NAME] [--der ID] [--kind KIND] [--from TIME] [--to TIME] [--pending] [--as USER]``;
* ``conflicts show ID [--as USER]``: one conflict, its resolution (rule, outcome and reason per instruction or
  commitment) and amendment requests;
* ``conflicts amendment answer REQUEST_ID --p-kw X --as USER``: the addressee amends its instruction;
* ``conflicts policy show --tdi NAME``; ``conflicts policy set --tdi NAME --priority CAT ... [--rule KIND=RULE]
  [--amendment-window-min N]``: on behalf of the interface's DSO.

``--as USER`` runs a command as that user's participant, which sees a conflict exactly as the API shows it to
that participant (``services.conflict_views``); without it the command runs as the platform administrator, who
sees everything. ``--der`` matches any DER of a conflict that the caller's view shows.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from gridbridge.cli.curtailment import parse_time
from gridbridge.cli.lookup import acting_caller, ready_platform, tdi_id
from gridbridge.cli.output import console, reported_errors
from gridbridge.domain.conflicts import ConflictKind
from gridbridge.domain.errors import ValidationFailed
from gridbridge.services import conflict_views, conflicts
from gridbridge.services.conflict_ports import ConflictFilter
from gridbridge.services.ports import Page

app = typer.Typer(help="Conflicts between instructions and how they were resolved.", no_args_is_help=True)
policy_app = typer.Typer(help="A T-D interface's conflict resolution policy.", no_args_is_help=True)
amendment_app = typer.Typer(help="Amendment requests to lower-priority issuers.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(amendment_app, name="amendment")

TdiOption = Annotated[str, typer.Option("--tdi", help="T-D interface name")]
AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Username to act as (sees what that user's participant may see); default: administrator"),
]


def _time(text: str | None, option: str) -> datetime | None:
    return None if text is None else parse_time(text, option)


@app.command("list")
def list_conflicts(
    tdi: Annotated[str | None, typer.Option("--tdi", help="T-D interface name")] = None,
    der: Annotated[str | None, typer.Option(help="DER id (any DER of a conflict)")] = None,
    kind: Annotated[ConflictKind | None, typer.Option(help="Conflict kind")] = None,
    start: Annotated[str | None, typer.Option("--from", help="ISO time with zone: overlapping from")] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO time with zone: overlapping until")] = None,
    pending: Annotated[bool, typer.Option(help="Only conflicts waiting on an amendment request")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    as_user: AsOption = None,
) -> None:
    """List the conflicts the caller may see, oldest interval first, with the rule that resolved each; a partial
    view lists only the DERs the caller may see and counts the others as withheld."""
    with reported_errors():
        platform = ready_platform()
        caller = acting_caller(platform, as_user)
        tdi_ref = tdi_id(platform, tdi) if tdi else None
        filters = ConflictFilter(tdi_ref, der, kind, _time(start, "from"), _time(end, "to"), True if pending else None)
        with platform.context(caller) as ctx:
            found = conflict_views.list_conflict_views(ctx, Page(limit=limit), filters)
        table = Table(title=f"{len(found)} conflict(s)")
        for column in ("id", "kind", "stage", "from", "to", "DERs", "rule", "view", "summary"):
            table.add_column(column)
        for view in found:
            withheld = view["withheld"]
            ders = ", ".join(view["der_ids"])
            if withheld and withheld["ders"]:
                ders = f"{ders} (+{withheld['ders']} withheld)" if ders else f"{withheld['ders']} withheld"
            table.add_row(
                view["id"],
                view["kind"],
                view["stage"],
                view["interval_start"],
                view["interval_end"],
                ders,
                view["resolution"]["rule"],
                view["view"],
                view["resolution"]["summary"],
            )
        console.print(table)


@app.command("show")
def show(conflict_id: Annotated[str, typer.Argument(help="Conflict id")], as_user: AsOption = None) -> None:
    """Print one conflict with its resolution and amendment requests as JSON, as the caller may see it."""
    with reported_errors():
        platform = ready_platform()
        caller = acting_caller(platform, as_user)
        with platform.context(caller) as ctx:
            view = conflict_views.get_conflict_view(ctx, conflict_id)
        console.print_json(json.dumps(view))


@amendment_app.command("answer")
def answer_amendment(
    request_id: Annotated[str, typer.Argument(help="Amendment request id")],
    p_kw: Annotated[float, typer.Option("--p-kw", help="The amended setpoint, kW (positive: injection)")],
    as_user: Annotated[str, typer.Option("--as", help="Username of the addressee (the lower-priority issuer)")],
) -> None:
    """Amend the instruction an amendment request names, before its deadline, as the request's addressee; the
    amended instruction is checked for conflicts again. After the deadline or once answered it is refused
    (conflicts.amendment_after_deadline, conflicts.amendment_closed) and nothing changes."""
    with reported_errors():
        platform = ready_platform()
        caller = acting_caller(platform, as_user)
        with platform.context(caller) as ctx:
            request, instruction = conflicts.answer_amendment(ctx, request_id, p_kw)
            answer = {
                "request": conflicts.amendment_json(request),
                "instruction": None
                if instruction is None
                else {"id": instruction.id, "p_kw": instruction.p_kw, "status": instruction.status.value},
            }
        console.print_json(json.dumps(answer))


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
