"""Ports of the coordination cycle: what the offer, clearing and instruction services need from storage.

The store implements them (``gridbridge.store.market_repository``) and the unit of work exposes them as
``uow.market``. ``EnvelopeLimits`` gives the export and import limits in force for DERs over an interval; today's
implementation reads each DER's approved static limits (0 for a DER that is not in service), and published
dynamic envelopes can replace it later without touching the services.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gridbridge.domain.market import (
    ClearingRun,
    Instruction,
    InstructionStatus,
    MarketScope,
    Notification,
    OfferKey,
    Route,
    StoredOffer,
)
from gridbridge.domain.offers import Market, Product
from gridbridge.services.ports import Page


@dataclass(frozen=True)
class DerLimits:
    """The limits in force for one DER over an interval (kW, non-negative), and what sets each of them.

    ``binding_export`` / ``binding_import`` name the envelope or rule that sets the limit, for acknowledgements
    and curtailment reasons (for example ``static:der/<id>:export_limit_kw`` or ``status:suspended``).
    """

    der_id: str
    export_kw: float
    import_kw: float
    binding_export: str
    binding_import: str


class EnvelopeLimits(Protocol):
    """Operating envelopes in force, per DER, for an interval."""

    def der_limits(
        self, der_ids: Sequence[str], interval_start: datetime, interval_end: datetime
    ) -> dict[str, DerLimits]:
        """Limits for each of ``der_ids`` over ``[interval_start, interval_end)``; never "no limit": a DER the
        source knows nothing usable about gets 0 (and a binding that says why). Unknown ids are left out."""
        ...


@dataclass(frozen=True)
class OfferFilter:
    """Optional filters of an offer listing."""

    market: Market | None = None
    interval_start: datetime | None = None
    resource_id: str | None = None
    product: Product | None = None
    current_only: bool = True


class OfferRepository(Protocol):
    def add(self, offer: StoredOffer) -> None: ...
    def get(self, offer_id: str) -> StoredOffer | None: ...
    def get_many(self, offer_ids: Sequence[str]) -> list[StoredOffer]: ...
    def latest(self, key: OfferKey) -> StoredOffer | None: ...
    def supersede(self, offer_id: str, at: datetime) -> None: ...
    def versions(self, key: OfferKey) -> list[StoredOffer]: ...
    def current(
        self, market: Market, interval_start: datetime, *, route: Route | None = None, tdi_id: str | None = None
    ) -> list[StoredOffer]: ...
    def query(self, scope: MarketScope, page: Page, filters: OfferFilter) -> list[StoredOffer]: ...


class ClearingRepository(Protocol):
    def add(self, run: ClearingRun) -> None: ...
    def get(self, run_id: str) -> ClearingRun | None: ...
    def for_interval(self, market: Market, interval_start: datetime) -> ClearingRun | None: ...
    def query(
        self, page: Page, market: Market | None = None, interval_start: datetime | None = None
    ) -> list[ClearingRun]: ...
    def mark_dispatched(self, run_id: str, at: datetime) -> None: ...


@dataclass(frozen=True)
class InstructionFilter:
    """Optional filters of an instruction listing."""

    status: InstructionStatus | None = None
    market: Market | None = None
    interval_start: datetime | None = None
    run_id: str | None = None
    parent_id: str | None = None
    recipient_id: str | None = None


class InstructionRepository(Protocol):
    def add_many(self, instructions: Sequence[Instruction]) -> int: ...
    def get(self, instruction_id: str) -> Instruction | None: ...
    def update(self, instruction: Instruction) -> None: ...
    def children(self, parent_id: str) -> list[Instruction]: ...
    def query(self, scope: MarketScope, page: Page, filters: InstructionFilter) -> list[Instruction]: ...
    def overdue(self, now: datetime, issuer_id: str | None, limit: int) -> list[Instruction]: ...
    def escalate(self, instruction_ids: Sequence[str], at: datetime) -> None: ...


class NotificationRepository(Protocol):
    def add_many(self, notifications: Sequence[Notification]) -> None: ...
    def query(self, recipient_id: str | None, page: Page) -> list[Notification]: ...


class MarketRepositories(Protocol):
    """The coordination cycle's repositories in one unit of work (``uow.market``)."""

    @property
    def offers(self) -> OfferRepository: ...
    @property
    def runs(self) -> ClearingRepository: ...
    @property
    def instructions(self) -> InstructionRepository: ...
    @property
    def notifications(self) -> NotificationRepository: ...
    @property
    def envelopes(self) -> EnvelopeLimits: ...
