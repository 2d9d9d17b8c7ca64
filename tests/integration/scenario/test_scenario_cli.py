"""``gridbridge scenario run``: the example scenarios run and write their report; bad files are refused with the
path of the offending key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from day_scenarios import day_scenario
from typer.testing import CliRunner

from gridbridge.cli.main import app
from gridbridge.domain.errors import ValidationFailed
from gridbridge.services.scenario_model import parse_scenario

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "scenarios"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_scenario_runs_and_writes_a_report(example: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["scenario", "run", str(EXAMPLES / example), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["conflicts"] == []
    assert report["instructions"]
    assert report["prices"]
    assert report["outages"]
    assert {"intervals", "curtailments", "interfaces", "messages_per_party"} <= report.keys()


def test_db_option_keeps_the_database(tmp_path: Path) -> None:
    db, out = tmp_path / "kept.db", tmp_path / "r.json"
    example = str(sorted(EXAMPLES.glob("*.yaml"))[0])
    assert CliRunner().invoke(app, ["scenario", "run", example, "--out", str(out), "--db", str(db)]).exit_code == 0
    assert db.stat().st_size > 0
    again = CliRunner().invoke(app, ["scenario", "run", example, "--out", str(out), "--db", str(db)])
    assert again.exit_code == 2
    assert "[scenario.invalid] --db:" in again.stderr


@pytest.mark.parametrize(
    ("change", "path"),
    [
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
