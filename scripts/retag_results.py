"""Rename the rows of stored knowledge results after a default of the update changed, so that a row's name keeps
saying how it was trained (``seal.knowledge_report.rebase_name``): a row is named by the update settings that
differ from the defaults, so when ``inner_loop.epochs`` went from 10 to 5, ``passage`` measured at 10 epochs
became ``passage [epochs 10]`` and ``passage [epochs 5]`` became ``passage``. Only names change, never figures;
each file's manifest records the renaming (``renamed``: the old defaults, the new, the map) and a file that has
one is left alone, so a second run changes nothing. Run from the project root::

    .venv/bin/python scripts/retag_results.py --old inner_loop.epochs=10 results/knowledge/*.json \\
        results/reproduce/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seal.config import SealConfig
from seal.io import atomic_write_json
from seal.knowledge_report import default_values, rebase_name


def retag(d: dict, old: dict[str, float], new: dict[str, float]) -> dict[str, str]:
    """Rename ``d``'s rows in place (a knowledge result or a reproduction report); returns the map of changes."""
    names: set[str] = set()
    methods = d.get("methods") if isinstance(d.get("methods"), dict) else {}
    for name, st in methods.items():  # a "vs" key "passage" is the passage trained as the row is: it stays
        names |= {name, *(k for k in st.get("vs") or {} if k != "passage")}
    names |= set(d.get("policies") or {}) | set((d.get("policies") or {}).values())
    rows = (d.get("knowledge") or {}).get("methods") or []  # seal.reproduce's report
    names |= {r["method"] for r in rows if isinstance(r, dict) and "method" in r}
    renames = {n: m for n in sorted(names) if (m := rebase_name(n, old, new)) != n}
    if methods:
        d["methods"] = {renames.get(k, k): {**st, **({"vs": {a if a == "passage" else renames.get(a, a): v
                                                              for a, v in st["vs"].items()}} if "vs" in st else {})}
                        for k, st in methods.items()}
    if d.get("policies"):
        d["policies"] = {renames.get(k, k): renames.get(v, v) for k, v in d["policies"].items()}
    for r in rows:
        if isinstance(r, dict) and "method" in r:
            r["method"] = renames.get(r["method"], r["method"])
    return renames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", action="append", default=[], metavar="KEY=VALUE",
                    help="a default as it was when the files were written, e.g. inner_loop.epochs=10")
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    try:
        old = default_values(SealConfig().override(args.old))
    except (ValueError, KeyError) as exc:
        print(f"error: --old: {exc}", file=sys.stderr)
        return 2
    new = default_values()
    for path in args.files:
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"skip {path}: {exc}")
            continue
        if not isinstance(d, dict) or "renamed" in (d.get("manifest") or {}):
            continue
        renames = retag(d, old, new)
        if not renames:
            continue
        d.setdefault("manifest", {})["renamed"] = {"old_defaults": old, "new_defaults": new, "rows": renames}
        atomic_write_json(path, d)
        print(f"{path}: {len(renames)} rows renamed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
