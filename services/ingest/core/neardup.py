"""Near-duplicate detection: 64-bit SimHash of word shingles with a banded index.

A caption cross-posted to Instagram and Facebook with a different hashtag or a trailing emoji is
the same content; storing it twice would double its weight in retrieval and in the persona
profile. Two texts are near duplicates when their SimHashes differ in at most `MAX_DISTANCE`
bits. By pigeonhole, two such hashes agree exactly on at least one of `BANDS` 16-bit bands, so
the index finds candidates with four dictionary lookups instead of a scan.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable

import numpy as np

BITS = 64
BANDS = 4
MAX_DISTANCE = 3
#: Texts with fewer words are compared exactly only: a one-word change to a short post changes its meaning.
MIN_WORDS = 6
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_MASK = (1 << BITS) - 1


def _shingles(text: str) -> list[str]:
    words = _WORD_RE.findall(text.lower())
    if len(words) < 3:
        return words
    return [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]


def word_count(text: str) -> int:
    """Words in ``text`` as SimHash sees them."""
    return len(_WORD_RE.findall(text))


def simhash(text: str) -> int:
    """64-bit SimHash of the lower-cased word 3-shingles of ``text``, as a signed int (fits bigint).

    Args:
        text: Any text.

    Returns:
        The hash in [-2**63, 2**63).
    """
    shingles = _shingles(text)
    if not shingles:
        return 0
    digests = b"".join(hashlib.blake2b(sh.encode("utf-8"), digest_size=8).digest() for sh in shingles)
    # One row of 64 bits per shingle (big-endian bytes, so column 0 is bit 63); a bit is set in the
    # SimHash when more shingles have it set than not. Vectorised: this runs for every document.
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8).reshape(len(shingles), 8), axis=1)
    majority = bits.sum(axis=0, dtype=np.int64) * 2 > len(shingles)
    value = int.from_bytes(np.packbits(majority).tobytes(), "big")
    return value - (1 << BITS) if value >= 1 << (BITS - 1) else value


def distance(a: int, b: int) -> int:
    """Hamming distance between two SimHashes."""
    return ((a ^ b) & _MASK).bit_count()


class NearDuplicateIndex:
    """SimHashes of documents seen so far, each with the key of its document."""

    def __init__(self) -> None:
        self._bands: list[dict[int, list[tuple[int, Hashable]]]] = [{} for _ in range(BANDS)]

    @staticmethod
    def _band_values(h: int) -> list[int]:
        width = BITS // BANDS
        return [((h & _MASK) >> (i * width)) & ((1 << width) - 1) for i in range(BANDS)]

    def add(self, h: int, key: Hashable) -> None:
        """Index hash ``h`` of the document ``key``."""
        for band, value in zip(self._bands, self._band_values(h), strict=True):
            band.setdefault(value, []).append((h, key))

    def find(self, h: int, exclude: Hashable | None = None) -> Hashable | None:
        """The key of an indexed document within `MAX_DISTANCE` of ``h`` (other than ``exclude``)."""
        for band, value in zip(self._bands, self._band_values(h), strict=True):
            for other, key in band.get(value, ()):
                if key != exclude and distance(h, other) <= MAX_DISTANCE:
                    return key
        return None
