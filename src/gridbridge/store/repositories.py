"""SQLAlchemy implementations of the registry ports (see ``gridbridge.services.ports``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true, update
from sqlalchemy.orm import Session

from gridbridge.domain.aggregation import Aggregation, AggregationMember
from gridbridge.domain.audit import AuditEntry, entry_hash
from gridbridge.domain.der import Der
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.participants import ApiToken, Participant, User
from gridbridge.domain.permissions import WHOLESALE_SERVICES, AggregationScope, DerScope
from gridbridge.domain.tdi import ModelAssignment, TDInterface
from gridbridge.services.ports import Page, StoredResponse
from gridbridge.store.tables import (
    aggregation_markets,
    aggregation_members,
    aggregations,
    api_tokens,
    audit_head,
    audit_records,
    ders,
    idempotency_keys,
    participants,
    td_interfaces,
    tdi_model_assignments,
)


class SqlParticipants:
    """Participants in the database."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, participant: Participant) -> None:
        self.session.add(participant)

    def get(self, participant_id: str) -> Participant | None:
        return self.session.get(Participant, participant_id)

    def by_name(self, name: str) -> Participant | None:
        return self.session.scalars(select(Participant).filter_by(name=name)).first()

    def list_all(self) -> list[Participant]:
        return list(self.session.scalars(select(Participant).order_by(participants.c.name)))


class SqlUsers:
    """Users in the database."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, user: User) -> None:
        self.session.add(user)

    def get(self, user_id: str) -> User | None:
        return self.session.get(User, user_id)

    def by_username(self, username: str) -> User | None:
        return self.session.scalars(select(User).filter_by(username=username)).first()


class SqlTokens:
    """API tokens in the database (hashes only)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: ApiToken) -> None:
        self.session.add(token)

    def by_hash(self, token_hash: str) -> ApiToken | None:
        return self.session.scalars(select(ApiToken).filter_by(token_hash=token_hash)).first()

    def for_user(self, user_id: str) -> list[ApiToken]:
        return list(self.session.scalars(select(ApiToken).filter_by(user_id=user_id).order_by(api_tokens.c.created_at)))


class SqlTdis:
    """T-D interfaces and their model assignments in the database."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, tdi: TDInterface) -> None:
        self.session.add(tdi)

    def get(self, tdi_id: str) -> TDInterface | None:
        return self.session.get(TDInterface, tdi_id)

    def by_name(self, name: str) -> TDInterface | None:
        return self.session.scalars(select(TDInterface).filter_by(name=name)).first()

    def list_all(self) -> list[TDInterface]:
        return list(self.session.scalars(select(TDInterface).order_by(td_interfaces.c.name)))

    def add_assignment(self, assignment: ModelAssignment) -> None:
        self.session.add(assignment)
        self.session.flush()

    def assignments(self, tdi_id: str) -> list[ModelAssignment]:
        query = (
            select(ModelAssignment)
            .where(tdi_model_assignments.c.tdi_id == tdi_id)
            .order_by(tdi_model_assignments.c.effective_from)
        )
        return list(self.session.scalars(query))

    def all_assignments(self) -> Mapping[str, list[ModelAssignment]]:
        result: dict[str, list[ModelAssignment]] = defaultdict(list)
        query = select(ModelAssignment).order_by(tdi_model_assignments.c.effective_from)
        for assignment in self.session.scalars(query):
            result[assignment.tdi_id].append(assignment)
        return result


def der_filter(scope: DerScope) -> ColumnElement[bool]:
    """The SQL form of ``DerScope.allows`` (kept beside it in tests: both must agree)."""
    if scope.everything:
        return true()
    if scope.dso_id is not None:
        return ders.c.dso_id == scope.dso_id
    if scope.party_id is not None:
        condition = ders.c.owner_id == scope.party_id
        if scope.include_represented:
            condition = or_(condition, ders.c.representative_id == scope.party_id)
        return condition
    conditions: list[ColumnElement[bool]] = []
    if scope.tdi_all:
        conditions.append(ders.c.tdi_id.in_(sorted(scope.tdi_all)))
    if scope.tdi_market:
        conditions.append(and_(ders.c.tdi_id.in_(sorted(scope.tdi_market)), ders.c.market_participating.is_(True)))
    return or_(*conditions) if conditions else false()


_IN_CHUNK = 500
"""Ids per ``IN (...)`` list: well under SQLite's bound-parameter limit."""


