"""Net flow at each T-D interface: forecast from load, DER schedules and dispatch; reverse-flow detection.

Net load (the flow at the interface) is positive as import from transmission into distribution:
``net_load = load - scheduled DER injection - dispatched DER injection``. A negative net load is reverse
flow (distribution exporting to transmission), which the TSO is told about (white paper Figure 4).
Arrays are ``(intervals, interfaces)``, or ``(interfaces,)`` for one interval; per-DER arrays are
``(intervals, ders)`` or ``(ders,)`` and are summed to interfaces with ``sum_to_interfaces``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from gridbridge.domain.errors import ValidationFailed, register_code
from gridbridge.engines.clearing.types import FloatArray, IntArray, sum_by

BAD_FLOW = register_code("netflow.bad_input", 422, "Net-flow inputs have inconsistent shapes or values")


def sum_to_interfaces(p_kw: FloatArray, der_interface: IntArray, n_interfaces: int) -> FloatArray:
    """Sum per-DER power (``(ders,)`` or ``(intervals, ders)``) to interfaces by ``der_interface``.

    DERs with interface ``-1`` are left out.
    """
    p = np.asarray(p_kw, dtype=np.float64)
    iface = np.asarray(der_interface, dtype=np.int64)
    if p.shape[-1:] != iface.shape or p.ndim not in (1, 2):
        raise ValidationFailed("p_kw's last axis must match der_interface", field="p_kw", code=BAD_FLOW)
    if iface.size and int(iface.max()) >= n_interfaces:
        raise ValidationFailed("an interface index is out of range", field="der_interface", code=BAD_FLOW)
    inside = iface >= 0
    if p.ndim == 1:
        return sum_by(iface[inside], p[inside], n_interfaces)
    cols = np.flatnonzero(inside)
    indicator = sparse.csr_array((np.ones(cols.size), (cols, iface[cols])), shape=(iface.size, n_interfaces))
    out: FloatArray = np.asarray(indicator.T @ p.T).T
    return out


def net_load_forecast(load_kw: FloatArray, der_schedule_kw: FloatArray, dispatch_kw: FloatArray) -> FloatArray:
    """Return ``load - scheduled DER injection - dispatched injection`` per interval and interface (kW)."""
    load = np.asarray(load_kw, dtype=np.float64)
    sched = np.asarray(der_schedule_kw, dtype=np.float64)
    disp = np.asarray(dispatch_kw, dtype=np.float64)
    if not (load.shape == sched.shape == disp.shape):
        raise ValidationFailed(
            f"load {load.shape}, schedules {sched.shape} and dispatch {disp.shape} must have one shape",
            field="dispatch_kw",
            code=BAD_FLOW,
        )
    if not (np.all(np.isfinite(load)) and np.all(np.isfinite(sched)) and np.all(np.isfinite(disp))):
        raise ValidationFailed("net-flow inputs must be finite", field="load_kw", code=BAD_FLOW)
    out: FloatArray = load - sched - disp
    return out


@dataclass(frozen=True, eq=False)
class FlowEvents:
    """Where a condition holds: interval and interface indices, with the magnitude (kW) at each."""

    interval_index: IntArray
    interface_index: IntArray
    magnitude_kw: FloatArray

    @property
    def count(self) -> int:
        """Number of (interval, interface) pairs."""
        return int(self.interface_index.size)

    def interfaces(self) -> IntArray:
        """The distinct interfaces concerned, ascending."""
        return np.unique(self.interface_index)


def _as_2d(net_load_kw: FloatArray) -> FloatArray:
    flow = np.asarray(net_load_kw, dtype=np.float64)
    if flow.ndim == 1:
        flow = flow[np.newaxis, :]
    if flow.ndim != 2:
        raise ValidationFailed(
            "net_load_kw must be (interfaces,) or (intervals, interfaces)", field="net_load_kw", code=BAD_FLOW
        )
    return flow


def detect_reverse_flow(net_load_kw: FloatArray, *, threshold_kw: float = 0.0) -> FlowEvents:
    """Return every (interval, interface) whose net load is below ``-threshold_kw`` (distribution exporting).

    ``magnitude_kw`` is the export, a positive number. For a 1-D input the interval index is 0.
    """
    if threshold_kw < 0:
        raise ValidationFailed("threshold_kw must be >= 0", field="threshold_kw", code=BAD_FLOW)
    flow = _as_2d(net_load_kw)
    t, k = np.nonzero(flow < -threshold_kw)
    return FlowEvents(t.astype(np.int64), k.astype(np.int64), -flow[t, k])


def detect_limit_violations(
    net_load_kw: FloatArray, import_limit_kw: FloatArray, export_limit_kw: FloatArray, *, tolerance_kw: float = 1e-6
) -> FlowEvents:
    """Return every (interval, interface) whose flow is beyond its import or export limit, with the excess."""
    flow = _as_2d(net_load_kw)
    imp = np.asarray(import_limit_kw, dtype=np.float64)
    exp = np.asarray(export_limit_kw, dtype=np.float64)
    if imp.shape != (flow.shape[1],) or exp.shape != (flow.shape[1],):
        raise ValidationFailed("one import and one export limit per interface", field="import_limit_kw", code=BAD_FLOW)
    excess = np.maximum(flow - imp, -flow - exp)
    t, k = np.nonzero(excess > tolerance_kw)
    return FlowEvents(t.astype(np.int64), k.astype(np.int64), excess[t, k])
