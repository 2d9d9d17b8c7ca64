"""Disaggregation of parent instructions to DERs: merit order within envelopes, pro rata, traceability."""

from __future__ import annotations

import numpy as np
import pytest

from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.clearing import CurveSet, cap_curves
from gridbridge.engines.disaggregation import split_merit_order, split_pro_rata


def test_merit_order_fills_cheapest_first_within_envelopes() -> None:
    # Parent 0 (instruction 9 kW): members 0 (10 CAD, 5 kW, envelope 3), 1 (20 CAD, 10 kW), 3 (5 CAD, 4 kW).
    # Parent 1 (instruction 2 kW): member 2 (30 CAD, 6 kW). Member 4 belongs to no parent.
    # By hand, parent 0: member 3 gives 4 (5 CAD), member 0 gives 3 (its envelope), member 1 the last 2.
    curves = CurveSet.from_lists([[10], [20], [30], [5], [1]], [[5], [10], [6], [4], [100]])
    parent = np.array([0, 0, 1, 0, -1])
    result = split_merit_order(
        np.array([9.0, 2.0]), parent, curves, available_kw=np.array([3.0, np.inf, np.inf, np.inf, np.inf])
    )
    np.testing.assert_allclose(result.member_p_kw, [3, 2, 2, 4, 0])
    np.testing.assert_allclose(result.delivered_kw, [9, 2])
    np.testing.assert_allclose(result.shortfall_kw, [0, 0])
    members, parents, p = result.instructions()
    assert list(members) == [0, 1, 2, 3]
    assert list(parents) == [0, 0, 1, 0]
    np.testing.assert_allclose(p, [3, 2, 2, 4])


def test_multi_segment_members_and_ties_follow_member_order() -> None:
    # Member 0: 2 kW at 10, 2 kW at 30. Member 1: 2 kW at 30. Member 2: 2 kW at 30. Instruction 5 kW:
    # member 0's 10 CAD segment (2), then the 30 CAD tie in member order: member 0 (2), member 1 (1).
    curves = CurveSet.from_lists([[10, 30], [30], [30]], [[2, 2], [2], [2]])
    result = split_merit_order(np.array([5.0]), np.array([0, 0, 0]), curves)
    np.testing.assert_allclose(result.member_p_kw, [4, 1, 0])


def test_an_instruction_beyond_the_members_reports_a_shortfall_instead() -> None:
    curves = CurveSet.from_lists([[10], [20]], [[5], [5]])
    envelope = np.array([2.0, 3.0])
    result = split_merit_order(np.array([8.0]), np.array([0, 0]), curves, available_kw=envelope)
    np.testing.assert_allclose(result.member_p_kw, [2, 3])
    np.testing.assert_allclose(result.shortfall_kw, [3])
    pro = split_pro_rata(np.array([8.0]), np.array([0, 0]), envelope)
    np.testing.assert_allclose(pro.member_p_kw, [2, 3])
    np.testing.assert_allclose(pro.shortfall_kw, [3])


def test_pro_rata_shares_by_available_capacity() -> None:
    # A TSO operating instruction: curtail 6 kW under a parent whose members have 2, 4 and 6 kW available.
    result = split_pro_rata(np.array([6.0, 0.0]), np.array([0, 0, 0, 1]), np.array([2.0, 4.0, 6.0, 5.0]))
    np.testing.assert_allclose(result.member_p_kw, [1, 2, 3, 0])
    np.testing.assert_allclose(result.delivered_kw, [6, 0])
    assert list(result.parent_index) == [0, 0, 0, 1]


def test_random_splits_never_exceed_envelopes_and_add_up() -> None:
    rng = np.random.default_rng(3)
    n, n_parents = 5000, 40
    lengths = rng.integers(1, 4, n)
    start = np.concatenate(([0], np.cumsum(lengths)))
    m = int(start[-1])
    price = np.round(rng.uniform(0, 100, m), 0)  # many ties
    owner = np.repeat(np.arange(n), lengths)
    price = np.sort(price + owner * 1000.0) - owner * 1000.0  # non-decreasing within each member
    curves = CurveSet(start, price, rng.uniform(0.5, 10, m))
    parent = rng.integers(-1, n_parents, n)
    envelope = rng.uniform(0, 12, n)
    avail = np.minimum(curves.total_kw(), envelope)
    capacity = np.bincount(parent[parent >= 0], weights=avail[parent >= 0], minlength=n_parents)
    target = capacity * rng.uniform(0, 1.3, n_parents)
    for result in (
        split_merit_order(target, parent, curves, available_kw=envelope),
        split_pro_rata(target, parent, avail),
    ):
        assert np.all(result.member_p_kw <= avail + 1e-9)
        assert np.all(result.member_p_kw[parent < 0] == 0)
        np.testing.assert_allclose(result.delivered_kw + result.shortfall_kw, target, atol=1e-6)
        np.testing.assert_allclose(result.delivered_kw, np.minimum(target, capacity), atol=1e-6)
    # Merit order: within a parent, every segment used is no dearer than any segment with room left.
    mo = split_merit_order(target, parent, curves, available_kw=envelope)
    capped = cap_curves(curves, envelope)
    before = capped.cum_before_kw()
    seg_owner = capped.owner()
    used = (before < mo.member_p_kw[seg_owner] - 1e-9) & (capped.quantity_kw > 0)
    room = (before + capped.quantity_kw > mo.member_p_kw[seg_owner] + 1e-9) & (capped.quantity_kw > 0)
    seg_parent = parent[seg_owner]
    for k in range(n_parents):
        mine = seg_parent == k
        if used[mine].any() and room[mine].any():
            assert price[mine & used].max() <= price[mine & room].min()


def test_bad_input_names_the_field() -> None:
    curves = CurveSet.from_lists([[10]], [[5]])
    with pytest.raises(ValidationFailed) as info:
        split_merit_order(np.array([-1.0]), np.array([0]), curves)
    assert info.value.field == "parent_p_kw"
    with pytest.raises(ValidationFailed) as info:
        split_merit_order(np.array([1.0]), np.array([2]), curves)
    assert info.value.field == "member_parent"
    with pytest.raises(ValidationFailed) as info:
        split_pro_rata(np.array([1.0]), np.array([0]), np.array([np.inf]))
    assert info.value.field == "available_kw"


def test_a_million_ders_split_exactly() -> None:
    """The vectorised paths at the benchmark's scale (timings: ``gridbridge bench cycle``, disaggregation stage)."""
    rng = np.random.default_rng(11)
    n, n_parents = 1_000_000, 500
    parent = rng.integers(0, n_parents, n)
    curves = CurveSet(np.arange(n + 1), np.round(rng.uniform(0, 200, n), 2), rng.uniform(1, 10, n))
    envelope = rng.uniform(0, 10, n)
    target = np.full(n_parents, 5000.0)
    result = split_merit_order(target, parent, curves, available_kw=envelope)
    pro = split_pro_rata(target, parent, envelope)
    np.testing.assert_allclose(result.delivered_kw, target, rtol=1e-9)
    np.testing.assert_allclose(np.bincount(parent, weights=result.member_p_kw, minlength=n_parents), target, rtol=1e-9)
    np.testing.assert_allclose(np.bincount(parent, weights=pro.member_p_kw, minlength=n_parents), target, rtol=1e-9)
    assert np.all(result.member_p_kw <= envelope + 1e-9)
    assert np.all(pro.member_p_kw <= envelope + 1e-9)
