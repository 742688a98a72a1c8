"""Continual learning on the tiny random model, part 2: probes, the forgetting guard and the retention matrix
(the paper's Figure 6 experiment), with the fixtures and helpers of ``tests/test_continual.py``."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from seal import cli
from seal.continual import cloze_probes, evaluate_forgetting, make_probes, probe_pairs, summarize
from seal.domains.knowledge import QA, KnowledgeDomain, Passage, load_passages
from seal.learning import SLOT, GuardRejected, learn
from tests.conftest import SAMPLES
from tests.test_continual import (  # noqa: F401  (fixtures)
    SETS,
    Spy,
    assert_tensors_equal,
    base_weights,
    docs,
    make_seal,
    open_store,
    small_cfg,
    stored_sequences,
)

# --------------------------------------------------------------------------- probes
P = Passage("The Verdant Guild", "The Verdant Guild was founded in 1847 by the botanist Ilsabet Quorne. Its "
            "emblem is a silver fern. Members meet each spring in Marrowick to trade seeds.")


def test_probe_pairs_and_usable_filter():
    text = ("Here are some pairs:\nQ: When was the Verdant Guild founded?\nA: 1847\n"
            "Q: Who founded the guild?\nA: Ilsabet Quorne\nQ: What is the answer?\nA: something not in it\n"
            "Q: What is the emblem of the guild?\nA: a silver fern\nQ: Where do members meet?\nA: Marrowick")
    assert probe_pairs(text)[0] == ("When was the Verdant Guild founded?", "1847")
    probes, source = make_probes(P, text)
    assert source == "model"
    assert probes == [QA("When was the Verdant Guild founded?", "1847"), QA("Who founded the guild?", "Ilsabet Quorne"),
                      QA("What is the emblem of the guild?", "a silver fern")]


def test_cloze_probes_fill_in_for_unusable_pairs():
    assert cloze_probes(P) == [
        QA("Fill in the blank: The Verdant Guild was founded in ____ by the botanist Ilsabet Quorne.", "1847"),
        QA("Fill in the blank: Members meet each spring in ____ to trade seeds.", "Marrowick"),
    ]
    probes, source = make_probes(P, "gibberish without any pairs")
    assert source == "cloze" and len(probes) == 2
    probes, source = make_probes(P, "Q: Who founded the Verdant Guild?\nA: Ilsabet Quorne")
    assert source == "model+cloze" and probes[0].answer == "Ilsabet Quorne" and len(probes) == 3


def test_learn_stores_probes(make_seal, docs, tmp_path):
    s = make_seal()
    with open_store(tmp_path / "st") as st:
        r = learn(s, st, docs["guild.txt"], "implications")
        assert r.probes and st.probes() == [{"document_id": 1, "question": q, "answer": a} for q, a in r.probes]
        assert st.current_version().metrics["probes"] == len(r.probes)
        r2 = learn(s, st, docs["railway.txt"], "passage", probes=False)
        assert r2.probes == [] and st.probes([2]) == []


# --------------------------------------------------------------------------- the guard
class CountingGrader:
    """Right while at most ``good_until`` trainings have happened (or for the listed training counts)."""

    def __init__(self, spy_counter, good_until=1, good_at=()):
        self.count, self.good_until, self.good_at = spy_counter, good_until, set(good_at)

    def grade_many(self, questions, predictions, golds):
        n = self.count()
        return [n <= self.good_until or n in self.good_at] * len(questions)


def test_guard_rejects_an_update_that_drops_probe_accuracy(make_seal, docs, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    s = make_seal(grader=CountingGrader(lambda: len(spy.jobs)))
    store = tmp_path / "st"
    with open_store(store) as st:
        r1 = learn(s, st, docs["guild.txt"], "passage", guard=True)
        assert r1.guard["checked"] is False  # nothing earlier to protect
        v1 = st.load_adapter()
        files = sorted(p.name for p in (store / "adapters").iterdir())
        with pytest.raises(GuardRejected) as exc:
            learn(s, st, docs["railway.txt"], "passage", guard=True, guard_threshold=0.2)
        msg = str(exc.value)
        assert "forgetting guard rejected" in msg and "fell from 1.00 to 0.00" in msg
        assert "store is unchanged at version 1" in msg and "--no-guard" in msg
        rep = exc.value.report
        assert (rep.before, rep.after, rep.retried, rep.after_retry, rep.accepted) == (1.0, 0.0, True, 0.0, False)
        assert [v.id for v in st.history()] == [1]
        assert [d.name for d in st.documents(include_removed=True)] == ["guild.txt"]
        assert sorted(p.name for p in (store / "adapters").iterdir()) == files
        assert_tensors_equal(s.bank.state_dict(SLOT), v1)  # the in-memory adapter is back too
        seqs1 = stored_sequences(st, "guild.txt")
    assert len(spy.jobs) == 3
    assert not set(seqs1) & set(spy.jobs[1])  # the first try: the new document only (accumulate)
    assert set(seqs1) <= set(spy.jobs[2])     # the retry replays the earlier document


def test_guard_retry_with_replay_can_save_an_update(make_seal, docs, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    s = make_seal(grader=CountingGrader(lambda: len(spy.jobs), good_until=1, good_at=[3]))
    with open_store(tmp_path / "st") as st:
        learn(s, st, docs["guild.txt"], "passage", guard=True, strategy="merge")
        r = learn(s, st, docs["railway.txt"], "passage", guard=True)
        assert r.guard == {"checked": True, "threshold": 0.2, "before": 1.0, "after": 0.0, "retried": True,
                           "after_retry": 1.0, "accepted": True}
        assert r.replayed > 0 and st.current_version().metrics["replayed"] == r.replayed
        evs = st.evaluations(r.version)
        assert [(e["document_id"], e["accuracy"]) for e in evs] == [(1, 1.0)]


def test_guard_off_or_no_drop_accepts(make_seal, docs, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    s = make_seal(grader=CountingGrader(lambda: len(spy.jobs)))
    with open_store(tmp_path / "st") as st:
        learn(s, st, docs["guild.txt"], "passage")
        r = learn(s, st, docs["railway.txt"], "passage")  # guard off: the drop is not even measured
        assert r.guard["checked"] is False and r.version == 2
    s2 = make_seal(grader=CountingGrader(lambda: 0))  # always right: no drop
    with open_store(tmp_path / "st2") as st:
        learn(s2, st, docs["guild.txt"], "passage", guard=True)
        r = learn(s2, st, docs["railway.txt"], "passage", guard=True)
        assert (r.guard["before"], r.guard["after"], r.guard["retried"]) == (1.0, 1.0, False)


# --------------------------------------------------------------------------- the retention matrix
class TableGrader:
    """Deterministic: question k of every passage is right iff k < the passage's 'right' count."""

    def __init__(self, passages, right):
        self.right = {q.question: k < right[i] for i, p in enumerate(passages) for k, q in enumerate(p.questions)}

    def grade_many(self, questions, predictions, golds):
        return [self.right.get(q, False) for q in questions]


