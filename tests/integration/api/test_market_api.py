"""The coordination cycle over HTTP: offers with per-item acknowledgement, the DSO's virtual resource, clearing,
instructions, responses, splits, escalation and notifications, with problem+json codes and idempotent replays.
(Who may call each route is in test_permission_matrix.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from api_province import client_for
from fastapi.testclient import TestClient

from gridbridge.domain.roles import Service
from market_province import build_market_province, rt_interval
from registry_province import Province, enrol

PROBLEM = "application/problem+json"


@pytest.fixture
def world(sqlite_url: str) -> Iterator[tuple[Province, TestClient]]:
    p = build_market_province(sqlite_url)
    with client_for(p) as client:
        yield p, client


def auth(p: Province, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {p.tokens[who]}"}


def offer(p: Province, key: str, start: datetime, segments: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    body = {
        "resource_kind": "der",
        "resource_id": p.ders[key],
        "market": "real_time",
        "interval_start": start.isoformat(),
        "segments": [{"price_cad_per_mwh": price, "quantity_kw": kw} for price, kw in segments],
    }
    return body | extra


def test_offers_are_acknowledged_item_by_item_and_replayed_idempotently(
    world: tuple[Province, TestClient],
) -> None:
    p, client = world
    iv = rt_interval(p)
    items = [
        offer(p, "t1", iv, [("20", "200"), ("30.50", "300")]),
        offer(p, "t1", iv, [("30", "10"), ("20", "10")]),
        offer(p, "t3", iv, [("20", "10")]),
    ]
    headers = auth(p, "owner_1") | {"Idempotency-Key": "batch-1"}
    first = client.post("/offers", json={"items": items}, headers=headers)
    assert first.status_code == 200, first.json()
    body = first.json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    clipped, non_monotonic, foreign = body["items"]
    assert clipped["code"] == "offers.clipped_to_envelope"
    assert (clipped["offered_kw"], clipped["accepted_kw"], clipped["revision"]) == ("500", "300.000", 1)
    assert clipped["binding_envelope"] == f"static_limit:der/{p.ders['t1']}/export_limit_kw"
    assert (non_monotonic["status"], non_monotonic["code"], non_monotonic["field"]) == (
        "rejected",
        "offers.non_monotonic",
        "segments",
    )
    assert foreign["code"] == "offers.not_represented"
    replay = client.post("/offers", json={"items": items}, headers=headers)
    assert replay.json() == body
    assert replay.headers["Idempotent-Replayed"] == "true"

    listed = client.get("/offers", headers=auth(p, "owner_1")).json()
    assert [(o["revision"], o["clipped"], o["segments"][-1]) for o in listed] == [
        (1, True, {"price_cad_per_mwh": "30.50", "quantity_kw": "100.000"})
    ]
    second = client.post("/offers", json={"items": items[:1]}, headers=auth(p, "owner_1")).json()
    offer_id = second["items"][0]["offer_id"]
    detail = client.get(f"/offers/{offer_id}", headers=auth(p, "owner_1")).json()
    assert [v["revision"] for v in detail["versions"]] == [1, 2]
    everything = client.get("/offers", params={"include_superseded": True}, headers=auth(p, "owner_1")).json()
    assert len(everything) == 2
    assert client.get(f"/offers/{offer_id}", headers=auth(p, "owner_2")).json()["code"] == "not_found"


def test_a_batch_without_any_accepted_item_is_refused_with_every_acknowledgement(
    world: tuple[Province, TestClient],
) -> None:
    p, client = world
    iv = rt_interval(p)
    late = iv - timedelta(minutes=60)
    response = client.post(
        "/offers",
        json={"items": [offer(p, "t2", late, [("20", "10")]), offer(p, "t2", iv, [("2500", "10")])]},
        headers=auth(p, "owner_2"),
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["code"] == "offers.batch_rejected"
    assert [i["code"] for i in problem["details"]["items"]] == ["offers.gate_closed", "offers.price_above_cap"]
    assert client.get("/offers", headers=auth(p, "regulator")).json() == []
    schema = client.post("/offers", json={"items": [offer(p, "t2", iv, [("NaN", "10")])]}, headers=auth(p, "owner_2"))
    assert (schema.status_code, schema.json()["code"]) == (422, "validation.request")
    naive = offer(p, "t2", iv, [("20", "10")]) | {"interval_start": "2026-05-04T13:00:00"}
    response = client.post("/offers", json={"items": [naive]}, headers=auth(p, "owner_2"))
    assert response.json()["field"] == "items.0.interval_start"


def test_the_cycle_over_http(world: tuple[Province, TestClient]) -> None:
    p, client = world
    p.clock.advance(timedelta(days=2))
    enrol(p, "agg_1", "vpp_1", ["a2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_a"])
    iv = rt_interval(p)
    client.post("/offers", json={"items": [offer(p, "a1", iv, [("10", "40")])]}, headers=auth(p, "owner_1"))
    client.post("/offers", json={"items": [offer(p, "big_a", iv, [("40", "1500")])]}, headers=auth(p, "owner_2"))
    agg = {
        "resource_kind": "aggregation",
        "resource_id": p.aggregations["vpp_1"],
        "market": "real_time",
        "interval_start": iv.isoformat(),
        "segments": [{"price_cad_per_mwh": "30", "quantity_kw": "60"}],
    }
    client.post("/offers", json={"items": [agg]}, headers=auth(p, "agg_1"))
    dso = client.post(
        f"/tdis/{p.tdis['tdi_a']}/dso-offers",
        json={"market": "real_time", "interval_start": iv.isoformat()},
        headers=auth(p, "ldc_a"),
    )
    assert dso.status_code == 201, dso.json()
    (virtual,) = dso.json()
    # a1 and vpp_1: at 60 kW the aggregation is below tdi_a's 1,000 kW threshold, so the DSO carries it too
    assert (virtual["resource_kind"], virtual["route"], len(virtual["source_offer_ids"])) == ("dso_virtual", "tso", 2)

    run_body = {
        "market": "real_time",
        "interval_start": iv.isoformat(),
        "energy_requirement_kw": 1000,
        "forecasts": [{"tdi_id": p.tdis["tdi_a"], "load_kw": 3000}],
    }
    early = client.post("/clearing-runs", json=run_body, headers=auth(p, "tso"))
    assert (early.status_code, early.json()["code"]) == (409, "clearing.gate_open")
    p.clock.set(iv - timedelta(minutes=5))
    created = client.post("/clearing-runs", json=run_body, headers=auth(p, "tso"))
    assert created.status_code == 201, created.json()
    run = created.json()
    assert run["system_energy_price_cad_per_mwh"] == "40.00"
    face = next(f for f in run["interfaces"] if f["tdi_id"] == p.tdis["tdi_a"])
    assert (face["injection_kw"], face["net_flow_kw"], face["reverse_flow"]) == (1000.0, 2000.0, False)
    again = client.post("/clearing-runs", json=run_body, headers=auth(p, "tso"))
    assert (again.status_code, again.json()["code"]) == (409, "clearing.already_cleared")
    # an aggregator sees the prices and its own resources only: none here, vpp_1 is inside the virtual resource
    mine = client.get(f"/clearing-runs/{run['id']}", headers=auth(p, "agg_1")).json()
    assert (mine["system_energy_price_cad_per_mwh"], mine["resources"]) == ("40.00", [])

    issued = client.post(f"/clearing-runs/{run['id']}/instructions", headers=auth(p, "tso"))
    assert issued.status_code == 201
    by_kind = {i["resource_kind"]: i for i in issued.json() if i["tdi_id"] == p.tdis["tdi_a"]}
    assert by_kind["dso_virtual"]["p_kw"] == 100.0
    assert by_kind["der"]["p_kw"] == 900.0
    assert "aggregation" not in by_kind
    split = client.post(
        f"/instructions/{by_kind['dso_virtual']['id']}/split", json={"method": "pro_rata"}, headers=auth(p, "ldc_a")
    )
    assert split.status_code == 201
    children = {c["resource_kind"]: c for c in split.json()["children"]}
    child, vpp = children["der"], children["aggregation"]
    assert (child["der_id"], child["p_kw"], child["parent_id"]) == (p.ders["a1"], 40.0, by_kind["dso_virtual"]["id"])
    assert (vpp["resource_id"], vpp["p_kw"], vpp["recipient_id"]) == (p.aggregations["vpp_1"], 60.0, p.ids["agg_1"])
    assert vpp["allowed_responses"] == ["receipt"]
    detail = client.get(f"/instructions/{by_kind['dso_virtual']['id']}", headers=auth(p, "ldc_a")).json()
    assert {c["id"] for c in detail["children"]} == {child["id"], vpp["id"]}
    assert detail["split_method"] == "pro_rata"

    agg_id = vpp["id"]
    answered = client.post(
        "/instructions/responses",
        json={
            "items": [
                {"instruction_id": agg_id, "response": "accept"},
                {"instruction_id": agg_id, "response": "receipt"},
                {"instruction_id": agg_id, "response": "reject", "reason": "members offline"},
            ]
        },
        headers=auth(p, "agg_1"),
    ).json()
    assert [(i["status"], i["code"]) for i in answered["items"]] == [
        ("rejected", "instructions.illegal_transition"),
        ("accepted", "ok"),
        ("accepted", "ok"),
    ]
    assert answered["items"][2]["instruction_status"] == "rejected"
    receipt = client.post(
        f"/instructions/{by_kind['der']['id']}/responses", json={"response": "receipt"}, headers=auth(p, "owner_2")
    )
    assert receipt.json()["status"] == "received"
    p.clock.advance(timedelta(minutes=3))
    late = client.post(
        f"/instructions/{by_kind['der']['id']}/responses", json={"response": "accept"}, headers=auth(p, "owner_2")
    )
    assert (late.status_code, late.json()["code"]) == (409, "instructions.deadline_passed")
    escalated = client.post("/instructions/escalations", headers=auth(p, "tso")).json()["escalated"]
    assert by_kind["der"]["id"] in {i["id"] for i in escalated}
    notes = client.get("/notifications", headers=auth(p, "tso")).json()
    assert {n["kind"] for n in notes} == {"instruction_overdue"}  # no interface exports here
    assert child["id"] not in {i["id"] for i in escalated}  # the TSO escalates only what it issued
    # the DSO escalates its own child and is notified as its issuer
    (own,) = client.post("/instructions/escalations", headers=auth(p, "ldc_a")).json()["escalated"]
    assert own["id"] == child["id"]
    ldc_notes = client.get("/notifications", headers=auth(p, "ldc_a")).json()
    assert [n["instruction_id"] for n in ldc_notes] == [child["id"]]
    assert (
        client.get("/instructions", params={"status": "escalated"}, headers=auth(p, "owner_2")).json()[0]["id"]
        == (by_kind["der"]["id"])
    )


def test_operating_instruction_over_http(world: tuple[Province, TestClient]) -> None:
    p, client = world
    start = p.clock.now() + timedelta(minutes=10)
    body = {
        "tdi_id": p.tdis["tdi_a"],
        "p_kw": 120,
        "interval_start": start.isoformat(),
        "interval_end": (start + timedelta(hours=1)).isoformat(),
        "reason": "bulk-system contingency",
    }
    created = client.post("/operating-instructions", json=body, headers=auth(p, "tso"))
    assert created.status_code == 201
    instruction = created.json()
    assert (instruction["kind"], instruction["product"], instruction["recipient_id"]) == (
        "operating",
        "load_curtailment",
        p.ids["ldc_a"],
    )
    split = client.post(f"/instructions/{instruction['id']}/split", json={}, headers=auth(p, "ldc_a")).json()
    assert [(c["der_id"], c["p_kw"]) for c in split["children"]] == [(p.ders["dr_a"], 120.0)]
    negative = client.post("/operating-instructions", json=body | {"p_kw": -5}, headers=auth(p, "tso"))
    assert (negative.status_code, negative.json()["field"]) == (422, "p_kw")
    missing = client.post("/operating-instructions", json=body | {"tdi_id": "nope"}, headers=auth(p, "tso"))
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
