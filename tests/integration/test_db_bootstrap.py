"""The migration runner against a real Postgres with pgvector."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from services.common.db import apply_migrations, list_migrations, open_pool


async def test_migrations_apply_once_in_order(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (id int primary key, v vector(3));")
    (tmp_path / "0002_second.sql").write_text("ALTER TABLE a ADD COLUMN note text;")
    assert await apply_migrations(database_url, "demo", tmp_path) == [1, 2]
    assert await apply_migrations(database_url, "demo", tmp_path) == []
    pool = await open_pool(database_url)
    try:
        async with pool.connection() as conn:
            await conn.execute("INSERT INTO a VALUES (1, '[1,2,3]', 'x')")
            cur = await conn.execute("SELECT v, note FROM a")
            row = await cur.fetchone()
        assert row is not None
        assert row[0].to_list() == [1.0, 2.0, 3.0]
        assert row[1] == "x"
    finally:
        await pool.close()


async def test_failed_migration_rolls_back_and_is_retried(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE b (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE c (id int); SELECT no_such_function();")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        await apply_migrations(database_url, "demo", tmp_path)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('c')").fetchone() == (None,)
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert versions == [(1,)]
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE c (id int);")
    assert await apply_migrations(database_url, "demo", tmp_path) == [2]


def test_migration_names_are_validated(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("")
    with pytest.raises(ValueError, match=r"0001_name\.sql"):
        list_migrations(tmp_path)
