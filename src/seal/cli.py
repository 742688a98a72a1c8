"""The ``seal`` command: learn a document, ask, evaluate, train, benchmark. A thin layer over the library.

    seal demo                                   # learn a sample passage, show answers before/after
    seal learn notes.txt --store ./seal-store   # self-edit + LoRA into a persistent, versioned store
    seal ask "Who founded the Verdant Guild?"
    seal eval knowledge --data squad_dev.json --limit 10 --json results.json
    seal train knowledge --data squad_dev.json --rounds 2 --contexts 8 --samples 4 --out runs/r1

Every command takes ``--config FILE.toml`` and ``--set section.key=value`` overrides (see ``seal.config``).
Errors are one line on stderr and a non-zero exit; nothing is half-written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

import seal  # (also sets thread-friendly defaults before torch loads)
from seal.cli_arc import register as register_arc
from seal.cli_common import (
    DEFAULT_STORE,
    SAMPLES,
    ConfigOpt,
    ExecutorOpt,
    ModelOpt,
    RayAddressOpt,
    SetOpt,
    StoreOpt,
    WorkersOpt,
    command_line,
    err,
    fail,
    load_seal,
    log_progress,
    make_config,
    open_executor,
    out,
    progress_bar,
    run_app,
)
from seal.cli_continual import register as register_continual
from seal.cli_domains import register as register_domains
from seal.cli_export import register as register_export
from seal.cli_serve import register as register_serve
from seal.manifest import record_start

app = typer.Typer(add_completion=False, no_args_is_help=True, help="SEAL: a language model that learns by "
                  "writing its own fine-tuning data.")
eval_app = typer.Typer(help="Evaluate self-edit methods and trained policies.")
train_app = typer.Typer(help="Train the self-edit policy with ReST-EM.")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
register_arc(eval_app, train_app)
register_domains(eval_app, train_app)


def main() -> None:
    run_app(app)


def _version(value: bool) -> None:
    if value:
        out.print(f"seal {seal.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """SEAL: a language model that learns by writing its own fine-tuning data."""
    record_start()


# --------------------------------------------------------------------------- learn / ask
@app.command()
def learn(path: Path, store: StoreOpt = Path(DEFAULT_STORE),
          fmt: Annotated[str | None, typer.Option("--format", help="rewrite | implications | self-qa | passage "
                                                  "(default: the config's self_edit.format)")] = None,
          max_bytes: Annotated[int, typer.Option(help="Refuse larger documents.")] = 256 * 1024,
          strategy: Annotated[str | None, typer.Option(
              help="merge | accumulate | replay | routed (default: the store's; accumulate for a new store)")]
          = None,
          group_size: Annotated[int | None, typer.Option(
              help="routed: documents per adapter (default routing.group_size = 1; fixed by a store's first learn)")]
          = None,
          guard: Annotated[bool, typer.Option("--guard/--no-guard", help="Reject the update if earlier documents' "
                                              "probe answers get worse (after one retry with replay).")] = False,
          guard_threshold: Annotated[float, typer.Option(help="Largest allowed drop in probe accuracy.")] = 0.2,
          seed: int = 0, config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None) -> None:
    """Learn a UTF-8 text document: the model writes self-edits and trains the store's adapter on them."""
    from seal.documents import read_document
    from seal.learning import config_for_store
    from seal.learning import learn as do_learn
    from seal.store import Store

    cfg = make_config(config, set_, model)
    cfg = cfg.override([f"self_edit.format={fmt}"]) if fmt else cfg
    if group_size is not None:
        cfg = cfg.override([f"routing.group_size={group_size}"])
    fmt = cfg.self_edit.format
    read_document(path, max_bytes=max_bytes)  # fail fast, before any store or model work
    with Store.open(store, create=True, base_model=cfg.model.name) as st:
        cfg = config_for_store(cfg, st)
        s = load_seal(cfg)
        with progress_bar() as bar:
            tasks: dict[str, int] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task({"write": "writing self-edits", "train": "LoRA training"}[stage],
                                                total=total)
                bar.update(tasks[stage], completed=done)

            report = do_learn(s, st, path, fmt, max_bytes=max_bytes, seed=seed, progress=tick, strategy=strategy,
                              guard=guard, guard_threshold=guard_threshold)
    out.print(f"learned [bold]{escape(report.document)}[/bold]: {report.passages} passage(s), {report.sequences} training "
              f"sequences, final loss {report.final_loss:.3f}, {report.seconds:.0f} s -> store version "
              f"{report.version}", highlight=False)
    if report.guard.get("retried"):
        out.print(f"guard: probe accuracy {report.guard['before']:.2f} -> {report.guard['after']:.2f}; retried with "
                  f"{report.replayed} replayed sequences -> {report.guard['after_retry']:.2f}", highlight=False)
    if report.fallbacks:
        out.print(f"note: {report.fallbacks} self-edit(s) were unusable; those passages were learned as written")


