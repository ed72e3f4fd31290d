"""IngestService servicer: proto <-> pipeline, job running and watching, deletion.

The persona profile ingest computes is written to memory, which owns it (MemoryService.*PersonaProfile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import psycopg
import psycopg_pool

from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import ingest_service_pb2 as pb
from avatar.v1 import ingest_service_pb2_grpc as pb_grpc
from avatar.v1 import memory_service_pb2 as mem_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import types_pb2
from services.common.clients import open_channel
from services.common.config import require_database_url
from services.common.convert import kind_to_pb, platform_from_pb, platform_to_pb, ts_to_pb
from services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from services.common.server import ServiceSpec
from services.ingest.config import IngestConfig
from services.ingest.core.chunker import ChunkingParams
from services.ingest.core.errors import IngestError, InvalidInput, TooLarge, UnsupportedFormat
from services.ingest.core.jobs import FileStatus, Job, JobState, new_job
from services.ingest.core.persona import StyleProfile
from services.ingest.core.pipeline import Pipeline, StoredCounts, request_error
from services.ingest.core.types import Chunk, ParseOptions
from services.ingest.records import PostgresRecords, open_records

log = logging.getLogger(__name__)
Ctx = grpc.aio.ServicerContext[Any, Any]
_STATES = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
}
_FILE_STATUSES = {
    FileStatus.PENDING: pb.FILE_STATUS_PENDING,
    FileStatus.INGESTED: pb.FILE_STATUS_INGESTED,
    FileStatus.UNCHANGED: pb.FILE_STATUS_UNCHANGED,
    FileStatus.UNSUPPORTED: pb.FILE_STATUS_UNSUPPORTED,
    FileStatus.INVALID: pb.FILE_STATUS_INVALID,
    FileStatus.TOO_LARGE: pb.FILE_STATUS_TOO_LARGE,
}
_FACT_KINDS = {
    "owns": mem_pb.STATED_FACT_KIND_OWNS,
    "does": mem_pb.STATED_FACT_KIND_DOES,
    "never": mem_pb.STATED_FACT_KIND_NEVER,
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CREATOR_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: How often a watcher re-reads a job another replica is running.
WATCH_POLL_SECONDS = 0.5


def job_to_pb(job: Job) -> pb.Job:
    """A job snapshot as its proto."""
    return pb.Job(
        job_id=job.job_id,
        creator_id=job.creator_id,
        state=_STATES[job.state],
        files_total=job.files_total,
        files_done=job.files_done,
        chunks_inserted=job.chunks_inserted,
        chunks_unchanged=job.chunks_unchanged,
        files=[
            pb.FileResult(
                path=f.path,
                platform=platform_to_pb(f.platform),
                documents=f.documents,
                chunks_inserted=f.chunks_inserted,
                chunks_unchanged=f.chunks_unchanged,
                error=f.error,
                status=_FILE_STATUSES[f.status],
                documents_unchanged=f.documents_unchanged,
                duplicates_dropped=f.duplicates_dropped,
                records_excluded=f.records_excluded,
            )
            for f in job.files
        ],
        created_at=ts_to_pb(job.created_at),
        updated_at=ts_to_pb(job.updated_at),
        error=job.error,
        files_failed=job.files_failed,
    )


def profile_to_pb(creator_id: str, profile: StyleProfile) -> mem_pb.PersonaProfile:
    """A computed profile as memory stores it."""

    def terms(items: Sequence[tuple[str, int]]) -> list[mem_pb.StyleTerm]:
        return [mem_pb.StyleTerm(term=t, count=n) for t, n in items]

    return mem_pb.PersonaProfile(
        creator_id=creator_id,
        documents=profile.documents,
        mean_sentence_words=profile.mean_sentence_words,
        median_sentence_words=profile.median_sentence_words,
        emoji_per_post=profile.emoji_per_post,
        top_emoji=terms(profile.top_emoji),
        hashtags_per_post=profile.hashtags_per_post,
        top_hashtags=terms(profile.top_hashtags),
        signature_phrases=terms(profile.signature_phrases),
        topics=terms(profile.topics),
        languages=[mem_pb.StyleLanguage(language=lang, share=share) for lang, share in profile.languages],
        facts=[
            mem_pb.StatedFact(
                kind=_FACT_KINDS[f.kind],
                text=f.text,
                platform=platform_to_pb(f.platform),
                external_id=f.external_id,
            )
            for f in profile.facts
        ],
    )


def options_from_pb(msg: pb.IngestOptions, cfg: IngestConfig) -> ParseOptions:
    """Parse options from the request, with the service's limits."""
    return ParseOptions(
        include_replies=msg.include_replies,
        include_reposts=msg.include_reposts,
        csv_column=msg.csv_column or None,
        max_file_bytes=cfg.max_file_bytes,
        max_archive_bytes=cfg.max_archive_bytes,
    )


