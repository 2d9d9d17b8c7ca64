"""Run a scenario (``scenario_model.Scenario``) through the same services as the API and report what happened.

The runner is given a way to open one committed transaction as a caller (``Platform.context`` in the CLI and
the tests) and the ``FixedClock`` that transaction's context reads. It then

1. builds the registry at ``start - registry_days_before``: participants (one user each), interfaces with their
   model records and SimBench networks, DERs filed, reviewed, approved and commissioned, aggregations with
   their members approved by the LDCs;
2. plays the market events in time order, each in its own transaction with the clock set to its time: first
   every DSO declares the conflict resolution policy and publishes the curtailment procedure its interfaces
   have in the file; then offers submitted by their parties just before gate closure and merged into DSO
   virtual resources where the model record says so (``cycle.prepare_interval``); network events recorded by
   the DSO (an outage zeroes the envelopes of de-energised points at once, and those envelopes are all that
   keeps the market off them); clearing, instructions and splits down to DERs at the interval's start
   (``cycle.run_interval``); TSO operating instructions to the DSO, split by the DSO; DSO distribution service
   dispatches; DSO curtailment requests split by the published procedure. After each event that issues
   instructions, their recipients answer them (``responses``: a receipt and an acceptance, or nothing);
3. reports instructions per resource and interval (as they stand at the end: conflict resolutions may have
   reduced or cancelled them), prices and flows per interface, the distribution check's curtailments and the
   curtailment requests with their reasons, every conflict recorded during the run with its resolution, and
   messages per party (``ScenarioReport.as_json``).

Interval ordering: day-ahead hours clear at their gate closure (12 h ahead by default), real-time intervals at
their start; the clock only moves forward.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from gridbridge.domain.clock import FixedClock
from gridbridge.domain.der import DerSpec, MeterPosition, ReviewDecision
from gridbridge.domain.errors import GridbridgeError, ValidationFailed
from gridbridge.domain.market import (
    BATCH_REJECTED,
    RESPONSES_REJECTED,
    Instruction,
    InstructionStatus,
    InterfaceForecast,
    OfferItem,
    ResourceKind,
    Response,
)
from gridbridge.domain.offers import Market, OfferSegment
from gridbridge.domain.permissions import SYSTEM_CALLER, Caller
from gridbridge.domain.roles import Role
from gridbridge.services import (
    aggregations,
    conflicts,
    curtailment,
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
from gridbridge.services.curtailment_ports import CurtailmentEvent
from gridbridge.services.ports import ConnectionPointRef
from gridbridge.services.scenario_model import SCENARIO_INVALID, OfferSpec, Responses, Scenario

Transaction = Callable[[Caller], AbstractContextManager[Context]]
"""Opens one committed transaction as a caller (``Platform.context``)."""

INTERVAL = {Market.DAY_AHEAD: timedelta(hours=1), Market.REAL_TIME: timedelta(minutes=5)}
OFFER_MARGIN = timedelta(minutes=1)
"""Offers go in this long before gate closure."""
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_POINT = re.compile(r"([Cc]onnection point |point/)(\d+)\b")
_OPEN = (InstructionStatus.ISSUED, InstructionStatus.RECEIVED)


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

    def names_of(self, ids: Iterable[str]) -> list[str]:
        """``name_of`` for each id."""
        return [self.name_of(i) or i for i in ids]

    def named(self, text: str) -> str:
        """``text`` with every participant, interface, DER and aggregation id in it replaced by its scenario
        name, and every connection point id by ``interface/point name`` (instruction, offer and conflict ids
        stay as they are: the report lists them by id)."""
        text = _ID.sub(lambda m: self.name_of(m.group(0)) or m.group(0), text)
        return _POINT.sub(lambda m: f"{m.group(1)}{self.point_name(m.group(2))}", text)

    def point_name(self, point_id: int | str | None) -> str | None:
        """``interface/point name`` of a connection point id (the id itself when unknown)."""
        if point_id is None:
            return None
        try:
            return self.points.get(int(point_id), str(point_id))
        except ValueError:
            return str(point_id)


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
    """What the distribution check cut from the TSO's dispatch, per DER and interval."""
    curtailment_requests: list[dict[str, Any]] = field(default_factory=list)
    """The DSOs' curtailment requests, each with its procedure and every DER's share."""
    outages: list[dict[str, Any]] = field(default_factory=list)
    offer_rejections: list[dict[str, Any]] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    """Every conflict recorded during the run, with its resolution (``conflict_entry``)."""

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
            "curtailment_requests": self.curtailment_requests,
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
        self._rows: dict[str, dict[str, Any]] = {}
        """Instruction id -> its row in the report (updated as its status changes)."""

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
                der.round_trip_efficiency,
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
        """(time, order among events at one time, action): network events first, then offers, then TSO
        operating instructions and DSO dispatches, then clearing, then curtailment requests (which see the
        interval's dispatch)."""
        s = self.scenario
        for market in (Market.DAY_AHEAD, Market.REAL_TIME):
            for start in market_intervals(s, market):
                gate = start - self._gate[market]
                yield gate - OFFER_MARGIN, 1, partial(self._offers, market, start)
                clear_at = gate if market is Market.DAY_AHEAD else start
                yield clear_at, 3, partial(self._clear, market, start)
        for i, out in enumerate(s.outages):
            yield out.recorded_at or out.starts_at, 0, partial(self._outage, i)
        for i, op in enumerate(s.operating_instructions):
            yield op.starts_at, 2, partial(self._operating, i)
        for i, dispatch in enumerate(s.service_dispatches):
            yield dispatch.issued_at or dispatch.starts_at, 2, partial(self._service_dispatch, i)
        for i, request in enumerate(s.curtailment_requests):
            yield request.requested_at or request.starts_at, 4, partial(self._curtailment, i)

    def play(self, on_event: Callable[[int, int], None] | None = None) -> ScenarioReport:
        """Step 2 of the module docstring, then the conflicts recorded meanwhile; returns the report.
        ``on_event(done, total)`` is called after each market event (for a progress bar)."""
        if not self._gate:
            with self._as(None) as ctx:
                self._gate = {m: ctx.settings.market.rules(m).gate_closure_lead for m in Market}
        self._declare()
        events = sorted(self._events(), key=lambda e: (e[0], e[1]))
        floor = self.clock.now()
        for done, (when, _, action) in enumerate(events, 1):
            self.clock.set(max(when, floor))
            floor = self.clock.now()
            action()
            if on_event is not None:
                on_event(done, len(events))
        self._collect_conflicts()
        return self.report

    def run(self) -> ScenarioReport:
        """Build the registry, then play the market events."""
        self.build_registry()
        return self.play()

    def _declare(self) -> None:
        """Each interface's DSO declares its conflict resolution policy and publishes its curtailment procedure
        (in force from now), as the file gives them."""
        for face in self.scenario.interfaces:
            if face.conflict_policy is None and face.curtailment_procedure is None:
                continue
            tdi_id = self.names.tdis[face.name]
            with self._as(face.dso) as ctx:
                policy = face.conflict_policy
                if policy is not None:
                    conflicts.set_policy(
                        ctx,
                        tdi_id,
                        priorities=policy.priorities,
                        rules={k.value: v.value for k, v in policy.rules.items()},
                        amendment_window_min=policy.amendment_window_min,
                    )
                procedure = face.curtailment_procedure
                if procedure is not None:
                    curtailment.publish_procedure(
                        ctx,
                        tdi_id,
                        procedure.rule.value,
                        procedure.parameters,
                        dso_aggregated_pct=procedure.dso_aggregated_pct,
                        note=f"scenario {self.scenario.name}",
                    )

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
                    "net_flow_known": face.net_flow_known,
                    "shortfall_kw": face.shortfall_kw,
                    "redispatched_kw": face.redispatched_kw,
                    "reverse_flow": face.reverse_flow,
                }
            )
        for cut in run.curtailments:
            rep.curtailments.append(
                {
                    **iv,
                    "resource_kind": cut.resource_kind.value,
                    "resource": n.name_of(cut.resource_id),
                    "der": n.name_of(cut.der_id),
                    "interface": n.name_of(cut.tdi_id),
                    "dispatched_kw": cut.dispatched_kw,
                    "allowed_kw": cut.allowed_kw,
                    "curtailed_kw": cut.curtailed_kw,
                    "checked_by": cut.checked_by,
                    "reason": n.named(cut.reason),
                }
            )
        self._record_instructions([*outcome.issued, *outcome.split])
        for late in outcome.escalated:
            if late.id in self._rows:
                self._rows[late.id]["status"] = late.status.value
        self._answer([*outcome.issued, *outcome.split])

    def _record_instructions(self, made: Iterable[Instruction]) -> None:
        n, rep = self.names, self.report
        for ins in made:
            rep.messages[n.name_of(ins.issuer_id) or "?"] += 1
            row = {
                "market": ins.market.value if ins.market else None,
                "interval_start": ins.interval_start.isoformat(),
                "interval_end": ins.interval_end.isoformat(),
                "kind": ins.kind.value,
                "resource_kind": ins.resource_kind.value,
                "resource": n.name_of(ins.resource_id),
                "der": n.name_of(ins.der_id),
                "interface": n.name_of(ins.tdi_id),
                "issuer": n.name_of(ins.issuer_id),
                "recipient": n.name_of(ins.recipient_id),
                "p_kw": ins.p_kw,
                "status": ins.status.value,
                "id": ins.id,
                "parent_id": ins.parent_id,
            }
            rep.instructions.append(row)
            self._rows[ins.id] = row

    def _answer(self, made: Sequence[Instruction]) -> None:
        """The recipients answer the instructions just issued (``Scenario.responses``): each sends a receipt
        and an acceptance of every open instruction addressed to it, in one batch per recipient."""
        if self.scenario.responses is Responses.NONE:
            return
        by_recipient: dict[str, list[str]] = defaultdict(list)
        for ins in made:
            if ins.status in _OPEN:
                by_recipient[ins.recipient_id].append(ins.id)
        for recipient, ids in by_recipient.items():
            who = self.names.name_of(recipient)
            if who not in self.names.callers:
                continue
            for k in range(0, len(ids), instructions.MAX_RESPONSES // 2):
                chunk = ids[k : k + instructions.MAX_RESPONSES // 2]
                items = [
                    instructions.ResponseItem(i, response)
                    for i in chunk
                    for response in (Response.RECEIPT, Response.ACCEPT)
                ]
                try:
                    with self._as(who) as ctx:
                        acks = instructions.respond_many(ctx, items)
                except GridbridgeError as exc:  # all of them closed meanwhile (cancelled by a later check)
                    if exc.code != RESPONSES_REJECTED:
                        raise
                    continue
                self.report.messages[who] += sum(1 for ack in acks if ack.instruction is not None)
                for ack in acks:
                    if ack.instruction is not None and ack.instruction.id in self._rows:
                        self._rows[ack.instruction.id]["status"] = ack.instruction.status.value

    def _dso_of(self, interface: str) -> str:
        return next(f.dso for f in self.scenario.interfaces if f.name == interface)

    def _tso(self) -> str:
        return next(p.name for p in self.scenario.participants if p.role is Role.TSO)

    def _outage(self, index: int) -> None:
        """The DSO records the event: the platform zeroes the envelopes of the de-energised points at once and
        notifies the parties. Nothing else keeps the market off those points: offers, the clearing, the DSO's
        check and the splits all read the published envelopes in force."""
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
        self.report.messages[dso] += 1 + len(recorded.notifications)
        self.report.outages.append(
            {
                "interface": spec.interface,
                "kind": spec.kind.value,
                "starts_at": spec.starts_at.isoformat(),
                "ends_at": spec.ends_at.isoformat(),
                "recorded_at": self.clock.now().isoformat(),
                "open": list(spec.open),
                "reason": spec.reason,
                "de_energised_points": sorted(self.names.points[p] for p in dark),
                "de_energised_ders": sorted(name for name, point in self.names.der_points.items() if point in dark),
                "notifications": len(recorded.notifications),
            }
        )

    def _operating(self, index: int) -> None:
        spec = self.scenario.operating_instructions[index]
        with self._as(self._tso()) as ctx:
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
        self._answer([parent, *split.children])

    def _dso_caller(self, der_id: str) -> str:
        with self._as(None) as ctx:
            der = ctx.uow.ders.get(der_id)
        name = self.names.name_of(der.dso_id) if der is not None else None
        if name is None or name not in self.names.callers:
            raise ValidationFailed(
                f"no DSO to dispatch DER {der_id}", field="service_dispatches", code=SCENARIO_INVALID
            )
        return name

    def _service_dispatch(self, index: int) -> None:
        """The DSO of the DER's interface dispatches it for a distribution service; the conflict check runs
        as the service issues it."""
        spec = self.scenario.service_dispatches[index]
        der_id = self.names.ders[spec.der]
        with self._as(self._dso_caller(der_id)) as ctx:
            made = instructions.dispatch_distribution_service(
                ctx,
                der_id,
                p_kw=spec.p_kw,
                interval_start=spec.starts_at,
                interval_end=spec.ends_at,
                reason=spec.reason,
            )
        self._record_instructions([made])
        self._answer([made])

    def _point_ids(self, interface: str, names: Sequence[str], index: int) -> list[int]:
        by_name = {v: k for k, v in self.names.points.items()}
        out: list[int] = []
        for j, point in enumerate(names):
            key = f"{interface}/{point}"
            if key not in by_name:
                raise ValidationFailed(
                    f"curtailment_requests.{index}.points.{j}: {interface} has no connection point {point!r}",
                    field=f"curtailment_requests.{index}.points.{j}",
                    code=SCENARIO_INVALID,
                )
            out.append(by_name[key])
        return out

    def _curtailment(self, index: int) -> None:
        """The DSO asks for the reduction; its published procedure splits it and every affected party gets its
        share as an operating instruction with the rule that produced it."""
        spec = self.scenario.curtailment_requests[index]
        dso = self._dso_of(spec.interface)
        with self._as(dso) as ctx:
            event = curtailment.request_curtailment(
                ctx,
                self.names.tdis[spec.interface],
                spec.required_kw,
                spec.starts_at,
                spec.ends_at,
                connection_point_ids=self._point_ids(spec.interface, spec.points, index),
                feeder=spec.feeder,
                reason=spec.reason,
            )
            ids = [n.instruction_id for n in event.notices] + [s.instruction_id for s in event.shares]
            issued = [i for k in ids if k is not None and (i := ctx.uow.market.instructions.get(k)) is not None]
        self._record_instructions(issued)
        self._answer(issued)
        self.report.curtailment_requests.append(self._curtailment_entry(event))

    def _curtailment_entry(self, event: CurtailmentEvent) -> dict[str, Any]:
        n = self.names
        return {
            "id": event.id,
            "interface": n.name_of(event.tdi_id),
            "window_start": event.window_start.isoformat(),
            "window_end": event.window_end.isoformat(),
            "requested_at": event.requested_at.isoformat(),
            "required_kw": event.required_kw,
            "available_kw": event.available_kw,
            "rule": event.rule,
            "procedure_version": event.procedure_version,
            "dso_aggregated_kw": event.dso_aggregated_kw,
            "direct_kw": event.direct_kw,
            "points": [n.point_name(p) for p in event.connection_point_ids],
            "feeder": event.feeder,
            "reason": event.reason,
            "shares": [
                {
                    "der": n.name_of(s.der_id),
                    "party": n.name_of(s.party_id),
                    "group": s.group.value,
                    "dso_affiliated": s.dso_affiliated,
                    "p_export_kw": s.p_export_kw,
                    "export_source": s.export_source,
                    "capacity_kw": s.capacity_kw,
                    "offer_price_cad_per_mwh": _money(s.offer_price_cad_per_mwh),
                    "share_kw": s.share_kw,
                    "reason": n.named(s.reason),
                    "instruction_id": s.instruction_id,
                }
                for s in event.shares
            ],
            "notices": [
                {
                    "party": n.name_of(x.party_id),
                    "share_kw": x.share_kw,
                    "ders": n.names_of(x.der_ids),
                    "message": n.named(x.message),
                    "instruction_id": x.instruction_id,
                }
                for x in event.notices
            ],
        }

    # -- conflicts ------------------------------------------------------------------------------------------
    def _horizon(self) -> tuple[datetime, datetime]:
        """A period that holds every interval the scenario could have instructed."""
        s = self.scenario
        ends = [s.start + timedelta(days=1), self.clock.now()]
        ends += [o.ends_at for o in s.outages]
        ends += [o.ends_at for o in s.operating_instructions]
        ends += [d.ends_at for d in s.service_dispatches]
        ends += [r.ends_at for r in s.curtailment_requests]
        return s.registry_time, max(ends) + timedelta(days=1)

    def _collect_conflicts(self) -> None:
        """Every conflict recorded during the run, at any stage (offer submission, instruction issue, the check
        before dispatch, an amendment), with its resolution, named for the report; the instructions the
        resolutions changed are shown as they stand at the end."""
        start, end = self._horizon()
        with self._as(None) as ctx:
            found = conflicts.conflict_report(ctx, start, end, limit=1_000_000)
            offer_ids = {c.split(":", 1)[0] for f in found for c in f["commitment_ids"]}
            offered = {o.id: o for o in ctx.uow.market.offers.get_many(sorted(offer_ids))} if offer_ids else {}
            changed = {
                o["subject_id"]
                for f in found
                for o in f["resolution"]["outcomes"]
                if o["subject_type"] == "instruction" and o["action"] != "kept"
            }
            now = {k: i for k in sorted(changed) if (i := ctx.uow.market.instructions.get(k)) is not None}
        for instruction_id, ins in now.items():
            row = self._rows.get(instruction_id)
            if row is not None:
                row["p_kw"], row["status"] = ins.p_kw, ins.status.value
        resource = {k: self.names.name_of(o.resource_id) or o.resource_id for k, o in offered.items()}
        self.report.conflicts = [conflict_entry(f, self.names, resource) for f in found]
        for entry in self.report.conflicts:
            for instruction_id in entry["instructions"]:
                row = self._rows.get(instruction_id)
                if row is not None:
                    row.setdefault("conflicts", []).append(entry["id"])


def conflict_entry(found: dict[str, Any], names: ScenarioNames, offered: dict[str, str]) -> dict[str, Any]:
    """A stored conflict (``conflicts.conflict_json``) as the scenario report shows it: interfaces, DERs, points
    and parties by scenario name, commitments by the resource offered and the DER, the resolution's rule and
    its outcome for every instruction or commitment with the reason. ``offered``: offer id -> resource name."""
    n = names

    def commitment(commitment_id: str) -> dict[str, Any]:
        offer_id, _, der_id = commitment_id.partition(":")
        return {"id": commitment_id, "offer_id": offer_id, "resource": offered.get(offer_id), "der": n.name_of(der_id)}

    resolution = found["resolution"]
    return {
        "id": found["id"],
        "kind": found["kind"],
        "stage": found["stage"],
        "interface": n.name_of(found["tdi_id"]),
        "interval_start": found["interval_start"],
        "interval_end": found["interval_end"],
        "intervals": len(found["intervals"]),
        "ders": n.names_of(found["der_ids"]),
        "connection_point": n.point_name(found["connection_point_id"]),
        "parties": n.names_of(found["party_ids"]),
        "instructions": list(found["instruction_ids"]),
        "commitments": [commitment(c) for c in found["commitment_ids"]],
        "figures": found["figures"],
        "summary": n.named(found["summary"]),
        "detected_at": found["detected_at"],
        "rule": resolution["rule"],
        "binding_limit": resolution["binding_limit"] and n.named(resolution["binding_limit"]),
        "resolution": n.named(resolution["summary"]),
        "outcomes": [
            {
                "subject_type": o["subject_type"],
                "subject": o["subject_id"] if o["subject_type"] == "instruction" else commitment(o["subject_id"]),
                "der": n.name_of(o["der_id"]),
                "issuer": n.name_of(o["issuer_party_id"]),
                "recipient": n.name_of(o["recipient_party_id"]),
                "action": o["action"],
                "original_p_kw": o["original_p_kw"],
                "schedule": o["schedule"],
                "reason": n.named(o["reason"]),
                "deadline": o["deadline"],
            }
            for o in resolution["outcomes"]
        ],
        "amendment_requests": [
            {
                "instruction_id": a["instruction_id"],
                "der": n.name_of(a["der_id"]),
                "addressee": n.name_of(a["addressee_id"]),
                "deadline": a["deadline"],
                "status": a["status"],
                "amended_p_kw": a["amended_p_kw"],
                "reason": n.named(a["reason"]),
            }
            for a in found["amendment_requests"]
        ],
    }


def run_scenario(scenario: Scenario, transaction: Transaction, clock: FixedClock) -> ScenarioReport:
    """Build and play ``scenario`` on an empty database reached through ``transaction`` (see the module
    docstring); ``clock`` must be the clock the transactions' contexts read."""
    return ScenarioRunner(scenario, transaction, clock).run()
