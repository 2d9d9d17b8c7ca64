"""The consolidated network model of one T-D interface, and the pure rules on it.

A :class:`NetworkModel` is everything an AC power flow of the local distribution area needs: buses, lines,
two-winding transformers, switches, the external grid (the slack at the T-D interface), and the forecast
elements (loads, static generators, storages). It also carries two derived views that the platform works
with: **feeders** and **connection points**.

Every element is identified by its ``name``, unique within its element type; references between elements
are by name (a line's ``from_bus`` is a bus name). SimBench names are kept as they are: they are the key
the envelope CSV files and the DER registry use.

Pure rules here (no I/O):

- :func:`validate_network` raises :class:`~gridbridge.domain.errors.ValidationFailed` with a stable
  ``network.*`` code naming the field, the rule and the first offending elements.
- :func:`assign_feeders` and :func:`derive_connection_points` compute the feeder of every bus and the
  connection points; :func:`with_topology` returns the model with both filled in.
- :func:`unreachable_buses` lists the in-service buses with no energised path to the slack.

The graph work runs on ``scipy.sparse.csgraph`` over integer arrays, so a 10,000-bus network takes
milliseconds.

Units are in the names (``vn_kv``, ``r_ohm_per_km``, ``max_i_ka``, ``sn_mva``). Loads use the consumer
sign convention (positive ``p_mw`` is consumption), static generators the generator convention (positive
``p_mw`` is injection), and storages pandapower's consumer convention (positive ``p_mw`` is charging).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from gridbridge.domain.errors import ValidationFailed, register_code

# --- stable error codes ---------------------------------------------------------------------------------

EMPTY_NAME = register_code("network.empty_name", 422, "A network element has an empty name")
DUPLICATE_NAME = register_code("network.duplicate_name", 422, "Two network elements of one type share a name")
VALUE_NOT_FINITE = register_code("network.value_not_finite", 422, "A network quantity is NaN or infinite")
RATING_NOT_POSITIVE = register_code(
    "network.rating_not_positive", 422, "A network rating or size must be greater than zero"
)
VALUE_NEGATIVE = register_code("network.value_negative", 422, "A network quantity must not be negative")
VALUE_INVALID = register_code("network.value_invalid", 422, "A network quantity is outside its allowed range or set")
DANGLING_REFERENCE = register_code(
    "network.dangling_reference", 422, "A network element refers to an element that does not exist"
)
NO_SLACK = register_code(
    "network.no_slack", 422, "The network has no in-service external grid (slack) at the T-D interface"
)
UNREACHABLE_BUS = register_code(
    "network.unreachable_bus",
    422,
    "In-service buses have no energised path to the T-D interface's slack bus",
)
UNKNOWN_SIMBENCH_CODE = register_code(
    "network.unknown_simbench_code", 422, "The SimBench code is not one SimBench ships"
)
SOURCE_NOT_FOUND = register_code(
    "network.source_not_found", 422, "The network source is neither a SimBench code nor an existing file"
)
SOURCE_UNREADABLE = register_code(
    "network.source_unreadable", 422, "The network source file cannot be read as a pandapower network"
)
UNSUPPORTED_ELEMENT = register_code(
    "network.unsupported_element",
    422,
    "The network holds an element type or option the network model does not support",
)
NETWORK_EXISTS = register_code(
    "network.already_exists", 409, "The T-D interface already has a network model; replace it explicitly"
)
CONNECTION_POINT_IN_USE = register_code(
    "network.connection_point_in_use",
    409,
    "A connection point that would be removed is still referenced (e.g. by a DER)",
)

#: How many offending elements an error message names before saying "and N more".
MAX_NAMED = 5


# --- value types ----------------------------------------------------------------------------------------


class SwitchElement(StrEnum):
    """What a switch connects its bus to (pandapower's ``et``)."""

    BUS = "b"
    LINE = "l"
    TRANSFORMER = "t"


class BranchKind(StrEnum):
    """The kind of branch that leaves the substation's main busbar at the head of a feeder."""

    LINE = "line"
    TRANSFORMER = "transformer"


class Phase(StrEnum):
    """Phase(s) a connection point is connected to; SimBench and pandapower balanced networks are ``abc``."""

    ABC = "abc"
    A = "a"
    B = "b"
    C = "c"


@dataclass(frozen=True, slots=True)
class Bus:
    """A node. ``subnet`` is SimBench's grid/feeder label; ``geo`` is GeoJSON text where known."""

    name: str
    vn_kv: float
    in_service: bool = True
    bus_type: str = "b"
    zone: str | None = None
    subnet: str | None = None
    min_vm_pu: float | None = None
    max_vm_pu: float | None = None
    geo: str | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """A line or cable (pi model). Thermal rating is ``max_i_ka * df * parallel``."""

    name: str
    from_bus: str
    to_bus: str
    length_km: float
    r_ohm_per_km: float
    x_ohm_per_km: float
    c_nf_per_km: float
    max_i_ka: float
    g_us_per_km: float = 0.0
    parallel: int = 1
    df: float = 1.0
    in_service: bool = True
    max_loading_percent: float | None = None
    std_type: str | None = None
    subnet: str | None = None


@dataclass(frozen=True, slots=True)
class Transformer:
    """A two-winding transformer with optional tap changer (pandapower's parameters and meaning)."""

    name: str
    hv_bus: str
    lv_bus: str
    sn_mva: float
    vn_hv_kv: float
    vn_lv_kv: float
    vk_percent: float
    vkr_percent: float
    pfe_kw: float = 0.0
    i0_percent: float = 0.0
    shift_degree: float = 0.0
    tap_side: str | None = None
    tap_neutral: float | None = None
    tap_min: float | None = None
    tap_max: float | None = None
    tap_step_percent: float | None = None
    tap_step_degree: float | None = None
    tap_pos: float | None = None
    tap_changer_type: str | None = None
    parallel: int = 1
    df: float = 1.0
    in_service: bool = True
    max_loading_percent: float | None = None
    std_type: str | None = None
    vector_group: str | None = None
    subnet: str | None = None


@dataclass(frozen=True, slots=True)
class Switch:
    """A switch at ``bus``: to another bus (``element`` is a bus name), or at one end of a line or
    transformer (``element`` is the line or transformer name). An open line/transformer switch
    disconnects that end of the branch."""

    name: str
    bus: str
    element_kind: SwitchElement
    element: str
    closed: bool = True
    switch_type: str | None = None
    z_ohm: float = 0.0
    in_ka: float | None = None


@dataclass(frozen=True, slots=True)
class ExternalGrid:
    """The slack at the T-D interface: the transmission system seen from the distribution area."""

    name: str
    bus: str
    vm_pu: float = 1.0
    va_degree: float = 0.0
    in_service: bool = True


@dataclass(frozen=True, slots=True)
class Load:
    """A forecast load (consumer convention: positive ``p_mw`` is consumption). ``profile`` names the
    SimBench load profile where there is one."""

    name: str
    bus: str
    p_mw: float
    q_mvar: float = 0.0
    sn_mva: float | None = None
    scaling: float = 1.0
    const_z_p_percent: float = 0.0
    const_i_p_percent: float = 0.0
    const_z_q_percent: float = 0.0
    const_i_q_percent: float = 0.0
    in_service: bool = True
    profile: str | None = None
    subnet: str | None = None


@dataclass(frozen=True, slots=True)
class StaticGenerator:
    """A forecast static generator, e.g. PV or wind (generator convention: positive ``p_mw`` is
    injection). ``kind`` is pandapower's/SimBench's ``type`` (``PV``, ``Wind_MV``, ...)."""

    name: str
    bus: str
    p_mw: float
    q_mvar: float = 0.0
    sn_mva: float | None = None
    scaling: float = 1.0
    in_service: bool = True
    kind: str | None = None
    profile: str | None = None
    subnet: str | None = None


@dataclass(frozen=True, slots=True)
class Storage:
    """A forecast storage unit (pandapower's consumer convention: positive ``p_mw`` is charging)."""

    name: str
    bus: str
    p_mw: float
    q_mvar: float = 0.0
    sn_mva: float | None = None
    max_e_mwh: float | None = None
    min_e_mwh: float = 0.0
    soc_percent: float | None = None
    scaling: float = 1.0
    in_service: bool = True
    kind: str | None = None
    profile: str | None = None
    subnet: str | None = None


@dataclass(frozen=True, slots=True)
class Feeder:
    """A feeder: the part of the network supplied through one branch leaving the substation's main
    busbar. ``head_bus`` is the busbar bus the branch leaves from; ``branch`` names that branch."""

    name: str
    head_bus: str
    branch: str
    branch_kind: BranchKind = BranchKind.LINE


@dataclass(frozen=True, slots=True)
class ConnectionPoint:
    """Where a customer or DER connects: a bus (and phase) below one feeder. Named after its bus.
    ``feeder`` is None for a point on the substation busbar itself or upstream of it."""

    name: str
    bus: str
    feeder: str | None
    phase: Phase = Phase.ABC


@dataclass(frozen=True, slots=True)
class NetworkModel:
    """The consolidated network model of one T-D interface (see the module docstring)."""

    name: str
    buses: tuple[Bus, ...]
    lines: tuple[Line, ...] = ()
    transformers: tuple[Transformer, ...] = ()
    switches: tuple[Switch, ...] = ()
    ext_grids: tuple[ExternalGrid, ...] = ()
    loads: tuple[Load, ...] = ()
    sgens: tuple[StaticGenerator, ...] = ()
    storages: tuple[Storage, ...] = ()
    feeders: tuple[Feeder, ...] = ()
    connection_points: tuple[ConnectionPoint, ...] = ()
    f_hz: float = 50.0
    sn_mva: float = 1.0


@dataclass(frozen=True)
class FeederAssignment:
    """Result of :func:`assign_feeders`.

    ``main_busbar`` lists the buses of the substation's main busbar, ``feeders`` one entry per branch
    leaving it, and ``bus_feeder`` maps every bus name to its feeder's name (None for buses on the main
    busbar, upstream of it, or not energised).
    """

    main_busbar: tuple[str, ...]
    feeders: tuple[Feeder, ...]
    bus_feeder: Mapping[str, str | None] = field(default_factory=dict)


# --- validation -----------------------------------------------------------------------------------------

_POSITIVE = "positive"
_NON_NEGATIVE = "non_negative"
_FINITE = "finite"

# (collection attribute, element label, numeric checks)
_NUMERIC_RULES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "buses",
        "bus",
        (("vn_kv", _POSITIVE), ("min_vm_pu", _POSITIVE), ("max_vm_pu", _POSITIVE)),
    ),
    (
        "lines",
        "line",
        (
            ("length_km", _POSITIVE),
            ("max_i_ka", _POSITIVE),
            ("parallel", _POSITIVE),
            ("df", _POSITIVE),
            ("r_ohm_per_km", _NON_NEGATIVE),
            ("x_ohm_per_km", _NON_NEGATIVE),
            ("c_nf_per_km", _NON_NEGATIVE),
            ("g_us_per_km", _NON_NEGATIVE),
            ("max_loading_percent", _POSITIVE),
        ),
    ),
    (
        "transformers",
        "transformer",
        (
            ("sn_mva", _POSITIVE),
            ("vn_hv_kv", _POSITIVE),
            ("vn_lv_kv", _POSITIVE),
            ("vk_percent", _POSITIVE),
            ("parallel", _POSITIVE),
            ("df", _POSITIVE),
            ("vkr_percent", _NON_NEGATIVE),
            ("pfe_kw", _NON_NEGATIVE),
            ("i0_percent", _NON_NEGATIVE),
            ("shift_degree", _FINITE),
            ("tap_neutral", _FINITE),
            ("tap_min", _FINITE),
            ("tap_max", _FINITE),
            ("tap_step_percent", _NON_NEGATIVE),
            ("tap_step_degree", _FINITE),
            ("tap_pos", _FINITE),
            ("max_loading_percent", _POSITIVE),
        ),
    ),
    ("switches", "switch", (("z_ohm", _NON_NEGATIVE), ("in_ka", _POSITIVE))),
    ("ext_grids", "external grid", (("vm_pu", _POSITIVE), ("va_degree", _FINITE))),
    (
        "loads",
        "load",
        (
            ("p_mw", _FINITE),
            ("q_mvar", _FINITE),
            ("sn_mva", _NON_NEGATIVE),
            ("scaling", _NON_NEGATIVE),
            ("const_z_p_percent", _FINITE),
            ("const_i_p_percent", _FINITE),
            ("const_z_q_percent", _FINITE),
            ("const_i_q_percent", _FINITE),
        ),
    ),
    (
        "sgens",
        "static generator",
        (("p_mw", _FINITE), ("q_mvar", _FINITE), ("sn_mva", _NON_NEGATIVE), ("scaling", _NON_NEGATIVE)),
    ),
    (
        "storages",
        "storage",
        (
            ("p_mw", _FINITE),
            ("q_mvar", _FINITE),
            ("sn_mva", _NON_NEGATIVE),
            ("max_e_mwh", _NON_NEGATIVE),
            ("min_e_mwh", _NON_NEGATIVE),
            ("soc_percent", _NON_NEGATIVE),
            ("scaling", _NON_NEGATIVE),
        ),
    ),
)

