"""The Domain interface: the spine that lets a task plug into the inner and outer loops unchanged.

A domain says what a context is and where contexts come from, how to ask the model for a self-edit, how to
apply a self-edit (the inner loop), and how to score the model on the context's task *without the context in
the prompt*. The reward of a self-edit is ``score(after) - baseline``; any score in [0, 1] works (QA accuracy,
a test that passes, a style or safety score). ``seal.rest_em.train`` (ReST-EM) and ``seal.evaluate`` run any
domain; a new domain implements five methods::

    class MyDomain(Domain):
        name = "my-domain"
        formats = ("notes",)
        def load_contexts(self, path): ...                   # -> list of contexts
        def context_id(self, ctx): ...                       # stable id (caching, resume, logs)
        def self_edit_prompt(self, lm, ctx, fmt): ...        # the prompt that asks for a self-edit
        def parse_self_edit(self, ctx, text, fmt): ...       # -> ParsedSelfEdit(examples) or SelfEditError
        def task_prompts(self, lm, ctx): ...                 # the task, without the context
        def score(self, ctx, answers, grader): ...           # -> (score in [0, 1], per-item verdicts)

A domain whose self-edit is *configuration* rather than training data (ARC: which augmentations, which
learning rate) overrides the hooks below instead: :meth:`Domain.write_self_edits` (how self-edits are sampled),
:meth:`Domain.apply_self_edits` (self-edit -> inner loop -> score), :meth:`Domain.baselines` and
:meth:`Domain.policy_example`. The outer loop only ever calls these hooks, so it never special-cases a domain.
Plug-ins are found by :func:`seal.domains.load_domain` (a built-in name, an entry point in group
``seal.domains``, ``module:Class`` or ``path/to/file.py:Class``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal.jobs import Example, TrainJob


class SelfEditError(ValueError):
    """A generated self-edit cannot be used (malformed, empty, degenerate); it earns no reward."""


class DomainError(RuntimeError):
    """A domain's own code failed or broke the interface (raised in ``score``, a score outside [0, 1], ...);
    the message names the domain and the method."""


@dataclass
class ParsedSelfEdit:
    """Training examples made from a self-edit, plus what was dropped and why (for logs)."""

    examples: list[Example]
    dropped: list[tuple[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What applying one self-edit did: the updated model's score on the context's task (None when the
    self-edit could not be applied: ``failed`` says why) and what to log with it (answers, steps, loss, ...)."""

    score: float | None
    failed: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class EditItem:
    """One self-edit to apply: its context, text, format, and the seed of its inner loop."""

    ctx: Any
    text: str
    fmt: str
    seed: int = 0


