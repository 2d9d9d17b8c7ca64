"""Storing and loading the network model of a T-D interface (tables in ``network_tables``).

The caller owns the transaction: nothing here commits. Writes use bulk ``INSERT`` statements (one
``executemany`` per element table), so storing a 9,000-bus SimBench grid takes about a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.orm import Session

from gridbridge.domain.errors import ConflictError, NotFound
from gridbridge.domain.network import (
    CONNECTION_POINT_IN_USE,
    NETWORK_EXISTS,
    BranchKind,
    Bus,
    ConnectionPoint,
    ExternalGrid,
    Feeder,
    Line,
    Load,
    NetworkModel,
    StaticGenerator,
    Storage,
    Switch,
    SwitchElement,
    Transformer,
    validate_network,
)
from gridbridge.store.base import Base
from gridbridge.store.network_tables import (
    BusRow,
    ConnectionPointRow,
    ExtGridRow,
    FeederRow,
    LineRow,
    LoadRow,
    NetworkRow,
    SgenRow,
    StorageRow,
    SwitchRow,
    TransformerRow,
)
from gridbridge.store.tables import td_interfaces


@dataclass(frozen=True)
class ConnectionPointRecord:
    """A stored connection point: where it is (T-D interface, feeder, bus) and its stable integer id."""

    id: int
    name: str
    tdi_id: str
    network_id: int
    bus: str
    feeder: str | None
    feeder_id: int | None
    phase: str


@dataclass(frozen=True)
class StoredNetwork:
    """What is stored for a T-D interface's network, without its elements."""

    id: int
    tdi_id: str
    name: str
    source: str
    imported_at: datetime
    buses: int
    connection_points: int


# --- helpers --------------------------------------------------------------------------------------------

_SIMPLE_EXCLUDE = {
    Line: {"from_bus", "to_bus"},
    Transformer: {"hv_bus", "lv_bus"},
    Switch: {"bus", "element"},
    ExternalGrid: {"bus"},
    Load: {"bus"},
    StaticGenerator: {"bus"},
    Storage: {"bus"},
    Feeder: {"head_bus", "branch"},
    ConnectionPoint: {"bus", "feeder"},
}


_SIMPLE_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _simple_names(cls: type[Any]) -> tuple[str, ...]:
    """Names of the fields of element class ``cls`` that are stored as they are (all but references)."""
    names = _SIMPLE_NAMES.get(cls)
    if names is None:
        skip = _SIMPLE_EXCLUDE.get(cls, set())
        names = _SIMPLE_NAMES[cls] = tuple(f.name for f in fields(cls) if f.name not in skip)
    return names


def _simple(element: Any) -> dict[str, Any]:
    """The element's fields that are stored as they are (everything except references)."""
    return {name: getattr(element, name) for name in _simple_names(type(element))}


def _ids(session: Session, row: Any, network_id: int) -> dict[str, int]:
    result = session.execute(select(row.name, row.id).where(row.network_id == network_id))
    return {name: int(id_) for name, id_ in result}


