"""The demo's market day: the province ``cli/demo.py`` built, played through the scenario runner.

The day is a ``Scenario`` (the same format as ``gridbridge scenario run``) whose offers name the DERs and
aggregations the demo registered; ``ScenarioRunner.play`` replays it on the registry the demo built (the
name -> id mapping is read back from the database), so the demo and the scenario files share one market player:
offers submitted by each party before gate closure, the DSOs' virtual resources, clearing with the distribution
check and re-dispatch, instructions split down to DERs, and a feeder outage recorded by the DSO at midday.

What each interval carries is scaled to keep the day short: every aggregator's province-wide VPP offers as one
resource, the DSOs merge what they receive into one virtual resource per interface, and only a sample of DERs
(``direct_per_interface`` per interface) offers on its own.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.progress import Progress

from gridbridge.cli.bootstrap import Platform
from gridbridge.cli.output import console
from gridbridge.cli.plots import write_plots
from gridbridge.cli.scenario import kpi_tables
from gridbridge.domain.clock import FixedClock
from gridbridge.domain.coordination import COORDINATION_MODELS
from gridbridge.domain.der import Der, Technology
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.market import route_for_der
from gridbridge.domain.offers import Market
from gridbridge.domain.permissions import Caller, DerScope
from gridbridge.domain.roles import Service
from gridbridge.engines.envelopes import apply_switching, de_energised, process_topology
from gridbridge.engines.envelopes.model_topology import topology_inputs_from_model
from gridbridge.services import aggregations, tdis
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from gridbridge.services.scenario import OFFER_MARGIN, ScenarioNames, ScenarioReport, ScenarioRunner
from gridbridge.services.scenario_kpis import scenario_kpis
from gridbridge.services.scenario_model import HOURS_PER_DAY, Scenario, parse_scenario

PV_PROFILE = [
    0, 0, 0, 0, 0, 0.02, 0.1, 0.25, 0.45, 0.65, 0.8, 0.92,
    1, 0.95, 0.85, 0.7, 0.5, 0.3, 0.12, 0.03, 0, 0, 0, 0,
]  # fmt: skip
"""Share of a PV system's capacity available in each hour (UTC) of the demo day."""
REQUIREMENT_SHARE = [
    0.35, 0.33, 0.32, 0.32, 0.35, 0.42, 0.55, 0.66, 0.7, 0.68, 0.64, 0.6,
    0.58, 0.58, 0.6, 0.64, 0.72, 0.82, 0.85, 0.8, 0.7, 0.58, 0.46, 0.4,
]  # fmt: skip
"""The TSO's energy requirement from the province's DERs in each hour, as a share of what is offered then."""
LOAD_SHAPE = [
    0.55, 0.52, 0.5, 0.5, 0.52, 0.6, 0.72, 0.82, 0.85, 0.83, 0.8, 0.78,
    0.77, 0.77, 0.78, 0.8, 0.86, 0.95, 1.0, 0.97, 0.9, 0.8, 0.68, 0.6,
]  # fmt: skip
"""Each interface's load over the day as a share of its peak (a third of its import limit)."""
PRICES_CAD_PER_MWH = {
    Technology.PV: (0.0, 12.0),
    Technology.STORAGE: (38.0, 70.0),
    Technology.DEMAND_RESPONSE: (95.0, 160.0),
    Technology.CHP: (48.0, 80.0),
    Technology.OTHER: (40.0, 90.0),
}
"""Offer price range of each technology (EV charging only consumes and does not offer)."""
OFFERED_SHARE = 0.9
"""Share of its export capability a resource offers."""


@dataclass(frozen=True)
class DayOptions:
    """How the demo day runs."""

    day: datetime
    """Midnight UTC of the day."""
    real_time: tuple[time, time | None] = (time(0), None)
    """The window of real-time intervals (start inclusive, end exclusive; ``None`` is midnight at the end)."""
    outages: list[tuple[str, str]] = field(default_factory=list)
    """(interface, line) of each cable fault: the line opens at ``outage_start`` for ``outage_minutes``."""
    outage_start: time = time(12, 0)
    outage_minutes: int = 60
    direct_per_interface: int = 2
    """DERs that offer on their own at each interface (not through a VPP)."""


