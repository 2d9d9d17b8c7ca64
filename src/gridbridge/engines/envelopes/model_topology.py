"""Topology inputs straight from the stored network model, without a power-flow library.

:func:`topology_inputs_from_model` reads a :class:`~gridbridge.domain.network.NetworkModel` into the arrays
:func:`~gridbridge.engines.envelopes.process_topology` takes, in the same order as the pandapower adapter
(buses in model order; lines, then transformers; switches in model order), so that names, positions and
results agree with an envelope run on the same model. Recording an outage uses it to find the de-energised
connection points and each point's feeder after switching at once, in the transaction that records it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gridbridge.domain.network import NetworkModel, SwitchElement
from gridbridge.engines.envelopes._types import BoolArray, IntArray
from gridbridge.engines.envelopes.topology import LINE, SWITCH_BRANCH, SWITCH_BUS, TRAFO, Topology, TopologyInputs


def topology_inputs_from_model(model: NetworkModel) -> TopologyInputs:
    """Buses, branches (lines then transformers), switches and slack buses of ``model``."""
    bus_pos = {b.name: i for i, b in enumerate(model.buses)}
    n_line = len(model.lines)
    branch_pos = {line.name: i for i, line in enumerate(model.lines)}
    trafo_pos = {t.name: n_line + i for i, t in enumerate(model.transformers)}
    kinds: list[str] = []
    targets: list[int] = []
    for sw in model.switches:
        if sw.element_kind is SwitchElement.BUS:
            kinds.append(SWITCH_BUS)
            targets.append(bus_pos[sw.element])
        elif sw.element_kind is SwitchElement.LINE:
            kinds.append(SWITCH_BRANCH)
            targets.append(branch_pos[sw.element])
        else:
            kinds.append(SWITCH_BRANCH)
            targets.append(trafo_pos[sw.element])
    return TopologyInputs(
        bus_names=tuple(b.name for b in model.buses),
        bus_in_service=np.array([b.in_service for b in model.buses], dtype=np.bool_),
        branch_names=tuple(line.name for line in model.lines) + tuple(t.name for t in model.transformers),
        branch_kind=(LINE,) * n_line + (TRAFO,) * len(model.transformers),
        branch_from_bus=np.array(
            [bus_pos[line.from_bus] for line in model.lines] + [bus_pos[t.hv_bus] for t in model.transformers],
            dtype=np.int64,
        ),
        branch_to_bus=np.array(
            [bus_pos[line.to_bus] for line in model.lines] + [bus_pos[t.lv_bus] for t in model.transformers],
            dtype=np.int64,
        ),
        branch_in_service=np.array(
            [line.in_service for line in model.lines] + [t.in_service for t in model.transformers], dtype=np.bool_
        ),
        switch_names=tuple(sw.name for sw in model.switches),
        switch_bus=np.array([bus_pos[sw.bus] for sw in model.switches], dtype=np.int64),
        switch_kind=tuple(kinds),
        switch_target=np.array(targets, dtype=np.int64),
        switch_closed=np.array([sw.closed for sw in model.switches], dtype=np.bool_),
        slack_buses=np.array([bus_pos[g.bus] for g in model.ext_grids if g.in_service], dtype=np.int64),
    )


def buses_below(topology: Topology, branches: Iterable[int]) -> BoolArray:
    """True for each bus whose energised path to the slack passes through one of ``branches`` (positions)."""
    below = np.zeros(topology.n_node, dtype=np.bool_)
    for k in branches:
        child = int(topology.edge_of_branch[int(k)])
        if child >= 0:
            below[child] = True
    for node in topology.order:
        p = topology.parent[node]
        if p >= 0 and below[p]:
            below[node] = True
    nodes = topology.node_of_bus
    out = np.zeros(len(nodes), dtype=np.bool_)
    ok = nodes >= 0
    out[ok] = below[nodes[ok]]
    return out


def branch_positions(inputs: TopologyInputs, names: Iterable[str]) -> IntArray:
    """Positions of the named lines or transformers (names optionally prefixed ``line:`` or ``trafo:``).

    Raises ``KeyError`` with the name for one that is not a line or transformer of the network (callers turn
    that into a coded error naming their field).
    """
    by_name: dict[str, list[int]] = {}
    for i, (name, kind) in enumerate(zip(inputs.branch_names, inputs.branch_kind, strict=True)):
        by_name.setdefault(name, []).append(i)
        by_name.setdefault(f"{kind}:{name}", []).append(i)
    out: list[int] = []
    for name in names:
        found = by_name.get(name, [])
        if len(found) != 1:
            raise KeyError(name)
        out.append(found[0])
    return np.asarray(out, dtype=np.int64)
