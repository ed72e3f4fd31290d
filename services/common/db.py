"""Postgres access shared by the services that own tables (memory, policy, ingest).

Each service owns its tables and ships its own ``migrations/NNNN_name.sql`` files; they are
applied at start under an advisory lock, so several replicas starting together apply each
migration exactly once.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg_pool import AsyncConnectionPool

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Fixed key: every service serialises on the same lock, so the bootstrap DDL below never races.
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"avatar.migrations").digest()[:8], "big", signed=True)


async def _configure(conn: psycopg.AsyncConnection) -> None:
    await register_vector_async(conn)


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    """Open a connection pool whose connections understand the pgvector ``vector`` type.

    Call :func:`apply_migrations` first: registering the vector type needs the extension.
    """
    pool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        configure=_configure,
        # Checking a connection before handing it out costs a round trip but means a Postgres
        # restart costs no failed requests: dead connections are replaced, not returned.
        check=AsyncConnectionPool.check_connection,
        reconnect_timeout=300,
        # A caller waits at most this long for a connection, then gets PoolTimeout (UNAVAILABLE):
        # when Postgres is down a fan hears so in seconds rather than at their deadline.
        timeout=2.0,
        open=False,
        kwargs={"autocommit": True},
    )
    await pool.open(wait=True, timeout=30)
    return pool


def list_migrations(migrations_dir: Path) -> list[tuple[int, Path]]:
    """Return ``(version, path)`` for each migration file, in order; reject stray names."""
    found: list[tuple[int, Path]] = []
    for path in sorted(migrations_dir.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path}")
        found.append((int(match.group(1)), path))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {migrations_dir}")
    return found


async def apply_migrations(url: str, component: str, migrations_dir: Path) -> list[int]:
    """Apply the component's pending migrations, each in its own transaction.

    Returns:
        The versions applied by this call (empty when the schema was already current).
    """
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       component text NOT NULL,
                       version integer NOT NULL,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now(),
                       PRIMARY KEY (component, version))"""
            )
            cur = await conn.execute(
                "SELECT version FROM schema_migrations WHERE component = %s", (component,)
            )
            done = {row[0] for row in await cur.fetchall()}
            for version, path in list_migrations(migrations_dir):
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text(encoding="utf-8"))  # type: ignore[arg-type, unused-ignore]
                    await conn.execute(
                        "INSERT INTO schema_migrations (component, version, name) VALUES (%s, %s, %s)",
                        (component, version, path.name),
                    )
                applied_now.append(version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
