"""The README's result tables, generated from the JSON files under ``results/`` (so prose and data agree).

Each table has a name; the README holds it between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``.
``python -m seal.results readme`` rewrites every such block from the files; ``--check`` only compares (exit
1 and the names that differ), which is what ``tests/test_results_tables.py`` runs. ``python -m seal.results
forgetting`` also writes ``results/forgetting/summary.{json,md}``. A table whose files are missing says so in
its block instead of inventing figures::

    python -m seal.results readme            # regenerate the README's tables
    python -m seal.results readme --check    # do they match results/?
    python -m seal.results merge-knowledge --out results/knowledge/single.json single-s0.json single-s1.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from seal.bench_report import bench_table
from seal.io import atomic_write_json, atomic_write_text
from seal.knowledge_report import PAIRS, training_tag
from seal.recipes_report import recipes_table
from seal.reproduce import reproduce_table
from seal.sweep_report import sweep_table

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
README = ROOT / "README.md"
FORGETTING_ORDER = ("merge", "replay", "accumulate", "routed")


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _ci(v: list | None, pct: bool = False) -> str:
    if not v:
        return "–"
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.3f}")
    return f"[{f(v[0])}, {f(v[1])}]"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "–" if x is None else format(x, fmt)


# ----------------------------------------------------------------------------- forgetting
def forgetting_rows(root: Path = RESULTS) -> list[dict]:
    rows = []
    for path in sorted((root / "forgetting").glob("n*-*.json")):
        m = re.fullmatch(r"n(\d+)-([a-z-]+)", path.stem)
        d = _load(path)
        if not m or d is None or "summary" not in d:
            continue
        sm = d["summary"]
        rows.append({"n": int(m.group(1)), "strategy": m.group(2), "file": str(path.relative_to(root.parent)),
                     "questions": sum(p["n_questions"] for p in d["passages"]), "wall_s": d.get("wall_s"),
                     "has_manifest": "manifest" in d, **sm})
    order = {s: i for i, s in enumerate(FORGETTING_ORDER)}
    return sorted(rows, key=lambda r: (r["n"], order.get(r["strategy"], 99), r["strategy"]))


def forgetting_table(root: Path = RESULTS) -> str:
    rows = forgetting_rows(root)
    if not rows:
        return "_No forgetting results yet: run `bash recipes/forgetting.sh`._"
    acc = {(r["n"], r["strategy"]): r for r in rows}
    out = ["| N | strategy | right after learning | after all N | forgetting [95 % CI] | routed to own passage | "
           "s / question (batch) | s, one question alone | wall |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ref = acc.get((r["n"], "accumulate"))
        lat = _num(r.get("latency_s"), ".2f")
        if ref and r["strategy"] != "accumulate" and r.get("latency_s") and ref.get("latency_s"):
            lat += f" ({r['latency_s'] / ref['latency_s']:.2f}×)"
        routed = (f"{_pct(r['routing_accuracy_final'])} of {r['questions']} ({_pct(r['routing_accuracy'])} of "
                  f"{r['routing_questions']} over all steps)" if "routing_accuracy" in r else "–")
        out.append(f"| {r['n']} | {r['strategy']} | {_num(r['diagonal_mean'])} {_ci(r.get('diagonal_ci95'))} | "
                   f"{_num(r['final_mean'])} {_ci(r.get('final_ci95'))} | {_num(r['forgetting'])} "
                   f"{_ci(r.get('forgetting_ci95'))} | {routed} | {_num(r.get('answer_s_per_question'), '.3f')} | "
                   f"{lat} | {_num(r['wall_s'], '.0f')} s |")
    ns = sorted({r["n"] for r in rows})
    qs = ", ".join(f"{max(r['questions'] for r in rows if r['n'] == n)} questions at N = {n}" for n in ns)
    base = ", ".join(f"{_num(next(r['base_mean'] for r in rows if r['n'] == n))} at N = {n}" for n in ns)
    out += ["", f"Intervals: 95 % bootstrap over passages ({qs}); unedited base accuracy {base}. Latency in "
            "parentheses: relative to `accumulate` at the same N."]
    return "\n".join(out)


def write_forgetting_summary(root: Path = RESULTS) -> None:
    import time

    from seal.manifest import manifest

    t0 = time.perf_counter()
    rows = forgetting_rows(root)
    atomic_write_json(root / "forgetting" / "summary.json", {"rows": rows, "manifest": manifest(
        command="python -m seal.results forgetting", config=None, seeds=[],
        data=[r["file"] for r in rows], wall_s=time.perf_counter() - t0,
        note="a summary of the n*-*.json files beside it, each with its own manifest")})
    atomic_write_text(root / "forgetting" / "summary.md", forgetting_table(root) + "\n")


# ----------------------------------------------------------------------------- codebase, routing
def codebase_table(root: Path = RESULTS) -> str:
    d = _load(root / "codebase" / "eval.json")
    if d is None:
        return "_No codebase results yet: run `bash recipes/codebase.sh`._"
    names = {"base": "base", "passage": "source as passage", "notes": "notes (base policy)"}
    out = [f"| method | mean score ({len(d['context_ids'])} modules, {d['n_items']} questions) | 95 % bootstrap CI "
           "over modules | s / self-edit |", "|---|---:|---:|---:|"]
    order = ["base", "passage", "notes"] + sorted(k for k in d["methods"] if k.startswith("SEAL"))
    for k in order:
        m = d["methods"].get(k)
        if m is None:
            continue
        cost = "–" if k == "base" else f"{m['s_per_edit']:.1f}" + (
            f" ({m['s_write_per_edit']:.1f} writing)" if m.get('s_write_per_edit', 0) >= 0.05 else "")
        out.append(f"| {names.get(k, k.replace('SEAL round-', 'SEAL round '))} | {_pct(m['score'])} | "
                   f"{_ci(m['ci95'], pct=True)} | {cost} |")
    return "\n".join(out)


def routing_table(root: Path = RESULTS) -> str:
    d = _load(root / "routing" / "threshold.json")
    if d is None:
        return "_No routing results yet: run `python recipes/routing_threshold.py`._"
    out = ["| threshold | N = 8: own passage | N = 8: off-routed | N = 32: own passage | N = 32: off-routed |",
           "|---:|---:|---:|---:|---:|"]
    by = {(r["passages"], r["threshold"]): r for r in d["rows"]}
    for th in sorted({r["threshold"] for r in d["rows"]}):
        cells = []
        for n in (8, 32):
            r = by.get((n, th))
            cells += ["–", "–"] if r is None else [f"{_pct(r['routing_accuracy'])} of {r['questions']}",
                                                   f"{_pct(r['off_routed'])} of {r['off_questions']}"]
        out.append(f"| {th:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _label(method: str) -> str:
    """A knowledge method's name in the tables: the two rows without an update say which book they are."""
    return {"base": "base (closed book)", "passage-in-prompt": "passage in prompt (open book)"}.get(method, method)


