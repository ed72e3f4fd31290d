"""TikTok data export (``user_data.json`` / ``user_data_tiktok.json``): posted videos and comments.

Videos are listed under ``Video.Videos.VideoList`` (older exports) or ``Post.Posts.VideoList``
(newer), each with ``Date`` ("YYYY-MM-DD HH:MM:SS", UTC), ``Link`` and the caption in ``Title``
(older: ``Desc``). The creator's own comments are under ``Comment.Comments.CommentsList``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from services.ingest.core.formats.common import as_dict, as_list, as_str, content_source_id, make_document
from services.ingest.core.types import Document

_VIDEO_ID_RE = re.compile(r"/(?:video|v)/(\d+)")


def looks_like_tiktok(data: Any) -> bool:
    """Whether parsed JSON is a TikTok export."""
    if not isinstance(data, dict):
        return False
    return bool(_video_list(data)) or ("Comment" in data and "Comments" in as_dict(data.get("Comment")))


def _video_list(data: dict[str, Any]) -> list[Any]:
    for section, inner in (("Video", "Videos"), ("Post", "Posts")):
        videos = as_dict(as_dict(data.get(section)).get(inner))
        if "VideoList" in videos:
            return as_list(videos.get("VideoList"))
    return []


def parse_tiktok(data: dict[str, Any], rel: PurePosixPath) -> list[Document]:
    """Captions of posted videos (kind caption) and the creator's comments (kind reply)."""
    docs: list[Document | None] = []
    for video in map(as_dict, _video_list(data)):
        link = as_str(video.get("Link"))
        created = _date(video.get("Date"))
        match = _VIDEO_ID_RE.search(link)
        caption = as_str(video.get("Title")) or as_str(video.get("Desc"))
        sid = match.group(1) if match else content_source_id("tiktok", "video", created, caption)
        docs.append(
            make_document(
                caption,
                platform="tiktok",
                source_id=sid,
                kind="caption",
                path=rel,
                url=link or None,
                created_at=created,
            )
        )
    comments = as_dict(as_dict(data.get("Comment")).get("Comments"))
    for comment in map(as_dict, as_list(comments.get("CommentsList"))):
        created = _date(comment.get("Date"))
        text = as_str(comment.get("Comment"))
        sid = content_source_id("tiktok", "comment", created, text)
        docs.append(
            make_document(text, platform="tiktok", source_id=sid, kind="reply", path=rel, created_at=created)
        )
    return [d for d in docs if d is not None]


def _date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
