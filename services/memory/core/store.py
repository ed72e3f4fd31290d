"""The memory store: creators, sources, embedded chunks and fan turns in Postgres with pgvector.

Every read and write names a creator and every query filters by it: one creator's content or fans
never reach another creator's avatar. The schema backs this up (chunks can only reference a source of
the same creator), so a bug here cannot cross tenants silently.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
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
from services.memory.core.cache import SearchCache, dump_hits, load_hits, search_key
from services.memory.core.errors import Conflict, InvalidArgument, NotFound
from services.memory.core.fan_memory import (
    FACT_KEY,
    MAX_FACT_VALUE,
    SummaryTurn,
    extract_facts,
    fold_summary,
)
from services.memory.core.fusion import Candidate, fuse, query_terms, tsquery_text
from services.memory.core.search_sql import search_sql
from services.memory.core.types import (
    EMBEDDING_DIM,
    Conversation,
    ConversationPage,
    FanFact,
    FanMemory,
    NewChunk,
    PersonaProfile,
    Role,
    SearchFilters,
    SearchHit,
    SearchMode,
    SearchResult,
    Turn,
    TurnPage,
    WriteResult,
)

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
_MAX_INT8 = 2**63 - 1
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


_TENANT_ROLE: Final = "avatar_tenant"
"""The non-superuser role every tenant query runs as; row-level security confines it to one creator."""

_ENTER_TENANT: Final = (
    "SELECT set_config('role', 'avatar_tenant', true), set_config('app.creator_id', %s, true)"
)
# hnsw settings ride on the same round trip for searches.
_ENTER_TENANT_SEARCH: Final = (
    "SELECT set_config('role', 'avatar_tenant', true), set_config('app.creator_id', %s, true), "
    "set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)"
)

_MAX_FACT_KEYS = 64
_MAX_PROFILE_BYTES = 256 * 1024
_MODES: Final[tuple[SearchMode, ...]] = ("hybrid", "vector", "text")

MAX_CANDIDATES: Final = 200
"""Most candidates each retriever contributes to a hybrid search."""


def _check_str_list(name: str, values: object, *, max_len: int) -> tuple[str, ...]:
    # A bare string is a Sequence[str] too; iterating it would filter on single letters.
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidArgument(f"{name} must be a sequence of strings, not {type(values).__name__}")
    return tuple(sorted({_check_text(f"{name}[]", v, max_len=max_len) for v in values}))


def _check_filters(filters: object) -> SearchFilters:
    if filters is None:
        return SearchFilters()
    if not isinstance(filters, SearchFilters):
        raise InvalidArgument(f"filters must be SearchFilters, got {type(filters).__name__}")
    after = _check_timestamp("filters.published_after", filters.published_after)
    before = _check_timestamp("filters.published_before", filters.published_before)
    if after is not None and before is not None and after >= before:
        raise InvalidArgument("filters.published_after must be earlier than filters.published_before")
    return SearchFilters(
        platforms=_check_str_list("filters.platforms", filters.platforms, max_len=64),
        kinds=_check_str_list("filters.kinds", filters.kinds, max_len=64),
        published_after=after,
        published_before=before,
    )


def _encode_token(kind: str, payload: list[Any]) -> str:
    raw = json.dumps([kind, *payload], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(kind: str, token: object, arity: int) -> list[Any] | None:
    """Payload of a page token of ``kind`` ("" -> None); anything else malformed is InvalidArgument."""
    if not isinstance(token, str):
        raise InvalidArgument(f"page_token must be a string, got {type(token).__name__}")
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (ValueError, binascii.Error):
        decoded = None
    if not isinstance(decoded, list) or len(decoded) != arity + 1 or decoded[0] != kind:
        raise InvalidArgument("page_token is malformed (pass back a next_page_token unchanged)")
    return decoded[1:]


def _turn(row: Sequence[Any], fan_id: str) -> Turn:
    return Turn(
        conversation_id=row[0],
        role=row[1],
        text=row[2],
        citations=tuple(row[3]),
        created_at=row[4],
        turn_id=int(row[5]),
        fan_id=fan_id,
    )


class MemoryStore:
    """Creator content and fan memory over an async Postgres pool with pgvector.

    Every method validates its arguments and raises :class:`InvalidArgument` for bad input and
    :class:`NotFound` for a missing creator/source, so the server can map them to status codes.

    Every query runs inside a transaction as the role ``avatar_tenant`` with ``app.creator_id`` set to
    the creator named in the call; the row-level security policies of migration 0002 then hide every
    other creator's rows from it, whatever the SQL says. The explicit ``creator_id = ...`` conditions
    in the SQL remain, for the planner (index choice) and as a second line.

    Args:
        pool: A pool whose connections have the pgvector types registered and run in autocommit
            (what :func:`services.common.db.open_pool` returns); the store closes it in :meth:`close`.
        ef_search: HNSW candidate-list size per search (pgvector's default 40 loses recall; a search
            uses ``max(ef_search, candidates)``), 1..1000.
        cache: Where hot search results are cached (None: no caching).
        instance: The database's identity (``memory_instance.id``), part of every cache key.
        summary_window: Turns per fan kept verbatim; older ones are folded into the rolling summary.
        acquire_timeout: Seconds to wait for a pooled connection. Bounded so that a Postgres outage
            fails calls promptly (``PoolTimeout``, mapped to UNAVAILABLE) instead of holding them for
            the pool's default 30 s; three tries by a caller's retry policy fit in its 10 s deadline.

    Raises:
        InvalidArgument: ``ef_search`` or ``summary_window`` is out of range.
    """

    def __init__(
        self,
        pool: Pool,
        ef_search: int = 100,
        *,
        cache: SearchCache | None = None,
        instance: str = "",
        summary_window: int = 20,
        acquire_timeout: float = 2.0,
    ) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self._ef_search = _check_int("ef_search", ef_search, low=1, high=1000)
        self._summary_window = _check_int("summary_window", summary_window, low=1, high=MAX_HISTORY)
        self._cache = cache
        self._instance = instance

    @property
    def pool(self) -> Pool:
        """The connection pool the store runs on."""
        return self._pool

    @property
    def summary_window(self) -> int:
        """Turns per fan kept verbatim before they are folded into the summary."""
        return self._summary_window

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

    @asynccontextmanager
    async def _tenant(self, creator_id: str) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        """A connection in a transaction confined (by row-level security) to one creator's rows."""
        async with self._pool.connection(timeout=self._acquire_timeout) as conn, conn.transaction():
            # set_config(..., true) is SET LOCAL with bind parameters: it ends with the transaction,
            # so the pooled connection goes back as its login role with no creator set.
            await conn.execute(_ENTER_TENANT, (creator_id,))
            yield conn

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
        async with self._tenant(creator_id) as conn:
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
        async with self._tenant(creator_id) as conn:
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
                # The embedding is bound in binary (%b): pgvector's text form costs ~0.5 ms of Python
                # per 384-d vector, as much as the rest of a chunk's write.
                await insert_cur.executemany(
                    """INSERT INTO chunks (creator_id, source_id, ordinal, text, start_char, end_char,
                                           token_count, content_hash, embedding)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %b)
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
        *,
        query: str = "",
        filters: SearchFilters | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[SearchHit]:
        """Return the creator's chunks most relevant to a query, best first.

        Same as :meth:`search_result` (see there for the arguments), without the cache flag.

        Raises:
            InvalidArgument: A malformed creator id, embedding, ``k``, ``min_score``, filter or mode.
        """
        result = await self.search_result(
            creator_id, embedding, k, min_score, kinds, query=query, filters=filters, mode=mode
        )
        return result.hits

    async def search_result(
        self,
        creator_id: str,
        embedding: Sequence[float],
        k: int = 5,
        min_score: float = 0.0,
        kinds: Sequence[str] | None = None,
        *,
        query: str = "",
        filters: SearchFilters | None = None,
        mode: SearchMode = "hybrid",
    ) -> SearchResult:
        """Return the creator's chunks most relevant to a query, best first, and whether cached.

        Hybrid by default: the nearest chunks by cosine similarity (HNSW index, iterative scan so
        filters still yield enough rows) and the best full-text matches of ``query``'s content words
        are fused by reciprocal rank fusion (:func:`services.memory.core.fusion.fuse`). Every
        candidate must reach ``min_score`` cosine similarity, so an unrelated query returns nothing,
        even when some words match. Only the creator's own chunks are ever considered, by the SQL and
        by row-level security.

        Results are cached (when a cache is configured) under the creator's content version, read in
        the same transaction *before* searching: the search's snapshot is at least as new as that
        version, so an entry never holds content older than its key claims, and any later change
        to the content moves the creator to a new version, i.e. to keys nothing was cached under.

        Args:
            creator_id: The creator whose content is searched.
            embedding: The query embedding (``EMBEDDING_DIM`` finite floats, not all zero).
            k: Most hits to return, 1..100.
            min_score: Drop hits with cosine similarity below this, in [-1, 1].
            kinds: Only chunks of sources of these kinds (merged into ``filters.kinds``); None or empty
                means all kinds.
            query: The query text, for the full-text side ("" or only stop words: vector side only).
            filters: Platform, kind and publication-time filters.
            mode: "hybrid", or "vector" / "text" for one retriever alone (evaluation, debugging).

        Returns:
            Up to ``k`` hits. Hybrid: by descending fused score (ties by cosine, then chunk id);
            vector: by descending cosine; text: by full-text rank. ``from_cache`` says whether they
            were served from the result cache.

        Raises:
            InvalidArgument: A malformed creator id, embedding, ``k``, ``min_score``, filter or mode.
        """
        _check_creator_id(creator_id)
        vector = _check_embedding("embedding", embedding)
        _check_int("k", k, low=1, high=MAX_K)
        if (
            isinstance(min_score, bool)
            or not isinstance(min_score, (int, float))
            or not (math.isfinite(min_score) and -1.0 <= min_score <= 1.0)
        ):
            raise InvalidArgument(f"min_score must be a number in [-1, 1], got {_show(min_score)}")
        _check_text("query", query, allow_empty=True, max_len=10_000)
        if mode not in _MODES:
            raise InvalidArgument(f"mode must be one of {', '.join(_MODES)}, got {_show(mode)}")
        checked = _check_filters(filters)
        extra_kinds = _check_str_list("kinds", kinds, max_len=64)
        if extra_kinds:
            checked = dataclasses.replace(checked, kinds=tuple(sorted({*checked.kinds, *extra_kinds})))

        terms = query_terms(query)
        tsq = tsquery_text(terms)
        # The vector side alone is the plain top-k (what recall is measured on); fused, each side
        # proposes more than k so that a chunk ranked well by both can rise above either list's tail.
        n = k if mode == "vector" else min(max(2 * k, 20), MAX_CANDIDATES)
        params: dict[str, Any] = {
            "q": vector,
            "creator": creator_id,
            "n": n,
            "tsq": tsq,
            "platforms": list(checked.platforms),
            "kinds": list(checked.kinds),
            "platforms_or_null": list(checked.platforms) or None,
            "kinds_or_null": list(checked.kinds) or None,
            "published_after": checked.published_after,
            "published_before": checked.published_before,
        }
        sql = search_sql(mode, checked, with_text=tsq is not None)

        key: str | None = None
        async with self._pool.connection(timeout=self._acquire_timeout) as conn, conn.transaction():
            await conn.execute(_ENTER_TENANT_SEARCH, (creator_id, str(max(self._ef_search, n))))
            if self._cache is not None:
                cur = await conn.execute("SELECT content_version FROM creators WHERE id = %s", (creator_id,))
                version_row = await cur.fetchone()
                if version_row is None:
                    # No such creator (or not visible to this tenant): nothing to find.
                    return SearchResult(hits=[], from_cache=False)
                key = search_key(
                    self._instance,
                    creator_id,
                    int(version_row[0]),
                    query=query,
                    embedding=vector,
                    k=k,
                    min_score=float(min_score),
                    filters=checked,
                    mode=mode,
                )
                cached = await self._cache.get(key)
                if cached is not None:
                    hits = load_hits(cached)
                    if hits is not None:
                        return SearchResult(hits=hits, from_cache=True)
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        hits = _rank(rows, creator_id, mode=mode, k=k, min_score=float(min_score))
        if key is not None and self._cache is not None:
            await self._cache.set(key, dump_hits(hits))
        return SearchResult(hits=hits, from_cache=False)

    async def append_turn(
        self,
        creator_id: str,
        fan_id: str,
        conversation_id: str,
        role: str,
        text: str,
        citations: Sequence[str] = (),
    ) -> Turn:
        """Append one turn to a fan's conversation, creating the fan and conversation on first use.

        In the same transaction, a fan turn's self-descriptions ("my name is Sam", "I'm vegan") are
        stored as facts (:func:`services.memory.core.fan_memory.extract_facts`), and turns that leave
        the verbatim window of :attr:`summary_window` turns are folded into the fan's rolling summary.
        Appends of one fan are serialised on the fan's row, so turn order, ordinals and the summary
        are well defined under concurrency.

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

        async with self._tenant(creator_id) as conn:
            await self._lock_fan(conn, creator_id, fan_id)
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
                   VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING created_at, id""",
                (creator_id, fan_id, conversation_id, row[0], role, text, Jsonb(cited)),
            )
            created = await cur.fetchone()
            assert created is not None
            if role == "fan":
                facts = extract_facts(text)
                if facts:
                    await self._upsert_facts(
                        conn, creator_id, fan_id, [(f.key, f.value) for f in facts], "extracted"
                    )
            await self._roll_summary(conn, creator_id, fan_id)
        return Turn(
            conversation_id=conversation_id,
            role=role,
            text=text,
            citations=tuple(cited),
            created_at=created[0],
            turn_id=int(created[1]),
            fan_id=fan_id,
        )

    async def _lock_fan(self, conn: psycopg.AsyncConnection[TupleRow], creator_id: str, fan_id: str) -> None:
        """Create the fan row if needed and lock it until the transaction ends."""
        try:
            await conn.execute(
                "INSERT INTO fans (creator_id, fan_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (creator_id, fan_id),
            )
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound(f"creator {creator_id!r} does not exist") from None
        await conn.execute(
            "SELECT 1 FROM fans WHERE creator_id = %s AND fan_id = %s FOR UPDATE", (creator_id, fan_id)
        )

    async def _upsert_facts(
        self,
        conn: psycopg.AsyncConnection[TupleRow],
        creator_id: str,
        fan_id: str,
        facts: Sequence[tuple[str, str]],
        origin: str,
    ) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO fan_facts (creator_id, fan_id, key, value, origin) VALUES (%s, %s, %s, %s, %s)
                   ON CONFLICT (creator_id, fan_id, key) DO UPDATE SET
                       value = EXCLUDED.value, origin = EXCLUDED.origin, updated_at = clock_timestamp()""",
                [(creator_id, fan_id, key, value, origin) for key, value in facts],
            )

    async def _roll_summary(
        self, conn: psycopg.AsyncConnection[TupleRow], creator_id: str, fan_id: str
    ) -> None:
        """Fold the fan's turns older than the verbatim window, not yet summarised, into the summary."""
        cur = await conn.execute(
            """SELECT summary, covers_through_turn_id, turns_covered FROM fan_summaries
               WHERE creator_id = %s AND fan_id = %s""",
            (creator_id, fan_id),
        )
        current = await cur.fetchone()
        summary, covered, count = ("", 0, 0) if current is None else (current[0], current[1], current[2])
        # Newest first through the history index: skip the window, the rest is what must be folded
        # (usually one turn, the one that just left the window).
        cur = await conn.execute(
            """SELECT id, role, text FROM turns
               WHERE creator_id = %s AND fan_id = %s AND id > %s
               ORDER BY id DESC OFFSET %s""",
            (creator_id, fan_id, covered, self._summary_window),
        )
        leaving = list(reversed(await cur.fetchall()))
        if not leaving:
            return
        new_summary = fold_summary(summary, [SummaryTurn(role=r[1], text=r[2]) for r in leaving])
        await conn.execute(
            """INSERT INTO fan_summaries (creator_id, fan_id, summary, covers_through_turn_id, turns_covered)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (creator_id, fan_id) DO UPDATE SET
                   summary = EXCLUDED.summary, covers_through_turn_id = EXCLUDED.covers_through_turn_id,
                   turns_covered = EXCLUDED.turns_covered, updated_at = clock_timestamp()""",
            (creator_id, fan_id, new_summary, leaving[-1][0], count + len(leaving)),
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
        return (await self.history_page(creator_id, fan_id, conversation_id, limit)).turns

    async def history_page(
        self,
        creator_id: str,
        fan_id: str,
        conversation_id: str | None = None,
        limit: int = 20,
        page_token: str = "",
    ) -> TurnPage:
        """One page of a fan's turns, walking back in time from the newest.

        Args:
            creator_id: The creator.
            fan_id: The fan.
            conversation_id: Only this conversation; None means all of the fan's conversations.
            limit: Turns per page, 1..1000.
            page_token: "" for the newest page, else a ``next_page_token`` from the previous page.

        Returns:
            The page (turns oldest first) and the token of the page before it ("" at the beginning).

        Raises:
            InvalidArgument: A malformed argument or page token.
        """
        _check_creator_id(creator_id)
        _check_opaque_id("fan_id", fan_id)
        if conversation_id is not None:
            _check_opaque_id("conversation_id", conversation_id)
        _check_int("limit", limit, low=1, high=MAX_HISTORY)
        cursor = _decode_token("turns", page_token, 1)
        before = _MAX_INT8 if cursor is None else cursor[0]
        if not isinstance(before, int) or isinstance(before, bool):
            raise InvalidArgument("page_token is malformed (pass back a next_page_token unchanged)")
        # Newest `limit + 1` before the cursor via the (creator_id, fan_id, id DESC) index: the extra
        # row only tells whether an older page exists. Within a conversation id order equals ordinal
        # order: ordinals are taken under a row lock held until commit, and the id is drawn after it.
        conv_clause = "" if conversation_id is None else " AND conversation_id = %(conv)s"
        async with self._tenant(creator_id) as conn:
            cur = await conn.execute(
                f"""SELECT conversation_id, role, text, citations, created_at, id FROM turns
                    WHERE creator_id = %(creator)s AND fan_id = %(fan)s AND id < %(before)s{conv_clause}
                    ORDER BY id DESC LIMIT %(limit)s""",
                {
                    "creator": creator_id,
                    "fan": fan_id,
                    "before": before,
                    "conv": conversation_id,
                    "limit": limit + 1,
                },
            )
            rows = await cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        turns = [_turn(row, fan_id) for row in reversed(rows)]
        token = _encode_token("turns", [turns[0].turn_id]) if more and turns else ""
        return TurnPage(turns=turns, next_page_token=token)

    async def list_conversations(
        self, creator_id: str, fan_id: str | None = None, limit: int = 20, page_token: str = ""
    ) -> ConversationPage:
        """One page of a creator's conversations (all fans, or one), most recently started first.

        Args:
            creator_id: The creator.
            fan_id: Only this fan's conversations; None means every fan's.
            limit: Conversations per page, 1..1000.
            page_token: "" for the first page, else a ``next_page_token``.

        Returns:
            The page and the token of the next one ("" when this is the last).

        Raises:
            InvalidArgument: A malformed argument or page token.
        """
        _check_creator_id(creator_id)
        if fan_id is not None:
            _check_opaque_id("fan_id", fan_id)
        _check_int("limit", limit, low=1, high=MAX_HISTORY)
        cursor = _decode_token("conversations", page_token, 3)
        params: dict[str, Any] = {"creator": creator_id, "fan": fan_id, "limit": limit + 1}
        where = "c.creator_id = %(creator)s"
        if fan_id is not None:
            where += " AND c.fan_id = %(fan)s"
        if cursor is not None:
            try:
                params["at"] = datetime.fromisoformat(cursor[0])
            except (TypeError, ValueError):
                raise InvalidArgument(
                    "page_token is malformed (pass back a next_page_token unchanged)"
                ) from None
            params["cfan"], params["cconv"] = str(cursor[1]), str(cursor[2])
            # Keyset pagination on (created_at DESC, fan_id, conversation_id): stable under inserts.
            where += (
                " AND (c.created_at < %(at)s OR (c.created_at = %(at)s AND"
                " (c.fan_id, c.conversation_id) > (%(cfan)s, %(cconv)s)))"
            )
        async with self._tenant(creator_id) as conn:
            cur = await conn.execute(
                f"""SELECT c.fan_id, c.conversation_id, c.created_at, c.last_ordinal, last.created_at
                    FROM conversations c
                    CROSS JOIN LATERAL (
                        SELECT t.created_at FROM turns t
                        WHERE t.creator_id = c.creator_id AND t.fan_id = c.fan_id
                          AND t.conversation_id = c.conversation_id AND t.ordinal = c.last_ordinal) last
                    WHERE {where}
                    ORDER BY c.created_at DESC, c.fan_id, c.conversation_id
                    LIMIT %(limit)s""",
                params,
            )
            rows = await cur.fetchall()
        more = len(rows) > limit
        page = [
            Conversation(
                fan_id=r[0], conversation_id=r[1], created_at=r[2], turn_count=r[3], last_turn_at=r[4]
            )
            for r in rows[:limit]
        ]
        token = ""
        if more:
            last = page[-1]
            token = _encode_token(
                "conversations", [last.created_at.isoformat(), last.fan_id, last.conversation_id]
            )
        return ConversationPage(conversations=page, next_page_token=token)

    async def fan_memory(self, creator_id: str, fan_id: str, recent: int | None = None) -> FanMemory:
        """What the avatar remembers about a fan: facts, the rolling summary and the latest turns.

        Args:
            creator_id: The creator.
            fan_id: The fan.
            recent: How many latest turns to include verbatim, 0..1000 (None: :attr:`summary_window`).

        Returns:
            The fan's memory (all empty for a fan the avatar never met, or one that was forgotten).

        Raises:
            InvalidArgument: A malformed argument.
        """
        _check_creator_id(creator_id)
        _check_opaque_id("fan_id", fan_id)
        count = (
            self._summary_window if recent is None else _check_int("recent", recent, low=0, high=MAX_HISTORY)
        )
        async with self._tenant(creator_id) as conn:
            cur = await conn.execute(
                """SELECT key, value, origin, updated_at FROM fan_facts
                   WHERE creator_id = %s AND fan_id = %s ORDER BY key""",
                (creator_id, fan_id),
            )
            facts = [
                FanFact(key=r[0], value=r[1], origin=r[2], updated_at=r[3]) for r in await cur.fetchall()
            ]
            cur = await conn.execute(
                "SELECT summary, turns_covered FROM fan_summaries WHERE creator_id = %s AND fan_id = %s",
                (creator_id, fan_id),
            )
            summary_row = await cur.fetchone()
            cur = await conn.execute(
                """SELECT conversation_id, role, text, citations, created_at, id FROM turns
                   WHERE creator_id = %s AND fan_id = %s ORDER BY id DESC LIMIT %s""",
                (creator_id, fan_id, count),
            )
            rows = await cur.fetchall()
        return FanMemory(
            facts=facts,
            summary="" if summary_row is None else summary_row[0],
            turns_summarised=0 if summary_row is None else int(summary_row[1]),
            recent_turns=[_turn(r, fan_id) for r in reversed(rows)],
        )

    async def put_fan_facts(self, creator_id: str, fan_id: str, facts: Mapping[str, str]) -> None:
        """Set facts about a fan explicitly (e.g. from the integrator's own profile of the fan).

        Args:
            creator_id: The creator; must exist.
            fan_id: The fan (created if new).
            facts: Key -> value; keys ``[a-z][a-z0-9_]{0,63}``, values 1-500 characters.

        Raises:
            InvalidArgument: A malformed argument.
            NotFound: The creator does not exist.
        """
        _check_creator_id(creator_id)
        _check_opaque_id("fan_id", fan_id)
        checked = self._check_facts(facts)
        async with self._tenant(creator_id) as conn:
            await self._lock_fan(conn, creator_id, fan_id)
            await self._upsert_facts(conn, creator_id, fan_id, checked, "explicit")

    @staticmethod
    def _check_facts(facts: object) -> list[tuple[str, str]]:
        if not isinstance(facts, Mapping) or not facts:
            raise InvalidArgument("facts must be a non-empty mapping of key to value")
        if len(facts) > _MAX_FACT_KEYS:
            raise InvalidArgument(f"at most {_MAX_FACT_KEYS} facts per call, got {len(facts)}")
        checked: list[tuple[str, str]] = []
        for key, value in sorted(facts.items()):
            if not isinstance(key, str) or FACT_KEY.fullmatch(key) is None:
                raise InvalidArgument(f"fact key must match [a-z][a-z0-9_]{{0,63}}, got {_show(key)}")
            checked.append((key, _check_text(f"facts[{key}]", value, max_len=MAX_FACT_VALUE).strip()))
        return checked

    async def forget_fan(
        self, creator_id: str, fan_id: str, fact_keys: Sequence[str] = ()
    ) -> tuple[int, int]:
        """Forget a fan: everything (turns, conversations, summary, facts), or only some facts.

        Idempotent: forgetting a fan the avatar does not know succeeds and deletes nothing.

        Args:
            creator_id: The creator.
            fan_id: The fan.
            fact_keys: Only these facts; empty means everything about the fan.

        Returns:
            ``(turns deleted, facts deleted)``.

        Raises:
            InvalidArgument: A malformed argument.
        """
        _check_creator_id(creator_id)
        _check_opaque_id("fan_id", fan_id)
        keys = _check_str_list("fact_keys", fact_keys, max_len=64)
        async with self._tenant(creator_id) as conn:
            if keys:
                cur = await conn.execute(
                    "DELETE FROM fan_facts WHERE creator_id = %s AND fan_id = %s AND key = ANY(%s)",
                    (creator_id, fan_id, list(keys)),
                )
                return 0, cur.rowcount
            cur = await conn.execute(
                """SELECT (SELECT count(*) FROM turns WHERE creator_id = %(c)s AND fan_id = %(f)s),
                          (SELECT count(*) FROM fan_facts WHERE creator_id = %(c)s AND fan_id = %(f)s)""",
                {"c": creator_id, "f": fan_id},
            )
            counts = await cur.fetchone()
            assert counts is not None
            # The fan row cascades to conversations, turns, facts and summary in this one statement.
            await conn.execute("DELETE FROM fans WHERE creator_id = %s AND fan_id = %s", (creator_id, fan_id))
        return int(counts[0]), int(counts[1])

    async def get_persona(self, creator_id: str) -> PersonaProfile:
        """Return the creator's persona (style) profile with their corrections applied.

        Raises:
            InvalidArgument: A malformed creator id.
            NotFound: The creator has no profile.
        """
        _check_creator_id(creator_id)
        async with self._tenant(creator_id) as conn:
            cur = await conn.execute(
                """SELECT profile, corrections, version, updated_at FROM creator_personas
                   WHERE creator_id = %s""",
                (creator_id,),
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"creator {creator_id!r} has no persona profile")
        return _persona(creator_id, row)

    async def put_persona(
        self, creator_id: str, profile: Mapping[str, Any], expected_version: int = 0
    ) -> PersonaProfile:
        """Store the computed persona profile, creating the creator if needed.

        The creator's corrections are kept: they still override the fields they name. Storing the
        profile that is already stored changes nothing, not even the version, so re-ingesting
        unchanged content leaves the persona (and the prompts built from it) as they were.

        Args:
            creator_id: The creator.
            profile: A JSON object (at most 256 KiB serialised).
            expected_version: 0 writes unconditionally; otherwise the write happens only if the stored
                version is this one (optimistic concurrency for read-modify-write callers).

        Returns:
            The stored profile (corrections applied) with its version.

        Raises:
            InvalidArgument: A malformed argument.
            Conflict: ``expected_version`` is not the stored version.
        """
        _check_creator_id(creator_id)
        document = _profile_document("profile", profile)
        _check_int("expected_version", expected_version, low=0, high=_MAX_INT8)
        async with self._tenant(creator_id) as conn:
            await conn.execute(
                "INSERT INTO creators (id) VALUES (%s) ON CONFLICT (id) DO NOTHING", (creator_id,)
            )
            cur = await conn.execute(
                """SELECT profile, corrections, version, updated_at FROM creator_personas
                   WHERE creator_id = %s FOR UPDATE""",
                (creator_id,),
            )
            current = await cur.fetchone()
            stored = 0 if current is None else int(current[2])
            if expected_version and expected_version != stored:
                raise Conflict(
                    f"persona profile of {creator_id!r} is at version {stored}, not {expected_version}"
                )
            if current is not None and current[0] == document:
                return _persona(creator_id, current)
            cur = await conn.execute(
                """INSERT INTO creator_personas (creator_id, profile, version) VALUES (%s, %s, %s)
                   ON CONFLICT (creator_id) DO UPDATE SET
                       profile = EXCLUDED.profile, version = EXCLUDED.version, updated_at = now()
                   RETURNING profile, corrections, version, updated_at""",
                (creator_id, Jsonb(document), stored + 1),
            )
            row = await cur.fetchone()
        assert row is not None
        return _persona(creator_id, row)

    async def correct_persona(
        self, creator_id: str, corrections: Mapping[str, Any], expected_version: int = 0
    ) -> PersonaProfile:
        """Store the creator's corrections of some profile fields (by top-level field name).

        A correction replaces the field's value and survives every later :meth:`put_persona`.

        Args:
            creator_id: The creator.
            corrections: Field name -> corrected value (a JSON object, not empty).
            expected_version: 0 skips the check; otherwise the stored version must be this one.

        Returns:
            The profile with the corrections applied and its new version.

        Raises:
            InvalidArgument: A malformed argument.
            NotFound: The creator has no profile yet (nothing ingested).
            Conflict: ``expected_version`` is not the stored version.
        """
        _check_creator_id(creator_id)
        patch = _profile_document("corrections", corrections)
        if not patch:
            raise InvalidArgument("corrections must name at least one field")
        _check_int("expected_version", expected_version, low=0, high=_MAX_INT8)
        async with self._tenant(creator_id) as conn:
            cur = await conn.execute(
                "SELECT corrections, version FROM creator_personas WHERE creator_id = %s FOR UPDATE",
                (creator_id,),
            )
            current = await cur.fetchone()
            if current is None:
                raise NotFound(f"creator {creator_id!r} has no persona profile: ingest their content first")
            if expected_version and expected_version != int(current[1]):
                raise Conflict(
                    f"persona profile of {creator_id!r} is at version {current[1]}, not {expected_version}"
                )
            merged = {**current[0], **patch}
            if len(json.dumps(merged).encode()) > _MAX_PROFILE_BYTES:
                raise InvalidArgument("corrections must be at most 256 KiB of JSON in all")
            cur = await conn.execute(
                """UPDATE creator_personas SET corrections = %s, version = version + 1, updated_at = now()
                   WHERE creator_id = %s RETURNING profile, corrections, version, updated_at""",
                (Jsonb(merged), creator_id),
            )
            row = await cur.fetchone()
        assert row is not None
        return _persona(creator_id, row)

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
        async with self._tenant(creator_id) as conn:
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
        """Delete a creator and everything derived from them: sources, chunks, persona, fans, turns.

        Args:
            creator_id: The creator.

        Raises:
            InvalidArgument: A malformed creator id.
            NotFound: No such creator.
        """
        _check_creator_id(creator_id)
        async with self._tenant(creator_id) as conn:
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
        async with self._tenant(creator_id) as conn:
            cur = await conn.execute("SELECT count(*) FROM chunks WHERE creator_id = %s", (creator_id,))
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])


