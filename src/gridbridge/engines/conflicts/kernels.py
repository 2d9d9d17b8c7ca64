"""Vector kernels of conflict detection: net power, state-of-energy trajectories, the fused screening check.

Arrays are ``(n_der, n_intervals)`` with DERs on rows. Power is positive for injection (discharge) and
negative for withdrawal (charge). One storage step over ``dt_h`` hours changes stored energy by

    f(p) = -p * dt_h / eta_discharge   for p >= 0 (discharge)
    f(p) = -p * dt_h * eta_charge      for p <  0 (charge)

What "feasible" means for storage: a set of instructions is energy-feasible when the *instructed* trajectory,
``e_initial + cumsum(f(p))`` without any clipping, stays within ``[e_min, e_max]`` at every interval end.
Power is constant within an interval, so energy is monotone inside it and checking the ends is enough.
When the instructed trajectory is feasible it is exactly what the battery does; when it is not, the
battery clips and the plain cumulative sum stops describing reality: ``soe_trajectory_clipped_kwh`` gives the
physical trajectory (the DER follows instructions in time order and stops at its bounds) and the power it
fails to deliver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numba
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

TOL_KW = 1e-6
"""Power tolerance: excesses at or below it are rounding, not conflicts."""
TOL_KWH = 1e-6
"""Energy tolerance for state-of-energy bounds."""


def net_power_kw(
    cell_der: IntArray, cell_t: IntArray, cell_p_kw: FloatArray, n_der: int, n_intervals: int
) -> FloatArray:
    """Return the ``(n_der, n_intervals)`` sum of all instruction cells (one cell = one instruction in one interval)."""
    flat = cell_der * n_intervals + cell_t
    total = np.bincount(flat, weights=cell_p_kw, minlength=n_der * n_intervals)
    return total.astype(np.float64, copy=False).reshape(n_der, n_intervals)


def energy_power_kw(p_kw: FloatArray, reduction_kw: FloatArray | float = 0.0) -> FloatArray:
    """Return the power that moves stored energy when ``p_kw`` (the net of all instructions) includes reductions
    of ``reduction_kw`` (magnitudes, ``ConflictInstruction.reduces_export``).

    A reduction lowers discharge but never charges: with ``q = p + reduction`` the net of the other
    instructions, the battery charges at ``q`` when ``q < 0`` and discharges ``max(p, 0)`` otherwise. Without
    reductions this is ``p`` itself.
    """
    p = np.asarray(p_kw, dtype=np.float64)
    q = p + reduction_kw
    return np.where(q < 0, q, np.maximum(p, 0.0))


def energy_delta_kwh(p_kw: FloatArray, eta_charge: FloatArray, eta_discharge: FloatArray, dt_h: float) -> FloatArray:
    """Return the change of stored energy ``f(p)`` per cell; ``eta_*`` broadcast against ``p_kw``."""
    return np.where(p_kw > 0, -p_kw * (dt_h / eta_discharge), -p_kw * (dt_h * eta_charge))


def power_for_energy_delta_kw(
    delta_kwh: FloatArray, eta_charge: FloatArray, eta_discharge: FloatArray, dt_h: float
) -> FloatArray:
    """Return the power ``p`` with ``f(p) = delta_kwh`` (the inverse of ``energy_delta_kwh``)."""
    return np.where(delta_kwh <= 0, -delta_kwh * eta_discharge / dt_h, -delta_kwh / (eta_charge * dt_h))


def soe_trajectory_kwh(
    p_kw: FloatArray, e_initial_kwh: FloatArray, eta_charge: FloatArray, eta_discharge: FloatArray, dt_h: float
) -> FloatArray:
    """Return the instructed (unclipped) stored energy at the end of every interval, ``(n_der, n_intervals)``.

    Exact while it stays within bounds; outside them it measures how far the instructions overdraw storage.
    """
    delta = energy_delta_kwh(np.asarray(p_kw, dtype=np.float64), eta_charge[:, None], eta_discharge[:, None], dt_h)
    return e_initial_kwh[:, None] + np.cumsum(delta, axis=1)


def soe_trajectory_clipped_kwh(
    p_kw: FloatArray,
    e_initial_kwh: FloatArray,
    e_min_kwh: FloatArray,
    e_max_kwh: FloatArray,
    eta_charge: FloatArray,
    eta_discharge: FloatArray,
    dt_h: float,
) -> tuple[FloatArray, FloatArray]:
    """Return the physical trajectory and the undelivered power, both ``(n_der, n_intervals)``.

    The DER follows its instructions in time order and stops at ``e_min``/``e_max``. ``undelivered_p_kw`` is
    the instructed power minus the delivered power: positive where a discharge fell short, negative where a
    charge could not be absorbed. Sequential in time (the clipping is a recursion), vectorised over DERs.
    """
    p = np.asarray(p_kw, dtype=np.float64)
    n, n_t = p.shape
    soe = np.empty((n, n_t))
    undelivered = np.zeros((n, n_t))
    s = e_initial_kwh.astype(np.float64).copy()
    for t in range(n_t):
        wanted = s + energy_delta_kwh(p[:, t], eta_charge, eta_discharge, dt_h)
        reached = np.clip(wanted, e_min_kwh, e_max_kwh)
        delivered = power_for_energy_delta_kw(reached - s, eta_charge, eta_discharge, dt_h)
        undelivered[:, t] = np.where(wanted == reached, 0.0, p[:, t] - delivered)
        soe[:, t] = reached
        s = reached
    return soe, undelivered


# ---------------------------------------------------------------------------------------------------------
# Fused screening: capability and state of energy in one pass
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScreenResult:
    """Per DER: how many intervals break its power capability, and how many leave its energy bounds."""

    capability_intervals: NDArray[np.int32]
    energy_intervals: NDArray[np.int32]

    @property
    def flagged(self) -> NDArray[np.bool_]:
        """DERs with any capability or energy violation."""
        return (self.capability_intervals > 0) | (self.energy_intervals > 0)


def _screen_loop(
    p: Any,
    p_export_kw: Any,
    p_import_kw: Any,
    has_storage: Any,
    e_initial_kwh: Any,
    e_min_kwh: Any,
    e_max_kwh: Any,
    eta_charge: Any,
    eta_discharge: Any,
    dt_h: float,
    tol_kw: float,
    tol_kwh: float,
    capability_out: Any,
    energy_out: Any,
) -> None:  # pragma: no cover - compiled by numba; tested through screen_capability_energy
    n, n_t = p.shape
    for i in numba.prange(n):
        hi = p_export_kw[i] + tol_kw
        lo = -p_import_kw[i] - tol_kw
        cap = 0
        for t in range(n_t):
            x = p[i, t]
            cap += (x > hi) | (x < lo)
        capability_out[i] = cap
        energy = 0
        if has_storage[i]:
            s = e_initial_kwh[i] * 1.0
            e_lo = e_min_kwh[i] - tol_kwh
            e_hi = e_max_kwh[i] + tol_kwh
            k_dis = dt_h / eta_discharge[i]
            k_ch = dt_h * eta_charge[i]
            for t in range(n_t):
                x = p[i, t] * 1.0
                s -= max(x, 0.0) * k_dis + min(x, 0.0) * k_ch
                energy += (s < e_lo) | (s > e_hi)
        energy_out[i] = energy


_screen_numba = cast(Callable[..., None], numba.njit(parallel=True, cache=True, nogil=True)(_screen_loop))


def screen_capability_energy(
    p_kw: NDArray[np.floating[Any]],
    p_export_kw: FloatArray,
    p_import_kw: FloatArray,
    has_storage: BoolArray,
    e_initial_kwh: FloatArray,
    e_min_kwh: FloatArray,
    e_max_kwh: FloatArray,
    eta_charge: FloatArray,
    eta_discharge: FloatArray,
    dt_h: float,
    *,
    tol_kw: float = TOL_KW,
    tol_kwh: float = TOL_KWH,
    engine: str = "numba",
    chunk_rows: int = 8192,
) -> ScreenResult:
    """Count, per DER, the intervals beyond capability and the interval ends outside its energy bounds.

    ``p_kw`` is the total instructed power ``(n_der, n_intervals)`` (float32 or float64); energy is
    accumulated in float64. ``engine="numba"`` runs one fused pass (parallel over DERs); ``engine="numpy"``
    runs the same check in DER chunks of ``chunk_rows`` with a cumulative sum. Both give identical counts.
    """
    p = np.ascontiguousarray(p_kw)
    if p.ndim != 2:
        raise ValueError("p_kw must be a 2-D array (n_der, n_intervals)")
    n = p.shape[0]
    vectors = [p_export_kw, p_import_kw, e_initial_kwh, e_min_kwh, e_max_kwh, eta_charge, eta_discharge]
    exp_, imp_, e0, emin, emax, eta_c, eta_d = (np.ascontiguousarray(v, dtype=np.float64) for v in vectors)
    storage = np.ascontiguousarray(has_storage, dtype=np.bool_)
    for v in (exp_, imp_, e0, emin, emax, eta_c, eta_d, storage):
        if v.shape != (n,):
            raise ValueError("per-DER arrays must have shape (n_der,)")
    cap_out = np.zeros(n, dtype=np.int32)
    energy_out = np.zeros(n, dtype=np.int32)
    if engine == "numba":
        _screen_numba(p, exp_, imp_, storage, e0, emin, emax, eta_c, eta_d, dt_h, tol_kw, tol_kwh, cap_out, energy_out)
    elif engine == "numpy":
        for a in range(0, n, chunk_rows):
            b = min(n, a + chunk_rows)
            pc = p[a:b].astype(np.float64)
            over = (pc > (exp_[a:b] + tol_kw)[:, None]) | (pc < (-imp_[a:b] - tol_kw)[:, None])
            cap_out[a:b] = over.sum(axis=1)
            soe = soe_trajectory_kwh(pc, e0[a:b], eta_c[a:b], eta_d[a:b], dt_h)
            out = (soe < (emin[a:b] - tol_kwh)[:, None]) | (soe > (emax[a:b] + tol_kwh)[:, None])
            energy_out[a:b] = np.where(storage[a:b], out.sum(axis=1), 0)
    else:
        raise ValueError(f"unknown engine {engine!r}; use 'numba' or 'numpy'")
    return ScreenResult(cap_out, energy_out)


# ---------------------------------------------------------------------------------------------------------
# Helpers on sorted groups and boolean runs
# ---------------------------------------------------------------------------------------------------------


def segmented_sum_before(values: FloatArray, group: IntArray) -> FloatArray:
    """For values sorted by ``group``: the sum of the earlier values of the same group (exclusive cumsum)."""
    if values.size == 0:
        return values.copy()
    before = np.cumsum(values) - values
    starts = np.empty(group.size, dtype=np.bool_)
    starts[0] = True
    np.not_equal(group[1:], group[:-1], out=starts[1:])
    base = before[starts]
    return cast(FloatArray, before - base[np.cumsum(starts) - 1])


def mask_runs(mask: BoolArray) -> tuple[IntArray, IntArray, IntArray]:
    """Return ``(row, start, end)`` of every maximal run of ``True`` along axis 1 (``end`` exclusive)."""
    rows, n_t = mask.shape
    padded = np.zeros((rows, n_t + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)
    r_start, c_start = np.nonzero(step == 1)
    _, c_end = np.nonzero(step == -1)
    return r_start.astype(np.int64), c_start.astype(np.int64), c_end.astype(np.int64)
