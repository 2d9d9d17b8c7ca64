"""The composition root for the CLI and the server: settings -> engine -> unit of work -> services/API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from gridbridge.adapters.network_io import import_network as load_network_model
from gridbridge.api.app import create_app
from gridbridge.api.jobs import JobIntervals
from gridbridge.cli.config import Settings
from gridbridge.domain.clock import Clock, SystemClock
from gridbridge.domain.permissions import SYSTEM_CALLER, Caller
from gridbridge.services.context import Context
from gridbridge.services.networks import NetworkLoader
from gridbridge.store import schema
from gridbridge.store.database import make_engine, session_factory
from gridbridge.store.uow import SqlUnitOfWork, SqlUnitOfWorkFactory


class Platform:
    """One deployment's wiring: an engine on the configured database and the factories built on it."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        engine: Engine | None = None,
        network_loader: NetworkLoader = load_network_model,
    ) -> None:
        self.settings = settings or Settings()
        self.network_loader = network_loader
        self.clock = clock or SystemClock()
        self.engine = engine or make_engine(self.settings.database_url)
        self.uow_factory = SqlUnitOfWorkFactory(session_factory(self.engine))

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        schema.upgrade(self.engine)

    @contextmanager
    def context(self, caller: Caller = SYSTEM_CALLER) -> Iterator[Context]:
        """A service context in one transaction, committed when the block ends without error."""
        with self.uow_factory() as uow:
            yield Context(
                uow=uow,
                caller=caller,
                clock=self.clock,
                settings=self.settings.registry(),
                network_loader=self.network_loader,
            )
            uow.commit()

    def unit_of_work(self) -> SqlUnitOfWork:
        """A bare unit of work (for read-only checks such as audit verification)."""
        return self.uow_factory()

    def app(self, *, with_jobs: bool = False) -> FastAPI:
        """The HTTP API over this deployment; ``with_jobs``: it also runs the platform's periodic jobs at the
        configured intervals while it is up (what ``gridbridge serve`` does)."""
        return create_app(
            self.uow_factory,
            clock=self.clock,
            settings=self.settings.registry(),
            network_loader=self.network_loader,
            jobs=self.job_intervals() if with_jobs else None,
        )

    def job_intervals(self) -> JobIntervals:
        """How often each periodic job runs (``GRIDBRIDGE_*_INTERVAL_S``; 0 disables one)."""
        return JobIntervals(
            escalation_s=self.settings.escalation_interval_s,
            envelope_queue_s=self.settings.envelope_queue_interval_s,
        )


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (``gridbridge serve``): the API on the database named by the environment
    (migrated first), with the platform's periodic jobs."""
    platform = Platform()
    platform.upgrade()
    return platform.app(with_jobs=True)
