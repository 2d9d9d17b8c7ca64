"""``gridbridge demo``: a small Ontario-like province taken through the real registry workflows, then a market day.

Everything goes through the same services the API uses, as the participant that would do it: DER owners and
aggregators file interconnection requests, each LDC reviews the requests in its territory, aggregators build
aggregations and every member is reviewed by its LDC. Then the province plays a day of the day-ahead and
real-time markets with a feeder outage at midday (``cli/demo_day.py``, on the scenario runner), and the demo
prints key figures per interface and coordination model and writes plots (``cli/plots.py``).
"""

from __future__ import annotations

import random
import time as wall
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from gridbridge.cli.bootstrap import Platform
from gridbridge.cli.config import Settings
from gridbridge.cli.demo_day import DayOptions, first_day, run_day
from gridbridge.cli.output import console, errors
from gridbridge.cli.scenario import cached_network, preload_networks
from gridbridge.domain.aggregation import MemberStatus, RejectionCategory
from gridbridge.domain.audit import verify_chain
from gridbridge.domain.clock import FixedClock
from gridbridge.domain.coordination import COORDINATION_MODELS, ModelName
from gridbridge.domain.der import DerSpec, MeterPosition, ReviewDecision, Technology
from gridbridge.domain.errors import ConflictError
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.participants import Participant
from gridbridge.domain.permissions import SYSTEM_CALLER, Caller, DerScope
from gridbridge.domain.roles import DsoKind, Role, Service
from gridbridge.services import aggregations, ders, networks, participants, tdis
from gridbridge.services.context import Context
from gridbridge.services.ports import ConnectionPointRef, Page
from gridbridge.store import schema

DEMO_START = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)
TSO_NAME = "IESO"
LDCS = [
    ("Lakeshore Hydro", DsoKind.INDEPENDENT_DSO),
    ("Northshore Utilities", DsoKind.MINIMAL_DSO),
    ("Grand Valley Power", DsoKind.LDC),
]
AGGREGATORS = ["VoltFleet Aggregation", "SunShare Energy", "GridFlex Partners"]
OBSERVER = "Energy Regulator (observer)"
OWNERS = 30
PILOT_SUFFIX = "EV pilot"
VPP_MAX_MEMBERS = 20
"""Members an aggregator asks for in a local VPP (and at most in its province-wide one)."""
VPP_THRESHOLD_MARGIN = 1.5
"""A province-wide VPP takes members at an interface until its capacity there is this many times the interface's
direct-participation threshold (its LDC may reject a few), and only where that takes a handful of members."""
VPP_MEMBERS_PER_INTERFACE = 12
"""Most members a province-wide VPP takes at one interface (at least 3, even where the threshold is 0)."""


@dataclass(frozen=True)
class TdiPlan:
    """One T-D interface of the demo province."""

    name: str
    ldc: int
    model: ModelName
    grid: str
    import_limit_kw: float
    export_limit_kw: float
    outage_line: str | None = None
    """The line a cable fault opens at midday of the demo day (a fifth of the feeder's points go dark)."""


TDI_PLANS = [
    TdiPlan("Leaside TS", 0, ModelName.ALT2_HYBRID_DSO, "1-MV-urban--0-sw", 60_000, 20_000),
    TdiPlan("Esplanade TS", 0, ModelName.TOTAL_DSO, "1-MV-comm--0-sw", 50_000, 15_000),
    TdiPlan("Sudbury North TS", 1, ModelName.ALT1_MINIMAL_DSO, "1-MV-rural--0-sw", 30_000, 10_000, "MV1.101 Line 75"),
    TdiPlan("Muskoka TS", 1, ModelName.TOTAL_TSO, "1-LV-rural2--0-sw", 1_500, 500),
    TdiPlan("Kitchener East TS", 2, ModelName.ALT1_MINIMAL_DSO, "1-MV-semiurb--0-sw", 40_000, 12_000),
    TdiPlan("Guelph South TS", 2, ModelName.ALT2_HYBRID_DSO, "1-LV-semiurb4--0-sw", 2_000, 600),
]

