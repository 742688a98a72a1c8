"""``seal train --domain NAME`` and ``seal eval --domain NAME``: ReST-EM and evaluation for any domain.

NAME is a built-in (``knowledge``, ``arc``, ``codebase``), an installed entry point of group ``seal.domains``,
``module:Class`` or ``path/to/file.py:Class`` (see ``seal.domains.load_domain``)::

    seal train --domain examples/brevity_domain.py:BrevityDomain --data examples/brevity_topics.json \\
        --rounds 1 --contexts 2 --samples 2 --out runs/brevity
    seal eval --domain codebase --data src/seal/samples/codebase/tidepool --methods base,passage,notes \\
        --policy runs/code-r1 --json codebase.json

``seal train knowledge`` and ``seal train arc`` remain the commands for those two (with their own options).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from seal.cli_common import (
    ConfigOpt,
    ExecutorOpt,
    ModelOpt,
    RayAddressOpt,
    SetOpt,
    WorkersOpt,
    command_line,
    err,
    fail,
    load_seal,
    log_progress,
    make_config,
    open_executor,
    out,
)

DomainOpt = Annotated[str | None, typer.Option("--domain", help="Built-in name, entry point, module:Class or "
                                                                "file.py:Class.")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="The domain's contexts (its load_contexts(path)).")]
TemplateOpt = Annotated[Path | None, typer.Option("--template", help="Knowledge domain: a self-edit prompt "
                                                                     "template file (TOML: prompt, parse).")]


def _domain(domain: str, cfg, template: Path | None):
    from seal.domains import load_domain

    options = {}
    if template is not None:
        from seal.domains.templates import load_template

        options["template"] = load_template(template)
    return load_domain(domain, cfg, **options)


def _contexts(dom, data: Path | None, offset: int, limit: int | None) -> list:
    from seal.domains.base import call_domain

    if data is None:
        fail("--data PATH is required with --domain (the domain's contexts)")
    ctxs = call_domain(dom, "load_contexts", data)[offset:None if limit is None else offset + limit]
    if not ctxs:
        fail(f"no contexts in {data} at offset {offset}")
    return ctxs


def train_callback(
    ctx: typer.Context, domain: DomainOpt = None, data: DataOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run directory.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Self-edit format (default: the domain's).")] = None,
    rounds: Annotated[int | None, typer.Option(help="ReST-EM rounds.")] = None,
    contexts: Annotated[int | None, typer.Option(help="Contexts per round.")] = None,
    samples: Annotated[int | None, typer.Option(help="Self-edits sampled per context.")] = None,
    offset: Annotated[int, typer.Option(help="Use contexts from this index on.")] = 0,
    limit: Annotated[int | None, typer.Option(help="Use at most this many contexts.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None, workers: WorkersOpt = 0,
    template: TemplateOpt = None, config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None,
) -> None:
    """Train the self-edit policy with ReST-EM: `seal train --domain NAME --data PATH --out RUN`, or a
    domain's own command (`seal train knowledge`, `seal train arc`)."""
    if ctx.invoked_subcommand is not None:
        return
    if domain is None:
        out.print(ctx.get_help())
        raise typer.Exit(0)
    from seal.report import write_run_report
    from seal.rest_em import train

    if out_dir is None:
        fail("--out RUN_DIR is required")
    sets = list(set_ or [])
    for key, val in (("rounds", rounds), ("contexts", contexts), ("samples", samples)):
        if val is not None:
            sets.append(f"rest_em.{key}={val}")
    cfg = make_config(config, sets, model)
    dom = _domain(domain, cfg, template)
    ctxs = _contexts(dom, data, offset, limit)
    s = load_seal(cfg, slots=1 + cfg.rest_em.samples * cfg.rest_em.repeats)
    ex = open_executor(executor, s, dom, ray_address, workers)
    try:
        with err.status(f"ReST-EM on {dom.name} ...") as status:
            summary = train(s, dom, ctxs, out_dir, fmt=fmt, resume=resume,
                            data_source=f"{Path(data).resolve()}[{offset}:{limit}]",
                            progress=lambda msg: log_progress(status, msg), executor=ex)
    finally:
        ex.close()
    report = write_run_report(out_dir)
    for r in summary["rounds"]:
        out.print(f"round {r['round']}: mean reward {r['mean_reward']:+.3f} (std {r['std_reward']:.3f}), "
                  f"{r['selected']} self-edits kept, {r['wall_s']:.0f} s", highlight=False)
    out.print(f"report: {report}", highlight=False)


def eval_callback(
    ctx: typer.Context, domain: DomainOpt = None, data: DataOpt = None,
    methods: Annotated[str, typer.Option(help="Comma-separated: base and the domain's formats.")] = "",
    policy: Annotated[list[Path] | None, typer.Option(help="ReST-EM RUN_DIR or RUN_DIR/round-N (repeatable): "
                                                           "adds 'SEAL <name>' rows.")] = None,
    offset: Annotated[int, typer.Option(help="Skip this many contexts first.")] = 0,
    limit: Annotated[int | None, typer.Option(help="At most this many contexts.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures (with a manifest) here.")]
    = None,
    seed: int = 0, template: TemplateOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
    model: ModelOpt = None,
) -> None:
    """Evaluate methods on any domain: `seal eval --domain NAME --data PATH --methods base,...`, or a domain's
    own protocol (`seal eval knowledge`, `seal eval arc`, `seal eval forgetting`)."""
    if ctx.invoked_subcommand is not None:
        return
    if domain is None:
        out.print(ctx.get_help())
        raise typer.Exit(0)
    import time

    from seal.evaluate_domain import evaluate_domain, markdown_table
    from seal.io import atomic_write_json
    from seal.manifest import manifest
    from seal.rest_em import load_policy

    t0 = time.perf_counter()
    cfg = make_config(config, set_, model)
    dom = _domain(domain, cfg, template)
    ctxs = _contexts(dom, data, offset, limit)
    method_list = [m.strip() for m in (methods or ",".join(("base", *dom.formats))).split(",") if m.strip()]
    s = load_seal(cfg)
    policies: dict[str, int] = {}
    for slot, path in enumerate(policy or []):
        loaded = load_policy(s, path, slot=slot)
        name = f"SEAL {loaded.parent.name}" if loaded.name == "policy" else f"SEAL {loaded.name}"
        policies[name if name not in policies else f"{name} ({slot})"] = slot
    method_list += list(policies)
    with err.status(f"evaluating on {dom.name} ...") as status:
        result = evaluate_domain(s, dom, ctxs, method_list, policies=policies, seed=seed,
                                 progress=lambda msg: log_progress(status, msg))
    out.print(markdown_table(result), highlight=False)
    if json_out is not None:
        data_out = result.as_dict()
        data_out["manifest"] = manifest(command=command_line(ctx), config=cfg.to_dict(), seeds=[seed],
                                        data=[f"{Path(data).resolve()}[{offset}:{limit}]"],
                                        wall_s=time.perf_counter() - t0, context_ids=result.context_ids,
                                        policies={k: str(p) for k, p in zip(policies, policy or [], strict=False)})
        atomic_write_json(json_out, json.loads(json.dumps(data_out, default=str)))


def register(eval_app: typer.Typer, train_app: typer.Typer) -> None:
    eval_app.callback(invoke_without_command=True)(eval_callback)
    train_app.callback(invoke_without_command=True)(train_callback)
