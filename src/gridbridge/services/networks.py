"""Importing a T-D interface's consolidated network model, and reading its connection points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gridbridge.domain.errors import NotFound, PermissionDenied, ValidationFailed, register_code
from gridbridge.domain.network import NetworkModel
from gridbridge.domain.permissions import Action, is_system, require_action
from gridbridge.domain.roles import Role
from gridbridge.services.context import Context
from gridbridge.services.ports import ConnectionPointRef
from gridbridge.services.tdis import get_tdi

NO_LOADER = register_code("network.loader_unavailable", 500, "No network loader is configured on this server")
SOURCE_NOT_ALLOWED = register_code(
    "network.source_not_allowed", 422, "Only simbench:CODE sources may be imported over the API; files need the CLI"
)
SIMBENCH_PREFIX = "simbench:"


class NetworkLoader(Protocol):
    """Turns a source string (``simbench:CODE`` or a pandapower JSON path) into a validated network model."""

    def __call__(self, source: str, *, name: str) -> NetworkModel: ...


@dataclass(frozen=True)
class NetworkSummary:
    """What an import stored."""

    tdi_id: str
    source: str
    buses: int
    lines: int
    transformers: int
    feeders: int
    connection_points: int


def import_network(
    ctx: Context, tdi_id: str, source: str, *, replace: bool = False, allow_files: bool = False
) -> NetworkSummary:
    """Load ``source`` and store it as the interface's network model (the owning DSO only).

    The model is validated before anything is written; replacing an existing model needs ``replace``. Only the
    operator's CLI (``allow_files``) may name a file on the server; remote callers name a SimBench code.
    """
    require_action(ctx.caller, Action.NETWORK_IMPORT)
    if not allow_files and not source.startswith(SIMBENCH_PREFIX):
        raise ValidationFailed(f"source {source!r} is not a simbench:CODE", field="source", code=SOURCE_NOT_ALLOWED)
    tdi = get_tdi(ctx.uow, tdi_id)
    if not is_system(ctx.caller) and tdi.dso_id != ctx.caller.participant_id:
        raise PermissionDenied("only the owning DSO may import this interface's network", field="tdi_id")
    if ctx.network_loader is None:
        raise NotFound("no network loader configured", field="source", code=NO_LOADER)
    model = ctx.network_loader(source, name=tdi.name)
    ctx.uow.networks.save(tdi.id, model, source=source, replace=replace)
    summary = NetworkSummary(
        tdi_id=tdi.id,
        source=source,
        buses=len(model.buses),
        lines=len(model.lines),
        transformers=len(model.transformers),
        feeders=len(model.feeders),
        connection_points=len(model.connection_points),
    )
    ctx.audit(
        "network.import",
        "network",
        tdi.id,
        None,
        {"source": source, "buses": summary.buses, "connection_points": summary.connection_points},
    )
    return summary


def connection_points(ctx: Context, tdi_id: str) -> list[ConnectionPointRef]:
    """Connection points of an interface: visible to its owning DSO, the TSO and observers."""
    tdi = get_tdi(ctx.uow, tdi_id)
    caller = ctx.caller
    allowed = (
        is_system(caller)
        or caller.role in (Role.TSO, Role.OBSERVER)
        or (caller.role is Role.DSO and caller.participant_id == tdi.dso_id)
    )
    if not allowed:
        raise PermissionDenied("only the owning DSO, the TSO and observers see the network", field="tdi_id")
    return ctx.uow.networks.connection_points(tdi.id)
