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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import fastapi.routing as fastapi_routing
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gridbridge.domain.aggregation import RejectionCategory
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.der import ReviewDecision
from gridbridge.domain.roles import Service
from gridbridge.services import aggregations, ders, tdis
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
        return names

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
    return matrix


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
