"""Open-access report: DSO-affiliated against third-party DERs, normalised by capacity (section 4.2)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from gridbridge.domain.conflicts import OpenAccessRecord
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.conflicts import open_access_report

JULY = datetime(2026, 7, 1, tzinfo=UTC)
AUGUST = datetime(2026, 8, 1, tzinfo=UTC)


def rec(
    dso: str, der: str, period: datetime, affiliated: bool, cap: float, disp: float, curt: float
) -> OpenAccessRecord:
    return OpenAccessRecord(dso, der, period, affiliated, cap, disp, curt)


def test_report_shares_and_ratios_by_hand() -> None:
    """ldc-1, July. Affiliated: 200 kW, 80 kWh dispatched, 10 kWh curtailed. Third party: 300 kW, 20, 60.

    Capacity shares 0.4 / 0.6. Dispatch shares 0.8 / 0.2 -> ratios 2.0 / 0.333. Curtailment shares
    1/7 / 6/7 -> ratios 0.357 / 1.429: third parties bear 1.43 times their capacity's share of curtailment.
    """
    rows = open_access_report(
        [
            rec("ldc-1", "a1", JULY, True, 100.0, 50.0, 10.0),
            rec("ldc-1", "a2", JULY, True, 100.0, 30.0, 0.0),
            rec("ldc-1", "t1", JULY, False, 300.0, 20.0, 60.0),
        ]
    )
    aff, third = rows
    assert (aff.dso_affiliated, third.dso_affiliated) == (True, False)
    assert (aff.n_ders, third.n_ders) == (2, 1)
    assert (aff.capacity_share, third.capacity_share) == pytest.approx((0.4, 0.6))
    assert (aff.dispatch_share, third.dispatch_share) == pytest.approx((0.8, 0.2))
    assert (aff.curtailment_share, third.curtailment_share) == pytest.approx((1 / 7, 6 / 7))
    assert (aff.dispatched_kwh_per_kw, third.dispatched_kwh_per_kw) == pytest.approx((0.4, 20 / 300))
    assert (aff.curtailed_kwh_per_kw, third.curtailed_kwh_per_kw) == pytest.approx((0.05, 0.2))
    assert (aff.dispatch_share_ratio, third.dispatch_share_ratio) == pytest.approx((2.0, 1 / 3))
    assert (aff.curtailment_share_ratio, third.curtailment_share_ratio) == pytest.approx((1 / 7 / 0.4, 6 / 7 / 0.6))


def test_periods_and_dsos_are_separate_and_an_empty_group_has_undefined_ratios() -> None:
    rows = open_access_report(
        [
            rec("ldc-2", "t9", AUGUST, False, 50.0, 5.0, 0.0),
            rec("ldc-1", "t1", AUGUST, False, 300.0, 20.0, 60.0),
            rec("ldc-1", "t1", JULY, False, 300.0, 10.0, 0.0),
        ]
    )
    assert [(r.dso_id, r.period_start, r.dso_affiliated) for r in rows] == [
        ("ldc-1", JULY, True),
        ("ldc-1", JULY, False),
        ("ldc-1", AUGUST, True),
        ("ldc-1", AUGUST, False),
        ("ldc-2", AUGUST, True),
        ("ldc-2", AUGUST, False),
    ]
    empty = rows[0]
    assert empty.n_ders == 0
    assert math.isnan(empty.curtailed_kwh_per_kw)
    assert rows[1].curtailment_share != rows[1].curtailment_share  # no curtailment at all in July: nan
    assert rows[3].curtailment_share == 1.0


def test_a_der_twice_in_one_period_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as err:
        open_access_report([rec("ldc-1", "a1", JULY, True, 1.0, 0.0, 0.0)] * 2)
    assert err.value.code == "conflicts.duplicate_id"
    assert err.value.field == "records[1].der_id"
