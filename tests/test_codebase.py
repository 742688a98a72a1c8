"""Tests for seal.domains.codebase: modules as contexts, questions generated from the code, self-edit parsing,
prompts without the source, lexical scoring, and the inner loop end to end on the tiny model."""

from __future__ import annotations

import ast
import dataclasses

import pytest

from seal.config import SealConfig
from seal.domains.base import EditItem, SelfEditError
from seal.domains.codebase import SAMPLE_PACKAGE, CodebaseDomain, load_modules, source_chunks
from seal.domains.knowledge import QA, DataError
from seal.grading import LexicalGrader, normalize

MODULES = ["tidepool", "tidepool.alerts", "tidepool.records", "tidepool.sensors", "tidepool.stations",
           "tidepool.tides", "tidepool.units"]


class EchoLM:
    """Stands in for a LoadedModel where only ``chat`` is used: the prompt is the user message itself."""

    def chat(self, user: str) -> str:
        return user


@pytest.fixture(scope="module")
def modules():
    return {m.title: m for m in load_modules(SAMPLE_PACKAGE)}


def seqs(parsed) -> list[str]:
    assert all(e.prompt == "" for e in parsed.examples)
    return [e.completion for e in parsed.examples]


# --------------------------------------------------------------------------- loading + questions
def test_sample_package_modules_in_order(modules):
    assert list(modules) == MODULES
    assert [len(m.questions) for m in modules.values()] == [8] * 7  # capped at 8 each: 56 in all
    units = modules["tidepool.units"]
    assert units.context == (SAMPLE_PACKAGE / "units.py").read_text(encoding="utf-8")
    assert len({m.id for m in modules.values()}) == 7
    again = CodebaseDomain().load_contexts(SAMPLE_PACKAGE)
    assert again == list(modules.values())  # deterministic: same modules, questions and order


@pytest.mark.parametrize(("module", "qa"), [
    ("tidepool.tides", QA("What is the default value of the parameter `datum` of `tidepool.tides.TideTable`?",
                          "1.2")),
    ("tidepool.units", QA("What is the default value of the parameter `unit` of `tidepool.units.to_metres`?",
                          "'m'")),
    ("tidepool.stations", QA("What is the default value of the field `timezone` of `tidepool.stations.Station`?",
                             "'UTC'")),
    ("tidepool.sensors", QA("Which exception does `tidepool.sensors.PressureSensor.calibrate` raise when "
                            "`abs(offset) > MAX_CALIBRATION_OFFSET_KPA`?", "CalibrationError")),
    ("tidepool.stations", QA("Which exception does `tidepool.stations.StationRegistry.add` raise when "
                             "`self.strict and key in self._by_id`?", "KeyError")),
    ("tidepool.units", QA("Which exception does `tidepool.units.to_kpa` raise when a `KeyError` is caught?",
                          "LookupError")),
    ("tidepool.alerts", QA("Which exception does `tidepool.alerts.AlertLog.latest` raise when "
                           "`not self.entries`?", "IndexError")),
    ("tidepool.tides", QA("`tidepool.tides` imports `Station`. Which module of the package defines `Station`?",
                          "tidepool.stations")),
    ("tidepool", QA("`tidepool` imports `Reading`. Which module of the package defines `Reading`?",
                    "tidepool.sensors")),
    ("tidepool.sensors", QA("What is the value of `GRAVITY` in `tidepool.sensors`?", "9.80665")),
    ("tidepool", QA("What is the value of `__version__` in `tidepool`?", "'0.4.1'")),
    ("tidepool.sensors", QA("Which class does `tidepool.sensors.SensorError` inherit from?", "RuntimeError")),
    ("tidepool.units", QA("What type does `tidepool.units.to_metres` return?", "float")),
    ("tidepool.tides", QA("What are the parameters of `tidepool.tides.predict_height`, in order?",
                          "constituents, hours, datum")),
])
def test_generated_questions(modules, module, qa):
    assert qa in modules[module].questions


def test_uncapped_questions_and_answers_are_gradable():
    units = {m.title: m for m in CodebaseDomain(max_questions=100).load_contexts(SAMPLE_PACKAGE)}
    qs = units["tidepool.units"].questions
    assert QA("What does `tidepool.units.format_length` return, according to its docstring?", "str") in qs
    assert QA("What is the value of `LENGTH_UNITS` in `tidepool.units`?", "('m', 'cm', 'ft')") in qs
    assert not any("_TO_METRES` in" in q.question or "_to_" in q.question for q in qs)  # private: no questions
    records = units["tidepool.records"].questions
    assert not any("`sep`" in q.question for q in records)  # its default "," normalises to nothing
    everything = [q for m in units.values() for q in m.questions]
    assert len(everything) > 56 and all(normalize(q.answer) and len(q.answer) <= 40 for q in everything)
    assert len({q.question for m in units.values() for q in m.questions}) == len(everything)


