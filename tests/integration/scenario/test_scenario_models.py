"""A day with an outage under each coordination model, driven through the scenario runner (``day_scenarios``).

Per model, a window test: the day-ahead market's 24 hours, then seven real-time intervals every 10 minutes from
11:40 to 12:40 around a cable fault that opens "LV1.101 Line 12" from 12:00 to 12:30 and de-energises
``battery_2``'s point. Then one test drives the whole day (24 day-ahead hours and all 288 real-time intervals)
at four interfaces, one per model, each with its own outage: a whole day per model costs 15 to 30 s on two
cores, four models together about 40 s.

Nothing suspends a DER: the outage reaches offers, the clearing, the DSO's check and the splits only through the
zero envelopes the platform publishes for the dark points.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from day_scenarios import MODELS, SHORT, day_scenario, province_day

from gridbridge.cli.scenario import execute
from gridbridge.services.scenario_model import parse_scenario

DURING = ("12:00", "12:10", "12:20")
AFTER = ("12:30", "12:40")
DARK = "envelope:point/south_ts/LV1.101 Bus 2:de-energised"


def _run(tmp_path: Path, model: str, **kwargs: Any) -> dict[str, Any]:
    return execute(parse_scenario(day_scenario(model, **kwargs)), tmp_path / "scenario.db").as_json()


def _rt(report: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [r for r in report[key] if r["market"] == "real_time"]


def _at(row: dict[str, Any]) -> str:
    return str(row["interval_start"][11:16])


def _dispatched(report: dict[str, Any], der: str) -> dict[str, float]:
    """Real-time interval -> kW the DER was instructed (as the instructions stand at the end)."""
    return {_at(i): i["p_kw"] for i in _rt(report, "instructions") if i["der"] == der and i["p_kw"] > 0}


def _outage_and_days(report: dict[str, Any]) -> None:
    (outage,) = report["outages"]
    assert "south_ts/LV1.101 Bus 2" in outage["de_energised_points"]
    assert outage["de_energised_ders"] == ["battery_2"]
    assert outage["notifications"] > 0
    assert len([i for i in report["intervals"] if i["market"] == "day_ahead"]) == 24
    assert len(_rt(report, "intervals")) == 7
    battery = _dispatched(report, "battery_2")
    # before the fault the battery is the cheapest resource and is dispatched in full
    assert battery["11:40"] == 400.0
    # no dispatch at a de-energised point while the feeder is out, and it is dispatched again once it is back
    assert not [t for t in battery if t in DURING]
    assert {t: battery[t] for t in AFTER} == {"12:30": 400.0, "12:40": 400.0}
    # nothing was suspended: the dark point's zero envelope is what keeps the battery out
    reasons = [c["reason"] for c in report["curtailments"]] + [r["code"] for r in report["offer_rejections"]]
    assert not [r for r in reasons if "suspended" in r]
    # what the distribution check cut is the dark battery, or a virtual resource offered with it in
    assert all(c["der"] == "battery_2" or "der/battery_2" in c["reason"] for c in report["curtailments"])


def _envelope_refuses_the_dark_battery_offer(report: dict[str, Any]) -> None:
    """Where the battery's own offer is checked against its envelope (Total TSO; the DSO route of alt 2 and
    Total DSO), its offer for 12:20, submitted after the fault, is refused by the dark point's zero envelope."""
    assert [(_at(r), r["resource"], r["code"]) for r in report["offer_rejections"]] == [
        ("12:20", "battery_2", "offers.beyond_envelope")
    ]


def _prices(report: dict[str, Any], at: str) -> dict[str, str]:
    return {p["interface"]: p["energy_price_cad_per_mwh"] for p in _rt(report, "prices") if _at(p) == at}


def _energy_conflict(c: dict[str, Any], rows: dict[str, dict[str, Any]], face: str, battery: str, issuer: str) -> None:
    """``c`` is ``issuer``'s day-ahead schedules of ``battery`` (the TSO's own, or the LDC's split of its virtual
    resource) beyond its stored energy, caught as the schedule that breaks it is issued and resolved by service
    priority (all wholesale energy: the earlier-issued schedules prevail); the later schedule is reduced or
    cancelled, and the report's instruction shows it as it stands, with the conflict's id."""
    assert (c["kind"], c["stage"], c["rule"], c["ders"]) == (
        "hidden_coupling_energy",
        "instruction_issue",
        "service_priority",
        [battery],
    )
    assert c["interface"] == face
    assert c["connection_point"] == f"{face}/LV1.101 Bus 2"
    assert c["parties"] == sorted([issuer, "farm_owner"], key=["ieso", "hydro_south", "farm_owner"].index)
    assert c["figures"]["max_shortfall_kwh"] > 0
    assert {(o["der"], o["issuer"], o["recipient"]) for o in c["outcomes"]} == {(battery, issuer, "farm_owner")}
    changed = [o for o in c["outcomes"] if o["action"] != "kept"]
    assert changed
    for o in changed:
        assert o["action"] in ("reduced", "cancelled")
        assert "wholesale_energy" in o["reason"]
        row = rows[o["subject"]]
        assert (row["market"], row["kind"]) == ("day_ahead", "schedule")
        assert row["p_kw"] < o["original_p_kw"]
        assert (row["status"] == "cancelled") == (row["p_kw"] == 0.0)
        assert c["id"] in row["conflicts"]


