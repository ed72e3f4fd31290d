"""Domain types of the ingest core: where a text came from, the text itself, and its chunks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: The kinds of content a creator publishes; parsers reject anything else so that policy and
#: retrieval can rely on a closed vocabulary.
KINDS: frozenset[str] = frozenset({"post", "caption", "transcript", "reply", "qa", "article"})


@dataclass(frozen=True, slots=True)
class SourceMeta:
    """Provenance of a document, carried unchanged into every chunk so citations can name it.

    Attributes:
        platform: Where it was published or how it arrived ("text", "markdown", "jsonl", "instagram", ...).
        source_id: Stable id: the record's own id when it has one, else derived from path and position.
        url: Public link to the original, if known.
        created_at: Publication time in UTC, if known.
        kind: One of `KINDS`.
        path: File path relative to the ingest root, POSIX separators.
        title: Title from Markdown front matter, if any.
    """

    platform: str
    source_id: str
    url: str | None
    created_at: datetime | None
    kind: str
    path: str
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """One published item after parsing and normalisation.

    Attributes:
        text: Normalised text (see `normalize.normalize_text`); chunk offsets index into it.
        meta: Where the text came from.
    """

    text: str
    meta: SourceMeta


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable span of a document. Creator-independent: the caller attaches the tenant.

    Attributes:
        text: Exactly ``document.text[start_char:end_char]``, so a citation can quote it verbatim.
        meta: The document's provenance.
        ordinal: Position of the chunk within its document, from 0.
        start_char: Start offset in the document text (inclusive).
        end_char: End offset in the document text (exclusive).
        token_count: Tokens in `text` according to the chunker's counter.
        content_hash: SHA-256 hex of the whitespace-normalised text, the key for deduplication.
    """

    text: str
    meta: SourceMeta
    ordinal: int
    start_char: int
    end_char: int
    token_count: int
    content_hash: str
