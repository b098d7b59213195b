"""The HTTP service end to end: a real uvicorn process on a loopback port, the embedded store, a real small
model (all-MiniLM-L6-v2), httpx as the client.

Three servers: ``served`` (API keys, tight limits, CORS for one origin, the mini release in en + de),
``late`` (no keys, no CORS, started on an empty store: ready once a release is ingested) and ``unreachable``
(a Qdrant server that does not answer, with a Qdrant API key that must never show).
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from ingest.build import run
from search import SkillSearch
from tests.conftest import make_settings
from tests.helpers import MINI_V11, MINI_V12, fixtures
from tests.integration.http_server import assert_error, server_env, serving

KEYS = ("test-key-alpha-1", "test-key-beta-22")
ORIGIN = "http://allowed.example"
LIMITS = dict(max_text_chars=500, max_batch=8, max_body_bytes=4096, max_limit=50)
QUERIES = ["bake bread and pastries in an oven", "write Python programs to automate tasks",
           "Patienten pflegen und betreuen", "repair bicycles", "keep the books of a company"]
FILTERS: list[dict[str, Any]] = [
    {}, {"skill_type": "knowledge"}, {"language": "de"}, {"reuse_level": ["transversal", "cross-sector"]},
    {"limit": 3, "threshold": 0.2}, {"skill_type": "skill/competence", "language": "en", "limit": 4},
]
# Where the library has search modes: answers are compared in exact order in the dense mode; the order of
# tied fused ranks in the hybrid mode is not yet the same in two processes (see same_hits).
HAS_MODES = "mode" in inspect.signature(SkillSearch.search).parameters
DENSE: dict[str, Any] = {"mode": "dense"} if HAS_MODES else {}


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store_settings(tmp_path_factory: pytest.TempPathFactory, minilm_path: str, encoder):
    settings = make_settings(tmp_path_factory.mktemp("http"), "edge", model=minilm_path)
    run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    return settings


@pytest.fixture(scope="module")
def served(store_settings, tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("served")
    env = server_env(store_settings, api_keys=",".join(KEYS), cors_origins=ORIGIN, batch_wait_ms=30, **LIMITS)
    with serving(env, cwd) as server:
        yield server


@pytest.fixture(scope="module")
def client(served):
    # keep-alive shorter than the server's: a pooled connection is never reused just as the server closes it
    limits = httpx.Limits(max_connections=32, keepalive_expiry=5)
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {KEYS[0]}"}, timeout=60,
                      limits=limits) as c:
        yield c


@pytest.fixture(scope="module")
def local(store_settings, encoder):
    """The same collection searched in-process: the reference for every answer."""
    with SkillSearch(store_settings, encoder=encoder) as s:
        yield s


def same_hits(got: list[dict[str, Any]], want: list[Any], ordered: bool = True) -> None:
    """The hits of the service equal the library's: in order, or (``ordered=False``) as a set."""
    expect = [h.to_dict() | {"score": pytest.approx(h.score, abs=1e-5)} for h in want]
    if not ordered:  # a tie at the cut may swap the last hit for the next one
        key = lambda h: (h["concept_uri"], h["language"])  # noqa: E731
        assert len(got) == len(expect)
        common = {key(h) for h in got} & {key(h) for h in expect}
        assert len(common) >= len(got) - 1, (got, expect)
        got, expect = sorted((h for h in got if key(h) in common), key=key), sorted(
            (h for h in expect if key(h) in common), key=key)
    assert [(h["concept_uri"], h["language"]) for h in got] == [(h["concept_uri"], h["language"]) for h in expect]
    assert got == expect


# --- probes, page, OpenAPI -------------------------------------------------------------------------
def test_probes_answer_without_a_key(served) -> None:
    assert httpx.get(served.url + "/healthz").json() == {"status": "alive"}
    ready = httpx.get(served.url + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "collection": "esco_skills"}


