"""The ingest service against real inference (ONNX MiniLM), memory and Postgres, over gRPC.

Progress, idempotency, resume after a crash, deletion, hostile input and the persona profile.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import tempfile
import zipfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from avatar.v1 import ingest_service_pb2 as pb
from avatar.v1 import ingest_service_pb2_grpc as pb_grpc
from avatar.v1 import memory_service_pb2 as mem_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import types_pb2
from services.common.clients import open_channel
from services.common.config import ServerConfig
from services.common.server import RunningServer, start_server
from services.inference import server as inference_server
from services.inference.config import InferenceConfig
from services.inference.models import ensure_models
from services.ingest import server as ingest_server
from services.ingest.config import IngestConfig
from services.ingest.core.chunker import ChunkingParams
from services.ingest.core.jobs import JobState, new_job
from services.ingest.core.pipeline import Pipeline
from services.ingest.progress import render_line, render_progress
from services.ingest.records import open_records
from services.memory import server as memory_server
from services.memory.config import MemoryConfig

EXPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "ingest" / "exports"
pytestmark = pytest.mark.timeout(180)


def _server_config() -> ServerConfig:
    return ServerConfig(host="127.0.0.1", port=0, grace_seconds=1.0, otlp_endpoint=None, log_level="INFO")


@pytest.fixture(scope="module")
def model_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="avmodels"))
    ensure_models(path)
    return path


class Stack:
    """Inference + memory + ingest on port 0 over one fresh database."""

    def __init__(self, database_url: str, model_dir: Path, spool: Path) -> None:
        self.database_url, self.model_dir, self.spool = database_url, model_dir, spool
        self.servers: dict[str, RunningServer] = {}

    def ingest_config(self, resume_after: float = 30.0) -> IngestConfig:
        return IngestConfig(
            _server_config(),
            self.servers["inference"].target,
            self.servers["memory"].target,
            max_upload_bytes=200_000,
            chunk_tokens=120,
            database_url=self.database_url,
            spool_dir=self.spool,
            resume_after_seconds=resume_after,
        )

    async def start(self) -> None:
        self.servers["inference"] = await start_server(
            await inference_server.build(
                InferenceConfig(_server_config(), self.model_dir, 1, 8, 256, build_missing=False)
            )
        )
        self.servers["memory"] = await start_server(
            await memory_server.build(
                MemoryConfig(_server_config(), self.database_url, ef_search=100, pool_size=2)
            )
        )
        self.servers["ingest"] = await start_server(await ingest_server.build(self.ingest_config()))

    async def stop(self) -> None:
        for name in ("ingest", "memory", "inference"):
            if name in self.servers:
                await self.servers[name].stop(0.5)

    def ingest(self) -> pb_grpc.IngestServiceAsyncStub:
        return pb_grpc.IngestServiceStub(grpc.aio.insecure_channel(self.servers["ingest"].target))  # type: ignore[return-value]

    def memory(self) -> mem_grpc.MemoryServiceAsyncStub:
        return mem_grpc.MemoryServiceStub(grpc.aio.insecure_channel(self.servers["memory"].target))  # type: ignore[return-value]

    async def chunks(self, creator: str) -> int:
        async with grpc.aio.insecure_channel(self.servers["memory"].target) as ch:
            reply = await mem_grpc.MemoryServiceStub(ch).GetCreatorStats(
                mem_pb.GetCreatorStatsRequest(creator_id=creator), timeout=10
            )
        return int(reply.chunks)


@pytest.fixture
async def stack(database_url: str, model_dir: Path, tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(database_url, model_dir, tmp_path / "spool")
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def _ingest(stack: Stack, creator: str, path: Path, *, async_start: bool = False) -> pb.Job:
    reply = await stack.ingest().IngestPath(
        pb.IngestPathRequest(creator_id=creator, path=str(path), async_start=async_start), timeout=120
    )
    return reply.job


def _summary(job: pb.Job) -> list[tuple[str, str, int]]:
    return [(f.path, pb.FileStatus.Name(f.status), f.documents) for f in job.files]


EXPECTED_FILES = [
    ("csv/newsletter.csv", "FILE_STATUS_INVALID", 0),
    ("facebook/your_facebook_activity/comments_and_reactions/comments.json", "FILE_STATUS_INGESTED", 1),
    (
        "facebook/your_facebook_activity/posts/your_posts__check_ins__photos_and_videos_1.json",
        "FILE_STATUS_INGESTED",
        2,
    ),
    ("instagram-2022/comments/post_comments.json", "FILE_STATUS_INGESTED", 1),
    ("instagram-2022/content/posts_1.json", "FILE_STATUS_INGESTED", 2),
    ("instagram-2024/your_instagram_activity/comments/post_comments_1.json", "FILE_STATUS_INGESTED", 1),
    ("instagram-2024/your_instagram_activity/content/posts_1.json", "FILE_STATUS_INGESTED", 1),
    ("instagram-2024/your_instagram_activity/content/reels.json", "FILE_STATUS_INGESTED", 1),
    ("instagram-2024/your_instagram_activity/content/stories.json", "FILE_STATUS_INGESTED", 1),
    ("tiktok/user_data_tiktok.json", "FILE_STATUS_INGESTED", 2),
    ("x/data/tweets.js", "FILE_STATUS_INGESTED", 2),
    ("youtube/Shaping a boule [dQw4w9WgXcQ].en.vtt", "FILE_STATUS_INGESTED", 1),
    ("youtube/bagels.srt", "FILE_STATUS_INGESTED", 1),
    ("youtube-takeout/Takeout/YouTube and YouTube Music/comments/comments.csv", "FILE_STATUS_INGESTED", 1),
    (
        "youtube-takeout/Takeout/YouTube and YouTube Music/video metadata/videos.csv",
        "FILE_STATUS_INGESTED",
        1,
    ),
]


async def test_ingest_all_formats_then_reingest_is_unchanged(stack: Stack) -> None:
    job = await _ingest(stack, "maya", EXPORTS)
    assert job.state == pb.JOB_STATE_SUCCEEDED
    # The newsletter needs csv_column: without it the file is reported, and everything else goes in.
    assert _summary(job) == EXPECTED_FILES
    assert job.files_failed == 1 and "no text column" in job.files[0].error
    x = job.files[10]
    assert (x.platform, x.records_excluded) == (types_pb2.PLATFORM_X, 2)
    assert job.chunks_inserted == await stack.chunks("maya") == 18
    again = await _ingest(stack, "maya", EXPORTS)
    assert again.chunks_inserted == 0 and again.chunks_unchanged == 18
    assert {pb.FileStatus.Name(f.status) for f in again.files[1:]} == {"FILE_STATUS_UNCHANGED"}
    assert await stack.chunks("maya") == 18


async def test_progress_is_streamed_for_a_job_started_elsewhere(stack: Stack) -> None:
    started = await _ingest(stack, "rio", EXPORTS, async_start=True)
    assert started.state == pb.JOB_STATE_QUEUED
    updates = [
        r async for r in stack.ingest().WatchJob(pb.WatchJobRequest(job_id=started.job_id), timeout=60)
    ]
    done = [u.job.files_done for u in updates]
    assert done == sorted(done) and updates[-1].job.state == pb.JOB_STATE_SUCCEEDED
    assert updates[-1].job.files_done == updates[-1].job.files_total == 15
    fetched = (await stack.ingest().GetJob(pb.GetJobRequest(job_id=started.job_id), timeout=5)).job
    assert _summary(fetched) == EXPECTED_FILES
    out = io.StringIO()
    last = render_progress(updates, out)
    assert last == updates[-1].job
    assert out.getvalue().splitlines()[-1] == render_line(last)
    assert render_line(last).startswith(
        "[##############################] 15/15 files, 1 failed  18 new, 0 unchanged"
    )


class CrashingEmbedder:
    """The real embedder that dies (like a killed process) on its n-th call."""

    def __init__(self, inner: ingest_server.InferenceEmbedder, crash_on: int) -> None:
        self.inner, self.calls, self.crash_on = inner, 0, crash_on

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.calls == self.crash_on:
            raise KeyboardInterrupt  # not an Exception: nothing in the pipeline may catch it
        return await self.inner.embed(texts)


async def test_a_crashed_job_resumes_without_duplicates(stack: Stack) -> None:
    records = await open_records(stack.database_url)
    inference = open_channel(stack.servers["inference"].target)
    memory = open_channel(stack.servers["memory"].target)
    from avatar.v1 import inference_service_pb2_grpc as inf_grpc

    embedder = CrashingEmbedder(ingest_server.InferenceEmbedder(inf_grpc.InferenceServiceStub(inference)), 6)
    writer = ingest_server.MemoryWriter(mem_grpc.MemoryServiceStub(memory))
    pipeline = Pipeline(embedder, writer, records, ChunkingParams(max_tokens=120))
    job = new_job("crashy", str(EXPORTS))
    await records.save_job(job)
    with pytest.raises(KeyboardInterrupt):
        await pipeline.run(job)
    crashed = await records.load_job(job.job_id)
    assert crashed.state is JobState.RUNNING and crashed.files_done == 6
    partial = await stack.chunks("crashy")
    assert 0 < partial < 18
    # A new ingest process starts and picks up the orphan (heartbeat older than 0 s).
    await stack.servers["ingest"].stop(0.5)
    stack.servers["ingest"] = await start_server(
        await ingest_server.build(stack.ingest_config(resume_after=0.0))
    )
    updates = [
        r.job async for r in stack.ingest().WatchJob(pb.WatchJobRequest(job_id=job.job_id), timeout=60)
    ]
    final = updates[-1]
    assert final.state == pb.JOB_STATE_SUCCEEDED and _summary(final) == EXPECTED_FILES
    assert await stack.chunks("crashy") == 18
    # Chunks counted over both runs add up to what is stored: nothing written twice.
    assert partial + sum(f.chunks_inserted for f in final.files[6:]) == 18
    await records.close()
    await inference.close(None)
    await memory.close(None)


async def test_delete_source_and_creator_remove_everything_derived(stack: Stack) -> None:
    ingest = stack.ingest()
    await _ingest(stack, "gone", EXPORTS)
    records = await open_records(stack.database_url)
    before = await stack.chunks("gone")
    reply = await ingest.DeleteSource(
        pb.IngestServiceDeleteSourceRequest(
            creator_id="gone", platform=types_pb2.PLATFORM_X, external_id="1745000000000000004"
        ),
        timeout=10,
    )
    assert (reply.chunks_deleted, reply.documents_deleted) == (1, 1)
    assert await stack.chunks("gone") == before - 1
    # The ingest cache forgot it too: re-ingesting restores exactly that tweet.
    again = await _ingest(stack, "gone", EXPORTS)
    assert again.chunks_inserted == 1 and await stack.chunks("gone") == before
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ingest.DeleteSource(
            pb.IngestServiceDeleteSourceRequest(
                creator_id="gone", platform=types_pb2.PLATFORM_X, external_id="nope"
            ),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    deleted = await ingest.DeleteCreator(pb.IngestServiceDeleteCreatorRequest(creator_id="gone"), timeout=10)
    assert (deleted.documents_deleted, deleted.jobs_deleted) == (18, 2)
    assert await stack.chunks("gone") == 0
    assert await records.count_creator_rows("gone") == {"ingest_documents": 0, "ingest_jobs": 0}
    # The persona profile lives in memory (its one home) and went with the creator.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.memory().GetPersonaProfile(mem_pb.GetPersonaProfileRequest(creator_id="gone"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ingest.GetJob(pb.GetJobRequest(job_id=again.job_id), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    fresh = await _ingest(stack, "gone", EXPORTS)
    assert fresh.chunks_inserted == before
    await records.close()


def _upload(creator: str, name: str, data: bytes) -> list[pb.UploadRequest]:
    header = pb.UploadRequest(header=pb.UploadHeader(creator_id=creator, filename=name))
    return [header, *(pb.UploadRequest(data=data[i : i + 4096]) for i in range(0, len(data), 4096))]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "code", "message"),
    [
        (
            "posts_1.json",
            b'[{"media": [{"title": "x"',
            grpc.StatusCode.INVALID_ARGUMENT,
            "posts_1.json: truncated JSON at line 1 column 26",
        ),
        (
            "deep.json",
            b"[" * 5000 + b"]" * 5000,
            grpc.StatusCode.INVALID_ARGUMENT,
            "deep.json: JSON nested too deeply",
        ),
        ("bad.txt", b"caf\xe9", grpc.StatusCode.INVALID_ARGUMENT, "bad.txt: invalid UTF-8 at byte 3"),
        (
            "evil.zip",
            _zip({"../../etc/cron.d/x": b"x"}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "evil.zip: unsafe archive: member path '../../etc/cron.d/x' escapes the archive",
        ),
        (
            "bomb.zip",
            _zip({"a.txt": b"0" * 20_000_000}),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "bomb.zip: member 'a.txt' expands",
        ),
        (
            "big.txt",
            b"x" * 200_001,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "big.txt: upload exceeds the 200000-byte",
        ),
    ],
)
async def test_hostile_uploads_fail_clearly_and_lose_nothing(
    stack: Stack, name: str, data: bytes, code: grpc.StatusCode, message: str
) -> None:
    await _ingest(stack, "safe", EXPORTS / "x")
    assert await stack.chunks("safe") == 2
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.ingest().Upload(iter(_upload("safe", name, data)), timeout=60)
    assert info.value.code() == code
    assert (info.value.details() or "").startswith(message), info.value.details()
    assert await stack.chunks("safe") == 2
    assert list(stack.spool.glob("*/*")) == []  # spooled uploads are cleaned up


async def test_a_2gb_file_is_refused_without_reading_it(stack: Stack, tmp_path: Path) -> None:
    big = tmp_path / "export.jsonl"
    with big.open("wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _ingest(stack, "big", big)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (info.value.details() or "").startswith(
        "export.jsonl: file of 2147483648 bytes exceeds the 268435456-byte limit per file (job "
    )


async def test_persona_profile_is_computed_and_corrections_survive_reingest(
    stack: Stack, tmp_path: Path
) -> None:
    """Ingest computes the profile and writes it to memory; the creator reads and corrects it there."""
    root = tmp_path / "export"
    shutil.copytree(EXPORTS, root, ignore=shutil.ignore_patterns("newsletter.csv"))
    await _ingest(stack, "voice", root)
    memory = stack.memory()
    get = mem_pb.GetPersonaProfileRequest(creator_id="voice")
    profile = (await memory.GetPersonaProfile(get, timeout=5)).profile
    assert profile.documents == 18
    assert [(t.term, t.count) for t in profile.top_hashtags] == [
        ("#sourdough", 2),
        ("#breadtok", 1),
        ("#tucsonbakes", 1),
    ]
    assert [(lang.language, round(lang.share, 3)) for lang in profile.languages] == [("en", 1.0)]
    facts = [(mem_pb.StatedFactKind.Name(f.kind), f.text) for f in profile.facts]
    assert ("STATED_FACT_KIND_NEVER", "I own one Dutch oven and I never buy bread 🍞") in facts
    assert ("STATED_FACT_KIND_OWNS", "I own one Dutch oven and I never buy bread 🍞") in facts
    assert any(f.platform != types_pb2.PLATFORM_UNSPECIFIED and f.external_id for f in profile.facts)
    # Re-ingesting unchanged content recomputes the same profile: the version stays.
    await _ingest(stack, "voice", root)
    assert (await memory.GetPersonaProfile(get, timeout=5)).profile.version == profile.version
    corrected = mem_pb.PersonaProfile(
        facts=[mem_pb.StatedFact(kind=mem_pb.STATED_FACT_KIND_NEVER, text="I never use commercial yeast.")],
        topics=[],
    )

    def update(paths: list[str], expected: int = 0) -> mem_pb.UpdatePersonaProfileRequest:
        return mem_pb.UpdatePersonaProfileRequest(
            creator_id="voice",
            profile=corrected,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
            expected_version=expected,
        )

    updated = (
        await memory.UpdatePersonaProfile(update(["facts", "topics"], profile.version), timeout=5)
    ).profile
    assert [f.text for f in updated.facts] == ["I never use commercial yeast."]
    assert list(updated.topics) == [], "a correction to an empty list is a correction"
    assert list(updated.corrected_fields) == ["facts", "topics"] and updated.version == profile.version + 1
    for paths, expected, code in (
        (["facts"], profile.version, grpc.StatusCode.ABORTED),  # stale version
        (["documents"], 0, grpc.StatusCode.INVALID_ARGUMENT),  # not correctable
        (["version"], 0, grpc.StatusCode.INVALID_ARGUMENT),
        ([], 0, grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await memory.UpdatePersonaProfile(update(paths, expected), timeout=5)
        assert info.value.code() == code, paths
    blank = mem_pb.UpdatePersonaProfileRequest(
        creator_id="voice",
        profile=mem_pb.PersonaProfile(facts=[mem_pb.StatedFact(text="no kind")]),
        update_mask=field_mask_pb2.FieldMask(paths=["facts"]),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await memory.UpdatePersonaProfile(blank, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A new document changes the computed profile: the version moves, the corrections stay.
    (root / "extra.txt").write_text("Rye loaves all week long with the whole crew. #ryebread #sourdough\n")
    await _ingest(stack, "voice", root)
    after = (await memory.GetPersonaProfile(get, timeout=5)).profile
    assert after.documents == 19 and after.version == updated.version + 1
    assert [f.text for f in after.facts] == ["I never use commercial yeast."]
    assert list(after.topics) == [] and list(after.corrected_fields) == ["facts", "topics"]
    assert ("#ryebread", 1) in [(t.term, t.count) for t in after.top_hashtags]


async def test_concurrent_watchers_see_the_same_end(stack: Stack) -> None:
    started = await _ingest(stack, "two", EXPORTS / "youtube", async_start=True)

    async def watch() -> pb.Job:
        return [
            r.job
            async for r in stack.ingest().WatchJob(pb.WatchJobRequest(job_id=started.job_id), timeout=60)
        ][-1]

    first, second = await asyncio.gather(watch(), watch())
    assert first == second and first.state == pb.JOB_STATE_SUCCEEDED and first.files_done == 2
