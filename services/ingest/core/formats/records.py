"""Record files: JSON Lines (one object per line) and CSV (one row per record, a chosen column).

Both accept the same metadata fields: ``id``, ``platform``, ``url``, ``kind`` and a date
(``created_at``, ``date`` or ``timestamp``). A bad record rejects the file with its line or row
number, so the creator can fix the export and re-ingest it.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from services.ingest.core.errors import InvalidInput
from services.ingest.core.formats.common import derived_source_id, load_json, parse_timestamp
from services.ingest.core.formats.youtube import parse_takeout_rows, takeout_table
from services.ingest.core.normalize import normalize_text
from services.ingest.core.types import KINDS, Document, ParseOptions, SourceMeta

#: Platform names a record may carry (the proto's Platform enum), with the aliases people use.
PLATFORMS: frozenset[str] = frozenset(
    {"text", "markdown", "jsonl", "csv", "instagram", "facebook", "x", "youtube", "tiktok", "threads"}
)
PLATFORM_ALIASES: dict[str, str] = {
    "twitter": "x",
    "txt": "text",
    "md": "markdown",
    "fb": "facebook",
    "ig": "instagram",
}
TEXT_FIELDS = ("text", "content", "body", "caption", "full_text")
_DATE_FIELDS = ("created_at", "date", "timestamp")
#: Most CSV rows accepted per file; a larger table is more likely a data dump than an export.
MAX_CSV_FIELD = 1024 * 1024


def parse_jsonl(text: str, rel: PurePosixPath, options: ParseOptions) -> list[Document]:
    """One document per JSON object line.

    Raises:
        InvalidInput: Naming the line: invalid or nested-too-deep JSON, a non-object, no text field,
            a bad field (unknown platform or kind, bad date), a duplicate id; or no records at all.
    """
    docs: list[Document] = []
    ids: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        record = load_json(line, rel, options.max_json_depth, where=f"line {lineno}: ")
        if not isinstance(record, dict):
            raise InvalidInput(rel, f"line {lineno}: expected a JSON object, got {type(record).__name__}")
        try:
            doc = record_document(record, rel, len(docs), "jsonl")
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


def parse_csv(text: str, rel: PurePosixPath, options: ParseOptions) -> list[Document]:
    """One document per CSV row; the text column is ``options.csv_column`` or a known name.

    A Google Takeout YouTube table (``videos.csv``, ``comments.csv``) is recognised by its header.

    Raises:
        InvalidInput: No header, no usable text column, a malformed row or field (naming the row).
    """
    csv.field_size_limit(MAX_CSV_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(rel, "no header row") from None
    except csv.Error as exc:
        raise InvalidInput(rel, f"row 1: {exc}") from None
    header = [h.strip() for h in header]
    rows: list[dict[str, str]] = []
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                rows.append(dict(zip(header, cells, strict=False)))
    except csv.Error as exc:
        raise InvalidInput(rel, f"row {reader.line_num}: {exc}") from None
    table = takeout_table(header)
    if table is not None and options.csv_column is None:
        return parse_takeout_rows(table, rows, rel)
    column = options.csv_column or next((f for f in TEXT_FIELDS if f in header), None)
    if column is None or column not in header:
        wanted = repr(options.csv_column) if options.csv_column else f"one of {', '.join(TEXT_FIELDS)}"
        raise InvalidInput(rel, f"no text column {wanted} in header {header}")
    docs: list[Document] = []
    ids: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):
        record: dict[str, Any] = {k: v for k, v in row.items() if k != column and v != ""}
        record["text"] = row.get(column, "")
        if not normalize_text(record["text"]):
            continue  # an empty cell is an empty post, not an error
        try:
            doc = record_document(record, rel, len(docs), "csv")
        except ValueError as exc:
            raise InvalidInput(rel, f"row {number}: {exc}") from None
        first = ids.setdefault(doc.meta.source_id, number)
        if first != number:
            raise InvalidInput(
                rel, f"row {number}: duplicate id {doc.meta.source_id!r} (first on row {first})"
            )
        docs.append(doc)
    if not docs:
        raise InvalidInput(rel, f"no records with text in column {column!r}")
    return docs


def record_document(
    record: dict[str, Any], rel: PurePosixPath, ordinal: int, default_platform: str
) -> Document:
    """A document from one JSONL/CSV record.

    Raises:
        ValueError: A missing or malformed field; the message names it.
    """
    field = next((f for f in TEXT_FIELDS if record.get(f) is not None), None)
    if field is None:
        raise ValueError(f"no text field (one of {', '.join(TEXT_FIELDS)})")
    raw = record[field]
    if not isinstance(raw, str):
        raise ValueError(f"{field!r} must be a string")
    body = normalize_text(raw)
    if not body:
        raise ValueError(f"{field!r} is empty")
    meta = SourceMeta(
        platform=platform_field(record.get("platform"), default_platform),
        source_id=source_id_field(record.get("id"), rel, ordinal),
        url=url_field(record.get("url")),
        created_at=first_date(record),
        kind=kind_field(record.get("kind"), "caption" if field == "caption" else "post"),
        path=str(rel),
    )
    return Document(text=body, meta=meta)


def platform_field(value: object, default: str) -> str:
    """The record's platform, lower-cased and de-aliased (``twitter`` -> ``x``).

    Raises:
        ValueError: Not a string, or not a platform the API knows: an unknown name would be stored
            as an unspecified platform and break citations.
    """
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ValueError("'platform' must be a string")
    name = value.strip().lower()
    name = PLATFORM_ALIASES.get(name, name)
    if name not in PLATFORMS:
        raise ValueError(f"unknown platform {value!r} (one of {', '.join(sorted(PLATFORMS))})")
    return name


def source_id_field(value: object, rel: PurePosixPath, ordinal: int) -> str:
    """The record's id, or one derived from the file and position."""
    if value is None or value == "":
        return derived_source_id(rel, ordinal)
    # bool is an int subclass, and True as an id is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("'id' must be a string or an integer")
    return str(value).strip()


def url_field(value: object) -> str | None:
    """The record's URL, if any."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("'url' must be a string")
    return value.strip() or None


def kind_field(value: object, default: str) -> str:
    """The record's kind, one of `KINDS`."""
    if value is None or value == "":
        return default
    kind = value.strip().lower() if isinstance(value, str) else None
    if kind not in KINDS:
        raise ValueError(f"'kind' must be one of {', '.join(sorted(KINDS))}, got {value!r}")
    return kind


def first_date(fields: dict[str, Any]) -> datetime | None:
    """The first date field present, parsed."""
    for name in _DATE_FIELDS:
        value = fields.get(name)
        if value is not None and value != "":
            try:
                return parse_timestamp(value)
            except ValueError as exc:
                raise ValueError(f"{name!r}: {exc}") from None
    return None
