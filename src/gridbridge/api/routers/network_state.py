"""Network state: outages, switching and derates recorded by the owning DSO, and the notifications they send."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, Strict, paging
from gridbridge.domain.network_state import (
    Derate,
    NetworkEvent,
    NetworkEventKind,
    NetworkNotification,
    NotificationKind,
)
from gridbridge.services import network_state as service
from gridbridge.services.context import Context
from gridbridge.services.ports import Page

router = APIRouter(tags=["network state"])
TdiId = Annotated[str, Path(max_length=64)]
ElementName = Annotated[str, Field(min_length=1, max_length=200)]


class DerateIn(Strict):
    element: ElementName
    rating_pct: float = Field(description="Percent of the rating still available, above 0 and at most 100")


class NetworkEventIn(Strict):
    kind: NetworkEventKind
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    open_elements: list[ElementName] = Field(default_factory=list, max_length=1000)
    close_elements: list[ElementName] = Field(default_factory=list, max_length=1000)
    derates: list[DerateIn] = Field(default_factory=list, max_length=1000)
    reason: str = Field(default="", max_length=2000)


class DerateOut(Out):
    element: str
    rating_pct: float


class NetworkEventOut(Out):
    id: str
    tdi_id: str
    kind: NetworkEventKind
    starts_at: datetime
    ends_at: datetime
    open_elements: list[str]
    close_elements: list[str]
    derates: list[DerateOut]
    reason: str
    recorded_by: str
    recorded_at: datetime


class EventRecordedOut(Out):
    event: NetworkEventOut
    de_energised_point_ids: list[int]
    affected_point_ids: list[int]
    zeroed_envelopes: int = Field(description="Envelope versions issued at once with zero limits")
    notified_participant_ids: list[str]
    queued_run_id: str | None


class NotificationOut(Out):
    id: str
    recipient_id: str
    tdi_id: str
    event_id: str
    kind: NotificationKind
    created_at: datetime
    message: str
    starts_at: datetime
    ends_at: datetime
    connection_point_ids: list[int]
    de_energised_point_ids: list[int]
    der_ids: list[str]
    zeroed_envelopes: int
    queued_run_id: str | None


def render_event(event: NetworkEvent) -> NetworkEventOut:
    """An event as the API shows it."""
    return NetworkEventOut(
        id=event.id,
        tdi_id=event.tdi_id,
        kind=event.kind,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        open_elements=list(event.open_elements),
        close_elements=list(event.close_elements),
        derates=[DerateOut(element=d.element, rating_pct=d.rating_pct) for d in event.derates],
        reason=event.reason,
        recorded_by=event.recorded_by,
        recorded_at=event.recorded_at,
    )


def render_notification(note: NetworkNotification) -> NotificationOut:
    """A notification as the API shows it."""
    return NotificationOut.model_validate(note)


@router.post(
    "/tdis/{tdi_id}/network-events",
    response_model=EventRecordedOut,
    status_code=201,
    summary="Record an outage, switching order or derate (owning DSO); applied at once",
)
def record_event(tdi_id: TdiId, body: NetworkEventIn, commands: CommandsDep) -> JSONResponse:
    """De-energised points get zero envelopes at once, a recomputation is queued, the affected are notified."""

    def use_case(ctx: Context) -> EventRecordedOut:
        done = service.record_event(
            ctx,
            tdi_id,
            body.kind,
            body.starts_at,
            body.ends_at,
            open_elements=body.open_elements,
            close_elements=body.close_elements,
            derates=[Derate(d.element, d.rating_pct) for d in body.derates],
            reason=body.reason,
        )
        return EventRecordedOut(
            event=render_event(done.event),
            de_energised_point_ids=list(done.de_energised_point_ids),
            affected_point_ids=list(done.affected_point_ids),
            zeroed_envelopes=done.zeroed_envelopes,
            notified_participant_ids=sorted(n.recipient_id for n in done.notifications),
            queued_run_id=done.queued_run.id if done.queued_run else None,
        )

    return commands.run(use_case, lambda out: out, payload=body, status_code=201)


@router.get(
    "/tdis/{tdi_id}/network-events",
    response_model=list[NetworkEventOut],
    summary="An interface's network events (owning DSO, TSO, observer)",
)
def list_events(
    tdi_id: TdiId,
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    active_at: AwareDatetime | None = None,
) -> list[NetworkEventOut]:
    """Outages, switching and derates by start time; ``active_at`` keeps those in force then."""
    result: list[NetworkEventOut] = commands.query(
        lambda ctx: service.list_events(ctx, tdi_id, page, active_at=active_at),
        lambda events: [render_event(e) for e in events],
    )
    return result


@router.get(
    "/network-notifications",
    response_model=list[NotificationOut],
    summary="The caller's network-state notifications, newest first",
)
def list_notifications(
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    tdi_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[NotificationOut]:
    """Each participant sees the notifications addressed to it; observers see all."""
    result: list[NotificationOut] = commands.query(
        lambda ctx: service.list_notifications(ctx, page, tdi_id=tdi_id),
        lambda notes: [render_notification(n) for n in notes],
    )
    return result
