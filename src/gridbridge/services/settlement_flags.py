"""Settlement flags of double counting: what settlement may pay of a commitment counted twice (docs/conflicts.md,
"Double counting and settlement").

The flags are written by the store with every stored double-counting conflict (``services.settlement_ports``);
this module reads them for the caller's scope (``settlement_scope``): ``list_flags`` for the API and the CLI,
``payable_kw`` for settlement code.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.permissions import is_system
from gridbridge.domain.roles import Role
from gridbridge.domain.settlement import SettlementFlag, SettlementScope, in_force
from gridbridge.domain.validation import NOT_FINITE, OUT_OF_RANGE
from gridbridge.services.context import Context
from gridbridge.services.offers import get_offer
from gridbridge.services.ports import Page
from gridbridge.services.settlement_ports import FlagFilter

_PAYABLE_SCAN = 1000
"""Flags of one commitment read by ``payable_kw`` (a commitment has one flag per conflict that named it)."""


def settlement_scope(ctx: Context) -> SettlementScope:
    """Which flags the caller may read (``domain.settlement.SettlementScope``): observers and the platform
    administrator all; the TSO where the interface's model shows it the DER (and its direct DER purchases); an
    LDC its interfaces' distribution-service commitments and what it bought; an aggregator the commitments it
    provided; a DER owner those and the ones on its DERs."""
    caller = ctx.caller
    if is_system(caller) or caller.role is Role.OBSERVER:
        return SettlementScope(everything=True)
    return SettlementScope(
        participant_id=caller.participant_id,
        owner=caller.role is Role.DER_OWNER,
        dso=caller.role is Role.DSO,
        tso=caller.role is Role.TSO,
    )


def list_flags(ctx: Context, page: Page, filters: FlagFilter | None = None) -> list[SettlementFlag]:
    """The flags in force (not superseded, unless asked) the caller may read, overlapping the filter's period,
    by interval start; ``interval_end`` must be after ``interval_start`` (``validation.out_of_range``)."""
    f = filters or FlagFilter()
    if f.interval_start is not None and f.interval_end is not None and f.interval_end <= f.interval_start:
        raise ValidationFailed("interval_end must be after interval_start", field="interval_end", code=OUT_OF_RANGE)
    return ctx.uow.settlement.query(settlement_scope(ctx), page, f)


def payable_kw(ctx: Context, *, offer_id: str, der_id: str, interval_start: datetime, kw: float) -> float:
    """The part of ``kw`` settlement may pay for DER ``der_id``'s share of offer ``offer_id`` in the interval
    starting at ``interval_start``: all of it when no double counting was flagged there, else at most the firm kW
    of the flag in force (the latest decision), never below 0.

    Call it as the settling party: the offer must be visible to the caller (``not_found`` otherwise, like a
    missing offer), and only flags the caller may read count. ``kw`` must be a finite, non-negative number
    (``validation.not_finite``, ``validation.out_of_range``).
    """
    if not math.isfinite(kw):
        raise ValidationFailed("kw must be a finite number", field="kw", code=NOT_FINITE)
    if kw < 0:
        raise ValidationFailed("kw must not be negative", field="kw", code=OUT_OF_RANGE)
    get_offer(ctx, offer_id)
    found = list_flags(
        ctx,
        Page(limit=_PAYABLE_SCAN),
        FlagFilter(interval_start=interval_start, interval_end=None, der_id=der_id, offer_id=offer_id),
    )
    flag = in_force(found, interval_start)
    return kw if flag is None else flag.payable(kw)


def flag_json(flag: SettlementFlag) -> dict[str, Any]:
    """A flag as plain JSON values."""
    return {
        "conflict_id": flag.conflict_id,
        "commitment_id": flag.commitment_id,
        "der_id": flag.der_id,
        "offer_id": flag.offer_id,
        "holder_kind": flag.holder_kind.value,
        "holder_id": flag.holder_id,
        "service": flag.service.value,
        "direction": flag.direction.value,
        "interval_start": flag.interval_start.isoformat(),
        "interval_end": flag.interval_end.isoformat(),
        "committed_kw": flag.committed_kw,
        "firm_kw": flag.firm_kw,
        "not_payable_kw": flag.not_payable_kw,
        "tdi_id": flag.tdi_id,
        "dso_id": flag.dso_id,
        "buyer_id": flag.buyer_id,
        "provider_id": flag.provider_id,
        "recorded_at": flag.recorded_at.isoformat(),
        "superseded_at": flag.superseded_at.isoformat() if flag.superseded_at else None,
    }


__all__ = ["flag_json", "list_flags", "payable_kw", "settlement_scope"]
