"""Offers and bids: batch submission with per-item acknowledgement, listing, revisions, the DSO's virtual resource."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field, RootModel

from gridbridge.api.deps import CommandsDep
from gridbridge.api.schemas import Out, Strict, paging
from gridbridge.domain.market import AckStatus, OfferAck, OfferItem, ResourceKind, Route, StoredOffer
from gridbridge.domain.offers import Market, OfferSegment, Product, Side
from gridbridge.services import offers as service
from gridbridge.services.context import Context
from gridbridge.services.market_ports import OfferFilter
from gridbridge.services.ports import Page

router = APIRouter(tags=["offers"])
OfferId = Annotated[str, Path(max_length=64)]
TdiId = Annotated[str, Path(max_length=64)]


class SegmentIn(Strict):
    """One curve segment: ``quantity_kw`` more at ``price_cad_per_mwh``."""

    price_cad_per_mwh: Decimal = Field(allow_inf_nan=False, description="Price of this segment, CAD/MWh")
    quantity_kw: Decimal = Field(allow_inf_nan=False, description="Quantity added by this segment, kW")


class OfferItemIn(Strict):
    """One offer or bid of a submission."""

    resource_kind: ResourceKind = Field(description="der (a DER offering on its own) or aggregation")
    resource_id: str = Field(min_length=1, max_length=64)
    product: Product = Product.ENERGY
    market: Market
    side: Side = Side.OFFER
    interval_start: AwareDatetime = Field(description="Start of the market interval (hourly or 5-minute grid)")
    segments: list[SegmentIn] = Field(max_length=100, description="Incremental segments (at most 10 are accepted)")

    def item(self) -> OfferItem:
        """The domain value of this item."""
        return OfferItem(
            self.resource_kind,
            self.resource_id,
            self.product,
            self.market,
            self.side,
            self.interval_start,
            tuple(OfferSegment(s.price_cad_per_mwh, s.quantity_kw) for s in self.segments),
        )


class OffersIn(Strict):
    """A submission: up to 5,000 items, acknowledged one by one."""

    items: list[OfferItemIn] = Field(min_length=1, max_length=service.MAX_BATCH)


class DsoOffersIn(Strict):
    """The market interval whose received offers the DSO merges."""

    market: Market
    interval_start: AwareDatetime


class AckOut(Out):
    """The acknowledgement of one item."""

    index: int
    resource_kind: ResourceKind
    resource_id: str
    product: Product
    market: Market
    side: Side
    interval_start: datetime
    status: AckStatus
    code: str
    field: str | None
    message: str
    offer_id: str | None
    revision: int | None
    offered_kw: Decimal
    accepted_kw: Decimal | None
    binding_envelope: str | None


class AcknowledgementOut(Out):
    """The acknowledgement of a submission: every item, in order."""

    accepted: int
    rejected: int
    items: list[AckOut]


class SegmentOut(Out):
    """One curve segment as stored."""

    price_cad_per_mwh: Decimal
    quantity_kw: Decimal


class OfferOut(Out):
    """One stored offer version."""

    id: str
    resource_kind: ResourceKind
    resource_id: str
    product: Product
    market: Market
    side: Side
    interval_start: datetime
    revision: int
    segments: list[SegmentOut]
    offered_kw: Decimal
    total_kw: Decimal
    route: Route
    tdi_id: str | None
    dso_id: str | None
    party_id: str
    sender_id: str
    submitted_at: datetime
    clipped: bool
    binding_envelope: str | None
    source_offer_ids: list[str]
    superseded_at: datetime | None


class OfferDetailOut(OfferOut):
    """One offer version with every revision of its series the caller may see."""

    versions: list[OfferOut]


OfferList = RootModel[list[OfferOut]]
"""A list of offers as one response model (``Commands.run`` renders a model)."""


def render_offer(offer: StoredOffer) -> OfferOut:
    """An offer version as the API shows it."""
    return OfferOut(
        id=offer.id,
        resource_kind=offer.resource_kind,
        resource_id=offer.resource_id,
        product=offer.product,
        market=offer.market,
        side=offer.side,
        interval_start=offer.interval_start,
        revision=offer.revision,
        segments=[SegmentOut(price_cad_per_mwh=s.price_cad_per_mwh, quantity_kw=s.quantity_kw) for s in offer.segments],
        offered_kw=offer.offered_kw,
        total_kw=offer.total_kw(),
        route=offer.route,
        tdi_id=offer.tdi_id,
        dso_id=offer.dso_id,
        party_id=offer.party_id,
        sender_id=offer.sender_id,
        submitted_at=offer.submitted_at,
        clipped=offer.clipped,
        binding_envelope=offer.binding_envelope,
        source_offer_ids=list(offer.source_offer_ids),
        superseded_at=offer.superseded_at,
    )


def render_acks(acks: list[OfferAck]) -> AcknowledgementOut:
    """The acknowledgement of a submission: every item in order."""
    items = [AckOut.model_validate(a.summary()) for a in acks]
    accepted = sum(1 for a in acks if a.accepted)
    return AcknowledgementOut(accepted=accepted, rejected=len(acks) - accepted, items=items)


@router.post("/offers", response_model=AcknowledgementOut, summary="Submit offers and bids (per-item acknowledgement)")
def submit(body: OffersIn, commands: CommandsDep) -> JSONResponse:
    """Accepted items are stored (each as its series' next revision) and rejected ones change nothing; the answer
    acknowledges every item with its code. If no item is accepted: 422 ``offers.batch_rejected`` with the
    acknowledgements in ``details.items``."""

    def use_case(ctx: Context) -> AcknowledgementOut:
        return render_acks(service.submit_offers(ctx, [i.item() for i in body.items]))

    return commands.run(use_case, lambda out: out, payload=body)


@router.get("/offers", response_model=list[OfferOut], summary="List the offers the caller may see")
def list_all(
    commands: CommandsDep,
    page: Annotated[Page, Depends(paging)],
    market: Market | None = None,
    interval_start: Annotated[AwareDatetime | None, Query()] = None,
    resource_id: Annotated[str | None, Query(max_length=64)] = None,
    product: Product | None = None,
    include_superseded: bool = False,
) -> list[OfferOut]:
    """Offer versions in force (``include_superseded`` for every revision), in interval and resource order."""
    filters = OfferFilter(market, interval_start, resource_id, product, current_only=not include_superseded)
    result: list[OfferOut] = commands.query(
        lambda ctx: [render_offer(o) for o in service.list_offers(ctx, page, filters)], lambda x: x
    )
    return result


@router.get("/offers/{offer_id}", response_model=OfferDetailOut, summary="Get an offer version and its revisions")
def get_one(offer_id: OfferId, commands: CommandsDep) -> OfferDetailOut:
    """One offer version the caller may see, with every revision of its series."""

    def read(ctx: Context) -> OfferDetailOut:
        offer, versions = service.get_offer(ctx, offer_id)
        return OfferDetailOut(**render_offer(offer).model_dump(), versions=[render_offer(v) for v in versions])

    result: OfferDetailOut = commands.query(read, lambda x: x)
    return result


@router.post(
    "/tdis/{tdi_id}/dso-offers",
    response_model=list[OfferOut],
    status_code=201,
    summary="Merge the offers the DSO received at its interface into its virtual resource (the DSO)",
)
def dso_offers(tdi_id: TdiId, body: DsoOffersIn, commands: CommandsDep) -> JSONResponse:
    """One curve per product and side (at most 10 price bands, within the envelopes in force), stored as the next
    revision of the DSO's virtual-resource offer at the interface."""

    def use_case(ctx: Context) -> list[OfferOut]:
        return [render_offer(o) for o in service.aggregate_dso_offers(ctx, tdi_id, body.market, body.interval_start)]

    return commands.run(use_case, OfferList, payload=body, status_code=201)
