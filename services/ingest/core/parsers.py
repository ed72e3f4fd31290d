"""Format detection and the entry point of every parser: bytes of one file -> documents.

Every file yields documents (or, for an X archive of only retweets, nothing but an excluded count)
or raises an `IngestError` naming it; nothing is dropped silently, so the caller can report each
file it could not use. The parsers themselves live in `services.ingest.core.formats`, one module
per platform.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath, PurePosixPath

from services.ingest.core.errors import InvalidInput, TooLarge, UnsupportedFormat
from services.ingest.core.formats.common import decode_utf8, derived_source_id, load_json, parse_timestamp
from services.ingest.core.formats.markdown import (
    markdown_to_text,
    parse_markdown,
    parse_text,
    split_front_matter,
)
from services.ingest.core.formats.meta import meta_kind, parse_facebook, parse_instagram, parse_threads
from services.ingest.core.formats.records import parse_csv, parse_jsonl
from services.ingest.core.formats.tiktok import looks_like_tiktok, parse_tiktok
from services.ingest.core.formats.x import looks_like_x, parse_x
from services.ingest.core.formats.youtube import parse_captions
from services.ingest.core.types import Document, ParseOptions

__all__ = [
    "Format",
    "Parsed",
    "derived_source_id",
    "detect_format",
    "iter_files",
    "markdown_to_text",
    "parse_bytes",
    "parse_entry",
    "parse_path",
    "parse_timestamp",
    "split_front_matter",
]


class Format(StrEnum):
    """File formats the ingest core understands, as detected from name and content."""

    TEXT = "text"
    MARKDOWN = "markdown"
    JSONL = "jsonl"
    CSV = "csv"
    JSON = "json"
    """A JSON export file (Instagram, Facebook, Threads, TikTok), told apart by its shape."""
    X_ARCHIVE = "x"
    CAPTIONS = "captions"
    """WebVTT or SRT captions."""


_EXTENSIONS: dict[str, Format] = {
    ".txt": Format.TEXT,
    ".text": Format.TEXT,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
    ".jsonl": Format.JSONL,
    ".ndjson": Format.JSONL,
    ".csv": Format.CSV,
    ".json": Format.JSON,
    ".js": Format.X_ARCHIVE,
    ".vtt": Format.CAPTIONS,
    ".srt": Format.CAPTIONS,
}
_MARKDOWN_SNIFF_RE = re.compile(r"^(?:---\n|#{1,6} )")
_CAPTION_SNIFF_RE = re.compile(r"^(?:WEBVTT|\d+\n\d{2}:\d{2}:\d{2},\d{3} -->)")


@dataclass(frozen=True)
class Parsed:
    """What one file contributed.

    Attributes:
        documents: The documents, in file order.
        platform: The platform the file was recognised as (for the per-file report).
        excluded: Records deliberately left out (retweets, replies unless asked for).
    """

    documents: list[Document]
    platform: str
    excluded: int = 0


def iter_files(root: Path) -> Iterator[Path]:
    """Yield the files to ingest under `root` in a deterministic order.

    A directory is walked recursively, entries sorted by name at every level. Hidden files and
    directories (name starting with ".") are skipped, and so are symlinks: an uploaded archive
    must not be able to point the ingester at files outside it. A single file yields itself.

    Raises:
        InvalidInput: `root` does not exist.
    """
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        raise InvalidInput(root, "no such file or directory")
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir():
            yield from iter_files(entry)
        elif entry.is_file():
            yield entry


def parse_path(path: Path, root: Path, options: ParseOptions | None = None) -> list[Document]:
    """Parse one file into documents.

    Args:
        path: The file.
        root: The ingest root; `SourceMeta.path` and errors use `path` relative to it.
        options: Parse options (limits, replies, CSV column).

    Raises:
        UnsupportedFormat: Not a format the ingest core parses.
        InvalidInput: Unreadable, not UTF-8, empty or malformed.
        TooLarge: Over the per-file size limit (checked before reading).
    """
    options = options or ParseOptions()
    if path == root:
        rel = PurePosixPath(path.name)
    else:
        try:
            rel = PurePosixPath(path.relative_to(root).as_posix())
        except ValueError:
            raise InvalidInput(path, f"not inside the ingest root {root}") from None
    # Errors name the file by its path relative to the root: that is the name the creator knows (it
    # came from their export), and server-side absolute paths stay out of client-facing messages.
    if path.suffix and path.suffix.lower() not in _EXTENSIONS:
        raise UnsupportedFormat(rel)  # before reading: a large video must not be loaded for nothing
    try:
        size = path.stat().st_size
        if size > options.max_file_bytes:
            raise TooLarge(
                rel, f"file of {size} bytes exceeds the {options.max_file_bytes}-byte limit per file"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(rel, f"cannot read: {exc.strerror or exc}") from None
    return parse_bytes(data, rel, options)


def parse_bytes(data: bytes, path: PurePath | str, options: ParseOptions | None = None) -> list[Document]:
    """Parse the bytes of one file (see `parse_entry`) and return only the documents."""
    return parse_entry(data, path, options).documents


def parse_entry(data: bytes, path: PurePath | str, options: ParseOptions | None = None) -> Parsed:
    """Parse the bytes of one file.

    Args:
        data: The file's content.
        path: Its path relative to the ingest root: names the file in errors and `SourceMeta.path`;
            its extension (or, without one, its content) selects the format.
        options: Parse options.

    Returns:
        The documents and what was excluded.

    Raises:
        UnsupportedFormat: Not a format (or JSON shape) the ingest core parses.
        InvalidInput: Not UTF-8 text, empty, truncated, nested too deeply, or malformed.
        TooLarge: Over the per-file size limit.
    """
    options = options or ParseOptions()
    rel = PurePosixPath(PurePath(path).as_posix())
    if len(data) > options.max_file_bytes:
        raise TooLarge(
            rel, f"file of {len(data)} bytes exceeds the {options.max_file_bytes}-byte limit per file"
        )
    if rel.suffix and rel.suffix.lower() not in _EXTENSIONS:
        raise UnsupportedFormat(rel)
    text = decode_utf8(data, rel)
    fmt = detect_format(rel, text)
    if fmt is Format.JSONL:
        docs = parse_jsonl(text, rel, options)
        # The file's records say where they were published; that is the platform to report.
        return Parsed(docs, docs[0].meta.platform)
    if fmt is Format.CSV:
        docs = parse_csv(text, rel, options)
        return Parsed(docs, docs[0].meta.platform if docs else "csv")
    if fmt is Format.MARKDOWN:
        return Parsed([parse_markdown(text, rel)], "markdown")
    if fmt is Format.CAPTIONS:
        return Parsed(parse_captions(text, rel), "youtube")
    if fmt is Format.X_ARCHIVE:
        if not looks_like_x(text):
            raise UnsupportedFormat(rel)  # some other JavaScript file, e.g. from a saved web page
        x = parse_x(text, rel, options)
        return _nonempty(Parsed(x.documents, "x", x.excluded), rel)
    if fmt is Format.JSON:
        return _nonempty(_parse_json_export(text, rel, options), rel)
    return Parsed([parse_text(text, rel)], "text")


def _nonempty(parsed: Parsed, rel: PurePosixPath) -> Parsed:
    if not parsed.documents and not parsed.excluded:
        raise InvalidInput(rel, f"no text content in this {parsed.platform} export file")
    return parsed


def _parse_json_export(text: str, rel: PurePosixPath, options: ParseOptions) -> Parsed:
    data = load_json(text, rel, options.max_json_depth)
    kind = meta_kind(data)
    if kind == "instagram":
        return Parsed(parse_instagram(data, rel), "instagram")
    if kind == "facebook":
        return Parsed(parse_facebook(data, rel), "facebook")
    if kind == "threads":
        return Parsed(parse_threads(data, rel), "threads")
    if isinstance(data, dict) and looks_like_tiktok(data):
        return Parsed(parse_tiktok(data, rel), "tiktok")
    raise UnsupportedFormat(rel)


def detect_format(path: PurePath, text: str) -> Format:
    """Pick the format from the extension, or from the content when there is no extension.

    Raises:
        UnsupportedFormat: The file has an extension the ingest core does not parse.
    """
    if path.suffix:
        try:
            return _EXTENSIONS[path.suffix.lower()]
        except KeyError:
            raise UnsupportedFormat(path) from None
    head = text.lstrip()
    if looks_like_x(head):
        return Format.X_ARCHIVE
    if _CAPTION_SNIFF_RE.match(head):
        return Format.CAPTIONS
    if head.startswith("["):
        return Format.JSON
    if head.startswith("{"):
        # One object spanning lines is an export file; one object per line is JSON Lines.
        first_line = head.split("\n", 1)[0].rstrip()
        return Format.JSONL if first_line.endswith("}") else Format.JSON
    if _MARKDOWN_SNIFF_RE.match(head) or "\n#" in head[:2000]:
        return Format.MARKDOWN
    return Format.TEXT
