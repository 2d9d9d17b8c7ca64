"""The platform's periodic jobs inside the served app: a scheduler started and stopped with the app's lifespan.

``create_app(..., jobs=JobIntervals(...))`` (what ``gridbridge serve`` builds) runs each job of
``services/jobs.py`` on its own daemon thread: once at startup, then every ``interval_s`` seconds; an interval of
0 disables the job. A run that raises is logged and the job carries on at its next interval. On shutdown the
scheduler tells every thread to stop and waits for a run in progress to finish.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from gridbridge.api.deps import AppState
from gridbridge.services.envelope_store_ports import EnvelopeBackend
from gridbridge.services.jobs import JobEnvironment, envelope_queue_tick, escalate_tick

log = logging.getLogger("gridbridge.jobs")


@dataclass(frozen=True)
class JobIntervals:
    """Seconds between two runs of each periodic job (0: the job does not run). Defaults: docs/settings.md."""

    escalation_s: float = 60.0
    envelope_queue_s: float = 60.0


@dataclass(frozen=True)
class PeriodicJob:
    """A named job and how often it runs."""

    name: str
    interval_s: float
    run: Callable[[], object]


class JobScheduler:
    """Runs each job with a positive interval on its own daemon thread until ``stop``."""

    def __init__(self, jobs: Sequence[PeriodicJob], *, stop_timeout_s: float = 60.0) -> None:
        self.jobs = tuple(jobs)
        self.stop_timeout_s = stop_timeout_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        """Whether any job thread is alive."""
        return any(t.is_alive() for t in self._threads)

    def run_once(self, job: PeriodicJob) -> bool:
        """Run ``job`` once; a run that raises is logged with its traceback and reported as ``False``."""
        try:
            job.run()
        except Exception:
            log.exception("periodic job %s failed; it runs again in %g s", job.name, job.interval_s)
            return False
        return True

    def _loop(self, job: PeriodicJob) -> None:
        while True:  # the first run always happens, even when the app stops at once
            self.run_once(job)
            if self._stop.wait(job.interval_s):
                return

    def start(self) -> None:
        """Start one thread per enabled job (each runs at once, then every interval). Starting twice is refused."""
        if self._threads:
            raise RuntimeError("the job scheduler was already started")
        self._stop.clear()
        for job in self.jobs:
            if job.interval_s <= 0:
                log.info("periodic job %s is disabled", job.name)
                continue
            thread = threading.Thread(target=self._loop, args=(job,), name=f"gridbridge-job-{job.name}", daemon=True)
            self._threads.append(thread)
            thread.start()
            log.info("periodic job %s runs every %g s", job.name, job.interval_s)

    def stop(self) -> None:
        """Tell every job to stop and wait (up to ``stop_timeout_s`` each) for a run in progress to end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.stop_timeout_s)
            if thread.is_alive():
                log.warning("periodic job thread %s did not stop within %g s", thread.name, self.stop_timeout_s)
        self._threads = [t for t in self._threads if t.is_alive()]


def platform_jobs(state: AppState, backend: EnvelopeBackend, intervals: JobIntervals) -> list[PeriodicJob]:
    """The platform's jobs on the app's database, clock and settings: escalation and the envelope queue."""
    env = JobEnvironment(state.uow_factory, state.clock, state.settings, state.network_loader)
    return [
        PeriodicJob("escalation", intervals.escalation_s, lambda: escalate_tick(env)),
        PeriodicJob("envelope-queue", intervals.envelope_queue_s, lambda: envelope_queue_tick(env, backend)),
    ]


def jobs_lifespan(intervals: JobIntervals) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI lifespan that starts the platform's jobs (``app.state.jobs``) with the app and stops them on
    shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = JobScheduler(platform_jobs(app.state.gridbridge, app.state.envelope_backend, intervals))
        app.state.jobs = scheduler
        scheduler.start()
        try:
            yield
        finally:
            await asyncio.to_thread(scheduler.stop)

    return lifespan
