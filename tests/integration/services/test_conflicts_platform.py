"""Conflict detection on the platform beyond the white paper's examples, through the real services and store:

* service categories from the root issuer and kind: a DSO curtailment is distribution safety and keeps its sign
  (a reduction reduces), a TSO dispatch on top of it is not cut;
* connection-point coupling: two DERs at one point whose instructions together break the point's envelope;
* hidden coupling on capability: TSO and DSO on one DER; a DSO and its aggregator's split of a market instruction;
* re-checks when the network changes (an outage recorded, an envelope run published) and before dispatch in the
  cycle (a state of charge reported since the instructions were issued);
* storage: declared and default round-trip efficiency, reported state of charge;
* amendment requests that expire unanswered.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from conflict_helpers import (
    add_battery,
    add_der,
    amendment_policy,
    dso_dispatch,
    point_of,
    publish_envelope,
    tso_dispatch,
)

from curtailment_province import build_curtailment_province, publish
from gridbridge.domain.conflicts import AmendmentStatus, ConflictKind, OutcomeAction, ResolutionRule
from gridbridge.domain.der import Technology
from gridbridge.domain.errors import ConflictError, NotFound, PermissionDenied, ValidationFailed
from gridbridge.domain.market import (
    Instruction,
    InstructionStatus,
    InterfaceForecast,
    NotificationKind,
    ResourceKind,
)
from gridbridge.domain.network_state import NetworkEventKind
from gridbridge.domain.offers import Market
from gridbridge.domain.roles import Service
from gridbridge.services import (
    clearing,
    conflicts,
    curtailment,
    cycle,
    ders,
    envelope_runs,
    instructions,
    network_state,
    offers,
    storage,
)
from gridbridge.services.conflict_ports import ConflictFilter, StoredConflict
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from market_province import build_market_province, item, rt_interval
from registry_province import Province, build_province, enrol, spec

NOON_EST = datetime(2026, 5, 5, 17, 0, tzinfo=UTC)
"""12 pm Eastern Standard Time, the day after the province's clock."""
HOUR = timedelta(hours=1)
FEEDER_LINE = "LV1.101 Line 12"
"""Opening it de-energises tdi_a's ``LV1.101 Bus 2``, the point of a2 (``envelope_province``)."""


def _stored(p: Province, who: str = "regulator") -> list[StoredConflict]:
    return p.run(who, lambda ctx: conflicts.list_conflicts(ctx, Page(limit=100), ConflictFilter()))


def _instruction(p: Province, instruction_id: str) -> Instruction:
    found = p.run("regulator", lambda ctx: ctx.uow.market.instructions.get(instruction_id))
    assert found is not None
    return found


def _notified(p: Province, who: str, conflict_id: str) -> bool:
    notes = p.run(who, lambda ctx: instructions.list_notifications(ctx, Page(limit=500)))
    return any(n.kind is NotificationKind.CONFLICT_RESOLVED and conflict_id in n.message for n in notes)


@pytest.fixture
def province(database_url: str) -> Province:
    return build_province(database_url)


# --- categories and signs ---------------------------------------------------------------------------------


