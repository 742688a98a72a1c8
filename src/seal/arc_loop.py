"""SEAL on ARC: the paper's evaluation protocol and ReST-EM training of the self-edit policy.

Evaluation (``evaluate_arc``), one row per method, as in the paper's ARC table:

* ``icl``            in-context learning: the base model answers the task prompt, no test-time training;
* ``ttt_self_edit``  TTT + self-edit without RL: the base model writes the JSON configuration, it is applied
                     (TTT into a fresh LoRA adapter) and the task is predicted with augmented voting (pass@2);
* ``seal``           the same with self-edits written by the RL-trained policy adapter (``--policy RUN_DIR``);
* ``oracle``         success if ANY configuration of a small grid (``all_configurations`` restricted by the
                     ``arc.oracle_*`` knobs, capped at ``arc.oracle_max_configs``) solves the task.

A self-edit's reward is 1 if the task is solved after TTT with that configuration, else 0 (invalid JSON, a
configuration without usable training data, a failed training all earn 0 with a logged reason). Success rate
= solved / evaluated (per sampled self-edit for the self-edit rows, per task for ``icl`` and ``oracle``).
Outcomes are memoised per (task, configuration) within a run (TTT is deterministic for a seed), so a
configuration shared by two rows is trained once.

Training (``train_arc``) is the one ReST-EM loop of ``seal.rest_em`` with the ARC domain
(``seal.domains.arc.domain.ArcDomain``): each round, for every training task, k self-edits from the current
policy (at ``arc.train_temperature``, for exploration), each applied by TTT (distinct ones once), every
distinct configuration with reward 1 kept, and the policy adapter fine-tuned on (self-edit prompt -> kept
JSON). The run directory has the layout of every ReST-EM run (``config.json``, ``samples.jsonl`` with one
line per sampled self-edit, ``round-N/{self_edits.jsonl,selected.json,metrics.json,policy/}``) and resumes
the same way.

Self-edits are written in ``arc.self_edit_mode="constrained"`` by default (the model chooses each JSON value
among allowed choices from its own probabilities; see ``seal.domains.arc.policy``): measured on the default
SmolLM2-135M-Instruct, 0 of 6 free-text self-edits (temperature 1) contained a JSON configuration at all.
``free`` mode is there for larger models. Constrained, the base model puts ~97 % on the learning rate of the
prompt's example (1e-4), which rarely solves a task at the CPU budget; 1e-3 often does.

CPU (measured, shared 2-core machine, default model, ``seal eval arc --easy 6``): 50-170 s per self-edit
evaluation (TTT + 4-way augmented prediction), ICL 5 s per task. Use the easy demo tasks
(``seal.domains.arc.easy``; NOT ARC). GPU: raise the ``arc.*`` caps (examples, TTA, epochs, oracle grid)
towards the paper's setting.
"""

from __future__ import annotations

import dataclasses
import glob
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal.domains.arc.easy import generate_easy_tasks
from seal.domains.arc.policy import SampledEdit, sample_self_edits
from seal.domains.arc.selfedit import ArcSelfEdit, all_configurations, to_json
from seal.domains.arc.tasks import ArcTask, load_tasks
from seal.domains.arc.ttt import ArcConfig, EditOutcome, evaluate_edits, predict
from seal.inner_loop import Example, TrainJob, train_adapters
from seal.io import append_jsonl

ROWS: dict[str, str] = {
    "icl": "ICL (no TTT)",
    "ttt_self_edit": "TTT + self-edit (no RL)",
    "seal": "SEAL (RL-trained policy)",
    "oracle": "Oracle TTT (any config of the grid)",
}
POLICY_SLOT = 0
TTT_FIRST_SLOT = 1


class ArcRunError(ValueError):
    """A user-facing problem with ARC data, a run directory or a policy; the message says what to do."""


