"""Detection rules, starting with the white paper's own battery example (section 4.3)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest
from conflicts_testkit import at, hourly_grid, instruction

from gridbridge.domain.conflicts import (
    Commitment,
    ConflictInstruction,
    ConflictKind,
    ConnectionPointOutage,
    DerCapability,
    Direction,
    EnvelopeLimit,
    EnvelopeTarget,
    IntervalGrid,
    StorageSpec,
)
from gridbridge.domain.errors import ValidationFailed
from gridbridge.domain.roles import Role, Service
from gridbridge.engines.conflicts import (
    build_case,
    detect_conflicts,
    double_counting,
    screen_capability_energy,
    soe_trajectory_clipped_kwh,
)

W, DS, OR = Service.WHOLESALE_ENERGY, Service.DISTRIBUTION_SERVICES, Service.OPERATING_RESERVE


def four_hour_battery(storage: StorageSpec | None = None) -> DerCapability:
    """1 MW / 4 MWh: it can discharge at full power for four hours, starting full."""
    return DerCapability("bat-1", "tdi-1", "cp-1", 1000.0, 1000.0, storage or StorageSpec(4000.0, 1.0))


def white_paper_instructions() -> list[ConflictInstruction]:
    return [
        instruction("ieso-1", "bat-1", Role.TSO, W, 12, 16, 1000.0),
        instruction("dso-1", "bat-1", Role.DSO, DS, 16, 20, 1000.0),
    ]


def test_white_paper_battery_dispatched_by_ieso_12_to_4_and_dso_4_to_8_is_caught() -> None:
    grid = hourly_grid(12, 8)
    case = build_case(grid, [four_hour_battery()], white_paper_instructions())
    conflicts = detect_conflicts(case)
    assert [c.kind for c in conflicts] == [ConflictKind.HIDDEN_COUPLING_ENERGY]
    c = conflicts[0]
    assert c.der_ids == ("bat-1",)
    assert set(c.instruction_ids) == {"ieso-1", "dso-1"}
    assert set(c.party_ids) >= {"ieso", "ldc-1", "owner-1"}
    # 4000 kWh at noon, 1000 kWh an hour out: empty at 4 pm, then every DSO hour is undeliverable
    assert c.intervals == tuple(grid.interval(t) for t in (4, 5, 6, 7))
    assert c.series["soe_kwh"] == (-1000.0, -2000.0, -3000.0, -4000.0)
    assert c.figures["max_shortfall_kwh"] == 4000.0
    assert c.figures["undelivered_discharge_kwh"] == 4000.0
    for name in ("bat-1", "ieso-1", "dso-1"):
        assert name in c.summary


def test_each_instruction_alone_is_feasible() -> None:
    grid = hourly_grid(12, 8)
    for ins in white_paper_instructions():
        assert detect_conflicts(build_case(grid, [four_hour_battery()], [ins])) == ()


def test_battery_with_round_trip_losses_and_a_recharge_hour() -> None:
    """81 % round trip (0.9 each way): 3 h out, 1 h in, 2 h out cannot all be met.

    Hand computation: 4000 - 3*1000/0.9 = 666.667; +1000*0.9 = 1566.667; -1111.111 = 455.556;
    -1111.111 = -655.556 kWh. Physically the last hour delivers 455.556*0.9 = 410 kW: 590 kWh short.
    """
    grid = hourly_grid(12, 6)
    bat = four_hour_battery(StorageSpec.with_round_trip(4000.0, 1.0, 0.81))
    instructions = [
        instruction("ieso-1", "bat-1", Role.TSO, W, 12, 15, 1000.0),
        instruction("agg-charge", "bat-1", Role.AGGREGATOR, W, 15, 16, -1000.0),
        instruction("dso-1", "bat-1", Role.DSO, DS, 16, 18, 1000.0),
    ]
    conflicts = detect_conflicts(build_case(grid, [bat], instructions))
    assert len(conflicts) == 1
    c = conflicts[0]
    assert c.intervals == (grid.interval(5),)
    assert c.series["soe_kwh"][0] == pytest.approx(-655.5556, abs=1e-3)
    assert c.figures["undelivered_discharge_kwh"] == pytest.approx(590.0)
    assert c.figures["min_soe_kwh"] == pytest.approx(-655.5556, abs=1e-3)


def test_charging_beyond_capacity_is_caught_as_overflow() -> None:
    grid = hourly_grid(0, 3)
    bat = DerCapability("bat-9", "tdi-1", "cp-9", 100.0, 100.0, StorageSpec(200.0, 0.5))
    instructions = [
        instruction("tso-c", "bat-9", Role.TSO, W, 0, 1, -100.0),
        instruction("dso-c", "bat-9", Role.DSO, DS, 1, 2, -100.0),
    ]
    (c,) = detect_conflicts(build_case(grid, [bat], instructions))
    assert c.kind is ConflictKind.HIDDEN_COUPLING_ENERGY
    assert c.series["overflow_kwh"] == (100.0, 100.0)
    assert c.figures["unabsorbed_charge_kwh"] == 100.0


def test_capability_sum_of_two_parties_beyond_export() -> None:
    grid = hourly_grid(12, 3)
    dr = DerCapability("dr-1", "tdi-1", "cp-2", 200.0, 50.0)
    instructions = [
        instruction("tso-res", "dr-1", Role.TSO, OR, 12, 14, 150.0),
        instruction("agg-en", "dr-1", Role.AGGREGATOR, W, 13, 15, 100.0),
    ]
    (c,) = detect_conflicts(build_case(grid, [dr], instructions))
    assert c.kind is ConflictKind.HIDDEN_COUPLING_CAPABILITY
    assert c.intervals == (grid.interval(1),)
    assert c.series["instructed_p_kw"] == (250.0,)
    assert c.series["excess_kw"] == (50.0,)
    assert c.instruction_ids == ("tso-res", "agg-en")


def test_capability_on_the_import_side() -> None:
    grid = hourly_grid(0, 1)
    ev = DerCapability("ev-1", "tdi-1", "cp-3", 0.0, 11.0)
    (c,) = detect_conflicts(build_case(grid, [ev], [instruction("a", "ev-1", Role.AGGREGATOR, W, 0, 1, -12.5)]))
    assert c.series["limit_p_kw"] == (-11.0,)
    assert c.series["excess_kw"] == (1.5,)


def test_tier_bypassing_tso_dispatch_beyond_the_der_envelope() -> None:
    grid = hourly_grid(12, 3)
    pv = DerCapability("pv-9", "tdi-1", "cp-9", 500.0, 0.0)
    envelope = EnvelopeLimit(EnvelopeTarget.DER, "pv-9", at(13), at(14), 300.0, 0.0)
    ins = instruction("ieso-9", "pv-9", Role.TSO, W, 12, 15, 400.0)
    (c,) = detect_conflicts(build_case(grid, [pv], [ins], envelopes=[envelope]))
    assert c.kind is ConflictKind.TIER_BYPASSING_ENVELOPE
    assert c.intervals == (grid.interval(1),)
    assert c.series["envelope_p_kw"] == (300.0,)
    assert c.series["excess_kw"] == (100.0,)
    assert c.series["tso_p_kw"] == (400.0,)


def test_most_restrictive_of_overlapping_envelopes_applies() -> None:
    grid = hourly_grid(12, 1)
    pv = DerCapability("pv-9", "tdi-1", "cp-9", 500.0, 0.0)
    envelopes = [
        EnvelopeLimit(EnvelopeTarget.DER, "pv-9", at(12), at(13), 300.0, 0.0),
        EnvelopeLimit(EnvelopeTarget.DER, "pv-9", at(12.5), at(13), 250.0, 0.0),
    ]
    ins = instruction("ieso-9", "pv-9", Role.TSO, W, 12, 13, 260.0)
    (c,) = detect_conflicts(build_case(grid, [pv], [ins], envelopes=envelopes))
    assert c.series["envelope_p_kw"] == (250.0,)


def test_tier_bypassing_at_a_connection_point_envelope_shared_by_two_ders() -> None:
    grid = hourly_grid(12, 1)
    ders = [DerCapability("pv-1", "tdi-1", "cp-5", 100.0, 0.0), DerCapability("bat-2", "tdi-1", "cp-5", 100.0, 100.0)]
    envelope = EnvelopeLimit(EnvelopeTarget.CONNECTION_POINT, "cp-5", at(12), at(13), 100.0, 100.0)
    instructions = [
        instruction("dso-pv", "pv-1", Role.DSO, DS, 12, 13, 50.0),
        instruction("tso-bat", "bat-2", Role.TSO, W, 12, 13, 80.0),
    ]
    (c,) = detect_conflicts(build_case(grid, ders, instructions, envelopes=[envelope]))
    assert c.kind is ConflictKind.TIER_BYPASSING_ENVELOPE
    assert c.connection_point_id == "cp-5"
    assert c.conflict_id.startswith("tier_bypassing_envelope:cp:cp-5:")
    assert c.series["instructed_p_kw"] == (130.0,)
    assert c.series["excess_kw"] == (30.0,)
    assert set(c.der_ids) == {"pv-1", "bat-2"}


def test_instruction_to_a_deenergised_connection_point() -> None:
    grid = hourly_grid(12, 3)
    pv = DerCapability("pv-3", "tdi-1", "cp-3", 500.0, 0.0)
    outage = ConnectionPointOutage("cp-3", at(13), at(14))
    envelope = EnvelopeLimit(EnvelopeTarget.DER, "pv-3", at(12), at(15), 50.0, 0.0)
    ins = instruction("ieso-3", "pv-3", Role.TSO, W, 12, 15, 40.0)
    (c,) = detect_conflicts(build_case(grid, [pv], [ins], envelopes=[envelope], outages=[outage]))
    assert c.kind is ConflictKind.TIER_BYPASSING_DEENERGISED
    assert c.intervals == (grid.interval(1),)
    assert c.instruction_ids == ("ieso-3",)
    # a zero setpoint at a de-energised point is no conflict
    idle = instruction("ieso-0", "pv-3", Role.TSO, W, 13, 14, 0.0)
    assert detect_conflicts(build_case(grid, [pv], [idle], outages=[outage])) == ()


def _commitment(cid: str, holder: str, service: Service, kw: float, day: int) -> Commitment:
    return Commitment(
        commitment_id=cid,
        der_id="bat-5",
        holder_id=holder,
        buyer_party_id="ieso" if service is W else "ldc-1",
        provider_party_id=f"{holder}-provider",
        service=service,
        direction=Direction.EXPORT,
        start=at(12),
        end=at(14),
        committed_kw=kw,
        committed_at=at(-24 * day),
    )


def test_double_counting_two_aggregations_and_a_distribution_service() -> None:
    """500 kW battery: agg-A 400 kW (first), agg-B 300 kW, DSO 200 kW (last).

    agg-B: 100 firm, 200 counted twice against agg-A. DSO: 0 firm, its 200 kW overlap agg-A (400 firm) and
    agg-B (100 firm) pro rata: 160 and 40.
    """
    grid = hourly_grid(12, 2)
    bat = DerCapability("bat-5", "tdi-1", "cp-5", 500.0, 500.0, StorageSpec(2000.0, 0.5))
    commitments = [
        _commitment("c-a", "agg-A", W, 400.0, 30),
        _commitment("c-b", "agg-B", W, 300.0, 20),
        _commitment("c-dso", "nwa-1", DS, 200.0, 10),
    ]
    (c,) = detect_conflicts(build_case(grid, [bat], [], commitments=commitments))
    assert c.kind is ConflictKind.DOUBLE_COUNTING
    assert c.commitment_ids == ("c-a", "c-b", "c-dso")
    assert c.series["committed_kw"] == (900.0, 900.0)
    assert c.series["double_counted_kw"] == (400.0, 400.0)
    first_hour = {(p.commitment_id, p.against_commitment_id): p.kw for p in c.pairs if p.interval_start == at(12)}
    assert first_hour == {("c-b", "c-a"): 200.0, ("c-dso", "c-a"): 160.0, ("c-dso", "c-b"): 40.0}


def test_commitments_within_capability_are_not_double_counting() -> None:
    grid = hourly_grid(12, 2)
    bat = DerCapability("bat-5", "tdi-1", "cp-5", 500.0, 500.0)
    commitments = [_commitment("c-a", "agg-A", W, 300.0, 30), _commitment("c-b", "agg-B", W, 200.0, 20)]
    assert detect_conflicts(build_case(grid, [bat], [], commitments=commitments)) == ()


def test_one_commitment_beyond_capability_is_not_counted_twice() -> None:
    result = double_counting(np.array([0, 0]), np.array([150.0, 20.0]), np.array([0, 1]), np.array([100.0, 100.0]))
    assert result.firm_kw.tolist() == [100.0, 0.0]
    assert result.beyond_capability_kw.tolist() == [50.0, 0.0]
    assert result.overlap_kw.tolist() == [0.0, 20.0]
    assert result.pair_kw.tolist() == [20.0]


def test_feasible_instructions_give_no_conflicts() -> None:
    grid = hourly_grid(12, 8)
    instructions = [
        instruction("ieso-1", "bat-1", Role.TSO, W, 12, 14, 1000.0),
        instruction("dso-1", "bat-1", Role.DSO, DS, 16, 18, 1000.0),
    ]
    assert detect_conflicts(build_case(grid, [four_hour_battery()], instructions)) == ()


def test_case_rejects_unknown_ders_off_grid_times_and_repeated_ids() -> None:
    grid = hourly_grid(12, 2)
    bat = four_hour_battery()
    with pytest.raises(ValidationFailed) as err:
        build_case(grid, [bat], [instruction("x", "nope", Role.TSO, W, 12, 13, 1.0)])
    assert err.value.code == "conflicts.unknown_reference"
    assert err.value.field == "instructions[0].der_id"
    with pytest.raises(ValidationFailed) as err:
        build_case(grid, [bat], [instruction("x", "bat-1", Role.TSO, W, 12.5, 13, 1.0)])
    assert err.value.code == "conflicts.interval_misaligned"
    with pytest.raises(ValidationFailed) as err:
        build_case(grid, [bat], [instruction("x", "bat-1", Role.TSO, W, 12, 15, 1.0)])
    assert err.value.field == "instructions[0].end"
    with pytest.raises(ValidationFailed) as err:
        build_case(grid, [bat, bat], [])
    assert err.value.code == "conflicts.duplicate_id"


def test_clipped_trajectory_reports_what_the_battery_fails_to_deliver() -> None:
    p = np.array([[1000.0] * 5 + [-1000.0, 1000.0]])
    one = np.ones(1)
    soe, undelivered = soe_trajectory_clipped_kwh(p, 4000 * one, 0 * one, 4000 * one, one, one, 1.0)
    assert soe[0].tolist() == [3000.0, 2000.0, 1000.0, 0.0, 0.0, 1000.0, 0.0]
    assert undelivered[0].tolist() == [0.0, 0.0, 0.0, 0.0, 1000.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_screen_matches_the_numpy_check(dtype: type) -> None:
    rng = np.random.default_rng(7)
    n, n_t = 3000, 48
    p: np.ndarray = rng.normal(0.0, 60.0, (n, n_t)).astype(dtype)
    exp_ = rng.uniform(50, 150, n)
    imp = rng.uniform(50, 150, n)
    storage = rng.random(n) < 0.6
    e_kwh = rng.uniform(100, 600, n)
    e0 = e_kwh * rng.uniform(0.2, 0.8, n)
    args = (p, exp_, imp, storage, e0, 0.1 * e_kwh, 0.95 * e_kwh, np.full(n, 0.95), np.full(n, 0.92), 0.25)
    fused = screen_capability_energy(*args, engine="numba")
    chunked = screen_capability_energy(*args, engine="numpy", chunk_rows=700)
    assert np.array_equal(fused.capability_intervals, chunked.capability_intervals)
    assert np.array_equal(fused.energy_intervals, chunked.energy_intervals)
    assert fused.capability_intervals.sum() > 0
    assert fused.energy_intervals.sum() > 0
    assert (fused.energy_intervals[~storage] == 0).all()


def test_five_minute_grid_detects_a_short_overlap() -> None:
    grid = IntervalGrid(at(12), timedelta(minutes=5), 24)
    dr = DerCapability("dr-1", "tdi-1", "cp-2", 200.0, 50.0)
    start: datetime = at(12) + timedelta(minutes=55)
    a = instruction("tso-res", "dr-1", Role.TSO, OR, 12, 13, 150.0)
    b = instruction("agg-en", "dr-1", Role.AGGREGATOR, W, 12, 14, 100.0)
    b = replace(b, start=start, end=at(13) + timedelta(minutes=5))
    (c,) = detect_conflicts(build_case(grid, [dr], [a, b]))
    assert c.intervals == (grid.interval(11),)
