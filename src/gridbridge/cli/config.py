"""Deployment settings, read from ``GRIDBRIDGE_*`` environment variables (documented in docs/settings.md)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridbridge.domain.offers import EnvelopePolicy
from gridbridge.services.context import RegistrySettings
from gridbridge.services.market_settings import MarketSettings
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
    storage_round_trip_efficiency: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Round-trip efficiency of a storage DER that declares none, in (0, 1] (conflict detection)",
    )
    day_ahead_gate_closure_min: int = Field(
        default=720, ge=0, le=10080, description="Minutes before a day-ahead hour that its offers close"
    )
    real_time_gate_closure_min: int = Field(
        default=10, ge=0, le=1440, description="Minutes before a real-time interval that its offers close"
    )
    day_ahead_price_floor_cad_per_mwh: Decimal = Field(
        default=Decimal("-2000"), allow_inf_nan=False, description="Lowest day-ahead offer or bid price, CAD/MWh"
    )
    day_ahead_price_cap_cad_per_mwh: Decimal = Field(
        default=Decimal("2000"), allow_inf_nan=False, description="Highest day-ahead offer or bid price, CAD/MWh"
    )
    real_time_price_floor_cad_per_mwh: Decimal = Field(
        default=Decimal("-2000"), allow_inf_nan=False, description="Lowest real-time offer or bid price, CAD/MWh"
    )
    real_time_price_cap_cad_per_mwh: Decimal = Field(
        default=Decimal("2000"), allow_inf_nan=False, description="Highest real-time offer or bid price, CAD/MWh"
    )
    envelope_policy: EnvelopePolicy = Field(
        default=EnvelopePolicy.CLIP, description="Offers beyond the envelope in force: clip or reject"
    )
    schedule_response_min: int = Field(default=60, ge=1, le=1440, description="Minutes to answer a schedule")
    dispatch_response_min: int = Field(default=2, ge=1, le=1440, description="Minutes to answer a dispatch")
    operating_response_min: int = Field(
        default=5, ge=1, le=1440, description="Minutes to answer an operating instruction"
    )
    shortage_price_cad_per_mwh: float = Field(
        default=2000.0, gt=0, description="Price of an unmet requirement in the clearing, CAD/MWh"
    )
    reverse_flow_threshold_kw: float = Field(
        default=0.0, ge=0, description="Export at an interface beyond which the TSO is notified, kW"
    )
    escalation_interval_s: float = Field(
        default=60.0, ge=0, le=86400, description="Seconds between escalation runs in `gridbridge serve` (0: off)"
    )
    envelope_queue_interval_s: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="Seconds between runs of the queued envelope recomputations in `gridbridge serve` (0: off)",
    )
    host: str = Field(default="127.0.0.1", description="Address `gridbridge serve` listens on")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `gridbridge serve` listens on")

    @model_validator(mode="after")
    def _floor_below_cap(self) -> Settings:
        """Each market's price floor must be below its cap (checked when the settings are read)."""
        for market in ("day_ahead", "real_time"):
            floor = getattr(self, f"{market}_price_floor_cad_per_mwh")
            cap = getattr(self, f"{market}_price_cap_cad_per_mwh")
            if floor >= cap:
                raise ValueError(
                    f"GRIDBRIDGE_{market.upper()}_PRICE_FLOOR_CAD_PER_MWH ({floor}) must be below "
                    f"GRIDBRIDGE_{market.upper()}_PRICE_CAP_CAD_PER_MWH ({cap})"
                )
        return self

    def registry(self) -> RegistrySettings:
        """The registry part of the settings, as services take it."""
        return RegistrySettings(
            der_review_days=self.der_review_days,
            member_review_days=self.member_review_days,
            aggregation_min_size_kw=self.aggregation_min_size_kw,
            storage_round_trip_efficiency=self.storage_round_trip_efficiency,
            market=MarketSettings(
                day_ahead_gate_closure_min=self.day_ahead_gate_closure_min,
                real_time_gate_closure_min=self.real_time_gate_closure_min,
                day_ahead_price_floor_cad_per_mwh=self.day_ahead_price_floor_cad_per_mwh,
                day_ahead_price_cap_cad_per_mwh=self.day_ahead_price_cap_cad_per_mwh,
                real_time_price_floor_cad_per_mwh=self.real_time_price_floor_cad_per_mwh,
                real_time_price_cap_cad_per_mwh=self.real_time_price_cap_cad_per_mwh,
                envelope_policy=self.envelope_policy,
                schedule_response_min=self.schedule_response_min,
                dispatch_response_min=self.dispatch_response_min,
                operating_response_min=self.operating_response_min,
                shortage_price_cad_per_mwh=self.shortage_price_cad_per_mwh,
                reverse_flow_threshold_kw=self.reverse_flow_threshold_kw,
            ),
        )
