"""Ports: what the services need from storage. The store implements them; tests may use the real store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from gridbridge.domain.aggregation import Aggregation, AggregationMember
from gridbridge.domain.audit import AuditEntry
from gridbridge.domain.der import Der
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.participants import ApiToken, Participant, User
from gridbridge.domain.permissions import AggregationScope, DerScope
from gridbridge.domain.tdi import ModelAssignment, TDInterface


@dataclass(frozen=True)
class ConnectionPointRef:
    """What the registry needs to know about a connection point."""

    id: int
    name: str
    tdi_id: str
    feeder: str | None
    bus: str


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for an idempotency key."""

    request_hash: str
    status_code: int
    body: Any


@dataclass(frozen=True)
class Page:
    """Paging of list queries."""

    limit: int = 100
    offset: int = 0


class ParticipantRepository(Protocol):
    def add(self, participant: Participant) -> None: ...
    def get(self, participant_id: str) -> Participant | None: ...
    def by_name(self, name: str) -> Participant | None: ...
    def list(self) -> list[Participant]: ...


class UserRepository(Protocol):
    def add(self, user: User) -> None: ...
    def get(self, user_id: str) -> User | None: ...
    def by_username(self, username: str) -> User | None: ...


class TokenRepository(Protocol):
    def add(self, token: ApiToken) -> None: ...
    def by_hash(self, token_hash: str) -> ApiToken | None: ...


class TdiRepository(Protocol):
    def add(self, tdi: TDInterface) -> None: ...
    def get(self, tdi_id: str) -> TDInterface | None: ...
    def by_name(self, name: str) -> TDInterface | None: ...
    def list(self) -> list[TDInterface]: ...
    def add_assignment(self, assignment: ModelAssignment) -> None: ...
    def assignments(self, tdi_id: str) -> list[ModelAssignment]: ...
    def all_assignments(self) -> Mapping[str, list[ModelAssignment]]: ...


class DerRepository(Protocol):
    def add(self, der: Der) -> None: ...
    def add_many(self, ders: Sequence[Der]) -> None: ...
    def get(self, der_id: str) -> Der | None: ...
    def list(
        self, scope: DerScope, page: Page, *, tdi_id: str | None = None, status: DerStatus | None = None
    ) -> list[Der]: ...
    def count_by_status(self, scope: DerScope) -> dict[DerStatus, int]: ...


class AggregationRepository(Protocol):
    def add(self, aggregation: Aggregation) -> None: ...
    def get(self, aggregation_id: str) -> Aggregation | None: ...
    def list(self, scope: AggregationScope, page: Page) -> list[Aggregation]: ...
    def memberships_of(self, der_id: str) -> list[tuple[Aggregation, AggregationMember]]: ...


class NetworkRepository(Protocol):
    def has_network(self, tdi_id: str) -> bool: ...
    def connection_point(self, cp_id: int) -> ConnectionPointRef | None: ...
    def connection_points(self, tdi_id: str) -> list[ConnectionPointRef]: ...


class AuditRepository(Protocol):
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
    ) -> AuditEntry: ...
    def entries(self) -> Iterator[AuditEntry]: ...


class IdempotencyRepository(Protocol):
    def get(self, user_id: str, key: str) -> StoredResponse | None: ...
    def save(self, user_id: str, key: str, response: StoredResponse, at: datetime) -> None: ...


class UnitOfWork(Protocol):
    """One transaction. Nothing is visible to others, or acknowledged, before ``commit`` returns."""

    participants: ParticipantRepository
    users: UserRepository
    tokens: TokenRepository
    tdis: TdiRepository
    ders: DerRepository
    aggregations: AggregationRepository
    networks: NetworkRepository
    audit: AuditRepository
    idempotency: IdempotencyRepository

    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def flush(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    """Opens a new unit of work."""

    def __call__(self) -> UnitOfWork: ...
