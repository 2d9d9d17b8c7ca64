"""Offers and bids: batch submission with per-item acknowledgement, revisions, gate closure, and the DSO's
merge of the offers it receives into its virtual resource's single curve at a T-D interface.

A submission is processed item by item in one transaction (docs/coordination.md, "Offers"): every item is
checked in full before anything is written; an accepted item is stored as the next revision of its series
(resource, product, side, market, interval) and audited; a rejected item changes nothing and is acknowledged
with its stable code, field and message. When every item is rejected the whole submission answers
``offers.batch_rejected`` with the acknowledgements in ``details.items``.

The checks of one item, in order (the first one broken is reported):

1. the interval is timezone-aware and on the market's grid, and reserve is never bid
   (``offers.misaligned_interval``, ``offers.reserve_bid``);
2. the sender owns or represents the resource (``offers.not_represented``, also for a resource that does not
   exist or that the sender may not see);
3. registration: a DER in service or enrolled and registered for the product (``Der.market_products``),
   reaching the market the interface's model record allows
   (directly at or above the threshold, else through the DSO where the record has the DSO aggregate), not
   already sold through an aggregation for the same service in that interval; an aggregation active in the
   market of the product, at interfaces whose models let it offer, held to each interface's direct-participation
   threshold by its size there (``aggregation_sizes``; below it, only through the DSO's virtual resource)
   (``offers.not_enrolled``, ``offers.double_counted``);
4. gate closure on the server clock (``offers.gate_closed``);
5. the curve: segments, finiteness, quantities, the market's price bounds, monotonic prices (``offers.*``);
6. capability (``offers.beyond_capability``);
7. the envelope in force, where it applies before clearing: rejected (``offers.beyond_envelope``) or clipped
   (``offers.clipped_to_envelope``) per the ``envelope_policy`` setting, the acknowledgement naming the binding
   envelope. It applies to offers through the DSO or an aggregator and where the TSO's own clearing carries
   envelopes (``tso_applies_der_envelopes``); elsewhere the distribution check catches the dispatch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np

from gridbridge.domain.aggregation import Aggregation, MarketStatus, MemberStatus
from gridbridge.domain.der import Der
from gridbridge.domain.errors import ConflictError, GridbridgeError, NotFound, PermissionDenied, ValidationFailed
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.domain.market import (
    ACCEPTED_CODE,
    BATCH_REJECTED,
    BEYOND_CAPABILITY,
    CLIPPED_CODE,
    DOUBLE_COUNTED,
    NOT_ENROLLED,
    NOT_REPRESENTED,
    SERVICE_OF,
    AckStatus,
    AggregationSize,
    MarketScope,
    OfferAck,
    OfferItem,
    OfferKey,
    ResourceKind,
    Route,
    StoredOffer,
    route_for_aggregation,
    route_for_der,
)
from gridbridge.domain.offers import (
    BEYOND_ENVELOPE,
    EnvelopePolicy,
    Market,
    Offer,
    OfferSegment,
    Product,
    Side,
    check_curve,
    clip_segments_to_envelope,
    price_from_float,
    require_valid_curve,
)
from gridbridge.domain.permissions import Action, is_system, require_action
from gridbridge.domain.roles import Role
from gridbridge.domain.validation import OUT_OF_RANGE, REQUIRED
from gridbridge.engines.clearing import CurveSet, aggregate_curves
from gridbridge.services.conflicts import check_offers
from gridbridge.services.context import Context
from gridbridge.services.market_ports import DerLimits, OfferFilter
from gridbridge.services.ports import Page
from gridbridge.services.tdis import get_tdi, model_in_force

MAX_BATCH = 5000
"""Most items one submission may hold."""
DSO_MAX_SEGMENTS = 10
"""Price bands of a DSO's virtual-resource curve."""
_KW = Decimal("0.001")


def market_scope(ctx: Context) -> MarketScope:
    """What the caller may see of offers, instructions and clearing results (``MarketScope``)."""
    caller = ctx.caller
    if is_system(caller) or caller.role is Role.OBSERVER:
        return MarketScope(everything=True)
    return MarketScope(participant_id=caller.participant_id, dso=caller.role is Role.DSO, tso=caller.role is Role.TSO)


def kw_decimal(value: float) -> Decimal:
    """A kW figure from the engines as a ``Decimal`` rounded to the watt (3 places)."""
    return Decimal(repr(float(value))).quantize(_KW)


