"""The platform's periodic jobs (``services/jobs.py``, scheduled by ``api/jobs.py`` in ``gridbridge serve``): one
tick on a FixedClock escalates what is overdue as the platform and queued envelope recomputations get published;
a failing run is logged and the next one still runs; the app's lifespan starts the scheduler and stops it."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from envelope_province import BACKEND, FEEDER_LINE, envelope_province
from gridbridge.api.jobs import JobScheduler, PeriodicJob
from gridbridge.cli.bootstrap import app_from_environment
from gridbridge.cli.main import serve_log_config
from gridbridge.domain.envelope_publication import RunStatus
from gridbridge.domain.market import Instruction, InstructionStatus, NotificationKind
from gridbridge.domain.network import NetworkModel
from gridbridge.domain.network_state import NetworkEventKind
from gridbridge.domain.permissions import SYSTEM_CALLER
from gridbridge.services import envelope_runs, instructions, network_state
from gridbridge.services.context import Context
from gridbridge.services.envelope_store_ports import EnvelopeBackend, PreparedNetwork
from gridbridge.services.jobs import JobEnvironment, envelope_queue_tick, escalate_tick
from gridbridge.services.ports import Page
from gridbridge.store.tables import audit_records
from registry_province import Province, build_province


def _env(p: Province) -> JobEnvironment:
    return JobEnvironment(p.platform.uow_factory, p.clock, p.platform.settings.registry())


def _operating_instruction(p: Province) -> Instruction:
    """A TSO operating instruction to ldc_a (deadline: now plus the 5-minute operating window)."""
    start = p.clock.now() + timedelta(minutes=10)

    def issue(ctx: Context) -> Instruction:
        return instructions.issue_operating_instruction(
            ctx, p.tdis["tdi_a"], p_kw=50, interval_start=start, interval_end=start + timedelta(hours=1), reason="x"
        )

    return p.run("tso", issue)


def _status(p: Province, instruction_id: str) -> InstructionStatus:
    return p.run("regulator", lambda ctx: instructions.get_instruction(ctx, instruction_id).status)


def test_one_escalation_tick_escalates_only_what_is_overdue_as_the_platform(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    p = build_province(database_url)
    first = _operating_instruction(p)
    env = _env(p)
    assert escalate_tick(env) == []
    p.clock.advance(timedelta(minutes=3))
    second = _operating_instruction(p)  # deadline 2 minutes after the first's
    p.clock.advance(timedelta(minutes=2, seconds=30))  # past the first's deadline, before the second's

    with caplog.at_level(logging.INFO, logger="gridbridge.jobs"):
        escalated = escalate_tick(env)
    assert [i.id for i in escalated] == [first.id]
    assert (_status(p, first.id), _status(p, second.id)) == (InstructionStatus.ESCALATED, InstructionStatus.ISSUED)
    assert any(first.id in r.getMessage() and "escalated" in r.getMessage() for r in caplog.records)
    notes = p.run("tso", lambda ctx: instructions.list_notifications(ctx, Page()))
    assert [(n.kind, n.instruction_id) for n in notes] == [(NotificationKind.INSTRUCTION_OVERDUE, first.id)]
    with p.platform.unit_of_work() as uow:
        actors = uow.session.execute(
            select(audit_records.c.actor_user_id).where(audit_records.c.action == "instruction.escalate")
        ).all()
    assert [a for (a,) in actors] == [SYSTEM_CALLER.user_id]
    # a second tick at the same time has nothing left to do
    assert escalate_tick(env) == []


class _FailingOnce:
    """The real backend, except that the first ``prepare`` raises (a crash outside the service's error tree)."""

    def __init__(self, backend: EnvelopeBackend) -> None:
        self.backend = backend
        self.calls = 0

    def prepare(self, model: NetworkModel, *, source: str) -> PreparedNetwork:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("power flow crashed")
        return self.backend.prepare(model, source=source)


def test_the_envelope_queue_tick_publishes_queued_runs_and_survives_a_crashing_one(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    p = envelope_province(sqlite_url)
    start = p.clock.now()
    queued: list[str] = []
    for tdi, ldc in (("tdi_a", "ldc_a"), ("tdi_b", "ldc_b")):

        def outage(ctx: Context, tdi: str = tdi) -> str | None:
            done = network_state.record_event(
                ctx, p.tdis[tdi], NetworkEventKind.UNPLANNED_OUTAGE, start, start + timedelta(hours=1),
                open_elements=[FEEDER_LINE], reason="cable fault",
            )  # fmt: skip
            return done.queued_run.id if done.queued_run else None

        run_id = p.run(ldc, outage)
        assert run_id is not None
        queued.append(run_id)
        p.clock.advance(timedelta(minutes=1))  # tdi_a's run is the older one
    backend = _FailingOnce(BACKEND)

    with caplog.at_level(logging.INFO, logger="gridbridge.jobs"):
        outcomes = envelope_queue_tick(_env(p), backend)
    # the oldest run crashed: rolled back, logged, still queued; the next one was computed and published
    assert [(o.run.id, o.run.status) for o in outcomes] == [(queued[1], RunStatus.PUBLISHED)]
    assert outcomes[0].published > 0
    crashed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [queued[0] in r.getMessage() for r in crashed] == [True]

    def statuses(ctx: Context) -> list[RunStatus]:
        return [envelope_runs.get_run(ctx, run_id).status for run_id in queued]

    with p.platform.context() as ctx:
        assert statuses(ctx) == [RunStatus.QUEUED, RunStatus.PUBLISHED]
    # the next tick processes what was left
    assert [o.run.id for o in envelope_queue_tick(_env(p), backend)] == [queued[0]]
    with p.platform.context() as ctx:
        assert statuses(ctx) == [RunStatus.PUBLISHED, RunStatus.PUBLISHED]
    assert envelope_queue_tick(_env(p), backend) == []


def test_a_failing_job_run_is_logged_and_the_next_run_goes_ahead(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("database went away")

    job = PeriodicJob("flaky", 60.0, flaky)
    scheduler = JobScheduler([job])
    with caplog.at_level(logging.ERROR, logger="gridbridge.jobs"):
        assert scheduler.run_once(job) is False
        assert scheduler.run_once(job) is True
    assert calls == [0, 1]
    (record,) = caplog.records
    assert "periodic job flaky failed" in record.getMessage()
    assert record.exc_info is not None


def test_the_apps_lifespan_starts_the_jobs_and_stops_them_on_shutdown(database_url: str) -> None:
    p = build_province(database_url)
    overdue = _operating_instruction(p)
    p.clock.advance(timedelta(minutes=6))
    app = p.platform.app(with_jobs=True)
    with TestClient(app) as client:
        scheduler = app.state.jobs
        assert scheduler.running
        assert {j.name: j.interval_s for j in scheduler.jobs} == {"escalation": 60.0, "envelope-queue": 60.0}
        assert client.get("/notifications", headers={"Authorization": f"Bearer {p.tokens['tso']}"}).status_code == 200
    # shutdown waited for the runs in progress: every job ran once at startup, and no thread is left
    assert not scheduler.running
    assert _status(p, overdue.id) is InstructionStatus.ESCALATED
    # without with_jobs (the tests' and the CLI's app) nothing runs in the background
    plain = p.platform.app()
    with TestClient(plain):
        assert not hasattr(plain.state, "jobs")


def test_serve_builds_its_app_with_the_configured_intervals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    monkeypatch.setenv("GRIDBRIDGE_ESCALATION_INTERVAL_S", "0")
    monkeypatch.setenv("GRIDBRIDGE_ENVELOPE_QUEUE_INTERVAL_S", "0")
    app = app_from_environment()
    with TestClient(app):
        scheduler = app.state.jobs
        assert {j.name: j.interval_s for j in scheduler.jobs} == {"escalation": 0.0, "envelope-queue": 0.0}
        assert not scheduler.running  # 0 turns a job off
    # what the jobs log reaches uvicorn's console handler
    assert serve_log_config()["loggers"]["gridbridge"] == {"handlers": ["default"], "level": "INFO", "propagate": False}
