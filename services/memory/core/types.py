"""Domain types of the memory core: small frozen dataclasses, converted to/from protos at the servicer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

EMBEDDING_DIM = 384
"""Width of every stored and queried embedding (all-MiniLM-L6-v2); fixed by the ``vector(384)`` column."""

Role = Literal["fan", "avatar"]
"""Who spoke a turn."""


@dataclass(frozen=True, slots=True)
class NewChunk:
    """One chunk to store, carrying the metadata of the source it was cut from.

    Attributes:
        platform: Where the source was published ("instagram", "youtube", ...).
        external_id: The platform's id of the source; with ``platform`` it names the source per creator.
        url: Public link to the source ("" when unknown).
        created_at: When the creator published the source (timezone-aware), or None when unknown.
        kind: What the source is ("post", "caption", "transcript", "qa", ...); search can filter on it.
        path: Path of the file inside the export the source came from ("" when not from a file).
        source_hash: Hash of the whole source's content; a change replaces the source's old chunks.
        ordinal: Position of the chunk within its source, from 0.
        text: The chunk's text.
        start_char: Offset of the chunk's first character in the source text.
        end_char: Offset one past the chunk's last character in the source text.
        token_count: Tokens in ``text`` under the embedding model's tokenizer.
        content_hash: Hash of ``text``; a creator never stores two chunks with the same hash.
        embedding: The chunk's embedding, ``EMBEDDING_DIM`` finite floats.
    """

    platform: str
    external_id: str
    url: str
    created_at: datetime | None
    kind: str
    path: str
    source_hash: str
    ordinal: int
    text: str
    start_char: int
    end_char: int
    token_count: int
    content_hash: str
    embedding: Sequence[float]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one :meth:`MemoryStore.write_chunks` call changed.

    Attributes:
        chunks_inserted: Chunks stored by this call.
        chunks_unchanged: Chunks skipped because the creator already had one with the same content hash.
        sources_inserted: Sources seen for the first time.
        chunks_deleted: Stale chunks removed because their source's content hash changed.
    """

    chunks_inserted: int
    chunks_unchanged: int
    sources_inserted: int
    chunks_deleted: int = 0


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One retrieved chunk, with what a citation needs.

    Attributes:
        chunk_id: The chunk's id (a UUID string, as cited in :attr:`Turn.citations`).
        source_id: The id (UUID string) of the source the chunk belongs to.
        creator_id: The creator owning the chunk (always the creator searched).
        text: The chunk's text.
        score: Cosine similarity to the query, ``1 - cosine distance``, in [-1, 1] (what the
            relevance threshold applies to, whatever the search mode).
        platform: The source's platform.
        external_id: The source's platform id.
        url: The source's link ("" when unknown).
        created_at: When the source was published, or None when unknown.
        kind: The source's kind.
        start_char: Offset of the chunk in the source text.
        end_char: Offset one past the chunk's end in the source text.
        fused_score: Reciprocal rank fusion score (hybrid search); 0 for a single-retriever search.
        vector_rank: 1-based rank among the vector candidates; 0 when the vector side missed it.
        text_rank: 1-based rank among the full-text candidates; 0 when the text side missed it.
        path: Path of the source file inside its export ("" when not from a file).
    """

    chunk_id: str
    source_id: str
    creator_id: str
    text: str
    score: float
    platform: str
    external_id: str
    url: str
    created_at: datetime | None
    kind: str
    start_char: int
    end_char: int
    fused_score: float = 0.0
    vector_rank: int = 0
    text_rank: int = 0
    path: str = ""


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A search's hits and whether they came from the result cache.

    Attributes:
        hits: The hits, best first.
        from_cache: True when served from the cache.
    """

    hits: list[SearchHit]
    from_cache: bool


SearchMode = Literal["hybrid", "vector", "text"]
"""Which retrievers a search uses: both fused (the default), or one alone (for evaluation)."""


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrictions on which chunks a search may return; every field left empty means "any".

    Attributes:
        platforms: Only sources from these platforms.
        kinds: Only sources of these kinds.
        published_after: Only sources published at or after this time (undated sources excluded).
        published_before: Only sources published before this time (undated sources excluded).
    """

    platforms: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    published_after: datetime | None = None
    published_before: datetime | None = None

    @property
    def empty(self) -> bool:
        """True when nothing is filtered."""
        return not (self.platforms or self.kinds or self.published_after or self.published_before)


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a fan conversation.

    Attributes:
        conversation_id: The conversation the turn belongs to.
        role: "fan" or "avatar".
        text: What was said.
        citations: Ids (UUID strings) of the chunks the avatar cited; empty for fan turns.
        created_at: When the turn was stored.
    """

    conversation_id: str
    role: Role
    text: str
    citations: tuple[str, ...]
    created_at: datetime
    turn_id: int = 0
    fan_id: str = ""


@dataclass(frozen=True, slots=True)
class TurnPage:
    """One page of a fan's history.

    Attributes:
        turns: The turns, oldest first.
        next_page_token: Token for the page of turns just before these ("" when there are none).
    """

    turns: list[Turn]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation between a fan and a creator's avatar.

    Attributes:
        fan_id: The fan.
        conversation_id: The conversation (unique per fan).
        created_at: When its first turn was stored.
        turn_count: Turns stored in it.
        last_turn_at: When its latest turn was stored.
    """

    fan_id: str
    conversation_id: str
    created_at: datetime
    turn_count: int
    last_turn_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of a creator's conversations, newest first.

    Attributes:
        conversations: The conversations.
        next_page_token: Token for the next (older) page ("" when there is none).
    """

    conversations: list[Conversation]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class FanFact:
    """Something a fan told the avatar about themselves.

    Attributes:
        key: What it is about ("name", "likes", "diet", ...).
        value: The fact.
        origin: "extracted" (found in a fan turn) or "explicit" (written through the API).
        updated_at: When it was last set.
    """

    key: str
    value: str
    origin: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FanMemory:
    """What the avatar remembers about one fan, ready for the next turn's prompt.

    Attributes:
        facts: The fan's facts, by key.
        summary: Rolling summary of the turns older than ``recent_turns`` ("" when none).
        turns_summarised: How many turns the summary covers.
        recent_turns: The fan's latest turns verbatim, oldest first.
    """

    facts: list[FanFact]
    summary: str
    turns_summarised: int
    recent_turns: list[Turn]


@dataclass(frozen=True, slots=True)
class PersonaProfile:
    """A creator's style profile: computed by ingest, corrected by the creator.

    Memory stores it without interpreting it beyond its top-level fields: a correction replaces
    one field of the computed profile, whatever re-computations come later.

    Attributes:
        creator_id: The creator.
        profile: The effective profile (computed, corrections applied), a JSON object.
        version: Bumped by every change, from 1.
        updated_at: When it last changed.
        corrected_fields: Names of the fields the creator corrected, sorted.
    """

    creator_id: str
    profile: dict[str, Any]
    version: int
    updated_at: datetime
    corrected_fields: tuple[str, ...] = ()
