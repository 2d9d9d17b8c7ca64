"""Use cases: the DSO records outages, switching and derates; the platform applies them at once and tells
everyone affected.

Recording a :class:`~gridbridge.domain.network_state.NetworkEvent` (owning DSO only) does, in one transaction:

1. validates the event (window, kind, element names against the stored network model, radial operation);
2. topology processing on the stored model for every piece of the event's remaining window with the events
   then in force: the de-energised connection points and the feeder serving each point after switching;
3. publishes, at once, zero limits for every de-energised point over the window: a superseding version
   (never an in-place edit) of each published envelope that overlaps it, and a zero envelope for the parts
   of the window no published envelope covers (so a de-energised point never falls back to its default);
4. checks the instructions already issued to DERs at those points over the window again
   (``conflicts.recheck_points``): each one the dark points cannot follow is a ``tier_bypassing_deenergised``
   conflict, resolved, stored and notified at once;
5. queues a recomputation of the interface's envelopes over the window (``envelope_runs`` status
   ``queued``; ``gridbridge envelopes run-queued`` processes it, and a later published run replaces it);
6. notifies the affected participants: the owning DSO, the owners and representatives of DERs at affected
   points (those de-energised, moved to another feeder, or below a derated branch), and the TSO with the DERs
   its coordination model lets it see;
7. appends the audit records.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from gridbridge.domain.coordination import TsoDerVisibility
from gridbridge.domain.der import Der
from gridbridge.domain.envelope_publication import (
    DE_ENERGISED_BINDING,
    EnvelopeCause,
    EnvelopeRunRecord,
    RunStatus,
    RunTrigger,
    StoredEnvelope,
    floor_to_interval,
)
from gridbridge.domain.envelopes import UNKNOWN_ELEMENT
from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.network_state import (
    Derate,
    NetworkEvent,
    NetworkEventKind,
    NetworkNotification,
    NotificationKind,
    combined_state,
    new_event,
    state_segments,
)
from gridbridge.domain.permissions import Action, Caller, der_scope, is_system
from gridbridge.domain.roles import Role
from gridbridge.domain.tdi import TDInterface
from gridbridge.engines.envelopes import apply_switching, de_energised, process_topology
from gridbridge.engines.envelopes._types import BoolArray, IntArray
from gridbridge.engines.envelopes.model_topology import branch_positions, buses_below, topology_inputs_from_model
from gridbridge.engines.envelopes.topology import Topology, TopologyInputs
from gridbridge.services.conflicts import recheck_points
from gridbridge.services.context import Context
from gridbridge.services.envelope_access import owned_tdi, readable_tdi, settings_of, stored_model
from gridbridge.services.ports import ConnectionPointRef, Page
from gridbridge.services.tdis import tso_visibility

_GONE = frozenset({DerStatus.RETIRED, DerStatus.REJECTED})


@dataclass(frozen=True)
class EventRecorded:
    """What recording an event did: the connection points it de-energises and affects, how many envelope
    versions it issued at once (zero limits), the notifications sent and the queued recomputation."""

    event: NetworkEvent
    de_energised_point_ids: tuple[int, ...]
    affected_point_ids: tuple[int, ...]
    zeroed_envelopes: int
    notifications: tuple[NetworkNotification, ...]
    queued_run: EnvelopeRunRecord | None


@dataclass(frozen=True)
class _PointState:
    dead: BoolArray
    feeders: tuple[str | None, ...]


class _Topologies:
    """Topology of the stored model under combinations of events, computed once per distinct switching."""

    def __init__(self, inputs: TopologyInputs, point_buses: IntArray) -> None:
        self.inputs = inputs
        self.point_buses = point_buses
        self._cache: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[_PointState, Topology]] = {}

    def state(self, events: Sequence[NetworkEvent]) -> tuple[_PointState, Topology]:
        combined = combined_state(events)
        key = (combined.switching.open_elements, combined.switching.close_elements)
        if key not in self._cache:
            switched = apply_switching(self.inputs, key[0], key[1])
            topo = process_topology(switched)
            point = _PointState(de_energised(topo, self.point_buses), topo.feeder_names(self.point_buses))
            self._cache[key] = (point, topo)
        return self._cache[key]


def _check_elements(inputs: TopologyInputs, event: NetworkEvent) -> None:
    for field_name, names in (("open_elements", event.open_elements), ("close_elements", event.close_elements)):
        for name in names:
            try:
                apply_switching(inputs, (name,), ())
            except ValidationFailed as exc:
                raise ValidationFailed(
                    f"{field_name}: {exc.message}", field=field_name, code=exc.code, details=exc.details
                ) from exc
    for derate in event.derates:
        try:
            branch_positions(inputs, (derate.element,))
        except KeyError as exc:
            raise ValidationFailed(
                f"derate element {derate.element!r} is not exactly one line or transformer of the network "
                "(prefix line: or trafo: where a name is ambiguous)",
                field="derates",
                code=UNKNOWN_ELEMENT,
                details={"element": derate.element},
            ) from exc


def _merge(windows: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _subtract(
    windows: list[tuple[datetime, datetime]], covered: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    gaps: list[tuple[datetime, datetime]] = []
    cover = _merge(covered)
    for a, b in windows:
        cursor = a
        for c, d in cover:
            if d <= cursor or c >= b:
                continue
            if c > cursor:
                gaps.append((cursor, c))
            cursor = max(cursor, d)
        if cursor < b:
            gaps.append((cursor, b))
    return gaps


def _zero_envelopes(
    ctx: Context,
    tdi: TDInterface,
    points: Sequence[ConnectionPointRef],
    zero_windows: dict[int, list[tuple[datetime, datetime]]],
    event: NetworkEvent,
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[int, int]:
    """Issue zero envelopes for the de-energised points (see the module docstring); count per point id."""
    store = ctx.uow.envelopes
    ids = [points[j].id for j in zero_windows]
    current: dict[int, list[StoredEnvelope]] = defaultdict(list)
    for env in store.envelopes.current(ids, start, end):
        current[env.connection_point_id].append(env)
    rows: list[StoredEnvelope] = []
    for j, windows in zero_windows.items():
        point = points[j]
        merged = _merge(windows)
        covered: list[tuple[datetime, datetime]] = []
        for env in current.get(point.id, []):
            if not any(env.interval_start < b and env.interval_end > a for a, b in merged):
                continue
            covered.append((env.interval_start, env.interval_end))
            if env.p_export_max_kw == 0 and env.p_import_max_kw == 0 and env.binding_export == DE_ENERGISED_BINDING:
                continue
            rows.append(
                replace(
                    env,
                    id=None,
                    p_export_max_kw=0.0,
                    p_import_max_kw=0.0,
                    binding_export=DE_ENERGISED_BINDING,
                    binding_import=DE_ENERGISED_BINDING,
                    cause=EnvelopeCause.NETWORK_EVENT,
                    status=DE_ENERGISED_BINDING,
                    run_id=None,
                    event_id=event.id,
                    issued_at=None,
                    version=None,
                    superseded_at=None,
                )
            )
        for a, b in _subtract(merged, covered):
            rows.append(
                StoredEnvelope(
                    tdi_id=tdi.id,
                    connection_point_id=point.id,
                    connection_point=point.name,
                    interval_start=a,
                    interval_end=b,
                    p_export_max_kw=0.0,
                    p_import_max_kw=0.0,
                    binding_export=DE_ENERGISED_BINDING,
                    binding_import=DE_ENERGISED_BINDING,
                    expiry=b,
                    cause=EnvelopeCause.NETWORK_EVENT,
                    status=DE_ENERGISED_BINDING,
                    event_id=event.id,
                )
            )
    store.envelopes.publish(rows, at=now)
    counts: dict[int, int] = defaultdict(int)
    for row in rows:
        counts[row.connection_point_id] += 1
    return counts


def _queue_recomputation(
    ctx: Context, tdi: TDInterface, event: NetworkEvent, start: datetime, end: datetime, now: datetime
) -> EnvelopeRunRecord | None:
    settings = settings_of(ctx, tdi.id)
    step = timedelta(minutes=settings.interval_minutes)
    q_start = floor_to_interval(start, settings.interval_minutes)
    q_end = min(end, q_start + timedelta(hours=settings.horizon_hours))
    intervals = math.ceil((q_end - q_start) / step)
    if intervals < 1:
        return None
    run = EnvelopeRunRecord(
        id=ctx.new_id(),
        tdi_id=tdi.id,
        status=RunStatus.QUEUED,
        trigger=RunTrigger.NETWORK_EVENT,
        requested_by=ctx.caller.user_id,
        requested_at=now,
        start=q_start,
        intervals=intervals,
        interval_minutes=settings.interval_minutes,
        policy=settings.policy,
        settings=settings.as_dict(),
        event_id=event.id,
    )
    ctx.uow.envelopes.runs.add(run)
    ctx.audit("envelopes.run_queued", "envelope_run", run.id, None, run.snapshot())
    return run


def _tso_ids(ctx: Context) -> list[str]:
    return [p.id for p in ctx.uow.participants.list_all() if p.role is Role.TSO]


def _notify(
    ctx: Context,
    tdi: TDInterface,
    event: NetworkEvent,
    points: Sequence[ConnectionPointRef],
    affected: list[int],
    dead_by_event: list[int],
    zeroed: dict[int, int],
    queued: EnvelopeRunRecord | None,
    now: datetime,
) -> tuple[NetworkNotification, ...]:
    """One notification per affected participant (see the module docstring)."""
    affected_ids = [points[j].id for j in affected]
    dead_ids = {points[j].id for j in dead_by_event}
    ders_here: list[Der] = [d for d in ctx.uow.envelopes.ders_at_points(affected_ids) if d.status not in _GONE]
    visibility = tso_visibility(ctx.uow, now).get(tdi.id, TsoDerVisibility.NONE)
    window = f"{event.starts_at.isoformat()} to {event.ends_at.isoformat()}"
    what = event.kind.value.replace("_", " ")
    elements = ", ".join([*event.open_elements, *event.close_elements, *(d.element for d in event.derates)])
    head = f"{what} at {tdi.name} ({elements}) from {window}"
    plans: dict[str, tuple[set[int], list[Der]]] = {}

    def add(recipient: str, der: Der | None, point_ids: Sequence[int]) -> None:
        pts, mine = plans.setdefault(recipient, (set(), []))
        pts.update(point_ids)
        if der is not None and der not in mine:
            mine.append(der)

    add(tdi.dso_id, None, affected_ids)
    for der in ders_here:
        add(tdi.dso_id, der, ())
    for tso_id in _tso_ids(ctx):
        scope = der_scope(Caller(user_id="", participant_id=tso_id, role=Role.TSO), {tdi.id: visibility})
        add(tso_id, None, affected_ids)
        for der in ders_here:
            if scope.allows(der):
                add(tso_id, der, ())
    for der in ders_here:
        for party in (der.owner_id, der.representative_id):
            if party is not None:
                add(party, der, (der.connection_point_id,))
    out: list[NetworkNotification] = []
    for recipient, (pts, mine) in plans.items():
        point_ids = tuple(sorted(pts))
        their_dead = tuple(p for p in point_ids if p in dead_ids)
        n_zero = sum(zeroed.get(p, 0) for p in point_ids)
        parts = [head, f"{len(point_ids)} connection point(s) affected, {len(their_dead)} de-energised"]
        if n_zero:
            parts.append(f"{n_zero} envelope(s) set to 0 kW at once")
        if mine:
            parts.append("DERs: " + ", ".join(d.name for d in mine))
        if queued is not None:
            parts.append(f"envelope recomputation queued (run {queued.id})")
        out.append(
            NetworkNotification(
                id=ctx.new_id(),
                recipient_id=recipient,
                tdi_id=tdi.id,
                event_id=event.id,
                kind=NotificationKind.NETWORK_EVENT,
                created_at=now,
                message="; ".join(parts),
                starts_at=event.starts_at,
                ends_at=event.ends_at,
                connection_point_ids=point_ids,
                de_energised_point_ids=their_dead,
                der_ids=tuple(d.id for d in mine),
                zeroed_envelopes=n_zero,
                queued_run_id=queued.id if queued is not None else None,
            )
        )
    ctx.uow.envelopes.notifications.add_many(out)
    return tuple(out)


def record_event(
    ctx: Context,
    tdi_id: str,
    kind: NetworkEventKind,
    starts_at: datetime,
    ends_at: datetime,
    *,
    open_elements: Sequence[str] = (),
    close_elements: Sequence[str] = (),
    derates: Sequence[Derate] = (),
    reason: str = "",
) -> EventRecorded:
    """Record an outage, switching order or derate at an interface (owning DSO) and apply it at once (see the
    module docstring). Bad input raises a coded error naming the field; nothing is then written."""
    tdi = owned_tdi(ctx, tdi_id, Action.NETWORK_STATE)
    now = ctx.clock.now()
    event = new_event(
        event_id=ctx.new_id(),
        tdi_id=tdi.id,
        kind=kind,
        starts_at=starts_at,
        ends_at=ends_at,
        open_elements=open_elements,
        close_elements=close_elements,
        derates=derates,
        reason=reason,
        recorded_by=ctx.caller.user_id,
        now=now,
    )
    model, _ = stored_model(ctx, tdi)
    inputs = topology_inputs_from_model(model)
    _check_elements(inputs, event)
    points = ctx.uow.networks.connection_points(tdi.id)
    bus_pos = {name: i for i, name in enumerate(inputs.bus_names)}
    point_buses = np.asarray([bus_pos[p.bus] for p in points], dtype=np.int64)
    start, end = max(event.starts_at, now), event.ends_at
    others = ctx.uow.envelopes.events.overlapping(tdi.id, start, end)
    events = [*others, event]
    topologies = _Topologies(inputs, point_buses)
    zero_windows: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    affected = np.zeros(len(points), dtype=np.bool_)
    dead_by_event = np.zeros(len(points), dtype=np.bool_)
    derated = [d.element for d in event.derates]
    for a, b, active in state_segments(events, start, end):
        with_event, topo = topologies.state(active)
        without, _ = topologies.state(tuple(e for e in active if e.id != event.id))
        for j in np.flatnonzero(with_event.dead):
            zero_windows[int(j)].append((a, b))
        newly_dead = with_event.dead & ~without.dead
        dead_by_event |= newly_dead
        moved = (
            np.array([f != g for f, g in zip(with_event.feeders, without.feeders, strict=True)], dtype=np.bool_)
            & ~with_event.dead
        )
        affected |= newly_dead | moved
        if derated:
            below = buses_below(topo, branch_positions(inputs, derated).tolist())
            affected |= below[point_buses] & ~with_event.dead
    ctx.uow.envelopes.events.add(event)
    ctx.audit("network_state.record", "network_event", event.id, None, event.snapshot())
    zeroed = _zero_envelopes(ctx, tdi, points, zero_windows, event, start, end, now)
    # instructions already issued to the dark points are checked again now (tier bypassing), with notifications
    recheck_points(ctx, [points[j].id for j in zero_windows], start, end)
    queued = _queue_recomputation(ctx, tdi, event, start, end, now)
    affected_idx = [int(j) for j in np.flatnonzero(affected)]
    dead_idx = [int(j) for j in np.flatnonzero(dead_by_event)]
    notes = _notify(ctx, tdi, event, points, affected_idx, dead_idx, zeroed, queued, now)
    if zeroed:
        ctx.audit(
            "envelopes.zeroed",
            "network_event",
            event.id,
            None,
            {"envelopes": sum(zeroed.values()), "connection_point_ids": sorted(zeroed)},
        )
    return EventRecorded(
        event=event,
        de_energised_point_ids=tuple(points[j].id for j in dead_idx),
        affected_point_ids=tuple(points[j].id for j in affected_idx),
        zeroed_envelopes=sum(zeroed.values()),
        notifications=notes,
        queued_run=queued,
    )


def list_events(ctx: Context, tdi_id: str, page: Page, *, active_at: datetime | None = None) -> list[NetworkEvent]:
    """An interface's network events (owning DSO, TSO, observers), by start time."""
    tdi = readable_tdi(ctx, tdi_id)
    return ctx.uow.envelopes.events.query(tdi.id, page, active_at=active_at)


def list_notifications(ctx: Context, page: Page, *, tdi_id: str | None = None) -> list[NetworkNotification]:
    """The caller's network-state notifications, newest first (observers see every notification)."""
    caller = ctx.caller
    recipient = None if is_system(caller) or caller.role is Role.OBSERVER else caller.participant_id
    return ctx.uow.envelopes.notifications.query(recipient, page, tdi_id=tdi_id)
