"""The HTTP side of ``seal serve``: ``create_app(engine, settings)`` builds the FastAPI app (routes, errors,
auth, limits); the model work happens on the engine thread (:mod:`seal.serve.scheduler`).

Run it with ``seal serve`` (``seal.cli_serve``), or in-process::

    engine = Engine(seal, "seal-store"); engine.start()
    uvicorn.run(create_app(engine, ServeSettings(api_key="k")), host="127.0.0.1", port=8000)

Routes (see README "Serve"): ``GET /health`` (open), ``GET /v1/models``, ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /v1/documents`` (202 + job), ``GET /v1/documents``, ``GET /v1/documents/{id}``
(with its text), ``DELETE /v1/documents/{id}`` (202 + forget job), ``GET /v1/versions``,
``POST /v1/versions/{n}/rollback`` (202 + job), ``GET /v1/jobs``, ``GET /v1/jobs/{job_id}``; ``GET /`` and
``/static/*`` serve ``serve/static/`` when it exists.
With a key, everything but ``/health``, ``/`` and ``/static/*`` needs ``Authorization: Bearer KEY``. Answers
say which store version produced them: header ``x-seal-version`` and field ``seal_version`` (0 = base model).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import sqlite3
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from seal.config import KNOWLEDGE_FORMATS
from seal.continual import STRATEGIES
from seal.documents import DocumentError
from seal.learning import LearnError, _pick_strategy, store_state
from seal.serve.jobs import parse_job_id
from seal.serve.protocol import (
    APIError,
    ChatRequest,
    CompletionRequest,
    DocumentRequest,
    chat_response,
    completion_response,
    error_body,
    new_id,
    stream_events,
    usage,
)
from seal.serve.runner import check_document
from seal.serve.scheduler import Engine, GenRequest, GenResult
from seal.store import DB_NAME, Store, StoreError

log = logging.getLogger("seal.serve")
STATIC = Path(__file__).parent / "static"
OPEN_PATHS = ("/health", "/", "/favicon.ico")


@dataclass
class ServeSettings:
    api_key: str | None = None
    max_body_bytes: int = 1024 * 1024
    max_queue: int = 8
    """Learning jobs that may wait (a running one not counted); 429 beyond."""


class _Reader:
    """A read-only view of the store for HTTP threads (its own SQLite connection; the engine has the other)."""

    def __init__(self, path: Path) -> None:
        conn = sqlite3.connect(path / DB_NAME, timeout=30, isolation_level=None, check_same_thread=False)
        self.store, self.lock = Store(path, conn), threading.Lock()


class Guard:
    """ASGI middleware: the API key (401) and the body limit (413, from Content-Length or while reading)."""

    def __init__(self, app, settings: ServeSettings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path, key = scope["path"], self.settings.api_key
        if key and not (path in OPEN_PATHS or path.startswith("/static/")):
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
                body = error_body("Incorrect or missing API key: send `Authorization: Bearer KEY`",
                                  "invalid_request_error", "invalid_api_key")
                return await JSONResponse(body, 401, headers={"www-authenticate": "Bearer"})(scope, receive, send)
        limit = self.settings.max_body_bytes
        too_big = JSONResponse(error_body(f"the request body is over this server's limit of {limit:,} bytes",
                                          "invalid_request_error", "request_too_large"), 413)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await too_big(scope, receive, send)
        if scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:  # read the body ourselves, counting, and stop at the limit: never more than `limit` in memory
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > limit:
                return await too_big(scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _error(e: APIError) -> JSONResponse:
    return JSONResponse(e.body(), e.status)


def _safe_name(name: str | None, title: str | None) -> str:
    raw = (name or "").strip() or re.sub(r"[^\w.-]+", "-", (title or "").strip()).strip("-.")[:60]
    raw = raw if raw else "document"
    if name is None and "." not in raw:
        raw += ".txt"
    if "/" in raw or "\\" in raw or raw.startswith(".") or not re.fullmatch(r"[\w .()-]+", raw):
        raise APIError(400, f"invalid document name {raw!r}: use letters, digits, spaces, '.', '-', '_'",
                       "invalid_document_name")
    return raw


def create_app(engine: Engine, settings: ServeSettings | None = None) -> FastAPI:
    """The app; starts ``engine`` in its lifespan if it is not running yet, and stops it at shutdown."""
    settings = settings or ServeSettings()
    reader = _Reader(engine.store_path)
    lm = engine.seal.lm

    @asynccontextmanager
    async def lifespan(app):
        await run_in_threadpool(engine.start)
        yield
        await run_in_threadpool(engine.stop)

    app = FastAPI(title="seal serve", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(Guard, settings=settings)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError):
        return _error(e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        errs = e.errors()
        if any(x.get("type") == "json_invalid" for x in errs):
            return _error(APIError(400, "the request body is not valid JSON", "invalid_json"))
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error(APIError(422, f"{where or 'body'}: {first.get('msg', 'invalid value')}", "invalid_value"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        return _error(APIError(e.status_code, str(e.detail), code))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        log.error("unhandled %s on %s %s (traceback below)", type(e).__name__, request.method, request.url.path)
        return _error(APIError(500, "internal server error (see the server log)"))

    def read(fn):
        with reader.lock:
            return fn(reader.store)

    def find_document(doc_id: int):
        try:
            return read(lambda st: st.find_document(doc_id))
        except StoreError:
            raise APIError(404, f"no document {doc_id} in the store", "document_not_found") from None

    def check_model(model: str) -> None:
        read(lambda st: engine.slots.check(st, model))

    async def generate(req: GenRequest) -> GenResult:
        return await asyncio.wrap_future(engine.submit(req))

    def answer(kind: str, body, req: GenRequest, result: GenResult):
        rid, use = new_id("chatcmpl" if kind == "chat" else "cmpl"), usage(result.prompt_tokens,
                                                                            result.completion_tokens)
        headers = {"x-seal-version": str(result.version)}
        if body.stream:
            include = bool(body.stream_options and body.stream_options.include_usage)
            events = stream_events(kind, rid, body.model, result.choices, use, result.version, include)

            async def gen():
                for e in events:
                    yield e

            return StreamingResponse(gen(), media_type="text/event-stream",
                                     headers={**headers, "cache-control": "no-cache"})
        make = chat_response if kind == "chat" else completion_response
        payload = make(rid, body.model, result.choices, use, result.version)
        if result.routes is not None:  # a routed store: which document answered each prompt
            payload["seal_routes"] = result.routes
            first = result.routes[0] if result.routes else None
            headers["x-seal-document"] = str(first["document"]) if first and first["document"] is not None else "base"
        return JSONResponse(payload, headers=headers)

    # ----------------------------------------------------------------------------- open
    @app.get("/health")
    def health():
        running = engine.job
        return {"status": "ok" if engine.running else "stopped", "model": lm.name, "version": engine.slots.live,
                "store_version": read(lambda st: getattr(st.current_version(), "id", 0)),
                "strategy": engine.slots.strategy, "queue": engine.jobs.count("queued"),
                "store_locked": engine.store_locked,
                "running_job": running.job_id if running else None, "pending_requests": engine.pending,
                **dict(engine.stats)}

    @app.get("/")
    def index():
        page = STATIC / "index.html"
        if not page.is_file():
            raise APIError(404, "no web page is installed (serve/static/index.html)", "not_found")
        return FileResponse(page)

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # ----------------------------------------------------------------------------- OpenAI
    @app.get("/v1/models")
    def models():
        versions, live = read(lambda st: st.history()), engine.slots.live
        if engine.slots.merge:  # only the live version exists in the (merged) weights
            ids = ["seal"] + ([f"seal@{live}"] if live else [])
        else:
            ids = ["seal", "base"] + [f"seal@{v.id}" for v in versions]
        created = {f"seal@{v.id}": v.created_at for v in versions}
        return {"object": "list", "data": [
            {"id": i, "object": "model", "created": 0, "owned_by": "seal", "created_at": created.get(i),
             "version": live if i == "seal" else (0 if i == "base" else int(i.partition("@")[2]))}
            for i in ids]}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest):
        max_tokens, stops = body.checked_max_tokens(), body.stops()
        check_model(body.model)
        msgs = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
        if lm.has_chat_template:
            try:
                prompt = lm.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            except Exception as e:  # the template's own raise_exception (roles that must alternate, ...)
                raise APIError(400, f"the model's chat template refused these messages: {e}".splitlines()[0],
                               "invalid_messages") from None
        else:
            prompt = "\n\n".join(m["content"] for m in msgs) + "\n"
        users = [m["content"] for m in msgs if m["role"] == "user"]
        req = GenRequest([prompt], max_tokens, body.model, body.n, body.temperature, body.top_p, body.seed, stops,
                         queries=[users[-1] if users else msgs[-1]["content"]])
        return answer("chat", body, req, await generate(req))

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        max_tokens, stops, prompts = body.checked_max_tokens(), body.stops(), body.prompts()
        check_model(body.model)
        req = GenRequest(prompts, max_tokens, body.model, body.n, body.temperature, body.top_p, body.seed, stops)
        return answer("completion", body, req, await generate(req))

    # ----------------------------------------------------------------------------- learning
    def queued(kind: str, params: dict):
        job = engine.submit_job(kind, params, settings.max_queue)
        return JSONResponse({"job_id": job.job_id, "object": "job", "kind": kind, "status": job.status}, 202)

    @app.post("/v1/documents")
    def add_document(body: DocumentRequest):
        fmt = body.format or engine.seal.cfg.self_edit.format
        if fmt not in KNOWLEDGE_FORMATS:
            raise APIError(400, f"unknown format {fmt!r} (choose from {', '.join(KNOWLEDGE_FORMATS)})",
                           "invalid_format")
        if body.strategy is not None and body.strategy not in STRATEGIES:
            raise APIError(400, f"unknown strategy {body.strategy!r} (choose from {', '.join(STRATEGIES)})",
                           "invalid_strategy")
        name = _safe_name(body.name, body.title)
        try:
            check_document(body.text, name, body.title)
            read(lambda st: _pick_strategy(store_state(st), body.strategy))
        except (DocumentError, LearnError) as e:
            raise APIError(400, str(e), "invalid_document") from None
        return queued("learn", {"text": body.text, "name": name, "title": body.title, "format": fmt,
                                "strategy": body.strategy, "guard": body.guard, "seed": body.seed})

    @app.get("/v1/documents")
    def documents(include_removed: bool = False):
        docs = read(lambda st: st.documents(include_removed=include_removed))
        return {"object": "list", "data": [{"id": d.id, "object": "document", "name": d.name, "title": d.title,
                                            "added_at": d.added_at, "chars": len(d.text), "removed": d.removed}
                                           for d in docs]}

    @app.get("/v1/documents/{doc_id}")
    def document(doc_id: int):
        d = find_document(doc_id)
        return {"id": d.id, "object": "document", "name": d.name, "title": d.title, "added_at": d.added_at,
                "chars": len(d.text), "removed": d.removed, "text": d.text}

    @app.get("/v1/documents/{doc_id}/probes")
    async def document_probes(doc_id: int):
        """The document's probe questions (written when it was learned) answered before (the base model; not
        on a merge store, whose base weights hold every update) and after (the live version), graded."""
        from seal.domains.knowledge import QA, KnowledgeDomain, Passage
        from seal.grading import LexicalGrader

        d = find_document(doc_id)
        qas = [QA(p["question"], p["answer"]) for p in read(lambda st: st.probes([doc_id]))]
        prompts = KnowledgeDomain().task_prompts(lm, Passage(d.title, "", tuple(qas)))
        queries = [f"Topic: {d.title}\n{qa.question}" for qa in qas]  # routed: routed as the evaluation asks them
        tokens, grade = engine.seal.cfg.eval.answer_tokens, LexicalGrader(engine.seal.cfg.eval.f1_threshold)
        after = await generate(GenRequest(prompts, tokens, "seal", queries=queries)) if prompts else None
        before = await generate(GenRequest(prompts, tokens, "base")) if prompts and not engine.slots.merge else None
        rows = []
        for i, qa in enumerate(qas):
            b = before.choices[i]["text"] if before else None
            a = after.choices[i]["text"]
            rows.append({"question": qa.question, "answer": qa.answer, "before": b, "after": a,
                         "right_before": None if b is None else grade.grade(b, qa.answer),
                         "right_after": grade.grade(a, qa.answer)})
        return {"document_id": d.id, "title": d.title, "probes": rows,
                "before_version": 0 if before else None, "after_version": after.version if after else None}

    @app.delete("/v1/documents/{doc_id}")
    def forget_document(doc_id: int):
        doc = find_document(doc_id)
        if doc.removed:
            raise APIError(400, f"document {doc.name!r} (id {doc.id}) is already removed", "already_removed")
        return queued("forget", {"document_id": doc.id, "name": doc.name})

    @app.get("/v1/versions")
    def versions():
        def collect(st: Store):
            docs = {d.id: d.name for d in st.documents(include_removed=True)}
            cur = st.current_version()
            return cur, [{"version": v.id, "object": "version", "kind": v.kind, "parent": v.parent,
                          "document_id": v.document_id, "document": docs.get(v.document_id),
                          "created_at": v.created_at, "strategy": v.config.get("strategy"),
                          "target": v.config.get("target"), "final_loss": v.metrics.get("final_loss"),
                          "current": cur is not None and v.id == cur.id, "live": v.id == engine.slots.live}
                         for v in st.history()]

        cur, data = read(collect)
        return {"object": "list", "data": data, "current": cur.id if cur else 0, "live": engine.slots.live}

    @app.post("/v1/versions/{n}/rollback")
    def rollback_version(n: int):
        try:
            read(lambda st: st.version(n))
        except StoreError:
            raise APIError(404, f"the store has no version {n}", "version_not_found") from None
        return queued("rollback", {"version": n})

    @app.get("/v1/jobs")
    def jobs(limit: int = 50):
        return {"object": "list", "data": [j.as_dict() for j in engine.jobs.recent(max(1, min(limit, 500)))]}

    @app.get("/v1/jobs/{job_id}")
    def job(job_id: str):
        num = parse_job_id(job_id)
        found = engine.jobs.get(num) if num is not None else None
        if found is None:
            raise APIError(404, f"no job {job_id!r}", "job_not_found")
        running = engine.job
        return found.as_dict(engine.progress if running is not None and running.id == found.id else None)

    return app


__all__ = ["create_app", "ServeSettings", "Guard"]