def _insert(session: Session, row: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        # a Core insert on the table: one executemany per table, without the ORM's per-row bookkeeping
        session.execute(insert(cast(Table, row.__table__)), list(rows))


def load_network_id(session: Session, tdi_id: str) -> int | None:
    """Return the id of the network stored for ``tdi_id``, or None if it has none."""
    found = session.execute(select(NetworkRow.id).where(NetworkRow.tdi_id == tdi_id)).scalar_one_or_none()
    return None if found is None else int(found)


def _connection_point_referrers(session: Session, cp_ids: Iterable[int]) -> dict[str, int]:
    """Count rows in other tables (e.g. ``ders``) whose foreign keys point at the given connection points."""
    ids = list(cp_ids)
    if not ids:
        return {}
    target = ConnectionPointRow.__table__.c.id
    counts: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        if table is ConnectionPointRow.__table__:
            continue
        for fk in table.foreign_keys:
            if fk.column is target:
                n = session.execute(select(func.count()).select_from(table).where(fk.parent.in_(ids))).scalar_one()
                if n:
                    counts[table.name] = counts.get(table.name, 0) + int(n)
    return counts


def _refuse_if_referenced(session: Session, cps: Mapping[int, str], what: str) -> None:
    referrers = _connection_point_referrers(session, cps)
    if referrers:
        names = sorted(cps.values())
        shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        by = ", ".join(f"{t} ({n})" for t, n in sorted(referrers.items()))
        raise ConflictError(
            f"{what}: connection points {shown} are still referenced by {by}; move or retire those first",
            code=CONNECTION_POINT_IN_USE,
            field="connection_points",
            details={"referenced_by": referrers},
        )


# --- save -----------------------------------------------------------------------------------------------


def save_network(
    session: Session,
    tdi_id: str,
    model: NetworkModel,
    *,
    source: str,
    replace: bool = False,
    imported_at: datetime | None = None,
) -> int:
    """Validate ``model`` and store it as the network of T-D interface ``tdi_id``; return the network id.

    - ``model`` must pass :func:`gridbridge.domain.network.validate_network` (else ``ValidationFailed``,
      nothing written). Feeders and connection points are stored as the model has them (use
      ``with_topology`` or the importer to derive them).
    - An unknown ``tdi_id`` raises ``NotFound`` (field ``tdi_id``).
    - If the interface already has a network, ``replace=False`` raises ``ConflictError`` with code
      ``network.already_exists``; ``replace=True`` replaces every element but keeps the network id and the
      id of every connection point whose name is still in the new model (DERs keep pointing at it).
      Connection points that disappear are deleted, unless another table (such as ``ders``) references
      them: then ``ConflictError`` ``network.connection_point_in_use`` is raised before anything is written.
    - ``imported_at`` (timezone-aware; default: now, UTC) and ``source`` are recorded.

    Does not commit: the caller's transaction decides.
    """
    validate_network(model)
    if session.execute(select(td_interfaces.c.id).where(td_interfaces.c.id == tdi_id)).first() is None:
        raise NotFound(f"no T-D interface with id {tdi_id!r}", field="tdi_id")
    when = imported_at or datetime.now(UTC)
    header = {
        "name": model.name,
        "source": source,
        "imported_at": when,
        "f_hz": model.f_hz,
        "sn_mva": model.sn_mva,
    }
    network_id = load_network_id(session, tdi_id)
    old_buses: dict[str, int] = {}
    kept_cps: dict[str, int] = {}
    if network_id is not None:
        if not replace:
            raise ConflictError(
                f"T-D interface {tdi_id!r} already has a network model; pass replace=True (CLI: --replace) "
                "to replace it",
                code=NETWORK_EXISTS,
                field="tdi_id",
            )
        old_cps = _ids(session, ConnectionPointRow, network_id)
        new_names = {cp.name for cp in model.connection_points}
        vanishing = {i: n for n, i in old_cps.items() if n not in new_names}
        _refuse_if_referenced(session, vanishing, "cannot replace the network")
        kept_cps = {n: i for n, i in old_cps.items() if n in new_names}
        _clear_elements(session, network_id, vanishing_connection_points=list(vanishing))
        old_buses = _ids(session, BusRow, network_id)
        session.execute(update(NetworkRow).where(NetworkRow.id == network_id).values(**header))
    else:
        network_id = int(
            session.execute(insert(NetworkRow).values(tdi_id=tdi_id, **header).returning(NetworkRow.id)).scalar_one()
        )
    _insert_elements(session, network_id, tdi_id, model, old_buses=old_buses, kept_cps=kept_cps)
    return network_id


_BRANCH_AND_FORECAST_ROWS: tuple[Any, ...] = (
    FeederRow,
    SwitchRow,
    ExtGridRow,
    LoadRow,
    SgenRow,
    StorageRow,
    LineRow,
    TransformerRow,
)


def _clear_elements(session: Session, network_id: int, *, vanishing_connection_points: list[int]) -> None:
    """Before a replace: delete the vanishing connection points, detach the kept ones from their feeders,
    and delete every element row except buses (updated in place by ``_insert_elements``) and the kept
    connection points (re-pointed there)."""
    cp = ConnectionPointRow
    if vanishing_connection_points:
        session.execute(delete(cp).where(cp.id.in_(vanishing_connection_points)))
    session.execute(update(cp).where(cp.network_id == network_id).values(feeder_id=None))
    for row in _BRANCH_AND_FORECAST_ROWS:
        session.execute(delete(row).where(row.network_id == network_id))


def _insert_elements(
    session: Session,
    network_id: int,
    tdi_id: str,
    model: NetworkModel,
    *,
    old_buses: Mapping[str, int],
    kept_cps: Mapping[str, int],
) -> None:
    """Write the model's elements. Buses already stored under the same name (``old_buses``) are updated
    in place and keep their ids; kept connection points are re-pointed; buses no longer in the model are
    deleted last."""

    def base(position: int, element: Any) -> dict[str, Any]:
        return {"network_id": network_id, "position": position, **_simple(element)}

    bus_updates = [{"id": old_buses[b.name], **base(i, b)} for i, b in enumerate(model.buses) if b.name in old_buses]
    if bus_updates:
        session.execute(update(BusRow), bus_updates)
    _insert(session, BusRow, [base(i, b) for i, b in enumerate(model.buses) if b.name not in old_buses])
    bus_ids = _ids(session, BusRow, network_id)
    _insert(
        session,
        LineRow,
        [
            {**base(i, ln), "from_bus_id": bus_ids[ln.from_bus], "to_bus_id": bus_ids[ln.to_bus]}
            for i, ln in enumerate(model.lines)
        ],
    )
    _insert(
        session,
        TransformerRow,
        [
            {**base(i, t), "hv_bus_id": bus_ids[t.hv_bus], "lv_bus_id": bus_ids[t.lv_bus]}
            for i, t in enumerate(model.transformers)
        ],
    )
    line_ids = _ids(session, LineRow, network_id) if model.lines else {}
    trafo_ids = _ids(session, TransformerRow, network_id) if model.transformers else {}
    _insert(
        session,
        SwitchRow,
        [
            {
                **base(i, s),
                "bus_id": bus_ids[s.bus],
                "element_bus_id": bus_ids[s.element] if s.element_kind == SwitchElement.BUS else None,
                "element_line_id": line_ids[s.element] if s.element_kind == SwitchElement.LINE else None,
                "element_transformer_id": (
                    trafo_ids[s.element] if s.element_kind == SwitchElement.TRANSFORMER else None
                ),
            }
            for i, s in enumerate(model.switches)
        ],
    )
    forecast: tuple[tuple[Any, Sequence[Any]], ...] = (
        (ExtGridRow, model.ext_grids),
        (LoadRow, model.loads),
        (SgenRow, model.sgens),
        (StorageRow, model.storages),
    )
    for row, elements in forecast:
        _insert(session, row, [{**base(i, e), "bus_id": bus_ids[e.bus]} for i, e in enumerate(elements)])
    _insert(
        session,
        FeederRow,
        [
            {
                **base(i, f),
                "head_bus_id": bus_ids[f.head_bus],
                "branch_line_id": line_ids[f.branch] if f.branch_kind == BranchKind.LINE else None,
                "branch_transformer_id": (trafo_ids[f.branch] if f.branch_kind == BranchKind.TRANSFORMER else None),
            }
            for i, f in enumerate(model.feeders)
        ],
    )
    feeder_ids = _ids(session, FeederRow, network_id) if model.feeders else {}

    def cp_values(i: int, cp: ConnectionPoint) -> dict[str, Any]:
        return {
            **base(i, cp),
            "tdi_id": tdi_id,
            "bus_id": bus_ids[cp.bus],
            "feeder_id": None if cp.feeder is None else feeder_ids[cp.feeder],
        }

    cp_updates = [
        {"id": kept_cps[cp.name], **cp_values(i, cp)}
        for i, cp in enumerate(model.connection_points)
        if cp.name in kept_cps
    ]
    if cp_updates:
        session.execute(update(ConnectionPointRow), cp_updates)
    _insert(
        session,
        ConnectionPointRow,
        [cp_values(i, cp) for i, cp in enumerate(model.connection_points) if cp.name not in kept_cps],
    )
    new_names = {b.name for b in model.buses}
    gone = [i for name, i in old_buses.items() if name not in new_names]
    if gone:
        session.execute(delete(BusRow).where(BusRow.id.in_(gone)))


# --- load -----------------------------------------------------------------------------------------------


def _rows(session: Session, row: Any, network_id: int) -> Sequence[Any]:
    """The network's rows of one element table in model order, as plain result rows (no ORM objects:
    loading a 9,000-bus network builds no identity map)."""
    table = cast(Table, row.__table__)
    query = select(table).where(table.c.network_id == network_id).order_by(table.c.position)
    return session.execute(query).all()


def load_network(session: Session, tdi_id: str) -> NetworkModel | None:
    """Return the network model stored for ``tdi_id`` (elements in their stored order), or None."""
    header = session.execute(select(NetworkRow).where(NetworkRow.tdi_id == tdi_id)).scalar_one_or_none()
    if header is None:
        return None
    nid = header.id

    def build(cls: type[Any], row: Any, **refs: Any) -> Any:
        return cls(**{name: getattr(row, name) for name in _simple_names(cls)}, **refs)

    bus_rows = _rows(session, BusRow, nid)
    bus: dict[int, str] = {r.id: r.name for r in bus_rows}
    line_rows = _rows(session, LineRow, nid)
    line: dict[int, str] = {r.id: r.name for r in line_rows}
    trafo_rows = _rows(session, TransformerRow, nid)
    trafo: dict[int, str] = {r.id: r.name for r in trafo_rows}
    feeder_rows = _rows(session, FeederRow, nid)
    feeder: dict[int, str] = {r.id: r.name for r in feeder_rows}

    def switch_element(r: Any) -> str:
        if r.element_kind == SwitchElement.BUS:
            assert r.element_bus_id is not None
            return bus[r.element_bus_id]
        if r.element_kind == SwitchElement.LINE:
            assert r.element_line_id is not None
            return line[r.element_line_id]
        assert r.element_transformer_id is not None
        return trafo[r.element_transformer_id]

    def feeder_branch(r: Any) -> str:
        if r.branch_kind == BranchKind.LINE:
            assert r.branch_line_id is not None
            return line[r.branch_line_id]
        assert r.branch_transformer_id is not None
        return trafo[r.branch_transformer_id]

    return NetworkModel(
        name=header.name,
        f_hz=header.f_hz,
        sn_mva=header.sn_mva,
        buses=tuple(build(Bus, r) for r in bus_rows),
        lines=tuple(build(Line, r, from_bus=bus[r.from_bus_id], to_bus=bus[r.to_bus_id]) for r in line_rows),
        transformers=tuple(build(Transformer, r, hv_bus=bus[r.hv_bus_id], lv_bus=bus[r.lv_bus_id]) for r in trafo_rows),
        switches=tuple(
            build(Switch, r, bus=bus[r.bus_id], element=switch_element(r)) for r in _rows(session, SwitchRow, nid)
        ),
        ext_grids=tuple(build(ExternalGrid, r, bus=bus[r.bus_id]) for r in _rows(session, ExtGridRow, nid)),
        loads=tuple(build(Load, r, bus=bus[r.bus_id]) for r in _rows(session, LoadRow, nid)),
        sgens=tuple(build(StaticGenerator, r, bus=bus[r.bus_id]) for r in _rows(session, SgenRow, nid)),
        storages=tuple(build(Storage, r, bus=bus[r.bus_id]) for r in _rows(session, StorageRow, nid)),
        feeders=tuple(build(Feeder, r, head_bus=bus[r.head_bus_id], branch=feeder_branch(r)) for r in feeder_rows),
        connection_points=tuple(
            build(
                ConnectionPoint,
                r,
                bus=bus[r.bus_id],
                feeder=None if r.feeder_id is None else feeder[r.feeder_id],
            )
            for r in _rows(session, ConnectionPointRow, nid)
        ),
    )


def network_info(session: Session, tdi_id: str) -> StoredNetwork | None:
    """Return what is stored for ``tdi_id``'s network (source, import time, sizes), or None."""
    header = session.execute(select(NetworkRow).where(NetworkRow.tdi_id == tdi_id)).scalar_one_or_none()
    if header is None:
        return None
    n_buses = session.execute(
        select(func.count()).select_from(BusRow).where(BusRow.network_id == header.id)
    ).scalar_one()
    n_cps = session.execute(
        select(func.count()).select_from(ConnectionPointRow).where(ConnectionPointRow.network_id == header.id)
    ).scalar_one()
    return StoredNetwork(
        id=header.id,
        tdi_id=header.tdi_id,
        name=header.name,
        source=header.source,
        imported_at=header.imported_at,
        buses=int(n_buses),
        connection_points=int(n_cps),
    )


def delete_network(session: Session, tdi_id: str) -> bool:
    """Delete ``tdi_id``'s network and (by ON DELETE CASCADE) all its elements; return False if it had none.

    Raises ``ConflictError`` ``network.connection_point_in_use`` if another table (such as ``ders``) still
    references one of its connection points. Does not commit.
    """
    network_id = load_network_id(session, tdi_id)
    if network_id is None:
        return False
    cps = {i: n for n, i in _ids(session, ConnectionPointRow, network_id).items()}
    _refuse_if_referenced(session, cps, "cannot delete the network")
    session.execute(delete(NetworkRow).where(NetworkRow.id == network_id))
    return True


# --- connection points ----------------------------------------------------------------------------------


def _cp_query() -> Any:
    cp = ConnectionPointRow
    return (
        select(cp.id, cp.name, cp.tdi_id, cp.network_id, BusRow.name, FeederRow.name, cp.feeder_id, cp.phase)
        .join(BusRow, BusRow.id == cp.bus_id)
        .outerjoin(FeederRow, FeederRow.id == cp.feeder_id)
    )


def _cp_record(row: Any) -> ConnectionPointRecord:
    cp_id, name, tdi_id, network_id, bus, feeder, feeder_id, phase = row
    return ConnectionPointRecord(
        id=int(cp_id),
        name=name,
        tdi_id=tdi_id,
        network_id=int(network_id),
        bus=bus,
        feeder=feeder,
        feeder_id=None if feeder_id is None else int(feeder_id),
        phase=str(phase.value if hasattr(phase, "value") else phase),
    )


def connection_point(session: Session, cp_id: int) -> ConnectionPointRecord | None:
    """Return the connection point with id ``cp_id`` (its T-D interface, feeder and bus), or None."""
    row = session.execute(_cp_query().where(ConnectionPointRow.id == cp_id)).first()
    return None if row is None else _cp_record(row)


def connection_points(session: Session, tdi_id: str) -> list[ConnectionPointRecord]:
    """Return every connection point of ``tdi_id``'s network in model order (empty if it has none)."""
    rows = session.execute(
        _cp_query().where(ConnectionPointRow.tdi_id == tdi_id).order_by(ConnectionPointRow.position)
    ).all()
    return [_cp_record(r) for r in rows]


def connection_point_ids(session: Session, tdi_id: str) -> dict[str, int]:
    """Map each connection point name (its bus name) of ``tdi_id``'s network to its integer id."""
    rows = session.execute(
        select(ConnectionPointRow.name, ConnectionPointRow.id).where(ConnectionPointRow.tdi_id == tdi_id)
    )
    return {name: int(i) for name, i in rows}
