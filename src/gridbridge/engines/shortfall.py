"""The distribution check of a TSO dispatch, and the re-dispatch of any shortfall (white paper section 4.3).

Where the TSO clears DERs modelled at the T-D interface without distribution constraints (alt 1), the
distribution limit checker (the DSO) checks the dispatch of every DER against its operating envelope and
outages. What a DER cannot deliver is curtailed, and the sum per interface is the shortfall reported to the
TSO. The TSO then clears again with the curtailed DERs capped at what they can deliver, so other resources
make it up; the new dispatch is checked again, until no DER is beyond its limit.

Which DERs this applies to is the caller's choice, read from the interface's coordination model record
(``CoordinationModel.distribution_limit_checker`` and ``tso_applies_der_envelopes``); nothing here depends
on a model's name.

DERs are members of the clearing problem's resources (``der_resource``): a resource with members has, as
its energy curve, the exact merge of its members' curves (``aggregate_curves`` without a segment limit), so
its dispatch splits back to the members by merit order exactly as a per-DER clearing would dispatch them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridbridge.domain.errors import ValidationFailed, register_code
from gridbridge.engines.clearing.aggregate import aggregate_curves
from gridbridge.engines.clearing.curves import CurveSet, concat_curves, merit_order
from gridbridge.engines.clearing.lp import clear_lp
from gridbridge.engines.clearing.problem import ClearingProblem, ClearingResult, DistributionFactors
from gridbridge.engines.clearing.types import FloatArray, IntArray, sum_by
from gridbridge.engines.disaggregation import split_merit_order

BAD_CHECK = register_code("shortfall.bad_input", 422, "Distribution-check inputs are inconsistent")

Clear = Callable[[ClearingProblem], ClearingResult]


@dataclass(frozen=True, eq=False)
class DistributionCheck:
    """The outcome of checking one dispatch against distribution limits."""

    p_feasible_kw: FloatArray
    """Per DER: the dispatch cut to what the DER may deliver."""
    curtailed_kw: FloatArray
    """Per DER: dispatch minus what it may deliver (0 where within limits)."""
    shortfall_kw: FloatArray
    """Per interface: the sum of curtailments under it."""
    curtailed_index: IntArray
    """The DERs curtailed."""


def check_dispatch(
    p_dispatch_kw: FloatArray,
    p_allowed_kw: FloatArray,
    der_interface: IntArray,
    n_interfaces: int,
    *,
    tolerance_kw: float = 1e-6,
) -> DistributionCheck:
    """Compare each DER's dispatched injection with what it may deliver (envelope; 0 under an outage).

    ``p_allowed_kw`` is ``inf`` where no limit applies. Curtailments below ``tolerance_kw`` are ignored.
    """
    p = np.asarray(p_dispatch_kw, dtype=np.float64)
    allowed = np.asarray(p_allowed_kw, dtype=np.float64)
    iface = np.asarray(der_interface, dtype=np.int64)
    if not (p.shape == allowed.shape == iface.shape) or p.ndim != 1:
        raise ValidationFailed(
            "dispatch, allowed and interface need one entry per DER", field="p_allowed_kw", code=BAD_CHECK
        )
    if np.any(np.isnan(allowed)) or np.any(allowed < 0):
        raise ValidationFailed("allowed injections are >= 0 (inf for none)", field="p_allowed_kw", code=BAD_CHECK)
    over = p - allowed
    curtailed = np.where(over > tolerance_kw, over, 0.0)
    idx = np.flatnonzero(curtailed > 0)
    shortfall = sum_by(iface[idx], curtailed[idx], n_interfaces)
    return DistributionCheck(p - curtailed, curtailed, shortfall, idx)


@dataclass(frozen=True, eq=False)
class Redispatch:
    """The first clearing, the final one after re-dispatch, and what moved in between."""

    first: ClearingResult
    final: ClearingResult
    first_der_p_kw: FloatArray
    der_p_kw: FloatArray
    """Per DER: final dispatch (0 for DERs not in any resource)."""
    shortfall_kw: FloatArray
    """Per interface: the part of the first TSO dispatch its DERs may not deliver (first dispatch above the
    final caps), i.e. what the DSO hands back to the TSO."""
    redispatched_kw: FloatArray
    """Per interface: kW by which other DERs and resources were dispatched up to make the shortfall good."""
    curtailed_index: IntArray
    """DERs capped by the checks (any round)."""
    der_cap_kw: FloatArray
    """Per DER: the cap the TSO cleared with in the end (inf where none)."""
    rounds: int
    """Clearings after the first."""

    @property
    def total_shortfall_kw(self) -> float:
        """Sum of ``shortfall_kw``."""
        return float(self.shortfall_kw.sum())

    @property
    def total_redispatched_kw(self) -> float:
        """Sum of ``redispatched_kw``."""
        return float(self.redispatched_kw.sum())


def rebuild_member_resources(
    problem: ClearingProblem,
    der_curves: CurveSet,
    der_resource: IntArray,
    der_cap_kw: FloatArray | None = None,
    order: IntArray | None = None,
) -> ClearingProblem:
    """Return ``problem`` with the energy curve of every resource that has members replaced by the exact
    merge of its members' curves (each cut to ``der_cap_kw``); other resources keep their curves."""
    n = problem.n_resources
    res = np.asarray(der_resource, dtype=np.int64)
    has_members = np.bincount(res[res >= 0], minlength=n) > 0
    merged = aggregate_curves(der_curves, res, n, cap_kw=der_cap_kw, order=order).curves
    pick = np.where(has_members, n + np.arange(n), np.arange(n))
    return problem.with_energy(concat_curves(problem.energy, merged).take(pick))


