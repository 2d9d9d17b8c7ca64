"""Interface-level clearing: hand-checked cases, distribution factors, reserve, ties, shortage, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.clearing import (
    ClearingInfeasible,
    ClearingProblem,
    CurveSet,
    DistributionFactors,
    clear,
    clear_lp,
    clear_merit_order,
    clear_per_der_lp,
    interface_injection_bounds,
)

BIG = 1e9


def hand_case() -> ClearingProblem:
    """Two interfaces A (0) and B (1); A may take at most 6 MW of injection.

    r0 at A offers 5 MW at 20 and 5 MW at 40; r1 at B 10 MW at 30; r2 is an aggregation half at A, half at B,
    offering 10 MW at 35; r3 at B 10 MW at 60. The TSO needs 18 MW.
    """
    energy = CurveSet.from_lists([[20, 40], [30], [35], [60]], [[5000, 5000], [10000], [10000], [10000]])
    df = DistributionFactors(
        resource=np.array([0, 1, 2, 2, 3]), interface=np.array([0, 1, 0, 1, 1]), factor=np.array([1, 1, 0.5, 0.5, 1])
    )
    return ClearingProblem(
        energy=energy,
        distribution_factors=df,
        injection_min_kw=np.array([-BIG, -BIG]),
        injection_max_kw=np.array([6000.0, BIG]),
        energy_requirement_kw=18000.0,
    )


def test_hand_checked_case_with_a_congested_interface_and_a_multi_interface_aggregation() -> None:
    # By hand. r1 (30, at B, unconstrained) is cheaper than anything that competes for it: 10 MW.
    # The other 8 MW come from r0's first segment (20), r2 (35, half of it at A) and r3 (60), with
    # A: x0 + 0.5 x2 <= 6 and x0 + x2 + x3 = 8. Vertices: (x0, x2, x3) = (4, 4, 0) costs 80 + 140 = 220;
    # (5, 2, 1) costs 230; (0, 8, 0) costs 280. So r0 = 4, r1 = 10, r2 = 4, r3 = 0; cost 80+300+140 = 520.
    # Duals: x0 and x2 are strictly inside their bounds, so 20 = lambda + y_A and 35 = lambda + 0.5 y_A,
    # giving y_A = -30 and lambda = 50. Prices: B = 50, A = 50 - 30 = 20. r2 settles at 0.5*20 + 0.5*50 = 35.
    # Check: one more MW at B means x2 + 2 and x0 - 1 (A stays full): 70 - 20 = 50.
    result = clear_lp(hand_case())
    np.testing.assert_allclose(result.p_kw, [4000, 10000, 4000, 0], atol=1e-6)
    np.testing.assert_allclose(result.energy_price_cad_per_mwh, [20.0, 50.0], atol=1e-9)
    np.testing.assert_allclose(result.congestion_cad_per_mwh, [-30.0, 0.0], atol=1e-9)
    assert result.system_energy_price_cad_per_mwh == pytest.approx(50.0)
    np.testing.assert_allclose(result.resource_energy_price_cad_per_mwh, [20, 50, 35, 50], atol=1e-9)
    assert result.cost_cad_per_h == pytest.approx(520.0)
    np.testing.assert_allclose(result.interface_injection_kw, [6000, 12000], atol=1e-6)
    # The independent per-DER formulation agrees.
    baseline = clear_per_der_lp(hand_case())
    assert baseline.cost_cad_per_h == pytest.approx(520.0)
    np.testing.assert_allclose(baseline.energy_price_cad_per_mwh, [20.0, 50.0], atol=1e-9)


def test_hand_checked_energy_and_reserve_co_optimisation() -> None:
    # One interface. A: energy 10 MW at 20, reserve 10 MW at 5, capacity 10 MW. B: energy 10 MW at 50.
    # Need 8 MW energy and 4 MW reserve. Only A offers reserve, so r_A = 4 and e_A <= 6; B gives 2 MW.
    # Cost 6*20 + 2*50 + 4*5 = 240. lambda = 50 (B is marginal). One more MW of reserve moves 1 MW of
    # A's energy to B: 5 + 50 - 20 = 35 = reserve price.
    problem = ClearingProblem(
        energy=CurveSet.from_lists([[20], [50]], [[10000], [10000]]),
        reserve=CurveSet.from_lists([[5], []], [[10000], []]),
        capacity_kw=np.array([10000.0, 10000.0]),
        distribution_factors=DistributionFactors.single(np.array([0, 0])),
        injection_min_kw=np.array([-BIG]),
        injection_max_kw=np.array([BIG]),
        energy_requirement_kw=8000.0,
        reserve_requirement_kw=4000.0,
    )
    result = clear_lp(problem)
    np.testing.assert_allclose(result.p_kw, [6000, 2000], atol=1e-6)
    np.testing.assert_allclose(result.reserve_kw, [4000, 0], atol=1e-6)
    assert result.cost_cad_per_h == pytest.approx(240.0)
    assert result.system_energy_price_cad_per_mwh == pytest.approx(50.0)
    assert result.reserve_price_cad_per_mwh[0] == pytest.approx(35.0)
    assert clear_per_der_lp(problem).cost_cad_per_h == pytest.approx(240.0)


def test_reserve_must_be_deliverable_through_the_interface() -> None:
    # A (interface 0, max injection 10 MW) holds the only cheap energy and all reserve offers.
    problem = ClearingProblem(
        energy=CurveSet.from_lists([[20], [80]], [[10000], [10000]]),
        reserve=CurveSet.from_lists([[1], []], [[10000], []]),
        capacity_kw=np.array([20000.0, 10000.0]),
        distribution_factors=DistributionFactors.single(np.array([0, 1])),
        injection_min_kw=np.array([-BIG, -BIG]),
        injection_max_kw=np.array([10000.0, BIG]),
        energy_requirement_kw=10000.0,
        reserve_requirement_kw=3000.0,
    )
    result = clear_lp(problem)
    # Energy at A plus reserve at A stays within 10 MW: 7 MW energy, 3 MW reserve; 3 MW energy from B at 80.
    np.testing.assert_allclose(result.p_kw, [7000, 3000], atol=1e-6)
    np.testing.assert_allclose(result.reserve_kw, [3000, 0], atol=1e-6)
    assert result.p_kw[0] + result.reserve_kw[0] <= 10000 + 1e-6
    # One more MW of system reserve: A's reserve + 1, A's energy - 1, B's energy + 1: 1 - 20 + 80 = 61.
    # Locally, A is congested by deliverability (dual -60): energy at A is worth 80 - 60 = 20 and reserve
    # at A 61 - 60 = 1 (its own offer), so A is indifferent between the two, as it should be at the margin.
    assert result.system_reserve_price_cad_per_mwh == pytest.approx(61.0)
    np.testing.assert_allclose(result.reserve_price_cad_per_mwh, [1.0, 61.0], atol=1e-9)
    np.testing.assert_allclose(result.energy_price_cad_per_mwh, [20.0, 80.0], atol=1e-9)


def test_equal_prices_are_filled_in_stable_resource_order() -> None:
    # Three resources at 30 CAD/MWh on three interfaces, 4 MW each; the TSO needs 6 MW.
    problem = ClearingProblem(
        energy=CurveSet.from_lists([[30], [30], [30]], [[4000], [4000], [4000]]),
        distribution_factors=DistributionFactors.single(np.array([2, 0, 1])),
        injection_min_kw=np.full(3, -BIG),
        injection_max_kw=np.full(3, BIG),
        energy_requirement_kw=6000.0,
    )
    for result in (clear_lp(problem), clear_merit_order(problem), clear(problem)):
        np.testing.assert_allclose(result.p_kw, [4000, 2000, 0], atol=1e-6)
        assert result.system_energy_price_cad_per_mwh == pytest.approx(30.0)


def test_ties_respect_limits_before_order() -> None:
    # Resource 0 comes first but its interface only takes 1 MW: the tie goes on to resource 1.
    problem = ClearingProblem(
        energy=CurveSet.from_lists([[30], [30], [10]], [[4000], [4000], [1000]]),
        distribution_factors=DistributionFactors.single(np.array([0, 1, 0])),
        injection_min_kw=np.full(2, -BIG),
        injection_max_kw=np.array([2000.0, BIG]),
        energy_requirement_kw=5000.0,
    )
    for result in (clear_lp(problem), clear_merit_order(problem)):
        np.testing.assert_allclose(result.p_kw, [1000, 3000, 1000], atol=1e-6)


def test_shortage_price_caps_the_price_instead_of_failing() -> None:
    energy = CurveSet.from_lists([[40]], [[1000]])
    common = {
        "energy": energy,
        "distribution_factors": DistributionFactors.single(np.array([0])),
        "injection_min_kw": np.array([-BIG]),
        "injection_max_kw": np.array([BIG]),
        "energy_requirement_kw": 1500.0,
    }
    with pytest.raises(ClearingInfeasible) as info:
        clear_lp(ClearingProblem(**common))  # type: ignore[arg-type]
    assert info.value.code == "clearing.infeasible"
    with pytest.raises(ClearingInfeasible):
        clear_merit_order(ClearingProblem(**common))  # type: ignore[arg-type]
    problem = ClearingProblem(**common, shortage_price_cad_per_mwh=2000.0)  # type: ignore[arg-type]
    for result in (clear_lp(problem), clear_merit_order(problem)):
        assert result.energy_shortage_kw == pytest.approx(500.0)
        assert result.system_energy_price_cad_per_mwh == pytest.approx(2000.0)
        assert result.cost_cad_per_h == pytest.approx(40.0 + 1000.0)


def test_bids_consume_when_worth_it() -> None:
    # Offers: 10 MW at 20, 10 MW at 60. A bid buys up to 5 MW at 50. Requirement (inelastic) 8 MW.
    # The bid's 5 MW at 50 is worth more than the 20 CAD offer: offers give 13 MW, the bid takes 5 MW.
    # lambda = 50 would leave the bid indifferent; but cost 20 < 50 < 60 so offer 1 (20) is full (10 MW)
    # and the bid is marginal: it takes 10 - 8 = 2 MW, lambda = 50.
    problem = ClearingProblem(
        energy=CurveSet.from_lists([[20], [60], [50]], [[10000], [10000], [5000]]),
        is_bid=np.array([False, False, True]),
        distribution_factors=DistributionFactors.single(np.array([0, 0, 0])),
        injection_min_kw=np.array([-BIG]),
        injection_max_kw=np.array([BIG]),
        energy_requirement_kw=8000.0,
    )
    for result in (clear_lp(problem), clear_per_der_lp(problem)):
        np.testing.assert_allclose(result.p_kw, [10000, 0, -2000], atol=1e-6)
        assert result.system_energy_price_cad_per_mwh == pytest.approx(50.0)
        assert result.cost_cad_per_h == pytest.approx(200.0 - 100.0)
    with pytest.raises(ValidationFailed) as info:
        clear_merit_order(problem)
    assert info.value.code == "clearing.not_nested"


def test_interface_bounds_from_limits_and_a_positive_minimum() -> None:
    lo, hi = interface_injection_bounds(
        np.array([5000.0, -1000.0]), np.array([3000.0, 3000.0]), np.array([2000.0, 500.0])
    )
    np.testing.assert_allclose(lo, [2000.0, -4000.0])
    np.testing.assert_allclose(hi, [7000.0, -500.0])
    # Interface 0 imports 5 MW against a 3 MW import limit: at least 2 MW must be injected there, from its
    # 50 CAD offer. Interface 1 exports 1 MW against a 0.5 MW export limit: its injection must be at most
    # -0.5 MW, so the bid there (worth 5 CAD) must take at least 0.5 MW. The balance (1.5 MW) then holds
    # with 2 MW - 0.5 MW. Taking more of the bid would need the 10 CAD offer at interface 1 to cover it,
    # costing 10 for a value of 5: not worth it. Cost: 50 * 2 - 5 * 0.5 = 97.5 CAD/h.
    problem = ClearingProblem(
        energy=CurveSet.from_lists([[50], [10], [5]], [[5000], [5000], [1000]]),
        is_bid=np.array([False, False, True]),
        distribution_factors=DistributionFactors.single(np.array([0, 1, 1])),
        injection_min_kw=lo,
        injection_max_kw=hi,
        energy_requirement_kw=1500.0,
    )
    result = clear_lp(problem)
    assert result.interface_injection_kw[0] >= 2000 - 1e-6
    assert result.interface_injection_kw[1] <= -500 + 1e-6
    np.testing.assert_allclose(result.p_kw, [2000, 0, -500], atol=1e-6)
    assert result.cost_cad_per_h == pytest.approx(97.5)


def test_forced_minimum_in_the_merit_order_path() -> None:
    # Interface 0 must inject at least 3 MW; its offers are dearer than interface 1's.
    problem = ClearingProblem(
        energy=CurveSet.from_lists([[50, 70], [10]], [[2000, 2000], [10000]]),
        distribution_factors=DistributionFactors.single(np.array([0, 1])),
        injection_min_kw=np.array([3000.0, -BIG]),
        injection_max_kw=np.array([BIG, BIG]),
        energy_requirement_kw=5000.0,
    )
    fast = clear_merit_order(problem)
    lp = clear_lp(problem)
    np.testing.assert_allclose(fast.p_kw, [3000, 2000], atol=1e-6)
    np.testing.assert_allclose(lp.p_kw, [3000, 2000], atol=1e-6)
    assert fast.cost_cad_per_h == pytest.approx(lp.cost_cad_per_h)
    # Interface 0 is held at its minimum by a 70 CAD segment: its price is 70, the system's 10.
    assert fast.energy_price_cad_per_mwh[0] == pytest.approx(70.0)
    assert lp.energy_price_cad_per_mwh[0] == pytest.approx(70.0)
    assert fast.system_energy_price_cad_per_mwh == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"injection_min_kw": np.array([1.0]), "injection_max_kw": np.array([0.0])}, "injection_min_kw"),
        ({"reserve_requirement_kw": -1.0}, "reserve_requirement_kw"),
        ({"capacity_kw": np.array([-1.0])}, "capacity_kw"),
        (
            {"distribution_factors": DistributionFactors(np.array([0]), np.array([0]), np.array([0.7]))},
            "distribution_factors.factor",
        ),
        (
            {"distribution_factors": DistributionFactors(np.array([0]), np.array([4]), np.array([1.0]))},
            "distribution_factors.interface",
        ),
    ],
)
def test_bad_problems_are_rejected_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "energy": CurveSet.from_lists([[10]], [[1.0]]),
        "distribution_factors": DistributionFactors.single(np.array([0])),
        "injection_min_kw": np.array([-BIG]),
        "injection_max_kw": np.array([BIG]),
        "energy_requirement_kw": 1.0,
    }
    base.update(kwargs)
    with pytest.raises(ValidationFailed) as info:
        ClearingProblem(**base)  # type: ignore[arg-type]
    assert info.value.field == field
