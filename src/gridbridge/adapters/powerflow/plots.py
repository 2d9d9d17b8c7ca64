"""Plots of an envelope run: a heatmap of the limits (connection points by time) and the feeder voltage
profile with every point at its limits. Each is written as a PNG (matplotlib, no display needed) and as a
self-contained interactive HTML page (plotly, with plotly.js embedded so it opens offline).

Large networks are condensed for the heatmap: points are ordered by feeder and bus name and, beyond
``max_rows`` points, grouped into ``max_rows`` consecutive bands showing the smallest limit of each band
(so nothing looks looser than it is).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from gridbridge.engines.envelopes._types import FloatArray
from gridbridge.services.envelopes import EnvelopeRun


@dataclass(frozen=True)
class PlotFiles:
    """Paths of the files written."""

    heatmap_png: Path
    heatmap_html: Path
    profile_png: Path
    profile_html: Path


def _condense(run: EnvelopeRun, max_rows: int) -> tuple[list[str], FloatArray, FloatArray]:
    """Row labels and (rows, T) export and import limits, ordered by feeder and bus, banded if needed."""
    feeders = [f or "" for f in run.point_feeders]
    order = sorted(range(len(run.point_names)), key=lambda j: (feeders[j], run.point_names[j]))
    exp = run.export.p_max_kw[:, order].T
    imp = run.import_.p_max_kw[:, order].T
    names = [f"{feeders[j]} / {run.point_names[j]}" if feeders[j] else run.point_names[j] for j in order]
    m = len(order)
    if m <= max_rows:
        return names, exp, imp
    edges = np.linspace(0, m, max_rows + 1).astype(int)
    labels = [f"{names[a]} .. ({b - a} points)" for a, b in itertools.pairwise(edges.tolist())]
    exp_b = np.minimum.reduceat(exp, edges[:-1], axis=0)
    imp_b = np.minimum.reduceat(imp, edges[:-1], axis=0)
    return labels, exp_b, imp_b


def _times(run: EnvelopeRun) -> list[str]:
    return [s.strftime("%Y-%m-%d %H:%M") for s in run.interval_starts]


def _critical_interval(run: EnvelopeRun) -> int:
    """The interval with the smallest total export limit (the tightest)."""
    if run.intervals == 0:
        return 0
    return int(np.argmin(run.export.p_max_kw.sum(axis=1)))


def write_heatmap(run: EnvelopeRun, png: Path, html: Path, *, max_rows: int = 300) -> None:
    """Write the export and import limit heatmaps (points by interval) as PNG and HTML."""
    labels, exp, imp = _condense(run, max_rows)
    times = _times(run)
    fig = Figure(figsize=(12, 8), dpi=100)
    FigureCanvasAgg(fig)
    for i, (title, data, cmap) in enumerate(
        (("export limit (kW)", exp, "viridis"), ("import limit (kW)", imp, "magma"))
    ):
        ax = fig.add_subplot(1, 2, i + 1)
        image = ax.imshow(data, aspect="auto", interpolation="nearest", cmap=cmap)
        bar = fig.colorbar(image, ax=ax, label=title)
        bar.ax.ticklabel_format(useOffset=False, style="plain")
        ax.set_title(f"{title}, {run.policy.value} policy")
        ax.set_xlabel("interval start (UTC)")
        ticks = np.linspace(0, len(times) - 1, min(6, len(times))).astype(int)
        ax.set_xticks(ticks)
        ax.set_xticklabels([times[t] for t in ticks], rotation=30, ha="right", fontsize=7)
        if i == 0:
            ax.set_ylabel(f"connection points ({len(run.point_names)}, by feeder)")
        ax.set_yticks([])
    fig.suptitle(f"Operating envelopes: {run.network_name}")
    fig.tight_layout()
    fig.savefig(png)

    pfig = make_subplots(rows=1, cols=2, subplot_titles=("export limit (kW)", "import limit (kW)"))
    pfig.add_trace(go.Heatmap(z=exp, x=times, y=labels, colorscale="Viridis", colorbar={"x": 0.45}), 1, 1)
    pfig.add_trace(go.Heatmap(z=imp, x=times, y=labels, colorscale="Magma"), 1, 2)
    pfig.update_yaxes(showticklabels=False)
    pfig.update_layout(title=f"Operating envelopes: {run.network_name} ({run.policy.value})", height=800)
    pfig.write_html(html, include_plotlyjs=True, full_html=True)


def write_voltage_profile(run: EnvelopeRun, png: Path, html: Path) -> int:
    """Write bus voltage against line distance from the substation for the tightest interval: the forecast,
    every point at its export limit and every point at its import limit, with the band. Returns the
    interval shown."""
    k = _critical_interval(run)
    dist = run.bus_distance_km
    series: list[tuple[str, FloatArray, str]] = [("forecast (base case)", run.base_vm_pu[k], "tab:gray")]
    if run.export.vm_pu is not None:
        series.append(("all points at export limit", run.export.vm_pu[k], "tab:red"))
    if run.import_.vm_pu is not None:
        series.append(("all points at import limit", run.import_.vm_pu[k], "tab:blue"))
    when = run.interval_starts[k].strftime("%Y-%m-%d %H:%M UTC") if run.intervals else ""
    fig = Figure(figsize=(11, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, vm, color in series:
        ok = np.isfinite(vm) & np.isfinite(dist)
        ax.scatter(dist[ok], vm[ok], s=4, alpha=0.6, color=color, label=label)
    for v in (run.limits.v_min_pu, run.limits.v_max_pu):
        ax.axhline(v, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("line distance from the substation (km)")
    ax.set_ylabel("voltage (pu)")
    ax.set_title(f"Feeder voltage profile at the limits, {run.network_name}, {when}")
    ax.legend(loc="best", markerscale=3)
    fig.tight_layout()
    fig.savefig(png)

    pfig = go.Figure()
    for label, vm, _color in series:
        ok = np.isfinite(vm) & np.isfinite(dist)
        names = [run.bus_names[i] for i in np.flatnonzero(ok)]
        pfig.add_trace(go.Scattergl(x=dist[ok], y=vm[ok], mode="markers", name=label, text=names, marker={"size": 4}))
    for v in (run.limits.v_min_pu, run.limits.v_max_pu):
        pfig.add_hline(y=v, line_dash="dash")
    pfig.update_layout(
        title=f"Feeder voltage profile at the limits, {run.network_name}, {when}",
        xaxis_title="line distance from the substation (km)",
        yaxis_title="voltage (pu)",
    )
    pfig.write_html(html, include_plotlyjs=True, full_html=True)
    return k


def write_plots(run: EnvelopeRun, directory: Path) -> PlotFiles:
    """Write both plots into ``directory`` (created if needed) and return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = PlotFiles(
        heatmap_png=directory / "envelope_heatmap.png",
        heatmap_html=directory / "envelope_heatmap.html",
        profile_png=directory / "voltage_profile.png",
        profile_html=directory / "voltage_profile.html",
    )
    write_heatmap(run, files.heatmap_png, files.heatmap_html)
    write_voltage_profile(run, files.profile_png, files.profile_html)
    return files
