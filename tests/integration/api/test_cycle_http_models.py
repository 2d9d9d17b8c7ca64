"""The coordination cycle end to end over HTTP, one test per coordination model, on SQLite and PostgreSQL.

Every step goes through the real app with each party's own bearer token (the TSO, the interface's LDC, an
aggregator, DER owners) on the market province (``market_province``: tdi_t Total TSO, tdi_m alt 1, tdi_a alt 2,
tdi_b Total DSO): offers with per-item acknowledgements (one bad item in a batch of good ones changes nothing
for it), the DSO's virtual resource where the model aggregates, gate closure on the injected clock, the TSO's
clearing run and its instructions, recipients seeing only their own (a competitor gets 404), splits by the DSO
and the aggregator, acknowledgements, and what the TSO may see of DER-level instructions. Each test also checks
its model's own behaviour; the last ones cover a TSO operating instruction allocated by the DSO.
(Service-level versions of the same flows with hand-checked numbers: tests/integration/services/
test_market_models.py.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from api_province import client_for
from fastapi.testclient import TestClient
from httpx import Response

from gridbridge.domain.roles import Service
from market_province import build_market_province, rt_interval
from registry_province import Province, enrol

LEAF_LINE = "LV1.101 Line 10"
"""The only line to ``LV1.101 Bus 1``: connection point 0 of every interface (t1, m1 and a1 are there)."""

Json = dict[str, Any]


class Parties:
    """The province's app, spoken to as each party with its own token."""

    def __init__(self, province: Province, client: TestClient) -> None:
        self.p = province
        self.client = client

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.p.tokens[who]}"}

    def post(self, who: str, path: str, body: Json | None = None) -> Response:
        return self.client.post(path, json=body, headers=self.headers(who))

    def get(self, who: str, path: str, **params: Any) -> Any:
        """GET as ``who``; the answer must be 200."""
        response = self.client.get(path, params=params, headers=self.headers(who))
        assert response.status_code == 200, (who, path, response.json())
        return response.json()

    def name(self, resource_id: str) -> str:
        names = {v: k for k, v in {**self.p.ders, **self.p.aggregations, **self.p.tdis}.items()}
        return names.get(resource_id, resource_id)

    # --- offers -----------------------------------------------------------------------------------------

    def item(self, kind: str, key: str, start: datetime, segments: Sequence[tuple[str, str]], **extra: str) -> Json:
        """One offer item of ``key`` (a DER or an aggregation) from ``(price CAD/MWh, kW)`` pairs."""
        resource_id = self.p.aggregations[key] if kind == "aggregation" else self.p.ders[key]
        return {
            "resource_kind": kind,
            "resource_id": resource_id,
            "market": "real_time",
            "interval_start": start.isoformat(),
            "segments": [{"price_cad_per_mwh": price, "quantity_kw": kw} for price, kw in segments],
            **extra,
        }

    def stored_offers(self) -> list[Json]:
        """Every stored offer version (the observer sees all of them, superseded ones included)."""
        found: list[Json] = self.get("regulator", "/offers", include_superseded=True, limit=1000)
        return found

    def submit(self, who: str, items: list[Json], *, bad: int, code: str) -> list[Json]:
        """POST ``items`` as ``who``: every item but ``items[bad]`` is accepted and stored as a new version;
        the bad one is acknowledged as rejected with ``code`` naming its field, and the stored state is as it
        was for it (no version added, none superseded outside the accepted items' own series). Returns the
        acknowledgements."""
        before = self.stored_offers()
        response = self.post(who, "/offers", {"items": items})
        assert response.status_code == 200, response.json()
        acks: list[Json] = response.json()["items"]
        assert [a["status"] for a in acks] == ["rejected" if n == bad else "accepted" for n in range(len(items))]
        refused = acks[bad]
        assert (refused["code"], refused["offer_id"], refused["revision"]) == (code, None, None), refused
        assert refused["field"]
        after = self.stored_offers()
        new = {o["id"] for o in after} - {o["id"] for o in before}
        assert new == {a["offer_id"] for a in acks if a["status"] == "accepted"}
        touched = {_series(i) for i, a in zip(items, acks, strict=True) if a["status"] == "accepted"}
        old = {o["id"] for o in before}
        assert [o for o in before if _series(o) not in touched] == [
            o for o in after if o["id"] in old and _series(o) not in touched
        ]
        return acks

    # --- the cycle --------------------------------------------------------------------------------------

    def outage(self, ldc: str, tdi: str, start: datetime, end: datetime) -> Json:
        """The LDC records an unplanned outage of the leaf line at ``tdi`` (its point 0 goes dark)."""
        body = {
            "kind": "unplanned_outage",
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
            "open_elements": [LEAF_LINE],
            "reason": "cable fault",
        }
        response = self.post(ldc, f"/tdis/{self.p.tdis[tdi]}/network-events", body)
        assert response.status_code == 201, response.json()
        recorded: Json = response.json()
        assert self.p.points[tdi][0] in recorded["de_energised_point_ids"]
        return recorded

    def past_gate_closure(self, start: datetime) -> None:
        """The server clock passes the real-time gate closure (10 minutes before the interval)."""
        self.p.clock.set(start - timedelta(minutes=5))

    def clear(self, start: datetime, requirement_kw: float, forecasts: list[Json] | None = None) -> Json:
        body = {
            "market": "real_time",
            "interval_start": start.isoformat(),
            "energy_requirement_kw": requirement_kw,
            "forecasts": forecasts or [],
        }
        response = self.post("tso", "/clearing-runs", body)
        assert response.status_code == 201, response.json()
        run: Json = response.json()
        return run

    def issue(self, run_id: str, *, tdis: Sequence[str]) -> dict[str, Json]:
        """The TSO issues a run's instructions; returns those at the interfaces ``tdis`` by resource name
        (``net:<tdi>`` for an interface's net-exchange schedule). A run clears every interface: tdi_b, under
        Total DSO, always gets its net-exchange schedule (0 kW where nothing was dispatched there)."""
        response = self.post("tso", f"/clearing-runs/{run_id}/instructions")
        assert response.status_code == 201, response.json()
        ids = {self.p.tdis[t] for t in tdis}
        return self.by_name([i for i in response.json() if i["tdi_id"] in ids])

    def by_name(self, instructions: list[Json]) -> dict[str, Json]:
        out: dict[str, Json] = {}
        for i in instructions:
            name = self.name(i["resource_id"])
            out[f"net:{name}" if i["resource_kind"] == "interface" else name] = i
        assert len(out) == len(instructions)
        return out

    def seen_by(self, who: str) -> set[str]:
        """Ids of the instructions ``who`` lists."""
        return {i["id"] for i in self.get(who, "/instructions", limit=1000)}

    def split(self, who: str, instruction: Json, method: str = "merit_order") -> Json:
        response = self.post(who, f"/instructions/{instruction['id']}/split", {"method": method})
        assert response.status_code == 201, response.json()
        split: Json = response.json()
        assert all(c["parent_id"] == instruction["id"] for c in split["children"])
        return split

    def answer(self, who: str, *answers: tuple[Json, str, str | None]) -> list[Json]:
        """``who`` answers in one batch ``(instruction, response, reason)``; every answer must be taken."""
        items = [
            {"instruction_id": i["id"], "response": r} | ({"reason": reason} if reason else {})
            for i, r, reason in answers
        ]
        response = self.post(who, "/instructions/responses", {"items": items})
        assert response.status_code == 200, response.json()
        acks: list[Json] = response.json()["items"]
        assert [a["code"] for a in acks] == ["ok"] * len(items), acks
        return acks

    def acknowledge(self, who: str, *instructions: Json) -> None:
        """Receipt, then acceptance, of each instruction by its recipient."""
        self.answer(who, *[(i, r, None) for i in instructions for r in ("receipt", "accept")])

    def assert_hidden(self, instruction: Json, *callers: str) -> None:
        """Each caller gets 404 ``not_found`` for the instruction, exactly as for a missing one."""
        for who in callers:
            response = self.client.get(f"/instructions/{instruction['id']}", headers=self.headers(who))
            assert (response.status_code, response.json()["code"]) == (404, "not_found"), who
            assert instruction["id"] not in self.seen_by(who), who

    def status(self, instruction: Json) -> str:
        found: str = self.get("regulator", f"/instructions/{instruction['id']}")["status"]
        return found


