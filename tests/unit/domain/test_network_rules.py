"""Rules of the network model on small hand-built networks: validation, feeders, connection points."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.network import (
    BranchKind,
    Bus,
    ConnectionPoint,
    ExternalGrid,
    Feeder,
    Line,
    Load,
    NetworkModel,
    Phase,
    Switch,
    SwitchElement,
    Transformer,
    assign_feeders,
    derive_connection_points,
    unreachable_buses,
    validate_network,
    with_topology,
)


def line(name: str, a: str, b: str, **kw: object) -> Line:
    values: dict[str, object] = {
        "length_km": 0.5,
        "r_ohm_per_km": 0.2,
        "x_ohm_per_km": 0.1,
        "c_nf_per_km": 200.0,
        "max_i_ka": 0.25,
    }
    values.update(kw)
    return Line(name, a, b, **values)  # type: ignore[arg-type]


def trafo(name: str, hv: str, lv: str, vn_hv_kv: float = 110.0, vn_lv_kv: float = 20.0) -> Transformer:
    return Transformer(
        name, hv, lv, sn_mva=40.0, vn_hv_kv=vn_hv_kv, vn_lv_kv=vn_lv_kv, vk_percent=16.0, vkr_percent=0.3
    )


def mv_network() -> NetworkModel:
    """HV slack -> HV/MV transformer -> busbar BB with two radial feeders and a busbar load.

    Feeder L1: BB - A1 - A2; feeder L3: BB - B1 - B2; an open loop line L5 between A2 and B2.
    """
    return NetworkModel(
        name="mv",
        buses=(
            Bus("HV", 110.0),
            Bus("BB", 20.0),
            Bus("A1", 20.0),
            Bus("A2", 20.0),
            Bus("B1", 20.0),
            Bus("B2", 20.0),
        ),
        lines=(
            line("L1", "BB", "A1"),
            line("L2", "A1", "A2"),
            line("L3", "BB", "B1"),
            line("L4", "B1", "B2"),
            line("L5", "A2", "B2"),
        ),
        transformers=(trafo("T1", "HV", "BB"),),
        switches=(
            Switch("S1", "BB", SwitchElement.LINE, "L1"),
            Switch("S3", "BB", SwitchElement.LINE, "L3"),
            Switch("S5", "B2", SwitchElement.LINE, "L5", closed=False),
        ),
        ext_grids=(ExternalGrid("grid", "HV", vm_pu=1.02),),
        loads=(
            Load("load A2", "A2", p_mw=0.2, sn_mva=0.25),
            Load("load A2 bis", "A2", p_mw=0.1),
            Load("load B2", "B2", p_mw=0.3),
            Load("load BB", "BB", p_mw=1.0),
        ),
    )


def rule_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> tuple[str, str | None]:
    return exc.value.code, exc.value.field


# --- a valid network ------------------------------------------------------------------------------------


def test_valid_network_passes_and_gets_feeders_and_connection_points() -> None:
    model = with_topology(mv_network())
    assert [f.name for f in model.feeders] == ["L1", "L3"]
    assert model.feeders[0] == Feeder("L1", head_bus="BB", branch="L1", branch_kind=BranchKind.LINE)
    # one connection point per bus with a load (two loads at A2 give one point), named after the bus
    assert model.connection_points == (
        ConnectionPoint("BB", "BB", None, Phase.ABC),
        ConnectionPoint("A2", "A2", "L1", Phase.ABC),
        ConnectionPoint("B2", "B2", "L3", Phase.ABC),
    )
    validate_network(model)


def test_feeder_of_every_bus_follows_the_branch_leaving_the_main_busbar() -> None:
    assignment = assign_feeders(mv_network())
    assert assignment.main_busbar == ("BB",)
    assert dict(assignment.bus_feeder) == {
        "HV": None,
        "BB": None,
        "A1": "L1",
        "A2": "L1",
        "B1": "L3",
        "B2": "L3",
    }


def test_busbar_sections_joined_by_a_coupler_form_one_main_busbar() -> None:
    base = mv_network()
    model = replace(
        base,
        buses=(*base.buses, Bus("BB2", 20.0), Bus("C1", 20.0)),
        lines=(*base.lines, line("L6", "BB2", "C1")),
        switches=(*base.switches, Switch("coupler", "BB", SwitchElement.BUS, "BB2")),
    )
    assignment = assign_feeders(model)
    assert assignment.main_busbar == ("BB", "BB2")
    assert [(f.name, f.head_bus) for f in assignment.feeders] == [("L1", "BB"), ("L3", "BB"), ("L6", "BB2")]
    assert assignment.bus_feeder["C1"] == "L6"


def test_open_coupler_leaves_the_section_unsupplied() -> None:
    base = mv_network()
    model = replace(
        base,
        buses=(*base.buses, Bus("BB2", 20.0), Bus("C1", 20.0)),
        lines=(*base.lines, line("L6", "BB2", "C1")),
        switches=(*base.switches, Switch("coupler", "BB", SwitchElement.BUS, "BB2", closed=False)),
    )
    assert unreachable_buses(model) == ("BB2", "C1")


def test_slack_directly_on_the_distribution_busbar() -> None:
    model = NetworkModel(
        name="no trafo",
        buses=(Bus("BB", 20.0), Bus("A", 20.0), Bus("B", 20.0)),
        lines=(line("LA", "BB", "A"), line("LB", "BB", "B")),
        ext_grids=(ExternalGrid("grid", "BB"),),
        loads=(Load("a", "A", 0.1), Load("b", "B", 0.1)),
    )
    assignment = assign_feeders(model)
    assert assignment.main_busbar == ("BB",)
    assert dict(assignment.bus_feeder) == {"BB": None, "A": "LA", "B": "LB"}


def test_lv_network_below_an_mv_feeder_belongs_to_that_feeder() -> None:
    base = mv_network()
    model = replace(
        base,
        buses=(*base.buses, Bus("LV busbar", 0.4), Bus("LV 1", 0.4)),
        lines=(*base.lines, line("LV line", "LV busbar", "LV 1")),
        transformers=(*base.transformers, trafo("MV/LV", "A1", "LV busbar", 20.0, 0.4)),
        loads=(*base.loads, Load("house", "LV 1", 0.005)),
    )
    full = with_topology(model)
    assert [f.name for f in full.feeders] == ["L1", "L3"]  # the MV/LV transformer is not a feeder
    assert ConnectionPoint("LV 1", "LV 1", "L1") in full.connection_points


def test_transformer_on_the_busbar_is_a_feeder_of_its_own() -> None:
    base = mv_network()
    model = replace(
        base,
        buses=(*base.buses, Bus("LV busbar", 0.4)),
        transformers=(*base.transformers, trafo("station", "BB", "LV busbar", 20.0, 0.4)),
    )
    assignment = assign_feeders(model)
    assert assignment.feeders[-1] == Feeder(
        "station", head_bus="BB", branch="station", branch_kind=BranchKind.TRANSFORMER
    )
    assert assignment.bus_feeder["LV busbar"] == "station"


def test_closed_loop_between_feeders_assigns_each_bus_to_the_nearest_feeder() -> None:
    base = mv_network()
    closed = replace(base, switches=tuple(replace(s, closed=True) for s in base.switches))
    assignment = assign_feeders(closed)
    # with the loop closed, A2 is one branch from L1's far end A1 but two from L3's far end B1
    assert assignment.bus_feeder["A2"] == "L1"
    assert assignment.bus_feeder["B2"] == "L3"


def test_a_tie_between_feeders_goes_to_the_feeder_listed_first() -> None:
    base = mv_network()
    model = replace(
        base,
        buses=(*base.buses, Bus("M", 20.0)),
        lines=(*base.lines, line("L7", "B1", "M"), line("L8", "A1", "M")),
    )
    # M is one branch from both A1 (feeder L1) and B1 (feeder L3); L1 comes first in the model
    assert assign_feeders(model).bus_feeder["M"] == "L1"
    reordered = replace(model, lines=(model.lines[2], *model.lines[:2], *model.lines[3:]))
    assert [f.name for f in assign_feeders(reordered).feeders] == ["L3", "L1"]
    assert assign_feeders(reordered).bus_feeder["M"] == "L3"


def test_out_of_service_branch_moves_buses_to_the_other_feeder_when_the_loop_is_closed() -> None:
    base = mv_network()
    model = replace(
        base,
        lines=tuple(replace(ln, in_service=False) if ln.name == "L2" else ln for ln in base.lines),
        switches=tuple(replace(s, closed=True) for s in base.switches),
    )
    assert assign_feeders(model).bus_feeder["A2"] == "L3"


def test_derive_connection_points_uses_the_given_feeders() -> None:
    model = mv_network()
    points = derive_connection_points(model, {"A2": "X", "B2": None})
    assert [(p.name, p.feeder) for p in points] == [("BB", None), ("A2", "X"), ("B2", None)]


def test_with_topology_replaces_stale_feeders_and_points() -> None:
    stale = replace(
        mv_network(),
        feeders=(Feeder("old", "BB", "L1"),),
        connection_points=(ConnectionPoint("A2", "A2", "old"),),
    )
    fresh = with_topology(stale)
    assert [f.name for f in fresh.feeders] == ["L1", "L3"]
    assert {p.feeder for p in fresh.connection_points} == {None, "L1", "L3"}


# --- validation rules -----------------------------------------------------------------------------------


def test_duplicate_bus_names_are_rejected() -> None:
    base = mv_network()
    model = replace(base, buses=(*base.buses, Bus("A1", 20.0)))
    with pytest.raises(ValidationFailed, match="duplicated: 'A1'") as exc:
        validate_network(model)
    assert rule_of(exc) == ("network.duplicate_name", "buses.name")


def test_duplicate_line_names_are_rejected() -> None:
    base = mv_network()
    model = replace(base, lines=(*base.lines, line("L2", "A1", "B1")))
    with pytest.raises(ValidationFailed) as exc:
        validate_network(model)
    assert rule_of(exc) == ("network.duplicate_name", "lines.name")


def test_empty_name_is_rejected() -> None:
    base = mv_network()
    model = replace(base, loads=(*base.loads, Load(" ", "A1", 0.1)))
    with pytest.raises(ValidationFailed) as exc:
        validate_network(model)
    assert rule_of(exc) == ("network.empty_name", "loads.name")


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        (
            lambda m: replace(m, buses=(replace(m.buses[0], vn_kv=0.0), *m.buses[1:])),
            "rating_not_positive",
            "buses.vn_kv",
        ),
        (
            lambda m: replace(m, lines=(replace(m.lines[0], max_i_ka=-0.1), *m.lines[1:])),
            "rating_not_positive",
            "lines.max_i_ka",
        ),
        (
            lambda m: replace(m, lines=(replace(m.lines[0], length_km=0.0), *m.lines[1:])),
            "rating_not_positive",
            "lines.length_km",
        ),
        (
            lambda m: replace(m, transformers=(replace(m.transformers[0], sn_mva=0.0),)),
            "rating_not_positive",
            "transformers.sn_mva",
        ),
        (
            lambda m: replace(m, transformers=(replace(m.transformers[0], vk_percent=-1.0),)),
            "rating_not_positive",
            "transformers.vk_percent",
        ),
        (
            lambda m: replace(m, ext_grids=(replace(m.ext_grids[0], vm_pu=0.0),)),
            "rating_not_positive",
            "ext_grids.vm_pu",
        ),
        (
            lambda m: replace(m, lines=(replace(m.lines[0], r_ohm_per_km=-0.2), *m.lines[1:])),
            "value_negative",
            "lines.r_ohm_per_km",
        ),
        (
            lambda m: replace(m, loads=(replace(m.loads[0], sn_mva=-0.1), *m.loads[1:])),
            "value_negative",
            "loads.sn_mva",
        ),
        (
            lambda m: replace(m, loads=(replace(m.loads[0], p_mw=math.nan), *m.loads[1:])),
            "value_not_finite",
            "loads.p_mw",
        ),
        (
            lambda m: replace(m, lines=(replace(m.lines[0], x_ohm_per_km=math.inf), *m.lines[1:])),
            "value_not_finite",
            "lines.x_ohm_per_km",
        ),
        (
            lambda m: replace(m, transformers=(replace(m.transformers[0], vkr_percent=20.0),)),
            "value_invalid",
            "transformers.vkr_percent",
        ),
        (
            lambda m: replace(m, transformers=(replace(m.transformers[0], tap_min=-2, tap_max=2, tap_pos=3),)),
            "value_invalid",
            "transformers.tap_pos",
        ),
        (
            lambda m: replace(m, lines=(replace(m.lines[0], r_ohm_per_km=0.0, x_ohm_per_km=0.0), *m.lines[1:])),
            "value_invalid",
            "lines.r_ohm_per_km",
        ),
        (lambda m: replace(m, lines=(replace(m.lines[0], to_bus="BB"), *m.lines[1:])), "value_invalid", "lines.to_bus"),
        (lambda m: replace(m, f_hz=0.0), "rating_not_positive", "f_hz"),
    ],
)
def test_bad_quantities_are_rejected_naming_field_and_rule(change: object, code: str, field: str) -> None:
    model = change(mv_network())  # type: ignore[operator]
    with pytest.raises(ValidationFailed) as exc:
        validate_network(model)
    assert rule_of(exc) == (f"network.{code}", field)


def test_negative_rating_message_names_the_element_and_the_value() -> None:
    base = mv_network()
    model = replace(base, lines=(base.lines[0], replace(base.lines[1], max_i_ka=-0.3), *base.lines[2:]))
    with pytest.raises(ValidationFailed) as exc:
        validate_network(model)
    assert "'L2'" in exc.value.message
    assert "-0.3" in exc.value.message
    assert exc.value.details["offenders"] == ["L2"]


@pytest.mark.parametrize(
    ("change", "field", "offender"),
    [
        (lambda m: replace(m, lines=(*m.lines, line("L9", "A1", "nowhere"))), "lines.to_bus", "L9 -> nowhere"),
        (lambda m: replace(m, transformers=(trafo("T9", "ghost", "BB"),)), "transformers.hv_bus", "T9 -> ghost"),
        (lambda m: replace(m, loads=(*m.loads, Load("lost", "ghost", 0.1))), "loads.bus", "lost -> ghost"),
        (
            lambda m: replace(m, switches=(*m.switches, Switch("S9", "A1", SwitchElement.LINE, "L99"))),
            "switches.element",
            "S9 -> L99",
        ),
        (
            lambda m: replace(m, switches=(*m.switches, Switch("S9", "A1", SwitchElement.BUS, "ghost"))),
            "switches.element",
            "S9 -> ghost",
        ),
        (
            lambda m: replace(m, switches=(*m.switches, Switch("S9", "B2", SwitchElement.LINE, "L1"))),
            "switches.bus",
            "S9 -> L1",
        ),
        (lambda m: replace(m, ext_grids=(ExternalGrid("grid", "ghost"),)), "ext_grids.bus", "grid -> ghost"),
        (lambda m: replace(m, feeders=(Feeder("F", "BB", "L99"),)), "feeders.branch", "F -> L99"),
        (
            lambda m: replace(m, connection_points=(ConnectionPoint("A2", "A2", "F9"),)),
            "connection_points.feeder",
            "A2 -> F9",
        ),
    ],
)
def test_dangling_references_are_rejected(change: object, field: str, offender: str) -> None:
    model = change(mv_network())  # type: ignore[operator]
    with pytest.raises(ValidationFailed) as exc:
        validate_network(model)
    assert rule_of(exc) == ("network.dangling_reference", field)
    assert offender in exc.value.details["offenders"]


def test_network_without_in_service_slack_is_rejected() -> None:
    base = mv_network()
    model = replace(base, ext_grids=(replace(base.ext_grids[0], in_service=False),))
    with pytest.raises(ValidationFailed) as exc:
        validate_network(model)
    assert rule_of(exc) == ("network.no_slack", "ext_grids")


def test_buses_without_path_to_the_slack_are_rejected_naming_the_first_few() -> None:
    base = mv_network()
    islands = tuple(Bus(f"island {i}", 20.0) for i in range(8))
    model = replace(
        base,
        buses=(*base.buses, *islands),
        lines=(*base.lines, line("island line", "island 0", "island 1")),
    )
    with pytest.raises(ValidationFailed) as exc:
        validate_network(model)
    assert rule_of(exc) == ("network.unreachable_bus", "buses")
    message = exc.value.message
    assert "8 in-service bus(es)" in message
    assert "'island 0', 'island 1', 'island 2', 'island 3', 'island 4' and 3 more" in message
    assert "'HV'" in message  # names the slack bus
    assert exc.value.details["count"] == 8


def test_bus_cut_off_by_an_open_switch_is_unreachable() -> None:
    base = mv_network()
    model = replace(base, switches=(*base.switches, Switch("S4", "B2", SwitchElement.LINE, "L4", closed=False)))
    assert unreachable_buses(model) == ("B2",)
    with pytest.raises(ValidationFailed, match="'B2'"):
        validate_network(model)


def test_out_of_service_isolated_bus_is_accepted() -> None:
    base = mv_network()
    model = replace(base, buses=(*base.buses, Bus("spare", 20.0, in_service=False)))
    validate_network(model)
    assert assign_feeders(model).bus_feeder["spare"] is None


def test_bus_behind_an_out_of_service_transformer_is_unreachable() -> None:
    base = mv_network()
    model = replace(base, transformers=(replace(base.transformers[0], in_service=False),))
    assert unreachable_buses(model) == ("BB", "A1", "A2", "B1", "B2")


# --- properties and scale -------------------------------------------------------------------------------


def radial(parents: list[int]) -> NetworkModel:
    """Busbar bus 0 below an HV slack; bus i > 0 hangs off bus parents[i - 1] by line 'L<i>'."""
    n = len(parents) + 1
    return NetworkModel(
        name="radial",
        buses=(Bus("HV", 110.0), *(Bus(f"N{i}", 20.0) for i in range(n))),
        lines=tuple(line(f"L{i}", f"N{p}", f"N{i}") for i, p in enumerate(parents, start=1)),
        transformers=(trafo("T", "HV", "N0"),),
        ext_grids=(ExternalGrid("grid", "HV"),),
        loads=tuple(Load(f"load {i}", f"N{i}", 0.01) for i in range(n)),
    )


@st.composite
def trees(draw: st.DrawFn) -> list[int]:
    size = draw(st.integers(min_value=1, max_value=60))
    return [draw(st.integers(min_value=0, max_value=i - 1)) for i in range(1, size + 1)]


@settings(max_examples=60, deadline=None)
@given(trees())
def test_in_a_radial_network_each_bus_belongs_to_the_busbar_child_on_its_path(parents: list[int]) -> None:
    model = with_topology(radial(parents))

    def root_child(i: int) -> int:
        while parents[i - 1] != 0:
            i = parents[i - 1]
        return i

    expected = {f"N{i}": f"L{root_child(i)}" for i in range(1, len(parents) + 1)}
    cps = {p.bus: p.feeder for p in model.connection_points}
    assert cps == {"N0": None, **expected}
    assert {f.name for f in model.feeders} == {f"L{i}" for i, p in enumerate(parents, start=1) if p == 0}


def test_ten_thousand_buses_on_ten_long_feeders_validate_and_assign() -> None:
    """Deep feeders (999 buses in series) go through the iterative walk without recursion limits; how fast is
    the network-import benchmark's business, not a test's."""
    n = 10_000
    parents = [0 if i <= 10 else i - 10 for i in range(1, n)]  # ten long feeders
    model = radial(parents)
    full = with_topology(model)
    assert len(full.feeders) == 10
    assert len(full.connection_points) == n
    cps = {p.bus: p.feeder for p in full.connection_points}
    assert cps[f"N{n - 1}"] == f"L{(n - 1 - 1) % 10 + 1}"
