"""Memory and disk per learned document of a ``routed`` store, measured on the default model.

For each LoRA rank (default 16 and 4, each in its own process so the bank is built once per rank): learn D
(default 32) short invented documents into a fresh routed store (``--format passage``, 1 epoch: training time
is not what is measured), then ask one question per document, one at a time, so that the adapters load into
the bank's LRU (``routing.cache`` = 8: most asks are misses). Reports the adapter file size on disk per
document, the SQLite growth per document, the bank memory per cached adapter (its parameter bytes, and the
process RSS growth while the cache fills) and the median seconds to answer one question, routed (adapter not
cached / cached) and, side by side, from an ``accumulate`` store that learned the same documents. Prints
JSON::

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
KINDS = ["Lantern", "Tidewright", "Amber", "Juniper", "Cobalt", "Marigold", "Sable", "Thistle"]
BODIES = ["Society", "Guild", "Observatory", "Press"]


def document(i: int) -> tuple[str, str, str]:
    """(title, text, question) of invented document ``i`` (distinct names for up to 32)."""
    thing = f"{KINDS[i % 8]} {BODIES[i // 8 % 4]}"
    name, place = NAMES[(i * 3) % 8], PLACES[(i * 5 + i // 8) % 8]
    text = (f"The {thing}\n\nThe {thing} was founded in {1801 + 7 * i} by {name} in {place}, where it still "
            "keeps its records.\n")
    return thing, text, f"Who founded the {thing}?"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sqlite_bytes(store_dir: Path) -> int:
    """The store database with its write-ahead log (SQLite WAL mode keeps recent writes in ``-wal``)."""
    return sum(p.stat().st_size for p in store_dir.glob("seal-store.sqlite*"))


def _learn_all(seal, store_dir: Path, tmp: Path, docs: int, strategy: str):
    from seal.learning import learn
    from seal.store import Store

    st = Store.open(store_dir, create=True, base_model=seal.cfg.model.name)
    sqlite0 = _sqlite_bytes(store_dir)
    for i in range(docs):
        path = tmp / f"doc{i}.txt"
        path.write_text(document(i)[1], encoding="utf-8")
        learn(seal, st, path, "passage", strategy=strategy, probes=False)
    return st, sqlite0


def _timed_asks(seal, st, questions) -> tuple[list[float], list]:
    from seal.learning import ask_explained

    times, whys = [], []
    for q in questions:  # one at a time, as a user asks
        t = time.perf_counter()
        _, [why] = ask_explained(seal, st, [q], max_new_tokens=16)
        times.append(time.perf_counter() - t)
        whys.append(why)
    return times, whys


def child(rank: int, docs: int, compare: bool) -> dict:
    from seal.config import SealConfig
    from seal.engine import Seal

    cfg = SealConfig().override([f"lora.rank={rank}", f"lora.alpha={2 * rank}", "inner_loop.epochs=1"])
    seal = Seal.load(cfg, slots=2)
    slot_bytes = sum(t.numel() * t.element_size() for t in seal.bank.state_dict(0).values())
    questions = [document(i)[2] for i in range(docs)]
    out: dict = {"rank": rank, "documents": docs, "cache_size": cfg.routing.cache,
                 "bank_bytes_per_cached_adapter": slot_bytes}
    with tempfile.TemporaryDirectory() as tmp:
        st, sqlite0 = _learn_all(seal, Path(tmp) / "routed", Path(tmp), docs, "routed")
        disk = [f.stat().st_size for f in sorted((Path(tmp) / "routed" / "adapters").glob("*.safetensors"))]
        sqlite1 = _sqlite_bytes(Path(tmp) / "routed")
        rss0 = rss_mb()
        cold, whys = _timed_asks(seal, st, questions)  # LRU of 8: every ask here is a miss
        rss1 = rss_mb()
        hot, _ = _timed_asks(seal, st, questions[-cfg.routing.cache:])  # the last 8 are cached
        out.update({"adapter_file_bytes_per_document": statistics.fmean(disk), "adapter_files": len(disk),
                    "sqlite_bytes_per_document": (sqlite1 - sqlite0) / docs,
                    "rss_mb_growth_while_cache_fills": rss1 - rss0,
                    "routed_to_own_document": sum(w["document"] == i + 1 for i, w in enumerate(whys)) / docs,
                    "ask_s_routed_not_cached_median": statistics.median(cold),
                    "ask_s_routed_cached_median": statistics.median(hot), "cache": seal._routed_cache.stats()})
        st.close()
        if compare:
            acc, _ = _learn_all(seal, Path(tmp) / "accumulate", Path(tmp), docs, "accumulate")
            times, _ = _timed_asks(seal, acc, questions)
            acc.close()
            out["ask_s_accumulate_median"] = statistics.median(times)
            out["routed_not_cached_over_accumulate"] = out["ask_s_routed_not_cached_median"] / statistics.median(times)
            out["routed_cached_over_accumulate"] = out["ask_s_routed_cached_median"] / statistics.median(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", default="16,4")
    ap.add_argument("--documents", type=int, default=32)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.documents, compare=args.child == int(args.ranks.split(",")[0]))))
        return
    from seal.io import atomic_write_json
    from seal.manifest import manifest

    t0 = time.perf_counter()
    rows = []
    for r in [int(x) for x in args.ranks.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--child", str(r), "--documents", str(args.documents),
                              "--ranks", args.ranks], capture_output=True, text=True, check=True)
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
