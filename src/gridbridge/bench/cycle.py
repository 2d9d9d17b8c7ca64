"""``gridbridge bench cycle`` (in progress)."""

from __future__ import annotations


def cycle() -> None:
    """Benchmark one real-time coordination cycle against a one-LP baseline."""
    raise NotImplementedError("bench cycle is not written yet")
