"""Builders and an independent feasibility oracle for the conflict-management tests.

The oracle re-checks an adjusted instruction set with plain loops over the domain inputs, without any of the
engine's arrays, so the property tests do not check the engine against itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone

from gridbridge.domain.conflicts import (
    ConflictInstruction,
    ConnectionPointOutage,
    DerCapability,
    EnvelopeLimit,
    EnvelopeTarget,
    InstructionKind,
    IntervalGrid,
    Segment,
)
from gridbridge.domain.roles import Role, Service

EST = timezone(timedelta(hours=-5))
"""IESO market time (Eastern Standard Time, fixed UTC-05:00)."""
DAY = datetime(2026, 7, 1, tzinfo=EST)


def at(hour: float) -> datetime:
    """The time ``hour`` hours after midnight EST on the test day, in UTC."""
    return (DAY + timedelta(hours=hour)).astimezone(UTC)


def hourly_grid(first_hour: int, n: int) -> IntervalGrid:
    """``n`` hourly intervals from ``first_hour`` EST."""
    return IntervalGrid(at(first_hour), timedelta(hours=1), n)


def instruction(
    instruction_id: str,
    der_id: str,
    role: Role,
    service: Service,
    start_hour: float,
    end_hour: float,
    p_kw: float,
    *,
    kind: InstructionKind = InstructionKind.DISPATCH,
    issued_hour: float = -24.0,
    issuer: str | None = None,
    recipient: str = "owner-1",
) -> ConflictInstruction:
    """An instruction with hours counted from midnight EST on the test day."""
    return ConflictInstruction(
        instruction_id=instruction_id,
        issuer_party_id=issuer or {Role.TSO: "ieso", Role.DSO: "ldc-1", Role.AGGREGATOR: "agg-1"}[role],
        issuer_role=role,
        recipient_party_id=recipient,
        der_id=der_id,
        service=service,
        kind=kind,
        start=at(start_hour),
        end=at(end_hour),
        p_kw=p_kw,
        issued_at=at(issued_hour),
    )


def _overlaps(start: datetime, end: datetime, a: datetime, b: datetime) -> bool:
    return start < b and end > a


def _value(schedule: Sequence[Segment], start: datetime) -> float:
    for seg in schedule:
        if seg.start <= start < seg.end:
            return seg.p_kw
    return 0.0


def oracle_violations(
    grid: IntervalGrid,
    ders: Sequence[DerCapability],
    instructions: Sequence[ConflictInstruction],
    schedules: Mapping[str, Sequence[Segment]],
    envelopes: Sequence[EnvelopeLimit] = (),
    outages: Sequence[ConnectionPointOutage] = (),
    tol: float = 1e-6,
) -> list[str]:
    """Every broken limit of the instruction set given by ``schedules`` (instruction id -> segments)."""
    problems: list[str] = []
    soe = {d.der_id: d.storage.e_initial_kwh for d in ders if d.storage}
    dt_h = grid.dt_h
    for t in range(grid.n_intervals):
        a, b = grid.interval(t)
        totals = {d.der_id: 0.0 for d in ders}
        for ins in instructions:
            if _overlaps(ins.start, ins.end, a, b):
                totals[ins.der_id] += _value(schedules[ins.instruction_id], a)
        cp_totals: dict[str, float] = {}
        for d in ders:
            total = totals[d.der_id]
            cp_totals[d.connection_point_id] = cp_totals.get(d.connection_point_id, 0.0) + total
            hi, lo = d.p_export_kw, -d.p_import_kw
            for env in envelopes:
                if (
                    env.target is EnvelopeTarget.DER
                    and env.target_id == d.der_id
                    and _overlaps(env.start, env.end, a, b)
                ):
                    hi, lo = min(hi, env.p_export_kw), max(lo, -env.p_import_kw)
            if any(o.connection_point_id == d.connection_point_id and _overlaps(o.start, o.end, a, b) for o in outages):
                hi = lo = 0.0
            if total > hi + tol or total < lo - tol:
                problems.append(f"{d.der_id} at {a}: {total} kW outside [{lo}, {hi}]")
            if d.storage:
                s = d.storage
                soe[d.der_id] += -total * dt_h / s.eta_discharge if total > 0 else -total * dt_h * s.eta_charge
                if not s.e_min_kwh - tol <= soe[d.der_id] <= s.e_max_kwh + tol:
                    problems.append(f"{d.der_id} at {b}: {soe[d.der_id]} kWh outside [{s.e_min_kwh}, {s.e_max_kwh}]")
        for cp, total in cp_totals.items():
            hi, lo = float("inf"), float("-inf")
            for env in envelopes:
                if (
                    env.target is EnvelopeTarget.CONNECTION_POINT
                    and env.target_id == cp
                    and _overlaps(env.start, env.end, a, b)
                ):
                    hi, lo = min(hi, env.p_export_kw), max(lo, -env.p_import_kw)
            if any(o.connection_point_id == cp and _overlaps(o.start, o.end, a, b) for o in outages):
                hi = lo = 0.0
            if total > hi + tol or total < lo - tol:
                problems.append(f"connection point {cp} at {a}: {total} kW outside [{lo}, {hi}]")
    return problems
