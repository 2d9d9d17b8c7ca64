"""Building a caller's visibility scopes (the rules are in domain.permissions; this adds the data they need)."""

from __future__ import annotations

from gridbridge.domain.permissions import AggregationScope, DerScope, aggregation_scope, der_scope
from gridbridge.domain.roles import Role
from gridbridge.services.context import Context
from gridbridge.services.tdis import tso_visibility


def ders_visible_to(ctx: Context) -> DerScope:
    """The DER scope of the context's caller; for the TSO it follows each interface's model in force now."""
    visibility = tso_visibility(ctx.uow, ctx.clock.now()) if ctx.caller.role is Role.TSO else {}
    return der_scope(ctx.caller, visibility)


def aggregations_visible_to(ctx: Context) -> AggregationScope:
    """The aggregation scope of the context's caller."""
    return aggregation_scope(ctx.caller, ders_visible_to(ctx))
