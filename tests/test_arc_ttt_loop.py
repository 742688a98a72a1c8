"""ARC on the LoRA engine: TTT inner loop, prediction + voting, self-edit policy, eval protocol, ReST-EM, CLI.

All on the tiny random model (seconds); the real default model is exercised by the documented runs.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from seal.arc_loop import (
    OutcomeCache,
    evaluate_arc,
    markdown_table,
    oracle_grid,
    score_samples,
    train_policy,
)
from seal.config import ConfigError, SealConfig
from seal.domains.arc import ArcSelfEdit, encode_grid, format_task_prompt, generate_easy_tasks, get_transform
from seal.domains.arc.augment import apply_to_task
from seal.domains.arc.policy import (
    SampledEdit,
    _Scorer,
    constrained_sample,
    policy_prompt,
    sample_self_edits,
    value_fields,
)
from seal.domains.arc.selfedit import parse_self_edit, to_json
from seal.domains.arc.ttt import ArcConfig, TTTItem, evaluate_edits, predict, train_edits, ttt_examples
from seal.engine import Seal
from seal.inner_loop import Example
from seal.io import read_jsonl

SMALL = dict(max_examples=3, max_chars=400, tta=("identity", "transpose"), epoch_choices=(1,),
             lr_choices=(1e-3, 3e-3), slots=2, oracle_augmentations=((),), oracle_loss_on=("output", "all"),
             oracle_lrs=(1e-3,), oracle_epochs=(1,))


def tasks(n=2):
    return generate_easy_tasks(n, seed=0, max_side=2, n_train=2)


@pytest.fixture()
def seal(tiny_lm):
    return Seal(tiny_lm, SealConfig(), slots=3)


EDIT = ArcSelfEdit(True, False, False, False, "output", 1e-3, 1)


def test_ttt_examples_put_the_loss_where_the_edit_says():
    task = tasks(1)[0]
    cfg = ArcConfig(max_examples=4)
    out_only = ttt_examples(task, EDIT, cfg)
    all_tok = ttt_examples(task, ArcSelfEdit(True, False, False, False, "all", 1e-3, 1), cfg)
    assert 1 <= len(out_only) <= 4 and len(all_tok) == len(out_only)
    assert all(e.prompt.endswith("Output:\n") and e.completion.endswith("\n") for e in out_only)
    assert all(e.prompt == "" for e in all_tok)
    assert [e.completion for e in all_tok] == [e.prompt + e.completion for e in out_only]


def test_ttt_trains_each_slot_with_its_own_hyperparameters(seal, monkeypatch):
    import seal.domains.arc.ttt as ttt_mod

    seen = []
    real = ttt_mod.train_adapters

    def spy(bank, tok, jobs, inner, progress=None):
        seen.append((inner.lr, inner.epochs, [j.slot for j in jobs]))
        return real(bank, tok, jobs, inner, progress)

    monkeypatch.setattr(ttt_mod, "train_adapters", spy)
    task = tasks(1)[0]
    b0 = [lora.B[1].clone() for lora in seal.bank.layers.values()]
    cfg = ArcConfig(**SMALL)
    items = [TTTItem(1, task, EDIT), TTTItem(2, task, ArcSelfEdit(False, False, False, False, "all", 3e-3, 2))]
    res = train_edits(seal, items, cfg, seed=0)
    assert sorted(seen) == [(1e-3, 1, [1]), (3e-3, 2, [2])]
    assert all(r is not None and r.steps > 0 and r.failed is None for r in res)
    assert res[1].steps > res[0].steps or len(ttt_examples(task, items[1].edit, cfg)) < 3
    changed = any(not torch.equal(lora.B[1], b) for lora, b in zip(seal.bank.layers.values(), b0, strict=True))
    assert changed, "TTT must change the adapter"
    # same seed and edit -> same adapter (deterministic reward)
    w = [lora.B[1].clone() for lora in seal.bank.layers.values()]
    train_edits(seal, items[:1], cfg, seed=0)
    assert all(torch.equal(lora.B[1], x) for lora, x in zip(seal.bank.layers.values(), w, strict=True))


class FakeGenerator:
    """Answers with the right grid (in the query's frame) for adapter 1, a fixed wrong grid otherwise."""

    def __init__(self, task, cfg, wrong="12\n34"):
        self.calls = []
        self.right = {}
        for name in cfg.tta:
            moved = apply_to_task(task, get_transform(name))
            self.right[format_task_prompt(moved.train, moved.test_inputs[0])] = encode_grid(moved.test_outputs[0])
        self.wrong = wrong

    def complete(self, prompts, *, max_new_tokens, adapters=None, **kw):
        self.calls.append((list(prompts), list(adapters), max_new_tokens))
        return [self.right[p] + "\n\nInput:\n1" if a == 1 else self.wrong for p, a in zip(prompts, adapters,
                                                                                         strict=True)]


def test_predict_votes_over_augmentations_in_one_batched_call():
    task = tasks(1)[0]
    cfg = ArcConfig(tta=("identity", "transpose", "flip_h", "rot180"))
    gen = FakeGenerator(task, cfg)
    good, base = predict(gen, [(task, 1), (task, None)], cfg)
    assert len(gen.calls) == 1
    prompts, adapters, budget = gen.calls[0]
    assert adapters == [1] * 4 + [-1] * 4 and len(prompts) == 8
    out = task.test_outputs[0]
    assert budget >= len(out) * (len(out[0]) + 1)
    assert good.solved and good.attempts[0][0] == out
    assert not base.solved and base.attempts[0][0] != out  # "12/34" inverted differently per transform


def test_vote_ranks_by_agreement_and_pass_at_2():
    task = tasks(1)[0]
    out = task.test_outputs[0]
    wrong = tuple(tuple((v + 1) % 10 for v in row) for row in out)
    names = ("identity", "transpose", "flip_h", "rot180")
    frame = {}
    for name in names:
        moved = apply_to_task(task, get_transform(name))
        frame[format_task_prompt(moved.train, moved.test_inputs[0])] = name

    class ThreeWrongOneRight:
        def complete(self, prompts, *, max_new_tokens, adapters=None, **kw):
            return [encode_grid(out) if frame[p] == "identity" else encode_grid(get_transform(frame[p]).apply(wrong))
                    for p in prompts]

    one = predict(ThreeWrongOneRight(), [(task, 1)], ArcConfig(tta=names, attempts=1))[0]
    assert one.attempts == [[wrong]] and not one.solved
    two = predict(ThreeWrongOneRight(), [(task, 1)], ArcConfig(tta=names, attempts=2))[0]
    assert two.attempts == [[wrong, out]] and two.solved


def test_malformed_self_edit_gets_zero_reward_and_a_logged_reason(seal, tmp_path):
    task = tasks(1)[0]
    cache = OutcomeCache(seal, ArcConfig(**SMALL))
    bad = parse_self_edit('{"data_generation": {"use_basic_augmentations": tru')
    assert bad.edit is None and "invalid JSON" in bad.reason
    sampled = [SampledEdit("{oops", None, bad.reason)]
    assert score_samples(cache, task, sampled) == [(0.0, None, False)]
    assert cache.evaluated == 0  # nothing was trained for an invalid self-edit

    class Garbage:
        def complete(self, prompts, **kw):
            return ["Sure! Here is the config: {learning_rate: fast}"] * len(prompts)

    seal.generator = Garbage()
    log = tmp_path / "log.jsonl"
    res = evaluate_arc(seal, [task], ["ttt_self_edit"], ArcConfig(**SMALL, self_edit_mode="free"), log_path=log)
    d = res.as_dict()["ttt_self_edit"]
    assert d["success_rate"] == 0.0 and d["invalid_edits"] == 1 and d["n_tasks"] == 1
    rec = next(read_jsonl(log))["ttt_self_edit"][0]
    assert rec["reward"] == 0.0 and rec["valid"] is False and rec["outcome_reason"].startswith("invalid self-edit")


def test_out_of_range_values_are_clamped_not_fatal():
    res = parse_self_edit(json.dumps({"data_generation": {}, "training": {
        "strategy": "train_using_all_tokens", "learning_rate": 5, "num_train_epochs": 99}}), max_epochs=3)
    assert res.edit is not None and res.edit.learning_rate == 1e-2 and res.edit.epochs == 3 and res.warnings


def test_constrained_sampling_is_valid_json_and_scores_exactly(seal):
    task = tasks(1)[0]
    cfg = ArcConfig(**SMALL)
    edits = constrained_sample(seal, policy_prompt(seal.lm, task), 4, cfg, seed=3)
    assert len(edits) == 4
    for e in edits:
        assert e.edit is not None and e.text == to_json(e.edit) and parse_self_edit(e.text).edit == e.edit
        assert e.edit.learning_rate in cfg.lr_choices and e.edit.epochs in cfg.epoch_choices and e.logprob <= 0
    again = constrained_sample(seal, policy_prompt(seal.lm, task), 4, cfg, seed=3)
    assert [e.text for e in again] == [e.text for e in edits]
    # the cached scorer equals a plain full-sequence log-probability
    prompt = policy_prompt(seal.lm, task)
    scorer = _Scorer(seal, prompt, None)
    conts = [value_fields(cfg)[0][0] + "true,", value_fields(cfg)[0][0] + "false,"]
    got = scorer.logprobs(conts)
    tok = seal.lm.tokenizer
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    for text, lp in zip(conts, got, strict=True):
        c_ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = seal.lm.model(torch.tensor([p_ids + c_ids])).logits[0].float().log_softmax(-1)
        ref = sum(float(logits[len(p_ids) - 1 + j, t]) for j, t in enumerate(c_ids))
        # float32 log-probabilities of a few tokens, ~10 in size: the cached scorer sums in another order than
        # the full forward, a relative ~1e-6 of each logit (sqrt(n) * u over the tiny model's sums), so ~1e-5
        # in total; 1e-3 leaves 100x room on any CPU and is far below the gap between two choices (~0.1)
        assert lp == pytest.approx(ref, abs=1e-3)
    # incremental scoring on a committed state == scoring the whole continuation from the prompt
    first = conts[0]
    state = scorer.commit(scorer.root(), first)
    pieces = [' "use_size_augmentations": true,', ' "use_size_augmentations": false,']
    inc = scorer.extend_scores(state, pieces)
    whole = scorer.logprobs([first + p for p in pieces])
    assert inc == pytest.approx([w - got[0] for w in whole], abs=1e-3)
    greedy = sample_self_edits(seal, [task], 2, ArcConfig(**{**SMALL, "temperature": 0}), seed=0)[0]
    assert greedy[0].text == greedy[1].text


def test_policy_sft_moves_the_policy_towards_kept_self_edits(seal):
    task = tasks(1)[0]
    cfg = ArcConfig(**SMALL)
    prompt = policy_prompt(seal.lm, task)
    target = ArcSelfEdit(False, True, False, True, "all", 3e-3, 1)
    seal.bank.reset(0, 0)
    before = _Scorer(seal, prompt, 0).logprobs([to_json(target)])[0]
    res = train_policy(seal, [Example(prompt, to_json(target))] * 2, cfg, seed=0, reset=True)
    assert res.steps > 0 and res.failed is None
    after = _Scorer(seal, prompt, 0).logprobs([to_json(target)])[0]
    assert after > before


def test_evaluate_edits_and_oracle_grid(seal):
    task = tasks(1)[0]
    cfg = ArcConfig(**SMALL)
    outs = evaluate_edits(seal, [(task, EDIT), (task, EDIT), (task, EDIT)], cfg, first_slot=1)
    assert len(outs) == 3 and all(o.reward in (0.0, 1.0) and o.train is not None for o in outs)
    assert all(o.prediction is not None and o.seconds > 0 for o in outs)
    assert len(oracle_grid(cfg)) == 2
    capped = oracle_grid(ArcConfig(oracle_max_configs=3))
    assert len(capped) == 3 and capped[0] != capped[-1]
    with pytest.raises(ConfigError):
        ArcConfig(tta=("upscale_2x",))
    with pytest.raises(ConfigError):
        ArcConfig(epoch_choices=(9,), max_epochs=5)


def test_evaluate_arc_all_rows_memoises_shared_configs(seal, tmp_path):
    ts = tasks(1)
    cfg = ArcConfig(**SMALL)
    seal.bank.reset(0, 0)  # an (untrained) policy in slot 0
    res = evaluate_arc(seal, ts, ["icl", "ttt_self_edit", "seal", "oracle"], cfg, samples=2, policy_slot=0,
                       log_path=tmp_path / "l.jsonl")
    d = res.as_dict()
    assert set(d) == {"icl", "ttt_self_edit", "seal", "oracle"}
    assert d["icl"]["n_edits"] == 1 and d["ttt_self_edit"]["n_edits"] == 2 and d["oracle"]["n_tasks"] == 1
    for row in d.values():
        assert 0.0 <= row["success_rate"] <= 1.0 and row["s_per_edit"] >= 0
    recs = list(read_jsonl(tmp_path / "l.jsonl"))
    assert len(recs) == 1 and all(len(r["oracle"]["tried"]) >= 1 for r in recs)
    # the untrained policy equals the base model: its self-edits were already evaluated -> cached
    assert any(s["cached"] for r in recs for s in r["seal"])
    assert "SEAL" in markdown_table(res)


ARGS = ["--easy", "2", "--easy-max-side", "2", "--easy-demos", "2", "--set", "arc.max_examples=3",
        "--set", "arc.epoch_choices=[1]", "--set", 'arc.tta=["identity","transpose"]', "--set", "arc.slots=2",
        "--set", "arc.max_chars=400"]


def test_cli_train_arc_writes_a_resumable_run_and_eval_uses_the_policy(tiny_model_dir, tmp_path, monkeypatch):
    """``seal train arc`` is the one ReST-EM loop with the ARC domain: its run layout, resume and policy."""
    from seal.cli_arc import app

    runner = CliRunner()
    run = tmp_path / "run"
    common = ["--model", str(tiny_model_dir), *ARGS]
    r = runner.invoke(app, ["train", "arc", "--out", str(run), "--rounds", "1", "--samples", "2", *common])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["domain"] == "arc" and cfg["seal"]["arc"]["max_examples"] == 3
    assert cfg["seal"]["rest_em"]["samples"] == 2 and cfg["seal"]["rest_em"]["contexts"] == 2
    lines = list(read_jsonl(run / "samples.jsonl"))
    assert len(lines) == 2 * 2 and all(x["round"] == 1 for x in lines)  # one line per sampled self-edit
    assert all({"reward", "valid", "reason", "text", "json"} <= set(x) for x in lines)
    assert (run / "round-1" / "policy" / "adapter_model.safetensors").is_file()
    assert json.loads((run / "round-1" / "policy" / "adapter_config.json").read_text())[
        "base_model_name_or_path"] == str(tiny_model_dir.absolute())  # loadable alone (AutoPeftModel)
    # not empty, no --resume: refused
    r = runner.invoke(app, ["train", "arc", "--out", str(run), *common])
    assert r.exit_code == 1 and "--resume" in r.output
    # a kill in the middle of round 1: the second task's records and the round's results are gone
    first = [x for x in lines if x["context"] == 0]
    (run / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in first))
    (run / "round-1" / "metrics.json").unlink()
    import seal.domains.arc.domain as arc_domain

    calls = []
    real = arc_domain.ArcDomain.apply_self_edits
    monkeypatch.setattr(arc_domain.ArcDomain, "apply_self_edits", lambda self, seal, items, first_slot=1: calls.extend(
        self.context_id(i.ctx) for i in items) or real(self, seal, items, first_slot))
    r = runner.invoke(app, ["train", "arc", "--out", str(run), "--rounds", "1", "--samples", "2", "--resume",
                            *common])
    assert r.exit_code == 0, r.output
    second_task = next(x["passage"] for x in lines if x["context"] == 1)
    assert calls == [second_task, second_task]  # only the unfinished task's self-edits ran again
    assert sorted((x["context"], x["sample"], x["reward"]) for x in read_jsonl(run / "samples.jsonl")) == \
        sorted((x["context"], x["sample"], x["reward"]) for x in lines)
    assert (run / "round-1" / "metrics.json").is_file()
    # everything done: resume does nothing
    calls.clear()
    r = runner.invoke(app, ["train", "arc", "--out", str(run), "--rounds", "1", "--samples", "2", "--resume",
                            *common])
    assert r.exit_code == 0 and calls == []
    # eval with the policy: the four rows, JSON figures
    out = tmp_path / "arc.json"
    r = runner.invoke(app, ["eval", "arc", "--policy", str(run), "--json", str(out), "--limit", "1",
                            "--oracle-configs", "1", *common])
    assert r.exit_code == 0, r.output
    figures = json.loads(out.read_text())
    assert figures.pop("manifest")["command"].startswith("seal eval arc")
    assert set(figures) == {"icl", "ttt_self_edit", "seal", "oracle"}
    assert all(0 <= v["ci95"][0] <= v["success_rate"] <= v["ci95"][1] <= 1 for v in figures.values())
    assert all({"success_rate", "n_tasks", "s_per_edit"} <= set(v) for v in figures.values())
    assert "| method |" in r.output and "not ARC" in r.output