_NAMED_COLLECTIONS: tuple[tuple[str, str], ...] = (
    ("buses", "bus"),
    ("lines", "line"),
    ("transformers", "transformer"),
    ("switches", "switch"),
    ("ext_grids", "external grid"),
    ("loads", "load"),
    ("sgens", "static generator"),
    ("storages", "storage"),
    ("feeders", "feeder"),
    ("connection_points", "connection point"),
)


def _listing(names: Sequence[str]) -> str:
    """Quote the first ``MAX_NAMED`` names and say how many more there are."""
    shown = ", ".join(repr(n) for n in names[:MAX_NAMED])
    rest = len(names) - MAX_NAMED
    return f"{shown} and {rest} more" if rest > 0 else shown


def _fail(code: str, field_name: str, message: str, offenders: Sequence[str]) -> ValidationFailed:
    return ValidationFailed(
        message,
        code=code,
        field=field_name,
        details={"offenders": list(offenders[:50]), "count": len(offenders)},
    )


def _check_names(model: NetworkModel) -> None:
    for attr, label in _NAMED_COLLECTIONS:
        elements: tuple[Any, ...] = getattr(model, attr)
        empty = [str(i) for i, e in enumerate(elements) if not e.name or not e.name.strip()]
        if empty:
            raise _fail(
                EMPTY_NAME,
                f"{attr}.name",
                f"every {label} needs a non-empty name; positions {_listing(empty)} have none",
                empty,
            )
        seen: set[str] = set()
        dups: list[str] = []
        for e in elements:
            if e.name in seen and e.name not in dups:
                dups.append(e.name)
            seen.add(e.name)
        if dups:
            raise _fail(
                DUPLICATE_NAME,
                f"{attr}.name",
                f"{label} names must be unique within the network; duplicated: {_listing(dups)}",
                dups,
            )


