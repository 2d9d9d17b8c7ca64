"""The platform's periodic jobs: one tick of each, run as the platform (the system caller).

* ``escalate_tick``: every open instruction past its deadline is escalated to its issuer
  (``instructions.escalate_overdue``, one transaction), the same use case as ``POST /instructions/escalations``
  and ``gridbridge market escalate``.
* ``envelope_queue_tick``: the envelope recomputations that network events queued are computed and published,
  oldest first, each in its own transaction (``envelope_runs.process_queued_run``, as
  ``gridbridge envelopes run-queued`` does); one that raises is logged and the next one is processed.

A tick reads the time from the injected clock and never sleeps: ``gridbridge serve`` calls the ticks on a
schedule (``api/jobs.py``), tests call one tick with a ``FixedClock``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gridbridge.domain.clock import Clock
from gridbridge.domain.market import Instruction
from gridbridge.domain.permissions import SYSTEM_CALLER
from gridbridge.services import envelope_runs, instructions
from gridbridge.services.context import Context, RegistrySettings
from gridbridge.services.envelope_store_ports import EnvelopeBackend
from gridbridge.services.networks import NetworkLoader
from gridbridge.services.ports import UnitOfWorkFactory

log = logging.getLogger("gridbridge.jobs")

QUEUED_RUNS_PER_TICK = 100
"""At most this many queued envelope recomputations are processed per tick (the rest wait for the next)."""


@dataclass(frozen=True)
class JobEnvironment:
    """What a job runs with: the database, the clock, the settings (the same ones the API was built with)."""

    uow_factory: UnitOfWorkFactory
    clock: Clock
    settings: RegistrySettings = field(default_factory=RegistrySettings)
    network_loader: NetworkLoader | None = None

    @contextmanager
    def context(self) -> Iterator[Context]:
        """A context for the platform (the system caller) in one transaction, committed when the block ends
        without error and rolled back otherwise."""
        with self.uow_factory() as uow:
            yield Context(
                uow=uow,
                caller=SYSTEM_CALLER,
                clock=self.clock,
                settings=self.settings,
                network_loader=self.network_loader,
            )
            uow.commit()


def escalate_tick(env: JobEnvironment) -> list[Instruction]:
    """Escalate every open instruction whose deadline is before the clock's now to its issuer, in one
    transaction; log each escalated instruction. Returns them, oldest deadline first."""
    with env.context() as ctx:
        escalated = instructions.escalate_overdue(ctx)
    for i in escalated:
        log.info(
            "escalated %s %s to its issuer %s (recipient %s, deadline %s)",
            i.kind.value,
            i.id,
            i.issuer_id,
            i.recipient_id,
            i.deadline_at.isoformat(),
        )
    if escalated:
        log.info("%d instruction(s) escalated", len(escalated))
    return escalated


def envelope_queue_tick(
    env: JobEnvironment, backend: EnvelopeBackend, *, limit: int = QUEUED_RUNS_PER_TICK
) -> list[envelope_runs.RunOutcome]:
    """Process up to ``limit`` queued envelope recomputations, oldest first, each in its own transaction.

    A run whose computation fails on bad input is marked ``failed`` by the service (and counted here); one that
    raises is rolled back, logged and left queued, and the next run is processed. Returns the outcomes of the
    runs processed."""
    with env.context() as ctx:
        ids = envelope_runs.queued_run_ids(ctx, limit=limit)
    outcomes: list[envelope_runs.RunOutcome] = []
    for run_id in ids:
        try:
            with env.context() as ctx:
                outcome = envelope_runs.process_queued_run(ctx, backend, run_id)
        except Exception:
            log.exception("queued envelope run %s could not be processed; it stays queued", run_id)
            continue
        outcomes.append(outcome)
        log.info(
            "queued envelope run %s of interface %s: %s, %d envelope(s) published",
            run_id,
            outcome.run.tdi_id,
            outcome.run.status.value,
            outcome.published,
        )
    return outcomes
