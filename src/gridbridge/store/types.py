"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Dialect, Enum, String, TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Stores timezone-aware datetimes as naive UTC and returns them timezone-aware (UTC) on every backend."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def enum_column(enum_class: type[StrEnum]) -> Enum:
    """A portable enum column storing the member values as strings (checked by a constraint)."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        name=f"{enum_class.__name__.lower()}_enum",
        validate_strings=True,
    )


class EnumSet(TypeDecorator[frozenset[Any]]):
    """A set of a string enum's members, stored as their values sorted and joined by commas (``""``: none)."""

    impl = String(128)
    cache_ok = True

    def __init__(self, enum_class: type[StrEnum]) -> None:
        super().__init__()
        self.enum_class = enum_class

    def process_bind_param(self, value: frozenset[Any] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return ",".join(sorted(self.enum_class(v).value for v in value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> frozenset[Any] | None:
        if value is None:
            return None
        return frozenset(self.enum_class(v) for v in value.split(",") if v)


def json_safe(value: Any) -> Any:
    """Identity helper documenting that JSON columns hold plain JSON values only."""
    return value