def _check_numbers(model: NetworkModel) -> None:
    for attr, label, rules in _NUMERIC_RULES:
        elements: tuple[Any, ...] = getattr(model, attr)
        if not elements:
            continue
        for quantity, rule in rules:
            raw = [getattr(e, quantity) for e in elements]
            values = np.array([math.nan if v is None else float(v) for v in raw], dtype=float)
            present = np.array([v is not None for v in raw], dtype=bool)
            bad_finite = present & ~np.isfinite(values)
            where = f"{attr}.{quantity}"
            if bad_finite.any():
                names = [elements[i].name for i in np.flatnonzero(bad_finite)]
                raise _fail(
                    VALUE_NOT_FINITE,
                    where,
                    f"{label} {quantity} must be a finite number; NaN or infinite at {_listing(names)}",
                    names,
                )
            if rule == _POSITIVE:
                bad = present & (values <= 0)
                if bad.any():
                    names = [elements[i].name for i in np.flatnonzero(bad)]
                    raise _fail(
                        RATING_NOT_POSITIVE,
                        where,
                        f"{label} {quantity} must be greater than zero; "
                        f"not at {_listing(names)} (first value {values[bad][0]:g})",
                        names,
                    )
            elif rule == _NON_NEGATIVE:
                bad = present & (values < 0)
                if bad.any():
                    names = [elements[i].name for i in np.flatnonzero(bad)]
                    raise _fail(
                        VALUE_NEGATIVE,
                        where,
                        f"{label} {quantity} must not be negative; "
                        f"negative at {_listing(names)} (first value {values[bad][0]:g})",
                        names,
                    )
    if not (math.isfinite(model.f_hz) and model.f_hz > 0):
        raise _fail(RATING_NOT_POSITIVE, "f_hz", f"f_hz must be greater than zero (got {model.f_hz})", [])
    if not (math.isfinite(model.sn_mva) and model.sn_mva > 0):
        raise _fail(RATING_NOT_POSITIVE, "sn_mva", f"sn_mva must be greater than zero (got {model.sn_mva})", [])


