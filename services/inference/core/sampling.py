"""Sampling parameters and next-token selection (greedy, temperature, top-k, top-p, repetition penalty).

Everything works on a batch of logits rows (:func:`sample_batch`) so the continuous-batching engine
samples a whole decode step at once; :func:`sample_next` is the one-row case. Each row draws from its
own ``numpy.random.Generator``, so a seeded request produces the same tokens whether it runs alone or
next to others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens for one request. Invalid values raise ``ValueError`` on construction."""

    max_tokens: int = 256
    """Most tokens to generate (>= 1); reaching it finishes with reason ``length``."""
    temperature: float = 1.0
    """Softmax temperature (>= 0); 0 means greedy (argmax)."""
    top_k: int = 0
    """Keep only the k most likely tokens (0 disables)."""
    top_p: float = 1.0
    """Keep the smallest set of tokens whose probability mass reaches top_p, in (0, 1] (1 disables)."""
    repetition_penalty: float = 1.0
    """> 0; values above 1 discourage tokens already in the prompt or output (HF/CTRL rule)."""
    seed: int | None = None
    """Seed of this request's random generator; ``None`` draws from the OS."""
    stop: tuple[str, ...] = ()
    """Strings that end generation; the stop string itself is not emitted."""
    stop_token_ids: tuple[int, ...] = ()
    """Extra token ids that end generation (the model's EOS ids always do)."""

    def __post_init__(self) -> None:
        # Normalise sequences to tuples so lists from callers stay hashable and immutable.
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be finite and >= 0, got {self.temperature!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 disables), got {self.top_k!r}")
        if not (0 < self.top_p <= 1):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise ValueError(f"repetition_penalty must be finite and > 0, got {self.repetition_penalty!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0
        ):
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise ValueError(f"stop strings must be non-empty strings, got {s!r}")
        for t in self.stop_token_ids:
            if isinstance(t, bool) or not isinstance(t, int) or t < 0:
                raise ValueError(f"stop_token_ids must be non-negative integers, got {t!r}")

    @property
    def greedy(self) -> bool:
        """Whether tokens are chosen by argmax."""
        return self.temperature == 0.0


def make_rng(params: SamplingParams) -> np.random.Generator:
    """The random generator for one request (seeded when ``params.seed`` is set)."""
    return np.random.default_rng(params.seed)


def apply_repetition_penalty(logits: np.ndarray, token_ids: Sequence[int], penalty: float) -> np.ndarray:
    """HF/CTRL repetition penalty on one row: divide positive, multiply negative logits of seen tokens.

    Returns a new array; ``logits`` is not modified.
    """
    out: np.ndarray = np.array(logits, dtype=np.float32, copy=True)
    if penalty == 1.0 or len(token_ids) == 0:
        return out
    seen = np.unique(np.asarray(token_ids, dtype=np.int64))
    seen = seen[(seen >= 0) & (seen < out.shape[-1])]
    vals = out[seen]
    out[seen] = np.where(vals > 0, vals / penalty, vals * penalty)
    return out


def sample_batch(
    logits: np.ndarray,
    token_ids: Sequence[Sequence[int]],
    params: Sequence[SamplingParams],
    rngs: Sequence[np.random.Generator],
) -> np.ndarray:
    """Pick the next token of every row.

    Args:
        logits: [B, V] next-token logits.
        token_ids: per row, the prompt and generated ids so far (for the repetition penalty).
        params: per row sampling parameters.
        rngs: per row random generators (unused for greedy rows; never shared between rows).

    Returns:
        [B] int64 token ids.
    """
    scores = np.asarray(logits, dtype=np.float32)
    if scores.ndim != 2:
        raise ValueError(f"logits must be [B, V], got shape {scores.shape}")
    batch, vocab = scores.shape
    if not (len(token_ids) == len(params) == len(rngs) == batch):
        raise ValueError("token_ids, params and rngs must have one entry per logits row")
    if any(p.repetition_penalty != 1.0 for p in params):
        scores = np.stack(
            [
                apply_repetition_penalty(scores[b], token_ids[b], params[b].repetition_penalty)
                for b in range(batch)
            ]
        )

    out: np.ndarray = np.argmax(scores, axis=-1).astype(np.int64)  # greedy rows are done; ties -> lowest id
    rows = np.array([b for b in range(batch) if not params[b].greedy], dtype=np.int64)
    if rows.size == 0:
        return out

    temps = np.array([params[b].temperature for b in rows], dtype=np.float32)[:, None]
    scaled = scores[rows] / temps
    # One descending sort serves top-k and top-p; filtered entries become -inf.
    order = np.argsort(-scaled, axis=-1, kind="stable")
    sorted_scores = np.take_along_axis(scaled, order, axis=-1)
    rank = np.arange(vocab)[None, :]
    top_k = np.array([params[b].top_k or vocab for b in rows])[:, None]
    sorted_scores = np.where(rank < top_k, sorted_scores, -np.inf)
    probs = _softmax(sorted_scores)
    top_p = np.array([params[b].top_p for b in rows], dtype=np.float32)[:, None]
    # Keep a token while the mass before it is below top_p; the first token is always kept.
    mass_before = np.cumsum(probs, axis=-1) - probs
    probs = np.where((mass_before < top_p) | (rank == 0), probs, 0.0)
    probs /= probs.sum(axis=-1, keepdims=True)

    cdf = np.cumsum(probs, axis=-1)
    for i, b in enumerate(rows):
        u = rngs[b].random() * cdf[i, -1]
        pick = min(int(np.searchsorted(cdf[i], u, side="right")), vocab - 1)
        # Guard against landing on a zeroed tail entry through float rounding at the top of the CDF.
        while probs[i, pick] == 0.0 and pick > 0:
            pick -= 1
        out[b] = order[i, pick]
    return out


def sample_next(
    logits: np.ndarray,
    token_ids: Sequence[int],
    params: SamplingParams,
    rng: np.random.Generator,
) -> int:
    """Pick the next token from one row of logits ([V]); see :func:`sample_batch`."""
    return int(sample_batch(np.asarray(logits)[None, :], [token_ids], [params], [rng])[0])


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(shifted)
    result: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return result
