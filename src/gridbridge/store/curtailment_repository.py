"""SQL implementation of the curtailment port (``uow.curtailment``): procedures, events with their shares and
notices, and the instruction figures curtailment and the open-access report read (Core SQL)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, and_, exists, insert, or_, select, true
from sqlalchemy.orm import Session

from gridbridge.domain.conflicts import CurtailmentProcedure, CurtailmentRule, ParticipationGroup
from gridbridge.domain.market import InstructionKind, InstructionProduct, InstructionStatus
from gridbridge.services.curtailment_ports import (
    CurtailmentEvent,
    CurtailmentScope,
    InstructedPower,
    PartyNotice,
    PublishedProcedure,
    StoredShare,
)
from gridbridge.services.ports import Page
from gridbridge.store.curtailment_tables import (
    curtailment_events,
    curtailment_notices,
    curtailment_procedures,
    curtailment_shares,
)
from gridbridge.store.market_tables import instructions
from gridbridge.store.tables import ders

_CHUNK = 500
_DISPATCH_KINDS = [InstructionKind.SCHEDULE, InstructionKind.DISPATCH, InstructionKind.SERVICE]
"""What the open-access report counts as dispatch: market schedules and dispatch, and the DSO's dispatch for
distribution services."""
_IN_FORCE = [InstructionStatus.ISSUED, InstructionStatus.RECEIVED, InstructionStatus.ACCEPTED]
"""Instructions that still stand (rejected, escalated or withdrawn ones do not)."""


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for k in range(0, len(values), _CHUNK):
        yield values[k : k + _CHUNK]


def _procedure(row: RowMapping) -> PublishedProcedure:
    return PublishedProcedure(
        id=row["id"],
        tdi_id=row["tdi_id"],
        dso_id=row["dso_id"],
        version=int(row["version"]),
        procedure=CurtailmentProcedure(CurtailmentRule(row["rule"]), dict(row["parameters"])),
        dso_aggregated_pct=row["dso_aggregated_pct"],
        effective_from=row["effective_from"],
        published_at=row["published_at"],
        published_by=row["published_by"],
        note=row["note"],
    )


def _share(row: RowMapping) -> StoredShare:
    price = row["offer_price_cad_per_mwh"]
    return StoredShare(
        der_id=row["der_id"],
        party_id=row["party_id"],
        owner_id=row["owner_id"],
        group=ParticipationGroup(row["participation"]),
        dso_affiliated=bool(row["dso_affiliated"]),
        p_export_kw=float(row["p_export_kw"]),
        export_source=row["export_source"],
        capacity_kw=float(row["capacity_kw"]),
        offer_price_cad_per_mwh=None if price is None else Decimal(price),
        connected_at=row["connected_at"],
        share_kw=float(row["share_kw"]),
        rule=row["rule"],
        reason=row["reason"],
        instruction_id=row["instruction_id"],
    )


def _notice(row: RowMapping) -> PartyNotice:
    return PartyNotice(
        party_id=row["party_id"],
        share_kw=float(row["share_kw"]),
        der_ids=tuple(row["der_ids"]),
        rule=row["rule"],
        message=row["message"],
        instruction_id=row["instruction_id"],
        created_at=row["created_at"],
    )


class SqlCurtailment:
    """Curtailment procedures and events on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- procedures -----------------------------------------------------------------------------------------

    def add_procedure(self, procedure: PublishedProcedure) -> None:
        self.session.execute(
            insert(curtailment_procedures).values(
                id=procedure.id,
                tdi_id=procedure.tdi_id,
                dso_id=procedure.dso_id,
                version=procedure.version,
                rule=procedure.procedure.rule.value,
                parameters=dict(procedure.procedure.parameters),
                dso_aggregated_pct=procedure.dso_aggregated_pct,
                effective_from=procedure.effective_from,
                published_at=procedure.published_at,
                published_by=procedure.published_by,
                note=procedure.note,
            )
        )

    def procedures(self, tdi_id: str) -> list[PublishedProcedure]:
        query = (
            select(curtailment_procedures)
            .where(curtailment_procedures.c.tdi_id == tdi_id)
            .order_by(curtailment_procedures.c.version)
        )
        return [_procedure(row) for row in self.session.execute(query).mappings()]

    # --- events ---------------------------------------------------------------------------------------------

    def add_event(self, event: CurtailmentEvent) -> None:
        self.session.execute(
            insert(curtailment_events).values(
                id=event.id,
                tdi_id=event.tdi_id,
                dso_id=event.dso_id,
                procedure_id=event.procedure_id,
                procedure_version=event.procedure_version,
                rule=event.rule,
                required_kw=event.required_kw,
                available_kw=event.available_kw,
                dso_aggregated_kw=event.dso_aggregated_kw,
                direct_kw=event.direct_kw,
                window_start=event.window_start,
                window_end=event.window_end,
                connection_point_ids=list(event.connection_point_ids),
                feeder=event.feeder,
                reason=event.reason,
                requested_at=event.requested_at,
                requested_by=event.requested_by,
                requested_for=event.requested_for,
            )
        )
        if event.shares:
            self.session.execute(
                insert(curtailment_shares),
                [
                    {
                        "event_id": event.id,
                        "der_id": s.der_id,
                        "position": k,
                        "party_id": s.party_id,
                        "owner_id": s.owner_id,
                        "participation": s.group,
                        "dso_affiliated": s.dso_affiliated,
                        "p_export_kw": s.p_export_kw,
                        "export_source": s.export_source,
                        "capacity_kw": s.capacity_kw,
                        "offer_price_cad_per_mwh": (
                            None if s.offer_price_cad_per_mwh is None else str(s.offer_price_cad_per_mwh)
                        ),
                        "connected_at": s.connected_at,
                        "share_kw": s.share_kw,
                        "rule": s.rule,
                        "reason": s.reason,
                        "instruction_id": s.instruction_id,
                    }
                    for k, s in enumerate(event.shares)
                ],
            )
        if event.notices:
            self.session.execute(
                insert(curtailment_notices),
                [
                    {
                        "event_id": event.id,
                        "party_id": n.party_id,
                        "share_kw": n.share_kw,
                        "der_ids": list(n.der_ids),
                        "rule": n.rule,
                        "message": n.message,
                        "instruction_id": n.instruction_id,
                        "created_at": n.created_at,
                    }
                    for n in event.notices
                ],
            )

    def _events(self, where: ColumnElement[bool], page: Page | None = None) -> list[CurtailmentEvent]:
        ev = curtailment_events.c
        query = select(curtailment_events).where(where).order_by(ev.window_start.desc(), ev.requested_at.desc(), ev.id)
        if page is not None:
            query = query.limit(page.limit).offset(page.offset)
        rows = list(self.session.execute(query).mappings())
        ids = [row["id"] for row in rows]
        shares: dict[str, list[StoredShare]] = defaultdict(list)
        notices: dict[str, list[PartyNotice]] = defaultdict(list)
        for chunk in _chunks(ids):
            share_query = (
                select(curtailment_shares)
                .where(curtailment_shares.c.event_id.in_(chunk))
                .order_by(curtailment_shares.c.event_id, curtailment_shares.c.position)
            )
            for row in self.session.execute(share_query).mappings():
                shares[row["event_id"]].append(_share(row))
            notice_query = (
                select(curtailment_notices)
                .where(curtailment_notices.c.event_id.in_(chunk))
                .order_by(curtailment_notices.c.event_id, curtailment_notices.c.party_id)
            )
            for row in self.session.execute(notice_query).mappings():
                notices[row["event_id"]].append(_notice(row))
        return [self._event(row, tuple(shares[row["id"]]), tuple(notices[row["id"]])) for row in rows]

    @staticmethod
    def _event(row: RowMapping, shares: tuple[StoredShare, ...], notices: tuple[PartyNotice, ...]) -> CurtailmentEvent:
        fields: dict[str, Any] = {k: row[k] for k in row.keys()}  # noqa: SIM118 (RowMapping keys)
        fields["connection_point_ids"] = tuple(int(p) for p in row["connection_point_ids"])
        return CurtailmentEvent(**fields, shares=shares, notices=notices)

    def get_event(self, event_id: str) -> CurtailmentEvent | None:
        found = self._events(curtailment_events.c.id == event_id)
        return found[0] if found else None

    def query_events(self, scope: CurtailmentScope, page: Page, tdi_id: str | None = None) -> list[CurtailmentEvent]:
        ev = curtailment_events.c
        where: ColumnElement[bool] = true() if tdi_id is None else ev.tdi_id == tdi_id
        if not (scope.everything or scope.tso):
            me = scope.participant_id
            sh = curtailment_shares.c
            mine = exists().where(and_(sh.event_id == ev.id, or_(sh.party_id == me, sh.owner_id == me)))
            where = and_(where, or_(mine, ev.dso_id == me) if scope.dso else mine)
        return self._events(where, page)

    def events_overlapping(self, dso_id: str, start: datetime, end: datetime) -> list[CurtailmentEvent]:
        ev = curtailment_events.c
        return self._events(and_(ev.dso_id == dso_id, ev.window_start < end, ev.window_end > start))

    # --- instruction figures ---------------------------------------------------------------------------------

    def der_instructions(self, der_ids: Sequence[str], start: datetime, end: datetime) -> list[InstructedPower]:
        i = instructions.c
        found: list[InstructedPower] = []
        for chunk in _chunks(list(dict.fromkeys(der_ids))):
            sh = curtailment_shares.c
            query = select(i.der_id, i.p_kw, i.interval_start, i.interval_end).where(
                i.der_id.in_(chunk),
                i.product == InstructionProduct.ENERGY,
                i.status.in_(_IN_FORCE),
                i.interval_start < end,
                i.interval_end > start,
                ~exists().where(sh.instruction_id == i.id),
            )
            found.extend(InstructedPower(r[0], float(r[1]), r[2], r[3]) for r in self.session.execute(query))
        return found

    def der_curtailments(self, der_ids: Sequence[str], start: datetime, end: datetime) -> list[InstructedPower]:
        ev, sh = curtailment_events.c, curtailment_shares.c
        found: list[InstructedPower] = []
        for chunk in _chunks(list(dict.fromkeys(der_ids))):
            query = (
                select(sh.der_id, sh.share_kw, ev.window_start, ev.window_end)
                .join(curtailment_events, ev.id == sh.event_id)
                .where(sh.der_id.in_(chunk), sh.share_kw > 0, ev.window_start < end, ev.window_end > start)
            )
            found.extend(InstructedPower(r[0], -float(r[1]), r[2], r[3]) for r in self.session.execute(query))
        return found

    def dispatched(self, dso_id: str, start: datetime, end: datetime) -> list[InstructedPower]:
        i = instructions.c
        query = (
            select(i.der_id, i.p_kw, i.interval_start, i.interval_end)
            .join(ders, ders.c.id == i.der_id)
            .where(
                ders.c.dso_id == dso_id,
                i.product == InstructionProduct.ENERGY,
                i.kind.in_(_DISPATCH_KINDS),
                i.p_kw > 0,
                i.status.in_(_IN_FORCE),
                i.interval_start < end,
                i.interval_end > start,
            )
        )
        return [InstructedPower(r[0], float(r[1]), r[2], r[3]) for r in self.session.execute(query)]
