"""ReST-EM on the tiny model: two full rounds, selection rule, policy update, resume, bad runs."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json

import pytest
import torch

from seal.config import SealConfig
from seal.domains.knowledge import load_passages
from seal.engine import Seal
from seal.rest_em import POLICY_SLOT, RunError, select, train_knowledge
from tests.conftest import SAMPLES


class HashGrader:
    """Deterministic stand-in for a grader: a pseudo-random but fixed verdict per answer text, so rewards of
    different self-edits differ on a random tiny model (real grading would give 0 everywhere)."""

    def grade_many(self, questions, predictions, golds):
        return [int(hashlib.sha256(p.encode()).hexdigest(), 16) % 3 == 0 for p in predictions]


def _cfg(fmt: str = "implications", **rest_em) -> SealConfig:
    """The loop-logic config: the paper's format and accuracy reward (the golden records of ``test_one_loop``
    were written with them; the likelihood rewards have their own tests in ``test_likelihood``)."""
    r = {"rounds": 2, "contexts": 2, "samples": 3, "repeats": 1, "seed": 0, "reward": "accuracy"}
    r.update(rest_em)
    return SealConfig.from_dict({
        "model": {"name": "tiny"}, "lora": {"rank": 4, "alpha": 8},
        "inner_loop": {"epochs": 1, "lr": 5e-2, "batch_tokens": 64, "engine": "sequential"},
        "self_edit": {"max_new_tokens": 24, "temperature": 1.0, "format": fmt},
        "eval": {"answer_tokens": 6}, "rest_em": {**r, "policy_epochs": 2, "policy_lr": 5e-2},
    })


def _seal(tiny_lm, cfg) -> Seal:
    if getattr(tiny_lm.model, "_seal_bank", None) is not None:
        tiny_lm.model._seal_bank.detach()
    return Seal(tiny_lm, cfg, grader=HashGrader(), slots=1 + cfg.rest_em.samples)


def _selected(run_dir):
    return [json.loads((run_dir / f"round-{r}" / "selected.json").read_text()) for r in (1, 2)]


@pytest.fixture()
def passages():
    return load_passages(SAMPLES)


def test_select_keeps_only_positive_best():
    assert select([0.0, -0.2, 0.0], "best-positive") == []
    assert select([0.2, 0.4, None], "best-positive") == [1]
    assert select([None, None], "best-positive") == []
    assert select([0.2, 0.0, 0.4], "all-positive") == [0, 2]
    assert select([-0.2, -0.1], "best") == [1]  # the reference behaviour, available but not default
    assert select([0.4, 0.4], "best-positive") == [0]  # ties: first sample


def test_two_rounds_select_positive_update_policy_and_log(tiny_lm, passages, tmp_path):
    cfg = _cfg()
    seal = _seal(tiny_lm, cfg)
    before = {k: v.clone() for k, v in seal.bank.state_dict(POLICY_SLOT).items()}
    summary = train_knowledge(seal, passages, tmp_path / "run")
    run = tmp_path / "run"
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 2 * 3
    rewards = [s["reward"] for s in samples if s["reward"] is not None]
    assert any(r > 0 for r in rewards) and any(r <= 0 for r in rewards)  # the grader gives a real spread
    # every kept self-edit is the best of its context and has a positive reward
    for rnd, kept in zip((1, 2), _selected(run), strict=True):
        texts = {(json.loads(line)["context"], json.loads(line)["sample"]): json.loads(line)["text"]
                 for line in (run / f"round-{rnd}" / "self_edits.jsonl").read_text().splitlines()}
        for ctx in range(2):
            rs = {s["sample"]: s["reward"] for s in samples if s["round"] == rnd and s["context"] == ctx}
            best = max(rs, key=lambda k: (rs[k] if rs[k] is not None else -9, -k))
            expected = [texts[(ctx, best)]] if rs[best] is not None and rs[best] > 0 else []
            got = [k["text"] for k in kept if k["text"] in {texts[(ctx, s)] for s in range(3)}]
            assert got == expected
    assert sum(len(k) for k in _selected(run)) > 0
    after = seal.bank.state_dict(POLICY_SLOT)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for rnd in (1, 2):
        assert (run / f"round-{rnd}" / "policy" / "adapter_model.safetensors").is_file()
        policy_cfg = json.loads((run / f"round-{rnd}" / "policy" / "adapter_config.json").read_text())
        assert policy_cfg["base_model_name_or_path"] == tiny_lm.source == "tiny-test-model"  # built in memory
        m = json.loads((run / f"round-{rnd}" / "metrics.json").read_text())
        assert m["selected"] == len(_selected(run)[rnd - 1])
    assert json.loads((run / "config.json").read_text())["seal"]["rest_em"]["rounds"] == 2
    # contexts are disjoint across rounds
    ids = {s["round"]: set() for s in samples}
    for s in samples:
        ids[s["round"]].add(s["passage"])
    assert not ids[1] & ids[2]


def test_progress_says_when_self_edits_are_written_and_passes_done(tiny_lm, passages, tmp_path):
    """A log line once a pass's self-edits are written (before its training), one per pass and one per round."""
    lines: list[str] = []
    train_knowledge(_seal(tiny_lm, _cfg(rounds=1, contexts_per_pass=1)), passages, tmp_path / "run",
                    progress=lines.append)
    assert lines == ["round 1/1: 3 self-edits written (3/6 this round)", lines[1],
                     "round 1/1: 3 self-edits written (6/6 this round)", lines[3], lines[4]]
    assert lines[1].startswith("round 1/1: pass 1/2 done (contexts 1-1/2, 3 inner loops")
    assert lines[3].startswith("round 1/1: pass 2/2 done (contexts 2-2/2, 3 inner loops")
    assert lines[4].startswith("round 1/1 done: mean reward")


