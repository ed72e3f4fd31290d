"""Sentence-aware chunking to a token budget, with overlap, exact offsets and deduplication."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from services.ingest.core.normalize import content_hash
from services.ingest.core.types import Chunk, Document

TokenCounter = Callable[[str], int]
"""Counts the tokens of a text; plug in the embedding model's tokenizer for exact budgets."""

_WORD_RE = re.compile(r"\w+|[^\w\s]")
_CJK_RE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# A sentence ends at terminal punctuation (plus closing quotes/brackets) before whitespace, or at a
# line break: headings, list items and transcript lines are units even without a full stop.
_BOUNDARY_RE = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")
_ABBREV_RE = re.compile(
    r"(?:\b(?:(?i:e\.g|i\.e|etc|vs|approx|a\.m|p\.m)|Mr|Mrs|Ms|Dr|St|Jr|Sr)|(?<![\w.])[A-Z])\.$"
)
_NON_SPACE_RE = re.compile(r"\S+")


def approx_token_count(text: str) -> int:
    """Cheap approximation of a WordPiece tokenizer such as all-MiniLM-L6-v2's.

    Each punctuation mark or symbol is one token; each CJK character is one token; other words count
    one token per started 6 characters, because WordPiece splits long and rare words into pieces.
    On the bundled English samples it is within about 20% of the real tokenizer per chunk (mean ratio
    1.03), so the default budget of 200 stays under the 256 tokens the embedding model reads.
    Pass the real tokenizer as the counter where the budget must be exact.

    Args:
        text: Any text.

    Returns:
        The estimated token count, without special tokens.
    """
    total = 0
    for match in _WORD_RE.finditer(text):
        word = match.group()
        cjk = len(_CJK_RE.findall(word))
        rest = len(word) - cjk
        total += cjk + (math.ceil(rest / 6) if rest else 0)
    return total


