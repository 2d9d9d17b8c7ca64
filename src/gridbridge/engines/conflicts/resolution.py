"""Conflict resolution: one recorded ``Resolution`` per conflict and a jointly feasible instruction set.

Algorithm (``docs/conflicts.md`` has the worked examples):

1. Rank every instruction by its T-D interface's policy: service category level first (``ServicePriorityList``),
   then ``issued_at`` (earlier first), then instruction id. Rank 0 is the highest priority.
2. The *cluster* is every connection point touched by a capability, energy, envelope or outage conflict.
   At a cluster connection point that has a storage DER with instructions, every instruction cell is free to
   change (storage couples the intervals). Elsewhere only the cells of the conflicting (connection point,
   interval) slices are free; everything else is kept as it is (it is feasible on its own).
3. Free cells are settled level by level, highest priority first, and within a level interval by interval
   in time order. Each level may use only what the levels above it leave: the instructions of the top k
   levels are feasible on their own, for every k (a higher-priority instruction never relies on a lower-
   priority one being there). For each interval the limits are per DER a power range, the intersection of
      * capability and envelope (most restrictive limit wins; a de-energised connection point allows 0 kW),
      * the storage range that keeps the state of energy in the *backward window* of the levels already
        settled (the smallest and largest stored energy from which those levels stay feasible to the end),
   and per connection point a range for the sum of its DERs. A DER's level net is brought into its range by
   reducing its cells in the violating direction, lowest priority first; the connection point's sum is then
   brought into its range the same way, with each DER's reduction capped so that it stays in its own range.
   Every range contains 0, so this always succeeds, and one pass suffices.
4. Cells only ever move towards 0 and never change sign. The result is checked again; a violation left
   over would be a defect and raises.

A reduction (``ConflictInstruction.reduces_export``, a curtailment for a distribution constraint) is never
changed: it only lowers export, the import side of every range widens by it, and stored energy follows
``energy_power_kw`` (it lowers discharge, never charges), so it is feasible on its own and the other
instructions settle around it.

The rule of a conflict (``service_priority``, ``most_restrictive_limit``, ``amendment_request``) does not change
the feasible set computed above; it decides how the outcome is communicated: as final, with the binding
limit named, or as a provisional setpoint with an amendment request and a deadline to the lower-priority
issuer. Double counting is settled separately: commitments are stacked in priority order and only the firm
kW are payable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from gridbridge.domain.conflicts import (
    CONFLICTS_INCOMPLETE,
    DEFAULT_POLICY,
    AmendmentRequest,
    Conflict,
    ConflictKind,
    Outcome,
    OutcomeAction,
    Resolution,
    ResolutionPolicy,
    ResolutionRule,
    Segment,
    SubjectType,
    format_kw,
    format_time,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.conflicts.case import ConflictCase
from gridbridge.engines.conflicts.detection import commitment_capability_kw, commitment_groups, detect_conflicts
from gridbridge.engines.conflicts.double_counting import double_counting
from gridbridge.engines.conflicts.kernels import (
    TOL_KW,
    TOL_KWH,
    BoolArray,
    FloatArray,
    IntArray,
    energy_delta_kwh,
    energy_power_kw,
    net_power_kw,
    power_for_energy_delta_kw,
    segmented_sum_before,
    soe_trajectory_kwh,
)

POWER_KINDS = frozenset(
    {
        ConflictKind.HIDDEN_COUPLING_CAPABILITY,
        ConflictKind.HIDDEN_COUPLING_ENERGY,
        ConflictKind.TIER_BYPASSING_ENVELOPE,
        ConflictKind.TIER_BYPASSING_DEENERGISED,
    }
)


@dataclass(frozen=True)
class AdjustedSchedule:
    """The setpoints that stand for one instruction (or the payable kW of one commitment) after resolution."""

    subject_type: SubjectType
    subject_id: str
    original_p_kw: float
    schedule: tuple[Segment, ...]

    @property
    def changed(self) -> bool:
        """Whether any segment differs from the original setpoint."""
        return any(abs(s.p_kw - self.original_p_kw) > TOL_KW for s in self.schedule)


@dataclass(frozen=True, eq=False)
class ResolutionResult:
    """Resolutions (one per conflict, in conflict order), the adjusted instructions and payable commitments.

    ``instructions`` and ``commitments`` cover every item of the case, in case order; ``cell_p_kw`` and
    ``commitment_firm_kw`` are the same values per cell, aligned with the case's cells.
    """

    resolutions: tuple[Resolution, ...]
    instructions: tuple[AdjustedSchedule, ...]
    commitments: tuple[AdjustedSchedule, ...]
    amendment_requests: tuple[AmendmentRequest, ...]
    cell_p_kw: FloatArray
    commitment_firm_kw: FloatArray


# ---------------------------------------------------------------------------------------------------------
# Array core
# ---------------------------------------------------------------------------------------------------------


def _reduce_to_range(group: IntArray, p: FloatArray, lo: FloatArray, hi: FloatArray, n_groups: int) -> FloatArray:
    """Bring each group's sum into ``[lo, hi]`` (which contains 0) by reducing cells in the violating direction.

    Cells are sorted by group and, within a group, lowest priority first.
    """
    net = np.bincount(group, weights=p, minlength=n_groups)
    ex_hi = np.maximum(net - hi, 0.0)[group]
    ex_lo = np.maximum(lo - net, 0.0)[group]
    pos = np.maximum(p, 0.0)
    neg = np.maximum(-p, 0.0)
    red_pos = np.clip(ex_hi - segmented_sum_before(pos, group), 0.0, pos)
    red_neg = np.clip(ex_lo - segmented_sum_before(neg, group), 0.0, neg)
    return p - red_pos + red_neg


def _reduce_cp(
    der: IntArray,
    p: FloatArray,
    rank: IntArray,
    der_lo: FloatArray,
    der_hi: FloatArray,
    der_cp: IntArray,
    cp_lo: FloatArray,
    cp_hi: FloatArray,
    n_der: int,
    n_cp: int,
) -> FloatArray:
    """Bring each connection point's sum into ``[cp_lo, cp_hi]`` keeping every DER within ``[der_lo, der_hi]``."""
    x = np.bincount(der, weights=p, minlength=n_der)
    total = np.bincount(der_cp, weights=x, minlength=n_cp)
    ex_hi = np.maximum(total - np.maximum(cp_hi, 0.0), 0.0)
    ex_lo = np.maximum(np.minimum(cp_lo, 0.0) - total, 0.0)
    if not (ex_hi.any() or ex_lo.any()):
        return p
    pos = np.maximum(p, 0.0)
    neg = np.maximum(-p, 0.0)
    room_pos = np.maximum(np.minimum(np.bincount(der, weights=pos, minlength=n_der), x - der_lo), 0.0)
    room_neg = np.maximum(np.minimum(np.bincount(der, weights=neg, minlength=n_der), der_hi - x), 0.0)
    cap_pos = np.clip(room_pos[der] - segmented_sum_before(pos, der), 0.0, pos)
    cap_neg = np.clip(room_neg[der] - segmented_sum_before(neg, der), 0.0, neg)
    cell_cp = der_cp[der]
    order = np.lexsort((-rank, cell_cp))
    g = cell_cp[order]
    red_pos = np.zeros_like(p)
    red_neg = np.zeros_like(p)
    red_pos[order] = np.clip(ex_hi[g] - segmented_sum_before(cap_pos[order], g), 0.0, cap_pos[order])
    red_neg[order] = np.clip(ex_lo[g] - segmented_sum_before(cap_neg[order], g), 0.0, cap_neg[order])
    return p - red_pos + red_neg


