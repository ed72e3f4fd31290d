-- Policy service schema: versioned creator controls and the decision audit log.

-- Every saved version is kept (never updated in place), so an audit record can always be read
-- against the exact rules that produced it, and a creator can see or restore earlier versions.
CREATE TABLE policy_controls (
    creator_id text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    document jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (creator_id, version)
);

-- One row per policy decision on a fan message ('input') or a reply sentence ('output').
CREATE TABLE policy_decisions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    creator_id text NOT NULL,
    stage text NOT NULL CHECK (stage IN ('input', 'output')),
    action text NOT NULL CHECK (action IN ('allow', 'refuse', 'rewrite', 'abstain', 'hold')),
    reasons jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(reasons) = 'array'),
    -- The controls version the decision was made under (0 = built-in defaults; NULL = not given).
    controls_version integer CHECK (controls_version >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The creator's audit view reads newest first.
CREATE INDEX policy_decisions_creator_created ON policy_decisions (creator_id, created_at DESC, id DESC);
