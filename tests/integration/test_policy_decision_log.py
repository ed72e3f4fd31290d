"""The background decision log against real Postgres: order, drain on stop, retries, backpressure.

The database is made slow or failing for real: another session holds a lock on the log table, so
the writer's insert waits inside Postgres, and the waiting backend is terminated (what a failover
or a restart does to an open connection).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import psycopg
import pytest

from services.policy.core.decision_log import DecisionWriter
from services.policy.core.decisions import Action, Decision, Reason, Stage
from services.policy.core.records import DecisionLogEntry
from services.policy.core.store import PolicyStore, open_store

pytestmark = pytest.mark.timeout(60)


def refusal(n: int) -> Decision:
    return Decision(Action.REFUSE, (Reason("blocked_topic", f"message {n}", "family"),), "Not that.")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PolicyStore]:
    opened = await open_store(database_url, max_size=2)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """A second session, outside the store's pool, that locks the log table and watches it."""
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        yield conn
    finally:
        await conn.close()


async def lock_log(admin: psycopg.AsyncConnection) -> psycopg.AsyncConnection:
    """Block inserts into the decision log until the returned session commits."""
    holder = await psycopg.AsyncConnection.connect(admin.info.dsn, password=admin.info.password)
    await holder.execute("LOCK TABLE policy_decisions IN EXCLUSIVE MODE")
    return holder


async def insert_waiting(admin: psycopg.AsyncConnection, exclude: Sequence[int] = ()) -> int:
    """The pid of the writer's insert once it waits for the lock (polls; the test timeout bounds it).

    ``exclude``: backends already terminated, which pg_stat_activity may still list for a moment
    (taking one of them for the retry's insert would leave that insert waiting for ever).
    """
    while True:
        cur = await admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO policy_decisions%%' "
            "AND NOT pid = ANY(%s)",
            (list(exclude),),
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0])
        await asyncio.sleep(0.01)


