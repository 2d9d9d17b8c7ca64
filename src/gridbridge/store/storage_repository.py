"""SQL implementation of the storage-state port (``uow.state_of_charge``) on ``storage_tables``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import RowMapping, and_, insert, select
from sqlalchemy.orm import Session

from gridbridge.services.storage_ports import StateOfChargeReading
from gridbridge.store.storage_tables import state_of_charge_readings

_CHUNK = 500


def _reading(r: RowMapping) -> StateOfChargeReading:
    return StateOfChargeReading(
        id=r["id"],
        der_id=r["der_id"],
        soc_kwh=float(r["soc_kwh"]),
        measured_at=r["measured_at"],
        reported_at=r["reported_at"],
        reported_by=r["reported_by"],
    )


class SqlStateOfCharge:
    """State-of-charge readings on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, reading: StateOfChargeReading) -> None:
        self.session.execute(
            insert(state_of_charge_readings).values(
                id=reading.id,
                der_id=reading.der_id,
                soc_kwh=reading.soc_kwh,
                measured_at=reading.measured_at,
                reported_at=reading.reported_at,
                reported_by=reading.reported_by,
            )
        )

    def latest(self, der_id: str, at: datetime | None = None) -> StateOfChargeReading | None:
        t = state_of_charge_readings.c
        where = [t.der_id == der_id] + ([t.measured_at <= at] if at is not None else [])
        query = (
            select(state_of_charge_readings)
            .where(and_(*where))
            .order_by(t.measured_at.desc(), t.reported_at.desc(), t.id.desc())
            .limit(1)
        )
        row = self.session.execute(query).mappings().first()
        return _reading(row) if row is not None else None

    def latest_many(self, der_ids: Sequence[str], at: datetime) -> Mapping[str, StateOfChargeReading]:
        t = state_of_charge_readings.c
        out: dict[str, StateOfChargeReading] = {}
        ids = sorted(set(der_ids))
        for k in range(0, len(ids), _CHUNK):
            query = (
                select(state_of_charge_readings)
                .where(and_(t.der_id.in_(ids[k : k + _CHUNK]), t.measured_at <= at))
                .order_by(t.der_id, t.measured_at, t.reported_at, t.id)
            )
            for row in self.session.execute(query).mappings():
                out[row["der_id"]] = _reading(row)  # ordered ascending: the last one per DER wins
        return out
