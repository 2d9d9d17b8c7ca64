"""TSO-DSO conflict management: value types and rules (white paper Table 1 and section 4.3; issue 5).

The platform checks every set of instructions that reach one DER from several parties (the TSO, the DSO,
an aggregator) for the failure modes of the white paper's Table 1:

* hidden coupling: two parties' instructions to one resource that together exceed its power capability, or
  that a storage DER cannot deliver across intervals (the 12-4 pm / 4-8 pm battery of section 4.3);
* tier bypassing: an instruction beyond the distribution operating envelope, or to a de-energised
  connection point;
* double counting: the same kW committed to two services or two aggregations in one interval.

This module holds the pure parts: what an instruction, a conflict, a resolution and an amendment request
are; the service categories and the per-T-D-interface priority list; the published curtailment procedure;
the rows of the open-access report. The numerical work (detection on arrays, resolution, curtailment
shares) lives in ``gridbridge.engines.conflicts``.

Sign convention: ``p_kw`` of an instruction is positive for injection into the grid (discharge, export)
and negative for withdrawal (charge, import). Limits (``p_export_kw``, ``p_import_kw``) are non-negative
magnitudes. All datetimes are timezone-aware and kept in UTC.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from gridbridge.domain.errors import ConflictError, ValidationFailed, register_code
from gridbridge.domain.roles import Role, Service
from gridbridge.domain.validation import (
    NOT_FINITE,
    REQUIRED,
    require_non_negative,
    require_positive,
    require_range,
)

# ---------------------------------------------------------------------------------------------------------
# Error codes (registered once, at import)
# ---------------------------------------------------------------------------------------------------------

PRIORITY_INCOMPLETE = register_code(
    "conflicts.priority_incomplete", 422, "A service priority list omits a service category"
)
PRIORITY_DUPLICATE = register_code(
    "conflicts.priority_duplicate", 422, "A service priority list names a service category twice"
)
PRIORITY_UNKNOWN = register_code(
    "conflicts.priority_unknown", 422, "A service priority list names an unknown service category"
)
RULE_NOT_ALLOWED = register_code(
    "conflicts.rule_not_allowed", 422, "A resolution rule does not apply to this kind of conflict"
)
AMENDMENT_AFTER_DEADLINE = register_code(
    "conflicts.amendment_after_deadline", 409, "An amendment arrived after its request's deadline"
)
AMENDMENT_CLOSED = register_code("conflicts.amendment_closed", 409, "The amendment request has already been answered")
AMENDMENT_MISMATCH = register_code(
    "conflicts.amendment_mismatch", 422, "An amendment does not match the instruction it should amend"
)
CURTAILMENT_UNKNOWN_RULE = register_code(
    "conflicts.curtailment_unknown_rule", 422, "A curtailment procedure names an unknown rule"
)
CURTAILMENT_UNKNOWN_PARAMETER = register_code(
    "conflicts.curtailment_unknown_parameter", 422, "A curtailment procedure has a parameter its rule does not know"
)
CURTAILMENT_BAD_PARAMETER = register_code(
    "conflicts.curtailment_bad_parameter", 422, "A curtailment parameter has a value its rule does not allow"
)
INTERVAL_MISALIGNED = register_code(
    "conflicts.interval_misaligned", 422, "A time lies off the interval grid or outside the checked horizon"
)
UNKNOWN_REFERENCE = register_code(
    "conflicts.unknown_reference", 422, "An item refers to a DER or connection point that is not in the case"
)
DUPLICATE_ID = register_code("conflicts.duplicate_id", 422, "Two items of one kind share an id")
CONFLICTS_INCOMPLETE = register_code(
    "conflicts.incomplete", 422, "Resolution was given only part of the conflicts detected on the case"
)

# ---------------------------------------------------------------------------------------------------------
# Small validation helpers
# ---------------------------------------------------------------------------------------------------------


def _utc(value: datetime, field_name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationFailed(f"{field_name} must be a datetime", field=field_name)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(f"{field_name} must be timezone-aware (UTC)", field=field_name)
    return value.astimezone(UTC)


def _finite(value: float, field_name: str) -> float:
    if not math.isfinite(value):
        raise ValidationFailed(f"{field_name} must be a finite number, got {value}", field=field_name, code=NOT_FINITE)
    return float(value)


def _id(value: str, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{field_name} must be a non-empty id", field=field_name, code=REQUIRED)
    return value


def _span(start: datetime, end: datetime, prefix: str = "") -> tuple[datetime, datetime]:
    s = _utc(start, f"{prefix}start")
    e = _utc(end, f"{prefix}end")
    if e <= s:
        raise ValidationFailed(
            f"{prefix}end ({e.isoformat()}) must be after start ({s.isoformat()})", field=f"{prefix}end"
        )
    return s, e


def format_time(value: datetime) -> str:
    """Return ``value`` as a short, unambiguous UTC text (``2026-07-01 16:00 UTC``) for reasons and reports."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_kw(value: float) -> str:
    """Return a power in kW with at most three decimals and no trailing zeros (``-12.5 kW``)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{'0' if text in ('-0', '') else text} kW"


# ---------------------------------------------------------------------------------------------------------
# Services, categories and priorities
# ---------------------------------------------------------------------------------------------------------


class ServiceCategory(StrEnum):
    """What an instruction is for, at the granularity that priorities are declared on (issue 5, section 2)."""

    DISTRIBUTION_SAFETY = "distribution_safety"
    """The DSO's operating instructions that keep the distribution system safe (outages, emergencies)."""
    BULK_RELIABILITY = "bulk_reliability"
    """The TSO's operating instructions outside the market, and operating reserve activations."""
    DISTRIBUTION_SERVICES = "distribution_services"
    """DSO dispatch for distribution deferral (NWA) and distribution operations services."""
    WHOLESALE_ENERGY = "wholesale_energy"
    """Wholesale energy schedules and dispatch."""


