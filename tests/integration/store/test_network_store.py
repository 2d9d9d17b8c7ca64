"""Storing the network model of a T-D interface, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

import gridbridge.store.network_tables as nt
import gridbridge.store.tables as registry_tables
from gridbridge.adapters.network_io import import_network
from gridbridge.domain.der import MeterPosition, Technology
from gridbridge.domain.errors import ConflictError, NotFound, ValidationFailed
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.network import (
    Bus,
    ExternalGrid,
    Line,
    Load,
    NetworkModel,
    StaticGenerator,
    Switch,
    SwitchElement,
    Transformer,
    with_topology,
)
from gridbridge.domain.roles import Role
from gridbridge.store import network_repository as repo
from gridbridge.store.base import Base
from gridbridge.store.database import make_engine

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MVLV = "1-MVLV-semiurb-all-0-sw"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def add_tdi(engine: Engine, name: str = "TDI") -> str:
    """A DSO participant and one T-D interface it owns; returns the interface id."""
    dso_id, tdi_id = str(uuid.uuid4()), str(uuid.uuid4())
    with Session(engine) as session, session.begin():
        session.execute(
            insert(registry_tables.participants).values(
                id=dso_id, name=f"LDC of {name}", role=Role.DSO, dso_kind=None, created_at=NOW
            )
        )
        session.execute(
            insert(registry_tables.td_interfaces).values(
                id=tdi_id,
                name=name,
                price_node=f"{name} node",
                dso_id=dso_id,
                direct_threshold_kw=1000.0,
                import_limit_kw=50_000.0,
                export_limit_kw=20_000.0,
                created_at=NOW,
            )
        )
    return tdi_id


def add_der(engine: Engine, tdi_id: str, cp_id: int) -> None:
    """A DER registered at connection point ``cp_id`` (what keeps a point from being deleted)."""
    with Session(engine) as session, session.begin():
        dso_id = session.execute(
            select(registry_tables.td_interfaces.c.dso_id).where(registry_tables.td_interfaces.c.id == tdi_id)
        ).scalar_one()
        session.execute(
            insert(registry_tables.ders).values(
                id=str(uuid.uuid4()),
                name="rooftop PV",
                technology=Technology.PV,
                p_export_kw=5.0,
                p_import_kw=0.0,
                meter_position=MeterPosition.BEHIND_THE_METER,
                owner_id=dso_id,
                connection_point_id=cp_id,
                tdi_id=tdi_id,
                dso_id=dso_id,
                dso_affiliated=False,
                status=DerStatus.REQUESTED,
                requested_at=NOW,
                review_due_at=NOW,
                market_participating=False,
            )
        )


def line(name: str, a: str, b: str) -> Line:
    return Line(name, a, b, length_km=0.4, r_ohm_per_km=0.25, x_ohm_per_km=0.1, c_nf_per_km=250.0, max_i_ka=0.3)


def small_model(*, load_buses: tuple[str, ...] = ("A2", "B1", "B2"), extra_bus: bool = False) -> NetworkModel:
    """HV slack, HV/MV transformer, busbar BB, feeders L1 (A1, A2) and L3 (B1, B2); loads at ``load_buses``."""
    buses = [Bus("HV", 110.0), Bus("BB", 20.0, subnet="MV"), Bus("A1", 20.0), Bus("A2", 20.0)]
    buses += [Bus("B1", 20.0, min_vm_pu=0.95, max_vm_pu=1.05), Bus("B2", 20.0, geo='{"type":"Point"}')]
    lines = [line("L1", "BB", "A1"), line("L2", "A1", "A2"), line("L3", "BB", "B1"), line("L4", "B1", "B2")]
    if extra_bus:
        buses.append(Bus("A3", 20.0))
        lines.append(line("L5", "A2", "A3"))
    model = NetworkModel(
        name="small",
        buses=tuple(buses),
        lines=tuple(lines),
        transformers=(
            Transformer(
                "T1",
                "HV",
                "BB",
                sn_mva=40.0,
                vn_hv_kv=110.0,
                vn_lv_kv=20.0,
                vk_percent=16.0,
                vkr_percent=0.3,
                tap_side="hv",
                tap_min=-9,
                tap_max=9,
                tap_pos=0,
                tap_neutral=0,
                tap_step_percent=1.5,
            ),
        ),
        switches=(
            Switch("S1", "BB", SwitchElement.LINE, "L1"),
            Switch("S2", "HV", SwitchElement.TRANSFORMER, "T1", switch_type="CB"),
        ),
        ext_grids=(ExternalGrid("grid", "HV", vm_pu=1.02),),
        loads=tuple(Load(f"load {b}", b, p_mw=0.1, q_mvar=0.02, profile="H0-A") for b in load_buses),
        sgens=(StaticGenerator("pv", "B2", p_mw=0.05, sn_mva=0.06, kind="PV"),),
    )
    return with_topology(model)


def count(session: Session, row: type[Base], network_id: int) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(row).where(row.network_id == network_id)  # type: ignore[attr-defined]
        ).scalar_one()
    )


# --- round trips ----------------------------------------------------------------------------------------


def test_save_and_load_round_trip(engine: Engine) -> None:
    tdi_id = add_tdi(engine)
    model = small_model()
    with Session(engine) as session, session.begin():
        network_id = repo.save_network(session, tdi_id, model, source="test:small", imported_at=NOW)
    with Session(engine) as session:
        assert repo.load_network(session, tdi_id) == model
        assert repo.load_network_id(session, tdi_id) == network_id
        info = repo.network_info(session, tdi_id)
        assert info is not None
        assert (info.id, info.source, info.imported_at, info.buses, info.connection_points) == (
            network_id,
            "test:small",
            NOW,
            6,
            3,
        )
        points = repo.connection_points(session, tdi_id)
        assert [(p.name, p.bus, p.feeder, p.tdi_id) for p in points] == [
            ("A2", "A2", "L1", tdi_id),
            ("B1", "B1", "L3", tdi_id),
            ("B2", "B2", "L3", tdi_id),
        ]
        assert repo.connection_point(session, points[1].id) == points[1]
        assert repo.connection_point_ids(session, tdi_id) == {p.name: p.id for p in points}
        assert repo.connection_point(session, max(p.id for p in points) + 1000) is None
        assert repo.load_network(session, str(uuid.uuid4())) is None
        assert repo.connection_points(session, str(uuid.uuid4())) == []


@pytest.mark.slow
def test_big_simbench_grid_import_is_timed(engine: Engine, mvlv_model: NetworkModel) -> None:
    tdi_id = add_tdi(engine)
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        repo.save_network(session, tdi_id, mvlv_model, source=f"simbench:{MVLV}")
    saved = time.perf_counter()
    with Session(engine) as session:
        loaded = repo.load_network(session, tdi_id)
        points = repo.connection_points(session, tdi_id)
    done = time.perf_counter()
    print(
        f"\n{engine.dialect.name}: {MVLV} ({len(mvlv_model.buses)} buses, {len(mvlv_model.switches)} switches, "
        f"{len(points)} connection points) saved in {saved - started:.2f} s, loaded in {done - saved:.2f} s"
    )
    assert loaded == mvlv_model
    assert len(points) == len(mvlv_model.connection_points) > 8000


@pytest.fixture(scope="module")
def mvlv_model() -> NetworkModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return import_network(f"simbench:{MVLV}")


# --- replacing ------------------------------------------------------------------------------------------


def test_second_save_without_replace_is_refused_and_changes_nothing(engine: Engine) -> None:
    tdi_id = add_tdi(engine)
    model = small_model()
    with Session(engine) as session, session.begin():
        repo.save_network(session, tdi_id, model, source="first")
    with Session(engine) as session, session.begin(), pytest.raises(ConflictError) as exc:
        repo.save_network(session, tdi_id, small_model(extra_bus=True), source="second")
    assert (exc.value.code, exc.value.field) == ("network.already_exists", "tdi_id")
    assert "replace" in exc.value.message
    with Session(engine) as session:
        assert repo.load_network(session, tdi_id) == model
        info = repo.network_info(session, tdi_id)
        assert info is not None
        assert info.source == "first"


def test_replace_keeps_connection_point_ids_and_drops_vanished_points(engine: Engine) -> None:
    tdi_id = add_tdi(engine)
    before = small_model(load_buses=("A2", "B1", "B2"))
    after = small_model(load_buses=("A2", "B2", "A3"), extra_bus=True)
    with Session(engine) as session, session.begin():
        network_id = repo.save_network(session, tdi_id, before, source="v1")
    with Session(engine) as session:
        old_ids = repo.connection_point_ids(session, tdi_id)
    with Session(engine) as session, session.begin():
        assert repo.save_network(session, tdi_id, after, source="v2", replace=True) == network_id
    with Session(engine) as session:
        assert repo.load_network(session, tdi_id) == after
        new_ids = repo.connection_point_ids(session, tdi_id)
        assert set(new_ids) == {"A2", "B2", "A3"}
        assert new_ids["A2"] == old_ids["A2"]
        assert new_ids["B2"] == old_ids["B2"]
        assert new_ids["A3"] not in old_ids.values()
        # nothing of the old model is left behind
        assert count(session, nt.BusRow, network_id) == len(after.buses)
        assert count(session, nt.LineRow, network_id) == len(after.lines)
        assert count(session, nt.LoadRow, network_id) == len(after.loads)
        assert count(session, nt.FeederRow, network_id) == len(after.feeders)
        assert count(session, nt.ConnectionPointRow, network_id) == 3


def test_replace_refused_while_a_der_uses_a_vanishing_connection_point(engine: Engine) -> None:
    tdi_id = add_tdi(engine)
    before = small_model(load_buses=("A2", "B1", "B2"))
    with Session(engine) as session, session.begin():
        repo.save_network(session, tdi_id, before, source="v1")
    with Session(engine) as session:
        b1 = repo.connection_point_ids(session, tdi_id)["B1"]
    add_der(engine, tdi_id, b1)
    after = small_model(load_buses=("A2", "B2"))
    with Session(engine) as session, session.begin(), pytest.raises(ConflictError) as exc:
        repo.save_network(session, tdi_id, after, source="v2", replace=True)
    assert exc.value.code == "network.connection_point_in_use"
    assert "'B1'" in exc.value.message
    assert exc.value.details["referenced_by"] == {"ders": 1}
    with Session(engine) as session:
        assert repo.load_network(session, tdi_id) == before
    # a replace that keeps B1 is fine, and the DER's point keeps its id
    with Session(engine) as session, session.begin():
        repo.save_network(session, tdi_id, small_model(load_buses=("B1",), extra_bus=True), source="v3", replace=True)
    with Session(engine) as session:
        assert repo.connection_point_ids(session, tdi_id) == {"B1": b1}


# --- deleting, bad input, transactions ------------------------------------------------------------------


def test_deleting_a_network_cascades_to_every_element(engine: Engine) -> None:
    tdi_id = add_tdi(engine)
    other_tdi = add_tdi(engine, "other")
    with Session(engine) as session, session.begin():
        network_id = repo.save_network(session, tdi_id, small_model(), source="x")
        other_id = repo.save_network(session, other_tdi, small_model(), source="x")
    with Session(engine) as session, session.begin():
        assert repo.delete_network(session, tdi_id) is True
        assert repo.delete_network(session, tdi_id) is False
    with Session(engine) as session:
        for row in nt.ELEMENT_TABLES:
            assert count(session, row, network_id) == 0, row.__tablename__
        assert repo.load_network(session, tdi_id) is None
        assert repo.load_network(session, other_tdi) == small_model()
        assert count(session, nt.BusRow, other_id) == 6


def test_deleting_a_network_with_ders_is_refused(engine: Engine) -> None:
    tdi_id = add_tdi(engine)
    with Session(engine) as session, session.begin():
        repo.save_network(session, tdi_id, small_model(), source="x")
    with Session(engine) as session:
        cp = repo.connection_point_ids(session, tdi_id)["A2"]
    add_der(engine, tdi_id, cp)
    with Session(engine) as session, session.begin(), pytest.raises(ConflictError) as exc:
        repo.delete_network(session, tdi_id)
    assert exc.value.code == "network.connection_point_in_use"
    with Session(engine) as session:
        assert repo.load_network(session, tdi_id) == small_model()


def test_unknown_tdi_is_rejected_and_nothing_is_written(engine: Engine) -> None:
    with Session(engine) as session, session.begin(), pytest.raises(NotFound) as exc:
        repo.save_network(session, str(uuid.uuid4()), small_model(), source="x")
    assert exc.value.field == "tdi_id"
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(nt.NetworkRow)).scalar_one() == 0


def test_invalid_model_is_rejected_and_nothing_is_written(engine: Engine) -> None:
    tdi_id = add_tdi(engine)
    good = small_model()
    bad = replace(good, transformers=(replace(good.transformers[0], sn_mva=-40.0),))
    with Session(engine) as session, session.begin(), pytest.raises(ValidationFailed) as exc:
        repo.save_network(session, tdi_id, bad, source="x")
    assert (exc.value.code, exc.value.field) == ("network.rating_not_positive", "transformers.sn_mva")
    with Session(engine) as session:
        assert repo.load_network(session, tdi_id) is None
        assert session.execute(select(func.count()).select_from(nt.BusRow)).scalar_one() == 0


def test_the_caller_owns_the_transaction(engine: Engine) -> None:
    tdi_id = add_tdi(engine)
    with Session(engine) as session:
        repo.save_network(session, tdi_id, small_model(), source="x")
        session.rollback()
    with Session(engine) as session:
        assert repo.load_network(session, tdi_id) is None
