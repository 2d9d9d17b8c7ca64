"""Aggregations through the real services: LDC review of members, market standing, double enrolment,
distribution factors, and what the TSO sees under each coordination model."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gridbridge.domain.aggregation import MarketStatus, MemberStatus, RejectionCategory
from gridbridge.domain.der import ReviewDecision
from gridbridge.domain.errors import ConflictError, NotFound, PermissionDenied, ValidationFailed
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.roles import Service
from gridbridge.services import aggregations, ders
from gridbridge.services.ports import Page
from registry_province import T0, Province, build_province, enrol

ENERGY = {Service.WHOLESALE_ENERGY: 100.0}


@pytest.fixture
def province(database_url: str) -> Province:
    return build_province(database_url)


def test_member_approval_enrols_der_activates_market_and_shows_it_to_the_tso(province: Province) -> None:
    agg_id = enrol(province, "agg_1", "vpp", ["a2", "a3"], ENERGY, approve_as=["ldc_a"])
    view = province.run("agg_1", lambda ctx: aggregations.get_aggregation(ctx, agg_id))
    assert [m.status for m in view.members] == [MemberStatus.APPROVED] * 2
    assert view.aggregation.markets[0].status is MarketStatus.ACTIVE
    assert view.distribution_factors == {province.tdis["tdi_a"]: 1.0}
    der = province.run("regulator", lambda ctx: ders.get_der(ctx, province.ders["a2"]))
    assert der.status is DerStatus.ENROLLED
    # alt 2: the TSO now sees these market-participating DERs, still not the others
    seen = province.run("tso", lambda ctx: {d.name for d in ders.list_ders(ctx, Page())})
    assert seen == {"der-a2", "der-a3"}


def test_rejection_needs_category_and_suspends_below_minimum(province: Province) -> None:
    agg_id = enrol(province, "agg_1", "vpp", ["a2", "a3"], {Service.WHOLESALE_ENERGY: 100.0})
    view = province.run("ldc_a", lambda ctx: aggregations.get_aggregation(ctx, agg_id))
    first, second = view.members
    with pytest.raises(ValidationFailed) as caught:
        province.run(
            "ldc_a",
            lambda ctx: aggregations.review_member(
                ctx, agg_id, first.id, ReviewDecision.REJECTED, "no reason category"
            ),
        )
    assert caught.value.code == "aggregation.rejection_category_required"
    province.run("ldc_a", lambda ctx: aggregations.review_member(ctx, agg_id, first.id, ReviewDecision.APPROVED))
    province.run(
        "ldc_a",
        lambda ctx: aggregations.review_member(
            ctx, agg_id, second.id, ReviewDecision.REJECTED, "feeder under maintenance", RejectionCategory.SAFETY
        ),
    )
    view = province.run("agg_1", lambda ctx: aggregations.get_aggregation(ctx, agg_id))
    assert view.aggregation.markets[0].status is MarketStatus.SUSPENDED
    assert len(view.members) == 2
    disputed = province.run(
        "agg_1", lambda ctx: aggregations.dispute_rejection(ctx, agg_id, second.id, "maintenance ends tomorrow")
    )
    assert disputed.dispute == "maintenance ends tomorrow"
    with pytest.raises(ConflictError):
        province.run("agg_1", lambda ctx: aggregations.dispute_rejection(ctx, agg_id, first.id, "approved one"))


def test_only_the_member_ldc_reviews(province: Province) -> None:
    agg_id = enrol(province, "agg_1", "vpp", ["a2"], ENERGY)
    member_id = province.run("agg_1", lambda ctx: aggregations.get_aggregation(ctx, agg_id).members[0].id)
    with pytest.raises(PermissionDenied):
        province.run("agg_1", lambda ctx: aggregations.review_member(ctx, agg_id, member_id, ReviewDecision.APPROVED))


def test_double_enrolment_is_refused_naming_the_other_aggregation(province: Province) -> None:
    enrol(province, "agg_1", "vpp", ["a2"], ENERGY, approve_as=["ldc_a"])
    local = enrol(province, "agg_1", "local", ["a3"], {Service.DISTRIBUTION_SERVICES: None})
    energy_2 = enrol(province, "agg_1", "energy-2", ["a3"], ENERGY)

    def add_a2(aggregation_id: str) -> None:
        province.run(
            "agg_1",
            lambda ctx: aggregations.request_members(
                ctx, aggregation_id, [province.ders["a2"]], T0 + timedelta(days=3)
            ),
        )

    add_a2(local)  # a different service in an overlapping period is fine
    with pytest.raises(ConflictError) as caught:  # the same service in an overlapping period is not
        add_a2(energy_2)
    assert caught.value.code == "aggregation.double_enrolment"
    assert caught.value.details["conflicting_aggregation_name"] == "vpp"


def test_single_interface_aggregation_cannot_span_two(province: Province) -> None:
    with pytest.raises(ValidationFailed) as caught:
        enrol(province, "agg_1", "mixed", ["a2", "b2"], ENERGY)
    assert caught.value.code == "aggregation.single_tdi_violated"
    with pytest.raises(NotFound):  # agg_1 neither owns nor represents b1, so it cannot even see it
        enrol(province, "agg_1", "foreign", ["b1"], ENERGY, multi_tdi=True)


def test_multi_interface_factors_follow_member_capacity(province: Province) -> None:
    agg_id = enrol(
        province, "agg_1", "multi", ["a2", "a3", "b2"], ENERGY, multi_tdi=True, approve_as=["ldc_a", "ldc_b"]
    )
    view = province.run("agg_1", lambda ctx: aggregations.get_aggregation(ctx, agg_id))
    factors = view.distribution_factors
    assert factors == pytest.approx({province.tdis["tdi_a"]: 2 / 3, province.tdis["tdi_b"]: 1 / 3})
    assert sum(factors.values()) == 1.0
    # each LDC sees the aggregation but only its own members
    seen_b = province.run("ldc_b", lambda ctx: aggregations.get_aggregation(ctx, agg_id))
    assert [m.der_id for m in seen_b.members] == [province.ders["b2"]]
    # nor how the aggregator's capacity spreads over the other LDC's territory
    assert seen_b.distribution_factors == {}
    # the TSO models the multi-interface response with the factors, so it sees them
    seen_tso = province.run("tso", lambda ctx: aggregations.get_aggregation(ctx, agg_id))
    assert seen_tso.distribution_factors == factors


def test_total_dso_forbids_nothing_to_aggregators_but_tso_sees_no_ders(province: Province) -> None:
    enrol(province, "agg_2", "b-vpp", ["b1"], ENERGY, approve_as=["ldc_b"])
    seen = province.run("tso", lambda ctx: {d.name for d in ders.list_ders(ctx, Page())})
    assert "der-b1" not in seen


def test_ldc_sees_only_members_in_its_territory(province: Province) -> None:
    agg_id = enrol(province, "agg_1", "vpp", ["a2", "a3"], ENERGY)
    with pytest.raises(NotFound):
        province.run("ldc_b", lambda ctx: aggregations.get_aggregation(ctx, agg_id))
    listed = province.run("ldc_b", lambda ctx: aggregations.list_aggregations(ctx, Page()))
    assert listed == []


def test_tso_sees_the_dsos_virtual_resource_not_the_ders_inside(province: Province) -> None:
    agg_id = enrol(province, "ldc_a", "dso-vr", ["a1"], ENERGY, approve_as=["ldc_a"])
    view = province.run("tso", lambda ctx: aggregations.get_aggregation(ctx, agg_id))
    assert view.aggregation.approved_capacity_kw() == 60.0
    assert view.members == []
    seen = province.run("tso", lambda ctx: {d.name for d in ders.list_ders(ctx, Page())})
    assert "der-a1" not in seen


def test_minimal_dso_may_not_aggregate(province: Province) -> None:
    from gridbridge.domain.coordination import ModelName
    from gridbridge.services import tdis

    province.run(
        "ldc_a",
        lambda ctx: tdis.schedule_model_change(
            ctx, province.tdis["tdi_a"], ModelName.ALT1_MINIMAL_DSO, T0 + timedelta(days=1)
        ),
    )
    province.clock.advance(timedelta(days=2))
    with pytest.raises(ConflictError) as caught:
        enrol(province, "ldc_a", "not-allowed", ["a1"], ENERGY)
    assert caught.value.code == "aggregation.model_forbids_aggregator"


def test_aggregation_names_are_unique_per_aggregator(province: Province) -> None:
    enrol(province, "agg_1", "vpp", ["a2"], ENERGY)
    with pytest.raises(ConflictError) as caught:
        province.run("agg_1", lambda ctx: aggregations.create_aggregation(ctx, "vpp", ENERGY))
    assert (caught.value.code, caught.value.field) == ("aggregation.name_taken", "name")
    # another aggregator may use the same name
    other = province.run("agg_2", lambda ctx: aggregations.create_aggregation(ctx, "vpp", ENERGY))
    assert other.name == "vpp"