class InstructionKind(StrEnum):
    """How an instruction came about; with its service this decides its category."""

    SCHEDULE = "schedule"
    """A day-ahead schedule for a service."""
    DISPATCH = "dispatch"
    """A real-time dispatch for a service."""
    OPERATING_INSTRUCTION = "operating_instruction"
    """An instruction outside the market: from the TSO for the bulk system, from the DSO for its network."""


SERVICE_CATEGORY: Mapping[Service, ServiceCategory] = MappingProxyType(
    {
        Service.WHOLESALE_ENERGY: ServiceCategory.WHOLESALE_ENERGY,
        Service.OPERATING_RESERVE: ServiceCategory.BULK_RELIABILITY,
        Service.DISTRIBUTION_SERVICES: ServiceCategory.DISTRIBUTION_SERVICES,
    }
)
"""Category of a scheduled or dispatched service. Operating reserve counts as bulk-system reliability."""

ISSUING_ROLES = frozenset({Role.TSO, Role.DSO, Role.AGGREGATOR})
"""Roles that may issue instructions to DERs."""


def category_of(
    service: Service, kind: InstructionKind, issuer_role: Role, root_issuer_role: Role | None = None
) -> ServiceCategory:
    """Return the service category of an instruction.

    An operating instruction outside the market is bulk-system reliability when the TSO issued it (or the
    instruction it allocates: ``root_issuer_role``, the TSO behind a DSO's split of a TSO operating instruction)
    and distribution safety when a DSO issued it on its own account (a curtailment for a distribution
    constraint), whatever service it names; an aggregator cannot issue one on its own account. Schedules and
    dispatches take the category of their service (``SERVICE_CATEGORY``).
    """
    if kind is InstructionKind.OPERATING_INSTRUCTION:
        issuer_role = root_issuer_role or issuer_role
        if issuer_role is Role.TSO:
            return ServiceCategory.BULK_RELIABILITY
        if issuer_role is Role.DSO:
            return ServiceCategory.DISTRIBUTION_SAFETY
        raise ValidationFailed(
            f"only the TSO or a DSO issues operating instructions, not a {issuer_role.value}", field="issuer_role"
        )
    return SERVICE_CATEGORY[service]


@dataclass(frozen=True)
class ServicePriorityList:
    """A declared order of service categories, highest priority first. Every category appears exactly once."""

    order: tuple[ServiceCategory, ...]

    def __post_init__(self) -> None:
        seen: set[ServiceCategory] = set()
        for position, category in enumerate(self.order):
            if not isinstance(category, ServiceCategory):
                raise ValidationFailed(
                    f"unknown service category {category!r}", field=f"order[{position}]", code=PRIORITY_UNKNOWN
                )
            if category in seen:
                raise ValidationFailed(
                    f"service category {category.value!r} appears twice in the priority list",
                    field=f"order[{position}]",
                    code=PRIORITY_DUPLICATE,
                )
            seen.add(category)
        missing = [c.value for c in ServiceCategory if c not in seen]
        if missing:
            raise ValidationFailed(
                f"the priority list omits {', '.join(missing)}; every service category needs a place",
                field="order",
                code=PRIORITY_INCOMPLETE,
                details={"missing": missing},
            )

    @classmethod
    def from_names(cls, names: Sequence[str]) -> ServicePriorityList:
        """Build a list from category names (as written in configuration); unknown names raise a clear error."""
        categories: list[ServiceCategory] = []
        known = {c.value: c for c in ServiceCategory}
        for position, name in enumerate(names):
            if name not in known:
                raise ValidationFailed(
                    f"unknown service category {name!r}; known: {', '.join(known)}",
                    field=f"order[{position}]",
                    code=PRIORITY_UNKNOWN,
                )
            categories.append(known[name])
        return cls(tuple(categories))

    def level(self, category: ServiceCategory) -> int:
        """Return the category's position: 0 is the highest priority."""
        return self.order.index(category)

    def describe(self, category: ServiceCategory) -> str:
        """Return ``'wholesale_energy (priority 4 of 4)'`` for reasons."""
        return f"{category.value} (priority {self.level(category) + 1} of {len(self.order)})"


DEFAULT_SERVICE_PRIORITIES = ServicePriorityList(
    (
        ServiceCategory.DISTRIBUTION_SAFETY,
        ServiceCategory.BULK_RELIABILITY,
        ServiceCategory.DISTRIBUTION_SERVICES,
        ServiceCategory.WHOLESALE_ENERGY,
    )
)
"""The default order of issue 5: distribution safety, bulk-system reliability, distribution services, wholesale."""


# ---------------------------------------------------------------------------------------------------------
# Conflict kinds, resolution rules and per-interface policy
# ---------------------------------------------------------------------------------------------------------


class ConflictKind(StrEnum):
    """The failure modes that conflict detection catches (white paper Table 1)."""

    HIDDEN_COUPLING_CAPABILITY = "hidden_coupling_capability"
    HIDDEN_COUPLING_ENERGY = "hidden_coupling_energy"
    TIER_BYPASSING_ENVELOPE = "tier_bypassing_envelope"
    TIER_BYPASSING_DEENERGISED = "tier_bypassing_deenergised"
    DOUBLE_COUNTING = "double_counting"


