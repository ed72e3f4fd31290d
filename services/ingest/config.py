"""Ingest service configuration (``AVATAR_*`` environment variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common import config as c


@dataclass(frozen=True)
class IngestConfig:
    """Everything the ingest service reads from the environment."""

    server: c.ServerConfig
    """Bind address, port, shutdown grace, tracing."""
    inference_target: str
    """Inference service for embeddings (``AVATAR_INFERENCE_TARGET``)."""
    memory_target: str
    """Memory service that stores chunks (``AVATAR_MEMORY_TARGET``)."""
    max_upload_bytes: int
    """Largest accepted upload (``AVATAR_INGEST_MAX_UPLOAD_BYTES``)."""
    chunk_tokens: int
    """Token budget of one chunk (``AVATAR_INGEST_CHUNK_TOKENS``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestConfig:
        return cls(
            server=c.ServerConfig.from_env("ingest", env),
            inference_target=c.service_target("inference", env),
            memory_target=c.service_target("memory", env),
            max_upload_bytes=c.env_int("AVATAR_INGEST_MAX_UPLOAD_BYTES", 64 * 1024 * 1024, env, minimum=1),
            chunk_tokens=c.env_int("AVATAR_INGEST_CHUNK_TOKENS", 200, env, minimum=16),
        )
