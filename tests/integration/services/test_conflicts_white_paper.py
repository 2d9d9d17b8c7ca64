"""Conflict management through the platform, from the white paper's own examples (section 4.3, Table 1).

* Hidden coupling (storage): the IESO dispatches a 4-hour battery from 12 to 4 pm (EST) and the DSO from 4 to
  8 pm; the battery cannot meet both. Caught when the DSO dispatches, resolved per the interface's priorities,
  one resolution record, both parties notified.
* Tier bypassing: a TSO instruction beyond the DER's published envelope, and one to a de-energised point.
* Double counting: a DER offered directly and through an aggregation in one interval.

Runs on SQLite and PostgreSQL (``database_url``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conflict_helpers import add_battery, amendment_policy, publish_envelope, tso_dispatch

from gridbridge.domain.conflicts import ConflictKind, OutcomeAction, ResolutionRule
from gridbridge.domain.envelope_publication import DE_ENERGISED_BINDING
from gridbridge.domain.errors import ConflictError, NotFound, PermissionDenied, ValidationFailed
from gridbridge.domain.market import (
    Instruction,
    InstructionKind,
    InstructionStatus,
    NotificationKind,
    ResourceKind,
)
from gridbridge.domain.offers import Product
from gridbridge.domain.roles import Service
from gridbridge.services import conflicts, ders, instructions, offers
from gridbridge.services.conflict_ports import ConflictFilter
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from market_province import item, rt_interval
from registry_province import Province, build_province, enrol

NOON_EST = datetime(2026, 5, 5, 17, 0, tzinfo=UTC)
"""12 pm Eastern Standard Time, the day after the province's clock."""


@pytest.fixture
def province(database_url: str) -> Province:
    p = build_province(database_url)
    add_battery(p)
    return p


def _tso_operating_to_battery(p: Province, start: datetime, end: datetime) -> Instruction:
    """The IESO instructs 1,000 kW at tdi_a outside the market; ldc_a allocates it (to the battery)."""
    parent = p.run(
        "tso",
        lambda ctx: instructions.issue_operating_instruction(
            ctx, p.tdis["tdi_a"], p_kw=1000.0, interval_start=start, interval_end=end, reason="bulk system energy"
        ),
    )
    split = p.run("ldc_a", lambda ctx: instructions.split_instruction(ctx, parent.id))
    (child,) = [c for c in split.children if c.der_id == p.ders["bat"]]
    assert child.p_kw == pytest.approx(1000.0)
    return child


def _stored(p: Province, who: str = "regulator", **filters: object) -> list[conflicts.StoredConflict]:
    return p.run(who, lambda ctx: conflicts.list_conflicts(ctx, Page(limit=100), ConflictFilter(**filters)))  # type: ignore[arg-type]


def test_battery_dispatched_by_the_ieso_then_the_dso_is_hidden_coupling(province: Province) -> None:
    p = province
    ieso = _tso_operating_to_battery(p, NOON_EST, NOON_EST + timedelta(hours=4))
    dso = p.run(
        "ldc_a",
        lambda ctx: instructions.dispatch_distribution_service(
            ctx,
            p.ders["bat"],
            p_kw=1000.0,
            interval_start=NOON_EST + timedelta(hours=4),
            interval_end=NOON_EST + timedelta(hours=8),
            reason="distribution deferral, feeder F2",
        ),
    )
    # bulk-system reliability outranks distribution services (default priorities): the DSO's dispatch yields
    assert dso.kind is InstructionKind.SERVICE
    assert dso.status is InstructionStatus.CANCELLED
    assert dso.p_kw == 0.0
    assert "hidden_coupling_energy" in (dso.reason or "")

    (found,) = _stored(p)
    c, r = found.conflict, found.resolution
    assert c.kind is ConflictKind.HIDDEN_COUPLING_ENERGY
    assert set(c.instruction_ids) == {ieso.id, dso.id}
    assert c.figures["max_shortfall_kwh"] == pytest.approx(4000.0)
    assert c.figures["e_initial_kwh"] == pytest.approx(4000.0)  # even a full battery at noon cannot do both
    assert c.figures["undelivered_discharge_kwh"] == pytest.approx(4000.0)
    assert r.conflict_id == found.id
    assert r.rule is ResolutionRule.SERVICE_PRIORITY
    actions = {o.subject_id: o.action for o in r.outcomes}
    assert actions == {ieso.id: OutcomeAction.KEPT, dso.id: OutcomeAction.CANCELLED}
    assert all(o.reason for o in r.outcomes)

    # the stored instructions as resolved: the IESO's stands, the DSO's is cancelled
    stored = p.run("regulator", lambda ctx: ctx.uow.market.instructions.get(dso.id))
    assert stored is not None
    assert stored.status is InstructionStatus.CANCELLED
    assert stored.p_kw == 0.0

    # both parties (the IESO and the DSO) and the battery's owner are told the outcome and its reason
    for who in ("tso", "ldc_a", "owner_2"):
        notes = p.run(who, lambda ctx: instructions.list_notifications(ctx, Page(limit=100)))
        mine = [n for n in notes if n.kind is NotificationKind.CONFLICT_RESOLVED]
        assert mine, who
        assert all(found.id in n.message for n in mine), who
    # who sees it: the TSO, the DSO and the owner do; another DSO and another owner do not
    assert [s.id for s in _stored(p, "tso")] == [found.id]
    assert [s.id for s in _stored(p, "owner_2")] == [found.id]
    assert _stored(p, "ldc_b") == []
    assert _stored(p, "owner_1") == []
    with pytest.raises(NotFound):
        p.run("ldc_b", lambda ctx: conflicts.get_conflict(ctx, found.id))
    report = p.run("regulator", lambda ctx: conflicts.conflict_report(ctx, NOON_EST, NOON_EST + timedelta(days=1)))
    assert [x["id"] for x in report] == [found.id]
    assert report[0]["resolution"]["rule"] == "service_priority"


