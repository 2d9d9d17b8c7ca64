"""double-counting flags that settlement reads: kW of a commitment not payable

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gridbridge.store.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    op.create_table(
        "settlement_flags",
        sa.Column("conflict_id", sa.String(length=36), nullable=False),
        sa.Column("commitment_id", sa.String(length=120), nullable=False),
        sa.Column("interval_start", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("interval_end", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("der_id", sa.String(length=48), nullable=False),
        sa.Column("offer_id", sa.String(length=36), nullable=False),
        sa.Column(
            "holder_kind",
            _enum("resourcekind_enum", "der", "aggregation", "dso_virtual", "interface"),
            nullable=False,
        ),
        sa.Column("holder_id", sa.String(length=36), nullable=False),
        sa.Column(
            "service",
            _enum("service_enum", "wholesale_energy", "operating_reserve", "distribution_services"),
            nullable=False,
        ),
        sa.Column("direction", _enum("direction_enum", "export", "import"), nullable=False),
        sa.Column("committed_kw", sa.Float(), nullable=False),
        sa.Column("firm_kw", sa.Float(), nullable=False),
        sa.Column("not_payable_kw", sa.Float(), nullable=False),
        sa.Column("tdi_id", sa.String(length=36), nullable=False),
        sa.Column("dso_id", sa.String(length=36), nullable=False),
        sa.Column("buyer_id", sa.String(length=36), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("tso_visible", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("superseded_at", gridbridge.store.types.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conflict_id"],
            ["conflicts.id"],
            name=op.f("fk_settlement_flags_conflict_id_conflicts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conflict_id", "commitment_id", "interval_start", name=op.f("pk_settlement_flags")),
    )
    op.create_index(
        "ix_settlement_flags_commitment", "settlement_flags", ["commitment_id", "interval_start"], unique=False
    )
    op.create_index("ix_settlement_flags_der_interval", "settlement_flags", ["der_id", "interval_start"], unique=False)
    op.create_index(op.f("ix_settlement_flags_dso_id"), "settlement_flags", ["dso_id"], unique=False)
    op.create_index(op.f("ix_settlement_flags_offer_id"), "settlement_flags", ["offer_id"], unique=False)
    op.create_index(op.f("ix_settlement_flags_owner_id"), "settlement_flags", ["owner_id"], unique=False)
    op.create_index(op.f("ix_settlement_flags_provider_id"), "settlement_flags", ["provider_id"], unique=False)


def downgrade() -> None:
    op.drop_table("settlement_flags")
