"""Conflict management over HTTP: a refused policy (422) and a late amendment (409) change nothing, the
instruction included; amendment requests expire through the escalation route; storage parameters and
state-of-charge readings of DERs. Runs on the real app, services and store (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conflict_helpers import add_battery, dso_dispatch, tso_dispatch
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gridbridge.domain.market import Instruction, InstructionStatus
from gridbridge.store.conflict_tables import amendment_requests, conflicts, resolution_policies
from gridbridge.store.market_tables import instructions as instruction_rows
from gridbridge.store.market_tables import notifications
from gridbridge.store.storage_tables import state_of_charge_readings
from gridbridge.store.tables import audit_records
from registry_province import Province, build_province

NOON_EST = datetime(2026, 5, 5, 17, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PRIORITIES = ["distribution_safety", "bulk_reliability", "wholesale_energy", "distribution_services"]
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def province(database_url: str) -> Province:
    p = build_province(database_url)
    add_battery(p)
    return p


@pytest.fixture
def client(province: Province) -> Iterator[TestClient]:
    with TestClient(province.platform.app(), raise_server_exceptions=False) as c:
        yield c


def _h(p: Province, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {p.tokens[who]}"}


def _counts(p: Province) -> dict[str, int]:
    with p.platform.unit_of_work() as uow:
        return {
            t.name: int(uow.session.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (audit_records, conflicts, amendment_requests, notifications, resolution_policies,
                      instruction_rows, state_of_charge_readings)
        }  # fmt: skip


def _row(p: Province, instruction_id: str) -> Instruction:
    found = p.run("regulator", lambda ctx: ctx.uow.market.instructions.get(instruction_id))
    assert found is not None
    return found


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.json()
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def test_a_priority_list_omitting_a_service_is_refused_and_changes_nothing(
    province: Province, client: TestClient
) -> None:
    p = province
    url = f"/tdis/{p.tdis['tdi_a']}/resolution-policy"
    assert client.put(url, json={"priorities": PRIORITIES}, headers=_h(p, "ldc_a")).status_code == 200
    before = _counts(p)
    body = _problem(
        client.put(url, json={"priorities": PRIORITIES[:3], "amendment_window_min": 5}, headers=_h(p, "ldc_a")),
        422,
        "conflicts.priority_incomplete",
    )
    assert body["field"] == "order"
    assert body["details"]["missing"] == ["distribution_services"]
    assert _counts(p) == before
    stored = client.get(url, headers=_h(p, "ldc_a")).json()
    assert stored["priorities"] == PRIORITIES
    assert stored["amendment_window_min"] == 15


def _amendment_case(p: Province, client: TestClient) -> tuple[Instruction, dict[str, Any]]:
    """Wholesale declared above distribution services, energy conflicts by amendment request (30 minutes): the
    TSO's 12-4 pm dispatch empties the battery, so ldc_a's 4-6 pm dispatch yields and ldc_a is asked to amend."""
    url = f"/tdis/{p.tdis['tdi_a']}/resolution-policy"
    policy = {
        "priorities": PRIORITIES,
        "rules": {"hidden_coupling_energy": "amendment_request"},
        "amendment_window_min": 30,
    }
    assert client.put(url, json=policy, headers=_h(p, "ldc_a")).status_code == 200
    tso_dispatch(p, "bat", NOON_EST, NOON_EST + 4 * HOUR, 1000.0)
    dso = dso_dispatch(p, "bat", NOON_EST + 4 * HOUR, NOON_EST + 6 * HOUR, 1000.0)
    (conflict,) = client.get("/conflicts", params={"status": "pending_amendment"}, headers=_h(p, "ldc_a")).json()
    (request,) = conflict["amendment_requests"]
    assert request["status"] == "pending"
    return dso, request


def test_an_amendment_after_its_deadline_is_refused_and_changes_nothing(province: Province, client: TestClient) -> None:
    p = province
    dso, request = _amendment_case(p, client)
    provisional = _row(p, dso.id)
    assert provisional.status is InstructionStatus.CANCELLED
    p.clock.advance(timedelta(minutes=31))
    before = _counts(p)
    body = _problem(
        client.post(f"/amendment-requests/{request['id']}/answer", json={"p_kw": 0.0}, headers=_h(p, "ldc_a")),
        409,
        "conflicts.amendment_after_deadline",
    )
    assert body["details"]["deadline"] == request["deadline"]
    assert _counts(p) == before
    after = _row(p, dso.id)
    assert (after.p_kw, after.status, after.reason) == (provisional.p_kw, provisional.status, provisional.reason)
    (conflict,) = client.get("/conflicts", headers=_h(p, "ldc_a")).json()
    assert conflict["amendment_requests"][0]["status"] == "pending"  # until the escalation run expires it

    # the escalation run expires it: the provisional setpoint is final, and answering is still refused
    assert client.post("/instructions/escalations", headers=_h(p, "ldc_a")).status_code == 200
    (conflict,) = client.get("/conflicts", headers=_h(p, "ldc_a")).json()
    assert conflict["amendment_requests"][0]["status"] == "expired"
    assert client.get("/conflicts", params={"status": "pending_amendment"}, headers=_h(p, "ldc_a")).json() == []
    notes = client.get("/notifications", headers=_h(p, "ldc_a")).json()
    assert any(request["id"] in n["message"] and "expired" in n["message"] for n in notes)
    # the TSO's view of the conflict withholds the DSO's dispatch and its request: it is told that a request of
    # the conflict expired, naming neither
    notes = client.get("/notifications", headers=_h(p, "tso")).json()
    told = [n for n in notes if "expired" in n["message"] and conflict["id"] in n["message"]]
    assert told
    assert not [n for n in told if request["id"] in n["message"] or dso.id in n["message"] or n["instruction_id"]]
    before = _counts(p)
    _problem(
        client.post(f"/amendment-requests/{request['id']}/answer", json={"p_kw": 0.0}, headers=_h(p, "ldc_a")),
        409,
        "conflicts.amendment_after_deadline",
    )
    assert _counts(p) == before
    assert _row(p, dso.id).p_kw == 0.0


def test_storage_parameters_and_state_of_charge_readings(province: Province, client: TestClient) -> None:
    p = province
    point = p.points["tdi_a"][8]
    storage = {"name": "bat-2", "technology": "storage", "p_export_kw": 50, "p_import_kw": 50, "e_kwh": 200}
    filed = client.post(
        "/ders", json={**storage, "round_trip_efficiency": 0.85, "connection_point_id": point}, headers=_h(p, "owner_1")
    )
    assert filed.status_code == 201, filed.json()
    assert filed.json()["round_trip_efficiency"] == 0.85
    before = _counts(p)
    pv = {**storage, "technology": "pv", "e_kwh": None}
    for bad, code in (
        ({**storage, "round_trip_efficiency": 1.5}, None),  # refused by the schema
        ({**pv, "round_trip_efficiency": 0.9}, "der.efficiency_only_for_storage"),
    ):
        response = client.post("/ders", json={**bad, "connection_point_id": point}, headers=_h(p, "owner_1"))
        assert response.status_code == 422, response.json()
        assert response.json()["field"].endswith("round_trip_efficiency")
        if code is not None:
            assert response.json()["code"] == code
    assert _counts(p) == before

    bat = p.ders["bat"]
    url = f"/ders/{bat}/state-of-charge"
    measured = p.clock.now().isoformat()
    assert client.get(url, headers=_h(p, "owner_2")).json() == {"der_id": bat, "e_kwh": 4000.0, "latest": None}
    _problem(
        client.post(url, json={"measured_at": measured, "soc_kwh": 10}, headers=_h(p, "tso")), 403, "auth.forbidden"
    )
    _problem(
        client.post(url, json={"measured_at": measured, "soc_kwh": 10}, headers=_h(p, "owner_1")), 404, "not_found"
    )
    beyond = _problem(
        client.post(url, json={"measured_at": measured, "soc_kwh": 4001}, headers=_h(p, "owner_2")),
        422,
        "validation.out_of_range",
    )
    assert beyond["field"] == "soc_kwh"
    assert _counts(p) == before
    done = client.post(url, json={"measured_at": measured, "soc_fraction": 0.25}, headers=_h(p, "owner_2"))
    assert done.status_code == 201, done.json()
    assert (done.json()["soc_kwh"], done.json()["soc_fraction"]) == (1000.0, 0.25)
    assert done.json()["reported_by"] == p.ids["owner_2"]
    latest = client.get(url, headers=_h(p, "regulator")).json()["latest"]
    assert latest == done.json()
    assert _counts(p)["audit_records"] == before["audit_records"] + 1
    assert client.get(url, headers=_h(p, "owner_1")).status_code == 404
