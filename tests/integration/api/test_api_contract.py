"""The HTTP contract of the API: problem+json errors, Idempotency-Key, all-or-nothing writes, tokens, paging,
and the OpenAPI document (issue 2, items 5 and "Bad input").

Every request goes through FastAPI's TestClient to the real app on a real database. Idempotency and atomicity
run on SQLite and on PostgreSQL (``database_url``); the rest on SQLite.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandapower
import psycopg
import pytest
from api_province import MISSING_ID, client_for, count_rows, route_keys
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from gridbridge.adapters.network_io import network_to_pandapower
from gridbridge.domain.errors import ERROR_CODES, ValidationFailed
from gridbridge.domain.roles import Service
from gridbridge.services import networks
from gridbridge.store.tables import api_tokens, audit_records, idempotency_keys
from gridbridge.store.tables import ders as ders_table
from registry_province import T0, Province, build_province, enrol, small_network

PROBLEM_JSON = "application/problem+json"
ENERGY: dict[Service, float | None] = {Service.WHOLESALE_ENERGY: 50.0}


@pytest.fixture
def province(sqlite_url: str) -> Province:
    return build_province(sqlite_url)


@pytest.fixture
def either_province(database_url: str) -> Province:
    """The province on SQLite and on PostgreSQL."""
    return build_province(database_url)


@pytest.fixture
def client(province: Province) -> Iterator[TestClient]:
    with client_for(province) as c:
        yield c


@pytest.fixture
def either_client(either_province: Province) -> Iterator[TestClient]:
    with client_for(either_province) as c:
        yield c


def auth(province: Province, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {province.tokens[who]}"}


def assert_problem(response: Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """The response is RFC 9457 problem+json with the gridbridge fields, and the expected code and field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"] == ERROR_CODES[code].title
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["type"].endswith(f"#{code}")
    if field is not None:
        assert body["field"] == field
    return body


def state(province: Province) -> tuple[int, int]:
    """DERs and audit records in the database: a refused request must change neither."""
    return count_rows(province, ders_table), count_rows(province, audit_records)


def der_body(province: Province, point_index: int = 9, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "roof pv",
        "technology": "pv",
        "p_export_kw": 8.0,
        "p_import_kw": 0.0,
        "connection_point_id": province.points["tdi_a"][point_index],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


# ----------------------------------------------------------------------------------------------- problem+json


def test_unknown_der_id_is_a_problem_naming_the_field(province: Province, client: TestClient) -> None:
    body = assert_problem(
        client.get(f"/ders/{MISSING_ID}", headers=auth(province, "regulator")), 404, "not_found", "der_id"
    )
    assert body["instance"] == f"/ders/{MISSING_ID}"
    assert MISSING_ID in body["detail"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/aggregations/{missing}", "aggregation_id"),
        ("/tdis/{missing}", "tdi_id"),
        ("/participants/{missing}", "participant_id"),
    ],
)
def test_other_unknown_ids_are_not_found(province: Province, client: TestClient, path: str, field: str) -> None:
    response = client.get(path.format(missing=MISSING_ID), headers=auth(province, "regulator"))
    assert_problem(response, 404, "not_found", field)


def test_unknown_connection_point_is_not_found_and_changes_nothing(province: Province, client: TestClient) -> None:
    before = state(province)
    response = client.post(
        "/ders", json=der_body(province, connection_point_id=999_999), headers=auth(province, "owner_1")
    )
    assert_problem(response, 404, "not_found", "connection_point_id")
    assert state(province) == before


def test_negative_capacity_is_a_schema_violation_naming_the_field(province: Province, client: TestClient) -> None:
    before = state(province)
    response = client.post("/ders", json=der_body(province, p_export_kw=-5.0), headers=auth(province, "owner_1"))
    body = assert_problem(response, 422, "validation.request", "p_export_kw")
    assert body["rule"] == "greater_than_equal"
    assert body["errors"] == [
        {"field": "p_export_kw", "rule": "greater_than_equal", "message": body["errors"][0]["message"]}
    ]
    assert "p_export_kw" in body["detail"]
    assert state(province) == before


@pytest.mark.parametrize("number", ["Infinity", "1e400"])
def test_infinite_capacity_is_refused_naming_the_field(province: Province, client: TestClient, number: str) -> None:
    """JSON parsers accept Infinity and overflowing literals; the domain refuses them as not finite."""
    before = state(province)
    point = province.points["tdi_a"][9]
    content = (
        f'{{"name": "x", "technology": "pv", "p_export_kw": {number}, "p_import_kw": 0, '
        f'"connection_point_id": {point}}}'
    )
    headers = {**auth(province, "owner_1"), "content-type": "application/json"}
    response = client.post("/ders", content=content, headers=headers)
    assert_problem(response, 422, "validation.not_finite", "p_export_kw")
    assert state(province) == before