def test_dso_priorities_decide_which_dispatch_yields(province: Province) -> None:
    """With distribution services declared above bulk reliability, the IESO's allocation yields instead."""
    p = province
    p.run(
        "ldc_a",
        lambda ctx: conflicts.set_policy(
            ctx,
            p.tdis["tdi_a"],
            priorities=["distribution_safety", "distribution_services", "bulk_reliability", "wholesale_energy"],
        ),
    )
    ieso = _tso_operating_to_battery(p, NOON_EST, NOON_EST + timedelta(hours=4))
    dso = p.run(
        "ldc_a",
        lambda ctx: instructions.dispatch_distribution_service(
            ctx,
            p.ders["bat"],
            p_kw=1000.0,
            interval_start=NOON_EST + timedelta(hours=4),
            interval_end=NOON_EST + timedelta(hours=8),
            reason="distribution deferral",
        ),
    )
    assert dso.status is InstructionStatus.ISSUED
    assert dso.p_kw == 1000.0
    after = p.run("regulator", lambda ctx: ctx.uow.market.instructions.get(ieso.id))
    assert after is not None
    assert after.status is InstructionStatus.CANCELLED
    assert after.p_kw == 0.0
    (found,) = _stored(p)
    assert {o.subject_id: o.action for o in found.resolution.outcomes}[ieso.id] is OutcomeAction.CANCELLED


def test_policy_validation_changes_nothing(province: Province) -> None:
    p = province
    tdi = p.tdis["tdi_a"]
    with pytest.raises(ValidationFailed) as missing:
        p.run("ldc_a", lambda ctx: conflicts.set_policy(ctx, tdi, priorities=["distribution_safety"]))
    assert missing.value.code == "conflicts.priority_incomplete"
    with pytest.raises(ValidationFailed) as bad_rule:
        p.run(
            "ldc_a",
            lambda ctx: conflicts.set_policy(
                ctx,
                tdi,
                priorities=["distribution_safety", "bulk_reliability", "distribution_services", "wholesale_energy"],
                rules={"tier_bypassing_envelope": "service_priority"},
            ),
        )
    assert bad_rule.value.code == "conflicts.rule_not_allowed"
    with pytest.raises(PermissionDenied):
        p.run(
            "tso",
            lambda ctx: conflicts.set_policy(
                ctx,
                tdi,
                priorities=["distribution_safety", "bulk_reliability", "distribution_services", "wholesale_energy"],
            ),
        )
    policy, stored = p.run("tso", lambda ctx: conflicts.get_policy(ctx, tdi))
    assert not stored
    assert policy == conflicts.DEFAULT_POLICY


