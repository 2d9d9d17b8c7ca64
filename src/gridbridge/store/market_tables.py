"""Tables of the coordination cycle: offer versions, clearing runs and their results, instructions, notifications.

These are plain SQLAlchemy Core tables (no ORM mapping): the repositories in ``market_repository`` read rows
into the frozen domain records of ``gridbridge.domain.market`` and write instructions in bulk.

Money is stored as decimal text (``DecimalText``), exact on SQLite and PostgreSQL alike. Instructions and
notifications carry denormalised participant and interface ids (no foreign keys to the registry) so that the
benchmark can persist a synthetic province's instructions through the same table. An instruction's ``parent_id``
and ``run_id`` are not foreign keys either (migration 0006): PostgreSQL checks a foreign key with one trigger
call per inserted row, the largest cost of writing an interval's instructions in bulk. Writers keep the rules
instead: every ``parent_id`` names a stored instruction (the bulk sink writes each parent with its children in
one transaction, a split reads its parent first; tests check both) and every ``run_id`` a stored clearing run
(instructions are issued from a run read from the store).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

from gridbridge.domain.market import (
    InstructionKind,
    InstructionProduct,
    InstructionStatus,
    NotificationKind,
    ResourceKind,
    Route,
    SplitMethod,
)
from gridbridge.domain.offers import Market, Product, Side
from gridbridge.store.base import Base
from gridbridge.store.types import UtcDateTime, enum_column

metadata = Base.metadata
ID = String(36)
INSTRUCTION_ID = String(48)
INSTRUCTION_KEY = String(48).with_variant(String(48, collation="C"), "postgresql")
"""An instruction's id where it is a key (``instructions.id``, ``parent_id``): byte order on PostgreSQL, as on
SQLite, so index maintenance compares bytes instead of going through the locale."""
SPARSE_INDEXED = ("parent_id", "dso_id", "run_id")
"""Columns of ``instructions`` indexed only where set: bulk DER instructions leave ``dso_id`` and ``run_id`` empty
and direct ones ``parent_id``, and an equality lookup never needs the empty rows."""


class DecimalText(TypeDecorator[Decimal]):
    """A ``Decimal`` stored as its exact text on every backend (prices, costs)."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValueError(f"a finite Decimal is required, got {value!r}")
        return str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


