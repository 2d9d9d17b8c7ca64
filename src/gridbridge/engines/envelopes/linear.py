"""Linear models of the radial network around an operating state.

Two models, both O(n T):

**Lossless (LinDistFlow-style)**, :func:`linearise`, used by the ``max_total`` LP and by hosting capacity.
With every connection point's net injection changed by ``dP_j`` (unity power factor, so its reactive power
goes to zero) it predicts node voltages ``V_i = V0_i + sum_j R(i, j) dP_j + sum_j X(i, j) dQ_j``, where
``R(i, j)`` is the sum of ``r_e / V0_parent(e)`` over the edges shared by the paths of ``i`` and ``j`` from the
root (``X`` likewise with reactances), edge flows ``P_e = P0_e - sum_{j below e} dP_j`` and the T-D
interface import ``P_tdi = P0_tdi - sum_j dP_j``. It evaluates the state "every connection point at zero
net injection" (``vz``, ``pz``, ``qz``, ``p_tdi_z``).

**With losses**, :func:`flow_jvp`, used by the ``equal`` and ``proportional`` policies: the derivative of the
DistFlow branch equations (Baran and Wu) at the state, applied to a vector of injection changes. Bottom up,
each edge's sending-end flow change solves

    dP (1 - 2 r P / V^2) - dQ 2 r Q / V^2 = dP_recv,    dQ (1 - 2 x Q / V^2) - dP 2 x P / V^2 = dQ_recv

(the change of the power delivered to the child node is the sum of its children's sending-end changes minus
its own injection change), and top down the voltage change follows from
``V_c^2 = V_p^2 - 2 (r P + x Q) + (r^2 + x^2)(P^2 + Q^2) / V_p^2`` (the parent's change passed on one to one,
as across a transformer at a fixed tap). Losses make import limits (which raise
the flows) tighter and export limits looser than the lossless model says; the AC check then only has
second-order errors left to correct.

Thermal limits use both ends of every edge: ``|S_end| <= loading% * rating_end * V_end`` (pandapower's
current-based loading).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridbridge.domain.envelopes import NetworkLimits
from gridbridge.engines.envelopes._types import FloatArray
from gridbridge.engines.envelopes.network import RadialNetwork, path_sum, subtree_sum
from gridbridge.engines.envelopes.state import OperatingState, PointSet


@dataclass(frozen=True, eq=False)
class LinearModel:
    """The lossless linear model around one state; arrays are ``(n, T)`` unless noted.

    ``rr``/``xx``: voltage sensitivity of each edge (r or x over the parent voltage); ``vz``: voltages with
    all connection points at zero; ``pz``/``qz``: edge flows then; ``p_tdi_z`` (T,): T-D interface import
    then; ``p_headroom``: largest |P| on each edge at the loading limit given the reactive flows then
    (``inf`` unrated).
    """

    rr: FloatArray
    xx: FloatArray
    vz: FloatArray
    pz: FloatArray
    qz: FloatArray
    p_tdi_z: FloatArray
    p_headroom: FloatArray


def sensitivities(network: RadialNetwork, v0: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-edge voltage sensitivities ``r_e / V0_parent`` and ``x_e / V0_parent`` (n, T)."""
    vpar = v0[np.maximum(network.parent, 0)]
    rr = network.r_pu[:, None] / vpar
    xx = network.x_pu[:, None] / vpar
    return rr, xx


def _room(s_max: FloatArray, v: FloatArray, q: FloatArray, max_loading_pct: float) -> FloatArray:
    s_lim = (max_loading_pct / 100.0) * s_max[:, None] * v
    with np.errstate(invalid="ignore"):
        room = np.sqrt(np.maximum(s_lim**2 - q**2, 0.0))
    room[~np.isfinite(s_max)] = np.inf
    return room


def edge_rooms(
    network: RadialNetwork, v: FloatArray, q_send: FloatArray, q_recv: FloatArray, max_loading_pct: float
) -> tuple[FloatArray, FloatArray]:
    """Largest |P| (MW) at the parent end and at the child end of each edge that keeps the current within
    ``max_loading_pct`` of the rating at that end, given the reactive flows there and voltages ``v``
    (n, T); zero where the reactive flow alone exceeds it."""
    vpar = v[np.maximum(network.parent, 0)]
    return (
        _room(network.s_max_mva, vpar, q_send, max_loading_pct),
        _room(network.s_max_child_mva, v, q_recv, max_loading_pct),
    )


