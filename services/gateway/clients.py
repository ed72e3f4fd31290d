"""The gateway's ports implemented with gRPC clients of policy, memory and inference."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import memory_service_pb2 as mem_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import policy_service_pb2 as pol_pb
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from avatar.v1 import types_pb2
from services.common.clients import RECONNECT_GRACE_SECONDS
from services.common.convert import kind_name, platform_name, ts_from_pb
from services.common.errors import Unavailable
from services.common.redis_cache import EmbeddingCache
from services.gateway.core import routing
from services.gateway.core.types import (
    Action,
    AuditEntry,
    Decision,
    DraftReply,
    Evidence,
    FanMemory,
    GenerationChunk,
    InputVerdict,
    Outcome,
    PastTurn,
    PendingReply,
    PendingStatus,
    Persona,
    Reason,
    VoiceExample,
    VoiceExamples,
)
from services.gateway.replicas import InferenceReplicas

log = logging.getLogger(__name__)
T = TypeVar("T")

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
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_OUTCOMES = {
    Outcome.ANSWERED: pol_pb.TURN_OUTCOME_ANSWERED,
    Outcome.REFUSED: pol_pb.TURN_OUTCOME_REFUSED,
    Outcome.HELD: pol_pb.TURN_OUTCOME_HELD,
    Outcome.PAUSED: pol_pb.TURN_OUTCOME_PAUSED,
}
_PENDING = {
    pol_pb.DRAFT_STATUS_PENDING: PendingStatus.WAITING,
    pol_pb.DRAFT_STATUS_APPROVED: PendingStatus.APPROVED,
    pol_pb.DRAFT_STATUS_REJECTED: PendingStatus.REJECTED,
}


def decision_from_pb(msg: types_pb2.PolicyDecision) -> Decision:
    """A policy decision from the wire."""
    return Decision(
        action=_ACTIONS.get(msg.action, Action.REFUSE),  # unknown = refuse: fail closed
        reasons=tuple(Reason(r.code, r.detail, r.topic) for r in msg.reasons),
        text=msg.text,
        controls_version=msg.controls_version,
    )


def decision_to_pb(d: Decision) -> types_pb2.PolicyDecision:
    """A decision for the wire."""
    return types_pb2.PolicyDecision(
        action=ACTIONS_TO_PB[d.action],
        reasons=[types_pb2.PolicyReason(code=r.code, detail=r.detail, topic=r.topic) for r in d.reasons],
        text=d.text,
        controls_version=d.controls_version,
    )


def _evidence_ref(ev: Evidence) -> pol_pb.EvidenceRef:
    return pol_pb.EvidenceRef(chunk_id=ev.chunk_id, quote=ev.text, score=ev.score)


def evidence_from_pb(hit: types_pb2.Citation) -> Evidence:
    """A retrieved citation from the wire."""
    src = hit.source
    return Evidence(
        chunk_id=hit.chunk_id,
        text=hit.quote,
        score=hit.score,
        platform=platform_name(src.platform),
        external_id=src.external_id,
        url=src.url,
        created_at=ts_from_pb(src, "created_at"),
        kind=kind_name(src.kind),
        path=src.path,
        start_char=hit.start_char,
        end_char=hit.end_char,
    )


class PolicyClient:
    """Policy port over gRPC."""

    def __init__(self, stub: pol_grpc.PolicyServiceAsyncStub) -> None:
        self._stub = stub

    async def check_input(
        self,
        creator_id: str,
        fan_id: str,
        message: str,
        prior_turns: int,
        minutes_since_last: float,
        *,
        fan_age: int | None = None,
        fan_age_verified: bool = False,
        embedding: Sequence[float] | None = None,
    ) -> InputVerdict:
        reply = await self._stub.CheckInput(
            pol_pb.CheckInputRequest(
                creator_id=creator_id,
                fan_id=fan_id,
                message=message,
                prior_turns=prior_turns,
                minutes_since_last_turn=minutes_since_last,
                fan_age=fan_age,
                fan_age_verified=fan_age_verified,
                # The vector the turn retrieves with: policy then skips embedding the message again.
                embedding=list(embedding) if embedding is not None else [],
            ),
            timeout=RPC_TIMEOUT,
        )
        return InputVerdict(
            decision_from_pb(reply.decision), reply.disclosure, voice_version=reply.voice_examples_version
        )

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

    async def submit_draft(self, draft: DraftReply) -> str:
        reply = await self._stub.SubmitDraft(
            pol_pb.SubmitDraftRequest(
                draft=pol_pb.Draft(
                    creator_id=draft.creator_id,
                    fan_id=draft.fan_id,
                    conversation_id=draft.conversation_id,
                    fan_message=draft.fan_message,
                    draft_text=draft.text,
                    evidence=[_evidence_ref(ev) for ev in draft.evidence],
                    decisions=[decision_to_pb(d) for d in draft.decisions],
                    controls_version=draft.controls_version,
                )
            ),
            timeout=RPC_TIMEOUT,
        )
        return reply.draft_id

    async def record_turn(self, entry: AuditEntry) -> None:
        await self._stub.RecordTurn(
            pol_pb.RecordTurnRequest(
                record=pol_pb.TurnRecord(
                    creator_id=entry.creator_id,
                    fan_id=entry.fan_id,
                    conversation_id=entry.conversation_id,
                    fan_message=entry.fan_message,
                    retrieved=[_evidence_ref(ev) for ev in entry.retrieved],
                    draft_text=entry.draft_text,
                    decisions=[decision_to_pb(d) for d in entry.decisions],
                    final_text=entry.final_text,
                    outcome=_OUTCOMES[entry.outcome],
                    controls_version=entry.controls_version,
                    draft_id=entry.draft_id,
                    system_prompt=entry.system_prompt,
                    persona_version=entry.persona_version,
                    voice_examples_version=entry.voice_version,
                )
            ),
            timeout=RPC_TIMEOUT,
        )

    async def fan_replies(self, creator_id: str, fan_id: str, conversation_id: str) -> list[PendingReply]:
        reply = await self._stub.ListFanReplies(
            pol_pb.ListFanRepliesRequest(
                creator_id=creator_id, fan_id=fan_id, conversation_id=conversation_id
            ),
            timeout=RPC_TIMEOUT,
        )
        return [
            PendingReply(
                reply_id=r.reply_id,
                conversation_id=r.conversation_id,
                status=_PENDING.get(r.status, PendingStatus.WAITING),
                # Belt and braces: only approved text ever leaves this adapter.
                text=r.text if r.status == pol_pb.DRAFT_STATUS_APPROVED else "",
                fan_message=r.fan_message,
                delivered=r.delivered,
            )
            for r in reply.replies
        ]

    async def mark_delivered(self, creator_id: str, reply_ids: Sequence[str]) -> list[str]:
        reply = await self._stub.MarkDelivered(
            pol_pb.MarkDeliveredRequest(creator_id=creator_id, draft_ids=list(reply_ids)), timeout=RPC_TIMEOUT
        )
        return list(reply.draft_ids)

    async def voice_examples(self, creator_id: str) -> VoiceExamples:
        reply = await self._stub.ListVoiceExamples(
            pol_pb.ListVoiceExamplesRequest(creator_id=creator_id), timeout=RPC_TIMEOUT
        )
        return VoiceExamples(
            version=reply.version,
            examples=tuple(VoiceExample(e.fan_message, e.reply) for e in reply.examples),
        )


def persona_from_pb(p: mem_pb.PersonaProfile) -> Persona:
    """The parts of a persona profile the prompt renders."""
    return Persona(
        version=p.version,
        documents=p.documents,
        mean_sentence_words=p.mean_sentence_words,
        median_sentence_words=p.median_sentence_words,
        emoji_per_post=p.emoji_per_post,
        top_emoji=tuple(t.term for t in p.top_emoji),
        hashtags_per_post=p.hashtags_per_post,
        top_hashtags=tuple(t.term for t in p.top_hashtags),
        signature_phrases=tuple(t.term for t in p.signature_phrases),
        topics=tuple(t.term for t in p.topics),
        languages=tuple((lang.language, lang.share) for lang in p.languages),
        facts=tuple(f.text for f in p.facts),
    )


class MemoryClient:
    """Memory port over gRPC."""

    def __init__(self, stub: mem_grpc.MemoryServiceAsyncStub) -> None:
        self._stub = stub

    async def search(
        self,
        creator_id: str,
        query: str,
        embedding: Sequence[float],
        top_k: int,
        min_score: float,
        *,
        text_only: bool = False,
    ) -> list[Evidence]:
        reply = await self._stub.Search(
            mem_pb.SearchRequest(
                creator_id=creator_id,
                query=query,
                embedding=list(embedding),
                top_k=top_k,
                min_score=min_score,
                mode=mem_pb.SEARCH_MODE_TEXT if text_only else mem_pb.SEARCH_MODE_HYBRID,
            ),
            timeout=RPC_TIMEOUT,
        )
        return [evidence_from_pb(h) for h in reply.hits]

    async def fan_memory(self, creator_id: str, fan_id: str) -> FanMemory:
        reply = await self._stub.GetFanMemory(
            mem_pb.GetFanMemoryRequest(creator_id=creator_id, fan_id=fan_id), timeout=RPC_TIMEOUT
        )
        return FanMemory(facts=tuple((f.key, f.value) for f in reply.facts), summary=reply.summary)

    async def persona(self, creator_id: str) -> Persona | None:
        try:
            reply = await self._stub.GetPersonaProfile(
                mem_pb.GetPersonaProfileRequest(creator_id=creator_id), timeout=RPC_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None  # nothing ingested yet: the generic persona
            raise
        return persona_from_pb(reply.profile)

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
    """Inference port over gRPC, spread over the inference replicas.

    Generate goes to the creator's home replica (rendezvous hashing, see
    :mod:`services.gateway.core.routing`) so the creator's persona and each fan's history stay in
    one replica's prefix cache. A replica that answers UNAVAILABLE before the first token is marked
    down for a back-off and the request moves to the creator's next-ranked replica; once tokens
    have reached the fan a failure is final, because a retry would stream a different reply after
    the words already shown. Embeddings and model info go to any healthy replica.

    Args:
        replicas: The replicas, or one stub (a single replica the caller owns).
        sampling: Sampling parameters of every reply.
        embeddings: Query-embedding cache (optional).
    """

    def __init__(
        self,
        replicas: InferenceReplicas | inf_grpc.InferenceServiceAsyncStub,
        sampling: inf_pb.SamplingParams,
        embeddings: EmbeddingCache | None = None,
    ) -> None:
        self._replicas = (
            replicas if isinstance(replicas, InferenceReplicas) else InferenceReplicas.of_stub(replicas)
        )
        self._sampling = sampling
        self._cache = embeddings
        self._turn = 0

    def _any_order(self) -> list[str]:
        self._turn += 1
        r = self._replicas
        return routing.any_order(r.addresses, r.health, r.clock(), self._turn)

    async def _attempts(self, order: list[str]) -> AsyncGenerator[str, None]:
        """The replicas to call, in ``order``; the caller stops iterating once a call succeeds.

        When every one of them has failed, one more: the first whose channel reconnects within
        :data:`RECONNECT_GRACE_SECONDS`. A channel in its reconnect back-off fails calls at once,
        so without this a turn right after a replica (re)started would fail although it is back.
        """
        for address in order:
            if self._replicas.stub(address) is not None:
                yield address
        again = await self._replicas.first_ready(order, within=RECONNECT_GRACE_SECONDS)
        if again is not None:
            log.info("inference replica %s reconnected; trying it again", again)
            yield again

    async def _unary(self, call: Callable[[inf_grpc.InferenceServiceAsyncStub], Awaitable[T]]) -> T:
        """Run an idempotent call on any replica, moving on from those that are UNAVAILABLE."""
        failure: grpc.aio.AioRpcError | None = None
        async with contextlib.aclosing(self._attempts(self._any_order())) as attempts:
            async for address in attempts:
                stub = self._replicas.stub(address)
                if stub is None:
                    continue
                try:
                    result = await call(stub)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    self._mark_down(address, exc)
                    failure = exc
                    continue
                self._replicas.health.mark_up(address)
                return result
        if failure is not None:
            raise failure
        raise Unavailable("no inference replicas are known yet")

    def _mark_down(self, address: str, exc: grpc.aio.AioRpcError) -> None:
        until = self._replicas.health.mark_down(address, self._replicas.clock())
        log.warning(
            "inference replica %s unavailable (%s); skipping it for %.1fs",
            address,
            exc.details(),
            until - self._replicas.clock(),
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # Fans ask the same questions; a cached query embedding skips a model run (fails open).
        if self._cache is not None and len(texts) == 1:
            hit = await self._cache.get(EMBEDDING_MODEL, texts[0])
            if hit is not None:
                return [hit.tolist()]
        request = inf_pb.EmbedRequest(texts=list(texts))
        reply = await self._unary(lambda stub: stub.Embed(request, timeout=RPC_TIMEOUT))
        vectors = [list(e.values) for e in reply.embeddings]
        if self._cache is not None and len(texts) == 1:
            await self._cache.put(EMBEDDING_MODEL, texts[0], vectors[0])
        return vectors

    async def generate(
        self, messages: list[dict[str, str]], request_id: str, *, affinity: str
    ) -> AsyncIterator[GenerationChunk]:
        request = inf_pb.GenerateRequest(
            messages=[types_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages],
            sampling=self._sampling,
            request_id=request_id,
        )
        r = self._replicas
        order = routing.failover_order(affinity, r.addresses, r.health, r.clock())
        failure: grpc.aio.AioRpcError | None = None
        async with contextlib.aclosing(self._attempts(order)) as attempts:
            async for address in attempts:
                stub = r.stub(address)
                if stub is None:
                    continue
                call = stub.Generate(request, timeout=120)
                streamed = False
                try:
                    async for piece in call:
                        if not streamed:
                            streamed = True
                            r.health.mark_up(address)
                        done = piece.finish_reason != inf_pb.FINISH_REASON_UNSPECIFIED
                        yield GenerationChunk(
                            text=piece.text,
                            finished=done,
                            prompt_tokens=piece.usage.prompt_tokens,
                            completion_tokens=piece.usage.completion_tokens,
                            cached_prompt_tokens=piece.usage.cached_prompt_tokens,
                        )
                    return
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    self._mark_down(address, exc)
                    if streamed:
                        # The fan has seen part of this reply: another replica would write a different one.
                        raise
                    failure = exc
                finally:
                    call.cancel()  # type: ignore[no-untyped-call]  # frees the engine's sequence if the fan went away mid-reply
        if failure is not None:
            raise failure
        raise Unavailable("no inference replicas are known yet")

    async def is_test_model(self) -> bool:
        reply = await self._unary(
            lambda stub: stub.GetModelInfo(inf_pb.GetModelInfoRequest(), timeout=RPC_TIMEOUT)
        )
        return bool(reply.generator_random_weights)
