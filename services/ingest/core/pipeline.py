"""An ingest job: files -> documents -> chunks -> embeddings -> memory, with per-file outcomes.

The pipeline depends on two ports (embedding and chunk storage) so it stays free of gRPC; the
servicer plugs in clients of the inference and memory services.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from services.ingest.core.chunker import ChunkingParams, Deduplicator, chunk_document
from services.ingest.core.errors import IngestError
from services.ingest.core.parsers import iter_files, parse_path
from services.ingest.core.types import Chunk, Document

EMBED_BATCH = 64


class EmbedPort(Protocol):
    """Turns texts into unit vectors."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass(frozen=True)
class StoredCounts:
    """What the store did with a batch of chunks."""

    inserted: int
    unchanged: int


class StorePort(Protocol):
    """Writes embedded chunks for a creator (idempotent by content hash)."""

    async def write(
        self, creator_id: str, items: Sequence[tuple[Chunk, str, list[float]]]
    ) -> StoredCounts: ...


class JobState(StrEnum):
    """Lifecycle of a job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file."""

    path: str
    platform: str = ""
    documents: int = 0
    chunks_inserted: int = 0
    chunks_unchanged: int = 0
    error: str = ""


@dataclass(frozen=True)
class Job:
    """A snapshot of an ingest job."""

    job_id: str
    creator_id: str
    state: JobState = JobState.QUEUED
    files_total: int = 0
    files: tuple[FileOutcome, ...] = ()
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: str = ""

    @property
    def files_done(self) -> int:
        """Files finished, ingested or not."""
        return len(self.files)

    @property
    def chunks_inserted(self) -> int:
        """Chunks newly stored across files."""
        return sum(f.chunks_inserted for f in self.files)

    @property
    def chunks_unchanged(self) -> int:
        """Chunks that were already stored."""
        return sum(f.chunks_unchanged for f in self.files)


def new_job(creator_id: str) -> Job:
    """A fresh queued job."""
    return Job(job_id=uuid.uuid4().hex, creator_id=creator_id)


def source_hash(doc: Document) -> str:
    """Hash of a whole document, so a changed post replaces its old chunks."""
    return hashlib.sha256(doc.text.encode("utf-8")).hexdigest()


class Pipeline:
    """Runs ingest jobs against the ports.

    Args:
        embed: Embedding port.
        store: Chunk storage port.
        params: Chunking budget and overlap.
    """

    def __init__(self, embed: EmbedPort, store: StorePort, params: ChunkingParams | None = None) -> None:
        self._embed = embed
        self._store = store
        self._params = params or ChunkingParams()

    async def run(
        self, job: Job, root: Path, on_progress: Callable[[Job], Awaitable[None]] | None = None
    ) -> Job:
        """Ingest every file under ``root`` (or the file ``root``) for ``job.creator_id``.

        A file the parsers reject is recorded with its error and the job goes on: one bad file in
        an export must not cost the creator the rest of it.
        """
        files = list(iter_files(root))
        job = replace(job, state=JobState.RUNNING, files_total=len(files))
        if on_progress:
            await on_progress(job)
        dedupe = Deduplicator()
        for path in files:
            outcome = await self._ingest_file(job.creator_id, path, root, dedupe)
            job = replace(job, files=(*job.files, outcome))
            if on_progress:
                await on_progress(job)
        return replace(job, state=JobState.SUCCEEDED)

    async def _ingest_file(
        self, creator_id: str, path: Path, root: Path, dedupe: Deduplicator
    ) -> FileOutcome:
        rel = path.name if path == root else path.relative_to(root).as_posix()
        try:
            docs = parse_path(path, root)
        except IngestError as exc:
            return FileOutcome(path=rel, error=str(exc))
        items: list[tuple[Chunk, str]] = []
        for doc in docs:
            doc_hash = source_hash(doc)
            items.extend((c, doc_hash) for c in chunk_document(doc, self._params) if dedupe.admit(c))
        inserted = unchanged = 0
        for start in range(0, len(items), EMBED_BATCH):
            batch = items[start : start + EMBED_BATCH]
            vectors = await self._embed.embed([c.text for c, _ in batch])
            counts = await self._store.write(
                creator_id, [(c, h, v) for (c, h), v in zip(batch, vectors, strict=True)]
            )
            inserted += counts.inserted
            unchanged += counts.unchanged
        return FileOutcome(
            path=rel,
            platform=docs[0].meta.platform,
            documents=len(docs),
            chunks_inserted=inserted,
            chunks_unchanged=unchanged,
        )
