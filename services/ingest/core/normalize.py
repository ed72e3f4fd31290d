"""Text normalisation shared by every parser, and the content hash used for deduplication."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# C0/C1 controls except tab and newline, plus invisible characters that only make equal texts
# hash differently (BOM, zero-width space). ZWJ/ZWNJ stay: emoji sequences and some scripts need them.
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff\u200b]")
_LINE_BREAK_RE = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
_HSPACE_RE = re.compile(r"[^\S\n]+")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
_ANY_SPACE_RE = re.compile(r"\s+")
_URL_RE = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
# Query parameters that only say where a click came from; the same link shared twice must compare
# equal, and a tracking id is noise in an embedding.
_TRACKING_PARAMS = frozenset({"fbclid", "gclid", "igshid", "igsh", "mc_cid", "mc_eid", "si", "ref_src"})


def normalize_url(url: str) -> str:
    """Canonical form of one URL: lower-case scheme and host, tracking parameters removed.

    Path, remaining query (in its original order) and fragment are kept byte for byte, so the link
    still works. Idempotent.

    Args:
        url: An absolute http(s) URL.

    Returns:
        The URL without ``utm_*``, ``fbclid``, ``igshid`` and similar parameters.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url  # e.g. an unbalanced IPv6 bracket: leave what the creator wrote
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [
            (k, v) for k, v in pairs if not (k.lower().startswith("utm_") or k.lower() in _TRACKING_PARAMS)
        ]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, query, parts.fragment))


def normalize_text(text: str) -> str:
    """Return `text` in the canonical form every document is stored in.

    Unicode NFC; line breaks unified to ``\\n``; control characters removed; runs of horizontal
    whitespace collapsed to one space; trailing spaces on lines and more than one blank line removed;
    the ends stripped. Paragraph and line breaks are kept because the chunker uses them as boundaries.
    URLs lose tracking parameters and get a lower-case scheme and host (`normalize_url`); other
    non-whitespace characters are never altered beyond NFC.

    Args:
        text: Any decoded text.

    Returns:
        The normalised text (possibly empty).
    """
    # Line breaks first: the control-character pass would otherwise delete a bare \r or \x85.
    text = _LINE_BREAK_RE.sub("\n", text)
    text = _CONTROL_RE.sub("", text)
    # NFC after removing controls: a removed control between a letter and a combining mark would
    # otherwise leave a decomposed pair behind and the function would not be idempotent.
    text = unicodedata.normalize("NFC", text)
    text = _HSPACE_RE.sub(" ", text)
    text = _URL_RE.sub(lambda m: normalize_url(m.group()), text)
    text = "\n".join(line.strip(" ") for line in text.split("\n"))
    text = _BLANK_LINES_RE.sub("\n\n", text)
    return text.strip()


def content_hash(text: str) -> str:
    """SHA-256 hex digest of `text` after normalisation with all whitespace collapsed.

    Two texts that differ only in line breaks or spacing hash equal, so a caption reposted with
    different wrapping is recognised as a duplicate.

    Args:
        text: Any text.

    Returns:
        64 lowercase hex characters.
    """
    canonical = _ANY_SPACE_RE.sub(" ", normalize_text(text))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
