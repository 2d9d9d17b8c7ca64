"""storage parameters of DERs, state-of-charge readings, amendment request expiry

* ``ders.round_trip_efficiency``: a storage DER's declared round-trip efficiency, in (0, 1]; NULL (every DER
  before this revision) leaves conflict detection to the deployment's ``GRIDBRIDGE_STORAGE_ROUND_TRIP_EFFICIENCY``.
* ``state_of_charge_readings``: the stored energy of a storage DER at a moment, as its owner, representative or
  DSO reported it (``POST /ders/{id}/state-of-charge``); conflict detection starts from the latest one at or
  before the checked horizon.
* ``amendment_requests.status`` may be ``expired``: the deadline passed without an amendment and the provisional
  setpoint became final. Downgrading turns expired requests back into pending ones.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gridbridge.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _amendment_status(*extra: str) -> sa.Enum:
    return sa.Enum(
        "pending", "amended", *extra, name="amendmentstatus_enum", native_enum=False, create_constraint=True, length=32
    )


def upgrade() -> None:
    with op.batch_alter_table("ders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round_trip_efficiency", sa.Float(), nullable=True))
    op.create_table(
        "state_of_charge_readings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("der_id", sa.String(length=36), nullable=False),
        sa.Column("soc_kwh", sa.Float(), nullable=False),
        sa.Column("measured_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("reported_at", gridbridge.store.types.UtcDateTime(), nullable=False),
        sa.Column("reported_by", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["der_id"], ["ders.id"], name=op.f("fk_state_of_charge_readings_der_id_ders")),
        sa.ForeignKeyConstraint(
            ["reported_by"], ["participants.id"], name=op.f("fk_state_of_charge_readings_reported_by_participants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_state_of_charge_readings")),
    )
    op.create_index(
        "ix_state_of_charge_readings_der_measured", "state_of_charge_readings", ["der_id", "measured_at"], unique=False
    )
    with op.batch_alter_table("amendment_requests", recreate="always") as batch:
        batch.alter_column(
            "status", existing_type=_amendment_status(), type_=_amendment_status("expired"), nullable=False
        )


def downgrade() -> None:
    op.execute("UPDATE amendment_requests SET status = 'pending' WHERE status = 'expired'")
    with op.batch_alter_table("amendment_requests", recreate="always") as batch:
        batch.alter_column(
            "status", existing_type=_amendment_status("expired"), type_=_amendment_status(), nullable=False
        )
    op.drop_index("ix_state_of_charge_readings_der_measured", table_name="state_of_charge_readings")
    op.drop_table("state_of_charge_readings")
    op.drop_column("ders", "round_trip_efficiency")  # in place: a copy of ders would break the rows referring to it
