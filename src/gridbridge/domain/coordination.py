"""The four T-D coordination models as data (white paper Tables 6, 7 and 8).

Each model is one frozen ``CoordinationModel`` record. Workflows ask the record of the T-D interface they
work on (who sees individual DERs, who may aggregate, who dispatches each service, who checks distribution
limits, who settles distribution services); nothing else in the code branches on a model's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from gridbridge.domain.roles import Role, Service


class ModelName(StrEnum):
    """Names of the coordination models, as stored and as written in the API."""

    TOTAL_TSO = "total_tso"
    ALT1_MINIMAL_DSO = "alt1_minimal_dso"
    ALT2_HYBRID_DSO = "alt2_hybrid_dso"
    TOTAL_DSO = "total_dso"


class TsoDerVisibility(StrEnum):
    """Table 6 row 2: which individual DERs under a T-D interface the TSO sees."""

    ALL = "all"
    """Every DER under the interface."""
    MARKET_PARTICIPATING = "market_participating"
    """Only DERs that take part in the wholesale market directly or through a third-party aggregation."""
    NONE = "none"
    """None: the TSO sees the DSO's virtual resource at the interface only."""


@dataclass(frozen=True)
class CoordinationModel:
    """What one coordination model says about roles and responsibilities at a T-D interface."""

    name: ModelName
    title: str
    direct_wholesale_participation: bool
    """Table 6 row 1: DERs and aggregations may offer directly into the wholesale market."""
    tso_der_visibility: TsoDerVisibility
    """Table 6 row 2."""
    aggregating_roles: frozenset[Role]
    """Table 6 row 3: roles allowed to aggregate DERs for wholesale participation."""
    distribution_operator: Role
    """Table 6 row 4: who operates the distribution system (the TSO only under Total TSO)."""
    tso_coordination_party: Role
    """Table 6 row 5: who coordinates operations with the TSO."""
    dispatchers: Mapping[Service, frozenset[Role]]
    """Table 6 rows 8-10 and Table 7: who schedules and dispatches DERs for each service (empty: nobody)."""
    distribution_limit_checker: Role
    """Who checks dispatch against distribution limits (envelopes, outages) before it reaches DERs."""
    tso_applies_der_envelopes: bool
    """The TSO's clearing carries each DER's envelope as a constraint (Total TSO models the distribution grid)."""
    dso_aggregates_below_threshold: bool
    """The DSO offers sub-threshold DERs as one virtual resource at the interface (alt 2, Total DSO)."""
    distribution_services_settler: Role | None
    """Who settles distribution services; ``None`` where the model has no dispatchable distribution services."""
    distribution_level_balancing: bool
    """Table 8 row 3: the DSO balances its local area and schedules the interface's net import/export."""
    default_direct_threshold_kw: float | None
    """Default minimum size to offer directly; ``None`` where no DER offers directly (Total DSO)."""

    def dispatches(self, role: Role, service: Service) -> bool:
        """Return whether ``role`` schedules or dispatches DERs for ``service`` under this model."""
        return role in self.dispatchers.get(service, frozenset())

    def may_aggregate(self, role: Role) -> bool:
        """Return whether ``role`` may aggregate DERs for wholesale participation under this model."""
        return role in self.aggregating_roles


def _dispatch(energy: set[Role], reserve: set[Role], distribution: set[Role]) -> Mapping[Service, frozenset[Role]]:
    return MappingProxyType(
        {
            Service.WHOLESALE_ENERGY: frozenset(energy),
            Service.OPERATING_RESERVE: frozenset(reserve),
            Service.DISTRIBUTION_SERVICES: frozenset(distribution),
        }
    )


_T, _D, _A = Role.TSO, Role.DSO, Role.AGGREGATOR

COORDINATION_MODELS: Mapping[ModelName, CoordinationModel] = MappingProxyType(
    {
        ModelName.TOTAL_TSO: CoordinationModel(
            name=ModelName.TOTAL_TSO,
            title="Total TSO",
            direct_wholesale_participation=True,
            tso_der_visibility=TsoDerVisibility.ALL,
            aggregating_roles=frozenset({_A}),
            distribution_operator=_T,
            tso_coordination_party=_D,
            dispatchers=_dispatch({_T}, {_T}, {_T}),
            distribution_limit_checker=_T,
            tso_applies_der_envelopes=True,
            dso_aggregates_below_threshold=False,
            distribution_services_settler=_T,
            distribution_level_balancing=False,
            default_direct_threshold_kw=0.0,
        ),
        ModelName.ALT1_MINIMAL_DSO: CoordinationModel(
            name=ModelName.ALT1_MINIMAL_DSO,
            title="Alternative 1: minimal DSO",
            direct_wholesale_participation=True,
            tso_der_visibility=TsoDerVisibility.ALL,
            aggregating_roles=frozenset({_A}),
            distribution_operator=_D,
            tso_coordination_party=_D,
            dispatchers=_dispatch({_T}, {_T}, set()),
            distribution_limit_checker=_D,
            tso_applies_der_envelopes=False,
            dso_aggregates_below_threshold=False,
            distribution_services_settler=None,
            distribution_level_balancing=False,
            default_direct_threshold_kw=100.0,
        ),
        ModelName.ALT2_HYBRID_DSO: CoordinationModel(
            name=ModelName.ALT2_HYBRID_DSO,
            title="Alternative 2: hybrid DSO",
            direct_wholesale_participation=True,
            tso_der_visibility=TsoDerVisibility.MARKET_PARTICIPATING,
            aggregating_roles=frozenset({_A, _D}),
            distribution_operator=_D,
            tso_coordination_party=_D,
            dispatchers=_dispatch({_T, _D}, {_T, _D}, {_D}),
            distribution_limit_checker=_D,
            tso_applies_der_envelopes=False,
            dso_aggregates_below_threshold=True,
            distribution_services_settler=_D,
            distribution_level_balancing=False,
            default_direct_threshold_kw=1000.0,
        ),
        ModelName.TOTAL_DSO: CoordinationModel(
            name=ModelName.TOTAL_DSO,
            title="Total DSO",
            direct_wholesale_participation=False,
            tso_der_visibility=TsoDerVisibility.NONE,
            aggregating_roles=frozenset({_A, _D}),
            distribution_operator=_D,
            tso_coordination_party=_D,
            dispatchers=_dispatch({_D}, {_D}, {_D}),
            distribution_limit_checker=_D,
            tso_applies_der_envelopes=False,
            dso_aggregates_below_threshold=True,
            distribution_services_settler=_D,
            distribution_level_balancing=True,
            default_direct_threshold_kw=None,
        ),
    }
)


def coordination_model(name: ModelName | str) -> CoordinationModel:
    """Return the record of the named model; raise ``KeyError`` for an unknown name."""
    return COORDINATION_MODELS[ModelName(name)]
