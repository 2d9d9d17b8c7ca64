"""The coordination cycle's records: stored offer versions, acknowledgements, clearing runs, instructions and
notifications, with the pure rules applied to them (who receives an offer, the instruction life cycle, who
sees what).

An offer is submitted for a *resource*: a DER offering on its own, an aggregation, or a DSO's virtual resource
at a T-D interface (``ResourceKind``). Each submission for one key (resource, product, side, market, interval)
is stored as a new version with the next revision number; the latest version is in force until gate closure.
Where an offer goes (``Route``) follows the interface's coordination-model record: to the TSO's market, or to
the DSO, which merges the offers it receives into its virtual resource's single curve at the interface.

Instructions go from an issuer to a recipient (``InstructionKind``: day-ahead schedule, real-time dispatch, or a
TSO operating instruction outside the market). Every instruction needs a receipt, then an acceptance or a
rejection before its deadline (``respond``); one left unanswered past its deadline is escalated to its issuer.
An instruction split to smaller resources keeps the id of its parent on every child.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from gridbridge.domain.coordination import CoordinationModel, TsoDerVisibility
from gridbridge.domain.der import Technology
from gridbridge.domain.errors import ConflictError, ValidationFailed, register_code
from gridbridge.domain.offers import Market, OfferSegment, Product, Side
from gridbridge.domain.roles import Service

# --- error codes ------------------------------------------------------------------------------------------

NOT_REPRESENTED = register_code(
    "offers.not_represented", 403, "The sender neither owns nor represents the resource (or it does not exist)"
)
NOT_ENROLLED = register_code(
    "offers.not_enrolled",
    409,
    "The resource is not enrolled for this product: registration status, market standing, size threshold or "
    "the interface's coordination model does not let it offer",
)
BEYOND_CAPABILITY = register_code(
    "offers.beyond_capability", 422, "The offered quantity exceeds the resource's registered capability"
)
DOUBLE_COUNTED = register_code(
    "offers.double_counted",
    409,
    "The DER is an approved member of an aggregation offering the same service in that interval",
)
BATCH_REJECTED = register_code(
    "offers.batch_rejected", 422, "Every item of the submission was rejected; details.items acknowledges each"
)
GATE_OPEN = register_code(
    "clearing.gate_open", 409, "The interval is still open for offers; it can be cleared after gate closure"
)
ALREADY_CLEARED = register_code("clearing.already_cleared", 409, "The interval of that market has been cleared")
ALREADY_DISPATCHED = register_code(
    "clearing.already_dispatched", 409, "Instructions for this clearing run have been issued"
)
ILLEGAL_RESPONSE = register_code(
    "instructions.illegal_transition", 409, "The instruction's state does not allow this response"
)
DEADLINE_PASSED = register_code(
    "instructions.deadline_passed", 409, "The instruction's response deadline has passed; it is escalated to its issuer"
)
REASON_REQUIRED = register_code("instructions.reason_required", 422, "A rejection needs a stated reason")
NOT_SPLITTABLE = register_code(
    "instructions.not_splittable",
    409,
    "Only an instruction to an aggregation, a DSO's virtual resource or a T-D interface can be split",
)
ALREADY_SPLIT = register_code("instructions.already_split", 409, "The instruction has already been split")
BAD_PERIOD = register_code("instructions.bad_period", 422, "An operating instruction must end after it starts")
RESPONSES_REJECTED = register_code(
    "instructions.batch_rejected", 422, "Every response of the batch was refused; details.items answers each"
)
SERVICE_DER_NOT_OPERATING = register_code(
    "instructions.der_not_operating",
    409,
    "A distribution service dispatch names a DER that is neither enrolled nor in service",
)
SERVICE_WINDOW_MISALIGNED = register_code(
    "instructions.window_misaligned",
    422,
    "A distribution service window does not start and end on real-time market interval boundaries",
)
SERVICE_WINDOW_PAST = register_code(
    "instructions.window_in_past", 422, "A distribution service window starts before now"
)
SERVICE_BEYOND_CAPABILITY = register_code(
    "instructions.beyond_capability",
    422,
    "A distribution service setpoint exceeds the DER's registered export (positive) or import (negative) capability",
)


# --- resources and offers ---------------------------------------------------------------------------------


class ResourceKind(StrEnum):
    """What an offer or an instruction is for."""

    DER = "der"
    AGGREGATION = "aggregation"
    DSO_VIRTUAL = "dso_virtual"
    """A DSO's virtual resource at a T-D interface (``resource_id`` is the interface id)."""
    INTERFACE = "interface"
    """The load and resources under a T-D interface (target of a TSO operating instruction)."""


