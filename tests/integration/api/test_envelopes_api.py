"""The envelope routes over HTTP on the real app and store: the LDC configures, runs and publishes; each role
reads only its envelopes; an outage changes them at once and notifies the affected; hosting capacity in the
interconnection review; bad input answers problem+json and changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api_province import client_for
from fastapi.testclient import TestClient

from envelope_province import FEEDER_LINE, FEEDER_POINTS, at, point_ids
from registry_province import T0, Province, build_province

PROBLEM = "application/problem+json"
SETTINGS = {"interval_minutes": 15, "horizon_hours": 1}


def _headers(province: Province, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {province.tokens[who]}"}


def _setup(database_url: str) -> tuple[Province, TestClient]:
    province = build_province(database_url)
    client = client_for(province)
    for tdi, ldc in (("tdi_a", "ldc_a"), ("tdi_b", "ldc_b")):
        answer = client.patch(
            f"/tdis/{province.tdis[tdi]}/envelope-settings", json=SETTINGS, headers=_headers(province, ldc)
        )
        assert answer.status_code == 200, answer.json()
    return province, client


def _get(client: TestClient, province: Province, who: str, url: str, **params: Any) -> Any:
    answer = client.get(url, params=params, headers=_headers(province, who))
    assert answer.status_code == 200, answer.json()
    return answer.json()


def test_the_ldc_runs_and_publishes_and_each_role_reads_its_own(database_url: str) -> None:
    province, client = _setup(database_url)
    tdi_a = province.tdis["tdi_a"]
    ldc = _headers(province, "ldc_a")
    created = client.post(f"/tdis/{tdi_a}/envelope-runs", json={}, headers=ldc)
    assert created.status_code == 201, created.json()
    run = created.json()["run"]
    assert (run["status"], run["verification"], run["intervals"], run["interval_minutes"]) == (
        "computed",
        "verified",
        4,
        15,
    )
    assert created.json()["published_envelopes"] == 0
    detail = _get(client, province, "tso", f"/envelope-runs/{run['id']}")
    log = detail["log"]
    assert log["policy"] == "equal"
    assert log["network_source"] == "simbench:1-LV-rural1--0-sw"
    assert log["gridbridge_version"]
    assert log["settings"]["v_min_pu"] == 0.95
    assert log["blocks"][0]["engine_log"]["inputs"]["connection_points"] == 13
    assert _get(client, province, "agg_1", "/envelopes") == []  # drafts are not published

    published = client.post(f"/envelope-runs/{run['id']}/publish", headers=ldc)
    assert published.status_code == 200, published.json()
    assert published.json()["published_envelopes"] == 13 * 4
    assert published.json()["run"]["status"] == "published"

    a = point_ids(province, "tdi_a")
    mine = {a["LV1.101 Bus 2"], a["LV1.101 Bus 3"]}  # agg_1 represents a2 and a3 on tdi_a
    rows = _get(client, province, "agg_1", "/envelopes")
    assert {r["connection_point_id"] for r in rows} == mine
    assert len(rows) == 8
    assert all(r["version"] == 1 and r["expiry"] == r["interval_end"] for r in rows)
    assert _get(client, province, "agg_2", "/envelopes") == []
    assert _get(client, province, "ldc_b", "/envelopes") == []
    assert len(_get(client, province, "ldc_a", "/envelopes")) == 52
    limits = _get(client, province, "agg_1", "/envelopes/in-force", at=at(5).isoformat())
    by_point = {row["connection_point_id"]: row for row in limits}
    assert {by_point[p]["export_source"] for p in mine} == {"envelope"}
    others = [row for p, row in by_point.items() if p not in mine]
    assert [(r["export_source"], r["p_export_max_kw"]) for r in others] == [("default", 1.5)]  # b2 on tdi_b
    runs = _get(client, province, "regulator", f"/tdis/{tdi_a}/envelope-runs")
    assert [r["id"] for r in runs] == [run["id"]]
    assert "log" not in runs[0]


def test_an_outage_over_the_api_zeroes_at_once_and_notifies_the_affected(database_url: str) -> None:
    province, client = _setup(database_url)
    tdi_a = province.tdis["tdi_a"]
    ldc = _headers(province, "ldc_a")
    assert client.post(f"/tdis/{tdi_a}/envelope-runs", json={"publish": True}, headers=ldc).status_code == 201
    body = {
        "kind": "unplanned_outage",
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(hours=2)).isoformat(),
        "open_elements": [FEEDER_LINE],
        "reason": "cable fault",
    }
    answer = client.post(f"/tdis/{tdi_a}/network-events", json=body, headers=ldc)
    assert answer.status_code == 201, answer.json()
    recorded = answer.json()
    a = point_ids(province, "tdi_a")
    assert set(recorded["de_energised_point_ids"]) == {a[n] for n in FEEDER_POINTS}
    assert recorded["zeroed_envelopes"] == 3 * 4 + 3
    assert recorded["queued_run_id"]
    names = {v: k for k, v in province.ids.items()}
    assert {names[i] for i in recorded["notified_participant_ids"]} == {"ldc_a", "tso", "owner_1", "agg_1"}

    bus2 = a["LV1.101 Bus 2"]
    current = _get(client, province, "agg_1", "/envelopes", connection_point_id=bus2)
    assert len(current) == 5  # four zero versions of the published hour and one for the hour after
    assert {(r["p_export_max_kw"], r["p_import_max_kw"], r["binding_export"]) for r in current} == {
        (0.0, 0.0, "de-energised")
    }
    history = _get(client, province, "agg_1", "/envelopes", connection_point_id=bus2, include_superseded="true")
    assert sorted(r["version"] for r in history if r["interval_end"] <= at(60).isoformat().replace("+00:00", "Z")) == [
        1,
        1,
        1,
        1,
        2,
        2,
        2,
        2,
    ]
    limits = _get(client, province, "owner_1", "/envelopes/in-force", at=at(10).isoformat())
    assert {(r["connection_point_id"], r["p_export_max_kw"]) for r in limits if r["connection_point_id"] == bus2} == {
        (bus2, 0.0)
    }
    notes = _get(client, province, "agg_1", "/network-notifications")
    assert len(notes) == 1
    assert notes[0]["der_ids"] == [province.ders["a2"]]
    assert notes[0]["event_id"] == recorded["event"]["id"]
    for who, count in (("owner_1", 1), ("tso", 1), ("ldc_a", 1), ("owner_2", 0), ("agg_2", 0), ("ldc_b", 0)):
        assert len(_get(client, province, who, "/network-notifications")) == count, who
    assert len(_get(client, province, "regulator", "/network-notifications")) == 4
    events = _get(client, province, "tso", f"/tdis/{tdi_a}/network-events", active_at=at(30).isoformat())
    assert [e["id"] for e in events] == [recorded["event"]["id"]]
    refused = client.get(f"/tdis/{tdi_a}/network-events", headers=_headers(province, "agg_1"))
    assert refused.status_code == 403
    queued = _get(client, province, "ldc_a", f"/tdis/{tdi_a}/envelope-runs", status="queued")
    assert [r["id"] for r in queued] == [recorded["queued_run_id"]]


def test_hosting_capacity_in_the_interconnection_review(sqlite_url: str) -> None:
    province, client = _setup(sqlite_url)
    free_point = point_ids(province, "tdi_a")["LV1.101 Bus 14"]
    owner, ldc = _headers(province, "owner_1"), _headers(province, "ldc_a")
    ids = {}
    for name, export_kw in (("big-pv", 400.0), ("small-pv", 5.0)):
        filed = client.post(
            "/ders",
            json={
                "name": name,
                "technology": "pv",
                "p_export_kw": export_kw,
                "p_import_kw": 0,
                "connection_point_id": free_point,
            },
            headers=owner,
        )
        assert filed.status_code == 201, filed.json()
        ids[name] = filed.json()["id"]
        assert client.post(f"/ders/{ids[name]}/review/start", headers=ldc).status_code == 200

    big = client.post(f"/ders/{ids['big-pv']}/hosting-capacity", headers=ldc)
    assert big.status_code == 201, big.json()
    assessed = big.json()
    assert assessed["exceeds"] is True
    assert assessed["binding_element"] == assessed["binding_export"]
    assert assessed["binding_element"].startswith(("bus:", "line:", "trafo:"))
    assert 5.0 < assessed["p_export_max_kw"] < 400.0
    assert assessed["recorded"] is True
    small = _get(client, province, "regulator", f"/ders/{ids['small-pv']}/hosting-capacity")
    assert (small["exceeds"], small["binding_element"], small["recorded"]) == (False, None, False)
    assert small["p_export_max_kw"] == assessed["p_export_max_kw"]  # the same point, the same study
    for who, status in (("agg_1", 403), ("tso", 403), ("owner_1", 403), ("ldc_b", 404)):
        answer = client.get(f"/ders/{ids['big-pv']}/hosting-capacity", headers=_headers(province, who))
        assert answer.status_code == status, (who, answer.json())

    decided = client.post(
        f"/ders/{ids['big-pv']}/review/decision",
        json={"decision": "approved", "reason": "approved at the hosting capacity", "export_limit_kw": 50.0},
        headers=ldc,
    )
    assert decided.status_code == 200, decided.json()
    assert decided.json()["reviews"][0]["hosting_capacity_kw"] == assessed["p_export_max_kw"]
    linked = _get(client, province, "ldc_a", f"/ders/{ids['big-pv']}/hosting-capacity")
    assert linked["recorded"] is False  # a GET computes afresh; the recorded one is linked to the review
    with province.platform.unit_of_work() as uow:
        latest = uow.envelopes.hosting.latest(ids["big-pv"])
        assert latest is not None
        assert latest.review_id is not None
        audit = [e for e in uow.audit.entries() if e.action == "der.review.approved" and e.entity_id == ids["big-pv"]]
    assert audit[0].after is not None
    assert audit[0].after["hosting_exceeded"] is True
    assert audit[0].after["hosting_binding_element"] == assessed["binding_element"]


def test_bad_input_answers_problem_json_and_changes_nothing(sqlite_url: str) -> None:
    province, client = _setup(sqlite_url)
    tdi_a = province.tdis["tdi_a"]
    ldc = _headers(province, "ldc_a")

    def problem(answer: Any, status: int, code: str, field: str) -> None:
        assert answer.status_code == status, answer.json()
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert (answer.json()["code"], answer.json()["field"]) == (code, field), answer.json()

    problem(
        client.patch(f"/tdis/{tdi_a}/envelope-settings", json={"v_min_pu": 1.1}, headers=ldc),
        422,
        "envelopes.band_invalid",
        "v_min_pu",
    )
    problem(
        client.patch(f"/tdis/{tdi_a}/envelope-settings", json={"horizon_hours": 0}, headers=ldc),
        422,
        "envelopes.interval_invalid",
        "horizon_hours",
    )
    problem(
        client.patch(f"/tdis/{tdi_a}/envelope-settings", json={"colour": "red"}, headers=ldc),
        422,
        "validation.request",
        "colour",
    )
    assert _get(client, province, "ldc_a", f"/tdis/{tdi_a}/envelope-settings")["v_min_pu"] == 0.95
    problem(
        client.post(f"/tdis/{tdi_a}/envelope-runs", json={"start": at(7).isoformat(), "publish": True}, headers=ldc),
        422,
        "envelopes.interval_invalid",
        "start",
    )
    problem(
        client.post(f"/tdis/{tdi_a}/envelope-runs", json={"start": "2026-05-04T12:00:00"}, headers=ldc),
        422,
        "validation.request",
        "start",
    )
    event = {
        "kind": "planned_outage",
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(hours=1)).isoformat(),
        "open_elements": ["LV1.101 Line 99"],
    }
    problem(
        client.post(f"/tdis/{tdi_a}/network-events", json=event, headers=ldc),
        422,
        "envelopes.unknown_element",
        "open_elements",
    )
    problem(
        client.post(
            f"/tdis/{tdi_a}/network-events",
            json={**event, "open_elements": [FEEDER_LINE], "ends_at": event["starts_at"]},
            headers=ldc,
        ),
        422,
        "network_state.window_invalid",
        "ends_at",
    )
    problem(
        client.post(
            f"/tdis/{tdi_a}/network-events",
            json={
                **event,
                "kind": "derate",
                "open_elements": [],
                "derates": [{"element": FEEDER_LINE, "rating_pct": -5}],
            },
            headers=ldc,
        ),
        422,
        "network_state.event_invalid",
        "derates",
    )
    assert _get(client, province, "ldc_a", f"/tdis/{tdi_a}/envelope-runs") == []
    assert _get(client, province, "ldc_a", f"/tdis/{tdi_a}/network-events") == []
    assert _get(client, province, "regulator", "/envelopes") == []
    assert _get(client, province, "regulator", "/network-notifications") == []
