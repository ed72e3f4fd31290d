-- The persona profile moved to the memory service (creator_personas, with the creator's corrections;
-- memory migration 0004). Ingest computes it and writes it there through MemoryService, so its own
-- copy goes. Profiles are recomputed by the next ingest of a creator; corrections made through the
-- old IngestService API are not carried over (the two services may use different databases).
DROP TABLE IF EXISTS ingest_persona_profiles;
