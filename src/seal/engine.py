"""The engine: one loaded model, its LoRA adapter bank, a generator and a grader, shared by every loop.

It owns the three operations SEAL is made of — write self-edits, apply them (inner loop), score the
result — and caches the unedited model's score per context so the baseline is graded once, not per edit::

    seal = Seal.load(SealConfig.preset("cpu"))
    texts = seal.write_self_edits(domain, [(passage, "implications")], n=4, seed=0)
    results = seal.train([TrainJob(slot=0, examples=domain.parse_self_edit(passage, texts[0], ...).examples)])
    after = seal.evaluate(domain, [(passage, 0)])[0]; before = seal.baseline(domain, passage)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from seal.config import SealConfig
from seal.domains.base import Domain, DomainError, call_domain, checked_score
from seal.generate import TransformersGenerator
from seal.grading import Grader, make_grader
from seal.inner_loop import TrainJob, TrainResult, train_adapters
from seal.likelihood import answer_likelihoods
from seal.lora import AdapterBank
from seal.model import LoadedModel, load_model


@dataclass
class Score:
    accuracy: float
    answers: list[str]
    verdicts: list[bool]


class Seal:
    def __init__(self, lm: LoadedModel, cfg: SealConfig, grader: Grader | None = None, slots: int = 1) -> None:
        self.lm, self.cfg = lm, cfg
        self.bank = AdapterBank.attach(lm.model, cfg.lora, slots)
        self.generator = TransformersGenerator(lm, self.bank, cfg.eval.batch_size,
                                               cfg.eval.batch_tokens)
        self.grader = grader or make_grader(cfg.eval.grader, f1_threshold=cfg.eval.f1_threshold,
                                            url=cfg.eval.judge_url, model=cfg.eval.judge_model)
        self._baselines: dict[tuple[str, str], Score] = {}
        self._base_likelihoods: dict[tuple[str, str], float] = {}

    @classmethod
    def load(cls, cfg: SealConfig | None = None, **kwargs: Any) -> Seal:
        cfg = cfg or SealConfig()
        return cls(load_model(cfg.model), cfg, **kwargs)

    # ------------------------------------------------------------------ self-edits
    def write_self_edits(self, domain: Domain, items: Sequence[tuple[Any, str]], n: int = 1, seed: int = 0,
                         policy_slot: int | None = None, temperature: float | None = None,
                         progress: Callable[[int, int], None] | None = None) -> list[list[str]]:
        """``n`` sampled self-edits for each (context, format), all in batched generation calls."""
        se = self.cfg.self_edit
        prompts = [domain.self_edit_prompt(self.lm, ctx, fmt) for ctx, fmt in items for _ in range(n)]
        texts = self.generator.complete(
            prompts, max_new_tokens=se.max_new_tokens, temperature=se.temperature if temperature is None else temperature,
            top_p=se.top_p, seed=seed, adapters=policy_slot, progress=progress)
        return [texts[i * n:(i + 1) * n] for i in range(len(items))]

    # ------------------------------------------------------------------ inner loop
    def train(self, jobs: list[TrainJob], progress: Callable[[int, int], None] | None = None) -> list[TrainResult]:
        return train_adapters(self.bank, self.lm.tokenizer, jobs, self.cfg.inner_loop, progress)

    # ------------------------------------------------------------------ reward
    def evaluate(self, domain: Domain, pairs: Sequence[tuple[Any, int | None]],
                 progress: Callable[[int, int], None] | None = None) -> list[Score]:
        """Score each (context, adapter slot or None for the base model); all answers in one batched pass."""
        prompts, routes, spans = [], [], []
        for ctx, slot in pairs:
            ps = call_domain(domain, "task_prompts", self.lm, ctx)
            spans.append((len(prompts), len(prompts) + len(ps)))
            prompts += ps
            routes += [-1 if slot is None else slot] * len(ps)
        answers = self.generator.complete(prompts, max_new_tokens=self.cfg.eval.answer_tokens,
                                          adapters=routes, progress=progress) if prompts else []
        scores = []
        for (ctx, _), (a, b) in zip(pairs, spans, strict=True):
            result = call_domain(domain, "score", ctx, answers[a:b], self.grader)
            if not (isinstance(result, tuple | list) and len(result) == 2
                    and isinstance(result[1], list | tuple)):
                raise DomainError(f"domain {domain.name!r}: score returned {result!r:.60}; expected (score, "
                                  "verdicts)")
            scores.append(Score(checked_score(domain, result[0], "score"), answers[a:b], list(result[1])))
        return scores

    def likelihoods(self, domain: Domain, pairs: Sequence[tuple[Any, int | None]]) -> list[float]:
        """Per (context, adapter slot or None), the mean over the context's task prompts of the gold answers'
        likelihood score (``seal.likelihood``); the domain gives the answers (``Domain.task_targets``)."""
        prompts, answers, routes, spans = [], [], [], []
        for ctx, slot in pairs:
            ps = call_domain(domain, "task_prompts", self.lm, ctx)
            golds = call_domain(domain, "task_targets", ctx)
            if golds is None or len(golds) != len(ps):
                raise DomainError(f"domain {domain.name!r}: task_targets must give one gold answer per task "
                                  f"prompt ({len(ps)}) for a likelihood reward")
            spans.append((len(prompts), len(prompts) + len(ps)))
            prompts += ps
            answers += list(golds)
            routes += [slot] * len(ps)
        values = answer_likelihoods(self.lm, self.bank, prompts, answers, routes)
        return [sum(values[a:b]) / (b - a) if b > a else 0.0 for a, b in spans]

    def baseline_likelihoods(self, domain: Domain, ctxs: Sequence[Any]) -> list[float]:
        """The unedited model's likelihood score per context, computed once and cached."""
        key = [(domain.name, domain.context_id(c)) for c in ctxs]
        todo = [c for c, k in zip(ctxs, key, strict=True) if k not in self._base_likelihoods]
        for ctx, v in zip(todo, self.likelihoods(domain, [(c, None) for c in todo]) if todo else [], strict=True):
            self._base_likelihoods[(domain.name, domain.context_id(ctx))] = v
        return [self._base_likelihoods[k] for k in key]

    def baseline(self, domain: Domain, ctx: Any) -> Score:
        """The unedited model's score on ``ctx``, computed once and cached."""
        return self.baselines(domain, [ctx])[0]

    def baselines(self, domain: Domain, ctxs: Sequence[Any]) -> list[Score]:
        todo = [c for c in ctxs if (domain.name, domain.context_id(c)) not in self._baselines]
        for ctx, score in zip(todo, self.evaluate(domain, [(c, None) for c in todo]) if todo else [], strict=True):
            self._baselines[(domain.name, domain.context_id(ctx))] = score
        return [self._baselines[(domain.name, domain.context_id(c))] for c in ctxs]