def test_cli_arc_errors_are_one_line(tiny_model_dir, tmp_path):
    from seal.cli_arc import app

    runner = CliRunner()
    r = runner.invoke(app, ["eval", "arc", "--model", str(tiny_model_dir)])
    assert r.exit_code == 1 and "--data DIR or --easy N" in r.output
    r = runner.invoke(app, ["eval", "arc", "--data", str(tmp_path), "--model", str(tiny_model_dir)])
    assert r.exit_code == 1 and "challenges" in r.output
    r = runner.invoke(app, ["eval", "arc", "--easy", "1", "--self-edit", "bogus", "--model", str(tiny_model_dir)])
    assert r.exit_code == 1 and "self_edit_mode" in r.output
    r = runner.invoke(app, ["eval", "arc", "--easy", "1", "--set", "arc.nope=1", "--model", str(tiny_model_dir)])
    assert r.exit_code == 1 and "nope" in r.output
    r = runner.invoke(app, ["eval", "arc", "--easy", "1", "--rows", "seal", "--model", str(tiny_model_dir)])
    assert r.exit_code == 1 and "--policy" in r.output
    r = runner.invoke(app, ["eval", "arc", "--easy", "1", "--policy", str(tmp_path), *ARGS[2:],
                            "--model", str(tiny_model_dir)])
    assert r.exit_code == 1 and "no policy adapter" in r.output


def test_load_arc_dir_reads_the_shared_split(tmp_path):
    from seal.arc_loop import load_arc_dir
    from seal.domains.arc import save_tasks_json

    ts = tasks(2)
    save_tasks_json(ts, tmp_path / "x_evaluation_challenges.json", tmp_path / "x_evaluation_solutions.json")
    assert [t.task_id for t in load_arc_dir(tmp_path, "evaluation")] == [t.task_id for t in ts]


def test_row_interval_comes_from_every_counted_evaluation():
    # ICL, TTT + self-edit and SEAL rows count through _count; their interval must resample those outcomes
    # (it once saw none: 1 of 6 solved showed [0, 0])
    from types import SimpleNamespace

    from seal.arc_loop import RowStats, _count

    st = RowStats()
    for i in range(6):
        _count(st, SimpleNamespace(task_id=f"t{i}"), i == 0, 1.0)
    d = st.as_dict()
    assert d["success_rate"] == pytest.approx(1 / 6) and d["n_edits"] == 6 and len(st.outcomes) == 6
    lo, hi = d["ci95"]
    assert lo == 0.0 and 1 / 6 < hi <= 1.0  # P(a resample of 6 tasks holds no success) = (5/6)^6 > 2.5 %
