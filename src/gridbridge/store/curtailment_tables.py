"""Tables of transparent curtailment: the DSOs' published procedures (versioned per T-D interface) and the
curtailment events applied under them, with every DER's share and what each party was told.

DERs and instructions are referenced by id without foreign keys in ``curtailment_shares``: the shares are a
record of what was decided and must outlive a DER's retirement or an instruction's clean-up.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from gridbridge.domain.conflicts import ParticipationGroup
from gridbridge.store.base import Base
from gridbridge.store.types import UtcDateTime, enum_column

metadata = Base.metadata
ID = String(36)

curtailment_procedures = Table(
    "curtailment_procedures",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False),
    Column("dso_id", ID, nullable=False),
    Column("version", Integer, nullable=False),
    Column("rule", String(32), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("dso_aggregated_pct", Float, nullable=True),
    Column("effective_from", UtcDateTime(), nullable=False),
    Column("published_at", UtcDateTime(), nullable=False),
    Column("published_by", ID, nullable=False),
    Column("note", Text, nullable=False),
    UniqueConstraint("tdi_id", "version", name="uq_curtailment_procedures_tdi_version"),
    UniqueConstraint("tdi_id", "effective_from", name="uq_curtailment_procedures_tdi_effective_from"),
)

curtailment_events = Table(
    "curtailment_events",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False),
    Column("dso_id", ID, nullable=False, index=True),
    Column("procedure_id", ID, ForeignKey("curtailment_procedures.id"), nullable=False),
    Column("procedure_version", Integer, nullable=False),
    Column("rule", Text, nullable=False),
    Column("required_kw", Float, nullable=False),
    Column("available_kw", Float, nullable=False),
    Column("dso_aggregated_kw", Float, nullable=False),
    Column("direct_kw", Float, nullable=False),
    Column("window_start", UtcDateTime(), nullable=False),
    Column("window_end", UtcDateTime(), nullable=False),
    Column("connection_point_ids", JSON, nullable=False),
    Column("feeder", String(200), nullable=True),
    Column("reason", Text, nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("requested_by", ID, nullable=False),
    Column("requested_for", ID, nullable=False),
    Index("ix_curtailment_events_tdi_window", "tdi_id", "window_start", "window_end"),
)

curtailment_shares = Table(
    "curtailment_shares",
    metadata,
    Column("event_id", ID, ForeignKey("curtailment_events.id"), primary_key=True),
    Column("der_id", ID, primary_key=True),
    Column("position", Integer, nullable=False),
    Column("party_id", ID, nullable=False, index=True),
    Column("owner_id", ID, nullable=False, index=True),
    Column("participation", enum_column(ParticipationGroup), nullable=False),
    Column("dso_affiliated", Boolean, nullable=False),
    Column("p_export_kw", Float, nullable=False),
    Column("export_source", String(200), nullable=False),
    Column("capacity_kw", Float, nullable=False),
    Column("offer_price_cad_per_mwh", String(64), nullable=True),
    Column("connected_at", UtcDateTime(), nullable=True),
    Column("share_kw", Float, nullable=False),
    Column("rule", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("instruction_id", String(64), nullable=True),
)

curtailment_notices = Table(
    "curtailment_notices",
    metadata,
    Column("event_id", ID, ForeignKey("curtailment_events.id"), primary_key=True),
    Column("party_id", ID, primary_key=True),
    Column("share_kw", Float, nullable=False),
    Column("der_ids", JSON, nullable=False),
    Column("rule", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("instruction_id", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)
