"""The likelihood reward: gold-answer likelihoods under adapters, and ReST-EM records that use them."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seal.config import ConfigError, SealConfig
from seal.domains.base import Domain
from seal.domains.knowledge import KnowledgeDomain, load_passages
from seal.engine import Seal
from seal.jobs import Example, TrainJob
from seal.likelihood import answer_likelihoods, combine_reward
from seal.rest_em import RunError, train, train_knowledge
from tests.conftest import SAMPLES
from tests.test_rest_em import HashGrader, _cfg, _seal


def _direct(lm, prompt: str, answer: str) -> float:
    """exp(mean log p) of ``answer``'s tokens after ``prompt``: one unpadded sequence, full logits."""
    tok = lm.tokenizer
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([p + a])).logits[0]
    logp = torch.log_softmax(logits.double(), -1)
    return math.exp(sum(float(logp[len(p) + i - 1, t]) for i, t in enumerate(a)) / len(a))


def test_likelihoods_equal_one_sequence_at_a_time_and_follow_the_adapter(tiny_lm64):
    """Batched, right-padded rows of different lengths and adapters give each row's own likelihood. In
    float64, padding and batching change only the order of sums, so ~1e-12 relative; 1e-9 leaves room."""
    lm = tiny_lm64
    seal = Seal(lm, SealConfig.from_dict({"model": {"name": "tiny"}, "lora": {"rank": 4, "alpha": 8},
                                          "inner_loop": {"epochs": 30, "lr": 5e-2, "engine": "sequential"}}),
                slots=2)
    prompts = [lm.chat("Topic: A\nWho wrote it?\nAnswer briefly."), lm.chat("Q?"), lm.chat("Topic: B\nWhen?")]
    golds = ["Ada Lovelace", "in 1843 at the latest", "x"]
    want = [_direct(lm, p, a) for p, a in zip(prompts, golds, strict=True)]
    got = answer_likelihoods(lm, seal.bank, prompts, golds, routes=[None, None, None], batch_rows=2)
    assert got == pytest.approx(want, rel=1e-9)
    assert answer_likelihoods(lm, seal.bank, ["a", "b"], ["", "  "]) == [1.0, 1.0]  # nothing to predict
    # slot 1 learns the first question's answer: its likelihood rises there, and base rows are unchanged
    seal.train([TrainJob(1, [Example(prompts[0], golds[0])], seed=0)])
    mixed = answer_likelihoods(lm, seal.bank, prompts, golds, routes=[1, None, None])
    assert mixed[0] > 1.1 * want[0]  # the loss on these tokens fell ~0.16 nats: exp(0.16) = 1.17
    assert mixed[1:] == pytest.approx(want[1:], rel=1e-9)
    with pytest.raises(ValueError, match="one answer"):
        answer_likelihoods(lm, seal.bank, prompts, golds[:2])


def test_combine_reward_rules():
    assert combine_reward("accuracy", 0.2, None) == 0.2
    assert combine_reward("likelihood", 0.2, 0.05) == 0.05
    assert combine_reward("accuracy+likelihood", 0.2, 0.05) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="needs"):
        combine_reward("likelihood", 0.2, None)
    with pytest.raises(ConfigError, match="rest_em.reward"):
        SealConfig.from_dict({"rest_em": {"reward": "loss"}})


@pytest.mark.parametrize("configured", ["likelihood", "accuracy+likelihood", "auto"])
def test_rest_em_records_the_likelihood_reward(tiny_lm, tmp_path, configured):
    """Each record's reward is exactly its rule applied to its own accuracy and likelihood changes, the
    baseline likelihood is the unedited model's (the same for every sample of a context), and selection
    follows the dense reward: every context keeps a self-edit when some likelihood rose. ``auto`` (the default)
    is ``accuracy+likelihood`` on knowledge, and the run records the rule it used; with the default format
    (``rewrite``) as the config's own."""
    rule = "accuracy+likelihood" if configured == "auto" else configured
    fmt = SealConfig().self_edit.format if configured == "auto" else "implications"
    cfg = _cfg(fmt, rounds=1, reward=configured)
    seal = Seal(tiny_lm, cfg, grader=HashGrader(), slots=1 + cfg.rest_em.samples)
    passages = load_passages(SAMPLES)
    train_knowledge(seal, passages, tmp_path / "run")
    run_cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (run_cfg["reward"], run_cfg["seal"]["rest_em"]["reward"]) == (rule, configured)
    assert run_cfg["format"] == ("rewrite" if configured == "auto" else "implications")
    recs = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert recs and all("likelihood" in r and "baseline_likelihood" in r for r in recs if r["reward"] is not None)
    dom = KnowledgeDomain()
    by_id = {p.id: p for p in passages}
    for r in recs:
        if r["reward"] is None:
            continue
        d_ll = r["likelihood"] - r["baseline_likelihood"]
        assert r["reward"] == combine_reward(rule, r["accuracy"] - r["baseline"], d_ll)
        assert 0.0 < r["likelihood"] < 1.0
        assert r["baseline_likelihood"] == pytest.approx(seal.likelihoods(dom, [(by_id[r["passage"]], None)])[0],
                                                         rel=1e-5)
        # fp32, batched with other contexts' rows in the run: |log p| ~ 6 has an ulp of 5e-7, and padding
        # reorders sums over d = 32..64 terms (~sqrt(64) ulp): ~4e-6 on the mean log p, so 1e-5 relative
    kept = {k["context"] for k in json.loads((tmp_path / "run" / "round-1" / "selected.json").read_text())}
    for pid in {r["passage"] for r in recs}:
        rs = [r["reward"] for r in recs if r["passage"] == pid and r["reward"] is not None]
        assert (pid in kept) == (max(rs) > 0)  # best-positive on the dense reward


def test_a_domain_without_gold_answers_refuses_the_likelihood_reward(tiny_lm, tmp_path):
    class NoTargets(KnowledgeDomain):
        name = "no-targets"
        task_targets = Domain.task_targets  # a domain that never defined it

    cfg = _cfg(rounds=1, reward="likelihood")
    seal = Seal(tiny_lm, cfg, grader=HashGrader(), slots=1 + cfg.rest_em.samples)
    with pytest.raises(RunError, match="needs gold answers"):
        train(seal, NoTargets(), load_passages(SAMPLES), tmp_path / "run", fmt="implications")
    # the default, auto, is the plain accuracy reward there: the run goes on and records it
    seal = _seal(tiny_lm, _cfg(rounds=1, reward="auto"))  # a fresh engine on the same model
    train(seal, NoTargets(), load_passages(SAMPLES)[:4], tmp_path / "auto", fmt="implications")
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["reward"] == "accuracy"
    recs = [json.loads(line) for line in (tmp_path / "auto" / "samples.jsonl").read_text().splitlines()]
    assert recs and not any("likelihood" in r for r in recs)
