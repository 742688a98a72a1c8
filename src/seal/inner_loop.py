"""The inner loop: LoRA-SFT of one or many adapter slots on their self-edits, theta' = LoRA-SFT(theta, SE).

Lean by design (see DESIGN.md, "flaws of the reference code"): the base model is loaded once and adapters are
reset in place; every sequence is tokenised once; each epoch's shuffled sequences are *packed*, as one stream
over all epochs, into rows of at most ``batch_tokens`` tokens with a block-diagonal causal mask and
per-sequence positions (no fixed-length padding, nothing attends across sequences, rows stay full); the loss
covers real completion tokens only, and on Llama-family models the LM head and softmax run only where there is
a target, with no log-probability copy or vocabulary-sized gradient (``seal.head_loss``); AdamW is torch's
fused kernel over one flat buffer of all adapters; seeds are explicit.

K jobs can train together (``engine="batched"``): row k goes through adapter k, the loss is the sum of each
adapter's own mean token loss, AdamW state and step counts are per adapter, gradients are clipped per
adapter, and an adapter with no data left (or a NaN loss) is not stepped. Each adapter therefore follows
exactly the trajectory it would follow alone (``engine="sequential"``), up to float rounding. On Llama-family
models on CPU the K rows of a batched step run unpadded, end to end as one token stream (``seal.unpadded``)::

    jobs = [TrainJob(slot=k, examples=[Example("", text) for text in seqs_k], seed=7) for k, seqs_k in ...]
    results = train_adapters(bank, tokenizer, jobs, InnerLoopConfig(epochs=5, lr=1e-3))

``engine="auto"`` (the default) trains K jobs batched on CUDA, where small batches leave the device idle; on
CPU it times the first job's own steps both ways (step 1 batched, step 2 one adapter at a time; the results
are the same either way) once per bank and shape, and goes on with the faster.
``bench/inner_loop.py`` measures both.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch
from torch.optim.adamw import adamw

from seal import unpadded
from seal.config import InnerLoopConfig
from seal.head_loss import head_losses, plain_head
from seal.jobs import Example, TrainJob, TrainResult
from seal.lora import AdapterBank


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


def pack(seqs: list[tuple[list[int], list[int]]], budget: int, lookahead: int = 8) -> list[_Row]:
    """Pack sequences, in near order, into rows of at most ``budget`` tokens (a longer sequence gets a row of
    its own). Each row starts with the first sequence left and adds later ones that still fit, looking at
    most ``lookahead`` sequences ahead, so rows come out nearly full while no sequence moves more than a few
    rows from its place. The same sequence object never appears twice in one row."""
    rows: list[_Row] = []
    pending = list(seqs)
    while pending:
        cur = _Row([], [], [], [])
        taken: list[int] = []
        seen: set[int] = set()
        for i, seq in enumerate(pending[:lookahead + 1]):
            ids, labels = seq
            if taken and (len(cur.ids) + len(ids) > budget or id(seq) in seen):
                continue
            seg = len(taken)
            cur.ids += ids
            # the first token of each sequence has no target inside its own segment
            cur.labels += [-100] + labels[1:]
            cur.positions += list(range(len(ids)))
            cur.segments += [seg] * len(ids)
            taken.append(i)
            seen.add(id(seq))
            if len(cur.ids) >= budget:
                break
        rows.append(cur)
        for i in reversed(taken):
            del pending[i]
    return rows


def schedule(seqs: list[tuple[list[int], list[int]]], epochs: int, budget: int, seed: int) -> list[_Row]:
    """All optimiser steps of one job: each epoch a seeded shuffle of the sequences; the epochs are packed as
    one stream, so rows stay full across epoch boundaries (a row may end one epoch and begin the next)."""
    rng = random.Random(seed)
    stream: list[tuple[list[int], list[int]]] = []
    for _ in range(epochs):
        order = list(range(len(seqs)))
        rng.shuffle(order)
        stream += [seqs[i] for i in order]
    return pack(stream, budget)


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
    mask = unpadded.block_causal_mask(seg)
    return {
        "input_ids": ids.to(device), "labels": labels.to(device),
        "position_ids": pos.to(device), "attention_mask": mask[:, None].to(device),
    }


def _shifted(labels: torch.Tensor) -> torch.Tensor:
    """Next-token targets: position t is scored on token t+1 (shift the labels, never the [B, T, V] logits)."""
    return torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)


def _wide(logits: torch.Tensor) -> torch.Tensor:
    """Logits for the loss: float32 (bf16/fp16 models are upcast), or float64 for a float64 model."""
    return logits if logits.dtype == torch.float64 else logits.float()


def mean_per_row(tok: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Mean of the per-token losses ``tok`` of each row (``rows``: the row of each token); 0 for a row with
    none."""
    total = torch.zeros(n_rows, dtype=tok.dtype, device=tok.device).index_add(0, rows, tok)
    count = torch.zeros(n_rows, dtype=tok.dtype, device=tok.device).index_add(0, rows, torch.ones_like(tok))
    return total / count.clamp(min=1)


