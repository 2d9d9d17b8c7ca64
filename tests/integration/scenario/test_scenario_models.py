"""A day with an outage under each coordination model, driven through the scenario runner (``day_scenarios``):
the day-ahead market's 24 hours, then six real-time intervals around a cable fault that opens
"LV1.101 Line 12" from 12:00 to 12:30 and de-energises ``battery_2``'s point. A full 288 real-time intervals
would be too slow for CI; ``gridbridge demo`` runs the full day."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from day_scenarios import day_scenario

from gridbridge.cli.scenario import execute
from gridbridge.services.scenario_model import parse_scenario

DURING = ("12:00", "12:10", "12:20")


def _run(tmp_path: Path, model: str, **kwargs: Any) -> dict[str, Any]:
    return execute(parse_scenario(day_scenario(model, **kwargs)), tmp_path / "scenario.db").as_json()


def _rt(report: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [r for r in report[key] if r["market"] == "real_time"]


def _at(row: dict[str, Any]) -> str:
    return str(row["interval_start"][11:16])


def _outage_and_days(report: dict[str, Any]) -> None:
    (outage,) = report["outages"]
    assert "south_ts/LV1.101 Bus 2" in outage["de_energised_points"]
    assert outage["suspended_ders"] == ["battery_2"]
    assert outage["notifications"] > 0
    assert len([i for i in report["intervals"] if i["market"] == "day_ahead"]) == 24
    assert len(_rt(report, "intervals")) == 7
    assert report["conflicts"] == []
    # before the fault the battery is the cheapest resource and is dispatched in full
    assert any(
        i["der"] == "battery_2" and i["p_kw"] == 400.0 and _at(i) == "11:40" for i in _rt(report, "instructions")
    )
    # no dispatch at a de-energised point while the feeder is out
    assert not [i for i in _rt(report, "instructions") if i["der"] == "battery_2" and _at(i) in DURING]


def _prices(report: dict[str, Any], at: str) -> dict[str, str]:
    return {p["interface"]: p["energy_price_cad_per_mwh"] for p in _rt(report, "prices") if _at(p) == at}


def test_total_tso_day_dispatches_ders_directly_and_skips_the_dark_feeder(tmp_path: Path) -> None:
    report = _run(tmp_path, "total_tso")
    _outage_and_days(report)
    rt = _rt(report, "instructions")
    # the TSO dispatches every DER itself, to the party that offered it (the aggregator for pv_5)
    assert {(i["issuer"], i["resource_kind"], i["parent_id"]) for i in rt} == {("ieso", "der", None)}
    assert {i["recipient"] for i in rt if i["der"] == "pv_5"} == {"flexco"}
    # the envelope of the suspended battery is a constraint of the clearing: nothing to curtail afterwards
    assert report["curtailments"] == []
    assert _prices(report, "11:40") == {"south_ts": "30.00", "west_ts": "30.00"}
    assert _prices(report, "12:00") == {"south_ts": "60.00", "west_ts": "60.00"}  # pv_west is marginal
    at_noon = {i["der"]: i["p_kw"] for i in rt if _at(i) == "12:00"}
    assert at_noon == {"pv_5": 300.0, "pv_6": 250.0, "pv_west": 50.0}


def test_alt1_day_the_dso_check_cuts_the_dark_battery_and_the_tso_redispatches(tmp_path: Path) -> None:
    report = _run(tmp_path, "alt1_minimal_dso")
    _outage_and_days(report)
    cuts = [(_at(c), c["der"], c["curtailed_kw"], c["checked_by"]) for c in _rt(report, "curtailments")]
    # the 12:00 and 12:10 offers were in before the fault: the TSO dispatched the battery, the LDC's check cut it
    assert cuts == [("12:00", "battery_2", 400.0, "dso"), ("12:10", "battery_2", 400.0, "dso")]
    assert all(c["reason"].startswith("status:suspended:der/") for c in report["curtailments"])
    faces = {(_at(f), f["interface"]): f for f in _rt(report, "interfaces")}
    assert faces[("12:00", "south_ts")]["shortfall_kw"] == pytest.approx(400.0)
    # the shortfall is made up by the TSO: 350 kW more at south_ts (pv_5, pv_6), 50 kW at west_ts (pv_west)
    redone = faces[("12:00", "south_ts")]["redispatched_kw"] + faces[("12:00", "west_ts")]["redispatched_kw"]
    assert redone == pytest.approx(400.0)
    assert faces[("11:40", "south_ts")]["shortfall_kw"] == 0.0
    assert {i["issuer"] for i in _rt(report, "instructions")} == {"ieso"}
    assert _prices(report, "12:00")["south_ts"] == "60.00"


def test_alt2_day_the_dso_virtual_resource_is_split_within_envelopes(tmp_path: Path) -> None:
    report = _run(tmp_path, "alt2_hybrid_dso", big=True)
    _outage_and_days(report)
    rt = _rt(report, "instructions")
    virtual = [i for i in rt if i["resource_kind"] == "dso_virtual"]
    assert {(i["resource"], i["issuer"], i["recipient"]) for i in virtual} == {("south_ts", "ieso", "hydro_south")}
    # DERs below the 1,000 kW threshold are instructed by the LDC, each traceable to the virtual resource's
    # instruction; the CHP above it is dispatched by the TSO directly
    small = [i for i in rt if i["der"] in ("battery_2", "pv_5", "pv_6")]
    parents = {i["id"] for i in virtual}
    assert small
    assert all(i["issuer"] == "hydro_south" and i["parent_id"] in parents for i in small)
    assert {(i["issuer"], i["parent_id"]) for i in rt if i["der"] == "chp_7"} == {("ieso", None)}
    # 12:00: the virtual resource was offered with the battery in it; the split leaves the dark battery out
    noon = {i["der"]: i["p_kw"] for i in rt if _at(i) == "12:00" and i["der"]}
    assert noon == {"pv_5": 300.0, "pv_6": 250.0}
    shortfall = {_at(i): i["split_shortfall_kw"] for i in _rt(report, "intervals")}
    assert shortfall["12:00"] == pytest.approx(50.0)
    assert shortfall["11:40"] == 0.0


def test_total_dso_day_every_der_goes_through_the_dso(tmp_path: Path) -> None:
    report = _run(tmp_path, "total_dso")
    _outage_and_days(report)
    rt = _rt(report, "instructions")
    south = [i for i in rt if i["interface"] == "south_ts"]
    # the TSO instructs only the LDC at a Total DSO interface: its virtual resource and the net schedule
    assert {(i["resource_kind"], i["recipient"]) for i in south if i["issuer"] == "ieso"} == {
        ("dso_virtual", "hydro_south"),
        ("interface", "hydro_south"),
    }
    assert {i["issuer"] for i in south if i["der"]} == {"hydro_south"}
    schedule = {_at(i): i["p_kw"] for i in south if i["resource_kind"] == "interface"}
    # the area's net schedule: 900 kW of load less 600 kW of dispatch, an import (negative, like a bid)
    assert schedule["11:40"] == pytest.approx(-300.0)
    assert report["messages_per_party"]["hydro_south"] > report["messages_per_party"]["flexco"]
