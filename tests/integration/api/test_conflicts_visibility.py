"""Who sees what of a conflict and of its settlement flags, over HTTP on the real app, services and store
(SQLite and PostgreSQL).

* Two DERs of competitors at one connection point (a1: owner_1's own; x: owner_2's, represented by agg_2),
  dispatched by the TSO beyond the point's published envelope: one conflict. The TSO (which issued both), ldc_a
  and the regulator see all of it; owner_1 only a1 and its instruction, agg_2 and owner_2 only x and its
  instruction; agg_1 and ldc_b nothing (404). No partial view carries an id of what it withholds.
* The white paper's battery at a Total DSO interface (tdi_b): the TSO's operating instruction, allocated by
  ldc_b to agg_2's battery, and ldc_b's distribution dispatch. The TSO takes part (its instruction was split)
  and sees the conflict, but no DER, instruction or outcome: Total DSO shows it none.
* Double counting: a DER offered directly and through an aggregation in one interval gives settlement flags,
  the firm kW of one commitment and 0 payable of the other, read per role.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from api_province import client_for
from fastapi.testclient import TestClient

from conflict_scenarios import NOON_EST, competitors_at_one_point
from gridbridge.domain.der import ReviewDecision, Technology
from gridbridge.domain.market import ResourceKind
from gridbridge.domain.offers import Product
from gridbridge.domain.roles import Service
from gridbridge.services import ders, instructions, offers, settlement_flags
from gridbridge.services.context import Context
from market_province import item, rt_interval
from registry_province import Province, build_province, enrol, spec

ROLES = ("tso", "ldc_a", "ldc_b", "agg_1", "agg_2", "owner_1", "owner_2", "regulator")
Json = dict[str, Any]


def _headers(p: Province, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {p.tokens[role]}"}


def _file_approved(
    p: Province,
    who: str,
    key: str,
    tdi: str,
    point: int,
    owner: str,
    ldc: str,
    round_trip_efficiency: float | None = None,
    **kw: Any,
) -> str:
    def file(ctx: Context) -> str:
        s = replace(spec(f"der-{key}", **kw), round_trip_efficiency=round_trip_efficiency)
        return ders.request_interconnection(ctx, s, p.points[tdi][point], owner_id=p.ids[owner]).id

    der_id = p.run(who, file)

    def approve(ctx: Context) -> None:
        ders.start_review(ctx, der_id)
        ders.decide_review(ctx, der_id, ReviewDecision.APPROVED, "within hosting capacity")
        ders.commission(ctx, der_id)

    p.run(ldc, approve)
    p.ders[key] = der_id
    return der_id


def _views(client: TestClient, p: Province, role: str) -> dict[str, Json]:
    response = client.get("/conflicts", headers=_headers(p, role))
    assert response.status_code == 200, response.json()
    return {v["id"]: v for v in response.json()}


def _one(client: TestClient, p: Province, role: str, conflict_id: str) -> tuple[int, Json]:
    response = client.get(f"/conflicts/{conflict_id}", headers=_headers(p, role))
    return response.status_code, response.json()


def _absent(view: Json, *ids: str) -> None:
    text = json.dumps(view)
    for value in ids:
        assert value not in text, value


def test_competitors_at_one_connection_point_see_only_their_own(database_url: str) -> None:
    p = build_province(database_url)
    on_a1, on_x = competitors_at_one_point(p)
    a1, x = p.ders["a1"], p.ders["x"]
    client = client_for(p)

    full = _views(client, p, "regulator")
    (conflict_id,) = [k for k, v in full.items() if set(v["der_ids"]) == {a1, x}]
    record = full[conflict_id]
    assert record["view"] == "full"
    assert record["withheld"] is None
    assert set(record["instruction_ids"]) == {on_a1.id, on_x.id}
    assert record["series"]
    for role in ("tso", "ldc_a"):  # the TSO issued both instructions; a1 and x are in ldc_a's territory
        assert _views(client, p, role)[conflict_id] == record, role

    own = {
        "owner_1": (a1, on_a1.id, (x, on_x.id, p.ids["agg_2"], p.ids["owner_2"])),
        "agg_2": (x, on_x.id, (a1, on_a1.id, p.ids["owner_1"])),
        "owner_2": (x, on_x.id, (a1, on_a1.id, p.ids["owner_1"])),
    }
    for role, (der_id, instruction_id, withheld_ids) in own.items():
        view = _views(client, p, role)[conflict_id]
        assert view["view"] == "partial", role
        assert view["der_ids"] == [der_id]
        assert view["instruction_ids"] == [instruction_id]
        assert [o["subject_id"] for o in view["resolution"]["outcomes"]] == [instruction_id]
        assert view["withheld"] == {"ders": 1, "items": 1, "combined_kw": None}  # one competitor: no kW
        assert view["figures"] == {}
        assert view["series"] == {}
        assert (view["kind"], view["tdi_id"], view["resolution"]["rule"]) == (
            record["kind"],
            record["tdi_id"],
            record["resolution"]["rule"],
        )
        _absent(view, *withheld_ids)
        assert _one(client, p, role, conflict_id) == (200, view)
        # the DER filter matches the caller's own DER, and says nothing about the withheld one
        listed = client.get("/conflicts", params={"der_id": der_id}, headers=_headers(p, role)).json()
        assert [v["id"] for v in listed] == [conflict_id]
        hidden_der = x if der_id == a1 else a1
        assert client.get("/conflicts", params={"der_id": hidden_der}, headers=_headers(p, role)).json() == []

    # the filter matches any DER of a conflict, not only the first one
    for der_id in (a1, x):
        listed = client.get("/conflicts", params={"der_id": der_id}, headers=_headers(p, "regulator")).json()
        assert conflict_id in [v["id"] for v in listed], der_id
    for role in ("agg_1", "ldc_b"):
        assert conflict_id not in _views(client, p, role)
        status, body = _one(client, p, role, conflict_id)
        assert (status, body["code"]) == (404, "not_found"), role


def _conflict_notes(client: TestClient, p: Province, role: str, conflict_id: str) -> list[Json]:
    response = client.get("/notifications", headers=_headers(p, role))
    assert response.status_code == 200, response.json()
    return [n for n in response.json() if n["kind"] == "conflict_resolved" and conflict_id in n["message"]]


def test_a_competitors_notification_names_none_of_the_other_partys_ders_or_instructions(database_url: str) -> None:
    """Each party is told of the point's conflict as its own view shows it: owner_1 and agg_2 get the outcome of
    their own instruction with its reason, and no DER, instruction, party or id of the other; the TSO, which
    issued both, gets both in full."""
    p = build_province(database_url)
    on_a1, on_x = competitors_at_one_point(p)
    a1, x = p.ders["a1"], p.ders["x"]
    client = client_for(p)
    (conflict_id,) = [k for k, v in _views(client, p, "regulator").items() if set(v["der_ids"]) == {a1, x}]
    own = {
        "owner_1": (on_a1.id, (x, on_x.id, p.ids["agg_2"], p.ids["owner_2"])),
        "agg_2": (on_x.id, (a1, on_a1.id, p.ids["owner_1"])),
    }
    for role, (instruction_id, withheld_ids) in own.items():
        notes = _conflict_notes(client, p, role, conflict_id)
        assert [n["instruction_id"] for n in notes] == [instruction_id], role
        assert instruction_id in notes[0]["message"]
        assert "Conflict: " in notes[0]["message"]  # the reason, with the summary of the caller's view
        _absent({"notes": notes}, *withheld_ids)
    tso = _conflict_notes(client, p, "tso", conflict_id)
    assert sorted(n["instruction_id"] for n in tso) == sorted([on_a1.id, on_x.id])
    assert all(on_a1.id in n["message"] and on_x.id in n["message"] for n in tso)  # the full reason


def test_under_total_dso_the_tso_sees_the_conflict_but_no_der(database_url: str) -> None:
    p = build_province(database_url)
    bat = _file_approved(
        p,
        "agg_2",
        "bat",
        "tdi_b",
        5,
        "owner_2",
        "ldc_b",
        round_trip_efficiency=1.0,  # the white paper's battery: 1,000 kW for exactly four hours
        export_kw=1000.0,
        technology=Technology.STORAGE,
        import_kw=1000.0,
        e_kwh=4000.0,
    )
    parent = p.run(
        "tso",
        lambda ctx: instructions.issue_operating_instruction(
            ctx,
            p.tdis["tdi_b"],
            p_kw=1000.0,
            interval_start=NOON_EST,
            interval_end=NOON_EST + timedelta(hours=4),
            reason="bulk system energy",
        ),
    )
    (child,) = p.run("ldc_b", lambda ctx: instructions.split_instruction(ctx, parent.id)).children
    assert child.der_id == bat
    assert not child.tso_visible
    dso = p.run(
        "ldc_b",
        lambda ctx: instructions.dispatch_distribution_service(
            ctx,
            bat,
            p_kw=1000.0,
            interval_start=NOON_EST + timedelta(hours=4),
            interval_end=NOON_EST + timedelta(hours=8),
            reason="distribution deferral",
        ),
    )
    client = client_for(p)
    (record,) = _views(client, p, "regulator").values()
    assert record["der_ids"] == [bat]
    assert set(record["instruction_ids"]) == {child.id, dso.id}
    for role in ("ldc_b", "agg_2", "owner_2"):
        assert _views(client, p, role) == {record["id"]: record}, role

    tso = _views(client, p, "tso")[record["id"]]
    assert tso["view"] == "partial"
    assert (tso["kind"], tso["tdi_id"], tso["interval_start"], tso["interval_end"]) == (
        record["kind"],
        record["tdi_id"],
        record["interval_start"],
        record["interval_end"],
    )
    assert tso["resolution"]["rule"] == record["resolution"]["rule"]
    assert tso["der_ids"] == []
    assert tso["instruction_ids"] == []
    assert tso["resolution"]["outcomes"] == []
    assert tso["connection_point_id"] is None
    assert tso["withheld"] == {"ders": 1, "items": 2, "combined_kw": None}
    _absent(tso, bat, child.id, dso.id, p.ids["agg_2"], p.ids["owner_2"])
    assert _one(client, p, "tso", record["id"]) == (200, tso)
    # told of it as upstream issuer of the allocation, once, with the window and rule and no DER, instruction or kW
    (note,) = _conflict_notes(client, p, "tso", record["id"])
    assert (note["instruction_id"], note["magnitude_kw"]) == (None, None)
    assert record["resolution"]["rule"] in note["message"]
    _absent(note, bat, child.id, dso.id, p.ids["agg_2"], p.ids["owner_2"])
    for role in ("ldc_b", "agg_2"):  # the issuers and the recipient see the outcomes of their instructions
        assert {n["instruction_id"] for n in _conflict_notes(client, p, role, record["id"])} <= {child.id, dso.id}
    for role in ("ldc_a", "agg_1", "owner_1"):
        assert _one(client, p, role, record["id"])[0] == 404, role


def _double_counted(p: Province) -> tuple[str, str, datetime]:
    """agg_1 offers a2 (owner_1's 60 kW, represented by agg_1) on its own for energy and, through its operating
    reserve aggregation with a3, for reserve, in one real-time interval: the same 60 kW twice."""
    enrol(p, "agg_1", "reserve", ["a2", "a3"], {Service.OPERATING_RESERVE: 50.0}, approve_as=["ldc_a"])
    p.clock.advance(timedelta(days=2))
    interval = rt_interval(p)
    (direct,) = p.run(
        "agg_1", lambda ctx: offers.submit_offers(ctx, [item(ResourceKind.DER, p.ders["a2"], interval, [(30, 60)])])
    )
    reserve = item(
        ResourceKind.AGGREGATION, p.aggregations["reserve"], interval, [(10, 120)], product=Product.OPERATING_RESERVE
    )
    (through,) = p.run("agg_1", lambda ctx: offers.submit_offers(ctx, [reserve]))
    assert through.code == "offers.accepted"
    return direct.offer.id, through.offer.id, interval


def test_double_counting_is_flagged_for_settlement(database_url: str) -> None:
    p = build_province(database_url)
    direct, through, interval = _double_counted(p)
    a2 = p.ders["a2"]
    client = client_for(p)
    window = {"interval_start": interval.isoformat(), "interval_end": (interval + timedelta(minutes=5)).isoformat()}

    response = client.get("/settlement-flags", params=window, headers=_headers(p, "regulator"))
    assert response.status_code == 200, response.json()
    flags = {f["offer_id"]: f for f in response.json()}
    assert set(flags) == {direct, through}
    (conflict_id,) = {f["conflict_id"] for f in flags.values()}
    conflict = client.get(f"/conflicts/{conflict_id}", headers=_headers(p, "regulator")).json()
    assert conflict["kind"] == "double_counting"
    # operating reserve (bulk reliability) outranks wholesale energy: the aggregation's 60 kW share is firm and
    # the direct energy offer is the same kW counted again, none of it payable
    reserve, energy = flags[through], flags[direct]
    assert (reserve["holder_kind"], reserve["service"], reserve["der_id"]) == ("aggregation", "operating_reserve", a2)
    assert (energy["holder_kind"], energy["service"], energy["der_id"]) == ("der", "wholesale_energy", a2)
    assert (reserve["committed_kw"], reserve["firm_kw"], reserve["not_payable_kw"]) == pytest.approx((60, 60, 0))
    assert (energy["committed_kw"], energy["firm_kw"], energy["not_payable_kw"]) == pytest.approx((60, 0, 60))
    assert {f["provider_id"] for f in flags.values()} == {p.ids["agg_1"]}

    # who reads them: the provider, the DER's owner, the LDC that buys them, the TSO (alt 2: a2 takes part in the
    # wholesale market through a third-party aggregation), observers; nobody else
    expected = {
        "tso": {direct, through},
        "ldc_a": {direct, through},
        "ldc_b": set(),
        "agg_1": {direct, through},
        "agg_2": set(),
        "owner_1": {direct, through},
        "owner_2": set(),
        "regulator": {direct, through},
    }
    for role in ROLES:
        listed = client.get("/settlement-flags", params=window, headers=_headers(p, role))
        assert listed.status_code == 200, role
        assert {f["offer_id"] for f in listed.json()} == expected[role], role
    later = {"interval_start": (interval + timedelta(minutes=5)).isoformat()}
    assert client.get("/settlement-flags", params=later, headers=_headers(p, "regulator")).json() == []
    by_der = client.get("/settlement-flags", params={"der_id": p.ders["a3"]}, headers=_headers(p, "regulator"))
    assert by_der.json() == []
    backwards = {"interval_start": window["interval_end"], "interval_end": window["interval_start"]}
    refused = client.get("/settlement-flags", params=backwards, headers=_headers(p, "regulator"))
    assert (refused.status_code, refused.json()["code"]) == (422, "validation.out_of_range")

    # what settlement code calls: the firm kW of each commitment, never the same kW twice
    def payable(ctx: Context) -> tuple[float, float, float]:
        return (
            settlement_flags.payable_kw(ctx, offer_id=through, der_id=a2, interval_start=interval, kw=60.0),
            settlement_flags.payable_kw(ctx, offer_id=direct, der_id=a2, interval_start=interval, kw=60.0),
            settlement_flags.payable_kw(ctx, offer_id=through, der_id=p.ders["a3"], interval_start=interval, kw=60.0),
        )

    assert p.run("ldc_a", payable) == pytest.approx((60.0, 0.0, 60.0))  # a3 was not counted twice
