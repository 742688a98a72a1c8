"""``seal rollback``, ``seal forget`` and ``seal eval forgetting``: the continual-learning commands (thin layer).

    seal rollback 3                                   # make version 3's weights current again (a new version)
    seal forget notes.txt                             # rebuild the store without that document
    seal eval forgetting --data squad_dev.json --offset 1500 --sequence 8 --strategy merge \\
        --json forgetting.json --plot forgetting.png  # the retention matrix (the paper's Figure 6)

Wired into ``seal`` by ``register(app, eval_app)`` (see ``seal.cli``); registering twice is harmless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from seal import cli_common as cli
from seal.cli_common import DEFAULT_STORE, ConfigOpt, ModelOpt, SetOpt, StoreOpt


def rollback(version: Annotated[int, typer.Argument(help="The version whose weights to restore.")],
             store: StoreOpt = Path(DEFAULT_STORE)) -> None:
    """Make an earlier version's weights current again (as a new version; nothing is deleted)."""
    from seal.learning import rollback as do_rollback
    from seal.store import Store

    with Store.open(store) as st:
        v = do_rollback(st, version)
    cli.out.print(f"rolled back to version {version} -> store version {v.id}", highlight=False)


def forget(document: Annotated[str, typer.Argument(help="Document name (as learned) or id (see `seal history`).")],
           store: StoreOpt = Path(DEFAULT_STORE), config: ConfigOpt = None, set_: SetOpt = None,
           model: ModelOpt = None) -> None:
    """Remove a document's contribution: rebuild the store's weights from the remaining documents' stored
    self-edits (same seeds, same order), as one new version."""
    from seal.learning import config_for_store
    from seal.learning import forget as do_forget
    from seal.store import Store

    cfg = cli.make_config(config, set_, model)
    with Store.open(store, base_model=cfg.model.name) as st:
        st.find_document(document)  # fail fast, before loading the model
        s = cli.load_seal(config_for_store(cfg, st), slots=2)
        with cli.progress_bar() as bar:
            tasks: dict[str, int] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task({"train": "LoRA training", "documents": "documents"}.get(stage, stage),
                                                total=total)
                bar.update(tasks[stage], completed=done, total=total)

            report = do_forget(s, st, document, progress=tick)
    cli.out.print(f"forgot [bold]{escape(report.document)}[/bold]: rebuilt from {report.remaining} remaining "
                  f"document(s), {report.sequences} sequences, {report.seconds:.0f} s -> store version "
                  f"{report.version}", highlight=False)


