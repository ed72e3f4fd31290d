"""Domain types of a fan turn, independent of gRPC."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Action(enum.Enum):
    """What a policy decision tells the gateway to do."""

    ALLOW = "allow"
    REFUSE = "refuse"
    REWRITE = "rewrite"
    ABSTAIN = "abstain"
    HOLD = "hold"


@dataclass(frozen=True)
class Reason:
    """One machine-readable reason of a decision."""

    code: str
    detail: str = ""
    topic: str = ""


@dataclass(frozen=True)
class Decision:
    """A policy decision as the gateway applies it."""

    action: Action
    reasons: tuple[Reason, ...] = ()
    text: str = ""
    controls_version: int = 0


@dataclass(frozen=True)
class InputVerdict:
    """Policy's answer to a fan message: the decision and the disclosure due with the reply."""

    decision: Decision
    disclosure: str
    voice_version: int = 0
    """Version of the creator's voice examples: the turn re-reads them only when it changes."""


@dataclass(frozen=True)
class Persona:
    """A creator's persona profile as the prompt renders it (computed by ingest, corrected by the creator).

    Counts are already ranked (most used first) by ingest; the prompt keeps the order it is given.
    """

    version: int
    documents: int = 0
    mean_sentence_words: float = 0.0
    median_sentence_words: float = 0.0
    emoji_per_post: float = 0.0
    top_emoji: tuple[str, ...] = ()
    hashtags_per_post: float = 0.0
    top_hashtags: tuple[str, ...] = ()
    signature_phrases: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    languages: tuple[tuple[str, float], ...] = ()
    """``(ISO 639-1 code, share of documents)``."""
    facts: tuple[str, ...] = ()
    """Sentences in which the creator stated something about themselves, in profile order."""


@dataclass(frozen=True)
class VoiceExample:
    """A fan message and the reply as the creator edited it before approving."""

    fan_message: str
    reply: str


@dataclass(frozen=True)
class VoiceExamples:
    """The creator's newest voice examples (newest first) and their version (0 = none)."""

    version: int = 0
    examples: tuple[VoiceExample, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """A retrieved span of the creator's content, ready to cite."""

    chunk_id: str
    text: str
    score: float
    platform: str
    external_id: str
    url: str
    created_at: datetime | None
    kind: str
    path: str
    start_char: int
    end_char: int


@dataclass(frozen=True)
class PastTurn:
    """An earlier turn of the conversation."""

    role: str  # "fan" or "avatar"
    text: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class FanMemory:
    """What the avatar remembers about one fan across conversations."""

    facts: tuple[tuple[str, str], ...] = ()
    """(key, value) pairs the fan shared: name, likes, diet, ..."""
    summary: str = ""
    """Rolling summary of the fan's older turns."""


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of streamed generation; the last one carries the counts."""

    text: str
    finished: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0


class Outcome(enum.Enum):
    """How a turn ended."""

    ANSWERED = "answered"
    REFUSED = "refused"
    HELD = "held"
    PAUSED = "paused"


@dataclass(frozen=True)
class TurnStart:
    """First event of a reply."""

    conversation_id: str
    disclosure: str
    test_model: bool


@dataclass(frozen=True)
class TurnDelta:
    """Released reply text (a sentence that passed the output checks, or its replacement)."""

    text: str


@dataclass(frozen=True)
class TurnEnd:
    """Last event of a reply."""

    outcome: Outcome
    text: str
    citations: tuple[Evidence, ...] = ()
    decisions: tuple[Decision, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    pending_reply_id: str = ""


TurnEvent = TurnStart | TurnDelta | TurnEnd


@dataclass(frozen=True)
class TurnRequest:
    """A fan message addressed to a creator's avatar."""

    creator_id: str
    fan_id: str
    conversation_id: str
    message: str
    history_turns: int = field(default=12)
    fan_age: int | None = None
    fan_age_verified: bool = False


@dataclass(frozen=True)
class DraftReply:
    """A reply held for the creator's approval."""

    creator_id: str
    fan_id: str
    conversation_id: str
    fan_message: str
    text: str
    evidence: tuple[Evidence, ...]
    decisions: tuple[Decision, ...]
    controls_version: int


@dataclass(frozen=True)
class AuditEntry:
    """What the audit log keeps of one turn."""

    creator_id: str
    fan_id: str
    conversation_id: str
    fan_message: str
    outcome: Outcome
    retrieved: tuple[Evidence, ...] = ()
    draft_text: str = ""
    decisions: tuple[Decision, ...] = ()
    final_text: str = ""
    controls_version: int = 0
    draft_id: str = ""
    system_prompt: str = ""
    persona_version: int = 0
    voice_version: int = 0


class PendingStatus(enum.Enum):
    """Where a held reply stands, as the fan sees it."""

    WAITING = "waiting"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class PendingReply:
    """A held reply as the fan may see it (text only once approved)."""

    reply_id: str
    conversation_id: str
    status: PendingStatus
    text: str
    fan_message: str
    delivered: bool
