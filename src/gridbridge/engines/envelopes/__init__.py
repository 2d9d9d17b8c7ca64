"""The dynamic operating envelope engine: pure numpy/scipy/HiGHS code on arrays.

- :mod:`.topology`: switching, energised buses, the tree from the slack, feeders (radial check).
- :mod:`.network`: the radial linear network and its O(n) tree passes.
- :mod:`.state` / :mod:`.linear`: operating states from AC results and the LinDistFlow-style model.
- :mod:`.allocation` (``equal``, ``proportional``) and :mod:`.lp` (``max_total``): envelope limits with
  every connection point at its limit at once.
- :mod:`.hosting`: hosting capacity of each point alone.
- :mod:`.acflow`: AC power flow of many snapshots at once on one admittance matrix.
"""

from __future__ import annotations

from gridbridge.domain.envelopes import AllocationPolicy, Direction, NetworkLimits
from gridbridge.engines.envelopes.acflow import AcBatchSolution, BatchedAcSolver
from gridbridge.engines.envelopes.allocation import DirectionLimits, allocate_equal, allocate_proportional
from gridbridge.engines.envelopes.hosting import HostingCapacity, hosting_capacity
from gridbridge.engines.envelopes.lp import allocate_max_total
from gridbridge.engines.envelopes.network import (
    BranchParameters,
    ConstraintCode,
    RadialNetwork,
    build_radial_network,
    constraint_labels,
)
from gridbridge.engines.envelopes.state import OperatingState, PointSet, state_from_branch_flows
from gridbridge.engines.envelopes.topology import (
    Topology,
    TopologyInputs,
    apply_switching,
    de_energised,
    process_topology,
)

__all__ = [
    "AcBatchSolution",
    "BatchedAcSolver",
    "BranchParameters",
    "ConstraintCode",
    "DirectionLimits",
    "HostingCapacity",
    "OperatingState",
    "PointSet",
    "RadialNetwork",
    "Topology",
    "TopologyInputs",
    "allocate",
    "allocate_equal",
    "allocate_max_total",
    "allocate_proportional",
    "apply_switching",
    "build_radial_network",
    "constraint_labels",
    "de_energised",
    "hosting_capacity",
    "process_topology",
    "state_from_branch_flows",
]


def allocate(
    network: RadialNetwork,
    state: OperatingState,
    points: PointSet,
    limits: NetworkLimits,
    policy: AllocationPolicy,
    direction: Direction,
) -> DirectionLimits:
    """Envelope limits of one direction under ``policy`` with every point at its limit at once."""
    if policy is AllocationPolicy.EQUAL:
        return allocate_equal(network, state, points, limits, direction)
    if policy is AllocationPolicy.PROPORTIONAL:
        return allocate_proportional(network, state, points, limits, direction)
    return allocate_max_total(network, state, points, limits, direction)
