"""Inference service configuration (``AVATAR_*`` environment variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common import config as c
from services.inference.core.engine import EngineConfig


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
    max_batch: int = 16
    """Sequences decoded together (``AVATAR_INFERENCE_MAX_BATCH``)."""
    max_seq_len: int = 2048
    """Tokens per sequence, prompt plus reply (``AVATAR_INFERENCE_MAX_SEQ_LEN``; capped at the model's)."""
    prefill_chunk: int = 512
    """Prompt tokens computed per engine step (``AVATAR_INFERENCE_PREFILL_CHUNK``)."""
    max_decode_stall_ms: int = 2000
    """Longest a streaming reply pauses while new prompts are prefilled first
    (``AVATAR_INFERENCE_MAX_DECODE_STALL_MS``; 0 decodes at every step)."""
    kv_cache_mb: int = 256
    """Prefix KV cache budget in MiB (``AVATAR_INFERENCE_KV_CACHE_MB``; 0 disables reuse)."""
    kv_block_size: int = 16
    """Tokens per prefix-cache block (``AVATAR_INFERENCE_KV_BLOCK_SIZE``)."""
    embed_max_batch: int = 128
    """Most texts merged into one embedding pass (``AVATAR_INFERENCE_EMBED_MAX_BATCH``)."""
    embed_max_wait_ms: int = 5
    """Longest an Embed call waits for others to share its batch (``AVATAR_INFERENCE_EMBED_MAX_WAIT_MS``)."""
    embed_max_batch_tokens: int = 1024
    """Most padded tokens per embedding model run (``AVATAR_INFERENCE_EMBED_MAX_BATCH_TOKENS``)."""

    def engine_config(self) -> EngineConfig:
        """The generation engine's sizing."""
        return EngineConfig(
            max_batch=self.max_batch,
            max_seq_len=self.max_seq_len,
            prefill_chunk=self.prefill_chunk,
            max_decode_stall_s=self.max_decode_stall_ms / 1000,
            kv_cache_bytes=self.kv_cache_mb * 1024 * 1024,
            block_size=self.kv_block_size,
            max_queue=self.max_queue,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InferenceConfig:
        """Read the ``AVATAR_*`` variables (``env`` defaults to ``os.environ``)."""
        return cls(
            server=c.ServerConfig.from_env("inference", env),
            model_dir=c.model_dir(env),
            intra_op_threads=c.env_int("AVATAR_INFERENCE_THREADS", 0, env),
            max_queue=c.env_int("AVATAR_INFERENCE_MAX_QUEUE", 64, env, minimum=1),
            max_tokens_limit=c.env_int("AVATAR_INFERENCE_MAX_TOKENS", 1024, env, minimum=1),
            build_missing=c.env_bool("AVATAR_INFERENCE_BUILD_MODELS", True, env),
            max_batch=c.env_int("AVATAR_INFERENCE_MAX_BATCH", 16, env, minimum=1),
            max_seq_len=c.env_int("AVATAR_INFERENCE_MAX_SEQ_LEN", 2048, env, minimum=2),
            prefill_chunk=c.env_int("AVATAR_INFERENCE_PREFILL_CHUNK", 512, env, minimum=1),
            max_decode_stall_ms=c.env_int("AVATAR_INFERENCE_MAX_DECODE_STALL_MS", 2000, env, minimum=0),
            kv_cache_mb=c.env_int("AVATAR_INFERENCE_KV_CACHE_MB", 256, env, minimum=0),
            kv_block_size=c.env_int("AVATAR_INFERENCE_KV_BLOCK_SIZE", 16, env, minimum=1),
            embed_max_batch=c.env_int("AVATAR_INFERENCE_EMBED_MAX_BATCH", 128, env, minimum=1),
            embed_max_wait_ms=c.env_int("AVATAR_INFERENCE_EMBED_MAX_WAIT_MS", 5, env, minimum=0),
            embed_max_batch_tokens=c.env_int("AVATAR_INFERENCE_EMBED_MAX_BATCH_TOKENS", 1024, env, minimum=1),
        )