def _check_consistency(model: NetworkModel) -> None:
    checks: tuple[tuple[str, str, Callable[[Any], bool], Sequence[Any]], ...] = (
        (
            "lines.r_ohm_per_km",
            "a line needs a non-zero impedance (r_ohm_per_km or x_ohm_per_km > 0)",
            lambda e: e.r_ohm_per_km > 0 or e.x_ohm_per_km > 0,
            model.lines,
        ),
        (
            "lines.df",
            "line df (derating factor) must be at most 1",
            lambda e: e.df <= 1,
            model.lines,
        ),
        (
            "lines.to_bus",
            "a line must connect two different buses",
            lambda e: e.from_bus != e.to_bus,
            model.lines,
        ),
        (
            "transformers.vkr_percent",
            "transformer vkr_percent must not exceed vk_percent",
            lambda e: e.vkr_percent <= e.vk_percent,
            model.transformers,
        ),
        (
            "transformers.df",
            "transformer df (derating factor) must be at most 1",
            lambda e: e.df <= 1,
            model.transformers,
        ),
        (
            "transformers.lv_bus",
            "a transformer must connect two different buses",
            lambda e: e.hv_bus != e.lv_bus,
            model.transformers,
        ),
        (
            "transformers.tap_side",
            "transformer tap_side must be 'hv', 'lv' or empty",
            lambda e: e.tap_side in (None, "hv", "lv"),
            model.transformers,
        ),
        (
            "transformers.tap_pos",
            "transformer tap_pos must lie within [tap_min, tap_max]",
            lambda e: (
                e.tap_pos is None or e.tap_min is None or e.tap_max is None or e.tap_min <= e.tap_pos <= e.tap_max
            ),
            model.transformers,
        ),
        (
            "buses.max_vm_pu",
            "bus min_vm_pu must not exceed max_vm_pu",
            lambda e: e.min_vm_pu is None or e.max_vm_pu is None or e.min_vm_pu <= e.max_vm_pu,
            model.buses,
        ),
        (
            "switches.element",
            "a bus-bus switch must connect two different buses",
            lambda e: e.element_kind != SwitchElement.BUS or e.element != e.bus,
            model.switches,
        ),
        (
            "storages.max_e_mwh",
            "storage min_e_mwh must not exceed max_e_mwh",
            lambda e: e.max_e_mwh is None or e.min_e_mwh <= e.max_e_mwh,
            model.storages,
        ),
    )
    for where, rule, ok, elements in checks:
        names = [e.name for e in elements if not ok(e)]
        if names:
            raise _fail(VALUE_INVALID, where, f"{rule}; broken at {_listing(names)}", names)


