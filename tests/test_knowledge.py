"""Tests for seal.domains.knowledge: data loading, self-edit parsing for every format, prompts and scoring."""

from __future__ import annotations

import json
import re

import pytest

from seal.domains.base import SelfEditError
from seal.domains.knowledge import (
    QA,
    DataError,
    KnowledgeDomain,
    Passage,
    clean_line,
    load_passages,
    parse_passages,
)
from seal.grading import LexicalGrader
from seal.inner_loop import Example

P = Passage("The Verdant Guild", "The Verdant Guild was founded in 1847 by Ilsabet Quorne. Its emblem is a "
            "silver fern.", (QA("Who founded the Verdant Guild?", "Ilsabet Quorne"),
                             QA("What is the emblem?", "a silver fern")))
TITLE = P.title
PASSAGE_SEQ = f"{TITLE}\n{P.context}"


def seqs(parsed) -> list[str]:
    assert all(isinstance(e, Example) and e.prompt == "" for e in parsed.examples)
    return [e.completion for e in parsed.examples]


def parse(text: str, fmt: str = "implications", include_passage: bool = False, **kw):
    return KnowledgeDomain(include_passage=include_passage, **kw).parse_self_edit(P, text, fmt)


# --------------------------------------------------------------------------- data loading
GOOD = {"title": "T", "context": "Some context.", "questions": [{"question": "q?", "answer": "a"}]}


def test_parse_passages_good():
    [p] = parse_passages([GOOD, {"title": " U ", "context": " c "}])[:1]
    assert p == Passage("T", "Some context.", (QA("q?", "a"),))
    q = parse_passages([GOOD, {"title": " U ", "context": " c "}])[1]
    assert q == Passage("U", "c", ())


@pytest.mark.parametrize(("data", "message"), [
    ({"title": "T"}, r"^data: expected a JSON list of passages, got dict$"),
    ([GOOD, "text"], r"^data: passage 1: expected an object, got str$"),
    ([{"context": "c"}], r"^data: passage 0: missing or non-string 'title'$"),
    ([GOOD, GOOD, {"title": "T"}], r"^data: passage 2: missing or non-string 'context'$"),
    ([{"title": 3, "context": "c"}], r"^data: passage 0: missing or non-string 'title'$"),
    ([{"title": "T", "context": ["c"]}], r"^data: passage 0: missing or non-string 'context'$"),
    ([GOOD, {"title": "T", "context": "  \n "}], r"^data: passage 1: empty context$"),
    ([{"title": "T", "context": "c", "questions": "q?"}], r"^data: passage 0: 'questions' must be a list$"),
    ([{"title": "T", "context": "c", "questions": [{"question": "q?", "answer": "a"}, {"question": "q2?"}]}],
     r"^data: passage 0, question 1: needs string 'question' and 'answer'$"),
    ([{"title": "T", "context": "c", "questions": [{"question": "q?", "answer": 4}]}],
     r"^data: passage 0, question 0: needs string 'question' and 'answer'$"),
])
def test_parse_passages_errors(data, message):
    with pytest.raises(DataError, match=message):
        parse_passages(data)


def test_load_passages(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([GOOD]), encoding="utf-8")
    assert load_passages(path) == [Passage("T", "Some context.", (QA("q?", "a"),))]


def test_load_passages_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"^data file not found: .*nope\.json$"):
        load_passages(tmp_path / "nope.json")


def test_load_passages_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"title": "T",', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        load_passages(path)


