"""A support bot that learns each new ticket into its weights, through `seal serve` and the `openai` client.

The seed's scenario: a stream of support tickets (``examples/support_tickets.json``, invented for this project)
arrives one by one; each is learned through ``POST /v1/documents`` (the model writes its own training data
about the ticket and trains on it while the server keeps answering); afterwards questions about earlier tickets
are answered from the weights, with no ticket in the prompt and no retrieval. It prints each answer before and
after (right after its own ticket was learned, and after all of them), and how many were right (lexical
grading, as ``seal eval``)::

    python examples/support_bot.py --serve                       # starts `seal serve` on a free port, stops it
    python examples/support_bot.py --url http://127.0.0.1:8000/v1 --key $SEAL_API_KEY

``--serve`` options go to the server: ``--model DIR``, ``--store DIR`` (default: a temporary store) and
``--set section.key=value`` (e.g. ``--set inner_loop.epochs=5`` for a quicker run). On a 2-core CPU with the
default model each ticket takes about a minute to learn.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

import openai

from seal.serve.client import ServeProcess, http_json

HERE = Path(__file__).resolve().parent


def ask(client: openai.OpenAI, title: str, question: str) -> str:
    """The knowledge protocol's question (``Topic: ...``, no ticket text in the prompt), greedy, short."""
    reply = client.chat.completions.create(
        model="seal", max_tokens=24, temperature=0,
        messages=[{"role": "user", "content": f"Topic: {title}\n{question}\nAnswer briefly."}])
    return (reply.choices[0].message.content or "").strip()


def learn(base_url: str, key: str, ticket: dict, timeout: float = 1800) -> dict:
    status, body = http_json("POST", f"{base_url}/documents", {"text": ticket["text"], "title": ticket["title"]}, key)
    if status != 202:
        raise SystemExit(f"POST /v1/documents: {status} {body}")
    job_id, deadline = body["job_id"], time.time() + timeout
    while time.time() < deadline:
        job = http_json("GET", f"{base_url}/jobs/{job_id}", key=key)[1]
        if job["status"] in ("done", "failed", "rejected"):
            return job
        time.sleep(1)
    raise SystemExit(f"job {job_id} did not finish within {timeout:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="the server's /v1 URL (default: start one with --serve)")
    p.add_argument("--key", default=os.environ.get("SEAL_API_KEY", ""))
    p.add_argument("--serve", action="store_true", help="start `seal serve` for the run, stop it after")
    p.add_argument("--model"), p.add_argument("--store"), p.add_argument("--set", action="append")
    p.add_argument("--tickets", default=str(HERE / "support_tickets.json"))
    p.add_argument("--json", help="also write the answers and counts here")
    args = p.parse_args()
    from seal.grading import LexicalGrader

    t_start = time.time()
    tickets = json.loads(Path(args.tickets).read_text(encoding="utf-8"))
    srv = None
    if args.serve or not args.url:
        args.key = args.key or secrets.token_urlsafe(16)
        srv = ServeProcess(args.store, key=args.key, model=args.model, sets=args.set or []).start()
        print(f"seal serve at {srv.url}, store {srv.store}, log {srv.log}", flush=True)
        args.url = srv.url
    try:
        client = openai.OpenAI(base_url=args.url, api_key=args.key or "no-key", timeout=600)
        grade = LexicalGrader()
        qs = [(t["title"], q["question"], q["answer"]) for t in tickets for q in t["questions"]]
        before = [ask(client, t, q) for t, q, _ in qs]
        t0, jobs, just_after = time.time(), [], []
        for ticket in tickets:
            job = learn(args.url, args.key, ticket)
            jobs.append(job)
            own = [ask(client, ticket["title"], q["question"]) for q in ticket["questions"]]
            just_after += [grade.grade(a, q["answer"]) for a, q in zip(own, ticket["questions"], strict=True)]
            print(f"learned {ticket['title']!r}: {job['status']}, version {job.get('version')}, "
                  f"{job.get('seconds') or 0:.0f} s; its questions right right after: "
                  f"{sum(just_after[-len(own):])}/{len(own)}", flush=True)
        learn_s = time.time() - t0
        after = [ask(client, t, q) for t, q, _ in qs]
        rows = []
        for (_, q, gold), b, a in zip(qs, before, after, strict=True):
            rows.append({"question": q, "gold": gold, "before": b, "after": a,
                         "right_before": grade.grade(b, gold), "right_after": grade.grade(a, gold)})
            print(f"- {q}\n    gold: {gold}\n    before: {b!r} {'✓' if rows[-1]['right_before'] else '✗'}\n"
                  f"    after:  {a!r} {'✓' if rows[-1]['right_after'] else '✗'}")
        nb, na = sum(r["right_before"] for r in rows), sum(r["right_after"] for r in rows)
        print(f"\nright before: {nb}/{len(rows)}   right after its own ticket: {sum(just_after)}/{len(rows)}   "
              f"after all {len(tickets)} tickets: {na}/{len(rows)}   ({learn_s:.0f} s learning)")
        if args.json:
            from seal.io import atomic_write_json
            from seal.manifest import manifest

            atomic_write_json(args.json, {"rows": rows, "right_before": nb, "right_after": na,
                                          "right_just_after_own_ticket": sum(just_after),
                                          "n_questions": len(rows), "learn_s": learn_s, "jobs": jobs,
                                          "manifest": manifest(command=["python", "examples/support_bot.py",
                                                                        *sys.argv[1:]],
                                                               config={"set": args.set, "model": args.model},
                                                               seeds=[0], data=[args.tickets],
                                                               wall_s=time.time() - t_start)})
    finally:
        if srv is not None:
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
