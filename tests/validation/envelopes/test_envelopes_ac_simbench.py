"""AC validation of the envelopes on three SimBench grids of different types (LV, MV, MV+LV).

Every envelope set is re-checked here with pandapower's own ``runpp`` (not the batched solver the service
uses): every connection point at its limit at once, everything else at forecast, for every interval. The
limits must hold within the issue's tolerance (0.002 pu, 0.5 % loading), and must not be far below the
naive answer (bisection with a full AC power flow per probe).
"""

from __future__ import annotations

import numpy as np
import pytest
from envelope_grids import CLOCK, LV, MIDDAY, MV, MVLV, forecast, network

from gridbridge.adapters.powerflow.naive import naive_equal_limit_kw, naive_point_limit_kw
from gridbridge.domain.envelopes import AllocationPolicy, Direction, NetworkLimits
from gridbridge.services.envelopes import (
    VERIFIED,
    EnvelopeRequest,
    EnvelopeRun,
    compute_envelopes,
    compute_hosting_capacity,
)

TOL_V = 0.002
TOL_LOADING = 0.5


def _request(intervals: int = 3, policy: AllocationPolicy = AllocationPolicy.EQUAL) -> EnvelopeRequest:
    return EnvelopeRequest(start=MIDDAY, intervals=intervals, interval_minutes=15, policy=policy)


def _check_with_runpp(code: str, run: EnvelopeRun, request: EnvelopeRequest) -> None:
    """Every point at its limit, per interval and direction, through pandapower.runpp."""
    ref = network(code, "runpp")
    fc = forecast(code).bus_forecast(request.interval_starts, request.interval_minutes)
    limits = request.limits
    for res, sign in ((run.export, 1.0), (run.import_, -1.0)):
        p = fc.p_inj_mw.copy()
        q = fc.q_inj_mvar.copy()
        p[:, run.point_buses] = sign * res.p_max_kw / 1000.0
        q[:, run.point_buses] = 0.0
        ac = ref.run_ac(p, q)
        assert ac.backend == "runpp"
        assert ac.converged.all()
        vm = ac.vm_pu[np.isfinite(ac.vm_pu)]
        assert vm.max() <= limits.v_max_pu + TOL_V
        assert vm.min() >= limits.v_min_pu - TOL_V
        assert np.nanmax(ac.loading_pct) <= limits.max_loading_pct + TOL_LOADING


@pytest.mark.parametrize("code", [LV, MV, MVLV])
def test_equal_envelopes_hold_under_pandapower_runpp(code: str) -> None:
    request = _request()
    run = compute_envelopes(request, network(code), forecast(code), clock=CLOCK)
    assert set(run.export.status) == {VERIFIED}
    assert set(run.import_.status) == {VERIFIED}
    assert (run.export.p_max_kw > 0).all()
    assert (run.import_.p_max_kw > 0).all()
    _check_with_runpp(code, run, request)


@pytest.mark.parametrize("policy", [AllocationPolicy.PROPORTIONAL, AllocationPolicy.MAX_TOTAL])
def test_other_policies_hold_under_pandapower_runpp(policy: AllocationPolicy) -> None:
    request = _request(intervals=2, policy=policy)
    run = compute_envelopes(request, network(MV), forecast(MV), clock=CLOCK)
    assert set(run.export.status) == {VERIFIED}
    assert set(run.import_.status) == {VERIFIED}
    _check_with_runpp(MV, run, request)
    if policy is AllocationPolicy.MAX_TOTAL:
        equal = compute_envelopes(_request(intervals=2), network(MV), forecast(MV), clock=CLOCK)
        # the LP's total is at least the equal policy's (small slack for the AC corrections)
        assert (run.export.p_max_kw.sum(axis=1) >= 0.99 * equal.export.p_max_kw.sum(axis=1)).all()


def test_equal_limits_close_to_the_naive_bisection() -> None:
    request = _request(intervals=1)
    run = compute_envelopes(request, network(MV), forecast(MV), clock=CLOCK)
    fc = forecast(MV).bus_forecast(request.interval_starts, 15)
    for direction, res in ((Direction.EXPORT, run.export), (Direction.IMPORT, run.import_)):
        naive = naive_equal_limit_kw(
            network(MV, "runpp"), fc.p_inj_mw[0], fc.q_inj_mvar[0], run.point_buses, direction, request.limits
        )
        ours = float(res.p_max_kw[0, 0])
        assert ours >= 0.97 * naive.p_max_kw, (direction, ours, naive.p_max_kw)
        assert ours <= 1.01 * naive.p_max_kw, (direction, ours, naive.p_max_kw)


