"""Gateway configuration (``AVATAR_*`` environment variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common import config as c


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway reads from the environment."""

    server: c.ServerConfig
    """Bind address, port, shutdown grace, tracing."""
    policy_target: str
    """Policy service (``AVATAR_POLICY_TARGET``)."""
    memory_target: str
    """Memory service (``AVATAR_MEMORY_TARGET``)."""
    inference_target: str
    """Inference service (``AVATAR_INFERENCE_TARGET``)."""
    max_tokens: int
    """Longest reply in tokens (``AVATAR_GATEWAY_MAX_TOKENS``)."""
    temperature: float
    """Sampling temperature of replies (``AVATAR_GATEWAY_TEMPERATURE``; 0 = greedy)."""
    top_k: int
    """Citations retrieved per turn (``AVATAR_GATEWAY_TOP_K``)."""
    min_score: float
    """Relevance below which retrieved content is not used (``AVATAR_GATEWAY_MIN_SCORE``)."""
    max_message_chars: int
    """Longest accepted fan message (``AVATAR_GATEWAY_MAX_MESSAGE_CHARS``)."""
    redis_url: str | None = None
    """Redis for the query-embedding cache (``AVATAR_REDIS_URL``; unset = no cache)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        return cls(
            server=c.ServerConfig.from_env("gateway", env),
            policy_target=c.service_target("policy", env),
            memory_target=c.service_target("memory", env),
            inference_target=c.service_target("inference", env),
            max_tokens=c.env_int("AVATAR_GATEWAY_MAX_TOKENS", 64, env, minimum=1),
            temperature=c.env_float("AVATAR_GATEWAY_TEMPERATURE", 0.7, env),
            top_k=c.env_int("AVATAR_GATEWAY_TOP_K", 4, env, minimum=1),
            min_score=c.env_float("AVATAR_GATEWAY_MIN_SCORE", 0.3, env),
            max_message_chars=c.env_int("AVATAR_GATEWAY_MAX_MESSAGE_CHARS", 4000, env, minimum=1),
            redis_url=c.redis_url(env),
        )
