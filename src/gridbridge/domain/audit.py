"""The append-only audit trail: each record is hash-chained to the one before it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """One state change: who did what to which object, the state before and after, and when."""

    seq: int
    at: datetime
    actor_user_id: str
    actor_participant_id: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str


def canonical(value: Any) -> str:
    """Serialise ``value`` to canonical JSON (sorted keys, no spaces) for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor_user_id: str,
    actor_participant_id: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> str:
    """SHA-256 over the previous hash and the canonical form of every field of the record."""
    body = canonical(
        [
            seq,
            at.isoformat(),
            actor_user_id,
            actor_participant_id,
            action,
            entity_type,
            entity_id,
            before,
            after,
        ]
    )
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """Result of checking the audit chain."""

    records_checked: int
    first_broken_seq: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        """True when every record's hash and link are intact."""
        return self.first_broken_seq is None


def verify_chain(entries: Iterable[AuditEntry]) -> ChainCheck:
    """Walk the records in sequence order and report the first one whose link or hash does not hold."""
    prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            return ChainCheck(count, entry.seq, f"sequence gap: expected {expected_seq}, found {entry.seq}")
        if entry.prev_hash != prev:
            return ChainCheck(count, entry.seq, "prev_hash does not match the previous record's hash")
        recomputed = entry_hash(
            prev,
            entry.seq,
            entry.at,
            entry.actor_user_id,
            entry.actor_participant_id,
            entry.action,
            entry.entity_type,
            entry.entity_id,
            entry.before,
            entry.after,
        )
        if recomputed != entry.hash:
            return ChainCheck(count, entry.seq, "record content does not match its hash")
        prev = entry.hash
        expected_seq += 1
    return ChainCheck(count, None, None)
