"""published curtailment procedures and curtailment events

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gridbridge.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "curtailment_procedures",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tdi_id", sa.String(length=36), nullable=False),
        sa.Column("dso_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("dso_aggregated_pct", sa.Float(), nullable=True),
        sa.Column("effective_from", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("published_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("published_by", sa.String(length=36), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tdi_id"], ["td_interfaces.id"], name=op.f("fk_curtailment_procedures_tdi_id_td_interfaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_curtailment_procedures")),
        sa.UniqueConstraint("tdi_id", "effective_from", name="uq_curtailment_procedures_tdi_effective_from"),
        sa.UniqueConstraint("tdi_id", "version", name="uq_curtailment_procedures_tdi_version"),
    )
    op.create_table(
        "curtailment_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tdi_id", sa.String(length=36), nullable=False),
        sa.Column("dso_id", sa.String(length=36), nullable=False),
        sa.Column("procedure_id", sa.String(length=36), nullable=False),
        sa.Column("procedure_version", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("required_kw", sa.Float(), nullable=False),
        sa.Column("available_kw", sa.Float(), nullable=False),
        sa.Column("dso_aggregated_kw", sa.Float(), nullable=False),
        sa.Column("direct_kw", sa.Float(), nullable=False),
        sa.Column("window_start", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("window_end", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("connection_point_ids", sa.JSON(), nullable=False),
        sa.Column("feeder", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(length=36), nullable=False),
        sa.Column("requested_for", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["curtailment_procedures.id"],
            name=op.f("fk_curtailment_events_procedure_id_curtailment_procedures"),
        ),
        sa.ForeignKeyConstraint(
            ["tdi_id"], ["td_interfaces.id"], name=op.f("fk_curtailment_events_tdi_id_td_interfaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_curtailment_events")),
    )
    op.create_index(op.f("ix_curtailment_events_dso_id"), "curtailment_events", ["dso_id"], unique=False)
    op.create_index(
        "ix_curtailment_events_tdi_window", "curtailment_events", ["tdi_id", "window_start", "window_end"], unique=False
    )
    op.create_table(
        "curtailment_shares",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("der_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("party_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column(
            "participation",
            sa.Enum(
                "dso_aggregated",
                "direct",
                name="participationgroup_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("dso_affiliated", sa.Boolean(), nullable=False),
        sa.Column("p_export_kw", sa.Float(), nullable=False),
        sa.Column("export_source", sa.String(length=200), nullable=False),
        sa.Column("capacity_kw", sa.Float(), nullable=False),
        sa.Column("offer_price_cad_per_mwh", sa.String(length=64), nullable=True),
        sa.Column("connected_at", gridbridge.store.types.UtcDateTime(), nullable=True),
        sa.Column("share_kw", sa.Float(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("instruction_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["curtailment_events.id"], name=op.f("fk_curtailment_shares_event_id_curtailment_events")
        ),
        sa.PrimaryKeyConstraint("event_id", "der_id", name=op.f("pk_curtailment_shares")),
    )
    op.create_index(op.f("ix_curtailment_shares_owner_id"), "curtailment_shares", ["owner_id"], unique=False)
    op.create_index(op.f("ix_curtailment_shares_party_id"), "curtailment_shares", ["party_id"], unique=False)
    op.create_table(
        "curtailment_notices",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("party_id", sa.String(length=36), nullable=False),
        sa.Column("share_kw", sa.Float(), nullable=False),
        sa.Column("der_ids", sa.JSON(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("instruction_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["curtailment_events.id"], name=op.f("fk_curtailment_notices_event_id_curtailment_events")
        ),
        sa.PrimaryKeyConstraint("event_id", "party_id", name=op.f("pk_curtailment_notices")),
    )


def downgrade() -> None:
    op.drop_table("curtailment_notices")
    op.drop_index(op.f("ix_curtailment_shares_party_id"), table_name="curtailment_shares")
    op.drop_index(op.f("ix_curtailment_shares_owner_id"), table_name="curtailment_shares")
    op.drop_table("curtailment_shares")
    op.drop_index("ix_curtailment_events_tdi_window", table_name="curtailment_events")
    op.drop_index(op.f("ix_curtailment_events_dso_id"), table_name="curtailment_events")
    op.drop_table("curtailment_events")
    op.drop_table("curtailment_procedures")
