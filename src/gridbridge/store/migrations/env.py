"""Alembic environment: runs gridbridge's migrations on the engine handed over by ``gridbridge.store.schema``."""

from __future__ import annotations

from alembic import context

from gridbridge.store.schema import target_metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - migrations always run through gridbridge.store.schema
    raise RuntimeError("run migrations through gridbridge.store.schema (gridbridge db upgrade)")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
