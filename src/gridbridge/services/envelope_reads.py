"""Use cases: reading published envelopes and the limits in force, each caller only where it may.

Visibility of a connection point's envelopes (docs/envelopes.md, "Who sees which envelopes"): an observer
everything; an LDC every point of its own interfaces; an aggregator the points of the DERs it owns or
represents, a DER owner those of its own DERs; the TSO every point of interfaces whose coordination model in
force shows it every DER, and the points holding a market-participating DER where the model shows it only
those (white paper Table 6 row 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gridbridge.domain.envelope_publication import StoredEnvelope
from gridbridge.domain.envelopes import IntervalLimits
from gridbridge.domain.errors import ValidationFailed
from gridbridge.services.context import Context
from gridbridge.services.ports import ConnectionPointRef, Page
from gridbridge.services.scopes import ders_visible_to
from gridbridge.services.tdis import get_tdi


def list_envelopes(
    ctx: Context,
    page: Page,
    *,
    tdi_id: str | None = None,
    connection_point_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    include_superseded: bool = False,
) -> list[StoredEnvelope]:
    """Published envelopes the caller may see, by interval start then point; current versions only unless
    ``include_superseded``; ``start``/``end`` keep envelopes overlapping that window."""
    if start is not None and end is not None and end <= start:
        raise ValidationFailed("end must be after start", field="end")
    if tdi_id is not None:
        get_tdi(ctx.uow, tdi_id)
    return ctx.uow.envelopes.envelopes.query(
        ders_visible_to(ctx),
        page,
        tdi_id=tdi_id,
        point_id=connection_point_id,
        start=start,
        end=end,
        include_superseded=include_superseded,
    )


@dataclass(frozen=True)
class PointLimits:
    """The limits in force at one connection point."""

    point: ConnectionPointRef
    limits: IntervalLimits


def limits_in_force(
    ctx: Context, at: datetime, *, end: datetime | None = None, tdi_id: str | None = None
) -> list[PointLimits]:
    """For every connection point the caller may see (optionally of one interface): the limits in force at
    ``at`` (or the tightest over ``[at, end)``), falling back to the interface's default where no published
    envelope is in force; never "no limit"."""
    if end is not None and end <= at:
        raise ValidationFailed("end must be after at", field="end")
    if tdi_id is not None:
        get_tdi(ctx.uow, tdi_id)
    points = ctx.uow.envelopes.visible_points(ders_visible_to(ctx), tdi_id)
    found = ctx.uow.envelopes.envelopes.limits_in_force([p.id for p in points], at, end)
    return [PointLimits(p, found[p.id]) for p in points if p.id in found]
