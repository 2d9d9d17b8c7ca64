"""Tables of conflict management: detected conflicts, their one resolution each, who may see them, the
per-interface resolution policies and the amendment requests (migration ``0004_conflicts``).

Plain SQLAlchemy Core tables; ``conflict_repository`` reads rows into plain records. A conflict names the
instructions (or offer commitments) involved by id without foreign keys, like the notifications table, so
that a conflict over offers and one over instructions share one table. ``conflict_parties`` lists every
participant that takes part (issuers, recipients, DER owners and representatives, the interface's DSO):
visibility for everyone but the TSO and the observer is a join on it.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from gridbridge.domain.conflicts import AmendmentStatus, ConflictKind, ResolutionRule
from gridbridge.store.base import Base
from gridbridge.store.types import UtcDateTime, enum_column

metadata = Base.metadata
ID = String(36)
REF = String(48)

conflicts = Table(
    "conflicts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("detection_key", String(200), nullable=False),
    Column("kind", enum_column(ConflictKind), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("tdi_id", ID, nullable=False, index=True),
    Column("dso_id", ID, nullable=False, index=True),
    Column("der_id", REF, nullable=True, index=True),
    Column("der_ids", JSON, nullable=False),
    Column("connection_point_id", String(48), nullable=True),
    Column("interval_start", UtcDateTime(), nullable=False),
    Column("interval_end", UtcDateTime(), nullable=False),
    Column("intervals", JSON, nullable=False),
    Column("instruction_ids", JSON, nullable=False),
    Column("commitment_ids", JSON, nullable=False),
    Column("party_ids", JSON, nullable=False),
    Column("figures", JSON, nullable=False),
    Column("series", JSON, nullable=False),
    Column("pairs", JSON, nullable=False),
    Column("summary", Text, nullable=False),
    Column("tso_visible", Boolean, nullable=False),
    Column("detected_at", UtcDateTime(), nullable=False),
    Index("ix_conflicts_period", "interval_start", "interval_end"),
)

conflict_parties = Table(
    "conflict_parties",
    metadata,
    Column("conflict_id", ID, ForeignKey("conflicts.id", ondelete="CASCADE"), primary_key=True),
    Column("party_id", ID, primary_key=True, index=True),
)

conflict_resolutions = Table(
    "conflict_resolutions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("conflict_id", ID, ForeignKey("conflicts.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("rule", enum_column(ResolutionRule), nullable=False),
    Column("binding_limit", Text, nullable=True),
    Column("decided_at", UtcDateTime(), nullable=False),
    Column("outcomes", JSON, nullable=False),
    Column("summary", Text, nullable=False),
)

resolution_policies = Table(
    "resolution_policies",
    metadata,
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), primary_key=True),
    Column("priorities", JSON, nullable=False),
    Column("rules", JSON, nullable=False),
    Column("amendment_window_min", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", ID, nullable=False),
)

amendment_requests = Table(
    "amendment_requests",
    metadata,
    Column("id", ID, primary_key=True),
    Column("conflict_id", ID, ForeignKey("conflicts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("instruction_id", REF, nullable=False),
    Column("der_id", REF, nullable=False),
    Column("addressee_id", ID, nullable=False, index=True),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("deadline", UtcDateTime(), nullable=False),
    Column("provisional", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", enum_column(AmendmentStatus), nullable=False),
    Column("answered_at", UtcDateTime(), nullable=True),
    Column("amended_p_kw", Float, nullable=True),
)