def _check_references(model: NetworkModel) -> None:
    buses = {b.name for b in model.buses}
    lines = {ln.name: ln for ln in model.lines}
    trafos = {t.name: t for t in model.transformers}
    feeders = {f.name for f in model.feeders}

    def need(where: str, what: str, pairs: Iterable[tuple[str, str]], known: set[str] | Mapping[str, Any]) -> None:
        missing = [f"{owner} -> {ref}" for owner, ref in pairs if ref not in known]
        if missing:
            raise _fail(
                DANGLING_REFERENCE,
                where,
                f"{what} must name an existing element; unknown at {_listing(missing)}",
                missing,
            )

    need("lines.from_bus", "line from_bus", ((e.name, e.from_bus) for e in model.lines), buses)
    need("lines.to_bus", "line to_bus", ((e.name, e.to_bus) for e in model.lines), buses)
    need("transformers.hv_bus", "transformer hv_bus", ((e.name, e.hv_bus) for e in model.transformers), buses)
    need("transformers.lv_bus", "transformer lv_bus", ((e.name, e.lv_bus) for e in model.transformers), buses)
    need("switches.bus", "switch bus", ((e.name, e.bus) for e in model.switches), buses)
    for kind, known, label in (
        (SwitchElement.BUS, buses, "bus"),
        (SwitchElement.LINE, set(lines), "line"),
        (SwitchElement.TRANSFORMER, set(trafos), "transformer"),
    ):
        need(
            "switches.element",
            f"a switch of element kind {kind.value!r} ({label})",
            ((e.name, e.element) for e in model.switches if e.element_kind == kind),
            known,
        )
    off_branch: list[str] = []
    for sw in model.switches:
        if sw.element_kind == SwitchElement.LINE:
            line = lines[sw.element]
            if sw.bus not in (line.from_bus, line.to_bus):
                off_branch.append(f"{sw.name} -> {sw.element}")
        elif sw.element_kind == SwitchElement.TRANSFORMER:
            trafo = trafos[sw.element]
            if sw.bus not in (trafo.hv_bus, trafo.lv_bus):
                off_branch.append(f"{sw.name} -> {sw.element}")
    if off_branch:
        raise _fail(
            DANGLING_REFERENCE,
            "switches.bus",
            f"a line or transformer switch must sit at one end of its branch; not at {_listing(off_branch)}",
            off_branch,
        )
    need("ext_grids.bus", "external grid bus", ((e.name, e.bus) for e in model.ext_grids), buses)
    need("loads.bus", "load bus", ((e.name, e.bus) for e in model.loads), buses)
    need("sgens.bus", "static generator bus", ((e.name, e.bus) for e in model.sgens), buses)
    need("storages.bus", "storage bus", ((e.name, e.bus) for e in model.storages), buses)
    need("feeders.head_bus", "feeder head_bus", ((e.name, e.head_bus) for e in model.feeders), buses)
    need(
        "feeders.branch",
        "feeder branch",
        ((e.name, e.branch) for e in model.feeders if e.branch_kind == BranchKind.LINE),
        lines,
    )
    need(
        "feeders.branch",
        "feeder branch",
        ((e.name, e.branch) for e in model.feeders if e.branch_kind == BranchKind.TRANSFORMER),
        trafos,
    )
    need(
        "connection_points.bus",
        "connection point bus",
        ((e.name, e.bus) for e in model.connection_points),
        buses,
    )
    need(
        "connection_points.feeder",
        "connection point feeder",
        ((e.name, e.feeder) for e in model.connection_points if e.feeder is not None),
        feeders,
    )