def method_order(methods) -> list[str]:
    """Knowledge methods in reading order: the rows of the default update first, then those of each other update
    (``passage [epochs 10]``, ...); within each, no update, open book, passage, the formats, then the rest (SEAL)."""
    from seal.config import KNOWLEDGE_FORMATS

    order = ("base", "passage-in-prompt", *KNOWLEDGE_FORMATS)

    def key(m: str) -> tuple:
        name, _, tag = re.fullmatch(r"(.*?)( \[([^\]]*)\])?", m).group(1, 2, 3)
        return (tag or "", order.index(name) if name in order else len(order), name)

    return sorted(methods, key=key)


def knowledge_plot(d: dict, path: Path, mode: str = "single") -> None:
    """The bar chart of a knowledge evaluation JSON (``seal eval knowledge --plot``, ``merge-knowledge --plot``):
    each method's accuracy with its 95 % interval, in reading order."""
    from seal.report import accuracy_plot

    names = method_order(d["methods"])
    accuracy_plot({m: d["methods"][m]["accuracy"] for m in names}, path,
                  title=f"knowledge, {mode}, {len(d['passages'])} passages x {len(d['seeds'])} seeds",
                  intervals={m: d["methods"][m]["ci95"] for m in names})


def knowledge_table(root: Path = RESULTS, name: str = "single") -> str:
    """The single-passage (or ``cpt-n*``) knowledge table from ``results/knowledge/NAME.json``."""
    from seal.knowledge_report import vs_text

    d = _load(root / "knowledge" / f"{name}.json")
    if d is None or "methods" not in d:
        return "_No knowledge results yet: run `bash recipes/knowledge.sh`._"
    names = method_order(d["methods"])
    out = ["| method | accuracy [95 % CI] | − passage, points [95 % CI] | s / self-edit (train + answer) | "
           "s writing | tokens trained / edit |", "|---|---:|---:|---:|---:|---:|"]
    for m in names:
        v = d["methods"][m]
        diff = vs_text(v.get("vs", {}))
        cost = f"{v['s_per_edit']:.1f}" if v["edits"] else "–"
        write = f"{v['s_write_per_edit']:.1f}" if v.get("s_write_per_edit", 0) >= 0.05 else "–"
        tokens = f"{v['train_tokens_per_edit']:.0f}" if v["edits"] else "–"
        fails = f" ({v['failed_edits']} unusable)" if v.get("failed_edits") else ""
        out.append(f"| {_label(m)}{fails} | {_pct(v['accuracy'])} {_ci(v['ci95'], pct=True)} | {diff} | {cost} | "
                   f"{write} | {tokens} |")
    any_m = next(iter(d["methods"].values()))
    out += ["", f"{any_m['n_questions']} questions per method: {len(d['passages'])} passages × {len(d['seeds'])} "
            f"seed(s) ({', '.join(map(str, d['seeds']))}); intervals resample passages (with all their seeds); "
            f"{_num(d.get('wall_s'), '.0f')} s in all."]
    return "\n".join(out)


