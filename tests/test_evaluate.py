"""The knowledge protocols on the tiny model: single-passage and multi-passage (cpt) bookkeeping."""

from __future__ import annotations

import pytest

from seal.config import SealConfig
from seal.engine import Seal
from seal.evaluate import evaluate_knowledge, evaluate_knowledge_cpt
from seal.knowledge_report import markdown_table


def _seal(tiny_lm) -> Seal:
    cfg = SealConfig.from_dict({"lora": {"rank": 4, "alpha": 8}, "inner_loop": {"epochs": 1},
                                "self_edit": {"max_new_tokens": 16}, "eval": {"answer_tokens": 4}})
    return Seal(tiny_lm, cfg, slots=1)


def test_cpt_trains_one_adapter_per_method_on_all_passages(tiny_lm, sample_passages):
    seal = _seal(tiny_lm)
    calls = []
    real = seal.train
    seal.train = lambda jobs, progress=None: calls.append(jobs) or real(jobs, progress)
    ticks = []
    result = evaluate_knowledge_cpt(seal, sample_passages[:2], ["base", "passage"],
                                    progress=lambda d, t: ticks.append((d, t)))
    d = result.as_dict()["methods"]
    assert d["base"]["n_questions"] == d["passage"]["n_questions"] == 10
    assert len(calls) == 1 and len(calls[0]) == 1  # one adapter, trained once, on both passages
    assert len(calls[0][0].examples) == 2
    assert d["passage"]["edits"] == 1
    # progress moves through the passages, then every LoRA step, then the answers: never back, ends full
    assert ticks[:2] == [(1, 3), (2, 3)] and len(ticks) > 4
    assert [a for a, _ in ticks] == sorted({a for a, _ in ticks}) and ticks[-1][0] == ticks[-1][1] > 3


def test_cpt_trains_the_self_edits_of_every_passage_and_counts_those_that_do_not_parse(tiny_lm, sample_passages):
    seal = _seal(tiny_lm)
    calls = []
    real = seal.train
    seal.train = lambda jobs, progress=None: calls.append(jobs) or real(jobs, progress)
    passages = sample_passages[:3]
    first = {p.id: p.context.split(". ")[0] + "." for p in passages}
    # each passage's first sentence as its rewrite, but the middle passage's is empty: unusable
    writer = lambda p: "" if p.id == passages[1].id else first[p.id]  # noqa: E731
    result = evaluate_knowledge_cpt(seal, passages, ["base", "rewrite"], writers={"rewrite": writer})
    d = result.as_dict()["methods"]
    assert d["rewrite"]["failed_edits"] == 1 and d["rewrite"]["edits"] == 1
    assert d["rewrite"]["n_questions"] == d["base"]["n_questions"]
    (job,), = calls
    done = {e.completion for e in job.examples}
    assert {f"{p.title}\n{first[p.id]}" for p in (passages[0], passages[2])} <= done
    assert not any(c.endswith(first[passages[1].id]) for c in done)


def test_single_trains_a_fresh_adapter_per_passage_and_method(tiny_lm, sample_passages):
    seal = _seal(tiny_lm)
    calls = []
    real = seal.train
    seal.train = lambda jobs, progress=None: calls.append(jobs) or real(jobs, progress)
    result = evaluate_knowledge(seal, sample_passages[:2], ["base", "passage", "implications"])
    d = result.as_dict()["methods"]
    assert len(calls) == 1 and 2 <= len(calls[0]) <= 4  # both passages in one pass (eval.passages_per_pass)
    assert len({job.slot for job in calls[0]}) == len(calls[0])  # a fresh adapter per passage and method
    assert all(job.reset for jobs in calls for job in jobs)
    assert d["passage"]["edits"] == 2 and d["passage"]["n_questions"] == 10
    assert d["implications"]["n_questions"] == 10  # an unusable self-edit still counts its questions (as base)
    assert "| passage |" in markdown_table(result)


def test_unknown_method_is_refused(tiny_lm, sample_passages):
    with pytest.raises(ValueError, match="unknown method"):
        evaluate_knowledge_cpt(_seal(tiny_lm), sample_passages[:1], ["base", "policy"])


