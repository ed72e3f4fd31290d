"""The outcome of a policy check: what to do, and every reason why.

Reasons are kept even when a stronger one decides the action, so the audit log shows all the rules
a message broke, not just the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """What the caller must do with the message or sentence that was checked."""

    ALLOW = "allow"
    """Pass it on unchanged."""
    REFUSE = "refuse"
    """Do not answer; send ``Decision.text`` instead."""
    REWRITE = "rewrite"
    """Send ``Decision.text`` in place of the checked sentence."""
    ABSTAIN = "abstain"
    """The avatar would say something it must not claim; send ``Decision.text`` (an honest non-answer)."""
    HOLD = "hold"
    """Queue the turn for the creator's approval before anything is sent."""


class Stage(StrEnum):
    """Where in a turn a check ran."""

    INPUT = "input"
    """On the fan's message."""
    OUTPUT = "output"
    """On a sentence of the avatar's reply."""


class ReasonCode(StrEnum):
    """Machine-readable reason codes; stable, because audit records and clients keep them."""

    AUTONOMY_PAUSED = "autonomy_paused"
    APPROVAL_REQUIRED = "approval_required"
    BLOCKED_TOPIC = "blocked_topic"
    NEVER_CLAIM = "never_claim"
    LINK_NOT_ALLOWED = "link_not_allowed"
    CTA_NOT_ALLOWED = "cta_not_allowed"
    FORBIDDEN_COMMITMENT = "forbidden_commitment"
    UNSUPPORTED_CLAIM = "unsupported_claim"
    PROMPT_INJECTION = "prompt_injection"
    FAN_AGE = "fan_age"
    QUIET_HOURS = "quiet_hours"


@dataclass(frozen=True)
class Reason:
    """One rule that fired.

    Attributes:
        code: A :class:`ReasonCode` value, e.g. ``"blocked_topic"``.
        detail: Human-readable explanation for the creator's audit view.
        topic: The blocked topic's name for ``blocked_topic`` reasons; the commitment kind
            (e.g. ``"money"``) for ``forbidden_commitment`` reasons.
    """

    code: str
    detail: str
    topic: str | None = None

    def to_document(self) -> dict[str, Any]:
        """The reason as a JSON-compatible dict."""
        return {"code": self.code, "detail": self.detail, "topic": self.topic}


@dataclass(frozen=True)
class Decision:
    """The result of a check.

    Attributes:
        action: What to do.
        reasons: Every rule that fired, strongest first; empty for a plain ``ALLOW``.
        text: The refusal, replacement or abstention text, when the action needs one.
    """

    action: Action
    reasons: tuple[Reason, ...] = ()
    text: str | None = None

    @property
    def codes(self) -> tuple[str, ...]:
        """The reason codes, in order (handy for logs and assertions)."""
        return tuple(r.code for r in self.reasons)


ALLOW = Decision(Action.ALLOW)
"""The decision for a message or sentence that broke no rule."""
