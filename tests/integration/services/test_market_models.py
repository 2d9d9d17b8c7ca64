"""The coordination cycle under each of the four models, driven through the real services on the market
province (``market_province``): offers -> DSO aggregation -> clearing -> distribution check -> instructions ->
split to DERs -> acknowledgements, with the numbers checked by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from gridbridge.domain.market import (
    InstructionStatus,
    InterfaceForecast,
    NotificationKind,
    ResourceKind,
    Response,
    Route,
    SplitMethod,
)
from gridbridge.domain.offers import Side
from gridbridge.domain.roles import Service
from gridbridge.services import clearing, cycle, ders, instructions, offers, tdis
from gridbridge.services.context import Context
from gridbridge.services.instructions import ResponseItem
from gridbridge.services.market_ports import InstructionFilter
from gridbridge.services.ports import Page
from market_province import RT, build_market_province, item, rt_interval
from registry_province import Province, enrol

K = ResourceKind


@pytest.fixture
def province(sqlite_url: str) -> Province:
    return build_market_province(sqlite_url)


def submit(p: Province, who: str, *items: object) -> list[offers.OfferAck]:
    return p.run(who, lambda ctx: offers.submit_offers(ctx, list(items)))  # type: ignore[return-value,arg-type]


def clear_and_issue(p: Province, interval: datetime, requirement_kw: float, **kwargs: object) -> tuple[object, list]:
    def go(ctx: Context) -> tuple[object, list]:
        run = clearing.clear_interval(ctx, RT, interval, energy_requirement_kw=requirement_kw, **kwargs)  # type: ignore[arg-type]
        return run, instructions.issue_instructions(ctx, run.id)

    return p.run("tso", go)  # type: ignore[return-value]


def by_resource(p: Province, instructions_: list) -> dict[str, object]:
    """Instructions by the name of their resource (interface net schedules of Total DSO areas left out)."""
    names = {v: k for k, v in {**p.ders, **p.tdis, **p.aggregations}.items()}
    return {names[i.resource_id]: i for i in instructions_ if i.resource_kind is not K.INTERFACE}


def past_gate(p: Province, interval: datetime) -> None:
    p.clock.set(interval - timedelta(minutes=5))


def test_total_tso_clears_with_each_ders_envelope_as_a_constraint(database_url: str) -> None:
    p = build_market_province(database_url)
    iv = rt_interval(p)
    (ack,) = submit(p, "owner_1", item(K.DER, p.ders["t1"], iv, [(20, 200), (30, 300)]))
    assert ack.code == "offers.clipped_to_envelope"
    assert ack.accepted_kw == Decimal("300.000")
    assert ack.binding_envelope == f"static_limit:der/{p.ders['t1']}/export_limit_kw"
    assert ack.offer is not None
    assert ack.offer.route is Route.TSO
    submit(p, "owner_2", item(K.DER, p.ders["t2"], iv, [(25, 200)]))
    submit(p, "agg_2", item(K.DER, p.ders["t3"], iv, [(60, 100)], side=Side.BID))
    past_gate(p, iv)

    run, issued = clear_and_issue(p, iv, 350.0, forecasts={p.tdis["tdi_t"]: InterfaceForecast(load_kw=100.0)})
    # 350 kW for the TSO plus t3's 100 kW bid: t1 200 @ 20, t2 200 @ 25, then t1 50 @ 30 (the marginal offer)
    face = next(f for f in run.interfaces if f.tdi_id == p.tdis["tdi_t"])  # type: ignore[attr-defined]
    assert face.energy_price_cad_per_mwh == Decimal("30.00")
    assert face.injection_kw == pytest.approx(350.0)
    assert face.net_flow_kw == pytest.approx(100.0 - 350.0)  # 100 kW of load: reverse flow
    got = by_resource(p, issued)
    assert {k: (i.p_kw, i.recipient_id) for k, i in got.items()} == {  # type: ignore[attr-defined]
        "t1": (250.0, p.ids["owner_1"]),
        "t2": (200.0, p.ids["owner_2"]),
        "t3": (-100.0, p.ids["agg_2"]),
    }
    assert run.curtailments == ()  # type: ignore[attr-defined]
    assert all(i.kind.value == "dispatch" and i.parent_id is None for i in issued)

    # acknowledgements: receipt then accept or reject, each by the recipient
    p.run("owner_1", lambda ctx: instructions.respond_to_instruction(ctx, got["t1"].id, Response.RECEIPT))  # type: ignore[attr-defined]
    p.run("owner_1", lambda ctx: instructions.respond_to_instruction(ctx, got["t1"].id, Response.ACCEPT))  # type: ignore[attr-defined]
    acks = p.run(
        "owner_2",
        lambda ctx: instructions.respond_many(
            ctx,
            [
                ResponseItem(got["t2"].id, Response.RECEIPT),  # type: ignore[attr-defined]
                ResponseItem(got["t2"].id, Response.REJECT, "inverter fault"),  # type: ignore[attr-defined]
            ],
        ),
    )
    assert [a.instruction.status for a in acks] == [InstructionStatus.RECEIVED, InstructionStatus.REJECTED]  # type: ignore[attr-defined]
    final = {i.id: i for i in p.run("tso", lambda ctx: instructions.list_instructions(ctx, Page()))}  # type: ignore[attr-defined]
    assert final[got["t1"].id].status is InstructionStatus.ACCEPTED  # type: ignore[attr-defined]
    assert final[got["t2"].id].response_reason == "inverter fault"  # type: ignore[attr-defined]
    notes = p.run("tso", lambda ctx: instructions.list_notifications(ctx, Page()))
    assert [(n.kind, n.tdi_id) for n in notes] == [(NotificationKind.REVERSE_FLOW, p.tdis["tdi_t"])]  # type: ignore[attr-defined]


def test_alt1_dso_check_hands_the_shortfall_back_and_the_tso_redispatches(province: Province) -> None:
    p = province
    iv = rt_interval(p)
    (m1,) = submit(p, "owner_2", item(K.DER, p.ders["m1"], iv, [(25, 400)]))
    # alt 1 direct offers are not cut at submission: the TSO models them at the interface without envelopes
    assert m1.code == "offers.accepted"
    assert m1.accepted_kw == Decimal("400")
    submit(p, "agg_1", item(K.DER, p.ders["m2"], iv, [(35, 300)]))
    past_gate(p, iv)

    run, issued = clear_and_issue(p, iv, 500.0)
    first = {r.resource_id: r.first_p_kw for r in run.resources}  # type: ignore[attr-defined]
    final = {r.resource_id: r.p_kw for r in run.resources}  # type: ignore[attr-defined]
    assert first == {p.ders["m1"]: 400.0, p.ders["m2"]: 100.0}
    assert final == {p.ders["m1"]: 250.0, p.ders["m2"]: 250.0}
    (cut,) = run.curtailments  # type: ignore[attr-defined]
    assert (cut.der_id, cut.dispatched_kw, cut.allowed_kw, cut.curtailed_kw) == (p.ders["m1"], 400.0, 250.0, 150.0)
    assert cut.checked_by == "dso"
    assert "export_limit_kw allows 250.000 kW" in cut.reason
    face = next(f for f in run.interfaces if f.tdi_id == p.tdis["tdi_m"])  # type: ignore[attr-defined]
    assert (face.shortfall_kw, face.redispatched_kw) == (pytest.approx(150.0), pytest.approx(150.0))
    assert face.energy_price_cad_per_mwh == Decimal("35.00")
    assert run.redispatch_rounds == 1  # type: ignore[attr-defined]
    got = by_resource(p, issued)
    assert (got["m1"].p_kw, got["m1"].recipient_id) == (250.0, p.ids["owner_2"])  # type: ignore[attr-defined]
    assert (got["m2"].p_kw, got["m2"].recipient_id) == (250.0, p.ids["agg_1"])  # type: ignore[attr-defined]
    answers = {
        "owner_2": [ResponseItem(got["m1"].id, Response.RECEIPT), ResponseItem(got["m1"].id, Response.ACCEPT)],  # type: ignore[attr-defined]
        "agg_1": [
            ResponseItem(got["m2"].id, Response.RECEIPT),  # type: ignore[attr-defined]
            ResponseItem(got["m2"].id, Response.REJECT, "two inverters tripped"),  # type: ignore[attr-defined]
        ],
    }
    for who, items in answers.items():
        p.run(who, lambda ctx, items=items: instructions.respond_many(ctx, items))
    final = {i.id: i.status for i in p.run("ldc_b", lambda ctx: instructions.list_instructions(ctx, Page()))}  # type: ignore[attr-defined]
    assert final[got["m1"].id] is InstructionStatus.ACCEPTED  # type: ignore[attr-defined]
    assert final[got["m2"].id] is InstructionStatus.REJECTED  # type: ignore[attr-defined]


def test_alt1_outage_after_gate_closure_is_redispatched_elsewhere(province: Province) -> None:
    p = province
    iv = rt_interval(p)
    submit(p, "owner_2", item(K.DER, p.ders["m1"], iv, [(25, 200)]))
    submit(p, "agg_1", item(K.DER, p.ders["m2"], iv, [(35, 300)]))
    submit(p, "owner_2", item(K.DER, p.ders["t2"], iv, [(45, 200)]))
    past_gate(p, iv)
    p.run("ldc_b", lambda ctx: ders.suspend(ctx, p.ders["m1"]))  # m1's feeder is switched out

    run, issued = clear_and_issue(p, iv, 400.0)
    (cut,) = run.curtailments  # type: ignore[attr-defined]
    assert (cut.curtailed_kw, cut.allowed_kw) == (200.0, 0.0)
    assert cut.reason.startswith(f"status:suspended:der/{p.ders['m1']}")
    # m2's 300 kW and 100 kW of t2 (Total TSO interface) make good m1's 200 kW
    assert {k: i.p_kw for k, i in by_resource(p, issued).items()} == {"m2": 300.0, "t2": 100.0}  # type: ignore[attr-defined]
    assert run.system_energy_price_cad_per_mwh == Decimal("45.00")  # type: ignore[attr-defined]


def test_alt2_dso_virtual_resource_and_direct_participants(province: Province) -> None:
    p = province
    p.clock.advance(timedelta(days=2))  # aggregation memberships start a day after T0
    enrol(p, "agg_1", "vpp_1", ["a2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_a"])
    iv = rt_interval(p)
    big, a3 = submit(
        p, "owner_2", item(K.DER, p.ders["big_a"], iv, [(40, 1500)]), item(K.DER, p.ders["a3"], iv, [(5, 60)])
    )
    assert (big.offer.route, a3.offer.route) == (Route.TSO, Route.DSO)  # type: ignore[union-attr]
    submit(p, "owner_1", item(K.DER, p.ders["a1"], iv, [(10, 40), (50, 20)]))
    submit(
        p,
        "agg_1",
        item(K.AGGREGATION, p.aggregations["vpp_1"], iv, [(30, 60)]),
        item(K.DER, p.ders["dr_a"], iv, [(45, 200)]),
    )
    (virtual,) = p.run("ldc_a", lambda ctx: cycle.prepare_interval(ctx, RT, iv))  # type: ignore[misc]
    # vpp_1 (60 kW at tdi_a) is below the interface's 1,000 kW threshold: the DSO aggregates it too
    assert [(s.price_cad_per_mwh, s.quantity_kw) for s in virtual.segments] == [
        (Decimal("5.00"), Decimal("60.000")),
        (Decimal("10.00"), Decimal("40.000")),
        (Decimal("30.00"), Decimal("60.000")),
        (Decimal("45.00"), Decimal("200.000")),
        (Decimal("50.00"), Decimal("20.000")),
    ]
    assert len(virtual.source_offer_ids) == 4
    past_gate(p, iv)

    run, issued = clear_and_issue(p, iv, 1700.0)
    # merit order: a3 5, a1 10, vpp_1 30, big_a 40 (1,660 kW so far), then 40 kW of dr_a at 45: the price
    assert run.system_energy_price_cad_per_mwh == Decimal("45.00")  # type: ignore[attr-defined]
    got = by_resource(p, issued)
    assert {k: (i.p_kw, i.recipient_id) for k, i in got.items()} == {  # type: ignore[attr-defined]
        "big_a": (1500.0, p.ids["owner_2"]),
        "tdi_a": (200.0, p.ids["ldc_a"]),
    }
    split = p.run("ldc_a", lambda ctx: instructions.split_instruction(ctx, got["tdi_a"].id))  # type: ignore[attr-defined]
    children = by_resource(p, split.children)  # type: ignore[attr-defined]
    assert {k: (c.p_kw, c.recipient_id) for k, c in children.items()} == {  # type: ignore[attr-defined]
        "a3": (60.0, p.ids["agg_1"]),
        "a1": (40.0, p.ids["owner_1"]),
        "vpp_1": (60.0, p.ids["agg_1"]),
        "dr_a": (40.0, p.ids["agg_1"]),
    }
    assert all(c.parent_id == got["tdi_a"].id and c.issuer_id == p.ids["ldc_a"] for c in split.children)  # type: ignore[attr-defined]
    assert split.shortfall_kw == 0.0  # type: ignore[attr-defined]
    agg = p.run("agg_1", lambda ctx: instructions.split_instruction(ctx, children["vpp_1"].id))  # type: ignore[attr-defined]
    assert [(c.der_id, c.p_kw) for c in agg.children] == [(p.ders["a2"], 60.0)]  # type: ignore[attr-defined]

    # the TSO sees its own instructions and the market-participating a2, not the DERs behind the DSO
    seen = set(by_resource(p, p.run("tso", lambda ctx: instructions.list_instructions(ctx, Page()))))  # type: ignore[arg-type]
    assert seen == {"big_a", "tdi_a", "vpp_1", "a2"}
    ldc = p.run("ldc_a", lambda ctx: instructions.list_instructions(ctx, Page()))
    assert len(ldc) == 7  # type: ignore[arg-type]
    # agg_1 answers all of its instructions in one batch: receipt, then accept
    mine = p.run(
        "agg_1", lambda ctx: instructions.list_instructions(ctx, Page(), InstructionFilter(recipient_id=p.ids["agg_1"]))
    )
    batch = [ResponseItem(i.id, r) for i in mine for r in (Response.RECEIPT, Response.ACCEPT)]  # type: ignore[attr-defined]
    acks = p.run("agg_1", lambda ctx: instructions.respond_many(ctx, batch))
    assert {a.instruction.status for a in acks[1::2]} == {InstructionStatus.ACCEPTED}  # type: ignore[index,union-attr]
    assert len(acks) == 2 * 4  # type: ignore[arg-type]  # vpp_1, a3, dr_a, a2


def test_total_dso_schedules_the_interface_and_splits_pro_rata(province: Province) -> None:
    p = province
    p.clock.advance(timedelta(days=2))
    enrol(p, "agg_1", "vpp_b", ["b2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_b"])
    iv = rt_interval(p)
    (b1,) = submit(p, "agg_2", item(K.DER, p.ders["b1"], iv, [(15, 60)]))
    (vpp,) = submit(p, "agg_1", item(K.AGGREGATION, p.aggregations["vpp_b"], iv, [(22, 60)]))
    # Total DSO: no direct participation; the DSO carries both to the market
    assert (b1.offer.route, vpp.offer.route) == (Route.DSO, Route.DSO)  # type: ignore[union-attr]
    p.run("ldc_b", lambda ctx: cycle.prepare_interval(ctx, RT, iv))
    past_gate(p, iv)

    with p.platform.context() as ctx:  # the scenario runner's way: every party's step as the platform
        outcome = cycle.run_interval(ctx, RT, iv, energy_requirement_kw=100.0, split_method=SplitMethod.PRO_RATA)
    # the DSO gets its virtual resource's dispatch and the interface's scheduled net export (it balances its area)
    issued = sorted((i.resource_kind.value, i.p_kw, i.recipient_id) for i in outcome.issued)
    assert issued == [("dso_virtual", 100.0, p.ids["ldc_b"]), ("interface", 100.0, p.ids["ldc_b"])]
    assert outcome.run.system_energy_price_cad_per_mwh == Decimal("22.00")
    # pro rata over what each may deliver (60 and 60): 50 each; the aggregation's share goes on to b2
    split = sorted((i.resource_kind.value, i.p_kw, i.parent_id is not None) for i in outcome.split)
    assert split == [("aggregation", 50.0, True), ("der", 50.0, True), ("der", 50.0, True)]
    assert outcome.shortfall_kw == 0.0
    # the TSO sees no DER behind the DSO (Table 6 row 2: none)
    seen = p.run("tso", lambda ctx: instructions.list_instructions(ctx, Page()))
    assert {i.resource_kind for i in seen} == {K.DSO_VIRTUAL, K.INTERFACE, K.AGGREGATION}  # type: ignore[attr-defined]
    # every recipient acknowledges what it received: the DSO its two, the aggregators theirs
    for who in ("ldc_b", "agg_1", "agg_2"):
        mine = p.run(
            who,
            lambda ctx, who=who: instructions.list_instructions(
                ctx, Page(), InstructionFilter(recipient_id=p.ids[who])
            ),
        )
        items = [ResponseItem(i.id, r) for i in mine for r in (Response.RECEIPT, Response.ACCEPT)]  # type: ignore[attr-defined]
        acks = p.run(who, lambda ctx, items=items: instructions.respond_many(ctx, items))
        assert all(a.code == "ok" for a in acks), who  # type: ignore[attr-defined]
    statuses = {i.status for i in p.run("regulator", lambda ctx: instructions.list_instructions(ctx, Page()))}  # type: ignore[attr-defined]
    assert statuses == {InstructionStatus.ACCEPTED}


def test_alt1_check_cuts_an_aggregation_per_interface_through_its_distribution_factors(province: Province) -> None:
    """span: a2 and a3 at tdi_a (60 kW each), m2 at tdi_m (300 kW): factors 2/7 and 5/7. a3's point goes dark after
    gate closure: at tdi_a its members may deliver 60 kW, so through its factors the aggregation may deliver
    min(60 / (2/7), 300 / (5/7)) = 210 kW; the TSO dispatched 400 kW of it and re-dispatches the 190 kW."""
    p = province
    p.run(
        "ldc_a",
        lambda ctx: tdis.update_limits(
            ctx, p.tdis["tdi_a"], import_limit_kw=None, export_limit_kw=None, direct_threshold_kw=100.0
        ),
    )
    p.clock.advance(timedelta(days=2))
    span = enrol(
        p,
        "agg_1",
        "span",
        ["a2", "a3", "m2"],
        {Service.WHOLESALE_ENERGY: 50.0},
        multi_tdi=True,
        approve_as=["ldc_a", "ldc_b"],
    )
    iv = rt_interval(p)
    (ack,) = submit(p, "agg_1", item(K.AGGREGATION, span, iv, [(20, 420)]))
    assert (ack.code, ack.offer.route) == ("offers.accepted", Route.TSO)  # type: ignore[union-attr]
    submit(p, "owner_2", item(K.DER, p.ders["t2"], iv, [(45, 200)]))
    past_gate(p, iv)
    p.run("ldc_a", lambda ctx: ders.suspend(ctx, p.ders["a3"]))  # a3's feeder is switched out

    run, issued = clear_and_issue(p, iv, 400.0)
    first = {r.resource_id: r.first_p_kw for r in run.resources}  # type: ignore[attr-defined]
    assert first[span] == pytest.approx(400.0)
    got = by_resource(p, issued)
    assert {k: i.p_kw for k, i in got.items()} == {"span": pytest.approx(210.0), "t2": pytest.approx(190.0)}  # type: ignore[attr-defined]
    cuts = {c.tdi_id: c for c in run.curtailments}  # type: ignore[attr-defined]
    assert set(cuts) == {p.tdis["tdi_a"], p.tdis["tdi_m"]}
    at_a, at_m = cuts[p.tdis["tdi_a"]], cuts[p.tdis["tdi_m"]]
    assert all(c.resource_kind is K.AGGREGATION and c.resource_id == span and c.der_id is None for c in cuts.values())
    assert (at_a.dispatched_kw, at_a.allowed_kw, at_a.curtailed_kw) == (
        pytest.approx(400 * 2 / 7),
        pytest.approx(60.0),
        pytest.approx(190 * 2 / 7),
    )
    assert (at_m.dispatched_kw, at_m.allowed_kw, at_m.curtailed_kw) == (
        pytest.approx(400 * 5 / 7),
        pytest.approx(150.0),
        pytest.approx(190 * 5 / 7),
    )
    assert at_a.checked_by == at_m.checked_by == "dso"
    assert "members at this interface may deliver 60.000 kW" in at_a.reason
    assert f"der/{p.ders['a3']} (status:suspended:der/{p.ders['a3']}" in at_a.reason
    assert "members at this interface may deliver 300.000 kW (no member cut)" in at_m.reason
    faces = {f.tdi_id: f for f in run.interfaces}  # type: ignore[attr-defined]
    assert faces[p.tdis["tdi_a"]].shortfall_kw == pytest.approx(190 * 2 / 7)
    assert faces[p.tdis["tdi_m"]].shortfall_kw == pytest.approx(190 * 5 / 7)
    assert faces[p.tdis["tdi_t"]].redispatched_kw == pytest.approx(190.0)
    # the stored run reads back the same, and the aggregation splits within its members' envelopes
    stored = p.run("regulator", lambda ctx: clearing.get_run(ctx, run.id))  # type: ignore[attr-defined]
    assert stored.curtailments == run.curtailments  # type: ignore[attr-defined]
    split = p.run("agg_1", lambda ctx: instructions.split_instruction(ctx, got["span"].id))  # type: ignore[attr-defined]
    assert p.ders["a3"] not in {c.der_id for c in split.children}  # type: ignore[attr-defined]


def _alt2_virtual_resource(p: Province) -> datetime:
    """a3 (5 CAD/MWh, 60 kW) and a1 (10, 40 kW) offer through ldc_a (alt 2), which builds its virtual resource;
    big_a offers 1,500 kW at 40 directly. The clock passes gate closure."""
    iv = rt_interval(p)
    submit(p, "owner_2", item(K.DER, p.ders["a3"], iv, [(5, 60)]), item(K.DER, p.ders["big_a"], iv, [(40, 1500)]))
    submit(p, "owner_1", item(K.DER, p.ders["a1"], iv, [(10, 40)]))
    (virtual,) = p.run("ldc_a", lambda ctx: cycle.prepare_interval(ctx, RT, iv))  # type: ignore[misc]
    assert virtual.total_kw() == Decimal("100.000")
    past_gate(p, iv)
    return iv


def test_alt2_an_outage_after_the_virtual_resource_was_built_is_redispatched_by_the_tso(province: Province) -> None:
    p = province
    iv = _alt2_virtual_resource(p)
    p.run("ldc_a", lambda ctx: ders.suspend(ctx, p.ders["a3"]))  # after gate closure, before clearing

    run, issued = clear_and_issue(p, iv, 100.0)
    # the DSO's check at clearing: a1's 40 kW is all its members may deliver now; big_a makes up the 60 kW
    got = by_resource(p, issued)
    assert {k: i.p_kw for k, i in got.items()} == {"tdi_a": pytest.approx(40.0), "big_a": pytest.approx(60.0)}  # type: ignore[attr-defined]
    (cut,) = run.curtailments  # type: ignore[attr-defined]
    assert (cut.resource_kind, cut.resource_id, cut.tdi_id) == (K.DSO_VIRTUAL, p.tdis["tdi_a"], p.tdis["tdi_a"])
    assert (cut.dispatched_kw, cut.allowed_kw, cut.curtailed_kw) == (100.0, 40.0, 60.0)
    assert f"members cut: der/{p.ders['a3']}" in cut.reason
    face = next(f for f in run.interfaces if f.tdi_id == p.tdis["tdi_a"])  # type: ignore[attr-defined]
    assert (face.shortfall_kw, face.redispatched_kw) == (pytest.approx(60.0), pytest.approx(60.0))
    assert run.system_energy_price_cad_per_mwh == Decimal("40.00")  # type: ignore[attr-defined]
    # the split finds nothing left over: nobody is told of a shortfall
    split = p.run("ldc_a", lambda ctx: instructions.split_instruction(ctx, got["tdi_a"].id))  # type: ignore[attr-defined]
    assert [(c.der_id, c.p_kw) for c in split.children] == [(p.ders["a1"], 40.0)]  # type: ignore[attr-defined]
    assert split.shortfall_kw == 0.0  # type: ignore[attr-defined]
    notes = p.run("tso", lambda ctx: instructions.list_notifications(ctx, Page()))
    assert NotificationKind.SPLIT_SHORTFALL not in {n.kind for n in notes}  # type: ignore[attr-defined]


def test_alt2_a_split_shortfall_after_clearing_is_notified_to_the_tso(province: Province) -> None:
    p = province
    iv = _alt2_virtual_resource(p)
    run, issued = clear_and_issue(p, iv, 100.0)
    assert run.curtailments == ()  # type: ignore[attr-defined]
    virtual = by_resource(p, issued)["tdi_a"]
    assert virtual.p_kw == 100.0  # type: ignore[attr-defined]
    p.run("ldc_a", lambda ctx: ders.suspend(ctx, p.ders["a3"]))  # after clearing, before the DSO splits

    split = p.run("ldc_a", lambda ctx: instructions.split_instruction(ctx, virtual.id))  # type: ignore[attr-defined]
    assert [(c.der_id, c.p_kw) for c in split.children] == [(p.ders["a1"], 40.0)]  # type: ignore[attr-defined]
    assert split.shortfall_kw == pytest.approx(60.0)  # type: ignore[attr-defined]
    (note,) = [
        n
        for n in p.run("tso", lambda ctx: instructions.list_notifications(ctx, Page()))  # type: ignore[attr-defined]
        if n.kind is NotificationKind.SPLIT_SHORTFALL
    ]
    assert (note.recipient_id, note.instruction_id, note.magnitude_kw, note.tdi_id) == (
        p.ids["tso"],
        virtual.id,  # type: ignore[attr-defined]
        pytest.approx(60.0),
        p.tdis["tdi_a"],
    )
    assert "60.000 kW is undeliverable" in note.message
    assert p.run("ldc_a", lambda ctx: instructions.list_notifications(ctx, Page())) == []  # the splitter itself
