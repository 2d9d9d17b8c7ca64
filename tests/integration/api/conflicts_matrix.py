"""Conflict records (and settlement flags) of the permission-matrix province.

``add_conflict(matrix)`` stores, as detection would, a capability conflict on b2 (tdi_b, Total DSO; owner_1,
represented by agg_1) over ldc_b's instruction ``b2@D1``, resolved by an amendment request to ldc_b (its issuer)
with a deadline a day ahead. Who takes part: ldc_b (issuer and the interface's DSO), agg_1 (recipient and
representative) and owner_1 (owner); the TSO does not see b2 under Total DSO. Labels go to
``MatrixProvince.market``: ``conflict:capability@b2`` and ``amendment:b2@D1``.

``add_shared_conflicts(matrix)`` stores four more, each with several parties' resources (records written
directly: the DERs are put together as each case needs, not where the province files them):

* ``envelope@b1+b2`` (tdi_b, Total DSO): a connection-point envelope conflict of two competitors' DERs, b1
  (owner_2 via agg_2) under ``item:b1@D1`` (ldc_b to agg_2) and b2 (owner_1 via agg_1) under ``b2@D1``, both
  allocations of the TSO's instruction, which therefore takes part but sees no DER there;
* ``envelope@a1+a2`` (tdi_a, alt 2): the TSO's dispatch ``item:a2@D1`` to a2 (market-participating, via agg_1)
  and ldc_a's dispatch ``item:a1@D1`` to a1 (owner_1's own, not market-participating);
* ``double@a2`` (tdi_a): a2 committed through agg_1's ``vpp_1@D1`` to the TSO (0 kW firm) and through an
  ldc_a distribution-services program (60 kW firm);
* ``double@b1`` (tdi_b): b1 committed through agg_2's ``vpp_2@D1`` to ldc_b (50 kW firm of 60) and through an
  ldc_b program (10 kW firm).

The two program commitments name offers that are not stored, so only the ``vpp_1@D1`` and ``vpp_2@D1``
commitments get settlement flags (``flag:a2``, ``flag:b1``), written by the store with their conflicts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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

PROGRAM_OFFER = "00000000-0000-4000-8000-0000000000d5"
"""The (unstored) offer of the DSO programs' commitments."""


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


def _outcome(
    subject: SubjectType,
    subject_id: str,
    der_id: str,
    issuer: str,
    recipient: str,
    kw: float,
    after_kw: float,
    span: tuple[datetime, datetime],
    reason: str,
) -> Outcome:
    action = OutcomeAction.KEPT if after_kw == kw else OutcomeAction.REDUCED
    return Outcome(subject, subject_id, der_id, issuer, recipient, action, kw, (Segment(*span, after_kw),), reason)


