"""One fan turn: policy in -> memory search -> prompt -> generate -> policy out -> record.

The orchestrator depends on ports (Protocols) so it can be read and tested without gRPC; the
servicer wires gRPC clients into them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from services.common.telemetry import tracer
from services.gateway.core.prompt import build_messages
from services.gateway.core.sentences import SentenceBuffer
from services.gateway.core.types import (
    Action,
    Decision,
    Evidence,
    GenerationChunk,
    InputVerdict,
    Outcome,
    PastTurn,
    TurnDelta,
    TurnEnd,
    TurnEvent,
    TurnRequest,
    TurnStart,
)

_tracer = tracer(__name__)


class PolicyPort(Protocol):
    """The policy service as the gateway needs it."""

    async def check_input(
        self, creator_id: str, fan_id: str, message: str, prior_turns: int, minutes_since_last: float
    ) -> InputVerdict: ...

    async def check_output(
        self, creator_id: str, fan_id: str, sentence: str, evidence: Sequence[str]
    ) -> Decision: ...


class MemoryPort(Protocol):
    """The memory service as the gateway needs it."""

    async def search(
        self, creator_id: str, query: str, embedding: Sequence[float], top_k: int, min_score: float
    ) -> list[Evidence]: ...

    async def history(
        self, creator_id: str, fan_id: str, conversation_id: str, limit: int
    ) -> list[PastTurn]: ...

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

    def generate(self, messages: list[dict[str, str]], request_id: str) -> AsyncIterator[GenerationChunk]: ...

    async def is_test_model(self) -> bool: ...


@dataclass(frozen=True)
class TurnSettings:
    """Retrieval knobs of a turn."""

    top_k: int = 4
    min_score: float = 0.3
    history_turns: int = 12


class TurnRunner:
    """Runs fan turns against the three downstream services.

    Args:
        policy: Policy port.
        memory: Memory port.
        inference: Inference port.
        settings: Retrieval knobs.
    """

    def __init__(
        self,
        policy: PolicyPort,
        memory: MemoryPort,
        inference: InferencePort,
        *,
        settings: TurnSettings | None = None,
    ) -> None:
        self._policy = policy
        self._memory = memory
        self._inference = inference
        # Asked once, lazily: inference may still be loading when the gateway starts.
        self._test_model: bool | None = None
        self._settings = settings or TurnSettings()

    async def run(self, req: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Run one turn, yielding a start, released text deltas and an end."""
        conversation_id = req.conversation_id or uuid.uuid4().hex
        with _tracer.start_as_current_span("turn.history"):
            history = (
                await self._memory.history(
                    req.creator_id, req.fan_id, conversation_id, self._settings.history_turns
                )
                if req.conversation_id
                else []
            )
        minutes = _minutes_since(history)
        with _tracer.start_as_current_span("turn.policy_in"):
            verdict = await self._policy.check_input(
                req.creator_id, req.fan_id, req.message, len(history), minutes
            )
        if self._test_model is None:
            self._test_model = await self._inference.is_test_model()
        yield TurnStart(conversation_id, verdict.disclosure, self._test_model)
        decision = verdict.decision
        if decision.action in (Action.REFUSE, Action.HOLD):
            paused = any(r.code == "autonomy_paused" for r in decision.reasons)
            if decision.action is Action.HOLD:
                outcome, text = Outcome.HELD, ""
            else:
                outcome, text = (Outcome.PAUSED if paused else Outcome.REFUSED), decision.text
            if text:
                yield TurnDelta(text)
            await self._record(req, conversation_id, text, ())
            yield TurnEnd(outcome, text, decisions=(decision,))
            return

        with _tracer.start_as_current_span("turn.search"):
            [embedding] = await self._inference.embed([req.message])
            evidence = await self._memory.search(
                req.creator_id, req.message, embedding, self._settings.top_k, self._settings.min_score
            )
        messages = build_messages(req.creator_id, history, evidence, req.message)
        decisions: list[Decision] = [decision] if decision.reasons else []
        released: list[str] = []
        last = GenerationChunk(text="")
        buffer = SentenceBuffer()
        evidence_text = [ev.text for ev in evidence]
        with _tracer.start_as_current_span("turn.generate"):
            async for chunk in self._inference.generate(
                messages, f"{req.creator_id}/{req.fan_id}/{conversation_id}"
            ):
                last = chunk
                for sentence in buffer.push(chunk.text):
                    async for out in self._release(req, sentence, evidence_text, decisions):
                        released.append(out)
                        yield TurnDelta(out)
            tail = buffer.flush()
            if tail is not None:
                async for out in self._release(req, tail, evidence_text, decisions):
                    released.append(out)
                    yield TurnDelta(out)
        text = "".join(released)
        await self._record(req, conversation_id, text, [ev.chunk_id for ev in evidence])
        yield TurnEnd(
            Outcome.ANSWERED,
            text,
            citations=tuple(evidence),
            decisions=tuple(decisions),
            prompt_tokens=last.prompt_tokens,
            completion_tokens=last.completion_tokens,
            cached_prompt_tokens=last.cached_prompt_tokens,
        )

    async def _release(
        self, req: TurnRequest, sentence: str, evidence: Sequence[str], decisions: list[Decision]
    ) -> AsyncIterator[str]:
        with _tracer.start_as_current_span("turn.policy_out"):
            decision = await self._policy.check_output(req.creator_id, req.fan_id, sentence, evidence)
        if decision.action is Action.ALLOW:
            yield sentence
            return
        decisions.append(decision)
        if decision.text:
            # Keep the spacing of the sentence it replaces so the reply still reads as prose.
            trailing = sentence[len(sentence.rstrip()) :] or " "
            yield decision.text + trailing

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


def _minutes_since(history: Sequence[PastTurn]) -> float:
    if not history or history[-1].created_at is None:
        return 0.0
    return (datetime.now(UTC) - history[-1].created_at).total_seconds() / 60.0
