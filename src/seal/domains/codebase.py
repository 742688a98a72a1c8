"""Codebase: a coding assistant that learns a project's evolving code by writing its own notes about it.

A context is one module of a Python package (a knowledge :class:`~seal.domains.knowledge.Passage` with
``title`` = the dotted module name, ``context`` = its source). The task questions are generated from the code
with :mod:`ast` (what a public function returns, what it raises and when, its parameters and their defaults,
where an imported name is defined, the values of constants), with short exact answers for the lexical grader,
asked as ``Topic: the Python module {name}\\n{question}`` *without* the source. Self-edits are ``notes`` (one
API fact per line) or ``api-qa`` (Q:/A: pairs); ``passage`` trains on the source alone. Each kept line is a
training sequence prefixed with ``Python module {name}``; the source is added too, in whole-statement chunks::

    dom = CodebaseDomain()
    modules = dom.load_contexts("src/seal/samples/codebase/tidepool")    # one context per module
    prompt = dom.self_edit_prompt(lm, modules[0], "notes")

It runs through the generic loops like any domain (``--domain codebase --data PACKAGE_DIR``).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

from seal.domains.base import Domain, ParsedSelfEdit
from seal.domains.knowledge import (
    _PREAMBLE,
    QA,
    DataError,
    Passage,
    _degenerate,
    _qa_pairs,
    clean_line,
    qa_score,
    select_lines,
)
from seal.grading import normalize
from seal.jobs import Example

FORMATS = ("passage", "notes", "api-qa")  # passage: no self-edit, train on the source alone (the baseline)
SAMPLE_PACKAGE = Path(__file__).resolve().parents[1] / "samples" / "codebase" / "tidepool"

KINDS = ("raises", "default", "returns", "constant", "defined-in", "base", "params")
"""Question kinds, in the order a module's capped selection takes them (one of each per round)."""

_PROMPTS = {
    "notes": (
        "Here is the source code of the Python module {name}.\n\n```python\n{source}\n```\n\n"
        "Write notes on this module's API, so that you could use it later without seeing the code. Write one "
        "fact per line and name the function, class or constant in every line: the parameters of each "
        "function and their default values, what it returns, which exception it raises and when, the values "
        "of constants, and which module each imported name comes from."
    ),
    "api-qa": (
        "Here is the source code of the Python module {name}.\n\n```python\n{source}\n```\n\n"
        "Write questions a programmer could ask about this module's API, each with a short exact answer "
        "taken from the code: parameters and their defaults, return types, raised exceptions, values of "
        "constants. Write each pair as a line 'Q: <question>' followed by a line 'A: <answer>'."
    ),
}

_QUESTION_PROMPT = "Topic: the Python module {name}\n{question}\nAnswer briefly."
_CONST = re.compile(r"^(?:[A-Z][A-Z0-9_]*|__version__)$")
_FENCE = re.compile(r"^\s*```")
_CODE_HEAD = re.compile(r"^(?:async\s+)?(?:def|class)\s")
_CODEISH = re.compile(r"[`=(]|\w[._]\w")
_MAX_ANSWER, _MAX_CONDITION = 40, 60
POLICY_MAX_SEQ_TOKENS = 2048


def _pub(name: str) -> bool:
    return not name.startswith("_")


def header(name: str) -> str:  # the first line of every training sequence about module ``name``
    return f"Python module {name}"


# --------------------------------------------------------------------------- loading
@dataclasses.dataclass
class _Module:
    name: str
    source: str
    tree: ast.Module
    is_package: bool


def _module_files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        if path.suffix != ".py":
            raise DataError(f"{path}: not a Python file or package directory")
        return [(path.parent.name if path.stem == "__init__" else path.stem, path)]
    if not path.is_dir():
        raise DataError(f"data path not found: {path}")
    # a directory with __init__.py is the package itself; otherwise it holds top-level modules and packages
    root = [path.resolve().name] if (path / "__init__.py").is_file() else []
    found = []
    for file in path.rglob("*.py"):
        rel = file.relative_to(path)
        if any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            continue
        parts = root + list(rel.parent.parts) + ([] if file.stem == "__init__" else [file.stem])
        if parts and all(p.isidentifier() for p in parts):
            found.append((".".join(parts), file))
    if not found:
        raise DataError(f"{path}: no Python modules")
    return sorted(found)


