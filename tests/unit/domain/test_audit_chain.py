"""The hash chain detects any edit, deletion or reordering of audit records."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from gridbridge.domain.audit import GENESIS_HASH, AuditEntry, entry_hash, verify_chain


def _chain(n: int) -> list[AuditEntry]:
    entries = []
    prev = GENESIS_HASH
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for seq in range(1, n + 1):
        after = {"value": seq}
        digest = entry_hash(prev, seq, at, "u", "p", "thing.change", "thing", str(seq), None, after)
        entries.append(AuditEntry(seq, at, "u", "p", "thing.change", "thing", str(seq), None, after, prev, digest))
        prev = digest
        at += timedelta(seconds=1)
    return entries


def test_intact_chain_verifies() -> None:
    check = verify_chain(_chain(5))
    assert check.ok
    assert check.records_checked == 5


def test_edited_record_is_named() -> None:
    entries = _chain(5)
    entries[2] = dataclasses.replace(entries[2], after={"value": 999})
    check = verify_chain(entries)
    assert not check.ok
    assert check.first_broken_seq == 3
    assert "hash" in (check.problem or "")


def test_deleted_record_is_named() -> None:
    entries = _chain(5)
    del entries[1]
    check = verify_chain(entries)
    assert check.first_broken_seq == 3


def test_rehashed_edit_breaks_the_next_link() -> None:
    entries = _chain(4)
    victim = entries[1]
    forged_after = {"value": -1}
    forged_hash = entry_hash(
        victim.prev_hash,
        victim.seq,
        victim.at,
        victim.actor_user_id,
        victim.actor_participant_id,
        victim.action,
        victim.entity_type,
        victim.entity_id,
        victim.before,
        forged_after,
    )
    entries[1] = dataclasses.replace(victim, after=forged_after, hash=forged_hash)
    check = verify_chain(entries)
    assert check.first_broken_seq == 3
    assert "prev_hash" in (check.problem or "")