class Route(StrEnum):
    """Who receives an offer: the TSO's market, or the DSO that merges it into its virtual resource."""

    TSO = "tso"
    DSO = "dso"


PRODUCT_NOT_CAPABLE = register_code(
    "der.product_not_capable",
    422,
    "The DER's technology cannot provide this market product (operating reserve needs a dispatchable technology)",
)

DISPATCHABLE_TECHNOLOGIES = frozenset(
    {Technology.STORAGE, Technology.CHP, Technology.DEMAND_RESPONSE, Technology.EV_CHARGING}
)
"""Technologies that can hold operating reserve: raise output (storage, CHP) or cut load (demand response, EV
charging) within the interval on instruction. PV follows the sun and ``other`` is not known to be dispatchable:
they sell energy only (white paper footnote 80: "Only dispatchable DERs/DERAs would receive IESO dispatch
instructions"; reserve is held for such an instruction)."""


def capable_products(technology: Technology) -> frozenset[Product]:
    """The market products a DER of ``technology`` can provide: energy always, operating reserve only for a
    dispatchable technology (``DISPATCHABLE_TECHNOLOGIES``). A DER is registered for these on commissioning."""
    if technology in DISPATCHABLE_TECHNOLOGIES:
        return frozenset({Product.ENERGY, Product.OPERATING_RESERVE})
    return frozenset({Product.ENERGY})


def validate_market_products(technology: Technology, products: Iterable[Product]) -> frozenset[Product]:
    """The products a DER registers for, each one its technology can provide; raises
    ``der.product_not_capable`` (naming the product) otherwise. An empty set withdraws the DER from offering on
    its own."""
    chosen = frozenset(products)
    capable = capable_products(technology)
    for product in sorted(chosen - capable):
        raise ValidationFailed(
            f"a {technology.value} DER cannot provide {product.value}; it can register for "
            f"{', '.join(sorted(p.value for p in capable))}",
            field="products",
            code=PRODUCT_NOT_CAPABLE,
            details={"product": product.value, "capable_products": sorted(p.value for p in capable)},
        )
    return chosen


SERVICE_OF: Mapping[Product, Service] = MappingProxyType(
    {Product.ENERGY: Service.WHOLESALE_ENERGY, Product.OPERATING_RESERVE: Service.OPERATING_RESERVE}
)
"""The registered service an offer of each product needs (an aggregation's market, a DER's enrolment)."""


@dataclass(frozen=True)
class OfferKey:
    """What one series of offer versions is about."""

    resource_kind: ResourceKind
    resource_id: str
    product: Product
    side: Side
    market: Market
    interval_start: datetime


@dataclass(frozen=True)
class OfferItem:
    """One item of a submission, as sent (before validation)."""

    resource_kind: ResourceKind
    resource_id: str
    product: Product
    market: Market
    side: Side
    interval_start: datetime
    segments: tuple[OfferSegment, ...]

    @property
    def key(self) -> OfferKey:
        """The series this item adds a version to."""
        return OfferKey(self.resource_kind, self.resource_id, self.product, self.side, self.market, self.interval_start)

    def offered_kw(self) -> Decimal:
        """Sum of the segment quantities as sent."""
        return sum((s.quantity_kw for s in self.segments), Decimal(0))