def test_a_tso_dispatch_on_top_of_a_curtailment_counts_the_reduction_as_a_reduction(database_url: str) -> None:
    """C (200 kW, static limit 150 kW) is curtailed 50 kW by ldc_a; the TSO then dispatches it 150 kW. The DER is
    asked for 100 kW in all, within its limits: no conflict, and the dispatch stands at 150 kW. (Counting the
    reduction as +50 kW of bulk-reliability export used to cut the dispatch to 100 kW.)"""
    p, start, end = build_curtailment_province(database_url)
    publish(p, "pro_rata_export")
    event = p.run(
        "ldc_a",
        lambda ctx: curtailment.request_curtailment(ctx, p.tdis["tdi_a"], 100.0, start, end, reason="feeder F1"),
    )
    assert {s.der_id: s.share_kw for s in event.shares}[p.ders["C"]] == pytest.approx(50.0)
    dispatched = tso_dispatch(p, "C", start, end, 150.0)
    assert dispatched.p_kw == pytest.approx(150.0)
    assert dispatched.status is InstructionStatus.ISSUED
    assert _stored(p) == []

    # D (static limit 50 kW) is curtailed 16.667 kW; a 100 kW dispatch is beyond its limit even with the reduction
    # (83.333 kW): the TSO's wholesale dispatch yields to 66.667 kW, the curtailment (distribution safety) stands
    beyond = tso_dispatch(p, "D", start, end, 100.0)
    assert beyond.p_kw == pytest.approx(50.0 + 100.0 / 6, abs=1e-3)
    (found,) = _stored(p)
    assert found.kind is ConflictKind.TIER_BYPASSING_ENVELOPE
    outcomes = {o.subject_id: o for o in found.resolution.outcomes}
    (reduction,) = [o for o in outcomes.values() if o.original_p_kw < 0]
    assert reduction.action is OutcomeAction.KEPT
    assert reduction.original_p_kw == pytest.approx(-100.0 / 6, abs=1e-3)
    assert "This one is distribution_safety (priority 1 of 4)" in reduction.reason
    assert outcomes[beyond.id].action is OutcomeAction.REDUCED
    assert "distribution_safety" in outcomes[beyond.id].reason  # outranked by the curtailment


def test_a_curtailed_battery_needs_less_energy_not_more(database_url: str) -> None:
    """A 1,000 kW / 4,000 kWh battery (losses ignored) is curtailed for the first half hour and then dispatched
    1,000 kW by the TSO for four hours from the same start: the reduction lowers its discharge, so from full the
    battery delivers everything (a reduction counted as discharge would have asked for more than 4,000 kWh)."""
    p, start, end = build_curtailment_province(database_url)
    add_battery(p, "bat", 4)
    publish(p, "pro_rata_export")
    event = p.run(
        "ldc_a",
        lambda ctx: curtailment.request_curtailment(ctx, p.tdis["tdi_a"], 100.0, start, end, reason="feeder F1"),
    )
    assert {s.der_id: s.share_kw for s in event.shares}[p.ders["bat"]] > 0
    dispatched = tso_dispatch(p, "bat", start, start + 4 * HOUR, 1000.0)
    assert dispatched.p_kw == pytest.approx(1000.0)
    assert _stored(p) == []


# --- connection-point coupling ----------------------------------------------------------------------------


def test_two_ders_at_one_point_are_checked_against_the_points_envelope(province: Province) -> None:
    """a1 and x share a1's connection point, whose envelope allows 50 kW. The TSO dispatches 40 kW to each: the
    second dispatch breaks the point's envelope jointly and is cut to 10 kW (most restrictive limit)."""
    p = province
    point = point_of(p, "a1")
    add_der(p, "x", "agg_2", spec("der-x", 60.0), point, owner="owner_2")
    publish_envelope(p, "a1", NOON_EST, NOON_EST + HOUR, 50.0, "thermal:line_1")
    first = tso_dispatch(p, "a1", NOON_EST, NOON_EST + HOUR, 40.0)
    p.clock.advance(timedelta(minutes=1))
    second = tso_dispatch(p, "x", NOON_EST, NOON_EST + HOUR, 40.0)
    assert first.p_kw == pytest.approx(40.0)
    assert second.p_kw == pytest.approx(10.0)  # the later one of the same category yields
    (found,) = _stored(p)
    assert found.kind is ConflictKind.TIER_BYPASSING_ENVELOPE
    assert found.conflict.connection_point_id == str(point)
    assert set(found.conflict.der_ids) == {p.ders["a1"], p.ders["x"]}
    assert found.resolution.rule is ResolutionRule.MOST_RESTRICTIVE_LIMIT
    assert "connection point" in (found.resolution.binding_limit or "")
    assert found.conflict.series["excess_kw"] == (pytest.approx(30.0),)
    for who in ("tso", "agg_2", "owner_1"):  # issuers and recipients (agg_2 represents x)
        assert _notified(p, who, found.id), who


