"""Domain rules of conflict management: priorities, policies, amendments, curtailment procedures, inputs."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from conflicts_testkit import at, instruction

from gridbridge.domain.conflicts import (
    DEFAULT_SERVICE_PRIORITIES,
    SERVICE_CATEGORY,
    AmendmentRequest,
    AmendmentStatus,
    ConflictKind,
    CurtailmentProcedure,
    CurtailmentRule,
    InstructionKind,
    IntervalGrid,
    ResolutionPolicy,
    ResolutionRule,
    Segment,
    ServiceCategory,
    ServicePriorityList,
    StorageSpec,
    category_of,
)
from gridbridge.domain.errors import ERROR_CODES, ConflictError, ValidationFailed
from gridbridge.domain.roles import Role, Service


def test_default_priority_order_is_the_one_issue_5_names() -> None:
    assert DEFAULT_SERVICE_PRIORITIES.order == (
        ServiceCategory.DISTRIBUTION_SAFETY,
        ServiceCategory.BULK_RELIABILITY,
        ServiceCategory.DISTRIBUTION_SERVICES,
        ServiceCategory.WHOLESALE_ENERGY,
    )
    assert DEFAULT_SERVICE_PRIORITIES.level(ServiceCategory.WHOLESALE_ENERGY) == 3


def test_priority_list_that_omits_a_service_is_rejected_naming_the_missing_one() -> None:
    with pytest.raises(ValidationFailed) as err:
        ServicePriorityList((ServiceCategory.DISTRIBUTION_SAFETY, ServiceCategory.WHOLESALE_ENERGY))
    assert err.value.code == "conflicts.priority_incomplete"
    assert err.value.field == "order"
    assert err.value.details["missing"] == ["bulk_reliability", "distribution_services"]


def test_priority_list_that_repeats_a_service_is_rejected_naming_its_position() -> None:
    with pytest.raises(ValidationFailed) as err:
        ServicePriorityList.from_names(
            ["distribution_safety", "bulk_reliability", "wholesale_energy", "distribution_safety"]
        )
    assert err.value.code == "conflicts.priority_duplicate"
    assert err.value.field == "order[3]"


def test_priority_list_with_an_unknown_name_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as err:
        ServicePriorityList.from_names(["distribution_safety", "frequency_magic"])
    assert err.value.code == "conflicts.priority_unknown"
    assert err.value.field == "order[1]"


def test_every_service_has_a_category_and_operating_instructions_follow_the_issuer() -> None:
    assert set(SERVICE_CATEGORY) == set(Service)
    assert SERVICE_CATEGORY[Service.OPERATING_RESERVE] is ServiceCategory.BULK_RELIABILITY
    op = InstructionKind.OPERATING_INSTRUCTION
    assert category_of(Service.WHOLESALE_ENERGY, op, Role.TSO) is ServiceCategory.BULK_RELIABILITY
    assert category_of(Service.WHOLESALE_ENERGY, op, Role.DSO) is ServiceCategory.DISTRIBUTION_SAFETY
    with pytest.raises(ValidationFailed) as err:
        category_of(Service.WHOLESALE_ENERGY, op, Role.AGGREGATOR)
    assert err.value.field == "issuer_role"


def test_policy_rejects_a_rule_that_does_not_fit_the_kind() -> None:
    with pytest.raises(ValidationFailed) as err:
        ResolutionPolicy(rules={ConflictKind.TIER_BYPASSING_ENVELOPE: ResolutionRule.SERVICE_PRIORITY})
    assert err.value.code == "conflicts.rule_not_allowed"
    assert err.value.field == "rules[tier_bypassing_envelope]"
    policy = ResolutionPolicy(rules={ConflictKind.HIDDEN_COUPLING_ENERGY: ResolutionRule.AMENDMENT_REQUEST})
    assert policy.rule_for(ConflictKind.HIDDEN_COUPLING_ENERGY) is ResolutionRule.AMENDMENT_REQUEST
    assert policy.rule_for(ConflictKind.TIER_BYPASSING_ENVELOPE) is ResolutionRule.MOST_RESTRICTIVE_LIMIT


def test_policy_needs_a_positive_amendment_window() -> None:
    with pytest.raises(ValidationFailed) as err:
        ResolutionPolicy(amendment_window=timedelta(0))
    assert err.value.field == "amendment_window"


def _request() -> AmendmentRequest:
    return AmendmentRequest(
        request_id="amend:1",
        conflict_id="hidden_coupling_energy:bat-1",
        instruction_id="ieso-1",
        der_id="bat-1",
        addressee_party_id="ieso",
        requested_at=at(10),
        deadline=at(10.25),
        provisional=(Segment(at(12), at(16), 0.0),),
        reason="test",
    )


def test_amendment_after_its_deadline_is_refused_and_changes_nothing() -> None:
    request = _request()
    amended = instruction("ieso-1", "bat-1", Role.TSO, Service.WHOLESALE_ENERGY, 12, 14, 500.0)
    with pytest.raises(ConflictError) as err:
        request.answer(amended, at(10.25) + timedelta(seconds=1))
    assert err.value.code == "conflicts.amendment_after_deadline"
    assert err.value.field == "at"
    assert err.value.status == 409
    assert request.status is AmendmentStatus.PENDING
    assert request.amendment is None


def test_amendment_in_time_is_recorded_on_a_new_request_once() -> None:
    request = _request()
    amended = instruction("ieso-1", "bat-1", Role.TSO, Service.WHOLESALE_ENERGY, 12, 14, 500.0)
    answered = request.answer(amended, at(10.25))
    assert answered.status is AmendmentStatus.AMENDED
    assert answered.amendment == amended
    assert answered.answered_at == at(10.25)
    assert request.status is AmendmentStatus.PENDING
    with pytest.raises(ConflictError) as err:
        answered.answer(amended, at(10.1))
    assert err.value.code == "conflicts.amendment_closed"


def test_amendment_for_another_instruction_or_from_another_issuer_is_refused() -> None:
    request = _request()
    other = instruction("ieso-2", "bat-1", Role.TSO, Service.WHOLESALE_ENERGY, 12, 14, 500.0)
    with pytest.raises(ValidationFailed) as err:
        request.answer(other, at(10.1))
    assert err.value.code == "conflicts.amendment_mismatch"
    assert err.value.field == "amendment.instruction_id"
    wrong_issuer = instruction("ieso-1", "bat-1", Role.TSO, Service.WHOLESALE_ENERGY, 12, 14, 5.0, issuer="x")
    with pytest.raises(ValidationFailed) as err:
        request.answer(wrong_issuer, at(10.1))
    assert err.value.field == "amendment.issuer_party_id"


def test_curtailment_procedure_rejects_unknown_rules_parameters_and_values() -> None:
    with pytest.raises(ValidationFailed) as err:
        CurtailmentProcedure("lottery")  # type: ignore[arg-type]
    assert err.value.code == "conflicts.curtailment_unknown_rule"
    with pytest.raises(ValidationFailed) as err:
        CurtailmentProcedure(CurtailmentRule.PRO_RATA_EXPORT, {"order": "highest_first"})
    assert err.value.code == "conflicts.curtailment_unknown_parameter"
    assert err.value.field == "parameters.order"
    with pytest.raises(ValidationFailed) as err:
        CurtailmentProcedure(CurtailmentRule.OFFER_PRICE, {"order": "random"})
    assert err.value.code == "conflicts.curtailment_bad_parameter"
    procedure = CurtailmentProcedure(CurtailmentRule.CONNECTION_ORDER)
    assert procedure.parameters == {"order": "last_connected_first"}
    assert procedure.describe() == "connection_order (order=last_connected_first)"


def test_error_codes_are_registered_with_statuses() -> None:
    for code in (
        "conflicts.priority_incomplete",
        "conflicts.amendment_after_deadline",
        "conflicts.curtailment_unknown_parameter",
    ):
        assert code in ERROR_CODES


def test_round_trip_efficiency_is_split_evenly() -> None:
    spec = StorageSpec.with_round_trip(400.0, 0.5, 0.81)
    assert spec.eta_charge == pytest.approx(0.9)
    assert spec.eta_discharge == pytest.approx(0.9)
    assert spec.e_initial_kwh == 200.0
    with pytest.raises(ValidationFailed) as err:
        StorageSpec(400.0, 0.05, soc_min_fraction=0.1)
    assert err.value.field == "soc_initial_fraction"


def test_instructions_validate_times_and_setpoints() -> None:
    with pytest.raises(ValidationFailed) as err:
        instruction("x", "d", Role.TSO, Service.WHOLESALE_ENERGY, 14, 12, 1.0)
    assert err.value.field == "end"
    with pytest.raises(ValidationFailed) as err:
        instruction("x", "d", Role.TSO, Service.WHOLESALE_ENERGY, 12, 14, math.nan)
    assert err.value.field == "p_kw"
    with pytest.raises(ValidationFailed) as err:
        instruction(
            "x", "d", Role.AGGREGATOR, Service.WHOLESALE_ENERGY, 12, 14, 1.0, kind=InstructionKind.OPERATING_INSTRUCTION
        )
    assert err.value.field == "issuer_role"


def test_interval_grid_boundaries() -> None:
    grid = IntervalGrid(at(12), timedelta(minutes=5), 288)
    assert grid.boundary(at(13), "t") == 12
    assert grid.dt_h == pytest.approx(5 / 60)
    with pytest.raises(ValidationFailed) as err:
        grid.boundary(at(13) + timedelta(minutes=2), "instructions[0].start")
    assert err.value.code == "conflicts.interval_misaligned"
    assert err.value.field == "instructions[0].start"
    assert list(grid.overlapping(at(12) + timedelta(minutes=2), at(12) + timedelta(minutes=11))) == [0, 1, 2]
