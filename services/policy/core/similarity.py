"""Blocked topics by meaning: a fan message close to one of a topic's examples is on that topic.

Keywords catch the words a creator thought of; the examples catch the paraphrases they did not
("Are you a mum?" for a topic whose keywords are "kids" and "children"). Example vectors are
computed once per controls version and cached; a check costs one embedding of the message (none
when the caller sends the one it computed for retrieval) and one small matrix product.

The same message embedding is compared with a built-in bank of generic prompt-injection exemplars
(``injection_bank.py``, :class:`InjectionBank`), embedded once per process by the same embedder, so
paraphrased attacks the regexes of ``injection.py`` do not spell out are caught by meaning.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.policy.core.controls import Controls
from services.policy.core.injection_bank import EXEMPLARS

SIMILARITY_THRESHOLD = 0.55
"""Cosine similarity (MiniLM, unit vectors) at or above which a message is on a topic.

Chosen on ``eval/policy_set.jsonl``: close paraphrases of an example score 0.6-0.9, while the
ordinary questions to the same creator peak at 0.47 against the blocked-topic examples.
"""

INJECTION_THRESHOLD = 0.43
"""Cosine similarity to the nearest injection exemplar at or above which a message is an attack.

Chosen on ``eval/policy_set.jsonl`` (334 items): the ordinary fan messages peak at 0.30 (grounded
questions), 0.34 (blocked-topic questions), 0.36 (commitment bait) and 0.37 (never-claim bait: "Do
you have grandkids?" against the grandmother role-play exemplar), while injections written as plain
sentences score 0.45-0.84. Long messages that bury an attack in other text score lower (their
mean-pooled embedding is diluted); the regexes and cross-lingual stems in ``injection.py`` are
there for those.
"""

EMBEDDING_DIM = 384
"""Width of the inference service's embeddings (all-MiniLM-L6-v2), as memory's ``vector(384)``."""

EmbedFn = Callable[[Sequence[str]], Awaitable[Sequence[Sequence[float]]]]
"""Embeds texts into unit vectors (the inference service's ``Embed``)."""

FloatMatrix = npt.NDArray[np.float32]
FloatVector = npt.NDArray[np.float32]


class InvalidEmbedding(ValueError):
    """A caller-supplied message embedding is not one the embedder could have produced."""


def check_embedding(values: Sequence[float]) -> FloatVector:
    """Validate a message embedding computed by the caller.

    Returns:
        The embedding as a float32 vector.

    Raises:
        InvalidEmbedding: It does not have ``EMBEDDING_DIM`` values, has a NaN or an infinity, or
            is the zero vector (the embedder only produces unit vectors).
    """
    vec = np.asarray(values, dtype=np.float32)
    if vec.ndim != 1 or vec.shape[0] != EMBEDDING_DIM:
        raise InvalidEmbedding(f"embedding must have {EMBEDDING_DIM} values, got {vec.size}")
    if not np.isfinite(vec).all():
        raise InvalidEmbedding("embedding must contain only finite values")
    if not vec.any():
        raise InvalidEmbedding("embedding must not be the zero vector")
    return vec


@dataclass(frozen=True)
class TopicVectors:
    """The embedded examples of one controls version.

    Attributes:
        topics: Topic name of each row of ``matrix``.
        matrix: One unit vector per example, ``[n_examples, dim]``.
    """

    topics: tuple[str, ...]
    matrix: FloatMatrix

    def scores(self, message: Sequence[float] | FloatVector) -> dict[str, float]:
        """Highest similarity of ``message`` to each topic's examples."""
        if not self.topics:
            return {}
        vec = np.asarray(message, dtype=np.float32)
        sims = self.matrix @ vec
        best: dict[str, float] = {}
        for topic, sim in zip(self.topics, sims.tolist(), strict=True):
            if sim > best.get(topic, -2.0):
                best[topic] = float(sim)
        return best


def topics_over(scores: dict[str, float], threshold: float = SIMILARITY_THRESHOLD) -> dict[str, float]:
    """The topics whose best example similarity reaches ``threshold``."""
    return {topic: score for topic, score in scores.items() if score >= threshold}


@dataclass(frozen=True)
class InjectionMatch:
    """The injection exemplar nearest to a message.

    Attributes:
        similarity: Cosine similarity of the message to it.
        exemplar: The exemplar's text.
    """

    similarity: float
    exemplar: str


class InjectionBank:
    """The built-in injection exemplars (``injection_bank.py``), embedded once per process.

    Args:
        embed: The embedding function (the same one the topic examples use).
        exemplars: The exemplar texts.
    """

    def __init__(self, embed: EmbedFn, exemplars: Sequence[str] = EXEMPLARS) -> None:
        self._embed = embed
        self._exemplars = tuple(exemplars)
        self._matrix: FloatMatrix | None = None
        self._lock = asyncio.Lock()

    async def nearest(self, message: FloatVector) -> InjectionMatch | None:
        """The exemplar closest to ``message``; ``None`` when the bank is empty or of another width.

        The first call embeds the bank (one batch); every later call is one small matrix product.
        """
        matrix = await self._load()
        if matrix.shape[0] == 0 or matrix.shape[1] != message.shape[0]:
            return None
        sims = matrix @ message
        best = int(np.argmax(sims))
        return InjectionMatch(float(sims[best]), self._exemplars[best])

    async def _load(self) -> FloatMatrix:
        if self._matrix is not None:
            return self._matrix
        async with self._lock:
            if self._matrix is None:
                rows = await self._embed(self._exemplars) if self._exemplars else []
                self._matrix = np.asarray(rows, dtype=np.float32).reshape(len(self._exemplars), -1)
            return self._matrix


class TopicIndex:
    """Caches example vectors per (creator, controls version).

    Args:
        embed: The embedding function.
        capacity: Controls versions kept (least recently used ones are dropped).
    """

    def __init__(self, embed: EmbedFn, capacity: int = 256) -> None:
        self._embed = embed
        self._capacity = capacity
        self._cache: OrderedDict[tuple[str, int], tuple[Controls, TopicVectors]] = OrderedDict()
        self._lock = threading.Lock()
        self.injections = InjectionBank(embed)

    async def embed_message(self, message: str) -> FloatVector:
        """The message's embedding, for callers that did not receive one."""
        [vec] = await self._embed([message])
        return np.asarray(vec, dtype=np.float32)

    async def scores(
        self, controls: Controls, message: str, embedding: FloatVector | None = None
    ) -> dict[str, float]:
        """Best similarity of ``message`` to each blocked topic that has examples.

        Args:
            controls: The creator's controls (their topics' examples).
            message: The fan's message.
            embedding: The message's embedding when the caller already has it (the gateway
                computes it for retrieval anyway, see :func:`check_embedding`); ``None`` = embed
                the message here.

        Returns:
            An empty dict when no topic has examples (and then nothing is embedded).

        Raises:
            InvalidEmbedding: ``embedding`` is not as wide as the example vectors.
        """
        if not any(t.examples for t in controls.blocked_topics):
            return {}
        vectors = await self._vectors(controls)
        if embedding is None:
            return vectors.scores(await self.embed_message(message))
        if embedding.shape != (vectors.matrix.shape[1],):
            raise InvalidEmbedding(
                f"embedding has {embedding.size} values, the topic examples {vectors.matrix.shape[1]}"
            )
        return vectors.scores(embedding)

    async def _vectors(self, controls: Controls) -> TopicVectors:
        key = (controls.creator_id, controls.version)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == controls:
                self._cache.move_to_end(key)
                return hit[1]
        topics = tuple(t.name for t in controls.blocked_topics for _ in t.examples)
        texts = [e for t in controls.blocked_topics for e in t.examples]
        rows = await self._embed(texts)
        vectors = TopicVectors(topics, np.asarray(rows, dtype=np.float32).reshape(len(texts), -1))
        with self._lock:
            self._cache[key] = (controls, vectors)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return vectors
