"""Training-step benchmark: K adapters trained batched (one unpadded stream, or padded rows) vs one after
another, on the default model's shape; prints JSON.

The weights do not change what a step costs, so ``--random`` builds a randomly initialised model of the
default model's shape (SmolLM2-135M: 30 layers, d=576), which needs neither the GGUF file nor a download.
Every mode trains the same jobs (same token sequences, seeds and schedule) from the same fresh adapters::

    python bench/train_step.py --random                      # CPU, fp32
    python bench/train_step.py --random --device cuda        # CUDA, bf16 base (fp32 adapters)
    python bench/train_step.py --k 5 --repeats 3 --json step.json

Figures: milliseconds per real token for each mode (median of repeats, after one warm-up run), and
``batched_vs_sequential``: how much faster K adapters train together than one after another.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time

import torch

from seal.benchmark import sync
from seal.config import InnerLoopConfig, LoRAConfig
from seal.inner_loop import Example, TrainJob, train_adapters
from seal.lora import AdapterBank

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                    rms_norm_eps=1e-5, tie_word_embeddings=True, pad_token_id=2, eos_token_id=2, bos_token_id=1)


class IdTokenizer:
    """Texts here are space-separated token ids: tokenising is parsing them (no vocabulary needed)."""

    eos_token_id = 2
    pad_token_id = 2

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [int(t) for t in text.split()]}


def random_model(device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).to(device=device, dtype=dtype)
    model.eval()
    return model.requires_grad_(False)


def make_jobs(k: int, seqs: int, seed: int) -> list[TrainJob]:
    """K jobs of ``seqs`` sequences of 20-60 tokens each, about the size of a SQuAD implications self-edit."""
    rng = random.Random(seed)
    return [TrainJob(slot, [Example("", " ".join(str(rng.randrange(3, 49152)) for _ in range(rng.randrange(20, 60))))
                            for _ in range(seqs)], seed=seed + slot) for slot in range(k)]


def time_mode(bank: AdapterBank, jobs: list[TrainJob], cfg: InnerLoopConfig, repeats: int) -> tuple[float, int]:
    """Median seconds of training all jobs, and the real tokens trained."""
    device = bank.flat.device
    times, tokens = [], 0
    for i in range(repeats + 1):  # the first run warms up (allocator, kernels) and is not counted
        sync(device)
        t = time.perf_counter()
        res = train_adapters(bank, IdTokenizer(), jobs, cfg)
        sync(device)
        if i:
            times.append(time.perf_counter() - t)
        tokens = sum(r.tokens for r in res)
    return statistics.median(times), tokens


def run(k: int = 5, seqs: int = 10, epochs: int = 2, batch_tokens: int = 128, repeats: int = 2,
        device: str = "cpu", dtype: str = "auto", random_init: bool = True, seed: int = 0) -> dict:
    dev = torch.device(device)
    dt = (torch.bfloat16 if dev.type == "cuda" else torch.float32) if dtype == "auto" else getattr(torch, dtype)
    if random_init:
        model = random_model(dev, dt)
    else:
        from seal.config import ModelConfig
        from seal.model import load_model

        model = load_model(ModelConfig(device=device, dtype=dtype)).model
    bank = AdapterBank.attach(model, LoRAConfig(), slots=k)
    jobs = make_jobs(k, seqs, seed)
    base = InnerLoopConfig(epochs=epochs, batch_tokens=batch_tokens, seed=seed)
    modes = {
        "single": (base, jobs[:1]),
        "batched_unpadded": (dataclasses.replace(base, engine="batched", unpadded=True), jobs),
        "batched_padded": (dataclasses.replace(base, engine="batched", unpadded=False), jobs),
        "sequential": (dataclasses.replace(base, engine="sequential"), jobs),
    }
    out: dict = {"device": str(dev), "dtype": str(dt).removeprefix("torch."), "k": k, "seqs_per_job": seqs,
                 "epochs": epochs, "batch_tokens": batch_tokens, "repeats": repeats, "random_init": random_init,
                 "torch": torch.__version__, "threads": torch.get_num_threads(), "ms_per_token": {},
                 "s_per_job": {}}
    for name, (cfg, js) in modes.items():
        seconds, tokens = time_mode(bank, js, cfg, repeats)
        out["ms_per_token"][name] = 1000 * seconds / tokens
        out["s_per_job"][name] = seconds / len(js)
    ms = out["ms_per_token"]
    best = min(ms["batched_unpadded"], ms["batched_padded"])
    out["faster_batched"] = "unpadded" if ms["batched_unpadded"] <= ms["batched_padded"] else "padded"
    out["batched_vs_sequential"] = ms["sequential"] / best
    out["batched_vs_single"] = ms["single"] / best
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(dev)
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seqs", type=int, default=10, help="sequences per job")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--random", action="store_true", help="random weights of the default model's shape")
    ap.add_argument("--json", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    from seal.manifest import manifest

    t0 = time.perf_counter()
    result = run(args.k, args.seqs, args.epochs, args.batch_tokens, args.repeats, args.device, args.dtype,
                 args.random)
    result["manifest"] = manifest(command=[sys.executable, *sys.argv], config=vars(args), seeds=[0],
                                  data=["random token sequences"], wall_s=time.perf_counter() - t0)
    print(json.dumps(result, indent=2, sort_keys=True))
    if args.json:
        from seal.io import atomic_write_json

        atomic_write_json(args.json, result)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