@dataclass(frozen=True)
class StoredOffer:
    """One accepted version of an offer or bid, with where it goes and why it may have been cut.

    ``segments`` are what is in force (after clipping to the envelope, when ``clipped``); ``offered_kw`` is
    what the sender offered. ``source_offer_ids`` lists the offers a DSO's virtual-resource offer merges.
    ``superseded_at`` is set when a later revision replaces this one.
    """

    id: str
    resource_kind: ResourceKind
    resource_id: str
    product: Product
    market: Market
    side: Side
    interval_start: datetime
    revision: int
    segments: tuple[OfferSegment, ...]
    offered_kw: Decimal
    route: Route
    tdi_id: str | None
    """The interface of a single-interface resource (None for a multi-interface aggregation)."""
    dso_id: str | None
    """The LDC of that interface."""
    party_id: str
    """The participant answerable for the resource: the DER's representative (or owner), the aggregator,
    the DSO of a virtual resource. Instructions for the resource go to it."""
    sender_id: str
    submitted_by: str
    submitted_at: datetime
    clipped: bool = False
    binding_envelope: str | None = None
    source_offer_ids: tuple[str, ...] = ()
    superseded_at: datetime | None = None

    @property
    def key(self) -> OfferKey:
        """The series this version belongs to."""
        return OfferKey(self.resource_kind, self.resource_id, self.product, self.side, self.market, self.interval_start)

    def total_kw(self) -> Decimal:
        """Sum of the segment quantities in force."""
        return sum((s.quantity_kw for s in self.segments), Decimal(0))

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "id": self.id,
            "resource_kind": self.resource_kind.value,
            "resource_id": self.resource_id,
            "product": self.product.value,
            "market": self.market.value,
            "side": self.side.value,
            "interval_start": self.interval_start.isoformat(),
            "revision": self.revision,
            "segments": [[str(s.price_cad_per_mwh), str(s.quantity_kw)] for s in self.segments],
            "offered_kw": str(self.offered_kw),
            "route": self.route.value,
            "clipped": self.clipped,
            "binding_envelope": self.binding_envelope,
            "source_offer_ids": list(self.source_offer_ids),
        }


