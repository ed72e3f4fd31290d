"""The memory store: creators, sources, embedded chunks and fan turns in Postgres with pgvector.

Every read and write names a creator and every query filters by it: one creator's content or fans
never reach another creator's avatar. The schema backs this up (chunks can only reference a source of
the same creator), so a bug here cannot cross tenants silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeAlias, cast
from uuid import UUID

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.common.db import apply_migrations, open_pool
from services.memory.core.errors import InvalidArgument, NotFound
from services.memory.core.types import EMBEDDING_DIM, NewChunk, Role, SearchHit, Turn, WriteResult

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent.parent / "migrations"
"""The memory service's SQL migrations, applied by :func:`open_store`."""

COMPONENT: Final = "memory"
"""Name under which the migrations are recorded in ``schema_migrations``."""

MAX_K: Final = 100
"""Most hits one search may ask for."""

MAX_HISTORY: Final = 1000
"""Most turns one history call may ask for."""

Pool: TypeAlias = AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]
"""The pool type the store runs on (what :func:`services.common.db.open_pool` returns)."""

_CREATOR_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_OPAQUE_ID = 128
_MAX_DISPLAY_NAME = 200
_MAX_INT4 = 2**31 - 1
_ROLES: Final[tuple[Role, ...]] = ("fan", "avatar")


def _show(value: object) -> str:
    # Error messages echo the bad value, but never a megabyte of it.
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_creator_id(creator_id: object) -> str:
    if not isinstance(creator_id, str) or _CREATOR_ID.fullmatch(creator_id) is None:
        raise InvalidArgument(
            f"creator_id must be 1-64 characters from [A-Za-z0-9_.-], got {_show(creator_id)}"
        )
    return creator_id


