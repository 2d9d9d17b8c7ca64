"""Curtailment objects of the permission-matrix province, made through the real services.

``add_curtailment(matrix)`` has ldc_a publish ``pro_rata_export`` at tdi_a (version 1, in force now) and curtail
10 kW at a1's connection point over the half hour starting 10 minutes after the next 5-minute boundary. a1
(owner_1, not market-participating) takes all of it: owner_1 receives a parent instruction (``curtail@owner_1``)
and one for a1 (``curtail@a1``), both from ldc_a and hidden from the TSO under alt 2. Labels go to
``MatrixProvince.market``: ``curtailment:event@tdi_a``, ``instruction:curtail@owner_1``, ``instruction:curtail@a1``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from api_province import MatrixProvince

from gridbridge.services import curtailment
from gridbridge.services.context import Context


def window(matrix: MatrixProvince, minutes_ahead: int = 10, minutes: int = 30) -> tuple[datetime, datetime]:
    """A real-time-aligned window ``minutes_ahead`` after the next 5-minute boundary."""
    now = matrix.province.clock.now()
    start = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) + timedelta(
        minutes=5 + minutes_ahead
    )
    return start, start + timedelta(minutes=minutes)


def add_curtailment(matrix: MatrixProvince) -> None:
    """The procedure and the event of the module docstring."""
    province = matrix.province
    tdi_a = province.tdis["tdi_a"]
    a1_point = province.points["tdi_a"][0]
    start, end = window(matrix)

    def apply(ctx: Context) -> None:
        curtailment.publish_procedure(ctx, tdi_a, "pro_rata_export")
        event = curtailment.request_curtailment(
            ctx, tdi_a, 10.0, start, end, connection_point_ids=[a1_point], reason="transformer T1 overload"
        )
        matrix.market["curtailment:event@tdi_a"] = event.id
        (notice,) = event.notices
        (share,) = event.shares
        assert share.der_id == province.ders["a1"]
        matrix.market["instruction:curtail@owner_1"] = notice.instruction_id or ""
        matrix.market["instruction:curtail@a1"] = share.instruction_id or ""

    province.run("ldc_a", apply)
