"""Conflict scenarios shared by the API and CLI tests of who sees what (built through the real services).

``competitors_at_one_point``: owner_2's 60 kW PV ``x``, filed by agg_2, at the connection point of owner_1's
``a1`` (tdi_a, alt 2); ldc_a publishes a 50 kW envelope there from 12 to 1 pm EST; the TSO dispatches each DER
40 kW over that hour, and the check before dispatch runs over both (it records the connection point's
conflict if the check at issue did not).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gridbridge.domain.der import ReviewDecision
from gridbridge.domain.market import Instruction
from gridbridge.services import conflicts, ders
from gridbridge.services.context import Context
from registry_province import Province, spec

sys.path.insert(0, str(Path(__file__).parent / "integration" / "services"))
from conflict_helpers import publish_envelope, tso_dispatch

NOON_EST = datetime(2026, 5, 5, 17, 0, tzinfo=UTC)
"""12 pm Eastern Standard Time, the day after the test province's clock."""


def competitors_at_one_point(p: Province) -> tuple[Instruction, Instruction]:
    """The scenario of the module docstring; returns the TSO's instructions to a1 and to x as issued."""

    def file(ctx: Context) -> str:
        point = p.points["tdi_a"][0]
        return ders.request_interconnection(ctx, spec("der-x", 60.0), point, owner_id=p.ids["owner_2"]).id

    x = p.ders["x"] = p.run("agg_2", file)

    def approve(ctx: Context) -> None:
        ders.start_review(ctx, x)
        ders.decide_review(ctx, x, ReviewDecision.APPROVED, "within hosting capacity")
        ders.commission(ctx, x)

    p.run("ldc_a", approve)
    end = NOON_EST + timedelta(hours=1)
    publish_envelope(p, "a1", NOON_EST, end, 50.0, "thermal:line")
    on_a1 = tso_dispatch(p, "a1", NOON_EST, end, 40.0)
    on_x = tso_dispatch(p, "x", NOON_EST, end, 40.0)
    with p.platform.context() as ctx:
        conflicts.check_before_dispatch(ctx, ctx.uow.conflicts.der_instructions([p.ders["a1"], x], NOON_EST, end))
    return on_a1, on_x