TECHNOLOGY_MIX = [
    (Technology.PV, 0.45),
    (Technology.STORAGE, 0.2),
    (Technology.DEMAND_RESPONSE, 0.15),
    (Technology.EV_CHARGING, 0.15),
    (Technology.CHP, 0.05),
]
REJECTION_REASONS = [
    "Feeder thermal limit: hosting capacity at this point is below the requested export",
    "Protection coordination: reverse fault current exceeds the recloser's rating",
    "Voltage rise above 1.05 pu on the lateral at minimum load",
]


@dataclass
class DemoState:
    """What the demo created, for the summary."""

    ids: dict[str, str] = field(default_factory=dict)
    callers: dict[str, Caller] = field(default_factory=dict)
    tdi_ids: dict[str, str] = field(default_factory=dict)
    points: dict[str, list[ConnectionPointRef]] = field(default_factory=dict)
    der_ids: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    refused_double_enrolment: str | None = None
    rejected_members: int = 0


def _caller(p: Participant, user_id: str) -> Caller:
    return Caller(user_id=user_id, participant_id=p.id, role=p.role, dso_kind=p.dso_kind)


def _prepare_database(platform: Platform, reset: bool) -> None:
    schema.upgrade(platform.engine)
    with platform.unit_of_work() as uow:
        existing = {p.name for p in uow.participants.list_all()}
    if not existing:
        return
    demo_names = {TSO_NAME, OBSERVER, *(n for n, _ in LDCS), *AGGREGATORS} | {
        f"DER owner {i:02d}" for i in range(1, OWNERS + 1)
    }
    if not reset and not existing <= demo_names:
        errors.print(
            "[bold red]error[/] [demo.database_not_empty] the database holds participants that the demo "
            "did not create; use --reset to wipe it, or point GRIDBRIDGE_DATABASE_URL elsewhere"
        )
        raise typer.Exit(2)
    schema.drop_everything(platform.engine)
    schema.upgrade(platform.engine)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_demo(
    n_ders: int = 3000,
    seed: int = 7,
    reset: bool = False,
    *,
    day: bool = True,
    out: Path = Path("gridbridge-demo"),
    real_time: tuple[time, time | None] = (time(0), None),
) -> None:
    """Build the demo province on the configured database and print a summary; then, with ``day``, play a market
    day on it (real-time intervals within ``real_time``), print its key figures and write plots and the scenario
    report to ``out``."""
    clock = FixedClock(DEMO_START)
    platform = Platform(Settings(), clock=clock, network_loader=cached_network)
    rng = random.Random(seed)
    state = DemoState()
    _prepare_database(platform, reset)
    console.print(f"[bold]gridbridge demo[/] on {platform.engine.url.render_as_string(hide_password=True)}")
    started = wall.perf_counter()
    console.print(f"reading {len(TDI_PLANS)} SimBench grids")  # no spinner: its thread must not be forked
    preload_networks([f"simbench:{plan.grid}" for plan in TDI_PLANS])
    with _progress() as progress:
        _participants(platform, state)
        _interfaces(platform, state, progress)
        _ders(platform, state, rng, clock, n_ders, progress)
        _aggregations(platform, state, rng, clock, progress)
    _summary(platform, state)
    console.print(f"registry built in {wall.perf_counter() - started:.1f} s")
    if day:
        started = wall.perf_counter()
        networks = {plan.name: f"simbench:{plan.grid}" for plan in TDI_PLANS}
        outages = [(plan.name, plan.outage_line) for plan in TDI_PLANS if plan.outage_line]
        options = DayOptions(first_day(clock.now(), platform), real_time, outages=outages)
        run_day(platform, clock, state.callers, networks, rng, options, out=out, progress=_progress())
        console.print(f"day played in {wall.perf_counter() - started:.1f} s")


