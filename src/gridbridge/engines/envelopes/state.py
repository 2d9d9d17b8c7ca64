"""Operating points on the radial network: what the linearisation starts from.

An :class:`OperatingState` is an AC power-flow solution for T intervals mapped onto a
:class:`~.network.RadialNetwork`: node voltage magnitudes, the active and reactive power entering each tree
edge at its slack-facing end (positive towards the leaves), the power drawn from the transmission system at
the T-D interface, and the net injection of every connection point in that solution.
:func:`state_from_branch_flows` builds one from per-bus and per-branch power-flow results.
:class:`PointSet` places the connection points on the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from gridbridge.engines.envelopes._types import BoolArray, FloatArray, IntArray
from gridbridge.engines.envelopes.network import RadialNetwork
from gridbridge.engines.envelopes.topology import Topology


def _f2(values: FloatArray, rows: int, cols: int, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (rows, cols):
        raise ValueError(f"{name} has shape {arr.shape}; expected {(rows, cols)}")
    return arr


@dataclass(frozen=True, eq=False)
class PointSet:
    """Connection points on a network: ``node`` is the network node of each point (-1: de-energised) and
    ``weight`` its non-negative allocation weight (used by the ``proportional`` policy)."""

    node: IntArray
    weight: FloatArray

    def __post_init__(self) -> None:
        node = np.asarray(self.node, dtype=np.int64).reshape(-1)
        weight = np.asarray(self.weight, dtype=np.float64).reshape(-1)
        if node.shape != weight.shape:
            raise ValueError("node and weight must have one entry per connection point")
        if (~np.isfinite(weight)).any() or (weight < 0).any():
            raise ValueError("weights must be finite and non-negative")
        object.__setattr__(self, "node", node)
        object.__setattr__(self, "weight", weight)

    @property
    def m(self) -> int:
        """Number of connection points."""
        return len(self.node)

    @property
    def energised(self) -> BoolArray:
        """True for points on an energised node."""
        return self.node >= 0

    def incidence(self, n: int) -> csr_matrix:
        """Sparse ``(n, m)`` matrix with a 1 at (node of point j, j) for energised points."""
        ok = self.energised
        cols = np.flatnonzero(ok)
        return csr_matrix((np.ones(len(cols)), (self.node[ok], cols)), shape=(n, self.m))


@dataclass(frozen=True, eq=False)
class OperatingState:
    """An AC operating point for T intervals on an n-node network with m connection points.

    ``v_pu`` (T, n); ``p_flow_mw``/``q_flow_mvar`` (T, n) into the edge of each node at its parent end
    (zero at roots); ``p_tdi_mw`` (T,) imported from transmission; ``cp_p_mw``/``cp_q_mvar`` (T, m) net
    injection of each connection point (generation positive) in this state; ``p_recv_mw``/``q_recv_mvar``
    (T, n) the power the edge delivers into its child node (None: the parent-end flow, i.e. lossless).
    """

    v_pu: FloatArray
    p_flow_mw: FloatArray
    q_flow_mvar: FloatArray
    p_tdi_mw: FloatArray
    cp_p_mw: FloatArray
    cp_q_mvar: FloatArray
    p_recv_mw: FloatArray | None = None
    q_recv_mvar: FloatArray | None = None

    def __post_init__(self) -> None:
        v = np.asarray(self.v_pu, dtype=np.float64)
        if v.ndim != 2:
            raise ValueError("v_pu must be 2-D (intervals, nodes)")
        t, n = v.shape
        m = np.asarray(self.cp_p_mw).shape[-1] if np.asarray(self.cp_p_mw).ndim == 2 else -1
        object.__setattr__(self, "v_pu", v)
        object.__setattr__(self, "p_flow_mw", _f2(self.p_flow_mw, t, n, "p_flow_mw"))
        object.__setattr__(self, "q_flow_mvar", _f2(self.q_flow_mvar, t, n, "q_flow_mvar"))
        object.__setattr__(self, "cp_p_mw", _f2(self.cp_p_mw, t, m, "cp_p_mw"))
        object.__setattr__(self, "cp_q_mvar", _f2(self.cp_q_mvar, t, m, "cp_q_mvar"))
        p_tdi = np.asarray(self.p_tdi_mw, dtype=np.float64).reshape(-1)
        if p_tdi.shape != (t,):
            raise ValueError(f"p_tdi_mw has {p_tdi.shape[0]} entries; expected {t}")
        object.__setattr__(self, "p_tdi_mw", p_tdi)
        for name, fallback in (("p_recv_mw", self.p_flow_mw), ("q_recv_mvar", self.q_flow_mvar)):
            value = getattr(self, name)
            object.__setattr__(self, name, fallback.copy() if value is None else _f2(value, t, n, name))
        if not np.isfinite(v).all() or (v <= 0).any():
            raise ValueError("v_pu must be positive and finite at every energised node (did the power flow converge?)")

    @property
    def recv(self) -> tuple[FloatArray, FloatArray]:
        """Receiving-end (child-end) active and reactive flows (T, n)."""
        assert self.p_recv_mw is not None
        assert self.q_recv_mvar is not None
        return self.p_recv_mw, self.q_recv_mvar

    @property
    def intervals(self) -> int:
        """Number of intervals T."""
        return int(self.v_pu.shape[0])

    def take(self, rows: IntArray) -> OperatingState:
        """The state restricted to intervals ``rows``."""
        return OperatingState(
            self.v_pu[rows],
            self.p_flow_mw[rows],
            self.q_flow_mvar[rows],
            self.p_tdi_mw[rows],
            self.cp_p_mw[rows],
            self.cp_q_mvar[rows],
            self.recv[0][rows],
            self.recv[1][rows],
        )


def branch_to_edge_matrix(topology: Topology, network: RadialNetwork) -> tuple[csr_matrix, csr_matrix]:
    """Sparse ``(n_branch, n)`` matrices adding each tree branch's from-end (first) and to-end (second)
    flow to its edge when that end faces the slack."""
    edge_topo = topology.edge_of_branch
    ok = edge_topo >= 0
    k = np.flatnonzero(ok)
    node = network.node_of_topo[edge_topo[k]]
    keep = node >= 0
    k, node = k[keep], node[keep]
    fip = topology.branch_from_is_parent[k]
    n_br = topology.inputs.n_branch
    from_m = csr_matrix((np.ones(int(fip.sum())), (k[fip], node[fip])), shape=(n_br, network.n))
    to_m = csr_matrix((np.ones(int((~fip).sum())), (k[~fip], node[~fip])), shape=(n_br, network.n))
    return from_m, to_m


def state_from_branch_flows(
    topology: Topology,
    network: RadialNetwork,
    vm_bus_pu: FloatArray,
    p_from_mw: FloatArray,
    q_from_mvar: FloatArray,
    p_to_mw: FloatArray,
    q_to_mvar: FloatArray,
    p_tdi_mw: FloatArray,
    cp_p_mw: FloatArray,
    cp_q_mvar: FloatArray,
) -> OperatingState:
    """Map per-bus voltages (T, n_bus) and per-branch end flows (T, n_branch; power entering the branch
    at that end) onto the network's nodes and edges."""
    vm = np.asarray(vm_bus_pu, dtype=np.float64)
    bus_of_node = topology.node_bus[network.topo_node]
    v = vm[:, bus_of_node]
    from_m, to_m = branch_to_edge_matrix(topology, network)
    p_from = np.nan_to_num(np.asarray(p_from_mw, dtype=np.float64))
    p_to = np.nan_to_num(np.asarray(p_to_mw, dtype=np.float64))
    q_from = np.nan_to_num(np.asarray(q_from_mvar, dtype=np.float64))
    q_to = np.nan_to_num(np.asarray(q_to_mvar, dtype=np.float64))
    p = np.asarray(from_m.T @ p_from.T + to_m.T @ p_to.T).T
    q = np.asarray(from_m.T @ q_from.T + to_m.T @ q_to.T).T
    # the child end: the power entering the branch there, with the sign turned (delivered to the child)
    p_recv = -np.asarray(from_m.T @ p_to.T + to_m.T @ p_from.T).T
    q_recv = -np.asarray(from_m.T @ q_to.T + to_m.T @ q_from.T).T
    return OperatingState(v, p, q, np.asarray(p_tdi_mw, dtype=np.float64), cp_p_mw, cp_q_mvar, p_recv, q_recv)