def test_single_file_and_package_layouts(tmp_path):
    single = CodebaseDomain().load_contexts(SAMPLE_PACKAGE / "units.py")
    assert [m.title for m in single] == ["units"] and len(single[0].questions) == 8
    pkg = tmp_path / "src" / "kit"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .api import Widget\n")
    (pkg / "api.py").write_text("from .core import Widget as Widget\n")
    (pkg / "core.py").write_text(
        "class Widget:\n"
        "    def __init__(self, size: int = 3, *, label: str = 'w') -> None:\n"
        "        if size < 0:\n            raise ValueError('size')\n"
        "        elif size > 9:\n            raise OverflowError('size')\n"
        "        else:\n            self.size = size\n")
    (pkg / "empty.py").write_text("import os\n")  # no questions: skipped
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "junk.py").write_text("X = 1\n")
    mods = {m.title: m.questions for m in load_modules(pkg)}
    assert list(mods) == ["kit", "kit.api", "kit.core"]
    defined = "`kit` imports `Widget`. Which module of the package defines `Widget`?"
    assert mods["kit"] == (QA(defined, "kit.core"),)  # followed through the re-export in kit.api
    core = {q.question: q.answer for q in mods["kit.core"]}
    assert core["What is the default value of the parameter `label` of `kit.core.Widget`?"] == "'w'"
    assert core["Which exception does the constructor of `kit.core.Widget` raise when `size > 9`?"] == \
        "OverflowError"
    assert core["What are the parameters of the constructor of `kit.core.Widget`, in order?"] == "size, label"
    # a folder without __init__.py holds top-level modules: names are relative to it
    assert [m.title for m in load_modules(tmp_path / "src")] == ["kit", "kit.api", "kit.core"]


