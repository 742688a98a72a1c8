"""The router of the ``routed`` strategy: which learned document (and so which adapter) answers a question.

Each learned document is indexed by its title, its text and its self-edit's training sequences. A question is
scored against every document with BM25 (``bm25s``, Lucene's variant, offline and in memory); the best document
answers if it *covers* enough of the question: ``coverage`` = the share of the question's distinct content
words (lower-cased words of 2+ characters, without stop words and question words, Snowball-stemmed so that
"opened" matches "open") found in that document. A
question below ``threshold`` (or with no content words) goes to the base model. Coverage, unlike a raw BM25
score, does not depend on how many documents the store holds, so one threshold works for 2 and for 2,000::

    router = Router([RouteEntry(1, "Super Bowl 50", text, seqs), RouteEntry(2, "Verdant Guild", text2, [])])
    [d] = router.route(["Which team won Super Bowl 50?"])
    d.key, d.score, d.coverage          # 1, 2.31, 0.75   (d.key is None: the base model answers)

Ties go to the document learned first. Routing is deterministic and needs no model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_THRESHOLD = 0.5
"""The least coverage of a question's content words by a document for that document's adapter to answer."""

_WORD = re.compile(r"(?u)\b\w\w+\b")
STOP_WORDS = frozenset("""
a an and are as at be but by for if in into is it no not of on or such that the their then there these they this
to was will with what who whom whose which when where why how did does do done were has have had been being its
his her hers him he she them we you your our i me my us can could would should may might must shall than so
also from about after before over under between during name named many much one ones some any all each other
topic called kind type year years
""".split())
"""Words that say nothing about which document a question is about (English function words, question words,
and ``Topic``, which starts the evaluation's questions)."""


@functools.cache
def _stemmer():
    import Stemmer  # PyStemmer: the Snowball English stemmer (C, offline)

    return Stemmer.Stemmer("english")


def content_words(text: str) -> list[str]:
    """The words the router matches on, stemmed, in order (duplicates kept, for BM25's term frequencies)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
    return _stemmer().stemWords(words) if words else []


@dataclass(frozen=True)
class RouteEntry:
    """One routable document: ``key`` is what :meth:`Router.route` returns for it (a document id, a group)."""

    key: Hashable
    title: str
    text: str
    sequences: Sequence[str] = field(default_factory=tuple)

    def words(self) -> list[str]:
        return content_words("\n".join([self.title, self.text, *self.sequences]))


@dataclass(frozen=True)
class RouteDecision:
    key: Hashable | None
    """The document that answers, or None for the base model."""
    score: float
    """The best document's BM25 score (0 when nothing matched)."""
    coverage: float
    """The share of the question's content words the best document contains."""
    best: Hashable | None = None
    """The best-scoring document, also when its coverage was under the threshold."""

    def as_dict(self) -> dict:
        return {"document": self.key, "score": round(self.score, 4), "coverage": round(self.coverage, 4),
                "best": self.best}


class Router:
    """BM25 over the learned documents, gated by coverage (see the module docstring)."""

    def __init__(self, entries: Sequence[RouteEntry], threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"the routing threshold must be in [0, 1], not {threshold}")
        self.entries, self.threshold = list(entries), threshold
        words = [e.words() for e in self.entries]
        self._vocab = [set(w) for w in words]
        self._bm25 = None
        if any(words):
            import bm25s

            self._bm25 = bm25s.BM25(method="lucene")
            # bm25s cannot index an empty document; a placeholder word no question contains keeps the ids aligned
            self._bm25.index([w or ["\x00"] for w in words], show_progress=False)

    def __len__(self) -> int:
        return len(self.entries)

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of ``question`` against every document (in entry order)."""
        words = content_words(question)
        if self._bm25 is None or not words:
            return np.zeros(len(self.entries))
        return np.asarray(self._bm25.get_scores(words), dtype=np.float64)

    def route(self, questions: Sequence[str]) -> list[RouteDecision]:
        out = []
        for q in questions:
            words = set(content_words(q))
            scores = self.scores(q)
            if not words or not len(scores) or scores.max() <= 0:
                out.append(RouteDecision(None, 0.0, 0.0))
                continue
            j = int(np.argmax(scores))  # the first of equal scores: the document learned first
            cov = len(words & self._vocab[j]) / len(words)
            key = self.entries[j].key
            out.append(RouteDecision(key if cov >= self.threshold else None, float(scores[j]), cov, key))
        return out


__all__ = ["Router", "RouteEntry", "RouteDecision", "DEFAULT_THRESHOLD", "STOP_WORDS", "content_words"]
