"""Parsers, normalisation and the bundled sample corpora: exact texts, metadata and errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.core import (
    Document,
    Format,
    IngestError,
    InvalidInput,
    SourceMeta,
    UnsupportedFormat,
    chunk_documents,
    content_hash,
    detect_format,
    iter_files,
    normalize_text,
    parse_bytes,
    parse_path,
)
from services.ingest.core.chunker import Deduplicator
from services.ingest.core.parsers import derived_source_id, parse_timestamp

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "ingest"
SAMPLES = REPO / "samples" / "creators"

pytestmark = pytest.mark.timeout(60)


def _parse_tree(root: Path) -> list[Document]:
    return [doc for path in iter_files(root) for doc in parse_path(path, root)]


# --- normalisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  a  b\t\tc  ", "a b c"),
        ("line\r\nnext\rlast", "line\nnext\nlast"),
        ("p1\n\n\n\n\np2", "p1\n\np2"),
        ("trailing   \nspace", "trailing\nspace"),
        ("bell\x07 and\x00nul", "bell andnul"),
        ("\ufeffbom and zero\u200bwidth", "bom and zerowidth"),
        ("Cafe\u0301", "Café"),
        ("nbsp\u00a0here\u2028sep", "nbsp here\nsep"),
        ("see https://example.com/a__b_c?x=1&y=%20  now", "see https://example.com/a__b_c?x=1&y=%20 now"),
        ("family 👨\u200d👩\u200d👧", "family 👨\u200d👩\u200d👧"),
        (" \n\t ", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@given(st.text())
def test_normalize_text_is_idempotent(raw: str) -> None:
    once = normalize_text(raw)
    assert normalize_text(once) == once


def test_content_hash_ignores_spacing_only() -> None:
    assert content_hash("a b\nc") == content_hash("  a  b c ")
    assert content_hash("a b c") != content_hash("a b d")
    assert len(content_hash("x")) == 64


# --- plain text -------------------------------------------------------------------------------------


def test_text_file_is_one_normalised_article() -> None:
    [doc] = parse_path(FIXTURES / "plain.txt", FIXTURES)
    assert doc.text == (
        "Hello world.\nThis line has tabs and a NUL-free control char.\n\n"
        "Café au lait, see https://example.com/a_b?c=1&d=2."
    )
    assert doc.meta == SourceMeta(
        platform="text",
        source_id=derived_source_id("plain.txt", 0),
        url=None,
        created_at=None,
        kind="article",
        path="plain.txt",
    )


def test_text_with_timestamped_lines_is_a_transcript() -> None:
    [doc] = parse_path(FIXTURES / "nested" / "episode-12.txt", FIXTURES)
    assert doc.meta.kind == "transcript"
    assert doc.meta.path == "nested/episode-12.txt"
    assert doc.text.split("\n")[2] == "(01:10) Any questions, leave them below."


def test_text_named_transcript_is_a_transcript() -> None:
    [doc] = parse_bytes(b"Just words, no stamps.", "video-transcript.txt")
    assert doc.meta.kind == "transcript"


# --- Markdown ---------------------------------------------------------------------------------------


def test_markdown_front_matter_and_markup() -> None:
    [doc] = parse_path(FIXTURES / "post.md", FIXTURES)
    assert doc.text == (
        "Why I Bake\n\n"
        "I started in 2018, after a long shift at the lab. Read my story (https://example.com/story) "
        "or https://example.com/raw_link_here.\n\n"
        "Bread is patience.\n\n"
        "- flour\n- water\n1. salt\n\n"
        "keep **this** as is\n\n"
        "a round loaf with code_span and snake_case_word.\n\n"
        "Last line with *literal stars*."
    )
    assert doc.meta == SourceMeta(
        platform="markdown",
        source_id=derived_source_id("post.md", 0),
        url="https://example.com/maya/why",
        created_at=datetime(2024, 3, 8, 17, 15, tzinfo=UTC),
        kind="article",
        path="post.md",
        title="Why I Bake",
    )


def test_markdown_without_front_matter_takes_title_from_heading() -> None:
    [doc] = parse_path(FIXTURES / "nested" / "deeper" / "note.md", FIXTURES)
    assert doc.text == "Quick note\nPlain note without front matter."
    assert (doc.meta.title, doc.meta.kind, doc.meta.platform) == ("Quick note", "article", "markdown")


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**see [the *docs*](https://d.io/x_y)**", "see the docs (https://d.io/x_y)"),
        ("[https://a.io](https://a.io)", "https://a.io"),
        ("__strong__ and ~~old~~ and ***both***", "strong and old and both"),
        ("2 * 3 * 4 and a_b_c", "2 * 3 * 4 and a_b_c"),
        ("`a  *b*`", "a *b*"),
        ("Title\n=====\nbody", "Title\n\nbody"),
        ("<!-- hidden --><em>shown</em> 3 < 4", "shown 3 < 4"),
        ("---\nnot closed", "not closed"),
    ],
)
def test_markdown_inline_rules(markdown: str, expected: str) -> None:
    [doc] = parse_bytes(markdown.encode(), "x.md")
    assert doc.text == expected


def test_markdown_front_matter_id_platform_and_bad_kind() -> None:
    text = "---\nid: faq-1\nplatform: Twitter\nkind: qa\n---\nQ and A."
    [doc] = parse_bytes(text.encode(), "faq.md")
    assert (doc.meta.source_id, doc.meta.platform, doc.meta.kind) == ("faq-1", "x", "qa")
    with pytest.raises(InvalidInput, match=r"faq\.md: front matter: unknown platform 'Patreon'"):
        parse_bytes(b"---\nplatform: Patreon\n---\nx", "faq.md")
    with pytest.raises(InvalidInput, match=r"faq\.md: front matter: 'kind' must be one of"):
        parse_bytes(b"---\nkind: tweet\n---\nx", "faq.md")
    with pytest.raises(InvalidInput, match=r"faq\.md: front matter: 'date'"):
        parse_bytes(b"---\ndate: yesterday\n---\nx", "faq.md")


# --- JSONL ------------------------------------------------------------------------------------------


def test_jsonl_records() -> None:
    docs = parse_path(FIXTURES / "posts.jsonl", FIXTURES)
    t = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert docs == [
        Document(
            "First post.", SourceMeta("instagram", "a1", "https://example.com/p/1", t, "post", "posts.jsonl")
        ),
        Document("A caption\nwith a break.", SourceMeta("jsonl", "42", None, t, "caption", "posts.jsonl")),
        Document(
            "No id here.",
            SourceMeta(
                "jsonl",
                derived_source_id("posts.jsonl", 2),
                None,
                datetime(2024, 1, 2, tzinfo=UTC),
                "reply",
                "posts.jsonl",
            ),
        ),
        Document(
            "Body field, naive time.",
            SourceMeta("jsonl", derived_source_id("posts.jsonl", 3), None, t, "post", "posts.jsonl"),
        ),
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"text": "ok"}\n{"text": "ok"\n', r"line 2: truncated JSON at line 1 column 14"),
        (b'{"text": "ok"}\n\n[1, 2]\n', r"line 3: expected a JSON object, got list"),
        (b'{"title": "no text"}\n', r"line 1: no text field"),
        (b'{"text": 5}\n', r"line 1: 'text' must be a string"),
        (b'{"text": " \\n "}\n', r"line 1: 'text' is empty"),
        (b'{"text": "a", "kind": "story"}\n', r"line 1: 'kind' must be one of"),
        (b'{"text": "a", "created_at": "soon"}\n', r"line 1: 'created_at': not a valid ISO 8601"),
        (b'{"text": "a", "date": true}\n', r"line 1: 'date': expected an ISO 8601 string"),
        (b'{"text": "a", "id": 1.5}\n', r"line 1: 'id' must be a string or an integer"),
        (b'{"text": "a", "url": 3}\n', r"line 1: 'url' must be a string"),
        (
            b'{"text": "a", "id": "x"}\n{"text": "b", "id": "x"}\n',
            r"line 2: duplicate id 'x' \(first on line 1\)",
        ),
        (b"[" * 100_000, r"line 1: "),
        (b"\n\n", r"no records"),
    ],
)
def test_jsonl_bad_input_names_file_and_line(content: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput, match=r"^exports/posts\.jsonl: " + reason) as info:
        parse_bytes(content, "exports/posts.jsonl")
    assert info.value.path == "exports/posts.jsonl"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        (1704164645, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1704164645.5, datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("1704164645", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(value: object, expected: datetime) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("value", ["", "2024-13-01", "tomorrow", 1e300, float("nan"), True, None, [1]])
def test_parse_timestamp_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


# --- detection, files and errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.TXT", "{}", Format.TEXT),
        ("a.markdown", "x", Format.MARKDOWN),
        ("a.ndjson", "x", Format.JSONL),
        ("export", '  {"text": "x"}', Format.JSONL),
        ("notes", "---\ntitle: t\n---\nbody", Format.MARKDOWN),
        ("notes", "intro\n# Heading", Format.MARKDOWN),
        ("notes", "just words", Format.TEXT),
    ],
)
def test_detect_format(name: str, text: str, expected: Format) -> None:
    assert detect_format(PurePosixPath(name), text) is expected


def test_unsupported_extension_names_the_file(tmp_path: Path) -> None:
    video = tmp_path / "clips" / "reel.mp4"
    video.parent.mkdir()
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(UnsupportedFormat, match=r"^clips/reel\.mp4: unsupported format$") as info:
        parse_path(video, tmp_path)
    assert info.value.path == "clips/reel.mp4"
    with pytest.raises(UnsupportedFormat, match=r"^data\.json: unsupported format$"):
        parse_bytes(b"{}", "data.json")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("a.txt", b"caf\xe9", r"a\.txt: invalid UTF-8 at byte 3"),
        ("a.md", b"ok\x00binary", r"a\.md: binary content"),
        ("a.txt", b" \n\t\n", r"a\.txt: no text content"),
        ("a.md", b"---\ntitle: x\n---\n", r"a\.md: no text content"),
    ],
)
def test_invalid_files_name_the_file(name: str, content: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput, match="^" + reason):
        parse_bytes(content, name)


def test_utf8_bom_and_crlf_are_accepted() -> None:
    [doc] = parse_bytes(b'\xef\xbb\xbf{"text": "hi", "id": "1"}\r\n', "p.jsonl")
    assert (doc.text, doc.meta.source_id) == ("hi", "1")


def test_iter_files_sorted_skips_hidden_and_symlinks(tmp_path: Path) -> None:
    rels = [p.relative_to(FIXTURES).as_posix() for p in iter_files(FIXTURES)]
    # exports/ holds the platform fixtures (tests/unit/test_ingest_formats.py); sorted first.
    assert all(r.startswith("exports/") for r in rels[:-5])
    assert rels[-5:] == [
        "nested/deeper/note.md",
        "nested/episode-12.txt",
        "plain.txt",
        "post.md",
        "posts.jsonl",
    ]
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "a.txt").symlink_to("/etc/hostname")
    (tmp_path / "loop").symlink_to(tmp_path)
    assert [p.name for p in iter_files(tmp_path)] == ["b.txt"]


def test_iter_files_single_file_and_missing_root(tmp_path: Path) -> None:
    single = FIXTURES / "plain.txt"
    assert list(iter_files(single)) == [single]
    [doc] = parse_path(single, single)
    assert doc.meta.path == "plain.txt"
    with pytest.raises(InvalidInput, match="no such file or directory"):
        list(iter_files(tmp_path / "missing"))


def test_parse_path_outside_root_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not inside the ingest root"):
        parse_path(FIXTURES / "plain.txt", tmp_path)
    with pytest.raises(InvalidInput, match=r"^gone\.txt: cannot read"):
        parse_path(tmp_path / "gone.txt", tmp_path)


def test_source_ids_are_stable() -> None:
    first = parse_path(FIXTURES / "plain.txt", FIXTURES)[0].meta.source_id
    again = parse_path(FIXTURES / "plain.txt", FIXTURES)[0].meta.source_id
    assert first == again == derived_source_id(PurePosixPath("plain.txt"), 0)
    assert derived_source_id("a.txt", 0) != derived_source_id("a.txt", 1) != derived_source_id("b.txt", 1)


# --- properties: only IngestError escapes -----------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=400), name=st.sampled_from(["f.txt", "f.md", "f.jsonl", "f", "f.bin"]))
def test_arbitrary_bytes_only_raise_ingest_errors(data: bytes, name: str) -> None:
    try:
        docs = parse_bytes(data, name)
    except IngestError as exc:
        assert name in str(exc)
    else:
        assert docs and all(doc.text and doc.text == normalize_text(doc.text) for doc in docs)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_records = st.fixed_dictionaries(
    {},
    optional={
        key: _json_values | st.text(max_size=30)
        for key in ("text", "caption", "id", "url", "created_at", "timestamp", "platform", "kind")
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_records | _json_values, min_size=1, max_size=5))
def test_arbitrary_json_lines_only_raise_ingest_errors(records: list[object]) -> None:
    data = "\n".join(json.dumps(r) for r in records).encode()
    try:
        docs = parse_bytes(data, "x.jsonl")
    except InvalidInput as exc:
        assert str(exc).startswith("x.jsonl: ")
    else:
        assert len(docs) == len(records)
        assert all(doc.meta.created_at is None or doc.meta.created_at.tzinfo is UTC for doc in docs)


# --- bundled sample corpora -------------------------------------------------------------------------


def test_maya_sample_corpus() -> None:
    docs = _parse_tree(SAMPLES / "maya-bakes")
    assert len(docs) == 42
    kinds = [doc.meta.kind for doc in docs]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "caption": 12,
        "post": 17,
        "reply": 11,
        "qa": 1,
        "transcript": 1,
    }
    by_id = {doc.meta.source_id: doc for doc in docs}
    assert len(by_id) == 42
    p102 = by_id["maya-p102"]
    assert p102.meta.url == "https://example.com/maya/p/102"
    assert p102.meta.created_at == datetime(2024, 1, 9, 16, 12, tzinfo=UTC)
    assert "March 2019" in p102.text
    faq = by_id["maya-faq"]
    assert (faq.meta.kind, faq.meta.path, faq.meta.url) == ("qa", "faq.md", "https://example.com/maya/faq")
    for fact in ("Doughlores", "75% hydration", "Brightwell Hearth 30", "Tucson", "I don't have kids"):
        assert fact in faq.text
    assert "never run a giveaway" in faq.text
    [transcript] = [d for d in docs if d.meta.kind == "transcript"]
    assert transcript.meta.path == "video-transcript-weeknight-country-loaf.txt"
    dedupe = Deduplicator()
    chunks = list(chunk_documents(docs, dedupe=dedupe))
    assert dedupe.dropped == 1  # maya-p116 and maya-p117 are the same caption on two platforms
    assert len({c.content_hash for c in chunks}) == len(chunks)
    assert all(c.token_count <= 200 for c in chunks)


def test_rio_sample_corpus_is_disjoint_from_maya() -> None:
    docs = _parse_tree(SAMPLES / "coach-rio")
    assert len(docs) == 16
    assert sum(doc.meta.kind == "qa" for doc in docs) == 1
    rio_text = " ".join(doc.text for doc in docs).lower()
    maya_text = " ".join(doc.text for doc in _parse_tree(SAMPLES / "maya-bakes")).lower()
    assert "kettlebell" in rio_text and "kettlebell" not in maya_text
    assert "doughlores" in maya_text and "doughlores" not in rio_text and "sourdough" not in rio_text