def rest_em_table(root: Path = RESULTS) -> str:
    """One row per round of each ReST-EM run summarised under ``results/rest_em/`` (``recipes/rest_em.sh``)."""
    rows = []
    for path in sorted((root / "rest_em").glob("*.json")):
        d = _load(path)
        if d is None or "rounds" not in d:
            continue
        run_cfg = (d.get("manifest") or {}).get("config") or {}
        reward = run_cfg.get("reward") or run_cfg.get("seal", {}).get("rest_em", {}).get("reward", "accuracy")
        # the inner-loop settings its rewards were measured with, away from the defaults (e.g. epochs 5)
        update = training_tag(run_cfg.get("seal")) or "default"
        for r in d["rounds"]:
            rows.append(f"| {path.stem} | {run_cfg.get('format', 'implications')} | {reward} | {update} | "
                        f"{r['round']} | {r['contexts']} × "
                        f"{r['samples']} | {r['mean_reward']:+.3f} (std {r['std_reward']:.3f}) | "
                        f"{100 * r['positive_fraction']:.0f} % | {r['selected']} | {r['wall_s']:.0f} s |")
    if not rows:
        return "_No ReST-EM runs yet: run `bash recipes/rest_em.sh`._"
    return "\n".join(["| run | self-edit format | reward | reward's update | round | contexts × samples | mean reward "
                      "| positive | kept | wall |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|", *rows])


def _pooled_methods(root: Path, main_set: str = "single") -> tuple[dict[str, list], dict[str, str]]:
    """Every single-passage method of the pooled knowledge files (``results/knowledge/*.json`` on the passages
    of ``MAIN_SET.json``, but the per-seed parts and CPT): method -> [(MethodStats, file stem)], and each policy
    row's self-edit format. Files on other passages (a second evaluation set) have tables of their own."""
    from seal.evaluate import result_from_dict

    methods: dict[str, list] = {}
    formats: dict[str, str] = {}
    main = set((_load(root / "knowledge" / f"{main_set}.json") or {}).get("passages") or [])
    for path in sorted((root / "knowledge").glob("*.json")):
        d = _load(path)
        if d is None or "methods" not in d or re.search(r"-s\d+$", path.stem) or path.stem.startswith("cpt"):
            continue
        if main and set(d.get("passages") or []) != main:
            continue
        res = result_from_dict(d)
        formats.update(res.policies)
        for m, st in res.methods.items():
            methods.setdefault(m, []).append((st, path.stem))
    return methods, formats


def _best_rows(root: Path, main_set: str) -> tuple[dict[str, tuple], dict[str, str]]:
    """Per method of the pooled files on ``MAIN_SET``'s passages, (stats, file stem) from the file with the most
    (passage, seed) cells (of equals, ``MAIN_SET``, then name order); and each policy row's format."""
    methods, formats = _pooled_methods(root, main_set)
    return _best_of(methods, main_set), formats


def _best_of(methods: dict[str, list], main_set: str) -> dict[str, tuple]:
    # the lists are in file-name order and max keeps the first of equals
    return {m: max(v, key=lambda x: (len(x[0].cells), x[1] == main_set)) for m, v in methods.items()}


def pairing(root: Path) -> tuple[dict[str, list], dict[str, tuple]]:
    """:func:`pair_diff`'s ``methods`` and ``best``, read once from the main set's pooled files."""
    methods, _ = _pooled_methods(root)
    return methods, _best_of(methods, "single")


