"""``gridbridge audit verify`` on a province built through the real services (issue 2, item 4).

The command reads ``GRIDBRIDGE_DATABASE_URL``; the tests tamper with one ``audit_records`` row by raw SQL, as an
attacker with database access would, and expect the command to exit 1 naming that record's ``seq``.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

from gridbridge.cli.main import app
from gridbridge.domain.audit import entry_hash
from registry_province import Province, build_province


@pytest.fixture
def province(database_url: str) -> Province:
    return build_province(database_url)


def verify(province: Province) -> Result:
    url = province.platform.engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(app, ["audit", "verify"], env={"GRIDBRIDGE_DATABASE_URL": url})


def records(province: Province) -> list[tuple[int, str]]:
    """``(seq, action)`` of every audit record, in chain order."""
    with province.platform.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, action FROM audit_records ORDER BY seq"))
        return [(int(seq), str(action)) for seq, action in rows]


def tamper(province: Province, sql: str, **params: object) -> None:
    with province.platform.engine.begin() as conn:
        changed = conn.execute(text(sql), params)
        assert changed.rowcount == 1


def a_commission_record(province: Province) -> int:
    """The seq of a record in the middle of the chain (the first DER commissioning)."""
    chain = records(province)
    seq = next(seq for seq, action in chain if action == "der.commission")
    assert 1 < seq < chain[-1][0]
    return seq


def test_intact_chain_is_reported_with_its_length(province: Province) -> None:
    result = verify(province)
    assert result.exit_code == 0, result.output
    count = len(records(province))
    assert count > 20
    assert f"audit chain intact: {count} records" in result.output


def test_forged_actor_is_named_by_seq(province: Province) -> None:
    seq = a_commission_record(province)
    tamper(
        province,
        "UPDATE audit_records SET actor_participant_id = :who WHERE seq = :seq",
        who=province.ids["regulator"],
        seq=seq,
    )
    result = verify(province)
    assert result.exit_code == 1, result.output
    assert f"audit chain broken at record {seq}:" in " ".join(result.output.split())
    assert "content does not match its hash" in result.output


def test_rewritten_after_state_is_named_by_seq(province: Province) -> None:
    seq = a_commission_record(province)
    cast = "CAST(:after AS JSON)" if province.platform.engine.dialect.name == "postgresql" else ":after"
    forged = json.dumps({"status": "retired"})
    tamper(province, f"UPDATE audit_records SET after = {cast} WHERE seq = :seq", after=forged, seq=seq)
    result = verify(province)
    assert result.exit_code == 1, result.output
    assert f"audit chain broken at record {seq}:" in " ".join(result.output.split())


def test_deleted_record_breaks_the_chain_at_the_gap(province: Province) -> None:
    seq = a_commission_record(province)
    tamper(province, "DELETE FROM audit_records WHERE seq = :seq", seq=seq)
    result = verify(province)
    assert result.exit_code == 1, result.output
    flat = " ".join(result.output.split())
    assert f"audit chain broken at record {seq + 1}:" in flat
    assert f"expected {seq}" in flat


def test_rehashed_record_still_breaks_the_link_to_the_next(province: Province) -> None:
    """A forger who recomputes the tampered record's own hash is caught by the next record's prev_hash."""
    seq = a_commission_record(province)
    with province.platform.unit_of_work() as uow:
        entry = next(e for e in uow.audit.entries() if e.seq == seq)
    forged_after = {**(entry.after or {}), "status": "retired"}
    digest = entry_hash(
        entry.prev_hash,
        entry.seq,
        entry.at,
        entry.actor_user_id,
        entry.actor_participant_id,
        entry.action,
        entry.entity_type,
        entry.entity_id,
        entry.before,
        forged_after,
    )
    cast = "CAST(:after AS JSON)" if province.platform.engine.dialect.name == "postgresql" else ":after"
    tamper(
        province,
        f"UPDATE audit_records SET after = {cast}, hash = :hash WHERE seq = :seq",
        after=json.dumps(forged_after),
        hash=digest,
        seq=seq,
    )
    result = verify(province)
    assert result.exit_code == 1, result.output
    flat = " ".join(result.output.split())
    assert f"audit chain broken at record {seq + 1}:" in flat
    assert "prev_hash" in flat
