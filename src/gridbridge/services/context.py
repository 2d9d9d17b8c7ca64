"""What every use case runs with: the open unit of work, the caller, a clock, settings and an id source."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gridbridge.domain.clock import Clock
from gridbridge.domain.permissions import Caller
from gridbridge.services.market_settings import MarketSettings
from gridbridge.services.ports import UnitOfWork

if TYPE_CHECKING:
    from gridbridge.services.networks import NetworkLoader


@dataclass(frozen=True)
class RegistrySettings:
    """Registry defaults that a deployment may change (documented in docs/settings.md)."""

    der_review_days: int = 60
    member_review_days: int = 60
    aggregation_min_size_kw: float = 100.0
    storage_round_trip_efficiency: float = 0.9
    """Round-trip efficiency conflict detection assumes for a storage DER that declares none."""
    market: MarketSettings = field(default_factory=MarketSettings)


def new_uuid() -> str:
    """A random UUID4 string."""
    return str(uuid.uuid4())


@dataclass
class Context:
    """A use case's surroundings. The caller of the service commits ``uow``; services never commit."""

    uow: UnitOfWork
    caller: Caller
    clock: Clock
    settings: RegistrySettings = field(default_factory=RegistrySettings)
    new_id: Callable[[], str] = new_uuid
    network_loader: NetworkLoader | None = None

    def audit(
        self,
        action: str,
        entity_type: str,
        entity_id: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Append an audit record for a state change made in this unit of work."""
        self.uow.audit.append(
            at=self.clock.now(),
            actor_user_id=self.caller.user_id,
            actor_participant_id=self.caller.participant_id,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            before=before,
            after=after,
        )
