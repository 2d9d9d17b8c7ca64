"""Engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gridbridge.store.tables import map_domain

DEFAULT_SQLITE_PATH = "gridbridge.db"
URL_VARIABLE = "GRIDBRIDGE_DATABASE_URL"


def default_database_url() -> str:
    """``GRIDBRIDGE_DATABASE_URL`` if set, else an SQLite file ``gridbridge.db`` in the working directory."""
    return os.environ.get(URL_VARIABLE) or f"sqlite:///{Path(DEFAULT_SQLITE_PATH).resolve()}"


def normalise_url(url: str) -> str:
    """Pick the driver gridbridge ships with: psycopg 3 for PostgreSQL, pysqlite for SQLite.

    Raises ``ValueError`` for any other backend.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}: use sqlite:/// or postgresql://")


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: ``default_database_url()``).

    SQLite gets foreign keys on, WAL, a 30 s busy timeout, and ``BEGIN IMMEDIATE`` transactions so concurrent
    writers queue instead of failing half-way.
    """
    map_domain()
    url = normalise_url(url or default_database_url())
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the 'begin' hook below issue BEGIN itself
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (responses are built after committing)."""
    return sessionmaker(engine, expire_on_commit=False)
