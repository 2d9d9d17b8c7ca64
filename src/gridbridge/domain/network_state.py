"""Network state of a T-D interface: outages, switching and derates with a time window, and what they mean.

A :class:`NetworkEvent` is recorded by the owning DSO (white paper Table 12 use case 2, the TDWG's "outages,
limits on DERs"). Each event has a kind and a window ``[starts_at, ends_at)``:

- ``planned_outage`` / ``unplanned_outage``: the named lines, transformers or switches are out (opened);
- ``switching``: switches (or branches) opened and/or closed, e.g. a feeder transferred to another one;
- ``derate``: a line or transformer runs at ``rating_pct`` percent of its rating.

:func:`combined_state` turns the events active at one time into the switching the envelope engine applies
(:class:`~gridbridge.domain.envelopes.SwitchingState`) and the derates per branch; :func:`state_segments`
splits a window into pieces with the same active events. A :class:`NetworkNotification` tells one participant
what an event changed for it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from gridbridge.domain.envelopes import UNKNOWN_ELEMENT, SwitchingState
from gridbridge.domain.errors import ValidationFailed, register_code
from gridbridge.domain.network import NetworkModel

EVENT_INVALID = register_code(
    "network_state.event_invalid", 422, "A network event breaks a rule of its kind (elements, derates)"
)
WINDOW_INVALID = register_code(
    "network_state.window_invalid",
    422,
    "A network event's time window is empty, has no time zone, or is already over",
)

#: Longest text kept as an event's reason.
REASON_MAX_CHARS = 2000


class NetworkEventKind(StrEnum):
    """What a network event is."""

    PLANNED_OUTAGE = "planned_outage"
    UNPLANNED_OUTAGE = "unplanned_outage"
    SWITCHING = "switching"
    DERATE = "derate"

    @property
    def is_outage(self) -> bool:
        """True for planned and unplanned outages."""
        return self in (NetworkEventKind.PLANNED_OUTAGE, NetworkEventKind.UNPLANNED_OUTAGE)


@dataclass(frozen=True)
class Derate:
    """A line or transformer limited to ``rating_pct`` percent (0 < pct <= 100) of its rating."""

    element: str
    rating_pct: float


@dataclass(frozen=True)
class NetworkEvent:
    """An outage, switching order or derate at one T-D interface over ``[starts_at, ends_at)`` (UTC).

    Element names are the network model's switch, line and transformer names, optionally prefixed
    ``switch:``, ``line:`` or ``trafo:`` where a name is ambiguous.
    """

    id: str
    tdi_id: str
    kind: NetworkEventKind
    starts_at: datetime
    ends_at: datetime
    recorded_by: str
    recorded_at: datetime
    open_elements: tuple[str, ...] = ()
    close_elements: tuple[str, ...] = ()
    derates: tuple[Derate, ...] = ()
    reason: str = ""

    def active_during(self, start: datetime, end: datetime) -> bool:
        """True if the event's window overlaps ``[start, end)``."""
        return self.starts_at < end and self.ends_at > start

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the audit trail and notifications."""
        return {
            "id": self.id,
            "tdi_id": self.tdi_id,
            "kind": self.kind.value,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "open_elements": list(self.open_elements),
            "close_elements": list(self.close_elements),
            "derates": [{"element": d.element, "rating_pct": d.rating_pct} for d in self.derates],
            "reason": self.reason,
        }


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(f"{name} must be a timezone-aware datetime", field=name, code=WINDOW_INVALID)
    return value.astimezone(UTC)


def _names(values: Iterable[str], name: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise ValidationFailed(f"{name}[{i}] must be a non-empty element name", field=name, code=EVENT_INVALID)
        text = value.strip()
        if text in out:
            raise ValidationFailed(f"{name} names {text!r} twice", field=name, code=EVENT_INVALID)
        out.append(text)
    return tuple(out)


def new_event(
    *,
    event_id: str,
    tdi_id: str,
    kind: NetworkEventKind,
    starts_at: datetime,
    ends_at: datetime,
    open_elements: Iterable[str] = (),
    close_elements: Iterable[str] = (),
    derates: Iterable[Derate] = (),
    reason: str = "",
    recorded_by: str,
    now: datetime,
) -> NetworkEvent:
    """A validated event, or ``ValidationFailed`` naming the field and the rule.

    Rules: both times timezone-aware, ``ends_at`` after ``starts_at`` and after ``now`` (an event that is
    already over changes nothing); an outage names at least one element to take out and nothing else; a
    switching order opens and/or closes at least one element and derates nothing; a derate names at least one
    branch with ``0 < rating_pct <= 100`` and switches nothing; no element twice.
    """
    kind = NetworkEventKind(kind)
    start = _aware(starts_at, "starts_at")
    end = _aware(ends_at, "ends_at")
    if end <= start:
        raise ValidationFailed(
            f"ends_at ({end.isoformat()}) must be after starts_at ({start.isoformat()})",
            field="ends_at",
            code=WINDOW_INVALID,
        )
    if end <= now:
        raise ValidationFailed(
            f"ends_at ({end.isoformat()}) is not after now ({now.isoformat()}): the event is already over",
            field="ends_at",
            code=WINDOW_INVALID,
        )
    opened = _names(open_elements, "open_elements")
    closed = _names(close_elements, "close_elements")
    both = sorted(set(opened) & set(closed))
    if both:
        raise ValidationFailed(
            f"{both[0]!r} cannot be opened and closed by one event", field="close_elements", code=EVENT_INVALID
        )
    derate_list = tuple(derates)
    seen: set[str] = set()
    cleaned: list[Derate] = []
    for i, d in enumerate(derate_list):
        element = d.element.strip() if isinstance(d.element, str) else ""
        if not element:
            raise ValidationFailed(f"derates[{i}].element must not be empty", field="derates", code=EVENT_INVALID)
        if element in seen:
            raise ValidationFailed(f"derates name {element!r} twice", field="derates", code=EVENT_INVALID)
        seen.add(element)
        pct = d.rating_pct
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not math.isfinite(pct) or not 0 < pct <= 100:
            raise ValidationFailed(
                f"derates[{i}].rating_pct must be above 0 and at most 100 (percent of the rating); got {pct!r}",
                field="derates",
                code=EVENT_INVALID,
            )
        cleaned.append(Derate(element, float(pct)))
    if kind.is_outage:
        if not opened:
            raise ValidationFailed(
                "an outage names at least one element to take out (open_elements)",
                field="open_elements",
                code=EVENT_INVALID,
            )
        if closed or cleaned:
            raise ValidationFailed(
                "an outage only takes elements out; record closing or derating as their own events",
                field="close_elements" if closed else "derates",
                code=EVENT_INVALID,
            )
    elif kind is NetworkEventKind.SWITCHING:
        if not opened and not closed:
            raise ValidationFailed(
                "a switching order opens or closes at least one element",
                field="open_elements",
                code=EVENT_INVALID,
            )
        if cleaned:
            raise ValidationFailed("a switching order derates nothing", field="derates", code=EVENT_INVALID)
    else:
        if not cleaned:
            raise ValidationFailed("a derate names at least one branch", field="derates", code=EVENT_INVALID)
        if opened or closed:
            raise ValidationFailed(
                "a derate switches nothing; record switching as its own event",
                field="open_elements" if opened else "close_elements",
                code=EVENT_INVALID,
            )
    text = (reason or "").strip()
    if len(text) > REASON_MAX_CHARS:
        raise ValidationFailed(
            f"reason must be at most {REASON_MAX_CHARS} characters", field="reason", code=EVENT_INVALID
        )
    return NetworkEvent(
        id=event_id,
        tdi_id=tdi_id,
        kind=kind,
        starts_at=start,
        ends_at=end,
        open_elements=opened,
        close_elements=closed,
        derates=tuple(cleaned),
        reason=text,
        recorded_by=recorded_by,
        recorded_at=now,
    )


@dataclass(frozen=True)
class CombinedState:
    """The network state several events give together: the switching to apply, the derate (percent of
    rating) per branch name, and the events it comes from."""

    switching: SwitchingState
    derates: tuple[tuple[str, float], ...]
    event_ids: tuple[str, ...]

    @property
    def key(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, float], ...]]:
        """A hashable key: equal keys mean the same network."""
        return (self.switching.open_elements, self.switching.close_elements, self.derates)


def combined_state(events: Sequence[NetworkEvent]) -> CombinedState:
    """The state of the network with ``events`` in force together.

    Switching orders are applied in the order they were recorded (a later order wins for an element both
    name); outages then take their elements out whatever a switching order says; for a branch derated by
    several events the smallest rating holds.
    """
    ordered = sorted(events, key=lambda e: (e.recorded_at, e.id))
    state: dict[str, bool] = {}
    for event in ordered:
        if event.kind is NetworkEventKind.SWITCHING:
            for name in event.open_elements:
                state[name] = False
            for name in event.close_elements:
                state[name] = True
    for event in ordered:
        if event.kind.is_outage:
            for name in event.open_elements:
                state[name] = False
    derates: dict[str, float] = {}
    for event in ordered:
        for d in event.derates:
            derates[d.element] = min(derates.get(d.element, 100.0), d.rating_pct)
    opened = tuple(sorted(n for n, closed in state.items() if not closed))
    closed = tuple(sorted(n for n, closed in state.items() if closed))
    return CombinedState(
        switching=SwitchingState(open_elements=opened, close_elements=closed),
        derates=tuple(sorted(derates.items())),
        event_ids=tuple(e.id for e in ordered),
    )


def apply_derates(model: NetworkModel, derates: Iterable[tuple[str, float]]) -> NetworkModel:
    """``model`` with each named line or transformer (optionally prefixed ``line:`` or ``trafo:``) at
    ``rating_pct`` percent of its rating (its derating factor ``df`` scaled); ``envelopes.unknown_element``
    (field ``derates``) for a name that is not exactly one line or transformer."""
    wanted = dict(derates)
    if not wanted:
        return model
    lines = {line.name for line in model.lines}
    trafos = {t.name for t in model.transformers}
    line_pct: dict[str, float] = {}
    trafo_pct: dict[str, float] = {}
    for name, pct in wanted.items():
        prefix, _, rest = name.partition(":")
        if rest and prefix == "line" and rest in lines:
            line_pct[rest] = pct
        elif rest and prefix == "trafo" and rest in trafos:
            trafo_pct[rest] = pct
        elif name in lines and name not in trafos:
            line_pct[name] = pct
        elif name in trafos and name not in lines:
            trafo_pct[name] = pct
        else:
            what = (
                "names a line and a transformer; prefix it with line: or trafo:"
                if name in lines
                else ("is not a line or transformer of the network")
            )
            raise ValidationFailed(
                f"derate element {name!r} {what}", field="derates", code=UNKNOWN_ELEMENT, details={"element": name}
            )
    return replace(
        model,
        lines=tuple(replace(x, df=x.df * line_pct[x.name] / 100.0) if x.name in line_pct else x for x in model.lines),
        transformers=tuple(
            replace(x, df=x.df * trafo_pct[x.name] / 100.0) if x.name in trafo_pct else x for x in model.transformers
        ),
    )


def active_events(events: Iterable[NetworkEvent], start: datetime, end: datetime) -> tuple[NetworkEvent, ...]:
    """The events whose window overlaps ``[start, end)``."""
    return tuple(e for e in events if e.active_during(start, end))


def state_segments(
    events: Sequence[NetworkEvent], start: datetime, end: datetime
) -> list[tuple[datetime, datetime, tuple[NetworkEvent, ...]]]:
    """Split ``[start, end)`` at every event boundary inside it; each piece with the events active in it."""
    if end <= start:
        return []
    cuts = {start, end}
    for e in events:
        for t in (e.starts_at, e.ends_at):
            if start < t < end:
                cuts.add(t)
    bounds = sorted(cuts)
    return [(a, b, active_events(events, a, b)) for a, b in itertools.pairwise(bounds)]


class NotificationKind(StrEnum):
    """What a network-state notification is about."""

    NETWORK_EVENT = "network_event"


@dataclass(frozen=True)
class NetworkNotification:
    """A message to one participant about a network event at an interface: the connection points (and the
    recipient's DERs among them) the event affects, the points it de-energises, and how many published
    envelopes were set to zero at once."""

    id: str
    recipient_id: str
    tdi_id: str
    event_id: str
    kind: NotificationKind
    created_at: datetime
    message: str
    starts_at: datetime
    ends_at: datetime
    connection_point_ids: tuple[int, ...] = ()
    de_energised_point_ids: tuple[int, ...] = ()
    der_ids: tuple[str, ...] = ()
    zeroed_envelopes: int = 0
    queued_run_id: str | None = None
