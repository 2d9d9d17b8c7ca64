"""Conflict detection on a ``ConflictCase``: every rule of issue 5, vectorised over DERs and intervals.

Rules (``docs/conflicts.md`` explains each with the white paper's examples):

* ``hidden_coupling_capability``: per DER and interval, the sum of all parties' instructions is above
  ``p_export_kw`` or below ``-p_import_kw``. One conflict per DER and run of consecutive intervals.
* ``hidden_coupling_energy``: per storage DER, the instructed state-of-energy trajectory leaves
  ``[e_min, e_max]`` at the end of some interval. One conflict per DER over the horizon; it lists every
  instruction on the DER, since all of them shape the trajectory.
* ``tier_bypassing_deenergised``: an instruction with a non-zero setpoint for a DER whose connection point
  is de-energised (a reduction is no conflict there: a dead point exports nothing anyway). One conflict per
  connection point and run.
* ``tier_bypassing_envelope``: the sum of instructions to a DER is beyond the DER's envelope, or the sum over
  a connection point's DERs is beyond the connection point's envelope, in an energised interval. One
  conflict per DER (or connection point) and run.
* ``double_counting``: committed kW of two or more commitments overlap on one DER, direction and interval
  (``engines.conflicts.double_counting``). One conflict per DER, direction and run.

Reductions (``ConflictInstruction.reduces_export``) add to the other instructions but never count as import
or charge: the import side of every bound widens by them (``ConflictCase.der_bounds_kw``) and stored energy
follows ``energy_power_kw``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gridbridge.domain.conflicts import (
    Conflict,
    ConflictKind,
    DoubleCountedPair,
    format_kw,
    format_time,
)
from gridbridge.domain.roles import Role
from gridbridge.engines.conflicts.case import ConflictCase
from gridbridge.engines.conflicts.double_counting import DoubleCountResult, double_counting
from gridbridge.engines.conflicts.kernels import (
    TOL_KW,
    TOL_KWH,
    FloatArray,
    IntArray,
    energy_power_kw,
    mask_runs,
    net_power_kw,
    soe_trajectory_clipped_kwh,
    soe_trajectory_kwh,
)


class _CellIndex:
    """Instruction cells sorted by (DER, interval), for finding the instructions behind a conflict."""

    def __init__(self, case: ConflictCase, cell_p: FloatArray) -> None:
        nonzero = np.flatnonzero(cell_p != 0.0)
        order = nonzero[np.lexsort((case.cell_t[nonzero], case.cell_der[nonzero]))]
        self.der = case.cell_der[order]
        self.t = case.cell_t[order]
        self.instr = case.cell_instr[order]
        self.p = cell_p[order]
        self.case = case

    def instructions(self, ders: Sequence[int], a: int = 0, b: int | None = None) -> list[int]:
        """Instruction indexes with a non-zero cell on any of ``ders`` in intervals ``[a, b)``, sorted."""
        b = self.case.n_intervals if b is None else b
        found: set[int] = set()
        for d in ders:
            lo, hi = np.searchsorted(self.der, [d, d + 1])
            t = self.t[lo:hi]
            sel = (t >= a) & (t < b)
            found.update(int(i) for i in self.instr[lo:hi][sel])
        return sorted(found)


def _parties(case: ConflictCase, instr: Sequence[int]) -> tuple[str, ...]:
    parties: dict[str, None] = {}
    for k in instr:
        ins = case.instructions[k]
        parties[ins.issuer_party_id] = None
        parties[ins.recipient_party_id] = None
    return tuple(parties)


def _who(case: ConflictCase, instr: Sequence[int]) -> str:
    parts = []
    for k in instr:
        ins = case.instructions[k]
        parts.append(f"{ins.instruction_id} ({ins.issuer_role.value} {ins.issuer_party_id}, {format_kw(ins.p_kw)})")
    return ", ".join(parts)


def _when(case: ConflictCase, a: int, b: int) -> str:
    return f"from {format_time(case.grid.interval_start(a))} to {format_time(case.grid.interval_start(b))}"


def _ids(case: ConflictCase, instr: Sequence[int]) -> tuple[str, ...]:
    return tuple(case.instructions[k].instruction_id for k in instr)


def detect_conflicts(
    case: ConflictCase,
    *,
    cell_p_kw: FloatArray | None = None,
    tol_kw: float = TOL_KW,
    tol_kwh: float = TOL_KWH,
) -> tuple[Conflict, ...]:
    """Return every conflict in ``case``, in a deterministic order (kind, then resource, then time).

    ``cell_p_kw`` replaces the instructed setpoints cell by cell (for re-checking a resolved set). Excesses
    of at most ``tol_kw`` / ``tol_kwh`` count as rounding. Instructions with a zero setpoint never conflict.
    """
    cell_p = case.cell_p_kw if cell_p_kw is None else np.asarray(cell_p_kw, dtype=np.float64)
    if cell_p.shape != case.cell_p_kw.shape:
        raise ValueError("cell_p_kw must have one value per instruction cell")
    n, n_t = case.n_der, case.n_intervals
    index = _CellIndex(case, cell_p)
    p = net_power_kw(case.cell_der, case.cell_t, cell_p, n, n_t)
    nonzero = net_power_kw(case.cell_der, case.cell_t, (cell_p != 0).astype(np.float64), n, n_t)
    followed = net_power_kw(case.cell_der, case.cell_t, ((cell_p != 0) & ~case.cell_reduces).astype(np.float64), n, n_t)
    reduction = case.reduction_kw(cell_p)
    is_tso = np.array(
        [(ins.root_issuer_role or ins.issuer_role) is Role.TSO for ins in case.instructions], dtype=np.bool_
    )
    tso_cells = is_tso[case.cell_instr] if case.cell_instr.size else np.zeros(0, dtype=np.bool_)
    p_tso = net_power_kw(case.cell_der[tso_cells], case.cell_t[tso_cells], cell_p[tso_cells], n, n_t)
    live = case.energised[case.der_cp]

    conflicts: list[Conflict] = []
    conflicts += _capability(case, index, p, reduction, tol_kw)
    conflicts += _energy(case, index, p, reduction, nonzero, tol_kwh)
    conflicts += _deenergised(case, index, p, followed)
    conflicts += _der_envelope(case, index, p, p_tso, reduction, live, tol_kw)
    conflicts += _cp_envelope(case, index, p, p_tso, reduction, nonzero, tol_kw)
    conflicts += _double_counting(case)
    return tuple(conflicts)


def _capability(
    case: ConflictCase, index: _CellIndex, p: FloatArray, reduction: FloatArray, tol_kw: float
) -> list[Conflict]:
    hi = case.p_export_kw[:, None]
    lo = -case.p_import_kw[:, None] - reduction
    excess = np.maximum(p - hi, 0.0) + np.maximum(lo - p, 0.0)
    rows, starts, ends = mask_runs(excess > tol_kw)
    out = []
    for d, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
        der = case.ders[d]
        instr = index.instructions([d], a, b)
        inst = p[d, a:b]
        limit = np.where(inst > 0, der.p_export_kw, lo[d, a:b])
        exc = excess[d, a:b]
        summary = (
            f"DER {der.der_id} is instructed {format_kw(float(inst[np.argmax(exc)]))} in total {_when(case, a, b)} "
            f"by {_who(case, instr)}; its capability is {format_kw(der.p_export_kw)} export and "
            f"{format_kw(der.p_import_kw)} import, exceeded by up to {format_kw(float(exc.max()))}."
        )
        out.append(
            Conflict(
                conflict_id=f"{ConflictKind.HIDDEN_COUPLING_CAPABILITY.value}:{der.der_id}:{case.grid.interval_start(a).isoformat()}",
                kind=ConflictKind.HIDDEN_COUPLING_CAPABILITY,
                tdi_id=der.tdi_id,
                der_ids=(der.der_id,),
                connection_point_id=der.connection_point_id,
                intervals=tuple(case.grid.interval(t) for t in range(a, b)),
                instruction_ids=_ids(case, instr),
                commitment_ids=(),
                party_ids=_parties(case, instr),
                figures={
                    "p_export_kw": der.p_export_kw,
                    "p_import_kw": der.p_import_kw,
                    "max_excess_kw": float(exc.max()),
                    "n_instructions": float(len(instr)),
                },
                series={
                    "instructed_p_kw": tuple(inst.tolist()),
                    "limit_p_kw": tuple(limit.tolist()),
                    "excess_kw": tuple(exc.tolist()),
                },
                summary=summary,
            )
        )
    return out


def _energy(
    case: ConflictCase, index: _CellIndex, p: FloatArray, reduction: FloatArray, nonzero: FloatArray, tol_kwh: float
) -> list[Conflict]:
    rows = np.flatnonzero(case.has_storage & (nonzero.sum(axis=1) > 0))
    if rows.size == 0:
        return []
    p = energy_power_kw(p, reduction)
    soe = soe_trajectory_kwh(
        p[rows], case.e_initial_kwh[rows], case.eta_charge[rows], case.eta_discharge[rows], case.grid.dt_h
    )
    emin = case.e_min_kwh[rows][:, None]
    emax = case.e_max_kwh[rows][:, None]
    bad = (soe < emin - tol_kwh) | (soe > emax + tol_kwh)
    flagged = np.flatnonzero(bad.any(axis=1))
    if flagged.size == 0:
        return []
    sub = rows[flagged]
    _, undelivered = soe_trajectory_clipped_kwh(
        p[sub],
        case.e_initial_kwh[sub],
        case.e_min_kwh[sub],
        case.e_max_kwh[sub],
        case.eta_charge[sub],
        case.eta_discharge[sub],
        case.grid.dt_h,
    )
    dt_h = case.grid.dt_h
    out = []
    for k, f in enumerate(flagged.tolist()):
        d = int(rows[f])
        der = case.ders[d]
        ts = np.flatnonzero(bad[f])
        traj = soe[f]
        shortfall = np.maximum(case.e_min_kwh[d] - traj[ts], 0.0)
        overflow = np.maximum(traj[ts] - case.e_max_kwh[d], 0.0)
        instr = index.instructions([d])
        first = int(ts[0])
        by = format_time(case.grid.interval_start(first + 1))
        if shortfall[0] > 0:
            what = (
                f"its stored energy would fall to {traj[first]:.3f} kWh by {by} "
                f"(minimum {case.e_min_kwh[d]:.3f} kWh): an instructed discharge cannot be delivered"
            )
        else:
            what = (
                f"its stored energy would rise to {traj[first]:.3f} kWh by {by} "
                f"(maximum {case.e_max_kwh[d]:.3f} kWh): an instructed charge cannot be absorbed"
            )
        summary = (
            f"Storage DER {der.der_id} ({case.e_capacity_kwh[d]:.3f} kWh, starting at {case.e_initial_kwh[d]:.3f} kWh) "
            f"cannot follow all of {_who(case, instr)}: {what}. "
            f"{len(ts)} interval end(s) are out of bounds, by up to "
            f"{max(float(shortfall.max()), float(overflow.max())):.3f} kWh."
        )
        und = undelivered[k]
        out.append(
            Conflict(
                conflict_id=f"{ConflictKind.HIDDEN_COUPLING_ENERGY.value}:{der.der_id}",
                kind=ConflictKind.HIDDEN_COUPLING_ENERGY,
                tdi_id=der.tdi_id,
                der_ids=(der.der_id,),
                connection_point_id=der.connection_point_id,
                intervals=tuple(case.grid.interval(int(t)) for t in ts),
                instruction_ids=_ids(case, instr),
                commitment_ids=(),
                party_ids=_parties(case, instr),
                figures={
                    "e_kwh": float(case.e_capacity_kwh[d]),
                    "e_initial_kwh": float(case.e_initial_kwh[d]),
                    "e_min_kwh": float(case.e_min_kwh[d]),
                    "e_max_kwh": float(case.e_max_kwh[d]),
                    "min_soe_kwh": float(traj.min()),
                    "max_soe_kwh": float(traj.max()),
                    "max_shortfall_kwh": float(shortfall.max()),
                    "max_overflow_kwh": float(overflow.max()),
                    "undelivered_discharge_kwh": float(np.maximum(und, 0.0).sum() * dt_h),
                    "unabsorbed_charge_kwh": float(np.maximum(-und, 0.0).sum() * dt_h),
                },
                series={
                    "soe_kwh": tuple(traj[ts].tolist()),
                    "shortfall_kwh": tuple(shortfall.tolist()),
                    "overflow_kwh": tuple(overflow.tolist()),
                },
                summary=summary,
            )
        )
    return out


def _cp_members(case: ConflictCase) -> list[list[int]]:
    members: list[list[int]] = [[] for _ in range(case.n_cp)]
    for d, c in enumerate(case.der_cp.tolist()):
        members[c].append(d)
    return members


def _deenergised(case: ConflictCase, index: _CellIndex, p: FloatArray, nonzero: FloatArray) -> list[Conflict]:
    n_cp, n_t = case.n_cp, case.n_intervals
    instructed = np.zeros((n_cp, n_t))
    np.add.at(instructed, case.der_cp, nonzero)
    mask = (instructed > 0) & ~case.energised
    rows, starts, ends = mask_runs(mask)
    members = _cp_members(case)
    cp_p = np.zeros((n_cp, n_t))
    np.add.at(cp_p, case.der_cp, p)
    out = []
    for c, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
        cp_id = case.cp_ids[c]
        ders = [d for d in members[c] if nonzero[d, a:b].any()]
        instr = index.instructions(ders, a, b)
        summary = (
            f"Connection point {cp_id} is de-energised {_when(case, a, b)}, yet {_who(case, instr)} instruct "
            f"DER(s) {', '.join(case.ders[d].der_id for d in ders)} there; none of them can be followed."
        )
        out.append(
            Conflict(
                conflict_id=f"{ConflictKind.TIER_BYPASSING_DEENERGISED.value}:{cp_id}:{case.grid.interval_start(a).isoformat()}",
                kind=ConflictKind.TIER_BYPASSING_DEENERGISED,
                tdi_id=case.cp_tdi[c],
                der_ids=tuple(case.ders[d].der_id for d in ders),
                connection_point_id=cp_id,
                intervals=tuple(case.grid.interval(t) for t in range(a, b)),
                instruction_ids=_ids(case, instr),
                commitment_ids=(),
                party_ids=_parties(case, instr),
                figures={"n_instructions": float(len(instr)), "limit_kw": 0.0},
                series={"instructed_p_kw": tuple(cp_p[c, a:b].tolist())},
                summary=summary,
            )
        )
    return out


def _der_envelope(
    case: ConflictCase,
    index: _CellIndex,
    p: FloatArray,
    p_tso: FloatArray,
    reduction: FloatArray,
    live: np.ndarray,
    tol_kw: float,
) -> list[Conflict]:
    env_lo = -case.env_import_kw - reduction
    excess = np.maximum(p - case.env_export_kw, 0.0) + np.maximum(env_lo - p, 0.0)
    rows, starts, ends = mask_runs((excess > tol_kw) & live)
    out = []
    for d, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
        der = case.ders[d]
        instr = index.instructions([d], a, b)
        inst = p[d, a:b]
        limit = np.where(inst > 0, case.env_export_kw[d, a:b], env_lo[d, a:b])
        exc = excess[d, a:b]
        summary = (
            f"DER {der.der_id} is instructed beyond its operating envelope {_when(case, a, b)} by {_who(case, instr)}: "
            f"up to {format_kw(float(exc.max()))} beyond the envelope (TSO part up to "
            f"{format_kw(float(np.abs(p_tso[d, a:b]).max()))})."
        )
        out.append(
            Conflict(
                conflict_id=f"{ConflictKind.TIER_BYPASSING_ENVELOPE.value}:{der.der_id}:{case.grid.interval_start(a).isoformat()}",
                kind=ConflictKind.TIER_BYPASSING_ENVELOPE,
                tdi_id=der.tdi_id,
                der_ids=(der.der_id,),
                connection_point_id=der.connection_point_id,
                intervals=tuple(case.grid.interval(t) for t in range(a, b)),
                instruction_ids=_ids(case, instr),
                commitment_ids=(),
                party_ids=_parties(case, instr),
                figures={"max_excess_kw": float(exc.max()), "n_instructions": float(len(instr))},
                series={
                    "instructed_p_kw": tuple(inst.tolist()),
                    "envelope_p_kw": tuple(limit.tolist()),
                    "excess_kw": tuple(exc.tolist()),
                    "tso_p_kw": tuple(p_tso[d, a:b].tolist()),
                },
                summary=summary,
            )
        )
    return out


def _cp_envelope(
    case: ConflictCase,
    index: _CellIndex,
    p: FloatArray,
    p_tso: FloatArray,
    reduction: FloatArray,
    nonzero: FloatArray,
    tol_kw: float,
) -> list[Conflict]:
    n_cp, n_t = case.n_cp, case.n_intervals
    cp_p = np.zeros((n_cp, n_t))
    np.add.at(cp_p, case.der_cp, p)
    cp_tso = np.zeros((n_cp, n_t))
    np.add.at(cp_tso, case.der_cp, p_tso)
    cp_reduction = np.zeros((n_cp, n_t))
    np.add.at(cp_reduction, case.der_cp, reduction)
    cp_lo = -case.cp_env_import_kw - cp_reduction
    excess = np.maximum(cp_p - case.cp_env_export_kw, 0.0) + np.maximum(cp_lo - cp_p, 0.0)
    rows, starts, ends = mask_runs((excess > tol_kw) & case.energised)
    members = _cp_members(case)
    out = []
    for c, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
        cp_id = case.cp_ids[c]
        ders = [d for d in members[c] if nonzero[d, a:b].any()]
        instr = index.instructions(ders, a, b)
        inst = cp_p[c, a:b]
        limit = np.where(inst > 0, case.cp_env_export_kw[c, a:b], cp_lo[c, a:b])
        exc = excess[c, a:b]
        summary = (
            f"The DERs at connection point {cp_id} are instructed beyond its operating envelope {_when(case, a, b)} "
            f"by {_who(case, instr)}: up to {format_kw(float(exc.max()))} beyond the envelope."
        )
        out.append(
            Conflict(
                conflict_id=f"{ConflictKind.TIER_BYPASSING_ENVELOPE.value}:cp:{cp_id}:{case.grid.interval_start(a).isoformat()}",
                kind=ConflictKind.TIER_BYPASSING_ENVELOPE,
                tdi_id=case.cp_tdi[c],
                der_ids=tuple(case.ders[d].der_id for d in ders),
                connection_point_id=cp_id,
                intervals=tuple(case.grid.interval(t) for t in range(a, b)),
                instruction_ids=_ids(case, instr),
                commitment_ids=(),
                party_ids=_parties(case, instr),
                figures={"max_excess_kw": float(exc.max()), "n_instructions": float(len(instr))},
                series={
                    "instructed_p_kw": tuple(inst.tolist()),
                    "envelope_p_kw": tuple(limit.tolist()),
                    "excess_kw": tuple(exc.tolist()),
                    "tso_p_kw": tuple(cp_tso[c, a:b].tolist()),
                },
                summary=summary,
            )
        )
    return out


def commitment_groups(case: ConflictCase) -> IntArray:
    """Group index per commitment cell: one group per DER, direction and interval."""
    row = case.com_cell_der * 2 + case.com_cell_export.astype(np.int64)
    return row * case.n_intervals + case.com_cell_t


def commitment_capability_kw(case: ConflictCase) -> FloatArray:
    """The DER's capability in the commitment's direction, per commitment cell."""
    return np.where(case.com_cell_export, case.p_export_kw[case.com_cell_der], case.p_import_kw[case.com_cell_der])


def commitment_precedence_by_time(case: ConflictCase) -> IntArray:
    """Precedence per commitment cell: earlier ``committed_at`` first, then commitment id."""
    keys = sorted(
        range(len(case.commitments)),
        key=lambda k: (case.commitments[k].committed_at, case.commitments[k].commitment_id),
    )
    rank = np.empty(len(case.commitments), dtype=np.int64)
    rank[np.array(keys, dtype=np.int64)] = np.arange(len(keys))
    return rank[case.com_cell_com] if case.com_cell_com.size else np.zeros(0, dtype=np.int64)


def _double_counting(case: ConflictCase) -> list[Conflict]:
    if case.com_cell_com.size == 0:
        return []
    n_t = case.n_intervals
    result: DoubleCountResult = double_counting(
        commitment_groups(case), case.com_cell_kw, commitment_precedence_by_time(case), commitment_capability_kw(case)
    )
    row = case.com_cell_der * 2 + case.com_cell_export.astype(np.int64)
    n_rows = case.n_der * 2
    overlap = np.zeros((n_rows, n_t))
    np.add.at(overlap, (row, case.com_cell_t), result.overlap_kw)
    committed = np.zeros((n_rows, n_t))
    np.add.at(committed, (row, case.com_cell_t), case.com_cell_kw)
    rows, starts, ends = mask_runs(overlap > 0)
    out = []
    for r, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
        d, export = divmod(r, 2)
        der = case.ders[d]
        direction = "export" if export else "import"
        cap = der.p_export_kw if export else der.p_import_kw
        sel = (row == r) & (case.com_cell_t >= a) & (case.com_cell_t < b)
        coms = sorted({int(k) for k in case.com_cell_com[sel]})
        psel = sel[result.pair_cell]
        pairs = tuple(
            DoubleCountedPair(
                interval_start=case.grid.interval_start(int(case.com_cell_t[j])),
                commitment_id=case.commitments[int(case.com_cell_com[j])].commitment_id,
                against_commitment_id=case.commitments[int(case.com_cell_com[i])].commitment_id,
                kw=float(kw),
            )
            for j, i, kw in zip(
                result.pair_cell[psel].tolist(),
                result.pair_against_cell[psel].tolist(),
                result.pair_kw[psel].tolist(),
                strict=True,
            )
        )
        parties: dict[str, None] = {}
        for k in coms:
            parties[case.commitments[k].buyer_party_id] = None
            parties[case.commitments[k].provider_party_id] = None
        holders = ", ".join(
            f"{com.commitment_id} ({com.holder_id}, {format_kw(com.committed_kw)})"
            for com in (case.commitments[k] for k in coms)
        )
        summary = (
            f"DER {der.der_id} has {format_kw(float(committed[r, a:b].max()))} of {direction} committed "
            f"{_when(case, a, b)} "
            f"({holders}) against a capability of {format_kw(cap)}: up to {format_kw(float(overlap[r, a:b].max()))} "
            f"are the same kW counted twice and must not be paid twice."
        )
        out.append(
            Conflict(
                conflict_id=f"{ConflictKind.DOUBLE_COUNTING.value}:{der.der_id}:{direction}:{case.grid.interval_start(a).isoformat()}",
                kind=ConflictKind.DOUBLE_COUNTING,
                tdi_id=der.tdi_id,
                der_ids=(der.der_id,),
                connection_point_id=der.connection_point_id,
                intervals=tuple(case.grid.interval(t) for t in range(a, b)),
                instruction_ids=(),
                commitment_ids=tuple(case.commitments[k].commitment_id for k in coms),
                party_ids=tuple(parties),
                figures={"capability_kw": cap, "max_double_counted_kw": float(overlap[r, a:b].max())},
                series={
                    "committed_kw": tuple(committed[r, a:b].tolist()),
                    "double_counted_kw": tuple(overlap[r, a:b].tolist()),
                },
                summary=summary,
                pairs=pairs,
            )
        )
    return out