def test_openapi_and_docs_list_every_endpoint_and_no_write_route(served) -> None:
    spec = httpx.get(served.url + "/openapi.json").json()
    paths = {p: set(ops) for p, ops in spec["paths"].items()}
    assert paths == {
        "/healthz": {"get"}, "/readyz": {"get"}, "/v1/search": {"post"}, "/v1/search/batch": {"post"},
        "/v1/extract": {"post"}, "/v1/skills/{uri}": {"get"}, "/v1/collection": {"get"}, "/metrics": {"get"},
    }
    docs = httpx.get(served.url + "/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text
    for method in ("PUT", "DELETE", "PATCH"):
        assert_error(httpx.request(method, served.url + "/v1/search"), 405, "MethodNotAllowed")


def test_page_and_its_static_files(served) -> None:
    page = httpx.get(served.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for el in ('id="text"', 'id="skill_type"', 'id="reuse_level"', 'id="language"', 'id="threshold"',
               'id="limit"', 'id="hits"', '/static/app.js'):
        assert el in page.text
    js = httpx.get(served.url + "/static/app.js")
    assert js.status_code == 200 and "/v1/search" in js.text
    assert httpx.get(served.url + "/static/style.css").status_code == 200
    assert_error(httpx.get(served.url + "/static/nothing.js"), 404, "NotFound")


# --- searching -------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", FILTERS, ids=lambda o: ",".join(o) or "defaults")
def test_search_equals_the_library(client, local, options) -> None:
    for text in QUERIES:
        resp = client.post("/v1/search", json={"text": text, **options, **DENSE})
        assert resp.status_code == 200, resp.text
        same_hits(resp.json(), local.search(text, **options, **DENSE))
        if HAS_MODES:  # the default mode too (hybrid where the collection has it)
            same_hits(client.post("/v1/search", json={"text": text, **options}).json(), local.search(text, **options),
                      ordered=False)
    assert any(client.post("/v1/search", json={"text": q, **options}).json() for q in QUERIES)


def test_batch_equals_single_calls(client, local) -> None:
    resp = client.post("/v1/search/batch", json={"texts": QUERIES, "limit": 5, "skill_type": "skill/competence",
                                                 **DENSE})
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert len(got) == len(QUERIES)
    for text, hits in zip(QUERIES, got):
        same_hits(hits, local.search(text, limit=5, skill_type="skill/competence", **DENSE))


def _batch_stats(client: httpx.Client) -> tuple[float, float]:
    text = client.get("/metrics").text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line.startswith("esco_batch_requests_")}
    return values["esco_batch_requests_sum"], values["esco_batch_requests_count"]


def test_concurrent_queries_are_merged_and_answered_as_single_calls(client, local) -> None:
    jobs = [(q, f) for q in QUERIES for f in FILTERS] * 2
    reqs_before, calls_before = _batch_stats(client)
    barrier = threading.Barrier(16)

    def one(job: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any], httpx.Response]:
        text, options = job
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        return text, options, client.post("/v1/search", json={"text": text, **options, **DENSE})

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, jobs))
    for text, options, resp in results:
        assert resp.status_code == 200, resp.text
        same_hits(resp.json(), local.search(text, **options, **DENSE))
    reqs, calls = _batch_stats(client)
    assert reqs - reqs_before == len(jobs)  # every request went through the batcher ...
    assert calls - calls_before < len(jobs)  # ... and some shared a call


def test_an_invalid_query_in_a_merged_call_fails_alone(client, local) -> None:
    # a blank text passes the request model and is refused by the library: merged with good queries of the
    # same options, it must fail alone; a filter the collection does not have fails in its own group
    bad = {0: {"text": "   "}, 1: {"text": "bake bread", "language": "fr"}}
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client.post, "/v1/search", json={**bad.get(i % 4, {"text": QUERIES[i % 5]}), **DENSE})
                   for i in range(16)]
        answers = [f.result() for f in futures]
    for i, resp in enumerate(answers):
        if i % 4 == 0:
            assert_error(resp, 400, "InvalidQuery", "empty or blank")
        elif i % 4 == 1:
            body = assert_error(resp, 400, "InvalidFilter", "'fr'", "valid values are: ")
            assert body["field"] == "language" and sorted(body["valid"]) == ["de", "en"]
        else:
            same_hits(resp.json(), local.search(QUERIES[i % 5], **DENSE))


