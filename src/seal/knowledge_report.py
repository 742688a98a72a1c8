"""How a knowledge evaluation reads: its Markdown table, paired differences as text, and the names of rows that
pooled several self-edits per passage (``eval.self_edits``). Used by ``seal eval knowledge`` and
``seal.results``::

    from seal.knowledge_report import markdown_table
    print(markdown_table(evaluate_knowledge(seal, passages, ["base", "passage", "rewrite"])))
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seal.config import SealConfig
    from seal.evaluate import KnowledgeResult

UNEDITED = ("base", "passage-in-prompt", "passage")
"""Rows that write no self-edit: ``eval.self_edits`` does not change them, so they keep their names."""
UNTRAINED = ("base", "passage-in-prompt")
"""Rows that train nothing: the inner loop's settings do not change them either."""
TRAINING_FIELDS = (("inner_loop", "epochs", "epochs"), ("inner_loop", "lr", "lr"), ("lora", "rank", "rank"),
                   ("lora", "alpha", "alpha"))
"""The settings of the update that, away from their defaults, name a row (``passage [epochs 5]``)."""


def training_tag(cfg: SealConfig | dict[str, Any] | None) -> str:
    """The update's settings that differ from the defaults, e.g. ``epochs 5, lr 0.0003``; "" at the defaults.
    ``cfg`` may also be a config as a run saved it (``SealConfig.to_dict``); "" for None or {} (unknown)."""
    from seal.config import SealConfig

    if not cfg:
        return ""
    values, default = default_values(SealConfig.from_dict(cfg) if isinstance(cfg, dict) else cfg), default_values()
    return ", ".join(f"{label} {v:g}" for label, v in values.items() if v != default[label])


def _tag_values(tag: str, defaults: dict[str, float]) -> dict[str, float]:
    """A training tag (``epochs 5, lr 0.0003``) as the values it stands for, the others at ``defaults``."""
    values = dict(defaults)
    for part in filter(None, (p.strip() for p in tag.split(","))):
        label, _, value = part.rpartition(" ")
        if label not in values:
            raise ValueError(f"unknown update setting {label!r} in {tag!r}")
        values[label] = float(value)
    return values


def default_values(cfg: SealConfig | None = None) -> dict[str, float]:
    """The update settings of ``cfg`` (default: the defaults) by their labels in a training tag."""
    from seal.config import SealConfig

    cfg = cfg or SealConfig()
    return {label: getattr(getattr(cfg, section), name) for section, name, label in TRAINING_FIELDS}


def rebase_name(name: str, old: dict[str, float], new: dict[str, float] | None = None) -> str:
    """A row's name made when the defaults were ``old``, as the defaults ``new`` (default: today's) name it: its
    ``[TAG]`` and a policy's ``rewarded at TAG`` say what differs from ``new``. So stored results keep telling
    their rows apart when a default changes (``passage`` at 10 epochs is ``passage [epochs 10]`` once 5 epochs are
    the default, and ``passage [epochs 5]`` becomes ``passage``)."""
    new = new or default_values()

    def rebase(tag: str) -> str:
        values = _tag_values(tag, old)
        return ", ".join(f"{label} {values[label]:g}" for label in new if values[label] != new[label])

    base, trained = name, name not in UNTRAINED
    if (m := re.fullmatch(r"(.*) \[([^\]]*)\]", name)):
        base, tag = m.group(1), m.group(2)
    else:
        tag = ""
    if (p := re.fullmatch(r"(SEAL round-\d+)(?: \((.*)\))?(.*)", base)):
        head, inner, tail = p.group(1), p.group(2) or "", p.group(3)
        parts, _, rewarded = inner.partition("rewarded at ")
        parts = [x.strip() for x in parts.split(",") if x.strip()]
        if (how := rebase(rewarded)):
            parts.append(f"rewarded at {how}")
        base = head + (f" ({', '.join(parts)})" if parts else "") + tail
    tag = rebase(tag) if trained else ""
    return f"{base} [{tag}]" if tag else base


def passage_row(methods) -> str | None:
    """The passage row among ``methods``: ``passage``, or the one run with other update settings
    (``passage [epochs 5]``)."""
    return "passage" if "passage" in methods else next((m for m in methods if m.startswith("passage [")), None)


def tag_rows(result: KnowledgeResult, self_edits: int, training: str = "") -> KnowledgeResult:
    """With ``self_edits`` > 1, each self-edit row renamed ``NAME ×N`` (a policy's own-format reference too); with
    ``training`` (:func:`training_tag`), each row that trains renamed ``NAME [TRAINING]``. So pooled tables never
    mix them with the rows of the default run of the same name; ``result`` is changed."""

    def tag(m: str) -> str:
        if m in UNTRAINED:
            return m
        name = m if m in UNEDITED or self_edits <= 1 else f"{m} ×{self_edits}"
        return f"{name} [{training}]" if training else name

    result.methods = {tag(m): st for m, st in result.methods.items()}
    result.policies = {tag(m): tag(f) for m, f in result.policies.items()}
    return result


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def diff_text(c: dict[str, Any]) -> str:
    """A paired difference (``compare``) in points with its interval: ``+3.6 [-1.2, +8.7]``."""
    return f"{_pts(c['diff'])} [{_pts(c['ci95'][0])}, {_pts(c['ci95'][1])}]"