class AckStatus(StrEnum):
    """Outcome of one submitted item."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


ACCEPTED_CODE = "offers.accepted"
CLIPPED_CODE = "offers.clipped_to_envelope"


@dataclass(frozen=True)
class OfferAck:
    """The acknowledgement of one item: accepted (maybe clipped, naming the binding envelope) or rejected with a
    stable code, the offending field and a message. Rejected items change nothing."""

    index: int
    item: OfferItem
    status: AckStatus
    code: str
    message: str
    field: str | None = None
    offer: StoredOffer | None = None
    binding_envelope: str | None = None
    accepted_kw: Decimal | None = None

    @property
    def accepted(self) -> bool:
        """True when the item was stored."""
        return self.status is AckStatus.ACCEPTED

    def summary(self) -> dict[str, object]:
        """The acknowledgement as plain JSON values (the API's item shape, also inside a batch rejection)."""
        return {
            "index": self.index,
            "resource_kind": self.item.resource_kind.value,
            "resource_id": self.item.resource_id,
            "product": self.item.product.value,
            "market": self.item.market.value,
            "side": self.item.side.value,
            "interval_start": self.item.interval_start.isoformat(),
            "status": self.status.value,
            "code": self.code,
            "field": self.field,
            "message": self.message,
            "offer_id": self.offer.id if self.offer else None,
            "revision": self.offer.revision if self.offer else None,
            "offered_kw": str(self.item.offered_kw()),
            "accepted_kw": None if self.accepted_kw is None else str(self.accepted_kw),
            "binding_envelope": self.binding_envelope,
        }


def route_for_der(model: CoordinationModel, capacity_kw: float, direct_threshold_kw: float) -> Route | None:
    """Where a DER's own offer goes under ``model``: to the TSO when the model allows direct participation and
    the DER is at or above the interface's threshold; else to the DSO where the model has it aggregate
    sub-threshold DERs; ``None`` where it may not offer on its own (it must join an aggregation)."""
    if model.direct_wholesale_participation and capacity_kw >= direct_threshold_kw:
        return Route.TSO
    if model.dso_aggregates_below_threshold:
        return Route.DSO
    return None


@dataclass(frozen=True)
class AggregationSize:
    """An aggregation's size at one of its interfaces, held to that interface's direct-participation threshold.

    ``size_kw`` is the sum of the capacities (the larger of export and import rating) of its approved members
    under the interface in the interval: its distribution-factor share of its capacity (white paper footnote 49:
    a multi-node aggregation is modelled at each interface by its share of capacity there)."""

    tdi_id: str
    model: CoordinationModel
    size_kw: float
    direct_threshold_kw: float

    @property
    def below_threshold(self) -> bool:
        """True where the model lets resources offer directly only at or above the threshold and this share is
        below it."""
        return self.model.direct_wholesale_participation and self.size_kw < self.direct_threshold_kw


def route_for_aggregation(
    models: list[CoordinationModel], run_by_dso: bool, *, below_threshold: bool = False
) -> Route | None:
    """Where an aggregation's offer goes, from the model records of the interfaces of its approved members.

    An aggregation run by a DSO, one at an interface whose model has no direct participation, or one below the
    direct-participation threshold at any of its interfaces (``below_threshold``, see ``AggregationSize``)
    reaches the market through the DSO's virtual resource, which only a single-interface aggregation can join,
    under a model whose DSO aggregates; otherwise it offers to the TSO directly. ``None``: it may not offer.
    """
    if not models:
        return None
    through_dso = run_by_dso or below_threshold or any(not m.direct_wholesale_participation for m in models)
    if not through_dso:
        return Route.TSO
    if len(models) == 1 and models[0].dso_aggregates_below_threshold:
        return Route.DSO
    return None


# --- clearing runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InterfaceForecast:
    """The TSO's load forecast at one interface for one interval (kW, positive as consumption): the load under
    the interface, net of the output of DERs the platform does not schedule. An interface the TSO gives no
    forecast for has no known load. The scheduled DER injection is not an input: the clearing derives it from the
    instructions in force (``InterfaceResult.der_schedule_kw``)."""

    load_kw: float


@dataclass(frozen=True)
class InterfaceResult:
    """One interface in a clearing run: limits and model used, prices (CAD/MWh), flows (kW) and checks."""

    tdi_id: str
    model: str
    import_limit_kw: float
    export_limit_kw: float
    load_kw: float | None
    """The TSO's load forecast; ``None`` where it gave none (the net flow is then partial)."""
    der_schedule_kw: float
    """Injection already scheduled for the interval by instructions in force from outside this run (day-ahead
    schedules in a real-time run, DSO distribution-service dispatches, TSO load curtailments), for resources this
    run does not clear again."""
    injection_kw: float
    net_flow_kw: float
    """``load - DER schedules - dispatched injection``: positive is import from transmission. Without a load
    forecast it is the partial flow ``-(DER schedules + dispatched injection)``, which claims nothing about the
    direction of the flow (``net_flow_known`` is False)."""
    energy_price_cad_per_mwh: Decimal | None
    reserve_price_cad_per_mwh: Decimal | None
    congestion_cad_per_mwh: Decimal | None
    shortfall_kw: float
    """Dispatch the distribution check found the interface's DERs could not deliver (handed back to the TSO)."""
    redispatched_kw: float

    @property
    def net_flow_known(self) -> bool:
        """True when the TSO gave a load forecast, so the net flow is a forecast of the whole interface."""
        return self.load_kw is not None

    @property
    def reverse_flow(self) -> bool:
        """True when the forecast has distribution export to transmission (never claimed without a load
        forecast)."""
        return self.net_flow_known and self.net_flow_kw < 0


@dataclass(frozen=True)
class ResourceResult:
    """One resource in a clearing run: its offers, where it sits, who answers for it, what it was given."""

    resource_kind: ResourceKind
    resource_id: str
    side: Side
    energy_offer_id: str | None
    reserve_offer_id: str | None
    tdi_id: str | None
    dso_id: str | None
    party_id: str
    first_p_kw: float
    """Energy dispatch of the first clearing (before the distribution check); negative for consumption."""
    p_kw: float
    """Final energy dispatch; negative for consumption (a bid)."""
    reserve_kw: float
    price_cad_per_mwh: Decimal | None
    """The resource's energy price: its interface's, or the factor-weighted average over its interfaces (None
    where no price formed: nothing was dispatched, so no offer was marginal)."""


@dataclass(frozen=True)
class Curtailment:
    """A resource's dispatch at one interface cut by the distribution check, with the written reason (the binding
    limit). A DER's or a DSO virtual resource's is wholly at its interface; a multi-interface aggregation has one
    per interface, each its distribution-factor share of the dispatch and of what it may deliver."""

    resource_id: str
    tdi_id: str
    dispatched_kw: float
    allowed_kw: float
    curtailed_kw: float
    checked_by: str
    """The role the model record names as distribution limit checker."""
    reason: str
    resource_kind: ResourceKind = ResourceKind.DER

    @property
    def der_id(self) -> str | None:
        """The DER curtailed (None for an aggregation or a DSO's virtual resource)."""
        return self.resource_id if self.resource_kind is ResourceKind.DER else None


@dataclass(frozen=True)
class ClearingRun:
    """A stored clearing: the requirement, what went in (digest), and every result."""

    id: str
    market: Market
    interval_start: datetime
    energy_requirement_kw: float
    reserve_requirement_kw: float
    cost_cad_per_h: Decimal
    system_energy_price_cad_per_mwh: Decimal | None
    system_reserve_price_cad_per_mwh: Decimal | None
    energy_shortage_kw: float
    reserve_shortage_kw: float
    method: str
    redispatch_rounds: int
    inputs_digest: str
    created_at: datetime
    created_by: str
    interfaces: tuple[InterfaceResult, ...] = ()
    resources: tuple[ResourceResult, ...] = ()
    curtailments: tuple[Curtailment, ...] = ()
    dispatched_at: datetime | None = None

    def snapshot(self) -> dict[str, object]:
        """A JSON-able summary for the audit trail."""
        return {
            "id": self.id,
            "market": self.market.value,
            "interval_start": self.interval_start.isoformat(),
            "energy_requirement_kw": self.energy_requirement_kw,
            "reserve_requirement_kw": self.reserve_requirement_kw,
            "cost_cad_per_h": str(self.cost_cad_per_h),
            "system_energy_price_cad_per_mwh": str(self.system_energy_price_cad_per_mwh),
            "resources": len(self.resources),
            "curtailed_kw": sum(c.curtailed_kw for c in self.curtailments),
            "inputs_digest": self.inputs_digest,
        }


# --- instructions -----------------------------------------------------------------------------------------


class InstructionKind(StrEnum):
    """Day-ahead schedule, real-time dispatch, TSO operating instruction outside the market, or a DSO's
    dispatch of a DER for a distribution service (non-wires deferral, distribution operations)."""

    SCHEDULE = "schedule"
    DISPATCH = "dispatch"
    OPERATING = "operating"
    SERVICE = "distribution_service"


KIND_OF_MARKET: Mapping[Market, InstructionKind] = MappingProxyType(
    {Market.DAY_AHEAD: InstructionKind.SCHEDULE, Market.REAL_TIME: InstructionKind.DISPATCH}
)


class InstructionProduct(StrEnum):
    """What an instruction asks for."""

    ENERGY = "energy"
    """Injection (positive ``p_kw``) or consumption (negative) in the interval."""
    OPERATING_RESERVE = "operating_reserve"
    """Reserve held available in the interval (``p_kw`` >= 0)."""
    LOAD_CURTAILMENT = "load_curtailment"
    """Load reduction under an interface (``p_kw`` > 0), outside the market."""


class InstructionStatus(StrEnum):
    """Where an instruction is in its life."""

    ISSUED = "issued"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ESCALATED = "escalated"
    """Unanswered past its deadline: handed back to the issuer (terminal)."""
    CANCELLED = "cancelled"
    """Withdrawn by conflict resolution (its setpoint is 0 and the reason names the conflict; terminal)."""


class Response(StrEnum):
    """What a recipient answers."""

    RECEIPT = "receipt"
    ACCEPT = "accept"
    REJECT = "reject"


class SplitMethod(StrEnum):
    """How an instruction is split to smaller resources."""

    MERIT_ORDER = "merit_order"
    PRO_RATA = "pro_rata"


_I = InstructionStatus
RESPONSES: Mapping[InstructionStatus, Mapping[Response, InstructionStatus]] = MappingProxyType(
    {
        _I.ISSUED: {Response.RECEIPT: _I.RECEIVED},
        _I.RECEIVED: {Response.ACCEPT: _I.ACCEPTED, Response.REJECT: _I.REJECTED},
        _I.ACCEPTED: {},
        _I.REJECTED: {},
        _I.ESCALATED: {},
        _I.CANCELLED: {},
    }
)
OPEN_STATUSES = frozenset({_I.ISSUED, _I.RECEIVED})
"""Instructions still waiting for an answer (they escalate once their deadline passes)."""


@dataclass(frozen=True)
class Instruction:
    """One instruction from ``issuer_id`` to ``recipient_id`` about one resource and interval."""

    id: str
    kind: InstructionKind
    market: Market | None
    product: InstructionProduct
    interval_start: datetime
    interval_end: datetime
    p_kw: float
    issuer_id: str
    recipient_id: str
    resource_kind: ResourceKind
    resource_id: str
    der_id: str | None
    tdi_id: str | None
    dso_id: str | None
    parent_id: str | None
    run_id: str | None
    offer_id: str | None
    status: InstructionStatus
    issued_at: datetime
    deadline_at: datetime
    tso_visible: bool
    """Whether the TSO may see it (its own instructions, and DER-level ones where its model shows the DER)."""
    reason: str | None = None
    received_at: datetime | None = None
    responded_at: datetime | None = None
    response_reason: str | None = None
    escalated_at: datetime | None = None
    split_method: SplitMethod | None = None
    split_at: datetime | None = None
    shortfall_kw: float | None = None
    """After a split: the part of the instruction the children could not take (kW)."""

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "product": self.product.value,
            "interval_start": self.interval_start.isoformat(),
            "p_kw": self.p_kw,
            "issuer_id": self.issuer_id,
            "recipient_id": self.recipient_id,
            "resource": f"{self.resource_kind.value}:{self.resource_id}",
            "parent_id": self.parent_id,
            "status": self.status.value,
            "deadline_at": self.deadline_at.isoformat(),
            "response_reason": self.response_reason,
            "split_method": self.split_method.value if self.split_method else None,
            "shortfall_kw": self.shortfall_kw,
        }


