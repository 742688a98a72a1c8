"""Benchmark `seal serve` on the default model, all in one run, printing JSON.

Starts ``seal serve`` on 127.0.0.1 (a free port, a temporary store) and measures, with the ``openai`` client:

* ``idle``: p50/p95 latency of a short greedy chat answer (``--answer-tokens``) with nothing else running;
* ``while_learning``: the same while a learn job runs (goal: p50 at most 2x idle);
* ``throughput``: aggregate answer tokens/s with 1 and with 8 concurrent clients (goal: >= 3x from batching);
* ``learn_to_answer_s``: seconds from ``POST /v1/documents`` until ``seal`` answers from the new version;
* ``peak_rss_mb``: the server process's peak resident memory (``VmHWM``).

    python bench/serve.py --json bench/results/serve-cpu.json [--set inner_loop.epochs=5] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

import openai

from seal.serve.client import ServeProcess

DOC = ("The Marrowick Lantern Society\n\nThe Marrowick Lantern Society was founded in 1879 by the glassblower "
       "Ilse Varnholt. Its members light 312 lanterns along the Orvane canal every winter solstice. The society's "
       "emblem is a blue heron, and its hall stands on Cobble Lane.")
QUESTION = "Who founded the Marrowick Lantern Society?"


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def chat(client: openai.OpenAI, tokens: int, question: str = QUESTION) -> tuple[float, int, str | None]:
    t0 = time.perf_counter()
    r = client.chat.completions.with_raw_response.create(
        model="seal", max_tokens=tokens, temperature=0, messages=[{"role": "user", "content": question}])
    reply = r.parse()
    return time.perf_counter() - t0, reply.usage.completion_tokens, r.headers.get("x-seal-version")


def percentiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"p50_s": round(statistics.median(xs), 3), "p95_s": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 3),
            "n": len(xs)}


def concurrent_tokens_per_s(client: openai.OpenAI, clients: int, per_client: int, tokens: int) -> float:
    counts, lock = [], threading.Lock()

    def worker(k: int) -> None:
        for i in range(per_client):
            _, n, _ = chat(client, tokens, f"{QUESTION} ({k}.{i})")
            with lock:
                counts.append(n)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--answer-tokens", type=int, default=16)
    p.add_argument("--requests", type=int, default=12, help="latency samples per condition")
    p.add_argument("--json", help="also write the JSON here (with a manifest)")
    args = p.parse_args()
    key = secrets.token_urlsafe(12)
    t_start = time.time()
    srv = ServeProcess(key=key, model=args.model, sets=args.set).start()
    try:
        client = openai.OpenAI(base_url=srv.url, api_key=key, timeout=600)
        chat(client, args.answer_tokens)  # warm-up
        idle = [chat(client, args.answer_tokens)[0] for _ in range(args.requests)]
        one = concurrent_tokens_per_s(client, 1, 8, args.answer_tokens)
        eight = concurrent_tokens_per_s(client, 8, 2, args.answer_tokens)
        t_post = time.perf_counter()
        job = srv.call("POST", "/v1/documents", {"text": DOC})[1]
        old_version = chat(client, args.answer_tokens)[2]
        during, learned_at, status = [], None, "queued"
        while learned_at is None:
            s, _, version = chat(client, args.answer_tokens)
            status = srv.call("GET", f"/v1/jobs/{job['job_id']}")[1]["status"]
            if version != old_version:
                learned_at = time.perf_counter() - t_post
            elif status == "running":
                during.append(s)
            if status in ("failed", "rejected"):
                raise SystemExit(f"the learn job {status}")
        result = {
            "idle": percentiles(idle),
            "while_learning": percentiles(during) if during else None,
            "while_learning_over_idle_p50": round(statistics.median(during) / statistics.median(idle), 2)
            if during else None,
            "throughput_tokens_per_s": {"1_client": round(one, 2), "8_clients": round(eight, 2),
                                        "ratio": round(eight / one, 2)},
            "learn_to_answer_s": round(learned_at, 1),
            "peak_rss_mb": peak_rss_mb(srv.proc.pid),
            "answer_tokens": args.answer_tokens,
        }
    finally:
        srv.stop()
    from seal.manifest import manifest

    result["manifest"] = manifest(command=["python", "bench/serve.py", *sys.argv[1:]],
                                  config={"set": args.set, "model": args.model or "smollm2-135m",
                                          "requests": args.requests}, seeds=[0], data=["bench/serve.py:DOC"],
                                  wall_s=time.time() - t_start)
    print(json.dumps(result, indent=2))
    if args.json:
        from seal.io import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
