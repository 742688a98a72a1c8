"""Property tests (hypothesis): arbitrary input to seal's parsers gives a result or the documented error, never
another exception, and the results keep the promises their docstrings make.

1. ``KnowledgeDomain.parse_self_edit`` (every format in ``FORMATS``)  -> ParsedSelfEdit or ``SelfEditError``
2. ``seal.domains.arc.selfedit.parse_self_edit``                      -> never raises; ``edit`` or ``reason``
3. ``seal.documents.read_document`` / ``split_passages``             -> passages or ``DocumentError``
4. ``SealConfig.override`` (``--set section.key=value``)              -> SealConfig or ``ConfigError``

The ``@example`` cases marked "was:" are regressions of bugs these tests found: another exception escaping, or
bad input accepted. ``SEAL_FUZZ_EXAMPLES=2000`` searches deeper than the default (about 5 s on 2 cores).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from seal.config import ConfigError, SealConfig
from seal.documents import CHUNK_CHARS, MAX_BYTES, DocumentError, read_document, split_passages
from seal.domains.arc import selfedit as arc
from seal.domains.base import ParsedSelfEdit, SelfEditError
from seal.domains.knowledge import FORMATS, KnowledgeDomain, Passage, _key
from seal.inner_loop import Example

N = int(os.environ.get("SEAL_FUZZ_EXAMPLES", "120"))  # e.g. 2000 for a deeper search
FUZZ = settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])


def one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message


def nonspace(text: str) -> str:
    return "".join(text.split())


WORDS = ("the", "river", "Nile", "flows", "north", "into", "Mediterranean", "Sea", "in", "1902", "Egypt", "it",
         "they", "dam", "was", "built", "Aswan", "water", "of", "a", "long", "history", "Question", "Answer")
_PREFIXES = ("", "- ", "* ", "\u2022 ", "1. ", "12) ", "(3) ", "a) ", "B. ", "Q: ", "A: ", "Q1: ", "A1. ",
             "Question: ", "Answer: ", "**Q:** ", "**A:** ", "Here are the implications:", "Sure! ", "Implications ",
             "  ", "\t")
sentences = st.builds(lambda words, end: " ".join(words) + end,
                      st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), st.sampled_from(("", ".", "!", "?", ":")))
lines = st.one_of(st.builds(str.__add__, st.sampled_from(_PREFIXES), sentences),
                  st.builds(lambda ss: " ".join(ss), st.lists(sentences, min_size=2, max_size=4)),
                  st.text(max_size=60))
self_edit_texts = st.one_of(st.text(max_size=400),
                            st.builds(lambda ls, sep: sep.join(ls), st.lists(lines, max_size=20),
                                      st.sampled_from(("\n", "\r\n", "\n\n"))))
passages = st.builds(Passage, st.text(max_size=30).map(str.strip),
                     st.one_of(sentences, st.text(min_size=1, max_size=200)).map(str.strip).filter(bool))


# ---- 1. the knowledge self-edit parser --------------------------------------------------------------------------

@FUZZ
@given(ctx=passages, text=self_edit_texts, fmt=st.sampled_from(FORMATS), include_passage=st.booleans(),
       max_sequences=st.integers(1, 40))
@example(ctx=Passage("T", "Some context here."), text="", fmt="implications", include_passage=True,
         max_sequences=32)
@example(ctx=Passage("T", "Some context here."), text="Q:\nWhat flows north into the sea?\nA:\nThe Nile river.",
         fmt="self-qa", include_passage=False, max_sequences=1)
def test_knowledge_parse_self_edit(ctx, text, fmt, include_passage, max_sequences):
    dom = KnowledgeDomain(include_passage=include_passage, max_sequences=max_sequences)
    try:
        parsed = dom.parse_self_edit(ctx, text, fmt)
    except SelfEditError as exc:
        assert fmt != "passage", "the passage format needs no self-edit and cannot fail"
        assert one_line(str(exc))
        return
    assert isinstance(parsed, ParsedSelfEdit)
    assert all(isinstance(e, Example) and e.prompt == "" and isinstance(e.completion, str) for e in parsed.examples)
    assert all(e.completion.startswith(f"{ctx.title}\n") for e in parsed.examples)  # each prefixed with the title
    with_passage = include_passage or fmt == "passage"
    n = parsed.meta["n_lines"]
    assert len(parsed.examples) == n + with_passage
    if with_passage:
        assert parsed.examples[-1].completion == f"{ctx.title}\n{ctx.context}"
    if fmt == "passage":
        assert n == 0 and parsed.dropped == []
    else:
        assert 1 <= n <= max_sequences
    items = [e.completion[len(ctx.title) + 1:] for e in parsed.examples[:n]]
    for item in items:
        assert item.strip() == item and len(item.split()) >= 4  # "too short" lines are dropped
        assert "\n" not in item or (item.startswith("Question: ") and "\nAnswer: " in item)
    keys = [_key(item) for item in items]
    assert len(set(keys)) == len(keys) and _key(ctx.context) not in keys  # duplicates (of the passage too) dropped
    for item, reason in parsed.dropped:
        assert isinstance(item, str) and reason in {"preamble", "too short", "no letters", "repetitive", "duplicate"}
    # the passage flag only adds (or not) the trailing passage example; parsing is deterministic
    other = KnowledgeDomain(include_passage=not include_passage, max_sequences=max_sequences).parse_self_edit(
        ctx, text, fmt)
    assert [e.completion for e in other.examples[:n]] == [e.completion for e in parsed.examples[:n]]
    assert other.dropped == parsed.dropped


# ---- 2. the ARC JSON self-edit parser ------------------------------------------------------------------------

json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10 ** 400), 10 ** 400),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
json_values = st.recursive(json_leaves, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)), max_leaves=8)


def _cased(words) -> st.SearchStrategy[str]:
    return st.builds(lambda w, case, pad: pad + case(w) + pad, st.sampled_from(sorted(words)),
                     st.sampled_from((str.lower, str.upper, str.title)), st.sampled_from(("", " ", "\t")))


# valid-by-construction values, each drawn with what the parser must make of it
valid_flags = st.one_of(st.sampled_from([(True, True), (False, False), (1, True), (0, False)]),
                        _cased(arc._TRUE).map(lambda s: (s, True)), _cased(arc._FALSE).map(lambda s: (s, False)))
valid_strategies = st.one_of(*(_cased({k, v}).map(lambda s, k=k: (s, k)) for k, v in arc.STRATEGIES.items()))
_finite = st.floats(allow_nan=False, allow_infinity=False)
valid_lrs = st.one_of(_finite.map(lambda x: (x, x)), _finite.map(lambda x: (repr(x), x)),
                      st.integers(-10 ** 6, 10 ** 6).map(lambda i: (i, float(i))),
                      st.floats(1e-7, 1.0).map(lambda x: (x, x)))
valid_epochs = st.integers(-10 ** 6, 10 ** 6).flatmap(
    lambda i: st.sampled_from([(i, i), (float(i), i), (str(i), i), (f"{i}.0", i)]))
lr_ranges = st.tuples(st.floats(1e-9, 1e-2), st.floats(1.0, 1e4)).map(lambda t: (t[0], t[0] * t[1]))

# arbitrary values under the real keys (and unknown ones)
flag_values = st.one_of(json_values, valid_flags.map(lambda t: t[0]))
number_values = st.one_of(json_values, valid_lrs.map(lambda t: t[0]), valid_epochs.map(lambda t: t[0]),
                          st.sampled_from(["1e400", "-1e400", "nan", "inf", "1e-4", "3", "3.5", "", "1_000"]))
strategy_values = st.one_of(json_values, valid_strategies.map(lambda t: t[0]))
extra_keys = st.dictionaries(st.text(max_size=8), json_values, max_size=2)
gen_sections = st.builds(lambda extra, real: {**extra, **real}, extra_keys, st.fixed_dictionaries(
    {}, optional={k: flag_values for k in arc.FLAG_KEYS.values()}))
train_sections = st.builds(lambda extra, real: {**extra, **real}, extra_keys, st.fixed_dictionaries(
    {}, optional={"strategy": strategy_values, "learning_rate": number_values, "num_train_epochs": number_values}))
arc_objects = st.one_of(
    st.builds(lambda extra, real: {**extra, **real}, extra_keys, st.fixed_dictionaries(
        {}, optional={"data_generation": st.one_of(gen_sections, json_values),
                      "training": st.one_of(train_sections, json_values)})),
    # both sections, every training key, each value valid or not: more of these get through to the checks
    st.fixed_dictionaries({"data_generation": gen_sections, "training": st.builds(
        lambda extra, real: {**extra, **real}, extra_keys, st.fixed_dictionaries({
            "strategy": st.one_of(valid_strategies.map(lambda t: t[0]), strategy_values),
            "learning_rate": st.one_of(valid_lrs.map(lambda t: t[0]), number_values),
            "num_train_epochs": st.one_of(valid_epochs.map(lambda t: t[0]), number_values)}))}),
)


def _render(obj, how: str) -> str:
    """JSON text of ``obj`` as a model might write it (prose, fences, Python booleans, trailing commas)."""
    text = json.dumps(obj)  # NaN / Infinity tokens included
    if how == "prose":
        return f"Sure! Here is my configuration: {text} Hope this helps {{not json}}."
    if how == "fence":
        return f"Some thoughts {{x}}.\n```json\n{text}\n```\nDone."
    if how == "python":
        return text.replace("true", "True").replace("false", "False")
    if how == "trailing":
        return text.replace("}", ",}").replace("]", ", ]")
    return text


def _check_result(res, lr_range=(1e-5, 1e-2), max_epochs=10) -> None:
    assert isinstance(res, arc.ParseResult)
    assert (res.edit is None) != (res.reason is None)  # exactly one of a self-edit or the reason why not
    assert isinstance(res.warnings, list) and all(isinstance(w, str) and w for w in res.warnings)
    if res.edit is None:
        assert isinstance(res.reason, str) and one_line(res.reason)
        return
    e = res.edit
    assert all(isinstance(getattr(e, g), bool) for g in arc.FLAG_KEYS)
    assert e.loss_on in arc.STRATEGIES
    assert isinstance(e.epochs, int) and 1 <= e.epochs <= max_epochs
    assert isinstance(e.learning_rate, float) and lr_range[0] <= e.learning_rate <= lr_range[1]
    assert arc.parse_self_edit(arc.to_json(e), lr_range=lr_range, max_epochs=max_epochs).edit == e


_TOKENS = ('{', '}', '[', ']', ':', ',', ' ', '\n', '"data_generation"', '"training"', '"strategy"', '"all"',
           '"learning_rate"', '"num_train_epochs"', '"use_basic_augmentations"', 'true', 'True', '1e999', '-0',
           'NaN', '3', '"x"', '```json', '```', '\\', '"')


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join)))
@example(text='{"training": ' + "[" * 100_000 + "]" * 100_000 + "}")  # was: RecursionError
@example(text='{"data_generation": {}, "training": {"learning_rate": ' + "1" * 5000 + "}}")  # was: ValueError
@example(text=None)  # documented: a non-string is an "empty self-edit"
def test_arc_parse_arbitrary_text(text):
    _check_result(arc.parse_self_edit(text))


@FUZZ
@given(obj=arc_objects, how=st.sampled_from(("plain", "prose", "fence", "python", "trailing")),
       lr_range=lr_ranges, max_epochs=st.integers(1, 20))
@example(obj={"data_generation": {}, "training": {"strategy": "all", "learning_rate": 10 ** 400,
                                                  "num_train_epochs": 3}},
         how="plain", lr_range=(1e-5, 1e-2), max_epochs=10)  # was: OverflowError (int too large for a float)
@example(obj={"data_generation": {}, "training": {"strategy": "all", "learning_rate": 1e-4,
                                                  "num_train_epochs": -(10 ** 400)}},
         how="plain", lr_range=(1e-5, 1e-2), max_epochs=10)  # was: OverflowError
def test_arc_parse_arbitrary_json(obj, how, lr_range, max_epochs):
    assume(how != "fence" or "```" not in json.dumps(obj))  # a fence inside a string would cut the object
    res = arc.parse_self_edit(_render(obj, how), lr_range=lr_range, max_epochs=max_epochs)
    _check_result(res, lr_range, max_epochs)
    if res.edit is None or not ("data_generation" in obj and "training" in obj):
        return  # (without them at the top, a nested object with a "training" key was the one parsed)
    gen, train = obj["data_generation"], obj["training"]  # a success had both sections as objects
    for group, key in arc.FLAG_KEYS.items():  # a flag is read as written, a missing one is false
        if key not in gen:
            assert getattr(res.edit, group) is False
        elif isinstance(gen[key], str):
            assert getattr(res.edit, group) is (gen[key].strip().lower() in arc._TRUE)
        else:
            assert getattr(res.edit, group) is bool(gen[key])
    strategy = train["strategy"].strip().lower()  # accepted, so a strategy's short or long name, any case
    assert arc.STRATEGIES.get(strategy, strategy) == arc.STRATEGIES[res.edit.loss_on]
    lr = float(train["learning_rate"])  # accepted, so a finite number (or its string): clamped into range
    assert res.edit.learning_rate == min(max(lr, lr_range[0]), lr_range[1])
    epochs = float(train["num_train_epochs"])  # a whole number
    assert epochs == int(epochs) and res.edit.epochs == min(max(int(epochs), 1), max_epochs)


@FUZZ
@given(flags=st.fixed_dictionaries({}, optional={k: valid_flags for k in arc.FLAG_KEYS.values()}),
       strategy=valid_strategies, lr=valid_lrs, epochs=valid_epochs, lr_range=lr_ranges,
       max_epochs=st.integers(1, 20), extra=extra_keys, how=st.sampled_from(("plain", "prose", "fence")))
def test_arc_parse_valid_json_is_accepted_and_clamped(flags, strategy, lr, epochs, lr_range, max_epochs, extra,
                                                       how):
    """Every documented forgiving form is accepted, and out-of-range numbers are clamped with a warning."""
    assume(how != "fence" or "```" not in json.dumps(extra))
    extra = {k: v for k, v in extra.items() if k not in ("data_generation", "training")}
    obj = {**extra, "data_generation": {k: v[0] for k, v in flags.items()},
           "training": {"strategy": strategy[0], "learning_rate": lr[0], "num_train_epochs": epochs[0]}}
    res = arc.parse_self_edit(_render(obj, how), lr_range=lr_range, max_epochs=max_epochs)
    _check_result(res, lr_range, max_epochs)
    lo, hi = lr_range
    want = arc.ArcSelfEdit(*(flags.get(k, (None, False))[1] for k in arc.FLAG_KEYS.values()), strategy[1],
                           min(max(lr[1], lo), hi), min(max(epochs[1], 1), max_epochs))
    assert res.edit == want, res.reason
    assert any("learning_rate" in w and "clamped" in w for w in res.warnings) == (not lo <= lr[1] <= hi)
    assert any("epochs" in w and "clamped" in w for w in res.warnings) == (not 1 <= epochs[1] <= max_epochs)
    assert sum("missing, taken as false" in w for w in res.warnings) == len(arc.FLAG_KEYS) - len(flags)


# ---- 3. the document reader ------------------------------------------------------------------------------------

BOM = "\ufeff".encode()
_paragraphs = st.lists(st.lists(sentences, min_size=1, max_size=6).map(" ".join), min_size=1, max_size=6)
documents = st.builds(lambda head, paras, sep: (head + "\n\n".join(paras)).replace("\n", sep),
                      st.sampled_from(("", "# A Title\n", "Notes on rivers\n", "A sentence title.\n", "###\n")),
                      _paragraphs, st.sampled_from(("\n", "\r\n", "\r")))


def _insert(data: bytes, pos: int, what: bytes) -> bytes:
    pos = min(pos, len(data))
    return data[:pos] + what + data[pos:]


_text_bytes = st.one_of(st.text(max_size=400).map(str.encode), documents.map(str.encode))
document_bytes = st.one_of(
    st.binary(max_size=400),
    _text_bytes,
    _text_bytes.map(lambda b: BOM + b),
    st.text(max_size=200).map(lambda s: s.encode("utf-16")),  # a BOM, then NULs: not UTF-8
    st.builds(_insert, _text_bytes, st.integers(0, 400),
              st.sampled_from((b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x01\x02\x03"))),
    # a NUL far from the start, after 8 KB of ordinary text (was: accepted, and reached a passage)
    st.builds(lambda n, tail: b"word " * n + b"\x00" + tail, st.integers(1600, 2400), _text_bytes),
    st.builds(lambda n, unit: unit * n, st.integers(1, 4000), st.sampled_from((b"x", b"word ", b"a.", b"\n", b" "))),
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_docs")


@settings(FUZZ, max_examples=N * 5 // 4)
@given(data=document_bytes, max_bytes=st.one_of(st.just(MAX_BYTES), st.integers(0, 12_000)),
       chunk_chars=st.one_of(st.just(CHUNK_CHARS), st.integers(1, 300)))
@example(data=b"", max_bytes=MAX_BYTES, chunk_chars=CHUNK_CHARS)
@example(data=b"word " * 2000 + b"\x00 more words here", max_bytes=MAX_BYTES, chunk_chars=CHUNK_CHARS)
@example(data=b"x" * 5000, max_bytes=4999, chunk_chars=CHUNK_CHARS)
@example(data=BOM + b"Title\n\nab cd", max_bytes=MAX_BYTES, chunk_chars=1)
def test_read_document(fuzz_dir, data, max_bytes, chunk_chars):
    path = fuzz_dir / "fuzz-doc.txt"
    path.write_bytes(data)
    try:
        out = read_document(path, max_bytes=max_bytes, chunk_chars=chunk_chars)
    except DocumentError as exc:
        assert one_line(str(exc))
        return
    assert len(data) <= max_bytes and b"\x00" not in data
    text = data.decode("utf-8-sig")  # it was UTF-8
    assert isinstance(out, list) and out and all(isinstance(p, Passage) for p in out)
    for p in out:
        assert p.title and p.title == p.title.strip() and "\n" not in p.title
        assert isinstance(p.context, str) and p.context.strip() and p.context == p.context.lstrip()
        assert len(p.context) <= chunk_chars and "\x00" not in p.context and "\r\n" not in p.context
        p.context.encode("utf-8")  # valid text: no lone surrogates
    # nothing lost or reordered: the passages are the document after its title line, whitespace aside
    assert nonspace(text).endswith("".join(nonspace(p.context) for p in out))


@FUZZ
@given(text=st.one_of(st.text(max_size=600), documents), chunk_chars=st.integers(1, 200))
@example(text="a b", chunk_chars=1)  # was: a passage " " (whitespace only)
@example(text="aaaa bbbb", chunk_chars=4)  # was: " bbb" (a piece starting with the space after the cut)
def test_split_passages(text, chunk_chars):
    out = split_passages(text, "T", chunk_chars)
    for p in out:
        assert p.title == "T" and p.context.strip() and p.context == p.context.lstrip()
        assert len(p.context) <= chunk_chars
    assert "".join(nonspace(p.context) for p in out) == nonspace(text)


# ---- 4. --set overrides --------------------------------------------------------------------------------------

SECTIONS = {f.name: cls for f in dataclasses.fields(SealConfig)
            for cls in [typing.get_type_hints(SealConfig)[f.name]]}
FIELDS = [(s, f) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _default(f):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


DEFAULTS = {(s, f.name): _default(f) for s, f in FIELDS}


def _typed(f) -> st.SearchStrategy:
    """JSON-typed values for field ``f``, plus its default (so that constrained fields also succeed)."""
    kind = str(f.type)
    by_kind = {
        "int": st.one_of(st.integers(-10 ** 6, 10 ** 6), st.integers(-(10 ** 400), 10 ** 400)),
        "float": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10 ** 400), 10 ** 400),
                           st.floats(1e-6, 1.0)),
        "bool": st.booleans(),
        "str": st.text(max_size=20),
        "tuple[str, ...]": st.lists(st.text(max_size=8), max_size=4),
        "tuple[int, ...]": st.lists(st.integers(-3, 12), max_size=4),
        "tuple[float, ...]": st.lists(st.one_of(st.floats(allow_nan=True), st.floats(1e-5, 1e-2)), max_size=4),
        "tuple[float, float]": st.lists(st.floats(0, 1), min_size=1, max_size=3),
        "tuple[tuple[str, ...], ...]": st.lists(st.lists(st.sampled_from(["basic", "size", "x"]), max_size=2),
                                                max_size=3),
    }
    d = _default(f)
    return st.one_of(by_kind.get(kind, json_values), st.just(list(d) if isinstance(d, tuple) else d))


@st.composite
def overrides(draw) -> tuple[str, str, str]:
    """(section, key, raw value) of a real field, the value as JSON, as a bare string, or as any JSON."""
    section, f = draw(st.sampled_from(FIELDS))
    raw = draw(st.one_of(_typed(f).map(json.dumps), st.text(max_size=20), json_values.map(json.dumps),
                         st.sampled_from(("", "[", "NaN", "-Infinity", "1e999", "1" * 5000, "[" * 5000))))
    return section, f.name, raw


def _expected(raw: str):
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    return value


def _tuples(v):
    """JSON lists as the config's (nested) tuples."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list | tuple) else v


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@FUZZ
@given(items=st.lists(st.one_of(st.text(max_size=40),
                                st.builds("{}.{}={}".format, st.text(max_size=10), st.text(max_size=10),
                                          st.text(max_size=10)),
                                st.builds("{}.{}={}".format, st.sampled_from(list(SECTIONS)), st.text(max_size=10),
                                          st.text(max_size=10))), max_size=4))
