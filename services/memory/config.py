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
    """HNSW ``ef_search`` per query (``AVATAR_MEMORY_EF_SEARCH``, default 64). Measured with
    ``bench/memory_search.py`` (100,000 MiniLM-embedded chunks, one creator): recall@10 against exact
    search 0.997 at 40, 0.999 at 64, 1.000 from 150; latency of 40 and 64 equal within noise, rising
    from 100. 64 keeps a margin for corpora less regular than the generated one."""
    pool_size: int
    """Most Postgres connections (``AVATAR_MEMORY_POOL_SIZE``)."""
    redis_url: str | None = None
    """Redis for the search-result cache (``AVATAR_REDIS_URL``); None runs without a cache."""
    cache_ttl_seconds: int = 300
    """Lifetime of a cached search result (``AVATAR_MEMORY_CACHE_TTL_SECONDS``; 0 turns caching off)."""
    summary_window: int = 20
    """Turns per fan kept verbatim before the rolling summary (``AVATAR_MEMORY_SUMMARY_WINDOW``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MemoryConfig:
        """Read the configuration from ``env`` (default: the process environment).

        Raises:
            ConfigError: ``AVATAR_DATABASE_URL`` is unset or a value is malformed.
        """
        url = c.require_database_url(c.database_url(env))
        return cls(
            server=c.ServerConfig.from_env("memory", env),
            database_url=url,
            ef_search=c.env_int("AVATAR_MEMORY_EF_SEARCH", 64, env, minimum=1),
            pool_size=c.env_int("AVATAR_MEMORY_POOL_SIZE", 10, env, minimum=1),
            redis_url=c.redis_url(env),
            cache_ttl_seconds=c.env_int("AVATAR_MEMORY_CACHE_TTL_SECONDS", 300, env, minimum=0),
            summary_window=c.env_int("AVATAR_MEMORY_SUMMARY_WINDOW", 20, env, minimum=1),
        )
