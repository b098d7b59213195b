"""Fast inference backends: ONNX Runtime and OpenVINO, through sentence-transformers' own ``backend=``.

:func:`prepare_backend` exports (and, for ``int8``, quantizes) a model **once** and returns the folder and
``model_kwargs`` that ``SentenceTransformer(path, backend=..., model_kwargs=...)`` loads the exported file
with. The export is cached beside the model:

* a local model folder that is writable: inside it, where sentence-transformers itself puts exports
  (``<folder>/openvino/openvino_model*.xml``, ``<folder>/onnx/model*.onnx``);
* a read-only folder or a Hugging Face hub id: in ``$XDG_CACHE_HOME/esco-skill-search/backends/<slug>``
  (default ``~/.cache/...``), a folder that links to the model's files and holds the exports.

The next load finds the exported file and loads it directly (nothing is exported again). A manifest
(``esco-backend.json`` in the export folder) records the source files' sizes and modification times; an export
whose source changed is made again.

=========  =========================================================================================
backend    precisions
=========  =========================================================================================
onnx       ``fp32`` (ONNX export, O2 graph optimizations), ``int8`` (ONNX Runtime dynamic quantization of
           the MatMuls, per channel, with the preset of this CPU: avx512_vnni, avx512, avx2 or arm64)
openvino   ``fp32`` (inference precision hint ``f32``: OpenVINO would otherwise pick bf16 on CPUs that
           have it), ``bf16`` (hint ``bf16``), ``int8`` (static NNCF quantization with SmoothQuant,
           calibrated on ESCO passages and queries: :mod:`search.backend_calibration`), ``int8w``
           (int8 weights only, activations quantized on the fly by OpenVINO; no calibration). In the int8
           models what stays in floating point runs at OpenVINO's default precision (bf16 on CPUs with
           native bf16, else f32)
=========  =========================================================================================

Packages (extras of this project): ``onnx`` needs ``optimum-onnx[onnxruntime]``; ``openvino`` needs
``optimum-intel[openvino]`` and ``nncf``. Which versions work with which sentence-transformers/transformers is
in docs/benchmarks.md; when the packages are missing or cannot be imported, :class:`ConfigError` says which
extra to install and why the import failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.backend_calibration import CALIBRATION_TEXTS
from search.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "BACKEND_PRECISIONS",
    "BackendModel",
    "backend_model_kwargs",
    "cache_root",
    "check_backend",
    "prepare_backend",
    "quiet_false_alarms",
]

BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16", "fp16"),
    "onnx": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8", "int8w"),
}
_EXTRA = {"onnx": "onnx", "openvino": "openvino"}
# What the optimum packages accept (their pins, as of optimum-onnx 0.1.0 and optimum-intel 2.2.0)
_NEEDS = {
    "onnx": "transformers<4.58 (optimum-onnx 0.1), hence sentence-transformers 5.x",
    "openvino": "transformers>=4.51,<5.6 and huggingface-hub<1.22 (optimum-intel 2.2)",
}
_MANIFEST = "esco-backend.json"
# int8 models: the operations left in floating point run at OpenVINO's default (bf16 where the CPU has it)
_OV_PRECISION_HINT: dict[str, str | None] = {"fp32": "f32", "bf16": "bf16", "int8": None, "int8w": None}


@dataclass(frozen=True)
class BackendModel:
    """What to load: ``SentenceTransformer(path, backend=backend, model_kwargs=model_kwargs)``."""

    path: str
    backend: str
    precision: str
    file: str  # the exported file, relative to the Transformer module's folder
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    exported: bool = False  # whether this call exported or quantized anything (False: all from the cache)


# --- availability -----------------------------------------------------------------------------------------
def check_backend(backend: str, precision: str) -> None:
    """Refuse an unknown backend/precision pair, or a backend whose packages cannot be imported.

    Raises:
        ConfigError: names the valid precisions, or the extra to install and the import error.
    """
    if backend not in BACKEND_PRECISIONS:
        raise ConfigError(f"unknown backend {backend!r}: use one of {', '.join(BACKEND_PRECISIONS)}")
    if precision not in BACKEND_PRECISIONS[backend]:
        raise ConfigError(
            f"ESCO_PRECISION={precision} is not available with ESCO_BACKEND={backend}: use one of "
            f"{', '.join(BACKEND_PRECISIONS[backend])}"
        )
    if backend == "torch":
        return
    modules = {
        "onnx": ["onnxruntime", "optimum.onnxruntime"],
        "openvino": ["openvino", "optimum.intel.openvino"] + (["nncf"] if precision.startswith("int8") else []),
    }[backend]
    for mod in modules:
        try:
            __import__(mod)
        except Exception as exc:  # ImportError, or a version clash raising anything at import
            why = f"{mod} cannot be imported: {type(exc).__name__}: {exc}"
            if not isinstance(exc, ModuleNotFoundError):  # installed, but not for these versions
                why += f"; it needs {_NEEDS[backend]}, this environment has transformers {_version('transformers')}"
            raise ConfigError(
                f"ESCO_BACKEND={backend} needs the {_EXTRA[backend]!r} extra: "
                f"`pip install 'esco-skill-search[{_EXTRA[backend]}]'` ({why}). "
                f"See docs/benchmarks.md for the versions that work together"
            ) from exc


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "(not installed)"


# --- log lines that are false alarms here ----------------------------------------------------------------
_FALSE_ALARMS = {
    # optimum-intel, on every offline load of a local folder (its hub-cache probe fails): the folder holds the
    # export, which is what it then loads
    "optimum.intel.openvino.modeling_base": "Could not infer whether the model was already converted",
    # sentence-transformers, while exporting: this module saves every export (and finds it the next time)
    "sentence_transformers.backend.utils": "model is heavily recommended to avoid having to export it again",
}


class _DropFalseAlarm(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def quiet_false_alarms() -> Iterator[None]:
    """Drop the warnings of :data:`_FALSE_ALARMS` while a backend model is exported or loaded."""
    added = [(logging.getLogger(name), _DropFalseAlarm(text)) for name, text in _FALSE_ALARMS.items()]
    for log, flt in added:
        log.addFilter(flt)
    try:
        yield
    finally:
        for log, flt in added:
            log.removeFilter(flt)


# --- where exports live -----------------------------------------------------------------------------------
def cache_root() -> Path:
    """Where exports and backend checks are cached: ``$ESCO_CACHE_DIR`` when set, else
    ``$XDG_CACHE_HOME/esco-skill-search/backends`` (default ``~/.cache/esco-skill-search/backends``)."""
    if os.environ.get("ESCO_CACHE_DIR"):
        return Path(os.environ["ESCO_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "esco-skill-search" / "backends"


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (tried, not guessed: ACLs, read-only mounts, root)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".esco-write-test-"):
            return True
    except OSError:
        return False


def _slug(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip("/")).strip("-")[-60:] or "model"
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _transformer_subdir(folder: Path) -> str:
    """The folder of the Transformer module inside a sentence-transformers folder ('' for the root)."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    for m in modules:
        if str(m.get("type", "")).endswith("Transformer"):
            return str(m.get("path", ""))
    return ""