def test_override_arbitrary_strings(items):
    try:
        cfg = SealConfig().override(items)
    except ConfigError as exc:  # (one line unless the item itself has a newline: the key is quoted as given)
        assert str(exc).strip()
        return
    assert isinstance(cfg, SealConfig)
    assert SealConfig.from_dict(cfg.to_dict()) == cfg


@FUZZ
@given(sets=st.lists(overrides(), min_size=1, max_size=3))
@example(sets=[("inner_loop", "lr", "1" + "0" * 400)])  # was: OverflowError (int too large for a float)
@example(sets=[("model", "threads", "1" * 5000)])  # was: ValueError (int over 4300 digits)
@example(sets=[("model", "name", "[" * 100_000)])  # was: RecursionError
@example(sets=[("inner_loop", "weight_decay", "NaN")])  # was: accepted, and then not equal to itself
@example(sets=[("self_edit", "max_sequences", "-5")])  # was: accepted (items[:-5] drops lines silently)
def test_override_fields_round_trip(fuzz_dir, sets):
    items = [f"{s}.{k}={raw}" for s, k, raw in sets]
    try:
        cfg = SealConfig().override(items)
    except ConfigError as exc:
        assert one_line(str(exc))
        return
    final = {(s, k): raw for s, k, raw in sets}  # the last override of a field wins
    for (s, k), raw in final.items():
        want, got = _expected(raw), getattr(getattr(cfg, s), k)
        want = _tuples(want) if isinstance(got, tuple) else float(want) if isinstance(got, float) else want
        assert _same(got, want) and type(got) is type(DEFAULTS[s, k])
        assert not isinstance(got, float) or math.isfinite(got)
    for (s, k), default in DEFAULTS.items():  # the others keep their defaults
        if (s, k) not in final:
            assert getattr(getattr(cfg, s), k) == default
    # round trips: dict, JSON file, and the same overrides again
    assert SealConfig.from_dict(cfg.to_dict()) == cfg
    path = fuzz_dir / "fuzz-config.json"
    path.write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    assert SealConfig.from_file(path) == cfg
    assert cfg.override(items) == cfg


def test_every_field_is_reachable():
    """The strategies cover each real section and field (they are derived from the dataclasses)."""
    assert {(s, k) for s, d in SealConfig().to_dict().items() for k in d} == set(DEFAULTS)
    assert {str(f.type) for _, f in FIELDS} <= {"int", "float", "bool", "str", "tuple[str, ...]", "tuple[int, ...]",
                                                "tuple[float, ...]", "tuple[float, float]",
                                                "tuple[tuple[str, ...], ...]"}  # all typed
