"""``gridbridge envelopes``: compute and publish dynamic operating envelopes."""

from __future__ import annotations

import typer

app = typer.Typer(help="Dynamic operating envelopes: compute, verify with AC power flow, publish.",
                  no_args_is_help=True)
