"""The market reads the operating envelopes in force (``store/market_repository.py: PublishedEnvelopeLimits``):
an outage's zero envelopes reach offer validation and the DSO's check without suspending anybody, published
envelopes cap DERs by their share of the point's limit, and interfaces without dynamic envelopes run on the
DERs' static connection limits."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from envelope_province import envelope_province, point_ids, run_envelopes
from gridbridge.domain.der import ReviewDecision
from gridbridge.domain.envelope_publication import DE_ENERGISED_BINDING
from gridbridge.domain.errors import GridbridgeError
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.market import AckStatus, ResourceKind
from gridbridge.domain.network_state import NetworkEventKind
from gridbridge.services import clearing, ders, instructions, network_state, offers
from gridbridge.services.context import Context
from gridbridge.services.market_ports import DerLimits
from market_province import RT, build_market_province, item, rt_interval
from registry_province import T0, Province, spec

K = ResourceKind
LEAF_LINE = "LV1.101 Line 10"
"""The only line to ``LV1.101 Bus 1``, connection point 0 of every interface of the test province."""


def _submit(p: Province, who: str, *items: object) -> list[offers.OfferAck]:
    return p.run(who, lambda ctx: offers.submit_offers(ctx, list(items)))  # type: ignore[return-value,arg-type]


def _outage(p: Province, ldc: str, tdi: str, start: datetime, end: datetime) -> network_state.EventRecorded:
    def record(ctx: Context) -> network_state.EventRecorded:
        return network_state.record_event(
            ctx, p.tdis[tdi], NetworkEventKind.UNPLANNED_OUTAGE, start, end, open_elements=[LEAF_LINE], reason="fault"
        )

    return p.run(ldc, record)


def _limits(p: Province, der_keys: list[str], start: datetime, end: datetime) -> dict[str, DerLimits]:
    with p.platform.unit_of_work() as uow:
        found = uow.market.envelopes.der_limits([p.ders[k] for k in der_keys], start, end)
    return {k: found[p.ders[k]] for k in der_keys}


def test_static_limits_then_an_outage_zero_envelope_clips_a_dark_der_that_stays_in_service(
    database_url: str,
) -> None:
    p = build_market_province(database_url)
    iv = rt_interval(p)
    t1 = p.ders["t1"]
    # no interface of this province publishes envelopes: the DERs' static connection limits apply
    got = _limits(p, ["t1", "t2", "m1"], iv, iv + timedelta(minutes=5))
    assert (got["t1"].export_kw, got["t1"].binding_export) == (300.0, f"static_limit:der/{t1}/export_limit_kw")
    assert got["t2"].export_kw == 200.0
    assert (got["m1"].export_kw, got["m1"].import_kw) == (250.0, 400.0)
    p.run("ldc_b", lambda ctx: ders.suspend(ctx, p.ders["m1"]))
    suspended = _limits(p, ["m1"], iv, iv + timedelta(minutes=5))["m1"]
    assert (suspended.export_kw, suspended.binding_export) == (0.0, f"status:suspended:der/{p.ders['m1']}")
    (before,) = _submit(p, "owner_1", item(K.DER, t1, iv, [(20, 300)]))
    assert before.status is AckStatus.ACCEPTED
    recorded = _outage(p, "ldc_a", "tdi_t", p.clock.now(), iv + timedelta(hours=1))
    point = p.points["tdi_t"][0]
    assert point in recorded.de_energised_point_ids
    limits = _limits(p, ["t1", "t2"], iv, iv + timedelta(minutes=5))
    assert (limits["t1"].export_kw, limits["t1"].binding_export) == (
        0.0,
        f"envelope:point/{point}:{DE_ENERGISED_BINDING}",
    )
    assert limits["t2"].export_kw == 200.0  # t2's point is still energised
    # the DER is still in service: the outage reaches the market through its envelope, not its status
    assert p.run("owner_1", lambda ctx: ders.get_der(ctx, t1)).status is DerStatus.IN_SERVICE  # type: ignore[attr-defined]
    with pytest.raises(GridbridgeError) as refused:
        _submit(p, "owner_1", item(K.DER, t1, iv, [(20, 300)]))
    (ack,) = refused.value.details["items"]
    assert ack["code"] == "offers.beyond_envelope"
    assert f"envelope:point/{point}" in ack["message"]
    # after the outage the static limit is back
    after = iv + timedelta(hours=1)
    assert _limits(p, ["t1"], after, after + timedelta(minutes=5))["t1"].export_kw == 300.0


def test_alt1_outage_is_caught_by_the_dso_check_and_redispatched(sqlite_url: str) -> None:
    p = build_market_province(sqlite_url)
    iv = rt_interval(p)
    _submit(p, "owner_2", item(K.DER, p.ders["m1"], iv, [(25, 200)]))
    _submit(p, "agg_1", item(K.DER, p.ders["m2"], iv, [(35, 300)]))
    _submit(p, "owner_2", item(K.DER, p.ders["t2"], iv, [(45, 200)]))
    p.clock.set(iv - timedelta(minutes=5))
    recorded = _outage(p, "ldc_b", "tdi_m", p.clock.now(), iv + timedelta(hours=1))
    point = p.points["tdi_m"][0]
    assert point in recorded.de_energised_point_ids

    def go(ctx: Context) -> tuple[object, list[object]]:
        run = clearing.clear_interval(ctx, RT, iv, energy_requirement_kw=400.0)
        return run, instructions.issue_instructions(ctx, run.id)  # type: ignore[return-value]

    run, issued = p.run("tso", go)
    (cut,) = run.curtailments  # type: ignore[attr-defined]
    assert (cut.der_id, cut.dispatched_kw, cut.allowed_kw, cut.curtailed_kw) == (p.ders["m1"], 200.0, 0.0, 200.0)
    assert cut.reason.startswith(f"envelope:point/{point}:{DE_ENERGISED_BINDING}")
    names = {v: k for k, v in p.ders.items()}
    dispatched = {names[i.resource_id]: i.p_kw for i in issued if i.resource_kind is K.DER}  # type: ignore[attr-defined]
    assert dispatched == {"m2": 300.0, "t2": 100.0}
    assert run.system_energy_price_cad_per_mwh == Decimal("45.00")  # type: ignore[attr-defined]


def test_published_envelopes_and_configured_defaults_cap_ders_by_their_share(database_url: str) -> None:
    p = envelope_province(database_url, tdis=("tdi_a",))
    start = T0 + timedelta(minutes=15)
    end = start + timedelta(minutes=5)
    a1_point = point_ids(p)["LV1.101 Bus 1"]
    # the DSO configured dynamic envelopes here but published none yet: its default applies (1.5 kW)
    (a1,) = _limits(p, ["a1"], start, end).values()
    assert (a1.export_kw, a1.binding_export) == (1.5, f"default:point/{a1_point}")

    # a second DER at a1's point, 30 kW: the two share the point's limit in proportion to their static limits
    def connect(ctx: Context) -> str:
        der = ders.request_interconnection(ctx, spec("der-a1-b", 30.0), a1_point, owner_id=p.ids["owner_1"])
        return der.id

    p.ders["a1b"] = p.run("owner_1", connect)
    p.run("ldc_a", lambda ctx: ders.start_review(ctx, p.ders["a1b"]))
    p.run("ldc_a", lambda ctx: ders.decide_review(ctx, p.ders["a1b"], ReviewDecision.APPROVED, "fits"))
    p.run("ldc_a", lambda ctx: ders.commission(ctx, p.ders["a1b"]))
    run_envelopes(p)
    with p.platform.unit_of_work() as uow:
        (in_force,) = uow.envelopes.envelopes.limits_in_force([a1_point], start, end).values()
    assert in_force.export_envelope is not None
    point_kw = in_force.p_export_max_kw
    assert point_kw < 60.0  # the transformer binds below a1's static limit
    got = _limits(p, ["a1", "a1b"], start, end)
    binding = f"envelope:point/{a1_point}:{in_force.export_envelope.binding_export}"
    assert (got["a1"].export_kw, got["a1"].binding_export) == (pytest.approx(point_kw * 60 / 90), binding)
    assert (got["a1b"].export_kw, got["a1b"].binding_export) == (pytest.approx(point_kw * 30 / 90), binding)
    assert got["a1"].export_kw + got["a1b"].export_kw == pytest.approx(point_kw)
