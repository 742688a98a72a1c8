"""Kill soak for ``seal train knowledge --resume``: SIGKILL a ReST-EM run at random moments, resume it each
time, and check that the finished run equals an uninterrupted one and that a kill loses at most one inner loop.

What it does, on the tiny random Llama of ``tests/conftest.py`` (built into a temp dir, or ``--model-dir``):

1. an uninterrupted reference run ``REF``: ``seal train knowledge --rounds 2 --contexts 2 --samples 1`` with
   small ``--set`` overrides (``inner_loop.epochs=20`` so training is a good part of the work, ``eval.answer_tokens=6``, ``self_edit.max_new_tokens=48``
   because at 24 nearly every self-edit of the tiny model is unusable and nothing would be trained,
   ``inner_loop.lr=rest_em.policy_lr=5e-2`` so that training changes the answers, ``model.threads=1``, and
   ``rest_em.contexts_per_pass=1`` so that one training pass is one inner loop); its wall time T and start-up
   time S (process start until ``train_knowledge`` is entered: imports and the model load) are measured;
2. the same command with ``--out RUN`` in a new process group, SIGKILLed (the whole group) at a seeded random
   moment between the end of its start-up and the expected end of its training (from the reference's timeline:
   the time from where the reference had logged as many records as RUN has to where it wrote its last
   ``metrics.json``; once everything is trained, the report-writing rest of the process); then ``--resume``, killed again, ... ``--kills`` times; then one last
   ``--resume`` that runs to completion. A run that finishes before its kill time is counted, not killed;
3. a comparison of ``RUN`` with ``REF``: every ``samples.jsonl`` record (round, context, sample, repeat, passage,
   reward, accuracy, baseline, failed, answers, steps, loss) equal, the same keys, no key logged twice; each
   round's ``self_edits.jsonl`` texts, ``selected.json``, ``metrics.json`` (mean_reward, selected, rewards,
   failed_edits, policy_final_loss) and policy adapter file (bytes) equal. ``*.torn`` files (a kill during a
   JSONL append; the fragment is moved aside by the next append) and leftover ``.*.tmp`` files (a kill during
   an atomic write) are listed; the final logs must still read.

Lost work is measured, not inferred: every run goes through this script as a child
(``kill_soak.py --child EVENTS seal-args...``) that wraps ``seal.engine.Seal.train`` to append a fsynced event
when a training pass starts and when it returns, then calls ``seal.cli.main()``. For each process,
``inner loops lost = inner loops it started training - trained records it logged`` (records of unusable
self-edits are logged without training and are not counted). A kill mid-pass, or after a pass but before its
records are appended, shows up as lost; ``redone`` work is exactly this, since the resumed process trains every
key that is not logged. With one inner loop per pass the bound is 1 per kill.

By default the child also replaces the lexical grader with a deterministic hash of the answer text (as
``tests/test_rest_em.py`` does): a random tiny model answers nothing right, so with the real grader every reward
is 0, nothing is selected and the policy SFT (M-step) and round 2's sampling from a trained policy are never
exercised. ``--real-grader`` turns this off.

Run::

    scripts/kill_soak.sh                       # 10 kills, seed 0
    scripts/kill_soak.sh --kills 3 --seed 1 --model-dir /tmp/tiny --work-dir /tmp/soak --keep

It prints one line per kill (kill time since spawn and since the end of start-up, records logged before the
process started and at the kill, whether the run had already finished, inner loops started / trained / lost),
a line for the final resume, and then the JSON summary as the last line: ``kills``, ``kills_mid_run``,
``lost_per_kill`` (max, mean, all), ``final_resume_lost``, ``records_identical``, ``differing_keys``,
``duplicate_records``, ``self_edits_identical``, ``selections_identical``, ``metrics_identical``,
``policies_identical``, ``torn_files``, ``leftover_tmp_files``, ``reference_wall_s``, ``startup_s``, ``wall_s``,
``per_kill`` and ``ok``. Exit status 0 only when everything compared is identical and no kill lost more than one
inner loop; 1 otherwise; 2 when a run failed outright (its log's tail goes to stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "seal" / "samples" / "passages.json"
RECORD_FIELDS = ("passage", "reward", "accuracy", "baseline", "failed", "answers", "steps", "loss")


# ----------------------------------------------------------------------------------------------- the child
def _child(events: str, argv: list[str]) -> None:
    """Run ``seal`` with ``argv``, logging training passes and the entry to ``train_knowledge`` to ``events``."""
    import seal.engine
    import seal.rest_em

    def event(**rec) -> None:
        with open(events, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({**rec, "t": time.time()}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    real_train = seal.engine.Seal.train

    def train(self, jobs, progress=None):
        event(ev="train_start", n=len(jobs))
        out = real_train(self, jobs, progress)
        event(ev="train_end", n=len(jobs))
        return out

    seal.engine.Seal.train = train
    real_run = seal.rest_em.train_knowledge

    def run(*args, **kwargs):  # after imports and the model load: the start-up is over
        event(ev="begin")
        return real_run(*args, **kwargs)

    seal.rest_em.train_knowledge = run
    real_write = seal.rest_em._write

    def write(fn, path, *args):  # the reference's timeline: when each log line and result was written
        real_write(fn, path, *args)
        event(ev="write", file=Path(path).name)

    seal.rest_em._write = write
    if os.environ.get("KILL_SOAK_HASH_GRADER") == "1":
        class HashGrader:  # the stand-in of tests/test_rest_em.py
            def grade_many(self, questions, predictions, golds):
                return [int(hashlib.sha256(p.encode()).hexdigest(), 16) % 3 == 0 for p in predictions]

        seal.engine.make_grader = lambda *a, **k: HashGrader()
    import seal.cli

    sys.argv = ["seal", *argv]
    seal.cli.main()


# ----------------------------------------------------------------------------------------------- helpers
def build_model_dir(path: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import build_model, build_tokenizer

    tok = build_tokenizer()
    build_model(len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def seal_args(model_dir: Path, out: Path, args: argparse.Namespace, resume: bool) -> list[str]:
    sets = [f"inner_loop.epochs={args.epochs}", "inner_loop.lr=5e-2", "rest_em.policy_lr=5e-2",
            f"self_edit.max_new_tokens={args.max_new_tokens}", "eval.answer_tokens=6",
            "rest_em.contexts_per_pass=1", f"model.threads={args.threads}", "model.device=cpu"]
    cmd = ["train", "knowledge", "--model", str(model_dir), "--data", str(DATA), "--rounds", str(args.rounds),
           "--contexts", str(args.contexts), "--samples", "1", "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    return cmd + (["--resume"] if resume else [])


def spawn(model_dir: Path, out: Path, events: Path, args: argparse.Namespace, resume: bool, log: Path):
    env = {**os.environ, "KILL_SOAK_HASH_GRADER": "0" if args.real_grader else "1", "TERM": "dumb"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(events),
           *seal_args(model_dir, out, args, resume)]
    fh = open(log, "ab")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    fh.close()
    return proc


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a kill mid-write of our own event line
            pass
    return out


def read_records(run: Path) -> list[dict]:
    from seal.io import read_jsonl

    return list(read_jsonl(run / "samples.jsonl"))


def trained(records: list[dict]) -> int:
    return sum(not str(r.get("failed") or "").startswith("unusable") for r in records)


def key(r: dict) -> tuple:
    return (r["round"], r["context"], r["sample"], r["repeat"])


def wait_for(pred, proc, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        if proc.poll() is not None:
            return pred()
        time.sleep(0.02)
    return False


def killpg(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def lost_work(events: Path, before: list[dict], after: list[dict]) -> int:
    """Inner loops a process started training minus the trained records it logged."""
    started = sum(e["n"] for e in read_events(events) if e["ev"] == "train_start")
    return started - (trained(after) - trained(before))


def where(events: list[dict]) -> str:
    """What the killed process was doing, from its last event."""
    last = events[-1] if events else {"ev": "begin"}
    if last["ev"] == "train_start":
        return "mid training pass"
    if last["ev"] == "train_end":
        return "after a training pass, before its records"
    if last["ev"] == "write":
        return f"after writing {last['file']}"
    return "after start-up, before any write"


def failed(msg: str, log: Path) -> int:
    print(f"{msg}; the end of {log}:\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
    return 2


def file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def compare(ref: Path, run: Path, rounds: int) -> dict:
    from seal.io import read_jsonl

    ref_recs, run_recs = read_records(ref), read_records(run)
    run_keys = [key(r) for r in run_recs]
    dup = len(run_keys) - len(set(run_keys))
    a = {key(r): tuple(r.get(f) for f in RECORD_FIELDS) for r in ref_recs}
    b = {key(r): tuple(r.get(f) for f in RECORD_FIELDS) for r in run_recs}
    diff_keys = sorted(str(k) for k in set(a) | set(b) if a.get(k) != b.get(k))
    sel = met = pol = edits = True
    dup_edits = 0
    for rnd in range(1, rounds + 1):
        rr, ru = ref / f"round-{rnd}", run / f"round-{rnd}"
        sel &= (rr / "selected.json").read_text() == (ru / "selected.json").read_text()
        mr, mu = (json.loads((d / "metrics.json").read_text()) for d in (rr, ru))
        met &= all(mr[f] == mu[f] for f in ("mean_reward", "selected", "rewards", "failed_edits",
                                             "policy_final_loss"))
        pol &= file_hash(rr / "policy" / "adapter_model.safetensors") == \
            file_hash(ru / "policy" / "adapter_model.safetensors") is not None
        er = [(e["context"], e["sample"], e["text"]) for e in read_jsonl(rr / "self_edits.jsonl")]
        eu = [(e["context"], e["sample"], e["text"]) for e in read_jsonl(ru / "self_edits.jsonl")]
        dup_edits += len(eu) - len({(c, s) for c, s, _ in eu})
        edits &= sorted(set(er)) == sorted(set(eu))
    torn = sorted(str(p.relative_to(run)) for p in run.rglob("*.torn"))  # a kill mid-append (moved aside)
    tmp = sorted(str(p.relative_to(run)) for p in run.rglob(".*.tmp"))  # a kill mid atomic write (harmless)
    return {"records_identical": not diff_keys and dup == 0 and len(a) == len(ref_recs) > 0,
            "records": len(run_recs), "reference_records": len(ref_recs), "differing_keys": diff_keys[:10],
            "duplicate_records": dup, "self_edits_identical": edits, "duplicate_self_edits": dup_edits,
            "selections_identical": sel, "metrics_identical": met, "policies_identical": pol,
            "torn_files": torn, "leftover_tmp_files": tmp}


# ----------------------------------------------------------------------------------------------- the soak
def soak(args: argparse.Namespace) -> int:
    t_start = time.time()
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="kill-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.model_dir) if args.model_dir else None
    if model_dir is None or not (model_dir / "config.json").is_file():
        model_dir = build_model_dir(model_dir or work / "model")
    ref, run = work / "REF", work / "RUN"
    for d in (ref, run):
        if d.exists():
            sys.exit(f"{d} exists; pass an empty --work-dir")

    # the reference
    t0 = time.time()
    proc = spawn(model_dir, ref, work / "events-ref.jsonl", args, False, work / "ref.log")
    if proc.wait() != 0:
        return failed("the reference run failed", work / "ref.log")
    T = time.time() - t0
    ref_events = read_events(work / "events-ref.jsonl")
    begin = next(e["t"] for e in ref_events if e["ev"] == "begin")
    S = begin - t0
    work_s = T - S
    # seconds after start-up at which the reference had logged k records (k = 0, 1, ...)
    logged_at = [0.0] + [e["t"] - begin for e in ref_events if e.get("file") == "samples.jsonl"]
    # ... and at which it wrote the last round's metrics.json: training is over, the report follows
    trained_at = [e["t"] - begin for e in ref_events if e.get("file") == "metrics.json"][-1]
    print(f"reference: {T:.1f} s wall, start-up {S:.1f} s, {len(read_records(ref))} records", flush=True)

    rng = random.Random(args.seed)
    kills, lost_per_kill, final_lost = [], [], 0
    for i in range(args.kills + 1):
        events, log = work / f"events-{i}.jsonl", work / f"run-{i}.log"
        before = read_records(run)
        proc = spawn(model_dir, run, events, args, resume=i > 0, log=log)
        t_spawn = time.time()
        if i == args.kills:  # the last resume runs to completion
            if proc.wait() != 0:
                return failed(f"the final resume failed (exit {proc.returncode})", log)
            final_lost = lost_work(events, before, read_records(run))
            print(f"final resume: {time.time() - t_spawn:.1f} s, records {len(before)} -> "
                  f"{len(read_records(run))}, inner loops lost {final_lost}", flush=True)
            break
        # kill after the start-up (the child logs "begin"), before the expected end of the training that is left:
        # the reference's time from the point where it had logged as many records as RUN has to its last round's
        # metrics.json (once all is trained, the rest of the process: the report)
        done = (run / f"round-{args.rounds}" / "metrics.json").is_file()
        remaining = (work_s - trained_at) if done else trained_at - logged_at[min(len(before), len(logged_at) - 1)]
        remaining = max(remaining, 0.2)
        offset = rng.uniform(0.02, 0.9) * remaining
        if not wait_for(lambda ev=events: any(e["ev"] == "begin" for e in read_events(ev)), proc, 10 * S + 30):
            killpg(proc)
            return failed(f"run {i} never got past its start-up", log)
        t_begin = time.time()
        while time.time() < t_begin + offset and proc.poll() is None:
            time.sleep(0.01)
        t_kill = time.time() - t_spawn
        finished = proc.poll() is not None
        if finished and proc.returncode != 0:
            return failed(f"run {i} failed (exit {proc.returncode})", log)
        if not finished:
            killpg(proc)
        after = read_records(run)
        ev = read_events(events)
        starts = sum(e["n"] for e in ev if e["ev"] == "train_start")
        ends = sum(e["n"] for e in ev if e["ev"] == "train_end")
        lost = lost_work(events, before, after)
        lost_per_kill.append(lost)
        stage = "finished" if finished else where(ev)
        kills.append({"kill": i + 1, "kill_at_s": round(t_kill, 2), "after_startup_s": round(offset, 2),
                      "records_before": len(before), "records_at_kill": len(after), "finished": finished,
                      "stage": stage, "inner_loops_started": starts, "inner_loops_trained": ends, "inner_loops_lost": lost})
        print(f"kill {i + 1}: at {t_kill:.2f} s ({offset:.2f} s after start-up), records {len(before)} -> "
              f"{len(after)}, run had finished: {finished}, killed {stage}, inner loops started {starts}, trained {ends}, "
              f"lost {lost}", flush=True)

    from seal.io import LogError

    try:
        cmp = compare(ref, run, args.rounds)
    except (LogError, OSError, KeyError, ValueError) as exc:  # a log or result the run left unreadable
        print(f"cannot compare {run} with {ref}: {exc}", file=sys.stderr)
        return 1
    lost_all = lost_per_kill or [0]
    summary = {
        "kills": len(kills), "kills_mid_run": sum(not k["finished"] for k in kills),
        "lost_per_kill": {"max": max(lost_all), "mean": round(sum(lost_all) / len(lost_all), 3), "all": lost_all},
        "final_resume_lost": final_lost, **cmp, "reference_wall_s": round(T, 2), "startup_s": round(S, 2),
        "wall_s": round(time.time() - t_start, 2), "work_dir": str(work), "per_kill": kills,
    }
    summary["ok"] = bool(cmp["records_identical"] and cmp["selections_identical"] and cmp["metrics_identical"]
                         and cmp["policies_identical"] and cmp["self_edits_identical"]
                         and max(lost_all) <= 1 and final_lost == 0)
    print(json.dumps(summary, sort_keys=True))
    if args.json:
        from seal.io import atomic_write_json
        from seal.manifest import manifest

        opts = {k: v for k, v in vars(args).items() if k not in ("json", "work_dir", "model_dir", "keep")}
        summary["manifest"] = manifest(command=["scripts/kill_soak.sh", *sys.argv[1:]], config=opts,
                                       seeds=[args.seed], data=["src/seal/samples/passages.json"],
                                       wall_s=summary["wall_s"])
        atomic_write_json(args.json, summary)
    if not args.keep and not args.work_dir:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["ok"] else 1


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3:])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-dir", help="a saved model to use (built there if the dir has no config.json)")
    p.add_argument("--work-dir", help="where REF, RUN and the logs go (default: a temp dir, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the temp work dir")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--contexts", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20, help="inner_loop.epochs (20: training is about half of "
                   "a run's work after start-up, so many kills land mid-pass)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="self_edit.max_new_tokens (at 24 the tiny "
                   "model's self-edits are nearly all unusable, so nothing would be trained)")
    p.add_argument("--threads", type=int, default=1, help="model.threads of every run")
    p.add_argument("--real-grader", action="store_true", help="keep the lexical grader (rewards all 0)")
    p.add_argument("--json", help="also write the summary, with a manifest, to this file")
    return soak(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
