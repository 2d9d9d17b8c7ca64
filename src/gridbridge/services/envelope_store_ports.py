"""Ports of the database-backed envelope workflows: network state, settings, runs, published envelopes,
notifications and hosting-capacity assessments (``uow.envelopes``), and the power-flow backend.

The store implements the repositories (``gridbridge.store.envelope_repository``); the pandapower adapter
implements :class:`EnvelopeBackend` (``gridbridge.adapters.powerflow.stored``). Services never see either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gridbridge.domain.der import Der
from gridbridge.domain.envelope_publication import (
    EnvelopeBatch,
    EnvelopeRunRecord,
    EnvelopeSettings,
    HostingAssessment,
    RunStatus,
    StoredEnvelope,
)
from gridbridge.domain.envelopes import IntervalLimits
from gridbridge.domain.network import NetworkModel
from gridbridge.domain.network_state import NetworkEvent, NetworkNotification
from gridbridge.domain.permissions import DerScope
from gridbridge.services.envelopes_ports import EnvelopeNetwork, ForecastSource
from gridbridge.services.ports import ConnectionPointRef, Page


class NetworkEventRepository(Protocol):
    def add(self, event: NetworkEvent) -> None: ...
    def get(self, event_id: str) -> NetworkEvent | None: ...
    def overlapping(self, tdi_id: str, start: datetime, end: datetime) -> list[NetworkEvent]:
        """Events of the interface whose window overlaps ``[start, end)``, in recording order."""
        ...

    def query(self, tdi_id: str, page: Page, *, active_at: datetime | None = None) -> list[NetworkEvent]: ...


class EnvelopeSettingsRepository(Protocol):
    def get(self, tdi_id: str) -> EnvelopeSettings | None: ...
    def save(self, tdi_id: str, settings: EnvelopeSettings, *, at: datetime, by: str) -> None: ...


class EnvelopeRunRepository(Protocol):
    def add(self, run: EnvelopeRunRecord) -> None: ...
    def get(self, run_id: str) -> EnvelopeRunRecord | None: ...
    def update(self, run: EnvelopeRunRecord) -> None: ...
    def query(self, tdi_id: str, page: Page, *, status: RunStatus | None = None) -> list[EnvelopeRunRecord]: ...
    def queued(self, tdi_id: str | None, limit: int) -> list[EnvelopeRunRecord]:
        """Queued runs, oldest first (all interfaces when ``tdi_id`` is None)."""
        ...


class EnvelopeRepository(Protocol):
    def add_drafts(self, batch: EnvelopeBatch) -> int:
        """Store a run block's envelopes as drafts (unpublished); returns how many."""
        ...

    def publish_drafts(self, run_id: str, *, at: datetime, ending_after: datetime) -> int:
        """Issue the run's drafts whose interval ends after ``ending_after`` at ``at``, each as the next version
        of its (point, interval), superseding the current version there. Returns how many were issued."""
        ...

    def current(self, point_ids: Sequence[int], start: datetime, end: datetime) -> list[StoredEnvelope]:
        """Published, not superseded envelopes of the points whose interval overlaps ``[start, end)``."""
        ...

    def publish(self, envelopes: Sequence[StoredEnvelope], *, at: datetime) -> int:
        """Issue new envelopes (not drafts) at ``at``: each gets the next version of its (point, interval) and
        supersedes the current version there. Returns how many were issued."""
        ...

    def query(
        self,
        scope: DerScope,
        page: Page,
        *,
        tdi_id: str | None = None,
        point_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        include_superseded: bool = False,
    ) -> list[StoredEnvelope]: ...

    def limits_in_force(
        self,
        point_ids: Sequence[int],
        start: datetime,
        end: datetime | None = None,
        *,
        approved: Mapping[int, bool] | None = None,
    ) -> dict[int, IntervalLimits]:
        """Published limits in force per point over ``[start, end)`` with the interface's default fallback."""
        ...


class NetworkNotificationRepository(Protocol):
    def add_many(self, notifications: Sequence[NetworkNotification]) -> None: ...
    def query(
        self, recipient_id: str | None, page: Page, *, tdi_id: str | None = None
    ) -> list[NetworkNotification]: ...


class HostingAssessmentRepository(Protocol):
    def add(self, assessment: HostingAssessment) -> None: ...
    def latest(self, der_id: str) -> HostingAssessment | None: ...
    def attach_review(self, assessment_id: str, review_id: str) -> None: ...


class EnvelopeRepositories(Protocol):
    """The envelope workflows' repositories in one unit of work (``uow.envelopes``)."""

    @property
    def events(self) -> NetworkEventRepository: ...
    @property
    def settings(self) -> EnvelopeSettingsRepository: ...
    @property
    def runs(self) -> EnvelopeRunRepository: ...
    @property
    def envelopes(self) -> EnvelopeRepository: ...
    @property
    def notifications(self) -> NetworkNotificationRepository: ...
    @property
    def hosting(self) -> HostingAssessmentRepository: ...

    def ders_at_points(self, point_ids: Sequence[int]) -> list[Der]:
        """Every DER (any status) at the given connection points."""
        ...

    def visible_points(self, scope: DerScope, tdi_id: str | None = None) -> list[ConnectionPointRef]:
        """The connection points whose envelopes ``scope`` may see (see docs/envelopes.md)."""
        ...

    def network_source(self, tdi_id: str) -> str | None:
        """Where the interface's stored network model came from (``networks.source``), None without one."""
        ...


@dataclass(frozen=True)
class PreparedNetwork:
    """A stored model made ready for the envelope engine: the network and its forecast source."""

    network: EnvelopeNetwork
    forecast: ForecastSource


class EnvelopeBackend(Protocol):
    """Builds the envelope engine's network and forecast from a stored model (pandapower in production)."""

    def prepare(self, model: NetworkModel, *, source: str) -> PreparedNetwork:
        """The engine's network for ``model`` and the forecast for a model imported from ``source``
        (``simbench:CODE``: the SimBench profiles of that grid; anything else: the stored values)."""
        ...
