"""Self-edit templates for the knowledge domain: your own self-edit prompt and parse rule, from a file.

A template is a TOML (or ``.json``) file with these fields, and no others::

    name = "study-notes"     # optional: the format name it answers to, besides "template"
    parse = "lines"          # "lines" (default): one training sequence per line; "qa": Q:/A: pairs
    prompt = '''
    Turn this passage into study notes, one fact per line.

    Title: {title}
    {context}
    '''

``prompt`` may use exactly two fields, ``{title}`` and ``{context}`` (it must use ``{context}``: the model has to
see the passage); write a literal brace as ``{{`` or ``}}``. With ``parse = "lines"`` every line is cleaned
(bullets and numbering removed) and dropped when it is a preamble, degenerate (too short, no letters,
repetitive) or a duplicate, as the knowledge domain's own formats are; unlike ``implications`` a line is not
split into sentences. ``parse = "qa"`` reads ``Q: ...`` / ``A: ...`` pairs exactly as the ``self-qa`` format
does. Use it with ``KnowledgeDomain(template=load_template(path))`` and the format ``template`` (or the
template's ``name``). Load errors are one-line :class:`~seal.domains.knowledge.DataError` naming the file.
"""

from __future__ import annotations

import json
import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seal.config import KNOWLEDGE_FORMATS
from seal.domains.knowledge import DataError

PARSE_RULES = ("lines", "qa")
FIELDS = ("title", "context")
_KEYS = ("name", "prompt", "parse")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Template:
    """A self-edit prompt over ``{title}`` and ``{context}``, and how to turn the answer into sequences."""

    prompt: str
    parse: str = "lines"
    name: str = "template"
    source: str = ""
    """Where it was loaded from (messages, run records)."""

    def __post_init__(self) -> None:
        check_template(self.prompt, self.parse, self.name, self.source or "template")

    @property
    def format_names(self) -> tuple[str, ...]:
        """The self-edit format names it answers to: ``template`` and its own name."""
        return tuple(dict.fromkeys(("template", self.name)))

    def render(self, title: str, context: str) -> str:
        return self.prompt.format(title=title, context=context)


def check_template(prompt: Any, parse: Any, name: Any, source: str) -> None:
    """Raise a one-line DataError naming ``source`` when the fields do not make a usable template."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{source}: 'prompt' must be a non-empty string")
    try:
        parts = list(string.Formatter().parse(prompt))
    except ValueError as exc:  # an unmatched '{' or '}'
        raise DataError(f"{source}: prompt: {exc} (write a literal brace as '{{{{' or '}}}}')") from None
    used = set()
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in FIELDS or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise DataError(f"{source}: prompt uses {shown}; only {{title}} and {{context}} are allowed "
                              "(write a literal brace as '{{' or '}}')")
        used.add(field)
    if "context" not in used:
        raise DataError(f"{source}: prompt never uses {{context}}, so the model would not see the passage")
    if parse not in PARSE_RULES:
        raise DataError(f"{source}: parse = {parse!r}; choose one of {', '.join(map(repr, PARSE_RULES))}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise DataError(f"{source}: name = {name!r}; use letters, digits, '-', '_' or '.' (at most 64)")
    if name in KNOWLEDGE_FORMATS:
        raise DataError(f"{source}: name = {name!r} is a built-in knowledge format; choose another name")


def parse_template(data: Any, source: str = "template") -> Template:
    """A :class:`Template` from the loaded fields (a dict), or a one-line DataError naming ``source``."""
    if not isinstance(data, dict):
        raise DataError(f"{source}: expected a table of fields, got {type(data).__name__}")
    unknown = [k for k in data if k not in _KEYS]
    if unknown:
        raise DataError(f"{source}: unknown field{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))} (allowed: {', '.join(_KEYS)})")
    if "prompt" not in data:
        raise DataError(f"{source}: missing 'prompt'")
    return Template(data["prompt"], data.get("parse", "lines"), data.get("name", "template"), source)


def load_template(path: str | Path) -> Template:
    """The template in a TOML file (or JSON, by its ``.json`` suffix)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"template file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise DataError(f"{path}: not valid {kind} ({str(exc).splitlines()[0]})") from None
    return parse_template(data, str(path))
