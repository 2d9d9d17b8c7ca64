"""SQLAlchemy implementations of the coordination-cycle ports (``gridbridge.services.market_ports``).

Everything here is Core SQL on the unit of work's session: rows are read into the frozen domain records, and
instructions and notifications are inserted in bulk (one executemany per batch, never one ORM object per row).
``market_filter`` / ``instruction_filter`` are the SQL twins of ``MarketScope.allows_offer`` and
``MarketScope.allows_instruction``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, and_, or_, select, true, update
from sqlalchemy.orm import Session

from gridbridge.domain.envelopes import LimitSource, OperatingEnvelope
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.market import (
    OPEN_STATUSES,
    ClearingRun,
    Curtailment,
    Instruction,
    InstructionKind,
    InstructionProduct,
    InstructionStatus,
    InterfaceResult,
    MarketScope,
    Notification,
    NotificationKind,
    OfferKey,
    ResourceKind,
    ResourceResult,
    Route,
    SplitMethod,
    StoredOffer,
)
from gridbridge.domain.offers import Market, OfferSegment, Product, Side
from gridbridge.services.market_ports import DerLimits, InstructionFilter, OfferFilter
from gridbridge.services.ports import Page
from gridbridge.store.envelope_repository import SqlEnvelopeSettings, envelope_limits_in_force
from gridbridge.store.market_tables import (
    clearing_curtailments,
    clearing_interfaces,
    clearing_resources,
    clearing_runs,
    instructions,
    notifications,
    offers,
)
from gridbridge.store.network_tables import ConnectionPointRow
from gridbridge.store.tables import ders

_CHUNK = 500


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


# --- offers -----------------------------------------------------------------------------------------------


def offer_filter(scope: MarketScope) -> ColumnElement[bool]:
    """The SQL form of ``MarketScope.allows_offer``."""
    if scope.everything:
        return true()
    me = scope.participant_id
    conditions: list[ColumnElement[bool]] = [offers.c.party_id == me, offers.c.sender_id == me]
    if scope.dso:
        conditions.append(offers.c.dso_id == me)
    if scope.tso:
        conditions.append(offers.c.route == Route.TSO)
    return or_(*conditions)


def _offer_row(offer: StoredOffer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "resource_kind": offer.resource_kind,
        "resource_id": offer.resource_id,
        "product": offer.product,
        "market": offer.market,
        "side": offer.side,
        "interval_start": offer.interval_start,
        "revision": offer.revision,
        "segments": [[str(s.price_cad_per_mwh), str(s.quantity_kw)] for s in offer.segments],
        "offered_kw": offer.offered_kw,
        "route": offer.route,
        "tdi_id": offer.tdi_id,
        "dso_id": offer.dso_id,
        "party_id": offer.party_id,
        "sender_id": offer.sender_id,
        "submitted_by": offer.submitted_by,
        "submitted_at": offer.submitted_at,
        "clipped": offer.clipped,
        "binding_envelope": offer.binding_envelope,
        "source_offer_ids": list(offer.source_offer_ids),
        "superseded_at": offer.superseded_at,
    }


def _offer(row: RowMapping) -> StoredOffer:
    return StoredOffer(
        id=row["id"],
        resource_kind=ResourceKind(row["resource_kind"]),
        resource_id=row["resource_id"],
        product=Product(row["product"]),
        market=Market(row["market"]),
        side=Side(row["side"]),
        interval_start=row["interval_start"],
        revision=int(row["revision"]),
        segments=tuple(OfferSegment(Decimal(p), Decimal(q)) for p, q in row["segments"]),
        offered_kw=row["offered_kw"],
        route=Route(row["route"]),
        tdi_id=row["tdi_id"],
        dso_id=row["dso_id"],
        party_id=row["party_id"],
        sender_id=row["sender_id"],
        submitted_by=row["submitted_by"],
        submitted_at=row["submitted_at"],
        clipped=bool(row["clipped"]),
        binding_envelope=row["binding_envelope"],
        source_offer_ids=tuple(row["source_offer_ids"] or ()),
        superseded_at=row["superseded_at"],
    )


def _key_condition(key: OfferKey) -> ColumnElement[bool]:
    return and_(
        offers.c.resource_kind == key.resource_kind,
        offers.c.resource_id == key.resource_id,
        offers.c.product == key.product,
        offers.c.side == key.side,
        offers.c.market == key.market,
        offers.c.interval_start == key.interval_start,
    )


_OFFER_ORDER = (
    offers.c.interval_start,
    offers.c.resource_kind,
    offers.c.resource_id,
    offers.c.product,
    offers.c.side,
    offers.c.revision,
)


class SqlOffers:
    """Offer versions in the database."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, offer: StoredOffer) -> None:
        self.session.execute(offers.insert().values(**_offer_row(offer)))

    def get(self, offer_id: str) -> StoredOffer | None:
        row = self.session.execute(select(offers).where(offers.c.id == offer_id)).mappings().first()
        return None if row is None else _offer(row)

    def get_many(self, offer_ids: Sequence[str]) -> list[StoredOffer]:
        found: dict[str, StoredOffer] = {}
        for chunk in _chunks(list(offer_ids)):
            for row in self.session.execute(select(offers).where(offers.c.id.in_(chunk))).mappings():
                found[row["id"]] = _offer(row)
        return [found[i] for i in offer_ids if i in found]

    def latest(self, key: OfferKey) -> StoredOffer | None:
        query = select(offers).where(_key_condition(key)).order_by(offers.c.revision.desc()).limit(1)
        row = self.session.execute(query).mappings().first()
        return None if row is None else _offer(row)

    def supersede(self, offer_id: str, at: datetime) -> None:
        self.session.execute(update(offers).where(offers.c.id == offer_id).values(superseded_at=at))

    def versions(self, key: OfferKey) -> list[StoredOffer]:
        query = select(offers).where(_key_condition(key)).order_by(offers.c.revision)
        return [_offer(r) for r in self.session.execute(query).mappings()]

    def current(
        self, market: Market, interval_start: datetime, *, route: Route | None = None, tdi_id: str | None = None
    ) -> list[StoredOffer]:
        query = select(offers).where(
            offers.c.market == market, offers.c.interval_start == interval_start, offers.c.superseded_at.is_(None)
        )
        if route is not None:
            query = query.where(offers.c.route == route)
        if tdi_id is not None:
            query = query.where(offers.c.tdi_id == tdi_id)
        return [_offer(r) for r in self.session.execute(query.order_by(*_OFFER_ORDER)).mappings()]

    def query(self, scope: MarketScope, page: Page, filters: OfferFilter) -> list[StoredOffer]:
        query = select(offers).where(offer_filter(scope))
        if filters.current_only:
            query = query.where(offers.c.superseded_at.is_(None))
        if filters.market is not None:
            query = query.where(offers.c.market == filters.market)
        if filters.interval_start is not None:
            query = query.where(offers.c.interval_start == filters.interval_start)
        if filters.resource_id is not None:
            query = query.where(offers.c.resource_id == filters.resource_id)
        if filters.product is not None:
            query = query.where(offers.c.product == filters.product)
        query = query.order_by(*_OFFER_ORDER, offers.c.id).limit(page.limit).offset(page.offset)
        return [_offer(r) for r in self.session.execute(query).mappings()]