def _participants(platform: Platform, state: DemoState) -> None:
    specs: list[tuple[str, Role, DsoKind | None]] = [(TSO_NAME, Role.TSO, None), (OBSERVER, Role.OBSERVER, None)]
    specs += [(name, Role.DSO, kind) for name, kind in LDCS]
    specs += [(name, Role.AGGREGATOR, None) for name in AGGREGATORS]
    specs += [(f"DER owner {i:02d}", Role.DER_OWNER, None) for i in range(1, OWNERS + 1)]
    with platform.context() as ctx:
        for name, role, kind in specs:
            p = participants.create_participant(ctx, name, role, kind)
            username = name.lower().replace(" ", "-").replace("(", "").replace(")", "")
            user = participants.create_user(ctx, p.id, username)
            state.ids[name] = p.id
            state.callers[name] = _caller(p, user.id)
            if role is not Role.DER_OWNER:
                state.tokens[username] = participants.issue_token(ctx, user.id, "demo")


def _interfaces(platform: Platform, state: DemoState, progress: Progress) -> None:
    task = progress.add_task("T-D interfaces and SimBench grids", total=len(TDI_PLANS))
    for plan in TDI_PLANS:
        ldc_name = LDCS[plan.ldc][0]
        with platform.context(state.callers[TSO_NAME]) as ctx:
            tdi = tdis.create_tdi(
                ctx,
                name=plan.name,
                price_node=plan.name.upper().replace(" ", "_"),
                dso_id=state.ids[ldc_name],
                model=plan.model,
                import_limit_kw=plan.import_limit_kw,
                export_limit_kw=plan.export_limit_kw,
            )
        state.tdi_ids[plan.name] = tdi.id
        with platform.context(state.callers[ldc_name]) as ctx:
            networks.import_network(ctx, tdi.id, f"simbench:{plan.grid}")
        with platform.unit_of_work() as uow:
            state.points[plan.name] = uow.networks.connection_points(tdi.id)
        progress.advance(task)


def _spec(rng: random.Random, index: int) -> DerSpec:
    technology = rng.choices([t for t, _ in TECHNOLOGY_MIX], [w for _, w in TECHNOLOGY_MIX])[0]
    size = round(rng.lognormvariate(2.3, 0.9), 1) + 1.0  # kW, mostly residential, some commercial
    if technology is Technology.PV:
        return DerSpec(f"PV-{index:05d}", technology, size, 0.0, None, None, MeterPosition.BEHIND_THE_METER)
    if technology is Technology.STORAGE:
        return DerSpec(
            f"BESS-{index:05d}",
            technology,
            size,
            size,
            round(size * rng.choice([2, 4]), 1),
            size / 2,
            MeterPosition.BEHIND_THE_METER,
        )
    if technology is Technology.EV_CHARGING:
        return DerSpec(f"EV-{index:05d}", technology, 0.0, min(size, 19.2), None, None, MeterPosition.BEHIND_THE_METER)
    if technology is Technology.DEMAND_RESPONSE:
        return DerSpec(f"DR-{index:05d}", technology, size, 0.0, None, None, MeterPosition.BEHIND_THE_METER)
    return DerSpec(f"CHP-{index:05d}", technology, size * 10, 0.0, None, None, MeterPosition.FRONT_OF_THE_METER)


def _batch(
    platform: Platform,
    caller: Caller,
    items: list[str],
    action: Callable[[Context, str], None],
    progress: Progress,
    task: TaskID,
) -> None:
    """Apply ``action`` to each DER id of ``items`` as ``caller``, 250 per transaction, advancing ``task``."""
    for chunk in _chunks(items, 250):
        with platform.context(caller) as ctx:
            ctx.uow.ders.get_many(chunk)  # read at once; the repository holds them for the transaction
            for item in chunk:
                action(ctx, item)
        progress.advance(task, len(chunk))


