"""The naive reference method: bisection with one full AC power flow (``pandapower.runpp``) per probe.

Kept only to validate the envelope engine and to measure its speed-up; never used to publish envelopes.

- :func:`naive_point_limit_kw`: the largest export (or import) at one connection point alone, every other
  bus at its forecast injection (hosting capacity by brute force; the method of the performance baseline,
  about 0.5 s per point and interval on a 9,000-bus grid).
- :func:`naive_equal_limit_kw`: the largest common export (or import) with every connection point at it at
  once (the ``equal`` envelope by brute force).

A probe passes when the power flow converges, every energised bus is within ``[v_min_pu, v_max_pu]``, every
line and transformer within ``max_loading_pct`` and the T-D interface flow within its limits. Bisection
stops when the bracket is narrower than ``tol_kw``; the lower end (a passing value) is returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridbridge.adapters.powerflow.network import PandapowerEnvelopeNetwork
from gridbridge.domain.envelopes import Direction, NetworkLimits
from gridbridge.engines.envelopes._types import FloatArray, IntArray
from gridbridge.services.envelopes_ports import AcFlowResult


@dataclass(frozen=True)
class NaiveResult:
    """Limit found (kW), AC power flows run, and seconds taken."""

    p_max_kw: float
    power_flows: int
    seconds: float


def passes(result: AcFlowResult, limits: NetworkLimits, row: int = 0) -> bool:
    """True if snapshot ``row`` converged and keeps every limit exactly (no tolerance)."""
    if not bool(result.converged[row]):
        return False
    vm = result.vm_pu[row]
    vm = vm[np.isfinite(vm)]
    if (vm > limits.v_max_pu).any() or (vm < limits.v_min_pu).any():
        return False
    loading = result.loading_pct[row]
    if (loading[np.isfinite(loading)] > limits.max_loading_pct).any():
        return False
    p_tdi_kw = float(result.p_tdi_mw[row]) * 1000.0
    if limits.tdi_reverse_limit_kw is not None and -p_tdi_kw > limits.tdi_reverse_limit_kw:
        return False
    return not (limits.tdi_forward_limit_kw is not None and p_tdi_kw > limits.tdi_forward_limit_kw)


def _bisect(feasible: Callable[[float], bool], hi_kw: float, tol_kw: float) -> tuple[float, int]:
    """Largest x in [0, hi_kw] with ``feasible(x)`` (assumed monotone), to ``tol_kw``; and the probe count."""
    probes = 1
    if not feasible(0.0):
        return 0.0, probes
    lo, hi = 0.0, hi_kw
    probes += 1
    if feasible(hi):
        return hi, probes
    while hi - lo > tol_kw:
        mid = 0.5 * (lo + hi)
        probes += 1
        if feasible(mid):
            lo = mid
        else:
            hi = mid
    return lo, probes


def naive_point_limit_kw(
    network: PandapowerEnvelopeNetwork,
    p_inj_mw: FloatArray,
    q_inj_mvar: FloatArray,
    bus: int,
    direction: Direction,
    limits: NetworkLimits,
    *,
    tol_kw: float = 0.1,
) -> NaiveResult:
    """Largest export/import at bus position ``bus`` alone (net injection at unity power factor), the rest
    at ``p_inj_mw``/``q_inj_mvar`` (n_bus,), by bisection on ``pandapower.runpp``."""
    sign = 1.0 if direction is Direction.EXPORT else -1.0
    t0 = time.perf_counter()

    def feasible(x_kw: float) -> bool:
        p = np.array(p_inj_mw, dtype=np.float64, copy=True)
        q = np.array(q_inj_mvar, dtype=np.float64, copy=True)
        p[bus] = sign * x_kw / 1000.0
        q[bus] = 0.0
        return passes(network.run_ac(p[None, :], q[None, :]), limits)

    value, probes = _bisect(feasible, limits.point_cap_kw, tol_kw)
    return NaiveResult(value, probes, time.perf_counter() - t0)


def naive_equal_limit_kw(
    network: PandapowerEnvelopeNetwork,
    p_inj_mw: FloatArray,
    q_inj_mvar: FloatArray,
    point_buses: IntArray,
    direction: Direction,
    limits: NetworkLimits,
    *,
    tol_kw: float = 0.01,
) -> NaiveResult:
    """Largest common export/import with every point in ``point_buses`` at it at once, by bisection."""
    sign = 1.0 if direction is Direction.EXPORT else -1.0
    t0 = time.perf_counter()

    def feasible(x_kw: float) -> bool:
        p = np.array(p_inj_mw, dtype=np.float64, copy=True)
        q = np.array(q_inj_mvar, dtype=np.float64, copy=True)
        p[point_buses] = sign * x_kw / 1000.0
        q[point_buses] = 0.0
        return passes(network.run_ac(p[None, :], q[None, :]), limits)

    value, probes = _bisect(feasible, limits.point_cap_kw, tol_kw)
    return NaiveResult(value, probes, time.perf_counter() - t0)
