"""Settlement flags: what settlement may pay of a commitment that was counted twice (docs/conflicts.md, "Double
counting and settlement").

A double-counting conflict's resolution holds, for each commitment involved (one DER's share of one offer in
one interval), the firm kW backed by real capability; the rest is the same kW already committed elsewhere.
``flags_from_resolution`` turns that resolution into one ``SettlementFlag`` per commitment and segment of its
schedule, so that settlement reads a stored figure instead of a resolution's JSON. ``SettlementScope`` says who
may read which flags (the store has its SQL twin). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from gridbridge.domain.conflicts import Conflict, ConflictKind, Direction, Resolution, SubjectType
from gridbridge.domain.der import Der
from gridbridge.domain.market import SERVICE_OF, ResourceKind, StoredOffer
from gridbridge.domain.offers import Side
from gridbridge.domain.roles import Service

_TOL_KW = 1e-6


@dataclass(frozen=True)
class SettlementFlag:
    """One commitment's payable (firm) and not payable kW over ``[interval_start, interval_end)``, as the
    double-counting conflict ``conflict_id`` decided.

    The commitment is DER ``der_id``'s share of offer ``offer_id`` (``holder_kind``/``holder_id``: the DER
    itself, or the aggregation that offered it) for ``service``. ``committed_kw = firm_kw + not_payable_kw``.
    ``superseded_at`` is set when a later double-counting conflict over the same commitment and interval
    decided again (its flag is then the one in force).
    """

    conflict_id: str
    commitment_id: str
    der_id: str
    offer_id: str
    holder_kind: ResourceKind
    holder_id: str
    service: Service
    direction: Direction
    interval_start: datetime
    interval_end: datetime
    committed_kw: float
    firm_kw: float
    not_payable_kw: float
    tdi_id: str
    dso_id: str
    buyer_id: str
    provider_id: str
    owner_id: str
    tso_visible: bool
    """The TSO may read it: the interface's coordination model at ``interval_start`` shows it the DER."""
    recorded_at: datetime
    superseded_at: datetime | None = None

    def payable(self, kw: float) -> float:
        """The part of ``kw`` (what settlement would pay for this commitment) that may be paid: at most the firm
        kW, never below 0."""
        return max(0.0, min(kw, self.firm_kw))


def offer_of(commitment_id: str) -> str:
    """The offer id of a commitment id (``<offer id>:<DER id>``, as ``services.conflicts`` builds them)."""
    return commitment_id.split(":", 1)[0]


def flags_from_resolution(
    conflict_id: str,
    conflict: Conflict,
    resolution: Resolution,
    *,
    offers: Mapping[str, StoredOffer],
    ders: Mapping[str, Der],
    tso_sees: Callable[[Der, datetime], bool],
    at: datetime,
) -> list[SettlementFlag]:
    """The settlement flags of a stored double-counting conflict: one per commitment outcome and segment of its
    payable schedule, in outcome order. Any other kind of conflict gives none. A commitment whose offer or DER
    is not given (not stored) gives none: without them its holder and service are unknown.

    ``tso_sees(der, when)`` answers whether the TSO may see the DER at ``when`` (Table 6 row 2 of the model in
    force then).
    """
    if conflict.kind is not ConflictKind.DOUBLE_COUNTING:
        return []
    out: list[SettlementFlag] = []
    for outcome in resolution.outcomes:
        if outcome.subject_type is not SubjectType.COMMITMENT:
            continue
        offer = offers.get(offer_of(outcome.subject_id))
        der = ders.get(outcome.der_id)
        if offer is None or der is None:
            continue
        service = _service(offer)
        if service is None:
            continue
        committed = float(outcome.original_p_kw)
        for segment in outcome.schedule:
            firm = min(max(float(segment.p_kw), 0.0), committed)
            out.append(
                SettlementFlag(
                    conflict_id=conflict_id,
                    commitment_id=outcome.subject_id,
                    der_id=der.id,
                    offer_id=offer.id,
                    holder_kind=offer.resource_kind,
                    holder_id=offer.resource_id,
                    service=service,
                    direction=Direction.IMPORT if offer.side is Side.BID else Direction.EXPORT,
                    interval_start=segment.start,
                    interval_end=segment.end,
                    committed_kw=committed,
                    firm_kw=firm,
                    not_payable_kw=committed - firm if committed - firm > _TOL_KW else 0.0,
                    tdi_id=der.tdi_id,
                    dso_id=der.dso_id,
                    buyer_id=outcome.issuer_party_id,
                    provider_id=outcome.recipient_party_id,
                    owner_id=der.owner_id,
                    tso_visible=tso_sees(der, segment.start),
                    recorded_at=at,
                )
            )
    return out


def _service(offer: StoredOffer) -> Service | None:
    return SERVICE_OF.get(offer.product)


@dataclass(frozen=True)
class SettlementScope:
    """Which settlement flags a caller may read (deny by default; the store has the SQL twin):

    * observers and the platform administrator: all;
    * the provider of the commitment (the aggregator or owner that offered it): its own;
    * a DER owner also those on its own DERs (``owner``);
    * an LDC (``dso``) those at its interfaces for distribution services, and those it bought;
    * the TSO (``tso``) those whose DER the interface's model showed it at the flag's interval (``tso_visible``),
      and those it bought directly from the DER (a DER's own offer names the DER);
    * never a competitor's: an aggregator sees no other provider's commitment on a DER it represents.
    """

    everything: bool = False
    participant_id: str | None = None
    owner: bool = False
    dso: bool = False
    tso: bool = False

    def allows(self, flag: SettlementFlag) -> bool:
        """True when the caller may read ``flag``."""
        if self.everything:
            return True
        me = self.participant_id
        if me is None:
            return False
        if flag.provider_id == me:
            return True
        if self.owner and flag.owner_id == me:
            return True
        if self.dso and flag.dso_id == me and (flag.service is Service.DISTRIBUTION_SERVICES or flag.buyer_id == me):
            return True
        direct = flag.buyer_id == me and flag.holder_kind is ResourceKind.DER
        return self.tso and (flag.tso_visible or direct)


def in_force(flags: Sequence[SettlementFlag], when: datetime) -> SettlementFlag | None:
    """The flag in force at ``when`` among ``flags`` of one commitment: not superseded, covering ``when``, the
    latest recorded."""
    live = [f for f in flags if f.superseded_at is None and f.interval_start <= when < f.interval_end]
    return max(live, key=lambda f: (f.recorded_at, f.conflict_id)) if live else None


__all__ = ["SettlementFlag", "SettlementScope", "flags_from_resolution", "in_force", "offer_of"]