@dataclass(frozen=True, slots=True)
class ChunkingParams:
    """How documents are cut into chunks.

    Attributes:
        max_tokens: Budget per chunk. Only a single word longer than this may exceed it.
        overlap_sentences: How many trailing sentences of a chunk are repeated at the start of the next.
        overlap_tokens: Upper bound on the repeated part; a longer trailing sentence is not repeated.
    """

    max_tokens: int = 200
    overlap_sentences: int = 1
    overlap_tokens: int = 30

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.overlap_sentences < 0 or self.overlap_tokens < 0:
            raise ValueError(f"invalid chunking parameters: {self}")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Find sentence spans in `text`.

    Args:
        text: Any text (normally a document's normalised text).

    Returns:
        ``(start, end)`` offsets of each sentence in order, trimmed of surrounding whitespace. Together
        they cover every non-whitespace character of `text` exactly once.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY_RE.finditer(text):
        end = match.start() if match.group() == "\n" else match.end()
        if match.group() != "\n" and _ABBREV_RE.search(text, max(start, end - 8), end):
            continue  # "e.g. this" or "J. Smith" does not end a sentence
        _append_trimmed(spans, text, start, end)
        start = end
    _append_trimmed(spans, text, start, len(text))
    return spans


def _append_trimmed(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    segment = text[start:end]
    stripped = segment.strip()
    if stripped:
        lead = len(segment) - len(segment.lstrip())
        spans.append((start + lead, start + lead + len(stripped)))


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    tokens: int


def chunk_document(
    doc: Document,
    params: ChunkingParams = ChunkingParams(),
    count_tokens: TokenCounter = approx_token_count,
) -> list[Chunk]:
    """Cut one document into chunks of whole sentences within the token budget.

    A sentence longer than the budget is cut between words; a single word longer than the budget
    becomes a chunk of its own. Consecutive chunks share up to `params.overlap_sentences` sentences
    (at most `params.overlap_tokens` tokens) so a fact stated across a boundary stays retrievable.

    Args:
        doc: The document.
        params: Budget and overlap.
        count_tokens: Token counter for the budget and `Chunk.token_count`.

    Returns:
        Chunks in document order, each with ``doc.text[chunk.start_char:chunk.end_char] == chunk.text``.
        Not deduplicated (see `Deduplicator`).
    """
    text = doc.text
    units = _units(text, params.max_tokens, count_tokens)
    chunks: list[Chunk] = []
    first, prev_last = 0, -1
    while first < len(units):
        last = _pack(units, first, params.max_tokens)
        token_count = count_tokens(text[units[first].start : units[last].end])
        # A counter need not be additive over sentences; trust the count of the real span.
        while token_count > params.max_tokens and last > first:
            last -= 1
            token_count = count_tokens(text[units[first].start : units[last].end])
        if last <= prev_last:
            first = prev_last + 1  # the overlap left no room for new text: start afresh without it
            continue
        start, end = units[first].start, units[last].end
        chunk_text = text[start:end]
        chunks.append(
            Chunk(
                text=chunk_text,
                meta=doc.meta,
                ordinal=len(chunks),
                start_char=start,
                end_char=end,
                token_count=token_count,
                content_hash=content_hash(chunk_text),
            )
        )
        prev_last = last
        first = _overlap_start(units, first, last, params)
    return chunks


def _units(text: str, max_tokens: int, count_tokens: TokenCounter) -> list[_Unit]:
    """Sentences, with any sentence over the budget replaced by word runs that fit it."""
    units: list[_Unit] = []
    for start, end in split_sentences(text):
        tokens = count_tokens(text[start:end])
        if tokens <= max_tokens:
            units.append(_Unit(start, end, tokens))
            continue
        words = [
            _Unit(m.start(), m.end(), count_tokens(m.group()))
            for m in _NON_SPACE_RE.finditer(text, start, end)
        ]
        i = 0
        while i < len(words):
            j = _pack(words, i, max_tokens)
            span_tokens = count_tokens(text[words[i].start : words[j].end])
            while span_tokens > max_tokens and j > i:
                j -= 1
                span_tokens = count_tokens(text[words[i].start : words[j].end])
            units.append(_Unit(words[i].start, words[j].end, span_tokens))
            i = j + 1
    return units


def _pack(units: list[_Unit], first: int, max_tokens: int) -> int:
    """Index of the last unit of the longest run from `first` whose summed tokens fit the budget."""
    last, total = first, units[first].tokens
    while last + 1 < len(units) and total + units[last + 1].tokens <= max_tokens:
        last += 1
        total += units[last].tokens
    return last


def _overlap_start(units: list[_Unit], first: int, last: int, params: ChunkingParams) -> int:
    """Where the next chunk starts: after `last`, moved back over the sentences to repeat."""
    if last + 1 >= len(units):
        return len(units)
    start, repeated = last + 1, 0
    room = params.max_tokens - units[last + 1].tokens
    # Never back to `first`: the next chunk must not contain this whole chunk again.
    while start - 1 > first and last + 1 - (start - 1) <= params.overlap_sentences:
        candidate = repeated + units[start - 1].tokens
        if candidate > params.overlap_tokens or candidate > room:
            break
        start, repeated = start - 1, candidate
    return start


class Deduplicator:
    """Drops chunks whose content hash was already seen in this ingest.

    Keep one instance per ingest job (per creator) so a caption reposted on two platforms is stored once.

    Attributes:
        dropped: How many duplicates were dropped so far.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.dropped = 0

    def admit(self, chunk: Chunk) -> bool:
        """Record `chunk` and say whether it is new.

        Args:
            chunk: A chunk.

        Returns:
            True the first time its content hash is seen, False for duplicates.
        """
        if chunk.content_hash in self._seen:
            self.dropped += 1
            return False
        self._seen.add(chunk.content_hash)
        return True


def chunk_documents(
    docs: Iterable[Document],
    params: ChunkingParams = ChunkingParams(),
    count_tokens: TokenCounter = approx_token_count,
    dedupe: Deduplicator | None = None,
) -> Iterator[Chunk]:
    """Chunk many documents, dropping exact duplicate chunks across all of them.

    Args:
        docs: Documents of one ingest.
        params: Budget and overlap.
        count_tokens: Token counter.
        dedupe: Deduplication state to share across calls; a fresh one when omitted.

    Yields:
        New chunks, in document order.
    """
    dedupe = dedupe if dedupe is not None else Deduplicator()
    for doc in docs:
        for chunk in chunk_document(doc, params, count_tokens):
            if dedupe.admit(chunk):
                yield chunk