def _series(offer: Json) -> tuple[str, str, str, str, datetime]:
    """An offer's (or an item's) series: resource, product, side, market, interval start."""
    return (
        offer["resource_id"],
        offer.get("product", "energy"),
        offer.get("side", "offer"),
        offer["market"],
        datetime.fromisoformat(offer["interval_start"]),
    )


@pytest.fixture
def parties(database_url: str) -> Iterator[Parties]:
    province = build_market_province(database_url)
    with client_for(province) as client:
        yield Parties(province, client)


def _face(run: Json, tdi_id: str) -> Json:
    face: Json = next(f for f in run["interfaces"] if f["tdi_id"] == tdi_id)
    return face


def _dispatch(run: Json, parties: Parties) -> dict[str, tuple[float, float]]:
    """``(first, final)`` dispatch per resource name of a run as the caller saw it."""
    return {parties.name(r["resource_id"]): (r["first_p_kw"], r["p_kw"]) for r in run["resources"]}


def test_total_tso_over_http_clears_each_der_within_its_envelope(parties: Parties) -> None:
    p = parties.p
    iv = rt_interval(p)
    # owner_1's t1 (500 kW PV, 300 kW approved) is cut to its envelope at submission; its second item is a
    # non-monotonic curve for the next interval, refused without storing anything
    acks = parties.submit(
        "owner_1",
        [
            parties.item("der", "t1", iv, [("20", "500")]),
            parties.item("der", "t1", iv + timedelta(minutes=5), [("30", "100"), ("20", "100")]),
        ],
        bad=1,
        code="offers.non_monotonic",
    )
    assert (acks[0]["code"], acks[0]["accepted_kw"]) == ("offers.clipped_to_envelope", "300.000")
    assert acks[0]["binding_envelope"] == f"static_limit:der/{p.ders['t1']}/export_limit_kw"
    assert acks[1]["field"] == "segments"
    # a bad revision of t1's offer in force leaves that version in force; the good item beside it is stored
    again = parties.submit(
        "owner_1",
        [
            parties.item("der", "t1", iv, [("20", "100"), ("10", "100")]),
            parties.item("der", "t1", iv + timedelta(minutes=5), [("30", "100")]),
        ],
        bad=0,
        code="offers.non_monotonic",
    )
    assert again[1]["revision"] == 1
    in_force = parties.get("owner_1", f"/offers/{acks[0]['offer_id']}")
    assert ([v["revision"] for v in in_force["versions"]], in_force["superseded_at"]) == ([1], None)
    assert in_force["segments"] == [{"price_cad_per_mwh": "20", "quantity_kw": "300.000"}]
    parties.submit(
        "owner_2",
        [parties.item("der", "t2", iv, [("25", "200")]), parties.item("der", "t2", iv, [("2500", "10")])],
        bad=1,
        code="offers.price_above_cap",
    )
    parties.submit(
        "agg_2",
        [parties.item("der", "t3", iv, [("40", "100")]), parties.item("der", "t1", iv, [("1", "10")])],
        bad=1,
        code="offers.not_represented",  # agg_2 does not represent owner_1's t1
    )
    # Total TSO has no DSO aggregation: the LDC has nothing to merge there
    dso = parties.post(
        "ldc_a", f"/tdis/{p.tdis['tdi_t']}/dso-offers", {"market": "real_time", "interval_start": iv.isoformat()}
    )
    assert (dso.status_code, dso.json()["code"], dso.json()["field"]) == (409, "offers.not_enrolled", "tdi_id")

    parties.past_gate_closure(iv)
    late = parties.post("owner_2", "/offers", {"items": [parties.item("der", "t2", iv, [("10", "200")])]})
    assert (late.status_code, late.json()["details"]["items"][0]["code"]) == (422, "offers.gate_closed")
    # after gate closure t1's feeder trips: its envelope in force drops to 0, and the TSO's clearing carries it
    parties.outage("ldc_a", "tdi_t", p.clock.now(), iv + timedelta(hours=1))

    run = parties.clear(iv, 300.0, [{"tdi_id": p.tdis["tdi_t"], "load_kw": 500}])
    # t1 is held to 0 in the clearing itself (no after-the-fact check, nothing curtailed): t2 200 @ 25, t3 100 @ 40
    assert _dispatch(run, parties) == {"t1": (0.0, 0.0), "t2": (200.0, 200.0), "t3": (100.0, 100.0)}
    assert run["curtailments"] == []
    face = _face(run, p.tdis["tdi_t"])
    assert (face["energy_price_cad_per_mwh"], face["shortfall_kw"], face["net_flow_kw"]) == ("40.00", 0.0, 200.0)

    got = parties.issue(run["id"], tdis=["tdi_t"])
    assert {k: (i["p_kw"], i["recipient_id"]) for k, i in got.items()} == {
        "t2": (200.0, p.ids["owner_2"]),
        "t3": (100.0, p.ids["agg_2"]),
    }
    # recipients see their own; owner_1 (whose t1 got nothing) and agg_1 are competitors and see neither
    assert parties.seen_by("owner_2") == {got["t2"]["id"]}
    assert parties.seen_by("agg_2") == {got["t3"]["id"]}
    parties.assert_hidden(got["t2"], "owner_1", "agg_1", "agg_2")
    parties.assert_hidden(got["t3"], "owner_1", "agg_1")
    # Total TSO: the TSO sees and dispatches every DER; the LDC sees what goes on at its interface
    assert {got["t2"]["id"], got["t3"]["id"]} <= parties.seen_by("tso")
    assert {got["t2"]["id"], got["t3"]["id"]} <= parties.seen_by("ldc_a")

    parties.acknowledge("owner_2", got["t2"])
    parties.answer("agg_2", (got["t3"], "receipt", None), (got["t3"], "reject", "battery held for a DSO service"))
    assert (parties.status(got["t2"]), parties.status(got["t3"])) == ("accepted", "rejected")
    detail = parties.get("tso", f"/instructions/{got['t3']['id']}")
    assert detail["response_reason"] == "battery held for a DSO service"


