"""The turn runner grounds reply sentences against a deeper retrieval than the prompt shows.

The prompt and the citations keep the ``top_k`` best hits; every sentence is checked by policy
against ``grounding_top_k`` of them, so a true sentence whose source ranked just below the prompt's
snippets is not abstained. The ports are small in-memory stand-ins that record what they were
asked; the real services are exercised by the e2e tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from services.gateway.core.turn import TurnRunner, TurnSettings
from services.gateway.core.types import (
    Action,
    AuditEntry,
    Decision,
    DraftReply,
    Evidence,
    FanMemory,
    GenerationChunk,
    InputVerdict,
    PastTurn,
    PendingReply,
    Persona,
    Reason,
    TurnDelta,
    TurnEnd,
    TurnRequest,
    VoiceExamples,
)

pytestmark = pytest.mark.timeout(30)

HITS = [f"Post number {i} about rye." for i in range(10)]


def _hit(i: int) -> Evidence:
    return Evidence(f"c{i}", HITS[i], 1.0 - i / 10, "instagram", f"p{i}", "", None, "post", "", 0, 0)


class _Policy:
    def __init__(self) -> None:
        self.evidence: list[list[str]] = []

    async def check_input(self, *args: object, **kwargs: object) -> InputVerdict:
        return InputVerdict(Decision(Action.ALLOW), "")

    async def check_output(
        self, creator_id: str, fan_id: str, sentence: str, evidence: Sequence[str]
    ) -> Decision:
        self.evidence.append(list(evidence))
        return Decision(Action.ALLOW)

    async def submit_draft(self, draft: DraftReply) -> str:
        return "d1"

    async def record_turn(self, entry: AuditEntry) -> None:
        return None

    async def fan_replies(self, creator_id: str, fan_id: str, conversation_id: str) -> list[PendingReply]:
        return []

    async def mark_delivered(self, creator_id: str, reply_ids: Sequence[str]) -> list[str]:
        return []

    async def voice_examples(self, creator_id: str) -> VoiceExamples:
        return VoiceExamples()


class _Memory:
    def __init__(self) -> None:
        self.asked_k: list[int] = []

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
        self.asked_k.append(top_k)
        return [_hit(i) for i in range(min(top_k, len(HITS)))]

    async def history(self, creator_id: str, fan_id: str, conversation_id: str, limit: int) -> list[PastTurn]:
        return []

    async def fan_memory(self, creator_id: str, fan_id: str) -> FanMemory:
        return FanMemory()

    async def persona(self, creator_id: str) -> Persona | None:
        return None

    async def append_turn(self, *args: object) -> None:
        return None


class _Inference:
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]

    async def _chunks(self) -> AsyncIterator[GenerationChunk]:
        yield GenerationChunk(text="I bake rye. ")
        yield GenerationChunk(text="Every week.", finished=True)

    def generate(
        self, messages: list[dict[str, str]], request_id: str, *, affinity: str
    ) -> AsyncIterator[GenerationChunk]:
        return self._chunks()

    async def is_test_model(self) -> bool:
        return True


async def _turn(settings: TurnSettings) -> tuple[_Policy, _Memory, TurnEnd]:
    policy, memory = _Policy(), _Memory()
    runner = TurnRunner(policy, memory, _Inference(), settings=settings)
    events = [e async for e in runner.run(TurnRequest("maya", "fan", "", "Do you bake rye?"))]
    end = events[-1]
    assert isinstance(end, TurnEnd)
    return policy, memory, end


def test_sentences_are_grounded_against_the_deeper_retrieval_and_cited_from_the_top() -> None:
    policy, memory, end = asyncio.run(_turn(TurnSettings(top_k=3, grounding_top_k=7)))
    assert memory.asked_k == [7]  # one search, deep enough for grounding
    assert [c.chunk_id for c in end.citations] == ["c0", "c1", "c2"]  # the prompt's hits
    assert policy.evidence and all(ev == HITS[:7] for ev in policy.evidence)


def test_a_grounding_depth_below_top_k_grounds_against_the_prompt_hits() -> None:
    policy, memory, end = asyncio.run(_turn(TurnSettings(top_k=4, grounding_top_k=2)))
    assert memory.asked_k == [4]
    assert len(end.citations) == 4 and all(ev == HITS[:4] for ev in policy.evidence)


class _ThinMemory(_Memory):
    """The fan's message finds one hit; a reply sentence finds the posts worded like it."""

    def __init__(self, fail_sentences: bool = False) -> None:
        super().__init__()
        self.queries: list[str] = []
        self._fail = fail_sentences

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
        self.asked_k.append(top_k)
        self.queries.append(query)
        if query == "Do you bake rye?":
            return [_hit(0)]
        if self._fail:
            raise ConnectionError("memory is down")
        # the sentence's own search: the message's hit again and two more, one per sentence
        first = 1 if query.startswith("I bake") else 3
        return [_hit(0), _hit(first), _hit(first + 1)][:top_k]


