"""Inner-loop benchmark: seconds per self-edit evaluation, side by side, same passages and self-edits for all.

(a) ``reference`` — the reference procedure: a fresh PEFT adapter wrapped around the model per edit, the
    Hugging Face Trainer, batch 1, every sequence padded to 2048 tokens, the baseline re-graded per edit.
    It is very slow on a CPU, so one epoch of one edit is timed and scaled to the epoch count (reported as
    such). Its padding is masked out of the loss (the reference counted it, a flaw), which makes its updates
    mathematically those of batch-1 unpadded training; its accuracy gain is measured with that schedule.
(b) ``single`` — seal, one edit at a time (packed sequences, adapter reset in place, cached baseline).
(c) ``batched`` — seal with K candidates per context, as ReST-EM's E-step runs them: the candidates of
    ``rest_em.contexts_per_pass`` contexts (default 4) trained in one pass by the default ``auto`` engine (batched
    on CUDA; on CPU whichever is faster on the pass's own timed steps) and answered in one batched generation
    (per-row adapters). The other engine is run too (``other_engine_*``) to show the choice was right, and the
    same adapters are also answered one context per batch (``batched_per_context_eval_s``).

Also: evaluation time alone for (b) and (c); achieved training FLOP/s (``training_flops``: frozen base 4N and
LoRA 6 FLOPs per parameter per real token, padding not counted) against the matmul FLOP/s measured in the
same run, in the model's dtype (fp32 on CPU; bf16 at 4096^3 on CUDA) — ``flops_utilisation`` for (c),
``single_flops_utilisation`` for (b); and peak memory.
Run: ``python bench/inner_loop.py`` (or ``seal bench``).
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from seal.config import SealConfig
from seal.domains.base import SelfEditError
from seal.domains.knowledge import KnowledgeDomain, Passage, load_passages
from seal.engine import Seal
from seal.inner_loop import AUTO_PROBES, Example, TrainJob, probe_key, tokenize_examples, training_flops

SQUAD = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad" / "squad_dev.json"
SAMPLES = Path(__file__).parent / "samples" / "passages.json"


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a wall-clock timer covers it (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops(seconds: float = 2.0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """Matmul FLOP/s of this machine in ``dtype``: on CPU at the default model's MLP shape (256 tokens x 576 x
    1536); on CUDA at 4096^3, the device's dense peak (at the small shape a GPU only shows launch latency)."""
    dev = torch.device(device)
    m, k, n = (256, 576, 1536) if dev.type == "cpu" else (4096, 4096, 4096)
    a, b = torch.randn(m, k, device=dev, dtype=dtype), torch.randn(k, n, device=dev, dtype=dtype)
    inner = 1 if dev.type == "cpu" else 20  # CUDA: queue several products per synchronisation
    for _ in range(5):
        a @ b
    sync(dev)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(inner):
            a @ b
        sync(dev)
        count += inner
    return 2 * m * k * n * count / (time.perf_counter() - start)


def lora_params(seal: Seal) -> int:
    """Parameters of one adapter slot."""
    return sum(p[0].numel() for p in seal.bank.parameters())


def base_params(model: torch.nn.Module) -> int:
    """Parameters touched per token (embeddings are a lookup; the tied LM head is a matmul)."""
    n = sum(p.numel() for name, p in model.named_parameters() if "lora" not in name and ".A" not in name)
    emb = model.get_input_embeddings().weight.numel()
    return n - emb + (emb if getattr(model.config, "tie_word_embeddings", False) else 0)


def _examples(dom: KnowledgeDomain, p: Passage, text: str) -> list[Example] | None:
    try:
        return dom.parse_self_edit(p, text, "implications").examples
    except SelfEditError:
        return None


