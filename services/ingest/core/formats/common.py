"""Helpers every format parser shares: decoding, JSON loading, ids, timestamps, documents."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import PurePath, PurePosixPath
from typing import Any

from services.ingest.core.errors import InvalidInput
from services.ingest.core.normalize import normalize_text, normalize_url
from services.ingest.core.types import Document, SourceMeta

_EPOCH_STRING_RE = re.compile(r"-?\d+(?:\.\d+)?")


def decode_utf8(data: bytes, path: PurePath) -> str:
    """Decode a text file: UTF-8 (a BOM is allowed), line breaks unified to ``\\n``.

    Raises:
        InvalidInput: NUL bytes (a binary file under a text name) or invalid UTF-8, naming the byte.
    """
    # NUL never occurs in text files; it is the cheapest reliable sign of a binary file under a text name.
    if b"\x00" in data:
        raise InvalidInput(path, "binary content (NUL bytes), expected UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(path, f"invalid UTF-8 at byte {exc.start}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_json(text: str, path: PurePath, max_depth: int = 64, *, where: str = "") -> Any:
    """Parse a JSON document, refusing truncated, malformed and deeply nested input.

    Args:
        text: The decoded document.
        path: Names the file in errors.
        max_depth: Deepest nesting of arrays/objects accepted. Exports nest a handful of levels;
            anything much deeper is hostile and would cost recursion in every consumer.
        where: Prefix for the reason (e.g. ``"line 3: "``).

    Raises:
        InvalidInput: With the line and column of a syntax error, or the depth found.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidInput(path, f"{where}JSON nested too deeply (limit {max_depth})") from None
    except json.JSONDecodeError as exc:
        at_end = exc.pos >= len(text.rstrip())
        what = "truncated JSON" if at_end else f"invalid JSON ({exc.msg})"
        raise InvalidInput(path, f"{where}{what} at line {exc.lineno} column {exc.colno}") from None
    if _depth_exceeds(value, max_depth):
        raise InvalidInput(path, f"{where}JSON nested too deeply (limit {max_depth})")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Iterative so that a document just under the interpreter's recursion limit cannot blow the stack here.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


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


def content_source_id(*parts: object) -> str:
    """Stable id from what identifies a record across export layouts (kind, time, media uri, text).

    Meta exports carry no post ids; deriving the id from the content rather than the file path means
    the same post in the old ``content/`` and the new ``your_instagram_activity/`` layout is one source.
    """
    key = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


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


def epoch_or_none(value: object) -> datetime | None:
    """A lenient timestamp for export fields that are sometimes missing or zero."""
    if value in (None, "", 0):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def make_document(
    raw: str,
    *,
    platform: str,
    source_id: str,
    kind: str,
    path: PurePosixPath,
    url: str | None = None,
    created_at: datetime | None = None,
    title: str | None = None,
) -> Document | None:
    """Normalise ``raw`` and wrap it with its provenance; ``None`` when no text is left."""
    text = normalize_text(raw)
    if not text:
        return None
    meta = SourceMeta(
        platform=platform,
        source_id=source_id,
        url=normalize_url(url) if url else None,
        created_at=created_at,
        kind=kind,
        path=str(path),
        title=title,
    )
    return Document(text=text, meta=meta)


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty list (exports omit empty sections)."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty dict."""
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str:
    """``value`` if it is a string, else ``""``."""
    return value if isinstance(value, str) else ""
