"""Gateway configuration (``AVATAR_*`` environment variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common import config as c
from services.common.clients import split_target


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
    """The inference service when it is one replica (``AVATAR_INFERENCE_TARGET``)."""
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
    grounding_top_k: int = 8
    """Hits the reply's claims are grounded against (``AVATAR_GATEWAY_GROUNDING_TOP_K``): the
    ``top_k`` of the prompt and citations plus the next ones; at most ``top_k`` = those only."""
    sentence_grounding_k: int = 4
    """Hits searched with a reply sentence's own text when the fan's message retrieved fewer than
    ``top_k`` (``AVATAR_GATEWAY_SENTENCE_GROUNDING_K``; 0 = never)."""
    redis_url: str | None = None
    """Redis for the query-embedding cache (``AVATAR_REDIS_URL``; unset = no cache)."""
    inference_targets: tuple[str, ...] = ()
    """Inference replicas, routed to by creator (``AVATAR_INFERENCE_TARGETS``, comma-separated
    ``host:port``; set, it replaces ``inference_target``)."""
    inference_dns: str | None = None
    """``host:port`` of a headless Service whose records are the inference replicas
    (``AVATAR_INFERENCE_DNS``; set, it replaces both lists and is re-resolved periodically)."""
    inference_dns_refresh_seconds: float = 10.0
    """How often ``inference_dns`` is re-resolved (``AVATAR_INFERENCE_DNS_REFRESH_SECONDS``)."""

    @property
    def inference_replicas(self) -> tuple[str, ...]:
        """The static inference replicas in effect (ignored when ``inference_dns`` is set)."""
        return self.inference_targets or (self.inference_target,)

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
            grounding_top_k=c.env_int("AVATAR_GATEWAY_GROUNDING_TOP_K", 8, env, minimum=1),
            sentence_grounding_k=c.env_int("AVATAR_GATEWAY_SENTENCE_GROUNDING_K", 4, env),
            redis_url=c.redis_url(env),
            inference_targets=_targets(c.env_opt("AVATAR_INFERENCE_TARGETS", env)),
            inference_dns=_dns(c.env_opt("AVATAR_INFERENCE_DNS", env), env),
            inference_dns_refresh_seconds=_refresh(env),
        )


def _targets(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    targets = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    for target in targets:
        _check_target("AVATAR_INFERENCE_TARGETS", target)
    return targets


def _dns(raw: str | None, env: Mapping[str, str] | None) -> str | None:
    if raw is None:
        return None
    if c.env_opt("AVATAR_INFERENCE_TARGETS", env) is not None:
        raise c.ConfigError("set AVATAR_INFERENCE_TARGETS or AVATAR_INFERENCE_DNS, not both")
    _check_target("AVATAR_INFERENCE_DNS", raw.strip())
    return raw.strip()


def _check_target(name: str, target: str) -> None:
    try:
        split_target(target)
    except ValueError as exc:
        raise c.ConfigError(f"{name}: {exc}") from exc


def _refresh(env: Mapping[str, str] | None) -> float:
    seconds = c.env_float("AVATAR_INFERENCE_DNS_REFRESH_SECONDS", 10.0, env)
    if seconds <= 0:
        raise c.ConfigError(f"AVATAR_INFERENCE_DNS_REFRESH_SECONDS must be > 0, got {seconds}")
    return seconds
