"""The whole benchmark cycle on a small synthetic province: figures, cross-checks, persisted rows, CLI."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gridbridge.bench.cycle import (
    ISSUER_AGGREGATOR,
    ISSUER_DSO,
    ISSUER_TSO,
    CycleFigures,
    SqliteBenchInstructionSink,
    _aggregate,
    _disaggregate,
    _validate,
    run_cycle,
)
from gridbridge.bench.province import generate_province
from gridbridge.cli.main import app
from gridbridge.domain.coordination import ModelName
from gridbridge.engines.clearing import clear_lp
from gridbridge.engines.shortfall import redispatch_shortfall

INTERVAL = datetime(2026, 7, 15, 17, 0, tzinfo=UTC)


def test_province_is_deterministic_and_mixes_the_models() -> None:
    a = generate_province(5000, 40, seed=3)
    b = generate_province(5000, 40, seed=3)
    np.testing.assert_array_equal(a.energy.price_cad_per_mwh, b.energy.price_cad_per_mwh)
    np.testing.assert_array_equal(a.der_aggregation, b.der_aggregation)
    names = {a.models[i].name for i in np.unique(a.interface_model)}
    assert names == set(ModelName)
    assert a.energy.n_curves == a.n_ders == 5000


def test_cycle_matches_the_baseline_and_persists_traceable_instructions(tmp_path: Path) -> None:
    province = generate_province(4000, 30, seed=2)
    sink = SqliteBenchInstructionSink(tmp_path / "cycle.db")
    figures = run_cycle(province, sink, interval_start=INTERVAL, baseline=True, baseline_time_limit_s=60)
    assert figures.baseline_status == "optimal"
    assert figures.baseline_cost_cad_per_h == pytest.approx(figures.cost_cad_per_h, rel=1e-9)
    assert figures.rejected_offers > 0  # the generator plants a few bad offers
    assert figures.limit_violations == 0
    assert figures.redispatched_kw >= figures.shortfall_kw - 1e-6
    with sqlite3.connect(tmp_path / "cycle.db") as conn:
        rows = conn.execute("select count(*), count(distinct der_index) from bench_instruction").fetchone()
        issuers = {r[0] for r in conn.execute("select distinct issuer from bench_instruction")}
    assert rows[0] == figures.instructions
    assert rows[1] == figures.participating_ders
    assert issuers == {ISSUER_TSO, ISSUER_DSO, ISSUER_AGGREGATOR}


def test_instructions_respect_envelopes_and_add_up_to_their_parents() -> None:
    province = generate_province(4000, 30, seed=4)
    figures = CycleFigures(province.n_ders)
    energy, reserve, envelope = _validate(province, figures)
    market = _aggregate(province, energy, reserve, envelope)
    first = clear_lp(market.problem)
    loop = redispatch_shortfall(
        market.problem,
        market.energy,
        np.where(market.direct, market.der_resource, -1),
        province.der_interface,
        np.where(market.direct, envelope, np.inf),
        first=first,
        order=market.energy_order,
    )
    out = _disaggregate(market, loop.final, loop.der_cap_kw, INTERVAL, figures)
    energy_rows = out.product == 0
    p = np.zeros(province.n_ders)
    p[out.der_index[energy_rows]] = out.p_kw[energy_rows]
    # Every DER within the envelope in force after the checks (direct DERs included, after re-dispatch).
    assert np.all(p <= envelope + 1e-6)
    # Each parent's instruction is fully delivered by its members (no disaggregation shortfall here).
    delivered = np.bincount(
        out.parent_index[energy_rows], weights=out.p_kw[energy_rows], minlength=market.problem.n_resources
    )
    np.testing.assert_allclose(delivered, np.maximum(loop.final.p_kw, 0.0), atol=1e-5)
    # Every instruction's parent is the resource its DER belongs to.
    np.testing.assert_array_equal(out.parent_index, market.der_resource[out.der_index])


def test_bench_cycle_command_prints_figures() -> None:
    result = CliRunner().invoke(app, ["bench", "cycle", "--ders", "2000,4000", "--interfaces", "20"])
    assert result.exit_code == 0, result.output
    assert "whole cycle" in result.output
    assert "baseline / whole cycle" in result.output
    assert "same least cost as the baseline" in result.output
