"""The exception tree of gridbridge, with stable machine-readable codes.

Every error the platform raises on bad input or a forbidden action is a ``GridbridgeError``. Its ``code`` is
stable (clients may branch on it), ``field`` names the offending input where there is one, and ``status``
is the HTTP status the API answers with. Every code is listed in ``ERROR_CODES`` with a description, and
``docs/api.md`` documents each one (a test keeps them in step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class ErrorCode:
    """One stable error code: its HTTP status and what it means."""

    code: str
    status: int
    title: str


ERROR_CODES: dict[str, ErrorCode] = {}


def register_code(code: str, status: int, title: str) -> str:
    """Register a stable error code once and return it; registering a code twice is a programming error."""
    if code in ERROR_CODES:
        raise RuntimeError(f"error code {code!r} registered twice")
    ERROR_CODES[code] = ErrorCode(code, status, title)
    return code


class GridbridgeError(Exception):
    """Base of every expected error. Carries a stable code, a message, and the offending field if any."""

    default_code: ClassVar[str] = "internal"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        if self.code not in ERROR_CODES:
            raise RuntimeError(f"unregistered error code {self.code!r}")
        self.message = message
        self.field = field
        self.details: dict[str, Any] = dict(details or {})

    @property
    def status(self) -> int:
        """HTTP status for this error's code."""
        return ERROR_CODES[self.code].status

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.code}{where}: {self.message}"


register_code("internal", 500, "Internal error")


class ValidationFailed(GridbridgeError):
    """Input breaks a rule: a missing, malformed or out-of-range value. ``field`` names it."""

    default_code = register_code("validation.invalid", 422, "A field breaks a validation rule")


class NotFound(GridbridgeError):
    """The object does not exist, or the caller may not see it (the two are indistinguishable)."""

    default_code = register_code("not_found", 404, "No such object visible to the caller")


class AuthenticationFailed(GridbridgeError):
    """No valid credentials were presented."""

    default_code = register_code("auth.unauthenticated", 401, "Missing or invalid API token")


class PermissionDenied(GridbridgeError):
    """The caller is known and may see the object, but may not perform this action."""

    default_code = register_code("auth.forbidden", 403, "The caller's role may not perform this action")


class ConflictError(GridbridgeError):
    """The request is well formed but conflicts with the current state."""

    default_code = register_code("conflict", 409, "The request conflicts with the current state")