# --- hidden coupling on capability ------------------------------------------------------------------------


def test_tso_and_dso_instructing_one_der_beyond_its_capability(province: Province) -> None:
    """a1 (60 kW) is dispatched 40 kW by the TSO and then 40 kW by its DSO for a distribution service: 80 kW is
    beyond its capability. Distribution services outrank wholesale energy: the TSO's dispatch yields to 20 kW."""
    p = province
    tso = tso_dispatch(p, "a1", NOON_EST, NOON_EST + HOUR, 40.0)
    dso = dso_dispatch(p, "a1", NOON_EST, NOON_EST + HOUR, 40.0)
    assert dso.p_kw == pytest.approx(40.0)
    assert _instruction(p, tso.id).p_kw == pytest.approx(20.0)
    found = {s.kind: s for s in _stored(p)}
    capability = found[ConflictKind.HIDDEN_COUPLING_CAPABILITY]
    assert set(capability.conflict.instruction_ids) == {tso.id, dso.id}
    assert capability.conflict.figures["max_excess_kw"] == pytest.approx(20.0)
    assert capability.resolution.rule is ResolutionRule.SERVICE_PRIORITY
    actions = {o.subject_id: o.action for o in capability.resolution.outcomes}
    assert actions == {tso.id: OutcomeAction.REDUCED, dso.id: OutcomeAction.KEPT}
    assert all(s.resolution.conflict_id == s.id for s in found.values())
    for who in ("tso", "ldc_a", "owner_1"):
        assert _notified(p, who, capability.id), who


