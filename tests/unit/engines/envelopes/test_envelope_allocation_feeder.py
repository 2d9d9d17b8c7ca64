"""Envelope limits on the hand-checked four-node feeder (see envelope_feeder_fixture for the drawing).

Sensitivities with every point exporting the same E MW (lossless at the flat state): node 1 rises by
0.01*3E, node 2 by (0.03 + 0.02*2)E = 0.07E, node 3 by (0.07 + 0.02)E = 0.09E, node 4 by (0.03 + 0.03)E =
0.06E. With 0.05 pu of headroom everywhere, node 3 binds at E = 0.05/0.09 MW.
"""

from __future__ import annotations

import numpy as np
import pytest
from envelope_feeder_fixture import feeder_network, feeder_points, flat_state

from gridbridge.domain.envelopes import AllocationPolicy, Direction, NetworkLimits
from gridbridge.engines.envelopes import ConstraintCode, allocate, constraint_labels

LIMITS = NetworkLimits(v_min_pu=0.95, v_max_pu=1.05, max_loading_pct=100.0)


def _labels(network, codes):  # type: ignore[no-untyped-def]
    table = constraint_labels(network)
    return [table[c] for c in np.asarray(codes).ravel()]


@pytest.mark.parametrize("direction", [Direction.EXPORT, Direction.IMPORT])
def test_equal_limit_is_the_voltage_headroom_over_the_largest_sensitivity(direction: Direction) -> None:
    net = feeder_network()
    res = allocate(net, flat_state(net), feeder_points(net), LIMITS, AllocationPolicy.EQUAL, direction)
    expected_kw = 1000 * 0.05 / 0.09
    np.testing.assert_allclose(res.p_max_kw, expected_kw, rtol=1e-9)
    side = "v_max" if direction is Direction.EXPORT else "v_min"
    assert set(_labels(net, res.binding)) == {f"bus:b3:{side}"}
    assert not res.infeasible.any()


def test_equal_limit_bound_by_the_transformer_rating() -> None:
    # 3 points through T1 rated 1.2 MVA at 1 pu: 3E <= 1.2 -> E = 0.4 MW, tighter than the voltage's 0.556
    net = feeder_network(ratings_mva=(1.2, np.inf, np.inf, np.inf))
    res = allocate(net, flat_state(net), feeder_points(net), LIMITS, AllocationPolicy.EQUAL, Direction.EXPORT)
    np.testing.assert_allclose(res.p_max_kw, 400.0, rtol=1e-9)
    assert set(_labels(net, res.binding)) == {"trafo:T1"}


def test_loading_limit_percent_scales_the_rating() -> None:
    net = feeder_network(ratings_mva=(1.2, np.inf, np.inf, np.inf))
    limits = NetworkLimits(max_loading_pct=50.0)
    res = allocate(net, flat_state(net), feeder_points(net), limits, AllocationPolicy.EQUAL, Direction.EXPORT)
    np.testing.assert_allclose(res.p_max_kw, 200.0, rtol=1e-9)


def test_tdi_reverse_flow_limit_binds_export_only() -> None:
    net = feeder_network()
    limits = NetworkLimits(tdi_reverse_limit_kw=900.0)
    exp = allocate(net, flat_state(net), feeder_points(net), limits, AllocationPolicy.EQUAL, Direction.EXPORT)
    imp = allocate(net, flat_state(net), feeder_points(net), limits, AllocationPolicy.EQUAL, Direction.IMPORT)
    np.testing.assert_allclose(exp.p_max_kw, 300.0, rtol=1e-9)  # 3E <= 0.9 MW
    assert set(_labels(net, exp.binding)) == {"tdi:reverse_flow"}
    np.testing.assert_allclose(imp.p_max_kw, 1000 * 0.05 / 0.09, rtol=1e-9)


