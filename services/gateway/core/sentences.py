"""Cutting streamed text into sentences so each is checked before the fan sees it."""

from __future__ import annotations

import re

# A sentence ends at . ! ? or … (optionally followed by closing quotes/brackets) and whitespace,
# or at a line break. Abbreviations may split early; that only means a shorter unit is checked.
_BOUNDARY = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|\n+")


# C0/C1 control characters other than tab and newline never belong in a reply (a model can emit
# them as raw bytes); they would corrupt terminals and are rejected by the turn store.
# U+FFFD marks bytes that did not decode: noise to a fan, so it goes too.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


def printable(text: str) -> str:
    """``text`` without control characters."""
    return _CONTROL.sub("", text)


class SentenceBuffer:
    """Accumulates streamed text and releases complete sentences.

    Text is held until a boundary is seen, so nothing reaches the fan before the sentence it
    belongs to has been checked as a whole.
    """

    def __init__(self, max_chars: int = 400) -> None:
        self._buf = ""
        # A run-on "sentence" is released at this length so a reply without punctuation still
        # streams (and is still checked) instead of arriving all at the end.
        self._max_chars = max_chars

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the sentences it completed (whitespace preserved)."""
        self._buf += printable(text)
        out: list[str] = []
        while True:
            match = _BOUNDARY.search(self._buf)
            if match is None:
                break
            out.append(self._buf[: match.end()])
            self._buf = self._buf[match.end() :]
        while len(self._buf) > self._max_chars:
            cut = self._buf.rfind(" ", 0, self._max_chars)
            cut = cut + 1 if cut > 0 else self._max_chars
            out.append(self._buf[:cut])
            self._buf = self._buf[cut:]
        return [s for s in out if s.strip()]

    def flush(self) -> str | None:
        """Return what is left at the end of the stream, if anything."""
        rest, self._buf = self._buf, ""
        return rest if rest.strip() else None