def vs_text(vs: dict[str, dict[str, Any]]) -> str:
    """A row's comparisons (its ``vs``): the one to ``passage`` first, the others named; ``–`` for none."""
    return "; ".join(("" if ref == "passage" else f"− {ref} ") + diff_text(c)
                     for ref, c in sorted(vs.items(), key=lambda x: x[0] != "passage")) or "–"


def markdown_table(result: KnowledgeResult) -> str:
    """Accuracy with its interval, the paired difference to ``passage`` (and, for policies, to their own
    format's row), and each method's own cost."""
    lines = ["| method | accuracy [95 % CI] | questions | − passage [95 % CI] | s / self-edit (train+answer) | "
             "s writing | failed edits |", "|---|---:|---:|---:|---:|---:|---:|"]
    for m, d in result.as_dict()["methods"].items():
        lo, hi = d["ci95"]
        diff = vs_text(d["vs"])
        s = f"{d['s_per_edit']:.1f}" if d["edits"] else "–"
        w = f"{d['s_write_per_edit']:.1f}" if d["s_write_per_edit"] else "–"
        lines.append(f"| {m} | {100 * d['accuracy']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] | {d['n_questions']} | "
                     f"{diff} | {s} | {w} | {d['failed_edits']} |")
    return "\n".join(lines)


E10, R10 = " [epochs 10]", "rewarded at epochs 10"  # rows of the 10-epoch inner loop (the default until 2026-12)
SEAL1_10, SEAL2_10 = f"SEAL round-1 (rewrite, {R10})", f"SEAL round-2 (rewrite, {R10})"
PAIRS = (  # at the defaults (the inner loop at 5 epochs)
         ("rewrite", "passage"), ("implications", "passage"), ("self-qa", "passage"), ("rewrite", "implications"),
         ("SEAL round-1 (rewrite)", "rewrite"), ("SEAL round-1 (rewrite)", "passage"),
         ("SEAL round-2 (rewrite)", "rewrite"), ("SEAL round-2 (rewrite)", "passage"),
         ("SEAL round-2 (rewrite)", "SEAL round-1 (rewrite)"), ("SEAL round-2 (rewrite)", "implications"),
         # the reward control: round 1 with the paper's accuracy reward
         ("SEAL round-1 (rewrite, accuracy)", "SEAL round-1 (rewrite)"), ("SEAL round-1 (rewrite, accuracy)", "rewrite"),
         ("SEAL round-1 (rewrite, accuracy)", "passage"),
         # the round-1 policy whose rewards came from the 10-epoch inner loop, evaluated at 5
         (SEAL1_10, "rewrite"), (SEAL1_10, "passage"), ("SEAL round-1 (rewrite)", SEAL1_10),
         # 5 epochs against 10
         ("passage", "passage" + E10), ("rewrite", "rewrite" + E10), (SEAL1_10, SEAL1_10 + E10),
         ("SEAL round-1 (rewrite)", SEAL1_10 + E10), ("SEAL round-2 (rewrite)", SEAL2_10 + E10),
         # at 10 epochs: the formats, the two ReST-EM formats, rounds, the reward control, three self-edits
         ("rewrite" + E10, "implications" + E10), ("self-qa" + E10, "implications" + E10),
         ("rewrite" + E10, "passage" + E10), ("self-qa" + E10, "passage" + E10),
         (f"SEAL round-1 ({R10}){E10}", "implications" + E10),
         (f"SEAL round-2 ({R10}){E10}", f"SEAL round-1 ({R10}){E10}"),
         (f"SEAL round-2 ({R10}){E10}", "rewrite" + E10),
         (SEAL2_10 + E10, "rewrite" + E10), (SEAL2_10 + E10, "passage" + E10),
         (SEAL2_10 + E10, "implications" + E10), (SEAL2_10 + E10, f"SEAL round-2 ({R10}){E10}"),
         (SEAL1_10 + E10, "rewrite" + E10), (SEAL1_10 + E10, "passage" + E10),
         (SEAL2_10 + E10, SEAL1_10 + E10),
         (f"SEAL round-1 (rewrite, accuracy, {R10}){E10}", SEAL1_10 + E10),
         (f"SEAL round-1 (rewrite, accuracy, {R10}){E10}", "rewrite" + E10),
         (f"SEAL round-1 (rewrite, accuracy, {R10}){E10}", "passage" + E10),
         ("rewrite ×3" + E10, "rewrite" + E10), ("rewrite ×3" + E10, "passage" + E10),
         (f"SEAL round-1 (rewrite, {R10}) ×3{E10}", "rewrite ×3" + E10),
         (f"SEAL round-1 (rewrite, {R10}) ×3{E10}", "passage" + E10),
         (f"SEAL round-1 (rewrite, {R10}) ×3{E10}", SEAL1_10 + E10))
"""The README's paired differences across the pooled knowledge files (``seal.results``; the same passages and
seeds in each): a pair whose rows are not both there is left out."""
