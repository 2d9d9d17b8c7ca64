"""Envelope values, settings validation and the limits in force with fallback to defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gridbridge.domain.envelopes import (
    BAND_INVALID,
    ENVELOPE_INVALID,
    INTERVAL_INVALID,
    LIMIT_INVALID,
    EnvelopeDefaults,
    LimitSource,
    NetworkLimits,
    OperatingEnvelope,
    VerificationTolerance,
    limits_in_force,
    validate_interval_minutes,
)
from gridbridge.domain.errors import ValidationFailed

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def env(
    start: datetime,
    export_kw: float,
    *,
    minutes: int = 5,
    issued: datetime = T0,
    expiry: datetime | None = None,
    point: str = "cp1",
) -> OperatingEnvelope:
    end = start + timedelta(minutes=minutes)
    return OperatingEnvelope(point, start, end, export_kw, 3.0, "bus:x:v_max", "line:y", expiry or end, issued)


def test_band_must_not_be_empty() -> None:
    with pytest.raises(ValidationFailed) as err:
        NetworkLimits(v_min_pu=1.05, v_max_pu=0.95)
    assert err.value.code == BAND_INVALID
    assert err.value.field == "v_min_pu"
    with pytest.raises(ValidationFailed):
        NetworkLimits(v_min_pu=1.0, v_max_pu=1.0)
    with pytest.raises(ValidationFailed) as err2:
        NetworkLimits(v_max_pu=float("nan"))
    assert err2.value.field == "v_max_pu"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_loading_pct": 0.0}, "max_loading_pct"),
        ({"tdi_reverse_limit_kw": -1.0}, "tdi_reverse_limit_kw"),
        ({"point_cap_kw": 0.0}, "point_cap_kw"),
    ],
)
def test_limits_out_of_range(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        NetworkLimits(**kwargs)  # type: ignore[arg-type]
    assert err.value.code == LIMIT_INVALID
    assert err.value.field == field


def test_tolerance_and_interval_rules() -> None:
    with pytest.raises(ValidationFailed):
        VerificationTolerance(v_pu=-0.001)
    for ok in (5, 15, 30):
        assert validate_interval_minutes(ok) == ok
    for bad in (1, 10, 60, 0):
        with pytest.raises(ValidationFailed) as err:
            validate_interval_minutes(bad)
        assert err.value.code == INTERVAL_INVALID
        assert err.value.field == "interval_minutes"


def test_envelope_rules() -> None:
    with pytest.raises(ValidationFailed) as err:
        env(T0, -1.0)
    assert err.value.code == ENVELOPE_INVALID
    assert err.value.field == "p_export_max_kw"
    with pytest.raises(ValidationFailed):
        OperatingEnvelope("cp1", T0.replace(tzinfo=None), T0 + timedelta(minutes=5), 1, 1, "", "", T0, T0)
    with pytest.raises(ValidationFailed):
        env(T0, 1.0, expiry=T0)
    e = env(T0, 4.0)
    assert e.binding == "export=bus:x:v_max;import=line:y"
    eastern = timezone(timedelta(hours=-5))
    assert e.in_force_at((T0 + timedelta(minutes=1)).astimezone(eastern))
    assert not e.in_force_at(T0 + timedelta(minutes=5))


def test_limits_in_force_picks_the_covering_envelope_and_the_latest_issue() -> None:
    defaults = EnvelopeDefaults()
    envs = [env(T0, 4.0), env(T0 + timedelta(minutes=5), 6.0), env(T0, 5.0, issued=T0 + timedelta(seconds=1))]
    got = limits_in_force(envs, "cp1", T0 + timedelta(minutes=2), defaults)
    assert got.source is LimitSource.ENVELOPE
    assert got.p_export_max_kw == 5.0
    assert limits_in_force(envs, "cp1", T0 + timedelta(minutes=7), defaults).p_export_max_kw == 6.0


def test_fallback_to_defaults_never_no_limit() -> None:
    defaults = EnvelopeDefaults(p_export_max_kw=1.5, p_import_max_kw=5.0, p_export_unapproved_kw=0.0)
    envs = [env(T0, 4.0, expiry=T0 + timedelta(minutes=2))]
    expired = limits_in_force(envs, "cp1", T0 + timedelta(minutes=3), defaults)
    assert (expired.source, expired.p_export_max_kw, expired.p_import_max_kw) == (LimitSource.DEFAULT, 1.5, 5.0)
    other = limits_in_force(envs, "cp2", T0, defaults)
    assert other.p_export_max_kw == 1.5
    unapproved = limits_in_force([], "cp1", T0, defaults, approved=False)
    assert unapproved.source is LimitSource.DEFAULT_NOT_APPROVED
    assert unapproved.p_export_max_kw == 0.0
    with pytest.raises(ValidationFailed):
        EnvelopeDefaults(p_export_max_kw=float("inf"))
    with pytest.raises(ValidationFailed):
        limits_in_force(envs, "cp1", T0.replace(tzinfo=None), defaults)
