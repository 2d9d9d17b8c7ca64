"""The store-backed instruction sink on SQLite and PostgreSQL: rows the repositories read back, parents first and
traceable, one transaction; and ``gridbridge bench cycle --sink store|both``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, inspect, select, text
from typer.testing import CliRunner

from gridbridge.cli.main import app
from gridbridge.domain.market import InstructionKind, InstructionProduct, InstructionStatus, MarketScope, ResourceKind
from gridbridge.domain.offers import Market
from gridbridge.services.instruction_sink import (
    ENERGY,
    ISSUER_AGGREGATOR,
    ISSUER_DSO,
    ISSUER_TSO,
    RESERVE,
    InstructionArrays,
)
from gridbridge.services.market_ports import InstructionFilter
from gridbridge.services.ports import Page
from gridbridge.store import schema
from gridbridge.store.database import make_engine, session_factory
from gridbridge.store.instruction_sink import StoreInstructionSink
from gridbridge.store.market_tables import instructions
from gridbridge.store.uow import SqlUnitOfWorkFactory

INTERVAL = datetime(2026, 7, 15, 17, 0, tzinfo=UTC)


def test_rows_round_trip_with_parents(database_url: str) -> None:
    engine = make_engine(database_url)
    schema.upgrade(engine)
    arrays = InstructionArrays(
        interval_start=INTERVAL,
        der_index=np.array([0, 1, 2, 3, 3]),
        issuer=np.array([ISSUER_TSO, ISSUER_DSO, ISSUER_DSO, ISSUER_AGGREGATOR, ISSUER_AGGREGATOR], dtype=np.int8),
        parent_index=np.array([0, 1, 1, 2, 2]),
        product=np.array([ENERGY, ENERGY, ENERGY, ENERGY, RESERVE], dtype=np.int8),
        p_kw=np.array([10.0, 2.5, 1.25, 4.0, 0.5]),
    )
    sink = StoreInstructionSink(engine, issued_at=INTERVAL - timedelta(minutes=5), party_ids=("tso", "ldc", "vpp"))
    assert sink.write(arrays) == 5
    with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
        rows = uow.market.instructions.query(MarketScope(everything=True), Page(), InstructionFilter())
    assert len(rows) == 5 + 3  # DER rows and the parents of the DSO's and the aggregator's (energy, reserve)
    by_der = {(i.der_id, i.product): i for i in rows if i.der_id}
    direct = by_der[("der-0", InstructionProduct.ENERGY)]
    assert (direct.parent_id, direct.issuer_id, direct.tso_visible) == (None, "tso", True)
    assert (direct.kind, direct.market, direct.status) == (
        InstructionKind.DISPATCH,
        Market.REAL_TIME,
        InstructionStatus.ISSUED,
    )
    assert direct.interval_start == INTERVAL
    assert direct.deadline_at == INTERVAL - timedelta(minutes=3)
    parents = {i.id: i for i in rows if i.der_id is None}
    dso_child = by_der[("der-1", InstructionProduct.ENERGY)]
    dso_parent = parents[dso_child.parent_id or ""]
    assert (dso_parent.resource_kind, dso_parent.recipient_id, dso_parent.p_kw) == (
        ResourceKind.DSO_VIRTUAL,
        "ldc",
        3.75,
    )
    assert by_der[("der-2", InstructionProduct.ENERGY)].parent_id == dso_parent.id
    reserve = by_der[("der-3", InstructionProduct.OPERATING_RESERVE)]
    assert parents[reserve.parent_id or ""].product is InstructionProduct.OPERATING_RESERVE
    assert parents[reserve.parent_id or ""].resource_kind is ResourceKind.AGGREGATION
    sink.delete_batch(sink.batches[0])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(instructions)).scalar_one() == 0
    engine.dispose()


def _random_arrays(rows: int, resources: int, seed: int) -> InstructionArrays:
    """Instructions as the cycle makes them: each DER once per product at most, its resource's issuer."""
    rng = np.random.default_rng(seed)
    resource_issuer = rng.integers(0, 3, size=resources).astype(np.int8)
    der = rng.permutation(rows * 2)[:rows]
    resource = rng.integers(0, resources, size=rows)
    product = (rng.random(rows) < 0.2).astype(np.int8)
    p_kw = rng.gamma(1.5, 7.0, size=rows)
    p_kw[::3] = np.round(p_kw[::3], 2)
    p_kw[::7] = 0.0
    p_kw[1::11] *= 1e-7
    return InstructionArrays(
        interval_start=INTERVAL,
        der_index=der,
        issuer=resource_issuer[resource],
        parent_index=resource,
        product=product,
        p_kw=p_kw,
    )


