"""Pure rules of the memory core: query terms, RRF fusion, fan facts, rolling summary, cache keys."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.memory.core.cache import dump_hits, load_hits, search_key
from services.memory.core.fan_memory import (
    SUMMARY_LINE_CHARS,
    FactUpdate,
    SummaryTurn,
    extract_facts,
    fold_summary,
)
from services.memory.core.fusion import (
    MAX_QUERY_TERMS,
    RRF_K,
    Candidate,
    fuse,
    query_terms,
    rrf_score,
    tsquery_text,
)
from services.memory.core.search_sql import filter_clause, search_sql
from services.memory.core.types import SearchFilters, SearchHit

pytestmark = pytest.mark.timeout(10)


def test_query_terms_drop_stop_words_and_split_like_postgres() -> None:
    assert query_terms("What camera do you use? The Canon R50!") == ["camera", "use", "canon", "r50"]
    assert query_terms("Pão de QUEIJO, pão de queijo") == ["pão", "de", "queijo"]
    assert query_terms("snake_case #mealprep it's") == ["snake", "case", "mealprep", "s"]
    assert query_terms("what is the") == []
    assert query_terms(" ".join(f"w{i}" for i in range(40))) == [f"w{i}" for i in range(MAX_QUERY_TERMS)]
    assert tsquery_text(["canon", "r50"]) == "canon & r50"
    assert tsquery_text([]) is None


def test_rrf_and_fusion_order_and_threshold() -> None:
    assert rrf_score(1, None) == pytest.approx(1 / (RRF_K + 1))
    assert rrf_score(None, None) == 0
    assert rrf_score(2, 3, k=10) == pytest.approx(1 / 12 + 1 / 13)
    cands = [
        Candidate("v1", 0.9, 1, None),
        Candidate("both", 0.7, 3, 1),
        Candidate("t1", 0.1, None, 2),  # a text match that is not about the query
        Candidate("v2", 0.8, 2, None),
        Candidate("tie-b", 0.5, None, 3),
        Candidate("tie-a", 0.5, None, 3),
    ]
    fused = fuse(cands, top_k=10, min_cosine=0.3)
    assert [f.candidate.chunk_id for f in fused] == ["both", "v1", "v2", "tie-a", "tie-b"]
    assert fused[0].score == pytest.approx(1 / 63 + 1 / 61)
    assert [f.candidate.chunk_id for f in fuse(cands, top_k=2, min_cosine=-1)] == ["both", "v1"]
    assert fuse(cands, top_k=10, min_cosine=0.95) == []


def test_extract_facts() -> None:
    assert extract_facts("hey, my name is sam! I'm vegan and I live in Porto.") == [
        FactUpdate("name", "Sam"),
        FactUpdate("diet", "vegan"),
        FactUpdate("location", "Porto"),
    ]
    assert extract_facts("I'm Jo. I really love brown butter cookies, I hate raisins") == [
        FactUpdate("name", "Jo"),
        FactUpdate("likes", "brown butter cookies"),
        FactUpdate("dislikes", "raisins"),
    ]
    # States are not names; the last statement of one key wins.
    assert extract_facts("I'm tired. I'm Sorry. I like tea. I prefer coffee") == [
        FactUpdate("likes", "coffee")
    ]
    assert extract_facts("I'm allergic to peanuts; call me Alex Kim") == [
        FactUpdate("name", "Alex Kim"),
        FactUpdate("allergies", "peanuts"),
    ]
    assert extract_facts("what do you bake on sundays?") == []


def test_fold_summary_appends_and_drops_oldest_lines() -> None:
    s = fold_summary("", [SummaryTurn("fan", "hi  there\nfriend"), SummaryTurn("avatar", "hello!")])
    assert s == "Fan: hi there friend\nAvatar: hello!"
    long = SummaryTurn("fan", "x" * 500)
    line = fold_summary("", [long])
    assert len(line) == len("Fan: ") + SUMMARY_LINE_CHARS and line.endswith("...")
    bounded = fold_summary(s, [long, SummaryTurn("avatar", "last")], max_chars=len(line) + 20)
    assert bounded == line + "\nAvatar: last"


def test_search_key_covers_every_parameter() -> None:
    vec = np.ones(4, dtype=np.float32)
    base = dict(query="q", embedding=vec, k=5, min_score=0.2, filters=SearchFilters(), mode="hybrid")
    key = search_key("db1", "chef", 7, **base)  # type: ignore[arg-type]
    assert key.startswith("db1:chef:7:")
    variants = [
        search_key("db2", "chef", 7, **base),  # type: ignore[arg-type]
        search_key("db1", "coach", 7, **base),  # type: ignore[arg-type]
        search_key("db1", "chef", 8, **base),  # type: ignore[arg-type]
        search_key("db1", "chef", 7, **{**base, "query": "q2"}),  # type: ignore[arg-type]
        search_key("db1", "chef", 7, **{**base, "embedding": vec * 2}),  # type: ignore[arg-type]
        search_key("db1", "chef", 7, **{**base, "k": 6}),  # type: ignore[arg-type]
        search_key("db1", "chef", 7, **{**base, "min_score": 0.3}),  # type: ignore[arg-type]
        search_key("db1", "chef", 7, **{**base, "mode": "vector"}),  # type: ignore[arg-type]
        search_key("db1", "chef", 7, **{**base, "filters": SearchFilters(kinds=("qa",))}),  # type: ignore[arg-type]
        search_key(
            "db1",
            "chef",
            7,
            **{**base, "filters": SearchFilters(published_after=datetime(2024, 1, 1, tzinfo=UTC))},  # type: ignore[arg-type]
        ),
    ]
    assert len({key, *variants}) == len(variants) + 1


def test_hits_round_trip_through_the_cache_format() -> None:
    hit = SearchHit(
        chunk_id="c",
        source_id="s",
        creator_id="chef",
        text="rye",
        score=0.5,
        platform="x",
        external_id="1",
        url="",
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
        kind="post",
        start_char=0,
        end_char=3,
        fused_score=0.03,
        vector_rank=1,
        text_rank=2,
        path="a.json",
    )
    undated = SearchHit(**{**{f: getattr(hit, f) for f in hit.__slots__}, "created_at": None})  # type: ignore[attr-defined]
    assert load_hits(dump_hits([hit, undated])) == [hit, undated]
    assert load_hits(b"not json") is None
    assert load_hits(b"[999, []]") is None


def test_search_sql_shapes() -> None:
    assert filter_clause(SearchFilters()) == ""
    clause = filter_clause(SearchFilters(platforms=("x",), published_before=datetime(2024, 1, 1, tzinfo=UTC)))
    assert "s.platform = ANY(%(platforms)s)" in clause and "s.created_at < %(published_before)s" in clause
    assert "kind" not in clause
    vector_only = search_sql("vector", SearchFilters(), with_text=True)
    assert "to_tsquery" not in vector_only and "<=>" in vector_only
    assert "to_tsquery" in search_sql("hybrid", SearchFilters(), with_text=True)
    assert "to_tsquery" not in search_sql("hybrid", SearchFilters(), with_text=False)
