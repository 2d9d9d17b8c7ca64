"""The TSO's clearing of one market interval, the distribution check of its dispatch, and the net-flow forecast.

``clear_interval`` (the TSO, after gate closure) takes the offers in force that reach the TSO's market (DERs
offering directly, aggregations, DSOs' virtual resources), models every resource at its T-D interface (an
aggregation through its distribution factors), and clears the TSO's energy and reserve requirement within each
interface's import and export limits (``gridbridge.engines.clearing``: merit order where the problem is
nested, else the LP with HiGHS; prices per interface from the duals, ties broken in resource order).

What happens at each interface is read from its coordination-model record, never from the model's name:

* ``tso_applies_der_envelopes`` (Total TSO): each direct DER's envelope in force (an aggregation's members'
  envelopes, through its distribution factors) is a constraint of the clearing itself (its curve is cut to it);
* otherwise the record's ``distribution_limit_checker`` (the DSO) checks every direct DER's, aggregation's and
  DSO virtual resource's dispatch against what it may deliver under the envelopes in force (0 for a DER that is
  suspended or out of service; an aggregation per interface through its distribution factors; a virtual
  resource by the resources behind its member offers); what a resource may not deliver is curtailed with a
  written reason, handed back to the TSO as a shortfall per interface, and the TSO re-dispatches other resources
  until none is beyond its limit (``engines.shortfall.redispatch_shortfall``).

The run is stored with its inputs digest, prices as ``Decimal`` (CAD/MWh, to the cent), every resource's
dispatch and every curtailment. The net-flow forecast per interface is ``load - DER schedules - dispatched
injection``: the TSO's load forecast, the injection scheduled by instructions in force from outside the run
(``_scheduled_kw``: day-ahead schedules in a real-time run, distribution-service dispatches, TSO load
curtailments), and the run's dispatch. Where the TSO gives no load forecast the flow is partial and no reverse
flow is claimed; where the known flow is negative (distribution exporting to transmission, beyond the
``reverse_flow_threshold_kw`` setting) every TSO participant gets a stored notification.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np

from gridbridge.domain.audit import canonical
from gridbridge.domain.coordination import CoordinationModel, coordination_model
from gridbridge.domain.der import Der
from gridbridge.domain.errors import ConflictError, NotFound, ValidationFailed
from gridbridge.domain.market import (
    ALREADY_CLEARED,
    GATE_OPEN,
    ClearingRun,
    Curtailment,
    Instruction,
    InstructionProduct,
    InterfaceForecast,
    InterfaceResult,
    MarketScope,
    Notification,
    NotificationKind,
    ResourceKind,
    ResourceResult,
    Route,
    StoredOffer,
)
from gridbridge.domain.offers import Market, Product, Side, price_from_float, require_interval_start
from gridbridge.domain.permissions import Action, require_action
from gridbridge.domain.roles import Role
from gridbridge.domain.tdi import TDInterface, assignment_at
from gridbridge.domain.validation import require_non_negative
from gridbridge.engines.clearing import (
    ClearingProblem,
    ClearingResult,
    CurveSet,
    DistributionFactors,
    clear,
    interface_injection_bounds,
)
from gridbridge.engines.clearing.curves import cap_curves
from gridbridge.engines.netflow import detect_reverse_flow, net_load_forecast
from gridbridge.engines.shortfall import redispatch_shortfall
from gridbridge.services.context import Context
from gridbridge.services.market_ports import DerLimits
from gridbridge.services.offers import (
    aggregation_members_at,
    curves_of,
    der_capability_kw,
    der_offer_limit,
    market_scope,
    members_available_kw,
)
from gridbridge.services.ports import Page

_TOL_KW = 1e-6


@dataclass
class _Interface:
    tdi: TDInterface
    model: CoordinationModel


@dataclass
class _Resource:
    """One resource as the TSO clears it (an energy offer with its reserve offer, an energy bid, or reserve
    alone)."""

    kind: ResourceKind
    resource_id: str
    side: Side
    energy: StoredOffer | None
    reserve: StoredOffer | None
    factors: dict[str, float] = field(default_factory=dict)
    party_id: str = ""
    tdi_id: str | None = None
    dso_id: str | None = None
    der: Der | None = None
    cap_kw: float = math.inf
    """A constraint of the clearing itself on energy (plus reserve): a Total-TSO DER's envelope."""
    capacity_kw: float = math.inf


