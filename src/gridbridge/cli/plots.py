"""Plots of a scenario report: net load (the net flow at each T-D interface, kW) and the energy price at each
interface (CAD/MWh) over the day, day-ahead hours as steps and real-time intervals as lines, outages shaded.

Each plot is written twice: a PNG (matplotlib, no display or browser needed) and an interactive HTML page
(plotly; the pages share one ``plotly.min.js`` written next to them, so they open offline).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

MARKETS = {"day_ahead": "day-ahead", "real_time": "real-time"}


@dataclass(frozen=True)
class _Series:
    interface: str
    market: str
    x: list[datetime]
    y: list[float | None]


@dataclass(frozen=True)
class _Plot:
    stem: str
    title: str
    y_label: str
    series: list[_Series]


def _series(report: Mapping[str, Any], key: str, value: Callable[[dict[str, Any]], float | None]) -> list[_Series]:
    out = []
    for face in report["models"]:
        for market in MARKETS:
            rows = sorted(
                (r for r in report[key] if r["interface"] == face and r["market"] == market),
                key=lambda r: str(r["interval_start"]),
            )
            if rows:
                times = [datetime.fromisoformat(r["interval_start"]) for r in rows]
                values = [value(r) for r in rows]
                if market == "day_ahead":  # the last hour's step runs to its end
                    times.append(times[-1] + timedelta(hours=1))
                    values.append(values[-1])
                out.append(_Series(face, market, times, values))
    return out


def _price(row: dict[str, Any]) -> float | None:
    price = row["energy_price_cad_per_mwh"]
    return None if price is None else float(price)


def _net_flow(row: dict[str, Any]) -> float | None:
    """The interface's net flow, or None (a gap in the line) where no load forecast made it known."""
    return float(row["net_flow_kw"]) if row.get("net_flow_known", True) else None


def _plots(report: Mapping[str, Any]) -> list[_Plot]:
    return [
        _Plot(
            "net-load",
            "Net load at each T-D interface (import from transmission positive)",
            "kW",
            _series(report, "interfaces", _net_flow),
        ),
        _Plot("prices", "Energy price at each T-D interface", "CAD/MWh", _series(report, "prices", _price)),
    ]


def _grid(n: int) -> tuple[int, int]:
    cols = 2 if n > 1 else 1
    return math.ceil(n / cols), cols


def _outages(report: Mapping[str, Any], face: str) -> list[tuple[datetime, datetime]]:
    return [
        (datetime.fromisoformat(o["starts_at"]), datetime.fromisoformat(o["ends_at"]))
        for o in report["outages"]
        if o["interface"] == face
    ]


def _png(report: Mapping[str, Any], plot: _Plot, path: Path) -> None:
    from matplotlib.figure import Figure

    faces = list(report["models"])
    rows, cols = _grid(len(faces))
    fig = Figure(figsize=(7 * cols, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for k, face in enumerate(faces):
        ax = axes[k // cols][k % cols]
        for s in (s for s in plot.series if s.interface == face):
            y = [math.nan if v is None else v for v in s.y]
            label = MARKETS[s.market]
            if s.market == "day_ahead":
                ax.step(s.x, y, where="post", label=label, linewidth=1.6)
            else:
                ax.plot(s.x, y, label=label, linewidth=0.9)
        for start, end in _outages(report, face):
            ax.axvspan(start, end, color="tab:red", alpha=0.15, label="outage")
        ax.set_title(f"{face} ({report['models'][face]})", fontsize=9)
        ax.set_ylabel(plot.y_label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for k in range(len(faces), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.suptitle(plot.title)
    fig.savefig(path, dpi=90)


def _html(report: Mapping[str, Any], plot: _Plot, path: Path) -> None:
    from plotly.subplots import make_subplots

    faces = list(report["models"])
    rows, cols = _grid(len(faces))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{f} ({report['models'][f]})" for f in faces])
    for k, face in enumerate(faces):
        at = {"row": k // cols + 1, "col": k % cols + 1}
        for s in (s for s in plot.series if s.interface == face):
            fig.add_scatter(
                x=s.x,
                y=s.y,
                name=f"{face} {MARKETS[s.market]}",
                line_shape="hv" if s.market == "day_ahead" else "linear",
                **at,
            )
        for start, end in _outages(report, face):
            fig.add_vrect(x0=start, x1=end, fillcolor="red", opacity=0.15, line_width=0, **at)
        fig.update_yaxes(title_text=plot.y_label, **at)
    fig.update_layout(title=f"{report['scenario']}: {plot.title}", height=320 * rows)
    fig.write_html(path, include_plotlyjs="directory")


def write_plots(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write ``net-load`` and ``prices`` of ``report`` (a scenario report's JSON form) as PNG and HTML into
    ``out_dir`` (created if needed) and return the files written, PNGs first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(report)
    written = []
    for plot in plots:
        _png(report, plot, out_dir / f"{plot.stem}.png")
        written.append(out_dir / f"{plot.stem}.png")
    for plot in plots:
        _html(report, plot, out_dir / f"{plot.stem}.html")
        written.append(out_dir / f"{plot.stem}.html")
    return written
