"""Confidence intervals for seal's results: percentile bootstrap of a mean, and of a paired difference.

Every accuracy seal reports is a mean over units (passages, contexts, modules; or passage × seed cells), and
units, not questions, are what is resampled: questions of one passage are not independent. Seeded, so the
same values always give the same interval::

    lo, hi = bootstrap_ci([0.2, 0.4, 0.0, 0.6])               # 95 % interval of the mean
    lo, hi = paired_ci(seal_scores, passage_scores)           # of mean(a - b), the units paired
    lo, hi = bootstrap_ci(cells, clusters=passage_of_cell)    # resample whole passages (all their seeds)
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Hashable, Sequence

CI_RESAMPLES = 2000


def bootstrap_ci(values: Sequence[float], seed: int = 0, resamples: int = CI_RESAMPLES,
                 clusters: Sequence[Hashable] | None = None,
                 weights: Sequence[float] | None = None) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of ``values``. With ``clusters`` (one label per value),
    whole clusters are resampled (e.g. a passage with all its seeds). With ``weights`` the statistic is the
    weighted mean (a passage's accuracy weighted by its questions: the accuracy over questions)."""
    values = [float(v) for v in values]
    if not values:
        return (0.0, 0.0)
    w = [1.0] * len(values) if weights is None else [float(x) for x in weights]
    labels = list(range(len(values))) if clusters is None else list(clusters)
    if len(labels) != len(values) or len(w) != len(values):
        raise ValueError("one cluster label and one weight per value")
    groups: dict[Hashable, list[float]] = {}
    for c, v, x in zip(labels, values, w, strict=True):
        g = groups.setdefault(c, [0.0, 0.0])
        g[0] += v * x
        g[1] += x
    blocks = list(groups.values())
    rng = random.Random(seed)
    means = []
    for _ in range(resamples):
        pick = rng.choices(blocks, k=len(blocks))
        total = sum(b[1] for b in pick)
        means.append(sum(b[0] for b in pick) / total if total else 0.0)
    means.sort()
    return means[int(0.025 * resamples)], means[min(int(0.975 * resamples), resamples - 1)]


def paired_ci(a: Sequence[float], b: Sequence[float], seed: int = 0, resamples: int = CI_RESAMPLES,
              clusters: Sequence[Hashable] | None = None,
              weights: Sequence[float] | None = None) -> tuple[float, float]:
    """95 % bootstrap interval of mean(a − b) over paired units (the same passage and seed in both)."""
    if len(a) != len(b):
        raise ValueError("paired values must have the same length")
    return bootstrap_ci([x - y for x, y in zip(a, b, strict=True)], seed, resamples, clusters, weights)


def mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


__all__ = ["CI_RESAMPLES", "bootstrap_ci", "paired_ci", "mean"]