def test_load_errors(tmp_path):
    (tmp_path / "bad.py").write_text("def f(:\n    pass\n")
    with pytest.raises(DataError, match=r"bad\.py:1: syntax error: "):
        load_modules(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: not a Python file or package directory$"):
        load_modules(tmp_path / "notes.txt")
    with pytest.raises(DataError, match=r"^data path not found: .*nope$"):
        load_modules(tmp_path / "nope")
    (tmp_path / "docs").mkdir()
    with pytest.raises(DataError, match=r"docs: no Python modules$"):
        load_modules(tmp_path / "docs")
    (tmp_path / "latin.py").write_bytes(b"X = '\xe9'\n")
    with pytest.raises(DataError, match=r"latin\.py: not UTF-8 text"):
        load_modules(tmp_path / "latin.py")


# --------------------------------------------------------------------------- self-edits
NOTES = """Here are my notes on the module:
```python
- `to_metres(value, unit='m')` converts a length to metres and returns a float.
- FEET_PER_METRE = 3.28084
* GRAVITY
1. `to_metres` raises ValueError when the unit is unknown.
2. `to_metres` raises ValueError when the unit is unknown.
def to_kpa(value: float, unit: str = "hPa") -> float:
```
"""


def test_parse_notes(modules):
    units = modules["tidepool.units"]
    parsed = CodebaseDomain(include_passage=False).parse_self_edit(units, NOTES, "notes")
    head = "Python module tidepool.units\n"
    assert seqs(parsed) == [head + "`to_metres(value, unit='m')` converts a length to metres and returns a float.",
                            head + "FEET_PER_METRE = 3.28084",
                            head + "`to_metres` raises ValueError when the unit is unknown.",
                            head + 'def to_kpa(value: float, unit: str = "hPa") -> float:']
    assert dict(parsed.dropped) == {"```python": "code fence", "```": "code fence",
                                    "Here are my notes on the module:": "preamble", "GRAVITY": "too short",
                                    "`to_metres` raises ValueError when the unit is unknown.": "duplicate"}
    with_source = CodebaseDomain().parse_self_edit(units, NOTES, "notes")
    chunks = source_chunks(units.context)
    assert seqs(with_source) == seqs(parsed) + [head + c for c in chunks]
    assert len(seqs(CodebaseDomain(include_passage=False, max_sequences=2).parse_self_edit(units, NOTES,
                                                                                             "notes"))) == 2
    with pytest.raises(SelfEditError, match="no usable notes lines"):
        CodebaseDomain().parse_self_edit(units, "ok\n```\n!!! ??? ...\nSure, here you go:", "notes")


def test_parse_api_qa(modules):
    units = modules["tidepool.units"]
    dom = CodebaseDomain(include_passage=False)
    text = ("Q: What is the default unit of to_metres?\nA: 'm'\n**Q2:** Which exception does to_kpa raise?\n"
            "**A2:** LookupError\nA: an answer without a question")
    assert seqs(dom.parse_self_edit(units, text, "api-qa")) == [
        "Python module tidepool.units\nQuestion: What is the default unit of to_metres?\nAnswer: 'm'",
        "Python module tidepool.units\nQuestion: Which exception does to_kpa raise?\nAnswer: LookupError"]
    # no Q/A structure: kept as notes lines
    assert seqs(dom.parse_self_edit(units, "to_kpa converts hPa to kPa by default.", "api-qa")) == [
        "Python module tidepool.units\nto_kpa converts hPa to kPa by default."]


def test_passage_format_and_chunks(modules):
    dom = CodebaseDomain(include_passage=False)
    for m in modules.values():
        chunks = source_chunks(m.context)
        assert seqs(dom.parse_self_edit(m, "ignored", "passage")) == [f"Python module {m.title}\n{c}" for c in chunks]
        assert "\n".join(chunks).split() == m.context.split()  # all of it, in order
        assert all(len(c) <= 1500 or len(ast.parse(c).body) == 1 for c in chunks)  # one long statement may be
    small = source_chunks(modules["tidepool.tides"].context, max_chars=200)
    assert len(small) == 5 and all(len(c) <= 200 or len(ast.parse(c).body) == 1 for c in small)
    assert source_chunks("not python (\n") == ["not python ("]
    with pytest.raises(ValueError, match="not a codebase format"):
        dom.parse_self_edit(modules["tidepool"], "x", "implications")


# --------------------------------------------------------------------------- prompts + score
def test_prompts(modules):
    dom, lm = CodebaseDomain(), EchoLM()
    units = modules["tidepool.units"]
    for fmt in ("notes", "api-qa"):
        prompt = dom.self_edit_prompt(lm, units, fmt)
        assert units.context.rstrip() in prompt and "tidepool.units" in prompt
    assert "Q: <question>" in dom.self_edit_prompt(lm, units, "api-qa")
    for fmt in ("passage", "rewrite"):
        with pytest.raises(ValueError, match="has no self-edit prompt"):
            dom.self_edit_prompt(lm, units, fmt)
    grader = LexicalGrader()
    for m in modules.values():
        prompts = dom.task_prompts(lm, m)
        assert prompts == [f"Topic: the Python module {m.title}\n{q.question}\nAnswer briefly." for q in m.questions]
        code_lines = [ln.strip() for ln in m.context.splitlines() if len(ln.strip()) > 25]
        assert not any(ln in p for p in prompts for ln in code_lines)  # the source is never in the prompt
        # nor is the answer: echoing the prompt earns nothing
        assert not any(grader.grade(p, q.answer) for p, q in zip(prompts, m.questions, strict=True))


def test_score(modules):
    dom, grader = CodebaseDomain(), LexicalGrader()
    m = modules["tidepool.sensors"]
    golds = [q.answer for q in m.questions]
    assert dom.score(m, golds, grader) == (1.0, [True] * 8)
    answers = [f"It is {g}." for g in golds[:4]] + ["no idea"] * 4
    assert dom.score(m, answers, grader) == (0.5, [True] * 4 + [False] * 4)
    assert dom.score(dataclasses.replace(m, questions=()), [], grader) == (0.0, [])


def test_from_config_and_registry():
    cfg = SealConfig.from_dict({"self_edit": {"include_passage": False, "max_sequences": 5}})
    dom = CodebaseDomain.from_config(cfg, max_questions=3)
    assert (dom.include_passage, dom.max_sequences, dom.max_questions) == (False, 5, 3)
    assert (dom.name, dom.formats, dom.default_format) == ("codebase", ("passage", "notes", "api-qa"), "notes")
    inner = dom.policy_train_config(cfg.inner_loop)
    assert inner.max_seq_tokens >= 2048 and inner.lr == cfg.inner_loop.lr
    from seal.domains import load_domain

    loaded = load_domain("codebase", cfg, max_questions=2)
    assert isinstance(loaded, CodebaseDomain) and loaded.max_questions == 2
    assert all(len(m.questions) <= 2 for m in loaded.load_contexts(SAMPLE_PACKAGE))


# --------------------------------------------------------------------------- end to end, tiny model
def test_inner_loop_end_to_end(tiny_lm, modules):
    from seal.engine import Seal

    cfg = SealConfig.from_dict({"lora": {"rank": 4, "alpha": 8}, "inner_loop": {"epochs": 1},
                                "self_edit": {"max_new_tokens": 16}, "eval": {"answer_tokens": 4}})
    seal = Seal(tiny_lm, cfg, slots=3)
    dom = CodebaseDomain.from_config(cfg)
    ctx = modules["tidepool"]
    [text] = dom.write_self_edits(seal, [ctx], "notes", n=1, seed=0)[0]
    assert isinstance(text, str)
    items = [EditItem(ctx, NOTES, "notes", seed=0), EditItem(ctx, "", "passage", seed=1),
             EditItem(ctx, "!!!", "notes", seed=2)]
    good, passage, bad = dom.apply_self_edits(seal, items)
    for out in (good, passage):
        assert out.failed is None and 0.0 <= out.score <= 1.0
        assert out.info["steps"] >= 1 and len(out.info["answers"]) == len(ctx.questions)
    assert bad.score is None and "unusable self-edit" in bad.failed
    [base] = dom.baselines(seal, [ctx])
    assert 0.0 <= base <= 1.0
