"""Who may do what, and who may see what (white paper footnote 88: deny by default).

Two kinds of rule live here, both pure:

* ``ACTION_ROLES``: which roles may attempt an action at all. Anything not listed is denied.
* visibility scopes (``DerScope``, ``AggregationScope``): which rows a caller may see. Services apply them to
  single objects (an invisible object is reported exactly like a missing one) and the store turns them into SQL
  filters for lists, so a list never carries a foreign row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from gridbridge.domain.aggregation import Aggregation, AggregationMember
from gridbridge.domain.coordination import TsoDerVisibility
from gridbridge.domain.der import Der
from gridbridge.domain.errors import PermissionDenied
from gridbridge.domain.roles import DsoKind, Role, Service


@dataclass(frozen=True)
class Caller:
    """The authenticated user a request runs as, narrowed to what permission checks need."""

    user_id: str
    participant_id: str
    role: Role
    dso_kind: DsoKind | None = None


SYSTEM_PARTICIPANT_ID = "system"
SYSTEM_CALLER = Caller(user_id="system", participant_id=SYSTEM_PARTICIPANT_ID, role=Role.OBSERVER)
"""The platform administrator acting from the CLI (admin commands and the demo); never reachable over HTTP."""


class Action(StrEnum):
    """Every write the platform accepts."""

    TDI_CREATE = "tdi.create"
    TDI_UPDATE = "tdi.update"
    TDI_MODEL_CHANGE = "tdi.model_change"
    NETWORK_IMPORT = "network.import"
    DER_REQUEST = "der.request"
    DER_REVIEW = "der.review"
    DER_OPERATE = "der.operate"
    DER_RETIRE = "der.retire"
    DER_MARKET_PRODUCTS = "der.market_products"
    AGGREGATION_CREATE = "aggregation.create"
    AGGREGATION_MEMBERSHIP = "aggregation.membership"
    MEMBER_REVIEW = "aggregation.member_review"
    MEMBER_DISPUTE = "aggregation.member_dispute"
    TOKEN_CREATE = "token.create"
    NETWORK_STATE = "network.state"
    ENVELOPE_SETTINGS = "envelopes.settings"
    ENVELOPE_RUN = "envelopes.run"
    ENVELOPE_PUBLISH = "envelopes.publish"
    HOSTING_ASSESS = "hosting.assess"
    OFFER_SUBMIT = "offer.submit"
    DSO_OFFER = "offer.dso_aggregate"
    CLEARING_RUN = "clearing.run"
    INSTRUCTION_ISSUE = "instruction.issue"
    OPERATING_INSTRUCTION = "instruction.operating"
    INSTRUCTION_RESPOND = "instruction.respond"
    INSTRUCTION_SPLIT = "instruction.split"
    INSTRUCTION_ESCALATE = "instruction.escalate"


_T, _D, _A, _O, _X = Role.TSO, Role.DSO, Role.AGGREGATOR, Role.DER_OWNER, Role.OBSERVER

ACTION_ROLES: Mapping[Action, frozenset[Role]] = MappingProxyType(
    {
        Action.TDI_CREATE: frozenset({_T}),
        Action.TDI_UPDATE: frozenset({_T, _D}),
        Action.TDI_MODEL_CHANGE: frozenset({_T, _D}),
        Action.NETWORK_IMPORT: frozenset({_D}),
        Action.DER_REQUEST: frozenset({_O, _A, _D}),
        Action.DER_REVIEW: frozenset({_D}),
        Action.DER_OPERATE: frozenset({_D}),
        Action.DER_RETIRE: frozenset({_O, _A, _D}),
        Action.DER_MARKET_PRODUCTS: frozenset({_O, _A, _D}),
        Action.AGGREGATION_CREATE: frozenset({_A, _D}),
        Action.AGGREGATION_MEMBERSHIP: frozenset({_A, _D}),
        Action.MEMBER_REVIEW: frozenset({_D}),
        Action.MEMBER_DISPUTE: frozenset({_A, _D}),
        Action.TOKEN_CREATE: frozenset({_T, _D, _A, _O, _X}),
        Action.NETWORK_STATE: frozenset({_D}),
        Action.ENVELOPE_SETTINGS: frozenset({_D}),
        Action.ENVELOPE_RUN: frozenset({_D}),
        Action.ENVELOPE_PUBLISH: frozenset({_D}),
        Action.HOSTING_ASSESS: frozenset({_D}),
        Action.OFFER_SUBMIT: frozenset({_D, _A, _O}),
        Action.DSO_OFFER: frozenset({_D}),
        Action.CLEARING_RUN: frozenset({_T}),
        Action.INSTRUCTION_ISSUE: frozenset({_T}),
        Action.OPERATING_INSTRUCTION: frozenset({_T}),
        Action.INSTRUCTION_RESPOND: frozenset({_D, _A, _O}),
        Action.INSTRUCTION_SPLIT: frozenset({_D, _A}),
        Action.INSTRUCTION_ESCALATE: frozenset({_T, _D, _A}),
    }
)


def require_action(caller: Caller, action: Action) -> None:
    """Raise ``auth.forbidden`` unless the caller's role may attempt ``action`` (the system caller may do all)."""
    if caller is SYSTEM_CALLER or caller.participant_id == SYSTEM_PARTICIPANT_ID:
        return
    if caller.role not in ACTION_ROLES.get(action, frozenset()):
        raise PermissionDenied(f"role {caller.role.value} may not {action.value}", field="role")


