"""Executors: where the E-step's passes run. A pass is the unit of work (:class:`PassJob`): a few contexts of
one round, their self-edits written from each context's own seed (those not yet logged), their baselines, and
every (sample, repeat) inner loop not yet recorded, trained and answered together. :func:`run_pass` does one
on a :class:`~seal.engine.Seal`; an executor runs many and yields their :class:`PassResult` as they finish.

The interface is three methods, so another engine (Dask, a job queue) is one small class::

    class Executor:
        def set_policy(self, tensors | None) -> None       # the policy adapter every worker samples from
        def run(self, jobs, on_texts=None) -> Iterator[PassResult]  # any order, each job's result once
        def close(self) -> None

``LocalExecutor`` (the default) runs the passes in order on the driver's own engine: exactly the loop as it
always ran. ``seal.executor_ray.RayExecutor`` runs them on Ray actors (``--executor ray``). The loop
(:func:`seal.rest_em.train`) writes each result to the run's logs as it arrives and computes rewards,
selection and the M-step on the driver, so a run's records do not depend on where its passes ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from seal.domains.base import Domain, DomainError, EditItem, call_domain, checked_score, reward_rule
from seal.likelihood import combine_reward

POLICY_SLOT = 0


@dataclass
class PassJob:
    index: int
    """The pass's position in its round (results are matched back by it)."""
    round: int
    contexts: list[tuple[int, Any]]
    """(context index in the round, context)."""
    fmt: str
    samples: int
    repeats: int
    seeds: dict[int, int]
    """Context index -> the seed its self-edits are sampled from."""
    rest_em_seed: int
    texts: dict[tuple[int, int], str] = field(default_factory=dict)
    """(context, sample) -> self-edit text already logged (not written again)."""
    todo: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(round, context, sample, repeat) inner loops to run (those not yet recorded)."""
    use_policy: bool = False


@dataclass
class PassResult:
    index: int
    new_texts: list[dict[str, Any]]
    """Self-edit records written by this pass: ``context``, ``sample``, ``text``."""
    records: list[dict[str, Any]]
    """One sample record per ``todo`` key, in order."""
    worker: str = "local"
    seconds: float = 0.0
    texts_logged: bool = False
    """The new self-edits were already handed to ``on_texts`` (the local executor logs them before training)."""


def _record(key, context_id: str, accuracy, reward, baseline, failed, **extra) -> dict[str, Any]:
    rnd, ci, s, rep = key
    return {"round": rnd, "context": ci, "sample": s, "repeat": rep, "passage": context_id, "accuracy": accuracy,
            "reward": reward, "baseline": baseline, "failed": failed, **extra}


def failed_records(job: PassJob, domain: Domain, reason: str) -> list[dict[str, Any]]:
    """The records of a pass that could not run (a worker failed it twice): no reward, the reason kept."""
    ctx_of = dict(job.contexts)
    return [_record(k, domain.context_id(ctx_of[k[1]]), None, None, None, reason) for k in job.todo]


def run_pass(seal, domain: Domain, job: PassJob, on_texts: Callable[[list[dict]], None] | None = None) -> PassResult:
    """One pass on ``seal`` (see the module docstring). ``on_texts`` receives the new self-edit records as soon as
    they are written, before any training (the local loop logs them then)."""
    import time

    t0 = time.perf_counter()
    texts = dict(job.texts)
    new: list[dict[str, Any]] = []
    for ci, ctx in job.contexts:  # each context's self-edits from its own seed, whatever the pass size
        if not all((ci, s) in texts for s in range(job.samples)):
            out = call_domain(domain, "write_self_edits", seal, [ctx], job.fmt, job.samples, seed=job.seeds[ci],
                              policy_slot=POLICY_SLOT if job.use_policy else None, training=True)[0]
            fresh = [{"context": ci, "sample": s, "text": t} for s, t in enumerate(out) if (ci, s) not in texts]
            new += fresh
            texts.update({(ci, r["sample"]): r["text"] for r in fresh})
    logged = on_texts is not None
    if logged and new:
        on_texts(new)
    records: list[dict[str, Any]] = []
    if job.todo:
        bases = call_domain(domain, "baselines", seal, [ctx for _, ctx in job.contexts])
        base_of = {ci: checked_score(domain, b, "baselines") for (ci, _), b in zip(job.contexts, bases, strict=True)}
        rule = reward_rule(seal.cfg.rest_em.reward, domain)
        base_ll = {} if rule == "accuracy" else dict(zip(
            (ci for ci, _ in job.contexts), seal.baseline_likelihoods(domain, [c for _, c in job.contexts]),
            strict=True))
        ctx_of = dict(job.contexts)
        items = [EditItem(ctx_of[ci], texts[(ci, s)], job.fmt, seed=job.rest_em_seed * 7919 + rep)
                 for _, ci, s, rep in job.todo]
        outcomes = call_domain(domain, "apply_self_edits", seal, items, first_slot=1)  # slot 0 is the policy
        if len(outcomes) != len(items):
            raise DomainError(f"domain {domain.name!r}: apply_self_edits returned {len(outcomes)} outcomes for "
                              f"{len(items)} self-edits")
        for key, o in zip(job.todo, outcomes, strict=True):
            baseline = base_of[key[1]]
            score = None if o.score is None else checked_score(domain, o.score, "apply_self_edits")
            extra = dict(o.info)
            if rule != "accuracy":
                extra["baseline_likelihood"] = base_ll[key[1]]
            reward = None if score is None else combine_reward(
                rule, score - baseline, None if o.info.get("likelihood") is None
                else o.info["likelihood"] - base_ll[key[1]])
            records.append(_record(key, domain.context_id(ctx_of[key[1]]), score, reward, baseline, o.failed,
                                   **extra))
    return PassResult(job.index, new, records, seconds=time.perf_counter() - t0, texts_logged=logged)


class LocalExecutor:
    """Passes in order on the driver's engine (``seal``), the new self-edits logged before training."""

    name = "local"

    def __init__(self, seal, domain: Domain) -> None:
        self.seal, self.domain = seal, domain

    def set_policy(self, tensors) -> None:  # the driver's own policy slot is the policy
        return None

    def run(self, jobs: Iterable[PassJob], on_texts: Callable[[list[dict]], None] | None = None
            ) -> Iterator[PassResult]:
        for job in jobs:
            yield run_pass(self.seal, self.domain, job, on_texts)

    def close(self) -> None:
        return None


def make_executor(name: str, seal, domain: Domain, *, address: str | None = None, workers: int = 0):
    """``local`` or ``ray`` (``address``: an existing cluster, else a local Ray instance; ``workers`` actors,
    0 = one per GPU, or per 2 CPU cores without GPUs)."""
    if name == "local":
        return LocalExecutor(seal, domain)
    if name == "ray":
        from seal.executor_ray import RayExecutor

        return RayExecutor(seal.cfg, domain, address=address, workers=workers, grader=seal.grader)
    raise ValueError(f"unknown executor {name!r} (choose local or ray)")


__all__ = ["PassJob", "PassResult", "run_pass", "failed_records", "LocalExecutor", "make_executor", "POLICY_SLOT"]
