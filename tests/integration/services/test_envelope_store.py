"""Envelopes on the stored model through the real services and store (SQLite and PostgreSQL where storage
matters): outages change published envelopes at once and notify exactly the affected; publication, versions,
read scoping per role, defaults and expiry; stale runs and the queue; bad input publishes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from envelope_province import (
    BACKEND,
    FEEDER_LINE,
    FEEDER_POINTS,
    ShortForecastBackend,
    UnknownBusBackend,
    all_envelopes,
    at,
    envelope_province,
    point_ids,
    run_envelopes,
)
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.envelope_publication import DE_ENERGISED_BINDING, EnvelopeCause, EnvelopeSettings, RunStatus
from gridbridge.domain.envelopes import LimitSource
from gridbridge.domain.errors import GridbridgeError
from gridbridge.domain.network_state import Derate, NetworkEventKind
from gridbridge.services import envelope_reads, envelope_runs, network_state, tdis
from gridbridge.services.context import Context
from gridbridge.services.ports import Page
from gridbridge.store.envelope_tables import envelope_runs as runs_table
from gridbridge.store.envelope_tables import network_events, operating_envelopes
from gridbridge.store.tables import audit_records
from registry_province import T0, Province


def _count(province: Province, table: object) -> int:
    with province.platform.unit_of_work() as uow:
        return int(uow.session.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _outage(province: Province, hours: int = 2, **kwargs: object) -> network_state.EventRecorded:
    tdi_id = province.tdis["tdi_a"]

    def record(ctx: Context) -> network_state.EventRecorded:
        return network_state.record_event(
            ctx,
            tdi_id,
            NetworkEventKind.UNPLANNED_OUTAGE,
            T0,
            T0 + timedelta(hours=hours),
            open_elements=[FEEDER_LINE],
            reason="cable fault",
            **kwargs,  # type: ignore[arg-type]
        )

    result = province.run("ldc_a", record)
    assert isinstance(result, network_state.EventRecorded)
    return result


def _refused(province: Province, who: str, action: object) -> GridbridgeError:
    with pytest.raises(GridbridgeError) as caught:
        province.run(who, action)
    return caught.value


def test_outage_zeroes_published_envelopes_at_once_and_notifies_the_affected(database_url: str) -> None:
    province = envelope_province(database_url)
    run = run_envelopes(province)
    assert run.run.status is RunStatus.PUBLISHED
    assert run.published == 13 * 4
    ids = point_ids(province)
    dead = {ids[name] for name in FEEDER_POINTS}
    before = {(e.connection_point_id, e.interval_start): e for e in all_envelopes(province)}
    assert all(e.p_export_max_kw > 1.5 and e.version == 1 for e in before.values())

    recorded = _outage(province)

    assert set(recorded.de_energised_point_ids) == dead
    assert set(recorded.affected_point_ids) == dead
    # 3 points x 4 published intervals superseded, and one zero envelope each for the unpublished second hour
    assert recorded.zeroed_envelopes == 3 * 4 + 3
    after = all_envelopes(province)
    current = [e for e in after if e.superseded_at is None]
    for env in current:
        if env.connection_point_id in dead:
            assert (env.p_export_max_kw, env.p_import_max_kw) == (0.0, 0.0)
            assert env.binding_export == env.binding_import == DE_ENERGISED_BINDING
            assert env.cause is EnvelopeCause.NETWORK_EVENT
            assert env.event_id == recorded.event.id
        else:
            assert env == before[(env.connection_point_id, env.interval_start)]
    # never edited in place: the first versions are still there, unchanged but superseded
    for old in before.values():
        stored = next(e for e in after if e.id == old.id)
        assert stored.p_export_max_kw == old.p_export_max_kw
        assert (stored.superseded_at is not None) == (old.connection_point_id in dead)
    versions = {e.version for e in current if e.connection_point_id in dead and e.interval_end <= at(60)}
    assert versions == {2}
    gap = [e for e in current if e.connection_point_id in dead and e.interval_start == at(60)]
    assert len(gap) == 3
    assert all(e.interval_end == e.expiry == at(120) and e.version == 1 for e in gap)
    # the limits in force drop at once, in and after the published hour; other points keep theirs
    for minutes in (5, 90):
        limits = province.run("regulator", lambda ctx, m=minutes: envelope_reads.limits_in_force(ctx, at(m)))
        by_id = {row.point.id: row.limits for row in limits}  # type: ignore[attr-defined]
        for point in dead:
            assert by_id[point].p_export_max_kw == 0.0
            assert by_id[point].export_source is LimitSource.ENVELOPE
    # a recomputation is queued over the outage window
    assert recorded.queued_run is not None
    assert recorded.queued_run.status is RunStatus.QUEUED
    assert recorded.queued_run.start == T0
    # notified: ldc_a, the TSO, owner_1 and agg_1 (DER a2 at Bus 2); nobody else
    names = {v: k for k, v in province.ids.items()}
    notified = {names[n.recipient_id]: n for n in recorded.notifications}
    assert set(notified) == {"ldc_a", "tso", "owner_1", "agg_1"}
    assert notified["owner_1"].der_ids == notified["agg_1"].der_ids == (province.ders["a2"],)
    assert notified["owner_1"].connection_point_ids == (ids["LV1.101 Bus 2"],)
    assert set(notified["ldc_a"].connection_point_ids) == dead
    assert notified["tso"].der_ids == ()  # alt 2: a2 does not take part in the wholesale market
    for who, expected in (
        ("ldc_a", 1),
        ("tso", 1),
        ("owner_1", 1),
        ("agg_1", 1),
        ("owner_2", 0),
        ("agg_2", 0),
        ("ldc_b", 0),
        ("regulator", 4),
    ):
        seen = province.run(who, lambda ctx: network_state.list_notifications(ctx, Page()))
        assert len(seen) == expected, who  # type: ignore[arg-type]


def test_publish_and_read_scoping_per_role(database_url: str) -> None:
    province = envelope_province(database_url)
    run_envelopes(province, "tdi_a")
    run_envelopes(province, "tdi_b")
    a, b = point_ids(province, "tdi_a"), point_ids(province, "tdi_b")
    der_points = {  # DER key -> its connection point id (registry_province: a1..a3 at tdi_a points 0..2, ...)
        "a1": a["LV1.101 Bus 1"],
        "a2": a["LV1.101 Bus 2"],
        "a3": a["LV1.101 Bus 3"],
        "b1": b["LV1.101 Bus 1"],
        "b2": b["LV1.101 Bus 2"],
    }
    expected = {
        "ldc_a": set(a.values()),
        "ldc_b": set(b.values()),
        "agg_1": {der_points[k] for k in ("a2", "a3", "b2")},
        "agg_2": {der_points["b1"]},
        "owner_1": {der_points[k] for k in ("a1", "a2", "b2")},
        "owner_2": {der_points[k] for k in ("a3", "b1")},
        "tso": set(),  # alt 2 and total DSO: no market-participating DER in this province
        "regulator": set(a.values()) | set(b.values()),
    }
    for who, points in expected.items():
        rows = province.run(who, lambda ctx: envelope_reads.list_envelopes(ctx, Page(limit=1000)))
        assert {e.connection_point_id for e in rows} == points, who  # type: ignore[attr-defined]
        assert len(rows) == 4 * len(points), who  # type: ignore[arg-type]
        limits = province.run(who, lambda ctx: envelope_reads.limits_in_force(ctx, at(20)))
        assert {row.point.id for row in limits} == points, who  # type: ignore[attr-defined]
    one = province.run(
        "agg_1",
        lambda ctx: envelope_reads.list_envelopes(ctx, Page(), connection_point_id=der_points["a1"]),
    )
    assert one == []  # a1 is owner_1's own DER: not agg_1's


def test_defaults_and_expiry(database_url: str) -> None:
    province = envelope_province(database_url, tdis=("tdi_a",))
    ids = point_ids(province)
    a1, free = ids["LV1.101 Bus 1"], ids["LV1.101 Bus 5"]  # a1 in service; Bus 5 has no DER

    def limits(minutes: int, end: int | None = None) -> dict[int, object]:
        rows = province.run(
            "regulator",
            lambda ctx: envelope_reads.limits_in_force(
                ctx, at(minutes), end=None if end is None else at(end), tdi_id=province.tdis["tdi_a"]
            ),
        )
        return {row.point.id: row.limits for row in rows}  # type: ignore[attr-defined]

    # nothing published: the configured defaults, 0 kW export where no DER is approved; never "no limit"
    now = limits(0)
    assert (now[a1].p_export_max_kw, now[a1].p_import_max_kw, now[a1].export_source) == (  # type: ignore[attr-defined]
        1.5,
        1.5,
        LimitSource.DEFAULT,
    )
    assert (now[free].p_export_max_kw, now[free].export_source) == (0.0, LimitSource.DEFAULT_NOT_APPROVED)  # type: ignore[attr-defined]
    province.run(
        "ldc_a",
        lambda ctx: envelope_runs.update_settings(
            ctx, province.tdis["tdi_a"], {"default_export_kw": 2.0, "default_unapproved_export_kw": 0.5}
        ),
    )
    assert limits(0)[a1].p_export_max_kw == 2.0  # type: ignore[attr-defined]
    assert limits(0)[free].p_export_max_kw == 0.5  # type: ignore[attr-defined]
    # published: the envelope until its expiry (the interval end), then the default again
    run_envelopes(province)
    inside = limits(59)
    assert inside[a1].export_source is LimitSource.ENVELOPE  # type: ignore[attr-defined]
    assert inside[a1].p_export_max_kw > 2.0  # type: ignore[attr-defined]
    assert inside[free].export_source is LimitSource.ENVELOPE  # type: ignore[attr-defined]
    after = limits(60)
    assert (after[a1].p_export_max_kw, after[a1].export_source) == (2.0, LimitSource.DEFAULT)  # type: ignore[attr-defined]
    # over an interval: the tightest of the envelope and the default that follows it
    straddle = limits(45, end=75)
    assert straddle[a1].p_export_max_kw == 2.0  # type: ignore[attr-defined]
    assert straddle[a1].export_source is LimitSource.DEFAULT  # type: ignore[attr-defined]
    assert straddle[a1].import_source is LimitSource.DEFAULT  # type: ignore[attr-defined]
    # the clock moves past the horizon: everything expired, defaults everywhere
    province.clock.advance(timedelta(hours=2))
    later = province.run(
        "regulator", lambda ctx: envelope_reads.limits_in_force(ctx, ctx.clock.now(), tdi_id=province.tdis["tdi_a"])
    )
    assert {row.limits.export_source for row in later} <= {  # type: ignore[attr-defined]
        LimitSource.DEFAULT,
        LimitSource.DEFAULT_NOT_APPROVED,
    }


def test_stale_run_is_refused_and_the_queue_publishes_the_recomputation(sqlite_url: str) -> None:
    province = envelope_province(sqlite_url, tdis=("tdi_a",))
    draft = run_envelopes(province, publish=False)
    assert draft.run.status is RunStatus.COMPUTED
    assert all_envelopes(province) == []  # drafts are not published
    recorded = _outage(province, hours=1)
    error = _refused(province, "ldc_a", lambda ctx: envelope_runs.publish_run(ctx, draft.run.id))
    assert error.code == "envelopes.run_stale"
    assert recorded.queued_run is not None
    queued_id = recorded.queued_run.id
    with province.platform.context() as ctx:
        outcome = envelope_runs.process_queued_run(ctx, BACKEND, queued_id)
    assert outcome.run.status is RunStatus.PUBLISHED
    assert outcome.published == 13 * 4
    dead = {point_ids(province)[n] for n in FEEDER_POINTS}
    current = [e for e in all_envelopes(province, include_superseded=False) if e.cause is EnvelopeCause.RUN]
    assert {e.connection_point_id for e in current if e.p_export_max_kw == 0.0} >= dead
    for env in current:
        if env.connection_point_id in dead:
            assert env.binding_export == "de-energised"
    assert outcome.run.log is not None
    assert outcome.run.log["blocks"][0]["switching"]["open"] == [FEEDER_LINE]
    # a second run published later replaces nothing more; a published run cannot be published twice
    again = _refused(province, "ldc_a", lambda ctx: envelope_runs.publish_run(ctx, queued_id))
    assert again.code == "envelopes.run_not_publishable"


def test_a_published_run_replaces_the_queued_recomputation(sqlite_url: str) -> None:
    province = envelope_province(sqlite_url, tdis=("tdi_a",))
    recorded = _outage(province, hours=1)
    assert recorded.zeroed_envelopes == 3  # nothing was published: one zero envelope per de-energised point
    run = run_envelopes(province)
    with province.platform.unit_of_work() as uow:
        assert recorded.queued_run is not None
        queued = uow.envelopes.runs.get(recorded.queued_run.id)
    assert queued is not None
    assert queued.status is RunStatus.REPLACED
    assert queued.replaced_by == run.run.id


def test_derate_and_switching_are_applied_by_the_run(sqlite_url: str) -> None:
    province = envelope_province(sqlite_url, tdis=("tdi_a",))
    normal = run_envelopes(province, publish=False).run.summary
    tdi_id = province.tdis["tdi_a"]
    derate = province.run(
        "ldc_a",
        lambda ctx: network_state.record_event(
            ctx,
            tdi_id,
            NetworkEventKind.DERATE,
            T0,
            T0 + timedelta(minutes=30),
            derates=[Derate("MV1.101-LV1.101-Trafo 1", 5.0)],
            reason="transformer cooling fault",
        ),
    )
    assert isinstance(derate, network_state.EventRecorded)
    assert len(derate.affected_point_ids) == 13  # every point is below the transformer
    assert derate.de_energised_point_ids == ()
    derated = run_envelopes(province, publish=False).run
    assert derated.summary is not None
    assert normal is not None
    assert derated.summary["blocks"] == 2  # the derate covers the first two of the four intervals
    first = derated.summary["block_summaries"][0]
    assert first["export_kw_max"] < normal["export_kw_min"]
    assert derated.log is not None
    assert derated.log["blocks"][0]["derates"] == [{"element": "MV1.101-LV1.101-Trafo 1", "rating_pct": 5.0}]
    assert derated.log["blocks"][1]["derates"] == []


def test_bad_input_is_refused_and_nothing_is_published(sqlite_url: str) -> None:
    province = envelope_province(sqlite_url, tdis=("tdi_a",))
    tdi_id = province.tdis["tdi_a"]
    runs_before, events_before = _count(province, runs_table), _count(province, network_events)
    audit_before = _count(province, audit_records)
    hour = T0 + timedelta(hours=1)
    outage, derate, switching = (
        NetworkEventKind.PLANNED_OUTAGE,
        NetworkEventKind.DERATE,
        NetworkEventKind.SWITCHING,
    )

    def settings(**changes: object) -> object:
        return lambda ctx: envelope_runs.update_settings(ctx, tdi_id, changes)

    def run(backend: object = BACKEND, **kwargs: object) -> object:
        return lambda ctx: envelope_runs.compute_run(ctx, backend, tdi_id, **kwargs)  # type: ignore[arg-type]

    def event(kind: NetworkEventKind, start: datetime, end: datetime, **kwargs: object) -> object:
        return lambda ctx: network_state.record_event(ctx, tdi_id, kind, start, end, **kwargs)  # type: ignore[arg-type]

    cases = [
        (settings(v_min_pu=1.05), "envelopes.band_invalid", "v_min_pu"),
        (settings(interval_minutes=10), "envelopes.interval_invalid", "interval_minutes"),
        (settings(default_export_kw=-1.0), "envelopes.limit_invalid", "default_export_kw"),
        (settings(reverse_flow_limit_kw=-5.0), "envelopes.limit_invalid", "reverse_flow_limit_kw"),
        (run(start=at(7)), "envelopes.interval_invalid", "start"),
        (run(intervals=24 * 4 * 8), "envelopes.interval_invalid", "intervals"),
        (run(ShortForecastBackend(), publish=True), "envelopes.forecast_incomplete", "forecast.interval_starts"),
        (run(UnknownBusBackend(), publish=True), "envelopes.unknown_bus", "forecast.bus_names"),
        (event(outage, T0, hour, open_elements=["no such line"]), "envelopes.unknown_element", "open_elements"),
        (event(outage, T0, T0, open_elements=[FEEDER_LINE]), "network_state.window_invalid", "ends_at"),
        (event(outage, at(-120), at(-60), open_elements=[FEEDER_LINE]), "network_state.window_invalid", "ends_at"),
        (event(derate, T0, hour, derates=[Derate(FEEDER_LINE, -20.0)]), "network_state.event_invalid", "derates"),
        (event(derate, T0, hour, derates=[Derate("LV1.101 Bus 2", 50.0)]), "envelopes.unknown_element", "derates"),
        (event(switching, T0, hour), "network_state.event_invalid", "open_elements"),
    ]
    for action, code, field in cases:
        error = _refused(province, "ldc_a", action)
        assert (error.code, error.field) == (code, field), (code, error)
    # who may do it: other LDCs, aggregators and the TSO are refused before anything happens
    for who in ("ldc_b", "agg_1", "tso"):
        error = _refused(province, who, lambda ctx: envelope_runs.compute_run(ctx, BACKEND, tdi_id))
        assert error.code == "auth.forbidden"
    unchanged = province.run("ldc_a", lambda ctx: envelope_runs.get_settings(ctx, tdi_id))
    assert unchanged == EnvelopeSettings(interval_minutes=15, horizon_hours=1)
    assert (_count(province, runs_table), _count(province, network_events)) == (runs_before, events_before)
    assert _count(province, operating_envelopes) == 0
    assert _count(province, audit_records) == audit_before


def test_an_interface_without_a_network_cannot_record_events_or_runs(sqlite_url: str) -> None:
    province = envelope_province(sqlite_url, tdis=())

    def add(ctx: Context) -> str:
        return tdis.create_tdi(
            ctx,
            name="tdi_c",
            price_node="TDI_C",
            dso_id=province.ids["ldc_a"],
            model=ModelName.ALT1_MINIMAL_DSO,
            import_limit_kw=1000,
            export_limit_kw=500,
        ).id

    tdi_c = str(province.run("tso", add))
    error = _refused(province, "ldc_a", lambda ctx: envelope_runs.compute_run(ctx, BACKEND, tdi_c))
    assert (error.code, error.field) == ("envelopes.no_network", "tdi_id")
    error = _refused(
        province,
        "ldc_a",
        lambda ctx: network_state.record_event(
            ctx, tdi_c, NetworkEventKind.PLANNED_OUTAGE, T0, T0 + timedelta(hours=1), open_elements=["x"]
        ),
    )
    assert error.code == "envelopes.no_network"
