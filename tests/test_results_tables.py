"""The README's result tables are exactly what ``seal.results`` generates from ``results/`` (no hand-edited
figures), and the generators read the result files they claim to."""

from __future__ import annotations

import json

import pytest

from seal import results
from seal.config import SealConfig


def test_readme_tables_equal_the_generated_ones():
    text = results.README.read_text(encoding="utf-8")
    names = [m.group("name") for m in results._BLOCK.finditer(text)]
    assert {"forgetting", "codebase", "routing"} <= set(names)
    assert len(names) == text.count("<!-- results:"), "a results block the pattern does not see is never checked"
    assert results.stale_blocks(text) == [], "run `python -m seal.results readme` after changing results/"


def test_unknown_block_is_an_error():
    with pytest.raises(KeyError, match="no generator"):
        results.render_readme("<!-- results:nope -->\n_\n<!-- /results:nope -->")


def _forgetting_file(root, n, strategy, latency, **extra):
    d = {"passages": [{"n_questions": 5}] * n, "wall_s": 10.0, "manifest": {"command": "seal eval forgetting"},
         "summary": {"diagonal_mean": 0.2, "final_mean": 0.1, "forgetting": 0.1, "base_mean": 0.0,
                     "diagonal_ci95": [0.1, 0.3], "final_ci95": [0.0, 0.2], "forgetting_ci95": [0.0, 0.2],
                     "latency_s": latency, "answer_s_per_question": 0.5, **extra}}
    (root / "forgetting").mkdir(parents=True, exist_ok=True)
    (root / "forgetting" / f"n{n}-{strategy}.json").write_text(json.dumps(d))


def test_forgetting_table_orders_strategies_and_relates_latency(tmp_path):
    root = tmp_path / "results"
    _forgetting_file(root, 8, "routed", 1.5, routing_accuracy=0.975, routing_questions=40,
                     routing_accuracy_final=0.95)
    _forgetting_file(root, 8, "accumulate", 1.0)
    _forgetting_file(root, 8, "merge", 1.2)
    table = results.forgetting_table(root)
    lines = [ln for ln in table.splitlines() if ln.startswith("| 8 ")]
    assert [ln.split("|")[2].strip() for ln in lines] == ["merge", "accumulate", "routed"]
    assert "1.50 (1.50×)" in lines[2] and "95.0 % of 40 (97.5 % of 40 over all steps)" in lines[2] and "[0.000, 0.200]" in lines[2]
    assert "40 questions at N = 8" in table
    results.write_forgetting_summary(root)
    assert len(json.loads((root / "forgetting" / "summary.json").read_text())["rows"]) == 3
    assert "no forgetting results" in results.forgetting_table(tmp_path / "empty").lower()


def test_rest_em_table_has_a_row_per_round_with_its_reward_rule(tmp_path):
    root = tmp_path / "results"
    (root / "rest_em").mkdir(parents=True)
    rnd = {"contexts": 8, "samples": 4, "mean_reward": 0.18, "std_reward": 0.14, "positive_fraction": 0.875,
           "selected": 8, "wall_s": 842.0}
    d = {"rounds": [{"round": 1, **rnd}, {"round": 2, **rnd, "mean_reward": -0.05}],
         "manifest": {"config": {"format": "rewrite", "seal": {"rest_em": {"reward": "accuracy+likelihood"}}}}}
    (root / "rest_em" / "run-a.json").write_text(json.dumps(d))
    lines = results.rest_em_table(root).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| run-a | rewrite | accuracy+likelihood | default | 1 | 8 × 4 | +0.180 (std 0.140)")
    assert "| 2 |" in lines[3] and "-0.050" in lines[3] and "88 %" in lines[2]
    d["manifest"]["config"] = {"format": "rewrite", "reward": "accuracy+likelihood",  # the rule auto resolved to
                               "seal": {"rest_em": {"reward": "auto"}}}
    (root / "rest_em" / "run-b.json").write_text(json.dumps(d))
    assert results.rest_em_table(root).splitlines()[4].startswith(
        "| run-b | rewrite | accuracy+likelihood | default | 1 |")
    epochs = SealConfig().inner_loop.epochs + 5  # rewards measured with another inner loop than the default's
    d["manifest"]["config"]["seal"]["inner_loop"] = {"epochs": epochs}
    (root / "rest_em" / "run-c.json").write_text(json.dumps(d))
    assert results.rest_em_table(root).splitlines()[6].startswith(
        f"| run-c | rewrite | accuracy+likelihood | epochs {epochs} |")
    assert "no rest-em runs" in results.rest_em_table(tmp_path / "empty").lower()


