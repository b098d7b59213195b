"""ONNX Runtime / OpenVINO backends (search.encoding.prepare): export once, cache, reuse, agree with torch fp32.

The real exports run with all-MiniLM-L6-v2 (``minilm_path``) in a writable folder that links to its files,
and are skipped, with the reason, where a backend's packages are missing or cannot be imported with this
transformers (see docs/benchmarks.md). The cache-location logic is checked with a stand-in exporter.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from search.encoding import export_cache, packages, prepare
from search.encoding.data import calibration_texts
from search.encoding.prepare import BackendModel, prepare_backend
from search.encoding.packages import check_backend
from search.errors import ConfigError

CALIBRATION_TEXTS = calibration_texts()

TEXTS = [
    "repair bicycles",
    "Students learn to design relational databases and query them with SQL.",
    "manage musical staff: Assign and manage staff tasks in areas such as scoring, arranging and copying music.",
    "Nach Abschluss des Moduls können die Studierenden Projekte planen.",
]
CASES = [("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("openvino", "int8w"), ("onnx", "fp32"),
         ("onnx", "int8")]


@pytest.fixture(scope="session")
def model_copy(minilm_path: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable folder linking to MiniLM's files (exports must not land in the installed package)."""
    folder = tmp_path_factory.mktemp("minilm") / "model"
    export_cache.mirror(Path(minilm_path), folder)
    return folder


@pytest.fixture(scope="session")
def torch_fp32(minilm_path: str) -> np.ndarray:
    from search.encoding import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(minilm_path, device="cpu", precision="fp32", cache_size=0)
    return enc.encode_passages(TEXTS)


def _need(backend: str, precision: str) -> None:
    """Skip where the backend's extra is not installed at all; fail where it is installed but broken."""
    try:
        check_backend(backend, precision)
    except ConfigError as exc:
        if packages.backend_installed(backend):
            pytest.fail(f"the {backend!r} extra is installed but cannot be used: {exc}")
        pytest.skip(f"the {backend!r} extra is not installed: {exc}")


@pytest.mark.parametrize(("backend", "precision"), CASES)
def test_export_is_cached_and_agrees_with_torch(
    backend: str, precision: str, model_copy: Path, torch_fp32: np.ndarray, capfd: pytest.CaptureFixture[str]
) -> None:
    _need(backend, precision)
    from search.encoding import SentenceTransformerEncoder

    # static int8 calibrates on every text it is given: a tenth of the default set keeps this test short
    kw = {"calibration_texts": CALIBRATION_TEXTS[::10]} if (backend, precision) == ("openvino", "int8") else {}
    first = prepare_backend(str(model_copy), backend, precision, **kw)
    assert capfd.readouterr().out == "", "the export wrote to stdout (it would corrupt `esco-search --json`)"
    exported = model_copy / first.file
    assert first.path == str(model_copy) and exported.exists()
    mtime = exported.stat().st_mtime_ns

    if kw:  # loaded as the encoder would load it, with the same calibration set
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(first.path, device="cpu", backend=backend, model_kwargs=first.model_kwargs)
        encode = lambda texts: st.encode(["passage: " + t for t in texts], normalize_embeddings=True)
    else:
        enc = SentenceTransformerEncoder(str(model_copy), device="cpu", backend=backend, precision=precision,
                                         cache_size=0)
        assert (enc.backend, enc.precision) == (backend, precision)
        encode = enc.encode_passages
    assert exported.stat().st_mtime_ns == mtime, "loading the model exported it again"
    again = prepare_backend(str(model_copy), backend, precision, **kw)
    assert again.exported is False and again.file == first.file
    assert exported.stat().st_mtime_ns == mtime

    got = np.asarray(encode(TEXTS), dtype=np.float32)
    assert got.shape == torch_fp32.shape and got.dtype == np.float32
    cos = np.sum(got * torch_fp32, axis=1)  # both normalized
    # MiniLM-L6 is sensitive to int8 (ONNX Runtime's dynamic int8 gives 0.987-0.995 on these texts); the
    # production-size models agree far better (docs/benchmarks.md)
    ok = cos.mean() >= 0.99 and cos.min() >= 0.98 if precision.startswith("int8") else cos.min() >= 0.99
    assert ok, f"{backend}/{precision}: cosine to torch fp32 {cos.round(4).tolist()}"
    manifest = json.loads((exported.parent / "esco-backend.json").read_text())
    assert exported.name in manifest


