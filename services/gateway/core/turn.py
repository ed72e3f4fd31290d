"""One fan turn: policy in -> memory search -> prompt -> generate -> policy out -> record.

The orchestrator depends on ports (Protocols) so it can be read and tested without gRPC; the
servicer wires gRPC clients into them.

How decisions are applied:

* input REFUSE (blocked topic, injection, age gate, quiet hours, kill switch): the creator's wording
  is sent instead of a reply and nothing is generated;
* input HOLD (approval mode): the reply is generated and checked sentence by sentence as usual,
  but nothing reaches the fan; the checked draft goes to the approval queue and the fan gets it
  (or the creator's edit) through ``pending_replies`` once approved;
* output REWRITE / ABSTAIN: the sentence is replaced before release (empty text drops it);
* output REFUSE (the kill switch flipped mid-reply): the reply stops at once.

Each sentence is grounded against the message's deeper retrieval (``grounding_top_k``); when the
message found fewer than ``top_k`` hits (a question in another language than the creator's posts,
or worded unlike them), each sentence is also searched by its own text, in the creator's content
only, and checked against both (``sentence_grounding_k``). Otherwise a sentence is searched by its
own text only when it would abstain as unsupported, and judged again with what that finds.

Every turn, whatever its outcome, ends with one audit record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from services.common.language import details_query, english_gloss, in_other_language
from services.common.telemetry import tracer
from services.gateway.core.persona_cache import SystemPrompt, SystemPromptCache
from services.gateway.core.prompt import build_messages
from services.gateway.core.sentences import SentenceBuffer
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
    TurnDelta,
    TurnEnd,
    TurnEvent,
    TurnRequest,
    TurnStart,
    VoiceExamples,
)

_tracer = tracer(__name__)
log = logging.getLogger(__name__)
PAUSED_CODE = "autonomy_paused"


class PolicyPort(Protocol):
    """The policy service as the gateway needs it."""

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
    ) -> InputVerdict: ...

    async def check_output(
        self, creator_id: str, fan_id: str, sentence: str, evidence: Sequence[str]
    ) -> Decision: ...

    async def submit_draft(self, draft: DraftReply) -> str: ...

    async def record_turn(self, entry: AuditEntry) -> None: ...

    async def fan_replies(self, creator_id: str, fan_id: str, conversation_id: str) -> list[PendingReply]: ...

    async def mark_delivered(self, creator_id: str, reply_ids: Sequence[str]) -> list[str]: ...

    async def voice_examples(self, creator_id: str) -> VoiceExamples: ...


class MemoryPort(Protocol):
    """The memory service as the gateway needs it."""

    async def search(
        self,
        creator_id: str,
        query: str,
        embedding: Sequence[float],
        top_k: int,
        min_score: float,
        *,
        text_only: bool = False,
    ) -> list[Evidence]: ...

    async def history(
        self, creator_id: str, fan_id: str, conversation_id: str, limit: int
    ) -> list[PastTurn]: ...

    async def fan_memory(self, creator_id: str, fan_id: str) -> FanMemory: ...

    async def persona(self, creator_id: str) -> Persona | None: ...

    async def append_turn(
        self,
        creator_id: str,
        fan_id: str,
        conversation_id: str,
        role: str,
        text: str,
        citations: Sequence[str],
    ) -> None: ...


class InferencePort(Protocol):
    """The inference service as the gateway needs it."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def generate(
        self, messages: list[dict[str, str]], request_id: str, *, affinity: str
    ) -> AsyncIterator[GenerationChunk]:
        """Stream a reply; ``affinity`` (the creator) picks the replica caching the persona prefix."""
        ...

    async def is_test_model(self) -> bool: ...


