"""Conflict records of the permission-matrix province.

``add_conflict(matrix)`` stores, as detection would, a capability conflict on b2 (tdi_b, Total DSO; owner_1,
represented by agg_1) over ldc_b's instruction ``b2@D1``, resolved by an amendment request to ldc_b (its issuer)
with a deadline a day ahead. Who takes part: ldc_b (issuer and the interface's DSO), agg_1 (recipient and
representative) and owner_1 (owner); the TSO does not see b2 under Total DSO. Labels go to
``MatrixProvince.market``: ``conflict:capability@b2`` and ``amendment:b2@D1``.
"""

from __future__ import annotations

from datetime import timedelta

from api_province import MatrixProvince

from gridbridge.domain.conflicts import (
    Conflict,
    ConflictKind,
    Outcome,
    OutcomeAction,
    Resolution,
    ResolutionRule,
    Segment,
    SubjectType,
)
from gridbridge.services.conflict_ports import StoredAmendment, StoredConflict
from gridbridge.services.context import Context


def add_conflict(matrix: MatrixProvince) -> None:
    """The conflict and amendment request of the module docstring."""
    province = matrix.province

    def store(ctx: Context) -> None:
        instruction = ctx.uow.market.instructions.get(matrix.market["instruction:b2@D1"])
        assert instruction is not None
        assert instruction.der_id is not None
        now = ctx.clock.now()
        span = ((instruction.interval_start, instruction.interval_end),)
        conflict_id, request_id = ctx.new_id(), ctx.new_id()
        provisional = (Segment(instruction.interval_start, instruction.interval_end, instruction.p_kw / 2),)
        outcome = Outcome(
            SubjectType.INSTRUCTION,
            instruction.id,
            instruction.der_id,
            instruction.issuer_id,
            instruction.recipient_id,
            OutcomeAction.AMENDMENT_REQUESTED,
            instruction.p_kw,
            provisional,
            "beyond b2's capability together with another instruction; please amend",
            now + timedelta(days=1),
        )
        conflict = Conflict(
            conflict_id=f"hidden_coupling_capability:{instruction.der_id}",
            kind=ConflictKind.HIDDEN_COUPLING_CAPABILITY,
            tdi_id=province.tdis["tdi_b"],
            der_ids=(instruction.der_id,),
            connection_point_id=None,
            intervals=span,
            instruction_ids=(instruction.id,),
            commitment_ids=(),
            party_ids=(instruction.issuer_id, instruction.recipient_id),
            figures={"capability_kw": 60.0},
            series={"excess_kw": (10.0,)},
            summary="b2 is asked for more than it can do",
        )
        resolution = Resolution(
            ctx.new_id(),
            conflict_id,
            conflict.kind,
            conflict.tdi_id,
            ResolutionRule.AMENDMENT_REQUEST,
            now,
            (outcome,),
            "ldc_b is asked to amend",
        )
        dso_id = province.ids["ldc_b"]
        stored = StoredConflict(conflict_id, "instruction_issue", dso_id, False, now, conflict, resolution)
        amendment = StoredAmendment(
            request_id,
            conflict_id,
            instruction.id,
            instruction.der_id,
            instruction.issuer_id,
            now,
            now + timedelta(days=1),
            provisional,
            outcome.reason,
        )
        parties = [province.ids[p] for p in ("ldc_b", "agg_1", "owner_1")]
        ctx.uow.conflicts.add(stored, parties, [amendment])
        matrix.market["conflict:capability@b2"] = conflict_id
        matrix.market["amendment:b2@D1"] = request_id

    with province.platform.context() as ctx:
        store(ctx)
