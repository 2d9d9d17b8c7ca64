"""instructions: no per-row foreign keys, sparse indexes, byte-ordered keys

The foreign keys ``instructions.parent_id -> instructions.id`` and ``instructions.run_id -> clearing_runs.id``
are dropped: PostgreSQL checks each with one trigger call per inserted row (even where the column is NULL), the
largest single cost of persisting an interval's instructions in bulk. Writers guarantee both instead (the bulk
sink writes every parent with its children in one transaction; a split reads its parent first; instructions
are issued from a clearing run read from the store), and tests check the parent rule. The indexes on ``parent_id``, ``dso_id`` and
``run_id`` only hold rows where the column is set, and on PostgreSQL ``id`` and ``parent_id`` use the "C"
collation (byte order, as SQLite compares them).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SPARSE = ("parent_id", "dso_id", "run_id")
PARENT_FK = "fk_instructions_parent_id_instructions"
RUN_FK = "fk_instructions_run_id_clearing_runs"


def _keys(collation: str | None) -> None:
    """Set the collation of ``id`` and ``parent_id`` on PostgreSQL (SQLite compares bytes already)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in ("id", "parent_id"):
        op.alter_column("instructions", column, type_=sa.String(length=48, collation=collation))


def upgrade() -> None:
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.drop_constraint(PARENT_FK, type_="foreignkey")
        batch_op.drop_constraint(RUN_FK, type_="foreignkey")
        for name in SPARSE:
            batch_op.drop_index(f"ix_instructions_{name}")
    _keys("C")
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        for name in SPARSE:
            where = sa.text(f"{name} IS NOT NULL")
            batch_op.create_index(
                f"ix_instructions_{name}", [name], unique=False, postgresql_where=where, sqlite_where=where
            )


def downgrade() -> None:
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        for name in SPARSE:
            batch_op.drop_index(f"ix_instructions_{name}")
    _keys(None)
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        for name in SPARSE:
            batch_op.create_index(f"ix_instructions_{name}", [name], unique=False)
        batch_op.create_foreign_key(PARENT_FK, "instructions", ["parent_id"], ["id"])
        batch_op.create_foreign_key(RUN_FK, "clearing_runs", ["run_id"], ["id"])
