"""Conflict management between TSO, DSO and aggregators: detection, resolution, curtailment, open access.

Typical use (a service wires the stored records in and out):

    case = build_case(grid, ders, instructions, envelopes=..., outages=..., commitments=...)
    conflicts = detect_conflicts(case)
    result = resolve_conflicts(case, conflicts, now, policies={tdi_id: policy})

``result.resolutions`` has exactly one resolution per conflict; ``result.instructions`` is the jointly
feasible instruction set. ``allocate_curtailment`` splits a required reduction by a published rule and
``open_access_report`` compares DSO-affiliated with third-party DERs. ``docs/conflicts.md`` explains the rules.
"""

from gridbridge.engines.conflicts.case import ConflictCase, build_case
from gridbridge.engines.conflicts.curtailment import allocate_curtailment, allocate_curtailment_w
from gridbridge.engines.conflicts.detection import detect_conflicts
from gridbridge.engines.conflicts.double_counting import DoubleCountResult, double_counting
from gridbridge.engines.conflicts.kernels import (
    ScreenResult,
    screen_capability_energy,
    soe_trajectory_clipped_kwh,
    soe_trajectory_kwh,
)
from gridbridge.engines.conflicts.open_access import open_access_report, open_access_totals
from gridbridge.engines.conflicts.resolution import (
    AdjustedSchedule,
    ResolutionResult,
    feasibility_violations,
    resolve_conflicts,
)

__all__ = [
    "AdjustedSchedule",
    "ConflictCase",
    "DoubleCountResult",
    "ResolutionResult",
    "ScreenResult",
    "allocate_curtailment",
    "allocate_curtailment_w",
    "build_case",
    "detect_conflicts",
    "double_counting",
    "feasibility_violations",
    "open_access_report",
    "open_access_totals",
    "resolve_conflicts",
    "screen_capability_energy",
    "soe_trajectory_clipped_kwh",
    "soe_trajectory_kwh",
]
