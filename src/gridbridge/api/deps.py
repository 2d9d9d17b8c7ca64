"""Request plumbing: who is calling, and running a command in one transaction with idempotency."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from gridbridge.api.problems import IDEMPOTENCY_IN_FLIGHT, IDEMPOTENCY_REUSED
from gridbridge.domain.clock import Clock
from gridbridge.domain.errors import ConflictError, ValidationFailed
from gridbridge.domain.permissions import Caller
from gridbridge.services.context import Context, RegistrySettings
from gridbridge.services.networks import NetworkLoader
from gridbridge.services.participants import authenticate
from gridbridge.services.ports import StoredResponse, UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")


@dataclass(frozen=True)
class AppState:
    """What the app was built with (one composition root: ``gridbridge.api.app.create_app``)."""

    uow_factory: UnitOfWorkFactory
    clock: Clock
    settings: RegistrySettings
    network_loader: NetworkLoader | None = None


def app_state(request: Request) -> AppState:
    """The state the app was created with."""
    state: AppState = request.app.state.gridbridge
    return state


def current_caller(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Caller:
    """Authenticate the bearer token; every route except the docs depends on this."""
    secret = None
    if authorization and authorization.lower().startswith("bearer "):
        secret = authorization[7:].strip()
    with app_state(request).uow_factory() as uow:
        return authenticate(uow, secret)


CallerDep = Annotated[Caller, Depends(current_caller)]


class Commands:
    """Runs one write use case in one transaction, honouring ``Idempotency-Key``.

    The response (or the stored one, for a replay) is returned only after the commit succeeded, and the stored
    idempotent response is written in that same transaction.
    """

    def __init__(self, request: Request, caller: Caller) -> None:
        self.request = request
        self.caller = caller
        self.state = app_state(request)

    def _request_hash(self, payload: BaseModel | None) -> str:
        body = payload.model_dump_json() if payload is not None else ""
        text = f"{self.request.method} {self.request.url.path}?{self.request.url.query}\n{body}"
        return hashlib.sha256(text.encode()).hexdigest()

    def run(
        self,
        use_case: Callable[[Context], T],
        render: Callable[[T], BaseModel],
        *,
        payload: BaseModel | None = None,
        status_code: int = 200,
        redact: Callable[[Any], Any] | None = None,
    ) -> JSONResponse:
        """Execute ``use_case`` and commit; replay the stored answer for a repeated Idempotency-Key.

        ``redact`` turns the response into what may be kept for replays (secrets are never stored).
        """
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 200:
            raise ValidationFailed("Idempotency-Key must be 1-200 characters", field="Idempotency-Key")
        request_hash = self._request_hash(payload)
        with self.state.uow_factory() as uow:
            if key is not None:
                stored = uow.idempotency.get(self.caller.user_id, key)
                if stored is not None:
                    return self._replay(stored, request_hash)
            ctx = self._context(uow)
            result = use_case(ctx)
            body: Any = render(result).model_dump(mode="json")
            try:
                if key is not None:
                    stored_body = redact(body) if redact else body
                    uow.idempotency.save(
                        self.caller.user_id,
                        key,
                        StoredResponse(request_hash, status_code, stored_body),
                        self.state.clock.now(),
                    )
                uow.commit()
            except IntegrityError:
                if key is None:
                    raise
                uow.rollback()
                return self._replay_after_race(key, request_hash)
        return JSONResponse(body, status_code=status_code)

    def _replay(self, stored: StoredResponse, request_hash: str) -> JSONResponse:
        if stored.request_hash != request_hash:
            raise ValidationFailed(
                "this Idempotency-Key was used with a different request",
                field="Idempotency-Key",
                code=IDEMPOTENCY_REUSED,
            )
        return JSONResponse(stored.body, status_code=stored.status_code, headers={"Idempotent-Replayed": "true"})

    def _replay_after_race(self, key: str, request_hash: str) -> JSONResponse:
        with self.state.uow_factory() as uow:
            stored = uow.idempotency.get(self.caller.user_id, key)
        if stored is None:
            raise ConflictError(
                "a request with this key is in progress", field="Idempotency-Key", code=IDEMPOTENCY_IN_FLIGHT
            )
        return self._replay(stored, request_hash)

    def _context(self, uow: UnitOfWork) -> Context:
        return Context(
            uow=uow,
            caller=self.caller,
            clock=self.state.clock,
            settings=self.state.settings,
            network_loader=self.state.network_loader,
        )

    def query(self, use_case: Callable[[Context], T], render: Callable[[T], Any]) -> Any:
        """Run a read-only use case; nothing is committed."""
        with self.state.uow_factory() as uow:
            ctx = self._context(uow)
            return render(use_case(ctx))


def commands(request: Request, caller: CallerDep) -> Commands:
    """The command runner for this request's caller."""
    return Commands(request, caller)


CommandsDep = Annotated[Commands, Depends(commands)]
