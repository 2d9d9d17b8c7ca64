"""Envelopes on the platform: per-interface settings, runs, published versions, hosting-capacity assessments.

- :class:`EnvelopeSettings`: one interface's envelope settings, stored as data and changed by its DSO
  (voltage band, loading limit, policy, interval length, horizon, reverse-flow limit, per-point cap, and the
  defaults a point falls back to where no envelope is in force).
- :class:`EnvelopeRunRecord`: one calculation (queued, computed, published, failed or replaced), with its
  calculation log and verification summary.
- :class:`StoredEnvelope`: one envelope of a run (a draft until published) or a published version for a
  (connection point, interval). Published versions are never edited: a change is a new version that
  supersedes the previous one.
- :class:`HostingAssessment`: a DER's connection point's hosting capacity for the interconnection review,
  and whether the application exceeds it (with the binding element).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from gridbridge.domain.envelopes import (
    INTERVAL_INVALID,
    LIMIT_INVALID,
    AllocationPolicy,
    EnvelopeDefaults,
    NetworkLimits,
    OperatingEnvelope,
    validate_interval_minutes,
)
from gridbridge.domain.errors import ValidationFailed, register_code

NO_NETWORK = register_code(
    "envelopes.no_network", 409, "The T-D interface has no stored network model to compute envelopes on"
)
RUN_NOT_PUBLISHABLE = register_code(
    "envelopes.run_not_publishable", 409, "Only a computed envelope run can be published"
)
RUN_STALE = register_code(
    "envelopes.run_stale",
    409,
    "The network state changed after the run was computed; compute the envelopes again before publishing",
)
NOTHING_TO_PUBLISH = register_code(
    "envelopes.nothing_to_publish", 409, "Every interval of the run has already ended; nothing is left to publish"
)

#: Longest horizon an interface may configure (hours).
MAX_HORIZON_HOURS = 168

#: Binding label of a zero envelope issued because a network event de-energised its connection point.
DE_ENERGISED_BINDING = "de-energised"


@dataclass(frozen=True)
class EnvelopeSettings:
    """One T-D interface's envelope settings (defaults apply until its DSO changes them).

    ``reverse_flow_limit_kw`` caps the flow from distribution back into transmission at the interface; None
    takes the interface's own ``export_limit_kw``. ``default_export_kw``/``default_import_kw`` are the limits
    a connection point with an approved DER falls back to where no envelope is in force, and
    ``default_unapproved_export_kw`` the export limit of a point without one (normally 0).
    """

    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    max_loading_pct: float = 100.0
    policy: AllocationPolicy = AllocationPolicy.EQUAL
    interval_minutes: int = 5
    horizon_hours: int = 24
    reverse_flow_limit_kw: float | None = None
    point_cap_kw: float = 10_000.0
    default_export_kw: float = 1.5
    default_import_kw: float = 1.5
    default_unapproved_export_kw: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", AllocationPolicy(self.policy))
        validate_interval_minutes(self.interval_minutes)
        hours = self.horizon_hours
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_HORIZON_HOURS:
            raise ValidationFailed(
                f"horizon_hours must be a whole number of hours from 1 to {MAX_HORIZON_HOURS}; got {hours!r}",
                field="horizon_hours",
                code=INTERVAL_INVALID,
            )
        try:
            self.network_limits(0.0)  # validates the band, loading limit, reverse-flow limit and cap
        except ValidationFailed as exc:
            if exc.field == "tdi_reverse_limit_kw":
                raise ValidationFailed(
                    f"reverse_flow_limit_kw must be a finite number >= 0; got {self.reverse_flow_limit_kw!r}",
                    field="reverse_flow_limit_kw",
                    code=exc.code,
                ) from exc
            raise
        self.defaults()

    def network_limits(self, interface_export_limit_kw: float) -> NetworkLimits:
        """The limits every envelope must keep; the reverse-flow limit defaults to the interface's export limit."""
        reverse = self.reverse_flow_limit_kw if self.reverse_flow_limit_kw is not None else interface_export_limit_kw
        return NetworkLimits(
            v_min_pu=self.v_min_pu,
            v_max_pu=self.v_max_pu,
            max_loading_pct=self.max_loading_pct,
            tdi_reverse_limit_kw=reverse,
            point_cap_kw=self.point_cap_kw,
        )

    def defaults(self) -> EnvelopeDefaults:
        """The fallback limits where no envelope is in force."""
        try:
            return EnvelopeDefaults(
                p_export_max_kw=self.default_export_kw,
                p_import_max_kw=self.default_import_kw,
                p_export_unapproved_kw=self.default_unapproved_export_kw,
            )
        except ValidationFailed as exc:
            names = {
                "p_export_max_kw": "default_export_kw",
                "p_import_max_kw": "default_import_kw",
                "p_export_unapproved_kw": "default_unapproved_export_kw",
            }
            name = names.get(exc.field or "", exc.field)
            raise ValidationFailed(f"{name} must be a finite number >= 0", field=name, code=LIMIT_INVALID) from exc

    @property
    def horizon_intervals(self) -> int:
        """Intervals in the horizon."""
        return self.horizon_hours * 60 // self.interval_minutes

    def updated(self, changes: dict[str, Any]) -> EnvelopeSettings:
        """A validated copy with ``changes`` (unknown names are refused)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValidationFailed(f"unknown envelope setting {unknown[0]!r}", field=unknown[0])
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able view (audit trail, calculation log, API)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["policy"] = self.policy.value
        return out


def floor_to_interval(when: datetime, interval_minutes: int) -> datetime:
    """The start of the ``interval_minutes`` interval holding ``when`` (UTC; intervals aligned to the hour)."""
    w = when.astimezone(UTC).replace(second=0, microsecond=0)
    return w - timedelta(minutes=w.minute % interval_minutes)


def ceil_to_interval(when: datetime, interval_minutes: int) -> datetime:
    """The first interval boundary at or after ``when``."""
    start = floor_to_interval(when, interval_minutes)
    return start if start == when.astimezone(UTC) else start + timedelta(minutes=interval_minutes)


class RunStatus(StrEnum):
    """Where an envelope run is."""

    QUEUED = "queued"
    """A recomputation waiting to run (queued by a network event)."""
    COMPUTED = "computed"
    """Computed and AC-verified; its envelopes are drafts until published."""
    PUBLISHED = "published"
    """Its envelopes are published."""
    FAILED = "failed"
    """A queued recomputation could not run; ``error`` says why (nothing was published)."""
    REPLACED = "replaced"
    """A queued recomputation made unnecessary by a later published run (``replaced_by``)."""


class RunTrigger(StrEnum):
    """Who or what asked for a run."""

    API = "api"
    CLI = "cli"
    NETWORK_EVENT = "network_event"


@dataclass(eq=False)
class EnvelopeRunRecord:
    """One envelope calculation of an interface over ``intervals`` intervals from ``start``."""

    id: str
    tdi_id: str
    status: RunStatus
    trigger: RunTrigger
    requested_by: str
    requested_at: datetime
    start: datetime
    intervals: int
    interval_minutes: int
    policy: AllocationPolicy
    settings: dict[str, Any]
    event_id: str | None = None
    computed_at: datetime | None = None
    published_at: datetime | None = None
    published_by: str | None = None
    envelope_count: int = 0
    log: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    replaced_by: str | None = None

    @property
    def end(self) -> datetime:
        """End of the last interval."""
        return self.start + timedelta(minutes=self.interval_minutes * self.intervals)

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "id": self.id,
            "tdi_id": self.tdi_id,
            "status": self.status.value,
            "trigger": self.trigger.value,
            "start": self.start.isoformat(),
            "intervals": self.intervals,
            "interval_minutes": self.interval_minutes,
            "policy": self.policy.value,
            "event_id": self.event_id,
            "envelope_count": self.envelope_count,
            "replaced_by": self.replaced_by,
        }


class EnvelopeCause(StrEnum):
    """Why a stored envelope exists."""

    RUN = "run"
    """Computed by an envelope run."""
    NETWORK_EVENT = "network_event"
    """Issued at once by a network event (zero limits for a de-energised point)."""


@dataclass(frozen=True)
class StoredEnvelope:
    """An envelope of one connection point over ``[interval_start, interval_end)`` as stored.

    A draft (``issued_at`` None) belongs to a computed run; publishing gives it ``issued_at`` and a
    ``version`` (1, 2, ... per connection point and interval). A later version supersedes it
    (``superseded_at``); nothing is edited in place. ``status`` is the AC verification status of its interval
    and direction pair (``verified/verified``, ...) or ``de-energised`` for one issued by a network event.
    """

    tdi_id: str
    connection_point_id: int
    connection_point: str
    interval_start: datetime
    interval_end: datetime
    p_export_max_kw: float
    p_import_max_kw: float
    binding_export: str
    binding_import: str
    expiry: datetime
    cause: EnvelopeCause
    status: str
    run_id: str | None = None
    event_id: str | None = None
    issued_at: datetime | None = None
    version: int | None = None
    superseded_at: datetime | None = None
    id: int | None = None

    @property
    def published(self) -> bool:
        """True once issued."""
        return self.issued_at is not None

    def as_operating_envelope(self) -> OperatingEnvelope:
        """The domain value (a published envelope only)."""
        if self.issued_at is None:
            raise ValueError("a draft envelope has no issue time")
        return OperatingEnvelope(
            connection_point=str(self.connection_point_id),
            interval_start=self.interval_start,
            interval_end=self.interval_end,
            p_export_max_kw=self.p_export_max_kw,
            p_import_max_kw=self.p_import_max_kw,
            binding_export=self.binding_export,
            binding_import=self.binding_import,
            expiry=self.expiry,
            issued_at=self.issued_at,
        )


@dataclass(frozen=True, eq=False)
class EnvelopeBatch:
    """The drafts of one run block, column-wise: points ``m`` by intervals ``T`` (every point in every interval).

    ``p_export_max_kw``/``p_import_max_kw`` and the binding labels are (T, m) arrays; ``status`` is the
    verification status of each interval (``verified/verified``, ...). Each envelope expires at its interval end.
    """

    tdi_id: str
    run_id: str
    point_ids: tuple[int, ...]
    point_names: tuple[str, ...]
    interval_starts: tuple[datetime, ...]
    interval_minutes: int
    p_export_max_kw: Any
    p_import_max_kw: Any
    binding_export: Any
    binding_import: Any
    status: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.interval_starts) * len(self.point_ids)

    def envelopes(self) -> list[StoredEnvelope]:
        """The drafts one by one (for tests and small batches; the store inserts the columns directly)."""
        step = timedelta(minutes=self.interval_minutes)
        return [
            StoredEnvelope(
                tdi_id=self.tdi_id,
                connection_point_id=point,
                connection_point=name,
                interval_start=start,
                interval_end=start + step,
                p_export_max_kw=float(self.p_export_max_kw[k, j]),
                p_import_max_kw=float(self.p_import_max_kw[k, j]),
                binding_export=str(self.binding_export[k, j]),
                binding_import=str(self.binding_import[k, j]),
                expiry=start + step,
                cause=EnvelopeCause.RUN,
                status=self.status[k],
                run_id=self.run_id,
            )
            for k, start in enumerate(self.interval_starts)
            for j, (point, name) in enumerate(zip(self.point_ids, self.point_names, strict=True))
        ]


@dataclass(frozen=True)
class HostingAssessment:
    """The hosting capacity of a DER's connection point (that point alone, every other point at forecast,
    the interface's band and loading limit, normal switching state) over a study window, and whether the
    interconnection application exceeds it: ``exceeds`` with the ``binding_element`` that the application
    would overload or push out of the band."""

    id: str
    der_id: str
    tdi_id: str
    connection_point_id: int
    connection_point: str
    computed_at: datetime
    study_start: datetime
    intervals: int
    interval_minutes: int
    p_export_max_kw: float
    binding_export: str
    p_import_max_kw: float
    binding_import: str
    requested_export_kw: float
    requested_import_kw: float
    exceeds: bool
    binding_element: str | None
    status_export: str
    status_import: str
    recorded: bool = False
    review_id: str | None = None
    log: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail."""
        return {
            "id": self.id,
            "der_id": self.der_id,
            "connection_point": self.connection_point,
            "p_export_max_kw": self.p_export_max_kw,
            "binding_export": self.binding_export,
            "p_import_max_kw": self.p_import_max_kw,
            "binding_import": self.binding_import,
            "requested_export_kw": self.requested_export_kw,
            "requested_import_kw": self.requested_import_kw,
            "exceeds": self.exceeds,
            "binding_element": self.binding_element,
        }
