"""``seal serve`` end to end: a real server subprocess on 127.0.0.1, driven with the real ``openai`` client, on
the tiny random model (untied embeddings, so greedy answers are non-empty gibberish).

One module-scoped server (API key from SEAL_API_KEY) answers the OpenAI routes, errors, limits, batching and
the learning API; the kill test starts its own server twice on its own store.
"""

from __future__ import annotations

import http.client
import threading
import time

import pytest

from tests.serve_helpers import KEY, SETS, ServeProcess

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

Q = [{"role": "user", "content": "Who founded the Verdant Guild?"}]
DOC = "The Verdant Guild\n\nThe Verdant Guild was founded in 1847 by Ilsabet Quorne in Marrowick.\n"
PARA = ("The Pellucid Railway opened in 1912 and crosses the salt flats of Orveny on a causeway of white stone. "
        "Its engineer, Tamsin Vault, designed 14 bridges and a station roofed with green glass. ")
LONG_DOC = "Pellucid Railway\n\n" + "\n\n".join([PARA * 7] * 3) + "\n"  # three passages of ~1,400 chars
LONGER_DOC = LONG_DOC.replace("1912", "1913") + "\n\n".join([PARA.replace("14", "15") * 7] * 3) + "\n"  # six
BODY_LIMIT = 400_000


@pytest.fixture(scope="module")
def model_dir(chatty_model_dir):
    return chatty_model_dir


@pytest.fixture(scope="module")
def srv(tmp_path_factory, model_dir):
    tmp = tmp_path_factory.mktemp("serve")
    with ServeProcess(tmp / "store", model_dir, tmp / "server.log", key=KEY,
                      extra=["--max-body-bytes", str(BODY_LIMIT), "--batch-wait-ms", "20", "--serving-slots", "2"]
                      ) as server:
        yield server


def chat(client, model="seal", **kw):
    kw = {"max_tokens": 8, "temperature": 0, **kw}
    raw = client.chat.completions.with_raw_response.create(model=model, messages=Q, **kw)
    return raw.parse(), int(raw.headers["x-seal-version"])


# --------------------------------------------------------------------------------------------- OpenAI routes
def test_models_and_health(srv):
    ids = [m.id for m in srv.client().models.list().data]
    assert ids[:2] == ["seal", "base"]
    h = srv.health()
    assert h["status"] == "ok" and h["model"] == str(srv.model_dir) and h["queue"] == 0 and "batches" in h


