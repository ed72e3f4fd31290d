"""IngestService servicer: proto <-> pipeline, plus the in-process job registry."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import ingest_service_pb2 as pb
from avatar.v1 import ingest_service_pb2_grpc as pb_grpc
from avatar.v1 import memory_service_pb2 as mem_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import types_pb2
from services.common.clients import open_channel
from services.common.convert import kind_to_pb, platform_to_pb, ts_to_pb
from services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from services.common.server import ServiceSpec
from services.ingest.config import IngestConfig
from services.ingest.core.chunker import ChunkingParams
from services.ingest.core.pipeline import Job, JobState, Pipeline, StoredCounts, new_job
from services.ingest.core.types import Chunk

Ctx = grpc.aio.ServicerContext[Any, Any]
_STATES = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


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
            )
            for f in job.files
        ],
        created_at=ts_to_pb(job.created_at),
        error=job.error,
    )


class InferenceEmbedder:
    """Embedding port backed by InferenceService.Embed."""

    def __init__(self, stub: inf_grpc.InferenceServiceAsyncStub) -> None:
        self._stub = stub

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        reply = await self._stub.Embed(inf_pb.EmbedRequest(texts=list(texts)), timeout=120)
        return [list(e.values) for e in reply.embeddings]


class MemoryWriter:
    """Storage port backed by MemoryService.WriteChunks."""

    def __init__(self, stub: mem_grpc.MemoryServiceAsyncStub) -> None:
        self._stub = stub

    async def write(self, creator_id: str, items: Sequence[tuple[Chunk, str, list[float]]]) -> StoredCounts:
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


class JobRegistry:
    """Jobs of this process with change notification for WatchJob.

    Durable job records in Postgres (resume after a crash) replace this in the ingest issue.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._changed = asyncio.Condition()

    async def put(self, job: Job) -> None:
        async with self._changed:
            self._jobs[job.job_id] = job
            self._changed.notify_all()

    def get(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFound(f"no ingest job {job_id!r}") from None

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        last: Job | None = None
        while True:
            job = self.get(job_id)
            if job != last:
                yield job
                last = job
            if job.state in (JobState.SUCCEEDED, JobState.FAILED):
                return
            async with self._changed:
                while self._jobs[job_id] == last:
                    await self._changed.wait()


class IngestServicer(pb_grpc.IngestServiceServicer):
    """Thin adapter over the ingest pipeline."""

    def __init__(self, pipeline: Pipeline, jobs: JobRegistry, max_upload_bytes: int) -> None:
        self._pipeline = pipeline
        self._jobs = jobs
        self._max_upload = max_upload_bytes

    async def _run(self, creator_id: str, root: Path) -> Job:
        if not creator_id:
            raise InvalidArgument("creator_id is required")
        job = new_job(creator_id)
        await self._jobs.put(job)
        job = await self._pipeline.run(job, root, on_progress=self._jobs.put)
        await self._jobs.put(job)
        return job

    async def IngestPath(self, request: pb.IngestPathRequest, context: Ctx) -> pb.IngestPathResponse:
        root = Path(request.path)
        if not request.path or not root.is_absolute():
            raise InvalidArgument("path must be an absolute path readable by the ingest service")
        if not await asyncio.to_thread(root.exists):
            raise NotFound(f"no such file or directory: {root}")
        return pb.IngestPathResponse(job=job_to_pb(await self._run(request.creator_id, root)))

    async def Upload(
        self, request_iterator: AsyncIterator[pb.UploadRequest], context: Ctx
    ) -> pb.UploadResponse:
        header: pb.UploadHeader | None = None
        with tempfile.TemporaryDirectory(prefix="avatar-upload-") as tmp:
            target: Path | None = None
            size = 0
            with_file = None
            try:
                async for message in request_iterator:
                    if header is None:
                        if message.WhichOneof("payload") != "header":
                            raise InvalidArgument("the first upload message must carry the header")
                        header = message.header
                        if header.size_bytes > self._max_upload:
                            raise ResourceExhausted(
                                f"{header.filename}: {header.size_bytes} bytes exceeds "
                                f"the {self._max_upload}-byte limit",
                                subject="upload-size",
                            )
                        # Only the base name is used: an upload can never write outside its temp dir.
                        name = _SAFE_NAME.sub("_", Path(header.filename).name).lstrip(".") or "upload"
                        target = Path(tmp) / name
                        with_file = target.open("wb")
                        continue
                    if message.WhichOneof("payload") != "data" or with_file is None:
                        raise InvalidArgument("only data messages may follow the header")
                    size += len(message.data)
                    if size > self._max_upload:
                        raise ResourceExhausted(
                            f"{header.filename}: upload exceeds the {self._max_upload}-byte limit",
                            subject="upload-size",
                        )
                    with_file.write(message.data)
            finally:
                if with_file is not None:
                    with_file.close()
            if header is None or target is None:
                raise InvalidArgument("empty upload: send a header and the file's bytes")
            return pb.UploadResponse(job=job_to_pb(await self._run(header.creator_id, target)))

    async def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=job_to_pb(self._jobs.get(request.job_id)))

    async def WatchJob(self, request: pb.WatchJobRequest, context: Ctx) -> AsyncIterator[pb.WatchJobResponse]:
        async for job in self._jobs.watch(request.job_id):
            yield pb.WatchJobResponse(job=job_to_pb(job))


async def build(cfg: IngestConfig) -> ServiceSpec:
    """Open channels to inference and memory and describe the service."""
    inference = open_channel(cfg.inference_target)
    memory = open_channel(cfg.memory_target)
    pipeline = Pipeline(
        InferenceEmbedder(inf_grpc.InferenceServiceStub(inference)),
        MemoryWriter(mem_grpc.MemoryServiceStub(memory)),
        ChunkingParams(max_tokens=cfg.chunk_tokens),
    )
    servicer = IngestServicer(pipeline, JobRegistry(), cfg.max_upload_bytes)

    async def stop() -> None:
        await inference.close(None)
        await memory.close(None)

    return ServiceSpec(
        name="ingest",
        register=lambda server: pb_grpc.add_IngestServiceServicer_to_server(servicer, server),
        service_names=[pb.DESCRIPTOR.services_by_name["IngestService"].full_name],
        on_stop=stop,
    )
