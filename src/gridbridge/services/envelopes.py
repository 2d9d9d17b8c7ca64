"""Use case: compute dynamic operating envelopes (and hosting capacity) for a network and a horizon.

:func:`compute_envelopes` runs the whole method:

1. validate the request (interval length, horizon, band, connection points, weights) and apply switching;
2. topology: energised buses, the tree from the slack, the feeder of every connection point
   (a de-energised point gets zero limits, bound by ``de-energised``);
3. the forecast (per-bus net injections per interval; missing intervals, buses or values are refused)
   and one AC power flow per interval: the base case, whose own band and loading violations are reported;
4. per direction (export, import): limits from the radial linear model under the chosen policy with every
   point at its limit at once;
5. AC verification: the network with every point at its limit (net injection = export limit, or
   withdrawal = import limit, at unity power factor; everything else at forecast) for every interval.
   Then ``refine_rounds`` rounds re-linearise every interval around its verified AC state (which takes the
   linear model's error out), and up to ``max_tighten_rounds`` rounds re-linearise and tighten the intervals
   still beyond tolerance, each followed by a new AC check. An interval whose refined limits fail falls back
   to the last limits that passed. The result carries each interval's final check and status;
6. the result: limits per (connection point, interval), binding constraints, verification, base case, and a
   calculation log (inputs, method, policy, parameters, version, timings).

Nothing is returned when the input is bad: every rule raises ``ValidationFailed`` with a stable code and
the field. :func:`compute_hosting_capacity` gives the largest export and import at each point alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

import gridbridge
from gridbridge.domain.clock import Clock
from gridbridge.domain.envelopes import (
    FORECAST_INCOMPLETE,
    INTERVAL_INVALID,
    LIMIT_INVALID,
    RATING_NEGATIVE,
    UNKNOWN_BUS,
    AllocationPolicy,
    Direction,
    NetworkLimits,
    OperatingEnvelope,
    SwitchingState,
    VerificationTolerance,
    validate_interval_minutes,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.envelopes import (
    ConstraintCode,
    DirectionLimits,
    OperatingState,
    PointSet,
    RadialNetwork,
    Topology,
    allocate,
    build_radial_network,
    hosting_capacity,
    process_topology,
    state_from_branch_flows,
)
from gridbridge.engines.envelopes._types import BoolArray, FloatArray, IntArray
from gridbridge.engines.envelopes.network import path_sum, subtree_sum
from gridbridge.services.envelopes_ports import AcFlowResult, BusForecast, EnvelopeNetwork, ForecastSource, Progress
from gridbridge.services.envelopes_verification import AcCheck, check_ac

METHOD = (
    "radial linearised power flow (LinDistFlow-style, O(n) per interval) around an AC base case, "
    "AC verification with every connection point at its limit, re-linearisation and tightening"
)
#: Longest horizon one request may cover.
MAX_HORIZON = timedelta(days=7)
#: Interval statuses.
VERIFIED = "verified"
INFEASIBLE = "infeasible"
FAILED = "failed"
NOT_VERIFIED = "not_verified"
NO_POINTS = "no_points"


@dataclass(frozen=True)
class EnvelopeRequest:
    """What to compute: ``intervals`` intervals of ``interval_minutes`` from ``start`` (UTC, aligned to the
    interval length), the allocation ``policy``, the ``limits`` and the AC ``tolerance``.

    ``connection_points`` (bus names) replaces the network's default points (every bus with a load);
    ``weights_kw`` overrides proportional weights per bus name. ``switching`` is applied first.
    ``refine_rounds`` (0-5) and ``max_tighten_rounds`` (0-10) bound the AC re-check loop; ``verify``
    False skips AC verification (statuses are then ``not_verified``).
    """

    start: datetime
    intervals: int
    interval_minutes: int = 5
    policy: AllocationPolicy = AllocationPolicy.EQUAL
    limits: NetworkLimits = field(default_factory=NetworkLimits)
    tolerance: VerificationTolerance = field(default_factory=VerificationTolerance)
    connection_points: tuple[str, ...] | None = None
    weights_kw: Mapping[str, float] | None = None
    switching: SwitchingState = field(default_factory=SwitchingState)
    refine_rounds: int = 1
    max_tighten_rounds: int = 4
    verify: bool = True

    def __post_init__(self) -> None:
        validate_interval_minutes(self.interval_minutes)
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValidationFailed("start must be a timezone-aware datetime", field="start", code=INTERVAL_INVALID)
        start = self.start.astimezone(UTC)
        object.__setattr__(self, "start", start)
        if start.second or start.microsecond or start.minute % self.interval_minutes:
            raise ValidationFailed(
                f"start {start.isoformat()} is not aligned to {self.interval_minutes}-minute intervals",
                field="start",
                code=INTERVAL_INVALID,
            )
        if isinstance(self.intervals, bool) or not isinstance(self.intervals, int) or self.intervals < 1:
            raise ValidationFailed(
                f"intervals must be a positive integer; got {self.intervals!r}",
                field="intervals",
                code=INTERVAL_INVALID,
            )
        if self.intervals * self.interval_minutes > MAX_HORIZON.total_seconds() / 60:
            raise ValidationFailed(
                f"the horizon of {self.intervals} x {self.interval_minutes} min exceeds {MAX_HORIZON.days} days",
                field="intervals",
                code=INTERVAL_INVALID,
            )
        if not isinstance(self.policy, AllocationPolicy):
            object.__setattr__(self, "policy", AllocationPolicy(self.policy))
        for name, upper in (("refine_rounds", 5), ("max_tighten_rounds", 10)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
                raise ValidationFailed(
                    f"{name} must be an integer from 0 to {upper}; got {value!r}", field=name, code=LIMIT_INVALID
                )
        if self.connection_points is not None:
            object.__setattr__(self, "connection_points", tuple(self.connection_points))

    @property
    def interval_starts(self) -> tuple[datetime, ...]:
        """Start of every interval (UTC)."""
        step = timedelta(minutes=self.interval_minutes)
        return tuple(self.start + k * step for k in range(self.intervals))


@dataclass(frozen=True, eq=False)
class DirectionResult:
    """The limits of one direction after verification.

    ``p_max_kw``/``binding``/``infeasible`` are (T, m); ``check`` is the final AC check per interval (None
    when not verified); ``status`` per interval is ``verified``, ``infeasible`` (the base case breaks a limit
    the points influence even at zero; limits zero), ``failed`` (still beyond tolerance after the allowed
    rounds), ``not_verified`` or ``no_points``; ``rounds`` counts the re-linearisations per interval;
    ``vm_pu`` (T, n_bus) the AC voltages with every point at its limit (None when not verified).
    """

    direction: Direction
    p_max_kw: FloatArray
    binding: IntArray
    infeasible: BoolArray
    check: AcCheck | None
    status: tuple[str, ...]
    rounds: IntArray
    vm_pu: FloatArray | None

    @property
    def failed_intervals(self) -> int:
        """Number of intervals beyond tolerance after tightening."""
        return sum(1 for s in self.status if s == FAILED)


@dataclass(frozen=True)
class CalculationLog:
    """How an envelope set was made: when, by which version, method, policy, parameters, inputs, timings."""

    computed_at: datetime
    gridbridge_version: str
    method: str
    policy: str
    ac_backend: str
    parameters: Mapping[str, Any]
    inputs: Mapping[str, Any]
    timings_s: Mapping[str, float]
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the log."""
        return {
            "computed_at": self.computed_at.isoformat(),
            "gridbridge_version": self.gridbridge_version,
            "method": self.method,
            "policy": self.policy,
            "ac_backend": self.ac_backend,
            "parameters": dict(self.parameters),
            "inputs": dict(self.inputs),
            "timings_s": {k: round(v, 6) for k, v in self.timings_s.items()},
            "notes": list(self.notes),
        }


