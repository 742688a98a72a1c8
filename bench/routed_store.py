"""Memory and disk per learned document of a ``routed`` store, measured on the default model.

For each LoRA rank (default 16 and 4, each in its own process so the bank is built once per rank): learn D
short invented documents into a fresh routed store (``--format passage``, 1 epoch: training time is not what
is measured), then ask one question per document so that D adapters load into the bank's LRU. Reports the
adapter file size on disk per document, the SQLite growth per document, the bank memory per cached adapter
(its parameter bytes, and the process RSS growth while they load) and the seconds to answer one routed
question with its adapter cached vs not. Prints JSON::

    .venv/bin/python bench/routed_store.py --json bench/results/routed-store-cpu.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = ["Orrin Vale", "Ketta Morrow", "Isandro Pell", "Wenna Castel", "Dorrit Sayle", "Fenwick Oaks",
         "Maelis Thorne", "Quill Arden"]
PLACES = ["Harrowmere", "Salt Ivory", "Copperlee", "Danthorn", "Velmouth", "Oskarn", "Brinhollow", "Lutterby"]
THINGS = ["Lantern Society", "Tidewright Guild", "Amber Observatory", "Juniper Press", "Cobalt Ferry",
          "Marigold Archive", "Sable Foundry", "Thistle Academy"]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(rank: int, docs: int) -> dict:
    from seal.config import SealConfig
    from seal.engine import Seal
    from seal.learning import ask_explained, learn
    from seal.store import Store

    cfg = SealConfig().override([f"lora.rank={rank}", f"lora.alpha={2 * rank}", "inner_loop.epochs=1",
                                 f"routing.cache={docs}"])
    seal = Seal.load(cfg, slots=2)
    slot_bytes = sum(t.numel() * t.element_size() for t in seal.bank.state_dict(0).values())
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp) / "store"
        with Store.open(store_dir, create=True, base_model=cfg.model.name) as st:
            sqlite0 = (store_dir / "seal-store.sqlite").stat().st_size
            for i in range(docs):
                path = Path(tmp) / f"doc{i}.txt"
                path.write_text(f"The {THINGS[i]}\n\nThe {THINGS[i]} was founded in {1801 + 7 * i} by {NAMES[i]} in "
                                f"{PLACES[i]}, where it still keeps its records.\n", encoding="utf-8")
                learn(seal, st, path, "passage", strategy="routed", probes=False)
            files = sorted((store_dir / "adapters").glob("*.safetensors"))
            disk = [f.stat().st_size for f in files]
            sqlite1 = (store_dir / "seal-store.sqlite").stat().st_size
            questions = [f"Who founded the {THINGS[i]} in {PLACES[i]}?" for i in range(docs)]
            rss0 = rss_mb()
            cold, warm = [], []
            for q in questions:  # one at a time: each loads its document's adapter (a miss)
                t = time.perf_counter()
                _, [why] = ask_explained(seal, st, [q], max_new_tokens=16)
                cold.append(time.perf_counter() - t)
                assert why["document"] is not None, why
            rss1 = rss_mb()
            for q in questions:  # again: every adapter is cached (hits)
                t = time.perf_counter()
                ask_explained(seal, st, [q], max_new_tokens=16)
                warm.append(time.perf_counter() - t)
            stats = seal._routed_cache.stats()
    return {"rank": rank, "documents": docs, "adapter_file_bytes_per_document": statistics.fmean(disk),
            "adapter_files": len(disk), "sqlite_bytes_per_document": (sqlite1 - sqlite0) / docs,
            "bank_bytes_per_cached_adapter": slot_bytes, "rss_mb_growth_per_loaded_adapter": (rss1 - rss0) / docs,
            "ask_s_adapter_not_cached_median": statistics.median(cold),
            "ask_s_adapter_cached_median": statistics.median(warm), "cache": stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", default="16,4")
    ap.add_argument("--documents", type=int, default=6)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.documents)))
        return
    from seal.io import atomic_write_json
    from seal.manifest import manifest

    t0 = time.perf_counter()
    rows = []
    for r in [int(x) for x in args.ranks.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--child", str(r), "--documents", str(args.documents)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {"rows": rows, "per_1000_documents_gb": {
        str(r["rank"]): round(1000 * r["adapter_file_bytes_per_document"] / 1e9, 3) for r in rows}}
    result["manifest"] = manifest(command=[sys.executable, *sys.argv], config=vars(args), seeds=[0],
                                  data=["invented documents in bench/routed_store.py"], wall_s=time.perf_counter() - t0)
    print(json.dumps(result, indent=2))
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