class ResolutionRule(StrEnum):
    """How a conflict is settled."""

    SERVICE_PRIORITY = "service_priority"
    """The instruction of the lower-priority service yields; the outcome is final."""
    MOST_RESTRICTIVE_LIMIT = "most_restrictive_limit"
    """The tightest applicable limit (capability, DER envelope, connection-point envelope, outage) binds."""
    AMENDMENT_REQUEST = "amendment_request"
    """The lower-priority issuer is asked to amend by a deadline; a feasible provisional setpoint stands."""


ALLOWED_RULES: Mapping[ConflictKind, frozenset[ResolutionRule]] = MappingProxyType(
    {
        ConflictKind.HIDDEN_COUPLING_CAPABILITY: frozenset(ResolutionRule),
        ConflictKind.HIDDEN_COUPLING_ENERGY: frozenset(
            {ResolutionRule.SERVICE_PRIORITY, ResolutionRule.AMENDMENT_REQUEST}
        ),
        ConflictKind.TIER_BYPASSING_ENVELOPE: frozenset(
            {ResolutionRule.MOST_RESTRICTIVE_LIMIT, ResolutionRule.AMENDMENT_REQUEST}
        ),
        ConflictKind.TIER_BYPASSING_DEENERGISED: frozenset(
            {ResolutionRule.MOST_RESTRICTIVE_LIMIT, ResolutionRule.AMENDMENT_REQUEST}
        ),
        ConflictKind.DOUBLE_COUNTING: frozenset({ResolutionRule.SERVICE_PRIORITY, ResolutionRule.AMENDMENT_REQUEST}),
    }
)
"""Which rules make sense for which conflict. Safety limits are never traded against a service priority."""

DEFAULT_RULES: Mapping[ConflictKind, ResolutionRule] = MappingProxyType(
    {
        ConflictKind.HIDDEN_COUPLING_CAPABILITY: ResolutionRule.SERVICE_PRIORITY,
        ConflictKind.HIDDEN_COUPLING_ENERGY: ResolutionRule.SERVICE_PRIORITY,
        ConflictKind.TIER_BYPASSING_ENVELOPE: ResolutionRule.MOST_RESTRICTIVE_LIMIT,
        ConflictKind.TIER_BYPASSING_DEENERGISED: ResolutionRule.MOST_RESTRICTIVE_LIMIT,
        ConflictKind.DOUBLE_COUNTING: ResolutionRule.SERVICE_PRIORITY,
    }
)


@dataclass(frozen=True)
class ResolutionPolicy:
    """How conflicts at one T-D interface are resolved: a priority list, a rule per kind, an amendment window."""

    priorities: ServicePriorityList = DEFAULT_SERVICE_PRIORITIES
    rules: Mapping[ConflictKind, ResolutionRule] = field(default_factory=lambda: DEFAULT_RULES)
    amendment_window: timedelta = timedelta(minutes=15)
    """How long a lower-priority issuer has to amend (capped at the start of the first affected interval)."""

    def __post_init__(self) -> None:
        if not isinstance(self.priorities, ServicePriorityList):
            raise ValidationFailed("priorities must be a ServicePriorityList", field="priorities")
        rules: dict[ConflictKind, ResolutionRule] = dict(DEFAULT_RULES)
        for kind, rule in self.rules.items():
            try:
                kind_v, rule_v = ConflictKind(kind), ResolutionRule(rule)
            except ValueError as exc:
                raise ValidationFailed(str(exc), field=f"rules[{kind}]", code=RULE_NOT_ALLOWED) from exc
            if rule_v not in ALLOWED_RULES[kind_v]:
                allowed = ", ".join(sorted(r.value for r in ALLOWED_RULES[kind_v]))
                raise ValidationFailed(
                    f"rule {rule_v.value} does not apply to {kind_v.value}; allowed: {allowed}",
                    field=f"rules[{kind_v.value}]",
                    code=RULE_NOT_ALLOWED,
                )
            rules[kind_v] = rule_v
        object.__setattr__(self, "rules", MappingProxyType(rules))
        if self.amendment_window <= timedelta(0):
            raise ValidationFailed("amendment_window must be positive", field="amendment_window")

    def rule_for(self, kind: ConflictKind) -> ResolutionRule:
        """Return the rule this interface applies to conflicts of ``kind``."""
        return self.rules[kind]


DEFAULT_POLICY = ResolutionPolicy()


# ---------------------------------------------------------------------------------------------------------
# The interval grid
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntervalGrid:
    """A horizon of ``n_intervals`` equal market intervals of ``step`` from ``start`` (UTC)."""

    start: datetime
    step: timedelta
    n_intervals: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start, "start"))
        if self.step <= timedelta(0):
            raise ValidationFailed("step must be positive", field="step")
        if self.n_intervals < 1:
            raise ValidationFailed("n_intervals must be at least 1", field="n_intervals")

    @property
    def end(self) -> datetime:
        """The end of the last interval."""
        return self.start + self.step * self.n_intervals

    @property
    def dt_h(self) -> float:
        """Interval length in hours."""
        return self.step.total_seconds() / 3600.0

    def boundary(self, when: datetime, field_name: str) -> int:
        """Return the index of the interval boundary at ``when`` (0 .. n); off-grid or outside raises."""
        when = _utc(when, field_name)
        offset = when - self.start
        index, remainder = divmod(offset, self.step)
        if remainder != timedelta(0) or not 0 <= index <= self.n_intervals:
            raise ValidationFailed(
                f"{field_name} {when.isoformat()} is not an interval boundary within "
                f"{self.start.isoformat()} .. {self.end.isoformat()} (step {self.step})",
                field=field_name,
                code=INTERVAL_MISALIGNED,
            )
        return int(index)

    def overlapping(self, start: datetime, end: datetime) -> range:
        """Return the indexes of intervals that overlap ``[start, end)`` (clipped to the horizon)."""
        start, end = _utc(start, "start"), _utc(end, "end")
        first = max(0, math.floor((start - self.start) / self.step))
        last = min(self.n_intervals, math.ceil((end - self.start) / self.step))
        return range(first, max(first, last))

    def interval_start(self, index: int) -> datetime:
        """Return the start of interval ``index``."""
        return self.start + self.step * index

    def interval(self, index: int) -> tuple[datetime, datetime]:
        """Return ``(start, end)`` of interval ``index``."""
        return self.interval_start(index), self.interval_start(index + 1)


