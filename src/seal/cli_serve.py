"""``seal serve``: the OpenAI-compatible server that learns documents into its weights while it serves.

    seal serve --store ./seal-store                    # http://127.0.0.1:8000/v1 (model ids: seal, seal@N, base)
    SEAL_API_KEY=secret seal serve --port 8080         # every route but /health (and the page) needs the key

Wired into ``seal`` by ``register(app)`` (see ``seal.cli``); registering twice is harmless. The server is
``seal.serve`` (FastAPI + uvicorn); the model is loaded once and the store opened once, before it listens.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from seal import cli_common as cli
from seal.cli_common import DEFAULT_STORE, ConfigOpt, ModelOpt, SetOpt, StoreOpt

LOCALHOST = "127.0.0.1"


def serve(store: StoreOpt = Path(DEFAULT_STORE),
          host: Annotated[str, typer.Option(help="Address to bind (default: this machine only).")] = LOCALHOST,
          port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
          api_key: Annotated[str | None, typer.Option(
              envvar="SEAL_API_KEY", show_default=False,
              help="Require `Authorization: Bearer KEY` (better: env SEAL_API_KEY).")] = None,
          max_body_bytes: Annotated[int, typer.Option(help="Refuse larger request bodies (413).")] = 1024 * 1024,
          max_queue: Annotated[int, typer.Option(help="Learning jobs that may wait (429 beyond).")] = 8,
          batch_wait_ms: Annotated[float, typer.Option(
              help="How long the engine collects requests that arrive together into one batch.")] = 5.0,
          serving_slots: Annotated[int, typer.Option(
              help="Store versions kept loaded for serving (the live one and recent seal@N).")] = 3,
          config: ConfigOpt = None, set_: SetOpt = None, model: ModelOpt = None) -> None:
    """Serve the store's model over an OpenAI-compatible API and learn documents posted to /v1/documents."""
    import uvicorn

    from seal.learning import config_for_store
    from seal.serve import Engine, ServeSettings, create_app
    from seal.serve.jobs import JobStore
    from seal.serve.versions import FIRST_SERVING_SLOT
    from seal.store import Store

    if not 0 <= port <= 65535:
        cli.fail(f"--port must be between 0 and 65535, not {port}")
    if max_body_bytes < 1024:
        cli.fail(f"--max-body-bytes must be at least 1024, not {max_body_bytes}")
    if max_queue < 1:
        cli.fail(f"--max-queue must be at least 1, not {max_queue}")
    if serving_slots < 2:
        cli.fail(f"--serving-slots must be at least 2 (the live version and one other), not {serving_slots}")
    if not 0 <= batch_wait_ms <= 1000:
        cli.fail(f"--batch-wait-ms must be between 0 and 1000, not {batch_wait_ms:g}")
    if api_key is not None and not api_key.strip():
        cli.fail("the API key is empty")
    cfg = cli.make_config(config, set_, model)
    with Store.open(store, create=True, base_model=cfg.model.name) as st:
        cfg = config_for_store(cfg, st)
    jobs = JobStore(store)  # refuses a second server on this store, before the model loads
    seal = cli.load_seal(cfg, slots=FIRST_SERVING_SLOT + serving_slots)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = Engine(seal, store, serving_slots=serving_slots, batch_wait_s=batch_wait_ms / 1000, jobs=jobs)
    engine.start()  # the store's live version loaded, interrupted jobs recovered: errors are one line here
    try:
        app = create_app(engine, ServeSettings(api_key=api_key, max_body_bytes=max_body_bytes, max_queue=max_queue))
        cli.err.print(f"seal serve: http://{escape(host)}:{port}/v1 (store {escape(str(store))}, version "
                      f"{engine.slots.live}, {'key required' if api_key else 'no key'})", highlight=False)
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        engine.stop()


def register(app: typer.Typer) -> None:
    """Add ``serve`` (idempotent)."""
    if getattr(app, "_seal_serve", False):
        return
    app.command("serve")(serve)
    app._seal_serve = True
