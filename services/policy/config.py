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
    """Postgres holding the controls and the decision audit (``AVATAR_DATABASE_URL``)."""
    pool_size: int
    """Most Postgres connections (``AVATAR_POLICY_POOL_SIZE``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PolicyConfig:
        url = c.database_url(env)
        if url is None:
            raise c.ConfigError("AVATAR_DATABASE_URL is required (avatar up starts an embedded Postgres)")
        return cls(
            server=c.ServerConfig.from_env("policy", env),
            database_url=url,
            pool_size=c.env_int("AVATAR_POLICY_POOL_SIZE", 10, env, minimum=1),
        )