# ---------------------------------------------------------------------------------------------------------
# What conflict detection looks at
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageSpec:
    """Energy limits of a storage DER: capacity, initial state of charge, bounds and efficiencies.

    ``e_kwh`` is the stored-energy capacity. Discharging ``p`` kW for ``dt`` hours takes ``p*dt/eta_discharge``
    kWh out of storage; charging takes in ``|p|*dt*eta_charge``.
    """

    e_kwh: float
    soc_initial_fraction: float
    soc_min_fraction: float = 0.0
    soc_max_fraction: float = 1.0
    eta_charge: float = 1.0
    eta_discharge: float = 1.0

    def __post_init__(self) -> None:
        require_positive(self.e_kwh, "e_kwh")
        require_range(self.soc_min_fraction, "soc_min_fraction", 0.0, 1.0)
        require_range(self.soc_max_fraction, "soc_max_fraction", self.soc_min_fraction, 1.0)
        require_range(self.soc_initial_fraction, "soc_initial_fraction", self.soc_min_fraction, self.soc_max_fraction)
        for name in ("eta_charge", "eta_discharge"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and 0.0 < value <= 1.0):
                raise ValidationFailed(f"{name} must be in (0, 1], got {value}", field=name)

    @classmethod
    def with_round_trip(
        cls,
        e_kwh: float,
        soc_initial_fraction: float,
        round_trip_efficiency: float,
        soc_min_fraction: float = 0.0,
        soc_max_fraction: float = 1.0,
    ) -> StorageSpec:
        """Build a spec whose round-trip efficiency is split evenly: ``eta_charge = eta_discharge = sqrt(rte)``."""
        if not (math.isfinite(round_trip_efficiency) and 0.0 < round_trip_efficiency <= 1.0):
            raise ValidationFailed(
                f"round_trip_efficiency must be in (0, 1], got {round_trip_efficiency}", field="round_trip_efficiency"
            )
        eta = math.sqrt(round_trip_efficiency)
        return cls(e_kwh, soc_initial_fraction, soc_min_fraction, soc_max_fraction, eta, eta)

    @property
    def e_initial_kwh(self) -> float:
        """Stored energy at the start of the horizon."""
        return self.e_kwh * self.soc_initial_fraction

    @property
    def e_min_kwh(self) -> float:
        """Lowest allowed stored energy."""
        return self.e_kwh * self.soc_min_fraction

    @property
    def e_max_kwh(self) -> float:
        """Highest allowed stored energy."""
        return self.e_kwh * self.soc_max_fraction


@dataclass(frozen=True)
class DerCapability:
    """A DER as conflict detection sees it: where it connects, what it can do, and its storage if any."""

    der_id: str
    tdi_id: str
    connection_point_id: str
    p_export_kw: float
    p_import_kw: float
    storage: StorageSpec | None = None

    def __post_init__(self) -> None:
        _id(self.der_id, "der_id")
        _id(self.tdi_id, "tdi_id")
        _id(self.connection_point_id, "connection_point_id")
        require_non_negative(self.p_export_kw, "p_export_kw")
        require_non_negative(self.p_import_kw, "p_import_kw")


class EnvelopeTarget(StrEnum):
    """What an operating envelope limits: one DER, or the sum of all DERs at a connection point."""

    DER = "der"
    CONNECTION_POINT = "connection_point"


@dataclass(frozen=True)
class EnvelopeLimit:
    """An operating envelope in force over ``[start, end)``: export and import limits as magnitudes.

    Where several envelopes cover one interval, the most restrictive applies. An envelope covering part of an
    interval applies to the whole interval.
    """

    target: EnvelopeTarget
    target_id: str
    start: datetime
    end: datetime
    p_export_kw: float
    p_import_kw: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", EnvelopeTarget(self.target))
        _id(self.target_id, "target_id")
        s, e = _span(self.start, self.end)
        object.__setattr__(self, "start", s)
        object.__setattr__(self, "end", e)
        require_non_negative(self.p_export_kw, "p_export_kw")
        require_non_negative(self.p_import_kw, "p_import_kw")


@dataclass(frozen=True)
class ConnectionPointOutage:
    """A connection point is de-energised over ``[start, end)`` (outage or switching); any overlap counts."""

    connection_point_id: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _id(self.connection_point_id, "connection_point_id")
        s, e = _span(self.start, self.end)
        object.__setattr__(self, "start", s)
        object.__setattr__(self, "end", e)