def _check_creator(creator_id: str) -> str:
    if not creator_id:
        raise InvalidArgument("creator_id is required")
    if not _CREATOR_ID.fullmatch(creator_id):
        raise InvalidArgument(
            f"creator_id must be 1-64 characters from [A-Za-z0-9_.-], got {creator_id[:80]!r}"
        )
    return creator_id


def _status_error(exc: IngestError, job_id: str) -> Exception:
    where = f" (job {job_id})"
    if isinstance(exc, TooLarge):
        return ResourceExhausted(f"{exc}{where}", subject="ingest-file-size")
    return InvalidArgument(f"{exc}{where}")


#: Statuses of a dependency that mean "not now" rather than "never": a job waits them out.
_TRANSIENT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
#: First and longest wait before a paused job tries again.
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 15.0


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an outage of Postgres, memory or inference that retrying can outlast."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in _TRANSIENT_CODES
    return isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout)


def retry_delay(pauses: int) -> float:
    """Seconds to wait before the ``pauses``-th retry (doubling, capped)."""
    return float(min(MAX_RETRY_SECONDS, RETRY_SECONDS * 2.0 ** min(pauses - 1, 16)))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


class InferenceEmbedder:
    """Embedding port backed by InferenceService.Embed."""

    def __init__(self, stub: inf_grpc.InferenceServiceAsyncStub) -> None:
        self._stub = stub

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed a batch."""
        reply = await self._stub.Embed(inf_pb.EmbedRequest(texts=list(texts)), timeout=120)
        return [list(e.values) for e in reply.embeddings]


class MemoryWriter:
    """Storage port backed by MemoryService."""

    def __init__(self, stub: mem_grpc.MemoryServiceAsyncStub) -> None:
        self._stub = stub

    async def write(self, creator_id: str, items: Sequence[tuple[Chunk, str, list[float]]]) -> StoredCounts:
        """WriteChunks for a batch."""
        chunks = [
            mem_pb.ChunkInput(
                source=types_pb2.SourceMeta(
                    platform=platform_to_pb(c.meta.platform),
                    external_id=c.meta.source_id,
                    url=c.meta.url or "",
                    created_at=ts_to_pb(c.meta.created_at),
                    kind=kind_to_pb(c.meta.kind),
                    path=c.meta.path,
                ),
                source_hash=source_hash,
                ordinal=c.ordinal,
                text=c.text,
                start_char=c.start_char,
                end_char=c.end_char,
                token_count=c.token_count,
                content_hash=c.content_hash,
                embedding=vector,
            )
            for c, source_hash, vector in items
        ]
        reply = await self._stub.WriteChunks(
            mem_pb.WriteChunksRequest(creator_id=creator_id, chunks=chunks), timeout=120
        )
        return StoredCounts(inserted=reply.chunks_inserted, unchanged=reply.chunks_unchanged)

    async def count_chunks(self, creator_id: str) -> int:
        """GetCreatorStats().chunks."""
        reply = await self._stub.GetCreatorStats(
            mem_pb.GetCreatorStatsRequest(creator_id=creator_id), timeout=30
        )
        return int(reply.chunks)

    async def save_profile(self, creator_id: str, profile: StyleProfile) -> None:
        """PutPersonaProfile: memory keeps the creator's corrections over this computed profile."""
        await self._stub.PutPersonaProfile(
            mem_pb.PutPersonaProfileRequest(
                creator_id=creator_id, profile=profile_to_pb(creator_id, profile)
            ),
            timeout=30,
        )

    async def delete_source(self, creator_id: str, platform: int, external_id: str) -> int:
        """DeleteSource; 0 when memory has no such source."""
        try:
            reply = await self._stub.DeleteSource(
                mem_pb.DeleteSourceRequest(creator_id=creator_id, platform=platform, external_id=external_id),  # type: ignore[arg-type]
                timeout=30,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return 0
            raise
        return int(reply.chunks_deleted)

    async def delete_creator(self, creator_id: str) -> None:
        """DeleteCreator; a creator memory never saw is already deleted."""
        try:
            await self._stub.DeleteCreator(mem_pb.DeleteCreatorRequest(creator_id=creator_id), timeout=60)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise


class JobRunner:
    """Runs jobs as tasks of this process and lets any call watch any job (also other replicas')."""

    def __init__(self, pipeline: Pipeline, records: PostgresRecords, spool: Path) -> None:
        self.pipeline = pipeline
        self.records = records
        self.spool = spool
        self._live: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[Job]] = {}
        self._changed = asyncio.Condition()

    async def _publish(self, job: Job) -> None:
        async with self._changed:
            self._live[job.job_id] = job
            self._changed.notify_all()

    async def start(self, job: Job) -> asyncio.Task[Job]:
        """Record ``job`` and start running it in the background."""
        await self.records.save_job(job)
        await self._publish(job)
        task = asyncio.create_task(self._run(job), name=f"ingest-{job.job_id}")
        self._tasks[job.job_id] = task
        return task

    async def _run(self, job: Job) -> Job:
        try:
            job = await self._run_until_done(job)
            error = request_error(job)
            if error is not None:
                job = replace(job, state=JobState.FAILED, error=str(error))
                await self._store_final(job)
            return job
        except Exception as exc:
            # A dependency refused the job itself (not a transient outage): the job stops.
            log.exception("ingest job %s failed", job.job_id)
            message = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__
            failed = replace(
                self._live.get(job.job_id, job), state=JobState.FAILED, error=f"stopped: {message}"
            )
            job = failed
            await self._store_final(failed)
            raise
        finally:
            await self._publish(job)
            self._tasks.pop(job.job_id, None)
            self._live.pop(job.job_id, None)
            if job.finished and Path(job.root).is_relative_to(self.spool):
                shutil.rmtree(Path(job.root).parent, ignore_errors=True)

    async def _run_until_done(self, job: Job) -> Job:
        """Run the pipeline, and when a dependency is down, wait and resume instead of failing.

        An accepted job must not be lost to a Postgres restart or a memory or inference replica
        going away: the outage pauses it and it resumes, with a capped back-off, from what the
        records say is done. Re-doing the interrupted file is safe (memory stores each chunk
        once by content hash), so nothing is lost or duplicated.
        """
        pauses = 0
        while True:
            try:
                return await self.pipeline.run(job, on_progress=self._publish)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                pauses += 1
                delay = retry_delay(pauses)
                log.warning(
                    "ingest job %s paused: a dependency is unavailable (%s); resuming in %.1fs",
                    job.job_id,
                    _describe(exc),
                    delay,
                )
                await asyncio.sleep(delay)
                job = await self._reload(job)

    async def _reload(self, job: Job) -> Job:
        """The job as recorded (the files it finished), read once Postgres answers again."""
        pauses = 0
        while True:
            try:
                return await self.records.load_job(job.job_id)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                pauses += 1
                await asyncio.sleep(retry_delay(pauses))

    async def _store_final(self, job: Job) -> None:
        """Record a finished job, waiting out a Postgres outage so the outcome is not lost."""
        pauses = 0
        while True:
            try:
                await self.records.save_job(job)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                pauses += 1
                await asyncio.sleep(retry_delay(pauses))

    async def get(self, job_id: str) -> Job:
        """The freshest snapshot: the live one when this process runs the job, else the stored one."""
        live = self._live.get(job_id)
        return live if live is not None else await self.records.load_job(job_id)

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        """Snapshots of a job as it changes, ending with the finished job."""
        last: Job | None = None
        while True:
            job = await self.get(job_id)
            if job != last:
                yield job
                last = job
            if job.finished:
                return
            async with self._changed:
                # On timeout, re-read anyway: the job may run in another replica.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), WATCH_POLL_SECONDS)

    async def resume_orphans(self, stale_seconds: float) -> list[asyncio.Task[Job]]:
        """Resume unfinished jobs whose worker died (stale heartbeat)."""
        tasks = []
        for job_id in await self.records.claim_orphans(stale_seconds):
            job = await self.records.load_job(job_id)
            if not await asyncio.to_thread(Path(job.root).exists):
                failed = replace(
                    job, state=JobState.FAILED, error="the uploaded file is gone; upload it again"
                )
                await self.records.save_job(failed)
                continue
            log.info("resuming ingest job %s (%d files done)", job_id, job.files_done)
            tasks.append(await self.start(job))
        return tasks

    async def stop(self) -> None:
        """Cancel running jobs (they resume at the next start)."""
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


