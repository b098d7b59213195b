"""The HTTP service's life: a start before the first ingest (ready once a collection exists), open without
keys, CORS off, a graceful stop with requests open, and a Qdrant API key that never shows. Real uvicorn
processes on loopback ports, the embedded store, all-MiniLM-L6-v2."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from ingest.build import run
from tests.conftest import make_settings
from tests.helpers import MINI_V11
from tests.integration.http_server import Server, assert_error, free_port, in_flight, no_trace, server_env

QUERIES = ["bake bread and pastries in an oven", "write Python programs to automate tasks",
           "Patienten pflegen und betreuen", "repair bicycles", "keep the books of a company"]
QDRANT_KEY = "qdrant-secret-key-9f3b7c"


# --- a service started before the first ingest; open (no keys), CORS off; graceful stop -------------
def test_ready_only_once_a_collection_exists_then_open_and_graceful_stop(tmp_path: Path, minilm_path, encoder) -> None:
    settings = make_settings(tmp_path, "edge", model=minilm_path)
    (tmp_path / "store").mkdir()
    server = Server(server_env(settings, load_retry_seconds=1), tmp_path, tmp_path / "late.log")
    try:
        server.wait_listening()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the first attempt has failed (the model loads first)
            body = httpx.get(server.url + "/readyz").json()
            if "not found" in body["detail"]:
                break
            time.sleep(0.3)
        assert_error(httpx.get(server.url + "/readyz"), 503, "NotReady", "'esco_skills' not found",
                     "esco-ingest --release")
        resp = httpx.post(server.url + "/v1/search", json={"text": "bread"})
        assert_error(resp, 503, "NotReady", "loading the model", "not found")
        assert resp.headers["retry-after"] == "5"
        assert httpx.get(server.url + "/healthz").status_code == 200
        run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
        server.wait_ready(60)
        # open without keys; CORS off: no browser origin is allowed
        assert httpx.post(server.url + "/v1/search", json={"text": "bread", "limit": 2}).status_code == 200
        pre = httpx.options(server.url + "/v1/search", headers={"Origin": "http://allowed.example",
                                                               "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in pre.headers
        got = httpx.post(server.url + "/v1/search", json={"text": "bread"}, headers={"Origin": "http://a.example"})
        assert got.status_code == 200 and "access-control-allow-origin" not in got.headers
        # SIGTERM while requests are open: they are answered, then the process exits cleanly
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(httpx.post, server.url + "/v1/search/batch",
                                   json={"texts": QUERIES * 4, "limit": 5}, timeout=60) for _ in range(4)]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and in_flight(server.url) < 5:  # the 4, and the /metrics request
                time.sleep(0.05)
            code = server.stop()
            answers = [f.result() for f in futures]
        # uvicorn ends by re-raising the SIGTERM it handled (after the shutdown), so -15 is a clean stop too
        assert code in (0, -signal.SIGTERM), server.log()[-3000:]
        assert "Application shutdown complete" in server.log() and "Finished server process" in server.log()
        assert all(a.status_code == 200 and len(a.json()) == 20 for a in answers)
        assert "Traceback" not in server.log()
    finally:
        server.stop()


# --- the Qdrant API key never leaves the server ----------------------------------------------------
def test_the_qdrant_api_key_never_shows(tmp_path: Path, minilm_path) -> None:
    settings = make_settings(tmp_path, "edge", model=minilm_path)
    env = server_env(settings, load_retry_seconds=1)
    env.pop("ESCO_QDRANT_PATH")
    env.pop("ESCO_EMBEDDED_ENGINE")
    env.update({"ESCO_QDRANT_URL": f"http://127.0.0.1:{free_port()}", "ESCO_QDRANT_API_KEY": QDRANT_KEY,
                "ESCO_QDRANT_RETRIES": "1", "ESCO_QDRANT_TIMEOUT": "2"})
    server = Server(env, tmp_path, tmp_path / "unreachable.log")
    try:
        server.wait_listening()
        deadline = time.monotonic() + 120
        body: dict[str, Any] = {}
        while time.monotonic() < deadline and "Qdrant" not in body.get("detail", ""):
            body = httpx.get(server.url + "/readyz").json()
            time.sleep(0.3)
        answers = [httpx.get(server.url + "/readyz"), httpx.get(server.url + "/v1/collection"),
                   httpx.post(server.url + "/v1/search", json={"text": "bread"}), httpx.get(server.url + "/metrics"),
                   httpx.get(server.url + "/v1/skills/x"), httpx.get(server.url + "/openapi.json")]
        assert_error(answers[0], 503, "NotReady", "QdrantUnavailable")
        for resp in answers:
            assert QDRANT_KEY not in resp.text and QDRANT_KEY not in str(resp.headers)
            no_trace(resp)
    finally:
        server.stop()
    assert QDRANT_KEY not in server.log()