@dataclass(frozen=True)
class _Deliverable:
    """What a resource may deliver under the envelopes in force at the interval (kW), and why."""

    total_kw: float
    """In all: at each interface at most what its members there may deliver, through its distribution factors."""
    by_tdi: dict[str, float]
    """What its members (or, for a DER, the DER itself) at each interface may deliver."""
    binding: dict[str, str]
    """Per interface, what binds there (a DER's binding limit, or the members cut by theirs)."""


@dataclass
class _Check:
    """A resource whose energy dispatch the interface's distribution limit checker checks."""

    position: int
    deliverable: _Deliverable


@dataclass
class _Market:
    interfaces: list[_Interface]
    resources: list[_Resource]
    problem: ClearingProblem
    checks: list[_Check]
    """Resources (direct DERs, aggregations, DSO virtual resources) whose dispatch is checked after clearing."""
    limits: dict[str, DerLimits]
    load_kw: np.ndarray
    """The TSO's load forecast per interface (0 where it gave none)."""
    schedule_kw: np.ndarray
    load_known: np.ndarray
    """Per interface: whether the TSO gave a load forecast."""


def _interfaces_in_force(ctx: Context, when: datetime) -> list[_Interface]:
    assignments = ctx.uow.tdis.all_assignments()
    out = []
    for tdi in sorted(ctx.uow.tdis.list_all(), key=lambda t: t.id):
        current = assignment_at(assignments.get(tdi.id, []), when)
        if current is not None:
            out.append(_Interface(tdi, coordination_model(current.model)))
    return out


def _resources(ctx: Context, offers: list[StoredOffer], when: datetime) -> list[_Resource]:
    """Group the offers in force into clearing resources, in a stable order (kind, id, side)."""
    by_resource: dict[tuple[ResourceKind, str], dict[tuple[Product, Side], StoredOffer]] = defaultdict(dict)
    for offer in offers:
        by_resource[(offer.resource_kind, offer.resource_id)][(offer.product, offer.side)] = offer
    out: list[_Resource] = []
    for (kind, resource_id), own in sorted(by_resource.items()):
        energy_offer = own.get((Product.ENERGY, Side.OFFER))
        energy_bid = own.get((Product.ENERGY, Side.BID))
        reserve = own.get((Product.OPERATING_RESERVE, Side.OFFER))
        if energy_offer is not None or reserve is not None:
            out.append(_Resource(kind, resource_id, Side.OFFER, energy_offer, reserve))
        if energy_bid is not None:
            out.append(_Resource(kind, resource_id, Side.BID, energy_bid, None))
    ders = ctx.uow.ders.get_many(r.resource_id for r in out if kind_is_der(r))
    for r in out:
        first = r.energy or r.reserve
        assert first is not None
        r.party_id, r.tdi_id, r.dso_id = first.party_id, first.tdi_id, first.dso_id
        if kind_is_der(r):
            r.der = ders.get(r.resource_id)
            if r.der is not None:
                r.factors = {r.der.tdi_id: 1.0}
        elif r.kind is ResourceKind.DSO_VIRTUAL:
            r.factors = {r.resource_id: 1.0}
        elif r.kind is ResourceKind.AGGREGATION:
            aggregation = ctx.uow.aggregations.get(r.resource_id)
            if aggregation is not None:
                r.factors = aggregation.distribution_factors()
    return out


def kind_is_der(resource: _Resource) -> bool:
    """True for a DER offering on its own."""
    return resource.kind is ResourceKind.DER