offers = Table(
    "offers",
    metadata,
    Column("id", ID, primary_key=True),
    Column("resource_kind", enum_column(ResourceKind), nullable=False),
    Column("resource_id", ID, nullable=False),
    Column("product", enum_column(Product), nullable=False),
    Column("market", enum_column(Market), nullable=False),
    Column("side", enum_column(Side), nullable=False),
    Column("interval_start", UtcDateTime(), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("segments", JSON, nullable=False),
    Column("offered_kw", DecimalText(), nullable=False),
    Column("route", enum_column(Route), nullable=False),
    Column("tdi_id", ID, ForeignKey("td_interfaces.id"), nullable=True),
    Column("dso_id", ID, ForeignKey("participants.id"), nullable=True, index=True),
    Column("party_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("sender_id", ID, nullable=False),
    Column("submitted_by", ID, nullable=False),
    Column("submitted_at", UtcDateTime(), nullable=False),
    Column("clipped", Boolean, nullable=False),
    Column("binding_envelope", Text, nullable=True),
    Column("source_offer_ids", JSON, nullable=False),
    Column("superseded_at", UtcDateTime(), nullable=True),
    UniqueConstraint(
        "resource_kind",
        "resource_id",
        "product",
        "side",
        "market",
        "interval_start",
        "revision",
        name="uq_offers_version",
    ),
    Index("ix_offers_interval", "market", "interval_start", "route"),
)

clearing_runs = Table(
    "clearing_runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("market", enum_column(Market), nullable=False),
    Column("interval_start", UtcDateTime(), nullable=False),
    Column("energy_requirement_kw", Float, nullable=False),
    Column("reserve_requirement_kw", Float, nullable=False),
    Column("cost_cad_per_h", DecimalText(), nullable=False),
    Column("system_energy_price_cad_per_mwh", DecimalText(), nullable=True),
    Column("system_reserve_price_cad_per_mwh", DecimalText(), nullable=True),
    Column("energy_shortage_kw", Float, nullable=False),
    Column("reserve_shortage_kw", Float, nullable=False),
    Column("method", String(32), nullable=False),
    Column("redispatch_rounds", Integer, nullable=False),
    Column("inputs_digest", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", ID, nullable=False),
    Column("dispatched_at", UtcDateTime(), nullable=True),
    UniqueConstraint("market", "interval_start", name="uq_clearing_runs_interval"),
)

clearing_interfaces = Table(
    "clearing_interfaces",
    metadata,
    Column("run_id", ID, ForeignKey("clearing_runs.id"), primary_key=True),
    Column("tdi_id", ID, primary_key=True),
    Column("model", String(32), nullable=False),
    Column("import_limit_kw", Float, nullable=False),
    Column("export_limit_kw", Float, nullable=False),
    Column("load_kw", Float, nullable=True),
    Column("der_schedule_kw", Float, nullable=False),
    Column("injection_kw", Float, nullable=False),
    Column("net_flow_kw", Float, nullable=False),
    Column("energy_price_cad_per_mwh", DecimalText(), nullable=True),
    Column("reserve_price_cad_per_mwh", DecimalText(), nullable=True),
    Column("congestion_cad_per_mwh", DecimalText(), nullable=True),
    Column("shortfall_kw", Float, nullable=False),
    Column("redispatched_kw", Float, nullable=False),
)

clearing_resources = Table(
    "clearing_resources",
    metadata,
    Column("run_id", ID, ForeignKey("clearing_runs.id"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("resource_kind", enum_column(ResourceKind), nullable=False),
    Column("resource_id", ID, nullable=False),
    Column("side", enum_column(Side), nullable=False),
    Column("energy_offer_id", ID, nullable=True),
    Column("reserve_offer_id", ID, nullable=True),
    Column("tdi_id", ID, nullable=True),
    Column("dso_id", ID, nullable=True),
    Column("party_id", ID, nullable=False),
    Column("first_p_kw", Float, nullable=False),
    Column("p_kw", Float, nullable=False),
    Column("reserve_kw", Float, nullable=False),
    Column("price_cad_per_mwh", DecimalText(), nullable=True),
)

clearing_curtailments = Table(
    "clearing_curtailments",
    metadata,
    Column("run_id", ID, ForeignKey("clearing_runs.id"), primary_key=True),
    Column("resource_kind", enum_column(ResourceKind), primary_key=True),
    Column("resource_id", ID, primary_key=True),
    Column("tdi_id", ID, primary_key=True),
    Column("dispatched_kw", Float, nullable=False),
    Column("allowed_kw", Float, nullable=False),
    Column("curtailed_kw", Float, nullable=False),
    Column("checked_by", String(32), nullable=False),
    Column("reason", Text, nullable=False),
)


def unchecked_enum(enum_class: type[StrEnum]) -> Enum:
    """An enum column storing member values as strings, validated on the way in by its bind processor but
    without a CHECK constraint: on SQLite the constraints of the instructions table's five enum columns cost more
    than the rest of a bulk insert of a million rows (measured in docs/coordination.md)."""
    column = enum_column(enum_class)
    column.create_constraint = False
    return column


instructions = Table(
    "instructions",
    metadata,
    Column("id", INSTRUCTION_KEY, primary_key=True),
    Column("kind", unchecked_enum(InstructionKind), nullable=False),
    Column("market", unchecked_enum(Market), nullable=True),
    Column("product", unchecked_enum(InstructionProduct), nullable=False),
    Column("interval_start", UtcDateTime(), nullable=False),
    Column("interval_end", UtcDateTime(), nullable=False),
    Column("p_kw", Float, nullable=False),
    Column("issuer_id", ID, nullable=False),
    Column("recipient_id", ID, nullable=False, index=True),
    Column("resource_kind", unchecked_enum(ResourceKind), nullable=False),
    Column("resource_id", INSTRUCTION_ID, nullable=False),
    Column("der_id", INSTRUCTION_ID, nullable=True),
    Column("tdi_id", ID, nullable=True),
    Column("dso_id", ID, nullable=True),
    Column("parent_id", INSTRUCTION_KEY, nullable=True),
    Column("run_id", ID, nullable=True),
    Column("offer_id", ID, nullable=True),
    Column("status", unchecked_enum(InstructionStatus), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("deadline_at", UtcDateTime(), nullable=False),
    Column("tso_visible", Boolean, nullable=False),
    Column("reason", Text, nullable=True),
    Column("received_at", UtcDateTime(), nullable=True),
    Column("responded_at", UtcDateTime(), nullable=True),
    Column("response_reason", Text, nullable=True),
    Column("escalated_at", UtcDateTime(), nullable=True),
    Column("split_method", unchecked_enum(SplitMethod), nullable=True),
    Column("split_at", UtcDateTime(), nullable=True),
    Column("shortfall_kw", Float, nullable=True),
    Index("ix_instructions_open", "status", "deadline_at"),
    *(
        Index(
            f"ix_instructions_{name}",
            name,
            postgresql_where=text(f"{name} IS NOT NULL"),
            sqlite_where=text(f"{name} IS NOT NULL"),
        )
        for name in SPARSE_INDEXED
    ),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", ID, primary_key=True),
    Column("recipient_id", ID, nullable=False, index=True),
    Column("kind", enum_column(NotificationKind), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("message", Text, nullable=False),
    Column("tdi_id", ID, nullable=True),
    Column("market", enum_column(Market), nullable=True),
    Column("interval_start", UtcDateTime(), nullable=True),
    Column("magnitude_kw", Float, nullable=True),
    Column("run_id", ID, nullable=True),
    Column("instruction_id", INSTRUCTION_ID, nullable=True),
)
