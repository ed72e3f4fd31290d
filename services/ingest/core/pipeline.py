"""An ingest job: entries -> documents -> dedupe -> chunks -> embeddings -> memory, resumably.

The pipeline depends on ports (embedding, chunk storage, ingest records) so it stays free of gRPC
and SQL. Durability comes from the order of writes: a file's outcome is recorded only after all of
its chunks are in memory, and a document is recorded (``IngestRecords.record_documents``) only after
its chunks are. A job that dies mid-file is resumed from its first unrecorded file; documents of that
file that did reach memory are recognised as unchanged and memory's content-hash uniqueness absorbs
the rest, so a resume never duplicates anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from services.ingest.core.archive import Entry, list_entries
from services.ingest.core.chunker import ChunkingParams, Deduplicator, chunk_document
from services.ingest.core.errors import IngestError
from services.ingest.core.jobs import FileOutcome, FileStatus, Job, JobState, status_for_error
from services.ingest.core.neardup import MIN_WORDS, NearDuplicateIndex, simhash, word_count
from services.ingest.core.normalize import content_hash
from services.ingest.core.parsers import Parsed, parse_entry
from services.ingest.core.persona import SourceText, StyleProfile, compute_profile
from services.ingest.core.types import Chunk, Document

EMBED_BATCH = 64
SourceKey = tuple[str, str]
"""``(platform, external_id)``: how memory identifies a source."""


class EmbedPort(Protocol):
    """Turns texts into unit vectors."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass(frozen=True)
class StoredCounts:
    """What the store did with a batch of chunks."""

    inserted: int
    unchanged: int


class StorePort(Protocol):
    """The memory service: chunks with embeddings (idempotent by content hash), and the creator's
    persona profile, which memory owns (it keeps the creator's corrections over what we compute)."""

    async def write(
        self, creator_id: str, items: Sequence[tuple[Chunk, str, list[float]]]
    ) -> StoredCounts: ...

    async def count_chunks(self, creator_id: str) -> int: ...

    async def save_profile(self, creator_id: str, profile: StyleProfile) -> None: ...


@dataclass(frozen=True)
class KnownDocument:
    """A document already stored for the creator."""

    text_hash: str
    chunks: int
    simhash: int


@dataclass(frozen=True)
class StoredDocument:
    """A document whose chunks are all in memory, to record."""

    doc: Document
    text_hash: str
    simhash: int
    chunks: int


class IngestRecords(Protocol):
    """Durable job records and the creator's document index (Postgres in production)."""

    async def save_job(self, job: Job) -> None: ...

    async def save_file(self, job_id: str, outcome: FileOutcome) -> None: ...

    async def known_documents(self, creator_id: str) -> dict[SourceKey, KnownDocument]: ...

    async def record_documents(self, creator_id: str, docs: Sequence[StoredDocument]) -> None: ...

    async def forget_documents(self, creator_id: str) -> int: ...

    async def source_texts(self, creator_id: str) -> list[SourceText]: ...


ProgressCallback = Callable[[Job], Awaitable[None]]


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over a job (the benchmark reads them)."""

    parse: float = 0.0
    chunk: float = 0.0
    embed: float = 0.0
    write: float = 0.0
    profile: float = 0.0


def source_hash(doc: Document) -> str:
    """Hash of a whole document, so a changed post replaces its old chunks."""
    return hashlib.sha256(doc.text.encode("utf-8")).hexdigest()


@dataclass
class _JobState:
    """What one run of a job knows about the creator's content, updated as documents are stored."""

    known: dict[SourceKey, KnownDocument]
    by_hash: dict[str, SourceKey] = field(default_factory=dict)
    near: NearDuplicateIndex = field(default_factory=NearDuplicateIndex)
    dedupe: Deduplicator = field(default_factory=Deduplicator)

    def __post_init__(self) -> None:
        for key, known in self.known.items():
            self.by_hash.setdefault(known.text_hash, key)
            self.near.add(known.simhash, key)