@dataclass(frozen=True)
class _Registered:
    names: ScenarioNames
    participants: list[dict[str, Any]]
    interfaces: list[dict[str, Any]]
    ders: list[Der]
    vpps: list[tuple[str, str, list[str]]]
    """(aggregation name, aggregator name, approved member DER ids) of wholesale-energy aggregations."""
    thresholds_kw: dict[str, float]
    """Interface name -> the size at or above which a DER offers directly."""
    dark_points: set[int]
    """Connection points the day's outages de-energise."""


def _dark_points(ctx: Context, tdi_id: str, line: str) -> set[int]:
    """The connection points that opening ``line`` de-energises (what recording the outage will find)."""
    model = ctx.uow.networks.load(tdi_id)
    if model is None:
        return set()
    inputs = topology_inputs_from_model(model)
    points = ctx.uow.networks.connection_points(tdi_id)
    position = {name: i for i, name in enumerate(inputs.bus_names)}
    topology = process_topology(apply_switching(inputs, [line]))
    dark = de_energised(topology, np.array([position[p.bus] for p in points], dtype=np.int64))
    return {p.id for p, off in zip(points, dark, strict=True) if off}


def _registered(
    platform: Platform, callers: dict[str, Caller], networks: dict[str, str], outages: list[tuple[str, str]]
) -> _Registered:
    """The name -> id mapping of what the demo registered, read back through the services and repositories."""
    names = ScenarioNames()
    with platform.context() as ctx:
        people = ctx.uow.participants.list_all()
        by_id = {p.id: p.name for p in people}
        for p in people:
            names.participants[p.name] = p.id
            if p.name in callers:
                names.callers[p.name] = callers[p.name]
        faces = []
        thresholds = {}
        for tdi in ctx.uow.tdis.list_all():
            names.tdis[tdi.name] = tdi.id
            thresholds[tdi.name] = tdi.direct_threshold_kw
            for point in ctx.uow.networks.connection_points(tdi.id):
                names.points[point.id] = f"{tdi.name}/{point.name}"
            faces.append(
                {
                    "name": tdi.name,
                    "dso": by_id[tdi.dso_id],
                    "model": tdis.model_in_force(ctx.uow, tdi.id, ctx.clock.now()).name.value,
                    "network": networks[tdi.name],
                    "import_limit_kw": tdi.import_limit_kw,
                    "export_limit_kw": tdi.export_limit_kw,
                    "price_node": tdi.price_node,
                }
            )
        ders = ctx.uow.ders.query(DerScope(everything=True), Page(limit=1_000_000))
        for der in ders:
            names.ders[der.name] = der.id
            if der.status in (DerStatus.IN_SERVICE, DerStatus.ENROLLED):
                names.der_points[der.name] = der.connection_point_id
        vpps = []
        for view in aggregations.list_aggregations(ctx, Page(limit=1000)):
            agg = view.aggregation
            names.aggregations[agg.name] = agg.id
            if Service.WHOLESALE_ENERGY in agg.services:
                vpps.append((agg.name, by_id[agg.aggregator_id], [m.der_id for m in agg.approved_members()]))
        dark = {point for face, line in outages for point in _dark_points(ctx, names.tdis[face], line)}
    participants = [
        {"name": p.name, "role": p.role.value, "dso_kind": p.dso_kind.value if p.dso_kind else None} for p in people
    ]
    return _Registered(names, participants, faces, ders, vpps, thresholds, dark)


