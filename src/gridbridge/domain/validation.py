"""Small validation helpers shared by the domain: each raises ``ValidationFailed`` naming the field and rule."""

from __future__ import annotations

import math
import re

from gridbridge.domain.errors import ValidationFailed, register_code

REQUIRED = register_code("validation.required", 422, "A required field is missing or empty")
NOT_NEGATIVE = register_code("validation.negative", 422, "A quantity that must not be negative is negative")
NOT_POSITIVE = register_code("validation.not_positive", 422, "A quantity that must be positive is not")
NOT_FINITE = register_code("validation.not_finite", 422, "A number is NaN or infinite")
OUT_OF_RANGE = register_code("validation.out_of_range", 422, "A value is outside its allowed range")
BAD_NAME = register_code("validation.bad_name", 422, "A name is empty, too long or has control characters")

_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def require_name(value: str, field: str) -> str:
    """Return ``value`` stripped; it must be 1-200 printable characters."""
    stripped = value.strip()
    if not stripped:
        raise ValidationFailed(f"{field} must not be empty", field=field, code=REQUIRED)
    if not _NAME.match(stripped):
        raise ValidationFailed(
            f"{field} must be at most 200 characters without control characters", field=field, code=BAD_NAME
        )
    return stripped


def require_non_negative(value: float, field: str) -> float:
    """Return ``value`` if it is a finite number >= 0."""
    if not math.isfinite(value):
        raise ValidationFailed(f"{field} must be a finite number", field=field, code=NOT_FINITE)
    if value < 0:
        raise ValidationFailed(f"{field} must be >= 0, got {value}", field=field, code=NOT_NEGATIVE)
    return float(value)


def require_positive(value: float, field: str) -> float:
    """Return ``value`` if it is a finite number > 0."""
    require_non_negative(value, field)
    if value <= 0:
        raise ValidationFailed(f"{field} must be > 0, got {value}", field=field, code=NOT_POSITIVE)
    return float(value)


def require_range(value: float, field: str, low: float, high: float) -> float:
    """Return ``value`` if ``low <= value <= high``."""
    if not math.isfinite(value) or not low <= value <= high:
        raise ValidationFailed(f"{field} must be between {low} and {high}, got {value}", field=field, code=OUT_OF_RANGE)
    return float(value)
