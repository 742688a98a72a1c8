"""The ARC self-edit policy: how the model writes its JSON test-time-training configuration.

Two modes (``ArcConfig.self_edit_mode``):

* ``free``: the model writes free text after the self-edit prompt (``selfedit.self_edit_prompt`` in the chat
  template), sampled at ``ArcConfig.temperature``; ``selfedit.parse_self_edit`` turns it into a configuration or
  a reason (invalid JSON, missing field, unknown strategy ...), and an invalid self-edit earns reward 0.
  SmolLM2-135M-Instruct almost never writes a complete valid configuration this way (measured: see
  ``seal.arc_loop``), so every self-edit would fail and ReST-EM would have nothing to learn from.
* ``constrained`` (default): the model fills in the *values* of the canonical JSON (``selfedit.to_json``). The
  text is built field by field; for each field every allowed value (true/false, the two strategies,
  ``ArcConfig.lr_choices``, ``ArcConfig.epoch_choices``) is scored as the exact log-probability of the JSON
  so far + that value + the next delimiter, under the policy (base model or policy adapter), and one value is
  sampled from ``softmax(logp / temperature)`` (argmax at temperature 0). The result is always valid JSON and
  exactly the text a ReST-EM policy is fine-tuned on, so SFT on kept self-edits moves these probabilities
  directly. The prompt is encoded once (KV cache); all samples and choices are scored in batches over it.

    edits = sample_self_edits(seal, tasks, n=3, cfg=ArcConfig(), policy_slot=None, seed=0)
    edits[0][0].edit, edits[0][0].text, edits[0][0].reason

Cost: one prompt forward pass plus ~7 small batched passes per task (seconds on CPU for the easy tasks).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .selfedit import STRATEGIES, ArcSelfEdit, parse_self_edit, self_edit_prompt, to_json
from .tasks import ArcTask
from .ttt import ArcConfig


@dataclass
class SampledEdit:
    """One self-edit written by the policy: its text, the parsed configuration (or why there is none)."""

    text: str
    edit: ArcSelfEdit | None
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    logprob: float | None = None
    """Constrained mode: log-probability of the chosen values among the allowed ones (renormalised)."""

    def to_record(self) -> dict:
        return {"text": self.text, "valid": self.edit is not None, "reason": self.reason,
                "warnings": self.warnings, "logprob": self.logprob}


def policy_prompt(lm, task: ArcTask) -> str:
    """The templated prompt asking for a self-edit (chat template for instruct models)."""
    return lm.chat(self_edit_prompt(task))


def value_fields(cfg: ArcConfig) -> list[tuple[str, str, list]]:
    """(text before the value, field name, allowed values) in the order of ``selfedit.to_json``."""
    return [
        ('{"data_generation": {"use_basic_augmentations": ', "basic", [True, False]),
        (', "use_size_augmentations": ', "size", [True, False]),
        (', "use_chain_augmentations": ', "chain", [True, False]),
        (', "use_repeat_augmentations": ', "repeat", [True, False]),
        ('}, "training": {"strategy": ', "loss_on", ["output", "all"]),
        (', "learning_rate": ', "learning_rate", list(cfg.lr_choices)),
        (', "num_train_epochs": ', "epochs", list(cfg.epoch_choices)),
    ]


_TAIL = "}}"


def render_value(name: str, value) -> str:
    if name == "loss_on":
        return json.dumps(STRATEGIES[value])
    if name == "epochs":
        return str(int(value))
    return json.dumps(value)


def sample_self_edits(seal, tasks: Sequence[ArcTask], n: int, cfg: ArcConfig, *, policy_slot: int | None = None,
                      seed: int = 0) -> list[list[SampledEdit]]:
    """``n`` self-edits per task from the policy (base model when ``policy_slot`` is None)."""
    if cfg.self_edit_mode == "free":
        prompts = [policy_prompt(seal.lm, t) for t in tasks for _ in range(n)]
        texts = seal.generator.complete(prompts, max_new_tokens=cfg.free_max_tokens, temperature=cfg.temperature,
                                        top_p=1.0, seed=seed, adapters=policy_slot)
        out = []
        for i in range(len(tasks)):
            row = []
            for text in texts[i * n:(i + 1) * n]:
                res = parse_self_edit(text, lr_range=cfg.lr_range, max_epochs=cfg.max_epochs)
                row.append(SampledEdit(text, res.edit, res.reason, res.warnings))
            out.append(row)
        return out
    return [constrained_sample(seal, policy_prompt(seal.lm, t), n, cfg, policy_slot=policy_slot,
                               seed=seed * 1_000_003 + i) for i, t in enumerate(tasks)]


@torch.no_grad()
def constrained_sample(seal, prompt: str, n: int, cfg: ArcConfig, *, policy_slot: int | None = None,
                       seed: int = 0) -> list[SampledEdit]:
    """``n`` configurations whose values are sampled from the policy's probabilities of the allowed choices."""
    gen = torch.Generator().manual_seed(int(seed))
    scorer = _Scorer(seal, prompt, policy_slot)
    fields = value_fields(cfg)
    texts = [""] * n
    chosen: list[dict] = [{} for _ in range(n)]
    logps = [0.0] * n
    for f, (before, name, choices) in enumerate(fields):
        nxt = fields[f + 1][0][0] if f + 1 < len(fields) else _TAIL[0]
        rows = [texts[i] + before + render_value(name, c) + nxt for i in range(n) for c in choices]
        scores = torch.tensor(scorer.logprobs(rows), dtype=torch.float64).view(n, len(choices))
        for i in range(n):
            logp = torch.log_softmax(scores[i] / max(cfg.temperature, 1e-6), 0)
            k = int(logp.argmax()) if cfg.temperature == 0 else int(torch.multinomial(logp.exp(), 1, generator=gen))
            chosen[i][name] = choices[k]
            logps[i] += float(logp[k])
            texts[i] += before + render_value(name, choices[k])
    out = []
    for i in range(n):
        edit = ArcSelfEdit(**chosen[i])
        text = texts[i] + _TAIL
        assert text == to_json(edit), (text, to_json(edit))
        out.append(SampledEdit(text, edit, None, [], logps[i]))
    return out


