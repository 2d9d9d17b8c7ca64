"""Hosting capacity of each point alone, and the O(n) tree passes, on the hand-checked feeder.

Alone at the flat state, an export of H MW at node j raises node i by H times the shared path resistance:
b2 shares 0.03 with itself (0.01 + 0.02), b3 0.05 with itself, b4 0.04 with itself. With 0.05 pu of
headroom everywhere the tightest node is the point itself: H = 0.05 / R(j, j).
"""

from __future__ import annotations

import numpy as np
import pytest
from envelope_feeder_fixture import feeder_network, feeder_points, flat_state

from gridbridge.domain.envelopes import Direction, NetworkLimits
from gridbridge.engines.envelopes import OperatingState, constraint_labels, hosting_capacity
from gridbridge.engines.envelopes.network import path_min, path_sum, subtree_min, subtree_sum

LIMITS = NetworkLimits()


def _labels(network, codes):  # type: ignore[no-untyped-def]
    table = constraint_labels(network)
    return [table[c] for c in np.asarray(codes).ravel()]


def test_hosting_capacity_is_headroom_over_own_path_resistance() -> None:
    net = feeder_network()
    hc = hosting_capacity(net, flat_state(net), feeder_points(net), LIMITS, Direction.EXPORT)
    np.testing.assert_allclose(hc.p_max_kw[0], [1000 * 0.05 / 0.03, 1000 * 0.05 / 0.05, 1000 * 0.05 / 0.04])
    assert _labels(net, hc.binding) == ["bus:b2:v_max", "bus:b3:v_max", "bus:b4:v_max"]


def test_hosting_capacity_sees_a_tighter_bus_elsewhere() -> None:
    # b3 already sits at 1.045: it has 0.005 pu left; an export at b2 raises b3 by 0.03 per MW -> 0.1667 MW,
    # an export at b4 raises b3 by 0.01 per MW -> 0.5 MW (tighter than b4's own 0.05/0.04 = 1.25 MW)
    net = feeder_network()
    st = flat_state(net)
    v = st.v_pu.copy()
    v[0, net.node_names.index("b3")] = 1.045
    st2 = OperatingState(v, st.p_flow_mw, st.q_flow_mvar, st.p_tdi_mw, st.cp_p_mw, st.cp_q_mvar)
    hc = hosting_capacity(net, st2, feeder_points(net), LIMITS, Direction.EXPORT)
    np.testing.assert_allclose(hc.p_max_kw[0], [1000 * 0.005 / 0.03, 1000 * 0.005 / 0.05, 1000 * 0.005 / 0.01])
    assert _labels(net, hc.binding) == ["bus:b3:v_max"] * 3


def test_hosting_capacity_counts_the_points_own_forecast() -> None:
    # b4 already exports 0.2 MW in the state: its hosting capacity is what it may export in total
    net = feeder_network()
    st = flat_state(net)
    cp = st.cp_p_mw.copy()
    cp[0, 2] = 0.2
    v = st.v_pu.copy()
    for name, rise in (("busbar", 0.01), ("b2", 0.01), ("b3", 0.01), ("b4", 0.04)):
        v[0, net.node_names.index(name)] += rise * 0.2
    st2 = OperatingState(v, st.p_flow_mw, st.q_flow_mvar, st.p_tdi_mw, cp, st.cp_q_mvar)
    hc = hosting_capacity(net, st2, feeder_points(net), LIMITS, Direction.EXPORT)
    # b4 has 0.05 - 0.008 pu left; the sensitivities divide r by the parent voltage (busbar at 1.002):
    # 0.2 MW plus 0.042 / (0.01 / 1.0 + 0.03 / 1.002) MW more, about 1250 kW in all
    expected_mw = 0.2 + 0.042 / (0.01 + 0.03 / 1.002)
    np.testing.assert_allclose(hc.p_max_kw[0, 2], 1000 * expected_mw, rtol=1e-9)


def test_hosting_capacity_thermal_and_import() -> None:
    net = feeder_network(ratings_mva=(np.inf, np.inf, 0.3, np.inf))
    hc = hosting_capacity(net, flat_state(net), feeder_points(net), LIMITS, Direction.IMPORT)
    # b3's import goes through L3 rated 0.3 MVA: 300 kW, below its voltage limit of 1000 kW
    np.testing.assert_allclose(hc.p_max_kw[0], [1000 * 0.05 / 0.03, 300.0, 1000 * 0.05 / 0.04])
    assert _labels(net, hc.binding)[1] == "line:L3"
    assert _labels(net, hc.binding)[0] == "bus:b2:v_min"


