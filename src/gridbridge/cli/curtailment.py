"""``gridbridge curtailment`` and ``gridbridge open-access``: transparent curtailment and the open-access report,
run as the platform administrator on behalf of the DSO (on the configured database).

* ``curtailment procedure show --tdi NAME``: the procedure in force and every version;
* ``curtailment procedure publish --tdi NAME --rule RULE [--param order=highest_first] [--dso-aggregated-pct P]
  [--effective-from TIME]``: a new version (never retroactive);
* ``curtailment request --tdi NAME --kw X --start TIME --end TIME [--point ID ...] [--feeder F]``: apply the
  procedure in force and print every share;
* ``curtailment list [--tdi NAME]``: the stored events;
* ``open-access report --dso NAME --from TIME --to TIME``: DSO-affiliated against third-party DERs.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from gridbridge.cli.lookup import participant_id, ready_platform, tdi_id
from gridbridge.cli.output import console, reported_errors
from gridbridge.domain.errors import ValidationFailed
from gridbridge.services import curtailment, open_access
from gridbridge.services.context import Context
from gridbridge.services.curtailment_ports import CurtailmentEvent, PublishedProcedure
from gridbridge.services.ports import Page

app = typer.Typer(help="Transparent curtailment: published procedures and curtailment requests.", no_args_is_help=True)
procedure_app = typer.Typer(help="A T-D interface's published curtailment procedure.", no_args_is_help=True)
app.add_typer(procedure_app, name="procedure")
open_access_app = typer.Typer(help="The open-access report (white paper section 4.2).", no_args_is_help=True)

TdiOption = Annotated[str, typer.Option("--tdi", help="T-D interface name")]


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or an offset); ``validation.invalid`` naming ``option`` otherwise."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(f"--{option} {text!r} is not an ISO 8601 time", field=option) from exc
    if value.tzinfo is None:
        raise ValidationFailed(f"--{option} {text!r} has no time zone; add Z (UTC) or an offset", field=option)
    return value


def _parameters(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValidationFailed(f"--param {pair!r} must be NAME=VALUE", field="param")
        found[name.strip()] = value.strip()
    return found


def _procedure_table(versions: list[PublishedProcedure], in_force: PublishedProcedure | None) -> Table:
    table = Table(title="curtailment procedure versions")
    for column in ("version", "rule", "split", "effective from", "published", "in force", "note"):
        table.add_column(column)
    for p in versions:
        split = "ranked together" if p.dso_aggregated_pct is None else f"DSO-aggregated {p.dso_aggregated_pct:g} %"
        table.add_row(
            str(p.version),
            p.procedure.describe(),
            split,
            p.effective_from.isoformat(),
            p.published_at.isoformat(),
            "yes" if in_force is not None and in_force.id == p.id else "",
            p.note,
        )
    return table


@procedure_app.command("show")
def show_procedure(tdi: TdiOption) -> None:
    """Show the procedure in force at an interface now, and every published version."""
    with reported_errors():
        platform = ready_platform()
        tdi_ref = tdi_id(platform, tdi)
        with platform.context() as ctx:
            versions = curtailment.list_procedures(ctx, tdi_ref)
            in_force = curtailment.in_force_at(versions, ctx.clock.now())
        console.print(_procedure_table(versions, in_force))
        console.print(f"in force now: {in_force.describe() if in_force else 'none published'}")


@procedure_app.command("publish")
def publish_procedure(
    tdi: TdiOption,
    rule: Annotated[str, typer.Option(help="pro_rata_export, pro_rata_capacity, offer_price or connection_order")],
    param: Annotated[list[str] | None, typer.Option(help="A rule parameter NAME=VALUE (repeatable)")] = None,
    dso_aggregated_pct: Annotated[
        float | None,
        typer.Option(help="Percent of a reduction taken from DSO-aggregated DERs (default: all ranked together)"),
    ] = None,
    effective_from: Annotated[str | None, typer.Option(help="ISO time with zone (default now; never past)")] = None,
    note: Annotated[str, typer.Option(help="Free text published with the version")] = "",
) -> None:
    """Publish the next version of an interface's curtailment procedure on behalf of its DSO."""
    with reported_errors():
        platform = ready_platform()
        tdi_ref = tdi_id(platform, tdi)
        when = parse_time(effective_from, "effective-from") if effective_from else None
        parameters = _parameters(param or [])
        with platform.context() as ctx:
            published = curtailment.publish_procedure(
                ctx,
                tdi_ref,
                rule,
                parameters,
                dso_aggregated_pct=dso_aggregated_pct,
                effective_from=when,
                note=note,
            )
        console.print(
            f"published {published.describe()} at {tdi}, in force from {published.effective_from.isoformat()}"
        )


def _event_table(event: CurtailmentEvent, names: dict[str, str]) -> Table:
    table = Table(title=f"curtailment {event.id}: {event.required_kw:g} kW under {event.rule}")
    for column in ("DER", "party", "group", "export kW", "capacity kW", "offer CAD/MWh", "connected", "share kW"):
        table.add_column(column, justify="right" if "kW" in column or "CAD" in column else "left")
    for s in event.shares:
        table.add_row(
            names.get(s.der_id, s.der_id),
            names.get(s.party_id, s.party_id),
            s.group.value,
            f"{s.p_export_kw:g}",
            f"{s.capacity_kw:g}",
            "" if s.offer_price_cad_per_mwh is None else str(s.offer_price_cad_per_mwh),
            s.connected_at.isoformat() if s.connected_at else "",
            f"{s.share_kw:.3f}",
        )
    return table


