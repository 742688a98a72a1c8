"""Plug-in domains: load_domain (built-in, module:Class, file.py:Class, entry point) and its errors; a domain's
bad score through the engine; the example brevity domain; knowledge-domain self-edit templates."""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seal.config import SealConfig
from seal.domains import BUILTIN_DOMAINS, domain_names, load_domain, resolve_domain_class
from seal.domains.base import Domain, DomainError, SelfEditError
from seal.domains.knowledge import DataError, KnowledgeDomain, Passage
from seal.domains.templates import Template, load_template, parse_template
from tests.plugin_domain import ConfiguredDomain, TinyDomain

ROOT = Path(__file__).resolve().parents[1]
BREVITY = f"{ROOT / 'examples' / 'brevity_domain.py'}:BrevityDomain"
TOPICS = ROOT / "examples" / "brevity_topics.json"


class EchoLM:
    def chat(self, user: str, system: str | None = None) -> str:
        return user


# --------------------------------------------------------------------------------------------- load_domain
def test_builtin_knowledge_built_from_config():
    cfg = SealConfig.from_dict({"self_edit": {"include_passage": False, "max_sequences": 3}})
    dom = load_domain("knowledge", cfg)
    assert type(dom) is KnowledgeDomain
    assert (dom.include_passage, dom.max_sequences) == (False, 3)
    assert isinstance(load_domain("knowledge"), KnowledgeDomain)  # cfg defaults to SealConfig()
    assert set(BUILTIN_DOMAINS) >= {"knowledge", "arc", "codebase"}


def test_import_seal_domains_is_light():
    code = ("import sys, seal.domains, seal.domains.base; "
            "print(sorted(m for m in ('torch', 'transformers', 'seal.domains.arc.domain', 'seal.domains.codebase')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_module_class():
    dom = load_domain("tests.plugin_domain:TinyDomain")
    assert type(dom) is TinyDomain and dom.name == "tiny"
    assert resolve_domain_class("tests.plugin_domain:TinyDomain") is TinyDomain


def test_from_config_gets_cfg_and_options():
    cfg = SealConfig()
    dom = load_domain("tests.plugin_domain:ConfiguredDomain", cfg, colour="blue")
    assert isinstance(dom, ConfiguredDomain) and dom.cfg is cfg and dom.options == {"colour": "blue"}


def test_file_path_class(monkeypatch):
    dom = load_domain(BREVITY)
    assert isinstance(dom, Domain) and dom.name == "brevity"
    monkeypatch.chdir(ROOT)  # a relative path is relative to the working directory
    assert type(load_domain("examples/brevity_domain.py:BrevityDomain")) is type(dom)  # loaded once


def test_file_with_dataclass_and_same_stem_elsewhere(tmp_path):
    # two plug-in files with the same name must not shadow each other
    for sub, n in (("a", 1), ("b", 2)):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "dom.py").write_text(
            "from dataclasses import dataclass\n"
            "from tests.plugin_domain import TinyDomain\n"
            "@dataclass(frozen=True)\nclass Ctx:\n    word: str\n"
            f"class D(TinyDomain):\n    name = 'dom{n}'\n")
    assert load_domain(f"{tmp_path / 'a' / 'dom.py'}:D").name == "dom1"
    assert load_domain(f"{tmp_path / 'b' / 'dom.py'}:D").name == "dom2"


def _fake_entry_points(monkeypatch, *eps):
    def entry_points(**kw):
        group = kw.get("group")
        return [ep for ep in eps if group is None or ep.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_entry_point(monkeypatch):
    _fake_entry_points(monkeypatch, importlib.metadata.EntryPoint(
        name="tiny", value="tests.plugin_domain:TinyDomain", group="seal.domains"),
        importlib.metadata.EntryPoint(name="other", value="tests.plugin_domain:TinyDomain", group="elsewhere"))
    assert type(load_domain("tiny")) is TinyDomain
    assert domain_names()[-1] == "tiny" and "other" not in domain_names()
    with pytest.raises(DomainError, match=r"domain 'other'.*unknown.*entry points \(seal.domains\): tiny"):
        load_domain("other")


def test_entry_point_that_fails_to_load(monkeypatch):
    _fake_entry_points(monkeypatch, importlib.metadata.EntryPoint(
        name="gone", value="no_such_module_xyz:Cls", group="seal.domains"))
    with pytest.raises(DomainError, match=r"^domain 'gone': entry point 'no_such_module_xyz:Cls' failed to load"):
        load_domain("gone")


def _bad_files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "raises.py").write_text("raise RuntimeError('plugin import failed')\n")
    (tmp_path / "syntax.py").write_text("def broken(:\n")
    (tmp_path / "notes.txt").write_text("hello\n")
    return {
        "raises": f"{tmp_path / 'raises.py'}:D",
        "syntax": f"{tmp_path / 'syntax.py'}:D",
        "not_py": f"{tmp_path / 'notes.txt'}:D",
        "missing": f"{tmp_path / 'missing.py'}:D",
    }


