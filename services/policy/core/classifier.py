"""A small learned classifier over message embeddings: which messages belong to a class.

Zero-shot classification with sentence embeddings compares a message with a few descriptions of
each class; that works for paraphrases close to the descriptions and misses the long tail (slang,
emoji, indirect questions). With a few dozen example texts per class and a bank of ordinary
messages as negatives, a linear model on the same embeddings separates the two far better: the
weights learn which directions of the embedding space mean "about this subject" rather than
"close to one of these sentences".

The model is class-weighted ridge regression (targets +1/-1, each class weighing as much as the
other in total), solved in closed form: no iterations, a few milliseconds for a few hundred
examples of 384 dimensions, so it is trained when a creator's controls change and cached with
them. Its decision threshold is chosen by stratified cross-validation on the training texts:
each example is scored by a model that did not see it, and the threshold is the one that makes
the fewest weighted mistakes on those scores, a false positive (an ordinary message refused)
costing :data:`FALSE_POSITIVE_COST` misses, and never below :data:`MIN_THRESHOLD`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]
FloatVector = npt.NDArray[np.float32]

RIDGE = 0.5
"""L2 penalty on the weights (not the bias); the embedding is unit length, so this is scale-free."""

FOLDS = 5
"""Cross-validation folds for choosing the threshold."""

FALSE_POSITIVE_COST = 4.0
"""How many missed positives one refused ordinary message is worth when choosing the threshold."""

MIN_THRESHOLD = 0.2
"""Lowest decision threshold on the ridge score (0 is halfway between the two targets).

The cross-validated threshold often lands at or below 0: the built-in banks separate well, while
a creator's fans ask ordinary questions the banks never saw. On ``eval/policy_set.jsonl`` and on
synthetic checks the blocked-topic recall is the same for floors from 0 to 0.3, and ordinary
questions from another domain than the banks score up to about 0.1 above 0.
"""


@dataclass(frozen=True)
class LinearClassifier:
    """A trained linear decision over unit embeddings.

    Attributes:
        weights: One weight per embedding dimension.
        bias: Added to the weighted sum.
        threshold: A score at or above it is a positive.
        recall: Share of the training positives at or above the threshold, scored out of fold.
        false_positive_rate: Share of the training negatives at or above it, scored out of fold.
    """

    weights: FloatVector
    bias: float
    threshold: float
    recall: float
    false_positive_rate: float

    def score(self, vec: FloatVector) -> float:
        """The ridge score of one embedding (about +1 for positives, -1 for negatives)."""
        return float(vec @ self.weights) + self.bias

    def margin(self, vec: FloatVector) -> float:
        """How far the embedding's score lies above the threshold (>= 0: a positive)."""
        return self.score(vec) - self.threshold


def fit_ridge(
    positives: FloatMatrix, negatives: FloatMatrix, ridge: float = RIDGE
) -> tuple[FloatVector, float]:
    """Class-weighted ridge regression of +1 (positives) / -1 (negatives) on the embeddings.

    Returns:
        The weights and the bias.

    Raises:
        ValueError: Either class is empty, or the widths differ.
    """
    if positives.shape[0] == 0 or negatives.shape[0] == 0:
        raise ValueError("both classes need at least one example")
    if positives.shape[1] != negatives.shape[1]:
        raise ValueError(f"widths differ: {positives.shape[1]} and {negatives.shape[1]}")
    x = np.vstack([positives, negatives]).astype(np.float64)
    y = np.concatenate([np.ones(positives.shape[0]), -np.ones(negatives.shape[0])])
    # Each class weighs half in total, so a bank of many negatives does not drown a few positives.
    w = np.concatenate(
        [
            np.full(positives.shape[0], 0.5 / positives.shape[0]),
            np.full(negatives.shape[0], 0.5 / negatives.shape[0]),
        ]
    )
    xb = np.hstack([x, np.ones((x.shape[0], 1))])
    gram = (xb * w[:, None]).T @ xb
    penalty = np.full(xb.shape[1], ridge / x.shape[0])
    penalty[-1] = 0.0  # the bias is not shrunk
    gram[np.diag_indices_from(gram)] += penalty
    beta = np.linalg.solve(gram, (xb * w[:, None]).T @ y)
    return beta[:-1].astype(np.float32), float(beta[-1])