@dataclass(frozen=True)
class ConflictInstruction:
    """An instruction as conflict detection sees it: a constant setpoint ``p_kw`` for one DER over ``[start, end)``.

    Instructions from different parties to one DER add up: the DER is asked for the sum of their setpoints.

    ``root_issuer_role``: the role of the party whose instruction this one allocates (the TSO behind a DSO's
    split of a TSO operating instruction); ``None`` for an instruction on the issuer's own account. It decides
    the category of an operating instruction (``category_of``).

    ``reduces_export``: a reduction (a curtailment for a distribution constraint, ``p_kw <= 0``). It adds to the
    other instructions like any setpoint, so it lowers what the DER is asked to export, but it never makes the
    DER import or charge: the import side of the DER's capability and envelopes (and of its connection point's
    envelope) widens by the reduction, and for storage it only lowers discharge. A resolution never changes it.

    ``superseded``: the parts of ``[start, end)`` over which a later revision of the same instruction replaces
    it (``superseded_spans``: a real-time dispatch over a day-ahead schedule). It is not in force there and
    counts for nothing; ``in_force`` is the rest. Sorted, merged and clipped to ``[start, end)``.
    """

    instruction_id: str
    issuer_party_id: str
    issuer_role: Role
    recipient_party_id: str
    der_id: str
    service: Service
    kind: InstructionKind
    start: datetime
    end: datetime
    p_kw: float
    issued_at: datetime
    root_issuer_role: Role | None = None
    reduces_export: bool = False
    superseded: tuple[tuple[datetime, datetime], ...] = ()

    def __post_init__(self) -> None:
        _id(self.instruction_id, "instruction_id")
        _id(self.issuer_party_id, "issuer_party_id")
        _id(self.recipient_party_id, "recipient_party_id")
        _id(self.der_id, "der_id")
        object.__setattr__(self, "issuer_role", Role(self.issuer_role))
        object.__setattr__(self, "service", Service(self.service))
        object.__setattr__(self, "kind", InstructionKind(self.kind))
        if self.issuer_role not in ISSUING_ROLES:
            raise ValidationFailed(f"a {self.issuer_role.value} does not issue instructions", field="issuer_role")
        s, e = _span(self.start, self.end)
        object.__setattr__(self, "start", s)
        object.__setattr__(self, "end", e)
        object.__setattr__(self, "p_kw", _finite(self.p_kw, "p_kw"))
        object.__setattr__(self, "issued_at", _utc(self.issued_at, "issued_at"))
        if self.root_issuer_role is not None:
            object.__setattr__(self, "root_issuer_role", Role(self.root_issuer_role))
        if self.reduces_export and self.p_kw > 0:
            raise ValidationFailed(
                f"a reduction lowers export: its p_kw must not be positive, got {self.p_kw}", field="p_kw"
            )
        category_of(self.service, self.kind, self.issuer_role, self.root_issuer_role)
        spans = [_span(a, b, f"superseded[{k}].") for k, (a, b) in enumerate(self.superseded)]
        object.__setattr__(self, "superseded", merge_spans((max(a, s), min(b, e)) for a, b in spans))

    def in_force(self) -> tuple[tuple[datetime, datetime], ...]:
        """The parts of ``[start, end)`` where the instruction is in force (not ``superseded``), in time order."""
        out: list[tuple[datetime, datetime]] = []
        at = self.start
        for a, b in (*self.superseded, (self.end, self.end)):
            if a > at:
                out.append((at, a))
            at = max(at, b)
        return tuple(out)

    @property
    def category(self) -> ServiceCategory:
        """The service category that priorities are declared on."""
        return category_of(self.service, self.kind, self.issuer_role, self.root_issuer_role)


def merge_spans(spans: Iterable[tuple[datetime, datetime]]) -> tuple[tuple[datetime, datetime], ...]:
    """Return the non-empty ``[start, end)`` spans sorted and merged where they overlap or touch."""
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted((a, b) for a, b in spans if b > a):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return tuple(out)


@dataclass(frozen=True)
class Revision:
    """A market instruction as supersession sees it (``superseded_spans``).

    ``key`` says what it is an instruction about: the DER, the product and the chain it came down (the issuers
    from the root instruction down to the DER-level one and the resource the root instruction was for).
    ``order`` says which revision is later: the market first (day-ahead 0, real time 1), then the issue time.
    """

    instruction_id: str
    key: tuple[str, ...]
    order: tuple[int, datetime]
    start: datetime
    end: datetime


def superseded_spans(revisions: Sequence[Revision]) -> dict[str, tuple[tuple[datetime, datetime], ...]]:
    """Where each revision is replaced: a revision is superseded over its overlap with every revision of the same
    ``key`` that is strictly later (``order``): the later market's instruction (a real-time dispatch over a
    day-ahead schedule), or within one market the one issued later. Revisions issued at the same time in the
    same market replace nothing (both stay in force and add up). Returns instruction id -> merged spans (only
    for revisions superseded somewhere)."""
    by_key: dict[tuple[str, ...], list[Revision]] = {}
    for r in revisions:
        by_key.setdefault(r.key, []).append(r)
    out: dict[str, tuple[tuple[datetime, datetime], ...]] = {}
    for group in by_key.values():
        group.sort(key=lambda r: r.start)
        starts = [r.start for r in group]
        longest = max(r.end - r.start for r in group)
        for r in group:
            near = group[bisect_right(starts, r.start - longest) : bisect_left(starts, r.end)]
            spans = merge_spans((max(r.start, o.start), min(r.end, o.end)) for o in near if o.order > r.order)
            if spans:
                out[r.instruction_id] = spans
    return out


