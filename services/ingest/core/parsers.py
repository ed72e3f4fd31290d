"""Format detection and parsers: plain text, Markdown and JSONL files become `Document`s.

Every file yields at least one document or raises an `IngestError` naming it; nothing is dropped
silently, so the caller can report each file it could not use.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from services.ingest.core.errors import InvalidInput, UnsupportedFormat
from services.ingest.core.normalize import normalize_text
from services.ingest.core.types import KINDS, Document, SourceMeta


class Format(StrEnum):
    """File formats the ingest core understands; the value is the default `SourceMeta.platform`."""

    TEXT = "text"
    MARKDOWN = "markdown"
    JSONL = "jsonl"


_EXTENSIONS: dict[str, Format] = {
    ".txt": Format.TEXT,
    ".text": Format.TEXT,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
    ".jsonl": Format.JSONL,
    ".ndjson": Format.JSONL,
}
_TEXT_FIELDS = ("text", "content", "body", "caption")
_DATE_FIELDS = ("created_at", "date", "timestamp")
_TIMESTAMP_LINE_RE = re.compile(r"^\[?\(?\d{1,2}:\d{2}(?::\d{2})?\b")
_MARKDOWN_SNIFF_RE = re.compile(r"^(?:---\n|#{1,6} )")
_EPOCH_STRING_RE = re.compile(r"-?\d+(?:\.\d+)?")


def iter_files(root: Path) -> Iterator[Path]:
    """Yield the files to ingest under `root` in a deterministic order.

    A directory is walked recursively, entries sorted by name at every level. Hidden files and
    directories (name starting with ".") are skipped, and so are symlinks: an uploaded archive
    must not be able to point the ingester at files outside it. A single file yields itself.

    Args:
        root: A file or a directory.

    Yields:
        Paths of regular files, unfiltered by extension (`parse_path` reports unsupported ones).

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


def parse_path(path: Path, root: Path) -> list[Document]:
    """Parse one file into documents.

    Args:
        path: The file.
        root: The ingest root: the directory being ingested, or the file itself. `SourceMeta.path`
            is `path` relative to it (the file name when `root` is the file).

    Returns:
        At least one document.

    Raises:
        UnsupportedFormat: The extension is not one the ingest core parses.
        InvalidInput: The file cannot be read, is not UTF-8 text, is empty or is malformed. Errors
            name the file by its path relative to `root`.
    """
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
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(rel, f"cannot read: {exc.strerror or exc}") from None
    return parse_bytes(data, rel)


def parse_bytes(data: bytes, path: PurePath | str) -> list[Document]:
    """Parse the bytes of one file, e.g. an upload that never touched the disk.

    Args:
        data: The file's content.
        path: Its path relative to the ingest root; names the file in errors and `SourceMeta.path`,
            and its extension selects the format.

    Returns:
        At least one document.

    Raises:
        UnsupportedFormat: The extension is not one the ingest core parses.
        InvalidInput: Not UTF-8 text, empty, or malformed.
    """
    rel = PurePosixPath(PurePath(path).as_posix())
    text = _decode(data, rel)
    fmt = detect_format(rel, text)
    if fmt is Format.JSONL:
        return _parse_jsonl(text, rel)
    if fmt is Format.MARKDOWN:
        return [_parse_markdown(text, rel)]
    return [_parse_text(text, rel)]


def detect_format(path: PurePath, text: str) -> Format:
    """Pick the format from the extension, or from the content when there is no extension.

    Args:
        path: The file's path (only its suffix matters).
        text: The decoded content, consulted for extension-less files.

    Returns:
        The format.

    Raises:
        UnsupportedFormat: The file has an extension the ingest core does not parse.
    """
    if path.suffix:
        try:
            return _EXTENSIONS[path.suffix.lower()]
        except KeyError:
            raise UnsupportedFormat(path) from None
    head = text.lstrip()
    if head.startswith("{"):
        return Format.JSONL
    if _MARKDOWN_SNIFF_RE.match(head) or "\n#" in head[:2000]:
        return Format.MARKDOWN
    return Format.TEXT