# --- clearing runs ----------------------------------------------------------------------------------------


class SqlClearingRuns:
    """Clearing runs and their per-interface, per-resource and curtailment rows."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, run: ClearingRun) -> None:
        s = self.session
        s.execute(
            clearing_runs.insert().values(
                id=run.id,
                market=run.market,
                interval_start=run.interval_start,
                energy_requirement_kw=run.energy_requirement_kw,
                reserve_requirement_kw=run.reserve_requirement_kw,
                cost_cad_per_h=run.cost_cad_per_h,
                system_energy_price_cad_per_mwh=run.system_energy_price_cad_per_mwh,
                system_reserve_price_cad_per_mwh=run.system_reserve_price_cad_per_mwh,
                energy_shortage_kw=run.energy_shortage_kw,
                reserve_shortage_kw=run.reserve_shortage_kw,
                method=run.method,
                redispatch_rounds=run.redispatch_rounds,
                inputs_digest=run.inputs_digest,
                created_at=run.created_at,
                created_by=run.created_by,
                dispatched_at=run.dispatched_at,
            )
        )
        if run.interfaces:
            s.execute(
                clearing_interfaces.insert(),
                [{"run_id": run.id, **_interface_row(i)} for i in run.interfaces],
            )
        if run.resources:
            s.execute(
                clearing_resources.insert(),
                [{"run_id": run.id, "position": n, **_resource_row(r)} for n, r in enumerate(run.resources)],
            )
        if run.curtailments:
            s.execute(
                clearing_curtailments.insert(),
                [{"run_id": run.id, **_curtailment_row(c)} for c in run.curtailments],
            )

    def _load(self, row: RowMapping) -> ClearingRun:
        run_id = row["id"]
        s = self.session
        faces = s.execute(
            select(clearing_interfaces)
            .where(clearing_interfaces.c.run_id == run_id)
            .order_by(clearing_interfaces.c.tdi_id)
        ).mappings()
        resources = s.execute(
            select(clearing_resources)
            .where(clearing_resources.c.run_id == run_id)
            .order_by(clearing_resources.c.position)
        ).mappings()
        cuts = s.execute(
            select(clearing_curtailments)
            .where(clearing_curtailments.c.run_id == run_id)
            .order_by(
                clearing_curtailments.c.resource_kind,
                clearing_curtailments.c.resource_id,
                clearing_curtailments.c.tdi_id,
            )
        ).mappings()
        return ClearingRun(
            id=run_id,
            market=Market(row["market"]),
            interval_start=row["interval_start"],
            energy_requirement_kw=row["energy_requirement_kw"],
            reserve_requirement_kw=row["reserve_requirement_kw"],
            cost_cad_per_h=row["cost_cad_per_h"],
            system_energy_price_cad_per_mwh=row["system_energy_price_cad_per_mwh"],
            system_reserve_price_cad_per_mwh=row["system_reserve_price_cad_per_mwh"],
            energy_shortage_kw=row["energy_shortage_kw"],
            reserve_shortage_kw=row["reserve_shortage_kw"],
            method=row["method"],
            redispatch_rounds=row["redispatch_rounds"],
            inputs_digest=row["inputs_digest"],
            created_at=row["created_at"],
            created_by=row["created_by"],
            dispatched_at=row["dispatched_at"],
            interfaces=tuple(_interface(r) for r in faces),
            resources=tuple(_resource(r) for r in resources),
            curtailments=tuple(_curtailment(r) for r in cuts),
        )

    def get(self, run_id: str) -> ClearingRun | None:
        row = self.session.execute(select(clearing_runs).where(clearing_runs.c.id == run_id)).mappings().first()
        return None if row is None else self._load(row)

    def for_interval(self, market: Market, interval_start: datetime) -> ClearingRun | None:
        query = select(clearing_runs).where(
            clearing_runs.c.market == market, clearing_runs.c.interval_start == interval_start
        )
        row = self.session.execute(query).mappings().first()
        return None if row is None else self._load(row)

    def query(
        self, page: Page, market: Market | None = None, interval_start: datetime | None = None
    ) -> list[ClearingRun]:
        query = select(clearing_runs)
        if market is not None:
            query = query.where(clearing_runs.c.market == market)
        if interval_start is not None:
            query = query.where(clearing_runs.c.interval_start == interval_start)
        query = query.order_by(clearing_runs.c.interval_start, clearing_runs.c.market, clearing_runs.c.id)
        rows = self.session.execute(query.limit(page.limit).offset(page.offset)).mappings().all()
        return [self._load(r) for r in rows]

    def mark_dispatched(self, run_id: str, at: datetime) -> None:
        self.session.execute(update(clearing_runs).where(clearing_runs.c.id == run_id).values(dispatched_at=at))


def _interface_row(i: InterfaceResult) -> dict[str, Any]:
    return {
        "tdi_id": i.tdi_id,
        "model": i.model,
        "import_limit_kw": i.import_limit_kw,
        "export_limit_kw": i.export_limit_kw,
        "load_kw": i.load_kw,
        "der_schedule_kw": i.der_schedule_kw,
        "injection_kw": i.injection_kw,
        "net_flow_kw": i.net_flow_kw,
        "energy_price_cad_per_mwh": i.energy_price_cad_per_mwh,
        "reserve_price_cad_per_mwh": i.reserve_price_cad_per_mwh,
        "congestion_cad_per_mwh": i.congestion_cad_per_mwh,
        "shortfall_kw": i.shortfall_kw,
        "redispatched_kw": i.redispatched_kw,
    }


def _interface(r: RowMapping) -> InterfaceResult:
    return InterfaceResult(**_interface_fields(r))


def _interface_fields(r: RowMapping) -> dict[str, Any]:
    return {
        "tdi_id": r["tdi_id"],
        "model": r["model"],
        "import_limit_kw": r["import_limit_kw"],
        "export_limit_kw": r["export_limit_kw"],
        "load_kw": r["load_kw"],
        "der_schedule_kw": r["der_schedule_kw"],
        "injection_kw": r["injection_kw"],
        "net_flow_kw": r["net_flow_kw"],
        "energy_price_cad_per_mwh": r["energy_price_cad_per_mwh"],
        "reserve_price_cad_per_mwh": r["reserve_price_cad_per_mwh"],
        "congestion_cad_per_mwh": r["congestion_cad_per_mwh"],
        "shortfall_kw": r["shortfall_kw"],
        "redispatched_kw": r["redispatched_kw"],
    }


def _resource_row(r: ResourceResult) -> dict[str, Any]:
    return {
        "resource_kind": r.resource_kind,
        "resource_id": r.resource_id,
        "side": r.side,
        "energy_offer_id": r.energy_offer_id,
        "reserve_offer_id": r.reserve_offer_id,
        "tdi_id": r.tdi_id,
        "dso_id": r.dso_id,
        "party_id": r.party_id,
        "first_p_kw": r.first_p_kw,
        "p_kw": r.p_kw,
        "reserve_kw": r.reserve_kw,
        "price_cad_per_mwh": r.price_cad_per_mwh,
    }


def _resource(r: RowMapping) -> ResourceResult:
    return ResourceResult(
        resource_kind=ResourceKind(r["resource_kind"]),
        resource_id=r["resource_id"],
        side=Side(r["side"]),
        energy_offer_id=r["energy_offer_id"],
        reserve_offer_id=r["reserve_offer_id"],
        tdi_id=r["tdi_id"],
        dso_id=r["dso_id"],
        party_id=r["party_id"],
        first_p_kw=r["first_p_kw"],
        p_kw=r["p_kw"],
        reserve_kw=r["reserve_kw"],
        price_cad_per_mwh=r["price_cad_per_mwh"],
    )


def _curtailment_row(c: Curtailment) -> dict[str, Any]:
    return {
        "resource_kind": c.resource_kind,
        "resource_id": c.resource_id,
        "tdi_id": c.tdi_id,
        "dispatched_kw": c.dispatched_kw,
        "allowed_kw": c.allowed_kw,
        "curtailed_kw": c.curtailed_kw,
        "checked_by": c.checked_by,
        "reason": c.reason,
    }


def _curtailment(r: RowMapping) -> Curtailment:
    return Curtailment(
        resource_kind=r["resource_kind"],
        resource_id=r["resource_id"],
        tdi_id=r["tdi_id"],
        dispatched_kw=r["dispatched_kw"],
        allowed_kw=r["allowed_kw"],
        curtailed_kw=r["curtailed_kw"],
        checked_by=r["checked_by"],
        reason=r["reason"],
    )


# --- instructions -----------------------------------------------------------------------------------------


def instruction_filter(scope: MarketScope) -> ColumnElement[bool]:
    """The SQL form of ``MarketScope.allows_instruction``."""
    if scope.everything:
        return true()
    me = scope.participant_id
    conditions: list[ColumnElement[bool]] = [instructions.c.issuer_id == me, instructions.c.recipient_id == me]
    if scope.dso:
        conditions.append(instructions.c.dso_id == me)
    if scope.tso:
        conditions.append(instructions.c.tso_visible.is_(True))
    return or_(*conditions)


def instruction_row(i: Instruction) -> dict[str, Any]:
    """The table row of one instruction."""
    return {
        "id": i.id,
        "kind": i.kind,
        "market": i.market,
        "product": i.product,
        "interval_start": i.interval_start,
        "interval_end": i.interval_end,
        "p_kw": i.p_kw,
        "issuer_id": i.issuer_id,
        "recipient_id": i.recipient_id,
        "resource_kind": i.resource_kind,
        "resource_id": i.resource_id,
        "der_id": i.der_id,
        "tdi_id": i.tdi_id,
        "dso_id": i.dso_id,
        "parent_id": i.parent_id,
        "run_id": i.run_id,
        "offer_id": i.offer_id,
        "status": i.status,
        "issued_at": i.issued_at,
        "deadline_at": i.deadline_at,
        "tso_visible": i.tso_visible,
        "reason": i.reason,
        "received_at": i.received_at,
        "responded_at": i.responded_at,
        "response_reason": i.response_reason,
        "escalated_at": i.escalated_at,
        "split_method": i.split_method,
        "split_at": i.split_at,
        "shortfall_kw": i.shortfall_kw,
    }


def _instruction(r: RowMapping) -> Instruction:
    return Instruction(
        id=r["id"],
        kind=InstructionKind(r["kind"]),
        market=Market(r["market"]) if r["market"] is not None else None,
        product=InstructionProduct(r["product"]),
        interval_start=r["interval_start"],
        interval_end=r["interval_end"],
        p_kw=r["p_kw"],
        issuer_id=r["issuer_id"],
        recipient_id=r["recipient_id"],
        resource_kind=ResourceKind(r["resource_kind"]),
        resource_id=r["resource_id"],
        der_id=r["der_id"],
        tdi_id=r["tdi_id"],
        dso_id=r["dso_id"],
        parent_id=r["parent_id"],
        run_id=r["run_id"],
        offer_id=r["offer_id"],
        status=InstructionStatus(r["status"]),
        issued_at=r["issued_at"],
        deadline_at=r["deadline_at"],
        tso_visible=bool(r["tso_visible"]),
        reason=r["reason"],
        received_at=r["received_at"],
        responded_at=r["responded_at"],
        response_reason=r["response_reason"],
        escalated_at=r["escalated_at"],
        split_method=SplitMethod(r["split_method"]) if r["split_method"] is not None else None,
        split_at=r["split_at"],
        shortfall_kw=r["shortfall_kw"],
    )


_MUTABLE = (
    "status",
    "received_at",
    "responded_at",
    "response_reason",
    "escalated_at",
    "split_method",
    "split_at",
    "shortfall_kw",
)


class SqlInstructions:
    """Instructions in the database, written in bulk."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, items: Sequence[Instruction]) -> int:
        if not items:
            return 0
        rows = [instruction_row(i) for i in items]
        # parents first: a child's parent must exist when its row goes in (foreign key)
        self.session.execute(instructions.insert(), rows)
        return len(rows)

    def get(self, instruction_id: str) -> Instruction | None:
        row = self.session.execute(select(instructions).where(instructions.c.id == instruction_id)).mappings().first()
        return None if row is None else _instruction(row)

    def update(self, instruction: Instruction) -> None:
        row = instruction_row(instruction)
        values = {k: row[k] for k in _MUTABLE}
        self.session.execute(update(instructions).where(instructions.c.id == instruction.id).values(**values))

    def children(self, parent_id: str) -> list[Instruction]:
        query = select(instructions).where(instructions.c.parent_id == parent_id).order_by(instructions.c.id)
        return [_instruction(r) for r in self.session.execute(query).mappings()]

    def query(self, scope: MarketScope, page: Page, filters: InstructionFilter) -> list[Instruction]:
        query = select(instructions).where(instruction_filter(scope))
        c = instructions.c
        if filters.status is not None:
            query = query.where(c.status == filters.status)
        if filters.market is not None:
            query = query.where(c.market == filters.market)
        if filters.interval_start is not None:
            query = query.where(c.interval_start == filters.interval_start)
        if filters.run_id is not None:
            query = query.where(c.run_id == filters.run_id)
        if filters.parent_id is not None:
            query = query.where(c.parent_id == filters.parent_id)
        if filters.recipient_id is not None:
            query = query.where(c.recipient_id == filters.recipient_id)
        query = query.order_by(c.interval_start, c.issued_at, c.id).limit(page.limit).offset(page.offset)
        return [_instruction(r) for r in self.session.execute(query).mappings()]

    def in_force(self, start: datetime, end: datetime) -> list[Instruction]:
        c = instructions.c
        query = (
            select(instructions)
            .where(
                c.parent_id.is_(None),
                c.interval_start < end,
                c.interval_end > start,
                c.product.in_([InstructionProduct.ENERGY, InstructionProduct.LOAD_CURTAILMENT]),
                c.status.not_in([InstructionStatus.REJECTED, InstructionStatus.CANCELLED]),
            )
            .order_by(c.interval_start, c.id)
        )
        return [_instruction(r) for r in self.session.execute(query).mappings()]

    def overdue(self, now: datetime, issuer_id: str | None, limit: int) -> list[Instruction]:
        c = instructions.c
        query = select(instructions).where(c.status.in_(sorted(OPEN_STATUSES)), c.deadline_at < now)
        if issuer_id is not None:
            query = query.where(c.issuer_id == issuer_id)
        query = query.order_by(c.deadline_at, c.id).limit(limit)
        return [_instruction(r) for r in self.session.execute(query).mappings()]

    def escalate(self, instruction_ids: Sequence[str], at: datetime) -> None:
        for chunk in _chunks(list(instruction_ids)):
            self.session.execute(
                update(instructions)
                .where(instructions.c.id.in_(chunk))
                .values(status=InstructionStatus.ESCALATED, escalated_at=at)
            )


