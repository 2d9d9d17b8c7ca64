"""The province the API tests run against, and small helpers for talking to the real app over HTTP.

``build_matrix_province`` extends the shared test province (``registry_province.build_province``) with one
object in every state a route needs, so that each route of the permission matrix has a target on which the
authorised caller's request succeeds:

===========  ==================================================================================================
DER key      state (all in service unless said); interface; owner (representative)
===========  ==================================================================================================
a1           tdi_a; owner_1
a2           enrolled in ``vpp_1`` (wholesale energy, approved): market-participating; tdi_a; owner_1 (agg_1)
a3           pending member of ``span``; tdi_a; owner_2 (agg_1)
b1           enrolled in ``vpp_2`` (wholesale energy, approved): market-participating; tdi_b; owner_2 (agg_2)
b2           rejected member of ``span`` (safety); tdi_b; owner_1 (agg_1)
r1           requested; tdi_a; owner_1
rv1          under review; tdi_a; owner_1
ap1          approved, not commissioned; tdi_a; owner_1
s1           suspended; tdi_a; owner_1
t1           tdi_a; owner_1 (agg_1)
m1           tdi_a; owner_2 (agg_1); in no aggregation
d1           pending member of ``flex_b``; tdi_b; ldc_b itself (DSO-affiliated)
===========  ==================================================================================================

Aggregations: ``vpp_1`` (agg_1, wholesale energy, single interface: a2 approved), ``span`` (agg_1, operating
reserve, multi-interface: a3 pending, b2 rejected by ldc_b), ``vpp_2`` (agg_2, wholesale energy: b1 approved),
``flex_b`` (ldc_b itself, distribution services: d1 pending).

Interfaces: tdi_a (alt 2, ldc_a), tdi_b (total DSO, ldc_b), and tdi_c (alt 1, ldc_a) without a network model.

The coordination cycle (``add_market``), labelled in ``MatrixProvince.market``: day-ahead offers for D1 (a1 by
owner_1 and b2 by agg_1 through the DSOs, vpp_1 to the TSO while tdi_a's threshold is lowered to 60 kW for its
offer, vpp_2 through ldc_b) and for D2 (a1, a3); the DSOs'
virtual-resource offers for D1; run D1 cleared and dispatched (``vpp_1@D1`` to agg_1, ``virtual:tdi_a@D1`` to
ldc_a, ``virtual:tdi_b@D1`` and ``net:tdi_b@D1`` to ldc_b; ldc_b split its virtual instruction into ``vpp_2@D1``
for agg_2 and ``b2@D1`` for agg_1); real-time run R0 cleared but not dispatched, R1 dispatched (``net:tdi_b@R1``
to ldc_b, overdue: the clock is 3 minutes past its deadline). Reverse flow was notified for tdi_a and tdi_b at D1.

Envelopes (``add_envelopes``, labelled in ``MatrixProvince.envelopes``): a published run on tdi_a and one on
tdi_b (two 30-minute intervals each), an outage of tdi_a's feeder ``LV1.101 Line 12`` over that hour (the points
of a2 and t1 drop to zero; ldc_a, the TSO, owner_1 and agg_1 are notified; a recomputation is queued), and a
computed but unpublished run of tdi_a (``run:draft``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import fastapi.routing as fastapi_routing
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gridbridge.domain.aggregation import RejectionCategory
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.der import ReviewDecision
from gridbridge.domain.market import Instruction, InterfaceForecast, OfferItem, ResourceKind
from gridbridge.domain.offers import Market, OfferSegment, Product, Side
from gridbridge.domain.roles import Service
from gridbridge.services import aggregations, clearing, ders, tdis
from gridbridge.services import instructions as market_instructions
from gridbridge.services import offers as market_offers
from gridbridge.services.context import Context
from gridbridge.store.tables import audit_records
from gridbridge.store.tables import ders as ders_table
from registry_province import GRID, T0, Province, build_province, enrol, spec

ROLES = ("tso", "ldc_a", "ldc_b", "agg_1", "agg_2", "owner_1", "owner_2", "regulator", "anonymous")
"""Every caller of the matrix: the eight participants of the province and a request without a token."""

ANONYMOUS = "anonymous"
MISSING_ID = "00000000-0000-4000-8000-000000000000"
"""An id that names nothing in any table."""

DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
NETWORK_SOURCE = f"simbench:{GRID}"


@dataclass
class MatrixProvince:
    """The test province plus the named members and a client on its real app."""

    province: Province
    client: TestClient
    members: dict[str, str] = field(default_factory=dict)
    """Membership ids by ``"<aggregation>/<der key>"``."""
    market: dict[str, str] = field(default_factory=dict)
    """Ids of the coordination cycle's objects by label (``run:D1``, ``offer:vpp_1@D1``, ``instruction:b2@D1``)."""
    intervals: dict[str, str] = field(default_factory=dict)
    """Interval labels (``D1``, ``R1``) by ISO start time (UTC)."""
    envelopes: dict[str, str] = field(default_factory=dict)
    """Envelope objects by label (``run:published``, ``run:draft``, ``run:queued``, ``event:outage``) and
    connection points by id (``point:<id>`` -> ``tdi_a(a2)``: interface and the DER keys at the point)."""
    network_source: str = NETWORK_SOURCE
    """What ``POST /tdis/{id}/network`` imports (a pandapower JSON file of the same grid loads much faster)."""

    @property
    def ders(self) -> dict[str, str]:
        return self.province.ders

    @property
    def aggregations(self) -> dict[str, str]:
        return self.province.aggregations

    def headers(self, role: str) -> dict[str, str]:
        """The Authorization header of ``role`` (none for the anonymous caller)."""
        if role == ANONYMOUS:
            return {}
        return {"Authorization": f"Bearer {self.province.tokens[role]}"}

    def names_by_id(self) -> dict[str, str]:
        """Every named object's id mapped to its test name (DER keys, aggregation, participant, interface names)."""
        names = {v: k for k, v in self.province.ders.items()}
        names.update({v: k for k, v in self.province.aggregations.items()})
        names.update({v: k for k, v in self.province.ids.items()})
        names.update({v: k for k, v in self.province.tdis.items()})
        names.update({v: k.split(":", 1)[1] for k, v in self.market.items()})
        return names

    def interval_label(self, iso: str) -> str:
        """The label of an interval start as the API answers it (``2026-...Z`` or ``+00:00``)."""
        return self.intervals.get(iso.replace("Z", "+00:00"), f"?{iso}")

    def audit_count(self) -> int:
        """Rows in the audit trail."""
        return count_rows(self.province, audit_records)

    def der_count(self) -> int:
        """Rows in the DER table."""
        return count_rows(self.province, ders_table)