def _direct_offers(reg: _Registered, options: DayOptions, rng: random.Random) -> list[dict[str, Any]]:
    """A sample of DERs in service, outside any wholesale aggregation, allowed to offer on their own (to the
    TSO, or to the DSO that merges them into its virtual resource), offered by their representative or owner."""
    in_vpp = {der_id for _, _, members in reg.vpps for der_id in members}
    party_of = {v: k for k, v in reg.names.participants.items()}
    models = {f["name"]: COORDINATION_MODELS[f["model"]] for f in reg.interfaces}
    face_of = {v: k for k, v in reg.names.tdis.items()}
    offers: list[dict[str, Any]] = []
    for face in reg.interfaces:
        name = face["name"]
        model = models[name]
        candidates = [
            d
            for d in reg.ders
            if face_of[d.tdi_id] == name
            and d.status is DerStatus.IN_SERVICE
            and d.id not in in_vpp
            and d.technology in PRICES_CAD_PER_MWH
            and d.p_export_kw > 0
            and route_for_der(model, d.capacity_kw, reg.thresholds_kw[name]) is not None
        ]
        # one DER below an outage's open line, offered at the low end of its price range (so that the outage's
        # zero envelopes, the DSO's check and the re-dispatch show), then DERs an aggregator represents: their
        # offers join the aggregator's batch (fewer submissions)
        dark = [d for d in candidates if d.connection_point_id in reg.dark_points]
        picked = [rng.choice(dark)] if dark and options.direct_per_interface else []
        represented = [d for d in candidates if d.representative_id is not None and d not in picked]
        pool = represented if len(represented) >= options.direct_per_interface else candidates
        picked += rng.sample(pool, min(options.direct_per_interface - len(picked), len(pool)))
        for der in picked:
            low, high = PRICES_CAD_PER_MWH[der.technology]
            price = rng.uniform(low, high)
            if der.connection_point_id in reg.dark_points:
                price = low  # the cheapest of its kind, so that the clearing picks it and the outage shows
            offers.append(
                {
                    "resource": der.name,
                    "party": party_of[der.representative_id or der.owner_id],
                    "segments": [[round(price, 2), round(der.p_export_kw * OFFERED_SHARE, 3)]],
                    "profile": PV_PROFILE if der.technology is Technology.PV else None,
                }
            )
    return offers


def _vpp_offers(reg: _Registered, rng: random.Random) -> list[dict[str, Any]]:
    """Each VPP offers 90% of its members' export capability in three price steps, following the sun for its
    PV share, in the day-ahead market (real-time intervals carry the DSOs' virtual resources and the sampled
    DERs: a VPP's offer and split visit every member, which would make the 288 real-time intervals too slow)."""
    export = {d.id: d.p_export_kw for d in reg.ders}
    pv = {d.id for d in reg.ders if d.technology is Technology.PV}
    offers = []
    for name, aggregator, members in reg.vpps:
        total = sum(export[m] for m in members) * OFFERED_SHARE
        if total <= 0:
            continue
        pv_share = sum(export[m] for m in members if m in pv) * OFFERED_SHARE / total
        profile = [round(1 - pv_share + pv_share * f, 3) for f in PV_PROFILE]
        steps = [(rng.uniform(20, 35), 0.4), (rng.uniform(45, 65), 0.35), (rng.uniform(90, 140), 0.25)]
        segments = [[round(price, 2), round(total * share, 3)] for price, share in steps]
        offers.append(
            {"resource": name, "party": aggregator, "segments": segments, "profile": profile, "markets": ["day_ahead"]}
        )
    return offers


def _offered_kw(offers: list[dict[str, Any]], hour: int, market: str) -> float:
    total = 0.0
    for offer in offers:
        if market in offer.get("markets", [market]):
            factor = offer["profile"][hour] if offer.get("profile") else 1.0
            total += sum(float(q) for _, q in offer["segments"]) * factor
    return total


def _requirement(offers: list[dict[str, Any]], market: str) -> list[float]:
    return [round(REQUIREMENT_SHARE[h] * _offered_kw(offers, h, market), 1) for h in range(HOURS_PER_DAY)]