class Direction(StrEnum):
    """Which way committed capacity goes."""

    EXPORT = "export"
    IMPORT = "import"


@dataclass(frozen=True)
class Commitment:
    """Capacity of one DER committed to one service or aggregation (the holder) over ``[start, end)``.

    ``buyer_party_id`` procured it (TSO, DSO, aggregator); ``provider_party_id`` sold it (owner or aggregator).
    """

    commitment_id: str
    der_id: str
    holder_id: str
    buyer_party_id: str
    provider_party_id: str
    service: Service
    direction: Direction
    start: datetime
    end: datetime
    committed_kw: float
    committed_at: datetime

    def __post_init__(self) -> None:
        for name in ("commitment_id", "der_id", "holder_id", "buyer_party_id", "provider_party_id"):
            _id(getattr(self, name), name)
        object.__setattr__(self, "service", Service(self.service))
        object.__setattr__(self, "direction", Direction(self.direction))
        s, e = _span(self.start, self.end)
        object.__setattr__(self, "start", s)
        object.__setattr__(self, "end", e)
        require_non_negative(self.committed_kw, "committed_kw")
        object.__setattr__(self, "committed_at", _utc(self.committed_at, "committed_at"))

    @property
    def category(self) -> ServiceCategory:
        """The service category of the commitment."""
        return SERVICE_CATEGORY[self.service]


# ---------------------------------------------------------------------------------------------------------
# Conflicts, resolutions, amendment requests
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DoubleCountedPair:
    """``kw`` of commitment ``commitment_id`` are the same kW as already committed to ``against_commitment_id``."""

    interval_start: datetime
    commitment_id: str
    against_commitment_id: str
    kw: float


@dataclass(frozen=True)
class Conflict:
    """One detected conflict: what kind, where, when, whose instructions, and the numbers that show it.

    ``series`` holds one value per entry of ``intervals``; ``figures`` holds scalars. Ids are deterministic:
    the same inputs always give the same conflict ids.
    """

    conflict_id: str
    kind: ConflictKind
    tdi_id: str
    der_ids: tuple[str, ...]
    connection_point_id: str | None
    intervals: tuple[tuple[datetime, datetime], ...]
    instruction_ids: tuple[str, ...]
    commitment_ids: tuple[str, ...]
    party_ids: tuple[str, ...]
    figures: Mapping[str, float]
    series: Mapping[str, tuple[float, ...]]
    summary: str
    pairs: tuple[DoubleCountedPair, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))
        object.__setattr__(self, "series", MappingProxyType({k: tuple(v) for k, v in self.series.items()}))
        for name, values in self.series.items():
            if len(values) != len(self.intervals):
                raise ValueError(f"series {name} has {len(values)} values for {len(self.intervals)} intervals")


class SubjectType(StrEnum):
    """What an outcome is about."""

    INSTRUCTION = "instruction"
    COMMITMENT = "commitment"


class OutcomeAction(StrEnum):
    """What happens to an instruction (or commitment) in a resolution."""

    KEPT = "kept"
    REDUCED = "reduced"
    CANCELLED = "cancelled"
    AMENDMENT_REQUESTED = "amendment_requested"


@dataclass(frozen=True)
class Segment:
    """A constant setpoint (or, for a commitment, payable kW) over ``[start, end)``."""

    start: datetime
    end: datetime
    p_kw: float

    def describe(self) -> str:
        """Return ``'40 kW from 2026-07-01 12:00 UTC to 2026-07-01 13:00 UTC'``."""
        return f"{format_kw(self.p_kw)} from {format_time(self.start)} to {format_time(self.end)}"


@dataclass(frozen=True)
class Outcome:
    """What one resolution decides for one instruction or commitment, addressed to its issuer and recipient.

    ``schedule`` is the setpoint that stands after the resolution (for an amendment request: the provisional
    setpoint that stands unless the issuer amends by ``deadline``). For a commitment it is the firm kW that
    settlement may pay; the rest was counted twice.
    """

    subject_type: SubjectType
    subject_id: str
    der_id: str
    issuer_party_id: str
    recipient_party_id: str
    action: OutcomeAction
    original_p_kw: float
    schedule: tuple[Segment, ...]
    reason: str
    deadline: datetime | None = None

    @property
    def party_ids(self) -> tuple[str, ...]:
        """The parties who receive this outcome: the issuer and the recipient."""
        return tuple(dict.fromkeys((self.issuer_party_id, self.recipient_party_id)))


@dataclass(frozen=True)
class Resolution:
    """The one resolution of one conflict: the rule applied and an outcome for every affected instruction."""

    resolution_id: str
    conflict_id: str
    kind: ConflictKind
    tdi_id: str
    rule: ResolutionRule
    decided_at: datetime
    outcomes: tuple[Outcome, ...]
    summary: str
    binding_limit: str | None = None

    @property
    def party_ids(self) -> tuple[str, ...]:
        """Every party that receives an outcome of this resolution."""
        return tuple(dict.fromkeys(p for o in self.outcomes for p in o.party_ids))


class AmendmentStatus(StrEnum):
    """Where an amendment request stands."""

    PENDING = "pending"
    """Waiting for the addressee's amendment; the provisional setpoint stands meanwhile."""
    AMENDED = "amended"
    """Answered before the deadline; the amended instruction was checked again."""
    EXPIRED = "expired"
    """The deadline passed without an amendment: the provisional setpoint is final (the fallback)."""


