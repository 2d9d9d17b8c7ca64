"""``gridbridge bench envelopes`` (in progress)."""

from __future__ import annotations


def envelopes() -> None:
    """Benchmark the envelope engine against the naive method."""
    raise NotImplementedError("bench envelopes is not written yet")
