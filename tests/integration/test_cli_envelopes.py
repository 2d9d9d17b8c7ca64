"""``gridbridge envelopes compute`` and ``hosting-capacity`` end to end on a small SimBench LV grid: the CSV
columns and values, the plots, ``--profiles none``, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gridbridge.cli.main import app

GRID = "simbench:1-LV-rural1--0-sw"
runner = CliRunner()


def _compute(tmp_path: Path, *extra: str) -> tuple[int, str, Path]:
    out = tmp_path / "envelopes.csv"
    args = [
        "envelopes",
        "compute",
        "--network",
        GRID,
        "--interval-minutes",
        "15",
        "--policy",
        "equal",
        "--v-min",
        "0.95",
        "--v-max",
        "1.05",
        "--max-loading-pct",
        "100",
        "--out",
        str(out),
        *extra,
    ]
    result = runner.invoke(app, args)
    return result.exit_code, result.output, out


@pytest.mark.slow
def test_compute_writes_one_row_per_point_and_interval_with_plots(tmp_path: Path) -> None:
    code, output, out = _compute(
        tmp_path,
        "--intervals",
        "4",
        "--start",
        "2016-06-21T10:00:00Z",
        "--plots",
        str(tmp_path / "plots"),
        "--log",
        str(tmp_path / "log.json"),
    )
    assert code == 0, output
    table = pd.read_csv(out)
    for column in ("bus", "interval_start", "p_export_max_kw", "p_import_max_kw", "binding"):
        assert column in table.columns
    assert len(table) == 13 * 4  # 13 buses with a load, 4 intervals
    assert table.groupby("interval_start").size().eq(13).all()
    assert sorted(table.interval_start.unique()) == [
        "2016-06-21T10:00:00Z",
        "2016-06-21T10:15:00Z",
        "2016-06-21T10:30:00Z",
        "2016-06-21T10:45:00Z",
    ]
    assert table.bus.str.startswith("LV1.101 Bus").all()
    assert (table.p_export_max_kw > 0).all()
    assert (table.p_import_max_kw > 0).all()
    # equal policy: one value per interval for every point
    assert table.groupby("interval_start").p_export_max_kw.nunique().eq(1).all()
    assert table.binding.str.match(r"^export=.+;import=.+$").all()
    assert set(table.export_status) == {"verified"}
    assert set(table.import_status) == {"verified"}
    for name in ("envelope_heatmap.png", "envelope_heatmap.html", "voltage_profile.png", "voltage_profile.html"):
        path = tmp_path / "plots" / name
        assert path.stat().st_size > 10_000
    html = (tmp_path / "plots" / "envelope_heatmap.html").read_text()
    # plotly.js is embedded (no script tag loading it from a CDN): the page opens offline
    assert 'src="https://cdn.plot.ly' not in html
    assert len(html) > 1_000_000
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["log"]["policy"] == "equal"
    assert log["log"]["parameters"]["v_max_pu"] == 1.05
    assert log["summary"]["export_failed"] == 0


@pytest.mark.slow
def test_profiles_none_is_one_interval_of_stored_values(tmp_path: Path) -> None:
    code, output, out = _compute(tmp_path, "--profiles", "none", "--start", "2026-01-05T17:00:00-05:00")
    assert code == 0, output
    table = pd.read_csv(out)
    assert len(table) == 13
    assert set(table.interval_start) == {"2026-01-05T22:00:00Z"}
    assert set(table.interval_end) == {"2026-01-05T22:05:00Z"} or set(table.interval_end) == {"2026-01-05T22:15:00Z"}
    assert np.isfinite(table.p_export_max_kw).all()


@pytest.mark.slow
def test_hosting_capacity_command(tmp_path: Path) -> None:
    out = tmp_path / "hc.csv"
    result = runner.invoke(
        app,
        [
            "envelopes",
            "hosting-capacity",
            "--network",
            GRID,
            "--out",
            str(out),
            "--intervals",
            "2",
            "--start",
            "2016-06-21T10:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert len(table) == 13
    assert (table.p_export_max_kw > 0).all()
    assert table.binding_export.notna().all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--v-min", "1.06"), "envelopes.band_invalid"),
        (("--interval-minutes", "10"), "interval_minutes must be one of 5, 15, 30"),
        (("--start", "2016-06-21T10:00:00"), "no time zone"),
        (("--profiles", "none", "--intervals", "4"), "single-interval"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path, extra: tuple[str, ...], message: str) -> None:
    code, output, out = _compute(tmp_path, *extra)
    assert code == 2
    assert message in output
    assert not out.exists()


def test_unknown_simbench_code_says_how_to_list_them(tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    result = runner.invoke(
        app, ["envelopes", "compute", "--network", "simbench:1-LV-rurall--0-sw", "--out", str(out), "--intervals", "1"]
    )
    assert result.exit_code == 2
    assert "unknown SimBench code" in result.output
    assert "collect_all_simbench_codes" in result.output
    assert not out.exists()
