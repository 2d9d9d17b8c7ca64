"""Clocks. Domain and services never read the wall clock directly; they are handed a ``Clock``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current time as a timezone-aware UTC datetime."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the wall-clock time in UTC."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to: for tests, demos and replayed scenarios."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """Return the clock's current time."""
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta`` (never backwards)."""
        if delta < timedelta(0):
            raise ValueError("a clock does not go backwards")
        self._now += delta

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (timezone-aware, not earlier than now)."""
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = when


def require_aware(value: datetime, field: str) -> datetime:
    """Return ``value`` in UTC; raise ``ValueError`` naming ``field`` if it has no timezone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware")
    return value.astimezone(UTC)