def _build(
    ctx: Context,
    market: Market,
    interval_start: datetime,
    interval_end: datetime,
    energy_requirement_kw: float,
    reserve_requirement_kw: float,
    forecasts: Mapping[str, InterfaceForecast],
) -> _Market:
    interfaces = _interfaces_in_force(ctx, interval_start)
    index = {f.tdi.id: k for k, f in enumerate(interfaces)}
    unknown = sorted(set(forecasts) - {t.id for t in ctx.uow.tdis.list_all()})
    if unknown:
        raise NotFound(f"no T-D interface {unknown[0]}", field="forecasts")
    offers = ctx.uow.market.offers.current(market, interval_start, route=Route.TSO)
    resources = [r for r in _resources(ctx, offers, interval_start) if r.factors and set(r.factors) <= set(index)]
    der_ids = [r.resource_id for r in resources if r.der is not None]
    limits = ctx.uow.market.envelopes.der_limits(der_ids, interval_start, interval_end)
    checks: list[_Check] = []
    for n, r in enumerate(resources):
        deliverable = _deliverable(ctx, r, limits, interval_start, interval_end)
        if deliverable is None:
            continue
        if all(interfaces[index[t]].model.tso_applies_der_envelopes for t in r.factors):
            r.cap_kw = deliverable.total_kw
        elif r.side is Side.OFFER and r.energy is not None:
            checks.append(_Check(n, deliverable))
        if r.der is not None and r.side is Side.OFFER and r.reserve is not None and r.energy is not None:
            r.capacity_kw = min(r.cap_kw, r.der.p_export_kw if r.der.p_export_kw > 0 else r.der.p_import_kw)
    n_res = len(resources)
    empty: list[StoredOffer] = []
    energy = curves_of([r.energy for r in resources if r.energy is not None] or empty)
    with_energy = [n for n, r in enumerate(resources) if r.energy is not None]
    energy = _spread(energy, with_energy, n_res)
    reserve = _spread(
        curves_of([r.reserve for r in resources if r.reserve is not None] or empty),
        [n for n, r in enumerate(resources) if r.reserve is not None],
        n_res,
    )
    cap = np.array([r.cap_kw for r in resources], dtype=np.float64)
    energy = cap_curves(energy, cap)
    reserve = cap_curves(reserve, np.maximum(cap - energy.total_kw(), 0.0))
    capacity = np.array([r.capacity_kw for r in resources], dtype=np.float64)
    df_res, df_if, df_f = [], [], []
    for n, r in enumerate(resources):
        for tdi_id, factor in sorted(r.factors.items()):
            df_res.append(n)
            df_if.append(index[tdi_id])
            df_f.append(factor)
    known = np.array([f.tdi.id in forecasts for f in interfaces], dtype=bool)
    load = np.array([forecasts[f.tdi.id].load_kw if k else 0.0 for f, k in zip(interfaces, known, strict=True)])
    schedule = _scheduled_kw(ctx, interfaces, resources, interval_start, interval_end)
    # without a load forecast the interface limits are applied as if its load were 0 (its export limit binds
    # the injection then, where real load would let more flow in)
    inj_min, inj_max = interface_injection_bounds(
        load - schedule,
        np.array([f.tdi.import_limit_kw for f in interfaces], dtype=np.float64),
        np.array([f.tdi.export_limit_kw for f in interfaces], dtype=np.float64),
    )
    problem = ClearingProblem(
        energy=energy,
        distribution_factors=DistributionFactors(
            np.array(df_res, dtype=np.int64), np.array(df_if, dtype=np.int64), np.array(df_f, dtype=np.float64)
        ),
        injection_min_kw=inj_min,
        injection_max_kw=inj_max,
        energy_requirement_kw=energy_requirement_kw,
        reserve=reserve,
        reserve_requirement_kw=reserve_requirement_kw,
        capacity_kw=capacity,
        is_bid=np.array([r.side is Side.BID for r in resources], dtype=bool),
        shortage_price_cad_per_mwh=ctx.settings.market.shortage_price_cad_per_mwh,
    )
    return _Market(interfaces, resources, problem, checks, limits, load, schedule, known)


