"""Evaluate self-edit methods on any domain: the unedited model, each self-edit format written by the base
model, and self-edits written by ReST-EM-trained policies, each applied with a fresh adapter per context.

Run as ``seal eval --domain NAME --data PATH --methods base,passage,notes --policy RUN`` or::

    result = evaluate_domain(seal, domain, contexts, ["base", "notes"], policies={"SEAL r1": 0})
    print(markdown_table(result))

Per method: the mean of the domain's score over contexts (each in [0, 1]), a 95 % bootstrap interval over
contexts (``CI_RESAMPLES`` resamples, seeded), the items scored (task prompts) and the seconds per self-edit
of that method alone (writing it, training on it and answering its task, timed per method, not shares of a
shared pass). Each method's self-edits of all contexts train together in one batched pass.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from seal.domains.base import Domain, DomainError, EditItem, call_domain, checked_score
from seal.engine import Seal
from seal.stats import CI_RESAMPLES, bootstrap_ci  # noqa: F401  (re-exported)


@dataclass
class MethodResult:
    scores: list[float] = field(default_factory=list)
    """Per context; a self-edit that could not be applied counts as the unedited model's score."""
    failed: int = 0
    write_s: float = 0.0
    apply_s: float = 0.0

    def as_dict(self, seed: int = 0) -> dict[str, Any]:
        vals = list(self.scores)
        lo, hi = bootstrap_ci(vals, seed)
        n = max(len(self.scores), 1)
        return {"score": statistics.fmean(vals) if vals else 0.0, "ci95": [lo, hi], "n_contexts": len(vals),
                "failed_edits": self.failed, "s_per_edit": (self.write_s + self.apply_s) / n,
                "s_write_per_edit": self.write_s / n, "scores": self.scores}


@dataclass
class DomainResult:
    domain: str
    methods: dict[str, MethodResult]
    context_ids: list[str]
    n_items: int
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "context_ids": self.context_ids, "n_items": self.n_items,
                "wall_s": self.wall_s, "methods": {m: r.as_dict() for m, r in self.methods.items()}}


def evaluate_domain(seal: Seal, domain: Domain, contexts: Sequence[Any], methods: Sequence[str], *,
                    policies: dict[str, int] | None = None, seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> DomainResult:
    """``methods``: ``base``, any of ``domain.formats``, or a name in ``policies`` (name -> the slot holding
    that policy adapter; its self-edits are of the domain's default format)."""
    policies = policies or {}
    unknown = [m for m in methods if m != "base" and m not in domain.formats and m not in policies]
    if unknown:
        raise DomainError(f"domain {domain.name!r}: unknown method(s) {', '.join(unknown)} (choose from base, "
                          f"{', '.join(domain.formats)}, or --policy RUN)")
    t0 = time.perf_counter()
    ctxs = list(contexts)
    items = sum(len(call_domain(domain, "task_prompts", seal.lm, c)) for c in ctxs) if _has_text_task(domain) else 0
    base = [checked_score(domain, b, "baselines") for b in call_domain(domain, "baselines", seal, ctxs)]
    first = 1 + max(policies.values(), default=-1)
    seal.bank.ensure_slots(first + len(ctxs))
    out: dict[str, MethodResult] = {}
    for m in methods:
        if progress:
            progress(f"{domain.name}: {m} on {len(ctxs)} contexts")
        res = out[m] = MethodResult()
        if m == "base":
            res.scores = list(base)
            continue
        fmt = m if m in domain.formats else (domain.default_format or domain.formats[0])
        slot = policies.get(m)
        tw = time.perf_counter()
        if fmt == "passage":  # no self-edit: train on the context itself
            texts = [""] * len(ctxs)
        else:
            texts = [t[0] for t in call_domain(domain, "write_self_edits", seal, ctxs, fmt, 1, seed=seed,
                                               policy_slot=slot)]
        res.write_s = time.perf_counter() - tw
        ta = time.perf_counter()
        outcomes = call_domain(domain, "apply_self_edits", seal,
                               [EditItem(c, t, fmt, seed=seed) for c, t in zip(ctxs, texts, strict=True)],
                               first_slot=first)
        res.apply_s = time.perf_counter() - ta
        for o, b in zip(outcomes, base, strict=True):
            if o.score is None:
                res.failed += 1
                res.scores.append(b)  # an unusable self-edit leaves the model as it was
            else:
                res.scores.append(checked_score(domain, o.score, "apply_self_edits"))
    return DomainResult(domain.name, out, [domain.context_id(c) for c in ctxs], items, time.perf_counter() - t0)


def _has_text_task(domain: Domain) -> bool:
    return type(domain).task_prompts is not Domain.task_prompts


def markdown_table(result: DomainResult) -> str:
    lines = [f"| method | mean score ({len(result.context_ids)} contexts, {result.n_items} items) | 95 % CI | "
             "failed edits | s / self-edit |", "|---|---:|---:|---:|---:|"]
    for m, r in result.methods.items():
        d = r.as_dict()
        lines.append(f"| {m} | {100 * d['score']:.1f} % | [{100 * d['ci95'][0]:.1f}, {100 * d['ci95'][1]:.1f}] | "
                     f"{d['failed_edits']} | {d['s_per_edit']:.1f} |")
    return "\n".join(lines)
