-- API keys: only a hash of the secret is stored; the key is shown once when created.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    secret_hash text NOT NULL,
    role        text NOT NULL CHECK (role IN ('fan-app', 'creator-admin', 'operator')),
    creator_id  text,
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    -- Tenant roles are bound to one creator; the operator role to none.
    CHECK ((role = 'operator') = (creator_id IS NULL))
);
