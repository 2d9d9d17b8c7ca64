"""The test province with envelope settings for fast runs, and helpers shared by the envelope store tests.

On ``1-LV-rural1--0-sw`` (the grid of every interface of ``registry_province``) the connection points are
named after their buses; the feeder ``LV1.101 Line 12`` serves ``LV1.101 Bus 2`` (DER a2 of owner_1,
represented by agg_1, on tdi_a), ``LV1.101 Bus 9`` and ``LV1.101 Bus 13``. Taking that line out de-energises
exactly those three points.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from gridbridge.adapters.powerflow.stored import PandapowerEnvelopeBackend
from gridbridge.domain.envelope_publication import StoredEnvelope
from gridbridge.domain.network import NetworkModel
from gridbridge.domain.permissions import DerScope
from gridbridge.services import envelope_runs
from gridbridge.services.context import Context
from gridbridge.services.envelope_runs import RunOutcome
from gridbridge.services.envelope_store_ports import PreparedNetwork
from gridbridge.services.envelopes_ports import BusForecast
from gridbridge.services.ports import Page
from registry_province import T0, Province, build_province

BACKEND = PandapowerEnvelopeBackend()
FEEDER_LINE = "LV1.101 Line 12"
FEEDER_POINTS = ("LV1.101 Bus 2", "LV1.101 Bus 9", "LV1.101 Bus 13")
SETTINGS = {"interval_minutes": 15, "horizon_hours": 1}
"""Four 15-minute intervals: a run takes well under a second once pandapower is warm."""


def envelope_province(database_url: str, tdis: Sequence[str] = ("tdi_a", "tdi_b")) -> Province:
    """The registry province with 15-minute intervals and a one-hour horizon on the given interfaces."""
    province = build_province(database_url)
    for name in tdis:
        ldc = "ldc_a" if name == "tdi_a" else "ldc_b"
        tdi_id = province.tdis[name]
        province.run(ldc, lambda ctx, t=tdi_id: envelope_runs.update_settings(ctx, t, dict(SETTINGS)))
    return province


def run_envelopes(province: Province, tdi: str = "tdi_a", *, publish: bool = True, **kwargs: Any) -> RunOutcome:
    """Compute (and publish) a run of ``tdi`` as its LDC."""
    ldc = "ldc_a" if tdi == "tdi_a" else "ldc_b"
    tdi_id = province.tdis[tdi]
    outcome = province.run(ldc, lambda ctx: envelope_runs.compute_run(ctx, BACKEND, tdi_id, publish=publish, **kwargs))
    assert isinstance(outcome, RunOutcome)
    return outcome


def point_ids(province: Province, tdi: str = "tdi_a") -> dict[str, int]:
    """Connection point ids of an interface by name."""
    with province.platform.unit_of_work() as uow:
        return {p.name: p.id for p in uow.networks.connection_points(province.tdis[tdi])}


def all_envelopes(province: Province, *, include_superseded: bool = True) -> list[StoredEnvelope]:
    """Every published envelope, read as the platform administrator."""
    with province.platform.unit_of_work() as uow:
        return uow.envelopes.envelopes.query(
            DerScope(everything=True), Page(limit=1000), include_superseded=include_superseded
        )


def at(minutes: int) -> datetime:
    """``T0`` plus ``minutes``."""
    return T0 + timedelta(minutes=minutes)


class ShortForecastBackend:
    """A real backend whose forecast leaves out the last requested interval (a forecast with a gap)."""

    def prepare(self, model: NetworkModel, *, source: str) -> PreparedNetwork:
        real = BACKEND.prepare(model, source=source)
        return PreparedNetwork(real.network, _Short(real.forecast))


class _Short:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def description(self) -> str:
        return "a forecast missing its last interval"

    def bus_forecast(self, interval_starts: Sequence[datetime], interval_minutes: int) -> BusForecast:
        full: BusForecast = self.inner.bus_forecast(interval_starts, interval_minutes)
        return BusForecast(
            full.bus_names,
            full.interval_starts[:-1],
            interval_minutes,
            full.p_inj_mw[:-1],
            full.q_inj_mvar[:-1],
            full.source,
        )


class UnknownBusBackend:
    """A real backend whose forecast names a bus the network does not have."""

    def prepare(self, model: NetworkModel, *, source: str) -> PreparedNetwork:
        real = BACKEND.prepare(model, source=source)
        return PreparedNetwork(real.network, _Renamed(real.forecast))


class _Renamed:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def description(self) -> str:
        return "a forecast naming an unknown bus"

    def bus_forecast(self, interval_starts: Sequence[datetime], interval_minutes: int) -> BusForecast:
        full: BusForecast = self.inner.bus_forecast(interval_starts, interval_minutes)
        names = ("no such bus", *full.bus_names[1:])
        return BusForecast(names, full.interval_starts, interval_minutes, full.p_inj_mw, full.q_inj_mvar, full.source)


def as_ldc(province: Province, tdi: str) -> str:
    """The LDC that owns ``tdi``."""
    return "ldc_a" if tdi == "tdi_a" else "ldc_b"


def ctx_run(province: Province, who: str, action: Any) -> Any:
    """``province.run`` with a typed result of Any (for brevity in tests)."""
    return province.run(who, action)


__all__ = ["Context"]