def test_knowledge_pairs_pair_cells_across_files_and_skip_per_seed_parts(tmp_path):
    from seal.evaluate import KnowledgeResult, MethodStats

    def write(name, method, correct, seeds=(0,)):
        st = MethodStats()
        for s in seeds:
            for i, c in enumerate(correct):
                st.cells.append({"passage": f"p{i}", "seed": s, "correct": c, "n": 5})
        d = KnowledgeResult({method: st}, len(correct), 1.0, [f"p{i}" for i in range(len(correct))],
                            list(seeds)).as_dict()
        (root / "knowledge" / f"{name}.json").write_text(json.dumps(d))

    root = tmp_path / "results"
    (root / "knowledge").mkdir(parents=True)
    write("single", "implications", [1, 1, 2, 0])
    write("formats", "rewrite", [2, 2, 3, 1])  # one more of 5 right on each passage: +20 points, every resample
    write("formats-s0", "self-qa", [5, 5, 5, 5])  # a per-seed part: only pooled files count
    lines = results.knowledge_pairs_table(root).splitlines()
    assert len(lines) == 3 and lines[2].startswith("| rewrite − implications | +20.0 [+20.0, +20.0] | 4 |")
    write("more", "implications", [0, 0, 1, 0], seeds=(0, 1))  # a second file of implications, with 2 seeds
    write("more-rewrite", "rewrite", [1, 1, 2, 1], seeds=(0, 1))
    lines = results.knowledge_pairs_table(root).splitlines()
    assert lines[2] == "| rewrite − implications | +20.0 [+20.0, +20.0] | 8 | more-rewrite, more |"
    both = KnowledgeResult({m: MethodStats(cells=[{"passage": f"p{i}", "seed": s, "correct": c, "n": 5}
                                                  for s in (0, 1) for i, c in enumerate(cs)])
                            for m, cs in (("implications", [1, 1, 2, 0]), ("rewrite", [1, 1, 2, 0]))},
                           4, 1.0, [f"p{i}" for i in range(4)], [0, 1]).as_dict()
    (root / "knowledge" / "zz-both.json").write_text(json.dumps(both))  # equal cells, one file: preferred
    assert "| 8 | zz-both, zz-both |" in results.knowledge_pairs_table(root).splitlines()[2]
    # a one-seed SEAL row shares 4 cells with each rewrite file: it is paired with the row the pooled table
    # shows (the file with the most cells, more-rewrite), not with the first name (formats)
    write("x-seal", "SEAL round-2 (rewrite)", [5, 5, 5, 5])
    line = next(ln for ln in results.knowledge_pairs_table(root).splitlines() if ln.startswith("| SEAL round-2 (rewrite) − rewrite |"))
    assert line.endswith("| 4 | x-seal, more-rewrite |")
    assert "no paired" in results.knowledge_pairs_table(tmp_path / "none").lower()


