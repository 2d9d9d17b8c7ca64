"""The ``gridbridge`` command: one Typer app with a sub-app per area."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import typer

from gridbridge.cli import (
    admin,
    audit,
    bench,
    conflicts,
    curtailment,
    db,
    envelopes,
    market,
    network,
    scenario,
    settlement,
)

app = typer.Typer(
    name="gridbridge",
    help="gridbridge: shared DER lifecycle and T-D coordination platform (TSO, DSOs, aggregators).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(network.app, name="network")
app.add_typer(audit.app, name="audit")
app.add_typer(envelopes.app, name="envelopes")
app.add_typer(bench.app, name="bench")
app.add_typer(market.app, name="market")
app.add_typer(scenario.app, name="scenario")
app.add_typer(conflicts.app, name="conflicts")
app.add_typer(curtailment.app, name="curtailment")
app.add_typer(curtailment.open_access_app, name="open-access")
app.add_typer(settlement.app, name="settlement")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default: GRIDBRIDGE_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: GRIDBRIDGE_PORT or 8000)")] = None,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json, docs at /docs) on the configured database, with the
    platform's periodic jobs: overdue instructions escalated every GRIDBRIDGE_ESCALATION_INTERVAL_S seconds and
    queued envelope recomputations run every GRIDBRIDGE_ENVELOPE_QUEUE_INTERVAL_S seconds (0 turns one off)."""
    import uvicorn

    from gridbridge.cli.config import Settings

    settings = Settings()
    uvicorn.run(
        "gridbridge.cli.bootstrap:app_from_environment",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_config=serve_log_config(),
    )


def serve_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration plus gridbridge's own loggers (the periodic jobs log what they did at
    INFO) on uvicorn's default handler."""
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["gridbridge"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


@app.command()
def demo(
    ders: Annotated[int, typer.Option(help="DERs to take through the lifecycle", min=10, max=100_000)] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 7,
    reset: Annotated[bool, typer.Option(help="Wipe a database that holds other data first")] = False,
    day: Annotated[
        bool, typer.Option(help="Play a market day on the province (--no-day: build the registry only)")
    ] = True,
    out: Annotated[
        Path, typer.Option(help="Directory for the day's plots (PNG, HTML) and scenario report (JSON)")
    ] = Path("gridbridge-demo"),
    real_time: Annotated[
        str, typer.Option(help="Real-time window to clear, HH:MM-HH:MM UTC on the 5-minute grid (24:00 = midnight)")
    ] = "00:00-24:00",
) -> None:
    """Build a small Ontario-like province on the configured database (default ./gridbridge.db), summarise it, and
    play a day of the day-ahead and real-time markets on it with a feeder outage at midday: key figures per
    interface and coordination model, plots of net load and prices."""
    from gridbridge.cli.demo import run_demo
    from gridbridge.cli.demo_day import parse_window

    run_demo(n_ders=ders, seed=seed, reset=reset, day=day, out=out, real_time=parse_window(real_time))


if __name__ == "__main__":
    app()
