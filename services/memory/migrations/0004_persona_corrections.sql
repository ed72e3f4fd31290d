-- One home for the persona profile: memory owns it (creator content, RLS, DeleteCreator's cascade).
-- Ingest used to keep its own copy with the creator's corrections (ingest_persona_profiles, dropped
-- by ingest's migration 0002); the corrections now live here, next to what ingest computed.
--
-- `profile` is what ingest last computed. `corrections` holds the fields the creator corrected, by
-- name: they are applied over `profile` on every read and a re-computation never touches them.
ALTER TABLE creator_personas
    ADD COLUMN corrections jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(corrections) = 'object');
