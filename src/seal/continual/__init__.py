"""Continual learning: sequential updates with a strategy, forgetting probes, a forgetting guard, and the
retention matrix of the paper's catastrophic-forgetting experiment (Figure 6).

The package, one job per module (everything is re-exported here, so ``from seal.continual import X`` works):

* :mod:`~seal.continual.learner`: :class:`Learner` and :class:`Update`, the strategies (``merge``,
  ``accumulate``, ``replay``; ``STRATEGIES``) and the per-update training seeds.
* :mod:`~seal.continual.merge`: the ``merge`` strategy's merged base weights (:func:`merge_slot`,
  :func:`apply_merged`, :func:`restore_base`, ...), thin functions over the bookkeeping that
  :class:`~seal.lora.AdapterBank` owns (``bank.merged``, ``bank.restore_base()``).
* :mod:`~seal.continual.probes`: probe questions per learned document and their accuracy.
* :mod:`~seal.continual.guard`: :func:`guarded_update`, which accepts, retries with replay, or rejects an update.
* :mod:`~seal.continual.forgetting`: :func:`evaluate_forgetting`, the retention matrix, and :func:`summarize`.

The heatmap of the retention matrix is :func:`seal.report.retention_heatmap` (re-exported here)::

    seal = Seal.load(cfg, slots=2)
    result = evaluate_forgetting(seal, passages[:8], strategy="merge")
    print(result.summary())          # diagonal_mean, final_mean, forgetting, base_mean
    retention_heatmap(result.as_dict(), "forgetting.png")

``seal.learning`` builds the persistent ``seal learn`` / ``seal forget`` on these; ``seal.cli_continual``
holds the commands.
"""

from seal.continual.forgetting import ForgettingResult, evaluate_forgetting, summarize
from seal.continual.guard import DEFAULT_GUARD_THRESHOLD, GuardReport, guarded_update
from seal.continual.learner import (
    DEFAULT_REPLAY_RATIO,
    STRATEGIES,
    Learner,
    Update,
    check_strategy,
    train_seed,
)
from seal.continual.merge import (
    apply_merged,
    merge_slot,
    merge_tensors,
    merged_keys,
    restore_base,
    set_merged_keys,
    zero_slot,
)
from seal.continual.probes import (
    PROBE_TOKENS,
    PROBES_PER_PASSAGE,
    cloze_probes,
    make_probes,
    probe_accuracy,
    probe_pairs,
    usable_pair,
    write_probes,
)
from seal.inner_loop import train_adapters  # noqa: F401  (the learner looks it up here; tests replace it)
from seal.report import retention_heatmap

__all__ = ["STRATEGIES", "Learner", "Update", "GuardReport", "guarded_update", "make_probes", "cloze_probes",
           "probe_pairs", "probe_accuracy", "write_probes", "evaluate_forgetting", "ForgettingResult", "summarize",
           "retention_heatmap", "restore_base", "apply_merged", "merge_slot", "train_seed",
           # also used by seal.learning and the tests
           "DEFAULT_GUARD_THRESHOLD", "DEFAULT_REPLAY_RATIO", "PROBES_PER_PASSAGE", "PROBE_TOKENS", "check_strategy",
           "merged_keys", "set_merged_keys", "merge_tensors", "zero_slot", "usable_pair"]