# ----------------------------------------------------------------------------------------------- tasks
def load_arc_dir(directory: str | Path, split: str = "evaluation") -> list[ArcTask]:
    """Tasks from a directory holding ``*<split>*challenges*.json`` and ``*<split>*solutions*.json``."""
    d = Path(directory)
    if not d.is_dir():
        raise ArcRunError(f"ARC data directory not found: {d}")
    ch = sorted(glob.glob(str(d / f"*{split}*challenges*.json")))
    so = sorted(glob.glob(str(d / f"*{split}*solutions*.json")))
    if len(ch) != 1 or len(so) != 1:
        raise ArcRunError(f"{d}: expected one *{split}*challenges*.json and one *{split}*solutions*.json, found "
                          f"{len(ch)} and {len(so)}")
    return load_tasks(ch[0], so[0])


def easy_tasks(n: int, seed: int, max_side: int = 3, n_train: int = 5) -> list[ArcTask]:
    """The easy demo set (NOT ARC): small grids, simple rules, 5 demonstrations (sized so TTT can succeed)."""
    return generate_easy_tasks(n, seed=seed, max_side=max_side, n_train=n_train)


def oracle_grid(cfg: ArcConfig) -> list[ArcSelfEdit]:
    """The oracle's configurations: the ``arc.oracle_*`` grid, an evenly spread subset if over the cap."""
    grid = all_configurations(augmentation_sets=[frozenset(a) for a in cfg.oracle_augmentations],
                              loss_on=cfg.oracle_loss_on, learning_rates=cfg.oracle_lrs, epochs=cfg.oracle_epochs)
    grid = [dataclasses.replace(e, learning_rate=min(max(e.learning_rate, cfg.lr_range[0]), cfg.lr_range[1]),
                                epochs=min(e.epochs, cfg.max_epochs)) for e in grid]
    m = cfg.oracle_max_configs
    if len(grid) <= m:
        return grid
    if m == 1:
        return grid[:1]
    return [grid[round(i * (len(grid) - 1) / (m - 1))] for i in range(m)]


# ----------------------------------------------------------------------------------------------- rewards
class OutcomeCache:
    """Memoised self-edit outcomes per (task id, configuration JSON); evaluates distinct misses in batches."""

    def __init__(self, seal, cfg: ArcConfig, seed: int = 0) -> None:
        self.seal, self.cfg, self.seed = seal, cfg, seed
        self.done: dict[tuple[str, str], EditOutcome] = {}
        self.evaluated = 0

    def get(self, pairs: Sequence[tuple[ArcTask, ArcSelfEdit]]) -> list[tuple[EditOutcome, bool]]:
        """(outcome, was_cached) per pair."""
        keys = [(t.task_id, to_json(e)) for t, e in pairs]
        fresh = {k: p for k, p in zip(keys, pairs, strict=True) if k not in self.done}
        todo = list(fresh.items())
        outs = evaluate_edits(self.seal, [p for _, p in todo], self.cfg, seed=self.seed,
                              first_slot=TTT_FIRST_SLOT) if todo else []
        for (k, _), o in zip(todo, outs, strict=True):
            self.done[k] = o
        self.evaluated += len(todo)
        return [(self.done[k], k not in fresh) for k in keys]


def self_edit_record(s: SampledEdit, outcome: EditOutcome | None, cached: bool = False) -> dict[str, Any]:
    rec = s.to_record()
    rec["json"] = to_json(s.edit) if s.edit is not None else None
    if outcome is None:
        rec.update(reward=0.0, outcome_reason=f"invalid self-edit: {s.reason}")
    else:
        rec.update(reward=outcome.reward, outcome_reason=outcome.reason, cached=cached,
                   outcome=outcome.to_record())
    return rec


def score_samples(cache: OutcomeCache, task: ArcTask, samples: Sequence[SampledEdit]
                  ) -> list[tuple[float, EditOutcome | None, bool]]:
    """(reward, outcome, cached) per sampled self-edit; an invalid one gets reward 0 without any training."""
    valid = [s for s in samples if s.edit is not None]
    outs = iter(cache.get([(task, s.edit) for s in valid]))
    res = []
    for s in samples:
        if s.edit is None:
            res.append((0.0, None, False))
        else:
            o, cached = next(outs)
            res.append((o.reward, o, cached))
    return res


