"""Ports of the settlement flags (``uow.settlement``): what ``services.settlement_flags`` needs from storage.

The store implements them in ``gridbridge.store.settlement_repository``. Flags are written by the store itself
when the conflict repository stores a double-counting conflict (``SqlConflicts.add``), in the same transaction,
so every stored double-counting resolution has its flags and no flag outlives a rolled-back conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gridbridge.domain.settlement import SettlementFlag, SettlementScope
from gridbridge.services.ports import Page


@dataclass(frozen=True)
class FlagFilter:
    """Optional filters of a flag listing; ``interval_start``/``interval_end`` keep flags overlapping the period.
    ``include_superseded``: also flags a later conflict decided again."""

    interval_start: datetime | None = None
    interval_end: datetime | None = None
    der_id: str | None = None
    offer_id: str | None = None
    include_superseded: bool = False


class SettlementFlagRepository(Protocol):
    """Settlement flags of double-counting conflicts."""

    def add(self, flags: Sequence[SettlementFlag]) -> None:
        """Store flags; each supersedes (``superseded_at`` = its ``recorded_at``) the flags in force for the same
        commitment and interval start."""
        ...

    def query(self, scope: SettlementScope, page: Page, filters: FlagFilter) -> list[SettlementFlag]:
        """The flags ``scope`` allows, filtered, by interval start, DER, commitment and recording time, paged."""
        ...