def test_alt1_over_http_an_outage_after_gate_closure_is_cut_by_the_dso_and_redispatched(parties: Parties) -> None:
    p = parties.p
    iv = rt_interval(p)
    acks = parties.submit(
        "owner_2",
        [
            parties.item("der", "m1", iv, [("25", "200")]),
            parties.item("der", "m1", iv, [("30", "50")], side="bid", product="operating_reserve"),
            parties.item("der", "t2", iv, [("45", "200")]),
        ],
        bad=1,
        code="offers.reserve_bid",
    )
    # alt 1 direct offers are not cut at submission: the TSO models them at the interface without envelopes
    assert (acks[0]["code"], acks[0]["accepted_kw"]) == ("offers.accepted", "200")
    parties.submit(
        "agg_1",
        [parties.item("der", "m2", iv, [("35", "300")]), parties.item("der", "m2", iv, [("40", "0")])],
        bad=1,
        code="offers.quantity_not_positive",
    )
    # below the interface's 100 kW threshold a DER cannot offer on its own under alt 1
    small = parties.post("owner_1", "/offers", {"items": [parties.item("der", "m3", iv, [("10", "60")])]})
    assert (small.status_code, small.json()["details"]["items"][0]["code"]) == (422, "offers.not_enrolled")

    parties.past_gate_closure(iv)
    recorded = parties.outage("ldc_b", "tdi_m", p.clock.now(), iv + timedelta(hours=1))
    assert p.ids["owner_2"] in recorded["notified_participant_ids"]

    run = parties.clear(iv, 400.0, [{"tdi_id": p.tdis["tdi_m"], "load_kw": 1000}])
    # the TSO first dispatched m1 200 @ 25 and m2 200 @ 35; the DSO's check finds m1's point dark, cuts it and
    # hands the 200 kW back; the TSO re-dispatches m2's last 100 kW and 100 kW of t2 (at tdi_t) at 45
    assert _dispatch(run, parties) == {"m1": (200.0, 0.0), "m2": (200.0, 300.0), "t2": (0.0, 100.0)}
    (cut,) = run["curtailments"]
    point = p.points["tdi_m"][0]
    assert (cut["der_id"], cut["curtailed_kw"], cut["allowed_kw"], cut["checked_by"]) == (
        p.ders["m1"],
        200.0,
        0.0,
        "dso",
    )
    assert cut["reason"].startswith(f"envelope:point/{point}:de-energised")
    face = _face(run, p.tdis["tdi_m"])
    assert (face["shortfall_kw"], face["injection_kw"]) == (200.0, 300.0)
    assert sum(f["redispatched_kw"] for f in run["interfaces"]) == pytest.approx(200.0)
    assert run["system_energy_price_cad_per_mwh"] == "45.00"
    # m1's owner sees the cut of its DER, a competitor aggregator does not
    assert len(parties.get("owner_2", f"/clearing-runs/{run['id']}")["curtailments"]) == 1
    assert parties.get("agg_1", f"/clearing-runs/{run['id']}")["curtailments"] == []

    got = parties.issue(run["id"], tdis=["tdi_m", "tdi_t"])
    assert {k: (i["p_kw"], i["recipient_id"]) for k, i in got.items()} == {
        "m2": (300.0, p.ids["agg_1"]),
        "t2": (100.0, p.ids["owner_2"]),
    }
    assert parties.seen_by("agg_1") == {got["m2"]["id"]}
    assert parties.seen_by("owner_2") == {got["t2"]["id"]}
    parties.assert_hidden(got["m2"], "owner_2", "agg_2")
    # alt 1: the TSO sees the direct DERs it dispatched; the LDC sees those at its interface only
    assert {got["m2"]["id"], got["t2"]["id"]} <= parties.seen_by("tso")
    assert got["m2"]["id"] in parties.seen_by("ldc_b")
    parties.assert_hidden(got["t2"], "ldc_b")

    parties.acknowledge("agg_1", got["m2"])
    parties.acknowledge("owner_2", got["t2"])
    assert {parties.status(i) for i in got.values()} == {"accepted"}