class SqlDers:
    """DERs in the database.

    Every DER read is held for the life of the unit of work (``_held``): the session's identity map holds its
    objects weakly, so without it a DER read by one step of a request (an offer's validation, a conflict check)
    would be read from the database again by the next. The session already returns the one object per row
    within a unit of work; holding it changes no value seen, only how often it is read.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._held: dict[str, Der] = {}

    def add(self, der: Der) -> None:
        self.session.add(der)

    def add_many(self, items: Sequence[Der]) -> None:
        self.session.add_all(items)

    def get(self, der_id: str) -> Der | None:
        der = self.session.get(Der, der_id)
        if der is not None:
            self._held[der.id] = der
        return der

    def get_many(self, der_ids: Iterable[str]) -> dict[str, Der]:
        wanted = sorted(set(der_ids))
        out = {k: self._held[k] for k in wanted if k in self._held and self._held[k] in self.session}
        missing = [k for k in wanted if k not in out]
        for k in range(0, len(missing), _IN_CHUNK):
            query = select(Der).where(ders.c.id.in_(missing[k : k + _IN_CHUNK]))
            out.update((d.id, d) for d in self.session.scalars(query))
        self._held.update(out)
        return out

    def query(
        self, scope: DerScope, page: Page, *, tdi_id: str | None = None, status: DerStatus | None = None
    ) -> list[Der]:
        query = select(Der).where(der_filter(scope))
        if tdi_id is not None:
            query = query.where(ders.c.tdi_id == tdi_id)
        if status is not None:
            query = query.where(ders.c.status == status)
        query = query.order_by(ders.c.requested_at, ders.c.id).limit(page.limit).offset(page.offset)
        return list(self.session.scalars(query))

    def count_by_status(self, scope: DerScope) -> dict[DerStatus, int]:
        query = select(ders.c.status, func.count()).where(der_filter(scope)).group_by(ders.c.status)
        return {DerStatus(status): int(count) for status, count in self.session.execute(query)}


def aggregation_filter(scope: AggregationScope) -> ColumnElement[bool]:
    """The SQL form of ``AggregationScope.allows``."""
    if scope.everything:
        return true()
    if scope.aggregator_id is not None:
        return aggregations.c.aggregator_id == scope.aggregator_id
    if scope.dso_id is not None:
        has_member = exists().where(
            and_(
                aggregation_members.c.aggregation_id == aggregations.c.id, aggregation_members.c.dso_id == scope.dso_id
            )
        )
        return or_(aggregations.c.aggregator_id == scope.dso_id, has_member)
    if scope.wholesale_only:
        return exists().where(
            and_(
                aggregation_markets.c.aggregation_id == aggregations.c.id,
                aggregation_markets.c.service.in_(sorted(WHOLESALE_SERVICES)),
            )
        )
    return false()


class SqlAggregations:
    """Aggregations, their markets and members in the database."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, aggregation: Aggregation) -> None:
        self.session.add(aggregation)

    def get(self, aggregation_id: str) -> Aggregation | None:
        return self.session.get(Aggregation, aggregation_id)

    def by_name(self, aggregator_id: str, name: str) -> Aggregation | None:
        query = select(Aggregation).where(
            and_(aggregations.c.aggregator_id == aggregator_id, aggregations.c.name == name)
        )
        return self.session.scalars(query).first()

    def query(self, scope: AggregationScope, page: Page) -> list[Aggregation]:
        query = (
            select(Aggregation)
            .where(aggregation_filter(scope))
            .order_by(aggregations.c.created_at, aggregations.c.id)
            .limit(page.limit)
            .offset(page.offset)
        )
        return list(self.session.scalars(query))

    def memberships_of(self, der_id: str) -> list[tuple[Aggregation, AggregationMember]]:
        query = select(AggregationMember).where(aggregation_members.c.der_id == der_id)
        result = []
        for member in self.session.scalars(query):
            aggregation = self.session.get(Aggregation, member.aggregation_id)
            if aggregation is not None:
                result.append((aggregation, member))
        return result


