"""How the routed strategy's threshold (``routing.threshold``) was chosen: routing accuracy and off-routing.

For N = 8 and 32 learned SQuAD dev passages (offset 1500, as ``seal eval forgetting --offset 1500``), the
router indexes each passage's title and text; their questions, asked as the evaluation asks them
(``Topic: {title}`` + question), should go to their own passage (routing accuracy), and the questions of 100
passages that were not learned (offset 1600) should ideally go to the base model (off-routed = the share that
some adapter answers instead). Needs only the router, no model: seconds. Writes results/routing/threshold.json
with its manifest::

    .venv/bin/python recipes/routing_threshold.py [--data ../shared/data/squad/squad_dev.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from seal.continual.router import RouteEntry, Router
from seal.domains.knowledge import load_passages
from seal.io import atomic_write_json
from seal.manifest import manifest
from seal.stats import bootstrap_ci

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/squad/squad_dev.json"))
    ap.add_argument("--json", default="results/routing/threshold.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    passages = load_passages(args.data)
    learned, other = passages[1500:1532], passages[1600:1700]
    rows = []
    for n in (8, 32):
        router = Router([RouteEntry(i, p.title, p.context) for i, p in enumerate(learned[:n])], threshold=0.0)
        own = [(i, d) for i, p in enumerate(learned[:n])
               for d in router.route([f"Topic: {p.title}\n{q.question}" for q in p.questions])]
        off = [d for p in other for d in router.route([f"Topic: {p.title}\n{q.question}" for q in p.questions])]
        for th in THRESHOLDS:
            hits = [float(d.best == i and d.coverage >= th) for i, d in own]
            offs = [float(d.coverage >= th) for d in off]
            rows.append({"passages": n, "threshold": th, "routing_accuracy": sum(hits) / len(hits),
                         "routing_accuracy_ci95": list(bootstrap_ci(hits)), "questions": len(hits),
                         "off_routed": sum(offs) / len(offs), "off_questions": len(offs)})
            print(f"N={n:2d} threshold {th:.1f}: routed to own passage {rows[-1]['routing_accuracy']:.3f} "
                  f"({len(hits)} q), off-routed {rows[-1]['off_routed']:.3f} ({len(offs)} q)")
    atomic_write_json(args.json, {"rows": rows, "manifest": manifest(
        command=[sys.executable, *sys.argv], config={"thresholds": THRESHOLDS}, seeds=[],
        data=[f"{args.data}[1500:1532]", f"{args.data}[1600:1700]"], wall_s=time.perf_counter() - t0,
        learned_ids=[p.id for p in learned], other_ids=[p.id for p in other])})


if __name__ == "__main__":
    main()