def _resolve_source(model: str, revision: str | None) -> tuple[Path, str]:
    """A local folder holding the model, and the identity that names its cache entry."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve(), str(path.resolve())
    try:
        from huggingface_hub import snapshot_download

        local = Path(
            snapshot_download(
                model, revision=revision,
                ignore_patterns=["onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "*.tflite", "coreml/*"],
            )
        )
    except Exception as exc:  # offline, unknown repo, network: one clear message
        raise ConfigError(
            f"cannot load the model {model!r} for the export: {exc}. Set ESCO_MODEL to a local "
            f"sentence-transformers folder, or allow the download from the Hugging Face hub (unset HF_HUB_OFFLINE)"
        ) from exc
    return local, f"{model}@{local.name}"  # snapshot folders are named by commit


def _mirror(source: Path, target: Path) -> None:
    """Make ``target`` a sentence-transformers folder whose files link to ``source`` (exports stay apart)."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name in ("onnx", "openvino") or entry.name.startswith("."):
            continue
        link = target / entry.name
        if link.is_symlink() or link.exists():
            continue
        try:
            link.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        except OSError:  # no symlinks here (some filesystems): copy
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, link)


def _fingerprint(folder: Path) -> dict[str, list[int]]:
    """Sizes and mtimes of the weights and config a model's exports derive from."""
    out: dict[str, list[int]] = {}
    for pattern in ("*.safetensors", "pytorch_model*.bin", "config.json"):
        for f in sorted(folder.glob(pattern)):
            st = f.stat()
            out[f.name] = [st.st_size, int(st.st_mtime)]
    return out