def test_passages_per_pass_changes_no_score(tiny_lm64, sample_passages, tmp_path):
    """Several passages per pass give each (passage, method) the same adapter, answers and records as one
    passage per pass (float64: the passes batch differently; see conftest)."""
    tiny_lm = tiny_lm64
    import dataclasses
    import json

    def run(per_pass):
        seal = _seal(tiny_lm)
        seal.cfg.eval = dataclasses.replace(seal.cfg.eval, passages_per_pass=per_pass)
        calls = []
        real = seal.train
        seal.train = lambda jobs, progress=None: calls.append(len(jobs)) or real(jobs, progress)
        log = tmp_path / f"p{per_pass}.jsonl"
        result = evaluate_knowledge(seal, sample_passages[:3], ["base", "passage", "implications"], log_path=log)
        seal.bank.detach()
        records = [json.loads(line) for line in log.read_text().splitlines()]
        for r in records:
            for m in ("passage", "implications"):
                r.get(m, {}).pop("final_loss", None)
        return calls, result.as_dict()["methods"], records

    one_calls, one, one_records = run(1)
    many_calls, many, many_records = run(2)
    assert len(one_calls) == 3 and len(many_calls) == 2
    for m in one:
        assert {k: v for k, v in one[m].items() if "s_" not in k} == \
            {k: v for k, v in many[m].items() if "s_" not in k}
    assert one_records == many_records


def test_seeds_cells_open_book_and_paired_differences(tiny_lm, sample_passages, tmp_path):
    seal = _seal(tiny_lm)
    methods = ["base", "passage-in-prompt", "passage", "implications"]
    log = tmp_path / "log.jsonl"
    result = evaluate_knowledge(seal, sample_passages[:2], methods, seeds=[0, 1], log_path=log)
    d = result.as_dict()
    assert d["seeds"] == [0, 1] and d["passages"] == [p.id for p in sample_passages[:2]]
    for m in methods:
        st = d["methods"][m]
        assert st["n_questions"] == 20 and st["n_passages"] == 2 and st["seeds"] == [0, 1]
        assert len(st["cells"]) == 4 and st["ci95"][0] <= st["accuracy"] <= st["ci95"][1]
    assert d["methods"]["passage"]["edits"] == 4 and d["methods"]["base"]["edits"] == 0
    assert d["methods"]["passage-in-prompt"]["edits"] == 0  # the open book trains nothing
    vs = d["methods"]["implications"]["vs"]["passage"]
    a, b = d["methods"]["implications"]["accuracy"], d["methods"]["passage"]["accuracy"]
    assert vs["cells"] == 4 and vs["diff"] == pytest.approx(a - b) and vs["ci95"][0] <= vs["diff"] <= vs["ci95"][1]
    assert "passage" not in d["methods"]["passage"]["vs"]
    # costs are each method's own share: tokens it trained on, seconds split by them
    p = d["methods"]["passage"]
    assert p["train_tokens_per_edit"] > 0 and p["s_train_per_edit"] > 0
    assert len(log.read_text().splitlines()) == 4  # one record per (passage, seed)
    table = markdown_table(result)
    assert "| passage-in-prompt |" in table and "95 % CI" in table


def test_compare_pairs_the_same_cells():
    from seal.evaluate import MethodStats, compare

    a, b = MethodStats(), MethodStats()
    for p, s, ca, cb in [("p1", 0, 3, 1), ("p1", 1, 2, 2), ("p2", 0, 5, 0)]:
        a.add(p, s, [True] * ca + [False] * (5 - ca))
        b.add(p, s, [True] * cb + [False] * (5 - cb))
    b.add("p3", 0, [True] * 5)  # no partner: left out
    c = compare(a, b)
    assert c["cells"] == 3 and c["diff"] == pytest.approx((2 + 0 + 5) / 15)


