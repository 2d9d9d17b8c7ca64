"""``gridbridge network``: import and export a T-D interface's network model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandapower
import typer

from gridbridge.adapters.network_io import network_to_pandapower
from gridbridge.cli.lookup import ready_platform, tdi_id
from gridbridge.cli.output import console, reported_errors
from gridbridge.domain.errors import NotFound
from gridbridge.services import networks

app = typer.Typer(help="Network models of T-D interfaces: import and export.", no_args_is_help=True)


@app.command("import")
def import_network(
    source: Annotated[
        str, typer.Argument(help="simbench:CODE (e.g. simbench:1-MV-semiurb--0-sw) or a pandapower JSON file")
    ],
    tdi: Annotated[str, typer.Option("--tdi", help="Name of the T-D interface the network belongs to")],
    replace: Annotated[bool, typer.Option(help="Replace an existing network of that interface")] = False,
) -> None:
    """Import a network as the T-D interface's consolidated model (validated before anything is stored)."""
    with reported_errors():
        platform = ready_platform()
        found = tdi_id(platform, tdi)
        with console.status(f"importing {source} ..."), platform.context() as ctx:
            summary = networks.import_network(ctx, found, source, replace=replace, allow_files=True)
        console.print(
            f"imported {summary.source} into [bold]{tdi}[/]: {summary.buses} buses, {summary.lines} lines, "
            f"{summary.transformers} transformers, {summary.feeders} feeders, "
            f"{summary.connection_points} connection points"
        )


@app.command("export")
def export_network(
    tdi: Annotated[str, typer.Option("--tdi", help="Name of the T-D interface whose network is exported")],
    out: Annotated[Path, typer.Option("--out", help="pandapower JSON file to write")],
) -> None:
    """Write the interface's stored network model back out as a pandapower network (JSON)."""
    with reported_errors():
        platform = ready_platform()
        found = tdi_id(platform, tdi)
        with platform.unit_of_work() as uow:
            model = uow.networks.load(found)
        if model is None:
            raise NotFound(f"T-D interface {tdi!r} has no network model; import one first", field="tdi")
        net = network_to_pandapower(model)
        pandapower.to_json(net, str(out))
        console.print(f"wrote {len(net.bus)} buses, {len(net.line)} lines, {len(net.trafo)} transformers to {out}")
