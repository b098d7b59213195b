"""`esco-search` with several queries in one process: -q, --file, stdin; one model load, input order kept."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ingest.build import run
from search.cli import main
from search.service import SkillSearch
from tests.conftest import make_settings
from tests.helpers import MINI_V11, fixtures

QUERIES = ["bake bread", "repair bicycles", "Buchhaltung", "drive a forklift", "bread", "accounting records",
           "fix a flat tyre"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, minilm_path: str, encoder):
    settings = make_settings(tmp_path_factory.mktemp("multi"), "edge", model=minilm_path)
    run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    return settings


@pytest.fixture
def cli_env(served, encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """ESCO_* for the CLI; the session's encoder stands in for the model load, which is counted."""
    monkeypatch.chdir(tmp_path)
    for key, value in {"ESCO_QDRANT_PATH": str(served.qdrant_path), "ESCO_EMBEDDED_ENGINE": "edge",
                       "ESCO_MODEL": served.model, "ESCO_COLLECTION": served.collection}.items():
        monkeypatch.setenv(key, value)
    loads: list[int] = []

    def load(settings):
        loads.append(1)
        return encoder

    monkeypatch.setattr("search.service.load_encoder", load)
    return loads


def _one_by_one(served, encoder, limit: int) -> dict[str, list[tuple[str, float]]]:
    with SkillSearch(served, encoder=encoder) as s:
        return {q: [(h.concept_uri, h.score) for h in s.search(q, limit=limit)] for q in QUERIES}


def _same(got: list[dict], want: list[tuple[str, float]]) -> None:
    assert [h["concept_uri"] for h in got] == [u for u, _ in want]
    assert [h["score"] for h in got] == pytest.approx([s for _, s in want], abs=1e-5)


def test_file_of_queries_as_json_lines_in_order(served, encoder, cli_env, tmp_path: Path, capsys) -> None:
    want = _one_by_one(served, encoder, 3)
    f = tmp_path / "queries.txt"
    f.write_text("\n".join(QUERIES[:3]) + "\n\n   \n\u00ad\n" + "\n".join(QUERIES[3:]) + "\n", encoding="utf-8")
    # batches of 2: several search_batch calls, the output still in input order; blank lines skipped
    assert main(["--file", str(f), "--json", "--limit", "3", "--batch-size", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(QUERIES)
    got = [json.loads(x) for x in lines]
    assert [g["query"] for g in got] == QUERIES
    for g in got:
        _same(g["hits"], want[g["query"]])
    assert len(cli_env) == 1  # one model load for all of them


def test_repeated_q_and_stdin_tables(served, encoder, cli_env, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert main(["-q", "bake bread", "-q", "repair bicycles", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    blocks = [b for b in out.split("\n\n") if b.strip()]
    assert [b.splitlines()[0] for b in blocks] == ["query  bake bread", "query  repair bicycles"]
    want = _one_by_one(served, encoder, 2)
    for block, q in zip(blocks, ["bake bread", "repair bicycles"]):
        assert [ln.strip() for ln in block.splitlines()[2:] if ln.strip().startswith("http")][:2] == \
            [u for u, _ in want[q]]
    assert fixtures().SKILL["bread"] == want["bake bread"][0][0]
    # lines piped on stdin (no text given), and a lone '-'
    for argv in (["--json", "--limit", "2"], ["-", "--json", "--limit", "2"]):
        monkeypatch.setattr("sys.stdin", io.StringIO("repair bicycles\n\nbake bread\n"))
        assert main(argv) == 0
        got = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert [g["query"] for g in got] == ["repair bicycles", "bake bread"]
        assert all(len(g["hits"]) == 2 for g in got)
    assert len(cli_env) == 3  # one load per process, not per query
    # a text given: stdin is not read, and the output is today's single JSON array
    monkeypatch.setattr("sys.stdin", io.StringIO("bake bread\n"))
    assert main(["search", "eval", "--json", "--limit", "2"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert isinstance(hits, list) and len(hits) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("\n  \n"))
    assert main(["--json"]) == 2
    assert "the input holds only blank lines" in capsys.readouterr().err


def test_mode_per_run(served, encoder, cli_env, capsys) -> None:
    with SkillSearch(served, encoder=encoder) as s:
        want = {m: [(h.concept_uri, h.score) for h in s.search("bake bread", limit=3, mode=m)]
                for m in ("dense", "hybrid")}
    for m in ("dense", "hybrid"):
        assert main(["bake bread", "--mode", m, "--json", "--limit", "3"]) == 0
        _same(json.loads(capsys.readouterr().out), want[m])
    assert main(["bake bread", "--mode", "sparse"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown search mode 'sparse'" in err