def allowed_responses(status: InstructionStatus) -> list[Response]:
    """The responses ``status`` allows, in a stable order."""
    return [r for r in Response if r in RESPONSES[status]]


def respond(instruction: Instruction, response: Response, now: datetime, reason: str | None = None) -> Instruction:
    """Return the instruction after ``response`` at ``now``.

    A receipt comes first, then an acceptance or a rejection (with a reason), all before the deadline.
    Raises ``instructions.deadline_passed`` after the deadline, ``instructions.illegal_transition`` (naming
    the state and the allowed responses) out of order, ``instructions.reason_required`` for a bare rejection.
    """
    target = RESPONSES[instruction.status].get(response)
    if target is None:
        allowed = [r.value for r in allowed_responses(instruction.status)]
        raise ConflictError(
            f"cannot answer {response.value} to an instruction that is {instruction.status.value}; "
            f"allowed: {', '.join(allowed) or 'none'}",
            code=ILLEGAL_RESPONSE,
            field="response",
            details={"current_state": instruction.status.value, "allowed_responses": allowed},
        )
    if now > instruction.deadline_at:
        raise ConflictError(
            f"the deadline {instruction.deadline_at.isoformat()} has passed",
            code=DEADLINE_PASSED,
            field="response",
            details={"deadline_at": instruction.deadline_at.isoformat()},
        )
    if response is Response.RECEIPT:
        return replace(instruction, status=target, received_at=now)
    cleaned = reason.strip() if reason else None
    if response is Response.REJECT and not cleaned:
        raise ValidationFailed("a rejection needs a reason", field="reason", code=REASON_REQUIRED)
    return replace(instruction, status=target, responded_at=now, response_reason=cleaned)


