"""YouTube: caption files and the Google Takeout "YouTube and YouTube Music" folder.

Takeout writes CSV: ``video metadata/videos.csv`` (title and description of each upload) and
``comments/comments.csv`` (the creator's comments, text as JSON segments ``{"text":"..."}``).
Caption files (``.vtt``/``.srt``) anywhere are transcripts; a YouTube video id in the file name
(``<title> [dQw4w9WgXcQ].en.vtt``, as downloaders name them) becomes the source id and URL.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

from services.ingest.core.errors import InvalidInput
from services.ingest.core.formats.captions import caption_lines, transcript_text
from services.ingest.core.formats.common import content_source_id, epoch_or_none, make_document
from services.ingest.core.types import Document

_VIDEO_ID_RE = re.compile(r"(?:\[|\b)([A-Za-z0-9_-]{11})(?:\])")
_VIDEOS_HEADER = {"Video ID", "Video Title (Original)", "Video Description (Original)"}
_COMMENTS_HEADER = {"Comment ID", "Comment Text"}


def parse_captions(text: str, rel: PurePosixPath) -> list[Document]:
    """One transcript document from a WebVTT or SRT file."""
    lines = caption_lines(text, rel)
    match = _VIDEO_ID_RE.search(rel.name)
    video_id = match.group(1) if match else None
    doc = make_document(
        transcript_text(lines),
        platform="youtube",
        # Suffixed: the video's Takeout metadata is a source of its own under the bare id.
        source_id=f"{video_id}/transcript"
        if video_id
        else content_source_id("youtube", "captions", str(rel)),
        kind="transcript",
        path=rel,
        url=f"https://www.youtube.com/watch?v={video_id}" if video_id else None,
        title=_caption_title(rel.name),
    )
    if doc is None:
        raise InvalidInput(rel, "no caption text")
    return [doc]


def _caption_title(name: str) -> str:
    # "Shaping a boule [dQw4w9WgXcQ].en.vtt" -> "Shaping a boule": drop the extension, language and id.
    stem = re.sub(r"(?:\.[A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?)?\.(?:vtt|srt)$", "", name, flags=re.IGNORECASE)
    return _VIDEO_ID_RE.sub("", stem).strip() or stem


def takeout_table(header: list[str]) -> str | None:
    """``"videos"`` or ``"comments"`` when a CSV header is a Takeout YouTube table, else ``None``."""
    names = {h.strip() for h in header}
    if names >= _VIDEOS_HEADER:
        return "videos"
    if names >= _COMMENTS_HEADER:
        return "comments"
    return None


def parse_takeout_rows(table: str, rows: list[dict[str, str]], rel: PurePosixPath) -> list[Document]:
    """Documents from the rows of a Takeout ``videos.csv`` or ``comments.csv``."""
    docs: list[Document | None] = []
    for row in rows:
        if table == "videos":
            video_id = row.get("Video ID", "").strip()
            title = row.get("Video Title (Original)", "").strip()
            description = row.get("Video Description (Original)", "").strip()
            body = "\n\n".join(p for p in (title, description) if p)
            created = epoch_or_none(row.get("Video Publish Timestamp") or row.get("Video Create Timestamp"))
            docs.append(
                make_document(
                    body,
                    platform="youtube",
                    source_id=video_id or content_source_id("youtube", "video", body),
                    kind="caption",
                    path=rel,
                    url=f"https://www.youtube.com/watch?v={video_id}" if video_id else None,
                    created_at=created,
                    title=title or None,
                )
            )
        else:
            comment_id = row.get("Comment ID", "").strip()
            video_id = row.get("Video ID", "").strip()
            text = comment_text(row.get("Comment Text", ""))
            docs.append(
                make_document(
                    text,
                    platform="youtube",
                    source_id=comment_id or content_source_id("youtube", "comment", text),
                    kind="reply",
                    path=rel,
                    url=f"https://www.youtube.com/watch?v={video_id}&lc={comment_id}"
                    if video_id and comment_id
                    else None,
                    created_at=epoch_or_none(row.get("Comment Create Timestamp")),
                )
            )
    return [d for d in docs if d is not None]


def comment_text(raw: str) -> str:
    """Takeout's comment text: JSON segments ``{"text":"a"},{"text":"b"}`` joined, or the raw text."""
    raw = raw.strip()
    if not raw.startswith("{"):
        return raw
    try:
        segments = json.loads(f"[{raw}]")
    except (ValueError, RecursionError):
        return raw
    parts = [s.get("text", "") for s in segments if isinstance(s, dict) and isinstance(s.get("text"), str)]
    return "".join(parts)
