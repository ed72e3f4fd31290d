"""Tenant isolation enforced by Postgres row-level security, not only by the store's SQL.

The embedded Postgres connects as a superuser, which bypasses RLS; the store runs every query as the
NOLOGIN role ``avatar_tenant`` with ``app.creator_id`` set. These tests craft raw SQL for creator A
and run it the way the store does, under creator B's identity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import psycopg
import pytest
from psycopg.rows import TupleRow

from services.memory.core import MemoryStore, open_store
from tests.integration.test_memory_store import chunk, unit

pytestmark = pytest.mark.timeout(60)

TABLES = ("creators", "sources", "chunks", "conversations", "turns", "creator_personas", "fans", "fan_facts")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[MemoryStore]:
    s = await open_store(database_url)
    try:
        for creator in ("alice", "bob"):
            await s.write_chunks(
                creator, [chunk(f"{creator} secret recipe", unit(1), external_id=f"{creator}-1")]
            )
            await s.append_turn(creator, "fan-1", "c1", "fan", f"hi {creator}, my name is Sam")
            await s.put_persona(creator, {"tone": creator})
        yield s
    finally:
        await s.close()


async def as_tenant(conn: psycopg.AsyncConnection[TupleRow], creator_id: str | None) -> None:
    await conn.execute("SET LOCAL ROLE avatar_tenant")
    if creator_id is not None:
        await conn.execute("SELECT set_config('app.creator_id', %s, true)", (creator_id,))


async def count_as(
    store: MemoryStore, creator_id: str | None, sql: str, params: tuple[object, ...] = ()
) -> int:
    async with store.pool.connection() as conn, conn.transaction():
        await as_tenant(conn, creator_id)
        cur = await conn.execute(sql, params)
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_query_for_alice_under_bobs_identity_returns_nothing(store: MemoryStore) -> None:
    for table in TABLES:
        column = "id" if table == "creators" else "creator_id"
        crafted = f"SELECT count(*) FROM {table} WHERE {column} = 'alice'"
        assert await count_as(store, "bob", crafted) == 0, table
        assert await count_as(store, "alice", crafted) == 1, table
        # No filter at all: only the tenant's own rows exist.
        assert await count_as(store, "bob", f"SELECT count(*) FROM {table}") == 1, table
    # The exact nearest-neighbour query the store would run for alice, but as bob: nothing.
    nearest = """SELECT count(*) FROM (SELECT id FROM chunks WHERE creator_id = 'alice'
                 ORDER BY embedding <=> %s LIMIT 10) n"""
    query = np.asarray(unit(1), dtype=np.float32)
    assert await count_as(store, "bob", nearest, (query,)) == 0
    assert await count_as(store, "alice", nearest, (query,)) == 1


async def test_no_creator_set_sees_nothing(store: MemoryStore) -> None:
    for table in TABLES:
        assert await count_as(store, None, f"SELECT count(*) FROM {table}") == 0, table
        assert await count_as(store, "", f"SELECT count(*) FROM {table}") == 0, table


async def test_writes_across_tenants_are_refused(store: MemoryStore) -> None:
    async with store.pool.connection() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            async with conn.transaction():
                await as_tenant(conn, "bob")
                await conn.execute(
                    """INSERT INTO conversations (creator_id, fan_id, conversation_id)
                       VALUES ('alice', 'fan-1', 'planted')"""
                )
        # Updates and deletes of another tenant's rows silently match nothing.
        async with conn.transaction():
            await as_tenant(conn, "bob")
            cur = await conn.execute("UPDATE chunks SET text = 'pwned' WHERE creator_id = 'alice'")
            assert cur.rowcount == 0
            cur = await conn.execute("DELETE FROM turns WHERE creator_id = 'alice'")
            assert cur.rowcount == 0
    hits = await store.search("alice", unit(1), k=5)
    assert [h.text for h in hits] == ["alice secret recipe"]
    assert len(await store.history("alice", "fan-1")) == 1


async def test_store_api_stays_inside_the_tenant(store: MemoryStore) -> None:
    assert [h.text for h in await store.search("bob", unit(1), k=10, min_score=-1, query="alice secret")] == [
        "bob secret recipe"
    ]
    assert (await store.get_persona("bob")).profile == {"tone": "bob"}
    assert [f.value for f in (await store.fan_memory("bob", "fan-1")).facts] == ["Sam"]
    await store.forget_fan("bob", "fan-1")
    assert len(await store.history("alice", "fan-1")) == 1
    await store.delete_creator("bob")
    assert await store.count_chunks("alice") == 1


async def test_the_tenant_role_is_not_privileged(store: MemoryStore) -> None:
    async with store.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'avatar_tenant'"
        )
        assert await cur.fetchone() == (False, False, False)
        cur = await conn.execute(
            """SELECT relname FROM pg_class
               WHERE relname = ANY(%s) AND relrowsecurity AND relforcerowsecurity ORDER BY relname""",
            ([*TABLES, "fan_summaries"],),
        )
        assert [r[0] for r in await cur.fetchall()] == sorted([*TABLES, "fan_summaries"])


async def test_text_candidate_function_applies_the_tenant_rule(store: MemoryStore) -> None:
    # memory_text_candidates runs as its owner (for the GIN index, see 0003_*.sql), so it must apply
    # the tenant rule itself: alice's words searched under bob's identity find nothing of alice's.
    crafted = "SELECT count(*) FROM memory_text_candidates('alice & secret', NULL, NULL, NULL, NULL, 100)"
    assert await count_as(store, "bob", crafted) == 0
    assert await count_as(store, None, crafted) == 0
    assert await count_as(store, "alice", crafted) == 1
    assert await count_as(store, "bob", crafted.replace("alice", "bob")) == 1
