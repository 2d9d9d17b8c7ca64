"""``gridbridge envelopes``: compute dynamic operating envelopes and hosting capacity without a database.

``gridbridge envelopes compute --network simbench:CODE ... --out FILE.csv`` loads a SimBench grid (or a
pandapower JSON file), forecasts from its SimBench profiles (or its stored values with ``--profiles none``),
computes and AC-verifies the envelopes, and writes one CSV row per (connection point, interval); with
``--plots DIR`` also the envelope heatmap and the voltage profile at the limits (PNG and HTML).
``gridbridge envelopes hosting-capacity`` writes each point's worst-case hosting capacity.
The CSV columns are documented in docs/envelopes.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridbridge.adapters.network_io import load_pandapower_source
from gridbridge.adapters.powerflow.forecast import SimbenchProfileForecast, StoredValuesForecast
from gridbridge.adapters.powerflow.network import AcBackend, PandapowerEnvelopeNetwork
from gridbridge.cli.output import console, reported_errors
from gridbridge.domain.clock import SystemClock
from gridbridge.domain.envelopes import (
    INTERVAL_INVALID,
    AllocationPolicy,
    Direction,
    NetworkLimits,
    validate_interval_minutes,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.services.envelopes import (
    EnvelopeRequest,
    EnvelopeRun,
    HostingCapacityRun,
    compute_envelopes,
    compute_hosting_capacity,
)
from gridbridge.services.envelopes_ports import ForecastSource

app = typer.Typer(
    help="Dynamic operating envelopes: compute, verify with AC power flow, publish.", no_args_is_help=True
)

#: Default start: the first interval of SimBench's profile year.
DEFAULT_START = "2016-01-01T00:00:00Z"
CSV_COLUMNS = (
    "bus",
    "interval_start",
    "interval_end",
    "p_export_max_kw",
    "p_import_max_kw",
    "binding",
    "binding_export",
    "binding_import",
    "feeder",
    "export_status",
    "import_status",
)


def parse_start(text: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or an offset), as UTC; a time without zone is refused."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(
            f"--start {text!r} is not an ISO 8601 time", field="start", code=INTERVAL_INVALID
        ) from exc
    if value.tzinfo is None:
        raise ValidationFailed(
            f"--start {text!r} has no time zone; add Z (UTC) or an offset such as -05:00",
            field="start",
            code=INTERVAL_INVALID,
        )
    return value.astimezone(UTC)


def _floor_kw(values: np.ndarray) -> np.ndarray:
    """Limits rounded down to the watt, so a published value never exceeds the computed one."""
    return np.floor(np.asarray(values, dtype=np.float64) * 1000.0 + 1e-9) / 1000.0


def envelope_table(run: EnvelopeRun) -> pd.DataFrame:
    """The CSV table: one row per (interval start, connection point), columns ``CSV_COLUMNS``."""
    t, m = run.intervals, len(run.point_names)
    starts = [s.isoformat().replace("+00:00", "Z") for s in run.interval_starts]
    ends = [run.interval_end(k).isoformat().replace("+00:00", "Z") for k in range(t)]
    exp_lab = run.binding_labels(Direction.EXPORT).reshape(-1)
    imp_lab = run.binding_labels(Direction.IMPORT).reshape(-1)
    binding = pd.Series(exp_lab, dtype=object)
    binding = "export=" + binding.astype(str) + ";import=" + pd.Series(imp_lab, dtype=object).astype(str)
    feeders = np.array([f or "" for f in run.point_feeders], dtype=object)
    return pd.DataFrame(
        {
            "bus": np.tile(np.array(run.point_names, dtype=object), t),
            "interval_start": np.repeat(np.array(starts, dtype=object), m),
            "interval_end": np.repeat(np.array(ends, dtype=object), m),
            "p_export_max_kw": _floor_kw(run.export.p_max_kw.reshape(-1)),
            "p_import_max_kw": _floor_kw(run.import_.p_max_kw.reshape(-1)),
            "binding": binding.to_numpy(),
            "binding_export": exp_lab,
            "binding_import": imp_lab,
            "feeder": np.tile(feeders, t),
            "export_status": np.repeat(np.array(run.export.status, dtype=object), m),
            "import_status": np.repeat(np.array(run.import_.status, dtype=object), m),
        },
        columns=list(CSV_COLUMNS),
    )


def _network(source: str, backend: AcBackend) -> PandapowerEnvelopeNetwork:
    net = load_pandapower_source(source)
    return PandapowerEnvelopeNetwork(net, name=source, ac_backend=backend)


def _forecast(network: PandapowerEnvelopeNetwork, profiles: str) -> ForecastSource:
    if profiles == "simbench":
        return SimbenchProfileForecast(network)
    if profiles == "none":
        return StoredValuesForecast(network)
    raise ValidationFailed(f"--profiles must be simbench or none, not {profiles!r}", field="profiles")


def _intervals(intervals: int | None, interval_minutes: int, profiles: str) -> int:
    validate_interval_minutes(interval_minutes)
    if profiles == "none":
        if intervals not in (None, 1):
            raise ValidationFailed(
                "--profiles none uses the network's stored values as a single-interval forecast; "
                "drop --intervals or set it to 1",
                field="intervals",
                code=INTERVAL_INVALID,
            )
        return 1
    return intervals if intervals is not None else 24 * 60 // interval_minutes


def _print_summary(run: EnvelopeRun, out: Path) -> None:
    summary = run.summary()
    table = Table(title=f"Operating envelopes, {run.network_name}", show_lines=False)
    table.add_column("")
    table.add_column("export", justify="right")
    table.add_column("import", justify="right")
    for label, key, fmt in (
        ("limit min (kW)", "kw_min", "{:.3f}"),
        ("limit mean (kW)", "kw_mean", "{:.3f}"),
        ("limit max (kW)", "kw_max", "{:.3f}"),
        ("intervals verified", "verified", "{}"),
        ("intervals infeasible (base case)", "infeasible", "{}"),
        ("intervals beyond tolerance", "failed", "{}"),
        ("max voltage excursion (pu)", "max_v_violation_pu", "{:.5f}"),
        ("max loading overshoot (%)", "max_loading_overshoot_pct", "{:.3f}"),
        ("AC rounds (max)", "rounds_max", "{}"),
    ):
        values = [summary.get(f"{d}_{key}") for d in ("export", "import")]
        table.add_row(label, *("-" if v is None else fmt.format(v) for v in values))
    console.print(table)
    for key in ("export", "import", "base"):
        bus, branch = summary.get(f"{key}_worst_bus"), summary.get(f"{key}_worst_branch")
        if bus or branch:
            console.print(f"{key}: largest voltage excursion at {bus or '-'}, largest overload on {branch or '-'}")
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in run.log.timings_s.items())
    console.print(
        f"{summary['points']} connection points x {summary['intervals']} intervals -> {out}; "
        f"de-energised points: {summary['de_energised_points']}; "
        f"base-case intervals beyond limits: {summary['base_intervals_beyond_limits']}"
    )
    console.print(f"timings: {timings}")


_ENGINE_OPTIONS = (
    ("interval_minutes", "--interval-minutes"),
    ("policy", "--policy"),
    ("v_min", "--v-min"),
    ("v_max", "--v-max"),
    ("max_loading_pct", "--max-loading-pct"),
    ("tdi_reverse_limit_kw", "--tdi-reverse-limit-kw"),
    ("profiles", "--profiles"),
)


@app.command("compute")
def compute(
    network: Annotated[
        str | None, typer.Option("--network", help="simbench:CODE or a pandapower JSON file (no database)")
    ] = None,
    tdi: Annotated[
        str | None,
        typer.Option("--tdi", help="Name of a T-D interface: its stored model, settings and network state"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="CSV file to write (one row per point and interval)")
    ] = None,
    intervals: Annotated[
        int | None, typer.Option("--intervals", min=1, help="Number of intervals (default: 24 h, or the horizon)")
    ] = None,
    interval_minutes: Annotated[
        int | None, typer.Option("--interval-minutes", help="Interval length: 5, 15 or 30 (default 5)")
    ] = None,
    policy: Annotated[
        AllocationPolicy | None, typer.Option("--policy", help="Allocation policy (default equal)")
    ] = None,
    v_min: Annotated[float | None, typer.Option("--v-min", help="Lower voltage limit (pu, default 0.95)")] = None,
    v_max: Annotated[float | None, typer.Option("--v-max", help="Upper voltage limit (pu, default 1.05)")] = None,
    max_loading_pct: Annotated[
        float | None,
        typer.Option("--max-loading-pct", help="Loading limit of lines and transformers (%, default 100)"),
    ] = None,
    tdi_reverse_limit_kw: Annotated[
        float | None, typer.Option("--tdi-reverse-limit-kw", help="Reverse-flow limit at the T-D interface (kW)")
    ] = None,
    profiles: Annotated[
        str | None,
        typer.Option("--profiles", help="simbench: SimBench profiles (default); none: the stored values, one interval"),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help=f"First interval start, ISO 8601 with zone (default {DEFAULT_START}; --tdi: now)"),
    ] = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="Directory for the heatmap and profile plots")] = None,
    ac_backend: Annotated[
        str, typer.Option("--ac-backend", help="batched (all intervals at once) or runpp (pandapower per interval)")
    ] = "batched",
    log: Annotated[Path | None, typer.Option("--log", help="Write the calculation log as JSON here")] = None,
    publish: Annotated[
        bool, typer.Option("--publish/--no-publish", help="--tdi: publish the stored run's envelopes at once")
    ] = False,
) -> None:
    """Compute AC-verified operating envelopes for every connection point (bus with a load) and interval.

    With --network the grid is loaded from SimBench or a file and nothing is stored. With --tdi the interface's
    stored network model, envelope settings and network events are used, and the run (its envelopes, calculation
    log and verification) is stored; --publish publishes it.
    """
    with reported_errors():
        if ac_backend not in ("batched", "runpp"):
            raise ValidationFailed(f"--ac-backend must be batched or runpp, not {ac_backend!r}", field="ac_backend")
        backend: AcBackend = "runpp" if ac_backend == "runpp" else "batched"
        if (network is None) == (tdi is None):
            raise ValidationFailed("give exactly one of --network and --tdi", field="network")
        if tdi is not None:
            given: dict[str, object] = {
                "interval_minutes": interval_minutes,
                "policy": policy,
                "v_min": v_min,
                "v_max": v_max,
                "max_loading_pct": max_loading_pct,
                "tdi_reverse_limit_kw": tdi_reverse_limit_kw,
                "profiles": profiles,
            }
            for name, flag in _ENGINE_OPTIONS:
                if given[name] is not None:
                    raise ValidationFailed(
                        f"{flag} cannot be used with --tdi: the interface's stored envelope settings apply "
                        "(change them with `gridbridge envelopes settings --tdi NAME ...`)",
                        field=name,
                    )
            _compute_stored(tdi, out, intervals, start, plots, log, publish, backend)
            return
        assert network is not None
        if out is None:
            raise ValidationFailed("--out is required with --network", field="out")
        if publish:
            raise ValidationFailed("--publish needs --tdi: nothing is stored with --network", field="publish")
        profile_mode = profiles or "simbench"
        minutes = interval_minutes if interval_minutes is not None else 5
        n_intervals = _intervals(intervals, minutes, profile_mode)
        request = EnvelopeRequest(
            start=parse_start(start or DEFAULT_START),
            intervals=n_intervals,
            interval_minutes=minutes,
            policy=policy or AllocationPolicy.EQUAL,
            limits=NetworkLimits(
                v_min_pu=0.95 if v_min is None else v_min,
                v_max_pu=1.05 if v_max is None else v_max,
                max_loading_pct=100.0 if max_loading_pct is None else max_loading_pct,
                tdi_reverse_limit_kw=tdi_reverse_limit_kw,
            ),
        )
        with console.status(f"loading {network} ..."):
            model = _network(network, backend)
            source = _forecast(model, profile_mode)
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("envelopes", total=1)

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=total)

            run = compute_envelopes(request, model, source, clock=SystemClock(), progress=progress)
        out.parent.mkdir(parents=True, exist_ok=True)
        envelope_table(run).to_csv(out, index=False)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(json.dumps({"log": run.log.as_dict(), "summary": run.summary()}, indent=2))
        if plots is not None:
            _write_plots(run, plots)
        _print_summary(run, out)


def _write_plots(run: EnvelopeRun, directory: Path) -> None:
    from gridbridge.adapters.powerflow.plots import write_plots

    with console.status("writing plots ..."):
        files = write_plots(run, directory)
    console.print(f"plots: {files.heatmap_png}, {files.heatmap_html}, {files.profile_png}, {files.profile_html}")


def _compute_stored(
    tdi: str,
    out: Path | None,
    intervals: int | None,
    start: str | None,
    plots: Path | None,
    log: Path | None,
    publish: bool,
    ac_backend: AcBackend,
) -> None:
    """``compute --tdi``: a stored run on the interface's model, settings and network state."""
    from gridbridge.adapters.powerflow.stored import PandapowerEnvelopeBackend
    from gridbridge.cli.lookup import ready_platform, tdi_id
    from gridbridge.domain.envelope_publication import RunTrigger
    from gridbridge.services.envelope_runs import compute_run

    platform = ready_platform()
    found = tdi_id(platform, tdi)
    first = parse_start(start) if start is not None else None
    with console.status(f"computing the envelopes of {tdi} ..."), platform.context() as ctx:
        outcome = compute_run(
            ctx,
            PandapowerEnvelopeBackend(ac_backend),
            found,
            start=first,
            intervals=intervals,
            publish=publish,
            trigger=RunTrigger.CLI,
        )
    record = outcome.run
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.concat([envelope_table(r) for r in outcome.engine_runs], ignore_index=True).to_csv(out, index=False)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(json.dumps({"run_id": record.id, "log": record.log, "summary": record.summary}, indent=2))
    if plots is not None:
        runs = outcome.engine_runs
        for k, engine_run in enumerate(runs):
            _write_plots(engine_run, plots if len(runs) == 1 else plots / f"block-{k + 1}")
    summary = record.summary or {}
    state = f"published ({outcome.published} envelopes)" if publish else "computed (publish with --publish)"
    console.print(
        f"run [bold]{record.id}[/] of {tdi}: {summary.get('points', 0)} connection points x {record.intervals} "
        f"intervals of {record.interval_minutes} min from {record.start.isoformat()}, policy {record.policy.value}, "
        f"{summary.get('blocks', 0)} network state block(s); verification {summary.get('verification')}; "
        f"export {summary.get('export_kw_min', 0.0):.3f}..{summary.get('export_kw_max', 0.0):.3f} kW, "
        f"import {summary.get('import_kw_min', 0.0):.3f}..{summary.get('import_kw_max', 0.0):.3f} kW; {state}"
        + (f"; CSV {out}" if out is not None else "")
    )


