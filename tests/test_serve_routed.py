"""``seal serve`` on a ``routed`` store: a real server on 127.0.0.1 and the real ``openai`` client (tiny model).

Each chat is routed by its last user message to the adapter of the document it is about (``seal_routes`` in
the response, header ``x-seal-document``); a question about no learned document gets the base model's answer;
forgetting a document leaves the other's answers unchanged; ``seal@N`` routes among version N's documents.
"""

from __future__ import annotations

import pytest

from tests.serve_helpers import KEY, SETS, ServeProcess

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

GUILD = "The Verdant Guild\n\nThe Verdant Guild was founded in 1847 by Ilsabet Quorne in Marrowick.\n"
RAIL = "Pellucid Railway\n\nThe Pellucid Railway opened in 1912 and crosses the salt flats of Orveny.\n"
Q_GUILD, Q_RAIL, Q_NEITHER = ("Who founded the Verdant Guild in Marrowick?", "When did the Pellucid Railway open?",
                              "What is the capital of France?")


def chat(client, question: str, model: str = "seal"):
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": question}], max_tokens=8, temperature=0)
    resp = raw.parse()
    return resp.choices[0].message.content, (resp.model_extra or {}).get("seal_routes"), raw.headers


def test_routed_store_served(tmp_path, chatty_model_dir):
    sets = [*SETS, "--set", "routing.cache=2", "--set", "inner_loop.lr=1e-2"]
    with ServeProcess(tmp_path / "store", chatty_model_dir, tmp_path / "server.log", key=KEY, sets=sets,
                      extra=["--serving-slots", "2"]) as srv:
        client = srv.client()
        base_answer = chat(client, Q_NEITHER, "base")[0]
        g = srv.learn(GUILD, name="guild.txt", title="The Verdant Guild", strategy="routed")
        assert g["status"] == "done" and g["strategy"] == "routed", g
        r = srv.learn(RAIL, name="rail.txt", title="Pellucid Railway")
        assert r["status"] == "done" and r["strategy"] == "routed"
        assert srv.health()["strategy"] == "routed"
        docs = {d["name"]: d["id"] for d in srv.raw("GET", "/v1/documents")[1]["data"]}

        ans_g, routes_g, headers = chat(client, Q_GUILD)
        assert routes_g[0]["document"] == docs["guild.txt"] and headers["x-seal-document"] == str(docs["guild.txt"])
        ans_r, routes_r, _ = chat(client, Q_RAIL)
        assert routes_r[0]["document"] == docs["rail.txt"]
        ans_n, routes_n, headers = chat(client, Q_NEITHER)
        assert routes_n[0]["document"] is None and headers["x-seal-document"] == "base" and ans_n == base_answer
        # seal@<first version> knows only the guild: the railway question goes to the base model there
        assert chat(client, Q_RAIL, f"seal@{g['version']}")[1][0]["document"] is None

        status, body, _ = srv.raw("DELETE", f"/v1/documents/{docs['guild.txt']}")
        assert status == 202 and srv.wait_job(body["job_id"])["status"] == "done"
        assert chat(client, Q_RAIL)[0] == ans_r  # the railway's adapter was not touched
        after_g, routes, _ = chat(client, Q_GUILD)
        assert routes[0]["document"] is None and after_g == chat(client, Q_GUILD, "base")[0]
        status, probes, _ = srv.raw("GET", f"/v1/documents/{docs['rail.txt']}/probes")
        assert status == 200 and probes["after_version"] == srv.health()["version"]
