-- Ingest service schema: durable jobs with per-file outcomes (progress, resume), the documents each
-- creator has ingested (idempotency cache, near-duplicate index, persona input) and persona profiles.
-- Everything is keyed by creator_id so DeleteCreator removes it all in three statements.

CREATE TABLE ingest_jobs (
    id text PRIMARY KEY,
    creator_id text NOT NULL,
    state text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    -- What to read on resume: a server-side path, or the spooled upload.
    root text NOT NULL,
    options jsonb NOT NULL DEFAULT '{}'::jsonb,
    files_total integer NOT NULL DEFAULT 0,
    error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Bumped while a worker runs the job; a running job whose heartbeat is stale was orphaned by a crash.
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_jobs_creator ON ingest_jobs (creator_id);
CREATE INDEX ingest_jobs_unfinished ON ingest_jobs (heartbeat_at) WHERE state IN ('queued', 'running');

-- One row per finished file (or archive member); a resumed job skips the files that have a row.
CREATE TABLE ingest_job_files (
    job_id text NOT NULL REFERENCES ingest_jobs (id) ON DELETE CASCADE,
    ordinal integer NOT NULL CHECK (ordinal >= 0),
    path text NOT NULL,
    status text NOT NULL,
    platform text NOT NULL DEFAULT '',
    documents integer NOT NULL DEFAULT 0,
    documents_unchanged integer NOT NULL DEFAULT 0,
    duplicates_dropped integer NOT NULL DEFAULT 0,
    records_excluded integer NOT NULL DEFAULT 0,
    chunks_inserted integer NOT NULL DEFAULT 0,
    chunks_unchanged integer NOT NULL DEFAULT 0,
    error text NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, ordinal)
);

-- A document is recorded only after all its chunks are in memory, so its presence means "stored".
CREATE TABLE ingest_documents (
    creator_id text NOT NULL,
    platform text NOT NULL,
    external_id text NOT NULL,
    kind text NOT NULL,
    text_hash text NOT NULL,
    -- 64-bit SimHash of the word shingles, for near-duplicate detection.
    simhash bigint NOT NULL,
    -- Chunks sent to memory for it: reported as unchanged when the same document comes again.
    chunks integer NOT NULL,
    text text NOT NULL,
    created_at timestamptz,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (creator_id, platform, external_id)
);
CREATE INDEX ingest_documents_text_hash ON ingest_documents (creator_id, text_hash);

CREATE TABLE ingest_persona_profiles (
    creator_id text PRIMARY KEY,
    computed jsonb NOT NULL,
    -- Fields the creator corrected, by name; they override `computed` and survive re-computation.
    corrections jsonb NOT NULL DEFAULT '{}'::jsonb,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
