"""The encoding layer's plumbing: the atomic JSON writer, the CPU read once, a cheap import, the query LRU."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search import jsonfile
from search.encoding import hardware

ROOT = Path(__file__).resolve().parents[3]


def test_write_json_atomic_replaces_the_file_whole_and_syncs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "sub" / "verdict.json"
    jsonfile.write_json_atomic(target, {"a": 1})
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(jsonfile.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    jsonfile.write_json_atomic(target, {"a": 2, "text": "Bäcker"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 2, "text": "Bäcker"}
    assert len(synced) == 2  # the file, then the folder (the rename)
    assert [p.name for p in target.parent.iterdir()] == ["verdict.json"]  # no temporary file left
    if os.name == "posix":  # readable by others, as a plain write would make it (not mkstemp's 0600)
        assert target.stat().st_mode & 0o777 == 0o644
        target.chmod(0o640)
        jsonfile.write_json_atomic(target, {"a": 3})
        assert target.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode


def test_a_failed_write_leaves_the_old_file_and_no_litter(tmp_path: Path):
    target = tmp_path / "state.json"
    jsonfile.write_json_atomic(target, {"ok": True})
    with pytest.raises(TypeError):
        jsonfile.write_json_atomic(target, {"bad": object()})
    assert jsonfile.read_json(target) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_read_json_gives_the_default_for_missing_or_damaged_files(tmp_path: Path):
    assert jsonfile.read_json(tmp_path / "none.json", {"d": 1}) == {"d": 1}
    (tmp_path / "torn.json").write_text('{"a": ', encoding="utf-8")
    assert jsonfile.read_json(tmp_path / "torn.json") is None


def test_the_cpu_is_read_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9654\nflags\t\t: fpu avx avx2 fma avx512f "
                    "avx512_vnni avx512_bf16\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9654\nflags\t\t: fpu\n")
    real_open = open
    opened: list[str] = []

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(fake if str(path) == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr(hardware, "open", counting_open, raising=False)
    hardware.cpu_info.cache_clear()
    try:
        info = hardware.cpu_info()
        assert info.model == "AMD EPYC 9654" and info.bf16 and info.vnni and not info.amx
        assert hardware.cpu_has_bf16() and hardware.cpu_int8_kernels() == "vnni"
        assert hardware.onnx_quantization_preset() == "avx512_vnni"
        assert info.describe()["flags"] == ["avx", "avx2", "avx512_bf16", "avx512_vnni", "avx512f", "fma"]
        assert opened == ["/proc/cpuinfo"]  # once, however often it is asked
    finally:
        hardware.cpu_info.cache_clear()


def test_importing_search_and_the_encoding_layer_loads_no_model_library():
    code = ("import sys, search, search.encoding; "
            "import search.encoding.choice, search.encoding.prepare, search.encoding.check; "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'openvino', 'nncf', "
            "'optimum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_encoding_layer_imports_no_higher_layer():
    """encoding -> schema/settings/errors/text/metrics/jsonfile only: never the stores, the searcher, the
    evaluation or the front ends (function-level imports included)."""
    higher = ("search.stores", "search.store", "search.service", "search.evaluation", "search.cli", "search.http",
              "search.hybrid", "search.extraction", "ingest")
    bad = []
    for path in sorted((ROOT / "search" / "encoding").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            bad += [f"{path.name}: {n}" for n in names if n.startswith(higher)]
    assert not bad, bad


def test_the_query_cache_is_a_bounded_lru(encoder, minilm_path):
    from search.encoding import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(minilm_path, device="cpu", precision="fp32", cache_size=2)
    calls: list[list[str]] = []
    real = enc._encode

    def counting(texts, prompt_name, batch_size):
        calls.append(list(texts))
        return real(texts, prompt_name, batch_size)

    enc._encode = counting  # type: ignore[method-assign]
    a = enc.encode_queries(["bake bread", "repair bicycles"])
    enc.encode_queries(["bake bread"])  # a hit: "bake bread" is now the most recent
    enc.encode_queries(["manage staff"])  # evicts "repair bicycles", the least recently used
    assert list(enc._cache.keys()) == ["bake bread", "manage staff"]
    again = enc.encode_queries(["repair bicycles", "bake bread"])
    assert calls == [["bake bread", "repair bicycles"], ["manage staff"], ["repair bicycles"]]
    assert (again[1] == a[0]).all()  # from the cache: the very same vector
    assert abs(float(again[0] @ a[1]) - 1.0) < 1e-5  # encoded again (alone: padding moves the last digits)
    assert len(enc._cache) == 2
    enc.clear_query_cache()
    assert len(enc._cache) == 0
