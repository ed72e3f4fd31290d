"""The per-creator system message, cached so that a turn pays no round trip for it.

The system message is rendered from two inputs that change rarely and on different clocks:

* the persona profile (memory): changes on an ingest or a creator correction. Cached for a short
  TTL, so a correction reaches every gateway within ``ttl_s`` without a lookup on every turn;
* the voice examples (policy): change when the creator approves an edited draft, and the creator
  expects the very next reply to learn from it. Policy's CheckInput, which every turn makes anyway,
  reports the examples' version, so they are re-read exactly when that version moves.

The rendered text is kept with the versions it came from: the same versions give the same bytes,
which is what keeps the creator's persona prefix warm in the inference KV cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from services.gateway.core.prompt import persona_prefix
from services.gateway.core.types import Persona, VoiceExamples


class PersonaSource(Protocol):
    """Where the persona profile comes from (memory)."""

    async def persona(self, creator_id: str) -> Persona | None: ...


class VoiceSource(Protocol):
    """Where the voice examples come from (policy)."""

    async def voice_examples(self, creator_id: str) -> VoiceExamples: ...


@dataclass(frozen=True)
class SystemPrompt:
    """A creator's rendered system message and the versions of what it was rendered from."""

    text: str
    persona_version: int
    voice_version: int


@dataclass
class _Entry:
    persona: Persona | None
    persona_expires: float
    voices: VoiceExamples
    rendered: SystemPrompt


class SystemPromptCache:
    """Renders and caches each creator's system message.

    Args:
        personas: Persona profile source.
        voices: Voice examples source.
        ttl_s: How long a persona profile is used before it is read again.
        max_creators: Creators kept (least recently used go first).
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        personas: PersonaSource,
        voices: VoiceSource,
        *,
        ttl_s: float = 15.0,
        max_creators: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._personas = personas
        self._voices = voices
        self._ttl = ttl_s
        self._max = max_creators
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    async def get(self, creator_id: str, voice_version: int) -> SystemPrompt:
        """The creator's system message.

        Args:
            creator_id: The creator.
            voice_version: The voice examples version policy reported for this turn.
        """
        now = self._clock()
        entry = self._entries.get(creator_id)
        persona = entry.persona if entry is not None else None
        if entry is None or now >= entry.persona_expires:
            persona = await self._personas.persona(creator_id)
            expires = now + self._ttl
        else:
            expires = entry.persona_expires
        voices = entry.voices if entry is not None else VoiceExamples()
        if voices.version != voice_version:
            # Version 0 means none: no need to ask (most creators never use approval mode).
            voices = await self._voices.voice_examples(creator_id) if voice_version else VoiceExamples()
        persona_version = persona.version if persona is not None else 0
        if (
            entry is not None
            and entry.rendered.persona_version == persona_version
            and entry.rendered.voice_version == voices.version
            and entry.persona == persona
        ):
            rendered = entry.rendered
        else:
            text = persona_prefix(creator_id, persona, voices.examples)
            rendered = SystemPrompt(text, persona_version, voices.version)
        self._entries[creator_id] = _Entry(persona, expires, voices, rendered)
        self._entries.move_to_end(creator_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return rendered
