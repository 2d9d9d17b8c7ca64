"""Cross-checks on random small provinces (seeded): interface-level LP against the per-DER LP, merit order
against the LP, windows against no windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from gridbridge.engines.clearing import (
    ClearingProblem,
    ClearingResult,
    CurveSet,
    DistributionFactors,
    aggregate_curves,
    clear_lp,
    clear_merit_order,
    clear_per_der_lp,
)
from gridbridge.engines.clearing.curves import concat_curves
from gridbridge.engines.disaggregation import split_merit_order

SEEDS = range(12)


def random_curves(rng: np.random.Generator, n: int, *, tie_prices: bool = False) -> CurveSet:
    lengths = rng.integers(1, 4, n)
    start = np.concatenate(([0], np.cumsum(lengths)))
    m = int(start[-1])
    if tie_prices:
        steps = rng.choice([0.0, 5.0, 10.0], m)
        base = rng.choice([20.0, 30.0, 40.0], n)
    else:
        steps = rng.uniform(0.5, 20.0, m)
        base = rng.uniform(10.0, 60.0, n)
    owner = np.repeat(np.arange(n), lengths)
    first = np.zeros(m, dtype=bool)
    first[start[:-1]] = True
    steps[first] = 0.0
    cum = np.cumsum(steps)
    price = base[owner] + cum - np.repeat(cum[start[:-1]], lengths)
    qty = rng.uniform(10.0, 400.0, m)
    return CurveSet(start, price, qty)


@dataclass
class Province:
    """DERs (some offering reserve), multi-interface aggregations, interface limits and requirements."""

    n_if: int
    der_if: np.ndarray
    der_energy: CurveSet
    der_reserve: CurveSet
    der_capacity: np.ndarray
    agg_energy: CurveSet
    agg_reserve: CurveSet
    agg_capacity: np.ndarray
    agg_df: DistributionFactors
    inj_min: np.ndarray
    inj_max: np.ndarray
    energy_req: float
    reserve_req: float

    @property
    def pooled(self) -> np.ndarray:
        """DERs whose energy and reserve offers fit in their capacity: merged per interface (exactly)."""
        flags: np.ndarray = self.der_energy.total_kw() + self.der_reserve.total_kw() <= self.der_capacity + 1e-9
        return flags


def random_province(seed: int) -> Province:
    rng = np.random.default_rng(seed)
    n_if = int(rng.integers(3, 7))
    n = int(rng.integers(30, 90))
    der_if = rng.integers(0, n_if, n)
    energy = random_curves(rng, n)
    total = energy.total_kw()
    with_reserve = rng.random(n) < 0.15
    r_qty = np.where(with_reserve, total * rng.uniform(0.3, 0.8, n), 0.0)
    reserve = CurveSet.from_lists(
        [[float(rng.uniform(1, 15))] if w else [] for w in with_reserve],
        [[float(q)] if w else [] for w, q in zip(with_reserve, r_qty, strict=True)],
    )
    # Some reserve DERs can be short of capacity for both offers (a capacity row binds), the others not.
    capacity = np.where(with_reserve, total * rng.uniform(0.8, 1.1, n), np.inf)
    loose = with_reserve & (rng.random(n) < 0.5)
    capacity = np.where(loose, total + r_qty, capacity)
    n_agg = 2
    agg_energy = random_curves(rng, n_agg)
    agg_total = agg_energy.total_kw()
    agg_reserve = CurveSet.from_lists(
        [[float(rng.uniform(1, 15))] for _ in range(n_agg)], [[float(t * 0.5)] for t in agg_total]
    )
    agg_capacity = agg_total * 1.1
    res, iface, fac = [], [], []
    for a in range(n_agg):
        ks = rng.choice(n_if, size=2, replace=False)
        share = float(rng.uniform(0.2, 0.8))
        res += [a, a]
        iface += [int(ks[0]), int(ks[1])]
        fac += [share, 1.0 - share]
    supply_if = np.bincount(der_if, weights=total, minlength=n_if)
    inj_max = supply_if * rng.uniform(0.3, 1.2, n_if)
    inj_min = np.where(rng.random(n_if) < 0.3, supply_if * rng.uniform(0.0, 0.2, n_if), -1e9)
    all_supply = float(total.sum() + agg_total.sum())
    return Province(
        n_if=n_if,
        der_if=der_if,
        der_energy=energy,
        der_reserve=reserve,
        der_capacity=capacity,
        agg_energy=agg_energy,
        agg_reserve=agg_reserve,
        agg_capacity=agg_capacity,
        agg_df=DistributionFactors(np.array(res), np.array(iface), np.array(fac)),
        inj_min=inj_min,
        inj_max=inj_max,
        energy_req=all_supply * float(rng.uniform(0.25, 0.5)),
        reserve_req=float(reserve.total_kw().sum() + agg_reserve.total_kw().sum()) * 0.4,
    )


def _shift(df: DistributionFactors, by: int) -> DistributionFactors:
    return DistributionFactors(df.resource + by, df.interface, df.factor)


def _join(a: DistributionFactors, b: DistributionFactors) -> DistributionFactors:
    return DistributionFactors(
        np.concatenate((a.resource, b.resource)),
        np.concatenate((a.interface, b.interface)),
        np.concatenate((a.factor, b.factor)),
    )


def per_der_problem(p: Province) -> ClearingProblem:
    """Every DER its own resource, then the aggregations."""
    n = p.der_if.size
    return ClearingProblem(
        energy=concat_curves(p.der_energy, p.agg_energy),
        reserve=concat_curves(p.der_reserve, p.agg_reserve),
        capacity_kw=np.concatenate((p.der_capacity, p.agg_capacity)),
        distribution_factors=_join(DistributionFactors.single(p.der_if), _shift(p.agg_df, n)),
        injection_min_kw=p.inj_min,
        injection_max_kw=p.inj_max,
        energy_requirement_kw=p.energy_req,
        reserve_requirement_kw=p.reserve_req,
        shortage_price_cad_per_mwh=5000.0,
    )


def interface_problem(p: Province) -> tuple[ClearingProblem, np.ndarray]:
    """One exact pool per interface (energy and reserve) of DERs that need no capacity row, then the other
    DERs one by one, then the aggregations.

    Returns the problem and, per DER, its resource index."""
    n = p.der_if.size
    pooled = p.pooled
    keep = np.flatnonzero(~pooled)
    pools = aggregate_curves(p.der_energy, np.where(pooled, p.der_if, -1), p.n_if).curves
    n_res = p.n_if + keep.size
    der_resource = np.where(pooled, p.der_if, -1)
    der_resource[keep] = p.n_if + np.arange(keep.size)
    energy = concat_curves(concat_curves(pools, p.der_energy.take(keep)), p.agg_energy)
    reserve_pools = aggregate_curves(p.der_reserve, np.where(pooled, p.der_if, -1), p.n_if).curves
    reserve = concat_curves(concat_curves(reserve_pools, p.der_reserve.take(keep)), p.agg_reserve)
    df = _join(DistributionFactors.single(np.concatenate((np.arange(p.n_if), p.der_if[keep]))), _shift(p.agg_df, n_res))
    capacity = np.concatenate((np.full(p.n_if, np.inf), p.der_capacity[keep], p.agg_capacity))
    assert n == der_resource.size
    problem = ClearingProblem(
        energy=energy,
        reserve=reserve,
        capacity_kw=capacity,
        distribution_factors=df,
        injection_min_kw=p.inj_min,
        injection_max_kw=p.inj_max,
        energy_requirement_kw=p.energy_req,
        reserve_requirement_kw=p.reserve_req,
        shortage_price_cad_per_mwh=5000.0,
    )
    return problem, der_resource


def der_dispatch(result: ClearingResult, p: Province, der_resource: np.ndarray) -> np.ndarray:
    """Per-DER energy from an interface-level result: pools split by merit order, others as cleared."""
    pooled = p.pooled
    parent = np.where(pooled, der_resource, -1)
    split = split_merit_order(np.maximum(result.p_kw, 0.0), parent, p.der_energy).member_p_kw
    return np.where(pooled, split, result.p_kw[der_resource])


@pytest.mark.parametrize("seed", SEEDS)
def test_interface_level_lp_matches_the_per_der_lp(seed: int) -> None:
    province = random_province(seed)
    direct = clear_per_der_lp(per_der_problem(province))
    problem, der_resource = interface_problem(province)
    pooled = clear_lp(problem)
    assert pooled.cost_cad_per_h == pytest.approx(direct.cost_cad_per_h, rel=1e-9, abs=1e-6)
    # Continuous random prices: the dispatch and the prices are unique, so they must agree too.
    np.testing.assert_allclose(pooled.energy_price_cad_per_mwh, direct.energy_price_cad_per_mwh, atol=1e-6)
    np.testing.assert_allclose(pooled.reserve_price_cad_per_mwh, direct.reserve_price_cad_per_mwh, atol=1e-6)
    n = province.der_if.size
    np.testing.assert_allclose(der_dispatch(pooled, province, der_resource), direct.p_kw[:n], atol=1e-5)
    np.testing.assert_allclose(pooled.interface_injection_kw, direct.interface_injection_kw, atol=1e-5)
    assert np.all(pooled.interface_injection_kw <= province.inj_max + 1e-6)
    assert np.all(pooled.interface_injection_kw >= province.inj_min - 1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_windows_on_long_curves_do_not_change_the_result(seed: int) -> None:
    province = random_province(seed)
    problem, _ = interface_problem(province)
    full = clear_lp(problem, window_min_length=10**9)
    windowed = clear_lp(problem, window_segments=1, window_min_length=2)
    assert windowed.cost_cad_per_h == pytest.approx(full.cost_cad_per_h, rel=1e-9, abs=1e-6)
    np.testing.assert_allclose(windowed.energy_segment_kw, full.energy_segment_kw, atol=1e-5)
    np.testing.assert_allclose(windowed.energy_price_cad_per_mwh, full.energy_price_cad_per_mwh, atol=1e-6)


def nested_problem(seed: int, *, tie_prices: bool) -> ClearingProblem:
    rng = np.random.default_rng(1000 + seed)
    n_if = int(rng.integers(2, 6))
    n = int(rng.integers(5, 60))
    energy = random_curves(rng, n, tie_prices=tie_prices)
    iface = rng.integers(0, n_if, n)
    supply = np.bincount(iface, weights=energy.total_kw(), minlength=n_if)
    inj_max = supply * rng.uniform(0.2, 1.1, n_if)
    inj_min = np.where(rng.random(n_if) < 0.3, np.minimum(supply * 0.2, inj_max), -1e9)
    return ClearingProblem(
        energy=energy,
        distribution_factors=DistributionFactors.single(iface),
        injection_min_kw=inj_min,
        injection_max_kw=inj_max,
        energy_requirement_kw=max(
            float(energy.total_kw().sum() * rng.uniform(0.1, 0.5)), float(np.maximum(inj_min, 0).sum()) + 1.0
        ),
        shortage_price_cad_per_mwh=3000.0,
    )


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("tie_prices", [False, True])
def test_merit_order_agrees_with_the_lp_including_ties(seed: int, tie_prices: bool) -> None:
    problem = nested_problem(seed, tie_prices=tie_prices)
    fast = clear_merit_order(problem)
    lp = clear_lp(problem)
    assert fast.cost_cad_per_h == pytest.approx(lp.cost_cad_per_h, rel=1e-12, abs=1e-9)
    # Same tie rule (price, then stable resource order), so the same dispatch, segment by segment.
    np.testing.assert_allclose(fast.energy_segment_kw, lp.energy_segment_kw, atol=1e-6)
    assert fast.energy_shortage_kw == pytest.approx(lp.energy_shortage_kw, abs=1e-6)


@pytest.mark.parametrize("seed", range(25))
def test_merit_order_prices_are_a_valid_dual_solution(seed: int) -> None:
    problem = nested_problem(seed, tie_prices=True)
    result = clear_merit_order(problem)
    if result.energy_shortage_kw > 0:
        assert result.system_energy_price_cad_per_mwh == problem.shortage_price_cad_per_mwh
    iface = problem.distribution_factors.single_interface(problem.n_resources)[problem.energy.owner()]
    pi = result.energy_price_cad_per_mwh[iface]
    price = problem.energy.price_cad_per_mwh
    x = result.energy_segment_kw
    q = problem.energy.quantity_kw
    tol = 1e-9
    # Reduced cost price - pi: >= 0 where a segment is off, <= 0 where it is full, 0 in between.
    assert np.all(price[x <= tol] >= pi[x <= tol] - tol)
    assert np.all(price[x >= q - tol] <= pi[x >= q - tol] + tol)
    inside = (x > tol) & (x < q - tol)
    np.testing.assert_allclose(price[inside], pi[inside], atol=tol)
    # Interface duals: <= 0 only where at the maximum, >= 0 only where at the minimum.
    congestion = result.congestion_cad_per_mwh
    inj = result.interface_injection_kw
    assert np.all((congestion >= -tol) | (inj >= problem.injection_max_kw - 1e-6))
    assert np.all((congestion <= tol) | (inj <= problem.injection_min_kw + 1e-6))
