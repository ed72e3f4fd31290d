-- Full-text candidates through a SECURITY DEFINER function, so the GIN index works under RLS.
--
-- Measured (bench/memory_search.py, 20,000 chunks): as avatar_tenant, `tsv @@ query` never used
-- chunks_tsv_gin. The @@ operator (ts_match_vq) is not LEAKPROOF, and the planner must not evaluate a
-- non-leakproof qual before the row-level security qual, so it cannot be an index condition: every
-- full-text query became a sequential scan (29 ms instead of 0.9 ms at 20,000 chunks, growing
-- linearly). Marking ts_match_vq LEAKPROOF would need a superuser and is a global claim about a
-- builtin; instead this function runs as its owner (not subject to the tenant policies) and applies
-- the tenant rule itself, from the same setting the policies read. A tenant transaction therefore
-- still sees only its own creator's rows: the isolation tests call it under another creator's id.
CREATE FUNCTION memory_text_candidates(
    query text,
    platforms text[],
    kinds text[],
    published_after timestamptz,
    published_before timestamptz,
    max_rows integer
) RETURNS TABLE (id uuid, tsv tsvector)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT c.id, c.tsv
    FROM chunks c
    WHERE c.creator_id = NULLIF(current_setting('app.creator_id', true), '')
      AND c.tsv @@ to_tsquery('simple', query)
      AND (
          (platforms IS NULL AND kinds IS NULL AND published_after IS NULL AND published_before IS NULL)
          OR c.source_id IN (
              SELECT s.id FROM sources s
              WHERE s.creator_id = c.creator_id
                AND (platforms IS NULL OR s.platform = ANY(platforms))
                AND (kinds IS NULL OR s.kind = ANY(kinds))
                AND (published_after IS NULL OR s.created_at >= published_after)
                AND (published_before IS NULL OR s.created_at < published_before)))
    LIMIT max_rows
$$;
REVOKE ALL ON FUNCTION memory_text_candidates(text, text[], text[], timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memory_text_candidates(text, text[], text[], timestamptz, timestamptz, integer)
    TO avatar_tenant;
