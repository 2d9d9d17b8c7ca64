"""``gridbridge envelopes compute --tdi``, ``settings`` and ``run-queued`` on a stored province (typer CliRunner,
SQLite): the run is stored with its log and published, the CSV has one row per point and interval, and options
that belong to the stored settings are refused with --tdi."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from envelope_province import FEEDER_LINE, all_envelopes
from gridbridge.cli.main import app
from gridbridge.domain.envelope_publication import RunStatus
from gridbridge.domain.network_state import NetworkEventKind
from gridbridge.services import network_state
from gridbridge.services.ports import Page
from registry_province import T0, Province, build_province

runner = CliRunner()


@pytest.fixture
def province(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Province:
    url = f"sqlite+pysqlite:///{tmp_path / 'cli.db'}"
    built = build_province(url)
    monkeypatch.setenv("GRIDBRIDGE_DATABASE_URL", url)
    settings = runner.invoke(
        app, ["envelopes", "settings", "--tdi", "tdi_a", "--interval-minutes", "15", "--horizon-hours", "1"]
    )
    assert settings.exit_code == 0, settings.output
    assert "horizon_hours" in settings.output
    return built


def test_compute_tdi_stores_publishes_and_writes_the_csv(province: Province, tmp_path: Path) -> None:
    out, log = tmp_path / "tdi_a.csv", tmp_path / "log.json"
    # the command runs on the wall clock and publishes only intervals not yet over: start tomorrow
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    result = runner.invoke(
        app,
        [
            "envelopes",
            "compute",
            "--tdi",
            "tdi_a",
            "--start",
            start.isoformat(),
            "--out",
            str(out),
            "--log",
            str(log),
            "--publish",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "verification verified" in result.output
    table = pd.read_csv(out)
    assert len(table) == 13 * 4
    assert {"bus", "interval_start", "p_export_max_kw", "p_import_max_kw", "binding"} <= set(table.columns)
    assert table.interval_start.iloc[0] == start.isoformat().replace("+00:00", "Z")
    written = json.loads(log.read_text())
    with province.platform.unit_of_work() as uow:
        run = uow.envelopes.runs.get(written["run_id"])
    assert run is not None
    assert run.status is RunStatus.PUBLISHED
    assert run.trigger.value == "cli"
    assert written["log"]["network_source"] == "simbench:1-LV-rural1--0-sw"
    published = all_envelopes(province)
    assert len(published) == 52
    by_key = {(e.connection_point, e.interval_start.isoformat().replace("+00:00", "Z")): e for e in published}
    for bus, interval_start, export_kw in zip(table.bus, table.interval_start, table.p_export_max_kw, strict=True):
        assert by_key[(str(bus), str(interval_start))].p_export_max_kw == pytest.approx(float(export_kw), abs=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tdi", "tdi_a", "--policy", "max_total"], "--policy cannot be used with --tdi"),
        (["--tdi", "tdi_a", "--v-min", "0.9"], "--v-min cannot be used with --tdi"),
        (["--tdi", "tdi_a", "--network", "simbench:1-LV-rural1--0-sw"], "exactly one of --network and --tdi"),
        (["--tdi", "no such interface"], "no T-D interface named"),
        (["--tdi", "tdi_a", "--start", "2026-05-04T12:07:00Z"], "envelopes.interval_invalid"),
        (["--network", "simbench:1-LV-rural1--0-sw", "--publish", "--out", "x.csv"], "--publish needs --tdi"),
    ],
)
def test_bad_tdi_options_are_refused_and_nothing_is_stored(province: Province, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["envelopes", "compute", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    with province.platform.unit_of_work() as uow:
        assert uow.envelopes.runs.query(province.tdis["tdi_a"], Page()) == []


def test_run_queued_publishes_the_recomputation_of_an_outage(province: Province) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    province.clock.set(max(now, T0))  # the command runs on the wall clock
    start = province.clock.now()
    recorded = province.run(
        "ldc_a",
        lambda ctx: network_state.record_event(
            ctx,
            province.tdis["tdi_a"],
            NetworkEventKind.UNPLANNED_OUTAGE,
            start,
            start + timedelta(hours=3),
            open_elements=[FEEDER_LINE],
        ),
    )
    assert isinstance(recorded, network_state.EventRecorded)
    assert recorded.queued_run is not None
    result = runner.invoke(app, ["envelopes", "run-queued", "--tdi", "tdi_a"])
    assert result.exit_code == 0, result.output
    assert "1 queued run(s) processed" in result.output
    with province.platform.unit_of_work() as uow:
        run = uow.envelopes.runs.get(recorded.queued_run.id)
    assert run is not None
    assert run.status is RunStatus.PUBLISHED, run.error
    assert run.log is not None
    assert run.log["blocks"][0]["switching"]["open"] == [FEEDER_LINE]