def _dark_schedule_conflict(
    c: dict[str, Any], rows: dict[str, dict[str, Any]], face: str, battery: str, issuer: str
) -> None:
    """``c`` is the tier bypassing the cable fault makes of ``issuer``'s day-ahead schedule of ``battery`` for the
    12:00 hour (issued the day before, still in force where no real-time dispatch replaces it): caught when the
    outage is recorded, and the schedule cancelled over the dark half hour (as it stands: 0 kW, cancelled)."""
    assert (c["kind"], c["stage"], c["rule"], c["ders"]) == (
        "tier_bypassing_deenergised",
        "network_change",
        "most_restrictive_limit",
        [battery],
    )
    # the dark half hour, on the coarsest grid of what is checked (the hour where no real-time dispatch splits it)
    assert (c["interface"], c["interval_start"][11:16]) == (face, "12:00")
    assert c["interval_end"][11:16] in ("12:30", "13:00")
    ((o,),) = [c["outcomes"]]
    row = rows[o["subject"]]
    assert (row["market"], row["kind"], row["issuer"], _at(row)) == ("day_ahead", "schedule", issuer, "12:00")
    first = o["schedule"][0]
    assert (first["start"][11:16], first["end"][11:16], first["p_kw"]) == ("12:00", c["interval_end"][11:16], 0.0)
    assert (row["status"], row["p_kw"]) == ("cancelled", 0.0)


def _battery_conflicts(report: dict[str, Any], issuer: str) -> None:
    """``issuer`` (the TSO, or the LDC splitting its virtual resource) schedules the 800 kWh battery at 400 kW hour
    after hour, beyond its stored energy (``_energy_conflict``), and its 12:00 schedule meets the fault
    (``_dark_schedule_conflict``, once): every conflict is one of those."""
    rows = {i["id"]: i for i in report["instructions"]}
    dark = [c for c in report["conflicts"] if c["kind"] == "tier_bypassing_deenergised"]
    assert len(dark) == 1
    _dark_schedule_conflict(dark[0], rows, "south_ts", "battery_2", issuer)
    energy = [c for c in report["conflicts"] if c["kind"] != "tier_bypassing_deenergised"]
    assert energy
    for c in energy:
        _energy_conflict(c, rows, "south_ts", "battery_2", issuer)


def test_total_tso_day_dispatches_ders_directly_and_skips_the_dark_feeder(tmp_path: Path) -> None:
    report = _run(tmp_path, "total_tso")
    _outage_and_days(report)
    _envelope_refuses_the_dark_battery_offer(report)
    _battery_conflicts(report, "ieso")
    rt = _rt(report, "instructions")
    # the TSO dispatches every DER itself, to the party that offered it (the aggregator for pv_5)
    assert {(i["issuer"], i["resource_kind"], i["parent_id"]) for i in rt} == {("ieso", "der", None)}
    assert {i["recipient"] for i in rt if i["der"] == "pv_5"} == {"flexco"}
    # the dark battery's envelope is a constraint of the clearing: nothing to curtail afterwards
    assert report["curtailments"] == []
    assert _prices(report, "11:40") == {"south_ts": "30.00", "west_ts": "30.00"}
    assert _prices(report, "12:00") == {"south_ts": "60.00", "west_ts": "60.00"}  # pv_west is marginal
    at_noon = {i["der"]: i["p_kw"] for i in rt if _at(i) == "12:00"}
    assert at_noon == {"pv_5": 300.0, "pv_6": 250.0, "pv_west": 50.0}