class Domain(ABC):
    name: str = "domain"
    formats: tuple[str, ...] = ()
    default_format: str | None = None
    """The self-edit format ReST-EM trains when none is given (default: the first of ``formats``)."""
    selection: str | None = None
    """The domain's own selection rule, when it has one (ARC keeps every winning configuration); else the
    config's ``rest_em.selection``."""
    reuse_contexts: bool = False
    """Every ReST-EM round on the same contexts (a domain with few, like ARC's training tasks) instead of
    fresh, disjoint ones per round."""

    # ------------------------------------------------------------------ data
    def load_contexts(self, path: str | Path) -> list[Any]:
        """The contexts stored at ``path`` (a file or directory in the domain's own format)."""
        raise NotImplementedError(f"domain {self.name!r} cannot load contexts from a path")

    @abstractmethod
    def context_id(self, ctx: Any) -> str:
        """A stable identifier (used for caching baselines, resuming runs and logs)."""

    def context_title(self, ctx: Any) -> str:
        """A short human-readable name of the context (logs, reports)."""
        return str(getattr(ctx, "title", None) or self.context_id(ctx))

    def context_seed(self, seed: int, rnd: int, index: int) -> int:
        """The sampling seed of context ``index`` in round ``rnd``: fixed per context, whatever else runs."""
        return seed * 1_000_003 + rnd * 10_007 + index

    # ------------------------------------------------------------------ self-edits
    @abstractmethod
    def self_edit_prompt(self, lm, ctx: Any, fmt: str) -> str:
        """The templated prompt that asks the model to write a self-edit of format ``fmt``."""

    def write_self_edits(self, seal, ctxs: Sequence[Any], fmt: str, n: int, *, seed: int,
                         policy_slot: int | None = None, training: bool = False) -> list[list[str]]:
        """``n`` sampled self-edit texts per context (from the policy adapter ``policy_slot``, else the base
        model), all in batched generation. ``training``: sampled for ReST-EM (a domain may explore more)."""
        return seal.write_self_edits(self, [(c, fmt) for c in ctxs], n=n, seed=seed, policy_slot=policy_slot)

    def policy_train_config(self, inner):
        """The inner-loop config of the policy's SFT (``rest_em.policy_lr``/``policy_epochs`` already set); a
        domain may change e.g. ``max_seq_tokens`` for its long prompts."""
        return inner

    def policy_example(self, lm, ctx: Any, text: str, fmt: str) -> Example:
        """The policy's SFT example for a kept self-edit: prompt -> self-edit (loss on the self-edit only)."""
        return Example(self.self_edit_prompt(lm, ctx, fmt), text)

    # ------------------------------------------------------------------ inner loop + reward
    def parse_self_edit(self, ctx: Any, text: str, fmt: str) -> ParsedSelfEdit:
        """Training examples from the generated text; raises SelfEditError when nothing usable remains."""
        raise NotImplementedError(f"domain {self.name!r} does not turn self-edits into training data")

    def task_prompts(self, lm, ctx: Any) -> list[str]:
        """Prompts of the evaluation task about ``ctx``, without ``ctx`` itself in them."""
        raise NotImplementedError(f"domain {self.name!r} has no text task")

    def score(self, ctx: Any, answers: list[str], grader) -> tuple[float, list[bool]]:
        """Score in [0, 1] of ``answers`` (one per task prompt) and the per-item verdicts."""
        raise NotImplementedError(f"domain {self.name!r} has no text task")

    def task_targets(self, ctx: Any) -> list[str] | None:
        """The gold answer of each task prompt, for a likelihood reward (``rest_em.reward``); None: the domain
        has none (its reward can only be its score)."""
        return None

    def apply_self_edits(self, seal, items: Sequence[EditItem], first_slot: int = 1) -> list[Outcome]:
        """The inner loop and the updated model's score for each self-edit: parse each into training data,
        train one fresh adapter per usable self-edit (slots ``first_slot``... in one batched pass), answer
        every task in one batched generation. A self-edit that cannot be parsed or trained gets ``score=None``
        with the reason."""
        outcomes: list[Outcome | None] = [None] * len(items)
        jobs, where = [], []
        for i, it in enumerate(items):
            try:
                examples = self.parse_self_edit(it.ctx, it.text, it.fmt).examples
            except SelfEditError as exc:
                outcomes[i] = Outcome(None, f"unusable self-edit: {exc}")
                continue
            jobs.append(TrainJob(first_slot + len(jobs), examples, seed=it.seed))
            where.append(i)
        if jobs:
            results = seal.train(jobs)
            ok = [(i, j) for i, j, r in zip(where, jobs, results, strict=True) if not r.failed]
            scores = seal.evaluate(self, [(items[i].ctx, j.slot) for i, j in ok])
            by_item = {i: sc for (i, _), sc in zip(ok, scores, strict=True)}
            lls = {}
            # the likelihoods while the trained adapters are still in their slots
            if ok and reward_rule(seal.cfg.rest_em.reward, self) != "accuracy":
                lls = dict(zip((i for i, _ in ok), seal.likelihoods(self, [(items[i].ctx, j.slot) for i, j in ok]),
                               strict=True))
            for i, res in zip(where, results, strict=True):
                sc = by_item.get(i)
                info = {"steps": res.steps, "loss": res.final_loss, "answers": sc.answers if sc else None}
                if i in lls:
                    info["likelihood"] = lls[i]
                outcomes[i] = Outcome(sc.accuracy if sc else None, res.failed, info)
        return [o for o in outcomes if o is not None]

    def baselines(self, seal, ctxs: Sequence[Any]) -> list[float]:
        """The unedited model's score per context (cached by the engine: graded once per context)."""
        return [s.accuracy for s in seal.baselines(self, ctxs)]


def has_gold_answers(domain: Domain) -> bool:
    """Whether ``domain`` gives gold answers (defines ``task_targets``), which a likelihood reward needs."""
    return type(domain).task_targets is not Domain.task_targets


def reward_rule(configured: str, domain: Domain) -> str:
    """The reward rule a ReST-EM run on ``domain`` uses: ``configured`` (``rest_em.reward``), except ``auto``
    -> ``accuracy+likelihood`` for a domain with gold answers (knowledge: the setting that won the measured
    sweep, README Results) and ``accuracy`` for one without (ARC, plug-in domains that only score)."""
    if configured != "auto":
        return configured
    return "accuracy+likelihood" if has_gold_answers(domain) else "accuracy"


def checked_score(domain: Domain, value: Any, method: str) -> float:
    """A domain's score as a float in [0, 1], or a :class:`DomainError` naming the domain and the method."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise DomainError(f"domain {domain.name!r}: {method} returned {value!r}; a score must be a number in "
                          "[0, 1]")
    return float(value)


def call_domain(domain: Domain, method: str, *args: Any, **kwargs: Any) -> Any:
    """``domain.method(*args)``, with any exception of the domain's own code turned into a one-line
    :class:`DomainError` that names the domain (``SelfEditError``, ``DomainError`` and interrupts pass)."""
    try:
        return getattr(domain, method)(*args, **kwargs)
    except (SelfEditError, DomainError, KeyboardInterrupt):
        raise
    except NotImplementedError as exc:
        raise DomainError(str(exc) or f"domain {domain.name!r} does not implement {method}") from None
    except Exception as exc:  # a plug-in's bug must not become a traceback in the middle of a run
        raise DomainError(f"domain {domain.name!r}: {method} raised {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")) from exc
