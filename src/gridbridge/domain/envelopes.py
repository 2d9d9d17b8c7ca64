"""Operating envelopes as values, and the rule that says which limits are in force at a time.

An :class:`OperatingEnvelope` is a pair of non-negative limits on the net active power at one connection
point over one interval: ``p_export_max_kw`` (net injection into the network) and ``p_import_max_kw`` (net
withdrawal from it). It always carries an expiry; once it has expired, or where no envelope covers a time
at all, the connection point falls back to its configured default (:class:`EnvelopeDefaults`), never to
"no limit" (:func:`limits_in_force`).

The module also holds the settings every envelope calculation takes (:class:`NetworkLimits`: voltage
band, loading limit and T-D interface flow limits; :class:`VerificationTolerance`; the
:class:`AllocationPolicy`) with their validation rules, and the stable ``envelopes.*`` error codes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from gridbridge.domain.errors import ValidationFailed, register_code

# --- stable error codes ---------------------------------------------------------------------------------

BAND_INVALID = register_code(
    "envelopes.band_invalid", 422, "The voltage band is empty or out of range (v_min_pu must be below v_max_pu)"
)
LIMIT_INVALID = register_code(
    "envelopes.limit_invalid", 422, "An envelope setting (loading, flow limit, cap, tolerance) is out of range"
)
INTERVAL_INVALID = register_code(
    "envelopes.interval_invalid", 422, "The interval length, count or start of an envelope horizon is invalid"
)
FORECAST_INCOMPLETE = register_code(
    "envelopes.forecast_incomplete", 422, "The forecast misses intervals or values of the envelope horizon"
)
RATING_NEGATIVE = register_code(
    "envelopes.rating_negative", 422, "A DER rating or allocation weight is negative or not finite"
)
UNKNOWN_BUS = register_code("envelopes.unknown_bus", 422, "A bus named in the request is not in the network")
UNKNOWN_ELEMENT = register_code(
    "envelopes.unknown_element", 422, "A switch or branch named in the network state is not in the network"
)
NOT_RADIAL = register_code(
    "envelopes.network_not_radial",
    422,
    "The energised network has a closed loop; the envelope engine needs a radially operated network",
)
UNSUPPORTED_NETWORK = register_code(
    "envelopes.unsupported_network", 422, "The network holds an element the envelope engine does not model"
)
ENVELOPE_INVALID = register_code(
    "envelopes.envelope_invalid", 422, "An operating envelope value breaks a rule (negative limit, bad times)"
)

#: Interval lengths the platform computes envelopes for (minutes).
INTERVAL_MINUTES_ALLOWED: tuple[int, ...] = (5, 15, 30)


class AllocationPolicy(StrEnum):
    """How the shared network headroom is split between connection points.

    - ``equal``: every connection point gets the same limit.
    - ``proportional``: limits proportional to a weight per point (the DER rating at the point).
    - ``max_total``: the largest sum of limits (a linear programme); individual points may get zero.
    """

    EQUAL = "equal"
    PROPORTIONAL = "proportional"
    MAX_TOTAL = "max_total"


class Direction(StrEnum):
    """Which limit: export (net injection into the network) or import (net withdrawal)."""

    EXPORT = "export"
    IMPORT = "import"


def _finite(value: float, field: str, code: str, rule: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValidationFailed(f"{field} must be a finite number ({rule}); got {value!r}", field=field, code=code)
    return float(value)


@dataclass(frozen=True)
class NetworkLimits:
    """The limits every envelope must respect with all connection points at their limits at once.

    ``v_min_pu < v_max_pu`` (both in (0.5, 1.5)); ``max_loading_pct`` > 0 applies to every line and
    transformer; ``tdi_reverse_limit_kw`` caps the flow from distribution back into transmission at the
    T-D interface and ``tdi_forward_limit_kw`` the flow into distribution (None: not limited);
    ``point_cap_kw`` > 0 is the largest limit any single point can get (its connection capacity).
    """

    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    max_loading_pct: float = 100.0
    tdi_reverse_limit_kw: float | None = None
    tdi_forward_limit_kw: float | None = None
    point_cap_kw: float = 10_000.0

    def __post_init__(self) -> None:
        v_min = _finite(self.v_min_pu, "v_min_pu", BAND_INVALID, "per unit")
        v_max = _finite(self.v_max_pu, "v_max_pu", BAND_INVALID, "per unit")
        for name, value in (("v_min_pu", v_min), ("v_max_pu", v_max)):
            if not 0.5 < value < 1.5:
                raise ValidationFailed(
                    f"{name} must lie between 0.5 and 1.5 pu; got {value}", field=name, code=BAND_INVALID
                )
        if v_min >= v_max:
            raise ValidationFailed(
                f"v_min_pu ({v_min}) must be below v_max_pu ({v_max}): the voltage band is empty",
                field="v_min_pu",
                code=BAND_INVALID,
            )
        loading = _finite(self.max_loading_pct, "max_loading_pct", LIMIT_INVALID, "percent")
        if loading <= 0:
            raise ValidationFailed(
                f"max_loading_pct must be greater than zero; got {loading}", field="max_loading_pct", code=LIMIT_INVALID
            )
        for name in ("tdi_reverse_limit_kw", "tdi_forward_limit_kw"):
            value = getattr(self, name)
            if value is not None and _finite(value, name, LIMIT_INVALID, "kW") < 0:
                raise ValidationFailed(f"{name} must not be negative; got {value}", field=name, code=LIMIT_INVALID)
        if _finite(self.point_cap_kw, "point_cap_kw", LIMIT_INVALID, "kW") <= 0:
            raise ValidationFailed(
                f"point_cap_kw must be greater than zero; got {self.point_cap_kw}",
                field="point_cap_kw",
                code=LIMIT_INVALID,
            )


@dataclass(frozen=True)
class VerificationTolerance:
    """How far an AC power flow with every point at its limit may go beyond the limits and still pass:
    ``v_pu`` beyond the voltage band and ``loading_pct`` beyond the loading limit (and, for the T-D
    interface flow, ``tdi_pct`` percent of its limit)."""

    v_pu: float = 0.002
    loading_pct: float = 0.5
    tdi_pct: float = 0.5

    def __post_init__(self) -> None:
        for name in ("v_pu", "loading_pct", "tdi_pct"):
            if _finite(getattr(self, name), name, LIMIT_INVALID, "tolerance") < 0:
                raise ValidationFailed(
                    f"tolerance {name} must not be negative; got {getattr(self, name)}", field=name, code=LIMIT_INVALID
                )


def validate_interval_minutes(interval_minutes: int) -> int:
    """Return ``interval_minutes`` if the platform supports it (5, 15 or 30), else raise naming the rule."""
    if isinstance(interval_minutes, bool) or interval_minutes not in INTERVAL_MINUTES_ALLOWED:
        raise ValidationFailed(
            f"interval_minutes must be one of {', '.join(map(str, INTERVAL_MINUTES_ALLOWED))}; "
            f"got {interval_minutes!r}",
            field="interval_minutes",
            code=INTERVAL_INVALID,
        )
    return int(interval_minutes)


@dataclass(frozen=True)
class SwitchingState:
    """Switching applied before computing envelopes: switches, lines or transformers to open (or take
    out of service) and to close (or put back), by name (optionally prefixed ``switch:``, ``line:`` or
    ``trafo:``). Planned and unplanned outages for an interval end up here."""

    open_elements: tuple[str, ...] = ()
    close_elements: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "open_elements", tuple(self.open_elements))
        object.__setattr__(self, "close_elements", tuple(self.close_elements))

    @property
    def empty(self) -> bool:
        """True if nothing is switched."""
        return not self.open_elements and not self.close_elements


# --- the envelope value -----------------------------------------------------------------------------------


def _aware_utc(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(f"{field} must be a timezone-aware datetime", field=field, code=ENVELOPE_INVALID)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class OperatingEnvelope:
    """Export and import limits (kW, non-negative magnitudes) for one connection point over
    ``[interval_start, interval_end)``, in force until ``expiry`` at the latest.

    ``binding_export`` / ``binding_import`` name the constraint that sets each limit (for example
    ``bus:LV1.101 Bus 4:v_max`` or ``line:LV1.101 Line 3``). ``issued_at`` orders versions: of two
    envelopes covering the same time, the one issued later wins. Times are UTC, tz-aware.
    """

    connection_point: str
    interval_start: datetime
    interval_end: datetime
    p_export_max_kw: float
    p_import_max_kw: float
    binding_export: str
    binding_import: str
    expiry: datetime
    issued_at: datetime

    def __post_init__(self) -> None:
        if not self.connection_point:
            raise ValidationFailed(
                "an envelope needs a connection point", field="connection_point", code=ENVELOPE_INVALID
            )
        for name in ("interval_start", "interval_end", "expiry", "issued_at"):
            object.__setattr__(self, name, _aware_utc(getattr(self, name), name))
        if self.interval_end <= self.interval_start:
            raise ValidationFailed(
                "interval_end must be after interval_start", field="interval_end", code=ENVELOPE_INVALID
            )
        if self.expiry <= self.interval_start:
            raise ValidationFailed("expiry must be after interval_start", field="expiry", code=ENVELOPE_INVALID)
        for name in ("p_export_max_kw", "p_import_max_kw"):
            value = _finite(getattr(self, name), name, ENVELOPE_INVALID, "kW")
            if value < 0:
                raise ValidationFailed(
                    f"{name} is a magnitude and must not be negative; got {value}", field=name, code=ENVELOPE_INVALID
                )

    @property
    def binding(self) -> str:
        """Both binding constraints in one text: ``export=...;import=...``."""
        return f"export={self.binding_export};import={self.binding_import}"

    def in_force_at(self, when: datetime) -> bool:
        """True if ``when`` lies in the interval and before the expiry."""
        when = _aware_utc(when, "when")
        return self.interval_start <= when < self.interval_end and when < self.expiry


@dataclass(frozen=True)
class EnvelopeDefaults:
    """The limits a connection point falls back to where no envelope is in force: ``p_export_max_kw``
    for an approved DER (e.g. 1.5 kW), ``p_export_unapproved_kw`` (normally 0) for one not approved,
    and ``p_import_max_kw``. All finite and non-negative: there is no "no limit"."""

    p_export_max_kw: float = 1.5
    p_import_max_kw: float = 1.5
    p_export_unapproved_kw: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p_export_max_kw", "p_import_max_kw", "p_export_unapproved_kw"):
            if _finite(getattr(self, name), name, LIMIT_INVALID, "kW") < 0:
                raise ValidationFailed(
                    f"default {name} must not be negative; got {getattr(self, name)}", field=name, code=LIMIT_INVALID
                )


class LimitSource(StrEnum):
    """Where the limits in force come from."""

    ENVELOPE = "envelope"
    DEFAULT = "default"
    DEFAULT_NOT_APPROVED = "default_not_approved"


@dataclass(frozen=True)
class LimitsInForce:
    """The export and import limits (kW) a connection point must respect at one time, and their source."""

    connection_point: str
    at: datetime
    p_export_max_kw: float
    p_import_max_kw: float
    source: LimitSource
    envelope: OperatingEnvelope | None = None


def limits_in_force(
    envelopes: Iterable[OperatingEnvelope],
    connection_point: str,
    at: datetime,
    defaults: EnvelopeDefaults,
    *,
    approved: bool = True,
) -> LimitsInForce:
    """Return the limits in force at ``connection_point`` at time ``at``.

    The envelope for that point whose interval covers ``at`` and which has not expired wins (the latest
    ``issued_at`` if several do). Otherwise the point falls back to ``defaults``: the approved export
    default, or ``p_export_unapproved_kw`` when ``approved`` is False. The result always holds finite
    limits. ``at`` must be timezone-aware.
    """
    at_utc = _aware_utc(at, "at")
    best: OperatingEnvelope | None = None
    for env in envelopes:
        if (
            env.connection_point == connection_point
            and env.in_force_at(at_utc)
            and (best is None or env.issued_at > best.issued_at)
        ):
            best = env
    if best is not None:
        return LimitsInForce(
            connection_point, at_utc, best.p_export_max_kw, best.p_import_max_kw, LimitSource.ENVELOPE, best
        )
    if approved:
        return LimitsInForce(
            connection_point, at_utc, defaults.p_export_max_kw, defaults.p_import_max_kw, LimitSource.DEFAULT
        )
    return LimitsInForce(
        connection_point,
        at_utc,
        defaults.p_export_unapproved_kw,
        defaults.p_import_max_kw,
        LimitSource.DEFAULT_NOT_APPROVED,
    )


@dataclass(frozen=True)
class IntervalLimits:
    """The tightest limits (kW) a connection point must respect over ``[start, end)``: the smallest export
    and the smallest import limit in force at any time in it, each with its source and envelope."""

    connection_point: str
    start: datetime
    end: datetime
    p_export_max_kw: float
    p_import_max_kw: float
    export_source: LimitSource
    import_source: LimitSource
    export_envelope: OperatingEnvelope | None = None
    import_envelope: OperatingEnvelope | None = None


def limits_over_interval(
    envelopes: Iterable[OperatingEnvelope],
    connection_point: str,
    start: datetime,
    end: datetime | None,
    defaults: EnvelopeDefaults,
    *,
    approved: bool = True,
) -> IntervalLimits:
    """The limits in force at ``connection_point`` throughout ``[start, end)``.

    :func:`limits_in_force` is evaluated at ``start`` and at every envelope start, end and expiry inside the
    interval (the limits in force only change there), and the smallest export and import limits are kept
    separately; ties keep the earliest time. ``end`` None (or not after ``start``) means the instant ``start``.
    """
    begin = _aware_utc(start, "start")
    stop = _aware_utc(end, "end") if end is not None else begin
    mine = [e for e in envelopes if e.connection_point == connection_point]
    times = {begin}
    if stop > begin:
        for env in mine:
            for t in (env.interval_start, env.interval_end, env.expiry):
                if begin < t < stop:
                    times.add(t)
    samples = [limits_in_force(mine, connection_point, t, defaults, approved=approved) for t in sorted(times)]
    best_exp = min(samples, key=lambda x: x.p_export_max_kw)  # min keeps the first (earliest) of equals
    best_imp = min(samples, key=lambda x: x.p_import_max_kw)
    return IntervalLimits(
        connection_point=connection_point,
        start=begin,
        end=max(stop, begin),
        p_export_max_kw=best_exp.p_export_max_kw,
        p_import_max_kw=best_imp.p_import_max_kw,
        export_source=best_exp.source,
        import_source=best_imp.source,
        export_envelope=best_exp.envelope,
        import_envelope=best_imp.envelope,
    )
