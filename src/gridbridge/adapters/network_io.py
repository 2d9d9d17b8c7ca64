"""Import and export of the network model: SimBench codes, pandapower JSON files and pandapower networks.

- :func:`load_pandapower_source` turns a source string into a pandapower network: ``simbench:CODE`` (any
  code from ``simbench.collect_all_simbench_codes()``; SimBench ships its grids, no network needed) or the
  path of a pandapower JSON file (``pandapower.to_json``).
- :func:`network_from_pandapower` converts a pandapower network into a validated
  :class:`~gridbridge.domain.network.NetworkModel`, with feeders and connection points derived.
- :func:`network_to_pandapower` builds a pandapower network from the model again. The round trip keeps
  everything an AC power flow (``pandapower.runpp``) needs, so results match the original to solver
  precision; element names are kept, element indices are renumbered 0..n-1 in model order.
- :func:`import_network` does the first two in one call.

Elements the model does not hold (generators, shunts, three-winding transformers, impedances, wards,
DC lines, motors, asymmetric elements, FACTS) are refused with ``network.unsupported_element`` rather than
silently dropped, since dropping them would change the power flow.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pandapower as pp
import pandas as pd

from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.network import (
    SOURCE_NOT_FOUND,
    SOURCE_UNREADABLE,
    UNKNOWN_SIMBENCH_CODE,
    UNSUPPORTED_ELEMENT,
    Bus,
    ExternalGrid,
    Line,
    Load,
    NetworkModel,
    StaticGenerator,
    Storage,
    Switch,
    SwitchElement,
    Transformer,
    with_topology,
)

SIMBENCH_PREFIX = "simbench:"

#: pandapower element tables the network model cannot hold; a network with rows in any is refused.
UNSUPPORTED_TABLES: tuple[str, ...] = (
    "gen",
    "shunt",
    "trafo3w",
    "impedance",
    "ward",
    "xward",
    "dcline",
    "motor",
    "asymmetric_load",
    "asymmetric_sgen",
    "svc",
    "ssc",
    "tcsc",
    "vsc",
    "vsc_stacked",
    "vsc_bipolar",
    "bus_dc",
    "line_dc",
    "source_dc",
    "load_dc",
)

LIST_CODES_HINT = (
    "list the valid codes with: python -c \"import simbench; print('\\n'.join(simbench.collect_all_simbench_codes()))\""
)

T = TypeVar("T")


@cache
def simbench_codes() -> tuple[str, ...]:
    """Return every SimBench code the installed simbench package ships (cached)."""
    import simbench

    return tuple(str(c) for c in simbench.collect_all_simbench_codes())


def load_pandapower_source(source: str) -> pp.pandapowerNet:
    """Load a pandapower network from ``simbench:CODE`` or a pandapower JSON file path.

    Raises ``ValidationFailed`` (field ``source``) with code ``network.unknown_simbench_code`` for a code
    SimBench does not ship (the message says how to list the valid codes and suggests close ones),
    ``network.source_not_found`` for a path that is not a file, and ``network.source_unreadable`` for a
    file pandapower cannot read.
    """
    if source.startswith(SIMBENCH_PREFIX):
        code = source[len(SIMBENCH_PREFIX) :].strip()
        codes = simbench_codes()
        if code not in codes:
            close = difflib.get_close_matches(code, codes, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValidationFailed(
                f"unknown SimBench code {code!r}{hint} ({LIST_CODES_HINT}; MV, LV and MV+LV grids such "
                "as 1-MV-semiurb--0-sw, 1-LV-rural1--0-sw, 1-MVLV-semiurb-all-0-sw suit a T-D interface)",
                code=UNKNOWN_SIMBENCH_CODE,
                field="source",
                details={"code": code, "suggestions": close},
            )
        import simbench

        return simbench.get_simbench_net(code)
    path = Path(source)
    if not path.is_file():
        raise ValidationFailed(
            f"network source {source!r} is neither 'simbench:CODE' nor an existing pandapower JSON file",
            code=SOURCE_NOT_FOUND,
            field="source",
        )
    try:
        net = pp.from_json(str(path))
    except Exception as exc:  # pandapower raises UserWarning, ValueError, KeyError, ... on a bad file
        raise ValidationFailed(
            f"cannot read {source!r} as a pandapower JSON network: {type(exc).__name__}: {exc}",
            code=SOURCE_UNREADABLE,
            field="source",
        ) from exc
    if not isinstance(net, pp.pandapowerNet):
        raise ValidationFailed(f"{source!r} does not hold a pandapower network", code=SOURCE_UNREADABLE, field="source")
    return net


def import_network(source: str, *, name: str | None = None) -> NetworkModel:
    """Load ``source`` (see :func:`load_pandapower_source`) and convert it with
    :func:`network_from_pandapower`; the model is named ``name``, or the SimBench code / file stem."""
    net = load_pandapower_source(source)
    if name is None:
        name = source[len(SIMBENCH_PREFIX) :] if source.startswith(SIMBENCH_PREFIX) else Path(source).stem
    return network_from_pandapower(net, name=name)


# --- pandapower -> model --------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _column(df: pd.DataFrame, column: str) -> list[Any]:
    if column not in df.columns:
        return [None] * len(df)
    return [None if _missing(v) else v for v in df[column].tolist()]


def _floats(df: pd.DataFrame, column: str, default: float | None = None) -> list[float | None]:
    return [default if v is None else float(v) for v in _column(df, column)]


def _req_floats(df: pd.DataFrame, column: str, default: float = math.nan) -> list[float]:
    # NaN stays NaN so that validate_network reports it as "not finite", naming the element.
    return [default if v is None else float(v) for v in _column(df, column)]


def _strs(df: pd.DataFrame, column: str) -> list[str | None]:
    return [None if v is None else str(v) for v in _column(df, column)]


def _bools(df: pd.DataFrame, column: str, default: bool = True) -> list[bool]:
    return [default if v is None else bool(v) for v in _column(df, column)]


def _ints(df: pd.DataFrame, column: str, default: int = 1) -> list[int]:
    return [default if v is None else int(v) for v in _column(df, column)]


def _names(df: pd.DataFrame, label: str) -> list[str]:
    """Element names, with ``"<label> <index>"`` for rows that have none."""
    return [
        f"{label} {idx}" if v is None or not str(v).strip() else str(v)
        for idx, v in zip(df.index.tolist(), _column(df, "name"), strict=True)
    ]


def _refs(values: list[Any], lookup: dict[int, str], owner: list[str], where: str) -> list[str]:
    out: list[str] = []
    for value, name in zip(values, owner, strict=True):
        if value is None or int(value) not in lookup:
            raise ValidationFailed(
                f"{where} of {name!r} refers to index {value!r}, which the network does not have",
                code="network.dangling_reference",
                field=where,
            )
        out.append(lookup[int(value)])
    return out


def _reject_unsupported(net: pp.pandapowerNet) -> None:
    present = [
        f"{table} ({len(net[table])})"
        for table in UNSUPPORTED_TABLES
        if table in net and isinstance(net[table], pd.DataFrame) and len(net[table])
    ]
    if present:
        raise ValidationFailed(
            "the network model holds buses, lines, two-winding transformers, switches, external grids, "
            f"loads, static generators and storages only; this network also has {', '.join(present)}",
            code=UNSUPPORTED_ELEMENT,
            field="network",
            details={"tables": present},
        )
    trafo = net.trafo
    if len(trafo):
        if "tap_dependency_table" in trafo and trafo["tap_dependency_table"].fillna(False).astype(bool).any():
            raise ValidationFailed(
                "transformers with tap-dependent characteristic tables are not supported",
                code=UNSUPPORTED_ELEMENT,
                field="transformers.tap_dependency_table",
            )
        if "tap2_changer_type" in trafo and any(v is not None for v in _column(trafo, "tap2_changer_type")):
            raise ValidationFailed(
                "transformers with a second tap changer are not supported",
                code=UNSUPPORTED_ELEMENT,
                field="transformers.tap2_changer_type",
            )
    if len(net.switch):
        kinds = {str(v) for v in net.switch["et"].tolist()}
        unknown = kinds - {k.value for k in SwitchElement}
        if unknown:
            raise ValidationFailed(
                f"switches at element types {sorted(unknown)} are not supported (only b, l, t)",
                code=UNSUPPORTED_ELEMENT,
                field="switches.element_kind",
            )


def _build(factory: Callable[..., T], columns: dict[str, list[Any]]) -> tuple[T, ...]:
    keys = list(columns)
    return tuple(factory(**dict(zip(keys, row, strict=True))) for row in zip(*columns.values(), strict=True))


def network_from_pandapower(net: pp.pandapowerNet, *, name: str) -> NetworkModel:
    """Convert a pandapower network into a validated ``NetworkModel`` named ``name``, with feeders and
    connection points derived (see :func:`gridbridge.domain.network.with_topology`).

    Element names are kept (SimBench bus names included); an element without a name is called
    ``"<type> <index>"``. Raises ``ValidationFailed``: ``network.unsupported_element`` for element types the
    model does not hold, or any ``network.*`` code of :func:`gridbridge.domain.network.validate_network`
    (e.g. ``network.unreachable_bus`` naming the isolated buses). ``net`` is not modified.
    """
    _reject_unsupported(net)
    bus_df = net.bus
    bus_names = _names(bus_df, "bus")
    bus_of = dict(zip(bus_df.index.tolist(), bus_names, strict=True))
    buses = _build(
        Bus,
        {
            "name": bus_names,
            "vn_kv": _req_floats(bus_df, "vn_kv"),
            "in_service": _bools(bus_df, "in_service"),
            "bus_type": [t or "b" for t in _strs(bus_df, "type")],
            "zone": _strs(bus_df, "zone"),
            "subnet": _strs(bus_df, "subnet"),
            "min_vm_pu": _floats(bus_df, "min_vm_pu"),
            "max_vm_pu": _floats(bus_df, "max_vm_pu"),
            "geo": _strs(bus_df, "geo"),
        },
    )

    ldf = net.line
    line_names = _names(ldf, "line")
    line_of = dict(zip(ldf.index.tolist(), line_names, strict=True))
    lines = _build(
        Line,
        {
            "name": line_names,
            "from_bus": _refs(_column(ldf, "from_bus"), bus_of, line_names, "lines.from_bus"),
            "to_bus": _refs(_column(ldf, "to_bus"), bus_of, line_names, "lines.to_bus"),
            "length_km": _req_floats(ldf, "length_km"),
            "r_ohm_per_km": _req_floats(ldf, "r_ohm_per_km"),
            "x_ohm_per_km": _req_floats(ldf, "x_ohm_per_km"),
            "c_nf_per_km": _req_floats(ldf, "c_nf_per_km", 0.0),
            "max_i_ka": _req_floats(ldf, "max_i_ka"),
            "g_us_per_km": _req_floats(ldf, "g_us_per_km", 0.0),
            "parallel": _ints(ldf, "parallel"),
            "df": _req_floats(ldf, "df", 1.0),
            "in_service": _bools(ldf, "in_service"),
            "max_loading_percent": _floats(ldf, "max_loading_percent"),
            "std_type": _strs(ldf, "std_type"),
            "subnet": _strs(ldf, "subnet"),
        },
    )

    tdf = net.trafo
    trafo_names = _names(tdf, "transformer")
    trafo_of = dict(zip(tdf.index.tolist(), trafo_names, strict=True))
    transformers = _build(
        Transformer,
        {
            "name": trafo_names,
            "hv_bus": _refs(_column(tdf, "hv_bus"), bus_of, trafo_names, "transformers.hv_bus"),
            "lv_bus": _refs(_column(tdf, "lv_bus"), bus_of, trafo_names, "transformers.lv_bus"),
            "sn_mva": _req_floats(tdf, "sn_mva"),
            "vn_hv_kv": _req_floats(tdf, "vn_hv_kv"),
            "vn_lv_kv": _req_floats(tdf, "vn_lv_kv"),
            "vk_percent": _req_floats(tdf, "vk_percent"),
            "vkr_percent": _req_floats(tdf, "vkr_percent"),
            "pfe_kw": _req_floats(tdf, "pfe_kw", 0.0),
            "i0_percent": _req_floats(tdf, "i0_percent", 0.0),
            "shift_degree": _req_floats(tdf, "shift_degree", 0.0),
            "tap_side": _strs(tdf, "tap_side"),
            "tap_neutral": _floats(tdf, "tap_neutral"),
            "tap_min": _floats(tdf, "tap_min"),
            "tap_max": _floats(tdf, "tap_max"),
            "tap_step_percent": _floats(tdf, "tap_step_percent"),
            "tap_step_degree": _floats(tdf, "tap_step_degree"),
            "tap_pos": _floats(tdf, "tap_pos"),
            "tap_changer_type": _strs(tdf, "tap_changer_type"),
            "parallel": _ints(tdf, "parallel"),
            "df": _req_floats(tdf, "df", 1.0),
            "in_service": _bools(tdf, "in_service"),
            "max_loading_percent": _floats(tdf, "max_loading_percent"),
            "std_type": _strs(tdf, "std_type"),
            "vector_group": _strs(tdf, "vector_group"),
            "subnet": _strs(tdf, "subnet"),
        },
    )

    sdf = net.switch
    switch_names = _names(sdf, "switch")
    kinds = [SwitchElement(str(v)) for v in _column(sdf, "et")]
    raw_elements = _column(sdf, "element")
    elements: list[str] = []
    for sw_name, kind, element in zip(switch_names, kinds, raw_elements, strict=True):
        lookup = {SwitchElement.BUS: bus_of, SwitchElement.LINE: line_of, SwitchElement.TRANSFORMER: trafo_of}[kind]
        elements.extend(_refs([element], lookup, [sw_name], "switches.element"))
    switches = _build(
        Switch,
        {
            "name": switch_names,
            "bus": _refs(_column(sdf, "bus"), bus_of, switch_names, "switches.bus"),
            "element_kind": kinds,
            "element": elements,
            "closed": _bools(sdf, "closed"),
            "switch_type": _strs(sdf, "type"),
            "z_ohm": _req_floats(sdf, "z_ohm", 0.0),
            "in_ka": _floats(sdf, "in_ka"),
        },
    )

    edf = net.ext_grid
    ext_names = _names(edf, "external grid")
    ext_grids = _build(
        ExternalGrid,
        {
            "name": ext_names,
            "bus": _refs(_column(edf, "bus"), bus_of, ext_names, "ext_grids.bus"),
            "vm_pu": _req_floats(edf, "vm_pu", 1.0),
            "va_degree": _req_floats(edf, "va_degree", 0.0),
            "in_service": _bools(edf, "in_service"),
        },
    )

    lodf = net.load
    load_names = _names(lodf, "load")
    loads = _build(
        Load,
        {
            "name": load_names,
            "bus": _refs(_column(lodf, "bus"), bus_of, load_names, "loads.bus"),
            "p_mw": _req_floats(lodf, "p_mw"),
            "q_mvar": _req_floats(lodf, "q_mvar", 0.0),
            "sn_mva": _floats(lodf, "sn_mva"),
            "scaling": _req_floats(lodf, "scaling", 1.0),
            "const_z_p_percent": _req_floats(lodf, "const_z_p_percent", 0.0),
            "const_i_p_percent": _req_floats(lodf, "const_i_p_percent", 0.0),
            "const_z_q_percent": _req_floats(lodf, "const_z_q_percent", 0.0),
            "const_i_q_percent": _req_floats(lodf, "const_i_q_percent", 0.0),
            "in_service": _bools(lodf, "in_service"),
            "profile": _strs(lodf, "profile"),
            "subnet": _strs(lodf, "subnet"),
        },
    )

    gdf = net.sgen
    sgen_names = _names(gdf, "static generator")
    sgens = _build(
        StaticGenerator,
        {
            "name": sgen_names,
            "bus": _refs(_column(gdf, "bus"), bus_of, sgen_names, "sgens.bus"),
            "p_mw": _req_floats(gdf, "p_mw"),
            "q_mvar": _req_floats(gdf, "q_mvar", 0.0),
            "sn_mva": _floats(gdf, "sn_mva"),
            "scaling": _req_floats(gdf, "scaling", 1.0),
            "in_service": _bools(gdf, "in_service"),
            "kind": _strs(gdf, "type"),
            "profile": _strs(gdf, "profile"),
            "subnet": _strs(gdf, "subnet"),
        },
    )

    stdf = net.storage
    storage_names = _names(stdf, "storage")
    storages = _build(
        Storage,
        {
            "name": storage_names,
            "bus": _refs(_column(stdf, "bus"), bus_of, storage_names, "storages.bus"),
            "p_mw": _req_floats(stdf, "p_mw"),
            "q_mvar": _req_floats(stdf, "q_mvar", 0.0),
            "sn_mva": _floats(stdf, "sn_mva"),
            "max_e_mwh": _floats(stdf, "max_e_mwh"),
            "min_e_mwh": _req_floats(stdf, "min_e_mwh", 0.0),
            "soc_percent": _floats(stdf, "soc_percent"),
            "scaling": _req_floats(stdf, "scaling", 1.0),
            "in_service": _bools(stdf, "in_service"),
            "kind": _strs(stdf, "type"),
            "profile": _strs(stdf, "profile"),
            "subnet": _strs(stdf, "subnet"),
        },
    )

    model = NetworkModel(
        name=name,
        buses=buses,
        lines=lines,
        transformers=transformers,
        switches=switches,
        ext_grids=ext_grids,
        loads=loads,
        sgens=sgens,
        storages=storages,
        f_hz=float(net.f_hz),
        sn_mva=float(net.sn_mva),
    )
    return with_topology(model)


# --- model -> pandapower --------------------------------------------------------------------------------


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _set_text(table: pd.DataFrame, column: str, values: list[str | None]) -> None:
    """Set an optional text column (None where missing), as pandapower and SimBench store them."""
    table[column] = pd.Series(values, index=table.index, dtype=object)


def network_to_pandapower(model: NetworkModel) -> pp.pandapowerNet:
    """Build a pandapower network from ``model``: buses, lines, transformers, switches, external grids,
    loads, static generators and storages with every parameter the AC power flow uses, plus names,
    ``subnet``, ``profile`` and standard-type labels as extra columns. Element indices are 0..n-1 in model
    order. Feeders and connection points have no pandapower table and are not exported.
    """
    net = pp.create_empty_network(name=model.name, f_hz=model.f_hz, sn_mva=model.sn_mva)
    bus_idx = {b.name: i for i, b in enumerate(model.buses)}
    line_idx = {ln.name: i for i, ln in enumerate(model.lines)}
    trafo_idx = {t.name: i for i, t in enumerate(model.transformers)}

    if model.buses:
        b = model.buses
        pp.create_buses(
            net,
            len(b),
            vn_kv=[x.vn_kv for x in b],
            index=list(range(len(b))),
            name=[x.name for x in b],
            type=[x.bus_type for x in b],
            in_service=[x.in_service for x in b],
            max_vm_pu=[_nan(x.max_vm_pu) for x in b],
            min_vm_pu=[_nan(x.min_vm_pu) for x in b],
        )
        _set_text(net.bus, "zone", [x.zone for x in b])
        _set_text(net.bus, "subnet", [x.subnet for x in b])
        _set_text(net.bus, "geo", [x.geo for x in b])
    if model.lines:
        ln = model.lines
        pp.create_lines_from_parameters(
            net,
            from_buses=[bus_idx[x.from_bus] for x in ln],
            to_buses=[bus_idx[x.to_bus] for x in ln],
            length_km=[x.length_km for x in ln],
            r_ohm_per_km=[x.r_ohm_per_km for x in ln],
            x_ohm_per_km=[x.x_ohm_per_km for x in ln],
            c_nf_per_km=[x.c_nf_per_km for x in ln],
            max_i_ka=[x.max_i_ka for x in ln],
            name=[x.name for x in ln],
            index=list(range(len(ln))),
            in_service=[x.in_service for x in ln],
            df=[x.df for x in ln],
            parallel=[x.parallel for x in ln],
            g_us_per_km=[x.g_us_per_km for x in ln],
            max_loading_percent=[_nan(x.max_loading_percent) for x in ln],
        )
        _set_text(net.line, "std_type", [x.std_type for x in ln])
        _set_text(net.line, "subnet", [x.subnet for x in ln])
    if model.transformers:
        tr = model.transformers
        pp.create_transformers_from_parameters(
            net,
            hv_buses=[bus_idx[x.hv_bus] for x in tr],
            lv_buses=[bus_idx[x.lv_bus] for x in tr],
            sn_mva=[x.sn_mva for x in tr],
            vn_hv_kv=[x.vn_hv_kv for x in tr],
            vn_lv_kv=[x.vn_lv_kv for x in tr],
            vkr_percent=[x.vkr_percent for x in tr],
            vk_percent=[x.vk_percent for x in tr],
            pfe_kw=[x.pfe_kw for x in tr],
            i0_percent=[x.i0_percent for x in tr],
            shift_degree=[x.shift_degree for x in tr],
            tap_neutral=[_nan(x.tap_neutral) for x in tr],
            tap_max=[_nan(x.tap_max) for x in tr],
            tap_min=[_nan(x.tap_min) for x in tr],
            tap_step_percent=[_nan(x.tap_step_percent) for x in tr],
            tap_step_degree=[_nan(x.tap_step_degree) for x in tr],
            tap_pos=[_nan(x.tap_pos) for x in tr],
            in_service=[x.in_service for x in tr],
            name=[x.name for x in tr],
            index=list(range(len(tr))),
            max_loading_percent=[_nan(x.max_loading_percent) for x in tr],
            parallel=[x.parallel for x in tr],
            df=[x.df for x in tr],
        )
        _set_text(net.trafo, "tap_side", [x.tap_side for x in tr])
        _set_text(net.trafo, "tap_changer_type", [x.tap_changer_type for x in tr])
        _set_text(net.trafo, "vector_group", [x.vector_group for x in tr])
        _set_text(net.trafo, "std_type", [x.std_type for x in tr])
        _set_text(net.trafo, "subnet", [x.subnet for x in tr])
    if model.switches:
        sw = model.switches
        lookups = {SwitchElement.BUS: bus_idx, SwitchElement.LINE: line_idx, SwitchElement.TRANSFORMER: trafo_idx}
        pp.create_switches(
            net,
            buses=[bus_idx[x.bus] for x in sw],
            elements=[lookups[x.element_kind][x.element] for x in sw],
            et=[x.element_kind.value for x in sw],
            closed=[x.closed for x in sw],
            name=[x.name for x in sw],
            index=list(range(len(sw))),
            z_ohm=[x.z_ohm for x in sw],
            in_ka=[_nan(x.in_ka) for x in sw],
        )
        _set_text(net.switch, "type", [x.switch_type for x in sw])
    for i, eg in enumerate(model.ext_grids):
        pp.create_ext_grid(
            net,
            bus=bus_idx[eg.bus],
            vm_pu=eg.vm_pu,
            va_degree=eg.va_degree,
            name=eg.name,
            in_service=eg.in_service,
            index=i,
        )
    if model.loads:
        lo = model.loads
        pp.create_loads(
            net,
            buses=[bus_idx[x.bus] for x in lo],
            p_mw=[x.p_mw for x in lo],
            q_mvar=[x.q_mvar for x in lo],
            const_z_p_percent=[x.const_z_p_percent for x in lo],
            const_i_p_percent=[x.const_i_p_percent for x in lo],
            const_z_q_percent=[x.const_z_q_percent for x in lo],
            const_i_q_percent=[x.const_i_q_percent for x in lo],
            sn_mva=[_nan(x.sn_mva) for x in lo],
            name=[x.name for x in lo],
            scaling=[x.scaling for x in lo],
            index=list(range(len(lo))),
            in_service=[x.in_service for x in lo],
        )
        _set_text(net.load, "profile", [x.profile for x in lo])
        _set_text(net.load, "subnet", [x.subnet for x in lo])
    if model.sgens:
        sg = model.sgens
        pp.create_sgens(
            net,
            buses=[bus_idx[x.bus] for x in sg],
            p_mw=[x.p_mw for x in sg],
            q_mvar=[x.q_mvar for x in sg],
            sn_mva=[_nan(x.sn_mva) for x in sg],
            name=[x.name for x in sg],
            index=list(range(len(sg))),
            scaling=[x.scaling for x in sg],
            in_service=[x.in_service for x in sg],
        )
        _set_text(net.sgen, "type", [x.kind for x in sg])
        _set_text(net.sgen, "profile", [x.profile for x in sg])
        _set_text(net.sgen, "subnet", [x.subnet for x in sg])
    if model.storages:
        st = model.storages
        pp.create_storages(
            net,
            buses=[bus_idx[x.bus] for x in st],
            p_mw=[x.p_mw for x in st],
            max_e_mwh=[_nan(x.max_e_mwh) for x in st],
            q_mvar=[x.q_mvar for x in st],
            sn_mva=[_nan(x.sn_mva) for x in st],
            soc_percent=[_nan(x.soc_percent) for x in st],
            min_e_mwh=[x.min_e_mwh for x in st],
            name=[x.name for x in st],
            index=list(range(len(st))),
            scaling=[x.scaling for x in st],
            in_service=[x.in_service for x in st],
        )
        _set_text(net.storage, "type", [x.kind for x in st])
        _set_text(net.storage, "profile", [x.profile for x in st])
        _set_text(net.storage, "subnet", [x.subnet for x in st])
    return net
