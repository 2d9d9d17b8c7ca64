"""Property tests: whatever the instructions, resolution leaves a jointly feasible set and one resolution per conflict.

Random cases mix storage and non-storage DERs sharing connection points, DER and connection-point envelopes,
outages, instructions of every role, service and sign, and random per-interface policies. The feasibility
check is the independent oracle of ``conflicts_testkit`` (plain loops over the domain inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from conflicts_testkit import at, oracle_violations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gridbridge.domain.conflicts import (
    ALLOWED_RULES,
    ConflictInstruction,
    ConflictKind,
    ConnectionPointOutage,
    DerCapability,
    EnvelopeLimit,
    EnvelopeTarget,
    InstructionKind,
    IntervalGrid,
    OutcomeAction,
    ResolutionPolicy,
    ServiceCategory,
    ServicePriorityList,
    StorageSpec,
)
from gridbridge.domain.roles import Role, Service
from gridbridge.engines.conflicts import build_case, detect_conflicts, resolve_conflicts
from gridbridge.engines.conflicts.resolution import POWER_KINDS

NOW = at(6)
kw = st.floats(0.0, 200.0, allow_nan=False).map(lambda v: round(v, 3))
setpoint = st.one_of(
    st.floats(-300.0, 300.0, allow_nan=False).map(lambda v: round(v, 3)), st.sampled_from([0.0, 100.0, -100.0])
)


@dataclass
class Inputs:
    grid: IntervalGrid
    ders: list[DerCapability]
    instructions: list[ConflictInstruction] = field(default_factory=list)
    envelopes: list[EnvelopeLimit] = field(default_factory=list)
    outages: list[ConnectionPointOutage] = field(default_factory=list)
    policies: dict[str, ResolutionPolicy] = field(default_factory=dict)


@st.composite
def storage_specs(draw: st.DrawFn) -> StorageSpec | None:
    if not draw(st.booleans()):
        return None
    lo = draw(st.sampled_from([0.0, 0.1, 0.2]))
    hi = draw(st.sampled_from([0.8, 0.9, 1.0]))
    return StorageSpec(
        e_kwh=draw(st.floats(5.0, 400.0).map(lambda v: round(v, 2))),
        soc_initial_fraction=draw(st.floats(lo, hi)),
        soc_min_fraction=lo,
        soc_max_fraction=hi,
        eta_charge=draw(st.sampled_from([1.0, 0.95, 0.9])),
        eta_discharge=draw(st.sampled_from([1.0, 0.95, 0.85])),
    )


@st.composite
def spans(draw: st.DrawFn, grid: IntervalGrid) -> tuple[int, int]:
    a = draw(st.integers(0, grid.n_intervals - 1))
    b = draw(st.integers(a + 1, grid.n_intervals))
    return a, b


@st.composite
def instructions(draw: st.DrawFn, grid: IntervalGrid, ders: list[DerCapability], k: int) -> ConflictInstruction:
    role = draw(st.sampled_from([Role.TSO, Role.DSO, Role.AGGREGATOR]))
    kinds = [InstructionKind.DISPATCH, InstructionKind.SCHEDULE]
    if role is not Role.AGGREGATOR:
        kinds.append(InstructionKind.OPERATING_INSTRUCTION)
    a, b = draw(spans(grid))
    return ConflictInstruction(
        instruction_id=f"i{k}",
        issuer_party_id={Role.TSO: "ieso", Role.DSO: "ldc", Role.AGGREGATOR: draw(st.sampled_from(["agg-1", "agg-2"]))}[
            role
        ],
        issuer_role=role,
        recipient_party_id="owner",
        der_id=draw(st.sampled_from([d.der_id for d in ders])),
        service=draw(st.sampled_from(list(Service))),
        kind=draw(st.sampled_from(kinds)),
        start=grid.interval_start(a),
        end=grid.interval_start(b),
        p_kw=draw(setpoint),
        issued_at=NOW - timedelta(minutes=draw(st.integers(1, 600))),
    )


@st.composite
def envelopes(draw: st.DrawFn, grid: IntervalGrid, ders: list[DerCapability]) -> EnvelopeLimit:
    a, b = draw(spans(grid))
    if draw(st.booleans()):
        target, target_id = EnvelopeTarget.DER, draw(st.sampled_from([d.der_id for d in ders]))
    else:
        target, target_id = (
            EnvelopeTarget.CONNECTION_POINT,
            draw(st.sampled_from([d.connection_point_id for d in ders])),
        )
    return EnvelopeLimit(target, target_id, grid.interval_start(a), grid.interval_start(b), draw(kw), draw(kw))


@st.composite
def outages(draw: st.DrawFn, grid: IntervalGrid, ders: list[DerCapability]) -> ConnectionPointOutage:
    a, b = draw(spans(grid))
    cp = draw(st.sampled_from([d.connection_point_id for d in ders]))
    return ConnectionPointOutage(cp, grid.interval_start(a), grid.interval_start(b))


@st.composite
def policies(draw: st.DrawFn) -> ResolutionPolicy:
    order = draw(st.permutations(list(ServiceCategory)))
    rules = {kind: draw(st.sampled_from(sorted(ALLOWED_RULES[kind]))) for kind in ConflictKind}
    return ResolutionPolicy(ServicePriorityList(tuple(order)), rules, timedelta(minutes=draw(st.integers(1, 120))))


@st.composite
def grids(draw: st.DrawFn) -> IntervalGrid:
    step = draw(st.sampled_from([timedelta(hours=1), timedelta(minutes=15)]))
    return IntervalGrid(at(8), step, draw(st.integers(1, 6)))


@st.composite
def ders_lists(draw: st.DrawFn) -> list[DerCapability]:
    n = draw(st.integers(1, 5))
    n_cp = draw(st.integers(1, 3))
    out = []
    for k in range(n):
        cp = draw(st.integers(0, n_cp - 1))
        out.append(DerCapability(f"d{k}", f"tdi-{cp % 2}", f"cp{cp}", draw(kw), draw(kw), draw(storage_specs())))
    return out


@st.composite
def inputs(draw: st.DrawFn) -> Inputs:
    grid = draw(grids())
    ders = draw(ders_lists())
    case = Inputs(grid, ders)
    case.instructions = [draw(instructions(grid, ders, k)) for k in range(draw(st.integers(0, 10)))]
    case.envelopes = draw(st.lists(envelopes(grid, ders), max_size=4))
    case.outages = draw(st.lists(outages(grid, ders), max_size=2))
    case.policies = {tdi: draw(policies()) for tdi in ("tdi-0", "tdi-1") if draw(st.booleans())}
    return case


def check_resolution_properties(inp: Inputs) -> None:
    """The promises of ``resolve_conflicts`` on one input set."""
    case = build_case(inp.grid, inp.ders, inp.instructions, envelopes=inp.envelopes, outages=inp.outages)
    conflicts = detect_conflicts(case)
    result = resolve_conflicts(case, conflicts, NOW, policies=inp.policies)

    # exactly one resolution per conflict, in order
    assert [r.conflict_id for r in result.resolutions] == [c.conflict_id for c in conflicts]
    assert len({c.conflict_id for c in conflicts}) == len(conflicts)

    # the adjusted set is jointly feasible (independent oracle) and no longer conflicts
    schedules = {a.subject_id: a.schedule for a in result.instructions}
    problems = oracle_violations(inp.grid, inp.ders, inp.instructions, schedules, inp.envelopes, inp.outages)
    assert problems == []
    assert [c for c in detect_conflicts(case, cell_p_kw=result.cell_p_kw) if c.kind in POWER_KINDS] == []

    # nothing dropped silently: every named or changed instruction has an outcome with a reason for both parties
    told: dict[str, list[OutcomeAction]] = {}
    for conflict, res in zip(conflicts, result.resolutions, strict=True):
        ids = {o.subject_id for o in res.outcomes}
        assert set(conflict.instruction_ids) <= ids
        assert set(conflict.commitment_ids) <= ids
        for o in res.outcomes:
            assert o.reason
            assert o.party_ids
            told.setdefault(o.subject_id, []).append(o.action)
            if o.action is OutcomeAction.AMENDMENT_REQUESTED:
                assert o.deadline is not None
                assert o.deadline > NOW
    for adj in result.instructions:
        if adj.changed:
            assert adj.subject_id in told
            assert told[adj.subject_id] != [OutcomeAction.KEPT]

    # setpoints only move towards zero and never change sign
    for ins, adj in zip(inp.instructions, result.instructions, strict=True):
        for seg in adj.schedule:
            assert abs(seg.p_kw) <= abs(ins.p_kw) + 1e-6
            assert seg.p_kw * ins.p_kw >= 0.0

    # without conflicts, nothing changes
    if not conflicts:
        assert not any(a.changed for a in result.instructions)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_any_instruction_set_resolves_to_a_feasible_set_with_one_resolution_per_conflict(inp: Inputs) -> None:
    check_resolution_properties(inp)


@settings(max_examples=60, deadline=None)
@given(inputs())
def test_detection_is_deterministic(inp: Inputs) -> None:
    case = build_case(inp.grid, inp.ders, inp.instructions, envelopes=inp.envelopes, outages=inp.outages)
    assert detect_conflicts(case) == detect_conflicts(case)


class ConflictMachine(RuleBasedStateMachine):
    """Submissions, instructions, outages and envelope changes in any order; the invariants hold after each."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = Inputs(IntervalGrid(at(8), timedelta(hours=1), 4), [])
        self.count = 0

    @initialize(ders=ders_lists(), policy=policies())
    def setup(self, ders: list[DerCapability], policy: ResolutionPolicy) -> None:
        self.inp.ders = ders
        self.inp.policies = {"tdi-0": policy}

    @rule(data=st.data())
    def submit_instruction(self, data: st.DataObject) -> None:
        self.count += 1
        self.inp.instructions.append(data.draw(instructions(self.inp.grid, self.inp.ders, self.count)))

    @rule(data=st.data())
    def withdraw_instruction(self, data: st.DataObject) -> None:
        if self.inp.instructions:
            self.inp.instructions.pop(data.draw(st.integers(0, len(self.inp.instructions) - 1)))

    @rule(data=st.data())
    def outage(self, data: st.DataObject) -> None:
        self.inp.outages.append(data.draw(outages(self.inp.grid, self.inp.ders)))

    @rule(data=st.data())
    def envelope_change(self, data: st.DataObject) -> None:
        self.inp.envelopes.append(data.draw(envelopes(self.inp.grid, self.inp.ders)))

    @invariant()
    def resolution_promises_hold(self) -> None:
        if self.inp.ders:
            check_resolution_properties(self.inp)


ConflictMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=10, deadline=None)
TestConflictMachine = ConflictMachine.TestCase
