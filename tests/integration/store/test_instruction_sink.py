"""The store-backed instruction sink on SQLite and PostgreSQL: rows the repositories read back, parents first and
traceable, one transaction; and ``gridbridge bench cycle --sink store|both``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
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