def linearise(network: RadialNetwork, state: OperatingState, points: PointSet, limits: NetworkLimits) -> LinearModel:
    """Build the lossless :class:`LinearModel` of ``network`` around ``state`` (see the module docstring)."""
    v0 = np.ascontiguousarray(state.v_pu.T)
    p0 = np.ascontiguousarray(state.p_flow_mw.T)
    q0 = np.ascontiguousarray(state.q_flow_mvar.T)
    q0_recv = np.ascontiguousarray(state.recv[1].T)
    rr, xx = sensitivities(network, v0)
    inc = points.incidence(network.n)
    cp_p = np.asarray(inc @ state.cp_p_mw.T)
    cp_q = np.asarray(inc @ state.cp_q_mvar.T)
    p_below = subtree_sum(network, cp_p)
    q_below = subtree_sum(network, cp_q)
    drop = path_sum(network, rr * p_below + xx * q_below)
    vz = v0 - drop
    pz = p0 + p_below
    qz = q0 + q_below
    pz[network.is_root] = 0.0
    qz[network.is_root] = 0.0
    p_tdi_z = state.p_tdi_mw + cp_p.sum(axis=0)
    room_p, room_c = edge_rooms(network, np.minimum(v0, vz), qz, q0_recv + q_below, limits.max_loading_pct)
    return LinearModel(rr, xx, vz, pz, qz, p_tdi_z, np.minimum(room_p, room_c))


@dataclass(frozen=True, eq=False)
class FlowChange:
    """Changes (n, T) of node voltage, sending-end and receiving-end edge flows, and of the T-D interface
    import (T,), for a given change of the node injections."""

    dv: FloatArray
    dp_send: FloatArray
    dq_send: FloatArray
    dp_recv: FloatArray
    dq_recv: FloatArray
    dp_tdi: FloatArray


def flow_jvp(
    network: RadialNetwork,
    v: FloatArray,
    p_send: FloatArray,
    q_send: FloatArray,
    dp_node: FloatArray,
    dq_node: FloatArray,
) -> FlowChange:
    """Derivative of the DistFlow equations at (v, p_send, q_send) (n, T) times the node injection changes
    ``dp_node``/``dq_node`` (n, T; generation positive). See the module docstring."""
    n, t = v.shape
    parent = network.parent
    vpar = v[np.maximum(parent, 0)]
    r = network.r_pu[:, None]
    x = network.x_pu[:, None]
    inv_v2 = 1.0 / vpar**2
    a11 = 1.0 - 2.0 * r * p_send * inv_v2
    a12 = -2.0 * r * q_send * inv_v2
    a21 = -2.0 * x * p_send * inv_v2
    a22 = 1.0 - 2.0 * x * q_send * inv_v2
    det = a11 * a22 - a12 * a21
    g_acc = np.zeros((n, t))
    h_acc = np.zeros((n, t))
    g = np.zeros((n, t))
    h = np.zeros((n, t))
    g_recv = np.zeros((n, t))
    h_recv = np.zeros((n, t))
    for lv in reversed(network.levels):
        sl = slice(lv.lo, lv.hi)
        gr = g_acc[sl] - dp_node[sl]
        hr = h_acc[sl] - dq_node[sl]
        g_recv[sl] = gr
        h_recv[sl] = hr
        g[sl] = (gr * a22[sl] - hr * a12[sl]) / det[sl]
        h[sl] = (hr * a11[sl] - gr * a21[sl]) / det[sl]
        g_acc[lv.group_parent] += np.add.reduceat(g[sl], lv.starts, axis=0)
        h_acc[lv.group_parent] += np.add.reduceat(h[sl], lv.starts, axis=0)
    roots = network.is_root
    dp_tdi = g_acc[roots].sum(axis=0) - dp_node[roots].sum(axis=0)
    dv = np.zeros((n, t))
    z2 = (network.r_pu**2 + network.x_pu**2)[:, None]
    for lv in network.levels:
        sl = slice(lv.lo, lv.hi)
        par = parent[sl]
        vp = v[par]
        drop = (r[sl] * g[sl] + x[sl] * h[sl]) - z2[sl] * (p_send[sl] * g[sl] + q_send[sl] * h[sl]) / vp**2
        dv[sl] = dv[par] - drop / v[sl]
    return FlowChange(dv, g, h, g_recv, h_recv, dp_tdi)