def _decode(data: bytes, path: PurePath) -> str:
    # NUL never occurs in text files; it is the cheapest reliable sign of a binary file under a text name.
    if b"\x00" in data:
        raise InvalidInput(path, "binary content (NUL bytes), expected UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(path, f"invalid UTF-8 at byte {exc.start}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def derived_source_id(path: PurePath | str, ordinal: int) -> str:
    """Stable id for a record that has none: a digest of its relative path and position.

    Args:
        path: The file's path relative to the ingest root.
        ordinal: The record's position within the file, from 0.

    Returns:
        32 hex characters.
    """
    key = f"{PurePath(path).as_posix()}#{ordinal}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _parse_text(text: str, rel: PurePosixPath) -> Document:
    body = normalize_text(text)
    if not body:
        raise InvalidInput(rel, "no text content")
    meta = SourceMeta(
        platform=Format.TEXT.value,
        source_id=derived_source_id(rel, 0),
        url=None,
        created_at=None,
        kind=_guess_text_kind(rel, body),
        path=str(rel),
    )
    return Document(text=body, meta=meta)


def _guess_text_kind(rel: PurePosixPath, body: str) -> str:
    # Plain text carries no metadata; a transcript betrays itself by its name or its timestamps.
    if "transcript" in rel.stem.lower():
        return "transcript"
    lines = [line for line in body.split("\n") if line]
    stamped = sum(1 for line in lines if _TIMESTAMP_LINE_RE.match(line))
    return "transcript" if stamped * 2 >= len(lines) else "article"


def _parse_markdown(text: str, rel: PurePosixPath) -> Document:
    fields, content = split_front_matter(text)
    rendered, first_heading = markdown_to_text(content)
    body = normalize_text(rendered)
    if not body:
        raise InvalidInput(rel, "no text content")
    try:
        meta = SourceMeta(
            platform=_platform(fields.get("platform"), Format.MARKDOWN),
            source_id=_source_id(fields.get("id"), rel, 0),
            url=_url(fields.get("url")),
            created_at=_first_date(fields),
            kind=_kind(fields.get("kind"), "article"),
            path=str(rel),
            title=fields.get("title") or first_heading,
        )
    except ValueError as exc:
        raise InvalidInput(rel, f"front matter: {exc}") from None
    return Document(text=body, meta=meta)


def _parse_jsonl(text: str, rel: PurePosixPath) -> list[Document]:
    docs: list[Document] = []
    ids: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            raise InvalidInput(rel, f"line {lineno}: JSON nested too deeply") from None
        except ValueError as exc:
            raise InvalidInput(rel, f"line {lineno}: invalid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise InvalidInput(rel, f"line {lineno}: expected a JSON object, got {type(record).__name__}")
        try:
            doc = _record_document(record, rel, len(docs))
        except ValueError as exc:
            raise InvalidInput(rel, f"line {lineno}: {exc}") from None
        first = ids.setdefault(doc.meta.source_id, lineno)
        if first != lineno:
            reason = f"line {lineno}: duplicate id {doc.meta.source_id!r} (first on line {first})"
            raise InvalidInput(rel, reason)
        docs.append(doc)
    if not docs:
        raise InvalidInput(rel, "no records")
    return docs


def _record_document(record: dict[str, Any], rel: PurePosixPath, ordinal: int) -> Document:
    field = next((f for f in _TEXT_FIELDS if record.get(f) is not None), None)
    if field is None:
        raise ValueError(f"no text field (one of {', '.join(_TEXT_FIELDS)})")
    raw = record[field]
    if not isinstance(raw, str):
        raise ValueError(f"{field!r} must be a string")
    body = normalize_text(raw)
    if not body:
        raise ValueError(f"{field!r} is empty")
    meta = SourceMeta(
        platform=_platform(record.get("platform"), Format.JSONL),
        source_id=_source_id(record.get("id"), rel, ordinal),
        url=_url(record.get("url")),
        created_at=_first_date(record),
        kind=_kind(record.get("kind"), "caption" if field == "caption" else "post"),
        path=str(rel),
    )
    return Document(text=body, meta=meta)


def _platform(value: object, default: Format) -> str:
    if value is None or value == "":
        return default.value
    if not isinstance(value, str):
        raise ValueError("'platform' must be a string")
    return value.strip().lower()


def _source_id(value: object, rel: PurePosixPath, ordinal: int) -> str:
    if value is None or value == "":
        return derived_source_id(rel, ordinal)
    # bool is an int subclass, and True as an id is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("'id' must be a string or an integer")
    return str(value).strip()


def _url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("'url' must be a string")
    return value.strip() or None


def _kind(value: object, default: str) -> str:
    if value is None or value == "":
        return default
    kind = value.strip().lower() if isinstance(value, str) else None
    if kind not in KINDS:
        raise ValueError(f"'kind' must be one of {', '.join(sorted(KINDS))}, got {value!r}")
    return kind


def _first_date(fields: dict[str, Any]) -> datetime | None:
    for name in _DATE_FIELDS:
        value = fields.get(name)
        if value is not None and value != "":
            try:
                return parse_timestamp(value)
            except ValueError as exc:
                raise ValueError(f"{name!r}: {exc}") from None
    return None


def parse_timestamp(value: object) -> datetime:
    """Parse an ISO 8601 string or epoch seconds (number or digit string) into an aware UTC datetime.

    A time without an offset is taken to be UTC; a date alone means midnight UTC.

    Args:
        value: The raw field value.

    Returns:
        The instant in UTC.

    Raises:
        ValueError: Not a recognisable timestamp, or out of range.
    """
    if isinstance(value, str) and _EPOCH_STRING_RE.fullmatch(value.strip()):
        value = float(value)
    try:
        # bool is an int subclass; a boolean date is a mistake, not 1970-01-01T00:00:01.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"not a valid ISO 8601 timestamp or epoch seconds: {value!r}") from None
    raise ValueError(f"expected an ISO 8601 string or epoch seconds, got {type(value).__name__}")


# --- Markdown -------------------------------------------------------------------------------------
# A deliberately small converter: it turns the Markdown creators actually write (headings, emphasis,
# links, lists, quotes, code) into the text a reader sees. Not a CommonMark implementation.

_FRONT_MATTER_KEYS = frozenset({"title", "date", "created_at", "timestamp", "url", "kind", "id", "platform"})
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_RULE_RE = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,}|=+)$")
_QUOTE_RE = re.compile(r"^ {0,3}(?:>[ \t]?)+")
_BULLET_RE = re.compile(r"^([ \t]*)[*+][ \t]+")
_ITEM_RE = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+")
_HTML_RE = re.compile(r"<!--.*?-->|</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
# Order matters: escapes and code spans first so their content is never read as markup; bare URLs
# are tokens so emphasis rules cannot eat underscores inside them.
_INLINE_RE = re.compile(
    r"\\(?P<esc>[\\`*_{}\[\]()#+\-.!~>|])"
    r"|(?P<ticks>`+)(?P<code>.+?)(?P=ticks)"
    r"|!\[(?P<alt>[^\]]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)"
    r"|\[(?P<label>[^\]]+)\]\((?P<href>[^)\s]+)(?:\s+\"[^\"]*\")?\)"
    r"|<(?P<auto>(?:https?|mailto):[^>\s]+)>"
    r"|(?P<url>https?://[^\s<>]+)"
)
_EMPHASIS_RES = (
    re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"),
    re.compile(r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)"),
    re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"),
    re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"),
    re.compile(r"(?<!\w)_(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)"),
)
_PLACEHOLDER_RE = re.compile("\x00(\\d+)\x00")


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split a leading ``---`` block of ``key: value`` lines from a Markdown text.

    Only the keys the ingest core uses are kept (title, date/created_at/timestamp, url, kind, id,
    platform); other keys and YAML structure are ignored rather than half-understood. A ``---`` that
    is never closed is not front matter (it is a thematic break).

    Args:
        text: The whole file, line breaks already ``\\n``.

    Returns:
        The recognised fields (values unquoted) and the remaining Markdown.
    """
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        return {}, text
    fields: dict[str, str] = {}
    for line in lines[1:end]:
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in _FRONT_MATTER_KEYS and not line.startswith((" ", "\t")):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            fields[key] = value
    return fields, "\n".join(lines[end + 1 :])


def markdown_to_text(markdown: str) -> tuple[str, str | None]:
    """Render Markdown (without front matter) as the readable text.

    Headings lose their ``#``; emphasis, inline code and quote markers are removed; ``[t](u)`` becomes
    ``t (u)``; images keep their alt text; code fences are dropped but the code is kept verbatim;
    ``*``/``+`` bullets become ``-``; simple HTML tags and comments are removed.

    Args:
        markdown: The Markdown body.

    Returns:
        The text (not yet normalised) and the first heading, usable as a title.
    """
    out: list[str] = []
    fence: str | None = None
    first_heading: str | None = None
    joinable = False  # whether the last output line is paragraph text a soft-wrapped line continues
    for line in markdown.replace("\x00", "").split("\n"):
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            else:
                out.append(line)
            continue
        if match := _FENCE_RE.match(line):
            fence, joinable = match.group(1), False
            continue
        if _RULE_RE.match(line):
            out.append("")
            joinable = False
            continue
        if match := _HEADING_RE.match(line):
            line = _render_inline(match.group(2) or "")
            if first_heading is None and line.strip():
                first_heading = line.strip()
            out.append(line)
            joinable = False
            continue
        line = _QUOTE_RE.sub("", line)
        is_item = bool(_ITEM_RE.match(line))
        line = _render_inline(_BULLET_RE.sub(r"\1- ", line))
        if not line.strip():
            out.append("")
            joinable = False
        elif joinable and not is_item:
            # A soft line break inside a paragraph is a space when rendered; keeping it would make
            # the chunker see a sentence boundary in the middle of a hard-wrapped sentence.
            out[-1] = f"{out[-1].rstrip()} {line.strip()}"
        else:
            out.append(line)
            joinable = True
    return "\n".join(out), first_heading


def _render_inline(line: str) -> str:
    tokens: list[str] = []

    def stash(match: re.Match[str]) -> str:
        if match["esc"] is not None:
            rendered = match["esc"]
        elif match["code"] is not None:
            rendered = match["code"].strip()
        elif match["alt"] is not None:
            rendered = _render_inline(match["alt"])
        elif match["label"] is not None:
            label, href = _render_inline(match["label"]), match["href"]
            rendered = href if label == href else f"{label} ({href})"
        else:
            rendered = match["auto"] or match["url"]
        tokens.append(rendered)
        return f"\x00{len(tokens) - 1}\x00"

    # Placeholders keep rendered spans (code, URLs) out of reach of the emphasis and HTML rules while
    # still letting emphasis span across them, as in "**see [here](u)**".
    text = _INLINE_RE.sub(stash, line)
    text = _HTML_RE.sub("", text)
    for pattern in _EMPHASIS_RES:
        text = pattern.sub(r"\1", text)
    return _PLACEHOLDER_RE.sub(lambda m: tokens[int(m.group(1))], text)
