"""The server's learning jobs, persisted in SQLite: ``STORE/serve-jobs.sqlite``, beside the store's database.

Why a file of its own rather than a table in ``seal-store.sqlite``: the store's schema is the store's (versioned
by ``seal.store_format``, read by every ``seal`` command, written only under the store's writer lock), while the
job queue is the server's own bookkeeping, updated on every submit and state change, also while this server's
engine thread holds the writer lock for a learn. Deleting ``serve-jobs.sqlite`` loses the queue, never
knowledge. A job is ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``rejected`` (the forgetting guard said
no). Kinds: ``learn`` (params: text, name, title, format, strategy, guard, seed), ``forget`` (document_id),
``rollback`` (version)::

    jobs = JobStore(store_path)
    job = jobs.submit("learn", {"text": "...", "name": "notes.txt"}, max_queue=8)   # QueueFull beyond
    job = jobs.claim_next()                     # the engine thread: oldest queued -> running
    jobs.finish(job.id, "done", version=3, seconds=1.2)

:meth:`JobStore.interrupted` lists jobs a killed server left ``running``; the engine re-queues them (a kill
mid-training leaves the previous store version live: the store's transaction guarantees it) or, when the
store shows they had committed before the kill, marks them done. ``STORE/serve.lock`` (flock) keeps a second
server off the same store, which would run the same queue.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal.store import StoreError

JOBS_DB = "serve-jobs.sqlite"
SERVE_LOCK = "serve.lock"
STATUSES = ("queued", "running", "done", "failed", "rejected")
MAX_ATTEMPTS = 3
"""A job interrupted this many times (server killed while it ran) is marked failed instead of re-run."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, status TEXT NOT NULL,
  params_json TEXT NOT NULL, created_at REAL NOT NULL, started_at REAL, finished_at REAL, base_version INTEGER,
  version INTEGER, error TEXT, result_json TEXT NOT NULL DEFAULT '{}', attempts INTEGER NOT NULL DEFAULT 0)
"""
_COLS = "id, kind, status, params_json, created_at, started_at, finished_at, base_version, version, error, " \
        "result_json, attempts"


class QueueFull(Exception):
    """Too many jobs are waiting."""


class ServerBusy(StoreError):
    """Another ``seal serve`` already serves this store (two would both run its queue)."""


@dataclass
class Job:
    id: int
    kind: str
    status: str
    params: dict[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    base_version: int | None = None
    """The store's current version when the job started (used to recognise a commit after a kill)."""
    version: int | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0

    @property
    def job_id(self) -> str:
        return f"job-{self.id}"

    def as_dict(self, progress: dict | None = None) -> dict[str, Any]:
        """What ``GET /v1/jobs/{id}`` returns (the document text itself is left out)."""
        p = self.params
        seconds = self.result.get("seconds")
        if seconds is None and self.started_at is not None and self.status == "running":
            seconds = round(time.time() - self.started_at, 3)
        return {"job_id": self.job_id, "object": "job", "kind": self.kind, "status": self.status,
                "version": self.version, "error": self.error, "guard": self.result.get("guard"),
                "strategy": self.result.get("strategy"),
                "seconds": seconds, "document": p.get("name"), "document_id": p.get("document_id"),
                "target_version": p.get("version"), "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "committed_at": self.result.get("committed_at"),
                "live_at": self.result.get("live_at"), "attempts": self.attempts, "progress": progress}


def parse_job_id(job_id: str) -> int | None:
    head, _, num = job_id.partition("-")
    return int(num) if head == "job" and num.isdigit() else None


class JobStore:
    """The jobs table; safe to use from any thread (one connection behind a lock)."""

    def __init__(self, store_path: str | Path) -> None:
        self.path = Path(store_path) / JOBS_DB
        self._lock = threading.Lock()
        self._fd = os.open(Path(store_path) / SERVE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:  # held while this process lives (the kernel drops it if the process is killed)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ServerBusy(f"another `seal serve` is already serving store {Path(store_path).absolute()}") from None
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)

    def _rows(self, sql: str, args: tuple = ()) -> list[Job]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLS} FROM jobs {sql}", args).fetchall()
        return [Job(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], json.loads(r[10]), r[11])
                for r in rows]

    def _update(self, job_id: int, **cols: Any) -> None:
        if "result" in cols:
            cols["result_json"] = json.dumps(cols.pop("result"), default=str)
        sets = ", ".join(f"{k} = ?" for k in cols)
        with self._lock:
            self._conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*cols.values(), job_id))

    # ----------------------------------------------------------------------------- reading
    def get(self, job_id: int) -> Job | None:
        rows = self._rows("WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def recent(self, limit: int = 100) -> list[Job]:
        return self._rows("ORDER BY id DESC LIMIT ?", (limit,))

    def count(self, status: str) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]

    def interrupted(self) -> list[Job]:
        return self._rows("WHERE status = 'running' ORDER BY id")

    # ----------------------------------------------------------------------------- writing
    def submit(self, kind: str, params: dict[str, Any], max_queue: int) -> Job:
        """Queue a job, or raise :class:`QueueFull` when ``max_queue`` jobs are already waiting."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                waiting = self._conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
                if waiting >= max_queue:
                    raise QueueFull(f"{waiting} learning jobs are already waiting (the limit is {max_queue}); "
                                    "try again when one has finished")
                cur = self._conn.execute("INSERT INTO jobs(kind, status, params_json, created_at) VALUES (?, ?, ?, ?)",
                                         (kind, "queued", json.dumps(params), time.time()))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self.get(cur.lastrowid)

    def claim_next(self, base_version: int | None) -> Job | None:
        """The oldest queued job, now marked running (one engine thread calls this)."""
        rows = self._rows("WHERE status = 'queued' ORDER BY id LIMIT 1")
        if not rows:
            return None
        job = rows[0]
        self._update(job.id, status="running", started_at=time.time(), base_version=base_version, error=None,
                     attempts=job.attempts + 1)
        return self.get(job.id)

    def requeue(self, job_id: int, note: str, attempts: int | None = None) -> None:
        """Back to queued (``attempts``: reset the count, e.g. after a clean shutdown that should not count)."""
        cols = {} if attempts is None else {"attempts": attempts}
        self._update(job_id, status="queued", error=note, started_at=None, **cols)

    def finish(self, job_id: int, status: str, *, version: int | None = None, error: str | None = None,
               result: dict[str, Any] | None = None) -> None:
        if status not in STATUSES[2:]:
            raise ValueError(f"not a final status: {status!r}")
        self._update(job_id, status=status, version=version, error=error, finished_at=time.time(),
                     result=result or {})

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        os.close(self._fd)


__all__ = ["JobStore", "Job", "QueueFull", "ServerBusy", "JOBS_DB", "SERVE_LOCK", "MAX_ATTEMPTS", "parse_job_id"]
