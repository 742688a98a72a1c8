"""``seal eval arc`` and ``seal train arc``: the ARC protocol and ReST-EM from the command line (thin layer).

    seal eval arc --easy 6 --json arc.json                       # ICL, TTT + self-edit (no RL), oracle
    seal train arc --easy 6 --rounds 1 --samples 3 --out runs/arc1
    seal eval arc --easy 6 --policy runs/arc1 --rows seal        # the RL-trained policy
    seal eval arc --data /path/to/arc --split evaluation --limit 3 --rows icl,oracle

``--easy N`` uses the easy demo set (``seal.domains.arc.easy``: ARC format, simple rules, small grids; NOT
ARC): evaluation uses ``--easy-seed 0``, training ``--easy-seed 1`` by default, so they are different tasks.
``--data DIR`` reads the standard ``*challenges*.json`` + ``*solutions*.json`` of a split.
ARC knobs (``seal.domains.arc.ttt.ArcConfig``) are set with ``--set arc.key=value`` or an ``[arc]`` table
in ``--config``. Wired into ``seal`` by ``register(eval_app, train_app)`` (see ``seal.cli``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from seal.cli_common import err, fail, load_seal, log_progress, out, progress_bar

DataOpt = Annotated[Path | None, typer.Option("--data", help="Directory with *challenges*.json + *solutions*.json.")]
SplitOpt = Annotated[str, typer.Option("--split", help="training | evaluation (with --data).")]
EasyOpt = Annotated[int | None, typer.Option("--easy", help="Use N tasks of the easy demo set (not ARC).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="At most this many tasks.")]
OffsetOpt = Annotated[int, typer.Option("--offset", help="Skip this many tasks first.")]
MaxSideOpt = Annotated[int, typer.Option("--easy-max-side", help="Largest grid side of easy tasks.")]
DemosOpt = Annotated[int, typer.Option("--easy-demos", help="Demonstrations per easy task.")]
ModeOpt = Annotated[str | None, typer.Option("--self-edit", help="constrained (default) | free: how the model "
                                                                 "writes its JSON self-edit.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML/JSON config file (may have an \\[arc] "
                                                                 "table).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override, e.g. inner_loop.lr=1e-3 or "
                                                               "arc.max_examples=16.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="HF id/path or .gguf (default: embedded "
                                                                "SmolLM2-135M-Instruct).")]


def make_configs(config: Path | None, sets: list[str] | None, model: str | None, mode: str | None = None,
                 extra_arc: dict | None = None):
    """(SealConfig, ArcConfig) from a file, ``--set`` overrides (``arc.*`` for the ARC knobs) and options."""
    from seal.config import ConfigError

    try:
        return _make_configs(config, sets, model, mode, extra_arc)
    except (ConfigError, TypeError) as exc:
        fail(f"configuration: {exc}")


def _make_configs(config, sets, model, mode, extra_arc):
    from seal.config import ConfigError, SealConfig, read_config_file
    from seal.domains.arc.ttt import ArcConfig

    data = read_config_file(config) if config is not None else {}
    arc = dict(data.pop("arc", {}) or {})
    cfg = SealConfig.from_dict(data)
    overrides = []
    for item in sets or []:
        key, _, raw = item.partition("=")
        if key.startswith("arc."):
            if not raw:
                raise ConfigError(f"override {item!r} must look like arc.key=value")
            try:
                arc[key[4:]] = json.loads(raw)
            except json.JSONDecodeError:
                arc[key[4:]] = raw
        else:
            overrides.append(item)
    if model:
        overrides.append(f"model.name={json.dumps(model)}")
    if overrides:
        cfg = cfg.override(overrides)
    if mode is not None:
        arc["self_edit_mode"] = mode
    arc.update(extra_arc or {})
    return cfg, ArcConfig.from_dict(arc)


def select_tasks(data: Path | None, split: str, easy: int | None, easy_seed: int, max_side: int, demos: int,
                 limit: int | None, offset: int):
    from seal.arc_loop import easy_tasks, load_arc_dir

    if (data is None) == (easy is None):
        fail("give exactly one of --data DIR or --easy N")
    if split not in ("training", "evaluation"):
        fail(f"--split must be training or evaluation, got {split!r}")
    try:
        tasks = easy_tasks(easy, easy_seed, max_side, demos) if easy is not None else load_arc_dir(data, split)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    tasks = tasks[offset:offset + limit if limit is not None else None]
    if not tasks:
        fail("no tasks selected")
    return tasks


def eval_arc(
    ctx: typer.Context,
    data: DataOpt = None, split: SplitOpt = "evaluation", easy: EasyOpt = None, limit: LimitOpt = None,
    offset: OffsetOpt = 0,
    rows: Annotated[str | None, typer.Option(help="Comma-separated rows: icl,ttt_self_edit,seal,oracle "
                                                  "(default: all; seal only with --policy).")] = None,
    samples: Annotated[int, typer.Option(help="Self-edits sampled per task for the self-edit rows.")] = 1,
    policy: Annotated[Path | None, typer.Option(help="ReST-EM run dir (or round dir): adds the 'seal' row.")]
    = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures (rows, and a manifest) as "
                                                               "JSON here.")] = None,
    log: Annotated[Path | None, typer.Option(help="Per-task JSONL log (answers, self-edits, rewards).")] = None,
    oracle_configs: Annotated[int | None, typer.Option(help="Cap on the oracle's configuration grid.")] = None,
    easy_seed: Annotated[int, typer.Option(help="Seed of the easy tasks (train arc uses 1).")] = 0,
    easy_max_side: MaxSideOpt = 3, easy_demos: DemosOpt = 5, self_edit: ModeOpt = None, seed: int = 0,
    config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None,
) -> None:
    """The paper's ARC table: ICL, TTT + self-edit (no RL), SEAL (with --policy), oracle TTT."""
    import time

    from seal.arc_loop import POLICY_SLOT, ROWS, ArcRunError, evaluate_arc, load_policy, markdown_table
    from seal.cli_common import command_line
    from seal.io import atomic_write_json
    from seal.manifest import manifest

    t0 = time.perf_counter()
    extra = {"oracle_max_configs": oracle_configs} if oracle_configs is not None else {}
    cfg, arc = make_configs(config, set_, model, self_edit, extra)
    row_list = [r.strip() for r in rows.split(",") if r.strip()] if rows else \
        [r for r in ROWS if r != "seal" or policy is not None]
    if policy is not None and "seal" not in row_list:
        row_list.append("seal")
    bad = [r for r in row_list if r not in ROWS]
    if bad:
        fail(f"unknown row(s) {', '.join(bad)}; choose from {', '.join(ROWS)}")
    if "seal" in row_list and policy is None:
        fail("row 'seal' needs --policy RUN_DIR (from `seal train arc`)")
    if samples < 1:
        fail("--samples must be >= 1")
    tasks = select_tasks(data, split, easy, easy_seed, easy_max_side, easy_demos, limit, offset)
    s = load_seal(cfg, slots=1 + arc.slots)
    try:
        if policy is not None:
            load_policy(s, policy, POLICY_SLOT)
        with progress_bar() as bar:
            t = bar.add_task("tasks", total=len(tasks))
            result = evaluate_arc(s, tasks, row_list, arc, samples=samples, seed=seed,
                                  policy_slot=POLICY_SLOT if policy is not None else None, log_path=log,
                                  progress=lambda d, n: bar.update(t, completed=d))
    except ArcRunError as exc:
        fail(str(exc))
    out.print(markdown_table(result), highlight=False)
    source = f"easy demo set (not ARC), seed {easy_seed}" if easy is not None else f"{data} ({split})"
    out.print(f"\n{len(tasks)} tasks from {source}; self-edits: {arc.self_edit_mode}; {result.wall_s:.0f} s",
              highlight=False)
    if json_out is not None:
        d = result.as_dict()
        d["manifest"] = manifest(command=command_line(ctx), config={"seal": cfg.to_dict(), "arc": arc.to_dict()},
                                 seeds=[seed], data=[source], wall_s=time.perf_counter() - t0,
                                 task_ids=[t.task_id for t in tasks], policy=str(policy) if policy else None)
        atomic_write_json(json_out, json.loads(json.dumps(d, default=str)))


