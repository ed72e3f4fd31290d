"""The memory store against a real Postgres with pgvector (fresh database per test)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from services.common.db import apply_migrations
from services.memory.core import (
    EMBEDDING_DIM,
    MIGRATIONS_DIR,
    InvalidArgument,
    MemoryStore,
    NewChunk,
    NotFound,
    open_store,
)
from services.memory.core.search_sql import search_sql
from services.memory.core.types import SearchFilters

pytestmark = pytest.mark.timeout(60)

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def unit(*axes: float) -> list[float]:
    """A normalised vector with the given leading components (the rest zero)."""
    v = np.zeros(EMBEDDING_DIM)
    v[: len(axes)] = axes
    return list(v / np.linalg.norm(v))


def random_unit(rng: np.random.Generator) -> list[float]:
    v = rng.standard_normal(EMBEDDING_DIM)
    return list(v / np.linalg.norm(v))


def chunk(
    text: str,
    embedding: Sequence[float],
    *,
    external_id: str = "post-1",
    kind: str = "post",
    ordinal: int = 0,
    source_hash: str = "src-v1",
    **overrides: Any,
) -> NewChunk:
    """A chunk factory: the content hash is the text, so equal texts are duplicates."""
    fields: dict[str, Any] = dict(
        platform="instagram",
        external_id=external_id,
        url=f"https://instagram.com/p/{external_id}",
        created_at=WHEN,
        kind=kind,
        path=f"posts/{external_id}.json",
        source_hash=source_hash,
        ordinal=ordinal,
        text=text,
        start_char=0,
        end_char=len(text),
        token_count=len(text.split()),
        content_hash=f"h:{text}",
        embedding=embedding,
    )
    fields.update(overrides)
    return NewChunk(**fields)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[MemoryStore]:
    s = await open_store(database_url)
    try:
        yield s
    finally:
        await s.close()


async def test_migrations_create_indexes_and_fts(database_url: str, store: MemoryStore) -> None:
    assert await apply_migrations(database_url, "memory", MIGRATIONS_DIR) == []  # already applied
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'")
        indexes: dict[str, str] = dict(await cur.fetchall())
    hnsw = indexes["chunks_embedding_hnsw"]
    assert "USING hnsw (embedding vector_cosine_ops)" in hnsw
    assert "m='16'" in hnsw and "ef_construction='64'" in hnsw
    assert "USING gin (tsv)" in indexes["chunks_tsv_gin"]
    # The unique hash constraint doubles as the creator_id index.
    assert "(creator_id, content_hash)" in indexes["chunks_creator_content_hash"]

    await store.write_chunks("chef", [chunk("Sunday #mealprep with the Canon R50", unit(1))])
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM chunks WHERE tsv @@ to_tsquery('simple', 'r50')")
        assert await cur.fetchone() == (1,)


async def test_write_is_idempotent(store: MemoryStore) -> None:
    batch = [
        chunk("first", unit(1), external_id="a", ordinal=0),
        chunk("second", unit(0, 1), external_id="a", ordinal=1),
        chunk("third", unit(0, 0, 1), external_id="b"),
    ]
    first = await store.write_chunks("chef", batch)
    assert (first.chunks_inserted, first.chunks_unchanged, first.sources_inserted) == (3, 0, 2)
    again = await store.write_chunks("chef", batch)
    assert (again.chunks_inserted, again.chunks_unchanged, again.sources_inserted) == (0, 3, 0)
    assert again.chunks_deleted == 0
    assert await store.count_chunks("chef") == 3
    # A duplicate inside one batch is stored once.
    dup = await store.write_chunks("chef", [chunk("fourth", unit(1, 1)), chunk("fourth", unit(1, 1))])
    assert (dup.chunks_inserted, dup.chunks_unchanged) == (1, 1)


async def test_edited_source_replaces_its_stale_chunks(store: MemoryStore) -> None:
    await store.write_chunks("chef", [chunk("old intro", unit(1)), chunk("kept", unit(0, 1), ordinal=1)])
    edited = [
        chunk("kept", unit(0, 1), source_hash="src-v2"),
        chunk("new ending", unit(0, 0, 1), source_hash="src-v2", ordinal=1),
    ]
    result = await store.write_chunks("chef", edited)
    assert result == dataclasses.replace(result, chunks_inserted=1, chunks_unchanged=1, chunks_deleted=1)
    assert result.sources_inserted == 0
    hits = await store.search("chef", unit(1), k=10, min_score=-1.0)
    assert sorted(h.text for h in hits) == ["kept", "new ending"]


async def test_search_nearest_first_with_exact_scores(store: MemoryStore) -> None:
    await store.write_chunks(
        "chef",
        [
            chunk("same", unit(1), external_id="p1"),
            chunk("diagonal", unit(1, 1), external_id="p2", kind="video", created_at=None, url=""),
            chunk("orthogonal", unit(0, 1), external_id="p3"),
            chunk("opposite", unit(-1), external_id="p4"),
        ],
    )
    hits = await store.search("chef", unit(1), k=10, min_score=-1.0)
    assert [h.text for h in hits] == ["same", "diagonal", "orthogonal", "opposite"]
    assert [h.score for h in hits] == pytest.approx([1.0, 1 / math.sqrt(2), 0.0, -1.0], abs=1e-6)
    top = hits[1]
    assert (top.creator_id, top.platform, top.external_id, top.kind) == ("chef", "instagram", "p2", "video")
    assert (top.url, top.created_at, top.start_char, top.end_char) == ("", None, 0, len("diagonal"))
    assert hits[0].created_at == WHEN
    assert len({h.source_id for h in hits}) == 4
    assert [h.text for h in await store.search("chef", unit(1), k=2)] == ["same", "diagonal"]


async def test_min_score_filters(store: MemoryStore) -> None:
    await store.write_chunks(
        "chef",
        [chunk("same", unit(1)), chunk("diagonal", unit(1, 1)), chunk("opposite", unit(-1))],
    )
    assert [h.text for h in await store.search("chef", unit(1), k=10)] == ["same", "diagonal"]
    assert [h.text for h in await store.search("chef", unit(1), k=10, min_score=0.8)] == ["same"]
    assert await store.search("chef", unit(0, 0, 1), k=10, min_score=0.1) == []


async def test_kinds_filter(store: MemoryStore) -> None:
    await store.write_chunks(
        "chef",
        [
            chunk("post", unit(1), external_id="p1", kind="post"),
            chunk("video", unit(1, 0.5), external_id="v1", kind="transcript"),
            chunk("qa", unit(1, 1), external_id="q1", kind="qa"),
        ],
    )
    only = await store.search("chef", unit(1), k=10, kinds=["transcript"])
    assert [h.text for h in only] == ["video"]
    two = await store.search("chef", unit(1), k=10, kinds=["qa", "post", "qa"])
    assert [h.text for h in two] == ["post", "qa"]
    assert len(await store.search("chef", unit(1), k=10, kinds=[])) == 3
    assert await store.search("chef", unit(1), k=10, kinds=["nope"]) == []


async def test_creator_isolation(store: MemoryStore) -> None:
    rng = np.random.default_rng(7)
    secret = random_unit(rng)
    await store.write_chunks("alice", [chunk("alice secret", secret), chunk("shared text", unit(1))])
    # Same text (same content hash) under another creator is that creator's own chunk.
    written = await store.write_chunks(
        "bob", [chunk("bob post", random_unit(rng)), chunk("shared text", unit(1))]
    )
    assert written.chunks_inserted == 2
    hits = await store.search("bob", secret, k=100, min_score=-1.0)
    assert {h.text for h in hits} == {"bob post", "shared text"}
    assert {h.creator_id for h in hits} == {"bob"}
    assert await store.search("carol", secret, k=100, min_score=-1.0) == []
    assert [h.text for h in await store.search("alice", secret, k=1)] == ["alice secret"]


async def test_filtered_search_fills_k_through_the_hnsw_index(database_url: str) -> None:
    """A small creator next to a big one still gets k hits when the HNSW index drives the scan.

    Without iterative scanning this returns 0 rows: the ef_search=40 candidates are all "big".
    """
    rng = np.random.default_rng(42)
    query = np.asarray(random_unit(rng))
    big = []
    for i in range(1000):
        # Near the query: these crowd every candidate list.
        v = query + 0.3 * rng.standard_normal(EMBEDDING_DIM) / math.sqrt(EMBEDDING_DIM)
        big.append(chunk(f"big {i}", list(v / np.linalg.norm(v)), external_id=f"b{i}"))
    small = [chunk(f"small {i}", random_unit(rng), external_id=f"s{i}") for i in range(30)]
    async with await open_store(database_url) as writer:
        await writer.write_chunks("big", big)
        await writer.write_chunks("small", small)

    # Force the plan under test: at this size the planner rightly prefers an exact scan of the
    # creator's rows; without the creator indexes and with seq scans off, only HNSW is left.
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("ALTER TABLE chunks DROP CONSTRAINT chunks_creator_content_hash")
        await conn.execute("DROP INDEX chunks_source_id")
        await conn.execute(f'ALTER DATABASE "{dbname}" SET enable_seqscan = off')
    async with await open_store(database_url, ef_search=40) as store:
        async with store.pool.connection() as conn, conn.transaction():
            # Under the tenant role, as the store runs it: row-level security must not cost the index.
            await conn.execute("SET LOCAL ROLE avatar_tenant")
            await conn.execute("SELECT set_config('app.creator_id', 'small', true)")
            cur = await conn.execute(
                "EXPLAIN " + search_sql("vector", SearchFilters(), with_text=False),
                {"q": query.astype(np.float32), "creator": "small", "n": 10, "tsq": None},
            )
            plan = "\n".join(row[0] for row in await cur.fetchall())
        assert "Index Scan using chunks_embedding_hnsw" in plan

        hits = await store.search("small", list(query), k=10, min_score=-1.0, mode="vector")
    expected = sorted(small, key=lambda c: -float(np.dot(c.embedding, query)))[:10]
    assert [h.text for h in hits] == [c.text for c in expected]


async def test_history_order_and_limit(store: MemoryStore) -> None:
    await store.upsert_creator("chef", "Chef Ana")
    cid = "00000000-0000-4000-8000-000000000001"
    script = [
        ("c1", "fan", "hi"),
        ("c1", "avatar", "hello!"),
        ("c2", "fan", "new topic"),
        ("c1", "fan", "back again"),
        ("c2", "avatar", "sure"),
    ]
    for conv, role, text in script:
        cites = [cid.upper()] if role == "avatar" else []
        await store.append_turn("chef", "fan-1", conv, role, text, cites)
    await store.append_turn("chef", "fan-2", "c1", "fan", "other fan")

    everything = await store.history("chef", "fan-1")
    assert [t.text for t in everything] == [text for _, _, text in script]
    assert [t.created_at for t in everything] == sorted(t.created_at for t in everything)
    assert everything[1].citations == (cid,)  # normalised to lower case
    assert everything[0].citations == ()
    assert [t.text for t in await store.history("chef", "fan-1", limit=2)] == ["back again", "sure"]
    c1 = await store.history("chef", "fan-1", conversation_id="c1")
    assert [(t.conversation_id, t.role, t.text) for t in c1] == [s for s in script if s[0] == "c1"]
    assert [t.text for t in await store.history("chef", "fan-2")] == ["other fan"]
    assert await store.history("chef", "fan-3") == []


async def test_concurrent_appends_get_distinct_ordinals(store: MemoryStore) -> None:
    await store.upsert_creator("chef")
    await asyncio.gather(*(store.append_turn("chef", "f", "c", "fan", f"m{i}") for i in range(20)))
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT ordinal FROM turns ORDER BY id")
        ordinals = [row[0] for row in await cur.fetchall()]
    assert ordinals == list(range(1, 21))
    assert len(await store.history("chef", "f", limit=1000)) == 20


async def test_upsert_creator_keeps_name_unless_given(store: MemoryStore) -> None:
    await store.upsert_creator("chef", "Chef Ana")
    await store.upsert_creator("chef")
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT display_name FROM creators WHERE id = 'chef'")
        assert await cur.fetchone() == ("Chef Ana",)
    await store.upsert_creator("chef", "Ana")
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT display_name FROM creators WHERE id = 'chef'")
        assert await cur.fetchone() == ("Ana",)


async def test_append_turn_needs_an_existing_creator(store: MemoryStore) -> None:
    with pytest.raises(NotFound, match="ghost"):
        await store.append_turn("ghost", "f", "c", "fan", "hello?")


async def test_delete_source(store: MemoryStore) -> None:
    await store.write_chunks(
        "chef",
        [
            chunk("a1", unit(1), external_id="a"),
            chunk("a2", unit(1, 1), external_id="a", ordinal=1),
            chunk("b1", unit(0, 1), external_id="b"),
        ],
    )
    assert await store.delete_source("chef", "instagram", "a") == 2
    assert await store.count_chunks("chef") == 1
    assert [h.text for h in await store.search("chef", unit(1), k=10, min_score=-1.0)] == ["b1"]
    with pytest.raises(NotFound, match="instagram/a"):
        await store.delete_source("chef", "instagram", "a")
    with pytest.raises(NotFound):
        await store.delete_source("other", "instagram", "b")  # b belongs to chef
    assert await store.delete_source("chef", "instagram", "b") == 1
    assert await store.count_chunks("chef") == 0
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM sources")
        assert await cur.fetchone() == (0,)


async def test_delete_creator_removes_everything_derived(store: MemoryStore) -> None:
    for creator in ("chef", "coach"):
        await store.write_chunks(creator, [chunk("x", unit(1)), chunk("y", unit(0, 1), external_id="2")])
        await store.append_turn(creator, "f", "c", "fan", "hi")
    await store.delete_creator("chef")
    assert await store.count_chunks("chef") == 0
    assert await store.history("chef", "f") == []
    assert await store.search("chef", unit(1), k=10, min_score=-1.0) == []
    async with store.pool.connection() as conn:
        for table in ("creators", "sources", "chunks", "conversations", "turns"):
            where = "id" if table == "creators" else "creator_id"
            cur = await conn.execute(f"SELECT count(*) FROM {table} WHERE {where} = 'chef'")
            assert await cur.fetchone() == (0,), table
    assert await store.count_chunks("coach") == 2
    assert len(await store.history("coach", "f")) == 1
    with pytest.raises(NotFound, match="chef"):
        await store.delete_creator("chef")


GOOD = unit(1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.count_chunks(""), "creator_id"),
        (lambda s: s.count_chunks("x" * 65), "creator_id"),
        (lambda s: s.count_chunks("has space"), "creator_id"),
        (lambda s: s.count_chunks("émile"), "creator_id"),
        (lambda s: s.upsert_creator("chef", "a\x00b"), "NUL"),
        (lambda s: s.search("chef", GOOD[:-1], k=5), "384 dimensions"),
        (lambda s: s.search("chef", [math.nan] * EMBEDDING_DIM), "finite"),
        (lambda s: s.search("chef", [0.0] * EMBEDDING_DIM), "zero vector"),
        (lambda s: s.search("chef", ["a"] * EMBEDDING_DIM), "floats"),
        (lambda s: s.search("chef", GOOD, k=0), "k must be in"),
        (lambda s: s.search("chef", GOOD, k=101), "k must be in"),
        (lambda s: s.search("chef", GOOD, min_score=1.5), "min_score"),
        (lambda s: s.search("chef", GOOD, kinds="post"), "kinds"),
        (lambda s: s.write_chunks("chef", [chunk("t", GOOD[:10])]), r"chunks\[0\].embedding"),
        (lambda s: s.write_chunks("chef", [chunk(" ", GOOD)]), r"chunks\[0\].text"),
        (lambda s: s.write_chunks("chef", [chunk("t", GOOD, end_char=-1)]), "end_char"),
        (lambda s: s.write_chunks("chef", [chunk("t", GOOD, ordinal=True)]), "ordinal"),
        (lambda s: s.write_chunks("chef", [chunk("t", GOOD, created_at=datetime(2024, 1, 1))]), "timezone"),
        (
            lambda s: s.write_chunks("chef", [chunk("t", GOOD), chunk("u", GOOD, kind="video")]),
            "disagree on kind",
        ),
        (lambda s: s.append_turn("chef", "f", "c", "system", "hi"), "role"),
        (lambda s: s.append_turn("chef", "f", "c", "fan", ""), "text"),
        (lambda s: s.append_turn("chef", "f", "c d", "fan", "hi"), "conversation_id"),
        (lambda s: s.append_turn("chef", "f", "c", "avatar", "hi", ["nope"]), r"citations\[0\]"),
        (lambda s: s.history("chef", "f", limit=0), "limit"),
        (lambda s: s.delete_source("chef", "", "x"), "platform"),
    ],
)
async def test_bad_input_raises_invalid_argument(call: Any, message: str) -> None:
    # A never-opened pool: validation must reject the call before any database access (a call
    # that reached the pool would fail with PoolClosed instead, and this test with it).
    store = MemoryStore(AsyncConnectionPool("", open=False))
    with pytest.raises(InvalidArgument, match=message):
        await call(store)


def test_invalid_argument_is_a_value_error_and_ef_search_is_checked() -> None:
    assert issubclass(InvalidArgument, ValueError)
    assert issubclass(NotFound, LookupError)
    with pytest.raises(InvalidArgument, match="ef_search"):
        MemoryStore(AsyncConnectionPool("", open=False), ef_search=0)