@dataclass(frozen=True)
class AmendmentRequest:
    """A request to a lower-priority issuer to amend an instruction by ``deadline``.

    Until it is answered, ``provisional`` stands (a setpoint that is jointly feasible with the instructions
    that outrank it). Answering returns a new request; the original is never changed.
    """

    request_id: str
    conflict_id: str
    instruction_id: str
    der_id: str
    addressee_party_id: str
    requested_at: datetime
    deadline: datetime
    provisional: tuple[Segment, ...]
    reason: str
    status: AmendmentStatus = AmendmentStatus.PENDING
    answered_at: datetime | None = None
    amendment: ConflictInstruction | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "requested_at", _utc(self.requested_at, "requested_at"))
        object.__setattr__(self, "deadline", _utc(self.deadline, "deadline"))
        if self.deadline <= self.requested_at:
            raise ValidationFailed("deadline must be after requested_at", field="deadline")

    def answer(self, amendment: ConflictInstruction, at: datetime) -> AmendmentRequest:
        """Return this request answered with ``amendment`` at ``at``.

        Raises ``conflicts.amendment_after_deadline`` when ``at`` is after the deadline,
        ``conflicts.amendment_closed`` when the request was already answered, and ``conflicts.amendment_mismatch``
        when the amendment is for another instruction, DER or issuer. On error nothing changes. The amended
        instruction must go through conflict detection again before it is sent.
        """
        at = _utc(at, "at")
        if self.status is AmendmentStatus.EXPIRED:
            raise ConflictError(
                f"amendment request {self.request_id} expired at its deadline {format_time(self.deadline)}; the "
                "provisional setpoint stands",
                field="at",
                code=AMENDMENT_AFTER_DEADLINE,
                details={"deadline": self.deadline.isoformat(), "at": at.isoformat()},
            )
        if self.status is not AmendmentStatus.PENDING:
            raise ConflictError(
                f"amendment request {self.request_id} was already answered at {self.answered_at}",
                field="status",
                code=AMENDMENT_CLOSED,
            )
        if at > self.deadline:
            raise ConflictError(
                f"amendment of {self.instruction_id} arrived at {format_time(at)}, after the deadline "
                f"{format_time(self.deadline)}; the provisional setpoint stands",
                field="at",
                code=AMENDMENT_AFTER_DEADLINE,
                details={"deadline": self.deadline.isoformat(), "at": at.isoformat()},
            )
        for name, expected, got in (
            ("instruction_id", self.instruction_id, amendment.instruction_id),
            ("der_id", self.der_id, amendment.der_id),
            ("issuer_party_id", self.addressee_party_id, amendment.issuer_party_id),
        ):
            if expected != got:
                raise ValidationFailed(
                    f"the amendment's {name} is {got!r}, the request is for {expected!r}",
                    field=f"amendment.{name}",
                    code=AMENDMENT_MISMATCH,
                )
        return replace(self, status=AmendmentStatus.AMENDED, answered_at=at, amendment=amendment)

    def expire(self, at: datetime) -> AmendmentRequest:
        """Return this request expired at ``at``: a pending request lapses once its deadline has passed, and its
        provisional setpoint becomes final. Raises ``conflicts.amendment_closed`` for a request that is no longer
        pending and ``ValidationFailed`` when ``at`` is not after the deadline; on error nothing changes."""
        at = _utc(at, "at")
        if self.status is not AmendmentStatus.PENDING:
            raise ConflictError(
                f"amendment request {self.request_id} is {self.status.value}, not pending",
                field="status",
                code=AMENDMENT_CLOSED,
            )
        if at <= self.deadline:
            raise ValidationFailed(
                f"amendment request {self.request_id} is open until {format_time(self.deadline)}", field="at"
            )
        return replace(self, status=AmendmentStatus.EXPIRED)


# ---------------------------------------------------------------------------------------------------------
# Transparent curtailment
# ---------------------------------------------------------------------------------------------------------


class CurtailmentRule(StrEnum):
    """Published rules for splitting a required reduction between DERs (issue 5, section 3)."""

    PRO_RATA_EXPORT = "pro_rata_export"
    """In proportion to each DER's current export."""
    PRO_RATA_CAPACITY = "pro_rata_capacity"
    """In proportion to each DER's export capacity, never more than its current export (water-filling)."""
    OFFER_PRICE = "offer_price"
    """By offer price: highest price curtailed first (or lowest first); equal prices share pro rata by export."""
    CONNECTION_ORDER = "connection_order"
    """By connection date: last connected first (or first connected first); equal dates share pro rata."""


CURTAILMENT_PARAMETERS: Mapping[CurtailmentRule, Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        CurtailmentRule.PRO_RATA_EXPORT: MappingProxyType({}),
        CurtailmentRule.PRO_RATA_CAPACITY: MappingProxyType({}),
        CurtailmentRule.OFFER_PRICE: MappingProxyType({"order": ("highest_first", "lowest_first")}),
        CurtailmentRule.CONNECTION_ORDER: MappingProxyType(
            {"order": ("last_connected_first", "first_connected_first")}
        ),
    }
)
"""Each rule's parameters and their allowed values; the first value is the default."""


