"""Use cases: per-interface envelope settings, envelope runs on the stored model, publication, the queue.

A run (:func:`compute_run`, owning DSO or the platform administrator) computes the envelopes of an interface
for ``intervals`` intervals from ``start`` (defaults: the interval in progress and the configured horizon)
on its stored network model with its stored settings:

- the horizon is split into blocks of consecutive intervals with the same network state (the outages,
  switching and derates in force during any part of an interval apply to all of it); each block is one
  :func:`~gridbridge.services.envelopes.compute_envelopes` call with that block's switching, on the model
  with that block's derates;
- the forecast comes from the backend: SimBench profiles for a model imported from ``simbench:CODE``;
- proportional weights are the capacity of the registered DERs at each point (approved, in service or
  enrolled) where there are any, else the network's own generator ratings;
- limits are rounded down to the watt; the run stores its envelopes as drafts, its calculation log (inputs,
  method, policy, version, settings, network events, each block's engine log) and its verification summary.

:func:`publish_run` issues a computed run's drafts (the intervals not yet over) as new versions; a run
computed before a network event that overlaps its horizon is refused (``envelopes.run_stale``) so that it
cannot undo the event's zero envelopes. Queued recomputations covered by the published run are marked
``replaced``; :func:`process_queued_run` computes and publishes one queued recomputation. In the same
transaction as a publication, the instructions already issued to the interface's DERs for the intervals it
covers are checked again against the new versions (``conflicts.recheck_points``: tier bypassing, resolved,
stored and notified).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

import gridbridge
from gridbridge.domain.envelope_publication import (
    NOTHING_TO_PUBLISH,
    RUN_NOT_PUBLISHABLE,
    RUN_STALE,
    EnvelopeBatch,
    EnvelopeRunRecord,
    EnvelopeSettings,
    RunStatus,
    RunTrigger,
    floor_to_interval,
)
from gridbridge.domain.envelopes import AllocationPolicy, Direction
from gridbridge.domain.errors import ConflictError, GridbridgeError, NotFound, PermissionDenied
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.network import NetworkModel
from gridbridge.domain.network_state import CombinedState, NetworkEvent, active_events, apply_derates, combined_state
from gridbridge.domain.permissions import Action, is_system, require_action
from gridbridge.domain.roles import Role
from gridbridge.domain.tdi import TDInterface
from gridbridge.services.conflicts import recheck_points
from gridbridge.services.context import Context
from gridbridge.services.envelope_access import (
    may_read_operations,
    owned_tdi,
    readable_tdi,
    settings_of,
    stored_model,
)
from gridbridge.services.envelope_store_ports import EnvelopeBackend, PreparedNetwork
from gridbridge.services.envelopes import METHOD, EnvelopeRequest, EnvelopeRun, compute_envelopes
from gridbridge.services.ports import ConnectionPointRef, Page
from gridbridge.services.tdis import get_tdi

_OPERATING = frozenset({DerStatus.APPROVED, DerStatus.IN_SERVICE, DerStatus.ENROLLED})
_COUNTS = ("verified", "infeasible", "failed", "not_verified", "no_points")


# --- settings -------------------------------------------------------------------------------------------------


def get_settings(ctx: Context, tdi_id: str) -> EnvelopeSettings:
    """An interface's envelope settings (owning DSO, TSO, observers); the defaults until changed."""
    tdi = readable_tdi(ctx, tdi_id)
    return settings_of(ctx, tdi.id)


def update_settings(ctx: Context, tdi_id: str, changes: dict[str, Any]) -> EnvelopeSettings:
    """Change an interface's envelope settings (owning DSO); validated as a whole, audited."""
    tdi = owned_tdi(ctx, tdi_id, Action.ENVELOPE_SETTINGS)
    before = settings_of(ctx, tdi.id)
    after = before.updated(changes)
    ctx.uow.envelopes.settings.save(tdi.id, after, at=ctx.clock.now(), by=ctx.caller.user_id)
    ctx.audit("envelopes.settings", "td_interface", tdi.id, before.as_dict(), after.as_dict())
    return after


# --- computing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """Consecutive intervals ``[first, first + count)`` of a run with one network state."""

    first: int
    count: int
    state: CombinedState


