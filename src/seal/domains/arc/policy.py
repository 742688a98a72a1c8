"""The ARC self-edit policy: how the model writes its JSON test-time-training configuration.

Two modes (``ArcConfig.self_edit_mode``):

* ``free``: the model writes free text after the self-edit prompt (``selfedit.self_edit_prompt`` in the chat
  template), sampled at ``ArcConfig.temperature``; ``selfedit.parse_self_edit`` turns it into a configuration or
  a reason (invalid JSON, missing field, unknown strategy ...), and an invalid self-edit earns reward 0.
  SmolLM2-135M-Instruct did not write a single JSON configuration this way (0 of 6 samples: prose, URLs, a
  broken object), so every self-edit would fail and ReST-EM would have nothing to learn from.
* ``constrained`` (default): the model fills in the *values* of the canonical JSON (``selfedit.to_json``). The
  text is built field by field; for each field every allowed value (true/false, the two strategies,
  ``ArcConfig.lr_choices``, ``ArcConfig.epoch_choices``) is scored as the exact log-probability of the JSON
  so far + that value + the next delimiter, under the policy (base model or policy adapter), and one value is
  sampled from ``softmax(logp / temperature)`` (argmax at temperature 0). The result is always valid JSON and
  exactly the text a ReST-EM policy is fine-tuned on, so SFT on kept self-edits moves these probabilities
  directly. The prompt is encoded once (KV cache); all samples and choices are scored in batches over it.

    edits = sample_self_edits(seal, tasks, n=3, cfg=ArcConfig(), policy_slot=None, seed=0)
    edits[0][0].edit, edits[0][0].text, edits[0][0].reason

Cost: one prompt forward pass plus ~7 small passes per distinct partial configuration (~10 s for 8 samples of
one easy task on a busy 2-core CPU).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
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
                      seed: int = 0, temperature: float | None = None) -> list[list[SampledEdit]]:
    """``n`` self-edits per task from the policy (base model when ``policy_slot`` is None).

    ``temperature`` defaults to ``cfg.temperature``.
    """
    if temperature is not None:
        cfg = dataclasses.replace(cfg, temperature=temperature)
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
    """``n`` configurations whose values are sampled from the policy's probabilities of the allowed choices.

    Samples that made the same choices so far share one state (JSON text, KV cache), so a peaked policy costs
    about one pass per field, not one per sample.
    """
    gen = torch.Generator().manual_seed(int(seed))
    scorer = _Scorer(seal, prompt, policy_slot)
    fields = value_fields(cfg)
    root = scorer.root()
    states = {"": root}
    at = [""] * n  # each sample's committed JSON text (a key of ``states``)
    chosen: list[dict] = [{} for _ in range(n)]
    logps = [0.0] * n
    pending = ""  # delimiter characters already committed at the start of the next field's text
    for f, (before, name, choices) in enumerate(fields):
        nxt = fields[f + 1][0] if f + 1 < len(fields) else _TAIL
        delim = nxt[: len(nxt) - len(nxt.lstrip("},"))] or nxt[0]
        pieces = [before[len(pending):] + render_value(name, c) + delim for c in choices]
        new_states = {}
        for key in dict.fromkeys(at):
            scores = torch.tensor(scorer.extend_scores(states[key], pieces), dtype=torch.float64)
            logp = torch.log_softmax(scores / max(cfg.temperature, 1e-6), 0)
            for i in (i for i in range(n) if at[i] == key):
                k = int(logp.argmax()) if cfg.temperature == 0 else int(torch.multinomial(logp.exp(), 1,
                                                                                         generator=gen))
                chosen[i][name] = choices[k]
                logps[i] += float(logp[k])
                at[i] = key + pieces[k]
                if at[i] not in new_states and f + 1 < len(fields):
                    new_states[at[i]] = scorer.commit(states[key], pieces[k])
        states = new_states or states
        pending = delim
    out = []
    for i in range(n):
        edit = ArcSelfEdit(**chosen[i])
        text = at[i] + _TAIL[len(pending):]
        assert text == to_json(edit), (text, to_json(edit))
        out.append(SampledEdit(text, edit, None, [], logps[i]))
    return out


@dataclass
class _State:
    """Committed continuation of the prompt: its text, token ids, KV cache and next-token log-probs."""

    text: str
    ids: list[int]
    cache: object
    last: torch.Tensor


class _Scorer:
    """Log-probabilities of continuations of one prompt, with the prompt's KV cache computed once.

    Continuations are scored token-exactly: the text so far + a piece is tokenised as a whole; when that equals
    the committed tokens + the piece's own tokens (a pre-token boundary, the usual case for the JSON above) the
    piece is scored on the committed state's cache, otherwise the whole continuation is scored from the prompt.
    """

    ROW_TOKENS = 16_384
    """Cache rows x cached tokens per scoring batch (bounds memory: ~46 kB per row-token for SmolLM2-135M)."""

    @torch.no_grad()
    def __init__(self, seal, prompt: str, slot: int | None) -> None:
        self.seal, self.slot = seal, slot
        lm = seal.lm
        self.model, self.tok = lm.model, lm.tokenizer
        self.prompt_ids = self.tok(prompt, add_special_tokens=not lm.has_chat_template)["input_ids"]
        self.device = lm.device
        params = inspect.signature(self.model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        with self._route():
            out = self.model(torch.tensor([self.prompt_ids], device=self.device), use_cache=True)
        self._root = _State("", [], self._cache_of(out), torch.log_softmax(out["logits"][0, -1].float(), -1).cpu())

    @staticmethod
    def _cache_of(out):
        return out["cache"] if "cache" in out else out["past_key_values"]

    def _route(self):
        bank = getattr(self.seal, "bank", None)
        return bank.route(self.slot) if bank is not None else contextlib.nullcontext()

    def root(self) -> _State:
        return self._root

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] if text else []

    def extend_scores(self, state: _State, pieces: list[str]) -> list[float]:
        """log p(piece | prompt + state.text) for each piece (token-exact, see the class docstring)."""
        rows = [self._ids(p) for p in pieces]
        if all(self._ids(state.text + p) == state.ids + r for p, r in zip(pieces, rows, strict=True)):
            return self._score(state, rows)
        full = self.logprobs([state.text + p for p in pieces])
        return [x - (self.logprobs([state.text])[0] if state.text else 0.0) for x in full]

    @torch.no_grad()
    def commit(self, state: _State, piece: str) -> _State:
        """The state after appending ``piece`` (recomputed from the prompt if tokens do not concatenate)."""
        text = state.text + piece
        ids = self._ids(text)
        base = state if ids[: len(state.ids)] == state.ids else self._root
        new = ids[len(base.ids):]
        cache = copy.deepcopy(base.cache)
        pos = len(self.prompt_ids) + len(base.ids)
        with self._route():
            out = self.model(torch.tensor([new], device=self.device),
                             attention_mask=torch.ones(1, pos + len(new), dtype=torch.long, device=self.device),
                             position_ids=(pos + torch.arange(len(new), device=self.device))[None],
                             use_cache=True, **{self.cache_kw: cache})
        return _State(text, ids, self._cache_of(out), torch.log_softmax(out["logits"][0, -1].float(), -1).cpu())

    def logprobs(self, texts: list[str]) -> list[float]:
        """log p(text | prompt) for each text, scored from the prompt's cache."""
        encoded = [self._ids(t) for t in texts]
        return self._score(self._root, encoded)

    def _score(self, state: _State, seqs: list[list[int]]) -> list[float]:
        cached = len(self.prompt_ids) + len(state.ids)
        per_batch = max(1, self.ROW_TOKENS // max(cached, 1))
        out: list[float] = []
        for s in range(0, len(seqs), per_batch):
            out += self._batch(state, seqs[s:s + per_batch])
        return out

    @torch.no_grad()
    def _batch(self, state: _State, seqs: list[list[int]]) -> list[float]:
        n, length = len(seqs), max(len(s) for s in seqs)
        P = len(self.prompt_ids) + len(state.ids)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((n, length), pad, dtype=torch.long)
        mask = torch.zeros((n, P + length), dtype=torch.long)
        mask[:, :P] = 1
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, P:P + len(s)] = 1  # right padding: real tokens never see the pads after them
        cache = copy.deepcopy(state.cache)
        cache.batch_repeat_interleave(n)
        pos = (P + torch.arange(length)).expand(n, length)
        with self._route():
            logits = self.model(ids.to(self.device), attention_mask=mask.to(self.device),
                                position_ids=pos.to(self.device), use_cache=True,
                                **{self.cache_kw: cache})["logits"].float()
        logp = torch.log_softmax(logits, -1).cpu()
        out = []
        for i, s in enumerate(seqs):
            total = float(state.last[s[0]])
            for j in range(1, len(s)):
                total += float(logp[i, j - 1, s[j]])
            out.append(total if math.isfinite(total) else -1e9)
        return out
