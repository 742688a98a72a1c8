"""ReST-EM, the outer loop: the model learns to write self-edits that help it learn.

Each round, on fresh contexts (disjoint across rounds):

* **E-step** — for each context sample ``samples`` self-edits from the current policy; apply each with the
  inner loop (``repeats`` seeds); reward = accuracy after the update minus the cached baseline accuracy (the
  paper's ``rest_em.reward = accuracy``; the default ``auto`` adds the gold answers' likelihood change where the
  domain has gold answers, ``seal.likelihood``). The
  self-edits of ``contexts_per_pass`` contexts train as one batch of adapters and answer in one batched
  generation (same rewards as one context at a time, in fewer, fuller passes).
* **Selection** — ``best-positive`` (default): the best of k, kept only if its reward is > 0 (the reference
  code kept winners that did not beat the baseline; we do not). ``all-positive`` and ``best`` are options.
* **M-step** — SFT of the policy adapter on (self-edit prompt -> kept self-edit), loss on the self-edit only;
  the next round samples from the updated policy.

The policy is a LoRA adapter in a slot of the same bank (the base weights stay frozen); the inner loop always
updates the base model, so a round's reward measures the quality of the data, not drift of the learner.
Everything is written as it happens (``RUN/config.json``, ``RUN/samples.jsonl``, ``RUN/round-N/...``), and
``resume=True`` continues an interrupted run without redoing finished inner loops::

    seal = Seal.load(cfg, slots=1 + cfg.rest_em.samples)
    summary = train_knowledge(seal, passages, run_dir="runs/r1", resume=False)

CLI: ``seal train knowledge --data squad_dev.json --rounds 2 --contexts 8 --samples 4 --out runs/r1``.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seal.domains.base import Domain, call_domain, has_gold_answers, reward_rule
from seal.domains.knowledge import KnowledgeDomain, Passage
from seal.engine import Seal
from seal.executor import POLICY_SLOT, LocalExecutor, PassJob
from seal.inner_loop import train_adapters
from seal.io import append_jsonl, atomic_write_json, read_jsonl
from seal.jobs import TrainJob


class RunError(RuntimeError):
    """The run cannot start or continue; the message says why and what to do."""


def _write(fn, path: Path, *args) -> None:
    try:
        fn(path, *args)
    except OSError as exc:
        hint = " (disk full?)" if exc.errno == errno.ENOSPC else ""
        raise RunError(f"cannot write {path}: {exc.strerror or exc}{hint}; fix it and rerun with --resume") from exc


def runtime(seal: Seal) -> dict[str, str]:
    """Where and in what precision the run computes, as resolved (``device = "auto"`` is cuda on one machine
    and cpu on another): part of a run's config, so a resume on another device or dtype is refused."""
    dtype = next(p.dtype for p in seal.lm.model.parameters() if p.is_floating_point())
    return {"device": seal.lm.device.type, "dtype": str(dtype).removeprefix("torch.")}


def run_config(seal: Seal, data_source: str, domain: str = "knowledge", fmt: str = "") -> dict[str, Any]:
    cfg = {"seal": seal.cfg.to_dict(), "data": data_source, "domain": domain, "format": fmt,
           "runtime": runtime(seal)}
    return json.loads(json.dumps(cfg))  # the form it has once saved (tuples become lists)


EXECUTION_ONLY = {"model": ("threads", "device"), "rest_em": ("contexts_per_pass",),
                  "eval": ("batch_size", "batch_tokens", "passages_per_pass")}
"""Config fields that change how a run executes, not its results: they may differ on resume. (``model.device``
may be spelled differently, "auto" or "cpu"; the device it resolves to is compared, in ``runtime``.)"""


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """The parts of a run config that must not change on resume (``EXECUTION_ONLY`` fields may)."""
    c = {k: v for k, v in cfg.items() if k not in ("seal", "reward")}  # reward: derived from seal + domain
    s = dict(cfg["seal"])
    for section, fields in EXECUTION_ONLY.items():
        if section in s:
            s[section] = {k: v for k, v in s[section].items() if k not in fields}
    c["seal"] = s
    return c


def round_contexts(passages: list[Passage], n: int, rounds: int, seed: int) -> list[list[Passage]]:
    """Disjoint, seeded context sets, one per round."""
    if n * rounds > len(passages):
        raise RunError(f"{rounds} rounds x {n} contexts need {n * rounds} passages; the data has {len(passages)}")
    order = list(range(len(passages)))
    random.Random(seed).shuffle(order)
    return [[passages[i] for i in order[r * n:(r + 1) * n]] for r in range(rounds)]