def _same_update(ref: str, method: str, rows) -> str:
    """``ref`` run with ``method``'s update settings (``passage [epochs 5]`` for ``rewrite [epochs 5]``) when
    ``rows`` has it and it is not ``method`` itself, else ``ref`` (``passage [epochs 5]`` is compared with the
    default run's passage)."""
    m = re.search(r" \[[^\]]+\]$", method)
    return ref + m.group(0) if m and ref + m.group(0) in rows and ref + m.group(0) != method else ref


def knowledge_all_table(root: Path = RESULTS, main_set: str = "single", *more_sets: str) -> str:
    """One row per knowledge method over all pooled files on the passages of ``MAIN_SET.json`` (see
    :func:`_best_rows`), with its paired difference to ``passage`` and, for a SEAL row, to the untrained model's
    row of its format, over the cells the two share. ``base``, ``passage`` and open book sample nothing, so their
    cells are the same in every file (same passages, seeds, adapters). With ``more_sets`` (other evaluation sets,
    on other passages), the methods every set has, their cells pooled over the sets."""
    from seal.evaluate import MethodStats, compare
    from seal.knowledge_report import diff_text

    sets = [_best_rows(root, name) for name in (main_set, *more_sets)]
    if not all(b for b, _ in sets):
        return "_No knowledge results yet: run `bash recipes/knowledge.sh`._"
    formats = {k: v for _, f in sets for k, v in f.items()}
    best = {m: (MethodStats(cells=[c for b, _ in sets for c in b[m][0].cells]), " + ".join(b[m][1] for b, _ in sets))
            for m in sets[0][0] if all(m in b for b, _ in sets)}
    if any(len({(c["passage"], c["seed"]) for c in st.cells}) != len(st.cells) for st, _ in best.values()):
        raise ValueError(f"the evaluation sets {(main_set, *more_sets)} share passages: they cannot be pooled")
    out = ["| method | accuracy [95 % CI] | questions | seeds | − passage, points [95 % CI] | − its untrained "
           "format, points [95 % CI] | file |", "|---|---:|---:|---:|---:|---:|---|"]
    for m in method_order(best):
        st, stem = best[m]
        d = st.as_dict()
        ref = _same_update("passage", m, best)
        vs_p = compare(st, best[ref][0]) if ref in best and m != ref else None
        own = formats.get(m)
        vs_f = compare(st, best[own][0]) if own in best else None
        label = _label(m)
        out.append(f"| {label} | {_pct(d['accuracy'])} {_ci(d['ci95'], pct=True)} | {d['n_questions']} | "
                   f"{len(d['seeds'])} | {diff_text(vs_p) if vs_p else '–'} | "
                   f"{f'− {own} ' + diff_text(vs_f) if vs_f else '–'} | {stem} |")
    return "\n".join(out)


def pair_diff(methods: dict[str, list], best: dict[str, tuple], a: str, b: str) -> tuple[dict, str, str] | None:
    """``a`` − ``b`` paired over the cells they share (``compare``), with the files each was taken from: from the
    pair of files that share the most cells; of equals, one file's own pair (its table's figure), then the
    rows' files in the pooled table (``best``), then the first in name order. None when they share no cell.
    ``methods`` and ``best`` as :func:`pairing` gives them."""
    from seal.evaluate import compare

    found = [(c, fa, fb) for sa, fa in methods.get(a, []) for sb, fb in methods.get(b, [])
             if (c := compare(sa, sb)) is not None]
    if not found:
        return None
    return max(found, key=lambda x: (x[0]["cells"], x[1] == x[2], (x[1], x[2]) == (best[a][1], best[b][1])))


def knowledge_pairs_table(root: Path = RESULTS) -> str:
    """Paired differences between methods that were run in different pooled files (``results/knowledge/*.json``
    but the per-seed parts), over the (passage, seed) cells they share. A method run in several files is taken
    from the pair of files that share the most cells (e.g. the file with the most seeds); of equals, from one
    file when both rows are in it, then from the files the pooled table takes each row from."""
    from seal.knowledge_report import diff_text

    methods, best = pairing(root)
    rows = []
    for a, b in PAIRS:
        if (found := pair_diff(methods, best, a, b)) is not None:
            c, fa, fb = found
            rows.append(f"| {a} − {b} | {diff_text(c)} | {c['cells']} | {fa}, {fb} |")
    if not rows:
        return "_No paired knowledge results yet: run `bash recipes/all.sh`._"
    return "\n".join(["| difference | points [95 % CI] | cells (passage × seed) | files |",
                      "|---|---:|---:|---|", *rows])


