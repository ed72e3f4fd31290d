"""Prompt assembly, ordered so the stable parts come first for KV-cache reuse.

Order: persona system message (identical for every fan of a creator: its KV is shared), then the
fan's earlier turns (identical from one turn to the next: reused across turns), then the new
message with the retrieved snippets (changes every turn, so it goes last).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.gateway.core.types import Evidence, FanMemory, PastTurn

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


def persona_prefix(creator_id: str) -> str:
    """The system message shared by all fans of one creator (stable text = cacheable KV)."""
    return _PERSONA.format(creator=creator_id)


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
) -> list[dict[str, str]]:
    """Chat messages for the model's chat template.

    Everything that changes from turn to turn (what we remember about the fan, the snippets) rides
    in the last user message, after the history: the persona is then byte-identical for every fan
    and the history a stable prefix across this fan's turns, so both are served from the KV cache.
    Roles keep alternating user/assistant after the one system message, as stricter chat
    templates (Mistral's) require.
    """
    messages = [{"role": "system", "content": persona_prefix(creator_id)}]
    for turn in history:
        messages.append(
            {"role": "user" if turn.role == "fan" else "assistant", "content": neutralize(turn.text)}
        )
    remembered = render_fan_memory(fan) if fan is not None else None
    parts = [remembered] if remembered else []
    parts += [render_snippets(evidence), f"Fan: {message}"]
    messages.append({"role": "user", "content": neutralize("\n\n".join(parts))})
    return messages
