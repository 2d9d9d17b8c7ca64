"""Shared SimBench grids for the envelope validation tests, loaded once per test session."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from functools import cache

import pandapower as pp
import simbench

from gridbridge.adapters.powerflow.forecast import SimbenchProfileForecast
from gridbridge.adapters.powerflow.network import PandapowerEnvelopeNetwork
from gridbridge.domain.clock import FixedClock

LV = "1-LV-semiurb4--0-sw"
MV = "1-MV-semiurb--0-sw"
MVLV = "1-MVLV-rural-1.108-0-sw"
CLOCK = FixedClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
#: A sunny midday in the profile year: PV at its highest, so export limits are tight.
MIDDAY = datetime(2016, 6, 21, 11, 0, tzinfo=UTC)


@cache
def simbench_net(code: str) -> pp.pandapowerNet:
    """The SimBench grid (cached; callers must not change it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simbench.get_simbench_net(code)


@cache
def network(code: str, backend: str = "batched") -> PandapowerEnvelopeNetwork:
    """The envelope network of a SimBench grid (cached)."""
    return PandapowerEnvelopeNetwork(simbench_net(code), name=code, ac_backend=backend)  # type: ignore[arg-type]


def forecast(code: str) -> SimbenchProfileForecast:
    """SimBench profile forecast of the grid."""
    return SimbenchProfileForecast(network(code))
