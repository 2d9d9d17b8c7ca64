"""``gridbridge bench envelopes``: the envelope engine against the naive method, measured in one run.

On a SimBench grid (default ``1-MVLV-semiurb-all-0-sw``, about 8,400 connection points) the benchmark

1. loads the grid and builds the envelope network (pandapower's model, the first AC solve with numba
   compilation, the self-check against ``runpp``): one-time costs, reported apart;
2. for each horizon (default 96 and 288 five-minute intervals) computes export and import envelopes with AC
   verification, re-linearisation and tightening (:func:`~gridbridge.services.envelopes.compute_envelopes`)
   and reports the time of every stage, envelope values per second and the verification result;
3. measures the naive method in the same process: for ``--naive-points`` sampled connection points of the
   first interval, the export and the import limit by bisection with one full ``pandapower.runpp`` per
   probe; the mean time per (point, direction) is extrapolated to every point, both directions and every
   interval of each horizon; also the all-points-at-once bisection of the ``equal`` envelope
   (``--naive-equal``), extrapolated to every interval;
4. prints ratios: naive time over the engine's compute time (forecast to verified envelopes), and over the
   limit computation alone; and checks the issue's targets (>= 10,000x, 288 intervals with AC verification in
   under 60 s, zero intervals beyond tolerance).

Wall-clock and CPU seconds are both reported: on a shared machine the wall clock also counts other
processes (the load average at start and end is printed).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from gridbridge.adapters.network_io import load_pandapower_source
from gridbridge.adapters.powerflow.forecast import SimbenchProfileForecast
from gridbridge.adapters.powerflow.naive import naive_equal_limit_kw, naive_point_limit_kw
from gridbridge.adapters.powerflow.network import PandapowerEnvelopeNetwork
from gridbridge.domain.clock import FixedClock
from gridbridge.domain.envelopes import AllocationPolicy, Direction, NetworkLimits
from gridbridge.services.envelopes import EnvelopeRequest, EnvelopeRun, compute_envelopes

console = Console()
DEFAULT_GRID = "1-MVLV-semiurb-all-0-sw"
#: A summer day (PV export) in SimBench's profile year.
DEFAULT_START = "2016-06-21T00:00:00+00:00"
TARGET_RATIO = 10_000.0
TARGET_SECONDS_288 = 60.0


@dataclass
class _Clock:
    """Wall and CPU seconds of a block."""

    wall: float = 0.0
    cpu: float = 0.0
    _w: float = field(default=0.0, repr=False)
    _c: float = field(default=0.0, repr=False)

    def __enter__(self) -> _Clock:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c


def _run_horizon(
    model: PandapowerEnvelopeNetwork,
    forecast: SimbenchProfileForecast,
    start: datetime,
    intervals: int,
    interval_minutes: int,
    policy: AllocationPolicy,
    limits: NetworkLimits,
) -> tuple[EnvelopeRun, _Clock]:
    request = EnvelopeRequest(
        start=start, intervals=intervals, interval_minutes=interval_minutes, policy=policy, limits=limits
    )
    with _Clock() as clock:
        run = compute_envelopes(request, model, forecast, clock=FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
    return run, clock


def envelopes(
    grid: Annotated[str, typer.Option("--grid", help="SimBench code")] = DEFAULT_GRID,
    intervals: Annotated[
        list[int] | None, typer.Option("--intervals", help="Horizons to run (repeat the option); default 96 and 288")
    ] = None,
    interval_minutes: Annotated[int, typer.Option("--interval-minutes", help="5, 15 or 30")] = 5,
    policy: Annotated[AllocationPolicy, typer.Option("--policy")] = AllocationPolicy.EQUAL,
    naive_points: Annotated[int, typer.Option("--naive-points", min=1, help="Sampled points for the naive method")] = 4,
    naive_equal: Annotated[
        bool, typer.Option("--naive-equal/--no-naive-equal", help="Also time the all-at-once bisection")
    ] = True,
    start: Annotated[str, typer.Option("--start", help="First interval (ISO 8601 with zone)")] = DEFAULT_START,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the point sample")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON here")] = None,
) -> None:
    """Benchmark the envelope engine against the naive method (bisection with AC power flows per point)."""
    horizons = intervals or [96, 288]
    first_start = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC)
    limits = NetworkLimits()
    load_start = os.getloadavg()[0]
    report: dict[str, Any] = {"grid": grid, "policy": policy.value, "interval_minutes": interval_minutes}
    warnings.simplefilter("ignore")

    with _Clock() as load:
        net = load_pandapower_source(f"simbench:{grid}")
    with _Clock() as build:
        model = PandapowerEnvelopeNetwork(net, name=grid)
        forecast = SimbenchProfileForecast(model)
        p0, q0 = model.stored_injections()
        model.run_ac(p0[None, :], q0[None, :])  # pandapower model, numba compilation, self-check
    m = len(model.connection_point_buses)
    report["buses"] = len(model.bus_names)
    report["connection_points"] = m
    report["one_time_s"] = {"load_simbench": load.wall, "build_network_and_first_ac": build.wall}
    console.print(
        f"[bold]{grid}[/]: {len(model.bus_names)} buses, {m} connection points; "
        f"load {load.wall:.1f} s, model build + first AC solve {build.wall:.1f} s (one-time)"
    )

    runs: dict[int, dict[str, Any]] = {}
    for horizon in horizons:
        run, clock = _run_horizon(model, forecast, first_start, horizon, interval_minutes, policy, limits)
        timings = dict(run.log.timings_s)
        summary = run.summary()
        limits_s = timings.get("export_limits", 0.0) + timings.get("import_limits", 0.0)
        values = 2 * m * horizon
        runs[horizon] = {
            "wall_s": clock.wall,
            "cpu_s": clock.cpu,
            "stages_s": timings,
            "limits_s": limits_s,
            "values": values,
            "values_per_s": values / clock.wall,
            "limit_values_per_s": values / limits_s if limits_s > 0 else float("inf"),
            "summary": summary,
            "failed_intervals": run.export.failed_intervals + run.import_.failed_intervals,
            "equal_export_kw_first": float(run.export.p_max_kw[0, 0]) if m else 0.0,
            "equal_import_kw_first": float(run.import_.p_max_kw[0, 0]) if m else 0.0,
        }
        console.print(
            f"{horizon} intervals: {clock.wall:.1f} s wall ({clock.cpu:.1f} s CPU), "
            f"{values / clock.wall:,.0f} envelope values/s"
        )

    # the naive method on a sample of points of the first interval
    ref = PandapowerEnvelopeNetwork(net, name=grid, ac_backend="runpp")
    fc0 = forecast.bus_forecast([first_start], interval_minutes)
    ref.run_ac(fc0.p_inj_mw, fc0.q_inj_mvar)  # compile and build once before timing
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(m, size=min(naive_points, m), replace=False))
    naive_rows = []
    naive_time = 0.0
    naive_pf = 0
    for j in sample:
        bus = int(model.connection_point_buses[j])
        for direction in (Direction.EXPORT, Direction.IMPORT):
            res = naive_point_limit_kw(ref, fc0.p_inj_mw[0], fc0.q_inj_mvar[0], bus, direction, limits)
            naive_time += res.seconds
            naive_pf += res.power_flows
            naive_rows.append((model.bus_names[bus], direction.value, res.p_max_kw, res.power_flows, res.seconds))
    per_point_direction_s = naive_time / (2 * len(sample))
    report["naive"] = {
        "sampled_points": len(sample),
        "seconds_per_point_and_direction": per_point_direction_s,
        "power_flows_per_point_and_direction": naive_pf / (2 * len(sample)),
        "seconds_per_point_and_interval": 2 * per_point_direction_s,
        "samples": [
            {"bus": b, "direction": d, "p_max_kw": v, "power_flows": n, "seconds": s} for b, d, v, n, s in naive_rows
        ],
    }
    equal_naive: dict[str, Any] = {}
    if naive_equal:
        for direction in (Direction.EXPORT, Direction.IMPORT):
            res = naive_equal_limit_kw(
                ref, fc0.p_inj_mw[0], fc0.q_inj_mvar[0], model.connection_point_buses, direction, limits
            )
            equal_naive[direction.value] = {
                "p_max_kw": res.p_max_kw,
                "seconds": res.seconds,
                "power_flows": res.power_flows,
            }
        report["naive_equal_all_at_once"] = equal_naive

    table = Table(title=f"bench envelopes: {grid} ({m} points, {policy.value}, {interval_minutes}-min intervals)")
    table.add_column("figure")
    for horizon in horizons:
        table.add_column(f"{horizon} intervals", justify="right")

    def row(label: str, fn: Any) -> None:
        table.add_row(label, *(fn(horizon, runs[horizon]) for horizon in horizons))

    stage_names = (
        "prepare",
        "base_power_flow",
        "export_limits",
        "export_verification",
        "import_limits",
        "import_verification",
    )
    for stage in stage_names:
        row(f"stage {stage} (s)", lambda h, r, s=stage: f"{r['stages_s'].get(s, 0.0):.2f}")
    row("compute total, wall (s)", lambda h, r: f"{r['wall_s']:.2f}")
    row("compute total, CPU (s)", lambda h, r: f"{r['cpu_s']:.2f}")
    row("end to end incl. load and build (s)", lambda h, r: f"{r['wall_s'] + load.wall + build.wall:.2f}")
    row("envelope values (2 x points x intervals)", lambda h, r: f"{r['values']:,}")
    row("values per second (compute total)", lambda h, r: f"{r['values_per_s']:,.0f}")
    row("values per second (limit computation)", lambda h, r: f"{r['limit_values_per_s']:,.0f}")
    for h in horizons:
        r = runs[h]
        r["naive_extrapolated_s"] = per_point_direction_s * 2 * m * h
        r["ratio_vs_compute"] = r["naive_extrapolated_s"] / r["wall_s"]
        r["ratio_vs_limits"] = r["naive_extrapolated_s"] / r["limits_s"] if r["limits_s"] > 0 else float("inf")
        if equal_naive:
            per_interval = equal_naive["export"]["seconds"] + equal_naive["import"]["seconds"]
            r["naive_equal_extrapolated_s"] = per_interval * h
            r["ratio_equal_vs_compute"] = per_interval * h / r["wall_s"]
    row("naive per-point bisection, extrapolated (h)", lambda h, r: f"{r['naive_extrapolated_s'] / 3600:,.1f}")
    row("ratio naive / compute total", lambda h, r: f"{r['ratio_vs_compute']:,.0f}x")
    row("ratio naive / limit computation", lambda h, r: f"{r['ratio_vs_limits']:,.0f}x")
    if equal_naive:
        row("naive all-at-once bisection, extrapolated (s)", lambda h, r: f"{r['naive_equal_extrapolated_s']:,.0f}")
        row("ratio all-at-once naive / compute total", lambda h, r: f"{r['ratio_equal_vs_compute']:,.1f}x")

    def worst(r: dict[str, Any], key: str) -> float:
        summary = r["summary"]
        return float(max(summary.get(f"export_{key}", 0), summary.get(f"import_{key}", 0)))

    row(
        "intervals verified (export/import)",
        lambda h, r: f"{r['summary']['export_verified']}/{r['summary']['import_verified']}",
    )
    row("intervals beyond tolerance", lambda h, r: str(r["failed_intervals"]))
    row("max voltage excursion (pu)", lambda h, r: f"{worst(r, 'max_v_violation_pu'):.5f}")
    row("max loading overshoot (%)", lambda h, r: f"{worst(r, 'max_loading_overshoot_pct'):.3f}")
    row("AC rounds (max)", lambda h, r: f"{worst(r, 'rounds_max'):.0f}")
    row(
        "equal limit, first interval, export/import (kW)",
        lambda h, r: f"{r['equal_export_kw_first']:.3f}/{r['equal_import_kw_first']:.3f}",
    )
    console.print(table)
    console.print(
        f"naive: {len(sample)} points x 2 directions, {per_point_direction_s:.2f} s and "
        f"{naive_pf / (2 * len(sample)):.0f} pandapower.runpp per point and direction "
        f"({2 * per_point_direction_s:.2f} s per point and interval)"
    )
    for b, d, v, n, s in naive_rows:
        console.print(f"  naive {d:6s} {b}: {v:.2f} kW ({n} power flows, {s:.2f} s)")
    if equal_naive:
        console.print(
            "naive all-at-once equal limit, first interval: "
            + ", ".join(
                f"{d} {v['p_max_kw']:.3f} kW ({v['power_flows']} power flows, {v['seconds']:.1f} s)"
                for d, v in equal_naive.items()
            )
        )
    load_end = os.getloadavg()[0]
    console.print(f"load average (1 min) at start {load_start:.2f}, at end {load_end:.2f} on {os.cpu_count()} CPUs")

    checks = []
    for h in horizons:
        r = runs[h]
        checks.append(
            (f"{h} intervals: naive / compute >= {TARGET_RATIO:,.0f}x", r["ratio_vs_compute"] >= TARGET_RATIO)
        )
        checks.append((f"{h} intervals: zero intervals beyond tolerance", r["failed_intervals"] == 0))
        if h == 288:
            checks.append(
                (
                    f"288 intervals incl. AC verification < {TARGET_SECONDS_288:.0f} s (compute)",
                    r["wall_s"] < TARGET_SECONDS_288,
                )
            )
            checks.append(
                (
                    f"288 intervals end to end incl. load < {TARGET_SECONDS_288:.0f} s",
                    r["wall_s"] + load.wall + build.wall < TARGET_SECONDS_288,
                )
            )
    for label, ok in checks:
        console.print(f"{'[green]met[/]' if ok else '[red]not met[/]'}  {label}")
    report["runs"] = {str(h): runs[h] for h in horizons}
    report["targets"] = dict(checks)
    report["load_average"] = {"start": load_start, "end": load_end, "cpus": os.cpu_count()}
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2, default=float))
        console.print(f"figures written to {json_out}")
