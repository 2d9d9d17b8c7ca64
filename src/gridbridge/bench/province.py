"""A synthetic province for benchmarks: up to millions of DERs under hundreds of T-D interfaces.

Everything is drawn from one seeded generator, vectorised, so 10^6 DERs take about a second. Each
interface runs one of the four coordination models (``gridbridge.domain.coordination`` records, mixed by
weight); DERs have a kind, a size with a heavy tail (a few large ones offer directly), an export envelope
in force at gate closure, a feeder, and an energy offer of 1-3 segments (up to 5 for large DERs). Storage
offers operating reserve too. Aggregators run single- and multi-interface aggregations; an aggregation's
distribution factors are its members' capacity shares per interface. A few offers are deliberately bad
(non-monotonic, or priced beyond the cap) so that validation has something to reject, and a few feeders
are out at the time of the distribution check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridbridge.domain.coordination import COORDINATION_MODELS, CoordinationModel, ModelName
from gridbridge.engines.clearing import CurveSet
from gridbridge.engines.clearing.types import BoolArray, FloatArray, Int8Array, IntArray

KINDS = ("pv", "storage", "demand_response", "ev_charging", "chp")
PV, STORAGE, DR, EV, CHP = range(5)
_KIND_P = np.array([0.55, 0.15, 0.20, 0.08, 0.02])
_PRICE_BASE = np.array([[0.0, 20.0], [40.0, 120.0], [80.0, 300.0], [60.0, 150.0], [50.0, 90.0]])
"""Offer price range of each kind's first segment, CAD/MWh."""

DEFAULT_MODEL_WEIGHTS: dict[ModelName, float] = {
    ModelName.TOTAL_TSO: 0.2,
    ModelName.ALT1_MINIMAL_DSO: 0.3,
    ModelName.ALT2_HYBRID_DSO: 0.3,
    ModelName.TOTAL_DSO: 0.2,
}
FEEDERS_PER_INTERFACE = 8


@dataclass(frozen=True, eq=False)
class Province:
    """Interfaces with models and limits, DERs with offers and envelopes, aggregations, requirements."""

    models: tuple[CoordinationModel, ...]
    interface_model: IntArray
    """Per interface: index into ``models``."""
    load_kw: FloatArray
    """Per interface: forecast load, kW."""
    import_limit_kw: FloatArray
    export_limit_kw: FloatArray
    der_interface: IntArray
    der_feeder: IntArray
    der_kind: Int8Array
    der_p_max_kw: FloatArray
    der_envelope_kw: FloatArray
    """Export envelope in force at gate closure."""
    der_aggregation: IntArray
    """Aggregation a DER is enrolled in (-1: none)."""
    n_aggregations: int
    energy: CurveSet
    """One energy offer per DER."""
    reserve: CurveSet
    """One reserve offer per DER (empty for all but storage)."""
    der_output_kw: FloatArray
    """Forecast injection of each DER if not dispatched (PV output, CHP base), kW."""
    outage_feeders: IntArray
    """Feeders out of service at the distribution check."""
    energy_requirement_kw: float
    reserve_requirement_kw: float
    price_floor_cad_per_mwh: float = -2000.0
    price_cap_cad_per_mwh: float = 2000.0

    @property
    def n_ders(self) -> int:
        """Number of DERs."""
        return int(self.der_interface.size)

    @property
    def n_interfaces(self) -> int:
        """Number of T-D interfaces."""
        return int(self.interface_model.size)

    def interface_flag(self, attribute: str) -> BoolArray:
        """Per interface, a boolean attribute of its model record (e.g. ``tso_applies_der_envelopes``)."""
        per_model = np.array([bool(getattr(m, attribute)) for m in self.models])
        flags: BoolArray = per_model[self.interface_model]
        return flags

    def direct_threshold_kw(self) -> FloatArray:
        """Per interface: the model's minimum size to offer directly (inf where no DER offers directly)."""
        per_model = np.array(
            [
                m.default_direct_threshold_kw if m.default_direct_threshold_kw is not None else np.inf
                for m in self.models
            ]
        )
        out: FloatArray = per_model[self.interface_model]
        return out

    def envelope_at_check_kw(self) -> FloatArray:
        """Each DER's export envelope at the distribution check: 0 on feeders out of service."""
        out: FloatArray = np.where(np.isin(self.der_feeder, self.outage_feeders), 0.0, self.der_envelope_kw)
        return out


