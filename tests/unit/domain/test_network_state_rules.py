"""Network events, their combination, envelope settings and limits over an interval: the pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridbridge.domain.envelope_publication import EnvelopeSettings, ceil_to_interval, floor_to_interval
from gridbridge.domain.envelopes import EnvelopeDefaults, LimitSource, OperatingEnvelope, limits_over_interval
from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.network_state import (
    Derate,
    NetworkEvent,
    NetworkEventKind,
    combined_state,
    new_event,
    state_segments,
)

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _event(kind: NetworkEventKind, minutes: tuple[int, int], recorded: int = 0, **kwargs: object) -> NetworkEvent:
    return new_event(
        event_id=f"{kind.value}-{recorded}",
        tdi_id="tdi",
        kind=kind,
        starts_at=T0 + timedelta(minutes=minutes[0]),
        ends_at=T0 + timedelta(minutes=minutes[1]),
        recorded_by="user",
        now=T0 + timedelta(seconds=recorded),
        **kwargs,  # type: ignore[arg-type]
    )


def test_outages_win_over_switching_and_later_switching_wins_over_earlier() -> None:
    close_tie = _event(NetworkEventKind.SWITCHING, (0, 60), 1, close_elements=["tie"], open_elements=["a"])
    reopen = _event(NetworkEventKind.SWITCHING, (0, 60), 2, open_elements=["tie"])
    outage = _event(NetworkEventKind.PLANNED_OUTAGE, (0, 60), 0, open_elements=["b", "c"])
    reclose_b = _event(NetworkEventKind.SWITCHING, (0, 60), 3, close_elements=["b"])
    state = combined_state([reclose_b, outage, reopen, close_tie])
    assert state.switching.open_elements == ("a", "b", "c", "tie")
    assert state.switching.close_elements == ()
    assert state.event_ids == ("planned_outage-0", "switching-1", "switching-2", "switching-3")
    derates = combined_state(
        [
            _event(NetworkEventKind.DERATE, (0, 60), 4, derates=[Derate("t1", 80.0), Derate("l1", 50.0)]),
            _event(NetworkEventKind.DERATE, (0, 60), 5, derates=[Derate("t1", 60.0)]),
        ]
    ).derates
    assert derates == (("l1", 50.0), ("t1", 60.0))


def test_segments_split_at_every_boundary_inside_the_window() -> None:
    a = _event(NetworkEventKind.PLANNED_OUTAGE, (10, 40), open_elements=["x"])
    b = _event(NetworkEventKind.UNPLANNED_OUTAGE, (30, 90), 1, open_elements=["y"])
    pieces = state_segments([a, b], T0, T0 + timedelta(minutes=60))
    assert [((s - T0).seconds // 60, (e - T0).seconds // 60, [x.id for x in act]) for s, e, act in pieces] == [
        (0, 10, []),
        (10, 30, ["planned_outage-0"]),
        (30, 40, ["planned_outage-0", "unplanned_outage-1"]),
        (40, 60, ["unplanned_outage-1"]),
    ]


@pytest.mark.parametrize(
    ("kind", "window", "kwargs", "field"),
    [
        (NetworkEventKind.PLANNED_OUTAGE, (0, 0), {"open_elements": ["x"]}, "ends_at"),
        (NetworkEventKind.PLANNED_OUTAGE, (-60, -1), {"open_elements": ["x"]}, "ends_at"),
        (NetworkEventKind.PLANNED_OUTAGE, (0, 60), {}, "open_elements"),
        (NetworkEventKind.PLANNED_OUTAGE, (0, 60), {"open_elements": ["x"], "close_elements": ["y"]}, "close_elements"),
        (NetworkEventKind.SWITCHING, (0, 60), {"open_elements": ["x"], "close_elements": ["x"]}, "close_elements"),
        (NetworkEventKind.SWITCHING, (0, 60), {"open_elements": ["x", "x"]}, "open_elements"),
        (NetworkEventKind.SWITCHING, (0, 60), {"open_elements": [" "]}, "open_elements"),
        (NetworkEventKind.DERATE, (0, 60), {"derates": [Derate("l", 0.0)]}, "derates"),
        (NetworkEventKind.DERATE, (0, 60), {"derates": [Derate("l", 101.0)]}, "derates"),
        (NetworkEventKind.DERATE, (0, 60), {"derates": [Derate("l", float("nan"))]}, "derates"),
        (NetworkEventKind.DERATE, (0, 60), {"derates": [Derate("l", 50.0)], "open_elements": ["x"]}, "open_elements"),
    ],
)
def test_bad_events_are_refused_naming_the_field(
    kind: NetworkEventKind, window: tuple[int, int], kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _event(kind, window, 0, **kwargs)
    assert caught.value.field == field
    assert caught.value.code.startswith("network_state.")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        new_event(
            event_id="e",
            tdi_id="t",
            kind=NetworkEventKind.PLANNED_OUTAGE,
            starts_at=datetime(2026, 5, 4, 12),
            ends_at=T0 + timedelta(hours=1),
            open_elements=["x"],
            recorded_by="u",
            now=T0,
        )
    assert (caught.value.code, caught.value.field) == ("network_state.window_invalid", "starts_at")


def test_settings_are_validated_as_a_whole() -> None:
    settings = EnvelopeSettings()
    assert settings.horizon_intervals == 288
    assert settings.network_limits(2000.0).tdi_reverse_limit_kw == 2000.0
    assert settings.updated({"reverse_flow_limit_kw": 10.0}).network_limits(2000.0).tdi_reverse_limit_kw == 10.0
    for changes, code, field in (
        ({"v_min_pu": 1.06}, "envelopes.band_invalid", "v_min_pu"),
        ({"interval_minutes": 20}, "envelopes.interval_invalid", "interval_minutes"),
        ({"horizon_hours": 169}, "envelopes.interval_invalid", "horizon_hours"),
        ({"default_import_kw": float("inf")}, "envelopes.limit_invalid", "default_import_kw"),
        ({"max_loading_pct": 0.0}, "envelopes.limit_invalid", "max_loading_pct"),
        ({"colour": "red"}, "validation.invalid", "colour"),
    ):
        with pytest.raises(ValidationFailed) as caught:
            settings.updated(changes)
        assert (caught.value.code, caught.value.field) == (code, field)


def test_interval_grid() -> None:
    when = T0 + timedelta(minutes=22, seconds=5)
    assert floor_to_interval(when, 15) == T0 + timedelta(minutes=15)
    assert ceil_to_interval(when, 15) == T0 + timedelta(minutes=30)
    assert ceil_to_interval(T0, 30) == T0


def _env(start: int, end: int, export_kw: float, issued: int = 0, expiry: int | None = None) -> OperatingEnvelope:
    return OperatingEnvelope(
        connection_point="p",
        interval_start=T0 + timedelta(minutes=start),
        interval_end=T0 + timedelta(minutes=end),
        p_export_max_kw=export_kw,
        p_import_max_kw=export_kw + 1,
        binding_export="b",
        binding_import="b",
        expiry=T0 + timedelta(minutes=end if expiry is None else expiry),
        issued_at=T0 + timedelta(seconds=issued),
    )


def test_limits_over_an_interval_take_the_tightest_time_and_fall_back_to_defaults() -> None:
    defaults = EnvelopeDefaults(p_export_max_kw=3.0, p_import_max_kw=4.0, p_export_unapproved_kw=0.0)
    envs = [_env(0, 15, 10.0), _env(15, 30, 6.0), _env(15, 30, 8.0, issued=5), _env(30, 45, 9.0, expiry=35)]

    def over(a: int, b: int | None, approved: bool = True) -> tuple[float, float, LimitSource, LimitSource]:
        lim = limits_over_interval(
            envs,
            "p",
            T0 + timedelta(minutes=a),
            None if b is None else T0 + timedelta(minutes=b),
            defaults,
            approved=approved,
        )
        return lim.p_export_max_kw, lim.p_import_max_kw, lim.export_source, lim.import_source

    assert over(5, None) == (10.0, 11.0, LimitSource.ENVELOPE, LimitSource.ENVELOPE)
    assert over(0, 30) == (8.0, 9.0, LimitSource.ENVELOPE, LimitSource.ENVELOPE)  # the later issue wins at 15
    assert over(30, 45) == (3.0, 4.0, LimitSource.DEFAULT, LimitSource.DEFAULT)  # expired at 35: the default
    assert over(50, 60, approved=False) == (
        0.0,
        4.0,
        LimitSource.DEFAULT_NOT_APPROVED,
        LimitSource.DEFAULT_NOT_APPROVED,
    )
    other = limits_over_interval(envs, "q", T0, T0 + timedelta(minutes=60), defaults)
    assert other.export_source is LimitSource.DEFAULT
