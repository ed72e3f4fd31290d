-- Approval queue and per-turn audit records.

-- A reply held for the creator's approval (autonomy = approval). The fan never sees draft_text;
-- they see final_text once the creator approved (possibly after editing it).
CREATE TABLE policy_drafts (
    id text PRIMARY KEY,
    creator_id text NOT NULL,
    fan_id text NOT NULL,
    conversation_id text NOT NULL,
    fan_message text NOT NULL,
    draft_text text NOT NULL,
    -- What the draft rested on: [{chunk_id, quote}], and the output decisions taken on it.
    evidence jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(evidence) = 'array'),
    decisions jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(decisions) = 'array'),
    controls_version integer NOT NULL DEFAULT 0 CHECK (controls_version >= 0),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    final_text text,
    -- True when the creator changed the draft before approving: the pair is a teaching example.
    edited boolean NOT NULL DEFAULT false,
    note text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    -- When the gateway first handed the approved text to the fan app (and stored it as a turn).
    delivered_at timestamptz,
    CHECK ((status = 'approved') = (final_text IS NOT NULL))
);

-- The creator's queue (pending first, oldest first) and the fan's view of their own replies.
CREATE INDEX policy_drafts_creator_status ON policy_drafts (creator_id, status, created_at);
CREATE INDEX policy_drafts_fan ON policy_drafts (creator_id, fan_id, conversation_id, created_at);

-- One row per fan turn: what came in, what was retrieved, what was drafted, every decision, and
-- what the fan finally got. Purged after the creator's retention period.
CREATE TABLE policy_audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    creator_id text NOT NULL,
    fan_id text NOT NULL,
    conversation_id text NOT NULL,
    fan_message text NOT NULL,
    retrieved jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(retrieved) = 'array'),
    draft_text text NOT NULL DEFAULT '',
    decisions jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(decisions) = 'array'),
    final_text text NOT NULL DEFAULT '',
    outcome text NOT NULL CHECK (outcome IN ('answered', 'refused', 'held', 'paused')),
    controls_version integer NOT NULL DEFAULT 0 CHECK (controls_version >= 0),
    draft_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX policy_audit_creator_id ON policy_audit (creator_id, id DESC);
CREATE INDEX policy_audit_creator_created ON policy_audit (creator_id, created_at);
