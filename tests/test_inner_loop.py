"""The inner loop: masking, packing, reset in place, batched == one at a time, NaN handling, save/load."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from seal.config import InnerLoopConfig, LoRAConfig
from seal.inner_loop import (
    Example,
    TrainJob,
    collate,
    pack,
    row_losses,
    schedule,
    step_losses,
    tokenize_examples,
    train_adapters,
)
from seal.lora import AdapterBank
from tests.conftest import FORWARD64, trained_loss_tol, trained_tol

TEXTS = ["The Verdant Guild was founded in 1847.", "Quillberries are small violet fruits.",
         "The Pellucid Railway is 63 kilometres long.", "Greta Holloway won the Golden Ladle eleven times."]


def _cfg(**kw) -> InnerLoopConfig:
    base = dict(epochs=2, lr=1e-2, batch_tokens=24, engine="sequential", seed=0)
    base.update(kw)
    return InnerLoopConfig(**base)


def test_prompt_tokens_and_padding_carry_no_loss(tokenizer):
    seqs = tokenize_examples(tokenizer, [Example("Q: who?", " Ilsabet Quorne"), Example("", "plain text here")], 64)
    (ids0, lab0), (ids1, lab1) = seqs
    n_prompt = len(tokenizer("Q: who?")["input_ids"])
    assert lab0[:n_prompt] == [-100] * n_prompt
    assert lab0[n_prompt:] == ids0[n_prompt:]
    assert ids0[-1] == tokenizer.eos_token_id
    assert lab1 == ids1
    rows = pack(seqs, budget=1000)
    assert len(rows) == 1
    # the first token of each packed sequence has no target (it would be predicted across the boundary)
    assert rows[0].labels[len(ids0)] == -100
    assert rows[0].positions == list(range(len(ids0))) + list(range(len(ids1)))
    short = pack(seqs[1:], budget=1000)[0]
    batch = collate([rows[0], short], pad_id=0, device=torch.device("cpu"))
    assert batch["input_ids"].shape == (2, len(ids0) + len(ids1))
    assert (batch["labels"][1, len(ids1):] == -100).all()  # padding never counts
    mask = batch["attention_mask"][0, 0]
    assert not mask[len(ids0), len(ids0) - 1]  # the second sequence cannot see the first


def test_packed_rows_equal_separate_sequences(tiny_lm64):
    tiny_lm = tiny_lm64
    tok = tiny_lm.tokenizer
    seqs = tokenize_examples(tok, [Example("", t) for t in TEXTS[:2]], 64)
    packed = collate(pack(seqs, 1000), tok.pad_token_id, torch.device("cpu"))
    packed.pop("labels")
    with torch.no_grad():
        joint = tiny_lm.model(**packed).logits[0]
        a = tiny_lm.model(torch.tensor([seqs[0][0]])).logits[0]
        b = tiny_lm.model(torch.tensor([seqs[1][0]])).logits[0]
    n = len(seqs[0][0])
    torch.testing.assert_close(joint[:n], a, **FORWARD64)
    torch.testing.assert_close(joint[n:], b, **FORWARD64)


def test_row_losses_ignore_masked_tokens():
    logits = torch.zeros(2, 4, 5)
    labels = torch.tensor([[-100, 1, 2, -100], [-100, -100, -100, 3]])
    losses = row_losses(logits, labels)
    expected = torch.log(torch.tensor(5.0))
    torch.testing.assert_close(losses, torch.stack([expected, expected]))


def test_labelled_head_losses_and_gradients_equal_full_logits(tiny_lm64):
    tiny_lm = tiny_lm64
    tok = tiny_lm.tokenizer
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=2)
    with torch.no_grad():
        bank.flat[0].normal_(0, 0.05, generator=torch.Generator().manual_seed(3))  # B != 0: A gets gradients too
    seqs = tokenize_examples(tok, [Example("Q: who?", " Ilsabet Quorne"), Example("", TEXTS[0]),
                                   Example("", TEXTS[1])], 64)
    batch = collate(pack(seqs, 30) + pack(seqs[1:2], 30), tok.pad_token_id, torch.device("cpu"))
    labels = batch.pop("labels")
    assert (labels == -100).any() and batch["input_ids"].shape[0] >= 2

    def run(fast: bool):
        for p in bank.parameters():
            p.grad = None
        with bank.route(0):
            losses = (step_losses(tiny_lm.model, batch, labels) if fast
                      else row_losses(tiny_lm.model(**batch, use_cache=False).logits, labels))
        losses.sum().backward()
        return losses.detach(), bank.flat_grad([0]).clone()

    tiny_lm.model.train()
    fast_loss, fast_grad = run(True)
    full_loss, full_grad = run(False)
    torch.testing.assert_close(fast_loss, full_loss, **FORWARD64)
    torch.testing.assert_close(fast_grad, full_grad, **FORWARD64)
    assert fast_grad.abs().sum() > 0


def test_schedule_keeps_rows_full_across_epochs(tokenizer):
    seqs = tokenize_examples(tokenizer, [Example("", t) for t in TEXTS], 64)
    total = sum(len(ids) for ids, _ in seqs)
    rows = schedule(seqs, epochs=3, budget=30, seed=0)
    assert sum(len(r.ids) for r in rows) == 3 * total  # every sequence, every epoch, exactly once
    assert all(len(r.ids) <= 30 for r in rows)
    for r in rows:  # never the same sequence twice in a row
        starts = [i for i, p in enumerate(r.positions) if p == 0]
        parts = [tuple(r.ids[a:b]) for a, b in zip(starts, starts[1:] + [len(r.ids)], strict=True)]
        assert len(parts) == len(set(parts))
    # packed as one stream: no more rows than packing each of the same shuffled epochs on its own
    rng, per_epoch = random.Random(0), 0
    for _ in range(3):
        order = list(range(len(seqs)))
        rng.shuffle(order)
        per_epoch += len(pack([seqs[i] for i in order], 30))
    assert len(rows) <= per_epoch


def _snapshot(bank: AdapterBank, slot: int) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in bank.state_dict(slot).items()}


def test_training_changes_the_adapter_and_lowers_the_loss(tiny_lm):
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=1)
    res = train_adapters(bank, tiny_lm.tokenizer, [TrainJob(0, [Example("", t) for t in TEXTS], seed=1)],
                         _cfg(epochs=6))[0]
    assert res.failed is None and res.steps >= 6
    assert res.losses[-1] < res.losses[0]
    assert any(v.abs().sum() > 0 for k, v in bank.state_dict(0).items() if "lora_B" in k)


def test_reset_in_place_second_edit_starts_from_base(tiny_lm):
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=1)
    tok = tiny_lm.tokenizer
    first = [Example("", t) for t in TEXTS[:2]]
    second = [Example("", t) for t in TEXTS[2:]]
    train_adapters(bank, tok, [TrainJob(0, second, seed=3)], _cfg())
    fresh = _snapshot(bank, 0)
    bank.reset(0, seed=99)
    train_adapters(bank, tok, [TrainJob(0, first, seed=3)], _cfg())
    train_adapters(bank, tok, [TrainJob(0, second, seed=3)], _cfg())  # reset=True by default
    after = _snapshot(bank, 0)
    for k in fresh:
        torch.testing.assert_close(after[k], fresh[k], atol=0, rtol=0)


@pytest.mark.parametrize("k", [2, 5])
def test_batched_adapters_equal_training_each_alone(tiny_lm64, k):
    tiny_lm = tiny_lm64
    tok = tiny_lm.tokenizer
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=k)
    data = [[Example("", t) for t in TEXTS[: 1 + (i % len(TEXTS))]] for i in range(k)]  # unequal step counts
    jobs = [TrainJob(i, data[i], seed=10 + i) for i in range(k)]
    alone_res = train_adapters(bank, tok, jobs, _cfg(engine="sequential"))
    alone = [_snapshot(bank, i) for i in range(k)]
    batched_res = train_adapters(bank, tok, jobs, _cfg(engine="batched"))
    assert [r.steps for r in alone_res] == [r.steps for r in batched_res]
    assert len({r.steps for r in batched_res}) > 1
    lr, steps = _cfg().lr, max(r.steps for r in alone_res)
    for i in range(k):
        for name, tensor in _snapshot(bank, i).items():
            torch.testing.assert_close(tensor, alone[i][name], **trained_tol(steps, lr))
    for a, b in zip(alone_res, batched_res, strict=True):
        assert a.losses == pytest.approx(b.losses, rel=0, abs=trained_loss_tol(steps, lr))
    # and the same greedy answers, generated for all adapters in one batch vs one adapter at a time
    from seal.generate import TransformersGenerator

    gen = TransformersGenerator(tiny_lm, bank)
    prompts = [tiny_lm.chat("Who founded the Verdant Guild?")] * k
    together = gen.complete(prompts, max_new_tokens=8, adapters=list(range(k)))
    separate = [gen.complete([p], max_new_tokens=8, adapters=i)[0] for i, p in enumerate(prompts)]
    assert together == separate


def test_shared_prompt_prefix_changes_no_answer(tiny_lm64):
    """Prompts sharing a prefix get it run once per adapter and its cache copied to their rows: greedy answers
    and seeded samples are those of plain left-padded generation and of each prompt generated alone."""
    from seal.generate import TransformersGenerator, _common_prefix

    tiny_lm = tiny_lm64  # greedy argmaxes compared across batchings: float64 (see conftest)
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=3)
    with torch.no_grad():
        bank.flat.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
    gen = TransformersGenerator(tiny_lm, bank, batch_size=32)
    stem = "Topic: the Verdant Guild and its many members over the years. "
    prompts = [stem + "Who founded it?", stem + "In which year was it founded, and where?", stem + "Why?"] * 3
    slots = [0, 0, 0, 1, 1, 1, -1, -1, -1]
    enc = [tiny_lm.tokenizer(p)["input_ids"] for p in prompts]
    assert _common_prefix(enc) >= gen.min_shared
    assert gen._cache_kw in gen._shared_prefix(enc, slots)  # the shared path is really taken
    shared = gen.complete(prompts, adapters=slots, max_new_tokens=8)
    alone = [gen.complete([p], adapters=k, max_new_tokens=8)[0] for p, k in zip(prompts, slots, strict=True)]
    sampled = gen.complete([prompts[1]] * 4, temperature=1.0, max_new_tokens=8, seed=3)
    gen.min_shared = 10**9  # never share
    assert gen.complete(prompts, adapters=slots, max_new_tokens=8) == shared == alone
    assert gen.complete([prompts[1]] * 4, temperature=1.0, max_new_tokens=8, seed=3) == sampled
    assert len(set(shared[:3])) > 1 or len(set(shared[::3])) > 1  # not trivially equal


def test_nan_loss_stops_only_that_adapter(tiny_lm, monkeypatch):
    import seal.inner_loop as il

    tok = tiny_lm.tokenizer
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=2)
    real = il.mean_per_row

    def poisoned(tok, rows, n_rows):
        out = real(tok, rows, n_rows)
        return torch.cat([torch.full_like(out[:1], float("nan")), out[1:]]) if out.shape[0] == 2 else out

    monkeypatch.setattr(il, "mean_per_row", poisoned)
    jobs = [TrainJob(0, [Example("", TEXTS[0])], seed=1), TrainJob(1, [Example("", TEXTS[1])], seed=1)]
    res = train_adapters(bank, tok, jobs, _cfg(engine="batched"))
    assert res[0].failed and "non-finite loss" in res[0].failed and res[0].steps == 0
    assert res[1].failed is None and res[1].steps == 2
    after = _snapshot(bank, 0)
    bank.reset(0, seed=1)
    for name, tensor in _snapshot(bank, 0).items():  # slot 0 was never stepped: still its fresh init
        torch.testing.assert_close(after[name], tensor, atol=0, rtol=0)


def test_adapter_saves_in_peft_format_and_peft_loads_it(tiny_lm64, tmp_path):
    from peft import PeftModel

    tiny_lm = tiny_lm64
    tok = tiny_lm.tokenizer
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8, targets=("q_proj", "v_proj")), slots=1)
    train_adapters(bank, tok, [TrainJob(0, [Example("", t) for t in TEXTS], seed=2)], _cfg())
    bank.save(0, tmp_path / "adapter")
    ids = torch.tensor([tok("The Verdant Guild")["input_ids"]])
    with torch.no_grad(), bank.route(0):
        ours = tiny_lm.model(ids).logits
    bank.detach()
    peft_model = PeftModel.from_pretrained(tiny_lm.model, tmp_path / "adapter")
    with torch.no_grad():
        theirs = peft_model(ids).logits
    assert theirs.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, **FORWARD64)


def test_merge_folds_the_update_into_base_weights(tiny_lm64):
    tiny_lm = tiny_lm64
    tok = tiny_lm.tokenizer
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=1)
    train_adapters(bank, tok, [TrainJob(0, [Example("", TEXTS[0])], seed=2)], _cfg())
    ids = torch.tensor([tok(TEXTS[1])["input_ids"]])
    with torch.no_grad(), bank.route(0):
        adapted = tiny_lm.model(ids).logits
    bank.merge(0)
    with torch.no_grad(), bank.route(None):
        merged = tiny_lm.model(ids).logits
    torch.testing.assert_close(adapted, merged, **FORWARD64)


def test_result_counts_every_real_token_processed(tiny_lm):
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=2)
    examples = [Example("Q: who?", " Ilsabet Quorne"), Example("", TEXTS[1])]
    lengths = sum(len(ids) for ids, _ in tokenize_examples(tiny_lm.tokenizer, examples, 512))
    for engine in ("sequential", "batched"):
        jobs = [TrainJob(0, examples, seed=1), TrainJob(1, examples[:1], seed=1)]
        res = train_adapters(bank, tiny_lm.tokenizer, jobs, _cfg(epochs=3, engine=engine))
        assert res[0].tokens == 3 * lengths  # prompts count, padding of the batched rows does not
        assert res[1].tokens == 3 * len(tokenize_examples(tiny_lm.tokenizer, examples[:1], 512)[0][0])


def test_all_slots_route_equals_each_slot_alone(tiny_lm64):
    """Rows 0..K-1 through slots 0..K-1 skip the weight gather; that path and a permuted (gathered) route give
    each row exactly what its adapter gives alone."""
    tiny_lm = tiny_lm64
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in bank.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.1)
    ids = torch.tensor([[5, 9, 13, 17, 21]] * 3)
    with torch.no_grad():
        alone = []
        for k in range(3):
            with bank.route(k):
                alone.append(tiny_lm.model(ids[:1]).logits[0])
        with bank.route([0, 1, 2]):
            assert bank.router.block == 1
            together = tiny_lm.model(ids).logits
        with bank.route([0, 0, 1, 1, 2, 2]):  # equal blocks of rows per slot (batched evaluation)
            assert bank.router.block == 2
            blocks = tiny_lm.model(ids.repeat(2, 1)).logits
        with bank.route([1, 1, 1, 2, 2, 2]):  # a run of slots that does not start at 0 (slot 0: the policy)
            assert (bank.router.block, bank.router.lo, bank.router.n) == (3, 1, 2)
            sub = tiny_lm.model(ids.repeat(2, 1)).logits
        with bank.route([0, 1, 1, 2, 2, 2]):  # unequal blocks (passages with different question counts)
            assert bank.router.block == 3 and bank.router.places is not None
            unequal = tiny_lm.model(ids.repeat(2, 1)).logits
        with bank.route([2, 0, 1]):
            assert not bank.router.block
            permuted = tiny_lm.model(ids).logits
    assert not bank.router.block  # restored on exit
    with bank.route(-1):
        assert bank.router.ids is None  # -1 is the base model, not the last slot
    for k in range(3):
        torch.testing.assert_close(together[k], alone[k], **FORWARD64)
        torch.testing.assert_close(blocks[2 * k], alone[k], **FORWARD64)
        torch.testing.assert_close(blocks[2 * k + 1], alone[k], **FORWARD64)
    for row, k in enumerate([2, 0, 1]):
        torch.testing.assert_close(permuted[row], alone[k], **FORWARD64)
    for row, k in enumerate([1, 1, 1, 2, 2, 2]):
        torch.testing.assert_close(sub[row], alone[k], **FORWARD64)
    for row, k in enumerate([0, 1, 1, 2, 2, 2]):
        torch.testing.assert_close(unequal[row], alone[k], **FORWARD64)


@pytest.mark.parametrize("ids, want", [
    ([0, 1, 2], (1, 0, 3, None)), ([3, 3, 4, 4], (2, 3, 2, None)), ([4, 4], (2, 4, 1, None)),
    ([1, 2, 2], (2, 1, 2, [0, 2, 3])),            # unequal blocks: slot 1's one row padded to two
    ([1, 3], (1, 1, 3, [0, 2])),                  # slot 2 absent: an empty block
    ([0, 0, 0, 5], None),                         # padding would more than double the rows
    ([2, 1], None), ([-1, 0], None), ([], None)])
def test_block_routes_of_rows_sorted_by_slot(ids, want):
    from seal.lora import _blocks

    assert _blocks(ids) == want


def test_auto_engine_measures_real_steps_and_changes_no_result(tiny_lm64, monkeypatch):
    import seal.inner_loop as il

    tiny_lm = tiny_lm64
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=3)
    texts = [" ".join([TEXTS[k]] * 3) for k in range(3)]  # enough steps to measure both ways
    jobs = [TrainJob(k, [Example("", t)], seed=k + 1) for k, t in enumerate(texts)]
    cfg = _cfg(engine="sequential", epochs=4)
    alone = train_adapters(bank, tiny_lm.tokenizer, jobs, cfg)
    expected = [_snapshot(bank, k) for k in range(3)]

    monkeypatch.setattr(il, "AUTO_PROBES", {})
    probed = train_adapters(bank, tiny_lm.tokenizer, jobs, dataclasses.replace(cfg, engine="auto"))
    key = il.probe_key(bank, 3, cfg.batch_tokens)
    t_batched, t_seq = il.AUTO_PROBES[key]
    assert t_batched > 0 and t_seq > 0
    chosen = "batched" if t_batched < t_seq else "sequential"
    assert [r.engine for r in probed] == [chosen] * 3
    assert [r.steps for r in probed] == [r.steps for r in alone] and min(r.steps for r in alone) >= 3
    steps = max(r.steps for r in alone)
    for k in range(3):  # steps run batched, then one slot at a time, then the faster: same weights
        for name, tensor in _snapshot(bank, k).items():
            torch.testing.assert_close(tensor, expected[k][name], **trained_tol(steps, cfg.lr))
        assert probed[k].losses == pytest.approx(alone[k].losses, rel=0, abs=trained_loss_tol(steps, cfg.lr))

    cpu = torch.device("cpu")
    il.AUTO_PROBES[key] = (1.0, 2.0)  # measured once per shape, then reused
    assert il.resolve_engine("auto", cpu, bank, jobs=3, budget=cfg.batch_tokens) == "batched"
    il.AUTO_PROBES[key] = (2.0, 1.0)
    assert il.resolve_engine("auto", cpu, bank, jobs=3, budget=cfg.batch_tokens) == "sequential"
    assert il.resolve_engine("auto", cpu, bank, jobs=2, budget=cfg.batch_tokens) == il.PROBE  # new shape
    assert il.resolve_engine("auto", cpu, bank, jobs=1, budget=16) == "sequential"  # nothing to batch
    assert il.resolve_engine("auto", torch.device("cuda"), bank, jobs=2, budget=16) == "batched"
    assert il.resolve_engine("sequential", cpu, bank, jobs=3, budget=16) == "sequential"


def test_training_flops_counts_base_and_adapter():
    from seal.inner_loop import training_flops

    assert training_flops(1000, 10) == 40_000
    assert training_flops(1000, 10, n_params_lora=100) == 40_000 + 6_000


def test_per_row_routing_sees_weight_changes(tiny_lm64):
    """Generation caches the side-by-side adapter weights; a change to any slot must invalidate that cache."""
    tiny_lm = tiny_lm64
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=2)
    ids = torch.tensor([[5, 9, 13, 17]] * 3)

    def per_row():
        with torch.no_grad(), bank.route([1, 0, -1]):
            return tiny_lm.model(ids).logits

    def alone(slot):
        with torch.no_grad(), bank.route(slot):
            return tiny_lm.model(ids[:1]).logits[0]

    bank.reset(0, seed=1)
    bank.reset(1, seed=2)
    first = per_row()
    torch.testing.assert_close(first[0], first[2], **FORWARD64)  # fresh adapters (B = 0) change nothing
    with torch.no_grad():
        bank.layers[next(iter(bank.layers))].B[1].fill_(0.05)  # in place, as the optimiser does
    second = per_row()
    assert not torch.allclose(second[0], first[0])
    torch.testing.assert_close(second[0], alone(1), **FORWARD64)
    torch.testing.assert_close(second[1], alone(0), **FORWARD64)
    torch.testing.assert_close(second[2], first[2], **FORWARD64)  # the base row is untouched


def test_greedy_decoding_drops_finished_rows_and_matches_generate(tiny_lm64):
    """Rows leave the batch when they emit a stop token; every answer is still exactly what ``generate``
    gives for that prompt alone, through its own adapter."""
    from seal.generate import TransformersGenerator

    tiny_lm = tiny_lm64
    bank = AdapterBank.attach(tiny_lm.model, LoRAConfig(rank=4, alpha=8), slots=2)
    with torch.no_grad():
        bank.flat.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    gen = TransformersGenerator(tiny_lm, bank, batch_size=32)
    prompts = ["Who founded the Verdant Guild?", "When?", "Where was the guild of many colours founded?",
               "Name one member.", "Why did they leave the city in the end?", "How?"]
    slots = [0, 1, -1, 0, 1, -1]
    tok = tiny_lm.tokenizer

    def alone(p, k, stops, text=True):
        ids = torch.tensor([tok(p, add_special_tokens=not tiny_lm.has_chat_template)["input_ids"]])
        with bank.route(k):
            out = tiny_lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                                         do_sample=False, eos_token_id=stops, pad_token_id=tok.pad_token_id)
        new = out[0, ids.shape[1]:]
        return tok.decode(new, skip_special_tokens=True).strip() if text else new.tolist()

    free = [alone(p, k, gen.stop_ids, text=False) for p, k in zip(prompts, slots, strict=True)]
    # a token that some rows emit early and others never: those rows end there, the rest go on
    early = [t for row in free for t in row[1:5] if sum(t in r for r in free) < len(free)]
    assert early
    gen.stop_ids = sorted(set(gen.stop_ids) | {early[0]})
    want = [alone(p, k, gen.stop_ids) for p, k in zip(prompts, slots, strict=True)]
    got = gen.complete(prompts, adapters=slots, max_new_tokens=10)
    assert got == want
    lengths = {len(tok(a, add_special_tokens=False)["input_ids"]) for a in got}
    assert len(lengths) > 1  # rows really ended at different steps


def test_generation_batches_are_even_and_bounded():
    from seal.generate import _batches

    order = list(range(70))
    assert [len(b) for b in _batches(order, [10] * 70, 64, 10**6)] == [35, 35]  # not 64 + 6
    assert _batches(order[:5], [10] * 5, 64, 10**6) == [order[:5]]
    lengths = [10] * 60 + [1000] * 10  # sorted by length: the long prompts come last
    batches = _batches(order, lengths, 128, 4000)
    assert sorted(i for b in batches for i in b) == order and [i for b in batches for i in b] == order
    assert all(len(b) * max(lengths[i] for i in b) <= 4000 or len(b) == 1 for b in batches)
    assert _batches([0], [10**6], 8, 10) == [[0]]  # one row always fits
    assert _batches([], [], 8, 10) == []
