"""Tables of the settlement flags (migration ``0009_settlement_flags``): per double-counting conflict and
commitment (one DER's share of one offer) and interval, the kW settlement may pay and the kW it may not.

A flag belongs to its conflict (cascading foreign key); DERs and offers are referenced by id like the conflict
records, so a flag stays readable as the record of what was decided.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Index, String, Table

from gridbridge.domain.conflicts import Direction
from gridbridge.domain.market import ResourceKind
from gridbridge.domain.roles import Service
from gridbridge.store.base import Base
from gridbridge.store.types import UtcDateTime, enum_column

metadata = Base.metadata
ID = String(36)
REF = String(48)

settlement_flags = Table(
    "settlement_flags",
    metadata,
    Column("conflict_id", ID, ForeignKey("conflicts.id", ondelete="CASCADE"), primary_key=True),
    Column("commitment_id", String(120), primary_key=True),
    Column("interval_start", UtcDateTime(), primary_key=True),
    Column("interval_end", UtcDateTime(), nullable=False),
    Column("der_id", REF, nullable=False),
    Column("offer_id", ID, nullable=False, index=True),
    Column("holder_kind", enum_column(ResourceKind), nullable=False),
    Column("holder_id", ID, nullable=False),
    Column("service", enum_column(Service), nullable=False),
    Column("direction", enum_column(Direction), nullable=False),
    Column("committed_kw", Float, nullable=False),
    Column("firm_kw", Float, nullable=False),
    Column("not_payable_kw", Float, nullable=False),
    Column("tdi_id", ID, nullable=False),
    Column("dso_id", ID, nullable=False, index=True),
    Column("buyer_id", ID, nullable=False),
    Column("provider_id", ID, nullable=False, index=True),
    Column("owner_id", ID, nullable=False, index=True),
    Column("tso_visible", Boolean, nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("superseded_at", UtcDateTime(), nullable=True),
    Index("ix_settlement_flags_der_interval", "der_id", "interval_start"),
    Index("ix_settlement_flags_commitment", "commitment_id", "interval_start"),
)
