"""Distribution check of a TSO dispatch and re-dispatch of the shortfall (alt 1 loop)."""

from __future__ import annotations

import numpy as np
import pytest

from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.clearing import (
    ClearingProblem,
    CurveSet,
    DistributionFactors,
    aggregate_curves,
    cap_curves,
    clear_per_der_lp,
)
from gridbridge.engines.clearing.curves import concat_curves
from gridbridge.engines.shortfall import check_dispatch, redispatch_shortfall

BIG = 1e9


def small_case() -> tuple[ClearingProblem, CurveSet, np.ndarray, np.ndarray]:
    """Interface 0: DERs d0 (5 MW at 10) and d1 (5 MW at 20), cleared as one exact pool (resource 0).
    Interface 1: resource 1, 10 MW at 30, no DER members. The TSO needs 8 MW."""
    ders = CurveSet.from_lists([[10], [20]], [[5000], [5000]])
    der_resource = np.array([0, 0])
    der_if = np.array([0, 0])
    pool = aggregate_curves(ders, der_resource, 1).curves
    problem = ClearingProblem(
        energy=concat_curves(pool, CurveSet.from_lists([[30]], [[10000]])),
        distribution_factors=DistributionFactors.single(np.array([0, 1])),
        injection_min_kw=np.full(2, -BIG),
        injection_max_kw=np.full(2, BIG),
        energy_requirement_kw=8000.0,
    )
    return problem, ders, der_resource, der_if


def test_check_dispatch_curtails_to_envelopes_and_outages() -> None:
    check = check_dispatch(np.array([5.0, 3.0, 4.0, 2.0]), np.array([2.0, np.inf, 0.0, 2.0]), np.array([0, 0, 1, 1]), 2)
    np.testing.assert_allclose(check.curtailed_kw, [3.0, 0.0, 4.0, 0.0])
    np.testing.assert_allclose(check.p_feasible_kw, [2.0, 3.0, 0.0, 2.0])
    np.testing.assert_allclose(check.shortfall_kw, [3.0, 4.0])
    assert list(check.curtailed_index) == [0, 2]
    with pytest.raises(ValidationFailed):
        check_dispatch(np.zeros(2), np.array([1.0, -1.0]), np.zeros(2, dtype=np.int64), 1)


def test_one_round_shortfall_is_made_up_by_other_resources() -> None:
    # First clearing: d0 5 MW (10), d1 3 MW (20). The DSO allows d0 only 2 MW: 3 MW short at interface 0.
    # Re-clearing with d0 capped at 2 MW: d0 2, d1 5 (its whole offer), resource 1 gives the last 1 MW.
    # Re-dispatched: d1 +2 MW at interface 0, resource 1 +1 MW at interface 1; 3 MW = the shortfall.
    problem, ders, der_resource, der_if = small_case()
    out = redispatch_shortfall(problem, ders, der_resource, der_if, np.array([2000.0, np.inf]))
    np.testing.assert_allclose(out.first_der_p_kw, [5000, 3000], atol=1e-6)
    np.testing.assert_allclose(out.der_p_kw, [2000, 5000], atol=1e-6)
    np.testing.assert_allclose(out.final.p_kw, [7000, 1000], atol=1e-6)
    np.testing.assert_allclose(out.shortfall_kw, [3000, 0], atol=1e-6)
    np.testing.assert_allclose(out.redispatched_kw, [2000, 1000], atol=1e-6)
    assert out.rounds == 1
    assert list(out.curtailed_index) == [0]
    assert out.final.system_energy_price_cad_per_mwh == pytest.approx(30.0)


def test_re_dispatch_is_checked_again_until_within_limits() -> None:
    # As above but d1 may deliver only 4 MW: the first re-dispatch puts d1 at 5 MW, which the second check
    # curtails; the second re-clearing gives d0 2, d1 4, resource 1 2 MW.
    problem, ders, der_resource, der_if = small_case()
    out = redispatch_shortfall(problem, ders, der_resource, der_if, np.array([2000.0, 4000.0]))
    assert out.rounds == 2
    np.testing.assert_allclose(out.der_p_kw, [2000, 4000], atol=1e-6)
    np.testing.assert_allclose(out.final.p_kw, [6000, 2000], atol=1e-6)
    # Lost from the first dispatch: d0's 3 MW (d1's first 3 MW was within its 4 MW).
    np.testing.assert_allclose(out.shortfall_kw, [3000, 0], atol=1e-6)
    np.testing.assert_allclose(out.redispatched_kw, [1000, 2000], atol=1e-6)
    np.testing.assert_allclose(out.der_cap_kw, [2000, 4000])


