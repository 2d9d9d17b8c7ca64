"""docs/api.md documents every error code the platform registers, with the registry's status and title.

Codes are registered at import next to the rule that raises them, so the test first imports every module of
gridbridge (``pkgutil.walk_packages``): a code added anywhere, without a row in docs/api.md, fails here.
``python scripts/error_codes_table.py --write docs/api.md`` adds the row (with a placeholder to replace by a
"when it happens" text).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import gridbridge
from gridbridge.domain.errors import ERROR_CODES

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SKIPPED = ("gridbridge.store.migrations",)
"""Alembic's env.py and revision scripts only run inside alembic (importing env.py alone fails)."""
ROW = re.compile(
    r"^\|\s*`(?P<code>[^`]+)`\s*\|\s*(?P<status>\d{3})\s*\|\s*(?P<title>(?:[^|\\]|\\.)*?)\s*\|\s*(?P<when>.*?)\s*\|\s*$"
)


@pytest.fixture(scope="module")
def registered() -> dict[str, tuple[int, str]]:
    """Every registered code after importing every module of gridbridge."""
    imported = 0
    for info in pkgutil.walk_packages(gridbridge.__path__, prefix="gridbridge."):
        if info.name.startswith(SKIPPED):
            continue
        importlib.import_module(info.name)
        imported += 1
    assert imported > 20, "walk_packages found almost nothing: is gridbridge installed from src?"
    return {code: (entry.status, entry.title) for code, entry in ERROR_CODES.items()}


@pytest.fixture(scope="module")
def documented() -> dict[str, tuple[int, str, str]]:
    """The error-code table of docs/api.md: code -> (status, title, when it happens)."""
    table = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            title = match["title"].replace("\\|", "|")
            table[match["code"]] = (int(match["status"]), title, match["when"])
    return table


def test_every_registered_code_is_in_docs_api_md(registered: dict[str, tuple[int, str]]) -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = sorted(code for code in registered if f"`{code}`" not in text)
    assert not missing, (
        f"error codes missing from {DOC.name}: {missing}; run `python scripts/error_codes_table.py --write "
        "docs/api.md` and describe when each happens"
    )


def test_the_table_agrees_with_the_registry(
    registered: dict[str, tuple[int, str]], documented: dict[str, tuple[int, str, str]]
) -> None:
    assert len(documented) > 20, "the error-code table of docs/api.md was not found"
    in_table = set(documented)
    assert sorted(set(registered) - in_table) == [], "registered codes without a row in the table"
    assert sorted(in_table - set(registered)) == [], "rows for codes nobody registers (stale documentation)"
    wrong = {
        code: (documented[code][:2], registered[code])
        for code in registered
        if documented[code][:2] != registered[code]
    }
    assert not wrong, f"rows whose status or title differ from the registry (doc, registry): {wrong}"


def test_every_row_says_when_it_happens(documented: dict[str, tuple[int, str, str]]) -> None:
    undescribed = sorted(code for code, (_, _, when) in documented.items() if not when or when.startswith("not yet"))
    assert not undescribed, f"describe when these codes happen in docs/api.md: {undescribed}"
