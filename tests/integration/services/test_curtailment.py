"""Transparent curtailment through the services on SQLite and PostgreSQL: the white paper's 100 kW example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from curtailment_province import build_curtailment_province, publish
from gridbridge.domain.errors import ConflictError, GridbridgeError, PermissionDenied
from gridbridge.domain.market import InstructionKind, ResourceKind
from gridbridge.domain.roles import Service
from gridbridge.services import curtailment, instructions, open_access
from gridbridge.services.context import Context
from gridbridge.services.curtailment_ports import CurtailmentEvent, InstructedPower
from gridbridge.services.ports import Page
from gridbridge.services.tdis import model_in_force
from gridbridge.store.curtailment_tables import curtailment_events, curtailment_procedures
from gridbridge.store.market_tables import instructions as instructions_table
from gridbridge.store.tables import audit_records
from registry_province import T0, Province, build_province, enrol


def _rows(province: Province, table: object) -> int:
    with province.platform.unit_of_work() as uow:
        return int(uow.session.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _request(province: Province, required_kw: float, start: object, end: object, **options: object) -> CurtailmentEvent:
    return province.run(  # type: ignore[no-any-return]
        "ldc_a",
        lambda ctx: curtailment.request_curtailment(
            ctx,
            province.tdis["tdi_a"],
            required_kw,
            start,
            end,
            reason="feeder F1 thermal limit",
            **options,  # type: ignore[arg-type]
        ),
    )


def _shares(province: Province, event: CurtailmentEvent) -> dict[str, float]:
    keys = {v: k for k, v in province.ders.items()}
    return {keys[s.der_id]: s.share_kw for s in event.shares}


def test_white_paper_100_kw_pro_rata_by_export(database_url: str) -> None:
    province, start, end = build_curtailment_province(database_url)
    publish(province, "pro_rata_export")

    event = _request(province, 100.0, start, end)

    assert _shares(province, event) == {"A": 20.0, "B": 13.333, "C": 50.0, "D": 16.667}
    assert sum(round(s.share_kw * 1000) for s in event.shares) == 100_000
    assert (event.dso_aggregated_kw, event.direct_kw) == (33.333, 66.667)
    assert event.available_kw == 300.0
    assert {s.export_source.split(":")[0] for s in event.shares} == {"static_limit"}
    # each party is notified of its share with the rule, and gets the reduction as instructions
    ids = province.ids
    notices = {n.party_id: n for n in event.notices}
    assert {p: n.share_kw for p, n in notices.items()} == {
        ids["ldc_a"]: 33.333,
        ids["owner_1"]: 50.0,
        ids["owner_2"]: 16.667,
    }
    for notice in notices.values():
        assert "pro_rata_export" in notice.message
        assert notice.rule == "v1: pro_rata_export; all candidates ranked together"
    read = province.run("owner_1", lambda ctx: curtailment.get_event(ctx, event.id))
    assert [s.der_id for s in read.shares] == [province.ders["C"]]
    assert read.shares[0].share_kw == 50.0
    assert "in proportion to current export" in read.shares[0].reason
    assert [n.party_id for n in read.notices] == [ids["owner_1"]]
    children = province.run(
        "owner_1",
        lambda ctx: ctx.uow.market.instructions.children(read.notices[0].instruction_id or ""),
    )
    assert [(c.kind, c.resource_kind, c.der_id, c.p_kw) for c in children] == [
        (InstructionKind.OPERATING, ResourceKind.DER, province.ders["C"], -50.0)
    ]
    assert children[0].issuer_id == ids["ldc_a"]
    assert children[0].recipient_id == ids["owner_1"]
    # the stored event reads back whole for the DSO and the observer
    for who in ("ldc_a", "regulator"):
        again = province.run(who, lambda ctx: curtailment.get_event(ctx, event.id))
        assert again == event
    assert province.run("owner_2", lambda ctx: [e.id for e in curtailment.list_events(ctx, Page())]) == [event.id]
    assert province.run("agg_1", lambda ctx: curtailment.list_events(ctx, Page())) == []
    tso_view = province.run("tso", lambda ctx: curtailment.get_event(ctx, event.id))
    assert tso_view.shares == ()
    assert tso_view.direct_kw == 66.667


@pytest.mark.parametrize(
    ("rule", "parameters", "expected"),
    [
        ("pro_rata_capacity", None, {"A": 20.0, "B": 10.0, "C": 40.0, "D": 30.0}),
        ("offer_price", {"order": "highest_first"}, {"A": 0.0, "B": 40.0, "C": 10.0, "D": 50.0}),
        ("offer_price", {"order": "lowest_first"}, {"A": 60.0, "B": 0.0, "C": 40.0, "D": 0.0}),
        ("connection_order", None, {"A": 60.0, "B": 0.0, "C": 40.0, "D": 0.0}),
        ("connection_order", {"order": "first_connected_first"}, {"A": 0.0, "B": 40.0, "C": 10.0, "D": 50.0}),
    ],
)
def test_other_rules_rank_differently(
    sqlite_url: str, rule: str, parameters: dict[str, str] | None, expected: dict[str, float]
) -> None:
    province, start, end = build_curtailment_province(sqlite_url)
    publish(province, rule, parameters)

    event = _request(province, 100.0, start, end)

    assert _shares(province, event) == expected
    assert sum(expected.values()) == pytest.approx(100.0)


def test_group_split_takes_the_published_percentage_from_each_group(sqlite_url: str) -> None:
    """40 % from the DSO-aggregated group (A, B: 100 kW export) and 60 % from direct participants, each pro rata."""
    province, start, end = build_curtailment_province(sqlite_url)
    publish(province, "pro_rata_export", dso_aggregated_pct=40.0)

    event = _request(province, 100.0, start, end)

    assert _shares(province, event) == {"A": 24.0, "B": 16.0, "C": 45.0, "D": 15.0}
    assert (event.dso_aggregated_kw, event.direct_kw) == (40.0, 60.0)


def test_group_split_spills_what_a_group_cannot_cover(sqlite_url: str) -> None:
    """90 % of 150 kW from a group exporting 100 kW: the 35 kW it cannot cover go to the direct group."""
    province, start, end = build_curtailment_province(sqlite_url)
    publish(province, "pro_rata_export", dso_aggregated_pct=90.0)

    event = _request(province, 150.0, start, end)

    shares = _shares(province, event)
    assert (shares["A"], shares["B"]) == (60.0, 40.0)
    assert shares["C"] + shares["D"] == 50.0
    assert "could not cover" in next(s.reason for s in event.shares if s.der_id == province.ders["C"])


def test_procedure_versions_are_never_retroactive(sqlite_url: str) -> None:
    province, start, end = build_curtailment_province(sqlite_url)
    publish(province, "pro_rata_export")
    later = start + timedelta(minutes=10)
    publish(province, "pro_rata_capacity", effective_from=later)
    tdi = province.tdis["tdi_a"]

    versions = province.run("owner_1", lambda ctx: curtailment.list_procedures(ctx, tdi))
    assert [(v.version, v.procedure.rule.value) for v in versions] == [(1, "pro_rata_export"), (2, "pro_rata_capacity")]
    assert province.run("tso", lambda ctx: curtailment.procedure_in_force(ctx, tdi)).version == 1
    assert province.run("regulator", lambda ctx: curtailment.procedure_in_force(ctx, tdi, later)).version == 2
    # the window's start decides which version applies
    assert _request(province, 100.0, start, end).procedure_version == 1
    assert _request(province, 10.0, later, later + timedelta(minutes=5)).procedure_version == 2
    with pytest.raises(GridbridgeError) as past:
        publish(province, "pro_rata_export", effective_from=province.clock.now() - timedelta(seconds=1))
    assert past.value.code == "curtailment.retroactive_procedure"
    with pytest.raises(GridbridgeError) as twice:
        publish(province, "pro_rata_export", effective_from=later)
    assert twice.value.code == "curtailment.duplicate_effective_from"
    # transparency: parties without a DER at the interface, and other DSOs, may not read it
    for outsider in ("agg_2", "ldc_b"):
        with pytest.raises(PermissionDenied):
            province.run(outsider, lambda ctx: curtailment.list_procedures(ctx, tdi))


@pytest.mark.parametrize(
    ("rule", "parameters", "code"),
    [
        ("pro_rata_export", {"order": "highest_first"}, "conflicts.curtailment_unknown_parameter"),
        ("offer_price", {"order": "cheapest"}, "conflicts.curtailment_bad_parameter"),
        ("lottery", None, "conflicts.curtailment_unknown_rule"),
    ],
)
def test_bad_procedures_are_refused_and_store_nothing(
    database_url: str, rule: str, parameters: dict[str, str] | None, code: str
) -> None:
    province, _, _ = build_curtailment_province(database_url)
    audit_before = _rows(province, audit_records)

    with pytest.raises(GridbridgeError) as refused:
        publish(province, rule, parameters)

    assert refused.value.code == code
    assert _rows(province, curtailment_procedures) == 0
    assert _rows(province, audit_records) == audit_before


def test_reduction_beyond_what_can_be_curtailed_says_how_much_can(database_url: str) -> None:
    province, start, end = build_curtailment_province(database_url)
    publish(province, "pro_rata_export")
    before = (_rows(province, curtailment_events), _rows(province, instructions_table), _rows(province, audit_records))

    with pytest.raises(GridbridgeError) as refused:
        _request(province, 300.001, start, end)

    assert refused.value.code == "curtailment.beyond_available"
    assert refused.value.details["available_kw"] == 300.0
    assert "at most 300 kW can be curtailed" in refused.value.message
    after = (_rows(province, curtailment_events), _rows(province, instructions_table), _rows(province, audit_records))
    assert after == before


def test_bad_requests_are_refused_with_their_codes(sqlite_url: str) -> None:
    province, start, end = build_curtailment_province(sqlite_url)
    tdi = province.tdis["tdi_a"]
    with pytest.raises(ConflictError) as none_yet:
        _request(province, 10.0, start, end)
    assert none_yet.value.code == "curtailment.no_procedure"
    publish(province, "pro_rata_export")
    cases = [
        (0.0, start, end, {}, "curtailment.bad_reduction"),
        (-5.0, start, end, {}, "curtailment.bad_reduction"),
        (float("nan"), start, end, {}, "curtailment.bad_reduction"),
        (10.0, start + timedelta(minutes=1), end, {}, "curtailment.window_misaligned"),
        (10.0, end, start, {}, "curtailment.window_misaligned"),
        (10.0, start - timedelta(hours=3), end, {}, "curtailment.window_in_past"),
        (10.0, start, end, {"connection_point_ids": [10**9]}, "curtailment.unknown_point"),
        (10.0, start, end, {"feeder": "no such feeder"}, "curtailment.unknown_point"),
    ]
    for required_kw, a, b, options, code in cases:
        with pytest.raises(GridbridgeError) as refused:
            _request(province, required_kw, a, b, **options)
        assert refused.value.code == code, (required_kw, a, b, options)
    # another DSO, and roles that never may, are refused; an unknown interface is not found
    for who in ("ldc_b", "agg_1", "tso", "regulator"):
        with pytest.raises(PermissionDenied):
            province.run(who, lambda ctx: curtailment.request_curtailment(ctx, tdi, 10.0, start, end))
    with pytest.raises(GridbridgeError) as missing:
        province.run("ldc_a", lambda ctx: curtailment.request_curtailment(ctx, "nope", 10.0, start, end))
    assert missing.value.code == "not_found"
    assert _rows(province, curtailment_events) == 0


def test_limited_to_connection_points(sqlite_url: str) -> None:
    province, start, end = build_curtailment_province(sqlite_url)
    publish(province, "pro_rata_export")
    points = province.points["tdi_a"][2:4]  # C and D

    event = _request(province, 100.0, start, end, connection_point_ids=points)

    assert _shares(province, event) == {"C": 75.0, "D": 25.0}
    assert event.connection_point_ids == tuple(sorted(points))


def test_open_access_report_normalises_the_shares_by_capacity(database_url: str) -> None:
    """After the 100 kW pro-rata curtailment over 30 minutes: A and B (ldc_a's own, 150 kW) bear 16.667 kWh,
    C and D (third party, 350 kW) 33.333 kWh; capacity shares 0.3 and 0.7."""
    province, start, end = build_curtailment_province(database_url)
    publish(province, "pro_rata_export")
    _request(province, 100.0, start, end)
    dso = province.ids["ldc_a"]
    day = start.replace(hour=0, minute=0)
    province.run(  # the DSO dispatches the third-party C for a distribution service: 40 kW over the window
        "ldc_a",
        lambda ctx: instructions.dispatch_distribution_service(
            ctx, province.ders["C"], p_kw=40.0, interval_start=start, interval_end=end, reason="deferral"
        ),
    )

    for who in ("regulator", "tso", "ldc_a"):
        affiliated, third = province.run(
            who, lambda ctx: open_access.open_access(ctx, dso, day, day + timedelta(days=1))
        )
        assert (affiliated.dso_affiliated, third.dso_affiliated) == (True, False)
        assert (affiliated.n_ders, third.n_ders) == (2, 2)
        assert (affiliated.capacity_kw, third.capacity_kw) == (150.0, 350.0)
        assert affiliated.curtailed_kwh == pytest.approx(16.6665)
        assert third.curtailed_kwh == pytest.approx(33.3335)
        assert affiliated.capacity_share == pytest.approx(0.3)
        assert affiliated.curtailment_share == pytest.approx(1 / 3, abs=1e-5)
        assert affiliated.curtailment_share_ratio == pytest.approx(1.1111, abs=1e-4)
        assert third.curtailment_share_ratio == pytest.approx(0.95238, abs=1e-4)
        assert third.curtailed_kwh_per_kw == pytest.approx(33.3335 / 350)
        assert (affiliated.dispatched_kwh, third.dispatched_kwh) == (0.0, 20.0)
        assert third.dispatch_share == 1.0
        assert third.dispatch_share_ratio == pytest.approx(1 / 0.7)
        assert affiliated.dispatched_kwh_per_kw == 0.0
    # half of the window in the period: half the energy
    affiliated, third = province.run(
        "regulator", lambda ctx: open_access.open_access(ctx, dso, start, start + timedelta(minutes=15))
    )
    assert third.curtailed_kwh == pytest.approx(33.3335 / 2)
    for who in ("agg_1", "owner_1", "ldc_b"):
        with pytest.raises(PermissionDenied):
            province.run(who, lambda ctx: open_access.open_access(ctx, dso, day, day + timedelta(days=1)))
    with pytest.raises(GridbridgeError) as not_dso:
        province.run("regulator", lambda ctx: open_access.open_access(ctx, province.ids["agg_1"], day, start))
    assert not_dso.value.code == "open_access.not_a_dso"
    with pytest.raises(GridbridgeError) as empty:
        province.run("regulator", lambda ctx: open_access.open_access(ctx, dso, start, start))
    assert empty.value.code == "open_access.bad_period"


def test_export_over_window_takes_the_smallest_stretch() -> None:
    """Instructions set the export where they are in force, the envelope elsewhere; earlier curtailments are
    subtracted; the smallest stretch of the window counts."""
    t = datetime(2026, 5, 4, 17, 0, tzinfo=UTC)
    m = timedelta(minutes=5)
    dispatch = InstructedPower("x", 80.0, t, t + 2 * m)
    assert curtailment.export_over_window([], [], t, t + 2 * m, 60.0) == (60.0, False)
    assert curtailment.export_over_window([dispatch], [], t, t + 2 * m, 100.0) == (80.0, True)
    # capped at the envelope
    assert curtailment.export_over_window([dispatch], [], t, t + 2 * m, 50.0) == (50.0, True)
    # the dispatch covers only the first stretch: the envelope sets the second
    assert curtailment.export_over_window([dispatch], [], t, t + 4 * m, 70.0) == (70.0, True)
    earlier = InstructedPower("x", -30.0, t + m, t + 3 * m)
    assert curtailment.export_over_window([dispatch], [earlier], t, t + 2 * m, 100.0) == (50.0, True)
    assert curtailment.export_over_window([], [earlier, earlier], t, t + 2 * m, 40.0) == (0.0, False)


def test_export_comes_from_instructions_in_force_less_earlier_curtailments(sqlite_url: str) -> None:
    """C is dispatched 100 kW by the DSO over the window: the rule sees 100 kW, not its 150 kW limit; a second
    curtailment over the same window sees what the first one left."""
    province, start, end = build_curtailment_province(sqlite_url)
    publish(province, "pro_rata_export")
    province.run(
        "ldc_a",
        lambda ctx: instructions.dispatch_distribution_service(
            ctx, province.ders["C"], p_kw=100.0, interval_start=start, interval_end=end, reason="deferral"
        ),
    )

    first = _request(province, 100.0, start, end)

    assert _shares(province, first) == {"A": 24.0, "B": 16.0, "C": 40.0, "D": 20.0}
    sources = {s.der_id: s.export_source for s in first.shares}
    assert sources[province.ders["C"]] == "instructions"
    assert sources[province.ders["A"]].startswith("static_limit")
    with pytest.raises(GridbridgeError) as beyond:
        _request(province, 150.001, start, end)
    assert beyond.value.details["available_kw"] == 150.0
    second = _request(province, 150.0, start, end)
    assert _shares(province, second) == {"A": 36.0, "B": 24.0, "C": 60.0, "D": 30.0}
    assert all("earlier curtailment" in s.export_source for s in second.shares)


def test_groups_follow_the_interface_model_and_the_aggregations(sqlite_url: str) -> None:
    """Under alt 2 (tdi_a, 1,000 kW threshold) a lone 60 kW DER offers through the DSO, and so does the member of
    a third-party aggregation of 60 kW there (below the threshold too); a member of the DSO's own aggregation is
    DSO-aggregated and affiliated; under Total DSO (tdi_b) a third-party aggregation reaches the market through
    the DSO."""
    province = build_province(sqlite_url)
    enrol(province, "agg_1", "vpp_1", ["a2"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_a"])
    enrol(province, "ldc_a", "flex_a", ["a3"], {Service.DISTRIBUTION_SERVICES: None}, approve_as=["ldc_a"])
    enrol(province, "agg_2", "vpp_2", ["b1"], {Service.WHOLESALE_ENERGY: 50.0}, approve_as=["ldc_b"])
    when = T0 + timedelta(days=2)

    def groups(ctx: Context) -> dict[str, tuple[str, bool]]:
        found = {}
        for key in ("a1", "a2", "a3", "b1"):
            der = ctx.uow.ders.get(province.ders[key])
            assert der is not None
            tdi = ctx.uow.tdis.get(der.tdi_id)
            assert tdi is not None
            group, affiliated = curtailment.participation(ctx, der, tdi, model_in_force(ctx.uow, tdi.id, when), when)
            found[key] = (group.value, affiliated)
        return found

    assert province.run("regulator", groups) == {
        "a1": ("dso_aggregated", False),
        "a2": ("dso_aggregated", False),
        "a3": ("dso_aggregated", True),
        "b1": ("dso_aggregated", False),
    }
