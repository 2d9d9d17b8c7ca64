"""Transparent curtailment's records and the storage port the curtailment services need (``uow.curtailment``).

* ``PublishedProcedure``: one version of a DSO's curtailment procedure at a T-D interface, in force from its
  ``effective_from`` (never retroactive) until the next version takes effect.
* ``CurtailmentEvent``: one applied curtailment: the requirement, the window, the procedure version used, every
  candidate DER's share (``StoredShare``, with the numbers that produced it) and what each party was told
  (``PartyNotice``).
* ``CurtailmentScope``: who sees which events and which shares (the store has the SQL twin).

The store implements ``CurtailmentRepository`` in ``gridbridge.store.curtailment_repository``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from gridbridge.domain.conflicts import CurtailmentProcedure, ParticipationGroup
from gridbridge.services.ports import Page


@dataclass(frozen=True)
class PublishedProcedure:
    """One published version of a DSO's curtailment procedure at one T-D interface.

    ``dso_aggregated_pct`` is how the required reduction is split between the groups: ``None`` ranks every
    candidate together by the rule; a percentage gives that part to DSO-aggregated DERs and the rest to direct
    participants, each split within its group by the rule (what one group cannot cover goes to the other).
    """

    id: str
    tdi_id: str
    dso_id: str
    version: int
    procedure: CurtailmentProcedure
    dso_aggregated_pct: float | None
    effective_from: datetime
    published_at: datetime
    published_by: str
    note: str = ""

    def describe(self) -> str:
        """The procedure as published, e.g. ``'v2: pro_rata_export; DSO-aggregated 40 %, direct 60 %'``."""
        split = (
            "all candidates ranked together"
            if self.dso_aggregated_pct is None
            else f"DSO-aggregated {self.dso_aggregated_pct:g} %, direct {100 - self.dso_aggregated_pct:g} %"
        )
        return f"v{self.version}: {self.procedure.describe()}; {split}"

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "id": self.id,
            "tdi_id": self.tdi_id,
            "version": self.version,
            "rule": self.procedure.rule.value,
            "parameters": dict(self.procedure.parameters),
            "dso_aggregated_pct": self.dso_aggregated_pct,
            "effective_from": self.effective_from.isoformat(),
        }


@dataclass(frozen=True)
class StoredShare:
    """One candidate DER's share of a curtailment and everything the rule used to compute it."""

    der_id: str
    party_id: str
    """Who answers for the DER (its representative, else its owner): the instruction's recipient."""
    owner_id: str
    group: ParticipationGroup
    dso_affiliated: bool
    p_export_kw: float
    """The export the rule saw over the window (the smallest over its instructed segments)."""
    export_source: str
    """Where ``p_export_kw`` came from: ``instructions`` or the binding envelope or limit."""
    capacity_kw: float
    offer_price_cad_per_mwh: Decimal | None
    connected_at: datetime | None
    share_kw: float
    rule: str
    reason: str
    instruction_id: str | None = None


@dataclass(frozen=True)
class PartyNotice:
    """What one affected party is told: its total share, its DERs, the rule, and the instruction carrying it."""

    party_id: str
    share_kw: float
    der_ids: tuple[str, ...]
    rule: str
    message: str
    instruction_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class CurtailmentEvent:
    """A curtailment applied at an interface over a window under one procedure version."""

    id: str
    tdi_id: str
    dso_id: str
    procedure_id: str
    procedure_version: int
    rule: str
    required_kw: float
    available_kw: float
    """What the candidates could have curtailed (their export over the window)."""
    dso_aggregated_kw: float
    direct_kw: float
    window_start: datetime
    window_end: datetime
    connection_point_ids: tuple[int, ...]
    """The points the request was limited to (empty: the whole interface)."""
    feeder: str | None
    reason: str
    requested_at: datetime
    requested_by: str
    """The user who asked."""
    requested_for: str
    """The DSO on whose behalf it was applied (the interface's DSO)."""
    shares: tuple[StoredShare, ...] = ()
    notices: tuple[PartyNotice, ...] = ()

    def snapshot(self) -> dict[str, object]:
        """A JSON-able summary for the audit trail."""
        return {
            "id": self.id,
            "tdi_id": self.tdi_id,
            "procedure_version": self.procedure_version,
            "rule": self.rule,
            "required_kw": self.required_kw,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "dso_aggregated_kw": self.dso_aggregated_kw,
            "direct_kw": self.direct_kw,
            "shares": {s.der_id: s.share_kw for s in self.shares if s.share_kw > 0},
        }