def splittable(instruction: Instruction) -> bool:
    """True for an instruction its recipient passes on to smaller resources: to an aggregation, to a DSO's
    virtual resource, or a load curtailment under an interface (an interface's net schedule is the DSO's own
    balancing target and is not split)."""
    if instruction.resource_kind in (ResourceKind.AGGREGATION, ResourceKind.DSO_VIRTUAL):
        return True
    return (
        instruction.resource_kind is ResourceKind.INTERFACE
        and instruction.product is InstructionProduct.LOAD_CURTAILMENT
    )


def tso_sees_der_instruction(model: CoordinationModel, market_participating: bool) -> bool:
    """Table 6 row 2 for a DER-level instruction: the TSO sees it where its model shows the DER."""
    if model.tso_der_visibility is TsoDerVisibility.ALL:
        return True
    return model.tso_der_visibility is TsoDerVisibility.MARKET_PARTICIPATING and market_participating


# --- notifications ----------------------------------------------------------------------------------------


class NotificationKind(StrEnum):
    """What a notification is about."""

    REVERSE_FLOW = "reverse_flow"
    """The forecast flow at an interface reverses: distribution exports to transmission (white paper Figure 4)."""
    INSTRUCTION_OVERDUE = "instruction_overdue"
    """An instruction the recipient did not answer before its deadline, escalated to its issuer."""
    CONFLICT_RESOLVED = "conflict_resolved"
    """A conflict touching one of the party's instructions or commitments was resolved: outcome and reason."""
    SPLIT_SHORTFALL = "split_shortfall"
    """A split left part of an instruction undelivered (its resources cannot take it under the envelopes in force
    when it is split): to the instruction's issuer and the TSO that issued the instruction it comes from."""


