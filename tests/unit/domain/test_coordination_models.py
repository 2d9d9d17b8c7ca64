"""The coordination models as data follow the white paper's Tables 6 and 7."""

from __future__ import annotations

from gridbridge.domain.coordination import COORDINATION_MODELS, ModelName, TsoDerVisibility, coordination_model
from gridbridge.domain.roles import Role, Service


def test_every_model_has_a_record() -> None:
    assert set(COORDINATION_MODELS) == set(ModelName)


def test_table6_row2_tso_visibility() -> None:
    assert coordination_model("total_tso").tso_der_visibility is TsoDerVisibility.ALL
    assert coordination_model("alt1_minimal_dso").tso_der_visibility is TsoDerVisibility.ALL
    assert coordination_model("alt2_hybrid_dso").tso_der_visibility is TsoDerVisibility.MARKET_PARTICIPATING
    assert coordination_model("total_dso").tso_der_visibility is TsoDerVisibility.NONE


def test_table6_row3_who_aggregates() -> None:
    assert not coordination_model("alt1_minimal_dso").may_aggregate(Role.DSO)
    assert coordination_model("alt2_hybrid_dso").may_aggregate(Role.DSO)
    assert all(m.may_aggregate(Role.AGGREGATOR) for m in COORDINATION_MODELS.values())


def test_table7_dispatch_responsibilities() -> None:
    alt1 = coordination_model("alt1_minimal_dso")
    alt2 = coordination_model("alt2_hybrid_dso")
    assert alt1.dispatches(Role.TSO, Service.WHOLESALE_ENERGY)
    assert not alt1.dispatches(Role.DSO, Service.DISTRIBUTION_SERVICES)
    assert alt2.dispatches(Role.TSO, Service.OPERATING_RESERVE)
    assert alt2.dispatches(Role.DSO, Service.OPERATING_RESERVE)
    assert alt2.dispatches(Role.DSO, Service.DISTRIBUTION_SERVICES)
    total_dso = coordination_model("total_dso")
    assert not total_dso.dispatches(Role.TSO, Service.WHOLESALE_ENERGY)
    assert not total_dso.direct_wholesale_participation


def test_table8_row3_only_total_dso_balances() -> None:
    assert [m.name for m in COORDINATION_MODELS.values() if m.distribution_level_balancing] == [ModelName.TOTAL_DSO]