def test_distribution_service_dispatch_is_validated(province: Province) -> None:
    p = province
    bat = p.ders["bat"]
    start = NOON_EST

    def dispatch(who: str, der_id: str = bat, p_kw: float = 500.0, s: datetime = start, hours: float = 1.0) -> None:
        p.run(
            who,
            lambda ctx: instructions.dispatch_distribution_service(
                ctx, der_id, p_kw=p_kw, interval_start=s, interval_end=s + timedelta(hours=hours), reason="nwa"
            ),
        )

    with pytest.raises(NotFound):
        dispatch("ldc_b")  # not at ldc_b's interfaces
    with pytest.raises(PermissionDenied):
        dispatch("agg_1")
    with pytest.raises(ValidationFailed) as capability:
        dispatch("ldc_a", p_kw=1500.0)
    assert capability.value.code == "instructions.beyond_capability"
    with pytest.raises(ValidationFailed) as misaligned:
        dispatch("ldc_a", s=start + timedelta(minutes=2))
    assert misaligned.value.code == "instructions.window_misaligned"
    with pytest.raises(ValidationFailed) as past:
        dispatch("ldc_a", s=p.clock.now() - timedelta(hours=1))
    assert past.value.code == "instructions.window_in_past"
    with pytest.raises(ValidationFailed) as period:
        dispatch("ldc_a", hours=0)
    assert period.value.code == "instructions.bad_period"

    def suspend(ctx: Context) -> None:
        ders.suspend(ctx, bat)

    p.run("ldc_a", suspend)
    with pytest.raises(ConflictError) as suspended:
        dispatch("ldc_a")
    assert suspended.value.code == "instructions.der_not_operating"
    assert _stored(p) == []


def test_tso_instruction_beyond_the_envelope_or_to_a_dead_point_is_tier_bypassing(province: Province) -> None:
    p = province
    hour = timedelta(hours=1)
    # a1 (60 kW PV): its point's envelope allows 30 kW from 12 to 1 pm; the TSO dispatches 50 kW
    publish_envelope(p, "a1", NOON_EST, NOON_EST + hour, 30.0, "thermal:line_3")
    beyond = tso_dispatch(p, "a1", NOON_EST, NOON_EST + hour, 50.0)
    assert beyond.p_kw == pytest.approx(30.0)  # most restrictive limit wins
    # a2's point is de-energised from 1 to 2 pm
    publish_envelope(p, "a2", NOON_EST + hour, NOON_EST + 2 * hour, 0.0, DE_ENERGISED_BINDING)
    dead = tso_dispatch(p, "a2", NOON_EST + hour, NOON_EST + 2 * hour, 40.0)
    assert dead.status is InstructionStatus.CANCELLED
    assert dead.p_kw == 0.0

    kinds = {s.kind: s for s in _stored(p)}
    assert set(kinds) == {ConflictKind.TIER_BYPASSING_ENVELOPE, ConflictKind.TIER_BYPASSING_DEENERGISED}
    env = kinds[ConflictKind.TIER_BYPASSING_ENVELOPE]
    assert env.resolution.rule is ResolutionRule.MOST_RESTRICTIVE_LIMIT
    assert env.conflict.series["excess_kw"] == (pytest.approx(20.0),)
    assert kinds[ConflictKind.TIER_BYPASSING_DEENERGISED].resolution.outcomes[0].action is OutcomeAction.CANCELLED
    assert [s.id for s in _stored(p, "tso")] == [s.id for s in _stored(p)]


def test_der_offered_directly_and_through_an_aggregation_is_double_counting(province: Province) -> None:
    p = province
    # a2 (owner_1's 60 kW PV, represented by agg_1) joins agg_1's operating reserve aggregation; agg_1 also
    # offers it on its own for energy: the same 60 kW are sold twice in one interval
    enrol(p, "agg_1", "reserve", ["a2", "a3"], {Service.OPERATING_RESERVE: 50.0}, approve_as=["ldc_a"])
    p.clock.advance(timedelta(days=2))
    interval = rt_interval(p)
    p.run("agg_1", lambda ctx: offers.submit_offers(ctx, [item(ResourceKind.DER, p.ders["a2"], interval, [(30, 60)])]))
    assert _stored(p) == []
    acks = p.run(
        "agg_1",
        lambda ctx: offers.submit_offers(
            ctx,
            [
                item(
                    ResourceKind.AGGREGATION,
                    p.aggregations["reserve"],
                    interval,
                    [(10, 120)],
                    product=Product.OPERATING_RESERVE,
                )
            ],
        ),
    )
    assert [a.code for a in acks] == ["offers.accepted"]
    (found,) = _stored(p)
    assert found.kind is ConflictKind.DOUBLE_COUNTING
    assert found.conflict.der_ids == (p.ders["a2"],)
    assert found.stage == conflicts.STAGE_OFFERS
    assert sum(x.kw for x in found.conflict.pairs) == pytest.approx(60.0)
    firm = sorted(o.schedule[0].p_kw for o in found.resolution.outcomes)
    assert firm == [pytest.approx(0.0), pytest.approx(60.0)]  # settlement pays the 60 kW once
    for who in ("agg_1", "ldc_a"):
        notes = p.run(who, lambda ctx: instructions.list_notifications(ctx, Page(limit=100)))
        assert any(n.kind is NotificationKind.CONFLICT_RESOLVED for n in notes), who


