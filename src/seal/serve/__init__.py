"""``seal serve``: an OpenAI-compatible server that learns documents into its weights while it serves.

Modules, one job each (run with ``seal serve --store DIR``; ``seal.cli_serve`` wires the command):

* :mod:`~seal.serve.app`: ``create_app(engine, settings)``, the FastAPI app (routes, errors, auth, limits).
* :mod:`~seal.serve.scheduler`: :class:`~seal.serve.scheduler.Engine`, the one thread that owns the model:
  batches generation requests and runs learning jobs, answering requests between training steps.
* :mod:`~seal.serve.runner`: runs a learning job (learn / forget / rollback) and recovers interrupted ones.
* :mod:`~seal.serve.versions`: which store version answers, in which adapter slot (live version + LRU).
* :mod:`~seal.serve.jobs`: learning jobs persisted in ``STORE/serve-jobs.sqlite``, recovered after a kill.
* :mod:`~seal.serve.protocol`: pydantic request models, OpenAI-style responses, stream chunks and errors.

``static/`` (the web page, served at ``/``) is mounted at ``/static`` when present.
"""

from seal.serve.app import ServeSettings, create_app
from seal.serve.scheduler import Engine, GenRequest

__all__ = ["create_app", "ServeSettings", "Engine", "GenRequest"]
