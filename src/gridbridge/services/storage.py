"""Storage state on the platform: state-of-charge readings of storage DERs (docs/conflicts.md).

A storage DER's owner, its representative (aggregator) or its DSO reports the energy stored at a moment
(``report_state_of_charge``, ``POST /ders/{id}/state-of-charge``); anyone who may see the DER reads the latest
one (``latest_state_of_charge``). Conflict detection starts a storage DER's state-of-energy trajectory from the
latest reading measured at or before the start of the checked horizon, and from the most favourable state of
charge when there is none (``services.conflicts``). A reading changes no instruction by itself: the next check
of the DER (an instruction issued, a network change, the check before dispatch) uses it.
"""

from __future__ import annotations

import math
from datetime import datetime

from gridbridge.domain.der import Der, Technology
from gridbridge.domain.errors import PermissionDenied, ValidationFailed, register_code
from gridbridge.domain.permissions import is_system
from gridbridge.domain.roles import Role
from gridbridge.domain.validation import OUT_OF_RANGE, REQUIRED
from gridbridge.services.context import Context
from gridbridge.services.ders import get_der
from gridbridge.services.storage_ports import StateOfChargeReading

NOT_STORAGE = register_code(
    "storage.not_storage", 422, "A state of charge is only reported for a storage DER with an energy capacity"
)
SOC_ONE_OF = register_code(
    "storage.soc_one_of", 422, "A state-of-charge reading gives exactly one of soc_kwh and soc_fraction"
)
READING_IN_FUTURE = register_code("storage.reading_in_future", 422, "A state-of-charge reading is measured after now")

REPORTING_ROLES = frozenset({Role.DSO, Role.AGGREGATOR, Role.DER_OWNER})
"""Roles that may report a state of charge (each only for DERs it owns, represents or operates the network of)."""


def _storage_der(ctx: Context, der_id: str) -> Der:
    der = get_der(ctx, der_id)
    if der.technology is not Technology.STORAGE or not der.e_kwh:
        raise ValidationFailed(
            f"DER {der.id} is {der.technology.value} without an energy capacity; only storage has a state of charge",
            field="der_id",
            code=NOT_STORAGE,
            details={"technology": der.technology.value},
        )
    return der


def report_state_of_charge(
    ctx: Context,
    der_id: str,
    *,
    measured_at: datetime,
    soc_kwh: float | None = None,
    soc_fraction: float | None = None,
) -> StateOfChargeReading:
    """The DER's owner, its representative or its DSO (or the platform administrator) reports the energy stored
    in a storage DER at ``measured_at`` (not after now), as kWh or as a fraction of ``e_kwh`` (exactly one).

    A role that never reports is refused (``auth.forbidden``) before the DER is looked up; a DER the caller may
    not see answers ``not_found`` like a missing one; one it sees but does not own, represent or operate the
    network of is refused (``auth.forbidden``). Raises ``storage.not_storage`` for a DER without storage,
    ``storage.soc_one_of``, ``validation.out_of_range`` (outside ``[0, e_kwh]`` or ``[0, 1]``),
    ``storage.reading_in_future``. Stores the reading (in kWh) and audits it; nothing is written on error.
    """
    caller = ctx.caller
    if not (is_system(caller) or caller.role in REPORTING_ROLES):
        raise PermissionDenied("only a DER's owner, representative or DSO reports its state of charge", field="der_id")
    der = get_der(ctx, der_id)
    if not is_system(caller) and caller.participant_id not in (der.owner_id, der.representative_id, der.dso_id):
        raise PermissionDenied(
            "only the DER's owner, representative or DSO reports its state of charge", field="der_id"
        )
    der = _storage_der(ctx, der_id)
    assert der.e_kwh is not None
    if (soc_kwh is None) == (soc_fraction is None):
        both = soc_kwh is not None
        raise ValidationFailed(
            "give exactly one of soc_kwh and soc_fraction", field="soc_kwh", code=SOC_ONE_OF if both else REQUIRED
        )
    if soc_fraction is not None:
        if not (math.isfinite(soc_fraction) and 0.0 <= soc_fraction <= 1.0):
            raise ValidationFailed(
                f"soc_fraction must be between 0 and 1, got {soc_fraction}", field="soc_fraction", code=OUT_OF_RANGE
            )
        value = soc_fraction * der.e_kwh
    else:
        assert soc_kwh is not None
        if not (math.isfinite(soc_kwh) and 0.0 <= soc_kwh <= der.e_kwh):
            raise ValidationFailed(
                f"soc_kwh must be between 0 and the DER's {der.e_kwh:g} kWh, got {soc_kwh}",
                field="soc_kwh",
                code=OUT_OF_RANGE,
                details={"e_kwh": der.e_kwh},
            )
        value = soc_kwh
    if measured_at.tzinfo is None or measured_at.utcoffset() is None:
        raise ValidationFailed("measured_at must be timezone-aware", field="measured_at", code=REQUIRED)
    now = ctx.clock.now()
    if measured_at > now:
        raise ValidationFailed(
            f"measured_at {measured_at.isoformat()} is after now ({now.isoformat()})",
            field="measured_at",
            code=READING_IN_FUTURE,
        )
    reading = StateOfChargeReading(
        id=ctx.new_id(),
        der_id=der.id,
        soc_kwh=float(value),
        measured_at=measured_at,
        reported_at=now,
        reported_by=caller.participant_id,
    )
    ctx.uow.state_of_charge.add(reading)
    ctx.audit("der.state_of_charge", "der", der.id, None, reading_json(reading, der))
    return reading


def latest_state_of_charge(ctx: Context, der_id: str) -> tuple[Der, StateOfChargeReading | None]:
    """The DER (any DER the caller may see; others answer ``not_found``) and its latest reading (``None``
    without one, or for a DER without storage)."""
    der = get_der(ctx, der_id)
    return der, ctx.uow.state_of_charge.latest(der.id)


def reading_json(reading: StateOfChargeReading, der: Der) -> dict[str, object]:
    """A reading as plain JSON values, with its fraction of the DER's capacity."""
    return {
        "id": reading.id,
        "der_id": reading.der_id,
        "soc_kwh": reading.soc_kwh,
        "soc_fraction": reading.soc_kwh / der.e_kwh if der.e_kwh else None,
        "measured_at": reading.measured_at.isoformat(),
        "reported_at": reading.reported_at.isoformat(),
        "reported_by": reading.reported_by,
    }


__all__ = ["latest_state_of_charge", "reading_json", "report_state_of_charge"]
