"""One ReST-EM for every domain: knowledge and ARC through ``seal.rest_em.train`` give the records, rewards and
selections that their own loops gave before the change.

``tests/data/rest_em_golden.json`` was written by the two loops as they were at commit bda0e94 (knowledge
``train_knowledge`` and ARC ``arc_loop.train_arc``), on the tiny model in float64 (portable: see conftest),
with the seeds and configs below. Rewards are fractions of a few questions (exact), answers greedy text."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from seal.config import SealConfig
from seal.domains.knowledge import load_passages
from seal.engine import Seal
from seal.io import read_jsonl
from seal.model import wrap_model
from tests.conftest import SAMPLES, build_model
from tests.test_arc_ttt_loop import SMALL, tasks
from tests.test_rest_em import HashGrader, _cfg

GOLDEN = json.loads((Path(__file__).parent / "data" / "rest_em_golden.json").read_text())
FIELDS = ("round", "context", "sample", "repeat", "passage", "reward", "accuracy", "baseline", "answers", "steps",
          "failed")


def _lm(tokenizer):
    return wrap_model(build_model(len(tokenizer)).to(torch.float64), tokenizer, "tiny")


def test_knowledge_through_the_one_loop_equals_its_old_loop(tokenizer, tmp_path):
    from seal.rest_em import train_knowledge

    s = Seal(_lm(tokenizer), _cfg(), grader=HashGrader(), slots=4)
    train_knowledge(s, load_passages(SAMPLES), tmp_path / "k")
    recs = sorted(read_jsonl(tmp_path / "k" / "samples.jsonl"),
                  key=lambda r: (r["round"], r["context"], r["sample"], r["repeat"]))
    want = GOLDEN["knowledge"]
    assert [{k: r.get(k) for k in FIELDS} for r in recs] == want["records"]
    for i in (1, 2):
        got = json.loads((tmp_path / "k" / f"round-{i}" / "selected.json").read_text())
        assert [(x["title"], x["context"], x["text"]) for x in got] == \
            [(x["title"], x["passage"], x["text"]) for x in want["selected"][i - 1]]
        texts = [r["text"] for r in read_jsonl(tmp_path / "k" / f"round-{i}" / "self_edits.jsonl")]
        assert texts == want["self_edits"][i - 1]
    assert sum(len(x) for x in want["selected"]) > 0 and any(r["reward"] for r in want["records"])  # not vacuous


def test_arc_through_the_one_loop_equals_its_old_loop(tokenizer, tmp_path):
    from seal.arc_loop import train_arc
    from seal.domains.arc.ttt import ArcConfig

    s = Seal(_lm(tokenizer), SealConfig(), slots=3)
    ts = tasks(2)
    train_arc(s, ts, tmp_path / "a", rounds=2, samples=2, cfg=ArcConfig(**SMALL), seed=0)
    got = {}
    for r in read_jsonl(tmp_path / "a" / "samples.jsonl"):
        got[(r["round"], r["passage"], r["sample"])] = {k: r.get(k) for k in ("text", "json", "reward", "valid")}
    want = {(r["round"], r["task"], i): x for r in GOLDEN["arc"]["records"] for i, x in enumerate(r["samples"])}
    assert got == want
    assert len({x["json"] for x in want.values()}) > 1  # the samples differ: sampling seeds are compared
