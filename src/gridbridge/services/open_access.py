"""The open-access report on the platform (white paper section 4.2; issue 5, item 4): per DSO and period, how
DSO-affiliated and third-party DERs share dispatch and curtailment, normalised by capacity.

Who may read it: the observer (the regulator) and the TSO for every DSO, a DSO for itself. Aggregators and DER
owners may not (``auth.forbidden``): the report compares groups across a whole territory, and their own
curtailments are in ``GET /curtailments``.

The figures per DER in the territory (in service, enrolled or suspended, plus any DER with energy in the period):

* ``capacity_kw``: the DER's export capability;
* ``dispatched_kwh``: its market schedules and dispatch and the DSO's distribution-service dispatch (positive
  ``p_kw``, issued, received or accepted) over their overlap with the period;
* ``curtailed_kwh``: its shares of the DSO's curtailment events over their window's overlap with the period;
* DSO-affiliated: filed by or for the DSO, represented by it, or a member of an aggregation it runs at the
  period's start (``services.curtailment.dso_affiliated``).

``open_access_report`` (the engine) turns these records into the two rows.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from gridbridge.domain.conflicts import OpenAccessRecord, OpenAccessRow
from gridbridge.domain.errors import NotFound, PermissionDenied, ValidationFailed, register_code
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.permissions import DerScope, is_system
from gridbridge.domain.roles import Role
from gridbridge.engines.conflicts import open_access_report
from gridbridge.services.context import Context
from gridbridge.services.curtailment import dso_affiliated
from gridbridge.services.ports import Page

BAD_PERIOD = register_code(
    "open_access.bad_period", 422, "A report period needs timezone-aware bounds and must end after it starts"
)
NOT_A_DSO = register_code("open_access.not_a_dso", 422, "The open-access report is about a DSO")

REPORTED = frozenset({DerStatus.IN_SERVICE, DerStatus.ENROLLED, DerStatus.SUSPENDED})
"""DERs counted in the report even without energy in the period (connected ones)."""


def _hours(start: datetime, end: datetime, period_start: datetime, period_end: datetime) -> float:
    overlap = (min(end, period_end) - max(start, period_start)).total_seconds()
    return max(overlap, 0.0) / 3600


def _require_reader(ctx: Context, dso_id: str) -> None:
    caller = ctx.caller
    if is_system(caller) or caller.role in (Role.OBSERVER, Role.TSO):
        return
    if caller.role is Role.DSO:
        if caller.participant_id != dso_id:
            raise PermissionDenied("a DSO may read its own open-access report only", field="dso_id")
        return
    raise PermissionDenied(
        f"role {caller.role.value} may not read the open-access report (the observer, the TSO and the DSO itself may)",
        field="role",
    )


def open_access(ctx: Context, dso_id: str, period_start: datetime, period_end: datetime) -> list[OpenAccessRow]:
    """The report of one DSO over ``[period_start, period_end)``: the DSO-affiliated row, then the third-party
    row (no rows when the DSO has no DER to report).

    Raises ``auth.forbidden`` for a caller that may not read it (before any lookup for a role that never may),
    ``not_found`` for an unknown participant, ``open_access.not_a_dso`` for one that is not a DSO and
    ``open_access.bad_period`` for naive or empty periods.
    """
    caller = ctx.caller
    if not is_system(caller) and caller.role not in (Role.OBSERVER, Role.TSO, Role.DSO):
        _require_reader(ctx, dso_id)
    for name, value in (("from", period_start), ("to", period_end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationFailed(f"{name} must be timezone-aware", field=name, code=BAD_PERIOD)
    if period_end <= period_start:
        raise ValidationFailed("the period must end after it starts", field="to", code=BAD_PERIOD)
    dso = ctx.uow.participants.get(dso_id)
    if dso is None:
        raise NotFound(f"no participant {dso_id}", field="dso_id")
    if dso.role is not Role.DSO:
        raise ValidationFailed(
            f"participant {dso.name!r} is a {dso.role.value}, not a dso", field="dso_id", code=NOT_A_DSO
        )
    _require_reader(ctx, dso_id)
    dispatched: dict[str, float] = defaultdict(float)
    for power in ctx.uow.curtailment.dispatched(dso_id, period_start, period_end):
        dispatched[power.der_id] += power.p_kw * _hours(power.start, power.end, period_start, period_end)
    curtailed: dict[str, float] = defaultdict(float)
    for event in ctx.uow.curtailment.events_overlapping(dso_id, period_start, period_end):
        hours = _hours(event.window_start, event.window_end, period_start, period_end)
        for share in event.shares:
            curtailed[share.der_id] += share.share_kw * hours
    ders = {
        d.id: d
        for d in ctx.uow.ders.query(DerScope(dso_id=dso_id), Page(limit=1_000_000))
        if d.status in REPORTED or d.id in dispatched or d.id in curtailed
    }
    records = [
        OpenAccessRecord(
            dso_id=dso_id,
            der_id=der.id,
            period_start=period_start,
            dso_affiliated=dso_affiliated(ctx, der, dso_id, period_start),
            capacity_kw=der.p_export_kw,
            dispatched_kwh=dispatched.get(der.id, 0.0),
            curtailed_kwh=curtailed.get(der.id, 0.0),
        )
        for der in ders.values()
    ]
    return list(open_access_report(records))
