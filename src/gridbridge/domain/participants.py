"""Participants, their users and API tokens (white paper Table 3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gridbridge.domain.errors import ValidationFailed, register_code
from gridbridge.domain.roles import DsoKind, Role
from gridbridge.domain.validation import require_name

DSO_KIND_MISPLACED = register_code(
    "participant.dso_kind_misplaced", 422, "dso_kind is only meaningful for participants with role dso"
)


@dataclass(eq=False)
class Participant:
    """An organisation on the platform: the TSO, an LDC/DSO, an aggregator, a DER owner or an observer."""

    id: str
    name: str
    role: Role
    dso_kind: DsoKind | None
    created_at: datetime

    @staticmethod
    def new(id: str, name: str, role: Role, dso_kind: DsoKind | None, now: datetime) -> Participant:
        """Create a validated participant; ``dso_kind`` defaults to ``ldc`` for a DSO and is refused otherwise."""
        name = require_name(name, "name")
        if role is Role.DSO:
            dso_kind = dso_kind or DsoKind.LDC
        elif dso_kind is not None:
            raise ValidationFailed("dso_kind may only be given for role dso", field="dso_kind", code=DSO_KIND_MISPLACED)
        return Participant(id=id, name=name, role=role, dso_kind=dso_kind, created_at=now)

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "dso_kind": self.dso_kind.value if self.dso_kind else None,
        }


@dataclass(eq=False)
class User:
    """A person or system account; belongs to exactly one participant and acts in its role."""

    id: str
    participant_id: str
    username: str
    created_at: datetime

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {"id": self.id, "participant_id": self.participant_id, "username": self.username}


@dataclass(eq=False)
class ApiToken:
    """An API token of one user. Only the SHA-256 hash of the secret is kept."""

    id: str
    user_id: str
    token_hash: str
    label: str
    created_at: datetime
    revoked_at: datetime | None = None

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail (never the hash)."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "label": self.label,
            "revoked": self.revoked_at is not None,
        }
