"""Reductions (a DSO's curtailment for a distribution constraint) in detection and resolution, and the service
category of operating instructions by their root issuer.

A reduction adds to the other instructions, so it lowers what a DER is asked to export; it never counts as
import (the import side of every limit widens by it) or as charge, and resolution never changes it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from conflicts_testkit import at, hourly_grid, instruction

from gridbridge.domain.conflicts import (
    ConflictInstruction,
    ConflictKind,
    ConnectionPointOutage,
    DerCapability,
    EnvelopeLimit,
    EnvelopeTarget,
    InstructionKind,
    OutcomeAction,
    ServiceCategory,
    StorageSpec,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.roles import Role, Service
from gridbridge.engines.conflicts import build_case, detect_conflicts, resolve_conflicts
from gridbridge.engines.conflicts.kernels import energy_power_kw
from gridbridge.engines.conflicts.resolution import feasibility_violations

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
PV = DerCapability("pv-1", "tdi-1", "cp-1", 200.0, 0.0)


def _curtail(p_kw: float, start: float = 12, end: float = 13, der_id: str = "pv-1") -> ConflictInstruction:
    return replace(
        instruction(
            "curtail",
            der_id,
            Role.DSO,
            Service.WHOLESALE_ENERGY,
            start,
            end,
            p_kw,
            kind=InstructionKind.OPERATING_INSTRUCTION,
            issued_hour=-30,
        ),
        reduces_export=True,
    )


def test_categories_follow_the_root_issuer_of_an_operating_instruction() -> None:
    own = _curtail(-50.0)
    assert own.category is ServiceCategory.DISTRIBUTION_SAFETY
    split = replace(own, root_issuer_role=Role.TSO, reduces_export=False, p_kw=50.0)
    assert split.category is ServiceCategory.BULK_RELIABILITY  # the DSO's allocation of a TSO instruction
    tso = instruction("op", "pv-1", Role.TSO, Service.WHOLESALE_ENERGY, 12, 13, 50.0,
                      kind=InstructionKind.OPERATING_INSTRUCTION)  # fmt: skip
    assert tso.category is ServiceCategory.BULK_RELIABILITY
    with pytest.raises(ValidationFailed):
        replace(own, p_kw=10.0)  # a reduction never asks for more export


def test_a_reduction_alone_or_beyond_the_export_is_no_conflict() -> None:
    """A PV that cannot import holds a 50 kW reduction alone, or on top of a 30 kW dispatch: it exports nothing,
    which breaks no limit (the import side widens by the reduction)."""
    grid = hourly_grid(12, 1)
    envelopes = [
        EnvelopeLimit(EnvelopeTarget.DER, "pv-1", at(12), at(13), 150.0, 0.0),
        EnvelopeLimit(EnvelopeTarget.CONNECTION_POINT, "cp-1", at(12), at(13), 150.0, 0.0),
    ]
    alone = build_case(grid, [PV], [_curtail(-50.0)], envelopes=envelopes)
    assert detect_conflicts(alone) == ()
    dispatch = instruction("tso", "pv-1", Role.TSO, Service.WHOLESALE_ENERGY, 12, 13, 30.0)
    beyond = build_case(grid, [PV], [_curtail(-50.0), dispatch], envelopes=envelopes)
    assert detect_conflicts(beyond) == ()
    # without the flag the same setpoint would be an import the PV cannot make
    plain = build_case(grid, [PV], [replace(_curtail(-50.0), reduces_export=False)], envelopes=envelopes)
    assert {c.kind for c in detect_conflicts(plain)} == {
        ConflictKind.HIDDEN_COUPLING_CAPABILITY,
        ConflictKind.TIER_BYPASSING_ENVELOPE,
    }


def test_a_reduction_lowers_the_export_a_dispatch_on_top_of_it_needs() -> None:
    """Static limit 150 kW, curtailed 50 kW: a 150 kW dispatch nets 100 kW (no conflict); a 250 kW one nets
    200 kW and is cut to 200 kW, lowest priority first, while the reduction is kept."""
    grid = hourly_grid(12, 1)
    envelope = [EnvelopeLimit(EnvelopeTarget.DER, "pv-1", at(12), at(13), 150.0, 0.0)]
    ok = instruction("tso", "pv-1", Role.TSO, Service.WHOLESALE_ENERGY, 12, 13, 150.0)
    assert detect_conflicts(build_case(grid, [PV], [_curtail(-50.0), ok], envelopes=envelope)) == ()
    beyond = replace(ok, p_kw=250.0)
    case = build_case(grid, [PV], [_curtail(-50.0), beyond], envelopes=envelope)
    found = detect_conflicts(case)
    assert [c.kind for c in found] == [ConflictKind.TIER_BYPASSING_ENVELOPE]
    result = resolve_conflicts(case, found, NOW)
    after = {a.subject_id: a.schedule[0].p_kw for a in result.instructions}
    assert after == {"curtail": pytest.approx(-50.0), "tso": pytest.approx(200.0)}
    actions = {o.subject_id: o.action for o in result.resolutions[0].outcomes}
    assert actions == {"curtail": OutcomeAction.KEPT, "tso": OutcomeAction.REDUCED}


def test_for_storage_a_reduction_lowers_discharge_and_never_charges() -> None:
    """A full 1,000 kW / 4,000 kWh battery: a reduction with nothing to reduce is no charge (no overflow). Half
    full, a reduction from 12 to 1 pm followed by a three-hour discharge still runs the battery empty: the
    reduction would have masked the shortfall had it counted as a 1,000 kWh charge. Under a discharge, a reduction
    saves energy."""
    grid = hourly_grid(12, 4)
    full = DerCapability("bat", "tdi-1", "cp-2", 1000.0, 1000.0, StorageSpec(4000.0, 1.0))
    assert detect_conflicts(build_case(grid, [full], [_curtail(-1000.0, der_id="bat")])) == ()

    half = replace(full, storage=StorageSpec(4000.0, 0.5))
    discharge = instruction("tso", "bat", Role.TSO, Service.WHOLESALE_ENERGY, 13, 16, 1000.0)
    case = build_case(grid, [half], [_curtail(-1000.0, 12, 13, "bat"), discharge])
    (found,) = detect_conflicts(case)
    assert found.kind is ConflictKind.HIDDEN_COUPLING_ENERGY
    assert found.figures["max_shortfall_kwh"] == pytest.approx(1000.0)
    result = resolve_conflicts(case, (found,), NOW)
    assert feasibility_violations(case, result.cell_p_kw) == []
    after = {a.subject_id: [(s.p_kw, (s.end - s.start).total_seconds() / 3600) for s in a.schedule]
             for a in result.instructions}  # fmt: skip
    assert after["curtail"] == [(pytest.approx(-1000.0), 1.0)]  # kept
    assert after["tso"] == [(1000.0, 2.0), (0.0, 1.0)]  # the 2,000 kWh the half-full battery holds, earliest first

    # 12-4 pm discharge of the full battery with 500 kW curtailed from 1 to 2 pm and a charge from 3 to 4 pm
    # on top: feasible, 500 kWh more left than without the reduction
    charge = instruction("agg", "bat", Role.AGGREGATOR, Service.WHOLESALE_ENERGY, 15, 16, -1000.0)
    items = [replace(discharge, start=at(12)), _curtail(-500.0, 13, 14, "bat"), charge]
    case = build_case(grid, [full], items)
    assert detect_conflicts(case) == ()
    assert feasibility_violations(case, case.cell_p_kw) == []


def test_energy_power_is_the_net_without_reductions() -> None:
    import numpy as np

    p = np.array([-50.0, 950.0, -1100.0, 0.0])
    reduction = np.array([50.0, 50.0, 100.0, 0.0])
    # nothing else: no charge; discharge reduced; a charge beneath a reduction stays the charge; rest
    assert energy_power_kw(p, reduction).tolist() == [0.0, 950.0, -1000.0, 0.0]
    assert energy_power_kw(p).tolist() == p.tolist()


def test_a_reduction_at_a_de_energised_point_is_moot_and_kept() -> None:
    grid = hourly_grid(12, 1)
    dispatch = instruction("tso", "pv-1", Role.TSO, Service.WHOLESALE_ENERGY, 12, 13, 40.0)
    outage = [ConnectionPointOutage("cp-1", at(12), at(13))]
    assert detect_conflicts(build_case(grid, [PV], [_curtail(-50.0)], outages=outage)) == ()
    case = build_case(grid, [PV], [_curtail(-50.0), dispatch], outages=outage)
    found = detect_conflicts(case)
    assert [c.kind for c in found] == [ConflictKind.TIER_BYPASSING_DEENERGISED]
    result = resolve_conflicts(case, found, NOW)
    after = {a.subject_id: a.schedule[0].p_kw for a in result.instructions}
    assert after == {"curtail": pytest.approx(-50.0), "tso": 0.0}
