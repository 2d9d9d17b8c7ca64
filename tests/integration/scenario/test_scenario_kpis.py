"""Key figures of a scenario report (``scenario_kpis``: per interface and model, conflicts, curtailment requests)
and its plots (``write_plots``), on a report built by hand whose figures are worked out in the comments."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gridbridge.cli.plots import write_plots
from gridbridge.services.scenario_kpis import ConflictKpi, CurtailmentKpi, KpiRow, scenario_kpis

DA, RT = "day_ahead", "real_time"
H0, H1 = "2026-06-01T00:00:00+00:00", "2026-06-01T01:00:00+00:00"
T0, T1 = "2026-06-01T12:00:00+00:00", "2026-06-01T12:05:00+00:00"


def _flow(market: str, at: str, face: str, injection: float, net: float, redispatched: float) -> dict[str, Any]:
    return {
        "market": market,
        "interval_start": at,
        "interface": face,
        "model": "?",
        "load_kw": net + injection,
        "injection_kw": injection,
        "net_flow_kw": net,
        "net_flow_known": True,
        "shortfall_kw": redispatched,
        "redispatched_kw": redispatched,
        "reverse_flow": net < 0,
    }


def _price(market: str, at: str, face: str, price: str | None) -> dict[str, Any]:
    return {
        "market": market,
        "interval_start": at,
        "interface": face,
        "energy_price_cad_per_mwh": price,
        "reserve_price_cad_per_mwh": None,
    }


def _cut(market: str, at: str, face: str, kw: float) -> dict[str, Any]:
    return {"market": market, "interval_start": at, "interface": face, "der": "d", "curtailed_kw": kw}


def hand_built_report() -> dict[str, Any]:
    """Two alt 1 interfaces (north, south) and a Total TSO one (west); north clears day-ahead and real time."""
    return {
        "scenario": "hand-built",
        "models": {"north": "alt1_minimal_dso", "south": "alt1_minimal_dso", "west": "total_tso"},
        "intervals": [],
        "interfaces": [
            _flow(DA, H0, "north", 1000, 500, 0),
            _flow(DA, H1, "north", 2000, -300, 100),
            _flow(RT, T0, "north", 600, 200, 60),
            _flow(RT, T1, "north", 1200, -120, 0),
            _flow(DA, H0, "south", 500, 800, 0),
            _flow(DA, H0, "west", 0, 50, 0),
        ],
        "prices": [
            _price(DA, H0, "north", "20.00"),
            _price(DA, H1, "north", "40.00"),
            _price(RT, T0, "north", "35.50"),
            _price(RT, T1, "north", None),
            _price(DA, H0, "south", "10.00"),
            _price(DA, H0, "west", None),
        ],
        "curtailments": [_cut(RT, T0, "north", 120), _cut(DA, H1, "north", 50), _cut(DA, H0, "south", 30)],
        "instructions": [],
        "outages": [{"interface": "north", "starts_at": T0, "ends_at": T1, "open": ["L1"], "de_energised_points": []}],
        "offer_rejections": [],
        "messages_per_party": {"ieso": 5, "b": 7, "a": 7},
        "conflicts": [
            _conflict("west", "tier_bypassing_deenergised", "network_change", "most_restrictive_limit", ["cancelled"]),
            _conflict("north", "hidden_coupling_energy", "instruction_issue", "service_priority", ["kept", "reduced"]),
            _conflict(
                "north", "hidden_coupling_energy", "instruction_issue", "service_priority", ["cancelled", "kept"]
            ),
            _conflict("north", "double_counting", "offer_submission", "service_priority", ["kept", "cancelled"]),
        ],
        "curtailment_requests": [
            _request("south", "v1: pro_rata_export", H0, "2026-06-01T00:30:00+00:00", 100, 40, 60),
            _request("south", "v1: pro_rata_export", T0, T1, 60, 60, 0),
        ],
    }


def _conflict(face: str, kind: str, stage: str, rule: str, actions: list[str]) -> dict[str, Any]:
    return {"interface": face, "kind": kind, "stage": stage, "rule": rule, "outcomes": [{"action": a} for a in actions]}


def _request(face: str, rule: str, start: str, end: str, kw: float, dso: float, direct: float) -> dict[str, Any]:
    return {
        "interface": face,
        "rule": rule,
        "window_start": start,
        "window_end": end,
        "required_kw": kw,
        "dso_aggregated_kw": dso,
        "direct_kw": direct,
    }


def test_key_figures_per_interface_and_model_from_a_hand_built_report() -> None:
    kpis = scenario_kpis(hand_built_report())
    rows = {(r.name, r.market): r for r in kpis.by_interface}
    assert list(rows) == [("north", DA), ("north", RT), ("south", DA), ("west", DA)]  # west never clears RT
    # north day-ahead: (1000 + 2000) kW x 1 h = 3 MWh; prices 20 and 40; 100 kW re-dispatched for 1 h;
    # 50 kW curtailed for 1 h; imports up to 500 kW, exports up to 300 kW
    assert rows["north", DA] == KpiRow(
        "north", "alt1_minimal_dso", DA, 1, 2, 3.0, 30.0, 20.0, 40.0, 100.0, 50.0, 500.0, 300.0
    )
    # north real time: (600 + 1200) kW x 5 min = 0.15 MWh; one priced interval (35.50); 60 kW x 5 min = 5 kWh
    # re-dispatched; 120 kW x 5 min = 10 kWh curtailed
    north_rt = rows["north", RT]
    assert north_rt.energy_cleared_mwh == pytest.approx(0.15)
    assert (north_rt.price_mean_cad_per_mwh, north_rt.price_min_cad_per_mwh) == (35.5, 35.5)
    assert north_rt.redispatched_kwh == pytest.approx(5.0)
    assert north_rt.curtailed_kwh == pytest.approx(10.0)
    assert (north_rt.peak_import_kw, north_rt.peak_export_kw) == (200.0, 120.0)
    # west: nothing dispatched, no price, never exports
    assert rows["west", DA] == KpiRow("west", "total_tso", DA, 1, 1, 0.0, None, None, None, 0.0, 0.0, 50.0, 0.0)

    models = {(r.name, r.market): r for r in kpis.by_model}
    assert list(models) == [("alt1_minimal_dso", DA), ("alt1_minimal_dso", RT), ("total_tso", DA)]
    alt1 = models["alt1_minimal_dso", DA]
    # north and south together: 2 hours, 3.5 MWh, prices 20, 40 and 10, 50 + 30 kWh curtailed
    assert (alt1.interfaces, alt1.intervals, alt1.energy_cleared_mwh) == (2, 2, 3.5)
    assert alt1.price_mean_cad_per_mwh == pytest.approx(70 / 3)
    assert (alt1.price_min_cad_per_mwh, alt1.price_max_cad_per_mwh) == (10.0, 40.0)
    assert (alt1.curtailed_kwh, alt1.redispatched_kwh, alt1.peak_import_kw, alt1.peak_export_kw) == (
        80.0,
        100.0,
        800.0,
        300.0,
    )
    # only north clears real time, so the model's real-time row is north's, over the model's two interfaces
    assert models["alt1_minimal_dso", RT] == replace(north_rt, name="alt1_minimal_dso", interfaces=2)

    assert list(kpis.messages_per_party.items()) == [("a", 7), ("b", 7), ("ieso", 5)]
    assert kpis.messages_total == 19


def test_plots_are_valid_png_and_html_naming_every_interface(tmp_path: Path) -> None:
    written = write_plots(hand_built_report(), tmp_path / "plots")
    assert [p.name for p in written] == ["net-load.png", "prices.png", "net-load.html", "prices.html"]
    for png in written[:2]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for page in written[2:]:
        html = page.read_text(encoding="utf-8")
        assert html.lower().startswith("<!doctype html>")
        assert 'src="plotly.min.js"' in html
        for face in ("north", "south", "west"):
            assert f"{face} day-ahead" in html
    assert (tmp_path / "plots" / "plotly.min.js").stat().st_size > 1_000_000


def test_conflicts_and_curtailment_requests_per_interface_from_a_hand_built_report() -> None:
    kpis = scenario_kpis(hand_built_report())
    # in the order of the report's models (north, south, west), then kind, stage and rule
    assert kpis.conflicts == [
        ConflictKpi("north", "alt1_minimal_dso", "double_counting", "offer_submission", "service_priority", 1, 0, 1),
        ConflictKpi(
            "north", "alt1_minimal_dso", "hidden_coupling_energy", "instruction_issue", "service_priority", 2, 1, 1
        ),
        ConflictKpi(
            "west", "total_tso", "tier_bypassing_deenergised", "network_change", "most_restrictive_limit", 1, 0, 1
        ),
    ]
    # 100 kW for half an hour (50 kWh: 20 DSO-aggregated, 30 direct) and 60 kW for five minutes (5 kWh)
    (south,) = kpis.curtailment_requests
    assert south == CurtailmentKpi("south", "alt1_minimal_dso", "v1: pro_rata_export", 2, 55.0, 25.0, 30.0)
    # a report written before conflicts and curtailment requests were reported has neither
    old = {k: v for k, v in hand_built_report().items() if k not in ("conflicts", "curtailment_requests")}
    assert scenario_kpis(old).conflicts == []
    assert scenario_kpis(old).curtailment_requests == []


def test_peaks_count_only_intervals_whose_net_flow_is_known() -> None:
    report = hand_built_report()
    flows = report["interfaces"]
    # Without a load forecast the TSO's net flow holds the DERs' injection only: -900 kW is no export peak.
    unknown = {**_flow(DA, H1, "west", 900, -900, 0), "load_kw": None, "net_flow_known": False}
    flows.append(unknown)
    west = {(r.name, r.market): r for r in scenario_kpis(report).by_interface}["west", DA]
    assert (west.intervals, west.energy_cleared_mwh) == (2, 0.9)
    assert (west.peak_import_kw, west.peak_export_kw) == (50.0, 0.0)
    # An interface that never had a forecast has no peak at all.
    flows[:] = [f for f in flows if f["interface"] != "west"] + [unknown]
    west = {(r.name, r.market): r for r in scenario_kpis(report).by_interface}["west", DA]
    assert (west.peak_import_kw, west.peak_export_kw) == (None, None)
