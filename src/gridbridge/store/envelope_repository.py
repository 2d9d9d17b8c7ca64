"""SQLAlchemy implementations of the envelope workflows' ports (``gridbridge.services.envelope_store_ports``),
and :func:`envelope_limits_in_force`, the published limits in force per connection point for an interval.

Nothing here commits: the unit of work does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import numpy as np
from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true, update
from sqlalchemy.orm import Session

from gridbridge.domain.der import Der
from gridbridge.domain.envelope_publication import (
    EnvelopeBatch,
    EnvelopeCause,
    EnvelopeRunRecord,
    EnvelopeSettings,
    HostingAssessment,
    RunStatus,
    RunTrigger,
    StoredEnvelope,
)
from gridbridge.domain.envelopes import AllocationPolicy, IntervalLimits, limits_over_interval
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.network_state import (
    Derate,
    NetworkEvent,
    NetworkEventKind,
    NetworkNotification,
    NotificationKind,
)
from gridbridge.domain.permissions import DerScope
from gridbridge.services.ports import ConnectionPointRef, Page
from gridbridge.store.envelope_tables import (
    envelope_runs,
    envelope_settings,
    hosting_assessments,
    network_events,
    network_notifications,
    operating_envelopes,
)
from gridbridge.store.network_tables import BusRow, ConnectionPointRow, FeederRow, NetworkRow
from gridbridge.store.tables import ders, td_interfaces

#: DER states in which a DER counts as approved for the default fallback (export default instead of 0).
APPROVED_STATES = frozenset({DerStatus.APPROVED, DerStatus.IN_SERVICE, DerStatus.ENROLLED})
_CHUNK = 500
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


# --- network events -----------------------------------------------------------------------------------------


def _event(row: Any) -> NetworkEvent:
    return NetworkEvent(
        id=row.id,
        tdi_id=row.tdi_id,
        kind=NetworkEventKind(row.kind),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
        open_elements=tuple(row.open_elements),
        close_elements=tuple(row.close_elements),
        derates=tuple(Derate(d["element"], float(d["rating_pct"])) for d in row.derates),
        reason=row.reason,
    )


class SqlNetworkEvents:
    """Outages, switching and derates per T-D interface."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, event: NetworkEvent) -> None:
        self.session.execute(
            network_events.insert().values(
                id=event.id,
                tdi_id=event.tdi_id,
                kind=event.kind,
                starts_at=event.starts_at,
                ends_at=event.ends_at,
                open_elements=list(event.open_elements),
                close_elements=list(event.close_elements),
                derates=[{"element": d.element, "rating_pct": d.rating_pct} for d in event.derates],
                reason=event.reason,
                recorded_by=event.recorded_by,
                recorded_at=event.recorded_at,
            )
        )

    def get(self, event_id: str) -> NetworkEvent | None:
        row = self.session.execute(select(network_events).where(network_events.c.id == event_id)).first()
        return None if row is None else _event(row)

    def overlapping(self, tdi_id: str, start: datetime, end: datetime) -> list[NetworkEvent]:
        t = network_events.c
        query = (
            select(network_events)
            .where(and_(t.tdi_id == tdi_id, t.starts_at < end, t.ends_at > start))
            .order_by(t.recorded_at, t.id)
        )
        return [_event(r) for r in self.session.execute(query)]

    def query(self, tdi_id: str, page: Page, *, active_at: datetime | None = None) -> list[NetworkEvent]:
        t = network_events.c
        query = select(network_events).where(t.tdi_id == tdi_id)
        if active_at is not None:
            query = query.where(and_(t.starts_at <= active_at, t.ends_at > active_at))
        query = query.order_by(t.starts_at, t.recorded_at, t.id).limit(page.limit).offset(page.offset)
        return [_event(r) for r in self.session.execute(query)]


# --- settings -------------------------------------------------------------------------------------------------

_SETTING_COLUMNS = (
    "v_min_pu",
    "v_max_pu",
    "max_loading_pct",
    "policy",
    "interval_minutes",
    "horizon_hours",
    "reverse_flow_limit_kw",
    "point_cap_kw",
    "default_export_kw",
    "default_import_kw",
    "default_unapproved_export_kw",
)