def test_knowledge_all_takes_each_method_from_its_largest_file_and_compares_on_shared_cells(tmp_path):
    from seal.evaluate import KnowledgeResult, MethodStats

    def stats(correct, seeds):
        return MethodStats(cells=[{"passage": f"p{i}", "seed": s, "correct": c, "n": 5}
                                  for s in seeds for i, c in enumerate(correct)])

    def write(name, rows, seeds, policies=None):
        d = KnowledgeResult({m: stats(c, seeds) for m, c in rows.items()}, 4, 1.0, [f"p{i}" for i in range(4)],
                            list(seeds), policies or {}).as_dict()
        (root / "knowledge" / f"{name}.json").write_text(json.dumps(d))

    root = tmp_path / "results"
    (root / "knowledge").mkdir(parents=True)
    write("single", {"passage": [1, 1, 1, 1], "rewrite": [0, 0, 0, 0]}, (0, 1, 2))
    write("other", {"rewrite": [2, 2, 2, 2], "SEAL round-2 (rewrite)": [3, 3, 3, 3]}, (0,),
          {"SEAL round-2 (rewrite)": "rewrite"})
    write("other-s0", {"passage": [5, 5, 5, 5]}, (0,))  # a per-seed part: not a pooled file
    # a second evaluation set (other passages), with more cells: its own table, never pooled with these
    second = KnowledgeResult({"rewrite": MethodStats(cells=[{"passage": f"q{i}", "seed": s, "correct": 5, "n": 5}
                                                           for s in range(4) for i in range(4)])},
                             4, 1.0, [f"q{i}" for i in range(4)], [0, 1, 2, 3], {}).as_dict()
    (root / "knowledge" / "second.json").write_text(json.dumps(second))
    lines = results.knowledge_all_table(root).splitlines()
    assert len(lines) == 5
    assert lines[2] == "| passage | 20.0 % [20.0, 20.0] | 60 | 3 | – | – | single |"
    # rewrite: 3 seeds in single beat 1 seed in other; -20 points on every cell
    assert lines[3] == "| rewrite | 0.0 % [0.0, 0.0] | 60 | 3 | -20.0 [-20.0, -20.0] | – | single |"
    # the SEAL row is compared on the cells it shares (seed 0) with passage and with rewrite (from single)
    assert lines[4] == ("| SEAL round-2 (rewrite) | 60.0 % [60.0, 60.0] | 20 | 1 | +40.0 [+40.0, +40.0] | "
                        "− rewrite +60.0 [+60.0, +60.0] | other |")
    # the second set pools its own files (a row run apart, on the same passages), never the first set's
    both = {"passage": MethodStats(cells=[{"passage": f"q{i}", "seed": 0, "correct": 1, "n": 5} for i in range(4)])}
    (root / "knowledge" / "second-rewrite.json").write_text(json.dumps(KnowledgeResult(
        both, 4, 1.0, [f"q{i}" for i in range(4)], [0], {}).as_dict()))
    lines = results.knowledge_all_table(root, "second").splitlines()
    assert lines[2:] == ["| passage | 20.0 % [20.0, 20.0] | 20 | 1 | – | – | second-rewrite |",
                         "| rewrite | 100.0 % [100.0, 100.0] | 80 | 4 | +80.0 [+80.0, +80.0] | – | second |"]
    # both sets at once: the rows both have, their cells pooled (passages never counted twice)
    lines = results.knowledge_all_table(root, "single", "second").splitlines()
    assert lines[2] == "| passage | 20.0 % [20.0, 20.0] | 80 | 3 | – | – | single + second-rewrite |"
    # rewrite: 0/5 on 12 first-set cells, 5/5 on 16 second-set ones; − passage over the 16 cells both have
    assert lines[3].startswith("| rewrite | 57.1 % [") and "| 140 | 4 | +5.0 [" in lines[3]
    assert lines[3].endswith("| single + second |") and len(lines) == 4  # SEAL: on the first set only
    with pytest.raises(ValueError, match="share passages"):
        results.knowledge_all_table(root, "single", "single")
    assert "no knowledge results" in results.knowledge_all_table(tmp_path / "none").lower()


def test_cpt_table_reads_the_largest_n_and_gives_costs_per_passage_and_per_adapter(tmp_path):
    from seal.evaluate import KnowledgeResult, MethodStats

    def write(n, passage_correct, suffix=""):
        cells = lambda c: [{"passage": f"p{i}", "seed": 0, "correct": c, "n": 4} for i in range(n)]  # noqa: E731
        methods = {"base": MethodStats(cells=cells(0)),
                   "passage": MethodStats(cells=cells(passage_correct), edits=1, train_s=30.0, eval_s=10.0,
                                          train_tokens=800),
                   "rewrite": MethodStats(cells=cells(2), edits=1, train_s=50.0, eval_s=10.0, write_s=4.0 * n,
                                          train_tokens=1600, failed_edits=1)}
        d = KnowledgeResult(methods, n, 99.0, [f"p{i}" for i in range(n)], [0], {}).as_dict()
        (root / "knowledge" / f"cpt-n{n}{suffix}.json").write_text(json.dumps(d))

    root = tmp_path / "results"
    (root / "knowledge").mkdir(parents=True)
    write(4, 1)
    write(10, 1)  # n10 sorts before n4 by name: the table must still take N = 10
    write(4, 3, "-epochs5")  # another setting's file: its own table, never the plain one's largest N (n45)
    lines = results.knowledge_cpt_table(root).splitlines()
    assert lines[2].startswith("| base (closed book) | 0.0 % [0.0, 0.0] | -25.0 [-25.0, -25.0] | – | – | – |")
    assert lines[4] == "| rewrite (1 unusable) | 50.0 % [50.0, 50.0] | +25.0 [+25.0, +25.0] | 4.0 | 60 | 1600 |"
    assert "N = 10 passages (cpt-n10.json), 40 questions per method" in lines[-1]
    # the pooled single-passage tables never read CPT files
    assert "no knowledge results" in results.knowledge_all_table(root).lower()
    assert "no multi-passage results" in results.knowledge_cpt_table(tmp_path / "none").lower()
    other = results.knowledge_cpt_table(root, "-epochs5").splitlines()
    assert other[3].startswith("| passage | 75.0 % [75.0, 75.0] |") and "(cpt-n4-epochs5.json)" in other[-1]


