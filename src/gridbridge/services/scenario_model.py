"""The declarative scenario format (docs/scenarios.md): participants, T-D interfaces with their coordination
models, SimBench networks, conflict resolution policies and curtailment procedures, DERs, aggregations, offer
templates, TSO requirements, interface load, outages, TSO operating instructions that the DSO dispatches to its
resources, DSO distribution service dispatches and DSO curtailment requests.

The models are pydantic so that a bad file is refused with the dotted path of the offending key; parsing the
YAML text itself is the caller's business (the CLI), so this module never imports a YAML library.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from gridbridge.domain.conflicts import (
    ConflictKind,
    CurtailmentProcedure,
    CurtailmentRule,
    ResolutionPolicy,
    ResolutionRule,
    ServicePriorityList,
)
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.der import Technology
from gridbridge.domain.errors import GridbridgeError, ValidationFailed, register_code
from gridbridge.domain.network_state import NetworkEventKind
from gridbridge.domain.offers import Market, Product, Side
from gridbridge.domain.roles import DsoKind, Role, Service

SCENARIO_INVALID = register_code("scenario.invalid", 422, "A scenario file does not match the scenario format")

HOURS_PER_DAY = 24
REAL_TIME_STEP = timedelta(minutes=5)
"""The real-time interval grid that DSO dispatch and curtailment windows must sit on."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be a UTC-aware timestamp (end it with Z or +00:00)")
    return value.astimezone(UTC)


def _on_grid(value: datetime) -> datetime:
    value = _utc(value)
    if value.microsecond or int(value.timestamp()) % int(REAL_TIME_STEP.total_seconds()):
        raise ValueError(f"must be on the {REAL_TIME_STEP.seconds // 60}-minute real-time interval grid")
    return value


def _window(starts_at: datetime, ends_at: datetime, issued_at: datetime | None, issued_name: str) -> None:
    if ends_at <= starts_at:
        raise ValueError("ends_at must be after starts_at")
    if issued_at is not None and issued_at > starts_at:
        raise ValueError(f"{issued_name} must not be after starts_at (the window may not start in the past)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParticipantSpec(_Strict):
    """A participant; each gets one user the runner acts as."""

    name: str = Field(min_length=1)
    role: Role
    dso_kind: DsoKind | None = None


class ConflictPolicySpec(_Strict):
    """The interface's conflict resolution policy, declared by its DSO when the day starts
    (``conflicts.set_policy``): service categories highest priority first (each once), a rule per conflict kind
    (kinds not named keep their default) and the amendment window. Without one the platform default applies."""

    priorities: list[str]
    rules: dict[ConflictKind, ResolutionRule] = Field(default_factory=dict)
    amendment_window_min: int = Field(default=15, ge=1, le=24 * 60)

    @field_validator("priorities")
    @classmethod
    def _every_category_once(cls, value: list[str]) -> list[str]:
        try:
            ServicePriorityList.from_names(value)
        except GridbridgeError as exc:
            raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _rules_allowed(self) -> ConflictPolicySpec:
        try:
            ResolutionPolicy(ServicePriorityList.from_names(self.priorities), dict(self.rules))
        except GridbridgeError as exc:
            kind = (exc.field or "").removeprefix("rules[").rstrip("]")
            raise _path_error(f"rules.{kind}" if kind else "rules", exc.message) from None
        return self


class CurtailmentProcedureSpec(_Strict):
    """The interface's published curtailment procedure (``curtailment.publish_procedure``), in force from when
    the day starts: the rule, its parameters, and the share of a reduction taken from DSO-aggregated DERs."""

    rule: CurtailmentRule
    parameters: dict[str, str] = Field(default_factory=dict)
    dso_aggregated_pct: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _parameters_known(self) -> CurtailmentProcedureSpec:
        try:
            CurtailmentProcedure(self.rule, dict(self.parameters))
        except GridbridgeError as exc:
            raise _path_error(exc.field or "parameters", exc.message) from None
        return self


class InterfaceSpec(_Strict):
    """A T-D interface, its model record and its network (a SimBench code); optionally the DSO's conflict
    resolution policy and curtailment procedure there."""

    name: str = Field(min_length=1)
    dso: str
    model: ModelName
    network: str = Field(pattern=r"^simbench:.+")
    import_limit_kw: float = Field(gt=0)
    export_limit_kw: float = Field(gt=0)
    price_node: str | None = None
    conflict_policy: ConflictPolicySpec | None = None
    curtailment_procedure: CurtailmentProcedureSpec | None = None


class DerSpecModel(_Strict):
    """A DER, filed by ``filed_by`` (its owner or an aggregator for ``owner``), approved and commissioned."""

    name: str = Field(min_length=1)
    interface: str
    point: int | str = Field(description="connection point: index in the interface's list or its name")
    technology: Technology = Technology.PV
    export_kw: float = Field(ge=0)
    import_kw: float = Field(default=0.0, ge=0)
    energy_kwh: float | None = Field(default=None, gt=0)
    round_trip_efficiency: float | None = Field(default=None, gt=0, le=1)
    """Storage and EV charging: energy out over energy in (default: the deployment's setting)."""
    filed_by: str
    owner: str | None = None
    export_limit_kw: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _efficiency_of_storage(self) -> DerSpecModel:
        if self.round_trip_efficiency is not None and self.technology not in (
            Technology.STORAGE,
            Technology.EV_CHARGING,
        ):
            raise _path_error(
                "round_trip_efficiency", f"is only meaningful for storage and EV charging, not {self.technology.value}"
            )
        return self


def _wholesale_energy() -> dict[Service, float | None]:
    return {Service.WHOLESALE_ENERGY: None}


class AggregationSpec(_Strict):
    """An aggregation of ``aggregator``'s with the member DERs the LDCs approve."""

    name: str = Field(min_length=1)
    aggregator: str
    services: dict[Service, float | None] = Field(default_factory=_wholesale_energy)
    members: list[str] = Field(min_length=1)
    multi_tdi: bool = False


class OfferSpec(_Strict):
    """An offer (or bid) template: the same curve for every interval of ``markets`` within ``[from, to)``,
    quantities scaled by ``profile`` (one factor per hour of the day, optional)."""

    resource: str
    party: str
    markets: list[Market] = Field(default_factory=lambda: [Market.DAY_AHEAD, Market.REAL_TIME], min_length=1)
    product: Product = Product.ENERGY
    side: Side = Side.OFFER
    segments: list[tuple[Decimal, Decimal]] = Field(min_length=1, max_length=10)
    profile: list[float] | None = None
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _utc_times = field_validator("from_", "to")(lambda v: None if v is None else _utc(v))

    @field_validator("profile")
    @classmethod
    def _profile_has_24(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) != HOURS_PER_DAY or any(f < 0 for f in value)):
            raise ValueError("profile needs 24 non-negative factors, one per hour of the day")
        return value


