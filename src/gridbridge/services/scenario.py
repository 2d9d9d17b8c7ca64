"""Run a scenario (``scenario_model.Scenario``) through the same services as the API and report what happened.

The runner is given a way to open one committed transaction as a caller (``Platform.context`` in the CLI and
the tests) and the ``FixedClock`` that transaction's context reads. It then

1. builds the registry at ``start - registry_days_before``: participants (one user each), interfaces with their
   model records and SimBench networks, DERs filed, reviewed, approved and commissioned, aggregations with
   their members approved by the LDCs;
2. plays the market events in time order, each in its own transaction with the clock set to its time: offers
   submitted by their parties just before gate closure and merged into DSO virtual resources where the model
   record says so (``cycle.prepare_interval``); network events recorded by the DSO (outages zero the envelopes
   of de-energised points at once); clearing, instructions and splits down to DERs at the interval's start
   (``cycle.run_interval``); TSO operating instructions to the DSO, split by the DSO;
3. reports instructions per resource and interval, prices and flows per interface, curtailments with their
   reasons, and messages per party (``ScenarioReport.as_json``).

Interval ordering: day-ahead hours clear at their gate closure (12 h ahead by default), real-time intervals at
their start; the clock only moves forward.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from gridbridge.domain.clock import FixedClock
from gridbridge.domain.der import DerSpec, MeterPosition, ReviewDecision
from gridbridge.domain.errors import GridbridgeError, ValidationFailed
from gridbridge.domain.market import BATCH_REJECTED, InterfaceForecast, OfferItem, ResourceKind
from gridbridge.domain.offers import Market, OfferSegment
from gridbridge.domain.permissions import SYSTEM_CALLER, Caller
from gridbridge.domain.roles import Role
from gridbridge.services import (
    aggregations,
    cycle,
    ders,
    instructions,
    network_state,
    networks,
    offers,
    participants,
    tdis,
)
from gridbridge.services.context import Context
from gridbridge.services.ports import ConnectionPointRef
from gridbridge.services.scenario_model import SCENARIO_INVALID, OfferSpec, Scenario

Transaction = Callable[[Caller], AbstractContextManager[Context]]
"""Opens one committed transaction as a caller (``Platform.context``)."""

INTERVAL = {Market.DAY_AHEAD: timedelta(hours=1), Market.REAL_TIME: timedelta(minutes=5)}
OFFER_MARGIN = timedelta(minutes=1)
"""Offers go in this long before gate closure."""


@dataclass
class ScenarioNames:
    """Scenario names -> platform ids of what the registry holds: what the market player needs to act as each
    party and to name things in the report. ``build_registry`` fills it from a scenario; a caller that built
    its registry otherwise (``gridbridge demo``) fills it itself."""

    participants: dict[str, str] = field(default_factory=dict)
    callers: dict[str, Caller] = field(default_factory=dict)
    tdis: dict[str, str] = field(default_factory=dict)
    ders: dict[str, str] = field(default_factory=dict)
    aggregations: dict[str, str] = field(default_factory=dict)
    points: dict[int, str] = field(default_factory=dict)
    """Connection point id -> ``interface/point name``."""
    der_points: dict[str, int] = field(default_factory=dict)
    """DER name -> its connection point id."""
    _by_id: dict[str, str] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=-1, repr=False)

    def name_of(self, some_id: str | None) -> str | None:
        """The scenario name of a participant, interface, DER or aggregation id (the id itself when unknown)."""
        if some_id is None:
            return None
        pools = (self.participants, self.tdis, self.ders, self.aggregations)
        size = sum(len(p) for p in pools)
        if size != self._indexed:
            self._by_id = {}
            for pool in reversed(pools):  # the first pool wins, as it always did
                self._by_id.update({value: name for name, value in reversed(pool.items())})
            self._indexed = size
        return self._by_id.get(some_id, some_id)


@dataclass
class ScenarioReport:
    """What a scenario run produced; ``as_json`` is the report file."""

    scenario: str
    models: dict[str, str]
    intervals: list[dict[str, Any]] = field(default_factory=list)
    prices: list[dict[str, Any]] = field(default_factory=list)
    interfaces: list[dict[str, Any]] = field(default_factory=list)
    instructions: list[dict[str, Any]] = field(default_factory=list)
    curtailments: list[dict[str, Any]] = field(default_factory=list)
    outages: list[dict[str, Any]] = field(default_factory=list)
    offer_rejections: list[dict[str, Any]] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    """Conflicts with their resolutions: empty until conflict management lands."""

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-able data (money as decimal strings, times ISO 8601 UTC)."""
        return {
            "scenario": self.scenario,
            "models": self.models,
            "intervals": self.intervals,
            "prices": self.prices,
            "interfaces": self.interfaces,
            "instructions": self.instructions,
            "curtailments": self.curtailments,
            "outages": self.outages,
            "offer_rejections": self.offer_rejections,
            "messages_per_party": dict(sorted(self.messages.items())),
            "conflicts": self.conflicts,
        }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _hourly(value: float | list[float], when: datetime) -> float:
    return value[when.hour] if isinstance(value, list) else value


