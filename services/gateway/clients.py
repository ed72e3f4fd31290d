"""The gateway's ports implemented with gRPC clients of policy, memory and inference."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import memory_service_pb2 as mem_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import policy_service_pb2 as pol_pb
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from avatar.v1 import types_pb2
from services.common.convert import ts_from_pb
from services.gateway.core.types import (
    Action,
    Decision,
    Evidence,
    GenerationChunk,
    InputVerdict,
    PastTurn,
    Reason,
)

_ACTIONS = {
    types_pb2.POLICY_ACTION_ALLOW: Action.ALLOW,
    types_pb2.POLICY_ACTION_REFUSE: Action.REFUSE,
    types_pb2.POLICY_ACTION_REWRITE: Action.REWRITE,
    types_pb2.POLICY_ACTION_ABSTAIN: Action.ABSTAIN,
    types_pb2.POLICY_ACTION_HOLD: Action.HOLD,
}
ACTIONS_TO_PB = {v: k for k, v in _ACTIONS.items()}
_ROLES = {"fan": mem_pb.TURN_ROLE_FAN, "avatar": mem_pb.TURN_ROLE_AVATAR}
_ROLE_NAMES = {v: k for k, v in _ROLES.items()}
RPC_TIMEOUT = 10.0


def decision_from_pb(msg: types_pb2.PolicyDecision) -> Decision:
    """A policy decision from the wire."""
    return Decision(
        action=_ACTIONS.get(msg.action, Action.REFUSE),  # unknown = refuse: fail closed
        reasons=tuple(Reason(r.code, r.detail, r.topic) for r in msg.reasons),
        text=msg.text,
        controls_version=msg.controls_version,
    )


def evidence_from_pb(hit: types_pb2.Citation) -> Evidence:
    """A retrieved citation from the wire."""
    src = hit.source
    return Evidence(
        chunk_id=hit.chunk_id,
        text=hit.quote,
        score=hit.score,
        platform=src.platform,
        external_id=src.external_id,
        url=src.url,
        created_at=ts_from_pb(src, "created_at"),
        kind=src.kind,
        path=src.path,
        start_char=hit.start_char,
        end_char=hit.end_char,
    )


class PolicyClient:
    """Policy port over gRPC."""

    def __init__(self, stub: pol_grpc.PolicyServiceAsyncStub) -> None:
        self._stub = stub

    async def check_input(
        self, creator_id: str, fan_id: str, message: str, prior_turns: int, minutes_since_last: float
    ) -> InputVerdict:
        reply = await self._stub.CheckInput(
            pol_pb.CheckInputRequest(
                creator_id=creator_id,
                fan_id=fan_id,
                message=message,
                prior_turns=prior_turns,
                minutes_since_last_turn=minutes_since_last,
            ),
            timeout=RPC_TIMEOUT,
        )
        return InputVerdict(decision_from_pb(reply.decision), reply.disclosure)

    async def check_output(
        self, creator_id: str, fan_id: str, sentence: str, evidence: Sequence[str]
    ) -> Decision:
        reply = await self._stub.CheckOutput(
            pol_pb.CheckOutputRequest(
                creator_id=creator_id, fan_id=fan_id, sentence=sentence, evidence=list(evidence)
            ),
            timeout=RPC_TIMEOUT,
        )
        return decision_from_pb(reply.decision)


class MemoryClient:
    """Memory port over gRPC."""

    def __init__(self, stub: mem_grpc.MemoryServiceAsyncStub) -> None:
        self._stub = stub

    async def search(
        self, creator_id: str, query: str, embedding: Sequence[float], top_k: int, min_score: float
    ) -> list[Evidence]:
        reply = await self._stub.Search(
            mem_pb.SearchRequest(
                creator_id=creator_id,
                query=query,
                embedding=list(embedding),
                top_k=top_k,
                min_score=min_score,
            ),
            timeout=RPC_TIMEOUT,
        )
        return [evidence_from_pb(h) for h in reply.hits]

    async def history(self, creator_id: str, fan_id: str, conversation_id: str, limit: int) -> list[PastTurn]:
        reply = await self._stub.ListTurns(
            mem_pb.ListTurnsRequest(
                creator_id=creator_id, fan_id=fan_id, conversation_id=conversation_id, limit=limit
            ),
            timeout=RPC_TIMEOUT,
        )
        return [PastTurn(_ROLE_NAMES[t.role], t.text, ts_from_pb(t, "created_at")) for t in reply.turns]

    async def append_turn(
        self,
        creator_id: str,
        fan_id: str,
        conversation_id: str,
        role: str,
        text: str,
        citations: Sequence[str],
    ) -> None:
        turn = mem_pb.Turn(
            conversation_id=conversation_id, role=_ROLES[role], text=text, citation_chunk_ids=list(citations)
        )
        await self._stub.AppendTurn(
            mem_pb.AppendTurnRequest(creator_id=creator_id, fan_id=fan_id, turn=turn), timeout=RPC_TIMEOUT
        )


class InferenceClient:
    """Inference port over gRPC."""

    def __init__(self, stub: inf_grpc.InferenceServiceAsyncStub, sampling: inf_pb.SamplingParams) -> None:
        self._stub = stub
        self._sampling = sampling

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        reply = await self._stub.Embed(inf_pb.EmbedRequest(texts=list(texts)), timeout=RPC_TIMEOUT)
        return [list(e.values) for e in reply.embeddings]

    async def generate(
        self, messages: list[dict[str, str]], request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        request = inf_pb.GenerateRequest(
            messages=[types_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages],
            sampling=self._sampling,
            request_id=request_id,
        )
        call = self._stub.Generate(request, timeout=120)
        try:
            async for piece in call:
                done = piece.finish_reason != inf_pb.FINISH_REASON_UNSPECIFIED
                yield GenerationChunk(
                    text=piece.text,
                    finished=done,
                    prompt_tokens=piece.usage.prompt_tokens,
                    completion_tokens=piece.usage.completion_tokens,
                    cached_prompt_tokens=piece.usage.cached_prompt_tokens,
                )
        finally:
            call.cancel()  # type: ignore[no-untyped-call]  # frees the engine's sequence if the fan went away mid-reply

    async def is_test_model(self) -> bool:
        reply = await self._stub.GetModelInfo(inf_pb.GetModelInfoRequest(), timeout=RPC_TIMEOUT)
        return bool(reply.generator_random_weights)