class RequirementSpec(_Strict):
    """The TSO's requirement for one market: a flat value or 24 hourly values (kW)."""

    energy_kw: float | list[float]
    reserve_kw: float | list[float] = 0.0

    @field_validator("energy_kw", "reserve_kw")
    @classmethod
    def _hourly(cls, value: float | list[float]) -> float | list[float]:
        if isinstance(value, list) and len(value) != HOURS_PER_DAY:
            raise ValueError("give one value or 24 hourly values")
        return value


class LoadSpec(_Strict):
    """The load forecast at one interface (kW), flat or 24 hourly values."""

    interface: str
    load_kw: float | list[float]

    @field_validator("load_kw")
    @classmethod
    def _hourly(cls, value: float | list[float]) -> float | list[float]:
        if isinstance(value, list) and len(value) != HOURS_PER_DAY:
            raise ValueError("give one value or 24 hourly values")
        return value


class WindowSpec(_Strict):
    """Intervals from ``from`` (inclusive) to ``to`` (exclusive), every ``every_min`` minutes."""

    from_: datetime = Field(alias="from")
    to: datetime
    every_min: int = Field(default=0, ge=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _utc_times = field_validator("from_", "to")(lambda v: _utc(v))

    @model_validator(mode="after")
    def _ordered(self) -> WindowSpec:
        if self.to <= self.from_:
            raise ValueError("'to' must be after 'from'")
        return self


class MarketsSpec(_Strict):
    """Which intervals the scenario clears: day-ahead hours and real-time 5-minute intervals."""

    day_ahead: WindowSpec | None = None
    real_time: WindowSpec | None = None
    requirements: dict[Market, RequirementSpec]

    @model_validator(mode="after")
    def _has_requirements(self) -> MarketsSpec:
        for market in (Market.DAY_AHEAD, Market.REAL_TIME):
            window = self.day_ahead if market is Market.DAY_AHEAD else self.real_time
            if window is not None and market not in self.requirements:
                raise ValueError(f"requirements.{market.value} is missing for a market the scenario clears")
        return self


class OutageSpec(_Strict):
    """A network event recorded by the interface's DSO at ``recorded_at`` (default: when it starts)."""

    interface: str
    kind: NetworkEventKind = NetworkEventKind.UNPLANNED_OUTAGE
    starts_at: datetime
    ends_at: datetime
    open: list[str] = Field(min_length=1)
    reason: str = ""
    recorded_at: datetime | None = None

    _utc_times = field_validator("starts_at", "ends_at", "recorded_at")(lambda v: None if v is None else _utc(v))

    @model_validator(mode="after")
    def _ordered(self) -> OutageSpec:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class OperatingSpec(_Strict):
    """A TSO operating instruction to the DSO of ``interface`` (cut ``p_kw`` of load over the window, outside the
    market), issued at ``starts_at`` and dispatched by the DSO to its resources."""

    interface: str
    p_kw: float = Field(gt=0)
    starts_at: datetime
    ends_at: datetime
    reason: str = "bulk-system emergency"

    _utc_times = field_validator("starts_at", "ends_at")(lambda v: _utc(v))

    @model_validator(mode="after")
    def _ordered(self) -> OperatingSpec:
        _window(self.starts_at, self.ends_at, None, "")
        return self


class ServiceDispatchSpec(_Strict):
    """The DSO of ``der``'s interface dispatches it for a distribution service (non-wires deferral, distribution
    operations) over ``[starts_at, ends_at)`` (``instructions.dispatch_distribution_service``), issued at
    ``issued_at`` (default: ``starts_at``). ``p_kw`` positive is injection (discharge, load reduction),
    negative withdrawal; at most the DER's capability on that side."""

    der: str
    p_kw: float = Field(allow_inf_nan=False)
    starts_at: datetime
    ends_at: datetime
    issued_at: datetime | None = None
    reason: str = Field(default="distribution deferral", min_length=1)

    _grid_times = field_validator("starts_at", "ends_at")(lambda v: _on_grid(v))
    _utc_times = field_validator("issued_at")(lambda v: None if v is None else _utc(v))

    @field_validator("p_kw")
    @classmethod
    def _not_zero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("must not be 0 (positive: injection, negative: withdrawal)")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ServiceDispatchSpec:
        _window(self.starts_at, self.ends_at, self.issued_at, "issued_at")
        return self


class CurtailmentRequestSpec(_Strict):
    """The DSO of ``interface`` needs ``required_kw`` less export over ``[starts_at, ends_at)`` for a
    distribution constraint (``curtailment.request_curtailment``), asked at ``requested_at`` (default:
    ``starts_at``); its published procedure (``interfaces[].curtailment_procedure``) splits it. ``points``
    (connection point names) or ``feeder`` limit it to part of the network."""

    interface: str
    required_kw: float = Field(gt=0, allow_inf_nan=False)
    starts_at: datetime
    ends_at: datetime
    requested_at: datetime | None = None
    points: list[str] = Field(default_factory=list)
    feeder: str | None = None
    reason: str = ""

    _grid_times = field_validator("starts_at", "ends_at")(lambda v: _on_grid(v))
    _utc_times = field_validator("requested_at")(lambda v: None if v is None else _utc(v))

    @model_validator(mode="after")
    def _ordered(self) -> CurtailmentRequestSpec:
        _window(self.starts_at, self.ends_at, self.requested_at, "requested_at")
        return self


class Responses(StrEnum):
    """How the recipients of instructions answer them."""

    NONE = "none"
    """Nobody answers: each instruction escalates to its issuer at its deadline, and from then on conflict
    checks no longer count it (they consider issued, received and accepted instructions)."""
    ACCEPT = "accept"
    """Each recipient sends a receipt and accepts every open instruction addressed to it as soon as it is
    issued: instructions stay in force for the conflict checks of later instructions."""


class Scenario(_Strict):
    """A whole scenario file."""

    name: str = Field(min_length=1)
    description: str = ""
    start: datetime
    registry_days_before: int = Field(default=2, ge=2)
    participants: list[ParticipantSpec] = Field(min_length=1)
    interfaces: list[InterfaceSpec] = Field(min_length=1)
    ders: list[DerSpecModel] = Field(default_factory=list)
    aggregations: list[AggregationSpec] = Field(default_factory=list)
    offers: list[OfferSpec] = Field(default_factory=list)
    markets: MarketsSpec
    load: list[LoadSpec] = Field(default_factory=list)
    outages: list[OutageSpec] = Field(default_factory=list)
    operating_instructions: list[OperatingSpec] = Field(default_factory=list)
    service_dispatches: list[ServiceDispatchSpec] = Field(default_factory=list)
    curtailment_requests: list[CurtailmentRequestSpec] = Field(default_factory=list)
    responses: Responses = Responses.NONE

    _utc_start = field_validator("start")(lambda v: _utc(v))

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Scenario:
        registered: frozenset[str] = (info.context or {}).get("registered", frozenset())
        names = [p.name for p in self.participants]
        roles = {p.name: p.role for p in self.participants}
        faces = [i.name for i in self.interfaces]
        der_names = [d.name for d in self.ders]
        agg_names = [a.name for a in self.aggregations]
        for label, values in (
            ("participants", names),
            ("interfaces", faces),
            ("ders", der_names),
            ("aggregations", agg_names),
        ):
            seen: set[str] = set()
            for i, v in enumerate(values):
                if v in seen:
                    raise _path_error(f"{label}.{i}.name", f"duplicate name {v!r}")
                seen.add(v)
        if Role.TSO not in roles.values():
            raise _path_error("participants", "a scenario needs one participant with role tso")

        def need(path: str, value: str | None, pool: Collection[str], what: str) -> None:
            if value is not None and value not in pool:
                raise _path_error(path, f"unknown {what} {value!r}")

        resources = {*der_names, *agg_names, *faces, *registered}

        for i, face in enumerate(self.interfaces):
            need(f"interfaces.{i}.dso", face.dso, names, "participant")
            if roles[face.dso] is not Role.DSO:
                raise _path_error(f"interfaces.{i}.dso", f"{face.dso!r} is not a dso")
        for i, der in enumerate(self.ders):
            need(f"ders.{i}.interface", der.interface, faces, "interface")
            need(f"ders.{i}.filed_by", der.filed_by, names, "participant")
            need(f"ders.{i}.owner", der.owner, names, "participant")
        for i, agg in enumerate(self.aggregations):
            need(f"aggregations.{i}.aggregator", agg.aggregator, names, "participant")
            for j, member in enumerate(agg.members):
                need(f"aggregations.{i}.members.{j}", member, der_names, "DER")
        for i, offer in enumerate(self.offers):
            need(f"offers.{i}.resource", offer.resource, resources, "resource")
            need(f"offers.{i}.party", offer.party, names, "participant")
        for i, load in enumerate(self.load):
            need(f"load.{i}.interface", load.interface, faces, "interface")
        for i, out in enumerate(self.outages):
            need(f"outages.{i}.interface", out.interface, faces, "interface")
        for i, op in enumerate(self.operating_instructions):
            need(f"operating_instructions.{i}.interface", op.interface, faces, "interface")
        specs = {d.name: d for d in self.ders}
        for i, dispatch in enumerate(self.service_dispatches):
            need(f"service_dispatches.{i}.der", dispatch.der, {*der_names, *registered}, "DER")
            target = specs.get(dispatch.der)
            capability = None if target is None else target.export_kw if dispatch.p_kw > 0 else target.import_kw
            if capability is not None and abs(dispatch.p_kw) > capability:
                side = "export" if dispatch.p_kw > 0 else "import"
                raise _path_error(
                    f"service_dispatches.{i}.p_kw",
                    f"|p_kw| {abs(dispatch.p_kw):g} kW exceeds {dispatch.der}'s {side} capability of {capability:g} kW",
                )
        procedures = {f.name for f in self.interfaces if f.curtailment_procedure is not None}
        for i, request in enumerate(self.curtailment_requests):
            need(f"curtailment_requests.{i}.interface", request.interface, faces, "interface")
            if request.interface not in procedures:
                raise _path_error(
                    f"curtailment_requests.{i}.interface",
                    f"{request.interface!r} has no curtailment_procedure to split the reduction by",
                )
        return self

    @property
    def registry_time(self) -> datetime:
        """When the registry part happens (the clock before the first market event)."""
        return self.start - timedelta(days=self.registry_days_before)


class _PathError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _path_error(path: str, message: str) -> _PathError:
    return _PathError(path, message)


def parse_scenario(data: Any, *, registered: Collection[str] = ()) -> Scenario:
    """Validate parsed scenario data (a mapping from YAML or JSON). A bad file raises ``ValidationFailed``
    (code ``scenario.invalid``) whose field is the dotted path of the first offending key and whose message
    lists every problem found.

    ``registered``: names of DERs and aggregations registered outside the scenario (a registry built
    beforehand, played with ``ScenarioRunner(..., names=...)``) that offers may name too."""
    if not isinstance(data, dict):
        raise ValidationFailed("a scenario must be a mapping of keys", field="$", code=SCENARIO_INVALID)
    try:
        return Scenario.model_validate(data, context={"registered": frozenset(registered)})
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for err in exc.errors():
            ctx_error = (err.get("ctx") or {}).get("error")
            where = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
            if isinstance(ctx_error, _PathError):
                # a nested model's path is relative to where the model sits
                problems.append((f"{where}.{ctx_error.path}" if where else ctx_error.path, ctx_error.message))
                continue
            path = (where or "$").replace("from_", "from")
            problems.append((path, err["msg"].removeprefix("Value error, ")))
        message = "; ".join(f"{p}: {m}" for p, m in problems)
        raise ValidationFailed(message, field=problems[0][0], code=SCENARIO_INVALID) from None