@contextlib.contextmanager
def _export_lock(folder: Path) -> Iterator[None]:
    """One exporter per folder at a time (a worker and a service starting together)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".esco-export.lock", "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no lock
            pass
        yield


def _read_manifest(export_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((export_dir / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _record(export_dir: Path, file_name: str, fingerprint: dict[str, Any], details: dict[str, Any]) -> None:
    manifest = _read_manifest(export_dir)
    manifest[file_name] = {"source": fingerprint, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           **details}
    tmp = export_dir / f".{_MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, export_dir / _MANIFEST)


def _is_current(export_dir: Path, file_name: str, fingerprint: dict[str, Any], **expect: Any) -> bool:
    if not (export_dir / file_name).exists():
        return False
    entry = _read_manifest(export_dir).get(file_name)
    # an export made by hand or by sentence-transformers (no manifest entry) is trusted as it is
    if entry is None:
        return True
    return entry.get("source") == fingerprint and all(entry.get(k) == v for k, v in expect.items())


def _texts_id(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _move_into(src_dir: Path, names: Sequence[str], dst_dir: Path) -> None:
    """Move the exported files into place, the main file last (a reader never sees half an export)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.replace(src_dir / name, dst_dir / name)


# --- calibration ------------------------------------------------------------------------------------------
def _onnx_quantization_config() -> str:
    """The ONNX Runtime dynamic-quantization preset of this CPU (names the cached file)."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


# --- the exports ------------------------------------------------------------------------------------------
def _load_st(folder: Path, backend: str, model_kwargs: dict[str, Any]) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu", backend=backend, model_kwargs=model_kwargs)


def _export_openvino_fp32(folder: Path, tdir: Path, fingerprint: dict[str, Any]) -> None:
    export_dir = tdir / "openvino"
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        st = _load_st(folder, "openvino", {"export": True, "ov_config": {"INFERENCE_PRECISION_HINT": "f32"}})
        st[0].auto_model.save_pretrained(tmp)  # sentence-transformers' wrapper saves into <tmp>/openvino/
        _move_into(Path(tmp) / "openvino", ["openvino_model.bin", "openvino_model.xml"], export_dir)
    _record(export_dir, "openvino_model.xml", fingerprint, {"made_by": "optimum-intel export"})


def _export_openvino_int8(
    folder: Path, tdir: Path, fingerprint: dict[str, Any], file_name: str, texts: Sequence[str], texts_id: str
) -> None:
    """Static post-training quantization with NNCF, calibrated on ``texts`` (one unpadded text per sample).

    sentence-transformers' ``export_static_quantized_openvino_model`` would calibrate on GLUE/SST-2 from the hub
    (needs ``datasets`` and a download); this does the same quantization with NNCF on ESCO-like texts.
    """
    import nncf
    import numpy as np
    import openvino as ov

    export_dir = tdir / "openvino"
    st = _load_st(folder, "openvino", {"file_name": "openvino/openvino_model.xml",
                                        "ov_config": {"INFERENCE_PRECISION_HINT": "f32"}})
    ov_model = st[0].auto_model.model  # the openvino.Model (not compiled)
    names = {inp.get_any_name() for inp in ov_model.inputs}
    samples = []
    for text in texts:
        enc = st.tokenizer([text], truncation=True, max_length=st.max_seq_length, return_tensors="np")
        samples.append({k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in names})
        for k in names - set(samples[-1]):
            if k == "token_type_ids":
                samples[-1][k] = np.zeros_like(samples[-1]["input_ids"])
    quantized = nncf.quantize(
        ov_model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset.MIXED, subset_size=len(samples),
    )
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        ov.save_model(quantized, str(Path(tmp) / file_name), compress_to_fp16=False)
        _move_into(Path(tmp), [Path(file_name).with_suffix(".bin").name, file_name], export_dir)
    _record(export_dir, file_name, fingerprint,
            {"made_by": "nncf.quantize", "calibration_samples": len(samples), "calibration": texts_id,
             "preset": "mixed", "smooth_quant": "nncf default for transformers"})


def _export_openvino_int8_weights(folder: Path, tdir: Path, fingerprint: dict[str, Any], file_name: str) -> None:
    """Weight-only int8 (NNCF ``compress_weights``, asymmetric, per channel): no calibration.

    OpenVINO's CPU plugin quantizes the activations of these layers on the fly (dynamic quantization,
    ``DYNAMIC_QUANTIZATION_GROUP_SIZE``), like ONNX Runtime's dynamic int8.
    """
    import nncf
    import openvino as ov

    export_dir = tdir / "openvino"
    ov_model = ov.Core().read_model(str(export_dir / "openvino_model.xml"))
    compressed = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        ov.save_model(compressed, str(Path(tmp) / file_name), compress_to_fp16=False)
        _move_into(Path(tmp), [Path(file_name).with_suffix(".bin").name, file_name], export_dir)
    _record(export_dir, file_name, fingerprint, {"made_by": "nncf.compress_weights", "mode": "int8_asym"})


def _export_onnx_fp32(folder: Path, tdir: Path, fingerprint: dict[str, Any], file_name: str) -> None:
    from sentence_transformers.backend import export_optimized_onnx_model

    export_dir = tdir / "onnx"
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        st = _load_st(folder, "onnx", {"export": True, "provider": "CPUExecutionProvider"})
        st[0].auto_model.save_pretrained(tmp)  # <tmp>/onnx/model.onnx
        # graph optimizations (fused attention, layer norm, GELU), exact in fp32
        export_optimized_onnx_model(st, "O2", tmp, file_suffix="O2")  # <tmp>/onnx/model_O2.onnx
        got = Path(tmp) / "onnx"
        # the plain export stays too: the int8 quantizer cannot read O2's fused (com.microsoft) operators
        names = sorted(p.name for p in got.iterdir() if p.name.startswith(("model.onnx", file_name)))
        names.sort(key=lambda n: n == file_name)
        _move_into(got, names, export_dir)
    _record(export_dir, "model.onnx", fingerprint, {"made_by": "optimum export"})
    _record(export_dir, file_name, fingerprint, {"made_by": "optimum export + ORTOptimizer O2"})


_ONNX_INT8_OPS = "MatMul"  # the dense layers; the embedding table (Gather) stays fp32: less error, same speed


def _export_onnx_int8(folder: Path, tdir: Path, fingerprint: dict[str, Any], file_name: str, src: str) -> None:
    """Dynamic int8 quantization (ONNX Runtime), per channel, of the MatMuls only."""
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    export_dir = tdir / "onnx"
    preset = file_name.removeprefix("model_qint8_").removesuffix(".onnx")
    config = getattr(AutoQuantizationConfig, preset)(
        is_static=False, per_channel=True, operators_to_quantize=[_ONNX_INT8_OPS]
    )
    st = _load_st(folder, "onnx", {"file_name": f"onnx/{src}", "provider": "CPUExecutionProvider"})
    with tempfile.TemporaryDirectory(dir=tdir, prefix=".esco-export-") as tmp:
        export_dynamic_quantized_onnx_model(st, config, tmp, file_suffix=f"qint8_{preset}")
        _move_into(Path(tmp) / "onnx", [file_name], export_dir)
    _record(export_dir, file_name, fingerprint, {"made_by": "ORTQuantizer dynamic", "config": preset,
                                                 "per_channel": True, "ops": _ONNX_INT8_OPS, "from": src})


def prepare_backend(
    model: str,
    backend: str,
    precision: str = "fp32",
    revision: str | None = None,
    *,
    device: str | None = None,
    calibration_texts: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
) -> BackendModel:
    """Export/quantize ``model`` for ``backend`` at ``precision`` once, and say how to load the result.

    Args:
        model: hub id or local sentence-transformers folder.
        backend: ``onnx`` or ``openvino`` (``torch`` returns the model as it is).
        precision: see :data:`BACKEND_PRECISIONS`.
        revision: hub revision.
        device: ``cuda...`` selects ONNX Runtime's CUDA provider; anything else runs on the CPU.
        calibration_texts: texts to calibrate OpenVINO int8 on (default: built-in ESCO passages and queries;
            pass them with their prompts, e.g. ``"passage: ..."``).
        cache_dir: where exports of read-only folders and hub models go (default :func:`cache_root`).

    Raises:
        ConfigError: unknown backend/precision, missing packages, or a model that cannot be found.
    """
    check_backend(backend, precision)
    if backend == "torch":
        return BackendModel(model, backend, precision, "", {}, False)
    source, identity = _resolve_source(model, revision)
    if Path(model).expanduser().is_dir() and _writable(source):  # never write into the hub's own cache
        folder = source
    else:
        folder = Path(cache_dir).expanduser() if cache_dir else cache_root()
        folder = folder / _slug(identity)
        with _export_lock(folder):
            _mirror(source, folder)
    sub = _transformer_subdir(folder)
    tdir = folder / sub if sub else folder
    fingerprint = _fingerprint(source / sub if sub else source)
    exported = False

    # NNCF and optimum draw progress bars on stdout: they go to stderr, so that `esco-search --json` and
    # any other caller's stdout stay clean
    with _export_lock(folder), contextlib.redirect_stdout(sys.stderr), quiet_false_alarms():
        if backend == "openvino":
            export_dir = tdir / "openvino"
            fp32 = "openvino_model.xml"
            if not _is_current(export_dir, fp32, fingerprint):
                logger.info("exporting %s to OpenVINO (once; cached in %s)", model, export_dir)
                _export_openvino_fp32(folder, tdir, fingerprint)
                exported = True
            file_name = fp32
            if precision == "int8":
                file_name = "openvino_model_qint8_esco.xml"
                texts = list(calibration_texts or CALIBRATION_TEXTS)
                texts_id = _texts_id(texts)
                if exported or not _is_current(export_dir, file_name, fingerprint, calibration=texts_id):
                    logger.warning("quantizing %s to int8 with NNCF on %d texts (once: about a minute for a "
                                   "base-size model on 2 cores; cached in %s)", model, len(texts), export_dir)
                    _export_openvino_int8(folder, tdir, fingerprint, file_name, texts, texts_id)
                    exported = True
            elif precision == "int8w":
                file_name = "openvino_model_int8_weights.xml"
                if exported or not _is_current(export_dir, file_name, fingerprint):
                    logger.info("compressing the weights of %s to int8 (once; cached in %s)", model, export_dir)
                    _export_openvino_int8_weights(folder, tdir, fingerprint, file_name)
                    exported = True
            rel = f"openvino/{file_name}"
            ov_config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
            hint = _OV_PRECISION_HINT[precision]
            if hint:
                ov_config["INFERENCE_PRECISION_HINT"] = hint
            kwargs: dict[str, Any] = {"file_name": rel, "ov_config": ov_config}
        else:
            export_dir = tdir / "onnx"
            fp32 = "model_O2.onnx"
            if not _is_current(export_dir, fp32, fingerprint):
                logger.info("exporting %s to ONNX (once; cached in %s)", model, export_dir)
                _export_onnx_fp32(folder, tdir, fingerprint, fp32)
                exported = True
            file_name = fp32
            if precision == "int8":
                file_name = f"model_qint8_{_onnx_quantization_config()}.onnx"
                if exported or not _is_current(export_dir, file_name, fingerprint, ops=_ONNX_INT8_OPS):
                    logger.info("quantizing %s to int8 (once; cached in %s)", model, export_dir)
                    if not _is_current(export_dir, "model.onnx", fingerprint):
                        _export_onnx_fp32(folder, tdir, fingerprint, fp32)
                    _export_onnx_int8(folder, tdir, fingerprint, file_name, "model.onnx")
                    exported = True
            rel = f"onnx/{file_name}"
            provider = "CUDAExecutionProvider" if (device or "").startswith("cuda") else "CPUExecutionProvider"
            kwargs = {"file_name": rel, "provider": provider}
    return BackendModel(str(folder), backend, precision, rel, kwargs, exported)


def backend_model_kwargs(model: str, backend: str, precision: str, revision: str | None = None) -> dict[str, Any]:
    """The ``model_kwargs`` of :func:`prepare_backend` (exporting once if needed).

    Only valid with the folder :func:`prepare_backend` returns as ``path``: that is ``model`` itself for a
    writable local folder, a cache folder otherwise. Prefer :func:`prepare_backend`.
    """
    return prepare_backend(model, backend, precision, revision).model_kwargs
