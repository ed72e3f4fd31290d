"""Inference service configuration (``AVATAR_*`` environment variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common import config as c


@dataclass(frozen=True)
class InferenceConfig:
    """Everything the inference service reads from the environment."""

    server: c.ServerConfig
    """Bind address, port, shutdown grace, tracing."""
    model_dir: Path
    """Holds ``generator/`` and ``embedder/`` (``AVATAR_MODEL_DIR``); built if missing."""
    intra_op_threads: int
    """ONNX Runtime intra-op threads (``AVATAR_INFERENCE_THREADS``; 0 = one per core)."""
    max_queue: int
    """Generation requests allowed to wait (``AVATAR_INFERENCE_MAX_QUEUE``); more get RESOURCE_EXHAUSTED."""
    max_tokens_limit: int
    """Upper bound on a request's max_tokens (``AVATAR_INFERENCE_MAX_TOKENS``)."""
    build_missing: bool
    """Build missing models at start (``AVATAR_INFERENCE_BUILD_MODELS``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InferenceConfig:
        return cls(
            server=c.ServerConfig.from_env("inference", env),
            model_dir=c.model_dir(env),
            intra_op_threads=c.env_int("AVATAR_INFERENCE_THREADS", 0, env),
            max_queue=c.env_int("AVATAR_INFERENCE_MAX_QUEUE", 64, env, minimum=1),
            max_tokens_limit=c.env_int("AVATAR_INFERENCE_MAX_TOKENS", 1024, env, minimum=1),
            build_missing=c.env_bool("AVATAR_INFERENCE_BUILD_MODELS", True, env),
        )