# --- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, status, kind, needles", [
    ({"text": "bread", "skill_type": "skills"}, 400, "InvalidFilter", ["valid values are: skill/competence, knowledge"]),
    ({"text": "bread", "reuse_level": "global"}, 400, "InvalidFilter", ["transversal", "occupation-specific"]),
    ({"text": "bread", "relation": "sometimes"}, 400, "InvalidFilter", ["essential, optional, any"]),
    ({"text": "bread", "occupation": "baker"}, 400, "InvalidFilter", ["http://data.europa.eu/esco/occupation/"]),
    ({"text": "   "}, 400, "InvalidQuery", ["empty or blank"]),
    ({"text": "bread", "limit": 0}, 400, "InvalidQuery", ["limit must be an integer from 1"]),
    ({"text": "bread", "threshold": 1.5}, 400, "InvalidQuery", ["threshold must be a cosine score"]),
    ({"text": "bread", "limit": "many"}, 422, "ValidationError", ["limit"]),
    ({"text": 42}, 422, "ValidationError", ["text"]),
    ({"query": "bread"}, 422, "ValidationError", ["text: Field required", "query"]),
    ({"text": "bread", "skill_typ": "knowledge"}, 422, "ValidationError", ["skill_typ"]),
])
def test_bad_requests_get_the_library_message(client, body, status, kind, needles) -> None:
    body_out = assert_error(client.post("/v1/search", json=body), status, kind, *needles)
    if kind == "InvalidFilter":
        assert body_out["field"] in body and body_out.get("valid") != []


def test_invalid_filter_lists_the_valid_values_as_data(client) -> None:
    body = assert_error(client.post("/v1/search", json={"text": "x", "skill_type": "skills"}), 400, "InvalidFilter")
    assert body["field"] == "skill_type" and body["valid"] == ["skill/competence", "knowledge"]


def test_malformed_json_is_422(client) -> None:
    resp = client.post("/v1/search", content=b'{"text": "bread",', headers={"content-type": "application/json"})
    assert_error(resp, 422, "ValidationError", "JSON")
    assert_error(client.post("/v1/search/batch", json={"texts": []}), 422, "ValidationError", "texts")


# --- limits ----------------------------------------------------------------------------------------
def test_limits_answer_413(client) -> None:
    ok = client.post("/v1/search", json={"text": "b" * LIMITS["max_text_chars"], "limit": LIMITS["max_limit"]})
    assert ok.status_code == 200, ok.text
    assert_error(client.post("/v1/search", json={"text": "b" * (LIMITS["max_text_chars"] + 1)}), 413, "TooLarge",
                 "501 characters", "at most 500", "ESCO_SERVICE_MAX_TEXT_CHARS")
    assert_error(client.post("/v1/search", json={"text": "bread", "limit": 51}), 413, "TooLarge",
                 "ESCO_SERVICE_MAX_LIMIT")
    assert_error(client.post("/v1/search/batch", json={"texts": ["bread"] * 9}), 413, "TooLarge",
                 "9 texts", "at most 8", "ESCO_SERVICE_MAX_BATCH")
    assert client.post("/v1/search/batch", json={"texts": ["bread"] * 8}).status_code == 200
    assert_error(client.post("/v1/search/batch", json={"texts": ["bread", "c" * 501]}), 413, "TooLarge", "text 1")
    assert_error(client.post("/v1/extract", json={"text": "c" * 501}), 413, "TooLarge")


def test_a_body_over_the_limit_is_refused_before_it_is_read(client) -> None:
    big = json.dumps({"texts": ["x" * 400] * 12}).encode()  # 4.9 kB > 4096
    assert_error(client.post("/v1/search/batch", content=big, headers={"content-type": "application/json"}),
                 413, "TooLarge", "4096 bytes", "ESCO_SERVICE_MAX_BODY_BYTES")

    def chunks():  # no Content-Length: counted while it arrives
        for _ in range(12):
            yield b" " * 500
    resp = client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    assert_error(resp, 413, "TooLarge", "4096 bytes")