@dataclass(frozen=True)
class SweepInputs:
    """Arrays of one cluster for ``settle_levels`` (local DER and connection-point indexes)."""

    der_lo: FloatArray
    der_hi: FloatArray
    der_cp: IntArray
    cp_lo: FloatArray
    cp_hi: FloatArray
    has_storage: BoolArray
    e_initial_kwh: FloatArray
    e_min_kwh: FloatArray
    e_max_kwh: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray
    dt_h: float
    fixed_net_kw: FloatArray
    reduction_kw: FloatArray
    """Reductions in force per DER and interval (magnitudes): fixed, part of ``fixed_net_kw``."""


def settle_levels(
    inputs: SweepInputs, der: IntArray, t: IntArray, p: FloatArray, level: IntArray, rank: IntArray
) -> FloatArray:
    """Return new setpoints for the free cells ``(der, t, p)`` so that, with the fixed net, all limits hold.

    Levels are settled highest first (level 0), intervals in time order, vectorised over DERs and
    connection points (see the module docstring). Cells move towards 0 only.
    """
    n, n_t = inputs.der_lo.shape
    n_cp = inputs.cp_lo.shape[0]
    storage = inputs.has_storage
    any_storage = bool(storage.any())
    eta_c, eta_d, dt_h = inputs.eta_charge, inputs.eta_discharge, inputs.dt_h
    red = inputs.reduction_kw
    held = inputs.fixed_net_kw.copy()
    out = p.astype(np.float64).copy()
    for lev in np.unique(level).tolist():
        idx = np.flatnonzero(level == lev)
        order = idx[np.lexsort((-rank[idx], der[idx], t[idx]))]
        bounds = np.searchsorted(t[order], np.arange(n_t + 1))
        held_cp = np.zeros((n_cp, n_t))
        np.add.at(held_cp, inputs.der_cp, held)
        if any_storage:
            cum = np.cumsum(energy_delta_kwh(energy_power_kw(held, red), eta_c[:, None], eta_d[:, None], dt_h), axis=1)
            low_win = inputs.e_min_kwh[:, None] + cum - np.minimum.accumulate(cum[:, ::-1], axis=1)[:, ::-1]
            high_win = inputs.e_max_kwh[:, None] + cum - np.maximum.accumulate(cum[:, ::-1], axis=1)[:, ::-1]
            soe = inputs.e_initial_kwh.astype(np.float64).copy()
        for step in range(n_t):
            a, b = int(bounds[step]), int(bounds[step + 1])
            if a == b:
                if any_storage:
                    soe = soe + energy_delta_kwh(energy_power_kw(held[:, step], red[:, step]), eta_c, eta_d, dt_h)
                continue
            sel = order[a:b]
            d = der[sel]
            q_lo = inputs.der_lo[:, step]
            q_hi = inputs.der_hi[:, step]
            if any_storage:
                e_q_hi = power_for_energy_delta_kw(low_win[:, step] - soe, eta_c, eta_d, dt_h)
                e_q_lo = power_for_energy_delta_kw(high_win[:, step] - soe, eta_c, eta_d, dt_h)
                # in net power: a required charge, or any allowed charge, comes on top of the reductions
                r = red[:, step]
                e_q_hi = np.where(e_q_hi >= 0, e_q_hi, e_q_hi - r)
                e_q_lo = np.where(e_q_lo <= 0, e_q_lo - r, e_q_lo)
                q_lo = np.where(storage, np.maximum(q_lo, e_q_lo), q_lo)
                q_hi = np.where(storage, np.minimum(q_hi, e_q_hi), q_hi)
            r_lo = np.minimum(q_lo - held[:, step], 0.0)
            r_hi = np.maximum(q_hi - held[:, step], 0.0)
            pc = _reduce_to_range(d, out[sel], r_lo, r_hi, n)
            pc = _reduce_cp(
                d,
                pc,
                rank[sel],
                r_lo,
                r_hi,
                inputs.der_cp,
                inputs.cp_lo[:, step] - held_cp[:, step],
                inputs.cp_hi[:, step] - held_cp[:, step],
                n,
                n_cp,
            )
            out[sel] = pc
            if any_storage:
                x = np.bincount(d, weights=pc, minlength=n)
                soe = soe + energy_delta_kwh(energy_power_kw(held[:, step] + x, red[:, step]), eta_c, eta_d, dt_h)
        held = held + net_power_kw(der[idx], t[idx], out[idx], n, n_t)
    return out


