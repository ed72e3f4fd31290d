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


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """Choices the creator makes about what an export contributes.

    Attributes:
        include_replies: Keep replies (X replies) instead of excluding them.
        include_reposts: Keep retweets/reposts (other people's words) instead of excluding them.
        csv_column: Column holding the text in CSV files; ``None`` picks a known column name.
        max_file_bytes: Largest single file (or archive member) that is read.
        max_json_depth: Deepest JSON nesting accepted.
        max_archive_bytes: Most bytes a .zip may expand to, all members together.
        max_archive_members: Most members a .zip may have.
        max_compression_ratio: Largest expansion ratio of one member (zip-bomb guard).
    """

    include_replies: bool = False
    include_reposts: bool = False
    csv_column: str | None = None
    max_file_bytes: int = 256 * 1024 * 1024
    max_json_depth: int = 64
    max_archive_bytes: int = 2 * 1024 * 1024 * 1024
    max_archive_members: int = 20_000
    max_compression_ratio: int = 200