def test_alt1_day_the_dso_check_cuts_the_dark_battery_and_the_tso_redispatches(tmp_path: Path) -> None:
    report = _run(tmp_path, "alt1_minimal_dso")
    _outage_and_days(report)
    _battery_conflicts(report, "ieso")
    # under alt 1 the TSO models DERs at the interface without distribution limits: the battery's offers go in
    assert report["offer_rejections"] == []
    cuts = [(_at(c), c["der"], c["curtailed_kw"], c["checked_by"]) for c in _rt(report, "curtailments")]
    # the TSO dispatches the battery at 12:00, 12:10 and 12:20; each time the LDC's check cuts it to its envelope
    assert cuts == [(t, "battery_2", 400.0, "dso") for t in DURING]
    assert all(c["reason"].startswith(DARK) for c in report["curtailments"])
    faces = {(_at(f), f["interface"]): f for f in _rt(report, "interfaces")}
    for t in DURING:
        assert faces[(t, "south_ts")]["shortfall_kw"] == pytest.approx(400.0)
        # the shortfall is made up by the TSO: 350 kW more at south_ts (pv_5, pv_6), 50 kW at west_ts (pv_west)
        redone = faces[(t, "south_ts")]["redispatched_kw"] + faces[(t, "west_ts")]["redispatched_kw"]
        assert redone == pytest.approx(400.0)
    assert faces[("11:40", "south_ts")]["shortfall_kw"] == 0.0
    assert faces[("12:30", "south_ts")]["shortfall_kw"] == 0.0
    assert {i["issuer"] for i in _rt(report, "instructions")} == {"ieso"}
    assert _prices(report, "12:00")["south_ts"] == "60.00"


def test_alt2_day_the_dso_virtual_resource_is_split_within_envelopes(tmp_path: Path) -> None:
    report = _run(tmp_path, "alt2_hybrid_dso", big=True)
    _outage_and_days(report)
    _envelope_refuses_the_dark_battery_offer(report)
    # the battery's schedules are the LDC's own allocations of one virtual resource: checked for its stored energy
    _battery_conflicts(report, "hydro_south")
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
    # 12:00 and 12:10: the virtual resource was offered with the battery in it (before the fault); the LDC's check
    # caps it at what its members may deliver now (550 kW), the TSO re-dispatches the rest to the CHP, and the
    # split leaves the dark battery out
    cuts = [(_at(c), c["resource_kind"], c["resource"], c["curtailed_kw"]) for c in report["curtailments"]]
    assert cuts == [(t, "dso_virtual", "south_ts", 50.0) for t in ("12:00", "12:10")]
    noon = {(i["der"] or i["resource_kind"]): i["p_kw"] for i in rt if _at(i) == "12:00"}
    assert noon == {"dso_virtual": 550.0, "pv_5": 300.0, "pv_6": 250.0, "chp_7": 50.0}
    assert all(i["split_shortfall_kw"] == 0.0 for i in _rt(report, "intervals"))


def test_total_dso_day_every_der_goes_through_the_dso(tmp_path: Path) -> None:
    report = _run(tmp_path, "total_dso")
    _outage_and_days(report)
    _envelope_refuses_the_dark_battery_offer(report)
    _battery_conflicts(report, "hydro_south")
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


# --- the whole day, every model -------------------------------------------------------------------------------


def _whole_day_outage(report: dict[str, Any], face: str, tag: str) -> None:
    """The dark battery at ``face`` gets nothing from 12:00 to 12:30 and is dispatched again from 12:30."""
    (outage,) = [o for o in report["outages"] if o["interface"] == face]
    assert outage["de_energised_ders"] == [f"battery_{tag}"]
    battery = {
        _at(i): i["p_kw"]
        for i in _rt(report, "instructions")
        if i["der"] == f"battery_{tag}" and i["p_kw"] > 0 and i["status"] != "cancelled"
    }
    minutes = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(0, 60, 5)]
    during = [t for t in minutes if "12:00" <= t < "12:30"]
    assert not [t for t in during if t in battery]
    assert battery["11:55"] == battery["12:30"] == 400.0
    assert len(battery) == 288 - len(during)  # dispatched in every other real-time interval of the day


def _whole_day_tso(report: dict[str, Any], rt: list[dict[str, Any]]) -> None:
    mine = [i for i in rt if i["interface"] == "tso_ts"]
    assert {(i["issuer"], i["resource_kind"], i["parent_id"]) for i in mine} == {("ieso", "der", None)}
    assert not [c for c in report["curtailments"] if c["interface"] == "tso_ts"]


