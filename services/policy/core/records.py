"""The approval queue's drafts and the per-turn audit records, as plain data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.policy.core.decisions import Action, Decision, Reason, Stage

MAX_LIST = 500
"""Most records one list call returns."""


class DraftNotFound(LookupError):
    """No draft with that id belongs to the creator."""


class DraftAlreadyDecided(Exception):
    """The draft was approved or rejected already; a decision is final."""


class DraftStatus(StrEnum):
    """Where a held reply stands."""

    PENDING = "pending"
    """Waiting for the creator."""
    APPROVED = "approved"
    """Approved (maybe edited); the fan gets ``final_text``."""
    REJECTED = "rejected"
    """Rejected; the fan gets nothing."""


class TurnOutcome(StrEnum):
    """How a turn ended, as the audit log records it."""

    ANSWERED = "answered"
    REFUSED = "refused"
    HELD = "held"
    PAUSED = "paused"


@dataclass(frozen=True)
class DecisionLogEntry:
    """One check's decision, as the decision log keeps it.

    Attributes:
        creator_id: Whose avatar the decision was about.
        stage: Where in the turn the check ran.
        decision: The decision, with all its reasons.
        controls_version: The controls version it was made under (``None`` = not known).
        at: When it was made (``None`` = when written). The log may be written after the reply
            went out, so the row keeps this time rather than the time of the insert.
    """

    creator_id: str
    stage: Stage
    decision: Decision
    controls_version: int | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class EvidenceRef:
    """A retrieved span of creator content a turn relied on.

    Attributes:
        chunk_id: The chunk's id in memory.
        quote: Its text.
        score: Retrieval score.
    """

    chunk_id: str
    quote: str
    score: float = 0.0

    def to_document(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {"chunk_id": self.chunk_id, "quote": self.quote, "score": self.score}

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> EvidenceRef:
        """Inverse of :meth:`to_document`."""
        return cls(str(doc["chunk_id"]), str(doc["quote"]), float(doc.get("score", 0.0)))


@dataclass(frozen=True)
class RecordedDecision:
    """A decision as kept in drafts and audit records (with the controls version it was made under)."""

    decision: Decision
    controls_version: int = 0

    def to_document(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "action": self.decision.action.value,
            "reasons": [r.to_document() for r in self.decision.reasons],
            "text": self.decision.text,
            "controls_version": self.controls_version,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> RecordedDecision:
        """Inverse of :meth:`to_document`."""
        reasons = tuple(Reason(r["code"], r["detail"], r.get("topic")) for r in doc.get("reasons", []))
        decision = Decision(Action(doc["action"]), reasons, doc.get("text"))
        return cls(decision, int(doc.get("controls_version", 0)))


@dataclass(frozen=True)
class NewDraft:
    """A reply the gateway holds for approval.

    Attributes:
        creator_id: Whose avatar wrote it.
        fan_id: Who it is for.
        conversation_id: The conversation.
        fan_message: What the fan wrote.
        draft_text: The reply after output checks (what would have been sent).
        evidence: What it rested on.
        decisions: Decisions taken on the way.
        controls_version: Controls in force.
    """

    creator_id: str
    fan_id: str
    conversation_id: str
    fan_message: str
    draft_text: str
    evidence: tuple[EvidenceRef, ...] = ()
    decisions: tuple[RecordedDecision, ...] = ()
    controls_version: int = 0


@dataclass(frozen=True)
class Draft:
    """A stored draft and where it stands.

    Attributes:
        draft_id: Its id.
        new: What was submitted.
        status: Pending, approved or rejected.
        final_text: The text the fan gets (approved drafts only).
        edited: The creator changed the text before approving.
        note: The creator's note (e.g. why it was rejected).
        created_at: When it was held.
        decided_at: When the creator decided.
        delivered_at: When the fan app first received the approved text.
    """

    draft_id: str
    new: NewDraft
    status: DraftStatus
    final_text: str | None
    edited: bool
    note: str
    created_at: datetime
    decided_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class TurnRecord:
    """One fan turn as the audit log keeps it.

    Attributes:
        creator_id: Whose avatar.
        fan_id: Which fan.
        conversation_id: Which conversation.
        fan_message: The fan's message.
        retrieved: The sources retrieved for it.
        draft_text: What the model generated, before output checks.
        decisions: Every decision, input first.
        final_text: What the fan received (empty when held or nothing was sent).
        outcome: How the turn ended.
        controls_version: Controls in force at the input check.
        draft_id: The approval-queue draft, for held turns.
        record_id: Assigned by the store.
        created_at: Assigned by the store.
        system_prompt: The system message the reply was generated with ("" when none was).
        persona_version: Persona profile version in it (0 = none).
        voice_examples_version: Voice examples version in it (0 = none).
    """

    creator_id: str
    fan_id: str
    conversation_id: str
    fan_message: str
    outcome: TurnOutcome
    retrieved: tuple[EvidenceRef, ...] = ()
    draft_text: str = ""
    decisions: tuple[RecordedDecision, ...] = ()
    final_text: str = ""
    controls_version: int = 0
    draft_id: str = ""
    record_id: int = 0
    created_at: datetime | None = None
    system_prompt: str = ""
    persona_version: int = 0
    voice_examples_version: int = 0


MAX_VOICE_EXAMPLES = 20
"""Most voice examples one call returns: they go into every prompt, so only a few ever matter."""


@dataclass(frozen=True)
class VoiceExample:
    """A reply the creator edited before approving it: how they would have answered the fan.

    Attributes:
        draft_id: The draft it comes from.
        fan_message: What the fan wrote.
        reply: The reply as the creator approved it.
        approved_at: When.
    """

    draft_id: str
    fan_message: str
    reply: str
    approved_at: datetime | None