def _parse(name: str, file: Path) -> _Module:
    try:
        source = file.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(file))
    except UnicodeDecodeError as exc:
        raise DataError(f"{file}: not UTF-8 text ({exc.reason})") from exc
    except SyntaxError as exc:
        raise DataError(f"{file}:{exc.lineno}: syntax error: {exc.msg}") from exc
    return _Module(name, source, tree, file.stem == "__init__")


def load_modules(path: str | Path, max_questions: int = 8) -> list[Passage]:
    """One context per module of the package at ``path`` (or one .py file), in dotted-name order, but modules
    without questions. :class:`DataError` for a missing or non-Python path, no modules, a syntax error."""
    modules = [_parse(name, file) for name, file in _module_files(Path(path))]
    index = _Index(modules)
    qas = [(m, module_questions(m, index, max_questions)) for m in modules]
    return [Passage(m.name, m.source, tuple(q)) for m, q in qas if q]


class _Index:
    """Top-level definitions and package-internal imports of every module, to find where a name is defined."""

    def __init__(self, modules: list[_Module]) -> None:
        self.defs = {m.name: {n for node in m.tree.body for n in _defined(node)} for m in modules}
        self.imports: dict[str, dict[str, tuple[str, str]]] = {m.name: {} for m in modules}
        for m in modules:
            for node in m.tree.body:
                if isinstance(node, ast.ImportFrom):
                    target = _resolve(m, node)
                    if target in self.defs:
                        for alias in node.names:
                            self.imports[m.name][alias.asname or alias.name] = (target, alias.name)

    def definer(self, module: str, name: str) -> str | None:
        for _ in range(8):  # follow re-exports, never forever
            if name in self.defs.get(module, ()):
                return module
            if name not in self.imports.get(module, {}):
                return None
            module, name = self.imports[module][name]
        return None


