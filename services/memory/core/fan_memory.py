"""Per-fan memory rules: facts a fan states about themselves, and the rolling summary of older turns.

Pure functions. The store calls them inside the transaction that appends a turn, so memory is always
consistent with the history it was derived from. Both are deliberately simple and predictable
(patterns, extractive summary) rather than model-generated: the avatar must never "remember" something
the fan did not say, and a fan asking "what do you know about me" must get exactly what was stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

FACT_KEY: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""Shape of a fact key (same rule as the ``fan_facts.key`` CHECK)."""

MAX_FACT_VALUE: Final = 500
"""Longest fact value stored (same rule as the ``fan_facts.value`` CHECK)."""

SUMMARY_MAX_CHARS: Final = 2000
"""The rolling summary keeps its newest lines within this many characters."""

SUMMARY_LINE_CHARS: Final = 160
"""Each summarised turn contributes at most this many characters."""

# A name is one or two capitalised words ("I'm tired" must not make the fan "Tired"); after the
# unambiguous "my name is", a lower-case first word is accepted too (fans type in lower case).
_NAME = r"([A-Z][a-zA-Z'-]{1,30}(?: [A-Z][a-zA-Z'-]{1,30})?)"
_ANY_CASE_NAME = r"([A-Za-z][a-zA-Z'-]{1,30}(?: [A-Z][a-zA-Z'-]{1,30})?)"
# A preference object: up to the end of the clause.
_THING = r"([^.!?,;\n]{2,80})"

_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("name", re.compile(r"\b(?i:my name is) " + _ANY_CASE_NAME)),
    ("name", re.compile(r"\bcall me " + _NAME)),
    ("name", re.compile(r"\b(?:I am|I'm|Im) " + _NAME + r"(?= here\b|[.!,]|$)")),
    ("allergies", re.compile(r"\bI(?:'m| am) allergic to " + _THING, re.IGNORECASE)),
    (
        "diet",
        re.compile(
            r"\bI(?:'m| am) (?:a )?(vegan|vegetarian|pescatarian|gluten[- ]free|keto)\b", re.IGNORECASE
        ),
    ),
    ("location", re.compile(r"\bI live in " + _THING, re.IGNORECASE)),
    ("location", re.compile(r"\bI(?:'m| am) from " + _THING, re.IGNORECASE)),
    ("likes", re.compile(r"\bI (?:really )?(?:love|like|enjoy|prefer) " + _THING, re.IGNORECASE)),
    (
        "dislikes",
        re.compile(
            r"\bI (?:really )?(?:hate|dislike|don't like|do not like|can't stand) " + _THING, re.IGNORECASE
        ),
    ),
)
# Words that follow "I'm" but are states, not names ("I'm Happy to help" is rare; "I'm Sorry" is not).
_NOT_NAMES_TEXT: Final = (
    "sorry sure fine good ok okay happy sad tired back here new just so not very really still also"
)
_NOT_NAMES: Final = frozenset(_NOT_NAMES_TEXT.split())


@dataclass(frozen=True, slots=True)
class FactUpdate:
    """One fact to store for a fan.

    Attributes:
        key: The fact's name ("name", "likes", ...).
        value: What the fan said.
    """

    key: str
    value: str


def extract_facts(text: str) -> list[FactUpdate]:
    """Facts a fan states about themselves in one message, at most one per key (the last one wins).

    Args:
        text: The fan's message.

    Returns:
        The facts found, in key order of first appearance.
    """
    found: dict[str, str] = {}
    for key, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            value = " ".join(match.group(1).split()).strip(" '\"")
            if key == "name":
                if value.split()[0].lower() in _NOT_NAMES:
                    continue
                value = value[0].upper() + value[1:]
            if value:
                found[key] = value[:MAX_FACT_VALUE]
    return [FactUpdate(k, v) for k, v in found.items()]


@dataclass(frozen=True, slots=True)
class SummaryTurn:
    """A turn being folded into the rolling summary.

    Attributes:
        role: "fan" or "avatar".
        text: What was said.
    """

    role: str
    text: str


def summary_line(turn: SummaryTurn) -> str:
    """One summary line for a turn: who spoke and the start of what they said."""
    text = " ".join(turn.text.split())
    if len(text) > SUMMARY_LINE_CHARS:
        text = text[: SUMMARY_LINE_CHARS - 3].rstrip() + "..."
    who = "Fan" if turn.role == "fan" else "Avatar"
    return f"{who}: {text}"


def fold_summary(summary: str, turns: Sequence[SummaryTurn], max_chars: int = SUMMARY_MAX_CHARS) -> str:
    """Append turns to a rolling summary, dropping its oldest lines to stay within ``max_chars``.

    Extractive on purpose (see the module docstring): every line traces back to one real turn.

    Args:
        summary: The current summary ("" for none), one line per turn.
        turns: Turns leaving the verbatim window, oldest first.
        max_chars: Size bound of the result.

    Returns:
        The new summary.
    """
    lines = [line for line in summary.split("\n") if line]
    lines.extend(summary_line(t) for t in turns)
    total = sum(len(line) + 1 for line in lines) - 1 if lines else 0
    start = 0
    while total > max_chars and start < len(lines):
        total -= len(lines[start]) + 1
        start += 1
    return "\n".join(lines[start:])