def _ders(
    platform: Platform, state: DemoState, rng: random.Random, clock: FixedClock, n_ders: int, progress: Progress
) -> None:
    owners = [f"DER owner {i:02d}" for i in range(1, OWNERS + 1)]
    task = progress.add_task("interconnection requests", total=n_ders)
    plans = list(TDI_PLANS)
    filed: dict[str, list[str]] = {LDCS[i][0]: [] for i in range(len(LDCS))}
    for start in range(0, n_ders, 250):
        count = min(250, n_ders - start)
        with platform.context() as ctx:
            for index in range(start, start + count):
                plan = rng.choice(plans)
                point = rng.choice(state.points[plan.name])
                via_aggregator = rng.random() < 0.6
                owner = rng.choice(owners)
                ctx.caller = state.callers[rng.choice(AGGREGATORS)] if via_aggregator else state.callers[owner]
                der = ders.request_interconnection(
                    ctx, _spec(rng, index), point.id, owner_id=state.ids[owner] if via_aggregator else None
                )
                filed[LDCS[plan.ldc][0]].append(der.id)
                state.der_ids.append(der.id)
        progress.advance(task, count)
    clock.advance(timedelta(days=3))
    for ldc_name, der_ids in filed.items():
        ldc = state.callers[ldc_name]
        review = progress.add_task(f"{ldc_name}: technical review", total=len(der_ids))

        def decide(ctx: Context, der_id: str) -> None:
            ders.start_review(ctx, der_id)
            roll = rng.random()
            if roll < 0.07:
                ders.decide_review(
                    ctx,
                    der_id,
                    ReviewDecision.REJECTED,
                    rng.choice(REJECTION_REASONS),
                    attachments=["hosting-capacity-study.pdf"],
                )
            elif roll < 0.97:
                ders.decide_review(
                    ctx,
                    der_id,
                    ReviewDecision.APPROVED,
                    "Within hosting capacity; standard protection settings",
                    attachments=["connection-agreement.pdf"],
                )
                if rng.random() < 0.93:
                    ders.commission(ctx, der_id)
            # the rest stay under review, some past their deadline later in the demo

        _batch(platform, ldc, der_ids, decide, progress, review)
    clock.advance(timedelta(days=14))


