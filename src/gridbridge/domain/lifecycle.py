"""The DER lifecycle: states and the moves allowed between them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from gridbridge.domain.errors import ConflictError, register_code

ILLEGAL_TRANSITION = register_code("der.illegal_transition", 409, "The DER's current state does not allow this move")


class DerStatus(StrEnum):
    """Where a DER is in its life on the platform."""

    REQUESTED = "requested"
    """Interconnection request submitted, waiting for the LDC."""
    UNDER_REVIEW = "under_review"
    """The LDC's technical review has started."""
    REJECTED = "rejected"
    """The LDC rejected the interconnection request (terminal)."""
    APPROVED = "approved"
    """Approved with static export/import limits, not yet commissioned."""
    IN_SERVICE = "in_service"
    """Connected and operating."""
    ENROLLED = "enrolled"
    """In service and enrolled in at least one aggregation or market."""
    SUSPENDED = "suspended"
    """Temporarily barred from operating or offering."""
    RETIRED = "retired"
    """Withdrawn or decommissioned (terminal)."""


class DerAction(StrEnum):
    """The named moves of the lifecycle (what a user asks for)."""

    START_REVIEW = "start_review"
    APPROVE = "approve"
    REJECT = "reject"
    COMMISSION = "commission"
    ENROL = "enrol"
    UNENROL = "unenrol"
    SUSPEND = "suspend"
    RESUME = "resume"
    RETIRE = "retire"


_S = DerStatus
_A = DerAction

TRANSITIONS: Mapping[DerStatus, Mapping[DerAction, DerStatus]] = MappingProxyType(
    {
        _S.REQUESTED: {_A.START_REVIEW: _S.UNDER_REVIEW, _A.RETIRE: _S.RETIRED},
        _S.UNDER_REVIEW: {_A.APPROVE: _S.APPROVED, _A.REJECT: _S.REJECTED, _A.RETIRE: _S.RETIRED},
        _S.REJECTED: {},
        _S.APPROVED: {_A.COMMISSION: _S.IN_SERVICE, _A.RETIRE: _S.RETIRED},
        _S.IN_SERVICE: {_A.ENROL: _S.ENROLLED, _A.SUSPEND: _S.SUSPENDED, _A.RETIRE: _S.RETIRED},
        _S.ENROLLED: {_A.UNENROL: _S.IN_SERVICE, _A.SUSPEND: _S.SUSPENDED, _A.RETIRE: _S.RETIRED},
        _S.SUSPENDED: {_A.RESUME: _S.IN_SERVICE, _A.RETIRE: _S.RETIRED},
        _S.RETIRED: {},
    }
)


def allowed_actions(status: DerStatus) -> list[DerAction]:
    """Return the moves allowed from ``status``, in a stable order."""
    return sorted(TRANSITIONS[status], key=list(DerAction).index)


def next_status(status: DerStatus, action: DerAction) -> DerStatus:
    """Return the state ``action`` leads to from ``status``.

    Raises ``ConflictError`` with code ``der.illegal_transition`` naming the current state and the allowed
    moves when the move is not allowed.
    """
    target = TRANSITIONS[status].get(action)
    if target is None:
        allowed = [a.value for a in allowed_actions(status)]
        raise ConflictError(
            f"cannot {action.value} a DER that is {status.value}; allowed: {', '.join(allowed) or 'none'}",
            code=ILLEGAL_TRANSITION,
            field="status",
            details={"current_state": status.value, "allowed_actions": allowed},
        )
    return target
