"""Ranking metrics as MIND's evaluate.py computes them, against values computed by hand."""

from __future__ import annotations

import math

import pytest

from ml_app import ranking_metrics


def test_auc_counts_a_tie_between_a_click_and_a_non_click_as_one_half():
    # Pairs (clicked, not clicked): (.8,.8) tie = 1/2, (.8,.1) = 1, (.3,.8) = 0, (.3,.1) = 1.
    assert ranking_metrics.auc([1, 0, 1, 0], [0.8, 0.8, 0.3, 0.1]) == pytest.approx(2.5 / 4)


def test_auc_averages_the_ranks_of_ties_across_several_values():
    # Ascending average ranks: .1 -> 1, .5 x3 -> 3, .9 -> 5; clicked: 3 + 5 = 8.
    # (8 - 2*3/2) / (2*3) = 5/6.
    assert ranking_metrics.auc([0, 1, 0, 0, 1], [0.1, 0.5, 0.5, 0.5, 0.9]) == pytest.approx(5 / 6)


def test_auc_is_one_for_a_perfect_order_and_zero_for_a_reversed_one():
    assert ranking_metrics.auc([1, 0, 0], [3.0, 2.0, 1.0]) == 1.0
    assert ranking_metrics.auc([1, 0, 0], [1.0, 2.0, 3.0]) == 0.0


def test_auc_refuses_a_single_class():
    with pytest.raises(ValueError):
        ranking_metrics.auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError):
        ranking_metrics.auc([0, 0], [0.1, 0.2])


def test_mrr_sums_every_click_over_its_rank_and_divides_by_the_clicks():
    # Order by score: labels 0, 1, 0, 1 -> (1/2 + 1/4) / 2.
    assert ranking_metrics.mrr([0, 1, 0, 1], [4.0, 3.0, 2.0, 1.0]) == pytest.approx(0.375)
    assert ranking_metrics.mrr([1, 0], [2.0, 1.0]) == 1.0


def test_ndcg_uses_exponential_gains_and_log2_discounts_over_the_ideal():
    labels, scores = [0, 1, 0, 1], [4.0, 3.0, 2.0, 1.0]
    # Clicks at ranks 2 and 4: 1/log2(3) + 1/log2(5); ideal: ranks 1 and 2: 1 + 1/log2(3).
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ranking_metrics.ndcg(labels, scores, 5) == pytest.approx(expected)
    assert ranking_metrics.ndcg(labels, scores, 10) == pytest.approx(expected)
    # Top 2: only the click at rank 2 counts; the ideal top 2 has both.
    assert ranking_metrics.ndcg(labels, scores, 2) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    )
    assert ranking_metrics.ndcg(labels, scores, 1) == 0.0
    with pytest.raises(ValueError):
        ranking_metrics.ndcg([0, 0], [1.0, 2.0], 5)


def test_scores_from_ranks_are_the_official_scorers_one_over_rank():
    labels, ranks = [0, 1, 0], [2, 3, 1]
    scores = ranking_metrics.scores_from_ranks(ranks)
    assert scores == [0.5, 1 / 3, 1.0]
    assert ranking_metrics.auc(labels, scores) == 0.0
    assert ranking_metrics.mrr(labels, scores) == pytest.approx(1 / 3)


def test_ndcg_at_k_for_binary_relevance_against_hand_values():
    # Hits at ranks 1 and 3 of 3 relevant: (1 + 1/log2(4)) / (1 + 1/log2(3) + 1/log2(4)).
    expected = (1 + 0.5) / (1 + 1 / math.log2(3) + 0.5)
    assert ranking_metrics.ndcg_at_k(["a", "x", "b"], {"a", "b", "c"}, 10) == pytest.approx(
        expected
    )


def test_ndcg_at_k_ideal_counts_at_most_k_relevant_items():
    assert ranking_metrics.ndcg_at_k(["a", "b"], {"a", "b", "c", "d"}, 2) == 1.0
    with pytest.raises(ValueError):
        ranking_metrics.ndcg_at_k(["a"], set(), 10)


def test_precision_at_k_divides_by_k_even_with_fewer_relevant_items():
    assert ranking_metrics.precision_at_k(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx(0.2)