@dataclass(frozen=True)
class TurnSettings:
    """Retrieval knobs of a turn."""

    top_k: int = 4
    min_score: float = 0.3
    history_turns: int = 12
    grounding_top_k: int = 8
    """Hits the reply's claims are checked against: the prompt's ``top_k`` and the next ones, so
    a true statement whose source ranked just below the prompt's snippets is not abstained."""
    sentence_grounding_k: int = 4
    """Hits searched with each reply sentence's own text when the fan's message retrieved fewer
    than ``top_k`` (0 = never): a question in another language than the posts, or worded unlike
    them, finds little, while the sentence answering it is worded like the post it comes from."""


@dataclass
class _Generated:
    """What one generation produced, filled in while it streams."""

    raw: list[str]
    released: list[str]
    decisions: list[Decision]
    last: GenerationChunk
    stopped_by: Decision | None = None

    def end(
        self, outcome: Outcome, text: str, *, citations: tuple[Evidence, ...] = (), pending_reply_id: str = ""
    ) -> TurnEnd:
        return TurnEnd(
            outcome,
            text,
            citations=citations,
            decisions=tuple(self.decisions),
            prompt_tokens=self.last.prompt_tokens,
            completion_tokens=self.last.completion_tokens,
            cached_prompt_tokens=self.last.cached_prompt_tokens,
            pending_reply_id=pending_reply_id,
        )


