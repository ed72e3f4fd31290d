"""Blocked topics by meaning: a fan message close to one of a topic's examples is on that topic.

Keywords catch the words a creator thought of; the examples catch the paraphrases they did not
("Are you a mum?" for a topic whose keywords are "kids" and "children"). Example vectors are
computed once per controls version and cached; a check costs one embedding of the message (none
when the caller sends the one it computed for retrieval) and one small matrix product.

Three or four examples only reach the paraphrases close to them, so each topic also gets a small
learned classifier over the same embedding (``classifier.py``): trained, when a controls version is
first checked, on the topic's examples, description and keywords plus the built-in fan questions
about the subjects the topic names (``topic_bank.SUBJECT_EXAMPLES``), against a built-in bank of
ordinary fan questions and the other topics' texts; its threshold is chosen by cross-validation.
It is cached with the example vectors, so a check still costs one matrix product per topic.

The same message embedding is compared with a built-in bank of generic prompt-injection exemplars
(``injection_bank.py``, :class:`InjectionBank`), embedded once per process by the same embedder, so
paraphrased attacks the regexes of ``injection.py`` do not spell out are caught by meaning; a
classifier trained on those exemplars against the ordinary and sensitive-subject banks catches
the ones between exemplars.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.policy.core.classifier import LinearClassifier, train
from services.policy.core.controls import BlockedTopic, Controls
from services.policy.core.injection_bank import EXEMPLARS
from services.policy.core.lexicon import related_concepts
from services.policy.core.topic_bank import BENIGN_META, ORDINARY_QUESTIONS, SUBJECT_EXAMPLES

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

LEARNED_SIMILARITY_FLOOR = 0.4
"""Cosine similarity to the nearest of a topic's training texts below which its classifier is ignored.

A linear model extrapolates: a message unlike anything it was trained on (a baking question asked
"in May") can land on the wrong side of the plane. Chosen on ``eval/policy_set.jsonl``: the
blocked-topic questions the classifier catches lie at 0.4 or more from a training text, the
ordinary questions it wrongly scored above its threshold at 0.36-0.39.
"""

NEGATIVE_TEXTS: tuple[str, ...] = ORDINARY_QUESTIONS + BENIGN_META
"""What every topic classifier learns to leave alone."""

INJECTION_NEGATIVES: tuple[str, ...] = (
    ORDINARY_QUESTIONS + BENIGN_META + tuple(t for texts in SUBJECT_EXAMPLES.values() for t in texts)
)
"""What the injection classifier learns to leave alone (a blocked topic is not an attack)."""

EMBED_BATCH = 128
"""Texts per embedding request when a bank is embedded (the inference service takes at most 256)."""

INJECTION_VETO_MARGIN = 0.3
"""How far below its threshold the injection classifier may score a message that is still refused
for being close to an exemplar (:data:`INJECTION_THRESHOLD`).

Closeness to one exemplar is weak evidence on its own ("Do you speak Spanish?" lies at 0.44 from
a Spanish override exemplar); the classifier, which has seen the ordinary questions, vetoes such
a match when it is sure. Chosen on ``eval/policy_set.jsonl``: attacks caught by closeness alone
score at least -0.12 there, the ordinary messages close to an exemplar -0.4 to -1.0.
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


def topic_training_texts(topic: BlockedTopic) -> tuple[str, ...]:
    """The texts a topic's classifier learns as positives.

    The creator's examples, the description, each keyword asked about, and the built-in questions
    on every subject the topic names (see :func:`lexicon.related_concepts`), without repeats.
    """
    texts = [*topic.examples]
    if topic.description:
        texts.append(topic.description)
    texts.extend(f"what about your {k}?" for k in topic.keywords)
    for concept in related_concepts(topic):
        texts.extend(SUBJECT_EXAMPLES.get(concept.name, ()))
    return tuple(dict.fromkeys(texts))


@dataclass(frozen=True)
class LearnedTopic:
    """One topic's trained classifier.

    Attributes:
        name: The topic's name.
        classifier: The linear model over message embeddings.
        positives: Its positive training vectors, for :data:`LEARNED_SIMILARITY_FLOOR`.
    """

    name: str
    classifier: LinearClassifier
    positives: FloatMatrix

    def margin(self, vec: FloatVector) -> float | None:
        """The classifier's margin (>= 0: on the topic), or ``None`` when it does not apply."""
        if float((self.positives @ vec).max()) < LEARNED_SIMILARITY_FLOOR:
            return None
        return self.classifier.margin(vec)


