"""Console output shared by the commands: rich tables, and domain errors shown as one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.text import Text

from gridbridge.domain.errors import GridbridgeError

# when output goes to a file or a CI log rich would assume 80 columns and fold the tables; use a wider page
_PAGE = None if sys.stdout.isatty() else 140
console = Console(width=_PAGE)
errors = Console(stderr=True, width=_PAGE)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Show a domain error as ``error [code] field: message`` on stderr and exit 2; nothing was changed."""
    try:
        yield
    except GridbridgeError as exc:
        where = f" {exc.field}:" if exc.field else ""
        errors.print(Text.assemble(("error", "bold red"), f" [{exc.code}]{where} {exc.message}"), highlight=False)
        raise typer.Exit(2) from exc


def run_reported(action: Callable[[], None]) -> None:
    """Run ``action`` with domain errors reported (see ``reported_errors``)."""
    with reported_errors():
        action()
