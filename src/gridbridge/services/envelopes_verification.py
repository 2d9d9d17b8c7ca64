"""AC checks of envelope sets: how far an AC power flow goes beyond the voltage band, loading and interface
limits, per interval.

:func:`check_ac` measures, for each snapshot of an :class:`~.envelopes_ports.AcFlowResult`,

- the largest voltage excursion beyond ``[v_min_pu, v_max_pu]`` (pu) and the bus where it happens;
- the largest loading above ``max_loading_pct`` (percentage points) and the line or transformer;
- the T-D interface flow beyond its reverse or forward limit (kW);

counting only buses and branches in ``bus_mask`` / ``branch_mask`` (the envelope service passes the ones
some connection point can influence; the others are reported with the base case). A snapshot passes when
its power flow converged and every excursion is within the :class:`~gridbridge.domain.envelopes.VerificationTolerance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridbridge.domain.envelopes import NetworkLimits, VerificationTolerance
from gridbridge.engines.envelopes._types import BoolArray, FloatArray, IntArray
from gridbridge.services.envelopes_ports import AcFlowResult


@dataclass(frozen=True, eq=False)
class AcCheck:
    """Per-interval excursions (T,) beyond the limits, the worst bus and branch positions (-1: none), the
    convergence flags and whether each interval is within tolerance."""

    v_violation_pu: FloatArray
    worst_bus: IntArray
    loading_overshoot_pct: FloatArray
    worst_branch: IntArray
    tdi_overshoot_kw: FloatArray
    converged: BoolArray
    within_tolerance: BoolArray

    @property
    def intervals(self) -> int:
        """Number of intervals."""
        return len(self.v_violation_pu)

    def take(self, rows: IntArray) -> AcCheck:
        """The check restricted to intervals ``rows``."""
        return AcCheck(
            self.v_violation_pu[rows],
            self.worst_bus[rows],
            self.loading_overshoot_pct[rows],
            self.worst_branch[rows],
            self.tdi_overshoot_kw[rows],
            self.converged[rows],
            self.within_tolerance[rows],
        )


def _worst(excess: FloatArray) -> tuple[FloatArray, IntArray]:
    """Largest positive excess per row (0 if none) and its column (-1 if none)."""
    if excess.shape[1] == 0:
        t = excess.shape[0]
        return np.zeros(t), np.full(t, -1, dtype=np.int64)
    filled = np.where(np.isnan(excess), -np.inf, excess)
    arg = np.argmax(filled, axis=1)
    best = filled[np.arange(len(arg)), arg]
    pos = best > 0
    return np.where(pos, best, 0.0), np.where(pos, arg, -1).astype(np.int64)


def check_ac(
    result: AcFlowResult,
    limits: NetworkLimits,
    tolerance: VerificationTolerance,
    bus_mask: BoolArray | None = None,
    branch_mask: BoolArray | None = None,
) -> AcCheck:
    """Measure the excursions of ``result`` beyond ``limits`` (see the module docstring)."""
    vm = result.vm_pu
    excess_v = np.fmax(vm - limits.v_max_pu, limits.v_min_pu - vm)
    if bus_mask is not None:
        excess_v = np.where(bus_mask[None, :], excess_v, np.nan)
    v_viol, worst_bus = _worst(excess_v)
    excess_l = result.loading_pct - limits.max_loading_pct
    if branch_mask is not None:
        excess_l = np.where(branch_mask[None, :], excess_l, np.nan)
    l_viol, worst_branch = _worst(excess_l)
    tdi = np.zeros(result.intervals)
    tdi_tol = np.full(result.intervals, np.inf)
    p_tdi_kw = result.p_tdi_mw * 1000.0
    if limits.tdi_reverse_limit_kw is not None:
        over = -p_tdi_kw - limits.tdi_reverse_limit_kw
        tdi = np.fmax(tdi, over)
        tdi_tol = np.minimum(tdi_tol, tolerance.tdi_pct / 100.0 * max(limits.tdi_reverse_limit_kw, 1.0))
    if limits.tdi_forward_limit_kw is not None:
        over = p_tdi_kw - limits.tdi_forward_limit_kw
        tdi = np.fmax(tdi, over)
        tdi_tol = np.minimum(tdi_tol, tolerance.tdi_pct / 100.0 * max(limits.tdi_forward_limit_kw, 1.0))
    tdi = np.maximum(np.nan_to_num(tdi, nan=0.0), 0.0)
    converged = np.asarray(result.converged, dtype=np.bool_)
    within = converged & (v_viol <= tolerance.v_pu) & (l_viol <= tolerance.loading_pct) & (tdi <= tdi_tol)
    return AcCheck(v_viol, worst_bus, l_viol, worst_branch, tdi, converged, within)
