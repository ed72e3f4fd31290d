"""InferenceService over real gRPC on port 0: cache usage in Generate, stats, status codes, Embed batching."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from avatar.v1 import inference_service_pb2 as pb
from avatar.v1 import inference_service_pb2_grpc as pb_grpc
from avatar.v1 import types_pb2
from services.common.config import ServerConfig
from services.common.metrics import REGISTRY
from services.common.server import RunningServer, start_server
from services.inference import server as inference_server
from services.inference.config import InferenceConfig
from services.inference.core.embedder import Embedder
from services.inference.core.engine import EmbeddingWorker
from services.inference.models import embedder_dir, ensure_models

pytestmark = pytest.mark.timeout(120)

PERSONA = "You are Maya, a baker who answers fans warmly and briefly. " * 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models")
    ensure_models(path)
    return path


def _config(model_dir: Path, **overrides: int) -> InferenceConfig:
    server = ServerConfig(host="127.0.0.1", port=0, grace_seconds=1.0, otlp_endpoint=None, log_level="INFO")
    values = dict(
        intra_op_threads=1,
        max_queue=8,
        max_tokens_limit=256,
        build_missing=False,
        max_batch=4,
        max_seq_len=512,
        kv_block_size=8,
        kv_cache_mb=4,
    )
    values.update(overrides)
    return InferenceConfig(server, model_dir, **values)  # type: ignore[arg-type]


async def _serve(cfg: InferenceConfig) -> RunningServer:
    return await start_server(await inference_server.build(cfg))


@pytest.fixture
async def stub(model_dir: Path) -> AsyncIterator[pb_grpc.InferenceServiceAsyncStub]:
    running = await _serve(_config(model_dir))
    async with grpc.aio.insecure_channel(running.target) as channel:
        yield pb_grpc.InferenceServiceStub(channel)
    await running.stop(0.5)


def _chat(fan: str, *history: str) -> pb.GenerateRequest:
    messages = [types_pb2.ChatMessage(role="system", content=PERSONA)]
    for i, text in enumerate(history):
        messages.append(types_pb2.ChatMessage(role="user" if i % 2 == 0 else "assistant", content=text))
    messages.append(types_pb2.ChatMessage(role="user", content=fan))
    return pb.GenerateRequest(
        messages=messages, sampling=pb.SamplingParams(max_tokens=6, temperature=0.0), request_id="maya/fan/1"
    )


async def _generate(
    stub: pb_grpc.InferenceServiceAsyncStub, request: pb.GenerateRequest
) -> list[pb.GenerateResponse]:
    return [r async for r in stub.Generate(request)]


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_persona_prefix_is_reused_and_reported(stub: pb_grpc.InferenceServiceAsyncStub) -> None:
    hits_before = _metric("avatar_kv_cache_hit_tokens_total")
    misses_before = _metric("avatar_kv_cache_miss_tokens_total")
    cold = await _generate(stub, _chat("hi! what flour do you use?"))
    warm = await _generate(stub, _chat("do you ship cookies?"))
    assert cold[-1].usage.cached_prompt_tokens == 0
    # The shared system turn is many 8-token blocks long; the fans' messages differ after it.
    cached = warm[-1].usage.cached_prompt_tokens
    assert cached > 0 and cached % 8 == 0
    assert cached < warm[-1].usage.prompt_tokens
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert (stats.prefix_cache_lookups, stats.prefix_cache_hits, stats.prefix_cache_misses) == (2, 1, 1)
    assert stats.cached_prompt_tokens == cached
    assert stats.queried_prompt_tokens == cold[-1].usage.prompt_tokens + warm[-1].usage.prompt_tokens
    assert stats.completed == 2 and stats.running == 0 and stats.cache_block_size == 8
    assert stats.prefill_tokens == stats.queried_prompt_tokens - cached
    # The same numbers reach the Prometheus registry.
    assert _metric("avatar_kv_cache_hit_tokens_total") - hits_before == cached
    assert _metric("avatar_kv_cache_miss_tokens_total") - misses_before == stats.prefill_tokens


async def test_same_tokens_with_and_without_cache(
    model_dir: Path, stub: pb_grpc.InferenceServiceAsyncStub
) -> None:
    request = _chat("tell me about sourdough")
    first = await _generate(stub, request)
    again = await _generate(stub, request)
    assert again[-1].usage.cached_prompt_tokens > 0
    assert [r.token_ids for r in first] == [r.token_ids for r in again]
    no_cache = await _serve(_config(model_dir, kv_cache_mb=0))
    try:
        async with grpc.aio.insecure_channel(no_cache.target) as channel:
            other = await _generate(pb_grpc.InferenceServiceStub(channel), request)
    finally:
        await no_cache.stop(0.5)
    assert other[-1].usage.cached_prompt_tokens == 0
    assert [r.token_ids for r in other] == [r.token_ids for r in first]


async def test_bad_requests_are_invalid_argument(stub: pb_grpc.InferenceServiceAsyncStub) -> None:
    for request, message in [
        (pb.GenerateRequest(), "either messages or prompt"),
        (pb.GenerateRequest(messages=[types_pb2.ChatMessage(role="robot", content="x")]), "role"),
        (pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(max_tokens=10_000)), "max_tokens"),
        (pb.GenerateRequest(prompt="word " * 600), "context"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _generate(stub, request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, message
        assert message in (info.value.details() or "")


async def test_full_queue_is_resource_exhausted(model_dir: Path) -> None:
    running = await _serve(_config(model_dir, max_batch=1, max_queue=1))
    try:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = pb_grpc.InferenceServiceStub(channel)
            long = pb.GenerateRequest(prompt="a long story", sampling=pb.SamplingParams(max_tokens=250))
            first = stub.Generate(long)
            await first.read()  # the single slot is busy
            second = stub.Generate(long)
            for _ in range(500):
                if (await stub.GetStats(pb.GetStatsRequest())).waiting == 1:
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await _generate(stub, long)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            first.cancel()
            second.cancel()
            for _ in range(500):
                stats = await stub.GetStats(pb.GetStatsRequest())
                if stats.running == 0 and stats.waiting == 0:
                    break
                await asyncio.sleep(0.01)
            assert (stats.running, stats.waiting, stats.cache_blocks_pinned) == (0, 0, 0)
    finally:
        await running.stop(0.5)


async def test_embed_requests_share_one_batch(model_dir: Path) -> None:
    embedder = Embedder(embedder_dir(model_dir), intra_op_threads=1)
    worker = EmbeddingWorker(embedder, max_batch=64, max_wait_s=0.0, start=False)
    texts = [[f"sentence number {i}", "croissants need cold butter"] for i in range(6)]
    tasks = [asyncio.create_task(worker.embed(t)) for t in texts]
    await asyncio.sleep(0)  # every task has queued its request; the worker has not started
    worker.start()
    results = await asyncio.gather(*tasks)
    worker.stop()
    assert worker.batches == 1
    for t, got in zip(texts, results, strict=True):
        np.testing.assert_allclose(got, embedder.embed(t), atol=1e-5)