def blocks_of(events: Sequence[NetworkEvent], starts: Sequence[datetime], interval_minutes: int) -> list[Block]:
    """Group the intervals into runs of consecutive intervals with the same network state."""
    step = timedelta(minutes=interval_minutes)
    out: list[Block] = []
    for k, s in enumerate(starts):
        state = combined_state(active_events(events, s, s + step))
        if out and out[-1].state.key == state.key:
            last = out[-1]
            out[-1] = Block(last.first, last.count + 1, _union_ids(last.state, state))
        else:
            out.append(Block(k, 1, state))
    return out


def _union_ids(a: CombinedState, b: CombinedState) -> CombinedState:
    ids = tuple(dict.fromkeys([*a.event_ids, *b.event_ids]))
    return CombinedState(a.switching, a.derates, ids)


def _weights(ctx: Context, points: Sequence[ConnectionPointRef]) -> dict[str, float] | None:
    capacity: dict[int, float] = defaultdict(float)
    for der in ctx.uow.envelopes.ders_at_points([p.id for p in points]):
        if der.status in _OPERATING:
            capacity[der.connection_point_id] += der.capacity_kw
    weights = {p.bus: capacity[p.id] for p in points if capacity.get(p.id, 0.0) > 0}
    return weights or None


def _floor_kw(values: np.ndarray) -> np.ndarray:
    """Limits rounded down to the watt (a published value never exceeds the computed one)."""
    return np.floor(np.asarray(values, dtype=np.float64) * 1000.0 + 1e-9) / 1000.0


def _batch(tdi: TDInterface, points: Sequence[ConnectionPointRef], run: EnvelopeRun, run_id: str) -> EnvelopeBatch:
    """One block's envelopes as drafts, limits rounded down to the watt."""
    return EnvelopeBatch(
        tdi_id=tdi.id,
        run_id=run_id,
        point_ids=tuple(p.id for p in points),
        point_names=tuple(p.name for p in points),
        interval_starts=run.interval_starts,
        interval_minutes=run.interval_minutes,
        p_export_max_kw=_floor_kw(run.export.p_max_kw),
        p_import_max_kw=_floor_kw(run.import_.p_max_kw),
        binding_export=run.binding_labels(Direction.EXPORT),
        binding_import=run.binding_labels(Direction.IMPORT),
        status=tuple(f"{e}/{i}" for e, i in zip(run.export.status, run.import_.status, strict=True)),
    )


def _summary(runs: Sequence[EnvelopeRun]) -> dict[str, Any]:
    """The verification result of a run over all its blocks (and each block's own summary)."""
    blocks = [r.summary() for r in runs]
    out: dict[str, Any] = {
        "intervals": sum(b["intervals"] for b in blocks),
        "points": blocks[0]["points"] if blocks else 0,
        "blocks": len(blocks),
        "de_energised_points_max": max((b["de_energised_points"] for b in blocks), default=0),
        "base_intervals_beyond_limits": sum(b["base_intervals_beyond_limits"] for b in blocks),
    }
    for key in ("export", "import"):
        for status in _COUNTS:
            out[f"{key}_{status}"] = sum(b[f"{key}_{status}"] for b in blocks)
        out[f"{key}_kw_min"] = min((b[f"{key}_kw_min"] for b in blocks), default=0.0)
        out[f"{key}_kw_max"] = max((b[f"{key}_kw_max"] for b in blocks), default=0.0)
        out[f"{key}_max_v_violation_pu"] = max((b.get(f"{key}_max_v_violation_pu", 0.0) for b in blocks), default=0.0)
        out[f"{key}_max_loading_overshoot_pct"] = max(
            (b.get(f"{key}_max_loading_overshoot_pct", 0.0) for b in blocks), default=0.0
        )
    failed = out["export_failed"] + out["import_failed"]
    out["verification"] = "failed" if failed else "verified"
    out["block_summaries"] = blocks
    return out