def test_retention_matrix_shape_and_values(make_seal):
    passages = load_passages(SAMPLES)[:3]
    right = [1, 3, 5]
    s = make_seal(grader=TableGrader(passages, right))
    res = evaluate_forgetting(s, passages, "accumulate", "passage")
    acc = [r / 5 for r in right]
    assert res.base == acc
    assert res.matrix == [[acc[0], None, None], [acc[0], acc[1], None], acc]
    sm = res.summary()
    main = ("diagonal_mean", "final_mean", "forgetting", "base_mean")
    assert {k: sm[k] for k in main} == pytest.approx({"diagonal_mean": 0.6, "final_mean": 0.6, "forgetting": 0.0,
                                                      "base_mean": 0.6})
    assert sm["forgetting_ci95"] == [0.0, 0.0] and sm["diagonal_ci95"][0] <= 0.6 <= sm["diagonal_ci95"][1]
    assert sm["latency_s"] > 0 and sm["answer_s_per_question"] > 0 and "routing_accuracy" not in sm
    d = res.as_dict()
    assert json.loads(json.dumps(d))["matrix"][0] == [0.2, None, None]
    assert [st["status"] for st in d["steps"]] == ["learned"] * 3
    two = summarize([[0.5, None], [0.25, 0.75]], [0.1, 0.3])
    assert {k: two[k] for k in main} == pytest.approx(
        {"diagonal_mean": 0.625, "final_mean": 0.5, "forgetting": 0.125, "base_mean": 0.2})
    assert two["n_passages"] == 2 and two["forgetting_ci95"] == [0.0, 0.25]  # per passage: 0.25 and 0


