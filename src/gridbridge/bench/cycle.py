"""``gridbridge bench cycle``: one real-time interval's coordination cycle on a synthetic province.

Stages, each timed (docs/coordination-engines.md explains them):

1. validation: every offer checked (vectorised), clipped to its envelope where one applies before clearing;
2. DSO aggregation: DERs sorted into the parties the interface's model record names: direct offers (merged
   per interface into exact pools, which the TSO clears as one resource each), the DSO's virtual resource per
   interface (price bands, at most 10), aggregators' aggregations (price bands, distribution factors);
3. clearing: the interface-level LP (HiGHS) for energy and operating reserve;
4. distribution checks: every direct DER's dispatch against its envelope (outages included), the shortfall
   re-dispatched by the TSO until none is left, then the net-flow forecast and reverse-flow detection;
5. disaggregation: DSO and aggregation instructions split to DERs by merit order within envelopes;
6. persisted instructions: every DER instruction, with its parent, written through an ``InstructionSink``
   (``gridbridge.services.instruction_sink``): the benchmark's own SQLite file (``--sink sqlite``), or
   gridbridge's ``instructions`` table through the store (``--sink store``: SQLite by default, PostgreSQL with
   ``--db`` or ``GRIDBRIDGE_DATABASE_URL``); ``--sink both`` times the store and shows the SQLite file beside it.

The baseline solves the same first clearing as one HiGHS LP with every DER as its own variable (DSO members
at the band price their DSO offered, so the least cost must agree), in the same process.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from gridbridge.bench.province import Province, generate_province
from gridbridge.domain.offers import OfferCheck
from gridbridge.engines.clearing import (
    ClearingProblem,
    ClearingResult,
    ClearingTimeLimit,
    CurveSet,
    DistributionFactors,
    aggregate_curves,
    cap_curves,
    clear_lp,
    clear_per_der_lp,
    interface_injection_bounds,
    merit_order,
    validate_curves,
)
from gridbridge.engines.clearing.curves import concat_curves
from gridbridge.engines.clearing.types import FloatArray, Int8Array, IntArray, sum_by
from gridbridge.engines.disaggregation import split_merit_order
from gridbridge.engines.netflow import detect_limit_violations, detect_reverse_flow, net_load_forecast
from gridbridge.engines.shortfall import redispatch_shortfall
from gridbridge.services.instruction_sink import (
    ENERGY,
    ISSUER_AGGREGATOR,
    ISSUER_DSO,
    ISSUER_TSO,
    RESERVE,
    InstructionArrays,
    InstructionSink,
)
from gridbridge.store import schema
from gridbridge.store.database import URL_VARIABLE, make_engine
from gridbridge.store.instruction_sink import StoreInstructionSink

STAGES = (
    "validation",
    "DSO aggregation",
    "clearing",
    "distribution checks",
    "disaggregation",
    "persisted instructions",
)
SHORTAGE_PRICE_CAD_PER_MWH = 2000.0
SINKS = ("sqlite", "store", "both")


class SqliteBenchInstructionSink:
    """The benchmark's own sink: a SQLite file, one ``executemany`` inside one transaction (WAL journal)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS bench_instruction ("
                " id INTEGER PRIMARY KEY, interval_start TEXT NOT NULL, der_index INTEGER NOT NULL,"
                " issuer INTEGER NOT NULL, parent_index INTEGER NOT NULL, product INTEGER NOT NULL,"
                " p_kw REAL NOT NULL)"
            )

    def write(self, instructions: InstructionArrays) -> int:
        """Insert every instruction in one transaction; return the number of rows written."""
        when = instructions.interval_start.isoformat()
        rows = zip(
            [when] * instructions.rows,
            instructions.der_index.tolist(),
            instructions.issuer.tolist(),
            instructions.parent_index.tolist(),
            instructions.product.tolist(),
            np.round(instructions.p_kw, 6).tolist(),
            strict=True,
        )
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN")
            cur = conn.executemany(
                "INSERT INTO bench_instruction (interval_start, der_index, issuer, parent_index, product, p_kw)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            count = cur.rowcount
            conn.execute("COMMIT")
        finally:
            conn.close()
        return int(count)


@dataclass
class CycleFigures:
    """Timings and outcomes of one cycle."""

    n_ders: int
    stage_s: dict[str, float] = field(default_factory=dict)
    baseline_s: float | None = None
    baseline_status: str = "skipped"
    baseline_cost_cad_per_h: float | None = None
    cost_cad_per_h: float = 0.0
    lp_columns: int = 0
    lp_rounds: int = 0
    resources: int = 0
    rejected_offers: int = 0
    clipped_offers: int = 0
    participating_ders: int = 0
    shortfall_kw: float = 0.0
    redispatched_kw: float = 0.0
    redispatch_rounds: int = 0
    disaggregation_shortfall_kw: float = 0.0
    reverse_flow_interfaces: int = 0
    limit_violations: int = 0
    instructions: int = 0
    system_price_cad_per_mwh: float = 0.0
    persist_label: str = "persisted instructions"
    other_persist_label: str | None = None
    other_persist_s: float | None = None
    """With ``--sink both``: the second sink's time for the same instructions (not part of the whole cycle)."""
    models: dict[str, int] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        """The whole cycle."""
        return sum(self.stage_s.values())

    @property
    def clearing_and_checks_s(self) -> float:
        """Clearing plus distribution checks."""
        return self.stage_s["clearing"] + self.stage_s["distribution checks"]


@dataclass(frozen=True, eq=False)
class _Market:
    """The interval's market after validation and aggregation.

    Resources are laid out as: one exact pool of direct DERs per interface, one DSO virtual resource per
    interface, one resource per aggregation, then one per direct DER that needs its own capacity row. Every
    participating DER's resource is its group in ``der_resource``, so one merit order of all DER segments
    (``energy_order``) serves the aggregation, the shortfall loop and the disaggregation.
    """

    problem: ClearingProblem
    energy: CurveSet
    """Validated DER energy offers (clipped where an envelope applies before clearing)."""
    reserve: CurveSet
    der_resource: IntArray
    """Each DER's resource in the clearing (-1: not participating)."""
    issuer: Int8Array
    direct: np.ndarray
    via_dso: np.ndarray
    energy_order: IntArray
    reserve_order: IntArray
    energy_band_price: FloatArray
    """Per DER energy segment: the price of the merged segment (band) it is offered in."""
    reserve_band_price: FloatArray
    envelope_now_kw: FloatArray
    schedule_kw: FloatArray
    """Per interface: forecast injection of DERs outside the market."""
    dso0: int
    agg0: int
    ind0: int


def _validate(province: Province, figures: CycleFigures) -> tuple[CurveSet, CurveSet, FloatArray]:
    """Stage 1: offers checked, and clipped to the envelope in force where one applies before clearing."""
    k = province.der_interface
    envelope = province.envelope_at_check_kw()
    # Envelopes apply before clearing where the TSO models them (its model record says so) and for every
    # DER that reaches the market through its DSO or an aggregator (both work within published envelopes).
    applies = province.interface_flag("tso_applies_der_envelopes")[k] | ~_direct_mask(province)
    checks, energy = validate_curves(
        province.energy,
        price_floor_cad_per_mwh=province.price_floor_cad_per_mwh,
        price_cap_cad_per_mwh=province.price_cap_cad_per_mwh,
        envelope_kw=np.where(applies, envelope, np.inf),
    )
    figures.rejected_offers = int(np.sum(~np.isin(checks, (OfferCheck.ACCEPTED, OfferCheck.CLIPPED_TO_ENVELOPE))))
    figures.clipped_offers = int(np.sum(checks == OfferCheck.CLIPPED_TO_ENVELOPE))
    has_reserve = province.reserve.lengths() > 0
    r_checks, reserve = validate_curves(
        province.reserve,
        price_floor_cad_per_mwh=province.price_floor_cad_per_mwh,
        price_cap_cad_per_mwh=province.price_cap_cad_per_mwh,
    )
    figures.rejected_offers += int(np.sum(has_reserve & (r_checks != OfferCheck.ACCEPTED)))
    # Reserve must fit beside the energy offer: within the envelope where one applies; a DER whose energy
    # offer was rejected offers no reserve either.
    room = np.where(applies, np.maximum(envelope - energy.total_kw(), 0.0), np.inf)
    room = np.where(checks > OfferCheck.CLIPPED_TO_ENVELOPE, 0.0, room)
    reserve = cap_curves(reserve, room)
    return energy, reserve, envelope


def _direct_mask(province: Province) -> np.ndarray:
    k = province.der_interface
    direct_ok = province.interface_flag("direct_wholesale_participation")[k]
    in_aggregation = (province.der_aggregation >= 0) & direct_ok
    direct: np.ndarray = ~in_aggregation & direct_ok & (province.der_p_max_kw >= province.direct_threshold_kw()[k])
    return direct


def _aggregate(province: Province, energy: CurveSet, reserve: CurveSet, envelope: FloatArray) -> _Market:
    """Stage 2: direct pools, DSO virtual resources, aggregations and coupled direct DERs, one problem."""
    n_if = province.n_interfaces
    k = province.der_interface
    direct_ok = province.interface_flag("direct_wholesale_participation")[k]
    dso_ok = province.interface_flag("dso_aggregates_below_threshold")[k]
    in_aggregation = (province.der_aggregation >= 0) & direct_ok
    direct = _direct_mask(province)
    via_dso = ~in_aggregation & ~direct & dso_ok
    # Direct DERs whose energy and reserve offers could exceed their rating keep a resource of their own
    # (the clearing needs their capacity row); the others are merged exactly per interface.
    coupled = direct & (energy.total_kw() + reserve.total_kw() > province.der_p_max_kw + 1e-9)
    pooled = direct & ~coupled
    individual = np.flatnonzero(coupled)
    n_agg = province.n_aggregations
    dso0, agg0 = n_if, 2 * n_if
    ind0 = agg0 + n_agg
    n_res = ind0 + individual.size

    der_resource = np.full(province.n_ders, -1, dtype=np.int64)
    der_resource[pooled] = k[pooled]
    der_resource[via_dso] = dso0 + k[via_dso]
    der_resource[in_aggregation] = agg0 + province.der_aggregation[in_aggregation]
    der_resource[individual] = ind0 + np.arange(individual.size)
    # Exact merges for the TSO's own reduction (pools, single DERs); at most 10 price bands for the offers
    # a DSO or an aggregator submits.
    limit = np.zeros(n_res, dtype=np.int64)
    limit[dso0:ind0] = 10
    e_order = merit_order(der_resource[energy.owner()], energy.price_cad_per_mwh)
    r_order = merit_order(der_resource[reserve.owner()], reserve.price_cad_per_mwh)
    agg_e = aggregate_curves(energy, der_resource, n_res, max_segments=limit, order=e_order)
    agg_r = aggregate_curves(reserve, der_resource, n_res, max_segments=limit, order=r_order)

    # Aggregations' distribution factors: members' capacity (within envelopes) per interface.
    members = np.flatnonzero(in_aggregation)
    cap = np.minimum(province.der_p_max_kw[members], envelope[members])
    key = province.der_aggregation[members] * n_if + k[members]
    uniq, inv = np.unique(key, return_inverse=True)
    share = sum_by(inv, cap, uniq.size)
    a_of = uniq // n_if
    total = sum_by(a_of, share, n_agg)
    live = total[a_of] > 0
    empty_agg = np.flatnonzero(total == 0)
    df_res = np.concatenate(
        (np.arange(2 * n_if), agg0 + a_of[live], agg0 + empty_agg, ind0 + np.arange(individual.size))
    )
    df_if = np.concatenate(
        (np.arange(n_if), np.arange(n_if), (uniq % n_if)[live], np.zeros(empty_agg.size, dtype=np.int64), k[individual])
    )
    df_f = np.concatenate(
        (np.ones(2 * n_if), share[live] / total[a_of[live]], np.ones(empty_agg.size + individual.size))
    )
    capacity = np.full(n_res, np.inf)
    capacity[ind0:] = province.der_p_max_kw[individual]
    participating = der_resource >= 0
    schedule = sum_by(k[~participating], province.der_output_kw[~participating], n_if)
    inj_min, inj_max = interface_injection_bounds(
        province.load_kw - schedule, province.import_limit_kw, province.export_limit_kw
    )
    problem = ClearingProblem(
        energy=agg_e.curves,
        reserve=agg_r.curves,
        capacity_kw=capacity,
        distribution_factors=DistributionFactors(df_res, df_if, df_f),
        injection_min_kw=inj_min,
        injection_max_kw=inj_max,
        energy_requirement_kw=province.energy_requirement_kw,
        reserve_requirement_kw=province.reserve_requirement_kw,
        shortage_price_cad_per_mwh=SHORTAGE_PRICE_CAD_PER_MWH,
    )
    issuer = np.full(province.n_ders, ISSUER_TSO, dtype=np.int8)
    issuer[via_dso] = ISSUER_DSO
    issuer[in_aggregation] = ISSUER_AGGREGATOR
    band_e = np.where(
        agg_e.segment_band >= 0,
        agg_e.curves.price_cad_per_mwh[np.maximum(agg_e.segment_band, 0)],
        energy.price_cad_per_mwh,
    )
    band_r = np.where(
        agg_r.segment_band >= 0,
        agg_r.curves.price_cad_per_mwh[np.maximum(agg_r.segment_band, 0)],
        reserve.price_cad_per_mwh,
    )
    return _Market(
        problem=problem,
        energy=energy,
        reserve=reserve,
        der_resource=der_resource,
        issuer=issuer,
        direct=direct,
        via_dso=via_dso,
        energy_order=e_order,
        reserve_order=r_order,
        energy_band_price=band_e,
        reserve_band_price=band_r,
        envelope_now_kw=envelope,
        schedule_kw=schedule,
        dso0=dso0,
        agg0=agg0,
        ind0=ind0,
    )


def baseline_problem(market: _Market) -> ClearingProblem:
    """The same market with every participating DER as its own resource, except aggregation members (the
    TSO sees an aggregation as one resource). DSO members carry the band price their DSO offered."""
    p = market.problem
    ders = np.flatnonzero(market.direct | market.via_dso)
    agg = np.arange(market.agg0, market.ind0)
    energy = CurveSet(market.energy.start, market.energy_band_price, market.energy.quantity_kw).take(ders)
    reserve = CurveSet(market.reserve.start, market.reserve_band_price, market.reserve.quantity_kw).take(ders)
    df = p.distribution_factors
    agg_rows = (df.resource >= market.agg0) & (df.resource < market.ind0)
    der_if = df.interface[np.searchsorted(df.resource, market.der_resource[ders])]
    df_res = np.concatenate((np.arange(ders.size), ders.size + df.resource[agg_rows] - market.agg0))
    df_if = np.concatenate((der_if, df.interface[agg_rows]))
    df_f = np.concatenate((np.ones(ders.size), df.factor[agg_rows]))
    der_cap = np.full(ders.size, np.inf)
    own = market.der_resource[ders] >= market.ind0
    der_cap[own] = p.capacity()[market.der_resource[ders][own]]
    return ClearingProblem(
        energy=concat_curves(energy, p.energy.take(agg)),
        reserve=concat_curves(reserve, p.reserve_curves().take(agg)),
        capacity_kw=np.concatenate((der_cap, np.full(agg.size, np.inf))),
        distribution_factors=DistributionFactors(df_res, df_if, df_f),
        injection_min_kw=p.injection_min_kw,
        injection_max_kw=p.injection_max_kw,
        energy_requirement_kw=p.energy_requirement_kw,
        reserve_requirement_kw=p.reserve_requirement_kw,
        shortage_price_cad_per_mwh=p.shortage_price_cad_per_mwh,
    )


def run_cycle(
    province: Province,
    sink: InstructionSink,
    *,
    interval_start: datetime,
    baseline: bool = False,
    baseline_time_limit_s: float = 120.0,
    baseline_solver: str = "simplex",
    other_sink: InstructionSink | None = None,
) -> CycleFigures:
    """Run one interval's cycle on ``province``, timing each stage, and the baseline if asked.

    ``other_sink`` writes the same instructions a second time, timed apart (``CycleFigures.other_persist_s``).
    """
    figures = CycleFigures(n_ders=province.n_ders)
    for idx, model in enumerate(province.models):
        figures.models[model.name.value] = int(np.sum(province.interface_model == idx))
    clock = time.perf_counter

    t = clock()
    energy, reserve, envelope = _validate(province, figures)
    figures.stage_s["validation"] = clock() - t

    t = clock()
    market = _aggregate(province, energy, reserve, envelope)
    figures.stage_s["DSO aggregation"] = clock() - t
    figures.resources = market.problem.n_resources
    figures.participating_ders = int(np.sum(market.der_resource >= 0))

    t = clock()
    first = clear_lp(market.problem)
    figures.stage_s["clearing"] = clock() - t
    figures.lp_columns = int(first.stats["columns"])
    figures.lp_rounds = int(first.stats["rounds"])
    figures.cost_cad_per_h = first.cost_cad_per_h

    t = clock()
    k = province.der_interface
    direct_resource = np.where(market.direct, market.der_resource, -1)
    loop = redispatch_shortfall(
        market.problem,
        market.energy,
        direct_resource,
        k,
        np.where(market.direct, envelope, np.inf),
        first=first,
        order=market.energy_order,
    )
    final = loop.final
    net = net_load_forecast(province.load_kw, market.schedule_kw, final.interface_injection_kw)
    reverse = detect_reverse_flow(net)
    violations = detect_limit_violations(net, province.import_limit_kw, province.export_limit_kw)
    figures.stage_s["distribution checks"] = clock() - t
    figures.shortfall_kw = loop.total_shortfall_kw
    figures.redispatched_kw = loop.total_redispatched_kw
    figures.redispatch_rounds = loop.rounds
    figures.reverse_flow_interfaces = int(reverse.interfaces().size)
    figures.limit_violations = violations.count
    figures.system_price_cad_per_mwh = final.system_energy_price_cad_per_mwh

    t = clock()
    instructions = _disaggregate(market, final, loop.der_cap_kw, interval_start, figures)
    figures.stage_s["disaggregation"] = clock() - t

    t = clock()
    figures.instructions = sink.write(instructions)
    figures.stage_s["persisted instructions"] = clock() - t
    if other_sink is not None:
        t = clock()
        written = other_sink.write(instructions)
        figures.other_persist_s = clock() - t
        if written != figures.instructions:
            raise RuntimeError(f"the two sinks wrote {figures.instructions} and {written} instructions")

    if baseline:
        t = clock()
        problem = baseline_problem(market)
        build_s = clock() - t
        status, cost, solve_s = run_baseline(problem, baseline_time_limit_s, baseline_solver)
        figures.baseline_status = status
        figures.baseline_cost_cad_per_h = cost
        figures.baseline_s = build_s + solve_s
    return figures


def _baseline_child(problem: ClearingProblem, time_limit_s: float, solver: str, conn: Connection) -> None:
    t = time.perf_counter()
    try:
        result = clear_per_der_lp(problem, time_limit_s=time_limit_s, solver=solver)
        conn.send(("optimal", result.cost_cad_per_h, time.perf_counter() - t))
    except ClearingTimeLimit:
        conn.send(("time limit", None, time.perf_counter() - t))
    finally:
        conn.close()


def run_baseline(problem: ClearingProblem, time_limit_s: float, solver: str) -> tuple[str, float | None, float]:
    """Solve the per-DER LP in a child process, stopped after ``time_limit_s`` of wall-clock time.

    HiGHS checks its own time limit between simplex iterations, and on a million columns one iteration can
    take minutes, so the limit is enforced from outside. Returns ``(status, cost, seconds)``.
    """
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_baseline_child, args=(problem, time_limit_s, solver, send), daemon=True)
    t = time.perf_counter()
    child.start()
    send.close()
    # Allow for the child's start-up (a fresh interpreter importing gridbridge) on top of the limit.
    if receive.poll(time_limit_s + 15.0):
        status, cost, seconds = receive.recv()
        child.join()
        return str(status), (None if cost is None else float(cost)), float(seconds)
    child.kill()
    child.join()
    return "time limit", None, time.perf_counter() - t


