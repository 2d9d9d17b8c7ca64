"""A DER's market products over HTTP: shown on the DER, set by its owner or representative within what its
technology can provide (problem+json naming the field and the rule otherwise), and enforced on its offers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_province import client_for
from fastapi.testclient import TestClient

from market_province import build_market_province, rt_interval
from registry_province import Province

PROBLEM = "application/problem+json"


@pytest.fixture
def world(sqlite_url: str) -> Iterator[tuple[Province, TestClient]]:
    p = build_market_province(sqlite_url)
    with client_for(p) as client:
        yield p, client


def auth(p: Province, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {p.tokens[who]}"}


def test_market_products_are_registered_within_the_technology_and_enforced_on_offers(
    world: tuple[Province, TestClient],
) -> None:
    p, client = world
    t1, t3 = p.ders["t1"], p.ders["t3"]  # a PV of owner_1, a storage DER agg_2 represents for owner_2
    assert client.get(f"/ders/{t1}", headers=auth(p, "owner_1")).json()["market_products"] == ["energy"]
    assert client.get(f"/ders/{t3}", headers=auth(p, "agg_2")).json()["market_products"] == [
        "energy",
        "operating_reserve",
    ]
    refused = client.put(
        f"/ders/{t1}/market-products", json={"products": ["energy", "operating_reserve"]}, headers=auth(p, "owner_1")
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith(PROBLEM)
    problem = refused.json()
    assert (problem["code"], problem["field"]) == ("der.product_not_capable", "products")
    assert problem["details"]["capable_products"] == ["energy"]
    assert client.get(f"/ders/{t1}", headers=auth(p, "owner_1")).json()["market_products"] == ["energy"]

    narrowed = client.put(f"/ders/{t3}/market-products", json={"products": ["energy"]}, headers=auth(p, "agg_2"))
    assert (narrowed.status_code, narrowed.json()["market_products"]) == (200, ["energy"])
    iv = rt_interval(p)
    item = {
        "resource_kind": "der",
        "resource_id": t3,
        "market": "real_time",
        "interval_start": iv.isoformat(),
        "segments": [{"price_cad_per_mwh": "30", "quantity_kw": "50"}],
    }
    acks = client.post(
        "/offers", json={"items": [item | {"product": "operating_reserve"}, item]}, headers=auth(p, "agg_2")
    ).json()["items"]
    assert [(a["code"], a["field"]) for a in acks] == [("offers.not_enrolled", "product"), ("offers.accepted", None)]
    # a product the API does not know is a request error; the DER's LDC may not register it
    unknown = client.put(f"/ders/{t3}/market-products", json={"products": ["capacity"]}, headers=auth(p, "agg_2"))
    assert (unknown.status_code, unknown.json()["code"]) == (422, "validation.request")
    ldc = client.put(f"/ders/{t3}/market-products", json={"products": []}, headers=auth(p, "ldc_a"))
    assert (ldc.status_code, ldc.json()["code"]) == (403, "auth.forbidden")