def test_runs_of_other_seeds_merge_into_the_run_of_all_seeds(tiny_lm, sample_passages, tmp_path):
    """`--seed 0` and `--seed 1` run apart, then merged: the same cells, accuracies and intervals as one run
    with seeds [0, 1] (the bootstrap is seeded and sees the same cells); overlapping seeds are refused."""
    import json

    from seal.evaluate import merge_results
    from seal.results import merge_knowledge

    methods = ["base", "passage", "implications"]
    seal = _seal(tiny_lm)
    both = evaluate_knowledge(seal, sample_passages[:2], methods, seeds=[0, 1]).as_dict()
    parts = []
    for s in (0, 1):
        d = evaluate_knowledge(seal, sample_passages[:2], methods, seeds=[s]).as_dict()
        d["manifest"] = {"command": f"seed {s}", "config": {"x": 1}}
        parts.append(tmp_path / f"s{s}.json")
        parts[-1].write_text(json.dumps(d))
    merged = merge_knowledge(tmp_path / "all.json", parts, ["merge"])
    assert merged["seeds"] == [0, 1]
    for m in methods:
        a, b = both["methods"][m], merged["methods"][m]
        key = lambda c: (c["seed"], c["passage"])  # noqa: E731
        assert sorted(a["cells"], key=key) == sorted(b["cells"], key=key)
        assert (a["accuracy"], a["ci95"], a["n_questions"], a["edits"]) == \
               (b["accuracy"], b["ci95"], b["n_questions"], b["edits"])
        assert a["vs"].keys() == b["vs"].keys()
        for ref in a["vs"]:
            assert a["vs"][ref]["diff"] == b["vs"][ref]["diff"] and a["vs"][ref]["cells"] == b["vs"][ref]["cells"]
    assert [p["manifest"]["command"] for p in merged["manifest"]["parts"]] == ["seed 0", "seed 1"]
    assert json.loads((tmp_path / "all.json").read_text())["seeds"] == [0, 1]
    with pytest.raises(ValueError, match="share seeds"):
        merge_results([json.loads(parts[0].read_text())] * 2)
    # the command line, options before and after the parts
    from seal.results import main

    assert main(["merge-knowledge", "--out", str(tmp_path / "cli.json"), *map(str, parts),
                 "--plot", str(tmp_path / "cli.png")]) == 0
    assert json.loads((tmp_path / "cli.json").read_text())["methods"] == merged["methods"]
    assert (tmp_path / "cli.png").stat().st_size > 0
    assert main(["merge-knowledge", "--out", str(tmp_path / "bad.json"), str(parts[0]), str(parts[0])]) == 2


def test_a_policy_writes_its_own_format_and_is_compared_to_it(tiny_lm, sample_passages):
    """policy_formats: the policy's self-edits are asked for in its format and compared to that format's row;
    the formats survive the JSON round trip; files without them read as implications policies."""
    from seal.evaluate import merge_results, result_from_dict

    seal = _seal(tiny_lm)
    asked = []
    real = seal.write_self_edits
    seal.write_self_edits = lambda dom, items, **kw: asked.append((kw.get("policy_slot"), [f for _, f in items])) \
        or real(dom, items, **kw)
    seal.bank.ensure_slots(1)
    result = evaluate_knowledge(seal, sample_passages[:1], ["passage", "rewrite", "P"], policies={"P": 0},
                                policy_formats={"P": "rewrite"})
    assert (0, ["rewrite"]) in asked and (None, ["rewrite"]) in asked
    d = result.as_dict()
    assert d["policies"] == {"P": "rewrite"} and set(d["methods"]["P"]["vs"]) == {"passage", "rewrite"}
    assert "− rewrite" in markdown_table(result)
    assert merge_results([d]).policies == {"P": "rewrite"}
    legacy = {**d, "methods": {**d["methods"], "P": {**d["methods"]["P"], "vs": {"implications": {}}}}}
    del legacy["policies"]
    assert result_from_dict(legacy).policies == {"P": "implications"}
    # a legacy file without an implications row: its policy rows are the ones the CLI named SEAL round-N
    alone = {**legacy, "methods": {"passage": d["methods"]["passage"], "SEAL round-1": d["methods"]["P"]}}
    alone["methods"]["SEAL round-1"] = {**d["methods"]["P"], "vs": {}}
    assert result_from_dict(alone).policies == {"SEAL round-1": "implications"}


def test_a_formats_self_edit_does_not_depend_on_the_other_formats_asked_for(tiny_lm, sample_passages, tmp_path):
    """The rewrite row of a run with all three formats is the rewrite row of a run with rewrite alone (when the
    formats shared one batched call, every row's draws changed with the method list)."""
    import json

    seal = _seal(tiny_lm)
    alone, together = tmp_path / "alone.jsonl", tmp_path / "together.jsonl"
    evaluate_knowledge(seal, sample_passages[:2], ["rewrite"], seed=3, log_path=alone)
    evaluate_knowledge(seal, sample_passages[:2], ["implications", "rewrite", "self-qa"], seed=3, log_path=together)
    edits = [[json.loads(x)["rewrite"]["self_edit"] for x in p.read_text().splitlines()] for p in (alone, together)]
    assert edits[0] == edits[1] and len(edits[0]) == 2
