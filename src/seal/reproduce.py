"""Reproductions: a result regenerated from its recipe (on another machine, or after the run it needed was lost),
compared with the file it reproduces, so the README can say how far a rerun lands from the published figure.

Two kinds of pair are compared:

* a **ReST-EM summary** (``recipes/rest_em.sh``) and its rerun with the same command and seeds: each round's mean
  reward in both with 95 % intervals over self-edits, and the rerun's minus the original's over the same slots
  with a 95 % paired interval and the largest difference of one slot. A summary lists the usable rewards
  context by context, so lists of equal length are paired by position: whole contexts are resampled when no
  self-edit failed, single slots when one did (then the largest difference says whether the lists line up:
  shifted, it would be as large as the rewards themselves);
* a **knowledge evaluation** (``seal eval knowledge --json``, with its ``--log`` JSONL beside it) and its rerun on
  the same passages and seeds, or on some of them (a quick check reruns the first few): each row's accuracy in
  both over the (passage, seed) cells they share, the paired difference over those cells, and the fraction of
  answers (and of self-edits) that came out word for word the same.

Both runs' machines and commits go into the output's manifest. A rerun on a CPU with other vector instructions
(AVX2 against AVX-512) sums floats in another order, so greedy decoding can pick another token where two are
near-tied; identical answers are then not expected, and the differences with their intervals say whether what
moved is within the noise of the measurement::

    python -m seal.reproduce --out results/reproduce/second-s0.json \\
        --rest-em results/rest_em/rewrite-accuracy+likelihood.json results/rest_em/rewrite-accuracy+likelihood-rerun.json \\
        --knowledge results/knowledge/second-s0.json results/knowledge/second-rerun-s0.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from seal.io import atomic_write_json, read_jsonl
from seal.stats import bootstrap_ci, paired_ci


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None


def _who(d: dict[str, Any], path: Path) -> dict[str, Any]:
    m = d.get("manifest") or {}
    return {"file": str(path), "commit": m.get("commit"), "machine": m.get("machine"), "wall_s": m.get("wall_s"),
            "created_at": m.get("created_at"), "policy_sha256": m.get("policy_sha256")}


def compare_rest_em(original: Path, rerun: Path) -> dict[str, Any]:
    """Round by round: both mean rewards, and rerun − original over the same (context, sample) slots."""
    a, b = _load(original), _load(rerun)
    if "rounds" not in a or "rounds" not in b:
        raise ValueError(f"{original} and {rerun} must both be ReST-EM summaries (recipes/rest_em.sh)")
    rb = {r["round"]: r for r in b["rounds"]}
    rounds = []
    for ra in a["rounds"]:
        r2 = rb.get(ra["round"])
        if r2 is None:
            continue
        x, y = ra.get("rewards") or [], r2.get("rewards") or []
        row = {"round": ra["round"], "original": ra["mean_reward"], "rerun": r2["mean_reward"],
               "original_ci95": list(bootstrap_ci(x)) if x else None, "rerun_ci95": list(bootstrap_ci(y)) if y else None,
               "kept": [ra.get("selected"), r2.get("selected")], "wall_s": [ra.get("wall_s"), r2.get("wall_s")]}
        if x and len(x) == len(y):
            slots = ra.get("contexts", 0) * ra.get("samples", 0) * ra.get("repeats", 1)
            clusters = [i * ra["contexts"] // slots for i in range(slots)] if len(x) == slots else None
            row["diff"] = sum(q - p for p, q in zip(x, y, strict=True)) / len(x)
            row["ci95"] = list(paired_ci(y, x, clusters=clusters))
            row["max_abs_diff"] = max(abs(q - p) for p, q in zip(x, y, strict=True))
        rounds.append(row)
    return {"original": _who(a, original), "rerun": _who(b, rerun), "rounds": rounds}


def _records(jsonl: Path) -> dict[tuple, dict[str, Any]]:
    """The ``--log`` records keyed by (seed, title, n-th passage of that title): the JSONL names no passage id,
    and SQuAD has several passages per title, in the order they were evaluated."""
    seen: Counter = Counter()
    out = {}
    for r in read_jsonl(jsonl):
        k = (r.get("seed"), r.get("title"))
        out[(*k, seen[k])] = r
        seen[k] += 1
    return out


def compare_knowledge(original: Path, rerun: Path) -> dict[str, Any]:
    """Per row of both files: accuracies, rerun − original over their shared cells, identical answers."""
    from seal.evaluate import compare, result_from_dict

    a, b = _load(original), _load(rerun)
    if "methods" not in a or "methods" not in b:
        raise ValueError(f"{original} and {rerun} must both be knowledge evaluations (seal eval knowledge --json)")
    shared = set(a.get("passages") or []) & set(b.get("passages") or [])
    if not shared:
        raise ValueError(f"{original} and {rerun} have no passage in common: not a reproduction")
    ra, rb = result_from_dict(a), result_from_dict(b)
    logs = [p.with_suffix(".jsonl") for p in (Path(original), Path(rerun))]
    recs = [_records(p) for p in logs] if all(p.is_file() for p in logs) else None
    rows = []
    for m in (m for m in a["methods"] if m in b["methods"]):
        c = compare(rb.methods[m], ra.methods[m])
        keys = ({(x["passage"], x["seed"]) for x in ra.methods[m].cells}
                & {(x["passage"], x["seed"]) for x in rb.methods[m].cells})
        (acc_a, n_a), (acc_b, n_b) = (_accuracy(r.methods[m].cells, keys) for r in (ra, rb))
        row = {"method": m, "original": acc_a, "rerun": acc_b, "n_questions": [n_a, n_b],
               "diff": None if c is None else c["diff"], "ci95": None if c is None else c["ci95"],
               "cells": 0 if c is None else c["cells"]}
        if recs is not None:
            same = total = edits_same = edits = 0
            for k, r1 in recs[0].items():
                x, y = r1.get(m), recs[1].get(k, {}).get(m)
                if not x or not y or "answers" not in x or "answers" not in y:  # the open book logs no answers
                    continue
                total += min(len(x["answers"]), len(y["answers"]))
                same += sum(p == q for p, q in zip(x["answers"], y["answers"], strict=False))
                if x.get("self_edit") is not None:
                    edits += 1
                    edits_same += x.get("self_edit") == y.get("self_edit")
            row["same_answers"] = same / total if total else None
            row["same_self_edits"] = edits_same / edits if edits else None
        rows.append(row)
    return {"original": _who(a, original), "rerun": _who(b, rerun), "passages": len(shared),
            "passages_in_files": [len(a.get("passages") or []), len(b.get("passages") or [])],
            "seeds": sorted(set(a.get("seeds") or []) & set(b.get("seeds") or [])), "methods": rows}


def _accuracy(cells: list[dict[str, Any]], keys: set) -> tuple[float | None, int]:
    """Accuracy over the (passage, seed) cells in ``keys`` (those both files have), and its questions."""
    picked = [c for c in cells if (c["passage"], c["seed"]) in keys]
    n = sum(c["n"] for c in picked)
    return (sum(c["correct"] for c in picked) / n if n else None), n


def reproduce(out: Path, command: list[str], rest_em: list[Path] | None = None,
              knowledge: list[Path] | None = None) -> dict[str, Any]:
    from seal.manifest import manifest

    d: dict[str, Any] = {}
    if rest_em:
        d["rest_em"] = compare_rest_em(*rest_em)
    if knowledge:
        d["knowledge"] = compare_knowledge(*knowledge)
    if not d:
        raise ValueError("nothing to compare: give --rest-em and/or --knowledge ORIGINAL RERUN")
    d["manifest"] = manifest(command=command, data=[str(p) for p in (rest_em or []) + (knowledge or [])])
    atomic_write_json(out, d)
    return d


def _machine(who: dict[str, Any]) -> str:
    m = who.get("machine") or {}
    return f"{m.get('cpu', '?')}, torch {m.get('torch', '?')}"


def reproduce_table(root: Path) -> str:
    """The README's table of every comparison under ``results/reproduce/``: original, rerun, rerun − original."""
    from seal.knowledge_report import diff_text
    from seal.results import method_order

    rows = []
    for path in sorted((root / "reproduce").glob("*.json")):
        try:
            d = _load(path)
        except ValueError:
            continue
        if r := d.get("rest_em"):
            for x in r["rounds"]:
                diff = (f"{x['diff']:+.5f} {_interval(x['ci95'], 5)}, largest slot {x['max_abs_diff']:.1e}"
                        if "diff" in x else "– (unpaired: the runs lost different numbers of self-edits)")
                rows.append(f"| {path.stem} | ReST-EM round {x['round']}: mean reward | {x['original']:+.3f} "
                            f"{_interval(x.get('original_ci95'), 3)} | {x['rerun']:+.3f} "
                            f"{_interval(x.get('rerun_ci95'), 3)} | {diff} | – |")
            who = (r["original"], r["rerun"])
        if k := d.get("knowledge"):
            by_name = {x["method"]: x for x in k["methods"]}
            for x in (by_name[m] for m in method_order(by_name)):
                diff = "–" if x["diff"] is None else f"{diff_text(x)} points"
                same = "–" if x.get("same_answers") is None else f"{100 * x['same_answers']:.0f} %"
                if x.get("same_self_edits") is not None:
                    same += f" (self-edits {100 * x['same_self_edits']:.0f} %)"
                rows.append(f"| {path.stem} | {x['method']}: accuracy ({k['passages']} passages, "
                            f"{x['n_questions'][0]} questions) | {_pct(x['original'])} | {_pct(x['rerun'])} | "
                            f"{diff} | {same} |")
            who = (k["original"], k["rerun"])
        if d.get("rest_em") or d.get("knowledge"):
            rows.append(f"| {path.stem} | machines | {_machine(who[0])} | {_machine(who[1])} | | |")
    if not rows:
        return "_No reproductions yet: see `python -m seal.reproduce`._"
    return "\n".join(["| comparison | figure | original | rerun | rerun − original [95 % CI] | same answers |",
                      "|---|---|---:|---:|---:|---:|", *rows])


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _interval(v: list | None, digits: int) -> str:
    return "" if not v else f"[{v[0]:+.{digits}f}, {v[1]:+.{digits}f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seal.reproduce", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="the comparison JSON to write")
    ap.add_argument("--rest-em", nargs=2, type=Path, metavar=("ORIGINAL", "RERUN"))
    ap.add_argument("--knowledge", nargs=2, type=Path, metavar=("ORIGINAL", "RERUN"))
    args = ap.parse_args(argv)
    try:
        reproduce(args.out, ["python", "-m", "seal.reproduce", *(argv if argv is not None else sys.argv[1:])],
                  args.rest_em, args.knowledge)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
