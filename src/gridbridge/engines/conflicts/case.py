"""A conflict case: the domain inputs of one check, validated and laid out as arrays on an interval grid.

Detection and resolution both work on a ``ConflictCase``. Each instruction becomes one *cell* per interval it
covers (``cell_instr``, ``cell_der``, ``cell_t``, ``cell_p_kw``); each commitment likewise becomes commitment
cells. Envelopes and outages become dense ``(n, n_intervals)`` limits, where several envelopes on one
interval combine to the most restrictive one and an envelope or outage touching part of an interval counts
for the whole interval. Cells of reductions (``ConflictInstruction.reduces_export``) are marked
(``cell_reduces``): a reduction lowers export but never counts as import, so the import side of the bounds
widens by the reductions in force (``reduction_kw``). Cells of an instruction where a later revision supersedes
it (``ConflictInstruction.superseded``) are not in force (``cell_in_force`` false): their setpoint is 0, so they
count for nothing, and resolution leaves them out of the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from gridbridge.domain.conflicts import (
    UNKNOWN_REFERENCE,
    Commitment,
    ConflictInstruction,
    ConnectionPointOutage,
    DerCapability,
    Direction,
    EnvelopeLimit,
    EnvelopeTarget,
    IntervalGrid,
    unique_ids,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.conflicts.kernels import BoolArray, FloatArray, IntArray


@dataclass(frozen=True, eq=False)
class ConflictCase:
    """Validated inputs of one conflict check and their array form. Build it with ``build_case``."""

    grid: IntervalGrid
    ders: tuple[DerCapability, ...]
    instructions: tuple[ConflictInstruction, ...]
    commitments: tuple[Commitment, ...]
    der_index: Mapping[str, int]
    instruction_index: Mapping[str, int]
    cp_ids: tuple[str, ...]
    cp_tdi: tuple[str, ...]
    # per DER (n_der,)
    p_export_kw: FloatArray
    p_import_kw: FloatArray
    der_cp: IntArray
    has_storage: BoolArray
    e_initial_kwh: FloatArray
    e_min_kwh: FloatArray
    e_max_kwh: FloatArray
    e_capacity_kwh: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray
    # per DER and interval (n_der, n_t); +inf where no envelope applies
    env_export_kw: FloatArray
    env_import_kw: FloatArray
    # per connection point and interval (n_cp, n_t)
    cp_env_export_kw: FloatArray
    cp_env_import_kw: FloatArray
    energised: BoolArray
    # instruction cells
    instr_der: IntArray
    instr_start: IntArray
    instr_end: IntArray
    cell_instr: IntArray
    cell_der: IntArray
    cell_t: IntArray
    cell_p_kw: FloatArray
    cell_reduces: BoolArray
    cell_in_force: BoolArray
    # commitment cells
    com_cell_com: IntArray
    com_cell_der: IntArray
    com_cell_t: IntArray
    com_cell_export: BoolArray
    com_cell_kw: FloatArray

    @property
    def n_der(self) -> int:
        """Number of DERs."""
        return len(self.ders)

    @property
    def n_intervals(self) -> int:
        """Number of intervals on the grid."""
        return self.grid.n_intervals

    @property
    def n_cp(self) -> int:
        """Number of connection points."""
        return len(self.cp_ids)

    def reduction_kw(self, cell_p_kw: FloatArray | None = None) -> FloatArray:
        """Return the ``(n_der, n_intervals)`` magnitude of the reductions in force (``cell_p_kw``: setpoints per
        cell, default the instructed ones). Zero where a DER has no reduction."""
        cell_p = self.cell_p_kw if cell_p_kw is None else cell_p_kw
        sel = self.cell_reduces
        flat = self.cell_der[sel] * self.n_intervals + self.cell_t[sel]
        total = np.bincount(flat, weights=np.maximum(-cell_p[sel], 0.0), minlength=self.n_der * self.n_intervals)
        return total.astype(np.float64, copy=False).reshape(self.n_der, self.n_intervals)

    def der_bounds_kw(self, reduction_kw: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
        """Return ``(lo, hi)`` per DER and interval: the most restrictive of capability, envelope and outage.

        ``lo`` is minus the import limit and ``hi`` the export limit, both 0 while the DER's connection point is
        de-energised; ``lo`` then widens by the DER's reductions (``reduction_kw``, default those instructed: a
        reduction lowers export and never makes the DER import). ``lo <= 0 <= hi`` always holds.
        """
        reduction = self.reduction_kw() if reduction_kw is None else reduction_kw
        hi = np.minimum(self.p_export_kw[:, None], self.env_export_kw)
        lo = -np.minimum(self.p_import_kw[:, None], self.env_import_kw)
        live = self.energised[self.der_cp]
        return np.where(live, lo, 0.0) - reduction, np.where(live, hi, 0.0)

    def cp_bounds_kw(self, reduction_kw: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
        """Return ``(lo, hi)`` per connection point and interval for the sum of its DERs (0 when de-energised);
        ``lo`` widens by the reductions of the point's DERs (see ``der_bounds_kw``)."""
        reduction = self.reduction_kw() if reduction_kw is None else reduction_kw
        cp_reduction = np.zeros((self.n_cp, self.n_intervals))
        np.add.at(cp_reduction, self.der_cp, reduction)
        hi = np.where(self.energised, self.cp_env_export_kw, 0.0)
        lo = np.where(self.energised, -self.cp_env_import_kw, 0.0) - cp_reduction
        return lo, hi