def _check_text(name: str, value: object, *, allow_empty: bool = False, max_len: int | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidArgument(f"{name} must not be empty")
    if max_len is not None and len(value) > max_len:
        raise InvalidArgument(f"{name} must be at most {max_len} characters, got {len(value)}")
    # Postgres text cannot hold NUL; rejecting it here keeps it a bad request rather than a DataError.
    if "\x00" in value:
        raise InvalidArgument(f"{name} must not contain NUL characters")
    return value


def _check_opaque_id(name: str, value: object) -> str:
    # Fan and conversation ids come from integrators' systems: accept any printable token.
    text = _check_text(name, value, max_len=_MAX_OPAQUE_ID)
    if not text.isprintable() or any(ch.isspace() for ch in text):
        raise InvalidArgument(f"{name} must be printable and contain no whitespace, got {_show(text)}")
    return text


def _check_int(name: str, value: object, *, low: int, high: int) -> int:
    # bool is an int subclass; True as an ordinal is a caller bug, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _check_embedding(name: str, values: object) -> npt.NDArray[np.float32]:
    try:
        arr = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{name} must be a sequence of floats: {exc}") from None
    if arr.ndim != 1 or arr.shape[0] != EMBEDDING_DIM:
        raise InvalidArgument(f"{name} must have {EMBEDDING_DIM} dimensions, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidArgument(f"{name} must contain only finite values")
    # Cosine distance to a zero vector is NaN: it would sort unpredictably and score as NaN.
    if not np.any(arr):
        raise InvalidArgument(f"{name} must not be the zero vector")
    return arr


def _check_timestamp(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidArgument(f"{name} must be a datetime or None, got {type(value).__name__}")
    # A naive datetime would be read in the server's time zone: ambiguous, so refused.
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{name} must be timezone-aware")
    return value


def _check_chunk(index: int, chunk: object) -> npt.NDArray[np.float32]:
    """Validate one chunk; return its embedding as float32."""
    where = f"chunks[{index}]"
    if not isinstance(chunk, NewChunk):
        raise InvalidArgument(f"{where} must be a NewChunk, got {type(chunk).__name__}")
    _check_text(f"{where}.platform", chunk.platform, max_len=64)
    _check_text(f"{where}.external_id", chunk.external_id, max_len=512)
    _check_text(f"{where}.url", chunk.url, allow_empty=True, max_len=4096)
    _check_timestamp(f"{where}.created_at", chunk.created_at)
    _check_text(f"{where}.kind", chunk.kind, max_len=64)
    _check_text(f"{where}.path", chunk.path, allow_empty=True, max_len=4096)
    _check_text(f"{where}.source_hash", chunk.source_hash, max_len=128)
    _check_text(f"{where}.text", chunk.text)
    _check_text(f"{where}.content_hash", chunk.content_hash, max_len=128)
    _check_int(f"{where}.ordinal", chunk.ordinal, low=0, high=_MAX_INT4)
    _check_int(f"{where}.start_char", chunk.start_char, low=0, high=_MAX_INT4)
    _check_int(f"{where}.end_char", chunk.end_char, low=chunk.start_char, high=_MAX_INT4)
    _check_int(f"{where}.token_count", chunk.token_count, low=0, high=_MAX_INT4)
    return _check_embedding(f"{where}.embedding", chunk.embedding)


_SOURCE_FIELDS: Final = ("url", "created_at", "kind", "path", "source_hash")


def _group_sources(chunks: Sequence[NewChunk]) -> dict[tuple[str, str], tuple[int, NewChunk]]:
    """Map each source named in the batch to its first chunk; chunks of one source must agree on it."""
    first: dict[tuple[str, str], tuple[int, NewChunk]] = {}
    for i, chunk in enumerate(chunks):
        key = (chunk.platform, chunk.external_id)
        if key not in first:
            first[key] = (i, chunk)
            continue
        j, other = first[key]
        for name in _SOURCE_FIELDS:
            if getattr(chunk, name) != getattr(other, name):
                raise InvalidArgument(
                    f"chunks[{i}] and chunks[{j}] disagree on {name} of source {key[0]}/{key[1]}"
                )
    return first


# The creator filter sits inside the CTE so the HNSW scan itself is restricted; iterative scanning
# keeps pulling candidates until LIMIT rows pass it. relaxed_order may return the nearest rows slightly
# out of order, so the outer query re-sorts (pgvector's documented pattern) and applies min_score,
# which would otherwise stop the index scan from being an ordered LIMIT scan.
_SEARCH_SQL: Final = """
WITH nearest AS MATERIALIZED (
    SELECT c.id, c.source_id, c.text, c.start_char, c.end_char, c.embedding <=> %(q)s AS distance
    FROM chunks c
    WHERE c.creator_id = %(creator)s
    ORDER BY distance
    LIMIT %(k)s
)
SELECT n.id, n.source_id, n.text, 1 - n.distance AS score, s.platform, s.external_id, s.url,
       s.created_at, s.kind, n.start_char, n.end_char
FROM nearest n
JOIN sources s ON s.id = n.source_id AND s.creator_id = %(creator)s
WHERE 1 - n.distance >= %(min_score)s
ORDER BY n.distance, n.id
"""

# Same as _SEARCH_SQL with a kind filter inside the CTE (kept a separate literal: an
# "IS NULL OR" switch would leave a prepared generic plan unable to use either shape well).
_SEARCH_KINDS_SQL: Final = """
WITH nearest AS MATERIALIZED (
    SELECT c.id, c.source_id, c.text, c.start_char, c.end_char, c.embedding <=> %(q)s AS distance
    FROM chunks c
    WHERE c.creator_id = %(creator)s
      AND c.source_id IN (
          SELECT s.id FROM sources s WHERE s.creator_id = %(creator)s AND s.kind = ANY(%(kinds)s))
    ORDER BY distance
    LIMIT %(k)s
)
SELECT n.id, n.source_id, n.text, 1 - n.distance AS score, s.platform, s.external_id, s.url,
       s.created_at, s.kind, n.start_char, n.end_char
FROM nearest n
JOIN sources s ON s.id = n.source_id AND s.creator_id = %(creator)s
WHERE 1 - n.distance >= %(min_score)s
ORDER BY n.distance, n.id
"""


class MemoryStore:
    """Creator content and fan memory over an async Postgres pool with pgvector.

    Every method validates its arguments and raises :class:`InvalidArgument` for bad input and
    :class:`NotFound` for a missing creator/source, so the server can map them to status codes.

    Args:
        pool: A pool whose connections have the pgvector types registered and run in autocommit
            (what :func:`services.common.db.open_pool` returns); the store closes it in :meth:`close`.
        ef_search: HNSW candidate-list size per search (pgvector's default 40 loses recall; a search
            for ``k`` hits uses ``max(ef_search, k)``), 1..1000.

    Raises:
        InvalidArgument: ``ef_search`` is out of range.
    """

    def __init__(self, pool: Pool, ef_search: int = 100) -> None:
        self._pool = pool
        self._ef_search = _check_int("ef_search", ef_search, low=1, high=1000)

    @property
    def pool(self) -> Pool:
        """The connection pool the store runs on."""
        return self._pool

    async def close(self) -> None:
        """Close the connection pool."""
        await self._pool.close()

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def upsert_creator(self, creator_id: str, display_name: str = "") -> None:
        """Create a creator, or rename an existing one.

        Args:
            creator_id: 1-64 characters from ``[A-Za-z0-9_.-]``.
            display_name: The name to show; an empty name leaves an existing creator's name unchanged.

        Raises:
            InvalidArgument: A malformed id or name.
        """
        _check_creator_id(creator_id)
        _check_text("display_name", display_name, allow_empty=True, max_len=_MAX_DISPLAY_NAME)
        async with self._pool.connection() as conn:
            await conn.execute(
                """INSERT INTO creators (id, display_name) VALUES (%s, %s)
                   ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name
                   WHERE EXCLUDED.display_name <> ''""",
                (creator_id, display_name),
            )

    async def write_chunks(self, creator_id: str, chunks: Sequence[NewChunk]) -> WriteResult:
        """Store a batch of chunks and their sources in one transaction.

        The creator row is created if needed. Sources are upserted by ``(platform, external_id)``.
        A chunk whose content hash the creator already has is skipped and counted unchanged (even if
        that chunk belongs to another source), which makes re-ingesting the same export a no-op.
        When a source's ``source_hash`` differs from the stored one, the source was edited: its
        stored chunks whose hashes are not in this batch are deleted. A source split across several
        calls stays consistent, because only the first call of a new version sees the hash change.

        Args:
            creator_id: The owning creator.
            chunks: The chunks; all chunks of one source must agree on its metadata.

        Returns:
            Counts of inserted and unchanged chunks, new sources, and stale chunks deleted.

        Raises:
            InvalidArgument: A malformed creator id or chunk (wrong embedding width, non-finite or
                zero embedding, empty text, bad offsets, naive timestamp, inconsistent source fields).
        """
        _check_creator_id(creator_id)
        embeddings = [_check_chunk(i, chunk) for i, chunk in enumerate(chunks)]
        if not chunks:
            return WriteResult(chunks_inserted=0, chunks_unchanged=0, sources_inserted=0)
        sources = _group_sources(chunks)
        hashes_by_source: dict[tuple[str, str], list[str]] = {}
        for chunk in chunks:
            hashes_by_source.setdefault((chunk.platform, chunk.external_id), []).append(chunk.content_hash)

        sources_inserted = 0
        chunks_deleted = 0
        source_ids: dict[tuple[str, str], UUID] = {}
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO creators (id) VALUES (%s) ON CONFLICT (id) DO NOTHING", (creator_id,)
            )
            # Sorted so concurrent writers lock shared sources in the same order and cannot deadlock.
            for key in sorted(sources):
                _, src = sources[key]
                cur = await conn.execute(
                    """SELECT id, content_hash FROM sources
                       WHERE creator_id = %s AND platform = %s AND external_id = %s FOR UPDATE""",
                    (creator_id, src.platform, src.external_id),
                )
                existing = await cur.fetchone()
                cur = await conn.execute(
                    """INSERT INTO sources
                           (creator_id, platform, external_id, url, created_at, kind, path, content_hash)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                       ON CONFLICT (creator_id, platform, external_id) DO UPDATE SET
                           url = EXCLUDED.url, created_at = EXCLUDED.created_at, kind = EXCLUDED.kind,
                           path = EXCLUDED.path, content_hash = EXCLUDED.content_hash, ingested_at = now()
                       RETURNING id, (xmax = 0) AS inserted""",
                    (
                        creator_id,
                        src.platform,
                        src.external_id,
                        src.url,
                        src.created_at,
                        src.kind,
                        src.path,
                        src.source_hash,
                    ),
                )
                row = await cur.fetchone()
                assert row is not None  # INSERT .. ON CONFLICT DO UPDATE always returns the row
                source_id, inserted = cast(UUID, row[0]), bool(row[1])
                source_ids[key] = source_id
                sources_inserted += inserted
                if existing is not None and existing[1] != src.source_hash:
                    cur = await conn.execute(
                        """DELETE FROM chunks
                           WHERE creator_id = %s AND source_id = %s AND NOT (content_hash = ANY(%s))""",
                        (creator_id, source_id, hashes_by_source[key]),
                    )
                    chunks_deleted += cur.rowcount

            # Sorted by hash for the same reason: inserts that collide on the unique hash wait on
            # each other, and a consistent order turns a would-be deadlock into a plain wait.
            order = sorted(range(len(chunks)), key=lambda i: chunks[i].content_hash)
            params = [
                (
                    creator_id,
                    source_ids[(chunks[i].platform, chunks[i].external_id)],
                    chunks[i].ordinal,
                    chunks[i].text,
                    chunks[i].start_char,
                    chunks[i].end_char,
                    chunks[i].token_count,
                    chunks[i].content_hash,
                    embeddings[i],
                )
                for i in order
            ]
            async with conn.cursor() as insert_cur:
                await insert_cur.executemany(
                    """INSERT INTO chunks (creator_id, source_id, ordinal, text, start_char, end_char,
                                           token_count, content_hash, embedding)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                       ON CONFLICT (creator_id, content_hash) DO NOTHING""",
                    params,
                )
                # psycopg 3 sums the per-statement row counts over executemany.
                chunks_inserted = insert_cur.rowcount
        return WriteResult(
            chunks_inserted=chunks_inserted,
            chunks_unchanged=len(chunks) - chunks_inserted,
            sources_inserted=sources_inserted,
            chunks_deleted=chunks_deleted,
        )

    async def search(
        self,
        creator_id: str,
        embedding: Sequence[float],
        k: int = 5,
        min_score: float = 0.0,
        kinds: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """Return the creator's chunks nearest to ``embedding`` by cosine similarity, best first.

        Only the creator's own chunks are ever considered. The HNSW index is scanned iteratively,
        so a filter (creator, kinds) that rejects most candidates still yields ``k`` rows when the
        creator has that many.

        Args:
            creator_id: The creator whose content is searched.
            embedding: The query embedding (``EMBEDDING_DIM`` finite floats, not all zero).
            k: Most hits to return, 1..100.
            min_score: Drop hits with cosine similarity below this, in [-1, 1].
            kinds: Only chunks of sources of these kinds; None or empty means all kinds.

        Returns:
            Up to ``k`` hits ordered by descending score (ties by chunk id).

        Raises:
            InvalidArgument: A malformed creator id, embedding, ``k``, ``min_score`` or ``kinds``.
        """
        _check_creator_id(creator_id)
        query = _check_embedding("embedding", embedding)
        _check_int("k", k, low=1, high=MAX_K)
        if (
            isinstance(min_score, bool)
            or not isinstance(min_score, (int, float))
            or not (math.isfinite(min_score) and -1.0 <= min_score <= 1.0)
        ):
            raise InvalidArgument(f"min_score must be a number in [-1, 1], got {_show(min_score)}")
        kind_list: list[str] | None = None
        if kinds is not None:
            # A bare string is a Sequence[str] too; iterating it would filter on single letters.
            if isinstance(kinds, str):
                raise InvalidArgument("kinds must be a sequence of strings, not a string")
            kind_list = sorted({_check_text("kinds[]", kind, max_len=64) for kind in kinds}) or None

        params: dict[str, Any] = {
            "q": query,
            "creator": creator_id,
            "k": k,
            "min_score": float(min_score),
            "kinds": kind_list,
        }
        async with self._pool.connection() as conn, conn.transaction():
            # set_config(..., true) is SET LOCAL with bind parameters: it ends with this transaction,
            # so the pooled connection goes back clean.
            await conn.execute(
                """SELECT set_config('hnsw.ef_search', %s, true),
                          set_config('hnsw.iterative_scan', 'relaxed_order', true)""",
                (str(max(self._ef_search, k)),),
            )
            sql = _SEARCH_SQL if kind_list is None else _SEARCH_KINDS_SQL
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        return [
            SearchHit(
                chunk_id=str(row[0]),
                source_id=str(row[1]),
                creator_id=creator_id,
                text=row[2],
                score=float(row[3]),
                platform=row[4],
                external_id=row[5],
                url=row[6],
                created_at=row[7],
                kind=row[8],
                start_char=row[9],
                end_char=row[10],
            )
            for row in rows
        ]

    async def append_turn(
        self,
        creator_id: str,
        fan_id: str,
        conversation_id: str,
        role: str,
        text: str,
        citations: Sequence[str] = (),
    ) -> Turn:
        """Append one turn to a fan's conversation, creating the conversation on its first turn.

        Concurrent appends to one conversation are serialised on the conversation row, so turn
        order is well defined.

        Args:
            creator_id: The creator whose avatar the fan talks to; must exist.
            fan_id: The fan (an opaque id, 1-128 printable characters without whitespace).
            conversation_id: The conversation (same rules as ``fan_id``); scoped to the fan.
            role: "fan" or "avatar".
            text: What was said (not empty).
            citations: Chunk ids (UUID strings) the turn cites. They are stored as given (normalised),
                not checked against the chunk table, so a source deleted mid-conversation cannot
                make the turn unrecordable.

        Returns:
            The stored turn.

        Raises:
            InvalidArgument: A malformed argument.
            NotFound: The creator does not exist (a deleted creator gets no new data).
        """
        _check_creator_id(creator_id)
        _check_opaque_id("fan_id", fan_id)
        _check_opaque_id("conversation_id", conversation_id)
        if role not in _ROLES:
            raise InvalidArgument(f"role must be one of {', '.join(_ROLES)}, got {_show(role)}")
        _check_text("text", text)
        if isinstance(citations, str):
            raise InvalidArgument("citations must be a sequence of chunk ids, not a string")
        cited: list[str] = []
        for i, citation in enumerate(citations):
            try:
                cited.append(str(UUID(citation)))
            except (TypeError, ValueError, AttributeError):
                raise InvalidArgument(
                    f"citations[{i}] must be a chunk id (UUID), got {_show(citation)}"
                ) from None

        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    """INSERT INTO conversations (creator_id, fan_id, conversation_id, last_ordinal)
                       VALUES (%s, %s, %s, 1)
                       ON CONFLICT (creator_id, fan_id, conversation_id)
                       DO UPDATE SET last_ordinal = conversations.last_ordinal + 1
                       RETURNING last_ordinal""",
                    (creator_id, fan_id, conversation_id),
                )
                row = await cur.fetchone()
                assert row is not None
                cur = await conn.execute(
                    """INSERT INTO turns (creator_id, fan_id, conversation_id, ordinal, role, text, citations)
                       VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING created_at""",
                    (creator_id, fan_id, conversation_id, row[0], role, text, Jsonb(cited)),
                )
                created = await cur.fetchone()
                assert created is not None
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound(f"creator {creator_id!r} does not exist") from None
        return Turn(
            conversation_id=conversation_id,
            role=role,
            text=text,
            citations=tuple(cited),
            created_at=created[0],
        )

    async def history(
        self, creator_id: str, fan_id: str, conversation_id: str | None = None, limit: int = 20
    ) -> list[Turn]:
        """Return a fan's most recent turns with the creator's avatar, oldest first.

        Args:
            creator_id: The creator.
            fan_id: The fan.
            conversation_id: Only this conversation; None means all of the fan's conversations.
            limit: How many of the latest turns to return, 1..1000.

        Returns:
            The last ``limit`` turns in the order they were appended (empty for an unknown fan).

        Raises:
            InvalidArgument: A malformed argument.
        """
        _check_creator_id(creator_id)
        _check_opaque_id("fan_id", fan_id)
        if conversation_id is not None:
            _check_opaque_id("conversation_id", conversation_id)
        _check_int("limit", limit, low=1, high=MAX_HISTORY)
        # Newest `limit` via the (creator_id, fan_id, id DESC) index, then flipped to oldest first.
        # Within a conversation id order equals ordinal order: ordinals are taken under a row lock
        # held until commit, and the id is drawn after the lock.
        async with self._pool.connection() as conn:
            if conversation_id is None:
                cur = await conn.execute(
                    """SELECT conversation_id, role, text, citations, created_at FROM (
                           SELECT id, conversation_id, role, text, citations, created_at FROM turns
                           WHERE creator_id = %s AND fan_id = %s
                           ORDER BY id DESC LIMIT %s) latest
                       ORDER BY id""",
                    (creator_id, fan_id, limit),
                )
            else:
                cur = await conn.execute(
                    """SELECT conversation_id, role, text, citations, created_at FROM (
                           SELECT id, conversation_id, role, text, citations, created_at FROM turns
                           WHERE creator_id = %s AND fan_id = %s AND conversation_id = %s
                           ORDER BY id DESC LIMIT %s) latest
                       ORDER BY id""",
                    (creator_id, fan_id, conversation_id, limit),
                )
            rows = await cur.fetchall()
        return [
            Turn(conversation_id=row[0], role=row[1], text=row[2], citations=tuple(row[3]), created_at=row[4])
            for row in rows
        ]

    async def delete_source(self, creator_id: str, platform: str, external_id: str) -> int:
        """Delete one source and all its chunks.

        Args:
            creator_id: The owning creator.
            platform: The source's platform.
            external_id: The source's platform id.

        Returns:
            How many chunks were deleted.

        Raises:
            InvalidArgument: A malformed argument.
            NotFound: The creator has no such source.
        """
        _check_creator_id(creator_id)
        _check_text("platform", platform, max_len=64)
        _check_text("external_id", external_id, max_len=512)
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """SELECT id FROM sources WHERE creator_id = %s AND platform = %s AND external_id = %s
                   FOR UPDATE""",
                (creator_id, platform, external_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"creator {creator_id!r} has no source {platform}/{external_id}")
            # Explicit rather than left to the cascade, to report the count.
            cur = await conn.execute(
                "DELETE FROM chunks WHERE creator_id = %s AND source_id = %s", (creator_id, row[0])
            )
            deleted = cur.rowcount
            await conn.execute("DELETE FROM sources WHERE id = %s", (row[0],))
        return deleted

    async def delete_creator(self, creator_id: str) -> None:
        """Delete a creator and everything derived from them: sources, chunks, conversations, turns.

        Args:
            creator_id: The creator.

        Raises:
            InvalidArgument: A malformed creator id.
            NotFound: No such creator.
        """
        _check_creator_id(creator_id)
        async with self._pool.connection() as conn:
            # Foreign keys cascade to every creator-owned table, in this one statement.
            cur = await conn.execute("DELETE FROM creators WHERE id = %s", (creator_id,))
            if cur.rowcount == 0:
                raise NotFound(f"creator {creator_id!r} does not exist")

    async def count_chunks(self, creator_id: str) -> int:
        """Return how many chunks the creator has (0 for an unknown creator).

        Raises:
            InvalidArgument: A malformed creator id.
        """
        _check_creator_id(creator_id)
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM chunks WHERE creator_id = %s", (creator_id,))
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def open_store(url: str, *, ef_search: int = 100, min_size: int = 1, max_size: int = 10) -> MemoryStore:
    """Apply the memory migrations, then open a pool and a :class:`MemoryStore` on it.

    Args:
        url: Postgres connection URL (the database must allow ``CREATE EXTENSION vector``).
        ef_search: See :class:`MemoryStore`.
        min_size: Fewest pooled connections.
        max_size: Most pooled connections.

    Returns:
        The store; close it with :meth:`MemoryStore.close` (or use it as an async context manager).
    """
    # Validate before touching the database, so a bad setting fails fast without side effects.
    _check_int("ef_search", ef_search, low=1, high=1000)
    await apply_migrations(url, COMPONENT, MIGRATIONS_DIR)
    pool = await open_pool(url, min_size=min_size, max_size=max_size)
    return MemoryStore(pool, ef_search=ef_search)
