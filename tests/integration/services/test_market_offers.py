"""Offers through the real services: every bad-input case of issue 4 rejected with its code, acknowledged to the
sender and leaving the stored state unchanged; revisions; gate closure on an injected clock; clip or reject."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from gridbridge.cli.config import Settings
from gridbridge.domain.errors import ConflictError, GridbridgeError, NotFound, PermissionDenied, ValidationFailed
from gridbridge.domain.market import AckStatus, OfferItem, ResourceKind
from gridbridge.domain.offers import Product, Side
from gridbridge.domain.roles import Service
from gridbridge.services import clearing, ders, offers, tdis
from gridbridge.services.market_ports import OfferFilter
from gridbridge.services.ports import Page
from gridbridge.store.market_tables import offers as offers_table
from gridbridge.store.tables import audit_records
from market_province import DA, RT, build_market_province, da_interval, item, rt_interval
from registry_province import Province, enrol

K = ResourceKind


@pytest.fixture
def province(sqlite_url: str) -> Province:
    return build_market_province(sqlite_url)


def count(p: Province, table: object) -> int:
    with p.platform.unit_of_work() as uow:
        return int(uow.session.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def submit(p: Province, who: str, items: list[OfferItem]) -> list[offers.OfferAck]:
    return p.run(who, lambda ctx: offers.submit_offers(ctx, items))  # type: ignore[return-value]


def test_every_bad_input_is_rejected_with_its_code_and_changes_nothing(province: Province) -> None:
    p = province
    p.clock.advance(timedelta(days=2))
    enrol(p, "agg_1", "vpp_1", ["a2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_a"])
    iv = rt_interval(p)
    p.run("ldc_a", lambda ctx: ders.suspend(ctx, p.ders["t2"]))
    t1 = p.ders["t1"]
    dr_a = p.ders["dr_a"]  # owner_1's demand response (200 kW of load), registered for both products
    reserve = Product.OPERATING_RESERVE
    batch = [
        item(K.DER, t1, iv, [(20, 100)]),  # the good one
        item(K.DER, dr_a, iv, [(30, 100), (20, 100)], product=reserve),
        item(K.DER, t1, iv, [(2500, 100)], side=Side.BID),
        item(K.DER, t1, iv, [(-2100, 100)], side=Side.BID),
        item(K.DER, t1, iv - timedelta(minutes=60), [(20, 100)]),
        item(K.DER, t1, iv + timedelta(minutes=1), [(20, 100)]),
        item(K.DER, t1, iv, [(20, 100)], product=reserve, side=Side.BID),
        item(K.DER, dr_a, iv, [(20, 600)], product=reserve),
        item(K.DER, dr_a, iv, [(1, 1)] * 11, product=reserve),
        item(K.DER, dr_a, iv, [], product=reserve),
        item(K.DER, dr_a, iv, [(20, 0)], product=reserve),
        item(K.DER, p.ders["m3"], iv, [(20, 50)]),  # alt 1, below the 100 kW threshold
        item(K.DER, p.ders["a1"], iv + timedelta(minutes=5), [(20, 50)], market=DA),  # not on the hour
        item(K.DER, p.ders["t3"], iv, [(20, 50)]),  # agg_2's DER, not owner_1's
        item(K.DER, "00000000-0000-4000-8000-000000000000", iv, [(20, 50)]),  # no such DER
        item(K.AGGREGATION, p.aggregations["vpp_1"], iv, [(20, 50)]),  # agg_1's aggregation
        item(K.DSO_VIRTUAL, p.tdis["tdi_t"], iv, [(20, 50)]),
        item(K.DER, t1, iv, [(20, 100)], product=reserve),  # a PV DER is registered for energy only
    ]
    offers_before, audit_before = count(p, offers_table), count(p, audit_records)
    acks = submit(p, "owner_1", batch)
    assert [(a.index, a.status.value, a.code) for a in acks] == [
        (0, "accepted", "offers.accepted"),
        (1, "rejected", "offers.non_monotonic"),
        (2, "rejected", "offers.price_above_cap"),
        (3, "rejected", "offers.price_below_floor"),
        (4, "rejected", "offers.gate_closed"),
        (5, "rejected", "offers.misaligned_interval"),
        (6, "rejected", "offers.reserve_bid"),
        (7, "rejected", "offers.beyond_capability"),
        (8, "rejected", "offers.too_many_segments"),
        (9, "rejected", "offers.empty"),
        (10, "rejected", "offers.quantity_not_positive"),
        (11, "rejected", "offers.not_enrolled"),
        (12, "rejected", "offers.misaligned_interval"),
        (13, "rejected", "offers.not_represented"),
        (14, "rejected", "offers.not_represented"),
        (15, "rejected", "offers.not_represented"),
        (16, "rejected", "offers.not_enrolled"),
        (17, "rejected", "offers.not_enrolled"),
    ]
    assert "not registered for operating_reserve (registered for: energy)" in acks[17].message
    assert acks[13].message == acks[14].message.replace("00000000-0000-4000-8000-000000000000", p.ders["t3"])
    assert all(a.field for a in acks[1:])
    # only the good item is stored and audited
    assert count(p, offers_table) == offers_before + 1
    assert count(p, audit_records) == audit_before + 1

    # the rest of the registration rules
    more = submit(
        p,
        "agg_1",
        [
            item(K.DER, p.ders["a2"], iv, [(20, 50)]),  # sold through vpp_1 for energy in that interval
            item(K.AGGREGATION, p.aggregations["vpp_1"], iv, [(20, 50)], product=Product.OPERATING_RESERVE),
            item(K.DER, p.ders["m2"], iv, [(20, 50)]),
        ],
    )
    assert [a.code for a in more] == ["offers.double_counted", "offers.not_enrolled", "offers.accepted"]


def test_an_all_rejected_batch_is_refused_whole_with_the_acknowledgements(province: Province) -> None:
    p = province
    iv = rt_interval(p)
    p.run("ldc_a", lambda ctx: ders.suspend(ctx, p.ders["t2"]))
    audit_before = count(p, audit_records)
    with pytest.raises(ValidationFailed) as caught:
        submit(p, "owner_2", [item(K.DER, p.ders["t2"], iv, [(20, 50)]), item(K.DER, p.ders["t1"], iv, [(20, 50)])])
    assert caught.value.code == "offers.batch_rejected"
    assert [(i["code"], i["status"]) for i in caught.value.details["items"]] == [
        ("offers.not_enrolled", "rejected"),
        ("offers.not_represented", "rejected"),
    ]
    assert count(p, offers_table) == 0
    assert count(p, audit_records) == audit_before
    with pytest.raises(ValidationFailed) as empty:
        submit(p, "owner_2", [])
    assert empty.value.code == "validation.required"
    for role in ("tso", "regulator"):
        with pytest.raises(PermissionDenied):
            submit(p, role, [item(K.DER, p.ders["t2"], iv, [(20, 50)])])


def test_revisions_and_gate_closure_on_the_injected_clock(province: Province) -> None:
    p = province
    iv = rt_interval(p, 30)
    t2 = p.ders["t2"]
    (first,) = submit(p, "owner_2", [item(K.DER, t2, iv, [(20, 100)])])
    (second,) = submit(p, "owner_2", [item(K.DER, t2, iv, [(22, 150)])])
    assert (first.offer.revision, second.offer.revision) == (1, 2)  # type: ignore[union-attr]
    # gate closure is 10 minutes before the interval (the default real-time lead)
    p.clock.set(iv - timedelta(minutes=10, seconds=1))
    (third,) = submit(p, "owner_2", [item(K.DER, t2, iv, [(24, 160)])])
    assert third.offer.revision == 3  # type: ignore[union-attr]
    with pytest.raises(ConflictError) as early:
        p.run("tso", lambda ctx: clearing.clear_interval(ctx, RT, iv, energy_requirement_kw=50))
    assert early.value.code == "clearing.gate_open"
    p.clock.advance(timedelta(seconds=1))
    with pytest.raises(ValidationFailed) as late:
        submit(p, "owner_2", [item(K.DER, t2, iv, [(26, 170)])])
    assert late.value.details["items"][0]["code"] == "offers.gate_closed"
    in_force = p.run("regulator", lambda ctx: offers.list_offers(ctx, Page(), OfferFilter(interval_start=iv)))
    assert [(o.revision, o.segments[0].price_cad_per_mwh) for o in in_force] == [(3, Decimal("24"))]  # type: ignore[attr-defined]
    _, versions = p.run("owner_2", lambda ctx: offers.get_offer(ctx, third.offer.id))  # type: ignore[union-attr,misc]
    assert [v.revision for v in versions] == [1, 2, 3]
    assert [v.superseded_at is None for v in versions] == [False, False, True]
    run = p.run("tso", lambda ctx: clearing.clear_interval(ctx, RT, iv, energy_requirement_kw=50))
    assert run.system_energy_price_cad_per_mwh == Decimal("24.00")  # type: ignore[attr-defined]
    with pytest.raises(ConflictError) as again:
        p.run("tso", lambda ctx: clearing.clear_interval(ctx, RT, iv, energy_requirement_kw=50))
    assert again.value.code == "clearing.already_cleared"
    # day-ahead closes 12 hours ahead by default
    da = da_interval(p, 14)
    p.clock.set(da - timedelta(hours=12, seconds=1))
    (ok,) = submit(p, "owner_2", [item(K.DER, t2, da, [(20, 100)], market=DA)])
    assert ok.code == "offers.accepted"
    p.clock.advance(timedelta(seconds=1))
    with pytest.raises(GridbridgeError):
        submit(p, "owner_2", [item(K.DER, t2, da, [(20, 100)], market=DA)])


def test_reject_policy_names_the_binding_envelope(province: Province) -> None:
    p = province
    p.platform.settings = Settings(database_url=p.platform.settings.database_url, envelope_policy="reject")  # type: ignore[arg-type]
    iv = rt_interval(p)
    with pytest.raises(ValidationFailed) as caught:
        submit(p, "owner_1", [item(K.DER, p.ders["t1"], iv, [(20, 500)])])
    (ack,) = caught.value.details["items"]
    assert ack["code"] == "offers.beyond_envelope"
    assert f"static_limit:der/{p.ders['t1']}/export_limit_kw" in ack["message"]
    (fits,) = submit(p, "owner_1", [item(K.DER, p.ders["t1"], iv, [(20, 300)])])
    assert fits.status is AckStatus.ACCEPTED


def test_offer_visibility_follows_the_parties_and_the_model(province: Province) -> None:
    p = province
    iv = rt_interval(p)
    submit(p, "owner_1", [item(K.DER, p.ders["t1"], iv, [(20, 100)]), item(K.DER, p.ders["a1"], iv, [(20, 50)])])
    submit(p, "owner_2", [item(K.DER, p.ders["m1"], iv, [(20, 100)])])
    names = {v: k for k, v in p.ders.items()}

    def seen(who: str) -> set[str]:
        return {names[o.resource_id] for o in p.run(who, lambda ctx: offers.list_offers(ctx, Page()))}  # type: ignore[attr-defined]

    assert seen("owner_1") == {"t1", "a1"}
    assert seen("owner_2") == {"m1"}
    assert seen("agg_1") == set()
    assert seen("ldc_a") == {"t1", "a1"}  # its interfaces tdi_t and tdi_a
    assert seen("ldc_b") == {"m1"}
    assert seen("tso") == {"t1", "m1"}  # a1 goes to the DSO under alt 2, not to the TSO's market
    assert seen("regulator") == {"t1", "a1", "m1"}


def _settings(p: Province, **values: object) -> None:
    p.platform.settings = Settings(database_url=p.platform.settings.database_url, **values)  # type: ignore[arg-type]


def test_price_bounds_are_per_market(province: Province) -> None:
    p = province
    _settings(
        p,
        day_ahead_price_floor_cad_per_mwh=Decimal("-50"),
        day_ahead_price_cap_cad_per_mwh=Decimal("100"),
        real_time_price_floor_cad_per_mwh=Decimal("-500"),
        real_time_price_cap_cad_per_mwh=Decimal("1000"),
    )
    rt, da = rt_interval(p), da_interval(p)
    t1, t3 = p.ders["t1"], p.ders["t3"]
    acks = submit(
        p,
        "owner_1",
        [
            item(K.DER, t1, da, [(150, 100)], market=DA),  # above the day-ahead cap
            item(K.DER, t1, rt, [(150, 100)]),  # within the real-time bounds
            item(K.DER, t1, rt, [(1001, 100)], market=RT, side=Side.OFFER),  # above the real-time cap
            item(K.DER, t1, da, [(100, 100)], market=DA, side=Side.OFFER),  # at the day-ahead cap
        ],
    )
    assert [a.code for a in acks] == [
        "offers.price_above_cap",
        "offers.accepted",
        "offers.price_above_cap",
        "offers.accepted",
    ]
    floors = submit(
        p,
        "agg_2",
        [
            item(K.DER, t3, da, [(-60, 50)], market=DA, side=Side.BID),  # below the day-ahead floor
            item(K.DER, t3, rt, [(-60, 50)], side=Side.BID),  # within the real-time floor
            item(K.DER, t3, rt + timedelta(minutes=5), [(-501, 50)], side=Side.BID),  # below the real-time floor
        ],
    )
    assert [a.code for a in floors] == ["offers.price_below_floor", "offers.accepted", "offers.price_below_floor"]
    with pytest.raises(ValueError, match="GRIDBRIDGE_REAL_TIME_PRICE_FLOOR_CAD_PER_MWH"):
        _settings(p, real_time_price_floor_cad_per_mwh=Decimal("10"), real_time_price_cap_cad_per_mwh=Decimal("10"))


def test_the_gate_closure_setting_decides_what_is_accepted(province: Province) -> None:
    p = province
    rt = rt_interval(p, 30)  # 30 minutes ahead: open under the default 10-minute lead
    da = da_interval(p, 10)  # 10 hours ahead: closed under the default 12-hour lead
    t2 = p.ders["t2"]
    batch = [item(K.DER, t2, rt, [(20, 100)]), item(K.DER, t2, da, [(20, 100)], market=DA)]
    assert [a.code for a in submit(p, "owner_2", batch)] == ["offers.accepted", "offers.gate_closed"]
    _settings(p, real_time_gate_closure_min=45, day_ahead_gate_closure_min=300)
    assert [a.code for a in submit(p, "owner_2", batch)] == ["offers.gate_closed", "offers.accepted"]
    # clearing follows the same setting: the real-time interval is past its 45-minute gate closure already
    run = p.run("tso", lambda ctx: clearing.clear_interval(ctx, RT, rt, energy_requirement_kw=50))
    assert run.system_energy_price_cad_per_mwh == Decimal("20.00")  # type: ignore[attr-defined]
    with pytest.raises(ConflictError) as early:
        p.run("tso", lambda ctx: clearing.clear_interval(ctx, DA, da, energy_requirement_kw=50))
    assert early.value.code == "clearing.gate_open"


def test_aggregations_are_held_to_each_interfaces_direct_participation_threshold(province: Province) -> None:
    p = province
    p.clock.advance(timedelta(days=2))  # memberships start a day after T0
    local = enrol(p, "agg_1", "local_m", ["m2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_b"])
    span = enrol(
        p,
        "agg_1",
        "span_am",
        ["a3", "m2"],
        {Service.OPERATING_RESERVE: 50.0},
        multi_tdi=True,
        approve_as=["ldc_a", "ldc_b"],
    )
    small_a = enrol(p, "agg_1", "small_a", ["a2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_a"])
    iv = rt_interval(p)
    acks = submit(
        p,
        "agg_1",
        [
            item(K.AGGREGATION, local, iv, [(20, 100)]),  # 300 kW at tdi_m (alt 1), above its 100 kW threshold
            item(K.AGGREGATION, span, iv, [(20, 100)], product=Product.OPERATING_RESERVE),  # 60 kW at tdi_a
            item(K.AGGREGATION, small_a, iv, [(20, 50)]),  # 60 kW at tdi_a (alt 2): the DSO aggregates it
        ],
    )
    assert [a.code for a in acks] == ["offers.accepted", "offers.not_enrolled", "offers.accepted"]
    assert [a.offer.route.value if a.offer else None for a in acks] == ["tso", None, "dso"]
    # the rejection names the interface, the aggregation's size there and the threshold
    assert "60 kW at tdi_a, below the interface's 1000 kW direct-participation threshold" in acks[1].message
    # the threshold is read at each submission: at 500 kW the alt 1 aggregation may no longer offer at all
    p.run(
        "ldc_b",
        lambda ctx: tdis.update_limits(
            ctx, p.tdis["tdi_m"], import_limit_kw=None, export_limit_kw=None, direct_threshold_kw=500.0
        ),
    )
    with pytest.raises(ValidationFailed) as caught:
        submit(p, "agg_1", [item(K.AGGREGATION, local, iv + timedelta(minutes=5), [(20, 100)])])
    (ack,) = caught.value.details["items"]
    assert ack["code"] == "offers.not_enrolled"
    assert "300 kW at tdi_m, below the interface's 500 kW" in ack["message"]


def test_a_ders_market_products_decide_what_it_may_offer(province: Province) -> None:
    p = province
    iv = rt_interval(p)
    t1, t3 = p.ders["t1"], p.ders["t3"]
    reserve = Product.OPERATING_RESERVE

    def get(key: str) -> frozenset[Product]:
        return p.run("regulator", lambda ctx: ders.get_der(ctx, p.ders[key])).market_products  # type: ignore[attr-defined,no-any-return]

    # commissioning registers what the technology can provide: reserve only for a dispatchable one
    assert (get("t1"), get("t3"), get("dr_a")) == (
        frozenset({Product.ENERGY}),
        frozenset({Product.ENERGY, reserve}),
        frozenset({Product.ENERGY, reserve}),
    )
    (held,) = submit(p, "agg_2", [item(K.DER, t3, iv, [(30, 50)], product=reserve)])
    assert held.code == "offers.accepted"

    # a PV DER cannot register for reserve; nothing changes
    audit_before = count(p, audit_records)
    with pytest.raises(ValidationFailed) as refused:
        p.run("owner_1", lambda ctx: ders.register_market_products(ctx, t1, [Product.ENERGY, reserve]))
    assert (refused.value.code, refused.value.field) == ("der.product_not_capable", "products")
    assert get("t1") == frozenset({Product.ENERGY})
    assert count(p, audit_records) == audit_before

    # its representative narrows t3 to energy: its reserve offers are refused, its energy offers accepted
    p.run("agg_2", lambda ctx: ders.register_market_products(ctx, t3, [Product.ENERGY]))
    assert count(p, audit_records) == audit_before + 1
    acks = submit(
        p,
        "agg_2",
        [
            item(K.DER, t3, iv + timedelta(minutes=5), [(30, 50)], product=reserve),
            item(K.DER, t3, iv + timedelta(minutes=5), [(30, 50)]),
        ],
    )
    assert [(a.code, a.field) for a in acks] == [("offers.not_enrolled", "product"), ("offers.accepted", None)]
    # the owner may register too (back to both); withdrawing from every product stops its own offers
    p.run("owner_2", lambda ctx: ders.register_market_products(ctx, t3, [Product.ENERGY, reserve]))
    assert get("t3") == frozenset({Product.ENERGY, reserve})
    p.run("owner_2", lambda ctx: ders.register_market_products(ctx, t3, []))
    with pytest.raises(ValidationFailed) as none:
        submit(p, "agg_2", [item(K.DER, t3, iv + timedelta(minutes=10), [(30, 50)])])
    assert "registered for: nothing" in none.value.details["items"][0]["message"]

    # only the owner or representative, and only after commissioning and before retirement
    with pytest.raises(PermissionDenied):
        p.run("ldc_a", lambda ctx: ders.register_market_products(ctx, t3, [Product.ENERGY]))
    with pytest.raises(NotFound):
        p.run("agg_1", lambda ctx: ders.register_market_products(ctx, t3, [Product.ENERGY]))
    with pytest.raises(PermissionDenied):
        p.run("tso", lambda ctx: ders.register_market_products(ctx, t1, [Product.ENERGY]))
    p.run("owner_1", lambda ctx: ders.retire(ctx, t1))
    with pytest.raises(ConflictError) as retired:
        p.run("owner_1", lambda ctx: ders.register_market_products(ctx, t1, [Product.ENERGY]))
    assert retired.value.code == "der.illegal_transition"
