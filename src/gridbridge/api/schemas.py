"""Shared response pieces and paging parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict

from gridbridge.services.ports import Page


class Strict(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(from_attributes=True)


def paging(
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 100,
    offset: Annotated[int, Query(ge=0, description="Rows to skip")] = 0,
) -> Page:
    """Paging of list routes."""
    return Page(limit=limit, offset=offset)
