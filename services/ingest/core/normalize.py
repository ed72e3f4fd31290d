"""Text normalisation shared by every parser, and the content hash used for deduplication."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# C0/C1 controls except tab and newline, plus invisible characters that only make equal texts
# hash differently (BOM, zero-width space). ZWJ/ZWNJ stay: emoji sequences and some scripts need them.
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff\u200b]")
_LINE_BREAK_RE = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
_HSPACE_RE = re.compile(r"[^\S\n]+")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
_ANY_SPACE_RE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Return `text` in the canonical form every document is stored in.

    Unicode NFC; line breaks unified to ``\\n``; control characters removed; runs of horizontal
    whitespace collapsed to one space; trailing spaces on lines and more than one blank line removed;
    the ends stripped. Paragraph and line breaks are kept because the chunker uses them as boundaries.
    Non-whitespace characters are never altered beyond NFC, so URLs survive intact.

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
