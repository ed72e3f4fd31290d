"""Prompt assembly, ordered so the stable parts come first for KV-cache reuse.

Order: persona system message (identical for every fan of a creator: its KV is shared), then the
fan's earlier turns (identical from one turn to the next: reused across turns), then the new
message with the retrieved snippets (changes every turn, so it goes last).

The system message is rendered from the creator's persona profile (style, stated facts) and their
voice examples only, deterministically: the same profile and examples always give byte-identical
text, and nothing per fan or per turn goes into it, or every fan would pay a fresh prefill.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.gateway.core.types import Evidence, FanMemory, PastTurn, Persona, VoiceExample

_PERSONA = (
    "You are the AI avatar of the creator '{creator}'. Answer the fan in the creator's voice, "
    "briefly and warmly. Use only what the creator has said in the context snippets. If the "
    "snippets do not cover the question, say you haven't shared that. Never promise gifts, "
    "money, meetings or anything else, and never invent facts about the creator's life."
)


# Chat templates mark turns with special tokens spelled like <|eot_id|>; tokenizers encode such
# text in a message as the real token, so a fan could close their turn and open a fake system turn.
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]{1,40}\|>|</?s>|\[/?INST\]")


def neutralize(text: str) -> str:
    """Remove special-token spellings from untrusted text (fan messages, history, snippets)."""
    return _SPECIAL_TOKEN.sub(" ", text)


# Caps keep the system message (a prefix of every prompt of the creator) bounded whatever the
# profile holds. They cut in the order the profile gives (most used first, newest example first),
# so the same input always renders the same text.
MAX_EMOJI = 5
MAX_HASHTAGS = 5
MAX_PHRASES = 8
MAX_TOPICS = 10
MAX_LANGUAGES = 3
MAX_FACTS = 12
MAX_FACT_CHARS = 200
MAX_EXAMPLES = 3
MAX_EXAMPLE_FAN_CHARS = 300
MAX_EXAMPLE_REPLY_CHARS = 600
MAX_EXAMPLES_CHARS = 1500
# Below this many per post a habit is "rarely": telling a model "0.0 emoji per post, mostly 🍞"
# would invite the emoji it should leave out.
_HABIT_MIN = 0.1
_SPACE = re.compile(r"\s+")


def _clip(text: str, limit: int) -> str:
    """One line of untrusted text, neutralised and cut to ``limit`` characters."""
    flat = _SPACE.sub(" ", neutralize(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _terms(items: Sequence[str], limit: int, quote: bool = False) -> str:
    picked = [_clip(t, 60) for t in items[:limit]]
    return ", ".join(f'"{t}"' for t in picked) if quote else " ".join(picked)


def render_style(creator_id: str, persona: Persona) -> str | None:
    """How the creator writes, as guidance for the reply; ``None`` when the profile says nothing."""
    lines: list[str] = []
    if persona.mean_sentence_words > 0:
        lines.append(
            f"- Sentences: about {round(persona.mean_sentence_words)} words on average "
            f"(median {round(persona.median_sentence_words)}); keep replies as short as theirs."
        )
    if persona.documents > 0:
        if persona.emoji_per_post >= _HABIT_MIN and persona.top_emoji:
            lines.append(
                f"- Emoji: about {persona.emoji_per_post:.1f} per post, mostly "
                f"{_terms(persona.top_emoji, MAX_EMOJI)}."
            )
        else:
            lines.append("- Emoji: rarely; use none.")
        if persona.hashtags_per_post >= _HABIT_MIN and persona.top_hashtags:
            lines.append(
                f"- Hashtags: about {persona.hashtags_per_post:.1f} per post, e.g. "
                f"{_terms(persona.top_hashtags, MAX_HASHTAGS)}; do not add them to replies to fans."
            )
        else:
            lines.append("- Hashtags: rarely; use none.")
    if persona.signature_phrases:
        lines.append(f"- Phrases they often use: {_terms(persona.signature_phrases, MAX_PHRASES, True)}.")
    if persona.topics:
        lines.append(
            f"- Topics they post about: {', '.join(_clip(t, 60) for t in persona.topics[:MAX_TOPICS])}."
        )
    if persona.languages:
        shares = ", ".join(
            f"{_clip(code, 8)} {share * 100:.0f}%" for code, share in persona.languages[:MAX_LANGUAGES]
        )
        lines.append(f"- Languages they write in: {shares}.")
    if not lines:
        return None
    return f"How {creator_id} writes (from their own posts):\n" + "\n".join(lines)


def render_facts(creator_id: str, persona: Persona) -> str | None:
    """What the creator stated about themselves (the profile's facts, as corrected by the creator)."""
    facts: list[str] = []
    for fact in persona.facts:
        # One sentence can state two facts ("I own X and I never Y"): say it once.
        line = _clip(fact, MAX_FACT_CHARS)
        if line and line not in facts:
            facts.append(line)
        if len(facts) == MAX_FACTS:
            break
    if not facts:
        return None
    return (
        f"What {creator_id} has said about themselves (you may say these; never contradict them):\n"
        + "\n".join(f"- {f}" for f in facts)
    )


def render_examples(creator_id: str, examples: Sequence[VoiceExample]) -> str | None:
    """Replies the creator wrote themselves (edits of drafts), newest first, within a size budget."""
    blocks: list[str] = []
    used = 0
    for ex in examples[:MAX_EXAMPLES]:
        block = (
            f"Fan: {_clip(ex.fan_message, MAX_EXAMPLE_FAN_CHARS)}\n"
            f"{creator_id}: {_clip(ex.reply, MAX_EXAMPLE_REPLY_CHARS)}"
        )
        if used + len(block) > MAX_EXAMPLES_CHARS:
            break  # the newest examples that fit win; older ones wait for a smaller newest one
        blocks.append(block)
        used += len(block)
    if not blocks:
        return None
    return (
        f"Replies {creator_id} wrote themselves, newest first (answer in this voice; do not copy them):\n"
        + "\n\n".join(blocks)
    )


def persona_prefix(
    creator_id: str, persona: Persona | None = None, examples: Sequence[VoiceExample] = ()
) -> str:
    """The system message shared by all fans of one creator (stable text = cacheable KV).

    Args:
        creator_id: The creator.
        persona: Their persona profile (``None``: nothing ingested yet).
        examples: Their voice examples, newest first.

    Returns:
        The same text for the same arguments, byte for byte.
    """
    parts = [_PERSONA.format(creator=creator_id)]
    if persona is not None:
        parts += [p for p in (render_style(creator_id, persona), render_facts(creator_id, persona)) if p]
    rendered = render_examples(creator_id, examples)
    if rendered:
        parts.append(rendered)
    return "\n\n".join(parts)


def render_snippets(evidence: Sequence[Evidence]) -> str:
    """Numbered snippets the reply may rely on."""
    if not evidence:
        return "Context: (nothing the creator has published matches this question)"
    lines = ["Context from the creator's own posts:"]
    for i, ev in enumerate(evidence, start=1):
        lines.append(f"[{i}] {ev.text}")
    return "\n".join(lines)


def render_fan_memory(fan: FanMemory) -> str | None:
    """What the avatar knows about this fan, or ``None`` when nothing."""
    lines = [f"- {key}: {value}" for key, value in fan.facts]
    if fan.summary:
        lines.append(f"Earlier conversations, in short:\n{fan.summary}")
    if not lines:
        return None
    return "About this fan (from what they told you before):\n" + "\n".join(lines)


def build_messages(
    creator_id: str,
    history: Sequence[PastTurn],
    evidence: Sequence[Evidence],
    message: str,
    fan: FanMemory | None = None,
    *,
    system: str | None = None,
) -> list[dict[str, str]]:
    """Chat messages for the model's chat template.

    Everything that changes from turn to turn (what we remember about the fan, the snippets) rides
    in the last user message, after the history: the persona is then byte-identical for every fan
    and the history a stable prefix across this fan's turns, so both are served from the KV cache.
    Roles keep alternating user/assistant after the one system message, as stricter chat
    templates (Mistral's) require. ``system`` is the creator's :func:`persona_prefix` (default: the
    one without a profile).
    """
    messages = [{"role": "system", "content": persona_prefix(creator_id) if system is None else system}]
    for turn in history:
        messages.append(
            {"role": "user" if turn.role == "fan" else "assistant", "content": neutralize(turn.text)}
        )
    remembered = render_fan_memory(fan) if fan is not None else None
    parts = [remembered] if remembered else []
    parts += [render_snippets(evidence), f"Fan: {message}"]
    messages.append({"role": "user", "content": neutralize("\n\n".join(parts))})
    return messages
