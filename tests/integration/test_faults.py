"""Bad input and faults, end to end: what the user gets, and that nothing served is lost.

* Releases: every broken release goes through ``esco-ingest`` (``ingest.cli.main``) against a store whose
  alias serves a good collection: exit code 2, one line on stderr naming the file (line, column), the
  alias and the collections unchanged. Repairs the reader makes (duplicate URIs, empty labels and
  descriptions, relations to unknown occupations) are counted in the summary instead.
* Qdrant faults: :class:`tests.fault_server.FaultServer`, a fake Qdrant server on a loopback port backed by
  qdrant-client's local mode, answers 5xx/429, drops connections, delays past the client timeout, goes
  down, checks API keys. Transient faults are retried and the collection ends identical to a clean run's;
  persistent ones end in one clear error, the alias untouched, and the next run resumes without
  re-encoding what was written.
* The embedded edge store failing mid-ingest (OSError) leaves the alias untouched and resumes.

docs/faults.md lists every case with the test that backs it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ingest.build import run
from ingest.settings import IngestSettings
from search import SkillSearch
from search.errors import CollectionNotFound, QdrantUnavailable
from search.stores import open_store
from search.stores.qdrant import QdrantClientStore
from tests.fault_server import CREATE, QUERY, UPSERT, FaultServer
from tests.helpers import MINI_V11, MINI_V12, ROOT, all_points, fixtures

# Fast retries: 4 attempts, waits of at most 10 ms, 1 s per request (the client's smallest timeout).
FAST = {"qdrant_retries": 4, "qdrant_retry_max_wait": 0.01, "qdrant_timeout": 1}
FAST_ENV = {"ESCO_QDRANT_RETRIES": "4", "ESCO_QDRANT_RETRY_MAX_WAIT": "0.01", "ESCO_QDRANT_TIMEOUT": "1"}
N_EN, N_ALL = 20, 40  # points of the mini release: en, en+de
BATCH = 4  # passages per encoder batch = points per upsert request (ESCO_UPSERT_BATCH_SIZE)


class MemoEncoder:
    """The session's real model behind a cache by text.

    Each passage and query of the mini release is encoded once per module, so the many runs here cost no
    model time (the faults are the store's, not the model's): vectors are those of the real model, and
    a point written by any run has the very vector the clean run gave it.
    """

    def __init__(self, inner) -> None:
        self._inner = inner
        self._passages: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def _cached(self, cache: dict, texts, encode) -> np.ndarray:
        texts = list(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            for t, v in zip(missing, encode(missing)):
                cache[t] = np.asarray(v, dtype=np.float32)
        if not texts:
            return np.zeros((0, self._inner.dimension), dtype=np.float32)
        return np.stack([cache[t] for t in texts])

    def encode_passages(self, texts, batch_size: int = 32) -> np.ndarray:
        return self._cached(self._passages, texts, lambda m: self._inner.encode_passages(m, batch_size=batch_size))

    def encode_queries(self, texts) -> np.ndarray:
        return self._cached(self._queries, texts, self._inner.encode_queries)


@pytest.fixture(scope="module")
def memo(encoder) -> MemoEncoder:
    return MemoEncoder(encoder)


def server_settings(srv: FaultServer, tmp_path: Path, model: str, **kw) -> IngestSettings:
    base = {"qdrant_url": srv.url, "collection": "esco_skills", "lock_dir": tmp_path / "locks", "model": model,
            "batch_size": BATCH, "upsert_batch_size": BATCH, **FAST}
    base.update(kw)
    return IngestSettings(_env_file=None, **base)  # type: ignore[arg-type]


def connect(settings: IngestSettings) -> QdrantClientStore:
    return QdrantClientStore.connect(settings)


def same_points(got: dict, ref: dict, *, language: str | None = None) -> None:
    """Same ids, payloads and (to float noise) vectors as the clean run; ``language`` restricts the reference."""
    if language:
        ref = {k: v for k, v in ref.items() if v[0]["language"] == language}
    assert set(got) == set(ref)
    for pid, (payload, vec) in ref.items():
        assert got[pid][0] == payload, pid
        assert np.allclose(got[pid][1], vec, atol=1e-6), pid


def one_line(err: str) -> str:
    """stderr holds exactly one line (no traceback): the error."""
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert "Traceback" not in err
    return err.strip()


def error_line(err: str) -> str:
    """stderr holds one error line, after one warning line per retry (no traceback, no multi-line dump)."""
    assert "Traceback" not in err, err
    *retries, last = err.splitlines()
    for line in retries:
        assert " failed (" in line and ", attempt " in line and "; retrying in " in line, line
    assert last.startswith(("esco-ingest: error: ", "esco-search: error: ")), err
    return last


@pytest.fixture(scope="module")
def reference(memo, tmp_path_factory) -> dict:
    """The clean run: the mini release (en, de) ingested through the fake server with no fault."""
    tmp = tmp_path_factory.mktemp("clean")
    with FaultServer() as srv:
        settings = server_settings(srv, tmp, memo.model_name)
        s = run(settings, [MINI_V11], ["en", "de"], encoder=memo, progress=False)
        assert srv.unhandled == []
        store = connect(settings)
        try:
            points = all_points(store, settings.collection)
            assert store.payload_indexes(s.collection)  # the keyword indexes went through the REST API
        finally:
            store.close()
    assert len(points) == N_ALL
    return points


@pytest.fixture
def cli(monkeypatch, capsys, memo, tmp_path):
    """Run ``esco-ingest`` / ``esco-search`` in-process with ESCO_* variables: (exit code, stdout, stderr).

    The model is the session's encoder (no reload); everything else comes from the environment.
    """
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setattr("ingest.build.load_encoder", lambda settings: memo)
    monkeypatch.setattr("search.encoding.load.load_encoder", lambda settings: memo)  # esco-ingest's SharedEncoder
    monkeypatch.setattr("search.service.load_encoder", lambda settings: memo)

    def call(tool: str, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
        from ingest.cli import main as ingest_main
        from search.cli import main as search_main

        with monkeypatch.context() as m:
            for k, v in {"ESCO_MODEL": memo.model_name, "ESCO_BATCH_SIZE": str(BATCH),
                         "ESCO_UPSERT_BATCH_SIZE": str(BATCH), **env}.items():
                m.setenv(k, v)
            capsys.readouterr()
            rc = (ingest_main if tool == "ingest" else search_main)(args)
            out, err = capsys.readouterr()
        return rc, out, err

    return call


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ================================================================================================
# Releases, end to end through esco-ingest


@pytest.fixture(scope="module")
def served(memo, tmp_path_factory):
    """An edge store whose alias serves the good mini release (en, de), ingested through the CLI."""
    tmp = tmp_path_factory.mktemp("served")
    env = {"ESCO_QDRANT_PATH": str(tmp / "store"), "ESCO_LOCK_DIR": str(tmp / "locks"),
           "ESCO_MODEL": memo.model_name, "ESCO_BATCH_SIZE": "8"}
    from ingest.cli import main

    with pytest.MonkeyPatch.context() as m:
        m.chdir(tmp)
        m.setattr("ingest.build.load_encoder", lambda settings: memo)
        m.setattr("search.encoding.load.load_encoder", lambda settings: memo)  # esco-ingest's SharedEncoder
        for k, v in env.items():
            m.setenv(k, v)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["--release", str(MINI_V11), "--language", "en", "--language", "de", "--json", "--quiet"]) == 0
    summary = json.loads(out.getvalue())
    return {"env": env, "summary": summary,
            "settings": IngestSettings(_env_file=None, qdrant_path=tmp / "store", lock_dir=tmp / "locks")}


def _state(settings) -> tuple[str | None, list[str]]:
    store = open_store(settings)
    try:
        return store.resolve_alias(settings.collection), store.list_collections()
    finally:
        store.close()


def _copy(src: Path, dest: Path) -> Path:
    out = dest / src.name
    shutil.copytree(src, out)
    return out


def _rewrite_csv(path: Path, edit) -> None:
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    rows = edit(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _drop_column(name: str):
    def edit(rows):
        i = rows[0].index(name)
        return [r[:i] + r[i + 1:] for r in rows]
    return edit


def _rename_column(name: str):
    def edit(rows):
        rows[0][rows[0].index(name)] = name + "_renamed"
        return rows
    return edit


def _missing_file(tmp: Path):
    root = _copy(MINI_V12, tmp)
    (root / "occupations_en.csv").unlink()
    return [root], {"contains": ["occupations_en.csv", str(root)]}


def _missing_column(tmp: Path):
    root = _copy(MINI_V11, tmp)
    p = root / "esco_v1.1.9_classification_en_csv" / "skills_en.csv"
    _rewrite_csv(p, _drop_column("description"))
    return [root], {"file": p, "line": 1, "column": "description"}


def _renamed_column(tmp: Path):
    root = _copy(MINI_V12, tmp)
    p = root / "occupationSkillRelations_de.csv"
    _rewrite_csv(p, _rename_column("skillUri"))
    return [root], {"file": p, "line": 1, "column": "skillUri", "contains": ["skillUri_renamed"]}


def _truncated_zip(tmp: Path):
    (z,) = fixtures().zip_release("v1.2", tmp)
    data = z.read_bytes()
    z.write_bytes(data[: len(data) * 2 // 3])
    return [z], {"contains": [str(z)]}


def _corrupt_zip(tmp: Path):
    (z,) = fixtures().zip_release("v1.2", tmp)
    stored = tmp / "esco_v1.2.9_stored.zip"  # stored, so a flipped byte reaches the CRC check
    with zipfile.ZipFile(z) as src, zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    z.unlink()
    data = bytearray(stored.read_bytes())
    pos = data.index(b"KnowledgeSkillCompetence,http://data.europa.eu/esco/skill/", data.index(b"skills_en.csv"))
    data[pos] = ord("k")
    stored.write_bytes(bytes(data))
    return [stored], {"contains": [str(stored), "skills_en.csv", "corrupt"]}


def _not_a_zip(tmp: Path):
    z = tmp / "esco_v1.2.9_classification_csv.zip"
    z.write_bytes(b"<html>404 Not Found</html>")
    return [z], {"contains": [str(z), "zip"]}


def _cp1252(tmp: Path):
    root = _copy(MINI_V12, tmp)
    p = root / "skills_de.csv"
    data = p.read_text(encoding="utf-8").encode("cp1252", errors="replace")
    p.write_bytes(data)
    first = data[: next(i for i, b in enumerate(data) if b >= 0x80)].count(b"\n") + 1
    return [root], {"file": p, "line": first, "has_column": True, "contains": ["UTF-8"]}


def _utf16(tmp: Path):
    root = _copy(MINI_V12, tmp)
    p = root / "skills_en.csv"
    p.write_bytes(p.read_text(encoding="utf-8").encode("utf-16"))  # with its byte-order mark
    return [root], {"file": p, "line": 1, "contains": ["UTF-16", "UTF-8"]}


def _utf16_without_bom(tmp: Path):
    root = _copy(MINI_V12, tmp)
    p = root / "skills_en.csv"
    p.write_bytes(p.read_text(encoding="utf-8").encode("utf-16-le"))
    return [root], {"file": p, "line": 1, "contains": ["UTF-16", "UTF-8"]}


def _truncated_csv(tmp: Path):
    root = _copy(MINI_V12, tmp)
    p = root / "skills_en.csv"
    data = p.read_bytes()
    p.write_bytes(data[: data.index(b"Perform all the steps of baking")])
    return [root], {"file": p, "has_line": True, "contains": ["truncated"]}


def _other_language(tmp: Path):
    return [MINI_V12], {"languages": ["fr"], "contains": ["'fr'", "languages present: de, en"]}


def _language_absent(tmp: Path):
    root = _copy(MINI_V12, tmp)
    for p in root.glob("*_de.csv"):
        p.unlink()
    return [root], {"languages": ["de"], "contains": ["'de'", "languages present: en"]}


def _empty_release(tmp: Path):
    root = _copy(MINI_V12, tmp)
    p = root / "skills_en.csv"
    p.write_text(p.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    return [root], {"file": p, "contains": ["no skill rows"]}


def _empty_folder(tmp: Path):
    root = tmp / "esco_v1.2.9_csv"
    root.mkdir()
    return [root], {"contains": [str(root), "no CSV file at all"]}


def _no_such_path(tmp: Path):
    return [tmp / "esco_v1.2.9_nowhere"], {"contains": [str(tmp / "esco_v1.2.9_nowhere"), "does not exist"]}


BAD_RELEASES = {
    "missing-file": _missing_file,
    "missing-column": _missing_column,
    "renamed-column": _renamed_column,
    "truncated-zip": _truncated_zip,
    "corrupt-zip-crc": _corrupt_zip,
    "not-a-zip": _not_a_zip,
    "cp1252-encoded-file": _cp1252,
    "utf16-file-with-bom": _utf16,
    "utf16-file-without-bom": _utf16_without_bom,
    "truncated-csv": _truncated_csv,
    "language-not-in-release": _other_language,
    "release-of-another-language": _language_absent,
    "empty-release": _empty_release,
    "empty-folder": _empty_folder,
    "no-such-path": _no_such_path,
}


@pytest.mark.parametrize("case", list(BAD_RELEASES))
def test_bad_release_is_one_line_exit_2_and_the_alias_still_serves(case, served, cli, tmp_path):
    (tmp_path / "release").mkdir()
    paths, want = BAD_RELEASES[case](tmp_path / "release")  # type: ignore[operator]
    before = _state(served["settings"])
    args = ["--release", *map(str, paths), "--quiet"]
    for lang in want.get("languages", ["en", "de"]):
        args += ["--language", lang]
    rc, out, err = cli("ingest", args, served["env"])
    assert rc == 2
    line = one_line(err)
    assert line.startswith("esco-ingest: error: ")
    if "file" in want:
        assert f"{want['file']}, " in line or f"{want['file']}:" in line, line
    if "line" in want:
        assert f"line {want['line']}" in line, line
    if want.get("has_line"):
        assert "line " in line, line
    if "column" in want:
        assert f"column {want['column']!r}" in line, line
    if want.get("has_column"):
        assert "column '" in line, line
    for text in want.get("contains", []):
        assert text in line, line
    assert _state(served["settings"]) == before  # alias and collections unchanged, nothing new


def test_repairs_are_counted_in_the_summary_not_fatal(served):
    """Duplicate URIs, empty labels, empty descriptions, relations to unknown occupations or skills:
    skipped or kept as documented, counted per language, each warning naming the file and line."""
    s = served["summary"]
    assert s["points_written"] == {"en": N_EN, "de": N_EN}
    for lang in ("en", "de"):
        c = s["read_stats"]["counts"][lang]
        assert c["skipped_duplicate_uri"] == 1 and c["skipped_empty_label"] == 1
        assert c["empty_description"] == 1  # kept, with an empty description
        assert c["relations_unknown_occupation"] == 1 and c["relations_unknown_skill"] == 1
    warnings = s["read_stats"]["warnings"]
    assert any("duplicate conceptUri" in w and "skills_en.csv, line " in w for w in warnings)
    assert any("has no preferredLabel; skipped" in w for w in warnings)
    assert any("unknown occupation" in w and "occupationSkillRelations.csv, line " in w for w in warnings)


def test_utf8_bom_release_ingests_to_the_same_points(served, cli, tmp_path):
    root = _copy(MINI_V12, tmp_path)
    for p in root.glob("*.csv"):
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    before_alias, _ = _state(served["settings"])
    store = open_store(served["settings"])
    try:
        old = all_points(store, served["settings"].collection)
    finally:
        store.close()
    rc, out, err = cli("ingest", ["--release", str(root), "--language", "en", "--language", "de", "--json",
                                  "--quiet"], served["env"])
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["unchanged"] == N_ALL and summary["encoded"] == 0  # same passages: every vector reused
    store = open_store(served["settings"])
    try:
        assert store.resolve_alias(served["settings"].collection) == summary["collection"] != before_alias
        new = all_points(store, served["settings"].collection)
    finally:
        store.close()
    assert set(new) == set(old)
    for pid in old:
        assert np.allclose(new[pid][1], old[pid][1], atol=1e-6)
        assert {k: v for k, v in new[pid][0].items() if k != "esco_version"} == \
               {k: v for k, v in old[pid][0].items() if k != "esco_version"}


def test_real_process_prints_one_line_on_stderr(served, tmp_path):
    """The same through a real ``python -m ingest`` process, its logging configured as in production."""
    root = _copy(MINI_V11, tmp_path)
    p = root / "esco_v1.1.9_classification_en_csv" / "skills_en.csv"
    _rewrite_csv(p, _rename_column("preferredLabel"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ESCO_")}, **served["env"],
           "PYTHONPATH": str(ROOT)}
    before = _state(served["settings"])
    for args, needle in (
        (["--release", str(root)], f"{p}, line 1, column 'preferredLabel'"),
        (["--release", str(MINI_V12), "--language", "xx"], "xx"),
    ):
        proc = subprocess.run([sys.executable, "-m", "ingest", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stdout == ""
        assert needle in one_line(proc.stderr)
    assert _state(served["settings"]) == before


# ================================================================================================
# Qdrant server faults


def test_unreachable_server_at_start(cli, tmp_path, memo):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = IngestSettings(_env_file=None, qdrant_url=url, model=memo.model_name, **FAST)
    with pytest.raises(QdrantUnavailable) as e:
        QdrantClientStore.connect(settings)
    msg = str(e.value)
    assert url in msg and "cannot be reached" in msg and "after 4 attempts" in msg and "ESCO_QDRANT_URL" in msg
    with pytest.raises(QdrantUnavailable, match="cannot be reached"):
        SkillSearch(settings, encoder=memo)
    env = {"ESCO_QDRANT_URL": url, "ESCO_LOCK_DIR": str(tmp_path / "locks"), **FAST_ENV}
    for tool, args in (("ingest", ["--release", str(MINI_V11), "--quiet"]), ("ingest", ["list"]),
                       ("search", ["bake", "bread"])):
        rc, out, err = cli(tool, args, env)
        assert rc == 2 and url in error_line(err) and "cannot be reached" in error_line(err)


TRANSIENT = {
    "503": {"action": "status", "status": 503},
    "500": {"action": "status", "status": 500},
    "502": {"action": "status", "status": 502},
    "429": {"action": "status", "status": 429},
    "429-retry-after": {"action": "status", "status": 429, "headers": {"Retry-After": "1"}},
    "connection-dropped": {"action": "drop"},
    "dropped-after-apply": {"action": "drop_after"},
    "timeout": {"action": "delay", "delay": 1.5},
}


@pytest.mark.parametrize("kind", list(TRANSIENT))
def test_transient_fault_mid_upload_is_retried_and_nothing_is_lost(kind, tmp_path, memo, reference):
    with FaultServer() as srv:
        settings = server_settings(srv, tmp_path, memo.model_name)
        fault = srv.fault(pattern=UPSERT, skip=2, times=2, **TRANSIENT[kind])  # the 3rd and 4th upsert
        s = run(settings, [MINI_V11], ["en"], encoder=memo, progress=False)
        assert fault.fired == 2
        assert len(srv.requests(UPSERT)) == N_EN // BATCH + 2  # each failed upsert sent once more
        store = connect(settings)
        try:
            assert store.resolve_alias(settings.collection) == s.collection
            assert store.count(s.collection) == N_EN
            same_points(all_points(store, settings.collection), reference, language="en")
        finally:
            store.close()


# Every endpoint a first ingest uses: a fault on each is survived.
ENDPOINTS = {
    "list collections": r"^GET /collections$",
    "collection exists": r"^GET /collections/[^/]+/exists$",
    "list aliases": r"^GET /aliases$",
    "create collection": CREATE,
    "create payload index": r"^PUT /collections/[^/]+/index$",
    "upsert": UPSERT,
    "update metadata": r"^PATCH /collections/[^/]+$",
    "get collection": r"^GET /collections/[^/]+$",
    "count": r"^POST /collections/[^/]+/points/count$",
    "retrieve": r"^POST /collections/[^/]+/points$",
    "query": QUERY,
    "switch alias": r"^POST /collections/aliases$",
}


@pytest.mark.parametrize("kind", ["503", "connection-dropped", "dropped-after-apply"])
def test_a_fault_on_every_endpoint_is_survived(kind, tmp_path, memo, reference):
    """The first request to each endpoint the ingest uses fails; the ingest completes all the same."""
    with FaultServer() as srv:
        settings = server_settings(srv, tmp_path, memo.model_name)
        faults = [srv.fault(pattern=rx, times=1, **TRANSIENT[kind]) for rx in ENDPOINTS.values()]
        s = run(settings, [MINI_V11], ["en"], encoder=memo, progress=False)
        assert all(f.fired == 1 for f in faults), [(f.pattern, f.fired) for f in faults]
        store = connect(settings)
        try:
            assert store.resolve_alias(settings.collection) == s.collection
            assert store.list_collections() == [s.collection]
            same_points(all_points(store, settings.collection), reference, language="en")
        finally:
            store.close()


@pytest.mark.parametrize("kind", ["503-forever", "server-down", "timeouts-forever"])
def test_persistent_failure_keeps_the_alias_and_the_next_run_resumes(kind, tmp_path, memo, reference, cli):
    with FaultServer() as srv:
        settings = server_settings(srv, tmp_path, memo.model_name, qdrant_retries=2 if "timeout" in kind else 4)
        first = run(settings, [MINI_V11], ["en"], encoder=memo, progress=False)  # served: en only
        # The upgrade to en+de reuses the 20 en vectors (five upserts of 4), then encodes de in batches of 4,
        # each written on its own: two of them are written, then the server fails for good.
        spec = {"503-forever": {"action": "status", "status": 503, "times": None},
                "server-down": {"action": "down"},
                "timeouts-forever": {"action": "delay", "delay": 1.3, "times": None}}[kind]
        srv.fault(pattern=UPSERT, skip=N_EN // BATCH + 2, **spec)
        env = {"ESCO_QDRANT_URL": srv.url, "ESCO_LOCK_DIR": str(settings.lock_dir),
               **FAST_ENV, "ESCO_QDRANT_RETRIES": str(settings.qdrant_retries)}
        rc, out, err = cli("ingest", ["--release", str(MINI_V11), "--language", "en", "--language", "de",
                                      "--quiet"], env)
        assert rc == 2
        line = error_line(err)
        assert srv.url in line and "upsert" in line and "after " in line and " attempts" in line, line
        srv.wait_idle()  # a timed-out upsert may still be applied late, as on a real server
        srv.clear_faults()
        if kind == "server-down":
            srv.start()
        store = connect(settings)
        try:
            assert store.resolve_alias(settings.collection) == first.collection  # untouched
            assert store.count(first.collection) == N_EN
            (partial,) = [c for c in store.list_collections() if c != first.collection]
            assert store.get_metadata(partial)["status"] == "building"
            written = store.count(partial)
        finally:
            store.close()
        # Two de batches written; the failing third one too when a timed-out request was applied late.
        assert written == N_EN + 2 * BATCH or (kind == "timeouts-forever" and written == N_EN + 3 * BATCH)

        scroll = srv.fault(pattern=r"/points/scroll$", status=503)  # and the resume's first scroll fails once
        s = run(settings, [MINI_V11], ["en", "de"], encoder=memo, progress=False)  # the same command again
        assert scroll.fired == 1
        assert s.collection == partial and s.resumed_points == written
        assert s.encoded == N_ALL - written and s.reused == 0  # nothing written is encoded again
        store = connect(settings)
        try:
            assert store.resolve_alias(settings.collection) == partial
            assert store.count(partial) == N_ALL
            same_points(all_points(store, settings.collection), reference)
        finally:
            store.close()


def test_a_4xx_answer_is_not_retried_and_is_one_clear_line(tmp_path, memo, cli, reference):
    with FaultServer() as srv:
        settings = server_settings(srv, tmp_path, memo.model_name)
        srv.fault(pattern=UPSERT, skip=1, status=400)
        env = {"ESCO_QDRANT_URL": srv.url, "ESCO_LOCK_DIR": str(settings.lock_dir), **FAST_ENV}
        rc, out, err = cli("ingest", ["--release", str(MINI_V11), "--quiet"], env)
        assert rc == 2
        line = one_line(err)
        assert "rejected upsert (400" in line and "not retried" in line and "injected fault 400" in line
        assert [r.outcome for r in srv.requests(UPSERT)] == ["ok", "fault 400"]  # sent once, not retried
        store = connect(settings)
        try:
            assert store.resolve_alias(settings.collection) is None  # nothing served
        finally:
            store.close()
        s = run(settings, [MINI_V11], ["en"], encoder=memo, progress=False)
        assert s.resumed_points == BATCH and s.encoded == N_EN - BATCH
        store = connect(settings)
        try:
            same_points(all_points(store, settings.collection), reference, language="en")
        finally:
            store.close()


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_wrong_missing_or_read_only_api_key(tmp_path, memo, cli, caplog):
    key, wrong, read_only = "right-key-4711", "wrong-key-0815", "read-only-key-42"
    caplog.set_level(logging.DEBUG)
    with FaultServer(api_key=key, read_only_key=read_only) as srv:
        good = server_settings(srv, tmp_path, memo.model_name, qdrant_api_key=key)
        first = run(good, [MINI_V11], ["en"], encoder=memo, progress=False, limit=3)
        base = {"ESCO_QDRANT_URL": srv.url, "ESCO_LOCK_DIR": str(tmp_path / "locks"), **FAST_ENV}
        outputs = []
        for given, code in ((wrong, "401"), (None, "401")):
            env = {**base, **({"ESCO_QDRANT_API_KEY": given} if given else {})}
            n = len(srv.log)
            for tool, args in (("ingest", ["--release", str(MINI_V11), "--quiet"]), ("search", ["bread"])):
                rc, out, err = cli(tool, args, env)
                line = err.splitlines()[-1]  # (the DEBUG log lines of this test go to stderr too)
                assert "Traceback" not in err
                assert rc == 2 and f"refused the request ({code}" in line and "ESCO_QDRANT_API_KEY" in line
                outputs += [out, err]
            assert [r.outcome for r in srv.log[n:]] == ["auth 401", "auth 401"]  # not retried
        # A read-only key searches, and cannot ingest.
        ro = server_settings(srv, tmp_path, memo.model_name, qdrant_api_key=read_only)
        with SkillSearch(ro, encoder=memo) as s:
            assert s.search("bake bread", limit=1)
        rc, out, err = cli("ingest", ["--release", str(MINI_V11), "--quiet"],
                           {**base, "ESCO_QDRANT_API_KEY": read_only})
        line = err.splitlines()[-1]
        assert "Traceback" not in err
        assert rc == 2 and "(403" in line and "read-only key cannot write" in line
        outputs += [out, err]
        store = connect(good)
        try:
            assert store.resolve_alias(good.collection) == first.collection
        finally:
            store.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (key, wrong, read_only):
        assert not any(secret in o for o in outputs) and secret not in logged


def test_collection_deleted_under_a_running_service(tmp_path, memo, cli):
    with FaultServer() as srv:
        settings = server_settings(srv, tmp_path, memo.model_name)
        s = run(settings, [MINI_V11], ["en"], encoder=memo, progress=False)
        with SkillSearch(settings, encoder=memo) as searcher:
            assert searcher.search("bake bread", limit=1)[0].concept_uri == fixtures().SKILL["bread"]
            srv.qdrant.delete_collection(s.collection)  # an operator deletes it (its alias goes with it)
            with pytest.raises(CollectionNotFound) as e:
                searcher.search("bake bread", limit=1)
            assert "esco-ingest --release" in str(e.value) and srv.url in str(e.value)
            rc, out, err = cli("search", ["bake", "bread"], {"ESCO_QDRANT_URL": srv.url, **FAST_ENV})
            assert rc == 2 and "not found" in one_line(err) and "esco-ingest --release" in err
            # A new ingest, and the same service answers again without a restart.
            run(settings, [MINI_V11], ["en"], encoder=memo, progress=False)
            assert searcher.search("bake bread", limit=1)[0].concept_uri == fixtures().SKILL["bread"]


def test_search_retries_transient_faults_then_fails_clearly(tmp_path, memo):
    with FaultServer() as srv:
        settings = server_settings(srv, tmp_path, memo.model_name)
        run(settings, [MINI_V11], ["en"], encoder=memo, progress=False)
        with SkillSearch(settings, encoder=memo) as searcher:
            expected = searcher.search("bake bread", limit=3)
            for spec in ({"status": 503}, {"action": "drop"}, {"action": "delay", "delay": 1.3},
                         {"status": 429, "headers": {"Retry-After": "1"}}):
                fault = srv.fault(pattern=QUERY, times=1, **spec)
                assert searcher.search("bake bread", limit=3) == expected
                assert fault.fired == 1
            srv.fault(pattern=QUERY, times=None, status=503)
            n = len(srv.requests(QUERY))
            with pytest.raises(QdrantUnavailable) as e:
                searcher.search("bake bread", limit=3)
            assert srv.url in str(e.value) and "503" in str(e.value)
            assert len(srv.requests(QUERY)) - n == 4  # ESCO_QDRANT_RETRIES attempts, then the error


# ================================================================================================
# The embedded edge store failing mid-ingest


def _failing_upsert(monkeypatch, fail_on: int):
    from search.stores.edge import EdgeStore

    real = EdgeStore.upsert
    calls = {"n": 0}

    def upsert(self, name, points):
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, name, points)

    monkeypatch.setattr(EdgeStore, "upsert", upsert)
    return calls


def test_edge_store_oserror_mid_ingest_keeps_the_alias_and_resumes(tmp_path, memo, reference, monkeypatch):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "edge", model=memo.model_name, batch_size=2 * BATCH,
                             upsert_batch_size=2 * BATCH)
    first = run(settings, [MINI_V11], ["en"], encoder=memo, progress=False)
    with monkeypatch.context() as m:
        _failing_upsert(m, fail_on=5)  # the reuse upserts (8, 8, 4), one de batch of 8, then the disk is full
        with pytest.raises(OSError, match="No space left"):
            run(settings, [MINI_V11], ["en", "de"], encoder=memo, progress=False)
    store = open_store(settings)
    try:
        assert store.resolve_alias(settings.collection) == first.collection
        (partial,) = [c for c in store.list_collections() if c != first.collection]
        written = store.count(partial)
    finally:
        store.close()
    assert written == N_EN + 2 * BATCH
    s = run(settings, [MINI_V11], ["en", "de"], encoder=memo, progress=False)
    assert s.collection == partial and s.resumed_points == written and s.encoded == N_ALL - written
    store = open_store(settings)
    try:
        same_points(all_points(store, settings.collection), reference)
    finally:
        store.close()


def test_edge_store_oserror_through_the_cli_is_one_line(tmp_path, memo, cli, monkeypatch):
    env = {"ESCO_QDRANT_PATH": str(tmp_path / "store")}
    _failing_upsert(monkeypatch, fail_on=2)
    rc, out, err = cli("ingest", ["--release", str(MINI_V11), "--quiet"], env)
    assert rc == 2 and "No space left on device" in one_line(err)