def count_rows(province: Province, table: Any) -> int:
    """Number of rows of ``table`` in the province's database, read in a fresh transaction."""
    with province.platform.unit_of_work() as uow:
        return int(uow.session.execute(select(func.count()).select_from(table)).scalar_one())


def client_for(province: Province) -> TestClient:
    """A TestClient on the province's real app (real store, real services, the province's fixed clock)."""
    return TestClient(province.platform.app(), raise_server_exceptions=False)


def _file(province: Province, who: str, key: str, point: int, owner: str | None = None) -> str:
    def file(ctx: Context) -> str:
        owner_id = province.ids[owner] if owner else None
        return ders.request_interconnection(ctx, spec(f"der-{key}", 60.0), point, owner_id=owner_id).id

    der_id = str(province.run(who, file))
    province.ders[key] = der_id
    return der_id


def _as_ldc(province: Province, ldc: str, steps: Callable[[Context], object]) -> None:
    province.run(ldc, steps)


def build_matrix_province(database_url: str) -> MatrixProvince:
    """Build the matrix province on ``database_url`` (see the module docstring for what it holds)."""
    province = build_province(database_url)
    pa, pb = province.points["tdi_a"], province.points["tdi_b"]

    r1 = _file(province, "owner_1", "r1", pa[3])
    rv1 = _file(province, "owner_1", "rv1", pa[4])
    ap1 = _file(province, "owner_1", "ap1", pa[5])
    s1 = _file(province, "owner_1", "s1", pa[6])
    t1 = _file(province, "agg_1", "t1", pa[7], owner="owner_1")
    m1 = _file(province, "agg_1", "m1", pa[8], owner="owner_2")
    d1 = _file(province, "ldc_b", "d1", pb[2])
    del r1

    def ldc_a_steps(ctx: Context) -> None:
        ders.start_review(ctx, rv1)
        for der_id in (ap1, s1, t1, m1):
            ders.start_review(ctx, der_id)
            ders.decide_review(ctx, der_id, ReviewDecision.APPROVED, "within hosting capacity")
        for der_id in (s1, t1, m1):
            ders.commission(ctx, der_id)
        ders.suspend(ctx, s1)

    def ldc_b_steps(ctx: Context) -> None:
        ders.start_review(ctx, d1)
        ders.decide_review(ctx, d1, ReviewDecision.APPROVED, "within hosting capacity")
        ders.commission(ctx, d1)

    _as_ldc(province, "ldc_a", ldc_a_steps)
    _as_ldc(province, "ldc_b", ldc_b_steps)

    def add_tdi_c(ctx: Context) -> None:
        tdi = tdis.create_tdi(
            ctx,
            name="tdi_c",
            price_node="TDI_C",
            dso_id=province.ids["ldc_a"],
            model=ModelName.ALT1_MINIMAL_DSO,
            import_limit_kw=3000,
            export_limit_kw=1000,
        )
        province.tdis["tdi_c"] = tdi.id

    province.run("tso", add_tdi_c)

    enrol(province, "agg_1", "vpp_1", ["a2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_a"])
    enrol(province, "agg_1", "span", ["a3", "b2"], {Service.OPERATING_RESERVE: 50.0}, multi_tdi=True)
    enrol(province, "agg_2", "vpp_2", ["b1"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_b"])
    enrol(province, "ldc_b", "flex_b", ["d1"], {Service.DISTRIBUTION_SERVICES: None})

    matrix = MatrixProvince(province, client_for(province))

    def member_ids(ctx: Context) -> dict[str, str]:
        found = {}
        for agg_name, agg_id in province.aggregations.items():
            for member in aggregations.get_aggregation(ctx, agg_id).members:
                der_key = next(k for k, v in province.ders.items() if v == member.der_id)
                found[f"{agg_name}/{der_key}"] = member.id
        return found

    matrix.members.update(dict(province.run("regulator", member_ids)))  # type: ignore[call-overload]

    def reject_b2(ctx: Context) -> None:
        aggregations.review_member(
            ctx,
            province.aggregations["span"],
            matrix.members["span/b2"],
            ReviewDecision.REJECTED,
            "feeder at its thermal limit",
            RejectionCategory.SAFETY,
        )

    province.run("ldc_b", reject_b2)
    add_market(matrix)
    add_envelopes(matrix)
    return matrix


def add_envelopes(matrix: MatrixProvince) -> None:
    """Envelopes (see the module docstring): 30-minute intervals and a one-hour horizon on tdi_a and tdi_b; a
    published run on each; an outage of tdi_a's feeder ``LV1.101 Line 12`` (points of a2 and t1) over the
    published hour, which zeroes their envelopes, queues a recomputation and notifies ldc_a, the TSO, owner_1
    and agg_1; then a computed, unpublished run of tdi_a (``run:draft``)."""
    from gridbridge.adapters.powerflow.stored import PandapowerEnvelopeBackend
    from gridbridge.domain.envelope_publication import floor_to_interval
    from gridbridge.domain.network_state import NetworkEventKind
    from gridbridge.services import envelope_runs, network_state

    province = matrix.province
    backend = PandapowerEnvelopeBackend()
    keys_at: dict[int, list[str]] = {}
    with province.platform.unit_of_work() as uow:
        for key, der_id in province.ders.items():
            der = uow.ders.get(der_id)
            assert der is not None
            keys_at.setdefault(der.connection_point_id, []).append(key)
    for tdi, ldc in (("tdi_a", "ldc_a"), ("tdi_b", "ldc_b")):
        for point in province.points[tdi]:
            matrix.envelopes[f"point:{point}"] = f"{tdi}({','.join(sorted(keys_at.get(point, ['-'])))})"
        tdi_id = province.tdis[tdi]

        def publish(ctx: Context, tdi_id: str = tdi_id) -> str:
            envelope_runs.update_settings(ctx, tdi_id, {"interval_minutes": 30, "horizon_hours": 1})
            return envelope_runs.compute_run(ctx, backend, tdi_id, publish=True).run.id

        matrix.envelopes[f"run:published@{tdi}"] = str(province.run(ldc, publish))
    start = floor_to_interval(province.clock.now(), 30)

    def outage(ctx: Context) -> tuple[str, str]:
        done = network_state.record_event(
            ctx,
            province.tdis["tdi_a"],
            NetworkEventKind.UNPLANNED_OUTAGE,
            start,
            start + timedelta(hours=1),
            open_elements=["LV1.101 Line 12"],
            reason="cable fault",
        )
        assert done.queued_run is not None
        return done.event.id, done.queued_run.id

    found = province.run("ldc_a", outage)
    assert isinstance(found, tuple)
    matrix.envelopes["event:outage"], matrix.envelopes["run:queued"] = str(found[0]), str(found[1])
    draft = province.run("ldc_a", lambda ctx: envelope_runs.compute_run(ctx, backend, province.tdis["tdi_a"]).run.id)
    matrix.envelopes["run:draft"] = str(draft)


def add_market(matrix: MatrixProvince) -> None:
    """The coordination cycle's objects of the module docstring, made through the real services."""
    p = matrix.province
    d1, d2 = T0 + timedelta(hours=25), T0 + timedelta(hours=26)  # after vpp_1's and vpp_2's members start
    der, aggregation = ResourceKind.DER, ResourceKind.AGGREGATION

    def da(kind: ResourceKind, resource_id: str, start: datetime, price: float, kw: float) -> OfferItem:
        segment = (OfferSegment(Decimal(str(price)), Decimal(str(kw))),)
        return OfferItem(kind, resource_id, Product.ENERGY, Market.DAY_AHEAD, Side.OFFER, start, segment)

    def submit(who: str, *items: OfferItem) -> None:
        acks = p.run(who, lambda ctx: market_offers.submit_offers(ctx, list(items)))
        for ack in acks:  # type: ignore[attr-defined]
            name = matrix.names_by_id().get(ack.item.resource_id, "?")
            matrix.market[f"offer:{name}@{'D1' if ack.item.interval_start == d1 else 'D2'}"] = ack.offer.id

    submit("owner_1", da(der, p.ders["a1"], d1, 20, 50), da(der, p.ders["a1"], d2, 20, 50))
    # vpp_1 (60 kW at tdi_a) offers to the TSO directly: for its offer ldc_a lowers tdi_a's direct-participation
    # threshold to 60 kW (at the default 1,000 kW the aggregation would go through ldc_a's virtual resource), then
    # puts it back, so that the lone 60 kW DERs keep offering through the DSO
    threshold = p.run("regulator", lambda ctx: tdis.get_tdi(ctx.uow, p.tdis["tdi_a"]).direct_threshold_kw)

    def set_threshold(kw: float) -> None:
        p.run(
            "ldc_a",
            lambda ctx: tdis.update_limits(
                ctx, p.tdis["tdi_a"], import_limit_kw=None, export_limit_kw=None, direct_threshold_kw=kw
            ),
        )

    set_threshold(60.0)
    submit("agg_1", da(aggregation, p.aggregations["vpp_1"], d1, 30, 60))
    set_threshold(float(threshold))  # type: ignore[arg-type]
    submit(
        "agg_1",
        da(der, p.ders["b2"], d1, 25, 60),
        da(der, p.ders["a3"], d2, 22, 40),  # a1 may be suspended by another cell before ldc_a merges D2
    )
    submit("agg_2", da(aggregation, p.aggregations["vpp_2"], d1, 15, 60))
    for ldc, tdi in (("ldc_a", "tdi_a"), ("ldc_b", "tdi_b")):
        (virtual,) = p.run(
            ldc, lambda ctx, tdi=tdi: market_offers.aggregate_dso_offers(ctx, p.tdis[tdi], Market.DAY_AHEAD, d1)
        )  # type: ignore[misc]
        matrix.market[f"offer:virtual:{tdi}@D1"] = virtual.id

    p.clock.set(d1 - timedelta(hours=12) + timedelta(minutes=1))  # past D1's gate closure, before D2's
    now = p.clock.now()
    r0 = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) - timedelta(minutes=10)
    r1, r2 = r0 + timedelta(minutes=5), r0 + timedelta(minutes=10)
    matrix.intervals.update({d1.isoformat(): "D1", d2.isoformat(): "D2", r0.isoformat(): "R0"})
    matrix.intervals.update({r1.isoformat(): "R1", r2.isoformat(): "R2"})

    def instruction_label(i: Instruction) -> str:
        if i.resource_kind is ResourceKind.DSO_VIRTUAL:
            name = f"virtual:{matrix.names_by_id()[i.resource_id]}"
        elif i.resource_kind is ResourceKind.INTERFACE:
            name = f"net:{matrix.names_by_id()[i.resource_id]}"
        else:
            name = matrix.names_by_id()[i.resource_id]
        return f"instruction:{name}@{matrix.intervals[i.interval_start.isoformat()]}"

    def clear(market: Market, start: datetime, requirement_kw: float, dispatch: bool) -> None:
        # a load forecast of 0 at tdi_a and tdi_b: whatever is dispatched there flows back to transmission
        forecasts = {p.tdis[t]: InterfaceForecast(load_kw=0.0) for t in ("tdi_a", "tdi_b")}

        def go(ctx: Context) -> list[Instruction]:
            run = clearing.clear_interval(ctx, market, start, energy_requirement_kw=requirement_kw, forecasts=forecasts)
            matrix.market[f"run:{matrix.intervals[start.isoformat()]}"] = run.id
            return market_instructions.issue_instructions(ctx, run.id) if dispatch else []

        for i in p.run("tso", go):  # type: ignore[attr-defined]
            matrix.market[instruction_label(i)] = i.id

    clear(Market.DAY_AHEAD, d1, 200.0, dispatch=True)
    split = p.run(
        "ldc_b", lambda ctx: market_instructions.split_instruction(ctx, matrix.market["instruction:virtual:tdi_b@D1"])
    )
    for child in split.children:  # type: ignore[attr-defined]
        matrix.market[instruction_label(child)] = child.id
    clear(Market.REAL_TIME, r0, 0.0, dispatch=False)
    clear(Market.REAL_TIME, r1, 0.0, dispatch=True)
    p.clock.advance(timedelta(minutes=3))  # net:tdi_b@R1 is past its 2-minute deadline; the D1 ones have an hour


VALID_FROM = (T0 + timedelta(days=2)).isoformat()
EFFECTIVE_LATER = (T0 + timedelta(days=30)).isoformat()


def route_keys(app: FastAPI) -> set[tuple[str, str]]:
    """``(method, path template)`` of every APIRoute of ``app``, including those of included routers.

    Older FastAPI versions list APIRoute objects in ``app.routes``; newer ones keep an included router as one
    entry and expose its routes through ``fastapi.routing.iter_route_contexts``. The docs routes
    (``/openapi.json``, ``/docs``, ...) are plain Starlette routes and never counted.
    """
    found: list[tuple[set[str], str]] = []
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    if iter_contexts is None:
        found = [(set(r.methods or ()), r.path) for r in app.routes if isinstance(r, APIRoute)]
    else:
        for context in iter_contexts(app.routes):
            if isinstance(context.original_route, APIRoute):
                found.append((set(context.methods or ()), str(context.path)))
    return {
        (method, path) for methods, path in found if path not in DOCS_PATHS for method in methods if method != "HEAD"
    }


_PARAM = re.compile(r"\{([a-z_]+)\}")


def path_params(template: str) -> list[str]:
    """Names of the path parameters of a route template, in order."""
    return _PARAM.findall(template)