@dataclass(frozen=True, eq=False)
class EnvelopeRun:
    """A computed envelope set (see :func:`compute_envelopes`).

    Points are in the order of ``point_names`` (bus names), intervals in the order of ``interval_starts``.
    ``labels[code]`` names a binding constraint; ``base`` is the AC check of the forecast itself over every
    bus and branch; ``bus_distance_km`` the line length from the slack to each bus (NaN if de-energised).
    """

    network_name: str
    interval_starts: tuple[datetime, ...]
    interval_minutes: int
    issued_at: datetime
    policy: AllocationPolicy
    limits: NetworkLimits
    point_names: tuple[str, ...]
    point_buses: IntArray
    point_feeders: tuple[str | None, ...]
    export: DirectionResult
    import_: DirectionResult
    labels: tuple[str, ...]
    base: AcCheck
    base_vm_pu: FloatArray
    bus_names: tuple[str, ...]
    branch_names: tuple[str, ...]
    bus_distance_km: FloatArray
    log: CalculationLog

    @property
    def intervals(self) -> int:
        """Number of intervals."""
        return len(self.interval_starts)

    def interval_end(self, k: int) -> datetime:
        """End of interval ``k``."""
        return self.interval_starts[k] + timedelta(minutes=self.interval_minutes)

    def binding_labels(self, direction: Direction) -> Any:
        """(T, m) array of binding-constraint labels for ``direction``."""
        res = self.export if direction is Direction.EXPORT else self.import_
        return np.asarray(self.labels, dtype=object)[res.binding]

    def de_energised_points(self) -> tuple[str, ...]:
        """Names of the connection points without an energised path to the slack."""
        code = ConstraintCode.de_energised(_network_size(self.labels))
        row = self.export.binding[0] if self.intervals else np.zeros(0, dtype=np.int64)
        return tuple(n for n, c in zip(self.point_names, row, strict=True) if c == code)

    def envelopes(self) -> Iterator[OperatingEnvelope]:
        """One :class:`OperatingEnvelope` per (point, interval), expiring at the interval end."""
        exp_lab = self.binding_labels(Direction.EXPORT)
        imp_lab = self.binding_labels(Direction.IMPORT)
        for k, start in enumerate(self.interval_starts):
            end = self.interval_end(k)
            for j, name in enumerate(self.point_names):
                yield OperatingEnvelope(
                    connection_point=name,
                    interval_start=start,
                    interval_end=end,
                    p_export_max_kw=float(self.export.p_max_kw[k, j]),
                    p_import_max_kw=float(self.import_.p_max_kw[k, j]),
                    binding_export=str(exp_lab[k, j]),
                    binding_import=str(imp_lab[k, j]),
                    expiry=end,
                    issued_at=self.issued_at,
                )

    def summary(self) -> dict[str, Any]:
        """Headline figures: points, intervals, limit ranges, verification counts, worst AC excursions."""
        out: dict[str, Any] = {
            "network": self.network_name,
            "points": len(self.point_names),
            "intervals": self.intervals,
            "policy": self.policy.value,
            "de_energised_points": len(self.de_energised_points()),
            "base_intervals_beyond_limits": int((~self.base.within_tolerance).sum()),
        }
        for res in (self.export, self.import_):
            key = res.direction.value
            values = res.p_max_kw
            out[f"{key}_kw_min"] = float(values.min()) if values.size else 0.0
            out[f"{key}_kw_max"] = float(values.max()) if values.size else 0.0
            out[f"{key}_kw_mean"] = float(values.mean()) if values.size else 0.0
            for status in (VERIFIED, INFEASIBLE, FAILED, NOT_VERIFIED, NO_POINTS):
                out[f"{key}_{status}"] = sum(1 for s in res.status if s == status)
            if res.check is not None:
                out[f"{key}_max_v_violation_pu"] = float(res.check.v_violation_pu.max(initial=0.0))
                out[f"{key}_max_loading_overshoot_pct"] = float(res.check.loading_overshoot_pct.max(initial=0.0))
                out[f"{key}_max_tdi_overshoot_kw"] = float(res.check.tdi_overshoot_kw.max(initial=0.0))
                out[f"{key}_rounds_max"] = int(res.rounds.max(initial=0))
                out[f"{key}_worst_bus"], out[f"{key}_worst_branch"] = self._worst_elements(res.check)
        out["base_max_v_violation_pu"] = float(self.base.v_violation_pu.max(initial=0.0))
        out["base_max_loading_overshoot_pct"] = float(self.base.loading_overshoot_pct.max(initial=0.0))
        out["base_worst_bus"], out["base_worst_branch"] = self._worst_elements(self.base)
        return out

    def _worst_elements(self, check: AcCheck) -> tuple[str | None, str | None]:
        """Names of the bus and branch with the largest excursion over all intervals (None if none)."""
        bus: str | None = None
        branch: str | None = None
        if check.intervals and check.v_violation_pu.max() > 0:
            k = int(np.argmax(check.v_violation_pu))
            bus = self.bus_names[int(check.worst_bus[k])]
        if check.intervals and check.loading_overshoot_pct.max() > 0:
            k = int(np.argmax(check.loading_overshoot_pct))
            branch = self.branch_names[int(check.worst_branch[k])]
        return bus, branch