def _log(
    tdi: TDInterface,
    settings: EnvelopeSettings,
    source: str,
    events: Sequence[NetworkEvent],
    blocks: Sequence[Block],
    runs: Sequence[EnvelopeRun],
    starts: Sequence[datetime],
    computed_at: datetime,
    weights: dict[str, float] | None,
) -> dict[str, Any]:
    return {
        "computed_at": computed_at.isoformat(),
        "gridbridge_version": gridbridge.__version__,
        "method": METHOD,
        "policy": settings.policy.value,
        "interface": {"id": tdi.id, "name": tdi.name, "export_limit_kw": tdi.export_limit_kw},
        "settings": settings.as_dict(),
        "network_source": source,
        "forecast": runs[0].log.inputs.get("forecast") if runs else None,
        "proportional_weights_kw": weights if settings.policy is AllocationPolicy.PROPORTIONAL else None,
        "network_events": [e.snapshot() for e in events],
        "blocks": [
            {
                "start": starts[b.first].isoformat(),
                "intervals": b.count,
                "switching": {
                    "open": list(b.state.switching.open_elements),
                    "close": list(b.state.switching.close_elements),
                },
                "derates": [{"element": n, "rating_pct": p} for n, p in b.state.derates],
                "events": list(b.state.event_ids),
                "engine_log": r.log.as_dict(),
            }
            for b, r in zip(blocks, runs, strict=True)
        ],
    }


@dataclass(frozen=True)
class RunOutcome:
    """A stored run and the engine results of its blocks (for the CLI's CSV and plots)."""

    run: EnvelopeRunRecord
    engine_runs: tuple[EnvelopeRun, ...]
    published: int = 0


def _compute(
    ctx: Context,
    backend: EnvelopeBackend,
    tdi: TDInterface,
    settings: EnvelopeSettings,
    start: datetime,
    intervals: int,
    run_id: str,
) -> tuple[list[EnvelopeBatch], dict[str, Any], dict[str, Any], tuple[EnvelopeRun, ...]]:
    """Compute (nothing is written): drafts, calculation log, summary and the block runs."""
    horizon = EnvelopeRequest(start=start, intervals=intervals, interval_minutes=settings.interval_minutes)
    model, source = stored_model(ctx, tdi)
    points = ctx.uow.networks.connection_points(tdi.id)
    starts = horizon.interval_starts
    end = starts[-1] + timedelta(minutes=settings.interval_minutes)
    events = ctx.uow.envelopes.events.overlapping(tdi.id, horizon.start, end)
    blocks = blocks_of(events, starts, settings.interval_minutes)
    limits = settings.network_limits(tdi.export_limit_kw)
    weights = _weights(ctx, points) if settings.policy is AllocationPolicy.PROPORTIONAL else None
    prepared: dict[tuple[tuple[str, float], ...], PreparedNetwork] = {}
    runs: list[EnvelopeRun] = []
    for block in blocks:
        key = block.state.derates
        if key not in prepared:
            derated: NetworkModel = apply_derates(model, key)
            prepared[key] = backend.prepare(derated, source=source)
        net = prepared[key]
        request = EnvelopeRequest(
            start=starts[block.first],
            intervals=block.count,
            interval_minutes=settings.interval_minutes,
            policy=settings.policy,
            limits=limits,
            connection_points=tuple(p.bus for p in points),
            weights_kw=weights,
            switching=block.state.switching,
        )
        runs.append(compute_envelopes(request, net.network, net.forecast, clock=ctx.clock))
    drafts = [_batch(tdi, points, r, run_id) for r in runs]
    now = ctx.clock.now()
    log = _log(tdi, settings, source, events, blocks, runs, starts, now, weights)
    return drafts, log, _summary(runs), tuple(runs)


