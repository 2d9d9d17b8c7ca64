"""Ports of conflict management: what ``services.conflicts`` needs from storage (``uow.conflicts``).

The store implements them in ``gridbridge.store.conflict_repository``. A stored conflict wraps the engine's
``Conflict`` with where and when it was found (the stage: an offer submission, an instruction issue, the
check before instructions go out), the interface's DSO, and whether the TSO may see it; it always has exactly
one ``Resolution`` (a unique foreign key in the store).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gridbridge.domain.conflicts import (
    AmendmentStatus,
    Conflict,
    ConflictKind,
    Outcome,
    Resolution,
    ResolutionPolicy,
    Segment,
)
from gridbridge.domain.market import Instruction, InstructionStatus
from gridbridge.services.ports import Page

LIVE_STATUSES = frozenset(
    {InstructionStatus.ISSUED, InstructionStatus.RECEIVED, InstructionStatus.ACCEPTED, InstructionStatus.ESCALATED}
)
"""Instructions conflict checks count: every one in force that is not rejected or cancelled. An escalated one
(unanswered past its deadline) counts: the device may still follow it."""


def segments_json(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """Setpoint segments as plain JSON values."""
    return [{"start": s.start.isoformat(), "end": s.end.isoformat(), "p_kw": s.p_kw} for s in segments]


def outcome_json(o: Outcome) -> dict[str, Any]:
    """An outcome of a resolution as plain JSON values (also how the store keeps it)."""
    return {
        "subject_type": o.subject_type.value,
        "subject_id": o.subject_id,
        "der_id": o.der_id,
        "issuer_party_id": o.issuer_party_id,
        "recipient_party_id": o.recipient_party_id,
        "action": o.action.value,
        "original_p_kw": o.original_p_kw,
        "schedule": segments_json(o.schedule),
        "reason": o.reason,
        "deadline": o.deadline.isoformat() if o.deadline else None,
    }


@dataclass(frozen=True)
class StoredConflict:
    """A detected conflict as stored, with its one resolution."""

    id: str
    stage: str
    dso_id: str
    tso_visible: bool
    detected_at: datetime
    conflict: Conflict
    resolution: Resolution

    @property
    def kind(self) -> ConflictKind:
        """The failure mode."""
        return self.conflict.kind


@dataclass(frozen=True)
class StoredAmendment:
    """An amendment request to a lower-priority issuer, as stored."""

    id: str
    conflict_id: str
    instruction_id: str
    der_id: str
    addressee_id: str
    requested_at: datetime
    deadline: datetime
    provisional: tuple[Segment, ...]
    reason: str
    status: AmendmentStatus = AmendmentStatus.PENDING
    answered_at: datetime | None = None
    amended_p_kw: float | None = None


@dataclass(frozen=True)
class ConflictScope:
    """Which conflicts a caller may see: everything (observer, platform administrator); the TSO also those
    marked ``tso_visible``; everyone the conflicts it takes part in (listed as a party)."""

    everything: bool = False
    participant_id: str | None = None
    tso: bool = False


@dataclass(frozen=True)
class ConflictFilter:
    """Optional filters of a conflict listing; ``start``/``end`` keep conflicts overlapping the period."""

    tdi_id: str | None = None
    der_id: str | None = None
    kind: ConflictKind | None = None
    start: datetime | None = None
    end: datetime | None = None
    pending_amendment: bool | None = None


class ConflictRepository(Protocol):
    """Conflicts with their resolutions, resolution policies and amendment requests."""

    def add(self, conflict: StoredConflict, party_ids: Sequence[str], amendments: Sequence[StoredAmendment]) -> None:
        """Store a conflict, its resolution, the parties that see it and its amendment requests."""
        ...

    def get(self, conflict_id: str) -> StoredConflict | None:
        """One conflict with its resolution."""
        ...

    def visible(self, conflict_id: str, scope: ConflictScope) -> bool:
        """True when ``scope`` allows the conflict."""
        ...

    def query(self, scope: ConflictScope, page: Page, filters: ConflictFilter) -> list[StoredConflict]:
        """The conflicts ``scope`` allows, filtered, by interval start, detection time and id, paged."""
        ...

    def policy(self, tdi_id: str) -> ResolutionPolicy | None:
        """The stored policy of an interface (None: the domain default applies)."""
        ...

    def save_policy(self, tdi_id: str, policy: ResolutionPolicy, *, at: datetime, by: str) -> None:
        """Create or replace an interface's policy."""
        ...

    def amendments(self, conflict_id: str) -> list[StoredAmendment]:
        """The amendment requests of a conflict."""
        ...

    def amendment(self, request_id: str) -> StoredAmendment | None:
        """One amendment request."""
        ...

    def answer_amendment(self, request_id: str, *, at: datetime, p_kw: float) -> None:
        """Record that a request was answered with an amended setpoint."""
        ...

    def due_amendments(self, before: datetime, addressee_id: str | None) -> list[StoredAmendment]:
        """Pending requests whose deadline is before ``before`` (only ``addressee_id``'s when given), by
        deadline."""
        ...

    def expire_amendment(self, request_id: str) -> None:
        """Mark a pending request ``expired``."""
        ...

    def point_instructions(
        self, connection_point_ids: Sequence[int], start: datetime, end: datetime, *, closed: bool = False
    ) -> list[Instruction]:
        """Live (``LIVE_STATUSES``: issued, received, accepted or escalated) DER-level instructions to any DER at
        ``connection_point_ids`` that overlap or touch ``[start, end]``, in issue order; with ``closed`` the
        rejected and cancelled ones too (they still supersede earlier revisions)."""
        ...

    def der_instructions(self, der_ids: Sequence[str], start: datetime, end: datetime) -> list[Instruction]:
        """Live (``LIVE_STATUSES``) DER-level instructions to ``der_ids`` that overlap or touch ``[start, end]``, in
        issue order."""
        ...

    def instructions(self, instruction_ids: Sequence[str]) -> list[Instruction]:
        """The stored instructions with these ids (any status; missing ids are left out), in no set order."""
        ...

    def adjust_instruction(
        self, instruction_id: str, *, p_kw: float, status: InstructionStatus | None, reason: str
    ) -> None:
        """Set a stored instruction's setpoint (and status, when given) and append ``reason`` to its reason."""
        ...
