"""SQL implementation of the settlement-flag port (``uow.settlement``), on ``settlement_tables``.

``record_conflict`` is called by ``SqlConflicts.add`` whenever a double-counting conflict is stored: it reads
the offers and DERs of the conflict's commitments in the same session and stores the flags
``domain.settlement.flags_from_resolution`` derives from the resolution, so conflict detection needs no extra
call and a flag never exists without its stored resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, RowMapping, and_, false, insert, or_, select, true, update
from sqlalchemy.orm import Session

from gridbridge.domain.conflicts import ConflictKind, Direction, SubjectType
from gridbridge.domain.der import Der
from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.market import ResourceKind, tso_sees_der_instruction
from gridbridge.domain.roles import Service
from gridbridge.domain.settlement import SettlementFlag, SettlementScope, flags_from_resolution, offer_of
from gridbridge.domain.tdi import ModelAssignment, model_at
from gridbridge.services.conflict_ports import StoredConflict
from gridbridge.services.ports import Page
from gridbridge.services.settlement_ports import FlagFilter
from gridbridge.store.market_repository import SqlOffers
from gridbridge.store.repositories import SqlDers, SqlTdis
from gridbridge.store.settlement_tables import settlement_flags

_COLUMNS = (
    "conflict_id",
    "commitment_id",
    "der_id",
    "offer_id",
    "holder_kind",
    "holder_id",
    "service",
    "direction",
    "interval_start",
    "interval_end",
    "committed_kw",
    "firm_kw",
    "not_payable_kw",
    "tdi_id",
    "dso_id",
    "buyer_id",
    "provider_id",
    "owner_id",
    "tso_visible",
    "recorded_at",
    "superseded_at",
)


def _flag(r: RowMapping) -> SettlementFlag:
    return SettlementFlag(
        conflict_id=r["conflict_id"],
        commitment_id=r["commitment_id"],
        der_id=r["der_id"],
        offer_id=r["offer_id"],
        holder_kind=ResourceKind(r["holder_kind"]),
        holder_id=r["holder_id"],
        service=Service(r["service"]),
        direction=Direction(r["direction"]),
        interval_start=r["interval_start"],
        interval_end=r["interval_end"],
        committed_kw=float(r["committed_kw"]),
        firm_kw=float(r["firm_kw"]),
        not_payable_kw=float(r["not_payable_kw"]),
        tdi_id=r["tdi_id"],
        dso_id=r["dso_id"],
        buyer_id=r["buyer_id"],
        provider_id=r["provider_id"],
        owner_id=r["owner_id"],
        tso_visible=bool(r["tso_visible"]),
        recorded_at=r["recorded_at"],
        superseded_at=r["superseded_at"],
    )


class SqlSettlementFlags:
    """Settlement flags on one session (``uow.settlement``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, flags: Sequence[SettlementFlag]) -> None:
        f = settlement_flags.c
        for flag in flags:
            self.session.execute(
                update(settlement_flags)
                .where(
                    and_(
                        f.commitment_id == flag.commitment_id,
                        f.interval_start == flag.interval_start,
                        f.superseded_at.is_(None),
                    )
                )
                .values(superseded_at=flag.recorded_at)
            )
        if flags:
            self.session.execute(
                insert(settlement_flags), [{name: getattr(flag, name) for name in _COLUMNS} for flag in flags]
            )

    def record_conflict(self, stored: StoredConflict) -> list[SettlementFlag]:
        """Derive and store the flags of a stored double-counting conflict (none for other kinds)."""
        if stored.kind is not ConflictKind.DOUBLE_COUNTING:
            return []
        outcomes = [o for o in stored.resolution.outcomes if o.subject_type is SubjectType.COMMITMENT]
        offer_ids = sorted({offer_of(o.subject_id) for o in outcomes})
        offers = {o.id: o for o in SqlOffers(self.session).get_many(offer_ids)}
        der_repository = SqlDers(self.session)
        ders: dict[str, Der] = {}
        for der_id in sorted({o.der_id for o in outcomes}):
            der = der_repository.get(der_id)
            if der is not None:
                ders[der_id] = der
        tdis = SqlTdis(self.session)
        assignments: dict[str, list[ModelAssignment]] = {}

        def tso_sees(der: Der, when: datetime) -> bool:
            if der.tdi_id not in assignments:
                assignments[der.tdi_id] = tdis.assignments(der.tdi_id)
            try:
                model = model_at(assignments[der.tdi_id], when)
            except ValidationFailed:  # no model in force: the TSO sees no DER there
                return False
            return tso_sees_der_instruction(model, der.market_participating)

        flags = flags_from_resolution(
            stored.id,
            stored.conflict,
            stored.resolution,
            offers=offers,
            ders=ders,
            tso_sees=tso_sees,
            at=stored.detected_at,
        )
        self.add(flags)
        return flags

    @staticmethod
    def _scope(scope: SettlementScope) -> ColumnElement[bool]:
        if scope.everything:
            return true()
        me = scope.participant_id
        if me is None:
            return false()
        f = settlement_flags.c
        allowed: list[ColumnElement[bool]] = [f.provider_id == me]
        if scope.owner:
            allowed.append(f.owner_id == me)
        if scope.dso:
            allowed.append(
                and_(f.dso_id == me, or_(f.service == Service.DISTRIBUTION_SERVICES, f.buyer_id == me)),
            )
        if scope.tso:
            allowed.append(f.tso_visible.is_(True))
            allowed.append(and_(f.buyer_id == me, f.holder_kind == ResourceKind.DER))
        return or_(*allowed)

    def query(self, scope: SettlementScope, page: Page, filters: FlagFilter) -> list[SettlementFlag]:
        f = settlement_flags.c
        where: list[ColumnElement[bool]] = [self._scope(scope)]
        if filters.interval_start is not None:
            where.append(f.interval_end > filters.interval_start)
        if filters.interval_end is not None:
            where.append(f.interval_start < filters.interval_end)
        if filters.der_id is not None:
            where.append(f.der_id == filters.der_id)
        if filters.offer_id is not None:
            where.append(f.offer_id == filters.offer_id)
        if not filters.include_superseded:
            where.append(f.superseded_at.is_(None))
        query = (
            select(settlement_flags)
            .where(and_(*where))
            .order_by(f.interval_start, f.der_id, f.commitment_id, f.recorded_at, f.conflict_id)
            .limit(page.limit)
            .offset(page.offset)
        )
        return [_flag(r) for r in self.session.execute(query).mappings()]