def compute_run(
    ctx: Context,
    backend: EnvelopeBackend,
    tdi_id: str,
    *,
    start: datetime | None = None,
    intervals: int | None = None,
    publish: bool = False,
    trigger: RunTrigger = RunTrigger.API,
) -> RunOutcome:
    """Compute (and with ``publish`` publish) an interface's envelopes on its stored model (owning DSO).

    Bad input (a start off the interval grid or without zone, too long a horizon, an incomplete forecast,
    an unknown bus, ...) raises a coded error and nothing is stored or published.
    """
    tdi = owned_tdi(ctx, tdi_id, Action.ENVELOPE_RUN)
    if publish:
        require_action(ctx.caller, Action.ENVELOPE_PUBLISH)
    settings = settings_of(ctx, tdi.id)
    now = ctx.clock.now()
    first = start if start is not None else floor_to_interval(now, settings.interval_minutes)
    count = intervals if intervals is not None else settings.horizon_intervals
    run_id = ctx.new_id()
    drafts, log, summary, runs = _compute(ctx, backend, tdi, settings, first, count, run_id)
    record = EnvelopeRunRecord(
        id=run_id,
        tdi_id=tdi.id,
        status=RunStatus.COMPUTED,
        trigger=trigger,
        requested_by=ctx.caller.user_id,
        requested_at=now,
        start=runs[0].interval_starts[0],
        intervals=count,
        interval_minutes=settings.interval_minutes,
        policy=settings.policy,
        settings=settings.as_dict(),
        computed_at=now,
        envelope_count=sum(len(b) for b in drafts),
        log=log,
        summary=summary,
    )
    store = ctx.uow.envelopes
    store.runs.add(record)
    for batch in drafts:
        store.envelopes.add_drafts(batch)
    ctx.audit(
        "envelopes.run",
        "envelope_run",
        record.id,
        None,
        {**record.snapshot(), "verification": summary["verification"]},
    )
    published = 0
    if publish:
        record, published = _publish(ctx, record)
    return RunOutcome(record, runs, published)


def _known_events(run: EnvelopeRunRecord) -> set[str]:
    """Ids of the network events the run was computed with (its calculation log lists them)."""
    return {str(e["id"]) for e in (run.log or {}).get("network_events", [])}


def _stale_events(ctx: Context, run: EnvelopeRunRecord) -> list[NetworkEvent]:
    """Network events overlapping the run's horizon that the run did not know of (recorded after it)."""
    known = _known_events(run)
    return [e for e in ctx.uow.envelopes.events.overlapping(run.tdi_id, run.start, run.end) if e.id not in known]


def _publish(ctx: Context, run: EnvelopeRunRecord) -> tuple[EnvelopeRunRecord, int]:
    if run.status is not RunStatus.COMPUTED or run.computed_at is None:
        raise ConflictError(
            f"envelope run {run.id} is {run.status.value}; only a computed run can be published",
            field="run_id",
            code=RUN_NOT_PUBLISHABLE,
            details={"current_state": run.status.value},
        )
    stale = _stale_events(ctx, run)
    if stale:
        raise ConflictError(
            f"network events were recorded after run {run.id} was computed ({len(stale)}, first "
            f"{stale[0].kind.value} {stale[0].id}); compute the envelopes again",
            field="run_id",
            code=RUN_STALE,
            details={"event_ids": [e.id for e in stale]},
        )
    now = ctx.clock.now()
    store = ctx.uow.envelopes
    published = store.envelopes.publish_drafts(run.id, at=now, ending_after=now)
    if not published:
        raise ConflictError(
            f"every interval of envelope run {run.id} has ended; nothing is left to publish",
            field="run_id",
            code=NOTHING_TO_PUBLISH,
        )
    run.status = RunStatus.PUBLISHED
    run.published_at = now
    run.published_by = ctx.caller.user_id
    store.runs.update(run)
    # instructions already issued for the covered intervals are checked against the new versions now
    points = [p.id for p in ctx.uow.networks.connection_points(run.tdi_id)]
    recheck_points(ctx, points, max(run.start, now), run.end)
    replaced = []
    known = _known_events(run)
    for queued in store.runs.queued(run.tdi_id, 10_000):
        left = max(queued.start, floor_to_interval(now, queued.interval_minutes))
        if queued.event_id in known and left >= run.start and queued.end <= run.end:
            queued.status = RunStatus.REPLACED
            queued.replaced_by = run.id
            store.runs.update(queued)
            replaced.append(queued.id)
    ctx.audit(
        "envelopes.publish",
        "envelope_run",
        run.id,
        {"status": RunStatus.COMPUTED.value},
        {"status": run.status.value, "envelopes": published, "replaced_queued_runs": replaced},
    )
    return run, published


def _run_visible(ctx: Context, run_id: str) -> tuple[EnvelopeRunRecord, TDInterface]:
    run = ctx.uow.envelopes.runs.get(run_id)
    if run is None:
        raise NotFound(f"no envelope run {run_id}", field="run_id")
    tdi = get_tdi(ctx.uow, run.tdi_id)
    if not may_read_operations(ctx, tdi):
        raise NotFound(f"no envelope run {run_id}", field="run_id")
    return run, tdi