def _scheduled_kw(
    ctx: Context,
    interfaces: list[_Interface],
    resources: list[_Resource],
    interval_start: datetime,
    interval_end: datetime,
) -> np.ndarray:
    """Per interface, the injection (kW) already scheduled for the interval by instructions in force from outside
    this run: day-ahead schedules (for a real-time run), DSO distribution-service dispatches, TSO load curtailments
    (a load cut counts as injection), each weighted by its overlap with the interval and put at its interface (an
    aggregation's through its distribution factors). A resource this run clears again is left out: its new
    dispatch supersedes its schedule. Interfaces' own net schedules are targets, not injection, and are left out
    too; rejected and cancelled instructions are not in force, escalated ones still are."""
    index = {f.tdi.id: k for k, f in enumerate(interfaces)}
    in_run = {(r.kind, r.resource_id) for r in resources}
    length = (interval_end - interval_start).total_seconds()
    out = np.zeros(len(interfaces), dtype=np.float64)
    for i in ctx.uow.market.instructions.in_force(interval_start, interval_end):
        if (i.resource_kind, i.resource_id) in in_run:
            continue
        if i.resource_kind is ResourceKind.INTERFACE and i.product is not InstructionProduct.LOAD_CURTAILMENT:
            continue
        overlap = (min(interval_end, i.interval_end) - max(interval_start, i.interval_start)).total_seconds() / length
        factors = {i.tdi_id: 1.0} if i.tdi_id is not None else _factors_of(ctx, i)
        for tdi_id, factor in factors.items():
            if tdi_id in index:
                out[index[tdi_id]] += i.p_kw * factor * overlap
    return out


def _factors_of(ctx: Context, instruction: Instruction) -> dict[str, float]:
    """The distribution factors of a multi-interface aggregation's instruction (none for anything else)."""
    if instruction.resource_kind is not ResourceKind.AGGREGATION:
        return {}
    aggregation = ctx.uow.aggregations.get(instruction.resource_id)
    return aggregation.distribution_factors() if aggregation is not None else {}


def _deliverable(
    ctx: Context, r: _Resource, limits: Mapping[str, DerLimits], interval_start: datetime, interval_end: datetime
) -> _Deliverable | None:
    """What the resource may deliver under the envelopes in force (None: nothing to check, e.g. a missing one).

    A DER: its envelope (0 when suspended or out of service). An aggregation: at each interface, the sum of its
    approved members' envelopes there; through its distribution factors it may deliver at most the smallest
    ``members' envelopes / factor`` over its interfaces. A DSO's virtual resource: the sum of what the resources
    behind its member offers may deliver now (``members_available_kw``), whatever was known when it was built.
    """
    if r.der is not None:
        envelope, binding = der_offer_limit(r.der, limits.get(r.der.id), r.side)
        return _Deliverable(envelope, {r.der.tdi_id: envelope}, {r.der.tdi_id: binding})
    if r.kind is ResourceKind.AGGREGATION:
        aggregation = ctx.uow.aggregations.get(r.resource_id)
        if aggregation is None:
            return None
        member_ids = aggregation_members_at(aggregation, interval_start)
        found = ctx.uow.ders.get_many(member_ids)
        members = [found[i] for i in member_ids if i in found]
        member_limits = ctx.uow.market.envelopes.der_limits([d.id for d in members], interval_start, interval_end)
        by_tdi = dict.fromkeys(r.factors, 0.0)
        cut: dict[str, list[str]] = defaultdict(list)
        for der in members:
            if der.tdi_id not in by_tdi:
                continue
            envelope, binding = der_offer_limit(der, member_limits.get(der.id), r.side)
            by_tdi[der.tdi_id] += envelope
            if envelope < der_capability_kw(der, r.side) - _TOL_KW:
                cut[der.tdi_id].append(f"der/{der.id} ({binding})")
        total = min(by_tdi[t] / f for t, f in r.factors.items() if f > 0)
        return _Deliverable(total, by_tdi, {t: _members_binding(cut[t]) for t in by_tdi})
    if r.kind is ResourceKind.DSO_VIRTUAL and r.energy is not None:
        sources = ctx.uow.market.offers.get_many(list(r.energy.source_offer_ids))
        cut_members: list[str] = []
        total = 0.0
        for source, available in zip(sources, members_available_kw(ctx, sources, interval_end), strict=True):
            total += available
            if available < float(source.total_kw()) - _TOL_KW:
                cut_members.append(f"{source.resource_kind.value}/{source.resource_id}")
        return _Deliverable(total, {r.resource_id: total}, {r.resource_id: _members_binding(cut_members)})
    return None


def _members_binding(cut: list[str], shown: int = 3) -> str:
    """The members cut by their limits, the first ``shown`` named."""
    if not cut:
        return "no member cut"
    more = f" and {len(cut) - shown} more" if len(cut) > shown else ""
    return f"members cut: {', '.join(cut[:shown])}{more}"