def reference_one_epoch(seal: Seal, examples: list[Example], pad_to: int = 2048, max_steps: int | None = None) -> float:
    """Seconds for one epoch of the reference procedure on one edit (PEFT wrap + HF Trainer + pad to 2048)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    tok = seal.lm.tokenizer
    seqs = tokenize_examples(tok, examples, seal.cfg.inner_loop.max_seq_tokens)
    if max_steps:
        seqs = seqs[:max_steps]
    rows = []
    for ids, labels in seqs:
        pad = pad_to - len(ids)
        rows.append({"input_ids": ids + [tok.pad_token_id] * pad, "attention_mask": [1] * len(ids) + [0] * pad,
                     "labels": labels + [-100] * pad})
    model = seal.lm.model
    slots = seal.bank.slots
    seal.bank.detach()  # the reference wraps the plain model with a fresh PEFT adapter per edit
    try:
        lcfg = seal.cfg.lora
        peft_model = get_peft_model(model, LoraConfig(r=lcfg.rank, lora_alpha=lcfg.alpha,
                                                      target_modules=list(lcfg.targets), lora_dropout=0.0,
                                                      task_type="CAUSAL_LM"))
        args = TrainingArguments(output_dir="/tmp/seal-bench-ref", per_device_train_batch_size=1,
                                 num_train_epochs=1, learning_rate=seal.cfg.inner_loop.lr, report_to=[],
                                 save_strategy="no", logging_strategy="no", use_cpu=seal.lm.device.type == "cpu",
                                 disable_tqdm=True, dataloader_pin_memory=False)
        trainer = Trainer(model=peft_model, args=args, train_dataset=rows,
                          data_collator=lambda b: {k: torch.tensor([r[k] for r in b]) for k in b[0]})
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        peft_model.unload()
    finally:
        from seal.lora import AdapterBank

        model.requires_grad_(False)
        model.eval()
        model._seal_bank = None
        seal.bank = AdapterBank.attach(model, seal.cfg.lora, slots)
        seal.generator.bank = seal.bank
    return seconds * (len(tokenize_examples(tok, examples, seal.cfg.inner_loop.max_seq_tokens)) / len(seqs))


def run(contexts: int = 4, k: int = 5, repeats: int = 1, seed: int = 0, data: str | Path | None = None,
        cfg: SealConfig | None = None, reference: bool = True) -> dict[str, Any]:
    cfg = cfg or SealConfig()
    data = Path(data) if data else (SQUAD if SQUAD.is_file() else SAMPLES)
    passages = [p for p in load_passages(data) if 3 <= len(p.questions)][:contexts]
    per_pass = max(1, min(cfg.rest_em.contexts_per_pass, len(passages)))
    passes = [list(range(i, min(i + per_pass, len(passages)))) for i in range(0, len(passages), per_pass)]
    seal = Seal.load(cfg, slots=k * per_pass)
    dom = KnowledgeDomain()
    dev, dtype = seal.lm.device, next(seal.lm.model.parameters()).dtype

    def peak() -> float:
        return matmul_flops(device=dev, dtype=dtype)

    peaks = [peak()]  # sampled again between phases: a shared machine's speed drifts over minutes
    n_base = base_params(seal.lm.model)
    # the same self-edits for every procedure
    edits: list[tuple[Passage, list[Example]]] = []
    t0 = time.perf_counter()
    texts = seal.write_self_edits(dom, [(p, "implications") for p in passages], n=k, seed=seed)
    write_s = (time.perf_counter() - t0) / (k * len(passages))
    for p, ts in zip(passages, texts, strict=True):
        for t in ts:
            ex = _examples(dom, p, t) or dom.parse_self_edit(p, "", "passage").examples
            edits.append((p, ex))
    baselines = {p.id: seal.baseline(dom, p).accuracy for p in passages}

    def timed_single() -> tuple[list[float], list[float], list[float], float, float]:
        per_edit, evals, gains, tokens, train_s = [], [], [], 0, 0.0
        for p, ex in edits:
            t = time.perf_counter()
            tokens += seal.train([TrainJob(0, ex, seed=seed)])[0].tokens
            sync(dev)
            t_train = time.perf_counter() - t
            t = time.perf_counter()
            acc = seal.evaluate(dom, [(p, 0)])[0].accuracy
            t_eval = time.perf_counter() - t
            per_edit.append(t_train + t_eval)
            evals.append(t_eval)
            gains.append(acc - baselines[p.id])
            train_s += t_train
        return per_edit, evals, gains, tokens, train_s

    def timed_batched(engine: str) -> tuple[list[float], list[float], list[float], float, float, str]:
        """Like ReST-EM's E-step: the K candidates of ``per_pass`` contexts trained in one pass, answered in one
        batched generation; per edit: the pass's time over its edits."""
        seal.cfg.inner_loop = dataclasses.replace(cfg.inner_loop, engine=engine)
        per_edit, evals, gains, tokens, train_s, used = [], [], [], 0, 0.0, ""
        for ctxs in passes:
            group = [e for ci in ctxs for e in edits[ci * k:(ci + 1) * k]]
            t = time.perf_counter()
            res = seal.train([TrainJob(i, ex, seed=seed) for i, (_, ex) in enumerate(group)])
            sync(dev)
            t_train = time.perf_counter() - t
            tokens += sum(r.tokens for r in res)
            train_s += t_train
            used = res[0].engine
            t = time.perf_counter()
            scores = seal.evaluate(dom, [(p, i) for i, (p, _) in enumerate(group)])
            t_eval = time.perf_counter() - t
            per_edit.append((t_train + t_eval) / len(group))
            evals.append(t_eval / len(group))
            gains += [s.accuracy - baselines[p.id] for s, (p, _) in zip(scores, group, strict=True)]
        seal.cfg.inner_loop = cfg.inner_loop
        return per_edit, evals, gains, tokens, train_s, used

    def per_context_eval() -> list[float]:
        """Evaluation alone, one context's K adapters per batch (the adapters of the last batched run)."""
        out = []
        for ctxs in passes:
            for j, ci in enumerate(ctxs):
                t = time.perf_counter()
                seal.evaluate(dom, [(edits[ci * k][0], j * k + i) for i in range(k)])
                out.append((time.perf_counter() - t) / k)
        return out

    med = statistics.median
    single_runs = [timed_single() for _ in range(repeats)]
    peaks.append(peak())
    single = single_runs[-1]
    batched_runs = [timed_batched("auto") for _ in range(repeats)]
    context_evals = per_context_eval()
    forced = timed_batched("sequential" if batched_runs[-1][5] == "batched" else "batched")
    n_lora = lora_params(seal)
    peaks.append(peak())
    flops_peak = med(peaks)

    def gflops(tokens: float, seconds: float) -> float:
        return training_flops(n_base, int(tokens), n_lora) / seconds / 1e9

    out: dict[str, Any] = {
        "device": str(seal.lm.device), "torch_threads": torch.get_num_threads(), "loadavg_1m": os.getloadavg()[0],
        "model": cfg.model.name, "contexts": len(passages), "k": k, "edits": len(edits), "repeats": repeats,
        "epochs": cfg.inner_loop.epochs, "batch_tokens": cfg.inner_loop.batch_tokens, "lora_rank": cfg.lora.rank,
        "self_edit_write_s": write_s,
        "single_s_per_edit": med([x for r in single_runs for x in r[0]]),
        "single_eval_s": med([x for r in single_runs for x in r[1]]),
        "single_gain": statistics.fmean(single[2]),
        "batched_train_engine": batched_runs[-1][5],
        # what ``auto`` measured on the first batched run's own steps 1 (batched) and 2 (one adapter at a
        # time), in milliseconds per token, and decided on
        "auto_probe_ms_per_token": dict(zip(("batched", "sequential"), [
            None if t is None else 1000 * t for t in AUTO_PROBES.get(
                probe_key(seal.bank, k * len(passes[0]), cfg.inner_loop.batch_tokens), (None, None))],
            strict=True)),
        "batched_s_per_edit": med([x for r in batched_runs for x in r[0]]),
        "batched_eval_s": med([x for r in batched_runs for x in r[1]]),
        "batched_gain": statistics.fmean(batched_runs[-1][2]),
        "contexts_per_pass": per_pass,
        # the same adapters answered one context (K adapters) per batch, as with contexts_per_pass = 1
        "batched_per_context_eval_s": med(context_evals),
        "other_engine": forced[5],
        "other_engine_s_per_edit": med(forced[0]),
        "other_engine_gain": statistics.fmean(forced[2]),
        "matmul_gflops": flops_peak / 1e9,
        "matmul_dtype": str(dtype).removeprefix("torch."),
        "matmul_gflops_samples": [p / 1e9 for p in peaks],
        "single_train_gflops": gflops(single[3], single[4]),
        "batched_train_gflops": gflops(sum(r[3] for r in batched_runs), sum(r[4] for r in batched_runs)),
        "other_engine_train_gflops": gflops(forced[3], forced[4]),
    }
    # utilisation of (c), the default path for K candidates; (b)'s alongside
    out["flops_utilisation"] = out["batched_train_gflops"] / out["matmul_gflops"]
    out["single_flops_utilisation"] = out["single_train_gflops"] / out["matmul_gflops"]
    out["eval_speedup"] = out["single_eval_s"] / out["batched_eval_s"]
    out["per_context_eval_speedup"] = out["single_eval_s"] / out["batched_per_context_eval_s"]
    if reference:
        # one edit, one epoch, through PEFT + Trainer + padding to 2048, scaled to the epoch count
        _, ex = edits[0]
        one_epoch = reference_one_epoch(seal, ex)
        t = time.perf_counter()
        seal.evaluate(dom, [(edits[0][0], None)])  # the reference re-grades the baseline for every edit
        regrade = time.perf_counter() - t
        out["reference_s_per_edit"] = one_epoch * cfg.inner_loop.epochs + regrade + out["single_eval_s"]
        out["reference_timed"] = "1 edit x 1 epoch, scaled to the epoch count"
        # its updates equal batch-1 unpadded training (padding masked): measure that schedule's gain
        seal.cfg.inner_loop = dataclasses.replace(cfg.inner_loop, batch_tokens=16, engine="sequential")
        ref_gains = []
        for p, ex in edits:
            seal.train([TrainJob(0, ex, seed=seed)])
            ref_gains.append(seal.evaluate(dom, [(p, 0)])[0].accuracy - baselines[p.id])
        seal.cfg.inner_loop = cfg.inner_loop
        out["reference_gain"] = statistics.fmean(ref_gains)
        out["speedup_batched_vs_reference"] = out["reference_s_per_edit"] / out["batched_s_per_edit"]
        out["speedup_single_vs_reference"] = out["reference_s_per_edit"] / out["single_s_per_edit"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(dev)
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return out