def _disaggregate(
    market: _Market, final: ClearingResult, der_cap_kw: FloatArray, interval_start: datetime, figures: CycleFigures
) -> InstructionArrays:
    """Stage 5: every resource's instruction split to its DERs at once, energy then reserve, by merit order
    within what each DER may deliver (its envelope; for direct DERs the cap the TSO cleared them with)."""
    available = np.where(market.direct, der_cap_kw, market.envelope_now_kw)
    energy = split_merit_order(
        np.maximum(final.p_kw, 0.0),
        market.der_resource,
        market.energy,
        available_kw=available,
        order=market.energy_order,
    )
    p_e = energy.member_p_kw
    # Reserve within what is left: the envelope beside the energy instruction (DSO and aggregation members);
    # direct DERs' reserve offers already fit beside their energy offers.
    headroom = np.where(market.direct, np.inf, np.maximum(market.envelope_now_kw - p_e, 0.0))
    reserve = split_merit_order(
        final.reserve_kw, market.der_resource, market.reserve, available_kw=headroom, order=market.reserve_order
    )
    p_r = reserve.member_p_kw
    figures.disaggregation_shortfall_kw = float(energy.shortfall_kw.sum() + reserve.shortfall_kw.sum())
    ders = np.flatnonzero(market.der_resource >= 0)
    res_ders = np.flatnonzero((market.der_resource >= 0) & (p_r > 0))
    return InstructionArrays(
        interval_start=interval_start,
        der_index=np.concatenate((ders, res_ders)),
        issuer=np.concatenate((market.issuer[ders], market.issuer[res_ders])),
        parent_index=np.concatenate((market.der_resource[ders], market.der_resource[res_ders])),
        product=np.concatenate(
            (np.full(ders.size, ENERGY, dtype=np.int8), np.full(res_ders.size, RESERVE, dtype=np.int8))
        ),
        p_kw=np.concatenate((p_e[ders], p_r[res_ders])),
    )


