"""The audit chain in the database: appends serialise, so concurrent writers never fork the chain."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from gridbridge.domain.audit import verify_chain
from gridbridge.store import schema
from gridbridge.store.database import make_engine, session_factory
from gridbridge.store.uow import SqlUnitOfWork


def test_concurrent_appends_keep_one_chain(database_url: str) -> None:
    engine = make_engine(database_url)
    schema.upgrade(engine)
    factory = session_factory(engine)
    failures: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(15):
                with SqlUnitOfWork(factory) as uow:
                    uow.audit.append(
                        at=datetime(2026, 1, 1, tzinfo=UTC),
                        actor_user_id=name,
                        actor_participant_id=name,
                        action="test.append",
                        entity_type="thing",
                        entity_id=f"{name}-{i}",
                        before=None,
                        after={"i": i, "x": 0.1},
                    )
                    uow.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with SqlUnitOfWork(factory) as uow:
        entries = list(uow.audit.entries())
        check = verify_chain(entries)
    assert check.ok, check.problem
    assert check.records_checked == 45
    assert [e.seq for e in entries] == list(range(1, 46))
    engine.dispose()


def test_rolled_back_append_leaves_no_trace(database_url: str) -> None:
    engine = make_engine(database_url)
    schema.upgrade(engine)
    factory = session_factory(engine)
    with SqlUnitOfWork(factory) as uow:
        uow.audit.append(
            at=datetime(2026, 1, 1, tzinfo=UTC),
            actor_user_id="u",
            actor_participant_id="p",
            action="test.append",
            entity_type="thing",
            entity_id="1",
            before=None,
            after=None,
        )
        # leaving without commit rolls back
    with SqlUnitOfWork(factory) as uow:
        assert list(uow.audit.entries()) == []
    engine.dispose()