def _spread(curves: CurveSet, positions: list[int], n: int) -> CurveSet:
    """Curves for ``n`` resources: curve ``j`` of ``curves`` at position ``positions[j]``, empty elsewhere."""
    lengths = np.zeros(n, dtype=np.int64)
    lengths[positions] = curves.lengths()
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=start[1:])
    return CurveSet(start, curves.price_cad_per_mwh, curves.quantity_kw)


def _digest(
    market: Market,
    interval_start: datetime,
    energy_requirement_kw: float,
    reserve_requirement_kw: float,
    built: _Market,
) -> str:
    inputs = {
        "market": market.value,
        "interval_start": interval_start.isoformat(),
        "energy_requirement_kw": energy_requirement_kw,
        "reserve_requirement_kw": reserve_requirement_kw,
        "interfaces": [
            [f.tdi.id, f.model.name.value, f.tdi.import_limit_kw, f.tdi.export_limit_kw, load if known else None, sched]
            for f, load, sched, known in zip(
                built.interfaces,
                built.load_kw.tolist(),
                built.schedule_kw.tolist(),
                built.load_known.tolist(),
                strict=True,
            )
        ],
        "offers": sorted([o.id, o.revision] for r in built.resources for o in (r.energy, r.reserve) if o is not None),
        "limits": sorted([d.der_id, d.export_kw, d.import_kw] for d in built.limits.values()),
        "deliverable": [
            [built.resources[c.position].kind.value, built.resources[c.position].resource_id, c.deliverable.total_kw]
            for c in built.checks
        ],
    }
    return hashlib.sha256(canonical(inputs).encode()).hexdigest()


def _tso_participants(ctx: Context) -> list[str]:
    return [p.id for p in ctx.uow.participants.list_all() if p.role is Role.TSO]


