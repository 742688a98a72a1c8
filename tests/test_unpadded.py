"""Unpadded batched training (one token stream) and the chunked LM-head loss equal the padded, full-logit path."""

from __future__ import annotations

import random

import pytest
import torch

import seal.inner_loop as il
from seal.config import LoRAConfig
from seal.head_loss import head_losses
from seal.inner_loop import TrainJob, collate, pack, stream_losses, train_adapters
from seal.lora import AdapterBank
from seal.unpadded import collate_stream, row_masks


def _rows(n_rows: int, seed: int, vocab: int = 90) -> list[il._Row]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n_rows):
        seqs = []
        for _ in range(6):
            ids = [rng.randrange(3, vocab) for _ in range(rng.randrange(3, 14))]
            prompt = rng.randrange(0, 3)
            seqs.append((ids, [-100] * prompt + ids[prompt:]))
        rows.append(pack(seqs, rng.choice([16, 24, 40]))[0])
    return rows


def _bank(tiny_lm, slots=3):
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=slots)
    with torch.no_grad():
        for k in range(slots):
            bank.reset(k, k + 1)
        for lora in bank.layers.values():
            lora.B.normal_(0, 0.05)
    return bank


def _losses_and_grad(bank, fn):
    for p in bank.parameters():
        p.grad = None
    losses = fn()
    (losses * torch.arange(1, len(losses) + 1)).sum().backward()
    return losses.detach(), bank.flat_grad().clone()


@pytest.mark.parametrize("slots", [[0, 1, 2], [2, 0, 1], [0, 2]])
def test_stream_equals_padded_rows(tiny_lm, slots):
    """Same per-slot losses and gradients; spans in slot order take the grouped matmul, others the loop."""
    bank = _bank(tiny_lm)
    rows = _rows(len(slots), seed=len(slots) + slots[0])
    assert len({len(r.ids) for r in rows}) > 1 and any(len(set(r.segments)) > 1 for r in rows)
    cpu = torch.device("cpu")
    bank.model.train()

    def padded():
        batch = collate(rows, 0, cpu)
        labels = batch.pop("labels")
        with bank.route(slots):
            return il.step_losses(bank.model, batch, labels)

    want_l, want_g = _losses_and_grad(bank, padded)
    got_l, got_g = _losses_and_grad(bank, lambda: stream_losses(bank, rows, slots, cpu))
    torch.testing.assert_close(got_l, want_l, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_g, want_g, atol=1e-5, rtol=1e-4)
    assert got_g.abs().sum() > 0
    assert tiny_lm.model.config._attn_implementation != "seal_unpadded"  # restored afterwards


def test_batched_training_runs_unpadded_and_matches_padded(tiny_lm, monkeypatch):
    bank = _bank(tiny_lm)
    texts = ["alpha beta gamma delta epsilon", "one two three", "red green blue yellow purple orange"]
    jobs = [TrainJob(k, [il.Example("", t), il.Example("", t[::-1])], seed=k) for k, t in enumerate(texts)]
    cfg = il.InnerLoopConfig(epochs=3, lr=1e-2, batch_tokens=24, engine="batched")
    calls = []
    real = il.stream_losses
    monkeypatch.setattr(il, "stream_losses", lambda *a: calls.append(1) or real(*a))
    unpadded = train_adapters(bank, tiny_lm.tokenizer, jobs, cfg)
    got = bank.flat.clone()
    assert calls
    padded = train_adapters(bank, tiny_lm.tokenizer, jobs, il.InnerLoopConfig(
        epochs=3, lr=1e-2, batch_tokens=24, engine="batched", unpadded=False))
    torch.testing.assert_close(got, bank.flat, atol=1e-5, rtol=1e-4)
    for a, b in zip(unpadded, padded, strict=True):
        assert a.losses == pytest.approx(b.losses, rel=1e-4, abs=1e-5)


def test_route_spans_checks_its_input(tiny_lm):
    bank = _bank(tiny_lm, slots=2)
    with pytest.raises(ValueError, match="one span per slot"), bank.route_spans([0], [(0, 2), (2, 4)]):
        pass
    with pytest.raises(ValueError, match="cover the stream"), bank.route_spans([0, 1], [(0, 2), (3, 4)]):
        pass
    with pytest.raises(IndexError), bank.route_spans([0, 5], [(0, 2), (2, 4)]):
        pass


def test_row_masks_keep_sequences_apart():
    rows = [il._Row([5, 6, 7, 8], [-100, 6, -100, 8], [0, 1, 0, 1], [0, 0, 1, 1]),
            il._Row([9, 10, 11], [-100, 10, 11], [0, 1, 2], [0, 0, 0])]
    batch, spans = collate_stream(rows, torch.device("cpu"))
    assert spans == [(0, 4), (4, 7)]
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11]]
    masks = row_masks(batch["segments"], spans)
    assert masks[1] == (3, None)  # one sequence: plain causal attention
    n, mask = masks[0]
    assert n == 4 and mask[0, 0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]


@pytest.mark.parametrize("n,chunk", [(1, 4), (10, 4), (10, 256), (0, 4)])
def test_head_losses_equal_cross_entropy(n, chunk):
    torch.manual_seed(n)
    weight = torch.randn(50, 8)
    hidden = torch.randn(n, 8, requires_grad=True)
    target = torch.randint(0, 50, (n,))
    scale = torch.rand(n)
    got = head_losses(hidden, weight, target, chunk)
    (got * scale).sum().backward()
    g_got = hidden.grad.clone()
    hidden.grad = None
    want = torch.nn.functional.cross_entropy(hidden @ weight.t(), target, reduction="none")
    (want * scale).sum().backward()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_got, hidden.grad, atol=1e-6, rtol=1e-5)


def test_head_losses_refuse_a_trainable_head():
    with pytest.raises(ValueError, match="frozen"):
        head_losses(torch.randn(2, 4), torch.randn(6, 4, requires_grad=True), torch.tensor([0, 1]))


def test_stream_in_bfloat16_matches_padded(tiny_lm):
    """A bf16 base (the GPU setting) with float32 adapters: the stream path casts like the padded one."""
    tiny_lm.model.to(torch.bfloat16)
    bank = _bank(tiny_lm)
    rows = _rows(3, seed=11)
    cpu = torch.device("cpu")
    bank.model.train()

    def padded():
        batch = collate(rows, 0, cpu)
        labels = batch.pop("labels")
        with bank.route([0, 1, 2]):
            return il.step_losses(bank.model, batch, labels)

    want_l, want_g = _losses_and_grad(bank, padded)
    got_l, got_g = _losses_and_grad(bank, lambda: stream_losses(bank, rows, [0, 1, 2], cpu))
    assert got_l.dtype == torch.float32 and got_g.dtype == torch.float32
    torch.testing.assert_close(got_l, want_l, atol=2e-2, rtol=2e-2)
    assert torch.nn.functional.cosine_similarity(got_g, want_g, dim=1).min() > 0.99
