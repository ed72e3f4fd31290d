"""X/Twitter archive: ``data/tweets.js`` (``window.YTD.tweets.part0 = [...]``).

The archive's "JSON" is a JavaScript assignment. Each record is ``{"tweet": {...}}`` (older
archives: the tweet object itself). Text is ``full_text`` with HTML entities (``&amp;``) and t.co
short links; links are expanded from ``entities.urls`` and links to attached media are removed.
Retweets (other people's words) and replies are excluded unless asked for.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from services.ingest.core.errors import InvalidInput
from services.ingest.core.formats.common import as_dict, as_list, as_str, load_json, make_document
from services.ingest.core.types import Document, ParseOptions

_ASSIGNMENT_RE = re.compile(r"^\s*window\.YTD\.[A-Za-z0-9_]+\.part\d+\s*=\s*")


@dataclass(frozen=True)
class XParsed:
    """Tweets kept, and how many were excluded as retweets or replies."""

    documents: list[Document]
    excluded: int


def looks_like_x(text: str) -> bool:
    """Whether a ``.js`` file is a Twitter archive data file."""
    return bool(_ASSIGNMENT_RE.match(text[:200]))


def parse_x(text: str, rel: PurePosixPath, options: ParseOptions) -> XParsed:
    """Parse a ``tweets.js`` file.

    Raises:
        InvalidInput: Not a ``window.YTD.*`` assignment, or its JSON is malformed.
    """
    match = _ASSIGNMENT_RE.match(text)
    if match is None:
        raise InvalidInput(rel, "not a Twitter archive file (expected 'window.YTD.<name>.part<N> = [')")
    body = text[match.end() :].rstrip().removesuffix(";")
    records = load_json(body, rel, options.max_json_depth)
    if not isinstance(records, list):
        raise InvalidInput(rel, f"expected a JSON array after the assignment, got {type(records).__name__}")
    docs: list[Document] = []
    excluded = 0
    for record in records:
        tweet = as_dict(as_dict(record).get("tweet") or record)
        raw = as_str(tweet.get("full_text") or tweet.get("text"))
        is_retweet = raw.startswith("RT @") or bool(tweet.get("retweeted_status"))
        is_reply = bool(tweet.get("in_reply_to_status_id_str") or tweet.get("in_reply_to_status_id"))
        if (is_retweet and not options.include_reposts) or (is_reply and not options.include_replies):
            excluded += 1
            continue
        tweet_id = as_str(tweet.get("id_str")) or str(tweet.get("id") or "")
        if not tweet_id:
            raise InvalidInput(rel, f"tweet {len(docs) + excluded}: no id_str")
        doc = make_document(
            expand_text(raw, tweet),
            platform="x",
            source_id=tweet_id,
            kind="reply" if is_reply else "post",
            path=rel,
            url=f"https://x.com/i/web/status/{tweet_id}",
            created_at=_created_at(tweet.get("created_at")),
        )
        if doc is not None:
            docs.append(doc)
    return XParsed(docs, excluded)


def expand_text(raw: str, tweet: dict[str, Any]) -> str:
    """``full_text`` with t.co links expanded, media links dropped and HTML entities unescaped."""
    entities = as_dict(tweet.get("entities"))
    text = raw
    for entity in map(as_dict, as_list(entities.get("urls"))):
        short, expanded = as_str(entity.get("url")), as_str(entity.get("expanded_url"))
        if short and expanded:
            text = text.replace(short, expanded)
    media = [*as_list(entities.get("media")), *as_list(as_dict(tweet.get("extended_entities")).get("media"))]
    for entity in map(as_dict, media):
        short = as_str(entity.get("url"))
        if short:
            text = text.replace(short, "")  # the link only points at the attached photo or video
    # Unescape last: an expanded URL may itself contain "&amp;" as the archive stores it.
    return html.unescape(text)


def _created_at(value: object) -> datetime | None:
    # "Wed Oct 10 20:19:24 +0000 2018", the v1.1 API format the archive keeps.
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)
    except ValueError:
        return None
