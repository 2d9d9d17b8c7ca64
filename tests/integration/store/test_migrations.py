"""Every migration runs up and down on SQLite and PostgreSQL, and the newest schema matches the tables."""

from __future__ import annotations

from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from gridbridge.services import instructions
from gridbridge.store import schema
from gridbridge.store.database import make_engine
from registry_province import build_province


def test_each_revision_up_and_down(database_url: str) -> None:
    engine = make_engine(database_url)
    revisions = schema.revisions()
    assert revisions, "no migrations shipped"
    for revision in revisions:
        schema.upgrade(engine, revision)
        assert revision in schema.current_heads(engine)
    assert set(schema.current_heads(engine)) == set(schema.head_revisions())
    tables = set(inspect(engine).get_table_names())
    assert {"participants", "ders", "aggregations", "audit_records", "networks", "connection_points"} <= tables
    # newest first, each down to its parent (on branches, the parent is below every sibling branch too)
    script = ScriptDirectory.from_config(schema.alembic_config())
    for revision in reversed(revisions):
        parent = script.get_revision(revision).down_revision
        assert parent is None or isinstance(parent, str), "merge revisions are not expected"
        schema.downgrade(engine, parent or "base")
        assert schema.current_heads(engine) == ((parent,) if parent else ())
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_newest_migration_matches_the_table_definitions(database_url: str) -> None:
    engine = make_engine(database_url)
    schema.upgrade(engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), schema.target_metadata)
    assert differences == [], f"tables and migrations disagree; generate a migration: {differences}"
    engine.dispose()


def test_history_is_linear() -> None:
    """One head: a new migration revises the newest one, so every deployment upgrades along one path."""
    assert len(schema.head_revisions()) == 1
    assert schema.revisions()[-1] == schema.head_revision()


def test_drop_everything_clears_a_populated_database(database_url: str) -> None:
    """The demo's rebuild: a database holding a province, split instructions and the records that refer to them
    is emptied (migration history too) and upgrades afresh; downgrading it to ``base`` cannot be relied on."""
    province = build_province(database_url)
    start = province.clock.now() + timedelta(hours=1)
    parent = province.run(
        "tso",
        lambda ctx: (
            instructions.issue_operating_instruction(
                ctx,
                province.tdis["tdi_a"],
                p_kw=100,
                interval_start=start,
                interval_end=start + timedelta(hours=1),
                reason="contingency",
            ).id
        ),
    )
    province.run("ldc_a", lambda ctx: instructions.split_instruction(ctx, parent))
    engine = province.platform.engine
    with province.platform.unit_of_work() as uow:
        assert uow.participants.list_all()
    schema.drop_everything(engine)
    assert inspect(engine).get_table_names() == []
    schema.upgrade(engine)
    assert set(schema.current_heads(engine)) == set(schema.head_revisions())
    with province.platform.unit_of_work() as uow:
        assert uow.participants.list_all() == []
    province.platform.engine.dispose()