def test_proportional_limits_follow_the_weights() -> None:
    # weights 1, 1, 3: node 4 rises by (0.01*5 + 0.03*3) lam = 0.14 lam, the largest -> lam = 0.05/0.14
    net = feeder_network()
    pts = feeder_points(net, weights=(1.0, 1.0, 3.0))
    res = allocate(net, flat_state(net), pts, LIMITS, AllocationPolicy.PROPORTIONAL, Direction.EXPORT)
    lam_kw = 1000 * 0.05 / 0.14
    np.testing.assert_allclose(res.p_max_kw[0], [lam_kw, lam_kw, 3 * lam_kw], rtol=1e-9)
    assert set(_labels(net, res.binding)) == {"bus:b4:v_max"}


def test_zero_weight_gets_zero_and_says_so() -> None:
    net = feeder_network()
    pts = feeder_points(net, weights=(1.0, 0.0, 1.0))
    res = allocate(net, flat_state(net), pts, LIMITS, AllocationPolicy.PROPORTIONAL, Direction.EXPORT)
    assert res.p_max_kw[0, 1] == 0.0
    assert _labels(net, res.binding[:, 1]) == ["zero_weight"]
    # without b3 exporting, node 3 rises with node 2: 0.01*2 + 0.02*1 = 0.04 per MW; node 4: 0.02 + 0.03 = 0.05
    np.testing.assert_allclose(res.p_max_kw[0, [0, 2]], 1000 * 0.05 / 0.05, rtol=1e-9)


def test_max_total_lp_matches_the_hand_solved_vertex() -> None:
    # maximise E2 + E3 + E4: E3 is dominated by E2; the optimum has V2 and V4 at the limit:
    # 0.03 E2 + 0.01 E4 = 0.05 and 0.01 E2 + 0.04 E4 = 0.05 -> E2 = 15/11 MW, E4 = 10/11 MW, E3 = 0
    net = feeder_network()
    res = allocate(net, flat_state(net), feeder_points(net), LIMITS, AllocationPolicy.MAX_TOTAL, Direction.EXPORT)
    np.testing.assert_allclose(res.p_max_kw[0], [1000 * 15 / 11, 0.0, 1000 * 10 / 11], atol=1e-5)
    np.testing.assert_allclose(res.p_max_kw.sum(), 1000 * 25 / 11, rtol=1e-7)
    labels = _labels(net, res.binding)
    assert labels[0] == "bus:b2:v_max" or labels[0] == "bus:b3:v_max"
    assert labels[2] == "bus:b4:v_max"


def test_max_total_is_at_least_the_equal_total() -> None:
    net = feeder_network(ratings_mva=(2.0, 1.0, 1.0, 1.0))
    st, pts = flat_state(net), feeder_points(net)
    eq = allocate(net, st, pts, LIMITS, AllocationPolicy.EQUAL, Direction.IMPORT)
    mt = allocate(net, st, pts, LIMITS, AllocationPolicy.MAX_TOTAL, Direction.IMPORT)
    assert mt.p_max_kw.sum() >= eq.p_max_kw.sum() - 1e-6


def test_intervals_are_computed_at_once_and_independently() -> None:
    # interval 1 starts 0.02 pu higher everywhere below the slack: 0.03 pu of headroom instead of 0.05
    net = feeder_network()
    st = flat_state(net, intervals=2)
    v = st.v_pu.copy()
    v[1, 1:] = 1.02
    from gridbridge.engines.envelopes import OperatingState

    st2 = OperatingState(v, st.p_flow_mw, st.q_flow_mvar, st.p_tdi_mw, st.cp_p_mw, st.cp_q_mvar)
    res = allocate(net, st2, feeder_points(net), LIMITS, AllocationPolicy.EQUAL, Direction.EXPORT)
    np.testing.assert_allclose(res.p_max_kw[0], 1000 * 0.05 / 0.09, rtol=1e-9)
    # DistFlow: dV_child = dV_parent - r dP / V_child, so every edge's term is divided by 1.02
    slope = (0.01 * 3 + 0.02 * 2 + 0.02) / 1.02
    np.testing.assert_allclose(res.p_max_kw[1], 1000 * 0.03 / slope, rtol=1e-9)


