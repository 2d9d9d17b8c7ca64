"""Transparent curtailment and the open-access report over HTTP: the white paper's 100 kW example."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from api_province import client_for, count_rows

from curtailment_province import build_curtailment_province
from gridbridge.store.curtailment_tables import curtailment_events, curtailment_procedures
from gridbridge.store.market_tables import instructions
from gridbridge.store.tables import audit_records


def _headers(province: Any, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {province.tokens[who]}"}


def test_publish_request_read_and_report(database_url: str) -> None:
    province, start, end = build_curtailment_province(database_url)
    client = client_for(province)
    tdi = province.tdis["tdi_a"]
    ldc = _headers(province, "ldc_a")

    published = client.post(f"/tdis/{tdi}/curtailment-procedures", json={"rule": "pro_rata_export"}, headers=ldc)
    assert published.status_code == 201, published.json()
    assert published.json()["description"] == "v1: pro_rata_export; all candidates ranked together"
    in_force = client.get(f"/tdis/{tdi}/curtailment-procedure", headers=_headers(province, "owner_2"))
    assert in_force.json()["version"] == 1

    body = {"required_kw": 100, "window_start": start.isoformat(), "window_end": end.isoformat(), "reason": "F1"}
    done = client.post(f"/tdis/{tdi}/curtailments", json=body, headers=ldc)
    assert done.status_code == 201, done.json()
    event = done.json()
    keys = {v: k for k, v in province.ders.items()}
    assert {keys[s["der_id"]]: s["share_kw"] for s in event["shares"]} == {"A": 20, "B": 13.333, "C": 50, "D": 16.667}
    assert (event["dso_aggregated_kw"], event["direct_kw"]) == (33.333, 66.667)

    # each party reads only its own share, with the rule that produced it
    for who, der, kw in (("owner_1", "C", 50.0), ("owner_2", "D", 16.667)):
        (mine,) = client.get("/curtailments", headers=_headers(province, who)).json()
        assert [(keys[s["der_id"]], s["share_kw"]) for s in mine["shares"]] == [(der, kw)]
        (notice,) = mine["notices"]
        assert notice["share_kw"] == kw
        assert "pro_rata_export" in notice["message"]
        assert notice["rule"] == "v1: pro_rata_export; all candidates ranked together"
    assert client.get(f"/curtailments/{event['id']}", headers=_headers(province, "agg_2")).status_code == 404
    assert client.get(f"/curtailments/{event['id']}", headers=_headers(province, "regulator")).json() == event

    report = client.get(
        f"/dsos/{province.ids['ldc_a']}/open-access-report",
        params={"from": start.isoformat(), "to": end.isoformat()},
        headers=_headers(province, "regulator"),
    )
    assert report.status_code == 200, report.json()
    affiliated, third = report.json()["rows"]
    assert (affiliated["capacity_share"], third["capacity_share"]) == pytest.approx((0.3, 0.7))
    assert third["curtailed_kwh"] == pytest.approx(33.3335)
    assert third["curtailment_share_ratio"] == pytest.approx(0.95238, abs=1e-4)
    assert third["dispatch_share"] is None  # nothing dispatched: undefined, not a number
    refused = client.get(f"/dsos/{province.ids['ldc_a']}/open-access-report", headers=_headers(province, "agg_1"))
    assert refused.status_code == 403


def test_bad_input_is_refused_with_problem_codes_and_stores_nothing(sqlite_url: str) -> None:
    province, start, end = build_curtailment_province(sqlite_url)
    client = client_for(province)
    tdi = province.tdis["tdi_a"]
    ldc = _headers(province, "ldc_a")
    audit_before = count_rows(province, audit_records)

    for body, code in (
        (
            {"rule": "pro_rata_export", "parameters": {"order": "highest_first"}},
            "conflicts.curtailment_unknown_parameter",
        ),
        ({"rule": "fastest_first"}, "conflicts.curtailment_unknown_rule"),
        ({"rule": "connection_order", "parameters": {"order": "random"}}, "conflicts.curtailment_bad_parameter"),
        ({"rule": "pro_rata_export", "dso_aggregated_pct": 120}, "curtailment.bad_split"),
    ):
        answer = client.post(f"/tdis/{tdi}/curtailment-procedures", json=body, headers=ldc)
        assert answer.status_code == 422, answer.json()
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == code
    assert count_rows(province, curtailment_procedures) == 0

    assert client.post(f"/tdis/{tdi}/curtailment-procedures", json={"rule": "pro_rata_export"}, headers=ldc).is_success
    audit_after_publish = count_rows(province, audit_records)
    assert audit_after_publish == audit_before + 1
    window = {"window_start": start.isoformat(), "window_end": end.isoformat()}
    beyond = client.post(f"/tdis/{tdi}/curtailments", json={"required_kw": 400, **window}, headers=ldc)
    assert beyond.status_code == 422
    assert beyond.json()["code"] == "curtailment.beyond_available"
    assert beyond.json()["details"]["available_kw"] == 300
    misaligned = {"window_start": (start + timedelta(minutes=2)).isoformat(), "window_end": end.isoformat()}
    assert (
        client.post(f"/tdis/{tdi}/curtailments", json={"required_kw": 10, **misaligned}, headers=ldc).json()["code"]
        == "curtailment.window_misaligned"
    )
    assert (
        client.post(f"/tdis/{tdi}/curtailments", json={"required_kw": 0, **window}, headers=ldc).json()["code"]
        == "curtailment.bad_reduction"
    )
    other = client.post(
        f"/tdis/{tdi}/curtailments", json={"required_kw": 10, **window}, headers=_headers(province, "ldc_b")
    )
    assert other.status_code == 403
    assert count_rows(province, curtailment_events) == 0
    assert count_rows(province, instructions) == 0
    assert count_rows(province, audit_records) == audit_after_publish