def clear_interval(
    ctx: Context,
    market: Market,
    interval_start: datetime,
    *,
    energy_requirement_kw: float,
    reserve_requirement_kw: float = 0.0,
    forecasts: Mapping[str, InterfaceForecast] | None = None,
) -> ClearingRun:
    """Clear one interval of ``market`` for the TSO's requirement, check the dispatch, store the run.

    Only after the interval's gate closure (``clearing.gate_open`` before), once per market interval
    (``clearing.already_cleared``). ``forecasts`` gives the TSO's load forecast per interface (an interface
    without one has no known load: its net flow is partial and never reported as reverse flow). An unmet
    requirement is left short at the ``shortage_price_cad_per_mwh`` setting (reported as ``energy_shortage_kw``
    / ``reserve_shortage_kw``). Returns the stored run; reverse flow at an interface is notified to every TSO
    participant.
    """
    require_action(ctx.caller, Action.CLEARING_RUN)
    require_interval_start(interval_start, market)
    if not math.isfinite(energy_requirement_kw):
        raise ValidationFailed("energy_requirement_kw must be finite", field="energy_requirement_kw")
    require_non_negative(reserve_requirement_kw, "reserve_requirement_kw")
    forecasts = dict(forecasts or {})
    for tdi_id, forecast in forecasts.items():
        if not math.isfinite(forecast.load_kw):
            raise ValidationFailed(f"forecasts.{tdi_id}.load_kw must be finite", field="forecasts.load_kw")
    settings = ctx.settings.market
    rules = settings.rules(market)
    now = ctx.clock.now()
    closes = rules.gate_closure(interval_start)
    if now < closes:
        raise ConflictError(
            f"offers for {interval_start.isoformat()} close at {closes.isoformat()}; clear after that",
            field="interval_start",
            code=GATE_OPEN,
            details={"gate_closure": closes.isoformat()},
        )
    existing = ctx.uow.market.runs.for_interval(market, interval_start)
    if existing is not None:
        raise ConflictError(
            f"{market.value} {interval_start.isoformat()} was cleared by run {existing.id}",
            field="interval_start",
            code=ALREADY_CLEARED,
            details={"run_id": existing.id},
        )
    interval_end = interval_start + rules.interval
    built = _build(ctx, market, interval_start, interval_end, energy_requirement_kw, reserve_requirement_kw, forecasts)
    problem = built.problem
    first = clear(problem)
    n_if = len(built.interfaces)
    shortfall = np.zeros(n_if)
    redispatched = np.zeros(n_if)
    curtailments: list[Curtailment] = []
    final: ClearingResult = first
    rounds = 0
    if built.checks:
        index = {f.tdi.id: k for k, f in enumerate(built.interfaces)}
        positions = np.array([c.position for c in built.checks], dtype=np.int64)
        spread = [
            (j, index[t], f)
            for j, c in enumerate(built.checks)
            for t, f in sorted(built.resources[c.position].factors.items())
        ]
        loop = redispatch_shortfall(
            problem,
            problem.energy.take(positions),
            positions,
            np.array([index[min(built.resources[c.position].factors)] for c in built.checks], dtype=np.int64),
            np.array([c.deliverable.total_kw for c in built.checks], dtype=np.float64),
            clear=clear,
            first=first,
            member_factors=DistributionFactors(
                np.array([j for j, _, _ in spread], dtype=np.int64),
                np.array([k for _, k, _ in spread], dtype=np.int64),
                np.array([f for _, _, f in spread], dtype=np.float64),
            ),
        )
        final, rounds = loop.final, loop.rounds
        shortfall, redispatched = loop.shortfall_kw, loop.redispatched_kw
        for j, c in enumerate(built.checks):
            dispatched = float(loop.first_der_p_kw[j])
            cap = min(dispatched, float(loop.der_cap_kw[j]))
            if dispatched - cap <= _TOL_KW:
                continue
            r = built.resources[c.position]
            curtailments.extend(_curtailments(r, c.deliverable, dispatched, cap, built.interfaces, index))
        curtailments.sort(key=lambda cut: (cut.resource_kind.value, cut.resource_id, cut.tdi_id))
    net = net_load_forecast(built.load_kw, built.schedule_kw, final.interface_injection_kw)
    run = ClearingRun(
        id=ctx.new_id(),
        market=market,
        interval_start=interval_start,
        energy_requirement_kw=float(energy_requirement_kw),
        reserve_requirement_kw=float(reserve_requirement_kw),
        cost_cad_per_h=price_from_float(final.cost_cad_per_h),
        system_energy_price_cad_per_mwh=_price(final.system_energy_price_cad_per_mwh),
        system_reserve_price_cad_per_mwh=_price(final.system_reserve_price_cad_per_mwh),
        energy_shortage_kw=float(final.energy_shortage_kw),
        reserve_shortage_kw=float(final.reserve_shortage_kw),
        method=final.method,
        redispatch_rounds=rounds,
        inputs_digest=_digest(market, interval_start, energy_requirement_kw, reserve_requirement_kw, built),
        created_at=now,
        created_by=ctx.caller.user_id,
        interfaces=tuple(
            InterfaceResult(
                tdi_id=f.tdi.id,
                model=f.model.name.value,
                import_limit_kw=f.tdi.import_limit_kw,
                export_limit_kw=f.tdi.export_limit_kw,
                load_kw=float(built.load_kw[k]) if built.load_known[k] else None,
                der_schedule_kw=float(built.schedule_kw[k]),
                injection_kw=float(final.interface_injection_kw[k]),
                net_flow_kw=float(net[k]),
                energy_price_cad_per_mwh=_price(final.energy_price_cad_per_mwh[k]),
                reserve_price_cad_per_mwh=_price(final.reserve_price_cad_per_mwh[k]),
                congestion_cad_per_mwh=_price(final.congestion_cad_per_mwh[k]),
                shortfall_kw=float(shortfall[k]),
                redispatched_kw=float(redispatched[k]),
            )
            for k, f in enumerate(built.interfaces)
        ),
        resources=tuple(
            ResourceResult(
                resource_kind=r.kind,
                resource_id=r.resource_id,
                side=r.side,
                energy_offer_id=r.energy.id if r.energy else None,
                reserve_offer_id=r.reserve.id if r.reserve else None,
                tdi_id=r.tdi_id,
                dso_id=r.dso_id,
                party_id=r.party_id,
                first_p_kw=_clean(first.p_kw[n]),
                p_kw=_clean(final.p_kw[n]),
                reserve_kw=_clean(final.reserve_kw[n]),
                price_cad_per_mwh=_price(final.resource_energy_price_cad_per_mwh[n]),
            )
            for n, r in enumerate(built.resources)
        ),
        curtailments=tuple(curtailments),
    )
    ctx.uow.market.runs.add(run)
    # no reverse flow is claimed where the TSO gave no load forecast: the flow there is partial
    reverse = detect_reverse_flow(np.where(built.load_known, net, 0.0), threshold_kw=settings.reverse_flow_threshold_kw)
    notes = [
        Notification(
            id=ctx.new_id(),
            recipient_id=tso,
            kind=NotificationKind.REVERSE_FLOW,
            created_at=now,
            message=(
                f"reverse flow forecast at {built.interfaces[k].tdi.name}: distribution exports "
                f"{export:.1f} kW to transmission in {market.value} {interval_start.isoformat()}"
            ),
            tdi_id=built.interfaces[k].tdi.id,
            market=market,
            interval_start=interval_start,
            magnitude_kw=export,
            run_id=run.id,
        )
        for k, export in zip(reverse.interface_index.tolist(), reverse.magnitude_kw.tolist(), strict=True)
        for tso in _tso_participants(ctx)
    ]
    ctx.uow.market.notifications.add_many(notes)
    ctx.audit(
        "clearing.run",
        "clearing_run",
        run.id,
        None,
        {**run.snapshot(), "reverse_flow_notifications": [n.id for n in notes]},
    )
    return run


