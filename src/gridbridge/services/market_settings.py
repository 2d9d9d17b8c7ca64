"""Market settings a deployment may change (docs/settings.md): gate closure and price bounds per market, what to
do with an offer beyond its envelope, instruction response windows, the shortage price."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from gridbridge.domain.market import InstructionKind
from gridbridge.domain.offers import EnvelopePolicy, Market, MarketRules, PriceBounds


@dataclass(frozen=True)
class MarketSettings:
    """Everything the coordination cycle reads from configuration."""

    day_ahead_gate_closure_min: int = 720
    """Day-ahead offers for an hour close this many minutes before it starts."""
    real_time_gate_closure_min: int = 10
    """Real-time offers for a 5-minute interval close this many minutes before it starts."""
    day_ahead_price_floor_cad_per_mwh: Decimal = Decimal("-2000")
    """Lowest segment price of a day-ahead offer or bid."""
    day_ahead_price_cap_cad_per_mwh: Decimal = Decimal("2000")
    """Highest segment price of a day-ahead offer or bid."""
    real_time_price_floor_cad_per_mwh: Decimal = Decimal("-2000")
    """Lowest segment price of a real-time offer or bid."""
    real_time_price_cap_cad_per_mwh: Decimal = Decimal("2000")
    """Highest segment price of a real-time offer or bid."""
    envelope_policy: EnvelopePolicy = EnvelopePolicy.CLIP
    schedule_response_min: int = 60
    """Minutes a recipient has to acknowledge (receipt, then accept or reject) a day-ahead schedule."""
    dispatch_response_min: int = 2
    """Minutes for a real-time dispatch instruction."""
    operating_response_min: int = 5
    """Minutes for a TSO operating instruction (and the DSO's allocations of it)."""
    shortage_price_cad_per_mwh: float = 2000.0
    """Price of an unmet energy or reserve requirement in the clearing (so a short market still clears)."""
    reverse_flow_threshold_kw: float = 0.0
    """Export at an interface beyond which the TSO is notified of reverse flow."""

    def price_bounds(self, market: Market) -> PriceBounds:
        """The market's own price floor and cap (``validation.out_of_range`` when the floor is not below the cap)."""
        if market is Market.DAY_AHEAD:
            return PriceBounds(self.day_ahead_price_floor_cad_per_mwh, self.day_ahead_price_cap_cad_per_mwh)
        return PriceBounds(self.real_time_price_floor_cad_per_mwh, self.real_time_price_cap_cad_per_mwh)

    def rules(self, market: Market) -> MarketRules:
        """The market's rules: interval, its gate closure lead, its price bounds, the envelope policy."""
        lead = self.day_ahead_gate_closure_min if market is Market.DAY_AHEAD else self.real_time_gate_closure_min
        return MarketRules(
            market=market,
            gate_closure_lead=timedelta(minutes=lead),
            price_bounds=self.price_bounds(market),
            envelope_policy=self.envelope_policy,
        )

    def response_window(self, kind: InstructionKind) -> timedelta:
        """How long a recipient has to answer an instruction of ``kind``."""
        minutes = {
            InstructionKind.SCHEDULE: self.schedule_response_min,
            InstructionKind.DISPATCH: self.dispatch_response_min,
            InstructionKind.OPERATING: self.operating_response_min,
        }[kind]
        return timedelta(minutes=minutes)
