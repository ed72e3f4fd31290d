"""SQL of the hybrid search, assembled from fixed fragments (never from caller text).

One statement fetches both candidate lists and everything a citation needs:

* ``vec``: the creator's chunks nearest to the query embedding, through the HNSW index. The creator
  and filter conditions sit inside the CTE so the index scan itself is filtered; ``hnsw.iterative_scan``
  keeps the scan going until ``LIMIT`` rows pass them (otherwise a small creator next to a big one
  would get fewer than ``k`` rows).
* ``txt``: the creator's chunks matching the full-text query (all its content words), best
  ``ts_rank_cd`` first, through the GIN index on ``tsv``; at most :data:`TEXT_SCAN_LIMIT` matches
  are ranked.
* The union of both, joined to sources, with the cosine similarity of every candidate (text-only
  ones included: the relevance threshold is on cosine for all of them).

The query vector is bound in binary (``%(q)b``): pgvector's text form costs ~0.5 ms of Python per
dump (measured; binary: 7 us) and the statement uses the vector twice. Fusion and the threshold are
applied in Python (:mod:`services.memory.core.fusion`). Each filter combination yields a distinct,
fixed statement text, so prepared plans are never generic over an "IS NULL OR" switch.
"""

from __future__ import annotations

from typing import Final

from services.memory.core.types import SearchFilters, SearchMode

_SOURCE_FILTERS: Final = {
    "platforms": "s.platform = ANY(%(platforms)s)",
    "kinds": "s.kind = ANY(%(kinds)s)",
    "published_after": "s.created_at >= %(published_after)s",
    "published_before": "s.created_at < %(published_before)s",
}

_VEC: Final = """vec AS MATERIALIZED (
    SELECT c.id, c.embedding <=> %(q)b AS distance
    FROM chunks c
    WHERE c.creator_id = %(creator)s{filter}
    ORDER BY distance
    LIMIT %(n)s
)"""

TEXT_SCAN_LIMIT: Final = 2000
"""Most full-text matches ranked per query.

Terms common enough to match more chunks than this carry little lexical evidence (low IDF), and
ranking every match would make one query cost a scan of the creator's content; past the limit, the
first matches found are ranked and the vector side decides.
"""

# The text side goes through memory_text_candidates() (migration 0003): under row-level security a
# plain `tsv @@ query` cannot use the GIN index (the operator is not leakproof), the function applies
# the same tenant rule as the policies and can. NULL filter arrays mean "any".
_TXT: Final = (
    """txt AS MATERIALIZED (
    SELECT m.id, ts_rank_cd(m.tsv, to_tsquery('simple', %(tsq)s)) AS rank
    FROM memory_text_candidates(%(tsq)s, %(platforms_or_null)s, %(kinds_or_null)s,
                                %(published_after)s, %(published_before)s, """
    + str(TEXT_SCAN_LIMIT)
    + """) m
    ORDER BY rank DESC, m.id
    LIMIT %(n)s
)"""
)

_NO_VEC: Final = "vec AS (SELECT NULL::uuid AS id, NULL::float8 AS distance WHERE false)"
_NO_TXT: Final = "txt AS (SELECT NULL::uuid AS id, NULL::float4 AS rank WHERE false)"

_SELECT: Final = """
SELECT c.id, c.source_id, c.text, 1 - (c.embedding <=> %(q)b) AS cosine, s.platform, s.external_id,
       s.url, s.created_at, s.kind, c.start_char, c.end_char, s.path, v.distance, t.rank
FROM (SELECT id FROM vec UNION SELECT id FROM txt) cand
JOIN chunks c ON c.id = cand.id
JOIN sources s ON s.id = c.source_id AND s.creator_id = %(creator)s
LEFT JOIN vec v ON v.id = c.id
LEFT JOIN txt t ON t.id = c.id
"""


def filter_clause(filters: SearchFilters) -> str:
    """The chunk-level condition for ``filters`` ("" when nothing is filtered)."""
    conditions = [sql for name, sql in _SOURCE_FILTERS.items() if getattr(filters, name) not in (None, ())]
    if not conditions:
        return ""
    return (
        "\n      AND c.source_id IN (SELECT s.id FROM sources s WHERE s.creator_id = %(creator)s AND "
        + " AND ".join(conditions)
        + ")"
    )


def search_sql(mode: SearchMode, filters: SearchFilters, *, with_text: bool) -> str:
    """The search statement for one mode and filter combination.

    Args:
        mode: "hybrid", "vector" or "text".
        filters: Which filters are set (their values are bound as parameters).
        with_text: Whether the query has full-text terms; without any the text side is empty.

    Returns:
        SQL taking the parameters ``q, creator, n, tsq``, those of the set filters, and (text side)
        ``platforms_or_null, kinds_or_null`` (the filter lists, None for "any").
    """
    clause = filter_clause(filters)
    vec = _VEC.format(filter=clause) if mode in ("hybrid", "vector") else _NO_VEC
    txt = _TXT if mode in ("hybrid", "text") and with_text else _NO_TXT
    return f"WITH {vec},\n{txt}{_SELECT}"