# ---------------------------------------------------------------------------------------------------------
# Ranking and the cluster
# ---------------------------------------------------------------------------------------------------------


def _policies(
    case: ConflictCase, policies: Mapping[str, ResolutionPolicy], default_policy: ResolutionPolicy
) -> list[ResolutionPolicy]:
    for tdi, pol in policies.items():
        if not isinstance(pol, ResolutionPolicy):
            raise ValidationFailed(f"policy for {tdi} is not a ResolutionPolicy", field=f"policies[{tdi}]")
    return [policies.get(d.tdi_id, default_policy) for d in case.ders]


def instruction_ranks(case: ConflictCase, der_policy: Sequence[ResolutionPolicy]) -> tuple[IntArray, IntArray]:
    """Return ``(level, rank)`` per instruction: category level under its interface's policy, and a total order."""
    levels = [der_policy[case.der_index[ins.der_id]].priorities.level(ins.category) for ins in case.instructions]
    keys = sorted(
        range(len(case.instructions)),
        key=lambda k: (levels[k], case.instructions[k].issued_at, case.instructions[k].instruction_id),
    )
    rank = np.empty(len(keys), dtype=np.int64)
    rank[np.array(keys, dtype=np.int64)] = np.arange(len(keys))
    return np.array(levels, dtype=np.int64), rank


