"""The recipes table: every step of ``recipes/all.sh``, the files it writes, and the wall time, machine and date
their manifests record, so the time to regenerate the README's results is measured step by step, not guessed.

Each ``step`` line in ``all.sh`` names the files it writes (space-separated, globs allowed) after the step's
name; a step whose files are missing shows "not run". Rendered into the README block ``results:recipes`` by
``python -m seal.results readme``, or printed alone::

    python -m seal.results recipes
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# step "name" "output files" command...   (after joining backslash-continued lines)
_STEP = re.compile(r'^step\s+"([^"]+)"\s+"([^"]+)"', re.M)


def all_steps(script: Path) -> list[tuple[str, list[str]]]:
    """(name, output patterns) for each ``step`` of ``script`` (``recipes/all.sh``), in order."""
    text = re.sub(r"\\\n\s*", " ", script.read_text(encoding="utf-8"))
    return [(m.group(1), m.group(2).split()) for m in _STEP.finditer(text)]


def file_manifest(path: Path) -> dict | None:
    """A result file's manifest: its ``manifest`` key, else ``NAME.manifest.json`` beside it."""
    for p, key in ((path, "manifest"), (path.with_name(path.stem + ".manifest.json"), None)):
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        m = d.get(key) if key and isinstance(d, dict) else d
        if isinstance(m, dict):
            return m
    return None


def _outputs(repo: Path, patterns: list[str]) -> list[Path]:
    found: dict[Path, None] = {}
    for pat in patterns:
        for p in sorted(repo.glob(pat)):
            if not p.name.endswith(".manifest.json"):
                found[p] = None
    return list(found)


def _cpu(m: dict) -> str:
    cpu = str((m.get("machine") or {}).get("cpu") or "?")
    return "Intel Xeon" if "Xeon" in cpu else cpu


def _hours(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min" if s >= 60 else f"{s:.0f} s"


def step_rows(repo: Path) -> list[dict]:
    """Per step of ``repo/recipes/all.sh``: its files, the wall seconds their manifests record (summed), how many
    files have no recorded wall time, the machines and the date of the newest file."""
    rows = []
    for name, patterns in all_steps(repo / "recipes" / "all.sh"):
        files = _outputs(repo, patterns)
        ms = [file_manifest(f) or {} for f in files]
        walls = [m["wall_s"] for m in ms if isinstance(m.get("wall_s"), int | float)]
        rows.append({"step": name, "patterns": patterns, "files": [str(f.relative_to(repo)) for f in files],
                     "wall_s": sum(walls), "untimed": len(files) - len(walls),
                     "machines": sorted({_cpu(m) for m in ms if m.get("machine")}),
                     "made": max((str(m.get("created_at") or m.get("committed_at") or "")[:10] for m in ms),
                                 default="")})
    return rows


def recipes_table(root: Path) -> str:
    """The Markdown table of ``step_rows`` for the tree that holds ``root`` (its ``results/`` folder)."""
    repo = root.parent
    if not (repo / "recipes" / "all.sh").is_file():
        return "_no recipes/all.sh_"
    rows = step_rows(repo)
    lines = ["| step of `recipes/all.sh` | writes | wall (from the manifests) | machine | made |",
             "|---|---|---:|---|---|"]
    for r in rows:
        if not r["files"]:
            lines.append(f"| {r['step']} | {', '.join(f'`{p}`' for p in r['patterns'])} | not run | – | – |")
            continue
        wall = _hours(r["wall_s"]) if r["wall_s"] else "–"
        if r["untimed"]:
            wall += f" ({r['untimed']} of {len(r['files'])} files without one)"
        files = ", ".join(f"`{f}`" for f in r["files"])
        lines.append(f"| {r['step']} | {files} | {wall} | {', '.join(r['machines']) or '–'} | {r['made']} |")
    done = [r for r in rows if r["files"]]
    untimed = sum(1 for r in done if r["untimed"])
    total = sum(r["wall_s"] for r in done)
    lines.append(f"| **all {len(done)} of {len(rows)} steps that have files** | | **{_hours(total)}**"
                 + (f" ({untimed} with files without a wall time)" if untimed else "") + " | | |")
    return "\n".join(lines)