def knowledge_cpt_table(root: Path = RESULTS, suffix: str = "") -> str:
    """The multi-passage (CPT) table from the largest ``results/knowledge/cpt-nN{SUFFIX}.json`` (``recipes/cpt.sh``,
    e.g. suffix ``-epochs5``): one adapter per method trained on all N passages' self-edits, so the costs are per
    passage (writing) and for the one adapter (training and answering every question)."""
    from seal.knowledge_report import vs_text

    found = [(int(m.group(1)), p) for p in (root / "knowledge").glob("cpt-n*.json")
             if (m := re.fullmatch(rf"cpt-n(\d+){re.escape(suffix)}", p.stem))]
    files = [p for _, p in sorted(found)]
    d = _load(files[-1]) if files else None
    if d is None or "methods" not in d:
        return "_No multi-passage results yet: run `bash recipes/cpt.sh`._"
    n = len(d["passages"])
    out = ["| method | accuracy [95 % CI] | − passage, points [95 % CI] | s writing / passage | s training + "
           "answering (one adapter) | tokens trained |", "|---|---:|---:|---:|---:|---:|"]
    for m in method_order(d["methods"]):
        v = d["methods"][m]
        label = _label(m)
        label += f" ({v['failed_edits']} unusable)" if v.get("failed_edits") else ""
        write = f"{v['s_write_per_edit'] / n:.1f}" if v.get("s_write_per_edit", 0) >= 0.05 else "–"
        cost, tokens = (f"{v['s_per_edit']:.0f}", f"{v['train_tokens_per_edit']:.0f}") if v["edits"] else ("–", "–")
        out.append(f"| {label} | {_pct(v['accuracy'])} {_ci(v['ci95'], pct=True)} | {vs_text(v.get('vs', {}))} | "
                   f"{write} | {cost} | {tokens} |")
    any_m = next(iter(d["methods"].values()))
    out += ["", f"N = {n} passages ({files[-1].name}), {any_m['n_questions']} questions per method, seed "
            f"{', '.join(map(str, d['seeds']))}; intervals resample passages; {_num(d.get('wall_s'), '.0f')} s "
            "in all."]
    return "\n".join(out)


ARC_FILES = (("easy", "easy demo set"), ("easy-seal", "easy demo set"), ("shared", "shared ARC evaluation set"))
"""``results/arc/NAME.json`` (``recipes/arc.sh``) in table order, with the task set each was run on."""


def arc_table(root: Path = RESULTS) -> str:
    """One row per ARC row (ICL, TTT + self-edit, SEAL, oracle) of each ``results/arc/*.json``: success rate with
    its 95 % interval over tasks, the self-edits tried and the seconds per self-edit."""
    from seal.arc_loop import ROWS

    out = []
    for name, where in ARC_FILES:
        d = _load(root / "arc" / f"{name}.json")
        if d is None:
            continue
        wall = (d.get("manifest") or {}).get("wall_s")
        for r, label in ROWS.items():
            v = d.get(r)
            if not isinstance(v, dict) or "success_rate" not in v:
                continue
            edits = "–" if r in ("icl", "oracle") else f"{v['n_edits']} ({v['invalid_edits']} invalid)"
            out.append(f"| {where} | {label} | {_pct(v['success_rate'])} {_ci(v['ci95'], pct=True)} | "
                       f"{v['n_tasks']} | {edits} | {v['s_per_edit']:.1f} | {name} ({_num(wall, '.0f')} s) |")
    if not out:
        return "_No ARC results yet: run `bash recipes/arc.sh`._"
    train = _load(root / "arc" / "train.json") or {}
    notes = [f"The SEAL policy: ReST-EM round {r['round']} on {r['contexts']} other easy tasks × {r['samples']} "
             f"self-edits, mean reward {r['mean_reward']:.2f}, {r['selected']} kept, {r['wall_s']:.0f} s (train)."
             for r in train.get("rounds", [])]
    return "\n".join(["| task set | method | success rate [95 % CI over tasks] | tasks | self-edits | s / self-edit | "
                      "file (wall) |", "|---|---|---:|---:|---:|---:|---|", *out, *([""] + notes if notes else [])])


def _one_file(name: str) -> Callable[[Path], str]:
    return lambda root: knowledge_table(root, name)