def _settings(row: Any) -> EnvelopeSettings:
    values = {name: getattr(row, name) for name in _SETTING_COLUMNS}
    values["policy"] = AllocationPolicy(values["policy"])
    return EnvelopeSettings(**values)


class SqlEnvelopeSettings:
    """Per-interface envelope settings (absent: the defaults)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, tdi_id: str) -> EnvelopeSettings | None:
        row = self.session.execute(select(envelope_settings).where(envelope_settings.c.tdi_id == tdi_id)).first()
        return None if row is None else _settings(row)

    def save(self, tdi_id: str, settings: EnvelopeSettings, *, at: datetime, by: str) -> None:
        values: dict[str, Any] = {name: getattr(settings, name) for name in _SETTING_COLUMNS}
        values.update(updated_at=at, updated_by=by)
        t = envelope_settings
        done = self.session.execute(update(t).where(t.c.tdi_id == tdi_id).values(**values))
        if done.rowcount == 0:  # type: ignore[attr-defined]
            self.session.execute(t.insert().values(tdi_id=tdi_id, **values))

    def get_many(self, tdi_ids: Iterable[str]) -> dict[str, EnvelopeSettings]:
        """Stored settings of the given interfaces (those without any are left out)."""
        ids = sorted(set(tdi_ids))
        if not ids:
            return {}
        rows = self.session.execute(select(envelope_settings).where(envelope_settings.c.tdi_id.in_(ids)))
        return {row.tdi_id: _settings(row) for row in rows}


# --- runs --------------------------------------------------------------------------------------------------------

_RUN_FIELDS = (
    "id",
    "tdi_id",
    "status",
    "trigger",
    "requested_by",
    "requested_at",
    "start",
    "intervals",
    "interval_minutes",
    "policy",
    "settings",
    "event_id",
    "computed_at",
    "published_at",
    "published_by",
    "envelope_count",
    "log",
    "summary",
    "error",
    "replaced_by",
)


def _run(row: Any) -> EnvelopeRunRecord:
    values = {name: getattr(row, name) for name in _RUN_FIELDS}
    values["status"] = RunStatus(values["status"])
    values["trigger"] = RunTrigger(values["trigger"])
    values["policy"] = AllocationPolicy(values["policy"])
    return EnvelopeRunRecord(**values)


class SqlEnvelopeRuns:
    """Envelope runs with their calculation logs and verification summaries."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, run: EnvelopeRunRecord) -> None:
        self.session.execute(envelope_runs.insert().values(**{n: getattr(run, n) for n in _RUN_FIELDS}))

    def get(self, run_id: str) -> EnvelopeRunRecord | None:
        row = self.session.execute(select(envelope_runs).where(envelope_runs.c.id == run_id)).first()
        return None if row is None else _run(row)

    def update(self, run: EnvelopeRunRecord) -> None:
        values = {n: getattr(run, n) for n in _RUN_FIELDS if n != "id"}
        self.session.execute(update(envelope_runs).where(envelope_runs.c.id == run.id).values(**values))

    def query(self, tdi_id: str, page: Page, *, status: RunStatus | None = None) -> list[EnvelopeRunRecord]:
        t = envelope_runs.c
        query = select(envelope_runs).where(t.tdi_id == tdi_id)
        if status is not None:
            query = query.where(t.status == status)
        query = query.order_by(t.requested_at.desc(), t.id).limit(page.limit).offset(page.offset)
        return [_run(r) for r in self.session.execute(query)]

    def queued(self, tdi_id: str | None, limit: int) -> list[EnvelopeRunRecord]:
        t = envelope_runs.c
        query = select(envelope_runs).where(t.status == RunStatus.QUEUED)
        if tdi_id is not None:
            query = query.where(t.tdi_id == tdi_id)
        query = query.order_by(t.requested_at, t.id).limit(limit)
        return [_run(r) for r in self.session.execute(query)]


# --- stored envelopes -----------------------------------------------------------------------------------------

_ENVELOPE_FIELDS = (
    "tdi_id",
    "connection_point_id",
    "connection_point",
    "interval_start",
    "interval_end",
    "p_export_max_kw",
    "p_import_max_kw",
    "binding_export",
    "binding_import",
    "expiry",
    "cause",
    "status",
    "run_id",
    "event_id",
    "issued_at",
    "version",
    "superseded_at",
)


