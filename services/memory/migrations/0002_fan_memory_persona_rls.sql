-- Persona profiles, per-fan memory (fans, facts, rolling summary), a content version for cache
-- invalidation, and row-level security that confines every query to one creator.

-- Bumped (to a fresh value of this sequence, never reused) whenever the creator's searchable content
-- changes; search-result cache keys include it, so a cached result can never outlive the content it
-- was computed from. A global sequence rather than a per-creator counter: a creator deleted and
-- re-created must not restart at a version whose cached results still sit in Redis.
CREATE SEQUENCE content_version_seq;
ALTER TABLE creators ADD COLUMN content_version bigint NOT NULL DEFAULT nextval('content_version_seq');

-- Identifies this database in shared Redis keys: two deployments (or two test databases) pointing at
-- one Redis must not read each other's cached results for a creator id they happen to share.
CREATE TABLE memory_instance (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id uuid NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO memory_instance DEFAULT VALUES;

-- The creator's style profile, computed by ingest; opaque to memory (JSONB), versioned so a writer
-- can update it with optimistic concurrency. Not named persona_profiles: ingest's own migration
-- already uses that name in the shared schema.
CREATE TABLE creator_personas (
    creator_id text PRIMARY KEY REFERENCES creators (id) ON DELETE CASCADE,
    profile jsonb NOT NULL CHECK (jsonb_typeof(profile) = 'object'),
    version bigint NOT NULL CHECK (version >= 1),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fans (
    creator_id text NOT NULL REFERENCES creators (id) ON DELETE CASCADE,
    fan_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (creator_id, fan_id)
);

-- Conversations written before this migration get their fan rows, then the link is enforced.
INSERT INTO fans (creator_id, fan_id, created_at)
SELECT creator_id, fan_id, min(created_at) FROM conversations GROUP BY creator_id, fan_id;
ALTER TABLE conversations ADD FOREIGN KEY (creator_id, fan_id)
    REFERENCES fans (creator_id, fan_id) ON DELETE CASCADE;
-- ListConversations pages a creator's conversations newest first.
CREATE INDEX conversations_by_creator ON conversations (creator_id, created_at DESC, fan_id, conversation_id);

-- Things a fan told the avatar about themselves ("name" -> "Sam", "likes" -> "sourdough"), one value
-- per key: a newer statement replaces an older one.
CREATE TABLE fan_facts (
    creator_id text NOT NULL,
    fan_id text NOT NULL,
    key text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{0,63}$'),
    value text NOT NULL CHECK (length(value) BETWEEN 1 AND 500),
    -- 'extracted' from a fan turn by the memory service, or 'explicit' (written through the API).
    origin text NOT NULL CHECK (origin IN ('extracted', 'explicit')),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (creator_id, fan_id, key),
    FOREIGN KEY (creator_id, fan_id) REFERENCES fans (creator_id, fan_id) ON DELETE CASCADE
);

-- Rolling summary of the fan's turns older than the verbatim window: covers every turn with
-- id <= covers_through_turn_id.
CREATE TABLE fan_summaries (
    creator_id text NOT NULL,
    fan_id text NOT NULL,
    summary text NOT NULL,
    covers_through_turn_id bigint NOT NULL,
    turns_covered integer NOT NULL CHECK (turns_covered >= 0),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (creator_id, fan_id),
    FOREIGN KEY (creator_id, fan_id) REFERENCES fans (creator_id, fan_id) ON DELETE CASCADE
);

-- Content version bump, in the database rather than in Python so that no write path (a future RPC,
-- a manual fix-up) can change content without invalidating cached search results. Statement-level
-- with transition tables: one UPDATE per statement, however many rows it touched.
CREATE FUNCTION bump_content_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE creators SET content_version = nextval('content_version_seq')
        WHERE id IN (SELECT DISTINCT creator_id FROM old_rows);
    ELSE
        UPDATE creators SET content_version = nextval('content_version_seq')
        WHERE id IN (SELECT DISTINCT creator_id FROM new_rows);
    END IF;
    RETURN NULL;
END
$$;
-- PostgreSQL allows transition tables only on single-event triggers, hence one trigger per event.
CREATE TRIGGER chunks_insert_bumps_version AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_content_version();
CREATE TRIGGER chunks_update_bumps_version AFTER UPDATE ON chunks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_content_version();
CREATE TRIGGER chunks_delete_bumps_version AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_content_version();
-- Source metadata (url, date, kind) is part of every hit and of the filters.
CREATE TRIGGER sources_update_bumps_version AFTER UPDATE ON sources
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_content_version();

-- Row-level security. The service runs every tenant query as the NOLOGIN role avatar_tenant (SET LOCAL
-- ROLE) with app.creator_id set for the transaction; the policies below then hide every row of every
-- other creator, whatever the SQL says. Superusers and the table owner would bypass RLS: SET ROLE to
-- a non-owner, non-superuser role is what makes it bite (FORCE also covers a non-superuser owner).
-- Roles are cluster-wide; creating it is idempotent and tolerates a concurrent creator.
DO $$
BEGIN
    CREATE ROLE avatar_tenant NOLOGIN NOSUPERUSER NOINHERIT NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
-- The connecting user must be a member to SET ROLE (superusers need not be, but granting is harmless
-- only when not already one: a superuser is skipped to keep the grant list clean).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'avatar_tenant', 'MEMBER') THEN
        EXECUTE format('GRANT avatar_tenant TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO avatar_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    creators, sources, chunks, conversations, turns, creator_personas, fans, fan_facts, fan_summaries
    TO avatar_tenant;
GRANT SELECT ON memory_instance TO avatar_tenant;
GRANT USAGE ON SEQUENCE content_version_seq, turns_id_seq TO avatar_tenant;

-- NULLIF: an unset app.creator_id reads as '' (or NULL), which matches no creator: fail closed.
ALTER TABLE creators ENABLE ROW LEVEL SECURITY;
ALTER TABLE creators FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_creators ON creators TO avatar_tenant
    USING (id = NULLIF(current_setting('app.creator_id', true), ''))
    WITH CHECK (id = NULLIF(current_setting('app.creator_id', true), ''));

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sources', 'chunks', 'conversations', 'turns', 'creator_personas', 'fans',
                             'fan_facts', 'fan_summaries'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_%s ON %I TO avatar_tenant '
            'USING (creator_id = NULLIF(current_setting(''app.creator_id'', true), '''')) '
            'WITH CHECK (creator_id = NULLIF(current_setting(''app.creator_id'', true), ''''))', t, t);
    END LOOP;
END
$$;
-- FORCE with policies only for avatar_tenant leaves a non-superuser owner with no policy, i.e. no rows:
-- give the owner (migrations, operators) an explicit see-everything policy instead of silent emptiness.
DO $$
DECLARE
    t text;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        FOREACH t IN ARRAY ARRAY['creators', 'sources', 'chunks', 'conversations', 'turns',
                                 'creator_personas', 'fans', 'fan_facts', 'fan_summaries'] LOOP
            EXECUTE format('CREATE POLICY owner_all_%s ON %I TO %I USING (true) WITH CHECK (true)',
                           t, t, current_user);
        END LOOP;
    END IF;
END
$$;