def test_alt2_over_http_the_dsos_virtual_resource_is_cleared_and_split_by_merit_order_within_envelopes(
    parties: Parties,
) -> None:
    p = parties.p
    p.clock.advance(timedelta(days=2))  # aggregation memberships start a day after T0
    enrol(p, "agg_1", "vpp_1", ["a2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_a"])
    iv = rt_interval(p)
    acks = parties.submit(
        "owner_2",
        [
            parties.item("der", "big_a", iv, [("40", "1500")]),
            parties.item("der", "a3", iv, [("5", "60")]),
            parties.item("der", "a3", iv, [("5", "61")]),
        ],
        bad=2,
        code="offers.beyond_capability",
    )
    assert [a["code"] for a in acks[:2]] == ["offers.accepted", "offers.accepted"]
    stored = {o["id"]: o for o in parties.stored_offers()}
    assert (stored[acks[0]["offer_id"]]["route"], stored[acks[1]["offer_id"]]["route"]) == ("tso", "dso")
    parties.submit(
        "owner_1",
        [parties.item("der", "a1", iv, [("10", "40"), ("50", "20")]), parties.item("der", "a1", iv, [("10", "-5")])],
        bad=1,
        code="offers.quantity_not_positive",
    )
    vpp = parties.submit(
        "agg_1",
        [
            parties.item("aggregation", "vpp_1", iv, [("30", "60")]),
            parties.item("der", "dr_a", iv, [("45", "200")]),
            parties.item("der", "a2", iv, [("15", "60")]),  # a2 is sold through vpp_1 in this interval
        ],
        bad=2,
        code="offers.double_counted",
    )
    # vpp_1 (60 kW at tdi_a) is below the interface's 1,000 kW threshold: it goes to the DSO too
    assert {o["id"]: o for o in parties.stored_offers()}[vpp[0]["offer_id"]]["route"] == "dso"
    built = parties.post(
        "ldc_a", f"/tdis/{p.tdis['tdi_a']}/dso-offers", {"market": "real_time", "interval_start": iv.isoformat()}
    )
    assert built.status_code == 201, built.json()
    (virtual,) = built.json()
    assert (virtual["resource_kind"], virtual["route"], len(virtual["source_offer_ids"])) == ("dso_virtual", "tso", 4)
    assert [(s["price_cad_per_mwh"], s["quantity_kw"]) for s in virtual["segments"]] == [
        ("5.00", "60.000"),
        ("10.00", "40.000"),
        ("30.00", "60.000"),
        ("45.00", "200.000"),
        ("50.00", "20.000"),
    ]
    # the TSO sees the virtual resource, not the offers merged into it
    tso_offers = {o["id"] for o in parties.get("tso", "/offers", limit=1000)}
    assert virtual["id"] in tso_offers
    assert not set(virtual["source_offer_ids"]) & tso_offers

    parties.past_gate_closure(iv)
    # after gate closure a1's feeder trips: the DSO's split must keep a1 within its (now zero) envelope
    parties.outage("ldc_a", "tdi_a", p.clock.now(), iv + timedelta(hours=1))
    run = parties.clear(iv, 1700.0, [{"tdi_id": p.tdis["tdi_a"], "load_kw": 3000}])
    # merit order: the virtual resource's 5, 10 and 30 bands (160 kW), big_a 40 (1,660 kW), then 40 kW of its
    # 45 band (dr_a): the price
    assert run["system_energy_price_cad_per_mwh"] == "45.00"
    assert _dispatch(run, parties) == {"big_a": (1500.0, 1500.0), "tdi_a": (200.0, 200.0)}
    got = parties.issue(run["id"], tdis=["tdi_a"])
    assert {k: (i["p_kw"], i["recipient_id"]) for k, i in got.items()} == {
        "big_a": (1500.0, p.ids["owner_2"]),
        "tdi_a": (200.0, p.ids["ldc_a"]),
    }
    parties.acknowledge("ldc_a", got["tdi_a"])

    split = parties.split("ldc_a", got["tdi_a"])
    children = parties.by_name(split["children"])
    # cheapest first within envelopes: a3 60 at 5; a1 (10, but dark: 0) is passed over; vpp_1 60 at 30; dr_a
    # takes the other 80 at 45
    assert {k: (c["resource_kind"], c["p_kw"], c["recipient_id"]) for k, c in children.items()} == {
        "a3": ("der", 60.0, p.ids["agg_1"]),
        "vpp_1": ("aggregation", 60.0, p.ids["agg_1"]),
        "dr_a": ("der", 80.0, p.ids["agg_1"]),
    }
    assert split["shortfall_kw"] == 0.0
    assert all(c["issuer_id"] == p.ids["ldc_a"] for c in children.values())
    # the aggregator splits its share further, to its member
    (a2,) = parties.split("agg_1", children["vpp_1"])["children"]
    assert (a2["der_id"], a2["p_kw"], a2["recipient_id"]) == (p.ders["a2"], 60.0, p.ids["agg_1"])

    # recipients see their own: agg_1 its share of the DSO's split and a2; owner_2 big_a only
    mine = {children[k]["id"] for k in ("a3", "vpp_1", "dr_a")} | {a2["id"]}
    assert parties.seen_by("agg_1") == mine
    assert parties.seen_by("owner_2") == {got["big_a"]["id"]}
    parties.assert_hidden(got["big_a"], "owner_1", "agg_1", "agg_2")
    parties.assert_hidden(children["dr_a"], "owner_2", "agg_2")
    # alt 2: the TSO sees its own instructions and the market-participating DERs (a2, sold through the wholesale
    # aggregation vpp_1, and vpp_1's share), not the DERs behind the DSO
    at_tdi_a = {i["id"] for i in parties.get("tso", "/instructions", limit=1000) if i["tdi_id"] == p.tdis["tdi_a"]}
    assert at_tdi_a == {got["big_a"]["id"], got["tdi_a"]["id"], children["vpp_1"]["id"], a2["id"]}
    parties.assert_hidden(children["a3"], "tso")
    parties.assert_hidden(children["dr_a"], "tso")
    assert {c["id"] for c in parties.get("ldc_a", f"/instructions/{got['tdi_a']['id']}")["children"]} == {
        children[k]["id"] for k in ("a3", "vpp_1", "dr_a")
    }

    parties.acknowledge("owner_2", got["big_a"])
    parties.acknowledge("agg_1", children["vpp_1"], children["a3"], a2)
    parties.answer("agg_1", (children["dr_a"], "receipt", None), (children["dr_a"], "reject", "site closed"))
    assert parties.status(children["dr_a"]) == "rejected"
    assert {parties.status(i) for i in (got["big_a"], got["tdi_a"], children["vpp_1"], children["a3"], a2)} == {
        "accepted"
    }