def test_missing_capacity_is_a_schema_violation_naming_the_field(province: Province, client: TestClient) -> None:
    before = state(province)
    response = client.post("/ders", json=der_body(province, p_import_kw=...), headers=auth(province, "owner_1"))
    body = assert_problem(response, 422, "validation.request", "p_import_kw")
    assert body["rule"] == "missing"
    assert state(province) == before


def test_zero_capacity_is_a_domain_rule_naming_the_field(province: Province, client: TestClient) -> None:
    before = state(province)
    response = client.post("/ders", json=der_body(province, p_export_kw=0.0), headers=auth(province, "owner_1"))
    assert_problem(response, 422, "der.no_capacity", "p_export_kw")
    assert state(province) == before


def test_unknown_body_field_is_refused_not_ignored(province: Province, client: TestClient) -> None:
    response = client.post("/ders", json=der_body(province, p_export_mw=1.0), headers=auth(province, "owner_1"))
    body = assert_problem(response, 422, "validation.request", "p_export_mw")
    assert body["rule"] == "extra_forbidden"


def test_der_at_another_ldcs_connection_point(province: Province, client: TestClient) -> None:
    before = state(province)
    # ldc_b files in ldc_a's territory
    response = client.post("/ders", json=der_body(province), headers=auth(province, "ldc_b"))
    assert_problem(response, 422, "der.outside_territory", "connection_point_id")
    # an owner addresses ldc_b but picks a point of ldc_a
    body = der_body(province, ldc_id=province.ids["ldc_b"])
    response = client.post("/ders", json=body, headers=auth(province, "owner_1"))
    assert_problem(response, 422, "der.outside_territory", "connection_point_id")
    assert state(province) == before


def test_illegal_lifecycle_move_names_state_and_allowed_moves(province: Province, client: TestClient) -> None:
    filed = client.post("/ders", json=der_body(province), headers=auth(province, "owner_1"))
    assert filed.status_code == 201, filed.text
    assert filed.json()["allowed_actions"] == ["start_review", "retire"]
    der_id = filed.json()["id"]
    before = state(province)
    response = client.post(f"/ders/{der_id}/commission", headers=auth(province, "ldc_a"))
    body = assert_problem(response, 409, "der.illegal_transition", "status")
    assert body["details"] == {"current_state": "requested", "allowed_actions": ["start_review", "retire"]}
    assert "requested" in body["detail"]
    assert state(province) == before
    assert client.get(f"/ders/{der_id}", headers=auth(province, "ldc_a")).json()["status"] == "requested"


def test_unknown_route_and_wrong_method_are_problems(province: Province, client: TestClient) -> None:
    assert_problem(client.get("/no-such-route", headers=auth(province, "regulator")), 404, "not_found")
    assert_problem(client.get("/no-such-route"), 404, "not_found")
    assert_problem(client.delete("/ders", headers=auth(province, "regulator")), 405, "method_not_allowed")
    response = client.put(f"/tdis/{province.tdis['tdi_a']}", json={}, headers=auth(province, "tso"))
    assert_problem(response, 405, "method_not_allowed")


def test_unknown_simbench_code_is_refused_and_changes_nothing(province: Province, client: TestClient) -> None:
    tdi_id = _new_tdi(province, client)
    before = state(province)
    response = client.post(
        f"/tdis/{tdi_id}/network", json={"source": "simbench:1-LV-nowhere--0-sw"}, headers=auth(province, "ldc_a")
    )
    body = assert_problem(response, 422, "network.unknown_simbench_code", "source")
    assert body["details"]["code"] == "1-LV-nowhere--0-sw"
    assert state(province) == before
    points = client.get(f"/tdis/{tdi_id}/connection-points", headers=auth(province, "ldc_a"))
    assert points.json() == []


