"""Key figures of a scenario run, computed from its report alone (``ScenarioReport.as_json()`` or the JSON file).

Per T-D interface and per coordination model, for each market: the intervals cleared, the energy cleared (the
dispatched injection at the interface over each interval's length), the energy price (mean over the intervals
with a price, minimum, maximum), the dispatch the distribution check removed that the TSO re-dispatched at the
interface, the energy the distribution check curtailed, and the largest import and export through the
interface. Per interface, the conflicts recorded (by kind, where they were caught and the rule that resolved them,
with how many instructions or commitments the resolutions reduced or cancelled) and the curtailment requests (by
published rule: the kW asked for and how they were shared between DSO-aggregated DERs and direct participants).
Messages are counted per party as the report counts them. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
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
    peak_import_kw: float | None
    """The largest net flow from transmission into distribution (0 when it never imports), over the intervals
    whose net flow is known (the TSO gave a load forecast); None when none is."""
    peak_export_kw: float | None
    """The largest reverse flow into transmission (0 when it never exports), over the same intervals."""


@dataclass(frozen=True)
class ConflictKpi:
    """The conflicts of one kind at one interface, caught at one stage and resolved by one rule."""

    interface: str
    model: str
    kind: str
    stage: str
    rule: str
    conflicts: int
    reduced: int
    """Instructions or commitments the resolutions reduced."""
    cancelled: int
    """Instructions or commitments the resolutions cancelled."""


@dataclass(frozen=True)
class CurtailmentKpi:
    """The curtailment requests at one interface under one published rule."""

    interface: str
    model: str
    rule: str
    requests: int
    required_kwh: float
    """The reductions asked for, kW times each window's length."""
    dso_aggregated_kwh: float
    direct_kwh: float


@dataclass(frozen=True)
class ScenarioKpis:
    """The key figures of one report."""

    by_interface: list[KpiRow]
    by_model: list[KpiRow]
    messages_per_party: dict[str, int]
    """Messages sent by each party, most first (ties by name)."""
    conflicts: list[ConflictKpi] = field(default_factory=list)
    """By interface (in the order of the report's models), kind, stage and rule."""
    curtailment_requests: list[CurtailmentKpi] = field(default_factory=list)
    """By interface (in the order of the report's models) and rule."""

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
    # A flow without a load forecast holds the DERs' injection only: it says nothing about the interface's peak.
    net = [float(r["net_flow_kw"]) for r in flows if r.get("net_flow_known", True)]
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
        peak_import_kw=max(0.0, *net) if net else None,
        peak_export_kw=max(0.0, *(-f for f in net)) if net else None,
    )


def _rows(groups: Iterable[tuple[str, str, set[str]]], report: Mapping[str, Any]) -> list[KpiRow]:
    out: list[KpiRow] = []
    for name, model, faces in groups:
        for market, hours in HOURS_PER_INTERVAL.items():
            row = _row(name, model, market, faces, report, hours)
            if row is not None:
                out.append(row)
    return out


def _grouped(
    rows: Iterable[Mapping[str, Any]], keys: tuple[str, ...], models: Mapping[str, str]
) -> list[tuple[tuple[str, ...], list[Mapping[str, Any]]]]:
    """``rows`` grouped by the values of ``keys`` (the first is the interface), interfaces in the order of the
    report's models, then by the other keys."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row[k]) for k in keys), []).append(row)
    order = {face: k for k, face in enumerate(models)}
    return sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0]))


def _conflicts(report: Mapping[str, Any], models: Mapping[str, str]) -> list[ConflictKpi]:
    out = []
    for (face, kind, stage, rule), found in _grouped(
        report.get("conflicts", []), ("interface", "kind", "stage", "rule"), models
    ):
        actions = [o["action"] for c in found for o in c["outcomes"]]
        counts = (len(found), actions.count("reduced"), actions.count("cancelled"))
        out.append(ConflictKpi(face, models.get(face, "?"), kind, stage, rule, *counts))
    return out


def _hours(row: Mapping[str, Any]) -> float:
    start, end = datetime.fromisoformat(row["window_start"]), datetime.fromisoformat(row["window_end"])
    return (end - start).total_seconds() / 3600


def _curtailment_requests(report: Mapping[str, Any], models: Mapping[str, str]) -> list[CurtailmentKpi]:
    out = []
    for (face, rule), found in _grouped(report.get("curtailment_requests", []), ("interface", "rule"), models):
        kwh = [sum(float(r[k]) * _hours(r) for r in found) for k in ("required_kw", "dso_aggregated_kw", "direct_kw")]
        out.append(CurtailmentKpi(face, models.get(face, "?"), rule, len(found), *kwh))
    return out


def scenario_kpis(report: Mapping[str, Any]) -> ScenarioKpis:
    """The key figures of ``report`` (the JSON form of a ``ScenarioReport``): one row per interface and market in
    the order of ``report["models"]``, one per coordination model and market (models in order of first
    appearance), and the messages per party. Energy is kW times the interval's length (1 h day-ahead, 5 min
    real-time); an interface or model without a cleared interval in a market has no row for it. Conflicts and
    curtailment requests are counted where the report has them (older reports without those keys have none)."""
    models: Mapping[str, str] = report["models"]
    by_model: dict[str, set[str]] = {}
    for face, model in models.items():
        by_model.setdefault(model, set()).add(face)
    messages = sorted(report["messages_per_party"].items(), key=lambda kv: (-kv[1], kv[0]))
    return ScenarioKpis(
        by_interface=_rows(((face, model, {face}) for face, model in models.items()), report),
        by_model=_rows(((model, model, faces) for model, faces in by_model.items()), report),
        messages_per_party={party: int(count) for party, count in messages},
        conflicts=_conflicts(report, models),
        curtailment_requests=_curtailment_requests(report, models),
    )