@dataclass(frozen=True)
class Notification:
    """A message to one participant, stored so it can be listed through the API."""

    id: str
    recipient_id: str
    kind: NotificationKind
    created_at: datetime
    message: str
    tdi_id: str | None = None
    market: Market | None = None
    interval_start: datetime | None = None
    magnitude_kw: float | None = None
    run_id: str | None = None
    instruction_id: str | None = None


# --- who sees what ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketScope:
    """The offers, instructions and clearing results a caller may see (the store has the SQL twin).

    * observer (and the platform administrator): everything;
    * an aggregator or a DER owner: what it answers for (``party_id``), what it sent, issued or received;
    * an LDC: the same, plus everything at its own interfaces (``dso_id``);
    * the TSO: offers that reach its market, instructions it issued or received, and DER-level instructions
      where the interface's model shows it the DER (``tso_visible``).
    """

    everything: bool = False
    participant_id: str | None = None
    dso: bool = False
    tso: bool = False

    def allows_offer(self, offer: StoredOffer) -> bool:
        """True when the caller may see ``offer``."""
        if self.everything:
            return True
        me = self.participant_id
        if offer.party_id == me or offer.sender_id == me:
            return True
        if self.dso and offer.dso_id == me:
            return True
        return self.tso and offer.route is Route.TSO

    def allows_instruction(self, instruction: Instruction) -> bool:
        """True when the caller may see ``instruction``."""
        if self.everything:
            return True
        me = self.participant_id
        if me in (instruction.issuer_id, instruction.recipient_id):
            return True
        if self.dso and instruction.dso_id == me:
            return True
        return self.tso and instruction.tso_visible

    def allows_resource(self, result: ResourceResult) -> bool:
        """True when the caller may see one resource's clearing result."""
        if self.everything or self.tso:
            return True
        return result.party_id == self.participant_id or (self.dso and result.dso_id == self.participant_id)


@dataclass
class SplitOutcome:
    """What a split produced: the children, and what they could not take."""

    parent: Instruction
    children: list[Instruction] = field(default_factory=list)
    shortfall_kw: float = 0.0