def test_arc_table_has_a_row_per_method_of_each_file_with_its_task_set(tmp_path):
    row = {"success_rate": 0.5, "ci95": [0.0, 1.0], "n_tasks": 2, "s_per_edit": 3.25, "n_edits": 4,
           "invalid_edits": 1}
    (tmp_path / "arc").mkdir()
    (tmp_path / "arc" / "easy.json").write_text(json.dumps({"icl": {**row, "success_rate": 0.0},
                                                            "ttt_self_edit": row, "manifest": {"wall_s": 61.0}}))
    (tmp_path / "arc" / "shared.json").write_text(json.dumps({"oracle": row, "manifest": {}}))
    (tmp_path / "arc" / "train.json").write_text(json.dumps({"rounds": [
        {"round": 1, "contexts": 4, "samples": 3, "mean_reward": 0.25, "selected": 3, "wall_s": 300.4}]}))
    *lines, blank, note = results.arc_table(tmp_path).splitlines()
    assert blank == "" and note == ("The SEAL policy: ReST-EM round 1 on 4 other easy tasks × 3 self-edits, mean "
                                    "reward 0.25, 3 kept, 300 s (train).")
    assert lines[2] == "| easy demo set | ICL (no TTT) | 0.0 % [0.0, 100.0] | 2 | – | 3.2 | easy (61 s) |"
    assert lines[3] == ("| easy demo set | TTT + self-edit (no RL) | 50.0 % [0.0, 100.0] | 2 | 4 (1 invalid) | 3.2 | "
                        "easy (61 s) |")
    assert lines[4].startswith("| shared ARC evaluation set | Oracle TTT") and lines[4].endswith("| shared (– s) |")
    assert len(lines) == 5
    assert "no arc results" in results.arc_table(tmp_path / "none").lower()


def test_knowledge_all_compares_a_row_of_other_update_settings_with_the_passage_trained_the_same_way(tmp_path):
    from seal.evaluate import KnowledgeResult, MethodStats

    def stats(correct):
        return MethodStats(cells=[{"passage": f"p{i}", "seed": 0, "correct": c, "n": 5} for i, c in enumerate(correct)])

    root = tmp_path / "results"
    (root / "knowledge").mkdir(parents=True)
    for name, rows, policies in (
            ("single", {"passage": [2, 2], "rewrite": [2, 2]}, {}),
            ("epochs5", {"passage [epochs 5]": [1, 1], "rewrite [epochs 5]": [3, 3],
                         "SEAL round-1 (rewrite) [epochs 5]": [4, 4]},
             {"SEAL round-1 (rewrite) [epochs 5]": "rewrite [epochs 5]"})):
        d = KnowledgeResult({m: stats(c) for m, c in rows.items()}, 2, 1.0, ["p0", "p1"], [0], policies).as_dict()
        (root / "knowledge" / f"{name}.json").write_text(json.dumps(d))
    lines = {ln.split(" | ")[0][2:]: ln for ln in results.knowledge_all_table(root).splitlines()[2:]}
    # − passage: to "passage [epochs 5]" (+40 points), not to the default run's passage (+20)
    assert "| +40.0 [+40.0, +40.0] | – | epochs5 |" in lines["rewrite [epochs 5]"]
    assert "| +60.0 [+60.0, +60.0] | − rewrite [epochs 5] +20.0 [+20.0, +20.0] |" in lines[
        "SEAL round-1 (rewrite) [epochs 5]"]
    assert "| -20.0 [-20.0, -20.0] | – |" in lines["passage [epochs 5]"]
    # the per-file table compares with the passage trained the same way too
    d = json.loads((root / "knowledge" / "epochs5.json").read_text())["methods"]
    assert d["rewrite [epochs 5]"]["vs"]["passage"]["diff"] == pytest.approx(0.4)