def _exponent(n1: int, t1: float, n2: int, t2: float) -> float:
    return math.log(max(t2, 1e-9) / max(t1, 1e-9)) / math.log(n2 / n1)


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def cycle(
    ders: Annotated[str, typer.Option(help="DER counts to run, comma-separated.")] = "10000,100000,1000000",
    interfaces: Annotated[int, typer.Option(help="T-D interfaces in the province.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic province.")] = 1,
    repeats: Annotated[int, typer.Option(help="Cycles per size; stage times are the median.", min=1)] = 1,
    baseline_max_ders: Annotated[
        int, typer.Option(help="Run the per-DER LP baseline up to this many DERs; extrapolate beyond.")
    ] = 1_000_000,
    baseline_time_limit: Annotated[
        float, typer.Option(help="Wall-clock limit of the baseline LP, seconds; beyond it, extrapolate.")
    ] = 120.0,
    baseline_solver: Annotated[
        str, typer.Option(help="HiGHS solver for the baseline: ipm (fastest at scale) or simplex.")
    ] = "ipm",
    sink: Annotated[
        str,
        typer.Option(
            help="Where the instructions go: sqlite (the benchmark's own SQLite file), store (gridbridge's "
            "instructions table through the store), or both (the cycle counts the store; the SQLite file is timed "
            "beside it)."
        ),
    ] = "sqlite",
    db: Annotated[
        str | None,
        typer.Option(
            help="The store's database URL (default: GRIDBRIDGE_DATABASE_URL, else a fresh SQLite file in a "
            "temporary directory; the benchmark deletes its rows again), or with --sink sqlite the SQLite file."
        ),
    ] = None,
) -> None:
    """Benchmark one real-time coordination cycle against a one-LP baseline."""
    if sink not in SINKS:
        raise typer.BadParameter(f"--sink must be one of {', '.join(SINKS)}", param_hint="--sink")
    console = Console(width=None if Console().is_terminal else 132)
    sizes = [int(x) for x in ders.split(",") if x.strip()]
    interval = datetime(2026, 7, 15, 17, 0, tzinfo=UTC)
    results: list[CycleFigures] = []
    with tempfile.TemporaryDirectory() as tmp:
        stores = _StoreSinks(sink, db, Path(tmp), interval)
        for n in sizes:
            t = time.perf_counter()
            province = generate_province(n, interfaces, seed=seed)
            gen_s = time.perf_counter() - t
            console.print(f"[dim]{n:,} DERs: province drawn in {gen_s:.2f} s; running the cycle...[/dim]")
            runs: list[CycleFigures] = []
            for r in range(repeats):
                file_path = Path(db) if (db is not None and sink == "sqlite") else Path(tmp) / f"bench-{n}-{r}.db"
                file_sink = SqliteBenchInstructionSink(file_path)
                store_sink = stores.sink(n, r) if sink != "sqlite" else None
                primary: InstructionSink = store_sink if store_sink is not None else file_sink
                figures = run_cycle(
                    province,
                    primary,
                    interval_start=interval,
                    baseline=r == 0 and n <= baseline_max_ders,
                    baseline_time_limit_s=baseline_time_limit,
                    baseline_solver=baseline_solver,
                    other_sink=file_sink if sink == "both" else None,
                )
                if store_sink is not None:
                    stores.clean(store_sink)
                figures.persist_label = (
                    stores.label if store_sink is not None else "persisted instructions (SQLite file)"
                )
                if sink == "both":
                    figures.other_persist_label = "persisted instructions (SQLite file, not in the cycle)"
                runs.append(figures)
            figures = runs[0]
            figures.stage_s = {stage: float(np.median([run.stage_s[stage] for run in runs])) for stage in STAGES}
            others = [run.other_persist_s for run in runs if run.other_persist_s is not None]
            figures.other_persist_s = float(np.median(others)) if others else None
            results.append(figures)
        stores.close()
    _report(console, results, baseline_time_limit, repeats, baseline_solver)