class SqlAudit:
    """The hash-chained audit trail.

    The first append of a transaction locks the chain head row (an UPDATE takes the write lock on SQLite and a
    row lock on PostgreSQL), so concurrent transactions queue and can never fork the chain. Later appends of the
    same transaction extend the chain in memory; ``flush`` writes the records and the new head in two statements,
    and the unit of work calls it before committing.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._head: tuple[int, str] | None = None
        self._pending: list[dict[str, Any]] = []

    def append(
        self,
        *,
        at: datetime,
        actor_user_id: str,
        actor_participant_id: str,
        action: str,
        entity_type: str,
        entity_id: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> AuditEntry:
        if self._head is None:
            locked = self.session.execute(
                update(audit_head).where(audit_head.c.id == 1).values(last_seq=audit_head.c.last_seq)
            )
            if locked.rowcount != 1:  # type: ignore[attr-defined]
                raise RuntimeError("the audit chain head is missing: run `gridbridge db upgrade`")
            seq, digest = self.session.execute(
                select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == 1)
            ).one()
            self._head = (int(seq), str(digest))
        prev_seq, prev_hash = self._head
        seq = prev_seq + 1
        digest = entry_hash(
            prev_hash, seq, at, actor_user_id, actor_participant_id, action, entity_type, entity_id, before, after
        )
        entry = AuditEntry(
            seq,
            at,
            actor_user_id,
            actor_participant_id,
            action,
            entity_type,
            entity_id,
            before,
            after,
            prev_hash,
            digest,
        )
        self._pending.append(
            {
                "seq": seq,
                "at": at,
                "actor_user_id": actor_user_id,
                "actor_participant_id": actor_participant_id,
                "action": action,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "before": before,
                "after": after,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        self._head = (seq, digest)
        return entry

    def flush(self) -> None:
        """Write the records appended since the last flush, and the chain's new head."""
        if not self._pending or self._head is None:
            return
        self.session.execute(audit_records.insert(), self._pending)
        seq, digest = self._head
        self.session.execute(update(audit_head).where(audit_head.c.id == 1).values(last_seq=seq, last_hash=digest))
        self._pending = []

    def discard(self) -> None:
        """Forget unwritten records (the transaction is being rolled back)."""
        self._pending = []
        self._head = None

    def entries(self) -> Iterator[AuditEntry]:
        self.flush()
        query = select(audit_records).order_by(audit_records.c.seq).execution_options(yield_per=2000)
        for row in self.session.execute(query):
            yield AuditEntry(
                row.seq,
                row.at,
                row.actor_user_id,
                row.actor_participant_id,
                row.action,
                row.entity_type,
                row.entity_id,
                row.before,
                row.after,
                row.prev_hash,
                row.hash,
            )


class SqlIdempotency:
    """Stored responses for idempotency keys, written in the same transaction as the change they answer."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, user_id: str, key: str) -> StoredResponse | None:
        row = self.session.execute(
            select(idempotency_keys).where(and_(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key))
        ).first()
        return None if row is None else StoredResponse(row.request_hash, row.status_code, row.response_body)

    def save(self, user_id: str, key: str, response: StoredResponse, at: datetime) -> None:
        self.session.execute(
            idempotency_keys.insert().values(
                user_id=user_id,
                key=key,
                request_hash=response.request_hash,
                status_code=response.status_code,
                response_body=response.body,
                created_at=at,
            )
        )
