"""Distributed energy resources: what they are, and the lifecycle rules applied to them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gridbridge.domain.errors import ValidationFailed, register_code
from gridbridge.domain.lifecycle import DerAction, DerStatus, next_status
from gridbridge.domain.offers import Product
from gridbridge.domain.validation import OUT_OF_RANGE, require_name, require_non_negative, require_positive

STORAGE_NEEDS_ENERGY = register_code("der.storage_needs_energy", 422, "A storage DER needs a positive e_kwh")
ENERGY_ONLY_FOR_STORAGE = register_code(
    "der.energy_only_for_storage", 422, "e_kwh is only meaningful for storage and EV charging"
)
EFFICIENCY_ONLY_FOR_STORAGE = register_code(
    "der.efficiency_only_for_storage", 422, "round_trip_efficiency is only meaningful for storage and EV charging"
)
NO_CAPACITY = register_code("der.no_capacity", 422, "A DER needs a positive p_export_kw or p_import_kw")
LIMIT_ABOVE_CAPACITY = register_code(
    "der.limit_above_capacity", 422, "A static limit may not exceed the DER's own capability"
)
REASON_REQUIRED = register_code("review.reason_required", 422, "A review decision needs a stated reason")


class Technology(StrEnum):
    """DER technology."""

    PV = "pv"
    STORAGE = "storage"
    DEMAND_RESPONSE = "demand_response"
    EV_CHARGING = "ev_charging"
    CHP = "chp"
    OTHER = "other"


class MeterPosition(StrEnum):
    """Where the DER sits relative to the customer's revenue meter."""

    BEHIND_THE_METER = "behind_the_meter"
    FRONT_OF_THE_METER = "front_of_the_meter"


class ReviewDecision(StrEnum):
    """Outcome of an LDC technical review."""

    APPROVED = "approved"
    REJECTED = "rejected"


_ENERGY_TECHNOLOGIES = frozenset({Technology.STORAGE, Technology.EV_CHARGING})


@dataclass(frozen=True)
class DerSpec:
    """What an interconnection request says about a DER (validated by ``validate``)."""

    name: str
    technology: Technology
    p_export_kw: float
    p_import_kw: float
    e_kwh: float | None
    ramp_kw_per_min: float | None
    meter_position: MeterPosition
    round_trip_efficiency: float | None = None
    """Storage only: energy out over energy in, in (0, 1]; ``None`` leaves the deployment's default
    (``GRIDBRIDGE_STORAGE_ROUND_TRIP_EFFICIENCY``) to conflict detection."""

    def validate(self) -> DerSpec:
        """Return a cleaned copy, or raise ``ValidationFailed`` naming the field and rule."""
        name = require_name(self.name, "name")
        require_non_negative(self.p_export_kw, "p_export_kw")
        require_non_negative(self.p_import_kw, "p_import_kw")
        if self.p_export_kw == 0 and self.p_import_kw == 0:
            raise ValidationFailed("p_export_kw and p_import_kw are both 0", field="p_export_kw", code=NO_CAPACITY)
        if self.technology is Technology.STORAGE and self.e_kwh is None:
            raise ValidationFailed("storage needs e_kwh", field="e_kwh", code=STORAGE_NEEDS_ENERGY)
        if self.e_kwh is not None:
            if self.technology not in _ENERGY_TECHNOLOGIES:
                raise ValidationFailed(
                    f"e_kwh is not used for {self.technology.value}",
                    field="e_kwh",
                    code=ENERGY_ONLY_FOR_STORAGE,
                )
            require_positive(self.e_kwh, "e_kwh")
        if self.ramp_kw_per_min is not None:
            require_positive(self.ramp_kw_per_min, "ramp_kw_per_min")
        rte = self.round_trip_efficiency
        if rte is not None:
            if self.technology not in _ENERGY_TECHNOLOGIES:
                raise ValidationFailed(
                    f"round_trip_efficiency is not used for {self.technology.value}",
                    field="round_trip_efficiency",
                    code=EFFICIENCY_ONLY_FOR_STORAGE,
                )
            require_round_trip_efficiency(rte)
        return DerSpec(
            name,
            self.technology,
            float(self.p_export_kw),
            float(self.p_import_kw),
            self.e_kwh,
            self.ramp_kw_per_min,
            self.meter_position,
            float(rte) if rte is not None else None,
        )


