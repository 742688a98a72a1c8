"""Helpers shared by the ``seal`` command modules (cli.py, cli_arc.py, cli_continual.py): consoles, one-line
errors, options, config building, progress bars, and loading the engine once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DEFAULT_STORE = os.environ.get("SEAL_STORE", "seal-store")
SAMPLES = Path(__file__).parent / "samples" / "passages.json"

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML/JSON config file.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override, e.g. inner_loop.epochs=5.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="HF id/path or .gguf (default: embedded "
                                                                "SmolLM2-135M-Instruct).")]
StoreOpt = Annotated[Path, typer.Option("--store", help="Store directory (env SEAL_STORE; default ./seal-store).")]


def user_errors() -> tuple[type[BaseException], ...]:
    from seal.config import ConfigError
    from seal.documents import DocumentError
    from seal.domains.base import DomainError, SelfEditError
    from seal.domains.knowledge import DataError
    from seal.grading import JudgeError
    from seal.io import LogError
    from seal.learning import LearnError
    from seal.model import ModelLoadError
    from seal.rest_em import RunError
    from seal.store import StoreError
    from seal.teacher import TeacherError

    return (ConfigError, DocumentError, DataError, StoreError, ModelLoadError, LearnError, SelfEditError,
            JudgeError, RunError, TeacherError, LogError, DomainError, FileNotFoundError)


def run_app(app: typer.Typer) -> None:
    """Run the app; known user errors become one ``error: ...`` line on stderr and exit status 1."""
    try:
        app()
    except user_errors() as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(1)


def fail(msg: str) -> None:
    err.print(f"[red]error:[/red] {escape(msg)}", highlight=False)
    raise typer.Exit(1)


def make_config(config: Path | None, sets: list[str] | None, model: str | None = None):
    from seal.config import SealConfig

    cfg = SealConfig.from_file(config) if config else SealConfig.preset("cpu")
    overrides = list(sets or [])
    if model:
        overrides.append(f"model.name={json.dumps(model)}")
    return cfg.override(overrides) if overrides else cfg


class LoggedProgress(Progress):
    """A Rich progress bar on a terminal; elsewhere (a file, a CI log), where the bar shows nothing, a plain
    line when a task's count moves: ``passages 8/40 (212 s)``. At most one line per ``interval`` seconds per
    task, but always the first and the last, so per-step counts (LoRA steps) do not flood a log."""

    def __init__(self, *columns, interval: float = 10.0, **kwargs) -> None:
        super().__init__(*columns, **kwargs)
        self.interval = interval
        self._logged: dict = {}  # task id -> (count, elapsed) of its last plain line

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        if self.console.is_terminal:
            return
        task = next(t for t in self.tasks if t.id == task_id)
        count, at = self._logged.get(task_id, (None, None))
        elapsed = task.elapsed or 0.0
        if task.completed == count or (at is not None and elapsed - at < self.interval and not task.finished):
            return
        self._logged[task_id] = (task.completed, elapsed)
        total = f"/{task.total:.0f}" if task.total is not None else ""
        self.console.print(f"{task.description} {task.completed:.0f}{total} ({elapsed:.0f} s)", highlight=False,
                           markup=False)


def progress_bar() -> Progress:
    return LoggedProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=err, transient=True)


def command_line(ctx: typer.Context) -> list[str]:
    """The command as given (rebuilt from the parsed options, so it is right under any runner): manifests."""
    args = ["seal", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False or value == [] or value == "" or not getattr(param, "opts", None):
            continue
        flag = param.opts[0]
        for v in value if isinstance(value, list | tuple) else [value]:
            args += [flag] if v is True else [flag, str(v)]
    return args


def log_progress(status, msg: str) -> None:
    """Show ``msg`` on the Rich status line; when stderr is not a terminal (a file, a CI log) also print it as
    a plain line, so a long run logs one line per pass and per round."""
    status.update(msg)
    if not err.is_terminal:
        err.print(msg, highlight=False, markup=False)


def load_seal(cfg, slots: int = 1, grader=None):
    """``grader``: a ready grader (e.g. a judge holding a key that must not go into ``cfg``); default from cfg."""
    from seal.engine import Seal

    with err.status(f"loading {cfg.model.name} ..."):
        return Seal.load(cfg, slots=slots, grader=grader)


ExecutorOpt = Annotated[str, typer.Option(help="Where the E-step's passes run: local (this process) | ray "
                                               "(Ray actors; pip install 'seal[ray]').")]
RayAddressOpt = Annotated[str | None, typer.Option(help="--executor ray: a cluster to join (auto, ray://HOST:10001); "
                                                        "default: a local Ray instance on this machine's cores.")]
WorkersOpt = Annotated[int, typer.Option(help="--executor ray: actors (0 = one per GPU, else one per 2 CPU cores).")]


def open_executor(name: str, seal, domain, address: str | None, workers: int):
    """The executor for ``--executor`` (a one-line error for an unknown name or a missing Ray)."""
    from seal.executor import make_executor

    if name not in ("local", "ray"):
        fail(f"--executor must be local or ray, not {name!r}")
    if name == "local" and (address or workers):
        fail("--ray-address and --workers need --executor ray")
    try:
        return make_executor(name, seal, domain, address=address, workers=workers)
    except RuntimeError as exc:
        fail(str(exc))
