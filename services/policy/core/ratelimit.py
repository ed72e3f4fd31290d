"""Per-fan and per-creator token buckets in Redis, checked and spent atomically by one Lua script.

Both buckets of a message are tested in one script call: either both have a token and both are
spent, or neither is, so a fan refused by the creator-wide limit does not also lose a fan token.
Redis keeps nothing that cannot be rebuilt: a lost bucket simply starts full again.

Failure policy is *closed*: if Redis cannot be reached the message is not let through
(:class:`RateLimiterUnavailable`), because an unlimited avatar is exactly what a rate limit exists
to prevent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.policy.core.controls import RateLimit

KEY_PREFIX = "avatar:policy:bucket:"
"""Redis key prefix of the buckets."""

# KEYS: bucket keys. ARGV[1]: now in ms ("" = Redis TIME), then per key: tokens per ms, burst.
# Returns {index of the first empty bucket (0 = allowed), ms until it holds a token}.
_SCRIPT = """
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local tokens = {}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 't', 'ts')
  local have = tonumber(state[1])
  local ts = tonumber(state[2])
  if have == nil or ts == nil then
    have = burst
    ts = now
  end
  have = math.min(burst, have + math.max(0, now - ts) * rate)
  if have < 1 then
    return {i, math.ceil((1 - have) / rate)}
  end
  tokens[i] = have
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  redis.call('HSET', KEYS[i], 't', tostring(tokens[i] - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate) + 1000)
end
return {0, 0}
"""


class RateLimited(Exception):
    """A bucket is empty.

    Attributes:
        subject: ``"fan:<creator>/<fan>"`` or ``"creator:<creator>"``.
        retry_after_ms: When the bucket will hold a token again.
    """

    def __init__(self, subject: str, retry_after_ms: int) -> None:
        super().__init__(f"rate limit reached for {subject}; retry in {retry_after_ms} ms")
        self.subject = subject
        self.retry_after_ms = retry_after_ms


class RateLimiterUnavailable(Exception):
    """Redis could not be reached; messages are refused until it can (fail closed)."""


@dataclass(frozen=True)
class Bucket:
    """One bucket to spend a token from.

    Attributes:
        subject: What it limits, used in the key and in errors.
        limit: Its rate and size.
    """

    subject: str
    limit: RateLimit


class RateLimiter:
    """Spends tokens from Redis buckets.

    Args:
        redis: A ``redis.asyncio.Redis`` client.
    """

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._script = redis.register_script(_SCRIPT)

    async def spend(self, buckets: list[Bucket], *, now_ms: int | None = None) -> None:
        """Take one token from every bucket, or from none.

        Args:
            buckets: The buckets; those with ``per_minute == 0`` are unlimited and skipped.
            now_ms: The clock in milliseconds; ``None`` uses Redis's own clock, so every policy
                replica agrees on time.

        Raises:
            RateLimited: A bucket is empty (nothing was spent).
            RateLimiterUnavailable: Redis failed.
        """
        active = [b for b in buckets if b.limit.per_minute > 0]
        if not active:
            return
        keys = [KEY_PREFIX + b.subject for b in active]
        args: list[str | int | float] = ["" if now_ms is None else now_ms]
        for b in active:
            args += [repr(b.limit.per_minute / 60_000.0), b.limit.burst]
        try:
            denied, retry_ms = await self._script(keys=keys, args=args)
        except Exception as exc:  # redis raises ConnectionError, TimeoutError, ResponseError...
            raise RateLimiterUnavailable(f"rate limiter store is unavailable: {exc}") from exc
        if int(denied):
            raise RateLimited(active[int(denied) - 1].subject, int(retry_ms))

    async def close(self) -> None:
        """Close the Redis client."""
        await self._redis.aclose()