def _folds(n: int, folds: int, rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    order = rng.permutation(n)
    return [order[i::folds] for i in range(min(folds, n))]


def out_of_fold_scores(
    positives: FloatMatrix, negatives: FloatMatrix, folds: int = FOLDS, ridge: float = RIDGE, seed: int = 0
) -> tuple[FloatVector, FloatVector]:
    """Score every example with a model trained on the other folds (stratified by class).

    Returns:
        The positives' scores and the negatives' scores, in input order.
    """
    rng = np.random.default_rng(seed)
    pos_folds, neg_folds = _folds(len(positives), folds, rng), _folds(len(negatives), folds, rng)
    pos_scores = np.zeros(len(positives), dtype=np.float32)
    neg_scores = np.zeros(len(negatives), dtype=np.float32)
    for k in range(max(len(pos_folds), len(neg_folds))):
        held_pos = pos_folds[k] if k < len(pos_folds) else np.zeros(0, dtype=np.int64)
        held_neg = neg_folds[k] if k < len(neg_folds) else np.zeros(0, dtype=np.int64)
        keep_pos = np.setdiff1d(np.arange(len(positives)), held_pos)
        keep_neg = np.setdiff1d(np.arange(len(negatives)), held_neg)
        if len(keep_pos) == 0 or len(keep_neg) == 0:
            continue  # a class of one example: its only fold cannot be held out
        weights, bias = fit_ridge(positives[keep_pos], negatives[keep_neg], ridge)
        pos_scores[held_pos] = positives[held_pos] @ weights + bias
        neg_scores[held_neg] = negatives[held_neg] @ weights + bias
    return pos_scores, neg_scores


def choose_threshold(
    pos_scores: FloatVector,
    neg_scores: FloatVector,
    fp_cost: float = FALSE_POSITIVE_COST,
    floor: float = MIN_THRESHOLD,
) -> float:
    """The threshold making the fewest cost-weighted mistakes on held-out scores.

    Each class's mistakes count as a share of that class (a miss costs ``1 / len(pos)``, a false
    positive ``fp_cost / len(neg)``); among equally good thresholds the one midway between the
    neighbouring scores is taken, and the result is never below ``floor``.
    """
    candidates = np.unique(np.concatenate([pos_scores, neg_scores, [floor]]))
    best, best_cost = floor, float("inf")
    for t in candidates:
        if t < floor:
            continue
        misses = float(np.mean(pos_scores < t)) if len(pos_scores) else 0.0
        fps = float(np.mean(neg_scores >= t)) if len(neg_scores) else 0.0
        cost = misses + fp_cost * fps
        if cost < best_cost - 1e-12:
            best, best_cost = float(t), cost
    # The best threshold sits on an example's score; halfway down to the next negative leaves slack
    # for positives scored a little lower than any seen, without admitting a seen negative.
    below = neg_scores[neg_scores < best]
    if len(below):
        best = max(floor, (best + float(below.max())) / 2)
    return best


def train(
    positives: FloatMatrix,
    negatives: FloatMatrix,
    *,
    ridge: float = RIDGE,
    folds: int = FOLDS,
    fp_cost: float = FALSE_POSITIVE_COST,
    floor: float = MIN_THRESHOLD,
) -> LinearClassifier:
    """Fit on all examples with a threshold chosen by cross-validation.

    Args:
        positives: Embeddings of texts of the class, ``[n_pos, dim]``.
        negatives: Embeddings of texts outside it, ``[n_neg, dim]``.
        ridge: See :data:`RIDGE`.
        folds: See :data:`FOLDS`.
        fp_cost: See :data:`FALSE_POSITIVE_COST`.
        floor: See :data:`MIN_THRESHOLD`.

    Raises:
        ValueError: Either class is empty, or the widths differ.
    """
    weights, bias = fit_ridge(positives, negatives, ridge)
    pos_scores, neg_scores = out_of_fold_scores(positives, negatives, folds, ridge)
    threshold = choose_threshold(pos_scores, neg_scores, fp_cost, floor)
    return LinearClassifier(
        weights=weights,
        bias=bias,
        threshold=threshold,
        recall=float(np.mean(pos_scores >= threshold)),
        false_positive_rate=float(np.mean(neg_scores >= threshold)),
    )
