"""Open-access report: does a DSO favour its own DERs? (white paper section 4.2; issue 5, section 4)

Per DSO and reporting period the report compares DSO-affiliated DERs with third-party DERs: how much each
group was dispatched and curtailed, as a share of the DSO's total and normalised by the group's capacity.
A ``curtailment_share_ratio`` of 1.0 means a group bears exactly its capacity's share of curtailment; a
third-party ratio well above the affiliated one is what a regulator looks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from gridbridge.domain.conflicts import DUPLICATE_ID, OpenAccessRecord, OpenAccessRow
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.conflicts.kernels import BoolArray, FloatArray, IntArray


@dataclass(frozen=True)
class OpenAccessTotals:
    """Totals per (key, group) with group 0 = third party and 1 = DSO-affiliated; arrays ``(n_keys, 2)``."""

    n_ders: IntArray
    capacity_kw: FloatArray
    dispatched_kwh: FloatArray
    curtailed_kwh: FloatArray


def open_access_totals(
    key: IntArray,
    affiliated: BoolArray,
    capacity_kw: FloatArray,
    dispatched_kwh: FloatArray,
    curtailed_kwh: FloatArray,
    n_keys: int,
) -> OpenAccessTotals:
    """Sum records per ``key`` (one DSO and period) and group, vectorised with one ``bincount`` per quantity."""
    slot = key * 2 + affiliated.astype(np.int64)
    size = n_keys * 2

    def total(values: FloatArray) -> FloatArray:
        return np.bincount(slot, weights=values, minlength=size).astype(np.float64, copy=False).reshape(n_keys, 2)

    return OpenAccessTotals(
        n_ders=np.bincount(slot, minlength=size).reshape(n_keys, 2).astype(np.int64),
        capacity_kw=total(capacity_kw),
        dispatched_kwh=total(dispatched_kwh),
        curtailed_kwh=total(curtailed_kwh),
    )


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def open_access_report(records: Sequence[OpenAccessRecord]) -> tuple[OpenAccessRow, ...]:
    """Return two rows (DSO-affiliated first, then third party) per DSO and period, sorted by DSO and period.

    Each DER may appear once per DSO and period (raises ``conflicts.duplicate_id`` otherwise). Shares are
    fractions of the DSO's period total; ``*_per_kw`` divides by the group's capacity; ``*_share_ratio``
    divides the share by the group's capacity share. Undefined ratios (zero denominators) are ``nan``.
    """
    keys: dict[tuple[str, datetime], int] = {}
    seen: set[tuple[str, datetime, str]] = set()
    key = np.empty(len(records), dtype=np.int64)
    for k, r in enumerate(records):
        ident = (r.dso_id, r.period_start, r.der_id)
        if ident in seen:
            raise ValidationFailed(
                f"DER {r.der_id} appears twice for DSO {r.dso_id} in the period from {r.period_start.isoformat()}",
                field=f"records[{k}].der_id",
                code=DUPLICATE_ID,
            )
        seen.add(ident)
        key[k] = keys.setdefault((r.dso_id, r.period_start), len(keys))
    totals = open_access_totals(
        key,
        np.array([r.dso_affiliated for r in records], dtype=np.bool_),
        np.array([r.capacity_kw for r in records], dtype=np.float64),
        np.array([r.dispatched_kwh for r in records], dtype=np.float64),
        np.array([r.curtailed_kwh for r in records], dtype=np.float64),
        len(keys),
    )
    cap_share = _ratio(totals.capacity_kw, totals.capacity_kw.sum(axis=1, keepdims=True))
    disp_share = _ratio(totals.dispatched_kwh, totals.dispatched_kwh.sum(axis=1, keepdims=True))
    curt_share = _ratio(totals.curtailed_kwh, totals.curtailed_kwh.sum(axis=1, keepdims=True))
    disp_per_kw = _ratio(totals.dispatched_kwh, totals.capacity_kw)
    curt_per_kw = _ratio(totals.curtailed_kwh, totals.capacity_kw)
    disp_ratio = _ratio(disp_share, cap_share)
    curt_ratio = _ratio(curt_share, cap_share)
    rows: list[OpenAccessRow] = []
    for (dso, period), k in sorted(keys.items()):
        for group in (1, 0):
            rows.append(
                OpenAccessRow(
                    dso_id=dso,
                    period_start=period,
                    dso_affiliated=bool(group),
                    n_ders=int(totals.n_ders[k, group]),
                    capacity_kw=float(totals.capacity_kw[k, group]),
                    dispatched_kwh=float(totals.dispatched_kwh[k, group]),
                    curtailed_kwh=float(totals.curtailed_kwh[k, group]),
                    capacity_share=float(cap_share[k, group]),
                    dispatch_share=float(disp_share[k, group]),
                    curtailment_share=float(curt_share[k, group]),
                    dispatched_kwh_per_kw=float(disp_per_kw[k, group]),
                    curtailed_kwh_per_kw=float(curt_per_kw[k, group]),
                    dispatch_share_ratio=float(disp_ratio[k, group]),
                    curtailment_share_ratio=float(curt_ratio[k, group]),
                )
            )
    return tuple(rows)