def _whole_day_alt1(report: dict[str, Any], rt: list[dict[str, Any]]) -> None:
    mine = [i for i in rt if i["interface"] == "alt1_ts"]
    assert {(i["issuer"], i["resource_kind"], i["parent_id"]) for i in mine} == {("ieso", "der", None)}
    cuts = [c for c in _rt(report, "curtailments") if c["interface"] == "alt1_ts"]
    # the offers for 12:00, 12:05 and 12:10 were in before the fault; the alt 1 TSO's clearing also takes the
    # later ones (no distribution limits): the LDC's check cuts the battery in every interval of the outage
    assert [(_at(c), c["der"], c["curtailed_kw"]) for c in cuts] == [
        (f"12:{m:02d}", "battery_alt1", 400.0) for m in range(0, 30, 5)
    ]
    for at in {_at(c) for c in cuts}:
        faces = {f["interface"]: f for f in _rt(report, "interfaces") if _at(f) == at}
        assert faces["alt1_ts"]["shortfall_kw"] == pytest.approx(400.0)
        # the TSO makes up every interface's shortfall (alt 1's battery, and any virtual resource capped at
        # clearing), at other interfaces
        shortfall = sum(f["shortfall_kw"] for f in faces.values())
        assert sum(f["redispatched_kw"] for f in faces.values()) == pytest.approx(shortfall)


def _whole_day_split_by_the_dso(rt: list[dict[str, Any]], face: str, ders: set[str]) -> None:
    mine = [i for i in rt if i["interface"] == face]
    virtual = {i["id"] for i in mine if i["resource_kind"] == "dso_virtual"}
    assert virtual
    assert {(i["issuer"], i["recipient"]) for i in mine if i["resource_kind"] == "dso_virtual"} == {
        ("ieso", "hydro_south")
    }
    split = [i for i in mine if i["der"] in ders]
    assert {i["der"] for i in split} == ders
    assert all(i["issuer"] == "hydro_south" and i["parent_id"] in virtual for i in split)
    for parent in virtual:
        children = [i["p_kw"] for i in split if i["parent_id"] == parent]
        total = next(i["p_kw"] for i in mine if i["id"] == parent)
        assert sum(children) <= total + 1e-6


def _whole_day_alt2(report: dict[str, Any], rt: list[dict[str, Any]]) -> None:
    _whole_day_split_by_the_dso(rt, "alt2_ts", {"battery_alt2", "pv5_alt2", "pv6_alt2"})
    chp = [i for i in report["instructions"] if i["der"] == "chp_alt2"]
    assert chp
    assert {(i["issuer"], i["parent_id"]) for i in chp} == {("ieso", None)}


def _whole_day_dso(report: dict[str, Any], rt: list[dict[str, Any]]) -> None:
    _whole_day_split_by_the_dso(rt, "dso_ts", {"battery_dso", "pv5_dso", "pv6_dso"})
    mine = [i for i in rt if i["interface"] == "dso_ts" and i["issuer"] == "ieso"]
    assert {i["resource_kind"] for i in mine} == {"dso_virtual", "interface"}  # and the net schedule
    assert len([i for i in mine if i["resource_kind"] == "interface"]) == 288


@pytest.mark.slow
def test_a_whole_day_with_an_outage_under_every_model(tmp_path: Path) -> None:
    report = execute(parse_scenario(province_day()), tmp_path / "scenario.db").as_json()
    markets = [i["market"] for i in report["intervals"]]
    assert (markets.count("day_ahead"), markets.count("real_time")) == (24, 288)
    rt = _rt(report, "instructions")
    checks: dict[str, Callable[[dict[str, Any], list[dict[str, Any]]], None]] = {
        "total_tso": _whole_day_tso,
        "alt1_minimal_dso": _whole_day_alt1,
        "alt2_hybrid_dso": _whole_day_alt2,
        "total_dso": _whole_day_dso,
    }
    for model in MODELS:
        face, tag = f"{SHORT[model]}_ts", SHORT[model]
        assert report["models"][face] == model
        _whole_day_outage(report, face, tag)
        # a price at the interface in every interval of both markets
        prices = [p for p in report["prices"] if p["interface"] == face]
        assert len(prices) == 24 + 288
        assert all(p["energy_price_cad_per_mwh"] is not None for p in prices)
        checks[model](report, rt)
    # the batteries hold a day's energy: the only conflict at each interface is the day-ahead schedule of its
    # battery for the 12:00 hour meeting the fault, by the TSO (Total TSO, alt 1) or the LDC's split (alt 2,
    # Total DSO)
    rows = {i["id"]: i for i in report["instructions"]}
    issuers = {"tso_ts": "ieso", "alt1_ts": "ieso", "alt2_ts": "hydro_south", "dso_ts": "hydro_south"}
    assert sorted(c["interface"] for c in report["conflicts"]) == sorted(issuers)
    for c in report["conflicts"]:
        face = c["interface"]
        _dark_schedule_conflict(c, rows, face, f"battery_{face.removesuffix('_ts')}", issuers[face])