def test_the_loop_ends_where_a_per_der_clearing_with_the_limits_starts() -> None:
    rng = np.random.default_rng(5)
    n, n_if = 300, 4
    ders = CurveSet(np.arange(n + 1), rng.uniform(5, 80, n), rng.uniform(50, 500, n))
    der_if = rng.integers(0, n_if, n)
    allowed = np.where(rng.random(n) < 0.3, rng.uniform(0, 200, n), np.inf)
    inj_max = np.bincount(der_if, weights=ders.total_kw(), minlength=n_if).astype(np.float64) * 0.6
    requirement = float(ders.total_kw().sum() * 0.3)

    def problem(energy: CurveSet, resource_if: np.ndarray) -> ClearingProblem:
        return ClearingProblem(
            energy=energy,
            distribution_factors=DistributionFactors.single(resource_if),
            injection_min_kw=np.full(n_if, -BIG),
            injection_max_kw=inj_max,
            energy_requirement_kw=requirement,
            shortage_price_cad_per_mwh=5000.0,
        )

    pools = aggregate_curves(ders, der_if, n_if).curves
    out = redispatch_shortfall(problem(pools, np.arange(n_if)), ders, der_if, der_if, allowed)
    assert np.all(out.der_p_kw <= allowed + 1e-6)
    assert out.total_shortfall_kw > 0
    assert out.total_redispatched_kw >= out.total_shortfall_kw - out.final.energy_shortage_kw - 1e-6
    # The TSO's final clearing is the least-cost dispatch with the curtailed DERs capped: a per-DER LP with
    # the same caps reaches the same cost and the same dispatch.
    direct = clear_per_der_lp(problem(cap_curves(ders, out.der_cap_kw), der_if))
    assert out.final.cost_cad_per_h == pytest.approx(direct.cost_cad_per_h, rel=1e-9)
    np.testing.assert_allclose(out.der_p_kw, direct.p_kw, atol=1e-5)


def test_a_merit_order_over_more_resources_can_be_reused() -> None:
    # The loop accepts an order computed for a wider grouping (here with a DSO member in resource 2),
    # as long as its own resources come in the same ascending order.
    problem, ders, der_resource, der_if = small_case()
    wider_curves = CurveSet.from_lists([[10], [20], [5]], [[5000], [5000], [1000]])
    wider_group = np.array([0, 0, 2])
    from gridbridge.engines.clearing import merit_order

    order = merit_order(wider_group[wider_curves.owner()], wider_curves.price_cad_per_mwh)
    with_order = redispatch_shortfall(
        problem,
        wider_curves,
        np.array([0, 0, -1]),
        np.array([0, 0, 1]),
        np.array([2000.0, np.inf, np.inf]),
        order=order,
    )
    plain = redispatch_shortfall(problem, ders, der_resource, der_if, np.array([2000.0, np.inf]))
    np.testing.assert_allclose(with_order.der_p_kw[:2], plain.der_p_kw, atol=1e-6)
    assert with_order.der_p_kw[2] == 0.0


def test_a_checked_resource_over_two_interfaces_reports_its_shortfall_by_its_factors() -> None:
    """Resource 0, an aggregation 25 % at interface 0 and 75 % at interface 1, offers 8 MW at 10; resource 1 at
    interface 1 offers 10 MW at 30. The TSO needs 8 MW. The check allows the aggregation 4 MW in all: 4 MW are
    lost, 1 MW at interface 0 and 3 MW at interface 1, and resource 1 makes them good at interface 1."""
    factors = DistributionFactors(np.array([0, 0, 1]), np.array([0, 1, 1]), np.array([0.25, 0.75, 1.0]))
    problem = ClearingProblem(
        energy=CurveSet.from_lists([[10], [30]], [[8000], [10000]]),
        distribution_factors=factors,
        injection_min_kw=np.full(2, -BIG),
        injection_max_kw=np.full(2, BIG),
        energy_requirement_kw=8000.0,
    )
    checked = np.array([0])
    spread = DistributionFactors(np.array([0, 0]), np.array([0, 1]), np.array([0.25, 0.75]))
    out = redispatch_shortfall(
        problem, problem.energy.take(checked), checked, np.array([0]), np.array([4000.0]), member_factors=spread
    )
    np.testing.assert_allclose(out.final.p_kw, [4000, 4000], atol=1e-6)
    np.testing.assert_allclose(out.shortfall_kw, [1000, 3000], atol=1e-6)
    np.testing.assert_allclose(out.redispatched_kw, [0, 4000], atol=1e-6)
    # without the factors the whole loss would be booked at the one interface given
    plain = redispatch_shortfall(problem, problem.energy.take(checked), checked, np.array([0]), np.array([4000.0]))
    np.testing.assert_allclose(plain.shortfall_kw, [4000, 0], atol=1e-6)