async def _thin_turn(settings: TurnSettings, memory: _ThinMemory) -> _Policy:
    policy = _Policy()
    runner = TurnRunner(policy, memory, _Inference(), settings=settings)
    events = [e async for e in runner.run(TurnRequest("maya", "fan", "", "Do you bake rye?"))]
    assert isinstance(events[-1], TurnEnd)
    return policy


def test_a_message_that_found_little_grounds_each_sentence_by_its_own_search_too() -> None:
    memory = _ThinMemory()
    policy = asyncio.run(_thin_turn(TurnSettings(top_k=3, grounding_top_k=7, sentence_grounding_k=4), memory))
    assert memory.queries == ["Do you bake rye?", "I bake rye. ", "Every week."]
    assert memory.asked_k == [7, 4, 4]
    # the message's hit first, then what the sentence found that it had not (no repeats)
    assert policy.evidence == [[HITS[0], HITS[1], HITS[2]], [HITS[0], HITS[3], HITS[4]]]


def test_enough_hits_or_a_zero_depth_search_by_the_message_only() -> None:
    memory = _ThinMemory()
    policy = asyncio.run(_thin_turn(TurnSettings(top_k=1, grounding_top_k=7, sentence_grounding_k=4), memory))
    assert memory.queries == ["Do you bake rye?"] and policy.evidence == [[HITS[0]], [HITS[0]]]
    memory = _ThinMemory()
    policy = asyncio.run(_thin_turn(TurnSettings(top_k=3, sentence_grounding_k=0), memory))
    assert memory.queries == ["Do you bake rye?"] and policy.evidence == [[HITS[0]], [HITS[0]]]


def test_a_failed_sentence_search_keeps_the_messages_evidence() -> None:
    memory = _ThinMemory(fail_sentences=True)
    policy = asyncio.run(_thin_turn(TurnSettings(top_k=3, sentence_grounding_k=4), memory))
    assert len(memory.queries) == 3 and policy.evidence == [[HITS[0]], [HITS[0]]]


class _StrictPolicy(_Policy):
    """Abstains a sentence as unsupported unless the post worded like it is in the evidence;
    "Every week." is abstained for another reason (a never-claim), which no search can lift."""

    async def check_output(
        self, creator_id: str, fan_id: str, sentence: str, evidence: Sequence[str]
    ) -> Decision:
        self.evidence.append(list(evidence))
        if sentence.startswith("Every"):
            return Decision(Action.ABSTAIN, (Reason("never_claim", "never says that"),), "")
        if HITS[1] in evidence:
            return Decision(Action.ALLOW)
        unsupported = (Reason("unsupported_claim", "missing: rye"),)
        return Decision(Action.ABSTAIN, unsupported, "I haven't shared that.")


def test_a_sentence_about_to_abstain_as_unsupported_is_searched_by_its_own_text_and_judged_again() -> None:
    memory = _ThinMemory()
    policy = _StrictPolicy()
    # top_k 1: the message found enough, so sentences are not searched up front.
    runner = TurnRunner(policy, memory, _Inference(), settings=TurnSettings(top_k=1, sentence_grounding_k=4))
    events = asyncio.run(_events(runner))
    end = events[-1]
    assert isinstance(end, TurnEnd)
    # Only the unsupported sentence paid a search; it passed with what that search found.
    assert memory.queries == ["Do you bake rye?", "I bake rye. "]
    assert policy.evidence == [[HITS[0]], [HITS[0], HITS[1], HITS[2]], [HITS[0]]]
    assert "I bake rye." in "".join(e.text for e in events if isinstance(e, TurnDelta))


async def _events(runner: TurnRunner) -> list[object]:
    return [e async for e in runner.run(TurnRequest("maya", "fan", "", "Do you bake rye?"))]
