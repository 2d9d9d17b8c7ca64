"""``gridbridge conflicts`` on the registry test province (SQLite) with the province's fixed clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridbridge.cli import conflicts as conflicts_cli
from gridbridge.cli.main import app
from gridbridge.domain.der import ReviewDecision, Technology
from gridbridge.services import conflicts, ders, instructions
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from registry_province import build_province, spec

runner = CliRunner()
NOON_EST = datetime(2026, 5, 5, 17, 0, tzinfo=UTC)


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_policy_list_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'cli.db'}"
    p = build_province(url)
    monkeypatch.setenv("GRIDBRIDGE_DATABASE_URL", url)
    monkeypatch.setattr(conflicts_cli, "ready_platform", lambda: p.platform)

    code, output = _invoke("conflicts", "policy", "show", "--tdi", "tdi_a")
    assert code == 0, output
    assert json.loads(output)["stored"] is False
    code, output = _invoke("conflicts", "policy", "set", "--tdi", "tdi_a", "--priority", "distribution_safety")
    assert code == 2
    assert "conflicts.priority_incomplete" in output
    order = ["distribution_safety", "bulk_reliability", "distribution_services", "wholesale_energy"]
    args = [x for c in order for x in ("--priority", c)]
    code, output = _invoke(
        "conflicts", "policy", "set", "--tdi", "tdi_a", *args, "--rule", "hidden_coupling_energy=amendment_request"
    )
    assert code == 0, output
    assert json.loads(output)["rules"]["hidden_coupling_energy"] == "amendment_request"

    # the white paper's battery: the IESO's allocation 12-4 pm, the DSO's dispatch 4-8 pm
    def file(ctx: Context) -> str:
        s = spec("der-bat", 1000.0, Technology.STORAGE, 1000.0, 4000.0)
        return ders.request_interconnection(ctx, s, p.points["tdi_a"][5]).id

    bat = p.run("owner_2", file)

    def approve(ctx: Context) -> None:
        ders.start_review(ctx, bat)
        ders.decide_review(ctx, bat, ReviewDecision.APPROVED, "ok")
        ders.commission(ctx, bat)

    p.run("ldc_a", approve)
    parent = p.run(
        "tso",
        lambda ctx: instructions.issue_operating_instruction(
            ctx,
            p.tdis["tdi_a"],
            p_kw=1000.0,
            interval_start=NOON_EST,
            interval_end=NOON_EST + timedelta(hours=4),
            reason="bulk system energy",
        ),
    )
    p.run("ldc_a", lambda ctx: instructions.split_instruction(ctx, parent.id))
    dso = p.run(
        "ldc_a",
        lambda ctx: instructions.dispatch_distribution_service(
            ctx,
            bat,
            p_kw=1000.0,
            interval_start=NOON_EST + timedelta(hours=4),
            interval_end=NOON_EST + timedelta(hours=8),
            reason="deferral",
        ),
    )
    code, output = _invoke("conflicts", "list", "--tdi", "tdi_a", "--kind", "hidden_coupling_energy")
    assert code == 0, output
    assert "1 conflict(s)" in output
    code, output = _invoke("conflicts", "list", "--from", "2026-05-06T00:00:00")
    assert code == 2
    assert "no time zone" in output

    def conflict_id(ctx: Context) -> str:
        (found,) = conflicts.list_conflicts(ctx, Page())
        return found.id

    cid = p.run("regulator", conflict_id)
    code, output = _invoke("conflicts", "show", cid)
    assert code == 0, output
    shown = json.loads(output)
    assert shown["resolution"]["rule"] == "amendment_request"
    assert [a["instruction_id"] for a in shown["amendment_requests"]] == [dso.id]
    code, output = _invoke("conflicts", "show", "no-such-conflict")
    assert code == 2
    assert "not_found" in output
    for command in (["conflicts", "--help"], ["conflicts", "policy", "--help"], ["conflicts", "list", "--help"]):
        code, output = _invoke(*command)
        assert code == 0, output
