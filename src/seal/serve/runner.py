"""Running learning jobs on the engine thread: learn / forget / rollback, and recovery after a kill.

Called by :class:`seal.serve.scheduler.Engine` (never from an HTTP thread): :func:`run_job` runs one claimed job
with :mod:`seal.learning` in the learning slots, passing the engine's progress callback (which answers waiting
requests between optimiser steps), records the outcome in the jobs table and makes the committed version live;
:func:`recover` handles jobs a killed server left ``running``. A document's text reaches ``learn`` as a file
named after the document in a temporary directory (:func:`document_file`), so it is checked exactly as
``seal learn`` checks a file (:func:`check_document`, also used by ``POST /v1/documents`` for its 400s)::

    passages = check_document(text, "notes.txt")   # DocumentError: "notes.txt is empty", ...
    run_job(engine, engine.jobs.claim_next(base_version))
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from seal.cli_common import user_errors
from seal.documents import MAX_BYTES, DocumentError, read_document
from seal.learning import GuardRejected, forget, learn, rollback
from seal.serve.jobs import MAX_ATTEMPTS, Job

if TYPE_CHECKING:
    from seal.serve.scheduler import Engine

log = logging.getLogger("seal.serve")


class Stopping(Exception):
    """Raised from a job's progress callback when the server stops: the job is re-queued."""


@contextlib.contextmanager
def document_file(text: str, name: str) -> Iterator[Path]:
    """``text`` as the file ``name`` in a fresh temporary directory (``seal.learning.learn`` reads a path)."""
    with tempfile.TemporaryDirectory(prefix="seal-serve-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        yield path


def check_document(text: str, name: str, title: str | None = None, max_bytes: int = MAX_BYTES) -> list:
    """The checks ``seal learn`` makes on a file (empty, binary, not UTF-8, too large), on text: its passages,
    or DocumentError with the same one-line reason, naming the document instead of a temporary path."""
    with document_file(text, name) as path:
        try:
            return read_document(path, max_bytes=max_bytes, title=title)
        except DocumentError as e:
            raise DocumentError(str(e).replace(str(path), name)) from None


def run_job(engine: Engine, job: Job) -> None:
    """Run ``job`` (already marked running); its new version becomes ``seal`` only after the store commit."""
    engine.job, engine.progress = job, None
    engine.serve_in_job = not (engine.slots.merge and job.kind == "forget")  # a merge forget rebuilds the base
    p, store = job.params, engine.store
    status, version, error, result = "failed", None, None, {}
    start = time.perf_counter()
    try:
        if job.kind == "learn":
            version, result = _learn(engine, p)
        elif job.kind == "forget":
            rep = forget(engine.seal, store, int(p["document_id"]), progress=engine.job_progress)
            version, result = rep.version, {"remaining": rep.remaining, "sequences": rep.sequences}
        elif job.kind == "rollback":
            version = rollback(store, int(p["version"])).id
        else:
            raise ValueError(f"unknown job kind {job.kind!r}")
        status = "done"
    except Stopping:
        engine.jobs.requeue(job.id, "interrupted: the server stopped while it ran; it will run again",
                            attempts=job.attempts - 1)  # a clean stop does not count against the job
        engine.restore()
        return
    except GuardRejected as e:
        status, error, result = "rejected", str(e), {"guard": e.report.as_dict()}
    except user_errors() as e:
        error = str(e)
    except Exception:
        log.exception("job %s failed", job.job_id)
        error = "internal error while running the job (see the server log)"
    finally:
        engine.job, engine.progress = None, None
    result["seconds"] = round(time.perf_counter() - start, 3)
    if status == "done":
        result["committed_at"] = time.time()
    engine.restore()  # the committed version, loaded into a serving slot, becomes `seal` (or the old one stays)
    if status == "done":
        result["live_at"] = time.time()
    engine.jobs.finish(job.id, status, version=version, error=error, result=result)


def _learn(engine: Engine, p: dict) -> tuple[int, dict]:
    with document_file(p["text"], p["name"]) as path:
        try:
            rep = learn(engine.seal, engine.store, path, p.get("format") or engine.seal.cfg.self_edit.format,
                        seed=int(p.get("seed", 0)), strategy=p.get("strategy"), guard=bool(p.get("guard")),
                        progress=engine.job_progress, title=p.get("title"))
        except DocumentError as e:
            raise DocumentError(str(e).replace(str(path), p["name"])) from None
    return rep.version, {"guard": rep.guard, "passages": rep.passages, "sequences": rep.sequences,
                         "fallbacks": rep.fallbacks, "final_loss": rep.final_loss, "strategy": rep.strategy}


def recover(engine: Engine) -> None:
    """Jobs a killed server left running: done if the store shows their commit, else queued again (the kill
    left the previous version current: the store's transaction guarantees it), or failed after
    ``MAX_ATTEMPTS`` interrupted runs."""
    for job in engine.jobs.interrupted():
        committed = committed_version(engine, job)
        if committed is not None:
            engine.jobs.finish(job.id, "done", version=committed,
                               result={"recovered": "committed before the server stopped"})
        elif job.attempts >= MAX_ATTEMPTS:
            engine.jobs.finish(job.id, "failed", error=f"interrupted {job.attempts} times (the server stopped "
                                                       "while it ran); not run again")
        else:
            engine.jobs.requeue(job.id, "interrupted: the server stopped while it ran; queued again")
        log.info("recovered %s: %s", job.job_id, engine.jobs.get(job.id).status)


def committed_version(engine: Engine, job: Job) -> int | None:
    """The version ``job`` committed, if it did (a version made after it started that matches it)."""
    p, store = job.params, engine.store
    later = [v for v in store.history() if v.id > (job.base_version or 0)]
    if job.kind == "learn":
        try:
            passages = check_document(p["text"], p["name"], p.get("title"))
        except DocumentError:
            return None
        sha = hashlib.sha256("\n\n".join(x.context for x in passages).encode()).hexdigest()
        for v in later:
            if v.kind == "learn" and v.document_id is not None:
                doc = store.find_document(v.document_id)
                if doc.sha256 == sha and doc.name == p["name"]:
                    return v.id
    for v in later:
        if job.kind == "forget" and v.kind == "forget" and v.document_id == int(p["document_id"]):
            return v.id
        if job.kind == "rollback" and v.kind == "rollback" and v.config.get("target") == int(p["version"]):
            return v.id
    return None


__all__ = ["run_job", "recover", "committed_version", "check_document", "document_file", "Stopping"]