# --- resolving a resource ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resource:
    """What an item's resource means for the offer: where it goes, who answers for it, its limits."""

    kind: ResourceKind
    resource_id: str
    route: Route
    tdi_id: str | None
    dso_id: str | None
    party_id: str
    capability_kw: float
    envelope_kw: float | None
    """The envelope in force where it applies before clearing (None: it does not)."""
    binding: str | None


def offers_load_reduction(der: Der) -> bool:
    """A DER that cannot inject offers load reduction: its offers are measured against its import side."""
    return der.p_export_kw <= 0


def der_offer_limit(der: Der, limits: DerLimits | None, side: Side) -> tuple[float, str]:
    """The envelope (kW) an offer (``side``) of ``der`` must fit, and the name of the binding limit."""
    if limits is None:
        return 0.0, f"no_limits:der/{der.id}"
    if side is Side.BID or offers_load_reduction(der):
        return limits.import_kw, limits.binding_import
    return limits.export_kw, limits.binding_export


def der_capability_kw(der: Der, side: Side) -> float:
    """What ``der`` can physically offer (``side`` offer) or take (bid), kW."""
    if side is Side.BID or offers_load_reduction(der):
        return der.p_import_kw
    return der.p_export_kw


def _not_represented(item: OfferItem) -> ValidationFailed:
    return ValidationFailed(
        f"no {item.resource_kind.value} {item.resource_id} that the sender owns or represents",
        field="resource_id",
        code=NOT_REPRESENTED,
    )


class _BatchLimits:
    """The limits in force of the DERs behind a batch of offers, read once per interval for every DER of the batch
    offered in it (``der_limits``), not offer by offer. Lives for one call (``submit_offers``, which stores offers
    only, no envelope; ``members_available_kw``), so what it read stays true for the call."""

    def __init__(self, items: Iterable[OfferItem | StoredOffer]) -> None:
        self._ids: dict[datetime, set[str]] = defaultdict(set)
        for i in items:
            if i.resource_kind is ResourceKind.DER:
                self._ids[i.interval_start].add(i.resource_id)
        self._read: dict[tuple[datetime, datetime], dict[str, DerLimits]] = {}

    def get(self, ctx: Context, der_id: str, start: datetime, end: datetime) -> DerLimits | None:
        """The DER's limits in force over ``[start, end)``."""
        if (start, end) not in self._read:
            ids = sorted(self._ids.get(start, set()) | {der_id})
            self._read[(start, end)] = ctx.uow.market.envelopes.der_limits(ids, start, end)
        found = self._read[(start, end)]
        if der_id not in found:
            found.update(ctx.uow.market.envelopes.der_limits([der_id], start, end))
        return found.get(der_id)


def _resolve_der(ctx: Context, item: OfferItem, interval_end: datetime, batch: _BatchLimits) -> _Resource:
    der = ctx.uow.ders.get(item.resource_id)
    me = ctx.caller.participant_id
    if der is None or not (is_system(ctx.caller) or me in (der.owner_id, der.representative_id)):
        raise _not_represented(item)
    if der.status not in (DerStatus.IN_SERVICE, DerStatus.ENROLLED):
        raise ConflictError(
            f"DER {der.id} is {der.status.value}; only DERs in service or enrolled can offer",
            field="resource_id",
            code=NOT_ENROLLED,
            details={"current_state": der.status.value},
        )
    if item.product not in der.market_products:
        registered = sorted(p.value for p in der.market_products)
        raise ConflictError(
            f"DER {der.id} is not registered for {item.product.value} (registered for: "
            f"{', '.join(registered) or 'nothing'}); its owner or representative registers it with "
            "PUT /ders/{id}/market-products",
            field="product",
            code=NOT_ENROLLED,
            details={"registered_products": registered},
        )
    tdi = get_tdi(ctx.uow, der.tdi_id)
    model = model_in_force(ctx.uow, der.tdi_id, item.interval_start)
    route = route_for_der(model, der.capacity_kw, tdi.direct_threshold_kw)
    if route is None:
        raise ConflictError(
            f"under {model.name.value} a DER below {tdi.direct_threshold_kw:g} kW cannot offer on its own "
            "(it can join an aggregation)",
            field="resource_id",
            code=NOT_ENROLLED,
        )
    service = SERVICE_OF[item.product]
    for aggregation, member in ctx.uow.aggregations.memberships_of(der.id):
        covers = member.valid_from <= item.interval_start and (
            member.valid_to is None or item.interval_start < member.valid_to
        )
        if member.status is MemberStatus.APPROVED and covers and service in aggregation.services:
            raise ConflictError(
                f"DER {der.id} is sold through aggregation {aggregation.name!r} for {service.value} in that interval",
                field="resource_id",
                code=DOUBLE_COUNTED,
                details={"aggregation_id": aggregation.id},
            )
    applies = route is Route.DSO or model.tso_applies_der_envelopes
    envelope: float | None = None
    binding: str | None = None
    if applies:
        limits = batch.get(ctx, der.id, item.interval_start, interval_end)
        envelope, binding = der_offer_limit(der, limits, item.side)
    return _Resource(
        ResourceKind.DER,
        der.id,
        route,
        der.tdi_id,
        der.dso_id,
        der.representative_id or der.owner_id,
        der_capability_kw(der, item.side),
        envelope,
        binding,
    )


