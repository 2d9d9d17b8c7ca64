"""SQL implementation of the conflict-management port (``uow.conflicts``), on the tables of ``conflict_tables``.

Conflicts and resolutions are written once and never edited; the engine's records travel as JSON (series,
figures, outcomes with their schedules). Visibility is a join on ``conflict_parties`` (see the port).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Text,
    and_,
    cast,
    delete,
    exists,
    false,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from gridbridge.domain.conflicts import (
    AmendmentStatus,
    Conflict,
    ConflictKind,
    DoubleCountedPair,
    Outcome,
    OutcomeAction,
    Resolution,
    ResolutionPolicy,
    ResolutionRule,
    Segment,
    ServicePriorityList,
    SubjectType,
)
from gridbridge.domain.market import Instruction, InstructionStatus
from gridbridge.services.conflict_ports import (
    LIVE_STATUSES,
    ConflictFilter,
    ConflictScope,
    StoredAmendment,
    StoredConflict,
    outcome_json,
    segments_json,
)
from gridbridge.services.ports import Page
from gridbridge.store.conflict_tables import (
    amendment_requests,
    conflict_parties,
    conflict_resolutions,
    conflicts,
    resolution_policies,
)
from gridbridge.store.market_repository import _instruction
from gridbridge.store.market_tables import instructions
from gridbridge.store.settlement_repository import SqlSettlementFlags
from gridbridge.store.tables import ders

_CHUNK = 500
_LIVE = tuple(sorted(LIVE_STATUSES))


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _segments(rows: Sequence[Mapping[str, Any]]) -> tuple[Segment, ...]:
    return tuple(Segment(_dt(r["start"]), _dt(r["end"]), float(r["p_kw"])) for r in rows)


def _outcome(r: Mapping[str, Any]) -> Outcome:
    return Outcome(
        subject_type=SubjectType(r["subject_type"]),
        subject_id=r["subject_id"],
        der_id=r["der_id"],
        issuer_party_id=r["issuer_party_id"],
        recipient_party_id=r["recipient_party_id"],
        action=OutcomeAction(r["action"]),
        original_p_kw=float(r["original_p_kw"]),
        schedule=_segments(r["schedule"]),
        reason=r["reason"],
        deadline=_dt(r["deadline"]) if r["deadline"] else None,
    )


def _float(value: float | None) -> float:
    return float("inf") if value is None else float(value)


def _conflict(r: RowMapping) -> Conflict:
    return Conflict(
        conflict_id=r["detection_key"],
        kind=ConflictKind(r["kind"]),
        tdi_id=r["tdi_id"],
        der_ids=tuple(r["der_ids"]),
        connection_point_id=r["connection_point_id"],
        intervals=tuple((_dt(a), _dt(b)) for a, b in r["intervals"]),
        instruction_ids=tuple(r["instruction_ids"]),
        commitment_ids=tuple(r["commitment_ids"]),
        party_ids=tuple(r["party_ids"]),
        figures={k: _float(v) for k, v in r["figures"].items()},
        series={k: tuple(_float(x) for x in v) for k, v in r["series"].items()},
        summary=r["summary"],
        pairs=tuple(
            DoubleCountedPair(_dt(p["interval_start"]), p["commitment_id"], p["against_commitment_id"], float(p["kw"]))
            for p in r["pairs"]
        ),
    )


def _finite(values: Mapping[str, float]) -> dict[str, float | None]:
    """JSON has no infinities: an unlimited figure is stored as null and read back as +inf."""
    return {k: (None if v != v or v in (float("inf"), float("-inf")) else float(v)) for k, v in values.items()}


class SqlConflicts:
    """Conflicts, resolutions, policies and amendment requests on one session (``uow.conflicts``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, conflict: StoredConflict, party_ids: Sequence[str], amendments: Sequence[StoredAmendment]) -> None:
        c, res = conflict.conflict, conflict.resolution
        self.session.execute(
            insert(conflicts).values(
                id=conflict.id,
                detection_key=c.conflict_id[:200],
                kind=c.kind,
                stage=conflict.stage,
                tdi_id=c.tdi_id,
                dso_id=conflict.dso_id,
                der_id=c.der_ids[0] if c.der_ids else None,
                der_ids=list(c.der_ids),
                connection_point_id=c.connection_point_id,
                interval_start=min(a for a, _ in c.intervals),
                interval_end=max(b for _, b in c.intervals),
                intervals=[[a.isoformat(), b.isoformat()] for a, b in c.intervals],
                instruction_ids=list(c.instruction_ids),
                commitment_ids=list(c.commitment_ids),
                party_ids=list(c.party_ids),
                figures=_finite(c.figures),
                series={k: [None if x != x or abs(x) == float("inf") else x for x in v] for k, v in c.series.items()},
                pairs=[
                    {
                        "interval_start": p.interval_start.isoformat(),
                        "commitment_id": p.commitment_id,
                        "against_commitment_id": p.against_commitment_id,
                        "kw": p.kw,
                    }
                    for p in c.pairs
                ],
                summary=c.summary,
                tso_visible=conflict.tso_visible,
                detected_at=conflict.detected_at,
            )
        )
        parties = sorted(set(party_ids))
        if parties:
            self.session.execute(
                insert(conflict_parties), [{"conflict_id": conflict.id, "party_id": p} for p in parties]
            )
        self.session.execute(
            insert(conflict_resolutions).values(
                id=res.resolution_id,
                conflict_id=conflict.id,
                rule=res.rule,
                binding_limit=res.binding_limit,
                decided_at=res.decided_at,
                outcomes=[outcome_json(o) for o in res.outcomes],
                summary=res.summary,
            )
        )
        if amendments:
            self.session.execute(
                insert(amendment_requests),
                [
                    {
                        "id": a.id,
                        "conflict_id": a.conflict_id,
                        "instruction_id": a.instruction_id,
                        "der_id": a.der_id,
                        "addressee_id": a.addressee_id,
                        "requested_at": a.requested_at,
                        "deadline": a.deadline,
                        "provisional": segments_json(a.provisional),
                        "reason": a.reason,
                        "status": a.status,
                        "answered_at": a.answered_at,
                        "amended_p_kw": a.amended_p_kw,
                    }
                    for a in amendments
                ],
            )
        # a double-counting resolution is what settlement reads: its flags are stored with it
        SqlSettlementFlags(self.session).record_conflict(conflict)

    def _stored(self, rows: Sequence[RowMapping]) -> list[StoredConflict]:
        ids = [r["id"] for r in rows]
        resolutions: dict[str, RowMapping] = {}
        for chunk in _chunks(ids):
            for r in self.session.execute(
                select(conflict_resolutions).where(conflict_resolutions.c.conflict_id.in_(chunk))
            ).mappings():
                resolutions[r["conflict_id"]] = r
        out = []
        for r in rows:
            c = _conflict(r)
            s = resolutions[r["id"]]
            out.append(
                StoredConflict(
                    id=r["id"],
                    stage=r["stage"],
                    dso_id=r["dso_id"],
                    tso_visible=bool(r["tso_visible"]),
                    detected_at=r["detected_at"],
                    conflict=c,
                    resolution=Resolution(
                        resolution_id=s["id"],
                        conflict_id=r["id"],
                        kind=c.kind,
                        tdi_id=c.tdi_id,
                        rule=ResolutionRule(s["rule"]),
                        decided_at=s["decided_at"],
                        outcomes=tuple(_outcome(o) for o in s["outcomes"]),
                        summary=s["summary"],
                        binding_limit=s["binding_limit"],
                    ),
                )
            )
        return out

    def get(self, conflict_id: str) -> StoredConflict | None:
        row = self.session.execute(select(conflicts).where(conflicts.c.id == conflict_id)).mappings().first()
        return self._stored([row])[0] if row is not None else None

    @staticmethod
    def _scope(scope: ConflictScope) -> ColumnElement[bool]:
        if scope.everything:
            return true()
        party = exists().where(
            and_(conflict_parties.c.conflict_id == conflicts.c.id, conflict_parties.c.party_id == scope.participant_id)
        )
        return or_(party, conflicts.c.tso_visible.is_(True) if scope.tso else false())

    def visible(self, conflict_id: str, scope: ConflictScope) -> bool:
        query = select(conflicts.c.id).where(and_(conflicts.c.id == conflict_id, self._scope(scope)))
        return self.session.execute(query).first() is not None

    def query(self, scope: ConflictScope, page: Page, filters: ConflictFilter) -> list[StoredConflict]:
        c = conflicts.c
        where: list[ColumnElement[bool]] = [self._scope(scope)]
        if filters.tdi_id is not None:
            where.append(c.tdi_id == filters.tdi_id)
        if filters.der_id is not None:  # any DER of the conflict, not only the first
            where.append(cast(c.der_ids, Text).contains(json.dumps(filters.der_id), autoescape=True))
        if filters.kind is not None:
            where.append(c.kind == filters.kind)
        if filters.start is not None:
            where.append(c.interval_end > filters.start)
        if filters.end is not None:
            where.append(c.interval_start < filters.end)
        if filters.pending_amendment is not None:
            pending = exists().where(
                and_(
                    amendment_requests.c.conflict_id == c.id,
                    amendment_requests.c.status == AmendmentStatus.PENDING,
                )
            )
            where.append(pending if filters.pending_amendment else ~pending)
        query = (
            select(conflicts)
            .where(and_(*where))
            .order_by(c.interval_start, c.detected_at, c.id)
            .limit(page.limit)
            .offset(page.offset)
        )
        return self._stored(list(self.session.execute(query).mappings()))

    def policy(self, tdi_id: str) -> ResolutionPolicy | None:
        row = (
            self.session.execute(select(resolution_policies).where(resolution_policies.c.tdi_id == tdi_id))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return ResolutionPolicy(
            priorities=ServicePriorityList.from_names(row["priorities"]),
            rules={ConflictKind(k): ResolutionRule(v) for k, v in row["rules"].items()},
            amendment_window=timedelta(minutes=int(row["amendment_window_min"])),
        )

    def save_policy(self, tdi_id: str, policy: ResolutionPolicy, *, at: datetime, by: str) -> None:
        values = {
            "priorities": [c.value for c in policy.priorities.order],
            "rules": {k.value: v.value for k, v in policy.rules.items()},
            "amendment_window_min": int(policy.amendment_window.total_seconds() // 60),
            "updated_at": at,
            "updated_by": by,
        }
        self.session.execute(delete(resolution_policies).where(resolution_policies.c.tdi_id == tdi_id))
        self.session.execute(insert(resolution_policies).values(tdi_id=tdi_id, **values))

    @staticmethod
    def _amendment(r: RowMapping) -> StoredAmendment:
        return StoredAmendment(
            id=r["id"],
            conflict_id=r["conflict_id"],
            instruction_id=r["instruction_id"],
            der_id=r["der_id"],
            addressee_id=r["addressee_id"],
            requested_at=r["requested_at"],
            deadline=r["deadline"],
            provisional=_segments(r["provisional"]),
            reason=r["reason"],
            status=AmendmentStatus(r["status"]),
            answered_at=r["answered_at"],
            amended_p_kw=r["amended_p_kw"],
        )

    def amendments(self, conflict_id: str) -> list[StoredAmendment]:
        query = (
            select(amendment_requests)
            .where(amendment_requests.c.conflict_id == conflict_id)
            .order_by(amendment_requests.c.id)
        )
        return [self._amendment(r) for r in self.session.execute(query).mappings()]

    def amendment(self, request_id: str) -> StoredAmendment | None:
        row = (
            self.session.execute(select(amendment_requests).where(amendment_requests.c.id == request_id))
            .mappings()
            .first()
        )
        return self._amendment(row) if row is not None else None

    def answer_amendment(self, request_id: str, *, at: datetime, p_kw: float) -> None:
        self.session.execute(
            update(amendment_requests)
            .where(amendment_requests.c.id == request_id)
            .values(status=AmendmentStatus.AMENDED, answered_at=at, amended_p_kw=p_kw)
        )

    def due_amendments(self, before: datetime, addressee_id: str | None) -> list[StoredAmendment]:
        a = amendment_requests.c
        where = [a.status == AmendmentStatus.PENDING, a.deadline < before]
        if addressee_id is not None:
            where.append(a.addressee_id == addressee_id)
        query = select(amendment_requests).where(and_(*where)).order_by(a.deadline, a.id)
        return [self._amendment(r) for r in self.session.execute(query).mappings()]

    def expire_amendment(self, request_id: str) -> None:
        self.session.execute(
            update(amendment_requests)
            .where(and_(amendment_requests.c.id == request_id, amendment_requests.c.status == AmendmentStatus.PENDING))
            .values(status=AmendmentStatus.EXPIRED)
        )

    def point_instructions(
        self, connection_point_ids: Sequence[int], start: datetime, end: datetime, *, closed: bool = False
    ) -> list[Instruction]:
        i = instructions.c
        out: list[Instruction] = []
        points = sorted(set(connection_point_ids))
        for k in range(0, len(points), _CHUNK):
            at_points = select(ders.c.id).where(ders.c.connection_point_id.in_(points[k : k + _CHUNK]))
            where = [i.der_id.in_(at_points), i.interval_start <= end, i.interval_end >= start]
            if not closed:
                where.append(i.status.in_([s.value for s in _LIVE]))
            query = select(instructions).where(and_(*where))
            out.extend(_instruction(r) for r in self.session.execute(query).mappings())
        out.sort(key=lambda x: (x.issued_at, x.id))
        return out

    def der_instructions(self, der_ids: Sequence[str], start: datetime, end: datetime) -> list[Instruction]:
        i = instructions.c
        out: list[Instruction] = []
        for chunk in _chunks(sorted(set(der_ids))):
            query = (
                select(instructions)
                .where(
                    and_(
                        i.der_id.in_(chunk),
                        i.status.in_([s.value for s in _LIVE]),
                        i.interval_start <= end,
                        i.interval_end >= start,
                    )
                )
                .order_by(i.issued_at, i.id)
            )
            out.extend(_instruction(r) for r in self.session.execute(query).mappings())
        out.sort(key=lambda x: (x.issued_at, x.id))
        return out

    def instructions(self, instruction_ids: Sequence[str]) -> list[Instruction]:
        out: list[Instruction] = []
        for chunk in _chunks(sorted(set(instruction_ids))):
            query = select(instructions).where(instructions.c.id.in_(chunk))
            out.extend(_instruction(r) for r in self.session.execute(query).mappings())
        return out

    def adjust_instruction(
        self, instruction_id: str, *, p_kw: float, status: InstructionStatus | None, reason: str
    ) -> None:
        row = self.session.execute(select(instructions.c.reason).where(instructions.c.id == instruction_id)).first()
        previous = row[0] if row is not None else None
        values: dict[str, Any] = {"p_kw": p_kw, "reason": f"{previous}; {reason}" if previous else reason}
        if status is not None:
            values["status"] = status
        self.session.execute(update(instructions).where(instructions.c.id == instruction_id).values(**values))