def _cells(start: IntArray, end: IntArray) -> tuple[IntArray, IntArray]:
    """Expand half-open index spans into (owner, t) cells."""
    lengths = end - start
    owner = np.repeat(np.arange(start.size, dtype=np.int64), lengths)
    offsets = np.arange(owner.size, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, start[owner] + offsets


def build_case(
    grid: IntervalGrid,
    ders: Sequence[DerCapability],
    instructions: Sequence[ConflictInstruction],
    *,
    envelopes: Sequence[EnvelopeLimit] = (),
    outages: Sequence[ConnectionPointOutage] = (),
    commitments: Sequence[Commitment] = (),
) -> ConflictCase:
    """Validate the inputs of a conflict check and lay them out on ``grid``.

    Raises ``ValidationFailed`` naming the field when ids repeat, an item refers to an unknown DER or
    connection point, a connection point spans two T-D interfaces, or an instruction or commitment does not
    start and end on interval boundaries inside the horizon.
    """
    ders_t = tuple(ders)
    instr_t = tuple(instructions)
    com_t = tuple(commitments)
    unique_ids((d.der_id for d in ders_t), "der_id")
    unique_ids((i.instruction_id for i in instr_t), "instruction_id")
    unique_ids((c.commitment_id for c in com_t), "commitment_id")
    n_t = grid.n_intervals
    der_index = {d.der_id: k for k, d in enumerate(ders_t)}
    cp_index: dict[str, int] = {}
    cp_tdi: list[str] = []
    der_cp = np.empty(len(ders_t), dtype=np.int64)
    for k, d in enumerate(ders_t):
        c = cp_index.setdefault(d.connection_point_id, len(cp_index))
        if c == len(cp_tdi):
            cp_tdi.append(d.tdi_id)
        elif cp_tdi[c] != d.tdi_id:
            raise ValidationFailed(
                f"connection point {d.connection_point_id} is under T-D interfaces {cp_tdi[c]} and {d.tdi_id}",
                field=f"ders[{k}].tdi_id",
            )
        der_cp[k] = c
    n, n_cp = len(ders_t), len(cp_index)

    storage = [d.storage for d in ders_t]
    has_storage = np.array([s is not None for s in storage], dtype=np.bool_)
    e0 = np.array([s.e_initial_kwh if s else 0.0 for s in storage])
    emin = np.array([s.e_min_kwh if s else 0.0 for s in storage])
    emax = np.array([s.e_max_kwh if s else 0.0 for s in storage])
    ecap = np.array([s.e_kwh if s else 0.0 for s in storage])
    eta_c = np.array([s.eta_charge if s else 1.0 for s in storage])
    eta_d = np.array([s.eta_discharge if s else 1.0 for s in storage])

    env_exp = np.full((n, n_t), np.inf)
    env_imp = np.full((n, n_t), np.inf)
    cp_exp = np.full((n_cp, n_t), np.inf)
    cp_imp = np.full((n_cp, n_t), np.inf)
    for k, env in enumerate(envelopes):
        span = grid.overlapping(env.start, env.end)
        if env.target is EnvelopeTarget.DER:
            if env.target_id not in der_index:
                raise ValidationFailed(
                    f"envelope for unknown DER {env.target_id}",
                    field=f"envelopes[{k}].target_id",
                    code=UNKNOWN_REFERENCE,
                )
            row, exp_arr, imp_arr = der_index[env.target_id], env_exp, env_imp
        else:
            if env.target_id not in cp_index:
                raise ValidationFailed(
                    f"envelope for unknown connection point {env.target_id}",
                    field=f"envelopes[{k}].target_id",
                    code=UNKNOWN_REFERENCE,
                )
            row, exp_arr, imp_arr = cp_index[env.target_id], cp_exp, cp_imp
        if len(span):
            sl = slice(span.start, span.stop)
            exp_arr[row, sl] = np.minimum(exp_arr[row, sl], env.p_export_kw)
            imp_arr[row, sl] = np.minimum(imp_arr[row, sl], env.p_import_kw)
    energised = np.ones((n_cp, n_t), dtype=np.bool_)
    for k, out in enumerate(outages):
        if out.connection_point_id not in cp_index:
            raise ValidationFailed(
                f"outage of unknown connection point {out.connection_point_id}",
                field=f"outages[{k}].connection_point_id",
                code=UNKNOWN_REFERENCE,
            )
        span = grid.overlapping(out.start, out.end)
        energised[cp_index[out.connection_point_id], span.start : span.stop] = False

    m = len(instr_t)
    instr_der = np.empty(m, dtype=np.int64)
    instr_start = np.empty(m, dtype=np.int64)
    instr_end = np.empty(m, dtype=np.int64)
    instr_p = np.empty(m)
    instr_reduces = np.array([ins.reduces_export for ins in instr_t], dtype=np.bool_)
    for k, ins in enumerate(instr_t):
        if ins.der_id not in der_index:
            raise ValidationFailed(
                f"instruction {ins.instruction_id} is for unknown DER {ins.der_id}",
                field=f"instructions[{k}].der_id",
                code=UNKNOWN_REFERENCE,
            )
        instr_der[k] = der_index[ins.der_id]
        instr_start[k] = grid.boundary(ins.start, f"instructions[{k}].start")
        instr_end[k] = grid.boundary(ins.end, f"instructions[{k}].end")
        instr_p[k] = ins.p_kw
    cell_instr, cell_t = _cells(instr_start, instr_end)
    cell_in_force = np.ones(cell_instr.size, dtype=np.bool_)
    offsets = np.concatenate(([0], np.cumsum(instr_end - instr_start)))
    for k, ins in enumerate(instr_t):
        for j, (a, b) in enumerate(ins.superseded):
            first = grid.boundary(a, f"instructions[{k}].superseded[{j}].start")
            last = grid.boundary(b, f"instructions[{k}].superseded[{j}].end")
            lo, hi = offsets[k] + first - instr_start[k], offsets[k] + last - instr_start[k]
            cell_in_force[lo:hi] = False

    q = len(com_t)
    com_der = np.empty(q, dtype=np.int64)
    com_start = np.empty(q, dtype=np.int64)
    com_end = np.empty(q, dtype=np.int64)
    com_kw = np.empty(q)
    com_export = np.empty(q, dtype=np.bool_)
    for k, com in enumerate(com_t):
        if com.der_id not in der_index:
            raise ValidationFailed(
                f"commitment {com.commitment_id} is for unknown DER {com.der_id}",
                field=f"commitments[{k}].der_id",
                code=UNKNOWN_REFERENCE,
            )
        com_der[k] = der_index[com.der_id]
        com_start[k] = grid.boundary(com.start, f"commitments[{k}].start")
        com_end[k] = grid.boundary(com.end, f"commitments[{k}].end")
        com_kw[k] = com.committed_kw
        com_export[k] = com.direction is Direction.EXPORT
    com_cell, com_cell_t = _cells(com_start, com_end)

    return ConflictCase(
        grid=grid,
        ders=ders_t,
        instructions=instr_t,
        commitments=com_t,
        der_index=MappingProxyType(der_index),
        instruction_index=MappingProxyType({i.instruction_id: k for k, i in enumerate(instr_t)}),
        cp_ids=tuple(cp_index),
        cp_tdi=tuple(cp_tdi),
        p_export_kw=np.array([d.p_export_kw for d in ders_t], dtype=np.float64),
        p_import_kw=np.array([d.p_import_kw for d in ders_t], dtype=np.float64),
        der_cp=der_cp,
        has_storage=has_storage,
        e_initial_kwh=e0,
        e_min_kwh=emin,
        e_max_kwh=emax,
        e_capacity_kwh=ecap,
        eta_charge=eta_c,
        eta_discharge=eta_d,
        env_export_kw=env_exp,
        env_import_kw=env_imp,
        cp_env_export_kw=cp_exp,
        cp_env_import_kw=cp_imp,
        energised=energised,
        instr_der=instr_der,
        instr_start=instr_start,
        instr_end=instr_end,
        cell_instr=cell_instr,
        cell_der=instr_der[cell_instr],
        cell_t=cell_t,
        cell_p_kw=np.where(cell_in_force, instr_p[cell_instr], 0.0),
        cell_reduces=instr_reduces[cell_instr],
        cell_in_force=cell_in_force,
        com_cell_com=com_cell,
        com_cell_der=com_der[com_cell],
        com_cell_t=com_cell_t,
        com_cell_export=com_export[com_cell],
        com_cell_kw=com_kw[com_cell],
    )