def test_total_dso_over_http_the_dso_gets_the_interface_schedule_and_the_tso_hears_of_reverse_flow(
    parties: Parties,
) -> None:
    p = parties.p
    p.clock.advance(timedelta(days=2))
    enrol(p, "agg_1", "vpp_b", ["b2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_b"])
    iv = rt_interval(p)
    acks = parties.submit(
        "agg_2",
        [
            parties.item("der", "b1", iv, [("15", "60")]),
            parties.item("der", "b1", iv + timedelta(minutes=2), [("15", "60")]),
        ],
        bad=1,
        code="offers.misaligned_interval",
    )
    stored = {o["id"]: o for o in parties.stored_offers()}
    assert stored[acks[0]["offer_id"]]["route"] == "dso"  # Total DSO: nothing goes to the TSO directly
    parties.submit(
        "agg_1",
        [parties.item("aggregation", "vpp_b", iv, [("22", "60")]), parties.item("der", "b1", iv, [("1", "10")])],
        bad=1,
        code="offers.not_represented",
    )
    # the owner cannot sell b2 on its own while vpp_b sells it
    double = parties.post("owner_1", "/offers", {"items": [parties.item("der", "b2", iv, [("1", "10")])]})
    assert (double.status_code, double.json()["details"]["items"][0]["code"]) == (422, "offers.double_counted")
    built = parties.post(
        "ldc_b", f"/tdis/{p.tdis['tdi_b']}/dso-offers", {"market": "real_time", "interval_start": iv.isoformat()}
    )
    assert built.status_code == 201, built.json()
    (virtual,) = built.json()
    assert len(virtual["source_offer_ids"]) == 2

    parties.past_gate_closure(iv)
    run = parties.clear(iv, 100.0, [{"tdi_id": p.tdis["tdi_b"], "load_kw": 30}])
    face = _face(run, p.tdis["tdi_b"])
    assert (face["injection_kw"], face["net_flow_kw"], face["reverse_flow"]) == (100.0, -70.0, True)
    assert run["system_energy_price_cad_per_mwh"] == "22.00"
    # the TSO sees no DER at a Total DSO interface, only the DSO's virtual resource
    assert {r["resource_kind"] for r in run["resources"]} == {"dso_virtual"}

    got = parties.issue(run["id"], tdis=["tdi_b"])
    # the DSO receives its virtual resource's dispatch and the interface's scheduled net exchange
    assert {k: (i["resource_kind"], i["p_kw"], i["recipient_id"]) for k, i in got.items()} == {
        "tdi_b": ("dso_virtual", 100.0, p.ids["ldc_b"]),
        "net:tdi_b": ("interface", 70.0, p.ids["ldc_b"]),
    }
    assert parties.seen_by("ldc_b") >= {got["tdi_b"]["id"], got["net:tdi_b"]["id"]}
    parties.assert_hidden(got["net:tdi_b"], "ldc_a", "agg_1", "agg_2", "owner_1", "owner_2")
    # reverse flow reaches the TSO (and nobody else) through GET /notifications
    notes = [n for n in parties.get("tso", "/notifications") if n["kind"] == "reverse_flow"]
    assert [(n["tdi_id"], n["magnitude_kw"], n["run_id"]) for n in notes] == [(p.tdis["tdi_b"], 70.0, run["id"])]
    for who in ("ldc_b", "agg_1", "owner_2"):
        assert [n for n in parties.get(who, "/notifications") if n["kind"] == "reverse_flow"] == []

    split = parties.split("ldc_b", got["tdi_b"], "pro_rata")
    children = parties.by_name(split["children"])
    assert {k: (c["resource_kind"], c["p_kw"], c["recipient_id"]) for k, c in children.items()} == {
        "b1": ("der", 50.0, p.ids["agg_2"]),
        "vpp_b": ("aggregation", 50.0, p.ids["agg_1"]),
    }
    (b2,) = parties.split("agg_1", children["vpp_b"])["children"]
    assert (b2["der_id"], b2["p_kw"], b2["parent_id"]) == (p.ders["b2"], 50.0, children["vpp_b"]["id"])

    assert parties.seen_by("agg_2") == {children["b1"]["id"]}
    assert parties.seen_by("agg_1") == {children["vpp_b"]["id"], b2["id"]}
    parties.assert_hidden(children["b1"], "agg_1", "owner_1")
    parties.assert_hidden(b2, "agg_2", "owner_2")
    # Total DSO: no DER-level instruction is visible to the TSO
    parties.assert_hidden(children["b1"], "tso")
    parties.assert_hidden(b2, "tso")
    assert {i["resource_kind"] for i in parties.get("tso", "/instructions", limit=1000)} <= {
        "dso_virtual",
        "interface",
        "aggregation",
    }

    parties.acknowledge("ldc_b", got["tdi_b"], got["net:tdi_b"])
    parties.acknowledge("agg_2", children["b1"])
    parties.acknowledge("agg_1", children["vpp_b"], b2)
    assert {parties.status(i) for i in (*got.values(), *children.values(), b2)} == {"accepted"}