def aggregation_members_at(aggregation: Aggregation, when: datetime) -> list[str]:
    """DER ids of the approved members whose period covers ``when``, in membership order."""
    return [
        m.der_id
        for m in aggregation.approved_members()
        if m.valid_from <= when and (m.valid_to is None or when < m.valid_to)
    ]


def aggregation_limit_kw(
    ctx: Context, aggregation: Aggregation, side: Side, interval_start: datetime, interval_end: datetime
) -> tuple[float, float, int]:
    """``(envelope, capability, members)`` of an aggregation in an interval: the sums over its approved
    members of the envelopes in force and of their capabilities (kW)."""
    der_ids = aggregation_members_at(aggregation, interval_start)
    limits = ctx.uow.market.envelopes.der_limits(der_ids, interval_start, interval_end)
    ders = ctx.uow.ders.get_many(der_ids)
    envelope = capability = 0.0
    for der_id in der_ids:
        der = ders.get(der_id)
        if der is None:
            continue
        envelope += der_offer_limit(der, limits.get(der_id), side)[0]
        capability += der_capability_kw(der, side)
    return envelope, capability, len(der_ids)


def aggregation_sizes(ctx: Context, aggregation: Aggregation, when: datetime) -> list[AggregationSize]:
    """The aggregation's size at each interface of its approved members at ``when`` (in interface id order):
    the sum of those members' capacities there, with the interface's model in force and threshold."""
    live = set(aggregation_members_at(aggregation, when))
    by_tdi: dict[str, float] = defaultdict(float)
    for member in aggregation.approved_members():
        if member.der_id in live:
            by_tdi[member.tdi_id] += member.capacity_kw
    return [
        AggregationSize(
            tdi_id, model_in_force(ctx.uow, tdi_id, when), size_kw, get_tdi(ctx.uow, tdi_id).direct_threshold_kw
        )
        for tdi_id, size_kw in sorted(by_tdi.items())
    ]


def aggregation_route(
    ctx: Context, aggregation: Aggregation, when: datetime
) -> tuple[Route | None, list[AggregationSize]]:
    """Where the aggregation's offers for ``when`` go (``route_for_aggregation``: its interfaces' models, whether
    a DSO runs it, its size against each interface's threshold), with its sizes per interface."""
    sizes = aggregation_sizes(ctx, aggregation, when)
    aggregator = ctx.uow.participants.get(aggregation.aggregator_id)
    run_by_dso = aggregator is not None and aggregator.role is Role.DSO
    below = any(s.below_threshold for s in sizes)
    return route_for_aggregation([s.model for s in sizes], run_by_dso, below_threshold=below), sizes


