"""ARC as a :class:`~seal.domains.base.Domain`: the self-edit is a configuration, not training data.

A context is an ARC task. The policy writes a JSON configuration (augmentation groups, loss on outputs or all
tokens, learning rate, epochs; constrained by default, see ``policy.py``); applying it means building
leave-one-out TTT data from the demonstrations as it says, training a fresh adapter (test-time training) and
predicting the test outputs with augmented voting, pass@2. The score is 1 if every test output is right, else
0; an invalid self-edit scores 0 with its reason. The reward is the score itself (the paper's binary reward:
``baselines`` are 0), and ReST-EM keeps *every* distinct winning configuration of a task
(``selection = "all-positive"``; the policy is fine-tuned on prompt -> canonical JSON). Outcomes are memoised
per (task, configuration, seed): TTT is deterministic for a seed, so a configuration sampled twice trains once.

ReST-EM on ARC is the one loop of ``seal.rest_em`` (``seal train arc`` / ``seal train --domain arc``)::

    dom = ArcDomain(cfg.arc)
    rest_em.train(seal, dom, tasks, "runs/arc1")

Evaluation rows (ICL, TTT + self-edit, SEAL, oracle) are ``seal.arc_loop.evaluate_arc``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seal.config import ArcConfig
from seal.domains.base import Domain, EditItem, Outcome
from seal.jobs import Example

from .policy import SampledEdit, policy_prompt, sample_self_edits
from .selfedit import parse_self_edit, to_json
from .tasks import ArcTask

TTT_FIRST_SLOT = 1


class ArcDomain(Domain):
    name = "arc"
    formats = ("config",)
    default_format = "config"
    selection = "all-positive"
    reuse_contexts = True  # every round on all training tasks (the paper's ARC setting)

    def __init__(self, cfg: ArcConfig | None = None, split: str = "training") -> None:
        self.cfg = cfg or ArcConfig()
        self.split = split
        self._sampled: dict[tuple[str, str], SampledEdit] = {}
        self._caches: dict[int, Any] = {}

    @classmethod
    def from_config(cls, cfg) -> ArcDomain:
        return cls(cfg.arc)

    # ------------------------------------------------------------------ data
    def load_contexts(self, path: str | Path) -> list[ArcTask]:
        """Tasks of ``self.split`` from a directory of ``*challenges*.json`` + ``*solutions*.json``."""
        from seal.arc_loop import load_arc_dir

        return load_arc_dir(path, self.split)

    def context_id(self, ctx: ArcTask) -> str:
        return ctx.task_id

    def context_seed(self, seed: int, rnd: int, index: int) -> int:
        return seed * 104_729 + rnd * 7919 + index

    # ------------------------------------------------------------------ self-edits
    def self_edit_prompt(self, lm, ctx: ArcTask, fmt: str = "config") -> str:
        return policy_prompt(lm, ctx)

    def write_self_edits(self, seal, ctxs: Sequence[ArcTask], fmt: str, n: int, *, seed: int,
                         policy_slot: int | None = None, training: bool = False) -> list[list[str]]:
        """``n`` configurations per task, sampled at ``arc.train_temperature`` in ReST-EM (exploration)."""
        temperature = self.cfg.train_temperature if training else None
        out = []
        for i, task in enumerate(ctxs):
            sampled = sample_self_edits(seal, [task], n, self.cfg, policy_slot=policy_slot, seed=seed + i,
                                        temperature=temperature)[0]
            for s in sampled:
                self._sampled[(task.task_id, s.text)] = s
            out.append([s.text for s in sampled])
        return out

    def _parsed(self, task: ArcTask, text: str) -> SampledEdit:
        known = self._sampled.get((task.task_id, text))
        if known is not None:
            return known
        res = parse_self_edit(text, lr_range=self.cfg.lr_range, max_epochs=self.cfg.max_epochs)
        return SampledEdit(text, res.edit, res.reason, res.warnings)

    def policy_example(self, lm, ctx: ArcTask, text: str, fmt: str) -> Example:
        edit = self._parsed(ctx, text).edit
        return Example(policy_prompt(lm, ctx), to_json(edit) if edit is not None else text)

    def policy_train_config(self, inner):
        return dataclasses.replace(inner, max_seq_tokens=self.cfg.max_seq_tokens)

    # ------------------------------------------------------------------ inner loop + reward
    def apply_self_edits(self, seal, items: Sequence[EditItem], first_slot: int = TTT_FIRST_SLOT) -> list[Outcome]:
        from seal.arc_loop import OutcomeCache

        seal.bank.ensure_slots(first_slot + self.cfg.slots)
        parsed = [self._parsed(it.ctx, it.text) for it in items]
        outcomes: list[Outcome | None] = [None] * len(items)
        for seed in dict.fromkeys(it.seed for it in items):  # one memo per inner-loop seed
            cache = self._caches.setdefault(seed, OutcomeCache(seal, self.cfg, seed))
            idx = [i for i, it in enumerate(items) if it.seed == seed and parsed[i].edit is not None]
            results = cache.get([(items[i].ctx, parsed[i].edit) for i in idx])
            for i, (o, cached) in zip(idx, results, strict=True):
                outcomes[i] = Outcome(float(o.reward), None, {**parsed[i].to_record(), "json": to_json(parsed[i].edit),
                                                              "outcome_reason": o.reason, "cached": cached,
                                                              "outcome": o.to_record()})
        for i, s in enumerate(parsed):
            if s.edit is None:  # invalid JSON, unknown keys, out-of-range values: reward 0 with the reason
                outcomes[i] = Outcome(0.0, None, {**s.to_record(), "json": None,
                                                  "outcome_reason": f"invalid self-edit: {s.reason}"})
        return [o for o in outcomes if o is not None]

    def baselines(self, seal, ctxs: Sequence[ArcTask]) -> list[float]:
        return [0.0] * len(ctxs)
