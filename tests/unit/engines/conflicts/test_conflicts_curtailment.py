"""Transparent curtailment: the white paper's 100 kW reduction (section 4.3) under each published rule.

Four DERs export 300 kW behind one distribution constraint:

    DER  group           party    export  capacity  offer CAD/MWh  connected
    A    dso_aggregated  ldc-agg    60      100          50         2024-03-01
    B    dso_aggregated  ldc-agg    40       50         120         2020-05-01
    C    direct          agg-x     150      200          80         2022-01-01
    D    direct          owner-d    50      150         120         2018-07-01
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridbridge.domain.conflicts import (
    CurtailmentCandidate,
    CurtailmentProcedure,
    CurtailmentRule,
    ParticipationGroup,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.conflicts import allocate_curtailment, allocate_curtailment_w

AGG, DIRECT = ParticipationGroup.DSO_AGGREGATED, ParticipationGroup.DIRECT


def candidates(d_export_kw: float = 50.0) -> list[CurtailmentCandidate]:
    def c(
        der: str, party: str, group: ParticipationGroup, export: float, cap: float, price: str, y: int, m: int
    ) -> CurtailmentCandidate:
        return CurtailmentCandidate(der, party, group, export, cap, Decimal(price), datetime(y, m, 1, tzinfo=UTC))

    return [
        c("A", "ldc-agg", AGG, 60.0, 100.0, "50", 2024, 3),
        c("B", "ldc-agg", AGG, 40.0, 50.0, "120", 2020, 5),
        c("C", "agg-x", DIRECT, 150.0, 200.0, "80", 2022, 1),
        c("D", "owner-d", DIRECT, d_export_kw, 150.0, "120", 2018, 7),
    ]


def shares(
    rule: CurtailmentRule, params: dict[str, str] | None = None, required_kw: float = 100.0, d_export_kw: float = 50.0
) -> dict[str, float]:
    alloc = allocate_curtailment(
        "feeder-7", required_kw, candidates(d_export_kw), CurtailmentProcedure(rule, params or {})
    )
    return {s.der_id: s.share_kw for s in alloc.shares}


def test_pro_rata_by_export() -> None:
    """100 x export / 300: A 20, B 13.333, C 50, D 16.667 (the odd watt goes to the larger remainder, D)."""
    alloc = allocate_curtailment("feeder-7", 100.0, candidates(), CurtailmentProcedure(CurtailmentRule.PRO_RATA_EXPORT))
    assert {s.der_id: s.share_kw for s in alloc.shares} == {"A": 20.0, "B": 13.333, "C": 50.0, "D": 16.667}
    assert alloc.by_group_kw == {AGG: 33.333, DIRECT: 66.667}
    assert alloc.met_kw == 100.0
    assert alloc.unmet_kw == 0.0
    assert all(s.rule == "pro_rata_export" for s in alloc.shares)
    parties = {p.party_id: p.share_kw for p in alloc.parties}
    assert parties == {"ldc-agg": 33.333, "agg-x": 50.0, "owner-d": 16.667}
    a = next(s for s in alloc.shares if s.der_id == "A")
    assert "pro_rata_export" in a.reason
    assert "60 kW of 300 kW" in a.reason


def test_pro_rata_by_capacity() -> None:
    """100 x capacity / 500: A 20, B 10, C 40, D 30; all within current export."""
    assert shares(CurtailmentRule.PRO_RATA_CAPACITY) == {"A": 20.0, "B": 10.0, "C": 40.0, "D": 30.0}


def test_pro_rata_by_capacity_water_fills_around_a_der_that_exports_little() -> None:
    """D exports only 20 kW (its capacity share would be 30): D gives 20, the other 80 kW go by capacity
    over A, B, C (350 kW): 22.857, 11.429 (odd watt), 45.714."""
    assert shares(CurtailmentRule.PRO_RATA_CAPACITY, d_export_kw=20.0) == {
        "A": 22.857,
        "B": 11.429,
        "C": 45.714,
        "D": 20.0,
    }


def test_offer_price_highest_first() -> None:
    """Tier 120 (B 40 + D 50 = 90 kW) entirely, then 10 kW from tier 80 (C)."""
    alloc = allocate_curtailment("feeder-7", 100.0, candidates(), CurtailmentProcedure(CurtailmentRule.OFFER_PRICE))
    assert {s.der_id: s.share_kw for s in alloc.shares} == {"A": 0.0, "B": 40.0, "C": 10.0, "D": 50.0}
    assert alloc.by_group_kw == {AGG: 40.0, DIRECT: 60.0}
    assert alloc.shares[1].rule == "offer_price (order=highest_first)"


def test_offer_price_lowest_first() -> None:
    assert shares(CurtailmentRule.OFFER_PRICE, {"order": "lowest_first"}) == {"A": 60.0, "B": 0.0, "C": 40.0, "D": 0.0}


def test_connection_order_last_connected_first_and_the_reverse() -> None:
    assert shares(CurtailmentRule.CONNECTION_ORDER) == {"A": 60.0, "B": 0.0, "C": 40.0, "D": 0.0}
    assert shares(CurtailmentRule.CONNECTION_ORDER, {"order": "first_connected_first"}) == {
        "A": 0.0,
        "B": 40.0,
        "C": 10.0,
        "D": 50.0,
    }


def test_requirement_beyond_all_exports_reports_the_unmet_part() -> None:
    alloc = allocate_curtailment("feeder-7", 400.0, candidates(), CurtailmentProcedure(CurtailmentRule.PRO_RATA_EXPORT))
    assert alloc.met_kw == 300.0
    assert alloc.unmet_kw == 100.0
    assert {s.der_id: s.share_kw for s in alloc.shares} == {"A": 60.0, "B": 40.0, "C": 150.0, "D": 50.0}


def test_equal_split_of_an_indivisible_watt_goes_to_the_earlier_candidate() -> None:
    w = allocate_curtailment_w(10_000, np.array([10_000, 10_000, 10_000]), CurtailmentRule.PRO_RATA_EXPORT)
    assert w.tolist() == [3334, 3333, 3333]


def test_rule_without_the_data_it_needs_is_a_clear_error() -> None:
    bare = [CurtailmentCandidate("A", "p", AGG, 10.0, 10.0)]
    with pytest.raises(ValidationFailed) as err:
        allocate_curtailment("x", 5.0, bare, CurtailmentProcedure(CurtailmentRule.OFFER_PRICE))
    assert err.value.field == "candidates[0].offer_price_cad_per_mwh"
    with pytest.raises(ValidationFailed) as err:
        allocate_curtailment("x", -5.0, bare, CurtailmentProcedure(CurtailmentRule.PRO_RATA_EXPORT))
    assert err.value.field == "required_kw"


def test_unknown_curtailment_parameter_is_rejected_before_anything_is_split() -> None:
    with pytest.raises(ValidationFailed) as err:
        CurtailmentProcedure(CurtailmentRule.PRO_RATA_CAPACITY, {"cap_basis": "nameplate"})
    assert err.value.code == "conflicts.curtailment_unknown_parameter"


@settings(max_examples=60, deadline=None)
@given(
    exports=st.lists(st.integers(0, 500_000), min_size=1, max_size=12),
    capacities=st.lists(st.integers(0, 800_000), min_size=12, max_size=12),
    keys=st.lists(st.integers(0, 3), min_size=12, max_size=12),
    required=st.integers(0, 3_000_000),
    rule=st.sampled_from(list(CurtailmentRule)),
)
def test_shares_sum_exactly_and_never_exceed_export(
    exports: list[int], capacities: list[int], keys: list[int], required: int, rule: CurtailmentRule
) -> None:
    n = len(exports)
    curtailable = np.array(exports, dtype=np.int64)
    w = allocate_curtailment_w(
        required,
        curtailable,
        rule,
        capacity_w=np.array(capacities[:n], dtype=np.int64),
        tier_key=np.array(keys[:n], dtype=np.int64),
    )
    assert int(w.sum()) == min(required, int(curtailable.sum()))
    assert (w >= 0).all()
    assert (w <= curtailable).all()
    if rule in (CurtailmentRule.OFFER_PRICE, CurtailmentRule.CONNECTION_ORDER):
        # a lower tier is touched only when every higher tier is fully curtailed
        tiers = np.array(keys[:n])
        for k in set(tiers[w > 0].tolist()):
            assert (w[tiers > k] == curtailable[tiers > k]).all()
