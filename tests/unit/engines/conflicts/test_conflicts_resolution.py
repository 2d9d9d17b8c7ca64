"""Resolution rules: service priority, most restrictive limit, amendment requests, double counting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conflicts_testkit import at, hourly_grid, instruction, oracle_violations

from gridbridge.domain.conflicts import (
    Commitment,
    ConflictInstruction,
    ConflictKind,
    ConnectionPointOutage,
    DerCapability,
    Direction,
    EnvelopeLimit,
    EnvelopeTarget,
    OutcomeAction,
    Resolution,
    ResolutionPolicy,
    ResolutionRule,
    Segment,
    ServiceCategory,
    ServicePriorityList,
    StorageSpec,
    SubjectType,
)
from gridbridge.domain.errors import ConflictError, ValidationFailed
from gridbridge.domain.roles import Role, Service
from gridbridge.engines.conflicts import ResolutionResult, build_case, detect_conflicts, resolve_conflicts

W, DS, OR = Service.WHOLESALE_ENERGY, Service.DISTRIBUTION_SERVICES, Service.OPERATING_RESERVE


def battery(e_kwh: float = 4000.0) -> DerCapability:
    return DerCapability("bat-1", "tdi-1", "cp-1", 1000.0, 1000.0, StorageSpec(e_kwh, 1.0))


def white_paper() -> list[ConflictInstruction]:
    return [
        instruction("ieso-1", "bat-1", Role.TSO, W, 12, 16, 1000.0, recipient="agg-7"),
        instruction("dso-1", "bat-1", Role.DSO, DS, 16, 20, 1000.0, recipient="agg-7"),
    ]


def outcomes_by_id(resolution: Resolution) -> dict[str, OutcomeAction]:
    return {o.subject_id: o.action for o in resolution.outcomes}


def schedule(result: ResolutionResult, instruction_id: str) -> list[tuple[float, float, float]]:
    """(start hour EST, end hour EST, kW) segments of one adjusted instruction."""
    adj = next(a for a in result.instructions if a.subject_id == instruction_id)
    base = at(0)
    return [
        ((s.start - base) / timedelta(hours=1), (s.end - base) / timedelta(hours=1), round(s.p_kw, 6))
        for s in adj.schedule
    ]


def test_white_paper_battery_default_priorities_distribution_service_wins() -> None:
    grid = hourly_grid(12, 8)
    case = build_case(grid, [battery()], white_paper())
    conflicts = detect_conflicts(case)
    result = resolve_conflicts(case, conflicts, at(10))
    (res,) = result.resolutions
    assert res.conflict_id == conflicts[0].conflict_id
    assert res.rule is ResolutionRule.SERVICE_PRIORITY
    assert outcomes_by_id(res) == {"ieso-1": OutcomeAction.CANCELLED, "dso-1": OutcomeAction.KEPT}
    assert schedule(result, "ieso-1") == [(12.0, 16.0, 0.0)]
    assert schedule(result, "dso-1") == [(16.0, 20.0, 1000.0)]
    ieso = next(o for o in res.outcomes if o.subject_id == "ieso-1")
    assert ieso.party_ids == ("ieso", "agg-7")
    assert "wholesale_energy (priority 4 of 4)" in ieso.reason
    assert "dso-1" in ieso.reason
    assert set(res.party_ids) == {"ieso", "ldc-1", "agg-7"}
    assert detect_conflicts(case, cell_p_kw=result.cell_p_kw) == ()


def test_white_paper_battery_with_wholesale_declared_first_the_dso_yields() -> None:
    grid = hourly_grid(12, 8)
    case = build_case(grid, [battery()], white_paper())
    order = ServicePriorityList.from_names(
        ["distribution_safety", "bulk_reliability", "wholesale_energy", "distribution_services"]
    )
    result = resolve_conflicts(
        case, detect_conflicts(case), at(10), policies={"tdi-1": ResolutionPolicy(priorities=order)}
    )
    assert outcomes_by_id(result.resolutions[0]) == {"ieso-1": OutcomeAction.KEPT, "dso-1": OutcomeAction.CANCELLED}


def test_a_five_hour_battery_leaves_one_hour_for_the_lower_priority_dispatch() -> None:
    """5000 kWh: the DSO needs 4000 kWh at 4 pm, so the IESO gets 1000 kWh, served earliest first."""
    grid = hourly_grid(12, 8)
    case = build_case(grid, [battery(5000.0)], white_paper())
    result = resolve_conflicts(case, detect_conflicts(case), at(10))
    assert outcomes_by_id(result.resolutions[0])["ieso-1"] is OutcomeAction.REDUCED
    assert schedule(result, "ieso-1") == [(12.0, 13.0, 1000.0), (13.0, 16.0, 0.0)]


def test_round_trip_losses_and_a_same_priority_recharge() -> None:
    """0.9 each way. The DSO (16-18 h, 2222.222 kWh) outranks both wholesale instructions.

    Wholesale cells are served in time order and may rely on higher priorities only: 12-13 h full 1000 kW
    (4000 -> 2888.889); 13-14 h 600 kW, exactly down to the 2222.222 kWh the DSO needs; 14-15 h 0 kW; the
    charge 15-16 h (+900 kWh) fits under 4000 kWh and is kept.
    """
    grid = hourly_grid(12, 6)
    bat = DerCapability("bat-1", "tdi-1", "cp-1", 1000.0, 1000.0, StorageSpec.with_round_trip(4000.0, 1.0, 0.81))
    instructions = [
        instruction("ieso-1", "bat-1", Role.TSO, W, 12, 15, 1000.0),
        instruction("agg-charge", "bat-1", Role.AGGREGATOR, W, 15, 16, -1000.0),
        instruction("dso-1", "bat-1", Role.DSO, DS, 16, 18, 1000.0),
    ]
    case = build_case(grid, [bat], instructions)
    result = resolve_conflicts(case, detect_conflicts(case), at(10))
    assert schedule(result, "ieso-1") == [(12.0, 13.0, 1000.0), (13.0, 14.0, 600.0), (14.0, 15.0, 0.0)]
    assert schedule(result, "agg-charge") == [(15.0, 16.0, -1000.0)]
    assert schedule(result, "dso-1") == [(16.0, 18.0, 1000.0)]


def test_amendment_request_to_the_lower_priority_issuer_with_a_deadline() -> None:
    grid = hourly_grid(12, 8)
    case = build_case(grid, [battery()], white_paper())
    policy = ResolutionPolicy(
        rules={ConflictKind.HIDDEN_COUPLING_ENERGY: ResolutionRule.AMENDMENT_REQUEST},
        amendment_window=timedelta(minutes=30),
    )
    result = resolve_conflicts(case, detect_conflicts(case), at(10), policies={"tdi-1": policy})
    (res,) = result.resolutions
    assert res.rule is ResolutionRule.AMENDMENT_REQUEST
    assert outcomes_by_id(res) == {"ieso-1": OutcomeAction.AMENDMENT_REQUESTED, "dso-1": OutcomeAction.KEPT}
    (request,) = result.amendment_requests
    assert request.addressee_party_id == "ieso"
    assert request.deadline == at(10.5)
    assert request.provisional == (Segment(at(12), at(16), 0.0),)
    amended = instruction("ieso-1", "bat-1", Role.TSO, W, 12, 13, 1000.0)
    with pytest.raises(ConflictError) as err:
        request.answer(amended, at(10.5) + timedelta(minutes=1))
    assert err.value.code == "conflicts.amendment_after_deadline"
    assert request.answer(amended, at(10.4)).amendment == amended


def test_amendment_deadline_is_capped_at_the_first_affected_interval_and_final_when_too_late() -> None:
    grid = hourly_grid(12, 8)
    case = build_case(grid, [battery()], white_paper())
    policy = ResolutionPolicy(rules={ConflictKind.HIDDEN_COUPLING_ENERGY: ResolutionRule.AMENDMENT_REQUEST})
    conflicts = detect_conflicts(case)
    capped = resolve_conflicts(case, conflicts, at(11.95), policies={"tdi-1": policy})
    assert capped.amendment_requests[0].deadline == at(12)
    late = resolve_conflicts(case, conflicts, at(12.5), policies={"tdi-1": policy})
    assert late.amendment_requests == ()
    ieso = next(o for o in late.resolutions[0].outcomes if o.subject_id == "ieso-1")
    assert ieso.action is OutcomeAction.CANCELLED
    assert "no time left to amend" in ieso.reason


def test_capability_conflict_bulk_reliability_outranks_wholesale() -> None:
    grid = hourly_grid(12, 3)
    dr = DerCapability("dr-1", "tdi-1", "cp-2", 200.0, 50.0)
    instructions = [
        instruction("tso-res", "dr-1", Role.TSO, OR, 12, 14, 150.0),
        instruction("agg-en", "dr-1", Role.AGGREGATOR, W, 13, 15, 100.0),
    ]
    case = build_case(grid, [dr], instructions)
    result = resolve_conflicts(case, detect_conflicts(case), at(10))
    assert outcomes_by_id(result.resolutions[0]) == {"tso-res": OutcomeAction.KEPT, "agg-en": OutcomeAction.REDUCED}
    assert schedule(result, "agg-en") == [(13.0, 14.0, 50.0), (14.0, 15.0, 100.0)]


def test_same_category_the_earlier_issued_instruction_prevails() -> None:
    grid = hourly_grid(12, 1)
    dr = DerCapability("dr-1", "tdi-1", "cp-2", 200.0, 50.0)
    instructions = [
        instruction("late", "dr-1", Role.AGGREGATOR, W, 12, 13, 150.0, issued_hour=-1),
        instruction("early", "dr-1", Role.TSO, W, 12, 13, 150.0, issued_hour=-2),
    ]
    case = build_case(grid, [dr], instructions)
    result = resolve_conflicts(case, detect_conflicts(case), at(10))
    assert schedule(result, "early") == [(12.0, 13.0, 150.0)]
    assert schedule(result, "late") == [(12.0, 13.0, 50.0)]


def test_tier_bypassing_most_restrictive_limit_clips_the_tso_to_the_envelope() -> None:
    grid = hourly_grid(12, 3)
    pv = DerCapability("pv-9", "tdi-1", "cp-9", 500.0, 0.0)
    envelope = EnvelopeLimit(EnvelopeTarget.DER, "pv-9", at(13), at(14), 300.0, 0.0)
    case = build_case(grid, [pv], [instruction("ieso-9", "pv-9", Role.TSO, W, 12, 15, 400.0)], envelopes=[envelope])
    result = resolve_conflicts(case, detect_conflicts(case), at(10))
    (res,) = result.resolutions
    assert res.rule is ResolutionRule.MOST_RESTRICTIVE_LIMIT
    assert res.binding_limit is not None
    assert res.binding_limit.startswith("DER pv-9 operating envelope: 300 kW export")
    assert schedule(result, "ieso-9") == [(12.0, 13.0, 400.0), (13.0, 14.0, 300.0), (14.0, 15.0, 400.0)]


def test_connection_point_envelope_lowest_priority_yields_first() -> None:
    grid = hourly_grid(12, 1)
    ders = [
        DerCapability("pv-1", "tdi-1", "cp-5", 100.0, 0.0),
        DerCapability("bat-2", "tdi-1", "cp-5", 100.0, 100.0, StorageSpec(400.0, 0.5)),
    ]
    envelope = EnvelopeLimit(EnvelopeTarget.CONNECTION_POINT, "cp-5", at(12), at(13), 100.0, 100.0)
    instructions = [
        instruction("dso-pv", "pv-1", Role.DSO, DS, 12, 13, 50.0),
        instruction("tso-bat", "bat-2", Role.TSO, W, 12, 13, 80.0),
    ]
    case = build_case(grid, ders, instructions, envelopes=[envelope])
    result = resolve_conflicts(case, detect_conflicts(case), at(10))
    (res,) = result.resolutions
    assert res.binding_limit is not None
    assert res.binding_limit.startswith("connection point cp-5 operating envelope: 100 kW export")
    assert schedule(result, "tso-bat") == [(12.0, 13.0, 50.0)]
    assert schedule(result, "dso-pv") == [(12.0, 13.0, 50.0)]


def test_deenergised_connection_point_zeroes_the_outage_hour_only() -> None:
    grid = hourly_grid(12, 3)
    pv = DerCapability("pv-3", "tdi-1", "cp-3", 500.0, 0.0)
    outage = ConnectionPointOutage("cp-3", at(13), at(14))
    case = build_case(grid, [pv], [instruction("ieso-3", "pv-3", Role.TSO, W, 12, 15, 100.0)], outages=[outage])
    result = resolve_conflicts(case, detect_conflicts(case), at(10))
    (res,) = result.resolutions
    assert res.kind is ConflictKind.TIER_BYPASSING_DEENERGISED
    assert res.binding_limit == "connection point cp-3 de-energised: 0 kW"
    assert schedule(result, "ieso-3") == [(12.0, 13.0, 100.0), (13.0, 14.0, 0.0), (14.0, 15.0, 100.0)]


def test_a_distribution_safety_instruction_outranks_a_tso_emergency_instruction() -> None:
    grid = hourly_grid(12, 1)
    bat = DerCapability("bat-4", "tdi-1", "cp-4", 300.0, 300.0)
    op = "operating_instruction"
    instructions = [
        instruction("tso-emerg", "bat-4", Role.TSO, W, 12, 13, 300.0, kind=op),  # type: ignore[arg-type]
        instruction("dso-safe", "bat-4", Role.DSO, DS, 12, 13, 200.0, kind=op),  # type: ignore[arg-type]
    ]
    case = build_case(grid, [bat], instructions)
    assert case.instructions[1].category is ServiceCategory.DISTRIBUTION_SAFETY
    result = resolve_conflicts(case, detect_conflicts(case), at(10))
    assert schedule(result, "dso-safe") == [(12.0, 13.0, 200.0)]
    assert schedule(result, "tso-emerg") == [(12.0, 13.0, 100.0)]


def test_resolution_ripple_on_a_storage_der_is_never_silent() -> None:
    """Cutting a capability excess at 12 h leaves energy that a later charge can no longer absorb.

    Battery 100 kW, 250 kWh, at 200 kWh. Hour 12: TSO reserve 80 + aggregator 70 kW = 150 kW (capability
    conflict; the aggregator yields 50 kW). Hours 13-15: an aggregator charge of 100 kW. As instructed the
    trajectory is 50, 150, 250 kWh: feasible. After the cut it would be 100, 200, 300 kWh: the charge in
    hour 14 can only take 50 kW. That charge is in no conflict, yet it must change, so it gets an outcome.
    """
    grid = hourly_grid(12, 3)
    bat = DerCapability("bat-6", "tdi-1", "cp-6", 100.0, 100.0, StorageSpec(250.0, 0.8))
    instructions = [
        instruction("tso-d", "bat-6", Role.TSO, OR, 12, 13, 80.0),
        instruction("agg-d", "bat-6", Role.AGGREGATOR, W, 12, 13, 70.0),
        instruction("agg-c", "bat-6", Role.AGGREGATOR, W, 13, 15, -100.0),
    ]
    case = build_case(grid, [bat], instructions)
    conflicts = detect_conflicts(case)
    assert [c.kind for c in conflicts] == [ConflictKind.HIDDEN_COUPLING_CAPABILITY]
    assert "agg-c" not in conflicts[0].instruction_ids
    result = resolve_conflicts(case, conflicts, at(10))
    assert schedule(result, "agg-d") == [(12.0, 13.0, 20.0)]
    assert schedule(result, "agg-c") == [(13.0, 14.0, -100.0), (14.0, 15.0, -50.0)]
    ripple = next(o for o in result.resolutions[0].outcomes if o.subject_id == "agg-c")
    assert ripple.action is OutcomeAction.REDUCED
    assert "not itself in the conflict" in ripple.reason
    schedules = {a.subject_id: a.schedule for a in result.instructions}
    assert oracle_violations(grid, [bat], instructions, schedules) == []


def test_double_counting_resolution_stacks_commitments_by_service_priority() -> None:
    grid = hourly_grid(12, 2)
    bat = DerCapability("bat-5", "tdi-1", "cp-5", 500.0, 500.0)

    def com(cid: str, holder: str, service: Service, kw: float, day: int) -> Commitment:
        return Commitment(
            cid,
            "bat-5",
            holder,
            "buyer",
            f"{holder}-provider",
            service,
            Direction.EXPORT,
            at(12),
            at(14),
            kw,
            at(-24 * day),
        )

    commitments = [
        com("c-a", "agg-A", W, 400.0, 30),
        com("c-b", "agg-B", W, 300.0, 20),
        com("c-dso", "nwa-1", DS, 200.0, 10),
    ]
    case = build_case(grid, [bat], [], commitments=commitments)
    result = resolve_conflicts(case, detect_conflicts(case), at(10))
    (res,) = result.resolutions
    assert res.kind is ConflictKind.DOUBLE_COUNTING
    assert outcomes_by_id(res) == {
        "c-a": OutcomeAction.REDUCED,
        "c-b": OutcomeAction.CANCELLED,
        "c-dso": OutcomeAction.KEPT,
    }
    payable = {a.subject_id: a.schedule[0].p_kw for a in result.commitments}
    assert payable == {"c-a": 300.0, "c-b": 0.0, "c-dso": 200.0}
    assert all(o.subject_type is SubjectType.COMMITMENT for o in res.outcomes)
    assert "counted twice" in res.outcomes[0].reason


def test_every_conflict_gets_exactly_one_resolution_in_order() -> None:
    grid = hourly_grid(12, 8)
    pv = DerCapability("pv-3", "tdi-2", "cp-3", 500.0, 0.0)
    instructions = [*white_paper(), instruction("ieso-3", "pv-3", Role.TSO, W, 12, 15, 600.0)]
    case = build_case(grid, [battery(), pv], instructions, outages=[ConnectionPointOutage("cp-3", at(14), at(15))])
    conflicts = detect_conflicts(case)
    assert len(conflicts) == 3
    result = resolve_conflicts(case, conflicts, at(10))
    assert [r.conflict_id for r in result.resolutions] == [c.conflict_id for c in conflicts]
    for conflict, res in zip(conflicts, result.resolutions, strict=True):
        assert set(conflict.instruction_ids) <= {o.subject_id for o in res.outcomes}
        assert all(o.reason for o in res.outcomes)


def test_resolving_only_part_of_the_detected_conflicts_is_a_clear_error() -> None:
    grid = hourly_grid(12, 8)
    pv = DerCapability("pv-3", "tdi-2", "cp-3", 500.0, 0.0)
    instructions = [*white_paper(), instruction("ieso-3", "pv-3", Role.TSO, W, 12, 15, 600.0)]
    case = build_case(grid, [battery(), pv], instructions)
    conflicts = detect_conflicts(case)
    with pytest.raises(ValidationFailed) as err:
        resolve_conflicts(case, conflicts[:1], at(10))
    assert err.value.code == "conflicts.incomplete"
    assert err.value.details["missing"] == [conflicts[1].conflict_id]