def test_hosting_capacity_zero_where_the_base_case_breaks_the_band() -> None:
    net = feeder_network()
    st = flat_state(net)
    v = st.v_pu.copy()
    v[0, net.node_names.index("b3")] = 1.06
    st2 = OperatingState(v, st.p_flow_mw, st.q_flow_mvar, st.p_tdi_mw, st.cp_p_mw, st.cp_q_mvar)
    hc = hosting_capacity(net, st2, feeder_points(net), LIMITS, Direction.EXPORT)
    assert (hc.p_max_kw == 0).all()
    assert hc.infeasible.all()


def test_tree_passes_against_brute_force() -> None:
    net = feeder_network()
    rng = np.random.default_rng(7)
    vals = rng.normal(size=(net.n, 3))
    parent = net.parent
    anc = []
    for i in range(net.n):
        chain, k = [], i
        while k >= 0:
            chain.append(k)
            k = parent[k]
        anc.append(chain)
    ps = path_sum(net, vals)
    ss = subtree_sum(net, vals)
    sm, sarg = subtree_min(net, vals)
    pm, parg = path_min(net, vals)
    for i in range(net.n):
        below = [j for j in range(net.n) if i in anc[j]]
        np.testing.assert_allclose(ps[i], vals[anc[i]].sum(axis=0))
        np.testing.assert_allclose(ss[i], vals[below].sum(axis=0))
        np.testing.assert_allclose(sm[i], vals[below].min(axis=0))
        np.testing.assert_allclose(pm[i], vals[anc[i]].min(axis=0))
        for t in range(3):
            assert vals[sarg[i, t], t] == sm[i, t]
            assert sarg[i, t] in below
            assert vals[parg[i, t], t] == pm[i, t]
            assert parg[i, t] in anc[i]


def _random_tree(seed: int, n: int = 40):  # type: ignore[no-untyped-def]
    from gridbridge.engines.envelopes import BranchParameters, TopologyInputs, build_radial_network, process_topology

    rng = np.random.default_rng(seed)
    parents = np.array([rng.integers(0, k) for k in range(1, n)])
    inputs = TopologyInputs(
        bus_names=tuple(f"n{i}" for i in range(n)),
        bus_in_service=np.ones(n, dtype=bool),
        branch_names=tuple(f"e{i}" for i in range(1, n)),
        branch_kind=("line",) * (n - 1),
        branch_from_bus=parents,
        branch_to_bus=np.arange(1, n),
        branch_in_service=np.ones(n - 1, dtype=bool),
        switch_names=(),
        switch_bus=np.zeros(0, dtype=np.int64),
        switch_kind=(),
        switch_target=np.zeros(0, dtype=np.int64),
        switch_closed=np.zeros(0, dtype=bool),
        slack_buses=np.array([0]),
    )
    params = BranchParameters(
        r_pu=rng.uniform(0.001, 0.05, n - 1),
        x_pu=np.zeros(n - 1),
        s_max_mva=np.full(n - 1, np.inf),
        length_km=np.ones(n - 1),
    )
    return build_radial_network(process_topology(inputs), params), rng


def test_hosting_capacity_matches_brute_force_with_violations_anywhere() -> None:
    from gridbridge.engines.envelopes import PointSet

    for seed in range(5):
        net, rng = _random_tree(seed)
        n = net.n
        v = rng.uniform(0.99, 1.056, size=(1, n))  # a few nodes above 1.05
        v[0, net.is_root] = 1.0
        cp_nodes = np.flatnonzero(~net.is_root)
        p0 = rng.uniform(-0.05, 0.3, size=(1, len(cp_nodes)))
        st = OperatingState(v, np.zeros((1, n)), np.zeros((1, n)), np.zeros(1), p0, np.zeros_like(p0))
        hc = hosting_capacity(net, st, PointSet(cp_nodes, np.ones(len(cp_nodes))), LIMITS, Direction.EXPORT)
        # brute force: R_lca(i, j) = sum of r / V_parent over the shared path
        anc = []
        for i in range(n):
            chain, k = set(), i
            while net.parent[k] >= 0:
                chain.add(k)
                k = net.parent[k]
            anc.append(chain)
        rr = net.r_pu / v[0, np.maximum(net.parent, 0)]
        for col, j in enumerate(cp_nodes):
            best = np.inf
            for i in range(n):
                shared = anc[i] & anc[j]
                r_lca = rr[list(shared)].sum() if shared else 0.0
                if r_lca > 0:
                    best = min(best, (LIMITS.v_max_pu - v[0, i]) / r_lca)
            expected = max(0.0, min(p0[0, col] + best, LIMITS.point_cap_kw / 1000))
            assert hc.p_max_kw[0, col] == pytest.approx(1000 * expected, rel=1e-9, abs=1e-9), (seed, j)