FAILURES = {
    "unknown name": ("no-such-domain", r"unknown domain \(built-in: knowledge, arc, codebase; installed entry"),
    "empty": ("  ", r"expected a built-in name"),
    "file without class": ("examples/brevity_domain.py", r"name its class: examples/brevity_domain.py:ClassName"),
    "no class after colon": ("tests.plugin_domain:", r"expected a built-in name"),
    "module not importable": ("no_such_module_xyz:Cls", r"cannot import module 'no_such_module_xyz' \(Module"),
    "no such class": ("tests.plugin_domain:Missing", r"tests.plugin_domain has no class 'Missing'"),
    "not a Domain subclass": ("tests.plugin_domain:NotADomain", r"NotADomain is not a subclass of .*Domain"),
    "not a class": ("tests.plugin_domain:NOT_A_CLASS", r"int object is not a subclass"),
    "abstract": ("seal.domains.base:Domain", r"Domain\(\.\.\.\) raised TypeError: Can't instantiate abstract"),
    "constructor raises": ("tests.plugin_domain:ExplodingDomain", r"ExplodingDomain\(\.\.\.\) raised RuntimeError: "
                                                                  r"cannot start$"),
    "bad option": ("tests.plugin_domain:TinyDomain", r"TinyDomain\(\.\.\.\) raised TypeError"),
    "from_config raises": ("knowledge", r"KnowledgeDomain.from_config\(\.\.\.\) raised TypeError"),
    "file missing": ("missing", r"file not found: .*missing.py$"),
    "file import raises": ("raises", r"importing .*raises.py raised RuntimeError: plugin import failed$"),
    "file syntax error": ("syntax", r"importing .*syntax.py raised SyntaxError"),
    "file not python": ("not_py", r"notes.txt is not a Python file"),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_every_failure_is_a_one_line_domain_error_naming_the_spec(kind, tmp_path):
    spec, pattern = FAILURES[kind]
    spec = _bad_files(tmp_path).get(spec, spec)
    options = {"unexpected": 1} if kind in ("bad option", "from_config raises") else {}
    with pytest.raises(DomainError) as info:
        load_domain(spec, **options)
    msg = str(info.value)
    assert msg.startswith(f"domain {spec.strip()!r}: ") and "\n" not in msg
    assert re.search(pattern, msg), msg
    if kind.startswith("file import"):
        assert not [m for m in sys.modules if m.startswith("seal_domain_plugin_raises_")]


def test_missing_builtin_is_a_domain_error(monkeypatch):
    monkeypatch.setitem(BUILTIN_DOMAINS, "later", "seal.domains.not_written_yet:LaterDomain")
    with pytest.raises(DomainError, match=r"^domain 'later': cannot import module 'seal.domains.not_written_yet'"):
        load_domain("later")


# --------------------------------------------------------------------------------------------- engine
@pytest.fixture()
def seal(tiny_lm):
    from seal.engine import Seal

    return Seal(tiny_lm, SealConfig.from_dict({"lora": {"rank": 4, "alpha": 8}}), slots=2)


def _scoring(result):
    class BadScore(TinyDomain):
        name = "bad-score"

        def score(self, ctx, answers, grader):
            if isinstance(result, Exception):
                raise result
            return result

    return BadScore()


@pytest.mark.parametrize("result", [
    ZeroDivisionError("division by zero"), (1.5, [True]), (math.nan, [True]), ("high", [True]), (-0.1, [False]),
    (True, [True]),
    1.5, math.nan, "abc", None,  # a bare value instead of (score, verdicts)
], ids=repr)
def test_bad_score_through_evaluate_is_a_domain_error(seal, result):
    with pytest.raises(DomainError, match=r"^domain 'bad-score': score"):
        seal.evaluate(_scoring(result), [("alpha", None), ("beta", 1)])


def test_task_prompts_raising_is_a_domain_error(seal):
    class BadPrompts(TinyDomain):
        name = "bad-prompts"

        def task_prompts(self, lm, ctx):
            return {}["missing"]

    with pytest.raises(DomainError, match=r"^domain 'bad-prompts': task_prompts raised KeyError"):
        seal.evaluate(BadPrompts(), [("alpha", None)])


def test_plugin_domain_runs_through_engine(seal):
    dom = load_domain("tests.plugin_domain:TinyDomain")
    scores = seal.evaluate(dom, [("alpha", None), ("beta", 1)])
    assert [len(s.answers) for s in scores] == [1, 1] and all(0.0 <= s.accuracy <= 1.0 for s in scores)


def test_brevity_domain_through_engine(seal):
    dom = load_domain(BREVITY)
    topic = dom.load_contexts(TOPICS)[0]
    [score] = seal.evaluate(dom, [(topic, None)])
    assert 0.0 <= score.accuracy <= 1.0 and len(score.verdicts) == len(topic.held_out)


# --------------------------------------------------------------------------------------------- brevity
@pytest.fixture()
def brevity():
    return load_domain(BREVITY)


def test_brevity_topics_load(brevity):
    topics = brevity.load_contexts(TOPICS)
    assert len(topics) == 8 and len({brevity.context_id(t) for t in topics}) == 8
    assert all(len(t.practice) >= 3 and len(t.held_out) >= 3 for t in topics)
    prompts = brevity.task_prompts(EchoLM(), topics[0])
    assert len(prompts) == len(topics[0].held_out) and all(topics[0].about not in p for p in prompts)
    assert topics[0].practice[0] in brevity.self_edit_prompt(EchoLM(), topics[0], "answers")


def test_brevity_bad_topic_file(brevity, tmp_path):
    bad = tmp_path / "topics.json"
    bad.write_text(json.dumps([{"title": "T", "about": "A", "practice": [], "held_out": ["q?"]}]))
    with pytest.raises(ValueError, match=r"topics.json: topic 0: 'practice' must be a non-empty list"):
        brevity.load_contexts(bad)


def test_brevity_parse_gives_examples(brevity):
    topic = brevity.load_contexts(TOPICS)[0]
    text = ("Here are my answers:\n1. The fruit has a thin glassy rind.\n2) Warm sun cracks the rind.\n"
            "an aside between answers\n2. A second answer to question two.\n9. No such question.\n"
            "4. The fruit has a thin glassy rind.\n")
    parsed = brevity.parse_self_edit(topic, text, "answers")
    assert [e.completion for e in parsed.examples] == [" The fruit has a thin glassy rind.",
                                                       " Warm sun cracks the rind."]
    assert parsed.examples[0].prompt == brevity.task_prompts(EchoLM(), topic)[0].replace(
        topic.held_out[0], topic.practice[0])  # trained on the very prompt shape the task asks
    assert {r for _, r in parsed.dropped} == {"unnumbered", "duplicate", "no such question"}
    # unnumbered lines answer the questions in order; extra lines are dropped
    plain = brevity.parse_self_edit(topic, "\n".join(f"Reply {i}." for i in range(6)), "answers")
    assert len(plain.examples) == len(topic.practice) and ("Reply 5.", "extra line") in plain.dropped
    with pytest.raises(SelfEditError):
        brevity.parse_self_edit(topic, "\n  \n1. ...\n", "answers")


def test_brevity_score(brevity):
    topic = brevity.load_contexts(TOPICS)[0]
    q = topic.held_out
    good = ["Late summer is busiest.", "Growers plant hedges.", "It tastes like cold pears."]
    assert brevity.score(topic, good, None) == (1.0, [True, True, True])
    bad = [q[0] + " " + q[0],                                    # too long, and an echo
           q[1],                                                 # an echo, no full stop
           "Sweet"]                                              # no full stop
    assert brevity.score(topic, bad, None) == (0.0, [False, False, False])
    assert brevity.verdict("What season is busiest?", "The busiest season is what.") is False  # mostly the question's words
    assert brevity.verdict("q?", "one two three four five six seven eight nine ten eleven twelve.") is True
    assert brevity.verdict("q?", "one two three four five six seven eight nine ten eleven twelve thirteen.") is False
    assert brevity.verdict("q?", "Wait...") is False and brevity.verdict("q?", "") is False
    mixed = brevity.score(topic, ["Yes.", "No", "Maybe."], None)[0]
    assert mixed == pytest.approx(2 / 3) and 0.0 <= mixed <= 1.0


# --------------------------------------------------------------------------------------------- templates
STUDY = ROOT / "examples" / "templates" / "study_notes.toml"
P = Passage("Verdant Guild", "The Verdant Guild was founded in 1847 by Elena Voss in the city of Marrowgate.")


def test_sample_template_loads():
    t = load_template(STUDY)
    assert (t.name, t.parse) == ("study-notes", "lines") and t.format_names == ("template", "study-notes")
    text = t.render(P.title, P.context)
    assert P.context in text and "{" not in text


def _write(tmp_path, text: str, suffix: str = ".toml") -> Path:
    path = tmp_path / f"tpl{suffix}"
    path.write_text(text)
    return path


def test_template_json_and_literal_braces(tmp_path):
    path = _write(tmp_path, json.dumps({"prompt": "Notes as {{json}} on {title}:\n{context}", "parse": "qa"}),
                  ".json")
    t = load_template(path)
    assert (t.name, t.parse, t.source) == ("template", "qa", str(path))
    assert t.render("T", "C") == "Notes as {json} on T:\nC"


@pytest.mark.parametrize("text, pattern", [
    ('prompt = "{context}"\ncolour = "red"\n', r"unknown field 'colour' \(allowed: name, prompt, parse\)"),
    ('parse = "lines"\n', r"missing 'prompt'"),
    ('prompt = "   "\n', r"'prompt' must be a non-empty string"),
    ('prompt = 3\n', r"'prompt' must be a non-empty string"),
    ('prompt = "{context}"\nparse = "sentences"\n', r"parse = 'sentences'; choose one of 'lines', 'qa'"),
    ('prompt = "{context} by {author}"\n', r"prompt uses \{author\}; only \{title\} and \{context\}"),
    ('prompt = "{context} {title.upper}"\n', r"prompt uses \{title.upper\}"),
    ('prompt = "{context!r}"\n', r"prompt uses \{context!r\}"),
    ('prompt = "{context} {}"\n', r"prompt uses \{\}"),
    ('prompt = "{context} }"\n', r"Single '\}' encountered"),
    ('prompt = "about {title} only"\n', r"never uses \{context\}"),
    ('prompt = "{context}"\nname = "implications"\n', r"is a built-in knowledge format"),
    ('prompt = "{context}"\nname = "has space"\n', r"name = 'has space'"),
    ('prompt = "{context"\n', r"prompt: "),
    ('prompt = \n', r"not valid TOML"),
])
def test_template_rejects(tmp_path, text, pattern):
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=pattern) as info:
        load_template(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_template_missing_file_and_non_table(tmp_path):
    with pytest.raises(DataError, match=r"template file not found: .*nope.toml"):
        load_template(tmp_path / "nope.toml")
    with pytest.raises(DataError, match=r"tpl.json: expected a table of fields, got list"):
        load_template(_write(tmp_path, "[]", ".json"))
    with pytest.raises(DataError, match=r"^inline: unknown field"):
        parse_template({"prompt": "{context}", "extra": 1}, "inline")


def test_knowledge_template_lines():
    dom = KnowledgeDomain(include_passage=False, template=load_template(STUDY))
    assert {"template", "study-notes"} <= set(dom.formats) and dom.default_format == "template"
    assert "template" not in KnowledgeDomain().formats  # the class's formats are untouched
    for fmt in ("template", "study-notes"):
        assert dom.self_edit_prompt(EchoLM(), P, fmt) == load_template(STUDY).render(P.title, P.context)
    text = ("Here are the notes:\n- The Verdant Guild was founded in 1847. Elena Voss founded the Verdant Guild.\n"
            "2. Marrowgate is the city where the Verdant Guild began.\nshort line\n"
            "* The Verdant Guild was founded in 1847. Elena Voss founded the Verdant Guild.\n")
    parsed = dom.parse_self_edit(P, text, "template")
    # one sequence per line (not split into sentences), cleaned; preamble, degenerate and duplicate dropped
    assert [e.completion for e in parsed.examples] == [
        "Verdant Guild\nThe Verdant Guild was founded in 1847. Elena Voss founded the Verdant Guild.",
        "Verdant Guild\nMarrowgate is the city where the Verdant Guild began."]
    assert [r for _, r in parsed.dropped] == ["preamble", "too short", "duplicate"]
    # the built-in formats still split sentences
    assert len(dom.parse_self_edit(P, text, "implications").examples) == 3
    with pytest.raises(SelfEditError):
        dom.parse_self_edit(P, "ok\nno\n", "template")


def test_knowledge_template_qa():
    tpl = Template("Quiz me on {title}:\n{context}", parse="qa", name="quiz")
    dom = KnowledgeDomain(template=tpl)
    text = "Q: Who founded the Verdant Guild?\nA: Elena Voss\nQ: When was the Verdant Guild founded?\nA:\n1847"
    parsed = dom.parse_self_edit(P, text, "quiz")
    assert parsed == KnowledgeDomain().parse_self_edit(P, text, "self-qa")
    assert parsed.examples[0].completion == "Verdant Guild\nQuestion: Who founded the Verdant Guild?\nAnswer: Elena Voss"
    assert parsed.examples[-1].completion == f"{P.title}\n{P.context}"  # include_passage as usual


def test_knowledge_template_through_load_domain():
    dom = load_domain("knowledge", SealConfig(), template=load_template(STUDY))
    assert dom.template.name == "study-notes"
    with pytest.raises(ValueError, match="needs a template"):
        KnowledgeDomain().self_edit_prompt(EchoLM(), P, "template")
    with pytest.raises(DataError, match=r"^template: prompt never uses"):
        Template("no context here")