def _envelope(row: Any) -> StoredEnvelope:
    values = {name: getattr(row, name) for name in _ENVELOPE_FIELDS}
    values["cause"] = EnvelopeCause(values["cause"])
    return StoredEnvelope(id=int(row.id), **values)


def point_visibility(scope: DerScope, point_id: Any, tdi_id: Any) -> ColumnElement[bool]:
    """Which connection points' envelopes ``scope`` may see, as SQL on a point-id and an interface-id column.

    Everything for observers; an LDC: every point of its interfaces; an aggregator or DER owner: the points of
    the DERs it owns (or represents); the TSO: every point of interfaces whose model in force shows it every DER,
    and the points with a market-participating DER where the model shows it those only.
    """
    if scope.everything:
        return true()
    if scope.dso_id is not None:
        owned = select(td_interfaces.c.id).where(td_interfaces.c.dso_id == scope.dso_id)
        return cast(ColumnElement[bool], tdi_id.in_(owned))
    if scope.party_id is not None:
        party = ders.c.owner_id == scope.party_id
        if scope.include_represented:
            party = or_(party, ders.c.representative_id == scope.party_id)
        return exists().where(and_(ders.c.connection_point_id == point_id, party))
    conditions: list[ColumnElement[bool]] = []
    if scope.tdi_all:
        conditions.append(tdi_id.in_(sorted(scope.tdi_all)))
    if scope.tdi_market:
        market_der = exists().where(and_(ders.c.connection_point_id == point_id, ders.c.market_participating.is_(True)))
        conditions.append(and_(tdi_id.in_(sorted(scope.tdi_market)), market_der))
    return or_(*conditions) if conditions else false()