# ----------------------------------------------------------------------------------------------- evaluation
@dataclass
class RowStats:
    solved: int = 0
    n: int = 0
    seconds: float = 0.0
    tasks: set[str] = field(default_factory=set)
    invalid: int = 0
    outcomes: list[tuple[str, float]] = field(default_factory=list)
    """(task id, 1.0 solved / 0.0 not) per evaluation, for the interval (tasks resampled)."""

    def as_dict(self) -> dict[str, Any]:
        from seal.stats import bootstrap_ci

        ci = bootstrap_ci([v for _, v in self.outcomes], clusters=[t for t, _ in self.outcomes])
        return {"success_rate": self.solved / self.n if self.n else 0.0, "ci95": list(ci),
                "n_tasks": len(self.tasks), "s_per_edit": self.seconds / self.n if self.n else 0.0,
                "n_edits": self.n, "invalid_edits": self.invalid}


@dataclass
class ArcEvalResult:
    rows: dict[str, RowStats] = field(default_factory=dict)
    wall_s: float = 0.0
    n_tasks: int = 0

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {r: s.as_dict() for r, s in self.rows.items()}


def evaluate_arc(seal, tasks: Sequence[ArcTask], rows: Sequence[str], cfg: ArcConfig, *, samples: int = 1,
                 seed: int = 0, policy_slot: int | None = None, log_path: str | Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ArcEvalResult:
    """Run the requested rows on every task; per-task details go to ``log_path`` (JSONL) when given."""
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ArcRunError(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    if "seal" in rows and policy_slot is None:
        raise ArcRunError("the 'seal' row needs a trained policy adapter (--policy RUN_DIR)")
    if any(t.test_outputs is None for t in tasks):
        raise ArcRunError("every task needs its test outputs (a solutions file) to be scored")
    result = ArcEvalResult({r: RowStats() for r in rows}, n_tasks=len(tasks))
    cache = OutcomeCache(seal, cfg, seed)
    start = time.perf_counter()
    for ti, task in enumerate(tasks):
        rec: dict[str, Any] = {"task": task.task_id}
        if "icl" in rows:
            t0 = time.perf_counter()
            pred = predict(seal.generator, [(task, None)], cfg)[0]
            _count(result.rows["icl"], task, pred.solved, time.perf_counter() - t0)
            rec["icl"] = pred.to_record()
        for row, slot in (("ttt_self_edit", None), ("seal", policy_slot)):
            if row not in rows:
                continue
            t0 = time.perf_counter()
            sampled = sample_self_edits(seal, [task], samples, cfg, policy_slot=slot, seed=seed * 7919 + ti)[0]
            write_s = (time.perf_counter() - t0) / max(len(sampled), 1)
            recs = []
            for s, (reward, outcome, cached) in zip(sampled, score_samples(cache, task, sampled), strict=True):
                stats = result.rows[row]
                stats.invalid += s.edit is None
                _count(stats, task, reward > 0, write_s + (outcome.seconds if outcome else 0.0))
                recs.append(self_edit_record(s, outcome, cached))
            rec[row] = recs
        if "oracle" in rows:
            rec["oracle"] = _oracle(cache, task, cfg, result.rows["oracle"])
        if log_path is not None:
            append_jsonl(log_path, rec)
        if progress is not None:
            progress(ti + 1, len(tasks))
    result.wall_s = time.perf_counter() - start
    return result


def _count(stats: RowStats, task: ArcTask, solved: bool, seconds: float) -> None:
    stats.solved += bool(solved)
    stats.outcomes.append((task.task_id, float(bool(solved))))
    stats.n += 1
    stats.seconds += seconds
    stats.tasks.add(task.task_id)


def _oracle(cache: OutcomeCache, task: ArcTask, cfg: ArcConfig, stats: RowStats) -> dict[str, Any]:
    """Try the grid ``arc.slots`` configurations at a time; stop at the first success."""
    grid = oracle_grid(cfg)
    tried, seconds, solved_by = [], 0.0, None
    for s in range(0, len(grid), cfg.slots):
        chunk = grid[s:s + cfg.slots]
        for edit, (o, _cached) in zip(chunk, cache.get([(task, e) for e in chunk]), strict=True):
            tried.append({"config": to_json(edit), "reward": o.reward, "reason": o.reason})
            seconds += o.seconds
            if o.reward > 0 and solved_by is None:
                solved_by = to_json(edit)
        if solved_by is not None:
            break
    _count(stats, task, solved_by is not None, seconds / max(len(tried), 1))  # s/edit: per configuration tried
    return {"solved": solved_by is not None, "solved_by": solved_by, "tried": tried}


def markdown_table(result: ArcEvalResult) -> str:
    lines = ["| method | success rate [95 % CI over tasks] | tasks | self-edits | invalid | s / self-edit |",
             "|---|---:|---:|---:|---:|---:|"]
    for r, d in result.as_dict().items():
        edits = "-" if r in ("icl", "oracle") else str(d["n_edits"])
        invalid = "-" if r in ("icl", "oracle") else str(d["invalid_edits"])
        lo, hi = d["ci95"]
        lines.append(f"| {ROWS[r]} | {100 * d['success_rate']:.1f} % [{100 * lo:.0f}, {100 * hi:.0f}] | "
                     f"{d['n_tasks']} | {edits} | {invalid} | {d['s_per_edit']:.1f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- policy
def load_policy(seal, path: str | Path, slot: int = POLICY_SLOT) -> Path:
    """Load a policy adapter into ``slot`` from a run dir (its latest ``policy/``), a round dir or an adapter dir."""
    from seal.rest_em import RunError
    from seal.rest_em import load_policy as load_adapter

    try:
        return load_adapter(seal, path, slot=slot)
    except RunError as exc:
        raise ArcRunError(str(exc)) from None


def train_policy(seal, examples: list[Example], cfg: ArcConfig, *, seed: int, reset: bool):
    """M-step: SFT of the policy slot on (self-edit prompt -> kept JSON), loss on the JSON only."""
    re = seal.cfg.rest_em
    inner = dataclasses.replace(seal.cfg.inner_loop, lr=re.policy_lr, epochs=re.policy_epochs,
                                max_seq_tokens=cfg.max_seq_tokens)
    job = TrainJob(slot=POLICY_SLOT, examples=examples, seed=seed, reset=reset)
    return train_adapters(seal.bank, seal.lm.tokenizer, [job], inner)[0]


# ----------------------------------------------------------------------------------------------- ReST-EM
def train_arc(seal, tasks: Sequence[ArcTask], out_dir: str | Path, *, rounds: int, samples: int,
              cfg: ArcConfig | None = None, seed: int = 0, resume: bool = False, data_source: str = "",
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """ReST-EM on ARC tasks: the one loop of ``seal.rest_em`` with the ARC domain (every round on all
    ``tasks``; ``rounds``/``samples``/``seed`` set the ``rest_em`` section). Returns ``rest_em.train``'s
    summary."""
    from seal.domains.arc.domain import ArcDomain
    from seal.rest_em import RunError, train

    if rounds < 1 or samples < 1:
        raise ArcRunError("rounds and samples must be >= 1")
    arc, before = cfg or seal.cfg.arc, seal.cfg
    seal.cfg = dataclasses.replace(seal.cfg, arc=arc, rest_em=dataclasses.replace(
        seal.cfg.rest_em, rounds=rounds, samples=samples, contexts=max(len(tasks), 1), seed=seed, repeats=1))
    try:  # (the run's config, saved with it; the engine's own config is put back afterwards)
        return train(seal, ArcDomain(arc), tasks, out_dir, resume=resume, data_source=data_source,
                     progress=progress)
    except RunError as exc:
        raise ArcRunError(str(exc)) from None
    finally:
        seal.cfg = before
