"""Deployment settings, read from ``GRIDBRIDGE_*`` environment variables (documented in docs/settings.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridbridge.services.context import RegistrySettings
from gridbridge.store.database import default_database_url


class Settings(BaseSettings):
    """Every setting of a gridbridge deployment. Environment variables override the defaults."""

    model_config = SettingsConfigDict(env_prefix="GRIDBRIDGE_", extra="ignore")

    database_url: str = Field(
        default_factory=default_database_url, description="SQLAlchemy URL: sqlite:///path or postgresql://user@host/db"
    )
    der_review_days: int = Field(
        default=60, ge=1, le=3650, description="Days an LDC has to decide an interconnection request"
    )
    member_review_days: int = Field(
        default=60, ge=1, le=3650, description="Days an LDC has to review an aggregation member"
    )
    aggregation_min_size_kw: float = Field(
        default=100.0, gt=0, description="Default minimum aggregation size per market, kW"
    )
    host: str = Field(default="127.0.0.1", description="Address `gridbridge serve` listens on")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `gridbridge serve` listens on")

    def registry(self) -> RegistrySettings:
        """The registry part of the settings, as services take it."""
        return RegistrySettings(
            der_review_days=self.der_review_days,
            member_review_days=self.member_review_days,
            aggregation_min_size_kw=self.aggregation_min_size_kw,
        )
