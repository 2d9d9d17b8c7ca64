"""A pandapower network prepared for envelope work: implements the envelope service's network port.

:class:`PandapowerEnvelopeNetwork` reads a pandapower network (for example a SimBench grid) into the arrays
the envelope engine takes (buses, branches, switches, slack buses, branch impedances and ratings, connection
points and their default weights) and runs AC power flows of per-bus injection snapshots on it.

For the power flows it keeps a working copy of the network in which every load, static generator and
storage is replaced by one static generator per bus carrying that bus's net injection, switches at branch
ends are folded into the branches' in-service flags (an open one takes the branch out), and bus-bus switches
stay as they are. Two methods solve it:

- ``batched`` (default): pandapower builds the model (``runpp`` once, then its bus admittance matrix
  ``Ybus``, branch matrices ``Yf``/``Yt`` and slack voltage are reused) and
  :class:`~gridbridge.engines.envelopes.BatchedAcSolver` solves all snapshots at once; branch flows and
  loadings follow pandapower's own formulas (current-based loading for lines and transformers). The first
  solve is checked against pandapower's own result and refused if they differ.
- ``runpp``: ``pandapower.runpp`` per snapshot (Newton-Raphson, warm-started with ``recycle``).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandapower as pp
import pandas as pd
from scipy import sparse

from gridbridge.domain.envelopes import RATING_NEGATIVE, UNSUPPORTED_NETWORK
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.envelopes import BatchedAcSolver, BranchParameters, TopologyInputs, apply_switching
from gridbridge.engines.envelopes._types import BoolArray, FloatArray, IntArray
from gridbridge.engines.envelopes.topology import LINE, SWITCH_BRANCH, SWITCH_BUS, TRAFO
from gridbridge.services.envelopes_ports import AcFlowResult, Progress

AcBackend = Literal["batched", "runpp"]

#: Element tables the envelope network cannot represent as per-bus constant-power injections or tree
#: branches; an in-service row in any of them is refused.
UNSUPPORTED_TABLES: tuple[str, ...] = (
    "gen",
    "trafo3w",
    "impedance",
    "ward",
    "xward",
    "dcline",
    "motor",
    "asymmetric_load",
    "asymmetric_sgen",
    "svc",
    "ssc",
    "tcsc",
    "vsc",
)
INJECTION_NAME = "gridbridge:bus-injection"
_SQRT3 = math.sqrt(3.0)
#: Largest voltage difference (pu) accepted between the batched solver and pandapower's own first solve.
SELF_CHECK_TOL_PU = 1e-6


def _names(df: pd.DataFrame, label: str) -> tuple[str, ...]:
    raw = df["name"].tolist() if "name" in df.columns else [None] * len(df)
    out: list[str] = []
    seen: set[str] = set()
    for idx, value in zip(df.index, raw, strict=True):
        name = f"{label} {idx}" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        if name in seen:
            name = f"{name} #{idx}"
        seen.add(name)
        out.append(name)
    return tuple(out)


def _col(df: pd.DataFrame, column: str, default: float) -> FloatArray:
    if column not in df.columns:
        return np.full(len(df), default, dtype=np.float64)
    return np.asarray(df[column].astype(float).fillna(default).to_numpy(), dtype=np.float64)


def _in_service(df: pd.DataFrame) -> BoolArray:
    if "in_service" not in df.columns:
        return np.ones(len(df), dtype=np.bool_)
    return np.asarray(df["in_service"].fillna(False).astype(bool).to_numpy(), dtype=np.bool_)


def _reject_unsupported(net: pp.pandapowerNet) -> None:
    for table in UNSUPPORTED_TABLES:
        df = net.get(table, None)
        if isinstance(df, pd.DataFrame) and len(df) and _in_service(df).any():
            raise ValidationFailed(
                f"the network has in-service {table} elements, which the envelope engine does not model "
                "(it needs loads, static generators and storages as constant-power injections on a radial "
                "network of lines and two-winding transformers)",
                field="network",
                code=UNSUPPORTED_NETWORK,
                details={"table": table},
            )
    bad_et = set(net.switch["et"].unique()) - {"b", "l", "t"} if len(net.switch) else set()
    if bad_et:
        raise ValidationFailed(
            f"switches of element type {sorted(bad_et)} are not supported", field="network", code=UNSUPPORTED_NETWORK
        )
    for table in ("load",):
        df = net[table]
        for column in ("const_z_p_percent", "const_i_p_percent", "const_z_q_percent", "const_i_q_percent"):
            if column in df.columns and (df[column].fillna(0.0).abs() > 0).any():
                raise ValidationFailed(
                    f"voltage-dependent loads ({column}) are not supported; the envelope engine models loads as "
                    "constant power",
                    field="network",
                    code=UNSUPPORTED_NETWORK,
                )


class PandapowerEnvelopeNetwork:
    """A pandapower network as the envelope service's :class:`~gridbridge.services.envelopes_ports.EnvelopeNetwork`.

    ``net`` is copied; the caller's object is never changed. ``name`` goes to the calculation log.
    ``ac_backend`` chooses the AC method (see the module docstring).
    """

    def __init__(self, net: pp.pandapowerNet, *, name: str, ac_backend: AcBackend = "batched") -> None:
        if ac_backend not in ("batched", "runpp"):
            raise ValueError(f"ac_backend must be 'batched' or 'runpp', not {ac_backend!r}")
        _reject_unsupported(net)
        self._net = copy.deepcopy(net)
        self._name = name
        self._backend: AcBackend = ac_backend
        n = self._net
        self._bus_index = np.asarray(n.bus.index.to_numpy(), dtype=np.int64)
        self._bus_pos = pd.Series(np.arange(len(n.bus)), index=n.bus.index)
        self._bus_names = _names(n.bus, "bus")
        self._line_names = _names(n.line, "line")
        self._trafo_names = _names(n.trafo, "trafo")
        self._n_line = len(n.line)
        self._ac: _AcModel | None = None
        self._topology = self._read_topology()
        self._params = self._read_branch_parameters()
        self._load_bus = self._positions(n.load.bus)
        self._sgen_bus = self._positions(n.sgen.bus)
        self._storage_bus = self._positions(n.storage.bus)
        self._cp_buses = np.unique(self._load_bus) if len(self._load_bus) else np.zeros(0, dtype=np.int64)

    # --- reading the network -------------------------------------------------------------------------

    def _positions(self, buses: pd.Series) -> IntArray:
        return np.asarray(self._bus_pos.loc[buses.to_numpy()].to_numpy(), dtype=np.int64)

    def _read_topology(self) -> TopologyInputs:
        n = self._net
        line_pos = pd.Series(np.arange(len(n.line)), index=n.line.index)
        trafo_pos = pd.Series(self._n_line + np.arange(len(n.trafo)), index=n.trafo.index)
        sw = n.switch
        kinds: list[str] = []
        targets: list[int] = []
        for et, element in zip(sw["et"].tolist(), sw["element"].tolist(), strict=True):
            if et == "b":
                kinds.append(SWITCH_BUS)
                targets.append(int(self._bus_pos.loc[element]))
            elif et == "l":
                kinds.append(SWITCH_BRANCH)
                targets.append(int(line_pos.loc[element]))
            else:
                kinds.append(SWITCH_BRANCH)
                targets.append(int(trafo_pos.loc[element]))
        slack = n.ext_grid[_in_service(n.ext_grid)]
        return TopologyInputs(
            bus_names=self._bus_names,
            bus_in_service=_in_service(n.bus),
            branch_names=self._line_names + self._trafo_names,
            branch_kind=(LINE,) * len(n.line) + (TRAFO,) * len(n.trafo),
            branch_from_bus=np.concatenate([self._positions(n.line.from_bus), self._positions(n.trafo.hv_bus)]),
            branch_to_bus=np.concatenate([self._positions(n.line.to_bus), self._positions(n.trafo.lv_bus)]),
            branch_in_service=np.concatenate([_in_service(n.line), _in_service(n.trafo)]),
            switch_names=_names(sw, "switch"),
            switch_bus=self._positions(sw.bus) if len(sw) else np.zeros(0, dtype=np.int64),
            switch_kind=tuple(kinds),
            switch_target=np.asarray(targets, dtype=np.int64),
            switch_closed=np.asarray(sw["closed"].astype(bool).to_numpy(), dtype=np.bool_),
            slack_buses=self._positions(slack.bus) if len(slack) else np.zeros(0, dtype=np.int64),
        )

    def _read_branch_parameters(self) -> BranchParameters:
        n = self._net
        vn = pd.Series(n.bus.vn_kv.to_numpy(dtype=float), index=n.bus.index)
        line = n.line
        parallel = _col(line, "parallel", 1.0)
        vn_line = vn.loc[line.from_bus.to_numpy()].to_numpy(dtype=float)
        z_base = vn_line**2  # 1 MVA base
        length = _col(line, "length_km", 0.0)
        r_line = _col(line, "r_ohm_per_km", 0.0) * length / parallel / z_base
        x_line = _col(line, "x_ohm_per_km", 0.0) * length / parallel / z_base
        i_line = _col(line, "max_i_ka", np.inf) * _col(line, "df", 1.0) * parallel
        vn_line_to = vn.loc[line.to_bus.to_numpy()].to_numpy(dtype=float)
        s_line = _SQRT3 * vn_line * i_line
        s_line_to = _SQRT3 * vn_line_to * i_line
        tr = n.trafo
        sn = _col(tr, "sn_mva", np.inf)
        tpar = _col(tr, "parallel", 1.0)
        vn_hv = _col(tr, "vn_hv_kv", 1.0)
        vn_lv = _col(tr, "vn_lv_kv", 1.0)
        vn_hv_bus = vn.loc[tr.hv_bus.to_numpy()].to_numpy(dtype=float)
        vn_lv_bus = vn.loc[tr.lv_bus.to_numpy()].to_numpy(dtype=float)
        z_tr = (vn_lv**2 / sn) / tpar / vn_lv_bus**2
        vk = _col(tr, "vk_percent", 0.0) / 100.0
        vkr = _col(tr, "vkr_percent", 0.0) / 100.0
        r_tr = vkr * z_tr
        x_tr = np.sqrt(np.maximum(vk**2 - vkr**2, 0.0)) * z_tr
        s_tr = sn * tpar * _col(tr, "df", 1.0)
        # pandapower's current-based loading refers currents to the rated winding voltages
        s_from = np.concatenate([s_line, s_tr * vn_hv_bus / vn_hv])
        s_to = np.concatenate([s_line_to, s_tr * vn_lv_bus / vn_lv])
        s_from = np.where(np.isfinite(s_from) & (s_from > 0), s_from, np.inf)
        s_to = np.where(np.isfinite(s_to) & (s_to > 0), s_to, np.inf)
        return BranchParameters(
            r_pu=np.concatenate([r_line, r_tr]),
            x_pu=np.concatenate([x_line, x_tr]),
            s_max_mva=s_from,
            length_km=np.concatenate([length, np.zeros(len(tr))]),
            s_max_to_mva=s_to,
        )

    # --- the port ---------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Name of the network."""
        return self._name

    @property
    def ac_backend(self) -> str:
        """The AC method: ``batched`` or ``runpp``."""
        return self._backend

    @property
    def net(self) -> pp.pandapowerNet:
        """The network as read (a private copy; do not change it)."""
        return self._net

    @property
    def bus_names(self) -> tuple[str, ...]:
        """Bus names in bus order (pandapower's ``name`` column; ``bus <index>`` where missing)."""
        return self._bus_names

    @property
    def connection_point_buses(self) -> IntArray:
        """Bus positions of every bus with at least one load."""
        return self._cp_buses

    def default_weights_kw(self) -> FloatArray:
        """Sum of in-service static generator and storage ratings (``sn_mva``, in kVA) at each connection
        point's bus; 1 where there is none. A negative rating raises ``envelopes.rating_negative``."""
        n = self._net
        rating = np.zeros(len(self._bus_names))
        for table, buses in (("sgen", self._sgen_bus), ("storage", self._storage_bus)):
            df = n[table]
            if not len(df):
                continue
            sn = _col(df, "sn_mva", 0.0)
            bad = sn < 0
            if bad.any():
                names = _names(df, table)
                first = names[int(np.flatnonzero(bad)[0])]
                raise ValidationFailed(
                    f"{table} {first!r} has a negative rating sn_mva={sn[bad][0]:g}; ratings must be >= 0",
                    field=f"{table}.sn_mva",
                    code=RATING_NEGATIVE,
                )
            ok = _in_service(df)
            np.add.at(rating, buses[ok], sn[ok] * 1000.0)
        weights = rating[self._cp_buses]
        return np.where(weights > 0, weights, 1.0)

    def topology_inputs(self) -> TopologyInputs:
        """Buses, lines then transformers, switches and slack buses."""
        return self._topology

    def branch_parameters(self) -> BranchParameters:
        """Impedances in pu on 1 MVA (transformers referred to the LV bus), ratings and lengths."""
        return self._params

    def element_injection_matrices(self) -> dict[str, sparse.csr_matrix]:
        """Sparse (n_bus, n_element) matrices summing in-service element values per bus, times ``scaling``,
        for ``load``, ``sgen`` and ``storage`` (element order as in the pandapower tables)."""
        out: dict[str, sparse.csr_matrix] = {}
        for table, buses in (("load", self._load_bus), ("sgen", self._sgen_bus), ("storage", self._storage_bus)):
            df = self._net[table]
            w = _col(df, "scaling", 1.0) * _in_service(df)
            out[table] = sparse.csr_matrix((w, (buses, np.arange(len(df)))), shape=(len(self._bus_names), len(df)))
        return out

    def stored_injections(self) -> tuple[FloatArray, FloatArray]:
        """Per-bus net injection (MW, Mvar) of the stored load, static generator and storage values."""
        mats = self.element_injection_matrices()
        n = self._net
        p = mats["sgen"] @ _col(n.sgen, "p_mw", 0.0) - mats["load"] @ _col(n.load, "p_mw", 0.0)
        q = mats["sgen"] @ _col(n.sgen, "q_mvar", 0.0) - mats["load"] @ _col(n.load, "q_mvar", 0.0)
        p = p - mats["storage"] @ _col(n.storage, "p_mw", 0.0)
        q = q - mats["storage"] @ _col(n.storage, "q_mvar", 0.0)
        return np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)

    def with_switching(self, open_elements: Sequence[str], close_elements: Sequence[str]) -> PandapowerEnvelopeNetwork:
        """A new network with the named switches opened/closed and branches taken out/put in service
        (names as in :func:`~gridbridge.engines.envelopes.apply_switching`)."""
        changed = apply_switching(self._topology, open_elements, close_elements)
        net = copy.deepcopy(self._net)
        if len(net.switch):
            net.switch["closed"] = changed.switch_closed
        net.line["in_service"] = changed.branch_in_service[: self._n_line]
        net.trafo["in_service"] = changed.branch_in_service[self._n_line :]
        return PandapowerEnvelopeNetwork(net, name=self._name, ac_backend=self._backend)

    def run_ac(self, p_inj_mw: FloatArray, q_inj_mvar: FloatArray, progress: Progress | None = None) -> AcFlowResult:
        """AC power flow of every row of ``p_inj_mw``/``q_inj_mvar`` (T, n_bus)."""
        p = np.asarray(p_inj_mw, dtype=np.float64)
        q = np.asarray(q_inj_mvar, dtype=np.float64)
        n_bus = len(self._bus_names)
        if p.ndim != 2 or p.shape[1] != n_bus or q.shape != p.shape:
            raise ValueError(f"injections must have shape (T, {n_bus})")
        if self._ac is None:
            self._ac = _AcModel(self)
        if self._backend == "runpp":
            return self._ac.run_runpp(p, q, progress)
        return self._ac.run_batched(p, q, progress)