@app.command("request")
def request(
    tdi: TdiOption,
    kw: Annotated[float, typer.Option("--kw", help="Reduction of export required, kW")],
    start: Annotated[str, typer.Option(help="Window start, ISO time with zone on a 5-minute boundary")],
    end: Annotated[str, typer.Option(help="Window end, ISO time with zone on a 5-minute boundary")],
    point: Annotated[list[int] | None, typer.Option(help="Limit to this connection point id (repeatable)")] = None,
    feeder: Annotated[str | None, typer.Option(help="Limit to the connection points on this feeder")] = None,
    reason: Annotated[str, typer.Option(help="Why (sent to every affected party)")] = "",
) -> None:
    """Curtail export at an interface by its published procedure, on behalf of its DSO; prints every share."""
    with reported_errors():
        platform = ready_platform()
        tdi_ref = tdi_id(platform, tdi)
        window = parse_time(start, "start"), parse_time(end, "end")
        with platform.context() as ctx:
            event = curtailment.request_curtailment(
                ctx, tdi_ref, kw, *window, connection_point_ids=point or [], feeder=feeder, reason=reason
            )
            names = _names(ctx, event)
        console.print(_event_table(event, names))
        console.print(
            f"DSO-aggregated {event.dso_aggregated_kw:g} kW, direct {event.direct_kw:g} kW; "
            f"{len(event.notices)} part(y/ies) instructed and notified"
        )


def _names(ctx: Context, event: CurtailmentEvent) -> dict[str, str]:
    """Participant and DER names by id, for the event's table."""
    names = {p.id: p.name for p in ctx.uow.participants.list_all()}
    for share in event.shares:
        der = ctx.uow.ders.get(share.der_id)
        if der is not None:
            names[der.id] = der.name
    return names


@app.command("list")
def list_events(
    tdi: Annotated[str | None, typer.Option("--tdi", help="Only this T-D interface")] = None,
    limit: Annotated[int, typer.Option(help="Most events shown", min=1, max=1000)] = 50,
) -> None:
    """List stored curtailment events, newest window first."""
    with reported_errors():
        platform = ready_platform()
        tdi_ref = tdi_id(platform, tdi) if tdi else None
        with platform.context() as ctx:
            events = curtailment.list_events(ctx, Page(limit=limit), tdi_ref)
            tdi_names = {t.id: t.name for t in ctx.uow.tdis.list_all()}
        table = Table(title="curtailment events")
        for column in ("id", "interface", "window", "required kW", "DSO-aggregated kW", "direct kW", "rule", "DERs"):
            table.add_column(column)
        for e in events:
            table.add_row(
                e.id,
                tdi_names.get(e.tdi_id, e.tdi_id),
                f"{e.window_start.isoformat()} to {e.window_end.isoformat()}",
                f"{e.required_kw:g}",
                f"{e.dso_aggregated_kw:g}",
                f"{e.direct_kw:g}",
                e.rule,
                str(sum(1 for s in e.shares if s.share_kw > 0)),
            )
        console.print(table)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


@open_access_app.command("report")
def report(
    dso: Annotated[str, typer.Option(help="DSO participant name")],
    period_from: Annotated[str, typer.Option("--from", help="Period start, ISO time with zone")],
    period_to: Annotated[str, typer.Option("--to", help="Period end, ISO time with zone")],
) -> None:
    """Dispatch and curtailment shares of a DSO's affiliated and third-party DERs, normalised by capacity."""
    with reported_errors():
        platform = ready_platform()
        dso_ref = participant_id(platform, dso)
        start, end = parse_time(period_from, "from"), parse_time(period_to, "to")
        with platform.context() as ctx:
            rows = open_access.open_access(ctx, dso_ref, start, end)
        table = Table(title=f"open-access report: {dso}, {start.isoformat()} to {end.isoformat()}")
        columns = (
            "group",
            "DERs",
            "capacity kW",
            "dispatched kWh",
            "curtailed kWh",
            "capacity share",
            "dispatch share",
            "curtailment share",
            "dispatch ratio",
            "curtailment ratio",
        )
        for column in columns:
            table.add_column(column, justify="left" if column == "group" else "right", no_wrap=column == "group")
        for r in rows:
            table.add_row(
                "affiliated" if r.dso_affiliated else "third party",
                str(r.n_ders),
                f"{r.capacity_kw:g}",
                f"{r.dispatched_kwh:.3f}",
                f"{r.curtailed_kwh:.3f}",
                _fmt(r.capacity_share),
                _fmt(r.dispatch_share),
                _fmt(r.curtailment_share),
                _fmt(r.dispatch_share_ratio),
                _fmt(r.curtailment_share_ratio),
            )
        console.print(table)
        if not rows:
            console.print("no DERs to report for this DSO")
