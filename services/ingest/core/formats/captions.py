"""Caption files (WebVTT, SRT) rebuilt into a clean transcript with time offsets.

YouTube's auto-generated WebVTT repeats itself: every cue shows the previous line again above the
new one ("rolling" captions), zero-length cues repeat the whole screen, and words carry inline
timestamps (``so<00:00:00.320><c> today</c>``). The transcript keeps each spoken line once, joins
lines into segments that end at a sentence end or after `SEGMENT_SECONDS`, and starts each segment
with its time offset: ``[01:02] text``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from services.ingest.core.errors import InvalidInput

SEGMENT_SECONDS = 20.0
_TIMING_RE = re.compile(
    r"^\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s*-->\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})(?:\s+.*)?$"
)
_TAG_RE = re.compile(r"<[^>]*>")
_SENTENCE_END_RE = re.compile(r"[.!?…][\"'”’)]*$")


@dataclass(frozen=True)
class Line:
    """One spoken line and when it starts, in seconds."""

    start: float
    text: str


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    total = 0.0
    for part in parts:
        total = total * 60 + float(part)
    return total


def caption_lines(text: str, rel: PurePosixPath) -> list[Line]:
    """The distinct spoken lines of a WebVTT or SRT file, in order.

    A file is read as blocks separated by empty lines (a line holding a space is cue text: YouTube
    writes one); in a block, lines before the timing line are
    cue identifiers (SRT counters, VTT ids) and lines after it are the text. Header, NOTE and STYLE
    blocks have no timing line and are skipped.

    Raises:
        InvalidInput: No cue timing line at all (not a caption file).
    """
    lines: list[Line] = []
    recent: list[str] = []
    seen_timing = False
    for block in re.split(r"\n\n+", text):
        rows = block.split("\n")
        at = next((i for i, row in enumerate(rows) if _TIMING_RE.match(row)), None)
        if at is None:
            continue
        match = _TIMING_RE.match(rows[at])
        assert match is not None
        seen_timing = True
        start = _seconds(match.group(1))
        for raw in rows[at + 1 :]:
            clean = " ".join(html.unescape(_TAG_RE.sub("", raw)).split())
            # Rolling captions show the last line or two again; compare with the last lines kept.
            if not clean or clean in recent:
                continue
            lines.append(Line(start, clean))
            recent = [*recent[-1:], clean]
    if not seen_timing:
        raise InvalidInput(rel, "no caption cues ('00:00:01.000 --> 00:00:02.000' lines)")
    return lines


def format_offset(seconds: float) -> str:
    """``[mm:ss]`` (or ``[h:mm:ss]`` past an hour) for a time offset."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"[{hours}:{minutes:02d}:{secs:02d}]" if hours else f"[{minutes:02d}:{secs:02d}]"


def transcript_text(lines: list[Line]) -> str:
    """Lines joined into ``[mm:ss] ...`` segments, one per line of text."""
    out: list[str] = []
    segment: list[str] = []
    seg_start = 0.0
    for line in lines:
        if segment and line.start - seg_start >= SEGMENT_SECONDS:
            out.append(f"{format_offset(seg_start)} {' '.join(segment)}")
            segment = []
        if not segment:
            seg_start = line.start
        segment.append(line.text)
        if _SENTENCE_END_RE.search(line.text):
            out.append(f"{format_offset(seg_start)} {' '.join(segment)}")
            segment = []
    if segment:
        out.append(f"{format_offset(seg_start)} {' '.join(segment)}")
    return "\n".join(out)
