"""The forgetting guard: accept, retry with replay, or reject an update by its effect on earlier probes.

:func:`guarded_update` measures the pooled accuracy on earlier documents' probes (questions asked without the
passage, like the task; see :mod:`seal.continual.probes`) before and after a pending update of a
:class:`~seal.continual.learner.Learner`; if it drops by more than ``threshold`` the update is retrained with
replay, and if it still drops too much it is rejected (discarded). The caller commits an accepted update::

    update, report = guarded_update(learner, sequences, seed=0, probe_passages=earlier, threshold=0.2)
    if not update.result.failed and report.accepted:
        learner.commit()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from seal.config import InnerLoopConfig
from seal.continual.learner import Learner, Update
from seal.continual.probes import probe_accuracy
from seal.domains.knowledge import Passage

DEFAULT_GUARD_THRESHOLD = 0.2


@dataclass
class GuardReport:
    checked: bool = False
    """Whether there were earlier probes to check."""
    threshold: float = DEFAULT_GUARD_THRESHOLD
    before: float | None = None
    after: float | None = None
    retried: bool = False
    after_retry: float | None = None
    accepted: bool = True
    per_document_after: list[float | None] = field(default_factory=list)
    """Per earlier document: probe accuracy with the update finally kept (or the last one tried)."""

    @property
    def final(self) -> float | None:
        return self.after_retry if self.retried else self.after

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "threshold": self.threshold, "before": self.before, "after": self.after,
                "retried": self.retried, "after_retry": self.after_retry, "accepted": self.accepted}


def guarded_update(learner: Learner, sequences: list[str], *, seed: int = 0, probe_passages: Sequence[Passage] = (),
                   guard: bool = True, threshold: float = DEFAULT_GUARD_THRESHOLD,
                   inner_loop: InnerLoopConfig | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[Update, GuardReport]:
    """Train a pending update; with ``guard``, check earlier documents' probes before and after it.

    If pooled probe accuracy drops by more than ``threshold`` (absolute), retrain the update with replay
    (``learner.retry_ratio``); if it still drops too much, discard it (``report.accepted`` False). The caller
    commits an accepted update (a failed training, ``update.result.failed``, is left pending for the caller)."""
    report = GuardReport(threshold=threshold)
    report.checked = guard and any(p.questions for p in probe_passages)
    if report.checked:
        report.before, _ = probe_accuracy(learner.seal, probe_passages, learner.slot)
    update = learner.train(sequences, seed, inner_loop=inner_loop, progress=progress)
    if update.result.failed or not report.checked:
        return update, report
    report.after, report.per_document_after = probe_accuracy(learner.seal, probe_passages, learner.slot)
    if report.before - report.after <= threshold + 1e-12:
        return update, report
    report.retried = True
    update = learner.train(sequences, seed, replay_ratio=learner.retry_ratio, inner_loop=inner_loop,
                           progress=progress)
    if update.result.failed:
        return update, report
    report.after_retry, report.per_document_after = probe_accuracy(learner.seal, probe_passages, learner.slot)
    if report.before - report.after_retry > threshold + 1e-12:
        report.accepted = False
        learner.discard()
    return update, report



__all__ = ["DEFAULT_GUARD_THRESHOLD", "GuardReport", "guarded_update"]