def validate_network(model: NetworkModel) -> None:
    """Check every rule of the network model; return None if it holds, else raise ``ValidationFailed``.

    Rules, checked in this order (the first broken rule is raised, naming up to ``MAX_NAMED`` offenders,
    with all of them in ``details["offenders"]``):

    1. names are non-empty (``network.empty_name``) and unique per element type
       (``network.duplicate_name``);
    2. numbers are finite (``network.value_not_finite``); ratings and sizes are greater than zero
       (``network.rating_not_positive``: bus ``vn_kv``; line ``length_km``, ``max_i_ka``, ``parallel``,
       ``df``; transformer ``sn_mva``, ``vn_hv_kv``, ``vn_lv_kv``, ``vk_percent``; external grid ``vm_pu``);
       physical quantities are not negative (``network.value_negative``: impedances, losses, element
       sizes such as a load's ``sn_mva``);
    3. values are consistent (``network.value_invalid``: e.g. ``vkr_percent <= vk_percent``,
       ``tap_min <= tap_pos <= tap_max``, a branch joins two different buses);
    4. every reference names an existing element (``network.dangling_reference``), and a line or
       transformer switch sits at one end of its branch;
    5. there is at least one in-service external grid on an in-service bus (``network.no_slack``);
    6. every in-service bus has an energised path to the slack (``network.unreachable_bus``): through
       in-service lines and transformers whose switches are all closed, and closed bus-bus switches.

    The model is not changed (it is immutable).
    """
    _check_names(model)
    _check_numbers(model)
    _check_consistency(model)
    _check_references(model)
    slack = [e for e in model.ext_grids if e.in_service]
    in_service_buses = {b.name for b in model.buses if b.in_service}
    if not any(e.bus in in_service_buses for e in slack):
        raise _fail(
            NO_SLACK,
            "ext_grids",
            "the network needs an in-service external grid on an in-service bus: the slack at the T-D interface",
            [],
        )
    unreachable = unreachable_buses(model)
    if unreachable:
        slack_buses = sorted({e.bus for e in slack})
        raise _fail(
            UNREACHABLE_BUS,
            "buses",
            f"{len(unreachable)} in-service bus(es) have no energised path to the T-D interface's slack "
            f"bus {_listing(slack_buses)}: {_listing(list(unreachable))}; connect them, close a "
            "switch, or mark them out of service",
            list(unreachable),
        )


# --- topology -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Graph:
    """Integer view of the energised topology."""

    names: tuple[str, ...]
    index: Mapping[str, int]
    in_service: npt.NDArray[np.bool_]
    # energised branch edges (lines, transformers): endpoints and owner (kind, position)
    branch_u: npt.NDArray[np.int64]
    branch_v: npt.NDArray[np.int64]
    branch_kind: tuple[BranchKind, ...]
    branch_pos: npt.NDArray[np.int64]
    # closed bus-bus switches between in-service buses
    coupler_u: npt.NDArray[np.int64]
    coupler_v: npt.NDArray[np.int64]

    @property
    def n(self) -> int:
        return len(self.names)


def _graph(model: NetworkModel) -> _Graph:
    names = tuple(b.name for b in model.buses)
    index = {name: i for i, name in enumerate(names)}
    in_service = np.array([b.in_service for b in model.buses], dtype=bool)
    open_ends: set[tuple[SwitchElement, str]] = {
        (sw.element_kind, sw.element) for sw in model.switches if not sw.closed and sw.element_kind != SwitchElement.BUS
    }
    us: list[int] = []
    vs: list[int] = []
    kinds: list[BranchKind] = []
    pos: list[int] = []
    for i, ln in enumerate(model.lines):
        if not ln.in_service or (SwitchElement.LINE, ln.name) in open_ends:
            continue
        u, v = index.get(ln.from_bus), index.get(ln.to_bus)
        if u is None or v is None or not (in_service[u] and in_service[v]):
            continue
        us.append(u)
        vs.append(v)
        kinds.append(BranchKind.LINE)
        pos.append(i)
    for i, tr in enumerate(model.transformers):
        if not tr.in_service or (SwitchElement.TRANSFORMER, tr.name) in open_ends:
            continue
        u, v = index.get(tr.hv_bus), index.get(tr.lv_bus)
        if u is None or v is None or not (in_service[u] and in_service[v]):
            continue
        us.append(u)
        vs.append(v)
        kinds.append(BranchKind.TRANSFORMER)
        pos.append(i)
    cu: list[int] = []
    cv: list[int] = []
    for sw in model.switches:
        if sw.element_kind != SwitchElement.BUS or not sw.closed:
            continue
        u, v = index.get(sw.bus), index.get(sw.element)
        if u is None or v is None or not (in_service[u] and in_service[v]):
            continue
        cu.append(u)
        cv.append(v)
    return _Graph(
        names=names,
        index=index,
        in_service=in_service,
        branch_u=np.array(us, dtype=np.int64),
        branch_v=np.array(vs, dtype=np.int64),
        branch_kind=tuple(kinds),
        branch_pos=np.array(pos, dtype=np.int64),
        coupler_u=np.array(cu, dtype=np.int64),
        coupler_v=np.array(cv, dtype=np.int64),
    )