def test_every_row_reads_back_and_every_child_has_its_parent(database_url: str) -> None:
    """The integrity rule the writer keeps now that no per-row foreign key checks it: every ``parent_id`` names a
    parent of the same batch, the parent's resource kind and recipient follow the issuer, its ``p_kw`` is the sum
    of its children; and every DER row reads back through the repository exactly as written."""
    engine = make_engine(database_url)
    schema.upgrade(engine)
    arrays = _random_arrays(3000, 40, seed=7)
    sink = StoreInstructionSink(engine, issued_at=INTERVAL - timedelta(minutes=5), party_ids=("tso", "ldc", "vpp"))
    assert sink.write(arrays) == arrays.rows
    with engine.connect() as conn:
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM instructions c LEFT JOIN instructions p ON p.id = c.parent_id"
                " WHERE c.parent_id IS NOT NULL AND p.id IS NULL"
            )
        ).scalar_one()
    assert orphans == 0
    with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
        repo = uow.market.instructions
        rows = repo.query(MarketScope(everything=True), Page(limit=10_000), InstructionFilter())
        parents = {i.id: i for i in rows if i.der_id is None}
        ders = {(i.der_id, i.product): i for i in rows if i.der_id is not None}
        assert len(ders) == arrays.rows
        names = {ENERGY: InstructionProduct.ENERGY, RESERVE: InstructionProduct.OPERATING_RESERVE}
        for der, who, resource, product, p_kw in zip(
            arrays.der_index.tolist(),
            arrays.issuer.tolist(),
            arrays.parent_index.tolist(),
            arrays.product.tolist(),
            arrays.p_kw.tolist(),
            strict=True,
        ):
            row = ders[(f"der-{der}", names[product])]
            assert row.p_kw == float(np.round(p_kw, 6))
            assert row.issuer_id == ("tso", "ldc", "vpp")[who]
            assert row.tso_visible is (who == ISSUER_TSO)
            if who == ISSUER_TSO:
                assert row.parent_id is None
                continue
            parent = parents[row.parent_id or ""]
            assert parent.resource_id.endswith(f"-resource-{resource}")
            assert parent.product is names[product]
            assert parent.recipient_id == ("tso", "ldc", "vpp")[who]
            assert parent.resource_kind is (ResourceKind.DSO_VIRTUAL if who == ISSUER_DSO else ResourceKind.AGGREGATION)
        for parent in parents.values():
            children = repo.children(parent.id)
            assert children, "a parent without children"
            # each row is rounded to the micro-kW on its own
            assert parent.p_kw == pytest.approx(sum(c.p_kw for c in children), abs=1e-6 * len(children))
            assert {c.parent_id for c in children} == {parent.id}
        assert sum(len(repo.children(p)) for p in parents) == sum(1 for i in ders.values() if i.parent_id)
    sink.delete_batch(sink.batches[0])
    engine.dispose()


def test_instruction_keys_and_sparse_indexes(database_url: str) -> None:
    """Migration 0006: no foreign keys (checked per row), partial indexes on the sparse columns, byte-ordered keys."""
    engine = make_engine(database_url)
    schema.upgrade(engine)
    inspector = inspect(engine)
    assert inspector.get_foreign_keys("instructions") == []
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            defs = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'instructions'"))
            collations: dict[str, str] = dict(
                conn.execute(
                    text(
                        "SELECT column_name, collation_name FROM information_schema.columns"
                        " WHERE table_name = 'instructions' AND column_name IN ('id', 'parent_id')"
                    )
                ).all()
            )
            assert collations == {"id": "C", "parent_id": "C"}
        else:
            defs = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'instructions'"))
        sql = {name: str(definition) for name, definition in defs.all()}
    for column in ("parent_id", "dso_id", "run_id"):
        assert f"{column} IS NOT NULL" in sql[f"ix_instructions_{column}"]
    engine.dispose()


@pytest.mark.parametrize("choice", ["store", "both"])
def test_bench_cycle_persists_through_the_store(choice: str) -> None:
    result = CliRunner().invoke(
        app, ["bench", "cycle", "--ders", "3000", "--interfaces", "20", "--sink", choice, "--baseline-max-ders", "0"]
    )
    assert result.exit_code == 0, result.output
    assert "persisted instructions (store, sqlite)" in result.output
    assert ("SQLite file, not in the cycle" in result.output) is (choice == "both")


def test_bench_cycle_refuses_an_unknown_sink() -> None:
    result = CliRunner().invoke(app, ["bench", "cycle", "--ders", "3000", "--sink", "csv"])
    assert result.exit_code != 0


def test_market_escalate_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    result = CliRunner().invoke(app, ["market", "escalate"])
    assert result.exit_code == 0, result.output
    assert "0 instruction(s) escalated" in result.output


def test_names_of_any_width_and_script_read_back(database_url: str) -> None:
    """DER names of different lengths, outside ASCII, and an empty one: each row carries its own name."""
    engine = make_engine(database_url)
    schema.upgrade(engine)
    names = {0: "", 1: "d", 2: "dér-2", 3: "ДЭР-3", 4: "der-4-with-a-much-longer-name", 5: "der\t5 'q'"}
    arrays = InstructionArrays(
        interval_start=INTERVAL,
        der_index=np.arange(6),
        issuer=np.array([ISSUER_TSO, ISSUER_DSO, ISSUER_DSO, ISSUER_AGGREGATOR, ISSUER_TSO, ISSUER_DSO], dtype=np.int8),
        parent_index=np.array([0, 1, 1, 2, 3, 1]),
        product=np.zeros(6, dtype=np.int8),
        p_kw=np.arange(6, dtype=np.float64) + 0.5,
    )
    sink = StoreInstructionSink(
        engine, issued_at=INTERVAL - timedelta(minutes=5), der_ids=lambda index: [names[i] for i in index]
    )
    assert sink.write(arrays) == 6
    with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
        rows = uow.market.instructions.query(MarketScope(everything=True), Page(), InstructionFilter())
    by_name = {i.der_id: i for i in rows if i.resource_kind is ResourceKind.DER}
    assert set(by_name) == set(names.values())
    for index, name in names.items():
        assert (by_name[name].resource_id, by_name[name].p_kw) == (name, index + 0.5)
    assert len({i.id for i in rows}) == len(rows) == 6 + 2
    engine.dispose()