TABLES: dict[str, Callable[[Path], str]] = {
    "forgetting": forgetting_table, "codebase": codebase_table, "routing": routing_table,
    "knowledge": knowledge_table, "rest_em": rest_em_table, "knowledge_pairs": knowledge_pairs_table,
    **{f"knowledge_{n.replace('-', '_')}": _one_file(n) for n in ("formats", "round1", "seal-rewrite",
                                                                  "round1-rewrite", "second", "epochs5",
                                                                  "epochs5-rewarded-e5", "epochs5-round2",
                                                                  "epochs5-formats")},
    "knowledge_all": knowledge_all_table, "knowledge_cpt": knowledge_cpt_table, "arc": arc_table,
    "knowledge_cpt_epochs5": lambda root: knowledge_cpt_table(root, "-epochs5"),
    "knowledge_second_all": lambda root: knowledge_all_table(root, "second"),
    "knowledge_both_sets": lambda root: knowledge_all_table(root, "single", "second"),
    "reproduce": reproduce_table, "recipes": recipes_table, "sweep": sweep_table,
    "bench_cpu": lambda root: bench_table(root, "cpu-2core"), "bench_h200": lambda root: bench_table(root, "h200")}
_BLOCK = re.compile(r"(<!-- results:(?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(\n<!-- /results:(?P=name) -->)", re.S)


def render_readme(text: str, root: Path = RESULTS) -> str:
    """``text`` with every results block regenerated (unknown names are an error)."""
    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in TABLES:
            raise KeyError(f"README block results:{name} has no generator (known: {', '.join(TABLES)})")
        return m.group(1) + TABLES[name](root) + m.group(4)

    return _BLOCK.sub(sub, text)


def stale_blocks(text: str, root: Path = RESULTS) -> list[str]:
    fresh = {m.group("name"): m.group("body") for m in _BLOCK.finditer(render_readme(text, root))}
    return [m.group("name") for m in _BLOCK.finditer(text) if fresh[m.group("name")] != m.group("body")]


def merge_knowledge(out: Path, parts: list[Path], command: list[str], plot: Path | None = None) -> dict:
    """``seal eval knowledge`` JSONs of other seeds (same passages and methods) pooled into ``out``, with a
    manifest that lists the parts' own manifests (each run's command, commit, config and wall time)."""
    from seal.evaluate import merge_results
    from seal.manifest import manifest

    ds = []
    for p in parts:
        d = _load(p)
        if d is None or "methods" not in d:
            raise ValueError(f"{p} is not a knowledge evaluation JSON")
        ds.append(d)
    merged = merge_results(ds).as_dict()
    merged["manifest"] = manifest(command=command, config=ds[0].get("manifest", {}).get("config"),
                                  seeds=merged["seeds"], data=merged["passages"], wall_s=merged["wall_s"],
                                  parts=[{"file": str(p), "manifest": d.get("manifest")}
                                         for p, d in zip(parts, ds, strict=True)])
    atomic_write_json(out, merged)
    if plot is not None:
        knowledge_plot(merged, plot)
    return merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seal.results", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=list(dict.fromkeys(["readme", "forgetting", "merge-knowledge", *TABLES])))
    ap.add_argument("--check", action="store_true", help="readme: only say whether the tables are up to date")
    ap.add_argument("--out", type=Path, help="merge-knowledge: the pooled JSON to write")
    ap.add_argument("--plot", type=Path, help="merge-knowledge: also write the bar chart (PNG) here")
    ap.add_argument("parts", nargs="*", type=Path, help="merge-knowledge: the per-seed JSONs")
    args = ap.parse_intermixed_args(argv)
    if args.what == "merge-knowledge":
        if not args.out or len(args.parts) < 1:
            ap.error("merge-knowledge needs --out OUT and at least one part")
        try:
            merge_knowledge(args.out, args.parts, ["python", "-m", "seal.results", *(argv or sys.argv[1:])],
                            args.plot)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(knowledge_table(args.out.parent.parent, args.out.stem) if args.out.parent.name == "knowledge"
              else f"wrote {args.out}")
        return 0
    if args.what == "readme":
        text = README.read_text(encoding="utf-8")
        if args.check:
            stale = stale_blocks(text)
            print("README tables up to date" if not stale else f"stale README tables: {', '.join(stale)}")
            return 1 if stale else 0
        atomic_write_text(README, render_readme(text))
        return 0
    if args.what == "forgetting":
        write_forgetting_summary()
    print(TABLES[args.what](RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
