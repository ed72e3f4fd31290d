"""Ingest service configuration (``AVATAR_*`` environment variables)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
    database_url: str | None = None
    """Postgres for job records, the document index and persona profiles (``AVATAR_DATABASE_URL``;
    required to serve: ``avatar up`` sets it)."""
    max_file_bytes: int = 256 * 1024 * 1024
    """Largest single file or archive member read (``AVATAR_INGEST_MAX_FILE_BYTES``)."""
    max_archive_bytes: int = 2 * 1024 * 1024 * 1024
    """Most bytes one .zip may expand to (``AVATAR_INGEST_MAX_ARCHIVE_BYTES``)."""
    spool_dir: Path | None = None
    """Where uploads wait until their job ends, so a crash can resume them
    (``AVATAR_INGEST_SPOOL_DIR``; default: ``<tmp>/avatar-ingest-spool``)."""
    resume_after_seconds: float = 30.0
    """An unfinished job whose heartbeat is older than this is resumed at start
    (``AVATAR_INGEST_RESUME_AFTER_SECONDS``)."""
    pool_size: int = 4
    """Most Postgres connections (``AVATAR_INGEST_POOL_SIZE``)."""

    @property
    def spool(self) -> Path:
        """The spool directory in effect."""
        return self.spool_dir or Path(tempfile.gettempdir()) / "avatar-ingest-spool"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestConfig:
        """Read the configuration; see each field for its variable."""
        spool = c.env_opt("AVATAR_INGEST_SPOOL_DIR", env)
        return cls(
            server=c.ServerConfig.from_env("ingest", env),
            inference_target=c.service_target("inference", env),
            memory_target=c.service_target("memory", env),
            max_upload_bytes=c.env_int("AVATAR_INGEST_MAX_UPLOAD_BYTES", 64 * 1024 * 1024, env, minimum=1),
            chunk_tokens=c.env_int("AVATAR_INGEST_CHUNK_TOKENS", 200, env, minimum=16),
            database_url=c.database_url(env),
            max_file_bytes=c.env_int("AVATAR_INGEST_MAX_FILE_BYTES", 256 * 1024 * 1024, env, minimum=1),
            max_archive_bytes=c.env_int(
                "AVATAR_INGEST_MAX_ARCHIVE_BYTES", 2 * 1024 * 1024 * 1024, env, minimum=1
            ),
            spool_dir=Path(spool) if spool else None,
            resume_after_seconds=c.env_float("AVATAR_INGEST_RESUME_AFTER_SECONDS", 30.0, env),
            pool_size=c.env_int("AVATAR_INGEST_POOL_SIZE", 4, env, minimum=1),
        )
