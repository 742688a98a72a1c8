"""The sweep behind the knowledge defaults: one row per lever (self-edit format, ReST-EM format, rounds, reward,
self-edits per passage, inner-loop epochs, the rewards' inner loop), what was measured, the paired differences
that decided it — computed from ``results/knowledge/*.json`` like every other table, never typed in — and the
default chosen. Rendered into the README block ``results:sweep`` by ``python -m seal.results readme``::

    python -m seal.results sweep
"""

from __future__ import annotations

from pathlib import Path

from seal.knowledge_report import E10, R10, SEAL1_10, SEAL2_10, diff_text

_ACC1 = f"SEAL round-1 (rewrite, accuracy, {R10}){E10}"  # the reward control
_IMP1, _IMP2 = f"SEAL round-1 ({R10}){E10}", f"SEAL round-2 ({R10}){E10}"  # ReST-EM on implications
_R1, _R2 = "SEAL round-1 (rewrite)", "SEAL round-2 (rewrite)"  # the default run's policies

# (lever, what was measured, [(label, a, b): a − b], the default chosen and why)
SWEEP: tuple[tuple[str, str, tuple[tuple[str, str, str], ...], str], ...] = (
    ("self-edit format, untrained", "implications, rewrite, self-qa (3 seeds each, at 5 and at 10 epochs)",
     (("rewrite − implications", "rewrite", "implications"),
      ("self-qa − implications", "self-qa", "implications"),
      ("implications − passage", "implications", "passage"), ("self-qa − passage", "self-qa", "passage"),
      ("at 10 epochs: rewrite − implications", "rewrite" + E10, "implications" + E10),
      ("self-qa − implications", "self-qa" + E10, "implications" + E10)),
     "`rewrite`"),
    ("format ReST-EM trains", "implications, rewrite (same contexts, reward, sizes; at 10 epochs; 3 seeds)",
     (("SEAL round 2: rewrite − implications", SEAL2_10 + E10, _IMP2),),
     "`rewrite`"),
    ("ReST-EM rounds", "1, 2",
     (("rewrite at the defaults: round 2 − round 1", _R2, _R1),
      ("rewrite at 10 epochs", SEAL2_10 + E10, SEAL1_10 + E10), ("implications at 10 epochs", _IMP2, _IMP1)),
     "2: ahead of round 1 at the defaults, within noise"),
    ("reward", "accuracy+likelihood, accuracy (round 1 on rewrite at 10 epochs: the same contexts and sampled "
     "self-edits; 2 seeds of evaluation for accuracy)",
     (("accuracy − accuracy+likelihood", _ACC1, SEAL1_10 + E10),
      ("accuracy reward − rewrite", _ACC1, "rewrite" + E10)),
     "`auto` = accuracy+likelihood: ahead, within noise"),
    ("samples per context", "4 (the earlier accuracy run used 3)", (), "4 (not swept)"),
    ("self-edits per passage at evaluation (`eval.self_edits`)", "1, 3 (at 10 epochs, 2 seeds)",
     (("rewrite ×3 − rewrite", "rewrite ×3" + E10, "rewrite" + E10),
      ("rewrite ×3 − passage", "rewrite ×3" + E10, "passage" + E10),
      ("SEAL round 1 ×3 − SEAL round 1", f"SEAL round-1 (rewrite, {R10}) ×3{E10}", SEAL1_10 + E10)),
     "1: three are within noise of one, at 2–3× the time per passage"),
    ("inner-loop epochs (`inner_loop.epochs`)", "10, 5 (3 seeds)",
     (("5 − 10: passage", "passage", "passage" + E10), ("rewrite", "rewrite", "rewrite" + E10),
      ("SEAL round 2 at the defaults − at 10 epochs", _R2, SEAL2_10 + E10),
      ("at 5: rewrite − passage", "rewrite", "passage"),
      ("at 10: rewrite − passage", "rewrite" + E10, "passage" + E10)),
     "**5**: the order holds there; 10 answers more in the passage and rewrite rows, but there the untrained "
     "rewrite only ties the passage"),
    ("rewards' inner loop (ReST-EM at 5 or 10 epochs, evaluated at 5)", "10, 5 (round 1 on rewrite; 3 seeds)",
     (("rewarded at 5 − rewarded at 10", _R1, SEAL1_10), ("rewarded at 5 − rewrite", _R1, "rewrite"),
      ("rewarded at 10 − rewrite", SEAL1_10, "rewrite")),
     "the inner loop's own: 5"),
)


def sweep_table(root: Path) -> str:
    """The Markdown table of :data:`SWEEP`, each difference paired over the (passage, seed) cells its two rows
    share on the main evaluation set (``results/knowledge/single.json``'s passages), as the pairs table finds
    them; a pair with no shared cells yet says "not measured yet"."""
    from seal.results import pair_diff, pairing  # seal.results imports this module

    methods, best = pairing(root)
    lines = ["| lever | measured | paired differences, points [95 % CI] (cells: passage × seed) | default chosen |",
             "|---|---|---|---|"]
    for lever, measured, pairs, chosen in SWEEP:
        parts = []
        for label, a, b in pairs:
            found = pair_diff(methods, best, a, b)
            parts.append(f"{label} {diff_text(found[0])} ({found[0]['cells']})" if found
                         else f"{label}: not measured yet")
        lines.append(f"| {lever} | {measured} | {'; '.join(parts) or 'not swept'} | {chosen} |")
    return "\n".join(lines)
