"""The permission matrix: every route of the API against every role, with the expected outcome.

``EXPECTED`` maps each ``(method, path template)`` of the app to what each caller gets: the HTTP status, the
problem code of a refusal, and for list and detail reads the rows that come back. A route of the app without an
entry, or an entry without a route, fails ``test_matrix_covers_exactly_the_routes_of_the_app``: a new route
cannot ship without deciding who may call it.

The rules the table encodes (issue 2, item 3; white paper footnote 88 and Table 6 row 2):

* deny by default; an unauthenticated call answers 401 ``auth.unauthenticated``;
* an object the caller may not see answers 404 exactly like a missing one (checked by comparing the problem body
  with the answer for a made-up id), a visible object with a forbidden action answers 403; a role that may never
  perform an action is refused with 403 before any object is looked up (so that answer says nothing about
  whether the object exists);
* an LDC sees DERs and aggregation members in its own territory only, an aggregator only its own DERs
  (owned or represented) and aggregations, a DER owner only its DERs; the TSO sees individual DERs as the
  interface's coordination model says (alt 2: market-participating DERs only; total DSO: none) and aggregations
  registered in a wholesale market (with only the members it may see); the observer sees everything and changes
  nothing.

Every cell runs a real request through FastAPI's TestClient against the real app, services and SQLite store of
``api_province.build_matrix_province``. Cells that change state when they succeed run on a province of their
own role (each such route has its own target object, so the successful writes of one role never meet);
every other cell runs on one shared province, and must leave the audit trail untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_province import (
    ANONYMOUS,
    EFFECTIVE_LATER,
    MISSING_ID,
    NETWORK_SOURCE,
    ROLES,
    VALID_FROM,
    MatrixProvince,
    build_matrix_province,
    path_params,
    route_keys,
)
from conflicts_matrix import add_conflict, add_shared_conflicts
from curtailment_matrix import add_curtailment
from curtailment_matrix import window as curtailment_window
from storage_matrix import add_storage

from gridbridge.cli.bootstrap import Platform
from gridbridge.cli.config import Settings

PROBLEM_JSON = "application/problem+json"


# ----------------------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Outcome:
    """What one caller gets from one route."""

    status: int
    code: str | None = None
    """The problem ``code`` of a refusal."""
    rows: frozenset[str] | None = None
    """For reads: the names of what comes back (see ``Call.rows``); ``None``: not checked."""
    bug: str | None = None
    """A known defect: the cell states the expected behaviour and is marked xfail (strict) with this reason."""
    writes: bool = True
    """For a successful write: whether it changes state (False: a job that finds nothing of the caller's to do,
    which must leave the audit trail untouched)."""

    @property
    def succeeds(self) -> bool:
        return 200 <= self.status < 300


def ok(status: int = 200, *rows: str) -> Outcome:
    """Success; ``rows`` (if any) are exactly the rows that must come back."""
    return Outcome(status, rows=frozenset(rows))


def ok_unchecked(status: int = 200) -> Outcome:
    """Success; the body is not compared with a row set."""
    return Outcome(status)


def nothing_to_do(*rows: str) -> Outcome:
    """A write that succeeds without changing anything (none of the caller's objects qualify); its answer holds
    exactly ``rows``."""
    return Outcome(200, rows=frozenset(rows), writes=False)


def listing(*rows: str) -> Outcome:
    """A 200 list answer holding exactly ``rows`` (possibly none)."""
    return Outcome(200, rows=frozenset(rows))


HIDDEN = Outcome(404, "not_found")
"""The caller may not see the object: answered exactly like a missing one."""
FORBIDDEN = Outcome(403, "auth.forbidden")
"""The caller may not perform this action (its role never may, or it may see the object but not change it)."""
UNAUTHENTICATED = Outcome(401, "auth.unauthenticated")


def refused(status: int, code: str) -> Outcome:
    """A domain refusal with its own code."""
    return Outcome(status, code)


def row(**cells: Outcome) -> dict[str, Outcome]:
    """One route's outcomes; every role of ``ROLES`` must be given (``anonymous`` for the call without token)."""
    if set(cells) != set(ROLES):
        raise ValueError(f"a row must name exactly {ROLES}; got {sorted(cells)}")
    return cells


ALL_DERS = ("a1", "a2", "a3", "b1", "b2", "r1", "rv1", "ap1", "s1", "t1", "m1", "d1", "st1")
ALL_PARTICIPANTS = ("tso", "ldc_a", "ldc_b", "agg_1", "agg_2", "owner_1", "owner_2", "regulator")
ALL_TDIS = ("tdi_a", "tdi_b", "tdi_c")


def _only_ldc_a_of_tdi_a(status: int) -> dict[str, Outcome]:
    """LDC moves on a DER in tdi_a: only ldc_a; ldc_b cannot see the DER; other roles never may."""
    return row(
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(status),
        ldc_b=HIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    )


def _operations_readers(outcome: Outcome) -> dict[str, Outcome]:
    """An interface's network state, envelope settings and runs: its owning DSO (ldc_a), the TSO, observers."""
    return row(
        tso=outcome,
        ldc_a=outcome,
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=outcome,
        anonymous=UNAUTHENTICATED,
    )


def _only_owning_ldc_a(status: int) -> dict[str, Outcome]:
    """A change to tdi_a's network state or envelopes: its owning DSO only (interfaces are public: 403 for others)."""
    return row(
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(status),
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    )


_TDI_A_POINTS = ("a1", "a2", "a3", "r1", "rv1", "ap1", "s1", "t1", "m1", "-")
_TDI_B_POINTS = ("b1", "b2", "d1", "-")


def _envelope_points() -> dict[str, Outcome]:
    """Whose connection points' envelopes each caller reads (the same points as the DERs it sees, and every
    point of an LDC's interfaces): rows ``<interface>(<DER keys at the point>)``."""

    def points(tdi: str, *keys: str) -> list[str]:
        return [f"{tdi}({k})" for k in keys]

    tdi_a, tdi_b = points("tdi_a", *_TDI_A_POINTS), points("tdi_b", *_TDI_B_POINTS)
    return row(
        tso=listing(*points("tdi_a", "a2")),  # alt 2: points with a market-participating DER; total DSO: none
        ldc_a=listing(*tdi_a),
        ldc_b=listing(*tdi_b),
        agg_1=listing(*points("tdi_a", "a2", "a3", "t1", "m1"), *points("tdi_b", "b2")),
        agg_2=listing(*points("tdi_b", "b1")),
        owner_1=listing(*points("tdi_a", "a1", "a2", "r1", "rv1", "ap1", "s1", "t1"), *points("tdi_b", "b2")),
        owner_2=listing(*points("tdi_a", "a3", "m1"), *points("tdi_b", "b1")),
        regulator=listing(*tdi_a, *tdi_b),
        anonymous=UNAUTHENTICATED,
    )


_CURTAILED_A1 = ("curtail@owner_1", "curtail@a1")
"""The instructions of the province's curtailment (``curtailment_matrix``): ldc_a to owner_1, and its child for a1."""


def _procedure_readers(outcome: Outcome) -> dict[str, Outcome]:
    """tdi_a's curtailment procedure: the parties connected there (its DSO, the TSO, the observer, and agg_1,
    owner_1 and owner_2 with DERs there); not ldc_b, nor agg_2 whose only DER is at tdi_b."""
    return row(
        tso=outcome,
        ldc_a=outcome,
        ldc_b=FORBIDDEN,
        agg_1=outcome,
        agg_2=FORBIDDEN,
        owner_1=outcome,
        owner_2=outcome,
        regulator=outcome,
        anonymous=UNAUTHENTICATED,
    )


def _everyone(outcome: Outcome) -> dict[str, Outcome]:
    """The same answer for every authenticated role."""
    return row(**{r: outcome for r in ROLES if r != ANONYMOUS}, anonymous=UNAUTHENTICATED)


_CB2 = "b2|b2@D1"
_EB = "b1,b2|b1@D1,b2@D1"
_EA = "a1,a2|a1@D1,a2@D1"
_DA2 = "a2|program/a2,vpp_1@D1/a2"
_DB1 = "b1|program/b1,vpp_2@D1/b1"
"""Conflict views shown in full: the DER keys and the items (instructions, commitments) of each conflict."""


EXPECTED: dict[tuple[str, str], dict[str, Outcome]] = {
    # --- participants and identity: the directory is public to every authenticated caller
    ("GET", "/participants"): _everyone(listing(*ALL_PARTICIPANTS)),
    ("GET", "/participants/{participant_id}"): _everyone(ok(200, "ldc_b")),
    ("GET", "/me"): row(**{r: ok(200, r) for r in ROLES if r != ANONYMOUS}, anonymous=UNAUTHENTICATED),
    ("POST", "/me/tokens"): _everyone(ok_unchecked(201)),
    # --- T-D interfaces: public to read; the TSO registers; TSO or owning DSO change; owning DSO imports
    ("GET", "/tdis"): _everyone(listing(*ALL_TDIS)),
    ("GET", "/tdis/{tdi_id}"): _everyone(ok(200, "tdi_b")),
    ("POST", "/tdis"): row(
        tso=ok_unchecked(201),
        ldc_a=FORBIDDEN,
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("PATCH", "/tdis/{tdi_id}"): row(
        tso=ok_unchecked(200),
        ldc_a=ok_unchecked(200),
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/tdis/{tdi_id}/model-changes"): row(
        tso=ok_unchecked(201),
        ldc_a=ok_unchecked(201),
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/tdis/{tdi_id}/network"): row(
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(201),
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/tdis/{tdi_id}/connection-points"): row(
        tso=ok_unchecked(200),
        ldc_a=ok_unchecked(200),
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=ok_unchecked(200),
        anonymous=UNAUTHENTICATED,
    ),
    # --- DERs
    ("POST", "/ders"): row(  # at a free connection point of tdi_a (ldc_a's territory)
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(201),
        ldc_b=refused(422, "der.outside_territory"),
        agg_1=ok_unchecked(201),
        agg_2=ok_unchecked(201),
        owner_1=ok_unchecked(201),
        owner_2=ok_unchecked(201),
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/ders"): row(
        # alt 2 at tdi_a: only market-participating a2; total DSO at tdi_b: none, though b1 is in a wholesale VPP
        tso=listing("a2"),
        ldc_a=listing("a1", "a2", "a3", "r1", "rv1", "ap1", "s1", "t1", "m1"),
        ldc_b=listing("b1", "b2", "d1", "st1"),
        agg_1=listing("a2", "a3", "b2", "t1", "m1"),
        agg_2=listing("b1", "st1"),
        owner_1=listing("a1", "a2", "b2", "r1", "rv1", "ap1", "s1", "t1"),
        owner_2=listing("a3", "b1", "m1", "st1"),
        regulator=listing(*ALL_DERS),
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/ders/{der_id}"): row(  # a2: tdi_a, owner_1 represented by agg_1, market-participating
        tso=ok(200, "a2"),
        ldc_a=ok(200, "a2"),
        ldc_b=HIDDEN,
        agg_1=ok(200, "a2"),
        agg_2=HIDDEN,
        owner_1=ok(200, "a2"),
        owner_2=HIDDEN,
        regulator=ok(200, "a2"),
        anonymous=UNAUTHENTICATED,
    ),
    # state of charge of st1 (``storage_matrix``: tdi_b, owner_2 represented by agg_2; the TSO sees no DER there)
    ("POST", "/ders/{der_id}/state-of-charge"): row(
        tso=FORBIDDEN,  # the TSO and observers never report
        ldc_a=HIDDEN,
        ldc_b=ok_unchecked(201),
        agg_1=HIDDEN,
        agg_2=ok_unchecked(201),
        owner_1=HIDDEN,
        owner_2=ok_unchecked(201),
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/ders/{der_id}/state-of-charge"): row(  # whoever sees st1
        tso=HIDDEN,
        ldc_a=HIDDEN,
        ldc_b=ok_unchecked(200),
        agg_1=HIDDEN,
        agg_2=ok_unchecked(200),
        owner_1=HIDDEN,
        owner_2=ok_unchecked(200),
        regulator=ok_unchecked(200),
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/ders/{der_id}/review/start"): _only_ldc_a_of_tdi_a(200),  # r1, requested
    ("POST", "/ders/{der_id}/review/decision"): _only_ldc_a_of_tdi_a(200),  # rv1, under review
    ("POST", "/ders/{der_id}/commission"): _only_ldc_a_of_tdi_a(200),  # ap1, approved
    ("POST", "/ders/{der_id}/suspend"): _only_ldc_a_of_tdi_a(200),  # a1, in service
    ("POST", "/ders/{der_id}/resume"): _only_ldc_a_of_tdi_a(200),  # s1, suspended
    ("POST", "/ders/{der_id}/retire"): row(  # t1: owner_1's, represented by agg_1, in tdi_a
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(200),
        ldc_b=HIDDEN,
        agg_1=ok_unchecked(200),
        agg_2=HIDDEN,
        owner_1=ok_unchecked(200),
        owner_2=HIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("PUT", "/ders/{der_id}/market-products"): row(  # a2: owner_1's, represented by agg_1, in tdi_a
        tso=FORBIDDEN,
        ldc_a=FORBIDDEN,  # its LDC sees it, but only the owner or representative registers it
        ldc_b=HIDDEN,
        agg_1=ok_unchecked(200),
        agg_2=HIDDEN,
        owner_1=ok_unchecked(200),
        owner_2=HIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    # --- aggregations (rows: "name(member DER keys the caller sees)")
    ("POST", "/aggregations"): row(
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(201),
        ldc_b=ok_unchecked(201),
        agg_1=ok_unchecked(201),
        agg_2=ok_unchecked(201),
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/aggregations"): row(
        # the TSO: aggregations in a wholesale market (energy or reserve), members per its DER visibility
        tso=listing("vpp_1(a2)", "span()", "vpp_2()"),
        ldc_a=listing("vpp_1(a2)", "span(a3)"),
        ldc_b=listing("span(b2)", "vpp_2(b1)", "flex_b(d1)"),
        agg_1=listing("vpp_1(a2)", "span(a3,b2)"),
        agg_2=listing("vpp_2(b1)"),
        owner_1=listing(),
        owner_2=listing(),
        regulator=listing("vpp_1(a2)", "span(a3,b2)", "vpp_2(b1)", "flex_b(d1)"),
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/aggregations/{aggregation_id}"): row(  # span: multi-interface, a3 in tdi_a, b2 in tdi_b
        tso=ok(200, "span()"),
        ldc_a=ok(200, "span(a3)"),
        ldc_b=ok(200, "span(b2)"),
        agg_1=ok(200, "span(a3,b2)"),
        agg_2=HIDDEN,
        owner_1=HIDDEN,
        owner_2=HIDDEN,
        regulator=ok(200, "span(a3,b2)"),
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/aggregations/{aggregation_id}/members"): row(  # add m1 to vpp_1 (agg_1's, member a2 in tdi_a)
        tso=FORBIDDEN,
        ldc_a=FORBIDDEN,  # sees vpp_1 (a member in its territory) but it is not its aggregation
        ldc_b=HIDDEN,
        agg_1=ok(201, "vpp_1(a2,m1)"),
        agg_2=HIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/aggregations/{aggregation_id}/members/{member_id}/review"): row(  # span's pending a3 (tdi_a)
        tso=FORBIDDEN,
        ldc_a=ok(200, "span(a3)"),
        ldc_b=Outcome(404, "not_found"),  # sees span, but not the a3 member
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/aggregations/{aggregation_id}/members/{member_id}/dispute"): row(  # span's rejected b2
        tso=FORBIDDEN,
        ldc_a=FORBIDDEN,
        ldc_b=FORBIDDEN,
        agg_1=ok(200, "span(a3,b2)"),
        agg_2=HIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/aggregations/{aggregation_id}/members/{member_id}/withdraw"): row(  # span's pending a3
        tso=FORBIDDEN,
        ldc_a=FORBIDDEN,
        ldc_b=FORBIDDEN,
        agg_1=ok(200, "span(a3,b2)"),
        agg_2=HIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    # --- the coordination cycle (api_province.add_market): offers (rows "<resource>@<interval>")
    ("POST", "/offers"): row(  # one batch: a1 (owner_1), a3 (owner_2, represented by agg_1), b1 (owner_2, agg_2), d1
        tso=FORBIDDEN,
        ldc_a=refused(422, "offers.batch_rejected"),  # owns or represents none of them
        ldc_b=ok_unchecked(200),  # d1, its own DER
        agg_1=ok_unchecked(200),
        agg_2=ok_unchecked(200),
        owner_1=ok_unchecked(200),
        owner_2=ok_unchecked(200),
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/offers"): row(
        # the TSO: offers that reach its market (vpp_1 directly, the DSOs' virtual resources); the DERs behind a DSO
        # and the aggregations it carries are the DSO's business
        tso=listing("vpp_1@D1", "virtual:tdi_a@D1", "virtual:tdi_b@D1"),
        ldc_a=listing("a1@D1", "a1@D2", "a3@D2", "vpp_1@D1", "virtual:tdi_a@D1"),
        ldc_b=listing("b2@D1", "vpp_2@D1", "virtual:tdi_b@D1"),
        agg_1=listing("vpp_1@D1", "b2@D1", "a3@D2"),
        agg_2=listing("vpp_2@D1"),
        owner_1=listing("a1@D1", "a1@D2"),
        owner_2=listing(),
        regulator=listing(
            "a1@D1", "a1@D2", "a3@D2", "vpp_1@D1", "b2@D1", "vpp_2@D1", "virtual:tdi_a@D1", "virtual:tdi_b@D1"
        ),
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/offers/{offer_id}"): row(  # vpp_1@D1: agg_1's, at tdi_a, to the TSO
        tso=ok(200, "vpp_1@D1"),
        ldc_a=ok(200, "vpp_1@D1"),
        ldc_b=HIDDEN,
        agg_1=ok(200, "vpp_1@D1"),
        agg_2=HIDDEN,
        owner_1=HIDDEN,
        owner_2=HIDDEN,
        regulator=ok(200, "vpp_1@D1"),
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/tdis/{tdi_id}/dso-offers"): row(  # tdi_a, day-ahead D2 (a1's and a3's offers)
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(201),
        ldc_b=FORBIDDEN,  # not its interface
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    # --- clearing runs: prices per interface public to every caller; resource results as each may see them
    ("POST", "/clearing-runs"): row(  # real-time R2, past gate closure
        tso=ok_unchecked(201),
        ldc_a=FORBIDDEN,
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/clearing-runs"): _everyone(listing("D1", "R0", "R1")),
    ("GET", "/clearing-runs/{run_id}"): row(  # D1 (rows: the run and the resource results the caller sees)
        tso=ok(200, "D1(virtual:tdi_a,virtual:tdi_b,vpp_1)"),
        ldc_a=ok(200, "D1(virtual:tdi_a,vpp_1)"),
        ldc_b=ok(200, "D1(virtual:tdi_b)"),
        agg_1=ok(200, "D1(vpp_1)"),
        agg_2=ok(200, "D1()"),
        owner_1=ok(200, "D1()"),
        owner_2=ok(200, "D1()"),
        regulator=ok(200, "D1(virtual:tdi_a,virtual:tdi_b,vpp_1)"),
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/clearing-runs/{run_id}/instructions"): row(  # R0, cleared, not dispatched
        tso=ok_unchecked(201),
        ldc_a=FORBIDDEN,
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    # --- instructions (rows "<resource>@<interval>"; net: an interface's scheduled net exchange)
    ("GET", "/instructions"): row(
        # the TSO: its own, and below an interface only what its model shows (vpp_2 is a wholesale aggregation;
        # b2 sits behind the Total DSO)
        tso=listing("vpp_1@D1", "virtual:tdi_a@D1", "virtual:tdi_b@D1", "net:tdi_b@D1", "net:tdi_b@R1", "vpp_2@D1"),
        ldc_a=listing("vpp_1@D1", "virtual:tdi_a@D1", *_CURTAILED_A1),
        ldc_b=listing("virtual:tdi_b@D1", "net:tdi_b@D1", "net:tdi_b@R1", "vpp_2@D1", "b2@D1"),
        agg_1=listing("vpp_1@D1", "b2@D1"),
        agg_2=listing("vpp_2@D1"),
        owner_1=listing(*_CURTAILED_A1),
        owner_2=listing(),
        regulator=listing(
            "vpp_1@D1",
            "virtual:tdi_a@D1",
            "virtual:tdi_b@D1",
            "net:tdi_b@D1",
            "net:tdi_b@R1",
            "vpp_2@D1",
            "b2@D1",
            *_CURTAILED_A1,
        ),
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/instructions/{instruction_id}"): row(  # vpp_1@D1: TSO to agg_1, at tdi_a
        tso=ok(200, "vpp_1@D1"),
        ldc_a=ok(200, "vpp_1@D1"),
        ldc_b=HIDDEN,
        agg_1=ok(200, "vpp_1@D1"),
        agg_2=HIDDEN,
        owner_1=HIDDEN,
        owner_2=HIDDEN,
        regulator=ok(200, "vpp_1@D1"),
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/instructions/{instruction_id}/responses"): row(  # receipt of vpp_1@D1
        tso=FORBIDDEN,
        ldc_a=FORBIDDEN,  # sees it (its interface) but is not the recipient
        ldc_b=HIDDEN,
        agg_1=ok_unchecked(200),
        agg_2=HIDDEN,
        owner_1=HIDDEN,
        owner_2=HIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/instructions/responses"): row(  # a batch: receipt of b2@D1 (ldc_b to agg_1)
        tso=FORBIDDEN,
        ldc_a=refused(422, "instructions.batch_rejected"),
        ldc_b=refused(422, "instructions.batch_rejected"),  # issued it; only the recipient answers
        agg_1=ok_unchecked(200),
        agg_2=refused(422, "instructions.batch_rejected"),
        owner_1=refused(422, "instructions.batch_rejected"),  # owns b2, but agg_1 represents it
        owner_2=refused(422, "instructions.batch_rejected"),
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/instructions/{instruction_id}/split"): row(  # virtual:tdi_a@D1, to ldc_a
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(201),
        ldc_b=HIDDEN,
        agg_1=HIDDEN,
        agg_2=HIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/operating-instructions"): row(  # cut 50 kW of load under tdi_a
        tso=ok_unchecked(201),
        ldc_a=FORBIDDEN,
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/instructions/escalations"): row(  # net:tdi_b@R1 (the TSO's) is overdue; each issuer escalates its own
        tso=ok(200, "instruction:net:tdi_b@R1"),
        ldc_a=nothing_to_do(),
        ldc_b=nothing_to_do(),  # its split children of D1 still have time
        agg_1=nothing_to_do(),
        agg_2=nothing_to_do(),
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/notifications"): row(  # reverse flow at D1: to the TSO only
        tso=listing("reverse_flow:tdi_a@D1", "reverse_flow:tdi_b@D1"),
        ldc_a=listing(),
        ldc_b=listing(),
        agg_1=listing(),
        agg_2=listing(),
        owner_1=listing(),
        owner_2=listing(),
        regulator=listing("reverse_flow:tdi_a@D1", "reverse_flow:tdi_b@D1"),
        anonymous=UNAUTHENTICATED,
    ),
    # --- conflicts (rows: "<conflict>(<DER keys shown>|<items shown>|full or withheld DERs/items/combined kW)");
    # the stored conflicts of ``conflicts_matrix``: capability@b2, and the multi-party envelope@b1+b2 (Total DSO:
    # the TSO takes part, sees no DER), envelope@a1+a2 (alt 2: the TSO sees the market-participating a2 only),
    # double@a2 and double@b1 (competing commitments on one DER)
    ("GET", "/conflicts"): row(
        tso=listing(
            "envelope@b1+b2(-|-|withheld 2/2/70)", "envelope@a1+a2(a2|a2@D1|withheld 1/1/-)", f"double@a2({_DA2}|full)"
        ),
        ldc_a=listing(f"envelope@a1+a2({_EA}|full)", f"double@a2({_DA2}|full)"),
        ldc_b=listing(f"capability@b2({_CB2}|full)", f"envelope@b1+b2({_EB}|full)", f"double@b1({_DB1}|full)"),
        agg_1=listing(
            f"capability@b2({_CB2}|full)",
            "envelope@b1+b2(b2|b2@D1|withheld 1/1/-)",
            "envelope@a1+a2(a2|a2@D1|withheld 1/1/-)",
            "double@a2(a2|vpp_1@D1/a2|withheld 0/1/-)",
        ),
        agg_2=listing("envelope@b1+b2(b1|b1@D1|withheld 1/1/-)", "double@b1(b1|vpp_2@D1/b1|withheld 0/1/-)"),
        owner_1=listing(
            f"capability@b2({_CB2}|full)",
            "envelope@b1+b2(b2|b2@D1|withheld 1/1/-)",
            f"envelope@a1+a2({_EA}|full)",
            f"double@a2({_DA2}|full)",
        ),
        owner_2=listing("envelope@b1+b2(b1|b1@D1|withheld 1/1/-)", f"double@b1({_DB1}|full)"),
        regulator=listing(
            f"capability@b2({_CB2}|full)",
            f"envelope@b1+b2({_EB}|full)",
            f"envelope@a1+a2({_EA}|full)",
            f"double@a2({_DA2}|full)",
            f"double@b1({_DB1}|full)",
        ),
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/conflicts/{conflict_id}"): row(  # envelope@b1+b2
        tso=ok(200, "envelope@b1+b2(-|-|withheld 2/2/70)"),
        ldc_a=HIDDEN,
        ldc_b=ok(200, f"envelope@b1+b2({_EB}|full)"),
        agg_1=ok(200, "envelope@b1+b2(b2|b2@D1|withheld 1/1/-)"),
        agg_2=ok(200, "envelope@b1+b2(b1|b1@D1|withheld 1/1/-)"),
        owner_1=ok(200, "envelope@b1+b2(b2|b2@D1|withheld 1/1/-)"),
        owner_2=ok(200, "envelope@b1+b2(b1|b1@D1|withheld 1/1/-)"),
        regulator=ok(200, f"envelope@b1+b2({_EB}|full)"),
        anonymous=UNAUTHENTICATED,
    ),
    # settlement flags (rows: "<commitment>:<firm kW>/<not payable kW>"): only the stored offers' commitments of
    # double@a2 (agg_1's vpp_1, bought by the TSO) and double@b1 (agg_2's vpp_2, bought by ldc_b) have flags
    ("GET", "/settlement-flags"): row(
        tso=listing("vpp_1@D1/a2:0/60"),  # alt 2 shows it a2; Total DSO shows it no b1
        ldc_a=listing(),  # a wholesale commitment the TSO bought
        ldc_b=listing("vpp_2@D1/b1:50/10"),  # it bought it
        agg_1=listing("vpp_1@D1/a2:0/60"),
        agg_2=listing("vpp_2@D1/b1:50/10"),
        owner_1=listing("vpp_1@D1/a2:0/60"),
        owner_2=listing("vpp_2@D1/b1:50/10"),
        regulator=listing("vpp_1@D1/a2:0/60", "vpp_2@D1/b1:50/10"),
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/amendment-requests/{request_id}/answer"): row(  # addressed to ldc_b, the issuer of b2@D1
        tso=HIDDEN,
        ldc_a=HIDDEN,
        ldc_b=ok_unchecked(200),
        agg_1=FORBIDDEN,
        agg_2=HIDDEN,
        owner_1=FORBIDDEN,
        owner_2=HIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/tdis/{tdi_id}/resolution-policy"): _operations_readers(ok_unchecked(200)),  # tdi_a
    ("PUT", "/tdis/{tdi_id}/resolution-policy"): _only_owning_ldc_a(200),  # tdi_a
    ("POST", "/ders/{der_id}/distribution-service-dispatches"): row(  # a3 at tdi_a, an hour ahead
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(201),
        ldc_b=HIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    # --- network state and envelopes (rows: "<interface>(<DER keys at the connection point>)", "-" for none)
    ("GET", "/tdis/{tdi_id}/envelope-settings"): _operations_readers(ok_unchecked(200)),  # tdi_a
    ("PATCH", "/tdis/{tdi_id}/envelope-settings"): _only_owning_ldc_a(200),  # tdi_a
    ("POST", "/tdis/{tdi_id}/network-events"): _only_owning_ldc_a(201),  # tdi_a, an outage two hours ahead
    ("GET", "/tdis/{tdi_id}/network-events"): _operations_readers(listing("outage")),  # tdi_a
    ("GET", "/network-notifications"): row(  # the outage of tdi_a's Line 12: a2 and t1 lose supply
        tso=listing("tdi_a(a2)"),  # alt 2: only the market-participating a2
        ldc_a=listing("tdi_a(a2,t1)"),
        ldc_b=listing(),
        agg_1=listing("tdi_a(a2,t1)"),
        agg_2=listing(),
        owner_1=listing("tdi_a(a2,t1)"),
        owner_2=listing(),
        regulator=listing("tdi_a(a2)", "tdi_a(a2,t1)"),
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/tdis/{tdi_id}/envelope-runs"): _only_owning_ldc_a(201),  # tdi_a, published at once
    ("GET", "/tdis/{tdi_id}/envelope-runs"): _operations_readers(listing("published@tdi_a", "queued", "draft")),
    ("GET", "/envelope-runs/{run_id}"): row(  # tdi_a's draft
        tso=ok(200, "draft"),
        ldc_a=ok(200, "draft"),
        ldc_b=HIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=ok(200, "draft"),
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/envelope-runs/{run_id}/publish"): row(  # tdi_a's draft
        tso=FORBIDDEN,
        ldc_a=ok_unchecked(200),
        ldc_b=HIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=FORBIDDEN,
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/envelopes"): _envelope_points(),
    ("GET", "/envelopes/in-force"): _envelope_points(),
    ("GET", "/ders/{der_id}/hosting-capacity"): row(  # a2 (tdi_a)
        tso=FORBIDDEN,
        ldc_a=ok(200, "a2"),
        ldc_b=HIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=ok(200, "a2"),
        anonymous=UNAUTHENTICATED,
    ),
    ("POST", "/ders/{der_id}/hosting-capacity"): _only_ldc_a_of_tdi_a(201),  # rv1, under review
    # --- transparent curtailment (rows: "v<version>"; events "event@tdi_a(<DER keys of the shares shown>)")
    ("POST", "/tdis/{tdi_id}/curtailment-procedures"): _only_owning_ldc_a(201),  # tdi_a, version 2 from 2 h ahead
    ("GET", "/tdis/{tdi_id}/curtailment-procedures"): _procedure_readers(listing("v1")),  # tdi_a
    ("GET", "/tdis/{tdi_id}/curtailment-procedure"): _procedure_readers(ok(200, "v1")),  # tdi_a, in force now
    ("POST", "/tdis/{tdi_id}/curtailments"): _only_owning_ldc_a(201),  # 5 kW at tdi_a an hour ahead
    ("GET", "/curtailments"): row(  # 10 kW of a1 (owner_1) at tdi_a: parties see their own shares only
        tso=listing("event@tdi_a()"),  # every event, group totals only
        ldc_a=listing("event@tdi_a(a1)"),
        ldc_b=listing(),
        agg_1=listing(),
        agg_2=listing(),
        owner_1=listing("event@tdi_a(a1)"),
        owner_2=listing(),
        regulator=listing("event@tdi_a(a1)"),
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/curtailments/{curtailment_id}"): row(
        tso=ok(200, "event@tdi_a()"),
        ldc_a=ok(200, "event@tdi_a(a1)"),
        ldc_b=HIDDEN,
        agg_1=HIDDEN,
        agg_2=HIDDEN,
        owner_1=ok(200, "event@tdi_a(a1)"),
        owner_2=HIDDEN,
        regulator=ok(200, "event@tdi_a(a1)"),
        anonymous=UNAUTHENTICATED,
    ),
    ("GET", "/dsos/{dso_id}/open-access-report"): row(  # ldc_a: the observer, the TSO and ldc_a itself
        tso=ok(200, "third_party:10kW"),
        ldc_a=ok(200, "third_party:10kW"),
        ldc_b=FORBIDDEN,
        agg_1=FORBIDDEN,
        agg_2=FORBIDDEN,
        owner_1=FORBIDDEN,
        owner_2=FORBIDDEN,
        regulator=ok(200, "third_party:10kW"),
        anonymous=UNAUTHENTICATED,
    ),
}


# ----------------------------------------------------------------------------------------------- requests


Json = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """How a route is exercised: its path parameters, its body, and how rows are named in its answer."""

    params: Callable[[MatrixProvince], dict[str, str]]
    body: Callable[[MatrixProvince], Json] | None = None
    rows: Callable[[MatrixProvince, Any], frozenset[str]] | None = None


def _name(m: MatrixProvince, object_id: str) -> str:
    return m.names_by_id().get(object_id, f"?{object_id}")


def _names(m: MatrixProvince, body: Any) -> frozenset[str]:
    return frozenset(_name(m, item["id"]) for item in body)


def _conflict_row(m: MatrixProvince, item: Json) -> str:
    ders = ",".join(sorted(_name(m, d) for d in item["der_ids"])) or "-"
    items = ",".join(sorted(_name(m, o["subject_id"]) for o in item["resolution"]["outcomes"])) or "-"
    withheld = item["withheld"]
    if withheld is None:
        view = "full"
    else:
        kw = "-" if withheld["combined_kw"] is None else f"{withheld['combined_kw']:g}"
        view = f"withheld {withheld['ders']}/{withheld['items']}/{kw}"
    return f"{_name(m, item['id'])}({ders}|{items}|{view})"


def _conflict_rows(m: MatrixProvince, body: Any) -> frozenset[str]:
    return frozenset(_conflict_row(m, item) for item in body)


def _flag_rows(m: MatrixProvince, body: Any) -> frozenset[str]:
    return frozenset(f"{_name(m, f['commitment_id'])}:{f['firm_kw']:g}/{f['not_payable_kw']:g}" for f in body)


def _aggregation_row(m: MatrixProvince, item: Json) -> str:
    members = sorted(_name(m, member["der_id"]) for member in item["members"])
    return f"{_name(m, item['id'])}({','.join(members)})"


def _aggregation_rows(m: MatrixProvince, body: Any) -> frozenset[str]:
    return frozenset(_aggregation_row(m, item) for item in body)


def _one(rows: Callable[[MatrixProvince, Any], frozenset[str]]) -> Callable[[MatrixProvince, Any], frozenset[str]]:
    return lambda m, body: rows(m, [body])


def _none(_: MatrixProvince) -> dict[str, str]:
    return {}


def _der(key: str) -> Callable[[MatrixProvince], dict[str, str]]:
    return lambda m: {"der_id": m.ders[key]}


def _tdi(name: str) -> Callable[[MatrixProvince], dict[str, str]]:
    return lambda m: {"tdi_id": m.province.tdis[name]}


def _aggregation(name: str) -> Callable[[MatrixProvince], dict[str, str]]:
    return lambda m: {"aggregation_id": m.aggregations[name]}


def _member(aggregation: str, der_key: str) -> Callable[[MatrixProvince], dict[str, str]]:
    return lambda m: {
        "aggregation_id": m.aggregations[aggregation],
        "member_id": m.members[f"{aggregation}/{der_key}"],
    }


def _instruction(label: str) -> Callable[[MatrixProvince], dict[str, str]]:
    return lambda m: {"instruction_id": m.market[f"instruction:{label}"]}


def _next_hour(m: MatrixProvince) -> datetime:
    """The start of the hour after next (a real-time interval boundary ahead of the clock)."""
    return m.province.clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)


def _interval(m: MatrixProvince, label: str) -> str:
    return next(iso for iso, name in m.intervals.items() if name == label)


def _rt_item(m: MatrixProvince, der_key: str) -> Json:
    """A real-time offer for a DER, 30 minutes after the clock (open)."""
    now = m.province.clock.now() + timedelta(minutes=30)
    start = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    return {
        "resource_kind": "der",
        "resource_id": m.ders[der_key],
        "market": "real_time",
        "interval_start": start.isoformat(),
        "segments": [{"price_cad_per_mwh": "20", "quantity_kw": "30"}],
    }


def _resource_name(m: MatrixProvince, item: Json) -> str:
    name = _name(m, item["resource_id"])
    return f"virtual:{name}" if item["resource_kind"] == "dso_virtual" else name


def _run_rows(m: MatrixProvince, body: Any) -> frozenset[str]:
    return frozenset(
        f"{_name(m, run['id'])}({','.join(sorted(_resource_name(m, r) for r in run['resources']))})" for run in body
    )


def _escalated_rows(m: MatrixProvince, body: Any) -> frozenset[str]:
    labels = {v: k for k, v in m.market.items()}
    return frozenset(labels.get(i["id"], f"?{i['id']}") for i in body["escalated"])


def _notification_rows(m: MatrixProvince, body: Any) -> frozenset[str]:
    return frozenset(f"{n['kind']}:{_name(m, n['tdi_id'])}@{m.interval_label(n['interval_start'])}" for n in body)


def _envelope_labels(m: MatrixProvince, body: Any) -> frozenset[str]:
    """Runs and network events by their label in ``MatrixProvince.envelopes`` (``run:draft`` -> ``draft``)."""
    labels = {v: k.split(":", 1)[1] for k, v in m.envelopes.items() if not k.startswith("point:")}
    return frozenset(labels.get(item["id"], f"?{item['id']}") for item in body)


def _point_rows(m: MatrixProvince, body: Any, key: str) -> frozenset[str]:
    """Connection points named ``<interface>(<DER keys at the point>)``."""
    return frozenset(m.envelopes.get(f"point:{item[key]}", f"?{item[key]}") for item in body)


def _notification_points(m: MatrixProvince, body: Any) -> frozenset[str]:
    """A network notification named ``<interface>(<the recipient's DER keys in it>)``."""
    return frozenset(
        f"{_name(m, item['tdi_id'])}({','.join(sorted(_name(m, d) for d in item['der_ids']))})" for item in body
    )


def _procedure_rows(m: MatrixProvince, body: Any) -> frozenset[str]:
    return frozenset(f"v{item['version']}" for item in body)


def _curtailment_rows(m: MatrixProvince, body: Any) -> frozenset[str]:
    """Events named ``<label>(<DER keys of the shares shown>)``."""
    return frozenset(
        f"{_name(m, item['id'])}({','.join(sorted(_name(m, s['der_id']) for s in item['shares']))})" for item in body
    )


CALLS: dict[tuple[str, str], Call] = {
    ("GET", "/participants"): Call(_none, rows=_names),
    ("GET", "/participants/{participant_id}"): Call(
        lambda m: {"participant_id": m.province.ids["ldc_b"]}, rows=_one(_names)
    ),
    ("GET", "/me"): Call(_none, rows=lambda m, body: frozenset({_name(m, body["participant_id"])})),
    ("POST", "/me/tokens"): Call(_none, body=lambda m: {"label": "matrix"}),
    ("GET", "/tdis"): Call(_none, rows=_names),
    ("GET", "/tdis/{tdi_id}"): Call(_tdi("tdi_b"), rows=_one(_names)),
    ("POST", "/tdis"): Call(
        _none,
        body=lambda m: {
            "name": "tdi_new",
            "price_node": "TDI_NEW",
            "dso_id": m.province.ids["ldc_a"],
            "model": "alt1_minimal_dso",
            "import_limit_kw": 1000,
            "export_limit_kw": 500,
        },
    ),
    ("PATCH", "/tdis/{tdi_id}"): Call(_tdi("tdi_a"), body=lambda m: {"export_limit_kw": 2500}),
    ("POST", "/tdis/{tdi_id}/model-changes"): Call(
        _tdi("tdi_a"), body=lambda m: {"model": "total_dso", "effective_from": EFFECTIVE_LATER}
    ),
    ("POST", "/tdis/{tdi_id}/network"): Call(_tdi("tdi_c"), body=lambda m: {"source": NETWORK_SOURCE}),
    ("GET", "/tdis/{tdi_id}/connection-points"): Call(_tdi("tdi_a")),
    ("POST", "/ders"): Call(
        _none,
        body=lambda m: {
            "name": "new-pv",
            "technology": "pv",
            "p_export_kw": 7.5,
            "p_import_kw": 0,
            "connection_point_id": m.province.points["tdi_a"][9],
        },
    ),
    ("GET", "/ders"): Call(_none, rows=_names),
    ("GET", "/ders/{der_id}"): Call(_der("a2"), rows=_one(_names)),
    ("POST", "/ders/{der_id}/state-of-charge"): Call(
        _der("st1"), body=lambda m: {"measured_at": m.province.clock.now().isoformat(), "soc_kwh": 150.0}
    ),
    ("GET", "/ders/{der_id}/state-of-charge"): Call(_der("st1")),
    ("POST", "/ders/{der_id}/review/start"): Call(_der("r1")),
    ("POST", "/ders/{der_id}/review/decision"): Call(
        _der("rv1"), body=lambda m: {"decision": "approved", "reason": "hosting capacity study passed"}
    ),
    ("POST", "/ders/{der_id}/commission"): Call(_der("ap1")),
    ("POST", "/ders/{der_id}/suspend"): Call(_der("a1")),
    ("POST", "/ders/{der_id}/resume"): Call(_der("s1")),
    ("POST", "/ders/{der_id}/retire"): Call(_der("t1")),
    ("PUT", "/ders/{der_id}/market-products"): Call(_der("a2"), body=lambda m: {"products": ["energy"]}),
    ("POST", "/aggregations"): Call(
        _none, body=lambda m: {"name": "new-vpp", "markets": [{"service": "wholesale_energy"}]}
    ),
    ("GET", "/aggregations"): Call(_none, rows=_aggregation_rows),
    ("GET", "/aggregations/{aggregation_id}"): Call(_aggregation("span"), rows=_one(_aggregation_rows)),
    ("POST", "/aggregations/{aggregation_id}/members"): Call(
        _aggregation("vpp_1"),
        body=lambda m: {"der_ids": [m.ders["m1"]], "valid_from": VALID_FROM},
        rows=_one(_aggregation_rows),
    ),
    ("POST", "/aggregations/{aggregation_id}/members/{member_id}/review"): Call(
        _member("span", "a3"), body=lambda m: {"decision": "approved"}, rows=_one(_aggregation_rows)
    ),
    ("POST", "/aggregations/{aggregation_id}/members/{member_id}/dispute"): Call(
        _member("span", "b2"),
        body=lambda m: {"statement": "the feeder upgrade finished last week"},
        rows=_one(_aggregation_rows),
    ),
    ("POST", "/aggregations/{aggregation_id}/members/{member_id}/withdraw"): Call(
        _member("span", "a3"), rows=_one(_aggregation_rows)
    ),
    ("POST", "/offers"): Call(
        _none,
        body=lambda m: {
            "items": [
                _rt_item(m, "a1"),
                _rt_item(m, "a3"),
                _rt_item(m, "b1"),
                _rt_item(m, "d1"),
            ]
        },
    ),
    ("GET", "/offers"): Call(_none, rows=_names),
    ("GET", "/offers/{offer_id}"): Call(lambda m: {"offer_id": m.market["offer:vpp_1@D1"]}, rows=_one(_names)),
    ("POST", "/tdis/{tdi_id}/dso-offers"): Call(
        _tdi("tdi_a"), body=lambda m: {"market": "day_ahead", "interval_start": _interval(m, "D2")}
    ),
    ("POST", "/clearing-runs"): Call(
        _none,
        body=lambda m: {"market": "real_time", "interval_start": _interval(m, "R2"), "energy_requirement_kw": 0},
    ),
    ("GET", "/clearing-runs"): Call(_none, rows=_names),
    ("GET", "/clearing-runs/{run_id}"): Call(lambda m: {"run_id": m.market["run:D1"]}, rows=_one(_run_rows)),
    ("POST", "/clearing-runs/{run_id}/instructions"): Call(lambda m: {"run_id": m.market["run:R0"]}),
    ("GET", "/instructions"): Call(_none, rows=_names),
    ("GET", "/instructions/{instruction_id}"): Call(_instruction("vpp_1@D1"), rows=_one(_names)),
    ("POST", "/instructions/{instruction_id}/responses"): Call(
        _instruction("vpp_1@D1"), body=lambda m: {"response": "receipt"}
    ),
    ("POST", "/instructions/responses"): Call(
        _none,
        body=lambda m: {"items": [{"instruction_id": m.market["instruction:b2@D1"], "response": "receipt"}]},
    ),
    ("POST", "/instructions/{instruction_id}/split"): Call(
        _instruction("virtual:tdi_a@D1"), body=lambda m: {"method": "merit_order"}
    ),
    ("POST", "/operating-instructions"): Call(
        _none,
        body=lambda m: {
            "tdi_id": m.province.tdis["tdi_a"],
            "p_kw": 50,
            "interval_start": (m.province.clock.now() + timedelta(minutes=10)).isoformat(),
            "interval_end": (m.province.clock.now() + timedelta(minutes=70)).isoformat(),
            "reason": "bulk-system contingency",
        },
    ),
    ("POST", "/instructions/escalations"): Call(_none, rows=_escalated_rows),
    ("GET", "/notifications"): Call(_none, rows=_notification_rows),
    ("GET", "/conflicts"): Call(_none, rows=_conflict_rows),
    ("GET", "/conflicts/{conflict_id}"): Call(
        lambda m: {"conflict_id": m.market["conflict:envelope@b1+b2"]}, rows=_one(_conflict_rows)
    ),
    ("GET", "/settlement-flags"): Call(_none, rows=_flag_rows),
    ("POST", "/amendment-requests/{request_id}/answer"): Call(
        lambda m: {"request_id": m.market["amendment:b2@D1"]}, body=lambda m: {"p_kw": 0.0}
    ),
    ("GET", "/tdis/{tdi_id}/resolution-policy"): Call(_tdi("tdi_a")),
    ("PUT", "/tdis/{tdi_id}/resolution-policy"): Call(
        _tdi("tdi_a"),
        body=lambda m: {
            "priorities": ["distribution_safety", "distribution_services", "bulk_reliability", "wholesale_energy"],
            "rules": {"hidden_coupling_energy": "amendment_request"},
            "amendment_window_min": 30,
        },
    ),
    ("POST", "/ders/{der_id}/distribution-service-dispatches"): Call(
        _der("a3"),
        body=lambda m: {
            "p_kw": 20.0,
            "interval_start": _next_hour(m).isoformat(),
            "interval_end": (_next_hour(m) + timedelta(hours=1)).isoformat(),
            "reason": "non-wires deferral on feeder 1",
        },
    ),
    ("GET", "/tdis/{tdi_id}/envelope-settings"): Call(_tdi("tdi_a")),
    ("PATCH", "/tdis/{tdi_id}/envelope-settings"): Call(_tdi("tdi_a"), body=lambda m: {"default_export_kw": 2.0}),
    ("POST", "/tdis/{tdi_id}/network-events"): Call(
        _tdi("tdi_a"),
        body=lambda m: {
            "kind": "planned_outage",
            "starts_at": (m.province.clock.now() + timedelta(hours=2)).isoformat(),
            "ends_at": (m.province.clock.now() + timedelta(hours=3)).isoformat(),
            "open_elements": ["LV1.101 Line 10"],
            "reason": "cable replacement",
        },
    ),
    ("GET", "/tdis/{tdi_id}/network-events"): Call(_tdi("tdi_a"), rows=_envelope_labels),
    ("GET", "/network-notifications"): Call(_none, rows=_notification_points),
    ("POST", "/tdis/{tdi_id}/envelope-runs"): Call(_tdi("tdi_a"), body=lambda m: {"publish": True}),
    ("GET", "/tdis/{tdi_id}/envelope-runs"): Call(_tdi("tdi_a"), rows=_envelope_labels),
    ("GET", "/envelope-runs/{run_id}"): Call(
        lambda m: {"run_id": m.envelopes["run:draft"]}, rows=_one(_envelope_labels)
    ),
    ("POST", "/envelope-runs/{run_id}/publish"): Call(lambda m: {"run_id": m.envelopes["run:draft"]}),
    ("GET", "/envelopes"): Call(_none, rows=lambda m, body: _point_rows(m, body, "connection_point_id")),
    ("GET", "/envelopes/in-force"): Call(_none, rows=lambda m, body: _point_rows(m, body, "connection_point_id")),
    ("GET", "/ders/{der_id}/hosting-capacity"): Call(
        _der("a2"), rows=lambda m, body: frozenset({_name(m, body["der_id"])})
    ),
    ("POST", "/ders/{der_id}/hosting-capacity"): Call(_der("rv1")),
    ("POST", "/tdis/{tdi_id}/curtailment-procedures"): Call(
        _tdi("tdi_a"),
        body=lambda m: {
            "rule": "offer_price",
            "parameters": {"order": "lowest_first"},
            "effective_from": (m.province.clock.now() + timedelta(hours=2)).isoformat(),
        },
    ),
    ("GET", "/tdis/{tdi_id}/curtailment-procedures"): Call(_tdi("tdi_a"), rows=_procedure_rows),
    ("GET", "/tdis/{tdi_id}/curtailment-procedure"): Call(_tdi("tdi_a"), rows=_one(_procedure_rows)),
    ("POST", "/tdis/{tdi_id}/curtailments"): Call(
        _tdi("tdi_a"),
        body=lambda m: {
            "required_kw": 5,
            "window_start": curtailment_window(m, 60)[0].isoformat(),
            "window_end": curtailment_window(m, 60)[1].isoformat(),
            "reason": "feeder maintenance",
        },
    ),
    ("GET", "/curtailments"): Call(_none, rows=_curtailment_rows),
    ("GET", "/curtailments/{curtailment_id}"): Call(
        lambda m: {"curtailment_id": m.market["curtailment:event@tdi_a"]}, rows=_one(_curtailment_rows)
    ),
    ("GET", "/dsos/{dso_id}/open-access-report"): Call(
        lambda m: {"dso_id": m.province.ids["ldc_a"]},
        rows=lambda m, body: frozenset(
            f"{'affiliated' if r['dso_affiliated'] else 'third_party'}:{r['curtailed_kwh'] * 2:g}kW"
            for r in body["rows"]
            if r["curtailed_kwh"] > 0
        ),
    ),
}


# ----------------------------------------------------------------------------------------------- provinces


class Provinces:
    """Matrix provinces, built lazily: one shared by every cell that changes nothing, one per writing role."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.built: dict[str, MatrixProvince] = {}

    def get(self, name: str) -> MatrixProvince:
        if name not in self.built:
            matrix = build_matrix_province(f"sqlite+pysqlite:///{self.base / f'{name}.db'}")
            add_conflict(matrix)
            add_shared_conflicts(matrix)
            add_curtailment(matrix)
            add_storage(matrix)
            self.built[name] = matrix
        return self.built[name]

    def close(self) -> None:
        for matrix in self.built.values():
            matrix.client.close()
            matrix.province.platform.engine.dispose()


@pytest.fixture(scope="module")
def provinces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provinces]:
    pool = Provinces(tmp_path_factory.mktemp("matrix"))
    yield pool
    pool.close()


def _changes_state(method: str, outcome: Outcome) -> bool:
    """Whether the cell may write: a successful write, or a known defect (whose actual answer may differ)."""
    return method != "GET" and ((outcome.succeeds and outcome.writes) or outcome.bug is not None)


def _url(template: str, params: dict[str, str]) -> str:
    return template.format(**params)


def _send(m: MatrixProvince, method: str, template: str, role: str, params: dict[str, str]) -> Any:
    call = CALLS[(method, template)]
    body = call.body(m) if call.body else None
    return m.client.request(method, _url(template, params), headers=m.headers(role), json=body)


def _normalised(problem: Json, ids: dict[str, str]) -> Json:
    """A problem body with the given ids replaced by their parameter names (to compare 'hidden' with 'missing')."""
    text = dict(problem)
    for key in ("detail", "instance"):
        value = str(text.get(key, ""))
        for name, object_id in ids.items():
            value = value.replace(object_id, "{" + name + "}")
        text[key] = value
    return text


# ----------------------------------------------------------------------------------------------- tests


def test_matrix_covers_exactly_the_routes_of_the_app(tmp_path: Path) -> None:
    app = Platform(Settings(database_url=f"sqlite+pysqlite:///{tmp_path / 'routes.db'}")).app()
    routes = route_keys(app)
    assert routes, "no API routes found: the route enumeration is broken"
    missing = sorted(routes - set(EXPECTED))
    stale = sorted(set(EXPECTED) - routes)
    assert not missing, f"routes without a permission-matrix entry (add them to EXPECTED and CALLS): {missing}"
    assert not stale, f"EXPECTED names routes the app does not have: {stale}"
    assert set(CALLS) == set(EXPECTED)
    for key, cells in EXPECTED.items():
        assert set(cells) == set(ROLES), key
        assert cells[ANONYMOUS] == UNAUTHENTICATED, key


def _cells() -> Iterator[Any]:
    for (method, template), cells in EXPECTED.items():
        for role in ROLES:
            outcome = cells[role]
            marks = [pytest.mark.xfail(strict=True, reason=outcome.bug)] if outcome.bug else []
            yield pytest.param(method, template, role, outcome, id=f"{method} {template} as {role}", marks=marks)


@pytest.mark.parametrize(("method", "template", "role", "expected"), list(_cells()))
def test_cell(provinces: Provinces, method: str, template: str, role: str, expected: Outcome) -> None:
    m = provinces.get(role if _changes_state(method, expected) else "shared")
    params = CALLS[(method, template)].params(m)
    audit_before = m.audit_count()

    response = _send(m, method, template, role, params)

    body = response.json()
    assert response.status_code == expected.status, body
    if expected.succeeds:
        assert response.headers["content-type"].startswith("application/json")
        rows_of = CALLS[(method, template)].rows
        if expected.rows is not None:
            assert rows_of is not None, "the cell names rows but the call does not say how to read them"
            assert rows_of(m, body) == expected.rows
        if method == "GET" or not expected.writes:
            assert m.audit_count() == audit_before
        else:
            assert m.audit_count() > audit_before, "a state change without an audit record"
        return
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert body["code"] == expected.code, body
    assert body["status"] == expected.status
    assert m.audit_count() == audit_before, "a refused request wrote to the audit trail"
    if expected.status == 404:
        # hidden answers exactly like missing: the same body as for a made-up id of one of the path objects
        variants = []
        for name in path_params(template):
            probe = {**params, name: MISSING_ID}
            missing = _send(m, method, template, role, probe)
            variants.append((missing.status_code, _normalised(missing.json(), probe)))
        assert variants, "a 404 cell needs a path parameter"
        assert (404, _normalised(body, params)) in variants, (body, variants)


@pytest.mark.parametrize("role", [r for r in ROLES if r != ANONYMOUS])
def test_single_reads_agree_with_lists(provinces: Provinces, role: str) -> None:
    """Every DER and aggregation is readable one by one exactly when the list shows it, with the same members."""
    m = provinces.get("shared")
    headers = m.headers(role)
    listed_ders = EXPECTED[("GET", "/ders")][role].rows
    listed_aggregations = EXPECTED[("GET", "/aggregations")][role].rows
    assert listed_ders is not None
    assert listed_aggregations is not None
    for key, der_id in m.ders.items():
        response = m.client.get(f"/ders/{der_id}", headers=headers)
        assert response.status_code == (200 if key in listed_ders else 404), key
    by_name = {row.split("(")[0]: row for row in listed_aggregations}
    for name, aggregation_id in m.aggregations.items():
        response = m.client.get(f"/aggregations/{aggregation_id}", headers=headers)
        if name in by_name:
            assert response.status_code == 200, name
            assert _aggregation_row(m, response.json()) == by_name[name]
        else:
            assert response.status_code == 404, name
    # the interface filter never widens what a caller sees
    for tdi_name, tdi_id in m.province.tdis.items():
        response = m.client.get("/ders", params={"tdi_id": tdi_id}, headers=headers)
        assert response.status_code == 200
        shown = _names(m, response.json())
        assert shown <= listed_ders, tdi_name
        assert all(m.names_by_id()[item["tdi_id"]] == tdi_name for item in response.json())


def _ids_of(view: Json) -> set[str]:
    """Every DER, item and party id a conflict view names."""
    outcomes = view["resolution"]["outcomes"]
    return (
        set(view["der_ids"])
        | set(view["party_ids"])
        | {o["subject_id"] for o in outcomes}
        | {p for o in outcomes for p in (o["issuer_party_id"], o["recipient_party_id"])}
        | {a["addressee_id"] for a in view["amendment_requests"]}
        | {view["dso_id"]}
    )


@pytest.mark.parametrize("role", [r for r in ROLES if r != ANONYMOUS])
def test_conflict_views_agree_and_carry_nothing_they_withhold(provinces: Provinces, role: str) -> None:
    """Every conflict reads one by one exactly as the list shows it (404 when the list has not got it); a full
    view is the whole record; a partial one names no DER, item or party it withholds, anywhere in its body; and
    the DER filter returns exactly the listed conflicts whose view shows that DER."""
    m = provinces.get("shared")
    headers = m.headers(role)
    listed = {v["id"]: v for v in m.client.get("/conflicts", headers=headers).json()}
    records = {v["id"]: v for v in m.client.get("/conflicts", headers=m.headers("regulator")).json()}
    assert set(listed) <= set(records)
    for conflict_id, record in records.items():
        response = m.client.get(f"/conflicts/{conflict_id}", headers=headers)
        if conflict_id not in listed:
            assert response.status_code == 404, conflict_id
            continue
        view = listed[conflict_id]
        assert response.json() == view
        if view["view"] == "full":
            assert view == record
            continue
        text = json.dumps(view)
        for withheld in _ids_of(record) - _ids_of(view) - {m.province.ids[role]}:
            assert withheld not in text, (_name(m, conflict_id), _name(m, withheld))
    for der_id in sorted({d for record in records.values() for d in record["der_ids"]}):
        found = m.client.get("/conflicts", params={"der_id": der_id}, headers=headers).json()
        assert {v["id"] for v in found} == {k for k, v in listed.items() if der_id in v["der_ids"]}, _name(m, der_id)


def test_tso_visibility_follows_the_dated_model_change(tmp_path: Path) -> None:
    """ldc_b moves tdi_b from total DSO to alt 1 from a later date: the TSO sees its DERs from then on, not before."""
    m = build_matrix_province(f"sqlite+pysqlite:///{tmp_path / 'model-change.db'}")
    tso, ldc_b = m.headers("tso"), m.headers("ldc_b")
    with m.client:
        changed = m.client.post(
            f"/tdis/{m.province.tdis['tdi_b']}/model-changes",
            json={"model": "alt1_minimal_dso", "effective_from": EFFECTIVE_LATER},
            headers=ldc_b,
        )
        assert changed.status_code == 201, changed.json()
        assert changed.json()["model_in_force"] == "total_dso"
        assert _names(m, m.client.get("/ders", headers=tso).json()) == {"a2"}
        assert m.client.get(f"/ders/{m.ders['b1']}", headers=tso).status_code == 404

        m.province.clock.advance(timedelta(days=31))

        assert m.client.get(f"/tdis/{m.province.tdis['tdi_b']}", headers=tso).json()["model_in_force"] == (
            "alt1_minimal_dso"
        )
        assert _names(m, m.client.get("/ders", headers=tso).json()) == {"a2", "b1", "b2", "d1"}
        assert m.client.get(f"/ders/{m.ders['b1']}", headers=tso).status_code == 200
        # the multi-interface aggregation now shows the TSO its tdi_b member, still not the tdi_a one
        span = m.client.get(f"/aggregations/{m.aggregations['span']}", headers=tso).json()
        assert _aggregation_row(m, span) == "span(b2)"


def test_requests_without_a_usable_token_are_refused_everywhere(provinces: Provinces) -> None:
    """A malformed header, an unknown token and a token of another scheme all answer 401 on every route."""
    m = provinces.get("shared")
    bad_headers = [
        {"Authorization": "Bearer gb_not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {m.province.tokens['regulator']}"},
        {"Authorization": m.province.tokens["regulator"]},
    ]
    audit_before = m.audit_count()
    for method, template in sorted(EXPECTED):
        params = CALLS[(method, template)].params(m)
        body = CALLS[(method, template)].body
        for headers in bad_headers:
            response = m.client.request(method, _url(template, params), headers=headers, json=body(m) if body else None)
            assert response.status_code == 401, (method, template, headers)
            assert response.json()["code"] == "auth.unauthenticated"
    assert m.audit_count() == audit_before


def _routes_with_ids() -> Iterator[Any]:
    for (method, template), cells in EXPECTED.items():
        if not path_params(template):
            continue
        allowed = next(role for role in ROLES if cells[role].succeeds)
        yield pytest.param(method, template, allowed, id=f"{method} {template} as {allowed}")


@pytest.mark.parametrize(("method", "template", "role"), list(_routes_with_ids()))
def test_unknown_ids_answer_not_found_naming_the_field(
    provinces: Provinces, method: str, template: str, role: str
) -> None:
    """For a caller allowed to use the route, an unknown id (each path parameter in turn, outermost first)
    answers 404 naming that parameter, and changes nothing."""
    m = provinces.get("shared")
    params = CALLS[(method, template)].params(m)
    audit_before = m.audit_count()
    names = path_params(template)
    for index, name in enumerate(names):
        # ids left of the unknown one are real, ids right of it are unknown too (they cannot be reached)
        probe = {n: (params[n] if i < index else MISSING_ID) for i, n in enumerate(names)}
        response = _send(m, method, template, role, probe)
        assert response.status_code == 404, (name, response.json())
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert response.json()["code"] == "not_found"
        assert response.json()["field"] == name
    assert m.audit_count() == audit_before
