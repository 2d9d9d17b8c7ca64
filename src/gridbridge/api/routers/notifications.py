"""Notifications: reverse flow at a T-D interface (to the TSO), instructions escalated to their issuer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, paging
from gridbridge.domain.market import NotificationKind
from gridbridge.domain.offers import Market
from gridbridge.services import instructions as service
from gridbridge.services.ports import Page

router = APIRouter(tags=["notifications"])


class NotificationOut(Out):
    """One notification."""

    id: str
    recipient_id: str
    kind: NotificationKind
    created_at: datetime
    message: str
    tdi_id: str | None
    market: Market | None
    interval_start: datetime | None
    magnitude_kw: float | None
    run_id: str | None
    instruction_id: str | None


@router.get("/notifications", response_model=list[NotificationOut], summary="List the caller's notifications")
def list_all(commands: CommandsDep, page: Annotated[Page, Depends(paging)]) -> list[NotificationOut]:
    """The caller's own notifications, oldest first (observers see every participant's)."""
    result: list[NotificationOut] = commands.query(
        lambda ctx: [NotificationOut.model_validate(n) for n in service.list_notifications(ctx, page)], lambda x: x
    )
    return result
