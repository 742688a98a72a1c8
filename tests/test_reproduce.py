"""``python -m seal.reproduce``: a rerun compared with the result it reproduces (ReST-EM rewards, knowledge rows,
identical answers), and the README table written from the comparisons."""

from __future__ import annotations

import json

import pytest

from seal.evaluate import KnowledgeResult, MethodStats
from seal.reproduce import compare_knowledge, compare_rest_em, main, reproduce_table
from seal.stats import paired_ci


def knowledge_file(path, verdicts: dict[str, list[list[bool]]], answers: dict[str, list[list[str]]]):
    """A knowledge JSON (one seed, passages p0..) and its JSONL; two passages share a title, as in SQuAD."""
    ids = [f"p{i}" for i in range(len(next(iter(verdicts.values()))))]
    res = KnowledgeResult(passages=len(ids), passage_ids=ids, seeds=[0])
    for m, rows in verdicts.items():
        st = res.methods.setdefault(m, MethodStats())
        for pid, v in zip(ids, rows, strict=True):
            st.add(pid, 0, v)
    path.write_text(json.dumps(res.as_dict() | {"manifest": {"commit": "abc", "machine": {"cpu": "CPU X"}}}))
    titles = ["Gravity", "Gravity", *(f"T{i}" for i in range(2, len(ids)))][:len(ids)]
    with open(path.with_suffix(".jsonl"), "w") as fh:
        for i, t in enumerate(titles):
            fh.write(json.dumps({"seed": 0, "title": t, **{m: {"answers": answers[m][i], "self_edit": None}
                                                          if m in answers else {"accuracy": 0.5}
                                                          for m in verdicts}}) + "\n")


def test_knowledge_rerun_difference_and_identical_answers(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    va = [[True, False], [False, False], [True, True], [False, True]]
    vb = [[True, True], [False, False], [True, True], [False, False]]
    knowledge_file(a, {"passage": va}, {"passage": [["x", "y"], ["u", "v"], ["1", "2"], ["3", "4"]]})
    knowledge_file(b, {"passage": vb}, {"passage": [["x", "Y"], ["u", "v"], ["1", "2"], ["3", "5"]]})
    d = compare_knowledge(a, b)
    row = d["methods"][0]
    assert row["method"] == "passage" and row["original"] == 4 / 8 and row["rerun"] == 4 / 8
    assert row["diff"] == 0.0 and row["cells"] == 4
    xa = [sum(v) / 2 for v in va]
    xb = [sum(v) / 2 for v in vb]
    assert row["ci95"] == list(paired_ci(xb, xa, clusters=[f"p{i}" for i in range(4)], weights=[2] * 4))
    assert row["same_answers"] == 6 / 8  # the second "Gravity" passage is matched to the second, not the first


def test_a_rerun_of_the_first_passages_is_compared_on_those(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    knowledge_file(a, {"base": [[True, True], [False, False], [False, False]]},
                   {"base": [["x", "y"], ["u", "v"], ["s", "t"]]})
    knowledge_file(b, {"base": [[True, False]]}, {"base": [["x", "z"]]})
    row = compare_knowledge(a, b)["methods"][0]
    assert (row["original"], row["rerun"], row["n_questions"]) == (1.0, 0.5, [2, 2])  # p0 only, not 2/6
    assert row["diff"] == -0.5 and row["cells"] == 1 and row["same_answers"] == 0.5


def test_a_row_that_logs_no_answers_is_compared_on_its_accuracy_alone(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"  # the open book's records carry its accuracy, no answers
    for path in (a, b):
        knowledge_file(path, {"base": [[True, False]], "passage-in-prompt": [[True, True]]}, {"base": [["x", "y"]]})
    book, base = sorted(compare_knowledge(a, b)["methods"], key=lambda r: r["method"] != "passage-in-prompt")
    assert book["diff"] == 0.0 and book["same_answers"] is None and book["same_self_edits"] is None
    assert base["same_answers"] == 1.0


def test_knowledge_on_other_passages_is_refused(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    knowledge_file(a, {"base": [[True]]}, {"base": [["x"]]})
    d = json.loads(a.read_text())
    d["passages"] = ["q0"]
    b.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="no passage in common"):
        compare_knowledge(a, b)


def rest_em_file(path, rewards: list[list[float]], contexts=2, samples=2):
    rounds = [{"round": i + 1, "mean_reward": sum(r) / len(r), "rewards": r, "contexts": contexts,
               "samples": samples, "repeats": 1, "selected": 2, "wall_s": 10.0} for i, r in enumerate(rewards)]
    path.write_text(json.dumps({"rounds": rounds, "manifest": {"machine": {"cpu": "CPU Y", "torch": "2.13.0"}}}))


def test_rest_em_pairs_slots_by_position(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    # round 2: both lost a self-edit (paired per slot); round 3: only the original did (not paired)
    rest_em_file(a, [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5], [0.1, 0.2, 0.3]])
    rest_em_file(b, [[0.2, 0.2, 0.3, 0.5], [0.4, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4]])
    r1, r2, r3 = compare_rest_em(a, b)["rounds"]
    assert r1["diff"] == pytest.approx(0.05, abs=1e-12)  # sums of four numbers near 1: rounding only
    assert r1["max_abs_diff"] == pytest.approx(0.1, abs=1e-12)
    assert r1["ci95"] == list(paired_ci([0.2, 0.2, 0.3, 0.5], [0.1, 0.2, 0.3, 0.4], clusters=[0, 0, 1, 1]))
    assert r2["ci95"] == list(paired_ci([0.4, 0.6, 0.5], [0.5, 0.5, 0.5]))  # slots, not contexts
    assert "diff" not in r3 and r3["original"] == pytest.approx(0.2, abs=1e-12) and r3["rerun_ci95"] is not None


def test_cli_writes_the_comparison_and_the_table_reads_it(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    rest_em_file(a, [[0.1, 0.2, 0.3, 0.4]])
    rest_em_file(b, [[0.2, 0.2, 0.3, 0.5]])
    out = tmp_path / "reproduce" / "rerun.json"
    out.parent.mkdir()
    assert main(["--out", str(out), "--rest-em", str(a), str(b)]) == 0
    d = json.loads(out.read_text())
    assert d["manifest"]["command"].startswith("python -m seal.reproduce --out") and "knowledge" not in d
    table = reproduce_table(tmp_path)
    assert "| rerun | ReST-EM round 1: mean reward | +0.250" in table and "+0.05000 [" in table
    assert "CPU Y, torch 2.13.0" in table
    assert main(["--out", str(out)]) == 2 and "nothing to compare" in capsys.readouterr().err
    assert main(["--out", str(out), "--rest-em", str(a), str(tmp_path / "missing.json")]) == 2