def eval_forgetting(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option(help="SQuAD-format JSON (default: seal's invented sample "
                                                   "passages).")] = None,
    sequence: Annotated[int, typer.Option(help="Number of passages learned one after another.")] = 8,
    offset: Annotated[int, typer.Option(help="Skip this many passages first.")] = 0,
    strategy: Annotated[str, typer.Option(help="merge (the paper's) | accumulate | replay | routed")] = "merge",
    fmt: Annotated[str | None, typer.Option("--format", help="Self-edit: rewrite | implications | self-qa | passage "
                                                     "(default: the config's self_edit.format)")] = None,
    guard: Annotated[bool, typer.Option("--guard/--no-guard", help="Check earlier passages' probe questions "
                                                                   "after each update; retry with replay, "
                                                                   "else reject.")] = False,
    guard_threshold: Annotated[float, typer.Option(help="Largest allowed drop of probe accuracy.")] = 0.2,
    replay_ratio: Annotated[float, typer.Option(help="Replay: earlier sequences per new sequence.")] = 1.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the matrix and figures as JSON here.")]
    = None,
    plot: Annotated[Path | None, typer.Option(help="Write the retention heatmap (PNG) here.")] = None,
    seed: int = 0, config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None,
) -> None:
    """Catastrophic forgetting: learn N passages in sequence; after each, evaluate every passage seen so far."""
    import time

    from seal.continual import STRATEGIES, evaluate_forgetting
    from seal.domains.knowledge import load_passages
    from seal.io import atomic_write_json
    from seal.manifest import manifest
    from seal.report import retention_heatmap

    t0 = time.perf_counter()
    if strategy not in STRATEGIES:
        cli.fail(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if sequence < 1:
        cli.fail("--sequence must be >= 1")
    if guard and strategy == "routed":
        cli.fail("--guard does not apply to --strategy routed (learning a passage changes no earlier adapter)")
    if not 0 <= guard_threshold <= 1 or replay_ratio < 0:
        cli.fail("--guard-threshold must be in [0, 1] and --replay-ratio >= 0")
    cfg = cli.make_config(config, set_, model)
    cfg = cfg.override([f"self_edit.format={fmt}"]) if fmt else cfg
    data = data or cli.SAMPLES
    passages = load_passages(data)[offset:offset + sequence]
    if not passages:
        cli.fail(f"no passages in {data} at offset {offset}")
    s = cli.load_seal(cfg, slots=2)
    with cli.progress_bar() as bar:
        tasks: dict[str, int] = {}

        def tick(stage: str, done: int, total: int) -> None:
            key = "train" if stage.startswith("train") else stage
            if key not in tasks:
                tasks[key] = bar.add_task(stage, total=total)
            bar.update(tasks[key], completed=done, total=total, description=stage)
            if stage == "steps" and not cli.err.is_terminal:  # a log file: one plain line per step
                cli.err.print(f"forgetting ({strategy}): step {done}/{total} learned and evaluated, "
                              f"{time.perf_counter() - t0:.0f} s", highlight=False, markup=False)

        result = evaluate_forgetting(s, passages, strategy, fmt, guard=guard, guard_threshold=guard_threshold,
                                     replay_ratio=replay_ratio, seed=seed, progress=tick)
    d = result.as_dict()
    d["data"], d["offset"] = str(data), offset
    n = len(passages)
    table = Table("model", *[str(j + 1) for j in range(n)],
                  title=f"accuracy on each passage (questions without the passage), strategy {strategy}"
                        f"{' + guard' if guard else ''}")
    table.add_row("base", *[f"{b:.2f}" for b in result.base])
    for i, row in enumerate(result.matrix):
        st = result.steps[i]["status"]
        table.add_row(f"after {i + 1}" + ("" if st == "learned" else f" ({st})"),
                      *["" if v is None else f"{v:.2f}" for v in row])
    cli.out.print(table)
    sm = result.summary()

    def f(x):
        return "-" if x is None else f"{x:.3f}"

    def ci(key):
        v = sm.get(f"{key}_ci95")
        return f" [{v[0]:.3f}, {v[1]:.3f}]" if v else ""

    cli.out.print(f"right after learning (diagonal mean) {f(sm['diagonal_mean'])}{ci('diagonal')}   after all {n} "
                  f"(last row mean) {f(sm['final_mean'])}{ci('final')}   forgetting {f(sm['forgetting'])}"
                  f"{ci('forgetting')}   unedited base {f(sm['base_mean'])}   ({result.wall_s:.0f} s; 95 % bootstrap "
                  f"intervals over passages)", highlight=False)
    if sm.get("latency_s") is not None:
        cli.out.print(f"answer latency: {sm['answer_s_per_question']:.3f} s per question in the last evaluation, "
                      f"{sm['latency_s']:.3f} s for one question alone (median of {sm['latency_questions']})",
                      highlight=False)
    if "routing_accuracy" in sm:
        cli.out.print(f"routing: {sm['routing_accuracy']:.3f} of {sm['routing_questions']} questions routed to their "
                      f"own passage (last evaluation {f(sm['routing_accuracy_final'])}); adapter cache "
                      f"{sm['cache']}", highlight=False)
    if guard:
        retried = sum(st["guard"]["retried"] for st in result.steps)
        rejected = sum(st["status"] == "rejected" for st in result.steps)
        cli.out.print(f"guard: {retried} update(s) retried with replay, {rejected} rejected", highlight=False)
    if json_out is not None:
        d["manifest"] = manifest(command=cli.command_line(ctx), config=cfg.to_dict(), seeds=[seed],
                                 data=[f"{Path(data).resolve()}[{offset}:{offset + sequence}]"],
                                 wall_s=time.perf_counter() - t0, passage_ids=[p.id for p in passages])
        atomic_write_json(json_out, d)
    if plot is not None:
        retention_heatmap(d, plot)


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add ``rollback``, ``forget`` and ``eval forgetting`` (idempotent)."""
    if getattr(app, "_seal_continual", False):
        return
    app.command("rollback")(rollback)
    app.command("forget")(forget)
    eval_app.command("forgetting")(eval_forgetting)
    app._seal_continual = True