@app.command("run-queued")
def run_queued(
    tdi: Annotated[str | None, typer.Option("--tdi", help="Only this T-D interface's queued runs")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Process at most this many")] = 100,
) -> None:
    """Compute and publish the recomputations that network events queued (oldest first; each in its own
    transaction; one that fails is marked failed with its error)."""
    from gridbridge.adapters.powerflow.stored import PandapowerEnvelopeBackend
    from gridbridge.cli.lookup import ready_platform, tdi_id
    from gridbridge.services.envelope_runs import process_queued_run, queued_run_ids

    with reported_errors():
        platform = ready_platform()
        found = tdi_id(platform, tdi) if tdi is not None else None
        with platform.context() as ctx:
            ids = queued_run_ids(ctx, tdi_id=found, limit=limit)
        backend = PandapowerEnvelopeBackend()
        for run_id in ids:
            with platform.context() as ctx:
                outcome = process_queued_run(ctx, backend, run_id)
            run = outcome.run
            detail = f"{outcome.published} envelopes published" if outcome.published else (run.error or {})
            console.print(f"run {run_id}: {run.status.value}; {detail}")
        console.print(f"{len(ids)} queued run(s) processed")


@app.command("settings")
def settings_command(
    tdi: Annotated[str, typer.Option("--tdi", help="Name of the T-D interface")],
    v_min: Annotated[float | None, typer.Option("--v-min", help="Lower voltage limit (pu)")] = None,
    v_max: Annotated[float | None, typer.Option("--v-max", help="Upper voltage limit (pu)")] = None,
    max_loading_pct: Annotated[float | None, typer.Option("--max-loading-pct", help="Loading limit (%)")] = None,
    policy: Annotated[AllocationPolicy | None, typer.Option("--policy", help="Allocation policy")] = None,
    interval_minutes: Annotated[int | None, typer.Option("--interval-minutes", help="5, 15 or 30")] = None,
    horizon_hours: Annotated[int | None, typer.Option("--horizon-hours", help="1 to 168")] = None,
    reverse_flow_limit_kw: Annotated[
        float | None, typer.Option("--reverse-flow-limit-kw", help="kW (default: the interface's export limit)")
    ] = None,
    default_export_kw: Annotated[
        float | None, typer.Option("--default-export-kw", help="Fallback export limit, approved DER (kW)")
    ] = None,
    default_import_kw: Annotated[float | None, typer.Option("--default-import-kw", help="Fallback import (kW)")] = None,
    default_unapproved_export_kw: Annotated[
        float | None, typer.Option("--default-unapproved-export-kw", help="Fallback export, no approved DER (kW)")
    ] = None,
) -> None:
    """Show an interface's envelope settings, or change the ones given (validated as a whole, audited)."""
    from gridbridge.cli.lookup import ready_platform, tdi_id
    from gridbridge.services.envelope_runs import get_settings, update_settings

    changes = {
        name: value
        for name, value in (
            ("v_min_pu", v_min),
            ("v_max_pu", v_max),
            ("max_loading_pct", max_loading_pct),
            ("policy", policy),
            ("interval_minutes", interval_minutes),
            ("horizon_hours", horizon_hours),
            ("reverse_flow_limit_kw", reverse_flow_limit_kw),
            ("default_export_kw", default_export_kw),
            ("default_import_kw", default_import_kw),
            ("default_unapproved_export_kw", default_unapproved_export_kw),
        )
        if value is not None
    }
    with reported_errors():
        platform = ready_platform()
        found = tdi_id(platform, tdi)
        with platform.context() as ctx:
            current = update_settings(ctx, found, changes) if changes else get_settings(ctx, found)
        table = Table(title=f"Envelope settings of {tdi}")
        table.add_column("setting")
        table.add_column("value", justify="right")
        for name, value in current.as_dict().items():
            shown = "interface export limit" if name == "reverse_flow_limit_kw" and value is None else str(value)
            table.add_row(name, shown)
        console.print(table)


def hosting_table(run: HostingCapacityRun) -> pd.DataFrame:
    """One row per connection point: worst-case export and import hosting capacity and binding elements."""
    worst = run.worst_case()
    rows = [
        {
            "bus": name,
            "p_export_max_kw": float(_floor_kw(np.array([exp]))[0]),
            "binding_export": exp_b,
            "p_import_max_kw": float(_floor_kw(np.array([imp]))[0]),
            "binding_import": imp_b,
        }
        for name, (exp, exp_b, imp, imp_b) in worst.items()
    ]
    return pd.DataFrame(rows, columns=["bus", "p_export_max_kw", "binding_export", "p_import_max_kw", "binding_import"])


@app.command("hosting-capacity")
def hosting(
    network: Annotated[str, typer.Option("--network", help="simbench:CODE or a pandapower JSON file")],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write (one row per connection point)")],
    intervals: Annotated[
        int | None, typer.Option("--intervals", min=1, help="Number of intervals (default: 24 h)")
    ] = None,
    interval_minutes: Annotated[int, typer.Option("--interval-minutes", help="Interval length: 5, 15 or 30")] = 15,
    v_min: Annotated[float, typer.Option("--v-min", help="Lower voltage limit (pu)")] = 0.95,
    v_max: Annotated[float, typer.Option("--v-max", help="Upper voltage limit (pu)")] = 1.05,
    max_loading_pct: Annotated[float, typer.Option("--max-loading-pct", help="Loading limit (%)")] = 100.0,
    profiles: Annotated[str, typer.Option("--profiles", help="simbench or none")] = "simbench",
    start: Annotated[str, typer.Option("--start", help="First interval start, ISO 8601 with zone")] = DEFAULT_START,
    verify: Annotated[
        bool,
        typer.Option("--verify/--no-verify", help="AC-check each point alone at its value (one snapshot per point)"),
    ] = True,
) -> None:
    """Worst-case hosting capacity of every connection point alone (AC-checked unless --no-verify)."""
    with reported_errors():
        request = EnvelopeRequest(
            start=parse_start(start),
            intervals=_intervals(intervals, interval_minutes, profiles),
            interval_minutes=interval_minutes,
            limits=NetworkLimits(v_min_pu=v_min, v_max_pu=v_max, max_loading_pct=max_loading_pct),
            verify=verify,
        )
        with console.status(f"computing hosting capacity of {network} ..."):
            model = _network(network, "batched")
            run = compute_hosting_capacity(request, model, _forecast(model, profiles), clock=SystemClock())
        out.parent.mkdir(parents=True, exist_ok=True)
        table = hosting_table(run)
        table.to_csv(out, index=False)
        console.print(
            f"{len(table)} connection points -> {out}; export {table.p_export_max_kw.min():.1f}.."
            f"{table.p_export_max_kw.max():.1f} kW, import {table.p_import_max_kw.min():.1f}.."
            f"{table.p_import_max_kw.max():.1f} kW"
        )