def test_resume_after_crash_gives_the_same_selections(tokenizer, passages, tmp_path):
    from seal.model import wrap_model
    from tests.conftest import build_model

    cfg = _cfg(contexts_per_pass=1)  # one inner-loop pass per context: the crash lands mid-round
    full = _seal(wrap_model(build_model(len(tokenizer)), tokenizer, "tiny"), cfg)
    train_knowledge(full, passages, tmp_path / "full")

    crashing = _seal(wrap_model(build_model(len(tokenizer)), tokenizer, "tiny"), cfg)
    calls = {"n": 0}
    real_train = crashing.train

    def train_then_crash(jobs, progress=None):
        calls["n"] += 1
        if calls["n"] == 3:  # round 2, first context: mid-run
            raise KeyboardInterrupt("simulated kill")
        return real_train(jobs, progress)

    crashing.train = train_then_crash
    with pytest.raises(KeyboardInterrupt):
        train_knowledge(crashing, passages, tmp_path / "resumed")
    assert (tmp_path / "resumed" / "round-1" / "metrics.json").is_file()
    assert not (tmp_path / "resumed" / "round-2" / "metrics.json").exists()
    def keys(path):
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        return {(r["round"], r["context"], r["sample"], r["repeat"]): r for r in recs}

    logged = keys(tmp_path / "resumed" / "samples.jsonl")

    resumed = _seal(wrap_model(build_model(len(tokenizer)), tokenizer, "tiny"), cfg)
    counted = []
    real = resumed.train
    resumed.train = lambda jobs, progress=None: counted.append(len(jobs)) or real(jobs, progress)
    with pytest.raises(RunError, match="--resume"):
        train_knowledge(resumed, passages, tmp_path / "resumed")
    train_knowledge(resumed, passages, tmp_path / "resumed", resume=True)
    final = keys(tmp_path / "resumed" / "samples.jsonl")
    assert len(final) == 2 * 2 * 3 and set(logged) < set(final)
    trained_after = [k for k, r in final.items() if k not in logged and not str(r["failed"]).startswith("unusable")]
    assert sum(counted) == len(trained_after) > 0  # finished inner loops were not redone
    assert _selected(tmp_path / "resumed") == _selected(tmp_path / "full")


def test_resume_with_another_config_is_refused(tiny_lm, passages, tmp_path):
    train_knowledge(_seal(tiny_lm, _cfg(rounds=1)), passages, tmp_path / "run")
    with pytest.raises(RunError, match="different config"):
        train_knowledge(_seal(tiny_lm, _cfg(rounds=1, samples=2)), passages, tmp_path / "run", resume=True)
    # how a run executes (contexts per pass, generation batches) may change; it leaves the results as they are
    faster = _cfg(rounds=1, contexts_per_pass=1)
    faster.eval = dataclasses.replace(faster.eval, batch_size=8, passages_per_pass=2)
    out = train_knowledge(_seal(tiny_lm, faster), passages, tmp_path / "run", resume=True)
    assert len(out["rounds"]) == 1


def test_resume_with_more_rounds_extends_a_finished_run(tokenizer, passages, tmp_path):
    """Round 2 of a run extended from 1 to 2 rounds is round 2 of a run made with 2: round r's contexts do not
    depend on the number of rounds, and round 2 starts from round 1's saved policy. Fewer rounds are refused."""
    from seal.model import wrap_model
    from tests.conftest import build_model

    def fresh(rounds):
        return _seal(wrap_model(build_model(len(tokenizer)), tokenizer, "tiny"), _cfg(rounds=rounds))

    train_knowledge(fresh(2), passages, tmp_path / "two")
    train_knowledge(fresh(1), passages, tmp_path / "one")
    assert not (tmp_path / "one" / "round-2").exists()
    out = train_knowledge(fresh(2), passages, tmp_path / "one", resume=True)
    assert len(out["rounds"]) == 2
    assert _selected(tmp_path / "one") == _selected(tmp_path / "two")
    assert json.loads((tmp_path / "one" / "config.json").read_text())["seal"]["rest_em"]["rounds"] == 2
    with pytest.raises(RunError, match="may add rounds"):
        train_knowledge(fresh(1), passages, tmp_path / "one", resume=True)
    with pytest.raises(RunError, match="different config"):  # more rounds and another change: still refused
        seal = fresh(3)
        seal.cfg.rest_em = dataclasses.replace(seal.cfg.rest_em, samples=2)
        train_knowledge(seal, passages, tmp_path / "one", resume=True)