# --- skills, collection, extract, metrics ----------------------------------------------------------
def test_skill_payload_by_uri_or_uuid(client) -> None:
    uri = fixtures().SKILL["bread"]
    resp = client.get(f"/v1/skills/{uri}")
    assert resp.status_code == 200, resp.text
    skill = resp.json()
    assert skill["concept_uri"] == uri and skill["languages"] == ["de", "en"]
    en = skill["payloads"]["en"]
    assert en["concept_uri"] == uri and en["preferred_label"] == "bake bread" and en["language"] == "en"
    assert {"description", "alt_labels", "skill_type", "reuse_level", "occupations", "skill_groups"} <= set(en)
    assert "text_hash" not in en and skill["payloads"]["de"]["preferred_label"] == "Brot backen"
    assert client.get(f"/v1/skills/{uri.rsplit('/', 1)[1]}").json() == skill  # the bare UUID
    assert client.get(f"/v1/skills/{uri.replace('/', '%2F')}").json() == skill  # escaped
    de = client.get(f"/v1/skills/{uri}", params={"language": "de"}).json()
    assert de["languages"] == ["de"] and list(de["payloads"]) == ["de"]


def test_unknown_or_malformed_skill_uri(client) -> None:
    missing = "http://data.europa.eu/esco/skill/00000000-0000-0000-0000-000000000000"
    assert_error(client.get(f"/v1/skills/{missing}"), 404, "NotFound", missing)
    assert_error(client.get("/v1/skills/not/a/uri"), 400, "BadRequest", "not a skill URI")
    uri = fixtures().SKILL["bread"]
    assert_error(client.get(f"/v1/skills/{uri}", params={"language": "fr"}), 404, "NotFound", "fr")


def test_collection_info(client, local, store_settings) -> None:
    info = client.get("/v1/collection").json()
    assert info["alias"] == "esco_skills" and info["collection"].startswith("esco_skills__")
    assert info["collection"] == local.store.resolve_alias("esco_skills")
    assert info["esco_version"] == "v1.1.9" and sorted(info["languages"]) == ["de", "en"]
    assert info["model"] == store_settings.model and info["backend"] == "torch" and info["precision"] == "fp32"
    assert info["store"] == "edge" and info["count"] == local.store.count("esco_skills") > 0
    assert info["threshold"] == local.default_threshold


def test_extract_answers_where_the_library_extracts(client) -> None:
    text = "We bake bread every morning. Our staff also repair bicycles."
    resp = client.post("/v1/extract", json={"text": text, "threshold": 0.3, "limit": 5, **DENSE})
    try:
        from search.extraction import extract
    except ImportError:
        extract = None  # type: ignore[assignment]
    if extract is None and not hasattr(SkillSearch, "extract"):
        assert_error(resp, 501, "NotImplemented", "extract", "/v1/search/batch")
        return
    assert resp.status_code == 200, resp.text
    skills = resp.json()
    assert isinstance(skills, list) and 0 < len(skills) <= 5
    uris = [s["hit"]["concept_uri"] if "hit" in s else s["concept_uri"] for s in skills]
    assert fixtures().SKILL["bread"] in uris and fixtures().SKILL["bicycles"] in uris, uris
    assert_error(client.post("/v1/extract", json={"text": "   "}), 400, "InvalidQuery")