def test_dso_dispatch_and_its_aggregators_split_of_a_market_instruction(sqlite_url: str) -> None:
    """t3 (100 kW storage at tdi_t, Total TSO) is a member of agg_2's aggregation. ldc_a dispatches it 60 kW for a
    distribution service; the TSO clears agg_2's 80 kW offer and agg_2 splits the dispatch to t3: 140 kW is
    beyond t3's capability. The aggregator's wholesale child yields to 40 kW; the DSO's dispatch stands."""
    p = build_market_province(sqlite_url)
    p.clock.advance(timedelta(days=2))
    agg = enrol(p, "agg_2", "vpp_t", ["t3"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_a"])
    iv = rt_interval(p)
    p.run("agg_2", lambda ctx: offers.submit_offers(ctx, [item(ResourceKind.AGGREGATION, agg, iv, [(20, 80)])]))
    dso = dso_dispatch(p, "t3", iv, iv + timedelta(minutes=5), 60.0)
    p.clock.set(iv - timedelta(minutes=5))
    run = p.run(
        "tso",
        lambda ctx: clearing.clear_interval(
            ctx,
            Market.REAL_TIME,
            iv,
            energy_requirement_kw=80,
            forecasts={p.tdis["tdi_t"]: InterfaceForecast(load_kw=1000.0)},
        ),
    )
    issued = p.run("tso", lambda ctx: instructions.issue_instructions(ctx, run.id))
    (parent,) = [i for i in issued if i.resource_kind is ResourceKind.AGGREGATION]
    assert parent.p_kw == pytest.approx(80.0)
    split = p.run("agg_2", lambda ctx: instructions.split_instruction(ctx, parent.id))
    (child,) = split.children
    assert child.der_id == p.ders["t3"]
    assert child.p_kw == pytest.approx(40.0)
    assert _instruction(p, dso.id).p_kw == pytest.approx(60.0)
    capability = next(s for s in _stored(p) if s.kind is ConflictKind.HIDDEN_COUPLING_CAPABILITY)
    assert set(capability.conflict.instruction_ids) == {dso.id, child.id}
    actions = {o.subject_id: o.action for o in capability.resolution.outcomes}
    assert actions == {dso.id: OutcomeAction.KEPT, child.id: OutcomeAction.REDUCED}
    # the DSO, the aggregator and the TSO behind the split instruction are told
    for who in ("ldc_a", "agg_2", "tso"):
        assert _notified(p, who, capability.id), who


# --- re-checks when the network changes, and before dispatch ----------------------------------------------


def test_an_outage_recorded_after_issue_rechecks_the_dark_points_at_once(province: Province) -> None:
    p = province
    dispatched = tso_dispatch(p, "a2", NOON_EST, NOON_EST + HOUR, 40.0)
    assert _stored(p) == []
    recorded = p.run(
        "ldc_a",
        lambda ctx: network_state.record_event(
            ctx,
            p.tdis["tdi_a"],
            NetworkEventKind.UNPLANNED_OUTAGE,
            NOON_EST - HOUR,
            NOON_EST + 2 * HOUR,
            open_elements=[FEEDER_LINE],
            reason="cable fault",
        ),
    )
    a2 = p.run("regulator", lambda ctx: ctx.uow.ders.get(p.ders["a2"]))
    assert a2 is not None
    assert a2.connection_point_id in recorded.de_energised_point_ids
    (found,) = _stored(p)
    assert found.kind is ConflictKind.TIER_BYPASSING_DEENERGISED
    assert found.stage == conflicts.STAGE_NETWORK
    after = _instruction(p, dispatched.id)
    assert after.status is InstructionStatus.CANCELLED
    assert after.p_kw == 0.0
    for who in ("tso", "agg_1"):  # the issuer and the recipient (a2's representative)
        assert _notified(p, who, found.id), who


def test_a_published_envelope_run_rechecks_the_instructions_it_covers(sqlite_url: str) -> None:
    from envelope_province import BACKEND, SETTINGS

    p = build_province(sqlite_url)
    tdi = p.tdis["tdi_a"]
    p.run("ldc_a", lambda ctx: envelope_runs.update_settings(ctx, tdi, {**SETTINGS, "point_cap_kw": 20.0}))
    start = p.clock.now() + HOUR
    dispatched = tso_dispatch(p, "a1", start, start + timedelta(minutes=30), 50.0)
    assert dispatched.p_kw == pytest.approx(50.0)  # no envelope published yet
    outcome = p.run("ldc_a", lambda ctx: envelope_runs.compute_run(ctx, BACKEND, tdi, start=start, publish=True))
    assert outcome.published > 0
    (found,) = _stored(p)
    assert found.kind is ConflictKind.TIER_BYPASSING_ENVELOPE
    assert found.stage == conflicts.STAGE_NETWORK
    assert _instruction(p, dispatched.id).p_kw <= 20.0 + 1e-6
    assert _notified(p, "tso", found.id)


def test_the_check_before_dispatch_in_the_cycle_applies_a_state_of_charge_reported_since_issue(
    sqlite_url: str,
) -> None:
    """t3 (100 kW / 200 kWh storage at tdi_t, Total TSO) holds ldc_a's 90-minute 100 kW dispatch, feasible from
    full when issued. Its owner then reports 20 kWh. The cycle dispatches tx, a PV at t3's connection point: the
    issue check of tx sees t3's energy conflict but stores only conflicts of the new instructions; the check
    before dispatch (``cycle.run_interval``) stores and resolves it."""
    p = build_market_province(sqlite_url)
    add_der(p, "tx", "owner_2", spec("der-tx", 50.0), point_of(p, "t3"))
    iv = rt_interval(p)
    p.run("owner_2", lambda ctx: offers.submit_offers(ctx, [item(ResourceKind.DER, p.ders["tx"], iv, [(20, 50)])]))
    dso = dso_dispatch(p, "t3", iv, iv + timedelta(minutes=90), 100.0)
    assert dso.p_kw == pytest.approx(100.0)
    assert _stored(p) == []
    p.clock.set(iv - timedelta(minutes=5))
    p.run(
        "owner_2",
        lambda ctx: storage.report_state_of_charge(ctx, p.ders["t3"], measured_at=ctx.clock.now(), soc_kwh=20.0),
    )
    assert _stored(p) == []  # a reading changes nothing by itself

    def run(ctx: Context) -> cycle.CycleOutcome:
        return cycle.run_interval(
            ctx,
            Market.REAL_TIME,
            iv,
            energy_requirement_kw=50.0,
            forecasts={p.tdis["tdi_t"]: InterfaceForecast(load_kw=1000.0)},
        )

    with p.platform.context() as ctx:
        outcome = run(ctx)
    assert any(i.der_id == p.ders["tx"] for i in outcome.issued)
    (found,) = outcome.conflicts
    assert found.kind is ConflictKind.HIDDEN_COUPLING_ENERGY
    assert found.stage == conflicts.STAGE_DISPATCH
    assert found.conflict.figures["soc_initial_reported"] == 1.0
    assert found.conflict.figures["e_initial_kwh"] == pytest.approx(20.0)
    assert "as reported by" in found.conflict.summary
    assert [s.id for s in _stored(p)] == [found.id]
    assert _instruction(p, dso.id).p_kw < 100.0
    assert _notified(p, "ldc_a", found.id)


# --- storage: round-trip efficiency and state of charge ---------------------------------------------------


def _pair(p: Province, key: str) -> tuple[Instruction, Instruction]:
    """The TSO dispatches the battery 1,000 kW from 12 to 2 pm, the DSO from 2 to 4 pm: 4,000 kWh in all."""
    tso = tso_dispatch(p, key, NOON_EST, NOON_EST + 2 * HOUR, 1000.0)
    dso = dso_dispatch(p, key, NOON_EST + 2 * HOUR, NOON_EST + 4 * HOUR, 1000.0)
    return tso, dso


def test_round_trip_efficiency_below_one_makes_a_feasible_pair_infeasible(province: Province) -> None:
    """A full 4,000 kWh battery can deliver 4,000 kWh without losses; with 81 % round trip (0.9 each way) it
    needs 4,444 kWh; without a declared efficiency the platform default (0.9) applies."""
    p = province
    add_battery(p, "lossless", 5, round_trip_efficiency=1.0)
    add_battery(p, "lossy", 6, round_trip_efficiency=0.81)
    add_battery(p, "default", 7, round_trip_efficiency=None)
    _pair(p, "lossless")
    assert _stored(p) == []
    tso, dso = _pair(p, "lossy")
    (lossy,) = _stored(p)
    assert lossy.kind is ConflictKind.HIDDEN_COUPLING_ENERGY
    assert lossy.conflict.der_ids == (p.ders["lossy"],)
    assert lossy.conflict.figures["round_trip_efficiency"] == pytest.approx(0.81)
    assert lossy.conflict.figures["soc_initial_reported"] == 0.0
    assert lossy.conflict.figures["e_initial_kwh"] == pytest.approx(4000.0)  # even full
    assert lossy.conflict.figures["max_shortfall_kwh"] == pytest.approx(4000 / 0.9 - 4000, rel=1e-6)
    assert "the most favourable" in lossy.conflict.summary
    # distribution services outrank wholesale: the DSO's 2-4 pm dispatch keeps the 2,222 kWh it needs; the TSO's
    # 12-2 pm dispatch (one interval of the check's 2-hour grid) gets what is left: 1,778 kWh x 0.9 over 2 h
    assert _instruction(p, dso.id).p_kw == pytest.approx(1000.0)
    assert _instruction(p, tso.id).p_kw == pytest.approx((4000 - 2000 / 0.9) * 0.9 / 2)
    _pair(p, "default")
    default = next(s for s in _stored(p) if s.conflict.der_ids == (p.ders["default"],))
    assert default.conflict.figures["round_trip_efficiency"] == pytest.approx(0.9)
    assert "(the platform default)" in default.conflict.summary


def test_a_low_reported_state_of_charge_makes_a_feasible_pair_infeasible(province: Province) -> None:
    """From full the pair (4,000 kWh) is deliverable; the owner reports 2,000 kWh at 10 am: the check starts from
    that reading and the pair needs 2,000 kWh more than stored."""
    p = province
    add_battery(p, "full", 5)
    add_battery(p, "half", 6)
    p.run(
        "owner_2",
        lambda ctx: storage.report_state_of_charge(ctx, p.ders["half"], measured_at=ctx.clock.now(), soc_fraction=0.5),
    )
    _pair(p, "full")
    assert _stored(p) == []
    tso, dso = _pair(p, "half")
    (found,) = _stored(p)
    assert found.conflict.der_ids == (p.ders["half"],)
    assert found.conflict.figures["soc_initial_reported"] == 1.0
    assert found.conflict.figures["e_initial_kwh"] == pytest.approx(2000.0)
    assert found.conflict.figures["max_shortfall_kwh"] == pytest.approx(2000.0)
    assert f"reported by {p.ids['owner_2']}" in found.conflict.summary
    # distribution services outrank wholesale: the DSO's 2-4 pm dispatch keeps the energy it needs, the TSO's
    # earlier dispatch is cut to what is left
    assert _instruction(p, dso.id).p_kw == pytest.approx(1000.0)
    assert _instruction(p, tso.id).p_kw == pytest.approx(0.0)


def test_state_of_charge_readings_are_validated_and_scoped(province: Province) -> None:
    p = province
    bat = add_battery(p)
    now = p.clock.now()

    def report(who: str, der_id: str = bat, **kw: object) -> object:
        return p.run(
            who,
            lambda ctx: storage.report_state_of_charge(ctx, der_id, measured_at=kw.pop("at", now), **kw),  # type: ignore[arg-type]
        )

    with pytest.raises(PermissionDenied):
        report("tso", soc_kwh=1.0)  # the TSO never reports
    with pytest.raises(PermissionDenied):
        report("regulator", soc_kwh=1.0)
    with pytest.raises(NotFound):
        report("owner_1", soc_kwh=1.0)  # not owner_1's: answered like a missing DER
    with pytest.raises(NotFound):
        report("ldc_b", soc_kwh=1.0)
    with pytest.raises(ValidationFailed) as not_storage:
        report("owner_1", p.ders["a1"], soc_kwh=1.0)
    assert not_storage.value.code == "storage.not_storage"
    with pytest.raises(ValidationFailed) as both:
        report("owner_2", soc_kwh=1.0, soc_fraction=0.1)
    assert both.value.code == "storage.soc_one_of"
    with pytest.raises(ValidationFailed) as neither:
        report("owner_2")
    assert neither.value.code == "validation.required"
    with pytest.raises(ValidationFailed) as beyond:
        report("owner_2", soc_kwh=4000.5)
    assert beyond.value.code == "validation.out_of_range"
    with pytest.raises(ValidationFailed) as future:
        report("owner_2", soc_kwh=1.0, at=now + timedelta(minutes=1))
    assert future.value.code == "storage.reading_in_future"
    assert p.run("owner_2", lambda ctx: storage.latest_state_of_charge(ctx, bat))[1] is None

    report("owner_2", soc_kwh=1000.0, at=now - HOUR)
    report("ldc_a", soc_fraction=0.75, at=now - 2 * HOUR)  # older: not the latest
    der, latest = p.run("regulator", lambda ctx: storage.latest_state_of_charge(ctx, bat))
    assert latest is not None
    assert (latest.soc_kwh, latest.reported_by, latest.measured_at) == (1000.0, p.ids["owner_2"], now - HOUR)
    assert der.e_kwh == 4000.0
    with pytest.raises(NotFound):
        p.run("owner_1", lambda ctx: storage.latest_state_of_charge(ctx, bat))


def test_declared_round_trip_efficiency_is_validated(province: Province) -> None:
    p = province
    point = p.points["tdi_a"][8]
    for technology, rte, code in (
        (Technology.STORAGE, 0.0, "validation.out_of_range"),
        (Technology.STORAGE, 1.2, "validation.out_of_range"),
        (Technology.PV, 0.9, "der.efficiency_only_for_storage"),
    ):
        s = replace(
            spec(
                "der-bad",
                10.0,
                technology,
                10.0 if technology is Technology.STORAGE else 0.0,
                40.0 if technology is Technology.STORAGE else None,
            ),
            round_trip_efficiency=rte,
        )
        with pytest.raises(ValidationFailed) as bad:
            p.run("owner_1", lambda ctx, s=s: ders.request_interconnection(ctx, s, point))
        assert bad.value.code == code
        assert bad.value.field == "round_trip_efficiency"
    ok = replace(spec("der-ok", 10.0, Technology.STORAGE, 10.0, 40.0), round_trip_efficiency=0.85)
    der = p.run("owner_1", lambda ctx: ders.request_interconnection(ctx, ok, point))
    assert p.run("owner_1", lambda ctx: ders.get_der(ctx, der.id)).round_trip_efficiency == 0.85
    assert p.run("owner_1", lambda ctx: conflicts.round_trip_efficiency(ctx, der)) == 0.85


# --- amendment requests that expire -----------------------------------------------------------------------


def test_an_unanswered_amendment_request_expires_and_its_provisional_setpoint_is_final(province: Province) -> None:
    p = province
    add_battery(p)
    amendment_policy(p, ["distribution_safety", "bulk_reliability", "wholesale_energy", "distribution_services"])
    tso_dispatch(p, "bat", NOON_EST, NOON_EST + 4 * HOUR, 1000.0)
    dso = dso_dispatch(p, "bat", NOON_EST + 4 * HOUR, NOON_EST + 6 * HOUR, 1000.0)
    assert dso.status is InstructionStatus.CANCELLED  # the provisional setpoint
    (found,) = _stored(p)
    (request,) = p.run("ldc_a", lambda ctx: conflicts.get_conflict(ctx, found.id))[1]
    assert request.status is AmendmentStatus.PENDING

    # before the deadline the escalation run expires nothing
    p.run("ldc_a", lambda ctx: instructions.escalate_overdue(ctx))
    assert p.run("regulator", lambda ctx: ctx.uow.conflicts.amendment(request.id)).status is AmendmentStatus.PENDING  # type: ignore[union-attr]

    p.clock.advance(timedelta(minutes=31))
    with p.platform.context() as ctx:  # the platform's escalation run (cycle, periodic job)
        instructions.escalate_overdue(ctx)
    after = p.run("regulator", lambda ctx: ctx.uow.conflicts.amendment(request.id))
    assert after is not None
    assert after.status is AmendmentStatus.EXPIRED
    assert after.answered_at is None
    stood = _instruction(p, dso.id)
    assert stood.p_kw == 0.0
    assert stood.status is InstructionStatus.CANCELLED
    assert "expired unanswered" in (stood.reason or "")
    for who in ("ldc_a", "owner_2"):
        notes = p.run(who, lambda ctx: instructions.list_notifications(ctx, Page(limit=100)))
        assert any(request.id in n.message and "expired" in n.message for n in notes), who
    # the TSO's view withholds the DSO's dispatch and the request about it: it is told without their ids
    notes = p.run("tso", lambda ctx: instructions.list_notifications(ctx, Page(limit=100)))
    told = [n for n in notes if "expired" in n.message and found.id in n.message]
    assert told
    assert not [n for n in told if request.id in n.message or dso.id in n.message or n.instruction_id]
    with pytest.raises(ConflictError) as late:
        p.run("ldc_a", lambda ctx: conflicts.answer_amendment(ctx, request.id, 0.0))
    assert late.value.code == "conflicts.amendment_after_deadline"
    # the conflict is settled, not pending
    assert (
        p.run("regulator", lambda ctx: conflicts.list_conflicts(ctx, Page(), ConflictFilter(pending_amendment=True)))
        == []
    )
    # expiring again finds nothing
    with p.platform.context() as ctx:
        assert conflicts.expire_amendments(ctx) == []
