"""A four-node radial feeder whose envelope limits can be worked out by hand.

    node 0 (slack) --edge 1 (trafo, r=0.01)--> node 1 --edge 2 (line, r=0.02)--> node 2 --edge 3 (r=0.02)--> node 3
                                                 \\--edge 4 (line, r=0.03)--> node 4

Per unit on 1 MVA, x = 0, every voltage 1.0 pu and every flow zero in the base state, so the DistFlow
derivative equals the lossless LinDistFlow model: an injection of P MW at node j raises the voltage of node i
by P times the resistance of the path the two share from the slack. Connection points sit at nodes 2, 3, 4.
"""

from __future__ import annotations

import numpy as np

from gridbridge.engines.envelopes import (
    BranchParameters,
    OperatingState,
    PointSet,
    RadialNetwork,
    TopologyInputs,
    build_radial_network,
    process_topology,
)

BUSES = ("slack", "busbar", "b2", "b3", "b4")
BRANCHES = ("T1", "L2", "L3", "L4")
R = (0.01, 0.02, 0.02, 0.03)


def feeder_inputs() -> TopologyInputs:
    """Topology of the feeder (no switches)."""
    return TopologyInputs(
        bus_names=BUSES,
        bus_in_service=np.ones(5, dtype=bool),
        branch_names=BRANCHES,
        branch_kind=("trafo", "line", "line", "line"),
        branch_from_bus=np.array([0, 1, 2, 1]),
        branch_to_bus=np.array([1, 2, 3, 4]),
        branch_in_service=np.ones(4, dtype=bool),
        switch_names=(),
        switch_bus=np.zeros(0, dtype=np.int64),
        switch_kind=(),
        switch_target=np.zeros(0, dtype=np.int64),
        switch_closed=np.zeros(0, dtype=bool),
        slack_buses=np.array([0]),
    )


def feeder_network(ratings_mva: tuple[float, float, float, float] = (np.inf,) * 4) -> RadialNetwork:
    """The radial network, with optional branch ratings (MVA at 1 pu)."""
    topo = process_topology(feeder_inputs())
    params = BranchParameters(
        r_pu=np.array(R),
        x_pu=np.zeros(4),
        s_max_mva=np.array(ratings_mva, dtype=float),
        length_km=np.array([0.0, 1.0, 1.0, 1.5]),
    )
    return build_radial_network(topo, params)


def flat_state(network: RadialNetwork, intervals: int = 1, m: int = 3) -> OperatingState:
    """All voltages 1.0 pu, all flows zero, connection points at zero injection."""
    n = network.n
    zeros = np.zeros((intervals, n))
    return OperatingState(
        v_pu=np.ones((intervals, n)),
        p_flow_mw=zeros,
        q_flow_mvar=zeros,
        p_tdi_mw=np.zeros(intervals),
        cp_p_mw=np.zeros((intervals, m)),
        cp_q_mvar=np.zeros((intervals, m)),
    )


def feeder_points(network: RadialNetwork, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> PointSet:
    """Connection points at buses b2, b3, b4 (network nodes looked up by name)."""
    nodes = [network.node_names.index(name) for name in ("b2", "b3", "b4")]
    return PointSet(np.array(nodes), np.array(weights))
