"""Bad input to the envelope service: each gets a clear error naming the field and rule; nothing is produced.

The forecasts here are small in-memory implementations of the ``ForecastSource`` port (a fake, not a mock):
they return what a real source would, minus what each test takes away.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest
from envelope_grids import CLOCK, LV, MIDDAY, forecast, network, simbench_net

from gridbridge.adapters.powerflow.network import PandapowerEnvelopeNetwork
from gridbridge.domain.envelopes import (
    BAND_INVALID,
    FORECAST_INCOMPLETE,
    INTERVAL_INVALID,
    NOT_RADIAL,
    RATING_NEGATIVE,
    UNKNOWN_BUS,
    UNKNOWN_ELEMENT,
    AllocationPolicy,
    NetworkLimits,
    SwitchingState,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.services.envelopes import EnvelopeRequest, compute_envelopes
from gridbridge.services.envelopes_ports import BusForecast


class EditedForecast:
    """The SimBench forecast of the LV grid, passed through ``edit`` before it is returned."""

    description = "edited SimBench forecast"

    def __init__(self, edit) -> None:  # type: ignore[no-untyped-def]
        self._edit = edit

    def bus_forecast(self, interval_starts: Sequence[datetime], interval_minutes: int) -> BusForecast:
        return self._edit(forecast(LV).bus_forecast(interval_starts, interval_minutes))  # type: ignore[no-any-return]


def _request(**kwargs: object) -> EnvelopeRequest:
    base: dict[str, object] = {"start": MIDDAY, "intervals": 4, "interval_minutes": 15}
    base.update(kwargs)
    return EnvelopeRequest(**base)  # type: ignore[arg-type]


def _fails(code: str, field: str | None, forecast_source=None, **kwargs: object) -> ValidationFailed:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed) as err:
        compute_envelopes(_request(**kwargs), network(LV), forecast_source or forecast(LV), clock=CLOCK)
    assert err.value.code == code, err.value
    if field is not None:
        assert err.value.field == field
    return err.value


def test_forecast_missing_an_interval() -> None:
    def drop_one(fc: BusForecast) -> BusForecast:
        return replace(
            fc,
            interval_starts=fc.interval_starts[:2] + fc.interval_starts[3:],
            p_inj_mw=np.delete(fc.p_inj_mw, 2, axis=0),
            q_inj_mvar=np.delete(fc.q_inj_mvar, 2, axis=0),
        )

    err = _fails(FORECAST_INCOMPLETE, "forecast.interval_starts", EditedForecast(drop_one))
    assert (MIDDAY + timedelta(minutes=30)).isoformat() in err.message


def test_forecast_with_a_missing_value() -> None:
    def hole(fc: BusForecast) -> BusForecast:
        p = fc.p_inj_mw.copy()
        p[1, 3] = np.nan
        return replace(fc, p_inj_mw=p)

    err = _fails(FORECAST_INCOMPLETE, "forecast", EditedForecast(hole))
    assert network(LV).bus_names[3] in err.message


def test_forecast_naming_an_unknown_bus() -> None:
    def rename(fc: BusForecast) -> BusForecast:
        return replace(fc, bus_names=("no such bus", *fc.bus_names[1:]))

    err = _fails(UNKNOWN_BUS, "forecast.bus_names", EditedForecast(rename))
    assert "no such bus" in err.message


def test_unknown_connection_point_bus() -> None:
    err = _fails(UNKNOWN_BUS, "connection_points", connection_points=("LV4.101 Bus 1", "Bus 9999"))
    assert "Bus 9999" in err.message


def test_negative_rating_given_as_weight() -> None:
    point = network(LV).bus_names[int(network(LV).connection_point_buses[0])]
    _fails(RATING_NEGATIVE, "weights_kw", weights_kw={point: -5.0}, policy=AllocationPolicy.PROPORTIONAL)


def test_negative_der_rating_in_the_network() -> None:
    net = copy.deepcopy(simbench_net(LV))
    net.sgen.loc[net.sgen.index[0], "sn_mva"] = -0.01
    bad = PandapowerEnvelopeNetwork(net, name="bad ratings")
    with pytest.raises(ValidationFailed) as err:
        compute_envelopes(_request(policy=AllocationPolicy.PROPORTIONAL), bad, forecast(LV), clock=CLOCK)
    assert err.value.code == RATING_NEGATIVE
    assert err.value.field == "sgen.sn_mva"


def test_band_with_v_min_above_v_max() -> None:
    with pytest.raises(ValidationFailed) as err:
        _request(limits=NetworkLimits(v_min_pu=1.06, v_max_pu=1.04))
    assert err.value.code == BAND_INVALID


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"interval_minutes": 10}, "interval_minutes"),
        ({"intervals": 0}, "intervals"),
        ({"start": MIDDAY.replace(tzinfo=None)}, "start"),
        ({"start": MIDDAY + timedelta(minutes=7)}, "start"),
        ({"intervals": 3000}, "intervals"),
    ],
)
def test_bad_horizon(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        _request(**kwargs)
    assert err.value.code == INTERVAL_INVALID
    assert err.value.field == field


def test_unknown_switch_in_the_network_state() -> None:
    _fails(UNKNOWN_ELEMENT, "network_state", switching=SwitchingState(open_elements=("Switch 99999",)))


def test_closing_a_loop_is_refused_clearly() -> None:
    # a line between two LV buses of the same feeder closes a loop
    net = copy.deepcopy(simbench_net(LV))
    import pandapower as pp

    a, b = net.line.from_bus.iloc[0], net.line.to_bus.iloc[3]
    pp.create_line_from_parameters(net, a, b, 0.1, 0.2, 0.1, 0.0, 0.2, name="loop line")
    meshed = PandapowerEnvelopeNetwork(net, name="meshed")
    with pytest.raises(ValidationFailed) as err:
        compute_envelopes(_request(), meshed, forecast(LV), clock=CLOCK)
    assert err.value.code == NOT_RADIAL
    assert "loop" in err.value.message
