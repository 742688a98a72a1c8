"""The engine on CUDA: batched training equals one adapter at a time (float64, and a bf16 base), the unpadded stream
equals padded rows, and batched greedy answers equal each adapter's own. Skipped where there is no GPU.
Run on a GPU machine: ``python -m pytest tests/test_cuda.py``."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import seal.inner_loop as il
from seal.config import InnerLoopConfig, LoRAConfig
from seal.inner_loop import Example, TrainJob, collate, stream_losses, train_adapters
from seal.lora import AdapterBank
from seal.model import wrap_model
from tests.conftest import FORWARD64, build_model, trained_loss_tol, trained_tol

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TEXTS = ["The Verdant Guild was founded in 1847.", "Quillberries are small violet fruits.",
         "The Pellucid Railway is 63 kilometres long.", "Greta Holloway won the Golden Ladle eleven times."]


def _lm(tokenizer, dtype):
    model = build_model(len(tokenizer)).to(dtype=dtype)
    return wrap_model(model, tokenizer, "tiny-cuda", "cuda")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_batched_equals_each_alone_on_cuda(tokenizer, dtype, monkeypatch):
    lm = _lm(tokenizer, dtype)
    streamed = []
    real = il.stream_losses
    monkeypatch.setattr(il, "stream_losses", lambda *a: streamed.append(1) or real(*a))
    k = 4
    bank = AdapterBank.attach(lm.model, LoRAConfig(rank=4, alpha=8), slots=k)
    # adapters train in fp32 on a bf16 base (float64 on a float64 one: the algorithm check, see conftest)
    assert bank.flat.is_cuda and bank.flat.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    jobs = [TrainJob(i, [Example("", t) for t in TEXTS[: 1 + i]], seed=10 + i) for i in range(k)]
    cfg = InnerLoopConfig(epochs=2, lr=1e-2, batch_tokens=24, engine="sequential")
    alone_res = train_adapters(bank, tokenizer, jobs, cfg)
    alone = bank.flat.clone()
    batched_res = train_adapters(bank, tokenizer, jobs, dataclasses.replace(cfg, engine="batched"))
    assert [r.steps for r in alone_res] == [r.steps for r in batched_res]
    assert all(r.engine == "batched" for r in batched_res)
    assert not streamed  # CUDA pads the rows of a batched step (launch-bound: padding is cheaper)
    assert alone.abs().sum() > 0
    steps = max(r.steps for r in alone_res)
    if dtype == torch.float64:
        torch.testing.assert_close(bank.flat, alone, **trained_tol(steps, cfg.lr))
        for a, b in zip(alone_res, batched_res, strict=True):
            assert a.losses == pytest.approx(b.losses, rel=0, abs=trained_loss_tol(steps, cfg.lr))
    else:  # a bf16 base rounds differently at other batch shapes (u_bf16 = 2**-8 per op, a few ops per layer):
        assert _relative(bank.flat, alone) < 0.05  # the trajectories agree to bf16 precision
        for a, b in zip(alone_res, batched_res, strict=True):
            assert a.losses == pytest.approx(b.losses, rel=1e-2, abs=1e-4)


def test_auto_engine_trains_batched_on_cuda(tokenizer):
    lm = _lm(tokenizer, torch.bfloat16)
    bank = AdapterBank.attach(lm.model, LoRAConfig(rank=4, alpha=8), slots=3)
    jobs = [TrainJob(i, [Example("", TEXTS[i])], seed=i) for i in range(3)]
    res = train_adapters(bank, tokenizer, jobs, InnerLoopConfig(epochs=1, batch_tokens=24))
    assert {r.engine for r in res} == {"batched"}


def test_stream_equals_padded_rows_on_cuda(tokenizer):
    lm = _lm(tokenizer, torch.float64)
    bank = AdapterBank.attach(lm.model, LoRAConfig(rank=4, alpha=8), slots=3)
    with torch.no_grad():
        for k in range(3):
            bank.reset(k, k + 1)
        for lora in bank.layers.values():
            lora.B.normal_(0, 0.05)
    seqs = il.tokenize_examples(tokenizer, [Example("", t) for t in TEXTS], 64)
    rows = [il.pack(seqs[i:] + seqs[:i], 24 + 8 * i)[0] for i in range(3)]
    assert len({len(r.ids) for r in rows}) > 1
    dev = torch.device("cuda")
    bank.model.train()

    def run(fn):
        for p in bank.parameters():
            p.grad = None
        losses = fn()
        losses.sum().backward()
        return losses.detach(), bank.flat_grad().clone()

    def padded():
        batch = collate(rows, 0, dev)
        labels = batch.pop("labels")
        with bank.route([0, 1, 2]):
            return il.step_losses(bank.model, batch, labels)

    want_l, want_g = run(padded)
    got_l, got_g = run(lambda: stream_losses(bank, rows, [0, 1, 2], dev))
    torch.testing.assert_close(got_l, want_l, **FORWARD64)
    torch.testing.assert_close(got_g, want_g, **FORWARD64)


def test_batched_answers_equal_each_adapter_alone_on_cuda(tokenizer):
    from seal.generate import TransformersGenerator

    lm = _lm(tokenizer, torch.float64)  # greedy argmaxes compared across batchings (see conftest)
    bank = AdapterBank.attach(lm.model, LoRAConfig(rank=4, alpha=8), slots=3)
    with torch.no_grad():
        bank.flat.normal_(0, 0.2, generator=torch.Generator(device="cuda").manual_seed(1))
    gen = TransformersGenerator(lm, bank)
    prompts = [lm.chat(q) for q in ("Who founded the Verdant Guild?", "How long is the railway?", "When?")]
    slots = [0, 1, 2, -1, 0, 1]
    rows = prompts * 2
    together = gen.complete(rows, max_new_tokens=8, adapters=slots)
    alone = [gen.complete([p], max_new_tokens=8, adapters=k)[0] for p, k in zip(rows, slots, strict=True)]
    assert together == alone
    assert len(set(together)) > 1