# --- notifications ----------------------------------------------------------------------------------------


class SqlNotifications:
    """Stored notifications."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, items: Sequence[Notification]) -> None:
        if not items:
            return
        self.session.execute(
            notifications.insert(),
            [
                {
                    "id": n.id,
                    "recipient_id": n.recipient_id,
                    "kind": n.kind,
                    "created_at": n.created_at,
                    "message": n.message,
                    "tdi_id": n.tdi_id,
                    "market": n.market,
                    "interval_start": n.interval_start,
                    "magnitude_kw": n.magnitude_kw,
                    "run_id": n.run_id,
                    "instruction_id": n.instruction_id,
                }
                for n in items
            ],
        )

    def query(self, recipient_id: str | None, page: Page) -> list[Notification]:
        c = notifications.c
        query = select(notifications)
        if recipient_id is not None:
            query = query.where(c.recipient_id == recipient_id)
        query = query.order_by(c.created_at, c.id).limit(page.limit).offset(page.offset)
        return [
            Notification(
                id=r["id"],
                recipient_id=r["recipient_id"],
                kind=NotificationKind(r["kind"]),
                created_at=r["created_at"],
                message=r["message"],
                tdi_id=r["tdi_id"],
                market=Market(r["market"]) if r["market"] is not None else None,
                interval_start=r["interval_start"],
                magnitude_kw=r["magnitude_kw"],
                run_id=r["run_id"],
                instruction_id=r["instruction_id"],
            )
            for r in self.session.execute(query).mappings()
        ]


# --- envelopes in force -----------------------------------------------------------------------------------


_OPERATING = (DerStatus.IN_SERVICE, DerStatus.ENROLLED)


@dataclass(frozen=True)
class _StaticDer:
    der_id: str
    status: DerStatus
    point_id: int
    export_kw: float
    import_kw: float


def _share(total_kw: float, own_kw: float, all_kw: Sequence[float]) -> float:
    """``total_kw`` split in proportion to ``own_kw`` among ``all_kw`` (equal shares when they sum to 0)."""
    weight = sum(all_kw)
    return total_kw * own_kw / weight if weight > 0 else total_kw / max(len(all_kw), 1)


class PublishedEnvelopeLimits:
    """``EnvelopeLimits`` from the operating envelopes the DSOs published, per DER over an interval.

    For a DER in service or enrolled, each direction's limit is the smaller of

    * its approved static limit (the connection agreement: ``export_limit_kw`` / ``import_limit_kw``), and
    * its share of its connection point's limit in force over the whole interval
      (``store/envelope_repository.py: envelope_limits_in_force``, the tightest value at any time of the
      interval), split among the operating DERs at that point in proportion to their static limits.

    Where no published envelope covers the interval, the point's limit is the interface's configured default
    (``envelope_settings``) if the DSO has configured dynamic envelopes for the interface, and no further limit
    (the static limits alone) if it has not: an interface that does not publish envelopes is run on static
    connection limits. An outage's zero envelopes therefore reach clearing, offer validation and
    disaggregation directly. A DER in any other state (suspended, retired, not yet approved or commissioned)
    gets 0. ``binding_export`` / ``binding_import`` name what sets each limit: ``static_limit:der/<id>/...``,
    ``envelope:point/<id>:<binding constraint>``, ``default:point/<id>`` or ``status:<state>:der/<id>``. It
    never answers "no limit".
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def _static(self, condition: ColumnElement[bool]) -> list[_StaticDer]:
        c = ders.c
        query = select(c.id, c.status, c.connection_point_id, c.export_limit_kw, c.import_limit_kw).where(condition)
        return [
            _StaticDer(der_id, DerStatus(status), int(point), float(export_kw or 0.0), float(import_kw or 0.0))
            for der_id, status, point, export_kw, import_kw in self.session.execute(query)
        ]

    def der_limits(
        self, der_ids: Sequence[str], interval_start: datetime, interval_end: datetime
    ) -> dict[str, DerLimits]:
        wanted: list[_StaticDer] = []
        for chunk in _chunks(list(dict.fromkeys(der_ids))):
            wanted.extend(self._static(ders.c.id.in_(chunk)))
        points = sorted({d.point_id for d in wanted if d.status in _OPERATING})
        at_point: dict[int, list[_StaticDer]] = defaultdict(list)
        operating = [s.value for s in _OPERATING]
        for chunk in _chunks([str(p) for p in points]):
            for d in self._static(
                and_(ders.c.connection_point_id.in_([int(p) for p in chunk]), ders.c.status.in_(operating))
            ):
                at_point[d.point_id].append(d)
        in_force = envelope_limits_in_force(
            self.session, points, interval_start, interval_end, approved=dict.fromkeys(points, True)
        )
        dynamic = self._dynamic_points(points)
        result: dict[str, DerLimits] = {}
        for d in wanted:
            if d.status not in _OPERATING:
                binding = f"status:{d.status.value}:der/{d.der_id}"
                result[d.der_id] = DerLimits(d.der_id, 0.0, 0.0, binding, binding)
                continue
            export_kw, binding_export = d.export_kw, f"static_limit:der/{d.der_id}/export_limit_kw"
            import_kw, binding_import = d.import_kw, f"static_limit:der/{d.der_id}/import_limit_kw"
            limits = in_force.get(d.point_id)
            siblings = at_point.get(d.point_id, [d])
            if limits is not None:
                if limits.export_source is LimitSource.ENVELOPE or d.point_id in dynamic:
                    point_kw = _share(limits.p_export_max_kw, d.export_kw, [s.export_kw for s in siblings])
                    if point_kw < export_kw:
                        export_kw, binding_export = point_kw, _point_binding(d.point_id, limits.export_envelope, True)
                if limits.import_source is LimitSource.ENVELOPE or d.point_id in dynamic:
                    point_kw = _share(limits.p_import_max_kw, d.import_kw, [s.import_kw for s in siblings])
                    if point_kw < import_kw:
                        import_kw, binding_import = point_kw, _point_binding(d.point_id, limits.import_envelope, False)
            result[d.der_id] = DerLimits(
                d.der_id, max(export_kw, 0.0), max(import_kw, 0.0), binding_export, binding_import
            )
        return result

    def _dynamic_points(self, points: Sequence[int]) -> set[int]:
        """The points whose interface has configured envelope settings (the DSO runs dynamic envelopes there)."""
        tdi_of: dict[int, str] = {}
        for chunk in _chunks([str(p) for p in points]):
            rows = self.session.execute(
                select(ConnectionPointRow.id, ConnectionPointRow.tdi_id).where(
                    ConnectionPointRow.id.in_([int(p) for p in chunk])
                )
            )
            tdi_of.update({int(i): str(t) for i, t in rows})
        configured = SqlEnvelopeSettings(self.session).get_many(tdi_of.values())
        return {p for p, tdi in tdi_of.items() if tdi in configured}


def _point_binding(point_id: int, envelope: OperatingEnvelope | None, export: bool) -> str:
    if envelope is None:
        return f"default:point/{point_id}"
    return f"envelope:point/{point_id}:{envelope.binding_export if export else envelope.binding_import}"


class SqlMarket:
    """The coordination cycle's repositories on one session (``uow.market``)."""

    def __init__(self, session: Session) -> None:
        self.offers = SqlOffers(session)
        self.runs = SqlClearingRuns(session)
        self.instructions = SqlInstructions(session)
        self.notifications = SqlNotifications(session)
        self.envelopes = PublishedEnvelopeLimits(session)
