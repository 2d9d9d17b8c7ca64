"""Storage state of DERs: state-of-charge readings that conflict detection starts from (docs/conflicts.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, Strict
from gridbridge.domain.der import Der
from gridbridge.services import storage as service
from gridbridge.services.context import Context
from gridbridge.services.storage_ports import StateOfChargeReading

router = APIRouter(tags=["storage"])
DerId = Annotated[str, Path(max_length=64)]


class StateOfChargeIn(Strict):
    measured_at: AwareDatetime = Field(description="When the stored energy was measured (not after now)")
    soc_kwh: float | None = Field(default=None, ge=0, description="Stored energy, kWh (or give soc_fraction)")
    soc_fraction: float | None = Field(default=None, ge=0, le=1, description="Stored energy as a fraction of e_kwh")


class StateOfChargeOut(Out):
    id: str
    der_id: str
    soc_kwh: float
    soc_fraction: float | None
    measured_at: datetime
    reported_at: datetime
    reported_by: str


class LatestStateOfChargeOut(Out):
    der_id: str
    e_kwh: float | None
    latest: StateOfChargeOut | None
    """The reading measured last (``null`` without one)."""


def _render(reading: StateOfChargeReading, der: Der) -> StateOfChargeOut:
    return StateOfChargeOut.model_validate(service.reading_json(reading, der))


@router.post(
    "/ders/{der_id}/state-of-charge",
    response_model=StateOfChargeOut,
    status_code=201,
    summary="Report a storage DER's state of charge (owner, representative or DSO)",
)
def report_state_of_charge(der_id: DerId, body: StateOfChargeIn, commands: CommandsDep) -> JSONResponse:
    """The DER's owner, representative or DSO reports the energy stored at ``measured_at``, in kWh or as a
    fraction of the DER's ``e_kwh``; conflict checks of the DER start from the latest reading."""

    def run(ctx: Context) -> StateOfChargeOut:
        reading = service.report_state_of_charge(
            ctx, der_id, measured_at=body.measured_at, soc_kwh=body.soc_kwh, soc_fraction=body.soc_fraction
        )
        der, _ = service.latest_state_of_charge(ctx, der_id)
        return _render(reading, der)

    return commands.run(run, lambda out: out, payload=body, status_code=201)


@router.get(
    "/ders/{der_id}/state-of-charge",
    response_model=LatestStateOfChargeOut,
    summary="The latest state-of-charge reading of a DER",
)
def latest_state_of_charge(der_id: DerId, commands: CommandsDep) -> LatestStateOfChargeOut:
    """The latest reading of a DER the caller may see (404 otherwise, exactly as for a missing one)."""

    def read(ctx: Context) -> LatestStateOfChargeOut:
        der, reading = service.latest_state_of_charge(ctx, der_id)
        return LatestStateOfChargeOut(
            der_id=der.id, e_kwh=der.e_kwh, latest=_render(reading, der) if reading is not None else None
        )

    result: LatestStateOfChargeOut = commands.query(read, lambda x: x)
    return result