# --- no exports needed below ------------------------------------------------------------------------------
def _fake_export(calls: list[str]):
    def export(folder: Path, tdir: Path, fingerprint: dict, *rest: object) -> None:
        calls.append(str(folder))
        out = tdir / "openvino"
        out.mkdir(parents=True, exist_ok=True)
        (out / "openvino_model.xml").write_text("<net/>")
        (out / "openvino_model.bin").write_bytes(b"\0")
        export_cache.record(out, "openvino_model.xml", fingerprint, {"made_by": "test"})

    return export


@pytest.fixture
def fake_openvino(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(packages, "check_backend", lambda backend, precision: None)
    monkeypatch.setattr(prepare, "_export_openvino_fp32", _fake_export(calls))
    return calls


def test_read_only_folder_exports_into_the_cache(
    minilm_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openvino: list[str]
) -> None:
    folder = tmp_path / "model"
    export_cache.mirror(Path(minilm_path), folder)
    monkeypatch.setattr(prepare, "writable", lambda path: False)
    monkeypatch.delenv("ESCO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    got = prepare_backend(str(folder), "openvino", "fp32")
    cache = Path(got.path)
    assert cache.parent == tmp_path / "cache" / "esco-skill-search" / "backends"
    assert (cache / "openvino" / "openvino_model.xml").exists()
    assert (cache / "modules.json").resolve() == (Path(minilm_path) / "modules.json").resolve()
    assert not (folder / "openvino").exists(), "a read-only model folder was written to"
    assert got.model_kwargs["file_name"] == "openvino/openvino_model.xml"
    assert got.model_kwargs["ov_config"]["INFERENCE_PRECISION_HINT"] == "f32"

    again = prepare_backend(str(folder), "openvino", "bf16")
    assert len(fake_openvino) == 1 and again.exported is False and again.path == got.path
    assert again.model_kwargs["ov_config"]["INFERENCE_PRECISION_HINT"] == "bf16"


def test_changed_weights_are_exported_again(tmp_path: Path, minilm_path: str, fake_openvino: list[str]) -> None:
    folder = tmp_path / "model"
    export_cache.mirror(Path(minilm_path), folder)
    (folder / "config.json").unlink()
    (folder / "config.json").write_text((Path(minilm_path) / "config.json").read_text())
    assert prepare_backend(str(folder), "openvino", "fp32").exported is True
    assert prepare_backend(str(folder), "openvino", "fp32").exported is False
    st = (folder / "config.json").stat()
    os.utime(folder / "config.json", (st.st_atime, st.st_mtime + 10))
    assert prepare_backend(str(folder), "openvino", "fp32").exported is True
    assert len(fake_openvino) == 2


def test_torch_needs_no_export(minilm_path: str) -> None:
    assert prepare_backend(minilm_path, "torch", "fp32") == BackendModel(minilm_path, "torch", "fp32", "", {}, False)


@pytest.mark.parametrize(("backend", "precision"), [("onnx", "bf16"), ("openvino", "fp16"), ("tensorrt", "fp32")])
def test_unknown_pairs_are_refused(backend: str, precision: str) -> None:
    with pytest.raises(ConfigError, match=backend if backend == "tensorrt" else precision):
        check_backend(backend, precision)


@pytest.mark.parametrize(
    ("backend", "module"), [("onnx", "optimum.onnxruntime"), ("openvino", "optimum.intel.openvino")]
)
def test_missing_packages_name_the_extra(backend: str, module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object):
        if name == module:
            raise ImportError(f"No module named {module!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", object())
    monkeypatch.setitem(__import__("sys").modules, "openvino", object())
    with pytest.raises(ConfigError, match=rf"esco-skill-search\[{backend}\]"):
        check_backend(backend, "fp32")


def test_encoder_reports_missing_backend(minilm_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from search.encoding import SentenceTransformerEncoder

    def refuse(backend: str, precision: str) -> None:
        raise ConfigError(f"ESCO_BACKEND={backend} needs the {backend!r} extra")

    monkeypatch.setattr(packages, "check_backend", refuse)
    with pytest.raises(ConfigError, match="extra"):
        SentenceTransformerEncoder(minilm_path, device="cpu", backend="openvino", precision="int8")


def test_exporting_and_loading_openvino_offline_log_no_false_alarm(model_copy: Path) -> None:
    """Dropped: optimum-intel's "Could not infer whether the model was already converted" on every offline load
    of a local folder, and sentence-transformers' advice to save an export, which this module always saves."""
    _need("openvino", "fp32")
    from search.encoding import SentenceTransformerEncoder

    # these loggers do not propagate to pytest's handler: listen on them
    records: list[logging.LogRecord] = []
    listener = logging.Handler(logging.DEBUG)
    listener.emit = records.append  # type: ignore[method-assign]
    names = ("optimum.intel.openvino.modeling_base", "sentence_transformers.backend.utils")
    logs = [logging.getLogger(n) for n in names]
    levels = [log.level for log in logs]
    for log in logs:
        log.addHandler(listener)
        log.setLevel(logging.WARNING)
    try:
        prepare_backend(str(model_copy), "openvino", "fp32")
        enc = SentenceTransformerEncoder(str(model_copy), device="cpu", backend="openvino", precision="fp32",
                                         cache_size=0)
    finally:
        for log, level in zip(logs, levels):
            log.removeHandler(listener)
            log.setLevel(level)
    assert enc.encode_passages(["x"]).shape == (1, enc.dimension)
    said = [r.getMessage() for r in records]
    assert not [m for m in said if "Could not infer" in m or "heavily recommended" in m], said


def test_an_export_leaves_the_stdout_of_other_threads_alone(
    minilm_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a (long) export runs, another thread of the host, e.g. a service answering, prints to stdout as
    always: nothing redirects sys.stdout process-wide."""
    folder = tmp_path / "model"
    export_cache.mirror(Path(minilm_path), folder)
    monkeypatch.setattr(packages, "check_backend", lambda backend, precision: None)
    exporting, printed = threading.Event(), threading.Event()

    def slow_export(folder: Path, tdir: Path, fingerprint: dict) -> None:
        exporting.set()
        assert printed.wait(20), "the other thread never printed"
        _fake_export([])(folder, tdir, fingerprint)

    monkeypatch.setattr(prepare, "_export_openvino_fp32", slow_export)

    def other_thread() -> None:
        exporting.wait(20)
        print("a line of another thread")
        printed.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert prepare_backend(str(folder), "openvino", "fp32").exported is True
    thread.join(20)
    got = capsys.readouterr()
    assert "a line of another thread" in got.out and "a line of another thread" not in got.err


def test_the_export_child_keeps_its_output_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """An export prints progress bars; in the child process they are captured and logged at DEBUG, and a failed
    export is a ConfigError with the end of its output."""
    with caplog.at_level(logging.DEBUG, logger="search.encoding.prepare"), pytest.raises(ConfigError) as err:
        prepare.run_export("openvino_fp32", folder=tmp_path / "no-model", tdir=tmp_path / "no-model", source={})
    assert "openvino fp32 export" in str(err.value) and "no-model" in str(err.value)
    assert capfd.readouterr().out == ""
    assert any("openvino_fp32 export:" in r.getMessage() for r in caplog.records)


def test_a_broken_extra_is_told_apart_from_a_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"openvino": "2026.0", "optimum-intel": "2.1.0"}
    monkeypatch.setattr(packages, "package_version", lambda dist: versions.get(dist, "(not installed)"))
    assert packages.backend_installed("openvino") is True
    assert packages.backend_installed("onnx") is False
    versions.pop("optimum-intel")
    assert packages.backend_installed("openvino") is False
    assert packages.backend_installed("torch") is True


def test_openvino_models_use_the_compiled_model_cache(
    minilm_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openvino: list[str]
) -> None:
    folder = tmp_path / "model"
    export_cache.mirror(Path(minilm_path), folder)
    got = prepare_backend(str(folder), "openvino", "fp32", cache_dir=tmp_path / "cache")
    assert got.model_kwargs["ov_config"]["CACHE_DIR"] == str(tmp_path / "cache" / "openvino-compiled")
    assert (tmp_path / "cache" / "openvino-compiled").is_dir()
