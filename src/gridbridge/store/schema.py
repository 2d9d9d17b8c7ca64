"""Schema management: Alembic migrations run programmatically (``gridbridge db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData

import gridbridge.store.conflict_tables
import gridbridge.store.curtailment_tables
import gridbridge.store.envelope_tables
import gridbridge.store.market_tables
import gridbridge.store.network_tables
import gridbridge.store.settlement_tables
import gridbridge.store.storage_tables
import gridbridge.store.tables  # noqa: F401  (registers every table on the metadata)
from gridbridge.store.base import Base

target_metadata = Base.metadata
MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at gridbridge's migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Migrate the database up to ``revision`` (default: the newest of every branch)."""
    _run(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to ``revision`` (``base`` removes every table)."""
    _run(engine, lambda cfg: command.downgrade(cfg, revision))


def drop_everything(engine: Engine) -> None:
    """Drop every table of the database, the migration history included, whatever revision it is at and whatever
    it holds (in the order its foreign keys need); ``upgrade`` then builds it afresh. Downgrading a populated
    database to ``base`` instead can fail: on SQLite a migration that rebuilds a table other tables refer to
    trips their foreign keys."""
    with engine.begin() as conn:
        found = MetaData()
        found.reflect(conn)
        found.drop_all(conn)


def current_heads(engine: Engine) -> tuple[str, ...]:
    """Every revision the database is at (one for a linear history; empty for an empty database)."""
    with engine.connect() as conn:
        return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database; several heads joined by ", ")."""
    heads = current_heads(engine)
    return ", ".join(heads) if heads else None


def head_revision() -> str | None:
    """The newest migration shipped with this version of gridbridge (several branch heads joined by ", ")."""
    heads = head_revisions()
    return ", ".join(sorted(heads)) if heads else None


def head_revisions() -> tuple[str, ...]:
    """Every branch head (one for a linear history)."""
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def revisions() -> list[str]:
    """Every shipped revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _run(engine: Engine, action: object) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        action(config)  # type: ignore[operator]