def _aggregations(
    platform: Platform, state: DemoState, rng: random.Random, clock: FixedClock, progress: Progress
) -> None:
    valid_from = clock.now() + timedelta(days=1)
    in_service: dict[str, list[tuple[str, str, str]]] = {a: [] for a in AGGREGATORS}
    capacity: dict[str, float] = {}
    with platform.unit_of_work() as uow:
        found = uow.ders.get_many(state.der_ids)
        for der_id in state.der_ids:
            der = found[der_id]
            capacity[der.id] = der.capacity_kw
            for name in AGGREGATORS:
                if der.representative_id == state.ids[name] and der.status is DerStatus.IN_SERVICE:
                    in_service[name].append((der.id, der.tdi_id, der.dso_id))
        thresholds = {t.id: t.direct_threshold_kw for t in uow.tdis.list_all()}
    task = progress.add_task("aggregations and LDC member review", total=len(AGGREGATORS) + 2)
    # a province-wide VPP offers to the TSO directly, so it takes members only where the model allows direct
    # participation and a few members reach the interface's threshold (alt 1 and Total TSO); at the other
    # interfaces (alt 2's higher threshold, Total DSO) an aggregator runs a local VPP that reaches the market through
    # the DSO's virtual resource
    direct = {state.tdi_ids[p.name] for p in TDI_PLANS if COORDINATION_MODELS[p.model].direct_wholesale_participation}
    local_vpp = {
        state.tdi_ids[p.name]: AGGREGATORS[k % len(AGGREGATORS)]
        for k, p in enumerate(TDI_PLANS)
        if COORDINATION_MODELS[p.model].dso_aggregates_below_threshold
    }
    created: dict[str, str] = {}
    for a_index, name in enumerate(AGGREGATORS):
        caller = state.callers[name]
        pool = in_service[name]
        by_tdi: dict[str, list[str]] = {}
        for der_id, tdi_id, _ in pool:
            by_tdi.setdefault(tdi_id, []).append(der_id)
        members, local_members = [], {}
        for tdi_id, candidates in sorted(by_tdi.items()):
            ranked = candidates
            target = thresholds[tdi_id] * VPP_THRESHOLD_MARGIN
            taken = 0
            while taken < len(ranked) and taken < VPP_MEMBERS_PER_INTERFACE:
                if taken >= 3 and sum(capacity[d] for d in ranked[:taken]) >= target:
                    break
                taken += 1
            if tdi_id in direct and sum(capacity[d] for d in ranked[:taken]) >= target:
                members += ranked[:taken]
            elif local_vpp.get(tdi_id) == name:
                local_members[tdi_id] = sorted(candidates)[:VPP_MAX_MEMBERS]
        if not members:
            # a province too small for any threshold (``--ders 60``): the VPP still enrols DERs where direct
            # participation is allowed, and the day shows its offers refused below the thresholds
            taken_locally = {d for chosen in local_members.values() for d in chosen}
            members = [d for d, tdi, _ in pool if tdi in direct and d not in taken_locally][:VPP_MAX_MEMBERS]
        with platform.context(caller) as ctx:
            multi = aggregations.create_aggregation(
                ctx,
                f"{name} province-wide VPP",
                {Service.WHOLESALE_ENERGY: None, Service.OPERATING_RESERVE: None},
                multi_tdi=True,
            )
            if members:
                aggregations.request_members(ctx, multi.id, members, valid_from)
            created[name] = multi.id
            for tdi_id, chosen in sorted(local_members.items()):
                tdi_name = next(p.name for p in TDI_PLANS if state.tdi_ids[p.name] == tdi_id)
                local_energy = aggregations.create_aggregation(
                    ctx, f"{name} {tdi_name} VPP", {Service.WHOLESALE_ENERGY: None}
                )
                aggregations.request_members(ctx, local_energy.id, chosen, valid_from)
            biggest_tdi = max(by_tdi, key=lambda t: len(by_tdi[t]))
            local = aggregations.create_aggregation(
                ctx, f"{name} local flexibility", {Service.DISTRIBUTION_SERVICES: 50.0}
            )
            aggregations.request_members(ctx, local.id, by_tdi[biggest_tdi][: 40 + 10 * a_index], valid_from)
            others = [t for t in sorted(by_tdi) if t != biggest_tdi]
            if a_index == len(AGGREGATORS) - 1 and others:
                # a newly registered pilot whose members the LDC has not reviewed yet
                pilot = aggregations.create_aggregation(
                    ctx, f"{name} {PILOT_SUFFIX}", {Service.DISTRIBUTION_SERVICES: 200.0}
                )
                aggregations.request_members(ctx, pilot.id, by_tdi[others[0]][:25], valid_from)
        progress.advance(task)
    # each LDC reviews the members in its territory: most approved, a few rejected with a stated reason,
    # some left pending so aggregations stay under review
    for ldc_name, _ in LDCS:
        caller = state.callers[ldc_name]
        with platform.context(caller) as ctx:
            for view in aggregations.list_aggregations(ctx, Page(limit=1000)):
                for member in view.members:
                    if member.status is not MemberStatus.PENDING or member.dso_id != caller.participant_id:
                        continue
                    if view.aggregation.name.endswith(PILOT_SUFFIX):
                        continue  # still under review when the demo ends
                    roll = rng.random()
                    if roll < 0.05:
                        category = rng.choice(list(RejectionCategory))
                        aggregations.review_member(
                            ctx,
                            view.aggregation.id,
                            member.id,
                            ReviewDecision.REJECTED,
                            "Feeder under planned maintenance; DER cannot respond safely",
                            category,
                        )
                        state.rejected_members += 1
                    elif roll < 0.85 or view.aggregation.name.endswith("VPP"):
                        aggregations.review_member(ctx, view.aggregation.id, member.id, ReviewDecision.APPROVED)
    progress.advance(task)
    # one aggregator disputes a rejection, and one double enrolment is refused
    clock.advance(timedelta(days=2))
    first = AGGREGATORS[0]
    with platform.context(state.callers[first]) as ctx:
        view = aggregations.get_aggregation(ctx, created[first])
        rejected = [m for m in view.members if m.status is MemberStatus.REJECTED]
        if rejected:
            aggregations.dispute_rejection(
                ctx, created[first], rejected[0].id, "The maintenance window ends before the enrolment period starts"
            )
        enrolled = next(m.der_id for m in view.members if m.status is MemberStatus.APPROVED)
    with platform.context(state.callers[first]) as ctx:
        rival = aggregations.create_aggregation(
            ctx, f"{first} energy-only pool", {Service.WHOLESALE_ENERGY: None}, multi_tdi=True
        )
    try:
        with platform.context(state.callers[first]) as ctx:
            aggregations.request_members(ctx, rival.id, [enrolled], valid_from + timedelta(days=7))
    except ConflictError as refused:
        state.refused_double_enrolment = f"[{refused.code}] {refused.message}"
    progress.advance(task)


