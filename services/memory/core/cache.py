"""The search-result cache port of the memory core: key derivation and (de)serialisation of hits.

The core only needs :class:`SearchCache` (get/set of bytes); :mod:`services.memory.redis_cache`
implements it over Redis. Keys embed the creator's *content version*, a database value replaced by a
trigger on every change to the creator's chunks or sources (see ``0002_*.sql``). A result cached
before a deletion therefore sits under a key no search will ask for again: invalidation needs no
delete, cannot be skipped by a write path, and cannot race with a reader (see
:meth:`MemoryStore.search` for the ordering argument). Old keys expire by TTL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from services.memory.core.types import SearchFilters, SearchHit, SearchMode

_FORMAT = 1
"""Bumped when the cached value layout changes, so old entries are never misread."""


class SearchCache(Protocol):
    """Where hot search results are kept. Implementations must fail open (never raise)."""

    async def get(self, key: str) -> bytes | None:
        """The cached value, or None on a miss or when the cache is unavailable."""
        ...

    async def set(self, key: str, value: bytes) -> None:
        """Store a value (best effort)."""
        ...


def search_key(
    instance: str,
    creator_id: str,
    content_version: int,
    *,
    query: str,
    embedding: npt.NDArray[np.float32],
    k: int,
    min_score: float,
    filters: SearchFilters,
    mode: SearchMode,
) -> str:
    """The cache key of one search: everything that determines its result, hashed.

    Args:
        instance: The database's identity (``memory_instance.id``), so databases sharing a Redis
            never share entries.
        creator_id: The creator searched.
        content_version: The creator's content version read before searching.
        query: The query text (the full-text side depends on it).
        embedding: The query embedding as float32 (hashed byte for byte).
        k: Hits asked for.
        min_score: Relevance threshold.
        filters: Filters.
        mode: Search mode.

    Returns:
        ``"{instance}:{creator}:{version}:{sha256 of the parameters}"``.
    """
    params = json.dumps(
        [
            _FORMAT,
            query,
            k,
            float(min_score),
            mode,
            sorted(set(filters.platforms)),
            sorted(set(filters.kinds)),
            _iso(filters.published_after),
            _iso(filters.published_before),
        ],
        separators=(",", ":"),
    ).encode()
    digest = hashlib.sha256(params + b"\0" + np.ascontiguousarray(embedding, dtype="<f4").tobytes())
    return f"{instance}:{creator_id}:{content_version}:{digest.hexdigest()}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def dump_hits(hits: Sequence[SearchHit]) -> bytes:
    """Serialise hits for the cache (JSON: readable with redis-cli when debugging)."""
    rows: list[list[Any]] = [
        [
            h.chunk_id,
            h.source_id,
            h.creator_id,
            h.text,
            h.score,
            h.platform,
            h.external_id,
            h.url,
            _iso(h.created_at),
            h.kind,
            h.start_char,
            h.end_char,
            h.fused_score,
            h.vector_rank,
            h.text_rank,
            h.path,
        ]
        for h in hits
    ]
    return json.dumps([_FORMAT, rows], separators=(",", ":")).encode()


def load_hits(value: bytes) -> list[SearchHit] | None:
    """Deserialise cached hits; None when the value is not in the current format (treated as a miss)."""
    try:
        fmt, rows = json.loads(value)
        if fmt != _FORMAT:
            return None
        return [
            SearchHit(
                chunk_id=r[0],
                source_id=r[1],
                creator_id=r[2],
                text=r[3],
                score=r[4],
                platform=r[5],
                external_id=r[6],
                url=r[7],
                created_at=None if r[8] is None else datetime.fromisoformat(r[8]),
                kind=r[9],
                start_char=r[10],
                end_char=r[11],
                fused_score=r[12],
                vector_rank=r[13],
                text_rank=r[14],
                path=r[15],
            )
            for r in rows
        ]
    except (ValueError, TypeError, IndexError, KeyError):
        return None
