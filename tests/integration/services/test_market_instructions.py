"""Clearing and instructions through the real services: the hand-checked clearing case of
docs/coordination-engines.md, escalation of unanswered instructions, TSO operating instructions allocated by
the DSO, reverse-flow notifications, and who may answer or split what."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from gridbridge.cli.config import Settings
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.der import Technology
from gridbridge.domain.errors import ConflictError, NotFound, PermissionDenied, ValidationFailed
from gridbridge.domain.market import (
    Instruction,
    InstructionKind,
    InstructionProduct,
    InstructionStatus,
    InterfaceForecast,
    NotificationKind,
    ResourceKind,
    Response,
    SplitMethod,
)
from gridbridge.domain.roles import Service
from gridbridge.services import clearing, instructions, offers
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from market_province import DA, RT, _add_der, _add_tdi, build_market_province, item, rt_interval
from registry_province import Province, build_province, enrol

K = ResourceKind


@pytest.fixture
def province(sqlite_url: str) -> Province:
    return build_market_province(sqlite_url)


def test_hand_checked_clearing_with_a_multi_interface_aggregation(sqlite_url: str) -> None:
    """Interfaces A and B, A may take at most 6 MW of injection. r0 at A offers 5 MW at 20 and 5 MW at 40, r1 at
    B 10 MW at 30, r2 (an aggregation, half at A, half at B) 10 MW at 35, r3 at B 10 MW at 60; the TSO needs
    18 MW. The least cost is r0 4 MW, r1 10 MW, r2 4 MW (520 CAD/h); A's price 20, B's 50, r2 settles at 35."""
    p = build_province(sqlite_url, with_ders=False)
    _add_tdi(p, "A", "ldc_a", ModelName.TOTAL_TSO, 5000, 6000)
    _add_tdi(p, "B", "ldc_a", ModelName.TOTAL_TSO, 50000, 50000)
    _add_der(p, "r0", "owner_1", None, "A", 0, 10000.0, ldc="ldc_a")
    _add_der(p, "r1", "owner_1", None, "B", 0, 10000.0, ldc="ldc_a")
    _add_der(p, "r3", "owner_2", None, "B", 1, 10000.0, ldc="ldc_a")
    _add_der(p, "m_a", "agg_1", "owner_2", "A", 1, 5000.0, ldc="ldc_a")
    _add_der(p, "m_b", "agg_1", "owner_2", "B", 2, 5000.0, ldc="ldc_a")
    p.clock.advance(timedelta(days=2))
    r2 = enrol(p, "agg_1", "r2", ["m_a", "m_b"], {Service.WHOLESALE_ENERGY: 50.0}, multi_tdi=True, approve_as=["ldc_a"])
    iv = rt_interval(p)
    p.run(
        "owner_1",
        lambda ctx: offers.submit_offers(
            ctx,
            [item(K.DER, p.ders["r0"], iv, [(20, 5000), (40, 5000)]), item(K.DER, p.ders["r1"], iv, [(30, 10000)])],
        ),
    )
    p.run("owner_2", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["r3"], iv, [(60, 10000)])]))
    p.run("agg_1", lambda ctx: offers.submit_offers(ctx, [item(K.AGGREGATION, r2, iv, [(35, 10000)])]))
    p.clock.set(iv - timedelta(minutes=5))

    run = p.run("tso", lambda ctx: clearing.clear_interval(ctx, RT, iv, energy_requirement_kw=18000))
    names = {v: k for k, v in {**p.ders, **p.aggregations}.items()}
    dispatch = {names[r.resource_id]: r.p_kw for r in run.resources}  # type: ignore[attr-defined]
    assert dispatch == {"r0": 4000.0, "r1": 10000.0, "r2": 4000.0, "r3": 0.0}
    prices = {f.tdi_id: f.energy_price_cad_per_mwh for f in run.interfaces}  # type: ignore[attr-defined]
    assert prices[p.tdis["A"]] == Decimal("20.00")
    assert prices[p.tdis["B"]] == Decimal("50.00")
    assert run.system_energy_price_cad_per_mwh == Decimal("50.00")  # type: ignore[attr-defined]
    assert {names[r.resource_id]: r.price_cad_per_mwh for r in run.resources}["r2"] == Decimal("35.00")  # type: ignore[attr-defined]
    assert run.cost_cad_per_h == Decimal("520.00")  # type: ignore[attr-defined]
    assert run.method == "lp"  # type: ignore[attr-defined]
    # A is at its injection limit (4 MW of r0 plus half of r2's 4 MW)
    assert {f.tdi_id: f.injection_kw for f in run.interfaces}[p.tdis["A"]] == pytest.approx(6000.0)  # type: ignore[attr-defined]
    assert len(run.inputs_digest) == 64  # type: ignore[attr-defined]
    stored = p.run("regulator", lambda ctx: clearing.get_run(ctx, run.id))  # type: ignore[attr-defined]
    assert stored == run
    # the aggregation's instruction splits per interface by its distribution factors: 2 MW at A, 2 MW at B
    issued = p.run("tso", lambda ctx: instructions.issue_instructions(ctx, run.id))  # type: ignore[attr-defined]
    agg = next(i for i in issued if i.resource_kind is K.AGGREGATION)  # type: ignore[attr-defined]
    split = p.run("agg_1", lambda ctx: instructions.split_instruction(ctx, agg.id))
    assert sorted((names[c.der_id], c.p_kw) for c in split.children) == [("m_a", 2000.0), ("m_b", 2000.0)]  # type: ignore[attr-defined]


def _dispatched(p: Province) -> tuple[list, object]:
    iv = rt_interval(p)
    p.run("owner_2", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["t2"], iv, [(25, 200)])]))
    p.run("owner_1", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["t1"], iv, [(20, 300)])]))
    p.clock.set(iv - timedelta(minutes=5))
    run = p.run(
        "tso",
        lambda ctx: clearing.clear_interval(
            ctx, RT, iv, energy_requirement_kw=400, forecasts={p.tdis["tdi_t"]: InterfaceForecast(load_kw=1000.0)}
        ),
    )
    issued = p.run("tso", lambda ctx: instructions.issue_instructions(ctx, run.id))  # type: ignore[attr-defined]
    return [i for i in issued if i.resource_kind is K.DER], run  # type: ignore[union-attr,attr-defined]


def test_unanswered_instructions_escalate_to_the_issuer(province: Province) -> None:
    p = province
    issued, run = _dispatched(p)
    t1 = next(i for i in issued if i.der_id == p.ders["t1"])
    t2 = next(i for i in issued if i.der_id == p.ders["t2"])
    assert t1.deadline_at == p.clock.now() + timedelta(minutes=2)  # the real-time response window
    p.run("owner_1", lambda ctx: instructions.respond_to_instruction(ctx, t1.id, Response.RECEIPT))
    p.run("owner_2", lambda ctx: instructions.respond_to_instruction(ctx, t2.id, Response.RECEIPT))
    p.run("owner_2", lambda ctx: instructions.respond_to_instruction(ctx, t2.id, Response.ACCEPT))
    with pytest.raises(ConflictError) as twice:
        p.run("tso", lambda ctx: instructions.issue_instructions(ctx, run.id))  # type: ignore[attr-defined]
    assert twice.value.code == "clearing.already_dispatched"

    p.clock.advance(timedelta(minutes=2, seconds=1))
    with pytest.raises(ConflictError) as late:
        p.run("owner_1", lambda ctx: instructions.respond_to_instruction(ctx, t1.id, Response.ACCEPT))
    assert late.value.code == "instructions.deadline_passed"
    # every issuer escalates its own: a DER owner issues nothing and may not; agg_1 issued none of these
    with pytest.raises(PermissionDenied):
        p.run("owner_1", lambda ctx: instructions.escalate_overdue(ctx))
    assert p.run("agg_1", lambda ctx: instructions.escalate_overdue(ctx)) == []
    escalated = p.run("tso", lambda ctx: instructions.escalate_overdue(ctx))
    # t1 (received, never accepted) and tdi_b's net schedule (ldc_b never answered); not t2 (accepted)
    assert {(i.resource_id, i.status) for i in escalated} == {  # type: ignore[attr-defined]
        (p.ders["t1"], InstructionStatus.ESCALATED),
        (p.tdis["tdi_b"], InstructionStatus.ESCALATED),
    }
    assert p.run("tso", lambda ctx: instructions.escalate_overdue(ctx)) == []
    notes = p.run("tso", lambda ctx: instructions.list_notifications(ctx, Page()))
    overdue = [n for n in notes if n.kind is NotificationKind.INSTRUCTION_OVERDUE]  # type: ignore[attr-defined]
    assert {n.instruction_id for n in overdue} == {i.id for i in escalated}  # type: ignore[attr-defined]
    assert {n.recipient_id for n in overdue} == {p.ids["tso"]}
    assert p.run("owner_1", lambda ctx: instructions.list_notifications(ctx, Page())) == []
    with pytest.raises(ConflictError) as after:
        p.run("owner_1", lambda ctx: instructions.respond_to_instruction(ctx, t1.id, Response.ACCEPT))
    assert after.value.code == "instructions.illegal_transition"
    assert after.value.details["current_state"] == "escalated"


def _virtual_resource_at_tdi_b(p: Province) -> datetime:
    """b1 offers through ldc_b (Total DSO), which builds its virtual resource; the clock passes gate closure."""
    iv = rt_interval(p)
    p.run("agg_2", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["b1"], iv, [(15, 60)])]))
    p.run("ldc_b", lambda ctx: offers.aggregate_dso_offers(ctx, p.tdis["tdi_b"], RT, iv))
    p.clock.set(iv - timedelta(minutes=5))
    return iv


def test_a_dso_escalates_its_own_overdue_split_children_and_the_tso_only_its_own(province: Province) -> None:
    p = province
    iv = _virtual_resource_at_tdi_b(p)

    def clear_and_issue(ctx: Context) -> list[Instruction]:
        run = clearing.clear_interval(ctx, RT, iv, energy_requirement_kw=50)
        return instructions.issue_instructions(ctx, run.id)

    issued = p.run("tso", clear_and_issue)
    virtual = next(i for i in issued if i.resource_kind is K.DSO_VIRTUAL)  # type: ignore[attr-defined]
    (child,) = p.run("ldc_b", lambda ctx: instructions.split_instruction(ctx, virtual.id)).children  # type: ignore[attr-defined]
    assert child.issuer_id == p.ids["ldc_b"]
    p.clock.advance(timedelta(minutes=3))  # every one of them is past its 2-minute deadline

    tso_escalated = p.run("tso", lambda ctx: instructions.escalate_overdue(ctx))
    assert {i.id for i in tso_escalated} == {i.id for i in issued}  # type: ignore[attr-defined,union-attr]
    assert p.run("agg_2", lambda ctx: instructions.escalate_overdue(ctx)) == []  # the recipient is no issuer
    (mine,) = p.run("ldc_b", lambda ctx: instructions.escalate_overdue(ctx))  # type: ignore[misc]
    assert (mine.id, mine.status) == (child.id, InstructionStatus.ESCALATED)
    (note,) = p.run("ldc_b", lambda ctx: instructions.list_notifications(ctx, Page()))  # type: ignore[misc]
    assert (note.kind, note.instruction_id) == (NotificationKind.INSTRUCTION_OVERDUE, child.id)
    # the platform's job finds nothing left; before, it would have taken every issuer's
    with p.platform.context() as ctx:
        assert instructions.escalate_overdue(ctx) == []


def test_the_platform_escalates_every_issuers_overdue_instructions(province: Province) -> None:
    p = province
    iv = _virtual_resource_at_tdi_b(p)
    with p.platform.context() as ctx:
        run = clearing.clear_interval(ctx, RT, iv, energy_requirement_kw=50)
        issued = instructions.issue_instructions(ctx, run.id)
        virtual = next(i for i in issued if i.resource_kind is K.DSO_VIRTUAL)
        children = instructions.split_instruction(ctx, virtual.id).children
    p.clock.advance(timedelta(minutes=3))
    with p.platform.context() as ctx:
        escalated = instructions.escalate_overdue(ctx)
    assert {i.id for i in escalated} == {i.id for i in [*issued, *children]}
    assert {i.issuer_id for i in escalated} == {p.ids["tso"], p.ids["ldc_b"]}


def test_only_the_recipient_answers_in_order_with_a_reason_to_reject(province: Province) -> None:
    p = province
    issued, _ = _dispatched(p)
    t1 = next(i for i in issued if i.der_id == p.ders["t1"])
    with pytest.raises(NotFound):
        p.run("owner_2", lambda ctx: instructions.respond_to_instruction(ctx, t1.id, Response.RECEIPT))
    with pytest.raises(PermissionDenied):
        p.run("ldc_a", lambda ctx: instructions.respond_to_instruction(ctx, t1.id, Response.RECEIPT))
    with pytest.raises(ConflictError) as order:
        p.run("owner_1", lambda ctx: instructions.respond_to_instruction(ctx, t1.id, Response.ACCEPT))
    assert order.value.details["allowed_responses"] == ["receipt"]
    p.run("owner_1", lambda ctx: instructions.respond_to_instruction(ctx, t1.id, Response.RECEIPT))
    with pytest.raises(ValidationFailed) as bare:
        p.run("owner_1", lambda ctx: instructions.respond_to_instruction(ctx, t1.id, Response.REJECT, "  "))
    assert bare.value.code == "instructions.reason_required"
    with pytest.raises(PermissionDenied):
        p.run("owner_1", lambda ctx: instructions.split_instruction(ctx, t1.id))
    # the Total DSO interface's net schedule is ldc_b's own balancing target: nothing to split
    (schedule,) = p.run("ldc_b", lambda ctx: instructions.list_instructions(ctx, Page()))  # type: ignore[misc]
    assert schedule.resource_kind is K.INTERFACE
    assert schedule.product is InstructionProduct.ENERGY
    with pytest.raises(ConflictError) as direct:
        p.run("ldc_b", lambda ctx: instructions.split_instruction(ctx, schedule.id))
    assert direct.value.code == "instructions.not_splittable"


def test_operating_instruction_is_allocated_by_the_dso(province: Province) -> None:
    p = province
    # a second load under tdi_a: ldc_a's own 100 kW EV charging depot
    _add_der(p, "ev_a", "ldc_a", None, "tdi_a", 5, 0.0, Technology.EV_CHARGING, import_kw=100.0, ldc="ldc_a")
    start = p.clock.now() + timedelta(minutes=15)
    with pytest.raises(PermissionDenied):
        p.run(
            "ldc_a",
            lambda ctx: instructions.issue_operating_instruction(
                ctx,
                p.tdis["tdi_a"],
                p_kw=150,
                interval_start=start,
                interval_end=start + timedelta(hours=1),
                reason="x",
            ),
        )
    with pytest.raises(ValidationFailed) as bad:
        p.run(
            "tso",
            lambda ctx: instructions.issue_operating_instruction(
                ctx, p.tdis["tdi_a"], p_kw=150, interval_start=start, interval_end=start, reason="contingency"
            ),
        )
    assert bad.value.code == "instructions.bad_period"

    def issue(p_kw: float, hour: int = 0) -> str:
        return p.run(
            "tso",
            lambda ctx: (
                instructions.issue_operating_instruction(  # type: ignore[attr-defined,return-value]
                    ctx,
                    p.tdis["tdi_a"],
                    p_kw=p_kw,
                    interval_start=start + timedelta(hours=hour),
                    interval_end=start + timedelta(hours=hour + 1),
                    reason="bulk-system contingency: shed load under tdi_a",
                ).id
            ),
        )

    first = issue(150.0)
    parent = p.run("ldc_a", lambda ctx: instructions.get_instruction(ctx, first))
    assert (parent.kind, parent.product, parent.recipient_id) == (  # type: ignore[attr-defined]
        InstructionKind.OPERATING,
        InstructionProduct.LOAD_CURTAILMENT,
        p.ids["ldc_a"],
    )
    with pytest.raises(NotFound):  # not addressed to agg_1, nor in its territory
        p.run("agg_1", lambda ctx: instructions.split_instruction(ctx, first))
    pro = p.run("ldc_a", lambda ctx: instructions.split_instruction(ctx, first, SplitMethod.PRO_RATA))
    names = {v: k for k, v in p.ders.items()}
    # 150 kW over dr_a (200 kW of load) and ev_a (100 kW): in proportion, 100 and 50
    assert sorted((names[c.der_id], c.p_kw, c.recipient_id) for c in pro.children) == [  # type: ignore[attr-defined]
        ("dr_a", 100.0, p.ids["agg_1"]),
        ("ev_a", 50.0, p.ids["ldc_a"]),
    ]
    assert all(c.parent_id == first and c.reason == parent.reason for c in pro.children)  # type: ignore[attr-defined]
    with pytest.raises(ConflictError) as again:
        p.run("ldc_a", lambda ctx: instructions.split_instruction(ctx, first))
    assert again.value.code == "instructions.already_split"

    # merit order, over the next hour (two operating instructions over one hour add up: 500 kW of the 300 kW of
    # load would be a conflict): dr_a's real-time offer prices its load reduction (80); ev_a has none (the cap)
    # and comes last
    rt = (start + timedelta(hours=1)).replace(second=0, microsecond=0)
    rt = rt - timedelta(minutes=rt.minute % 5)
    p.run("agg_1", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["dr_a"], rt, [(80, 200)])]))
    second = issue(350.0, hour=1)
    merit = p.run("ldc_a", lambda ctx: instructions.split_instruction(ctx, second, SplitMethod.MERIT_ORDER))
    assert sorted((names[c.der_id], c.p_kw) for c in merit.children) == [("dr_a", 200.0), ("ev_a", 100.0)]  # type: ignore[attr-defined]
    assert merit.shortfall_kw == pytest.approx(50.0)  # type: ignore[attr-defined]
    assert merit.parent.shortfall_kw == pytest.approx(50.0)  # type: ignore[attr-defined]
    # the TSO sees its operating instructions; under alt 2 not the allocation to DERs behind the DSO
    seen = p.run("tso", lambda ctx: instructions.list_instructions(ctx, Page()))
    assert sorted(i.id for i in seen) == sorted([first, second])  # type: ignore[attr-defined]


def test_reverse_flow_is_notified_to_the_tso_only_where_flow_reverses(province: Province) -> None:
    p = province
    _, run = _dispatched(p)
    faces = {f.tdi_id: f for f in run.interfaces}  # type: ignore[attr-defined]
    # tdi_t: 1,000 kW of load and 400 kW dispatched: still importing 600 kW
    assert faces[p.tdis["tdi_t"]].net_flow_kw == pytest.approx(600.0)
    assert faces[p.tdis["tdi_t"]].net_flow_known
    assert not faces[p.tdis["tdi_t"]].reverse_flow
    # the others carry no load forecast: their flow is unknown, never claimed as reverse flow
    assert all(f.load_kw is None and not f.net_flow_known for k, f in faces.items() if k != p.tdis["tdi_t"])
    assert p.run("tso", lambda ctx: instructions.list_notifications(ctx, Page())) == []

    # t1 is scheduled 20 kW day-ahead for hour H; in a real-time interval of H, t2 is dispatched 200 kW
    hour = (p.clock.now() + timedelta(hours=14)).replace(minute=0, second=0, microsecond=0)
    iv = hour + timedelta(minutes=10)
    p.run("owner_1", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["t1"], hour, [(10, 20)], market=DA)]))
    p.run("owner_2", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["t2"], iv, [(25, 200)])]))
    p.clock.set(hour - timedelta(hours=12))
    p.run(
        "tso",
        lambda ctx: instructions.issue_instructions(
            ctx, clearing.clear_interval(ctx, DA, hour, energy_requirement_kw=20).id
        ),
    )
    p.clock.set(iv - timedelta(minutes=5))
    forecasts = {p.tdis["tdi_t"]: InterfaceForecast(load_kw=150.0), p.tdis["tdi_m"]: InterfaceForecast(load_kw=0.0)}
    run2 = p.run(
        "tso", lambda ctx: clearing.clear_interval(ctx, RT, iv, energy_requirement_kw=200, forecasts=forecasts)
    )
    faces2 = {f.tdi_id: f for f in run2.interfaces}  # type: ignore[attr-defined]
    face = faces2[p.tdis["tdi_t"]]
    # the DER-schedule component is t1's day-ahead schedule in force: 150 - 20 - 200
    assert (face.der_schedule_kw, face.net_flow_kw) == (pytest.approx(20.0), pytest.approx(150.0 - 20.0 - 200.0))
    assert faces2[p.tdis["tdi_m"]].net_flow_kw == 0.0  # a known load of 0 and nothing there: no reverse flow
    (note,) = p.run("tso", lambda ctx: instructions.list_notifications(ctx, Page()))  # type: ignore[misc]
    assert (note.kind, note.tdi_id, note.magnitude_kw, note.run_id) == (
        NotificationKind.REVERSE_FLOW,
        p.tdis["tdi_t"],
        pytest.approx(70.0),
        run2.id,  # type: ignore[attr-defined]
    )
    for who in ("ldc_a", "agg_1", "owner_2"):
        assert p.run(who, lambda ctx: instructions.list_notifications(ctx, Page())) == []
    assert len(p.run("regulator", lambda ctx: instructions.list_notifications(ctx, Page()))) == 1  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        p.run(
            "tso",
            lambda ctx: clearing.clear_interval(
                ctx, RT, iv + timedelta(minutes=5), energy_requirement_kw=1, forecasts={"nope": InterfaceForecast(0.0)}
            ),
        )


def test_a_resource_cleared_again_or_a_rejected_schedule_is_not_counted_as_scheduled(province: Province) -> None:
    """t1 and t2 are scheduled day-ahead for hour H (20 and 30 kW). In one real-time interval of H t1 offers
    again (its dispatch supersedes its schedule): only t2's 30 kW is scheduled. Once owner_2 rejects t2's
    schedule, it is not in force either. A DSO's distribution-service dispatch over the interval counts."""
    p = province
    # a day to answer a schedule, so that owner_2 can still reject it within the hour
    p.platform.settings = Settings(database_url=p.platform.settings.database_url, schedule_response_min=1440)
    hour = (p.clock.now() + timedelta(hours=14)).replace(minute=0, second=0, microsecond=0)
    rt1, rt2 = hour + timedelta(minutes=10), hour + timedelta(minutes=15)
    p.run("owner_1", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["t1"], hour, [(10, 20)], market=DA)]))
    p.run("owner_2", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["t2"], hour, [(12, 30)], market=DA)]))
    p.run("owner_1", lambda ctx: offers.submit_offers(ctx, [item(K.DER, p.ders["t1"], rt1, [(20, 100)])]))
    p.clock.set(hour - timedelta(hours=12))

    def day_ahead(ctx: Context) -> list[Instruction]:
        return instructions.issue_instructions(ctx, clearing.clear_interval(ctx, DA, hour, energy_requirement_kw=50).id)

    schedules = {i.der_id: i for i in p.run("tso", day_ahead) if i.der_id}  # type: ignore[attr-defined]
    assert {k: i.p_kw for k, i in schedules.items()} == {p.ders["t1"]: 20.0, p.ders["t2"]: 30.0}
    tdi_t = p.tdis["tdi_t"]
    forecasts = {tdi_t: InterfaceForecast(load_kw=500.0)}
    p.clock.set(rt1 - timedelta(minutes=5))
    run1 = p.run(
        "tso", lambda ctx: clearing.clear_interval(ctx, RT, rt1, energy_requirement_kw=100, forecasts=forecasts)
    )
    assert {f.tdi_id: f.der_schedule_kw for f in run1.interfaces}[tdi_t] == pytest.approx(30.0)  # type: ignore[attr-defined]

    t2 = schedules[p.ders["t2"]]
    p.run("owner_2", lambda ctx: instructions.respond_to_instruction(ctx, t2.id, Response.RECEIPT))
    p.run("owner_2", lambda ctx: instructions.respond_to_instruction(ctx, t2.id, Response.REJECT, "maintenance"))
    p.run(
        "ldc_a",
        lambda ctx: instructions.dispatch_distribution_service(
            ctx, p.ders["t3"], p_kw=-40.0, interval_start=rt2, interval_end=rt2 + timedelta(minutes=5), reason="x"
        ),
    )
    p.clock.set(rt2 - timedelta(minutes=5))
    run2 = p.run("tso", lambda ctx: clearing.clear_interval(ctx, RT, rt2, energy_requirement_kw=0, forecasts=forecasts))
    # t1's 20 kW schedule (it does not offer in this interval), no t2, t3 charging 40 kW for the LDC
    assert {f.tdi_id: f.der_schedule_kw for f in run2.interfaces}[tdi_t] == pytest.approx(20.0 - 40.0)  # type: ignore[attr-defined]