@app.command()
def ask(question: str, store: StoreOpt = Path(DEFAULT_STORE),
        max_tokens: Annotated[int, typer.Option(help="Answer length budget.")] = 64,
        explain: Annotated[bool, typer.Option("--explain", help="Say which document's adapter answered (routed "
                                                               "stores: the router's score and coverage).")] = False,
        config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None) -> None:
    """Answer a question with what the store has learned (the base model if the store is empty)."""
    from seal.learning import ask_explained, config_for_store
    from seal.store import Store

    if not question.strip():
        fail("the question is empty: ask something")
    cfg = make_config(config, set_, model)
    st = Store.open(store, base_model=cfg.model.name) if (Path(store) / "seal-store.sqlite").exists() else None
    if st is None and Path(store).exists() and any(Path(store).iterdir()):
        Store.open(store)  # raises the clear "not a seal store" error
    try:
        if st is not None:
            cfg = config_for_store(cfg, st)
        s = load_seal(cfg)
        [answer], [why] = ask_explained(s, st, [question], max_new_tokens=max_tokens)
        out.print(answer, markup=False, highlight=False)
        if explain:
            out.print(explanation(st, why), markup=False, highlight=False)
    finally:
        if st is not None:
            st.close()


def explanation(store, why: dict | None) -> str:
    """One line on who answered: the routed document and the router's figures, or the store's one adapter."""
    if store is None:
        return "answered by: the base model (no store)"
    if why is None:
        from seal.learning import store_state

        state = store_state(store)
        v = state.version.id if state.version is not None else 0
        return (f"answered by: store version {v} ({state.strategy}: one adapter for every question)" if v
                else "answered by: the base model (the store is empty)")
    best = store.find_document(why["best"]).name if why["best"] is not None else None
    if why["document"] is None:
        return (f"answered by: the base model (best match {best!r}: coverage {why['coverage']:.2f} under the "
                f"threshold, BM25 {why['score']:.2f})" if best else "answered by: the base model (no document matches)")
    return (f"answered by: document {best!r} (id {why['document']}), BM25 {why['score']:.2f}, coverage "
            f"{why['coverage']:.2f}")


@app.command()
def history(store: StoreOpt = Path(DEFAULT_STORE)) -> None:
    """List the store's versions (newest last)."""
    from seal.store import Store

    with Store.open(store) as st:
        docs = {d.id: d.name for d in st.documents(include_removed=True)}
        cur = st.current_version()
        table = Table("version", "kind", "document", "created", "final loss")
        for v in st.history():
            mark = " *" if cur and v.id == cur.id else ""
            loss = v.metrics.get("final_loss")
            table.add_row(f"{v.id}{mark}", v.kind, docs.get(v.document_id, "-"), v.created_at,
                          f"{loss:.3f}" if isinstance(loss, float) else "-")
        out.print(table)


DEMO = "seal demo"