class Pipeline:
    """Runs ingest jobs against the ports.

    Args:
        embed: Embedding port.
        store: Chunk storage port (memory).
        records: Job and document records.
        params: Chunking budget and overlap.
    """

    def __init__(
        self,
        embed: EmbedPort,
        store: StorePort,
        records: IngestRecords,
        params: ChunkingParams | None = None,
    ) -> None:
        self._embed = embed
        self._store = store
        self._records = records
        self._params = params or ChunkingParams()
        self.times = StageTimes()

    async def run(self, job: Job, on_progress: ProgressCallback | None = None) -> Job:
        """Run (or resume) ``job``: every entry under ``job.root`` not already recorded as finished.

        A file the parsers reject is recorded with its status and error and the job goes on: one bad
        file in an export must not cost the creator the rest of it.

        Returns:
            The finished job (SUCCEEDED; per-file errors are in its files).
        """

        async def publish(snapshot: Job) -> None:
            await self._records.save_job(snapshot)
            if on_progress is not None:
                await on_progress(snapshot)

        started = time.perf_counter()
        entries = await asyncio.to_thread(list_entries, Path(job.root), job.options)
        self.times.parse += time.perf_counter() - started
        done = {f.ordinal: f for f in job.files if f.status is not FileStatus.PENDING}
        job = replace(
            job,
            state=JobState.RUNNING,
            files_total=len(entries),
            files=tuple(done.values()),
            updated_at=_now(),
        )
        await publish(job)
        known = await self._records.known_documents(job.creator_id)
        if known and await self._store.count_chunks(job.creator_id) == 0:
            # Memory lost the creator's chunks behind our back (deleted there directly): our record
            # of "already stored" is stale and would make this ingest skip everything.
            await self._records.forget_documents(job.creator_id)
            known = {}
        state = _JobState(known)
        for ordinal, entry in enumerate(entries):
            if ordinal in done:
                continue
            outcome = await self._ingest_entry(job, ordinal, entry, state, publish)
            await self._records.save_file(job.job_id, outcome)
            job = replace(job, files=(*_finished(job.files), outcome), updated_at=_now())
            await publish(job)
        started = time.perf_counter()
        texts = await self._records.source_texts(job.creator_id)
        profile = await asyncio.to_thread(compute_profile, texts)
        await self._store.save_profile(job.creator_id, profile)
        self.times.profile += time.perf_counter() - started
        job = replace(job, state=JobState.SUCCEEDED, updated_at=_now())
        await publish(job)
        return job

    async def _ingest_entry(
        self, job: Job, ordinal: int, entry: Entry, state: _JobState, publish: ProgressCallback
    ) -> FileOutcome:
        outcome = FileOutcome(ordinal=ordinal, path=str(entry.rel))
        started = time.perf_counter()
        try:
            if entry.error is not None:
                raise entry.error
            parsed: Parsed = await asyncio.to_thread(_read_and_parse, entry, job)
        except IngestError as exc:
            return replace(outcome, status=status_for_error(exc), error=str(exc))
        finally:
            self.times.parse += time.perf_counter() - started
        outcome = replace(
            outcome,
            platform=parsed.platform,
            documents=len(parsed.documents),
            records_excluded=parsed.excluded,
        )
        started = time.perf_counter()
        fresh: list[tuple[StoredDocument, list[Chunk]]] = []
        for doc in parsed.documents:
            key = (doc.meta.platform, doc.meta.source_id)
            text_hash = content_hash(doc.text)
            known = state.known.get(key)
            if known is not None and known.text_hash == text_hash:
                outcome = replace(
                    outcome,
                    documents_unchanged=outcome.documents_unchanged + 1,
                    chunks_unchanged=outcome.chunks_unchanged + known.chunks,
                )
                continue
            other = state.by_hash.get(text_hash)
            sh = simhash(doc.text)
            near = state.near.find(sh, exclude=key) if word_count(doc.text) >= MIN_WORDS else None
            if (other is not None and other != key) or near is not None:
                outcome = replace(outcome, duplicates_dropped=outcome.duplicates_dropped + 1)
                continue
            state.by_hash[text_hash] = key
            state.near.add(sh, key)
            chunks = [c for c in chunk_document(doc, self._params) if state.dedupe.admit(c)]
            fresh.append((StoredDocument(doc, text_hash, sh, len(chunks)), chunks))
        self.times.chunk += time.perf_counter() - started
        outcome = await self._store_documents(job, state, fresh, outcome, publish)
        if outcome.documents == 0 and outcome.records_excluded == 0:
            return replace(outcome, status=FileStatus.INVALID, error=f"{entry.rel}: no documents")
        status = FileStatus.INGESTED if outcome.chunks_inserted else FileStatus.UNCHANGED
        return replace(outcome, status=status)

    async def _store_documents(
        self,
        job: Job,
        state: _JobState,
        fresh: list[tuple[StoredDocument, list[Chunk]]],
        outcome: FileOutcome,
        publish: ProgressCallback,
    ) -> FileOutcome:
        """Embed and write ``fresh`` in batches, one batch's write overlapping the next one's embedding.

        The embedding runs in the inference service and the write in memory/Postgres, so overlapping
        them keeps both busy. Writes stay in order and one at a time, and each records its documents
        only after their chunks are stored, so durability and resume are as without the overlap.
        """
        batch: list[tuple[Chunk, str]] = []
        completed: list[StoredDocument] = []  # documents whose last chunk is in `batch`
        writing: asyncio.Task[None] | None = None  # the previous batch's write

        async def write(
            rows: list[tuple[Chunk, str]], docs: list[StoredDocument], vectors: list[list[float]]
        ) -> None:
            nonlocal outcome
            started = time.perf_counter()
            if rows:
                counts = await self._store.write(
                    job.creator_id, [(c, h, v) for (c, h), v in zip(rows, vectors, strict=True)]
                )
                outcome = replace(
                    outcome,
                    chunks_inserted=outcome.chunks_inserted + counts.inserted,
                    chunks_unchanged=outcome.chunks_unchanged + counts.unchanged,
                )
            if docs:
                await self._records.record_documents(job.creator_id, docs)
                for stored in docs:
                    key = (stored.doc.meta.platform, stored.doc.meta.source_id)
                    state.known[key] = KnownDocument(stored.text_hash, stored.chunks, stored.simhash)
            self.times.write += time.perf_counter() - started
            # Progress (and the heartbeat that keeps another replica from resuming this job).
            await publish(replace(job, files=(*_finished(job.files), outcome), updated_at=_now()))

        async def flush() -> None:
            nonlocal batch, completed, writing
            rows, docs = batch, completed
            batch, completed = [], []
            vectors: list[list[float]] = []
            if rows:
                started = time.perf_counter()
                vectors = await self._embed.embed([c.text for c, _ in rows])
                self.times.embed += time.perf_counter() - started
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(write(rows, docs, vectors))

        try:
            for stored, chunks in fresh:
                doc_hash = source_hash(stored.doc)
                for chunk in chunks:
                    batch.append((chunk, doc_hash))
                    if len(batch) >= EMBED_BATCH:
                        await flush()
                completed.append(stored)
            await flush()
            assert writing is not None  # the last flush always starts a write
            await writing
        except BaseException:
            # Let a write already under way finish (its documents are recorded only if it stores
            # them), so nothing runs on after the job has stopped; its own error is secondary.
            if writing is not None and not writing.done():
                await asyncio.wait([writing])
            if writing is not None and writing.done() and not writing.cancelled():
                writing.exception()  # retrieved, so asyncio does not log it as never retrieved
            raise
        return outcome