def _adjacency(n: int, u: npt.NDArray[np.int64], v: npt.NDArray[np.int64]) -> Any:
    """Sparse symmetric adjacency (csr) of ``n`` nodes with edges ``u[i]-v[i]`` of weight 1."""
    data = np.ones(len(u), dtype=float)
    return coo_matrix((data, (u, v)), shape=(n, n)).tocsr()


def _slack_indices(model: NetworkModel, graph: _Graph) -> npt.NDArray[np.int64]:
    idx = sorted(
        {
            graph.index[e.bus]
            for e in model.ext_grids
            if e.in_service and e.bus in graph.index and graph.in_service[graph.index[e.bus]]
        }
    )
    return np.array(idx, dtype=np.int64)


def unreachable_buses(model: NetworkModel) -> tuple[str, ...]:
    """Return, in model order, the in-service buses with no energised path to any in-service slack bus.

    A path runs through in-service lines and transformers between in-service buses whose switches are
    all closed, and through closed bus-bus switches. With no in-service slack, every in-service bus is
    unreachable. Elements that refer to unknown buses are ignored (``validate_network`` reports them).
    """
    graph = _graph(model)
    slack = _slack_indices(model, graph)
    if graph.n == 0:
        return ()
    u = np.concatenate([graph.branch_u, graph.coupler_u])
    v = np.concatenate([graph.branch_v, graph.coupler_v])
    _, labels = connected_components(_adjacency(graph.n, u, v), directed=False)
    supplied = np.isin(labels, labels[slack]) if len(slack) else np.zeros(graph.n, dtype=bool)
    bad = np.flatnonzero(graph.in_service & ~supplied)
    return tuple(graph.names[i] for i in bad)


def _fused_groups(graph: _Graph) -> npt.NDArray[np.int64]:
    """Label of each bus's group of buses joined by closed bus-bus switches (a busbar and its couplers)."""
    _, labels = connected_components(_adjacency(graph.n, graph.coupler_u, graph.coupler_v), directed=False)
    return np.asarray(labels, dtype=np.int64)