async def until(condition: Callable[[], bool]) -> None:
    """Poll until ``condition`` holds (the test timeout bounds it)."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.01)


async def logged(admin: psycopg.AsyncConnection) -> list[tuple[str, str, str, str, int | None]]:
    cur = await admin.execute(
        "SELECT creator_id, stage, action, reasons->0->>'detail', controls_version "
        "FROM policy_decisions ORDER BY id"
    )
    return [tuple(r) for r in await cur.fetchall()]  # type: ignore[misc]


async def test_decisions_are_written_in_order_with_their_time(
    store: PolicyStore, admin: psycopg.AsyncConnection
) -> None:
    writer = DecisionWriter(store)
    before = datetime.now(UTC)
    for n in range(3):
        await writer.put("maya", Stage.OUTPUT if n else Stage.INPUT, refusal(n), controls_version=n)
    await writer.close()
    assert await logged(admin) == [
        ("maya", "input", "refuse", "message 0", 0),
        ("maya", "output", "refuse", "message 1", 1),
        ("maya", "output", "refuse", "message 2", 2),
    ]
    cur = await admin.execute("SELECT min(created_at) FROM policy_decisions")
    row = await cur.fetchone()
    assert row is not None and row[0] >= before
    assert (writer.written, writer.retries, writer.lost) == (3, 0, 0)


async def test_close_waits_until_every_queued_decision_is_written(
    store: PolicyStore, admin: psycopg.AsyncConnection
) -> None:
    writer = DecisionWriter(store, max_batch=2)
    holder = await lock_log(admin)
    for n in range(5):
        await writer.put("maya", Stage.OUTPUT, refusal(n), controls_version=1)
    await insert_waiting(admin)
    closing = asyncio.ensure_future(writer.close())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not closing.done(), "close returned while decisions were still unwritten"
    assert await logged(admin) == []
    await holder.commit()
    await holder.close()
    await closing
    assert [row[3] for row in await logged(admin)] == [f"message {n}" for n in range(5)]
    assert writer.written == 5
    with pytest.raises(RuntimeError, match="closed"):
        await writer.put("maya", Stage.OUTPUT, refusal(9), controls_version=1)


async def test_a_full_queue_makes_the_caller_wait_instead_of_dropping(
    store: PolicyStore, admin: psycopg.AsyncConnection
) -> None:
    writer = DecisionWriter(store, max_pending=2, max_batch=1)
    holder = await lock_log(admin)
    await writer.put("maya", Stage.OUTPUT, refusal(0), controls_version=1)
    await insert_waiting(admin)  # the writer holds decision 0 and waits on the lock
    await writer.put("maya", Stage.OUTPUT, refusal(1), controls_version=1)
    await writer.put("maya", Stage.OUTPUT, refusal(2), controls_version=1)
    blocked = asyncio.ensure_future(writer.put("maya", Stage.OUTPUT, refusal(3), controls_version=1))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not blocked.done(), "put returned although the queue was full"
    assert writer.pending == 2
    await holder.commit()
    await holder.close()
    await blocked
    await writer.close()
    assert [row[3] for row in await logged(admin)] == [f"message {n}" for n in range(4)]
    assert (writer.written, writer.lost) == (4, 0)


async def test_a_dropped_connection_is_retried_and_the_decision_written_once(
    store: PolicyStore, admin: psycopg.AsyncConnection
) -> None:
    writer = DecisionWriter(store, attempts=3, backoff_s=0.01)
    holder = await lock_log(admin)
    await writer.put("maya", Stage.OUTPUT, refusal(0), controls_version=1)
    pid = await insert_waiting(admin)
    await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await until(lambda: writer.retries == 1)
    # The retry runs on a fresh connection and waits on the lock again.
    await insert_waiting(admin, [pid])  # the retry, on another connection, waits for the lock too
    await holder.commit()
    await holder.close()
    await writer.close()
    assert [row[3] for row in await logged(admin)] == ["message 0"]
    assert (writer.written, writer.retries, writer.lost) == (1, 1, 0)


async def test_a_write_that_keeps_failing_is_logged_and_the_writer_goes_on(
    store: PolicyStore, admin: psycopg.AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="services.policy.core.decision_log")
    writer = DecisionWriter(store, attempts=2, backoff_s=0.01)
    holder = await lock_log(admin)
    await writer.put("maya", Stage.INPUT, refusal(0), controls_version=4)
    terminated: list[int] = []
    for _ in range(2):
        pid = await insert_waiting(admin, terminated)
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        terminated.append(pid)
    await until(lambda: writer.lost == 1)
    await holder.commit()
    await holder.close()
    # The writer survived: the next decision is written.
    await writer.put("maya", Stage.OUTPUT, refusal(1), controls_version=4)
    await writer.close()
    assert [row[3] for row in await logged(admin)] == ["message 1"]
    assert (writer.written, writer.retries, writer.lost) == (1, 1, 1)
    unwritten = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        "unwritten policy decision: creator=maya stage=input action=refuse reasons=['blocked_topic'] "
        "controls_version=4" in m
        for m in unwritten
    ), unwritten


async def test_a_rejected_write_is_not_retried(store: PolicyStore, admin: psycopg.AsyncConnection) -> None:
    writer = DecisionWriter(store, attempts=5, backoff_s=0.01)
    # A negative controls version breaks the table's CHECK: retrying cannot help.
    await writer.put("maya", Stage.OUTPUT, refusal(0), controls_version=-1)
    await writer.put("maya", Stage.OUTPUT, refusal(1), controls_version=1)
    await writer.close()
    # Both went in one batch; the database rejected it, so each was tried alone, once.
    assert [row[3] for row in await logged(admin)] == ["message 1"]
    assert (writer.written, writer.retries, writer.lost) == (1, 0, 1)


class CountingSink:
    """Records the size of every batch before handing it to the store."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store
        self.batches: list[int] = []

    async def record_decisions(self, entries: Sequence[DecisionLogEntry]) -> None:
        self.batches.append(len(entries))
        await self.store.record_decisions(entries)


async def test_decisions_of_the_next_moments_share_one_transaction(
    store: PolicyStore, admin: psycopg.AsyncConnection
) -> None:
    sink = CountingSink(store)
    writer = DecisionWriter(sink, linger_s=0.2)
    for n in range(4):  # the sentences of one reply, a few milliseconds apart
        await writer.put("maya", Stage.OUTPUT, refusal(n), controls_version=1)
        await asyncio.sleep(0.005)
    await until(lambda: writer.written == 4)
    assert sink.batches == [4]
    await writer.close()
    assert [row[3] for row in await logged(admin)] == [f"message {n}" for n in range(4)]


async def test_close_does_not_wait_out_the_linger(store: PolicyStore, admin: psycopg.AsyncConnection) -> None:
    writer = DecisionWriter(store, linger_s=30)
    await writer.put("maya", Stage.OUTPUT, refusal(0), controls_version=1)
    await asyncio.sleep(0.01)  # the writer has taken the decision and lingers
    await asyncio.wait_for(writer.close(), 5)
    assert [row[3] for row in await logged(admin)] == ["message 0"]
