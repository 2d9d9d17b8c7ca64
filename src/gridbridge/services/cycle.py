"""One market interval's coordination cycle driven end to end through the services (DESIGN section 4).

A scenario runner (or the demo) drives a day with a ``FixedClock`` like this, per interval:

1. the parties submit offers and bids (``offers.submit_offers``) before gate closure;
2. ``prepare_interval``: every DSO whose interface's model record has it aggregate merges the offers it
   received into its virtual resource's curve (still before gate closure);
3. the clock passes gate closure;
4. ``run_interval``: the TSO clears (distribution check and re-dispatch included), issues the instructions,
   every DSO and aggregator splits its instructions down to DERs, and overdue instructions are escalated.

Both helpers run as the caller of ``ctx``: the platform administrator (CLI, scenario runner) may do every
party's step; a participant only its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from gridbridge.domain.market import (
    ClearingRun,
    Instruction,
    InterfaceForecast,
    SplitMethod,
    StoredOffer,
    splittable,
)
from gridbridge.domain.offers import Market
from gridbridge.domain.permissions import is_system
from gridbridge.services import clearing, conflicts, instructions, offers
from gridbridge.services.conflict_ports import StoredConflict
from gridbridge.services.context import Context
from gridbridge.services.tdis import model_in_force


def prepare_interval(ctx: Context, market: Market, interval_start: datetime) -> list[StoredOffer]:
    """Step 2: the DSO's virtual-resource offers at every interface whose model record has the DSO aggregate
    (only the caller's own interfaces unless it is the platform administrator)."""
    stored: list[StoredOffer] = []
    for tdi in ctx.uow.tdis.list_all():
        if not (is_system(ctx.caller) or ctx.caller.participant_id == tdi.dso_id):
            continue
        model = model_in_force(ctx.uow, tdi.id, interval_start)
        if model.dso_aggregates_below_threshold:
            stored.extend(offers.aggregate_dso_offers(ctx, tdi.id, market, interval_start))
    return stored


@dataclass
class CycleOutcome:
    """What one interval's cycle produced."""

    run: ClearingRun
    issued: list[Instruction] = field(default_factory=list)
    """The TSO's instructions."""
    split: list[Instruction] = field(default_factory=list)
    """Every instruction produced by splitting (DSO and aggregator instructions down to DERs)."""
    shortfall_kw: float = 0.0
    """What the splits could not place."""
    escalated: list[Instruction] = field(default_factory=list)
    conflicts: list[StoredConflict] = field(default_factory=list)
    """Conflicts found by the check before the instructions go out (those found at issue are stored too)."""


def run_interval(
    ctx: Context,
    market: Market,
    interval_start: datetime,
    *,
    energy_requirement_kw: float,
    reserve_requirement_kw: float = 0.0,
    forecasts: Mapping[str, InterfaceForecast] | None = None,
    split_method: SplitMethod = SplitMethod.MERIT_ORDER,
) -> CycleOutcome:
    """Step 4: clear, issue, split every instruction down to DERs, check the DER-level instructions for
    conflicts once more before they go out (``conflicts.check_before_dispatch``), escalate what is overdue
    (as the platform administrator; see the module docstring)."""
    run = clearing.clear_interval(
        ctx,
        market,
        interval_start,
        energy_requirement_kw=energy_requirement_kw,
        reserve_requirement_kw=reserve_requirement_kw,
        forecasts=forecasts,
    )
    outcome = CycleOutcome(run)
    outcome.issued = instructions.issue_instructions(ctx, run.id)
    queue = [i for i in outcome.issued if splittable(i)]
    while queue:
        parent = queue.pop(0)
        result = instructions.split_instruction(ctx, parent.id, split_method)
        outcome.split.extend(result.children)
        outcome.shortfall_kw += result.shortfall_kw
        queue.extend(c for c in result.children if splittable(c))
    outcome.conflicts = conflicts.check_before_dispatch(ctx, [*outcome.issued, *outcome.split])
    outcome.escalated = instructions.escalate_overdue(ctx)
    return outcome