def test_network_with_an_island_is_refused_naming_the_buses(
    province: Province, client: TestClient, tmp_path: Path
) -> None:
    net = network_to_pandapower(small_network())
    island = pandapower.create_bus(net, vn_kv=0.4, name="island", min_vm_pu=0.9, max_vm_pu=1.1)
    far = pandapower.create_bus(net, vn_kv=0.4, name="island far end", min_vm_pu=0.9, max_vm_pu=1.1)
    pandapower.create_line_from_parameters(
        net, island, far, length_km=0.1, r_ohm_per_km=0.2, x_ohm_per_km=0.1, c_nf_per_km=0.0, max_i_ka=0.2
    )
    pandapower.create_load(net, far, p_mw=0.01, name="island load")
    source = tmp_path / "island.json"
    pandapower.to_json(net, str(source))
    tdi_id = _new_tdi(province, client)
    before = state(province)
    # a remote caller may not make the server read a file at all
    response = client.post(f"/tdis/{tdi_id}/network", json={"source": str(source)}, headers=auth(province, "ldc_a"))
    assert_problem(response, 422, "network.source_not_allowed", "source")
    # the operator's CLI may, and the island is refused naming its buses
    with pytest.raises(ValidationFailed) as caught:
        province.run("ldc_a", lambda ctx: networks.import_network(ctx, tdi_id, str(source), allow_files=True))
    assert caught.value.code == "network.unreachable_bus"
    assert caught.value.field == "buses"
    assert sorted(caught.value.details["offenders"]) == ["island", "island far end"]
    assert state(province) == before
    assert client.get(f"/tdis/{tdi_id}/connection-points", headers=auth(province, "ldc_a")).json() == []


