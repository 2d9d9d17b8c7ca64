"""``gridbridge bench``: benchmarks that print figures and ratios against a baseline measured in the same run."""

from __future__ import annotations

import typer

from gridbridge.bench.cycle import cycle
from gridbridge.bench.envelopes import envelopes

app = typer.Typer(
    help="Benchmarks: figures and ratios against a baseline measured in the same run.", no_args_is_help=True
)
app.command("envelopes")(envelopes)
app.command("cycle")(cycle)
