"""Policy service configuration (``AVATAR_*`` environment variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common import config as c


@dataclass(frozen=True)
class PolicyConfig:
    """Everything the policy service reads from the environment."""

    server: c.ServerConfig
    """Bind address, port, shutdown grace, tracing."""
    database_url: str
    """Postgres holding the controls, drafts and audit records (``AVATAR_DATABASE_URL``)."""
    pool_size: int
    """Most Postgres connections (``AVATAR_POLICY_POOL_SIZE``)."""
    redis_url: str | None = None
    """Redis for the rate-limit buckets (``AVATAR_REDIS_URL``); unset = no rate limits."""
    inference_target: str | None = None
    """Inference service for embedding fan messages against blocked-topic examples
    (``AVATAR_INFERENCE_TARGET``); unset = keyword matching only."""
    output_controls_max_age_ms: float = 250.0
    """How old the controls behind a per-sentence CheckOutput may be
    (``AVATAR_POLICY_OUTPUT_CONTROLS_MAX_AGE_MS``; 0 = a database read per sentence). CheckInput
    always reads them fresh; a kill switch saved through another replica reaches the sentences of
    a reply already streaming within this long, and through this one at once."""
    audit_purge_interval_s: float = 3600.0
    """How often audit records past their creator's retention are purged
    (``AVATAR_POLICY_AUDIT_PURGE_SECONDS``; 0 = only on RecordTurn and PurgeAudit)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PolicyConfig:
        url = c.require_database_url(c.database_url(env))
        # At most a second: the kill switch must reach a streaming reply that fast on every replica.
        max_age_ms = c.env_float(
            "AVATAR_POLICY_OUTPUT_CONTROLS_MAX_AGE_MS", 250.0, env, minimum=0, maximum=1000
        )
        return cls(
            server=c.ServerConfig.from_env("policy", env),
            database_url=url,
            pool_size=c.env_int("AVATAR_POLICY_POOL_SIZE", 10, env, minimum=1),
            redis_url=c.redis_url(env),
            inference_target=c.service_target("inference", env),
            output_controls_max_age_ms=max_age_ms,
            audit_purge_interval_s=c.env_float("AVATAR_POLICY_AUDIT_PURGE_SECONDS", 3600.0, env),
        )
