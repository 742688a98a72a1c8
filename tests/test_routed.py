"""The ``routed`` strategy on the tiny model (float64, so greedy answers compare exactly across batchings):
the router, per-document adapters in a store, forget, the LRU cache, groups, ``seal ask --explain`` and the
forgetting experiment's routing accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from seal import cli
from seal.cli_continual import register
from seal.config import SealConfig
from seal.continual import evaluate_forgetting
from seal.continual.routed import AdapterCache
from seal.continual.router import RouteEntry, Router, content_words
from seal.domains.knowledge import QA, Passage
from seal.engine import Seal
from seal.learning import ask, ask_explained, forget, learn, store_state
from seal.model import wrap_model
from seal.store import Store
from tests.test_continual import base_weights, open_store, untied_model, write_docs

register(cli.app, cli.eval_app)

GUILD = ("The Verdant Guild\n\nThe Verdant Guild was founded in 1847 by Ilsabet Quorne in Marrowick. Its hall "
         "stands beside the copper river.\n")
RAILWAY = ("Pellucid Railway\n\nThe Pellucid Railway opened in 1912 and crosses the salt flats of Orveny on "
           "iron trestles.\n")
GUILD2 = ("Verdant Guild archives\n\nThe Verdant Guild archives in Marrowick keep the letters of Ilsabet Quorne "
          "and the guild's charter.\n")
Q_GUILD = "Who founded the Verdant Guild in Marrowick?"
Q_RAIL = "When did the Pellucid Railway open across Orveny?"
Q_NEITHER = "What is the capital of France?"


def cfg(**routing) -> SealConfig:
    items = ["inner_loop.epochs=3", "inner_loop.lr=1e-2", "self_edit.max_new_tokens=16", "eval.answer_tokens=6",
             "lora.rank=4", "lora.alpha=8"] + [f"routing.{k}={v}" for k, v in routing.items()]
    return SealConfig().override(items)


@pytest.fixture()
def make_seal(tokenizer):
    def make(c: SealConfig | None = None) -> Seal:
        model = untied_model(tokenizer).to(torch.float64)
        return Seal(wrap_model(model, tokenizer, "tiny-test-model"), c or cfg(), slots=2)

    return make


@pytest.fixture()
def docs(tmp_path) -> dict[str, Path]:
    return write_docs(tmp_path, {"guild.txt": GUILD, "railway.txt": RAILWAY, "archives.txt": GUILD2})


# --------------------------------------------------------------------------- the router
def test_router_picks_the_matching_document_or_none():
    r = Router([RouteEntry("guild", "The Verdant Guild", GUILD), RouteEntry("rail", "Pellucid Railway", RAILWAY)])
    got = r.route([Q_GUILD, Q_RAIL, Q_NEITHER, "", "what is it?"])
    assert [d.key for d in got] == ["guild", "rail", None, None, None]
    assert got[0].coverage == 1.0 and got[0].score > 0
    assert got[2].best is None and got[2].score == 0  # no content word of the question is in any document
    assert content_words("Topic: The Verdant Guild\nWho founded it?") == ["verdant", "guild", "found"]
    half = Router([RouteEntry(1, "Verdant Guild", GUILD)], threshold=0.6).route(["Verdant Guild capital France"])[0]
    assert half.key is None and half.best == 1 and half.coverage == pytest.approx(0.5)
    with pytest.raises(ValueError, match="threshold"):
        Router([], threshold=1.5)
    assert Router([]).route([Q_GUILD])[0].key is None


def test_router_indexes_self_edit_sequences():
    r = Router([RouteEntry(1, "Notes", "nothing here", ("The lighthouse keeper was Ysolde Marr.",)),
                RouteEntry(2, "Other", "a different text entirely")])
    assert r.route(["Who was the lighthouse keeper?"])[0].key == 1


# --------------------------------------------------------------------------- the store
def test_routed_store_routes_each_question_and_never_changes_the_base(make_seal, docs, tmp_path):
    s = make_seal()
    before = base_weights(s)
    base_answers = ask(s, None, [Q_GUILD, Q_RAIL, Q_NEITHER])
    with open_store(tmp_path / "st") as st:
        r1 = learn(s, st, docs["guild.txt"], "passage", strategy="routed")
        r2 = learn(s, st, docs["railway.txt"], "passage")  # the store's strategy continues
        assert r1.strategy == r2.strategy == "routed"
        state = store_state(st)
        groups = state.source.config["groups"]
        assert [g["documents"] for g in groups] == [[1], [2]]
        assert [g["adapter"] for g in groups] == [r1.version, None]  # each group's adapter lives in its version
        answers, why = ask_explained(s, st, [Q_GUILD, Q_RAIL, Q_NEITHER])
    assert [w["document"] for w in why] == [1, 2, None]
    assert answers[2] == base_answers[2]  # a question about neither document: the base model answers
    assert answers[0] != base_answers[0] or answers[1] != base_answers[1]  # the adapters do answer
    for k, w in before.items():
        assert torch.equal(w, base_weights(s)[k])


def test_forgetting_one_document_leaves_the_others_answers_unchanged(make_seal, docs, tmp_path):
    s = make_seal()
    with open_store(tmp_path / "st") as st:
        learn(s, st, docs["guild.txt"], "passage", strategy="routed")
        learn(s, st, docs["railway.txt"], "passage")
        rail_before, _ = ask_explained(s, st, [Q_RAIL, Q_RAIL + " on iron trestles"])
        rep = forget(s, st, "guild.txt")
        assert rep.sequences == 0  # nothing retrained: the document's adapter is simply dropped
        state = store_state(st)
        assert [g["documents"] for g in state.source.config["groups"]] == [[2]]
        assert st.load_adapter() is None  # the forget version wrote no adapter file
        rail_after, why = ask_explained(s, st, [Q_RAIL, Q_RAIL + " on iron trestles", Q_GUILD])
    assert rail_after[:2] == rail_before
    assert why[2]["document"] is None  # the forgotten document no longer answers
    assert rail_after[2] == ask(s, None, [Q_GUILD])[0]


def test_lru_evicts_and_reloads_with_identical_answers(make_seal, docs, tmp_path):
    questions = [Q_GUILD, Q_RAIL, Q_GUILD + " long ago", Q_RAIL + " first"]
    s8 = make_seal(cfg(cache=8))
    with open_store(tmp_path / "st") as st:
        learn(s8, st, docs["guild.txt"], "passage", strategy="routed")
        learn(s8, st, docs["railway.txt"], "passage")
        wide, _ = ask_explained(s8, st, questions)
        s1 = make_seal(cfg(cache=1))
        narrow, why = ask_explained(s1, st, questions)
        again, _ = ask_explained(s1, st, questions)
        stats = s1._routed_cache.stats()
    assert [w["document"] for w in why] == [1, 2, 1, 2]
    assert narrow == wide == again
    assert stats["size"] == 1 and stats["evictions"] >= 3 and stats["misses"] >= 4


def test_adapter_cache_pins_and_evicts_least_recently_used(make_seal):
    s = make_seal()
    loads = []

    def load(key):
        loads.append(key)
        s.bank.reset(0, seed=ord(key))
        return s.bank.state_dict(0)

    cache = AdapterCache(s, [2, 3], load)
    assert cache.slot("a") == 2 and cache.slot("b") == 3
    cache.slot("a")  # a is now the most recently used
    assert cache.slot("c") == 3 and "b" not in cache.loaded  # b was evicted
    with pytest.raises(RuntimeError, match="in use"):
        cache.slot("d", pinned={"a", "c"})
    assert loads == ["a", "b", "c", "d"] and cache.stats()["hits"] == 1


def test_groups_share_an_adapter_and_forget_retrains_only_the_group(make_seal, docs, tmp_path):
    s = make_seal(cfg(group_size=2))
    with open_store(tmp_path / "st") as st:
        learn(s, st, docs["guild.txt"], "passage", strategy="routed")
        learn(s, st, docs["railway.txt"], "passage")
        v3 = learn(s, st, docs["archives.txt"], "passage")  # about the guild: joins the guild's group
        groups = store_state(st).source.config["groups"]
        assert [g["documents"] for g in groups] == [[1, 3], [2]]
        assert st.version(v3.version).metrics["group_documents"] == 2
        rail, _ = ask_explained(s, st, [Q_RAIL])
        rep = forget(s, st, "archives.txt")
        assert rep.sequences > 0  # the guild's group was retrained on the guild alone
        groups = store_state(st).source.config["groups"]
        assert [g["documents"] for g in groups] == [[1], [2]] and groups[1]["adapter"] == 2
        rail_after, why = ask_explained(s, st, [Q_RAIL, Q_GUILD])
    assert rail_after[0] == rail[0] and [w["document"] for w in why] == [2, 1]


def test_routed_store_refuses_other_strategies(make_seal, docs, tmp_path):
    from seal.learning import LearnError

    s = make_seal()
    with open_store(tmp_path / "st") as st:
        learn(s, st, docs["guild.txt"], "passage", strategy="routed")
        with pytest.raises(LearnError, match="routed"):
            learn(s, st, docs["railway.txt"], "passage", strategy="accumulate")


def test_cli_learn_routed_and_ask_explain(tmp_path, docs, chatty_model_dir):
    store = tmp_path / "st"
    sets = ["--set", "inner_loop.epochs=1", "--set", "self_edit.max_new_tokens=8", "--model", str(chatty_model_dir)]
    for name in ("guild.txt", "railway.txt"):
        r = CliRunner().invoke(cli.app, ["learn", str(docs[name]), "--store", str(store), "--strategy", "routed",
                                         "--format", "passage", *sets])
        assert r.exit_code == 0, (r.output, r.exception)
    r = CliRunner().invoke(cli.app, ["ask", Q_RAIL, "--store", str(store), "--explain", *sets])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "answered by: document 'railway.txt' (id 2)" in r.stdout and "coverage 0.80" in r.stdout
    r = CliRunner().invoke(cli.app, ["ask", Q_NEITHER, "--store", str(store), "--explain", *sets])
    assert "answered by: the base model" in r.stdout


# --------------------------------------------------------------------------- the forgetting experiment
def test_forgetting_eval_routed_keeps_every_passage_and_reports_routing(make_seal):
    passages = [Passage("The Verdant Guild", GUILD, (QA(Q_GUILD, "Ilsabet Quorne"),)),
                Passage("Pellucid Railway", RAILWAY, (QA(Q_RAIL, "1912"), QA("What do the trestles cross?", "salt"))),
                Passage("Captain Odalys Fenn", "Captain Odalys Fenn commanded the airship Meridian Lark in 1903.",
                        (QA("Which airship did Captain Fenn command?", "Meridian Lark"),))]
    s = make_seal(cfg(cache=2))
    before = base_weights(s)
    res = evaluate_forgetting(s, passages, "routed", "passage")
    answers = [st["answers"] for st in res.steps]
    for j in range(3):  # every later evaluation answers passage j exactly as right after it was learned
        assert all(answers[i][j] == answers[j][j] for i in range(j, 3))
        assert all(res.matrix[i][j] == res.matrix[j][j] for i in range(j, 3))
    sm = res.summary()
    assert sm["forgetting"] == 0 and sm["routing_accuracy"] == 1.0 and sm["routing_questions"] == 1 + 3 + 4
    assert sm["cache"]["size"] == 2 and sm["cache"]["evictions"] > 0 and sm["latency_s"] > 0
    assert len(sm["diagonal_ci95"]) == 2 and sm["n_passages"] == 3
    for k, w in before.items():
        assert torch.equal(w, base_weights(s)[k])
    with pytest.raises(ValueError, match="guard"):
        evaluate_forgetting(s, passages, "routed", "passage", guard=True)


def test_cli_eval_forgetting_routed(tmp_path, tiny_model_dir):
    out = tmp_path / "f.json"
    r = CliRunner().invoke(cli.app, ["eval", "forgetting", "--sequence", "2", "--strategy", "routed", "--format",
                                     "passage", "--json", str(out), "--model", str(tiny_model_dir),
                                     "--set", "inner_loop.epochs=1", "--set", "eval.answer_tokens=4"])
    assert r.exit_code == 0, (r.output, r.exception)
    d = json.loads(out.read_text())
    assert d["strategy"] == "routed" and "routing_accuracy" in d["summary"]
    assert "routing:" in r.stdout and "answer latency" in r.stdout
    bad = CliRunner().invoke(cli.app, ["eval", "forgetting", "--strategy", "routed", "--guard",
                                       "--model", str(tiny_model_dir)])
    assert bad.exit_code == 1


def test_export_one_documents_adapter(tmp_path, docs, chatty_model_dir):
    from safetensors.torch import load_file

    store = tmp_path / "st"
    sets = ["--set", "inner_loop.epochs=1", "--model", str(chatty_model_dir)]
    for name in ("guild.txt", "railway.txt"):
        r = CliRunner().invoke(cli.app, ["learn", str(docs[name]), "--store", str(store), "--strategy", "routed",
                                         "--format", "passage", *sets])
        assert r.exit_code == 0, (r.output, r.exception)
    r = CliRunner().invoke(cli.app, ["export", str(tmp_path / "all"), "--store", str(store), *sets])
    assert r.exit_code != 0 and "--document" in str(r.exception)
    r = CliRunner().invoke(cli.app, ["export", str(tmp_path / "rail"), "--store", str(store), "--document",
                                     "railway.txt", *sets])
    assert r.exit_code == 0, (r.output, r.exception)
    meta = json.loads((tmp_path / "rail" / "seal_export.json").read_text())
    assert meta["documents"] == ["railway.txt"]
    got = load_file(tmp_path / "rail" / "adapter_model.safetensors")
    with Store.open(store) as st:
        want = st.load_adapter(2)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in got)