def _network_size(labels: Sequence[str]) -> int:
    return (len(labels) - 6) // 3


# --- helpers -------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Prepared:
    network: EnvelopeNetwork
    topology: Topology
    radial: RadialNetwork
    points: PointSet
    point_buses: IntArray
    point_names: tuple[str, ...]
    forecast: BusForecast
    bus_mask: BoolArray
    branch_mask: BoolArray


def _select_points(
    network: EnvelopeNetwork, names: tuple[str, ...] | None, weights_kw: Mapping[str, float] | None
) -> tuple[IntArray, FloatArray]:
    """Bus positions and weights of the connection points (validated)."""
    bus_pos = {name: i for i, name in enumerate(network.bus_names)}
    default_buses = network.connection_point_buses
    default_w = dict(zip(default_buses.tolist(), network.default_weights_kw().tolist(), strict=True))
    if names is None:
        buses = np.asarray(default_buses, dtype=np.int64)
    else:
        unknown = [n for n in names if n not in bus_pos]
        if unknown:
            raise ValidationFailed(
                f"connection point bus {unknown[0]!r} is not in the network"
                + (f" ({len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""),
                field="connection_points",
                code=UNKNOWN_BUS,
                details={"unknown": unknown[:20]},
            )
        if len(set(names)) != len(names):
            raise ValidationFailed(
                "connection points must be distinct buses", field="connection_points", code=UNKNOWN_BUS
            )
        buses = np.asarray([bus_pos[n] for n in names], dtype=np.int64)
    weights = np.asarray([default_w.get(int(b), 1.0) for b in buses], dtype=np.float64)
    if weights_kw:
        pos_of = {int(b): j for j, b in enumerate(buses)}
        for name, value in weights_kw.items():
            if name not in bus_pos:
                raise ValidationFailed(
                    f"weight given for bus {name!r}, which is not in the network", field="weights_kw", code=UNKNOWN_BUS
                )
            j = pos_of.get(bus_pos[name])
            if j is None:
                raise ValidationFailed(
                    f"weight given for bus {name!r}, which is not a connection point",
                    field="weights_kw",
                    code=UNKNOWN_BUS,
                )
            try:
                w = float(value)
            except (TypeError, ValueError):
                w = float("nan")
            if not np.isfinite(w) or w < 0:
                raise ValidationFailed(
                    f"weight (DER rating) of {name!r} must be a finite number >= 0; got {value!r}",
                    field="weights_kw",
                    code=RATING_NEGATIVE,
                )
            weights[j] = w
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise ValidationFailed("DER ratings must be finite and >= 0", field="weights_kw", code=RATING_NEGATIVE)
    return buses, weights


def _validate_forecast(forecast: BusForecast, request: EnvelopeRequest, bus_names: tuple[str, ...]) -> BusForecast:
    """Check the forecast covers every interval, bus and value; return it in the network's bus order."""
    if forecast.interval_minutes != request.interval_minutes:
        raise ValidationFailed(
            f"the forecast has {forecast.interval_minutes}-minute intervals; {request.interval_minutes} requested",
            field="forecast.interval_minutes",
            code=FORECAST_INCOMPLETE,
        )
    wanted = request.interval_starts
    have = {s.astimezone(UTC) for s in forecast.interval_starts}
    missing = [s for s in wanted if s not in have]
    if missing:
        raise ValidationFailed(
            f"the forecast misses {len(missing)} of {len(wanted)} intervals, first {missing[0].isoformat()}",
            field="forecast.interval_starts",
            code=FORECAST_INCOMPLETE,
            details={"missing": [m.isoformat() for m in missing[:20]]},
        )
    p = np.asarray(forecast.p_inj_mw, dtype=np.float64)
    q = np.asarray(forecast.q_inj_mvar, dtype=np.float64)
    n_fc = len(forecast.bus_names)
    if p.shape != (len(forecast.interval_starts), n_fc) or q.shape != p.shape:
        raise ValidationFailed(
            "forecast arrays must have one row per interval and one column per bus",
            field="forecast",
            code=FORECAST_INCOMPLETE,
        )
    pos = {name: i for i, name in enumerate(bus_names)}
    unknown = [n for n in forecast.bus_names if n not in pos]
    if unknown:
        raise ValidationFailed(
            f"the forecast names bus {unknown[0]!r}, which is not in the network",
            field="forecast.bus_names",
            code=UNKNOWN_BUS,
            details={"unknown": unknown[:20]},
        )
    covered = set(forecast.bus_names)
    absent = [n for n in bus_names if n not in covered]
    if absent:
        raise ValidationFailed(
            f"the forecast has no values for {len(absent)} buses, first {absent[0]!r}",
            field="forecast.bus_names",
            code=FORECAST_INCOMPLETE,
        )
    row_of = {s.astimezone(UTC): i for i, s in enumerate(forecast.interval_starts)}
    rows = np.asarray([row_of[s] for s in wanted], dtype=np.int64)
    cols = np.asarray([pos[n] for n in forecast.bus_names], dtype=np.int64)
    p_out = np.zeros((len(wanted), len(bus_names)))
    q_out = np.zeros((len(wanted), len(bus_names)))
    p_out[:, cols] = p[rows]
    q_out[:, cols] = q[rows]
    bad = ~np.isfinite(p_out) | ~np.isfinite(q_out)
    if bad.any():
        k, b = np.argwhere(bad)[0]
        raise ValidationFailed(
            f"the forecast value for bus {bus_names[b]!r} at {wanted[k].isoformat()} is missing or not finite",
            field="forecast",
            code=FORECAST_INCOMPLETE,
        )
    return BusForecast(bus_names, wanted, request.interval_minutes, p_out, q_out, forecast.source)


def _controllable(
    topology: Topology, radial: RadialNetwork, points: PointSet, n_bus: int
) -> tuple[BoolArray, BoolArray]:
    """Buses whose voltage and branches whose flow some energised connection point moves."""
    counts = np.zeros(radial.n)
    ok = points.energised
    np.add.at(counts, points.node[ok], 1.0)
    below = subtree_sum(radial, counts)
    below[radial.is_root] = 0.0
    node_ctrl = path_sum(radial, (below > 0).astype(float)) > 0
    bus_mask = np.zeros(n_bus, dtype=np.bool_)
    node_of_bus = topology.node_of_bus
    has_node = node_of_bus >= 0
    net_node = np.full(n_bus, -1, dtype=np.int64)
    net_node[has_node] = radial.node_of_topo[node_of_bus[has_node]]
    on = net_node >= 0
    bus_mask[on] = node_ctrl[net_node[on]]
    edge = topology.edge_of_branch
    branch_mask = np.zeros(len(edge), dtype=np.bool_)
    in_tree = edge >= 0
    net_edge = np.full(len(edge), -1, dtype=np.int64)
    net_edge[in_tree] = radial.node_of_topo[edge[in_tree]]
    live = net_edge >= 0
    branch_mask[live] = below[net_edge[live]] > 0
    return bus_mask, branch_mask


def _prepare(request: EnvelopeRequest, network: EnvelopeNetwork, forecast_source: ForecastSource) -> _Prepared:
    if not request.switching.empty:
        network = network.with_switching(request.switching.open_elements, request.switching.close_elements)
    topology = process_topology(network.topology_inputs())
    radial = build_radial_network(topology, network.branch_parameters())
    buses, weights = _select_points(network, request.connection_points, request.weights_kw)
    topo_node = topology.node_of_bus[buses]
    node = np.where(topo_node >= 0, radial.node_of_topo[np.maximum(topo_node, 0)], -1)
    points = PointSet(node, weights)
    forecast = _validate_forecast(
        forecast_source.bus_forecast(request.interval_starts, request.interval_minutes), request, network.bus_names
    )
    bus_mask, branch_mask = _controllable(topology, radial, points, len(network.bus_names))
    names = tuple(network.bus_names[int(b)] for b in buses)
    return _Prepared(network, topology, radial, points, buses, names, forecast, bus_mask, branch_mask)


class _AcState:
    """Mutable per-interval copy of AC results, so rows can be replaced after re-checks."""

    def __init__(self, result: AcFlowResult) -> None:
        self.vm = result.vm_pu.copy()
        self.p_from = result.p_from_mw.copy()
        self.q_from = result.q_from_mvar.copy()
        self.p_to = result.p_to_mw.copy()
        self.q_to = result.q_to_mvar.copy()
        self.loading = result.loading_pct.copy()
        self.p_tdi = result.p_tdi_mw.copy()
        self.converged = result.converged.copy()
        self.backend = result.backend

    def put(self, rows: IntArray, result: AcFlowResult) -> None:
        self.vm[rows] = result.vm_pu
        self.p_from[rows] = result.p_from_mw
        self.q_from[rows] = result.q_from_mvar
        self.p_to[rows] = result.p_to_mw
        self.q_to[rows] = result.q_to_mvar
        self.loading[rows] = result.loading_pct
        self.p_tdi[rows] = result.p_tdi_mw
        self.converged[rows] = result.converged

    def result(self, rows: IntArray | None = None) -> AcFlowResult:
        sel = slice(None) if rows is None else rows
        return AcFlowResult(
            self.vm[sel],
            self.p_from[sel],
            self.q_from[sel],
            self.p_to[sel],
            self.q_to[sel],
            self.loading[sel],
            self.p_tdi[sel],
            self.converged[sel],
            self.backend,
        )


def _state(prep: _Prepared, ac: AcFlowResult, cp_p_mw: FloatArray, cp_q_mvar: FloatArray) -> OperatingState:
    vm = np.where(np.isfinite(ac.vm_pu), ac.vm_pu, 1.0)
    return state_from_branch_flows(
        prep.topology,
        prep.radial,
        vm,
        ac.p_from_mw,
        ac.q_from_mvar,
        ac.p_to_mw,
        ac.q_to_mvar,
        np.nan_to_num(ac.p_tdi_mw),
        cp_p_mw,
        cp_q_mvar,
    )


def _injections(prep: _Prepared, rows: IntArray, p_max_kw: FloatArray, sign: float) -> tuple[FloatArray, FloatArray]:
    """Per-bus injections with every connection point at its limit (rows of the horizon)."""
    p = prep.forecast.p_inj_mw[rows].copy()
    q = prep.forecast.q_inj_mvar[rows].copy()
    p[:, prep.point_buses] = sign * p_max_kw / 1000.0
    q[:, prep.point_buses] = 0.0
    return p, q


def _verify_direction(
    prep: _Prepared,
    request: EnvelopeRequest,
    direction: Direction,
    first: DirectionLimits,
    progress: Progress | None,
    step: list[int],
    total: int,
) -> DirectionResult:
    """AC-verify ``first``, then refine and tighten (see the module docstring)."""
    t = first.p_max_kw.shape[0]
    sign = 1.0 if direction is Direction.EXPORT else -1.0
    p_max = first.p_max_kw.copy()
    binding = first.binding.copy()
    infeasible = first.infeasible.copy()
    rounds = np.zeros(t, dtype=np.int64)
    all_rows = np.arange(t)
    has_points = np.full(t, bool(prep.points.energised.any()))
    if not request.verify:
        status = tuple(NOT_VERIFIED if h else NO_POINTS for h in has_points)
        return DirectionResult(direction, p_max, binding, infeasible, None, status, rounds, None)

    def run(rows: IntArray, limits_kw: FloatArray) -> AcFlowResult:
        p, q = _injections(prep, rows, limits_kw, sign)
        return prep.network.run_ac(p, q)

    def check(result: AcFlowResult) -> AcCheck:
        return check_ac(result, request.limits, request.tolerance, prep.bus_mask, prep.branch_mask)

    def tick(label: str) -> None:
        step[0] += 1
        if progress is not None:
            progress(label, min(step[0], total), total)

    ac = _AcState(run(all_rows, p_max))
    chk = check(ac.result())
    ok = chk.within_tolerance.copy()
    tick(f"{direction.value}: AC verification")
    # last limits that passed, per interval
    good_p = np.where(ok[:, None], p_max, np.nan)
    good_b = binding.copy()
    good_ac = _AcState(ac.result())
    infeasible_row = infeasible.any(axis=1)
    fails = np.zeros(t, dtype=np.int64)
    n_rounds = request.refine_rounds + request.max_tighten_rounds
    for rnd in range(n_rounds):
        refining = rnd < request.refine_rounds
        todo = (has_points & ~infeasible_row) if refining else (~ok & has_points & ~infeasible_row)
        rows = np.flatnonzero(todo)
        if len(rows) == 0:
            if not refining:
                break
            continue
        sub = ac.result(rows)
        conv = sub.converged
        new_p = p_max[rows] * 0.5  # fallback for intervals whose AC run did not converge
        new_b = binding[rows].copy()
        new_inf = infeasible[rows].copy()
        crow = np.flatnonzero(conv)
        if len(crow):
            cp_p = sign * p_max[rows[crow]] / 1000.0
            state = _state(prep, _take(sub, crow), cp_p, np.zeros_like(cp_p))
            lim = allocate(prep.radial, state, prep.points, request.limits, request.policy, direction)
            cand = lim.p_max_kw
            if not refining:
                old_tot = p_max[rows[crow]].sum(axis=1)
                new_tot = cand.sum(axis=1)
                shrink = 1.0 - 0.01 * (1 + fails[rows[crow]])
                with np.errstate(divide="ignore", invalid="ignore"):
                    factor = np.where(new_tot > 0, np.minimum(1.0, shrink * old_tot / new_tot), 1.0)
                factor = np.where(new_tot >= old_tot * shrink, factor, 1.0)
                cand = cand * factor[:, None]
            new_p[crow] = cand
            new_b[crow] = lim.binding
            new_inf[crow] = lim.infeasible
        p_max[rows] = new_p
        binding[rows] = new_b
        infeasible[rows] = new_inf
        rounds[rows] += 1
        result = run(rows, new_p)
        ac.put(rows, result)
        sub_chk = check(result)
        ok[rows] = sub_chk.within_tolerance
        fails[rows] = np.where(sub_chk.within_tolerance, 0, fails[rows] + (0 if refining else 1))
        passed = rows[sub_chk.within_tolerance]
        good_p[passed] = p_max[passed]
        good_b[passed] = binding[passed]
        good_ac.put(passed, _take(result, np.flatnonzero(sub_chk.within_tolerance)))
        infeasible_row = infeasible.any(axis=1)
        tick(f"{direction.value}: {'refine' if refining else 'tighten'} round {rnd + 1}")
    # fall back to the last passing limits where the final ones fail
    back = ~ok & np.isfinite(good_p).all(axis=1)
    if back.any():
        rows = np.flatnonzero(back)
        p_max[rows] = good_p[rows]
        binding[rows] = good_b[rows]
        ac.put(rows, good_ac.result(rows))
        ok[rows] = True
    final = check(ac.result())
    labels: list[str] = []
    for k in range(t):
        if not has_points[k]:
            labels.append(NO_POINTS)
        elif final.within_tolerance[k]:
            labels.append(VERIFIED)
        elif infeasible[k].any():
            labels.append(INFEASIBLE)
        else:
            labels.append(FAILED)
    return DirectionResult(direction, p_max, binding, infeasible, final, tuple(labels), rounds, ac.vm.copy())


def _take(result: AcFlowResult, rows: IntArray) -> AcFlowResult:
    return AcFlowResult(
        result.vm_pu[rows],
        result.p_from_mw[rows],
        result.q_from_mvar[rows],
        result.p_to_mw[rows],
        result.q_to_mvar[rows],
        result.loading_pct[rows],
        result.p_tdi_mw[rows],
        result.converged[rows],
        result.backend,
    )


def _bus_distance_km(prep: _Prepared) -> FloatArray:
    dist_node = path_sum(prep.radial, prep.radial.length_km.copy())
    node_of_bus = prep.topology.node_of_bus
    out = np.full(len(node_of_bus), np.nan)
    has = node_of_bus >= 0
    net_node = np.full(len(node_of_bus), -1, dtype=np.int64)
    net_node[has] = prep.radial.node_of_topo[node_of_bus[has]]
    on = net_node >= 0
    out[on] = dist_node[net_node[on]]
    return out


# --- use cases ----------------------------------------------------------------------------------------


def compute_envelopes(
    request: EnvelopeRequest,
    network: EnvelopeNetwork,
    forecast: ForecastSource,
    *,
    clock: Clock,
    progress: Progress | None = None,
) -> EnvelopeRun:
    """Compute, verify and tighten the envelopes of ``request`` on ``network`` (see the module docstring)."""
    timings: dict[str, float] = {}
    total = 3 + 2 * (1 + request.refine_rounds + request.max_tighten_rounds)
    step = [0]

    def tick(label: str) -> None:
        step[0] += 1
        if progress is not None:
            progress(label, min(step[0], total), total)

    t0 = time.perf_counter()
    prep = _prepare(request, network, forecast)
    timings["prepare"] = time.perf_counter() - t0
    tick("forecast and topology")

    t0 = time.perf_counter()
    fc = prep.forecast
    base_ac = prep.network.run_ac(fc.p_inj_mw, fc.q_inj_mvar)
    timings["base_power_flow"] = time.perf_counter() - t0
    tick("base-case power flow")
    base = check_ac(base_ac, request.limits, request.tolerance)
    cp_p = fc.p_inj_mw[:, prep.point_buses]
    cp_q = fc.q_inj_mvar[:, prep.point_buses]
    state = _state(prep, base_ac, cp_p, cp_q)

    results: dict[Direction, DirectionResult] = {}
    for direction in (Direction.EXPORT, Direction.IMPORT):
        t0 = time.perf_counter()
        first = allocate(prep.radial, state, prep.points, request.limits, request.policy, direction)
        not_conv = ~base_ac.converged
        if not_conv.any():
            first.p_max_kw[not_conv] = 0.0
            first.infeasible[not_conv] = prep.points.energised[None, :]
        timings[f"{direction.value}_limits"] = time.perf_counter() - t0
        tick(f"{direction.value}: limits")
        t0 = time.perf_counter()
        results[direction] = _verify_direction(prep, request, direction, first, progress, step, total)
        timings[f"{direction.value}_verification"] = time.perf_counter() - t0
    if progress is not None:
        progress("done", total, total)

    inputs = {
        "network": prep.network.name,
        "buses": len(prep.network.bus_names),
        "energised_nodes": prep.radial.n,
        "connection_points": len(prep.point_names),
        "forecast": getattr(forecast, "description", type(forecast).__name__),
        "start": request.start.isoformat(),
        "intervals": request.intervals,
        "switching": {
            "open": list(request.switching.open_elements),
            "close": list(request.switching.close_elements),
        },
        "weights_overridden": sorted(request.weights_kw) if request.weights_kw else [],
    }
    parameters = {
        "interval_minutes": request.interval_minutes,
        "v_min_pu": request.limits.v_min_pu,
        "v_max_pu": request.limits.v_max_pu,
        "max_loading_pct": request.limits.max_loading_pct,
        "tdi_reverse_limit_kw": request.limits.tdi_reverse_limit_kw,
        "tdi_forward_limit_kw": request.limits.tdi_forward_limit_kw,
        "point_cap_kw": request.limits.point_cap_kw,
        "tolerance_v_pu": request.tolerance.v_pu,
        "tolerance_loading_pct": request.tolerance.loading_pct,
        "tolerance_tdi_pct": request.tolerance.tdi_pct,
        "refine_rounds": request.refine_rounds,
        "max_tighten_rounds": request.max_tighten_rounds,
        "verify": request.verify,
    }
    notes = [
        "limits are on the net active power at the connection point at unity power factor",
        "constraints no connection point can influence are reported with the base case, not verified",
    ]
    log = CalculationLog(
        computed_at=clock.now(),
        gridbridge_version=gridbridge.__version__,
        method=METHOD,
        policy=request.policy.value,
        ac_backend=prep.network.ac_backend,
        parameters=parameters,
        inputs=inputs,
        timings_s=timings,
        notes=tuple(notes),
    )
    topo_inputs = prep.topology.inputs
    return EnvelopeRun(
        network_name=prep.network.name,
        interval_starts=request.interval_starts,
        interval_minutes=request.interval_minutes,
        issued_at=log.computed_at,
        policy=request.policy,
        limits=request.limits,
        point_names=prep.point_names,
        point_buses=prep.point_buses,
        point_feeders=prep.topology.feeder_names(prep.point_buses),
        export=results[Direction.EXPORT],
        import_=results[Direction.IMPORT],
        labels=prep.radial.constraint_labels(),
        base=base,
        base_vm_pu=base_ac.vm_pu,
        bus_names=prep.network.bus_names,
        branch_names=topo_inputs.branch_names,
        bus_distance_km=_bus_distance_km(prep),
        log=log,
    )


@dataclass(frozen=True, eq=False)
class HostingCapacityRun:
    """Hosting capacity per interval (T) and connection point (m) for export and import, binding labels,
    ``infeasible`` flags where the base case already breaks a limit the point influences, and the AC
    verification status of each value (``verified``, ``failed``, ``infeasible``, ``not_verified``)."""

    point_names: tuple[str, ...]
    interval_starts: tuple[datetime, ...]
    p_export_max_kw: FloatArray
    p_import_max_kw: FloatArray
    binding_export: Any
    binding_import: Any
    infeasible_export: BoolArray
    infeasible_import: BoolArray
    status_export: Any
    status_import: Any
    log: CalculationLog

    def worst_case(self) -> dict[str, tuple[float, str, float, str]]:
        """Per point: the smallest export and import capacity over the intervals and their binding labels."""
        out: dict[str, tuple[float, str, float, str]] = {}
        if not self.interval_starts:
            return out
        ke = np.argmin(self.p_export_max_kw, axis=0)
        ki = np.argmin(self.p_import_max_kw, axis=0)
        for j, name in enumerate(self.point_names):
            out[name] = (
                float(self.p_export_max_kw[ke[j], j]),
                str(self.binding_export[ke[j], j]),
                float(self.p_import_max_kw[ki[j], j]),
                str(self.binding_import[ki[j], j]),
            )
        return out

    def assess(self, point: str, p_export_kw: float, p_import_kw: float = 0.0) -> tuple[bool, str | None]:
        """Whether an interconnection application at ``point`` fits its worst-case hosting capacity; if not,
        the binding element that it would overload or push out of the band."""
        worst = self.worst_case()
        if point not in worst:
            raise ValidationFailed(
                f"{point!r} is not a connection point of this study", field="point", code=UNKNOWN_BUS
            )
        exp_kw, exp_b, imp_kw, imp_b = worst[point]
        if p_export_kw > exp_kw:
            return False, exp_b
        if p_import_kw > imp_kw:
            return False, imp_b
        return True, None


def _verify_hosting(
    prep: _Prepared,
    request: EnvelopeRequest,
    direction: Direction,
    p_max_kw: FloatArray,
    binding: IntArray,
    infeasible: BoolArray,
    chunk: int,
) -> tuple[FloatArray, IntArray, Any]:
    """AC-check each point alone at its hosting capacity (one snapshot per point, ``chunk`` at a time),
    re-linearise and tighten like the envelopes; return limits, binding codes and a (T, m) status array."""
    t, m = p_max_kw.shape
    sign = 1.0 if direction is Direction.EXPORT else -1.0
    p_out = p_max_kw.copy()
    b_out = binding.copy()
    status = np.full((t, m), NOT_VERIFIED, dtype=object)
    energised = np.flatnonzero(prep.points.energised)
    fc = prep.forecast
    rounds = request.refine_rounds + request.max_tighten_rounds
    for k in range(t):
        for lo in range(0, len(energised), chunk):
            cols = energised[lo : lo + chunk]
            c = len(cols)
            skip = infeasible[k, cols]
            h = p_out[k, cols].copy()
            b = b_out[k, cols].copy()
            good = np.full(c, np.nan)
            ok = np.zeros(c, dtype=np.bool_)
            fails = np.zeros(c, dtype=np.int64)
            buses = prep.point_buses[cols]
            rows = np.arange(c)
            for rnd in range(rounds + 1):
                p = np.repeat(fc.p_inj_mw[k][None, :], c, axis=0)
                q = np.repeat(fc.q_inj_mvar[k][None, :], c, axis=0)
                p[rows, buses] = sign * h / 1000.0
                q[rows, buses] = 0.0
                ac = prep.network.run_ac(p, q)
                chk = check_ac(ac, request.limits, request.tolerance, prep.bus_mask, prep.branch_mask)
                ok = chk.within_tolerance
                good = np.where(ok, h, good)
                if rnd == rounds:
                    break
                refining = rnd < request.refine_rounds
                todo = ~skip if refining else (~ok & ~skip)
                idx = np.flatnonzero(todo)
                if len(idx) == 0:
                    if refining:
                        continue
                    break
                sub = _take(ac, idx)
                conv = sub.converged
                new_h = h[idx] * 0.5
                new_b = b[idx].copy()
                cidx = np.flatnonzero(conv)
                if len(cidx):
                    cp_p = np.repeat(fc.p_inj_mw[k][prep.point_buses][None, :], len(cidx), axis=0)
                    cp_q = np.repeat(fc.q_inj_mvar[k][prep.point_buses][None, :], len(cidx), axis=0)
                    own = cols[idx[cidx]]
                    cp_p[np.arange(len(cidx)), own] = sign * h[idx[cidx]] / 1000.0
                    cp_q[np.arange(len(cidx)), own] = 0.0
                    state = _state(prep, _take(sub, cidx), cp_p, cp_q)
                    res = hosting_capacity(prep.radial, state, prep.points, request.limits, direction)
                    cand = res.p_max_kw[np.arange(len(cidx)), own]
                    if not refining:
                        shrink = 1.0 - 0.01 * (1 + fails[idx[cidx]])
                        cand = np.minimum(cand, h[idx[cidx]] * shrink)
                    new_h[cidx] = cand
                    new_b[cidx] = res.binding[np.arange(len(cidx)), own]
                fails[idx] += 0 if refining else 1
                h[idx] = new_h
                b[idx] = new_b
            back = ~ok & np.isfinite(good)
            h = np.where(back, good, h)
            p_out[k, cols] = h
            b_out[k, cols] = b
            status[k, cols] = np.where(ok | back, VERIFIED, np.where(skip, INFEASIBLE, FAILED))
    status[:, ~prep.points.energised] = NO_POINTS
    return p_out, b_out, status


def compute_hosting_capacity(
    request: EnvelopeRequest,
    network: EnvelopeNetwork,
    forecast: ForecastSource,
    *,
    clock: Clock,
    chunk: int = 256,
) -> HostingCapacityRun:
    """Largest export and import at each connection point alone, every other point at forecast, for each
    interval of ``request``. With ``request.verify`` every value is checked by an AC power flow with that
    point alone at it (one snapshot per point and interval, solved ``chunk`` at a time) and re-linearised
    and tightened like the envelopes (``refine_rounds``, ``max_tighten_rounds``); the policy is not used."""
    t0 = time.perf_counter()
    prep = _prepare(request, network, forecast)
    fc = prep.forecast
    base_ac = prep.network.run_ac(fc.p_inj_mw, fc.q_inj_mvar)
    state = _state(prep, base_ac, fc.p_inj_mw[:, prep.point_buses], fc.q_inj_mvar[:, prep.point_buses])
    exp = hosting_capacity(prep.radial, state, prep.points, request.limits, Direction.EXPORT)
    imp = hosting_capacity(prep.radial, state, prep.points, request.limits, Direction.IMPORT)
    timings = {"linear": time.perf_counter() - t0}
    shape = exp.p_max_kw.shape
    status_exp = np.full(shape, NOT_VERIFIED, dtype=object)
    status_imp = np.full(shape, NOT_VERIFIED, dtype=object)
    exp_p, exp_b, imp_p, imp_b = exp.p_max_kw, exp.binding, imp.p_max_kw, imp.binding
    if request.verify:
        t1 = time.perf_counter()
        exp_p, exp_b, status_exp = _verify_hosting(
            prep, request, Direction.EXPORT, exp.p_max_kw, exp.binding, exp.infeasible, chunk
        )
        imp_p, imp_b, status_imp = _verify_hosting(
            prep, request, Direction.IMPORT, imp.p_max_kw, imp.binding, imp.infeasible, chunk
        )
        timings["verification"] = time.perf_counter() - t1
    labels = np.asarray(prep.radial.constraint_labels(), dtype=object)
    log = CalculationLog(
        computed_at=clock.now(),
        gridbridge_version=gridbridge.__version__,
        method="hosting capacity of each point alone: radial linearised model around an AC base case, "
        "then AC check of each point at its value, re-linearisation and tightening",
        policy="alone",
        ac_backend=prep.network.ac_backend,
        parameters={
            "v_min_pu": request.limits.v_min_pu,
            "v_max_pu": request.limits.v_max_pu,
            "max_loading_pct": request.limits.max_loading_pct,
            "verify": request.verify,
            "refine_rounds": request.refine_rounds,
            "max_tighten_rounds": request.max_tighten_rounds,
        },
        inputs={"network": prep.network.name, "intervals": request.intervals, "start": request.start.isoformat()},
        timings_s=timings,
    )
    return HostingCapacityRun(
        point_names=prep.point_names,
        interval_starts=request.interval_starts,
        p_export_max_kw=exp_p,
        p_import_max_kw=imp_p,
        binding_export=labels[exp_b],
        binding_import=labels[imp_b],
        infeasible_export=exp.infeasible,
        infeasible_import=imp.infeasible,
        status_export=status_exp,
        status_import=status_imp,
        log=log,
    )
