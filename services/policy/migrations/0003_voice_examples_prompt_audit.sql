-- Creator edits become examples of their voice, and the audit log keeps the prompt a reply was
-- generated with.

-- Every edited approval gets the next number of this sequence: newest edits first, and the
-- creator's highest number is the version the gateway compares to know its cached examples are
-- current (a global sequence, so a number is never reused even when drafts are deleted).
CREATE SEQUENCE policy_voice_example_seq;
ALTER TABLE policy_drafts ADD COLUMN example_seq bigint UNIQUE;
UPDATE policy_drafts d SET example_seq = o.n
FROM (SELECT id, row_number() OVER (ORDER BY decided_at, id) AS n FROM policy_drafts WHERE edited) o
WHERE d.id = o.id;
SELECT setval('policy_voice_example_seq', coalesce((SELECT max(example_seq) FROM policy_drafts), 0) + 1, false);
CREATE INDEX policy_drafts_voice_examples ON policy_drafts (creator_id, example_seq DESC)
    WHERE example_seq IS NOT NULL;

-- What the model was told: the per-creator system message (persona, stated facts, voice examples)
-- and the versions it was rendered from. Bounded by the gateway's rendering caps (a few KiB).
ALTER TABLE policy_audit
    ADD COLUMN system_prompt text NOT NULL DEFAULT '',
    ADD COLUMN persona_version bigint NOT NULL DEFAULT 0 CHECK (persona_version >= 0),
    ADD COLUMN voice_examples_version bigint NOT NULL DEFAULT 0 CHECK (voice_examples_version >= 0);