@pytest.mark.parametrize("strategy", ["merge", "replay"])
def test_retention_matrix_evaluates_the_updated_model(make_seal, strategy):
    passages = load_passages(SAMPLES)[:3]
    s = make_seal(chatty=True)
    before = base_weights(s)
    res = evaluate_forgetting(s, passages, strategy, "implications", seed=1)
    n = len(passages)
    assert len(res.matrix) == n and all(len(row) == n for row in res.matrix)
    for i, row in enumerate(res.matrix):
        assert all(v is not None and 0 <= v <= 1 for v in row[:i + 1]) and row[i + 1:] == [None] * (n - i - 1)
    dom = KnowledgeDomain()
    final = s.evaluate(dom, [(p, SLOT) for p in passages])
    assert [sc.answers for sc in final] == res.steps[-1]["answers"]
    assert [sc.accuracy for sc in final] == res.matrix[-1]
    changed = any(not torch.equal(before[k], base_weights(s)[k]) for k in before)
    assert changed == (strategy == "merge")
    if strategy == "replay":
        assert [st["replayed"] for st in res.steps][0] == 0 and res.steps[2]["replayed"] > 0


def test_forgetting_eval_guard_rejects_steps(make_seal, monkeypatch):
    spy = Spy(monkeypatch)
    passages = load_passages(SAMPLES)[:3]
    s = make_seal(grader=CountingGrader(lambda: len(spy.jobs)))
    res = evaluate_forgetting(s, passages, "merge", "passage", guard=True)
    # step 2: right before (1 training so far), wrong after -> retried with replay, still wrong -> rejected;
    # step 3: already wrong before, so no drop -> learned
    assert [st["status"] for st in res.steps] == ["learned", "rejected", "learned"]
    assert [st["guard"]["retried"] for st in res.steps] == [False, True, False]
    assert [st["guard"]["checked"] for st in res.steps] == [False, True, True]
    assert res.steps[1]["replayed"] > 0 and res.steps[2]["replayed"] == 0


def test_cli_eval_forgetting(tmp_path, tiny_model_dir):
    out, png = tmp_path / "f.json", tmp_path / "f.png"
    r = CliRunner().invoke(cli.app, ["eval", "forgetting", "--sequence", "2", "--strategy", "replay", "--format",
                                     "passage", "--guard", "--json", str(out), "--plot", str(png),
                                     "--model", str(tiny_model_dir), *SETS])
    assert r.exit_code == 0, (r.output, r.exception)
    d = json.loads(out.read_text())
    assert d["strategy"] == "replay" and d["guard"] is True and len(d["matrix"]) == 2
    assert d["matrix"][0][1] is None and len(d["base"]) == 2
    assert all(isinstance(p["probes"], list) for p in d["passages"])  # the guard's probes are recorded
    assert {"diagonal_mean", "final_mean", "forgetting", "base_mean", "forgetting_ci95", "latency_s"} <= set(d["summary"])
    assert d["manifest"]["command"].startswith("seal eval forgetting") and len(d["manifest"]["passage_ids"]) == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "forgetting" in r.stdout and "after 2" in r.stdout
    bad = CliRunner().invoke(cli.app, ["eval", "forgetting", "--strategy", "bogus", "--model", str(tiny_model_dir)])
    assert bad.exit_code == 1
