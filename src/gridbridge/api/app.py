"""The composition root of the HTTP API: ``create_app`` wires the store, clock, settings and routers."""

from __future__ import annotations

from fastapi import FastAPI

from gridbridge import __version__
from gridbridge.api.deps import AppState
from gridbridge.api.jobs import JobIntervals, jobs_lifespan
from gridbridge.api.problems import install_problem_handlers
from gridbridge.api.routers import (
    aggregations,
    clearing,
    conflicts,
    curtailment,
    ders,
    envelopes,
    instructions,
    network_state,
    notifications,
    offers,
    participants,
    storage,
    tdis,
)
from gridbridge.domain.clock import Clock, SystemClock
from gridbridge.services.context import RegistrySettings
from gridbridge.services.envelope_store_ports import EnvelopeBackend
from gridbridge.services.networks import NetworkLoader
from gridbridge.services.ports import UnitOfWorkFactory

DESCRIPTION = """
The shared T-D coordination platform: the TSO, every LDC (as DSO) and every DER aggregator work through one API.

Authenticate with `Authorization: Bearer <token>` (tokens come from `gridbridge admin token` or `POST /me/tokens`).
Errors are `application/problem+json` with a stable `code` and the offending `field`; see docs/api.md.
POST requests accept an `Idempotency-Key` header: a replay returns the stored result.
"""


def create_app(
    uow_factory: UnitOfWorkFactory,
    *,
    clock: Clock | None = None,
    settings: RegistrySettings | None = None,
    network_loader: NetworkLoader | None = None,
    envelope_backend: EnvelopeBackend | None = None,
    jobs: JobIntervals | None = None,
) -> FastAPI:
    """Build the API over a unit-of-work factory (the database), a clock and registry settings.

    ``envelope_backend`` computes envelopes and hosting capacity on stored models (default: pandapower).
    ``jobs``: run the platform's periodic jobs (escalation, queued envelope runs) while the app is up
    (``api/jobs.py``); none when omitted.
    """
    lifespan = jobs_lifespan(jobs) if jobs is not None else None
    app = FastAPI(title="gridbridge", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.gridbridge = AppState(
        uow_factory=uow_factory,
        clock=clock or SystemClock(),
        settings=settings or RegistrySettings(),
        network_loader=network_loader,
    )
    if envelope_backend is None:
        from gridbridge.adapters.powerflow.stored import PandapowerEnvelopeBackend

        envelope_backend = PandapowerEnvelopeBackend()
    app.state.envelope_backend = envelope_backend
    install_problem_handlers(app)
    for module in (
        participants,
        tdis,
        ders,
        aggregations,
        offers,
        clearing,
        instructions,
        conflicts,
        notifications,
        network_state,
        envelopes,
        curtailment,
        storage,
    ):
        app.include_router(module.router)
    return app