@app.command()
def demo(passage: Annotated[int, typer.Option(help="Which sample passage (0-3).")] = 0,
         fmt: Annotated[str | None, typer.Option("--format", help="Default: the config's self_edit.format.")]
         = None,
         store: Annotated[Path, typer.Option(help="Store for the demo.")] = Path("seal-demo-store"),
         config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None) -> None:
    """Learn a built-in invented passage and show answers to its questions before and after. The store is made
    anew each time: a store an earlier `seal demo` made is replaced; any other existing path is refused."""
    import tempfile

    from seal.domains.knowledge import load_passages
    from seal.grading import LexicalGrader
    from seal.learning import ask as do_ask
    from seal.learning import learn as do_learn
    from seal.store import Store, discard_store

    cfg = make_config(config, set_, model)
    fmt = fmt or cfg.self_edit.format
    samples = load_passages(SAMPLES)
    if not 0 <= passage < len(samples):
        fail(f"--passage must be between 0 and {len(samples) - 1}, not {passage}")
    p = samples[passage]
    discard_store(store, made_by=DEMO)  # before any model work; refuses anything the demo did not make
    s = load_seal(cfg)
    questions = [q.question for q in p.questions]
    prompts = [f"Topic: {p.title}\n{q}" for q in questions]
    before = do_ask(s, None, prompts, max_new_tokens=cfg.eval.answer_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        doc = Path(tmp) / "passage.txt"
        doc.write_text(f"{p.title}\n\n{p.context}\n", encoding="utf-8")
        out.print(f"[bold]{escape(p.title)}[/bold]\n{escape(p.context)}\n", highlight=False)
        with Store.open(store, create=True, base_model=cfg.model.name) as st:
            st.mark_made_by(DEMO)
            with err.status("writing a self-edit and training on it ..."):
                report = do_learn(s, st, doc, fmt)
            out.print("[bold]self-edit written by the model:[/bold]\n" + escape(report.self_edits[0]) + "\n",
                      highlight=False)
            after = do_ask(s, st, prompts, max_new_tokens=cfg.eval.answer_tokens)
    grade = LexicalGrader(cfg.eval.f1_threshold)
    table = Table("question", "gold", "before", "after", title="answers without the passage in the prompt")
    nb = na = 0
    for q, b, a in zip(p.questions, before, after, strict=True):
        gb, ga = grade.grade(b, q.answer), grade.grade(a, q.answer)
        nb, na = nb + gb, na + ga
        table.add_row(escape(q.question), escape(q.answer), ("[green]" if gb else "[red]") + escape(b),
                      ("[green]" if ga else "[red]") + escape(a))
    out.print(table)
    out.print(f"correct before: {nb}/{len(questions)}   after: {na}/{len(questions)}   "
              f"({report.seconds:.0f} s to write the self-edit and learn it; store: {store})")


# --------------------------------------------------------------------------- eval
@eval_app.command("knowledge")
def eval_knowledge(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="SQuAD-format JSON (default: seal's invented sample passages).")] = SAMPLES,
    limit: Annotated[int, typer.Option(help="Number of passages.")] = 10,
    offset: Annotated[int, typer.Option(help="Skip this many passages first.")] = 0,
    methods: Annotated[str, typer.Option(help="Comma-separated: base,passage-in-prompt,passage,implications,"
                                              "rewrite,self-qa")]
    = "base,passage-in-prompt,passage,implications,rewrite,self-qa",
    seeds: Annotated[int, typer.Option(help="Seeds --seed, --seed+1, ...: self-edit sampling and adapter init "
                                            "(single mode); intervals resample passages with all their seeds.")]
    = 1,
    mode: Annotated[str, typer.Option(help="single (one adapter per passage) | cpt (one adapter for all)")]
    = "single",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures (with a manifest) here.")]
    = None,
    log: Annotated[Path | None, typer.Option(help="Per-passage JSONL log (answers, self-edits).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write an accuracy bar chart (PNG) here.")] = None,
    policy: Annotated[list[Path] | None, typer.Option(
        help="ReST-EM RUN_DIR or RUN_DIR/round-N (repeatable): adds 'SEAL <name>' methods, each "
        "writing the self-edit format its run trained (compared to that format's untrained row).")] = None,
    teacher_url: Annotated[str, typer.Option(help="OpenAI-compatible URL of a teacher model.")] = "",
    teacher_model: Annotated[str, typer.Option(help="Teacher model name: adds the 'teacher' method.")] = "",
    teacher_key: Annotated[str, typer.Option(
        help="API key for the teacher only (better: env SEAL_TEACHER_KEY); never saved.")] = "",
    grader: Annotated[str | None, typer.Option(help="lexical (default) | judge")] = None,
    judge_url: Annotated[str, typer.Option(help="OpenAI-compatible URL of the judge (env SEAL_JUDGE_URL).")] = "",
    judge_model: Annotated[str, typer.Option(help="Judge model name (env SEAL_JUDGE_MODEL).")] = "",
    judge_key: Annotated[str, typer.Option(
        help="API key for the judge only (better: env SEAL_JUDGE_KEY); never saved.")] = "",
    executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None, workers: WorkersOpt = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Single mode: rerun only the passes an interrupted run "
                                                          "with the same --json and settings did not save.")]
    = False,
    seed: int = 0, config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None,
) -> None:
    """The paper's knowledge protocol: self-edit, LoRA, questions without the passage; accuracy per method."""
    import time

    from seal.domains.knowledge import load_passages
    from seal.evaluate import BASELINE_METHODS, evaluate_knowledge, evaluate_knowledge_cpt
    from seal.io import atomic_write_json
    from seal.knowledge_report import markdown_table, tag_rows, training_tag
    from seal.manifest import file_sha256, manifest

    t0 = time.perf_counter()
    if mode not in ("single", "cpt"):
        fail(f"--mode must be single or cpt, not {mode!r}")
    if not 1 <= seeds <= 100 or (seeds > 1 and mode != "single"):
        fail("--seeds must be in 1..100 (and 1 with --mode cpt)")
    if resume and (json_out is None or mode != "single"):
        fail("--resume needs --json (its passes are saved beside it) and --mode single")
    sets = list(set_ or [])
    sets += [f"eval.grader={grader}"] if grader else []
    sets += [f"eval.judge_url={json.dumps(judge_url)}"] if judge_url else []
    sets += [f"eval.judge_model={json.dumps(judge_model)}"] if judge_model else []
    cfg = make_config(config, sets, model)
    if cfg.eval.self_edits > 1 and mode != "single":
        fail("eval.self_edits applies to --mode single (cpt trains one adapter on all passages' self-edits)")
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    bad = [m for m in method_list if m not in BASELINE_METHODS]
    if bad:
        fail(f"unknown method(s): {', '.join(bad)} (choose from {', '.join(BASELINE_METHODS)}; "
             "add --policy RUN_DIR or --teacher-url/--teacher-model for the trained and teacher rows)")
    passages = load_passages(data)[offset:offset + limit]
    if not passages:
        fail(f"no passages in {data} at offset {offset}")
    writers = {}
    if teacher_url or teacher_model:
        from seal.teacher import TeacherWriter

        writers["teacher"] = TeacherWriter(teacher_url, teacher_model, api_key=teacher_key)
        method_list.append("teacher")
    judge = None
    if cfg.eval.grader == "judge":  # built here, before the model loads: the key is not part of cfg
        from seal.grading import make_grader

        judge = make_grader("judge", url=cfg.eval.judge_url, model=cfg.eval.judge_model, api_key=judge_key)
    from seal.domains.base import reward_rule
    from seal.domains.knowledge import KnowledgeDomain
    from seal.rest_em import policy_format, policy_reward, policy_training

    trained_on = [policy_format(path) or "implications" for path in policy or []]  # before the model loads
    # a run trained with another reward than the one `auto` gives knowledge says so in its row's name
    default_reward = reward_rule("auto", KnowledgeDomain())
    rewards = [r if (r := policy_reward(path)) != default_reward else None for path in policy or []]
    # ... and one whose rewards were measured with another update (e.g. inner_loop.epochs=5) says which
    trainings = [f"rewarded at {t}" if (t := policy_training(path)) else None for path in policy or []]
    s = load_seal(cfg, grader=judge)
    policies: dict[str, int] = {}
    policy_formats: dict[str, str] = {}
    policy_sha256: dict[str, str] = {}  # which weights each policy row used, in the manifest
    if policy:
        from seal.rest_em import load_policy

        for slot, (path, fmt, reward, how) in enumerate(zip(policy, trained_on, rewards, trainings, strict=True)):
            loaded = load_policy(s, path, slot=slot)
            policy_sha256[str(path)] = file_sha256(loaded / "adapter_model.safetensors")
            name = f"SEAL {loaded.parent.name}" if loaded.name == "policy" else f"SEAL {loaded.name}"
            tags = ", ".join(t for t in (None if fmt == "implications" else fmt, reward, how) if t)
            name = f"{name} ({tags})" if tags else name
            name = name if name not in policies else f"{name} ({slot})"
            policies[name], policy_formats[name] = slot, fmt
            method_list.append(name)
    run = evaluate_knowledge if mode == "single" else evaluate_knowledge_cpt
    if executor != "local" and mode != "single":
        fail("--executor ray applies to --mode single (cpt trains one adapter per method)")
    ex = None
    if executor != "local" or ray_address or workers:
        from seal.domains.knowledge import KnowledgeDomain

        ex = open_executor(executor, s, KnowledgeDomain.from_config(cfg), ray_address, workers)
    extra = {"log_path": log, "seeds": list(range(seed, seed + seeds)), "executor": ex} if mode == "single" else {}
    data_id = f"{Path(data).resolve()}[{offset}:{offset + limit}]"
    checkpoint = None
    if json_out is not None and mode == "single":  # every finished pass saved: a kill loses one pass at most
        from seal.eval_checkpoint import CheckpointMismatch, PassCheckpoint, checkpoint_dir

        key = {"config": cfg.to_dict(), "methods": method_list, "data": data_id,
               "passages": [p.id for p in passages], "seeds": extra["seeds"], "policy_sha256": policy_sha256,
               "teacher": teacher_model}
        try:
            checkpoint = extra["checkpoint"] = PassCheckpoint(checkpoint_dir(json_out), key, resume=resume)
        except (CheckpointMismatch, OSError) as exc:
            fail(str(exc))
        if resume:
            err.print(f"resuming: {checkpoint.saved_passes()} finished pass(es) in {checkpoint.folder}",
                      highlight=False, markup=False)
            if log is not None:
                log.unlink(missing_ok=True)  # rebuilt whole from the saved passes and the new ones
    try:
        with progress_bar() as bar:
            what = "passages" if mode == "single" else "passages written, LoRA steps, answers"
            task = bar.add_task(what, total=len(passages))
            result = run(s, passages, method_list, seed=seed, policies=policies, policy_formats=policy_formats,
                         writers=writers,
                         progress=lambda d, t: bar.update(task, completed=d, total=t), **extra)
    finally:
        if ex is not None:
            ex.close()
    # e.g. "rewrite ×3", "passage [epochs 5]": never pooled with the default run's row of that name (cpt has
    # refused eval.self_edits > 1 above; its rows are named by their update settings too)
    tag_rows(result, cfg.eval.self_edits, training_tag(cfg))
    out.print(escape(markdown_table(result)), highlight=False)  # "[epochs 5]" is no Rich markup
    out.print(f"\n{result.passages} passages ({mode}) x {len(result.seeds)} seed(s), {result.wall_s:.0f} s; "
              "intervals: 95 % bootstrap over passages", highlight=False)
    d = result.as_dict()
    if json_out is not None:
        d["manifest"] = manifest(command=command_line(ctx), config=cfg.to_dict(), seeds=result.seeds,
                                 data=[data_id], wall_s=time.perf_counter() - t0 + (checkpoint.saved_s if checkpoint else 0.0),
                                 passage_ids=result.passage_ids, mode=mode,
                                 policies=[str(p) for p in policy or []], policy_sha256=policy_sha256,
                                 **({"resumed_s": checkpoint.saved_s} if checkpoint and checkpoint.saved_s else {}))
        atomic_write_json(json_out, d)
        if checkpoint is not None:
            checkpoint.remove()
    if plot is not None:
        from seal.results import knowledge_plot

        knowledge_plot(d, plot, mode)


