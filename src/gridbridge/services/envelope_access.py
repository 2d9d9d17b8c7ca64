"""Who may act on and read an interface's network state, envelope settings and runs; shared lookups."""

from __future__ import annotations

from gridbridge.domain.envelope_publication import NO_NETWORK, EnvelopeSettings
from gridbridge.domain.errors import ConflictError, PermissionDenied
from gridbridge.domain.network import NetworkModel
from gridbridge.domain.permissions import Action, is_system, require_action
from gridbridge.domain.roles import Role
from gridbridge.domain.tdi import TDInterface
from gridbridge.services.context import Context
from gridbridge.services.tdis import get_tdi


def owned_tdi(ctx: Context, tdi_id: str, action: Action) -> TDInterface:
    """The interface, if the caller's role may ``action`` and the caller is its owning DSO (or the platform
    administrator); ``auth.forbidden`` otherwise (interfaces are public, so a foreign one is not hidden)."""
    require_action(ctx.caller, action)
    tdi = get_tdi(ctx.uow, tdi_id)
    if not is_system(ctx.caller) and tdi.dso_id != ctx.caller.participant_id:
        raise PermissionDenied("only the interface's owning DSO may do this", field="tdi_id")
    return tdi


def may_read_operations(ctx: Context, tdi: TDInterface) -> bool:
    """True for the owning DSO, the TSO, observers and the platform administrator: those who see an
    interface's network, its network state, envelope settings and runs."""
    caller = ctx.caller
    return (
        is_system(caller)
        or caller.role in (Role.TSO, Role.OBSERVER)
        or (caller.role is Role.DSO and caller.participant_id == tdi.dso_id)
    )


def readable_tdi(ctx: Context, tdi_id: str) -> TDInterface:
    """The interface, if the caller may read its operations (see :func:`may_read_operations`)."""
    tdi = get_tdi(ctx.uow, tdi_id)
    if not may_read_operations(ctx, tdi):
        raise PermissionDenied(
            "only the owning DSO, the TSO and observers see an interface's network state and envelope runs",
            field="tdi_id",
        )
    return tdi


def settings_of(ctx: Context, tdi_id: str) -> EnvelopeSettings:
    """The interface's stored envelope settings, or the defaults."""
    return ctx.uow.envelopes.settings.get(tdi_id) or EnvelopeSettings()


def stored_model(ctx: Context, tdi: TDInterface) -> tuple[NetworkModel, str]:
    """The interface's stored network model and its source; ``envelopes.no_network`` if none is stored."""
    model = ctx.uow.networks.load(tdi.id)
    source = ctx.uow.envelopes.network_source(tdi.id)
    if model is None or source is None:
        raise ConflictError(
            f"T-D interface {tdi.name!r} has no stored network model; import one first (POST /tdis/{{id}}/network)",
            field="tdi_id",
            code=NO_NETWORK,
        )
    return model, source