def row_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss per row over labelled tokens only (padding and prompts never count), from the
    full ``[B, T, vocab]`` logits."""
    target = _shifted(labels)
    keep = target != -100
    tok = torch.nn.functional.cross_entropy(_wide(logits[keep]), target[keep], reduction="none")
    return mean_per_row(tok, keep.nonzero()[:, 0], labels.shape[0])


def token_losses(head: torch.nn.Linear, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each hidden state ``[n, d]`` through the LM head against ``target [n]``; through
    ``seal.head_loss`` (softmax in place, no log-probability copy) when the head is frozen and has no bias."""
    if head.bias is None and not head.weight.requires_grad:
        return head_losses(hidden, head.weight, target)
    return torch.nn.functional.cross_entropy(_wide(head(hidden)), target, reduction="none")


def step_losses(model: torch.nn.Module, batch: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Per-row losses of one training step on padded rows. On plain-head architectures the LM head (about a
    fifth of a small model's FLOPs) and the softmax run only on positions that have a target, never on
    padding, prompts or the last token of a packed sequence; other models compute the full logits."""
    if not plain_head(model):
        return row_losses(model(**batch, use_cache=False).logits, labels)
    hidden = model.model(**batch, use_cache=False).last_hidden_state
    target = _shifted(labels)
    keep = target != -100
    return mean_per_row(token_losses(model.lm_head, hidden[keep], target[keep]), keep.nonzero()[:, 0],
                        labels.shape[0])


def streams(model: torch.nn.Module) -> bool:
    """Whether batched steps on ``model`` run unpadded, as one token stream (``seal.unpadded``): Llama-family
    models whose attention dispatches through transformers' ``AttentionInterface``."""
    return plain_head(model) and unpadded.supported(model)


def stream_losses(bank: AdapterBank, rows: list[_Row], slots: list[int], device: torch.device) -> torch.Tensor:
    """Per-slot losses of one batched step with no padding: ``rows[i]`` (slot ``slots[i]``'s row) end to end
    in one stream, each span through its own adapter, attention within each row's sequences, the LM head only
    where a token has a target. Equal to ``step_losses`` on the padded rows."""
    batch, spans = unpadded.collate_stream(rows, device)
    labels, segments = batch.pop("labels"), batch.pop("segments")
    row_of = torch.repeat_interleave(torch.arange(len(rows), device=device),
                                     torch.tensor([e - s for s, e in spans], device=device))
    target = _shifted(labels)[0]
    keep = target != -100
    with bank.route_spans(slots, spans), unpadded.unpadded_attention(bank.model, segments, spans):
        hidden = bank.model.model(**batch, use_cache=False).last_hidden_state[0]
    return mean_per_row(token_losses(bank.model.lm_head, hidden[keep], target[keep]), row_of[keep], len(rows))


class _AdamW:
    """AdamW over the bank's flat ``[K, P]`` adapter buffer, one row per slot; only the given slots step.

    Each slot's row has its own moments and step count, so a slot steps exactly as it would alone. The update
    is torch's own AdamW (``torch.optim.adamw.adamw``; its fused kernel where the device and torch version
    have one) applied to the rows in place: one pass over memory instead of a dozen whole-buffer operations."""

    def __init__(self, flat: torch.Tensor, lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.p, self.lr, self.wd, self.betas, self.eps = flat, lr, weight_decay, betas, eps
        self.m = torch.zeros_like(flat)
        self.v = torch.zeros_like(flat)
        self.t = [torch.zeros((), dtype=torch.float32, device=flat.device) for _ in range(flat.shape[0])]
        cpu_fused = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 4)  # fused CPU AdamW: 2.4+
        self.fused = (flat.device.type == "cuda" or (flat.device.type == "cpu" and cpu_fused)) and flat.dtype in (
            torch.float32, torch.bfloat16, torch.float16)

    def reset(self, slot: int) -> None:
        self.m[slot].zero_()
        self.v[slot].zero_()
        self.t[slot].zero_()

    @torch.no_grad()
    def step(self, slots: list[int], grad: torch.Tensor) -> None:
        """``grad[i]`` is the gradient of slot ``slots[i]``."""
        adamw(
            [self.p[s] for s in slots], [grad[i] for i in range(len(slots))],
            [self.m[s] for s in slots], [self.v[s] for s in slots], [], [self.t[s] for s in slots],
            fused=self.fused, foreach=None if self.fused else False, amsgrad=False,
            beta1=self.betas[0], beta2=self.betas[1], lr=self.lr, weight_decay=self.wd, eps=self.eps,
            maximize=False,
        )


def _clip_rows(grad: torch.Tensor, max_norm: float | None) -> torch.Tensor:
    """Clip each row (one slot's whole gradient) to ``max_norm`` in place (None: no clipping); return which
    rows are finite. One pass computes the norms; a row's norm is finite exactly when all its entries are."""
    norm = torch.linalg.vector_norm(grad, dim=1)
    finite = torch.isfinite(norm)
    if max_norm:
        scale = (max_norm / (norm + 1e-6)).clamp_(max=1.0)
        if bool((scale[finite] < 1.0).any()):
            grad.mul_(torch.where(finite, scale, 1.0).view(-1, 1))
    return finite


AUTO_PROBES: dict[tuple, tuple[float, float]] = {}
"""``auto``'s measurements in this process: (batched, one-at-a-time) seconds per token of a training step,
by (bank, threads, jobs, budget)."""

PROBE = "probe"
"""``resolve_engine``'s answer when ``auto`` has not measured this shape yet: ``_train_group`` then runs its
first real steps both ways, times them, and goes on with the faster (see ``_train_group``)."""


def resolve_engine(engine: str, device: torch.device, bank: AdapterBank | None = None, jobs: int = 1,
                   budget: int = 64) -> str:
    """The engine to use. ``auto``: one job trains alone; on CUDA K jobs train batched (small batches leave
    the device idle); on CPU a measurement on the job's own first steps decides, once per process and shape,
    so the batched pass is only used where it is faster than training the adapters one after another."""
    if engine != "auto":
        return engine
    if jobs <= 1:
        return "sequential"
    if device.type == "cuda" or bank is None:
        return "batched" if device.type == "cuda" else "sequential"
    key = probe_key(bank, jobs, budget)
    if key not in AUTO_PROBES:
        return PROBE
    t_batched, t_seq = AUTO_PROBES[key]
    return "batched" if t_batched < t_seq else "sequential"


def probe_key(bank: AdapterBank, jobs: int, budget: int) -> tuple:
    return (id(bank), bank.slots, torch.get_num_threads(), jobs, budget)


def train_adapters(bank: AdapterBank, tokenizer, jobs: list[TrainJob], cfg: InnerLoopConfig,
                   progress=None) -> list[TrainResult]:
    """Train every job's slot on its examples; return one result per job (same order)."""
    if len({j.slot for j in jobs}) != len(jobs):
        raise ValueError("each job needs its own adapter slot")
    bank.ensure_slots(max((j.slot for j in jobs), default=0) + 1)
    device = next(iter(bank.layers.values())).A.device
    engine = resolve_engine(cfg.engine, device, bank, len(jobs), cfg.batch_tokens)
    groups = [[j] for j in jobs] if engine == "sequential" else [jobs]
    results = {j.slot: TrainResult(slot=j.slot, engine=engine) for j in jobs}
    for group in groups:
        _train_group(bank, tokenizer, group, cfg, device, results, progress, engine)
    return [results[j.slot] for j in jobs]


def _train_group(bank, tokenizer, jobs, cfg, device, results, progress, engine) -> None:
    """Train the jobs' slots step by step. Step t of every slot is one pass (``batched``) or one pass per
    slot (``sequential``); either way each slot's step uses only its own row, gradient and optimiser state,
    so the two are interchangeable step by step. ``probe`` runs step 0 batched (warm-up), times step 1
    batched and step 2 one slot at a time, records both in ``AUTO_PROBES`` and goes on with the faster."""
    opt = _AdamW(bank.flat, cfg.lr, cfg.weight_decay)
    plans = {}
    for j in jobs:
        if j.reset:
            bank.reset(j.slot, j.seed)
        opt.reset(j.slot)
        seqs = tokenize_examples(tokenizer, j.examples, cfg.max_seq_tokens)
        plans[j.slot] = schedule(seqs, cfg.epochs, cfg.batch_tokens, j.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    n_steps = max((len(p) for p in plans.values()), default=0)
    # on CUDA a step is launch-bound, and the stream's per-row attention and per-span LoRA launches cost more
    # than padding does (H200: 0.90 vs 0.42 ms per token, bench/results/h200-train-step.json)
    stream = cfg.unpadded and device.type == "cpu" and streams(bank.model)
    mode, timings = ("batched" if engine == PROBE else engine), {}
    was_training = bank.model.training
    bank.model.train()  # no dropout in LoRA; base modules have dropout 0 in these models
    start = time.perf_counter()
    try:
        for step in range(n_steps):
            active = [s for s, p in plans.items() if step < len(p) and results[s].failed is None]
            if not active:
                break
            if engine == PROBE and len(active) > 1:
                mode = "sequential" if step == 2 else "batched" if step < 2 or len(timings) < 2 else mode
            t0 = time.perf_counter()
            passes = [active] if mode == "batched" else [[s] for s in active]
            for slots in passes:
                _step(bank, opt, [plans[s][step] for s in slots], slots, step, cfg, stream, pad, device, results)
            if engine == PROBE and step in (1, 2) and len(active) > 1:
                timings[mode] = (time.perf_counter() - t0) / sum(len(plans[s][step].ids) for s in active)
                if len(timings) == 2:
                    AUTO_PROBES[probe_key(bank, len(jobs), cfg.batch_tokens)] = (
                        timings["batched"], timings["sequential"])
                    mode = "batched" if timings["batched"] < timings["sequential"] else "sequential"
                    for j in jobs:
                        results[j.slot].engine = mode
            if progress is not None:
                progress(step + 1, n_steps)
    finally:
        for p in bank.parameters():
            p.grad = None
        bank.model.train(was_training)
    if engine == PROBE and len(timings) < 2:  # too few steps to measure: say what actually ran
        for j in jobs:
            results[j.slot].engine = "batched"
    elapsed = time.perf_counter() - start
    for j in jobs:
        results[j.slot].seconds = elapsed / len(jobs)


def _step(bank, opt, rows, slots, step, cfg, stream, pad, device, results) -> None:
    """One optimiser step of ``slots`` (``rows[i]`` is slot ``slots[i]``'s row) in one forward/backward."""
    for p in bank.parameters():
        p.grad = None
    if len(slots) > 1 and stream:
        losses = stream_losses(bank, rows, slots, device)
    else:
        batch = collate(rows, pad, device)
        labels = batch.pop("labels")
        with bank.route(slots if len(slots) > 1 else slots[0]):
            losses = step_losses(bank.model, batch, labels)
    values = losses.detach().tolist()
    finite = torch.isfinite(losses)
    for i, s in enumerate(slots):
        if not bool(finite[i]):
            results[s].failed = f"non-finite loss at step {step + 1}"
    ok = [s for i, s in enumerate(slots) if bool(finite[i])]
    if not ok:
        return
    losses[finite].sum().backward()
    grad = bank.flat_grad(ok)
    good = _clip_rows(grad, cfg.grad_clip).tolist()
    for s, fine in zip(ok, good, strict=True):
        if not fine:
            results[s].failed = f"non-finite gradient at step {step + 1}"
    if not all(good):
        grad = grad[torch.tensor(good, device=grad.device)]
        ok = [s for s, fine in zip(ok, good, strict=True) if fine]
    if ok:
        opt.step(ok, grad)
    for i, s in enumerate(slots):
        if s in ok:
            r = results[s]
            r.steps += 1
            r.tokens += len(rows[i].ids)
            r.losses.append(values[i])


def training_flops(n_params_base: int, tokens: int, n_params_lora: int = 0) -> float:
    """FLOPs of LoRA training over ``tokens`` tokens. The frozen base costs a forward (2N) and a backward
    through the activations (2N) per token: its weight gradients are never computed. Each adapter parameter
    costs a forward (2) and a backward to both its input and itself (4). Attention scores are not counted."""
    return (4.0 * n_params_base + 6.0 * n_params_lora) * tokens