@dataclass(frozen=True)
class CurtailmentScope:
    """Which curtailment events, and which shares of them, a caller sees.

    * observer (and the platform administrator): everything;
    * a DSO: every event at its interfaces with every share; elsewhere, like a party;
    * the TSO: every event with its group totals, no DER shares;
    * an aggregator or a DER owner: events where it answers for or owns a curtailed candidate, with only
      those shares and its own notice.
    """

    everything: bool = False
    participant_id: str | None = None
    dso: bool = False
    tso: bool = False

    def _mine(self, share: StoredShare) -> bool:
        return self.participant_id in (share.party_id, share.owner_id)

    def sees_all_shares(self, event: CurtailmentEvent) -> bool:
        """True when the caller sees every share of ``event``."""
        return self.everything or (self.dso and event.dso_id == self.participant_id)

    def allows(self, event: CurtailmentEvent) -> bool:
        """True when the caller may see ``event`` at all."""
        return self.sees_all_shares(event) or self.tso or any(self._mine(s) for s in event.shares)

    def visible(self, event: CurtailmentEvent) -> CurtailmentEvent:
        """``event`` cut down to the shares and notices the caller may see."""
        if self.sees_all_shares(event):
            return event
        shares = tuple(s for s in event.shares if self._mine(s))
        notices = tuple(n for n in event.notices if n.party_id == self.participant_id)
        return replace(event, shares=shares, notices=notices)


@dataclass(frozen=True)
class InstructedPower:
    """One DER-level energy instruction in force: ``p_kw`` (positive: export) over ``[start, end)``."""

    der_id: str
    p_kw: float
    start: datetime
    end: datetime


class CurtailmentRepository(Protocol):
    """Published procedures, curtailment events, and the instruction figures curtailment reads."""

    def add_procedure(self, procedure: PublishedProcedure) -> None:
        """Store one version (its interface and version, and its interface and effective time, are unique)."""
        ...

    def procedures(self, tdi_id: str) -> list[PublishedProcedure]:
        """Every version published at an interface, oldest first."""
        ...

    def add_event(self, event: CurtailmentEvent) -> None:
        """Store an event with its shares and notices."""
        ...

    def get_event(self, event_id: str) -> CurtailmentEvent | None:
        """One event with all its shares and notices."""
        ...

    def query_events(self, scope: CurtailmentScope, page: Page, tdi_id: str | None = None) -> list[CurtailmentEvent]:
        """The events ``scope`` allows (with all their shares: cut them with ``scope.visible``), newest window
        first, optionally at one interface, paged."""
        ...

    def events_overlapping(self, dso_id: str, start: datetime, end: datetime) -> list[CurtailmentEvent]:
        """A DSO's events whose window overlaps ``[start, end)``, with their shares."""
        ...

    def der_instructions(self, der_ids: Sequence[str], start: datetime, end: datetime) -> list[InstructedPower]:
        """DER-level energy instructions (any kind) still in force (issued, received or accepted) that overlap
        ``[start, end)``, for the given DERs; curtailment reductions are left out (see ``der_curtailments``)."""
        ...

    def der_curtailments(self, der_ids: Sequence[str], start: datetime, end: datetime) -> list[InstructedPower]:
        """The shares of stored curtailments of these DERs whose window overlaps ``[start, end)``, as negative
        ``p_kw`` over each event's window."""
        ...

    def dispatched(self, dso_id: str, start: datetime, end: datetime) -> list[InstructedPower]:
        """DER-level market schedules and dispatch and the DSO's distribution-service dispatch (positive
        ``p_kw``, still in force) of DERs in a DSO's territory overlapping ``[start, end)``."""
        ...