def add_shared_conflicts(matrix: MatrixProvince) -> None:
    """The four multi-party conflicts of the module docstring (and, through the store, their flags)."""
    province = matrix.province
    ids, ders = province.ids, province.ders

    def store(ctx: Context) -> None:
        now = ctx.clock.now()
        d1 = ctx.uow.market.instructions.get(matrix.market["instruction:b2@D1"])
        assert d1 is not None
        span = (d1.interval_start, d1.interval_end)

        def conflict(
            label: str,
            kind: ConflictKind,
            tdi: str,
            outcomes: tuple[Outcome, ...],
            parties: list[str],
            cp: str | None,
        ) -> None:
            conflict_id = ctx.new_id()
            subjects = [o.subject_id for o in outcomes]
            instructions = tuple(
                i for o, i in zip(outcomes, subjects, strict=True) if o.subject_type is SubjectType.INSTRUCTION
            )
            record = Conflict(
                conflict_id=f"{label}:{conflict_id}",
                kind=kind,
                tdi_id=province.tdis[tdi],
                der_ids=tuple(sorted({o.der_id for o in outcomes})),
                connection_point_id=cp,
                intervals=(span,),
                instruction_ids=instructions,
                commitment_ids=tuple(i for i in subjects if i not in instructions),
                party_ids=tuple(dict.fromkeys(p for o in outcomes for p in o.party_ids)),
                figures={"total_kw": sum(o.original_p_kw for o in outcomes)},
                series={"excess_kw": (20.0,)},
                summary=f"{label}: "
                + ", ".join(f"{s} on DER {o.der_id}" for s, o in zip(subjects, outcomes, strict=True)),
            )
            rule = (
                ResolutionRule.SERVICE_PRIORITY
                if kind is ConflictKind.DOUBLE_COUNTING
                else ResolutionRule.MOST_RESTRICTIVE_LIMIT
            )
            resolution = Resolution(
                ctx.new_id(), conflict_id, kind, record.tdi_id, rule, now, outcomes, f"{label} resolved"
            )
            dso = ids["ldc_a" if tdi == "tdi_a" else "ldc_b"]
            stored = StoredConflict(conflict_id, "instruction_issue", dso, False, now, record, resolution)
            ctx.uow.conflicts.add(stored, sorted({ids[p] for p in parties}), [])
            matrix.market[f"conflict:{label}"] = conflict_id

        def instruction(key: str, issuer: str, recipient: str, kw: float, after_kw: float, other: str) -> Outcome:
            item_id = matrix.market.setdefault(f"item:{key}@D1", ctx.new_id())
            reason = f"Your instruction {item_id} (DER {ders[key]}) is limited; outranked by {other}."
            return _outcome(
                SubjectType.INSTRUCTION, item_id, ders[key], ids[issuer], ids[recipient], kw, after_kw, span, reason
            )

        def commitment(offer_id: str, key: str, buyer: str, provider: str, after_kw: float, other: str) -> Outcome:
            commitment_id = f"{offer_id}:{ders[key]}"
            reason = f"Your commitment {commitment_id} pays {after_kw:g} kW; the rest is committed to {other}."
            return _outcome(
                SubjectType.COMMITMENT,
                commitment_id,
                ders[key],
                ids[buyer],
                ids[provider],
                60.0,
                after_kw,
                span,
                reason,
            )

        b1 = instruction("b1", "ldc_b", "agg_2", 40.0, 30.0, matrix.market["instruction:b2@D1"])
        b2 = _outcome(
            SubjectType.INSTRUCTION,
            d1.id,
            ders["b2"],
            ids["ldc_b"],
            ids["agg_1"],
            30.0,
            30.0,
            span,
            f"Your instruction {d1.id} (DER {ders['b2']}) is kept; it outranks {b1.subject_id} on DER {ders['b1']}.",
        )
        conflict(
            "envelope@b1+b2",
            ConflictKind.TIER_BYPASSING_ENVELOPE,
            "tdi_b",
            (b1, b2),
            ["ldc_b", "agg_1", "agg_2", "owner_1", "owner_2", "tso"],
            "b-point",
        )
        a1 = instruction("a1", "ldc_a", "owner_1", 30.0, 30.0, "nothing")
        a2 = instruction("a2", "tso", "agg_1", 50.0, 20.0, f"{a1.subject_id} on DER {ders['a1']}")
        conflict(
            "envelope@a1+a2",
            ConflictKind.TIER_BYPASSING_ENVELOPE,
            "tdi_a",
            (a1, a2),
            ["ldc_a", "tso", "agg_1", "owner_1"],
            "a-point",
        )
        program_a = f"{PROGRAM_OFFER}:{ders['a2']}"
        conflict(
            "double@a2",
            ConflictKind.DOUBLE_COUNTING,
            "tdi_a",
            (
                commitment(matrix.market["offer:vpp_1@D1"], "a2", "tso", "agg_1", 0.0, program_a),
                commitment(PROGRAM_OFFER, "a2", "ldc_a", "ldc_a", 60.0, "nothing"),
            ),
            ["ldc_a", "tso", "agg_1", "owner_1"],
            None,
        )
        conflict(
            "double@b1",
            ConflictKind.DOUBLE_COUNTING,
            "tdi_b",
            (
                commitment(
                    matrix.market["offer:vpp_2@D1"], "b1", "ldc_b", "agg_2", 50.0, f"{PROGRAM_OFFER}:{ders['b1']}"
                ),
                commitment(PROGRAM_OFFER, "b1", "ldc_b", "ldc_b", 10.0, "nothing"),
            ),
            ["ldc_b", "agg_2", "owner_2"],
            None,
        )
        matrix.market["commitment:vpp_1@D1/a2"] = f"{matrix.market['offer:vpp_1@D1']}:{ders['a2']}"
        matrix.market["commitment:vpp_2@D1/b1"] = f"{matrix.market['offer:vpp_2@D1']}:{ders['b1']}"
        matrix.market["commitment:program/a2"] = program_a
        matrix.market["commitment:program/b1"] = f"{PROGRAM_OFFER}:{ders['b1']}"

    with province.platform.context() as ctx:
        store(ctx)
