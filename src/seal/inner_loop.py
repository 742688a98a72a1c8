"""The inner loop: LoRA-SFT of one or many adapter slots on their self-edits, theta' = LoRA-SFT(theta, SE).

Lean by design (see DESIGN.md, "flaws of the reference code"): the base model is loaded once and adapters are
reset in place; every sequence is tokenised once; sequences are *packed* into rows of at most
``batch_tokens`` tokens with a block-diagonal causal mask and per-sequence positions (no fixed-length padding,
nothing attends across sequences); the loss covers real completion tokens only; seeds are explicit.

K jobs can train together (``engine="batched"``): row k goes through adapter k, the loss is the sum of each
adapter's own mean token loss, AdamW state and step counts are per adapter, gradients are clipped per
adapter, and an adapter with no data left (or a NaN loss) is not stepped. Each adapter therefore follows
exactly the trajectory it would follow alone (``engine="sequential"``), up to float rounding::

    jobs = [TrainJob(slot=k, examples=[Example("", text) for text in seqs_k], seed=7) for k, seqs_k in ...]
    results = train_adapters(bank, tokenizer, jobs, InnerLoopConfig(epochs=5, lr=1e-3))

On CPU the sequential engine is the default (training is compute-bound, batching gains nothing); on CUDA
batched training keeps the device busy. ``bench/inner_loop.py`` measures both.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import torch

from seal.config import InnerLoopConfig
from seal.lora import AdapterBank


@dataclass(frozen=True)
class Example:
    """One training sequence: the loss covers ``completion`` only (``prompt`` may be empty)."""

    prompt: str
    completion: str


@dataclass
class TrainJob:
    slot: int
    examples: list[Example]
    seed: int = 0
    reset: bool = True
    """Start from a fresh adapter (reset in place from ``seed``); False continues the slot's weights."""


@dataclass
class TrainResult:
    slot: int
    steps: int = 0
    tokens: int = 0
    """Real (non-padding) tokens processed, prompts included: the basis of the FLOP count."""
    losses: list[float] = field(default_factory=list)
    failed: str | None = None
    """Why training stopped early (e.g. a NaN loss); the slot is then left at its last finite weights."""
    seconds: float = 0.0

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None


@dataclass
class _Row:
    ids: list[int]
    labels: list[int]
    positions: list[int]
    segments: list[int]