class _AcModel:
    """The working pandapower copy with one injection per bus, and the batched solver on its Ybus."""

    def __init__(self, owner: PandapowerEnvelopeNetwork) -> None:
        net = copy.deepcopy(owner.net)
        topo = owner.topology_inputs()
        closed = topo.branch_closed()
        n_line = len(net.line)
        net.line["in_service"] = closed[:n_line]
        net.trafo["in_service"] = closed[n_line:]
        if len(net.switch):
            net.switch = net.switch[net.switch["et"] == "b"].copy()
        for table in ("load", "sgen", "storage"):
            if len(net[table]):
                net[table]["in_service"] = False
        first = len(net.sgen)
        pp.create_sgens(
            net,
            net.bus.index.to_numpy(),
            p_mw=np.zeros(len(net.bus)),
            q_mvar=np.zeros(len(net.bus)),
            name=INJECTION_NAME,
        )
        self.inj_rows = np.arange(first, first + len(net.bus))
        self.net = net
        self.n_line = n_line
        self.n_bus = len(net.bus)
        self.slack_bus_pos = topo.slack_buses
        p0, q0 = owner.stored_injections()
        self._set_injections(p0, q0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.runpp(net, numba=True)
        self._pp_vm = net.res_bus.vm_pu.to_numpy(dtype=float).copy()
        self._solver: BatchedAcSolver | None = None
        self._stored = (p0, q0)

    def _set_injections(self, p: FloatArray, q: FloatArray) -> None:
        sg = self.net.sgen
        col_p = sg.columns.get_loc("p_mw")
        col_q = sg.columns.get_loc("q_mvar")
        sg.iloc[self.inj_rows, col_p] = p
        sg.iloc[self.inj_rows, col_q] = q

    # --- batched ---------------------------------------------------------------------------------------

    def _prepare_batched(self) -> BatchedAcSolver:
        if self._solver is not None:
            return self._solver
        from pandapower.pypower.idx_brch import F_BUS, T_BUS
        from pandapower.pypower.idx_bus import BASE_KV

        net = self.net
        ppci: dict[str, Any] = net._ppc["internal"]
        self.base_mva = float(ppci["baseMVA"])
        ybus = ppci["Ybus"]
        self.n_int = ybus.shape[0]
        self.ref = np.asarray(ppci["ref"], dtype=np.int64)
        if len(ppci["pv"]):
            raise ValidationFailed(
                "the network has voltage-controlled (PV) buses; use the runpp AC backend",
                field="network",
                code=UNSUPPORTED_NETWORK,
            )
        self.v_ref = np.asarray(ppci["V"], dtype=np.complex128)[self.ref]
        self.yf = sparse.csr_matrix(ppci["Yf"])
        self.yt = sparse.csr_matrix(ppci["Yt"])
        self.ybus = sparse.csr_matrix(ybus)
        branch = ppci["branch"]
        self.f_bus = np.real(branch[:, F_BUS]).astype(np.int64)
        self.t_bus = np.real(branch[:, T_BUS]).astype(np.int64)
        self.base_kv = np.real(ppci["bus"][:, BASE_KV]).astype(float)
        lookup = net._pd2ppc_lookups["bus"]
        self.ppc_of_bus = np.asarray(lookup[net.bus.index.to_numpy()], dtype=np.int64)
        self.bus_ok = self.ppc_of_bus < self.n_int
        # ppc branch -> ppci branch
        branch_is = np.asarray(ppci["branch_is"], dtype=np.bool_)
        ppci_row = np.cumsum(branch_is) - 1
        lookups = net._pd2ppc_lookups["branch"]
        rows = np.full(self.n_line + len(net.trafo), -1, dtype=np.int64)
        if "line" in lookups:
            f, t = lookups["line"]
            rows[: self.n_line] = np.where(branch_is[f:t], ppci_row[f:t], -1)
        if "trafo" in lookups:
            f, t = lookups["trafo"]
            rows[self.n_line :] = np.where(branch_is[f:t], ppci_row[f:t], -1)
        self.branch_row = rows
        line = net.line
        self.line_imax = _col(line, "max_i_ka", np.nan) * _col(line, "df", 1.0) * _col(line, "parallel", 1.0)
        tr = net.trafo
        self.tr_vn = np.stack([_col(tr, "vn_hv_kv", np.nan), _col(tr, "vn_lv_kv", np.nan)], axis=1)
        self.tr_sn = _col(tr, "sn_mva", np.nan) * _col(tr, "parallel", 1.0) * _col(tr, "df", 1.0)
        self.slack_ppc = self.ppc_of_bus[self.slack_bus_pos]
        solver = BatchedAcSolver(self.ybus, self.ref)
        self._solver = solver
        # self-check against pandapower's own solution of the stored state
        check = self.run_batched(self._stored[0][None, :], self._stored[1][None, :], None)
        ok = self.bus_ok
        diff = np.nanmax(np.abs(check.vm_pu[0, ok] - self._pp_vm[ok])) if ok.any() else 0.0
        if not diff <= SELF_CHECK_TOL_PU:
            raise RuntimeError(f"batched AC solution differs from pandapower's by {diff:.2e} pu; use the runpp backend")
        return solver

    def run_batched(self, p: FloatArray, q: FloatArray, progress: Progress | None) -> AcFlowResult:
        solver = self._prepare_batched()
        t = p.shape[0]
        s_int = np.zeros((self.n_int, t), dtype=np.complex128)
        ok = self.bus_ok
        np.add.at(s_int, self.ppc_of_bus[ok], (p[:, ok] + 1j * q[:, ok]).T / self.base_mva)
        if progress is not None:
            progress("ac power flow", 0, t)
        sol = solver.solve(s_int, self.v_ref)
        if progress is not None:
            progress("ac power flow", t, t)
        v = sol.v
        vm = np.full((t, self.n_bus), np.nan)
        vm[:, ok] = np.abs(v[self.ppc_of_bus[ok]]).T
        i_f = self.yf @ v
        i_t = self.yt @ v
        s_f = v[self.f_bus] * np.conj(i_f) * self.base_mva
        s_t = v[self.t_bus] * np.conj(i_t) * self.base_mva
        kv_f = np.abs(v[self.f_bus]) * self.base_kv[self.f_bus, None]
        kv_t = np.abs(v[self.t_bus]) * self.base_kv[self.t_bus, None]
        i_f_ka = np.abs(s_f) / kv_f / _SQRT3
        i_t_ka = np.abs(s_t) / kv_t / _SQRT3
        n_br = len(self.branch_row)
        p_from = np.full((t, n_br), np.nan)
        q_from = np.full((t, n_br), np.nan)
        p_to = np.full((t, n_br), np.nan)
        q_to = np.full((t, n_br), np.nan)
        loading = np.full((t, n_br), np.nan)
        live = self.branch_row >= 0
        rows = self.branch_row[live]
        p_from[:, live] = s_f[rows].real.T
        q_from[:, live] = s_f[rows].imag.T
        p_to[:, live] = s_t[rows].real.T
        q_to[:, live] = s_t[rows].imag.T
        nl = self.n_line
        line_live = live[:nl]
        lr = self.branch_row[:nl][line_live]
        with np.errstate(invalid="ignore", divide="ignore"):
            i_line = np.maximum(i_f_ka[lr], i_t_ka[lr])
            loading[:, :nl][:, line_live] = (i_line / self.line_imax[line_live, None] * 100.0).T
            tr_live = live[nl:]
            tr_rows = self.branch_row[nl:][tr_live]
            ld = np.maximum(
                i_f_ka[tr_rows] * self.tr_vn[tr_live, 0, None], i_t_ka[tr_rows] * self.tr_vn[tr_live, 1, None]
            )
            loading[:, nl:][:, tr_live] = (ld * _SQRT3 / self.tr_sn[tr_live, None] * 100.0).T
        s_calc = v[self.ref] * np.conj(self.ybus[self.ref] @ v)
        p_local = np.zeros(t)
        for b in np.flatnonzero(np.isin(self.ppc_of_bus, self.ref)):
            p_local += p[:, b]
        p_tdi = s_calc.real.sum(axis=0) * self.base_mva - p_local
        converged = sol.converged.copy()
        vm[~converged] = np.nan
        return AcFlowResult(vm, p_from, q_from, p_to, q_to, loading, p_tdi, converged, backend="batched")

    # --- runpp ----------------------------------------------------------------------------------------

    def run_runpp(self, p: FloatArray, q: FloatArray, progress: Progress | None) -> AcFlowResult:
        net = self.net
        t = p.shape[0]
        n_br = self.n_line + len(net.trafo)
        vm = np.full((t, self.n_bus), np.nan)
        p_from = np.full((t, n_br), np.nan)
        q_from = np.full((t, n_br), np.nan)
        p_to = np.full((t, n_br), np.nan)
        q_to = np.full((t, n_br), np.nan)
        loading = np.full((t, n_br), np.nan)
        p_tdi = np.full(t, np.nan)
        converged = np.zeros(t, dtype=np.bool_)
        recycle = {"bus_pq": True, "trafo": False, "gen": False}
        nl = self.n_line
        for k in range(t):
            self._set_injections(p[k], q[k])
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pp.runpp(net, numba=True, recycle=recycle)
            except pp.LoadflowNotConverged:
                # the failed run leaves no usable internals; rebuild on the next call
                net._ppc = None
                if progress is not None:
                    progress("ac power flow", k + 1, t)
                continue
            converged[k] = True
            vm[k] = net.res_bus.vm_pu.to_numpy(dtype=float)
            rl, rt = net.res_line, net.res_trafo
            p_from[k, :nl] = rl.p_from_mw.to_numpy(dtype=float)
            q_from[k, :nl] = rl.q_from_mvar.to_numpy(dtype=float)
            p_to[k, :nl] = rl.p_to_mw.to_numpy(dtype=float)
            q_to[k, :nl] = rl.q_to_mvar.to_numpy(dtype=float)
            loading[k, :nl] = rl.loading_percent.to_numpy(dtype=float)
            p_from[k, nl:] = rt.p_hv_mw.to_numpy(dtype=float)
            q_from[k, nl:] = rt.q_hv_mvar.to_numpy(dtype=float)
            p_to[k, nl:] = rt.p_lv_mw.to_numpy(dtype=float)
            q_to[k, nl:] = rt.q_lv_mvar.to_numpy(dtype=float)
            loading[k, nl:] = rt.loading_percent.to_numpy(dtype=float)
            p_tdi[k] = float(net.res_ext_grid.p_mw.sum())
            if progress is not None:
                progress("ac power flow", k + 1, t)
        return AcFlowResult(vm, p_from, q_from, p_to, q_to, loading, p_tdi, converged, backend="runpp")
