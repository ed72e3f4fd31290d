"""ConversationService servicer: proto <-> the turn runner, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from avatar.v1 import conversation_service_pb2 as pb
from avatar.v1 import conversation_service_pb2_grpc as pb_grpc
from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from avatar.v1 import types_pb2
from services.common.clients import open_channel, resolve_all
from services.common.convert import citation_to_pb
from services.common.errors import InvalidArgument
from services.common.redis_cache import EmbeddingCache, connect
from services.common.server import ServiceSpec
from services.gateway.clients import InferenceClient, MemoryClient, PolicyClient, decision_to_pb
from services.gateway.config import GatewayConfig
from services.gateway.core.turn import TurnRunner, TurnSettings
from services.gateway.core.types import (
    Outcome,
    PendingStatus,
    TurnDelta,
    TurnEnd,
    TurnRequest,
    TurnStart,
)
from services.gateway.replicas import InferenceReplicas

Ctx = grpc.aio.ServicerContext[Any, Any]
_OUTCOMES = {
    Outcome.ANSWERED: pb.REPLY_OUTCOME_ANSWERED,
    Outcome.REFUSED: pb.REPLY_OUTCOME_REFUSED,
    Outcome.HELD: pb.REPLY_OUTCOME_HELD,
    Outcome.PAUSED: pb.REPLY_OUTCOME_PAUSED,
}
_PENDING = {
    PendingStatus.WAITING: pb.PENDING_REPLY_STATUS_WAITING,
    PendingStatus.APPROVED: pb.PENDING_REPLY_STATUS_APPROVED,
    PendingStatus.REJECTED: pb.PENDING_REPLY_STATUS_REJECTED,
}
MAX_AGE = 150


def end_to_pb(end: TurnEnd) -> pb.ReplyEnd:
    """The end-of-reply event."""
    return pb.ReplyEnd(
        outcome=_OUTCOMES[end.outcome],
        citations=[citation_to_pb(c) for c in end.citations],
        decisions=[decision_to_pb(d) for d in end.decisions],
        usage=types_pb2.Usage(
            prompt_tokens=end.prompt_tokens,
            completion_tokens=end.completion_tokens,
            cached_prompt_tokens=end.cached_prompt_tokens,
        ),
        text=end.text,
        pending_reply_id=end.pending_reply_id,
    )


class ConversationServicer(pb_grpc.ConversationServiceServicer):
    """Thin adapter over :class:`TurnRunner`."""

    def __init__(self, runner: TurnRunner, memory: MemoryClient, max_message_chars: int) -> None:
        self._runner = runner
        self._memory = memory
        self._max_chars = max_message_chars

    async def Converse(self, request: pb.ConverseRequest, context: Ctx) -> AsyncIterator[pb.ConverseResponse]:
        for name in ("creator_id", "fan_id", "message"):
            if not getattr(request, name).strip():
                raise InvalidArgument(f"{name} is required")
        if len(request.message) > self._max_chars:
            raise InvalidArgument(f"message is longer than {self._max_chars} characters")
        fan_age = request.fan_age if request.HasField("fan_age") else None
        if fan_age is not None and not 0 <= fan_age <= MAX_AGE:
            raise InvalidArgument(f"fan_age must be from 0 to {MAX_AGE}, got {fan_age}")
        turn = TurnRequest(
            request.creator_id,
            request.fan_id,
            request.conversation_id,
            request.message,
            fan_age=fan_age,
            fan_age_verified=request.fan_age_verified,
        )
        async for event in self._runner.run(turn):
            if isinstance(event, TurnStart):
                yield pb.ConverseResponse(
                    start=pb.ReplyStart(
                        conversation_id=event.conversation_id,
                        disclosure=event.disclosure,
                        test_model=event.test_model,
                    )
                )
            elif isinstance(event, TurnDelta):
                yield pb.ConverseResponse(delta=pb.ReplyDelta(text=event.text))
            else:
                yield pb.ConverseResponse(end=end_to_pb(event))

    async def GetHistory(self, request: pb.GetHistoryRequest, context: Ctx) -> pb.GetHistoryResponse:
        turns = await self._memory.history(
            request.creator_id, request.fan_id, request.conversation_id, request.limit or 20
        )
        return pb.GetHistoryResponse(
            turns=[
                pb.HistoryTurn(conversation_id=request.conversation_id, role=t.role, text=t.text)
                for t in turns
            ]
        )

    async def GetPendingReplies(
        self, request: pb.GetPendingRepliesRequest, context: Ctx
    ) -> pb.GetPendingRepliesResponse:
        for name in ("creator_id", "fan_id"):
            if not getattr(request, name).strip():
                raise InvalidArgument(f"{name} is required")
        replies = await self._runner.pending_replies(
            request.creator_id, request.fan_id, request.conversation_id
        )
        return pb.GetPendingRepliesResponse(
            replies=[
                pb.PendingReply(
                    reply_id=r.reply_id,
                    conversation_id=r.conversation_id,
                    status=_PENDING[r.status],
                    text=r.text,
                    fan_message=r.fan_message,
                )
                for r in replies
            ]
        )


def inference_replicas(cfg: GatewayConfig) -> InferenceReplicas:
    """The inference replicas: a static list, or the records of a DNS name re-resolved periodically."""
    if cfg.inference_dns is None:
        return InferenceReplicas(cfg.inference_replicas)
    name = cfg.inference_dns
    return InferenceReplicas(
        resolve=lambda: resolve_all(name), refresh_seconds=cfg.inference_dns_refresh_seconds
    )


async def build(cfg: GatewayConfig) -> ServiceSpec:
    """Open channels to the downstream services (one per inference replica) and describe the gateway."""
    channels = [open_channel(t) for t in (cfg.policy_target, cfg.memory_target)]
    policy = PolicyClient(pol_grpc.PolicyServiceStub(channels[0]))
    memory = MemoryClient(mem_grpc.MemoryServiceStub(channels[1]))
    sampling = inf_pb.SamplingParams(
        max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=0.95, repetition_penalty=1.1
    )
    embeddings = EmbeddingCache(connect(cfg.redis_url)) if cfg.redis_url else None
    replicas = inference_replicas(cfg)
    await replicas.start()
    inference = InferenceClient(replicas, sampling, embeddings)
    settings = TurnSettings(
        top_k=cfg.top_k,
        min_score=cfg.min_score,
        grounding_top_k=cfg.grounding_top_k,
        sentence_grounding_k=cfg.sentence_grounding_k,
    )
    runner = TurnRunner(policy, memory, inference, settings=settings)
    servicer = ConversationServicer(runner, memory, cfg.max_message_chars)

    async def stop() -> None:
        for channel in channels:
            await channel.close(None)
        await replicas.close()
        if embeddings is not None:
            await embeddings.close()

    return ServiceSpec(
        name="gateway",
        register=lambda server: pb_grpc.add_ConversationServiceServicer_to_server(servicer, server),
        service_names=[pb.DESCRIPTOR.services_by_name["ConversationService"].full_name],
        on_stop=stop,
    )