def require_round_trip_efficiency(value: float, field: str = "round_trip_efficiency") -> float:
    """Return ``value`` if it is a round-trip efficiency, ``0 < value <= 1``; else raise
    ``validation.out_of_range`` naming ``field``."""
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValidationFailed(f"{field} must be in (0, 1], got {value}", field=field, code=OUT_OF_RANGE)
    return float(value)


@dataclass(eq=False)
class Der:
    """A DER registered on the platform, at one connection point under one T-D interface and LDC."""

    id: str
    name: str
    technology: Technology
    p_export_kw: float
    p_import_kw: float
    e_kwh: float | None
    ramp_kw_per_min: float | None
    meter_position: MeterPosition
    owner_id: str
    representative_id: str | None
    connection_point_id: int
    tdi_id: str
    dso_id: str
    dso_affiliated: bool
    status: DerStatus
    requested_at: datetime
    review_due_at: datetime
    export_limit_kw: float | None = None
    import_limit_kw: float | None = None
    market_participating: bool = False
    round_trip_efficiency: float | None = None
    """Storage: the declared round-trip efficiency (``None``: the deployment's default applies)."""
    market_products: frozenset[Product] = frozenset()
    """The wholesale products the DER is registered for when it offers on its own (set on commissioning to what its
    technology can provide; changed by its owner or representative)."""
    updated_at: datetime | None = None
    reviews: list[DerReview] = field(default_factory=list)

    @property
    def capacity_kw(self) -> float:
        """The larger of the DER's export and import capability (its size for thresholds and factors)."""
        return max(self.p_export_kw, self.p_import_kw)

    def move(self, action: DerAction, now: datetime) -> None:
        """Apply a lifecycle move, or raise ``der.illegal_transition`` naming the state and allowed moves."""
        self.status = next_status(self.status, action)
        self.updated_at = now

    def approve(self, export_limit_kw: float, import_limit_kw: float, now: datetime) -> None:
        """Approve with static limits no larger than the DER's capability."""
        for value, cap, fld in (
            (export_limit_kw, self.p_export_kw, "export_limit_kw"),
            (import_limit_kw, self.p_import_kw, "import_limit_kw"),
        ):
            require_non_negative(value, fld)
            if value > cap:
                raise ValidationFailed(
                    f"{fld} {value} exceeds the DER's capability {cap}", field=fld, code=LIMIT_ABOVE_CAPACITY
                )
        self.move(DerAction.APPROVE, now)
        self.export_limit_kw = export_limit_kw
        self.import_limit_kw = import_limit_kw

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "id": self.id,
            "name": self.name,
            "technology": self.technology.value,
            "p_export_kw": self.p_export_kw,
            "p_import_kw": self.p_import_kw,
            "e_kwh": self.e_kwh,
            "round_trip_efficiency": self.round_trip_efficiency,
            "status": self.status.value,
            "connection_point_id": self.connection_point_id,
            "owner_id": self.owner_id,
            "representative_id": self.representative_id,
            "export_limit_kw": self.export_limit_kw,
            "import_limit_kw": self.import_limit_kw,
            "market_participating": self.market_participating,
            "market_products": sorted(p.value for p in self.market_products),
        }


@dataclass(eq=False)
class DerReview:
    """An LDC technical-review decision on an interconnection request."""

    id: str
    der_id: str
    decision: ReviewDecision
    reason: str
    attachments: list[str]
    decided_by: str
    decided_at: datetime
    hosting_capacity_kw: float | None = None


def require_reason(reason: str | None, field: str = "reason") -> str:
    """Return a stripped, non-empty reason or raise ``review.reason_required``."""
    if reason is None or not reason.strip():
        raise ValidationFailed("a decision needs a stated reason", field=field, code=REASON_REQUIRED)
    return reason.strip()
