"""conflict records, resolutions and per-interface resolution policies

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gridbridge.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_NOTIFICATION_KINDS = ("reverse_flow", "instruction_overdue")


def _notification_kind(*extra: str) -> sa.Enum:
    return sa.Enum(
        *_NOTIFICATION_KINDS, *extra, name="notificationkind_enum", native_enum=False, create_constraint=True, length=32
    )


def upgrade() -> None:
    op.create_table(
        "conflicts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("detection_key", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "hidden_coupling_capability",
                "hidden_coupling_energy",
                "tier_bypassing_envelope",
                "tier_bypassing_deenergised",
                "double_counting",
                name="conflictkind_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("tdi_id", sa.String(length=36), nullable=False),
        sa.Column("dso_id", sa.String(length=36), nullable=False),
        sa.Column("der_id", sa.String(length=48), nullable=True),
        sa.Column("der_ids", sa.JSON(), nullable=False),
        sa.Column("connection_point_id", sa.String(length=48), nullable=True),
        sa.Column("interval_start", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("interval_end", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("intervals", sa.JSON(), nullable=False),
        sa.Column("instruction_ids", sa.JSON(), nullable=False),
        sa.Column("commitment_ids", sa.JSON(), nullable=False),
        sa.Column("party_ids", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("series", sa.JSON(), nullable=False),
        sa.Column("pairs", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("tso_visible", sa.Boolean(), nullable=False),
        sa.Column("detected_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflicts")),
    )
    op.create_index(op.f("ix_conflicts_der_id"), "conflicts", ["der_id"], unique=False)
    op.create_index(op.f("ix_conflicts_dso_id"), "conflicts", ["dso_id"], unique=False)
    op.create_index("ix_conflicts_period", "conflicts", ["interval_start", "interval_end"], unique=False)
    op.create_index(op.f("ix_conflicts_tdi_id"), "conflicts", ["tdi_id"], unique=False)
    op.create_table(
        "amendment_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("conflict_id", sa.String(length=36), nullable=False),
        sa.Column("instruction_id", sa.String(length=48), nullable=False),
        sa.Column("der_id", sa.String(length=48), nullable=False),
        sa.Column("addressee_id", sa.String(length=36), nullable=False),
        sa.Column("requested_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("deadline", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("provisional", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending", "amended", name="amendmentstatus_enum", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("answered_at", gridbridge.store.types.UtcDateTime(), nullable=True),
        sa.Column("amended_p_kw", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conflict_id"],
            ["conflicts.id"],
            name=op.f("fk_amendment_requests_conflict_id_conflicts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amendment_requests")),
    )
    op.create_index(op.f("ix_amendment_requests_addressee_id"), "amendment_requests", ["addressee_id"], unique=False)
    op.create_index(op.f("ix_amendment_requests_conflict_id"), "amendment_requests", ["conflict_id"], unique=False)
    op.create_table(
        "conflict_parties",
        sa.Column("conflict_id", sa.String(length=36), nullable=False),
        sa.Column("party_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["conflict_id"],
            ["conflicts.id"],
            name=op.f("fk_conflict_parties_conflict_id_conflicts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conflict_id", "party_id", name=op.f("pk_conflict_parties")),
    )
    op.create_index(op.f("ix_conflict_parties_party_id"), "conflict_parties", ["party_id"], unique=False)
    op.create_table(
        "conflict_resolutions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("conflict_id", sa.String(length=36), nullable=False),
        sa.Column(
            "rule",
            sa.Enum(
                "service_priority",
                "most_restrictive_limit",
                "amendment_request",
                name="resolutionrule_enum",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("binding_limit", sa.Text(), nullable=True),
        sa.Column("decided_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("outcomes", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conflict_id"],
            ["conflicts.id"],
            name=op.f("fk_conflict_resolutions_conflict_id_conflicts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflict_resolutions")),
        sa.UniqueConstraint("conflict_id", name=op.f("uq_conflict_resolutions_conflict_id")),
    )
    op.create_table(
        "resolution_policies",
        sa.Column("tdi_id", sa.String(length=36), nullable=False),
        sa.Column("priorities", sa.JSON(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("amendment_window_min", sa.Integer(), nullable=False),
        sa.Column("updated_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["tdi_id"], ["td_interfaces.id"], name=op.f("fk_resolution_policies_tdi_id_td_interfaces")
        ),
        sa.PrimaryKeyConstraint("tdi_id", name=op.f("pk_resolution_policies")),
    )
    # notifications may now say that a conflict was resolved
    with op.batch_alter_table("notifications", recreate="always") as batch:
        batch.alter_column(
            "kind", existing_type=_notification_kind(), type_=_notification_kind("conflict_resolved"), nullable=False
        )


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'conflict_resolved'")
    with op.batch_alter_table("notifications", recreate="always") as batch:
        batch.alter_column(
            "kind", existing_type=_notification_kind("conflict_resolved"), type_=_notification_kind(), nullable=False
        )
    op.drop_table("resolution_policies")
    op.drop_table("conflict_resolutions")
    op.drop_index(op.f("ix_conflict_parties_party_id"), table_name="conflict_parties")
    op.drop_table("conflict_parties")
    op.drop_index(op.f("ix_amendment_requests_conflict_id"), table_name="amendment_requests")
    op.drop_index(op.f("ix_amendment_requests_addressee_id"), table_name="amendment_requests")
    op.drop_table("amendment_requests")
    op.drop_index(op.f("ix_conflicts_tdi_id"), table_name="conflicts")
    op.drop_index("ix_conflicts_period", table_name="conflicts")
    op.drop_index(op.f("ix_conflicts_dso_id"), table_name="conflicts")
    op.drop_index(op.f("ix_conflicts_der_id"), table_name="conflicts")
    op.drop_table("conflicts")