def _new_tdi(province: Province, client: TestClient) -> str:
    response = client.post(
        "/tdis",
        json={
            "name": "tdi_c",
            "price_node": "TDI_C",
            "dso_id": province.ids["ldc_a"],
            "model": "alt1_minimal_dso",
            "import_limit_kw": 3000,
            "export_limit_kw": 1000,
        },
        headers=auth(province, "tso"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["model_in_force"] == "alt1_minimal_dso"
    return str(response.json()["id"])


# ----------------------------------------------------------------------------------------------- idempotency


def test_replay_returns_the_stored_answer_and_creates_nothing(
    either_province: Province, either_client: TestClient
) -> None:
    province, client = either_province, either_client
    headers = {**auth(province, "owner_1"), "Idempotency-Key": "file-roof-pv-1"}
    first = client.post("/ders", json=der_body(province), headers=headers)
    assert first.status_code == 201, first.text
    after_first = state(province)

    replay = client.post("/ders", json=der_body(province), headers=headers)

    assert replay.status_code == first.status_code
    assert replay.json() == first.json()
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert state(province) == after_first
    listed = client.get("/ders", headers=auth(province, "owner_1")).json()
    assert [d["id"] for d in listed].count(first.json()["id"]) == 1
    assert sum(1 for d in listed if d["name"] == "roof pv") == 1


def test_replay_of_a_bodiless_command_returns_the_stored_answer(
    either_province: Province, either_client: TestClient
) -> None:
    province, client = either_province, either_client
    der_id = province.ders["a1"]
    headers = {**auth(province, "ldc_a"), "Idempotency-Key": "suspend-a1"}
    first = client.post(f"/ders/{der_id}/suspend", headers=headers)
    assert first.status_code == 200, first.text
    after_first = state(province)
    replay = client.post(f"/ders/{der_id}/suspend", headers=headers)
    # a second suspend would be an illegal move; the replay answers the first one's result instead
    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert state(province) == after_first
    # the same key on another route is a different request
    other = client.post(f"/ders/{der_id}/resume", headers=headers)
    assert_problem(other, 422, "idempotency.key_reused", "Idempotency-Key")


def test_same_key_with_a_different_body_is_refused(either_province: Province, either_client: TestClient) -> None:
    province, client = either_province, either_client
    headers = {**auth(province, "owner_1"), "Idempotency-Key": "file-roof-pv-2"}
    first = client.post("/ders", json=der_body(province), headers=headers)
    assert first.status_code == 201, first.text
    after_first = state(province)
    response = client.post("/ders", json=der_body(province, p_export_kw=9.0), headers=headers)
    assert_problem(response, 422, "idempotency.key_reused", "Idempotency-Key")
    assert state(province) == after_first


def test_users_have_independent_keys(either_province: Province, either_client: TestClient) -> None:
    province, client = either_province, either_client
    before_ders, _ = state(province)
    answers = []
    for who in ("owner_1", "owner_2"):
        headers = {**auth(province, who), "Idempotency-Key": "shared-key"}
        response = client.post("/ders", json=der_body(province), headers=headers)
        assert response.status_code == 201, response.text
        assert "Idempotent-Replayed" not in response.headers
        answers.append(response.json())
    assert answers[0]["id"] != answers[1]["id"]
    assert [a["owner_id"] for a in answers] == [province.ids["owner_1"], province.ids["owner_2"]]
    assert state(province)[0] == before_ders + 2


def test_a_refused_request_does_not_burn_its_key(either_province: Province, either_client: TestClient) -> None:
    province, client = either_province, either_client
    headers = {**auth(province, "owner_1"), "Idempotency-Key": "retry-after-fix"}
    before = state(province)
    refused = client.post("/ders", json=der_body(province, p_export_kw=0.0), headers=headers)
    assert_problem(refused, 422, "der.no_capacity", "p_export_kw")
    assert state(province) == before
    assert count_rows(province, idempotency_keys) == 0
    fixed = client.post("/ders", json=der_body(province), headers=headers)
    assert fixed.status_code == 201, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers


def test_overlong_key_is_refused(province: Province, client: TestClient) -> None:
    before = state(province)
    headers = {**auth(province, "owner_1"), "Idempotency-Key": "k" * 201}
    response = client.post("/ders", json=der_body(province), headers=headers)
    assert_problem(response, 422, "validation.invalid", "Idempotency-Key")
    assert state(province) == before


@pytest.mark.postgres
def test_concurrent_requests_with_one_key_create_one_der(postgres_url: str) -> None:
    """Two requests with the same key pass the 'already stored?' check before either commits (a third
    connection holds the audit chain head until both are waiting on it); one commits, the other must answer
    with the stored result, and exactly one DER exists."""
    province = build_province(postgres_url)
    headers = {**auth(province, "owner_1"), "Idempotency-Key": "raced"}
    before_ders, _ = state(province)
    raw_url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    answers: list[Response] = []

    def post() -> None:
        with client_for(province) as c:
            answers.append(c.post("/ders", json=der_body(province), headers=headers))

    with psycopg.connect(raw_url) as holder:
        holder.execute("SELECT last_seq FROM audit_head WHERE id = 1 FOR UPDATE")
        threads = [threading.Thread(target=post) for _ in range(2)]
        for t in threads:
            t.start()
        _wait_for_lock_waiters(raw_url, 2)
        holder.commit()
    for t in threads:
        t.join(timeout=60)
    assert sorted(a.status_code for a in answers) == [201, 201], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    assert state(province)[0] == before_ders + 1


def _wait_for_lock_waiters(raw_url: str, count: int) -> None:
    """Block until ``count`` other sessions wait for a lock (bounded by a statement timeout, not wall time)."""
    with psycopg.connect(raw_url, autocommit=True) as watcher:
        watcher.execute("SET statement_timeout = '30s'")
        watcher.execute(
            """
            DO $$
            BEGIN
              LOOP
                EXIT WHEN (
                  SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE NOT l.granted AND a.datname = current_database()
                ) >= %s;
                PERFORM pg_sleep(0.05);
              END LOOP;
            END $$
            """.replace("%s", str(int(count)))
        )


# ----------------------------------------------------------------------------------------------- atomicity


def test_a_refused_membership_request_adds_nobody(either_province: Province, either_client: TestClient) -> None:
    """One good DER (a3) and one already enrolled for the same service elsewhere (a2): all or nothing."""
    province, client = either_province, either_client
    enrol(province, "agg_1", "vpp", ["a2"], ENERGY, approve_as=["ldc_a"])
    headers = auth(province, "agg_1")
    created = client.post(
        "/aggregations", json={"name": "second", "markets": [{"service": "wholesale_energy"}]}, headers=headers
    )
    assert created.status_code == 201, created.text
    aggregation_id = created.json()["id"]
    audit_before = count_rows(province, audit_records)

    response = client.post(
        f"/aggregations/{aggregation_id}/members",
        json={"der_ids": [province.ders["a3"], province.ders["a2"]], "valid_from": T0.isoformat()},
        headers=headers,
    )

    body = assert_problem(response, 409, "aggregation.double_enrolment")
    assert body["details"]["conflicting_aggregation_id"] == province.aggregations["vpp"]
    assert body["details"]["conflicting_aggregation_name"] == "vpp"
    assert body["details"]["services"] == ["wholesale_energy"]
    assert client.get(f"/aggregations/{aggregation_id}", headers=headers).json()["members"] == []
    assert count_rows(province, audit_records) == audit_before
    # a3 alone is fine, so the refusal was about a2 only
    alone = client.post(
        f"/aggregations/{aggregation_id}/members",
        json={"der_ids": [province.ders["a3"]], "valid_from": T0.isoformat()},
        headers=headers,
    )
    assert alone.status_code == 201, alone.text
    assert [m["der_id"] for m in alone.json()["members"]] == [province.ders["a3"]]


def test_a_foreign_der_in_a_membership_request_is_not_found(province: Province, client: TestClient) -> None:
    """agg_1 asks for b1 (agg_2's): b1 is invisible to agg_1, so the answer is 404 like a missing DER."""
    headers = auth(province, "agg_1")
    created = client.post(
        "/aggregations", json={"name": "grab", "markets": [{"service": "wholesale_energy"}]}, headers=headers
    )
    aggregation_id = created.json()["id"]
    before = state(province)
    foreign = client.post(
        f"/aggregations/{aggregation_id}/members",
        json={"der_ids": [province.ders["b2"], province.ders["b1"]], "valid_from": T0.isoformat()},
        headers=headers,
    )
    missing = client.post(
        f"/aggregations/{aggregation_id}/members",
        json={"der_ids": [province.ders["b2"], MISSING_ID], "valid_from": T0.isoformat()},
        headers=headers,
    )
    body = assert_problem(foreign, 404, "not_found")
    other = assert_problem(missing, 404, "not_found")
    assert body["field"] == other["field"]
    assert body["detail"].replace(province.ders["b1"], "?") == other["detail"].replace(MISSING_ID, "?")
    assert state(province) == before


# ----------------------------------------------------------------------------------------------- docs and tokens


def test_openapi_and_docs_are_served_without_a_token(client: TestClient) -> None:
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    document = spec.json()
    assert document["info"]["title"] == "gridbridge"
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    assert documented == route_keys(client.app)  # type: ignore[arg-type]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text


def test_bad_token_is_unauthenticated(province: Province, client: TestClient) -> None:
    response = client.get("/me", headers={"Authorization": "Bearer gb_forged"})
    assert_problem(response, 401, "auth.unauthenticated", "authorization")
    response = client.get("/me")
    assert_problem(response, 401, "auth.unauthenticated", "authorization")


def test_authentication_comes_before_schema_checks(province: Province, client: TestClient) -> None:
    """Without a token nothing about the request is judged: a bad body or bad paging still answers 401."""
    assert_problem(client.post("/ders", json={"p_export_kw": -1}), 401, "auth.unauthenticated")
    assert_problem(client.get("/ders", params={"limit": 0}), 401, "auth.unauthenticated")


def test_issued_token_works_and_its_replay_does_not_reveal_it(province: Province, client: TestClient) -> None:
    headers = {**auth(province, "agg_2"), "Idempotency-Key": "new-token"}
    issued = client.post("/me/tokens", json={"label": "dispatch robot"}, headers=headers)
    assert issued.status_code == 201, issued.text
    secret = issued.json()["token"]
    assert isinstance(secret, str)
    assert secret.startswith("gb_")
    assert issued.json()["label"] == "dispatch robot"

    me = client.get("/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200
    assert me.json()["participant_id"] == province.ids["agg_2"]
    assert me.json()["role"] == "aggregator"

    replay = client.post("/me/tokens", json={"label": "dispatch robot"}, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == {"token": None, "label": "dispatch robot"}
    # the secret is stored nowhere: neither in the replay store nor in the token table (only its hash)
    with province.platform.unit_of_work() as uow:
        stored = [str(row) for row in uow.session.execute(select(idempotency_keys)).all()]
        tokens = [str(row) for row in uow.session.execute(select(api_tokens)).all()]
    assert stored
    assert not any(secret in row for row in stored + tokens)


# ----------------------------------------------------------------------------------------------- paging


def test_pages_cover_the_list_once(province: Province, client: TestClient) -> None:
    headers = auth(province, "regulator")
    everything = [d["id"] for d in client.get("/ders", headers=headers).json()]
    assert len(everything) == 5
    paged: list[str] = []
    for offset in range(0, 6, 2):
        page = client.get("/ders", params={"limit": 2, "offset": offset}, headers=headers)
        assert page.status_code == 200
        assert len(page.json()) <= 2
        paged += [d["id"] for d in page.json()]
    assert paged == everything
    assert client.get("/ders", params={"offset": 5}, headers=headers).json() == []


@pytest.mark.parametrize(
    ("params", "field"), [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"offset": -1}, "offset")]
)
def test_bad_paging_is_a_schema_violation(
    province: Province, client: TestClient, params: dict[str, int], field: str
) -> None:
    response = client.get("/ders", params=params, headers=auth(province, "regulator"))
    assert_problem(response, 422, "validation.request", field)