def test_hosting_capacity_close_to_the_naive_bisection_on_sampled_points() -> None:
    request = _request(intervals=1)
    hc = compute_hosting_capacity(request, network(MV), forecast(MV), clock=CLOCK)
    fc = forecast(MV).bus_forecast(request.interval_starts, 15)
    buses = network(MV).connection_point_buses
    rng = np.random.default_rng(11)
    for j in rng.choice(len(buses), size=3, replace=False):
        for direction, values in ((Direction.EXPORT, hc.p_export_max_kw), (Direction.IMPORT, hc.p_import_max_kw)):
            naive = naive_point_limit_kw(
                network(MV, "runpp"), fc.p_inj_mw[0], fc.q_inj_mvar[0], int(buses[j]), direction, request.limits
            )
            ours = float(values[0, j])
            assert ours >= 0.95 * naive.p_max_kw, (direction, j, ours, naive.p_max_kw)
            assert ours <= 1.02 * naive.p_max_kw, (direction, j, ours, naive.p_max_kw)
    assert set(np.unique(hc.status_export)) == {VERIFIED}


def test_batched_ac_matches_pandapower_runpp() -> None:
    code = MVLV
    fc = forecast(code).bus_forecast(_request(intervals=3).interval_starts, 15)
    a = network(code).run_ac(fc.p_inj_mw, fc.q_inj_mvar)
    b = network(code, "runpp").run_ac(fc.p_inj_mw, fc.q_inj_mvar)
    assert a.converged.all()
    assert b.converged.all()
    np.testing.assert_allclose(a.vm_pu, b.vm_pu, atol=1e-7)
    live = np.isfinite(a.loading_pct)
    np.testing.assert_allclose(a.loading_pct[live], b.loading_pct[live], atol=1e-5)
    np.testing.assert_allclose(a.p_tdi_mw, b.p_tdi_mw, atol=1e-6)


def test_base_case_beyond_the_band_gives_zero_where_nothing_is_feasible() -> None:
    # the slack sits at 1.025 pu: with v_max 1.02 the LV network is above the band even with every point at
    # zero, so no export is feasible; importing lowers the voltage, so import limits exist
    limits = NetworkLimits(v_min_pu=0.90, v_max_pu=1.02)
    request = EnvelopeRequest(start=MIDDAY, intervals=2, interval_minutes=15, limits=limits)
    run = compute_envelopes(request, network(LV), forecast(LV), clock=CLOCK)
    assert (run.export.p_max_kw == 0).all()
    assert set(run.export.status) == {"infeasible"}
    assert run.export.infeasible.all()
    assert all(label.endswith(":v_max") for label in run.binding_labels(Direction.EXPORT).ravel())
    assert (run.import_.p_max_kw > 0).all()
    assert set(run.import_.status) == {VERIFIED}
    assert not run.base.within_tolerance.any()  # the forecast itself is reported beyond the band
    assert run.base.v_violation_pu.max() > 0.002


def test_outage_de_energises_points_and_the_rest_still_verifies() -> None:
    from gridbridge.domain.envelopes import SwitchingState
    from gridbridge.engines.envelopes import build_radial_network, process_topology

    net = network(MV)
    topo = process_topology(net.topology_inputs())
    radial = build_radial_network(topo, net.branch_parameters())
    cp_nodes = set(topo.node_of_bus[net.connection_point_buses].tolist())
    children = np.bincount(radial.parent[radial.parent >= 0], minlength=radial.n)
    # a line feeding a leaf node that is a connection point
    leaf_branch = next(
        int(radial.edge_branch[i])
        for i in range(radial.n)
        if children[i] == 0 and int(radial.topo_node[i]) in cp_nodes and radial.edge_names[i].startswith("line:")
    )
    name = topo.inputs.branch_names[leaf_branch]
    request = EnvelopeRequest(
        start=MIDDAY, intervals=1, interval_minutes=15, switching=SwitchingState(open_elements=(f"line:{name}",))
    )
    run = compute_envelopes(request, net, forecast(MV), clock=CLOCK)
    dead = run.de_energised_points()
    assert len(dead) >= 1
    idx = [run.point_names.index(d) for d in dead]
    assert (run.export.p_max_kw[:, idx] == 0).all()
    assert (run.import_.p_max_kw[:, idx] == 0).all()
    assert set(run.binding_labels(Direction.EXPORT)[:, idx].ravel()) == {"de-energised"}
    assert set(run.export.status) == {VERIFIED}
