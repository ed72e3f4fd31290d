"""Every export format: exact texts and metadata from fixtures written from the platforms' docs."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.core.archive import list_entries
from services.ingest.core.errors import IngestError, InvalidInput, TooLarge, UnsupportedFormat
from services.ingest.core.formats.captions import caption_lines, transcript_text
from services.ingest.core.formats.meta import fix_mojibake
from services.ingest.core.parsers import parse_entry
from services.ingest.core.types import ParseOptions

EXPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "ingest" / "exports"
pytestmark = pytest.mark.timeout(60)


def _ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _parse(rel: str, options: ParseOptions | None = None) -> list[tuple[object, ...]]:
    path = EXPORTS / rel
    parsed = parse_entry(path.read_bytes(), PurePosixPath(rel), options)
    return [
        (d.text, d.meta.platform, d.meta.kind, d.meta.url, d.meta.created_at, d.meta.path)
        for d in parsed.documents
    ]


def test_mojibake_repair() -> None:
    assert fix_mojibake("today\u00e2\u0080\u0099s \u00f0\u009f\u008d\u009e") == "today’s 🍞"
    assert fix_mojibake("caf\u00e9") == "café"  # genuine Latin-1 stays
    assert fix_mojibake("plain") == "plain"


def test_instagram_older_layout() -> None:
    rel = "instagram-2022/content/posts_1.json"
    assert _parse(rel) == [
        (
            "Crumb shot of today’s country loaf 🍞 75% hydration, crème fraîche on the side. "
            "#sourdough #tucsonbakes",
            "instagram",
            "caption",
            None,
            _ts(2022, 3, 11, 13, 20),
            rel,
        ),
        (
            "Swipe for the bake → shaping, scoring, the ear. I never use commercial yeast.",
            "instagram",
            "caption",
            None,
            _ts(2022, 4, 9, 12),
            rel,
        ),
    ]
    rel = "instagram-2022/comments/post_comments.json"
    assert _parse(rel) == [
        ("Thank you! Feed her twice a day 😊", "instagram", "reply", None, _ts(2022, 3, 12, 13, 20), rel)
    ]


def test_instagram_newer_layout_posts_reels_stories_comments() -> None:
    base = "instagram-2024/your_instagram_activity"
    assert _parse(f"{base}/content/posts_1.json") == [
        (
            "New year, same starter. Doughlores turns 5 in March 🎉 #sourdough",
            "instagram",
            "caption",
            None,
            _ts(2024, 1, 5, 16),
            f"{base}/content/posts_1.json",
        ),
    ]
    assert _parse(f"{base}/content/reels.json") == [
        (
            "60-second shaping: tension, not force 💪",
            "instagram",
            "caption",
            None,
            _ts(2024, 2, 10),
            f"{base}/content/reels.json",
        ),
    ]
    # The second story has no caption: nothing to ingest from it.
    assert _parse(f"{base}/content/stories.json") == [
        (
            "Oven’s hot. Loaf #2 going in now",
            "instagram",
            "caption",
            None,
            _ts(2024, 2, 11),
            f"{base}/content/stories.json",
        ),
    ]
    assert _parse(f"{base}/comments/post_comments_1.json") == [
        (
            "Yes! Rye flour only for the first week 🙌",
            "instagram",
            "reply",
            None,
            _ts(2024, 2, 12),
            f"{base}/comments/post_comments_1.json",
        ),
    ]


def test_same_instagram_post_in_both_layouts_has_one_id() -> None:
    data = (EXPORTS / "instagram-2022/content/posts_1.json").read_bytes()
    old = parse_entry(data, "content/posts_1.json").documents
    new = parse_entry(data, "your_instagram_activity/media/posts_1.json").documents
    assert [d.meta.source_id for d in old] == [d.meta.source_id for d in new]


def test_facebook_posts_and_comments() -> None:
    rel = "facebook/your_facebook_activity/posts/your_posts__check_ins__photos_and_videos_1.json"
    assert _parse(rel) == [
        (
            "Next class: Saturday at 10 — bring a jar and 50 g of rye. Café seating is limited!",
            "facebook",
            "post",
            "https://example.com/maya/classes?id=7",
            _ts(2023, 11, 14, 22, 13, 20),
            rel,
        ),
        ("Bagels, boiled in honey water 🥯", "facebook", "post", None, _ts(2023, 11, 15, 22, 13, 20), rel),
    ]
    rel = "facebook/your_facebook_activity/comments_and_reactions/comments.json"
    assert _parse(rel) == [
        ("See you there, Zoë!", "facebook", "reply", None, _ts(2023, 11, 16, 22, 13, 20), rel)
    ]


def test_x_archive_expands_links_unescapes_and_excludes_retweets_and_replies() -> None:
    rel = "x/data/tweets.js"
    parsed = parse_entry((EXPORTS / rel).read_bytes(), rel)
    assert parsed.excluded == 2
    assert [
        (d.meta.source_id, d.text, d.meta.kind, d.meta.url, d.meta.created_at) for d in parsed.documents
    ] == [
        (
            "1745000000000000001",
            "Proofing times are a suggestion & your kitchen is the boss. Guide: https://example.com/proofing-guide",
            "post",
            "https://x.com/i/web/status/1745000000000000001",
            _ts(2024, 1, 10, 15),
        ),
        (
            "1745000000000000004",
            "I own one Dutch oven and I never buy bread 🍞",
            "post",
            "https://x.com/i/web/status/1745000000000000004",
            _ts(2024, 1, 12, 18, 45),
        ),
    ]
    with_replies = parse_entry((EXPORTS / rel).read_bytes(), rel, ParseOptions(include_replies=True))
    assert with_replies.excluded == 1
    assert [(d.meta.source_id, d.text, d.meta.kind) for d in with_replies.documents][1] == (
        "1745000000000000003",
        "@bakerfan 3 folds is plenty <3",
        "reply",
    )


def test_youtube_auto_captions_are_deduplicated_with_offsets() -> None:
    rel = "youtube/Shaping a boule [dQw4w9WgXcQ].en.vtt"
    [doc] = parse_entry((EXPORTS / rel).read_bytes(), rel).documents
    assert doc.text == (
        "[00:00] so today we're shaping a boule with Doughlores flour the bench lightly\n"
        "[00:25] then tuck and roll"
    )
    assert (doc.meta.platform, doc.meta.kind, doc.meta.source_id, doc.meta.url, doc.meta.title) == (
        "youtube",
        "transcript",
        "dQw4w9WgXcQ/transcript",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "Shaping a boule",
    )


def test_srt_captions() -> None:
    [doc] = parse_entry((EXPORTS / "youtube/bagels.srt").read_bytes(), "youtube/bagels.srt").documents
    assert doc.text == (
        "[00:01] Bagels start with a stiff dough.\n"
        "[00:03] Boil them in honey water & bake hot.\n"
        "[01:05] That's it."
    )
    assert (doc.meta.kind, doc.meta.url, doc.meta.title) == ("transcript", None, "bagels")


def test_google_takeout_youtube_tables() -> None:
    base = "youtube-takeout/Takeout/YouTube and YouTube Music"
    assert _parse(f"{base}/video metadata/videos.csv") == [
        (
            "Shaping a boule\n\nShaping a boule, step by step.\nStarter: Doughlores.",
            "youtube",
            "caption",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            _ts(2024, 2, 2, 16),
            f"{base}/video metadata/videos.csv",
        )
    ]
    assert _parse(f"{base}/comments/comments.csv") == [
        (
            "Use a bench scraper!",
            "youtube",
            "reply",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&lc=UgxAbc123",
            _ts(2024, 2, 3, 8),
            f"{base}/comments/comments.csv",
        )
    ]


def test_tiktok_export() -> None:
    rel = "tiktok/user_data_tiktok.json"
    parsed = parse_entry((EXPORTS / rel).read_bytes(), rel)
    assert [
        (d.meta.source_id, d.text, d.meta.kind, d.meta.url, d.meta.created_at) for d in parsed.documents
    ] == [
        (
            "7341234567890123456",
            "Scoring 101: one confident slash ✂️ #breadtok",
            "caption",
            "https://www.tiktokv.com/share/video/7341234567890123456/",
            _ts(2024, 3, 1, 17, 5, 9),
        ),
        (
            parsed.documents[1].meta.source_id,
            "The oven was at 250°C 🔥",
            "reply",
            None,
            _ts(2024, 3, 2, 8, 15),
        ),
    ]


def test_csv_with_a_chosen_column_skips_empty_cells() -> None:
    rel = "csv/newsletter.csv"
    parsed = parse_entry((EXPORTS / rel).read_bytes(), rel, ParseOptions(csv_column="message"))
    assert [(d.meta.source_id, d.text, d.meta.platform, d.meta.kind) for d in parsed.documents] == [
        ("n-1", "Spring means rye. I teach a rye class every April.", "csv", "post"),
        ("n-3", "Summer: bake early, before 7am.", "csv", "post"),
    ]
    with pytest.raises(InvalidInput, match=r"^csv/newsletter\.csv: no text column"):
        parse_entry((EXPORTS / rel).read_bytes(), rel)


def test_jsonl_unknown_platform_names_file_and_line() -> None:
    data = b'{"text": "a", "platform": "twitter"}\n{"text": "b", "platform": "myspace"}\n'
    with pytest.raises(InvalidInput, match=r"^p\.jsonl: line 2: unknown platform 'myspace'"):
        parse_entry(data, "p.jsonl")
    [doc] = parse_entry(data.split(b"\n")[0], "p.jsonl").documents
    assert doc.meta.platform == "x"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_of_exports_lists_members_and_reports_unknown_files(tmp_path: Path) -> None:
    tweets = (EXPORTS / "x/data/tweets.js").read_bytes()
    (tmp_path / "archive.zip").write_bytes(
        _zip({"data/tweets.js": tweets, "data/video.mp4": b"\x00", "__MACOSX/x": b""})
    )
    entries = list_entries(tmp_path, ParseOptions())
    assert [str(e.rel) for e in entries] == ["archive.zip/data/tweets.js", "archive.zip/data/video.mp4"]
    assert len(parse_entry(entries[0].read(), entries[0].rel).documents) == 2
    with pytest.raises(UnsupportedFormat, match=r"^archive\.zip/data/video\.mp4: unsupported format$"):
        parse_entry(entries[1].read(), entries[1].rel)


@pytest.mark.parametrize(
    ("members", "error", "match"),
    [
        (
            {"../evil.txt": b"x"},
            InvalidInput,
            r"^bad\.zip: unsafe archive: member path '\.\./evil\.txt' escapes",
        ),
        ({"/etc/passwd": b"x"}, InvalidInput, r"^bad\.zip: unsafe archive: absolute member path"),
        ({"bomb.txt": b"0" * 5_000_000}, TooLarge, r"^bad\.zip: member 'bomb\.txt' expands \d+x"),
    ],
)
def test_hostile_archives_are_rejected_whole(
    tmp_path: Path, members: dict[str, bytes], error: type[IngestError], match: str
) -> None:
    (tmp_path / "bad.zip").write_bytes(_zip(members))
    [entry] = list_entries(tmp_path, ParseOptions())
    assert isinstance(entry.error, error)
    assert str(entry.rel) == "bad.zip"
    with pytest.raises(error, match=match):
        raise entry.error


def test_a_2gb_file_is_rejected_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "huge.jsonl"
    with big.open("wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse: no 2 GB written
    [entry] = list_entries(big, ParseOptions())
    assert isinstance(entry.error, TooLarge)
    assert (
        str(entry.error) == "huge.jsonl: file of 2147483648 bytes exceeds the 268435456-byte limit per file"
    )


@pytest.mark.parametrize(
    ("name", "data", "match"),
    [
        ("posts_1.json", b'[{"media": [{"title": "x"', r"^posts_1\.json: truncated JSON at line 1"),
        ("posts_1.json", b"[" * 200 + b"]" * 200, r"^posts_1\.json: JSON nested too deeply \(limit 64\)"),
        ("tweets.js", b'window.YTD.tweets.part0 = [{"tweet": ', r"^tweets\.js: truncated JSON"),
        ("caps.vtt", b"WEBVTT\n\nno cues here", r"^caps\.vtt: no caption cues"),
        ("p.jsonl", b'{"text": "caf\xe9"}', r"^p\.jsonl: invalid UTF-8 at byte 13"),
    ],
)
def test_malformed_exports_name_the_file(name: str, data: bytes, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_entry(data, name)


def test_unknown_json_shape_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormat, match=r"^data\.json: unsupported format$"):
        parse_entry(b'{"something": "else"}', "data.json")


# --- property-based: every parser only ever raises IngestError ------------------------------------------

_NAMES = st.sampled_from(
    [
        "a.txt",
        "a.md",
        "a.jsonl",
        "a.csv",
        "posts_1.json",
        "tweets.js",
        "c.vtt",
        "c.srt",
        "noext",
        "user_data.json",
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), name=_NAMES)
def test_any_bytes_only_raise_ingest_errors(data: bytes, name: str) -> None:
    try:
        parsed = parse_entry(data, name)
    except IngestError as exc:
        assert exc.path == name
        return
    assert all(doc.text and doc.text == doc.text.strip() for doc in parsed.documents)


@settings(max_examples=200, deadline=None)
@given(value=_JSON, shape=st.sampled_from(["ig", "fb", "tiktok", "x", "raw"]))
def test_any_json_in_export_shapes_only_raises_ingest_errors(value: object, shape: str) -> None:
    wrapped: object = {
        "ig": [{"media": [{"title": value, "creation_timestamp": value, "uri": value}], "title": value}],
        "fb": [{"timestamp": value, "data": [{"post": value}], "attachments": value}],
        "tiktok": {"Post": {"Posts": {"VideoList": [{"Title": value, "Date": value, "Link": value}]}}},
        "x": [{"tweet": {"id_str": value, "full_text": value, "entities": value, "created_at": value}}],
        "raw": value,
    }[shape]
    name, prefix = ("tweets.js", "window.YTD.tweets.part0 = ") if shape == "x" else ("export.json", "")
    with contextlib.suppress(IngestError):
        parse_entry((prefix + json.dumps(wrapped)).encode(), name)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(alphabet="ab <>.:0123456789-\n", max_size=30), min_size=1, max_size=12))
def test_caption_rebuild_never_repeats_a_line_consecutively(lines: list[str]) -> None:
    text = "WEBVTT\n\n" + "\n\n".join(
        f"00:00:{i:02d}.000 --> 00:00:{i + 1:02d}.000\n{line}" for i, line in enumerate(lines)
    )
    kept = caption_lines(text, PurePosixPath("c.vtt"))
    assert all(a.text != b.text for a, b in itertools.pairwise(kept))
    assert transcript_text(kept).count("\n") < max(len(kept), 1)