def market_intervals(scenario: Scenario, market: Market) -> list[datetime]:
    """Every interval start the scenario clears in ``market``."""
    window = scenario.markets.day_ahead if market is Market.DAY_AHEAD else scenario.markets.real_time
    if window is None:
        return []
    step = INTERVAL[market]
    if window.every_min:
        step = max(step, timedelta(minutes=window.every_min))
    out: list[datetime] = []
    t = window.from_
    while t < window.to:
        out.append(t)
        t += step
    return out


class ScenarioRunner:
    """Builds and plays one scenario (see the module docstring)."""

    def __init__(
        self, scenario: Scenario, transaction: Transaction, clock: FixedClock, names: ScenarioNames | None = None
    ) -> None:
        """``names``: a registry built beforehand (then call ``play``, not ``run``); by default ``run`` builds it
        from the scenario."""
        self.scenario = scenario
        self.transaction = transaction
        self.clock = clock
        self.names = names or ScenarioNames()
        self.report = ScenarioReport(scenario.name, {i.name: i.model.value for i in scenario.interfaces})
        self._gate: dict[Market, timedelta] = {}
        self._points: dict[str, list[ConnectionPointRef]] = {}
        self._suspended: dict[int, list[str]] = {}

    @property
    def _der_points(self) -> dict[str, int]:
        return self.names.der_points

    # -- registry -------------------------------------------------------------------------------------------
    def _as(self, who: str | None) -> AbstractContextManager[Context]:
        return self.transaction(SYSTEM_CALLER if who is None else self.names.callers[who])

    def build_registry(self) -> None:
        """Step 1 of the module docstring."""
        s, n = self.scenario, self.names
        self.clock.set(s.registry_time)
        with self._as(None) as ctx:
            for p in s.participants:
                made = participants.create_participant(ctx, p.name, p.role, p.dso_kind)
                user = participants.create_user(ctx, made.id, f"{p.name}-user")
                n.participants[p.name] = made.id
                n.callers[p.name] = Caller(user.id, made.id, p.role, made.dso_kind)
        tso = next(p.name for p in s.participants if p.role is Role.TSO)
        for face in s.interfaces:
            with self._as(tso) as ctx:
                n.tdis[face.name] = tdis.create_tdi(
                    ctx,
                    name=face.name,
                    price_node=face.price_node or face.name.upper(),
                    dso_id=n.participants[face.dso],
                    model=face.model,
                    import_limit_kw=face.import_limit_kw,
                    export_limit_kw=face.export_limit_kw,
                ).id
            with self._as(face.dso) as ctx:
                networks.import_network(ctx, n.tdis[face.name], face.network)
                points = networks.connection_points(ctx, n.tdis[face.name])
            self._points[face.name] = points
            for point in points:
                n.points[point.id] = f"{face.name}/{point.name}"
        dso_of = {f.name: f.dso for f in s.interfaces}
        for i, der in enumerate(s.ders):
            point_id = self._point(i, der.interface, der.point)
            n.der_points[der.name] = point_id
            spec = DerSpec(
                der.name,
                der.technology,
                der.export_kw,
                der.import_kw,
                der.energy_kwh,
                None,
                MeterPosition.BEHIND_THE_METER,
            )
            with self._as(der.filed_by) as ctx:
                owner = n.participants[der.owner] if der.owner else None
                n.ders[der.name] = ders.request_interconnection(ctx, spec, point_id, owner_id=owner).id
            with self._as(dso_of[der.interface]) as ctx:
                ders.start_review(ctx, n.ders[der.name])
                ders.decide_review(
                    ctx,
                    n.ders[der.name],
                    ReviewDecision.APPROVED,
                    "scenario",
                    export_limit_kw=der.export_limit_kw,
                )
                ders.commission(ctx, n.ders[der.name])
        self.clock.set(s.registry_time + timedelta(hours=1))
        member_from = s.registry_time + timedelta(days=1)
        for agg in s.aggregations:
            with self._as(agg.aggregator) as ctx:
                made_agg = aggregations.create_aggregation(ctx, agg.name, agg.services, multi_tdi=agg.multi_tdi)
                ctx.uow.flush()
                aggregations.request_members(ctx, made_agg.id, [n.ders[m] for m in agg.members], member_from)
                n.aggregations[agg.name] = made_agg.id
            for ldc in sorted({dso_of[d.interface] for d in s.ders if d.name in agg.members}):
                with self._as(ldc) as ctx:
                    view = aggregations.get_aggregation(ctx, made_agg.id)
                    for member in view.members:
                        if member.dso_id == ctx.caller.participant_id and member.status.value == "pending":
                            aggregations.review_member(ctx, made_agg.id, member.id, ReviewDecision.APPROVED)

    def _point(self, index: int, interface: str, point: int | str) -> int:
        points = self._points[interface]
        if isinstance(point, int):
            if not 0 <= point < len(points):
                raise ValidationFailed(
                    f"ders.{index}.point: {interface} has {len(points)} connection points (0..{len(points) - 1})",
                    field=f"ders.{index}.point",
                    code=SCENARIO_INVALID,
                )
            return int(points[point].id)
        for p in points:
            if point in (p.name, p.bus):
                return int(p.id)
        raise ValidationFailed(
            f"ders.{index}.point: {interface} has no connection point {point!r}",
            field=f"ders.{index}.point",
            code=SCENARIO_INVALID,
        )

    # -- market events --------------------------------------------------------------------------------------
    def _events(self) -> Iterator[tuple[datetime, int, Callable[[], None]]]:
        s = self.scenario
        for market in (Market.DAY_AHEAD, Market.REAL_TIME):
            for start in market_intervals(s, market):
                gate = start - self._gate[market]
                yield gate - OFFER_MARGIN, 1, partial(self._offers, market, start)
                clear_at = gate if market is Market.DAY_AHEAD else start
                yield clear_at, 3, partial(self._clear, market, start)
        for i, out in enumerate(s.outages):
            yield out.recorded_at or out.starts_at, 0, partial(self._outage, i)
            yield out.ends_at, 0, partial(self._restore, i)
        for i, op in enumerate(s.operating_instructions):
            yield op.starts_at, 2, partial(self._operating, i)

    def play(self, on_event: Callable[[int, int], None] | None = None) -> ScenarioReport:
        """Step 2 of the module docstring; returns the report. ``on_event(done, total)`` is called after each
        market event (for a progress bar)."""
        if not self._gate:
            with self._as(None) as ctx:
                self._gate = {m: ctx.settings.market.rules(m).gate_closure_lead for m in Market}
        events = sorted(self._events(), key=lambda e: (e[0], e[1]))
        floor = self.clock.now()
        for done, (when, _, action) in enumerate(events, 1):
            self.clock.set(max(when, floor))
            floor = self.clock.now()
            action()
            if on_event is not None:
                on_event(done, len(events))
        return self.report

    def run(self) -> ScenarioReport:
        """Build the registry, then play the market events."""
        self.build_registry()
        return self.play()

    def _offer_items(self, spec: OfferSpec, market: Market, start: datetime) -> OfferItem | None:
        if market not in spec.markets:
            return None
        if (spec.from_ is not None and start < spec.from_) or (spec.to is not None and start >= spec.to):
            return None
        n = self.names
        if spec.resource in n.ders:
            kind, rid = ResourceKind.DER, n.ders[spec.resource]
        elif spec.resource in n.aggregations:
            kind, rid = ResourceKind.AGGREGATION, n.aggregations[spec.resource]
        else:
            kind, rid = ResourceKind.INTERFACE, n.tdis[spec.resource]
        factor = Decimal(str(spec.profile[start.hour])) if spec.profile else Decimal(1)
        segments = tuple(
            OfferSegment(price, (quantity * factor).quantize(Decimal("0.001")))
            for price, quantity in spec.segments
            if quantity * factor > 0
        )
        if not segments:
            return None
        return OfferItem(kind, rid, spec.product, market, spec.side, start, segments)

    def _offers(self, market: Market, start: datetime) -> None:
        by_party: dict[str, list[OfferItem]] = defaultdict(list)
        for spec in self.scenario.offers:
            made = self._offer_items(spec, market, start)
            if made is not None:
                by_party[spec.party].append(made)
        for party, items in by_party.items():
            codes: list[str | None]
            try:
                with self._as(party) as ctx:
                    codes = [None if a.accepted else a.code for a in offers.submit_offers(ctx, items)]
            except GridbridgeError as exc:
                if exc.code != BATCH_REJECTED:
                    raise
                codes = [str(a["code"]) for a in exc.details["items"]]
            self.report.messages[party] += len(items)
            for code, sent in zip(codes, items, strict=True):
                if code is not None:
                    self.report.offer_rejections.append(
                        {
                            "market": market.value,
                            "interval_start": start.isoformat(),
                            "resource": self.names.name_of(sent.resource_id),
                            "party": party,
                            "code": code,
                        }
                    )
        with self._as(None) as ctx:
            virtual = cycle.prepare_interval(ctx, market, start)
        for offer in virtual:
            self.report.messages[self.names.name_of(offer.party_id) or "?"] += 1

    def _forecasts(self, start: datetime) -> dict[str, InterfaceForecast]:
        return {
            self.names.tdis[load.interface]: InterfaceForecast(load_kw=_hourly(load.load_kw, start))
            for load in self.scenario.load
        }

    def _clear(self, market: Market, start: datetime) -> None:
        req = self.scenario.markets.requirements[market]
        with self._as(None) as ctx:
            outcome = cycle.run_interval(
                ctx,
                market,
                start,
                energy_requirement_kw=_hourly(req.energy_kw, start),
                reserve_requirement_kw=_hourly(req.reserve_kw, start),
                forecasts=self._forecasts(start),
            )
        run, n, rep = outcome.run, self.names, self.report
        iv = {"market": market.value, "interval_start": start.isoformat()}
        rep.intervals.append(
            {
                **iv,
                "energy_requirement_kw": run.energy_requirement_kw,
                "system_energy_price_cad_per_mwh": _money(run.system_energy_price_cad_per_mwh),
                "energy_shortage_kw": run.energy_shortage_kw,
                "redispatch_rounds": run.redispatch_rounds,
                "split_shortfall_kw": round(outcome.shortfall_kw, 3),
                "escalated": len(outcome.escalated),
            }
        )
        for face in run.interfaces:
            name = n.name_of(face.tdi_id)
            rep.prices.append(
                {
                    **iv,
                    "interface": name,
                    "energy_price_cad_per_mwh": _money(face.energy_price_cad_per_mwh),
                    "reserve_price_cad_per_mwh": _money(face.reserve_price_cad_per_mwh),
                }
            )
            rep.interfaces.append(
                {
                    **iv,
                    "interface": name,
                    "model": face.model,
                    "load_kw": face.load_kw,
                    "injection_kw": face.injection_kw,
                    "net_flow_kw": face.net_flow_kw,
                    "shortfall_kw": face.shortfall_kw,
                    "redispatched_kw": face.redispatched_kw,
                    "reverse_flow": face.reverse_flow,
                }
            )
        for cut in run.curtailments:
            rep.curtailments.append(
                {
                    **iv,
                    "der": n.name_of(cut.der_id),
                    "interface": n.name_of(cut.tdi_id),
                    "dispatched_kw": cut.dispatched_kw,
                    "allowed_kw": cut.allowed_kw,
                    "curtailed_kw": cut.curtailed_kw,
                    "checked_by": cut.checked_by,
                    "reason": cut.reason,
                }
            )
        self._record_instructions([*outcome.issued, *outcome.split])

    def _record_instructions(self, made: list[Any]) -> None:
        n, rep = self.names, self.report
        for ins in made:
            rep.messages[n.name_of(ins.issuer_id) or "?"] += 1
            rep.instructions.append(
                {
                    "market": ins.market.value if ins.market else None,
                    "interval_start": ins.interval_start.isoformat(),
                    "kind": ins.kind.value,
                    "resource_kind": ins.resource_kind.value,
                    "resource": n.name_of(ins.resource_id),
                    "der": n.name_of(ins.der_id),
                    "interface": n.name_of(ins.tdi_id),
                    "issuer": n.name_of(ins.issuer_id),
                    "recipient": n.name_of(ins.recipient_id),
                    "p_kw": ins.p_kw,
                    "id": ins.id,
                    "parent_id": ins.parent_id,
                }
            )

    def _dso_of(self, interface: str) -> str:
        return next(f.dso for f in self.scenario.interfaces if f.name == interface)

    def _outage(self, index: int) -> None:
        """The DSO records the event (zero envelopes for de-energised points, notifications) and suspends the
        scenario's DERs at de-energised points for the event's window (``_restore`` resumes them)."""
        spec = self.scenario.outages[index]
        dso = self._dso_of(spec.interface)
        with self._as(dso) as ctx:
            recorded = network_state.record_event(
                ctx,
                self.names.tdis[spec.interface],
                spec.kind,
                spec.starts_at,
                spec.ends_at,
                open_elements=spec.open,
                reason=spec.reason,
            )
            dark = set(recorded.de_energised_point_ids)
            suspended = [name for name, point in self._der_points.items() if point in dark]
            for name in suspended:
                ders.suspend(ctx, self.names.ders[name])
        self._suspended[index] = suspended
        self.report.messages[dso] += 1 + len(recorded.notifications)
        self.report.outages.append(
            {
                "interface": spec.interface,
                "kind": spec.kind.value,
                "starts_at": spec.starts_at.isoformat(),
                "ends_at": spec.ends_at.isoformat(),
                "open": list(spec.open),
                "de_energised_points": sorted(self.names.points[p] for p in recorded.de_energised_point_ids),
                "suspended_ders": sorted(suspended),
                "notifications": len(recorded.notifications),
            }
        )

    def _restore(self, index: int) -> None:
        """The event is over: the DSO resumes the DERs it suspended for it."""
        suspended = self._suspended.pop(index, [])
        if not suspended:
            return
        with self._as(self._dso_of(self.scenario.outages[index].interface)) as ctx:
            for name in suspended:
                ders.resume(ctx, self.names.ders[name])

    def _operating(self, index: int) -> None:
        spec = self.scenario.operating_instructions[index]
        tso = next(p.name for p in self.scenario.participants if p.role is Role.TSO)
        with self._as(tso) as ctx:
            parent = instructions.issue_operating_instruction(
                ctx,
                self.names.tdis[spec.interface],
                p_kw=spec.p_kw,
                interval_start=spec.starts_at,
                interval_end=spec.ends_at,
                reason=spec.reason,
            )
        with self._as(None) as ctx:
            split = instructions.split_instruction(ctx, parent.id)
        self._record_instructions([parent, *split.children])


def run_scenario(scenario: Scenario, transaction: Transaction, clock: FixedClock) -> ScenarioReport:
    """Build and play ``scenario`` on an empty database reached through ``transaction`` (see the module
    docstring); ``clock`` must be the clock the transactions' contexts read."""
    return ScenarioRunner(scenario, transaction, clock).run()