class IngestServicer(pb_grpc.IngestServiceServicer):
    """Thin adapter over the job runner and the records."""

    def __init__(self, runner: JobRunner, memory: MemoryWriter, cfg: IngestConfig) -> None:
        self._runner = runner
        self._memory = memory
        self._cfg = cfg

    async def _finish(self, task: asyncio.Task[Job]) -> Job:
        # Shielded: a client that disconnects does not stop the job; it can be watched again.
        job = await asyncio.shield(task)
        error = request_error(job)
        if error is not None:
            raise _status_error(error, job.job_id)
        return job

    async def IngestPath(self, request: pb.IngestPathRequest, context: Ctx) -> pb.IngestPathResponse:
        creator = _check_creator(request.creator_id)
        root = Path(request.path)
        if not request.path or not root.is_absolute():
            raise InvalidArgument("path must be an absolute path readable by the ingest service")
        if not await asyncio.to_thread(root.exists):
            raise NotFound(f"no such file or directory: {root}")
        job = new_job(creator, str(root), options_from_pb(request.options, self._cfg))
        task = await self._runner.start(job)
        if request.async_start:
            return pb.IngestPathResponse(job=job_to_pb(job))
        return pb.IngestPathResponse(job=job_to_pb(await self._finish(task)))

    async def Upload(
        self, request_iterator: AsyncIterator[pb.UploadRequest], context: Ctx
    ) -> pb.UploadResponse:
        job_dir = self._cfg.spool / uuid.uuid4().hex
        try:
            header, target = await self._receive(request_iterator, job_dir)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        job = new_job(
            _check_creator(header.creator_id), str(target), options_from_pb(header.options, self._cfg)
        )
        task = await self._runner.start(job)
        return pb.UploadResponse(job=job_to_pb(await self._finish(task)))

    async def _receive(
        self, request_iterator: AsyncIterator[pb.UploadRequest], job_dir: Path
    ) -> tuple[pb.UploadHeader, Path]:
        header: pb.UploadHeader | None = None
        target: Path | None = None
        size = 0
        handle = None
        limit = self._cfg.max_upload_bytes
        try:
            async for message in request_iterator:
                if header is None:
                    if message.WhichOneof("payload") != "header":
                        raise InvalidArgument("the first upload message must carry the header")
                    header = message.header
                    _check_creator(header.creator_id)
                    if header.size_bytes > limit:
                        raise ResourceExhausted(
                            f"{header.filename}: {header.size_bytes} bytes exceeds "
                            f"the {limit}-byte upload limit",
                            subject="upload-size",
                        )
                    # Only the base name is used: an upload can never write outside its spool dir.
                    name = _SAFE_NAME.sub("_", Path(header.filename).name).lstrip(".") or "upload"
                    await asyncio.to_thread(job_dir.mkdir, parents=True, exist_ok=True)
                    target = job_dir / name
                    handle = target.open("wb")
                    continue
                if message.WhichOneof("payload") != "data" or handle is None:
                    raise InvalidArgument("only data messages may follow the header")
                size += len(message.data)
                if size > limit:
                    raise ResourceExhausted(
                        f"{header.filename}: upload exceeds the {limit}-byte upload limit",
                        subject="upload-size",
                    )
                handle.write(message.data)
        finally:
            if handle is not None:
                handle.close()
        if header is None or target is None:
            raise InvalidArgument("empty upload: send a header and the file's bytes")
        return header, target

    async def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=job_to_pb(await self._runner.get(request.job_id)))

    async def WatchJob(self, request: pb.WatchJobRequest, context: Ctx) -> AsyncIterator[pb.WatchJobResponse]:
        async for job in self._runner.watch(request.job_id):
            yield pb.WatchJobResponse(job=job_to_pb(job))

    async def DeleteSource(
        self, request: pb.IngestServiceDeleteSourceRequest, context: Ctx
    ) -> pb.IngestServiceDeleteSourceResponse:
        creator = _check_creator(request.creator_id)
        platform = platform_from_pb(request.platform)
        if not request.external_id:
            raise InvalidArgument("external_id is required")
        chunks = await self._memory.delete_source(creator, request.platform, request.external_id)
        docs = await self._runner.records.forget_source(creator, platform, request.external_id)
        if chunks == 0 and docs == 0:
            raise NotFound(f"creator {creator!r} has no source {platform}/{request.external_id}")
        return pb.IngestServiceDeleteSourceResponse(chunks_deleted=chunks, documents_deleted=docs)

    async def DeleteCreator(
        self, request: pb.IngestServiceDeleteCreatorRequest, context: Ctx
    ) -> pb.IngestServiceDeleteCreatorResponse:
        creator = _check_creator(request.creator_id)
        await self._memory.delete_creator(creator)
        docs, jobs = await self._runner.records.forget_creator(creator)
        return pb.IngestServiceDeleteCreatorResponse(documents_deleted=docs, jobs_deleted=jobs)