def test_chat_stream_equals_non_stream_and_usage(srv, tokenizer):
    client = srv.client()
    resp, version = chat(client, max_tokens=10)
    text = resp.choices[0].message.content
    assert text and resp.object == "chat.completion" and resp.model == "seal" and version == resp.seal_version
    prompt = tokenizer.apply_chat_template(Q, tokenize=False, add_generation_prompt=True)
    assert resp.usage.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert 0 < resp.usage.completion_tokens <= 10
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.choices[0].finish_reason == ("length" if resp.usage.completion_tokens == 10 else "stop")
    chunks = list(client.chat.completions.create(model="seal", messages=Q, max_tokens=10, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == resp.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == resp.usage.completion_tokens
    # the same question as `seal ask` asks it, through the same model id, gives the same greedy answer
    assert chat(client, max_tokens=10)[0].choices[0].message.content == text


def test_completions_n2_and_stop(srv, tokenizer):
    client = srv.client()
    r = client.completions.create(model="base", prompt="The Verdant Guild", max_tokens=6, n=2, temperature=0)
    assert r.object == "text_completion" and len(r.choices) == 2 and r.choices[0].text == r.choices[1].text
    assert r.usage.prompt_tokens == len(tokenizer("The Verdant Guild", add_special_tokens=False)["input_ids"])
    chunks = list(client.completions.create(model="base", prompt="The Verdant Guild", max_tokens=6, temperature=0,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    sampled = client.completions.create(model="seal", prompt="The", max_tokens=6, n=2, temperature=1.0, seed=7)
    again = client.completions.create(model="seal", prompt="The", max_tokens=6, n=2, temperature=1.0, seed=7)
    assert [c.text for c in sampled.choices] == [c.text for c in again.choices]  # a seed reproduces
    full = r.choices[0].text
    if len(full) > 2:
        cut = client.completions.create(model="base", prompt="The Verdant Guild", max_tokens=6, temperature=0,
                                        stop=[full[1:3]])
        assert cut.choices[0].text == full[:full.find(full[1:3])] and cut.choices[0].finish_reason == "stop"


def test_openai_style_errors(srv):
    client = srv.client()
    with pytest.raises(openai.NotFoundError) as e:
        chat(client, model="gpt-4")
    assert e.value.body["code"] == "model_not_found" and "gpt-4" in e.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        chat(client, model="seal@999")
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, max_tokens=513)
    assert e.value.body["code"] == "max_tokens_too_large" and "512" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        chat(client, n=9)
    with pytest.raises(openai.UnprocessableEntityError) as e:
        chat(client, temperature=5)
    assert set(e.value.body) >= {"message", "type", "code"}
    status, body, _ = srv.raw("POST", "/v1/chat/completions", {"model": "seal"})
    assert status == 422 and body["error"]["message"] == "messages: Field required"
    status, body, _ = srv.raw("POST", "/v1/chat/completions", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and body["error"]["code"] == "invalid_json"
    status, body, _ = srv.raw("GET", "/v1/nothing-here")
    assert status == 404 and set(body["error"]) >= {"message", "type", "code"}
    assert "Traceback" not in str(body)


def test_auth(srv):
    for key in ("wrong-key", None):
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key=key or "x", max_retries=0)
        if key is None:
            status, body, headers = srv.raw("GET", "/v1/models", headers={"Authorization": ""})
            assert status == 401 and body["error"]["code"] == "invalid_api_key"
            assert headers["www-authenticate"] == "Bearer"
        else:
            with pytest.raises(openai.AuthenticationError):
                client.models.list()
    for path in ("/v1/versions", "/v1/documents", "/v1/jobs"):
        assert srv.raw("GET", path, headers={"Authorization": "Bearer nope"})[0] == 401
    for path in ("/health", "/", "/static/index.html"):  # open without a key (the page asks for it)
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request("GET", path)
        assert conn.getresponse().status == 200, path
        conn.close()


def test_body_limit(srv):
    # a declared length over the limit: 413 at once, before the body is sent
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.putrequest("POST", "/v1/documents")
    for k, v in (("Authorization", f"Bearer {KEY}"), ("Content-Type", "application/json"),
                 ("Content-Length", str(50 * BODY_LIMIT))):
        conn.putheader(k, v)
    conn.endheaders(b"{")
    r = conn.getresponse()
    assert r.status == 413 and b"request_too_large" in r.read()
    conn.close()
    # no length given (chunked): counted while it streams in
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    piece = b" " * 50_000
    conn.request("POST", "/v1/documents", body=iter([b"{"] + [piece] * (BODY_LIMIT // len(piece) + 1)),
                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413 and b"request_too_large" in r.read()
    conn.close()


def test_concurrent_chats_share_batches(srv):
    before = srv.health()
    barrier, answers, errors = threading.Barrier(8), [], []

    def one():
        client = srv.client()
        barrier.wait(30)
        try:
            answers.append(chat(client, max_tokens=12)[0].choices[0].message.content)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    after = srv.health()
    assert not errors and len(answers) == 8 and len(set(answers)) == 1
    assert after["requests"] - before["requests"] == 8
    assert after["batches"] - before["batches"] < 8  # answered in shared generation batches


# --------------------------------------------------------------------------------------------- learning API
@pytest.mark.parametrize("data, reason", [("", "is empty"), (" \n\t\n", "is empty"),
                                          ("ab\x00cd\n", "looks binary"), ("x" * 300_000, "is too large")])
def test_bad_documents_give_seal_learns_reason(srv, tmp_path, data, reason):
    from seal.documents import DocumentError, read_document

    path = tmp_path / "notes.txt"
    path.write_text(data)
    with pytest.raises(DocumentError) as e:
        read_document(path)  # what `seal learn notes.txt` checks
    status, body, _ = srv.raw("POST", "/v1/documents", {"text": data, "name": "notes.txt"})
    assert status == 400 and reason in body["error"]["message"]
    assert body["error"]["message"] == str(e.value).replace(str(path), "notes.txt")
    status, body, _ = srv.raw("POST", "/v1/documents", {"text": DOC, "format": "haiku"})
    assert status == 400 and body["error"]["code"] == "invalid_format"


def test_learn_forget_rollback(srv):
    client = srv.client()
    job = srv.learn(DOC, title="The Verdant Guild", name="guild.txt")
    assert job["status"] == "done" and job["error"] is None and job["seconds"] > 0 and job["guard"] is not None
    v = job["version"]
    versions = srv.raw("GET", "/v1/versions")[1]
    assert versions["live"] == versions["current"] == v
    assert [x for x in versions["data"] if x["version"] == v][0]["document"] == "guild.txt"
    resp, served = chat(client)
    assert served == v == resp.seal_version
    assert chat(client, model=f"seal@{v}")[0].choices[0].message.content == resp.choices[0].message.content
    assert f"seal@{v}" in [m.id for m in client.models.list().data]
    docs = srv.raw("GET", "/v1/documents")[1]["data"]
    doc = [d for d in docs if d["name"] == "guild.txt"][0]
    assert doc["title"] == "The Verdant Guild" and not doc["removed"]
    status, probes, _ = srv.raw("GET", f"/v1/documents/{doc['id']}/probes")  # answered before and after
    assert status == 200 and probes["probes"] and probes["after_version"] == v and probes["before_version"] == 0
    assert all({"question", "answer", "before", "after", "right_before", "right_after"} <= set(r)
               for r in probes["probes"])
    assert srv.raw("GET", "/v1/documents/99999/probes")[0] == 404

    status, body, _ = srv.raw("DELETE", f"/v1/documents/{doc['id']}")
    assert status == 202 and body["kind"] == "forget"
    forgot = srv.wait_job(body["job_id"])
    assert forgot["status"] == "done" and forgot["version"] > v
    assert all(d["id"] != doc["id"] for d in srv.raw("GET", "/v1/documents")[1]["data"])
    assert srv.raw("DELETE", f"/v1/documents/{doc['id']}")[0] == 400  # already removed
    assert srv.raw("DELETE", "/v1/documents/99999")[0] == 404
    assert chat(client)[1] == forgot["version"]

    status, body, _ = srv.raw("POST", f"/v1/versions/{v}/rollback")
    assert status == 202
    rolled = srv.wait_job(body["job_id"])
    assert rolled["status"] == "done"
    rv = [x for x in srv.raw("GET", "/v1/versions")[1]["data"] if x["version"] == rolled["version"]][0]
    assert rv["kind"] == "rollback" and rv["target"] == v and rv["live"]
    resp, served = chat(client)
    assert served == rolled["version"]
    assert resp.choices[0].message.content == chat(client, model=f"seal@{v}")[0].choices[0].message.content
    assert srv.raw("POST", "/v1/versions/999/rollback")[0] == 404
    assert srv.raw("GET", "/v1/jobs/job-99999")[0] == 404


def test_a_job_waits_while_another_process_writes_and_chat_goes_on(srv):
    """Another writer (a `seal learn` from the CLI) holds the store's lock: the job waits queued, chat is answered,
    and the job runs once the lock is released."""
    import fcntl
    import os

    from seal.store import LOCK_NAME

    fd = os.open(srv.store / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        status, body, _ = srv.raw("POST", "/v1/documents", {"text": DOC.replace("1847", "1850"), "name": "w.txt"})
        assert status == 202
        time.sleep(1.0)
        t0 = time.monotonic()
        assert chat(srv.client())[0].choices[0].message.content
        assert time.monotonic() - t0 < 10
        assert srv.job(body["job_id"])["status"] == "queued" and srv.health()["store_locked"]
    finally:
        os.close(fd)  # releases the lock
    assert srv.wait_job(body["job_id"])["status"] == "done"
    assert not srv.health()["store_locked"]


def test_chats_during_learn_switch_only_after_commit(srv):
    """Chats sent while a learn job trains all succeed; each is answered by the old or the new version, the new
    one only once the job has committed and made it live, and each answer is exactly its version's."""
    old = srv.health()["version"]
    during_before = srv.health()["batches_during_jobs"]
    status, body, _ = srv.raw("POST", "/v1/documents", {"text": LONGER_DOC, "name": "railway.txt"})
    assert status == 202
    results, errors, stop = [], [], threading.Event()

    def worker():
        client = srv.client()
        for _ in range(400):  # bounded
            if stop.is_set():
                return
            t0 = time.time()
            try:
                resp, version = chat(client, max_tokens=6)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return
            results.append((t0, time.time(), version, resp.choices[0].message.content))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        job = srv.wait_job(body["job_id"], timeout=60)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert job["status"] == "done", job
    new = job["version"]
    assert not errors and results
    assert {v for _, _, v, _ in results} <= {old, new}
    assert all(t1 >= job["live_at"] for _, t1, v, _ in results if v == new)  # never before the switch
    assert all(v == new for t0, _, v, _ in results if t0 > job["live_at"])  # always after it
    inside = [r for r in results if r[0] > job["started_at"] and r[1] < job["committed_at"]]
    assert inside and srv.health()["batches_during_jobs"] > during_before  # answered while it trained
    client = srv.client()
    ref = {v: chat(client, model=f"seal@{v}" if v else "base", max_tokens=6)[0].choices[0].message.content
           for v in (old, new)}
    assert all(text == ref[v] for _, _, v, text in results)


def test_more_versions_at_once_than_serving_slots(srv):
    """Requests for every version at once (more than the 2 serving slots hold) are all answered, each by its own
    version, exactly as when asked alone."""
    models = [f"seal@{v['version']}" for v in srv.raw("GET", "/v1/versions")[1]["data"]] + ["base", "seal"]
    assert len(models) >= 5
    barrier, together = threading.Barrier(len(models)), {}

    def one(model):
        client = srv.client()
        barrier.wait(30)
        resp, version = chat(client, model=model, max_tokens=4)
        together[model] = (resp.choices[0].message.content, version)

    threads = [threading.Thread(target=one, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    client = srv.client()
    alone = {m: (lambda r: (r[0].choices[0].message.content, r[1]))(chat(client, model=m, max_tokens=4))
             for m in models}
    assert together == alone
    assert all(alone[m][1] == int(m.partition("@")[2]) for m in models if "@" in m) and alone["base"][1] == 0


def learn_outside(store, model_dir, path):
    """What `seal learn PATH` does, from this (another) process: its new version and `seal ask`'s answer."""
    import json

    import torch

    from seal.config import SealConfig
    from seal.engine import Seal
    from seal.learning import ask, config_for_store, learn
    from seal.store import Store

    threads = torch.get_num_threads()
    cfg = SealConfig.preset("cpu").override([f"model.name={json.dumps(str(model_dir))}", "inner_loop.epochs=1",
                                             "self_edit.max_new_tokens=16", "model.threads=1"])
    try:
        with Store.open(store, base_model=cfg.model.name) as st:
            s = Seal.load(config_for_store(cfg, st), slots=2)
            version = learn(s, st, path).version
            return version, ask(s, st, [Q[0]["content"]], max_new_tokens=8)[0]
    finally:
        torch.set_num_threads(threads)


def test_kill_mid_learn_and_recovery_on_a_merge_store(tmp_path, model_dir):
    """SIGKILL mid-learn, restart on the same store: the previous version is live, the job runs again to done,
    nothing is lost. Also: a full job queue answers 429; a merge store serves only `seal`; a learn by another
    process is noticed and served."""
    from seal.store import Store

    store = tmp_path / "store"
    slow = [*SETS, "--set", "inner_loop.epochs=30"]
    first = ServeProcess(store, model_dir, tmp_path / "server1.log", sets=slow, extra=["--max-queue", "1"]).start()
    try:
        a = first.learn(DOC, name="a.txt", strategy="merge")
        assert a["status"] == "done"
        answer_a = chat(first.client())[0].choices[0].message.content
        status, body, _ = first.raw("POST", "/v1/documents", {"text": LONG_DOC, "name": "b.txt"})
        assert status == 202
        b_id = body["job_id"]
        codes = [first.raw("POST", "/v1/documents", {"text": DOC.replace("1847", str(1900 + i)),
                                                    "name": f"c{i}.txt"}) for i in range(2)]
        full = [c for c in codes if c[0] == 429]
        assert full and full[0][1]["error"]["code"] == "queue_full"
        queued = [c[1]["job_id"] for c in codes if c[0] == 202]
        deadline = time.monotonic() + 30
        while (first.job(b_id)["progress"] or {}).get("phase") != "train" and time.monotonic() < deadline:
            time.sleep(0.02)
        resp, served = chat(first.client())  # answered between training steps, by the merged weights of A
        assert served == a["version"] and resp.choices[0].message.content == answer_a
        assert first.job(b_id)["status"] == "running"
        first.kill()  # mid-training
    finally:
        first.stop()
    with Store.open(store) as st:  # the kill left the previous version current
        assert st.current_version().id == a["version"]
        assert [d.name for d in st.documents()] == ["a.txt"]
    second = ServeProcess(store, model_dir, tmp_path / "server2.log", sets=slow).start()
    try:
        h, b = second.health(), second.job(b_id)
        assert h["version"] == a["version"] or b["status"] == "done"
        b = second.wait_job(b_id, timeout=60)
        assert b["status"] == "done" and b["attempts"] == 2 and b["version"] > a["version"], b
        for q in queued:
            assert second.wait_job(q, timeout=60)["status"] == "done"
        names = [d["name"] for d in second.raw("GET", "/v1/documents")[1]["data"]]
        assert names == ["a.txt", "b.txt"] + [f"c{i}.txt" for i, c in enumerate(codes) if c[0] == 202]
        versions = [v["version"] for v in second.raw("GET", "/v1/versions")[1]["data"]]
        assert versions == list(range(1, len(names) + 1))
        client = second.client()
        assert chat(client)[1] == versions[-1]
        assert [m.id for m in client.models.list().data] == ["seal", f"seal@{versions[-1]}"]
        for model in ("base", "seal@1"):
            with pytest.raises(openai.BadRequestError) as e:
                chat(client, model=model)
            assert e.value.body["code"] == "version_not_servable" and "merge" in e.value.body["message"]
        status, body, _ = second.raw("POST", "/v1/documents", {"text": DOC, "strategy": "accumulate"})
        assert status == 400 and "merge" in body["error"]["message"]

        doc = tmp_path / "d.txt"
        doc.write_text(DOC.replace("1847", "1777"))
        version, answer = learn_outside(store, model_dir, doc)
        deadline = time.monotonic() + 20
        while second.health()["version"] != version and time.monotonic() < deadline:
            time.sleep(0.1)
        resp, served = chat(client)
        assert served == version and resp.choices[0].message.content == answer
    finally:
        second.stop()


def test_traffic_between_training_steps_does_not_change_what_is_learned(tmp_path, model_dir):
    """In-process engine: a learn answered around by sampled and greedy requests (which use the global RNG and
    the bank) stores exactly the adapter the same learn stores without traffic."""
    import json

    from seal.config import SealConfig
    from seal.engine import Seal
    from seal.serve import Engine, GenRequest
    from seal.store import Store

    cfg = SealConfig.preset("cpu").override([f"model.name={json.dumps(str(model_dir))}", "inner_loop.epochs=2",
                                             "self_edit.max_new_tokens=16", "self_edit.temperature=1.0"])

    def run(traffic: bool):
        store = tmp_path / f"store-{traffic}"
        Store.open(store, create=True, base_model=cfg.model.name).close()
        engine = Engine(Seal.load(cfg, slots=5), store)
        futures, progress = [], engine.job_progress

        def busy_progress(phase, done, total):  # requests are waiting at every step (a sampled and a greedy one)
            for t in (1.0, 0.0):
                prompt = engine.seal.lm.chat(f"Question {len(futures)}?")
                futures.append(engine.submit(GenRequest([prompt], 4, "seal", temperature=t)))
            progress(phase, done, total)

        if traffic:
            engine.job_progress = busy_progress
        engine.start()
        try:
            job = engine.submit_job("learn", {"text": LONG_DOC, "name": "railway.txt", "seed": 3}, max_queue=1)
            deadline = time.monotonic() + 60
            while engine.jobs.get(job.id).status in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(0.02)
            assert engine.jobs.get(job.id).status == "done"
            assert all(f.result(60).choices for f in futures)
            with Store.open(store) as st:
                return st.load_adapter(), engine.stats["batches_during_jobs"]
        finally:
            engine.stop()
            engine.jobs.close()

    quiet, _ = run(False)
    busy, served = run(True)
    assert served > 0
    assert quiet.keys() == busy.keys() and all(bool((quiet[k] == busy[k]).all()) for k in quiet)