def train_topics(
    topics: Sequence[BlockedTopic], embedded: Mapping[str, FloatVector], negatives: FloatMatrix
) -> tuple[LearnedTopic, ...]:
    """Train one classifier per topic (pure; a few milliseconds each).

    Args:
        topics: The creator's blocked topics.
        embedded: The embedding of every text :func:`topic_training_texts` gives for them.
        negatives: Embeddings of :data:`NEGATIVE_TEXTS`.

    Returns:
        One classifier per topic with any training text; the other topics' texts are negatives
        too, so each learns its own subject rather than "a personal question".
    """
    texts = {t.name: topic_training_texts(t) for t in topics}
    learned = []
    for topic in topics:
        own = texts[topic.name]
        if not own:
            continue
        others = [x for name, xs in texts.items() if name != topic.name for x in xs if x not in own]
        positives = np.stack([embedded[x] for x in own])
        negs = np.vstack([negatives, *([np.stack([embedded[x] for x in others])] if others else [])])
        learned.append(LearnedTopic(topic.name, train(positives, negs), positives))
    return tuple(learned)


@dataclass(frozen=True)
class TopicModel:
    """Everything one controls version needs to place a message on its blocked topics.

    Attributes:
        vectors: The creator's examples, for plain similarity.
        learned: One trained classifier per topic.
    """

    vectors: TopicVectors
    learned: tuple[LearnedTopic, ...] = ()

    def learned_topics(self, message: FloatVector) -> dict[str, float]:
        """The topics whose classifier places ``message`` on them, with its margin."""
        out = {}
        for topic in self.learned:
            margin = topic.margin(message)
            if margin is not None and margin >= 0:
                out[topic.name] = margin
        return out


@dataclass(frozen=True)
class TopicScores:
    """Where a message lies relative to a creator's blocked topics.

    Attributes:
        similarity: Highest similarity to each topic's examples.
        learned: Topics the learned classifiers place the message on, with their margin.
    """

    similarity: dict[str, float]
    learned: dict[str, float]


NO_TOPIC_SCORES = TopicScores({}, {})


async def embed_all(embed: EmbedFn, texts: Sequence[str]) -> FloatMatrix:
    """Embed ``texts`` in requests of :data:`EMBED_BATCH`; ``[len(texts), dim]``."""
    rows: list[Sequence[float]] = []
    for start in range(0, len(texts), EMBED_BATCH):
        rows.extend(await embed(texts[start : start + EMBED_BATCH]))
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)


def topics_over(scores: dict[str, float], threshold: float = SIMILARITY_THRESHOLD) -> dict[str, float]:
    """The topics whose best example similarity reaches ``threshold``."""
    return {topic: score for topic, score in scores.items() if score >= threshold}


@dataclass(frozen=True)
class InjectionMatch:
    """The injection exemplar nearest to a message.

    Attributes:
        similarity: Cosine similarity of the message to it.
        exemplar: The exemplar's text.
        learned_margin: The injection classifier's margin on the message (>= 0: an attack);
            ``None`` without a classifier.
    """

    similarity: float
    exemplar: str
    learned_margin: float | None = None


