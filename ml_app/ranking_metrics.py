"""Per-impression ranking metrics, computed as MIND's official ``evaluate.py`` does.

The official scorer (msnews.github.io) turns a submission's ranks into scores ``1 / rank``
and, for each impression, computes sklearn's ``roc_auc_score``, an MRR and nDCG@5/@10 with
``argsort(score)[::-1]``; the reported figure is the mean over impressions. These functions
take labels (1 clicked, 0 not) and scores in the impression's order and return the same
numbers, in pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of ``values`` (ascending); tied values share their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = (start + end) / 2.0 + 1.0
        for k in range(start, end + 1):
            ranks[order[k]] = average
        start = end + 1
    return ranks


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve, equal to ``sklearn.metrics.roc_auc_score``.

    Mann-Whitney form: ties between a clicked and a non-clicked candidate count one half.
    Raises ``ValueError`` when ``labels`` hold a single class (sklearn does too).
    """
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs at least one clicked and one non-clicked candidate")
    ranks = _ranks(scores)
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def _order(scores: Sequence[float]) -> list[int]:
    # numpy's argsort(score)[::-1]: best first. Scores computed from ranks never tie; for
    # tied raw scores numpy's (unstable) quicksort order is not reproducible anyway, so
    # ties fall back to the later position first, as a stable ascending sort reversed does.
    return sorted(range(len(scores)), key=lambda i: (scores[i], i), reverse=True)


def dcg(labels: Sequence[int], scores: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of the top ``k``: gains ``2^y - 1``, discount ``log2(r+1)``."""
    top = _order(scores)[:k]
    return sum((2.0 ** labels[i] - 1.0) / math.log2(r + 2) for r, i in enumerate(top))


def ndcg(labels: Sequence[int], scores: Sequence[float], k: int) -> float:
    """DCG@k over the ideal DCG@k. Raises ``ValueError`` with no clicked candidate."""
    best = dcg(labels, [float(y) for y in labels], k)
    if best == 0:
        raise ValueError("nDCG needs at least one clicked candidate")
    return dcg(labels, scores, k) / best


def mrr(labels: Sequence[int], scores: Sequence[float]) -> float:
    """MIND's MRR: ``sum(y_sorted / rank) / sum(y)`` (every click counts, not only the first)."""
    clicked = sum(labels)
    if clicked == 0:
        raise ValueError("MRR needs at least one clicked candidate")
    top = _order(scores)
    return sum(labels[i] / (r + 1) for r, i in enumerate(top)) / clicked


def scores_from_ranks(ranks: Sequence[int]) -> list[float]:
    """The official scorer's scores for a submission line: ``1 / rank``."""
    return [1.0 / r for r in ranks]


# Top-N metrics over a full ranking (Gorse's benchmark, MovieLens): a ranked list of item ids
# against the set of relevant (held-out) ids, binary relevance.


def precision_at_k(ranked: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """Hits in the top ``k`` over ``k`` (Gorse divides by ``k`` even when fewer are relevant)."""
    return sum(1 for item in ranked[:k] if item in relevant) / k


def ndcg_at_k(ranked: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """Binary nDCG@k: DCG of the hits over the DCG of ``min(|relevant|, k)`` hits at the top."""
    if not relevant:
        raise ValueError("nDCG needs at least one relevant item")
    gain = sum(1.0 / math.log2(r + 2) for r, item in enumerate(ranked[:k]) if item in relevant)
    best = sum(1.0 / math.log2(r + 2) for r in range(min(len(relevant), k)))
    return gain / best


def hit_rate_at_k(ranked: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """HR@k: 1 when at least one relevant item is in the top ``k``, else 0."""
    return 1.0 if any(item in relevant for item in ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: set[str] | frozenset[str]) -> float:
    """1 / rank of the first relevant item (0 when none is ranked); its mean is the MRR."""
    for r, item in enumerate(ranked):
        if item in relevant:
            return 1.0 / (r + 1)
    return 0.0