def select(rewards: list[float | None], rule: str) -> list[int]:
    """Indices of kept samples of one context. ``None`` rewards (failed edits) are never kept."""
    valid = [(r, i) for i, r in enumerate(rewards) if r is not None]
    if not valid:
        return []
    if rule == "all-positive":
        return [i for r, i in valid if r > 0]
    best_r, best_i = max(valid, key=lambda t: (t[0], -t[1]))
    if rule == "best":
        return [best_i]
    return [best_i] if best_r > 0 else []


def load_policy(seal: Seal, path: str | Path, slot: int = POLICY_SLOT) -> Path:
    """Load a policy adapter from a run dir (its last finished round), a round dir, or an adapter dir."""
    path = Path(path)
    candidates = [path, path / "policy"]
    if path.is_dir():
        rounds = sorted((p for p in path.glob("round-*") if (p / "policy").is_dir()),
                        key=lambda p: int(p.name.split("-")[1]))
        if rounds:
            candidates.append(rounds[-1] / "policy")
    for c in candidates:
        if (c / "adapter_model.safetensors").is_file():
            seal.bank.ensure_slots(slot + 1)
            try:
                seal.bank.load(slot, c)
            except ValueError as exc:
                raise RunError(f"the policy at {c} does not fit this model or LoRA config: {exc}") from None
            return c
    raise RunError(f"no policy adapter under {path} (expected RUN_DIR, RUN_DIR/round-N or an adapter dir)")


