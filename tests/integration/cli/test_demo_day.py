"""``gridbridge demo`` plays its market day: a small province (four interfaces on one small SimBench LV grid,
one per coordination model, 60 DERs) and three real-time intervals around the start of the midday outage, on a
throw-away SQLite database; the key figures printed, the plots and the report written, and the figures checked
against the report's instructions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridbridge.cli import demo
from gridbridge.cli.main import app
from gridbridge.domain.coordination import ModelName
from gridbridge.services.scenario_kpis import HOURS_PER_INTERVAL, scenario_kpis

GRID = "1-LV-rural1--0-sw"
SMALL_PROVINCE = [
    demo.TdiPlan("Leaside TS", 0, ModelName.ALT2_HYBRID_DSO, GRID, 2_000, 600),
    demo.TdiPlan("Esplanade TS", 0, ModelName.TOTAL_DSO, GRID, 2_000, 600),
    demo.TdiPlan("Sudbury North TS", 1, ModelName.ALT1_MINIMAL_DSO, GRID, 1_500, 500, "LV1.101 Line 12"),
    demo.TdiPlan("Muskoka TS", 1, ModelName.TOTAL_TSO, GRID, 1_500, 500),
]


@pytest.fixture
def small_province(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRIDBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.db'}")
    monkeypatch.setattr(demo, "TDI_PLANS", SMALL_PROVINCE)
    return tmp_path / "out"


@pytest.mark.slow
def test_demo_day_prints_key_figures_and_writes_plots_and_report(small_province: Path) -> None:
    out = small_province
    result = CliRunner().invoke(app, ["demo", "--ders", "60", "--real-time", "11:55-12:10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for title in ("Key figures per T-D interface", "Key figures per coordination model", "Messages exchanged"):
        assert title in result.output
    assert "net-load.png" in result.output
    assert "report.json" in result.output
    for name in ("net-load.png", "prices.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("net-load.html", "prices.html"):
        html = (out / name).read_text(encoding="utf-8")
        assert all(plan.name in html for plan in SMALL_PROVINCE)

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    markets = [i["market"] for i in report["intervals"]]
    assert (markets.count("day_ahead"), markets.count("real_time")) == (24, 3)
    (outage,) = report["outages"]
    assert outage["interface"] == "Sudbury North TS"
    assert outage["open"] == ["LV1.101 Line 12"]
    assert "Sudbury North TS/LV1.101 Bus 2" in outage["de_energised_points"]
    # the DSO records the outage, so it sends messages; so does every party that offered
    assert report["messages_per_party"]["Northshore Utilities"] >= 1 + outage["notifications"]
    assert report["messages_per_party"]["IESO"] > 0

    # energy cleared is the dispatched injection at each interface over each interval (recomputed here from the
    # report's rows); the TSO's own instructions carry at most that much (conflict checks may lower an
    # instruction after clearing, never raise it)
    kpis = scenario_kpis(report)
    for market, hours in HOURS_PER_INTERVAL.items():
        for face in SMALL_PROVINCE:
            (row,) = [r for r in kpis.by_interface if r.name == face.name and r.market == market]
            rows = [r for r in report["interfaces"] if r["interface"] == face.name and r["market"] == market]
            assert row.energy_cleared_mwh == pytest.approx(sum(r["injection_kw"] for r in rows) * hours / 1000)
        cleared_mwh = sum(r.energy_cleared_mwh for r in kpis.by_interface if r.market == market)
        instructed_kwh = sum(
            i["p_kw"] * hours
            for i in report["instructions"]
            if i["market"] == market
            and i["issuer"] == "IESO"
            and i["parent_id"] is None
            and i["resource_kind"] != "interface"  # Total DSO's net-import schedule is not a dispatch
        )
        assert 0 < instructed_kwh / 1000 <= cleared_mwh + 1e-6
    assert any(r.energy_cleared_mwh > 0 for r in kpis.by_interface)
    # no DER at a de-energised point is dispatched while the feeder is out: nothing suspends them, their
    # points' zero envelopes keep them out of offers, the clearing, the LDC's check and the splits
    dark = set(outage["de_energised_ders"])
    assert dark
    cut = [c for c in report["curtailments"] if c["interface"] == "Sudbury North TS"]
    assert {c["der"] for c in cut} <= dark
    assert all("de-energised" in c["reason"] and c["interval_start"] >= outage["starts_at"] for c in cut)
    reasons = [c["reason"] for c in report["curtailments"]] + [r["code"] for r in report["offer_rejections"]]
    assert not [r for r in reasons if "suspended" in r]
    during = [
        i for i in report["instructions"] if i["market"] == "real_time" and i["interval_start"] >= outage["starts_at"]
    ]
    assert not [i for i in during if i["der"] in dark and i["p_kw"] > 0]


def test_a_bad_real_time_window_is_refused_naming_the_option(small_province: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--real-time", "12:03-13:00"])
    assert result.exit_code == 2
    assert "--real-time" in result.output
    assert "multiples of 5 minutes" in result.output
