"""Transparent curtailment: split a required reduction of X kW between DERs by a published rule.

All arithmetic is in whole watts, so the shares sum to the met requirement exactly. A DER is never curtailed
by more than its current export. Rules (``CurtailmentRule``):

* ``pro_rata_export``: shares proportional to current export.
* ``pro_rata_capacity``: shares proportional to export capacity, capped at current export; what a capped DER
  cannot take is spread over the others in the same proportion (water-filling).
* ``offer_price``: whole price tiers are curtailed in order, highest offer price first (``order=lowest_first``
  reverses it); the tier that is only partly needed shares its part pro rata by current export.
* ``connection_order``: like ``offer_price`` with connection dates, last connected first (or
  ``order=first_connected_first``).

Fractions of a watt go to the largest remainders (Hamilton's method), ties to the earlier candidate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gridbridge.domain.conflicts import (
    CurtailmentAllocation,
    CurtailmentCandidate,
    CurtailmentProcedure,
    CurtailmentRule,
    CurtailmentShare,
    ParticipationGroup,
    PartyCurtailment,
    format_kw,
    unique_ids,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.conflicts.kernels import IntArray

ObjArray = NDArray[Any]


def _hamilton(target_w: int, weights: ObjArray, caps: ObjArray) -> ObjArray:
    """Integer shares proportional to ``weights``, each at most its cap, summing to ``target_w``.

    ``weights`` and ``caps`` are object arrays of Python ints (no overflow); ``target_w <= sum(caps)``.
    Capped entries are fixed and the rest re-apportioned (water-filling); entries with zero weight take a
    share only when the others cannot cover the target, then pro rata by cap.
    """
    n = weights.size
    shares = np.zeros(n, dtype=object)
    shares[:] = 0
    active = np.array([int(c) > 0 for c in caps], dtype=np.bool_)
    remaining = int(target_w)
    w = weights.copy()
    while remaining > 0 and active.any():
        total_w = int(w[active].sum())
        if total_w == 0:
            w = caps.copy()
            continue
        quota = np.zeros(n, dtype=object)
        quota[:] = 0
        quota[active] = w[active] * remaining
        over = active & np.array([q >= c * total_w for q, c in zip(quota, caps - shares, strict=True)], dtype=np.bool_)
        if over.any():
            room = caps[over] - shares[over]
            shares[over] = caps[over]
            remaining -= int(room.sum())
            active &= ~over
            continue
        floors = np.zeros(n, dtype=object)
        floors[:] = 0
        floors[active] = quota[active] // total_w
        rests = np.zeros(n, dtype=object)
        rests[:] = 0
        rests[active] = quota[active] % total_w
        shares = shares + floors
        left = remaining - int(floors.sum())
        if left:
            idx = np.flatnonzero(active)
            best = sorted(idx.tolist(), key=lambda k: (-int(rests[k]), k))[:left]
            shares[best] = shares[best] + 1
        remaining = 0
    return shares


def allocate_curtailment_w(
    required_w: int,
    curtailable_w: IntArray,
    rule: CurtailmentRule,
    *,
    capacity_w: IntArray | None = None,
    tier_key: IntArray | None = None,
) -> IntArray:
    """Return the curtailment per candidate in whole watts; the sum is ``min(required_w, sum(curtailable_w))``.

    ``capacity_w`` is needed for ``pro_rata_capacity``; ``tier_key`` for the ordered rules, where a higher
    key is curtailed first (the caller maps prices or connection dates and the published order onto it).
    """
    curtailable = np.asarray(curtailable_w, dtype=np.int64)
    if required_w < 0 or (curtailable < 0).any():
        raise ValueError("required_w and curtailable_w must be non-negative")
    target = min(int(required_w), int(curtailable.sum()))
    caps = curtailable.astype(object)
    if rule is CurtailmentRule.PRO_RATA_EXPORT:
        shares = _hamilton(target, caps, caps)
    elif rule is CurtailmentRule.PRO_RATA_CAPACITY:
        if capacity_w is None:
            raise ValueError("pro_rata_capacity needs capacity_w")
        shares = _hamilton(target, np.asarray(capacity_w, dtype=np.int64).astype(object), caps)
    else:
        if tier_key is None:
            raise ValueError(f"{rule.value} needs tier_key")
        key = np.asarray(tier_key, dtype=np.int64)
        shares = np.zeros(curtailable.size, dtype=object)
        shares[:] = 0
        remaining = target
        for tier in sorted(set(key.tolist()), reverse=True):
            if remaining <= 0:
                break
            members = np.flatnonzero(key == tier)
            tier_total = int(curtailable[members].sum())
            take = min(tier_total, remaining)
            shares[members] = _hamilton(take, caps[members], caps[members])
            remaining -= take
    return np.array([int(s) for s in shares], dtype=np.int64)


def _dense_rank(values: Sequence[Any], descending_first: bool) -> IntArray:
    """Rank values (Decimals or datetimes compare exactly); the value to curtail first gets the highest key."""
    ordered = sorted(set(values))
    position = {v: k for k, v in enumerate(ordered)}
    keys = np.array([position[v] for v in values], dtype=np.int64)
    return keys if descending_first else (len(ordered) - 1 - keys)


def allocate_curtailment(
    constraint_id: str,
    required_kw: float,
    candidates: Sequence[CurtailmentCandidate],
    procedure: CurtailmentProcedure,
) -> CurtailmentAllocation:
    """Split ``required_kw`` at ``constraint_id`` between ``candidates`` by the published ``procedure``.

    Shares are whole watts (``share_kw`` has at most three decimals), never above a DER's current export, and
    sum exactly to ``met_kw``; ``unmet_kw`` is what current exports cannot cover. Each share and each party's
    total carry the rule that produced them and a reason. Raises ``ValidationFailed`` for a negative or
    non-finite requirement, repeated DERs, or a candidate without the price or connection date its rule needs.
    """
    if not math.isfinite(required_kw) or required_kw < 0:
        raise ValidationFailed(f"required_kw must be a finite number >= 0, got {required_kw}", field="required_kw")
    if not isinstance(procedure, CurtailmentProcedure):
        raise ValidationFailed("procedure must be a CurtailmentProcedure", field="procedure")
    unique_ids((c.der_id for c in candidates), "candidates.der_id")
    rule = procedure.rule
    required_w = round(required_kw * 1000)
    curtailable = np.array([math.floor(c.p_export_kw * 1000 + 1e-6) for c in candidates], dtype=np.int64)
    capacity = np.array([math.floor(c.capacity_kw * 1000 + 1e-6) for c in candidates], dtype=np.int64)
    tier_key: IntArray | None = None
    if rule is CurtailmentRule.OFFER_PRICE:
        prices: list[Decimal] = []
        for k, c in enumerate(candidates):
            if c.offer_price_cad_per_mwh is None:
                raise ValidationFailed(
                    f"candidate {c.der_id} has no offer price; rule offer_price needs one",
                    field=f"candidates[{k}].offer_price_cad_per_mwh",
                )
            prices.append(c.offer_price_cad_per_mwh)
        tier_key = _dense_rank(prices, procedure.parameters["order"] == "highest_first")
    elif rule is CurtailmentRule.CONNECTION_ORDER:
        dates = []
        for k, c in enumerate(candidates):
            if c.connected_at is None:
                raise ValidationFailed(
                    f"candidate {c.der_id} has no connection date; rule connection_order needs one",
                    field=f"candidates[{k}].connected_at",
                )
            dates.append(c.connected_at)
        tier_key = _dense_rank(dates, procedure.parameters["order"] == "last_connected_first")
    shares_w = allocate_curtailment_w(required_w, curtailable, rule, capacity_w=capacity, tier_key=tier_key)

    met_w = int(shares_w.sum())
    rule_text = procedure.describe()
    total_export_w = int(curtailable.sum())
    total_capacity_w = int(capacity.sum())
    shares: list[CurtailmentShare] = []
    for k, c in enumerate(candidates):
        share_kw = int(shares_w[k]) / 1000
        if rule is CurtailmentRule.PRO_RATA_EXPORT:
            why = (
                f"in proportion to current export: yours is {format_kw(curtailable[k] / 1000)} of "
                f"{format_kw(total_export_w / 1000)} exported by all candidates"
            )
        elif rule is CurtailmentRule.PRO_RATA_CAPACITY:
            why = (
                f"in proportion to export capacity: yours is {format_kw(capacity[k] / 1000)} of "
                f"{format_kw(total_capacity_w / 1000)}, never more than your current export "
                f"{format_kw(curtailable[k] / 1000)}"
            )
        elif rule is CurtailmentRule.OFFER_PRICE:
            why = (
                f"by offer price, {procedure.parameters['order'].replace('_', ' ')}; your offer is "
                f"{c.offer_price_cad_per_mwh} CAD/MWh and equal prices share pro rata by export"
            )
        else:
            when = c.connected_at.date().isoformat() if c.connected_at else "?"
            why = (
                f"by connection order, {procedure.parameters['order'].replace('_', ' ')}; you connected on {when} "
                f"and equal dates share pro rata by export"
            )
        reason = (
            f"Constraint {constraint_id} needs {format_kw(required_w / 1000)} less export. Under the published "
            f"procedure {rule_text} your DER {c.der_id} ({c.group.value}) is curtailed by {format_kw(share_kw)}: {why}."
        )
        shares.append(CurtailmentShare(c.der_id, c.party_id, c.group, c.p_export_kw, share_kw, rule_text, reason))
    by_party: dict[str, list[int]] = defaultdict(list)
    for k, c in enumerate(candidates):
        by_party[c.party_id].append(k)
    parties = tuple(
        PartyCurtailment(
            party_id=party,
            share_kw=int(shares_w[ks].sum()) / 1000,
            der_ids=tuple(candidates[k].der_id for k in ks),
            rule=rule_text,
            reason=(
                f"Constraint {constraint_id}: {format_kw(int(shares_w[ks].sum()) / 1000)} of the "
                f"{format_kw(met_w / 1000)} curtailed falls on your {len(ks)} DER(s) under the published procedure "
                f"{rule_text}."
            ),
        )
        for party, ks in by_party.items()
    )
    by_group = {
        g: int(sum(int(shares_w[k]) for k, c in enumerate(candidates) if c.group is g)) / 1000
        for g in ParticipationGroup
    }
    return CurtailmentAllocation(
        constraint_id=constraint_id,
        required_kw=required_w / 1000,
        procedure=procedure,
        shares=tuple(shares),
        parties=parties,
        by_group_kw=by_group,
        met_kw=met_w / 1000,
        unmet_kw=(required_w - met_w) / 1000,
    )