def _approved_points(session: Session, point_ids: Sequence[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(point_ids):
        rows = session.execute(
            select(ders.c.connection_point_id)
            .where(and_(ders.c.connection_point_id.in_(chunk), ders.c.status.in_(sorted(APPROVED_STATES))))
            .distinct()
        )
        found.update(int(r[0]) for r in rows)
    return found


def envelope_limits_in_force(
    session: Session,
    point_ids: Iterable[int],
    start: datetime,
    end: datetime | None = None,
    *,
    approved: Mapping[int, bool] | None = None,
) -> dict[int, IntervalLimits]:
    """The published limits in force for each connection point over ``[start, end)`` (``end`` None: the instant
    ``start``), falling back exactly as :func:`gridbridge.domain.envelopes.limits_in_force` says.

    For each point: the smallest export and the smallest import limit in force at any time of the interval
    (:func:`~gridbridge.domain.envelopes.limits_over_interval`); where no published envelope covers a time
    and has not expired, the interface's configured default (``envelope_settings``, else 1.5 kW export and
    1.5 kW import) applies, with ``default_unapproved_export_kw`` (normally 0) as the export limit of a point
    that is not ``approved``. ``approved`` maps point id to a flag; None derives it: a point is approved when
    at least one DER at it is approved, in service or enrolled. Unknown point ids are left out. The result is
    keyed by point id; each value's ``connection_point`` is the point id as text.
    """
    ids = sorted({int(p) for p in point_ids})
    if not ids:
        return {}
    tdi_of: dict[int, str] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(ConnectionPointRow.id, ConnectionPointRow.tdi_id).where(ConnectionPointRow.id.in_(chunk))
        )
        tdi_of.update({int(i): str(t) for i, t in rows})
    known = sorted(tdi_of)
    stored = SqlEnvelopeSettings(session).get_many(tdi_of.values())
    fallback = EnvelopeSettings()
    approved_set = (
        {p for p in known if approved.get(p, False)} if approved is not None else _approved_points(session, known)
    )
    stop = end if end is not None and end > start else start
    by_point: dict[int, list[StoredEnvelope]] = defaultdict(list)
    e = operating_envelopes.c
    for chunk in _chunks(known):
        rows = session.execute(
            select(operating_envelopes).where(
                and_(
                    e.connection_point_id.in_(chunk),
                    e.issued_at.is_not(None),
                    e.superseded_at.is_(None),
                    e.interval_start <= stop,
                    e.interval_end > start,
                    e.expiry > start,
                )
            )
        )
        for row in rows:
            env = _envelope(row)
            by_point[env.connection_point_id].append(env)
    out: dict[int, IntervalLimits] = {}
    for point in known:
        defaults = stored.get(tdi_of[point], fallback).defaults()
        envs = [x.as_operating_envelope() for x in by_point.get(point, [])]
        out[point] = limits_over_interval(envs, str(point), start, end, defaults, approved=point in approved_set)
    return out


class SqlStoredEnvelopes:
    """Drafts of computed runs and published envelope versions."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_drafts(self, batch: EnvelopeBatch) -> int:
        step = timedelta(minutes=batch.interval_minutes)
        exports = np.asarray(batch.p_export_max_kw, dtype=np.float64).tolist()
        imports = np.asarray(batch.p_import_max_kw, dtype=np.float64).tolist()
        bind_exp = np.asarray(batch.binding_export, dtype=object).tolist()
        bind_imp = np.asarray(batch.binding_import, dtype=object).tolist()
        points = list(zip(batch.point_ids, batch.point_names, strict=True))
        rows: list[dict[str, Any]] = []
        for k, start in enumerate(batch.interval_starts):
            end = start + step
            common = {
                "tdi_id": batch.tdi_id,
                "interval_start": start,
                "interval_end": end,
                "expiry": end,
                "cause": EnvelopeCause.RUN,
                "status": batch.status[k],
                "run_id": batch.run_id,
                "event_id": None,
                "issued_at": None,
                "version": None,
                "superseded_at": None,
            }
            exp_k, imp_k, be_k, bi_k = exports[k], imports[k], bind_exp[k], bind_imp[k]
            for j, (point_id, name) in enumerate(points):
                rows.append(
                    {
                        **common,
                        "connection_point_id": point_id,
                        "connection_point": name,
                        "p_export_max_kw": exp_k[j],
                        "p_import_max_kw": imp_k[j],
                        "binding_export": str(be_k[j]),
                        "binding_import": str(bi_k[j]),
                    }
                )
            if len(rows) >= 5000:
                self.session.execute(operating_envelopes.insert(), rows)
                rows = []
        if rows:
            self.session.execute(operating_envelopes.insert(), rows)
        return len(batch)

    def publish_drafts(self, run_id: str, *, at: datetime, ending_after: datetime) -> int:
        o = operating_envelopes
        d = o.alias("draft")
        prior = o.alias("prior")
        same_key = and_(
            d.c.connection_point_id == o.c.connection_point_id,
            d.c.interval_start == o.c.interval_start,
            d.c.interval_end == o.c.interval_end,
        )
        publishable = and_(d.c.run_id == run_id, d.c.issued_at.is_(None), d.c.interval_end > ending_after)
        self.session.execute(
            update(o)
            .where(and_(o.c.issued_at.is_not(None), o.c.superseded_at.is_(None), same_key, publishable))
            .values(superseded_at=at)
        )
        latest = (
            select(func.max(prior.c.version))
            .where(
                and_(
                    prior.c.connection_point_id == o.c.connection_point_id,
                    prior.c.interval_start == o.c.interval_start,
                    prior.c.interval_end == o.c.interval_end,
                    prior.c.issued_at.is_not(None),
                )
            )
            .scalar_subquery()
        )
        done = self.session.execute(
            update(o)
            .where(and_(o.c.run_id == run_id, o.c.issued_at.is_(None), o.c.interval_end > ending_after))
            .values(issued_at=at, version=func.coalesce(latest, 0) + 1)
        )
        return int(done.rowcount)  # type: ignore[attr-defined]

    def current(self, point_ids: Sequence[int], start: datetime, end: datetime) -> list[StoredEnvelope]:
        e = operating_envelopes.c
        out: list[StoredEnvelope] = []
        for chunk in _chunks(sorted(set(point_ids))):
            query = (
                select(operating_envelopes)
                .where(
                    and_(
                        e.connection_point_id.in_(chunk),
                        e.issued_at.is_not(None),
                        e.superseded_at.is_(None),
                        e.interval_start < end,
                        e.interval_end > start,
                    )
                )
                .order_by(e.connection_point_id, e.interval_start)
            )
            out.extend(_envelope(r) for r in self.session.execute(query))
        return out

    def publish(self, envelopes: Sequence[StoredEnvelope], *, at: datetime) -> int:
        if not envelopes:
            return 0
        e = operating_envelopes.c
        points = sorted({x.connection_point_id for x in envelopes})
        lo = min(x.interval_start for x in envelopes)
        hi = max(x.interval_end for x in envelopes)
        latest: dict[tuple[int, datetime, datetime], int] = {}
        current: dict[tuple[int, datetime, datetime], list[int]] = defaultdict(list)
        for chunk in _chunks(points):
            rows = self.session.execute(
                select(e.id, e.connection_point_id, e.interval_start, e.interval_end, e.version, e.superseded_at).where(
                    and_(
                        e.connection_point_id.in_(chunk),
                        e.issued_at.is_not(None),
                        e.interval_start >= lo,
                        e.interval_end <= hi,
                    )
                )
            )
            for row in rows:
                key = (int(row.connection_point_id), row.interval_start, row.interval_end)
                latest[key] = max(latest.get(key, 0), int(row.version or 0))
                if row.superseded_at is None:
                    current[key].append(int(row.id))
        superseded: list[int] = []
        inserts: list[dict[str, Any]] = []
        for x in envelopes:
            key = (x.connection_point_id, x.interval_start, x.interval_end)
            version = latest.get(key, 0) + 1
            latest[key] = version
            superseded.extend(current.pop(key, []))
            values = {n: getattr(x, n) for n in _ENVELOPE_FIELDS}
            values.update(issued_at=at, version=version, superseded_at=None)
            inserts.append(values)
        for chunk in _chunks(superseded):
            self.session.execute(update(operating_envelopes).where(e.id.in_(chunk)).values(superseded_at=at))
        for part in _chunks(inserts, 5000):
            self.session.execute(operating_envelopes.insert(), list(part))
        return len(envelopes)

    def query(
        self,
        scope: DerScope,
        page: Page,
        *,
        tdi_id: str | None = None,
        point_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        include_superseded: bool = False,
    ) -> list[StoredEnvelope]:
        e = operating_envelopes.c
        query = select(operating_envelopes).where(
            and_(e.issued_at.is_not(None), point_visibility(scope, e.connection_point_id, e.tdi_id))
        )
        if not include_superseded:
            query = query.where(e.superseded_at.is_(None))
        if tdi_id is not None:
            query = query.where(e.tdi_id == tdi_id)
        if point_id is not None:
            query = query.where(e.connection_point_id == point_id)
        if start is not None:
            query = query.where(e.interval_end > start)
        if end is not None:
            query = query.where(e.interval_start < end)
        query = (
            query.order_by(e.interval_start, e.connection_point_id, e.interval_end, e.version)
            .limit(page.limit)
            .offset(page.offset)
        )
        return [_envelope(r) for r in self.session.execute(query)]

    def limits_in_force(
        self,
        point_ids: Sequence[int],
        start: datetime,
        end: datetime | None = None,
        *,
        approved: Mapping[int, bool] | None = None,
    ) -> dict[int, IntervalLimits]:
        return envelope_limits_in_force(self.session, point_ids, start, end, approved=approved)


# --- notifications -----------------------------------------------------------------------------------------------


def _notification(row: Any) -> NetworkNotification:
    return NetworkNotification(
        id=row.id,
        recipient_id=row.recipient_id,
        tdi_id=row.tdi_id,
        event_id=row.event_id,
        kind=NotificationKind(row.kind),
        created_at=row.created_at,
        message=row.message,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        connection_point_ids=tuple(int(p) for p in row.connection_point_ids),
        de_energised_point_ids=tuple(int(p) for p in row.de_energised_point_ids),
        der_ids=tuple(str(d) for d in row.der_ids),
        zeroed_envelopes=int(row.zeroed_envelopes),
        queued_run_id=row.queued_run_id,
    )


class SqlNetworkNotifications:
    """Network-state notifications, one row per recipient."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, notifications: Sequence[NetworkNotification]) -> None:
        if not notifications:
            return
        rows = [
            {
                "id": n.id,
                "recipient_id": n.recipient_id,
                "tdi_id": n.tdi_id,
                "event_id": n.event_id,
                "kind": n.kind,
                "created_at": n.created_at,
                "message": n.message,
                "starts_at": n.starts_at,
                "ends_at": n.ends_at,
                "connection_point_ids": list(n.connection_point_ids),
                "de_energised_point_ids": list(n.de_energised_point_ids),
                "der_ids": list(n.der_ids),
                "zeroed_envelopes": n.zeroed_envelopes,
                "queued_run_id": n.queued_run_id,
            }
            for n in notifications
        ]
        self.session.execute(network_notifications.insert(), rows)

    def query(self, recipient_id: str | None, page: Page, *, tdi_id: str | None = None) -> list[NetworkNotification]:
        t = network_notifications.c
        query = select(network_notifications)
        if recipient_id is not None:
            query = query.where(t.recipient_id == recipient_id)
        if tdi_id is not None:
            query = query.where(t.tdi_id == tdi_id)
        query = query.order_by(t.created_at.desc(), t.id).limit(page.limit).offset(page.offset)
        return [_notification(r) for r in self.session.execute(query)]


# --- hosting-capacity assessments --------------------------------------------------------------------------------

_ASSESSMENT_FIELDS = (
    "id",
    "der_id",
    "tdi_id",
    "connection_point_id",
    "connection_point",
    "computed_at",
    "study_start",
    "intervals",
    "interval_minutes",
    "p_export_max_kw",
    "binding_export",
    "p_import_max_kw",
    "binding_import",
    "requested_export_kw",
    "requested_import_kw",
    "exceeds",
    "binding_element",
    "status_export",
    "status_import",
    "review_id",
    "log",
)


class SqlHostingAssessments:
    """Recorded hosting-capacity assessments of interconnection requests."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, assessment: HostingAssessment) -> None:
        self.session.execute(
            hosting_assessments.insert().values(**{n: getattr(assessment, n) for n in _ASSESSMENT_FIELDS})
        )

    def latest(self, der_id: str) -> HostingAssessment | None:
        t = hosting_assessments.c
        row = self.session.execute(
            select(hosting_assessments).where(t.der_id == der_id).order_by(t.computed_at.desc(), t.id).limit(1)
        ).first()
        if row is None:
            return None
        return HostingAssessment(recorded=True, **{n: getattr(row, n) for n in _ASSESSMENT_FIELDS})

    def attach_review(self, assessment_id: str, review_id: str) -> None:
        t = hosting_assessments
        self.session.execute(update(t).where(t.c.id == assessment_id).values(review_id=review_id))


# --- the port ------------------------------------------------------------------------------------------------------


class SqlEnvelopeStore:
    """The envelope workflows' repositories on one session (``uow.envelopes``)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.events = SqlNetworkEvents(session)
        self.settings = SqlEnvelopeSettings(session)
        self.runs = SqlEnvelopeRuns(session)
        self.envelopes = SqlStoredEnvelopes(session)
        self.notifications = SqlNetworkNotifications(session)
        self.hosting = SqlHostingAssessments(session)

    def ders_at_points(self, point_ids: Sequence[int]) -> list[Der]:
        out: list[Der] = []
        for chunk in _chunks(sorted(set(point_ids))):
            query = select(Der).where(ders.c.connection_point_id.in_(chunk)).order_by(ders.c.requested_at, ders.c.id)
            out.extend(self.session.scalars(query))
        return out

    def network_source(self, tdi_id: str) -> str | None:
        row = self.session.execute(select(NetworkRow.source).where(NetworkRow.tdi_id == tdi_id)).first()
        return None if row is None else str(row[0])

    def visible_points(self, scope: DerScope, tdi_id: str | None = None) -> list[ConnectionPointRef]:
        cp = ConnectionPointRow
        query = (
            select(cp.id, cp.name, cp.tdi_id, BusRow.name, FeederRow.name)
            .join(BusRow, BusRow.id == cp.bus_id)
            .outerjoin(FeederRow, FeederRow.id == cp.feeder_id)
            .where(point_visibility(scope, cp.id, cp.tdi_id))
        )
        if tdi_id is not None:
            query = query.where(cp.tdi_id == tdi_id)
        query = query.order_by(cp.tdi_id, cp.position)
        return [
            ConnectionPointRef(id=int(i), name=name, tdi_id=t, feeder=feeder, bus=bus)
            for i, name, t, bus, feeder in self.session.execute(query)
        ]
