"""Topology of a stored model read without pandapower agrees with the pandapower adapter's, element by element,
and finds the points a feeder outage de-energises and the buses below a branch."""

from __future__ import annotations

import numpy as np

from gridbridge.adapters.network_io import network_to_pandapower
from gridbridge.adapters.powerflow.network import PandapowerEnvelopeNetwork
from gridbridge.engines.envelopes import apply_switching, de_energised, process_topology
from gridbridge.engines.envelopes.model_topology import branch_positions, buses_below, topology_inputs_from_model
from registry_province import small_network


def test_model_topology_inputs_equal_the_pandapower_adapters() -> None:
    model = small_network()
    ours = topology_inputs_from_model(model)
    theirs = PandapowerEnvelopeNetwork(network_to_pandapower(model), name="x").topology_inputs()
    for name in ("bus_names", "branch_names", "branch_kind", "switch_names", "switch_kind"):
        assert getattr(ours, name) == getattr(theirs, name), name
    for name in (
        "bus_in_service",
        "branch_from_bus",
        "branch_to_bus",
        "branch_in_service",
        "switch_bus",
        "switch_target",
        "switch_closed",
        "slack_buses",
    ):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name


def test_a_feeder_outage_de_energises_its_points_and_the_feeders_match_the_model() -> None:
    model = small_network()
    inputs = topology_inputs_from_model(model)
    buses = {name: i for i, name in enumerate(inputs.bus_names)}
    points = np.array([buses[p.bus] for p in model.connection_points])
    normal = process_topology(inputs)
    assert normal.feeder_names(points) == tuple(p.feeder for p in model.connection_points)
    out = process_topology(apply_switching(inputs, ["LV1.101 Line 12"]))
    dead = {model.connection_points[j].name for j in np.flatnonzero(de_energised(out, points))}
    assert dead == {p.name for p in model.connection_points if p.feeder == "LV1.101 Line 12"}
    below = buses_below(normal, branch_positions(inputs, ["line:LV1.101 Line 12"]).tolist())
    assert {inputs.bus_names[i] for i in np.flatnonzero(below)} >= dead
    everything = buses_below(normal, branch_positions(inputs, ["MV1.101-LV1.101-Trafo 1"]).tolist())
    assert everything[points].all()
