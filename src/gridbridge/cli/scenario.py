"""``gridbridge scenario run FILE.yaml --out REPORT.json``: replay a declarative scenario (docs/scenarios.md)
through the services on a fresh embedded SQLite database with a fixed clock."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from gridbridge.adapters.network_io import import_network
from gridbridge.cli.bootstrap import Platform
from gridbridge.cli.config import Settings
from gridbridge.cli.output import console, reported_errors
from gridbridge.domain.clock import FixedClock
from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.network import NetworkModel
from gridbridge.services.scenario import ScenarioReport, run_scenario
from gridbridge.services.scenario_kpis import KpiRow, ScenarioKpis, scenario_kpis
from gridbridge.services.scenario_model import SCENARIO_INVALID, Scenario, parse_scenario

app = typer.Typer(help="Declarative scenarios: replay a day under a coordination model.", no_args_is_help=True)


def load_scenario_file(path: Path) -> Scenario:
    """Read and validate a scenario file (YAML or JSON); errors name the offending key's path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationFailed(f"cannot read {path}: {exc.strerror}", field="FILE", code=SCENARIO_INVALID) from None
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValidationFailed(f"{path} is not valid YAML{where}", field="$", code=SCENARIO_INVALID) from None
    return parse_scenario(data)


_NETWORKS: dict[str, NetworkModel] = {}
"""Grids read by this process, by source (models are immutable)."""


def _loaded(source: str) -> NetworkModel:
    if source not in _NETWORKS:
        _NETWORKS[source] = import_network(source)
    return _NETWORKS[source]


def preload_networks(sources: Sequence[str], workers: int = 2) -> None:
    """Read the grids ``sources`` into ``cached_network``'s cache ahead of use, ``workers`` at a time in forked
    worker processes (reading a SimBench grid's CSV files takes seconds and is CPU-bound). Where the platform
    cannot fork, or a worker fails, the grids not yet read are read here in turn (a bad source then raises its
    own error on first use, as without preloading)."""
    wanted = [s for s in dict.fromkeys(sources) if s not in _NETWORKS]
    if workers >= 2 and len(wanted) >= 2 and "fork" in mp.get_all_start_methods():
        # a worker's failure (a bad source, a broken pool): that grid is read in this process below instead
        with (
            contextlib.suppress(Exception),
            ProcessPoolExecutor(min(workers, len(wanted)), mp_context=mp.get_context("fork")) as pool,
        ):
            futures = {source: pool.submit(import_network, source) for source in wanted}
            for source, future in futures.items():
                with contextlib.suppress(Exception):
                    _NETWORKS[source] = future.result()
    for source in wanted:
        with contextlib.suppress(ValidationFailed):
            _loaded(source)


def cached_network(source: str, *, name: str | None = None) -> NetworkModel:
    """The network loader of scenario runs: a SimBench grid is read once per process (models are immutable)."""
    model = _loaded(source)
    return model if name is None else replace(model, name=name)


def execute(scenario: Scenario, db_path: Path) -> ScenarioReport:
    """Run ``scenario`` on a new SQLite database at ``db_path`` (which must not hold data yet)."""
    clock = FixedClock(scenario.registry_time)
    platform = Platform(Settings(database_url=f"sqlite:///{db_path}"), clock=clock, network_loader=cached_network)
    platform.upgrade()
    try:
        return run_scenario(scenario, platform.context, clock)
    finally:
        platform.engine.dispose()


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _kpi_table(title: str, first: str, rows: list[KpiRow], per_model: bool) -> Table:
    table = Table(title=title)
    columns = [first, "market", "intervals", "energy\nMWh", "price avg\nCAD/MWh", "min", "max"]
    columns += ["re-dispatched\nkWh", "curtailed\nkWh", "peak import\nkW", "peak export\nkW"]
    if not per_model:
        columns.insert(1, "model")
    for column in columns:
        table.add_column(column, justify="left" if column in (first, "model", "market") else "right")
    for r in rows:
        cells = [r.name, r.market.replace("_", "-"), str(r.intervals), _number(r.energy_cleared_mwh, 2)]
        cells += [_number(r.price_mean_cad_per_mwh, 2), _number(r.price_min_cad_per_mwh, 2)]
        cells += [_number(r.price_max_cad_per_mwh, 2), _number(r.redispatched_kwh), _number(r.curtailed_kwh)]
        cells += [_number(r.peak_import_kw, 0), _number(r.peak_export_kw, 0)]
        if not per_model:
            cells.insert(1, r.model)
        table.add_row(*cells)
    return table


def _table(title: str, columns: list[str], rows: list[list[str]], left: int) -> Table:
    table = Table(title=title)
    for k, column in enumerate(columns):
        table.add_column(column, justify="left" if k < left else "right")
    for row in rows:
        table.add_row(*row)
    return table


def kpi_tables(kpis: ScenarioKpis) -> list[Table]:
    """Rich tables of a run's key figures (``scenario_kpis``): per T-D interface, per coordination model, the
    conflicts and curtailment requests (when there are any), and messages per party."""
    tables = [
        _kpi_table("Key figures per T-D interface", "T-D interface", kpis.by_interface, per_model=False),
        _kpi_table("Key figures per coordination model", "model", kpis.by_model, per_model=True),
    ]
    if kpis.conflicts:
        rows = [
            [c.interface, c.model, c.kind, c.stage, c.rule, str(c.conflicts), str(c.reduced), str(c.cancelled)]
            for c in kpis.conflicts
        ]
        columns = [
            "T-D interface",
            "model",
            "conflict",
            "caught at",
            "resolved by",
            "conflicts",
            "reduced",
            "cancelled",
        ]
        tables.append(_table(f"Conflicts ({sum(c.conflicts for c in kpis.conflicts):,} in all)", columns, rows, 5))
    if kpis.curtailment_requests:
        rows = [
            [
                c.interface,
                c.model,
                c.rule,
                str(c.requests),
                *map(_number, (c.required_kwh, c.dso_aggregated_kwh, c.direct_kwh)),
            ]
            for c in kpis.curtailment_requests
        ]
        columns = ["T-D interface", "model", "procedure", "requests", "required\nkWh", "DSO-aggregated\nkWh"]
        tables.append(_table("Curtailment requests", [*columns, "direct\nkWh"], rows, 3))
    rows = [[party, f"{count:,}"] for party, count in kpis.messages_per_party.items()]
    tables.append(
        _table(f"Messages exchanged per party ({kpis.messages_total:,} in all)", ["party", "messages"], rows, 1)
    )
    return tables


@app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="Scenario file (YAML)")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON report")],
    db: Annotated[
        Path | None, typer.Option("--db", help="SQLite file to build (must not exist; default: a temporary file)")
    ] = None,
) -> None:
    """Run a scenario through the services on a fresh embedded database and write the JSON report."""
    with reported_errors():
        scenario = load_scenario_file(file)
        if db is not None:
            if db.exists():
                raise ValidationFailed(f"{db} already exists; give a new file", field="--db", code=SCENARIO_INVALID)
            report = execute(scenario, db)
        else:
            with tempfile.TemporaryDirectory(prefix="gridbridge-scenario-") as tmp:
                report = execute(scenario, Path(tmp) / "scenario.db")
        out.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    for table in kpi_tables(scenario_kpis(report.as_json())):
        console.print(table)
    console.print(
        f"{len(report.intervals)} interval(s), {len(report.instructions)} instruction(s), "
        f"{len(report.curtailments)} curtailment(s), {len(report.conflicts)} conflict(s); report written to {out}"
    )