def test_metrics_count_requests_latency_encoder_store_and_errors(client) -> None:
    client.post("/v1/search", json={"text": "bread"})
    client.post("/v1/search", json={"text": "bread", "skill_type": "nope"})
    text = client.get("/metrics").text
    assert 'esco_http_requests_total{endpoint="/v1/search",method="POST",status="200"}' in text
    assert 'esco_http_requests_total{endpoint="/v1/search",method="POST",status="400"}' in text
    assert 'esco_http_request_duration_seconds_bucket{endpoint="/v1/search",le="0.05",method="POST"}' in text
    assert 'esco_http_errors_total{endpoint="/v1/search",error="400"}' in text
    for name in ("esco_encoder_duration_seconds_count", "esco_store_search_duration_seconds_count"):
        (line,) = [ln for ln in text.splitlines() if ln.startswith(name)]
        assert float(line.split()[1]) > 0, line
    assert "esco_ready 1.0" in text
    # a skill URI never becomes a label: the route's template does
    client.get(f"/v1/skills/{fixtures().SKILL['bread']}")
    text = client.get("/metrics").text
    assert 'endpoint="/v1/skills/{uri:path}"' in text and "data.europa.eu" not in text


# --- security --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, method", [("/v1/search", "POST"), ("/v1/search/batch", "POST"), ("/v1/extract", "POST"),
                                          ("/v1/collection", "GET"), ("/v1/skills/x", "GET"), ("/metrics", "GET")])
def test_every_api_route_needs_a_key(served, path, method) -> None:
    body = {"texts": ["bread"]} if path.endswith("batch") else {"text": "bread"}
    kwargs = {"json": body} if method == "POST" else {}
    for headers in ({}, {"Authorization": "Bearer wrong-key-123"}, {"X-API-Key": KEYS[0] + "x"},
                    {"Authorization": KEYS[0]}, {"X-API-Key": KEYS[0][:-1]}):
        resp = httpx.request(method, served.url + path, headers=headers, **kwargs)
        assert_error(resp, 401, "Unauthorized", "Authorization: Bearer")
        assert resp.headers["www-authenticate"] == "Bearer"


def test_each_configured_key_works_in_either_header(served) -> None:
    for headers in ({"Authorization": f"Bearer {KEYS[0]}"}, {"Authorization": f"bearer {KEYS[1]}"},
                    {"X-API-Key": KEYS[1]}):
        resp = httpx.post(served.url + "/v1/search", json={"text": "bread", "limit": 1}, headers=headers)
        assert resp.status_code == 200 and len(resp.json()) == 1, resp.text


def test_cors_only_for_the_configured_origin(served) -> None:
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = httpx.options(served.url + "/v1/search", headers={"Origin": ORIGIN, **pre})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.options(served.url + "/v1/search", headers={"Origin": "http://evil.example", **pre})
    assert "access-control-allow-origin" not in other.headers


# --- the alias switch (changes the store: keep it last among the `served` tests) ------------------
def test_alias_switch_while_serving(client, store_settings, encoder) -> None:
    before = client.get("/v1/collection").json()
    total = before["count"]
    stop = threading.Event()
    seen: list[tuple[int, set[str]]] = []
    failures: list[str] = []

    def hammer() -> None:
        while not stop.is_set():
            resp = client.post("/v1/search", json={"text": "bake bread", "limit": 50, "threshold": -1.0,
                                                   "one_per_concept": False})
            if resp.status_code != 200:
                failures.append(resp.text)
                continue
            hits = resp.json()
            seen.append((len(hits), {h["esco_version"] for h in hits}))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        summary = run(store_settings, [MINI_V12], ["en", "de"], encoder=encoder, progress=False)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(v == {"v1.2.9"} for _, v in seen[-3:]):
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:3]
    # every answer came whole from one collection: never a mix, never a partial one
    assert seen and all(n == min(50, total) and len(v) == 1 for n, v in seen), seen[:5]
    assert {"v1.1.9", "v1.2.9"} == set().union(*(v for _, v in seen))
    after = client.get("/v1/collection").json()  # the next request: the new collection, no restart
    assert after["esco_version"] == "v1.2.9" and after["collection"] != before["collection"]
    assert after["collection"].startswith("esco_skills__") and after["count"] == total
    assert summary is not None
    hits = client.post("/v1/search", json={"text": "bake bread", "limit": 3}).json()
    assert hits and {h["esco_version"] for h in hits} == {"v1.2.9"}
    skill = client.get(f"/v1/skills/{fixtures().SKILL['bread']}").json()
    assert skill["payloads"]["en"]["esco_version"] == "v1.2.9"
