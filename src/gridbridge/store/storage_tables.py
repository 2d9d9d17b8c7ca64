"""Tables of storage state: state-of-charge readings of storage DERs (migration ``0007``).

A storage DER's declared round-trip efficiency is a column of ``ders`` (``store/tables.py``); readings are
append-only rows here, read by ``storage_repository``.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, String, Table

from gridbridge.store.base import Base
from gridbridge.store.types import UtcDateTime

metadata = Base.metadata
ID = String(36)

state_of_charge_readings = Table(
    "state_of_charge_readings",
    metadata,
    Column("id", ID, primary_key=True),
    Column("der_id", ID, ForeignKey("ders.id"), nullable=False),
    Column("soc_kwh", Float, nullable=False),
    Column("measured_at", UtcDateTime(), nullable=False),
    Column("reported_at", UtcDateTime(), nullable=False),
    Column("reported_by", ID, ForeignKey("participants.id"), nullable=False),
    Index("ix_state_of_charge_readings_der_measured", "der_id", "measured_at"),
)
