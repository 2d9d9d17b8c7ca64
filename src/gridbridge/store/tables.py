"""Registry tables and their mapping onto the domain classes (imperative mapping keeps the domain pure)."""

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
from sqlalchemy.orm import relationship

from gridbridge.domain.aggregation import (
    Aggregation,
    AggregationMarket,
    AggregationMember,
    MarketStatus,
    MemberStatus,
    RejectionCategory,
)
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.der import Der, DerReview, MeterPosition, ReviewDecision, Technology
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.offers import Product
from gridbridge.domain.participants import ApiToken, Participant, User
from gridbridge.domain.roles import DsoKind, Role, Service
from gridbridge.domain.tdi import ModelAssignment, TDInterface
from gridbridge.store.base import Base
from gridbridge.store.types import EnumSet, UtcDateTime, enum_column

metadata = Base.metadata
ID = String(36)

participants = Table(
    "participants",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", enum_column(Role), nullable=False),
    Column("dso_kind", enum_column(DsoKind), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("username", String(200), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("label", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

td_interfaces = Table(
    "td_interfaces",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("price_node", String(200), nullable=False),
    Column("dso_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("direct_threshold_kw", Float, nullable=False),
    Column("import_limit_kw", Float, nullable=False),
    Column("export_limit_kw", Float, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

tdi_model_assignments = Table(
    "tdi_model_assignments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False, index=True),
    Column("model", enum_column(ModelName), nullable=False),
    Column("effective_from", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("recorded_by", ID, nullable=False),
    UniqueConstraint("tdi_id", "effective_from", name="uq_tdi_model_assignments_tdi_effective"),
)

ders = Table(
    "ders",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("technology", enum_column(Technology), nullable=False),
    Column("p_export_kw", Float, nullable=False),
    Column("p_import_kw", Float, nullable=False),
    Column("e_kwh", Float, nullable=True),
    Column("ramp_kw_per_min", Float, nullable=True),
    Column("meter_position", enum_column(MeterPosition), nullable=False),
    Column("owner_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("representative_id", ID, ForeignKey("participants.id"), nullable=True, index=True),
    Column("connection_point_id", Integer, ForeignKey("connection_points.id"), nullable=False, index=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False, index=True),
    Column("dso_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("dso_affiliated", Boolean, nullable=False),
    Column("status", enum_column(DerStatus), nullable=False, index=True),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("review_due_at", UtcDateTime(), nullable=False),
    Column("export_limit_kw", Float, nullable=True),
    Column("import_limit_kw", Float, nullable=True),
    Column("market_participating", Boolean, nullable=False, default=False),
    Column("round_trip_efficiency", Float, nullable=True),
    Column("market_products", EnumSet(Product), nullable=False, default=frozenset(), server_default=""),
    Column("updated_at", UtcDateTime(), nullable=True),
)

der_reviews = Table(
    "der_reviews",
    metadata,
    Column("id", ID, primary_key=True),
    Column("der_id", ID, ForeignKey("ders.id"), nullable=False, index=True),
    Column("decision", enum_column(ReviewDecision), nullable=False),
    Column("reason", Text, nullable=False),
    Column("attachments", JSON, nullable=False),
    Column("decided_by", ID, nullable=False),
    Column("decided_at", UtcDateTime(), nullable=False),
    Column("hosting_capacity_kw", Float, nullable=True),
)

aggregations = Table(
    "aggregations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("aggregator_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("multi_tdi", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("aggregator_id", "name", name="uq_aggregations_aggregator_name"),
)

aggregation_markets = Table(
    "aggregation_markets",
    metadata,
    Column("id", ID, primary_key=True),
    Column("aggregation_id", ID, ForeignKey("aggregations.id"), nullable=False, index=True),
    Column("service", enum_column(Service), nullable=False),
    Column("min_size_kw", Float, nullable=False),
    Column("status", enum_column(MarketStatus), nullable=False),
    UniqueConstraint("aggregation_id", "service", name="uq_aggregation_markets_service"),
)

aggregation_members = Table(
    "aggregation_members",
    metadata,
    Column("id", ID, primary_key=True),
    Column("aggregation_id", ID, ForeignKey("aggregations.id"), nullable=False, index=True),
    Column("der_id", ID, ForeignKey("ders.id"), nullable=False, index=True),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=False),
    Column("dso_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("capacity_kw", Float, nullable=False),
    Column("valid_from", UtcDateTime(), nullable=False),
    Column("valid_to", UtcDateTime(), nullable=True),
    Column("status", enum_column(MemberStatus), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("review_due_at", UtcDateTime(), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("decided_by", ID, nullable=True),
    Column("rejection_category", enum_column(RejectionCategory), nullable=True),
    Column("reason", Text, nullable=True),
    Column("dispute", Text, nullable=True),
    Column("disputed_at", UtcDateTime(), nullable=True),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_seq", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor_user_id", ID, nullable=False),
    Column("actor_participant_id", ID, nullable=False),
    Column("action", String(100), nullable=False),
    Column("entity_type", String(100), nullable=False),
    Column("entity_id", String(100), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_records_entity", "entity_type", "entity_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", JSON, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

_mapped = False


def map_domain() -> None:
    """Map the domain classes onto the tables (idempotent; done once per process)."""
    global _mapped
    if _mapped:
        return
    reg = Base.registry
    reg.map_imperatively(Participant, participants)
    reg.map_imperatively(User, users)
    reg.map_imperatively(ApiToken, api_tokens)
    reg.map_imperatively(TDInterface, td_interfaces)
    reg.map_imperatively(ModelAssignment, tdi_model_assignments)
    reg.map_imperatively(DerReview, der_reviews)
    reg.map_imperatively(
        Der,
        ders,
        properties={
            "reviews": relationship(
                DerReview, order_by=der_reviews.c.decided_at, lazy="selectin", cascade="all, delete-orphan"
            )
        },
    )
    reg.map_imperatively(AggregationMarket, aggregation_markets)
    reg.map_imperatively(AggregationMember, aggregation_members)
    reg.map_imperatively(
        Aggregation,
        aggregations,
        properties={
            "markets": relationship(
                AggregationMarket,
                order_by=aggregation_markets.c.service,
                lazy="selectin",
                cascade="all, delete-orphan",
            ),
            "members": relationship(
                AggregationMember,
                order_by=aggregation_members.c.requested_at,
                lazy="selectin",
                cascade="all, delete-orphan",
            ),
        },
    )
    _mapped = True
