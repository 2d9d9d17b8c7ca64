"""Settlement flags of double counting (``domain.settlement``): what a resolution's commitment outcomes become,
who may read them, and which one is in force."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gridbridge.domain.conflicts import (
    Conflict,
    ConflictKind,
    Outcome,
    OutcomeAction,
    Resolution,
    ResolutionRule,
    Segment,
    SubjectType,
)
from gridbridge.domain.der import Der, MeterPosition, Technology
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.market import ResourceKind, Route, StoredOffer
from gridbridge.domain.offers import Market, OfferSegment, Product, Side
from gridbridge.domain.roles import Service
from gridbridge.domain.settlement import SettlementFlag, SettlementScope, flags_from_resolution, in_force

T = datetime(2026, 7, 1, 17, 0, tzinfo=UTC)
END = T + timedelta(hours=1)


def _der(der_id: str = "der-1", owner: str = "owner-1", representative: str | None = "agg-1") -> Der:
    return Der(
        id=der_id,
        name=der_id,
        technology=Technology.STORAGE,
        p_export_kw=60.0,
        p_import_kw=60.0,
        e_kwh=120.0,
        ramp_kw_per_min=None,
        meter_position=MeterPosition.BEHIND_THE_METER,
        owner_id=owner,
        representative_id=representative,
        connection_point_id=7,
        tdi_id="tdi-1",
        dso_id="ldc-1",
        dso_affiliated=False,
        status=DerStatus.IN_SERVICE,
        requested_at=T - timedelta(days=30),
        review_due_at=T - timedelta(days=20),
    )


def _offer(offer_id: str, kind: ResourceKind, resource_id: str, product: Product, party: str) -> StoredOffer:
    return StoredOffer(
        id=offer_id,
        resource_kind=kind,
        resource_id=resource_id,
        product=product,
        market=Market.REAL_TIME,
        side=Side.OFFER,
        interval_start=T,
        revision=1,
        segments=(OfferSegment(Decimal("20"), Decimal("60")),),
        offered_kw=Decimal("60"),
        route=Route.DSO,
        tdi_id="tdi-1",
        dso_id="ldc-1",
        party_id=party,
        sender_id=party,
        submitted_by=party,
        submitted_at=T - timedelta(hours=1),
    )


def _outcome(commitment_id: str, buyer: str, provider: str, firm_kw: float, action: OutcomeAction) -> Outcome:
    return Outcome(
        SubjectType.COMMITMENT,
        commitment_id,
        "der-1",
        buyer,
        provider,
        action,
        60.0,
        (Segment(T, END, firm_kw),),
        "settlement pays the firm kW only",
    )


def _double_counting(kind: ConflictKind = ConflictKind.DOUBLE_COUNTING) -> tuple[Conflict, Resolution]:
    outcomes = (
        _outcome("reserve:der-1", "ldc-1", "agg-1", 60.0, OutcomeAction.KEPT),
        _outcome("energy:der-1", "ldc-1", "agg-1", 0.0, OutcomeAction.CANCELLED),
    )
    conflict = Conflict(
        conflict_id="double_counting:der-1",
        kind=kind,
        tdi_id="tdi-1",
        der_ids=("der-1",),
        connection_point_id="7",
        intervals=((T, END),),
        instruction_ids=(),
        commitment_ids=("reserve:der-1", "energy:der-1"),
        party_ids=("ldc-1", "agg-1"),
        figures={},
        series={},
        summary="60 kW counted twice",
    )
    resolution = Resolution("r-1", "c-1", kind, "tdi-1", ResolutionRule.SERVICE_PRIORITY, T, outcomes, "resolved")
    return conflict, resolution


OFFERS = {
    "reserve": _offer("reserve", ResourceKind.AGGREGATION, "agg-vpp", Product.OPERATING_RESERVE, "agg-1"),
    "energy": _offer("energy", ResourceKind.DER, "der-1", Product.ENERGY, "agg-1"),
}


def test_a_resolution_becomes_one_flag_per_commitment_with_its_firm_and_unpaid_kw() -> None:
    conflict, resolution = _double_counting()
    seen: list[tuple[str, datetime]] = []

    def tso_sees(der: Der, when: datetime) -> bool:
        seen.append((der.id, when))
        return True

    flags = flags_from_resolution(
        "c-1", conflict, resolution, offers=OFFERS, ders={"der-1": _der()}, tso_sees=tso_sees, at=T
    )
    by_offer = {f.offer_id: f for f in flags}
    assert set(by_offer) == {"reserve", "energy"}
    reserve, energy = by_offer["reserve"], by_offer["energy"]
    assert (reserve.firm_kw, reserve.not_payable_kw, reserve.committed_kw) == (60.0, 0.0, 60.0)
    assert (energy.firm_kw, energy.not_payable_kw) == (0.0, 60.0)
    assert (reserve.holder_kind, reserve.holder_id, reserve.service) == (
        ResourceKind.AGGREGATION,
        "agg-vpp",
        Service.OPERATING_RESERVE,
    )
    assert (energy.holder_kind, energy.holder_id, energy.service) == (
        ResourceKind.DER,
        "der-1",
        Service.WHOLESALE_ENERGY,
    )
    assert all(
        (f.buyer_id, f.provider_id, f.owner_id, f.conflict_id) == ("ldc-1", "agg-1", "owner-1", "c-1") for f in flags
    )
    assert all(f.tso_visible and (f.interval_start, f.interval_end) == (T, END) for f in flags)
    assert seen == [("der-1", T), ("der-1", T)]


def test_other_conflicts_and_unknown_offers_give_no_flags() -> None:
    conflict, resolution = _double_counting(ConflictKind.HIDDEN_COUPLING_CAPABILITY)
    ders = {"der-1": _der()}
    assert (
        flags_from_resolution("c-1", conflict, resolution, offers=OFFERS, ders=ders, tso_sees=lambda d, w: True, at=T)
        == []
    )
    conflict, resolution = _double_counting()
    only_energy = {"energy": OFFERS["energy"]}
    flags = flags_from_resolution(
        "c-1", conflict, resolution, offers=only_energy, ders=ders, tso_sees=lambda d, w: True, at=T
    )
    assert [f.offer_id for f in flags] == ["energy"]


def _flag(**changes: object) -> SettlementFlag:
    conflict, resolution = _double_counting()
    (flag,) = [
        f
        for f in flags_from_resolution(
            "c-1", conflict, resolution, offers=OFFERS, ders={"der-1": _der()}, tso_sees=lambda d, w: False, at=T
        )
        if f.offer_id == "energy"
    ]
    return replace(flag, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scope", "changes", "allowed"),
    [
        (SettlementScope(everything=True), {}, True),
        (SettlementScope(participant_id="agg-1"), {}, True),  # its own commitment
        (SettlementScope(participant_id="agg-2"), {}, False),  # a competitor's commitment on the same DER
        (SettlementScope(participant_id="agg-2"), {"owner_id": "agg-2"}, False),  # an aggregator is no owner
        (SettlementScope(participant_id="owner-1", owner=True), {}, True),  # on its own DER
        (SettlementScope(participant_id="owner-2", owner=True), {}, False),
        (SettlementScope(participant_id="ldc-1", dso=True), {}, True),  # it bought it
        (SettlementScope(participant_id="ldc-1", dso=True), {"buyer_id": "tso"}, False),  # wholesale, bought by TSO
        (
            SettlementScope(participant_id="ldc-1", dso=True),
            {"buyer_id": "tso", "service": Service.DISTRIBUTION_SERVICES},
            True,
        ),
        (SettlementScope(participant_id="ldc-2", dso=True), {}, False),  # another LDC's territory
        (SettlementScope(participant_id="tso", tso=True), {}, False),  # the model hides the DER
        (SettlementScope(participant_id="tso", tso=True), {"tso_visible": True}, True),
        (SettlementScope(participant_id="tso", tso=True), {"buyer_id": "tso"}, True),  # bought from the DER itself
        (
            SettlementScope(participant_id="tso", tso=True),
            {"buyer_id": "tso", "holder_kind": ResourceKind.AGGREGATION},
            False,
        ),  # bought from an aggregation: the member stays hidden
        (SettlementScope(), {}, False),
    ],
)
def test_who_may_read_a_flag(scope: SettlementScope, changes: dict[str, object], allowed: bool) -> None:
    assert scope.allows(_flag(**changes)) is allowed


def test_the_latest_flag_not_superseded_is_in_force_and_caps_what_is_paid() -> None:
    old = _flag(firm_kw=30.0, not_payable_kw=30.0, recorded_at=T - timedelta(minutes=10), superseded_at=T)
    new = _flag(firm_kw=10.0, not_payable_kw=50.0, recorded_at=T)
    assert in_force([old, new], T) is new
    assert in_force([old], T) is None
    assert in_force([new], END) is None  # outside its interval
    assert new.payable(60.0) == 10.0
    assert new.payable(5.0) == 5.0
    assert _flag().payable(60.0) == 0.0
