"""Meta exports ("Download your information", JSON): Instagram, Facebook and Threads.

Meta writes UTF-8 text as if each byte were a Latin-1 character, escaped: a right single quote
(U+2019, bytes E2 80 99) arrives as ``\\u00e2\\u0080\\u0099``. `fix_mojibake` undoes that. Both
Instagram layouts are understood: the older ``content/posts_1.json`` and the newer
``your_instagram_activity/content|media/posts_1.json`` share record shapes, so detection goes by
shape, not by path. Exports carry no post ids, so ids are derived from time, media uri and text.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from services.ingest.core.formats.common import (
    as_dict,
    as_list,
    as_str,
    content_source_id,
    epoch_or_none,
    make_document,
)
from services.ingest.core.types import Document

_URL_RE = re.compile(r"https?://\S+")


def fix_mojibake(text: str) -> str:
    """Repair UTF-8 that was decoded as Latin-1 (Meta's export encoding), leaving other text alone.

    A string is re-decoded only when every character fits in one byte and those bytes form valid
    UTF-8; genuine Latin-1 text such as "café" (``\\u00e9`` alone is not valid UTF-8) stays as it is.

    Args:
        text: A string from a Meta export.

    Returns:
        The repaired string.
    """
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def fix_tree(value: Any) -> Any:
    """`fix_mojibake` applied to every string (keys too) in a parsed JSON value."""
    if isinstance(value, str):
        return fix_mojibake(value)
    if isinstance(value, list):
        return [fix_tree(v) for v in value]
    if isinstance(value, dict):
        return {fix_mojibake(k): fix_tree(v) for k, v in value.items()}
    return value


# --- detection --------------------------------------------------------------------------------------


def meta_kind(data: Any) -> str | None:
    """Which Meta export file this parsed JSON is, by shape; ``None`` when it is none of them.

    Returns:
        One of ``"instagram"``, ``"facebook"``, ``"threads"``.
    """
    if isinstance(data, dict):
        keys = set(data)
        if keys & {"ig_reels_media", "ig_stories", "comments_media_comments", "comments_reels_comments"}:
            return "instagram"
        if "text_post_app_text_posts" in keys:
            return "threads"
        if "comments_v2" in keys or "status_updates_v2" in keys:
            return "facebook"
        return None
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        first = data[0]
        if "media" in first and isinstance(first["media"], list):
            return "instagram"
        if "string_map_data" in first and "Comment" in as_dict(first["string_map_data"]):
            return "instagram"
        if "timestamp" in first and ("data" in first or "attachments" in first):
            return "facebook"
    return None


# --- Instagram -------------------------------------------------------------------------------------


def parse_instagram(data: Any, rel: PurePosixPath) -> list[Document]:
    """Posts, reels, stories and the creator's own comments from an Instagram export file."""
    data = fix_tree(data)
    docs: list[Document | None] = []
    if isinstance(data, dict):
        for group in as_list(data.get("ig_reels_media")):
            docs.extend(_ig_media_group(as_dict(group), rel, "reel"))
        for story in as_list(data.get("ig_stories")):
            docs.append(_ig_media(as_dict(story), rel, "story", None))
        for key in ("comments_media_comments", "comments_reels_comments"):
            docs.extend(_ig_comment(as_dict(c), rel) for c in as_list(data.get(key)))
    else:
        for item in as_list(data):
            item = as_dict(item)
            if "string_map_data" in item:
                docs.append(_ig_comment(item, rel))
            else:
                docs.extend(_ig_media_group(item, rel, "post"))
    return [d for d in docs if d is not None]


def _ig_media_group(group: dict[str, Any], rel: PurePosixPath, what: str) -> list[Document | None]:
    media = [as_dict(m) for m in as_list(group.get("media"))]
    caption = as_str(group.get("title"))
    if caption and media:
        # An album: the caption sits on the group, the items carry only their uris.
        created = epoch_or_none(group.get("creation_timestamp")) or epoch_or_none(
            media[0].get("creation_timestamp")
        )
        sid = content_source_id("instagram", what, created, as_str(media[0].get("uri")))
        return [
            make_document(
                caption, platform="instagram", source_id=sid, kind="caption", path=rel, created_at=created
            )
        ]
    return [_ig_media(m, rel, what, group) for m in media]


def _ig_media(
    media: dict[str, Any], rel: PurePosixPath, what: str, group: dict[str, Any] | None
) -> Document | None:
    caption = as_str(media.get("title"))
    created = epoch_or_none(media.get("creation_timestamp"))
    if created is None and group is not None:
        created = epoch_or_none(group.get("creation_timestamp"))
    sid = content_source_id("instagram", what, created, as_str(media.get("uri")))
    return make_document(
        caption, platform="instagram", source_id=sid, kind="caption", path=rel, created_at=created
    )


def _ig_comment(item: dict[str, Any], rel: PurePosixPath) -> Document | None:
    smd = as_dict(item.get("string_map_data"))
    if smd:  # newer layout: {"Comment": {"value"}, "Media Owner": {"value"}, "Time": {"timestamp"}}
        text = as_str(as_dict(smd.get("Comment")).get("value"))
        created = epoch_or_none(as_dict(smd.get("Time")).get("timestamp"))
    else:  # older layout: {"string_list_data": [{"value", "timestamp"}], "title": owner}
        first = as_dict(next(iter(as_list(item.get("string_list_data"))), {}))
        text = as_str(first.get("value"))
        created = epoch_or_none(first.get("timestamp"))
    sid = content_source_id("instagram", "comment", created, text)
    return make_document(
        text, platform="instagram", source_id=sid, kind="reply", path=rel, created_at=created
    )


# --- Facebook --------------------------------------------------------------------------------------


def parse_facebook(data: Any, rel: PurePosixPath) -> list[Document]:
    """Posts (``data[].post``) and the creator's comments (``comments_v2``) from a Facebook export."""
    data = fix_tree(data)
    docs: list[Document | None] = []
    if isinstance(data, dict):
        for item in as_list(data.get("status_updates_v2")):
            docs.append(_fb_post(as_dict(item), rel))
        for item in as_list(data.get("comments_v2")):
            docs.append(_fb_comment(as_dict(item), rel))
    else:
        docs.extend(_fb_post(as_dict(item), rel) for item in as_list(data))
    return [d for d in docs if d is not None]


def _fb_post(item: dict[str, Any], rel: PurePosixPath) -> Document | None:
    text = "\n\n".join(
        as_str(d.get("post")) for d in map(as_dict, as_list(item.get("data"))) if as_str(d.get("post"))
    )
    created = epoch_or_none(item.get("timestamp"))
    url: str | None = None
    for attachment in map(as_dict, as_list(item.get("attachments"))):
        for entry in map(as_dict, as_list(attachment.get("data"))):
            link = as_str(as_dict(entry.get("external_context")).get("url"))
            if link and url is None:
                url = link
            if not text:
                # A photo or video post: its words are in the media description.
                text = as_str(as_dict(entry.get("media")).get("description"))
    sid = content_source_id("facebook", "post", created, text)
    return make_document(
        text, platform="facebook", source_id=sid, kind="post", path=rel, url=url, created_at=created
    )


def _fb_comment(item: dict[str, Any], rel: PurePosixPath) -> Document | None:
    comment = as_dict(next((as_dict(d).get("comment") for d in as_list(item.get("data"))), None))
    text = as_str(comment.get("comment"))
    created = epoch_or_none(comment.get("timestamp")) or epoch_or_none(item.get("timestamp"))
    sid = content_source_id("facebook", "comment", created, text)
    return make_document(text, platform="facebook", source_id=sid, kind="reply", path=rel, created_at=created)


# --- Threads ---------------------------------------------------------------------------------------


def parse_threads(data: Any, rel: PurePosixPath) -> list[Document]:
    """Threads posts (``text_post_app_text_posts[].media[].title``), Instagram's record shape."""
    data = fix_tree(data)
    docs: list[Document | None] = []
    for group in map(as_dict, as_list(as_dict(data).get("text_post_app_text_posts"))):
        for media in map(as_dict, as_list(group.get("media"))):
            created = epoch_or_none(media.get("creation_timestamp"))
            text = as_str(media.get("title"))
            sid = content_source_id("threads", "post", created, text)
            docs.append(
                make_document(
                    text, platform="threads", source_id=sid, kind="post", path=rel, created_at=created
                )
            )
    return [d for d in docs if d is not None]