# --------------------------------------------------------------------------- train
@train_app.command("knowledge")
def train_knowledge(
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory (config, logs, policy adapters).")],
    data: Annotated[Path, typer.Option(help="SQuAD-format JSON with the training passages.")] = SAMPLES,
    rounds: Annotated[int | None, typer.Option(help="ReST-EM rounds.")] = None,
    contexts: Annotated[int | None, typer.Option(help="Fresh contexts per round.")] = None,
    samples: Annotated[int | None, typer.Option(help="Self-edits sampled per context.")] = None,
    repeats: Annotated[int | None, typer.Option(help="Inner-loop seeds per self-edit.")] = None,
    offset: Annotated[int, typer.Option(help="Use passages from this index on (keep eval passages apart).")] = 0,
    limit: Annotated[int | None, typer.Option(help="Use at most this many passages.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None, workers: WorkersOpt = 0,
    config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None,
) -> None:
    """ReST-EM: sample self-edits, reward them by the inner loop, SFT the policy on the winners; repeat."""
    from seal.domains.knowledge import KnowledgeDomain, load_passages
    from seal.report import write_run_report
    from seal.rest_em import train_knowledge as run

    sets = list(set_ or [])
    for key, val in (("rounds", rounds), ("contexts", contexts), ("samples", samples), ("repeats", repeats)):
        if val is not None:
            sets.append(f"rest_em.{key}={val}")
    cfg = make_config(config, sets, model)
    passages = load_passages(data)[offset:None if limit is None else offset + limit]
    s = load_seal(cfg, slots=1 + cfg.rest_em.samples * cfg.rest_em.repeats)
    dom = KnowledgeDomain.from_config(cfg)
    ex = open_executor(executor, s, dom, ray_address, workers)
    try:
        with err.status("ReST-EM ...") as status:
            summary = run(s, passages, out_dir, resume=resume, data_source=f"{Path(data).resolve()}[{offset}:{limit}]",
                          progress=lambda msg: log_progress(status, msg), executor=ex, domain=dom)
    finally:
        ex.close()
    report = write_run_report(out_dir)
    for r in summary["rounds"]:
        out.print(f"round {r['round']}: mean reward {r['mean_reward']:+.3f} (std {r['std_reward']:.3f}), "
                  f"{r['selected']} self-edits kept, {r['wall_s']:.0f} s", highlight=False)
    out.print(f"report: {report}", highlight=False)


# --------------------------------------------------------------------------- bench
@app.command()
def bench(
    contexts: Annotated[int, typer.Option(help="Passages (contexts).")] = 4,
    k: Annotated[int, typer.Option(help="Self-edit candidates per context.")] = 5,
    repeats: Annotated[int, typer.Option(help="Timing repeats (medians are reported).")] = 1,
    data: Annotated[Path | None, typer.Option(help="SQuAD-format JSON (default: ../shared squad or samples).")]
    = None,
    reference: Annotated[bool, typer.Option(help="Also time the (very slow) reference procedure.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the JSON here.")] = None,
    config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None,
) -> None:
    """Benchmark the inner loop (reference vs one at a time vs K candidates) and print JSON."""
    from seal.benchmark import run
    from seal.io import atomic_write_json

    cfg = make_config(config, set_, model)
    result = run(contexts, k, repeats, 0, data, cfg, reference=reference)
    out.print_json(data=result)
    if json_out is not None:
        atomic_write_json(json_out, result)


register_continual(app, eval_app)
register_export(app)
register_serve(app)

if __name__ == "__main__":  # pragma: no cover
    main()