def assign_feeders(model: NetworkModel) -> FeederAssignment:
    """Find the substation's main busbar, the feeders leaving it, and the feeder of every bus.

    Definition (on the energised topology, as in :func:`unreachable_buses`):

    1. The **slack group** is the slack buses plus every bus joined to them by closed bus-bus switches.
    2. The **main busbar** is the lower-voltage side of the substation: the buses on the far side of
       every energised transformer with one end in the slack group, plus the buses joined to them by
       closed bus-bus switches. If no transformer touches the slack group (the slack sits directly on
       the distribution busbar), the main busbar is the slack group itself.
       - SimBench MV grid (``1-MV-*``): slack at the HV busbar, HV/MV transformers; the main busbar is
         the MV busbar sections (``MV… busbar1.1`` and ``1.2`` joined by the sectionaliser).
       - SimBench LV grid (``1-LV-*``): slack at an MV bus, one MV/LV transformer; the main busbar is the
         LV busbar of that substation.
       - SimBench MV+LV grid (``1-MVLV-*``): as the MV grid; LV networks below MV/LV transformers belong
         to the MV feeder that supplies their transformer.
    3. A **feeder** is every energised line or transformer with one end on the main busbar and the other
       end neither on the main busbar nor in the slack group. It is named after that branch and headed
       by its main-busbar end.
    4. Each bus's feeder is the feeder whose far-end bus is nearest to it (fewest branches and closed
       bus-bus switches) without passing through the main busbar or the slack group; ties go to the feeder
       listed first (lines in model order, then transformers). In a radial network this is exactly the
       branch leaving the main busbar on the bus's path from the slack. Buses on the main busbar, in the
       slack group, elsewhere upstream, or not energised have no feeder (None).
    """
    graph = _graph(model)
    slack = _slack_indices(model, graph)
    bus_feeder: dict[str, str | None] = dict.fromkeys(graph.names)
    if graph.n == 0 or len(slack) == 0:
        return FeederAssignment(main_busbar=(), feeders=(), bus_feeder=bus_feeder)
    group = _fused_groups(graph)
    in_slack_group = np.isin(group, group[slack])
    touches = in_slack_group[graph.branch_u] ^ in_slack_group[graph.branch_v]
    is_trafo = np.array([k == BranchKind.TRANSFORMER for k in graph.branch_kind], dtype=bool)
    first_stage = touches & is_trafo
    if first_stage.any():
        far = np.where(in_slack_group[graph.branch_u], graph.branch_v, graph.branch_u)[first_stage]
        on_busbar = np.isin(group, group[far]) & ~in_slack_group
    else:
        on_busbar = in_slack_group.copy()
    upstream = on_busbar | in_slack_group

    u, v = graph.branch_u, graph.branch_v
    leaving = (on_busbar[u] & ~upstream[v]) | (on_busbar[v] & ~upstream[u])
    order = np.flatnonzero(leaving)
    # lines first (model order), then transformers, so names and ties are deterministic
    order = order[np.lexsort((graph.branch_pos[order], is_trafo[order]))]
    feeders: list[Feeder] = []
    heads: list[int] = []
    for k in order:
        kind = graph.branch_kind[k]
        p = int(graph.branch_pos[k])
        branch_name = model.lines[p].name if kind == BranchKind.LINE else model.transformers[p].name
        head, tail = (int(u[k]), int(v[k])) if on_busbar[u[k]] else (int(v[k]), int(u[k]))
        feeders.append(Feeder(name=branch_name, head_bus=graph.names[head], branch=branch_name, branch_kind=kind))
        heads.append(tail)

    main_busbar = tuple(graph.names[i] for i in np.flatnonzero(on_busbar))
    if not feeders:
        return FeederAssignment(main_busbar=main_busbar, feeders=(), bus_feeder=bus_feeder)

    # Downstream graph: every energised connection between buses that are not upstream, each of length 1
    # (parallel branches count once), plus a virtual source node n with an edge to each feeder's far end
    # of length 1 + rank * eps. Shortest distances from the source then rank buses by the number of
    # branches to a feeder first and by feeder order second, so ties are deterministic.
    n = graph.n
    cu = np.concatenate([u, graph.coupler_u])
    cv = np.concatenate([v, graph.coupler_v])
    keep = ~upstream[cu] & ~upstream[cv]
    cu, cv = cu[keep], cv[keep]
    downstream = coo_matrix(
        (np.ones(2 * len(cu)), (np.concatenate([cu, cv]), np.concatenate([cv, cu]))), shape=(n + 1, n + 1)
    ).tocsr()
    downstream.data[:] = 1.0
    unique_tails, first_feeder = np.unique(np.array(heads, dtype=np.int64), return_index=True)
    eps = 1.0 / (2.0 * (len(feeders) + 1))
    source_edges = coo_matrix(
        (1.0 + first_feeder * eps, (np.full(len(unique_tails), n), unique_tails)), shape=(n + 1, n + 1)
    ).tocsr()
    distance, predecessor = dijkstra(downstream + source_edges, directed=True, indices=n, return_predecessors=True)
    feeder_index = np.full(n + 1, -1, dtype=np.int64)
    feeder_index[unique_tails] = first_feeder
    reached = np.flatnonzero(np.isfinite(distance[:n]))
    for i in reached[np.argsort(distance[reached], kind="stable")]:
        p = int(predecessor[i])
        if p != n:
            feeder_index[i] = feeder_index[p]
        bus_feeder[graph.names[i]] = feeders[int(feeder_index[i])].name
    return FeederAssignment(main_busbar=main_busbar, feeders=tuple(feeders), bus_feeder=bus_feeder)


def derive_connection_points(model: NetworkModel, bus_feeder: Mapping[str, str | None]) -> tuple[ConnectionPoint, ...]:
    """Return one three-phase connection point per bus that has at least one load, named after the bus,
    in bus order, with the feeder from ``bus_feeder`` (None where the bus has none)."""
    with_load = {ld.bus for ld in model.loads}
    return tuple(
        ConnectionPoint(name=b.name, bus=b.name, feeder=bus_feeder.get(b.name), phase=Phase.ABC)
        for b in model.buses
        if b.name in with_load
    )


def with_topology(model: NetworkModel) -> NetworkModel:
    """Validate ``model`` and return a copy whose feeders and connection points are derived afresh by
    :func:`assign_feeders` and :func:`derive_connection_points` (replacing any it had)."""
    validate_network(replace(model, feeders=(), connection_points=()))
    assignment = assign_feeders(model)
    derived = replace(model, feeders=assignment.feeders, connection_points=())
    return replace(derived, connection_points=derive_connection_points(derived, assignment.bus_feeder))