class TurnRunner:
    """Runs fan turns against the three downstream services.

    Args:
        policy: Policy port.
        memory: Memory port.
        inference: Inference port.
        settings: Retrieval knobs.
        prompts: The creators' system messages (default: a cache over ``memory`` and ``policy``).
    """

    def __init__(
        self,
        policy: PolicyPort,
        memory: MemoryPort,
        inference: InferencePort,
        *,
        settings: TurnSettings | None = None,
        prompts: SystemPromptCache | None = None,
    ) -> None:
        self._policy = policy
        self._memory = memory
        self._inference = inference
        self._prompts = prompts or SystemPromptCache(memory, policy)
        # Asked once, lazily: inference may still be loading when the gateway starts.
        self._test_model: bool | None = None
        self._settings = settings or TurnSettings()

    async def run(self, req: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Run one turn, yielding a start, released text deltas and an end."""
        conversation_id = req.conversation_id or uuid.uuid4().hex
        # The message is embedded once, beside the history reads: policy's blocked-topic check and
        # memory's search both use this vector, so neither pays for a second embedding.
        embedding_task = asyncio.ensure_future(self._embed_query(req.message))
        try:
            with _tracer.start_as_current_span("turn.history"):
                history = (
                    await self._memory.history(
                        req.creator_id, req.fan_id, conversation_id, self._settings.history_turns
                    )
                    if req.conversation_id
                    else []
                )
                fan = await self._memory.fan_memory(req.creator_id, req.fan_id)
            embedding = await embedding_task
        finally:
            if not embedding_task.done():
                embedding_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await embedding_task
        minutes = _minutes_since(history)
        with _tracer.start_as_current_span("turn.policy_in"):
            verdict = await self._policy.check_input(
                req.creator_id,
                req.fan_id,
                req.message,
                len(history),
                minutes,
                fan_age=req.fan_age,
                fan_age_verified=req.fan_age_verified,
                embedding=embedding,
            )
        if self._test_model is None:
            self._test_model = await self._inference.is_test_model()
        yield TurnStart(conversation_id, verdict.disclosure, self._test_model)
        decision = verdict.decision
        audit = AuditEntry(
            req.creator_id,
            req.fan_id,
            conversation_id,
            req.message,
            Outcome.REFUSED,
            controls_version=decision.controls_version,
        )
        if decision.action is Action.REFUSE:
            outcome = Outcome.PAUSED if _paused(decision) else Outcome.REFUSED
            text = decision.text
            if text:
                yield TurnDelta(text)
            await self._record(req, conversation_id, text, ())
            await self._audit(audit, outcome=outcome, decisions=(decision,), final_text=text)
            yield TurnEnd(outcome, text, decisions=(decision,))
            return

        held = decision.action is Action.HOLD
        with _tracer.start_as_current_span("turn.search"):
            if embedding is None:
                # The early embedding failed (policy embedded the message itself if it needed
                # it); retrieval cannot do without one, so a second failure reaches the fan.
                [embedding] = await self._inference.embed([req.message])
            found = await self._memory.search(
                req.creator_id,
                req.message,
                embedding,
                max(self._settings.top_k, self._settings.grounding_top_k),
                self._settings.min_score,
            )
            evidence = found[: self._settings.top_k]
        with _tracer.start_as_current_span("turn.persona"):
            system = await self._prompts.get(req.creator_id, verdict.voice_version)
        messages = build_messages(req.creator_id, history, evidence, req.message, fan, system=system.text)
        gen = _Generated([], [], [decision] if decision.reasons else [], GenerationChunk(text=""))
        async for out in self._generate(req, conversation_id, messages, found, gen):
            # A held reply is checked exactly like a live one, but nothing of it reaches the fan.
            if not held:
                yield TurnDelta(out)
        text = "".join(gen.released)
        if gen.stopped_by is not None:
            # The kill switch was flipped while this reply streamed: what was released stays
            # released (the fan saw it), the rest is replaced by the creator's pause text.
            await self._record(req, conversation_id, text, [ev.chunk_id for ev in evidence])
            await self._audit(
                audit,
                outcome=Outcome.PAUSED,
                system=system,
                retrieved=tuple(evidence),
                draft_text="".join(gen.raw),
                decisions=tuple(gen.decisions),
                final_text=text,
            )
            yield gen.end(Outcome.PAUSED, text)
            return
        if held:
            draft = DraftReply(
                req.creator_id,
                req.fan_id,
                conversation_id,
                req.message,
                text,
                tuple(evidence),
                tuple(gen.decisions),
                decision.controls_version,
            )
            with _tracer.start_as_current_span("turn.hold"):
                draft_id = await self._policy.submit_draft(draft)
            await self._record(req, conversation_id, "", ())
            await self._audit(
                audit,
                outcome=Outcome.HELD,
                system=system,
                retrieved=tuple(evidence),
                draft_text="".join(gen.raw),
                decisions=tuple(gen.decisions),
                draft_id=draft_id,
            )
            yield gen.end(Outcome.HELD, "", pending_reply_id=draft_id)
            return
        await self._record(req, conversation_id, text, [ev.chunk_id for ev in evidence])
        await self._audit(
            audit,
            outcome=Outcome.ANSWERED,
            system=system,
            retrieved=tuple(evidence),
            draft_text="".join(gen.raw),
            decisions=tuple(gen.decisions),
            final_text=text,
        )
        yield gen.end(Outcome.ANSWERED, text, citations=tuple(evidence))

    async def _embed_query(self, message: str) -> list[float] | None:
        """The message's embedding, or ``None`` when the inference service cannot give one.

        ``None`` keeps the turns that need no retrieval working through an inference outage: a
        paused avatar or a refusal still answers, and only a turn that goes on to search fails.
        """
        with _tracer.start_as_current_span("turn.embed"):
            try:
                [embedding] = await self._inference.embed([message])
            except Exception:
                log.warning("embedding the fan message failed; policy checks it without one", exc_info=True)
                return None
        return embedding

    async def pending_replies(self, creator_id: str, fan_id: str, conversation_id: str) -> list[PendingReply]:
        """The fan's held replies; approved ones join the conversation history the first time.

        Args:
            creator_id: The creator.
            fan_id: The fan.
            conversation_id: Only this conversation ("" = all).

        Returns:
            The replies, oldest first; unapproved ones carry no text.
        """
        replies = await self._policy.fan_replies(creator_id, fan_id, conversation_id)
        fresh = [r for r in replies if r.status is PendingStatus.APPROVED and not r.delivered]
        if fresh:
            # Policy hands each id out once, so two polls racing cannot store the reply twice.
            newly = set(await self._policy.mark_delivered(creator_id, [r.reply_id for r in fresh]))
            for reply in fresh:
                if reply.reply_id in newly:
                    await self._memory.append_turn(
                        creator_id, fan_id, reply.conversation_id, "avatar", reply.text, ()
                    )
        return replies

    async def _generate(
        self,
        req: TurnRequest,
        conversation_id: str,
        messages: list[dict[str, str]],
        grounding: Sequence[Evidence],
        gen: _Generated,
    ) -> AsyncIterator[str]:
        buffer = SentenceBuffer()
        # Every sentence is checked against the deeper retrieval, not only the prompt's snippets.
        evidence_text = [ev.text for ev in grounding]
        # A message that retrieved little (another language, unusual wording) leaves true sentences
        # without evidence; each is then also searched by its own text, in the creator's content.
        by_sentence = self._settings.sentence_grounding_k > 0 and len(grounding) < self._settings.top_k
        with _tracer.start_as_current_span("turn.generate"):
            async for chunk in self._inference.generate(
                messages, f"{req.creator_id}/{req.fan_id}/{conversation_id}", affinity=req.creator_id
            ):
                gen.last = chunk
                for sentence in buffer.push(chunk.text):
                    async for out in self._release(req, sentence, evidence_text, gen, by_sentence):
                        yield out
                    if gen.stopped_by is not None:
                        return
            tail = buffer.flush()
            if tail is not None:
                async for out in self._release(req, tail, evidence_text, gen, by_sentence):
                    yield out

    async def _release(
        self,
        req: TurnRequest,
        sentence: str,
        evidence: Sequence[str],
        gen: _Generated,
        by_sentence: bool = False,
    ) -> AsyncIterator[str]:
        gen.raw.append(sentence)
        if by_sentence:
            evidence = [*evidence, *await self._sentence_evidence(req.creator_id, sentence, evidence)]
        with _tracer.start_as_current_span("turn.policy_out"):
            decision = await self._policy.check_output(req.creator_id, req.fan_id, sentence, evidence)
        if not by_sentence and self._settings.sentence_grounding_k > 0 and unsupported_only(decision):
            # The message's retrieval answered the question, not necessarily this sentence: before
            # abstaining, look for the claim itself in the creator's content (as fact checking does),
            # and judge it again with what that finds. Only abstaining sentences pay the search.
            more = await self._sentence_evidence(req.creator_id, sentence, evidence)
            if more:
                with _tracer.start_as_current_span("turn.policy_out"):
                    decision = await self._policy.check_output(
                        req.creator_id, req.fan_id, sentence, [*evidence, *more]
                    )
        if decision.action is Action.ALLOW:
            gen.released.append(sentence)
            yield sentence
            return
        gen.decisions.append(decision)
        if decision.action is Action.REFUSE:
            gen.stopped_by = decision
        if decision.text:
            # Keep the spacing of the sentence it replaces so the reply still reads as prose.
            trailing = sentence[len(sentence.rstrip()) :] or " "
            gen.released.append(decision.text + trailing)
            yield decision.text + trailing

    async def _sentence_evidence(self, creator_id: str, sentence: str, evidence: Sequence[str]) -> list[str]:
        """The creator's content found by searching with ``sentence`` itself, minus ``evidence``.

        Only the creator's own posts are searched, so the evidence still comes from what they said;
        grounding stays as strict (every number, the claim verb, most content words). A failure
        leaves the turn's evidence alone: the sentence may then abstain, never pass unchecked.
        """
        with _tracer.start_as_current_span("turn.sentence_search"):
            try:
                return await search_by_sentence(
                    self._inference,
                    self._memory,
                    creator_id,
                    sentence,
                    evidence,
                    self._settings.sentence_grounding_k,
                    self._settings.min_score,
                )
            except Exception:
                log.warning("searching the creator's content by a reply sentence failed", exc_info=True)
                return []

    async def _record(
        self, req: TurnRequest, conversation_id: str, reply: str, citations: Sequence[str]
    ) -> None:
        with _tracer.start_as_current_span("turn.record"):
            await self._memory.append_turn(
                req.creator_id, req.fan_id, conversation_id, "fan", req.message, ()
            )
            if reply:
                await self._memory.append_turn(
                    req.creator_id, req.fan_id, conversation_id, "avatar", reply, citations
                )

    async def _audit(
        self,
        base: AuditEntry,
        *,
        outcome: Outcome,
        system: SystemPrompt | None = None,
        retrieved: tuple[Evidence, ...] = (),
        draft_text: str = "",
        decisions: tuple[Decision, ...] = (),
        final_text: str = "",
        draft_id: str = "",
    ) -> None:
        entry = AuditEntry(
            base.creator_id,
            base.fan_id,
            base.conversation_id,
            base.fan_message,
            outcome,
            retrieved,
            draft_text,
            decisions,
            final_text,
            base.controls_version,
            draft_id,
            # What the model was told, so the creator can see which persona and examples shaped it.
            system_prompt=system.text if system is not None else "",
            persona_version=system.persona_version if system is not None else 0,
            voice_version=system.voice_version if system is not None else 0,
        )
        with _tracer.start_as_current_span("turn.audit"):
            await self._policy.record_turn(entry)


def _paused(decision: Decision) -> bool:
    return any(r.code == PAUSED_CODE for r in decision.reasons)


def _minutes_since(history: Sequence[PastTurn]) -> float:
    if not history or history[-1].created_at is None:
        return 0.0
    return (datetime.now(UTC) - history[-1].created_at).total_seconds() / 60.0


UNSUPPORTED_CLAIM = "unsupported_claim"
"""PolicyService's reason code for a claim the evidence does not support (``decisions.Code``)."""


def unsupported_only(decision: Decision) -> bool:
    """An abstention whose only reason is missing support (not a never-claim or another rule)."""
    return (
        decision.action is Action.ABSTAIN
        and bool(decision.reasons)
        and all(r.code == UNSUPPORTED_CLAIM for r in decision.reasons)
    )


async def search_by_sentence(
    inference: InferencePort,
    memory: MemoryPort,
    creator_id: str,
    sentence: str,
    known: Sequence[str],
    k: int,
    min_score: float,
) -> list[str]:
    """The texts of the creator's chunks found by searching with ``sentence``, minus ``known``.

    As :func:`sentence_queries` says: by the sentence itself (hybrid, ``min_score`` floor), or, in
    another language, by its numbers and names in full text alone (no cosine floor) and by its
    English gloss (hybrid). One embedding call serves every query.
    """
    queries = sentence_queries(sentence)
    embeddings = await inference.embed([query for query, _ in queries])
    seen = set(known)
    out: list[str] = []
    for (query, text_only), embedding in zip(queries, embeddings, strict=True):
        found = await memory.search(
            creator_id, query, embedding, k, -1.0 if text_only else min_score, text_only=text_only
        )
        for hit in found:
            if hit.text not in seen:
                seen.add(hit.text)
                out.append(hit.text)
    return out


def sentence_queries(sentence: str) -> list[tuple[str, bool]]:
    """What a reply sentence is searched by, each query with whether it is full text alone.

    In English: itself (hybrid search). In another language than the creator's posts neither its
    embedding nor its words can meet the posts', so: its numbers and names by full text only (the
    cosine floor would drop what the text side finds), and its word-by-word English gloss
    (:func:`english_gloss`, hybrid: the embedder reads the glossed words as English).
    """
    if not in_other_language(sentence.casefold()):
        return [(sentence, False)]
    queries = []
    details = details_query(sentence)
    if details:
        queries.append((details, True))
    glossed = english_gloss(sentence)
    if glossed:
        queries.append((glossed, False))
    return queries or [(sentence, False)]
