"""SimBench and pandapower networks through the network model and back, checked with AC power flow."""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import fields
from pathlib import Path

import pandapower as pp
import pandas as pd
import pytest

from gridbridge.adapters.network_io import (
    import_network,
    load_pandapower_source,
    network_from_pandapower,
    network_to_pandapower,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.network import NetworkModel, SwitchElement, assign_feeders

MV = "1-MV-semiurb--0-sw"
LV = "1-LV-rural1--0-sw"
MVLV = "1-MVLV-semiurb-all-0-sw"


def simbench_net(code: str) -> pp.pandapowerNet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return load_pandapower_source(f"simbench:{code}")


@pytest.fixture(scope="module")
def mv_net() -> pp.pandapowerNet:
    return simbench_net(MV)


@pytest.fixture(scope="module")
def lv_net() -> pp.pandapowerNet:
    return simbench_net(LV)


def by_name(values: pd.Series, names: pd.Series) -> pd.Series:
    return values.set_axis(names.tolist())


def assert_same_power_flow(original: pp.pandapowerNet, copy: pp.pandapowerNet) -> None:
    """Run AC power flow on both and compare results element by element, matched by name."""
    # numba=False: same Newton-Raphson, without several seconds of JIT compilation in a short test run
    pp.runpp(original, numba=False)
    pp.runpp(copy, numba=False)
    vm_a = by_name(original.res_bus.vm_pu, original.bus.name)
    vm_b = by_name(copy.res_bus.vm_pu, copy.bus.name).loc[vm_a.index]
    assert vm_a.notna().all()
    assert (vm_a - vm_b).abs().max() < 1e-6
    va_a = by_name(original.res_bus.va_degree, original.bus.name)
    va_b = by_name(copy.res_bus.va_degree, copy.bus.name).loc[va_a.index]
    assert (va_a - va_b).abs().max() < 1e-6
    ld_a = by_name(original.res_line.loading_percent, original.line.name)
    ld_b = by_name(copy.res_line.loading_percent, copy.line.name).loc[ld_a.index]
    assert (ld_a - ld_b).abs().max() < 1e-6
    tr_a = by_name(original.res_trafo.loading_percent, original.trafo.name)
    tr_b = by_name(copy.res_trafo.loading_percent, copy.trafo.name).loc[tr_a.index]
    assert (tr_a - tr_b).abs().max() < 1e-6
    assert abs(original.res_ext_grid.p_mw.sum() - copy.res_ext_grid.p_mw.sum()) < 1e-9


def assert_models_close(a: NetworkModel, b: NetworkModel, rel: float = 1e-12) -> None:
    """Same elements, names and references; numbers equal to ``rel``."""
    for f in fields(NetworkModel):
        left, right = getattr(a, f.name), getattr(b, f.name)
        if not isinstance(left, tuple):
            assert left == pytest.approx(right, rel=rel) if isinstance(left, float) else left == right, f.name
            continue
        assert len(left) == len(right), f.name
        for x, y in zip(left, right, strict=True):
            for g in fields(x):
                u, v = getattr(x, g.name), getattr(y, g.name)
                if isinstance(u, float) and isinstance(v, float):
                    assert math.isclose(u, v, rel_tol=rel), (f.name, x.name, g.name, u, v)
                else:
                    assert u == v, (f.name, x.name, g.name, u, v)


def check_roundtrip(net: pp.pandapowerNet, name: str) -> NetworkModel:
    model = network_from_pandapower(net, name=name)
    copy = network_to_pandapower(model)
    # the model survives a second pass unchanged, names included
    assert network_from_pandapower(copy, name=name) == model
    assert sorted(copy.bus.name) == sorted(net.bus.name)
    assert len(copy.line) == len(net.line)
    assert len(copy.switch) == len(net.switch)
    assert_same_power_flow(net, copy)
    return model


def test_mv_grid_round_trip_keeps_ac_power_flow(mv_net: pp.pandapowerNet) -> None:
    model = check_roundtrip(mv_net, MV)
    assert len(model.buses) == len(mv_net.bus)
    assert {b.name for b in model.buses} == set(mv_net.bus.name)


def test_lv_grid_round_trip_keeps_ac_power_flow(lv_net: pp.pandapowerNet) -> None:
    model = check_roundtrip(lv_net, LV)
    assert len(model.loads) == len(lv_net.load)


@pytest.mark.slow
def test_mvlv_semiurban_grid_round_trip_keeps_ac_power_flow() -> None:
    net = simbench_net(MVLV)
    model = check_roundtrip(net, MVLV)
    assert len(model.buses) > 9000
    assert len(model.feeders) == 9
    # every MV/LV transformer's LV side belongs to the MV feeder that supplies its HV side
    bus_feeder = dict(assign_feeders(model).bus_feeder)
    for t in model.transformers:
        if bus_feeder[t.hv_bus] is not None:
            assert bus_feeder[t.lv_bus] == bus_feeder[t.hv_bus], t.name
    # every bus with a load is a connection point, named after the bus, with a feeder
    load_buses = {ld.bus for ld in model.loads}
    assert {cp.name for cp in model.connection_points} == load_buses
    lv_points = [cp for cp in model.connection_points if cp.bus.startswith("LV")]
    assert lv_points
    assert all(cp.feeder is not None for cp in lv_points)


def test_mv_feeders_match_simbench_feeder_labels(mv_net: pp.pandapowerNet) -> None:
    model = network_from_pandapower(mv_net, name=MV)
    assignment = assign_feeders(model)
    assert assignment.main_busbar == ("MV2.101 busbar1.1", "MV2.101 busbar1.2")
    pairs = set()
    for bus in model.buses:
        label = re.search(r"Feeder\d+", bus.subnet or "")
        if label:
            pairs.add((label.group(0), assignment.bus_feeder[bus.name]))
    # SimBench's Feeder1..Feeder9 labels map one-to-one onto the branches leaving the busbar
    assert len(pairs) == 9
    assert len({f for _, f in pairs}) == 9
    assert None not in {f for _, f in pairs}


def test_lv_grid_feeders_leave_the_lv_busbar(lv_net: pp.pandapowerNet) -> None:
    model = network_from_pandapower(lv_net, name=LV)
    trafo = model.transformers[0]
    assert {f.head_bus for f in model.feeders} == {trafo.lv_bus}
    assert all(cp.feeder is not None for cp in model.connection_points)


def test_pandapower_json_file_round_trip(mv_net: pp.pandapowerNet, tmp_path: Path) -> None:
    model = network_from_pandapower(mv_net, name="mv")
    path = tmp_path / "mv.json"
    pp.to_json(network_to_pandapower(model), str(path))
    again = import_network(str(path), name="mv")
    # pandapower's JSON keeps floats to about 15 significant digits, so compare numbers with a tolerance
    assert_models_close(again, model)
    assert import_network(str(path)).name == "mv"  # named after the file stem by default


def test_import_does_not_modify_the_source_net(lv_net: pp.pandapowerNet) -> None:
    before = lv_net.bus.copy(), lv_net.line.copy(), lv_net.switch.copy()
    network_from_pandapower(lv_net, name="lv")
    pd.testing.assert_frame_equal(lv_net.bus, before[0])
    pd.testing.assert_frame_equal(lv_net.line, before[1])
    pd.testing.assert_frame_equal(lv_net.switch, before[2])


def test_open_switches_survive_the_round_trip(mv_net: pp.pandapowerNet) -> None:
    model = network_from_pandapower(mv_net, name=MV)
    open_switches = [s.name for s in model.switches if not s.closed]
    assert len(open_switches) == int((~mv_net.switch.closed).sum()) > 0
    copy = network_to_pandapower(model)
    assert sorted(copy.switch.name[~copy.switch.closed]) == sorted(open_switches)
    assert {s.element_kind for s in model.switches} == {
        SwitchElement.BUS,
        SwitchElement.LINE,
        SwitchElement.TRANSFORMER,
    }


# --- bad input ------------------------------------------------------------------------------------------


def test_unknown_simbench_code_is_rejected_with_a_hint() -> None:
    with pytest.raises(ValidationFailed) as exc:
        load_pandapower_source("simbench:1-MV-semiurb--0-sx")
    assert exc.value.code == "network.unknown_simbench_code"
    assert exc.value.field == "source"
    assert "collect_all_simbench_codes" in exc.value.message
    assert "1-MV-semiurb--0-sw" in exc.value.details["suggestions"]


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as exc:
        load_pandapower_source(str(tmp_path / "nowhere.json"))
    assert (exc.value.code, exc.value.field) == ("network.source_not_found", "source")


def test_unreadable_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{ this is not json")
    with pytest.raises(ValidationFailed) as exc:
        load_pandapower_source(str(path))
    assert (exc.value.code, exc.value.field) == ("network.source_unreadable", "source")


def small_net() -> pp.pandapowerNet:
    net = pp.create_empty_network()
    hv = pp.create_bus(net, 20.0, name="grid bus")
    a = pp.create_bus(net, 0.4, name="LV busbar")
    b = pp.create_bus(net, 0.4, name="house")
    pp.create_ext_grid(net, hv, vm_pu=1.0, name="grid")
    pp.create_transformer(net, hv, a, "0.4 MVA 20/0.4 kV", name="station")
    pp.create_line(net, a, b, 0.1, "NAYY 4x50 SE", name="cable")
    pp.create_load(net, b, p_mw=0.01, name="load")
    return net


def test_network_with_an_isolated_bus_is_rejected_naming_it() -> None:
    net = small_net()
    island = pp.create_bus(net, 0.4, name="island bus")
    other = pp.create_bus(net, 0.4, name="island neighbour")
    pp.create_line(net, island, other, 0.1, "NAYY 4x50 SE", name="island cable")
    with pytest.raises(ValidationFailed) as exc:
        network_from_pandapower(net, name="small")
    assert exc.value.code == "network.unreachable_bus"
    assert "'island bus'" in exc.value.message
    assert "'island neighbour'" in exc.value.message
    assert "'grid bus'" in exc.value.message  # the slack bus


def test_small_pandapower_net_round_trip_keeps_ac_power_flow() -> None:
    net = small_net()
    model = check_roundtrip(net, "small")
    assert [f.name for f in model.feeders] == ["cable"]
    assert [(cp.name, cp.feeder) for cp in model.connection_points] == [("house", "cable")]


def test_unnamed_elements_get_generated_names() -> None:
    net = small_net()
    pp.create_load(net, 2, p_mw=0.002)
    model = network_from_pandapower(net, name="small")
    assert model.loads[-1].name == "load 1"


def test_unsupported_elements_are_refused_not_dropped() -> None:
    net = small_net()
    pp.create_shunt(net, 1, q_mvar=0.01)
    with pytest.raises(ValidationFailed) as exc:
        network_from_pandapower(net, name="small")
    assert exc.value.code == "network.unsupported_element"
    assert "shunt (1)" in exc.value.message


def test_negative_line_rating_in_a_pandapower_net_is_rejected() -> None:
    net = small_net()
    net.line.loc[0, "max_i_ka"] = -0.1
    with pytest.raises(ValidationFailed) as exc:
        network_from_pandapower(net, name="small")
    assert (exc.value.code, exc.value.field) == ("network.rating_not_positive", "lines.max_i_ka")
    assert "'cable'" in exc.value.message