def _resolve_aggregation(ctx: Context, item: OfferItem, interval_end: datetime) -> _Resource:
    aggregation = ctx.uow.aggregations.get(item.resource_id)
    if aggregation is None or not (is_system(ctx.caller) or aggregation.aggregator_id == ctx.caller.participant_id):
        raise _not_represented(item)
    service = SERVICE_OF[item.product]
    market = next((m for m in aggregation.markets if m.service is service), None)
    if market is None or market.status is not MarketStatus.ACTIVE:
        state = "not registered" if market is None else market.status.value
        raise ConflictError(
            f"aggregation {aggregation.name!r} is {state} in {service.value}",
            field="product",
            code=NOT_ENROLLED,
            details={"market_status": state},
        )
    route, sizes = aggregation_route(ctx, aggregation, item.interval_start)
    tdis = [s.tdi_id for s in sizes]
    small = next((s for s in sizes if s.below_threshold), None)
    if route is None and small is not None:
        tdi = get_tdi(ctx.uow, small.tdi_id)
        raise ConflictError(
            f"aggregation {aggregation.name!r} has {small.size_kw:g} kW at {tdi.name}, below the interface's "
            f"{small.direct_threshold_kw:g} kW direct-participation threshold under {small.model.name.value}, and "
            "cannot offer through the DSO there (only a single-interface aggregation at an interface whose DSO "
            "aggregates can)",
            field="resource_id",
            code=NOT_ENROLLED,
            details={"tdi_id": tdi.id, "size_kw": small.size_kw, "direct_threshold_kw": small.direct_threshold_kw},
        )
    if route is None:
        raise ConflictError(
            f"aggregation {aggregation.name!r} has no approved member in that interval, or spans interfaces whose "
            "models do not let it offer",
            field="resource_id",
            code=NOT_ENROLLED,
        )
    envelope, capability, n = aggregation_limit_kw(ctx, aggregation, item.side, item.interval_start, interval_end)
    tdi_id = tdis[0] if len(tdis) == 1 else None
    dso_id = get_tdi(ctx.uow, tdi_id).dso_id if tdi_id else None
    return _Resource(
        ResourceKind.AGGREGATION,
        aggregation.id,
        route,
        tdi_id,
        dso_id,
        aggregation.aggregator_id,
        capability,
        envelope,
        f"aggregation/{aggregation.id}: sum of the envelopes of {n} approved members",
    )


def _resolve(ctx: Context, item: OfferItem, interval_end: datetime, batch: _BatchLimits) -> _Resource:
    if item.resource_kind is ResourceKind.DER:
        return _resolve_der(ctx, item, interval_end, batch)
    if item.resource_kind is ResourceKind.AGGREGATION:
        return _resolve_aggregation(ctx, item, interval_end)
    if item.resource_kind is ResourceKind.DSO_VIRTUAL:
        raise ConflictError(
            "a DSO's virtual-resource offer is built from the offers the DSO receives (POST /tdis/{id}/dso-offers)",
            field="resource_kind",
            code=NOT_ENROLLED,
        )
    raise ValidationFailed(
        f"offers are made for a der or an aggregation, not {item.resource_kind.value}",
        field="resource_kind",
        code=NOT_ENROLLED,
    )


# --- submission -------------------------------------------------------------------------------------------


def _store(
    ctx: Context,
    key: OfferKey,
    segments: tuple[OfferSegment, ...],
    offered_kw: Decimal,
    resource: _Resource,
    now: datetime,
    *,
    clipped: bool = False,
    binding: str | None = None,
    sources: tuple[str, ...] = (),
) -> StoredOffer:
    """Store the next revision of ``key`` (superseding the one in force) and audit it."""
    repo = ctx.uow.market.offers
    previous = repo.latest(key)
    if previous is not None and previous.superseded_at is None:
        repo.supersede(previous.id, now)
    offer = StoredOffer(
        id=ctx.new_id(),
        resource_kind=key.resource_kind,
        resource_id=key.resource_id,
        product=key.product,
        market=key.market,
        side=key.side,
        interval_start=key.interval_start,
        revision=(previous.revision + 1) if previous else 1,
        segments=segments,
        offered_kw=offered_kw,
        route=resource.route,
        tdi_id=resource.tdi_id,
        dso_id=resource.dso_id,
        party_id=resource.party_id,
        sender_id=ctx.caller.participant_id,
        submitted_by=ctx.caller.user_id,
        submitted_at=now,
        clipped=clipped,
        binding_envelope=binding,
        source_offer_ids=sources,
    )
    repo.add(offer)
    ctx.audit("offer.submit", "offer", offer.id, previous.snapshot() if previous else None, offer.snapshot())
    return offer


