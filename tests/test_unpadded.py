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
from tests.conftest import FORWARD64, matmul_bound, trained_loss_tol, trained_tol


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
def test_stream_equals_padded_rows(tiny_lm64, slots):
    """Same per-slot losses and gradients (float64: the algorithm, not the rounding; see conftest)."""
    tiny_lm = tiny_lm64
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
    torch.testing.assert_close(got_l, want_l, **FORWARD64)
    torch.testing.assert_close(got_g, want_g, **FORWARD64)
    assert got_g.abs().sum() > 0
    assert tiny_lm.model.config._attn_implementation != "seal_unpadded"  # restored afterwards


@pytest.mark.parametrize("slots", [[0, 1, 2], [2, 0, 1]])
def test_stream_route_of_one_layer_is_within_float32_rounding(tiny_lm, slots):
    """float32, as trained: spans in slot order take torch's grouped matmul, others the per-span loop. Each
    output is checked against the exact (float64) ``base(x) + scale * (x A_k) B_k`` within the rounding bound
    of the matmuls that compute it (``matmul_bound``), so the check holds on any CPU's kernels."""
    bank = _bank(tiny_lm)
    name, lora = next(iter(bank.layers.items()))
    spans, start = [], 0
    for n in (5, 9, 3)[:len(slots)]:
        spans.append((start, start + n))
        start += n
    x = torch.randn(1, start, lora.A.shape[1], generator=torch.Generator().manual_seed(5))
    with torch.no_grad(), bank.route_spans(slots, spans):
        assert (bank.router.offs is not None) == (slots == sorted(slots))
        got = lora(x)[0]
    w, x2 = lora.base.weight.t(), x[0]
    want = (x2.double() @ w.double())
    bound = matmul_bound(x2, w)
    for k, (s0, e) in zip(slots, spans, strict=True):
        a, b = lora.A[k].detach(), lora.B[k].detach()
        xa = x2[s0:e] @ a
        want[s0:e] += lora.scale * (x2[s0:e].double() @ a.double() @ b.double())
        bound[s0:e] += lora.scale * (matmul_bound(x2[s0:e], a) @ b.abs().double() + matmul_bound(xa, b))
    bound += 4 * torch.finfo(torch.float32).eps * want.abs()  # the scale and the residual add, rounded
    assert ((got.double() - want).abs() <= bound).all()
    assert (lora.scale * (x2 @ lora.A[slots[0]]) @ lora.B[slots[0]]).abs().max() > 100 * bound.max()  # not vacuous


def test_batched_training_runs_unpadded_and_matches_padded(tiny_lm64, monkeypatch):
    tiny_lm = tiny_lm64
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
    steps = max(r.steps for r in unpadded)
    torch.testing.assert_close(got, bank.flat, **trained_tol(steps, cfg.lr))
    assert (got - bank.flat).abs().max() < (got - _bank_after_reset(bank)).abs().max()  # the bound is not vacuous
    for a, b in zip(unpadded, padded, strict=True):
        assert a.losses == pytest.approx(b.losses, rel=0, abs=trained_loss_tol(steps, cfg.lr))


def _bank_after_reset(bank) -> torch.Tensor:
    flat = bank.flat.clone()
    for k in range(bank.slots):
        bank.reset(k, k)
    fresh, bank.flat[:] = bank.flat.clone(), flat
    return fresh


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
    weight = torch.randn(50, 8, dtype=torch.float64)
    hidden = torch.randn(n, 8, requires_grad=True, dtype=torch.float64)
    target = torch.randint(0, 50, (n,))
    scale = torch.rand(n, dtype=torch.float64)
    got = head_losses(hidden, weight, target, chunk)
    (got * scale).sum().backward()
    g_got = hidden.grad.clone()
    hidden.grad = None
    want = torch.nn.functional.cross_entropy(hidden @ weight.t(), target, reduction="none")
    (want * scale).sum().backward()
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, **FORWARD64)
    torch.testing.assert_close(g_got, hidden.grad, **FORWARD64)


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
    # bf16 keeps 8 significant bits (u = 2**-8 ~ 3.9e-3); the two paths round the activations of each of the
    # 2 layers at different places, a couple of u each: 2 layers x 2 u ~ 1.6e-2, hence 2e-2
    torch.testing.assert_close(got_l, want_l, atol=2e-2, rtol=2e-2)
    assert torch.nn.functional.cosine_similarity(got_g, want_g, dim=1).min() > 0.99