def is_system(caller: Caller) -> bool:
    """True for the platform administrator (CLI only)."""
    return caller.participant_id == SYSTEM_PARTICIPANT_ID


@dataclass(frozen=True)
class DerScope:
    """The DERs a caller may see, as a predicate the store can also express in SQL."""

    everything: bool = False
    dso_id: str | None = None
    """LDC: DERs in its territory."""
    party_id: str | None = None
    """Aggregator or owner: DERs it owns (or represents, when ``include_represented``)."""
    include_represented: bool = False
    tdi_all: frozenset[str] = frozenset()
    """TSO: interfaces whose model shows every DER."""
    tdi_market: frozenset[str] = frozenset()
    """TSO: interfaces whose model shows market-participating DERs only."""

    def allows(self, der: Der) -> bool:
        """True when the caller may see ``der``."""
        if self.everything:
            return True
        if self.dso_id is not None:
            return der.dso_id == self.dso_id
        if self.party_id is not None:
            return der.owner_id == self.party_id or (
                self.include_represented and der.representative_id == self.party_id
            )
        if der.tdi_id in self.tdi_all:
            return True
        return der.tdi_id in self.tdi_market and der.market_participating


def der_scope(caller: Caller, tso_visibility: Mapping[str, TsoDerVisibility]) -> DerScope:
    """Build the DER scope of ``caller``; ``tso_visibility`` gives each interface's Table 6 row 2 answer now."""
    if is_system(caller) or caller.role is Role.OBSERVER:
        return DerScope(everything=True)
    if caller.role is Role.DSO:
        return DerScope(dso_id=caller.participant_id)
    if caller.role is Role.AGGREGATOR:
        return DerScope(party_id=caller.participant_id, include_represented=True)
    if caller.role is Role.DER_OWNER:
        return DerScope(party_id=caller.participant_id)
    return DerScope(
        tdi_all=frozenset(t for t, v in tso_visibility.items() if v is TsoDerVisibility.ALL),
        tdi_market=frozenset(t for t, v in tso_visibility.items() if v is TsoDerVisibility.MARKET_PARTICIPATING),
    )


WHOLESALE_SERVICES = frozenset({Service.WHOLESALE_ENERGY, Service.OPERATING_RESERVE})


@dataclass(frozen=True)
class AggregationScope:
    """The aggregations (and members) a caller may see."""

    everything: bool = False
    aggregator_id: str | None = None
    dso_id: str | None = None
    """LDC: aggregations it runs or with a member in its territory; only those members."""
    wholesale_only: bool = False
    """TSO: aggregations registered in a wholesale market."""
    der_scope: DerScope | None = None
    """TSO: which members it may see individually."""

    def allows(self, aggregation: Aggregation) -> bool:
        """True when the caller may see ``aggregation``."""
        if self.everything:
            return True
        if self.aggregator_id is not None:
            return aggregation.aggregator_id == self.aggregator_id
        if self.dso_id is not None:
            return aggregation.aggregator_id == self.dso_id or any(m.dso_id == self.dso_id for m in aggregation.members)
        return self.wholesale_only and bool(aggregation.services & WHOLESALE_SERVICES)

    def shows_distribution_factors(self, aggregation: Aggregation) -> bool:
        """True when the caller may see how the aggregation's capacity spreads over T-D interfaces: the
        aggregator, observers and the TSO (which models a multi-interface response with them), but not an LDC,
        unless it runs the aggregation itself."""
        if self.dso_id is not None:
            return aggregation.aggregator_id == self.dso_id
        return self.allows(aggregation)

    def allows_member(self, aggregation: Aggregation, member: AggregationMember, der: Der | None) -> bool:
        """True when the caller may see this member of an aggregation it may see."""
        if self.everything or self.aggregator_id is not None:
            return True
        if self.dso_id is not None:
            return member.dso_id == self.dso_id or aggregation.aggregator_id == self.dso_id
        return der is not None and self.der_scope is not None and self.der_scope.allows(der)


def aggregation_scope(caller: Caller, ders: DerScope) -> AggregationScope:
    """Build the aggregation scope of ``caller`` (``ders`` is the caller's DER scope)."""
    if is_system(caller) or caller.role is Role.OBSERVER:
        return AggregationScope(everything=True)
    if caller.role is Role.AGGREGATOR:
        return AggregationScope(aggregator_id=caller.participant_id)
    if caller.role is Role.DSO:
        return AggregationScope(dso_id=caller.participant_id)
    if caller.role is Role.TSO:
        return AggregationScope(wholesale_only=True, der_scope=ders)
    return AggregationScope()
