"""Tables of the database-backed envelope workflows: per-interface settings, network events, envelope runs,
stored envelopes (drafts and published versions), network-state notifications, hosting-capacity assessments.

Connection points are referenced by id without a foreign key in ``operating_envelopes`` and
``network_notifications``: envelopes are derived data and history, and must not stop a network model from
being replaced (a point whose name survives a replace keeps its id; see docs/network.md).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gridbridge.domain.envelope_publication import EnvelopeCause, RunStatus, RunTrigger
from gridbridge.domain.envelopes import AllocationPolicy
from gridbridge.domain.network_state import NetworkEventKind, NotificationKind
from gridbridge.store.base import Base
from gridbridge.store.types import UtcDateTime, enum_column

metadata = Base.metadata
ID = String(36)
NAME = String(200)

envelope_settings = Table(
    "envelope_settings",
    metadata,
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), primary_key=True),
    Column("v_min_pu", Float, nullable=False),
    Column("v_max_pu", Float, nullable=False),
    Column("max_loading_pct", Float, nullable=False),
    Column("policy", enum_column(AllocationPolicy), nullable=False),
    Column("interval_minutes", Integer, nullable=False),
    Column("horizon_hours", Integer, nullable=False),
    Column("reverse_flow_limit_kw", Float, nullable=True),
    Column("point_cap_kw", Float, nullable=False),
    Column("default_export_kw", Float, nullable=False),
    Column("default_import_kw", Float, nullable=False),
    Column("default_unapproved_export_kw", Float, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", ID, nullable=False),
)

network_events = Table(
    "network_events",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False, index=True),
    Column("kind", enum_column(NetworkEventKind), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("open_elements", JSON, nullable=False),
    Column("close_elements", JSON, nullable=False),
    Column("derates", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("recorded_by", ID, nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_network_events_tdi_window", "tdi_id", "starts_at", "ends_at"),
)

envelope_runs = Table(
    "envelope_runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False, index=True),
    Column("status", enum_column(RunStatus), nullable=False, index=True),
    Column("trigger", enum_column(RunTrigger), nullable=False),
    Column("requested_by", ID, nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("start", UtcDateTime(), nullable=False),
    Column("intervals", Integer, nullable=False),
    Column("interval_minutes", Integer, nullable=False),
    Column("policy", enum_column(AllocationPolicy), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("event_id", ID, ForeignKey("network_events.id"), nullable=True, index=True),
    Column("computed_at", UtcDateTime(), nullable=True),
    Column("published_at", UtcDateTime(), nullable=True),
    Column("published_by", ID, nullable=True),
    Column("envelope_count", Integer, nullable=False),
    Column("log", JSON, nullable=True),
    Column("summary", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("replaced_by", ID, nullable=True),
)

operating_envelopes = Table(
    "operating_envelopes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False, index=True),
    Column("connection_point_id", Integer, nullable=False),
    Column("connection_point", NAME, nullable=False),
    Column("interval_start", UtcDateTime(), nullable=False),
    Column("interval_end", UtcDateTime(), nullable=False),
    Column("p_export_max_kw", Float, nullable=False),
    Column("p_import_max_kw", Float, nullable=False),
    Column("binding_export", String(300), nullable=False),
    Column("binding_import", String(300), nullable=False),
    Column("expiry", UtcDateTime(), nullable=False),
    Column("cause", enum_column(EnvelopeCause), nullable=False),
    Column("status", String(64), nullable=False),
    Column("run_id", ID, ForeignKey("envelope_runs.id"), nullable=True, index=True),
    Column("event_id", ID, ForeignKey("network_events.id"), nullable=True),
    Column("issued_at", UtcDateTime(), nullable=True),
    Column("version", Integer, nullable=True),
    Column("superseded_at", UtcDateTime(), nullable=True),
    UniqueConstraint(
        "connection_point_id",
        "interval_start",
        "interval_end",
        "version",
        name="uq_operating_envelopes_point_interval_version",
    ),
    Index("ix_operating_envelopes_point_time", "connection_point_id", "interval_start", "interval_end"),
)

network_notifications = Table(
    "network_notifications",
    metadata,
    Column("id", ID, primary_key=True),
    Column("recipient_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False, index=True),
    Column("event_id", ID, ForeignKey("network_events.id"), nullable=False, index=True),
    Column("kind", enum_column(NotificationKind), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("message", Text, nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("connection_point_ids", JSON, nullable=False),
    Column("de_energised_point_ids", JSON, nullable=False),
    Column("der_ids", JSON, nullable=False),
    Column("zeroed_envelopes", Integer, nullable=False),
    Column("queued_run_id", ID, nullable=True),
)

hosting_assessments = Table(
    "hosting_assessments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("der_id", ID, ForeignKey("ders.id"), nullable=False, index=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False),
    Column("connection_point_id", Integer, nullable=False),
    Column("connection_point", NAME, nullable=False),
    Column("computed_at", UtcDateTime(), nullable=False),
    Column("study_start", UtcDateTime(), nullable=False),
    Column("intervals", Integer, nullable=False),
    Column("interval_minutes", Integer, nullable=False),
    Column("p_export_max_kw", Float, nullable=False),
    Column("binding_export", String(300), nullable=False),
    Column("p_import_max_kw", Float, nullable=False),
    Column("binding_import", String(300), nullable=False),
    Column("requested_export_kw", Float, nullable=False),
    Column("requested_import_kw", Float, nullable=False),
    Column("exceeds", Boolean, nullable=False),
    Column("binding_element", String(300), nullable=True),
    Column("status_export", String(64), nullable=False),
    Column("status_import", String(64), nullable=False),
    Column("review_id", ID, ForeignKey("der_reviews.id"), nullable=True),
    Column("log", JSON, nullable=False),
)