def _accept(ctx: Context, index: int, item: OfferItem, now: datetime, batch: _BatchLimits) -> OfferAck:
    rules = ctx.settings.market.rules(item.market)
    if not item.resource_id:
        raise ValidationFailed("resource_id must not be empty", field="resource_id", code=REQUIRED)
    # the domain value checks the interval grid and that reserve is never bid
    Offer(item.resource_id, item.product, item.market, item.side, item.interval_start, 1, item.segments)
    interval_end = item.interval_start + rules.interval
    resource = _resolve(ctx, item, interval_end, batch)
    rules.require_open(now, item.interval_start)
    require_valid_curve(item.side, item.segments, rules.price_bounds, rules.max_segments)
    offered = item.offered_kw()
    if float(offered) > resource.capability_kw + 1e-9:
        raise ValidationFailed(
            f"{offered} kW offered; the resource's capability is {resource.capability_kw:g} kW",
            field="segments",
            code=BEYOND_CAPABILITY,
        )
    segments = item.segments
    clipped = False
    binding: str | None = None
    if resource.envelope_kw is not None and float(offered) > resource.envelope_kw + 1e-9:
        binding = resource.binding
        limit = kw_decimal(resource.envelope_kw)
        if rules.envelope_policy is EnvelopePolicy.REJECT or limit <= 0:
            raise ValidationFailed(
                f"{offered} kW offered; the envelope in force allows {limit} kW ({binding})",
                field="segments",
                code=BEYOND_ENVELOPE,
                details={"binding_envelope": binding, "envelope_kw": str(limit)},
            )
        segments = clip_segments_to_envelope(segments, limit)
        clipped = True
    offer = _store(ctx, item.key, segments, offered, resource, now, clipped=clipped, binding=binding)
    if clipped:
        message = f"accepted, clipped from {offered} kW to {offer.total_kw()} kW by {binding}"
    else:
        message = f"accepted as revision {offer.revision}"
    return OfferAck(
        index,
        item,
        AckStatus.ACCEPTED,
        CLIPPED_CODE if clipped else ACCEPTED_CODE,
        message,
        offer=offer,
        binding_envelope=binding,
        accepted_kw=offer.total_kw(),
    )


def submit_offers(ctx: Context, items: Sequence[OfferItem]) -> list[OfferAck]:
    """Validate and store a batch of offers and bids, acknowledging every item.

    Per item, in one transaction: accepted items are stored (each as its series' next revision, audited) and
    rejected ones change nothing; the acknowledgement lists every item in order with its code. If no item is
    accepted, raises ``offers.batch_rejected`` whose ``details["items"]`` holds the acknowledgements.
    """
    require_action(ctx.caller, Action.OFFER_SUBMIT)
    if not items:
        raise ValidationFailed("a submission needs at least one item", field="items", code=REQUIRED)
    if len(items) > MAX_BATCH:
        raise ValidationFailed(f"at most {MAX_BATCH} items per submission", field="items", code=OUT_OF_RANGE)
    now = ctx.clock.now()
    # the batch's DERs read at once (the repository holds them for the unit of work: each item's ``get`` is free)
    ctx.uow.ders.get_many(i.resource_id for i in items if i.resource_kind is ResourceKind.DER)
    batch = _BatchLimits(items)
    acks: list[OfferAck] = []
    for index, item in enumerate(items):
        try:
            acks.append(_accept(ctx, index, item, now, batch))
        except GridbridgeError as exc:
            acks.append(OfferAck(index, item, AckStatus.REJECTED, exc.code, exc.message, exc.field))
    if not any(a.accepted for a in acks):
        raise ValidationFailed(
            f"all {len(acks)} items were rejected; see details.items",
            field="items",
            code=BATCH_REJECTED,
            details={"items": [a.summary() for a in acks]},
        )
    check_offers(ctx, [a.offer for a in acks if a.offer is not None])
    return acks


# --- reading ----------------------------------------------------------------------------------------------


def list_offers(ctx: Context, page: Page, filters: OfferFilter | None = None) -> list[StoredOffer]:
    """Offer versions the caller may see (by default only those in force), in interval and resource order."""
    return ctx.uow.market.offers.query(market_scope(ctx), page, filters or OfferFilter())


def get_offer(ctx: Context, offer_id: str) -> tuple[StoredOffer, list[StoredOffer]]:
    """One offer version the caller may see, with every version of its series (``not_found`` otherwise)."""
    offer = ctx.uow.market.offers.get(offer_id)
    scope = market_scope(ctx)
    if offer is None or not scope.allows_offer(offer):
        raise NotFound(f"no offer {offer_id}", field="offer_id")
    versions = [v for v in ctx.uow.market.offers.versions(offer.key) if scope.allows_offer(v)]
    return offer, versions


# --- the DSO's virtual resource ---------------------------------------------------------------------------