def _curves(
    rng: np.random.Generator, first_price: FloatArray, total_kw: FloatArray, lengths: IntArray, step_max: float
) -> CurveSet:
    """Curves of ``lengths`` segments splitting ``total_kw``, prices rising from ``first_price`` (cents)."""
    n = total_kw.size
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=start[1:])
    m = int(start[-1])
    owner = np.repeat(np.arange(n), lengths)
    is_first = np.zeros(m, dtype=bool)
    is_first[start[:-1]] = True
    steps = np.where(is_first, 0.0, rng.uniform(1.0, step_max, m))
    cum = np.cumsum(steps)
    price = np.round(first_price[owner] + cum - np.repeat(cum[start[:-1]], lengths), 2)
    weight = rng.uniform(0.5, 1.5, m)
    share = weight / np.bincount(owner, weights=weight, minlength=n)[owner]
    return CurveSet(start, price, total_kw[owner] * share)


def generate_province(
    n_ders: int,
    n_interfaces: int = 500,
    *,
    seed: int = 1,
    model_weights: dict[ModelName, float] | None = None,
    bad_offer_share: float = 0.001,
    outage_feeder_share: float = 0.01,
) -> Province:
    """Draw a province of ``n_ders`` DERs under ``n_interfaces`` interfaces (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    weights = model_weights or DEFAULT_MODEL_WEIGHTS
    names = sorted(weights, key=lambda name: name.value)
    models = tuple(COORDINATION_MODELS[name] for name in names)
    p = np.array([weights[name] for name in names], dtype=np.float64)
    interface_model = rng.choice(len(models), size=n_interfaces, p=p / p.sum()).astype(np.int64)

    # DERs per interface: lognormal popularity.
    popularity = rng.lognormal(0.0, 0.8, n_interfaces)
    cdf = np.cumsum(popularity / popularity.sum())
    der_interface = np.minimum(np.searchsorted(cdf, rng.random(n_ders)), n_interfaces - 1).astype(np.int64)
    der_feeder = der_interface * FEEDERS_PER_INTERFACE + rng.integers(0, FEEDERS_PER_INTERFACE, n_ders)
    kind = np.searchsorted(np.cumsum(_KIND_P), rng.random(n_ders) * 0.999999).astype(np.int8)
    p_max = np.clip(rng.lognormal(np.log(6.0), 0.6, n_ders), 1.0, 50.0)
    large = rng.random(n_ders) < 0.01
    p_max = np.where(large, np.clip(rng.lognormal(np.log(300.0), 1.0, n_ders), 60.0, 5000.0), p_max)
    envelope = p_max * np.where(rng.random(n_ders) < 0.15, rng.uniform(0.1, 0.5, n_ders), rng.uniform(0.7, 1.0, n_ders))
    envelope = np.round(envelope, 3)

    # Energy offers: PV offers its forecast output, storage 60 % of its rating (the rest as reserve).
    availability = np.where(kind == PV, rng.uniform(0.4, 0.8, n_ders), 1.0)
    availability = np.where(kind == STORAGE, 0.6, availability)
    offered = np.round(p_max * availability, 3)
    lengths = np.where(large, rng.integers(2, 6, n_ders), rng.integers(1, 4, n_ders)).astype(np.int64)
    lo, hi = _PRICE_BASE[kind, 0], _PRICE_BASE[kind, 1]
    first_price = rng.uniform(lo, hi)
    energy = _curves(rng, first_price, offered, lengths, step_max=15.0)
    # Large storage offers its full rating as energy and half as reserve: its capacity binds.
    big_storage = large & (kind == STORAGE)
    if big_storage.any():
        idx = np.flatnonzero(big_storage)
        scale = np.ones(n_ders)
        scale[idx] = 1.0 / 0.6
        energy = energy.with_quantities(energy.quantity_kw * scale[energy.owner()])

    # A few bad offers: non-monotonic, or priced above the cap.
    bad = np.flatnonzero(rng.random(n_ders) < bad_offer_share)
    price = energy.price_cad_per_mwh.copy()
    for j, der in enumerate(bad):
        s0, s1 = int(energy.start[der]), int(energy.start[der + 1])
        if j % 2 == 0 and s1 - s0 >= 2:
            price[s0] = price[s1 - 1] + 5.0
        else:
            price[s0] = 2500.0
    energy = CurveSet(energy.start, price, energy.quantity_kw)

    is_storage = kind == STORAGE
    r_qty = np.where(is_storage, np.where(big_storage, 0.5, 0.4) * p_max, 0.0)
    r_start = np.zeros(n_ders + 1, dtype=np.int64)
    np.cumsum(is_storage, out=r_start[1:])
    reserve = CurveSet(r_start, np.round(rng.uniform(2.0, 15.0, int(is_storage.sum())), 2), r_qty[is_storage])

    # Aggregations: about one per 5,000 DERs, a third spanning 2-4 interfaces; 20 % of small DERs enrol.
    n_agg = max(4, n_ders // 5000)
    span = np.where(rng.random(n_agg) < 1 / 3, rng.integers(2, 5, n_agg), 1)
    agg_start = np.zeros(n_agg + 1, dtype=np.int64)
    np.cumsum(span, out=agg_start[1:])
    agg_if = rng.integers(0, n_interfaces, int(agg_start[-1]))
    agg_of = np.repeat(np.arange(n_agg), span)
    by_if = np.argsort(agg_if, kind="stable")
    if_count = np.bincount(agg_if, minlength=n_interfaces)
    if_start = np.zeros(n_interfaces + 1, dtype=np.int64)
    np.cumsum(if_count, out=if_start[1:])
    wants = (~large) & (rng.random(n_ders) < 0.2) & (if_count[der_interface] > 0)
    pick = if_start[der_interface] + np.floor(rng.random(n_ders) * np.maximum(if_count[der_interface], 1)).astype(
        np.int64
    )
    der_aggregation = np.where(wants, agg_of[by_if][np.minimum(pick, agg_if.size - 1)], -1).astype(np.int64)

    output = np.where(kind == PV, p_max * availability, 0.0) + np.where(kind == CHP, 0.3 * p_max, 0.0)
    der_cap = np.bincount(der_interface, weights=p_max, minlength=n_interfaces)
    # Most areas use more than their DERs make; a fifth are rural, DER-rich areas that can export.
    load_factor = np.where(
        rng.random(n_interfaces) < 0.2, rng.uniform(0.1, 0.4, n_interfaces), rng.uniform(0.8, 2.5, n_interfaces)
    )
    load = np.round(der_cap * load_factor + rng.uniform(200.0, 1000.0, n_interfaces), 1)
    import_limit = np.round(load * 1.5, 1)
    # Some interfaces have little room for export: congestion in the clearing.
    export_limit = np.round(np.where(rng.random(n_interfaces) < 0.25, 0.05, 0.6) * der_cap, 1).astype(np.float64)

    outage = np.flatnonzero(rng.random(n_interfaces * FEEDERS_PER_INTERFACE) < outage_feeder_share)
    energy_total = float(energy.quantity_kw.sum())
    return Province(
        models=models,
        interface_model=interface_model,
        load_kw=load,
        import_limit_kw=import_limit,
        export_limit_kw=export_limit,
        der_interface=der_interface,
        der_feeder=der_feeder.astype(np.int64),
        der_kind=kind,
        der_p_max_kw=p_max,
        der_envelope_kw=envelope,
        der_aggregation=der_aggregation,
        n_aggregations=n_agg,
        energy=energy,
        reserve=reserve,
        der_output_kw=output,
        outage_feeders=outage.astype(np.int64),
        energy_requirement_kw=round(0.35 * energy_total, 1),
        reserve_requirement_kw=round(0.2 * float(r_qty.sum()), 1),
    )