def _curtailments(
    r: _Resource,
    deliverable: _Deliverable,
    dispatched_kw: float,
    cap_kw: float,
    interfaces: list[_Interface],
    index: Mapping[str, int],
) -> list[Curtailment]:
    """The records of one resource's dispatch cut from ``dispatched_kw`` to ``cap_kw`` by the check: one per
    interface, its distribution-factor share, each with the written reason."""
    out = []
    for tdi_id, factor in sorted(r.factors.items()):
        face = interfaces[index[tdi_id]]
        here, allowed = factor * dispatched_kw, factor * deliverable.total_kw
        binding = deliverable.binding[tdi_id]
        if r.kind is ResourceKind.DER:
            reason = f"{binding} allows {allowed:.3f} kW; the TSO dispatched {here:.3f} kW"
        elif r.kind is ResourceKind.DSO_VIRTUAL:
            reason = (
                f"dso_virtual/{tdi_id}: the resources behind its member offers may deliver {allowed:.3f} kW under "
                f"the envelopes in force ({binding}); the TSO dispatched {here:.3f} kW"
            )
        else:
            reason = (
                f"aggregation/{r.resource_id}: its members at this interface may deliver "
                f"{deliverable.by_tdi[tdi_id]:.3f} kW ({binding}); through its distribution factors it may deliver "
                f"{deliverable.total_kw:.3f} kW in all, {allowed:.3f} kW here; the TSO dispatched {here:.3f} kW here"
            )
        out.append(
            Curtailment(
                resource_kind=r.kind,
                resource_id=r.resource_id,
                tdi_id=tdi_id,
                dispatched_kw=here,
                allowed_kw=allowed,
                curtailed_kw=factor * (dispatched_kw - cap_kw),
                checked_by=face.model.distribution_limit_checker.value,
                reason=reason,
            )
        )
    return out


def _price(value: float) -> Decimal | None:
    """An engine price as ``Decimal`` to the cent; None where none formed (NaN: nothing was dispatched)."""
    return price_from_float(float(value)) if math.isfinite(value) else None


def _clean(value: float) -> float:
    """Round engine noise away (to the milliwatt)."""
    out = round(float(value), 6)
    return 0.0 if out == 0 else out


def get_run(ctx: Context, run_id: str) -> ClearingRun:
    """A clearing run (every authenticated caller sees prices; resource results per ``visible_resources``)."""
    run = ctx.uow.market.runs.get(run_id)
    if run is None:
        raise NotFound(f"no clearing run {run_id}", field="run_id")
    return run


def list_runs(
    ctx: Context, page: Page, market: Market | None = None, interval_start: datetime | None = None
) -> list[ClearingRun]:
    """Clearing runs in interval order, optionally for one market or interval."""
    return ctx.uow.market.runs.query(page, market, interval_start)


def visible_resources(ctx: Context, run: ClearingRun) -> list[ResourceResult]:
    """The resource results of ``run`` the caller may see: all for the TSO and observers, a party's own, and an
    LDC's at its interfaces."""
    scope: MarketScope = market_scope(ctx)
    return [r for r in run.resources if scope.allows_resource(r)]