def test_base_case_outside_the_band_gives_zero_and_flags_it() -> None:
    net = feeder_network()
    st = flat_state(net)
    v = st.v_pu.copy()
    v[0, net.node_names.index("b4")] = 1.06  # already above v_max at zero injection
    from gridbridge.engines.envelopes import OperatingState

    st2 = OperatingState(v, st.p_flow_mw, st.q_flow_mvar, st.p_tdi_mw, st.cp_p_mw, st.cp_q_mvar)
    exp = allocate(net, st2, feeder_points(net), LIMITS, AllocationPolicy.EQUAL, Direction.EXPORT)
    assert (exp.p_max_kw == 0).all()
    assert exp.infeasible.all()
    assert set(_labels(net, exp.binding)) == {"bus:b4:v_max"}
    imp = allocate(net, st2, feeder_points(net), LIMITS, AllocationPolicy.EQUAL, Direction.IMPORT)
    assert (imp.p_max_kw > 0).all()  # importing lowers the voltage: feasible


def test_forecast_injections_are_taken_out_before_allocating() -> None:
    # the base state has b3 already exporting 0.1 MW (its voltage raised accordingly); the limits must be
    # the same as from the flat state, because every point is moved to its limit anyway
    net = feeder_network()
    st = flat_state(net)
    i1, i2, i3 = (net.node_names.index(b) for b in ("busbar", "b2", "b3"))
    v = st.v_pu.copy()
    v[0, i1] += 0.01 * 0.1
    v[0, i2] += 0.03 * 0.1
    v[0, i3] += 0.05 * 0.1
    v[0, net.node_names.index("b4")] += 0.01 * 0.1
    p = st.p_flow_mw.copy()
    p[0, [i1, i2, i3]] = -0.1
    cp = st.cp_p_mw.copy()
    cp[0, 1] = 0.1
    from gridbridge.engines.envelopes import OperatingState

    st2 = OperatingState(v, p, st.q_flow_mvar, np.array([-0.1]), cp, st.cp_q_mvar)
    res = allocate(net, st2, feeder_points(net), LIMITS, AllocationPolicy.EQUAL, Direction.EXPORT)
    # the DistFlow derivative at a non-zero flow has loss terms the lossless hand model lacks (~0.5 %);
    # leaving b3's forecast export in place would have lowered the limit by 10 % (to 0.045 / 0.09 MW)
    np.testing.assert_allclose(res.p_max_kw, 1000 * 0.05 / 0.09, rtol=1e-2)


def test_de_energised_point_gets_zero() -> None:
    net = feeder_network()
    from gridbridge.engines.envelopes import PointSet

    pts = PointSet(np.array([net.node_names.index("b2"), -1, net.node_names.index("b4")]), np.ones(3))
    res = allocate(net, flat_state(net), pts, LIMITS, AllocationPolicy.EQUAL, Direction.EXPORT)
    assert res.p_max_kw[0, 1] == 0.0
    assert res.binding[0, 1] == ConstraintCode.de_energised(net.n)
    # two points left: node 2 rises 0.01*2 + 0.02*1 = 0.04, node 4 rises 0.02 + 0.03 = 0.05
    np.testing.assert_allclose(res.p_max_kw[0, [0, 2]], 1000.0, rtol=1e-9)


@pytest.mark.parametrize("policy", list(AllocationPolicy))
def test_no_energised_point_gives_zero_not_nan(policy: AllocationPolicy) -> None:
    from gridbridge.engines.envelopes import PointSet

    net = feeder_network()
    pts = PointSet(np.array([-1, -1]), np.ones(2))
    for direction in Direction:
        res = allocate(net, flat_state(net, m=2), pts, LIMITS, policy, direction)
        assert (res.p_max_kw == 0).all()
        assert (res.binding == ConstraintCode.de_energised(net.n)).all()