class _StoreSinks:
    """Store sinks for the benchmark: on ``--db``, ``GRIDBRIDGE_DATABASE_URL``, or a fresh SQLite file per run."""

    def __init__(self, choice: str, db: str | None, tmp: Path, interval: datetime) -> None:
        self.choice = choice
        self.url = db if (db is not None and choice != "sqlite") else os.environ.get(URL_VARIABLE)
        if self.url is not None and "://" not in self.url:
            self.url = f"sqlite:///{Path(self.url).resolve()}"
        self.tmp = tmp
        self.interval = interval
        self.shared: Engine | None = None
        backend = (self.url or "sqlite").split(":", 1)[0].split("+", 1)[0]
        self.label = f"persisted instructions (store, {backend})"

    def sink(self, n: int, r: int) -> StoreInstructionSink:
        """A store sink on a migrated database."""
        if self.url is not None:
            if self.shared is None:
                self.shared = make_engine(self.url)
                schema.upgrade(self.shared)
            engine = self.shared
        else:
            engine = make_engine(f"sqlite:///{self.tmp / f'store-{n}-{r}.db'}")
            schema.upgrade(engine)
        return StoreInstructionSink(
            engine,
            issued_at=self.interval - timedelta(minutes=5),
            der_ids=lambda index: [f"bench-der-{i}" for i in index],
            party_ids=("bench-tso", "bench-dso", "bench-aggregator"),
            der_party="bench-der-owner",
        )

    def clean(self, sink: StoreInstructionSink) -> None:
        """Delete the benchmark's rows from a database it did not create; dispose a per-run engine."""
        if self.url is not None:
            for batch in sink.batches:
                sink.delete_batch(batch)
            if sink.engine.dialect.name == "postgresql":
                # the next run should not pay for this one's dead rows
                with sink.engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE instructions")
        else:
            sink.engine.dispose()

    def close(self) -> None:
        """Dispose the shared engine."""
        if self.shared is not None:
            self.shared.dispose()