def test_nan_loss_gets_no_reward_and_the_run_goes_on(tiny_lm, passages, tmp_path, monkeypatch):
    import seal.inner_loop as il

    real = il.mean_per_row
    monkeypatch.setattr(il, "mean_per_row", lambda tok, rows, n: real(tok, rows, n) * float("nan"))
    summary = train_knowledge(_seal(tiny_lm, _cfg(rounds=1)), passages, tmp_path / "run")
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and all(s["reward"] is None for s in samples)
    trained = [s for s in samples if not s["failed"].startswith("unusable")]
    assert trained and all("non-finite loss" in s["failed"] for s in trained)
    assert summary["rounds"][0]["selected"] == 0
    assert summary["rounds"][0]["failed_edits"] == 6


def test_full_disk_fails_clearly_and_resume_completes(tiny_lm, passages, tmp_path, monkeypatch):
    import seal.rest_em as rest_em

    real = rest_em.append_jsonl
    calls = {"n": 0}

    def flaky(path, record):
        calls["n"] += 1
        if calls["n"] == 2:  # the pass's records, after its self-edits (one write for the pass)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, record)

    monkeypatch.setattr(rest_em, "append_jsonl", flaky)
    with pytest.raises(RunError, match="disk full"):
        train_knowledge(_seal(tiny_lm, _cfg(rounds=1)), passages, tmp_path / "run")
    monkeypatch.setattr(rest_em, "append_jsonl", real)
    summary = train_knowledge(_seal(tiny_lm, _cfg(rounds=1)), passages, tmp_path / "run", resume=True)
    assert summary["rounds"][0]["round"] == 1
    lines = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 3 and all(json.loads(line) for line in lines)


def test_too_few_passages_is_a_clear_error(tiny_lm, passages, tmp_path):
    with pytest.raises(RunError, match="need 40 passages"):
        train_knowledge(_seal(tiny_lm, _cfg(rounds=2, contexts=20)), passages, tmp_path / "run")


def test_policy_from_another_lora_shape_is_refused(tiny_lm, passages, tmp_path):
    from seal.rest_em import load_policy

    train_knowledge(_seal(tiny_lm, _cfg(rounds=1)), passages, tmp_path / "run")
    other = SealConfig.from_dict({**_cfg(rounds=1).to_dict(), "lora": {"rank": 2, "alpha": 4}})
    with pytest.raises(RunError, match="does not fit"):
        load_policy(_seal(tiny_lm, other), tmp_path / "run")
    with pytest.raises(RunError, match="no policy adapter"):
        load_policy(_seal(tiny_lm, other), tmp_path)


def test_contexts_per_pass_changes_no_result(tokenizer, passages, tmp_path):
    """Training and answering several contexts' self-edits in one pass gives the records and selections of
    one pass per context, in fewer passes."""
    from seal.model import wrap_model
    from tests.conftest import build_model

    def run(per_pass):
        cfg = _cfg(contexts=3, rounds=1, contexts_per_pass=per_pass)
        # float64: the passes batch differently, so float32 sums would round differently (see conftest)
        seal = _seal(wrap_model(build_model(len(tokenizer)).to(torch.float64), tokenizer, "tiny"), cfg)
        passes = []
        real = seal.train
        seal.train = lambda jobs, progress=None: passes.append(len(jobs)) or real(jobs, progress)
        train_knowledge(seal, passages, tmp_path / f"p{per_pass}")
        recs = [json.loads(line) for line in (tmp_path / f"p{per_pass}" / "samples.jsonl").read_text().splitlines()]
        return passes, sorted((r["context"], r["sample"], r["reward"], r.get("answers"), r["failed"]) for r in recs)

    one_passes, one = run(1)
    many_passes, many = run(2)
    assert len(one_passes) == 3 and len(many_passes) == 2 and max(many_passes) > max(one_passes)
    assert many == one
    assert sum(r[3] is not None for r in one) >= 3  # most self-edits trained and answered


def test_policy_training_names_the_update_a_policys_rewards_were_measured_with(tmp_path):
    """A run's inner-loop settings away from the defaults are the policy's training tag, read from the run,
    a round or its policy dir; at the defaults, or with no config to read, there is none."""
    from seal.rest_em import policy_training

    policy = tmp_path / "run" / "round-1" / "policy"
    policy.mkdir(parents=True)
    assert policy_training(policy) == ""  # no config.json anywhere above it
    cfg = SealConfig()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"seal": cfg.to_dict()}))
    assert policy_training(policy) == ""
    epochs = cfg.inner_loop.epochs + 5
    cfg = dataclasses.replace(cfg, inner_loop=dataclasses.replace(cfg.inner_loop, epochs=epochs))
    (tmp_path / "run" / "config.json").write_text(json.dumps({"seal": cfg.to_dict()}))
    assert [policy_training(p) for p in (policy, policy.parent, tmp_path / "run")] == [f"epochs {epochs}"] * 3
