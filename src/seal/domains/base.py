"""The Domain interface: the spine that lets a new task plug into the inner and outer loops unchanged.

A domain says what a context is, how to ask the model for a self-edit, how to turn the generated text into
training examples (or say why it cannot), and how to score a (possibly updated) model on the context's task
without the context in the prompt. The reward of a self-edit is ``score(after) - score(before)``.

    class MyDomain(Domain):
        name = "my-domain"
        def self_edit_prompt(self, lm, ctx, fmt): ...
        def parse_self_edit(self, ctx, text, fmt): ...
        def task_prompts(self, lm, ctx): ...
        def score(self, ctx, answers, grader): ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from seal.jobs import Example


class SelfEditError(ValueError):
    """A generated self-edit cannot be used (malformed, empty, degenerate); it earns no reward."""


@dataclass
class ParsedSelfEdit:
    """Training examples made from a self-edit, plus what was dropped and why (for logs)."""

    examples: list[Example]
    dropped: list[tuple[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class Domain(ABC):
    name: str = "domain"
    formats: tuple[str, ...] = ()

    @abstractmethod
    def context_id(self, ctx: Any) -> str:
        """A stable identifier (used for caching baselines and resuming runs)."""

    @abstractmethod
    def self_edit_prompt(self, lm, ctx: Any, fmt: str) -> str:
        """The templated prompt that asks the model to write a self-edit of format ``fmt``."""

    @abstractmethod
    def parse_self_edit(self, ctx: Any, text: str, fmt: str) -> ParsedSelfEdit:
        """Training examples from the generated text; raises SelfEditError when nothing usable remains."""

    @abstractmethod
    def task_prompts(self, lm, ctx: Any) -> list[str]:
        """Prompts of the evaluation task about ``ctx``, without ``ctx`` itself in them."""

    @abstractmethod
    def score(self, ctx: Any, answers: list[str], grader) -> tuple[float, list[bool]]:
        """Accuracy of ``answers`` (one per task prompt) and the per-item verdicts."""
