"""InferenceService servicer: proto <-> engine calls, nothing else."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from avatar.v1 import inference_service_pb2 as pb
from avatar.v1 import inference_service_pb2_grpc as pb_grpc
from avatar.v1 import types_pb2
from services.common.errors import InvalidArgument, ResourceExhausted, Unavailable
from services.common.metrics import INFERENCE
from services.common.server import ServiceSpec
from services.common.telemetry import tracer
from services.inference.config import InferenceConfig
from services.inference.core.embedder import Embedder
from services.inference.core.engine import (
    EmbeddingWorker,
    EngineStats,
    EngineStopped,
    GenerationEngine,
    QueueFull,
)
from services.inference.core.generator import DecoderModel, GenerationEvent, PromptTooLongError
from services.inference.core.sampling import SamplingParams
from services.inference.core.tokenizer import ChatTemplateError
from services.inference.models import embedder_dir, ensure_models, generator_dir

_tracer = tracer(__name__)
Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_EMBED_TEXTS = 256
MAX_TEXT_CHARS = 32_000
_FINISH = {
    "stop": pb.FINISH_REASON_STOP,
    "length": pb.FINISH_REASON_LENGTH,
    "cancelled": pb.FINISH_REASON_CANCELLED,
}
_ROLES = {"system", "user", "assistant"}


def sampling_from_pb(msg: pb.SamplingParams, max_tokens_limit: int) -> SamplingParams:
    """Proto sampling settings (zero = default) as validated core params."""
    max_tokens = msg.max_tokens or 128
    if max_tokens > max_tokens_limit:
        raise InvalidArgument(f"max_tokens must be at most {max_tokens_limit}, got {max_tokens}")
    try:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=msg.temperature,
            top_k=msg.top_k,
            top_p=msg.top_p or 1.0,
            repetition_penalty=msg.repetition_penalty or 1.0,
            seed=msg.seed or None,
            stop=tuple(msg.stop),
        )
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc


class _StageClock:
    """Times one Generate call and records its stages as child spans of the RPC's span.

    The engine thread cannot open spans in the caller's trace, so the stages (waiting for a slot,
    prefill, decode) are reconstructed from timestamps when the request ends.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._started_ns = time.time_ns()
        self.first_token: float | None = None

    def _ns(self, monotonic: float) -> int:
        return self._started_ns + int((monotonic - self.started) * 1e9)

    def emit_spans(self, event: GenerationEvent) -> None:
        end = time.monotonic()
        admitted = event.admitted_at if event.admitted_at is not None else self.started
        first = self.first_token if self.first_token is not None else end
        stages: tuple[tuple[str, float, float, dict[str, int]], ...] = (
            ("generate.queue", self.started, admitted, {}),
            (
                "generate.prefill",
                admitted,
                first,
                {
                    "avatar.prompt_tokens": event.prompt_tokens,
                    "avatar.cached_prompt_tokens": event.cached_tokens,
                },
            ),
            ("generate.decode", first, end, {"avatar.generated_tokens": event.generated_tokens}),
        )
        for name, start, stop, attributes in stages:
            span = _tracer.start_span(name, start_time=self._ns(start), attributes=attributes)
            span.end(end_time=self._ns(max(start, stop)))


