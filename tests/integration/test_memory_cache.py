"""The Redis search-result cache: hits, invalidation by content version, fail-open; the embedding cache."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import psycopg
import pytest

from services.common.redis_cache import SEARCH_PREFIX, EmbeddingCache, RedisSearchCache, connect
from services.memory.core import MemoryStore, open_store
from tests.integration.test_memory_store import chunk, unit

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store(database_url: str, redis_url: str, redis_client: Any) -> AsyncIterator[MemoryStore]:
    cache = RedisSearchCache(connect(redis_url), ttl_seconds=60)
    s = await open_store(database_url, cache=cache)
    try:
        yield s
    finally:
        await s.close()
        await cache.close()


async def search_ids(store: MemoryStore, **kwargs: Any) -> tuple[list[str], bool]:
    result = await store.search_result("chef", unit(1), k=10, min_score=-1.0, query="bread", **kwargs)
    return [h.external_id for h in result.hits], result.from_cache


async def test_repeated_search_is_served_from_cache(store: MemoryStore, redis_client: Any) -> None:
    await store.write_chunks("chef", [chunk("rye bread", unit(1), external_id="a")])
    first = await store.search_result("chef", unit(1), k=5, query="bread")
    again = await store.search_result("chef", unit(1), k=5, query="bread")
    assert (first.from_cache, again.from_cache) == (False, True)
    assert again.hits == first.hits
    assert len(await redis_client.keys(SEARCH_PREFIX + "*")) == 1
    # Any parameter change is a different entry.
    assert (await store.search_result("chef", unit(1), k=4, query="bread")).from_cache is False
    assert (await store.search_result("chef", unit(1), k=5, query="bread!")).from_cache is False
    assert (await store.search_result("chef", unit(1, 0.1), k=5, query="bread")).from_cache is False
    assert (await store.search_result("chef", unit(1), k=5, query="bread", mode="vector")).from_cache is False
    assert len(await redis_client.keys(SEARCH_PREFIX + "*")) == 5


async def test_a_deleted_chunk_is_never_served_from_cache(store: MemoryStore) -> None:
    await store.write_chunks(
        "chef",
        [chunk("rye bread", unit(1), external_id="a"), chunk("corn bread", unit(1, 1), external_id="b")],
    )
    assert await search_ids(store) == (["a", "b"], False)
    assert await search_ids(store) == (["a", "b"], True)

    assert await store.delete_source("chef", "instagram", "a") == 1
    assert await search_ids(store) == (["b"], False)
    assert await search_ids(store) == (["b"], True)

    # New content is visible at once too.
    await store.write_chunks("chef", [chunk("banana bread", unit(1), external_id="c")])
    assert await search_ids(store) == (["c", "b"], False)


async def test_changes_made_around_the_store_invalidate_too(store: MemoryStore, database_url: str) -> None:
    await store.write_chunks("chef", [chunk("rye bread", unit(1), external_id="a")])
    assert await search_ids(store) == (["a"], False)
    assert await search_ids(store) == (["a"], True)
    # A manual fix-up in SQL (as an operator would): the trigger moves the content version.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM chunks WHERE creator_id = 'chef'")
    assert await search_ids(store) == ([], False)


async def test_source_metadata_change_invalidates(store: MemoryStore) -> None:
    await store.write_chunks("chef", [chunk("rye bread", unit(1), external_id="a", kind="post")])
    hits = await store.search("chef", unit(1), k=5, query="bread")
    assert [h.kind for h in hits] == ["post"]
    # Same chunk, the source re-ingested as a caption.
    await store.write_chunks(
        "chef", [chunk("rye bread", unit(1), external_id="a", kind="caption", source_hash="v2")]
    )
    result = await store.search_result("chef", unit(1), k=5, query="bread")
    assert ([h.kind for h in result.hits], result.from_cache) == (["caption"], False)


async def test_recreated_creator_never_sees_its_old_cache(store: MemoryStore) -> None:
    await store.write_chunks("chef", [chunk("rye bread", unit(1), external_id="a")])
    assert await search_ids(store) == (["a"], False)
    await store.delete_creator("chef")
    assert await search_ids(store) == ([], False)
    await store.write_chunks("chef", [chunk("corn bread", unit(1), external_id="b")])
    assert await search_ids(store) == (["b"], False)


async def test_databases_sharing_a_redis_do_not_share_entries(
    store: MemoryStore, server_url: str, redis_url: str
) -> None:
    other_db = "t_cache_other"
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{other_db}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{other_db}"')
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    info["dbname"] = other_db
    other_url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    try:
        cache = RedisSearchCache(connect(redis_url))
        async with await open_store(other_url, cache=cache) as other:
            await store.write_chunks("chef", [chunk("rye bread", unit(1), external_id="a")])
            await other.write_chunks("chef", [chunk("corn bread", unit(1), external_id="b")])
            # Same creator id, same (first) content version value in both databases.
            assert await search_ids(store) == (["a"], False)
            assert await search_ids(other) == (["b"], False)
            assert await search_ids(other) == (["b"], True)
        await cache.close()
    finally:
        async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{other_db}" WITH (FORCE)')


def dead_redis_url() -> str:
    # A port nothing listens on: bind, read the port, close.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_search_fails_open_when_redis_is_down(database_url: str) -> None:
    cache = RedisSearchCache(connect(dead_redis_url()))
    async with await open_store(database_url, cache=cache) as store:
        await store.write_chunks("chef", [chunk("rye bread", unit(1), external_id="a")])
        assert await search_ids(store) == (["a"], False)
        assert await search_ids(store) == (["a"], False)
    await cache.close()


async def test_embedding_cache_round_trip_and_fail_open(redis_url: str, redis_client: Any) -> None:
    cache = EmbeddingCache(connect(redis_url), ttl_seconds=60)
    vec = np.asarray(unit(1, 2, 3), dtype=np.float32)
    assert await cache.get("minilm", "what camera?") is None
    await cache.put("minilm", "what camera?", vec)
    got = await cache.get("minilm", "what camera?")
    assert got is not None and got.dtype == np.float32
    assert np.array_equal(got, vec)
    assert await cache.get("minilm-v2", "what camera?") is None  # the model is part of the key
    assert await cache.get("minilm", "what camera") is None
    assert await redis_client.ttl(EmbeddingCache.key("minilm", "what camera?")) in range(1, 61)

    down = EmbeddingCache(connect(dead_redis_url()))
    await down.put("minilm", "x", vec)
    assert await down.get("minilm", "x") is None