def test_load_passages_error_names_file_and_index(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([GOOD, {"title": "x"}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.json: passage 1: missing or non-string 'context'$"):
        load_passages(path)


def test_sample_passages(sample_passages):
    assert len(sample_passages) >= 4
    assert sample_passages[0].title == "The Verdant Guild"
    assert len(sample_passages[0].questions) == 5
    assert sample_passages[0].questions[0] == QA("Who founded the Verdant Guild?", "Ilsabet Quorne")


def test_passage_id_is_stable_and_content_based():
    assert P.id == Passage(P.title, P.context).id  # questions do not matter
    assert len(P.id) == 16 and P.id != Passage(P.title, P.context + " More.").id


# --------------------------------------------------------------------------- parsing self-edits
def test_bullets_and_numbering_stripped():
    text = ("1. The guild has a long history in the town.\n"
            "2) Ilsabet Quorne was a famous botanist.\n"
            "- The silver fern appears on every banner.\n"
            "* Members of the guild grow rare plants.\n"
            "\u2022 The guild celebrates every spring.\n"
            "  b) The emblem uses a blue field.\n")
    assert seqs(parse(text)) == [f"{TITLE}\n{s}" for s in [
        "The guild has a long history in the town.", "Ilsabet Quorne was a famous botanist.",
        "The silver fern appears on every banner.", "Members of the guild grow rare plants.",
        "The guild celebrates every spring.", "The emblem uses a blue field."]]


def test_clean_line():
    assert clean_line("  12.   Spaced    out   words here ") == "Spaced out words here"
    assert clean_line("(3) The guild is old.") == "The guild is old."
    assert clean_line("--- The guild is old.") == "The guild is old."
    assert clean_line("U.S. law applies here.") == "U.S. law applies here."  # an initialism is no bullet


def test_leading_decimal_number_is_not_a_bullet():
    assert clean_line("1.5 million people visit Marrowick each year.") == \
        "1.5 million people visit Marrowick each year."


def test_preamble_lines_dropped():
    text = ("Here are some implications:\n"
            "Sure, here is the list\n"
            "Implications of the passage\n"
            "The following facts follow from it\n"
            "The guild was founded in the nineteenth century.\n"
            "These are the facts I found:\n")
    parsed = parse(text)
    assert seqs(parsed) == [f"{TITLE}\nThe guild was founded in the nineteenth century."]
    assert [r for _, r in parsed.dropped] == ["preamble"] * 5


def test_duplicates_dropped():
    text = ("The guild was founded in 1847.\n"
            "the guild was founded in 1847\n"
            "The Guild was founded -- in 1847!\n"
            "Ilsabet Quorne founded the guild.\n")
    parsed = parse(text)
    assert seqs(parsed) == [f"{TITLE}\nThe guild was founded in 1847.", f"{TITLE}\nIlsabet Quorne founded the guild."]
    assert parsed.dropped == [("the guild was founded in 1847", "duplicate"),
                              ("The Guild was founded -- in 1847!", "duplicate")]


def test_line_copying_a_one_sentence_passage_dropped():
    p = Passage("T", "The guild was founded in 1847 by Ilsabet Quorne.")
    dom = KnowledgeDomain(include_passage=False)
    parsed = dom.parse_self_edit(p, "The guild was founded in 1847 by Ilsabet Quorne.\n"
                                    "Ilsabet Quorne was a botanist in the town.", "rewrite")
    assert seqs(parsed) == ["T\nIlsabet Quorne was a botanist in the town."]
    assert parsed.dropped == [("The guild was founded in 1847 by Ilsabet Quorne.", "duplicate")]


def test_sentences_copied_from_a_multi_sentence_passage_are_kept_one_per_sequence():
    # A design choice: only a whole-passage copy is a duplicate (the passage is added anyway). Sentence-level
    # restatements are kept; whether they help is for the reward (and ReST-EM) to decide.
    parsed = parse(P.context, "rewrite")
    assert len(parsed.examples) == len(re.split(r"(?<=[.!?])\s+", P.context))  # parse() leaves the passage out
    assert all(e.completion.startswith(f"{TITLE}\n") for e in parsed.examples)


def test_too_short_and_no_letter_lines_dropped():
    parsed = parse("Yes.\nThe guild\n1847 1848 1849 1850\nIlsabet Quorne founded the guild.")
    assert seqs(parsed) == [f"{TITLE}\nIlsabet Quorne founded the guild."]
    assert parsed.dropped == [("Yes.", "too short"), ("The guild", "too short"),
                              ("1847 1848 1849 1850", "no letters")]


def test_repetitive_lines_dropped():
    rep = "the guild the guild the guild the guild the guild"
    parsed = parse(f"{rep}\nIlsabet Quorne founded the guild.")
    assert seqs(parsed) == [f"{TITLE}\nIlsabet Quorne founded the guild."]
    assert parsed.dropped == [(rep, "repetitive")]


def test_each_sentence_its_own_sequence():
    text = "The guild is in Marrowick. It was founded in 1847! Was it very famous? \"Yes,\" said the mayor of it."
    assert seqs(parse(text)) == [f"{TITLE}\n{s}" for s in [
        "The guild is in Marrowick.", "It was founded in 1847!", "Was it very famous?",
        "\"Yes,\" said the mayor of it."]]


def test_degenerate_tail_keeps_good_sentences():
    tail = "The the the the the the the the the the"
    parsed = parse(f"The guild is in Marrowick town. {tail}")
    assert seqs(parsed) == [f"{TITLE}\nThe guild is in Marrowick town."]
    assert parsed.dropped == [(tail, "repetitive")]


def test_passage_appended_when_include_passage():
    text = "Ilsabet Quorne founded the guild.\nThe guild emblem is a fern."
    assert seqs(parse(text, include_passage=True)) == [
        f"{TITLE}\nIlsabet Quorne founded the guild.", f"{TITLE}\nThe guild emblem is a fern.", PASSAGE_SEQ]
    assert seqs(parse(text, include_passage=False))[-1] != PASSAGE_SEQ


def test_max_sequences_cap():
    text = "\n".join(f"Fact number {i} is about the guild." for i in range(10))
    parsed = parse(text, include_passage=True, max_sequences=3)
    assert seqs(parsed) == [f"{TITLE}\nFact number {i} is about the guild." for i in range(3)] + [PASSAGE_SEQ]
    assert parsed.meta == {"n_lines": 3}


def test_self_qa_inline_pairs():
    text = ("Here are some questions:\n"
            "Q: Who founded the Verdant Guild?\n"
            "A: Ilsabet Quorne\n"
            "Question 2: When was the guild founded?\n"
            "Answer 2: In 1847.\n"
            "**Q:** What is the emblem?\n"
            "**A:** A silver fern\n")
    parsed = parse(text, "self-qa", include_passage=True)
    assert seqs(parsed) == [
        f"{TITLE}\nQuestion: Who founded the Verdant Guild?\nAnswer: Ilsabet Quorne",
        f"{TITLE}\nQuestion: When was the guild founded?\nAnswer: In 1847.",
        f"{TITLE}\nQuestion: What is the emblem?\nAnswer: A silver fern",
        PASSAGE_SEQ,
    ]


def test_self_qa_label_alone_on_a_line():
    text = ("Q:\n"
            "Who founded the Verdant Guild?\n"
            "A:\n"
            "- Ilsabet Quorne\n"
            "Question:\n"
            "1. When was the guild founded?\n"
            "Answer: 1847\n"
            "A: an answer without a question is ignored\n")
    assert seqs(parse(text, "self-qa")) == [
        f"{TITLE}\nQuestion: Who founded the Verdant Guild?\nAnswer: Ilsabet Quorne",
        f"{TITLE}\nQuestion: When was the guild founded?\nAnswer: 1847",
    ]


def test_self_qa_numbered_pairs():
    text = "1. Q: Who founded the Verdant Guild?\n   A: Ilsabet Quorne\n2. Q: When was it founded?\n   A: 1847\n"
    assert seqs(parse(text, "self-qa")) == [
        f"{TITLE}\nQuestion: Who founded the Verdant Guild?\nAnswer: Ilsabet Quorne",
        f"{TITLE}\nQuestion: When was it founded?\nAnswer: 1847",
    ]


def test_self_qa_without_pairs_falls_back_to_sentences():
    text = "The guild was founded by Ilsabet Quorne. The guild emblem is a fern."
    assert seqs(parse(text, "self-qa")) == [f"{TITLE}\nThe guild was founded by Ilsabet Quorne.",
                                            f"{TITLE}\nThe guild emblem is a fern."]


@pytest.mark.parametrize("fmt", ["implications", "rewrite", "self-qa"])
def test_all_garbage_raises(fmt):
    garbage = "Here are the implications:\nok\n!!! ??? ...\n\nyes yes\n" + "la " * 20
    with pytest.raises(SelfEditError, match=rf"^no usable {fmt} lines in the self-edit \(5 dropped\)$"):
        parse(garbage, fmt, include_passage=True)


@pytest.mark.parametrize("fmt", ["implications", "self-qa"])
def test_empty_self_edit_raises(fmt):
    with pytest.raises(SelfEditError, match=r"\(0 dropped\)"):
        parse("  \n\n", fmt)


@pytest.mark.parametrize("include_passage", [True, False])
def test_passage_format_is_exactly_the_passage(include_passage):
    parsed = parse("whatever the model wrote.\nIgnored line of text here.", "passage", include_passage)
    assert seqs(parsed) == [PASSAGE_SEQ]
    assert parsed.dropped == [] and parsed.meta == {"n_lines": 0}


# --------------------------------------------------------------------------- prompts and scoring
class EchoLM:
    def chat(self, user: str, system: str | None = None) -> str:
        return f"<user>{user}</user>"


def test_task_prompts_never_contain_the_passage(sample_passages, tiny_lm):
    dom = KnowledgeDomain()
    for lm in (EchoLM(), tiny_lm):
        for p in sample_passages:
            prompts = dom.task_prompts(lm, p)
            assert len(prompts) == len(p.questions)
            for prompt, q in zip(prompts, p.questions, strict=True):
                assert f"Topic: {p.title}\n{q.question}" in prompt
                assert p.context not in prompt
                for sentence in p.context.split(". "):
                    assert sentence.rstrip(".") not in prompt
    assert dom.task_prompts(EchoLM(), P)[0] == \
        "<user>Topic: The Verdant Guild\nWho founded the Verdant Guild?\nAnswer briefly.</user>"


@pytest.mark.parametrize("fmt", ["implications", "rewrite", "self-qa"])
def test_self_edit_prompt_contains_the_passage(fmt):
    prompt = KnowledgeDomain().self_edit_prompt(EchoLM(), P, fmt)
    assert P.context in prompt and f"Title: {TITLE}" in prompt


def test_self_edit_prompt_for_passage_format_is_an_error():
    with pytest.raises(ValueError, match="format 'passage' has no self-edit prompt"):
        KnowledgeDomain().self_edit_prompt(EchoLM(), P, "passage")


def test_score_with_lexical_grader(sample_passages):
    p = sample_passages[0]
    answers = ["It was Ilsabet Quorne.", "Lisbon", "A silver fern on a blue field", "", "the lantern bloom festival"]
    acc, verdicts = KnowledgeDomain().score(p, answers, LexicalGrader())
    assert verdicts == [True, False, True, False, True]
    assert acc == pytest.approx(0.6)


def test_score_without_questions():
    assert KnowledgeDomain().score(Passage("T", "c"), [], LexicalGrader()) == (0.0, [])


def test_score_needs_one_answer_per_question(sample_passages):
    with pytest.raises(ValueError):
        KnowledgeDomain().score(sample_passages[0], ["only one"], LexicalGrader())
