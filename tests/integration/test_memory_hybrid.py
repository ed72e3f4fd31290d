"""Hybrid retrieval (pgvector + full text, fused by RRF) with filters and a relevance threshold.

Embeddings are hand-made unit vectors so every cosine, rank and fused score is known exactly; the
full-text side is Postgres' own, on the real schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.memory.core import MemoryStore, open_store
from services.memory.core.fusion import RRF_K
from services.memory.core.types import SearchFilters
from tests.integration.test_memory_store import chunk, unit

pytestmark = pytest.mark.timeout(60)

JAN = datetime(2024, 1, 10, tzinfo=UTC)
JUN = datetime(2024, 6, 10, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[MemoryStore]:
    s = await open_store(database_url)
    try:
        await s.write_chunks(
            "chef",
            [
                chunk("Sunday #mealprep: the R50 by Canon", unit(1, 0.2), external_id="a", created_at=JAN),
                chunk(
                    "sourdough starter feeding schedule", unit(1), external_id="b", kind="qa", created_at=JUN
                ),
                chunk(
                    "my Canon R50 camera after a year",
                    unit(0.6, 1),
                    external_id="c",
                    platform="youtube",
                    kind="transcript",
                    created_at=JUN,
                ),
                chunk("gardening in the rain", unit(0, 0, 1), external_id="d", created_at=None),
            ],
        )
        yield s
    finally:
        await s.close()


def rrf(*ranks: int) -> float:
    return sum(1 / (RRF_K + r) for r in ranks)


async def test_hybrid_lifts_a_lexical_match_above_the_nearest_vector(store: MemoryStore) -> None:
    # Vector ranks: b (cos 1), a (0.98), c (0.51), d (0). Text ("camera" & "canon" & "r50"; "which"
    # and "the" are stop words): only c has all three.
    hits = await store.search("chef", unit(1), k=10, min_score=0.3, query="Which camera? The Canon R50")
    assert [h.text[:12] for h in hits] == ["my Canon R50", "sourdough st", "Sunday #meal"]
    assert [(h.vector_rank, h.text_rank) for h in hits] == [(3, 1), (1, 0), (2, 0)]
    assert [h.fused_score for h in hits] == pytest.approx([rrf(3, 1), rrf(1), rrf(2)])
    assert [h.score for h in hits] == pytest.approx([0.6 / 1.36**0.5, 1.0, 1 / 1.04**0.5], abs=1e-6)
    # Two words both a and c contain: both get a text rank (c's is better: a shorter text). Fused,
    # rrf(3, 1) > rrf(2, 2) by a hair: agreement beats one strong opinion only when ranks are close.
    two = await store.search("chef", unit(1), k=10, min_score=0.3, query="canon r50")
    assert [(h.external_id, h.vector_rank, h.text_rank) for h in two] == [
        ("c", 3, 1),
        ("a", 2, 2),
        ("b", 1, 0),
    ]
    # Everything a citation needs.
    top = hits[0]
    assert (top.platform, top.external_id, top.kind, top.created_at) == ("youtube", "c", "transcript", JUN)
    assert (top.url, top.path, top.start_char, top.end_char) == (
        "https://instagram.com/p/c",
        "posts/c.json",
        0,
        len("my Canon R50 camera after a year"),
    )


async def test_threshold_applies_to_text_matches_too(store: MemoryStore) -> None:
    hits = await store.search("chef", unit(1), k=10, min_score=0.6, query="canon r50")
    assert [(h.external_id, h.text_rank) for h in hits] == [("a", 2), ("b", 0)]
    # Words match, meaning does not: "nothing relevant" stays an empty answer the gateway can act on.
    assert await store.search("chef", unit(0, 0, 0, 1), k=10, min_score=0.2, query="canon r50") == []


async def test_single_retriever_modes(store: MemoryStore) -> None:
    vec = await store.search("chef", unit(1), k=2, min_score=-1.0, query="canon", mode="vector")
    assert [(h.external_id, h.vector_rank, h.text_rank, h.fused_score) for h in vec] == [
        ("b", 1, 0, 0.0),
        ("a", 2, 0, 0.0),
    ]
    txt = await store.search("chef", unit(1), k=10, min_score=-1.0, query="R50 canon", mode="text")
    assert [(h.external_id, h.text_rank) for h in txt] == [("c", 1), ("a", 2)]
    txt = await store.search("chef", unit(1), k=10, min_score=-1.0, query="r50 camera", mode="text")
    assert [(h.external_id, h.text_rank) for h in txt] == [("c", 1)]
    # Only stop words: no text side at all.
    assert await store.search("chef", unit(1), k=10, min_score=-1.0, query="what is the", mode="text") == []


async def test_filters(store: MemoryStore) -> None:
    async def ids(**filters: Any) -> list[str]:
        hits = await store.search(
            "chef", unit(1), k=10, min_score=-1.0, query="canon", filters=SearchFilters(**filters)
        )
        return sorted(h.external_id for h in hits)

    assert await ids() == ["a", "b", "c", "d"]
    assert await ids(platforms=("youtube",)) == ["c"]
    assert await ids(platforms=("youtube", "instagram"), kinds=("post",)) == ["a", "d"]
    assert await ids(kinds=("qa", "transcript")) == ["b", "c"]
    assert await ids(published_after=datetime(2024, 3, 1, tzinfo=UTC)) == ["b", "c"]
    assert await ids(published_before=datetime(2024, 3, 1, tzinfo=UTC)) == ["a"]
    assert await ids(published_after=JAN, published_before=JUN) == ["a"]
    assert await ids(platforms=("tiktok",)) == []
    # The text side is filtered as well: "canon" matches a and c, only c is a transcript.
    txt = await store.search(
        "chef",
        unit(1),
        k=10,
        min_score=-1.0,
        query="canon",
        mode="text",
        filters=SearchFilters(kinds=("transcript",)),
    )
    assert [h.external_id for h in txt] == ["c"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "fuzzy"}, "mode"),
        ({"query": "a\x00b"}, "NUL"),
        ({"filters": SearchFilters(platforms="youtube")}, "platforms"),  # type: ignore[arg-type]
        ({"filters": SearchFilters(published_after=datetime(2024, 1, 1))}, "timezone"),
        ({"filters": SearchFilters(published_after=JUN, published_before=JAN)}, "earlier"),
        ({"filters": "kinds=post"}, "SearchFilters"),
    ],
)
async def test_bad_search_arguments(store: MemoryStore, kwargs: dict[str, object], message: str) -> None:
    from services.memory.core import InvalidArgument

    with pytest.raises(InvalidArgument, match=message):
        await store.search("chef", unit(1), **kwargs)  # type: ignore[arg-type]
