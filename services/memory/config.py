"""Memory service configuration (``AVATAR_*`` environment variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common import config as c


@dataclass(frozen=True)
class MemoryConfig:
    """Everything the memory service reads from the environment."""

    server: c.ServerConfig
    """Bind address, port, shutdown grace, tracing."""
    database_url: str
    """Postgres with pgvector (``AVATAR_DATABASE_URL``; required: ``avatar up`` sets it)."""
    ef_search: int
    """HNSW ``ef_search`` per query (``AVATAR_MEMORY_EF_SEARCH``): pgvector's default 40 recalls poorly."""
    pool_size: int
    """Most Postgres connections (``AVATAR_MEMORY_POOL_SIZE``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MemoryConfig:
        url = c.database_url(env)
        if url is None:
            raise c.ConfigError("AVATAR_DATABASE_URL is required (avatar up starts an embedded Postgres)")
        return cls(
            server=c.ServerConfig.from_env("memory", env),
            database_url=url,
            ef_search=c.env_int("AVATAR_MEMORY_EF_SEARCH", 100, env, minimum=1),
            pool_size=c.env_int("AVATAR_MEMORY_POOL_SIZE", 10, env, minimum=1),
        )
