"""Where onnx/openvino exports and backend verdicts live, and how a cached export is known to be current.

An export is cached beside the model:

* a local model folder that is writable: inside it, where sentence-transformers itself puts exports
  (``<folder>/openvino/openvino_model*.xml``, ``<folder>/onnx/model*.onnx``);
* a read-only folder or a Hugging Face hub id: in :func:`cache_root` ``/<slug>``, a folder that links to the
  model's files and holds the exports.

A manifest (``esco-backend.json`` in the export folder) records the source files' sizes and modification
times (:func:`fingerprint`); an export whose source changed is made again. One exporter per folder at a time
(:func:`export_lock`, a ``filelock`` lock: a worker and a service starting together).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from search.errors import ConfigError
from search.jsonfile import read_json, write_json_atomic

__all__ = [
    "MANIFEST",
    "cache_root",
    "export_lock",
    "fingerprint",
    "is_current",
    "load_st",
    "mirror",
    "move_into",
    "read_manifest",
    "record",
    "resolve_source",
    "slug",
    "texts_id",
    "transformer_subdir",
    "writable",
]

MANIFEST = "esco-backend.json"


def cache_root() -> Path:
    """Where exports and backend checks are cached: ``$ESCO_CACHE_DIR`` when set, else
    ``$XDG_CACHE_HOME/esco-skill-search/backends`` (default ``~/.cache/esco-skill-search/backends``)."""
    if os.environ.get("ESCO_CACHE_DIR"):
        return Path(os.environ["ESCO_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "esco-skill-search" / "backends"


def writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (tried, not guessed: ACLs, read-only mounts, root)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".esco-write-test-"):
            return True
    except OSError:
        return False


def slug(text: str) -> str:
    """A file name for ``text`` (a model id or path): its readable tail and a digest of all of it."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip("/")).strip("-")[-60:] or "model"
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def texts_id(texts: Sequence[str]) -> str:
    """A short digest of a list of texts (names a calibration or check set in cache keys)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def transformer_subdir(folder: Path) -> str:
    """The folder of the Transformer module inside a sentence-transformers folder ('' for the root)."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    for m in modules:
        if str(m.get("type", "")).endswith("Transformer"):
            return str(m.get("path", ""))
    return ""


def resolve_source(model: str, revision: str | None) -> tuple[Path, str]:
    """A local folder holding the model, and the identity that names its cache entry.

    Raises:
        ConfigError: a hub model that cannot be downloaded (offline, unknown repository).
    """
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


def mirror(source: Path, target: Path) -> None:
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


def fingerprint(folder: Path) -> dict[str, list[int]]:
    """Sizes and mtimes of the weights and config a model's exports derive from."""
    out: dict[str, list[int]] = {}
    for pattern in ("*.safetensors", "pytorch_model*.bin", "config.json"):
        for f in sorted(folder.glob(pattern)):
            st = f.stat()
            out[f.name] = [st.st_size, int(st.st_mtime)]
    return out


def export_lock(folder: Path) -> FileLock:
    """One exporter (or checker) per folder at a time, across processes: ``with export_lock(folder): ...``.

    Raises:
        OSError: the folder cannot be created (a read-only cache).
    """
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / ".esco-export.lock"))


def read_manifest(export_dir: Path) -> dict[str, Any]:
    """The manifest of an export folder (empty when there is none or it is damaged)."""
    data = read_json(export_dir / MANIFEST, {})
    return data if isinstance(data, dict) else {}


def record(export_dir: Path, file_name: str, source: dict[str, Any], details: dict[str, Any]) -> None:
    """Note in the manifest that ``file_name`` was made from ``source`` (a :func:`fingerprint`), and how."""
    manifest = read_manifest(export_dir)
    manifest[file_name] = {"source": source, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           **details}
    write_json_atomic(export_dir / MANIFEST, manifest, indent=2, sort_keys=True)


def is_current(export_dir: Path, file_name: str, source: dict[str, Any], **expect: Any) -> bool:
    """Whether ``file_name`` exists and was made from ``source`` with the ``expect`` details."""
    if not (export_dir / file_name).exists():
        return False
    entry = read_manifest(export_dir).get(file_name)
    # an export made by hand or by sentence-transformers (no manifest entry) is trusted as it is
    if entry is None:
        return True
    return entry.get("source") == source and all(entry.get(k) == v for k, v in expect.items())


def load_st(folder: Path, backend: str, model_kwargs: dict[str, Any]) -> Any:
    """A sentence-transformers model of ``folder`` on the CPU with ``backend``, to export from."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu", backend=backend, model_kwargs=model_kwargs)


def move_into(src_dir: Path, names: Sequence[str], dst_dir: Path) -> None:
    """Move the exported files into place, the main file last (a reader never sees half an export)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.replace(src_dir / name, dst_dir / name)