@dataclass(frozen=True)
class CurtailmentProcedure:
    """A DSO's published curtailment procedure: a rule and its parameters, validated on construction."""

    rule: CurtailmentRule
    parameters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            rule = CurtailmentRule(self.rule)
        except ValueError as exc:
            known = ", ".join(r.value for r in CurtailmentRule)
            raise ValidationFailed(
                f"unknown curtailment rule {self.rule!r}; known: {known}", field="rule", code=CURTAILMENT_UNKNOWN_RULE
            ) from exc
        object.__setattr__(self, "rule", rule)
        allowed = CURTAILMENT_PARAMETERS[rule]
        resolved: dict[str, str] = {name: values[0] for name, values in allowed.items()}
        for name, value in self.parameters.items():
            if name not in allowed:
                known = ", ".join(allowed) or "none"
                raise ValidationFailed(
                    f"rule {rule.value} has no parameter {name!r} (its parameters: {known})",
                    field=f"parameters.{name}",
                    code=CURTAILMENT_UNKNOWN_PARAMETER,
                )
            if value not in allowed[name]:
                raise ValidationFailed(
                    f"parameter {name} of rule {rule.value} must be one of {', '.join(allowed[name])}, got {value!r}",
                    field=f"parameters.{name}",
                    code=CURTAILMENT_BAD_PARAMETER,
                )
            resolved[name] = value
        object.__setattr__(self, "parameters", MappingProxyType(resolved))

    def describe(self) -> str:
        """Return the rule as published: ``'offer_price (order=highest_first)'``."""
        if not self.parameters:
            return self.rule.value
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.parameters.items()))
        return f"{self.rule.value} ({params})"


class ParticipationGroup(StrEnum):
    """How a DER reaches the wholesale market."""

    DSO_AGGREGATED = "dso_aggregated"
    """Through the DSO's aggregation at the T-D interface."""
    DIRECT = "direct"
    """Directly (on its own or through a third-party aggregator)."""


@dataclass(frozen=True)
class CurtailmentCandidate:
    """A DER that can be curtailed at a constraint, with what the rules need to know about it."""

    der_id: str
    party_id: str
    group: ParticipationGroup
    p_export_kw: float
    capacity_kw: float
    offer_price_cad_per_mwh: Decimal | None = None
    connected_at: datetime | None = None

    def __post_init__(self) -> None:
        _id(self.der_id, "der_id")
        _id(self.party_id, "party_id")
        object.__setattr__(self, "group", ParticipationGroup(self.group))
        require_non_negative(self.p_export_kw, "p_export_kw")
        require_non_negative(self.capacity_kw, "capacity_kw")
        price = self.offer_price_cad_per_mwh
        if price is not None and (not isinstance(price, Decimal) or not price.is_finite()):
            raise ValidationFailed("offer_price_cad_per_mwh must be a finite Decimal", field="offer_price_cad_per_mwh")
        if self.connected_at is not None:
            object.__setattr__(self, "connected_at", _utc(self.connected_at, "connected_at"))


@dataclass(frozen=True)
class CurtailmentShare:
    """One DER's share of a curtailment, with the published rule that produced it."""

    der_id: str
    party_id: str
    group: ParticipationGroup
    p_export_kw: float
    share_kw: float
    rule: str
    reason: str


@dataclass(frozen=True)
class PartyCurtailment:
    """What one party is told: its total share and the rule."""

    party_id: str
    share_kw: float
    der_ids: tuple[str, ...]
    rule: str
    reason: str


@dataclass(frozen=True)
class CurtailmentAllocation:
    """A required reduction split by a published rule. Shares are whole watts and sum to ``met_kw`` exactly.

    ``unmet_kw`` is the part of the requirement that the candidates' current export cannot cover.
    """

    constraint_id: str
    required_kw: float
    procedure: CurtailmentProcedure
    shares: tuple[CurtailmentShare, ...]
    parties: tuple[PartyCurtailment, ...]
    by_group_kw: Mapping[ParticipationGroup, float]
    met_kw: float
    unmet_kw: float


# ---------------------------------------------------------------------------------------------------------
# Open-access report
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAccessRecord:
    """One DER's dispatch and curtailment under one DSO in one reporting period."""

    dso_id: str
    der_id: str
    period_start: datetime
    dso_affiliated: bool
    capacity_kw: float
    dispatched_kwh: float
    curtailed_kwh: float

    def __post_init__(self) -> None:
        _id(self.dso_id, "dso_id")
        _id(self.der_id, "der_id")
        object.__setattr__(self, "period_start", _utc(self.period_start, "period_start"))
        require_non_negative(self.capacity_kw, "capacity_kw")
        require_non_negative(self.dispatched_kwh, "dispatched_kwh")
        require_non_negative(self.curtailed_kwh, "curtailed_kwh")


@dataclass(frozen=True)
class OpenAccessRow:
    """Per DSO, period and group (DSO-affiliated or third-party): totals, shares and capacity-normalised shares.

    ``*_share`` is the group's fraction of the DSO's total in the period. ``*_per_kw`` divides the group's
    energy by its capacity. ``*_share_ratio`` is the share divided by the group's capacity share: 1.0 means the
    group gets exactly its capacity's worth; above 1.0, more. ``nan`` where a denominator is zero.
    """

    dso_id: str
    period_start: datetime
    dso_affiliated: bool
    n_ders: int
    capacity_kw: float
    dispatched_kwh: float
    curtailed_kwh: float
    capacity_share: float
    dispatch_share: float
    curtailment_share: float
    dispatched_kwh_per_kw: float
    curtailed_kwh_per_kw: float
    dispatch_share_ratio: float
    curtailment_share_ratio: float


def unique_ids(values: Iterable[str], field_name: str) -> None:
    """Raise ``conflicts.duplicate_id`` naming ``field_name`` if an id appears twice."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValidationFailed(f"{field_name} {value!r} appears twice", field=field_name, code=DUPLICATE_ID)
        seen.add(value)
