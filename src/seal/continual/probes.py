"""Forgetting probes: short questions about each learned document, asked later *without* the passage.

For each document the model writes Q/A pairs about the passage with the ``self-qa`` prompt (greedy,
:func:`write_probes`); pairs whose short answer occurs in the passage are kept (up to ``PROBES_PER_PASSAGE``),
and cloze questions made from the passage's sentences (a number or a capitalised word blanked out) fill up
the rest (:func:`make_probes`, :func:`cloze_probes`). :func:`probe_accuracy` scores them, pooled and per
document; the forgetting guard (:mod:`seal.continual.guard`) and ``seal learn`` use it::

    probes = write_probes(seal, passages)                       # list of QA lists, one per passage
    probed = [Passage(p.title, p.context, tuple(q)) for p, q in zip(passages, probes)]
    pooled, per_document = probe_accuracy(seal, probed, slot=0)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from seal.domains.knowledge import QA, KnowledgeDomain, Passage, _qa_pairs
from seal.engine import Seal
from seal.grading import normalize

PROBES_PER_PASSAGE = 3
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
_CAPITAL = re.compile(r"(?<![\w'-])[A-Z][a-zA-Z'-]+")
_SKIP = {"The", "A", "An", "In", "On", "At", "Of", "And", "But", "For", "It", "Its", "This", "That", "These",
         "Those", "He", "She", "They", "His", "Her", "Their", "As", "By", "To", "From", "With", "When", "While",
         "After", "Before", "During", "However", "I"}


def probe_pairs(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs from a self-QA text ('Q: ...' / 'A: ...' lines)."""
    out = []
    for pair in _qa_pairs([ln for ln in text.splitlines() if ln.strip()]):
        q, _, a = pair.partition("\nAnswer: ")
        out.append((q.removeprefix("Question: ").strip(), a.strip()))
    return out


def usable_pair(passage: Passage, question: str, answer: str) -> bool:
    """A short answer (1-8 words) found in the passage, to a real question that does not contain it."""
    a, q = normalize(answer), normalize(question)
    words = a.split()
    if not (1 <= len(words) <= 8) or len(q.split()) < 3:
        return False
    if f" {a} " in f" {q} ":
        return False
    return f" {a} " in f" {normalize(passage.title + ' ' + passage.context)} "


def cloze_probes(passage: Passage, n: int = PROBES_PER_PASSAGE, skip: Sequence[str] = ()) -> list[QA]:
    """Fill-in-the-blank probes from the passage's sentences: one per sentence, blanking a number if it has one,
    else the first capitalised word that does not start the sentence (a name, most of the time)."""
    out: list[QA] = []
    for sent in _SENT_SPLIT.split(" ".join(passage.context.split())):
        if len(out) >= n:
            break
        if len(sent.split()) < 5:
            continue
        m = _NUMBER.search(sent)
        if m is None:
            m = next((c for c in _CAPITAL.finditer(sent) if c.start() > 0 and c.group() not in _SKIP), None)
        if m is None:
            continue
        answer = m.group().rstrip(",.")
        question = f"Fill in the blank: {sent[:m.start()]}____{sent[m.start() + len(answer):]}"
        if question in skip:
            continue
        out.append(QA(question, answer))
    return out


def make_probes(passage: Passage, self_qa_text: str, n: int = PROBES_PER_PASSAGE) -> tuple[list[QA], str]:
    """Up to ``n`` probes: usable model-written pairs first, cloze probes for the rest. Returns (probes, source)
    with source ``model``, ``cloze`` or ``model+cloze``."""
    probes: list[QA] = []
    seen: set[str] = set()
    for q, a in probe_pairs(self_qa_text):
        if len(probes) >= n:
            break
        if usable_pair(passage, q, a) and normalize(q) not in seen:
            seen.add(normalize(q))
            probes.append(QA(q, a))
    n_model = len(probes)
    if len(probes) < n:
        probes += cloze_probes(passage, n - len(probes))
    source = "model" if n_model == len(probes) else ("cloze" if n_model == 0 else "model+cloze")
    return probes, source


PROBE_TOKENS = 128
"""Generation budget of the probe Q/A pairs (three short pairs fit)."""


def write_probes(seal: Seal, passages: Sequence[Passage], n: int = PROBES_PER_PASSAGE) -> list[list[QA]]:
    """Probes for each passage: the model (base route, greedy) writes Q/A pairs with the ``self-qa`` prompt,
    :func:`make_probes` keeps the usable ones and fills up with cloze probes. One batched generation call."""
    if not passages:
        return []
    dom = KnowledgeDomain()
    prompts = [dom.self_edit_prompt(seal.lm, p, "self-qa") for p in passages]
    texts = seal.generator.complete(prompts, max_new_tokens=min(PROBE_TOKENS, seal.cfg.self_edit.max_new_tokens))
    return [make_probes(p, t, n)[0] for p, t in zip(passages, texts, strict=True)]


def probe_accuracy(seal: Seal, probe_passages: Sequence[Passage], slot: int | None) -> tuple[float | None,
                                                                                             list[float | None]]:
    """Pooled accuracy over all probes (None when there are none) and per-passage accuracies."""
    dom = KnowledgeDomain()
    idx = [i for i, p in enumerate(probe_passages) if p.questions]
    per: list[float | None] = [None] * len(probe_passages)
    if not idx:
        return None, per
    scores = seal.evaluate(dom, [(probe_passages[i], slot) for i in idx])
    right = total = 0
    for i, sc in zip(idx, scores, strict=True):
        per[i] = sc.accuracy
        right += sum(sc.verdicts)
        total += len(sc.verdicts)
    return right / total, per



__all__ = ["PROBES_PER_PASSAGE", "PROBE_TOKENS", "probe_pairs", "usable_pair", "cloze_probes", "make_probes",
           "write_probes", "probe_accuracy"]