def _defined(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if not isinstance(node, ast.Assign | ast.AnnAssign):
        return []
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def _resolve(m: _Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = m.name.split(".") if m.is_package else m.name.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join(base + ([node.module] if node.module else []))


# --------------------------------------------------------------------------- questions
def module_questions(m: _Module, index: _Index | None = None, max_questions: int = 8) -> list[QA]:
    """At most ``max_questions`` QAs about module ``m``: round-robin over :data:`KINDS` (each kind in source
    order), listed in source order. Deterministic."""
    index = index or _Index([m])
    cands: dict[str, list[tuple[int, str, str]]] = {k: [] for k in KINDS}
    seen: set[str] = set()

    def add(kind: str, line: int, question: str, answer: str) -> None:
        if question not in seen and normalize(answer) and len(answer) <= _MAX_ANSWER:  # "','" is ungradable
            seen.add(question)
            cands[kind].append((line, question, answer))

    for node in m.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _pub(node.name):
            _function_questions(node, f"{m.name}.{node.name}", add)
        elif isinstance(node, ast.ClassDef) and _pub(node.name):
            _class_questions(node, f"{m.name}.{node.name}", add)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            for name in _defined(node):
                if _CONST.match(name) and _literal(node.value):
                    add("constant", node.lineno, f"What is the value of `{name}` in `{m.name}`?",
                        ast.unparse(node.value))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                local = alias.asname or alias.name
                where = index.definer(m.name, local)
                if where and where != m.name and _pub(local):
                    add("defined-in", node.lineno, f"`{m.name}` imports `{local}`. Which module of the "
                        f"package defines `{local}`?", where)
    for k in KINDS:  # in a kind, distinct answers first: ValueError, KeyError, ... before ValueError again
        rank = {c: sum(d[2] == c[2] for d in cands[k][:i]) for i, c in enumerate(cands[k])}
        cands[k].sort(key=lambda c: (rank[c], c[0]))
    picked: list[tuple[int, str, str]] = []
    for i in range(max(map(len, cands.values()))):
        picked += [cands[k][i] for k in KINDS if i < len(cands[k])]
    return [QA(q, a) for _, q, a in sorted(picked[:max_questions], key=lambda c: c[0])]


def _class_questions(node: ast.ClassDef, qual: str, add) -> None:
    if len(node.bases) == 1 and ast.unparse(node.bases[0]) != "object":
        add("base", node.lineno, f"Which class does `{qual}` inherit from?", ast.unparse(node.bases[0]))
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None \
                and _pub(item.target.id) and _literal(item.value):
            add("default", item.lineno, f"What is the default value of the field `{item.target.id}` of "
                f"`{qual}`?", ast.unparse(item.value))
        elif isinstance(item, ast.Assign) and item.value is not None and _literal(item.value):
            for name in _defined(item):
                if _CONST.match(name):
                    add("constant", item.lineno, f"What is the value of `{qual}.{name}`?",
                        ast.unparse(item.value))
        elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            if item.name == "__init__":
                _function_questions(item, qual, add, constructor=True)
            elif _pub(item.name):
                _function_questions(item, f"{qual}.{item.name}", add)


def _function_questions(fn: ast.FunctionDef | ast.AsyncFunctionDef, qual: str, add, constructor=False):
    a = fn.args
    positional = a.posonlyargs + a.args
    params = [p.arg for p in positional]
    if params and params[0] in ("self", "cls"):
        params = params[1:]
    params += ([f"*{a.vararg.arg}"] if a.vararg else []) + [p.arg for p in a.kwonlyargs] \
        + ([f"**{a.kwarg.arg}"] if a.kwarg else [])
    defaults = list(zip(positional[len(positional) - len(a.defaults):], a.defaults, strict=True))
    defaults += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
    for p, d in defaults:
        add("default", p.lineno, f"What is the default value of the parameter `{p.arg}` of `{qual}`?",
            ast.unparse(d))
    what = f"the constructor of `{qual}`" if constructor else f"`{qual}`"
    if 2 <= len(params) <= 5:
        add("params", fn.lineno, f"What are the parameters of {what}, in order?", ", ".join(params))
    if not constructor:
        if fn.returns is not None and ast.unparse(fn.returns) != "None":
            add("returns", fn.lineno, f"What type does `{qual}` return?", ast.unparse(fn.returns))
        elif fn.returns is None and (doc := _doc_returns(fn)):
            add("returns", fn.lineno, f"What does `{qual}` return, according to its docstring?", doc)
    raises = [(line, exc, c if c and len(c) <= _MAX_CONDITION else None) for line, exc, c in _raises(fn.body)]
    if len({exc for _, exc, _ in raises}) > 1:  # "which exception does f raise?" needs one answer
        raises = [r for r in raises if r[2]]
    for line, exc, cond in raises:
        add("raises", line, f"Which exception does {what} raise" + (f" when {cond}?" if cond else "?"), exc)


def _raises(stmts: list[ast.stmt], cond: str | None = None) -> list[tuple[int, str, str | None]]:
    """(line, exception, condition) of each ``raise X(...)`` in a body (not in nested defs), where the
    condition is the innermost enclosing ``if`` test or caught exception (None at the top level)."""
    out = []
    for s in stmts:
        if isinstance(s, ast.Raise):
            exc = s.exc.func if isinstance(s.exc, ast.Call) else s.exc
            if isinstance(exc, ast.Name | ast.Attribute):
                out.append((s.lineno, ast.unparse(exc), cond))
        elif isinstance(s, ast.If):
            out += _raises(s.body, f"`{ast.unparse(s.test)}`")
            negated = s.test.operand if isinstance(s.test, ast.UnaryOp) and isinstance(s.test.op, ast.Not) \
                else ast.UnaryOp(ast.Not(), s.test)
            out += _raises(s.orelse, f"`{ast.unparse(negated)}`")
        elif isinstance(s, ast.Try | ast.TryStar):
            out += _raises(s.body, cond) + _raises(s.orelse, cond) + _raises(s.finalbody, cond)
            for h in s.handlers:
                out += _raises(h.body, f"a `{ast.unparse(h.type)}` is caught" if h.type else cond)
        elif not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):  # for, with, match
            bodies = [c.body for c in s.cases] if isinstance(s, ast.Match) else [getattr(s, "body", None),
                                                                                 getattr(s, "orelse", None)]
            out += [r for body in bodies if isinstance(body, list) for r in _raises(body, cond)]
    return out


def _doc_returns(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The first line of a Google (``Returns:``) or NumPy (``Returns`` / ``-------``) docstring section."""
    lines = (ast.get_docstring(fn) or "").splitlines()
    for i, line in enumerate(lines):
        google = re.fullmatch(r"Returns?:\s*(.*)", line.strip())
        numpy = line.strip() == "Returns" and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if not (google or numpy):
            continue
        rest = [x.strip() for x in lines[i + (2 if numpy else 1):] if x.strip()]
        text = (google.group(1) if google and google.group(1) else rest[0] if rest else "").split(". ")[0]
        text = re.sub(r"^([\w.\[\], ]+):\s.*", r"\1", text).rstrip(".")  # "float: the height" -> "float"
        return text if text and len(text.split()) <= 10 else None
    return None


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return len(ast.unparse(node)) <= _MAX_ANSWER


def source_chunks(source: str, max_chars: int = 1500) -> list[str]:
    """The source in pieces of whole top-level statements of at most ``max_chars`` (a longer statement is a
    piece of its own), so that a training sequence is not cut at ``inner_loop.max_seq_tokens``."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return [source.strip()]
    lines = source.splitlines()
    starts = [(n.decorator_list[0] if getattr(n, "decorator_list", None) else n).lineno - 1 for n in body]
    bounds = sorted({0, *starts}) + [len(lines)]
    chunks, cur = [], ""
    for a, b in zip(bounds, bounds[1:], strict=False):
        seg = "\n".join(lines[a:b]).strip()
        if cur and len(cur) + len(seg) + 2 > max_chars:
            chunks.append(cur)
            cur = ""
        cur = f"{cur}\n\n{seg}" if cur else seg
    return [c for c in chunks + [cur] if c]


# --------------------------------------------------------------------------- the domain
class CodebaseDomain(Domain):
    name = "codebase"
    formats = FORMATS
    default_format = "notes"

    def __init__(self, include_passage: bool = True, max_sequences: int = 32, max_questions: int = 8) -> None:
        self.include_passage = include_passage
        self.max_sequences = max_sequences
        self.max_questions = max_questions

    @classmethod
    def from_config(cls, cfg, max_questions: int = 8) -> CodebaseDomain:
        return cls(cfg.self_edit.include_passage, cfg.self_edit.max_sequences, max_questions)

    def load_contexts(self, path: str | Path) -> list[Passage]:
        return load_modules(path, self.max_questions)

    def context_id(self, ctx: Passage) -> str:
        return ctx.id

    def self_edit_prompt(self, lm, ctx: Passage, fmt: str) -> str:
        return lm.chat(self_edit_instruction(ctx, fmt))

    def policy_train_config(self, inner):
        """The policy's SFT example holds the whole source in its prompt: room for it and the self-edit."""
        return dataclasses.replace(inner, max_seq_tokens=max(inner.max_seq_tokens, POLICY_MAX_SEQ_TOKENS))

    def parse_self_edit(self, ctx: Passage, text: str, fmt: str) -> ParsedSelfEdit:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not a codebase format (choose from {', '.join(FORMATS)})")
        dropped: list[tuple[str, str]] = []
        items: list[str] = []
        if fmt != "passage":
            dropped += [(ln.strip(), "code fence") for ln in text.splitlines() if _FENCE.match(ln)]
            lines = [ln for ln in text.splitlines() if ln.strip() and not _FENCE.match(ln)]
            candidates = _qa_pairs(lines) if fmt == "api-qa" else []
            if not candidates:  # also the fallback when an api-qa edit has no Q/A structure
                candidates = [c for c in map(clean_line, lines) if c]
            items = select_lines(candidates, ctx.context, _problem, self.max_sequences, fmt, dropped)
        head = header(ctx.title)
        seqs = [f"{head}\n{item}" for item in items]
        if self.include_passage or fmt == "passage":
            seqs += [f"{head}\n{chunk}" for chunk in source_chunks(ctx.context)]
        return ParsedSelfEdit([Example("", s) for s in seqs], dropped, {"n_lines": len(items)})

    def task_prompts(self, lm, ctx: Passage) -> list[str]:
        return [lm.chat(_QUESTION_PROMPT.format(name=ctx.title, question=q.question)) for q in ctx.questions]

    def score(self, ctx: Passage, answers: list[str], grader) -> tuple[float, list[bool]]:
        return qa_score(ctx, answers, grader)


def _problem(item: str) -> str | None:
    """Why a self-edit line is unusable (knowledge's checks; a short line that states a code fact is fine)."""
    if not item.startswith("Question: ") and (_PREAMBLE.match(item) or
                                              (item.endswith(":") and not _CODE_HEAD.match(item))):
        return "preamble"
    reason = _degenerate(item)
    if reason == "too short" and len(item.split()) >= 3 and _CODEISH.search(item):
        return None  # "GRAVITY = 9.80665", "`to_metres` returns float"
    return reason


def self_edit_instruction(ctx: Passage, fmt: str) -> str:
    """The user message asking for a self-edit of format ``fmt`` about a module (before any chat template)."""
    if fmt not in _PROMPTS:
        raise ValueError(f"format {fmt!r} has no self-edit prompt (choose from {', '.join(_PROMPTS)})")
    return _PROMPTS[fmt].format(name=ctx.title, source=ctx.context.rstrip())
