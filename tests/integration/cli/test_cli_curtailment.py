"""``gridbridge curtailment`` and ``gridbridge open-access`` on the white paper's example province (SQLite),
with the province's fixed clock in place of the wall clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curtailment_province import build_curtailment_province
from gridbridge.cli import curtailment as curtailment_cli
from gridbridge.cli.main import app

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_publish_show_request_list_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'cli.db'}"
    province, start, end = build_curtailment_province(url)
    monkeypatch.setenv("GRIDBRIDGE_DATABASE_URL", url)
    monkeypatch.setattr(curtailment_cli, "ready_platform", lambda: province.platform)

    code, output = _invoke(
        "curtailment",
        "procedure",
        "publish",
        "--tdi",
        "tdi_a",
        "--rule",
        "offer_price",
        "--param",
        "order=highest_first",
    )
    assert code == 0, output
    assert "v1: offer_price (order=highest_first)" in output
    code, output = _invoke("curtailment", "procedure", "show", "--tdi", "tdi_a")
    assert code == 0, output
    assert "in force now: v1: offer_price (order=highest_first)" in output

    code, output = _invoke(
        "curtailment",
        "request",
        "--tdi",
        "tdi_a",
        "--kw",
        "100",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
    )
    assert code == 0, output
    shares = {line.split()[1]: line.split()[-2] for line in output.splitlines() if line.strip().startswith("│ der-")}
    assert shares == {"der-A": "0.000", "der-B": "40.000", "der-C": "10.000", "der-D": "50.000"}
    assert "DSO-aggregated 40 kW, direct 60 kW" in output

    code, output = _invoke("curtailment", "list", "--tdi", "tdi_a")
    assert code == 0, output
    assert "offer_price" in output

    day = start.replace(hour=0, minute=0)
    code, output = _invoke(
        "open-access",
        "report",
        "--dso",
        "ldc_a",
        "--from",
        day.isoformat(),
        "--to",
        (day + timedelta(days=1)).isoformat(),
    )
    assert code == 0, output
    assert "affiliated" in output
    assert "third party" in output
    assert "20.000" in output  # B's 40 kW over half an hour
    assert "30.000" in output  # C's 10 kW and D's 50 kW over half an hour


def test_bad_input_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'cli.db'}"
    province, start, end = build_curtailment_province(url)
    monkeypatch.setenv("GRIDBRIDGE_DATABASE_URL", url)
    monkeypatch.setattr(curtailment_cli, "ready_platform", lambda: province.platform)

    code, output = _invoke("curtailment", "procedure", "publish", "--tdi", "tdi_a", "--rule", "lottery")
    assert code == 2
    assert "conflicts.curtailment_unknown_rule" in output
    code, output = _invoke("curtailment", "procedure", "publish", "--tdi", "tdi_a", "--rule", "pro_rata_export")
    assert code == 0, output
    code, output = _invoke(
        "curtailment",
        "request",
        "--tdi",
        "tdi_a",
        "--kw",
        "500",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
    )
    assert code == 2
    assert "curtailment.beyond_available" in output
    assert "at most 300 kW can be curtailed" in output
    code, output = _invoke("open-access", "report", "--dso", "ldc_a", "--from", "yesterday", "--to", end.isoformat())
    assert code == 2
    assert "validation.invalid" in output
