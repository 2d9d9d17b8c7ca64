"""T-D interfaces and their dated coordination-model assignments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gridbridge.domain.coordination import CoordinationModel, ModelName, coordination_model
from gridbridge.domain.errors import ValidationFailed, register_code
from gridbridge.domain.validation import require_name, require_non_negative

RETROACTIVE_CHANGE = register_code(
    "tdi.retroactive_model_change", 422, "A coordination-model change may not take effect in the past"
)
MODEL_NOT_IN_FORCE = register_code(
    "tdi.no_model_in_force", 409, "No coordination model is in force at that time for this T-D interface"
)
DUPLICATE_EFFECTIVE_FROM = register_code(
    "tdi.duplicate_effective_from", 409, "A model change with that effective date already exists"
)


@dataclass(eq=False)
class ModelAssignment:
    """A coordination model taking effect at a T-D interface from a date (never retroactive)."""

    id: str
    tdi_id: str
    model: ModelName
    effective_from: datetime
    recorded_at: datetime
    recorded_by: str

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "tdi_id": self.tdi_id,
            "model": self.model.value,
            "effective_from": self.effective_from.isoformat(),
        }


@dataclass(eq=False)
class TDInterface:
    """A transmission node where one local distribution area connects: the unit of T-D coordination."""

    id: str
    name: str
    price_node: str
    dso_id: str
    direct_threshold_kw: float
    import_limit_kw: float
    export_limit_kw: float
    created_at: datetime

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "id": self.id,
            "name": self.name,
            "price_node": self.price_node,
            "dso_id": self.dso_id,
            "direct_threshold_kw": self.direct_threshold_kw,
            "import_limit_kw": self.import_limit_kw,
            "export_limit_kw": self.export_limit_kw,
        }


def validate_tdi_fields(
    name: str, price_node: str, direct_threshold_kw: float, import_limit_kw: float, export_limit_kw: float
) -> tuple[str, str]:
    """Check a T-D interface's fields; return the cleaned name and price node."""
    require_non_negative(direct_threshold_kw, "direct_threshold_kw")
    require_non_negative(import_limit_kw, "import_limit_kw")
    require_non_negative(export_limit_kw, "export_limit_kw")
    return require_name(name, "name"), require_name(price_node, "price_node")


def check_model_change(existing: Sequence[ModelAssignment], effective_from: datetime, now: datetime) -> None:
    """Refuse a model change dated in the past or on a date that already has one."""
    if effective_from < now:
        raise ValidationFailed(
            f"effective_from {effective_from.isoformat()} is before now ({now.isoformat()}); "
            "a coordination-model change is never retroactive",
            field="effective_from",
            code=RETROACTIVE_CHANGE,
        )
    if any(a.effective_from == effective_from for a in existing):
        raise ValidationFailed(
            "a model change already takes effect at that time",
            field="effective_from",
            code=DUPLICATE_EFFECTIVE_FROM,
        )


def assignment_at(assignments: Sequence[ModelAssignment], when: datetime) -> ModelAssignment | None:
    """Return the assignment in force at ``when`` (latest ``effective_from`` not after it), or None."""
    in_force = [a for a in assignments if a.effective_from <= when]
    return max(in_force, key=lambda a: a.effective_from) if in_force else None


def model_at(assignments: Sequence[ModelAssignment], when: datetime) -> CoordinationModel:
    """Return the coordination-model record in force at ``when``; raise if none is."""
    current = assignment_at(assignments, when)
    if current is None:
        raise ValidationFailed(
            f"no coordination model is in force at {when.isoformat()}",
            field="effective_from",
            code=MODEL_NOT_IN_FORCE,
        )
    return coordination_model(current.model)
