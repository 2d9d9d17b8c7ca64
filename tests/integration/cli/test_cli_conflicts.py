"""``gridbridge conflicts`` and ``gridbridge settlement`` on the registry test province (SQLite) with the province's
fixed clock."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conflict_scenarios import NOON_EST, competitors_at_one_point
from gridbridge.cli import conflicts as conflicts_cli
from gridbridge.cli import settlement as settlement_cli
from gridbridge.cli.main import app
from gridbridge.domain.der import ReviewDecision, Technology
from gridbridge.domain.market import ResourceKind
from gridbridge.domain.offers import Product
from gridbridge.domain.roles import Service
from gridbridge.services import conflict_views, conflicts, ders, instructions, offers
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from market_province import item, rt_interval
from registry_province import Province, build_province, enrol, spec

runner = CliRunner()


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

    # the white paper's battery (lossless): the IESO's allocation 12-4 pm, the DSO's dispatch 4-8 pm
    def file(ctx: Context) -> str:
        s = replace(spec("der-bat", 1000.0, Technology.STORAGE, 1000.0, 4000.0), round_trip_efficiency=1.0)
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
    assert dso.id in [a["instruction_id"] for a in shown["amendment_requests"]]
    code, output = _invoke("conflicts", "show", "no-such-conflict")
    assert code == 2
    assert "not_found" in output

    # the DSO (ldc_a) was asked to amend its dispatch; only it may answer, and only once
    (request,) = [a for a in shown["amendment_requests"] if a["instruction_id"] == dso.id]
    code, output = _invoke("conflicts", "amendment", "answer", request["id"], "--p-kw", "0", "--as", "owner_2-user")
    assert code == 2
    assert "auth.forbidden" in output
    code, output = _invoke("conflicts", "amendment", "answer", request["id"], "--p-kw", "0", "--as", "ldc_a-user")
    assert code == 0, output
    answered = json.loads(output)
    assert answered["request"]["status"] == "amended"
    assert answered["instruction"] == {"id": dso.id, "p_kw": 0.0, "status": "cancelled"}
    code, output = _invoke("conflicts", "amendment", "answer", request["id"], "--p-kw", "0", "--as", "ldc_a-user")
    assert code == 2
    assert "conflicts.amendment_closed" in output
    code, output = _invoke("conflicts", "amendment", "answer", request["id"], "--p-kw", "0", "--as", "nobody")
    assert code == 2
    assert "not_found" in output


HELP = [
    ["conflicts"],
    ["conflicts", "list"],
    ["conflicts", "show"],
    ["conflicts", "amendment"],
    ["conflicts", "amendment", "answer"],
    ["conflicts", "policy"],
    ["conflicts", "policy", "show"],
    ["conflicts", "policy", "set"],
    ["settlement"],
    ["settlement", "flags"],
]


@pytest.mark.parametrize("command", HELP, ids=[" ".join(c) for c in HELP])
def test_every_command_has_help(command: list[str]) -> None:
    code, output = _invoke(*command, "--help")
    assert code == 0, output
    assert "Usage:" in output


def _platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Province:
    url = f"sqlite+pysqlite:///{tmp_path / 'cli.db'}"
    p = build_province(url)
    monkeypatch.setenv("GRIDBRIDGE_DATABASE_URL", url)
    monkeypatch.setattr(conflicts_cli, "ready_platform", lambda: p.platform)
    monkeypatch.setattr(settlement_cli, "ready_platform", lambda: p.platform)
    return p


def test_list_and_show_as_a_user_give_the_api_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two competitors' DERs at one connection point (a1: owner_1; x: owner_2 via agg_2), dispatched by the TSO
    beyond the point's envelope: ``--as`` shows each user what the API shows it, ``--der`` matches any DER."""
    p = _platform(tmp_path, monkeypatch)
    competitors_at_one_point(p)
    x = p.ders["x"]
    a1 = p.ders["a1"]

    (cid,) = p.run("regulator", lambda ctx: [s.id for s in conflicts.list_conflicts(ctx, Page())])
    for who in ("owner_1", "agg_2", "ldc_a", "regulator"):
        code, output = _invoke("conflicts", "show", cid, "--as", f"{who}-user")
        assert code == 0, output
        assert json.loads(output) == p.run(who, lambda ctx: conflict_views.get_conflict_view(ctx, cid)), who
    code, output = _invoke("conflicts", "show", cid, "--as", "agg_2-user")
    shown = json.loads(output)
    assert (shown["view"], shown["der_ids"]) == ("partial", [x])
    assert a1 not in output
    code, output = _invoke("conflicts", "show", cid)  # the administrator sees everything
    assert json.loads(output)["view"] == "full"
    code, output = _invoke("conflicts", "show", cid, "--as", "agg_1-user")  # takes no part: like a missing one
    assert code == 2
    assert "not_found" in output
    code, output = _invoke("conflicts", "list", "--as", "no-such-user")
    assert code == 2
    assert "not_found" in output

    code, output = _invoke("conflicts", "list", "--as", "owner_1-user")
    assert code == 0, output
    assert "1 conflict(s)" in output
    assert "partial" in output
    assert "withheld" in output
    assert x not in output
    for der_id in (a1, x):  # any DER of the conflict, not only the first
        code, output = _invoke("conflicts", "list", "--der", der_id)
        assert "1 conflict(s)" in output, der_id
    code, output = _invoke("conflicts", "list", "--der", a1, "--as", "agg_2-user")  # not agg_2's to ask about
    assert "0 conflict(s)" in output
    code, output = _invoke("conflicts", "list", "--der", x, "--as", "agg_2-user")
    assert "1 conflict(s)" in output


def test_settlement_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """a2 offered directly (energy) and through agg_1's reserve aggregation in one interval: two flags, firm kW
    for the aggregation's share and none for the direct offer; each user reads only its own."""
    p = _platform(tmp_path, monkeypatch)
    enrol(p, "agg_1", "reserve", ["a2", "a3"], {Service.OPERATING_RESERVE: 50.0}, approve_as=["ldc_a"])
    p.clock.advance(timedelta(days=2))
    interval = rt_interval(p)
    p.run("agg_1", lambda ctx: offers.submit_offers(ctx, [item(ResourceKind.DER, p.ders["a2"], interval, [(30, 60)])]))
    reserve = item(
        ResourceKind.AGGREGATION, p.aggregations["reserve"], interval, [(10, 120)], product=Product.OPERATING_RESERVE
    )
    p.run("agg_1", lambda ctx: offers.submit_offers(ctx, [reserve]))

    code, output = _invoke("settlement", "flags", "--json", "--from", interval.isoformat())
    assert code == 0, output
    flags = {f["holder_kind"]: f for f in json.loads(output)}
    assert (flags["aggregation"]["firm_kw"], flags["aggregation"]["not_payable_kw"]) == (60.0, 0.0)
    assert (flags["der"]["firm_kw"], flags["der"]["not_payable_kw"]) == (0.0, 60.0)
    assert {f["der_id"] for f in flags.values()} == {p.ders["a2"]}
    for who, count in (("agg_1", 2), ("owner_1", 2), ("agg_2", 0), ("ldc_b", 0)):
        code, output = _invoke("settlement", "flags", "--json", "--as", f"{who}-user")
        assert code == 0, output
        assert len(json.loads(output)) == count, who
    code, output = _invoke("settlement", "flags", "--der", p.ders["a2"])
    assert code == 0, output
    assert "2 settlement flag(s)" in output
    code, output = _invoke("settlement", "flags", "--from", "2026-05-06T00:00:00")
    assert code == 2
    assert "no time zone" in output