def _run_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of the run ``path`` belongs to (the run, a round of it, or a round's ``policy`` dir);
    {} when none is found."""
    path = Path(path)
    for d in (path, path.parent, path.parent.parent):
        if (d / "config.json").is_file():
            return _read_json(d / "config.json")
    return {}


def policy_format(path: str | Path) -> str | None:
    """The self-edit format a policy was trained to write (``format`` in its run's config); None if unknown."""
    return _run_config(path).get("format") or None


def policy_reward(path: str | Path) -> str | None:
    """The reward rule a policy was trained with (``reward`` in its run's config, as resolved); None if unknown."""
    return _run_config(path).get("reward") or None


def policy_training(path: str | Path) -> str:
    """The update settings away from the defaults that a policy's rewards were measured with (its run's inner
    loop and LoRA, :func:`seal.knowledge_report.training_tag`), e.g. ``epochs 5``; "" at the defaults or if
    unknown."""
    from seal.knowledge_report import training_tag

    return training_tag(_run_config(path).get("seal"))


def train(seal: Seal, domain: Domain, contexts: Sequence[Any], run_dir: str | Path, *, fmt: str | None = None,
          resume: bool = False, data_source: str = "", progress: Callable[[str], None] | None = None,
          executor=None) -> dict[str, Any]:
    """ReST-EM over any :class:`~seal.domains.base.Domain` (see the module docstring); returns the per-round
    summaries. Every domain-specific step goes through the domain's hooks, so this loop has no special cases.
    ``executor`` runs the E-step's passes (:mod:`seal.executor`; default: in this process, on ``seal``)."""
    executor = executor or LocalExecutor(seal, domain)
    cfg = seal.cfg.rest_em
    run_dir = Path(run_dir)
    fmt = fmt or domain.default_format or domain.formats[0]
    rule = domain.selection or cfg.selection
    reward = reward_rule(cfg.reward, domain)
    if reward != "accuracy" and not has_gold_answers(domain):
        raise RunError(f"rest_em.reward={cfg.reward} needs gold answers; domain {domain.name!r} has none "
                       "(use rest_em.reward=accuracy or auto)")
    config = run_config(seal, data_source, domain.name, fmt)
    config["reward"] = reward  # the rule used (``auto`` resolved for this domain)
    config["context_ids"] = [domain.context_id(c) for c in contexts]  # resume on other data is refused
    prepare_run_dir(run_dir, config, resume)
    seal.bank.ensure_slots(1 + cfg.samples * cfg.repeats * min(cfg.contexts_per_pass, cfg.contexts))
    done = {(r["round"], r["context"], r["sample"], r["repeat"]): r for r in read_jsonl(run_dir / "samples.jsonl")}
    rounds = ([list(contexts)[:cfg.contexts]] * cfg.rounds if domain.reuse_contexts
              else round_contexts(list(contexts), cfg.contexts, cfg.rounds, cfg.seed))
    has_policy = False
    summaries = []
    for rnd in range(1, cfg.rounds + 1):
        rdir = run_dir / f"round-{rnd}"
        if (rdir / "metrics.json").is_file() and resume:
            load_policy(seal, rdir)
            has_policy = True
            summaries.append(_read_json(rdir / "metrics.json"))
            continue
        t0 = time.perf_counter()
        texts_log = {(r["context"], r["sample"]): r["text"] for r in read_jsonl(rdir / "self_edits.jsonl")}
        kept: list[tuple[Any, str]] = []
        all_rewards: list[float] = []
        failures = 0
        ctxs = list(enumerate(rounds[rnd - 1]))
        jobs = []
        for pi, first in enumerate(range(0, len(ctxs), cfg.contexts_per_pass)):
            chunk = ctxs[first:first + cfg.contexts_per_pass]
            ids = {ci for ci, _ in chunk}
            todo = [(rnd, ci, s, rep) for ci, _ in chunk for s in range(cfg.samples) for rep in range(cfg.repeats)
                    if (rnd, ci, s, rep) not in done]
            jobs.append(PassJob(pi, rnd, chunk, fmt, cfg.samples, cfg.repeats,
                                {ci: domain.context_seed(cfg.seed, rnd, ci) for ci in ids}, cfg.seed,
                                {k: t for k, t in texts_log.items() if k[0] in ids}, todo, has_policy))
        executor.set_policy(seal.bank.state_dict(POLICY_SLOT) if has_policy else None)

        def log_texts(new: list[dict], rdir: Path = rdir, texts_log: dict = texts_log, rnd: int = rnd) -> None:
            _write(append_jsonl, rdir / "self_edits.jsonl", new)
            texts_log.update({(r["context"], r["sample"]): r["text"] for r in new})
            if progress:  # the local executor writes before a pass trains: a line before minutes of training
                progress(f"round {rnd}/{cfg.rounds}: {len(new)} self-edits written ({len(texts_log)}/"
                         f"{cfg.contexts * cfg.samples} this round)")

        for n_done, res in enumerate(executor.run(jobs, on_texts=log_texts), 1):
            if not res.texts_logged and res.new_texts:
                log_texts(res.new_texts)
            if res.records:  # one write per pass: a resume never re-trains part of a pass in a smaller batch
                _write(append_jsonl, run_dir / "samples.jsonl", res.records)
                done.update({(r["round"], r["context"], r["sample"], r["repeat"]): r for r in res.records})
            if progress:
                chunk = jobs[res.index].contexts
                progress(f"round {rnd}/{cfg.rounds}: pass {n_done}/{len(jobs)} done (contexts {chunk[0][0] + 1}-"
                         f"{chunk[-1][0] + 1}/{cfg.contexts}, {len(res.records)} inner loops, {res.worker}, "
                         f"{res.seconds:.0f} s)")
        for ci, ctx in ctxs:
            rewards = _rewards(done, rnd, ci, cfg.samples, cfg.repeats)
            failures += sum(r is None for r in rewards)
            all_rewards += [r for r in rewards if r is not None]
            kept += [(ctx, texts_log[(ci, i)]) for i in select(rewards, rule)]
        # M-step
        policy_loss = None
        examples = list({(domain.context_id(c), e.prompt, e.completion): e for c, e in
                         ((c, call_domain(domain, "policy_example", seal.lm, c, t, fmt)) for c, t in kept)}.values())
        if examples:  # (each distinct kept self-edit once)
            inner = domain.policy_train_config(dataclasses.replace(seal.cfg.inner_loop, lr=cfg.policy_lr,
                                                                   epochs=cfg.policy_epochs))
            res = train_adapters(seal.bank, seal.lm.tokenizer,
                                 [TrainJob(POLICY_SLOT, examples, seed=cfg.seed + rnd, reset=not has_policy)], inner)[0]
            if res.failed:
                raise RunError(f"policy SFT failed in round {rnd}: {res.failed}")
            policy_loss, has_policy = res.final_loss, True
        elif not has_policy:
            seal.bank.reset(POLICY_SLOT, seed=cfg.seed)  # an untrained LoRA (B = 0) is the base policy
        seal.bank.save(POLICY_SLOT, rdir / "policy", base_model=seal.lm.source)
        summary = {
            "round": rnd, "domain": domain.name, "format": fmt, "contexts": cfg.contexts, "samples": cfg.samples,
            "repeats": cfg.repeats, "selection": rule,
            "mean_reward": statistics.fmean(all_rewards) if all_rewards else 0.0,
            "std_reward": statistics.pstdev(all_rewards) if len(all_rewards) > 1 else 0.0,
            "rewards": all_rewards, "positive_fraction": (sum(r > 0 for r in all_rewards) / len(all_rewards))
            if all_rewards else 0.0,
            "selected": len(kept), "policy_examples": len(examples), "failed_edits": failures,
            "policy_final_loss": policy_loss, "policy_updated": bool(examples), "wall_s": time.perf_counter() - t0,
        }
        _write(atomic_write_json, rdir / "selected.json",
               [{"title": domain.context_title(c), "context": domain.context_id(c), "text": t} for c, t in kept])
        _write(atomic_write_json, rdir / "metrics.json", summary)  # written last: marks the round finished
        summaries.append(summary)
        if progress:
            progress(f"round {rnd}/{cfg.rounds} done: mean reward {summary['mean_reward']:+.3f}, "
                     f"{len(kept)} kept, {summary['wall_s']:.0f} s")
    return {"rounds": summaries, "run_dir": str(run_dir)}


def train_knowledge(seal: Seal, passages: list[Passage], run_dir: str | Path, *, resume: bool = False,
                    data_source: str = "", progress: Callable[[str], None] | None = None,
                    executor=None, domain: KnowledgeDomain | None = None) -> dict[str, Any]:
    """ReST-EM on the knowledge domain (``seal train knowledge``): the config's format, the domain's default
    (``rewrite``) when it is ``passage`` (no self-edit to learn)."""
    fmt = seal.cfg.self_edit.format if seal.cfg.self_edit.format != "passage" else KnowledgeDomain.default_format
    return train(seal, domain or KnowledgeDomain.from_config(seal.cfg), passages, run_dir, fmt=fmt, resume=resume,
                 data_source=data_source, progress=progress, executor=executor)


def _rewards(done: dict, rnd: int, ci: int, samples: int, repeats: int) -> list[float | None]:
    """Per sample of context ``ci``, the mean reward over its repeats (None if any failed)."""
    out: list[float | None] = []
    for s in range(samples):
        rs = [done[(rnd, ci, s, rep)]["reward"] for rep in range(repeats)]
        out.append(None if any(r is None for r in rs) else statistics.fmean(rs))
    return out


def _without_rounds(cfg: dict[str, Any]) -> dict[str, Any]:
    rest_em = {k: v for k, v in cfg["seal"].get("rest_em", {}).items() if k != "rounds"}
    return {**cfg, "seal": {**cfg["seal"], "rest_em": rest_em}}


def prepare_run_dir(run_dir: Path, config: dict[str, Any], resume: bool) -> None:
    """Start a run in ``run_dir`` (new or empty: writes ``config.json``) or, with ``resume``, check that the
    saved config equals ``config`` but for ``EXECUTION_ONLY`` fields; a difference is named and refused, except
    more ``rest_em.rounds``: round r's contexts do not depend on the number of rounds, so a finished run is
    extended (its ``config.json`` then records the new number)."""
    cfg_path = run_dir / "config.json"
    if cfg_path.is_file():
        if not resume:
            raise RunError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
        old, new = _comparable(_read_json(cfg_path)), _comparable(json.loads(json.dumps(config)))
        have, want = (c["seal"].get("rest_em", {}).get("rounds") for c in (old, new))
        if want != have and _without_rounds(old) == _without_rounds(new):
            if want < have:
                raise RunError(f"{run_dir} is a run of {have} rounds; a resume may add rounds (--rounds > {have}), "
                               "not drop them")
            _write(atomic_write_json, cfg_path, config)  # more rounds: a finished run continues from its policy
            return
        if old != new:
            diff = ", ".join(_differences(old, new)[:3])
            raise RunError(f"{run_dir} was made with a different config ({diff}); resume with the same options "
                           "or choose another --out")
        return
    # a kill during the atomic write of config.json leaves only its temp file: the run never started
    torn = set(run_dir.glob(".config.json.*.tmp")) if run_dir.is_dir() else set()
    if run_dir.exists() and any(p not in torn for p in run_dir.iterdir()):
        raise RunError(f"{run_dir} exists and is not a seal run directory")
    for p in torn:
        p.unlink(missing_ok=True)
    _write(atomic_write_json, cfg_path, config)


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Dotted names of the fields that differ, with their saved and current values."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))]
    def short(v: Any) -> str:
        r = repr(v)
        return r if len(r) <= 60 else r[:57] + "..."

    return [] if old == new else [f"{where or 'config'}: {short(old)} then, {short(new)} now"]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read {path}: {exc}") from exc