class InferenceServicer(pb_grpc.InferenceServiceServicer):
    """Thin adapter over the generation engine and the embedding worker."""

    def __init__(self, engine: GenerationEngine, embeddings: EmbeddingWorker, max_tokens_limit: int) -> None:
        self._engine = engine
        self._embeddings = embeddings
        self._max_tokens_limit = max_tokens_limit

    def _prompt_ids(self, request: pb.GenerateRequest) -> list[int]:
        tokenizer = self._engine.model.tokenizer
        if request.messages:
            messages = []
            for m in request.messages:
                if m.role not in _ROLES:
                    raise InvalidArgument(f"message role must be one of {sorted(_ROLES)}, got {m.role!r}")
                messages.append({"role": m.role, "content": m.content})
            return tokenizer.encode_chat(messages)
        if not request.prompt:
            raise InvalidArgument("either messages or prompt is required")
        return tokenizer.encode(request.prompt)

    async def Generate(self, request: pb.GenerateRequest, context: Ctx) -> AsyncIterator[pb.GenerateResponse]:
        params = sampling_from_pb(request.sampling, self._max_tokens_limit)
        prompt_ids = self._prompt_ids(request)
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        clock = _StageClock()
        try:
            async for event in self._engine.stream(prompt_ids, params, deadline):
                if clock.first_token is None and event.token_id is not None:
                    clock.first_token = time.monotonic()
                    INFERENCE.time_to_first_token.observe(clock.first_token - clock.started)
                if event.finish_reason is not None:
                    record_metrics(self._engine, event)
                    clock.emit_spans(event)
                reply = pb.GenerateResponse(
                    text=event.text, token_ids=[event.token_id] if event.token_id is not None else []
                )
                if event.finish_reason is not None:
                    reply.finish_reason = _FINISH[event.finish_reason]
                    reply.usage.CopyFrom(
                        types_pb2.Usage(
                            prompt_tokens=event.prompt_tokens,
                            completion_tokens=event.generated_tokens,
                            cached_prompt_tokens=event.cached_tokens,
                        )
                    )
                yield reply
        except QueueFull as exc:
            raise ResourceExhausted(str(exc), subject="inference-queue") from exc
        except EngineStopped as exc:
            raise Unavailable(str(exc)) from exc
        except PromptTooLongError:
            raise
        except ValueError as exc:  # a bad token id in the prompt
            raise InvalidArgument(str(exc)) from exc

    async def Embed(self, request: pb.EmbedRequest, context: Ctx) -> pb.EmbedResponse:
        texts = list(request.texts)
        if not texts:
            raise InvalidArgument("texts must not be empty")
        if len(texts) > MAX_EMBED_TEXTS:
            raise InvalidArgument(f"at most {MAX_EMBED_TEXTS} texts per request, got {len(texts)}")
        for i, text in enumerate(texts):
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidArgument(f"texts[{i}] is longer than {MAX_TEXT_CHARS} characters")
        vectors = await self._embeddings.embed(texts)
        return pb.EmbedResponse(
            embeddings=[pb.Embedding(values=row.tolist()) for row in vectors],
            dim=int(vectors.shape[1]),
            model="all-MiniLM-L6-v2",
        )

    async def GetModelInfo(self, request: pb.GetModelInfoRequest, context: Ctx) -> pb.GetModelInfoResponse:
        model = self._engine.model
        return pb.GetModelInfoResponse(
            generator_model=model.model_dir.name,
            generator_random_weights=model.info.random_weights,
            embedding_model="all-MiniLM-L6-v2",
            embedding_dim=self._embeddings.embedder.dim,
            execution_provider=model.session.get_providers()[0],
        )

    async def GetStats(self, request: pb.GetStatsRequest, context: Ctx) -> pb.GetStatsResponse:
        return stats_to_pb(self._engine.stats(), self._engine.config.block_size)


def record_metrics(engine: GenerationEngine, last: GenerationEvent) -> None:
    """Update the Prometheus inference metrics after a request's last event."""
    INFERENCE.prefix_hit_tokens.inc(last.cached_tokens)
    INFERENCE.prefix_miss_tokens.inc(last.prompt_tokens - last.cached_tokens)
    INFERENCE.generated_tokens.inc(last.generated_tokens)
    stats = engine.stats()
    INFERENCE.queue_depth.set(stats.waiting)
    INFERENCE.batch_size.set(stats.running)
    INFERENCE.kv_blocks_used.set(stats.cache.used_blocks)
    INFERENCE.kv_blocks_total.set(stats.cache.num_blocks)


def stats_to_pb(stats: EngineStats, block_size: int) -> pb.GetStatsResponse:
    """Engine counters as the proto message."""
    cache = stats.cache
    return pb.GetStatsResponse(
        prefix_cache_lookups=cache.lookups,
        prefix_cache_hits=cache.hits,
        prefix_cache_misses=cache.misses,
        cached_prompt_tokens=cache.hit_tokens,
        queried_prompt_tokens=cache.queried_tokens,
        prefix_cache_evictions=cache.evictions,
        cache_blocks_total=cache.num_blocks,
        cache_blocks_used=cache.used_blocks,
        cache_blocks_pinned=cache.pinned_blocks,
        cache_block_size=block_size,
        running=stats.running,
        waiting=stats.waiting,
        steps=stats.steps,
        prefill_tokens=stats.prefill_tokens,
        generated_tokens=stats.generated_tokens,
        completed=stats.completed,
    )


async def build(cfg: InferenceConfig) -> ServiceSpec:
    """Load (building if needed) the models, start the engine threads, describe the service."""
    if cfg.build_missing:
        ensure_models(cfg.model_dir)
    threads = cfg.intra_op_threads or None
    model = DecoderModel(generator_dir(cfg.model_dir), intra_op_num_threads=threads)
    embedder = Embedder(embedder_dir(cfg.model_dir), intra_op_threads=cfg.intra_op_threads)
    engine = GenerationEngine(model, cfg.engine_config())
    engine.start()
    embeddings = EmbeddingWorker(
        embedder,
        max_batch=cfg.embed_max_batch,
        max_wait_s=cfg.embed_max_wait_ms / 1000.0,
        max_batch_tokens=cfg.embed_max_batch_tokens,
    )
    servicer = InferenceServicer(engine, embeddings, cfg.max_tokens_limit)

    async def stop() -> None:
        engine.stop()
        embeddings.stop()

    return ServiceSpec(
        name="inference",
        register=lambda server: pb_grpc.add_InferenceServiceServicer_to_server(servicer, server),
        service_names=[pb.DESCRIPTOR.services_by_name["InferenceService"].full_name],
        error_map={
            PromptTooLongError: grpc.StatusCode.INVALID_ARGUMENT,
            ChatTemplateError: grpc.StatusCode.INVALID_ARGUMENT,
        },
        on_stop=stop,
    )