def train_arc(
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory (config, JSONL log, policy adapters).")],
    data: DataOpt = None, split: SplitOpt = "training", easy: EasyOpt = None, limit: LimitOpt = None,
    offset: OffsetOpt = 0,
    rounds: Annotated[int | None, typer.Option(help="ReST-EM rounds (default: rest_em.rounds).")] = None,
    samples: Annotated[int | None, typer.Option(help="Self-edits sampled per task, k (default: rest_em.samples).")]
    = None,
    resume: Annotated[bool, typer.Option(help="Continue a run: skip tasks and rounds already done.")] = False,
    easy_seed: Annotated[int, typer.Option(help="Seed of the easy tasks (eval arc uses 0).")] = 1,
    easy_max_side: MaxSideOpt = 3, easy_demos: DemosOpt = 5, self_edit: ModeOpt = None, seed: int = 0,
    config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None,
) -> None:
    """ReST-EM for ARC: sample self-edits, reward = solved after TTT, fine-tune the policy on the winners."""
    from seal.arc_loop import ArcRunError
    from seal.arc_loop import train_arc as do_train

    cfg, arc = make_configs(config, set_, model, self_edit)
    rounds = cfg.rest_em.rounds if rounds is None else rounds
    samples = cfg.rest_em.samples if samples is None else samples
    if rounds < 1 or samples < 1:
        fail("--rounds and --samples must be >= 1")
    tasks = select_tasks(data, split, easy, easy_seed, easy_max_side, easy_demos, limit, offset)
    if out_dir.exists() and any(out_dir.iterdir()) and not resume:
        fail(f"{out_dir} is not empty: pass --resume to continue that run, or choose a new --out")
    s = load_seal(cfg, slots=1 + arc.slots)
    source = ("easy:" + json.dumps({"n": easy, "seed": easy_seed, "max_side": easy_max_side, "demos": easy_demos})
              if easy is not None else f"{Path(data).resolve()}:{split}") + f"[{offset}:{limit}]"
    try:
        with err.status("ReST-EM on ARC ...") as status:
            summary = do_train(s, tasks, out_dir, rounds=rounds, samples=samples, cfg=arc, seed=seed,
                               resume=resume, data_source=source, progress=lambda msg: log_progress(status, msg))
    except ArcRunError as exc:
        fail(str(exc))
    out.print("| round | tasks | samples | mean reward | kept | policy examples | s |\n"
              "|---:|---:|---:|---:|---:|---:|---:|", highlight=False)
    for r in summary["rounds"]:
        out.print(f"| {r['round']} | {r['contexts']} | {r['samples']} | {r['mean_reward']:.2f} | {r['selected']} | "
                  f"{r.get('policy_examples', '-')} | {r['wall_s']:.0f} |", highlight=False)
    out.print(f"\npolicy adapter: {out_dir}/round-{rounds}/policy   log: {out_dir / 'samples.jsonl'}", highlight=False)


def register(eval_app: typer.Typer, train_app: typer.Typer) -> None:
    """Add ``arc`` to ``seal eval`` and ``seal train``."""
    eval_app.command("arc")(eval_arc)
    train_app.command("arc")(train_arc)


app = typer.Typer(no_args_is_help=True, help="ARC commands (standalone; normally reached as seal eval/train arc).")
_eval = typer.Typer(no_args_is_help=True)
_train = typer.Typer(no_args_is_help=True)
app.add_typer(_eval, name="eval")
app.add_typer(_train, name="train")
register(_eval, _train)


if __name__ == "__main__":  # pragma: no cover
    app()
