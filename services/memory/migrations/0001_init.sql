-- Memory service schema: creators, their sources and embedded chunks, and per-fan conversation turns.
-- Every table that holds creator data carries creator_id, so every query can (and must) filter by it.

CREATE TABLE creators (
    -- Same rule as the service validates, so a row written around the service still obeys it.
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    display_name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sources (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id text NOT NULL REFERENCES creators (id) ON DELETE CASCADE,
    platform text NOT NULL,
    external_id text NOT NULL,
    url text NOT NULL DEFAULT '',
    -- When the creator published it; NULL where the export carries no date.
    created_at timestamptz,
    kind text NOT NULL,
    path text NOT NULL DEFAULT '',
    content_hash text NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (creator_id, platform, external_id),
    -- Target of the chunks' composite foreign key below.
    UNIQUE (id, creator_id)
);

CREATE TABLE chunks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id text NOT NULL,
    source_id uuid NOT NULL,
    ordinal integer NOT NULL CHECK (ordinal >= 0),
    text text NOT NULL,
    start_char integer NOT NULL CHECK (start_char >= 0),
    end_char integer NOT NULL CHECK (end_char >= start_char),
    token_count integer NOT NULL CHECK (token_count >= 0),
    content_hash text NOT NULL,
    embedding vector(384) NOT NULL,
    -- 'simple' (lowercase, no stemming, no stop words) rather than 'english': creators write in many
    -- languages and in handles, hashtags, product and place names that English stemming mangles
    -- ("#mealprep", "Canon R50"); semantic recall is the vector side's job, so the lexical side should
    -- match exact words. Queries must use the same config: to_tsquery('simple', ...).
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Re-ingesting the same content is a no-op. Named: it is also the creator_id index (see below).
    CONSTRAINT chunks_creator_content_hash UNIQUE (creator_id, content_hash),
    -- A chunk can only hang off a source of the same creator: tenant isolation held by the schema.
    FOREIGN KEY (source_id, creator_id) REFERENCES sources (id, creator_id) ON DELETE CASCADE
);

-- m/ef_construction are pgvector's defaults, written out so a change is a visible migration.
CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);
CREATE INDEX chunks_tsv_gin ON chunks USING gin (tsv);
-- No separate btree on chunks(creator_id): the UNIQUE (creator_id, content_hash) index leads with
-- creator_id and serves every creator filter; a second index would only slow down ingest.
-- The cascade from sources and delete_source look chunks up by source.
CREATE INDEX chunks_source_id ON chunks (source_id);

-- One row per (creator, fan, conversation); last_ordinal is the per-conversation turn counter,
-- bumped under this row's lock so concurrent appends get distinct, gap-free ordinals.
CREATE TABLE conversations (
    creator_id text NOT NULL REFERENCES creators (id) ON DELETE CASCADE,
    fan_id text NOT NULL,
    conversation_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_ordinal integer NOT NULL DEFAULT 0,
    -- Keyed by fan too: one fan can never read or extend another fan's conversation by guessing its id.
    PRIMARY KEY (creator_id, fan_id, conversation_id)
);

CREATE TABLE turns (
    -- Identity gives a total insertion order for per-fan history across conversations.
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    creator_id text NOT NULL,
    fan_id text NOT NULL,
    conversation_id text NOT NULL,
    ordinal integer NOT NULL CHECK (ordinal >= 1),
    role text NOT NULL CHECK (role IN ('fan', 'avatar')),
    text text NOT NULL,
    -- Chunk ids (as strings) the reply cited; kept even if the chunk is later deleted.
    citations jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(citations) = 'array'),
    -- clock_timestamp, not now(): distinct times for turns written in one transaction.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (creator_id, fan_id, conversation_id, ordinal),
    FOREIGN KEY (creator_id, fan_id, conversation_id)
        REFERENCES conversations (creator_id, fan_id, conversation_id) ON DELETE CASCADE
);

-- history(): the last N turns of one fan, newest first, then reversed.
CREATE INDEX turns_fan_history ON turns (creator_id, fan_id, id DESC);
