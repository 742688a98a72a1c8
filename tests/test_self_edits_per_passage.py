"""``eval.self_edits``: several self-edits per passage and method, pooled into that passage's one adapter."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from seal import cli
from seal.config import SealConfig
from seal.engine import Seal
from seal.evaluate import evaluate_knowledge
from seal.knowledge_report import markdown_table, tag_rows


def _seal(tiny_lm, self_edits: int) -> Seal:
    cfg = SealConfig.from_dict({"lora": {"rank": 4, "alpha": 8}, "inner_loop": {"epochs": 1},
                                "self_edit": {"max_new_tokens": 16},
                                "eval": {"answer_tokens": 4, "self_edits": self_edits}})
    return Seal(tiny_lm, cfg, slots=1)


def _scripted(seal: Seal, texts: list[str]) -> list[tuple]:
    """Make ``seal`` write ``texts`` as the self-edits of every call; returns the calls' (n, seed)."""
    calls = []

    def write(domain, items, n=1, seed=0, policy_slot=None, **kw):
        calls.append((n, seed))
        return [texts[:n] for _ in items]

    seal.write_self_edits = write
    return calls


def _trained(seal: Seal) -> list:
    jobs = []
    real = seal.train
    seal.train = lambda js, progress=None: jobs.extend(js) or real(js, progress)
    return jobs


def test_the_self_edits_of_a_passage_train_one_adapter_each_line_once(tiny_lm, sample_passages, tmp_path):
    seal = _seal(tiny_lm, 3)
    calls = _scripted(seal, ["The guild met in spring.", "The guild met in spring.\nIts hall is red.",
                             "Its seal is a heron."])
    jobs = _trained(seal)
    log = tmp_path / "log.jsonl"
    p = sample_passages[0]
    result = evaluate_knowledge(seal, [p], ["passage", "rewrite"], log_path=log)
    assert calls == [(3, 0)]  # the three written in one call, from the passage's seed
    rewrite = [j for j in jobs if len(j.examples) > 1]
    assert len(jobs) == 2 and len(rewrite) == 1
    texts = [e.completion for e in rewrite[0].examples]
    passage = f"{p.title}\n{p.context}"
    assert texts.count(passage) == 1  # the passage once, though each self-edit brings it
    assert sorted(t for t in texts if t != passage) == sorted(
        f"{p.title}\n{s}" for s in ("The guild met in spring.", "Its hall is red.", "Its seal is a heron."))
    record = json.loads(log.read_text().splitlines()[0])
    assert len(record["rewrite"]["self_edit"]) == 3  # all of them logged
    d = result.as_dict()["methods"]["rewrite"]
    assert d["edits"] == 1 and d["failed_edits"] == 0 and d["n_questions"] == len(p.questions)


def test_an_unusable_self_edit_is_left_out_and_all_unusable_is_a_failed_edit(tiny_lm, sample_passages):
    seal = _seal(tiny_lm, 2)
    _scripted(seal, ["", "Its seal is a heron."])
    jobs = _trained(seal)
    result = evaluate_knowledge(seal, sample_passages[:1], ["rewrite"])
    assert len(jobs) == 1 and len(jobs[0].examples) == 2  # the usable line and the passage
    assert result.as_dict()["methods"]["rewrite"]["failed_edits"] == 0

    seal.cfg = seal.cfg.override(["eval.self_edits=2"])  # the same engine (one adapter bank per model)
    _scripted(seal, ["", "   "])
    jobs = _trained(seal)
    result = evaluate_knowledge(seal, sample_passages[:1], ["rewrite"])
    assert jobs == [] and result.as_dict()["methods"]["rewrite"]["failed_edits"] == 1


def test_one_self_edit_trains_exactly_what_it_parses_to(tiny_lm, sample_passages):
    seal = _seal(tiny_lm, 1)
    calls = _scripted(seal, ["The guild met in spring."])
    jobs = _trained(seal)
    evaluate_knowledge(seal, sample_passages[:1], ["rewrite"])
    p = sample_passages[0]
    assert calls == [(1, 0)]
    assert [e.completion for e in jobs[0].examples] == [f"{p.title}\nThe guild met in spring.", f"{p.title}\n{p.context}"]


def test_rows_of_several_self_edits_are_named_with_their_count(tiny_lm, sample_passages):
    seal = _seal(tiny_lm, 2)
    _scripted(seal, ["The guild met in spring.", "Its seal is a heron."])
    result = tag_rows(evaluate_knowledge(seal, sample_passages[:1], ["base", "passage", "rewrite"]), 2)
    assert list(result.methods) == ["base", "passage", "rewrite ×2"]
    assert "| rewrite ×2 |" in markdown_table(result)
    result.policies = {"SEAL round-1 (rewrite)": "rewrite"}
    assert tag_rows(result, 3).policies == {"SEAL round-1 (rewrite) ×3": "rewrite ×3"}
    assert tag_rows(result, 1) is result


@pytest.mark.parametrize(("value", "message"), [("0", "eval.self_edits must be in 1..16"),
                                                 ("17", "eval.self_edits must be in 1..16")])
def test_self_edits_out_of_range_is_refused(value, message):
    with pytest.raises(ValueError, match=message):
        SealConfig().override([f"eval.self_edits={value}"])


def test_cli_refuses_self_edits_in_cpt_mode(tiny_model_dir, tmp_path):
    r = CliRunner().invoke(cli.app, ["eval", "knowledge", "--limit", "1", "--mode", "cpt", "--model",
                                     str(tiny_model_dir), "--set", "eval.self_edits=2",
                                     "--json", str(tmp_path / "o.json")])
    assert r.exit_code != 0 and "eval.self_edits applies to --mode single" in r.output
    assert not (tmp_path / "o.json").exists()


def test_rows_of_an_update_away_from_the_defaults_are_named_by_it(tiny_lm, sample_passages):
    from seal.knowledge_report import training_tag

    assert training_tag(SealConfig()) == ""
    assert training_tag(SealConfig.from_dict({"inner_loop": {"epochs": 7, "lr": 3e-4}})) == "epochs 7, lr 0.0003"
    seal = _seal(tiny_lm, 2)
    _scripted(seal, ["The guild met in spring.", "Its hall is red."])
    result = evaluate_knowledge(seal, sample_passages[:2], ["base", "passage", "rewrite"])
    tag_rows(result, 2, training_tag(seal.cfg))
    assert training_tag(seal.cfg) == "epochs 1, rank 4, alpha 8"
    assert list(result.methods) == ["base", "passage [epochs 1, rank 4, alpha 8]",
                                    "rewrite ×2 [epochs 1, rank 4, alpha 8]"]
    d = result.as_dict()["methods"]
    # the difference is to the passage trained the same way; base trains nothing, so it keeps its name
    assert set(d["rewrite ×2 [epochs 1, rank 4, alpha 8]"]["vs"]) == {"passage"}
    assert set(d["base"]["vs"]) == {"passage"}
    assert "passage [epochs 1, rank 4, alpha 8]" in markdown_table(result)


def test_cpt_rows_of_an_update_away_from_the_defaults_are_named_by_it(tiny_model_dir, tmp_path):
    out = tmp_path / "o.json"
    r = CliRunner().invoke(cli.app, ["eval", "knowledge", "--limit", "1", "--mode", "cpt", "--model",
                                     str(tiny_model_dir), "--methods", "base,passage", "--set", "inner_loop.epochs=1",
                                     "--set", "eval.answer_tokens=4", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert set(json.loads(out.read_text())["methods"]) == {"base", "passage [epochs 1]"}
