"""The ``gridbridge`` command: one Typer app with a sub-app per area."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="gridbridge",
    help="gridbridge: shared DER lifecycle and T-D coordination platform (TSO, DSOs, aggregators).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from gridbridge.cli import bench, envelopes

    app.add_typer(envelopes.app, name="envelopes")
    app.add_typer(bench.app, name="bench")


_register()

if __name__ == "__main__":
    app()