class _Scorer:
    """Log-probabilities of continuations of one prompt, with the prompt's KV cache computed once."""

    ROW_TOKENS = 16_384
    """Cache rows x prompt tokens per scoring batch (bounds memory: ~46 kB per row-token for SmolLM2-135M)."""

    def __init__(self, seal, prompt: str, slot: int | None) -> None:
        self.seal, self.slot = seal, slot
        lm = seal.lm
        self.model, self.tok = lm.model, lm.tokenizer
        ids = self.tok(prompt, add_special_tokens=not lm.has_chat_template)["input_ids"]
        self.P = len(ids)
        self.device = lm.device
        params = inspect.signature(self.model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        with self._route():
            out = self.model(torch.tensor([ids], device=self.device), use_cache=True)
        self.cache = out["cache"] if "cache" in out else out["past_key_values"]
        self.last = torch.log_softmax(out["logits"][0, -1].float(), -1)

    def _route(self):
        bank = getattr(self.seal, "bank", None)
        return bank.route(self.slot) if bank is not None else contextlib.nullcontext()

    def logprobs(self, texts: list[str]) -> list[float]:
        encoded = [self.tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        per_batch = max(1, self.ROW_TOKENS // max(self.P, 1))
        out: list[float] = []
        for s in range(0, len(encoded), per_batch):
            out += self._batch(encoded[s:s + per_batch])
        return out

    def _batch(self, seqs: list[list[int]]) -> list[float]:
        n, length = len(seqs), max(len(s) for s in seqs)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((n, length), pad, dtype=torch.long)
        mask = torch.zeros((n, self.P + length), dtype=torch.long)
        mask[:, :self.P] = 1
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, self.P:self.P + len(s)] = 1  # right padding: real tokens never see the pads after them
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(n)
        pos = (self.P + torch.arange(length)).expand(n, length)
        with self._route():
            logits = self.model(ids.to(self.device), attention_mask=mask.to(self.device),
                                position_ids=pos.to(self.device), use_cache=True,
                                **{self.cache_kw: cache})["logits"].float()
        logp = torch.log_softmax(logits, -1).cpu()
        last = self.last.cpu()
        out = []
        for i, s in enumerate(seqs):
            total = float(last[s[0]])
            for j in range(1, len(s)):
                total += float(logp[i, j - 1, s[j]])
            out.append(total if math.isfinite(total) else -1e9)
        return out