async def build(cfg: IngestConfig) -> ServiceSpec:
    """Open the records and the channels to inference and memory; resume orphaned jobs."""
    records = await open_records(require_database_url(cfg.database_url), cfg.pool_size)
    inference = open_channel(cfg.inference_target)
    memory = open_channel(cfg.memory_target)
    writer = MemoryWriter(mem_grpc.MemoryServiceStub(memory))
    pipeline = Pipeline(
        InferenceEmbedder(inf_grpc.InferenceServiceStub(inference)),
        writer,
        records,
        ChunkingParams(max_tokens=cfg.chunk_tokens),
    )
    runner = JobRunner(pipeline, records, cfg.spool)
    servicer = IngestServicer(runner, writer, cfg)
    resumer = asyncio.create_task(runner.resume_orphans(cfg.resume_after_seconds))

    async def stop() -> None:
        resumer.cancel()
        await runner.stop()
        await inference.close(None)
        await memory.close(None)
        await records.close()

    return ServiceSpec(
        name="ingest",
        register=lambda server: pb_grpc.add_IngestServiceServicer_to_server(servicer, server),
        service_names=[pb.DESCRIPTOR.services_by_name["IngestService"].full_name],
        error_map={
            UnsupportedFormat: grpc.StatusCode.INVALID_ARGUMENT,
            InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
            TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
            IngestError: grpc.StatusCode.INVALID_ARGUMENT,
        },
        on_stop=stop,
    )