def publish_run(ctx: Context, run_id: str) -> tuple[EnvelopeRunRecord, int]:
    """Publish a computed run (the interface's owning DSO): its intervals not yet over become new envelope
    versions. Refused for a run in another state, a stale run, or one whose intervals are all over."""
    require_action(ctx.caller, Action.ENVELOPE_PUBLISH)
    run, tdi = _run_visible(ctx, run_id)
    if not is_system(ctx.caller) and tdi.dso_id != ctx.caller.participant_id:
        raise PermissionDenied("only the interface's owning DSO may publish its envelopes", field="run_id")
    return _publish(ctx, run)


def get_run(ctx: Context, run_id: str) -> EnvelopeRunRecord:
    """One run with its calculation log and verification summary (owning DSO, TSO, observers)."""
    caller = ctx.caller
    if not is_system(caller) and caller.role not in (Role.DSO, Role.TSO, Role.OBSERVER):
        raise PermissionDenied(f"role {caller.role.value} may not read envelope runs", field="role")
    run, _ = _run_visible(ctx, run_id)
    return run


def list_runs(ctx: Context, tdi_id: str, page: Page, *, status: RunStatus | None = None) -> list[EnvelopeRunRecord]:
    """An interface's runs, newest first (owning DSO, TSO, observers)."""
    tdi = readable_tdi(ctx, tdi_id)
    return ctx.uow.envelopes.runs.query(tdi.id, page, status=status)


def queued_run_ids(ctx: Context, *, tdi_id: str | None = None, limit: int = 100) -> list[str]:
    """Ids of queued recomputations, oldest first (the platform administrator's worker)."""
    return [r.id for r in ctx.uow.envelopes.runs.queued(tdi_id, limit)]


def process_queued_run(ctx: Context, backend: EnvelopeBackend, run_id: str) -> RunOutcome:
    """Compute and publish one queued recomputation over what is left of its window; on bad input the run is
    marked ``failed`` with the error (and nothing is published). The owning DSO or the administrator."""
    require_action(ctx.caller, Action.ENVELOPE_RUN)
    run, tdi = _run_visible(ctx, run_id)
    if not is_system(ctx.caller) and tdi.dso_id != ctx.caller.participant_id:
        raise PermissionDenied("only the interface's owning DSO may run its envelopes", field="run_id")
    if run.status is not RunStatus.QUEUED:
        raise ConflictError(
            f"envelope run {run.id} is {run.status.value}, not queued",
            field="run_id",
            code=RUN_NOT_PUBLISHABLE,
            details={"current_state": run.status.value},
        )
    now = ctx.clock.now()
    store = ctx.uow.envelopes
    settings = settings_of(ctx, tdi.id)
    first = floor_to_interval(max(run.start, now), settings.interval_minutes)
    count = math.ceil((run.end - first) / timedelta(minutes=settings.interval_minutes))
    before = run.snapshot()
    if count < 1:
        run.status = RunStatus.REPLACED
        run.error = {"message": "the window was over before the run was processed"}
        store.runs.update(run)
        ctx.audit("envelopes.run_skipped", "envelope_run", run.id, before, run.snapshot())
        return RunOutcome(run, ())
    try:
        drafts, log, summary, runs = _compute(ctx, backend, tdi, settings, first, count, run.id)
    except GridbridgeError as exc:
        run.status = RunStatus.FAILED
        run.error = {"code": exc.code, "field": exc.field, "message": exc.message}
        store.runs.update(run)
        ctx.audit("envelopes.run_failed", "envelope_run", run.id, before, {**run.snapshot(), "error": run.error})
        return RunOutcome(run, ())
    run.status = RunStatus.COMPUTED
    run.start = first
    run.intervals = count
    run.interval_minutes = settings.interval_minutes
    run.policy = settings.policy
    run.settings = settings.as_dict()
    run.computed_at = now
    run.envelope_count = sum(len(b) for b in drafts)
    run.log = log
    run.summary = summary
    store.runs.update(run)
    for batch in drafts:
        store.envelopes.add_drafts(batch)
    ctx.audit(
        "envelopes.run", "envelope_run", run.id, before, {**run.snapshot(), "verification": summary["verification"]}
    )
    run, published = _publish(ctx, run)
    return RunOutcome(run, runs, published)