class InjectionBank:
    """The built-in injection exemplars (``injection_bank.py``), embedded once per process.

    Args:
        embed: The embedding function (the same one the topic examples use).
        exemplars: The exemplar texts.
        negatives: Texts that are not attacks; with any, a classifier is trained on the exemplars
            against them (see ``classifier.py``), otherwise only the nearest exemplar is reported.
    """

    def __init__(
        self,
        embed: EmbedFn,
        exemplars: Sequence[str] = EXEMPLARS,
        negatives: Sequence[str] = INJECTION_NEGATIVES,
    ) -> None:
        self._embed = embed
        self._exemplars = tuple(exemplars)
        self._negatives = tuple(negatives)
        self._matrix: FloatMatrix | None = None
        self._classifier: LinearClassifier | None = None
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
        margin = self._classifier.margin(message) if self._classifier is not None else None
        return InjectionMatch(float(sims[best]), self._exemplars[best], margin)

    async def _load(self) -> FloatMatrix:
        if self._matrix is not None:
            return self._matrix
        async with self._lock:
            if self._matrix is None:
                rows = await embed_all(self._embed, self._exemplars + self._negatives)
                matrix, negatives = rows[: len(self._exemplars)], rows[len(self._exemplars) :]
                if len(matrix) and len(negatives):
                    self._classifier = await asyncio.to_thread(train, matrix, negatives)
                self._matrix = matrix
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
        self._cache: OrderedDict[tuple[str, int], tuple[Controls, TopicModel]] = OrderedDict()
        self._lock = threading.Lock()
        self._negatives: FloatMatrix | None = None
        self._training: dict[tuple[str, int], tuple[Controls, asyncio.Future[TopicModel]]] = {}
        self._negatives_lock = asyncio.Lock()
        self.injections = InjectionBank(embed)

    async def warm(self, controls: Controls | None = None) -> None:
        """Embed the built-in banks and train ``controls``' classifiers now, not on a fan's turn."""
        await self.injections.nearest(np.zeros(EMBEDDING_DIM, dtype=np.float32))
        if controls is not None and controls.blocked_topics:
            await self._model(controls)

    async def embed_message(self, message: str) -> FloatVector:
        """The message's embedding, for callers that did not receive one."""
        [vec] = await self._embed([message])
        return np.asarray(vec, dtype=np.float32)

    async def scores(
        self, controls: Controls, message: str, embedding: FloatVector | None = None
    ) -> TopicScores:
        """Where ``message`` lies relative to each blocked topic.

        Args:
            controls: The creator's controls (their topics' examples).
            message: The fan's message.
            embedding: The message's embedding when the caller already has it (the gateway
                computes it for retrieval anyway, see :func:`check_embedding`); ``None`` = embed
                the message here.

        Returns:
            :data:`NO_TOPIC_SCORES` when there are no blocked topics (and then nothing is embedded).

        Raises:
            InvalidEmbedding: ``embedding`` is not as wide as the topic vectors.
        """
        if not controls.blocked_topics:
            return NO_TOPIC_SCORES
        model = await self._model(controls)
        if embedding is None:
            embedding = await self.embed_message(message)
        width = model.learned[0].positives.shape[1] if model.learned else model.vectors.matrix.shape[1]
        if embedding.shape != (width,):
            raise InvalidEmbedding(f"embedding has {embedding.size} values, the topic vectors {width}")
        return TopicScores(model.vectors.scores(embedding), model.learned_topics(embedding))

    async def _negative_matrix(self) -> FloatMatrix:
        if self._negatives is None:
            async with self._negatives_lock:
                if self._negatives is None:
                    self._negatives = await embed_all(self._embed, NEGATIVE_TEXTS)
        return self._negatives

    async def _model(self, controls: Controls) -> TopicModel:
        key = (controls.creator_id, controls.version)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == controls:
                self._cache.move_to_end(key)
                return hit[1]
        # A controls update starts the training in the background; a message arriving meanwhile
        # waits for that training instead of starting a second one.
        pending = self._training.get(key)
        if pending is not None and pending[0] == controls and not pending[1].done():
            return await asyncio.shield(pending[1])
        task = asyncio.ensure_future(self._train(controls))
        self._training[key] = (controls, task)
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._training.get(key, (None, None))[1] is task:
                del self._training[key]

    async def _train(self, controls: Controls) -> TopicModel:
        key = (controls.creator_id, controls.version)
        topics = tuple(t.name for t in controls.blocked_topics for _ in t.examples)
        examples = [e for t in controls.blocked_topics for e in t.examples]
        training = [x for t in controls.blocked_topics for x in topic_training_texts(t)]
        texts = list(dict.fromkeys(examples + training))
        rows = await embed_all(self._embed, texts)
        embedded = dict(zip(texts, rows, strict=True))
        width = rows.shape[1] if len(texts) else EMBEDDING_DIM
        vectors = TopicVectors(
            topics,
            np.stack([embedded[e] for e in examples]) if examples else np.zeros((0, width), np.float32),
        )
        negatives = await self._negative_matrix()
        learned: tuple[LearnedTopic, ...] = ()
        if len(negatives) and negatives.shape[1] == width:
            learned = await asyncio.to_thread(train_topics, controls.blocked_topics, embedded, negatives)
        model = TopicModel(vectors, learned)
        with self._lock:
            self._cache[key] = (controls, model)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return model
