"""Ports of the coordination cycle: what the offer, clearing and instruction services need from storage.

The store implements them (``gridbridge.store.market_repository``) and the unit of work exposes them as
``uow.market``. ``EnvelopeLimits`` gives the export and import limits in force for DERs over an interval: each
DER's share of its connection point's published envelope, capped by its approved static limits (0 for a DER that
is not in service); docs/coordination.md says how points without a published envelope are treated.
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
    """Offer versions."""

    def add(self, offer: StoredOffer) -> None:
        """Store one version (its key and revision are unique)."""
        ...

    def get(self, offer_id: str) -> StoredOffer | None:
        """One version by id."""
        ...

    def get_many(self, offer_ids: Sequence[str]) -> list[StoredOffer]:
        """The versions with these ids, in the given order (unknown ids left out)."""
        ...

    def latest(self, key: OfferKey) -> StoredOffer | None:
        """The highest revision of a series."""
        ...

    def supersede(self, offer_id: str, at: datetime) -> None:
        """Mark a version as replaced by a later revision at ``at``."""
        ...

    def versions(self, key: OfferKey) -> list[StoredOffer]:
        """Every revision of a series, oldest first."""
        ...

    def current(
        self, market: Market, interval_start: datetime, *, route: Route | None = None, tdi_id: str | None = None
    ) -> list[StoredOffer]:
        """The versions in force for one market interval, optionally for one route or interface, in a stable
        order (resource kind, resource, product, side)."""
        ...

    def query(self, scope: MarketScope, page: Page, filters: OfferFilter) -> list[StoredOffer]:
        """The versions ``scope`` allows, filtered and paged, in interval and resource order."""
        ...


class ClearingRepository(Protocol):
    """Clearing runs with their interface, resource and curtailment results."""

    def add(self, run: ClearingRun) -> None:
        """Store a run and all its results (one per market interval)."""
        ...

    def get(self, run_id: str) -> ClearingRun | None:
        """One run with its results."""
        ...

    def for_interval(self, market: Market, interval_start: datetime) -> ClearingRun | None:
        """The run of a market interval, if it was cleared."""
        ...

    def query(
        self, page: Page, market: Market | None = None, interval_start: datetime | None = None
    ) -> list[ClearingRun]:
        """Runs in interval order, optionally filtered, paged."""
        ...

    def mark_dispatched(self, run_id: str, at: datetime) -> None:
        """Record that the run's instructions were issued at ``at``."""
        ...


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
    """Instructions, written in bulk."""

    def add_many(self, instructions: Sequence[Instruction]) -> int:
        """Insert instructions (parents before their children) in one statement; return how many."""
        ...

    def get(self, instruction_id: str) -> Instruction | None:
        """One instruction."""
        ...

    def update(self, instruction: Instruction) -> None:
        """Write an instruction's mutable fields (status, response, escalation, split)."""
        ...

    def children(self, parent_id: str) -> list[Instruction]:
        """The instructions split from ``parent_id``."""
        ...

    def query(self, scope: MarketScope, page: Page, filters: InstructionFilter) -> list[Instruction]:
        """The instructions ``scope`` allows, filtered and paged, by interval, issue time and id."""
        ...

    def in_force(self, start: datetime, end: datetime) -> list[Instruction]:
        """Top-level instructions (no parent) for energy or load curtailment whose period overlaps
        ``[start, end)`` and that are neither rejected nor cancelled, by interval start and id."""
        ...

    def overdue(self, now: datetime, issuer_id: str | None, limit: int) -> list[Instruction]:
        """Open instructions (issued or received) whose deadline is before ``now``, oldest deadline first,
        optionally of one issuer, at most ``limit``."""
        ...

    def escalate(self, instruction_ids: Sequence[str], at: datetime) -> None:
        """Set these instructions ``escalated`` at ``at``."""
        ...


class NotificationRepository(Protocol):
    """Stored notifications."""

    def add_many(self, notifications: Sequence[Notification]) -> None:
        """Store notifications."""
        ...

    def query(self, recipient_id: str | None, page: Page) -> list[Notification]:
        """One recipient's notifications (``None``: everyone's), oldest first, paged."""
        ...


class MarketRepositories(Protocol):
    """The coordination cycle's repositories in one unit of work (``uow.market``)."""

    @property
    def offers(self) -> OfferRepository:
        """Offer versions."""
        ...

    @property
    def runs(self) -> ClearingRepository:
        """Clearing runs."""
        ...

    @property
    def instructions(self) -> InstructionRepository:
        """Instructions."""
        ...

    @property
    def notifications(self) -> NotificationRepository:
        """Notifications."""
        ...

    @property
    def envelopes(self) -> EnvelopeLimits:
        """Envelopes in force per DER."""
        ...
