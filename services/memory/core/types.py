"""Domain types of the memory core: small frozen dataclasses, converted to/from protos at the servicer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

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
        score: Cosine similarity to the query, ``1 - cosine distance``, in [-1, 1].
        platform: The source's platform.
        external_id: The source's platform id.
        url: The source's link ("" when unknown).
        created_at: When the source was published, or None when unknown.
        kind: The source's kind.
        start_char: Offset of the chunk in the source text.
        end_char: Offset one past the chunk's end in the source text.
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