def demo_day_scenario(reg: _Registered, options: DayOptions, rng: random.Random) -> Scenario:
    """The demo day as a scenario on the registered province (see the module docstring)."""
    day = options.day
    offers = _vpp_offers(reg, rng) + _direct_offers(reg, options, rng)
    rt_from, rt_to = options.real_time
    outage_at = datetime.combine(day.date(), options.outage_start, day.tzinfo)
    data = {
        "name": "demo-province-day",
        "description": "gridbridge demo: a day of the demo province",
        "start": day,
        "participants": reg.participants,
        "interfaces": reg.interfaces,
        "offers": offers,
        "markets": {
            "day_ahead": {"from": day, "to": day + timedelta(days=1)},
            "real_time": {
                "from": datetime.combine(day.date(), rt_from, day.tzinfo),
                "to": datetime.combine(day.date(), rt_to, day.tzinfo) if rt_to else day + timedelta(days=1),
            },
            "requirements": {
                "day_ahead": {"energy_kw": _requirement(offers, "day_ahead")},
                "real_time": {"energy_kw": _requirement(offers, "real_time")},
            },
        },
        "load": [
            {"interface": f["name"], "load_kw": [round(f["import_limit_kw"] / 3 * s, 1) for s in LOAD_SHAPE]}
            for f in reg.interfaces
        ],
        "outages": [
            {
                "interface": face,
                "starts_at": outage_at,
                "ends_at": outage_at + timedelta(minutes=options.outage_minutes),
                "open": [line],
                "reason": "cable fault on the feeder",
            }
            for face, line in options.outages
        ],
    }
    return parse_scenario(data, registered=[*reg.names.ders, *reg.names.aggregations])


def play_demo_day(
    platform: Platform,
    clock: FixedClock,
    callers: dict[str, Caller],
    networks: dict[str, str],
    options: DayOptions,
    rng: random.Random,
    on_event: Callable[[int, int], None] | None = None,
) -> ScenarioReport:
    """Play the demo day on the province in ``platform``'s database (built by ``cli/demo.py``) and return the
    scenario report. ``callers``: participant name -> the caller the demo acts as; ``networks``: interface name ->
    its SimBench source."""
    reg = _registered(platform, callers, networks, options.outages)
    scenario = demo_day_scenario(reg, options, rng)
    runner = ScenarioRunner(scenario, platform.context, clock, names=reg.names)
    return runner.play(on_event)


def parse_window(text: str) -> tuple[time, time | None]:
    """``HH:MM-HH:MM`` (UTC, 5-minute grid, ``24:00`` as the end for midnight) -> (start, end or ``None``)."""
    found = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", text.strip())
    problem = "give HH:MM-HH:MM, for example 11:00-13:00"
    if found is not None:
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
            problem = "hours run 00-23 (24:00 only as the end) and minutes 00-59"
        elif start % 5 or end % 5:
            problem = "real-time intervals are 5 minutes long: use multiples of 5 minutes"
        elif end <= start:
            problem = "the end must be after the start"
        else:
            return time(h1, m1), None if end == 24 * 60 else time(h2, m2)
    raise typer.BadParameter(f"{text!r}: {problem}", param_hint="--real-time")


def first_day(now: datetime, platform: Platform) -> datetime:
    """The first midnight (UTC) whose day-ahead hours are all still open at ``now`` (offers go in a minute before
    each gate closure)."""
    lead = platform.settings.registry().market.rules(Market.DAY_AHEAD).gate_closure_lead
    earliest = now + lead + OFFER_MARGIN
    day = datetime.combine(earliest.date(), time(0), UTC)
    return day if day >= earliest else day + timedelta(days=1)


def run_day(
    platform: Platform,
    clock: FixedClock,
    callers: dict[str, Caller],
    networks: dict[str, str],
    rng: random.Random,
    options: DayOptions,
    *,
    out: Path,
    progress: Progress,
) -> ScenarioReport:
    """Play the demo day (``play_demo_day``) with a progress bar, print its key figures, and write the scenario
    report (``report.json``) and the plots into ``out``."""
    with progress:
        task = progress.add_task(f"market day {options.day:%Y-%m-%d}", total=None)
        report = play_demo_day(
            platform,
            clock,
            callers,
            networks,
            options,
            rng,
            on_event=lambda done, total: progress.update(task, completed=done, total=total),
        )
    data = report.as_json()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    for table in kpi_tables(scenario_kpis(data)):
        console.print(table)
    written = write_plots(data, out)
    console.print(f"plots: {', '.join(str(p) for p in written)}; scenario report: {out / 'report.json'}")
    return report
