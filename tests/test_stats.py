"""Bootstrap intervals (seal.stats): seeded, weighted by questions, clustered by passage, paired."""

from __future__ import annotations

import pytest

from seal.stats import bootstrap_ci, paired_ci


def test_interval_is_seeded_and_contains_the_mean():
    vals = [0.0, 0.2, 0.4, 0.6, 1.0, 0.8]
    lo, hi = bootstrap_ci(vals)
    assert bootstrap_ci(vals) == (lo, hi) and lo < sum(vals) / len(vals) < hi
    assert bootstrap_ci([]) == (0.0, 0.0) and bootstrap_ci([0.5, 0.5]) == (0.5, 0.5)


def test_weights_give_the_accuracy_over_questions():
    # 10 passages with their 1 question right, 10 with 0 of 9 right: 10 of 100 questions, accuracy 0.1
    lo, hi = bootstrap_ci([1.0] * 10 + [0.0] * 10, weights=[1] * 10 + [9] * 10)
    assert lo < 0.1 < hi < 0.3  # the unweighted mean of the passages (0.5) is far outside
    assert bootstrap_ci([1.0, 1.0, 0.0], weights=[1, 1, 2], clusters=["a", "a", "b"]) == (0.0, 1.0)


def test_clusters_resample_whole_passages():
    # two seeds per passage that always agree: treating the 8 cells as independent would be too narrow
    per_passage = [0.0, 1.0, 0.0, 1.0]
    cells = [v for v in per_passage for _ in range(2)]
    clusters = [i for i in range(4) for _ in range(2)]
    lo_c, hi_c = bootstrap_ci(cells, clusters=clusters)
    assert (lo_c, hi_c) == bootstrap_ci(per_passage)  # the same statistic as one value per passage
    lo_i, hi_i = bootstrap_ci(cells)
    assert hi_c - lo_c > hi_i - lo_i


def test_paired_difference():
    a, b = [0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7]
    assert paired_ci(a, b) == pytest.approx((0.1, 0.1))  # every pair differs by exactly 0.1
    with pytest.raises(ValueError):
        paired_ci([0.1], [0.1, 0.2])
    with pytest.raises(ValueError):
        bootstrap_ci([0.1, 0.2], clusters=["a"])
