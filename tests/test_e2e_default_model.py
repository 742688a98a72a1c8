"""The real end-to-end check on the embedded default model (SmolLM2-135M-Instruct): learning a passage with a
self-written self-edit (the default format, rewrite, and the paper's implications) makes the model answer at least
one of its questions that it got wrong before.

Slow (1-2 minutes on a CPU): ``pytest -m slow tests/test_e2e_default_model.py``.
"""

from __future__ import annotations

import math

import pytest

from tests.conftest import requires_default_model

pytestmark = [pytest.mark.slow, requires_default_model]


@pytest.fixture(scope="module")
def seal_default():
    from seal.config import SealConfig
    from seal.engine import Seal

    return Seal.load(SealConfig())


@pytest.mark.parametrize("fmt", [None, "implications"])  # None: the config's default format
def test_learning_a_passage_fixes_a_wrong_answer(seal_default, sample_passages, tmp_path, fmt):
    from seal.grading import LexicalGrader
    from seal.learning import ask, learn
    from seal.store import Store

    passage = sample_passages[0]
    assert passage.title == "The Verdant Guild" and len(passage.questions) == 5
    doc = tmp_path / "verdant_guild.txt"
    doc.write_text(f"{passage.title}\n\n{passage.context}\n", encoding="utf-8")
    prompts = [f"Topic: {passage.title}\n{q.question}" for q in passage.questions]
    golds = [q.answer for q in passage.questions]
    grade = LexicalGrader()

    before = ask(seal_default, None, prompts, max_new_tokens=24)
    with Store.open(tmp_path / "store", create=True, base_model=seal_default.cfg.model.name) as store:
        report = learn(seal_default, store, doc, fmt=fmt)
        after = ask(seal_default, store, prompts, max_new_tokens=24)
        assert store.current_version().id == report.version == 1
        assert [e["format"] for e in store.self_edits()] == [fmt or "rewrite"]
    ok_before = [grade.grade(a, g) for a, g in zip(before, golds, strict=True)]
    ok_after = [grade.grade(a, g) for a, g in zip(after, golds, strict=True)]
    detail = "\n".join(f"{g!r}: before={b!r} after={a!r}" for g, b, a in zip(golds, before, after, strict=True))
    assert report.passages == 1 and report.sequences >= 2, report
    assert report.final_loss is not None and math.isfinite(report.final_loss), report
    assert any(a and not b for b, a in zip(ok_before, ok_after, strict=True)), detail
