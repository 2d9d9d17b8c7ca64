"""Errors as RFC 9457 problem+json, each with a stable ``code`` and the offending ``field``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridbridge.domain.errors import ERROR_CODES, GridbridgeError, register_code

PROBLEM_JSON = "application/problem+json"
METHOD_NOT_ALLOWED = register_code("method_not_allowed", 405, "The route does not accept this HTTP method")
REQUEST_INVALID = register_code("validation.request", 422, "The request body, path or query breaks the API schema")
IDEMPOTENCY_REUSED = register_code(
    "idempotency.key_reused", 422, "The Idempotency-Key was already used with a different request"
)
IDEMPOTENCY_IN_FLIGHT = register_code(
    "idempotency.in_progress", 409, "A request with this Idempotency-Key is being processed; retry"
)
INTERNAL = "internal"


def problem(
    status: int, code: str, detail: str, *, field: str | None = None, instance: str | None = None, **extra: Any
) -> JSONResponse:
    """A problem+json response; ``type`` points at the code's entry in docs/api.md."""
    body: dict[str, Any] = {
        "type": f"https://gridbridge.dev/errors#{code}",
        "title": ERROR_CODES[code].title if code in ERROR_CODES else code,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field_of(loc: tuple[Any, ...], error_type: str = "") -> str:
    if error_type == "json_invalid":
        return "body"  # the location of a JSON syntax error is a character offset, not a field
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error through problem+json: domain errors, schema violations, unknown routes, crashes."""

    @app.exception_handler(GridbridgeError)
    async def _domain(request: Request, exc: GridbridgeError) -> JSONResponse:
        extra = {"details": exc.details} if exc.details else {}
        return problem(exc.status, exc.code, exc.message, field=exc.field, instance=request.url.path, **extra)

    @app.exception_handler(RequestValidationError)
    async def _schema(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_of(tuple(e["loc"]), e["type"]), "rule": e["type"], "message": e["msg"]}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": None, "rule": "invalid", "message": "invalid request"}
        return problem(
            422,
            REQUEST_INVALID,
            f"{first['field']}: {first['message']} (rule {first['rule']})",
            field=first["field"],
            instance=request.url.path,
            rule=first["rule"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return problem(405, METHOD_NOT_ALLOWED, "method not allowed", instance=request.url.path)
        if exc.status_code == 404:
            return problem(404, "not_found", "no such route or object", instance=request.url.path)
        return problem(exc.status_code, INTERNAL, str(exc.detail), instance=request.url.path)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        return problem(500, INTERNAL, "internal error; nothing was changed", instance=request.url.path)
