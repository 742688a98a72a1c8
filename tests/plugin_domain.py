"""Tiny plug-in domains for tests/test_domains_plugins.py (loaded as ``tests.plugin_domain:TinyDomain``)."""

from __future__ import annotations

from pathlib import Path

from seal.domains.base import Domain, ParsedSelfEdit, SelfEditError
from seal.jobs import Example


class TinyDomain(Domain):
    """Contexts are words; the self-edit is lines about the word; the task is one prompt; the score is the
    fraction of non-empty answers."""

    name = "tiny"
    formats = ("notes",)

    def load_contexts(self, path: str | Path) -> list[str]:
        return [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]

    def context_id(self, ctx: str) -> str:
        return ctx

    def self_edit_prompt(self, lm, ctx: str, fmt: str) -> str:
        return lm.chat(f"Write notes about {ctx}.")

    def parse_self_edit(self, ctx: str, text: str, fmt: str) -> ParsedSelfEdit:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise SelfEditError("empty self-edit")
        return ParsedSelfEdit([Example("", ln) for ln in lines])

    def task_prompts(self, lm, ctx: str) -> list[str]:
        return [lm.chat(f"Say something about {ctx}.")]

    def score(self, ctx: str, answers: list[str], grader) -> tuple[float, list[bool]]:
        verdicts = [bool(a.strip()) for a in answers]
        return (sum(verdicts) / len(verdicts) if verdicts else 0.0), verdicts


class ConfiguredDomain(TinyDomain):
    """Built by ``from_config``: keeps the config and any options it was given."""

    name = "configured"

    def __init__(self, cfg, **options) -> None:
        self.cfg, self.options = cfg, options

    @classmethod
    def from_config(cls, cfg, **options) -> ConfiguredDomain:
        return cls(cfg, **options)


class ExplodingDomain(TinyDomain):
    name = "exploding"

    def __init__(self) -> None:
        raise RuntimeError("cannot start\nsecond line")


class NotADomain:
    pass


NOT_A_CLASS = 3
