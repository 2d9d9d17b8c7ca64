"""DSO aggregation: member curves capped at envelopes, merged per interface, price bands."""

from __future__ import annotations

import numpy as np
import pytest

from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.offers import Side
from gridbridge.engines.clearing import CurveSet, aggregate_curves


def test_exact_merge_sums_equal_prices_and_keeps_merit_order() -> None:
    members = CurveSet.from_lists(
        [[30.0, 40.0], [10.0], [30.0], [20.0]],
        [[1.0, 2.0], [5.0], [4.0], [3.0]],
    )
    group = np.array([0, 0, 0, 1])
    agg = aggregate_curves(members, group, 3)
    c = agg.curves
    np.testing.assert_array_equal(c.start, [0, 3, 4, 4])  # group 2 has no members: empty curve
    np.testing.assert_allclose(c.price_cad_per_mwh, [10.0, 30.0, 40.0, 20.0])
    np.testing.assert_allclose(c.quantity_kw, [5.0, 5.0, 2.0, 3.0])
    # Every member segment points at the merged segment holding it.
    assert list(agg.segment_band) == [1, 2, 0, 1, 3]


def test_members_are_capped_at_their_envelope_first() -> None:
    members = CurveSet.from_lists([[10.0, 20.0], [15.0]], [[4.0, 4.0], [10.0]])
    agg = aggregate_curves(members, np.array([0, 0]), 1, cap_kw=np.array([5.0, 0.0]))
    np.testing.assert_allclose(agg.curves.price_cad_per_mwh, [10.0, 20.0])
    np.testing.assert_allclose(agg.curves.quantity_kw, [4.0, 1.0])
    assert agg.segment_band[2] == -1  # capped to nothing: not in the merged curve


def test_price_bands_respect_the_segment_limit_and_price_at_the_band_maximum() -> None:
    rng = np.random.default_rng(7)
    n = 200
    prices = np.round(rng.uniform(10, 100, n), 2)
    qty = rng.uniform(1, 5, n)
    members = CurveSet(np.arange(n + 1), prices, qty)
    agg = aggregate_curves(members, np.zeros(n, dtype=np.int64), 1, max_segments=10)
    c = agg.curves
    assert 1 <= c.n_segments <= 10
    assert np.all(np.diff(c.price_cad_per_mwh) >= 0)
    np.testing.assert_allclose(c.quantity_kw.sum(), qty.sum())
    # Band price is the highest member price in the band: no dispatched member is paid below its offer.
    band = agg.segment_band
    for b in range(c.n_segments):
        in_band = band == b
        assert c.price_cad_per_mwh[b] == prices[in_band].max()
        np.testing.assert_allclose(c.quantity_kw[b], qty[in_band].sum())
    # Bands follow merit order: every member of a band is at least as expensive as every member before it.
    for b in range(1, c.n_segments):
        assert prices[band == b].min() >= prices[band == b - 1].max()


def test_groups_with_few_prices_stay_exact_under_a_segment_limit() -> None:
    members = CurveSet.from_lists([[10.0], [20.0], [10.0]], [[1.0], [2.0], [3.0]])
    agg = aggregate_curves(members, np.array([0, 0, 0]), 1, max_segments=10)
    np.testing.assert_allclose(agg.curves.price_cad_per_mwh, [10.0, 20.0])
    np.testing.assert_allclose(agg.curves.quantity_kw, [4.0, 2.0])


def test_bids_merge_in_descending_price_order() -> None:
    members = CurveSet.from_lists([[50.0, 20.0], [40.0]], [[1.0, 1.0], [2.0]])
    agg = aggregate_curves(members, np.array([0, 0]), 1, side=Side.BID)
    np.testing.assert_allclose(agg.curves.price_cad_per_mwh, [50.0, 40.0, 20.0])


def test_bad_groups_are_rejected() -> None:
    members = CurveSet.from_lists([[10.0]], [[1.0]])
    with pytest.raises(ValidationFailed) as info:
        aggregate_curves(members, np.array([3]), 2)
    assert info.value.field == "group"


def test_one_limit_per_group_keeps_some_groups_exact() -> None:
    rng = np.random.default_rng(2)
    n = 60
    members = CurveSet(np.arange(n + 1), np.round(rng.uniform(10, 100, n), 2), rng.uniform(1, 5, n))
    group = np.repeat([0, 1], n // 2)
    agg = aggregate_curves(members, group, 2, max_segments=np.array([0, 4]))
    lengths = agg.curves.lengths()
    assert lengths[0] == np.unique(members.price_cad_per_mwh[: n // 2]).size  # exact
    assert lengths[1] <= 4
    np.testing.assert_allclose(
        agg.curves.total_kw(), [members.quantity_kw[: n // 2].sum(), members.quantity_kw[n // 2 :].sum()]
    )
    with pytest.raises(ValidationFailed):
        aggregate_curves(members, group, 2, max_segments=np.array([1, 2, 3]))