def test_a_tso_operating_instruction_over_http_is_allocated_by_the_dso(parties: Parties) -> None:
    p = parties.p
    start = rt_interval(p, 10)
    body = {
        "tdi_id": p.tdis["tdi_t"],
        "p_kw": 150,
        "interval_start": start.isoformat(),
        "interval_end": (start + timedelta(hours=1)).isoformat(),
        "reason": "bulk-system contingency: curtail 150 kW of load under tdi_t",
    }
    created = parties.post("tso", "/operating-instructions", body)
    assert created.status_code == 201, created.json()
    order = created.json()
    assert (order["kind"], order["product"], order["recipient_id"]) == ("operating", "load_curtailment", p.ids["ldc_a"])
    for who in ("ldc_b", "agg_2", "owner_2"):
        refused = parties.post(who, "/operating-instructions", body)
        assert refused.status_code == 403, (who, refused.json())
    parties.assert_hidden(order, "ldc_b", "agg_1", "agg_2", "owner_1", "owner_2")
    parties.answer("ldc_a", (order, "receipt", None), (order, "accept", None))

    split = parties.split("ldc_a", order, "pro_rata")
    # the only DER under tdi_t that can cut load is t3 (100 kW storage): it takes 100, 50 kW are short
    (child,) = split["children"]
    assert (child["der_id"], child["p_kw"], child["recipient_id"], child["kind"]) == (
        p.ders["t3"],
        100.0,
        p.ids["agg_2"],
        "operating",
    )
    assert split["shortfall_kw"] == 50.0
    assert split["parent"]["shortfall_kw"] == 50.0
    assert parties.seen_by("agg_2") == {child["id"]}
    parties.assert_hidden(child, "owner_1", "agg_1", "ldc_b")
    tso_view = parties.get("tso", f"/instructions/{order['id']}")
    assert [c["id"] for c in tso_view["children"]] == [child["id"]]  # Total TSO: the TSO sees every DER
    parties.acknowledge("agg_2", child)
    assert parties.status(child) == "accepted"
