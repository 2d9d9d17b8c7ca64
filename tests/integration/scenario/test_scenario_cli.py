"""``gridbridge scenario run``: the example scenarios run and write their report (the white paper's section 4.3
cases with their conflicts and the 100 kW curtailment); bad files are refused with the path of the offending
key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from day_scenarios import day_scenario
from typer.testing import CliRunner

from gridbridge.cli.main import app
from gridbridge.cli.scenario import execute
from gridbridge.domain.errors import ValidationFailed
from gridbridge.services.scenario_model import parse_scenario

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "scenarios"
OP_START = "2026-06-01T17:00:00Z"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_scenario_runs_and_writes_a_report(example: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["scenario", "run", str(EXAMPLES / example), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["instructions"]
    assert report["prices"]
    assert report["outages"]
    assert all(o["de_energised_points"] for o in report["outages"])
    assert all("de_energised_ders" in o for o in report["outages"])
    keys = {"intervals", "curtailments", "curtailment_requests", "interfaces", "messages_per_party", "conflicts"}
    assert keys <= report.keys()
    ids = {i["id"] for i in report["instructions"]}
    for c in report["conflicts"]:  # each with its one resolution, named for the reader
        assert c["rule"]
        assert c["resolution"]
        assert c["outcomes"]
        assert all(o["action"] and o["reason"] for o in c["outcomes"])
        assert set(c["instructions"]) <= ids
        assert c["interface"] in report["models"]


def test_db_option_keeps_the_database(tmp_path: Path) -> None:
    db, out = tmp_path / "kept.db", tmp_path / "r.json"
    example = str(sorted(EXAMPLES.glob("*.yaml"))[0])
    assert CliRunner().invoke(app, ["scenario", "run", example, "--out", str(out), "--db", str(db)]).exit_code == 0
    assert db.stat().st_size > 0
    again = CliRunner().invoke(app, ["scenario", "run", example, "--out", str(out), "--db", str(db)])
    assert again.exit_code == 2
    assert "[scenario.invalid] --db:" in again.stderr


def _dispatch(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "der": "battery_2",
        "p_kw": 300,
        "starts_at": "2026-06-01T16:00:00Z",
        "ends_at": "2026-06-01T18:00:00Z",
        "issued_at": "2026-06-01T09:00:00Z",
    }
    return {**base, **changes}


def _request(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "interface": "south_ts",
        "required_kw": 100,
        "starts_at": "2026-06-01T12:00:00Z",
        "ends_at": "2026-06-01T12:30:00Z",
    }
    return {**base, **changes}


ALL_CATEGORIES = ["distribution_safety", "bulk_reliability", "distribution_services", "wholesale_energy"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d.update(service_dispatches=[_dispatch(der="nobody")]), "service_dispatches.0.der"),
        (lambda d: d.update(service_dispatches=[_dispatch(p_kw=0)]), "service_dispatches.0.p_kw"),
        (lambda d: d.update(service_dispatches=[_dispatch(p_kw=450)]), "service_dispatches.0.p_kw"),
        (lambda d: d.update(service_dispatches=[_dispatch(p_kw=-450)]), "service_dispatches.0.p_kw"),
        (
            lambda d: d.update(service_dispatches=[_dispatch(starts_at="2026-06-01T16:02:00Z")]),
            "service_dispatches.0.starts_at",
        ),
        (lambda d: d.update(service_dispatches=[_dispatch(ends_at="2026-06-01T15:00:00Z")]), "service_dispatches.0"),
        (lambda d: d.update(service_dispatches=[_dispatch(issued_at="2026-06-01T17:00:00Z")]), "service_dispatches.0"),
        (lambda d: d.update(service_dispatches=[_dispatch(reason="")]), "service_dispatches.0.reason"),
        (lambda d: d.update(curtailment_requests=[_request()]), "curtailment_requests.0.interface"),
        (lambda d: d.update(curtailment_requests=[_request(interface="nowhere")]), "curtailment_requests.0.interface"),
        (lambda d: d.update(curtailment_requests=[_request(required_kw=0)]), "curtailment_requests.0.required_kw"),
        (
            lambda d: d.update(curtailment_requests=[_request(ends_at="2026-06-01T12:33:00Z")]),
            "curtailment_requests.0.ends_at",
        ),
        (
            lambda d: d["interfaces"][0].update(curtailment_procedure={"rule": "by_lottery"}),
            "interfaces.0.curtailment_procedure.rule",
        ),
        (
            lambda d: d["interfaces"][0].update(
                curtailment_procedure={"rule": "offer_price", "parameters": {"order": "random"}}
            ),
            "interfaces.0.curtailment_procedure.parameters.order",
        ),
        (
            lambda d: d["interfaces"][0].update(
                curtailment_procedure={"rule": "pro_rata_export", "dso_aggregated_pct": 120}
            ),
            "interfaces.0.curtailment_procedure.dso_aggregated_pct",
        ),
        (
            lambda d: d["interfaces"][0].update(conflict_policy={"priorities": ALL_CATEGORIES[:3]}),
            "interfaces.0.conflict_policy.priorities",
        ),
        (
            lambda d: d["interfaces"][1].update(
                conflict_policy={"priorities": ALL_CATEGORIES, "rules": {"tier_bypassing_envelope": "service_priority"}}
            ),
            "interfaces.1.conflict_policy.rules.tier_bypassing_envelope",
        ),
        (lambda d: d.update(responses="sometimes"), "responses"),
        (
            lambda d: d.update(
                operating_instructions=[
                    {"interface": "south_ts", "p_kw": 50, "starts_at": OP_START, "ends_at": "2026-06-01T16:00:00Z"}
                ]
            ),
            "operating_instructions.0",
        ),
        (lambda d: d["ders"][1].update(round_trip_efficiency=0.9), "ders.1.round_trip_efficiency"),  # a PV
        (lambda d: d["ders"][0].update(round_trip_efficiency=1.5), "ders.0.round_trip_efficiency"),
        (lambda d: d["ders"][1].update(interface="nowhere"), "ders.1.interface"),
        (lambda d: d["ders"][0].update(export_kw=-5), "ders.0.export_kw"),
        (lambda d: d["offers"][2].update(colour="red"), "offers.2.colour"),
        (lambda d: d["markets"]["requirements"].pop("real_time"), "markets"),
        (lambda d: d["outages"][0].update(ends_at="2026-06-01T11:00:00Z"), "outages.0"),
        (lambda d: d["interfaces"][0].update(model="total_chaos"), "interfaces.0.model"),
        (lambda d: d.update(start="2026-06-01T00:00:00"), "start"),
        (lambda d: d["offers"][0].update(profile=[1, 2]), "offers.0.profile"),
    ],
)
def test_bad_scenarios_name_the_offending_key(change: object, path: str) -> None:
    data = day_scenario("alt1_minimal_dso")
    change(data)  # type: ignore[operator]
    with pytest.raises(ValidationFailed) as caught:
        parse_scenario(data)
    assert caught.value.code == "scenario.invalid"
    assert caught.value.field == path


def test_the_cli_reports_a_bad_file_with_its_path(tmp_path: Path) -> None:
    data = day_scenario("total_tso")
    data["ders"][0]["point"] = "LV1.101 Bus 99"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["scenario", "run", str(bad), "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert "[scenario.invalid] ders.0.point: " in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    result = CliRunner().invoke(app, ["scenario", "run", str(broken), "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert "not valid YAML at line" in result.stderr
    assert not (tmp_path / "r.json").exists()


def test_total_dso_example_the_dso_allocates_the_tso_operating_instruction(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["scenario", "run", str(EXAMPLES / "total_dso.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    operating = [i for i in report["instructions"] if i["kind"] == "operating"]
    (parent,) = [i for i in operating if i["parent_id"] is None]
    assert (parent["issuer"], parent["recipient"], parent["resource"], parent["p_kw"]) == (
        "ieso",
        "city_dso",
        "city_ts",
        150.0,
    )
    children = [i for i in operating if i["parent_id"] == parent["id"]]
    assert children
    assert {i["issuer"] for i in children} == {"city_dso"}
    assert sum(i["p_kw"] for i in children) == pytest.approx(150.0)
    # under Total DSO the TSO instructs only the DSO at the interface
    assert {i["recipient"] for i in report["instructions"] if i["issuer"] == "ieso"} == {"city_dso"}


def test_offers_may_name_resources_registered_outside_the_scenario_only_when_told() -> None:
    data = day_scenario("alt1_minimal_dso")
    registered = [d["name"] for d in data.pop("ders")]
    with pytest.raises(ValidationFailed) as caught:
        parse_scenario(data)
    assert caught.value.field == "offers.0.resource"
    assert "unknown resource 'battery_2'" in caught.value.message
    scenario = parse_scenario(data, registered=registered)
    assert scenario.ders == []
    assert {o.resource for o in scenario.offers} <= set(registered)


def _white_paper_report(tmp_path: Path) -> tuple[dict[str, Any], str]:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["scenario", "run", str(EXAMPLES / "white_paper_4_3.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_white_paper_example_catches_each_conflict_and_shares_the_100_kw_curtailment(tmp_path: Path) -> None:
    """examples/scenarios/white_paper_4_3.yaml: the cases of the white paper's section 4.3 in one day-ahead day
    (times UTC; 12 pm EST is 17:00 UTC)."""
    report, output = _white_paper_report(tmp_path)
    rows = {i["id"]: i for i in report["instructions"]}
    by_kind = {c["kind"]: c for c in report["conflicts"]}
    assert sorted(by_kind) == ["double_counting", "hidden_coupling_energy", "tier_bypassing_deenergised"]
    assert len(report["conflicts"]) == 3
    for title in ("Conflicts (3 in all)", "hidden_coupling_energy", "Curtailment requests", "pro_rata_export"):
        assert title in output

    # 1. hidden coupling: the IESO's 12-4 pm schedules and the LDC's 4-8 pm deferral dispatch of the 4-hour
    # battery; caught when the LDC dispatches, distribution services outrank wholesale energy at metro_ts
    coupling = by_kind["hidden_coupling_energy"]
    assert (coupling["interface"], coupling["ders"], coupling["stage"], coupling["rule"]) == (
        "metro_ts",
        ["battery_4h"],
        "instruction_issue",
        "service_priority",
    )
    assert set(coupling["parties"]) == {"ieso", "metro_hydro", "storage_co"}
    assert coupling["figures"]["e_initial_kwh"] == pytest.approx(4000.0)  # even full at noon it cannot do both
    assert coupling["figures"]["max_shortfall_kwh"] == pytest.approx(4000.0)
    outcomes = {
        (rows[o["subject"]]["kind"], rows[o["subject"]]["interval_start"][11:16]): o for o in coupling["outcomes"]
    }
    assert {k: o["action"] for k, o in outcomes.items()} == {
        ("schedule", "17:00"): "cancelled",
        ("schedule", "18:00"): "cancelled",
        ("schedule", "19:00"): "cancelled",
        ("schedule", "20:00"): "cancelled",
        ("distribution_service", "21:00"): "kept",
    }
    assert {(o["issuer"], o["original_p_kw"]) for o in coupling["outcomes"]} == {
        ("ieso", 1000.0),
        ("metro_hydro", 1000.0),
    }
    assert all("distribution_services" in o["reason"] for o in coupling["outcomes"])
    battery = [i for i in report["instructions"] if i["der"] == "battery_4h"]
    assert {(i["kind"], i["status"], i["p_kw"]) for i in battery} == {
        ("schedule", "cancelled", 0.0),
        ("distribution_service", "accepted", 1000.0),
    }
    (deferral,) = [i for i in battery if i["kind"] == "distribution_service"]
    assert (deferral["issuer"], deferral["recipient"], deferral["interval_end"]) == (
        "metro_hydro",
        "storage_co",
        "2026-06-02T01:00:00+00:00",
    )

    # 2. tier bypassing: the IESO's 1-2 pm schedule of chp_north went out before the LDC planned maintenance that
    # de-energises its point; recording the maintenance checks the instructions at the dark points and cancels it
    bypass = by_kind["tier_bypassing_deenergised"]
    assert (bypass["interface"], bypass["ders"], bypass["stage"], bypass["rule"]) == (
        "north_ts",
        ["chp_north"],
        "network_change",
        "most_restrictive_limit",
    )
    assert bypass["detected_at"] == "2026-06-01T06:30:00+00:00"
    assert bypass["binding_limit"] == "connection point north_ts/LV1.101 Bus 2 de-energised: 0 kW"
    (cut,) = bypass["outcomes"]
    assert (cut["issuer"], cut["recipient"], cut["action"], cut["original_p_kw"]) == (
        "ieso",
        "farm_co",
        "cancelled",
        600.0,
    )
    chp = {
        i["interval_start"][11:16]: (i["p_kw"], i["status"]) for i in report["instructions"] if i["der"] == "chp_north"
    }
    assert chp == {
        "16:00": (600.0, "accepted"),
        "17:00": (600.0, "accepted"),
        "18:00": (0.0, "cancelled"),
        "19:00": (600.0, "accepted"),
    }
    (outage,) = report["outages"]
    assert outage["de_energised_ders"] == ["chp_north"]
    assert outage["recorded_at"] == "2026-06-01T06:30:00+00:00"

    # 3. double counting: pv_n1's 150 kW offered as energy on its own and as reserve through vpp_north; the
    # flag tells settlement which commitment is firm
    double = by_kind["double_counting"]
    assert (double["interface"], double["ders"], double["stage"]) == ("north_ts", ["pv_n1"], "offer_submission")
    assert double["interval_start"] == "2026-06-01T14:00:00+00:00"
    assert double["figures"]["max_double_counted_kw"] == pytest.approx(150.0)
    assert {(o["subject"]["resource"], o["action"]) for o in double["outcomes"]} == {
        ("vpp_north", "kept"),  # operating reserve is bulk-system reliability: it outranks wholesale energy
        ("pv_n1", "cancelled"),
    }
    assert report["offer_rejections"] == []

    # 4. the 100 kW curtailment on feeder LV1.101 Line 3, half from the LDC's aggregated DERs, half from the direct
    # participant, pro rata to export; every party gets its share with the rule
    (request,) = report["curtailment_requests"]
    assert (request["interface"], request["required_kw"], request["dso_aggregated_kw"], request["direct_kw"]) == (
        "metro_ts",
        100.0,
        50.0,
        50.0,
    )
    assert request["rule"] == "v1: pro_rata_export; DSO-aggregated 50 %, direct 50 %"
    shares = {s["der"]: (s["group"], s["share_kw"]) for s in request["shares"]}
    homes = ("pv_home_7", "pv_home_12", "pv_home_14")
    assert shares == {
        **{h: ("dso_aggregated", pytest.approx(50 / 3, abs=2e-3)) for h in homes},  # whole watts: 16.667 or 16.666
        "pv_direct": ("direct", 50.0),
    }
    assert sum(shares[h][1] for h in homes) == pytest.approx(50.0)
    assert all(s["export_source"] == "instructions" and "pro_rata_export" in s["reason"] for s in request["shares"])
    assert {n["party"]: n["share_kw"] for n in request["notices"]} == {"homes": 50.0, "solar_park": 50.0}
    reductions = [i for i in report["instructions"] if i["kind"] == "operating" and i["issuer"] == "metro_hydro"]
    assert sum(i["p_kw"] for i in reductions if i["der"]) == pytest.approx(-100.0)
    parents = {i["id"] for i in reductions if i["parent_id"] is None}
    assert {i["parent_id"] for i in reductions if i["der"]} == parents


def test_a_curtailment_at_an_unknown_point_is_refused_with_its_path(tmp_path: Path) -> None:
    data = day_scenario("alt1_minimal_dso")
    data["markets"] = {"requirements": {}}
    data["interfaces"][0]["curtailment_procedure"] = {"rule": "pro_rata_capacity"}
    data["curtailment_requests"] = [_request(points=["LV1.101 Bus 5", "LV1.101 Bus 99"])]
    with pytest.raises(ValidationFailed) as caught:
        execute(parse_scenario(data), tmp_path / "scenario.db")
    assert caught.value.code == "scenario.invalid"
    assert caught.value.field == "curtailment_requests.0.points.1"