def test_amendment_request_before_and_after_its_deadline(province: Province) -> None:
    """Under ``amendment_request`` the DSO (the lower-priority issuer) is asked to amend by a deadline; its
    provisional setpoint stands meanwhile; an answer after the deadline is refused and changes nothing."""
    p = province
    amendment_policy(p, ["distribution_safety", "bulk_reliability", "distribution_services", "wholesale_energy"])
    _tso_operating_to_battery(p, NOON_EST, NOON_EST + timedelta(hours=4))

    def dispatch(hours: int) -> Instruction:
        return p.run(
            "ldc_a",
            lambda ctx: instructions.dispatch_distribution_service(
                ctx,
                p.ders["bat"],
                p_kw=1000.0,
                interval_start=NOON_EST + timedelta(hours=4),
                interval_end=NOON_EST + timedelta(hours=4 + hours),
                reason="distribution deferral",
            ),
        )

    dso = dispatch(4)
    assert dso.status is InstructionStatus.CANCELLED  # the provisional setpoint: nothing left to discharge
    (found,) = _stored(p, pending_amendment=True)
    assert found.resolution.rule is ResolutionRule.AMENDMENT_REQUEST
    (request,) = p.run("ldc_a", lambda ctx: conflicts.get_conflict(ctx, found.id))[1]
    assert request.addressee_id == p.ids["ldc_a"]
    assert request.deadline == p.clock.now() + timedelta(minutes=30)

    with pytest.raises(PermissionDenied):
        p.run("owner_2", lambda ctx: conflicts.answer_amendment(ctx, request.id, 0.0))
    with pytest.raises(NotFound):
        p.run("ldc_b", lambda ctx: conflicts.answer_amendment(ctx, request.id, 0.0))
    # answered in time: the DSO amends to a feasible setpoint, which is checked again
    answered, after = p.run("ldc_a", lambda ctx: conflicts.answer_amendment(ctx, request.id, 0.0))
    assert answered.status.value == "amended"
    assert after is not None
    assert after.p_kw == 0.0
    with pytest.raises(ConflictError) as closed:
        p.run("ldc_a", lambda ctx: conflicts.answer_amendment(ctx, request.id, 0.0))
    assert closed.value.code == "conflicts.amendment_closed"

    # a second dispatch, answered after its deadline: refused, the request stays pending
    second = dispatch(1)
    (pending,) = [s for s in _stored(p, pending_amendment=True) if second.id in s.conflict.instruction_ids]
    (request2,) = p.run("ldc_a", lambda ctx: conflicts.get_conflict(ctx, pending.id))[1]
    p.clock.advance(timedelta(minutes=31))
    with pytest.raises(ConflictError) as late:
        p.run("ldc_a", lambda ctx: conflicts.answer_amendment(ctx, request2.id, 0.0))
    assert late.value.code == "conflicts.amendment_after_deadline"
    (still,) = p.run("ldc_a", lambda ctx: conflicts.get_conflict(ctx, pending.id))[1]
    assert still.status.value == "pending"
    # every stored conflict has exactly one resolution
    assert all(s.resolution.conflict_id == s.id for s in _stored(p))


def test_an_outage_after_issue_is_caught_before_dispatch(province: Province) -> None:
    """An instruction issued before its connection point was de-energised is caught by the check before the
    instructions go out (``check_before_dispatch``, as ``cycle.run_interval`` runs it)."""
    p = province
    hour = timedelta(hours=1)
    issued = tso_dispatch(p, "a1", NOON_EST, NOON_EST + hour, 50.0)
    assert issued.status is InstructionStatus.ISSUED
    assert _stored(p) == []
    publish_envelope(p, "a1", NOON_EST, NOON_EST + hour, 0.0, DE_ENERGISED_BINDING)

    def recheck(ctx: Context) -> list[conflicts.StoredConflict]:
        stored = ctx.uow.market.instructions.get(issued.id)
        assert stored is not None
        return conflicts.check_before_dispatch(ctx, [stored])

    (found,) = p.run("tso", recheck)
    assert found.kind is ConflictKind.TIER_BYPASSING_DEENERGISED
    assert found.stage == conflicts.STAGE_DISPATCH
    after = p.run("regulator", lambda ctx: ctx.uow.market.instructions.get(issued.id))
    assert after is not None
    assert after.status is InstructionStatus.CANCELLED
    assert "tier_bypassing_deenergised" in (after.reason or "")
    # checking again finds nothing new: the cancelled instruction no longer counts
    assert p.run("tso", recheck) == []