def _read_and_parse(entry: Entry, job: Job) -> Parsed:
    return parse_entry(entry.read(), entry.rel, job.options)


def _finished(files: tuple[FileOutcome, ...]) -> tuple[FileOutcome, ...]:
    return tuple(f for f in files if f.status is not FileStatus.PENDING)


def _now() -> datetime:
    return datetime.now(UTC)


def request_error(job: Job) -> IngestError | None:
    """The error to fail the request with when the input it named was itself rejected.

    A single uploaded file, a single path, or an archive rejected as a whole (unsafe, a zip bomb)
    fails the call with INVALID_ARGUMENT or RESOURCE_EXHAUSTED. Inside a directory or a sound
    archive, each file's rejection is reported in its outcome and the job goes on, so a 1,000-file
    export with one bad file still reports the other 999. Unsupported formats are always reported,
    never errors.
    """
    from services.ingest.core.errors import InvalidInput, TooLarge

    root_name = PurePosixPath(job.root).name
    if len(job.files) != 1 or job.files[0].path != root_name:
        return None
    only = job.files[0]
    if only.status is FileStatus.TOO_LARGE:
        return TooLarge(only.path, only.error.removeprefix(f"{only.path}: "))
    if only.status is FileStatus.INVALID:
        return InvalidInput(only.path, only.error.removeprefix(f"{only.path}: "))
    return None
