"""``seal export DIR``: write what a store learned as a PEFT adapter, or with ``--merged`` as a plain model.

    seal export my-adapter                      # the store's current version as a PEFT LoRA adapter directory
    seal export my-model --merged --version 3   # version 3 folded into the base weights (transformers checkpoint)

Wired into ``seal`` by ``register(app)`` (see ``seal.cli``); registering twice is harmless. The logic is in
``seal.export``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from seal import cli_common as cli
from seal.cli_common import DEFAULT_STORE, ConfigOpt, ModelOpt, SetOpt, StoreOpt


def export(directory: Annotated[Path, typer.Argument(help="New directory to write (must not exist, or be empty).")],
           store: StoreOpt = Path(DEFAULT_STORE),
           version: Annotated[int | None, typer.Option(help="Store version to export (default: the current one; "
                                                            "see `seal history`).")] = None,
           merged: Annotated[bool, typer.Option("--merged", help="Write a plain transformers model with the update "
                                                                 "merged into the base weights.")] = False,
           document: Annotated[str | None, typer.Option(help="A routed store: the document (name or id) whose "
                                                             "adapter to export.")] = None,
           config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None) -> None:
    """Export what the store learned: a PEFT adapter directory (AutoPeftModelForCausalLM loads it), or with
    --merged a merged model directory (AutoModelForCausalLM loads it)."""
    from seal.export import check_target, export_store
    from seal.store import Store

    check_target(directory)  # fail fast, before opening the store or loading anything
    with Store.open(store, base_model=model) as st:
        cfg = cli.make_config(config, set_, model or st.base_model)
        with cli.err.status("exporting ..."):
            r = export_store(st, directory, version=version, merged=merged, cfg=cfg, document=document)
    what = (f"a merged model ({r.updates} update(s) folded into the base weights)" if r.merged else
            f"a rank-{r.rank} LoRA adapter" + (f" (the exact sum of the {r.updates} merged updates)"
                                               if r.updates > 1 else ""))
    cli.out.print(f"exported store version {r.version} ({r.strategy}, {len(r.documents)} document(s)) as {what} "
                  f"on {escape(r.base_model)} -> {escape(str(r.directory))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``export`` (idempotent)."""
    if getattr(app, "_seal_export", False):
        return
    app.command("export")(export)
    app._seal_export = True
