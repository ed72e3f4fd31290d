"""Redis caches: hot search results (used by the memory store) and query embeddings (used by the
gateway).

Both fail open: Redis down, slow or full only means a cache miss, never a failed search. After a
failure the cache stays off for :data:`RETRY_AFTER_S`, so an outage costs one short timeout per
interval instead of one per query.

Key namespaces (Redis holds nothing that cannot be rebuilt):

* ``avatar:memory:search:{instance}:{creator}:{content_version}:{sha256}``: a search's hits
  (see :func:`services.memory.core.cache.search_key`); TTL ``AVATAR_MEMORY_CACHE_TTL_SECONDS``.
* ``avatar:emb:{model}:{sha256(text)}``: a query embedding as little-endian float32 bytes; see
  :class:`EmbeddingCache`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SEARCH_PREFIX: Final = "avatar:memory:search:"
EMBEDDING_PREFIX: Final = "avatar:emb:"
RETRY_AFTER_S: Final = 5.0
"""How long a cache stays off after a Redis error."""

# Redis is a cache here: a search must never wait long for it.
_SOCKET_TIMEOUT_S: Final = 0.25


def connect(url: str) -> aioredis.Redis:
    """A Redis client with short timeouts, suitable for a fail-open cache."""
    client: aioredis.Redis = aioredis.from_url(
        url, socket_timeout=_SOCKET_TIMEOUT_S, socket_connect_timeout=_SOCKET_TIMEOUT_S
    )
    return client


class _FailOpen:
    """Shared circuit: after an error, skip Redis for a while."""

    def __init__(self) -> None:
        self._off_until = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self._off_until

    def failed(self, what: str, exc: BaseException) -> None:
        self._off_until = time.monotonic() + RETRY_AFTER_S
        log.warning("redis %s failed (%s); cache off for %.0fs", what, exc, RETRY_AFTER_S)


class RedisSearchCache:
    """:class:`services.memory.core.cache.SearchCache` over Redis.

    Args:
        client: A Redis client (see :func:`connect`).
        ttl_seconds: Lifetime of an entry; entries of an old content version are never read again
            and simply expire.
    """

    def __init__(self, client: aioredis.Redis, ttl_seconds: int = 300) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._circuit = _FailOpen()

    async def get(self, key: str) -> bytes | None:
        """The cached value, or None (miss, or Redis unavailable)."""
        if not self._circuit.available():
            return None
        try:
            value: Any = await self._client.get(SEARCH_PREFIX + key)
        except (RedisError, OSError, TimeoutError) as exc:
            self._circuit.failed("get", exc)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes) -> None:
        """Store a value with the TTL (errors are logged, not raised)."""
        if not self._circuit.available():
            return
        try:
            await self._client.set(SEARCH_PREFIX + key, value, ex=self._ttl)
        except (RedisError, OSError, TimeoutError) as exc:
            self._circuit.failed("set", exc)

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()


class EmbeddingCache:
    """Query embeddings by (model, text), for the gateway to skip ``InferenceService.Embed`` on repeats.

    Fans ask the same things ("what camera do you use?"); an embedding depends only on the model and
    the exact text, so it can be cached for long and shared by every gateway replica. The model name is
    part of the key: a new embedder never reads the old one's vectors.

    Usage in the gateway (sketch)::

        vec = await cache.get(model, text)
        if vec is None:
            vec = await inference.embed(text)
            await cache.put(model, text, vec)

    Args:
        client: A Redis client (see :func:`connect`).
        ttl_seconds: Lifetime of an entry (default one week).
    """

    def __init__(self, client: aioredis.Redis, ttl_seconds: int = 7 * 24 * 3600) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._circuit = _FailOpen()

    @staticmethod
    def key(model: str, text: str) -> str:
        """The Redis key of one embedding."""
        return f"{EMBEDDING_PREFIX}{model}:{hashlib.sha256(text.encode()).hexdigest()}"

    async def get(self, model: str, text: str) -> npt.NDArray[np.float32] | None:
        """The cached embedding, or None (miss, or Redis unavailable)."""
        if not self._circuit.available():
            return None
        try:
            value: Any = await self._client.get(self.key(model, text))
        except (RedisError, OSError, TimeoutError) as exc:
            self._circuit.failed("embedding get", exc)
            return None
        if not isinstance(value, bytes) or len(value) % 4:
            return None
        return np.frombuffer(value, dtype="<f4").astype(np.float32)

    async def put(self, model: str, text: str, embedding: npt.ArrayLike) -> None:
        """Cache an embedding (errors are logged, not raised)."""
        if not self._circuit.available():
            return
        data = np.ascontiguousarray(embedding, dtype="<f4").tobytes()
        try:
            await self._client.set(self.key(model, text), data, ex=self._ttl)
        except (RedisError, OSError, TimeoutError) as exc:
            self._circuit.failed("embedding put", exc)

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()