def _report(
    console: Console, results: list[CycleFigures], time_limit: float, repeats: int, baseline_solver: str
) -> None:
    runs = f"median of {repeats} runs" if repeats > 1 else "one run"
    table = Table(title=f"gridbridge bench cycle: one real-time interval (seconds, {runs})")
    table.add_column("stage")
    for r in results:
        table.add_column(f"{r.n_ders:,} DERs", justify="right")
    if len(results) >= 2:
        table.add_column(f"growth {results[-2].n_ders:,}->{results[-1].n_ders:,}", justify="right")

    def growth(values: list[float]) -> list[str]:
        if len(results) < 2:
            return []
        e = _exponent(results[-2].n_ders, values[-2], results[-1].n_ders, values[-1])
        return [f"n^{e:.2f}"]

    for stage in STAGES:
        values = [r.stage_s[stage] for r in results]
        label = results[-1].persist_label if stage == "persisted instructions" else stage
        table.add_row(label, *[_fmt(v) for v in values], *growth(values))
    if all(r.other_persist_s is not None for r in results):
        other = [float(r.other_persist_s or 0.0) for r in results]
        table.add_row(f"[dim]{results[-1].other_persist_label}[/dim]", *[_fmt(v) for v in other], *growth(other))
    totals = [r.total_s for r in results]
    cc = [r.clearing_and_checks_s for r in results]
    table.add_row("[bold]whole cycle[/bold]", *[_fmt(v) for v in totals], *growth(totals))
    table.add_row("clearing + checks", *[_fmt(v) for v in cc], *growth(cc))

    # Baseline: measured where it ran; where it hit the time limit, the limit is a measured lower bound; beyond
    # that, an estimate extrapolated from the two largest measured sizes (never faster than linear).
    measured = [(r.n_ders, r.baseline_s) for r in results if r.baseline_status == "optimal" and r.baseline_s]
    base_cells: list[str] = []
    bounds: list[tuple[float | None, float | None, float | None]] = []  # measured, lower bound, estimate
    for r in results:
        est: float | None = None
        if len(measured) >= 2 and r.baseline_status != "optimal":
            (n1, t1), (n2, t2) = measured[-2], measured[-1]
            e = max(_exponent(n1, float(t1 or 0), n2, float(t2 or 0)), 1.0)
            est = float(t2 or 0) * (r.n_ders / n2) ** e
        if r.baseline_status == "optimal" and r.baseline_s is not None:
            base_cells.append(_fmt(r.baseline_s))
            bounds.append((r.baseline_s, None, None))
            continue
        low = time_limit if r.baseline_status == "time limit" else None
        parts = [f"> {time_limit:.0f} (time limit)"] if low else []
        if est is not None:
            parts.append(f"~{_fmt(est)} extrapolated (n^{e:.2f})")
        base_cells.append("; ".join(parts) or "-")
        bounds.append((None, low, est))
    table.add_row(f"baseline: per-DER LP ({baseline_solver})", *base_cells, *([""] if len(results) >= 2 else []))

    def ratio_cells(ours: list[float], digits: int) -> list[str]:
        cells = []
        for t, (meas, low, est) in zip(ours, bounds, strict=True):
            if meas is not None:
                cells.append(f"{meas / t:.{digits}f}x")
                continue
            parts = [f"> {low / t:.{digits}f}x"] if low else []
            if est is not None:
                parts.append(f"~{est / t:.{digits}f}x extrapolated")
            cells.append("; ".join(parts) or "-")
        return cells

    pad = [""] if len(results) >= 2 else []
    agg_clear = [r.stage_s["DSO aggregation"] + r.stage_s["clearing"] for r in results]
    table.add_row("baseline / (aggregation + clearing)", *ratio_cells(agg_clear, 0), *pad)
    table.add_row("baseline / whole cycle", *ratio_cells(totals, 1), *pad)
    console.print(table)

    out = Table(title="outcomes")
    out.add_column("")
    for r in results:
        out.add_column(f"{r.n_ders:,} DERs", justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("interfaces per model", [", ".join(f"{k}={v}" for k, v in r.models.items()) for r in results]),
        ("participating DERs", [f"{r.participating_ders:,}" for r in results]),
        ("offers rejected / clipped", [f"{r.rejected_offers:,} / {r.clipped_offers:,}" for r in results]),
        (
            "clearing resources / LP columns / rounds",
            [f"{r.resources:,} / {r.lp_columns:,} / {r.lp_rounds}" for r in results],
        ),
        ("cost CAD/h (first clearing)", [f"{r.cost_cad_per_h:,.2f}" for r in results]),
        (
            "baseline cost CAD/h",
            [
                f"{r.baseline_cost_cad_per_h:,.2f}" if r.baseline_cost_cad_per_h is not None else r.baseline_status
                for r in results
            ],
        ),
        ("system price CAD/MWh (final)", [f"{r.system_price_cad_per_mwh:.2f}" for r in results]),
        (
            "shortfall MW / re-dispatched MW / rounds",
            [f"{r.shortfall_kw / 1000:.2f} / {r.redispatched_kw / 1000:.2f} / {r.redispatch_rounds}" for r in results],
        ),
        ("disaggregation shortfall kW", [f"{r.disaggregation_shortfall_kw:.3f}" for r in results]),
        (
            "interfaces with reverse flow / limit violations",
            [f"{r.reverse_flow_interfaces} / {r.limit_violations}" for r in results],
        ),
        ("instructions persisted", [f"{r.instructions:,}" for r in results]),
    ]
    for label, cells in rows:
        out.add_row(label, *cells)
    console.print(out)

    big = results[-1]
    checks = [
        (f"whole cycle at {big.n_ders:,} DERs within 20 s", big.total_s <= 20.0, f"{big.total_s:.2f} s"),
        (
            f"clearing and checks at {big.n_ders:,} DERs within 5 s",
            big.clearing_and_checks_s <= 5.0,
            f"{big.clearing_and_checks_s:.2f} s",
        ),
    ]
    meas, low, est = bounds[-1]
    if meas is not None or low is not None:
        ratio = (meas or low or 0.0) / agg_clear[-1]
        kind = "measured" if meas is not None else "measured lower bound: the baseline hit its time limit"
        checks.append(
            (f"at least 20x faster than the per-DER LP (aggregation + clearing, {kind})", ratio >= 20, f"{ratio:.0f}x")
        )
    elif est is not None:
        ratio = est / agg_clear[-1]
        checks.append(("at least 20x faster than the per-DER LP (extrapolated)", ratio >= 20, f"~{ratio:.0f}x"))
    if len(results) >= 2:
        e = _exponent(results[-2].n_ders, results[-2].total_s, big.n_ders, big.total_s)
        checks.append(("whole-cycle cost grows at most linearly", e <= 1.1, f"n^{e:.2f}"))
    for cost_row in results:
        if cost_row.baseline_cost_cad_per_h is not None:
            diff = abs(cost_row.baseline_cost_cad_per_h - cost_row.cost_cad_per_h)
            rel = diff / max(1.0, abs(cost_row.baseline_cost_cad_per_h))
            checks.append(
                (
                    f"same least cost as the baseline at {cost_row.n_ders:,} DERs",
                    rel <= 1e-7,
                    f"relative difference {rel:.1e}",
                )
            )
    for label, ok, value in checks:
        mark = "[green]yes[/green]" if ok else "[red]no[/red]"
        console.print(f"{mark}  {label}: {value}")
