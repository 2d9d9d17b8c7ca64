"""Key figures of a scenario run, computed from its report alone (``ScenarioReport.as_json()`` or the JSON file).

Per T-D interface and per coordination model, for each market: the intervals cleared, the energy cleared (the
dispatched injection at the interface over each interval's length), the energy price (mean over the intervals
with a price, minimum, maximum), the dispatch the distribution check removed that the TSO re-dispatched at the
interface, the energy the distribution check curtailed, and the largest import and export through the
interface. Messages are counted per party as the report counts them. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

HOURS_PER_INTERVAL = {"day_ahead": 1.0, "real_time": 5 / 60}
"""How long an interval of each market lasts, in hours."""


@dataclass(frozen=True)
class KpiRow:
    """One interface (or one coordination model) in one market."""

    name: str
    """The interface's name, or the model's name for a per-model row."""
    model: str
    market: str
    interfaces: int
    intervals: int
    energy_cleared_mwh: float
    price_mean_cad_per_mwh: float | None
    price_min_cad_per_mwh: float | None
    price_max_cad_per_mwh: float | None
    redispatched_kwh: float
    curtailed_kwh: float
    peak_import_kw: float
    """The largest net flow from transmission into distribution (0 when it never imports)."""
    peak_export_kw: float
    """The largest reverse flow into transmission (0 when it never exports)."""


@dataclass(frozen=True)
class ScenarioKpis:
    """The key figures of one report."""

    by_interface: list[KpiRow]
    by_model: list[KpiRow]
    messages_per_party: dict[str, int]
    """Messages sent by each party, most first (ties by name)."""

    @property
    def messages_total(self) -> int:
        """Every message the report counts."""
        return sum(self.messages_per_party.values())


def _row(name: str, model: str, market: str, faces: set[str], report: Mapping[str, Any], hours: float) -> KpiRow | None:
    def mine(key: str) -> list[dict[str, Any]]:
        return [r for r in report[key] if r["market"] == market and r["interface"] in faces]

    flows = mine("interfaces")
    if not flows:
        return None
    prices = [float(p["energy_price_cad_per_mwh"]) for p in mine("prices") if p["energy_price_cad_per_mwh"] is not None]
    net = [float(r["net_flow_kw"]) for r in flows]
    return KpiRow(
        name=name,
        model=model,
        market=market,
        interfaces=len(faces),
        intervals=len({r["interval_start"] for r in flows}),
        energy_cleared_mwh=sum(float(r["injection_kw"]) for r in flows) * hours / 1000,
        price_mean_cad_per_mwh=sum(prices) / len(prices) if prices else None,
        price_min_cad_per_mwh=min(prices) if prices else None,
        price_max_cad_per_mwh=max(prices) if prices else None,
        redispatched_kwh=sum(float(r["redispatched_kw"]) for r in flows) * hours,
        curtailed_kwh=sum(float(c["curtailed_kw"]) for c in mine("curtailments")) * hours,
        peak_import_kw=max(0.0, *net),
        peak_export_kw=max(0.0, *(-f for f in net)),
    )


def _rows(groups: Iterable[tuple[str, str, set[str]]], report: Mapping[str, Any]) -> list[KpiRow]:
    out: list[KpiRow] = []
    for name, model, faces in groups:
        for market, hours in HOURS_PER_INTERVAL.items():
            row = _row(name, model, market, faces, report, hours)
            if row is not None:
                out.append(row)
    return out


def scenario_kpis(report: Mapping[str, Any]) -> ScenarioKpis:
    """The key figures of ``report`` (the JSON form of a ``ScenarioReport``): one row per interface and market in
    the order of ``report["models"]``, one per coordination model and market (models in order of first
    appearance), and the messages per party. Energy is kW times the interval's length (1 h day-ahead, 5 min
    real-time); an interface or model without a cleared interval in a market has no row for it."""
    models: Mapping[str, str] = report["models"]
    by_model: dict[str, set[str]] = {}
    for face, model in models.items():
        by_model.setdefault(model, set()).add(face)
    messages = sorted(report["messages_per_party"].items(), key=lambda kv: (-kv[1], kv[0]))
    return ScenarioKpis(
        by_interface=_rows(((face, model, {face}) for face, model in models.items()), report),
        by_model=_rows(((model, model, faces) for model, faces in by_model.items()), report),
        messages_per_party={party: int(count) for party, count in messages},
    )
