"""The DER lifecycle state machine."""

from __future__ import annotations

import pytest

from gridbridge.domain.errors import ConflictError
from gridbridge.domain.lifecycle import TRANSITIONS, DerAction, DerStatus, allowed_actions, next_status


def test_happy_path_reaches_enrolled_and_back() -> None:
    status = DerStatus.REQUESTED
    for action in (DerAction.START_REVIEW, DerAction.APPROVE, DerAction.COMMISSION, DerAction.ENROL):
        status = next_status(status, action)
    assert status is DerStatus.ENROLLED
    assert next_status(status, DerAction.UNENROL) is DerStatus.IN_SERVICE


@pytest.mark.parametrize("terminal", [DerStatus.REJECTED, DerStatus.RETIRED])
def test_terminal_states_allow_nothing(terminal: DerStatus) -> None:
    assert allowed_actions(terminal) == []
    for action in DerAction:
        with pytest.raises(ConflictError):
            next_status(terminal, action)


def test_illegal_move_names_state_and_allowed_moves() -> None:
    with pytest.raises(ConflictError) as caught:
        next_status(DerStatus.REQUESTED, DerAction.COMMISSION)
    error = caught.value
    assert error.code == "der.illegal_transition"
    assert error.details == {"current_state": "requested", "allowed_actions": ["start_review", "retire"]}
    assert "requested" in error.message
    assert "start_review" in error.message


def test_every_state_has_an_entry_and_targets_are_states() -> None:
    assert set(TRANSITIONS) == set(DerStatus)
    for moves in TRANSITIONS.values():
        assert all(isinstance(target, DerStatus) for target in moves.values())


def test_suspension_only_from_operating_states() -> None:
    suspendable = {s for s in DerStatus if DerAction.SUSPEND in TRANSITIONS[s]}
    assert suspendable == {DerStatus.IN_SERVICE, DerStatus.ENROLLED}
