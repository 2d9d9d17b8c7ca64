"""Ports of storage state: what ``services.storage`` and conflict detection need from storage
(``uow.state_of_charge``).

The store implements them in ``gridbridge.store.storage_repository``. A reading is the stored energy of one
storage DER at one moment, as its owner, its representative or its DSO reported it; conflict detection starts
a storage DER's trajectory from the latest reading at or before the start of the checked horizon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class StateOfChargeReading:
    """The stored energy ``soc_kwh`` of storage DER ``der_id`` at ``measured_at``, reported by ``reported_by``
    (a participant) at ``reported_at``."""

    id: str
    der_id: str
    soc_kwh: float
    measured_at: datetime
    reported_at: datetime
    reported_by: str


class StateOfChargeRepository(Protocol):
    """State-of-charge readings of storage DERs."""

    def add(self, reading: StateOfChargeReading) -> None:
        """Store a reading."""
        ...

    def latest(self, der_id: str, at: datetime | None = None) -> StateOfChargeReading | None:
        """The reading of ``der_id`` measured last (at or before ``at`` when given); ties: the last reported."""
        ...

    def latest_many(self, der_ids: Sequence[str], at: datetime) -> Mapping[str, StateOfChargeReading]:
        """``latest(der_id, at)`` for each of ``der_ids`` that has one."""
        ...
