"""Chunker: sentence splitting, budget, overlap, exact offsets and deduplication."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.core import (
    Chunk,
    ChunkingParams,
    Deduplicator,
    Document,
    SourceMeta,
    approx_token_count,
    chunk_document,
    chunk_documents,
    content_hash,
    normalize_text,
    split_sentences,
)

pytestmark = pytest.mark.timeout(60)


def make_doc(text: str, source_id: str = "s1") -> Document:
    meta = SourceMeta(
        platform="text", source_id=source_id, url=None, created_at=None, kind="post", path="t.txt"
    )
    return Document(text=text, meta=meta)


def words(text: str) -> int:
    """A counter that is easy to reason about in exact assertions: whitespace-separated words."""
    return len(text.split())


def texts(chunks: list[Chunk]) -> list[str]:
    return [c.text for c in chunks]


# --- sentences and tokens ---------------------------------------------------------------------------


def test_split_sentences_exact() -> None:
    text = (
        "Dr. Ortiz feeds at 8 a.m. daily. Is it 75%? Yes!\n"
        "Heading line\n\n"
        '  She said "done." Then e.g. rye works. J. Smith agreed...  Last one'
    )
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "Dr. Ortiz feeds at 8 a.m. daily.",
        "Is it 75%?",
        "Yes!",
        "Heading line",
        'She said "done."',
        "Then e.g. rye works.",
        "J. Smith agreed...",
        "Last one",
    ]


def test_split_sentences_keeps_urls_and_decimals_whole() -> None:
    text = "See https://example.com/a.b/c.html today. It is 3.5 cm."
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "See https://example.com/a.b/c.html today.",
        "It is 3.5 cm.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello world", 2),
        ("Hello, world!", 4),
        ("sourdough", 2),  # 9 letters: two WordPiece-sized pieces
        ("75% hydration.", 5),
        ("https://example.com/p/1", 12),
        ("面包很好", 4),
        ("🍞 bread", 2),
    ],
)
def test_approx_token_count(text: str, expected: int) -> None:
    assert approx_token_count(text) == expected


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        ChunkingParams(max_tokens=0)
    with pytest.raises(ValueError):
        ChunkingParams(overlap_sentences=-1)


# --- chunking ---------------------------------------------------------------------------------------


def test_chunks_pack_sentences_with_one_sentence_overlap() -> None:
    doc = make_doc("One two three. Four five. Six seven eight. Nine. Ten eleven twelve thirteen.")
    chunks = chunk_document(doc, ChunkingParams(max_tokens=6, overlap_sentences=1, overlap_tokens=3), words)
    assert [(c.ordinal, c.text, c.start_char, c.end_char, c.token_count) for c in chunks] == [
        (0, "One two three. Four five.", 0, 25, 5),
        (1, "Four five. Six seven eight. Nine.", 15, 48, 6),
        (2, "Nine. Ten eleven twelve thirteen.", 43, 76, 5),
    ]
    assert all(c.meta is doc.meta for c in chunks)
    assert all(c.content_hash == content_hash(c.text) for c in chunks)


def test_overlap_skips_sentences_over_the_overlap_budget() -> None:
    doc = make_doc("a b c d. e f. g h i j.")
    chunks = chunk_document(doc, ChunkingParams(max_tokens=6, overlap_sentences=1, overlap_tokens=1), words)
    assert texts(chunks) == ["a b c d. e f.", "g h i j."]


def test_no_overlap_when_disabled() -> None:
    doc = make_doc("a b. c d. e f.")
    chunks = chunk_document(doc, ChunkingParams(max_tokens=4, overlap_sentences=0), words)
    assert texts(chunks) == ["a b. c d.", "e f."]


def test_overlong_sentence_is_split_between_words() -> None:
    doc = make_doc("Short one. a b c d e f g h i j k. Tail.")
    chunks = chunk_document(doc, ChunkingParams(max_tokens=4, overlap_sentences=1, overlap_tokens=2), words)
    assert texts(chunks) == ["Short one.", "a b c d", "e f g h", "i j k. Tail."]
    assert all(c.token_count <= 4 for c in chunks)


def test_single_overlong_word_is_its_own_chunk() -> None:
    url = "https://example.com/" + "x" * 200
    doc = make_doc(f"Look: {url} now.")
    chunks = chunk_document(doc, ChunkingParams(max_tokens=5, overlap_sentences=0))
    assert texts(chunks) == ["Look:", url, "now."]
    assert chunks[1].token_count > 5


def test_default_params_budget() -> None:
    sentence = "The starter doubled overnight in the warm kitchen."
    doc = make_doc(" ".join([sentence] * 60))
    chunks = chunk_document(doc)
    assert all(c.token_count <= 200 for c in chunks)
    assert len(chunks) > 1 and chunks[0].token_count > 150
    # one sentence of overlap between consecutive chunks
    assert all(b.start_char < a.end_char for a, b in itertools.pairwise(chunks))


def test_empty_document_has_no_chunks() -> None:
    assert chunk_document(make_doc("")) == []


def test_deduplicates_across_documents_of_one_ingest() -> None:
    docs = [make_doc("Same caption.", "a"), make_doc("Same  caption.", "b"), make_doc("Other.", "c")]
    dedupe = Deduplicator()
    chunks = list(chunk_documents(docs, dedupe=dedupe))
    assert [(c.meta.source_id, c.text) for c in chunks] == [("a", "Same caption."), ("c", "Other.")]
    assert dedupe.dropped == 1
    # shared state: a later batch of the same ingest sees the earlier hashes
    assert list(chunk_documents([make_doc("Other.", "d")], dedupe=dedupe)) == []
    assert dedupe.dropped == 2


# --- properties -------------------------------------------------------------------------------------

_sentence = st.builds(
    lambda ws, end: " ".join(ws) + end,
    st.lists(st.text(alphabet="abcxyzé0123456789-/:", min_size=1, max_size=14), min_size=1, max_size=25),
    st.sampled_from([".", "!", "?", "", "...", '."']),
)
_separator = st.sampled_from([" ", "  ", "\n", "\n\n", " \t "])
_documents = st.builds(
    lambda parts, seps: "".join(p + s for p, s in zip(parts, seps, strict=False)),
    st.lists(_sentence, min_size=0, max_size=30),
    st.lists(_separator, min_size=30, max_size=30),
)
_params = st.builds(
    ChunkingParams,
    max_tokens=st.integers(1, 60),
    overlap_sentences=st.integers(0, 3),
    overlap_tokens=st.integers(0, 40),
)
_counters = st.sampled_from(
    [
        approx_token_count,
        words,
        lambda t: len(t) // 4 + 1,  # not additive over sentences: exercises the re-count path
    ]
)


def _check_chunks(text: str, params: ChunkingParams, counter: object) -> None:
    assert callable(counter)
    doc = make_doc(text)
    chunks = chunk_document(doc, params, counter)
    covered = [False] * len(text)
    for ordinal, chunk in enumerate(chunks):
        assert chunk.ordinal == ordinal
        assert text[chunk.start_char : chunk.end_char] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.token_count == counter(chunk.text)
        assert chunk.token_count <= params.max_tokens or not re.search(r"\s", chunk.text)
        for i in range(chunk.start_char, chunk.end_char):
            covered[i] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
    starts = [c.start_char for c in chunks]
    ends = [c.end_char for c in chunks]
    assert starts == sorted(starts) and ends == sorted(ends)
    assert len(set(starts)) == len(starts)  # progress: no chunk restarts where the previous one did


@settings(max_examples=300, deadline=None)
@given(_documents, _params, _counters)
def test_chunks_reproduce_text_respect_budget_and_cover_everything(
    text: str, params: ChunkingParams, counter: object
) -> None:
    _check_chunks(normalize_text(text), params, counter)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), _params)
def test_chunker_on_arbitrary_text(text: str, params: ChunkingParams) -> None:
    _check_chunks(text, params, approx_token_count)


@settings(max_examples=100, deadline=None)
@given(_documents)
def test_sentences_cover_all_text_in_order(text: str) -> None:
    spans = split_sentences(text)
    flat = [i for s, e in spans for i in range(s, e)]
    assert flat == sorted(set(flat))
    assert {i for i, ch in enumerate(text) if not ch.isspace()} <= set(flat)
    assert all(text[s:e] == text[s:e].strip() != "" for s, e in spans)
