"""A deterministic stand-in for MiniLM for policy unit tests (no model needed)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from services.policy.core.similarity import EMBEDDING_DIM


def bag_of_words(text: str) -> np.ndarray:
    """A hashed, normalised bag of words, ``EMBEDDING_DIM`` wide: shared words mean similar texts."""
    vec = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    for word in re.findall(r"[a-z]+", text.casefold()):
        vec[zlib.crc32(word.encode()) % EMBEDDING_DIM] += 1.0
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm else vec


class CountingEmbedder:
    """An embedding function over :func:`bag_of_words` that records the size and texts of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.texts: list[tuple[str, ...]] = []

    async def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        self.texts.append(tuple(texts))
        return [bag_of_words(t).tolist() for t in texts]