def _summary(platform: Platform, state: DemoState) -> None:
    table = Table(title="Demo province: T-D interfaces", show_lines=False)
    for column in (
        "T-D interface",
        "LDC",
        "model",
        "SimBench grid",
        "points",
        "DERs",
        "in service/enrolled",
        "rejected",
        "under review",
    ):
        table.add_column(
            column,
            justify="right"
            if column in ("points", "DERs", "in service/enrolled", "rejected", "under review")
            else "left",
        )
    totals: Counter[str] = Counter()
    with platform.unit_of_work() as uow:
        ctx = Context(uow=uow, caller=SYSTEM_CALLER, clock=platform.clock)
        for plan in TDI_PLANS:
            tdi_id = state.tdi_ids[plan.name]
            statuses = Counter(
                d.status for d in uow.ders.query(DerScope(everything=True), Page(limit=1_000_000), tdi_id=tdi_id)
            )
            operating = statuses[DerStatus.IN_SERVICE] + statuses[DerStatus.ENROLLED]
            pending = statuses[DerStatus.REQUESTED] + statuses[DerStatus.UNDER_REVIEW]
            total = sum(statuses.values())
            totals.update(
                {
                    "ders": total,
                    "operating": operating,
                    "rejected": statuses[DerStatus.REJECTED],
                    "pending": pending,
                    "points": len(state.points[plan.name]),
                }
            )
            table.add_row(
                plan.name,
                LDCS[plan.ldc][0],
                plan.model.value,
                plan.grid,
                str(len(state.points[plan.name])),
                str(total),
                str(operating),
                str(statuses[DerStatus.REJECTED]),
                str(pending),
            )
        table.add_row(
            "[bold]total[/]",
            "",
            "",
            "",
            str(totals["points"]),
            str(totals["ders"]),
            str(totals["operating"]),
            str(totals["rejected"]),
            str(totals["pending"]),
        )
        console.print(table)
        aggs = Table(title="Aggregations")
        for column in (
            "aggregation",
            "aggregator",
            "markets",
            "members approved/rejected/pending",
            "capacity kW",
            "interfaces",
        ):
            aggs.add_column(column)
        names = {v: k for k, v in state.ids.items()}
        for view in aggregations.list_aggregations(ctx, Page(limit=1000)):
            agg = view.aggregation
            counts = Counter(m.status for m in agg.members)
            markets = ", ".join(f"{m.service.value}: {m.status.value}" for m in agg.markets)
            aggs.add_row(
                agg.name,
                names.get(agg.aggregator_id, agg.aggregator_id),
                markets,
                f"{counts[MemberStatus.APPROVED]}/{counts[MemberStatus.REJECTED]}/{counts[MemberStatus.PENDING]}",
                f"{agg.approved_capacity_kw():,.0f}",
                str(len(view.distribution_factors)),
            )
        console.print(aggs)
        check = verify_chain(uow.audit.entries())
    console.print(
        Text.assemble("double enrolment refused: ", state.refused_double_enrolment or ("none", "red")), soft_wrap=True
    )
    console.print(f"audit chain: {'intact' if check.ok else 'BROKEN'} ({check.records_checked} records)")
    tokens = Table(title="API tokens (send as 'Authorization: Bearer <token>')")
    tokens.add_column("user")
    tokens.add_column("token")
    for username in ("ieso", "lakeshore-hydro", "voltfleet-aggregation", "energy-regulator-observer"):
        tokens.add_row(username, state.tokens[username])
    console.print(tokens)
    console.print("Serve it with [bold]gridbridge serve[/] and open http://127.0.0.1:8000/docs")