def _profile_document(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """A profile (or corrections) as a JSON object, checked for size and NULs; round-tripped through
    JSON so it compares equal to what Postgres hands back."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{name} must be a JSON object, got {type(value).__name__}")
    try:
        encoded = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{name} must be JSON-serialisable: {exc}") from None
    if len(encoded.encode()) > _MAX_PROFILE_BYTES or "\\u0000" in encoded:
        raise InvalidArgument(f"{name} must be at most 256 KiB of JSON without NUL characters")
    return cast(dict[str, Any], json.loads(encoded))


def _persona(creator_id: str, row: Sequence[Any]) -> PersonaProfile:
    """``(profile, corrections, version, updated_at)`` as the effective profile."""
    computed, corrections = row[0], row[1]
    return PersonaProfile(
        creator_id=creator_id,
        profile={**computed, **corrections},
        version=int(row[2]),
        updated_at=row[3],
        corrected_fields=tuple(sorted(corrections)),
    )


def _rank(
    rows: Sequence[Sequence[Any]], creator_id: str, *, mode: SearchMode, k: int, min_score: float
) -> list[SearchHit]:
    """Turn candidate rows (see :mod:`search_sql`) into ranked, thresholded hits."""
    by_id = {str(r[0]): r for r in rows}
    # Ranks are recomputed here: relaxed_order iterative scans may return rows slightly out of order.
    vec_order = sorted((r for r in rows if r[12] is not None), key=lambda r: (float(r[12]), str(r[0])))
    txt_order = sorted((r for r in rows if r[13] is not None), key=lambda r: (-float(r[13]), str(r[0])))
    vec_rank = {str(r[0]): i for i, r in enumerate(vec_order, 1)}
    txt_rank = {str(r[0]): i for i, r in enumerate(txt_order, 1)}
    candidates = [
        Candidate(
            chunk_id=cid, cosine=float(r[3]), vector_rank=vec_rank.get(cid), text_rank=txt_rank.get(cid)
        )
        for cid, r in by_id.items()
    ]
    if mode == "hybrid":
        fused = fuse(candidates, top_k=k, min_cosine=min_score)
        chosen = [(f.candidate, f.score) for f in fused]
    else:
        rank_of = vec_rank if mode == "vector" else txt_rank
        ordered = sorted(
            (c for c in candidates if c.cosine >= min_score and c.chunk_id in rank_of),
            key=lambda c: rank_of[c.chunk_id],
        )
        chosen = [(c, 0.0) for c in ordered[:k]]
    hits: list[SearchHit] = []
    for cand, score in chosen:
        r = by_id[cand.chunk_id]
        hits.append(
            SearchHit(
                chunk_id=cand.chunk_id,
                source_id=str(r[1]),
                creator_id=creator_id,
                text=r[2],
                score=cand.cosine,
                platform=r[4],
                external_id=r[5],
                url=r[6],
                created_at=r[7],
                kind=r[8],
                start_char=r[9],
                end_char=r[10],
                fused_score=score,
                vector_rank=cand.vector_rank or 0,
                text_rank=cand.text_rank or 0,
                path=r[11],
            )
        )
    return hits


async def read_instance_id(url: str) -> str:
    """This database's identity (``memory_instance.id``), used to namespace shared cache keys."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT id FROM memory_instance")
        row = await cur.fetchone()
    assert row is not None  # inserted by migration 0002
    return str(row[0])


async def open_store(
    url: str,
    *,
    ef_search: int = 100,
    min_size: int = 1,
    max_size: int = 10,
    cache: SearchCache | None = None,
    summary_window: int = 20,
) -> MemoryStore:
    """Apply the memory migrations, then open a pool and a :class:`MemoryStore` on it.

    Args:
        url: Postgres connection URL (the database must allow ``CREATE EXTENSION vector``, and the
            user must be able to create the ``avatar_tenant`` role or it must already exist).
        ef_search: See :class:`MemoryStore`.
        min_size: Fewest pooled connections.
        max_size: Most pooled connections.
        cache: See :class:`MemoryStore`.
        summary_window: See :class:`MemoryStore`.

    Returns:
        The store; close it with :meth:`MemoryStore.close` (or use it as an async context manager).
    """
    # Validate before touching the database, so a bad setting fails fast without side effects.
    _check_int("ef_search", ef_search, low=1, high=1000)
    _check_int("summary_window", summary_window, low=1, high=MAX_HISTORY)
    await apply_migrations(url, COMPONENT, MIGRATIONS_DIR)
    instance = await read_instance_id(url)
    pool = await open_pool(url, min_size=min_size, max_size=max_size)
    return MemoryStore(
        pool, ef_search=ef_search, cache=cache, instance=instance, summary_window=summary_window
    )
