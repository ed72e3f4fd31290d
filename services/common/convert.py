"""Conversions between proto enums/timestamps and the plain values the cores use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from google.protobuf import timestamp_pb2

from avatar.v1 import types_pb2
from services.common.errors import InvalidArgument

# Cores speak lower-case names ("instagram", "caption"); the API speaks enums.
_PLATFORMS = {
    "text": types_pb2.PLATFORM_TEXT,
    "markdown": types_pb2.PLATFORM_MARKDOWN,
    "jsonl": types_pb2.PLATFORM_JSONL,
    "csv": types_pb2.PLATFORM_CSV,
    "instagram": types_pb2.PLATFORM_INSTAGRAM,
    "facebook": types_pb2.PLATFORM_FACEBOOK,
    "x": types_pb2.PLATFORM_X,
    "youtube": types_pb2.PLATFORM_YOUTUBE,
    "tiktok": types_pb2.PLATFORM_TIKTOK,
    "threads": types_pb2.PLATFORM_THREADS,
}
_PLATFORM_NAMES = {v: k for k, v in _PLATFORMS.items()}
# Names people use for the same platform; normalised on the way in.
PLATFORM_ALIASES = {"twitter": "x", "txt": "text", "md": "markdown", "fb": "facebook", "ig": "instagram"}
KNOWN_PLATFORMS = frozenset(_PLATFORMS)
_KINDS = {
    "post": types_pb2.CONTENT_KIND_POST,
    "caption": types_pb2.CONTENT_KIND_CAPTION,
    "transcript": types_pb2.CONTENT_KIND_TRANSCRIPT,
    "reply": types_pb2.CONTENT_KIND_REPLY,
    "qa": types_pb2.CONTENT_KIND_QA,
    "article": types_pb2.CONTENT_KIND_ARTICLE,
}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}


def platform_to_pb(name: str) -> types_pb2.Platform.ValueType:
    """``"instagram"`` -> ``PLATFORM_INSTAGRAM`` (unknown names -> UNSPECIFIED)."""
    return _PLATFORMS.get(PLATFORM_ALIASES.get(name, name), types_pb2.PLATFORM_UNSPECIFIED)


def platform_from_pb(value: types_pb2.Platform.ValueType) -> str:
    """``PLATFORM_INSTAGRAM`` -> ``"instagram"``; raises InvalidArgument when unspecified or unknown."""
    try:
        return _PLATFORM_NAMES[value]
    except KeyError:
        raise InvalidArgument(f"platform must be set to a known value, got {value}") from None


def kind_to_pb(name: str) -> types_pb2.ContentKind.ValueType:
    """``"caption"`` -> ``CONTENT_KIND_CAPTION`` (unknown names -> UNSPECIFIED)."""
    return _KINDS.get(name, types_pb2.CONTENT_KIND_UNSPECIFIED)


def kind_from_pb(value: types_pb2.ContentKind.ValueType) -> str:
    """``CONTENT_KIND_CAPTION`` -> ``"caption"``; raises InvalidArgument when unspecified or unknown."""
    try:
        return _KIND_NAMES[value]
    except KeyError:
        raise InvalidArgument(f"content kind must be set to a known value, got {value}") from None


def ts_to_pb(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A timezone-aware datetime as a Timestamp (``None`` stays unset)."""
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def ts_from_pb(msg: object, field: str) -> datetime | None:
    """The Timestamp ``field`` of ``msg`` as an aware UTC datetime, or ``None`` when unset."""
    if not msg.HasField(field):  # type: ignore[attr-defined]
        return None
    ts: timestamp_pb2.Timestamp = getattr(msg, field)
    return ts.ToDatetime(tzinfo=UTC)


class Citable(Protocol):
    """Anything that carries what a citation shows (a memory search hit, the gateway's evidence)."""

    @property
    def chunk_id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def platform(self) -> str: ...
    @property
    def external_id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def start_char(self) -> int: ...
    @property
    def end_char(self) -> int: ...


def citation_to_pb(c: Citable) -> types_pb2.Citation:
    """A retrieved span as the citation a fan can check: source, platform, url, date, exact quote."""
    return types_pb2.Citation(
        chunk_id=c.chunk_id,
        source=types_pb2.SourceMeta(
            platform=platform_to_pb(c.platform),
            external_id=c.external_id,
            url=c.url,
            created_at=ts_to_pb(c.created_at),
            kind=kind_to_pb(c.kind),
            path=c.path,
        ),
        quote=c.text,
        start_char=c.start_char,
        end_char=c.end_char,
        score=c.score,
    )


def platform_name(value: types_pb2.Platform.ValueType) -> str:
    """Like :func:`platform_from_pb` but ``""`` for an unset or unknown value (read side)."""
    return _PLATFORM_NAMES.get(value, "")


def kind_name(value: types_pb2.ContentKind.ValueType) -> str:
    """Like :func:`kind_from_pb` but ``""`` for an unset or unknown value (read side)."""
    return _KIND_NAMES.get(value, "")