def members_available_kw(ctx: Context, offers: Sequence[StoredOffer], interval_end: datetime) -> list[float]:
    """What the resource behind each member offer may deliver now, in order: its offer within the envelope in
    force (a DER's own, or the sum over an aggregation's approved members). The DERs behind DER offers and their
    limits are read together (``_BatchLimits``), not offer by offer."""
    ders = ctx.uow.ders.get_many(o.resource_id for o in offers if o.resource_kind is ResourceKind.DER)
    batch = _BatchLimits(offers)
    out: list[float] = []
    for offer in offers:
        total = float(offer.total_kw())
        if offer.resource_kind is ResourceKind.DER:
            der = ders.get(offer.resource_id)
            if der is None:
                out.append(0.0)
                continue
            limit = batch.get(ctx, der.id, offer.interval_start, interval_end)
            out.append(min(total, der_offer_limit(der, limit, offer.side)[0]))
        elif offer.resource_kind is ResourceKind.AGGREGATION:
            aggregation = ctx.uow.aggregations.get(offer.resource_id)
            if aggregation is None:
                out.append(0.0)
                continue
            envelope, _, _ = aggregation_limit_kw(ctx, aggregation, offer.side, offer.interval_start, interval_end)
            out.append(min(total, envelope))
        else:
            out.append(total)
    return out


def curves_of(offers: Sequence[StoredOffer]) -> CurveSet:
    """The offers' segments as a ``CurveSet`` (one curve per offer; Decimal to float64)."""
    return CurveSet.from_lists(
        [[float(s.price_cad_per_mwh) for s in o.segments] for o in offers],
        [[float(s.quantity_kw) for s in o.segments] for o in offers],
    )


def aggregate_dso_offers(ctx: Context, tdi_id: str, market: Market, interval_start: datetime) -> list[StoredOffer]:
    """The DSO merges the offers and bids it received at one interface into its virtual resource's curves.

    For each product and side with member offers: each member is cut to what it may deliver under the
    envelopes in force, and the members are merged into one curve of at most 10 price bands
    (``aggregate_curves``). Each merged curve is stored as the next revision of the virtual resource's offer,
    listing the member offers it merges (used to split the instruction later). Only the interface's DSO may
    do this, before gate closure, under a model whose record has the DSO aggregate.
    """
    require_action(ctx.caller, Action.DSO_OFFER)
    tdi = get_tdi(ctx.uow, tdi_id)
    if not is_system(ctx.caller) and ctx.caller.participant_id != tdi.dso_id:
        raise PermissionDenied("only the interface's DSO merges the offers it receives there", field="tdi_id")
    rules = ctx.settings.market.rules(market)
    Offer(tdi.id, Product.ENERGY, market, Side.OFFER, interval_start, 1, ())  # interval grid check
    model = model_in_force(ctx.uow, tdi.id, interval_start)
    if not model.dso_aggregates_below_threshold:
        raise ConflictError(
            f"under {model.name.value} the DSO does not offer a virtual resource at the interface",
            field="tdi_id",
            code=NOT_ENROLLED,
        )
    now = ctx.clock.now()
    rules.require_open(now, interval_start)
    interval_end = interval_start + rules.interval
    groups: dict[tuple[Product, Side], list[StoredOffer]] = defaultdict(list)
    for offer in ctx.uow.market.offers.current(market, interval_start, route=Route.DSO, tdi_id=tdi.id):
        groups[(offer.product, offer.side)].append(offer)
    resource = _Resource(
        ResourceKind.DSO_VIRTUAL, tdi.id, Route.TSO, tdi.id, tdi.dso_id, tdi.dso_id, np.inf, None, None
    )
    stored = []
    for (product, side), members in sorted(groups.items()):
        available = np.array(members_available_kw(ctx, members, interval_end))
        offered = [float(o.total_kw()) for o in members]
        merged = aggregate_curves(
            curves_of(members),
            np.zeros(len(members), dtype=np.int64),
            1,
            cap_kw=available,
            max_segments=DSO_MAX_SEGMENTS,
            side=side,
        ).curves
        segments = tuple(
            OfferSegment(price_from_float(p), kw_decimal(q))
            for p, q in zip(merged.price_cad_per_mwh.tolist(), merged.quantity_kw.tolist(), strict=True)
            if kw_decimal(q) > 0
        )
        if not segments or not check_curve(side, segments, rules.price_bounds, DSO_MAX_SEGMENTS).accepted:
            continue
        clipped = bool(np.any(available < np.array(offered) - 1e-9))
        key = OfferKey(ResourceKind.DSO_VIRTUAL, tdi.id, product, side, market, interval_start)
        stored.append(
            _store(
                ctx,
                key,
                segments,
                sum((o.offered_kw for o in members), Decimal(0)),
                resource,
                now,
                clipped=clipped,
                binding=f"dso_virtual/{tdi.id}: the envelopes of {len(members)} member offers" if clipped else None,
                sources=tuple(o.id for o in members),
            )
        )
    return stored