def _interval_index(case: ConflictCase, start: datetime) -> int:
    return int((start - case.grid.start) // case.grid.step)


def _settle(case: ConflictCase, conflicts: Sequence[Conflict], level: IntArray, rank: IntArray) -> FloatArray:
    """Return adjusted setpoints per instruction cell (unchanged outside the cluster)."""
    cell_p = case.cell_p_kw.copy()
    power = [c for c in conflicts if c.kind in POWER_KINDS]
    if not power or cell_p.size == 0:
        return cell_p
    # an instruction to a de-energised connection point cannot be followed, whatever the others net to (a
    # reduction there is moot and stays)
    if any(c.kind is ConflictKind.TIER_BYPASSING_DEENERGISED for c in power):
        cell_p[~case.energised[case.der_cp[case.cell_der], case.cell_t] & ~case.cell_reduces] = 0.0
    cp_index = {cp: k for k, cp in enumerate(case.cp_ids)}
    n_t = case.n_intervals
    in_cluster = np.zeros(case.n_cp, dtype=np.bool_)
    slice_mask = np.zeros((case.n_cp, n_t), dtype=np.bool_)
    for c in power:
        if c.connection_point_id is None or c.connection_point_id not in cp_index:
            raise ValidationFailed(
                f"conflict {c.conflict_id} names unknown connection point {c.connection_point_id}",
                field="conflicts",
            )
        k = cp_index[c.connection_point_id]
        in_cluster[k] = True
        if c.kind is not ConflictKind.HIDDEN_COUPLING_ENERGY:
            for start, _ in c.intervals:
                slice_mask[k, _interval_index(case, start)] = True
    active_storage = np.zeros(case.n_der, dtype=np.bool_)
    active_storage[case.cell_der[cell_p != 0]] = True
    active_storage &= case.has_storage
    whole = np.zeros(case.n_cp, dtype=np.bool_)
    np.logical_or.at(whole, case.der_cp, active_storage)
    whole &= in_cluster
    cell_cp = case.der_cp[case.cell_der]
    free = in_cluster[cell_cp] & (whole[cell_cp] | slice_mask[cell_cp, case.cell_t]) & ~case.cell_reduces
    if not free.any():
        return cell_p

    ders = np.flatnonzero(in_cluster[case.der_cp])
    local = np.full(case.n_der, -1, dtype=np.int64)
    local[ders] = np.arange(ders.size)
    cps, local_cp = np.unique(case.der_cp[ders], return_inverse=True)
    reduction = case.reduction_kw(cell_p)
    lo, hi = case.der_bounds_kw(reduction)
    cp_lo, cp_hi = case.cp_bounds_kw(reduction)
    fixed = ~free & in_cluster[cell_cp]
    fixed_net = net_power_kw(local[case.cell_der[fixed]], case.cell_t[fixed], cell_p[fixed], ders.size, n_t)
    inputs = SweepInputs(
        der_lo=lo[ders],
        der_hi=hi[ders],
        der_cp=local_cp.astype(np.int64),
        cp_lo=cp_lo[cps],
        cp_hi=cp_hi[cps],
        has_storage=case.has_storage[ders],
        e_initial_kwh=case.e_initial_kwh[ders],
        e_min_kwh=case.e_min_kwh[ders],
        e_max_kwh=case.e_max_kwh[ders],
        eta_charge=case.eta_charge[ders],
        eta_discharge=case.eta_discharge[ders],
        dt_h=case.grid.dt_h,
        fixed_net_kw=fixed_net,
        reduction_kw=reduction[ders],
    )
    ins = case.cell_instr[free]
    cell_p[free] = settle_levels(
        inputs, local[case.cell_der[free]], case.cell_t[free], cell_p[free], level[ins], rank[ins]
    )
    return cell_p


def feasibility_violations(
    case: ConflictCase, cell_p_kw: FloatArray, *, tol_kw: float = TOL_KW, tol_kwh: float = TOL_KWH
) -> list[str]:
    """Return a description of every capability, envelope, outage or energy limit broken by ``cell_p_kw``."""
    n, n_t = case.n_der, case.n_intervals
    net = net_power_kw(case.cell_der, case.cell_t, cell_p_kw, n, n_t)
    reduction = case.reduction_kw(cell_p_kw)
    lo, hi = case.der_bounds_kw(reduction)
    problems = [
        f"DER {case.ders[d].der_id} interval {t}: {net[d, t]} kW outside [{lo[d, t]}, {hi[d, t]}]"
        for d, t in zip(*np.nonzero((net > hi + tol_kw) | (net < lo - tol_kw)), strict=True)
    ]
    cp_net = np.zeros((case.n_cp, n_t))
    np.add.at(cp_net, case.der_cp, net)
    cp_lo, cp_hi = case.cp_bounds_kw(reduction)
    problems += [
        f"connection point {case.cp_ids[c]} interval {t}: {cp_net[c, t]} kW outside [{cp_lo[c, t]}, {cp_hi[c, t]}]"
        for c, t in zip(*np.nonzero((cp_net > cp_hi + tol_kw) | (cp_net < cp_lo - tol_kw)), strict=True)
    ]
    rows = np.flatnonzero(case.has_storage)
    if rows.size:
        soe = soe_trajectory_kwh(
            energy_power_kw(net[rows], reduction[rows]),
            case.e_initial_kwh[rows],
            case.eta_charge[rows],
            case.eta_discharge[rows],
            case.grid.dt_h,
        )
        bad = (soe < case.e_min_kwh[rows][:, None] - tol_kwh) | (soe > case.e_max_kwh[rows][:, None] + tol_kwh)
        problems += [
            f"storage DER {case.ders[rows[r]].der_id} interval {t}: {soe[r, t]} kWh out of bounds"
            for r, t in zip(*np.nonzero(bad), strict=True)
        ]
    return problems


# ---------------------------------------------------------------------------------------------------------
# Outcomes and reasons
# ---------------------------------------------------------------------------------------------------------


def _segments(
    case: ConflictCase, t0: int, values: FloatArray, in_force: BoolArray | None = None
) -> tuple[Segment, ...]:
    """Runs of equal setpoints from interval ``t0``; cells not ``in_force`` (superseded) are left out."""
    live = np.ones(values.size, dtype=np.bool_) if in_force is None else in_force
    segs: list[Segment] = []
    run_start = 0
    for k in range(1, values.size + 1):
        if k == values.size or live[k] != live[run_start] or abs(values[k] - values[run_start]) > TOL_KW:
            value = float(values[run_start])
            if live[run_start]:
                segs.append(
                    Segment(
                        case.grid.interval_start(t0 + run_start),
                        case.grid.interval_start(t0 + k),
                        0.0 if abs(value) < TOL_KW else value,
                    )
                )
            run_start = k
    return tuple(segs)


def _describe(segs: Sequence[Segment]) -> str:
    return "; ".join(s.describe() for s in segs)


@dataclass(frozen=True)
class _Subject:
    """One instruction or commitment as a resolution sees it."""

    subject_type: SubjectType
    index: int
    subject_id: str
    der_id: str
    issuer: str
    recipient: str
    original: float
    t0: int
    after: FloatArray
    rank: int
    label: str
    in_force: BoolArray | None = None
    """Per cell: in force (not superseded); ``None``: everywhere."""

    def _moved(self) -> BoolArray:
        moved = np.abs(self.after - self.original) > TOL_KW
        return moved if self.in_force is None else moved & self.in_force

    @property
    def changed(self) -> bool:
        return bool(np.any(self._moved()))

    @property
    def cancelled(self) -> bool:
        zero = np.abs(self.after) <= TOL_KW
        return bool(np.all(zero if self.in_force is None else zero | ~self.in_force))

    def first_changed(self) -> int:
        return self.t0 + int(np.flatnonzero(self._moved())[0])

    def segments(self, case: ConflictCase) -> tuple[Segment, ...]:
        """The setpoints that stand, in force only."""
        return _segments(case, self.t0, self.after, self.in_force)


def _binding_limit(case: ConflictCase, conflict: Conflict) -> str:
    """The most restrictive limit at the worst interval of a power conflict, in words with its value."""
    if conflict.kind is ConflictKind.TIER_BYPASSING_DEENERGISED:
        return f"connection point {conflict.connection_point_id} de-energised: 0 kW"
    series = conflict.series.get("excess_kw")
    worst = int(np.argmax(series)) if series else 0
    t = _interval_index(case, conflict.intervals[worst][0])
    instructed = conflict.series.get("instructed_p_kw", (0.0,))[worst]
    export = instructed >= 0
    direction = "export" if export else "import"
    cp = case.cp_ids.index(conflict.connection_point_id) if conflict.connection_point_id in case.cp_ids else None
    limits: list[tuple[float, str]] = []
    if conflict.der_ids and not conflict.conflict_id.startswith(f"{ConflictKind.TIER_BYPASSING_ENVELOPE.value}:cp:"):
        d = case.der_index[conflict.der_ids[0]]
        limits.append(
            (float(case.p_export_kw[d] if export else case.p_import_kw[d]), f"DER {case.ders[d].der_id} capability")
        )
        env = case.env_export_kw[d, t] if export else case.env_import_kw[d, t]
        if np.isfinite(env):
            limits.append((float(env), f"DER {case.ders[d].der_id} operating envelope"))
    if cp is not None:
        env = case.cp_env_export_kw[cp, t] if export else case.cp_env_import_kw[cp, t]
        if np.isfinite(env):
            limits.append((float(env), f"connection point {case.cp_ids[cp]} operating envelope"))
    if not limits:
        return "none"
    value, label = min(limits)
    return f"{label}: {format_kw(value)} {direction} at {format_time(case.grid.interval_start(t))}"


def _rule_text(
    rule: ResolutionRule,
    policy: ResolutionPolicy,
    tdi: str,
    binding: str | None,
    subject: _Subject,
    others: Sequence[_Subject],
) -> str:
    higher = [o for o in others if o.rank < subject.rank]
    lower = [o for o in others if o.rank > subject.rank]
    order = " > ".join(c.value for c in policy.priorities.order)
    text = (
        f"Priorities at T-D interface {tdi}: {order}; within a category the earlier-issued item prevails. "
        f"This one is {subject.label}."
    )
    if higher:
        text += " Outranked by " + ", ".join(f"{o.subject_id} ({o.label})" for o in higher) + "."
    if lower:
        text += " Outranks " + ", ".join(f"{o.subject_id} ({o.label})" for o in lower) + "."
    if rule is ResolutionRule.MOST_RESTRICTIVE_LIMIT:
        text = (
            f"Rule most_restrictive_limit: the tightest applicable limit binds ({binding}); instructions beyond it "
            f"are reduced, lowest priority first. " + text
        )
    elif rule is ResolutionRule.SERVICE_PRIORITY:
        text = "Rule service_priority: the lower-priority item yields. " + text
    else:
        text = (
            "Rule amendment_request: the issuer of a lower-priority item that had to yield is asked to amend it; "
            "the provisional setpoint keeps the DER within all its limits. " + text
        )
    return text


def _outcome(
    case: ConflictCase,
    conflict: Conflict,
    subject: _Subject,
    others: Sequence[_Subject],
    rule: ResolutionRule,
    policy: ResolutionPolicy,
    binding: str | None,
    now: datetime,
    extra: bool,
) -> Outcome:
    segs = subject.segments(case)
    noun = "instruction" if subject.subject_type is SubjectType.INSTRUCTION else "commitment"
    head_item = f"{noun} {subject.subject_id} ({format_kw(subject.original)}, DER {subject.der_id})"
    deadline: datetime | None = None
    too_late = False
    if not subject.changed:
        action = OutcomeAction.KEPT
        head = f"Your {head_item} is kept in full."
    else:
        if rule is ResolutionRule.AMENDMENT_REQUEST:
            deadline = amendment_deadline(
                now, policy.amendment_window, case.grid.interval_start(subject.first_changed())
            )
            too_late = deadline is None
        if deadline is not None:
            action = OutcomeAction.AMENDMENT_REQUESTED
            head = (
                f"Please amend your {head_item} by {format_time(deadline)}. Until then, and if no amendment "
                f"arrives in time, this stands: {_describe(segs)}."
            )
        elif subject.cancelled:
            action = OutcomeAction.CANCELLED
            head = f"Your {head_item} is cancelled: {_describe(segs)}."
        else:
            action = OutcomeAction.REDUCED
            head = f"Your {head_item} is reduced: {_describe(segs)}."
    if subject.subject_type is SubjectType.COMMITMENT:
        head += " Settlement pays the firm kW only; the rest is the same kW counted twice."
    parts = [head, f"Conflict: {conflict.summary}", _rule_text(rule, policy, conflict.tdi_id, binding, subject, others)]
    if extra:
        parts.append(
            "This instruction was not itself in the conflict; it had to change so that the instructions at this "
            "connection point stay feasible (power and stored energy) once the conflict was resolved."
        )
    if too_late:
        parts.append("There is no time left to amend before the first affected interval, so this is final.")
    return Outcome(
        subject_type=subject.subject_type,
        subject_id=subject.subject_id,
        der_id=subject.der_id,
        issuer_party_id=subject.issuer,
        recipient_party_id=subject.recipient,
        action=action,
        original_p_kw=subject.original,
        schedule=segs,
        reason=" ".join(parts),
        deadline=deadline,
    )


def _summary(conflict: Conflict, rule: ResolutionRule, outcomes: Sequence[Outcome]) -> str:
    groups: dict[OutcomeAction, list[str]] = {}
    for o in outcomes:
        groups.setdefault(o.action, []).append(o.subject_id)
    told = "; ".join(f"{a.value}: {', '.join(ids)}" for a, ids in groups.items())
    return f"{conflict.kind.value} resolved by {rule.value}. {told}."


def resolve_conflicts(
    case: ConflictCase,
    conflicts: Sequence[Conflict],
    now: datetime,
    *,
    policies: Mapping[str, ResolutionPolicy] | None = None,
    default_policy: ResolutionPolicy = DEFAULT_POLICY,
    tol_kw: float = TOL_KW,
    tol_kwh: float = TOL_KWH,
) -> ResolutionResult:
    """Resolve ``conflicts`` (as detected on ``case``) under each T-D interface's policy.

    Promises: exactly one ``Resolution`` per conflict, in the same order; every instruction or commitment
    named by a conflict, and every instruction changed by the resolution, gets an ``Outcome`` with a reason
    addressed to its issuer and recipient; the adjusted instruction set breaks no capability, envelope,
    outage or storage-energy limit; setpoints only move towards 0. ``now`` (tz-aware) dates the decisions
    and starts the amendment deadlines.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationFailed("now must be timezone-aware (UTC)", field="now")
    seen: set[str] = set()
    for c in conflicts:
        if c.conflict_id in seen:
            raise ValidationFailed(f"conflict {c.conflict_id} is listed twice", field="conflicts")
        seen.add(c.conflict_id)
    policies = dict(policies or {})
    der_policy = _policies(case, policies, default_policy)
    policy_by_tdi = {d.tdi_id: der_policy[k] for k, d in enumerate(case.ders)}
    level, rank = instruction_ranks(case, der_policy)

    cell_p = _settle(case, conflicts, level, rank)
    problems = feasibility_violations(case, cell_p, tol_kw=tol_kw, tol_kwh=tol_kwh)
    if problems:
        missing = sorted({c.conflict_id for c in detect_conflicts(case)} - seen)
        if missing:
            raise ValidationFailed(
                f"{len(missing)} conflict(s) detected on the case were not passed in, e.g. {missing[0]}; "
                "resolve the full result of detect_conflicts",
                field="conflicts",
                code=CONFLICTS_INCOMPLETE,
                details={"missing": missing},
            )
        raise RuntimeError("conflict resolution left limits broken: " + "; ".join(problems[:5]))

    # per-instruction views
    offsets = np.concatenate(([0], np.cumsum(case.instr_end - case.instr_start)))
    subjects: list[_Subject] = []
    for k, ins in enumerate(case.instructions):
        pol = der_policy[case.der_index[ins.der_id]]
        subjects.append(
            _Subject(
                SubjectType.INSTRUCTION,
                k,
                ins.instruction_id,
                ins.der_id,
                ins.issuer_party_id,
                ins.recipient_party_id,
                ins.p_kw,
                int(case.instr_start[k]),
                cell_p[offsets[k] : offsets[k + 1]],
                int(rank[k]),
                pol.priorities.describe(ins.category),
                case.cell_in_force[offsets[k] : offsets[k + 1]] if ins.superseded else None,
            )
        )
    com_subjects, firm = _commitment_subjects(case, der_policy)

    # changed instructions that no conflict names are attached to a conflict at the same connection point
    named: set[str] = {i for c in conflicts for i in c.instruction_ids}
    extras: dict[str, list[int]] = {}
    power = [c for c in conflicts if c.kind in POWER_KINDS]
    for s in subjects:
        if s.changed and s.subject_id not in named:
            cp = case.ders[case.der_index[s.der_id]].connection_point_id
            t_first = s.first_changed()
            candidates = [c for c in power if c.connection_point_id == cp]
            overlapping = [
                c
                for c in candidates
                if any(_interval_index(case, a) <= t_first < _interval_index(case, b) for a, b in c.intervals)
            ]
            host = (overlapping or candidates)[0]
            extras.setdefault(host.conflict_id, []).append(s.index)

    com_index = {c.commitment_id: k for k, c in enumerate(case.commitments)}
    resolutions: list[Resolution] = []
    requests: list[AmendmentRequest] = []
    for conflict in conflicts:
        policy = policy_by_tdi.get(conflict.tdi_id, policies.get(conflict.tdi_id, default_policy))
        rule = policy.rule_for(conflict.kind)
        binding = _binding_limit(case, conflict) if rule is ResolutionRule.MOST_RESTRICTIVE_LIMIT else None
        if conflict.kind is ConflictKind.DOUBLE_COUNTING:
            members = [com_subjects[com_index[i]] for i in conflict.commitment_ids]
            extra_ids: set[int] = set()
        else:
            members = [subjects[case.instruction_index[i]] for i in conflict.instruction_ids]
            extra_ids = set(extras.get(conflict.conflict_id, []))
            members += [subjects[k] for k in extra_ids]
        outcomes = tuple(
            _outcome(
                case,
                conflict,
                m,
                [o for o in members if o is not m],
                rule,
                policy,
                binding,
                now,
                m.subject_type is SubjectType.INSTRUCTION and m.index in extra_ids,
            )
            for m in members
        )
        for o in outcomes:
            if o.action is OutcomeAction.AMENDMENT_REQUESTED and o.subject_type is SubjectType.INSTRUCTION:
                assert o.deadline is not None
                requests.append(
                    AmendmentRequest(
                        request_id=f"amend:{conflict.conflict_id}:{o.subject_id}",
                        conflict_id=conflict.conflict_id,
                        instruction_id=o.subject_id,
                        der_id=o.der_id,
                        addressee_party_id=o.issuer_party_id,
                        requested_at=now,
                        deadline=o.deadline,
                        provisional=o.schedule,
                        reason=o.reason,
                    )
                )
        resolutions.append(
            Resolution(
                resolution_id=f"resolution:{conflict.conflict_id}",
                conflict_id=conflict.conflict_id,
                kind=conflict.kind,
                tdi_id=conflict.tdi_id,
                rule=rule,
                decided_at=now,
                outcomes=outcomes,
                summary=_summary(conflict, rule, outcomes),
                binding_limit=binding,
            )
        )

    adjusted = tuple(
        AdjustedSchedule(SubjectType.INSTRUCTION, s.subject_id, s.original, s.segments(case)) for s in subjects
    )
    adjusted_com = tuple(
        AdjustedSchedule(SubjectType.COMMITMENT, s.subject_id, s.original, s.segments(case)) for s in com_subjects
    )
    return ResolutionResult(tuple(resolutions), adjusted, adjusted_com, tuple(requests), cell_p, firm)


def _commitment_subjects(
    case: ConflictCase, der_policy: Sequence[ResolutionPolicy]
) -> tuple[list[_Subject], FloatArray]:
    """Firm (payable) kW per commitment cell with commitments stacked in priority order."""
    coms = case.commitments
    if not coms:
        return [], np.zeros(0)
    levels = [der_policy[case.der_index[c.der_id]].priorities.level(c.category) for c in coms]
    keys = sorted(range(len(coms)), key=lambda k: (levels[k], coms[k].committed_at, coms[k].commitment_id))
    com_rank = np.empty(len(coms), dtype=np.int64)
    com_rank[np.array(keys, dtype=np.int64)] = np.arange(len(keys))
    result = double_counting(
        commitment_groups(case), case.com_cell_kw, com_rank[case.com_cell_com], commitment_capability_kw(case)
    )
    firm = result.firm_kw
    lengths = np.bincount(case.com_cell_com, minlength=len(coms))
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    out = []
    for k, c in enumerate(coms):
        pol = der_policy[case.der_index[c.der_id]]
        out.append(
            _Subject(
                SubjectType.COMMITMENT,
                k,
                c.commitment_id,
                c.der_id,
                c.buyer_party_id,
                c.provider_party_id,
                c.committed_kw,
                int(case.com_cell_t[offsets[k]]) if lengths[k] else 0,
                firm[offsets[k] : offsets[k + 1]],
                int(com_rank[k]),
                f"{pol.priorities.describe(c.category)}, {c.direction.value} for {c.holder_id}",
            )
        )
    return out, firm


def amendment_deadline(now: datetime, window: timedelta, first_affected: datetime) -> datetime | None:
    """Return the deadline of an amendment request, or ``None`` when the first affected interval has begun."""
    deadline = min(now + window, first_affected)
    return deadline if deadline > now else None