def tokenize_examples(tokenizer, examples: list[Example], max_tokens: int) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels (-100 on prompt tokens) for each example, EOS appended, truncated to max_tokens."""
    out = []
    eos = tokenizer.eos_token_id
    for ex in examples:
        p = tokenizer(ex.prompt, add_special_tokens=True)["input_ids"] if ex.prompt else []
        c = tokenizer(ex.completion, add_special_tokens=not p)["input_ids"] + ([eos] if eos is not None else [])
        ids = (p + c)[:max_tokens]
        labels = ([-100] * len(p) + c)[:max_tokens]
        if any(label != -100 for label in labels[1:]):
            out.append((ids, labels))
    return out


def pack(seqs: list[tuple[list[int], list[int]]], budget: int) -> list[_Row]:
    """Greedy first-fit packing, in the given order, into rows of at most ``budget`` tokens."""
    rows: list[_Row] = []
    cur = _Row([], [], [], [])
    seg = 0
    for ids, labels in seqs:
        if cur.ids and len(cur.ids) + len(ids) > budget:
            rows.append(cur)
            cur, seg = _Row([], [], [], []), 0
        cur.ids += ids
        # the first token of each sequence has no target inside its own segment
        cur.labels += [-100] + labels[1:]
        cur.positions += list(range(len(ids)))
        cur.segments += [seg] * len(ids)
        seg += 1
    if cur.ids:
        rows.append(cur)
    return rows


def schedule(seqs: list[tuple[list[int], list[int]]], epochs: int, budget: int, seed: int) -> list[_Row]:
    """All optimiser steps of one job: each epoch a seeded shuffle, then packing."""
    rng = random.Random(seed)
    steps: list[_Row] = []
    for _ in range(epochs):
        order = list(range(len(seqs)))
        rng.shuffle(order)
        steps += pack([seqs[i] for i in order], budget)
    return steps


def collate(rows: list[_Row], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad rows to the longest in this step; block-diagonal causal mask; labels shifted for next-token."""
    length = max(len(r.ids) for r in rows)
    n = len(rows)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    labels = torch.full((n, length), -100, dtype=torch.long)
    pos = torch.zeros((n, length), dtype=torch.long)
    seg = torch.full((n, length), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        k = len(r.ids)
        ids[i, :k] = torch.tensor(r.ids)
        labels[i, :k] = torch.tensor(r.labels)
        pos[i, :k] = torch.tensor(r.positions)
        seg[i, :k] = torch.tensor(r.segments)
        seg[i, k:] = -2 - torch.arange(length - k)  # each pad token its own segment: attends only to itself
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    mask = (seg[:, :, None] == seg[:, None, :]) & causal
    return {
        "input_ids": ids.to(device), "labels": labels.to(device),
        "position_ids": pos.to(device), "attention_mask": mask[:, None].to(device),
    }


def row_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss per row over labelled tokens only (padding and prompts never count)."""
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    tok = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="none"
    ).view(target.shape)
    count = (target != -100).sum(1).clamp(min=1)
    return tok.sum(1) / count


class _AdamW:
    """AdamW over stacked adapter tensors with per-slot step counts; only the given slots are stepped."""

    def __init__(self, params: list[torch.nn.Parameter], lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.wd, self.betas, self.eps = params, lr, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = torch.zeros(params[0].shape[0], dtype=torch.float64)

    def reset(self, slot: int) -> None:
        for m, v in zip(self.m, self.v, strict=True):
            m[slot].zero_()
            v[slot].zero_()
        self.t[slot] = 0

    @torch.no_grad()
    def step(self, slots: list[int]) -> None:
        b1, b2 = self.betas
        idx = torch.tensor(slots, device=self.params[0].device)
        self.t[slots] += 1
        t = self.t[slots]
        c1 = (1 - b1 ** t).to(torch.float32).to(idx.device)
        c2 = (1 - b2 ** t).to(torch.float32).to(idx.device)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad.index_select(0, idx)
            mi = m.index_select(0, idx).mul_(b1).add_(g, alpha=1 - b1)
            vi = v.index_select(0, idx).mul_(b2).addcmul_(g, g, value=1 - b2)
            m.index_copy_(0, idx, mi)
            v.index_copy_(0, idx, vi)
            shape = (-1,) + (1,) * (p.dim() - 1)
            update = (mi / c1.view(shape)) / ((vi / c2.view(shape)).sqrt_() + self.eps)
            pi = p.index_select(0, idx)
            if self.wd:
                pi.mul_(1 - self.lr * self.wd)
            p.index_copy_(0, idx, pi - self.lr * update)


def _clip_per_slot(params: list[torch.nn.Parameter], slots: list[int], max_norm: float) -> None:
    idx = torch.tensor(slots, device=params[0].device)
    sq = sum(p.grad.index_select(0, idx).pow(2).flatten(1).sum(1) for p in params)
    scale = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for p in params:
        g = p.grad.index_select(0, idx)
        p.grad.index_copy_(0, idx, g * scale.view((-1,) + (1,) * (p.dim() - 1)))


def resolve_engine(engine: str, device: torch.device) -> str:
    if engine == "auto":
        return "batched" if device.type == "cuda" else "sequential"
    return engine


def train_adapters(bank: AdapterBank, tokenizer, jobs: list[TrainJob], cfg: InnerLoopConfig,
                   progress=None) -> list[TrainResult]:
    """Train every job's slot on its examples; return one result per job (same order)."""
    if len({j.slot for j in jobs}) != len(jobs):
        raise ValueError("each job needs its own adapter slot")
    bank.ensure_slots(max((j.slot for j in jobs), default=0) + 1)
    device = next(iter(bank.layers.values())).A.device
    engine = resolve_engine(cfg.engine, device)
    if engine == "peft":
        raise ValueError("the PEFT reference engine lives in bench/inner_loop.py, not in train_adapters")
    groups = [jobs] if engine == "batched" else [[j] for j in jobs]
    results = {j.slot: TrainResult(slot=j.slot) for j in jobs}
    for group in groups:
        _train_group(bank, tokenizer, group, cfg, device, results, progress)
    return [results[j.slot] for j in jobs]


def _train_group(bank, tokenizer, jobs, cfg, device, results, progress) -> None:
    params = bank.parameters()
    opt = _AdamW(params, cfg.lr, cfg.weight_decay)
    plans = {}
    for j in jobs:
        if j.reset:
            bank.reset(j.slot, j.seed)
        opt.reset(j.slot)
        seqs = tokenize_examples(tokenizer, j.examples, cfg.max_seq_tokens)
        plans[j.slot] = schedule(seqs, cfg.epochs, cfg.batch_tokens, j.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    n_steps = max((len(p) for p in plans.values()), default=0)
    was_training = bank.model.training
    bank.model.train()  # no dropout in LoRA; base modules have dropout 0 in these models
    start = time.perf_counter()
    try:
        for step in range(n_steps):
            active = [s for s, p in plans.items() if step < len(p) and results[s].failed is None]
            if not active:
                break
            batch = collate([plans[s][step] for s in active], pad, device)
            labels = batch.pop("labels")
            for p in params:
                p.grad = None
            with bank.route(active if len(active) > 1 else active[0]):
                logits = bank.model(**batch, use_cache=False).logits
            losses = row_losses(logits, labels)
            values = losses.detach().tolist()
            finite = torch.isfinite(losses)
            for i, s in enumerate(active):
                if not bool(finite[i]):
                    results[s].failed = f"non-finite loss at step {step + 1}"
            ok = [s for i, s in enumerate(active) if bool(finite[i])]
            if not ok:
                continue
            losses[finite].sum().backward()
            if cfg.grad_clip:
                _clip_per_slot(params, ok, cfg.grad_clip)
            bad = _nonfinite_grad_slots(params, ok)
            for s in bad:
                results[s].failed = f"non-finite gradient at step {step + 1}"
            ok = [s for s in ok if s not in bad]
            if ok:
                opt.step(ok)
            for i, s in enumerate(active):
                if s in ok:
                    r = results[s]
                    r.steps += 1
                    r.tokens += len(plans[s][step].ids)
                    r.losses.append(values[i])
            if progress is not None:
                progress(step + 1, n_steps)
    finally:
        for p in params:
            p.grad = None
        bank.model.train(was_training)
    elapsed = time.perf_counter() - start
    for j in jobs:
        results[j.slot].seconds = elapsed / len(jobs)


def _nonfinite_grad_slots(params, slots: list[int]) -> set[int]:
    idx = torch.tensor(slots, device=params[0].device)
    ok = torch.ones(len(slots), dtype=torch.bool, device=params[0].device)
    for p in params:
        ok &= torch.isfinite(p.grad.index_select(0, idx)).flatten(1).all(1)
    return {s for s, good in zip(slots, ok.tolist(), strict=True) if not good}


def training_flops(n_params_base: int, tokens: int) -> float:
    """Approximate FLOPs of LoRA training: forward 2N + backward through activations 2N per token (the base
    weights are frozen, so their weight gradients are never computed; LoRA's own cost is negligible)."""
    return 4.0 * n_params_base * tokens