def member_dispatch(
    result: ClearingResult,
    der_curves: CurveSet,
    der_resource: IntArray,
    der_cap_kw: FloatArray | None,
    order: IntArray | None,
) -> FloatArray:
    """Split each member resource's energy dispatch to its DERs by merit order (exact for exact merges)."""
    target = np.maximum(result.p_kw, 0.0)
    return split_merit_order(target, der_resource, der_curves, available_kw=der_cap_kw, order=order).member_p_kw


def redispatch_shortfall(
    problem: ClearingProblem,
    der_curves: CurveSet,
    der_resource: IntArray,
    der_interface: IntArray,
    der_allowed_kw: FloatArray,
    *,
    clear: Clear = clear_lp,
    first: ClearingResult | None = None,
    max_rounds: int = 10,
    order: IntArray | None = None,
    member_factors: DistributionFactors | None = None,
) -> Redispatch:
    """Run the check / re-dispatch loop until every checked DER is within its limit (or ``max_rounds``).

    ``der_curves`` are the DERs' energy offers as the TSO cleared them; ``der_resource`` maps each DER to
    its resource in ``problem`` (-1: not a TSO resource here); ``der_allowed_kw`` is what each DER may deliver
    (``inf``: unchecked). ``first`` may pass a clearing of ``problem`` already done; ``order`` a merit order of
    the DER segments grouped by resource (``merit_order``; any grouping that sorts the same resources in the
    same ascending order, with other DERs anywhere, will do).

    A checked "DER" may be a whole resource spread over several interfaces (an aggregation modelled through
    its distribution factors): ``member_factors`` then maps each checked entry (its ``resource`` index is the
    entry's position in ``der_curves``) to its interfaces, and the shortfall and re-dispatch of an entry are
    reported per interface by those factors instead of wholly at ``der_interface``.
    """
    n_ders = der_curves.n_curves
    res = np.asarray(der_resource, dtype=np.int64)
    allowed = np.asarray(der_allowed_kw, dtype=np.float64)
    iface = np.asarray(der_interface, dtype=np.int64)
    if not (res.shape == allowed.shape == iface.shape == (n_ders,)):
        raise ValidationFailed(
            "der_resource, der_interface and der_allowed_kw need one entry per DER",
            field="der_resource",
            code=BAD_CHECK,
        )
    n_if = problem.n_interfaces
    if order is None:
        order = merit_order(res[der_curves.owner()], der_curves.price_cad_per_mwh)
    first_result = first if first is not None else clear(problem)
    caps = np.full(n_ders, np.inf)
    result = first_result
    first_p = member_dispatch(first_result, der_curves, res, None, order)
    p = first_p
    curtailed_any = np.zeros(n_ders, dtype=bool)
    rounds = 0
    while True:
        check = check_dispatch(p, allowed, iface, n_if)
        if check.curtailed_index.size == 0 or rounds >= max_rounds:
            break
        curtailed_any[check.curtailed_index] = True
        caps[check.curtailed_index] = allowed[check.curtailed_index]
        result = clear(rebuild_member_resources(problem, der_curves, res, caps, order))
        p = member_dispatch(result, der_curves, res, caps, order)
        rounds += 1

    spread = member_factors if member_factors is not None else DistributionFactors.single(iface)
    inside = res >= 0
    kept = inside[spread.resource]
    m_entry, m_iface, m_factor = spread.resource[kept], spread.interface[kept], spread.factor[kept]
    lost = np.maximum(first_p - caps, 0.0)
    shortfall = sum_by(m_iface, m_factor * lost[m_entry], n_if)
    # Made good by: DERs that are members (DER-level increases) and other resources (via their factors).
    up_der = np.maximum(p - first_p, 0.0)
    redispatched = sum_by(m_iface, m_factor * up_der[m_entry], n_if)
    has_members = np.bincount(res[inside], minlength=problem.n_resources) > 0
    up_res = np.where(has_members, 0.0, np.maximum(result.p_kw - first_result.p_kw, 0.0))
    df = problem.distribution_factors
    redispatched += sum_by(df.interface, df.factor * up_res[df.resource], n_if)
    return Redispatch(
        first=first_result,
        final=result,
        first_der_p_kw=first_p,
        der_p_kw=p,
        shortfall_kw=shortfall,
        redispatched_kw=redispatched,
        curtailed_index=np.flatnonzero(curtailed_any),
        der_cap_kw=caps,
        rounds=rounds,
    )
