"""The SQLAlchemy unit of work: one session, one transaction, the repositories over it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.orm import Session, sessionmaker

from gridbridge.store.conflict_repository import SqlConflicts
from gridbridge.store.curtailment_repository import SqlCurtailment
from gridbridge.store.envelope_repository import SqlEnvelopeStore
from gridbridge.store.market_repository import SqlMarket
from gridbridge.store.network_port import SqlNetworks
from gridbridge.store.repositories import (
    SqlAggregations,
    SqlAudit,
    SqlDers,
    SqlIdempotency,
    SqlParticipants,
    SqlTdis,
    SqlTokens,
    SqlUsers,
)
from gridbridge.store.settlement_repository import SqlSettlementFlags
from gridbridge.store.storage_repository import SqlStateOfCharge


class SqlUnitOfWork:
    """One transaction. Leaving the ``with`` block without ``commit`` rolls everything back."""

    session: Session

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def __enter__(self) -> Self:
        self.session = self._factory()
        s = self.session
        self.participants = SqlParticipants(s)
        self.users = SqlUsers(s)
        self.tokens = SqlTokens(s)
        self.tdis = SqlTdis(s)
        self.ders = SqlDers(s)
        self.aggregations = SqlAggregations(s)
        self.networks = SqlNetworks(s)
        self.audit = SqlAudit(s)
        self.idempotency = SqlIdempotency(s)
        self.market = SqlMarket(s)
        self.envelopes = SqlEnvelopeStore(s)
        self.curtailment = SqlCurtailment(s)
        self.conflicts = SqlConflicts(s)
        self.state_of_charge = SqlStateOfCharge(s)
        self.settlement = SqlSettlementFlags(s)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # close() rolls back anything uncommitted without expiring what was loaded, so values read inside the
        # block stay readable after it
        self.audit.discard()
        self.session.close()

    def commit(self) -> None:
        """Make every change of this unit of work durable and visible; nothing is acknowledged before this."""
        self.audit.flush()
        self.session.commit()
        self.audit.discard()

    def rollback(self) -> None:
        """Discard every change since the last commit."""
        self.audit.discard()
        self.session.rollback()

    def flush(self) -> None:
        """Send pending changes to the database inside the transaction (queries then see them)."""
        self.session.flush()
        self.audit.flush()


class SqlUnitOfWorkFactory:
    """Opens units of work on one engine's sessions."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._factory)
