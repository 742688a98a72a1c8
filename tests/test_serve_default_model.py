"""`seal serve` on the real default model: a document learned through the API, with the `openai` client,
turns a question the model got wrong before into one it answers right after (slow: ~2 minutes on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seal.grading import LexicalGrader
from tests.conftest import requires_default_model
from tests.serve_helpers import ServeProcess

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@requires_default_model
def test_a_document_learned_through_the_api_fixes_a_wrong_answer(tmp_path):
    text = (EXAMPLES / "verdant_guild.txt").read_text(encoding="utf-8")
    qas = json.loads((EXAMPLES / "verdant_guild.questions.json").read_text(encoding="utf-8"))
    title = text.splitlines()[0].strip()
    grade = LexicalGrader()
    # the paper's 10 epochs: at the default 5 this document's questions stayed wrong after learning (once, in the
    # session that made 5 the default: 5 trades a few points of single-passage accuracy for half the training)
    with ServeProcess(tmp_path / "store", None, tmp_path / "serve.log", key="k",
                      sets=["--set", "inner_loop.epochs=10"]) as srv:
        client = srv.client()

        def answers() -> list[str]:
            return [client.chat.completions.create(
                model="seal", max_tokens=24, temperature=0,
                messages=[{"role": "user", "content": f"Topic: {title}\n{q['question']}"}]).choices[0].message.content
                for q in qas]

        before = answers()
        job = srv.learn(text, timeout=900, title=title)
        assert job["status"] == "done" and job["version"] == 1, job
        after = answers()
        assert srv.health()["version"] == 1
    right_before = [grade.grade(a, q["answer"]) for a, q in zip(before, qas, strict=True)]
    right_after = [grade.grade(a, q["answer"]) for a, q in zip(after, qas, strict=True)]
    fixed = [q["question"] for q, b, a in zip(qas, right_before, right_after, strict=True) if a and not b]
    assert fixed, (before, after)  # at least one question wrong before is right after, from the weights alone
