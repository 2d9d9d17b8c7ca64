"""Topology processing: fused buses, energised tree, de-energised points, feeders, switching, loops."""

from __future__ import annotations

import numpy as np
import pytest

from gridbridge.domain.envelopes import NOT_RADIAL, UNKNOWN_ELEMENT
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.envelopes import (
    BranchParameters,
    TopologyInputs,
    apply_switching,
    build_radial_network,
    de_energised,
    process_topology,
)


def substation() -> TopologyInputs:
    """HV bus 0 (slack) and HV bus 1 joined by a coupler; two parallel transformers to MV busbar sections 2
    and 3 (joined by a coupler); feeder A: 2 -> 4 -> 5, feeder B: 3 -> 6 -> 7, tie line 5 - 7 with an open
    switch at bus 7; bus 8 hangs off bus 7 through line L78."""
    names = tuple(f"bus{i}" for i in range(9))
    branches = ("TR1", "TR2", "A1", "A2", "B1", "B2", "TIE", "L78")
    return TopologyInputs(
        bus_names=names,
        bus_in_service=np.ones(9, dtype=bool),
        branch_names=branches,
        branch_kind=("trafo", "trafo", "line", "line", "line", "line", "line", "line"),
        branch_from_bus=np.array([0, 1, 2, 4, 3, 6, 5, 7]),
        branch_to_bus=np.array([2, 3, 4, 5, 6, 7, 7, 8]),
        branch_in_service=np.ones(8, dtype=bool),
        switch_names=("HV coupler", "MV coupler", "tie switch", "B2 switch"),
        switch_bus=np.array([0, 2, 7, 6]),
        switch_kind=("bus", "bus", "branch", "branch"),
        switch_target=np.array([1, 3, 6, 5]),
        switch_closed=np.array([True, True, False, True]),
        slack_buses=np.array([0]),
    )


def test_couplers_fuse_and_parallel_transformers_merge() -> None:
    topo = process_topology(substation())
    assert topo.node_of_bus[0] == topo.node_of_bus[1]
    assert topo.node_of_bus[2] == topo.node_of_bus[3]
    assert topo.energised.all()
    # both transformers form the one edge into the MV busbar node
    assert topo.edge_of_branch[0] == topo.edge_of_branch[1] == topo.node_of_bus[2]
    assert topo.edge_of_branch[6] == -1  # the open tie
    assert topo.main_busbar[topo.node_of_bus[2]]


def test_feeders_are_the_branches_leaving_the_main_busbar() -> None:
    topo = process_topology(substation())
    assert topo.feeder_names(np.array([4, 5, 6, 7, 8, 2, 0])) == ("A1", "A1", "B1", "B1", "B1", None, None)


def test_opening_a_switch_de_energises_the_points_behind_it() -> None:
    inputs = apply_switching(substation(), open_elements=["B2 switch"])
    topo = process_topology(inputs)
    assert list(de_energised(topo, np.array([5, 6, 7, 8]))) == [False, False, True, True]


def test_switching_moves_buses_to_another_feeder() -> None:
    # close the tie, open B2: buses 7 and 8 are now fed from feeder A through the tie
    inputs = apply_switching(substation(), open_elements=["line:B2"], close_elements=["tie switch"])
    topo = process_topology(inputs)
    assert topo.feeder_names(np.array([7, 8])) == ("A1", "A1")
    assert topo.bus_energised().all()


def test_closing_the_tie_makes_a_loop_and_is_refused() -> None:
    inputs = apply_switching(substation(), close_elements=["tie switch"])
    with pytest.raises(ValidationFailed) as err:
        process_topology(inputs)
    assert err.value.code == NOT_RADIAL
    assert "TIE" in err.value.message or "B2" in err.value.message or "A2" in err.value.message


def test_unknown_or_ambiguous_elements_are_refused() -> None:
    with pytest.raises(ValidationFailed) as err:
        apply_switching(substation(), open_elements=["no such switch"])
    assert err.value.code == UNKNOWN_ELEMENT
    assert err.value.field == "network_state"
    with pytest.raises(ValidationFailed):
        apply_switching(substation(), open_elements=["A1"], close_elements=["A1"])


def test_radial_network_merges_parallel_impedances_and_ratings() -> None:
    topo = process_topology(substation())
    params = BranchParameters(
        r_pu=np.array([0.02, 0.02, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
        x_pu=np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
        s_max_mva=np.array([25.0, 20.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]),
        length_km=np.array([0, 0, 1, 2, 1, 2, 1, 1.0]),
    )
    net = build_radial_network(topo, params)
    mv = net.node_of_topo[topo.node_of_bus[2]]
    assert net.r_pu[mv] == pytest.approx(0.01)
    assert net.x_pu[mv] == pytest.approx(0.05)
    # equal impedances share the current equally: the 20 MVA unit limits the pair to 40 MVA
    assert net.s_max_mva[mv] == pytest.approx(40.0)
    assert net.edge_names[mv] == "trafo:TR2"
    # breadth-first order: parents come before children, levels are contiguous
    assert (net.parent[net.parent >= 0] < np.flatnonzero(net.parent >= 0)).all()


def test_out_of_service_bus_and_missing_slack() -> None:
    inputs = substation()
    off = inputs.bus_in_service.copy()
    off[4] = False
    from dataclasses import replace

    topo = process_topology(replace(inputs, bus_in_service=off))
    assert topo.node_of_bus[4] == -1
    assert not topo.bus_energised()[5]  # behind the out-of-service bus
    none = process_topology(replace(inputs, slack_buses=np.zeros(0, dtype=np.int64)))
    assert not none.energised.any()
