"""Plain text and Markdown files: one document each.

The Markdown converter is deliberately small: it turns the Markdown creators actually write
(headings, emphasis, links, lists, quotes, code) into the text a reader sees. Not CommonMark.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from services.ingest.core.errors import InvalidInput
from services.ingest.core.formats.common import derived_source_id
from services.ingest.core.formats.records import (
    first_date,
    kind_field,
    platform_field,
    source_id_field,
    url_field,
)
from services.ingest.core.normalize import normalize_text
from services.ingest.core.types import Document, SourceMeta

_TIMESTAMP_LINE_RE = re.compile(r"^\[?\(?\d{1,2}:\d{2}(?::\d{2})?\b")


def parse_text(text: str, rel: PurePosixPath) -> Document:
    """A plain text file as one document (kind transcript when it looks like one, else article)."""
    body = normalize_text(text)
    if not body:
        raise InvalidInput(rel, "no text content")
    meta = SourceMeta(
        platform="text",
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


def parse_markdown(text: str, rel: PurePosixPath) -> Document:
    """A Markdown file as one document; front matter supplies id, platform, url, date, kind, title."""
    fields, content = split_front_matter(text)
    rendered, first_heading = markdown_to_text(content)
    body = normalize_text(rendered)
    if not body:
        raise InvalidInput(rel, "no text content")
    try:
        meta = SourceMeta(
            platform=platform_field(fields.get("platform"), "markdown"),
            source_id=source_id_field(fields.get("id"), rel, 0),
            url=url_field(fields.get("url")),
            created_at=first_date(fields),
            kind=kind_field(fields.get("kind"), "article"),
            path=str(rel),
            title=fields.get("title") or first_heading,
        )
    except ValueError as exc:
        raise InvalidInput(rel, f"front matter: {exc}") from None
    return Document(text=body, meta=meta)


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
