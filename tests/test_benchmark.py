"""The benchmark's reference procedure (PEFT + HF Trainer, padded rows) runs and leaves the engine usable."""

from __future__ import annotations

import torch

from seal.benchmark import base_params, matmul_flops, reference_one_epoch
from seal.config import SealConfig
from seal.engine import Seal
from seal.inner_loop import Example, TrainJob


def test_reference_epoch_then_engine_still_works(tiny_lm):
    cfg = SealConfig.from_dict({"lora": {"rank": 4, "alpha": 8}, "inner_loop": {"epochs": 1, "engine": "sequential"}})
    seal = Seal(tiny_lm, cfg, slots=2)
    weights = {n: p.clone() for n, p in tiny_lm.model.named_parameters() if "lora" not in n and ".A" not in n
               and ".B" not in n}
    examples = [Example("", "The Verdant Guild was founded in 1847."), Example("", "Quillberries are violet.")]
    seconds = reference_one_epoch(seal, examples, pad_to=64)
    assert seconds > 0
    # the PEFT adapter was removed again: base weights untouched, our bank re-attached with its slots
    for n, p in tiny_lm.model.named_parameters():
        if n in weights:
            assert torch.equal(p, weights[n]), n
    assert seal.bank.slots == 2 and seal.generator.bank is seal.bank
    res = seal.train([TrainJob(1, examples, seed=0)])[0]
    assert res.steps > 0 and res.failed is None


def test_flop_helpers(tiny_lm):
    assert matmul_flops(seconds=0.05) > 1e6
    n = base_params(tiny_lm.model)
    assert n == sum(p.numel() for p in tiny_lm.model.parameters())  # tied LM head counts as a matmul


def test_benchmark_run_reports_every_figure(tiny_model_dir, monkeypatch):
    """The whole benchmark on the tiny model: every key the issue asks for, sane values, (c) on the auto engine."""
    import seal.benchmark as bm

    monkeypatch.setattr(bm, "matmul_flops", lambda **kw: 1e9)
    cfg = SealConfig.from_dict({"model": {"name": str(tiny_model_dir)}, "lora": {"rank": 4, "alpha": 8},
                                "inner_loop": {"epochs": 4, "batch_tokens": 16}, "self_edit": {"max_new_tokens": 8},
                                "eval": {"answer_tokens": 4}})
    out = bm.run(contexts=2, k=2, cfg=cfg, data=bm.SAMPLES)
    keys = ["reference_s_per_edit", "single_s_per_edit", "batched_s_per_edit", "reference_gain", "single_gain",
            "batched_gain", "single_eval_s", "batched_eval_s", "flops_utilisation", "peak_rss_mb"]
    for key in keys:
        assert key in out and out[key] == out[key], key  # present and not NaN
    assert out["edits"] == 4 and out["contexts"] == 2 and out["contexts_per_pass"] == 2
    assert out["batched_per_context_eval_s"] > 0 and out["per_context_eval_speedup"] > 0
    assert out["batched_train_engine"] in ("batched", "sequential")
    probe = out["auto_probe_ms_per_token"]  # what auto measured on this model, and its choice follows from it
    assert probe["batched"] > 0 and probe["sequential"] > 0
    assert out["batched_train_engine"] == ("batched" if probe["batched"] < probe["sequential"] else "sequential")
    assert out["other_engine"] in ("batched", "sequential") and out["other_engine"] != out["batched_train_engine"]
    assert out["reference_s_per_edit"] > out["single_eval_s"] > 0
    assert 0 < out["flops_utilisation"] and 0 < out["single_flops_utilisation"]
    for gain in ("reference_gain", "single_gain", "batched_gain"):
        assert -1 <= out[gain] <= 1
