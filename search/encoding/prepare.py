"""Fast inference backends: ONNX Runtime and OpenVINO, through sentence-transformers' own ``backend=``.

:func:`prepare_backend` exports (and, for ``int8``, quantizes) a model **once** and returns the folder and
``model_kwargs`` that ``SentenceTransformer(path, backend=..., model_kwargs=...)`` loads the exported file
with; where the export is cached is :mod:`search.encoding.export_cache`'s business. Every export runs in a
child process (:mod:`search.encoding.export_worker`): its progress bars and prints are captured and logged at
DEBUG, the host's stdout stays untouched (no ``redirect_stdout``, which would redirect every thread).

OpenVINO models are compiled with OpenVINO's model cache (``CACHE_DIR`` = ``<cache_root>/openvino-compiled``):
the second load of a model skips most of the compilation.

Packages (extras of this project): ``onnx`` needs ``optimum-onnx[onnxruntime]``; ``openvino`` needs
``optimum-intel[openvino]`` and ``nncf``. Which versions work together is in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.encoding import packages
from search.encoding.data import calibration_texts
from search.encoding.export_cache import (
    cache_root,
    export_lock,
    fingerprint,
    is_current,
    mirror,
    resolve_source,
    slug,
    texts_id,
    transformer_subdir,
    writable,
)
from search.encoding.hardware import onnx_quantization_preset
from search.encoding.onnx_export import FP32_FILE as ONNX_FP32, INT8_OPS
from search.encoding.openvino_export import FP32_FILE as OV_FP32, INT8_FILE, INT8W_FILE, PRECISION_HINT
from search.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["BackendModel", "backend_model_kwargs", "prepare_backend", "run_export"]


@dataclass(frozen=True)
class BackendModel:
    """What to load: ``SentenceTransformer(path, backend=backend, model_kwargs=model_kwargs)``."""

    path: str
    backend: str
    precision: str
    file: str  # the exported file, relative to the Transformer module's folder
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    exported: bool = False  # whether this call exported or quantized anything (False: all from the cache)


def run_export(kind: str, **job: Any) -> None:
    """Run the export ``kind`` of :data:`search.encoding.export_worker.EXPORTS` in a child process.

    Raises:
        ConfigError: the export failed (with the end of its output).
    """
    package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds `search`
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
           "TQDM_DISABLE": "1"}  # the child's own environment: nothing of the host changes
    payload = json.dumps({"kind": kind, **{k: str(v) if isinstance(v, Path) else v for k, v in job.items()}})
    proc = subprocess.run([sys.executable, "-m", "search.encoding.export_worker"], input=payload,
                          capture_output=True, text=True, env=env, check=False)
    output = (proc.stdout + proc.stderr).strip()
    for line in output.splitlines():
        logger.debug("%s export: %s", kind, line)
    if proc.returncode != 0:
        raise ConfigError(f"the {kind.replace('_', ' ')} export of {job.get('folder')} failed (exit "
                          f"{proc.returncode}): {output[-2000:]}")


# the exports, one name each (tests replace them with stand-ins)
def _export_openvino_fp32(folder: Path, tdir: Path, source: dict[str, Any]) -> None:
    run_export("openvino_fp32", folder=folder, tdir=tdir, source=source)


def _export_openvino_int8(folder: Path, tdir: Path, source: dict[str, Any], file_name: str,
                          texts: Sequence[str], texts_id: str) -> None:
    run_export("openvino_int8", folder=folder, tdir=tdir, source=source, file_name=file_name, texts=list(texts),
               texts_id=texts_id)


def _export_openvino_int8_weights(folder: Path, tdir: Path, source: dict[str, Any], file_name: str) -> None:
    run_export("openvino_int8w", folder=folder, tdir=tdir, source=source, file_name=file_name)


def _export_onnx_fp32(folder: Path, tdir: Path, source: dict[str, Any], file_name: str) -> None:
    run_export("onnx_fp32", folder=folder, tdir=tdir, source=source, file_name=file_name)


def _export_onnx_int8(folder: Path, tdir: Path, source: dict[str, Any], file_name: str, src: str) -> None:
    run_export("onnx_int8", folder=folder, tdir=tdir, source=source, file_name=file_name, src=src)


def _usable_folder(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return writable(folder)


def _prepare_openvino(model: str, folder: Path, tdir: Path, source: dict[str, Any], precision: str,
                      calibration: Sequence[str] | None, compiled_cache: Path) -> tuple[str, dict[str, Any], bool]:
    export_dir = tdir / "openvino"
    exported = False
    if not is_current(export_dir, OV_FP32, source):
        logger.info("exporting %s to OpenVINO (once; cached in %s)", model, export_dir)
        _export_openvino_fp32(folder, tdir, source)
        exported = True
    file_name = OV_FP32
    if precision == "int8":
        file_name = INT8_FILE
        texts = list(calibration or calibration_texts())
        tid = texts_id(texts)
        if exported or not is_current(export_dir, file_name, source, calibration=tid):
            logger.warning("quantizing %s to int8 with NNCF on %d texts (once: about a minute for a base-size "
                           "model on 2 cores; cached in %s)", model, len(texts), export_dir)
            _export_openvino_int8(folder, tdir, source, file_name, texts, tid)
            exported = True
    elif precision == "int8w":
        file_name = INT8W_FILE
        if exported or not is_current(export_dir, file_name, source):
            logger.info("compressing the weights of %s to int8 (once; cached in %s)", model, export_dir)
            _export_openvino_int8_weights(folder, tdir, source, file_name)
            exported = True
    ov_config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if _usable_folder(compiled_cache):  # a read-only cache: compiled anew each time, nothing breaks
        ov_config["CACHE_DIR"] = str(compiled_cache)
    hint = PRECISION_HINT[precision]
    if hint:
        ov_config["INFERENCE_PRECISION_HINT"] = hint
    return f"openvino/{file_name}", {"file_name": f"openvino/{file_name}", "ov_config": ov_config}, exported


def _prepare_onnx(model: str, folder: Path, tdir: Path, source: dict[str, Any], precision: str,
                  device: str | None) -> tuple[str, dict[str, Any], bool]:
    export_dir = tdir / "onnx"
    exported = False
    if not is_current(export_dir, ONNX_FP32, source):
        logger.info("exporting %s to ONNX (once; cached in %s)", model, export_dir)
        _export_onnx_fp32(folder, tdir, source, ONNX_FP32)
        exported = True
    file_name = ONNX_FP32
    if precision == "int8":
        file_name = f"model_qint8_{onnx_quantization_preset()}.onnx"
        if exported or not is_current(export_dir, file_name, source, ops=INT8_OPS):
            logger.info("quantizing %s to int8 (once; cached in %s)", model, export_dir)
            if not is_current(export_dir, "model.onnx", source):
                _export_onnx_fp32(folder, tdir, source, ONNX_FP32)
            _export_onnx_int8(folder, tdir, source, file_name, "model.onnx")
            exported = True
    provider = "CUDAExecutionProvider" if (device or "").startswith("cuda") else "CPUExecutionProvider"
    return f"onnx/{file_name}", {"file_name": f"onnx/{file_name}", "provider": provider}, exported


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
        precision: see :data:`search.encoding.packages.BACKEND_PRECISIONS`.
        revision: hub revision.
        device: ``cuda...`` selects ONNX Runtime's CUDA provider; anything else runs on the CPU.
        calibration_texts: texts to calibrate OpenVINO int8 on (default: ``data/calibration.json``; pass them
            with their prompts, e.g. ``"passage: ..."``).
        cache_dir: where exports of read-only folders and hub models go (default :func:`cache_root`).

    Raises:
        ConfigError: unknown backend/precision, missing packages, a model that cannot be found, a failed export.
    """
    packages.check_backend(backend, precision)
    if backend == "torch":
        return BackendModel(model, backend, precision, "", {}, False)
    root = Path(cache_dir).expanduser() if cache_dir else cache_root()
    source_dir, identity = resolve_source(model, revision)
    if Path(model).expanduser().is_dir() and writable(source_dir):  # never write into the hub's own cache
        folder = source_dir
    else:
        folder = root / slug(identity)
        with export_lock(folder):
            mirror(source_dir, folder)
    sub = transformer_subdir(folder)
    tdir = folder / sub if sub else folder
    source = fingerprint(source_dir / sub if sub else source_dir)
    with export_lock(folder):
        if backend == "openvino":
            rel, kwargs, exported = _prepare_openvino(model, folder, tdir, source, precision, calibration_texts,
                                                      root / "openvino-compiled")
        else:
            rel, kwargs, exported = _prepare_onnx(model, folder, tdir, source, precision, device)
    return BackendModel(str(folder), backend, precision, rel, kwargs, exported)


def backend_model_kwargs(model: str, backend: str, precision: str, revision: str | None = None) -> dict[str, Any]:
    """The ``model_kwargs`` of :func:`prepare_backend` (exporting once if needed).

    Only valid with the folder :func:`prepare_backend` returns as ``path``: that is ``model`` itself for a
    writable local folder, a cache folder otherwise. Prefer :func:`prepare_backend`.
    """
    return prepare_backend(model, backend, precision, revision).model_kwargs
